//! Flux's view of a daemon job: its state and result (RFC 21 as `flux jobs` names them), the
//! fatal exception it got, the job shell's wait status, and the exit code `flux job attach`
//! derives from it (`src/common/libjob/job.c` `flux_job_waitstatus_to_exitcode`).

use crate::flavor::flux::{self as rules, attr};
use crate::model::{Job, JobState};

/// A fatal job exception (`job.exception`).
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    /// `cancel`, `timeout`, `alloc`, `exec`.
    pub kind: &'static str,
    /// The note (may be empty).
    pub note: String,
    /// When, in simulated seconds.
    pub at: f64,
}

/// The job's state: DEPEND PRIORITY SCHED RUN CLEANUP INACTIVE. A pending job is SCHED; a
/// running job whose end has begun (a cancel or time limit, its processes not yet gone) is
/// CLEANUP.
pub fn state(job: &Job) -> &'static str {
    match job.run.state {
        JobState::Pending => "SCHED",
        JobState::Running if job.run.term_sent.is_some() => "CLEANUP",
        JobState::Running => "RUN",
        _ => "INACTIVE",
    }
}

/// The one-letter state (`flux_job_statetostr` "S").
pub fn state_single(job: &Job) -> &'static str {
    match state(job) {
        "SCHED" => "S",
        "RUN" => "R",
        "CLEANUP" => "C",
        _ => "I",
    }
}

/// Whether the scheduler denied the job's allocation (the job then ends FAILED with an
/// `alloc` exception).
pub fn denied(job: &Job) -> Option<&str> {
    job.req.attributes.get(attr::DENIED).map(String::as_str)
}

/// The result of an inactive job: COMPLETED FAILED CANCELED TIMEOUT.
pub fn result(job: &Job) -> Option<&'static str> {
    if !job.run.state.is_finished() {
        return None;
    }
    if denied(job).is_some() {
        return Some("FAILED");
    }
    Some(match job.run.state {
        JobState::Completed => "COMPLETED",
        JobState::Cancelled => "CANCELED",
        JobState::Timeout => "TIMEOUT",
        _ => "FAILED",
    })
}

/// The abbreviated result (`flux_job_resulttostr` "S").
pub fn result_abbrev(result: &str) -> &'static str {
    match result {
        "COMPLETED" => "CD",
        "FAILED" => "F",
        "CANCELED" => "CA",
        "TIMEOUT" => "TO",
        _ => "",
    }
}

/// `{status}`: the state while active, the result once inactive.
pub fn status(job: &Job) -> &'static str {
    result(job).unwrap_or_else(|| state(job))
}

/// `{status_abbrev}`.
pub fn status_abbrev(job: &Job) -> &'static str {
    match result(job) {
        Some(r) => result_abbrev(r),
        None => state_single(job),
    }
}

/// The fatal exception the job got, if any: a cancel (`flux cancel`, also of a pending
/// job), its time limit (`resource allocation expired`, `job-exec.c` `timelimit_cb`), a
/// denied allocation, a failed node (`node failure on <node>`, `bulkexec.c`).
pub fn exception(job: &Job) -> Option<Exception> {
    let at = job
        .run
        .term_sent
        .or(job.run.end_time)
        .unwrap_or(job.submit_time);
    if let Some(note) = denied(job) {
        return Some(Exception {
            kind: "alloc",
            note: note.to_string(),
            at: job.run.end_time.unwrap_or(job.submit_time),
        });
    }
    let ending = match job.run.state {
        JobState::Pending => return None,
        JobState::Running => job.run.ending?,
        s => s,
    };
    match ending {
        JobState::Cancelled => Some(Exception {
            kind: "cancel",
            note: String::new(),
            at,
        }),
        JobState::Timeout => Some(Exception {
            kind: "timeout",
            note: "resource allocation expired".into(),
            at,
        }),
        JobState::NodeFail => Some(Exception {
            kind: "exec",
            note: format!("node failure on {}", job.first_node()),
            at,
        }),
        _ => None,
    }
}

