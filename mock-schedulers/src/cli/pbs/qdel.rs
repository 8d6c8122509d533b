//! Fake PBS `qdel` (reference 2.3; OpenPBS `src/cmds/qdel.c`, `src/server/req_delete.c`,
//! `src/server/svr_chk_owner.c` `chk_job_request`).

use super::{errno, exit_code, state_letter};
use crate::cli::Call;
use crate::protocol::{CancelOutcome, CancelRequest, Request, Response};

/// qdel's option string (`GETOPT_ARGS` in `src/cmds/qdel.c`).
const OPTSTRING: &str = "W:x";

/// qdel's usage (`src/cmds/qdel.c`).
const USAGE: &str = "usage:
\tqdel [-W force|suppress_email=X] [-x] job_identifier...
\tqdel --version
";

/// `--help` of the simulated cluster (the real qdel has none and prints its usage).
pub const HELP: &str = "usage: qdel [-W force] [-x] job_identifier...

Fake PBS qdel of mock-cluster: deletes jobs of the simulated cluster. A running job gets
SIGTERM, then SIGKILL after the cluster's kill_wait; -W force kills it at once.

Examples:
  qdel 12.sim
  qdel -W force 12 13
";

/// What qdel decided for one identifier before asking the server to act.
enum Plan {
    /// Refused with this pbs_errno.
    Refuse(i32),
    /// Delete this job; `kill` when it runs and `-W force` was given.
    Delete { seq: u32, kill: bool },
    /// Nothing to do (the history of a finished job with `-x`).
    Nothing,
}

