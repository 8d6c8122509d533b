//! `POST jobs/request`: one test per reply (table "Job request" in `docs/mock-gitlab.md`, from
//! GitLab's `acquire_ci_job!` and gitlab-runner's `RequestJob`), the payload's shape
//! (snapshot), tag matching, two-phase start, long polling and parallel runners.

mod common;

use common::{Fixture, ONE_JOB, header, runner_info};
use mock_gitlab::JobStatus;
use mock_gitlab::api::{FaultEndpoint, FaultSpec, NewPipeline, NewRunner, Settings, Variable};
use serde_json::{Value, json};
use std::collections::HashSet;

const FULL_PIPELINE: &str = r#"
stages: [build, test]
variables:
  GLOBAL: "from-file"
  OVERRIDDEN: global
default:
  image: ruby:3.3
  before_script: [echo setup]
build:
  stage: build
  tags: [slurm]
  timeout: 1h 30m
  variables:
    OVERRIDDEN: job
  services:
    - name: postgres:16
      alias: db
  script:
    - make
    - make check
  after_script: [echo done]
  artifacts:
    name: binaries
    paths: [out/]
    expire_in: 1 week
test:
  stage: test
  script: [./run-tests]
"#;

#[tokio::test]
async fn a_pending_job_is_201_with_json_content_type_and_the_full_payload() {
    let fx = Fixture::start().await;
    let runner = fx.gitlab.register_runner(NewRunner {
        description: "hpc-login".into(),
        tags: vec!["slurm".into()],
        run_untagged: false,
        maximum_timeout: None,
    });
    let project = fx.gitlab.create_project("app", None).unwrap();
    let pipeline = fx
        .gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: FULL_PIPELINE.into(),
            variables: vec![Variable {
                key: "SECRET".into(),
                value: "hunter2-hunter2".into(),
                masked: true,
            }],
            git_ref: "main".into(),
            ..Default::default()
        })
        .unwrap();
    let job_id = pipeline.jobs[0].id;
    let token = fx.gitlab.job_token(job_id).unwrap();

    let reply = fx.request_job_as(&runner.token).await;

    assert_eq!(reply.status(), 201);
    assert_eq!(header(&reply, "content-type"), Some("application/json"));
    assert_eq!(header(&reply, "x-gitlab-last-update"), None);
    let mut job: Value = reply.json().await.unwrap();
    assert_eq!(job["id"], job_id);
    assert_eq!(job["token"], token.as_str());
    // Make the snapshot independent of the port, the ids' values and the random token.
    job["job_info"]["time_in_queue_seconds"] = json!(0.0);
    let text = serde_json::to_string_pretty(&job)
        .unwrap()
        .replace(
            fx.gitlab.url().trim_start_matches("http://"),
            "127.0.0.1:PORT",
        )
        .replace(&token, "JOB-TOKEN")
        .replace(&format!("\"{job_id}\""), "\"JOB_ID\"")
        .replace(&format!("\"{}\"", pipeline.id), "\"PIPELINE_ID\"")
        .replace(&format!("\"{project}\""), "\"PROJECT_ID\"")
        .replace(&format!("/{job_id}\""), "/JOB_ID\"")
        .replace(&format!("/{}\"", pipeline.id), "/PIPELINE_ID\"")
        .replace(&format!("\"{}\"", runner.id), "\"RUNNER_ID\"")
        .replace(&format!("\"{}\"", fx.gitlab.addr().port()), "\"PORT\"");
    let mut job: Value = serde_json::from_str(&text).unwrap();
    job["id"] = json!("JOB_ID");
    job["job_info"]["id"] = json!("JOB_ID");
    job["job_info"]["pipeline_id"] = json!("PIPELINE_ID");
    job["job_info"]["project_id"] = json!("PROJECT_ID");
    insta::assert_json_snapshot!("job_payload", job);
}

#[tokio::test]
async fn payload_carries_masked_job_token_and_predefined_variables_in_precedence_order() {
    let fx = Fixture::start().await;
    let pipeline =
        fx.pipeline("variables:\n  A: global\nbuild:\n  variables:\n    A: job\n  script: [x]\n");

    let job: Value = fx.request_job().await.json().await.unwrap();

    let vars = job["variables"].as_array().unwrap();
    let find = |key: &str| vars.iter().filter(|v| v["key"] == key).collect::<Vec<_>>();
    let token = find("CI_JOB_TOKEN");
    assert_eq!(token.len(), 1);
    assert_eq!(token[0]["masked"], true);
    assert_eq!(token[0]["public"], false);
    assert_eq!(token[0]["value"], job["token"]);
    for key in [
        "CI_JOB_ID",
        "CI_JOB_NAME",
        "CI_JOB_STAGE",
        "CI_PIPELINE_ID",
        "CI_PROJECT_PATH",
        "CI_COMMIT_SHA",
        "CI_COMMIT_REF_NAME",
        "CI_SERVER_URL",
        "CI_REPOSITORY_URL",
    ] {
        assert_eq!(find(key).len(), 1, "{key} present once");
    }
    assert_eq!(
        find("CI_JOB_ID")[0]["value"],
        pipeline.jobs[0].id.to_string()
    );
    assert_eq!(find("CI_JOB_NAME")[0]["value"], "build");
    let a: Vec<&Value> = find("A").iter().map(|v| &v["value"]).collect();
    assert_eq!(
        a,
        [&json!("global"), &json!("job")],
        "the runner keeps the last"
    );
}

