//! One job, stage by stage.
//!
//! ```text
//! prepare_executor → prepare_script → get_sources → download_artifacts → step_script
//!   → after_script → upload_artifacts_on_success|failure → cleanup_file_variables → cleanup
//! ```
//!
//! Only `step_script` (GitLab merges `before_script` into it) goes to the backend, i.e. the
//! scheduler; everything else runs on the executor's host. `cleanup` always runs. A graceful
//! cancel stops the script and still runs `after_script`; an abort stops everything; the job
//! timeout stops everything and skips `after_script`, as gitlab-runner does.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backends::{
    AnyBackend, Backend, FailureReason, JobContext, JobDirs, JobFailure, LogSink, StepOutcome,
};
use crate::command::CommandSpec;
use crate::config::RunnerConfig;
use crate::job::Job;
use crate::script::{Export, OnError, expand, stage_script};
use crate::trace::RemoteRequest;
use crate::trace::format;

/// gitlab-runner's `RUNNER_AFTER_SCRIPT_TIMEOUT` default.
pub const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// `None` for success.
    pub failure: Option<JobFailure>,
}

impl JobResult {
    /// Whether the job succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// Why the step was stopped, in order of precedence.
const STOP_NONE: u8 = 0;
const STOP_CANCEL: u8 = 1;
const STOP_TIMEOUT: u8 = 2;
const STOP_ABORT: u8 = 3;
/// GitLab ended the job itself (a hard cancel, or the job erased): it is canceled, not failed.
const STOP_REMOTE_ABORT: u8 = 4;

/// Computes the job's directories under `builds_dir`.
pub fn job_dirs(builds_dir: &Path, runner_token: &str, concurrent_id: usize, job: &Job) -> JobDirs {
    let short = short_token(runner_token);
    let project = job
        .variable("CI_PROJECT_PATH")
        .map(str::to_string)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("project-{}", job.job_info.project_id));
    let safe: PathBuf = project
        .split('/')
        .filter(|part| !part.is_empty() && *part != "." && *part != "..")
        .collect();
    let project_dir = builds_dir
        .join(short)
        .join(concurrent_id.to_string())
        .join(safe);
    let mut tmp = project_dir.clone().into_os_string();
    tmp.push(".tmp");
    JobDirs {
        builds_dir: builds_dir.to_path_buf(),
        project_dir,
        tmp_dir: PathBuf::from(tmp),
    }
}

/// The first 8 characters of the runner token after its `glrt-` prefix, as gitlab-runner shows.
pub fn short_token(token: &str) -> String {
    token
        .strip_prefix("glrt-")
        .unwrap_or(token)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(8)
        .collect()
}

/// The variables every stage script exports: the job's (non-raw values expanded), the runner's
/// predefined ones and the configured `environment`.
pub fn job_exports(
    job: &Job,
    runner: &RunnerConfig,
    dirs: &JobDirs,
    concurrent_id: usize,
) -> Vec<Export> {
    let mut list: Vec<(String, String, bool)> = Vec::new();
    let mut push = |key: &str, value: String, raw: bool| list.push((key.to_string(), value, raw));
    push("CI", "true".into(), true);
    push("GITLAB_CI", "true".into(), true);
    push("CI_SERVER", "yes".into(), true);
    push("CI_BUILDS_DIR", dirs.builds_dir.display().to_string(), true);
    push(
        "CI_PROJECT_DIR",
        dirs.project_dir.display().to_string(),
        true,
    );
    push("CI_CONCURRENT_ID", concurrent_id.to_string(), true);
    push("CI_CONCURRENT_PROJECT_ID", concurrent_id.to_string(), true);
    push("CI_JOB_TIMEOUT", job.timeout().as_secs().to_string(), true);
    push("CI_RUNNER_SHORT_TOKEN", short_token(&runner.token), true);
    push(
        "CI_RUNNER_EXECUTABLE_ARCH",
        format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        true,
    );
    for variable in &job.variables {
        if variable.file {
            let path = dirs.tmp_dir.join(format!("{}.file", variable.key));
            push(&variable.key, path.display().to_string(), true);
        } else {
            push(&variable.key, variable.value.clone(), variable.raw);
        }
    }
    for entry in &runner.environment {
        if let Some((key, value)) = entry.split_once('=') {
            push(key, value.to_string(), false);
        }
    }
    let mut known: HashMap<String, String> = HashMap::new();
    let mut exports = Vec::with_capacity(list.len());
    for (key, value, raw) in list {
        let value = if raw { value } else { expand(&value, &known) };
        known.insert(key.clone(), value.clone());
        exports.push(Export { key, value });
    }
    exports
}

