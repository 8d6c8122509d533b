//! The contract every batch backend keeps, end to end: mock GitLab, the real `batchci run`,
//! and the scheduler — Slurm (the simulated cluster, and the real Slurm 22.05 under `ci/test`),
//! PBS and Cobalt (their simulated clusters). Each case is written once against a
//! [`Scheduler`] description and run for each scheduler; the traps particular to one scheduler
//! follow at the end.

mod support;

use std::time::Duration;

use mock_gitlab::JobStatus;
use support::cluster::Cluster;
use support::{Batchci, Site, plain_lines};

/// What a case needs to know of a scheduler.
struct Scheduler {
    /// `executor = ...`.
    executor: &'static str,
    /// The submit command.
    submit: &'static str,
    /// The cancel command.
    cancel: &'static str,
    /// The cancel command's words before the job id (`flux cancel`).
    cancel_args: &'static [&'static str],
    /// Parameters every job needs (Cobalt's `-t` and `-n`).
    base: &'static str,
    /// Parameters a case applies, which must reach the submit command in this order.
    params: &'static str,
    /// A parameter batchci controls, and the flag the refusal names.
    illegal: (&'static str, &'static str),
    /// The scheduler's job id in a line of the job log.
    job_id: fn(&str) -> Option<String>,
}

const SLURM: Scheduler = Scheduler {
    cancel_args: &[],
    executor: "slurm",
    submit: "sbatch",
    cancel: "scancel",
    base: "",
    params: "-p gitlab-ci -t 10 -c 2",
    illegal: ("--output=/etc/motd", "-o/--output"),
    job_id: |line| {
        line.strip_prefix("Submitted batch job ")
            .map(|id| id.trim().to_string())
    },
};

const PBS: Scheduler = Scheduler {
    cancel_args: &[],
    executor: "pbs",
    submit: "qsub",
    cancel: "qdel",
    base: "",
    params: "-q gitlab-ci -l walltime=00:10:00 -A project",
    illegal: ("-o /etc/motd", "-o"),
    job_id: |line| {
        let (sequence, server) = line.trim().split_once('.')?;
        (sequence.chars().all(|c| c.is_ascii_digit()) && !server.contains(' '))
            .then(|| line.trim().to_string())
    },
};

const COBALT: Scheduler = Scheduler {
    cancel_args: &[],
    executor: "cobalt",
    submit: "qsub",
    cancel: "qdel",
    base: "-t 10 -n 1",
    params: "-q gitlab-ci -A project",
    illegal: ("--output /etc/motd", "-o/--output"),
    job_id: |line| {
        let line = line.trim();
        (!line.is_empty() && line.chars().all(|c| c.is_ascii_digit())).then(|| line.to_string())
    },
};

const LSF: Scheduler = Scheduler {
    cancel_args: &[],
    executor: "lsf",
    submit: "bsub",
    cancel: "bkill",
    base: "",
    params: "-q gitlab-ci -n 1 -W 10",
    illegal: ("-oo /etc/motd", "-oo"),
    job_id: |line| {
        let rest = line.trim().strip_prefix("Job <")?;
        let (id, after) = rest.split_once('>')?;
        after.starts_with(" is submitted").then(|| id.to_string())
    },
};

const FLUX: Scheduler = Scheduler {
    cancel_args: &["cancel"],
    executor: "flux",
    submit: "flux",
    cancel: "flux",
    base: "",
    params: "-N 1 -n 1 -t 10m --queue=gitlab-ci",
    illegal: ("--output=/etc/motd", "--output"),
    job_id: |line| {
        line.trim()
            .strip_prefix("jobid: ")
            .map(|id| id.trim().to_string())
    },
};

/// Runs each `$case` for Slurm (simulated and, under `ci/test`, real), PBS, Cobalt, LSF and
/// Flux.
macro_rules! for_every_scheduler {
    ($($case:ident),* $(,)?) => {
        mod slurm_fake {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let cluster = super::Cluster::fake(dir.path());
                    super::$case(&super::SLURM, &cluster).await;
                }
            )*
        }
        mod slurm_real {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    if let Some(cluster) = super::Cluster::real(dir.path()) {
                        super::$case(&super::SLURM, &cluster).await;
                    }
                }
            )*
        }
        mod pbs {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let cluster = super::Cluster::fake_flavored(dir.path(), "pbs");
                    super::$case(&super::PBS, &cluster).await;
                }
            )*
        }
        mod cobalt {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let cluster = super::Cluster::fake_flavored(dir.path(), "cobalt");
                    super::$case(&super::COBALT, &cluster).await;
                }
            )*
        }
        mod lsf {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let cluster = super::Cluster::fake(dir.path());
                    super::$case(&super::LSF, &cluster).await;
                }
            )*
        }
        mod flux {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let cluster = super::Cluster::fake(dir.path());
                    super::$case(&super::FLUX, &cluster).await;
                }
            )*
        }
    };
}

