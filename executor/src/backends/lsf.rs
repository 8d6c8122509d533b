//! `lsf`: the step script runs as an interactive LSF job, `bsub -I`.
//!
//! ```text
//! bsub -I -J ci-job-<job> [user parameters] < script
//! ```
//!
//! bsub stays attached: the job's output is bsub's own, streamed into the log as it comes
//! (no output file to follow), and bsub's exit code is the job's (reference section 3). bsub
//! says `Job <N> is submitted to [default ]queue <q>.` first, which is where the job id comes
//! from. A job killed while it was pending (`bkill` by someone else) makes bsub say
//! `<<Terminated while pending>>` and exit 126: that is never the script's `exit 126`, and the
//! CI job fails with LSF's reason. The job's record (`bjobs -noheader -o "stat exit_code"`)
//! settles the exit code when bsub's and LSF's disagree.

use super::batch::{
    EndOfJob, Ended, Invocation, JobRecord, Presence, RecordQuery, RecordSource, Refusal,
    Scheduler, StepRequest,
};
use super::{JobContext, JobFailure, StepOutcome};
use crate::args::{CommandOptions, Grammar, OptionSpec, Takes};
use crate::command::CapturedOutput;
use crate::config::ExecutorKind;

/// bsub's options (IBM Spectrum LSF 10.1 `bsub` reference): whole words after one dash, the
/// value in the next word. batchci sets the interactive mode, the output files and the job
/// name; `-u` (mail) and `-G` (user group) are left to the user.
pub const BSUB_OPTIONS: CommandOptions = CommandOptions {
    program: "bsub",
    grammar: Grammar::WholeWords,
    options: &[
        OptionSpec::long("a", Takes::Value),
        OptionSpec::long("alloc_flags", Takes::Value),
        OptionSpec::long("app", Takes::Value),
        OptionSpec::long("ar", Takes::Nothing),
        OptionSpec::long("B", Takes::Nothing),
        OptionSpec::long("b", Takes::Value),
        OptionSpec::long("C", Takes::Value),
        OptionSpec::long("c", Takes::Value),
        OptionSpec::long("clusters", Takes::Value),
        OptionSpec::long("cwd", Takes::Value),
        OptionSpec::long("D", Takes::Value),
        OptionSpec::long("E", Takes::Value),
        OptionSpec::long("e", Takes::Value),
        OptionSpec::long("env", Takes::Value),
        OptionSpec::long("eo", Takes::Value),
        OptionSpec::long("Ep", Takes::Value),
        OptionSpec::long("eptl", Takes::Value),
        OptionSpec::long("F", Takes::Value),
        OptionSpec::long("f", Takes::Value),
        OptionSpec::long("freq", Takes::Value),
        OptionSpec::long("G", Takes::Value),
        OptionSpec::long("g", Takes::Value),
        OptionSpec::long("gpu", Takes::Value),
        OptionSpec::long("H", Takes::Nothing),
        OptionSpec::long("hl", Takes::Nothing),
        OptionSpec::long("I", Takes::Nothing),
        OptionSpec::long("Ip", Takes::Nothing),
        OptionSpec::long("IS", Takes::Nothing),
        OptionSpec::long("ISp", Takes::Nothing),
        OptionSpec::long("ISs", Takes::Nothing),
        OptionSpec::long("Is", Takes::Nothing),
        OptionSpec::long("IX", Takes::Nothing),
        OptionSpec::long("i", Takes::Value),
        OptionSpec::long("is", Takes::Value),
        OptionSpec::long("J", Takes::Value),
        OptionSpec::long("Jd", Takes::Value),
        OptionSpec::long("jsdl", Takes::Value),
        OptionSpec::long("K", Takes::Nothing),
        OptionSpec::long("k", Takes::Value),
        OptionSpec::long("L", Takes::Value),
        OptionSpec::long("Lp", Takes::Value),
        OptionSpec::long("M", Takes::Value),
        OptionSpec::long("m", Takes::Value),
        OptionSpec::long("mig", Takes::Value),
        OptionSpec::long("N", Takes::Nothing),
        OptionSpec::long("Ne", Takes::Nothing),
        OptionSpec::long("n", Takes::Value),
        OptionSpec::long("network", Takes::Value),
        OptionSpec::long("nnodes", Takes::Value),
        OptionSpec::long("o", Takes::Value),
        OptionSpec::long("oo", Takes::Value),
        OptionSpec::long("outdir", Takes::Value),
        OptionSpec::long("P", Takes::Value),
        OptionSpec::long("p", Takes::Value),
        OptionSpec::long("pack", Takes::Value),
        OptionSpec::long("ptl", Takes::Value),
        OptionSpec::long("Q", Takes::Value),
        OptionSpec::long("q", Takes::Value),
        OptionSpec::long("R", Takes::Value),
        OptionSpec::long("r", Takes::Nothing),
        OptionSpec::long("rn", Takes::Nothing),
        OptionSpec::long("rnc", Takes::Value),
        OptionSpec::long("S", Takes::Value),
        OptionSpec::long("s", Takes::Value),
        OptionSpec::long("sla", Takes::Value),
        OptionSpec::long("smt", Takes::Value),
        OptionSpec::long("sp", Takes::Value),
        OptionSpec::long("stage", Takes::Value),
        OptionSpec::long("T", Takes::Value),
        OptionSpec::long("t", Takes::Value),
        OptionSpec::long("ti", Takes::Nothing),
        OptionSpec::long("tty", Takes::Nothing),
        OptionSpec::long("U", Takes::Value),
        OptionSpec::long("u", Takes::Value),
        OptionSpec::long("ul", Takes::Nothing),
        OptionSpec::long("v", Takes::Value),
        OptionSpec::long("W", Takes::Value),
        OptionSpec::long("We", Takes::Value),
        OptionSpec::long("w", Takes::Value),
        OptionSpec::long("wa", Takes::Value),
        OptionSpec::long("wt", Takes::Value),
        OptionSpec::long("x", Takes::Nothing),
        OptionSpec::long("XF", Takes::Nothing),
        OptionSpec::long("Zs", Takes::Nothing),
    ],
    controlled: &[
        "I", "Ip", "IS", "ISp", "ISs", "Is", "IX", "K", "o", "oo", "e", "eo", "J", "i", "is",
    ],
};

