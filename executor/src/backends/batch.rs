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
use crate::tail::{Drain, TailOptions, follow};

/// The longest pause between two submission retries, however many there are.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// How long to wait for the submit command to report the job id after a cancel arrived
/// mid-submission.
const SUBMIT_REPORT_WAIT: Duration = Duration::from_secs(10);

/// How long a submit command that waits for a job already known to have ended gets to exit
/// on SIGTERM before SIGKILL.
const SUBMIT_STOP_GRACE: Duration = Duration::from_secs(5);

/// How often the queue is asked whether a cancelled job has left.
const LEAVE_POLL: Duration = Duration::from_millis(250);

/// How often a scheduler whose submit command returns at once is asked whether the job is
/// still queued, unless `command_delay` says otherwise.
const STATUS_POLL: Duration = Duration::from_secs(1);

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
    /// Where the step script is, for a scheduler that cannot read it from its standard input;
    /// `None`: the submit command reads it there.
    pub(crate) script: Option<&'a Path>,
    /// The user's parameters, checked against the option table.
    pub(crate) user_args: &'a [String],
    /// Whether the submit command waits for the job's end ([`EndOfJob::SubmitWaits`]); false
    /// with `wait = "batched"`, where it only submits.
    pub(crate) wait: bool,
}

/// How the end of a job is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndOfJob {
    /// The submit command stays attached until the job has ended (`sbatch --wait`,
    /// `qsub -W block=true`); its exit code is the job's.
    SubmitWaits,
    /// The submit command returns once the job is queued; the job has ended when a status
    /// query that succeeds no longer lists it (Cobalt's `qstat`). A status query that fails
    /// says nothing: it is asked again, with backoff.
    StatusPoll,
    /// The submit command stays attached and its own output is the job's output, streamed
    /// as it comes (`bsub -I`, `flux alloc`); its exit code is the job's.
    Interactive,
}

/// Where the scheduler's record of a finished job is read.
pub(crate) enum RecordSource {
    /// Status commands, tried in order (Slurm's `scontrol`, then `sacct`).
    Queries(Vec<RecordQuery>),
    /// A file the scheduler writes when the job ends (Cobalt's `.cobaltlog`), read until it
    /// says how the job ended, for at most `nfs_timeout`.
    File {
        /// The file.
        path: PathBuf,
        /// Reads the record; `None` while the file does not say yet.
        parse: fn(&str) -> Option<JobRecord>,
    },
}

/// How the submit command of a job that was accepted ended.
pub(crate) struct Ended<'a> {
    /// The scheduler's job id.
    pub(crate) id: &'a str,
    /// The submit command's exit code.
    pub(crate) code: i32,
    /// Its standard error, line by line (already in the job log).
    pub(crate) stderr: &'a [String],
}

/// One batch scheduler, as the engine drives it.
pub(crate) trait Scheduler: Send + Sync + std::fmt::Debug {
    /// The executor this scheduler serves (`executor = "slurm"`).
    fn kind(&self) -> ExecutorKind;

