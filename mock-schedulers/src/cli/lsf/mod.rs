//! The fake IBM Spectrum LSF commands (`bsub`, `bjobs`, `bkill`; reference section 3; and
//! `bhosts`, which `batchci check` asks whether mbatchd answers). Each
//! command lives in its own file; this module holds what they share: LSF's option parser,
//! job states and exit codes as LSF shows them, the queue a job goes to, and how a batch
//! daemon that does not answer is reported.
//!
//! Source key `OL` in the comments: openlava (the open-source code base LSF grew from), as
//! kept in `georgemarselis/openlava-macosx` on GitHub; paths are relative to it.

pub mod bhosts;
pub mod bjobs;
pub mod bkill;
pub mod bsub;

use std::path::Path;

use super::Call;
use crate::config::Cluster;
use crate::flavor::lsf::{NOT_RESPONDING, errmsg};
use crate::model::{Job, JobState};

pub use crate::flavor::lsf::{Attrs, exit_code, host_slots, term_reason};

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["bsub", "bjobs", "bkill", "bhosts"];

/// Prefixes of the variables LSF's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["LSB_", "LSF_", "BSUB_"];

/// What `-V` prints (on stderr, as LSF's commands print their version).
pub const VERSION: &str = "IBM Spectrum LSF 10.1 (simulated by mock-cluster)";

/// Runs the LSF command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    Some(match prog {
        "bsub" => bsub::main(call),
        "bjobs" => bjobs::main(call),
        "bkill" => bkill::main(call),
        "bhosts" => bhosts::main(call),
        _ => return None,
    })
}

/// One option of an LSF command: its name after the dash, and whether it takes a value.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// The name (`Is`, `cwd`, `o`).
    pub name: &'static str,
    /// Whether a value follows.
    pub arg: bool,
}

/// Shorthand constructor.
pub const fn opt(name: &'static str, arg: bool) -> Opt {
    Opt { name, arg }
}

pub use crate::cli::getopt::Parsed;

/// LSF's option parser (OL `lsf/lib/misc.c` `my_getopt`): options are whole words after one
/// dash, tried in the table's order; a word that equals an option's name is that option (its
/// value the next word), a word that starts with the name of an option that takes a value
/// carries the value (`-n4`, `-oofile`), `--` ends the options. With `stop_at_operand` parsing
/// stops at the first word that is no option (bsub's command); otherwise operands are collected
/// anywhere. Errors are the parser's own lines.
pub fn getopt(
    prog: &str,
    args: &[String],
    spec: &[Opt],
    stop_at_operand: bool,
) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        if word == "--" {
            out.operands.extend(args[i + 1..].iter().cloned());
            break;
        }
        let Some(name) = word.strip_prefix('-').filter(|_| word.len() > 1) else {
            if stop_at_operand {
                out.operands.extend(args[i..].iter().cloned());
                break;
            }
            out.operands.push(word.clone());
            i += 1;
            continue;
        };
        let mut matched = false;
        for o in spec {
            if name == o.name {
                if o.arg {
                    i += 1;
                    match args.get(i) {
                        Some(v) => out.opts.push((o.name, Some(v.clone()))),
                        None => {
                            return Err(format!("{prog}: option requires an argument -- {name}"));
                        }
                    }
                } else {
                    out.opts.push((o.name, None));
                }
                matched = true;
                break;
            }
            if let Some(rest) = name.strip_prefix(o.name) {
                if !o.arg {
                    return Err(format!(
                        "{prog}: option cannot have an argument -- {}",
                        o.name
                    ));
                }
                out.opts.push((o.name, Some(rest.to_string())));
                matched = true;
                break;
            }
        }
        if !matched {
            return Err(format!("{prog}: illegal option -- {name}"));
        }
        i += 1;
    }
    Ok(out)
}

/// The cluster the commands talk to: its stored description (what the daemon runs), or the
/// embedded default when none is stored.
pub fn cluster(dir: &Path) -> Cluster {
    Cluster::load(&crate::daemon::stored_config_path(dir))
        .unwrap_or_else(|_| Cluster::embedded_default())
}

/// The queue a job submitted with `-q queues` goes to (the first of the list that exists, as
/// the daemon chooses it), or the default queue.
pub fn queue_for(cluster: &Cluster, asked: Option<&str>) -> Option<String> {
    match asked {
        Some(list) => list
            .split([' ', ','])
            .filter(|q| !q.is_empty())
            .find(|q| cluster.partition(q).is_some())
            .map(str::to_string),
        None => cluster.default_partition().map(|p| p.name.clone()),
    }
}

/// The job's status as bjobs shows it (reference 3.2): `PEND` (`PSUSP` when held), `RUN`,
/// `DONE` (exit 0), `EXIT` (anything else).
pub fn stat(job: &Job) -> &'static str {
    match job.run.state {
        JobState::Pending if job.req.hold || job.run.priority == 0 => "PSUSP",
        JobState::Pending => "PEND",
        JobState::Running => "RUN",
        JobState::Completed => "DONE",
        _ => "EXIT",
    }
}

