//! The daemon's job model, shared by every scheduler front end.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::TimeLimit;

/// Job states as Slurm names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting in the queue.
    Pending,
    /// Processes are running.
    Running,
    /// Ended with exit code 0.
    Completed,
    /// Ended with a non-zero exit code or a signal.
    Failed,
    /// Cancelled by scancel.
    Cancelled,
    /// Reached its time limit.
    Timeout,
    /// Its node failed.
    NodeFail,
    /// Killed by the out-of-memory handler.
    OutOfMemory,
}

impl JobState {
    /// Long name (`%T`).
    pub fn long(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Timeout => "TIMEOUT",
            JobState::NodeFail => "NODE_FAIL",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
        }
    }

    /// Compact name (`%t`).
    pub fn short(self) -> &'static str {
        match self {
            JobState::Pending => "PD",
            JobState::Running => "R",
            JobState::Completed => "CD",
            JobState::Failed => "F",
            JobState::Cancelled => "CA",
            JobState::Timeout => "TO",
            JobState::NodeFail => "NF",
            JobState::OutOfMemory => "OOM",
        }
    }

    /// Parses a long or compact state name, case-insensitively.
    pub fn parse(text: &str) -> Option<JobState> {
        let all = [
            JobState::Pending,
            JobState::Running,
            JobState::Completed,
            JobState::Failed,
            JobState::Cancelled,
            JobState::Timeout,
            JobState::NodeFail,
            JobState::OutOfMemory,
        ];
        all.into_iter()
            .find(|s| s.long().eq_ignore_ascii_case(text) || s.short().eq_ignore_ascii_case(text))
    }

    /// Whether the job has ended.
    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

/// How a job was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// sbatch: the daemon runs the script.
    Batch,
    /// srun or salloc: the client runs the command inside the allocation.
    Interactive,
}

/// Everything a client asks for when it submits or allocates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Batch or interactive.
    pub kind: JobKind,
    /// Job name.
    pub name: String,
    /// Requested partition; the default partition when absent.
    pub partition: Option<String>,
    /// Requested QOS.
    pub qos: Option<String>,
    /// Account.
    pub account: Option<String>,
    /// Time limit; the partition's maximum when absent.
    pub time_limit: Option<TimeLimit>,
    /// `-n`.
    pub ntasks: Option<u32>,
    /// `-c`.
    pub cpus_per_task: Option<u32>,
    /// `-N`.
    pub nodes: Option<u32>,
    /// `--ntasks-per-node`: the job's tasks on each node (`SLURM_NTASKS_PER_NODE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntasks_per_node: Option<u32>,
    /// `--mem` in MB per node (0 = all of the node's memory).
    pub mem_mb: Option<u64>,
    /// `--mem-per-cpu` in MB.
    pub mem_per_cpu_mb: Option<u64>,
    /// `-w`: required nodes.
    pub nodelist: Option<Vec<String>>,
    /// `-C`: required features.
    pub constraint: Option<String>,
    /// `-x`: nodes the job must not run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// `--nice`: lowers the job's priority by this much (raises it when negative).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nice: i32,
    /// `--priority`: the job's priority, set by root instead of computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// `--exclusive`.
    pub exclusive: bool,
    /// `-H`: submit held.
    pub hold: bool,
    /// `--begin` as simulated unix seconds.
    pub begin: Option<f64>,
    /// `--begin=now+N`: seconds after submission (turned into `begin` by the daemon).
    #[serde(default)]
    pub begin_after: Option<f64>,
    /// `-I`: fail unless resources are free now.
    pub immediate: bool,
    /// `--signal`: signal number and seconds before the time limit.
    pub signal: Option<(i32, u64)>,
    /// `--signal=B:...`: the signal is for the batch shell, not the job's steps.
    #[serde(default)]
    pub signal_batch_shell: bool,
    /// `--no-requeue`: `scontrol requeue` is refused.
    #[serde(default)]
    pub no_requeue: bool,
    /// Working directory of the job.
    pub work_dir: String,
    /// Directory the client ran in.
    pub submit_dir: String,
    /// Host the client ran on.
    pub submit_host: String,
    /// `-o` pattern.
    pub stdout: Option<String>,
    /// `-e` pattern.
    pub stderr: Option<String>,
    /// `-i` pattern.
    pub stdin: Option<String>,
    /// `--open-mode=append`.
    pub append: bool,
    /// Batch script text.
    pub script: Option<String>,
    /// Arguments to the script.
    pub args: Vec<String>,
    /// The job's environment (after `--export`).
    pub env: BTreeMap<String, String>,
    /// Submitting user.
    pub user: String,
    /// Submitting uid.
    pub uid: u32,
    /// Submitting gid.
    pub gid: u32,
    /// The command line shown as `Command=`.
    pub command: String,
    /// The script came from stdin without `-J`: Slurm then sets no SLURM_JOB_NAME.
    #[serde(default)]
    pub name_from_stdin: bool,
    /// The scheduler whose command submitted the job: its rules apply to the job.
    #[serde(default)]
    pub flavor: crate::flavor::Flavor,
    /// The job writes its output to a spool that the scheduler copies to the output paths
    /// when the job ends (PBS without `-k d`), instead of writing them directly.
    #[serde(default)]
    pub stage_out: bool,
    /// The scheduler's own log of the job (Cobalt's `.cobaltlog`), an absolute path.
    #[serde(default)]
    pub debug_log: Option<String>,
    /// What the submitting scheduler keeps about the job that the daemon does not interpret
    /// (Cobalt's process count and qsub command line), for its status command and notices.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Arrays and dependencies: how the job relates to other jobs.
    #[serde(default)]
    pub relations: Relations,
}

