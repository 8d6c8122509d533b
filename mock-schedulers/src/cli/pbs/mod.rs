//! The fake PBS Professional / OpenPBS commands (`qsub`, `qstat`, `qdel`; reference section 2).
//! Each command lives in its own file; this module holds what they share: POSIX option
//! parsing, the server's name, job identifiers, job states and the daemon queries.

pub mod qdel;
pub mod qstat;
pub mod qsub;
pub mod resources;

use std::path::Path;

use super::Call;
use crate::config::Cluster;
use crate::model::{Job, JobState};

pub use crate::flavor::pbs::{Attrs, errno, exit_status, job_id};

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["qsub", "qstat", "qdel"];

/// Prefixes of the variables PBS's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["PBS_", "QSUB_", "QSTAT_"];

/// The OpenPBS release the fakes imitate (`configure.ac` of the reference source).
pub const PBS_VERSION: &str = "23.06.06";

/// Runs the PBS command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    let args = call.args();
    // PRINT_VERSION_AND_EXIT (src/include/pbs_version.h.in): only as the sole argument.
    if COMMANDS.contains(&prog) && args.len() == 1 && args[0].eq_ignore_ascii_case("--version") {
        println!("pbs_version = {PBS_VERSION}");
        return Some(0);
    }
    Some(match prog {
        "qsub" => qsub::main(call),
        "qstat" => qstat::main(call),
        "qdel" => qdel::main(call),
        _ => return None,
    })
}

/// The exit code of a command that fails with `pbs_errno` (`exit()` keeps the low 8 bits).
pub fn exit_code(pbs_errno: i32) -> i32 {
    pbs_errno & 0xff
}

/// The cluster the commands talk to: its stored description (what the daemon runs), or the
/// embedded default when none is stored.
pub fn cluster(dir: &Path) -> Cluster {
    Cluster::load(&crate::daemon::stored_config_path(dir))
        .unwrap_or_else(|_| Cluster::embedded_default())
}

/// Options and operands as getopt(3) returns them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// `(letter, argument)` in command-line order.
    pub opts: Vec<(char, Option<String>)>,
    /// Operands in order.
    pub operands: Vec<String>,
    /// Whether a `--` ended the options (qsub's `-- executable`).
    pub dashdash: bool,
}

/// glibc getopt(3) with a POSIX option string (`a:b` ...), as the PBS commands call it.
/// With `permute`, operands may come between options (glibc's default); otherwise parsing
/// stops at the first operand. Errors are getopt's own message.
pub fn getopt(
    prog: &str,
    args: &[String],
    optstring: &str,
    permute: bool,
) -> Result<Options, String> {
    let takes_arg = |c: char| -> Option<bool> {
        let mut chars = optstring.chars().peekable();
        while let Some(o) = chars.next() {
            let arg = chars.peek() == Some(&':');
            if arg {
                chars.next();
            }
            if o == c && c != ':' {
                return Some(arg);
            }
        }
        None
    };
    let mut out = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            out.dashdash = true;
            out.operands.extend(args[i + 1..].iter().cloned());
            break;
        }
        if a.len() < 2 || !a.starts_with('-') {
            if !permute {
                out.operands.extend(args[i..].iter().cloned());
                break;
            }
            out.operands.push(a.clone());
            i += 1;
            continue;
        }
        let chars: Vec<char> = a.chars().skip(1).collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            match takes_arg(c) {
                None => return Err(format!("{prog}: invalid option -- '{c}'")),
                Some(false) => out.opts.push((c, None)),
                Some(true) => {
                    let rest: String = chars[j + 1..].iter().collect();
                    if !rest.is_empty() {
                        out.opts.push((c, Some(rest)));
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => out.opts.push((c, Some(v.clone()))),
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
    }
    Ok(out)
}

/// A job identifier as the commands accept it: `<seq>[.<server>][@<server>]`
/// (`src/lib/Libcmds/parse_jobid.c`, `get_server.c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIdArg {
    /// The sequence number, `None` when it is too large to be a job of this cluster.
    pub seq: Option<u32>,
    /// `<seq>.<server>` as the commands complete it.
    pub full: String,
}