/// Whether the job's shell ever started.
pub fn started(job: &Job) -> bool {
    job.run.start_time.is_some() && denied(job).is_none()
}

/// The job shell's wait status once the job is inactive and its shell ran. The shell exits
/// with the largest task exit code, or 128 + the signal that ended a task, so a task killed
/// by signal S gives the shell's exit status 128 + S.
pub fn waitstatus(job: &Job) -> Option<i32> {
    if !job.run.state.is_finished() || !started(job) {
        return None;
    }
    Some(shell_status(job.run.exit_status))
}

/// The job shell's wait status for the raw wait status of the job's processes.
pub fn shell_status(raw: i32) -> i32 {
    let sig = raw & 0x7f;
    if sig != 0 {
        (128 + sig) << 8
    } else {
        raw & 0xff00
    }
}

/// `{returncode}`: empty while active, the shell's exit code, the negative signal number
/// when the shell was signalled, -128 when cancelled before it started, 1 for another fatal
/// exception before the start (`src/bindings/python/flux/job/info.py` `returncode`).
pub fn returncode(job: &Job) -> Option<i64> {
    let result = result(job)?;
    match waitstatus(job) {
        Some(ws) if ws & 0x7f != 0 => Some(-i64::from(ws & 0x7f)),
        Some(ws) => Some(i64::from((ws >> 8) & 0xff)),
        None if result == "CANCELED" => Some(-128),
        None if result == "FAILED" => Some(1),
        None => None,
    }
}

/// `flux_job_waitstatus_to_exitcode`: the exit code and the message `flux job attach`
/// prints for a non-zero one.
pub fn exit_code(waitstatus: i32) -> (i32, Option<String>) {
    let sig = waitstatus & 0x7f;
    if sig != 0 {
        return (128 + sig, Some(format!("job shell {}", strsignal(sig))));
    }
    let code = (waitstatus >> 8) & 0xff;
    if code > 128 {
        (code, Some(format!("task(s) {}", strsignal(code - 128))))
    } else if code > 0 {
        (code, Some(format!("task(s) exited with exit code {code}")))
    } else {
        (0, None)
    }
}

/// glibc's `strsignal` texts.
pub fn strsignal(sig: i32) -> String {
    let text = match sig {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        4 => "Illegal instruction",
        5 => "Trace/breakpoint trap",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        16 => "Stack fault",
        17 => "Child exited",
        18 => "Continued",
        19 => "Stopped (signal)",
        20 => "Stopped",
        21 => "Stopped (tty input)",
        22 => "Stopped (tty output)",
        23 => "Urgent I/O condition",
        24 => "CPU time limit exceeded",
        25 => "File size limit exceeded",
        26 => "Virtual timer expired",
        27 => "Profiling timer expired",
        28 => "Window changed",
        29 => "I/O possible",
        30 => "Power failure",
        31 => "Bad system call",
        34..=64 => return format!("Real-time signal {}", sig - 34),
        _ => return format!("Unknown signal {sig}"),
    };
    text.to_string()
}

/// The exception line `flux job attach` prints (`attach.c`): seconds since the job's first
/// event (its submission), three decimals.
pub fn exception_line(jobid: &str, job: &Job, e: &Exception) -> String {
    format!(
        "{:.3}s: job.exception {jobid} type={} severity=0 {}",
        (e.at - job.submit_time).max(0.0),
        e.kind,
        e.note
    )
}

/// `FLUX_JOB_ID`-style F58 of a daemon job, prefixed for the caller's locale.
pub fn caller_f58(id: u32) -> String {
    rules::f58(rules::flux_id(id), super::caller_unicode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_libjob() {
        assert_eq!(exit_code(0), (0, None));
        assert_eq!(
            exit_code(3 << 8),
            (3, Some("task(s) exited with exit code 3".into()))
        );
        assert_eq!(
            exit_code(143 << 8),
            (143, Some("task(s) Terminated".into()))
        );
        assert_eq!(exit_code(9), (137, Some("job shell Killed".into())));
        assert_eq!(shell_status(15), 143 << 8);
        assert_eq!(shell_status(7 << 8), 7 << 8);
    }
}