    /// Other names `executor = ...` accepts for it, after the scheduler's submit command as
    /// other HPC executors name them (`sbatch`).
    fn aliases(&self) -> &'static [&'static str];

    /// The scheduler's name in messages (`Slurm`).
    fn name(&self) -> &'static str;

    /// How a step runs, in one line, for `batchci check`.
    fn how(&self) -> &'static str;

    /// The scheduler commands batchci runs, for `batchci check`.
    fn programs(&self) -> &'static [&'static str];

    /// The environment variables the scheduler's own commands read to find their cluster
    /// (`SLURM_CONF`); scheduler commands get them from batchci's environment by default.
    fn client_variables(&self) -> &'static [&'static str];

    /// The command that asks the scheduler's controller whether it answers (`scontrol ping`),
    /// for `batchci check`; it exits 0 when it does.
    fn controller_check(&self) -> Invocation;

    /// The submit command's options, with the flags batchci sets itself.
    fn submit_options(&self) -> &'static CommandOptions;

    /// Checks of the user's parameters beyond the option table (a value batchci controls,
    /// such as PBS's `-W block=`); the message names the problem.
    fn check_parameters(&self, _words: &[String]) -> Result<(), String> {
        Ok(())
    }

    /// The files the job's output goes to, followed into the log.
    fn output_files(&self, ctx: &JobContext) -> Vec<PathBuf>;

    /// How the end of a job is known.
    fn end_of_job(&self) -> EndOfJob;

    /// Whether the end of a job is learned late, by polling: `sbatch --wait` looks at the job
    /// only after 2, 8, then 32 s, and Cobalt's `qstat` is asked every second. Then the job's
    /// script writes its exit status to a file as it exits, and the engine asks the scheduler
    /// for the job's record the moment that file appears.
    fn polls_for_end(&self) -> bool {
        false
    }

    /// For a submit command that waits ([`EndOfJob::SubmitWaits`]) by polling: the exit code
    /// it will report for a job the scheduler recorded as `record`, or `None` while the record
    /// does not show a finished job. A step whose job is confirmed finished this way ends
    /// without waiting for the submit command's next look.
    fn waited_code(&self, _record: &JobRecord) -> Option<i32> {
        None
    }

    /// Whether the submit command reads the script from its standard input. Then the script,
    /// which holds the job's secrets, is never written to the shared file system: it reaches
    /// the scheduler's own spool (readable by the job's owner and the admins) and the node.
    fn script_on_stdin(&self) -> bool;

    /// The submit command for one step.
    fn submit(&self, step: &StepRequest<'_>) -> Invocation;

    /// The job id, when `line` of the submit command's standard output announces it.
    fn job_id(&self, line: &str) -> Option<String>;

    /// The command that cancels job `id`.
    fn cancel(&self, id: &str) -> Invocation;

    /// The command asked whether job `id` is still queued: after a cancel, and for
    /// [`EndOfJob::StatusPoll`] until it has ended.
    fn presence_query(&self, id: &str) -> Invocation;

    /// What the answer to [`Scheduler::presence_query`] means.
    fn presence(&self, answer: &CapturedOutput) -> Presence;

    /// One status query about all of `ids`, for `wait = "batched"`; `None` where the
    /// scheduler has none, and its jobs are waited for by its submit command.
    fn batched_presence_query(&self, _ids: &[String]) -> Option<Invocation> {
        None
    }

    /// What the answer to [`Scheduler::batched_presence_query`] says of each of `ids`, in
    /// their order.
    fn batched_presence(&self, ids: &[String], _answer: &CapturedOutput) -> Vec<Presence> {
        vec![Presence::Unknown; ids.len()]
    }

    /// Where the scheduler's record of finished job `id` is read.
    fn record_source(&self, ctx: &JobContext, id: &str) -> RecordSource;

    /// The step's outcome from how the submit command ended and the scheduler's record
    /// (`None` when none could be had).
    fn verdict(
        &self,
        ended: &Ended<'_>,
        record: Option<&JobRecord>,
    ) -> Result<StepOutcome, JobFailure>;

    /// Whose fault a refused submission is, from the submit command's standard error.
    fn refusal(&self, stderr: &[String]) -> Refusal;
}

/// Whose fault a refused submission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The user's parameters ask for what the cluster cannot give (a partition that does not
    /// exist, too much memory): a script failure the user can fix.
    User,
    /// The scheduler cannot be used from here (no controller, no configuration, refused
    /// credentials): a system failure for the admin.
    System,
    /// The controller is busy or did not answer in time, and the scheduler's own client does
    /// not try again: batchci does, `submit_retries` times.
    Transient,
}