for_every_scheduler!(
    a_passing_job_runs_through_the_scheduler_and_its_output_is_followed,
    a_failing_job_reports_the_scripts_exit_code_and_runs_after_script,
    masked_values_never_reach_the_log,
    scheduler_parameters_reach_the_submit_command_in_order,
    a_controlled_parameter_is_refused_before_anything_is_submitted,
    a_graceful_cancel_runs_the_cancel_command_and_after_script,
    the_job_timeout_cancels_the_job_and_reports_job_execution_timeout,
    a_killed_executor_cancels_the_orphaned_job_when_restarted,
    output_reaches_the_log_while_the_job_still_runs,
);

fn start(site: &Site, scheduler: &Scheduler, cluster: &Cluster) -> Batchci {
    let config = site.write_config(scheduler.executor, &cluster.batch_table(""));
    let env = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Batchci::run(&config, &env)
}

/// A one-job pipeline for `scheduler` with `parameters` (after the scheduler's `base`).
fn job(scheduler: &Scheduler, parameters: &str, body: &str) -> String {
    let parameters = format!("{} {parameters}", scheduler.base);
    format!(
        "build:\n  tags: [{tag}]\n  variables:\n    GIT_STRATEGY: none\n    SCHEDULER_PARAMETERS: \"{parameters}\"\n{body}",
        tag = "slurm",
        parameters = parameters.trim()
    )
}

/// The submit commands batchci ran for CI jobs (the call record).
fn submissions(scheduler: &Scheduler, cluster: &Cluster) -> Vec<Vec<String>> {
    cluster
        .calls_of(scheduler.submit)
        .into_iter()
        .filter(|argv| {
            argv.iter()
                .any(|a| a.contains("ci-job-") || a.contains("cobalt-"))
        })
        .collect()
}

async fn wait_for_job_id(site: &Site, scheduler: &Scheduler, job: u64) -> String {
    let submit = format!("$ {} ", scheduler.submit);
    site.wait_for_line(job, |line| {
        if line.starts_with(&submit) {
            None
        } else {
            (scheduler.job_id)(line)
        }
    })
    .await
}

async fn a_passing_job_runs_through_the_scheduler_and_its_output_is_followed(
    scheduler: &Scheduler,
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job(
            scheduler,
            "",
            "  script:\n    - echo \"first line\"\n    - echo \"second line\" >&2\n",
        ),
        &[],
    );
    let _batchci = start(&site, scheduler, cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.status,
        JobStatus::Success,
        "{}:\n{trace}",
        scheduler.executor
    );
    let lines = plain_lines(&trace);
    let submit = lines
        .iter()
        .find(|l| l.starts_with(&format!("$ {} ", scheduler.submit)))
        .expect("the submit command is logged");
    assert_eq!(submissions(scheduler, cluster).len(), 1, "{submit}");
    for expected in ["$ echo \"first line\"", "first line", "second line"] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{}: {expected:?} in\n{trace}",
            scheduler.executor
        );
    }
}

async fn a_failing_job_reports_the_scripts_exit_code_and_runs_after_script(
    scheduler: &Scheduler,
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job(
            scheduler,
            "",
            "  script:\n    - echo on the node\n    - exit 7\n  after_script:\n    - 'echo \"after: $CI_JOB_STATUS\"'\n",
        ),
        &[],
    );
    let _batchci = start(&site, scheduler, cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.status,
        JobStatus::Failed,
        "{}:\n{trace}",
        scheduler.executor
    );
    assert_eq!(job.exit_code, Some(7), "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    let lines = plain_lines(&trace);
    assert!(lines.iter().any(|l| l == "on the node"), "{trace}");
    assert!(lines.iter().any(|l| l == "after: failed"), "{trace}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("ERROR: Job failed: exit code 7")
    );
}

async fn masked_values_never_reach_the_log(scheduler: &Scheduler, cluster: &Cluster) {
    let site = Site::start(&["slurm"]).await;
    let secret = "t0p-s3cret-value-99";
    let pipeline = site.pipeline(
        &job(
            scheduler,
            "",
            "  script:\n    - echo \"the secret is $SECRET\"\n",
        ),
        &[("SECRET", secret, true)],
    );
    let _batchci = start(&site, scheduler, cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.status,
        JobStatus::Success,
        "{}:\n{trace}",
        scheduler.executor
    );
    assert!(!trace.contains(secret), "{trace}");
    assert!(
        plain_lines(&trace).contains(&"the secret is [MASKED]".to_string()),
        "{trace}"
    );
}

