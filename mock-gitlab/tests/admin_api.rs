//! The admin API's exact shapes, pipelines from the `.gitlab-ci.yml` subset, cancel and faults.

mod common;

use common::{Fixture, ONE_JOB, header};
use mock_gitlab::JobStatus;
use mock_gitlab::api::{FaultEndpoint, FaultSpec};
use serde_json::{Value, json};

async fn post(fx: &Fixture, path: &str, body: Value) -> reqwest::Response {
    fx.http
        .post(fx.admin(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn create_project(fx: &Fixture) -> u64 {
    let reply = post(fx, "projects", json!({"name": "web"})).await;
    assert_eq!(reply.status(), 201);
    reply.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
}

#[tokio::test]
async fn create_project_and_pipeline_answer_the_documented_shapes() {
    let fx = Fixture::start().await;

    let project = post(&fx, "projects", json!({"name": "web"})).await;
    assert_eq!(project.status(), 201);
    let project_id = project.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    let pipeline = post(
        &fx,
        "pipelines",
        json!({"project_id": project_id, "ref": "main",
               "ci_yaml": "stages: [build, test]\nbuild:\n  stage: build\n  script: [make]\ntest:\n  stage: test\n  script: [make check]\n",
               "variables": [{"key": "TOKEN", "value": "s3cr3t-value", "masked": true}]}),
    )
    .await;

    assert_eq!(pipeline.status(), 201);
    let body: Value = pipeline.json().await.unwrap();
    let id = body["id"].as_u64().unwrap();
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(
        body,
        json!({"id": id, "jobs": [
            {"id": jobs[0]["id"], "name": "build", "stage": "build", "status": "pending"},
            {"id": jobs[1]["id"], "name": "test", "stage": "test", "status": "created"},
        ]})
    );
    let view: Value = fx
        .http
        .get(fx.admin(&format!("pipelines/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        view,
        json!({"id": id, "project_id": project_id, "ref": "main",
               "sha": "0000000000000000000000000000000000000000",
               "user_login": "root", "user_id": 1, "status": "pending",
               "jobs": body["jobs"]})
    );
}

#[tokio::test]
async fn get_job_answers_the_documented_fields() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-2"), b"ok\n").await;
    fx.update(
        id,
        json!({"token": token, "state": "failed", "exit_code": 3}),
    )
    .await;

    let reply = fx
        .http
        .get(fx.admin(&format!("jobs/{id}")))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 200);
    let job: Value = reply.json().await.unwrap();
    let started = job["started_at"].as_str().unwrap();
    let finished = job["finished_at"].as_str().unwrap();
    assert!(started.ends_with('Z') && finished >= started);
    assert_eq!(
        job,
        json!({"id": id, "pipeline_id": pipeline.id, "name": "build", "stage": "test",
               "status": "failed", "exit_code": 3, "failure_reason": "script_failure",
               "runner_id": fx.runner.id, "started_at": started, "finished_at": finished,
               "trace_bytes": 3})
    );
}

#[tokio::test]
async fn get_trace_answers_the_raw_bytes() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-4"), b"\x1b[0Kab").await;

    let reply = fx
        .http
        .get(fx.admin(&format!("jobs/{id}/trace")))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 200);
    assert_eq!(reply.bytes().await.unwrap().as_ref(), b"\x1b[0Kab");
}

#[tokio::test]
async fn get_calls_lists_what_the_runner_sent_with_the_replies() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-2"), b"ok\n").await;
    fx.update(
        id,
        json!({"token": token, "state": "failed", "failure_reason": "job_canceled",
                         "exit_code": 2, "output": {"checksum": "crc32:00000000", "bytesize": 3}}),
    )
    .await;

    let calls: Value = fx
        .http
        .get(fx.admin(&format!("jobs/{id}/calls")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(
        calls,
        json!([
            {"call": "request", "runner_id": fx.runner.id, "two_phase": true},
            {"call": "update", "state": "running", "failure_reason": null, "exit_code": null,
             "checksum": null, "bytesize": null, "reply": 200},
            {"call": "patch", "content_range": "0-2", "bytes": 3, "reply": 202},
            {"call": "update", "state": "failed", "failure_reason": "job_canceled", "exit_code": 2,
             "checksum": "crc32:00000000", "bytesize": 3, "reply": 412},
        ])
    );
}

#[tokio::test]
async fn unknown_jobs_and_pipelines_are_404() {
    let fx = Fixture::start().await;

    for path in [
        "jobs/77777",
        "jobs/77777/trace",
        "pipelines/77777",
        "jobs/not-a-number",
    ] {
        let reply = fx.http.get(fx.admin(path)).send().await.unwrap();
        assert_eq!(reply.status(), 404, "{path}");
    }
    let cancel = post(&fx, "jobs/77777/cancel", json!({})).await;
    assert_eq!(cancel.status(), 404);
}

#[tokio::test]
async fn cancel_is_graceful_and_force_is_hard() {
    let fx = Fixture::start().await;
    fx.pipeline("a:\n  script: [x]\nb:\n  script: [y]\n");
    let (graceful, _) = fx.take_job().await;
    let (hard, _) = fx.take_job().await;

    let soft = post(&fx, &format!("jobs/{graceful}/cancel"), json!({})).await;
    let forced = post(&fx, &format!("jobs/{hard}/cancel?force=true"), json!({})).await;

    assert_eq!(soft.status(), 200);
    assert_eq!(soft.json::<Value>().await.unwrap()["status"], "canceling");
    assert_eq!(forced.status(), 200);
    assert_eq!(forced.json::<Value>().await.unwrap()["status"], "canceled");
}

#[tokio::test]
async fn canceling_a_pending_job_cancels_it_at_once_and_no_runner_gets_it() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(ONE_JOB);

    let view = fx.gitlab.cancel_job(pipeline.jobs[0].id, false).unwrap();

    assert_eq!(view.status, JobStatus::Canceled);
    assert_eq!(fx.request_job().await.status(), 204);
    assert_eq!(fx.gitlab.pipeline(pipeline.id).unwrap().status, "canceled");
}

#[tokio::test]
async fn canceling_a_finished_job_is_409() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.update(id, json!({"token": token, "state": "success"}))
        .await;

    let reply = post(&fx, &format!("jobs/{id}/cancel"), json!({})).await;

    assert_eq!(reply.status(), 409);
    assert_eq!(
        reply.json::<Value>().await.unwrap()["message"],
        format!("job {id} is already success")
    );
}

#[tokio::test]
async fn yaml_errors_are_422_naming_line_and_key() {
    let fx = Fixture::start().await;
    let project = create_project(&fx).await;

    let cases = [
        (
            "build:\n  script: [make]\n  stage: deploy-now\n",
            "line 3: jobs:build:stage: chosen stage deploy-now does not exist",
        ),
        (
            "build:\n  image: ruby\n",
            "line 1: jobs:build: config should contain a script",
        ),
        (
            "build:\n  script: [make]\n  retries: 2\n",
            "line 3: jobs:build:retries: unknown key",
        ),
        (
            "build:\n  script:\n    - make\n  timeout: soon\n",
            "line 4: jobs:build:timeout: invalid duration \"soon\"",
        ),
        (
            "test:\n  script: [x]\n  needs: [build]\n",
            "line 3: jobs:test:needs: undefined need: build",
        ),
        (
            "build:\n  script: [make\n",
            "line 3: yaml: did not find expected ',' or ']'",
        ),
        (
            "stages: build\nb:\n  script: [x]\n",
            "line 1: stages: must be a list of strings",
        ),
    ];
    for (yaml, expected) in cases {
        let reply = post(
            &fx,
            "pipelines",
            json!({"project_id": project, "ci_yaml": yaml}),
        )
        .await;
        assert_eq!(reply.status(), 422, "{yaml}");
        let message = reply.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with(&format!("ci_yaml: {expected}")),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_yaml_syntax_error_names_its_line() {
    let fx = Fixture::start().await;
    let project = create_project(&fx).await;

    let reply = post(
        &fx,
        "pipelines",
        json!({"project_id": project, "ci_yaml": "build:\n  script:\n    - make\n  tags: [a\n"}),
    )
    .await;

    assert_eq!(reply.status(), 422);
    let message = reply.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.starts_with("ci_yaml: line 5: yaml:"), "{message}");
}

#[tokio::test]
async fn malformed_admin_json_is_400_and_a_missing_field_is_422_naming_it() {
    let fx = Fixture::start().await;

    let syntax = fx
        .http
        .post(fx.admin("pipelines"))
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let missing = post(&fx, "pipelines", json!({"project_id": 1})).await;

    assert_eq!(syntax.status(), 400);
    assert_eq!(missing.status(), 422);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("missing field `ci_yaml`")
    );
}

#[tokio::test]
async fn later_stages_follow_gitlab_rules_for_failure_allow_failure_and_when() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(
        "stages: [build, test, deploy]\n\
         build:\n  stage: build\n  script: [a]\n\
         lint:\n  stage: build\n  allow_failure: true\n  script: [a]\n\
         test:\n  stage: test\n  script: [a]\n\
         notify:\n  stage: deploy\n  when: on_failure\n  script: [a]\n\
         deploy:\n  stage: deploy\n  script: [a]\n\
         report:\n  stage: deploy\n  when: always\n  script: [a]\n",
    );
    let ids: Vec<u64> = pipeline.jobs.iter().map(|j| j.id).collect();
    let status = |i: usize| fx.gitlab.job(ids[i]).unwrap().status;

    let (build, build_token) = fx.take_job().await;
    let (lint, lint_token) = fx.take_job().await;
    fx.update(lint, json!({"token": lint_token, "state": "failed"}))
        .await;
    assert_eq!(status(2), JobStatus::Created, "test waits for build");
    fx.update(build, json!({"token": build_token, "state": "success"}))
        .await;
    assert_eq!(
        status(2),
        JobStatus::Pending,
        "an allowed failure does not block"
    );
    let (test, test_token) = fx.take_job().await;
    fx.update(test, json!({"token": test_token, "state": "failed"}))
        .await;

    assert_eq!(
        status(3),
        JobStatus::Pending,
        "on_failure runs after a failure"
    );
    assert_eq!(status(4), JobStatus::Skipped, "on_success is skipped");
    assert_eq!(status(5), JobStatus::Pending, "always runs");
    assert_eq!(fx.gitlab.pipeline(pipeline.id).unwrap().status, "running");
}

