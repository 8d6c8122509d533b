//! PBS resource requests (`qsub -l`): the list syntax (`src/lib/Libcmds/set_resource.c`), the
//! value types (`src/lib/Libattr/attr_fn_time.c`, `attr_fn_size.c`), `select` chunks and what
//! they ask of the simulated cluster.

/// Resources the server knows (`src/lib/Libattr/master_resc_def_all.xml`); any other name is
/// refused with `Unknown resource`.
pub const KNOWN: &[&str] = &[
    "cput",
    "mem",
    "walltime",
    "soft_walltime",
    "min_walltime",
    "max_walltime",
    "ncpus",
    "naccelerators",
    "select",
    "place",
    "nodes",
    "nodect",
    "arch",
    "nchunk",
    "vntype",
    "mpiprocs",
    "ompthreads",
    "cpupercent",
    "energy",
    "file",
    "pmem",
    "vmem",
    "pvmem",
    "nice",
    "pcput",
    "nodemask",
    "hpm",
    "ssinodes",
    "host",
    "vnode",
    "resc",
    "software",
    "site",
    "start_time",
    "pe_mask",
    "partition",
    "aoe",
    "eoe",
    "preempt_targets",
    "accelerator",
    "accelerator_model",
    "accelerator_memory",
    "accelerator_group",
    "pstate",
    "hbmem",
    "pgov",
    "pcap_node",
    "pcap_accelerator",
];

/// Resources whose values are durations.
const TIMES: &[&str] = &[
    "cput",
    "pcput",
    "walltime",
    "soft_walltime",
    "min_walltime",
    "max_walltime",
];
/// Resources whose values are sizes.
const SIZES: &[&str] = &[
    "mem",
    "vmem",
    "pmem",
    "pvmem",
    "file",
    "accelerator_memory",
    "hbmem",
];
/// Resources whose values are integers.
const LONGS: &[&str] = &[
    "ncpus",
    "mpiprocs",
    "ompthreads",
    "nodect",
    "naccelerators",
    "nice",
    "nchunk",
    "cpupercent",
];

/// Splits a `-l` value into `(name, value)` pairs (`set_resources`): names end at `=` or `,`,
/// values may be quoted, and may not hold unquoted white space. `Err` for a malformed list.
#[allow(clippy::result_unit_err)]
pub fn parse_list(text: &str) -> Result<Vec<(String, String)>, ()> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != ',' {
            i += 1;
        }
        let name: String = chars[start..i]
            .iter()
            .take_while(|c| !c.is_whitespace())
            .collect();
        if name.is_empty() {
            return Err(());
        }
        let mut value = String::new();
        if chars.get(i) == Some(&'=') {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let mut quote = None;
            while i < chars.len() {
                let c = chars[i];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => value.push(c),
                    None if c == '"' || c == '\'' => quote = Some(c),
                    None if c == ',' => break,
                    None if c.is_whitespace() => return Err(()),
                    None => value.push(c),
                }
                i += 1;
            }
            if quote.is_some() {
                return Err(());
            }
        }
        if chars.get(i) == Some(&',') {
            i += 1;
        }
        out.push((name, value));
    }
    Ok(out)
}

/// A duration as `decode_time` reads it: `[[H:]M:]S[.frac]`, rounded to the second. `None`
/// for anything else.
pub fn parse_time(text: &str) -> Option<u64> {
    if text.is_empty() {
        return Some(0);
    }
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let parts: Vec<&str> = whole.split(':').collect();
    if parts.len() > 3 {
        return None;
    }
    let mut secs: u64 = 0;
    for (n, part) in parts.iter().enumerate() {
        let last = n + 1 == parts.len();
        // A colon must follow a digit; the last part may be empty ("1:" is 60 seconds).
        if part.is_empty() && !last {
            return None;
        }
        if !part.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let v: u64 = if part.is_empty() {
            0
        } else {
            part.parse().ok()?
        };
        secs = secs.checked_mul(60)?.checked_add(v)?;
    }
    if let Some(f) = frac {
        if whole.is_empty() || !whole.ends_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        if !f.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let ms: String = f.chars().chain("000".chars()).take(3).collect();
        if ms.parse::<u32>().ok()? >= 500 {
            secs = secs.checked_add(1)?;
        }
    }
    (secs <= i64::MAX as u64).then_some(secs)
}