/// A line the script prints is in the GitLab trace while the job is still running: the script
/// then waits for a file that the test creates only once it has seen the line (followed
/// output files for Slurm, PBS and Cobalt; the attached submit command's stream for LSF and
/// Flux).
async fn output_reaches_the_log_while_the_job_still_runs(scheduler: &Scheduler, cluster: &Cluster) {
    let gate_dir = tempfile::tempdir().unwrap();
    let gate = gate_dir.path().join("open");
    let site = Site::start(&["slurm"]).await;
    let body = format!(
        "  script:\n    - echo \"before the gate\"\n    - while [ ! -e {gate} ]; do sleep 0.1; done\n    - echo \"after the gate\"\n",
        gate = gate.display()
    );
    let pipeline = site.pipeline(&job(scheduler, "", &body), &[]);
    let _batchci = start(&site, scheduler, cluster);
    let id = pipeline.jobs[0].id;

    site.wait_for_line(id, |line| (line == "before the gate").then_some(()))
        .await;
    let while_running = site.gitlab.job(id).unwrap();
    std::fs::write(&gate, "").unwrap();
    let (job, trace) = site.finished(id).await;

    assert_eq!(
        while_running.status,
        JobStatus::Running,
        "{}: the line arrived only after the job ended:\n{trace}",
        scheduler.executor
    );
    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let lines = plain_lines(&trace);
    let at = |text: &str| lines.iter().position(|l| l == text);
    assert!(
        at("before the gate") < at("after the gate") && at("after the gate").is_some(),
        "{trace}"
    );
}

async fn scheduler_parameters_reach_the_submit_command_in_order(
    scheduler: &Scheduler,
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job(scheduler, scheduler.params, "  script:\n    - echo ok\n"),
        &[],
    );
    let _batchci = start(&site, scheduler, cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.status,
        JobStatus::Success,
        "{}:\n{trace}",
        scheduler.executor
    );
    let calls = submissions(scheduler, cluster);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let expected: Vec<String> = shell_words(&format!("{} {}", scheduler.base, scheduler.params));
    let argv = &calls[0];
    let found = argv
        .windows(expected.len())
        .any(|window| window == expected.as_slice());
    assert!(found, "{expected:?} in order in {argv:?}");
}

async fn a_controlled_parameter_is_refused_before_anything_is_submitted(
    scheduler: &Scheduler,
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let (parameter, flag) = scheduler.illegal;
    let pipeline = site.pipeline(
        &job(scheduler, parameter, "  script:\n    - echo never\n"),
        &[],
    );
    let _batchci = start(&site, scheduler, cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    assert!(
        plain_lines(&trace).iter().any(|l| l.starts_with(&format!(
            "ERROR: Job failed: SCHEDULER_PARAMETERS: {flag} is set by batchci"
        ))),
        "{}:\n{trace}",
        scheduler.executor
    );
    assert_eq!(submissions(scheduler, cluster), Vec::<Vec<String>>::new());
}

async fn a_graceful_cancel_runs_the_cancel_command_and_after_script(
    scheduler: &Scheduler,
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job(
            scheduler,
            "",
            "  script:\n    - echo started\n    - sleep 300\n  after_script:\n    - 'echo \"after: $CI_JOB_STATUS\"'\n",
        ),
        &[],
    );
    let _batchci = start(&site, scheduler, cluster);
    let id = pipeline.jobs[0].id;
    let scheduler_id = wait_for_job_id(&site, scheduler, id).await;
    site.wait_for_line(id, |line| (line == "started").then_some(()))
        .await;

    site.gitlab.cancel_job(id, false).unwrap();
    let (job, trace) = site.finished(id).await;

    assert_eq!(
        job.status,
        JobStatus::Canceled,
        "{}:\n{trace}",
        scheduler.executor
    );
    assert!(
        plain_lines(&trace).contains(&"after: canceled".to_string()),
        "{trace}"
    );
    assert!(
        cluster
            .calls_of(scheduler.cancel)
            .contains(&cancel_argv(scheduler, &scheduler_id)),
        "{:?}",
        cluster.calls_of(scheduler.cancel)
    );
    assert!(
        !cluster.job_active(&scheduler_id),
        "{scheduler_id} left the queue"
    );
}

