//! The executor's configuration file.
//!
//! The file has gitlab-runner's `config.toml` shape, so a site can move a runner entry between
//! gitlab-runner and batchci: global `concurrent`, `check_interval`, `log_level`,
//! `listen_address`, then one `[[runners]]` table per runner with `[runners.batch]` for what all
//! batch executors share and one table per backend for its own keys.
//!
//! Every error names the file, the line and the key; an unknown key is an error that suggests
//! the nearest known one. See `docs/configuration.md` for the full reference.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A configuration problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted path of the key, e.g. `runners[0].executor`; empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many jobs run at once over all runners.
    #[serde(default = "default_concurrent")]
    pub concurrent: usize,
    /// Pause between job requests when GitLab has no job, in seconds.
    #[serde(default = "default_check_interval", with = "duration")]
    pub check_interval: Duration,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default = "default_log_level")]
    pub log_level: LogLevel,
    /// Address of the Prometheus metrics endpoint, e.g. `127.0.0.1:9252`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<String>,
    /// How long the first SIGTERM waits for running jobs before cancelling them; 0 waits as
    /// long as they run.
    #[serde(default = "default_shutdown_timeout", with = "duration")]
    pub shutdown_timeout: Duration,
    /// Where batchci records the scheduler jobs it submitted, so that a restarted executor can
    /// cancel what a crash left behind.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The runners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runners: Vec<RunnerConfig>,
}

/// One `[[runners]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// Name shown in job logs.
    pub name: String,
    /// GitLab's URL, e.g. `https://gitlab.example.com`.
    pub url: String,
    /// The runner authentication token (`glrt-...`).
    pub token: String,
    /// Which backend runs the jobs.
    pub executor: ExecutorKind,
    /// Most jobs this runner runs at once; 0 means only `concurrent` limits it.
    #[serde(default)]
    pub limit: usize,
    /// Where job working directories are created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds_dir: Option<PathBuf>,
    /// Removes old build directories under `builds_dir` by age or count (see
    /// [`crate::retention`]); unset keeps them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds_retention: Option<crate::retention::BuildsRetention>,
    /// Where caches are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Extra `NAME=value` variables for every job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Largest job log in KiB; output past it is dropped with GitLab's notice.
    #[serde(default = "default_output_limit")]
    pub output_limit: usize,
    /// The job shell; only `bash` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Written by `gitlab-runner register`; kept so a gitlab-runner entry can be copied as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Written by `gitlab-runner register`; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_obtained_at: Option<toml::value::Datetime>,
    /// Written by `gitlab-runner register`; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<toml::value::Datetime>,
    /// Settings every batch backend shares.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Slurm settings (executors `slurm` and `docker+slurm`).
    #[serde(default)]
    pub slurm: SlurmConfig,
    /// Docker settings (executor `docker+slurm`).
    #[serde(default)]
    pub docker: DockerConfig,
    /// Who jobs run as: the ID token, the local account, downscoping.
    #[serde(default, skip_serializing_if = "is_default_auth")]
    pub auth: crate::auth::AuthConfig,
}

fn is_default_auth(auth: &crate::auth::AuthConfig) -> bool {
    *auth == crate::auth::AuthConfig::default()
}

