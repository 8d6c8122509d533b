//! Slurm's rules: `slurm_strerror` texts, `slurm-%j.out`, the `SLURM_*` environment and the
//! slurmstepd line of a killed job (Slurm 22.05, checked against it in the differential suite).

use std::collections::BTreeMap;

use super::{Notice, NoticeFile, Refusal, Rules, Site, Words};
use crate::model::{Job, JobState};

/// Slurm's rules.
#[derive(Debug)]
pub struct Slurm;

/// `slurm_strerror(ESLURM_ACCESS_DENIED)`: what a user hears who acts on another user's job
/// (`scancel`, `scontrol requeue`, `srun --jobid`; observed on Slurm 22.05).
pub const ACCESS_DENIED: &str = "Access/permission denied";

/// `slurm_strerror(ESLURM_USER_ID_MISSING)`: the answer to `scontrol hold|uhold|release|update`
/// of another user's job (observed on Slurm 22.05).
pub const INVALID_USER_ID: &str = "Invalid user id";

impl Rules for Slurm {
    fn words(&self, refusal: &Refusal) -> Words {
        let plain = |message: &str| Words {
            detail: Vec::new(),
            message: message.into(),
        };
        match refusal {
            Refusal::Injected(text) | Refusal::OtherUser(text) => plain(text),
            Refusal::UnknownPartition(name) => Words {
                detail: vec![format!("invalid partition specified: {name}")],
                message: "Invalid partition name specified".into(),
            },
            Refusal::NoDefaultPartition => {
                plain("No partition specified or system default partition")
            }
            Refusal::UnknownQos(_) => plain("Invalid qos specification"),
            Refusal::UnknownNode => plain("Invalid node name specified"),
            Refusal::NodesOutsidePartition => {
                plain("Requested node configuration is not available")
            }
            Refusal::UnknownFeature => plain("Invalid feature specification"),
            Refusal::TooMuchMemory => Words {
                detail: vec!["Memory specification can not be satisfied".into()],
                message: "Requested node configuration is not available".into(),
            },
            Refusal::SubmitLimit => plain(
                "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
            ),
            Refusal::InvalidArray => plain("Invalid job array specification"),
            Refusal::DependencyProblem => plain("Job dependency problem"),
            Refusal::IdSpaceExhausted(id) => Words {
                detail: vec![format!("job id {id} is beyond the highest job id")],
                message: "Job id space exhausted".into(),
            },
        }
    }

    /// Slurm keeps a FAILED record (reason `BadConstraints`) of a job whose memory no node
    /// has, and uses up its id; every other refusal leaves nothing.
    fn keeps_refused_job(&self, refusal: &Refusal) -> bool {
        *refusal == Refusal::TooMuchMemory
    }

