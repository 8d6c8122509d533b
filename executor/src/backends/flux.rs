//! `flux`: the step script runs in a Flux allocation, `flux alloc`.
//!
//! ```text
//! flux alloc -v --job-name=ci-job-<job> [-n1] [user parameters] <script file>
//! ```
//!
//! `-n1` is added when the user parameters give neither `-N` nor `-n`: flux alloc needs a
//! size, and one slot is what Slurm would allocate without one.
//!
//! `flux alloc` stays attached: the script's output is its own, streamed into the log as it
//! comes, and its exit code is the job's: the script's, 128+signal, or 1 after a fatal
//! exception such as a cancel while pending (reference sections 4.2, 4.3). `-v` makes it say
//! `jobid: <id>` on stderr, which is how batchci learns the id to cancel and to record. A job
//! that Flux ends (a cancel by someone else, its time limit) says so in a `job.exception` line,
//! and the CI job fails with that reason, never as an exit code. The script is a file because
//! Flux runs a command; its first command removes it.

use super::batch::{
    EndOfJob, Ended, Invocation, JobRecord, Presence, RecordQuery, RecordSource, Refusal,
    Scheduler, StepRequest,
};
use super::{JobContext, JobFailure, StepOutcome};
use crate::args::{CommandOptions, Grammar, OptionSpec, Takes};
use crate::command::CapturedOutput;
use crate::config::ExecutorKind;

/// flux alloc's options (flux-core `flux-alloc(1)` and the common submission options of
/// `src/bindings/python/flux/cli/base.py`). batchci sets the job name, runs in the
/// foreground, and leaves the job's standard streams to itself.
pub const ALLOC_OPTIONS: CommandOptions = CommandOptions {
    program: "flux alloc",
    grammar: Grammar::Getopt,
    options: &[
        OptionSpec::both('N', "nodes", Takes::Value),
        OptionSpec::both('n', "nslots", Takes::Value),
        OptionSpec::both('c', "cores-per-slot", Takes::Value),
        OptionSpec::both('g', "gpus-per-slot", Takes::Value),
        OptionSpec::both('x', "exclusive", Takes::Nothing),
        OptionSpec::both('t', "time-limit", Takes::Value),
        OptionSpec::both('q', "queue", Takes::Value),
        OptionSpec::both('B', "bank", Takes::Value),
        OptionSpec::both('S', "setattr", Takes::Value),
        OptionSpec::both('o', "setopt", Takes::Value),
        OptionSpec::both('u', "urgency", Takes::Value),
        OptionSpec::both('v', "verbose", Takes::Nothing),
        OptionSpec::long("job-name", Takes::Value),
        OptionSpec::long("conf", Takes::Value),
        OptionSpec::long("bg", Takes::Nothing),
        OptionSpec::long("begin-time", Takes::Value),
        OptionSpec::long("dependency", Takes::Value),
        OptionSpec::long("requires", Takes::Value),
        OptionSpec::long("env", Takes::Value),
        OptionSpec::long("env-remove", Takes::Value),
        OptionSpec::long("env-file", Takes::Value),
        OptionSpec::long("rlimit", Takes::Value),
        OptionSpec::long("input", Takes::Value),
        OptionSpec::long("output", Takes::Value),
        OptionSpec::long("error", Takes::Value),
        OptionSpec::long("cwd", Takes::Value),
        OptionSpec::long("flags", Takes::Value),
        OptionSpec::long("broker-opts", Takes::Value),
        OptionSpec::long("dry-run", Takes::Nothing),
        OptionSpec::long("quiet", Takes::Nothing),
        OptionSpec::long("debug", Takes::Nothing),
    ],
    controlled: &["job-name", "bg", "input", "output", "error", "dry-run"],
};

/// Flux, as the batch engine drives it.
#[derive(Debug)]
pub(crate) struct Flux;