/// Writes file variables into the job's scratch directory (mode 0600, as the job's user).
fn write_file_variables(ctx: &JobContext) -> Result<(), JobFailure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for variable in ctx.job.variables.iter().filter(|v| v.file) {
        let path = ctx.dirs.tmp_dir.join(format!("{}.file", variable.key));
        ctx.as_user(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .and_then(|mut file| file.write_all(variable.value.as_bytes()))
        })
        .map_err(|e| JobFailure::system(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Writes a stage's section around `body`.
async fn section<T>(
    log: &dyn LogSink,
    name: &str,
    executor: &str,
    trace_sections: bool,
    body: impl std::future::Future<Output = T>,
) -> T {
    if trace_sections {
        log.write(
            format::section_start(name, now(), &format::stage_header(name, executor)).as_bytes(),
        );
    } else {
        log.write(
            format::info(&format!(
                "{}{}{}",
                format::ANSI_BOLD_CYAN,
                format::stage_header(name, executor),
                format::ANSI_RESET
            ))
            .as_bytes(),
        );
    }
    let result = body.await;
    if trace_sections {
        log.write(format::section_end(name, now()).as_bytes());
    }
    result
}

/// Everything one job run needs.
pub struct JobRun {
    /// The context shared with the backend.
    pub ctx: JobContext,
    /// The backend.
    pub backend: AnyBackend,
    /// Cancel and abort requests from GitLab.
    pub remote: mpsc::UnboundedReceiver<RemoteRequest>,
    /// Fires when batchci itself must stop the job (second SIGTERM, SIGINT).
    pub shutdown: CancellationToken,
    /// Lines for the log right after its header (who the job runs as).
    pub notes: Vec<String>,
}

/// The first lines of every job log: batchci's version and executor, the runner.
pub fn write_header(log: &dyn LogSink, runner: &RunnerConfig) {
    log.info(&format!(
        "Running with batchci {} ({})",
        crate::gitlab::VERSION,
        runner.executor.name()
    ));
    log.info(&format!(
        "  on {} {}",
        runner.name,
        short_token(&runner.token)
    ));
}

/// Runs the job through all stages and returns how it ended. Output goes to `ctx.log`.
pub async fn run_job(mut run: JobRun) -> JobResult {
    let ctx = run.ctx.clone();
    let log: &dyn LogSink = ctx.log.as_ref();
    let job = ctx.job.clone();
    let executor = ctx.runner.executor.name();
    let sections = job.features.trace_sections;
    let step_cancel = CancellationToken::new();
    let abort = CancellationToken::new();
    let stop_reason = Arc::new(AtomicU8::new(STOP_NONE));

    // Watches GitLab, the timeout and shutdown; stops the step (and everything on abort).
    // The timeout's clock starts once the backend is prepared (`clock`): waiting for an
    // allocation does not count against the build's time.
    let (clock, mut clock_started) = tokio::sync::watch::channel(None::<Duration>);
    let watcher = {
        let step_cancel = step_cancel.clone();
        let abort = abort.clone();
        let stop_reason = stop_reason.clone();
        let shutdown = run.shutdown.clone();
        tokio::spawn(async move {
            let deadline = async move {
                let started = clock_started
                    .wait_for(Option::is_some)
                    .await
                    .map(|started| started.unwrap_or_default());
                let Ok(timeout) = started else {
                    return std::future::pending::<()>().await;
                };
                tokio::time::sleep(timeout).await;
            };
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    request = run.remote.recv() => match request {
                        Some(RemoteRequest::Cancel) => {
                            let _ = stop_reason.compare_exchange(STOP_NONE, STOP_CANCEL, Ordering::SeqCst, Ordering::SeqCst);
                            step_cancel.cancel();
                        }
                        Some(RemoteRequest::Abort) => {
                            stop_reason.store(STOP_REMOTE_ABORT, Ordering::SeqCst);
                            step_cancel.cancel();
                            abort.cancel();
                            return;
                        }
                        None => std::future::pending::<()>().await,
                    },
                    _ = &mut deadline => {
                        let _ = stop_reason.compare_exchange(STOP_NONE, STOP_TIMEOUT, Ordering::SeqCst, Ordering::SeqCst);
                        step_cancel.cancel();
                        abort.cancel();
                        return;
                    }
                    _ = shutdown.cancelled() => {
                        stop_reason.store(STOP_ABORT, Ordering::SeqCst);
                        step_cancel.cancel();
                        abort.cancel();
                        return;
                    }
                }
            }
        })
    };

    write_header(log, &ctx.runner);
    for note in &run.notes {
        log.info(note);
    }

    let mut failure: Option<JobFailure> = None;

    let prepared = section(log, "prepare_executor", executor, sections, async {
        log.info(&format!("Using {executor} executor..."));
        run.backend.prepare(&ctx, &step_cancel).await
    })
    .await;
    // GitLab's timeout, unless the backend shortened it; it runs from here.
    let build_timeout = run.backend.build_timeout(&ctx);
    match prepared {
        Ok(()) => {
            let _ = clock.send(Some(build_timeout));
        }
        // Cancelled or stopped while preparing: the reason is the stop, not the wait.
        Err(_) if step_cancel.is_cancelled() => {
            failure = Some(stop_failure(&stop_reason, build_timeout))
        }
        Err(error) => failure = Some(error),
    }

    if failure.is_none() {
        let result = section(log, "prepare_script", executor, sections, async {
            let host = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".into());
            log.info(&format!("Running on {host}..."));
            // Before anything is written: a batchci that dies from here on leaves a record
            // from which its next start removes what this job wrote.
            // A backend that allocated in `prepare` has recorded its job already.
            if let Some(store) = &ctx.state
                && !store.has(&ctx.runner.url, ctx.job.id)
            {
                store
                    .record(&ctx.record())
                    .map_err(|e| JobFailure::system(e.to_string()))?;
            }
            let named = |path: &Path, what: &str| {
                let path = path.display().to_string();
                let what = what.to_string();
                move |e: std::io::Error| JobFailure::system(format!("cannot {what} {path}: {e}"))
            };
            ctx.as_user(|| create_private_dir(&ctx.dirs.tmp_dir))
                .map_err(named(&ctx.dirs.tmp_dir, "create"))?;
            ctx.as_user(|| std::fs::create_dir_all(&ctx.dirs.project_dir))
                .map_err(named(&ctx.dirs.project_dir, "create"))?;
            write_file_variables(&ctx)
        })
        .await;
        failure = result.err();
    }

    if failure.is_none() && !abort.is_cancelled() {
        let result = section(
            log,
            "get_sources",
            executor,
            sections,
            get_sources(&ctx, &abort),
        )
        .await;
        failure = result.err();
    }

    if failure.is_none()
        && !abort.is_cancelled()
        && job.dependencies.iter().any(|d| d.artifacts_file.is_some())
    {
        let result = section(
            log,
            "download_artifacts",
            executor,
            sections,
            crate::artifacts::download(&ctx),
        )
        .await;
        failure = result.err();
    }

    // The user's steps: `script` (with before_script) and any custom ones, in GitLab's order.
    if failure.is_none() && !abort.is_cancelled() {
        for step in job.steps.iter().filter(|s| s.name != "after_script") {
            if step.script.iter().all(|l| l.trim().is_empty()) {
                continue;
            }
            let stage = format!("step_{}", step.name);
            let result = section(log, &stage, executor, sections, async {
                let text = stage_script(
                    &ctx.exports,
                    &ctx.dirs.project_dir,
                    &step.script,
                    OnError::Stop,
                );
                // The script holds the job's secrets: it goes to the backend, never to a file
                // of the shared builds directory.
                if step.name == "script" || run.backend.runs_all_user_stages() {
                    run.backend
                        .run_step(&ctx, text.as_bytes(), &step_cancel)
                        .await
                } else {
                    // Only before_script + script go to the scheduler; other steps (release, ...)
                    // run on the executor's host like after_script.
                    crate::backends::shell::run_login_shell(&ctx, text.as_bytes(), &step_cancel)
                        .await
                }
            })
            .await;
            match result {
                Ok(StepOutcome::Exited(0)) => {}
                Ok(StepOutcome::Exited(code)) => {
                    failure = Some(JobFailure::script(format!("exit code {code}"), Some(code)));
                }
                Ok(StepOutcome::Cancelled) => {
                    failure = Some(stop_failure(&stop_reason, build_timeout))
                }
                Err(error) => failure = Some(error),
            }
            if failure.is_some() {
                break;
            }
        }
    }
    if failure.is_none() && step_cancel.is_cancelled() {
        failure = Some(stop_failure(&stop_reason, build_timeout));
    }

    let stopped = stop_reason.load(Ordering::SeqCst);
    if stopped == STOP_CANCEL {
        log.warning("script canceled externally (UI, API)");
    }

    // after_script: after success and failure and graceful cancel; not on timeout or abort.
    if let Some(step) = job.step("after_script")
        && matches!(stopped, STOP_NONE | STOP_CANCEL)
        && !abort.is_cancelled()
        && ctx.dirs.project_dir.exists()
    {
        let status = match (&failure, stopped) {
            (_, STOP_CANCEL) => "canceled",
            (None, _) => "success",
            (Some(_), _) => "failed",
        };
        section(log, "after_script", executor, sections, async {
            let mut exports = ctx.exports.clone();
            exports.push(Export {
                key: "CI_JOB_STATUS".into(),
                value: status.into(),
            });
            let text = stage_script(
                &exports,
                &ctx.dirs.project_dir,
                &step.script,
                OnError::Continue,
            );
            let after_cancel = abort.child_token();
            let timer = {
                let after_cancel = after_cancel.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(AFTER_SCRIPT_TIMEOUT).await;
                    after_cancel.cancel();
                })
            };
            let ran = if run.backend.runs_all_user_stages() {
                run.backend
                    .run_step(&ctx, text.as_bytes(), &after_cancel)
                    .await
            } else {
                crate::backends::shell::run_login_shell(&ctx, text.as_bytes(), &after_cancel).await
            };
            match ran {
                Ok(StepOutcome::Exited(0)) => {}
                Ok(StepOutcome::Exited(code)) => {
                    log.warning(&format!("after_script failed: exit code {code}"))
                }
                Ok(StepOutcome::Cancelled) => log.warning("after_script did not finish in time"),
                Err(error) => log.warning(&format!("after_script failed: {error}")),
            }
            timer.abort();
        })
        .await;
    }

    if !job.artifacts.is_empty() && !abort.is_cancelled() {
        let on_success = failure.is_none();
        let stage = if on_success {
            "upload_artifacts_on_success"
        } else {
            "upload_artifacts_on_failure"
        };
        let wanted: Vec<_> = job
            .artifacts
            .iter()
            .filter(|a| match a.when.as_str() {
                "always" => true,
                "on_failure" => !on_success,
                _ => on_success,
            })
            .filter(|a| !a.paths.is_empty() || a.untracked)
            .cloned()
            .collect();
        if !wanted.is_empty() {
            let result = section(
                log,
                stage,
                executor,
                sections,
                crate::artifacts::upload(&ctx, &wanted),
            )
            .await;
            if let Err(error) = result {
                log.warning(&format!("uploading artifacts failed: {error}"));
                if failure.is_none() {
                    failure = Some(error);
                }
            }
        }
    }

    section(log, "cleanup_file_variables", executor, sections, async {
        let _ = ctx.as_user(|| std::fs::remove_dir_all(&ctx.dirs.tmp_dir));
    })
    .await;

    run.backend.cleanup(&ctx).await;
    if let Some(store) = &ctx.state {
        store.remove(&ctx.runner.url, ctx.job.id);
    }
    watcher.abort();

    match &failure {
        None => log.write(format::notice("Job succeeded").as_bytes()),
        Some(f) if f.reason == FailureReason::RunnerSystemFailure => {
            log.error(&format!("Job failed (system failure): {}", f.message))
        }
        Some(f) => log.error(&format!("Job failed: {}", f.message)),
    }
    JobResult { failure }
}

