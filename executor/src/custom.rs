//! Custom executor mode: gitlab-runner drives, batchci runs the stages.
//!
//! gitlab-runner's `[runners.custom]` calls, in this order:
//!
//! ```text
//! batchci custom config  --config F          → JSON: builds_dir, cache_dir, hostname, driver, ...
//! batchci custom prepare --config F          → checks the job (user parameters) before any stage
//! batchci custom run     --config F <script> <stage>   once per stage
//! batchci custom cleanup --config F          → always, also after a failure or a kill
//! ```
//!
//! Only user code — `build_script` (before_script + script), and any `step_<name>` — goes to
//! the scheduler; gitlab-runner's own stages run on this host with bash, and a stage name
//! batchci does not know is refused, never run on the host. Failures exit with `BUILD_FAILURE_EXIT_CODE` (the script's own code in
//! `BUILD_EXIT_CODE_FILE`) or `SYSTEM_FAILURE_EXIT_CODE`, read from the environment as
//! gitlab-runner asks. SIGTERM cancels the scheduler job and exits promptly; scheduler jobs
//! still recorded at `cleanup` (the `run` process was killed) are cancelled there.
//!
//! The configuration is either a config.toml with exactly one `[[runners]]` entry, or a
//! Jacamar-style file:
//!
//! ```toml
//! [general]
//! executor = "slurm"
//! data_dir = "/scratch/ci"
//!
//! [batch]
//! arguments_variable = ["SITE_PARAMETERS", "SCHEDULER_PARAMETERS"]
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::backends::{
    AnyBackend, Backend, FailureReason, JobContext, JobDirs, JobFailure, LogSink, StepOutcome,
};
use crate::config::{
    BatchConfig, Config, ConfigError, DockerConfig, ExecutorKind, RunnerConfig, SlurmConfig,
};
use crate::job::Job;
use crate::script::Export;
use crate::state::StateStore;

/// The driver name shown by gitlab-runner (`Using Custom executor with driver batchci ...`).
pub const DRIVER_NAME: &str = "batchci";

/// A Jacamar-style configuration for custom executor mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFile {
    /// `[general]`.
    pub general: General,
    /// `[batch]`.
    #[serde(default)]
    pub batch: BatchConfig,
    /// `[slurm]`.
    #[serde(default)]
    pub slurm: SlurmConfig,
    /// `[docker]`.
    #[serde(default)]
    pub docker: DockerConfig,
    /// `[auth]`: who jobs run as.
    #[serde(default)]
    pub auth: crate::auth::JacamarAuth,
}

/// `[general]` of a Jacamar-style file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// The backend.
    pub executor: ExecutorKind,
    /// Base of builds and caches; must be visible on the compute nodes.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where submitted scheduler jobs are recorded.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How long a cancelled scheduler job may take to leave the queue.
    #[serde(default = "default_kill_timeout", with = "crate::config::duration")]
    pub kill_timeout: Duration,
    /// Limit of the job output in KiB (gitlab-runner also enforces its own).
    #[serde(default)]
    pub output_limit: Option<usize>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/tmp/batchci")
}

fn default_kill_timeout() -> Duration {
    Duration::from_secs(60)
}

/// What custom mode needs from either configuration shape.
#[derive(Debug, Clone)]
pub struct CustomSettings {
    /// The runner settings the backends read.
    pub runner: RunnerConfig,
    /// Base of builds and caches.
    pub data_dir: PathBuf,
    /// Where submissions are recorded.
    pub state_dir: PathBuf,
    /// How long cancelling may take.
    pub kill_timeout: Duration,
    /// The auth table's name in messages: `[auth]` or `[runners.auth]`.
    pub auth_table: &'static str,
    /// Settings of the file batchci ignores, one line each (`file:line: key: why`).
    pub warnings: Vec<String>,
}

/// The Jacamar name of a key of batchci's auth table.
fn jacamar_key(key: &str) -> String {
    for (ours, theirs) in [
        ("group_allowlist", "groups_allowlist"),
        ("group_blocklist", "groups_blocklist"),
        ("validation_script", "runas.validation_script"),
        ("validation_timeout", "runas.validation_timeout"),
    ] {
        if let Some(rest) = key.strip_prefix(ours) {
            return format!("{theirs}{rest}");
        }
    }
    key.to_string()
}

