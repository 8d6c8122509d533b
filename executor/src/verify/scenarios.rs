//! The contract scenarios verify runs through each configured runner: a passing job whose log
//! arrives whole, a failing job's exit code, a masked variable, a refused scheduler flag,
//! cancel while pending and while running, and whether the runner's default partition exists
//! and lets a trivial job start.

use std::time::Instant;

use mock_cluster::model::JobState;
use mock_gitlab::JobStatus;
use mock_gitlab::api::Variable;
use serde_json::json;

use super::cluster::explain;
use super::jobs::{CancelWhen, Harness, Outcome};
use super::report::{Check, Verdict};
use super::site::SiteRunner;
use crate::config::{ExecutorKind, RunnerConfig};

/// The masked variable's value; it must never appear in a log.
const SECRET: &str = "verify-Secret-4711";

/// Lines the passing job prints; all of them must arrive, in order.
const LINES: usize = 2000;

/// What verify needs to know of an executor's scheduler.
struct Scheduler {
    /// Parameters every job needs (Cobalt wants `-t` and `-n`).
    base: &'static str,
    /// A flag batchci sets itself, so a user's is refused.
    refused: &'static str,
    /// A flag that holds a job in the queue, when the scheduler has one.
    hold: Option<&'static str>,
}

fn scheduler(kind: ExecutorKind) -> Option<Scheduler> {
    let (base, refused, hold) = match kind {
        ExecutorKind::Slurm => ("", "--uid=0", Some("-H")),
        ExecutorKind::Pbs => ("", "-o /tmp/batchci-verify.out", Some("-h")),
        ExecutorKind::Lsf => ("", "-o /tmp/batchci-verify.out", Some("-H")),
        // Urgency 0 is Flux's hold (`flux submit --help`: hold=0).
        ExecutorKind::Flux => ("", "--output=/tmp/batchci-verify.out", Some("--urgency=0")),
        ExecutorKind::Cobalt => (
            "-t 10 -n 1",
            "--debuglog /tmp/batchci-verify.log -t 10 -n 1",
            Some("-h"),
        ),
        ExecutorKind::Shell | ExecutorKind::DockerSlurm => return None,
    };
    Some(Scheduler {
        base,
        refused,
        hold,
    })
}

/// The line of a log that says why a job failed: batchci's refusal, the scheduler's error,
/// else GitLab's last `ERROR:` line.
pub(crate) fn failure_line(trace: &str) -> String {
    let text = without_colours(&crate::mock_site::readable(trace));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let wanted = [
        "is set by batchci",
        "cannot be given",
        "refused the job",
        "error:",
        "ERROR:",
    ];
    let line = wanted
        .iter()
        .find_map(|needle| lines.iter().find(|l| l.contains(needle)))
        .or(lines.last())
        .copied()
        .unwrap_or_default();
    line.strip_prefix("ERROR: Job failed: ")
        .unwrap_or(line)
        .to_string()
}

/// A log line without its terminal colour sequences (`ESC [ ... letter`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `.gitlab-ci.yml` job for `runner` running `script` with `parameters`.
fn job(
    site: &SiteRunner,
    config: &RunnerConfig,
    script: &[&str],
    parameters: &str,
) -> serde_json::Value {
    let mut job = json!({ "tags": [site.own_tag], "script": script });
    if !parameters.is_empty()
        && let Some(variable) = config.batch.arguments_variable.first()
    {
        job["variables"] = json!({ variable: parameters });
    }
    if site.executor == ExecutorKind::DockerSlurm && config.docker.image.is_none() {
        job["image"] = json!("alpine");
    }
    // A runner that checks who started the job needs the job's ID token, which users ask
    // for with `id_tokens:` (docs/security.md).
    if let Some(audience) = &config.auth.audience {
        job["id_tokens"] = json!({ config.auth.token_variable.as_str(): { "aud": audience } });
    }
    job
}