/// LSF, as the batch engine drives it.
#[derive(Debug)]
pub(crate) struct Lsf;

impl Scheduler for Lsf {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Lsf
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["bsub"]
    }

    fn name(&self) -> &'static str {
        "LSF"
    }

    fn how(&self) -> &'static str {
        "bsub -I -J ci-job-<id> [parameters] < script; bsub's output is the job's, streamed"
    }

    fn programs(&self) -> &'static [&'static str] {
        &["bsub", "bkill", "bjobs"]
    }

    // LSF_ENVDIR: the directory of lsf.conf, which says where the cluster's master is.
    fn client_variables(&self) -> &'static [&'static str] {
        &["LSF_ENVDIR"]
    }

    // The batch hosts as mbatchd reports them; `batch system daemon not responding` and a
    // non-zero exit when it does not answer.
    fn controller_check(&self) -> Invocation {
        ("bhosts", Vec::new())
    }

    fn submit_options(&self) -> &'static CommandOptions {
        &BSUB_OPTIONS
    }

    fn output_files(&self, _ctx: &JobContext) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    fn end_of_job(&self) -> EndOfJob {
        EndOfJob::Interactive
    }

    /// bsub reads a job script from its standard input when given no command.
    fn script_on_stdin(&self) -> bool {
        true
    }

    fn submit(&self, step: &StepRequest<'_>) -> Invocation {
        let mut args: Vec<String> = vec![
            "-I".into(),
            "-J".into(),
            format!("ci-job-{}", step.ctx.job.id),
        ];
        args.extend(step.user_args.iter().cloned());
        if let Some(script) = step.script {
            args.push(script.display().to_string());
        }
        ("bsub", args)
    }

    /// `Job <123> is submitted to [default ]queue <normal>.` (reference 3.1).
    fn job_id(&self, line: &str) -> Option<String> {
        let rest = line.trim().strip_prefix("Job <")?;
        let (id, after) = rest.split_once('>')?;
        (after.starts_with(" is submitted to")
            && !id.is_empty()
            && id.chars().all(|c| c.is_ascii_digit()))
        .then(|| id.to_string())
    }

    fn cancel(&self, id: &str) -> Invocation {
        ("bkill", vec![id.to_string()])
    }

    fn presence_query(&self, id: &str) -> Invocation {
        let args = ["-noheader", "-o", "stat", id];
        ("bjobs", args.iter().map(|a| a.to_string()).collect())
    }

    /// Finished jobs stay listed as `DONE` or `EXIT`; an unknown one is 255 (reference 3.2).
    fn presence(&self, answer: &CapturedOutput) -> Presence {
        let state = answer.stdout_text();
        match (answer.code, state.trim()) {
            (0, "DONE" | "EXIT") => Presence::Gone,
            (0, "") => Presence::Unknown,
            (0, _) => Presence::Queued,
            (255, _)
                if answer.stderr_text().contains("is not found")
                    || answer.stdout_text().contains("is not found") =>
            {
                Presence::Gone
            }
            _ => Presence::Unknown,
        }
    }

    fn record_source(&self, _ctx: &JobContext, id: &str) -> RecordSource {
        let args = ["-noheader", "-o", "stat exit_code", id];
        RecordSource::Queries(vec![RecordQuery {
            invocation: ("bjobs", args.iter().map(|a| a.to_string()).collect()),
            parse: parse_bjobs,
        }])
    }

    fn verdict(
        &self,
        ended: &Ended<'_>,
        record: Option<&JobRecord>,
    ) -> Result<StepOutcome, JobFailure> {
        let id = ended.id;
        let said = |words: &str| ended.stderr.iter().any(|l| l.contains(words));
        if said("Terminated while pending") {
            return Err(JobFailure::system(format!(
                "LSF job {id} was killed while it was pending (terminated by user or administrator)"
            )));
        }
        if said("has been terminated by user or administrator") {
            return Err(JobFailure::system(format!(
                "LSF job {id} was killed by a user or administrator"
            )));
        }
        match record {
            Some(record) if record.state == "DONE" => Ok(StepOutcome::Exited(0)),
            Some(record) if record.state == "EXIT" && record.exit != 0 => {
                Ok(StepOutcome::Exited(record.exit))
            }
            _ => Ok(StepOutcome::Exited(ended.code)),
        }
    }

    fn refusal(&self, stderr: &[String]) -> Refusal {
        super::batch::classify_refusal(stderr, SYSTEM, TRANSIENT)
    }
}

