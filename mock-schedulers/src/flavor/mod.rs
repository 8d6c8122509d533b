//! What differs between the schedulers the simulated cluster imitates, on the daemon's side.
//!
//! The daemon's job model is neutral: a queue, allocations, processes, raw wait statuses.
//! Each job carries the [`Flavor`] of the command that submitted it, and the daemon asks that
//! flavour's rules, one file per scheduler, for everything a user can see of the scheduler in
//! the job itself: the words of a refusal, the default output file, the job's environment,
//! what is written when the job is killed. What a scheduler's commands print lives in its front
//! end (`cli/<scheduler>/`).

pub mod cobalt;
pub mod flux;
pub mod lsf;
pub mod pbs;
pub mod slurm;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Job, JobRequest, JobState};
use crate::pattern::PatternFields;

/// The scheduler a job was submitted through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Slurm (`sbatch`, `srun`, `salloc`).
    #[default]
    Slurm,
    /// PBS Professional / OpenPBS (`qsub`).
    Pbs,
    /// Cobalt (`qsub`).
    Cobalt,
    /// IBM Spectrum LSF (`bsub`).
    Lsf,
    /// Flux (`flux alloc|run|submit`).
    Flux,
}

/// Why the daemon refuses a submission, before any scheduler's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An injected failure, with the scheduler error text the admin chose.
    Injected(String),
    /// No partition (queue) of that name.
    UnknownPartition(String),
    /// None asked for and none is the default.
    NoDefaultPartition,
    /// No QOS of that name.
    UnknownQos(String),
    /// A node named that does not exist.
    UnknownNode,
    /// Nodes that exist but not in the partition.
    NodesOutsidePartition,
    /// A feature no node of the partition has.
    UnknownFeature,
    /// More memory per node than any node of the partition has.
    TooMuchMemory,
    /// The QOS's limit of submitted jobs per user is reached.
    SubmitLimit,
    /// The job id space is used up at this id.
    IdSpaceExhausted(u64),
    /// An array task id beyond the cluster's limit (or no task at all).
    InvalidArray,
    /// A dependency that names no job or is malformed.
    DependencyProblem,
    /// A job of another user on a cluster whose daemon does not run as root, and so can run
    /// jobs of its own user only; the text says so.
    OtherUser(String),
}

/// `strerror(errno)`: the C library's text for an error number.
pub fn strerror(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

/// A refusal in a scheduler's words: lines said first, then the error itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// Lines before the error (`invalid partition specified: x`).
    pub detail: Vec<String>,
    /// The error text (Slurm's `slurm_strerror`).
    pub message: String,
}

/// Facts of the cluster a job's environment needs.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    /// The cluster's name.
    pub cluster_name: &'a str,
}

/// Where a scheduler writes one of its own lines about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeFile {
    /// The job's standard output file.
    Stdout,
    /// The job's standard error file.
    Stderr,
    /// Another file (Cobalt's `.cobaltlog`), as an absolute path.
    Path(String),
}

/// A line the scheduler appends to a file of the job (the slurmstepd kill line, PBS's
/// walltime line, Cobalt's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Which file.
    pub file: NoticeFile,
    /// The line, with its newline.
    pub line: String,
}

/// One scheduler's rules, as the daemon applies them.
pub trait Rules: Sync {
    /// A refusal in this scheduler's words.
    fn words(&self, refusal: &Refusal) -> Words;

    /// Whether the scheduler keeps a (failed) record of a job it refused, using up its id.
    fn keeps_refused_job(&self, refusal: &Refusal) -> bool;

    /// The output file pattern of a batch job that names none.
    fn default_output(&self) -> &'static str;

    /// The variables the scheduler sets in a job (or an allocation).
    fn job_env(&self, job: &Job, site: Site<'_>) -> BTreeMap<String, String>;

    /// Variables set in a batch job only, on top of [`Rules::job_env`] (Slurm's
    /// `ENVIRONMENT=BATCH`).
    fn batch_env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// The variable that holds the job's own process id, which only the job's process knows
    /// (Slurm's `SLURM_TASK_PID`).
    fn task_pid_variable(&self) -> Option<&'static str> {
        None
    }

    /// Expands a file name pattern of the job (`-o`, `-e`, `-i`): slurmstepd's `%` codes
    /// unless the scheduler has its own (Flux's mustache templates).
    fn expand_pattern(
        &self,
        pattern: &str,
        fields: &PatternFields<'_>,
        _req: &JobRequest,
    ) -> String {
        crate::pattern::expand(pattern, fields)
    }

    /// The signal (after SIGCONT) that starts the end of a running job that ends as `ending`
    /// (cancelled, timed out).
    fn term_signal(&self, _ending: JobState) -> i32 {
        libc::SIGTERM
    }

    /// Whether a job the scheduler ended (cancelled, timed out) is recorded as ending when
    /// the scheduler decided so rather than when its last process exited.
    fn ends_at_kill(&self) -> bool {
        false
    }

    /// The line the job's node writes to its stderr when the job cannot enter its working
    /// directory `dir` (the job then starts in `/tmp`); `errno` says why (`ENOENT` for a
    /// missing directory, `EACCES` for one its user may not search).
    fn chdir_failed(&self, node: &str, dir: &str, errno: i32) -> String;

    /// The line the job's node writes to its stderr when the script cannot be started.
    fn exec_failed(&self, node: &str, script: &str, error: &str) -> String;

    /// What the scheduler writes when it starts ending a running job `ending` (cancelled,
    /// timed out) at the simulated time `at`.
    fn kill_notices(&self, job: &Job, ending: JobState, at: f64) -> Vec<Notice>;

    /// What the scheduler writes when it has accepted a job (Cobalt's qsub starts the job's
    /// `.cobaltlog`), at the simulated submit time `at`, before the job can start.
    fn submit_notices(&self, _job: &Job, _at: f64) -> Vec<Notice> {
        Vec::new()
    }

    /// What the scheduler writes when a job's processes have ended with raw wait `status`
    /// (its final state already in `job.run.state`), or when a pending job is cancelled.
    fn end_notices(&self, _job: &Job, _at: f64) -> Vec<Notice> {
        Vec::new()
    }
}

impl Flavor {
    /// This flavour's rules.
    pub fn rules(self) -> &'static dyn Rules {
        match self {
            Flavor::Slurm => &slurm::Slurm,
            Flavor::Pbs => &pbs::Pbs,
            Flavor::Cobalt => &cobalt::Cobalt,
            Flavor::Lsf => &lsf::Lsf,
            Flavor::Flux => &flux::Flux,
        }
    }
}

/// A scheduler's own attributes of a job (what the neutral job model has no field for), kept
/// as JSON under the scheduler's key in the job request's `attributes`.
pub trait SchedulerAttributes: serde::Serialize + serde::de::DeserializeOwned {
    /// The key in `attributes`.
    const KEY: &'static str;

    /// The attributes of a job this scheduler's submit command made (`None` for another
    /// scheduler's job or a record that does not parse).
    fn of(job: &crate::model::Job) -> Option<Self> {
        serde_json::from_str(job.req.attributes.get(Self::KEY)?).ok()
    }

    /// The request's `attributes` holding these.
    fn to_attributes(&self) -> std::collections::BTreeMap<String, String> {
        let json = serde_json::to_string(self).unwrap_or_default();
        std::collections::BTreeMap::from([(Self::KEY.to_string(), json)])
    }
}
