//! The fake Flux commands (`flux alloc|run|submit|jobs|job|cancel|uptime`; reference section 4,
//! flux-core 4a5e79f56b). Each subcommand lives in its own file; this module holds what they
//! share: the `flux` command driver, job ids as the caller prints them, and the daemon queries.

pub mod alloc;
pub mod args;
pub mod cancel;
pub mod format;
pub mod info;
pub mod job;
pub mod jobs;
pub mod jobspec;
pub mod submit;
pub mod units;
pub mod uptime;

use super::Call;
use crate::cli::jobs::{QueryError, Waited, query, wait_until};
use crate::client::Unreachable;
use crate::flavor::flux as rules;
use crate::model::Job;

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["flux"];

/// Prefixes of the variables Flux's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["FLUX_"];

const USAGE: &str = "Usage: flux [OPTIONS] COMMAND ARGS
  -h, --help             Display this message

Common commands of the simulated cluster's flux:
   alloc     Allocate resources and start a Flux instance running COMMAND
   run       Run a job interactively
   submit    Submit a job, print its jobid
   jobs      List jobs
   job       attach, status, id
   cancel    Cancel one or more jobs
   uptime    Tell how long Flux has been up and running

Examples:
  flux alloc -N1 -t 10m -v ./ci-script.sh
  flux submit -n1 --output=out-{{id}}.txt ./build.sh
  flux jobs -a -o '{id.f58} {status} {returncode}'
";

/// Runs the Flux command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    COMMANDS.contains(&prog).then(|| main(call))
}

fn main(call: &mut Call) -> i32 {
    let args = call.args();
    let Some(sub) = args.first() else {
        eprint!("{USAGE}");
        return 1;
    };
    let rest = &args[1..];
    match sub.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            0
        }
        "alloc" => alloc::main(call, jobspec::Cmd::Alloc, rest),
        "run" => alloc::main(call, jobspec::Cmd::Run, rest),
        "submit" => submit::main(call, rest),
        "jobs" => jobs::main(call, rest),
        "job" => job::main(call, rest),
        "cancel" => cancel::main(call, rest),
        "uptime" => uptime::main(call),
        other => {
            // src/cmd/flux.c exec_subcommand.
            eprintln!("flux: `{other}' is not a flux command.  See 'flux --help'");
            1
        }
    }
}

/// Whether F58 ids the caller prints take the `ƒ` prefix (the caller's locale).
pub fn caller_unicode() -> bool {
    rules::unicode_prefix(&|k| std::env::var(k).ok())
}

/// A job id argument that is no job id in any of the forms Flux reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAJobId;

/// The daemon job a job id argument names: `Err` when the text is no job id at all,
/// `Ok(None)` when it is one that no job of the simulated cluster can have.
pub fn job_arg(text: &str) -> Result<Option<u32>, NotAJobId> {
    rules::parse_jobid(text)
        .map(rules::daemon_id)
        .ok_or(NotAJobId)
}

/// Why jobs could not be fetched.
#[derive(Debug)]
pub enum Fetch {
    /// No daemon.
    Unreachable(Unreachable),
    /// The status-timeout injection.
    TimedOut,
    /// Another answer.
    Other(String),
}

/// Fetches jobs (every job the controller still has, also old finished ones: Flux keeps
/// inactive jobs); `status_command` makes the status-timeout injection apply.
pub fn fetch(
    call: &mut Call,
    ids: Option<Vec<u32>>,
    status_command: bool,
) -> Result<(Vec<Job>, f64), Fetch> {
    let conn = call.conn().map_err(Fetch::Unreachable)?;
    query(conn, ids, true, status_command).map_err(|e| match e {
        QueryError::Timeout => Fetch::TimedOut,
        QueryError::Other(message) => Fetch::Other(message),
        QueryError::Unreachable => Fetch::Other("no daemon answered".into()),
    })
}

/// Fetches one job over a fresh connection (for threads that do not own the call).
pub fn fetch_one(dir: &std::path::Path, id: u32) -> Option<Job> {
    let mut conn = crate::client::Conn::connect(dir).ok()?;
    let (jobs, _) = query(&mut conn, Some(vec![id]), true, false).ok()?;
    jobs.into_iter().next()
}

/// Polls the job until `done` says so; `None` when the job is gone or the daemon cannot be
/// reached any more (a daemon restart is waited out).
pub fn wait_for(dir: &std::path::Path, id: u32, done: impl FnMut(&Job) -> bool) -> Option<Job> {
    match wait_until(dir, id, done) {
        Waited::Done(job) => Some(*job),
        Waited::Gone | Waited::Unreachable => None,
    }
}
