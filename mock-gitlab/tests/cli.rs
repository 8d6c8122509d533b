//! The `mock-gitlab` binary: `serve` prints where it listens, the other subcommands drive it.

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin;
use predicates::prelude::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

/// A `mock-gitlab serve` child process; killed when dropped.
struct Served {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Served {
    let mut child = std::process::Command::new(cargo_bin("mock-gitlab"))
        .arg("serve")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mock-gitlab starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("first line").expect("utf-8");
    let second = lines.next().expect("second line").expect("utf-8");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let token = second
        .strip_prefix("registration token: ")
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .to_string();
    Served { child, url, token }
}

#[test]
fn serve_prints_the_url_then_the_registration_token() {
    let served = serve(&["--registration-token", "secret-reg"]);

    assert!(served.url.starts_with("http://127.0.0.1:"));
    let port: u16 = served.url.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    assert_eq!(served.token, "secret-reg");
}

#[test]
fn pipeline_create_then_job_show_trace_and_cancel() {
    let served = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".gitlab-ci.yml");
    std::fs::write(&file, "build:\n  script: [make]\n").unwrap();

    let created = Command::new(cargo_bin("mock-gitlab"))
        .args(["pipeline", "create", "--url", &served.url])
        .arg(&file)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let created: serde_json::Value = serde_json::from_slice(&created).unwrap();
    let job_id = created["jobs"][0]["id"].as_u64().unwrap().to_string();
    assert_eq!(created["jobs"][0]["status"], "pending");

    Command::new(cargo_bin("mock-gitlab"))
        .args(["job", "show", "--url", &served.url, &job_id])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("\"name\": \"build\"")
                .and(predicate::str::contains("\"status\": \"pending\"")),
        );
    Command::new(cargo_bin("mock-gitlab"))
        .args(["job", "trace", "--url", &served.url, &job_id])
        .assert()
        .success()
        .stdout("");
    Command::new(cargo_bin("mock-gitlab"))
        .args(["job", "cancel", "--url", &served.url, &job_id])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"status\": \"canceled\""));
}

#[test]
fn a_second_pipeline_reuses_the_project() {
    let served = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".gitlab-ci.yml");
    std::fs::write(&file, "build:\n  script: [make]\n").unwrap();
    let create = || {
        Command::new(cargo_bin("mock-gitlab"))
            .args([
                "pipeline",
                "create",
                "--url",
                &served.url,
                "--project",
                "app",
            ])
            .arg(&file)
            .assert()
            .success()
    };

    create();
    create().stdout(predicate::str::contains("\"status\": \"pending\""));
}

#[test]
fn a_yaml_error_is_reported_with_line_and_key_and_exit_code_1() {
    let served = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ci.yml");
    std::fs::write(&file, "build:\n  script: [make]\n  stage: nowhere\n").unwrap();

    Command::new(cargo_bin("mock-gitlab"))
        .args(["pipeline", "create", "--url", &served.url])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "422: ci_yaml: line 3: jobs:build:stage: chosen stage nowhere does not exist",
        ));
}

#[test]
fn job_show_of_an_unknown_job_fails_with_404() {
    let served = serve(&[]);

    Command::new(cargo_bin("mock-gitlab"))
        .args(["job", "show", "--url", &served.url, "999999"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("404 Job 999999 Not Found"));
}

#[test]
fn help_shows_examples() {
    Command::new(cargo_bin("mock-gitlab"))
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Examples:")
                .and(predicate::str::contains("mock-gitlab serve --listen")),
        );
}

#[test]
fn pipeline_create_names_the_user_who_starts_it() {
    let served = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".gitlab-ci.yml");
    std::fs::write(&file, "build:\n  script: [make]\n").unwrap();
    let create = |user: &[&str]| {
        Command::new(cargo_bin("mock-gitlab"))
            .args(["pipeline", "create", "--url", &served.url])
            .args(user)
            .arg(&file)
            .assert()
    };

    create(&["--user", "alice", "--user-id", "1001"]).success();

    create(&["--user", "alice", "--user-id", "7"])
        .code(1)
        .stderr(predicate::str::contains(
            "422: user_id: user alice is user 1001, not 7",
        ));
    create(&["--user-id", "7"])
        .code(2)
        .stderr(predicate::str::contains(
            "the following required arguments were not provided",
        ));
}
