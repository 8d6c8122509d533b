//! `PATCH jobs/:id/trace`: one test per reply (table "Trace" in `docs/mock-gitlab.md`, from
//! GitLab's `AppendBuildTraceService` and gitlab-runner's `createPatchTraceResult`).

mod common;

use common::{Fixture, ONE_JOB, header};
use mock_gitlab::JobStatus;
use mock_gitlab::api::{FaultEndpoint, FaultSpec, JobCall, Settings};
use serde_json::{Value, json};

#[tokio::test]
async fn an_appending_patch_is_202_with_job_status_range_and_update_interval() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let first = fx.patch_trace(id, &token, Some("0-5"), b"hello ").await;
    let second = fx.patch_trace(id, &token, Some("6-11"), b"world\n").await;

    assert_eq!(first.status(), 202);
    assert_eq!(header(&first, "job-status"), Some("running"));
    assert_eq!(header(&first, "range"), Some("0-6"));
    assert_eq!(header(&first, "x-gitlab-trace-update-interval"), Some("1"));
    assert_eq!(second.status(), 202);
    assert_eq!(header(&second, "range"), Some("0-12"));
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"hello world\n");
    assert_eq!(fx.gitlab.job(id).unwrap().trace_bytes, 12);
}

#[tokio::test]
async fn the_update_interval_header_follows_the_setting() {
    let fx = Fixture::with_settings(Settings {
        trace_update_interval: 7,
        ..Settings::default()
    })
    .await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let reply = fx.patch_trace(id, &token, Some("0-1"), b"ab").await;

    assert_eq!(header(&reply, "x-gitlab-trace-update-interval"), Some("7"));
}

#[tokio::test]
async fn the_inclusive_end_is_ignored_and_the_body_length_counts() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    // Runners before 13.x sent an exclusive end; GitLab computes the end from the body.
    let reply = fx.patch_trace(id, &token, Some("0-99"), b"abc").await;

    assert_eq!(reply.status(), 202);
    assert_eq!(header(&reply, "range"), Some("0-3"));
}

#[tokio::test]
async fn a_patch_during_graceful_cancel_is_202_with_job_status_canceling() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.gitlab.cancel_job(id, false).unwrap();

    let reply = fx.patch_trace(id, &token, Some("0-2"), b"abc").await;

    assert_eq!(reply.status(), 202);
    assert_eq!(header(&reply, "job-status"), Some("canceling"));
    assert_eq!(
        fx.gitlab.trace(id).unwrap(),
        b"abc",
        "the log is still taken"
    );
}

#[tokio::test]
async fn a_patch_after_hard_cancel_is_403_with_job_status_canceled() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.gitlab.cancel_job(id, true).unwrap();

    let reply = fx.patch_trace(id, &token, Some("0-2"), b"abc").await;

    assert_eq!(reply.status(), 403);
    assert_eq!(header(&reply, "job-status"), Some("canceled"));
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"");
}

#[tokio::test]
async fn a_patch_after_the_job_failed_is_403_with_job_status_failed() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.update(
        id,
        json!({"token": token, "state": "failed", "exit_code": 1}),
    )
    .await;

    let reply = fx.patch_trace(id, &token, Some("0-2"), b"abc").await;

    assert_eq!(reply.status(), 403);
    assert_eq!(header(&reply, "job-status"), Some("failed"));
}

#[tokio::test]
async fn a_patch_with_a_wrong_job_token_is_403_with_job_status() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, _token) = fx.take_job().await;

    let reply = fx.patch_trace(id, "glcbt-wrong", Some("0-2"), b"abc").await;

    assert_eq!(reply.status(), 403);
    assert_eq!(header(&reply, "job-status"), Some("running"));
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"");
}

#[tokio::test]
async fn a_patch_before_the_two_phase_ack_is_403_with_job_status_pending() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let job: Value = fx.request_job().await.json().await.unwrap();
    let id = job["id"].as_u64().unwrap();

    let reply = fx
        .patch_trace(id, job["token"].as_str().unwrap(), Some("0-2"), b"abc")
        .await;

    assert_eq!(reply.status(), 403);
    assert_eq!(header(&reply, "job-status"), Some("pending"));
}

