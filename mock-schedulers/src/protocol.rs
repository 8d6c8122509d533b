//! The wire protocol between the fake CLIs and the daemon: one JSON object per line over a Unix
//! socket. Requests and responses are small; long-lived requests (`sbatch --wait`, allocations)
//! keep the connection open and receive further lines.

use serde::{Deserialize, Serialize};

use crate::config::{Cluster, Injections};
use crate::model::{CallRecord, Job, JobRequest, JobState};

/// A request from a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is the daemon there?
    Ping,
    /// Submit a batch job; with `wait` the daemon sends `Finished` when it ends.
    Submit {
        /// The job.
        req: Box<JobRequest>,
        /// Keep the connection until the job ends.
        wait: bool,
    },
    /// `sbatch --test-only`: validate the job and say when and where it would start; nothing
    /// is queued, but (as in Slurm) a job id is used up.
    TestOnly {
        /// The job.
        req: Box<JobRequest>,
    },
    /// Ask for an allocation (srun, salloc); the connection holds it until `Release` or EOF.
    Allocate {
        /// The job.
        req: Box<JobRequest>,
    },
    /// The client started the allocation's command in this process group.
    StepStarted {
        /// Process group id.
        pgid: i32,
        /// Step name (the command).
        name: String,
    },
    /// The allocation's command ended with this raw wait status.
    Release {
        /// Raw wait status.
        status: i32,
    },
    /// srun inside job `job_id`'s allocation asks for a step of `ntasks` tasks using `cpus`
    /// CPUs in all (`Response::StepCreated`, or an error in Slurm's words).
    StepCreate {
        /// The job.
        job_id: u32,
        /// The command's file name.
        name: String,
        /// Tasks.
        ntasks: u32,
        /// CPUs the step's tasks use in all.
        cpus: u32,
    },
    /// The step's tasks run in this process group.
    StepRunning {
        /// The job.
        job_id: u32,
        /// The step.
        step_id: u32,
        /// Process group of its tasks.
        pgid: i32,
    },
    /// The step ended with this raw wait status (its worst task's).
    StepEnded {
        /// The job.
        job_id: u32,
        /// The step.
        step_id: u32,
        /// Raw wait status.
        status: i32,
    },
    /// `scontrol requeue|requeuehold|hold|uhold|release <id>`.
    Control {
        /// What to do.
        verb: ControlVerb,
        /// The job.
        id: u32,
    },
    /// Jobs known to the controller.
    Jobs {
        /// Only these ids.
        ids: Option<Vec<u32>>,
        /// Include jobs older than `min_job_age` (the accounting view).
        accounting: bool,
        /// A status command that injected timeouts apply to.
        status_command: bool,
    },
    /// Nodes, partitions and their use.
    Cluster {
        /// A status command that injected timeouts apply to.
        status_command: bool,
    },
    /// Signal or cancel jobs.
    Cancel(CancelRequest),
    /// Replace what a pending job waits for (`scontrol update jobid=N dependency=...`).
    UpdateDependency {
        /// The job.
        id: u32,
        /// The new dependency text (empty: none).
        dependency: String,
    },
    /// Move a pending job's begin time (`scontrol update jobid=N StartTime=...`).
    UpdateBeginTime {
        /// The job.
        id: u32,
        /// Seconds from now.
        after: f64,
    },
    /// Record a finished CLI call.
    Record(Box<CallRecord>),
    /// All recorded calls.
    Calls,
    /// Change injections.
    Inject(InjectRequest),
    /// One-line summary.
    Status,
    /// Stop the daemon.
    Shutdown,
}