#[tokio::test]
async fn needs_start_a_job_before_its_stage_is_reached() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(
        "stages: [build, test]\n\
         fast:\n  stage: build\n  script: [a]\n\
         slow:\n  stage: build\n  script: [a]\n\
         unit:\n  stage: test\n  needs: [fast]\n  script: [a]\n",
    );
    let (fast, token) = fx.take_job().await;
    assert_eq!(fast, pipeline.jobs[0].id);

    fx.update(fast, json!({"token": token, "state": "success"}))
        .await;

    assert_eq!(
        fx.gitlab.job(pipeline.jobs[1].id).unwrap().status,
        JobStatus::Pending
    );
    assert_eq!(
        fx.gitlab.job(pipeline.jobs[2].id).unwrap().status,
        JobStatus::Pending
    );
}

#[tokio::test]
async fn manual_jobs_wait_for_play() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline("deploy:\n  when: manual\n  script: [a]\n");
    let id = pipeline.jobs[0].id;
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Manual);
    assert_eq!(fx.request_job().await.status(), 204);

    let played = post(&fx, &format!("jobs/{id}/play"), json!({})).await;

    assert_eq!(played.status(), 200);
    assert_eq!(fx.request_job().await.status(), 201);
}

#[tokio::test]
async fn a_fault_can_drop_the_connection_without_a_reply() {
    let fx = Fixture::start().await;
    let reply = post(
        &fx,
        "faults",
        json!({"endpoint": "request", "drop_connection": true, "count": 1}),
    )
    .await;
    assert_eq!(reply.status(), 201);

    let dropped = fx
        .http
        .post(fx.api("jobs/request"))
        .json(&json!({"token": fx.runner.token}))
        .send()
        .await;
    let next = fx.request_job().await;

    let error = dropped.expect_err("no HTTP reply");
    assert!(
        error.is_request() || error.is_connect() || error.is_body(),
        "{error:?}"
    );
    assert_eq!(next.status(), 204);
}