/// Runs qdel; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let args = call.args();
    if args.len() == 1 && args[0] == "--help" {
        print!("{HELP}");
        return 0;
    }
    let usage = || {
        eprint!("{USAGE}");
        2
    };
    let cli = match super::getopt("qdel", &args, OPTSTRING, true) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return usage();
        }
    };
    let mut errors = 0;
    let (mut force, mut history) = (false, false);
    for (c, v) in &cli.opts {
        let v = v.clone().unwrap_or_default();
        match c {
            'W' if v.is_empty() => {
                eprintln!("qdel: illegal -W value");
                errors += 1;
            }
            'W' if v == "force" => force = true,
            'W' if v
                .split_once('=')
                .is_some_and(|(k, _)| k == "suppress_email") => {}
            'W' => {
                // A number (the old delay) is accepted and ignored; anything else is not.
                if !v.chars().all(|c| c.is_ascii_digit()) {
                    eprintln!("qdel: illegal -W value");
                    errors += 1;
                }
            }
            'x' => history = true,
            _ => errors += 1,
        }
    }
    if errors > 0 || cli.operands.is_empty() {
        return usage();
    }
    let server = super::cluster(&call.dir).cluster_name;
    let mut any_failed = 0;
    let mut ids = Vec::new();
    for op in &cli.operands {
        match super::parse_job_id(op, &server) {
            Ok(id) => ids.push((op.clone(), id)),
            Err(()) => {
                eprintln!("qdel: illegally formed job identifier: {op}");
                any_failed = 1;
            }
        }
    }
    if ids.is_empty() {
        return 1;
    }
    let seqs: Vec<u32> = ids.iter().filter_map(|(_, id)| id.seq).collect();
    let unreachable = |call: &Call, e: &crate::client::Unreachable| {
        call.unreachable(
            e,
            &format!("Connection refused\nCouldn't connect to cluster: {server}"),
        );
        libc::ECONNREFUSED
    };
    let jobs = match call.conn() {
        Err(e) => return unreachable(call, &e),
        Ok(conn) => match conn.call(&Request::Jobs {
            ids: Some(seqs),
            accounting: false,
            status_command: false,
        }) {
            Ok(Response::Jobs { jobs, .. }) => jobs,
            _ => {
                eprintln!("qdel: Batch protocol error");
                return exit_code(errno::PROTOCOL);
            }
        },
    };
    let uid = crate::cli::slurm::identity().1;
    // chk_job_request: unknown and finished (history) jobs are refused, then another user's
    // (svr_authorize_jobreq), then exiting ones.
    let plans: Vec<(String, Plan)> = ids
        .into_iter()
        .map(|(typed, id)| {
            let job = id.seq.and_then(|s| jobs.iter().find(|j| j.id == s));
            let plan = match job {
                None => Plan::Refuse(errno::UNKJOBID),
                Some(j) if j.run.state.is_finished() && history => Plan::Nothing,
                Some(j) if j.run.state.is_finished() => Plan::Refuse(errno::HISTJOBID),
                Some(j) if !may_delete(uid, j) => Plan::Refuse(errno::PERM),
                Some(j) if state_letter(j) == 'E' && !force => Plan::Refuse(errno::BADSTATE),
                Some(j) => Plan::Delete {
                    seq: j.id,
                    kill: force && j.run.state == crate::model::JobState::Running,
                },
            };
            (typed, plan)
        })
        .collect();
    let kill: Vec<u32> = plans
        .iter()
        .filter_map(|(_, p)| match p {
            Plan::Delete { seq, kill: true } => Some(*seq),
            _ => None,
        })
        .collect();
    let delete: Vec<u32> = plans
        .iter()
        .filter_map(|(_, p)| match p {
            Plan::Delete { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    let dir = call.dir.clone();
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => return unreachable(call, &e),
    };
    // -W force: the node gets SIGKILL instead of SIGTERM (req_deletejob2 `sigk`), so a forced
    // delete ends with Exit_status 265. The kill goes first and the deletion right after it,
    // so the job is recorded as deleted.
    if !kill.is_empty() {
        // A job that has just started may not have its process group yet, and the signal
        // needs one: wait (briefly) until its launcher has started it (it writes the pid file).
        for _ in 0..200 {
            let starting = kill.iter().any(|id| {
                let (_, _, pid_file, status_file) = crate::daemon::launch::job_paths(&dir, *id);
                crate::daemon::launch::read_pgid(&pid_file).is_none()
                    && crate::daemon::launch::read_status(&status_file).is_none()
            });
            if !starting {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = conn.call(&Request::Cancel(CancelRequest {
            ids: kill,
            signal: Some(libc::SIGKILL),
            uid,
            ..CancelRequest::default()
        }));
    }
    let mut outcomes = Vec::new();
    if !delete.is_empty() {
        match conn.call(&Request::Cancel(CancelRequest {
            ids: delete,
            uid,
            ..CancelRequest::default()
        })) {
            Ok(Response::Cancelled { results }) => outcomes = results,
            _ => {
                eprintln!("qdel: Batch protocol error");
                return exit_code(errno::PROTOCOL);
            }
        }
    }
    // process_deljobstat: one line per refused job, `qdel: <pbse text> <id as given>`.
    for (typed, plan) in plans {
        let code = match plan {
            Plan::Refuse(code) => code,
            Plan::Nothing => continue,
            Plan::Delete { seq, kill } => match outcomes.iter().find(|o| outcome_id(o) == seq) {
                Some(CancelOutcome::InvalidId(_)) => errno::UNKJOBID,
                Some(CancelOutcome::Denied(_)) => errno::PERM,
                // Ended between the look-up and the deletion (a forced kill ends it at once).
                Some(CancelOutcome::AlreadyDone(_)) if !kill => errno::HISTJOBID,
                _ => continue,
            },
        };
        eprintln!("qdel: {} {typed}", message(code));
        any_failed = code;
    }
    exit_code(any_failed)
}

/// `svr_authorize_jobreq`: the job's owner and the managers (root) may delete it. The daemon
/// checks again, by the uid the kernel reports.
fn may_delete(uid: u32, job: &crate::model::Job) -> bool {
    uid == 0 || job.req.uid == uid
}

fn outcome_id(o: &CancelOutcome) -> u32 {
    match o {
        CancelOutcome::Done(id)
        | CancelOutcome::InvalidId(id)
        | CancelOutcome::AlreadyDone(id)
        | CancelOutcome::Denied(id) => *id,
    }
}

/// `pbse_to_txt` (`src/lib/Liblog/pbs_messages.c`).
fn message(code: i32) -> &'static str {
    match code {
        errno::UNKJOBID => "Unknown Job Id",
        // msg_perm, with its trailing blank.
        errno::PERM => "Unauthorized Request ",
        errno::HISTJOBID => "Job has finished",
        errno::BADSTATE => "Request invalid for state of job",
        _ => "Batch protocol error",
    }
}
