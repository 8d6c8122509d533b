//! `pbs`: the step script is a PBS Professional / OpenPBS job, `qsub -W block=true`.
//!
//! ```text
//! qsub -W block=true -N ci-job-<job> -o <tmp>/pbs-<job>.out -j oe -k oed [user parameters] < script
//! ```
//!
//! - `-j oe` merges stderr into the `-o` file, the one batchci follows (`-j eo` would merge
//!   into the stderr path and leave `-o` empty; reference section 7).
//! - `-k oed` has the job write that file directly; without `d`, PBS copies output back only
//!   when the job ends, and the log would not be live.
//! - The script goes to qsub's standard input, so no copy of it (it holds the job's secrets)
//!   lands on the shared file system; `-N` names the job (it would be `STDIN`).
//!
//! qsub's exit code is the job's `Exit_status` truncated to 8 bits, which cannot tell a
//! script's `exit 3` from a deleted job, nor `exit 15` from a SIGTERM; the verdict therefore
//! reads the job's record (`qstat -x -f -F json`): 256+signal for a signal, -29 for a
//! walltime kill, other negatives for a job PBS could not run. A job deleted from outside
//! batchci (`qdel` by an admin: qsub says `Job to be deleted`) fails as deleted, never as
//! "exit code 3".

use std::path::PathBuf;

use super::batch::{
    EndOfJob, Ended, Invocation, JobRecord, Presence, RecordQuery, RecordSource, Refusal,
    Scheduler, StepRequest,
};
use super::{JobContext, JobFailure, StepOutcome};
use crate::args::{CommandOptions, Grammar, OptionSpec, Takes};
use crate::command::CapturedOutput;
use crate::config::ExecutorKind;

/// qsub's options (OpenPBS `src/cmds/qsub_sup.c` `GETOPT_ARGS`), all one letter, and those
/// batchci sets itself. `-u` is refused because it would choose whom the job runs as.
pub const QSUB_OPTIONS: CommandOptions = CommandOptions {
    program: "qsub",
    grammar: Grammar::Getopt,
    options: &[
        OptionSpec::short('a', Takes::Value),
        OptionSpec::short('A', Takes::Value),
        OptionSpec::short('c', Takes::Value),
        OptionSpec::short('C', Takes::Value),
        OptionSpec::short('e', Takes::Value),
        OptionSpec::short('f', Takes::Nothing),
        OptionSpec::short('h', Takes::Nothing),
        OptionSpec::short('I', Takes::Nothing),
        OptionSpec::short('j', Takes::Value),
        OptionSpec::short('J', Takes::Value),
        OptionSpec::short('k', Takes::Value),
        OptionSpec::short('l', Takes::Value),
        OptionSpec::short('m', Takes::Value),
        OptionSpec::short('M', Takes::Value),
        OptionSpec::short('N', Takes::Value),
        OptionSpec::short('o', Takes::Value),
        OptionSpec::short('p', Takes::Value),
        OptionSpec::short('P', Takes::Value),
        OptionSpec::short('q', Takes::Value),
        OptionSpec::short('r', Takes::Value),
        OptionSpec::short('R', Takes::Value),
        OptionSpec::short('S', Takes::Value),
        OptionSpec::short('u', Takes::Value),
        OptionSpec::short('v', Takes::Value),
        OptionSpec::short('V', Takes::Nothing),
        OptionSpec::short('W', Takes::Value),
        OptionSpec::short('X', Takes::Nothing),
        OptionSpec::short('z', Takes::Nothing),
    ],
    controlled: &["-N", "-o", "-e", "-j", "-k", "-I", "-X", "-z", "-u"],
};

/// PBS, as the batch engine drives it.
#[derive(Debug)]
pub(crate) struct Pbs;

