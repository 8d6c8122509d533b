//! The cluster description: TOML in, validated [`Cluster`] out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::Spanned;

use crate::hostlist;
use crate::units::{self, TimeLimit};

/// The cluster used when no configuration file is given.
pub const DEFAULT_CLUSTER_TOML: &str = r#"# The embedded default cluster of mock-cluster.
cluster_name = "sim"
time_scale = 1.0
kill_wait = 30
min_job_age = 300

[[nodes]]
names = "node[01-04]"
cpus = 4
memory_mb = 16000

[[partitions]]
name = "debug"
nodes = "node[01-04]"
default = true
max_time = "UNLIMITED"

[[partitions]]
name = "gitlab-ci"
nodes = "node[01-04]"
max_time = "UNLIMITED"
"#;

/// A configuration that cannot be used; names the file, the line and the key.
/// The most CPUs one node may have (Slurm keeps per-node CPU counts in 16 bits).
const MAX_NODE_CPUS: u32 = 65_535;

#[derive(Debug, Error)]
#[error("{file}:{line}: key `{key}`: {message}")]
pub struct ConfigError {
    /// The file the configuration came from.
    pub file: String,
    /// 1-based line of the offending key.
    pub line: usize,
    /// The key at fault.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_cluster_name")]
    cluster_name: String,
    #[serde(default = "default_time_scale")]
    time_scale: Spanned<f64>,
    #[serde(default = "default_kill_wait")]
    kill_wait: u64,
    #[serde(default = "default_min_job_age")]
    min_job_age: u64,
    #[serde(default = "default_sched_delay")]
    sched_delay: Spanned<f64>,
    #[serde(default = "default_sched_interval")]
    sched_interval: Spanned<f64>,
    #[serde(default = "default_accounting_submit_delay")]
    accounting_submit_delay: Spanned<f64>,
    #[serde(default = "default_accounting_start_delay")]
    accounting_start_delay: Spanned<f64>,
    #[serde(default)]
    submit_host: Option<String>,
    #[serde(default = "default_first_job_id")]
    first_job_id: u32,
    #[serde(default = "default_max_array_size")]
    max_array_size: u32,
    #[serde(default)]
    kill_invalid_depend: bool,
    #[serde(default)]
    flavor: QsubFlavor,
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    partitions: Vec<RawPartition>,
    #[serde(default)]
    qos: Vec<RawQos>,
    #[serde(default)]
    inject: Injections,
    #[serde(default)]
    docker: RawDocker,
}

/// The `[docker]` table: the Docker daemons of the nodes (see [`DockerConfig`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocker {
    #[serde(default = "default_docker_port")]
    port: u16,
    #[serde(default)]
    tls: bool,
    #[serde(default = "default_docker_images")]
    images: Vec<String>,
    #[serde(default)]
    nodes: Option<Spanned<String>>,
}

impl Default for RawDocker {
    fn default() -> RawDocker {
        RawDocker {
            port: default_docker_port(),
            tls: false,
            images: default_docker_images(),
            nodes: None,
        }
    }
}

fn default_docker_port() -> u16 {
    2376
}