impl CustomSettings {
    /// Reads `path` in either shape.
    pub fn load(path: &Path) -> Result<CustomSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let is_jacamar = toml::from_str::<toml::Table>(&text)
            .map(|table| table.contains_key("general"))
            .unwrap_or(false);
        if is_jacamar {
            let file: CustomFile = crate::config::deserialize(path, &text)?;
            let in_jacamar_terms = |mut problem: crate::auth::AuthProblem| {
                problem.key = jacamar_key(&problem.key);
                problem.line_key = jacamar_key(&problem.line_key);
                crate::config::auth_error(path, &text, "auth", problem)
            };
            let (auth, ignored) = file.auth.to_auth().map_err(in_jacamar_terms)?;
            let fixed_user = file.slurm.user.as_deref().is_some_and(|u| !u.is_empty());
            if let Some(problem) = auth.problem(file.general.executor, fixed_user) {
                return Err(in_jacamar_terms(problem));
            }
            let warnings = ignored
                .into_iter()
                .map(|(key, why)| {
                    let key = format!("auth.{key}");
                    let line = crate::config::line_of_key(&text, &key)
                        .map(|line| format!(":{line}"))
                        .unwrap_or_default();
                    format!("{}{line}: {key}: {why}", path.display())
                })
                .collect();
            let state_dir = file
                .general
                .state_dir
                .clone()
                .unwrap_or_else(|| file.general.data_dir.join("state"));
            let runner = RunnerConfig {
                name: "custom".into(),
                url: "http://gitlab-runner.invalid".into(),
                token: String::new(),
                executor: file.general.executor,
                limit: 0,
                builds_dir: Some(file.general.data_dir.join("builds")),
                builds_retention: None,
                cache_dir: Some(file.general.data_dir.join("cache")),
                environment: Vec::new(),
                output_limit: file.general.output_limit.unwrap_or(4096),
                shell: None,
                id: None,
                token_obtained_at: None,
                token_expires_at: None,
                batch: file.batch,
                slurm: file.slurm,
                docker: file.docker,
                auth,
            };
            return Ok(CustomSettings {
                runner,
                data_dir: file.general.data_dir,
                state_dir,
                kill_timeout: file.general.kill_timeout,
                auth_table: "[auth]",
                warnings,
            });
        }
        let config = Config::parse(path, &text)?;
        let [runner] = config.runners.as_slice() else {
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: "runners".into(),
                message: format!(
                    "custom executor mode needs exactly one [[runners]] entry (found {}), or a [general] table",
                    config.runners.len()
                ),
            });
        };
        let data_dir = runner.builds_dir.clone().unwrap_or_else(default_data_dir);
        Ok(CustomSettings {
            runner: runner.clone(),
            data_dir,
            state_dir: config.state_dir.clone(),
            kill_timeout: default_kill_timeout(),
            auth_table: "[runners.auth]",
            warnings: Vec::new(),
        })
    }
}

/// Exit codes gitlab-runner asked for.
#[derive(Debug, Clone, Copy)]
pub struct ExitCodes {
    /// `BUILD_FAILURE_EXIT_CODE`.
    pub build_failure: i32,
    /// `SYSTEM_FAILURE_EXIT_CODE`.
    pub system_failure: i32,
}

impl ExitCodes {
    /// From the environment, with gitlab-runner's current values as fallback.
    pub fn from_env() -> ExitCodes {
        let read = |key: &str, default: i32| {
            std::env::var(key)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        ExitCodes {
            build_failure: read("BUILD_FAILURE_EXIT_CODE", 1),
            system_failure: read("SYSTEM_FAILURE_EXIT_CODE", 2),
        }
    }
}

/// Output straight to gitlab-runner, which masks and streams it.
struct Stdout;

impl LogSink for Stdout {
    fn write(&self, bytes: &[u8]) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
}

/// `CUSTOM_ENV_<KEY>` variables of the job.
fn custom_env() -> HashMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| k.strip_prefix("CUSTOM_ENV_").map(|k| (k.to_string(), v)))
        .collect()
}