impl Scheduler for Pbs {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Pbs
    }

    /// `qsub` alone names Cobalt (as other HPC executors name them); PBS is `pbs` only.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    fn name(&self) -> &'static str {
        "PBS"
    }

    fn how(&self) -> &'static str {
        "qsub -W block=true -N ci-job-<id> -o <file> -j oe -k oed [parameters] < script; the output file is followed"
    }

    fn programs(&self) -> &'static [&'static str] {
        &["qsub", "qdel", "qstat"]
    }

    // PBS_CONF_FILE names pbs.conf; PBS_SERVER (PBS_DEFAULT, its old name) overrides the
    // server named there (OpenPBS `src/lib/Libifl/pbs_loadconf.c`).
    fn client_variables(&self) -> &'static [&'static str] {
        &["PBS_CONF_FILE", "PBS_SERVER", "PBS_DEFAULT"]
    }

    // The server's own status line (`qstat -B`, `src/cmds/qstat.c` `display_statserver`);
    // `qstat: cannot connect to server ...` and a non-zero exit when it does not answer.
    fn controller_check(&self) -> Invocation {
        ("qstat", vec!["-B".into()])
    }

    fn submit_options(&self) -> &'static CommandOptions {
        &QSUB_OPTIONS
    }

    /// `-W block=...` is batchci's (other `-W` attributes, `depend=`, `group_list=`, are
    /// the user's).
    fn check_parameters(&self, words: &[String]) -> Result<(), String> {
        for (letter, value) in short_options(words) {
            if letter == 'W'
                && value
                    .split(',')
                    .any(|attribute| attribute.trim().to_ascii_lowercase().starts_with("block"))
            {
                return Err(format!(
                    "-W {value}: block is set by batchci and cannot be given (a site can permit it with allow_illegal_args = true in its batch settings)"
                ));
            }
        }
        Ok(())
    }

    fn output_files(&self, ctx: &JobContext) -> Vec<PathBuf> {
        vec![output_file(ctx)]
    }

    fn end_of_job(&self) -> EndOfJob {
        EndOfJob::SubmitWaits
    }

    /// qsub reads the script from standard input when no file is named (qsub.1B).
    fn script_on_stdin(&self) -> bool {
        true
    }

    fn submit(&self, step: &StepRequest<'_>) -> Invocation {
        let mut args: Vec<String> = vec![
            "-W".into(),
            "block=true".into(),
            "-N".into(),
            format!("ci-job-{}", step.ctx.job.id),
            "-o".into(),
            output_file(step.ctx).display().to_string(),
            "-j".into(),
            "oe".into(),
            "-k".into(),
            "oed".into(),
        ];
        args.extend(step.user_args.iter().cloned());
        if let Some(script) = step.script {
            args.push(script.display().to_string());
        }
        ("qsub", args)
    }

    /// qsub prints the job id, `<seq>.<server>` (`<seq>[].<server>` for an array), alone on
    /// its line (reference 2.1).
    fn job_id(&self, line: &str) -> Option<String> {
        let line = line.trim();
        let (sequence, server) = line.split_once('.')?;
        let digits = sequence.strip_suffix("[]").unwrap_or(sequence);
        (!digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && !server.is_empty()
            && !server.contains(char::is_whitespace))
        .then(|| line.to_string())
    }

    fn cancel(&self, id: &str) -> Invocation {
        ("qdel", vec![id.to_string()])
    }

    fn presence_query(&self, id: &str) -> Invocation {
        ("qstat", vec![id.to_string()])
    }

    /// `qstat <id>` lists a queued or running job; a finished one is 35 (`Job has finished`,
    /// history kept) or 153 (`Unknown Job Id`) (reference 2.2).
    fn presence(&self, answer: &CapturedOutput) -> Presence {
        match answer.code {
            0 => Presence::Queued,
            35 | 153 => Presence::Gone,
            _ => Presence::Unknown,
        }
    }

    fn record_source(&self, _ctx: &JobContext, id: &str) -> RecordSource {
        let args = ["-x", "-f", "-F", "json", id];
        RecordSource::Queries(vec![RecordQuery {
            invocation: ("qstat", args.iter().map(|a| a.to_string()).collect()),
            parse: parse_qstat_json,
        }])
    }

    fn verdict(
        &self,
        ended: &Ended<'_>,
        record: Option<&JobRecord>,
    ) -> Result<StepOutcome, JobFailure> {
        let id = ended.id;
        if let Some(line) = ended
            .stderr
            .iter()
            .find(|l| l.contains("Job to be deleted"))
        {
            return Err(JobFailure::system(format!(
                "PBS job {id} was deleted outside batchci ({})",
                line.trim()
            )));
        }
        let Some(record) = record else {
            return Ok(StepOutcome::Exited(ended.code));
        };
        match record.exit {
            0..=255 => Ok(StepOutcome::Exited(record.exit)),
            // JOB_EXEC_KILL_WALLTIME (src/include/job.h).
            -29 => Err(JobFailure::script(
                format!("PBS job {id} exceeded its walltime (Exit_status -29)"),
                Some(ended.code.max(1)),
            )),
            status if status > 256 => Err(JobFailure::script(
                format!(
                    "PBS job {id} was killed by signal {} (Exit_status {status})",
                    status - 256
                ),
                Some(128 + (status - 256)),
            )),
            status => Err(JobFailure::system(format!(
                "PBS could not run job {id} (Exit_status {status})"
            ))),
        }
    }

    fn refusal(&self, stderr: &[String]) -> Refusal {
        classify_refusal(stderr)
    }
}

/// Where `qsub -o` sends the job's merged output: the job's private scratch directory.
fn output_file(ctx: &JobContext) -> PathBuf {
    ctx.dirs.tmp_dir.join(format!("pbs-{}.out", ctx.job.id))
}