/// What ties a job to others: the array it makes, the jobs it waits for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Relations {
    /// The job is an array of these tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArraySpec>,
    /// `--dependency` as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// `--kill-on-invalid-dep`: cancel the job once its dependency can never be met (the
    /// cluster's `kill_invalid_depend` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_on_invalid_dep: Option<bool>,
}

/// An `--array` text Slurm refuses ("Invalid job array specification").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidArraySpec;

/// A job array as submitted: its task ids and how many may run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArraySpec {
    /// Task ids, ascending, without duplicates (never empty).
    pub tasks: Vec<u32>,
    /// `%N`: at most this many tasks run at once; 0 for no limit.
    pub throttle: u32,
}

impl ArraySpec {
    /// Parses Slurm's `--array` text: comma-separated ids and ranges `a-b[:step]`, then
    /// `%throttle`. `Ok(None)` for an empty text (no array); `Err` for anything else Slurm
    /// refuses ("Invalid job array specification"). Empty list items are skipped and the
    /// throttle is read like C's `atoi` (`%x` and a bare `%` are no limit), as Slurm 22.05 does
    /// (observed: `1,,2`, `0-2%x`, `3%` are accepted). Task ids must be below `limit`
    /// (`MaxArraySize`).
    pub fn parse(text: &str, limit: u32) -> Result<Option<ArraySpec>, InvalidArraySpec> {
        if text.is_empty() {
            return Ok(None);
        }
        let (list, throttle) = match text.split_once('%') {
            Some((list, t)) => (list, atoi(t)),
            None => (text, 0),
        };
        let tasks = parse_task_list(list, limit)?;
        if tasks.is_empty() {
            return Err(InvalidArraySpec);
        }
        Ok(Some(ArraySpec { tasks, throttle }))
    }

    /// `SLURM_ARRAY_TASK_STEP`: the distance between the task ids when it is always the same,
    /// else 1.
    pub fn step(&self) -> u32 {
        let mut gaps = self.tasks.windows(2).map(|w| w[1] - w[0]);
        match gaps.next() {
            Some(first) if gaps.all(|g| g == first) => first,
            _ => 1,
        }
    }
}

/// C's `atoi` of a throttle: leading digits, 0 when there are none (or too many).
fn atoi(text: &str) -> u32 {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// The largest `MaxArraySize` Slurm allows (slurm.conf(5)): no task list a command parses can
/// name more ids than this.
pub const MAX_ARRAY_SIZE_LIMIT: u32 = 4_000_001;

/// Parses `1-3,7,0-6:3` into ascending ids without duplicates; `Err` on anything malformed (a
/// descending range, a zero step, a number that is no `u32`) or an id not below `limit`.
pub fn parse_task_list(list: &str, limit: u32) -> Result<Vec<u32>, InvalidArraySpec> {
    let number = |t: &str| -> Result<u32, InvalidArraySpec> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidArraySpec);
        }
        t.parse().map_err(|_| InvalidArraySpec)
    };
    let mut tasks = std::collections::BTreeSet::new();
    for item in list.split(',').filter(|i| !i.is_empty()) {
        let (range, step) = match item.split_once(':') {
            Some((r, s)) => (r, number(s)?),
            None => (item, 1),
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None if step == 1 || !item.contains(':') => (number(range)?, number(range)?),
            None => return Err(InvalidArraySpec),
        };
        if step == 0 || last < first || last >= limit.min(MAX_ARRAY_SIZE_LIMIT) {
            return Err(InvalidArraySpec);
        }
        tasks.extend((first..=last).step_by(step as usize));
    }
    Ok(tasks.into_iter().collect())
}

