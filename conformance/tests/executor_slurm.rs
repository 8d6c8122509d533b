//! The slurm backend end to end: mock GitLab, the real `batchci run`, and Slurm — the simulated
//! cluster always, the real Slurm 22.05 as well when `ci/test` started one. Each case asserts the
//! job's state, its log, and what Slurm was asked.

mod support;

use std::time::Duration;

use mock_gitlab::JobStatus;
use support::cluster::Cluster;
use support::{Batchci, Site, plain_lines};

on_both_clusters!(
    a_passing_job_runs_through_sbatch_and_its_output_is_followed,
    after_a_crash_and_restart_no_file_holds_a_secret,
    the_first_sigterm_lets_the_running_job_finish_and_takes_no_new_one,
    a_second_sigterm_cancels_the_running_job_and_releases_its_allocation,
    batched_waiting_ends_every_job_with_its_own_exit_code,
);

fn start(site: &Site, cluster: &Cluster) -> Batchci {
    let config = site.write_config("slurm", &cluster.batch_table(""));
    let env: Vec<(String, String)> = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Batchci::run(&config, &env)
}

fn sbatch_calls(cluster: &Cluster) -> Vec<Vec<String>> {
    cluster
        .calls_of("sbatch")
        .into_iter()
        .filter(|argv| argv.iter().any(|a| a.starts_with("--job-name=ci-job-")))
        .collect()
}

/// The Slurm job id in a line batchci logged (`Submitted batch job N`).
fn submitted_id_in(line: &str) -> Option<String> {
    line.strip_prefix("Submitted batch job ")
        .map(|id| id.trim().to_string())
}

async fn wait_for_submission(site: &Site, job: u64) -> String {
    site.wait_for_line(job, submitted_id_in).await
}

async fn a_passing_job_runs_through_sbatch_and_its_output_is_followed(cluster: &Cluster) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        "build:\n  tags: [slurm]\n  script:\n    - cat README.md\n    - echo \"on $SLURM_JOB_NAME\"\n",
        &[],
    );
    let _batchci = start(&site, cluster);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(
        job.status,
        JobStatus::Success,
        "{} cluster:\n{trace}",
        cluster.kind()
    );
    let lines = plain_lines(&trace);
    let name = format!("ci-job-{}", job.id);
    let submit = lines
        .iter()
        .find(|l| l.starts_with("$ sbatch "))
        .expect("the sbatch command is logged");
    assert!(submit.starts_with("$ sbatch --wait --output="), "{submit}");
    // The script goes to sbatch's standard input: no file of it on the shared file system.
    assert!(submit.ends_with(&format!(" --job-name={name}")), "{submit}");
    let after: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("Submitted batch job "))
        .skip(1)
        .take(4)
        .collect();
    assert_eq!(
        after,
        [
            "$ cat README.md",
            "hello from the repository",
            "$ echo \"on $SLURM_JOB_NAME\"",
            &format!("on {name}")
        ]
    );
    let calls = sbatch_calls(cluster);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0][1], "--wait");
    assert!(calls[0][2].starts_with("--output="));
    assert_eq!(calls[0][3], format!("--job-name={name}"));
    assert_eq!(calls[0].len(), 4, "{:?}", calls[0]);
}

