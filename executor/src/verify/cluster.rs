//! What the simulated cluster says about verify's jobs: found by the name batchci gives them
//! (`ci-job-<GitLab job id>`), their partition, state and pending reason.

use std::path::{Path, PathBuf};

use mock_cluster::client::Conn;
use mock_cluster::config::Cluster;
use mock_cluster::model::{Job, JobState};
use mock_cluster::protocol::{Request, Response};

/// The simulated cluster's daemon, asked over its socket.
#[derive(Debug, Clone)]
pub(crate) struct SimCluster {
    dir: PathBuf,
    /// The site's cluster as the daemon runs it.
    pub config: Cluster,
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
    /// The nodes it ran on.
    pub nodes: String,
}

impl SimCluster {
    /// The cluster whose daemon serves `dir`.
    pub(crate) fn new(dir: &Path, config: Cluster) -> SimCluster {
        SimCluster {
            dir: dir.to_path_buf(),
            config,
        }
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
        let job = jobs.into_iter().rev().find(|j| j.req.name == name)?;
        Some(Seen {
            id: job.id,
            partition: job.partition.clone(),
            state: job.run.state,
            reason: job.run.reason.clone(),
            cpus: job.cpus,
            nodes: job.nodelist(),
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
    let most_cpus = cluster.nodes.iter().map(|n| n.cpus).max().unwrap_or(0);
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