async fn the_job_timeout_cancels_the_job_and_reports_job_execution_timeout(
    scheduler: &Scheduler,
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let body = "  timeout: 4\n  script:\n    - echo started\n    - sleep 300\n";
    let pipeline = site.pipeline(&job(scheduler, "", body), &[]);
    let _batchci = start(&site, scheduler, cluster);
    let id = pipeline.jobs[0].id;
    let scheduler_id = wait_for_job_id(&site, scheduler, id).await;

    let (job, trace) = site.finished(id).await;

    assert_eq!(
        job.status,
        JobStatus::Failed,
        "{}:\n{trace}",
        scheduler.executor
    );
    assert_eq!(job.failure_reason.as_deref(), Some("job_execution_timeout"));
    assert!(
        cluster
            .calls_of(scheduler.cancel)
            .contains(&cancel_argv(scheduler, &scheduler_id)),
        "{:?}",
        cluster.calls_of(scheduler.cancel)
    );
    assert!(!cluster.job_active(&scheduler_id));
}

async fn a_killed_executor_cancels_the_orphaned_job_when_restarted(
    scheduler: &Scheduler,
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job(
            scheduler,
            "",
            "  script:\n    - echo started\n    - sleep 300\n",
        ),
        &[],
    );
    let mut first = start(&site, scheduler, cluster);
    let id = pipeline.jobs[0].id;
    let scheduler_id = wait_for_job_id(&site, scheduler, id).await;

    first.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(first.wait(Duration::from_secs(10)).is_none());
    assert!(
        cluster.job_active(&scheduler_id),
        "still queued after the kill"
    );
    let _second = start(&site, scheduler, cluster);
    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
    assert_eq!(
        plain_lines(&trace).last().map(String::as_str),
        Some(format!(
            "ERROR: Job failed (system failure): the batchci process running this job stopped unexpectedly; its {} job {scheduler_id} was cancelled when batchci restarted",
            scheduler.executor
        ).as_str())
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cluster.job_active(&scheduler_id) {
        assert!(
            std::time::Instant::now() < deadline,
            "{scheduler_id} still queued after recovery"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The cancel command batchci runs for job `id`.
fn cancel_argv(scheduler: &Scheduler, id: &str) -> Vec<String> {
    std::iter::once(scheduler.cancel)
        .chain(scheduler.cancel_args.iter().copied())
        .chain(std::iter::once(id))
        .map(str::to_string)
        .collect()
}

fn shell_words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// A PBS job an admin deletes with `qdel`: the CI job fails as deleted, never as the
/// `exit code 3` that `qsub -W block=true` returns for it (reference 2.1).
#[tokio::test(flavor = "multi_thread")]
async fn pbs_a_job_deleted_from_outside_fails_as_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake_flavored(dir.path(), "pbs");
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job(&PBS, "", "  script:\n    - echo started\n    - sleep 300\n"),
        &[],
    );
    let _batchci = start(&site, &PBS, &cluster);
    let id = pipeline.jobs[0].id;
    let pbs_id = wait_for_job_id(&site, &PBS, id).await;
    site.wait_for_line(id, |line| (line == "started").then_some(()))
        .await;

    let qdel = std::process::Command::new("qdel")
        .envs(cluster.batchci_env())
        .arg(&pbs_id)
        .output()
        .unwrap();
    assert!(qdel.status.success(), "{qdel:?}");
    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "ERROR: Job failed (system failure): PBS job {pbs_id} was deleted outside batchci"
        )),
        "{trace}"
    );
    assert!(!last.contains("exit code 3"), "{last}");
}

/// Cobalt's `qstat` failing while the job runs (and ends) is no news: the CI job goes on until
/// a `qstat` that works no longer lists the job (reference 5.3).
#[tokio::test(flavor = "multi_thread")]
async fn cobalt_a_failing_qstat_does_not_end_the_ci_job() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake_flavored(dir.path(), "cobalt");
    let site = Site::start(&["slurm"]).await;
    let release = site.dir.path().join("release");
    let pipeline = site.pipeline(
        &job(
            &COBALT,
            "",
            &format!(
                "  script:\n    - echo started\n    - while [ ! -e {} ]; do sleep 0.1; done\n    - echo finished\n",
                release.display()
            ),
        ),
        &[],
    );
    let _batchci = start(&site, &COBALT, &cluster);
    let id = pipeline.jobs[0].id;
    let cobalt_id = wait_for_job_id(&site, &COBALT, id).await;
    site.wait_for_line(id, |line| (line == "started").then_some(()))
        .await;

    cluster.inject(&["status-timeout", "on"]);
    std::fs::write(&release, b"").unwrap();
    site.wait_for_line(id, |line| (line == "finished").then_some(()))
        .await;
    // The job itself has ended; batchci cannot know, and must not guess.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cluster.job_active(&cobalt_id) {
        assert!(std::time::Instant::now() < deadline, "the job never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    site.wait_for_line(id, |line| {
        line.contains("asking again, the job is not taken as ended")
            .then_some(())
    })
    .await;
    assert_eq!(site.gitlab.job(id).unwrap().status, JobStatus::Running);
    cluster.inject(&["status-timeout", "off"]);
    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
}