/// Whose fault a refusal is, from the scheduler's words: `system` words (the scheduler
/// cannot be used from here) first, then `transient` ones (a busy controller); anything else
/// is what the user asked for.
pub(crate) fn classify_refusal(stderr: &[String], system: &[&str], transient: &[&str]) -> Refusal {
    let said = |words: &[&str]| {
        stderr
            .iter()
            .any(|line| words.iter().any(|w| line.contains(w)))
    };
    if said(system) {
        Refusal::System
    } else if said(transient) {
        Refusal::Transient
    } else {
        Refusal::User
    }
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

impl BatchBackend {
    /// Submits the step once and follows it to its end, its cancel, or its refusal.
    async fn submit_and_follow(
        &mut self,
        ctx: &JobContext,
        script: &[u8],
        cancel: &CancellationToken,
        batched: bool,
    ) -> Result<Attempt, JobFailure> {
        let scheduler = self.scheduler;
        let outputs = scheduler.output_files(ctx);
        for output in &outputs {
            let _ = ctx.as_user(|| std::fs::remove_file(output));
        }
        // The script's own word that it has ended, for a scheduler that learns it late; a
        // script that is not a shell's cannot be given the trap that writes it.
        let marker = (scheduler.polls_for_end() && is_shell_script(script))
            .then(|| ctx.dirs.tmp_dir.join(EXIT_MARKER));
        let prologue = match &marker {
            Some(marker) => {
                let _ = ctx.as_user(|| std::fs::remove_file(marker));
                exit_trap(marker)
            }
            None => Vec::new(),
        };
        let script_file = if scheduler.script_on_stdin() {
            None
        } else {
            Some(write_script_file(ctx, script, &prologue)?)
        };
        let script = if script_file.is_none() {
            with_prologue(script, &prologue)
        } else {
            Vec::new()
        };
        let end_of_job = if batched {
            EndOfJob::StatusPoll
        } else {
            scheduler.end_of_job()
        };
        let (program, args) = scheduler.submit(&StepRequest {
            ctx,
            script: script_file.as_deref(),
            user_args: &self.user_args,
            wait: !batched,
        });
        let mut spec = ctx.scheduler_command(program, args);
        if script_file.is_none() {
            spec = spec.input(crate::command::Input::Piped);
        }
        ctx.log.info(&format!("$ {}", spec.display()));
        if !ctx.runner.batch.command_delay.is_zero() {
            tokio::time::sleep(ctx.runner.batch.command_delay).await;
        }
        let mut child = spec
            .spawn_piped()
            .map_err(|e| JobFailure::system(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            // A submit command that exits before reading it all has refused the job; its
            // words say why.
            let _ = stdin.write_all(&script).await;
            drop(stdin);
        }

        let (id_tx, mut id_rx) = tokio::sync::watch::channel(None::<String>);
        let stderr_lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (read_all_tx, mut read_all_rx) = tokio::sync::watch::channel(false);
        let readers = read_submit_output(
            ctx,
            scheduler,
            child.stdout.take(),
            child.stderr.take(),
            id_tx,
            stderr_lines.clone(),
            read_all_tx,
        );

        let (finished_tx, finished_rx) = tokio::sync::watch::channel(None::<Drain>);
        // The scheduler's record, when the end was confirmed by asking for it.
        let confirmed = Mutex::new(None::<JobRecord>);
        let early_end = {
            let mut id_rx = id_rx.clone();
            let marker = marker.clone();
            async move {
                // Batched, the status rounds hear the script's word themselves.
                let Some(marker) = marker.filter(|_| end_of_job == EndOfJob::SubmitWaits) else {
                    return std::future::pending().await;
                };
                let Ok(id) = id_rx
                    .wait_for(Option::is_some)
                    .await
                    .map(|id| id.clone().unwrap_or_default())
                else {
                    return std::future::pending().await;
                };
                script_ended(ctx, Some(&marker)).await;
                confirm_end(ctx, scheduler, &id).await
            }
        };
        let waiter = async {
            let ended = tokio::select! {
                (code, record) = early_end => {
                    // The submit command has nothing left to say: it would only look again.
                    let _ = crate::command::terminate_group(&mut child, SUBMIT_STOP_GRACE).await;
                    *confirmed.lock().unwrap_or_else(|e| e.into_inner()) = Some(record);
                    Some(Some(code))
                },
                code = async {
                    let code = crate::command::exit_code_of(child.wait().await);
                    // The job id is known for sure once the submit command's output has been
                    // read to its end; a command that left it open to a child of its own gets
                    // a moment only.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        read_all_rx.wait_for(|done| *done),
                    )
                    .await;
                    let id = id_rx.borrow().clone();
                    match (end_of_job, code, id) {
                        (EndOfJob::StatusPoll, Some(0), Some(id)) if batched => {
                            let record = wait_in_rounds(ctx, scheduler, &id, marker.as_deref()).await;
                            *confirmed.lock().unwrap_or_else(|e| e.into_inner()) = record;
                        }
                        (EndOfJob::StatusPoll, Some(0), Some(id)) => {
                            wait_until_gone(ctx, scheduler, &id, marker.as_deref()).await;
                        }
                        _ => {}
                    }
                    code
                } => Some(code),
                () = cancel.cancelled() => {
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
                    None
                }
            };
            let submitted = id_rx.borrow().is_some();
            // No job, no output file: a refused submission fails at once.
            let drain = if ended.is_some() && submitted {
                Drain::UntilSettled
            } else {
                Drain::Now
            };
            let _ = finished_tx.send(Some(drain));
            ended
        };
        let tail_options = TailOptions {
            poll_interval: ctx.runner.batch.poll_interval,
            nfs_timeout: ctx.runner.batch.nfs_timeout,
            ..TailOptions::default()
        };
        let tails = outputs.iter().map(|output| {
            let log = ctx.log.clone();
            let mut finished = finished_rx.clone();
            let options = &tail_options;
            async move {
                let drain = async move {
                    match finished.wait_for(Option::is_some).await {
                        Ok(drain) => drain.unwrap_or(Drain::Now),
                        Err(_) => Drain::Now,
                    }
                };
                follow(output, move |bytes| log.write(bytes), drain, options).await
            }
        });
        let (ended, summaries, ()) =
            tokio::join!(waiter, futures::future::join_all(tails), readers);
        let id = id_rx.borrow().clone();
        self.submitted = id.clone();
        let stderr = std::mem::take(&mut *stderr_lines.lock().unwrap_or_else(|e| e.into_inner()));
        let Some(code) = ended else {
            return Ok(Attempt::Cancelled);
        };
        let Some(id) = id else {
            return Ok(Attempt::Refused(Refused {
                program,
                code,
                stderr,
            }));
        };
        for (output, summary) in outputs.iter().zip(&summaries) {
            if summary.missing {
                ctx.log.warning(&format!(
                    "the output file {} of {} job {id} never appeared (waited {:?} after the job ended)",
                    output.display(),
                    scheduler.name(),
                    ctx.runner.batch.nfs_timeout
                ));
            }
        }
        Ok(Attempt::Ended {
            id,
            code: code.unwrap_or(1),
            stderr,
            record: confirmed.into_inner().unwrap_or_else(|e| e.into_inner()),
        })
    }
}

/// Writes the step script for a scheduler that runs it from a file: in the job's private
/// scratch directory, mode 0700. It holds the job's secrets, so its first command removes it
/// (bash goes on reading the open file); a job that never starts leaves it to the end of the
/// job, or to crash recovery, which both remove the directory.
fn write_script_file(
    ctx: &JobContext,
    script: &[u8],
    prologue: &[u8],
) -> Result<PathBuf, JobFailure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = ctx.dirs.tmp_dir.join("step_script");
    let prologue = [SELF_REMOVAL, prologue].concat();
    ctx.as_user(|| {
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&path)
            .and_then(|mut file| file.write_all(&with_prologue(script, &prologue)))
    })
    .map_err(|e| JobFailure::system(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// The first command of a step script run from a file.
const SELF_REMOVAL: &[u8] = b"rm -f -- \"$0\"\n";

/// The file in the job's scratch directory where a step's script writes its exit status as it
/// exits.
const EXIT_MARKER: &str = "step_exit";

/// `script` with `prologue` as its first commands, after its `#!` line.
fn with_prologue(script: &[u8], prologue: &[u8]) -> Vec<u8> {
    let (shebang, body) = match script.iter().position(|b| *b == b'\n') {
        Some(end) if script.starts_with(b"#!") => script.split_at(end + 1),
        _ => (&b""[..], script),
    };
    [shebang, prologue, body].concat()
}

/// Whether `script` runs in a POSIX shell (no `#!` line, or one naming sh, bash, dash, ksh or
/// zsh, directly or through `env`): only a shell takes the exit trap.
fn is_shell_script(script: &[u8]) -> bool {
    let Some(line) = script.strip_prefix(b"#!") else {
        return true;
    };
    let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let mut program = words.next().unwrap_or_default();
    if program.rsplit('/').next() == Some("env") {
        program = words.find(|w| !w.starts_with('-')).unwrap_or_default();
    }
    matches!(
        program.rsplit('/').next(),
        Some("sh" | "bash" | "dash" | "ksh" | "zsh")
    )
}

/// The command that makes a shell script write its exit status to `marker` as it exits,
/// whatever way it exits. A trap on EXIT leaves the script's exit status as it was; `>|`
/// writes even under a user's `set -o noclobber`. A script that sets its own EXIT trap
/// replaces this one: its end is then learned from the scheduler alone, as without it.
fn exit_trap(marker: &Path) -> Vec<u8> {
    let write = format!(
        "printf '%s\\n' \"$?\" >| {}",
        shell_words::quote(&marker.to_string_lossy())
    );
    format!("trap {} EXIT\n", shell_words::quote(&write)).into_bytes()
}

/// Reads the submit command's output into the log as it comes: each line scanned for the job
/// id (recorded durably the moment it appears); standard error kept for a refusal's verdict.
/// An interactive command's output is the job's, written as it is (any bytes); a batch
/// command's standard output is batchci's to show as its own lines. Says on `read_all` when
/// both streams have reached their end.
fn read_submit_output(
    ctx: &JobContext,
    scheduler: &'static dyn Scheduler,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    id_tx: tokio::sync::watch::Sender<Option<String>>,
    stderr_lines: Arc<Mutex<Vec<String>>>,
    read_all: tokio::sync::watch::Sender<bool>,
) -> impl std::future::Future<Output = ()> + use<> {
    let log = ctx.log.clone();
    let record = ctx.state.clone().map(|store| (store, ctx.record()));
    let interactive = scheduler.end_of_job() == EndOfJob::Interactive;
    let noticed = move |line: &str| {
        if id_tx.borrow().is_some() {
            return;
        }
        if let Some(id) = scheduler.job_id(line) {
            if let Some((store, mut submission)) = record.clone() {
                submission.scheduler_job_id = id.clone();
                if let Err(error) = store.record(&submission) {
                    log.warning(&format!(
                        "cannot record {} job {id}: {error}",
                        scheduler.name()
                    ));
                }
            }
            let _ = id_tx.send(Some(id));
        }
    };
    let stdout_log = ctx.log.clone();
    let stderr_log = ctx.log.clone();
    async move {
        let out = async {
            let Some(stdout) = stdout else { return };
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut line).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&line);
                noticed(text.trim_end_matches(['\n', '\r']));
                if interactive {
                    stdout_log.write(&line);
                } else {
                    stdout_log.info(text.trim_end_matches(['\n', '\r']));
                }
                line.clear();
            }
        };
        let err = async {
            let Some(stderr) = stderr else { return };
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut line).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                noticed(&text);
                stderr_log.write(&line);
                if !line.ends_with(b"\n") {
                    stderr_log.write(b"\n");
                }
                stderr_lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(text);
                line.clear();
            }
        };
        tokio::join!(out, err);
        let _ = read_all.send(true);
    }
}