/// The one-letter options of `words` with their values, as qsub's getopt reads them
/// (`-W block=true`, `-Wblock=true`, `-hW block=true`).
fn short_options(words: &[String]) -> Vec<(char, String)> {
    let takes_value = |letter: char| {
        QSUB_OPTIONS
            .options
            .iter()
            .any(|o| o.short == Some(letter) && o.takes == Takes::Value)
    };
    let mut found = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let word = &words[index];
        index += 1;
        let Some(cluster) = word.strip_prefix('-') else {
            continue;
        };
        for (at, letter) in cluster.char_indices() {
            if !takes_value(letter) {
                found.push((letter, String::new()));
                continue;
            }
            let rest = &cluster[at + letter.len_utf8()..];
            let value = if rest.is_empty() {
                index += 1;
                words.get(index - 1).cloned().unwrap_or_default()
            } else {
                rest.to_string()
            };
            found.push((letter, value));
            break;
        }
    }
    found
}

/// Reads `Exit_status` and `job_state` from `qstat -x -f -F json` (reference 2.2: numeric
/// values are JSON numbers).
pub(crate) fn parse_qstat_json(text: &str) -> Option<JobRecord> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let job = value.get("Jobs")?.as_object()?.values().next()?;
    let exit = job.get("Exit_status")?;
    let exit = exit
        .as_i64()
        .or_else(|| exit.as_str().and_then(|s| s.trim().parse().ok()))?;
    Some(JobRecord {
        state: job
            .get("job_state")
            .and_then(|s| s.as_str())
            .unwrap_or("F")
            .to_string(),
        exit: i32::try_from(exit).ok()?,
        signal: 0,
    })
}

/// Words of a PBS server that cannot be used from here (`pbs_geterrmsg`, `src/lib/Libifl`
/// connection errors).
const SYSTEM: &[&str] = &[
    "cannot connect to server",
    "No server specified",
    "Unauthorized Request",
    "Bad UID for job execution",
    "Batch protocol error",
    "No free connections",
];

/// Words of a server that did not answer in time.
const TRANSIENT: &[&str] = &["timed out", "Request timed out"];

/// Whose fault a refused `qsub` is; anything not known to be the server's is the user's
/// (`Unknown queue`, `Job violates queue and/or server resource limits`).
pub(crate) fn classify_refusal(stderr: &[String]) -> Refusal {
    super::batch::classify_refusal(stderr, SYSTEM, TRANSIENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_id_is_qsubs_whole_line() {
        assert_eq!(Pbs.job_id("12.sim\n"), Some("12.sim".into()));
        assert_eq!(
            Pbs.job_id("12[].pbs.example.com"),
            Some("12[].pbs.example.com".into())
        );
        assert_eq!(Pbs.job_id("qsub: Unknown queue"), None);
        assert_eq!(Pbs.job_id("12"), None);
    }

    #[test]
    fn block_belongs_to_batchci_in_every_spelling_and_other_attributes_to_the_user() {
        let words = |text: &str| shell_words::split(text).unwrap();
        for text in [
            "-W block=true",
            "-Wblock=false",
            "-hW block=true",
            "-W depend=afterok:1,block=true",
        ] {
            assert!(Pbs.check_parameters(&words(text)).is_err(), "{text}");
        }
        for text in [
            "-W group_list=proj",
            "-l walltime=00:10:00 -W depend=afterok:1.sim",
        ] {
            assert_eq!(Pbs.check_parameters(&words(text)), Ok(()), "{text}");
        }
    }

    #[test]
    fn the_record_says_what_the_truncated_exit_code_cannot() {
        let json = |status: &str| {
            format!(
                r#"{{"timestamp":1,"pbs_version":"22","pbs_server":"sim","Jobs":{{"7.sim":{{"Job_Name":"ci-job-1","job_state":"F","Exit_status":{status}}}}}}}"#
            )
        };
        let ended = |code| Ended {
            id: "7.sim",
            code,
            stderr: &[],
        };
        let record = |status: &str| parse_qstat_json(&json(status)).unwrap();

        assert_eq!(
            Pbs.verdict(&ended(3), Some(&record("3"))),
            Ok(StepOutcome::Exited(3))
        );
        let killed = Pbs.verdict(&ended(15), Some(&record("271"))).unwrap_err();
        assert_eq!(
            killed.message,
            "PBS job 7.sim was killed by signal 15 (Exit_status 271)"
        );
        assert_eq!(killed.exit_code, Some(143));
        let walltime = Pbs.verdict(&ended(227), Some(&record("-29"))).unwrap_err();
        assert_eq!(
            walltime.message,
            "PBS job 7.sim exceeded its walltime (Exit_status -29)"
        );
    }

    #[test]
    fn a_job_deleted_from_outside_is_never_exit_code_3() {
        let stderr = ["qsub: 7.sim Job to be deleted at request of admin@login1".to_string()];
        let failure = Pbs
            .verdict(
                &Ended {
                    id: "7.sim",
                    code: 3,
                    stderr: &stderr,
                },
                None,
            )
            .unwrap_err();
        assert_eq!(
            failure.message,
            "PBS job 7.sim was deleted outside batchci (qsub: 7.sim Job to be deleted at request of admin@login1)"
        );
        assert_eq!(
            failure.reason,
            super::super::FailureReason::RunnerSystemFailure
        );
    }
}
