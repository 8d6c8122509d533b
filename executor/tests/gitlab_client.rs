//! Edge cases of the GitLab client against a scripted server: each test says what GitLab
//! answers and checks what batchci concludes from it.

use std::time::Duration;

use batchci::gitlab::{GitlabClient, JobRequest, JobUpdate, PatchOutcome, UpdateOutcome};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const JOB: &str = include_str!("fixtures/job_request_201_response.json");

async fn client(server: &MockServer) -> GitlabClient {
    GitlabClient::new(&server.uri(), "slurm")
        .unwrap()
        .with_retry_base(Duration::from_millis(1))
}

#[tokio::test]
async fn a_job_is_taken_only_with_a_json_content_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/jobs/request"))
        .and(header("RUNNER-TOKEN", "glrt-x"))
        .and(body_partial_json(
            serde_json::json!({"token": "glrt-x", "info": {"executor": "slurm"}}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_raw(JOB, "application/json"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/jobs/request"))
        .respond_with(ResponseTemplate::new(201).set_body_raw(JOB, "text/plain"))
        .mount(&server)
        .await;
    let client = client(&server).await;

    match client.request_job("glrt-x", None).await.unwrap() {
        JobRequest::Job(job, raw) => {
            assert_eq!(job.id, 10);
            assert_eq!(raw, JOB.as_bytes());
        }
        other => panic!("expected a job, got {other:?}"),
    }
    let error = client.request_job("glrt-x", None).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "GitLab's answer to POST jobs/request is not understood: 201 without Content-Type: application/json"
    );
}

#[tokio::test]
async fn no_job_carries_last_update_and_forbidden_is_reported() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/jobs/request"))
        .and(header("RUNNER-TOKEN", "good"))
        .respond_with(ResponseTemplate::new(204).insert_header("X-GitLab-Last-Update", "abc"))
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/jobs/request"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let client = client(&server).await;
    match client.request_job("good", None).await.unwrap() {
        JobRequest::NoJob { last_update } => assert_eq!(last_update.as_deref(), Some("abc")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client.request_job("bad", None).await.unwrap(),
        JobRequest::Forbidden
    ));
}

#[tokio::test]
async fn transient_errors_are_retried_then_reported() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/jobs/request"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/jobs/request"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let client = client(&server).await;
    assert!(matches!(
        client.request_job("t", None).await.unwrap(),
        JobRequest::NoJob { .. }
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    let failing = MockServer::start().await;
    Mock::given(path("/api/v4/jobs/request"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&failing)
        .await;
    let error = client_for(&failing)
        .request_job("t", None)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "GitLab answered 500 Internal Server Error to POST jobs/request: boom"
    );
    assert_eq!(failing.received_requests().await.unwrap().len(), 5);
}

fn client_for(server: &MockServer) -> GitlabClient {
    GitlabClient::new(&server.uri(), "slurm")
        .unwrap()
        .with_retry_base(Duration::from_millis(1))
}

#[tokio::test]
async fn a_patch_sends_an_inclusive_content_range_and_reads_the_answer() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/api/v4/jobs/7/trace"))
        .and(header("JOB-TOKEN", "jt"))
        .and(header("Content-Range", "10-14"))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Job-Status", "running")
                .insert_header("Range", "0-15")
                .insert_header("X-GitLab-Trace-Update-Interval", "1"),
        )
        .mount(&server)
        .await;
    let outcome = client(&server)
        .await
        .patch_trace(7, "jt", 10, b"hello")
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PatchOutcome::Accepted {
            interval: Some(Duration::from_secs(1)),
            cancel_requested: false
        }
    );
}

#[tokio::test]
async fn patch_answers_map_to_gitlab_runners_reactions() {
    let cases = [
        (
            ResponseTemplate::new(202).insert_header("Job-Status", "canceling"),
            PatchOutcome::Accepted {
                interval: None,
                cancel_requested: true,
            },
        ),
        (
            ResponseTemplate::new(416).insert_header("Range", "0-3"),
            PatchOutcome::RangeMismatch { remote_size: 3 },
        ),
        (
            ResponseTemplate::new(416),
            PatchOutcome::RangeMismatch { remote_size: 0 },
        ),
        (
            ResponseTemplate::new(416).insert_header("Range", "garbage"),
            PatchOutcome::RangeMismatch { remote_size: 0 },
        ),
        (
            ResponseTemplate::new(403).insert_header("Job-Status", "running"),
            PatchOutcome::Abort,
        ),
        (
            ResponseTemplate::new(202).insert_header("Job-Status", "canceled"),
            PatchOutcome::Abort,
        ),
        (ResponseTemplate::new(404), PatchOutcome::NotFound),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/api/v4/jobs/1/trace"))
            .respond_with(response)
            .mount(&server)
            .await;
        let outcome = client(&server)
            .await
            .patch_trace(1, "t", 0, b"x")
            .await
            .unwrap();
        assert_eq!(outcome, expected);
    }
}

