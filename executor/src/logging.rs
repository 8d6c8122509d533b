//! batchci's own log (standard error): its format, its colours, and the lines an admin works
//! from — one when `batchci run` starts, one when a job starts and one when it ends.
//!
//! The level comes from `log_level` in the configuration (default `info`) unless
//! `BATCHCI_LOG` is set: it holds `tracing` filter directives and wins, e.g.
//! `BATCHCI_LOG=debug` or `BATCHCI_LOG=info,batchci::tail=debug`. `--log-format json` (or
//! `BATCHCI_LOG_FORMAT=json`) writes one JSON object per line for log shippers. Colours are
//! used only when standard error is a terminal and `NO_COLOR` is unset or empty.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use crate::backends::{FailureReason, JobFailure};
use crate::config::{Config, RunnerConfig};
use crate::job::Job;
use crate::trace::FinalOutcome;

/// The form of each log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, message, then the fields as key=value.
    #[default]
    Text,
    /// One JSON object per line, its fields at the top level, for log shippers.
    Json,
}

/// Whether log lines get colours: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
pub fn colours_wanted(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the log of this process: `format` on standard error, at `default_level` unless
/// `BATCHCI_LOG` says otherwise. A `BATCHCI_LOG` that is not a filter is said so in the log,
/// which then uses `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal as _;
    let (filter, refused) = match std::env::var("BATCHCI_LOG") {
        Ok(text) if !text.trim().is_empty() => {
            match tracing_subscriber::EnvFilter::try_new(&text) {
                Ok(filter) => (filter, None),
                Err(error) => (
                    tracing_subscriber::EnvFilter::new(default_level),
                    Some((text, error.to_string())),
                ),
            }
        }
        _ => (tracing_subscriber::EnvFilter::new(default_level), None),
    };
    let colours = colours_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colours).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if let Some((text, error)) = refused {
        tracing::warn!(
            "BATCHCI_LOG={text:?} is not a filter ({error}); logging at {default_level}"
        );
    }
}

/// The line `batchci run` starts with: version, configuration, state directory, and each
/// runner with its executor.
pub fn startup(config_path: &Path, config: &Config) {
    let runners: Vec<String> = config
        .runners
        .iter()
        .map(|r| format!("{} ({})", r.name, r.executor))
        .collect();
    tracing::info!(
        version = %crate::gitlab::VERSION,
        config = %config_path.display(),
        state_dir = %config.state_dir.display(),
        concurrent = config.concurrent,
        runners = runners.join(", "),
        "batchci starting"
    );
}

/// The line of a job that starts: GitLab's job id, the runner, and what the job is.
pub fn job_started(job: &Job, runner: &RunnerConfig) {
    let pipeline = job
        .variable("CI_PIPELINE_ID")
        .and_then(|id| id.parse::<u64>().ok());
    tracing::info!(
        job = job.id,
        runner = %runner.name,
        executor = %runner.executor,
        project = %job.variable("CI_PROJECT_PATH").unwrap_or_default(),
        pipeline,
        name = %job.job_info.name,
        "job started"
    );
}

/// How a job ended, as its end line says it: `success`, `failed` or `canceled`, GitLab's
/// failure reason, and the words of the job log's last line.
pub fn outcome(failure: Option<&JobFailure>) -> (&'static str, Option<&'static str>) {
    match failure.map(|f| f.reason) {
        None => ("success", None),
        Some(FailureReason::JobCanceled) => ("canceled", Some("job_canceled")),
        Some(reason) => ("failed", Some(reason.as_str())),
    }
}

/// The line of a job that has ended: GitLab's job id, the runner, the scheduler's job id when
/// there was one, the outcome with GitLab's failure reason, exit code and cause, how long it
/// took, and what became of the final update (`accepted`, `ended_by_gitlab` when GitLab
/// answered that the job had ended there — as it does to the end of a job canceled in GitLab —
/// or `not_delivered`, with the error). A warning when batchci, the scheduler or the machine
/// failed the job, or when GitLab did not get its end.
pub fn job_finished(
    job: &Job,
    runner: &RunnerConfig,
    scheduler_job: Option<&str>,
    failure: Option<&JobFailure>,
    report: &FinalOutcome,
    took: Duration,
) {
    let (outcome, reason) = outcome(failure);
    let (gitlab, undelivered) = match report {
        FinalOutcome::Accepted => ("accepted", None),
        // GitLab answered that the job is canceled or failed on its side (as it does to the
        // end of a job canceled in GitLab), or refused the job token.
        FinalOutcome::Aborted => ("ended_by_gitlab", None),
        FinalOutcome::Failed(error) => ("not_delivered", Some(error.as_str())),
    };
    let exit_code = failure.and_then(|f| f.exit_code);
    let cause = failure.map(|f| f.message.as_str());
    let seconds = took.as_millis() as f64 / 1000.0;
    let bad = matches!(report, FinalOutcome::Failed(_))
        || reason == Some(FailureReason::RunnerSystemFailure.as_str());
    macro_rules! finished {
        ($level:ident) => {
            tracing::$level!(
                job = job.id,
                runner = %runner.name,
                scheduler_job = scheduler_job.map(tracing::field::display),
                outcome = %outcome,
                reason = reason.map(tracing::field::display),
                exit_code,
                cause,
                duration_s = seconds,
                final_update = %gitlab,
                final_update_error = undelivered,
                "job finished"
            )
        };
    }
    if bad {
        finished!(warn);
    } else {
        finished!(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_and_never_with_no_color() {
        assert!(colours_wanted(true, None));
        assert!(colours_wanted(true, Some(OsStr::new(""))));
        assert!(!colours_wanted(true, Some(OsStr::new("1"))));
        assert!(!colours_wanted(false, None));
        assert!(!colours_wanted(false, Some(OsStr::new(""))));
    }

    #[test]
    fn each_failure_reason_has_its_outcome() {
        let cases = [
            (None, ("success", None)),
            (
                Some(JobFailure::script("exit code 3", Some(3))),
                ("failed", Some("script_failure")),
            ),
            (
                Some(JobFailure::system(
                    "sbatch: error: Batch job submission failed",
                )),
                ("failed", Some("runner_system_failure")),
            ),
            (
                Some(JobFailure {
                    reason: FailureReason::JobExecutionTimeout,
                    exit_code: None,
                    message: "execution took longer than 3 seconds".into(),
                }),
                ("failed", Some("job_execution_timeout")),
            ),
            (
                Some(JobFailure {
                    reason: FailureReason::JobCanceled,
                    exit_code: None,
                    message: "canceled".into(),
                }),
                ("canceled", Some("job_canceled")),
            ),
        ];
        for (failure, expected) in cases {
            assert_eq!(outcome(failure.as_ref()), expected, "{failure:?}");
        }
    }
}