/// What scancel asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Job ids (an array's id: all its tasks).
    pub ids: Vec<u32>,
    /// Single array tasks: `(array job id, task id)`.
    #[serde(default)]
    pub array_tasks: Vec<(u32, u32)>,
    /// `-n`.
    pub name: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-t`.
    pub state: Option<JobState>,
    /// `-p`.
    pub partition: Option<String>,
    /// `-s`: a signal instead of cancelling.
    pub signal: Option<i32>,
    /// Which of a running batch job's processes a signal reaches.
    #[serde(default)]
    pub scope: SignalScope,
    /// uid of the caller: the daemon replaces whatever the client sent with the uid the kernel
    /// reports for the connection.
    pub uid: u32,
}

/// slurmctld's answer to releasing a job the partition's nodes are too small for
/// (`ESLURM_REQUESTED_PART_CONFIG_UNAVAILABLE`); the job is released all the same.
pub const PARTITION_CONFIG_NOW: &str = "Requested partition configuration not available now";

/// What `scontrol` asks of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlVerb {
    /// Back to the queue (`requeue`).
    Requeue,
    /// Back to the queue, held (`requeuehold`).
    RequeueHold,
    /// Hold a pending job as an administrator (`hold`).
    Hold,
    /// Hold a pending job as its user (`uhold`).
    UserHold,
    /// Let a held job run (`release`).
    Release,
}

/// Which processes of a running batch job a signal reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalScope {
    /// The job's whole process group and its steps (`qsig`, `bkill -s`, `flux job kill`).
    #[default]
    Job,
    /// Only the steps `srun` started (`scancel -s`).
    Steps,
    /// Only the batch shell itself (`scancel -b -s`).
    BatchShell,
    /// The batch shell, its children and the steps (`scancel -f -s`).
    Full,
}

/// Outcome for one job id of a cancel request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CancelOutcome {
    /// Signalled or cancelled.
    Done(u32),
    /// No such job.
    InvalidId(u32),
    /// Already finished.
    AlreadyDone(u32),
    /// The caller may not act on another user's job (neither root nor the cluster's own
    /// user).
    Denied(u32),
}

/// Run-time injection changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InjectRequest {
    /// Fail the next N submissions.
    pub submit_errors: Option<u32>,
    /// With this Slurm error text.
    pub submit_error_text: Option<String>,
    /// Status commands time out.
    pub status_timeout: Option<bool>,
    /// Fail these nodes now.
    pub fail_nodes: Vec<String>,
    /// Bring these nodes back.
    pub resume_nodes: Vec<String>,
    /// Delay (simulated seconds) before output files appear.
    pub output_delay: Option<f64>,
    /// Clear everything.
    pub clear: bool,
}

/// Use of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeUsage {
    /// Node name.
    pub name: String,
    /// Allocated CPUs.
    pub alloc_cpus: u32,
    /// Allocated memory in MB.
    pub alloc_mem_mb: u64,
    /// Node is down.
    pub down: bool,
}

/// A response from the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// Done, nothing to say.
    Ok,
    /// Daemon process id.
    Pong {
        /// Daemon pid.
        pid: u32,
        /// Simulated time the daemon started at, unix seconds (`flux uptime`).
        #[serde(default)]
        started: f64,
        /// Simulated now, unix seconds.
        #[serde(default)]
        now: f64,
    },
    /// A step was created inside an allocation.
    StepCreated {
        /// The new step's id.
        step_id: u32,
    },
    /// What `TestOnly` found: the job would start at `start` on `nodes` of `partition`.
    WouldRun {
        /// The job id used up.
        id: u32,
        /// Expected start (simulated seconds since the epoch).
        start: f64,
        /// CPUs it would get.
        cpus: u32,
        /// Its nodes (a host list).
        nodes: String,
        /// Its partition.
        partition: String,
    },
    /// Batch job accepted.
    Submitted {
        /// Job id.
        id: u32,
    },
    /// The job waited on ended.
    Finished {
        /// The final record.
        job: Box<Job>,
    },
    /// The allocation waits for resources.
    Queued {
        /// Job id.
        id: u32,
    },
    /// The allocation is granted.
    Allocated {
        /// The job.
        job: Box<Job>,
        /// Real CPU ids to bind the command to.
        cpus: Vec<usize>,
        /// The job's SLURM_* environment.
        env: std::collections::BTreeMap<String, String>,
    },
    /// The allocation is being revoked (cancel or time limit); signals follow.
    Revoked {
        /// Cancelled or Timeout.
        ending: JobState,
        /// When, as slurmstepd prints it.
        at: String,
        /// First node of the allocation.
        node: String,
        /// Simulated kill_wait seconds as Slurm reports it.
        kill_wait: u64,
    },
    /// Jobs.
    Jobs {
        /// Matching jobs.
        jobs: Vec<Job>,
        /// Simulated now (unix seconds).
        now: f64,
        /// Cluster name.
        cluster_name: String,
    },
    /// Cluster description and use.
    Cluster {
        /// The configuration.
        cluster: Box<Cluster>,
        /// Per-node use.
        usage: Vec<NodeUsage>,
        /// Simulated now.
        now: f64,
    },
    /// Results of a cancel.
    Cancelled {
        /// Per-id outcomes.
        results: Vec<CancelOutcome>,
    },
    /// Recorded calls.
    Calls {
        /// In call order.
        calls: Vec<CallRecord>,
    },
    /// Status summary.
    Status {
        /// One line.
        summary: String,
    },
    /// Current injections.
    Injections {
        /// Active injections.
        inject: Injections,
    },
    /// A refusal or failure, in the words of the scheduler of the request (see
    /// [`crate::flavor::Rules::words`]).
    Error {
        /// Lines said before the error (Slurm: `<prog>: error: <line>`).
        detail: Vec<String>,
        /// The error text (Slurm: `slurm_strerror`).
        message: String,
    },
    /// A status query the controller did not answer in time (the `status-timeout`
    /// injection); each front end says so in its scheduler's words.
    StatusTimeout,
}
