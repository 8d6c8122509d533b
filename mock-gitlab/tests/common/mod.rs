//! Shared set-up for the mock's integration tests.
#![allow(dead_code)]

use mock_gitlab::api::{NewPipeline, NewRunner, PipelineCreated, RunnerCredentials, Settings};
use mock_gitlab::{MockConfig, MockGitlab};
use serde_json::{Value, json};

/// A started mock, an HTTP client and one registered untagged runner.
pub struct Fixture {
    pub gitlab: MockGitlab,
    pub http: reqwest::Client,
    pub runner: RunnerCredentials,
    projects: std::sync::atomic::AtomicU32,
}

/// The `info` a gitlab-runner 18 with the custom executor sends (two-phase commit on).
pub fn runner_info() -> Value {
    json!({
        "name": "gitlab-runner", "version": "18.0.0", "revision": "abcd1234",
        "platform": "linux", "architecture": "amd64", "executor": "custom", "shell": "bash",
        "features": {"variables": true, "trace_reset": true, "trace_checksum": true,
                     "trace_size": true, "cancelable": true, "cancel_gracefully": true,
                     "two_phase_job_commit": true, "masking": true},
        "config": {"gpus": ""}
    })
}

impl Fixture {
    pub async fn start() -> Fixture {
        Fixture::with_settings(Settings {
            trace_update_interval: 1,
            ..Settings::default()
        })
        .await
    }

    pub async fn with_settings(settings: Settings) -> Fixture {
        let gitlab = MockGitlab::start(MockConfig {
            registration_token: Some("reg-token".into()),
            settings,
            ..MockConfig::default()
        })
        .await
        .expect("mock starts");
        let runner = gitlab.register_runner(NewRunner::default());
        Fixture {
            gitlab,
            http: reqwest::Client::new(),
            runner,
            projects: std::sync::atomic::AtomicU32::new(0),
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v4/{path}", self.gitlab.url())
    }

    pub fn admin(&self, path: &str) -> String {
        format!("{}/admin/api/{path}", self.gitlab.url())
    }

    /// Creates a pipeline from YAML in a new project without a repository.
    pub fn pipeline(&self, yaml: &str) -> PipelineCreated {
        let n = self
            .projects
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let project = self
            .gitlab
            .create_project(&format!("project-{n}"), None)
            .expect("project");
        self.gitlab
            .create_pipeline(NewPipeline {
                project_id: project,
                ci_yaml: yaml.into(),
                variables: vec![],
                git_ref: "main".into(),
                ..Default::default()
            })
            .expect("pipeline")
    }

    /// `POST jobs/request` with the runner token in the body.
    pub async fn request_job_as(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.api("jobs/request"))
            .json(&json!({"token": token, "info": runner_info(), "system_id": "s_0123456789ab"}))
            .send()
            .await
            .expect("request")
    }

    pub async fn request_job(&self) -> reqwest::Response {
        self.request_job_as(&self.runner.token).await
    }

    /// Takes the next job and acknowledges it (`PUT state=running`): (id, job token).
    pub async fn take_job(&self) -> (u64, String) {
        let reply = self.request_job().await;
        assert_eq!(reply.status(), 201, "a job is pending");
        let job: Value = reply.json().await.expect("job JSON");
        let id = job["id"].as_u64().expect("id");
        let token = job["token"].as_str().expect("token").to_string();
        let ack = self
            .update(id, json!({"token": token, "state": "running"}))
            .await;
        assert_eq!(ack.status(), 200);
        (id, token)
    }

    pub async fn update(&self, id: u64, body: Value) -> reqwest::Response {
        self.http
            .put(self.api(&format!("jobs/{id}")))
            .json(&body)
            .send()
            .await
            .expect("update")
    }

    pub async fn patch_trace(
        &self,
        id: u64,
        token: &str,
        content_range: Option<&str>,
        body: &'static [u8],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .patch(self.api(&format!("jobs/{id}/trace")))
            .header("JOB-TOKEN", token)
            .header("Content-Type", "text/plain")
            .body(body);
        if let Some(range) = content_range {
            req = req.header("Content-Range", range);
        }
        req.send().await.expect("patch")
    }
}

pub fn header<'a>(reply: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    reply.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `crc32:%08x` as gitlab-runner computes it.
pub fn checksum(data: &[u8]) -> String {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(data);
    format!("crc32:{:08x}", hasher.finalize())
}

pub const ONE_JOB: &str = "build:\n  script:\n    - make\n";