#[tokio::test]
async fn a_delay_fault_passes_the_request_through_after_waiting() {
    let fx = Fixture::start().await;
    fx.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::Request, 500).delay_ms(200))
        .unwrap();
    fx.gitlab.clear_faults();
    fx.gitlab
        .add_fault(FaultSpec {
            status: None,
            ..FaultSpec::status(FaultEndpoint::All, 500)
                .delay_ms(300)
                .times(1)
        })
        .unwrap();

    let started = std::time::Instant::now();
    let reply = fx.request_job().await;

    assert_eq!(reply.status(), 204);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn faults_are_listed_removed_and_cleared() {
    let fx = Fixture::start().await;
    let reply = post(
        &fx,
        "faults",
        json!({"endpoint": "trace", "status": 500, "rate": 0.5, "count": 3}),
    )
    .await;
    let id = reply.json::<Value>().await.unwrap()["id"].as_u64().unwrap();

    let listed: Value = fx
        .http
        .get(fx.admin("faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let removed = fx
        .http
        .delete(fx.admin(&format!("faults/{id}")))
        .send()
        .await
        .unwrap();
    let again = fx
        .http
        .delete(fx.admin(&format!("faults/{id}")))
        .send()
        .await
        .unwrap();
    let cleared = fx.http.delete(fx.admin("faults")).send().await.unwrap();

    assert_eq!(
        listed,
        json!([{"id": id, "endpoint": "trace", "status": 500, "rate": 0.5, "delay_ms": 0,
                "drop_connection": false, "count": 3, "remaining": 3}])
    );
    assert_eq!(removed.status(), 204);
    assert_eq!(again.status(), 404);
    assert_eq!(cleared.status(), 204);
}

#[tokio::test]
async fn a_fault_with_a_bad_rate_or_endpoint_is_422() {
    let fx = Fixture::start().await;

    let rate = post(
        &fx,
        "faults",
        json!({"endpoint": "trace", "status": 500, "rate": 2}),
    )
    .await;
    let endpoint = post(&fx, "faults", json!({"endpoint": "nowhere", "status": 500})).await;

    assert_eq!(rate.status(), 422);
    assert_eq!(endpoint.status(), 422);
    assert!(endpoint.text().await.unwrap().contains("field `endpoint`"));
}

#[tokio::test]
async fn a_rate_of_zero_never_fires() {
    let fx = Fixture::start().await;
    post(
        &fx,
        "faults",
        json!({"endpoint": "*", "status": 500, "rate": 0.0}),
    )
    .await;

    for _ in 0..20 {
        assert_eq!(fx.request_job().await.status(), 204);
    }
}

#[tokio::test]
async fn registered_runners_through_the_admin_api_get_tokens_that_take_tagged_jobs() {
    let fx = Fixture::start().await;

    let reply = post(
        &fx,
        "runners",
        json!({"tags": ["slurm"], "run_untagged": false}),
    )
    .await;

    assert_eq!(reply.status(), 201);
    let body: Value = reply.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("glrt-"));
    fx.pipeline(ONE_JOB);
    assert_eq!(
        fx.request_job_as(token).await.status(),
        204,
        "untagged job is not for it"
    );
    fx.pipeline("hpc:\n  tags: [slurm]\n  script: [x]\n");
    let taken = fx.request_job_as(token).await;
    assert_eq!(taken.status(), 201);
    assert_eq!(
        header(&taken, "x-gitlab-last-update"),
        None,
        "only 204 carries it"
    );
}

/// A parallel job is one GitLab job per instance, named as GitLab names them and numbered in
/// their variables; a job needing it waits for every instance. A job with `rules:` is created
/// as if they let it run, and a `trigger:` job is no runner job.
#[tokio::test]
async fn parallel_jobs_are_one_job_each_and_needs_wait_for_all_of_them() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(
        "stages: [build, test]\n\
         .base:\n  script: [a]\n\
         build:\n  extends: .base\n  stage: build\n  parallel: 2\n\
         report:\n  extends: .base\n  stage: test\n  needs: [build, downstream]\n  \
         rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n\
         downstream:\n  stage: test\n  trigger: group/other\n",
    );
    let jobs: Vec<(&str, JobStatus)> = pipeline
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), j.status))
        .collect();
    assert_eq!(
        jobs,
        [
            ("build 1/2", JobStatus::Pending),
            ("build 2/2", JobStatus::Pending),
            ("report", JobStatus::Created),
        ]
    );

    let reply = fx.request_job().await;
    assert_eq!(reply.status(), 201);
    let job: Value = reply.json().await.unwrap();
    assert_eq!(job["job_info"]["name"], "build 1/2");
    let node: Vec<(&str, &str)> = job["variables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["key"].as_str().unwrap().starts_with("CI_NODE_"))
        .map(|v| (v["key"].as_str().unwrap(), v["value"].as_str().unwrap()))
        .collect();
    assert_eq!(node, [("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "2")]);
    let (first, first_token) = (
        job["id"].as_u64().unwrap(),
        job["token"].as_str().unwrap().to_string(),
    );
    fx.update(first, json!({"token": first_token, "state": "running"}))
        .await;
    fx.update(first, json!({"token": first_token, "state": "success"}))
        .await;
    let report = pipeline.jobs[2].id;
    assert_eq!(
        fx.gitlab.job(report).unwrap().status,
        JobStatus::Created,
        "report waits for build 2/2 too"
    );
    let (second, second_token) = fx.take_job().await;
    fx.update(second, json!({"token": second_token, "state": "success"}))
        .await;
    assert_eq!(fx.gitlab.job(report).unwrap().status, JobStatus::Pending);
}
