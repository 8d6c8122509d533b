//! `PUT jobs/:id`: one test per reply (table "Job update" in `docs/mock-gitlab.md`, from
//! GitLab's `UpdateBuildStateService` and gitlab-runner's `createUpdateJobResult`).

mod common;

use common::{Fixture, ONE_JOB, checksum, header};
use mock_gitlab::JobStatus;
use mock_gitlab::api::{FaultEndpoint, FaultSpec, Settings};
use serde_json::{Value, json};

#[tokio::test]
async fn a_final_success_with_matching_output_is_200_and_stores_exit_code_zero() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-5"), b"done!\n").await;

    let reply = fx
        .update(
            id,
            json!({"token": token, "state": "success",
                           "output": {"checksum": checksum(b"done!\n"), "bytesize": 6}}),
        )
        .await;

    assert_eq!(reply.status(), 200);
    assert_eq!(header(&reply, "job-status"), Some("success"));
    let job = fx.gitlab.job(id).unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(job.exit_code, Some(0), "an absent exit_code means 0");
    assert_eq!(job.failure_reason, None);
    assert!(job.finished_at.is_some());
}

#[tokio::test]
async fn a_final_failure_stores_reason_and_exit_code() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let reply = fx
        .update(
            id,
            json!({"token": token, "state": "failed", "failure_reason": "script_failure",
                           "exit_code": 42, "output": {}}),
        )
        .await;

    assert_eq!(reply.status(), 200);
    assert_eq!(header(&reply, "job-status"), Some("failed"));
    let job = fx.gitlab.job(id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.exit_code, Some(42));
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
}

#[tokio::test]
async fn an_unknown_failure_reason_is_stored_as_unknown_failure_like_gitlab() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    fx.update(
        id,
        json!({"token": token, "state": "failed", "failure_reason": "job_canceled"}),
    )
    .await;

    assert_eq!(
        fx.gitlab.job(id).unwrap().failure_reason.as_deref(),
        Some("unknown_failure")
    );
}

#[tokio::test]
async fn a_keep_alive_running_update_is_200_with_job_status_running() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let reply = fx
        .update(
            id,
            json!({"token": token, "state": "running",
                           "output": {"checksum": checksum(b""), "bytesize": 0}}),
        )
        .await;

    assert_eq!(reply.status(), 200);
    assert_eq!(header(&reply, "job-status"), Some("running"));
    assert_eq!(header(&reply, "x-gitlab-trace-update-interval"), Some("1"));
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Running);
}

#[tokio::test]
async fn a_final_update_is_202_while_the_trace_is_still_being_persisted() {
    let fx = Fixture::with_settings(Settings {
        update_accepts: 2,
        trace_update_interval: 1,
        ..Settings::default()
    })
    .await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    let body = json!({"token": token, "state": "success", "output": {"checksum": checksum(b""), "bytesize": 0}});

    let first = fx.update(id, body.clone()).await;
    let second = fx.update(id, body.clone()).await;
    let third = fx.update(id, body).await;

    assert_eq!(first.status(), 202);
    assert_eq!(header(&first, "x-gitlab-trace-update-interval"), Some("1"));
    assert_eq!(header(&first, "job-status"), Some("running"));
    assert_eq!(second.status(), 202);
    assert_eq!(third.status(), 200);
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Success);
}

#[tokio::test]
async fn a_checksum_mismatch_is_412_and_the_whole_trace_can_be_resent_from_zero() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-3"), b"abXd").await;
    let body = json!({"token": token, "state": "success",
                      "output": {"checksum": checksum(b"abcd"), "bytesize": 4}});

    let rejected = fx.update(id, body.clone()).await;
    let resent = fx.patch_trace(id, &token, Some("0-3"), b"abcd").await;
    let accepted = fx.update(id, body).await;

    assert_eq!(rejected.status(), 412);
    assert_eq!(header(&rejected, "job-status"), Some("running"));
    assert_eq!(resent.status(), 202);
    assert_eq!(accepted.status(), 200);
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"abcd");
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Success);
}

#[tokio::test]
async fn a_bytesize_mismatch_is_412() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-2"), b"abc").await;

    let reply = fx
        .update(
            id,
            json!({"token": token, "state": "failed", "output": {"bytesize": 10}}),
        )
        .await;

    assert_eq!(reply.status(), 412);
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Running);
}

#[tokio::test]
async fn an_update_after_hard_cancel_is_403_with_job_status_canceled() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.gitlab.cancel_job(id, true).unwrap();

    let reply = fx
        .update(id, json!({"token": token, "state": "failed"}))
        .await;

    assert_eq!(reply.status(), 403);
    assert_eq!(header(&reply, "job-status"), Some("canceled"));
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Canceled);
}

