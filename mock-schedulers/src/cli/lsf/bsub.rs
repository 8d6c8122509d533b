//! Fake `bsub` (reference 3.1 and 6): batch jobs (`Job <N> is submitted to ... queue <q>.`),
//! `-K` (wait for the end, exit with the job's exit code, 126 when it was killed while pending)
//! and interactive jobs (`-I`, `-Ip`, `-Is`: the job's output is bsub's own, its exit code
//! bsub's), held over the shared allocation session.
//!
//! `OL` paths are openlava's (see the module above): option handling in `lsf/lsb/sub.c`
//! (`setOption_`, `postSubMsg`, `subUsage_`), the command line and the script in
//! `lsf/cmdtools/lib/sub.c` (`fillReq`, `parseScript`, `parseLine`, `CopyCommand`), the end of
//! an interactive or blocking job in `lsf/daemons/nios/nios.c`.

use crate::flavor::SchedulerAttributes;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use super::{Attrs, Opt, cluster, exit_code, getopt, opt, print_unreachable, queue_for};
use crate::cli::Call;
use crate::cli::session::{Denied, Granted, Progress, Ran, Session};
use crate::config::Cluster;
use crate::flavor::lsf::{NOT_RESPONDING, errmsg};
use crate::model::{Job, JobKind, JobRequest};
use crate::protocol::{Request, Response};
use crate::units::TimeLimit;

/// bsub's options, longer names before the shorter ones they start with (the parser tries
/// them in this order, as OL's `fillReq` template orders them).
const SPEC: &[Opt] = &[
    opt("Ip", false),
    opt("Is", false),
    opt("I", false),
    opt("K", false),
    opt("oo", true),
    opt("o", true),
    opt("eo", true),
    opt("env", true),
    opt("e", true),
    opt("cwd", true),
    opt("c", true),
    opt("nnodes", true),
    opt("n", true),
    opt("q", true),
    opt("Jd", true),
    opt("J", true),
    opt("We", true),
    opt("W", true),
    opt("M", true),
    opt("R", true),
    opt("P", true),
    opt("app", true),
    opt("a", true),
    opt("is", true),
    opt("i", true),
    opt("u", true),
    opt("L", true),
    opt("G", true),
    opt("sp", true),
    opt("x", false),
    opt("H", false),
    opt("B", false),
    opt("N", false),
    opt("r", false),
    opt("m", true),
    opt("b", true),
    opt("t", true),
    opt("w", true),
    opt("E", true),
    opt("k", true),
    opt("h", false),
    opt("V", false),
];

/// Options LSF has that the simulated cluster does not implement.
const UNSUPPORTED: &[&str] = &["m", "b", "t", "w", "E", "k", "is"];

