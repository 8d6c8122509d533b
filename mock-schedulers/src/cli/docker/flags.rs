//! The Docker CLI's option parser: spf13/pflag as docker/cli 20.10.24 vendors it
//! (`vendor/github.com/spf13/pflag/flag.go`), with its error texts. Long options take their
//! value as `--opt=value` or `--opt value`, boolean ones only `--opt` or `--opt=false`;
//! short options cluster (`-it`), carry their value (`-m512m`, `-m=512m`) or take the next
//! word; `--` ends the options; with `interspersed` false (`docker run`, `create`) parsing
//! stops at the first word that is no option (the image). A value is checked when it is
//! set, in command-line order, as pflag's `Value.Set` does.

/// A validator: `Err` carries the reason pflag appends (`invalid size: 'x'`).
pub type Check = fn(&str) -> Result<(), String>;

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The long name.
    pub long: &'static str,
    /// The shorthand.
    pub short: Option<char>,
    /// Whether it is boolean (`NoOptDefVal` "true").
    pub boolean: bool,
    /// Checks a value when it is set.
    pub check: Option<Check>,
}

/// A value option.
pub const fn val(long: &'static str, short: Option<char>) -> Flag {
    Flag {
        long,
        short,
        boolean: false,
        check: None,
    }
}

/// A value option with a check.
pub const fn checked(long: &'static str, short: Option<char>, check: Check) -> Flag {
    Flag {
        long,
        short,
        boolean: false,
        check: Some(check),
    }
}

/// A boolean option.
pub const fn flag(long: &'static str, short: Option<char>) -> Flag {
    Flag {
        long,
        short,
        boolean: true,
        check: Some(parse_bool_check),
    }
}

/// The parsed words: options by long name with their values in order (`"true"`/`"false"`
/// for boolean ones), and the operands.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// `(long name, value)` in command-line order.
    pub opts: Vec<(&'static str, String)>,
    /// Operands.
    pub args: Vec<String>,
    /// `--help` was given (`-h` too where no option has that shorthand).
    pub help: bool,
}

impl Parsed {
    /// The last value of an option.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list option, in order.
    pub fn values(&self, long: &str) -> Vec<String> {
        self.opts
            .iter()
            .filter(|(l, _)| *l == long)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean option's value (its default when absent).
    pub fn bool(&self, long: &str, default: bool) -> bool {
        self.value(long)
            .map_or(default, |v| parse_bool(v).unwrap_or(default))
    }

    /// Whether an option was given.
    pub fn changed(&self, long: &str) -> bool {
        self.opts.iter().any(|(l, _)| *l == long)
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_bool_check(v: &str) -> Result<(), String> {
    parse_bool(v)
        .map(|_| ())
        .ok_or_else(|| format!("strconv.ParseBool: parsing {v:?}: invalid syntax"))
}

/// Go's `strconv.ParseInt` check.
pub fn int_check(v: &str) -> Result<(), String> {
    v.parse::<i64>()
        .map(|_| ())
        .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
}

/// Parses `args` against `spec`; the error is pflag's line.
pub fn parse(args: &[String], spec: &[Flag], interspersed: bool) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    let set = |out: &mut Parsed, f: &Flag, value: String| -> Result<(), String> {
        if let Some(check) = f.check
            && let Err(reason) = check(&value)
        {
            let name = match f.short {
                Some(s) => format!("-{s}, --{}", f.long),
                None => format!("--{}", f.long),
            };
            return Err(format!(
                "invalid argument {value:?} for {name:?} flag: {reason}"
            ));
        }
        let value = if f.boolean {
            parse_bool(&value).unwrap_or(true).to_string()
        } else {
            value
        };
        out.opts.push((f.long, value));
        Ok(())
    };
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s.len() < 2 || !s.starts_with('-') {
            out.args.push(s.clone());
            if !interspersed {
                out.args.extend(args[i..].iter().cloned());
                return Ok(out);
            }
            continue;
        }
        if let Some(body) = s.strip_prefix("--") {
            if body.is_empty() {
                out.args.extend(args[i..].iter().cloned());
                return Ok(out);
            }
            if body.starts_with(['-', '=']) {
                return Err(format!("bad flag syntax: {s}"));
            }
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(f) = spec.iter().find(|f| f.long == name) else {
                if name == "help" {
                    out.help = true;
                    continue;
                }
                return Err(format!("unknown flag: --{name}"));
            };
            let value = match inline {
                Some(v) => v,
                None if f.boolean => "true".into(),
                None => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => return Err(format!("flag needs an argument: {s}")),
                },
            };
            set(&mut out, f, value)?;
            continue;
        }
        let mut shorthands = &s[1..];
        while let Some(c) = shorthands.chars().next() {
            let rest = &shorthands[c.len_utf8()..];
            let Some(f) = spec.iter().find(|f| f.short == Some(c)) else {
                if c == 'h' {
                    out.help = true;
                    shorthands = rest;
                    continue;
                }
                return Err(format!("unknown shorthand flag: '{c}' in -{shorthands}"));
            };
            let value;
            if let Some(v) = rest.strip_prefix('=').filter(|_| rest.len() > 1) {
                value = v.to_string();
                shorthands = "";
            } else if f.boolean {
                value = "true".into();
                shorthands = rest;
            } else if !rest.is_empty() {
                value = rest.to_string();
                shorthands = "";
            } else if let Some(v) = args.get(i) {
                i += 1;
                value = v.clone();
                shorthands = "";
            } else {
                return Err(format!("flag needs an argument: '{c}' in -{shorthands}"));
            }
            set(&mut out, f, value)?;
        }
    }
    Ok(out)
}