impl Scheduler for Flux {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Flux
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    fn name(&self) -> &'static str {
        "Flux"
    }

    fn how(&self) -> &'static str {
        "flux alloc -v --job-name=ci-job-<id> [-n1] [parameters] <script>; the output is flux alloc's, streamed"
    }

    fn programs(&self) -> &'static [&'static str] {
        &["flux"]
    }

    // FLUX_URI: the instance the commands connect to (reference 4.7).
    fn client_variables(&self) -> &'static [&'static str] {
        &["FLUX_URI"]
    }

    // `flux uptime` (flux-core `src/cmd/builtin/uptime.c`): one line about the instance, or
    // `flux_open` failing and exit 1 when no broker answers.
    fn controller_check(&self) -> Invocation {
        ("flux", vec!["uptime".into()])
    }

    fn submit_options(&self) -> &'static CommandOptions {
        &ALLOC_OPTIONS
    }

    fn output_files(&self, _ctx: &JobContext) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    fn end_of_job(&self) -> EndOfJob {
        EndOfJob::Interactive
    }

    fn script_on_stdin(&self) -> bool {
        false
    }

    fn submit(&self, step: &StepRequest<'_>) -> Invocation {
        let mut args: Vec<String> = vec![
            "alloc".into(),
            "-v".into(),
            format!("--job-name=ci-job-{}", step.ctx.job.id),
        ];
        // flux alloc refuses a job without a size ("Number of slots to allocate must be
        // specified", flux-core cli/alloc.py); like Slurm's default, one slot.
        let given = crate::args::given_options(&ALLOC_OPTIONS, step.user_args);
        if !given.iter().any(|name| matches!(*name, "nodes" | "nslots")) {
            args.push("-n1".into());
        }
        args.extend(step.user_args.iter().cloned());
        if let Some(script) = step.script {
            args.push(script.display().to_string());
        }
        ("flux", args)
    }

    /// `jobid: <id>` on stderr with `-v` (reference 4.2).
    fn job_id(&self, line: &str) -> Option<String> {
        let id = line.trim().strip_prefix("jobid: ")?.trim();
        (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
    }

    fn cancel(&self, id: &str) -> Invocation {
        ("flux", vec!["cancel".into(), id.to_string()])
    }

    fn presence_query(&self, id: &str) -> Invocation {
        let args = ["jobs", "-n", "-o", "{state}", id];
        ("flux", args.iter().map(|a| a.to_string()).collect())
    }

    /// Active states DEPEND PRIORITY SCHED RUN CLEANUP; an ended job is INACTIVE
    /// (reference 4.5).
    fn presence(&self, answer: &CapturedOutput) -> Presence {
        let state = answer.stdout_text();
        match (answer.code, state.trim()) {
            (0, "INACTIVE") => Presence::Gone,
            (0, "DEPEND" | "PRIORITY" | "SCHED" | "RUN" | "CLEANUP") => Presence::Queued,
            _ => Presence::Unknown,
        }
    }

    fn record_source(&self, _ctx: &JobContext, id: &str) -> RecordSource {
        let args = ["jobs", "-n", "-o", "{result} {returncode}", id];
        RecordSource::Queries(vec![RecordQuery {
            invocation: ("flux", args.iter().map(|a| a.to_string()).collect()),
            parse: parse_result,
        }])
    }

    fn verdict(
        &self,
        ended: &Ended<'_>,
        _record: Option<&JobRecord>,
    ) -> Result<StepOutcome, JobFailure> {
        let id = ended.id;
        let exception = ended
            .stderr
            .iter()
            .find(|l| l.contains("job.exception"))
            .map(|l| l.trim().to_string());
        match exception {
            Some(line) if line.contains("type=timeout") => Err(JobFailure::script(
                format!("Flux job {id} reached its time limit ({line})"),
                Some(ended.code),
            )),
            Some(line) => Err(JobFailure::system(format!("Flux ended job {id} ({line})"))),
            None => Ok(StepOutcome::Exited(ended.code)),
        }
    }

    fn refusal(&self, stderr: &[String]) -> Refusal {
        super::batch::classify_refusal(stderr, SYSTEM, TRANSIENT)
    }
}

/// `{result} {returncode}` of `flux jobs`: COMPLETED FAILED CANCELED TIMEOUT and the job's
/// return code (reference 4.5).
pub(crate) fn parse_result(text: &str) -> Option<JobRecord> {
    let mut fields = text.split_whitespace();
    let state = fields.next()?.to_string();
    let exit = fields.next()?.parse().ok()?;
    Some(JobRecord {
        state,
        exit,
        signal: 0,
    })
}

/// Words of a Flux instance that cannot be reached.
const SYSTEM: &[&str] = &[
    "Unable to connect to Flux",
    "flux_open",
    "Connection refused",
];

/// Words of an instance that did not answer in time.
const TRANSIENT: &[&str] = &["timed out"];

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted(user: &[&str]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _log) = super::super::testing::context(dir.path(), std::time::Duration::ZERO);
        let user_args: Vec<String> = user.iter().map(|a| a.to_string()).collect();
        let script = dir.path().join("step_script");
        let (_, args) = Flux.submit(&StepRequest {
            ctx: &ctx,
            script: Some(&script),
            user_args: &user_args,
            wait: true,
        });
        args.iter()
            .map(|a| a.replace(&script.display().to_string(), "SCRIPT"))
            .collect()
    }

    #[test]
    fn a_job_without_a_size_asks_for_one_slot() {
        let base = ["alloc", "-v", "--job-name=ci-job-0"];
        let expect = |rest: &[&str]| -> Vec<String> {
            base.iter().chain(rest).map(|a| a.to_string()).collect()
        };
        assert_eq!(
            submitted(&["-t", "5m"]),
            expect(&["-n1", "-t", "5m", "SCRIPT"])
        );
        assert_eq!(submitted(&["-N2"]), expect(&["-N2", "SCRIPT"]));
        assert_eq!(
            submitted(&["--nslots=4", "-c2"]),
            expect(&["--nslots=4", "-c2", "SCRIPT"])
        );
        assert_eq!(submitted(&["-xN", "1"]), expect(&["-xN", "1", "SCRIPT"]));
    }

    #[test]
    fn the_job_id_comes_from_the_verbose_line() {
        assert_eq!(
            Flux.job_id("jobid: ƒM7Zq9AKHno"),
            Some("ƒM7Zq9AKHno".into())
        );
        assert_eq!(
            Flux.job_id("jobid: fM7Zq9AKHno\n"),
            Some("fM7Zq9AKHno".into())
        );
        assert_eq!(
            Flux.job_id("flux-job: task(s) exited with exit code 3"),
            None
        );
    }

    #[test]
    fn an_exception_is_the_reason_not_the_exit_code() {
        let ended = |line: &str| {
            Flux.verdict(
                &Ended {
                    id: "ƒ2",
                    code: 143,
                    stderr: &[line.to_string()],
                },
                None,
            )
        };
        let canceled = ended("0.500s: job.exception ƒ2 type=cancel severity=0 ").unwrap_err();
        assert_eq!(
            canceled.message,
            "Flux ended job ƒ2 (0.500s: job.exception ƒ2 type=cancel severity=0)"
        );
        let timeout =
            ended("60.0s: job.exception ƒ2 type=timeout severity=0 resource allocation expired")
                .unwrap_err();
        assert_eq!(timeout.reason, super::super::FailureReason::ScriptFailure);
        assert_eq!(
            ended("flux-job: task(s) exited with exit code 3"),
            Ok(StepOutcome::Exited(143))
        );
    }
}