/// `batchci custom config`: checks the job's identity when the configuration asks for it
/// (and makes the user's own builds and cache directories), then prints the JSON
/// gitlab-runner reads. Returns the exit code.
pub async fn config(settings: &CustomSettings) -> i32 {
    let codes = ExitCodes::from_env();
    for warning in &settings.warnings {
        eprintln!("batchci: warning: {warning}");
    }
    let log = StderrSink;
    let user = match identity(settings).await {
        Ok(identity) => identity.and_then(|i| i.run_as),
        Err(failure) => return report(&log, &failure, codes),
    };
    let mut settings = settings.clone();
    if let Some(user) = &user {
        let builds = settings
            .runner
            .builds_dir
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("builds"));
        let cache = settings
            .runner
            .cache_dir
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("cache"));
        let made = crate::auth::downscope::ensure_user_dir(&builds, user).and_then(|builds| {
            crate::auth::downscope::ensure_user_dir(&cache, user).map(|cache| (builds, cache))
        });
        match made {
            Ok((builds, cache)) => {
                settings.runner.builds_dir = Some(builds);
                settings.runner.cache_dir = Some(cache);
            }
            Err(error) => return report(&log, &JobFailure::system(error), codes),
        }
    }
    println!("{}", config_json(&settings));
    0
}

/// The job's verified identity, when the configuration's auth table asks for one; the failure
/// says why the job may not run.
async fn identity(settings: &CustomSettings) -> Result<Option<crate::auth::Identity>, JobFailure> {
    let auth = &settings.runner.auth;
    if !auth.enabled() {
        return Ok(None);
    }
    let table = settings.auth_table;
    if let Some(why) = crate::auth::privilege_problem(auth) {
        return Err(JobFailure::system(format!("{table} {why}")));
    }
    let env = custom_env();
    let job_id = env
        .get("CI_JOB_ID")
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or(0);
    let gitlab_url = env.get("CI_SERVER_URL").cloned().unwrap_or_default();
    let check = crate::auth::Check {
        table,
        auth,
        gitlab_url: &gitlab_url,
        job_id,
    };
    let variables: Vec<crate::job::Variable> = env
        .get(&auth.token_variable)
        .map(|value| crate::job::Variable {
            key: auth.token_variable.clone(),
            value: value.clone(),
            ..Default::default()
        })
        .into_iter()
        .collect();
    let gitlab = crate::gitlab::GitlabClient::new(&gitlab_url, settings.runner.executor.name())
        .map_err(|e| {
            JobFailure::system(format!(
                "{table}: the job's GitLab (CI_SERVER_URL) is unusable: {e}"
            ))
        })?;
    let verifier = crate::auth::token::TokenVerifier::new(
        gitlab_url.trim_end_matches('/'),
        gitlab.http_client(),
    );
    crate::auth::identify(&check, &verifier, &variables)
        .await
        .map(Some)
        .map_err(JobFailure::system)
}

/// The JSON gitlab-runner reads from `batchci custom config`.
pub fn config_json(settings: &CustomSettings) -> String {
    let env = custom_env();
    let short = env
        .get("CI_RUNNER_SHORT_TOKEN")
        .cloned()
        .unwrap_or_else(|| "runner".into());
    let concurrent = env
        .get("CI_CONCURRENT_PROJECT_ID")
        .cloned()
        .unwrap_or_else(|| "0".into());
    let builds = settings
        .runner
        .builds_dir
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("builds"))
        .join(sanitize(&short))
        .join(sanitize(&concurrent));
    let cache = settings
        .runner
        .cache_dir
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("cache"));
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    serde_json::json!({
        "builds_dir": builds,
        "cache_dir": cache,
        // The runner's short token and concurrent id are already in builds_dir; `true` would
        // make gitlab-runner add them a second time (R `common/build.go` ProjectUniqueDir).
        "builds_dir_is_shared": false,
        "hostname": hostname,
        "driver": {"name": DRIVER_NAME, "version": crate::gitlab::VERSION},
        "job_env": {"BATCHCI_EXECUTOR": settings.runner.executor.name()},
        "shell": "bash",
    })
    .to_string()
}

fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Builds the job context from gitlab-runner's environment, with the job's user when the
/// configuration downscopes.
async fn context(
    settings: &CustomSettings,
    log: Arc<dyn LogSink>,
) -> Result<JobContext, JobFailure> {
    let run_as = identity(settings).await?.and_then(|i| i.run_as);
    let mut job = match std::env::var_os("JOB_RESPONSE_FILE") {
        Some(path) => {
            let bytes = std::fs::read(&path).map_err(|e| {
                JobFailure::system(format!(
                    "cannot read JOB_RESPONSE_FILE {}: {e}",
                    Path::new(&path).display()
                ))
            })?;
            Job::from_json(&bytes)
                .map_err(|e| JobFailure::system(format!("JOB_RESPONSE_FILE is not a job: {e}")))?
        }
        None => Job::default(),
    };
    let env = custom_env();
    // JOB_RESPONSE_FILE holds only what GitLab sent; variables from the runner's own
    // `environment` (e.g. a site-wide SCHEDULER_PARAMETERS) reach us only as CUSTOM_ENV_.
    let mut runner_only: Vec<_> = env
        .iter()
        .filter(|(key, _)| job.variable(key).is_none())
        .map(|(key, value)| crate::job::Variable {
            key: key.clone(),
            value: value.clone(),
            ..Default::default()
        })
        .collect();
    runner_only.sort_by(|a, b| a.key.cmp(&b.key));
    job.variables.extend(runner_only);
    let project_dir = env
        .get("CI_PROJECT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            settings
                .data_dir
                .join("builds")
                .join(format!("job-{}", job.id))
        });
    let mut tmp = project_dir.clone().into_os_string();
    tmp.push(".batchci");
    let builds_dir = env
        .get("CI_BUILDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| settings.data_dir.join("builds"));
    let state = StateStore::open(&settings.state_dir).ok();
    Ok(JobContext {
        job: Arc::new(job),
        runner: Arc::new(settings.runner.clone()),
        log,
        dirs: JobDirs {
            builds_dir,
            project_dir,
            tmp_dir: PathBuf::from(tmp),
        },
        exports: Vec::<Export>::new(),
        state,
        gitlab: None,
        downscoped: run_as.is_some(),
        run_as,
        kill_timeout: settings.kill_timeout,
    })
}