#[tokio::test]
async fn the_final_update_omits_exit_code_zero_and_reports_checksum_and_size() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/v4/jobs/3"))
        .and(body_partial_json(serde_json::json!({
            "token": "jt", "state": "success",
            "checksum": "crc32:01020304",
            "output": {"checksum": "crc32:01020304", "bytesize": 12}
        })))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let update = JobUpdate {
        state: "success",
        exit_code: Some(0),
        checksum: Some("crc32:01020304".into()),
        bytesize: Some(12),
        ..Default::default()
    };
    let outcome = client(&server)
        .await
        .update_job(3, "jt", &update)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        UpdateOutcome::Accepted {
            cancel_requested: false
        }
    );
    let request = &server.received_requests().await.unwrap()[0];
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert!(body.get("exit_code").is_none(), "{body}");
    assert!(body.get("failure_reason").is_none(), "{body}");
}

#[tokio::test]
async fn update_answers_map_to_gitlab_runners_reactions() {
    let cases = [
        (
            ResponseTemplate::new(202).insert_header("X-GitLab-Trace-Update-Interval", "2"),
            UpdateOutcome::TryAgain {
                interval: Duration::from_secs(2),
            },
        ),
        (ResponseTemplate::new(412), UpdateOutcome::TraceMismatch),
        (ResponseTemplate::new(403), UpdateOutcome::Abort),
        (
            ResponseTemplate::new(200).insert_header("Job-Status", "canceled"),
            UpdateOutcome::Abort,
        ),
        (
            ResponseTemplate::new(200).insert_header("Job-Status", "canceling"),
            UpdateOutcome::Accepted {
                cancel_requested: true,
            },
        ),
        // GitLab echoes the state just set: our `failed` was accepted, nothing was aborted.
        (
            ResponseTemplate::new(200).insert_header("Job-Status", "failed"),
            UpdateOutcome::Accepted {
                cancel_requested: false,
            },
        ),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/api/v4/jobs/1"))
            .respond_with(response)
            .mount(&server)
            .await;
        let update = JobUpdate {
            state: "failed",
            failure_reason: Some("script_failure".into()),
            exit_code: Some(3),
            ..Default::default()
        };
        assert_eq!(
            client(&server)
                .await
                .update_job(1, "t", &update)
                .await
                .unwrap(),
            expected
        );
    }
}

#[tokio::test]
async fn an_unreachable_gitlab_is_a_clear_error_that_says_why() {
    let refused = GitlabClient::new("http://127.0.0.1:9", "shell")
        .unwrap()
        .with_retry_base(Duration::from_millis(1));
    let no_such_host = GitlabClient::new("http://gitlab.invalid", "shell")
        .unwrap()
        .with_retry_base(Duration::from_millis(1));
    let plain = MockServer::start().await;
    let tls_to_plain_http = GitlabClient::new(&plain.uri().replace("http:", "https:"), "shell")
        .unwrap()
        .with_retry_base(Duration::from_millis(1));

    let refused = refused.verify("t").await.unwrap_err().to_string();
    let no_such_host = no_such_host.verify("t").await.unwrap_err().to_string();
    let tls_to_plain_http = tls_to_plain_http.verify("t").await.unwrap_err().to_string();

    assert!(
        refused.starts_with("cannot reach GitLab at http://127.0.0.1:9/api/v4: "),
        "{refused}"
    );
    assert!(
        refused.ends_with("Connection refused (os error 111)"),
        "{refused}"
    );
    assert!(
        no_such_host.contains("dns error"),
        "the cause is named: {no_such_host}"
    );
    assert!(
        tls_to_plain_http.contains("InvalidContentType"),
        "the cause is named: {tls_to_plain_http}"
    );
    assert!(GitlabClient::new("gitlab.example.com", "shell").is_err());
}

#[tokio::test]
async fn an_unreadable_job_is_identified_so_it_can_be_failed_not_lost() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/jobs/request"))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            r#"{"id":77,"token":"jt","steps":"not a list"}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    match client(&server).await.request_job("t", None).await.unwrap() {
        JobRequest::Unreadable { id, token, reason } => {
            assert_eq!((id, token.as_str()), (77, "jt"));
            assert_eq!(
                reason,
                "steps: invalid type: string \"not a list\", expected a sequence at line 1 column 42"
            );
        }
        other => panic!("expected an unreadable job, got {other:?}"),
    }
}

#[tokio::test]
async fn job_requests_carry_a_stable_system_id() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/jobs/request"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let client = client(&server).await;
    client.request_job("t", None).await.unwrap();
    client.request_job("t", Some("x")).await.unwrap();
    let bodies: Vec<serde_json::Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let id = bodies[0]["system_id"].as_str().unwrap();
    assert!(id.starts_with("s_") && id.len() == 14, "{id}");
    assert_eq!(bodies[1]["system_id"], id);
    assert_eq!(bodies[1]["last_update"], "x");
    assert!(bodies[0].get("last_update").is_none());
}
