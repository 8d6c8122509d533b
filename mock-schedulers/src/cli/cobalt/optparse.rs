//! Python 2's `optparse` as Cobalt's `Cobalt.arg_parser.ArgParse` uses it: parsing stops at
//! the first operand, long options may be abbreviated to a unique prefix, `int` values accept
//! Python's prefixes, and errors carry optparse's exact words.

use std::collections::VecDeque;

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No value (`store_true`, or a callback without a type).
    Flag,
    /// A string.
    Str,
    /// An integer (`type='int'`).
    Int,
}

/// One option: where it stores, its spellings (`-t`, `--time`) and its kind.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// The destination (`dest=`), or the option's own name when it has none.
    pub dest: &'static str,
    /// Spellings, short (`-t`) and long (`--time`).
    pub names: &'static [&'static str],
    /// What it takes.
    pub kind: Kind,
}

/// Shorthand constructor.
pub const fn opt(dest: &'static str, names: &'static [&'static str], kind: Kind) -> Opt {
    Opt { dest, names, kind }
}

/// One option found on the command line, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its destination.
    pub dest: &'static str,
    /// The option as optparse names it in messages (`-t`, or the full long name).
    pub name: String,
    /// Its value (the text for `Str`, the decimal number for `Int`).
    pub value: Option<String>,
    /// The parsed number of an `Int` option.
    pub number: Option<i64>,
}

/// The outcome: the options found before an error (optparse runs each option's callback as
/// it meets it, so they count), the operands, and optparse's error text if parsing stopped.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Options in command-line order.
    pub found: Vec<Found>,
    /// Operands (everything from the first operand on).
    pub args: Vec<String>,
    /// optparse's error message (`no such option: -x`), printed after the usage.
    pub error: Option<String>,
}

/// Python's `repr` of a string, as `%r` prints it.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            // Python 2 strings are bytes: anything not printable ASCII is `\xNN` per byte.
            c if (c as u32) < 0x20 || c as u32 >= 0x7f => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python 2 `int(text, radix)`: surrounding blanks and a sign allowed.
fn py_int(text: &str, radix: u32) -> Option<i64> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i64::from_str_radix(digits, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// optparse's `_parse_num(value, int)`: `0x` hexadecimal, `0b` binary, a leading `0` octal.
pub fn parse_int(value: &str) -> Option<i64> {
    let lower = value.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("0x") {
        py_int(rest, 16)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        py_int(rest, 2)
    } else if value.starts_with('0') && value.len() > 1 {
        py_int(value, 8)
    } else {
        py_int(value, 10)
    }
}

fn find<'a>(spec: &'a [Opt], name: &str) -> Option<&'a Opt> {
    spec.iter().find(|o| o.names.contains(&name))
}

/// optparse's `_match_abbrev` over the long options.
fn match_long(spec: &[Opt], given: &str) -> Result<String, String> {
    let mut longs: Vec<&str> = spec
        .iter()
        .flat_map(|o| o.names.iter().copied())
        .filter(|n| n.starts_with("--"))
        .collect();
    if longs.contains(&given) {
        return Ok(given.to_string());
    }
    longs.retain(|n| n.starts_with(given));
    longs.sort_unstable();
    longs.dedup();
    match longs.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(format!("no such option: {given}")),
        many => Err(format!("ambiguous option: {given} ({}?)", many.join(", "))),
    }
}

fn take(o: &Opt, name: &str, value: Option<String>) -> Result<Found, String> {
    let number = match (o.kind, &value) {
        (Kind::Int, Some(v)) => Some(
            parse_int(v)
                .ok_or_else(|| format!("option {name}: invalid integer value: {}", py_repr(v)))?,
        ),
        _ => None,
    };
    Ok(Found {
        dest: o.dest,
        name: name.to_string(),
        value,
        number,
    })
}

/// Parses `args` (without the program name) against `spec`, stopping at the first operand.
pub fn parse(args: &[String], spec: &[Opt]) -> Parsed {
    let mut out = Parsed::default();
    let mut rargs: VecDeque<String> = args.iter().cloned().collect();
    while let Some(arg) = rargs.front().cloned() {
        if arg == "--" {
            rargs.pop_front();
            break;
        }
        let step = if arg.starts_with("--") {
            rargs.pop_front();
            long(spec, &arg, &mut rargs)
        } else if arg.starts_with('-') && arg.len() > 1 {
            rargs.pop_front();
            short(spec, &arg, &mut rargs)
        } else {
            break;
        };
        match step {
            Ok(found) => out.found.extend(found),
            Err((found, error)) => {
                out.found.extend(found);
                out.error = Some(error);
                break;
            }
        }
    }
    out.args = rargs.into_iter().collect();
    out
}