#[tokio::test]
async fn an_update_of_a_finished_job_is_403_with_its_status() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.update(id, json!({"token": token, "state": "success"}))
        .await;

    let reply = fx
        .update(id, json!({"token": token, "state": "failed"}))
        .await;

    assert_eq!(reply.status(), 403);
    assert_eq!(header(&reply, "job-status"), Some("success"));
}

#[tokio::test]
async fn an_update_with_a_wrong_token_is_403() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, _token) = fx.take_job().await;

    let reply = fx
        .update(id, json!({"token": "glcbt-wrong", "state": "success"}))
        .await;

    assert_eq!(reply.status(), 403);
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Running);
}

#[tokio::test]
async fn the_job_token_header_is_accepted_as_well_as_the_body_token() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let reply = fx
        .http
        .put(fx.api(&format!("jobs/{id}")))
        .header("JOB-TOKEN", &token)
        .json(&json!({"state": "success"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn an_update_of_an_unknown_job_is_404() {
    let fx = Fixture::start().await;

    let reply = fx
        .update(424_242, json!({"token": "t", "state": "success"}))
        .await;

    assert_eq!(reply.status(), 404);
}

#[tokio::test]
async fn during_graceful_cancel_updates_answer_job_status_canceling_and_the_end_is_canceled() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    let canceling = fx.gitlab.cancel_job(id, false).unwrap();

    let touch = fx
        .update(id, json!({"token": token, "state": "running"}))
        .await;
    let last = fx
        .update(
            id,
            json!({"token": token, "state": "failed", "failure_reason": "job_canceled"}),
        )
        .await;

    assert_eq!(canceling.status, JobStatus::Canceling);
    assert_eq!(touch.status(), 200);
    assert_eq!(header(&touch, "job-status"), Some("canceling"));
    assert_eq!(last.status(), 200);
    assert_eq!(header(&last, "job-status"), Some("canceled"));
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Canceled);
}

#[tokio::test]
async fn the_two_phase_ack_of_a_job_canceled_meanwhile_is_403_canceled() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(ONE_JOB);
    let job: Value = fx.request_job().await.json().await.unwrap();
    fx.gitlab.cancel_job(pipeline.jobs[0].id, false).unwrap();

    let ack = fx
        .update(
            pipeline.jobs[0].id,
            json!({"token": job["token"], "state": "running"}),
        )
        .await;

    assert_eq!(ack.status(), 403);
    assert_eq!(header(&ack, "job-status"), Some("canceled"));
}

#[tokio::test]
async fn a_server_error_through_a_fault_leaves_the_job_running() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::Update, 500).times(1))
        .unwrap();

    let failed = fx
        .update(id, json!({"token": token, "state": "success"}))
        .await;
    let retried = fx
        .update(id, json!({"token": token, "state": "success"}))
        .await;

    assert_eq!(failed.status(), 500);
    assert_eq!(retried.status(), 200);
    assert_eq!(fx.gitlab.job(id).unwrap().status, JobStatus::Success);
}

#[tokio::test]
async fn a_missing_or_invalid_state_is_400_naming_it() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let missing = fx.update(id, json!({"token": token})).await;
    let invalid = fx
        .update(id, json!({"token": token, "state": "done"}))
        .await;
    let wrong_type = fx
        .update(
            id,
            json!({"token": token, "state": "success", "exit_code": "one"}),
        )
        .await;

    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["message"],
        "400 Bad request - state is missing"
    );
    assert_eq!(invalid.status(), 400);
    assert!(
        invalid
            .text()
            .await
            .unwrap()
            .contains("state: \\\"done\\\"")
    );
    assert_eq!(wrong_type.status(), 422);
    assert!(
        wrong_type
            .text()
            .await
            .unwrap()
            .contains("field `exit_code`")
    );
}

#[tokio::test]
async fn a_finished_stage_makes_the_next_stage_pending() {
    let fx = Fixture::start().await;
    let pipeline = fx.pipeline(
        "stages: [build, test]\nbuild:\n  stage: build\n  script: [a]\ntest:\n  stage: test\n  script: [b]\n",
    );
    let (build, token) = fx.take_job().await;
    assert_eq!(
        fx.gitlab.job(pipeline.jobs[1].id).unwrap().status,
        JobStatus::Created
    );

    fx.update(build, json!({"token": token, "state": "success"}))
        .await;

    assert_eq!(
        fx.gitlab.job(pipeline.jobs[1].id).unwrap().status,
        JobStatus::Pending
    );
    assert_eq!(fx.gitlab.pipeline(pipeline.id).unwrap().status, "running");
}
