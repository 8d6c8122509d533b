//! IBM Spectrum LSF rules (reference section 3; openlava, the open-source code LSF grew from:
//! `lsf/lsb/err.c`, `lsf/daemons/sbatchd/job.c`, `lsf/daemons/sbatchd/file.c`,
//! `lsf/daemons/sbatchd/sig.c`).
//!
//! What only LSF shows of a job (what the user typed, which output file was named) travels
//! with the job as [`Attrs`], serialised under [`ATTRIBUTES_KEY`] in the request's
//! `attributes`.

use crate::flavor::SchedulerAttributes;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Notice, NoticeFile, Refusal, Rules, Site, Words};
use crate::model::{Job, JobKind, JobRequest, JobState};
use crate::pattern::PatternFields;

/// LSF's rules.
#[derive(Debug)]
pub struct Lsf;

/// LSF's own attributes of a job, as bsub set them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attrs {
    /// What the user submitted (the command line, or the script's lines), as the job report
    /// shows it under `# LSBATCH: User input`.
    pub user_input: String,
    /// `-o`/`-oo` as given (the job report goes to that file).
    #[serde(default)]
    pub output_file: Option<String>,
    /// `-e`/`-eo` as given.
    #[serde(default)]
    pub error_file: Option<String>,
    /// `-q` was given (the submission line then says `queue`, else `default queue`).
    #[serde(default)]
    pub queue_given: bool,
    /// `-P`.
    #[serde(default)]
    pub project: Option<String>,
    /// `-R`, as given.
    #[serde(default)]
    pub res_req: Option<String>,
    /// `I`, `Ip` or `Is` for an interactive job.
    #[serde(default)]
    pub interactive: Option<String>,
}

impl super::SchedulerAttributes for Attrs {
    const KEY: &'static str = "lsf";
}

/// `lsb_errmsg` texts (openlava `lsf/lsb/err.c`) the simulated cluster's refusals map to.
pub mod errmsg {
    /// `LSBE_BAD_QUEUE`.
    pub const BAD_QUEUE: &str = "No such queue";
    /// `LSBE_NO_DEF_QUEUE` ("Queue name must be specified").
    pub const NO_QUEUE: &str = "Queue name must be specified";
    /// `LSBE_BAD_ARG`.
    pub const BAD_ARG: &str = "Bad argument";
    /// `LSBE_BAD_HOST`.
    pub const BAD_HOST: &str = "Bad host name, host group name or cluster name";
    /// `LSBE_QUEUE_HOST`.
    pub const QUEUE_HOST: &str = "Host or host group is not used by the queue";
    /// `LSBE_BAD_RESREQ`.
    pub const BAD_RESREQ: &str = "Bad resource requirement syntax";
    /// `LSBE_OVER_LIMIT`.
    pub const OVER_LIMIT: &str = "Cannot exceed queue's hard limit(s)";
    /// `LSBE_JOB_MAX_PEND`-like: the queue's job limit.
    pub const QUEUE_FULL: &str = "The destination queue has reached its job limit";
    /// `LSBE_NO_JOBID`.
    pub const NO_JOBID: &str = "No job Id can be used now";
    /// `LSBE_NO_JOB`.
    pub const NO_JOB: &str = "No matching job found";
    /// `LSBE_PERMISSION`: another user's job (mbatchd allows root, the LSF administrators and
    /// the job's owner).
    pub const PERMISSION: &str = "User permission denied";
    /// `LSBE_JOB_FINISH`.
    pub const JOB_FINISHED: &str = "Job has already finished";
    /// `LSBE_NOT_STARTED`.
    pub const NOT_STARTED: &str = "Job has not started yet";
    /// `LSBE_CONN_TIMEOUT`.
    pub const CONN_TIMEOUT: &str = "Timeout on connect call to server";
    /// `LSBE_CONN_REFUSED`.
    pub const CONN_REFUSED: &str = "Connection refused by server";
}

/// What `lsf/lsb/comm.c` prints each time mbatchd does not answer and it tries again.
pub const NOT_RESPONDING: &str = "batch system daemon not responding ... still trying";

/// The exit code LSF reports for an ended job: the exit status, or 128 + the signal that
/// ended it; `None` while the job is active or when it never ran.
pub fn exit_code(job: &Job) -> Option<i32> {
    if !job.run.state.is_finished() || job.run.start_time.is_none() {
        return None;
    }
    let raw = job.run.exit_status;
    Some(if raw & 0x7f != 0 {
        128 + (raw & 0x7f)
    } else {
        (raw >> 8) & 0xff
    })
}

