//! Cobalt rules (reference section 5; ALCF Cobalt 1.0.33: `src/lib/Components/cqm.py`,
//! `src/clients/POSIX/qsub.py`, `src/lib/Components/user_script_forker.py`,
//! `src/lib/Components/pg_forker.py`, `src/clients/cobalt-launcher.py`).
//!
//! The queue manager writes its lines about a job into the job's `.cobaltlog`; the job's file
//! names and name may hold the job id as `%j` (qsub turns `$jobid` and `$COBALT_JOBID` into it,
//! and `%` into `%%`).

use std::collections::BTreeMap;

use super::{Notice, NoticeFile, Refusal, Rules, Site, Words};
use crate::model::{Job, JobState};

/// Cobalt's rules.
#[derive(Debug)]
pub struct Cobalt;

/// Keys of [`crate::model::JobRequest::attributes`] that qsub fills in.
pub mod attr {
    /// `--proccount` (the node count when absent).
    pub const PROCS: &str = "procs";
    /// qsub's arguments after directives and `--env` merging, as the `.cobaltlog` shows them.
    pub const QSUB_ARGV: &str = "qsub_argv";
    /// The terminal qsub's standard output was, when it was one.
    pub const TTY: &str = "tty";
    /// `--env` as qstat shows it (`A=B C=D`).
    pub const ENVS: &str = "envs";
    /// `-M`.
    pub const NOTIFY: &str = "notify";
    /// `--attrs` as qstat shows it (a Python dict).
    pub const ATTRS: &str = "attrs";
    /// `--user_list` plus the submitter, `:`-separated.
    pub const USER_LIST: &str = "user_list";
    /// The submitter's PATH (qstat's `Path`).
    pub const PATH: &str = "path";
}

/// A simulated time as Cobalt prints it (`Util.sec_to_str` with pytz and no `TZ`):
/// `Mon Jan 23 02:44:05 2017 +0000 (UTC)`.
pub fn cobalt_time(t: f64) -> String {
    match chrono::DateTime::from_timestamp(t.floor() as i64, 0) {
        Some(dt) => dt.format("%a %b %d %H:%M:%S %Y +0000 (UTC)").to_string(),
        None => "Unknown".into(),
    }
}

/// Expands `%j` (the job id) and `%%` in a file name or job name qsub stored; other `%`
/// sequences stay as they are.
pub fn expand_id(pattern: &str, id: u32) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('j') => {
                chars.next();
                out.push_str(&id.to_string());
            }
            Some('%') => {
                chars.next();
                out.push('%');
            }
            _ => out.push('%'),
        }
    }
    out
}

/// The job's `.cobaltlog`, when it has one.
pub fn log_path(job: &Job) -> Option<String> {
    job.req.debug_log.as_deref().map(|p| expand_id(p, job.id))
}

/// The exit code Cobalt reports for a raw wait status: `WEXITSTATUS`, or 128 + the signal
/// (`src/lib/Components/base_forker.py` `_wait`).
pub fn exit_code(status: i32) -> i32 {
    if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    }
}

/// The name of a user id, or the id itself.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// `<ts> <line>` into the job's `.cobaltlog` (cqm `_sm_log_info(..., cobalt_log=True)`).
fn log_line(job: &Job, at: f64, line: &str) -> Vec<Notice> {
    match log_path(job) {
        Some(path) => vec![Notice {
            file: NoticeFile::Path(path),
            line: format!("{} {line}\n", cobalt_time(at)),
        }],
        None => Vec::new(),
    }
}

impl Rules for Cobalt {
    /// The queue manager's `QueueError` texts (cqm `QueueManager.add_jobs`,
    /// `Restriction.maxqueuedjobs`); qsub prints them as an XML-RPC fault.
    fn words(&self, refusal: &Refusal) -> Words {
        let message = match refusal {
            Refusal::Injected(text) | Refusal::OtherUser(text) => text.clone(),
            Refusal::UnknownPartition(name) => {
                format!("trying to add job to non-existent queue '{name}'")
            }
            Refusal::NoDefaultPartition => {
                "trying to add job to non-existent queue 'default'".into()
            }
            Refusal::SubmitLimit => {
                "The limit of jobs per user in the queue has been reached\n".into()
            }
            Refusal::IdSpaceExhausted(id) => format!("job id {id} is beyond the highest job id"),
            Refusal::UnknownQos(_)
            | Refusal::InvalidArray
            | Refusal::DependencyProblem
            | Refusal::UnknownNode
            | Refusal::NodesOutsidePartition
            | Refusal::UnknownFeature
            | Refusal::TooMuchMemory => "Job exceeds the queue's limits\n".into(),
        };
        Words {
            detail: Vec::new(),
            message,
        }
    }

    fn keeps_refused_job(&self, _refusal: &Refusal) -> bool {
        false
    }