/// go-units `RAMInBytes`: `512m`, `4G`, `1.5g`, `100kb`, `2MiB` (binary multiples); the
/// error is its `invalid size: 'x'`.
pub fn ram_in_bytes(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: '{text}'");
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, mut unit) = text.split_at(digits_end);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    unit = unit.strip_prefix(' ').unwrap_or(unit);
    let mut chars = unit.chars();
    let mult: f64 = match chars.next() {
        None => 1.0,
        Some(c) => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1024f64,
                'm' => 1024f64.powi(2),
                'g' => 1024f64.powi(3),
                't' => 1024f64.powi(4),
                'p' => 1024f64.powi(5),
                'b' if chars.as_str().is_empty() => return Ok(value as i64),
                _ => return Err(bad()),
            };
            let tail = chars.as_str().to_ascii_lowercase();
            if !matches!(tail.as_str(), "" | "b" | "i" | "ib") {
                return Err(bad());
            }
            m
        }
    };
    Ok((value * mult) as i64)
}

/// `opts.MemBytes.Set`.
pub fn mem_check(v: &str) -> Result<(), String> {
    ram_in_bytes(v).map(|_| ())
}

/// `opts.MemSwapBytes.Set`: `-1` is unlimited.
pub fn swap_check(v: &str) -> Result<(), String> {
    if v == "-1" {
        return Ok(());
    }
    mem_check(v)
}

/// `opts.NanoCPUs.Set`: a decimal number of CPUs, in nano CPUs.
pub fn nano_cpus(v: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {v} as a rational number");
    let f: f64 = v.parse().map_err(|_| bad())?;
    if !f.is_finite() {
        return Err(bad());
    }
    let nano = f * 1e9;
    if nano.fract() != 0.0 && (nano - nano.round()).abs() > 1e-6 {
        return Err("value is too precise".into());
    }
    Ok(nano.round() as i64)
}

fn nano_cpus_check(v: &str) -> Result<(), String> {
    nano_cpus(v).map(|_| ())
}

/// The `--cpus` check.
pub const CPUS_CHECK: Check = nano_cpus_check;

/// `opts.FilterOpt.Set`: `name=value`.
pub fn filter_check(v: &str) -> Result<(), String> {
    if v.contains('=') {
        Ok(())
    } else {
        Err("bad format of filter (expected name=value)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Flag] = &[
        flag("interactive", Some('i')),
        flag("tty", Some('t')),
        flag("rm", None),
        val("name", None),
        checked("memory", Some('m'), mem_check),
        val("env", Some('e')),
    ];

    fn p(words: &[&str]) -> Result<Parsed, String> {
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        parse(&words, SPEC, false)
    }

    #[test]
    fn pflag_forms_and_errors() {
        let got = p(&[
            "-it", "--rm", "--name=x", "-m512m", "-e", "A=1", "alpine", "-x",
        ])
        .unwrap();
        assert_eq!(got.value("name"), Some("x"));
        assert_eq!(got.value("memory"), Some("512m"));
        assert!(got.bool("interactive", false) && got.bool("tty", false));
        assert_eq!(got.args, vec!["alpine", "-x"]);
        assert!(!p(&["--rm=false", "a"]).unwrap().bool("rm", true));
        assert_eq!(p(&["--x"]).unwrap_err(), "unknown flag: --x");
        assert_eq!(
            p(&["-iz"]).unwrap_err(),
            "unknown shorthand flag: 'z' in -z"
        );
        assert_eq!(
            p(&["--name"]).unwrap_err(),
            "flag needs an argument: --name"
        );
        assert_eq!(p(&["-m"]).unwrap_err(), "flag needs an argument: 'm' in -m");
        assert_eq!(
            p(&["-m", "lots"]).unwrap_err(),
            r#"invalid argument "lots" for "-m, --memory" flag: invalid size: 'lots'"#
        );
        assert_eq!(p(&["---x"]).unwrap_err(), "bad flag syntax: ---x");
    }

    #[test]
    fn ram_sizes_as_go_units_reads_them() {
        assert_eq!(ram_in_bytes("512m"), Ok(512 << 20));
        assert_eq!(ram_in_bytes("4G"), Ok(4 << 30));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("2MiB"), Ok(2 << 20));
        assert_eq!(ram_in_bytes("1.5k"), Ok(1536));
        assert_eq!(ram_in_bytes("10 MB"), Ok(10 << 20));
        assert!(ram_in_bytes("x").is_err());
        assert!(ram_in_bytes("4X").is_err());
        assert_eq!(nano_cpus("1.5"), Ok(1_500_000_000));
    }
}