/// How one submission ended.
enum Attempt {
    /// The job ran; `code` is the submit command's exit code, `stderr` what it said.
    Ended {
        id: String,
        code: i32,
        stderr: Vec<String>,
        /// The scheduler's record, when it confirmed the end before the submit command did.
        record: Option<JobRecord>,
    },
    /// Cancelled (and the scheduler job, if any, gone).
    Cancelled,
    /// The scheduler did not accept the job.
    Refused(Refused),
}

/// A submission the scheduler did not accept, in its own words.
struct Refused {
    program: &'static str,
    /// The submit command's exit code (`None`: it was killed).
    code: Option<i32>,
    /// Its standard error, line by line (already in the job log).
    stderr: Vec<String>,
}

impl Refused {
    /// The line that says why: the last error line, without the `sbatch: error: ` prefix.
    fn summary(&self) -> String {
        let prefix = |kind: &str| format!("{}: {kind}: ", self.program);
        let line = self
            .stderr
            .iter()
            .rev()
            .find(|l| l.contains("error") || l.contains("fatal"))
            .or(self.stderr.last())
            .map(String::as_str)
            .unwrap_or("");
        let line = line.trim();
        line.strip_prefix(&prefix("error"))
            .or_else(|| line.strip_prefix(&prefix("fatal")))
            .unwrap_or(line)
            .to_string()
    }

