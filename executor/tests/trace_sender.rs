//! The trace sender against a scripted GitLab: resuming after 416, repeating the final update
//! on 202 and 412, stopping on cancel, and when it patches while the job runs.

use std::time::Duration;

use batchci::gitlab::{GitlabClient, JobUpdate};
use batchci::trace::{FinalOutcome, JobLog, MAX_PATCH_BYTES, Masker, RemoteRequest, TraceSender};
use tokio_util::sync::CancellationToken;
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

/// A sender patching in the background with an update interval of an hour: whatever reaches
/// GitLab during a test came without waiting for the interval.
fn running_hourly(
    server: &MockServer,
    log: std::sync::Arc<JobLog>,
) -> (CancellationToken, tokio::task::JoinHandle<TraceSender>) {
    let mut sender = sender(server, log).with_interval(Duration::from_secs(3600));
    let done = CancellationToken::new();
    let stop = done.clone();
    let task = tokio::spawn(async move {
        let (requests, _) = tokio::sync::mpsc::unbounded_channel();
        sender.run(stop, requests).await;
        sender
    });
    (done, task)
}

/// Waits until GitLab has received `bytes` bytes of trace in all; returns the patches.
async fn until_received(server: &MockServer, bytes: usize) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let patches = patch_bodies(server).await;
        if patches.iter().map(|(_, body)| body.len()).sum::<usize>() >= bytes {
            return patches;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GitLab has {} patches, not {bytes} bytes",
            patches.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The bug this guards against: a job writing hundreds of MiB had its log sent only every
/// update interval, and at its end, so GitLab got it seconds after it was written.
#[tokio::test]
async fn a_burst_of_output_is_patched_at_once_in_full_chunks_then_its_rest() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let log = JobLog::new(
        Masker::for_job(["unused-secret"], Vec::<String>::new()),
        1 << 30,
    );
    let (done, task) = running_hourly(&server, log.clone());
    let burst = MAX_PATCH_BYTES * 5 / 2;
    let line = "0123456789abcdef".repeat(4) + "\n";
    let mut written = 0;
    while written < burst {
        log.write(line.as_bytes());
        written += line.len();
    }

    let patches = until_received(&server, written).await;

    let ranges: Vec<&str> = patches.iter().map(|(range, _)| range.as_str()).collect();
    let chunk = MAX_PATCH_BYTES;
    assert_eq!(
        ranges,
        [
            format!("0-{}", chunk - 1),
            format!("{chunk}-{}", 2 * chunk - 1),
            format!("{}-{}", 2 * chunk, written - 1),
        ]
    );
    let sent: String = patches.into_iter().map(|(_, body)| body).collect();
    assert_eq!(sent, line.repeat(written / line.len()));

    // The burst is over (once the last answer is in: the sender sends what it finds then) and
    // a line now waits for the interval again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    log.write(b"one more line\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(patch_bodies(&server).await.len(), 3);
    done.cancel();
    let mut sender = task.await.unwrap();
    assert_eq!(sender.flush().await, None);
    assert_eq!(patch_bodies(&server).await.len(), 4);
    assert_eq!(sender.sent(), written + 14);
}

/// Output that never fills a chunk costs no more requests than gitlab-runner's: one per
/// update interval.
#[tokio::test]
async fn output_smaller_than_a_chunk_waits_for_the_interval() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let log = JobLog::new(
        Masker::for_job(["unused-secret"], Vec::<String>::new()),
        1 << 30,
    );
    let (done, task) = running_hourly(&server, log.clone());

    for n in 0..100 {
        log.write(format!("line {n}\n").as_bytes());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(patch_bodies(&server).await.is_empty());
    done.cancel();
    let mut sender = task.await.unwrap();
    assert_eq!(sender.flush().await, None);
    assert_eq!(patch_bodies(&server).await.len(), 1);
}

/// A GitLab that keeps failing is asked once (with the client's retries) per full chunk that
/// waits, then only at the next interval: never in a loop.
#[tokio::test]
async fn a_failing_gitlab_is_not_asked_again_before_the_interval() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let log = JobLog::new(
        Masker::for_job(["unused-secret"], Vec::<String>::new()),
        1 << 30,
    );
    let (done, task) = running_hourly(&server, log.clone());
    log.write(&vec![b'x'; 3 * MAX_PATCH_BYTES]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    log.write(&vec![b'y'; MAX_PATCH_BYTES]);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let attempts = patch_bodies(&server).await.len();
    done.cancel();
    let sender = task.await.unwrap();
    assert_eq!(sender.sent(), 0);
    assert!(
        (1..=5).contains(&attempts),
        "{attempts} attempts to patch in a second"
    );
}
