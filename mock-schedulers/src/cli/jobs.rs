//! Asking the daemon about jobs, the same for every scheduler's front end: one query, and a
//! wait for a job to reach a state that outlives a daemon restart.

use std::path::Path;
use std::time::Duration;

use crate::client::Conn;
use crate::model::Job;
use crate::protocol::{Request, Response};

/// Why a query for jobs failed, for the command to word in its scheduler's terms.
#[derive(Debug)]
pub enum QueryError {
    /// No daemon answered (the front end has already reported it).
    Unreachable,
    /// The injected status timeout.
    Timeout,
    /// Anything else, with a description.
    Other(String),
}

/// The jobs `ids` names (every job the daemon still has when `None`), with the daemon's
/// clock; `status_command` makes the status-timeout injection apply.
pub fn query(
    conn: &mut Conn,
    ids: Option<Vec<u32>>,
    accounting: bool,
    status_command: bool,
) -> Result<(Vec<Job>, f64), QueryError> {
    match conn.call(&Request::Jobs {
        ids,
        accounting,
        status_command,
    }) {
        Ok(Response::Jobs { jobs, now, .. }) => Ok((jobs, now)),
        Ok(Response::StatusTimeout) => Err(QueryError::Timeout),
        Ok(Response::Error { message, .. }) => Err(QueryError::Other(message)),
        Ok(_) => Err(QueryError::Other(
            "unexpected answer from the daemon".into(),
        )),
        Err(e) => Err(QueryError::Other(e.to_string())),
    }
}

/// How a wait for a job ended.
#[derive(Debug)]
pub enum Waited {
    /// The job, as it was when `done` accepted it.
    Done(Box<Job>),
    /// The daemon no longer knows the job.
    Gone,
    /// The daemon could not be reached for a hundred tries in a row.
    Unreachable,
}

/// Polls job `id` of the cluster in `dir` until `done` accepts it, over fresh connections, so
/// that a daemon restart is waited out (the job survives it). Waits grow from 10 ms to 200 ms.
pub fn wait_until(dir: &Path, id: u32, mut done: impl FnMut(&Job) -> bool) -> Waited {
    let mut delay = Duration::from_millis(10);
    let mut failures = 0;
    let mut conn: Option<Conn> = None;
    loop {
        if conn.is_none() {
            conn = Conn::connect_or_start(dir).ok();
        }
        let answer = conn.as_mut().map(|c| query(c, Some(vec![id]), true, false));
        match answer {
            Some(Ok((jobs, _))) => {
                failures = 0;
                let Some(job) = jobs.into_iter().next() else {
                    return Waited::Gone;
                };
                if done(&job) {
                    return Waited::Done(Box::new(job));
                }
            }
            _ => {
                conn = None;
                failures += 1;
                if failures > 100 {
                    return Waited::Unreachable;
                }
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}