    /// `<jobid>.output` in the submit directory (qsub always names the file itself).
    fn default_output(&self) -> &'static str {
        "%j.output"
    }

    /// `user_script_forker.py` (`COBALT_PARTNAME` = the first node, `COBALT_PARTSIZE` = nodes,
    /// `COBALT_JOBSIZE` = processes), `pg_forker.py` (`COBALT_JOBID`, `COBALT_STARTTIME`,
    /// `COBALT_ENDTIME`), `cobalt-launcher.py` (`COBALT_NODEFILE`, `/var/tmp/cobalt.<id>` from
    /// `cluster_system.py`); `$jobid`/`$COBALT_JOBID` in `--env` values (cqm `JobList.q_add`).
    fn job_env(&self, job: &Job, _site: Site<'_>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let id = job.id.to_string();
        for (key, value) in &job.req.env {
            if value.contains("$jobid") || value.contains("$COBALT_JOBID") {
                let expanded = value.replace("$jobid", &id).replace("$COBALT_JOBID", &id);
                env.insert(key.clone(), expanded);
            }
        }
        let nodes = job.run.alloc.len().max(1);
        env.insert("COBALT_JOBID".into(), id.clone());
        env.insert("COBALT_NODEFILE".into(), format!("/var/tmp/cobalt.{id}"));
        env.insert("COBALT_PARTNAME".into(), job.first_node());
        env.insert("COBALT_PARTSIZE".into(), nodes.to_string());
        let procs = job
            .req
            .attributes
            .get(attr::PROCS)
            .cloned()
            .unwrap_or_else(|| nodes.to_string());
        env.insert("COBALT_JOBSIZE".into(), procs);
        if let Some(start) = job.run.start_time {
            let start = start.floor() as u64;
            env.insert("COBALT_STARTTIME".into(), start.to_string());
            if let Some(limit) = job.time_limit.seconds() {
                env.insert("COBALT_ENDTIME".into(), (start + limit).to_string());
            }
        }
        env
    }

    /// cobalt-launcher.py's `os.chdir` raising (a Python 2 traceback; the job then fails with
    /// exit code 1, see the job's wrapper written by qsub).
    fn chdir_failed(&self, _node: &str, dir: &str, errno: i32) -> String {
        format!(
            "Traceback (most recent call last):\n  File \"/usr/bin/cobalt-launcher.py\", line 69, in <module>\n    main()\n  File \"/usr/bin/cobalt-launcher.py\", line 47, in main\n    os.chdir(opt.cwd)\nOSError: [Errno {errno}] {}: '{dir}'\n",
            super::strerror(errno)
        )
    }

    /// cobalt-launcher.py's `execvpe` failing: `str(OSError)`.
    fn exec_failed(&self, _node: &str, _script: &str, error: &str) -> String {
        format!("{error}\n")
    }

    /// cqm `_sm_check_job_timers` (walltime) and `_sm_log_user_delete` (qdel of a running job,
    /// signal SIGTERM, the deleting user).
    fn kill_notices(&self, job: &Job, ending: JobState, at: f64) -> Vec<Notice> {
        match ending {
            JobState::Timeout => log_line(
                job,
                at,
                "Info: maximum execution time exceeded; initiating job termination",
            ),
            JobState::Cancelled => {
                let user = job
                    .run
                    .cancelled_by
                    .and_then(user_name)
                    .unwrap_or_else(|| job.req.user.clone());
                log_line(
                    job,
                    at,
                    &format!("Info: user delete requested with signal SIGTERM by user {user}"),
                )
            }
            _ => Vec::new(),
        }
    }

    /// qsub.py `logjob`: `Jobid: N`, `qsub <argv>`, `<ts> submitted with cwd set to: <dir>`,
    /// and the terminal line when qsub's stdout was one.
    fn submit_notices(&self, job: &Job, at: f64) -> Vec<Notice> {
        let Some(path) = log_path(job) else {
            return Vec::new();
        };
        let attrs = &job.req.attributes;
        let mut text = format!("Jobid: {}\n", job.id);
        text.push_str(&format!(
            "qsub {}\n",
            attrs.get(attr::QSUB_ARGV).map_or("", String::as_str)
        ));
        text.push_str(&format!(
            "{} submitted with cwd set to: {}\n",
            cobalt_time(at),
            job.req.work_dir
        ));
        if let Some(tty) = attrs.get(attr::TTY) {
            text.push_str(&format!("jobid {} submitted from terminal {tty}\n", job.id));
        }
        vec![Notice {
            file: NoticeFile::Path(path),
            line: text,
        }]
    }

    /// cqm `_sm_running__task_end` (the exit code line), `_sm_ready__kill`/`_sm_hold__kill`
    /// (deleted before it ran); a job the scheduler killed gets no further line
    /// (`_sm_killing__task_end` writes only to cqm's own log).
    fn end_notices(&self, job: &Job, at: f64) -> Vec<Notice> {
        if job.run.start_time.is_none() {
            return if job.run.state == JobState::Cancelled {
                log_line(
                    job,
                    at,
                    "Info: user delete requested; removing job from the queue",
                )
            } else {
                Vec::new()
            };
        }
        if matches!(
            job.run.ending,
            Some(JobState::Timeout) | Some(JobState::Cancelled)
        ) {
            return Vec::new();
        }
        if job.run.exit_status == crate::daemon::launch::OUTPUT_OPEN_FAILED {
            return log_line(
                job,
                at,
                "ERROR: execution failure; initiating job cleanup and removal",
            );
        }
        log_line(
            job,
            at,
            &format!(
                "Info: task completed normally with an exit code of {}; initiating job cleanup and removal",
                exit_code(job.run.exit_status)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_look_like_sec_to_str() {
        // reference 5.2: `Mon Jan 23 02:44:05 2017 +0000 (UTC)`.
        assert_eq!(
            cobalt_time(1_485_139_445.7),
            "Mon Jan 23 02:44:05 2017 +0000 (UTC)"
        );
    }

    #[test]
    fn ids_expand_and_percent_signs_stay() {
        assert_eq!(expand_id("/w/%j.output", 42), "/w/42.output");
        assert_eq!(expand_id("100%%-%j-%x%", 7), "100%-7-%x%");
    }

    #[test]
    fn exit_codes_are_wexitstatus_or_128_plus_signal() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(0), 0);
    }
}