    fn failure(&self, kind: Refusal, retries: u32) -> JobFailure {
        let code = self
            .code
            .map_or("no exit code".to_string(), |c| format!("exit code {c}"));
        let why = match self.summary() {
            summary if summary.is_empty() => "without saying why".to_string(),
            summary => summary,
        };
        let tries = match retries {
            0 => String::new(),
            n => format!(" after {} attempts", n + 1),
        };
        let message = format!("{} refused the job{tries} ({code}): {why}", self.program);
        match kind {
            Refusal::User if self.code.is_some() => JobFailure::script(message, self.code),
            _ => JobFailure::system(message),
        }
    }
}

impl Backend for BatchBackend {
    async fn prepare(
        &mut self,
        ctx: &JobContext,
        _cancel: &CancellationToken,
    ) -> Result<(), JobFailure> {
        let options = self.scheduler.submit_options();
        if let Some((variable, text)) = ctx.user_parameters() {
            self.user_args = crate::args::user_parameters(
                options,
                &variable,
                &text,
                ctx.runner.batch.allow_illegal_args,
            )
            .map_err(|e| JobFailure::script(e.to_string(), None))?;
            if !ctx.runner.batch.allow_illegal_args {
                self.scheduler
                    .check_parameters(&self.user_args)
                    .map_err(|problem| {
                        JobFailure::script(format!("{variable}: {problem}"), None)
                    })?;
            }
        }
        let path = ctx
            .command_env()
            .into_iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v)
            .unwrap_or_default();
        for program in self.scheduler.programs() {
            if crate::command::resolve(program, &path).is_none() {
                return Err(JobFailure::system(format!(
                    "{program} is not on PATH ({}); install the {} client or set scheduler_bin under [runners.batch]",
                    path.to_string_lossy(),
                    self.scheduler.name()
                )));
            }
        }
        Ok(())
    }

    async fn run_step(
        &mut self,
        ctx: &JobContext,
        script: &[u8],
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, JobFailure> {
        let scheduler = self.scheduler;
        let batch = &ctx.runner.batch;
        let batched = batched(ctx, scheduler);
        let mut delay = batch.submit_retry_delay;
        let mut retries = 0;
        loop {
            let refusal = match self.submit_and_follow(ctx, script, cancel, batched).await? {
                Attempt::Cancelled => return Ok(StepOutcome::Cancelled),
                Attempt::Ended {
                    id,
                    code,
                    stderr,
                    record,
                } => {
                    let record = match record {
                        Some(record) => Some(record),
                        None => job_record(ctx, scheduler, &id).await,
                    };
                    let code = if batched {
                        // The submit command only submitted: the record alone says how the
                        // job ended.
                        match record.as_ref().and_then(|r| scheduler.waited_code(r)) {
                            Some(code) => code,
                            None => {
                                return Err(JobFailure::system(format!(
                                    "{} job {id} has left the queue, but its record says no end ({})",
                                    scheduler.name(),
                                    record.map_or("no record".to_string(), |r| format!(
                                        "state {}",
                                        r.state
                                    ))
                                )));
                            }
                        }
                    } else {
                        code
                    };
                    let ended = Ended {
                        id: &id,
                        code,
                        stderr: &stderr,
                    };
                    return scheduler.verdict(&ended, record.as_ref());
                }
                Attempt::Refused(refusal) => refusal,
            };
            let kind = scheduler.refusal(&refusal.stderr);
            if kind == Refusal::Transient && retries < batch.submit_retries {
                retries += 1;
                ctx.log.warning(&format!(
                    "{} refused the job for a passing reason ({}); retry {retries} of {} in {delay:?}",
                    refusal.program,
                    refusal.summary(),
                    batch.submit_retries,
                ));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => return Ok(StepOutcome::Cancelled),
                }
                delay = delay.saturating_mul(2).min(MAX_RETRY_DELAY);
                continue;
            }
            return Err(refusal.failure(kind, retries));
        }
    }

    /// The scheduler job has ended or been cancelled by now, and the job's scratch directory
    /// is gone: the record that names them is no longer needed.
    async fn cleanup(&mut self, ctx: &JobContext) {
        if let Some(store) = &ctx.state {
            store.remove(&ctx.runner.url, ctx.job.id);
        }
        self.submitted = None;
    }
}

