//! Project repositories over git's smart HTTP at the job's `git_info.repo_url`, with
//! `gitlab-ci-token:<job token>` checked: a real `git clone` works, a wrong token is refused.

mod common;

use common::Fixture;
use mock_gitlab::api::NewPipeline;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;
use tokio::process::Command;

async fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=CI", "-c", "user.email=ci@example.invalid"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .await
        .expect("git runs")
}

/// A repository on branch main with one commit; returns its commit id.
async fn make_repo(dir: &Path) -> String {
    assert!(
        git(dir, &["init", "-q", "-b", "main"])
            .await
            .status
            .success()
    );
    std::fs::write(dir.join("README"), "hello from the repo\n").unwrap();
    assert!(git(dir, &["add", "README"]).await.status.success());
    assert!(
        git(dir, &["commit", "-q", "-m", "first"])
            .await
            .status
            .success()
    );
    let head = git(dir, &["rev-parse", "HEAD"]).await;
    String::from_utf8(head.stdout).unwrap().trim().to_string()
}

struct Setup {
    fx: Fixture,
    job: Value,
    sha: String,
    _repo: tempfile::TempDir,
    work: tempfile::TempDir,
}

async fn setup() -> Setup {
    let fx = Fixture::start().await;
    let repo = tempfile::tempdir().unwrap();
    let sha = make_repo(repo.path()).await;
    let project = fx.gitlab.create_project("app", Some(repo.path())).unwrap();
    fx.gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: "build:\n  script: [make]\n".into(),
            variables: vec![],
            git_ref: "main".into(),
            ..Default::default()
        })
        .unwrap();
    let job: Value = fx.request_job().await.json().await.unwrap();
    let ack = fx
        .update(
            job["id"].as_u64().unwrap(),
            json!({"token": job["token"], "state": "running"}),
        )
        .await;
    assert_eq!(ack.status(), 200);
    Setup {
        fx,
        job,
        sha,
        _repo: repo,
        work: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test]
async fn git_clone_of_the_jobs_repo_url_checks_out_the_pipeline_commit() {
    let s = setup().await;
    let repo_url = s.job["git_info"]["repo_url"].as_str().unwrap();

    let clone = git(s.work.path(), &["clone", "-q", repo_url, "src"]).await;

    assert!(
        clone.status.success(),
        "{}",
        String::from_utf8_lossy(&clone.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(s.work.path().join("src/README")).unwrap(),
        "hello from the repo\n"
    );
    let head = git(&s.work.path().join("src"), &["rev-parse", "HEAD"]).await;
    assert_eq!(String::from_utf8(head.stdout).unwrap().trim(), s.sha);
    assert_eq!(s.job["git_info"]["sha"], s.sha.as_str());
}

#[tokio::test]
async fn a_shallow_fetch_with_the_jobs_refspec_works_like_the_runner_does_it() {
    let s = setup().await;
    let repo_url = s.job["git_info"]["repo_url"].as_str().unwrap();
    let refspec = s.job["git_info"]["refspecs"][0].as_str().unwrap();
    let dir = s.work.path();
    assert!(git(dir, &["init", "-q"]).await.status.success());

    let fetch = git(dir, &["fetch", "-q", "--depth", "20", repo_url, refspec]).await;

    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    let fetched = git(dir, &["rev-parse", "refs/remotes/origin/main"]).await;
    assert_eq!(String::from_utf8(fetched.stdout).unwrap().trim(), s.sha);
}

#[tokio::test]
async fn git_clone_with_a_wrong_token_is_refused() {
    let s = setup().await;
    let repo_url = s.job["git_info"]["repo_url"].as_str().unwrap();
    let wrong = repo_url.replace(s.job["token"].as_str().unwrap(), "glcbt-wrong");

    let clone = git(s.work.path(), &["clone", "-q", &wrong, "src"]).await;

    assert!(!clone.status.success());
    let stderr = String::from_utf8_lossy(&clone.stderr);
    assert!(
        stderr.contains("Authentication failed") || stderr.contains("401"),
        "{stderr}"
    );
    assert!(!s.work.path().join("src/README").exists());
}

#[tokio::test]
async fn the_job_token_stops_opening_the_repo_when_the_job_ends() {
    let s = setup().await;
    let repo_url = s.job["git_info"]["repo_url"].as_str().unwrap().to_string();
    let id = s.job["id"].as_u64().unwrap();
    s.fx.update(id, json!({"token": s.job["token"], "state": "success"}))
        .await;

    let clone = git(s.work.path(), &["clone", "-q", &repo_url, "src"]).await;

    assert!(!clone.status.success());
}

#[tokio::test]
async fn plain_http_without_credentials_gets_401_with_a_basic_challenge() {
    let s = setup().await;

    let reply =
        s.fx.http
            .get(format!(
                "{}/group/app.git/info/refs?service=git-upload-pack",
                s.fx.gitlab.url()
            ))
            .send()
            .await
            .unwrap();

    assert_eq!(reply.status(), 401);
    assert_eq!(
        reply.headers()["www-authenticate"].to_str().unwrap(),
        "Basic realm=\"GitLab\""
    );
}