/// The slots a job holds on each of its hosts, in order: its tasks (`bsub -n`) spread over
/// the cores of its allocation, each host filled before the next.
pub fn host_slots(job: &Job) -> Vec<(String, usize)> {
    let mut left = job.req.ntasks.unwrap_or(1).max(1) as usize;
    let mut slots = Vec::new();
    for (i, a) in job.run.alloc.iter().enumerate() {
        let last = i + 1 == job.run.alloc.len();
        let n = if last {
            left.max(1)
        } else {
            left.min(a.cores.len()).max(1)
        };
        left = left.saturating_sub(n);
        slots.push((a.node.clone(), n));
    }
    slots
}

/// `LSB_HOSTS`: one host name per slot.
fn lsb_hosts(job: &Job) -> String {
    let mut hosts = Vec::new();
    for (host, slots) in host_slots(job) {
        hosts.extend(std::iter::repeat_n(host, slots));
    }
    hosts.join(" ")
}

/// `LSB_MCPU_HOSTS`: `host slots ` pairs (`lsb_printNameList`, `PRINT_MCPU_HOSTS`).
fn mcpu_hosts(job: &Job) -> String {
    host_slots(job)
        .iter()
        .map(|(host, slots)| format!("{host} {slots} "))
        .collect()
}

/// The host file LSF names in `LSB_DJOB_HOSTFILE`, kept in the simulated cluster's state
/// directory; `None` when the job does not name one.
fn host_file(job: &Job) -> Option<String> {
    let state = job.req.env.get(crate::client::STATE_DIR_ENV)?;
    Some(format!(
        "{}/aux/lsf.{}.hostfile",
        state.trim_end_matches('/'),
        job.id
    ))
}

/// `ctime(3)` of a simulated time, without the newline.
pub fn ctime(t: f64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(t.floor() as i64, 0) {
        chrono::LocalResult::Single(dt) | chrono::LocalResult::Ambiguous(dt, _) => {
            dt.format("%a %b %e %H:%M:%S %Y").to_string()
        }
        chrono::LocalResult::None => "unknown time in the past".into(),
    }
}

/// The termination reason LSF records for a job that was ended on purpose (the
/// `TERM_*` names of IBM's termination reasons).
pub fn term_reason(job: &Job) -> Option<&'static str> {
    if !job.run.state.is_finished() {
        return None;
    }
    match (job.run.state, job.run.ending) {
        (JobState::Timeout, _) | (_, Some(JobState::Timeout)) => {
            Some("TERM_RUNLIMIT: job killed after reaching LSF run time limit")
        }
        (JobState::Cancelled, _) | (_, Some(JobState::Cancelled)) => {
            Some("TERM_OWNER: job killed by owner")
        }
        (JobState::NodeFail, _) | (_, Some(JobState::NodeFail)) => {
            Some("TERM_HOST: job killed by LSF because the execution host is unreachable")
        }
        _ => None,
    }
}

