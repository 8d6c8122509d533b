//! Runner mode: batchci talks to GitLab itself.
//!
//! Each configured runner is verified, then polls `jobs/request` whenever it may take one more
//! job (within the global `concurrent` and its own `limit`). A job is acknowledged with
//! `PUT state=running`, its log streamed while the stages run, and its final state reported.
//!
//! Shutdown: the first SIGTERM stops taking jobs and lets running ones finish; a second SIGTERM
//! (or SIGINT) cancels running jobs — scheduler jobs are cancelled and allocations released —
//! and then exits. A start after a crash cancels what the crash left behind (see
//! [`recover_orphans`]).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::backends::{AnyBackend, FailureReason, JobContext, JobFailure, LogSink};
use crate::config::{Config, RunnerConfig};
use crate::gitlab::{GitlabClient, JobRequest, JobUpdate, PatchOutcome, UpdateOutcome};
use crate::job::Job;
use crate::metrics::METRICS;
use crate::stages::{JobRun, job_dirs, job_exports, run_job};
use crate::state::{StateStore, Submission, process_alive};
use crate::trace::{JobLog, Masker, TraceSender};

/// How long a cancelled scheduler job may take to leave the queue before batchci stops waiting.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(60);

/// The two shutdown stages.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Take no new jobs.
    pub drain: CancellationToken,
    /// Cancel running jobs.
    pub cancel: CancellationToken,
}

