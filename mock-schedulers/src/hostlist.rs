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

/// Expands a hostlist expression into its host names, in order. Several bracketed ranges in
/// one name multiply (`n[1-2]-ib[3-4]` is four names); text after the last bracket is refused,
/// as Slurm 22.05 refuses `n[1-3]x`.
pub fn expand(expr: &str) -> Result<Vec<String>, HostlistError> {
    expand_items(expr, false)
}

/// [`expand`] of a list typed by hand, as `scontrol show hostnames` takes it: empty items
/// (`n1,,n2`, a trailing comma) are skipped.
pub fn expand_list(expr: &str) -> Result<Vec<String>, HostlistError> {
    expand_items(expr, true)
}

fn expand_items(expr: &str, skip_empty: bool) -> Result<Vec<String>, HostlistError> {
    let err = || HostlistError(expr.to_string());
    let mut hosts = Vec::new();
    for item in split_top_level(expr).ok_or_else(err)? {
        let item = item.trim();
        if item.is_empty() && skip_empty {
            continue;
        }
        if item.is_empty() {
            return Err(err());
        }
        let names = expand_name(item, true).ok_or_else(err)?;
        if names.len() + hosts.len() >= MAX_HOSTS {
            return Err(err());
        }
        hosts.extend(names);
    }
    Ok(hosts)
}

/// The names of one comma-free item; `first` when nothing stands before it.
fn expand_name(item: &str, first: bool) -> Option<Vec<String>> {
    let Some(open) = item.find('[') else {
        // A plain name; after a bracket only another bracketed part may follow.
        return (!item.contains(']') && (first || item.is_empty())).then(|| vec![item.into()]);
    };
    let close = open + item[open..].find(']')?;
    let prefix = &item[..open];
    if (first && prefix.is_empty()) || prefix.contains(']') {
        return None;
    }
    let rest = expand_name(&item[close + 1..], false)?;
    let mut names = Vec::new();
    for range in item[open + 1..close].split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        // Beyond 18 digits a bound is no u64 any more, and a zero-padded one would only
        // multiply the size of every name.
        let digits = |s: &str| {
            !s.is_empty() && s.len() <= MAX_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(lo) || !digits(hi) {
            return None;
        }
        let width = lo.len();
        let (lo_n, hi_n): (u64, u64) = (lo.parse().ok()?, hi.parse().ok()?);
        let span = hi_n.checked_sub(lo_n)?;
        let count = usize::try_from(span)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .saturating_mul(rest.len());
        if count.saturating_add(names.len()) > MAX_HOSTS {
            return None;
        }
        for n in lo_n..=hi_n {
            for tail in &rest {
                names.push(format!("{prefix}{n:0width$}{tail}"));
            }
        }
    }
    Some(names)
}

/// The first range of `expr` whose end is below its start (`3-1` in `n[3-1]`), which Slurm
/// names in an error line of its own.
pub fn reversed_range(expr: &str) -> Option<&str> {
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        let close = open + rest[open..].find(']')?;
        for range in rest[open + 1..close].split(',') {
            if let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) = (lo.parse::<u64>(), hi.parse::<u64>())
                && hi < lo
            {
                return Some(range);
            }
        }
        rest = &rest[close + 1..];
    }
    None
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
/// prefixes: each prefix's numbers sorted and without repeats, as Slurm prints a job's or a
/// partition's nodes.
pub fn compress(hosts: &[String]) -> String {
    let mut prefixes: Vec<&str> = Vec::new();
    let mut keyed: Vec<(usize, u64, usize, &String)> = Vec::new();
    for host in hosts {
        let (prefix, number) = split_number(host);
        let rank = match prefixes.iter().position(|p| *p == prefix) {
            Some(rank) => rank,
            None => {
                prefixes.push(prefix);
                prefixes.len() - 1
            }
        };
        let (n, width) = number.unwrap_or((0, 0));
        keyed.push((rank, n, width, host));
    }
    keyed.sort();
    keyed.dedup();
    ranged(keyed.into_iter().map(|(_, _, _, host)| host))
}

/// `scontrol show hostlist`: the names in the order given, runs of consecutive numbers with the
/// same prefix as ranges, consecutive ranges of one prefix in one bracket (Slurm's
/// `hostlist_ranged_string`): `n9,n10,n08,n09` is `n[9-10,08-09]`.
pub fn ranged<'a>(hosts: impl IntoIterator<Item = &'a String>) -> String {
    let mut ranges: Vec<HostRange<'_>> = Vec::new();
    for host in hosts {
        push_range(&mut ranges, HostRange::of(host));
    }
    print_ranges(&ranges)
}

/// `scontrol show hostlistsorted`: the ranges [`ranged`] makes, sorted by prefix, then by the
/// width of their numbers, then by their numbers, and joined where they meet
/// (`n01,n1,n2,n10` is `n[1-2,01,10]`); repeated names stay.
pub fn ranged_sorted(hosts: &[String]) -> String {
    let mut ranges: Vec<HostRange<'_>> = Vec::new();
    for host in hosts {
        push_range(&mut ranges, HostRange::of(host));
    }
    ranges.sort_by_key(|r| (r.prefix, r.numbered.map(|(lo, _, width)| (width, lo))));
    let mut joined: Vec<HostRange<'_>> = Vec::new();
    for range in ranges {
        push_range(&mut joined, range);
    }
    print_ranges(&joined)
}