/// The job report sbatchd appends to the output file of a job that named one
/// (`lsf/daemons/sbatchd/job.c`, the notification written after the job, as when the output
/// goes to the file directly).
fn job_report(job: &Job, attrs: &Attrs, at: f64) -> String {
    let mut r = String::new();
    let user = &job.req.user;
    let name = &job.req.name;
    let slots = host_slots(job);
    let first = slots.first().cloned().unwrap_or_default();
    let exec_host = first.0.clone();
    let result = if job.run.exit_status == 0 && term_reason(job).is_none() {
        "Done"
    } else {
        "Exited"
    };
    r.push_str("\n------------------------------------------------------------\n");
    r.push_str(&format!("Sender: LSF System <{user}@{exec_host}>\n"));
    r.push_str(&format!("Subject: Job {}: <{name}> {result}\n\n", job.id));
    r.push_str(&format!(
        "Job <{name}> was submitted from host <{}> by user <{user}>.\n",
        job.req.submit_host
    ));
    let total: usize = slots.iter().map(|(_, n)| n).sum();
    if total <= 1 {
        r.push_str(&format!(
            "Job was executed on host(s) <{exec_host}>, in queue <{}>, as user <{user}>.\n",
            job.partition
        ));
    } else {
        r.push_str(&format!(
            "Job was executed on host(s) <{}*{}>, in queue <{}>, as user <{user}>.\n",
            first.1, first.0, job.partition
        ));
        for (host, n) in slots.iter().skip(1) {
            r.push_str(&format!("                            <{n}*{host}>\n"));
        }
    }
    match job.req.env.get("HOME") {
        Some(home) => r.push_str(&format!("<{home}> was used as the home directory.\n")),
        None => r.push_str("Execution home directory was not known.\n"),
    }
    let cwd = if std::path::Path::new(&job.req.work_dir).is_dir() {
        job.req.work_dir.clone()
    } else {
        "/tmp".to_string()
    };
    r.push_str(&format!("<{cwd}> was used as the working directory.\n"));
    let started = job
        .run
        .start_time
        .map_or_else(|| "unknown time in the past".to_string(), ctime);
    r.push_str(&format!("Started at {started}\n"));
    r.push_str(&format!("Results reported at {}\n", ctime(at)));
    r.push_str("\nYour job looked like:\n");
    r.push_str("\n------------------------------------------------------------\n");
    r.push_str("# LSBATCH: User input\n");
    for (n, line) in attrs.user_input.lines().enumerate() {
        if n == 50 {
            r.push_str("\n(... more ...)\n");
            break;
        }
        r.push_str(line);
        r.push('\n');
    }
    r.push_str("------------------------------------------------------------\n\n");
    if let Some(reason) = term_reason(job) {
        r.push_str(&format!("{reason}.\n"));
    }
    let raw = job.run.exit_status;
    if raw == 0 {
        r.push_str("Successfully completed");
    } else if raw & 0x7f != 0 {
        r.push_str(&format!(
            "Exited with signal termination: {}",
            signal_text(raw & 0x7f)
        ));
    } else {
        r.push_str(&format!("Exited with exit code {}", (raw >> 8) & 0xff));
    }
    r.push_str(".\n\nResource usage summary:\n\n");
    r.push_str(&format!("    CPU time   :{:10.2} sec.\n", 0.0));
    r.push('\n');
    r.push_str("The output (if any) is above this job summary.\n\n");
    r
}

/// `strsignal(3)` of the signals jobs end with.
pub fn signal_text(sig: i32) -> &'static str {
    match sig {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        6 => "Aborted",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        24 => "CPU time limit exceeded",
        _ => "Unknown signal",
    }
}

impl Rules for Lsf {
    /// `lsb_errmsg` texts as bsub prints them through `sub_perror` (the queue first for a
    /// queue error); bsub adds `. Job not submitted.`.
    fn words(&self, refusal: &Refusal) -> Words {
        let message = match refusal {
            Refusal::Injected(text) | Refusal::OtherUser(text) => text.clone(),
            Refusal::UnknownPartition(name) => {
                format!("{}: {}", name.replace(',', " "), errmsg::BAD_QUEUE)
            }
            Refusal::NoDefaultPartition => errmsg::NO_QUEUE.into(),
            Refusal::UnknownQos(_) | Refusal::InvalidArray | Refusal::DependencyProblem => {
                errmsg::BAD_ARG.into()
            }
            Refusal::UnknownNode => errmsg::BAD_HOST.into(),
            Refusal::NodesOutsidePartition => errmsg::QUEUE_HOST.into(),
            Refusal::UnknownFeature => errmsg::BAD_RESREQ.into(),
            Refusal::TooMuchMemory => errmsg::OVER_LIMIT.into(),
            Refusal::SubmitLimit => errmsg::QUEUE_FULL.into(),
            Refusal::IdSpaceExhausted(_) => errmsg::NO_JOBID.into(),
        };
        Words {
            detail: Vec::new(),
            message,
        }
    }

    fn keeps_refused_job(&self, _refusal: &Refusal) -> bool {
        false
    }

