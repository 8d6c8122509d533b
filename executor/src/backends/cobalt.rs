//! `cobalt`: the step script is a Cobalt job, submitted with `qsub` and watched with `qstat`.
//!
//! ```text
//! qsub --output <tmp>/cobalt-<job>.output --error <tmp>/cobalt-<job>.error
//!      --debuglog <tmp>/cobalt-<job>.cobaltlog [user parameters] <tmp>/step_script
//! ```
//!
//! Cobalt's qsub returns at once with the job id, so the end of the job is known from
//! `qstat <id>`: a query that succeeds and no longer lists the job (exit 1, no output). A
//! `qstat` that fails (a time-out, an error message) says nothing and is asked again. Both
//! output files are followed into the log. The exit code is read from the `.cobaltlog`'s
//! completion line (`... an exit code of N; initiating job cleanup and removal`); a job killed
//! by its walltime or by `qdel` has no such line, and fails with what the log says instead
//! (reference section 5).
//!
//! Cobalt runs an executable file, so the step script is one, in the job's private scratch
//! directory; its first command removes it, so the secrets it holds stay on disk only until
//! the job starts (crash recovery deletes it for a job that never did).

use std::path::PathBuf;

use super::batch::{
    EndOfJob, Ended, Invocation, JobRecord, Presence, RecordSource, Refusal, Scheduler, StepRequest,
};
use super::{JobContext, JobFailure, StepOutcome};
use crate::args::{CommandOptions, Grammar, OptionSpec, Takes};
use crate::command::CapturedOutput;
use crate::config::ExecutorKind;

/// Cobalt qsub's options (`src/clients/POSIX/qsub.py`, reference 5.1), and those batchci
/// sets itself. optparse accepts unambiguous abbreviations of long options, as the check
/// does.
pub const QSUB_OPTIONS: CommandOptions = CommandOptions {
    program: "qsub",
    grammar: Grammar::Getopt,
    options: &[
        OptionSpec::both('A', "project", Takes::Value),
        OptionSpec::both('q', "queue", Takes::Value),
        OptionSpec::both('t', "time", Takes::Value),
        OptionSpec::both('n', "nodecount", Takes::Value),
        OptionSpec::long("proccount", Takes::Value),
        OptionSpec::both('o', "output", Takes::Value),
        OptionSpec::both('e', "error", Takes::Value),
        OptionSpec::both('O', "outputprefix", Takes::Value),
        OptionSpec::long("debuglog", Takes::Value),
        OptionSpec::long("cwd", Takes::Value),
        OptionSpec::long("env", Takes::Value),
        OptionSpec::long("jobname", Takes::Value),
        OptionSpec::long("attrs", Takes::Value),
        OptionSpec::long("dependencies", Takes::Value),
        OptionSpec::long("mode", Takes::Value),
        OptionSpec::both('I', "interactive", Takes::Nothing),
        OptionSpec::both('h', "held", Takes::Nothing),
        OptionSpec::both('M', "notify", Takes::Value),
        OptionSpec::both('u', "umask", Takes::Value),
        OptionSpec::long("run_users", Takes::Value),
        OptionSpec::long("run_project", Takes::Nothing),
        OptionSpec::long("kernel", Takes::Value),
        OptionSpec::both('K', "kerneloptions", Takes::Value),
        OptionSpec::long("geometry", Takes::Value),
        OptionSpec::long("disable_preboot", Takes::Nothing),
    ],
    controlled: &["output", "error", "outputprefix", "debuglog", "interactive"],
};

/// Cobalt, as the batch engine drives it.
#[derive(Debug)]
pub(crate) struct Cobalt;

