//! `slurm`: the step script is a batch job, `sbatch --wait`.
//!
//! ```text
//! sbatch --wait --output=<tmp>/slurm-<job>.out --job-name=ci-job-<job> [user parameters] <script>
//! ```
//!
//! The output file is followed live into the job log. The exit status of `sbatch --wait` is the
//! job's, and it is checked against Slurm's own record (`scontrol show job`, then `sacct`),
//! because `sbatch --wait` says 0 for a job cancelled while pending and 1 for any signal. A
//! cancel, abort or timeout runs `scancel` and waits until the job has left the queue.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::{Backend, JobContext, JobFailure, StepOutcome};
use crate::args::{CommandOptions, OptionSpec, Takes};
use crate::state::Submission;
use crate::tail::{Drain, TailOptions, follow};

/// sbatch's options (Slurm 22.05 `sbatch --help`, plus the undocumented ones of
/// `src/common/slurm_opt.c`), and those batchci sets itself. `--uid`/`--gid` are refused
/// because they would let a job choose whom it runs as when batchci submits as root.
pub const SBATCH_OPTIONS: CommandOptions = CommandOptions {
    program: "sbatch",
    options: &[
        OptionSpec::both('a', "array", Takes::Value),
        OptionSpec::both('A', "account", Takes::Value),
        OptionSpec::long("acctg-freq", Takes::Value),
        OptionSpec::long("batch", Takes::Value),
        OptionSpec::long("bb", Takes::Value),
        OptionSpec::long("bbf", Takes::Value),
        OptionSpec::both('b', "begin", Takes::Value),
        OptionSpec::long("comment", Takes::Value),
        OptionSpec::long("cpu-freq", Takes::Value),
        OptionSpec::both('c', "cpus-per-task", Takes::Value),
        OptionSpec::both('d', "dependency", Takes::Value),
        OptionSpec::long("deadline", Takes::Value),
        OptionSpec::long("delay-boot", Takes::Value),
        OptionSpec::both('D', "chdir", Takes::Value),
        OptionSpec::both('e', "error", Takes::Value),
        OptionSpec::long("export", Takes::OptionalValue),
        OptionSpec::long("export-file", Takes::Value),
        OptionSpec::long("get-user-env", Takes::OptionalValue),
        OptionSpec::long("gid", Takes::Value),
        OptionSpec::long("gres", Takes::Value),
        OptionSpec::long("gres-flags", Takes::Value),
        OptionSpec::both('H', "hold", Takes::Nothing),
        OptionSpec::long("ignore-pbs", Takes::Nothing),
        OptionSpec::both('i', "input", Takes::Value),
        OptionSpec::both('J', "job-name", Takes::Value),
        OptionSpec::both('k', "no-kill", Takes::OptionalValue),
        OptionSpec::long("kill-on-invalid-dep", Takes::Value),
        OptionSpec::both('L', "licenses", Takes::Value),
        OptionSpec::both('M', "clusters", Takes::Value),
        OptionSpec::long("container", Takes::Value),
        OptionSpec::both('m', "distribution", Takes::Value),
        OptionSpec::long("mail-type", Takes::Value),
        OptionSpec::long("mail-user", Takes::Value),
        OptionSpec::long("mcs-label", Takes::Value),
        OptionSpec::both('n', "ntasks", Takes::Value),
        OptionSpec::long("network", Takes::Value),
        OptionSpec::long("nice", Takes::OptionalValue),
        OptionSpec::long("no-requeue", Takes::Nothing),
        OptionSpec::long("ntasks-per-node", Takes::Value),
        OptionSpec::both('N', "nodes", Takes::Value),
        OptionSpec::both('o', "output", Takes::Value),
        OptionSpec::long("open-mode", Takes::Value),
        OptionSpec::both('O', "overcommit", Takes::Nothing),
        OptionSpec::both('p', "partition", Takes::Value),
        OptionSpec::long("parsable", Takes::Nothing),
        OptionSpec::long("power", Takes::Value),
        OptionSpec::long("priority", Takes::Value),
        OptionSpec::long("profile", Takes::Value),
        OptionSpec::long("propagate", Takes::OptionalValue),
        OptionSpec::both('q', "qos", Takes::Value),
        OptionSpec::both('Q', "quiet", Takes::Nothing),
        OptionSpec::long("reboot", Takes::Nothing),
        OptionSpec::long("requeue", Takes::Nothing),
        OptionSpec::both('s', "oversubscribe", Takes::Nothing),
        OptionSpec::both('S', "core-spec", Takes::Value),
        OptionSpec::long("signal", Takes::Value),
        OptionSpec::long("spread-job", Takes::Nothing),
        OptionSpec::long("switches", Takes::Value),
        OptionSpec::long("test-only", Takes::Nothing),
        OptionSpec::long("thread-spec", Takes::Value),
        OptionSpec::both('t', "time", Takes::Value),
        OptionSpec::long("time-min", Takes::Value),
        OptionSpec::long("tres-per-task", Takes::Value),
        OptionSpec::long("uid", Takes::Value),
        OptionSpec::long("use-min-nodes", Takes::Nothing),
        OptionSpec::both('v', "verbose", Takes::Nothing),
        OptionSpec::both('W', "wait", Takes::Nothing),
        OptionSpec::long("wckey", Takes::Value),
        OptionSpec::long("wrap", Takes::Value),
        OptionSpec::long("cluster-constraint", Takes::Value),
        OptionSpec::long("contiguous", Takes::Nothing),
        OptionSpec::both('C', "constraint", Takes::Value),
        OptionSpec::both('F', "nodefile", Takes::Value),
        OptionSpec::long("mem", Takes::Value),
        OptionSpec::long("mincpus", Takes::Value),
        OptionSpec::long("reservation", Takes::Value),
        OptionSpec::long("tmp", Takes::Value),
        OptionSpec::both('w', "nodelist", Takes::Value),
        OptionSpec::both('x', "exclude", Takes::Value),
        OptionSpec::long("exclusive", Takes::OptionalValue),
        OptionSpec::long("mem-per-cpu", Takes::Value),
        OptionSpec::long("sockets-per-node", Takes::Value),
        OptionSpec::long("cores-per-socket", Takes::Value),
        OptionSpec::long("threads-per-core", Takes::Value),
        OptionSpec::both('B', "extra-node-info", Takes::Value),
        OptionSpec::long("ntasks-per-core", Takes::Value),
        OptionSpec::long("ntasks-per-socket", Takes::Value),
        OptionSpec::long("ntasks-per-gpu", Takes::Value),
        OptionSpec::long("hint", Takes::Value),
        OptionSpec::long("mem-bind", Takes::Value),
        OptionSpec::long("cpus-per-gpu", Takes::Value),
        OptionSpec::both('G', "gpus", Takes::Value),
        OptionSpec::long("gpu-bind", Takes::Value),
        OptionSpec::long("gpu-freq", Takes::Value),
        OptionSpec::long("gpus-per-node", Takes::Value),
        OptionSpec::long("gpus-per-socket", Takes::Value),
        OptionSpec::long("gpus-per-task", Takes::Value),
        OptionSpec::long("mem-per-gpu", Takes::Value),
        OptionSpec::both('h', "help", Takes::Nothing),
        OptionSpec::long("usage", Takes::Nothing),
        OptionSpec::both('V', "version", Takes::Nothing),
    ],
    controlled: &[
        "wait", "output", "error", "job-name", "wrap", "parsable", "uid", "gid",
    ],
};

