//! Fake `bkill` (reference 3.3; OL `lsf/cmdtools/bkill/bkill.c`, `lsf/cmdtools/lib/sig.c`,
//! `lsf/cmdtools/lib/jobid.c`): kills jobs (a pending one is removed; a running one gets
//! SIGINT, the flavour's first signal, then SIGKILL after `kill_wait`) or sends `-s SIG`.
//! `Job <N> is being terminated` / `is being signaled` on stdout; `Job <N>: <lsb_errmsg>` on
//! stderr for a job it cannot act on (`User permission denied` for another user's), and then
//! exit 255.

use std::io::Write;

use super::{
    Opt, QueryError, SIGNALS, getopt, name_matches, opt, parse_job_id, print_unreachable,
    query_jobs, signal_value,
};
use crate::cli::Call;
use crate::flavor::lsf::errmsg;
use crate::model::{Job, JobState};
use crate::protocol::{CancelOutcome, CancelRequest, Request, Response};

const SPEC: &[Opt] = &[
    opt("s", true),
    opt("l", false),
    opt("u", true),
    opt("q", true),
    opt("J", true),
    opt("m", true),
    opt("r", false),
    opt("h", false),
    opt("V", false),
];

const USAGE: &str = "Usage: bkill [-h] [-V] [-l] [-m host_name] [-q queue_name]
               [-u user_name | -u all] [0] [-r | -s sigval] [-J job_name] 
               [jobId | \"jobId[index_list]\"]...
";

fn usage() -> i32 {
    eprint!("{USAGE}");
    255
}

/// Runs bkill; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let cli = match getopt("bkill", &call.args(), SPEC, false) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return usage();
        }
    };
    if cli.has("h") {
        return usage();
    }
    if cli.has("V") {
        eprintln!("{}", super::VERSION);
        return 0;
    }
    if cli.has("l") {
        // OL's bkill lists the signal names and exits -1.
        let names: String = SIGNALS.iter().map(|(n, _)| format!("{n} ")).collect();
        println!("{names}");
        return 255;
    }
    if cli.has("r") {
        eprintln!("bkill: -r is not supported by mock-cluster");
        return 255;
    }
    let signal = match cli.value("s") {
        Some(text) => match signal_value(text) {
            Some(sig) => Some(sig),
            None => {
                eprintln!("{text}: Illegal signal value");
                return 255;
            }
        },
        None => None,
    };
    // -s KILL is bkill itself: the whole kill sequence, "terminated".
    let signal = signal.filter(|s| *s != libc::SIGKILL);
    let mut ids = Vec::new();
    for operand in &cli.operands {
        match parse_job_id(operand) {
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => {
                eprintln!("{operand}: Illegal job ID.");
                return 255;
            }
        }
    }
    let filtered = ["u", "q", "J", "m"].iter().any(|o| cli.has(o));
    if ids.is_empty() && !filtered {
        eprintln!("Job ID or one of '-m', '-u' '-q' and '-J' must be specified.");
        return usage();
    }
    // `0` (or no id with a filter): the caller's unfinished jobs that match, all of them with
    // `0`, else the last one submitted (OL `getJobIds`, `LAST_JOB`).
    let every = ids.contains(&0);
    ids.retain(|id| *id != 0);
    let by_filter = ids.is_empty();
    let (jobs, _) = match query_jobs(call, (!by_filter).then(|| ids.clone()), false) {
        Ok(r) => r,
        Err(QueryError::Unreachable) => return 255,
        Err(QueryError::Timeout) => {
            super::print_timeout();
            return 255;
        }
        Err(QueryError::Other(message)) => {
            eprintln!("{message}");
            return 255;
        }
    };
    let targets: Vec<(u32, Option<Job>)> = if by_filter {
        let mut matching = matching_jobs(&cli, jobs);
        if matching.is_empty() {
            eprintln!("{}", nothing_found(&cli));
            return 255;
        }
        if !every {
            matching.sort_by(|a, b| {
                a.submit_time
                    .total_cmp(&b.submit_time)
                    .then(a.id.cmp(&b.id))
            });
            matching = matching.split_off(matching.len() - 1);
        }
        matching.into_iter().map(|j| (j.id, Some(j))).collect()
    } else {
        ids.iter()
            .map(|id| (*id, jobs.iter().find(|j| j.id == *id).cloned()))
            .collect()
    };
    let (_, uid, _) = crate::cli::slurm::identity();
    let mut failed = false;
    for (id, job) in targets {
        let done = match job {
            None => Err(errmsg::NO_JOB),
            // mbatchd checks the requester before the job's state: root, the administrators
            // (here root) and the job's owner (the daemon checks again, by the kernel's uid).
            Some(j) if uid != 0 && j.req.uid != uid => Err(errmsg::PERMISSION),
            Some(j) if j.run.state.is_finished() => Err(errmsg::JOB_FINISHED),
            Some(j) if signal.is_some() && j.run.state == JobState::Pending => {
                Err(errmsg::NOT_STARTED)
            }
            Some(j) => cancel(call, id, signal, uid, &j),
        };
        match done {
            Ok(()) => {
                let what = if signal.is_some() {
                    "signaled"
                } else {
                    "terminated"
                };
                println!("Job <{id}> is being {what}");
            }
            Err(message) => {
                let _ = std::io::stdout().flush();
                eprintln!("Job <{id}>: {message}");
                failed = true;
            }
        }
    }
    let _ = std::io::stdout().flush();
    if failed { 255 } else { 0 }
}

