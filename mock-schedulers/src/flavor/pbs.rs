//! PBS Professional / OpenPBS rules (reference section 2; OpenPBS `src/lib/Liblog/pbs_messages.c`,
//! `src/include/pbs_error.h`, `src/resmom/start_exec.c`, `src/resmom/mom_main.c`).
//!
//! The job attributes only PBS shows (`Keep_Files`, `Variable_List`, `Resource_List`, ...)
//! travel with the job as [`Attrs`], serialised under [`ATTRIBUTES_KEY`] in the request's
//! `attributes`, so the neutral job model needs no PBS fields.

use crate::flavor::SchedulerAttributes;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Notice, NoticeFile, Refusal, Rules, Site, Words};
use crate::model::{Job, JobState};

/// PBS's rules.
#[derive(Debug)]
pub struct Pbs;

/// `pbs_errno` values the simulated commands use (`src/include/pbs_error.h`).
pub mod errno {
    /// Unknown Job Identifier.
    pub const UNKJOBID: i32 = 15001;
    /// Unauthorized Request (another user's job).
    pub const PERM: i32 = 15007;
    /// Bad attribute value.
    pub const BADATVAL: i32 = 15014;
    /// Request invalid for job state.
    pub const BADSTATE: i32 = 15016;
    /// Unknown queue name.
    pub const UNKQUE: i32 = 15018;
    /// Batch protocol error.
    pub const PROTOCOL: i32 = 15031;
    /// Unknown resource.
    pub const UNKRESC: i32 = 15035;
    /// Job exceeds queue resource limits.
    pub const EXCQRESC: i32 = 15036;
    /// No default queue defined.
    pub const QUENODFLT: i32 = 15037;
    /// Max number of jobs in queue.
    pub const MAXQUED: i32 = 15046;
    /// History job ID (the job has finished).
    pub const HISTJOBID: i32 = 15139;
}

/// `JOB_EXEC_KILL_WALLTIME` (`src/include/job.h`): the Exit_status of a job killed at its
/// walltime.
pub const EXEC_KILL_WALLTIME: i64 = -29;

/// `JOB_EXEC_RERUN_MS_FAIL` (`src/include/job.h`, "Mother superior connection failed"): the
/// Exit_status given to a job whose node failed (the simulation does not requeue it).
pub const EXEC_MS_FAIL: i64 = -20;

/// PBS's own attributes of a job, as qsub set them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attrs {
    /// qsub's arguments (`Submit_arguments`).
    pub submit_arguments: Vec<String>,
    /// `Variable_List`, in order.
    pub variable_list: Vec<(String, String)>,
    /// `Output_Path` as a daemon output pattern (`%j` is the sequence number), without host.
    pub output_path: String,
    /// `Error_Path`, like `output_path`.
    pub error_path: String,
    /// `Join_Path` (`oe`, `eo`, `n`).
    pub join_path: String,
    /// `Keep_Files`.
    pub keep_files: String,
    /// `Mail_Points`.
    pub mail_points: String,
    /// `Mail_Users`.
    #[serde(default)]
    pub mail_users: Option<String>,
    /// `Rerunable`.
    pub rerunable: bool,
    /// `Priority`.
    pub priority: i64,
    /// `Checkpoint`.
    pub checkpoint: String,
    /// `project`.
    pub project: String,
    /// `Resource_List`, in the order PBS shows it.
    pub resources: Vec<(String, String)>,
    /// The shell the job runs under (`-S`, `PBS_SHELL`, or the login shell).
    pub shell: String,
    /// `Shell_Path_List` when `-S` was given.
    #[serde(default)]
    pub shell_path_list: Option<String>,
    /// `-W block=true`.
    pub block: bool,
    /// `-- executable`, when the job is a command and not a script.
    #[serde(default)]
    pub executable: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub argument_list: Vec<String>,
    /// The host qsub ran on (`Submit_Host`, the host part of the paths).
    pub submit_host: String,
    /// The server the job was submitted to (the second part of its id).
    pub server: String,
}

impl super::SchedulerAttributes for Attrs {
    const KEY: &'static str = "pbs";
}