    /// Without `-o` a batch job's output is mailed (reference 3.1); here it is dropped.
    fn default_output(&self) -> &'static str {
        "/dev/null"
    }

    /// `%J` is the job id and `%I` the array index, 0 for a job that is no array
    /// (`LSB_JOBINDEX`, `lsf/daemons/sbatchd/job.c`); nothing else is special.
    fn expand_pattern(
        &self,
        pattern: &str,
        fields: &PatternFields<'_>,
        _req: &JobRequest,
    ) -> String {
        expand(pattern, fields.job_id)
    }

    /// What sbatchd sets (`lsf/daemons/sbatchd/job.c` `setJobEnv`) and the `LSB_DJOB_*`
    /// variables of LSF 10 (reference 3.1).
    fn job_env(&self, job: &Job, _site: Site<'_>) -> BTreeMap<String, String> {
        let attrs = Attrs::of(job).unwrap_or_default();
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_string(), v);
        };
        let slots: usize = host_slots(job).iter().map(|(_, n)| n).sum();
        set("LSB_JOBID", job.id.to_string());
        set("LSB_JOBINDEX", "0".into());
        set("LSB_JOBNAME", job.req.name.clone());
        set("LSB_QUEUE", job.partition.clone());
        set("LSB_HOSTS", lsb_hosts(job));
        set("LSB_MCPU_HOSTS", mcpu_hosts(job));
        set("LSB_DJOB_NUMPROC", slots.max(1).to_string());
        set("LSB_TRAPSIGS", "trap # 15 10 12 2 1".into());
        set("LSB_EXIT_PRE_ABORT", "99".into());
        set("LSFUSER", job.req.user.clone());
        set("USER", job.req.user.clone());
        set("LS_SUBCWD", job.req.submit_dir.clone());
        set("LSB_SUB_HOST", job.req.submit_host.clone());
        if attrs.output_file.is_some()
            && let Some(path) = &job.run.stdout_path
        {
            set("LSB_OUTPUTFILE", path.clone());
        }
        if attrs.error_file.is_some()
            && let Some(path) = &job.run.stderr_path
        {
            set("LSB_ERRORFILE", path.clone());
        }
        if job.req.kind == JobKind::Interactive {
            set("LSB_INTERACTIVE", "Y".into());
        }
        if let Some(path) = host_file(job) {
            // The file exists before the job starts, one line per slot.
            let mut lines = String::new();
            for (host, n) in host_slots(job) {
                for _ in 0..n {
                    lines.push_str(&host);
                    lines.push('\n');
                }
            }
            let written = std::path::Path::new(&path)
                .parent()
                .is_some_and(|dir| std::fs::create_dir_all(dir).is_ok())
                && std::fs::write(&path, lines).is_ok();
            if written {
                set("LSB_DJOB_HOSTFILE", path);
            }
        }
        env
    }

    /// `LS_JOBPID`: the process id of the job (`lsf/daemons/sbatchd/job.c`).
    fn task_pid_variable(&self) -> Option<&'static str> {
        Some("LS_JOBPID")
    }

    /// bkill: SIGINT first (`jobsig1` in `lsf/daemons/sbatchd/sig.c`; reference 3.3); the run
    /// limit: SIGUSR2, what LSF sends a job that reached its run limit.
    fn term_signal(&self, ending: JobState) -> i32 {
        if ending == JobState::Timeout {
            libc::SIGUSR2
        } else {
            libc::SIGINT
        }
    }

    /// sbatchd falls back to `/tmp` without a word in the job's files (`cwdJob` in
    /// `lsf/daemons/sbatchd/file.c`).
    fn chdir_failed(&self, _node: &str, _dir: &str, _errno: i32) -> String {
        String::new()
    }

    fn exec_failed(&self, _node: &str, script: &str, error: &str) -> String {
        format!("{script}: {error}\n")
    }

    fn kill_notices(&self, _job: &Job, _ending: JobState, _at: f64) -> Vec<Notice> {
        Vec::new()
    }

    /// The job report in the output file of a batch job that ran and named one; the host
    /// file goes with the job.
    fn end_notices(&self, job: &Job, at: f64) -> Vec<Notice> {
        if let Some(path) = host_file(job) {
            let _ = std::fs::remove_file(path);
        }
        let Some(attrs) = Attrs::of(job) else {
            return Vec::new();
        };
        let reported = job.req.kind == JobKind::Batch
            && job.run.start_time.is_some()
            && attrs.output_file.is_some()
            && job.run.stdout_path.as_deref() != Some("/dev/null");
        if !reported {
            return Vec::new();
        }
        vec![Notice {
            file: NoticeFile::Stdout,
            line: job_report(job, &attrs, at),
        }]
    }
}

/// Expands LSF's `%J` (the job id) and `%I` (the array index: 0) in a file name.
pub fn expand(pattern: &str, job_id: u32) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.peek() {
                Some('J') => {
                    chars.next();
                    out.push_str(&job_id.to_string());
                    continue;
                }
                Some('I') => {
                    chars.next();
                    out.push('0');
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_expand_job_id_and_index_only() {
        assert_eq!(expand("out.%J.%I.log", 42), "out.42.0.log");
        assert_eq!(expand("100%-%j-%%\\x", 7), "100%-%j-%%\\x");
        assert_eq!(expand("%", 7), "%");
    }
}