impl Scheduler for Cobalt {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Cobalt
    }

    /// Other HPC executors call Cobalt's executor after its submit command.
    fn aliases(&self) -> &'static [&'static str] {
        &["qsub"]
    }

    fn name(&self) -> &'static str {
        "Cobalt"
    }

    fn how(&self) -> &'static str {
        "qsub --output F --error E --debuglog L [parameters] <script>, then qstat until the job has left; both files are followed, the exit code is read from L"
    }

    fn programs(&self) -> &'static [&'static str] {
        &["qsub", "qstat", "qdel"]
    }

    // ALCF's documentation: `COBALT_CONFIG_FILES=<path to cobalt config>` chooses the Cobalt
    // instance the commands talk to.
    fn client_variables(&self) -> &'static [&'static str] {
        &["COBALT_CONFIG_FILES"]
    }

    // The queue, as batchci's own status polls ask it; exit 0 whenever the queue manager
    // answers (reference 5.3).
    fn controller_check(&self) -> Invocation {
        ("qstat", Vec::new())
    }

    fn submit_options(&self) -> &'static CommandOptions {
        &QSUB_OPTIONS
    }

    /// Cobalt refuses a job without `-t` or `-n` (reference 5.1): said here in its words,
    /// before anything is submitted.
    fn check_parameters(&self, words: &[String]) -> Result<(), String> {
        let given = |short: &str, long: &str| {
            words.iter().any(|w| {
                w == short
                    || (w.starts_with(short) && w.len() > 2 && !w.starts_with("--"))
                    || w == &format!("--{long}")
                    || w.starts_with(&format!("--{long}="))
            })
        };
        if !given("-t", "time") {
            return Err("'time' not provided (Cobalt needs -t/--time)".into());
        }
        if !given("-n", "nodecount") {
            return Err("'nodecount' not provided (Cobalt needs -n/--nodecount)".into());
        }
        Ok(())
    }

    fn output_files(&self, ctx: &JobContext) -> Vec<PathBuf> {
        vec![file(ctx, "output"), file(ctx, "error")]
    }

    fn end_of_job(&self) -> EndOfJob {
        EndOfJob::StatusPoll
    }

    /// qsub returns at once and `qstat` is asked every second until the job has left.
    fn polls_for_end(&self) -> bool {
        true
    }

    /// Cobalt's qsub runs an executable file (reference 5.1).
    fn script_on_stdin(&self) -> bool {
        false
    }

    fn submit(&self, step: &StepRequest<'_>) -> Invocation {
        let ctx = step.ctx;
        let mut args: Vec<String> = vec![
            "--output".into(),
            file(ctx, "output").display().to_string(),
            "--error".into(),
            file(ctx, "error").display().to_string(),
            "--debuglog".into(),
            file(ctx, "cobaltlog").display().to_string(),
        ];
        args.extend(step.user_args.iter().cloned());
        if let Some(script) = step.script {
            args.push(script.display().to_string());
        }
        ("qsub", args)
    }

    /// qsub prints only the integer id on standard output; warnings may precede it, so
    /// every line is tried (reference 5.1).
    fn job_id(&self, line: &str) -> Option<String> {
        let line = line.trim();
        (!line.is_empty() && line.chars().all(|c| c.is_ascii_digit())).then(|| line.to_string())
    }

    fn cancel(&self, id: &str) -> Invocation {
        ("qdel", vec![id.to_string()])
    }

    fn presence_query(&self, id: &str) -> Invocation {
        ("qstat", vec![id.to_string()])
    }

    /// A job no longer in the queue: no output at all and exit 1 (reference 5.3). Anything
    /// else that is not a listing (an error message, a time-out) is no news.
    fn presence(&self, answer: &CapturedOutput) -> Presence {
        let silent = answer.stdout.iter().all(u8::is_ascii_whitespace)
            && answer.stderr.iter().all(u8::is_ascii_whitespace);
        match answer.code {
            0 if !silent => Presence::Queued,
            1 if silent => Presence::Gone,
            _ => Presence::Unknown,
        }
    }

    fn record_source(&self, ctx: &JobContext, _id: &str) -> RecordSource {
        RecordSource::File {
            path: file(ctx, "cobaltlog"),
            parse: parse_cobaltlog,
        }
    }

    fn verdict(
        &self,
        ended: &Ended<'_>,
        record: Option<&JobRecord>,
    ) -> Result<StepOutcome, JobFailure> {
        let id = ended.id;
        match record.map(|r| (r.state.as_str(), r.exit)) {
            Some(("completed", exit)) => Ok(StepOutcome::Exited(exit)),
            Some(("walltime", _)) => Err(JobFailure::script(
                format!(
                    "Cobalt job {id} was killed at its walltime (maximum execution time exceeded)"
                ),
                None,
            )),
            Some(("deleted", _)) => Err(JobFailure::system(format!(
                "Cobalt job {id} was deleted outside batchci (user delete requested)"
            ))),
            Some(("failed", _)) => Err(JobFailure::system(format!(
                "Cobalt could not start job {id} (execution failure)"
            ))),
            _ => Err(JobFailure::system(format!(
                "Cobalt job {id} left the queue without an exit code in its .cobaltlog (killed, or the log never arrived)"
            ))),
        }
    }

    fn refusal(&self, stderr: &[String]) -> Refusal {
        classify_refusal(stderr)
    }
}