/// `[runners.batch]`: what every batch backend shares.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// CI variables holding user scheduler parameters; the first one set is used.
    #[serde(default = "default_arguments_variable")]
    pub arguments_variable: Vec<String>,
    /// Directory holding the scheduler's commands, when they are not on PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_bin: Option<PathBuf>,
    /// Environment variables of the executor passed on to scheduler commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_vars: Vec<String>,
    /// `NAME=value` pairs set for this runner's scheduler commands only (e.g. the
    /// `SLURM_CONF` of one of several clusters); they win over `env_vars`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_environment: Vec<String>,
    /// Let users set the flags the executor controls (e.g. `--output`).
    #[serde(default)]
    pub allow_illegal_args: bool,
    /// Pause before submitting, to spread load on the scheduler.
    #[serde(default, with = "duration")]
    pub command_delay: Duration,
    /// How long to keep reading output after the job ended while the file still grows
    /// (output written on another node over NFS arrives late).
    #[serde(default = "default_nfs_timeout", with = "duration")]
    pub nfs_timeout: Duration,
    /// Polling interval of the output tailer, used beside inotify.
    #[serde(default = "default_poll_interval", with = "duration")]
    pub poll_interval: Duration,
    /// How many times a submission the scheduler refused for a passing reason (a busy or
    /// unresponsive controller) is tried again.
    #[serde(default = "default_submit_retries")]
    pub submit_retries: u32,
    /// The pause before the first such retry; it doubles with every further retry.
    #[serde(default = "default_submit_retry_delay", with = "duration")]
    pub submit_retry_delay: Duration,
    /// How batchci waits for its jobs: `submit` keeps the scheduler's own waiting submit
    /// command attached (`sbatch --wait`), one process per job; `batched` submits without
    /// waiting and asks the scheduler about all of the process's jobs in one status query
    /// every `status_interval`.
    #[serde(default)]
    pub wait: BatchWait,
    /// With `wait = "batched"`: how often the one status query of all jobs is made.
    #[serde(default = "default_status_interval", with = "duration")]
    pub status_interval: Duration,
}

/// How batchci waits for its batch jobs (`[runners.batch] wait`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchWait {
    /// The submit command waits for the job (`sbatch --wait`, `qsub -W block=true`).
    #[default]
    Submit,
    /// The submit command returns at once; one status query per interval covers every job.
    Batched,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            arguments_variable: default_arguments_variable(),
            scheduler_bin: None,
            env_vars: Vec::new(),
            scheduler_environment: Vec::new(),
            allow_illegal_args: false,
            command_delay: Duration::ZERO,
            nfs_timeout: default_nfs_timeout(),
            poll_interval: default_poll_interval(),
            submit_retries: default_submit_retries(),
            submit_retry_delay: default_submit_retry_delay(),
            wait: BatchWait::default(),
            status_interval: default_status_interval(),
        }
    }
}

/// `[runners.slurm]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// Partition of the docker+slurm placeholder job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// QoS of the docker+slurm placeholder job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Take no new job while this many of our placeholder jobs are pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_builds: Option<usize>,
    /// CPUs of the docker+slurm allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory of the docker+slurm allocation, e.g. `4G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Kernel memory limit of the container, e.g. `4G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_memory: Option<String>,
    /// Longest build in minutes; set it to the partition's time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Fail the job when Slurm has not started the placeholder within this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_timeout: Option<u64>,
    /// Minutes added to the job's timeout for the Slurm time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_time: Option<u64>,
    /// Seconds between the progress lines written into the job log while the placeholder job
    /// waits for Slurm (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_progress_interval: Option<u64>,
    /// Fail early when Slurm's expected start time is past `allocation_timeout`.
    #[serde(default)]
    pub abort_on_expected_allocation_timeout: bool,
    /// Shorten a job timeout that exceeds `timeout` instead of failing the job.
    #[serde(default)]
    pub truncate_job_timeout: bool,
    /// Script run as the placeholder job instead of the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_script: Option<PathBuf>,
    /// User to run Slurm commands as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group to run Slurm commands as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `[runners.docker]` (executor `docker+slurm`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Docker daemon of the allocated node; `{hostname}` (or `{node}`) is replaced by the
    /// host the allocation script reported. Unset: `tcp://{hostname}:2376`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The docker client to run (a path, or a name looked up in PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_program: Option<PathBuf>,
    /// Directory with `ca.pem`, `cert.pem` and `key.pem` for the daemons' TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_path: Option<PathBuf>,
    /// Verify the daemons' certificates.
    #[serde(default)]
    pub tls_verify: bool,
    /// Image used when the job names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Apply the allocation's limits to cache containers too.
    #[serde(default = "default_true")]
    pub resource_limits_for_cache: bool,
    /// Apply the allocation's limits to service containers too.
    #[serde(default = "default_true")]
    pub resource_limits_for_services: bool,
    /// Run containers privileged.
    #[serde(default)]
    pub privileged: bool,
    /// Do not mount a cache volume.
    #[serde(default)]
    pub disable_cache: bool,
    /// Extra volumes, in `docker run -v` syntax.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Size of `/dev/shm` in bytes; 0 keeps Docker's default.
    #[serde(default)]
    pub shm_size: u64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host: None,
            docker_program: None,
            tls_cert_path: None,
            tls_verify: false,
            image: None,
            resource_limits_for_cache: true,
            resource_limits_for_services: true,
            privileged: false,
            disable_cache: false,
            volumes: Vec::new(),
            shm_size: 0,
        }
    }
}

