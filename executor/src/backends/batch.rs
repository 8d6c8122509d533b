//! The batch engine: the mechanism every batch scheduler backend shares.
//!
//! A scheduler is described by a [`Scheduler`]: its submit command and option table, how it
//! reports a job id, how a job is cancelled and known to have left, and how its record of a
//! finished job is read and judged. The engine does the rest, the same way for every
//! scheduler: it starts the submit command, scans its output for the job id, records the
//! submission durably (so a restarted batchci cancels what a crashed one left), follows the
//! job's output file into the log, cancels on request and waits for the job to leave, and asks
//! the scheduler for its verdict once the job has ended.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::{Backend, JobContext, JobFailure, StepOutcome};
use crate::args::CommandOptions;
use crate::command::CapturedOutput;
use crate::config::ExecutorKind;
use crate::state::Submission;
use crate::tail::{Drain, TailOptions, follow};

/// How long to wait for the submit command to report the job id after a cancel arrived
/// mid-submission.
const SUBMIT_REPORT_WAIT: Duration = Duration::from_secs(10);

/// How often the queue is asked whether a cancelled job has left.
const LEAVE_POLL: Duration = Duration::from_millis(250);

/// A scheduler command: program and arguments.
pub(crate) type Invocation = (&'static str, Vec<String>);

/// What a status command said about a job after it was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Still in the queue (pending, running or completing).
    Queued,
    /// Finished or unknown to the scheduler: it holds nothing any more.
    Gone,
    /// The status command failed; nothing is known.
    Unknown,
}

/// A query of the scheduler's record of a finished job, and how to read its answer.
pub(crate) struct RecordQuery {
    /// The command.
    pub(crate) invocation: Invocation,
    /// Reads the record from the command's standard output.
    pub(crate) parse: fn(&str) -> Option<JobRecord>,
}

/// What a scheduler recorded about a finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobRecord {
    /// The scheduler's final state, in its own words (`COMPLETED`, `TIMEOUT`, ...).
    pub(crate) state: String,
    /// The job's exit code.
    pub(crate) exit: i32,
    /// The signal that ended it, 0 when none.
    pub(crate) signal: i32,
}

/// What the engine needs to submit one step.
pub(crate) struct StepRequest<'a> {
    /// The job.
    pub(crate) ctx: &'a JobContext,
    /// The step script.
    pub(crate) script: &'a Path,
    /// The file the scheduler writes the job's output to.
    pub(crate) output: &'a Path,
    /// The user's parameters, checked against the option table.
    pub(crate) user_args: &'a [String],
}

/// One batch scheduler, as the engine drives it.
pub(crate) trait Scheduler: Send + Sync + std::fmt::Debug {
    /// The executor this scheduler serves.
    fn kind(&self) -> ExecutorKind;

    /// The scheduler's name in messages (`Slurm`).
    fn name(&self) -> &'static str;

    /// The submit command's options, with the flags batchci sets itself.
    fn submit_options(&self) -> &'static CommandOptions;

    /// Where the job's output file goes.
    fn output_file(&self, ctx: &JobContext) -> PathBuf;