/// Whether this runner waits for `scheduler`'s jobs in status rounds: `wait = "batched"` and
/// a scheduler whose submit command would otherwise wait, with a query for many jobs.
fn batched(ctx: &JobContext, scheduler: &dyn Scheduler) -> bool {
    ctx.runner.batch.wait == crate::config::BatchWait::Batched
        && scheduler.end_of_job() == EndOfJob::SubmitWaits
        && scheduler.batched_presence_query(&[]).is_some()
}

/// Waits in the runner's status rounds until job `id` has left the queue. When the job's
/// script writes `marker` as it exits, the job's record is asked for at once instead (and
/// returned), racing the rounds.
async fn wait_in_rounds(
    ctx: &JobContext,
    scheduler: &dyn Scheduler,
    id: &str,
    marker: Option<&Path>,
) -> Option<JobRecord> {
    use futures::FutureExt;
    let interval = ctx.runner.batch.status_interval.max(LEAVE_POLL);
    let rounds = super::status_rounds::StatusRounds::of(ctx, scheduler);
    let mut registration = rounds.register(id);
    let confirmed = async {
        script_ended(ctx, marker).await;
        confirm_end(ctx, scheduler, id).await.1
    }
    .fuse();
    tokio::pin!(confirmed);
    loop {
        if *registration.gone.borrow() {
            return None;
        }
        tokio::select! {
            changed = registration.gone.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            record = &mut confirmed => return Some(record),
            () = tokio::time::sleep(rounds.until_next_round(interval)) => {
                rounds.lead(ctx, scheduler, interval).await;
            }
        }
    }
}