/// Runs all configured runners until shutdown.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    if config.runners.is_empty() {
        anyhow::bail!("the configuration has no [[runners]]; add one with `batchci register`");
    }
    // A runner that cannot switch users would run every job as batchci's own user.
    let unprivileged: Vec<String> = config
        .runners
        .iter()
        .filter_map(|r| {
            crate::auth::privilege_problem(&r.auth)
                .map(|why| format!("runner {:?}: [runners.auth] {why}", r.name))
        })
        .collect();
    if !unprivileged.is_empty() {
        anyhow::bail!("{}", unprivileged.join("; "));
    }
    let state = StateStore::open(&config.state_dir)
        .map_err(|e| anyhow::anyhow!("state_dir {}: {e}", config.state_dir.display()))?;
    recover_orphans(&config, &state).await;
    crate::retention::start(&config, &state, &shutdown.drain);
    if let Some(address) = config.listen_address.clone() {
        tokio::spawn(async move {
            if let Err(error) = crate::metrics::serve(&address).await {
                tracing::error!(%address, %error, "cannot serve metrics");
            }
        });
    }

    let global = Arc::new(Semaphore::new(config.concurrent));
    let mut tasks = tokio::task::JoinSet::new();
    let mut idle = Vec::new();
    for runner in &config.runners {
        let runner = Arc::new(runner.clone());
        let client = GitlabClient::new(&runner.url, runner.executor.name())?;
        if let Err(reason) = can_work(&client, &runner).await {
            tracing::error!(runner = %runner.name, "{reason}; this runner stays idle");
            METRICS.set_runner_ready(&runner.name, false);
            idle.push(format!("runner {:?}: {reason}", runner.name));
            continue;
        }
        METRICS.set_runner_ready(&runner.name, true);
        let verifier = Arc::new(crate::auth::token::TokenVerifier::new(
            runner.url.trim_end_matches('/'),
            client.http_client(),
        ));
        let runner_limit = runner.limit;
        let poller = Poller {
            client,
            runner,
            global: global.clone(),
            local: Arc::new(Semaphore::new(match runner_limit {
                0 => Semaphore::MAX_PERMITS,
                limit => limit,
            })),
            check_interval: config.job_poll_interval(),
            state: state.clone(),
            shutdown: shutdown.clone(),
            slots: Arc::new(Mutex::new(BTreeSet::new())),
            verifier,
        };
        tasks.spawn(poller.run());
    }
    if tasks.is_empty() {
        anyhow::bail!("no runner can take jobs: {}", idle.join("; "));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Why `runner` cannot take jobs at all, if it cannot. A GitLab that cannot be reached yet is
/// no such reason: it may answer later, and the poller keeps asking.
async fn can_work(client: &GitlabClient, runner: &RunnerConfig) -> Result<(), String> {
    AnyBackend::new(runner.executor)?;
    match client.verify(&runner.token).await {
        Ok(true) => {
            tracing::info!(runner = %runner.name, "runner verified");
            Ok(())
        }
        Ok(false) => Err(format!("GitLab at {} refuses its token", runner.url)),
        Err(error) => {
            tracing::warn!(runner = %runner.name, error = %crate::error_chain(&error), "cannot verify the runner token yet");
            Ok(())
        }
    }
}

struct Poller {
    client: GitlabClient,
    runner: Arc<RunnerConfig>,
    global: Arc<Semaphore>,
    local: Arc<Semaphore>,
    check_interval: Duration,
    state: StateStore,
    shutdown: Shutdown,
    slots: Arc<Mutex<BTreeSet<usize>>>,
    verifier: Arc<crate::auth::token::TokenVerifier>,
}

impl Poller {
    async fn run(self) {
        let mut jobs = tokio::task::JoinSet::new();
        let mut last_update: Option<String> = None;
        let mut refusals = 0u32;
        loop {
            let permits = tokio::select! {
                _ = self.shutdown.drain.cancelled() => break,
                permits = async {
                    let local = self.local.clone().acquire_owned().await;
                    let global = self.global.clone().acquire_owned().await;
                    (local, global)
                } => permits,
            };
            let (Ok(local), Ok(global)) = permits else {
                break;
            };
            if !crate::backends::can_take_job(&self.runner).await {
                drop((local, global));
                tokio::select! {
                    _ = self.shutdown.drain.cancelled() => break,
                    _ = tokio::time::sleep(self.check_interval.max(Duration::from_secs(1))) => {}
                }
                continue;
            }
            METRICS.job_requests.fetch_add(1, Ordering::Relaxed);
            let pause = match self
                .client
                .request_job(&self.runner.token, last_update.as_deref())
                .await
            {
                Ok(JobRequest::Job(job, _raw)) => {
                    refusals = 0;
                    let claim = crate::backends::job_taken(&self.runner, job.id);
                    let slot = self.take_slot();
                    let context = JobTask {
                        client: self.client.clone(),
                        runner: self.runner.clone(),
                        state: self.state.clone(),
                        cancel: self.shutdown.cancel.clone(),
                        slot,
                        verifier: self.verifier.clone(),
                    };
                    let slots = self.slots.clone();
                    jobs.spawn(async move {
                        let _claim = claim;
                        context.process(*job).await;
                        slots
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&slot);
                        drop((local, global));
                    });
                    Duration::ZERO
                }
                Ok(JobRequest::NoJob {
                    last_update: update,
                }) => {
                    last_update = update.or(last_update);
                    self.check_interval
                }
                Ok(JobRequest::Conflict) => Duration::ZERO,
                Ok(JobRequest::Unreadable { id, token, reason }) => {
                    tracing::error!(job = id, %reason, "GitLab sent a job batchci cannot read; failing it");
                    fail_unreadable(&self.client, id, &token, &reason).await;
                    Duration::ZERO
                }
                Ok(JobRequest::Forbidden) => {
                    refusals += 1;
                    tracing::error!(runner = %self.runner.name, "GitLab refused the runner token (403)");
                    if refusals >= 3 {
                        Duration::from_secs(3600)
                    } else {
                        self.check_interval
                    }
                }
                Err(error) => {
                    tracing::warn!(runner = %self.runner.name, %error, "job request failed");
                    self.check_interval.max(Duration::from_secs(1))
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = self.shutdown.drain.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
        while jobs.join_next().await.is_some() {}
    }

    fn take_slot(&self) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (0..).find(|n| !slots.contains(n)).unwrap_or(0);
        slots.insert(slot);
        slot
    }
}

/// One job taken from GitLab.
pub struct JobTask {
    /// The GitLab client.
    pub client: GitlabClient,
    /// The runner that took it.
    pub runner: Arc<RunnerConfig>,
    /// Where scheduler submissions are recorded.
    pub state: StateStore,
    /// batchci's own cancel (second SIGTERM).
    pub cancel: CancellationToken,
    /// Concurrency slot, for the builds directory.
    pub slot: usize,
    /// Checks the jobs' ID tokens against the keys of the runner's GitLab (kept between jobs).
    pub(crate) verifier: Arc<crate::auth::token::TokenVerifier>,
}

impl JobTask {
    /// Acknowledges, runs and reports the job.
    pub async fn process(self, job: Job) {
        let job = Arc::new(job);
        let ack = JobUpdate {
            state: "running",
            ..JobUpdate::default()
        };
        match self.client.update_job(job.id, &job.token, &ack).await {
            Ok(UpdateOutcome::Accepted {
                cancel_requested: false,
            }) => {}
            Ok(UpdateOutcome::Accepted {
                cancel_requested: true,
            }) => {
                let update = JobUpdate {
                    state: "failed",
                    failure_reason: Some("job_canceled".into()),
                    ..JobUpdate::default()
                };
                let _ = self.client.update_job(job.id, &job.token, &update).await;
                return;
            }
            Ok(other) => {
                tracing::warn!(
                    job = job.id,
                    ?other,
                    "GitLab did not accept the job start; dropping it"
                );
                return;
            }
            Err(error) => {
                tracing::error!(job = job.id, %error, "cannot acknowledge the job; dropping it");
                return;
            }
        }
        let started = std::time::Instant::now();
        crate::logging::job_started(&job, &self.runner);
        METRICS.jobs_started.fetch_add(1, Ordering::Relaxed);
        METRICS.jobs_running.fetch_add(1, Ordering::Relaxed);

        let masker = Masker::for_job(
            job.masked_values(),
            job.features.token_mask_prefixes.clone(),
        );
        let log = JobLog::new(masker, self.runner.output_limit.saturating_mul(1024));
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let done = CancellationToken::new();
        let sender_task = {
            let mut sender =
                TraceSender::new(self.client.clone(), job.id, job.token.clone(), log.clone());
            let done = done.clone();
            tokio::spawn(async move {
                sender.run(done, requests_tx).await;
                sender
            })
        };

        let result = match self.identify(&job).await {
            Ok((identity, builds_dir)) => {
                self.run(job.clone(), &log, identity, &builds_dir, requests_rx)
                    .await
            }
            // Refused before anything of the job ran.
            Err(failure) => {
                crate::stages::write_header(&*log, &self.runner);
                log.error(&format!("Job failed (system failure): {}", failure.message));
                crate::stages::JobResult {
                    failure: Some(failure),
                }
            }
        };

        METRICS.jobs_running.fetch_sub(1, Ordering::Relaxed);
        let counter = match result.failure.as_ref().map(|f| f.reason) {
            None => &METRICS.jobs_succeeded,
            Some(FailureReason::ScriptFailure) => &METRICS.jobs_failed_script,
            Some(FailureReason::RunnerSystemFailure) => &METRICS.jobs_failed_system,
            Some(FailureReason::JobExecutionTimeout) => &METRICS.jobs_timed_out,
            Some(FailureReason::JobCanceled) => &METRICS.jobs_canceled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        done.cancel();
        let mut sender = match sender_task.await {
            Ok(sender) => sender,
            Err(_) => TraceSender::new(self.client.clone(), job.id, job.token.clone(), log.clone()),
        };
        let update = final_update(&job, result.failure.as_ref());
        let outcome = sender.finish(update).await;
        crate::logging::job_finished(
            &job,
            &self.runner,
            self.state
                .take_scheduler_job(&self.runner.url, job.id)
                .as_deref(),
            result.failure.as_ref(),
            &outcome,
            started.elapsed(),
        );
    }
}

impl JobTask {
    /// The job's verified identity, when the runner checks it, and the builds directory its
    /// directories go in (the user's own under `builds_dir` when downscoped).
    async fn identify(
        &self,
        job: &Job,
    ) -> Result<(Option<crate::auth::Identity>, std::path::PathBuf), JobFailure> {
        let builds_dir = self
            .runner
            .builds_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("batchci-builds"));
        let auth = &self.runner.auth;
        if !auth.enabled() {
            return Ok((None, builds_dir));
        }
        let check = crate::auth::Check {
            table: "[runners.auth]",
            auth,
            gitlab_url: &self.runner.url,
            job_id: job.id,
        };
        let identity = crate::auth::identify(&check, &self.verifier, &job.variables)
            .await
            .map_err(JobFailure::system)?;
        let builds_dir = match &identity.run_as {
            Some(user) => crate::auth::downscope::ensure_user_dir(&builds_dir, user)
                .map_err(JobFailure::system)?,
            None => builds_dir,
        };
        tracing::info!(job = job.id, user = %identity.user.name, gitlab_user = %identity.claims.user_login, "job identity verified");
        Ok((Some(identity), builds_dir))
    }

    /// Runs the job's stages, as its user when it has one.
    async fn run(
        &self,
        job: Arc<Job>,
        log: &Arc<JobLog>,
        identity: Option<crate::auth::Identity>,
        builds_dir: &std::path::Path,
        remote: mpsc::UnboundedReceiver<crate::trace::RemoteRequest>,
    ) -> crate::stages::JobResult {
        let dirs = job_dirs(builds_dir, &self.runner.token, self.slot, &job);
        let _in_use = crate::retention::job_started(
            &self.state,
            &self.runner,
            &dirs.project_dir,
            identity.as_ref().and_then(|i| i.run_as.as_ref()),
        );
        let exports = job_exports(&job, &self.runner, &dirs, self.slot);
        let mut notes = Vec::new();
        let (run_as, downscoped) = match &identity {
            Some(identity) => {
                notes.push(identity.describe(self.runner.auth.downscope));
                (identity.run_as.clone(), identity.run_as.is_some())
            }
            None => match &self.runner.slurm.user {
                Some(user) if !user.is_empty() => {
                    match crate::command::RunAs::lookup(user, self.runner.slurm.group.as_deref()) {
                        Ok(run_as) => (Some(run_as), false),
                        Err(error) => {
                            log.error(&error);
                            (None, false)
                        }
                    }
                }
                _ => (None, false),
            },
        };
        let ctx = JobContext {
            job: job.clone(),
            runner: self.runner.clone(),
            log: log.clone() as Arc<dyn LogSink>,
            dirs,
            exports,
            state: Some(self.state.clone()),
            gitlab: Some(self.client.clone()),
            run_as,
            downscoped,
            kill_timeout: KILL_TIMEOUT,
        };
        match AnyBackend::new(self.runner.executor) {
            Ok(backend) => {
                run_job(JobRun {
                    ctx,
                    backend,
                    remote,
                    shutdown: self.cancel.clone(),
                    notes,
                })
                .await
            }
            Err(error) => {
                log.error(&format!("Job failed (system failure): {error}"));
                crate::stages::JobResult {
                    failure: Some(JobFailure::system(error)),
                }
            }
        }
    }
}

/// Fails a job whose payload cannot be read, with the reason in its log.
async fn fail_unreadable(client: &GitlabClient, id: u64, token: &str, reason: &str) {
    let ack = JobUpdate {
        state: "running",
        ..JobUpdate::default()
    };
    let _ = client.update_job(id, token, &ack).await;
    let message = crate::trace::format::error(&format!(
        "Job failed (system failure): batchci cannot read this job's payload: {reason}"
    ));
    let _ = client.patch_trace(id, token, 0, message.as_bytes()).await;
    let update = JobUpdate {
        state: "failed",
        failure_reason: Some("runner_system_failure".into()),
        checksum: Some(format!("crc32:{:08x}", crc32fast::hash(message.as_bytes()))),
        bytesize: Some(message.len()),
        ..JobUpdate::default()
    };
    if let Err(error) = client.update_job(id, token, &update).await {
        tracing::warn!(job = id, %error, "cannot fail the unreadable job");
    }
}

/// The final `PUT jobs/:id` for a job that ended with `failure` (or succeeded).
pub fn final_update(job: &Job, failure: Option<&JobFailure>) -> JobUpdate {
    match failure {
        None => JobUpdate {
            state: "success",
            ..JobUpdate::default()
        },
        Some(failure) => JobUpdate {
            state: "failed",
            failure_reason: Some(failure_reason_for(job, failure.reason)),
            exit_code: failure.exit_code,
            ..JobUpdate::default()
        },
    }
}

/// GitLab's name for `reason`, falling back as gitlab-runner does when GitLab does not list it.
pub fn failure_reason_for(job: &Job, reason: FailureReason) -> String {
    let name = reason.as_str();
    let always = [
        "script_failure",
        "runner_system_failure",
        "job_execution_timeout",
    ];
    if always.contains(&name)
        || job.features.failure_reasons.is_empty()
        || job.features.failure_reasons.iter().any(|r| r == name)
    {
        name.to_string()
    } else {
        "unknown_failure".to_string()
    }
}

/// Cancels scheduler jobs recorded by a batchci process that no longer runs, and fails their
/// GitLab jobs with a message saying so.
pub async fn recover_orphans(config: &Config, state: &StateStore) {
    for orphan in state.list() {
        if orphan.pid == std::process::id() || owner_still_runs(orphan.pid) {
            continue;
        }
        let runner = config
            .runners
            .iter()
            .find(|r| r.name == orphan.runner_name && r.url == orphan.gitlab_url);
        tracing::warn!(
            job = orphan.gitlab_job_id,
            scheduler_job = %orphan.scheduler_job_id,
            "cleaning up after a job left behind by a batchci that stopped unexpectedly"
        );
        release_leftovers(&orphan, runner).await;
        // A downscoped job's leftovers are its user's: cancelled and removed as that user.
        let user = orphan
            .user
            .as_deref()
            .and_then(|name| crate::auth::recorded_user(name, runner.map(|r| r.auth.downscope)));
        if !orphan.scheduler_job_id.is_empty() {
            cancel_leftover(&orphan, runner, user.as_ref()).await;
        }
        // The dead job's file variables and raw (unmasked) output live there.
        if let Some(dir) = &orphan.scratch_dir
            && let Err(error) =
                crate::auth::downscope::as_user_if(user.as_ref(), || std::fs::remove_dir_all(dir))
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(job = orphan.gitlab_job_id, directory = %dir.display(), %error, "cannot remove the scratch directory of a job left behind");
        }
        report_orphan(&orphan).await;
        state.remove(&orphan.gitlab_url, orphan.gitlab_job_id);
    }
}

fn owner_still_runs(pid: u32) -> bool {
    process_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmdline| String::from_utf8_lossy(&cmdline).contains("batchci"))
            .unwrap_or(false)
}