/// Appends `range`, joining it to the last one when its numbers continue the last's.
fn push_range<'a>(ranges: &mut Vec<HostRange<'a>>, range: HostRange<'a>) {
    if let Some(last) = ranges.last_mut()
        && last.prefix == range.prefix
        && let Some((lo, hi, last_width)) = &mut last.numbered
        && let Some((next_lo, next_hi, width)) = range.numbered
        && hi.checked_add(1) == Some(next_lo)
        && let Some(combined) = combined_width(*lo, *last_width, next_lo, width)
    {
        *hi = next_hi;
        *last_width = combined;
        return;
    }
    ranges.push(range);
}

/// Slurm's printed form: consecutive numbered ranges of one prefix share a bracket.
fn print_ranges(ranges: &[HostRange<'_>]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ranges.len() {
        let Some((first_lo, first_hi, _)) = ranges[i].numbered else {
            out.push(ranges[i].prefix.to_string());
            i += 1;
            continue;
        };
        let mut group = Vec::new();
        let mut j = i;
        while j < ranges.len() && ranges[j].prefix == ranges[i].prefix {
            let Some((lo, hi, width)) = ranges[j].numbered else {
                break;
            };
            group.push(if lo == hi {
                format!("{lo:0width$}")
            } else {
                format!("{lo:0width$}-{hi:0width$}")
            });
            j += 1;
        }
        if j == i + 1 && first_lo == first_hi {
            out.push(format!("{}{}", ranges[i].prefix, group[0]));
        } else {
            out.push(format!("{}[{}]", ranges[i].prefix, group.join(",")));
        }
        i = j;
    }
    out.join(",")
}

/// A run of names as Slurm's hostlist keeps it: a prefix and, for numbered names, the lowest
/// and highest number and the width they are printed with.
struct HostRange<'a> {
    prefix: &'a str,
    numbered: Option<(u64, u64, usize)>,
}

impl<'a> HostRange<'a> {
    /// One name as a range of its own.
    fn of(host: &'a str) -> HostRange<'a> {
        match split_number(host) {
            (prefix, Some((n, width))) => HostRange {
                prefix,
                numbered: Some((n, n, width)),
            },
            (_, None) => HostRange {
                prefix: host,
                numbered: None,
            },
        }
    }
}

/// A name's prefix and its trailing number with the number's digit count.
fn split_number(host: &str) -> (&str, Option<(u64, usize)>) {
    let digits = host
        .bytes()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let (prefix, num) = host.split_at(host.len() - digits);
    match num.parse::<u64>() {
        Ok(n) if digits > 0 && digits <= MAX_DIGITS => (prefix, Some((n, digits))),
        _ => (host, None),
    }
}

/// Zeros a number needs in front to fill `width`.
fn zero_padding(n: u64, width: usize) -> usize {
    width.saturating_sub(n.to_string().len())
}

/// Whether a range printed `width_a` wide may take in the next number printed `width_b` wide,
/// and the width they share (Slurm's `_width_equiv`): `9` then `10` join, `9` then `010` do not.
fn combined_width(a: u64, width_a: usize, b: u64, width_b: usize) -> Option<usize> {
    if width_a == width_b {
        return Some(width_a);
    }
    let a_changes = zero_padding(a, width_a) != zero_padding(a, width_b);
    let b_changes = zero_padding(b, width_b) != zero_padding(b, width_a);
    match (a_changes, b_changes) {
        (true, true) => None,
        (true, false) => Some(width_a),
        (false, _) => Some(width_b),
    }
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
    fn brackets_multiply_and_text_after_the_last_is_refused() {
        assert_eq!(
            expand("n[1-2]-ib[3-4]").unwrap(),
            ["n1-ib3", "n1-ib4", "n2-ib3", "n2-ib4"]
        );
        assert!(expand("n[1-3]x").is_err());
        // Too many names in all, however the brackets multiply, and no overflow on the way.
        assert!(expand("a[0-999999999999999999]b[1-60000]").is_err());
        assert!(expand("a[1-300]b[1-300]").is_err());
        assert_eq!(expand("a[1-200]b[1-200]").unwrap().len(), 40_000);
        assert_eq!(reversed_range("n[1-2]-ib[4-3]"), Some("4-3"));
        assert_eq!(reversed_range("n[1-2]"), None);
    }

    #[test]
    fn ranged_keeps_the_order_given_and_sorted_orders_by_width() {
        // Observed with `scontrol show hostlist|hostlistsorted` on Slurm 22.05.
        let names = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        for (given, in_order, sorted) in [
            ("n9,n10,n08,n09", "n[9-10,08-09]", "n[9-10,08-09]"),
            ("n10,n9", "n[10,9]", "n[9-10]"),
            ("n2,n1,n1", "n[2,1,1]", "n[1,1-2]"),
            ("n9,n010", "n[9,010]", "n[9,010]"),
            ("n1,n1", "n[1,1]", "n[1,1]"),
            ("a1,b1,a2", "a1,b1,a2", "a[1-2],b1"),
            ("b2,a1,b1", "b2,a1,b1", "a1,b[1-2]"),
            (
                "n01,n1,n2,n001,n10,n9",
                "n[01,1-2,001,10,9]",
                "n[1-2,9,01,10,001]",
            ),
            ("node,node1", "node,node1", "node,node1"),
            (
                "n1-ib3,n1-ib4,n2-ib3",
                "n1-ib[3-4],n2-ib3",
                "n1-ib[3-4],n2-ib3",
            ),
        ] {
            assert_eq!(ranged(&names(given)), in_order, "{given}");
            assert_eq!(ranged_sorted(&names(given)), sorted, "{given}");
        }
    }

    #[test]
    fn compresses_back() {
        let hosts = expand("node[01-04,07]").unwrap();
        assert_eq!(compress(&hosts), "node[01-04,07]");
        assert_eq!(compress(&["localhost".to_string()]), "localhost");
    }
}