    /// The submit command for one step. It must stay attached until the job has ended
    /// (`sbatch --wait`).
    fn submit(&self, step: &StepRequest<'_>) -> Invocation;

    /// The job id, when `line` of the submit command's standard output announces it.
    fn job_id(&self, line: &str) -> Option<String>;

    /// The command that cancels job `id`.
    fn cancel(&self, id: &str) -> Invocation;

    /// The command asked, after a cancel, whether job `id` is still queued.
    fn presence_query(&self, id: &str) -> Invocation;

    /// What the answer to [`Scheduler::presence_query`] means.
    fn presence(&self, answer: &CapturedOutput) -> Presence;

    /// The queries of the scheduler's record of a finished job, tried in order.
    fn record_queries(&self, id: &str) -> Vec<RecordQuery>;

    /// The step's outcome from the submit command's exit code and the scheduler's record.
    fn verdict(
        &self,
        id: &str,
        submit_code: i32,
        record: &JobRecord,
    ) -> Result<StepOutcome, JobFailure>;
}

/// A backend that runs the step script as a batch job of `scheduler`.
#[derive(Debug)]
pub struct BatchBackend {
    scheduler: &'static dyn Scheduler,
    user_args: Vec<String>,
    submitted: Option<String>,
}

impl BatchBackend {
    pub(crate) fn new(scheduler: &'static dyn Scheduler) -> BatchBackend {
        BatchBackend {
            scheduler,
            user_args: Vec::new(),
            submitted: None,
        }
    }
}

impl Backend for BatchBackend {
    async fn prepare(&mut self, ctx: &JobContext) -> Result<(), JobFailure> {
        let options = self.scheduler.submit_options();
        if let Some((variable, text)) = ctx.user_parameters() {
            self.user_args = crate::args::user_parameters(
                options,
                &variable,
                &text,
                ctx.runner.batch.allow_illegal_args,
            )
            .map_err(|e| JobFailure::script(e.to_string(), None))?;
        }
        let path = ctx
            .command_env()
            .into_iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v)
            .unwrap_or_default();
        if crate::command::resolve(options.program, &path).is_none() {
            return Err(JobFailure::system(format!(
                "{} is not on PATH ({}); install the {} client or set scheduler_bin under [runners.batch]",
                options.program,
                path.to_string_lossy(),
                self.scheduler.name()
            )));
        }
        Ok(())
    }

    async fn run_step(
        &mut self,
        ctx: &JobContext,
        script: &Path,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, JobFailure> {
        let scheduler = self.scheduler;
        let output = scheduler.output_file(ctx);
        let _ = std::fs::remove_file(&output);
        let (program, args) = scheduler.submit(&StepRequest {
            ctx,
            script,
            output: &output,
            user_args: &self.user_args,
        });
        let spec = ctx.scheduler_command(program, args);
        ctx.log.info(&format!("$ {}", spec.display()));
        if !ctx.runner.batch.command_delay.is_zero() {
            tokio::time::sleep(ctx.runner.batch.command_delay).await;
        }
        let mut child = spec
            .spawn_piped()
            .map_err(|e| JobFailure::system(e.to_string()))?;

        let job_id = Arc::new(Mutex::new(None::<String>));
        let (id_tx, mut id_rx) = tokio::sync::watch::channel(None::<String>);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let readers = {
            let log = ctx.log.clone();
            let record = ctx
                .state
                .clone()
                .map(|store| (store, submission_template(ctx, scheduler.kind())));
            let job_id = job_id.clone();
            let stderr_log = ctx.log.clone();
            let stderr_copy = stderr_text.clone();
            async move {
                let out = async {
                    let Some(stdout) = stdout else { return };
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(id) = scheduler.job_id(&line) {
                            if let Some((store, mut submission)) = record.clone() {
                                submission.scheduler_job_id = id.clone();
                                if let Err(error) = store.record(&submission) {
                                    log.warning(&format!(
                                        "cannot record {} job {id}: {error}",
                                        scheduler.name()
                                    ));
                                }
                            }
                            *job_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
                            let _ = id_tx.send(Some(id));
                        }
                        log.info(&line);
                    }
                };
                let err = async {
                    let Some(stderr) = stderr else { return };
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        stderr_copy
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_str(&line);
                        stderr_log.write(format!("{line}\n").as_bytes());
                    }
                };
                tokio::join!(out, err);
            }
        };

