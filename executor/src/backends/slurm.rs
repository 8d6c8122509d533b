//! `slurm`: the step script is a batch job, `sbatch --wait`.
//!
//! ```text
//! sbatch --wait --output=<tmp>/slurm-<job>.out --job-name=ci-job-<job> [user parameters] < script
//! ```
//!
//! The output file is followed live into the job log. The exit status of `sbatch --wait` is the
//! job's, and it is checked against Slurm's own record (`scontrol show job`, then `sacct`),
//! because `sbatch --wait` says 0 for a job cancelled while pending and 1 for any signal. A
//! cancel, abort or timeout runs `scancel` and waits until the job has left the queue.

use std::path::PathBuf;

use super::batch::{
    EndOfJob, Ended, Invocation, JobRecord, Presence, RecordQuery, RecordSource, Refusal,
    Scheduler, StepRequest,
};
use super::{JobContext, JobFailure, StepOutcome};
use crate::args::{CommandOptions, Grammar, OptionSpec, Takes};
use crate::command::CapturedOutput;
use crate::config::ExecutorKind;

/// sbatch's options (Slurm 22.05's `common_options[]` of `src/common/slurm_opt.c` that sbatch
/// takes, the same table as the fake's `mock-schedulers/src/cli/slurm/options.rs`), and those
/// batchci sets itself. `--uid`/`--gid` are refused
/// because they would let a job choose whom it runs as when batchci submits as root.
pub const SBATCH_OPTIONS: CommandOptions = CommandOptions {
    program: "sbatch",
    grammar: Grammar::Getopt,
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
        OptionSpec::long("export", Takes::Value),
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
        OptionSpec::long("uid", Takes::Value),
        OptionSpec::long("use-min-nodes", Takes::Nothing),
        OptionSpec::both('v', "verbose", Takes::Nothing),
        OptionSpec::both('W', "wait", Takes::Nothing),
        OptionSpec::long("wckey", Takes::Value),
        OptionSpec::long("wrap", Takes::Value),
        OptionSpec::long("cluster-constraint", Takes::Value),
        OptionSpec::long("cluster", Takes::Value),
        OptionSpec::long("context", Takes::Value),
        OptionSpec::long("prefer", Takes::Value),
        OptionSpec::long("tasks-per-node", Takes::Value),
        OptionSpec::long("ntasks-per-tres", Takes::Value),
        OptionSpec::long("wait-all-nodes", Takes::Value),
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

/// Slurm, as the batch engine drives it.
#[derive(Debug)]
pub(crate) struct Slurm;

impl Scheduler for Slurm {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Slurm
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["sbatch"]
    }

    fn name(&self) -> &'static str {
        "Slurm"
    }

    fn how(&self) -> &'static str {
        "sbatch --wait --output=<file> --job-name=ci-job-<id> [parameters] < script; the output file is followed"
    }

    fn programs(&self) -> &'static [&'static str] {
        &["sbatch", "scancel", "squeue", "scontrol", "sacct"]
    }

    fn client_variables(&self) -> &'static [&'static str] {
        CLIENT_VARIABLES
    }

    fn controller_check(&self) -> Invocation {
        controller_check()
    }

    fn submit_options(&self) -> &'static CommandOptions {
        &SBATCH_OPTIONS
    }

    fn output_files(&self, ctx: &JobContext) -> Vec<PathBuf> {
        vec![output_file(ctx)]
    }

    fn end_of_job(&self) -> EndOfJob {
        EndOfJob::SubmitWaits
    }

    /// `sbatch --wait` sleeps 2 s, then 8 s, then 32 s between its looks at the job (sbatch.c
    /// `_job_wait()`, capped by MinJobAge/2): a job that ran 45 s is reported up to ~30 s late.
    fn polls_for_end(&self) -> bool {
        true
    }

    /// What `sbatch --wait` returns for a finished job: its exit code, 1 when a signal ended
    /// it (`WIFEXITED ? WEXITSTATUS : 1`, sbatch.c `_job_wait()`). A job is finished once its
    /// state is no longer pending, running, suspended or completing.
    fn waited_code(&self, record: &JobRecord) -> Option<i32> {
        FINISHED_STATES
            .contains(&record.state.as_str())
            .then_some(if record.signal != 0 { 1 } else { record.exit })
    }

    /// sbatch reads the batch script from standard input when no file is named (sbatch.1).
    fn script_on_stdin(&self) -> bool {
        true
    }

    fn submit(&self, step: &StepRequest<'_>) -> Invocation {
        let mut args = Vec::new();
        if step.wait {
            args.push("--wait".to_string());
        }
        args.extend([
            format!("--output={}", output_file(step.ctx).display()),
            format!("--job-name=ci-job-{}", step.ctx.job.id),
        ]);
        args.extend(step.user_args.iter().cloned());
        if let Some(script) = step.script {
            args.push(script.display().to_string());
        }
        ("sbatch", args)
    }

    fn job_id(&self, line: &str) -> Option<String> {
        parse_submitted(line)
    }

    fn cancel(&self, id: &str) -> Invocation {
        ("scancel", vec![id.to_string()])
    }

    fn presence_query(&self, id: &str) -> Invocation {
        let args = ["-h", "-j", id, "-o", "%T"];
        ("squeue", args.iter().map(|a| a.to_string()).collect())
    }

    /// A job still in memory but finished is not listed (`-h`: nothing, rc 0); a purged one is
    /// `Invalid job id specified`, rc 1 (docs/slurm-observed.md, table rows 17 and 19).
    fn presence(&self, answer: &CapturedOutput) -> Presence {
        match answer.code {
            0 if answer.stdout_text().trim().is_empty() => Presence::Gone,
            0 => Presence::Queued,
            _ if answer.stderr_text().contains("Invalid job id specified") => Presence::Gone,
            _ => Presence::Unknown,
        }
    }

    /// `squeue` lists the jobs of a list that are still pending, running or completing, one
    /// `<id> <state>` line each; finished and purged ones are left out (with two or more ids
    /// squeue loads all jobs and filters, so an unknown id is no error: observed on 22.05).
    fn batched_presence_query(&self, ids: &[String]) -> Option<Invocation> {
        let args = ["-h", "-j", &ids.join(","), "-o", "%i %T"];
        Some(("squeue", args.iter().map(|a| a.to_string()).collect()))
    }

    fn batched_presence(&self, ids: &[String], answer: &CapturedOutput) -> Vec<Presence> {
        if answer.code != 0 {
            // One id that the controller no longer knows: `Invalid job id specified`, rc 1.
            let purged = ids.len() == 1 && self.presence(answer) == Presence::Gone;
            let presence = if purged {
                Presence::Gone
            } else {
                Presence::Unknown
            };
            return vec![presence; ids.len()];
        }
        let text = answer.stdout_text();
        let listed: std::collections::HashSet<&str> = text
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        ids.iter()
            .map(|id| {
                if listed.contains(id.as_str()) {
                    Presence::Queued
                } else {
                    Presence::Gone
                }
            })
            .collect()
    }

    /// `scontrol` while the controller still holds the job (MinJobAge), then accounting.
    fn record_source(&self, _ctx: &JobContext, id: &str) -> RecordSource {
        let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        RecordSource::Queries(vec![
            RecordQuery {
                invocation: ("scontrol", owned(&["show", "job", "-o", id])),
                parse: parse_scontrol,
            },
            RecordQuery {
                invocation: (
                    "sacct",
                    owned(&["-j", id, "-X", "-n", "-P", "-o", "State,ExitCode"]),
                ),
                parse: parse_sacct,
            },
        ])
    }

    /// Without a record (purged and no accounting), `sbatch --wait`'s exit code is all there
    /// is.
    fn verdict(
        &self,
        ended: &Ended<'_>,
        record: Option<&JobRecord>,
    ) -> Result<StepOutcome, JobFailure> {
        match record {
            Some(record) => judge(ended.id, ended.code, record),
            None => Ok(StepOutcome::Exited(ended.code)),
        }
    }

    fn refusal(&self, stderr: &[String]) -> Refusal {
        classify_refusal(stderr)
    }
}

