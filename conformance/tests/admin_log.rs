//! What an admin reads in `batchci run`'s own log: the startup line, and per job a line when it
//! starts, one when the scheduler took it and one when it ended — with GitLab's job id, the
//! runner, the scheduler's job id, the outcome and its reason — as text and as JSON, against the
//! mock GitLab and the simulated cluster. Times, durations, paths and the version are
//! redacted; everything else is as written.

mod support;

use std::time::Duration;

use mock_gitlab::JobStatus;
use support::cluster::Cluster;
use support::{Batchci, Site};

/// batchci for a Slurm runner on `cluster`, one job at a time, logging at `info` in `format`.
fn start(site: &Site, cluster: &Cluster, format: &str) -> Batchci {
    let table = cluster.batch_table("  submit_retries = 0\n");
    let config = site.write_config("slurm", &table);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("concurrent = 2", "concurrent = 1");
    std::fs::write(&config, text).unwrap();
    let mut env = cluster.batchci_env();
    env.push(("BATCHCI_LOG".into(), "info".into()));
    env.push(("BATCHCI_LOG_FORMAT".into(), format.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Batchci::run(&config, &env)
}

/// Waits until batchci has logged `count` lines containing `text`.
fn wait_for_lines(batchci: &Batchci, text: &str, count: usize) {
    let logged = conformance::poll::poll_until(Duration::from_secs(120), || {
        batchci
            .log_lines()
            .iter()
            .filter(|l| l.contains(text))
            .count()
            >= count
    });
    assert!(logged, "{:#?}", batchci.log_lines());
}

/// The lines an admin works from, with what changes from run to run replaced.
fn admin_lines(site: &Site, lines: &[String]) -> String {
    let time = regex::Regex::new(r"^\d{4}-\d\d-\d\dT[\d:.]+Z").unwrap();
    let duration = regex::Regex::new(r"duration_s=[\d.]+").unwrap();
    let version = regex::Regex::new(r"version=\S+").unwrap();
    let mut out = String::new();
    for line in lines.iter().filter(|l| {
        [
            "batchci starting",
            "job started",
            "scheduler job submitted",
            "job finished",
        ]
        .iter()
        .any(|m| l.contains(m))
    }) {
        let line = time.replace(line, "[time]");
        let line = duration.replace(&line, "duration_s=[seconds]");
        let line = version.replace(&line, "version=[version]");
        let line = line
            .replace(&site.dir.path().display().to_string(), "[site]")
            .replace(site.gitlab.url(), "[gitlab]");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn each_job_has_a_start_and_an_end_line_with_its_outcome_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake_running(dir.path());
    let site = Site::start(&["slurm"]).await;
    // The first submission meets a controller that cannot be reached.
    cluster.inject(&[
        "submit-errors",
        "1",
        "--message",
        "Unable to contact slurm controller (connect failure)",
    ]);
    let job = |name: &str, extra: &str, script: &str| {
        format!(
            "{name}:\n  tags: [slurm]\n{extra}  variables:\n    GIT_STRATEGY: none\n  script:\n    - {script}\n"
        )
    };
    let yaml = [
        job("unreachable", "", "echo never"),
        job("passes", "", "echo fine"),
        job("fails", "", "exit 3"),
        job("times-out", "  timeout: 3\n", "sleep 300"),
        job("is-canceled", "", "echo started; sleep 300"),
    ]
    .concat();
    let pipeline = site.pipeline(&yaml, &[]);
    let batchci = start(&site, &cluster, "text");

    let canceled = pipeline.jobs[4].id;
    site.wait_for_line(canceled, |l| (l == "started").then_some(()))
        .await;
    site.gitlab.cancel_job(canceled, false).unwrap();
    let view = site.reaches(canceled, JobStatus::Canceled).await;
    assert_eq!(view.status, JobStatus::Canceled);
    wait_for_lines(&batchci, "job finished", 5);

    let lines = batchci.log_lines();
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "no colour codes when standard error is a pipe: {lines:#?}"
    );
    insta::assert_snapshot!(admin_lines(&site, &lines));
}

#[tokio::test(flavor = "multi_thread")]
async fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake_running(dir.path());
    let site = Site::start(&["slurm"]).await;
    let pipeline = site.pipeline(
        "build:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - exit 5\n",
        &[],
    );
    let batchci = start(&site, &cluster, "json");

    site.finished(pipeline.jobs[0].id).await;
    wait_for_lines(&batchci, "job finished", 1);

    let mut objects = Vec::new();
    for line in batchci.log_lines() {
        let mut object: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        let message = object["message"].as_str().unwrap_or_default().to_string();
        if ![
            "batchci starting",
            "job started",
            "scheduler job submitted",
            "job finished",
        ]
        .contains(&message.as_str())
        {
            continue;
        }
        for (key, redacted) in [
            ("timestamp", "[time]"),
            ("duration_s", "[seconds]"),
            ("version", "[version]"),
        ] {
            if let Some(value) = object.get_mut(key) {
                *value = redacted.into();
            }
        }
        for key in ["config", "state_dir"] {
            if let Some(value) = object.get_mut(key) {
                let text = value
                    .as_str()
                    .unwrap_or_default()
                    .replace(&site.dir.path().display().to_string(), "[site]");
                *value = text.into();
            }
        }
        objects.push(object);
    }
    insta::assert_json_snapshot!(objects);
}