/// The backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ExecutorKind {
    /// `env -i /bin/bash --login` on the executor's host.
    #[serde(rename = "shell")]
    Shell,
    /// `sbatch --wait`.
    #[serde(rename = "slurm")]
    Slurm,
    /// `qsub -Wblock=true` (PBS Pro / OpenPBS).
    #[serde(rename = "pbs")]
    Pbs,
    /// `bsub -I`.
    #[serde(rename = "lsf")]
    Lsf,
    /// `flux alloc`.
    #[serde(rename = "flux")]
    Flux,
    /// Cobalt `qsub`.
    #[serde(rename = "cobalt")]
    Cobalt,
    /// Slurm allocates, Docker runs.
    #[serde(rename = "docker+slurm")]
    DockerSlurm,
}

impl ExecutorKind {
    /// Every kind, in the order messages list them.
    pub const ALL: [ExecutorKind; 7] = [
        ExecutorKind::Shell,
        ExecutorKind::Slurm,
        ExecutorKind::Pbs,
        ExecutorKind::Lsf,
        ExecutorKind::Flux,
        ExecutorKind::Cobalt,
        ExecutorKind::DockerSlurm,
    ];

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Shell => "shell",
            ExecutorKind::Slurm => "slurm",
            ExecutorKind::Pbs => "pbs",
            ExecutorKind::Lsf => "lsf",
            ExecutorKind::Flux => "flux",
            ExecutorKind::Cobalt => "cobalt",
            ExecutorKind::DockerSlurm => "docker+slurm",
        }
    }

    /// Parses a name, or an alias a scheduler's backend declares (`sbatch`).
    pub fn from_name(name: &str) -> Result<Self, String> {
        if let Some(kind) = ExecutorKind::ALL.iter().find(|k| k.name() == name) {
            return Ok(*kind);
        }
        if let Some(kind) = crate::backends::executor_for_alias(name) {
            return Ok(kind);
        }
        let names: Vec<&str> = ExecutorKind::ALL
            .iter()
            .flat_map(|k| std::iter::once(k.name()).chain(crate::backends::executor_aliases(*k)))
            .collect();
        let mut message = format!(
            "unknown executor `{name}`, expected one of {}",
            names.join(", ")
        );
        if let Some(near) = nearest(name, names.iter().copied()) {
            message.push_str(&format!("; did you mean `{near}`?"));
        }
        Err(message)
    }
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ExecutorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ExecutorKind::from_name(&name).map_err(serde::de::Error::custom)
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Also warnings.
    Warn,
    /// Also progress (the default).
    Info,
    /// Also details.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `tracing` filter directive.
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

fn default_concurrent() -> usize {
    1
}
fn default_check_interval() -> Duration {
    Duration::from_secs(3)
}
fn default_log_level() -> LogLevel {
    LogLevel::Info
}
fn default_shutdown_timeout() -> Duration {
    Duration::ZERO
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/batchci")
}
fn default_output_limit() -> usize {
    4096
}
fn default_arguments_variable() -> Vec<String> {
    vec!["SCHEDULER_PARAMETERS".to_string()]
}
fn default_nfs_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_status_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(500)
}
fn default_submit_retries() -> u32 {
    3
}
fn default_submit_retry_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_true() -> bool {
    true
}

