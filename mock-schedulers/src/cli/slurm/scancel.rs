//! Fake `scancel`.

use super::CONNECT_FAILURE;
use crate::cli::Call;
use crate::cli::getopt::{HasArg::*, Opt, opt};
use crate::model::JobState;
use crate::protocol::{CancelOutcome, CancelRequest, Request, Response, SignalScope};

use super::signal_number;

const SPEC: &[Opt] = &[
    opt("account", Some('A'), Required),
    opt("batch", Some('b'), No),
    opt("full", Some('f'), No),
    opt("help", Some('h'), No),
    opt("interactive", Some('i'), No),
    opt("jobname", None, Required),
    opt("me", None, No),
    opt("name", Some('n'), Required),
    opt("partition", Some('p'), Required),
    opt("quiet", Some('Q'), No),
    opt("signal", Some('s'), Required),
    opt("state", Some('t'), Required),
    opt("usage", None, No),
    opt("user", Some('u'), Required),
    opt("verbose", Some('v'), No),
    opt("version", Some('V'), No),
];

const HELP: &str = "Usage: scancel [OPTIONS] [job_id[_array_id][.step_id]]

Fake scancel of mock-cluster: signal or cancel jobs in the simulated cluster.

  -b, --batch                     signal batch shell for specified job
      --me                        cancel jobs of the current user
  -n, --name=job_name             act only on jobs with this name
  -p, --partition=partition       act only on jobs in this partition
  -Q, --quiet                     disable warnings
  -s, --signal=name | integer     signal to send to job, default is SIGKILL
  -t, --state=states              act only on jobs in this state (PENDING, RUNNING)
  -u, --user=user_name            act only on jobs of this user
  -v, --verbose                   verbosity level

Examples:
  scancel 42
  scancel -n build-17 -t PENDING
  scancel -s USR1 42
";

/// Why a job id could not be acted on.
enum Outcome {
    Invalid,
    Finished,
    Denied,
}

/// scancel's exit status when a job was another user's: `ESLURM_ACCESS_DENIED` (2002), of
/// which `exit()` keeps the low 8 bits (observed on Slurm 22.05).
const ACCESS_DENIED_EXIT: i32 = 2002 & 0xff;

/// Runs scancel; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let cli = match super::parse_command_line(call, SPEC, false, 1, true, HELP) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut req = CancelRequest {
        uid: super::identity().1,
        ..CancelRequest::default()
    };
    for id in &cli.operands {
        // `123` (an array's id: all its tasks), `123_4`, `123_[1-3]` (scancel(1)).
        match super::format::JobSelector::parse(id) {
            Some(s) if s.id > 0 => match s.tasks {
                Some(tasks) => req.array_tasks.extend(tasks.into_iter().map(|t| (s.id, t))),
                None => req.ids.push(s.id),
            },
            _ => {
                eprintln!("scancel: error: Invalid job id {id}");
                return 1;
            }
        }
    }
    req.name = cli
        .value("name")
        .or(cli.value("jobname"))
        .map(str::to_string);
    req.user = if cli.has("me") {
        Some(super::identity().0)
    } else {
        cli.value("user").map(str::to_string)
    };
    req.partition = cli.value("partition").map(str::to_string);
    req.scope = if cli.has("full") {
        SignalScope::Full
    } else if cli.has("batch") {
        SignalScope::BatchShell
    } else {
        SignalScope::Steps
    };
    if let Some(s) = cli.value("state") {
        match JobState::parse(s) {
            Some(st) => req.state = Some(st),
            None => {
                eprintln!("scancel: error: Invalid job state specified: {s}");
                return 1;
            }
        }
    }
    if let Some(s) = cli.value("signal") {
        match signal_number(s) {
            Some(9) => {}
            Some(n) => req.signal = Some(n),
            None => {
                eprintln!("scancel: error: Unknown job signal: {s}");
                return 1;
            }
        }
    }
    if req.ids.is_empty()
        && req.array_tasks.is_empty()
        && req.name.is_none()
        && req.user.is_none()
        && req.partition.is_none()
        && req.state.is_none()
    {
        eprintln!("scancel: error: No job identification provided");
        return 1;
    }
    let verbose = cli.has("verbose");
    let quiet = cli.has("quiet");
    let signal = req.signal;
    let first_id = req.ids.first().copied().unwrap_or(0);
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            call.unreachable(
                &e,
                &format!("scancel: error: Kill job error on job id {first_id}: {CONNECT_FAILURE}"),
            );
            return 1;
        }
    };
    let results = match conn.call(&Request::Cancel(req)) {
        Ok(Response::Cancelled { results }) => results,
        _ => {
            eprintln!("scancel: error: Kill job error on job id {first_id}: {CONNECT_FAILURE}");
            return 1;
        }
    };
    let mut code = 0;
    for r in results {
        let (id, err) = match r {
            CancelOutcome::Done(id) => (id, None),
            CancelOutcome::InvalidId(id) => (id, Some(Outcome::Invalid)),
            CancelOutcome::AlreadyDone(id) => (id, Some(Outcome::Finished)),
            CancelOutcome::Denied(id) => (id, Some(Outcome::Denied)),
        };
        if verbose {
            match signal {
                Some(s) => eprintln!("scancel: Signal {s} to job {id}"),
                None => eprintln!("scancel: Terminating job {id}"),
            }
        }
        match (err, signal) {
            (None, _) => {}
            // Another user's job: said whatever the signal, with or without -v (observed).
            (Some(Outcome::Denied), _) => {
                code = code.max(ACCESS_DENIED_EXIT);
                if !quiet {
                    eprintln!(
                        "scancel: error: Kill job error on job id {id}: {}",
                        crate::flavor::slurm::ACCESS_DENIED
                    );
                }
            }
            // Silent when cancelling (SIGKILL) without -v.
            (Some(_), None) if !verbose => {}
            // With -v a finished job is reported, yet scancel succeeds (observed).
            (Some(Outcome::Finished), None) => {
                if !quiet {
                    eprintln!(
                        "scancel: error: Kill job error on job id {id}: Job/step already completing or completed"
                    );
                }
            }
            // A signal to a finished or unknown job: "Invalid job id specified", rc 1 (observed).
            (Some(_), _) => {
                code = code.max(1);
                if !quiet {
                    eprintln!(
                        "scancel: error: Kill job error on job id {id}: Invalid job id specified"
                    );
                }
            }
        }
    }
    code
}
