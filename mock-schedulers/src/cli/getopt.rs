//! GNU getopt_long as the Slurm commands use it, with its exact error messages.

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HasArg {
    /// Flag.
    No,
    /// Needs a value.
    Required,
    /// `--opt=value` only.
    Optional,
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// Long name without dashes.
    pub long: &'static str,
    /// Short letter.
    pub short: Option<char>,
    /// Argument kind.
    pub arg: HasArg,
}

/// Shorthand constructor.
pub const fn opt(long: &'static str, short: Option<char>, arg: HasArg) -> Opt {
    Opt { long, short, arg }
}

/// Parsed command line: options (by long name) in order, and operands. Every scheduler's
/// parser gives one (Slurm's and PBS's getopt, LSF's whole words, Flux's argparse).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// `(long name, value)` in command-line order.
    pub opts: Vec<(&'static str, Option<String>)>,
    /// Operands.
    pub operands: Vec<String>,
}

impl Parsed {
    /// Last value of an option.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.as_deref())
    }
    /// Whether an option was given.
    pub fn has(&self, long: &str) -> bool {
        self.opts.iter().any(|(l, _)| *l == long)
    }

    /// Every value of an option, in order.
    pub fn values(&self, long: &str) -> Vec<&str> {
        self.opts
            .iter()
            .filter(|(l, _)| *l == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// How many times an option was given (`-vv`).
    pub fn count(&self, long: &str) -> usize {
        self.opts.iter().filter(|(l, _)| *l == long).count()
    }
}

/// Parses `args` (without the program name). With `stop_at_operand` parsing stops at the first
/// operand, like Slurm's sbatch/srun/salloc (`+` in the optstring); otherwise operands are
/// collected anywhere. Errors are getopt's message lines.
pub fn parse(
    prog: &str,
    args: &[String],
    spec: &[Opt],
    stop_at_operand: bool,
) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            out.operands.extend(args[i + 1..].iter().cloned());
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let exact = spec.iter().find(|o| o.long == name);
            let o = match exact {
                Some(o) => *o,
                None => {
                    let cands: Vec<&Opt> =
                        spec.iter().filter(|o| o.long.starts_with(name)).collect();
                    match cands.as_slice() {
                        [one] => **one,
                        // glibc names the whole word, `=value` included (observed).
                        [] => return Err(format!("{prog}: unrecognized option '--{body}'")),
                        many => {
                            let list: Vec<String> =
                                many.iter().map(|o| format!("'--{}'", o.long)).collect();
                            return Err(format!(
                                "{prog}: option '--{name}' is ambiguous; possibilities: {}",
                                list.join(" ")
                            ));
                        }
                    }
                }
            };
            match (o.arg, inline) {
                (HasArg::No, Some(_)) => {
                    return Err(format!(
                        "{prog}: option '--{}' doesn't allow an argument",
                        o.long
                    ));
                }
                (HasArg::No, None) => out.opts.push((o.long, None)),
                (HasArg::Optional, v) => out.opts.push((o.long, v)),
                (HasArg::Required, Some(v)) => out.opts.push((o.long, Some(v))),
                (HasArg::Required, None) => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => out.opts.push((o.long, Some(v.clone()))),
                        None => {
                            return Err(format!(
                                "{prog}: option '--{}' requires an argument",
                                o.long
                            ));
                        }
                    }
                }
            }
            i += 1;
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                let Some(o) = spec.iter().find(|o| o.short == Some(c)) else {
                    return Err(format!("{prog}: invalid option -- '{c}'"));
                };
                match o.arg {
                    HasArg::No => out.opts.push((o.long, None)),
                    HasArg::Optional => {
                        let rest: String = chars[j + 1..].iter().collect();
                        out.opts.push((o.long, (!rest.is_empty()).then_some(rest)));
                        break;
                    }
                    HasArg::Required => {
                        let rest: String = chars[j + 1..].iter().collect();
                        if !rest.is_empty() {
                            out.opts.push((o.long, Some(rest)));
                        } else {
                            i += 1;
                            match args.get(i) {
                                Some(v) => out.opts.push((o.long, Some(v.clone()))),
                                None => {
                                    return Err(format!(
                                        "{prog}: option requires an argument -- '{c}'"
                                    ));
                                }
                            }
                        }
                        break;
                    }
                }
                j += 1;
            }
            i += 1;
            continue;
        }
        if stop_at_operand {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        out.operands.push(a.clone());
        i += 1;
    }
    Ok(out)
}