/// A simulated time as bjobs shows it: `ctime` without weekday, seconds and year
/// (`Jan  1 12:34`; OL `lsf/lib/i18n.c` `CTIME_FORMAT_b_d_H_M`).
pub fn short_time(t: f64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(t.floor() as i64, 0) {
        chrono::LocalResult::Single(dt) | chrono::LocalResult::Ambiguous(dt, _) => {
            dt.format("%b %e %H:%M").to_string()
        }
        chrono::LocalResult::None => "-".into(),
    }
}

/// A signal by number or by LSF's name (`INT` or `SIGINT`; OL `lsf/lib/sig.c` `getSigVal`).
pub fn signal_value(text: &str) -> Option<i32> {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return text.parse::<i32>().ok().filter(|n| (1..=64).contains(n));
    }
    let name = text.strip_prefix("SIG").unwrap_or(text);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, number)| *number)
}

/// LSF's signal names in the order `bkill -l` lists them (OL `lsf/lib/sig.c`), with this
/// machine's numbers.
pub const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("IOT", libc::SIGABRT),
    ("EMT", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("BUS", libc::SIGBUS),
    ("SEGV", libc::SIGSEGV),
    ("SYS", libc::SIGSYS),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("CONT", libc::SIGCONT),
    ("CHLD", libc::SIGCHLD),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("IO", libc::SIGIO),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("LOST", libc::SIGIO),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
];

/// What the commands print when the simulated batch daemon does not answer (the injected
/// status timeout): the retry line of OL `lsf/lsb/comm.c`, then `lsb_perror` of
/// `LSBE_CONN_TIMEOUT`.
pub fn print_timeout() {
    eprintln!("{NOT_RESPONDING}");
    eprintln!("{}", errmsg::CONN_TIMEOUT);
}

/// Reports an unreachable daemon as a refused connection, with the socket tried; `suffix` is
/// what the command adds (bsub's `. Job not submitted.`).
pub fn print_unreachable(call: &Call, e: &crate::client::Unreachable, suffix: &str) {
    call.unreachable(
        e,
        &format!("{NOT_RESPONDING}\n{}{suffix}", errmsg::CONN_REFUSED),
    );
}

pub use crate::cli::jobs::QueryError;

/// Jobs known to mbatchd (finished ones until `min_job_age`, LSF's `CLEAN_PERIOD`).
pub fn query_jobs(
    call: &mut Call,
    ids: Option<Vec<u32>>,
    status_command: bool,
) -> Result<(Vec<Job>, f64), QueryError> {
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            print_unreachable(call, &e, "");
            return Err(QueryError::Unreachable);
        }
    };
    crate::cli::jobs::query(conn, ids, false, status_command)
}

/// A job id as the commands take it: digits only (OL `lsf/cmdtools/lib/jobid.c`; there are no
/// job arrays here).
pub fn parse_job_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether `name` matches a job name filter, where `*` matches any run of characters.
pub fn name_matches(filter: &str, name: &str) -> bool {
    fn go(f: &[char], n: &[char]) -> bool {
        match f.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|k| go(rest, &n[k..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let f: Vec<char> = filter.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&f, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const SPEC: &[Opt] = &[
        opt("Is", false),
        opt("Ip", false),
        opt("I", false),
        opt("oo", true),
        opt("o", true),
        opt("n", true),
    ];

    #[test]
    fn options_are_words_tried_in_table_order() {
        let p = getopt(
            "bsub",
            &strings(&["-Is", "-n4", "-oo", "x", "-oy", "echo", "-n", "2"]),
            SPEC,
            true,
        )
        .unwrap();
        assert_eq!(
            p.opts,
            vec![
                ("Is", None),
                ("n", Some("4".to_string())),
                ("oo", Some("x".to_string())),
                ("o", Some("y".to_string())),
            ]
        );
        assert_eq!(p.operands, strings(&["echo", "-n", "2"]));
        assert_eq!(
            getopt("bsub", &strings(&["-Ix"]), SPEC, true),
            Err("bsub: option cannot have an argument -- I".to_string())
        );
        assert_eq!(
            getopt("bsub", &strings(&["-z"]), SPEC, true),
            Err("bsub: illegal option -- z".to_string())
        );
        assert_eq!(
            getopt("bsub", &strings(&["-n"]), SPEC, true),
            Err("bsub: option requires an argument -- n".to_string())
        );
        let p = getopt("bjobs", &strings(&["1", "-I", "2"]), SPEC, false).unwrap();
        assert_eq!(p.operands, strings(&["1", "2"]));
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_value("INT"), Some(libc::SIGINT));
        assert_eq!(signal_value("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(signal_value("15"), Some(15));
        assert_eq!(signal_value("int"), None);
        assert_eq!(signal_value("99"), None);
        assert_eq!(signal_value(""), None);
    }

    #[test]
    fn name_filters_take_stars() {
        assert!(name_matches("ci-*", "ci-job-1"));
        assert!(name_matches("*", ""));
        assert!(!name_matches("ci", "ci-job"));
        assert!(name_matches("a*c*", "abcd"));
    }
}