fn default_docker_images() -> Vec<String> {
    DEFAULT_DOCKER_IMAGES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The images every simulated Docker daemon has unless `[docker] images` says otherwise.
pub const DEFAULT_DOCKER_IMAGES: &[&str] = &[
    "alpine:latest",
    "busybox:latest",
    "debian:bookworm",
    "batchci-busybox:latest",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    names: Spanned<String>,
    cpus: u32,
    memory_mb: u64,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartition {
    name: Spanned<String>,
    nodes: Spanned<String>,
    #[serde(default)]
    default: bool,
    #[serde(default = "default_max_time")]
    max_time: Spanned<TimeValue>,
    #[serde(default)]
    max_nodes: Option<u32>,
    #[serde(default = "default_state")]
    state: Spanned<String>,
    #[serde(default)]
    qos: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQos {
    name: String,
    #[serde(default)]
    max_jobs_per_user: Option<u32>,
    #[serde(default)]
    max_submit_jobs_per_user: Option<u32>,
    #[serde(default)]
    max_wall: Option<Spanned<String>>,
    #[serde(default)]
    max_cpus_per_job: Option<u32>,
    #[serde(default)]
    priority: u32,
}

fn default_cluster_name() -> String {
    "sim".into()
}
fn default_time_scale() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}
fn default_first_job_id() -> u32 {
    1
}
/// Slurm's default `MaxArraySize` (slurm.conf(5)), which the reference cluster keeps.
fn default_max_array_size() -> u32 {
    1001
}
fn default_kill_wait() -> u64 {
    30
}
fn default_min_job_age() -> u64 {
    300
}
/// Observed on Slurm 22.05 with the stock event-triggered scheduling (slurm-observed.md 56):
/// a batch job is first tried 0.13–0.66 s after `sbatch` returns.
pub(crate) const DEFAULT_SCHED_DELAY: f64 = 0.3;
/// Observed (slurm-observed.md 57): `sacct` knows nothing of a job for about 0.1 s after
/// `sbatch` returned.
pub(crate) const DEFAULT_ACCOUNTING_SUBMIT_DELAY: f64 = 0.1;
/// Observed (slurm-observed.md 57): `sacct` says PENDING for 1.2 s after `squeue` says RUNNING.
pub(crate) const DEFAULT_ACCOUNTING_START_DELAY: f64 = 1.2;
fn default_sched_delay() -> Spanned<f64> {
    Spanned::new(0..0, DEFAULT_SCHED_DELAY)
}
/// Stock Slurm 22.05 (slurm.conf(5)): the backfill scheduler, the default, runs every
/// `bf_interval` = 30 s, the main scheduler every `sched_interval` = 60 s; a job whose begin
/// time comes between two scheduling events starts at the earlier of their next runs.
pub(crate) const DEFAULT_SCHED_INTERVAL: f64 = 30.0;
fn default_sched_interval() -> Spanned<f64> {
    Spanned::new(0..0, DEFAULT_SCHED_INTERVAL)
}
fn serde_default_sched_interval() -> f64 {
    DEFAULT_SCHED_INTERVAL
}
fn default_accounting_submit_delay() -> Spanned<f64> {
    Spanned::new(0..0, DEFAULT_ACCOUNTING_SUBMIT_DELAY)
}
fn default_accounting_start_delay() -> Spanned<f64> {
    Spanned::new(0..0, DEFAULT_ACCOUNTING_START_DELAY)
}
fn serde_default_sched_delay() -> f64 {
    DEFAULT_SCHED_DELAY
}
fn serde_default_accounting_submit_delay() -> f64 {
    DEFAULT_ACCOUNTING_SUBMIT_DELAY
}
fn serde_default_accounting_start_delay() -> f64 {
    DEFAULT_ACCOUNTING_START_DELAY
}
fn default_max_time() -> Spanned<TimeValue> {
    Spanned::new(0..0, TimeValue::Text("UNLIMITED".into()))
}

/// A time limit written as a Slurm time string or as whole minutes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TimeValue {
    Minutes(u64),
    Text(String),
}

impl TimeValue {
    fn text(&self) -> String {
        match self {
            TimeValue::Minutes(m) => m.to_string(),
            TimeValue::Text(t) => t.clone(),
        }
    }
}
fn default_state() -> Spanned<String> {
    Spanned::new(0..0, "UP".into())
}

/// Failure injections, from the `[inject]` table or `mock-cluster inject`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injections {
    /// How many of the next submissions fail.
    #[serde(default)]
    pub submit_errors: u32,
    /// The Slurm error text those submissions fail with.
    #[serde(default)]
    pub submit_error_text: Option<String>,
    /// Status commands (squeue, sacct, scontrol, sinfo) time out.
    #[serde(default)]
    pub status_timeout: bool,
    /// Nodes that are down (their jobs end NODE_FAIL).
    #[serde(default)]
    pub failed_nodes: Vec<String>,
    /// Simulated seconds before a job's output file appears.
    #[serde(default)]
    pub output_delay: f64,
}

/// The Docker daemons of the simulated nodes (the `[docker]` table), used by the fake `docker`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DockerConfig {
    /// The TCP port the daemons listen on (`tcp://<node>:<port>`).
    pub port: u16,
    /// Whether the daemons require TLS client certificates (dockerd `--tlsverify`).
    pub tls: bool,
    /// The images the daemons have (`name:tag`; a name without a tag is `name:latest`).
    pub images: Vec<String>,
    /// The nodes that run a daemon; `None`: every node.
    pub nodes: Option<Vec<String>>,
}

impl Default for DockerConfig {
    fn default() -> DockerConfig {
        DockerConfig {
            port: default_docker_port(),
            tls: false,
            images: default_docker_images(),
            nodes: None,
        }
    }
}