/// Runs the commands that release what `orphan` held besides its scheduler job (containers).
pub async fn release_leftovers(orphan: &Submission, runner: Option<&RunnerConfig>) {
    for argv in &orphan.leftovers {
        if let Some((program, args)) = argv.split_first() {
            run_for_orphan(program, args, runner, None, "release failed").await;
        }
    }
}

/// Cancels the scheduler job of `orphan` with the scheduler's cancel command, as `run_as`
/// when given (the job's user, whose job it is).
pub async fn cancel_leftover(
    orphan: &Submission,
    runner: Option<&RunnerConfig>,
    run_as: Option<&crate::command::RunAs>,
) {
    let Some((program, args)) =
        crate::backends::cancel_command(orphan.executor, &orphan.scheduler_job_id)
    else {
        tracing::warn!(job = orphan.gitlab_job_id, executor = %orphan.executor, "this version cannot cancel a scheduler job of this executor");
        return;
    };
    run_for_orphan(program, &args, runner, run_as, "cancel failed").await;
}

/// Runs a cleanup command with the runner's scheduler environment; a failure is logged.
async fn run_for_orphan(
    program: &str,
    args: &[String],
    runner: Option<&RunnerConfig>,
    run_as: Option<&crate::command::RunAs>,
    failed: &str,
) {
    let mut spec = crate::command::CommandSpec::new(program, args, "/").run_as(run_as);
    spec.env = match runner {
        Some(runner) => crate::command::scheduler_env(&runner.batch, run_as),
        None => crate::command::scheduler_env(&crate::config::BatchConfig::default(), run_as),
    };
    match spec.output().await {
        Ok(output) if output.code == 0 => {}
        Ok(output) => {
            tracing::warn!(command = %spec.display(), code = output.code, stderr = %output.stderr_text().trim(), "{failed}")
        }
        Err(error) => tracing::warn!(command = %spec.display(), %error, "{failed}"),
    }
}