    fn default_output(&self) -> &'static str {
        "slurm-%j.out"
    }

    fn job_env(&self, job: &Job, site: Site<'_>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let first = job.first_node();
        let nodelist = job.nodelist();
        let cpus_on_node = job
            .run
            .alloc
            .first()
            .map_or(job.cpus, |a| a.cores.len() as u32);
        let per_node: Vec<String> = job
            .run
            .alloc
            .iter()
            .map(|a| a.cores.len().to_string())
            .collect();
        let nnodes = job.run.alloc.len().max(1).to_string();
        // Without `-n` a job has one task per node (`-N 2`: `1(x2)`).
        let tasks = job.req.ntasks.unwrap_or(job.run.alloc.len().max(1) as u32);
        let mut set = |k: &str, v: String| {
            env.insert(k.to_string(), v);
        };
        set("SLURM_JOB_ID", job.id.to_string());
        set("SLURM_JOBID", job.id.to_string());
        // Only once the job was requeued (sbatch(1), OUTPUT ENVIRONMENT VARIABLES).
        if job.run.restarts > 0 {
            set("SLURM_RESTART_COUNT", job.run.restarts.to_string());
        }
        if !job.req.name_from_stdin {
            set("SLURM_JOB_NAME", job.req.name.clone());
        }
        set("SLURM_JOB_USER", job.req.user.clone());
        set("SLURM_JOB_UID", job.req.uid.to_string());
        set("SLURM_JOB_GID", job.req.gid.to_string());
        set("SLURM_SUBMIT_DIR", job.req.submit_dir.clone());
        set("SLURM_SUBMIT_HOST", job.req.submit_host.clone());
        set("SLURM_JOB_PARTITION", job.partition.clone());
        set("SLURM_JOB_NODELIST", nodelist.clone());
        set("SLURM_NODELIST", nodelist.clone());
        set("SLURM_JOB_NUM_NODES", nnodes.clone());
        set("SLURM_NNODES", nnodes);
        set("SLURM_CPUS_ON_NODE", cpus_on_node.to_string());
        set("SLURM_JOB_CPUS_PER_NODE", compress_counts(&per_node));
        set(
            "SLURM_TASKS_PER_NODE",
            tasks_per_node(tasks, job.run.alloc.len().max(1) as u32),
        );
        set("SLURMD_NODENAME", first.clone());
        set("SLURM_CLUSTER_NAME", site.cluster_name.to_string());
        set("SLURM_NODEID", "0".into());
        set("SLURM_PROCID", "0".into());
        set("SLURM_LOCALID", "0".into());
        set("SLURM_GTIDS", "0".into());
        set("SLURM_PRIO_PROCESS", "0".into());
        set("SLURM_TOPOLOGY_ADDR", first.clone());
        set("SLURM_TOPOLOGY_ADDR_PATTERN", "node".into());
        set("SLURM_NODE_ALIASES", "(null)".into());
        set("SLURM_JOB_QOS", job.qos.clone());
        set(
            "SLURM_JOB_ACCOUNT",
            job.req
                .account
                .clone()
                .unwrap_or_else(|| job.req.user.clone()),
        );
        if let Some(c) = job.req.cpus_per_task {
            set("SLURM_CPUS_PER_TASK", c.to_string());
        }
        if let Some(n) = job.req.ntasks {
            set("SLURM_NTASKS", n.to_string());
            set("SLURM_NPROCS", n.to_string());
        }
        if let Some(n) = job.req.ntasks_per_node {
            set("SLURM_NTASKS_PER_NODE", n.to_string());
        }
        if let Some(m) = job.req.mem_mb {
            set(
                "SLURM_MEM_PER_NODE",
                if m == 0 { job.mem_per_node_mb } else { m }.to_string(),
            );
        }
        if let Some(m) = job.req.mem_per_cpu_mb {
            set("SLURM_MEM_PER_CPU", m.to_string());
        }
        // An array task's place in its array (observed on Slurm 22.05: `-a 1-5` gives COUNT 5,
        // MIN 1, MAX 5, STEP 1; SLURM_JOB_ID stays the task's own id).
        if let (Some(task), Some(spec)) = (job.array_task(), &job.req.relations.array) {
            set("SLURM_ARRAY_JOB_ID", job.array_job_id().to_string());
            set("SLURM_ARRAY_TASK_ID", task.to_string());
            set("SLURM_ARRAY_TASK_COUNT", spec.tasks.len().to_string());
            let (min, max) = (spec.tasks.first(), spec.tasks.last());
            set(
                "SLURM_ARRAY_TASK_MIN",
                min.copied().unwrap_or(task).to_string(),
            );
            set(
                "SLURM_ARRAY_TASK_MAX",
                max.copied().unwrap_or(task).to_string(),
            );
            set("SLURM_ARRAY_TASK_STEP", spec.step().to_string());
        }
        // Slurm describes its controller here; the daemon has no port, 0 stands in.
        set(
            "SLURM_WORKING_CLUSTER",
            format!("{}:{}:0:9728:109", site.cluster_name, first),
        );
        env
    }

    fn batch_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("ENVIRONMENT", "BATCH")]
    }

    fn task_pid_variable(&self) -> Option<&'static str> {
        Some("SLURM_TASK_PID")
    }

    /// Observed on Slurm 22.05 (a missing directory, one the user may not search): the line
    /// comes twice, from slurmstepd before it starts the task and from the task.
    fn chdir_failed(&self, node: &str, dir: &str, errno: i32) -> String {
        format!(
            "slurmstepd-{node}: error: couldn't chdir to `{dir}': {}: going to /tmp instead\n",
            super::strerror(errno)
        )
        .repeat(2)
    }

    fn exec_failed(&self, node: &str, script: &str, error: &str) -> String {
        format!("slurmstepd-{node}: error: execve(): {script}: {error}\n")
    }

    /// `slurmstepd-<node>: error: *** JOB <id> ON <node> CANCELLED AT <time>[ DUE TO TIME
    /// LIMIT] ***` in the job's stderr file (src `slurmd/slurmstepd/req.c`; observed).
    // slurmctld's job_mgr.c sets `end_time = now` in `_job_timed_out()` and when `scancel`
    // signals a running job with SIGKILL, before the job turns COMPLETING: sacct's End (and
    // Elapsed) of a timed-out job is its limit, not the moment its processes were reaped.
    fn ends_at_kill(&self) -> bool {
        true
    }

    fn kill_notices(&self, job: &Job, ending: JobState, at: f64) -> Vec<Notice> {
        let suffix = match ending {
            JobState::Timeout => " DUE TO TIME LIMIT",
            JobState::Cancelled if job.run.requeue.is_some() => " DUE TO JOB REQUEUE",
            JobState::Cancelled => "",
            _ => return Vec::new(),
        };
        let node = job.first_node();
        vec![Notice {
            file: NoticeFile::Stderr,
            line: format!(
                "slurmstepd-{node}: error: *** JOB {} ON {node} CANCELLED AT {}{suffix} ***\n",
                job.id,
                crate::daemon::format_sim_time(at)
            ),
        }]
    }
}

/// Slurm's `2(x3),1` compression of per-node counts.
pub fn compress_counts(counts: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let mut j = i;
        while j + 1 < counts.len() && counts[j + 1] == counts[i] {
            j += 1;
        }
        let n = j - i + 1;
        out.push(if n > 1 {
            format!("{}(x{n})", counts[i])
        } else {
            counts[i].clone()
        });
        i = j + 1;
    }
    if out.is_empty() {
        "1".into()
    } else {
        out.join(",")
    }
}

fn tasks_per_node(tasks: u32, nodes: u32) -> String {
    let base = tasks / nodes;
    let extra = tasks % nodes;
    let counts: Vec<String> = (0..nodes)
        .map(|i| if i < extra { base + 1 } else { base }.max(1).to_string())
        .collect();
    compress_counts(&counts)
}