fn stop_failure(stop_reason: &AtomicU8, build_timeout: Duration) -> JobFailure {
    match stop_reason.load(Ordering::SeqCst) {
        STOP_TIMEOUT => JobFailure {
            reason: FailureReason::JobExecutionTimeout,
            exit_code: None,
            message: format!(
                "execution took longer than {} seconds",
                build_timeout.as_secs()
            ),
        },
        STOP_REMOTE_ABORT => JobFailure {
            reason: FailureReason::JobCanceled,
            exit_code: None,
            message: "GitLab ended the job (canceled or removed); it was stopped".into(),
        },
        STOP_CANCEL => JobFailure {
            reason: FailureReason::JobCanceled,
            exit_code: None,
            message: "canceled".into(),
        },
        _ => JobFailure::system("the job was aborted"),
    }
}

/// `get_sources`: fetch and check out the commit with git, run as argv (never a shell).
async fn get_sources(ctx: &JobContext, abort: &CancellationToken) -> Result<(), JobFailure> {
    let job = &ctx.job;
    let strategy = job
        .variable("GIT_STRATEGY")
        .unwrap_or(if job.allow_git_fetch {
            "fetch"
        } else {
            "clone"
        })
        .to_string();
    let project = &ctx.dirs.project_dir;
    match strategy.as_str() {
        "none" => {
            ctx.log.info("Skipping Git repository setup");
            return Ok(());
        }
        "empty" => {
            ctx.log
                .info("Skipping Git repository setup and creating an empty build directory");
            let _ = ctx.as_user(|| std::fs::remove_dir_all(project));
            return ctx
                .as_user(|| std::fs::create_dir_all(project))
                .map_err(|e| {
                    JobFailure::system(format!("cannot create {}: {e}", project.display()))
                });
        }
        "clone" | "fetch" => {}
        other => {
            return Err(JobFailure::script(
                format!("GIT_STRATEGY `{other}` is not one of clone, fetch, none, empty"),
                None,
            ));
        }
    }
    let info = &job.git_info;
    if info.repo_url.is_empty() || info.sha.is_empty() {
        return Err(JobFailure::system(
            "the job has no repository URL or commit to check out",
        ));
    }
    // The token GitLab puts in the URL stays out of .git/config: git gets it per command.
    let (repo_url, credentials) = split_credentials(&info.repo_url);
    let fresh = strategy == "clone" || !project.join(".git").exists();
    if fresh {
        let _ = ctx.as_user(|| std::fs::remove_dir_all(project));
        ctx.as_user(|| std::fs::create_dir_all(project))
            .map_err(|e| JobFailure::system(format!("cannot create {}: {e}", project.display())))?;
        ctx.log
            .write(format::notice("Fetching changes...").as_bytes());
        git(ctx, project, &["init", "--quiet"], &[], abort).await?;
        git(
            ctx,
            project,
            &["remote", "add", "origin", &repo_url],
            &[],
            abort,
        )
        .await?;
        ctx.log
            .write(format::notice("Created fresh repository.").as_bytes());
    } else {
        ctx.log
            .write(format::notice("Fetching changes...").as_bytes());
        git(
            ctx,
            project,
            &["remote", "set-url", "origin", &repo_url],
            &[],
            abort,
        )
        .await?;
    }
    let mut refspecs = info.refspecs.clone();
    if refspecs.is_empty() {
        refspecs.push(if info.ref_type == "tag" {
            format!("+refs/tags/{0}:refs/tags/{0}", info.git_ref)
        } else {
            format!("+refs/heads/{0}:refs/remotes/origin/{0}", info.git_ref)
        });
    }
    let depth = job
        .variable("GIT_DEPTH")
        .and_then(|d| d.trim().parse::<u32>().ok())
        .unwrap_or(info.depth);
    let mut fetch: Vec<String> = vec!["fetch".into(), "--prune".into(), "--quiet".into()];
    if depth > 0 {
        fetch.push(format!("--depth={depth}"));
    }
    fetch.push("origin".into());
    fetch.extend(refspecs);
    let fetch_args: Vec<&str> = fetch.iter().map(String::as_str).collect();
    if matches!(
        ctx.run_as.as_ref().map(|r| &r.switch),
        Some(crate::command::Switch::Sudo(_))
    ) {
        // Through sudo, the environment is on `env`'s command line, which every user of the
        // host can read: the header goes into a file of the user's private scratch directory.
        let file = ctx.dirs.tmp_dir.join("git-credentials.config");
        let env = credentials_file(ctx, &file, &credentials)?;
        let fetched = git(ctx, project, &fetch_args, &env, abort).await;
        let _ = ctx.as_user(|| std::fs::remove_file(&file));
        fetched?;
    } else {
        git(ctx, project, &fetch_args, &credentials, abort).await?;
    }
    let short_sha: String = info.sha.chars().take(8).collect();
    ctx.log.write(
        format::notice(&format!("Checking out {short_sha} as {}...", info.git_ref)).as_bytes(),
    );
    git(
        ctx,
        project,
        &["checkout", "-f", "-q", &info.sha],
        &[],
        abort,
    )
    .await?;
    if !fresh {
        git(ctx, project, &["clean", "-ffdx", "-q"], &[], abort).await?;
    }
    Ok(())
}