/// The job id as PBS prints it: `<seq>.<server>`.
pub fn job_id(job: &Job, server: &str) -> String {
    format!("{}.{server}", job.id)
}

/// PBS's `Exit_status` of an ended job (`src/resmom/mom_main.c`, `src/include/job.h`): the
/// shell's exit code, 256+signal when a signal ended the shell, -29 after a walltime kill;
/// `None` when the job never ran.
pub fn exit_status(job: &Job) -> Option<i64> {
    if !job.run.state.is_finished() || job.run.start_time.is_none() {
        return None;
    }
    let raw = job.run.exit_status;
    Some(match job.run.state {
        JobState::Timeout => EXEC_KILL_WALLTIME,
        JobState::NodeFail => EXEC_MS_FAIL,
        _ if raw & 0x7f != 0 => 0x100 + i64::from(raw & 0x7f),
        _ => i64::from((raw >> 8) & 0xff),
    })
}

/// The files a PBS job keeps on its node while it runs (its `TMPDIR` and `PBS_NODEFILE`), in
/// the simulated cluster's state directory; `None` when the job does not name one.
fn node_files(job: &Job, attrs: &Attrs) -> Option<(String, String)> {
    let state = job.req.env.get(crate::client::STATE_DIR_ENV)?;
    if attrs.server.is_empty() {
        return None;
    }
    let id = job_id(job, &attrs.server);
    let state = state.trim_end_matches('/');
    Some((format!("{state}/tmp/pbs.{id}"), format!("{state}/aux/{id}")))
}

impl Rules for Pbs {
    /// `pbs_geterrmsg` texts (`src/lib/Liblog/pbs_messages.c`); qsub prints them as
    /// `qsub: <text>`. The detail line carries the `pbs_errno`, whose low 8 bits are qsub's
    /// exit code.
    fn words(&self, refusal: &Refusal) -> Words {
        let (code, message) = match refusal {
            // A server that fails to answer: a protocol error is the closest pbs_errno.
            Refusal::Injected(text) => (errno::PROTOCOL, text.clone()),
            Refusal::OtherUser(text) => (errno::PERM, text.clone()),
            Refusal::UnknownPartition(_) => (errno::UNKQUE, "Unknown queue".into()),
            Refusal::NoDefaultPartition => (errno::QUENODFLT, "No default queue specified".into()),
            Refusal::UnknownQos(_)
            | Refusal::UnknownNode
            | Refusal::UnknownFeature
            | Refusal::InvalidArray
            | Refusal::DependencyProblem => (
                errno::BADATVAL,
                "Illegal attribute or resource value".into(),
            ),
            Refusal::NodesOutsidePartition | Refusal::TooMuchMemory => (
                errno::EXCQRESC,
                "Job violates queue and/or server resource limits".into(),
            ),
            Refusal::SubmitLimit => (
                errno::MAXQUED,
                "Maximum number of jobs already in queue".into(),
            ),
            Refusal::IdSpaceExhausted(_) => (errno::PROTOCOL, "Batch protocol error".into()),
        };
        Words {
            detail: vec![code.to_string()],
            message,
        }
    }

    fn keeps_refused_job(&self, _refusal: &Refusal) -> bool {
        false
    }