/// Every file under `dir` whose bytes contain `needle`.
/// With `wait = "batched"` sbatch only submits, and the runner's jobs are waited for in status
/// rounds: one `squeue -j <id>,<id>,...` every `status_interval` for all of them. A job whose
/// script says it has ended is asked about alone at once; one whose script replaced that word
/// (its own EXIT trap) is seen to end by a round. Each ends with the exit code Slurm recorded.
async fn batched_waiting_ends_every_job_with_its_own_exit_code(cluster: &Cluster) {
    let site = Site::start(&["slurm"]).await;
    let job = |name: &str, lines: &[&str]| {
        let lines: String = lines.iter().map(|l| format!("    - {l}\n")).collect();
        format!(
            "{name}:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n{lines}"
        )
    };
    let yaml = [
        job("quick", &["echo quick"]),
        job("fails", &["sleep 1", "exit 4"]),
        job("trapped", &["\"trap 'echo trapped-exit' EXIT\"", "sleep 1"]),
    ]
    .concat();
    let pipeline = site.pipeline(&yaml, &[]);
    let config = site.write_config(
        "slurm",
        &cluster.batch_table("  wait = \"batched\"\n  status_interval = \"1s\"\n"),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("concurrent = 2", "concurrent = 3")).unwrap();
    let env: Vec<(String, String)> = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _batchci = Batchci::run(&config, &env);

    let mut slurm_ids = Vec::new();
    let mut outcomes = Vec::new();
    for created in &pipeline.jobs {
        let (job, trace) = site.finished(created.id).await;
        let lines = plain_lines(&trace);
        slurm_ids.push(
            lines
                .iter()
                .find_map(|l| submitted_id_in(l))
                .expect("a Slurm job id in the log"),
        );
        outcomes.push((
            job.name.clone(),
            job.status,
            job.exit_code,
            lines.iter().any(|l| l == "trapped-exit"),
        ));
    }

    assert_eq!(
        outcomes,
        [
            ("quick".to_string(), JobStatus::Success, Some(0), false),
            ("fails".to_string(), JobStatus::Failed, Some(4), false),
            ("trapped".to_string(), JobStatus::Success, Some(0), true),
        ],
        "{} cluster",
        cluster.kind()
    );
    let sbatch = sbatch_calls(cluster);
    assert_eq!(sbatch.len(), 3, "{sbatch:?}");
    assert!(
        sbatch
            .iter()
            .all(|argv| !argv.contains(&"--wait".to_string())),
        "{sbatch:?}"
    );
    // The trapped job could only be seen to end by a round: its id is in one.
    let rounds: Vec<Vec<String>> = cluster
        .calls_of("squeue")
        .into_iter()
        .filter(|argv| argv.ends_with(&["-o".to_string(), "%i %T".to_string()]))
        .collect();
    let listed = |argv: &Vec<String>| -> Vec<String> {
        let at = argv.iter().position(|a| a == "-j").expect("-j");
        argv[at + 1].split(',').map(str::to_string).collect()
    };
    assert!(
        rounds
            .iter()
            .any(|argv| listed(argv).contains(&slurm_ids[2])),
        "{rounds:?}"
    );
    assert!(
        rounds
            .iter()
            .all(|argv| listed(argv).iter().all(|id| slurm_ids.contains(id))),
        "{rounds:?}"
    );
}

fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| {
                bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            }) {
                found.push(path);
            }
        }
    }
    found
}

async fn after_a_crash_and_restart_no_file_holds_a_secret(cluster: &Cluster) {
    let site = Site::start(&["slurm"]).await;
    let secret = "s3cr3t-deploy-key-4711";
    let pipeline = site.pipeline(
        "leaky:\n  tags: [slurm]\n  script:\n    - echo \"the key is $DEPLOY_KEY\"\n    - sleep 300\n",
        &[("DEPLOY_KEY", secret, true)],
    );
    let id = pipeline.jobs[0].id;
    let token = site.gitlab.job_token(id).unwrap();
    let mut first = start(&site, cluster);
    site.wait_for_line(id, |line| (line == "the key is [MASKED]").then_some(()))
        .await;
    let builds = site.dir.path().join("builds");
    let state = site.dir.path().join("state");
    // The premise: the raw output file on the shared file system holds the secret now.
    assert!(
        !files_containing(&builds, secret).is_empty(),
        "the job's raw output is expected to hold the secret while it runs"
    );

    first.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(first.wait(Duration::from_secs(10)).is_none());
    let _second = start(&site, cluster);
    let (job, trace) = site.finished(id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
    // Recovery forgets the record right after GitLab has taken the failure.
    let records = state.join("submissions");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&records).is_ok_and(|mut entries| entries.next().is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the record of the recovered job is still there"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for needle in [secret, token.as_str()] {
        assert_eq!(
            files_containing(&builds, needle),
            Vec::<std::path::PathBuf>::new()
        );
        assert_eq!(
            files_containing(&state, needle),
            Vec::<std::path::PathBuf>::new()
        );
    }
    let checkout = std::fs::read_dir(&builds).unwrap().count();
    assert!(checkout > 0, "the checkout itself stays, without the token");
}

async fn the_first_sigterm_lets_the_running_job_finish_and_takes_no_new_one(cluster: &Cluster) {
    let site = Site::start(&["slurm"]).await;
    let first = site.pipeline(
        "finish:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - sleep 3\n    - echo finished\n",
        &[],
    );
    let mut batchci = start(&site, cluster);
    let id = first.jobs[0].id;
    wait_for_submission(&site, id).await;

    batchci.signal(nix::sys::signal::Signal::SIGTERM);
    let later = site.pipeline(
        "later:\n  tags: [slurm]\n  script:\n    - echo taken\n",
        &[],
    );
    let (job, trace) = site.finished(id).await;
    let code = batchci.wait(Duration::from_secs(60));

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    assert!(plain_lines(&trace).iter().any(|l| l == "finished"));
    assert_eq!(code, Some(0), "batchci exits 0 once its jobs are done");
    let untouched = site.gitlab.job(later.jobs[0].id).unwrap();
    assert_eq!(
        untouched.status,
        JobStatus::Pending,
        "a draining runner takes no new job"
    );
    assert!(cluster.calls_of("scancel").is_empty());
}

