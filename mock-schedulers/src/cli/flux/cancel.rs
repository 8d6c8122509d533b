//! Fake `flux cancel` (`src/cmd/flux-cancel.py`; error texts from
//! `src/modules/job-manager/raise.c`). Raises a `cancel` exception on each job: a pending job
//! ends at once, a running one gets SIGTERM and SIGKILL after the cluster's `kill_wait`.
//! Silent on success; `flux-cancel: ERROR: <id>: unknown job id`, `... job is inactive` or,
//! for another user's job, `... guests can only raise exceptions on their own jobs`, exit 1.
//! `--all`, `-u`, `-S` cancel the caller's (or every) active job and say how many; only the
//! instance owner (root here) may name other users.

use super::args::{self, Opt, Takes, opt, opt_alias};
use super::info::{self, caller_f58};
use super::{Fetch, NotAJobId, job_arg};
use crate::cli::Call;
use crate::model::Job;
use crate::protocol::{CancelRequest, Request, Response};

const SPEC: &[Opt] = &[
    opt(Some('h'), "help", Takes::Flag),
    opt(None, "all", Takes::Flag),
    opt_alias(Some('n'), "dry-run", Takes::Flag, &["dry"]),
    opt(Some('q'), "quiet", Takes::Flag),
    opt(Some('u'), "user", Takes::Value),
    opt_alias(Some('S'), "states", Takes::Value, &["state"]),
    opt(Some('m'), "message", Takes::Value),
];

const USAGE: &str = "flux cancel [OPTIONS] [JOBID...]";

const HELP: &str = "usage: flux cancel [OPTIONS] [JOBID...]

Cancel pending or running jobs with an optional exception note.

options:
  -h, --help            show this help message and exit
  --all                 Target all jobs
  -n, --dry-run         Do not cancel any jobs
  -q, --quiet           Suppress output when no jobs match
  -u, --user USER       Set target user or 'all' (instance owner only)
  -S, --states STATES   List of job states to target (default=active)
  -m, --message NOTE    Set optional cancel exception note

Example:
  flux cancel $(flux jobs -n -o '{id}')
";

fn log(msg: &str) {
    eprintln!("flux-cancel: {msg}");
}

fn error(msg: &str) -> i32 {
    eprintln!("flux-cancel: ERROR: {msg}");
    1
}

/// raise.c's refusal of a guest's exception on another user's job.
const NOT_YOURS: &str = "guests can only raise exceptions on their own jobs";

/// Whether `uid` may cancel `job`: its owner, or the instance owner (root). The daemon checks
/// again, by the uid the kernel reports.
fn may_cancel(uid: u32, job: &Job) -> bool {
    uid == 0 || job.req.uid == uid
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn fetch(call: &mut Call, ids: Option<Vec<u32>>) -> Result<Vec<Job>, i32> {
    match super::fetch(call, ids, false) {
        Ok((jobs, _)) => Ok(jobs),
        Err(Fetch::Unreachable(e)) => Err(error(&format!(
            "Unable to connect to Flux: mock-cluster daemon not reachable at {}: {}",
            e.socket.display(),
            e.error
        ))),
        Err(Fetch::TimedOut) => Err(error("Connection timed out")),
        Err(Fetch::Other(m)) => Err(error(&m)),
    }
}

/// Cancels `ids`; the ids the daemon refused as another user's.
fn send(call: &mut Call, ids: Vec<u32>) -> Result<Vec<u32>, i32> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(conn) = call.conn() else {
        return Err(error("Unable to connect to Flux"));
    };
    match conn.call(&Request::Cancel(CancelRequest {
        ids,
        uid,
        ..CancelRequest::default()
    })) {
        Ok(Response::Cancelled { results }) => Ok(results
            .into_iter()
            .filter_map(|r| match r {
                crate::protocol::CancelOutcome::Denied(id) => Some(id),
                _ => None,
            })
            .collect()),
        _ => Err(error("no answer from the mock-cluster daemon")),
    }
}