    /// `<job name>.o<seq>` in the submit directory (qsub.1B `-o`); qsub always names both
    /// paths, so this is a fallback only.
    fn default_output(&self) -> &'static str {
        "%x.o%j"
    }

    /// What pbs_mom adds to the job's `Variable_List` (`src/resmom/start_exec.c`,
    /// `variables_else`, `mktmpdir`, `PBS_JOBDIR`, `PBS_ENVIRONMENT`).
    fn job_env(&self, job: &Job, site: Site<'_>) -> BTreeMap<String, String> {
        let attrs = Attrs::of(job).unwrap_or_default();
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_string(), v);
        };
        let ncpus = job.req.cpus_per_task.unwrap_or(1).max(1).to_string();
        set("HOME", job.req.work_dir.clone());
        set("LOGNAME", job.req.user.clone());
        set("USER", job.req.user.clone());
        if !attrs.shell.is_empty() {
            set("SHELL", attrs.shell.clone());
        }
        set("PBS_JOBNAME", job.req.name.clone());
        set("PBS_JOBID", job_id(job, site.cluster_name));
        set("PBS_QUEUE", job.partition.clone());
        set("PBS_O_QUEUE", job.partition.clone());
        set(
            "PBS_JOBCOOKIE",
            format!("{:032X}", u128::from(job.id) * 0x9E37_79B9_7F4A_7C15),
        );
        set("PBS_NODENUM", "0".into());
        set("PBS_TASKNUM", "1".into());
        set("PBS_MOMPORT", "15003".into());
        set("OMP_NUM_THREADS", ncpus.clone());
        set("NCPUS", ncpus);
        if let Some(account) = &job.req.account {
            set("PBS_ACCOUNT", account.clone());
        }
        set("PBS_JOBDIR", job.req.work_dir.clone());
        set("PBS_ENVIRONMENT", "PBS_BATCH".into());
        if let Some((tmpdir, nodefile)) = node_files(job, &attrs) {
            // pbs_mom creates both before the job starts; without them the variables would
            // point nowhere.
            let mut nodes = String::new();
            for alloc in &job.run.alloc {
                nodes.push_str(&alloc.node);
                nodes.push('\n');
            }
            // The job's own directory (0700, the job's user's) in a directory everyone may
            // search, as pbs_mom makes it in /var/tmp.
            let made_tmp = {
                use std::os::unix::fs::DirBuilderExt;
                let tmpdir = std::path::Path::new(&tmpdir);
                let made = tmpdir
                    .parent()
                    .is_some_and(|parent| std::fs::create_dir_all(parent).is_ok())
                    && match std::fs::DirBuilder::new().mode(0o700).create(tmpdir) {
                        Ok(()) => true,
                        Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
                    };
                if made {
                    crate::users::give(tmpdir, job.req.uid, job.req.gid);
                }
                made
            };
            if made_tmp {
                set("TMPDIR", tmpdir);
            }
            let made_nodefile = std::path::Path::new(&nodefile)
                .parent()
                .is_some_and(|dir| std::fs::create_dir_all(dir).is_ok())
                && std::fs::write(&nodefile, nodes).is_ok();
            if made_nodefile {
                set("PBS_NODEFILE", nodefile);
            }
        }
        env
    }

    /// pbs_mom's line when the home directory is missing (`src/resmom/start_exec.c`,
    /// "Could not chdir to home directory").
    fn chdir_failed(&self, _node: &str, _dir: &str, _errno: i32) -> String {
        "Could not chdir to home directory\n".into()
    }

    /// pbs_mom's line when the job's shell cannot be started (`src/resmom/start_exec.c`).
    fn exec_failed(&self, _node: &str, script: &str, error: &str) -> String {
        format!("pbs_mom, exec of {script} failed with error: {error}\n")
    }

    /// `=>> PBS: job killed: walltime <used> exceeded limit <limit>` in the job's stderr
    /// (`src/resmom/mom_main.c`: `job_over_limit` kills only once `used > limit`, so the used
    /// figure is at least one more than the limit); a qdel writes nothing into the job's files.
    fn kill_notices(&self, job: &Job, ending: JobState, at: f64) -> Vec<Notice> {
        if ending != JobState::Timeout {
            return Vec::new();
        }
        let elapsed = job
            .run
            .start_time
            .map_or(0, |start| (at - start).max(0.0) as u64);
        let limit = job.time_limit.seconds().unwrap_or(elapsed);
        let used = elapsed.max(limit.saturating_add(1));
        vec![Notice {
            file: NoticeFile::Stderr,
            line: format!("=>> PBS: job killed: walltime {used} exceeded limit {limit}\n"),
        }]
    }

    /// Nothing is written; the node removes the job's `TMPDIR` and node file, as pbs_mom does
    /// when the job ends.
    fn end_notices(&self, job: &Job, _at: f64) -> Vec<Notice> {
        if let Some((tmpdir, nodefile)) = Attrs::of(job).and_then(|a| node_files(job, &a)) {
            let _ = std::fs::remove_dir_all(tmpdir);
            let _ = std::fs::remove_file(nodefile);
        }
        Vec::new()
    }
}