async fn a_second_sigterm_cancels_the_running_job_and_releases_its_allocation(cluster: &Cluster) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        "stuck:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - sleep 300\n  after_script:\n    - echo after-script-ran\n",
        &[],
    );
    let mut batchci = start(&site, cluster);
    let id = pipeline.jobs[0].id;
    let slurm_id = wait_for_submission(&site, id).await;

    batchci.signal(nix::sys::signal::Signal::SIGTERM);
    batchci.wait_for_log("SIGTERM: taking no new jobs", Duration::from_secs(10));
    batchci.signal(nix::sys::signal::Signal::SIGTERM);
    let code = batchci.wait(Duration::from_secs(60));
    let (job, trace) = site.finished(id).await;

    assert_eq!(code, Some(0), "batchci exits after cancelling");
    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
    assert_eq!(
        cluster.calls_of("scancel"),
        [vec!["scancel".to_string(), slurm_id.clone()]]
    );
    assert!(
        !cluster.job_active(&slurm_id),
        "Slurm job {slurm_id} outlived batchci"
    );
    assert_eq!(
        plain_lines(&trace).last().map(String::as_str),
        Some("ERROR: Job failed (system failure): the job was aborted")
    );
}

/// Failures only the simulated cluster can produce on demand, and what only it records (the
/// exit code of every scheduler command).
mod injected {
    use super::*;

    /// The cluster comes before its directory so that it is stopped before the directory goes.
    use crate::support::site_and_fake_cluster as site_and_cluster;

    #[tokio::test(flavor = "multi_thread")]
    async fn output_that_reaches_the_file_late_still_reaches_the_log() {
        let (site, cluster, _dir) = site_and_cluster().await;
        cluster.inject(&["output-delay", "2"]);
        let pipeline = site.pipeline(
            "late:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo first\n    - echo last\n",
            &[],
        );
        let _batchci = start(&site, &cluster);

        let (job, trace) = site.finished(pipeline.jobs[0].id).await;

        assert_eq!(job.status, JobStatus::Success, "{trace}");
        let lines = plain_lines(&trace);
        let output: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .skip_while(|l| !l.starts_with("Submitted batch job"))
            .skip(1)
            .take(4)
            .collect();
        assert_eq!(output, ["$ echo first", "first", "$ echo last", "last"]);
    }

    /// `sbatch --wait` looks at its job 2 s, then 10 s after submitting it: a job whose script
    /// ends at ~3 s would be heard of at 10 s. The script's exit trap tells batchci at once;
    /// `scontrol` confirms, and the exit code is the one Slurm recorded.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_end_is_heard_from_the_script_not_from_sbatchs_next_look() {
        let (site, cluster, _dir) = site_and_cluster().await;
        let pipeline = site.pipeline(
            "quick:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - sleep 3\n    - echo done\n    - exit 3\n",
            &[],
        );
        let _batchci = start(&site, &cluster);

        let (job, trace) = site.finished(pipeline.jobs[0].id).await;