fn joined(a: &str, b: &str) -> String {
    [a, b]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs every scenario that applies to `runner`, calling `done` with each check as it ends.
pub(crate) async fn run(
    harness: &Harness,
    site: &SiteRunner,
    config: &RunnerConfig,
    done: &(dyn Fn(&Check) + Sync),
) -> Vec<Check> {
    let mut checks = Vec::new();
    let group = format!("runner {}", site.name);
    let mut push = |name: &str, started: Instant, (verdict, reason): (Verdict, String)| {
        let check = Check {
            group: group.clone(),
            name: name.to_string(),
            verdict,
            reason,
            took: started.elapsed(),
        };
        done(&check);
        checks.push(check);
    };
    let sched = scheduler(site.executor);
    let base = sched.as_ref().map_or("", |s| s.base);

    // A passing job; for a batch runner it also shows whether the default partition lets a
    // trivial job start.
    let started = Instant::now();
    let script = [
        "echo batchci-verify-begin",
        "for i in $(seq 1 2000); do echo \"verify line $i\"; done",
        "echo batchci-verify-end",
    ];
    let outcome = harness
        .run(
            "verify-passes",
            job(site, config, &script, base),
            vec![],
            CancelWhen::Never,
        )
        .await;
    if site.executor != ExecutorKind::Shell {
        let verdict = match &outcome {
            Ok(outcome) => default_partition(harness, site, outcome),
            Err(error) => (Verdict::Fail, format!("{error:#}")),
        };
        push("default partition", started, verdict);
    }
    let verdict = match &outcome {
        Ok(outcome) => passes(outcome),
        Err(error) => (Verdict::Fail, format!("{error:#}")),
    };
    push("passing job, whole log", started, verdict);

    let mut scenarios = scenarios(base, sched.as_ref());
    if config.auth.downscope != crate::auth::Downscope::None {
        scenarios.insert(
            0,
            Scenario {
                label: "runs as the pipeline's user",
                job: "verify-runs-as",
                script: &["echo \"batchci-verify-user=$(id -un)\""],
                parameters: base.into(),
                variables: vec![],
                cancel: CancelWhen::Never,
                judge: Judge::RunsAsUser,
            },
        );
    }
    for scenario in scenarios {
        let started = Instant::now();
        let no_hold = sched.as_ref().is_some_and(|s| s.hold.is_none());
        let verdict = if scenario.judge == Judge::Refused && config.batch.allow_illegal_args {
            (
                Verdict::Skip,
                "allow_illegal_args = true: users may set the flags batchci sets".into(),
            )
        } else if scenario.judge == Judge::Cancelled(JobState::Pending) && no_hold {
            (
                Verdict::Skip,
                format!(
                    "no way to hold a {} job in the simulated cluster",
                    site.executor
                ),
            )
        } else {
            scenario.run(harness, site, config).await
        };
        push(scenario.label, started, verdict);
    }
    checks
}

/// How a scenario's outcome is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judge {
    /// Failed with exit code 3.
    Fails,
    /// The secret never in the log.
    Masked,
    /// Refused by batchci before anything was submitted.
    Refused,
    /// Cancelled in this state, its allocation released.
    Cancelled(JobState),
    /// Ran as the local account batchci mapped the pipeline's user to, in the script and
    /// in the scheduler's record.
    RunsAsUser,
}

/// One scenario after the passing job: a job, when verify cancels it, how it is judged.
struct Scenario {
    label: &'static str,
    job: &'static str,
    script: &'static [&'static str],
    parameters: String,
    variables: Vec<Variable>,
    cancel: CancelWhen,
    judge: Judge,
}

impl Scenario {
    async fn run(
        &self,
        harness: &Harness,
        site: &SiteRunner,
        config: &RunnerConfig,
    ) -> (Verdict, String) {
        let outcome = harness
            .run(
                self.job,
                job(site, config, self.script, &self.parameters),
                self.variables.clone(),
                self.cancel,
            )
            .await;
        match self.judge {
            Judge::Fails => fails(outcome),
            Judge::Masked => masked(outcome),
            Judge::Refused => refused(outcome, &self.parameters),
            Judge::Cancelled(state) => cancelled(outcome, state),
            Judge::RunsAsUser => runs_as_user(outcome, &harness.user),
        }
    }
}

/// The scenarios after the passing job; those needing a scheduler only with `sched`.
fn scenarios(base: &str, sched: Option<&Scheduler>) -> Vec<Scenario> {
    let mut all = vec![
        Scenario {
            label: "failing job's exit code",
            job: "verify-fails",
            script: &["echo failing on purpose", "exit 3"],
            parameters: base.into(),
            variables: vec![],
            cancel: CancelWhen::Never,
            judge: Judge::Fails,
        },
        Scenario {
            label: "masked variable",
            job: "verify-masked",
            script: &["echo \"the secret is $VERIFY_SECRET\""],
            parameters: base.into(),
            variables: vec![Variable {
                key: "VERIFY_SECRET".into(),
                value: SECRET.into(),
                masked: true,
            }],
            cancel: CancelWhen::Never,
            judge: Judge::Masked,
        },
    ];
    let Some(sched) = sched else {
        return all;
    };
    all.extend([
        Scenario {
            label: "refused flag",
            job: "verify-refused",
            script: &["echo never submitted"],
            parameters: sched.refused.into(),
            variables: vec![],
            cancel: CancelWhen::Never,
            judge: Judge::Refused,
        },
        Scenario {
            label: "cancel while pending",
            job: "verify-cancel-pending",
            script: &["echo never started"],
            parameters: joined(base, sched.hold.unwrap_or("")),
            variables: vec![],
            cancel: CancelWhen::Pending,
            judge: Judge::Cancelled(JobState::Pending),
        },
        Scenario {
            label: "cancel while running",
            job: "verify-cancel-running",
            script: &["echo batchci-verify-running", "sleep 600"],
            parameters: base.into(),
            variables: vec![],
            cancel: CancelWhen::Running,
            judge: Judge::Cancelled(JobState::Running),
        },
    ]);
    all
}