#[tokio::test]
async fn a_gap_is_416_with_the_stored_size_in_range() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-3"), b"abcd").await;

    let gap = fx.patch_trace(id, &token, Some("10-12"), b"xyz").await;

    assert_eq!(gap.status(), 416);
    assert_eq!(header(&gap, "range"), Some("0-4"));
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"abcd");
}

#[tokio::test]
async fn a_resent_chunk_is_416_and_the_runner_resumes_at_the_reported_offset() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.patch_trace(id, &token, Some("0-3"), b"abcd").await;

    let overlap = fx.patch_trace(id, &token, Some("2-5"), b"cdef").await;
    let resumed = fx.patch_trace(id, &token, Some("4-5"), b"ef").await;

    assert_eq!(overlap.status(), 416);
    assert_eq!(header(&overlap, "range"), Some("0-4"));
    assert_eq!(resumed.status(), 202);
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"abcdef");
    let patches: Vec<(Option<String>, u64, u16)> = fx
        .gitlab
        .job_calls(id)
        .unwrap()
        .into_iter()
        .filter_map(|c| match c {
            JobCall::Patch {
                content_range,
                bytes,
                reply,
            } => Some((content_range, bytes, reply)),
            _ => None,
        })
        .collect();
    assert_eq!(
        patches,
        [
            (Some("0-3".into()), 4, 202),
            (Some("2-5".into()), 4, 416),
            (Some("4-5".into()), 2, 202)
        ]
    );
}

#[tokio::test]
async fn a_patch_without_content_range_is_400() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let reply = fx.patch_trace(id, &token, None, b"abc").await;

    assert_eq!(reply.status(), 400);
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"message": "400 Bad request - missing header Content-Range"})
    );
}

#[tokio::test]
async fn a_malformed_content_range_is_400_quoting_it() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let reply = fx
        .patch_trace(id, &token, Some("bytes 0-2/3"), b"abc")
        .await;

    assert_eq!(reply.status(), 400);
    assert!(
        reply
            .text()
            .await
            .unwrap()
            .contains("got \\\"bytes 0-2/3\\\"")
    );
}

#[tokio::test]
async fn a_patch_for_an_unknown_job_is_404() {
    let fx = Fixture::start().await;

    let reply = fx.patch_trace(999_999, "t", Some("0-2"), b"abc").await;

    assert_eq!(reply.status(), 404);
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"message": "404 Job 999999 Not Found"})
    );
}

#[tokio::test]
async fn a_server_error_through_a_fault_stores_nothing() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    fx.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::Trace, 502).times(1))
        .unwrap();

    let failed = fx.patch_trace(id, &token, Some("0-2"), b"abc").await;
    let retried = fx.patch_trace(id, &token, Some("0-2"), b"abc").await;

    assert_eq!(failed.status(), 502);
    assert_eq!(retried.status(), 202);
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"abc");
}

#[tokio::test]
async fn a_trace_over_the_size_limit_is_403_and_fails_the_job_with_trace_size_exceeded() {
    let fx = Fixture::with_settings(Settings {
        trace_size_limit: Some(8),
        trace_update_interval: 1,
        ..Settings::default()
    })
    .await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;
    assert_eq!(
        fx.patch_trace(id, &token, Some("0-5"), b"123456")
            .await
            .status(),
        202
    );

    let reply = fx.patch_trace(id, &token, Some("6-8"), b"789").await;

    assert_eq!(reply.status(), 403);
    assert_eq!(header(&reply, "job-status"), Some("failed"));
    let job = fx.gitlab.job(id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reason.as_deref(), Some("trace_size_exceeded"));
    assert_eq!(fx.gitlab.trace(id).unwrap(), b"123456");
}

#[tokio::test]
async fn a_patch_over_the_body_limit_is_413() {
    let fx = Fixture::start().await;
    fx.pipeline(ONE_JOB);
    let (id, token) = fx.take_job().await;

    let reply = fx
        .http
        .patch(fx.api(&format!("jobs/{id}/trace")))
        .header("JOB-TOKEN", &token)
        .header("Content-Range", "0-1")
        .body(vec![b'x'; 9 * 1024 * 1024])
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 413);
}