type Step = Result<Vec<Found>, (Vec<Found>, String)>;

fn long(spec: &[Opt], arg: &str, rargs: &mut VecDeque<String>) -> Step {
    let (given, explicit) = match arg.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (arg, None),
    };
    let name = match_long(spec, given).map_err(|e| (Vec::new(), e))?;
    let Some(o) = find(spec, &name) else {
        return Err((Vec::new(), format!("no such option: {given}")));
    };
    let value = match (o.kind, explicit) {
        (Kind::Flag, Some(_)) => {
            return Err((Vec::new(), format!("{name} option does not take a value")));
        }
        (Kind::Flag, None) => None,
        (_, Some(v)) => Some(v),
        (_, None) => match rargs.pop_front() {
            Some(v) => Some(v),
            None => return Err((Vec::new(), format!("{name} option requires an argument"))),
        },
    };
    take(o, &name, value)
        .map(|f| vec![f])
        .map_err(|e| (Vec::new(), e))
}

fn short(spec: &[Opt], arg: &str, rargs: &mut VecDeque<String>) -> Step {
    let mut found = Vec::new();
    let body = &arg[1..];
    for (i, c) in body.char_indices() {
        let name = format!("-{c}");
        let Some(o) = find(spec, &name) else {
            return Err((found, format!("no such option: {name}")));
        };
        if o.kind == Kind::Flag {
            match take(o, &name, None) {
                Ok(f) => found.push(f),
                Err(e) => return Err((found, e)),
            }
            continue;
        }
        let rest = &body[i + c.len_utf8()..];
        let value = if !rest.is_empty() {
            rest.to_string()
        } else {
            match rargs.pop_front() {
                Some(v) => v,
                None => return Err((found, format!("{name} option requires an argument"))),
            }
        };
        match take(o, &name, Some(value)) {
            Ok(f) => found.push(f),
            Err(e) => return Err((found, e)),
        }
        return Ok(found);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Opt] = &[
        opt("walltime", &["-t", "--time"], Kind::Str),
        opt("nodes", &["-n", "--nodecount"], Kind::Int),
        opt("user_hold", &["-h", "--held"], Kind::Flag),
        opt("envs", &["--env"], Kind::Str),
        opt("cobalt_log_file", &["--debuglog"], Kind::Str),
        opt("debug", &["-d", "--debug"], Kind::Flag),
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stops_at_the_first_operand_and_joins_short_values() {
        let p = parse(&args(&["-ht5", "--node=2", "job.sh", "-n", "3"]), SPEC);
        assert_eq!(p.error, None);
        assert_eq!(p.args, args(&["job.sh", "-n", "3"]));
        let got: Vec<(&str, Option<&str>)> = p
            .found
            .iter()
            .map(|f| (f.dest, f.value.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("user_hold", None),
                ("walltime", Some("5")),
                ("nodes", Some("2"))
            ]
        );
        assert_eq!(p.found[2].name, "--nodecount");
    }

    #[test]
    fn errors_use_optparse_words() {
        let e = |a: &[&str]| parse(&args(a), SPEC).error.unwrap_or_default();
        assert_eq!(e(&["-x"]), "no such option: -x");
        assert_eq!(e(&["--bogus"]), "no such option: --bogus");
        assert_eq!(e(&["--d"]), "ambiguous option: --d (--debug, --debuglog?)");
        assert_eq!(e(&["-t"]), "-t option requires an argument");
        assert_eq!(e(&["--time"]), "--time option requires an argument");
        assert_eq!(e(&["--held=1"]), "--held option does not take a value");
        assert_eq!(e(&["-n", "x"]), "option -n: invalid integer value: 'x'");
    }

    #[test]
    fn integers_take_python_prefixes() {
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int(" 7 "), Some(7));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("08"), None);
        assert_eq!(parse_int("1.5"), None);
    }

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\nb"), "'a\\nb'");
        assert_eq!(py_repr("'\""), "'\\'\"'");
        assert_eq!(py_repr("é"), "'\\xc3\\xa9'");
    }
}
