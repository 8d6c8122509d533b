//! The simulated cluster a subject runs against: `mock-cluster env` in a state directory of
//! its own, its fake commands first on the subject's PATH, and what its queue holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

/// The cluster file used when none is given: two nodes, a default partition and a
/// `gitlab-ci` partition.
pub const DEFAULT_CLUSTER: &str = r#"cluster_name = "batchci"
time_scale = 1.0
kill_wait = 2
min_job_age = 300

[[nodes]]
names = "node[01-02]"
cpus = 4
memory_mb = 16000

[[partitions]]
name = "debug"
nodes = "node[01-02]"
default = true
max_time = "UNLIMITED"

[[partitions]]
name = "gitlab-ci"
nodes = "node[01-02]"
max_time = "60"
"#;

/// Why the simulated cluster cannot be used.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A `mock-cluster` or fake command could not be run.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// What failed.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its standard error.
        stderr: String,
    },
    /// The cluster file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A job in the simulated cluster's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// Its id.
    pub id: String,
    /// Its state as squeue prints it (`PENDING`, `RUNNING`, ...).
    pub state: String,
    /// Its name.
    pub name: String,
}

/// A running simulated cluster; stopped (its jobs cancelled) when dropped.
pub struct SimulatedCluster {
    mock_cluster: PathBuf,
    state_dir: PathBuf,
    bin_dir: PathBuf,
}

impl SimulatedCluster {
    /// Starts the cluster described by `cluster_file` (TOML text) in `dir/cluster`, with the
    /// `mock-cluster` binary at `mock_cluster`.
    pub fn start(
        mock_cluster: &Path,
        dir: &Path,
        cluster_file: &str,
    ) -> Result<SimulatedCluster, ClusterError> {
        let config = dir.join("cluster.toml");
        std::fs::write(&config, cluster_file).map_err(|source| ClusterError::Write {
            path: config.clone(),
            source,
        })?;
        let state_dir = dir.join("cluster");
        let mut command = Command::new(mock_cluster);
        command
            .args(["env", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state_dir);
        run(command, "mock-cluster env")?;
        let cluster = SimulatedCluster {
            mock_cluster: mock_cluster.to_path_buf(),
            bin_dir: state_dir.join("bin"),
            state_dir,
        };
        // The daemon starts with the first command; starting it here keeps its start out of
        // the first scenario's time.
        cluster.queue()?;
        Ok(cluster)
    }

    /// The environment that makes the fakes reach this cluster: their directory first on
    /// `PATH` (before `base_path`) and `MOCK_CLUSTER_STATE_DIR`.
    pub fn env(&self, base_path: &str) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                format!("{}:{base_path}", self.bin_dir.display()),
            ),
            (
                "MOCK_CLUSTER_STATE_DIR".into(),
                self.state_dir.display().to_string(),
            ),
        ]
    }

    /// Runs one fake command (`squeue`, `sbatch`, ...) against the cluster; its stdout.
    pub fn command(&self, program: &str, args: &[&str]) -> Result<String, ClusterError> {
        let mut command = Command::new(self.bin_dir.join(program));
        command
            .args(args)
            .env("MOCK_CLUSTER_STATE_DIR", &self.state_dir);
        run(command, &format!("{program} {}", args.join(" ")))
    }

    /// Every job pending or running, in id order.
    pub fn queue(&self) -> Result<Vec<QueuedJob>, ClusterError> {
        let text = self.command("squeue", &["-h", "-o", "%i|%T|%j"])?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut fields = line.trim().splitn(3, '|');
                Some(QueuedJob {
                    id: fields.next()?.to_string(),
                    state: fields.next()?.to_string(),
                    name: fields.next()?.to_string(),
                })
            })
            .collect())
    }

    /// The names of the default partition's nodes (sinfo marks that partition with `*`): where
    /// a job that names no partition runs. A site's cluster may have nodes no such job can
    /// reach, and `sbatch --nodelist` of one is refused.
    pub fn nodes(&self) -> Result<Vec<String>, ClusterError> {
        let text = self.command("sinfo", &["-h", "-N", "-o", "%N %P"])?;
        let mut nodes: Vec<String> = text
            .lines()
            .filter_map(|line| {
                let (node, partition) = line.trim().split_once(' ')?;
                partition.ends_with('*').then(|| node.to_string())
            })
            .collect();
        // A node in several partitions has a line for each.
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// The partitions, the default one first (sinfo marks it with `*`).
    pub fn partitions(&self) -> Result<Vec<String>, ClusterError> {
        let text = self.command("sinfo", &["-h", "-o", "%P"])?;
        let mut partitions: Vec<(bool, String)> = text
            .lines()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.strip_suffix('*') {
                Some(name) => (false, name.to_string()),
                None => (true, p.to_string()),
            })
            .collect();
        partitions.sort_by_key(|(not_default, _)| *not_default);
        Ok(partitions.into_iter().map(|(_, name)| name).collect())
    }

    /// Every job accounting knows, as `(id, name, partition)`, in id order.
    pub fn accounted(&self) -> Result<Vec<(u64, String, String)>, ClusterError> {
        let text = self.command(
            "sacct",
            &["-a", "-X", "-n", "-P", "-o", "JobIDRaw,JobName,Partition"],
        )?;
        let mut jobs: Vec<(u64, String, String)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.trim().splitn(3, '|');
                let id = fields.next()?.parse().ok()?;
                Some((id, fields.next()?.to_string(), fields.next()?.to_string()))
            })
            .collect();
        jobs.sort();
        Ok(jobs)
    }

    /// The argument vectors of every call of the fake `program` so far, in call order
    /// (`mock-cluster calls`).
    pub fn calls_of(&self, program: &str) -> Result<Vec<Vec<String>>, ClusterError> {
        let mut command = Command::new(&self.mock_cluster);
        command
            .args(["calls", "--json", "--state-dir"])
            .arg(&self.state_dir);
        let text = run(command, "mock-cluster calls")?;
        let calls: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
        Ok(calls
            .iter()
            .filter_map(|call| {
                let argv: Vec<String> = call
                    .get("argv")?
                    .as_array()?
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect();
                let name = std::path::Path::new(argv.first()?).file_name()?;
                (name == program).then_some(argv)
            })
            .collect())
    }

    /// Cancels job `id`.
    pub fn cancel(&self, id: &str) -> Result<(), ClusterError> {
        self.command("scancel", &[id]).map(|_| ())
    }
}

impl Drop for SimulatedCluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.mock_cluster)
            .args(["stop", "--cancel-jobs", "--state-dir"])
            .arg(&self.state_dir)
            .output();
    }
}

fn run(mut command: Command, what: &str) -> Result<String, ClusterError> {
    let output = command.output().map_err(|source| ClusterError::Spawn {
        program: what.split(' ').next().unwrap_or(what).to_string(),
        source,
    })?;
    if !output.status.success() {
        return Err(ClusterError::Failed {
            command: what.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
