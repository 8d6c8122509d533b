//! `batchci run` as a process: which runners work, when it exits and with what, and what
//! `/metrics` says after a pipeline whose every job ends a different way.

mod support;

use std::time::Duration;

use mock_gitlab::JobStatus;
use mock_gitlab::api::{FaultEndpoint, FaultSpec};
use support::{Batchci, Site};

/// A free TCP port on loopback for `listen_address`.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The metric lines (no comments) served on `port`.
async fn metrics(port: u16) -> Vec<String> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The value of metric line `name` (with its labels).
fn value(lines: &[String], name: &str) -> Option<u64> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn run_exits_with_the_reason_when_gitlab_refuses_the_only_token() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(&site.runner_token, "glrt-not-a-real-token"),
    )
    .unwrap();
    let mut batchci = Batchci::run(&config, &[]);

    let code = batchci.wait(Duration::from_secs(60));

    assert_eq!(code, Some(1));
    let log = batchci.log_lines();
    assert_eq!(
        log.last().map(String::as_str),
        Some(
            format!(
                "batchci: no runner can take jobs: runner \"conformance\": GitLab at {} refuses its token",
                site.gitlab.url()
            )
            .as_str()
        ),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_that_cannot_work_is_an_error_in_the_log_and_metrics_beside_one_that_can() {
    let site = Site::start(&["shell"]).await;
    let port = free_port();
    let config = site.write_config("shell", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "listen_address = \"127.0.0.1:{port}\"\n{text}\n[[runners]]\nname = \"later\"\nurl = {url:?}\ntoken = \"glrt-not-a-runner-token\"\nexecutor = \"shell\"\n",
            url = site.gitlab.url(),
        ),
    )
    .unwrap();
    let pipeline = site.pipeline(
        "build:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo still served\n",
        &[],
    );
    let batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    let lines = metrics(port).await;
    assert_eq!(
        value(&lines, "batchci_runner_ready{runner=\"conformance\"}"),
        Some(1)
    );
    assert_eq!(
        value(&lines, "batchci_runner_ready{runner=\"later\"}"),
        Some(0)
    );
    let log = batchci.log_lines();
    assert!(
        log.iter().any(|l| l.contains("ERROR")
            && l.contains("refuses its token")
            && l.contains("this runner stays idle")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_every_job_by_how_it_ended() {
    let site = Site::start(&["shell"]).await;
    let port = free_port();
    let config = site.write_config("shell", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("concurrent = 2", "concurrent = 6");
    std::fs::write(
        &config,
        format!("listen_address = \"127.0.0.1:{port}\"\n{text}"),
    )
    .unwrap();
    let job = |name: &str, extra: &str, script: &str| {
        format!(
            "{name}:\n  tags: [shell]\n{extra}  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo \"$CI_JOB_NAME started\"\n    - {script}\n"
        )
    };
    let yaml = [
        job("passes", "", "true"),
        job("fails", "", "exit 4"),
        job("times-out", "  timeout: 3\n", "sleep 300"),
        job(
            "loses-its-artifacts",
            "  artifacts:\n    paths: [out.txt]\n",
            "echo x > out.txt",
        ),
        job("is-canceled", "", "sleep 300"),
        job("is-killed-in-gitlab", "", "sleep 300"),
    ]
    .concat();
    site.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::Artifacts, 400))
        .unwrap();
    let pipeline = site.pipeline(&yaml, &[]);
    let id = |name: &str| {
        pipeline
            .jobs
            .iter()
            .find(|j| j.name == name)
            .map(|j| j.id)
            .unwrap()
    };
    let _batchci = Batchci::run(&config, &[]);

    for name in ["is-canceled", "is-killed-in-gitlab"] {
        let started = format!("{name} started");
        site.wait_for_line(id(name), |line| (line == started).then_some(()))
            .await;
    }
    site.gitlab.cancel_job(id("is-canceled"), false).unwrap();
    site.gitlab
        .cancel_job(id("is-killed-in-gitlab"), true)
        .unwrap();
    let mut reasons = Vec::new();
    for job in &pipeline.jobs {
        let (view, _) = site.finished(job.id).await;
        reasons.push((job.name.clone(), view.status, view.failure_reason));
    }

    assert_eq!(
        reasons,
        [
            ("passes".to_string(), JobStatus::Success, None),
            (
                "fails".into(),
                JobStatus::Failed,
                Some("script_failure".into())
            ),
            (
                "times-out".into(),
                JobStatus::Failed,
                Some("job_execution_timeout".into())
            ),
            (
                "loses-its-artifacts".into(),
                JobStatus::Failed,
                Some("runner_system_failure".into())
            ),
            ("is-canceled".into(), JobStatus::Canceled, None),
            ("is-killed-in-gitlab".into(), JobStatus::Canceled, None),
        ]
    );
    // GitLab shows a hard-cancelled job finished at once; batchci counts it when it has
    // stopped it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let lines = metrics(port).await;
        if value(&lines, "batchci_jobs_running") == Some(0) {
            break lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs still running: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let finished = |outcome: &str| {
        value(
            &lines,
            &format!("batchci_jobs_finished_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(
        value(&lines, "batchci_jobs_started_total"),
        Some(6),
        "{lines:#?}"
    );
    assert_eq!(value(&lines, "batchci_jobs_running"), Some(0));
    assert_eq!(finished("success"), Some(1));
    assert_eq!(finished("script_failure"), Some(1));
    assert_eq!(finished("runner_system_failure"), Some(1));
    assert_eq!(finished("job_execution_timeout"), Some(1));
    assert_eq!(finished("canceled"), Some(2), "{lines:#?}");
    let requests = value(&lines, "batchci_job_requests_total").unwrap_or(0);
    assert!(
        requests >= 6,
        "six jobs took at least six requests: {requests}"
    );
    assert_eq!(
        value(&lines, "batchci_runner_ready{runner=\"conformance\"}"),
        Some(1)
    );
}