const USAGE: &str = "Usage: bsub [-h] [-V] [-H] [-x] [-r] [-N] [-B] [-K | -I | -Ip | -Is]
\t\t[-q \"queue_name ...\"] [-J job_name] [-P project_name] [-app application_profile]
\t\t[-n min_tasks[,max_tasks]] [-nnodes num_nodes] [-W [hour:]minute[/host_name]]
\t\t[-M mem_limit[KB|MB|GB|TB]] [-R res_req] [-cwd \"current_working_directory\"]
\t\t[-env \"none\" | \"all [,~var_name[,~var_name] ...] [,var_name=var_value ...]\" |
\t\t      \"var_name[=var_value][,var_name[=var_value] ...]\"]
\t\t[-i input_file] [-o output_file | -oo output_file] [-e error_file | -eo error_file]
\t\t[-u mail_user] [-G user_group] [-L login_shell]
\t\t[command [argument ...]]
";

/// Prints the usage (OL `subUsage_`) and returns bsub's exit code for it.
fn usage() -> i32 {
    eprint!("{USAGE}");
    255
}

/// A refusal before the job reaches mbatchd: `<message>. Job not submitted.` (OL `do_sub`).
fn not_submitted(message: &str) -> i32 {
    eprintln!("{message}. Job not submitted.");
    255
}

/// Why the options cannot make a job.
enum Fail {
    /// The usage (after an optional line).
    Usage(Option<String>),
    /// A message, then `. Job not submitted.`.
    Message(String),
}

impl Fail {
    fn report(self) -> i32 {
        match self {
            Fail::Usage(line) => {
                if let Some(line) = line {
                    eprintln!("{line}");
                }
                usage()
            }
            Fail::Message(m) => not_submitted(&m),
        }
    }
}

/// Where a stream goes: a path as given, and whether it is overwritten (`-oo`, `-eo`).
#[derive(Debug, Clone, Default)]
struct Stream {
    path: String,
    overwrite: bool,
}

/// Everything the options ask for.
#[derive(Debug, Clone, Default)]
struct Opts {
    interactive: Option<&'static str>,
    block: bool,
    queue: Option<String>,
    name: Option<String>,
    output: Option<Stream>,
    error: Option<Stream>,
    input: Option<String>,
    project: Option<String>,
    res_req: Option<String>,
    slots: Option<u32>,
    nnodes: Option<u32>,
    run_limit: Option<u64>,
    cwd: Option<String>,
    env: Option<String>,
    exclusive: bool,
    hold: bool,
}

/// A positive integer, as OL's `isint_` takes it.
fn positive(text: &str) -> Option<u32> {
    let t = text.trim();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse::<u32>().ok().filter(|n| *n > 0)
}

/// `-W [hour:]minute[/host_spec]` in seconds (OL `setOption_` case `W`).
fn run_limit(text: &str) -> Option<u64> {
    let limit = text.split('/').next().unwrap_or("");
    let number = |t: &str| -> Option<u64> {
        (!t.is_empty() && t.chars().all(|c| c.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    let minutes = match limit.split_once(':') {
        Some((h, m)) => number(h)?.checked_mul(60)?.checked_add(number(m)?)?,
        None => number(limit)?,
    };
    minutes.checked_mul(60)
}

/// `-M mem_limit[unit]`, kilobytes by default (reference 8); LSF checks it, the simulated
/// cluster neither reserves nor enforces it.
fn mem_limit_ok(text: &str) -> bool {
    let t = text.trim();
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    let unit = t[digits.len()..].to_ascii_uppercase();
    !digits.is_empty()
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
        && matches!(
            unit.as_str(),
            "" | "K" | "KB" | "M" | "MB" | "G" | "GB" | "T" | "TB"
        )
}

/// What a resource requirement string asks the scheduler for.
#[derive(Debug, Default, PartialEq)]
struct ResReq {
    /// `rusage[mem=N]`: megabytes per slot.
    mem_per_slot_mb: Option<u64>,
    /// `span[hosts=1]`.
    one_host: bool,
    /// `span[ptile=N]`.
    ptile: Option<u32>,
}

/// Reads the sections of `-R` that decide where the job goes (`rusage[mem=...]`,
/// `span[hosts=1|ptile=N]`); `select`, `order`, `same`, `cu`, `affinity` and a bare selection
/// string are accepted and not used. Unbalanced brackets are a syntax error.
fn parse_res_req(text: &str) -> Option<ResReq> {
    let mut out = ResReq::default();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut sections = Vec::new();
    let mut depth = 0i32;
    for c in &chars {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    if depth != 0 {
        return None;
    }
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        if name.is_empty() || chars.get(i) != Some(&'[') {
            // A plain selection string (`-R "mem>100"`).
            return Some(out);
        }
        let mut level = 0;
        let body_start = i + 1;
        while i < chars.len() {
            match chars[i] {
                '[' => level += 1,
                ']' => {
                    level -= 1;
                    if level == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let body: String = chars[body_start..i.min(chars.len())].iter().collect();
        sections.push((name, body));
        i += 1;
    }
    for (name, body) in sections {
        match name.as_str() {
            "rusage" => {
                for item in body.split([',', ':', ' ']) {
                    let Some(value) = item.trim().strip_prefix("mem=") else {
                        continue;
                    };
                    let digits: String = value
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    let amount: f64 = digits.parse().ok()?;
                    let factor = match value[digits.len()..].to_ascii_uppercase().as_str() {
                        "" | "M" | "MB" => 1.0,
                        "K" | "KB" => 1.0 / 1024.0,
                        "G" | "GB" => 1024.0,
                        "T" | "TB" => 1024.0 * 1024.0,
                        _ => return None,
                    };
                    out.mem_per_slot_mb = Some((amount * factor).ceil() as u64);
                }
            }
            "span" => {
                for item in body.split([',', ':', ' ']) {
                    let item = item.trim();
                    if item == "hosts=1" {
                        out.one_host = true;
                    } else if let Some(p) = item.strip_prefix("ptile=") {
                        out.ptile = Some(positive(p)?);
                    }
                }
            }
            "select" | "order" | "same" | "cu" | "affinity" => {}
            _ => return None,
        }
    }
    Some(out)
}

impl Opts {
    /// Applies one option (OL `setOption_`).
    fn apply(&mut self, name: &'static str, value: Option<&str>) -> Result<(), Fail> {
        let v = value.unwrap_or("");
        if UNSUPPORTED.contains(&name) {
            return Err(Fail::Message(format!(
                "bsub: -{name} is not supported by mock-cluster"
            )));
        }
        match name {
            "I" | "Ip" | "Is" => {
                if self.interactive.is_some() || self.block {
                    return Err(Fail::Usage(None));
                }
                self.interactive = Some(name);
            }
            "K" => {
                if self.interactive.is_some() || self.block {
                    return Err(Fail::Usage(None));
                }
                self.block = true;
            }
            "o" | "oo" => {
                self.output = Some(Stream {
                    path: v.to_string(),
                    overwrite: name == "oo",
                })
            }
            "e" | "eo" => {
                self.error = Some(Stream {
                    path: v.to_string(),
                    overwrite: name == "eo",
                })
            }
            "i" => self.input = Some(v.to_string()),
            "q" => self.queue = Some(v.trim().to_string()),
            "J" => {
                if v.contains('[') {
                    return Err(Fail::Message(
                        "bsub: job arrays are not supported by mock-cluster".into(),
                    ));
                }
                self.name = Some(v.to_string());
            }
            "P" => self.project = Some(v.to_string()),
            "R" => {
                if parse_res_req(v).is_none() {
                    return Err(Fail::Message(errmsg::BAD_RESREQ.into()));
                }
                self.res_req = Some(v.to_string());
            }
            "n" => {
                let (min, max) = match v.split_once(',') {
                    Some((a, b)) => (a, Some(b)),
                    None => (v, None),
                };
                let number = |t: &str| -> Result<Option<i64>, Fail> {
                    if t.is_empty() {
                        return Ok(None);
                    }
                    let t = t.trim();
                    let body = t.strip_prefix('-').unwrap_or(t);
                    if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit()) {
                        return Err(Fail::Message("Bad argument for option -n".into()));
                    }
                    Ok(Some(t.parse::<i64>().unwrap_or(i64::MAX)))
                };
                let min = number(min)?;
                let max = match max {
                    Some(m) => number(m)?,
                    None => None,
                };
                if min.is_none() && max.is_none() {
                    return Err(Fail::Message("Bad argument for option -n".into()));
                }
                if min.is_some_and(|n| n <= 0) || max.is_some_and(|n| n <= 0) {
                    return Err(Fail::Message(
                        "The number of processors must be a positive integer".into(),
                    ));
                }
                if let (Some(a), Some(b)) = (min, max)
                    && a > b
                {
                    return Err(Fail::Message("Bad argument for option -n".into()));
                }
                let slots = min.unwrap_or(1);
                self.slots = Some(u32::try_from(slots).map_err(|_| {
                    Fail::Message("The number of processors must be a positive integer".into())
                })?);
            }
            "nnodes" => {
                self.nnodes = Some(positive(v).ok_or_else(|| {
                    Fail::Message(format!("{v}: Bad argument for option -nnodes"))
                })?)
            }
            "W" => {
                self.run_limit = Some(
                    run_limit(v)
                        .ok_or_else(|| Fail::Message(format!("{v}: Bad RUNLIMIT specification")))?,
                )
            }
            "M" if !mem_limit_ok(v) => {
                return Err(Fail::Message(format!(
                    "{v}: MEMLIMT value should be a positive integer"
                )));
            }
            "cwd" => self.cwd = Some(v.to_string()),
            "env" => self.env = Some(v.to_string()),
            "x" => self.exclusive = true,
            "H" => self.hold = true,
            // Accepted and without effect here: mail (-u -B -N), rerun (-r), login shell (-L),
            // user group (-G), CPU limit (-c), estimated run time (-We), job description
            // (-Jd), application profile (-app), esub data (-a), user priority (-sp).
            _ => {}
        }
        Ok(())
    }
}

/// The words of the `#BSUB` lines of a script (OL `parseLine`): `#`, optional blanks, `BSUB`,
/// blanks, then options up to a word that starts with `#`; a line ending in `\` goes on.
fn embedded_options(script: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut pending = String::new();
    for raw in script.lines() {
        let line = if pending.is_empty() {
            raw.to_string()
        } else {
            format!("{pending}{raw}")
        };
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix('#') else {
            pending.clear();
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix("BSUB") else {
            pending.clear();
            continue;
        };
        if let Some(cut) = line.strip_suffix('\\') {
            pending = cut.to_string();
            continue;
        }
        pending.clear();
        let rest = rest.trim_start();
        if !rest.starts_with('-') {
            continue;
        }
        let split = shell_words::split(rest)
            .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
        for w in split {
            if w.starts_with('#') {
                break;
            }
            words.push(w);
        }
    }
    words
}

/// Whether a script has a command (a line that is neither blank nor a comment; OL
/// `parseLine`'s `emptyCmd`).
fn has_command(script: &str) -> bool {
    script.lines().any(|l| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    })
}

/// The command line of `bsub [options] command [arguments]` (OL `CopyCommand`): the command
/// as given, each argument after a space, quoted with `"` when it holds a space (with `'`
/// when it also holds `"` or `$`), otherwise with `\` before `" ' \ ( )`, and in `'` when it
/// starts with `$`.
pub fn command_line(words: &[String]) -> String {
    let mut line = words.first().cloned().unwrap_or_default();
    for w in words.iter().skip(1) {
        line.push(' ');
        if w.contains(' ') {
            let q = if w.contains('"') || w.contains('$') {
                '\''
            } else {
                '"'
            };
            line.push(q);
            line.push_str(w);
            line.push(q);
            continue;
        }
        let dollar = w.starts_with('$');
        if dollar {
            line.push('\'');
        }
        for c in w.chars() {
            match c {
                '"' | '\'' | '\\' | '(' | ')' => {
                    line.push('\\');
                    line.push(c);
                }
                _ => line.push(c),
            }
        }
        if dollar {
            line.push('\'');
        }
    }
    line
}

/// The job's description, its name when `-J` gives none (OL `lsf/lsb/sub.c`, the job
/// description of a submission): the command, lines joined with `;` (or a space after a line
/// that ends in `;` or `&`), without a last `;`, at most 255 characters.
pub fn description(text: &str) -> String {
    let mut out = String::new();
    let mut last = ';';
    for c in text.chars() {
        let c = if c == '\n' {
            if last != ';' && last != '&' { ';' } else { ' ' }
        } else {
            c
        };
        if c != ' ' && c != '\t' {
            last = c;
        }
        out.push(c);
    }
    let trimmed = out.trim_end_matches([' ', '\t']);
    let trimmed = trimmed.strip_suffix(';').unwrap_or(trimmed);
    trimmed.chars().take(255).collect()
}

/// The job's environment (`-env`, IBM's bsub -env syntax): everything bsub has by default or
/// with `all`, minus `~NAME`, plus `NAME=value`; a list without `all` (or `none`) passes only
/// the variables it names, with a login `PATH`, `HOME`, `LOGNAME` and `SHELL`. The simulated
/// cluster's state directory always passes, so commands in the job reach the same cluster.
fn job_environment(spec: Option<&str>, state_dir: &Path) -> BTreeMap<String, String> {
    let all = crate::cli::environment();
    let mut env = BTreeMap::new();
    let mut include_all = spec.is_none();
    let mut excluded = Vec::new();
    for item in spec.unwrap_or("").split(',') {
        let item = item.trim();
        if item.eq_ignore_ascii_case("all") {
            include_all = true;
        } else if item.eq_ignore_ascii_case("none") || item.is_empty() {
        } else if let Some(name) = item.strip_prefix('~') {
            excluded.push(name.trim().to_string());
        } else if let Some((k, v)) = item.split_once('=') {
            env.insert(k.trim().to_string(), v.to_string());
        } else if let Some(v) = all.get(item) {
            env.insert(item.to_string(), v.clone());
        }
    }
    if include_all {
        let mut merged = all.clone();
        merged.extend(env);
        env = merged;
    } else {
        for k in ["HOME", "LOGNAME", "SHELL"] {
            if let Some(v) = all.get(k) {
                env.entry(k.to_string()).or_insert_with(|| v.clone());
            }
        }
        env.entry("PATH".into()).or_insert_with(|| {
            format!(
                "{}:/usr/local/bin:/usr/bin:/bin",
                state_dir.join("bin").display()
            )
        });
    }
    for k in excluded {
        env.remove(&k);
    }
    env.insert(
        crate::client::STATE_DIR_ENV.into(),
        state_dir.display().to_string(),
    );
    env
}

/// An output path as the daemon expands it: `%J` and `%I` stay for the daemon; a directory
/// (one that exists, or a path ending in `/`) gets `<id>.out` / `<id>.err` inside (OL
/// `lsf/daemons/sbatchd/job.c`, which also creates a missing one).
fn stream_pattern(path: &str, work_dir: &str, suffix: &str) -> String {
    let absolute = crate::daemon::absolute(work_dir, path);
    let is_dir = path.ends_with('/') || Path::new(&absolute).is_dir();
    if !is_dir {
        return path.to_string();
    }
    let _ = std::fs::create_dir_all(&absolute);
    format!("{}/%J.{suffix}", path.trim_end_matches('/'))
}

/// The job as the command line and the script make it.
struct Submission {
    opts: Opts,
    /// The job's command line, for `/bin/sh -c` (an interactive job given a command).
    command: Option<String>,
    /// The script read from standard input.
    script: Option<String>,
    /// What the user submitted (the job report's `# LSBATCH: User input`).
    user_input: String,
}

/// Reads the options, the command or the script, and the script's `#BSUB` lines (the command
/// line wins).
fn read_submission(call: &Call) -> Result<Submission, i32> {
    let args = call.args();
    let cli = match getopt("bsub", &args, SPEC, true) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return Err(usage());
        }
    };
    if cli.has("h") {
        return Err(usage());
    }
    if cli.has("V") {
        eprintln!("{}", super::VERSION);
        return Err(0);
    }
    if cli.opts.iter().filter(|(n, _)| *n == "R").count() > 1 {
        return Err(Fail::Message(
            "Invalid syntax; the -R option was used more than once.\n".into(),
        )
        .report());
    }
    let (command, script, embedded) = if cli.operands.is_empty() {
        let mut buf = Vec::new();
        let stdin = std::io::stdin();
        let terminal = stdin.is_terminal();
        if terminal {
            print!("bsub> ");
            let _ = std::io::stdout().flush();
            let mut text = String::new();
            let mut line = String::new();
            while stdin.read_line(&mut line).is_ok_and(|n| n > 0) {
                text.push_str(&line);
                line.clear();
                print!("bsub> ");
                let _ = std::io::stdout().flush();
            }
            buf = text.into_bytes();
        } else if stdin.lock().read_to_end(&mut buf).is_err() {
            return Err(not_submitted("No command is specified"));
        }
        let script = String::from_utf8_lossy(&buf).into_owned();
        if !has_command(&script) {
            // SAFETY: fstat on descriptor 0 into a zeroed struct.
            let redirected = unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(0, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
            };
            return Err(not_submitted(if redirected {
                "No command is specified in the script file"
            } else {
                "No command is specified"
            }));
        }
        let embedded = embedded_options(&script);
        (None, Some(script), embedded)
    } else {
        let parse_script = std::env::var("LSB_BSUB_PARSE_SCRIPT")
            .is_ok_and(|v| v.eq_ignore_ascii_case("y") || v.eq_ignore_ascii_case("yes"));
        let embedded = match std::fs::read(&cli.operands[0]) {
            Ok(bytes) if parse_script => embedded_options(&String::from_utf8_lossy(&bytes)),
            _ => Vec::new(),
        };
        (Some(command_line(&cli.operands)), None, embedded)
    };
    // Words after the options of a #BSUB line are no command.
    let from_script = match getopt("bsub", &embedded, SPEC, true) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return Err(usage());
        }
    };
    let mut opts = Opts::default();
    for (name, value) in &from_script.opts {
        if let Err(fail) = opts.apply(name, value.as_deref()) {
            return Err(fail.report());
        }
    }
    let mut from_line = Opts {
        interactive: None,
        block: false,
        ..opts.clone()
    };
    for (name, value) in &cli.opts {
        if let Err(fail) = from_line.apply(name, value.as_deref()) {
            return Err(fail.report());
        }
    }
    let opts = Opts {
        interactive: from_line.interactive.or(opts.interactive),
        block: from_line.block || opts.block,
        ..from_line
    };
    if opts.interactive.is_some() && opts.block {
        return Err(usage());
    }
    let user_input = match (&command, &script) {
        (Some(c), _) => c.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => String::new(),
    };
    Ok(Submission {
        opts,
        command,
        script,
        user_input,
    })
}

/// Nodes for `slots` slots: `-nnodes`, `span[hosts=1]` or `span[ptile=N]`, else as few as
/// the queue's largest node allows.
fn node_count(cluster: &Cluster, queue: Option<&str>, slots: u32, res: &ResReq, o: &Opts) -> u32 {
    if let Some(n) = o.nnodes {
        return n;
    }
    if res.one_host {
        return 1;
    }
    if let Some(p) = res.ptile {
        return slots.div_ceil(p).max(1);
    }
    let widest = queue
        .and_then(|q| cluster.partition(q))
        .map(|p| {
            p.nodes
                .iter()
                .filter_map(|n| cluster.node(n))
                .map(|n| n.cpus)
                .max()
                .unwrap_or(1)
        })
        .unwrap_or(1)
        .max(1);
    slots.div_ceil(widest).max(1)
}

/// Runs bsub; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let sub = match read_submission(call) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let o = &sub.opts;
    if o.interactive.is_some() && (o.output.is_some() || o.error.is_some()) {
        return not_submitted(
            "bsub: -o and -e with an interactive job are not supported by mock-cluster",
        );
    }
    let cluster = cluster(&call.dir);
    let queue = queue_for(&cluster, o.queue.as_deref());
    // A run limit above the queue's (OL `prtErrMsg`, `LSBE_OVER_LIMIT` for RUNLIMIT).
    if let (Some(limit), Some(part)) = (
        o.run_limit,
        queue.as_deref().and_then(|q| cluster.partition(q)),
    ) && part.max_time.seconds().is_some_and(|max| limit > max)
    {
        return not_submitted(&format!("RUNLIMIT: {}", errmsg::OVER_LIMIT));
    }
    let res = o
        .res_req
        .as_deref()
        .and_then(parse_res_req)
        .unwrap_or_default();
    let slots = o.slots.unwrap_or(1);
    let (user, uid, gid) = crate::cli::slurm::identity();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let work_dir = match &o.cwd {
        Some(d) => crate::daemon::absolute(&cwd, d),
        None => cwd.clone(),
    };
    let desc = description(&sub.user_input);
    let name = o.name.clone().unwrap_or_else(|| desc.clone());
    let attrs = Attrs {
        user_input: sub.user_input.clone(),
        output_file: o.output.as_ref().map(|s| s.path.clone()),
        error_file: o.error.as_ref().map(|s| s.path.clone()),
        queue_given: o.queue.is_some(),
        project: o.project.clone(),
        res_req: o.res_req.clone(),
        interactive: o.interactive.map(str::to_string),
    };
    let kind = if o.interactive.is_some() {
        JobKind::Interactive
    } else {
        JobKind::Batch
    };
    let script = match (&sub.script, &sub.command) {
        (Some(s), _) if s.starts_with("#!") => s.clone(),
        (Some(s), _) => format!("#!/bin/sh\n{s}"),
        (None, Some(c)) => format!("#!/bin/sh\n{c}\n"),
        (None, None) => String::new(),
    };
    let req = JobRequest {
        kind,
        name,
        partition: o
            .queue
            .as_ref()
            .map(|q| q.split_whitespace().collect::<Vec<_>>().join(",")),
        qos: None,
        account: o.project.clone(),
        time_limit: o.run_limit.map(TimeLimit::Seconds),
        ntasks: Some(slots),
        cpus_per_task: Some(1),
        nodes: Some(node_count(&cluster, queue.as_deref(), slots, &res, o)),
        // Without rusage[mem=...] an LSF job reserves no memory.
        mem_mb: None,
        mem_per_cpu_mb: Some(res.mem_per_slot_mb.unwrap_or(0)),
        nodelist: None,
        constraint: None,
        exclude: None,
        ntasks_per_node: None,
        nice: 0,
        priority: None,
        exclusive: o.exclusive,
        hold: o.hold,
        begin: None,
        begin_after: None,
        immediate: false,
        signal: None,
        signal_batch_shell: false,
        no_requeue: false,
        work_dir: work_dir.clone(),
        submit_dir: cwd,
        submit_host: crate::host::short_hostname(),
        stdout: o
            .output
            .as_ref()
            .map(|s| stream_pattern(&s.path, &work_dir, "out")),
        stderr: o
            .error
            .as_ref()
            .map(|s| stream_pattern(&s.path, &work_dir, "err")),
        stdin: if kind == JobKind::Batch {
            o.input.clone()
        } else {
            None
        },
        append: !(o.output.as_ref().is_some_and(|s| s.overwrite)
            || o.error.as_ref().is_some_and(|s| s.overwrite)),
        script: (kind == JobKind::Batch).then_some(script.clone()),
        args: Vec::new(),
        env: job_environment(o.env.as_deref(), &call.dir),
        user,
        uid,
        gid,
        command: desc,
        name_from_stdin: false,
        flavor: crate::flavor::Flavor::Lsf,
        stage_out: false,
        debug_log: None,
        attributes: attrs.to_attributes(),
        relations: Default::default(),
    };
    let shown_queue = queue.unwrap_or_else(|| o.queue.clone().unwrap_or_default());
    if kind == JobKind::Interactive {
        return interactive(call, req, &sub, &shown_queue, &script);
    }
    batch(call, req, o, &shown_queue)
}

/// The submission line, on stdout (stderr with `BSUB_STDERR`), and for a job bsub waits for,
/// `<<Waiting for dispatch ...>>` on stderr; nothing with `BSUB_QUIET` (OL `postSubMsg`).
fn announce(id: u32, queue: &str, queue_given: bool, waits: bool) {
    if std::env::var_os("BSUB_QUIET").is_some() {
        return;
    }
    let line = if queue_given {
        format!("Job <{id}> is submitted to queue <{queue}>.")
    } else {
        format!("Job <{id}> is submitted to default queue <{queue}>.")
    };
    if std::env::var_os("BSUB_STDERR").is_some() {
        eprintln!("{line}");
    } else {
        println!("{line}");
        let _ = std::io::stdout().flush();
    }
    if waits {
        eprintln!("<<Waiting for dispatch ...>>");
    }
}

/// A batch job; with `-K`, waits for its end.
fn batch(call: &mut Call, req: JobRequest, o: &Opts, queue: &str) -> i32 {
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            print_unreachable(call, &e, ". Job not submitted.");
            return 255;
        }
    };
    let id = match conn.call(&Request::Submit {
        req: Box::new(req),
        wait: o.block,
    }) {
        Ok(Response::Submitted { id }) => id,
        Ok(Response::Error { detail, message }) => {
            for d in detail {
                eprintln!("{d}");
            }
            return not_submitted(&message);
        }
        Ok(_) | Err(_) => return not_submitted(errmsg::CONN_REFUSED),
    };
    call.set_job_id(id);
    announce(id, queue, o.queue.is_some(), o.block);
    if !o.block {
        return 0;
    }
    if let Ok(conn) = call.conn()
        && let Ok(Response::Finished { job }) = conn.recv()
    {
        return block_end(&job);
    }
    // The daemon went away (a restart): the job survives it, so ask until it has ended.
    match crate::cli::jobs::wait_until(&call.dir, id, |job| job.run.state.is_finished()) {
        crate::cli::jobs::Waited::Done(job) => block_end(&job),
        crate::cli::jobs::Waited::Gone => {
            eprintln!("Job <{id}> is not found");
            255
        }
        crate::cli::jobs::Waited::Unreachable => {
            super::print_timeout();
            255
        }
    }
}

/// How `bsub -K` ends (OL `nios.c`, `BSUB_BLOCK`): `<<Job is finished>>` and the job's exit
/// code, or `<<Terminated while pending>>` and 126 (reference 3.1, IBM bsub -K);
/// `BSUB_QUIET2` keeps both lines back.
fn block_end(job: &Job) -> i32 {
    let quiet = std::env::var_os("BSUB_QUIET2").is_some();
    if job.run.start_time.is_none() {
        if !quiet {
            eprintln!("<<Terminated while pending>>");
        }
        return 126;
    }
    if !quiet {
        eprintln!("<<Job is finished>>");
    }
    exit_code(job).unwrap_or(0)
}

/// A script from standard input that an interactive job runs: written to a file of its own
/// (as LSF writes the job's `.shell` file), removed when bsub is done.
struct ScriptFile(std::path::PathBuf);

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_script(dir: &Path, script: &str) -> std::io::Result<ScriptFile> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let path = tmp.join(format!("bsub.{}.shell", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o700)
        .open(&path)?;
    f.write_all(script.as_bytes())?;
    Ok(ScriptFile(path))
}

/// An interactive job (`-I`, `-Ip`, `-Is`): the allocation is held over the session; the job
/// runs as bsub's child with bsub's standard streams; bsub exits with its exit code, 128 + the
/// signal that ended it, or 126 when it was killed while pending (reference 6).
fn interactive(
    call: &mut Call,
    req: JobRequest,
    sub: &Submission,
    queue: &str,
    script: &str,
) -> i32 {
    let o = &sub.opts;
    let user_env = req.env.clone();
    let queue_given = o.queue.is_some();
    let mut session = match Session::request(call, req) {
        Ok(s) => s,
        Err(e) => {
            print_unreachable(call, &e, ". Job not submitted.");
            return 255;
        }
    };
    let mut announced = false;
    let granted = session.wait(call, |progress| match progress {
        Progress::Queued(id) => {
            announce(id, queue, queue_given, true);
            announced = true;
        }
    });
    let Granted {
        job,
        cpus,
        env: lsf_env,
    } = match granted {
        Ok(g) => g,
        Err(Denied::Refused { detail, message }) => {
            for d in detail {
                eprintln!("{d}");
            }
            return not_submitted(&message);
        }
        Err(Denied::CancelledWhilePending(job)) => {
            if !announced {
                announce(job.id, queue, queue_given, true);
            }
            eprintln!(
                "<< Job <{}> has been terminated by user or administrator >>",
                job.id
            );
            eprintln!("<<Terminated while pending>>");
            return 126;
        }
        Err(Denied::Lost) => {
            eprintln!("{NOT_RESPONDING}");
            eprintln!("{}", errmsg::CONN_REFUSED);
            return 255;
        }
    };
    if !announced {
        announce(job.id, queue, queue_given, true);
    }
    eprintln!("<<Starting on {}>>", job.first_node());
    let mut env = user_env;
    env.extend(lsf_env);
    // The job runs in its working directory; sbatchd falls back to /tmp.
    if std::env::set_current_dir(&job.req.work_dir).is_err() {
        let _ = std::env::set_current_dir("/tmp");
    }
    if let Some(input) = &o.input {
        let path = crate::flavor::lsf::expand(input, job.id);
        match std::fs::File::open(crate::daemon::absolute(&job.req.work_dir, &path)) {
            Ok(f) => {
                use std::os::fd::AsRawFd;
                // SAFETY: dup2 onto our own standard input.
                unsafe {
                    libc::dup2(f.as_raw_fd(), 0);
                }
            }
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
    // The script file lives until bsub is done.
    let mut _script_file = None;
    let (command, stdin_none) = match &sub.command {
        Some(line) => (
            vec!["/bin/sh".to_string(), "-c".to_string(), line.clone()],
            false,
        ),
        None => match write_script(&call.dir, script) {
            Ok(f) => {
                let path = f.0.display().to_string();
                _script_file = Some(f);
                // bsub read the script from its standard input: the job finds it at its end.
                (vec![path], o.input.is_none())
            }
            Err(e) => {
                eprintln!("bsub: cannot write the job's script: {e}");
                session.finish(call, 1 << 8, 255);
                return 255;
            }
        },
    };
    let ran = session.run(&command, &env, cpus, stdin_none, |_| {});
    let code = match &ran {
        Ran::Ended(status) => match (status.code(), status.signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => 1,
        },
        Ran::NotStarted(e) => {
            eprintln!("{}: {e}", command[0]);
            127
        }
    };
    let raw = match &ran {
        Ran::NotStarted(_) => 127 << 8,
        Ran::Ended(_) => ran.raw_status(),
    };
    session.finish(call, raw, code);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines_are_quoted_like_copy_command() {
        assert_eq!(
            command_line(&strings(&["sh", "-c", "echo hi; sleep 1"])),
            "sh -c \"echo hi; sleep 1\""
        );
        assert_eq!(
            command_line(&strings(&["echo", "$HOME is", "a\"b c"])),
            "echo '$HOME is' 'a\"b c'"
        );
        assert_eq!(
            command_line(&strings(&["echo", "$HOME", "f(x)", "it's"])),
            "echo '$HOME' f\\(x\\) it\\'s"
        );
        assert_eq!(
            command_line(&strings(&["echo a; echo b"])),
            "echo a; echo b"
        );
    }

    #[test]
    fn descriptions_join_lines() {
        assert_eq!(
            description("#!/bin/sh\necho hi\n\nsleep 1 &\nwait\n"),
            "#!/bin/sh;echo hi; sleep 1 & wait"
        );
        assert_eq!(description("a;\nb"), "a; b");
        assert_eq!(description(&"x".repeat(300)).len(), 255);
    }

    #[test]
    fn run_limits_are_hours_and_minutes() {
        assert_eq!(run_limit("10"), Some(600));
        assert_eq!(run_limit("1:30"), Some(5400));
        assert_eq!(run_limit("0:2/hostA"), Some(120));
        assert_eq!(run_limit("1.5"), None);
        assert_eq!(run_limit("-3"), None);
        assert_eq!(run_limit(""), None);
        assert_eq!(run_limit("99999999999999999999"), None);
    }

    #[test]
    fn embedded_options_come_from_bsub_lines() {
        let script = "#!/bin/sh\n#BSUB -J one -n 2 # comment\n# BSUB -q \"a b\"\n#BSUB -W \\\n 5\n#BSUBX\necho hi\n#BSUB -P late\n";
        assert_eq!(
            embedded_options(script),
            strings(&["-J", "one", "-n", "2", "-q", "a b", "-W", "5", "-P", "late"])
        );
        assert!(!has_command("#!/bin/sh\n\n  # only comments\n"));
        assert!(has_command("#BSUB -n 1\n true\n"));
    }

    #[test]
    fn resource_requirements_that_place_the_job() {
        assert_eq!(
            parse_res_req("select[mem>10] rusage[mem=2GB] span[hosts=1]"),
            Some(ResReq {
                mem_per_slot_mb: Some(2048),
                one_host: true,
                ptile: None
            })
        );
        assert_eq!(
            parse_res_req("span[ptile=2]").map(|r| r.ptile),
            Some(Some(2))
        );
        assert_eq!(parse_res_req("mem>100"), Some(ResReq::default()));
        assert_eq!(parse_res_req("span[hosts=1"), None);
        assert_eq!(parse_res_req("bogus[x]"), None);
        assert_eq!(parse_res_req("rusage[mem=lots]"), None);
    }

    #[test]
    fn memory_limits_take_units() {
        assert!(mem_limit_ok("1024"));
        assert!(mem_limit_ok("2GB"));
        assert!(!mem_limit_ok("0"));
        assert!(!mem_limit_ok("2XB"));
        assert!(!mem_limit_ok(""));
    }
}