/// The `slurm` backend.
#[derive(Debug, Default)]
pub struct SlurmBackend {
    user_args: Vec<String>,
    submitted: Option<String>,
}

/// How long to wait for sbatch to report the job id after a cancel arrived mid-submission.
const SUBMIT_REPORT_WAIT: Duration = Duration::from_secs(10);

impl Backend for SlurmBackend {
    async fn prepare(&mut self, ctx: &JobContext) -> Result<(), JobFailure> {
        if let Some((variable, text)) = ctx.user_parameters() {
            self.user_args = crate::args::user_parameters(
                &SBATCH_OPTIONS,
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
        if crate::command::resolve("sbatch", &path).is_none() {
            return Err(JobFailure::system(format!(
                "sbatch is not on PATH ({}); install the Slurm client or set scheduler_bin under [runners.batch]",
                path.to_string_lossy()
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
        let output = ctx.dirs.tmp_dir.join(format!("slurm-{}.out", ctx.job.id));
        let _ = std::fs::remove_file(&output);
        let mut args = vec![
            "--wait".to_string(),
            format!("--output={}", output.display()),
            format!("--job-name=ci-job-{}", ctx.job.id),
        ];
        args.extend(self.user_args.iter().cloned());
        args.push(script.display().to_string());
        let spec = ctx.scheduler_command("sbatch", args);
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
                .map(|store| (store, submission_template(ctx)));
            let job_id = job_id.clone();
            let stderr_log = ctx.log.clone();
            let stderr_copy = stderr_text.clone();
            async move {
                let out = async {
                    let Some(stdout) = stdout else { return };
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(id) = parse_submitted(&line) {
                            if let Some((store, mut submission)) = record.clone() {
                                submission.scheduler_job_id = id.clone();
                                if let Err(error) = store.record(&submission) {
                                    log.warning(&format!("cannot record Slurm job {id}: {error}"));
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
                        cancel_and_wait(ctx, id).await;
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
                    "sbatch did not submit the job (exit code {}){}",
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
                "the output file {} of Slurm job {id} never appeared (waited {:?} after the job ended)",
                output.display(),
                ctx.runner.batch.nfs_timeout
            ));
        }
        let code = code.unwrap_or(1);
        match slurm_record(ctx, &id).await {
            Some(record) => judge(&id, code, &record),
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

fn submission_template(ctx: &JobContext) -> Submission {
    Submission {
        gitlab_url: ctx.runner.url.clone(),
        gitlab_job_id: ctx.job.id,
        job_token: ctx.job.token.clone(),
        runner_name: ctx.runner.name.clone(),
        executor: crate::config::ExecutorKind::Slurm,
        scheduler_job_id: String::new(),
        pid: std::process::id(),
        submitted_at: chrono::Utc::now().to_rfc3339(),
    }
}

/// `Submitted batch job 123` (optionally `... on cluster X`) → `123`.
pub fn parse_submitted(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("Submitted batch job ")?;
    let id = rest.split_whitespace().next()?;
    id.chars()
        .all(|c| c.is_ascii_digit())
        .then(|| id.to_string())
}

/// What Slurm recorded about a finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmRecord {
    /// `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, `NODE_FAIL`, `OUT_OF_MEMORY`, ...
    pub state: String,
    /// The exit code part of `ExitCode=<exit>:<signal>`.
    pub exit: i32,
    /// The signal part.
    pub signal: i32,
}

/// Parses `scontrol show job -o` output.
pub fn parse_scontrol(text: &str) -> Option<SlurmRecord> {
    let mut state = None;
    let mut exit_code = None;
    for field in text.split_whitespace() {
        if let Some(value) = field.strip_prefix("JobState=") {
            state = Some(value.to_string());
        } else if let Some(value) = field.strip_prefix("ExitCode=") {
            exit_code = parse_exit_code(value);
        }
    }
    let (exit, signal) = exit_code?;
    Some(SlurmRecord {
        state: state?,
        exit,
        signal,
    })
}

/// Parses the allocation line of `sacct -X -n -P -o State,ExitCode`.
pub fn parse_sacct(text: &str) -> Option<SlurmRecord> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let (state, code) = line.trim().split_once('|')?;
    let (exit, signal) = parse_exit_code(code)?;
    Some(SlurmRecord {
        state: state.split_whitespace().next()?.to_string(),
        exit,
        signal,
    })
}

fn parse_exit_code(value: &str) -> Option<(i32, i32)> {
    let (exit, signal) = value.split_once(':')?;
    Some((exit.parse().ok()?, signal.parse().ok()?))
}

async fn slurm_record(ctx: &JobContext, id: &str) -> Option<SlurmRecord> {
    let scontrol = ctx.scheduler_command("scontrol", ["show", "job", "-o", id]);
    if let Ok(output) = scontrol.output().await
        && output.code == 0
        && let Some(record) = parse_scontrol(&output.stdout_text())
    {
        return Some(record);
    }
    let sacct = ctx.scheduler_command(
        "sacct",
        ["-j", id, "-X", "-n", "-P", "-o", "State,ExitCode"],
    );
    match sacct.output().await {
        Ok(output) if output.code == 0 => parse_sacct(&output.stdout_text()),
        _ => None,
    }
}

/// Decides the step's outcome from sbatch's exit code and Slurm's record.
pub fn judge(id: &str, code: i32, record: &SlurmRecord) -> Result<StepOutcome, JobFailure> {
    let state = record.state.as_str();
    match state {
        "COMPLETED" => Ok(StepOutcome::Exited(code)),
        "FAILED" if record.exit != 0 => Ok(StepOutcome::Exited(record.exit)),
        "FAILED" => Err(JobFailure::script(
            format!(
                "Slurm job {id} failed: killed by signal {} (state FAILED)",
                record.signal
            ),
            Some(code.max(1)),
        )),
        "TIMEOUT" => Err(JobFailure::script(
            format!("Slurm job {id} reached its time limit (state TIMEOUT)"),
            Some(code.max(1)),
        )),
        "OUT_OF_MEMORY" => Err(JobFailure::script(
            format!("Slurm job {id} ran out of memory (state OUT_OF_MEMORY)"),
            Some(code.max(1)),
        )),
        "CANCELLED" => Err(JobFailure::system(format!(
            "Slurm job {id} was cancelled outside batchci (state CANCELLED); sbatch --wait said {code}"
        ))),
        "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" | "DEADLINE" => {
            Err(JobFailure::system(format!("Slurm job {id} ended {state}")))
        }
        _ if code != 0 => Ok(StepOutcome::Exited(code)),
        other => Err(JobFailure::system(format!(
            "Slurm job {id} ended in state {other} although sbatch --wait said 0"
        ))),
    }
}

/// `scancel`, then wait until the job has left the queue (bounded by the kill timeout).
async fn cancel_and_wait(ctx: &JobContext, id: &str) {
    let scancel = ctx.scheduler_command("scancel", [id]);
    ctx.log.info(&format!("$ {}", scancel.display()));
    match scancel.output().await {
        Ok(output) if output.code != 0 => ctx.log.warning(&format!(
            "scancel {id} exited {}: {}",
            output.code,
            output.stderr_text().trim()
        )),
        Err(error) => ctx.log.warning(&format!("scancel {id} failed: {error}")),
        Ok(_) => {}
    }
    let deadline = tokio::time::Instant::now() + ctx.kill_timeout;
    loop {
        let squeue = ctx.scheduler_command("squeue", ["-h", "-j", id, "-o", "%T"]);
        match squeue.output().await {
            // Empty: finished but still known; error: already purged. Either way it is gone.
            Ok(output) if output.code != 0 || output.stdout_text().trim().is_empty() => return,
            Ok(_) | Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            ctx.log.warning(&format!(
                "Slurm job {id} is still in the queue {:?} after scancel",
                ctx.kill_timeout
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_id_is_read_from_sbatchs_line() {
        assert_eq!(parse_submitted("Submitted batch job 42"), Some("42".into()));
        assert_eq!(
            parse_submitted("Submitted batch job 42 on cluster c1"),
            Some("42".into())
        );
        assert_eq!(parse_submitted("sbatch: error: nope"), None);
        assert_eq!(parse_submitted("Submitted batch job x"), None);
    }

    #[test]
    fn records_are_read_from_scontrol_and_sacct() {
        let line = "JobId=7 JobName=ci-job-1 UserId=root(0) JobState=CANCELLED Reason=None ExitCode=0:15 RunTime=00:00:02";
        assert_eq!(
            parse_scontrol(line),
            Some(SlurmRecord {
                state: "CANCELLED".into(),
                exit: 0,
                signal: 15
            })
        );
        assert_eq!(
            parse_sacct("CANCELLED by 0|0:15\n"),
            Some(SlurmRecord {
                state: "CANCELLED".into(),
                exit: 0,
                signal: 15
            })
        );
        assert_eq!(parse_scontrol("garbage"), None);
        assert_eq!(parse_sacct("|"), None);
    }

    #[test]
    fn sbatch_zero_for_a_cancelled_job_is_not_success() {
        let record = SlurmRecord {
            state: "CANCELLED".into(),
            exit: 0,
            signal: 0,
        };
        let failure = judge("9", 0, &record).unwrap_err();
        assert_eq!(
            failure.message,
            "Slurm job 9 was cancelled outside batchci (state CANCELLED); sbatch --wait said 0"
        );
        let record = SlurmRecord {
            state: "COMPLETED".into(),
            exit: 0,
            signal: 0,
        };
        assert_eq!(judge("9", 0, &record), Ok(StepOutcome::Exited(0)));
        let record = SlurmRecord {
            state: "FAILED".into(),
            exit: 3,
            signal: 0,
        };
        assert_eq!(judge("9", 3, &record), Ok(StepOutcome::Exited(3)));
        let record = SlurmRecord {
            state: "TIMEOUT".into(),
            exit: 0,
            signal: 0,
        };
        assert_eq!(judge("9", 1, &record).unwrap_err().exit_code, Some(1));
    }
}