/// Whether the runner's default partition exists, is up, and started a trivial job.
fn default_partition(harness: &Harness, site: &SiteRunner, outcome: &Outcome) -> (Verdict, String) {
    let cluster = &harness.cluster.config;
    let names = cluster
        .partitions
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let partition = match &site.partition {
        Some((name, setting)) => match cluster.partition(name) {
            Some(partition) => partition,
            None => {
                return (
                    Verdict::Fail,
                    format!("partition {name} ({setting}) does not exist; the cluster has {names}"),
                );
            }
        },
        // Slurm has no fallback: without `Default=YES` a job that names no partition is
        // refused (the simulated cluster would take the first one).
        None if matches!(
            site.executor,
            ExecutorKind::Slurm | ExecutorKind::DockerSlurm
        ) && !cluster.partitions.iter().any(|p| p.default) =>
        {
            return (
                Verdict::Fail,
                format!(
                    "the runner names no partition and the cluster has no default one (Default=YES): Slurm refuses its jobs (No partition specified or system default partition); the cluster has {names}"
                ),
            );
        }
        None => match cluster.default_partition() {
            Some(partition) => partition,
            None => return (Verdict::Fail, "the cluster has no partition".into()),
        },
    };
    if partition.state != "UP" {
        return (
            Verdict::Fail,
            format!(
                "partition {} is {}: no job starts there",
                partition.name, partition.state
            ),
        );
    }
    if let (Some(reason), Some(seen)) = (&outcome.pend_forever, &outcome.seen) {
        return (
            Verdict::Fail,
            format!(
                "a trivial job would pend forever ({reason}): {}",
                explain(reason, seen, cluster)
            ),
        );
    }
    match &outcome.seen {
        Some(seen) if seen.state != JobState::Pending => (
            Verdict::Ok,
            format!(
                "{}: a trivial job started on {}",
                seen.partition, seen.nodes
            ),
        ),
        Some(seen) => (
            Verdict::Fail,
            format!("a trivial job never left the queue ({})", seen.reason),
        ),
        None => (
            Verdict::Fail,
            format!(
                "a trivial job was not submitted: {}",
                failure_line(&outcome.trace)
            ),
        ),
    }
}

/// How a job ended, in one line: `ended failed (exit code 1): <why>`.
pub(crate) fn ended(outcome: &Outcome) -> String {
    format!(
        "ended {} (exit code {}): {}",
        outcome.view.status.as_str(),
        outcome.view.exit_code.unwrap_or(0),
        failure_line(&outcome.trace)
    )
}

fn passes(outcome: &Outcome) -> (Verdict, String) {
    if outcome.view.status != JobStatus::Success {
        return (Verdict::Fail, ended(outcome));
    }
    let text = crate::mock_site::readable(&outcome.trace);
    let mut next = 1;
    for line in text.lines() {
        if line.trim_end() == format!("verify line {next}") {
            next += 1;
        }
    }
    if next <= LINES || !text.contains("batchci-verify-end") {
        return (
            Verdict::Fail,
            format!(
                "the log lacks lines: {} of {LINES} arrived in order",
                next - 1
            ),
        );
    }
    let place = outcome
        .seen
        .as_ref()
        .map(|s| format!(" (job {} in {} on {})", s.id, s.partition, s.nodes))
        .unwrap_or_default();
    (
        Verdict::Ok,
        format!("success, {LINES} lines arrived whole{place}"),
    )
}

fn fails(outcome: anyhow::Result<Outcome>) -> (Verdict, String) {
    match outcome {
        Err(error) => (Verdict::Fail, format!("{error:#}")),
        Ok(o) if o.view.status == JobStatus::Failed && o.view.exit_code == Some(3) => (
            Verdict::Ok,
            "failed with exit code 3, as the script did".into(),
        ),
        Ok(o) => (Verdict::Fail, format!("not failed with 3: {}", ended(&o))),
    }
}