async fn report_orphan(orphan: &Submission) {
    let Ok(client) = GitlabClient::new(&orphan.gitlab_url, orphan.executor.name()) else {
        return;
    };
    let what = if orphan.scheduler_job_id.is_empty() {
        "its files were removed".to_string()
    } else {
        format!(
            "its {} job {} was cancelled",
            orphan.executor, orphan.scheduler_job_id
        )
    };
    let message = crate::trace::format::error(&format!(
        "Job failed (system failure): the batchci process running this job stopped unexpectedly; \
         {what} when batchci restarted"
    ));
    let bytes = format!("\n{message}").into_bytes();
    // GitLab holds an unknown amount of this job's log: a first patch learns its size.
    let mut offset = 0;
    for _ in 0..3 {
        match client
            .patch_trace(orphan.gitlab_job_id, &orphan.job_token, offset, &bytes)
            .await
        {
            Ok(PatchOutcome::RangeMismatch { remote_size }) => offset = remote_size,
            _ => break,
        }
    }
    let update = JobUpdate {
        state: "failed",
        failure_reason: Some("runner_system_failure".into()),
        ..JobUpdate::default()
    };
    if let Err(error) = client
        .update_job(orphan.gitlab_job_id, &orphan.job_token, &update)
        .await
    {
        tracing::warn!(job = orphan.gitlab_job_id, %error, "cannot fail the orphaned GitLab job");
    }
}