/// `STAT EXIT_CODE` from `bjobs -noheader -o "stat exit_code"`: `-` is no exit code to show
/// (reference 3.2).
pub(crate) fn parse_bjobs(text: &str) -> Option<JobRecord> {
    let mut fields = text.split_whitespace();
    let state = fields.next()?.to_string();
    let exit = match fields.next()? {
        "-" => 0,
        code => code.parse().ok()?,
    };
    Some(JobRecord {
        state,
        exit,
        signal: 0,
    })
}

/// Words of an LSF that cannot be used from here.
const SYSTEM: &[&str] = &[
    "LSF is down",
    "Cannot connect to LSF",
    "cannot connect to mbatchd",
    "Failed in an LSF library call",
    "User permission denied",
];

/// Words of a batch server that did not answer in time.
const TRANSIENT: &[&str] = &["timed out", "Timeout", "mbatchd is busy"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_id_comes_from_the_submission_line() {
        assert_eq!(
            Lsf.job_id("Job <123> is submitted to queue <normal>."),
            Some("123".into())
        );
        assert_eq!(
            Lsf.job_id("Job <7> is submitted to default queue <normal>."),
            Some("7".into())
        );
        assert_eq!(Lsf.job_id("<<Waiting for dispatch ...>>"), None);
        assert_eq!(Lsf.job_id("Job <7> is being terminated"), None);
    }

    #[test]
    fn controlled_options_are_refused_as_whole_words() {
        let check = |text: &str| {
            crate::args::user_parameters(&BSUB_OPTIONS, "SCHEDULER_PARAMETERS", text, false)
                .map_err(|e| e.to_string())
        };
        assert!(check("-q normal -n 4 -W 30 -R \"span[hosts=1]\"").is_ok());
        assert_eq!(
            check("-oo out.txt").unwrap_err(),
            "SCHEDULER_PARAMETERS: -oo is set by batchci and cannot be given (a site can permit it with allow_illegal_args = true in its batch settings)"
        );
        assert!(check("-Is").unwrap_err().contains("-Is is set by batchci"));
        assert!(
            check("-qnormal")
                .unwrap_err()
                .contains("is not an option of bsub")
        );
    }

    #[test]
    fn a_job_killed_while_pending_is_never_exit_126() {
        let stderr = [
            "<< Job <7> has been terminated by user or administrator >>".to_string(),
            "<<Terminated while pending>>".to_string(),
        ];
        let failure = Lsf
            .verdict(
                &Ended {
                    id: "7",
                    code: 126,
                    stderr: &stderr,
                },
                None,
            )
            .unwrap_err();
        assert_eq!(
            failure.message,
            "LSF job 7 was killed while it was pending (terminated by user or administrator)"
        );
    }
}