/// The states of a job that has ended (`squeue --help`, job state codes; base states past
/// SUSPENDED in `slurm.h`). `COMPLETING` is not one: its final state is not known yet.
const FINISHED_STATES: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "PREEMPTED",
    "DEADLINE",
];

/// Where `sbatch --output` sends the job's output: the job's private scratch directory.
fn output_file(ctx: &JobContext) -> PathBuf {
    ctx.dirs.tmp_dir.join(format!("slurm-{}.out", ctx.job.id))
}

/// Words of a controller that is busy or slow to answer, which sbatch does not retry itself
/// (`src/common/slurm_errno.c` 22.05; sbatch.c retries only EAGAIN, a full job queue and
/// powering-up nodes, on its own, for up to 2 minutes).
const TRANSIENT: &[&str] = &[
    "Socket timed out on send/recv operation",
    "Unable to contact slurm controller (send failure)",
    "Unable to contact slurm controller (receive failure)",
    "Slurm backup controller in standby mode",
    "Controller is in standby mode",
];

/// Words of a Slurm that cannot be used from this host: no controller, no configuration,
/// credentials refused, or a controller that kept refusing while sbatch retried on its own.
const SYSTEM: &[&str] = &[
    "Unable to contact slurm controller (connect failure)",
    "Could not establish a configuration source",
    "fetch_config",
    "Protocol authentication error",
    "Invalid authentication credential",
    "Failed to open authentication public key",
    "Failed to connect to authentication agent",
    "Zero Bytes were transmitted or received",
    "Invalid user id",
    "Munge",
    "Resource temporarily unavailable",
    "Slurm job queue full",
    "Job creation temporarily disabled",
];