/// `batchci custom prepare`: checks the job before gitlab-runner runs any stage; docker+slurm
/// also allocates here. `cancel` fires on SIGTERM or SIGINT.
pub async fn prepare(settings: &CustomSettings, cancel: CancellationToken) -> i32 {
    let codes = ExitCodes::from_env();
    let log: Arc<dyn LogSink> = Arc::new(Stdout);
    let ctx = match context(settings, log.clone()).await {
        Ok(ctx) => ctx,
        Err(failure) => return report(&*log, &failure, codes),
    };
    log.info(&format!(
        "Using batchci {} with the {} executor on {}",
        crate::gitlab::VERSION,
        settings.runner.executor,
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    if settings.runner.executor == ExecutorKind::DockerSlurm {
        return match crate::backends::docker_slurm_custom::prepare(&ctx, &cancel).await {
            Ok(()) => 0,
            Err(failure) => report(&*log, &failure, codes),
        };
    }
    let mut backend = match AnyBackend::new(settings.runner.executor) {
        Ok(backend) => backend,
        Err(error) => return report(&*log, &JobFailure::system(error), codes),
    };
    match backend.prepare(&ctx, &cancel).await {
        Ok(()) => 0,
        Err(failure) => report(&*log, &failure, codes),
    }
}

/// `batchci custom run <script> <stage>`.
pub async fn run(
    settings: &CustomSettings,
    script: &Path,
    stage: &str,
    cancel: CancellationToken,
) -> i32 {
    let codes = ExitCodes::from_env();
    let log: Arc<dyn LogSink> = Arc::new(Stdout);
    let ctx = match context(settings, log.clone()).await {
        Ok(ctx) => ctx,
        Err(failure) => return report(&*log, &failure, codes),
    };
    // The user's script goes to the scheduler; docker+slurm runs it (and after_script) in
    // its container. A stage batchci does not know is not run at all: it may be user code.
    let place = StagePlace::of(stage);
    if place == StagePlace::Unknown {
        return report(
            &*log,
            &JobFailure::system(format!(
                "gitlab-runner asked for stage `{stage}`, which batchci does not know; it is not \
                 run, since it may hold user code and batchci runs user code only on the \
                 scheduler. A gitlab-runner newer than batchci may have added it: see \
                 docs/admin.md (custom executor stages)."
            )),
            codes,
        );
    }
    let on_scheduler = place == StagePlace::Scheduler;
    let in_container = settings.runner.executor == ExecutorKind::DockerSlurm
        && (on_scheduler || stage == "after_script");
    let outcome = if in_container {
        match std::fs::read(script) {
            Ok(text) => crate::backends::docker_slurm_custom::run(&ctx, &text, &cancel).await,
            Err(error) => Err(JobFailure::system(format!(
                "cannot read {}: {error}",
                script.display()
            ))),
        }
    } else if on_scheduler {
        if let Err(error) = ctx.as_user(|| crate::stages::create_private_dir(&ctx.dirs.tmp_dir)) {
            return report(
                &*log,
                &JobFailure::system(format!(
                    "cannot create {}: {error}",
                    ctx.dirs.tmp_dir.display()
                )),
                codes,
            );
        }
        let mut backend = match AnyBackend::new(settings.runner.executor) {
            Ok(backend) => backend,
            Err(error) => return report(&*log, &JobFailure::system(error), codes),
        };
        if let Err(failure) = backend.prepare(&ctx, &cancel).await {
            return report(&*log, &failure, codes);
        }
        // gitlab-runner's script holds the job's secrets; the backend hands it to the scheduler
        // itself (on the submit command's standard input), so no copy lands on the shared file
        // system.
        let text = match std::fs::read(script) {
            Ok(text) => text,
            Err(error) => {
                return report(
                    &*log,
                    &JobFailure::system(format!("cannot read {}: {error}", script.display())),
                    codes,
                );
            }
        };
        let result = backend.run_step(&ctx, &text, &cancel).await;
        backend.cleanup(&ctx).await;
        result
    } else {
        run_on_host(&ctx, script, &cancel).await
    };
    match outcome {
        Ok(StepOutcome::Exited(0)) => 0,
        Ok(StepOutcome::Exited(code)) => {
            write_exit_code(code);
            codes.build_failure
        }
        Ok(StepOutcome::Cancelled) => codes.system_failure,
        Err(failure) => report(&*log, &failure, codes),
    }
}

/// Where a stage of gitlab-runner's `run` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StagePlace {
    /// User code: the job script (`build_script`, `step_script` as gitlab-runner names it
    /// once it stops translating it) and any other user step (`step_<name>`).
    Scheduler,
    /// gitlab-runner's own work on this host: sources, caches, artifacts, `after_script`.
    Host,
    /// A name gitlab-runner's documentation does not list.
    Unknown,
}

impl StagePlace {
    /// The place of stage `name` (gitlab-runner's custom executor documentation, "run").
    pub(crate) fn of(name: &str) -> StagePlace {
        match name {
            "build_script" | "step_script" => StagePlace::Scheduler,
            _ if name.starts_with("step_") => StagePlace::Scheduler,
            "prepare_script"
            | "get_sources"
            | "clear_worktree"
            | "restore_cache"
            | "download_artifacts"
            | "after_script"
            | "archive_cache"
            | "archive_cache_on_failure"
            | "upload_artifacts_on_success"
            | "upload_artifacts_on_failure"
            | "cleanup_file_variables" => StagePlace::Host,
            _ => StagePlace::Unknown,
        }
    }
}

/// `batchci custom cleanup`: cancels scheduler jobs a killed `run` left behind.
pub async fn cleanup(settings: &CustomSettings) -> i32 {
    let log: Arc<dyn LogSink> = Arc::new(StderrSink);
    let Ok(ctx) = context(settings, log.clone()).await else {
        return 0;
    };
    if settings.runner.executor == ExecutorKind::DockerSlurm {
        crate::backends::docker_slurm_custom::cleanup(&ctx).await;
    }
    if let Some(store) = &ctx.state {
        for leftover in store
            .list()
            .into_iter()
            .filter(|s| s.gitlab_job_id == ctx.job.id)
        {
            crate::runner::release_leftovers(&leftover, Some(&settings.runner)).await;
            if !leftover.scheduler_job_id.is_empty() {
                eprintln!(
                    "batchci: cancelling {} job {} left by an interrupted stage",
                    leftover.executor, leftover.scheduler_job_id
                );
                crate::runner::cancel_leftover(&leftover, Some(&settings.runner), ctx.files_user())
                    .await;
            }
            store.remove(&leftover.gitlab_url, leftover.gitlab_job_id);
        }
    }
    let _ = ctx.as_user(|| std::fs::remove_dir_all(&ctx.dirs.tmp_dir));
    0
}

struct StderrSink;

impl LogSink for StderrSink {
    fn write(&self, bytes: &[u8]) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(bytes);
    }
}