impl Config {
    /// The pause between job requests when GitLab has none: `check_interval`, or 3 s when it
    /// is 0, as gitlab-runner reads 0 (the docker+slurm sample sets 0; taken literally it would
    /// ask GitLab for jobs in a tight loop).
    pub fn job_poll_interval(&self) -> Duration {
        if self.check_interval.is_zero() {
            default_check_interval()
        } else {
            self.check_interval
        }
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Parses and checks `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = deserialize(path, text)?;
        config.validate(path, text)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let fail = |key: String, message: String| ConfigError {
            file: path.to_path_buf(),
            line: line_of_key(text, &key),
            key,
            message,
        };
        if self.concurrent == 0 {
            return Err(fail("concurrent".into(), "must be at least 1".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (index, runner) in self.runners.iter().enumerate() {
            let key = |name: &str| format!("runners[{index}].{name}");
            if runner.name.trim().is_empty() {
                return Err(fail(key("name"), "must not be empty".into()));
            }
            if !names.insert(runner.name.as_str()) {
                return Err(fail(
                    key("name"),
                    format!("runner name `{}` is used twice", runner.name),
                ));
            }
            if !(runner.url.starts_with("http://") || runner.url.starts_with("https://")) {
                return Err(fail(
                    key("url"),
                    format!("`{}` is not an http:// or https:// URL", runner.url),
                ));
            }
            if runner.token.trim().is_empty() {
                return Err(fail(key("token"), "must not be empty".into()));
            }
            if runner.output_limit == 0 {
                return Err(fail(key("output_limit"), "must be at least 1 (KiB)".into()));
            }
            if runner.batch.wait == BatchWait::Batched && runner.executor != ExecutorKind::Slurm {
                return Err(fail(
                    key("batch.wait"),
                    "`batched` waits for Slurm jobs only (executor = \"slurm\"); the other schedulers' submit commands are told of the end at once, or stream it".into(),
                ));
            }
            if runner.batch.status_interval.is_zero() {
                return Err(fail(
                    key("batch.status_interval"),
                    "must be longer than 0s".into(),
                ));
            }
            if let Some(shell) = runner.shell.as_ref().filter(|s| *s != "bash") {
                return Err(fail(
                    key("shell"),
                    format!("`{shell}` is not supported; batchci runs job scripts with bash"),
                ));
            }
            for (n, variable) in runner.batch.arguments_variable.iter().enumerate() {
                if variable.is_empty()
                    || !variable
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(fail(
                        format!("runners[{index}].batch.arguments_variable[{n}]"),
                        format!("`{variable}` is not a variable name"),
                    ));
                }
            }
            let fixed_user = runner.slurm.user.as_deref().is_some_and(|u| !u.is_empty());
            if let Some(problem) = runner.auth.problem(runner.executor, fixed_user) {
                return Err(auth_error(path, text, &key("auth"), problem));
            }
            for (n, entry) in runner.environment.iter().enumerate() {
                if !entry.contains('=') {
                    return Err(fail(
                        format!("runners[{index}].environment[{n}]"),
                        format!("`{entry}` is not NAME=value"),
                    ));
                }
            }
            for (n, entry) in runner.batch.scheduler_environment.iter().enumerate() {
                let named = entry
                    .split_once('=')
                    .is_some_and(|(name, _)| crate::script::is_variable_name(name));
                if !named {
                    return Err(fail(
                        format!("runners[{index}].batch.scheduler_environment[{n}]"),
                        format!("`{entry}` is not NAME=value"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The error for a `problem` of the auth table at dotted `table` (`runners[0].auth`, `auth`).
pub(crate) fn auth_error(
    path: &Path,
    text: &str,
    table: &str,
    problem: crate::auth::AuthProblem,
) -> ConfigError {
    let line = line_of_key(text, &format!("{table}.{}", problem.key))
        .or_else(|| line_of_key(text, &format!("{table}.{}", problem.line_key)))
        .or_else(|| line_of_key(text, table));
    ConfigError {
        file: path.to_path_buf(),
        line,
        key: format!("{table}.{}", problem.key),
        message: problem.message,
    }
}

/// Deserializes `text` into `T`, turning serde's and TOML's errors into a [`ConfigError`] that
/// names the line and the key path, and suggests the nearest known key for unknown ones.
pub fn deserialize<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let error = |line: Option<usize>, key: String, message: String| ConfigError {
        file: path.to_path_buf(),
        line,
        key,
        message,
    };
    let document = toml::Deserializer::parse(text).map_err(|e| {
        error(
            e.span().map(|s| line_at(text, s.start)),
            String::new(),
            first_line(e.message()),
        )
    })?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let mut key = e.path().to_string();
        if key == "." {
            key.clear();
        }
        let inner = e.inner();
        let mut message = first_line(inner.message());
        if let Some(unknown) = unknown_field(&message).map(str::to_string) {
            let unknown = unknown.as_str();
            if !key.ends_with(unknown) {
                key = if key.is_empty() {
                    unknown.to_string()
                } else {
                    format!("{key}.{unknown}")
                };
            }
            let expected = expected_fields(&message);
            message = format!("unknown key `{unknown}`");
            if let Some(near) = nearest(unknown, expected.iter().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{near}`?"));
            } else if !expected.is_empty() {
                message.push_str(&format!("; known keys here: {}", expected.join(", ")));
            }
        }
        let line = inner
            .span()
            .map(|s| line_at(text, s.start))
            .or_else(|| line_of_key(text, &key));
        error(line, key, message)
    })
}

fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn expected_fields(message: &str) -> Vec<String> {
    let Some((_, list)) = message.split_once("expected ") else {
        return Vec::new();
    };
    list.split('`')
        .enumerate()
        .filter(|(n, _)| n % 2 == 1)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Finds the line where the key at dotted `path` (`runners[1].batch.nfs_timeout`) is written.
pub fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut found = None;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let (key, value) = table.get_key_value(name)?;
        found = Some(key.span().start);
        let value = match (index, value.get_ref()) {
            (Some(i), toml::de::DeValue::Array(items)) => {
                let item = items.get(i)?;
                found = Some(item.span().start);
                item
            }
            _ => value,
        };
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found.map(|offset| line_at(text, offset))
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (optimal string alignment), so
/// `slrum` is one typo away from `slurm`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Durations as integer seconds (gitlab-runner's style) or strings such as `500ms`, `30s`,
/// `5m`, `1h30m` (Jacamar's style).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }

    /// Deserializes either form.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected seconds or a duration like \"30s\""))?
        {
            Raw::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
            Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
        }
    }

    /// Serializes as a string like `90s` or `500ms`.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        if value.subsec_millis() == 0 {
            serializer.serialize_str(&format!("{}s", value.as_secs()))
        } else {
            serializer.serialize_str(&format!("{}ms", value.as_millis()))
        }
    }

    /// Parses `1h30m`, `90s`, `500ms`, `2m`, or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let bad = || format!("`{text}` is not a duration (examples: 30s, 5m, 1h30m, 500ms)");
        let text = text.trim();
        if text.is_empty() {
            return Err(bad());
        }
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(Duration::from_secs(seconds));
        }
        sum_of_units(text, &DURATION_UNITS).ok_or_else(bad)
    }

    /// The units of a duration: milliseconds, seconds, minutes, hours.
    const DURATION_UNITS: [(&str, u64); 4] =
        [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];

    /// `text` as numbers each followed by one of `units` (name, milliseconds), summed:
    /// `1h30m`, `1w2d`. `None` when a number lacks a known unit or a unit its number.
    pub(crate) fn sum_of_units(text: &str, units: &[(&str, u64)]) -> Option<Duration> {
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return None;
            }
            let number: u64 = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            let unit = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (_, millis) = units.iter().find(|(name, _)| *name == &rest[..unit])?;
            total = total.saturating_add(Duration::from_millis(number.saturating_mul(*millis)));
            rest = &rest[unit..];
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/batchci/config.toml"), text).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = r#"
concurrent = 4