/// Whether `c` may appear in a server name (`ISNAMECHAR`).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// Parses a job identifier. `Err(())` for one that is not well formed, or that names another
/// server (the simulated cluster has one server, and no other name resolves).
#[allow(clippy::result_unit_err)]
pub fn parse_job_id(text: &str, server: &str) -> Result<JobIdArg, ()> {
    let t = text.trim_start();
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    // PBS_MAXSEQNUM: 12 digits.
    if digits.is_empty() || digits.len() > 12 {
        return Err(());
    }
    let mut rest = &t[digits.len()..];
    let mut array = false;
    if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']').ok_or(())?;
        if !r[..end]
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':'))
        {
            return Err(());
        }
        array = true;
        rest = &r[end + 1..];
    }
    let mut parent = "";
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.chars().take_while(|c| is_name_char(*c)).count();
        if n == 0 {
            return Err(());
        }
        parent = &r[..n];
        rest = &r[n..];
    }
    if let Some(r) = rest.strip_prefix('@') {
        let n = r.chars().take_while(|c| is_name_char(*c)).count();
        if n == 0 || !r[..n].eq_ignore_ascii_case(server) {
            return Err(());
        }
        rest = &r[n..];
    }
    if !rest.is_empty() || (!parent.is_empty() && !parent.eq_ignore_ascii_case(server)) {
        return Err(());
    }
    // There are no job arrays here: an array id is a job that does not exist.
    let seq = if array {
        None
    } else {
        digits.parse::<u32>().ok()
    };
    let bracket = if array {
        t[digits.len()..].split('.').next().unwrap_or("")
    } else {
        ""
    };
    Ok(JobIdArg {
        seq,
        full: format!("{digits}{bracket}.{server}"),
    })
}

/// The one-letter `job_state` (reference 2.2): Q queued, H held, R running, E exiting (being
/// killed), F finished (history).
pub fn state_letter(job: &Job) -> char {
    match job.run.state {
        JobState::Pending if job.req.hold || job.run.priority == 0 => 'H',
        JobState::Pending => 'Q',
        JobState::Running if job.run.term_sent.is_some() => 'E',
        JobState::Running => 'R',
        _ => 'F',
    }
}

pub use crate::cli::jobs::QueryError;

/// `Connection timed out` / `<prog>: cannot connect to server <server> (errno=110)`: what the
/// PBS commands print when the server does not answer (`src/lib/Libcmds/cnt2server.c` prints
/// the system error, the command its own line); the injected status timeout uses it.
pub fn print_timeout(prog: &str, server: &str) {
    eprintln!("Connection timed out");
    eprintln!(
        "{prog}: cannot connect to server {server} (errno={})",
        libc::ETIMEDOUT
    );
}

/// Reports an unreachable daemon as a refused connection, with the socket tried.
pub fn print_unreachable(call: &Call, e: &crate::client::Unreachable, server: &str) {
    call.unreachable(
        e,
        &format!(
            "Connection refused\n{}: cannot connect to server {server} (errno={})",
            call.prog,
            libc::ECONNREFUSED
        ),
    );
}

/// Jobs known to the server (history included: finished jobs stay until `min_job_age`).
pub fn query_jobs(
    call: &mut Call,
    ids: Option<Vec<u32>>,
    status_command: bool,
    server: &str,
) -> Result<(Vec<Job>, f64), QueryError> {
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            print_unreachable(call, &e, server);
            return Err(QueryError::Unreachable);
        }
    };
    crate::cli::jobs::query(conn, ids, false, status_command)
}

/// `user@host`, as PBS names who asked (`Job_Owner`, `msg_manager`).
pub fn user_at_host(user: &str) -> String {
    format!("{user}@{}", crate::host::short_hostname())
}

/// The user name of a uid.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn getopt_permutes_and_reports_like_glibc() {
        let o = getopt("qstat", &strings(&["1", "-f", "-Fjson", "2"]), "fF:x", true).unwrap();
        assert_eq!(o.opts, vec![('f', None), ('F', Some("json".to_string()))]);
        assert_eq!(o.operands, strings(&["1", "2"]));
        assert_eq!(
            getopt("qstat", &strings(&["-z"]), "fF:x", true),
            Err("qstat: invalid option -- 'z'".to_string())
        );
        assert_eq!(
            getopt("qstat", &strings(&["-F"]), "fF:x", true),
            Err("qstat: option requires an argument -- 'F'".to_string())
        );
        let o = getopt("qsub", &strings(&["-N", "x", "s.sh", "-z"]), "N:z", false).unwrap();
        assert_eq!(o.operands, strings(&["s.sh", "-z"]));
        let o = getopt("qsub", &strings(&["-z", "--", "echo", "-n"]), "N:z", false).unwrap();
        assert!(o.dashdash);
        assert_eq!(o.operands, strings(&["echo", "-n"]));
    }

    #[test]
    fn job_ids_take_the_forms_pbs_accepts() {
        let ok = |t: &str| parse_job_id(t, "batchci");
        assert_eq!(ok("12").unwrap().full, "12.batchci");
        assert_eq!(ok("12.batchci").unwrap().seq, Some(12));
        assert_eq!(ok("12.BATCHCI@batchci").unwrap().full, "12.batchci");
        assert_eq!(ok("12[].batchci").unwrap().seq, None);
        assert!(ok("x12").is_err());
        assert!(ok("12.other").is_err());
        assert!(ok("12.").is_err());
        assert!(ok("1234567890123").is_err());
        assert_eq!(ok("99999999999").unwrap().seq, None);
    }
}