#[tokio::test]
async fn features_carry_trace_sections_and_gitlabs_failure_reasons() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);

    let job: Value = fx.request_job().await.json().await.unwrap();

    assert_eq!(job["features"]["trace_sections"], true);
    let reasons = job["features"]["failure_reasons"].as_array().unwrap();
    for reason in [
        "script_failure",
        "runner_system_failure",
        "job_execution_timeout",
        "trace_size_exceeded",
        "unknown_failure",
    ] {
        assert!(reasons.contains(&json!(reason)), "{reason}");
    }
}

#[tokio::test]
async fn no_matching_job_is_204_with_the_queue_value_in_x_gitlab_last_update() {
    let fx = Fixture::start().await;

    let reply = fx.request_job().await;

    assert_eq!(reply.status(), 204);
    let last_update = header(&reply, "x-gitlab-last-update").unwrap().to_string();
    assert!(!last_update.is_empty());
    assert_eq!(reply.text().await.unwrap(), "");
}

#[tokio::test]
async fn an_echoed_last_update_still_current_is_204_and_a_new_job_changes_it() {
    let fx = Fixture::start().await;
    let first = fx.request_job().await;
    let last_update = header(&first, "x-gitlab-last-update").unwrap().to_string();

    let again = fx
        .http
        .post(fx.api("jobs/request"))
        .json(&json!({"token": fx.runner.token, "last_update": last_update}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204);
    assert_eq!(
        header(&again, "x-gitlab-last-update"),
        Some(last_update.as_str())
    );

    fx.pipeline(ONE_JOB);
    let after = fx
        .http
        .post(fx.api("jobs/request"))
        .json(&json!({"token": fx.runner.token, "last_update": last_update}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 201);
}

#[tokio::test]
async fn a_runner_echoing_its_last_update_gets_every_job_queued_since() {
    let fx = Fixture::start().await;
    let idle = fx.request_job().await;
    let last_update = header(&idle, "x-gitlab-last-update").unwrap().to_string();
    fx.pipeline("a:\n  script: [x]\nb:\n  script: [y]\n");
    let ask = || {
        fx.http
            .post(fx.api("jobs/request"))
            .json(&json!({"token": fx.runner.token, "last_update": last_update}))
            .send()
    };

    let first = ask().await.unwrap();
    let second = ask().await.unwrap();
    let third = ask().await.unwrap();

    assert_eq!(first.status(), 201);
    assert_eq!(
        second.status(),
        201,
        "201 carries no new value, the runner echoes the old one"
    );
    assert_eq!(third.status(), 204);
}

#[tokio::test]
async fn a_bad_runner_token_is_403() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);

    let reply = fx.request_job_as("glrt-wrong").await;

    assert_eq!(reply.status(), 403);
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"message": "403 Forbidden"})
    );
}

#[tokio::test]
async fn the_runner_token_header_alone_is_enough() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);

    let reply = fx
        .http
        .post(fx.api("jobs/request"))
        .header("RUNNER-TOKEN", &fx.runner.token)
        .json(&json!({"info": runner_info()}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 201);
}

#[tokio::test]
async fn an_unavailable_gitlab_is_503_through_a_fault() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    fx.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::Request, 503).times(1))
        .unwrap();

    let first = fx.request_job().await;
    let second = fx.request_job().await;

    assert_eq!(first.status(), 503);
    assert_eq!(second.status(), 201, "the fault fired once");
}

#[tokio::test]
async fn a_rate_limited_gitlab_is_429_with_retry_after_through_a_fault() {
    let fx = Fixture::start().await;
    fx.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::Request, 429).retry_after(7))
        .unwrap();

    let reply = fx.request_job().await;

    assert_eq!(reply.status(), 429);
    assert_eq!(header(&reply, "retry-after"), Some("7"));
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"message": "429 Too Many Requests (injected fault)"})
    );
}

#[tokio::test]
async fn untagged_jobs_go_only_to_runners_that_run_untagged() {
    let fx = Fixture::start().await;
    let tagged_only = fx.gitlab.register_runner(NewRunner {
        tags: vec!["gpu".into()],
        run_untagged: false,
        ..NewRunner::default()
    });
    let pipeline = fx.pipeline(ONE_JOB);

    assert_eq!(fx.request_job_as(&tagged_only.token).await.status(), 204);
    let reply = fx.request_job().await;
    assert_eq!(
        reply.json::<Value>().await.unwrap()["id"],
        pipeline.jobs[0].id
    );
}