/// Ascending task ids in Slurm's compressed form: runs of consecutive ids as `a-b`
/// (`1-3,7`; `0,3,6`).
pub fn compress_tasks(tasks: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tasks.len() {
        let mut j = i;
        while j + 1 < tasks.len() && tasks[j + 1] == tasks[j].saturating_add(1) {
            j += 1;
        }
        out.push(if j > i {
            format!("{}-{}", tasks[i], tasks[j])
        } else {
            tasks[i].to_string()
        });
        i = j + 1;
    }
    out.join(",")
}

/// Where a job stands in its array: the record of tasks still pending together (the array's
/// own record, `task` unset), or one task that runs (or ended) on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayRun {
    /// The array's job id (the id `sbatch` printed).
    pub job_id: u32,
    /// The task this record is, once it is one task.
    pub task: Option<u32>,
    /// Tasks not yet started, still in this record.
    pub pending: Vec<u32>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// Cores allocated on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAlloc {
    /// Node name.
    pub node: String,
    /// Node-local core indices.
    pub cores: Vec<u32>,
    /// Memory in MB.
    pub mem_mb: u64,
}

/// A job as the controller knows it: what was asked (`req`), what was resolved at submit time,
/// and what changes while it lives (`run`, the part the journal rewrites).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: u32,
    /// What was asked for.
    pub req: JobRequest,
    /// Resolved partition.
    pub partition: String,
    /// Resolved QOS (`normal` unless set).
    pub qos: String,
    /// Effective time limit.
    pub time_limit: TimeLimit,
    /// Total CPUs.
    pub cpus: u32,
    /// Nodes wanted.
    pub num_nodes: u32,
    /// Memory per node in MB.
    pub mem_per_node_mb: u64,
    /// Simulated submit time (unix seconds).
    pub submit_time: f64,
    /// Everything that changes after submission.
    pub run: JobRun,
}

/// The mutable part of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    /// State.
    pub state: JobState,
    /// Slurm's reason text (`None` when there is none).
    pub reason: String,
    /// Priority (higher runs first).
    pub priority: u32,
    /// Simulated start time.
    pub start_time: Option<f64>,
    /// Simulated end time.
    pub end_time: Option<f64>,
    /// Allocation while running (kept after the end for display).
    pub alloc: Vec<NodeAlloc>,
    /// Raw wait status of the job (`exit << 8 | signal`).
    pub exit_status: i32,
    /// Raw wait status of the batch step or srun step, when one ran.
    pub step_status: Option<i32>,
    /// Expanded stdout path.
    pub stdout_path: Option<String>,
    /// Expanded stderr path.
    pub stderr_path: Option<String>,
    /// uid that cancelled the job.
    pub cancelled_by: Option<u32>,
    /// Process group of the running job or step.
    pub pgid: Option<i32>,
    /// pid of the launcher that waits for a batch job.
    pub launcher_pid: Option<i32>,
    /// Simulated time SIGTERM was sent (walltime or cancel).
    pub term_sent: Option<f64>,
    /// Whether SIGKILL has been sent.
    pub kill_sent: bool,
    /// The state the job ends in once its processes are gone.
    pub ending: Option<JobState>,
    /// Whether `--signal` has been delivered.
    pub warned: bool,
    /// Command name of the srun step (interactive jobs).
    pub step_name: Option<String>,
    /// Where staged output goes when the job ends: `(stdout, stderr)` (`stdout_path` and
    /// `stderr_path` are the spool meanwhile).
    #[serde(default)]
    pub staged_to: Option<(String, String)>,
    /// Steps `srun` started inside the job's allocation (`<id>.0`, `<id>.1`, ...).
    #[serde(default)]
    pub steps: Vec<JobStep>,
    /// Signals for the batch shell sent before its process group was known, delivered as soon
    /// as it is: `(signal, whole group)`.
    #[serde(default)]
    pub pending_signals: Vec<(i32, bool)>,
    /// Times the job was requeued (`Restarts=`, `SLURM_RESTART_COUNT`).
    #[serde(default)]
    pub restarts: u32,
    /// A requeue under way: the job returns to the queue once its processes are gone, held
    /// when `Some(true)`.
    #[serde(default)]
    pub requeue: Option<bool>,
    /// Not before this simulated time (a requeued job waits, as Slurm makes it).
    #[serde(default)]
    pub eligible_after: Option<f64>,
    /// The scheduling pass that first considers a Slurm batch job comes at this simulated
    /// time (`sched_delay` after its submission); until then its reason stays `None`. An
    /// update of its begin time moves it: the job's last scheduling event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_pass_at: Option<f64>,
    /// The submitting client has not had its answer yet: no pass considers the job until it
    /// has (a job never starts before `sbatch` has returned). Not kept across a restart.
    #[serde(skip)]
    pub awaiting_reply: bool,
    /// In an accounting view: the job runs but the accounting database has not heard of its
    /// start yet: `sacct` shows it PENDING, with its start time and nodes but eligible
    /// `Unknown` and no time elapsed (slurm-observed.md 57).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_unaccounted: bool,
    /// Held by an administrator (`scontrol hold`), not by its user.
    #[serde(default)]
    pub held_by_admin: bool,
    /// Held by `scontrol requeuehold`: the reason is then `job requeued in held state`, not
    /// `JobHeldUser` (slurm-observed.md 63), until the job is released or held anew.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requeued_held: bool,
    /// The runs before a requeue, oldest first, as they ended: `sacct -D` shows each as a
    /// `REQUEUED` record of its own (slurm-observed.md 63).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_runs: Vec<JobRun>,
    /// Place in a job array (`None` for a job that is no array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArrayRun>,
    /// What the job still waits for (`None` once met, or when it waits for nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<crate::dependency::Dependency>,
    /// The reason accounting keeps when it differs from `reason`: a job cancelled for a
    /// dependency that can never be met keeps there the reason it pended with before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting_reason: Option<String>,
}

