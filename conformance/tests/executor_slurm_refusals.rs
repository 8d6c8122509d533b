//! Submissions Slurm does not accept, end to end through `batchci run`: the job fails at once
//! (no job id, so no output file to wait for), the log carries sbatch's own words line by
//! line, and the failure is blamed on whoever can fix it: the user for what they asked
//! (`script_failure`), the site for a Slurm that cannot be reached or configured
//! (`runner_system_failure`). A busy controller is tried again, each retry said in the log.
//!
//! Every case sets `nfs_timeout = "1h"`: a batchci that waited for the output file of a job
//! that never existed would not finish the job within the case's patience.

mod support;

use mock_gitlab::JobStatus;
use support::cluster::Cluster;
use support::{Batchci, Site, plain_lines};

on_both_clusters!(
    a_partition_that_does_not_exist_fails_the_job_at_once_as_the_users_error,
    more_memory_than_any_node_has_is_the_users_error,
);

/// batchci for `cluster` with `[runners.batch]` settings `extra`, and `env` on top of the
/// cluster's environment, passed on to the scheduler commands.
fn start(site: &Site, cluster: &Cluster, extra: &str, env: &[(&str, &str)]) -> Batchci {
    let passed: String = env.iter().map(|(key, _)| format!(", {key:?}")).collect();
    let table = cluster
        .batch_table(extra)
        .replace("\"SLURM_CONF\"]", &format!("\"SLURM_CONF\"{passed}]"))
        .replace("nfs_timeout = \"5s\"", "nfs_timeout = \"1h\"");
    let config = site.write_config("slurm", &table);
    let mut all = cluster.batchci_env();
    for (key, value) in env {
        all.retain(|(k, _)| k != key);
        all.push((key.to_string(), value.to_string()));
    }
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Batchci::run(&config, &all)
}

fn one_job(parameters: &str) -> String {
    format!(
        "build:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n    SCHEDULER_PARAMETERS: \"{parameters}\"\n  script:\n    - echo never\n"
    )
}

/// The log lines from sbatch's command line to the end.
fn from_submission(trace: &str) -> Vec<String> {
    plain_lines(trace)
        .into_iter()
        .skip_while(|l| !l.starts_with("$ sbatch "))
        .collect()
}

async fn a_partition_that_does_not_exist_fails_the_job_at_once_as_the_users_error(
    cluster: &Cluster,
) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&one_job("-p nonexistent"), &[]);
    let _batchci = start(&site, cluster, "", &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(job.exit_code, Some(1));
    let lines = from_submission(&trace);
    // sbatch's two lines, each on its own line, then the verdict; nothing waited for output.
    assert_eq!(
        lines[1..],
        [
            "sbatch: error: invalid partition specified: nonexistent",
            "sbatch: error: Batch job submission failed: Invalid partition name specified",
            "Cleaning up project directory and file based variables",
            "ERROR: Job failed: sbatch refused the job (exit code 1): Batch job submission failed: Invalid partition name specified",
        ],
        "{} cluster:\n{trace}",
        cluster.kind()
    );
}

async fn more_memory_than_any_node_has_is_the_users_error(cluster: &Cluster) {
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&one_job("--mem=999999"), &[]);
    let _batchci = start(&site, cluster, "", &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    let lines = from_submission(&trace);
    assert_eq!(
        lines.last().map(String::as_str),
        Some(
            "ERROR: Job failed: sbatch refused the job (exit code 1): Batch job submission failed: Requested node configuration is not available"
        ),
        "{} cluster:\n{trace}",
        cluster.kind()
    );
}

/// Real Slurm only: without `SLURM_CONF` in batchci's environment (scheduler commands get it
/// from there, listed in `env_vars` or not) sbatch finds no configuration. That is the site's
/// to fix; `batchci check` says so before any job runs (`check.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn real_without_a_slurm_configuration_the_job_is_a_system_failure() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::real(dir.path()) else {
        return;
    };
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(&one_job("-t 1"), &[]);
    let table = cluster
        .batch_table("")
        .replace("nfs_timeout = \"5s\"", "nfs_timeout = \"1h\"");
    let config = site.write_config("slurm", &table);
    let env = cluster.batchci_env();
    let env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k != "SLURM_CONF")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let _batchci = Batchci::run(&config, &env);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
    let lines = from_submission(&trace);
    assert!(
        lines.contains(&"sbatch: fatal: Could not establish a configuration source".to_string()),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some(
            "ERROR: Job failed (system failure): sbatch refused the job (exit code 1): Could not establish a configuration source"
        )
    );
}