/// Whose fault a refused `sbatch` is. Anything not known to be the controller's or the
/// site's is the user's: what sbatch refuses is mostly what the user asked for
/// (`Invalid partition name specified`, `Requested node configuration is not available`).
pub(crate) fn classify_refusal(stderr: &[String]) -> Refusal {
    super::batch::classify_refusal(stderr, SYSTEM, TRANSIENT)
}

/// What Slurm's commands read to find their cluster: `SLURM_CONF`, the slurm.conf to use.
/// Without it they read their built-in path, then ask DNS for SRV records, and fail with
/// `Could not establish a configuration source` when neither answers.
pub(crate) const CLIENT_VARIABLES: &[&str] = &["SLURM_CONF"];

/// `scontrol ping`: `Slurmctld(primary) at <host> is UP` and exit 0 when the controller
/// answers, `... is DOWN` and exit 1 when it does not (`docs/slurm-observed.md`).
pub(crate) fn controller_check() -> Invocation {
    ("scontrol", vec!["ping".into()])
}

/// `Submitted batch job 123` (optionally `... on cluster X`) → `123`.
pub(crate) fn parse_submitted(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("Submitted batch job ")?;
    let id = rest.split_whitespace().next()?;
    id.chars()
        .all(|c| c.is_ascii_digit())
        .then(|| id.to_string())
}

/// Parses `scontrol show job -o` output.
pub(crate) fn parse_scontrol(text: &str) -> Option<JobRecord> {
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
    Some(JobRecord {
        state: state?,
        exit,
        signal,
    })
}