impl DockerConfig {
    /// Whether `node` runs a Docker daemon.
    pub fn runs_on(&self, node: &str) -> bool {
        self.nodes
            .as_ref()
            .is_none_or(|nodes| nodes.iter().any(|n| n == node))
    }
}

/// One compute node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// CPUs.
    pub cpus: u32,
    /// Memory in MB.
    pub memory_mb: u64,
    /// Feature tags (`--constraint`).
    pub features: Vec<String>,
}

/// One partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Partition {
    /// Partition name.
    pub name: String,
    /// Its nodes, expanded.
    pub nodes: Vec<String>,
    /// The default partition.
    pub default: bool,
    /// Maximum time limit.
    pub max_time: TimeLimit,
    /// Maximum nodes per job.
    pub max_nodes: Option<u32>,
    /// `UP`, `DOWN`, `DRAIN` or `INACTIVE`.
    pub state: String,
    /// QOS applied to jobs in this partition that ask for none.
    pub qos: Option<String>,
}

/// A QOS with the limits the scheduler enforces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Qos {
    /// QOS name.
    pub name: String,
    /// Running jobs per user.
    pub max_jobs_per_user: Option<u32>,
    /// Jobs (pending + running) per user; more are refused at submit.
    pub max_submit_jobs_per_user: Option<u32>,
    /// Longest time limit.
    pub max_wall: Option<TimeLimit>,
    /// Most CPUs one job may have (`MaxTRESPerJob=cpu=N`); a job asking more pends with
    /// `QOSMaxCpuPerJobLimit`.
    #[serde(default)]
    pub max_cpus_per_job: Option<u32>,
    /// Added to job priority.
    pub priority: u32,
}

/// Whose `qsub`, `qstat` and `qdel` the cluster provides: PBS and Cobalt name their
/// commands alike, so one cluster imitates one of them (Slurm's commands are always there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QsubFlavor {
    /// PBS Professional / OpenPBS.
    #[default]
    Pbs,
    /// Cobalt.
    Cobalt,
}

impl QsubFlavor {
    /// The job flavour of jobs submitted through this `qsub`.
    pub fn flavor(self) -> crate::flavor::Flavor {
        match self {
            QsubFlavor::Pbs => crate::flavor::Flavor::Pbs,
            QsubFlavor::Cobalt => crate::flavor::Flavor::Cobalt,
        }
    }
}

/// A validated cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cluster {
    /// `ClusterName`.
    pub cluster_name: String,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Simulated seconds between SIGTERM and SIGKILL.
    pub kill_wait: u64,
    /// Simulated seconds a finished job stays in the controller.
    pub min_job_age: u64,
    /// Simulated seconds from a Slurm batch submission to the scheduling pass that may start
    /// it (never before the submitting `sbatch` has its answer): Slurm's event-triggered pass.
    #[serde(default = "serde_default_sched_delay")]
    pub sched_delay: f64,
    /// Simulated seconds between Slurm's periodic scheduling passes (the smaller of
    /// slurm.conf's `sched_interval` and `bf_interval`): a job whose begin time (`--begin`, a
    /// requeue's wait) comes after its last scheduling event starts at the next pass.
    #[serde(default = "serde_default_sched_interval")]
    pub sched_interval: f64,
    /// Simulated seconds before `sacct` knows a submitted Slurm job (slurmdbd lags slurmctld).
    #[serde(default = "serde_default_accounting_submit_delay")]
    pub accounting_submit_delay: f64,
    /// Simulated seconds for which `sacct` still shows a started Slurm job as PENDING.
    #[serde(default = "serde_default_accounting_start_delay")]
    pub accounting_start_delay: f64,
    /// Host name reported as submit host.
    pub submit_host: Option<String>,
    /// The first job id (`FirstJobId`).
    #[serde(default = "default_first_job_id")]
    pub first_job_id: u32,
    /// `MaxArraySize`: array task ids must be below it.
    #[serde(default = "default_max_array_size")]
    pub max_array_size: u32,
    /// `DependencyParameters=kill_invalid_depend`: a job whose dependency can never be
    /// satisfied is cancelled instead of staying pending (`--kill-on-invalid-dep` overrides).
    #[serde(default)]
    pub kill_invalid_depend: bool,
    /// Whose `qsub qstat qdel` the cluster provides (`flavor = "pbs"|"cobalt"`).
    #[serde(default)]
    pub flavor: QsubFlavor,
    /// Nodes in declaration order.
    pub nodes: Vec<Node>,
    /// Partitions in declaration order.
    pub partitions: Vec<Partition>,
    /// QOS definitions by name.
    pub qos: BTreeMap<String, Qos>,
    /// Injections active at start.
    pub inject: Injections,
    /// The nodes' Docker daemons (`[docker]`).
    #[serde(default)]
    pub docker: DockerConfig,
}