/// A Cobalt job killed at its walltime has no completion line in its `.cobaltlog`: the CI job
/// fails with what the log says, not with an exit code (reference 5.2).
#[tokio::test(flavor = "multi_thread")]
async fn cobalt_a_walltime_kill_fails_the_job_without_an_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake_flavored(dir.path(), "cobalt");
    let site = Site::start(&["slurm"]).await;
    // -t 5, the least Cobalt accepts: five simulated minutes, ten real seconds here.
    let pipeline = site.pipeline(
        "build:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n    SCHEDULER_PARAMETERS: \"-t 5 -n 1\"\n  script:\n    - echo started\n    - sleep 300\n",
        &[],
    );
    let _batchci = start(&site, &COBALT, &cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(
        last.ends_with("was killed at its walltime (maximum execution time exceeded)"),
        "{trace}"
    );
}

/// A job someone else kills while it is still pending, with the scheduler's own cancel
/// command: the CI job fails with the scheduler's reason, never as a success or a bare exit
/// code (LSF: `<<Terminated while pending>>`, exit 126, reference 3.1; Flux: a cancel
/// exception, exit 1, reference 4.3).
async fn a_pending_job_killed_from_outside_fails_with_the_schedulers_reason(
    scheduler: &Scheduler,
    expected: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    // Both nodes taken: the CI job has to wait.
    let blocker = std::process::Command::new("sbatch")
        .envs(cluster.batchci_env())
        .current_dir(dir.path())
        .args([
            "--parsable",
            "-N",
            "2",
            "--exclusive",
            "--wrap",
            "sleep 300",
        ])
        .output()
        .unwrap();
    assert!(blocker.status.success(), "{blocker:?}");
    cluster.wait_until_running(String::from_utf8_lossy(&blocker.stdout).trim());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&job(scheduler, "", "  script:\n    - echo never\n"), &[]);
    let _batchci = start(&site, scheduler, &cluster);
    let id = pipeline.jobs[0].id;
    let scheduler_id = wait_for_job_id(&site, scheduler, id).await;

    let kill = std::process::Command::new(scheduler.cancel)
        .envs(cluster.batchci_env())
        .args(scheduler.cancel_args)
        .arg(&scheduler_id)
        .output()
        .unwrap();
    let (job, trace) = site.finished(id).await;
    let _ = std::process::Command::new("scancel")
        .envs(cluster.batchci_env())
        .arg(String::from_utf8_lossy(&blocker.stdout).trim())
        .output();

    assert!(kill.status.success(), "{kill:?}");
    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert!(last.contains(expected), "{last:?} in\n{trace}");
    assert!(!plain_lines(&trace).iter().any(|l| l == "never"), "{trace}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lsf_a_pending_job_killed_from_outside_fails_with_lsfs_reason() {
    a_pending_job_killed_from_outside_fails_with_the_schedulers_reason(
        &LSF,
        "was killed while it was pending",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flux_a_pending_job_killed_from_outside_fails_with_fluxs_reason() {
    a_pending_job_killed_from_outside_fails_with_the_schedulers_reason(&FLUX, "type=cancel").await;
}

/// A step script killed by a signal inside `flux alloc`: flux alloc exits 128+signal and
/// says `flux-job: task(s) Terminated` (reference 4.3); the CI job fails with that exit code.
#[tokio::test(flavor = "multi_thread")]
async fn flux_a_script_killed_by_a_signal_fails_with_128_plus_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        &job(
            &FLUX,
            "",
            "  script:\n    - echo killing myself\n    - kill -TERM $$\n",
        ),
        &[],
    );
    let _batchci = start(&site, &FLUX, &cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    let last = plain_lines(&trace).last().cloned().unwrap_or_default();
    assert_eq!(last, "ERROR: Job failed: exit code 143", "{trace}");
}