#[tokio::test]
async fn a_job_needs_all_its_tags_on_the_runner() {
    let fx = Fixture::start().await;
    let partial = fx.gitlab.register_runner(NewRunner {
        tags: vec!["slurm".into()],
        ..NewRunner::default()
    });
    let full = fx.gitlab.register_runner(NewRunner {
        tags: vec!["slurm".into(), "gpu".into(), "extra".into()],
        ..NewRunner::default()
    });
    fx.pipeline("build:\n  tags: [slurm, gpu]\n  script: [x]\n");

    assert_eq!(fx.request_job_as(&partial.token).await.status(), 204);
    assert_eq!(fx.request_job_as(&full.token).await.status(), 201);
}

#[tokio::test]
async fn a_two_phase_job_stays_pending_until_the_runner_acknowledges_it() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(ONE_JOB);
    let id = pipeline.jobs[0].id;

    let job: Value = fx.request_job().await.json().await.unwrap();
    let handed_out = fx.gitlab.job(id).unwrap();
    let keep_alive = fx
        .update(id, json!({"token": job["token"], "state": "pending"}))
        .await;
    let still = fx.gitlab.job(id).unwrap();
    let ack = fx
        .update(id, json!({"token": job["token"], "state": "running"}))
        .await;

    assert_eq!(handed_out.status, JobStatus::Pending);
    assert_eq!(handed_out.runner_id, Some(fx.runner.id));
    assert_eq!(handed_out.started_at, None);
    assert_eq!(keep_alive.status(), 200);
    assert_eq!(still.status, JobStatus::Pending);
    assert_eq!(ack.status(), 200);
    assert_eq!(header(&ack, "job-status"), Some("running"));
    let running = fx.gitlab.job(id).unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert!(running.started_at.is_some());
    assert_eq!(
        fx.request_job().await.status(),
        204,
        "a taken job is not handed out twice"
    );
}

#[tokio::test]
async fn a_runner_without_two_phase_commit_starts_the_job_at_once() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(ONE_JOB);

    let reply = fx
        .http
        .post(fx.api("jobs/request"))
        .json(&json!({"token": fx.runner.token, "info": {"features": {"refspecs": true}}}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 201);
    assert_eq!(
        fx.gitlab.job(pipeline.jobs[0].id).unwrap().status,
        JobStatus::Running
    );
}

#[tokio::test]
async fn parallel_runners_never_receive_the_same_job() {
    let fx = Fixture::start().await;
    let yaml: String = (0..40)
        .map(|i| format!("job{i}:\n  script: [x]\n"))
        .collect();
    let pipeline = fx.pipeline(&yaml);
    let runners: Vec<String> = (0..8)
        .map(|_| fx.gitlab.register_runner(NewRunner::default()).token)
        .collect();

    let requests = (0..120).map(|i| {
        let token = runners[i % runners.len()].clone();
        let http = fx.http.clone();
        let url = fx.api("jobs/request");
        tokio::spawn(async move {
            let reply = http
                .post(url)
                .json(&json!({"token": token}))
                .send()
                .await
                .unwrap();
            if reply.status() == 201 {
                Some(reply.json::<Value>().await.unwrap()["id"].as_u64().unwrap())
            } else {
                assert_eq!(reply.status(), 204);
                None
            }
        })
    });
    let taken: Vec<u64> = futures::future::join_all(requests)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();

    let unique: HashSet<u64> = taken.iter().copied().collect();
    assert_eq!(taken.len(), 40, "every job handed out");
    assert_eq!(unique.len(), 40, "no job handed out twice");
    let expected: HashSet<u64> = pipeline.jobs.iter().map(|j| j.id).collect();
    assert_eq!(unique, expected);
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_413() {
    let fx = Fixture::start().await;
    let huge = format!(
        "{{\"token\": \"{}\", \"pad\": \"{}\"}}",
        fx.runner.token,
        "x".repeat(2 * 1024 * 1024)
    );

    let reply = fx
        .http
        .post(fx.api("jobs/request"))
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 413);
}

#[tokio::test]
async fn with_long_polling_an_empty_queue_answers_204_after_the_poll_time() {
    let fx = Fixture::with_settings(Settings {
        long_poll_ms: 300,
        ..Settings::default()
    })
    .await;

    let started = std::time::Instant::now();
    let reply = fx.request_job().await;

    assert_eq!(reply.status(), 204);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn with_long_polling_a_waiting_request_gets_a_job_created_meanwhile() {
    let fx = Fixture::with_settings(Settings {
        long_poll_ms: 30_000,
        ..Settings::default()
    })
    .await;
    let started = std::time::Instant::now();
    let waiting = {
        let http = fx.http.clone();
        let url = fx.api("jobs/request");
        let token = fx.runner.token.clone();
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"token": token}))
                .send()
                .await
                .unwrap()
        })
    };

    let pipeline = fx.pipeline(ONE_JOB);
    let reply = waiting.await.unwrap();

    assert_eq!(reply.status(), 201);
    assert_eq!(
        reply.json::<Value>().await.unwrap()["id"],
        pipeline.jobs[0].id
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