mod fake_only {
    use super::*;

    use crate::support::site_and_fake_cluster as site_and_cluster;

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_controller_is_a_system_failure() {
        let site = Site::start(&["slurm"]).await;
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::fake(dir.path());
        let nowhere = dir.path().join("no-cluster-here");
        let nowhere = nowhere.display().to_string();
        let pipeline = site.pipeline(&one_job("-t 1"), &[]);
        let _batchci = start(
            &site,
            &cluster,
            "",
            &[
                ("MOCK_CLUSTER_STATE_DIR", &nowhere),
                ("MOCK_CLUSTER_NO_AUTOSTART", "1"),
            ],
        );

        let (job, trace) = site.finished(pipeline.jobs[0].id).await;

        assert_eq!(job.status, JobStatus::Failed, "{trace}");
        assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
        assert_eq!(
            from_submission(&trace).last().map(String::as_str),
            Some(
                "ERROR: Job failed (system failure): sbatch refused the job (exit code 1): Batch job submission failed: Unable to contact slurm controller (connect failure)"
            )
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_busy_controller_is_tried_again_and_the_job_runs() {
        let (site, cluster, _dir) = site_and_cluster().await;
        cluster.inject(&[
            "submit-errors",
            "2",
            "--message",
            "Socket timed out on send/recv operation",
        ]);
        let pipeline = site.pipeline(
            "build:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo ran at last\n",
            &[],
        );
        let _batchci = start(
            &site,
            &cluster,
            "  submit_retries = 3\n  submit_retry_delay = \"100ms\"\n",
            &[],
        );

        let (job, trace) = site.finished(pipeline.jobs[0].id).await;

        assert_eq!(job.status, JobStatus::Success, "{trace}");
        let lines = from_submission(&trace);
        let retries: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("refused the job for a passing reason"))
            .collect();
        assert_eq!(
            retries,
            [
                "WARNING: sbatch refused the job for a passing reason (Batch job submission failed: Socket timed out on send/recv operation); retry 1 of 3 in 100ms",
                "WARNING: sbatch refused the job for a passing reason (Batch job submission failed: Socket timed out on send/recv operation); retry 2 of 3 in 200ms",
            ]
        );
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("$ sbatch ")).count(),
            3
        );
        assert!(lines.contains(&"ran at last".to_string()), "{lines:#?}");
        assert_eq!(
            super::sbatch_submissions(&cluster),
            3,
            "two refused, one accepted"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_controller_that_stays_busy_is_a_system_failure_after_the_retries() {
        let (site, cluster, _dir) = site_and_cluster().await;
        cluster.inject(&[
            "submit-errors",
            "5",
            "--message",
            "Socket timed out on send/recv operation",
        ]);
        let pipeline = site.pipeline(&one_job("-t 1"), &[]);
        let _batchci = start(
            &site,
            &cluster,
            "  submit_retries = 1\n  submit_retry_delay = \"100ms\"\n",
            &[],
        );

        let (job, trace) = site.finished(pipeline.jobs[0].id).await;

        assert_eq!(job.status, JobStatus::Failed, "{trace}");
        assert_eq!(job.failure_reason.as_deref(), Some("runner_system_failure"));
        assert_eq!(
            from_submission(&trace).last().map(String::as_str),
            Some(
                "ERROR: Job failed (system failure): sbatch refused the job after 2 attempts (exit code 1): Batch job submission failed: Socket timed out on send/recv operation"
            )
        );
        assert_eq!(super::sbatch_submissions(&cluster), 2);
    }
}

/// How many times batchci ran sbatch for a CI job.
fn sbatch_submissions(cluster: &Cluster) -> usize {
    cluster
        .calls_of("sbatch")
        .into_iter()
        .filter(|argv| argv.iter().any(|a| a.starts_with("--job-name=ci-job-")))
        .count()
}