/// Asks the daemon to kill (or signal) one job.
fn cancel(
    call: &mut Call,
    id: u32,
    signal: Option<i32>,
    uid: u32,
    job: &Job,
) -> Result<(), &'static str> {
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            print_unreachable(call, &e, "");
            return Err(errmsg::CONN_REFUSED);
        }
    };
    let answer = conn.call(&Request::Cancel(CancelRequest {
        ids: vec![id],
        signal,
        uid,
        ..CancelRequest::default()
    }));
    match answer {
        Ok(Response::Cancelled { results }) => match results.first() {
            Some(CancelOutcome::Done(_)) => Ok(()),
            // A job already being killed: the kill is asked for again.
            Some(CancelOutcome::AlreadyDone(_)) if job.run.state == JobState::Running => Ok(()),
            Some(CancelOutcome::AlreadyDone(_)) => Err(errmsg::JOB_FINISHED),
            Some(CancelOutcome::InvalidId(_)) | None => Err(errmsg::NO_JOB),
            Some(CancelOutcome::Denied(_)) => Err(errmsg::PERMISSION),
        },
        _ => Err(errmsg::CONN_REFUSED),
    }
}

/// The unfinished jobs `-u` (the caller by default, `all`), `-q`, `-J` and `-m` select.
fn matching_jobs(cli: &super::Parsed, jobs: Vec<Job>) -> Vec<Job> {
    let me = crate::cli::slurm::identity().0;
    let user = cli.value("u").map(str::to_string).unwrap_or(me);
    jobs.into_iter()
        .filter(|j| !j.run.state.is_finished())
        .filter(|j| user == "all" || j.req.user == user)
        .filter(|j| cli.value("q").is_none_or(|q| j.partition == q))
        .filter(|j| cli.value("J").is_none_or(|n| name_matches(n, &j.req.name)))
        .filter(|j| {
            cli.value("m")
                .is_none_or(|h| j.run.alloc.iter().any(|a| a.node == h))
        })
        .collect()
}

/// OL `jobInfoErr` for an empty selection.
fn nothing_found(cli: &super::Parsed) -> String {
    let mut place = String::new();
    if let Some(q) = cli.value("q") {
        place.push_str(&format!(" in queue <{q}"));
    }
    if let Some(h) = cli.value("m") {
        place.push_str(if place.is_empty() {
            " on host/group <"
        } else {
            "> and on host/group <"
        });
        place.push_str(h);
    }
    if !place.is_empty() {
        place.push('>');
    }
    if let Some(name) = cli.value("J") {
        return format!("Job <{name}> is not found{place}");
    }
    format!("No unfinished job found{place}")
}
