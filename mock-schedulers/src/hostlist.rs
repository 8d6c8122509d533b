//! Slurm hostlist expressions: `node[01-04,07]`, `a1,b[2-3]`.

use thiserror::Error;

/// A hostlist expression that cannot be expanded.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid hostlist `{0}`")]
pub struct HostlistError(pub String);

/// Upper bound on the number of names one expression may expand to.
const MAX_HOSTS: usize = 65_536;

/// Most digits a range bound may have.
const MAX_DIGITS: usize = 18;

/// Expands a hostlist expression into its host names, in order.
pub fn expand(expr: &str) -> Result<Vec<String>, HostlistError> {
    let err = || HostlistError(expr.to_string());
    let mut hosts = Vec::new();
    for item in split_top_level(expr).ok_or_else(err)? {
        let item = item.trim();
        if item.is_empty() {
            return Err(err());
        }
        let Some(open) = item.find('[') else {
            if item.contains(']') {
                return Err(err());
            }
            hosts.push(item.to_string());
            continue;
        };
        let close = item.rfind(']').ok_or_else(err)?;
        if close < open || item[open + 1..close].contains('[') {
            return Err(err());
        }
        let prefix = &item[..open];
        let suffix = &item[close + 1..];
        if suffix.contains('[') || suffix.contains(']') || prefix.is_empty() {
            return Err(err());
        }
        for range in item[open + 1..close].split(',') {
            let (lo, hi) = match range.split_once('-') {
                Some((lo, hi)) => (lo, hi),
                None => (range, range),
            };
            // Beyond 18 digits a bound is no u64 any more, and a zero-padded one would only
            // multiply the size of every name.
            if lo.is_empty() || hi.is_empty() || lo.len() > MAX_DIGITS || hi.len() > MAX_DIGITS {
                return Err(err());
            }
            if !lo.bytes().all(|b| b.is_ascii_digit()) || !hi.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            let width = lo.len();
            let lo_n: u64 = lo.parse().map_err(|_| err())?;
            let hi_n: u64 = hi.parse().map_err(|_| err())?;
            if hi_n < lo_n || (hi_n - lo_n) as usize + hosts.len() >= MAX_HOSTS {
                return Err(err());
            }
            for n in lo_n..=hi_n {
                hosts.push(format!("{prefix}{n:0width$}{suffix}"));
            }
        }
    }
    Ok(hosts)
}

fn split_top_level(expr: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in expr.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    parts.push(&expr[start..]);
    Some(parts)
}

/// Compresses host names into Slurm's compact form (`node[01-03]`), keeping first-seen order of
/// prefixes.
pub fn compress(hosts: &[String]) -> String {
    // (prefix, width, numbers) groups; names without a trailing number stand alone.
    let mut groups: Vec<(String, usize, Vec<u64>)> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut order: Vec<Result<usize, String>> = Vec::new();
    for host in hosts {
        let digits = host
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 18 {
            order.push(Err(host.clone()));
            continue;
        }
        let (prefix, num) = host.split_at(host.len() - digits);
        let Ok(n) = num.parse::<u64>() else {
            order.push(Err(host.clone()));
            continue;
        };
        let width = if num.starts_with('0') { digits } else { 0 };
        if let Some(idx) = groups
            .iter()
            .position(|(p, w, _)| p == prefix && *w == width)
        {
            groups[idx].2.push(n);
        } else {
            groups.push((prefix.to_string(), width, vec![n]));
            order.push(Ok(groups.len() - 1));
        }
    }
    for item in order {
        match item {
            Err(name) => out.push(name),
            Ok(idx) => {
                let (prefix, width, nums) = &mut groups[idx];
                nums.sort_unstable();
                nums.dedup();
                if nums.len() == 1 {
                    out.push(format!("{prefix}{:0w$}", nums[0], w = *width));
                    continue;
                }
                let mut ranges = Vec::new();
                let mut i = 0;
                while i < nums.len() {
                    let mut j = i;
                    while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
                        j += 1;
                    }
                    if i == j {
                        ranges.push(format!("{:0w$}", nums[i], w = *width));
                    } else {
                        ranges.push(format!("{:0w$}-{:0w$}", nums[i], nums[j], w = *width));
                    }
                    i = j + 1;
                }
                out.push(format!("{prefix}[{}]", ranges.join(",")));
            }
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_ranges_with_padding() {
        assert_eq!(
            expand("node[01-03,07]").unwrap(),
            ["node01", "node02", "node03", "node07"]
        );
        assert_eq!(expand("localhost").unwrap(), ["localhost"]);
        assert!(expand("node[3-1]").is_err());
        assert!(expand("node[01-").is_err());
    }

    #[test]
    fn ranges_too_big_to_expand_are_errors() {
        for expr in [
            "node[05-01]",
            "node[1-99999999]",
            "node[1-99999999999999999999]",
            "node[0000000000000000000001-2]",
            "a[1-40000],b[1-40000]",
        ] {
            assert_eq!(expand(expr), Err(HostlistError(expr.into())), "{expr}");
        }
        assert_eq!(expand("node[000000000000000001-2]").unwrap().len(), 2);
    }

    #[test]
    fn compresses_back() {
        let hosts = expand("node[01-04,07]").unwrap();
        assert_eq!(compress(&hosts), "node[01-04,07]");
        assert_eq!(compress(&["localhost".to_string()]), "localhost");
    }
}