        let (finished_tx, finished_rx) = tokio::sync::oneshot::channel::<Drain>();
        let waiter = async {
            let result = tokio::select! {
                status = child.wait() => Ok((crate::command::exit_code_of(status), false)),
                _ = cancel.cancelled() => {
                    let known = id_rx.borrow().clone();
                    let id = match known {
                        Some(id) => Some(id),
                        None => tokio::time::timeout(SUBMIT_REPORT_WAIT, id_rx.wait_for(Option::is_some))
                            .await
                            .ok()
                            .and_then(|r| r.ok().and_then(|v| v.clone())),
                    };
                    if let Some(id) = &id {
                        cancel_and_wait(ctx, scheduler, id).await;
                    }
                    let _ = crate::command::terminate_group(&mut child, Duration::from_secs(5)).await;
                    Ok::<_, JobFailure>((None, true))
                }
            };
            let drain = match &result {
                Ok((_, true)) => Drain::Now,
                _ => Drain::UntilSettled,
            };
            let _ = finished_tx.send(drain);
            result
        };
        let tail_options = TailOptions {
            poll_interval: ctx.runner.batch.poll_interval,
            nfs_timeout: ctx.runner.batch.nfs_timeout,
            ..TailOptions::default()
        };
        let log = ctx.log.clone();
        let tail = follow(
            &output,
            move |bytes| log.write(bytes),
            async { finished_rx.await.unwrap_or(Drain::UntilSettled) },
            &tail_options,
        );
        let (result, summary, ()) = tokio::join!(waiter, tail, readers);
        let (code, cancelled) = result?;
        let id = job_id.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.submitted = id.clone();
        if cancelled {
            return Ok(StepOutcome::Cancelled);
        }
        let Some(id) = id else {
            let detail = stderr_text
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Err(JobFailure::script(
                format!(
                    "{program} did not submit the job (exit code {}){}",
                    code.map_or("unknown".to_string(), |c| c.to_string()),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    }
                ),
                code,
            ));
        };
        if summary.missing {
            ctx.log.warning(&format!(
                "the output file {} of {} job {id} never appeared (waited {:?} after the job ended)",
                output.display(),
                scheduler.name(),
                ctx.runner.batch.nfs_timeout
            ));
        }
        let code = code.unwrap_or(1);
        match job_record(ctx, scheduler, &id).await {
            Some(record) => scheduler.verdict(&id, code, &record),
            None => Ok(StepOutcome::Exited(code)),
        }
    }

    async fn cleanup(&mut self, ctx: &JobContext) {
        if let Some(store) = &ctx.state {
            store.remove(&ctx.runner.url, ctx.job.id);
        }
        self.submitted = None;
    }
}

fn submission_template(ctx: &JobContext, executor: ExecutorKind) -> Submission {
    Submission {
        gitlab_url: ctx.runner.url.clone(),
        gitlab_job_id: ctx.job.id,
        job_token: ctx.job.token.clone(),
        runner_name: ctx.runner.name.clone(),
        executor,
        scheduler_job_id: String::new(),
        pid: std::process::id(),
        submitted_at: chrono::Utc::now().to_rfc3339(),
    }
}

/// The scheduler's record of job `id`: the first of its queries that answers.
async fn job_record(ctx: &JobContext, scheduler: &dyn Scheduler, id: &str) -> Option<JobRecord> {
    for query in scheduler.record_queries(id) {
        let (program, args) = query.invocation;
        if let Ok(output) = ctx.scheduler_command(program, args).output().await
            && output.code == 0
            && let Some(record) = (query.parse)(&output.stdout_text())
        {
            return Some(record);
        }
    }
    None
}

/// Cancels job `id`, then waits until it has left the queue (bounded by the kill timeout).
async fn cancel_and_wait(ctx: &JobContext, scheduler: &dyn Scheduler, id: &str) {
    let (program, args) = scheduler.cancel(id);
    let cancel = ctx.scheduler_command(program, args);
    ctx.log.info(&format!("$ {}", cancel.display()));
    match cancel.output().await {
        Ok(output) if output.code != 0 => ctx.log.warning(&format!(
            "{program} {id} exited {}: {}",
            output.code,
            output.stderr_text().trim()
        )),
        Err(error) => ctx.log.warning(&format!("{program} {id} failed: {error}")),
        Ok(_) => {}
    }
    let deadline = tokio::time::Instant::now() + ctx.kill_timeout;
    loop {
        let (program, args) = scheduler.presence_query(id);
        if let Ok(answer) = ctx.scheduler_command(program, args).output().await
            && scheduler.presence(&answer) == Presence::Gone
        {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            ctx.log.warning(&format!(
                "{} job {id} is still in the queue {:?} after {program}",
                scheduler.name(),
                ctx.kill_timeout
            ));
            return;
        }
        tokio::time::sleep(LEAVE_POLL).await;
    }
}