/// `HH:MM:SS` as `encode_time` writes a duration (hours are not limited).
pub fn format_time(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// A size as `to_size` reads it: digits, then `k m g t p` and `b` or `w` (words of 8 bytes).
/// Returns the size in bytes and the text PBS shows (`from_size`: `96mb`, `1000b`).
pub fn parse_size(text: &str) -> Option<(u64, String)> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let num: u64 = digits.parse().ok()?;
    let rest = text[digits.len()..].to_ascii_lowercase();
    let mut chars = rest.chars();
    let (shift, unit_char) = match chars.next() {
        None => (0, None),
        Some('k') => (10, None),
        Some('m') => (20, None),
        Some('g') => (30, None),
        Some('t') => (40, None),
        Some('p') => (50, None),
        Some(c @ ('b' | 'w')) => (0, Some(c)),
        Some(_) => return None,
    };
    let unit = match (unit_char, chars.next()) {
        (Some(c), None) => c,
        (Some(_), Some(_)) => return None,
        (None, None) => 'b',
        (None, Some(c @ ('b' | 'w'))) => c,
        (None, Some(_)) => return None,
    };
    if chars.next().is_some() {
        return None;
    }
    let word = if unit == 'w' { 8 } else { 1 };
    let bytes = num
        .checked_mul(word)?
        .checked_mul(1u64.checked_shl(shift)?)?;
    let prefix = match shift {
        10 => "k",
        20 => "m",
        30 => "g",
        40 => "t",
        50 => "p",
        _ => "",
    };
    Some((bytes, format!("{num}{prefix}{unit}")))
}

/// Whether a value fits its resource's type (`verify_value_resc`).
pub fn valid_value(name: &str, value: &str) -> bool {
    if TIMES.contains(&name) {
        parse_time(value).is_some()
    } else if SIZES.contains(&name) {
        parse_size(value).is_some()
    } else if LONGS.contains(&name) {
        let v = value.strip_prefix(['-', '+']).unwrap_or(value);
        !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) && value.parse::<i64>().is_ok()
    } else if name == "place" {
        !value.is_empty()
            && value.split(':').all(|w| {
                matches!(
                    w,
                    "free" | "pack" | "scatter" | "vscatter" | "excl" | "shared" | "exclhost"
                ) || w.starts_with("group=")
            })
    } else {
        true
    }
}

/// One `select` chunk: how many, and its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Repetitions.
    pub count: u32,
    /// `(name, value)` in order.
    pub resources: Vec<(String, String)>,
}