/// The scheduler's record of job `id`, from its queries or the file it writes.
async fn job_record(ctx: &JobContext, scheduler: &dyn Scheduler, id: &str) -> Option<JobRecord> {
    match scheduler.record_source(ctx, id) {
        RecordSource::Queries(queries) => {
            for query in queries {
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
        RecordSource::File { path, parse } => {
            // Written by the scheduler when the job ends: on NFS it may show up late.
            let deadline = tokio::time::Instant::now() + ctx.runner.batch.nfs_timeout;
            loop {
                if let Ok(text) = std::fs::read_to_string(&path)
                    && let Some(record) = parse(&text)
                {
                    return Some(record);
                }
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(ctx.runner.batch.poll_interval.max(LEAVE_POLL)).await;
            }
        }
    }
}

/// Resolves once the job's script has written `marker` as it exits; never without one.
async fn script_ended(ctx: &JobContext, marker: Option<&Path>) {
    match marker {
        Some(marker) => {
            let status = crate::tail::written_line(marker, ctx.runner.batch.poll_interval).await;
            tracing::debug!(status, "the job's script has ended; asking the scheduler");
        }
        None => std::future::pending().await,
    }
}

/// After job `id`'s script said that it has ended: asks the scheduler's record until it shows
/// the job finished, and returns the exit code the submit command will report with that
/// record. The scheduler may take a moment to move the job out of its running states, so the
/// pauses start short and grow to a second; a scheduler that never confirms leaves the end to
/// the submit command, which this races against.
async fn confirm_end(ctx: &JobContext, scheduler: &dyn Scheduler, id: &str) -> (i32, JobRecord) {
    if !matches!(scheduler.record_source(ctx, id), RecordSource::Queries(_)) {
        return std::future::pending().await;
    }
    // The script writes the file before it exits: asked at once, the scheduler would still
    // say it runs.
    let mut pause = FIRST_CONFIRM_PAUSE;
    loop {
        tokio::time::sleep(pause).await;
        pause = pause.saturating_mul(2).min(STATUS_POLL);
        if let Some(record) = job_record(ctx, scheduler, id).await
            && let Some(code) = scheduler.waited_code(&record)
        {
            return (code, record);
        }
    }
}

/// The pause before the first look at a job whose script has ended, and between the first two:
/// the controller moves a job out of its running states some milliseconds after the script
/// exits.
const FIRST_CONFIRM_PAUSE: Duration = Duration::from_millis(50);

/// Waits until a status query that succeeds no longer lists job `id`. A query that fails
/// (a time-out, an error) is no news: it is asked again after a pause that doubles, up to a
/// minute, and said in the log once. When the job's script writes `marker` as it exits, the
/// next query goes at once, and the ones after it come quickly.
async fn wait_until_gone(
    ctx: &JobContext,
    scheduler: &dyn Scheduler,
    id: &str,
    marker: Option<&Path>,
) {
    use futures::FutureExt;
    let interval = if ctx.runner.batch.command_delay.is_zero() {
        STATUS_POLL
    } else {
        ctx.runner.batch.command_delay
    };
    let script_ended = script_ended(ctx, marker).fuse();
    tokio::pin!(script_ended);
    let mut ended = false;
    let mut pause = interval;
    let mut said = false;
    loop {
        let (program, args) = scheduler.presence_query(id);
        let spec = ctx.scheduler_command(program, args);
        match spec
            .output()
            .await
            .map(|answer| (scheduler.presence(&answer), answer))
        {
            Ok((Presence::Gone, _)) => return,
            Ok((Presence::Queued, _)) if ended => {
                pause = pause.saturating_mul(2).min(interval);
            }
            Ok((Presence::Queued, _)) => pause = interval,
            Ok((Presence::Unknown, answer)) => {
                if !said {
                    ctx.log.warning(&format!(
                        "{} failed ({}); asking again, the job is not taken as ended",
                        spec.display(),
                        answer.stderr_text().trim()
                    ));
                    said = true;
                }
                pause = pause.saturating_mul(2).min(Duration::from_secs(60));
            }
            Err(error) => {
                if !said {
                    ctx.log.warning(&format!("{error}; asking again"));
                    said = true;
                }
                pause = pause.saturating_mul(2).min(Duration::from_secs(60));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = &mut script_ended, if !ended => {
                ended = true;
                pause = FIRST_CONFIRM_PAUSE;
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prologue_goes_after_the_shebang_line_or_first_without_one() {
        assert_eq!(
            with_prologue(b"#!/bin/bash\necho hi\n", b"trap x EXIT\n"),
            b"#!/bin/bash\ntrap x EXIT\necho hi\n"
        );
        assert_eq!(
            with_prologue(b"echo hi\n", b"trap x EXIT\n"),
            b"trap x EXIT\necho hi\n"
        );
    }

    #[test]
    fn only_shell_scripts_take_the_exit_trap() {
        for shell in [
            &b"#!/bin/bash\n"[..],
            b"#!/bin/sh -e\n",
            b"#!/usr/bin/env bash\n",
            b"#!/usr/bin/env -S zsh -f\n",
            b"echo no shebang\n",
        ] {
            assert!(is_shell_script(shell), "{}", String::from_utf8_lossy(shell));
        }
        for other in [&b"#!/usr/bin/python3\n"[..], b"#!/usr/bin/env perl\n"] {
            assert!(
                !is_shell_script(other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    /// The trap writes the script's own exit status, and leaves that status as it was; a path
    /// with spaces and quotes survives the quoting. A script ended by a signal still writes
    /// the file (with the status of its last command: the scheduler's record, not this file,
    /// says how the job ended).
    #[test]
    fn the_exit_trap_records_the_status_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("it's a dir").join("step_exit");
        std::fs::create_dir(marker.parent().unwrap()).unwrap();
        for (body, status, written) in [
            ("true\n", 0, "0\n"),
            ("exit 7\n", 7, "7\n"),
            ("set -o errexit\nfalse\necho never\n", 1, "1\n"),
            ("set -o noclobber\necho x > /dev/null\n", 0, "0\n"),
            ("kill -TERM $$\n", 143, "0\n"),
        ] {
            let _ = std::fs::remove_file(&marker);
            let script = with_prologue(
                format!("#!/bin/bash\n{body}").as_bytes(),
                &exit_trap(&marker),
            );
            let output = std::process::Command::new("bash")
                .arg("-c")
                .arg(String::from_utf8(script).unwrap())
                .output()
                .unwrap();
            assert_eq!(output.status.code().unwrap_or(128 + 15), status, "{body:?}");
            assert_eq!(
                std::fs::read_to_string(&marker).unwrap(),
                written,
                "{body:?}"
            );
        }
    }
}