/// `<tmp>/cobalt-<job>.<suffix>`: the job's private scratch directory.
fn file(ctx: &JobContext, suffix: &str) -> PathBuf {
    ctx.dirs
        .tmp_dir
        .join(format!("cobalt-{}.{suffix}", ctx.job.id))
}

/// How the `.cobaltlog` says the job ended (reference 5.2): the completion line with its exit
/// code, or a kill line (no exit code will follow). `None` while it says neither.
pub(crate) fn parse_cobaltlog(text: &str) -> Option<JobRecord> {
    let record = |state: &str, exit: i32| JobRecord {
        state: state.into(),
        exit,
        signal: 0,
    };
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once("an exit code of ")
            && let Some((code, _)) = rest.split_once(';')
            && let Ok(code) = code.trim().parse::<i32>()
        {
            return Some(record("completed", code));
        }
    }
    if text.contains("maximum execution time exceeded") {
        Some(record("walltime", -1))
    } else if text.contains("user delete requested") || text.contains("user delete with signal") {
        Some(record("deleted", -1))
    } else if text.contains("execution failure") {
        Some(record("failed", -1))
    } else {
        None
    }
}

/// Words of a Cobalt server that cannot be reached.
const SYSTEM: &[&str] = &["Failed to connect", "Connection refused", "cannot connect"];

/// Words of a server that did not answer in time.
const TRANSIENT: &[&str] = &["timed out"];

/// Whose fault a refused `qsub` is; anything not known to be the server's is the user's.
pub(crate) fn classify_refusal(stderr: &[String]) -> Refusal {
    super::batch::classify_refusal(stderr, SYSTEM, TRANSIENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cobaltlog_says_how_the_job_ended() {
        let header = "Jobid: 12\nqsub --output x\nMon Jan 23 02:44:00 2017 +0000 (UTC) submitted with cwd set to: /tmp\n";
        let completed = format!(
            "{header}Mon Jan 23 02:44:05 2017 +0000 (UTC) Info: task completed normally with an exit code of 7; initiating job cleanup and removal\n"
        );
        let walltime = format!(
            "{header}Mon Jan 23 02:45:00 2017 +0000 (UTC) Info: maximum execution time exceeded; initiating job termination\n"
        );
        let deleted = format!(
            "{header}Mon Jan 23 02:45:00 2017 +0000 (UTC) Info: user delete requested with signal SIGTERM by user alice\n"
        );

        assert_eq!(parse_cobaltlog(header), None);
        assert_eq!(
            parse_cobaltlog(&completed).map(|r| (r.state, r.exit)),
            Some(("completed".into(), 7))
        );
        assert_eq!(
            parse_cobaltlog(&walltime).map(|r| r.state),
            Some("walltime".into())
        );
        assert_eq!(
            parse_cobaltlog(&deleted).map(|r| r.state),
            Some("deleted".into())
        );
    }

    #[test]
    fn only_a_silent_exit_1_means_the_job_left() {
        let answer = |code, stdout: &str, stderr: &str| CapturedOutput {
            code,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        };
        assert_eq!(Cobalt.presence(&answer(1, "", "")), Presence::Gone);
        assert_eq!(
            Cobalt.presence(&answer(0, "JobID  User\n=====\n12  alice\n", "")),
            Presence::Queued
        );
        assert_eq!(
            Cobalt.presence(&answer(1, "", "qstat: request timed out\n")),
            Presence::Unknown
        );
    }

    #[test]
    fn time_and_nodecount_are_required_before_anything_is_submitted() {
        let words = |text: &str| shell_words::split(text).unwrap();
        assert_eq!(Cobalt.check_parameters(&words("-t 10 -n 1")), Ok(()));
        assert_eq!(
            Cobalt.check_parameters(&words("--time=00:10:00 -n1")),
            Ok(())
        );
        assert_eq!(
            Cobalt.check_parameters(&words("-n 1")),
            Err("'time' not provided (Cobalt needs -t/--time)".into())
        );
        assert_eq!(
            Cobalt.check_parameters(&words("-t 10")),
            Err("'nodecount' not provided (Cobalt needs -n/--nodecount)".into())
        );
    }
}