        assert_eq!(job.status, JobStatus::Failed, "{trace}");
        assert_eq!(job.exit_code, Some(3));
        assert!(plain_lines(&trace).iter().any(|l| l == "done"), "{trace}");
        let slurm_id = plain_lines(&trace)
            .iter()
            .find_map(|l| submitted_id_in(l))
            .expect("a Slurm job id in the log");
        // batchci stopped the waiting sbatch (SIGTERM: 128 + 15) once Slurm confirmed the end.
        let sbatch: Vec<i64> = cluster
            .fake_calls_with_codes("sbatch")
            .into_iter()
            .map(|(_, code)| code)
            .collect();
        assert_eq!(sbatch, [143]);
        let scontrol = cluster.fake_calls_with_codes("scontrol");
        assert!(
            scontrol.iter().any(
                |(argv, code)| argv == &["show", "job", "-o", slurm_id.as_str()] && *code == 0
            ),
            "{scontrol:?}"
        );
    }

    /// In batched waiting a job cancelled from outside while it is still pending leaves the
    /// queue with exit code 0 in Slurm's record: the round sees it go, and its CANCELLED state
    /// makes it a failure, never a success.
    #[tokio::test(flavor = "multi_thread")]
    async fn batched_waiting_never_takes_a_job_cancelled_while_pending_for_a_success() {
        let (site, cluster, _dir) = site_and_cluster().await;
        let pipeline = site.pipeline(
            "later:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n    SCHEDULER_PARAMETERS: \"--begin=now+3600\"\n  script:\n    - echo never\n",
            &[],
        );
        let config = site.write_config(
            "slurm",
            &cluster.batch_table("  wait = \"batched\"\n  status_interval = \"1s\"\n"),
        );
        let env: Vec<(String, String)> = cluster.batchci_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let _batchci = Batchci::run(&config, &env);
        let id = pipeline.jobs[0].id;
        let slurm_id = wait_for_submission(&site, id).await;

        let scancel = std::process::Command::new("scancel")
            .envs(env.iter().copied())
            .arg(&slurm_id)
            .status()
            .unwrap();
        assert!(scancel.success());
        let (job, trace) = site.finished(id).await;

        assert_eq!(job.status, JobStatus::Failed, "{trace}");
        assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
        assert_eq!(
            plain_lines(&trace).last().map(String::as_str),
            Some(
                format!(
                    "ERROR: Job failed (system failure): Slurm job {slurm_id} was cancelled outside batchci (state CANCELLED)"
                )
                .as_str()
            )
        );
    }

    /// A script that sets its own EXIT trap replaces batchci's: its end is then heard from
    /// `sbatch --wait` alone, as before, and nothing else changes.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_script_with_its_own_exit_trap_ends_when_sbatch_returns() {
        let (site, cluster, _dir) = site_and_cluster().await;
        let pipeline = site.pipeline(
            "trapped:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - trap 'echo bye' EXIT\n    - echo working\n",
            &[],
        );
        let _batchci = start(&site, &cluster);

        let (job, trace) = site.finished(pipeline.jobs[0].id).await;

        assert_eq!(job.status, JobStatus::Success, "{trace}");
        let lines = plain_lines(&trace);
        assert!(lines.iter().any(|l| l == "bye"), "{trace}");
        let sbatch: Vec<i64> = cluster
            .fake_calls_with_codes("sbatch")
            .into_iter()
            .map(|(_, code)| code)
            .collect();
        assert_eq!(sbatch, [0]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refused_submission_fails_the_job_with_slurms_words() {
        let (site, cluster, _dir) = site_and_cluster().await;
        cluster.inject(&[
            "submit-errors",
            "1",
            "--message",
            "Invalid qos specification",
        ]);
        let pipeline = site.pipeline(
            "refused:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo never\n",
            &[],
        );
        let _batchci = start(&site, &cluster);

        let (job, trace) = site.finished(pipeline.jobs[0].id).await;

        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.exit_code, Some(1));
        assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
        let lines = plain_lines(&trace);
        assert!(
            lines
                .iter()
                .any(|l| l
                    == "sbatch: error: Batch job submission failed: Invalid qos specification"),
            "{lines:#?}"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some(
                "ERROR: Job failed: sbatch refused the job (exit code 1): Batch job submission failed: Invalid qos specification"
            )
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_node_is_a_system_failure() {
        let (site, cluster, _dir) = site_and_cluster().await;
        let pipeline = site.pipeline(
            "doomed:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo \"node=$SLURMD_NODENAME\"\n    - sleep 300\n",
            &[],
        );
        let _batchci = start(&site, &cluster);
        let id = pipeline.jobs[0].id;
        let slurm_id = wait_for_submission(&site, id).await;
        let node = loop {
            let trace = String::from_utf8_lossy(&site.gitlab.trace(id).unwrap()).into_owned();
            if let Some(node) = plain_lines(&trace)
                .iter()
                .find_map(|l| l.strip_prefix("node=").map(str::to_string))
            {
                break node;
            }
            site.gitlab
                .wait_for_trace(id, trace.len() as u64 + 1, Duration::from_secs(30))
                .await
                .unwrap();
        };

        cluster.inject(&["fail-node", &node]);
        let (job, trace) = site.finished(id).await;

        assert_eq!(job.status, JobStatus::Failed, "{trace}");
        assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
        assert_eq!(
            plain_lines(&trace).last().map(String::as_str),
            Some(
                format!("ERROR: Job failed (system failure): Slurm job {slurm_id} ended NODE_FAIL")
                    .as_str()
            )
        );
    }
}