fn report(log: &dyn LogSink, failure: &JobFailure, codes: ExitCodes) -> i32 {
    log.error(&failure.message);
    match failure.reason {
        FailureReason::ScriptFailure => {
            if let Some(code) = failure.exit_code {
                write_exit_code(code);
            }
            codes.build_failure
        }
        _ => codes.system_failure,
    }
}

fn write_exit_code(code: i32) {
    if let Some(path) = std::env::var_os("BUILD_EXIT_CODE_FILE") {
        let _ = std::fs::write(path, format!("{code}\n"));
    }
}

/// Runs a host stage: gitlab-runner's script with bash, output to stdout.
///
/// Unlike scheduler commands, the script stays in batchci's process group: gitlab-runner ends
/// a stage by signalling that group (SIGTERM, then SIGKILL), and a SIGKILL cannot be passed
/// on, so a script in a group of its own would outlive a force kill.
///
/// Downscoped, bash runs as the job's user with the user's login basics and reads the script
/// on its standard input: gitlab-runner's script file is in a directory of gitlab-runner's
/// that the user cannot read, and nothing of gitlab-runner's or batchci's environment reaches
/// user code (the script sets the job's variables itself).
async fn run_on_host(
    ctx: &JobContext,
    script: &Path,
    cancel: &CancellationToken,
) -> Result<StepOutcome, JobFailure> {
    let grace = ctx.kill_timeout;
    let spawned = match ctx.files_user() {
        None => tokio::process::Command::new("/bin/bash")
            .arg(script)
            .env_clear()
            .envs(
                std::env::vars_os()
                    .filter(|(k, _)| !k.to_string_lossy().starts_with("CUSTOM_ENV_")),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map(|child| (child, None)),
        Some(user) => {
            let text = std::fs::read(script).map_err(|e| {
                JobFailure::system(format!("cannot read {}: {e}", script.display()))
            })?;
            let mut env = user.login_env();
            env.push(("PATH".into(), crate::command::search_path(None)));
            if let Some(lang) = std::env::var_os("LANG") {
                env.push(("LANG".into(), lang));
            }
            let cwd = if ctx.dirs.builds_dir.is_dir() {
                ctx.dirs.builds_dir.clone()
            } else {
                PathBuf::from("/")
            };
            crate::command::command_as(Path::new("/bin/bash"), &[], &env, &cwd, Some(user))
                .map(tokio::process::Command::from)
                .and_then(|mut command| {
                    command
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::inherit())
                        .stderr(std::process::Stdio::inherit())
                        .spawn()
                })
                .map(|child| (child, Some(text)))
        }
    };
    let (mut child, text) =
        spawned.map_err(|e| JobFailure::system(format!("cannot start /bin/bash: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (text, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        tokio::spawn(async move {
            let _ = stdin.write_all(&text).await;
        });
    }
    tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| JobFailure::system(format!("waiting for bash failed: {e}")))?;
            Ok(StepOutcome::Exited(crate::command::exit_code(status)))
        }
        _ = cancel.cancelled() => {
            // A signal for the whole group reached the script already; one for batchci alone
            // is passed on.
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            Ok(StepOutcome::Cancelled)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<CustomSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.toml");
        std::fs::write(&path, text).unwrap();
        CustomSettings::load(&path)
            .map_err(|e| {
                e.to_string()
                    .replace(&path.display().to_string(), "custom.toml")
            })
            .map(|mut settings| {
                for warning in &mut settings.warnings {
                    *warning = warning.replace(&path.display().to_string(), "custom.toml");
                }
                settings
            })
    }

    const GENERAL: &str = "[general]\nexecutor = \"slurm\"\ndata_dir = \"/scratch/ci\"\n\n";

    #[test]
    fn jacamars_auth_table_maps_to_batchcis_and_warns_about_what_it_ignores() {
        let settings = load(&format!("{GENERAL}[auth]\ndowndscope = \"setuid\"\n"));
        assert_eq!(
            settings.unwrap_err(),
            "custom.toml:6: auth.downdscope: unknown key `downdscope`; did you mean `downscope`?"
        );
        let settings = load(&format!(
            "{GENERAL}[auth]\ndownscope = \"sudo\"\naudience = \"https://ci.example.com\"\nuser_allowlist = [\"ci-alice\"]\ngroups_allowlist = [\"hpc\"]\ngroups_blocklist = [\"banned\"]\nroot_dir_creation = true\n\n[auth.runas]\nvalidation_script = \"/etc/batchci/validate\"\nuser_variable = \"SERVICE_USER\"\n"
        ))
        .unwrap();
        let auth = &settings.runner.auth;
        assert_eq!(settings.auth_table, "[auth]");
        assert_eq!(auth.downscope, crate::auth::Downscope::Sudo);
        assert_eq!(auth.token_variable, "BATCHCI_ID_TOKEN");
        assert_eq!(auth.user_allowlist, ["ci-alice"]);
        assert_eq!(auth.group_allowlist, ["hpc"]);
        assert_eq!(auth.group_blocklist, ["banned"]);
        assert_eq!(
            auth.validation_script.as_deref(),
            Some(Path::new("/etc/batchci/validate"))
        );
        insta::assert_snapshot!(settings.warnings.join("\n"));
    }

    #[test]
    fn jacamar_policies_batchci_does_not_enforce_are_refused_by_their_jacamar_names() {
        let cases = [
            "[auth]\ndownscope = \"setuid\"\n",
            "[auth]\ndownscope = \"setuid\"\naudience = \"a\"\npipeline_source_allowlist = [\"push\"]\n",
            "[auth]\ndownscope = \"setuid\"\naudience = \"a\"\nshell_allowlist = [\"/bin/bash\"]\n",
            "[auth]\ndownscope = \"setuid\"\naudience = \"a\"\n[auth.runas]\nsha256 = \"e258\"\n",
            "[auth]\naudience = \"a\"\ngroups_allowlist = [\"two words\"]\n",
            "[auth]\naudience = \"a\"\n[auth.runas]\nvalidation_script = \"validate\"\n",
        ];
        let report: Vec<String> = cases
            .iter()
            .map(|case| load(&format!("{GENERAL}{case}")).expect_err("refused"))
            .collect();
        insta::assert_snapshot!(report.join("\n"));
    }

    /// The stages of gitlab-runner's custom executor documentation ("run"), and the user
    /// steps it names `step_<name>`: `step_script` is the job script once gitlab-runner stops
    /// translating it to `build_script`.
    #[test]
    fn user_code_goes_to_the_scheduler_gitlab_runners_own_stages_to_the_host() {
        for stage in ["build_script", "step_script", "step_release"] {
            assert_eq!(StagePlace::of(stage), StagePlace::Scheduler, "{stage}");
        }
        for stage in [
            "prepare_script",
            "get_sources",
            "restore_cache",
            "download_artifacts",
            "after_script",
            "archive_cache",
            "archive_cache_on_failure",
            "upload_artifacts_on_success",
            "upload_artifacts_on_failure",
            "cleanup_file_variables",
        ] {
            assert_eq!(StagePlace::of(stage), StagePlace::Host, "{stage}");
        }
        for stage in ["", "build", "Build_script", "stage_release"] {
            assert_eq!(StagePlace::of(stage), StagePlace::Unknown, "{stage:?}");
        }
    }
}