/// Runs `flux cancel`; returns the exit code.
pub fn main(call: &mut Call, argv: &[String]) -> i32 {
    let parsed = match args::parse(argv, SPEC, false) {
        Ok(p) => p,
        Err(m) => {
            eprintln!("usage: {USAGE}");
            eprintln!("flux-cancel: error: {m}");
            return 2;
        }
    };
    if parsed.has("help") {
        print!("{HELP}");
        return 0;
    }
    let mut ids: Vec<(String, Option<u32>)> = Vec::new();
    for text in &parsed.operands {
        match job_arg(text) {
            Ok(id) => ids.push((text.clone(), id)),
            Err(NotAJobId) => {
                eprintln!("usage: {USAGE}");
                eprintln!("flux-cancel: error: argument JOBID...: invalid JobID value: '{text}'");
                return 2;
            }
        }
    }
    let all = parsed.has("all") || parsed.has("user") || parsed.has("states");
    if all && !ids.is_empty() {
        return error("Do not specify a list of jobids with --all,--user,--states options");
    }
    let dry = parsed.has("dry-run");
    if all {
        return cancel_all(call, &parsed, dry);
    }
    if ids.is_empty() {
        return error("No target jobs were provided");
    }
    if dry {
        log(&format!("Would cancel {}", plural(ids.len(), "job")));
        return 0;
    }
    let known: Vec<u32> = ids.iter().filter_map(|(_, id)| *id).collect();
    let jobs = match fetch(call, Some(known)) {
        Ok(j) => j,
        Err(code) => return code,
    };
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for (text, id) in &ids {
        // flux-cancel prints the JobID as str(): its F58.
        let shown = rules_f58(text, *id);
        match id.and_then(|id| jobs.iter().find(|j| j.id == id)) {
            None => errors.push(format!("{shown}: unknown job id")),
            Some(j) if j.run.state.is_finished() => {
                errors.push(format!("{shown}: job is inactive"));
            }
            Some(j) if !may_cancel(me, j) => errors.push(format!("{shown}: {NOT_YOURS}")),
            Some(j) => targets.push(j.id),
        }
    }
    match send(call, targets) {
        Err(code) => return code,
        Ok(refused) => errors.extend(
            refused
                .into_iter()
                .map(|id| format!("{}: {NOT_YOURS}", caller_f58(id))),
        ),
    }
    for e in &errors {
        eprintln!("flux-cancel: ERROR: {e}");
    }
    if errors.is_empty() { 0 } else { 1 }
}

/// A job id argument as `str(JobID)` prints it: F58 in the caller's locale.
fn rules_f58(text: &str, id: Option<u32>) -> String {
    match (id, crate::flavor::flux::parse_jobid(text)) {
        (Some(id), _) => caller_f58(id),
        (None, Some(fluid)) => crate::flavor::flux::f58(fluid, super::caller_unicode()),
        (None, None) => text.to_string(),
    }
}

fn cancel_all(call: &mut Call, parsed: &args::Parsed, dry: bool) -> i32 {
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    let user: Option<u32> = match parsed.value("user") {
        None => Some(me),
        Some("all") => None,
        Some(u) => match u.parse::<u32>().ok().or_else(|| {
            nix::unistd::User::from_name(u)
                .ok()
                .flatten()
                .map(|x| x.uid.as_raw())
        }) {
            Some(uid) => Some(uid),
            None => return error(&format!("Invalid user {u} specified")),
        },
    };
    // The job manager's raiseall: a guest may only name itself.
    if me != 0 && user != Some(me) {
        return error(NOT_YOURS);
    }
    let mut states: Vec<String> = Vec::new();
    for s in parsed.values("states") {
        for state in s.split(',') {
            let state = state.to_ascii_lowercase();
            if !matches!(
                state.as_str(),
                "depend" | "priority" | "sched" | "run" | "pending" | "running" | "active"
            ) {
                return error(&format!("Invalid state {state} specified"));
            }
            states.push(state);
        }
    }
    if states.is_empty() {
        states = vec!["pending".into(), "running".into()];
    }
    let jobs = match fetch(call, None) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let targets: Vec<u32> = jobs
        .iter()
        .filter(|j| !j.run.state.is_finished())
        .filter(|j| user.is_none_or(|u| u == j.req.uid))
        .filter(|j| {
            let state = info::state(j);
            states.iter().any(|s| match s.as_str() {
                "pending" => matches!(state, "DEPEND" | "PRIORITY" | "SCHED"),
                "running" => matches!(state, "RUN" | "CLEANUP"),
                "active" => true,
                other => other.eq_ignore_ascii_case(state),
            })
        })
        .map(|j| j.id)
        .collect();
    let count = targets.len();
    if count > 0 {
        if dry {
            log(&format!("Would cancel {}", plural(count, "job")));
        } else {
            match send(call, targets) {
                Err(code) => return code,
                Ok(refused) if !refused.is_empty() => return error(NOT_YOURS),
                Ok(_) => {}
            }
            log(&format!(
                "Canceled {} ({})",
                plural(count, "job"),
                plural(0, "error")
            ));
        }
    } else if !parsed.has("quiet") {
        log("Matched 0 jobs");
    }
    0
}