/// A step `srun` runs inside an existing allocation: its tasks share a process group of their
/// own, apart from the batch shell's, which is where Slurm delivers a signal meant for steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStep {
    /// Step id, counted from 0 within the job.
    pub id: u32,
    /// The command's file name (sacct's JobName).
    pub name: String,
    /// Number of tasks.
    pub ntasks: u32,
    /// Process group of the tasks, once they run.
    pub pgid: Option<i32>,
    /// Simulated start time.
    pub start_time: f64,
    /// Simulated end time.
    pub end_time: Option<f64>,
    /// Raw wait status the step ended with (its worst task's).
    pub status: Option<i32>,
    /// Whether the job's end (cancel, time limit) ended the step.
    pub killed: bool,
}

impl JobStep {
    /// Whether the step still runs.
    pub fn running(&self) -> bool {
        self.end_time.is_none()
    }
}

impl JobRun {
    /// A freshly queued job.
    pub fn pending(priority: u32) -> JobRun {
        JobRun {
            state: JobState::Pending,
            reason: "None".into(),
            priority,
            start_time: None,
            end_time: None,
            alloc: Vec::new(),
            exit_status: 0,
            step_status: None,
            stdout_path: None,
            stderr_path: None,
            cancelled_by: None,
            pgid: None,
            launcher_pid: None,
            term_sent: None,
            kill_sent: false,
            ending: None,
            warned: false,
            step_name: None,
            staged_to: None,
            steps: Vec::new(),
            pending_signals: Vec::new(),
            restarts: 0,
            requeue: None,
            eligible_after: None,
            first_pass_at: None,
            awaiting_reply: false,
            start_unaccounted: false,
            held_by_admin: false,
            requeued_held: false,
            previous_runs: Vec::new(),
            array: None,
            dependency: None,
            accounting_reason: None,
        }
    }
}

