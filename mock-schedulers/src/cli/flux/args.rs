//! Option parsing as Flux's Python commands do it: `argparse` with Flux's defaults
//! (`src/bindings/python/flux/cli/argparse.py` `FluxArgumentParser`): no abbreviated long
//! options, `--opt=value` or `--opt value`, clustered short options (`-vn4`), and for the
//! submission commands (`posix=True`) parsing stops at the first operand. Errors are
//! argparse's: the usage line and `<prog>: error: <message>` on stderr, exit 2.

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Nothing (`store_true`, `count`).
    Flag,
    /// One value.
    Value,
    /// An optional value (`nargs="?"`): the next word unless it looks like an option.
    Optional,
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// Short letter.
    pub short: Option<char>,
    /// Long name without dashes; options are reported by this name.
    pub long: &'static str,
    /// What it takes.
    pub takes: Takes,
    /// Other long names (argparse `hidden_aliases`).
    pub aliases: &'static [&'static str],
}

/// Shorthand constructor.
pub const fn opt(short: Option<char>, long: &'static str, takes: Takes) -> Opt {
    Opt {
        short,
        long,
        takes,
        aliases: &[],
    }
}

/// Shorthand constructor with hidden aliases.
pub const fn opt_alias(
    short: Option<char>,
    long: &'static str,
    takes: Takes,
    aliases: &'static [&'static str],
) -> Opt {
    Opt {
        short,
        long,
        takes,
        aliases,
    }
}

pub use crate::cli::getopt::Parsed;

fn display_name(o: &Opt) -> String {
    match o.short {
        Some(c) => format!("-{c}/--{}", o.long),
        None => format!("--{}", o.long),
    }
}

fn is_negative_number(a: &str) -> bool {
    let Some(rest) = a.strip_prefix('-') else {
        return false;
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match frac {
        None => digits(int),
        Some(f) => (int.is_empty() || digits(int)) && digits(f),
    }
}

fn looks_like_option(a: &str) -> bool {
    a.len() > 1 && a.starts_with('-') && !is_negative_number(a)
}

/// Parses `args` (without the program name) against `spec`. `Err` is argparse's message
/// (without the usage line).
pub fn parse(args: &[String], spec: &[Opt], posix: bool) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut unrecognized: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            if posix {
                out.operands.extend(args[i..].iter().cloned());
            } else {
                out.operands.extend(args[i + 1..].iter().cloned());
            }
            break;
        }
        if !looks_like_option(a) {
            if posix {
                out.operands.extend(args[i..].iter().cloned());
                break;
            }
            out.operands.push(a.clone());
            i += 1;
            continue;
        }
        i += 1;
        if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(o) = spec
                .iter()
                .find(|o| o.long == name || o.aliases.contains(&name))
            else {
                unrecognized.push(a.clone());
                continue;
            };
            match (o.takes, inline) {
                (Takes::Flag, Some(v)) => {
                    return Err(format!(
                        "argument {}: ignored explicit argument '{v}'",
                        display_name(o)
                    ));
                }
                (Takes::Flag, None) => out.opts.push((o.long, None)),
                (_, Some(v)) => out.opts.push((o.long, Some(v))),
                (Takes::Value, None) => match args.get(i) {
                    Some(v) if !looks_like_option(v) => {
                        out.opts.push((o.long, Some(v.clone())));
                        i += 1;
                    }
                    _ => {
                        return Err(format!(
                            "argument {}: expected one argument",
                            display_name(o)
                        ));
                    }
                },
                (Takes::Optional, None) => match args.get(i) {
                    Some(v) if !looks_like_option(v) && !posix => {
                        out.opts.push((o.long, Some(v.clone())));
                        i += 1;
                    }
                    _ => out.opts.push((o.long, None)),
                },
            }
            continue;
        }
        // A cluster of short options: `-v`, `-vv`, `-n4`, `-vn4`, `-n=4`.
        let chars: Vec<char> = a[1..].chars().collect();
        let Some(first) = spec.iter().find(|o| o.short == Some(chars[0])) else {
            unrecognized.push(a.clone());
            continue;
        };
        let mut j = 0;
        let mut current = first;
        loop {
            let rest: String = chars[j + 1..].iter().collect();
            match current.takes {
                Takes::Flag => {
                    out.opts.push((current.long, None));
                    if rest.is_empty() {
                        break;
                    }
                    match spec.iter().find(|o| o.short == Some(chars[j + 1])) {
                        Some(next) => {
                            current = next;
                            j += 1;
                        }
                        None => {
                            return Err(format!(
                                "argument {}: ignored explicit argument '{rest}'",
                                display_name(current)
                            ));
                        }
                    }
                }
                Takes::Value | Takes::Optional => {
                    if !rest.is_empty() {
                        let v = rest.strip_prefix('=').unwrap_or(&rest).to_string();
                        out.opts.push((current.long, Some(v)));
                    } else {
                        match args.get(i) {
                            Some(v) if !looks_like_option(v) => {
                                out.opts.push((current.long, Some(v.clone())));
                                i += 1;
                            }
                            _ if current.takes == Takes::Optional => {
                                out.opts.push((current.long, None))
                            }
                            _ => {
                                return Err(format!(
                                    "argument {}: expected one argument",
                                    display_name(current)
                                ));
                            }
                        }
                    }
                    break;
                }
            }
        }
    }
    if !unrecognized.is_empty() {
        return Err(format!(
            "unrecognized arguments: {}",
            unrecognized.join(" ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Opt] = &[
        opt(Some('n'), "ntasks", Takes::Value),
        opt(Some('v'), "verbose", Takes::Flag),
        opt(None, "bg", Takes::Flag),
        opt_alias(None, "dry-run", Takes::Flag, &["dry"]),
        opt(None, "output", Takes::Value),
    ];

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn posix_parsing_stops_at_the_command() {
        let p = parse(&words("-vn4 --output=x cmd -n 5"), SPEC, true).unwrap_or_default();
        assert_eq!(
            p.opts,
            vec![
                ("verbose", None),
                ("ntasks", Some("4".into())),
                ("output", Some("x".into()))
            ]
        );
        assert_eq!(p.operands, words("cmd -n 5"));
        let p = parse(&words("-n 2 -- cmd"), SPEC, true).unwrap_or_default();
        assert_eq!(p.operands, words("-- cmd"));
        let p = parse(&words("--dry"), SPEC, true).unwrap_or_default();
        assert!(p.has("dry-run"));
    }

    #[test]
    fn errors_are_argparse_s() {
        assert_eq!(
            parse(&words("--ntask 3 x"), SPEC, true).err(),
            Some("unrecognized arguments: --ntask".into())
        );
        assert_eq!(
            parse(&words("-n"), SPEC, true).err(),
            Some("argument -n/--ntasks: expected one argument".into())
        );
        assert_eq!(
            parse(&words("--bg=1"), SPEC, true).err(),
            Some("argument --bg: ignored explicit argument '1'".into())
        );
        assert_eq!(
            parse(&words("-vx"), SPEC, true).err(),
            Some("argument -v/--verbose: ignored explicit argument 'x'".into())
        );
    }
}