impl Cluster {
    /// The embedded default cluster.
    pub fn embedded_default() -> Cluster {
        // The embedded text is a constant that the test suite parses; failing here is a build bug.
        parse(DEFAULT_CLUSTER_TOML, "<embedded default>")
            .unwrap_or_else(|e| unreachable!("embedded default cluster is invalid: {e}"))
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Cluster, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            line: 0,
            key: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        parse(&text, &name)
    }

    /// The default partition.
    pub fn default_partition(&self) -> Option<&Partition> {
        self.partitions
            .iter()
            .find(|p| p.default)
            .or(self.partitions.first())
    }

    /// A partition by name.
    pub fn partition(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

fn key_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((k, _)) => k.trim().to_string(),
        None => line.trim().trim_matches(['[', ']']).to_string(),
    }
}

/// Parses and validates configuration text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Cluster, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim().to_string();
        let key = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .map(str::to_string)
            .unwrap_or_else(|| key_at(text, offset));
        ConfigError {
            file: file.into(),
            line: line_of(text, offset),
            key,
            message,
        }
    })?;
    let fail = |span: std::ops::Range<usize>, key: &str, message: String| ConfigError {
        file: file.into(),
        line: line_of(text, span.start),
        key: key.into(),
        message,
    };
    let scale = *raw.time_scale.get_ref();
    if !(scale.is_finite() && scale > 0.0) {
        return Err(fail(
            raw.time_scale.span(),
            "time_scale",
            "must be a positive number".into(),
        ));
    }
    for (value, key) in [
        (&raw.sched_delay, "sched_delay"),
        (&raw.accounting_submit_delay, "accounting_submit_delay"),
        (&raw.accounting_start_delay, "accounting_start_delay"),
    ] {
        let v = *value.get_ref();
        if !(v.is_finite() && v >= 0.0) {
            return Err(fail(
                value.span(),
                key,
                "must be a number of seconds, 0 or more".into(),
            ));
        }
    }
    let interval = *raw.sched_interval.get_ref();
    if !(interval.is_finite() && interval > 0.0) {
        return Err(fail(
            raw.sched_interval.span(),
            "sched_interval",
            "must be a number of seconds above 0".into(),
        ));
    }
    let delay = raw.inject.output_delay;
    if !(delay.is_finite() && delay >= 0.0) {
        return Err(ConfigError {
            file: file.into(),
            line: text
                .find("output_delay")
                .map_or(1, |offset| line_of(text, offset)),
            key: "output_delay".into(),
            message: "must be a number of seconds, 0 or more".into(),
        });
    }
    let mut nodes: Vec<Node> = Vec::new();
    for raw_node in &raw.nodes {
        let names = hostlist::expand(raw_node.names.get_ref())
            .map_err(|e| fail(raw_node.names.span(), "names", e.to_string()))?;
        if raw_node.cpus == 0 || raw_node.cpus > MAX_NODE_CPUS {
            return Err(fail(
                raw_node.names.span(),
                "cpus",
                format!("must be between 1 and {MAX_NODE_CPUS}"),
            ));
        }
        for name in names {
            if nodes.iter().any(|n| n.name == name) {
                return Err(fail(
                    raw_node.names.span(),
                    "names",
                    format!("node `{name}` is declared twice"),
                ));
            }
            nodes.push(Node {
                name,
                cpus: raw_node.cpus,
                memory_mb: raw_node.memory_mb,
                features: raw_node.features.clone(),
            });
        }
    }
    if nodes.is_empty() {
        return Err(ConfigError {
            file: file.into(),
            line: 1,
            key: "nodes".into(),
            message: "at least one [[nodes]] entry is required".into(),
        });
    }
    let mut qos = BTreeMap::new();
    for q in &raw.qos {
        let max_wall = match &q.max_wall {
            Some(w) => Some(
                units::parse_time_limit(w.get_ref())
                    .map_err(|e| fail(w.span(), "max_wall", e.to_string()))?,
            ),
            None => None,
        };
        qos.insert(
            q.name.clone(),
            Qos {
                name: q.name.clone(),
                max_jobs_per_user: q.max_jobs_per_user,
                max_submit_jobs_per_user: q.max_submit_jobs_per_user,
                max_wall,
                max_cpus_per_job: q.max_cpus_per_job,
                priority: q.priority,
            },
        );
    }
    let mut partitions: Vec<Partition> = Vec::new();
    for p in &raw.partitions {
        let name = p.name.get_ref().clone();
        if partitions.iter().any(|q| q.name == name) {
            return Err(fail(
                p.name.span(),
                "name",
                format!("partition `{name}` is declared twice"),
            ));
        }
        let members = hostlist::expand(p.nodes.get_ref())
            .map_err(|e| fail(p.nodes.span(), "nodes", e.to_string()))?;
        if let Some(unknown) = members
            .iter()
            .find(|m| !nodes.iter().any(|n| &n.name == *m))
        {
            return Err(fail(
                p.nodes.span(),
                "nodes",
                format!("node `{unknown}` is not declared in [[nodes]]"),
            ));
        }
        let max_time = units::parse_time_limit(&p.max_time.get_ref().text())
            .map_err(|e| fail(p.max_time.span(), "max_time", e.to_string()))?;
        let state = p.state.get_ref().to_ascii_uppercase();
        if !["UP", "DOWN", "DRAIN", "INACTIVE"].contains(&state.as_str()) {
            return Err(fail(
                p.state.span(),
                "state",
                "must be UP, DOWN, DRAIN or INACTIVE".into(),
            ));
        }
        if let Some(q) = &p.qos
            && !qos.contains_key(q)
        {
            return Err(fail(
                p.name.span(),
                "qos",
                format!("QOS `{q}` is not declared in [[qos]]"),
            ));
        }
        partitions.push(Partition {
            name,
            nodes: members,
            default: p.default,
            max_time,
            max_nodes: p.max_nodes,
            state,
            qos: p.qos.clone(),
        });
    }
    if partitions.is_empty() {
        return Err(ConfigError {
            file: file.into(),
            line: 1,
            key: "partitions".into(),
            message: "at least one [[partitions]] entry is required".into(),
        });
    }
    if partitions.iter().filter(|p| p.default).count() > 1 {
        let second = raw
            .partitions
            .iter()
            .filter(|p| p.default)
            .nth(1)
            .map(|p| p.name.span())
            .unwrap_or(0..0);
        return Err(fail(
            second,
            "default",
            "only one partition may be the default".into(),
        ));
    }
    let docker_nodes = match &raw.docker.nodes {
        Some(list) => {
            let members = hostlist::expand(list.get_ref())
                .map_err(|e| fail(list.span(), "nodes", e.to_string()))?;
            if let Some(unknown) = members
                .iter()
                .find(|m| !nodes.iter().any(|n| &n.name == *m))
            {
                return Err(fail(
                    list.span(),
                    "nodes",
                    format!("node `{unknown}` is not declared in [[nodes]]"),
                ));
            }
            Some(members)
        }
        None => None,
    };
    if raw.docker.port == 0 {
        return Err(ConfigError {
            file: file.into(),
            line: text
                .find("[docker]")
                .and_then(|table| text[table..].find("port").map(|p| table + p))
                .map_or(1, |offset| line_of(text, offset)),
            key: "port".into(),
            message: "must be a TCP port, 1 to 65535".into(),
        });
    }
    if let Some((image, e)) = raw.docker.images.iter().find_map(|i| {
        crate::cli::docker::engine::split_reference(i)
            .err()
            .map(|e| (i, e))
    }) {
        return Err(ConfigError {
            file: file.into(),
            line: text.find(image.as_str()).map_or(1, |o| line_of(text, o)),
            key: "images".into(),
            message: format!("`{image}`: {e}"),
        });
    }
    let docker = DockerConfig {
        port: raw.docker.port,
        tls: raw.docker.tls,
        images: raw.docker.images,
        nodes: docker_nodes,
    };
    Ok(Cluster {
        cluster_name: raw.cluster_name,
        time_scale: scale,
        kill_wait: raw.kill_wait,
        min_job_age: raw.min_job_age,
        sched_delay: *raw.sched_delay.get_ref(),
        sched_interval: *raw.sched_interval.get_ref(),
        accounting_submit_delay: *raw.accounting_submit_delay.get_ref(),
        accounting_start_delay: *raw.accounting_start_delay.get_ref(),
        submit_host: raw.submit_host,
        first_job_id: raw.first_job_id.max(1),
        max_array_size: raw.max_array_size,
        kill_invalid_depend: raw.kill_invalid_depend,
        flavor: raw.flavor,
        nodes,
        partitions,
        qos,
        inject: raw.inject,
        docker,
    })
}