/// Parses the allocation line of `sacct -X -n -P -o State,ExitCode`.
pub(crate) fn parse_sacct(text: &str) -> Option<JobRecord> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let (state, code) = line.trim().split_once('|')?;
    let (exit, signal) = parse_exit_code(code)?;
    Some(JobRecord {
        state: state.split_whitespace().next()?.to_string(),
        exit,
        signal,
    })
}

fn parse_exit_code(value: &str) -> Option<(i32, i32)> {
    let (exit, signal) = value.split_once(':')?;
    Some((exit.parse().ok()?, signal.parse().ok()?))
}

/// Decides the step's outcome from sbatch's exit code and Slurm's record.
pub(crate) fn judge(id: &str, code: i32, record: &JobRecord) -> Result<StepOutcome, JobFailure> {
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
            "Slurm job {id} was cancelled outside batchci (state CANCELLED)"
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

#[cfg(test)]
mod tests {
    use super::*;

    /// sbatch 22.05 takes 106 options (`common_options[]` of `slurm_opt.c` with a set_func
    /// for sbatch), each once; `--export` needs its value (`required_argument`).
    #[test]
    fn the_sbatch_table_is_slurm_2205s() {
        let options = SBATCH_OPTIONS.options;
        assert_eq!(options.len(), 106);
        for (i, a) in options.iter().enumerate() {
            assert!(
                options[i + 1..].iter().all(|b| b.long != a.long),
                "{}",
                a.long
            );
        }
        let export = options.iter().find(|o| o.long == "export");
        assert!(matches!(export.map(|o| o.takes), Some(Takes::Value)));
        assert!(!options.iter().any(|o| o.long == "tres-per-task"));
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn refusals_are_blamed_on_who_can_fix_them() {
        // Real sbatch 22.05 output, as observed against ci/slurm.
        let bad_partition = "sbatch: error: invalid partition specified: nonexistent\nsbatch: error: Batch job submission failed: Invalid partition name specified";
        let too_much_memory = "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available";
        let no_config = "sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\nsbatch: error: fetch_config: DNS SRV lookup failed\nsbatch: error: _establish_config_source: failed to fetch config\nsbatch: fatal: Could not establish a configuration source";
        let no_controller = "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)";
        let busy =
            "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation";
        let kept_refusing = "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying\nsbatch: error: Batch job submission failed: Resource temporarily unavailable";

        assert_eq!(classify_refusal(&lines(bad_partition)), Refusal::User);
        assert_eq!(classify_refusal(&lines(too_much_memory)), Refusal::User);
        assert_eq!(classify_refusal(&lines(no_config)), Refusal::System);
        assert_eq!(classify_refusal(&lines(no_controller)), Refusal::System);
        assert_eq!(classify_refusal(&lines(busy)), Refusal::Transient);
        assert_eq!(classify_refusal(&lines(kept_refusing)), Refusal::System);
    }

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
            Some(JobRecord {
                state: "CANCELLED".into(),
                exit: 0,
                signal: 15
            })
        );
        assert_eq!(
            parse_sacct("CANCELLED by 0|0:15\n"),
            Some(JobRecord {
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
        let record = JobRecord {
            state: "CANCELLED".into(),
            exit: 0,
            signal: 0,
        };
        let failure = judge("9", 0, &record).unwrap_err();
        assert_eq!(
            failure.message,
            "Slurm job 9 was cancelled outside batchci (state CANCELLED)"
        );
        let record = JobRecord {
            state: "COMPLETED".into(),
            exit: 0,
            signal: 0,
        };
        assert_eq!(judge("9", 0, &record), Ok(StepOutcome::Exited(0)));
        let record = JobRecord {
            state: "FAILED".into(),
            exit: 3,
            signal: 0,
        };
        assert_eq!(judge("9", 3, &record), Ok(StepOutcome::Exited(3)));
        let record = JobRecord {
            state: "TIMEOUT".into(),
            exit: 0,
            signal: 0,
        };
        assert_eq!(judge("9", 1, &record).unwrap_err().exit_code, Some(1));
    }
}
