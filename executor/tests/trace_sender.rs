//! The trace sender against a scripted GitLab: resuming after 416, repeating the final update
//! on 202 and 412, and stopping on cancel.

use std::time::Duration;

use batchci::gitlab::{GitlabClient, JobUpdate};
use batchci::trace::{FinalOutcome, JobLog, Masker, RemoteRequest, TraceSender};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn log_with(text: &str, secret: &str) -> std::sync::Arc<JobLog> {
    let log = JobLog::new(Masker::for_job([secret], Vec::<String>::new()), 1 << 20);
    log.write(text.as_bytes());
    log
}

fn sender(server: &MockServer, log: std::sync::Arc<JobLog>) -> TraceSender {
    let client = GitlabClient::new(&server.uri(), "shell")
        .unwrap()
        .with_retry_base(Duration::from_millis(1));
    TraceSender::new(client, 5, "jt".into(), log)
}

async fn patch_bodies(server: &MockServer) -> Vec<(String, String)> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .map(|r| {
            let range = r
                .headers
                .get("Content-Range")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            (range, String::from_utf8(r.body).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_416_resumes_from_the_size_gitlab_reports() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(header("Content-Range", "0-10"))
        .respond_with(ResponseTemplate::new(416).insert_header("Range", "0-5"))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(header("Content-Range", "5-10"))
        .respond_with(ResponseTemplate::new(202).insert_header("Job-Status", "running"))
        .mount(&server)
        .await;
    let mut sender = sender(&server, log_with("hello world", "unused-secret"));

    assert_eq!(sender.flush().await, None);

    assert_eq!(sender.sent(), 11);
    assert_eq!(
        patch_bodies(&server).await,
        [
            ("0-10".to_string(), "hello world".to_string()),
            ("5-10".to_string(), " world".to_string())
        ]
    );
}

#[tokio::test]
async fn masked_values_never_reach_gitlab() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let log = log_with("token=s3cr", "s3cr3t-value");
    let mut sender = sender(&server, log.clone());
    sender.flush().await;
    log.write(b"3t-value done\n");

    assert_eq!(
        sender
            .finish(JobUpdate {
                state: "success",
                ..Default::default()
            })
            .await,
        FinalOutcome::Accepted
    );

    let sent: String = patch_bodies(&server)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(sent, "token=[MASKED] done\n");
}

#[tokio::test]
async fn the_final_update_is_repeated_while_gitlab_answers_202_and_checksum_is_exact() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(202).insert_header("X-GitLab-Trace-Update-Interval", "1"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let mut sender = sender(&server, log_with("all output\n", "zz-secret"));

    let outcome = sender
        .finish(JobUpdate {
            state: "failed",
            failure_reason: Some("script_failure".into()),
            exit_code: Some(2),
            ..Default::default()
        })
        .await;

    assert_eq!(outcome, FinalOutcome::Accepted);
    let puts: Vec<serde_json::Value> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(puts.len(), 2);
    let expected_checksum = format!("crc32:{:08x}", crc32fast::hash(b"all output\n"));
    assert_eq!(puts[1]["output"]["checksum"], expected_checksum.as_str());
    assert_eq!(puts[1]["output"]["bytesize"], 11);
    assert_eq!(puts[1]["exit_code"], 2);
    assert_eq!(puts[1]["failure_reason"], "script_failure");
}

#[tokio::test]
async fn a_412_resends_the_whole_trace() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(412))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let mut sender = sender(&server, log_with("abc", "zz-secret"));

    assert_eq!(
        sender
            .finish(JobUpdate {
                state: "success",
                ..Default::default()
            })
            .await,
        FinalOutcome::Accepted
    );

    assert_eq!(
        patch_bodies(&server).await,
        [
            ("0-2".to_string(), "abc".to_string()),
            ("0-2".to_string(), "abc".to_string())
        ]
    );
}

#[tokio::test]
async fn canceling_and_canceled_are_reported_as_requests() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/jobs/5/trace"))
        .respond_with(ResponseTemplate::new(202).insert_header("Job-Status", "canceling"))
        .mount(&server)
        .await;
    let mut graceful = sender(&server, log_with("x", "zz-secret"));
    assert_eq!(graceful.flush().await, Some(RemoteRequest::Cancel));

    let hard = MockServer::start().await;
    Mock::given(path("/api/v4/jobs/5/trace"))
        .respond_with(ResponseTemplate::new(403).insert_header("Job-Status", "canceled"))
        .mount(&hard)
        .await;
    let mut aborted = sender(&hard, log_with("x", "zz-secret"));
    assert_eq!(aborted.flush().await, Some(RemoteRequest::Abort));
}