/// The repository URL without its user and password, and the environment that gives git
/// those credentials for that server only: an `Authorization` header through git's
/// `GIT_CONFIG_*` variables, so the token is in neither `.git/config` nor a command line
/// another user could read.
fn split_credentials(repo_url: &str) -> (String, Vec<(OsString, OsString)>) {
    use base64::Engine;
    let Ok(mut url) = reqwest::Url::parse(repo_url) else {
        return (repo_url.to_string(), Vec::new());
    };
    if url.username().is_empty() && url.password().is_none() {
        return (repo_url.to_string(), Vec::new());
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = decode(url.password().unwrap_or(""));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let origin = format!("{}/", url.origin().ascii_serialization());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let env = vec![
        ("GIT_CONFIG_COUNT".into(), "1".into()),
        (
            "GIT_CONFIG_KEY_0".into(),
            format!("http.{origin}.extraHeader").into(),
        ),
        (
            "GIT_CONFIG_VALUE_0".into(),
            format!("Authorization: Basic {basic}").into(),
        ),
    ];
    (url.to_string(), env)
}

/// Writes the `GIT_CONFIG_*` settings of `credentials` as a git config file at `path`
/// (mode 0600, as the job's user) and returns the environment that makes git read it.
fn credentials_file(
    ctx: &JobContext,
    path: &Path,
    credentials: &[(OsString, OsString)],
) -> Result<Vec<(OsString, OsString)>, JobFailure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if credentials.is_empty() {
        return Ok(Vec::new());
    }
    let value = |key: &str| {
        credentials
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // `http.<url>.extraHeader` as a section with a subsection.
    let key = value("GIT_CONFIG_KEY_0");
    let url = key
        .strip_prefix("http.")
        .and_then(|rest| rest.strip_suffix(".extraHeader"))
        .unwrap_or_default();
    let text = format!(
        "[http \"{}\"]\n\textraHeader = {}\n",
        url.replace('\\', "\\\\").replace('"', "\\\""),
        value("GIT_CONFIG_VALUE_0")
    );
    ctx.as_user(|| {
        let _ = std::fs::remove_file(path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
    })
    .map_err(|e| JobFailure::system(format!("cannot write {}: {e}", path.display())))?;
    Ok(vec![("GIT_CONFIG_GLOBAL".into(), path.into())])
}

async fn git(
    ctx: &JobContext,
    dir: &Path,
    args: &[&str],
    credentials: &[(OsString, OsString)],
    abort: &CancellationToken,
) -> Result<(), JobFailure> {
    let mut full = vec!["-c", "credential.helper=", "-c", "init.defaultBranch=main"];
    full.extend_from_slice(args);
    let mut spec = CommandSpec::new("git", full, dir).run_as(ctx.run_as.as_ref());
    spec.env = vec![
        ("PATH".into(), crate::command::search_path(None)),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
        ("HOME".into(), ctx.dirs.tmp_dir.clone().into_os_string()),
    ];
    spec.env.extend(credentials.iter().cloned());
    let child = spec
        .spawn_merged()
        .map_err(|e| JobFailure::system(e.to_string()))?;
    let log = ctx.log.clone();
    let result = tokio::select! {
        result = child.stream_to_end(move |bytes| log.write(bytes)) => result,
        _ = abort.cancelled() => return Err(JobFailure::system("git was stopped")),
    };
    match result {
        Ok(0) => Ok(()),
        Ok(code) => Err(JobFailure::script(
            format!(
                "git {} exited with code {code}",
                args.first().unwrap_or(&"")
            ),
            Some(code),
        )),
        Err(error) => Err(JobFailure::system(format!("git failed: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_token_leaves_the_remote_url_for_a_header_scoped_to_gitlab() {
        let (url, env) = split_credentials(
            "https://gitlab-ci-token:glcbt-s3cr%40t@gitlab.example.com:8443/group/p.git",
        );

        assert_eq!(url, "https://gitlab.example.com:8443/group/p.git");
        let value = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(value("GIT_CONFIG_COUNT").as_deref(), Some("1"));
        assert_eq!(
            value("GIT_CONFIG_KEY_0").as_deref(),
            Some("http.https://gitlab.example.com:8443/.extraHeader")
        );
        // base64("gitlab-ci-token:glcbt-s3cr@t")
        assert_eq!(
            value("GIT_CONFIG_VALUE_0").as_deref(),
            Some("Authorization: Basic Z2l0bGFiLWNpLXRva2VuOmdsY2J0LXMzY3JAdA==")
        );
    }

    #[test]
    fn a_url_without_credentials_is_left_alone() {
        let (url, env) = split_credentials("https://gitlab.example.com/group/p.git");
        assert_eq!(url, "https://gitlab.example.com/group/p.git");
        assert!(env.is_empty());
    }
}
