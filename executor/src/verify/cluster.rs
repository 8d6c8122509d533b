//! What the simulated cluster says about verify's jobs: found by the name batchci gives them
//! (`ci-job-<GitLab job id>`), else (Cobalt names none) by the scheduler job id batchci wrote
//! in its state directory; their partition, state and pending reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mock_cluster::client::Conn;
use mock_cluster::config::Cluster;
use mock_cluster::model::{Job, JobState};
use mock_cluster::protocol::{Request, Response};

/// The simulated cluster's daemon, asked over its socket.
#[derive(Debug)]
pub(crate) struct SimCluster {
    dir: PathBuf,
    /// The site's cluster as the daemon runs it.
    pub config: Cluster,
    /// batchci's record of its submissions (the `state_dir` verify gave it).
    state: Option<crate::state::StateStore>,
    /// Scheduler job ids learnt from that record, which is removed when a job ends.
    known: Mutex<HashMap<u64, u32>>,
}

/// A job as the cluster last showed it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The scheduler's job id.
    pub id: u32,
    /// Its partition (queue).
    pub partition: String,
    /// Its state.
    pub state: JobState,
    /// Slurm's pending reason (`None` when there is none).
    pub reason: String,
    /// CPUs it asked for.
    pub cpus: u32,
    /// Its QOS.
    pub qos: String,
    /// The nodes it ran on.
    pub nodes: String,
    /// Who submitted it, as the controller knows the caller.
    pub user: String,
}

impl SimCluster {
    /// The cluster whose daemon serves `dir`.
    /// The cluster whose daemon serves `dir`, for the runner whose state directory is `state`.
    pub(crate) fn new(dir: &Path, config: Cluster, state: &Path) -> SimCluster {
        SimCluster {
            dir: dir.to_path_buf(),
            config,
            state: crate::state::StateStore::open(state).ok(),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The scheduler job id batchci recorded for GitLab job `gitlab_id`, if it has one.
    fn recorded_id(&self, gitlab_id: u64) -> Option<u32> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = known.get(&gitlab_id) {
            return Some(*id);
        }
        let submission = self
            .state
            .as_ref()?
            .list()
            .into_iter()
            .find(|s| s.gitlab_job_id == gitlab_id)?;
        // PBS ids carry the server (`4.sim`); the cluster's record has the number.
        let digits: String = submission
            .scheduler_job_id
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let id = digits.parse().ok()?;
        known.insert(gitlab_id, id);
        Some(id)
    }

    /// Every job the controller knows (finished ones included), or `None` when the daemon
    /// does not answer.
    fn jobs(&self) -> Option<Vec<Job>> {
        let mut conn = Conn::connect(&self.dir).ok()?;
        match conn.call(&Request::Jobs {
            ids: None,
            accounting: true,
            status_command: false,
        }) {
            Ok(Response::Jobs { jobs, .. }) => Some(jobs),
            _ => None,
        }
    }

    /// The scheduler job batchci submitted for GitLab job `gitlab_id`, as it is now.
    pub(crate) fn job_of(&self, gitlab_id: u64) -> Option<Seen> {
        let name = format!("ci-job-{gitlab_id}");
        let jobs = self.jobs()?;
        // The newest record: an array or a requeue never applies to verify's jobs, but a
        // placeholder and its build could share a name.
        let job = match jobs.iter().rev().find(|j| j.req.name == name) {
            Some(job) => job.clone(),
            None => {
                let id = self.recorded_id(gitlab_id)?;
                jobs.into_iter().find(|j| j.id == id)?
            }
        };
        Some(Seen {
            id: job.id,
            partition: job.partition.clone(),
            state: job.run.state,
            reason: job.run.reason.clone(),
            cpus: job.cpus,
            qos: job.qos.clone(),
            nodes: job.nodelist(),
            user: job.req.user.clone(),
        })
    }
}

/// Whether a pending reason means the job will never start as the cluster is configured: no
/// node or limit of its partition or QOS can ever let it run (Slurm leaves such jobs pending).
pub(crate) fn pends_forever(reason: &str) -> bool {
    let word = reason.split([',', ' ']).next().unwrap_or("");
    matches!(
        word,
        "PartitionConfig"
            | "PartitionTimeLimit"
            | "PartitionNodeLimit"
            | "PartitionDown"
            | "PartitionInactive"
            | "BadConstraints"
            | "ReqNodeNotAvail"
            | "DependencyNeverSatisfied"
    ) || (word.starts_with("QOS")
        && word.ends_with("Limit")
        // Waiting for the user's own other jobs to end is not forever.
        && !word.starts_with("QOSMaxJobsPerUser")
        && !word.starts_with("QOSMaxSubmitJobsPerUser"))
}

/// What a pending reason means, in a few words.
pub(crate) fn explain(reason: &str, seen: &Seen, cluster: &Cluster) -> String {
    // The partition's own nodes: a bigger node elsewhere does not help a job that names it.
    let most_cpus = cluster
        .partition(&seen.partition)
        .map(|p| {
            p.nodes
                .iter()
                .filter_map(|n| cluster.node(n))
                .map(|n| n.cpus)
                .max()
        })
        .unwrap_or_else(|| cluster.nodes.iter().map(|n| n.cpus).max())
        .unwrap_or(0);
    let word = reason.split([',', ' ']).next().unwrap_or("");
    match word {
        "PartitionConfig" => format!(
            "asks {} CPUs; partition {} cannot give them (its largest node has {most_cpus})",
            seen.cpus, seen.partition
        ),
        "PartitionTimeLimit" => format!("asks more time than partition {} allows", seen.partition),
        "PartitionNodeLimit" => format!("asks more nodes than partition {} allows", seen.partition),
        "PartitionDown" | "PartitionInactive" => {
            format!("partition {} is not UP", seen.partition)
        }
        qos if qos.starts_with("QOS") => format!(
            "asks more than QOS {} allows, in partition {}",
            seen.qos, seen.partition
        ),
        _ => format!("in partition {}", seen.partition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forever_reasons() {
        for reason in [
            "PartitionConfig",
            "PartitionTimeLimit",
            "QOSMaxCpuPerJobLimit",
            "QOSMaxWallDurationPerJobLimit",
            "ReqNodeNotAvail, UnavailableNodes:node01",
        ] {
            assert!(pends_forever(reason), "{reason}");
        }
        for reason in [
            "None",
            "Resources",
            "Priority",
            "JobHeldUser",
            "QOSMaxJobsPerUserLimit",
            "BeginTime",
        ] {
            assert!(!pends_forever(reason), "{reason}");
        }
    }
}
