//! Trace ingest of the mock GitLab over loopback: `PATCH /api/v4/jobs/:id/trace` requests per
//! second and bytes per second, with 4 KiB, 64 KiB and 1 MiB chunks, one runner sending sequentially
//! over a kept-alive connection the way gitlab-runner's trace sender does.
//!
//! Run: `cargo bench -p bench --bench trace_ingest`. Criterion reports the time per PATCH (its
//! inverse is PATCH/s) and the throughput in bytes/s.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mock_gitlab::api::{NewPipeline, NewRunner, Settings};
use mock_gitlab::{MockConfig, MockGitlab};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A job's trace is dropped (its pipeline deleted) once it holds this much, to bound memory.
const ROTATE_AFTER_BYTES: usize = 256 * 1024 * 1024;

struct Target {
    gitlab: MockGitlab,
    http: reqwest::Client,
    runner: String,
    project: u64,
}

/// A running job the bench appends to.
struct Job {
    pipeline: u64,
    id: u64,
    token: String,
    offset: usize,
}

impl Target {
    async fn start() -> Target {
        let gitlab = MockGitlab::start(MockConfig {
            settings: Settings {
                trace_update_interval: 1,
                ..Settings::default()
            },
            ..MockConfig::default()
        })
        .await
        .expect("mock GitLab starts");
        let runner = gitlab.register_runner(NewRunner::default()).token;
        let project = gitlab.create_project("bench", None).expect("project");
        Target {
            gitlab,
            http: reqwest::Client::new(),
            runner,
            project,
        }
    }

    async fn new_job(&self) -> Job {
        let pipeline = self
            .gitlab
            .create_pipeline(NewPipeline {
                project_id: self.project,
                ci_yaml: "ingest:\n  script: [x]\n".into(),
                variables: vec![],
                git_ref: "main".into(),
                ..Default::default()
            })
            .expect("pipeline");
        let reply: Value = self
            .http
            .post(format!("{}/api/v4/jobs/request", self.gitlab.url()))
            .json(&json!({"token": self.runner}))
            .send()
            .await
            .expect("job request")
            .json()
            .await
            .expect("job JSON");
        Job {
            pipeline: pipeline.id,
            id: reply["id"].as_u64().expect("job id"),
            token: reply["token"].as_str().expect("job token").to_string(),
            offset: 0,
        }
    }

    async fn patch(&self, job: &mut Job, chunk: &Bytes) {
        let end = job.offset + chunk.len() - 1;
        let reply = self
            .http
            .patch(format!(
                "{}/api/v4/jobs/{}/trace",
                self.gitlab.url(),
                job.id
            ))
            .header("JOB-TOKEN", &job.token)
            .header("Content-Range", format!("{}-{end}", job.offset))
            .header("Content-Type", "text/plain")
            .body(chunk.clone())
            .send()
            .await
            .expect("patch");
        assert_eq!(reply.status(), 202, "trace accepted");
        job.offset += chunk.len();
    }
}

/// A realistic log chunk of `size` bytes; `Bytes` clones share it, so requests do not copy it.
fn log_chunk(size: usize) -> Bytes {
    let line = b"\x1b[32;1m$ make -j2\x1b[0;m compiling module with a realistic log line\n";
    line.iter()
        .copied()
        .cycle()
        .take(size)
        .collect::<Vec<u8>>()
        .into()
}

fn trace_ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let target = runtime.block_on(Target::start());

    let mut group = c.benchmark_group("trace_ingest");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, size) in [
        ("4KiB", 4 * 1024),
        ("64KiB", 64 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let chunk = log_chunk(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("patch_{name}"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut job = target.new_job().await;
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        if job.offset + chunk.len() > ROTATE_AFTER_BYTES {
                            target
                                .gitlab
                                .delete_pipeline(job.pipeline)
                                .expect("delete pipeline");
                            job = target.new_job().await;
                        }
                        let started = Instant::now();
                        target.patch(&mut job, &chunk).await;
                        spent += started.elapsed();
                    }
                    target
                        .gitlab
                        .delete_pipeline(job.pipeline)
                        .expect("delete pipeline");
                    spent
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, trace_ingest);
criterion_main!(benches);