fn masked(outcome: anyhow::Result<Outcome>) -> (Verdict, String) {
    match outcome {
        Err(error) => (Verdict::Fail, format!("{error:#}")),
        Ok(o) if o.trace.contains(SECRET) => (
            Verdict::Fail,
            "the masked variable's value is in the log".into(),
        ),
        Ok(o) if o.view.status == JobStatus::Success && o.trace.contains("[MASKED]") => (
            Verdict::Ok,
            "the log shows [MASKED], never the value".into(),
        ),
        Ok(o) => (Verdict::Fail, ended(&o)),
    }
}

fn refused(outcome: anyhow::Result<Outcome>, parameters: &str) -> (Verdict, String) {
    match outcome {
        Err(error) => (Verdict::Fail, format!("{error:#}")),
        Ok(o) => match &o.seen {
            Some(seen) => (
                Verdict::Fail,
                format!("`{parameters}` was submitted (scheduler job {})", seen.id),
            ),
            None if o.view.status == JobStatus::Failed && o.trace.contains("is set by batchci") => {
                (
                    Verdict::Ok,
                    format!("`{parameters}` refused before submission"),
                )
            }
            None => (
                Verdict::Fail,
                format!(
                    "`{parameters}` not refused by batchci: ended {}: {}",
                    o.view.status.as_str(),
                    failure_line(&o.trace)
                ),
            ),
        },
    }
}

/// batchci's line `Running as local user NAME (uid N) for GitLab user LOGIN ...`, the script's
/// `id -un` and the scheduler's owner of the job must name one account.
fn runs_as_user(outcome: anyhow::Result<Outcome>, login: &str) -> (Verdict, String) {
    let o = match outcome {
        Err(error) => return (Verdict::Fail, format!("{error:#}")),
        Ok(o) => o,
    };
    let text = crate::mock_site::readable(&o.trace);
    let mapped = text.lines().find_map(|line| {
        let rest = line.split("Running as local user ").nth(1)?;
        rest.split_whitespace().next().map(str::to_string)
    });
    let printed = text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("batchci-verify-user=")
            .map(str::to_string)
    });
    let Some(mapped) = mapped else {
        return (
            Verdict::Fail,
            format!(
                "GitLab user {login}'s job did not run as a local user: {}",
                failure_line(&o.trace)
            ),
        );
    };
    if o.view.status != JobStatus::Success || printed.as_deref() != Some(mapped.as_str()) {
        return (
            Verdict::Fail,
            format!(
                "mapped to {mapped}, but the script ran as {}: {}",
                printed.as_deref().unwrap_or("(nothing printed)"),
                ended(&o)
            ),
        );
    }
    match &o.seen {
        Some(seen) if seen.user != mapped => (
            Verdict::Fail,
            format!(
                "mapped to {mapped}, but the scheduler's job {} belongs to {}",
                seen.id, seen.user
            ),
        ),
        Some(seen) => (
            Verdict::Ok,
            format!(
                "GitLab user {login} ran as {mapped}, and so did scheduler job {}",
                seen.id
            ),
        ),
        None => (Verdict::Ok, format!("GitLab user {login} ran as {mapped}")),
    }
}

fn cancelled(outcome: anyhow::Result<Outcome>, wanted: JobState) -> (Verdict, String) {
    let o = match outcome {
        Err(error) => return (Verdict::Fail, format!("{error:#}")),
        Ok(o) => o,
    };
    let Some(seen) = &o.seen else {
        return (
            Verdict::Fail,
            format!("no scheduler job seen: {}", failure_line(&o.trace)),
        );
    };
    if o.cancelled_in != Some(wanted) {
        return (
            Verdict::Fail,
            format!(
                "job {} was never seen {} (last {}, {})",
                seen.id,
                wanted.long(),
                seen.state.long(),
                seen.reason
            ),
        );
    }
    if o.view.status != JobStatus::Canceled {
        return (
            Verdict::Fail,
            format!("GitLab shows {}, not canceled", o.view.status.as_str()),
        );
    }
    match o.released {
        Some(true) => (
            Verdict::Ok,
            format!(
                "job {} cancelled while {}; its allocation was released",
                seen.id,
                wanted.long().to_lowercase()
            ),
        ),
        _ => (
            Verdict::Fail,
            format!(
                "job {} is still {} after the cancel",
                seen.id,
                seen.state.long()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_line_is_plain_words() {
        let trace = "\u{1b}[0Ksection_start:1:x\r\u{1b}[0Kok\n\u{1b}[0K\u{1b}[31;1mERROR: Job failed: SCHEDULER_PARAMETERS: -o/--output is set by batchci\u{1b}[0;m\n";
        assert_eq!(
            failure_line(trace),
            "SCHEDULER_PARAMETERS: -o/--output is set by batchci"
        );
    }
}