[[runners]]
name = "cluster"
url = "https://gitlab.example.com"
token = "glrt-abc"
executor = "sbatch"
"#;

    #[test]
    fn a_minimal_file_gets_gitlab_runners_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.concurrent, 4);
        assert_eq!(config.check_interval, Duration::from_secs(3));
        let zero = parse("check_interval = 0\n").unwrap();
        assert_eq!(zero.check_interval, Duration::ZERO);
        assert_eq!(zero.job_poll_interval(), Duration::from_secs(3));
        let runner = &config.runners[0];
        assert_eq!(runner.executor, ExecutorKind::Slurm);
        assert_eq!(runner.output_limit, 4096);
        assert_eq!(runner.batch.arguments_variable, ["SCHEDULER_PARAMETERS"]);
        assert_eq!(runner.batch.nfs_timeout, Duration::from_secs(30));
        assert!(!runner.batch.allow_illegal_args);
    }

    #[test]
    fn an_unknown_key_names_file_line_key_and_the_nearest_key() {
        let text = MINIMAL.replace("executor = \"sbatch\"", "executor = \"sbatch\"\nlimmit = 2");
        assert_eq!(
            parse(&text).unwrap_err(),
            "/etc/batchci/config.toml:9: runners[0].limmit: unknown key `limmit`; did you mean `limit`?"
        );
    }

    #[test]
    fn an_unknown_key_in_a_backend_table_is_found_too() {
        let text = format!("{MINIMAL}\n[runners.batch]\nnfs_timout = \"1m\"\n");
        assert_eq!(
            parse(&text).unwrap_err(),
            "/etc/batchci/config.toml:11: runners[0].batch.nfs_timout: unknown key `nfs_timout`; did you mean `nfs_timeout`?"
        );
    }

    #[test]
    fn batched_waiting_is_for_slurm_runners_only() {
        let pbs = format!("{MINIMAL}\n[runners.batch]\nwait = \"batched\"\n")
            .replace("executor = \"sbatch\"", "executor = \"pbs\"");
        assert_eq!(
            parse(&pbs).unwrap_err(),
            "/etc/batchci/config.toml:11: runners[0].batch.wait: `batched` waits for Slurm jobs only (executor = \"slurm\"); the other schedulers' submit commands are told of the end at once, or stream it"
        );
        let wrong = format!("{MINIMAL}\n[runners.batch]\nwait = \"sometimes\"\n");
        assert!(
            parse(&wrong).unwrap_err().starts_with(
                "/etc/batchci/config.toml:11: runners[0].batch.wait: unknown variant `sometimes`"
            ),
            "{}",
            parse(&wrong).unwrap_err()
        );
        let slurm =
            format!("{MINIMAL}\n[runners.batch]\nwait = \"batched\"\nstatus_interval = \"5s\"\n");
        let config = parse(&slurm).unwrap();
        assert_eq!(config.runners[0].batch.wait, BatchWait::Batched);
        assert_eq!(
            config.runners[0].batch.status_interval,
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn scheduler_environment_pairs_are_checked_and_win_over_env_vars() {
        let bad = format!(
            "{MINIMAL}\n[runners.batch]\nenv_vars = [\"HOME\"]\nscheduler_environment = [\"SLURM_CONF=/etc/a.conf\", \"no pair\"]\n"
        );
        assert_eq!(
            parse(&bad).unwrap_err(),
            "/etc/batchci/config.toml:12: runners[0].batch.scheduler_environment[1]: `no pair` is not NAME=value"
        );
        let good = format!(
            "{MINIMAL}\n[runners.batch]\nenv_vars = [\"HOME\"]\nscheduler_environment = [\"HOME=/site\", \"SLURM_CONF=/etc/a.conf\"]\n"
        );
        let config = parse(&good).unwrap();
        let env = crate::command::scheduler_env(&config.runners[0].batch, None);
        let value = |key: &str| {
            env.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(value("HOME"), ["/site"]);
        assert_eq!(value("SLURM_CONF"), ["/etc/a.conf"]);
    }

    #[test]
    fn an_unknown_executor_lists_the_choices() {
        let text = MINIMAL.replace("\"sbatch\"", "\"slrum\"");
        assert_eq!(
            parse(&text).unwrap_err(),
            "/etc/batchci/config.toml:8: runners[0].executor: unknown executor `slrum`, expected one of shell, slurm, sbatch, pbs, lsf, bsub, flux, cobalt, qsub, docker+slurm; did you mean `slurm`?"
        );
    }

    #[test]
    fn wrong_types_and_bad_durations_are_located() {
        let text = MINIMAL.replace("concurrent = 4", "concurrent = \"four\"");
        let error = parse(&text).unwrap_err();
        assert!(
            error.starts_with("/etc/batchci/config.toml:2: concurrent: invalid type"),
            "{error}"
        );

        let text = format!("{MINIMAL}\n[runners.batch]\nnfs_timeout = \"soon\"\n");
        assert_eq!(
            parse(&text).unwrap_err(),
            "/etc/batchci/config.toml:11: runners[0].batch.nfs_timeout: `soon` is not a duration (examples: 30s, 5m, 1h30m, 500ms)"
        );
    }

    #[test]
    fn broken_toml_names_the_line() {
        let error = parse("concurrent = 1\n[[runners]\n").unwrap_err();
        assert!(error.starts_with("/etc/batchci/config.toml:2: "), "{error}");
    }

    #[test]
    fn semantic_errors_name_the_key_and_line() {
        let text = MINIMAL.replace("https://gitlab.example.com", "gitlab.example.com");
        assert_eq!(
            parse(&text).unwrap_err(),
            "/etc/batchci/config.toml:6: runners[0].url: `gitlab.example.com` is not an http:// or https:// URL"
        );
        let text = format!("{MINIMAL}\n[runners.batch]\narguments_variable = [\"SITE PARAMS\"]\n");
        assert_eq!(
            parse(&text).unwrap_err(),
            "/etc/batchci/config.toml:11: runners[0].batch.arguments_variable[0]: `SITE PARAMS` is not a variable name"
        );
    }

    #[test]
    fn an_auth_table_gets_defaults_and_downscoping_needs_an_audience() {
        let config = parse(MINIMAL).unwrap();
        assert!(!config.runners[0].auth.enabled());
        let text = format!(
            "{MINIMAL}\n[runners.auth]\ndownscope = \"setuid\"\naudience = \"https://ci.example.com\"\nuser_blocklist = [\"admin\"]\n"
        );
        let auth = &parse(&text).unwrap().runners[0].auth;
        assert_eq!(auth.downscope, crate::auth::Downscope::Setuid);
        assert_eq!(auth.token_variable, "BATCHCI_ID_TOKEN");
        assert_eq!(auth.validation_timeout, Duration::from_secs(30));
        assert!(!auth.allow_root);
        assert!(auth.enabled());
    }

    #[test]
    fn auth_table_errors_name_file_line_and_key() {
        let auth = |table: &str| parse(&format!("{MINIMAL}\n[runners.auth]\n{table}"));
        let cases = [
            auth("downscope = \"setuid\"\n"),
            auth("downscope = \"su\"\naudience = \"a\"\n"),
            auth("downscope = \"sudo\"\naudience = \"a\"\nuser_alowlist = [\"x\"]\n"),
            auth("downscope = \"sudo\"\naudience = \"\"\n"),
            auth("audience = \"a\"\ntoken_variable = \"ID TOKEN\"\n"),
            auth("audience = \"a\"\nuser_allowlist = [\"alice\", \"\"]\n"),
            auth("audience = \"a\"\nvalidation_script = \"validate.sh\"\n"),
            auth("audience = \"a\"\nvalidation_timeout = \"0s\"\n"),
            parse(&format!(
                "{}\n[runners.auth]\ndownscope = \"setuid\"\naudience = \"a\"\n",
                MINIMAL.replace("\"sbatch\"", "\"docker+slurm\"")
            )),
            parse(&format!(
                "{MINIMAL}\n[runners.slurm]\nuser = \"ci\"\n[runners.auth]\ndownscope = \"setuid\"\naudience = \"a\"\n"
            )),
        ];
        let report: Vec<String> = cases
            .into_iter()
            .map(|case| case.expect_err("the table is refused"))
            .collect();
        insta::assert_snapshot!(report.join("\n"));
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(duration::parse("90").unwrap(), Duration::from_secs(90));
        assert_eq!(duration::parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            duration::parse("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(duration::parse("5 minutes").is_err());
        assert!(duration::parse("m").is_err());
    }
}