impl Job {
    /// When the job may start at the earliest: `--begin`, or the wait after a requeue.
    pub fn begin_time(&self) -> Option<f64> {
        match (self.req.begin, self.run.eligible_after) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Node names of the allocation, in order.
    pub fn node_names(&self) -> Vec<String> {
        self.run.alloc.iter().map(|a| a.node.clone()).collect()
    }

    /// The first allocated node (the batch host), or empty before the job runs.
    pub fn first_node(&self) -> String {
        self.run
            .alloc
            .first()
            .map(|a| a.node.clone())
            .unwrap_or_default()
    }

    /// The compressed node list, or empty.
    pub fn nodelist(&self) -> String {
        crate::hostlist::compress(&self.node_names())
    }

    /// The limit as slurmctld shows it (`UNLIMITED` stays so, also once the job runs, in the
    /// reference setup with accounting).
    pub fn shown_limit(&self) -> TimeLimit {
        self.time_limit
    }

    /// `exit:signal` as sacct and scontrol print ExitCode.
    pub fn exit_code_text(status: i32) -> String {
        format!("{}:{}", (status >> 8) & 0xff, status & 0x7f)
    }

    /// The array's job id, or the job's own id when it is no array.
    pub fn array_job_id(&self) -> u32 {
        self.run.array.as_ref().map_or(self.id, |a| a.job_id)
    }

    /// The array task this record is (`None` for no array, or the array's record of pending
    /// tasks).
    pub fn array_task(&self) -> Option<u32> {
        self.run.array.as_ref().and_then(|a| a.task)
    }

    /// Whether this is an array's record of tasks not yet started.
    pub fn is_array_record(&self) -> bool {
        self.run
            .array
            .as_ref()
            .is_some_and(|a| a.task.is_none() && !a.pending.is_empty())
    }

    /// The lowest task id this record stands for (for ordering), 0 for no array.
    pub fn first_task(&self) -> u32 {
        match &self.run.array {
            Some(a) => a.task.or(a.pending.first().copied()).unwrap_or(0),
            None => 0,
        }
    }

    /// The view of one pending task `task` of an array's record, as commands show it.
    pub fn as_task(&self, task: u32) -> Job {
        let mut job = self.clone();
        if let Some(a) = &mut job.run.array {
            a.task = Some(task);
            a.pending.clear();
        }
        job
    }

    /// Whether a client's wait should see it as ended.
    pub fn is_finished(&self) -> bool {
        self.run.state.is_finished()
    }
}

/// One recorded CLI call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Program name (`sbatch`).
    pub program: String,
    /// Full argv including the program name.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// The caller's uid, as the kernel reports the peer of the daemon's socket
    /// (`SO_PEERCRED`), never what the caller says.
    #[serde(default)]
    pub uid: u32,
    /// The user name of `uid` (the number when it has none).
    #[serde(default)]
    pub user: String,
    /// Selected environment variables.
    pub env: BTreeMap<String, String>,
    /// Exit code of the call.
    pub exit_code: i32,
    /// When the call started (RFC 3339).
    pub time: String,
    /// Job id the call created, when it created one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_parse_as_slurm_accepts_them() {
        let p = |t: &str| ArraySpec::parse(t, 1001).map(|s| s.map(|s| (s.tasks, s.throttle)));
        assert_eq!(p("1-3"), Ok(Some((vec![1, 2, 3], 0))));
        assert_eq!(p("0-15%4"), Ok(Some(((0..=15).collect(), 4))));
        assert_eq!(p("1-9:2"), Ok(Some((vec![1, 3, 5, 7, 9], 0))));
        assert_eq!(p("7,1-3"), Ok(Some((vec![1, 2, 3, 7], 0))));
        assert_eq!(p("1-2,2-3"), Ok(Some((vec![1, 2, 3], 0))));
        assert_eq!(p("1,,2"), Ok(Some((vec![1, 2], 0))));
        assert_eq!(p("0-2%x"), Ok(Some((vec![0, 1, 2], 0))));
        assert_eq!(p("3%"), Ok(Some((vec![3], 0))));
        assert_eq!(p(""), Ok(None));
        assert_eq!(p("1000"), Ok(Some((vec![1000], 0))));
        for bad in [
            "x",
            "1-",
            "5-1",
            "-1",
            "1-3:0",
            "1-3:x",
            "2:3",
            "1-4294967295",
            ",",
            "1001",
            "0-1001",
        ] {
            assert_eq!(p(bad), Err(InvalidArraySpec), "{bad}");
        }
    }

    #[test]
    fn task_lists_compress_like_slurm() {
        assert_eq!(compress_tasks(&[1, 2, 3, 7]), "1-3,7");
        assert_eq!(compress_tasks(&[0, 3, 6]), "0,3,6");
        assert_eq!(compress_tasks(&[4]), "4");
        let spec = ArraySpec::parse("0-6:3", 1001).unwrap().unwrap();
        assert_eq!(spec.step(), 3);
        assert_eq!(ArraySpec::parse("2,3,7", 1001).unwrap().unwrap().step(), 1);
    }
}