impl Chunk {
    /// The chunk's `ncpus` (1 when it names none).
    pub fn ncpus(&self) -> u32 {
        self.value("ncpus")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// The chunk's memory in bytes, if it names any.
    pub fn mem(&self) -> Option<u64> {
        self.value("mem").and_then(parse_size).map(|(b, _)| b)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.resources
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a select statement is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// Not a select statement.
    Syntax,
    /// A resource the server does not know (`Unknown resource: <name>`).
    Unknown(String),
    /// A value of the wrong type for its resource.
    Value,
}

/// Parses `select=[N:]res=val[:res=val]...[+...]` (`parse_plus_spec`, `parse_chunk`).
pub fn parse_select(text: &str) -> Result<Vec<Chunk>, SelectError> {
    let mut chunks = Vec::new();
    for spec in text.split('+') {
        let mut parts = spec.split(':').peekable();
        let mut count = 1;
        if let Some(first) = parts.peek()
            && !first.contains('=')
        {
            count = first
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(SelectError::Syntax)?;
            parts.next();
        }
        let mut resources = Vec::new();
        for part in parts {
            let (name, value) = part.split_once('=').ok_or(SelectError::Syntax)?;
            if name.is_empty() || value.is_empty() {
                return Err(SelectError::Syntax);
            }
            if !KNOWN.contains(&name) {
                return Err(SelectError::Unknown(name.to_string()));
            }
            if !valid_value(name, value) {
                return Err(SelectError::Value);
            }
            resources.push((name.to_string(), value.to_string()));
        }
        chunks.push(Chunk { count, resources });
    }
    Ok(chunks)
}

/// The chunks an old-style `nodes=N[:ppn=P]` or `nodes=host+host` request stands for.
pub fn nodes_to_chunks(text: &str) -> Vec<Chunk> {
    text.split('+')
        .map(|spec| {
            let mut parts = spec.split(':');
            let count = parts
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(1);
            let mut resources = Vec::new();
            for part in parts {
                if let Some(ppn) = part.strip_prefix("ppn=") {
                    resources.push(("ncpus".to_string(), ppn.to_string()));
                }
            }
            Chunk { count, resources }
        })
        .collect()
}

/// The select statement as the server writes it back (`1:ncpus=2:mem=1gb+...`).
pub fn format_select(chunks: &[Chunk]) -> String {
    chunks
        .iter()
        .map(|c| {
            let mut s = c.count.to_string();
            for (n, v) in &c.resources {
                s.push(':');
                s.push_str(n);
                s.push('=');
                s.push_str(v);
            }
            s
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// A size in bytes as PBS shows a sum of sizes: the largest unit that divides it evenly.
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "tb"), (30, "gb"), (20, "mb"), (10, "kb")] {
        let size = 1u64 << shift;
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}b")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_like_set_resources() {
        assert_eq!(
            parse_list("walltime=1:00:00,select=1:ncpus=2:mem=1gb").unwrap(),
            vec![
                ("walltime".to_string(), "1:00:00".to_string()),
                ("select".to_string(), "1:ncpus=2:mem=1gb".to_string())
            ]
        );
        assert_eq!(
            parse_list("software='a b'").unwrap(),
            vec![("software".to_string(), "a b".to_string())]
        );
        assert!(parse_list("=1").is_err());
        assert!(parse_list("mem=1 gb").is_err());
        assert!(parse_list("software='a").is_err());
    }

    #[test]
    fn times_decode_like_decode_time() {
        assert_eq!(parse_time("0:2:0"), Some(120));
        assert_eq!(parse_time("01:00:00"), Some(3600));
        assert_eq!(parse_time("90"), Some(90));
        assert_eq!(parse_time("1:"), Some(60));
        assert_eq!(parse_time("10.6"), Some(11));
        assert_eq!(parse_time("1:2:3:4"), None);
        assert_eq!(parse_time(":5"), None);
        assert_eq!(parse_time("abc"), None);
        assert_eq!(format_time(3723), "01:02:03");
        assert_eq!(format_time(360_000), "100:00:00");
    }

    #[test]
    fn sizes_decode_like_to_size() {
        assert_eq!(parse_size("96MB"), Some((96 << 20, "96mb".to_string())));
        assert_eq!(parse_size("1000"), Some((1000, "1000b".to_string())));
        assert_eq!(parse_size("2gw"), Some((16 << 30, "2gw".to_string())));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size("gb"), None);
        assert_eq!(parse_size("1bb"), None);
        assert_eq!(format_bytes(2 << 30), "2gb");
        assert_eq!(format_bytes(1536 << 20), "1536mb");
    }

    #[test]
    fn select_chunks_parse() {
        let c = parse_select("2:ncpus=4:mem=1gb+ncpus=1").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].count, c[0].ncpus(), c[0].mem()),
            (2, 4, Some(1 << 30))
        );
        assert_eq!((c[1].count, c[1].ncpus()), (1, 1));
        assert_eq!(format_select(&c), "2:ncpus=4:mem=1gb+1:ncpus=1");
        assert_eq!(
            parse_select("1:gpus=1"),
            Err(SelectError::Unknown("gpus".to_string()))
        );
        assert_eq!(parse_select("1:ncpus=x"), Err(SelectError::Value));
        assert_eq!(parse_select("0:ncpus=1"), Err(SelectError::Syntax));
    }
}
