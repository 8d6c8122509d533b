//! Fake Cobalt `qdel` (reference 5.4; `src/clients/POSIX/qdel.py`,
//! `src/lib/client_utils.py` `validate_jobid_args`/`get_jobids`, `src/lib/Components/cqm.py`
//! `QueueManager.del_jobs`, `Job.kill` and the `_sm_*__kill` handlers).
//!
//! qdel asks the queue manager to delete the caller's jobs among the ids; it lists the jobs
//! that were in the queue and prints nothing when none was.

use std::fs::OpenOptions;
use std::io::Write;

use super::optparse::{self, Kind, Opt, opt};
use super::{Usage, tabular, unexpected, unreachable};
use crate::cli::Call;
use crate::flavor::cobalt::{cobalt_time, log_path};
use crate::model::{Job, JobState};
use crate::protocol::{CancelOutcome, CancelRequest, Request, Response};

const SPEC: &[Opt] = &[
    opt("version", &["--version"], Kind::Flag),
    opt("help", &["-h", "--help"], Kind::Flag),
    opt("debug", &["-d", "--debug"], Kind::Flag),
];

const USAGE: Usage = Usage {
    prog: "qdel",
    text: "%prog [options] <jobid1> [ ... <jobidN>]",
    revision: "345",
    help: &[("-d, --debug", "turn on communication debugging")],
};

/// The line cqm's `_sm_killing__kill` writes when a job being killed is deleted again.
fn repeated_delete(job: &Job) -> Option<&'static str> {
    match job.run.ending {
        Some(JobState::Timeout) => Some(
            "Info: job is already being terminated for exceeding a time limit; ignoring user delete request",
        ),
        Some(JobState::Cancelled) if job.run.kill_sent => {
            Some("Info: job is already being forced to terminate; ignoring user delete request")
        }
        Some(JobState::Cancelled) => Some(
            "Info: user delete request already pending with signal SIGTERM; ignoring user delete request",
        ),
        _ => None,
    }
}

/// Runs qdel; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let parsed = optparse::parse(&call.args(), SPEC);
    for found in &parsed.found {
        match found.dest {
            "help" => return USAGE.print_help(),
            "version" => return USAGE.print_version(),
            _ => {}
        }
    }
    if let Some(error) = &parsed.error {
        return USAGE.parse_error(error);
    }
    if parsed.args.is_empty() {
        return USAGE.print_with_error("No Jobid(s) given");
    }
    let mut ids: Vec<u32> = Vec::new();
    for a in &parsed.args {
        if a == "*" {
            continue;
        }
        let t = a.trim();
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            eprintln!("jobid must be an integer: {a}");
            return 1;
        }
        // A number no job can have matches nothing.
        if let Ok(id) = t.strip_prefix('+').unwrap_or(t).parse::<u32>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return 0;
    }
    let (user, uid, _) = crate::cli::slurm::identity();
    let request = Request::Cancel(CancelRequest {
        ids,
        user: Some(user.clone()),
        uid,
        ..CancelRequest::default()
    });
    let answer = match call.conn() {
        Ok(conn) => conn.call(&request),
        Err(e) => return unreachable(call, &e, "queue-manager"),
    };
    let results = match answer {
        Ok(Response::Cancelled { results }) => results,
        _ => return unexpected(call, "queue-manager", "del_jobs"),
    };
    let mut deleted: Vec<u32> = Vec::new();
    let mut again: Vec<u32> = Vec::new();
    for r in results {
        match r {
            CancelOutcome::Done(id) => deleted.push(id),
            CancelOutcome::AlreadyDone(id) => again.push(id),
            // cqm's del_jobs matches the caller's jobs only: another user's is not found.
            CancelOutcome::InvalidId(_) | CancelOutcome::Denied(_) => {}
        }
    }
    // Jobs already being killed are still in the queue: listed again, and the queue manager
    // notes the repeated request in their .cobaltlog.
    if !again.is_empty() {
        let answer = match call.conn() {
            Ok(conn) => conn.call(&Request::Jobs {
                ids: Some(again),
                accounting: false,
                status_command: false,
            }),
            Err(e) => return unreachable(call, &e, "queue-manager"),
        };
        if let Ok(Response::Jobs { jobs, now, .. }) = answer {
            for job in jobs.iter().filter(|j| !j.run.state.is_finished()) {
                deleted.push(job.id);
                if let (Some(line), Some(path)) = (repeated_delete(job), log_path(job))
                    && let Ok(mut f) = OpenOptions::new().append(true).open(&path)
                {
                    let _ = writeln!(f, "{} {line}", cobalt_time(now));
                }
            }
        }
    }
    if deleted.is_empty() {
        return 0;
    }
    deleted.sort_unstable();
    let mut rows = vec![vec!["JobID".to_string(), "User".to_string()]];
    rows.extend(deleted.iter().map(|id| vec![id.to_string(), user.clone()]));
    println!("      Deleted Jobs");
    print!("{}", tabular(&rows));
    0
}
