//! The GitLab side: runner API v4 calls with gitlab-runner's semantics.
//!
//! Each call returns an outcome enum that says what the runner should do next, mirroring how
//! gitlab-runner interprets status codes and the `Job-Status` header (see
//! `docs/gitlab-protocol.md`). Transient failures (408, 429, 500, 502, 503, 504, ≥ 512) are
//! retried here, up to five attempts with exponential backoff or the server's `Retry-After`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use crate::job::Job;

/// Version reported to GitLab.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a GitLab call failed.
#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    /// The URL in the configuration is unusable.
    #[error("invalid GitLab URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No HTTP exchange happened (connection refused, no such host, TLS spoken to plain
    /// HTTP, reset, timeout).
    #[error("cannot reach GitLab at {url}: {cause}")]
    Transport {
        /// The endpoint.
        url: String,
        /// The whole chain of causes, down to the operating system's words
        /// (`Connection refused (os error 111)`): reqwest's own message alone says only
        /// `error sending request`.
        cause: String,
    },
    /// GitLab answered with a status the call does not expect.
    #[error("GitLab answered {status} to {what}: {body}")]
    Status {
        /// The call, e.g. `POST jobs/request`.
        what: &'static str,
        /// The status code.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// GitLab's answer could not be understood.
    #[error("GitLab's answer to {what} is not understood: {reason}")]
    Payload {
        /// The call.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A registered runner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Registered {
    /// Runner id.
    #[serde(default)]
    pub id: u64,
    /// Runner authentication token.
    pub token: String,
}

/// What `POST runners/verify` says about a runner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Verified {
    /// Runner id (0 when GitLab did not say).
    #[serde(default)]
    pub id: u64,
    /// When the token stops working, as GitLab prints it (RFC 3339); `None`: never.
    #[serde(default)]
    pub token_expires_at: Option<String>,
}

/// What `POST runners/reset_authentication_token` gave.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResetToken {
    /// The runner's new authentication token.
    pub token: String,
    /// When it stops working (RFC 3339); `None`: never.
    #[serde(default)]
    pub token_expires_at: Option<String>,
}

/// What `POST jobs/request` gave.
#[derive(Debug)]
pub enum JobRequest {
    /// A job to run (boxed: it is large). The raw payload is kept for `JOB_RESPONSE_FILE`.
    Job(Box<Job>, Vec<u8>),
    /// Nothing to do; echo `last_update` in the next request.
    NoJob {
        /// The `X-GitLab-Last-Update` header.
        last_update: Option<String>,
    },
    /// The runner token is not valid (403).
    Forbidden,
    /// Another runner manager took the job (409): ask again.
    Conflict,
    /// GitLab handed out a job whose payload batchci cannot read; it must be failed.
    Unreadable {
        /// The job id.
        id: u64,
        /// Its token.
        token: String,
        /// What is wrong with the payload.
        reason: String,
    },
}

/// What `PATCH jobs/:id/trace` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOutcome {
    /// Stored. GitLab may ask for a new interval and may request a graceful cancel.
    Accepted {
        /// `X-GitLab-Trace-Update-Interval`, when sent.
        interval: Option<Duration>,
        /// `Job-Status: canceling`.
        cancel_requested: bool,
    },
    /// GitLab holds a different number of bytes: resend from `remote_size`.
    RangeMismatch {
        /// The end of GitLab's `Range: 0-<n>` (0 when missing or malformed).
        remote_size: usize,
    },
    /// The job was canceled or failed on GitLab's side, or the token is refused: stop the job.
    Abort,
    /// The job is gone: stop sending its trace.
    NotFound,
}

/// What `PUT jobs/:id` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Done.
    Accepted {
        /// `Job-Status: canceling`.
        cancel_requested: bool,
    },
    /// GitLab is still persisting the trace: flush again and repeat after `interval`.
    TryAgain {
        /// The wait GitLab asks for.
        interval: Duration,
    },
    /// The checksum or size does not match what GitLab stored: resend the whole trace.
    TraceMismatch,
    /// The job was canceled or failed on GitLab's side, or the token is refused.
    Abort,
}

/// The body of `PUT jobs/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobUpdate {
    /// `running`, `success` or `failed`.
    pub state: &'static str,
    /// For `failed`: `script_failure`, `runner_system_failure`, `job_execution_timeout`, ...
    pub failure_reason: Option<String>,
    /// The script's exit code (0 is not sent, as gitlab-runner does).
    pub exit_code: Option<i32>,
    /// `crc32:xxxxxxxx` of the stored trace.
    pub checksum: Option<String>,
    /// Size of the stored trace.
    pub bytesize: Option<usize>,
}

/// A client for one GitLab instance.
#[derive(Debug, Clone)]
pub struct GitlabClient {
    http: reqwest::Client,
    api: String,
    executor: String,
    retry_base: Duration,
    system_id: String,
}

/// A stable id of this machine in gitlab-runner's `s_<12 hex>` form, so GitLab lists one
/// runner manager per host.
pub fn system_id() -> String {
    let seed = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .filter(|id| !id.trim().is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    format!(
        "s_{:012x}",
        u64::from(crc32fast::hash(seed.trim().as_bytes())) << 16 | 0x5ba7
    )
}

const ATTEMPTS: usize = 5;

impl GitlabClient {
    /// A client for the GitLab at `url` (`https://gitlab.example.com`), announcing `executor`.
    pub fn new(url: &str, executor: &str) -> Result<GitlabClient, GitlabError> {
        let trimmed = url.trim_end_matches('/');
        if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
            return Err(GitlabError::Url {
                url: url.to_string(),
                reason: "it must start with http:// or https://".into(),
            });
        }
        let http = reqwest::Client::builder()
            .user_agent(format!(
                "batchci {VERSION} ({}; {}/{})",
                executor,
                std::env::consts::OS,
                std::env::consts::ARCH
            ))
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(3600))
            .build()
            .map_err(|e| GitlabError::Url {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Ok(GitlabClient {
            http,
            api: format!("{trimmed}/api/v4"),
            executor: executor.to_string(),
            retry_base: Duration::from_millis(100),
            system_id: system_id(),
        })
    }

    /// The HTTP client of this GitLab's calls (user agent, timeouts, TLS), for other requests
    /// to the same GitLab, such as fetching the keys of its job ID tokens.
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// Shortens the first retry pause (tests use this; the default is 100 ms).
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// The `info` object sent with every runner call.
    pub fn info(&self) -> serde_json::Value {
        json!({
            "name": "batchci",
            "version": VERSION,
            "revision": "",
            "platform": std::env::consts::OS,
            "architecture": std::env::consts::ARCH,
            "executor": self.executor,
            "shell": "bash",
            "features": {
                "variables": true, "image": false, "services": false, "artifacts": true,
                "cache": false, "fallback_cache_keys": false, "shared": false,
                "upload_multiple_artifacts": false, "upload_raw_artifacts": false,
                "session": false, "terminal": false, "refspecs": true, "masking": true,
                "proxy": false, "raw_variables": true, "artifacts_exclude": false,
                "multi_build_steps": true, "trace_reset": true, "trace_checksum": true,
                "trace_size": true, "vault_secrets": false, "cancelable": true,
                "return_exit_code": true, "service_variables": false,
                "service_multiple_aliases": false, "image_executor_opts": false,
                "service_executor_opts": false, "cancel_gracefully": true,
                "native_steps_integration": false, "two_phase_job_commit": true,
                "job_inputs": false
            },
            "config": {"gpus": ""}
        })
    }

    /// `POST runners`: registers with a registration token.
    pub async fn register(
        &self,
        registration_token: &str,
        description: &str,
        tags: &[String],
        run_untagged: bool,
    ) -> Result<Registered, GitlabError> {
        let body = json!({
            "token": registration_token,
            "description": description,
            "tag_list": tags.join(","),
            "run_untagged": run_untagged,
            "locked": true,
            "info": self.info(),
        });
        let response = self
            .send("POST runners", || {
                self.http
                    .post(format!("{}/runners", self.api))
                    .header("RUNNER-TOKEN", registration_token)
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => json_body(response, "POST runners").await,
            _ => Err(status_error("POST runners", response).await),
        }
    }

    /// `POST runners/verify`: whether `token` is a valid runner token.
    pub async fn verify(&self, token: &str) -> Result<bool, GitlabError> {
        Ok(self.verify_details(token).await?.is_some())
    }

    /// `POST runners/verify`: what GitLab knows of the runner whose token is `token`, or
    /// `None` when GitLab refuses the token (403, also for an expired one).
    pub async fn verify_details(&self, token: &str) -> Result<Option<Verified>, GitlabError> {
        let body = json!({"token": token, "info": self.info(), "system_id": self.system_id});
        let response = self
            .send("POST runners/verify", || {
                self.http
                    .post(format!("{}/runners/verify", self.api))
                    .header("RUNNER-TOKEN", token)
                    .json(&body)
            })
            .await?;
        match response.status() {
            // GitLab before 15.10 answered an empty body.
            StatusCode::OK | StatusCode::CREATED => {
                let bytes = response.bytes().await.unwrap_or_default();
                Ok(Some(serde_json::from_slice(&bytes).unwrap_or_default()))
            }
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Ok(None),
            _ => Err(status_error("POST runners/verify", response).await),
        }
    }

    /// `DELETE runners`: removes the runner whose token is `token` from GitLab. `false` when
    /// GitLab refuses the token (it no longer knows the runner, or the token expired).
    pub async fn unregister(&self, token: &str) -> Result<bool, GitlabError> {
        let body = json!({"token": token});
        let response = self
            .send("DELETE runners", || {
                self.http
                    .delete(format!("{}/runners", self.api))
                    .header("RUNNER-TOKEN", token)
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Ok(false),
            _ => Err(status_error("DELETE runners", response).await),
        }
    }

    /// `POST runners/reset_authentication_token`: a new token for the runner whose current
    /// token is `token` (which stops working). `None` when GitLab refuses `token`.
    pub async fn reset_token(&self, token: &str) -> Result<Option<ResetToken>, GitlabError> {
        let body = json!({"token": token});
        let response = self
            .send("POST runners/reset_authentication_token", || {
                self.http
                    .post(format!("{}/runners/reset_authentication_token", self.api))
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                json_body(response, "POST runners/reset_authentication_token")
                    .await
                    .map(Some)
            }
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Ok(None),
            _ => Err(status_error("POST runners/reset_authentication_token", response).await),
        }
    }

    /// `POST jobs/request`.
    pub async fn request_job(
        &self,
        token: &str,
        last_update: Option<&str>,
    ) -> Result<JobRequest, GitlabError> {
        let mut body = json!({"token": token, "info": self.info(), "system_id": self.system_id});
        if let Some(last_update) = last_update {
            body["last_update"] = json!(last_update);
        }
        let response = self
            .send("POST jobs/request", || {
                self.http
                    .post(format!("{}/jobs/request", self.api))
                    .header("RUNNER-TOKEN", token)
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => {
                let json_content = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json"));
                if !json_content {
                    return Err(GitlabError::Payload {
                        what: "POST jobs/request",
                        reason: "201 without Content-Type: application/json".into(),
                    });
                }
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| transport(&self.api, e))?;
                match Job::from_json(&bytes) {
                    Ok(job) => Ok(JobRequest::Job(Box::new(job), bytes.to_vec())),
                    Err(reason) => match Job::identify(&bytes) {
                        Some((id, token)) => Ok(JobRequest::Unreadable { id, token, reason }),
                        None => Err(GitlabError::Payload {
                            what: "POST jobs/request",
                            reason,
                        }),
                    },
                }
            }
            StatusCode::NO_CONTENT => Ok(JobRequest::NoJob {
                last_update: header(response.headers(), "X-GitLab-Last-Update"),
            }),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Ok(JobRequest::Forbidden),
            StatusCode::CONFLICT => Ok(JobRequest::Conflict),
            _ => Err(status_error("POST jobs/request", response).await),
        }
    }

    /// `PATCH jobs/:id/trace` with `bytes` starting at `offset`.
    pub async fn patch_trace(
        &self,
        job_id: u64,
        job_token: &str,
        offset: usize,
        bytes: &[u8],
    ) -> Result<PatchOutcome, GitlabError> {
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.patch_trace_bytes(job_id, job_token, offset, body)
            .await
    }

    /// [`GitlabClient::patch_trace`] of a buffer that the request (and its retries) share
    /// without copying it.
    pub async fn patch_trace_bytes(
        &self,
        job_id: u64,
        job_token: &str,
        offset: usize,
        body: bytes::Bytes,
    ) -> Result<PatchOutcome, GitlabError> {
        let end = offset + body.len().saturating_sub(1);
        let response = self
            .send("PATCH jobs/:id/trace", || {
                self.http
                    .patch(format!("{}/jobs/{job_id}/trace", self.api))
                    .header("JOB-TOKEN", job_token)
                    .header("Content-Range", format!("{offset}-{end}"))
                    .header("Content-Type", "text/plain")
                    .body(body.clone())
            })
            .await?;
        let status = response.status();
        let job_status = header(response.headers(), "Job-Status");
        if matches!(job_status.as_deref(), Some("canceled" | "failed"))
            || status == StatusCode::FORBIDDEN
        {
            return Ok(PatchOutcome::Abort);
        }
        match status {
            StatusCode::ACCEPTED => Ok(PatchOutcome::Accepted {
                interval: update_interval(response.headers()),
                cancel_requested: job_status.as_deref() == Some("canceling"),
            }),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(PatchOutcome::RangeMismatch {
                remote_size: header(response.headers(), "Range")
                    .and_then(|r| r.split_once('-').and_then(|(_, e)| e.trim().parse().ok()))
                    .unwrap_or(0),
            }),
            StatusCode::NOT_FOUND => Ok(PatchOutcome::NotFound),
            _ => Err(status_error("PATCH jobs/:id/trace", response).await),
        }
    }

    /// `PUT jobs/:id`.
    pub async fn update_job(
        &self,
        job_id: u64,
        job_token: &str,
        update: &JobUpdate,
    ) -> Result<UpdateOutcome, GitlabError> {
        let mut body = json!({
            "token": job_token,
            "state": update.state,
            "info": self.info(),
            "output": {},
        });
        if let Some(reason) = &update.failure_reason {
            body["failure_reason"] = json!(reason);
        }
        if let Some(code) = update.exit_code.filter(|c| *c != 0) {
            body["exit_code"] = json!(code);
        }
        if let Some(checksum) = &update.checksum {
            body["checksum"] = json!(checksum);
            body["output"]["checksum"] = json!(checksum);
        }
        if let Some(size) = update.bytesize {
            body["output"]["bytesize"] = json!(size);
        }
        let response = self
            .send("PUT jobs/:id", || {
                self.http
                    .put(format!("{}/jobs/{job_id}", self.api))
                    .header("JOB-TOKEN", job_token)
                    .json(&body)
            })
            .await?;
        let status = response.status();
        let job_status = header(response.headers(), "Job-Status");
        // GitLab answers a final `failed` with `Job-Status: failed`: that is our own update
        // accepted, not GitLab ending the job.
        let ended_by_gitlab = matches!(job_status.as_deref(), Some("canceled" | "failed"))
            && job_status.as_deref() != Some(update.state);
        if ended_by_gitlab || matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            return Ok(UpdateOutcome::Abort);
        }
        match status {
            StatusCode::OK => Ok(UpdateOutcome::Accepted {
                cancel_requested: job_status.as_deref() == Some("canceling"),
            }),
            StatusCode::ACCEPTED => Ok(UpdateOutcome::TryAgain {
                interval: update_interval(response.headers()).unwrap_or(Duration::from_secs(3)),
            }),
            StatusCode::PRECONDITION_FAILED => Ok(UpdateOutcome::TraceMismatch),
            _ => Err(status_error("PUT jobs/:id", response).await),
        }
    }

    /// `POST jobs/:id/artifacts`: uploads `archive` (a zip) as the job's artifacts.
    pub async fn upload_artifacts(
        &self,
        job_id: u64,
        job_token: &str,
        file_name: &str,
        archive: Vec<u8>,
        expire_in: Option<&str>,
    ) -> Result<(), GitlabError> {
        let mut url = format!(
            "{}/jobs/{job_id}/artifacts?artifact_format=zip&artifact_type=archive",
            self.api
        );
        if let Some(expire_in) = expire_in.filter(|e| !e.is_empty()) {
            url.push_str("&expire_in=");
            url.push_str(&url_encode(expire_in));
        }
        let response = self
            .send("POST jobs/:id/artifacts", || {
                let part = reqwest::multipart::Part::bytes(archive.clone())
                    .file_name(file_name.to_string());
                self.http
                    .post(&url)
                    .header("JOB-TOKEN", job_token)
                    .multipart(reqwest::multipart::Form::new().part("file", part))
            })
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => Ok(()),
            _ => Err(status_error("POST jobs/:id/artifacts", response).await),
        }
    }

    /// `GET jobs/:id/artifacts` with the dependency's token.
    pub async fn download_artifacts(
        &self,
        job_id: u64,
        dependency_token: &str,
    ) -> Result<Vec<u8>, GitlabError> {
        let response = self
            .send("GET jobs/:id/artifacts", || {
                self.http
                    .get(format!("{}/jobs/{job_id}/artifacts", self.api))
                    .header("JOB-TOKEN", dependency_token)
            })
            .await?;
        match response.status() {
            StatusCode::OK => Ok(response
                .bytes()
                .await
                .map_err(|e| transport(&self.api, e))?
                .to_vec()),
            _ => Err(status_error("GET jobs/:id/artifacts", response).await),
        }
    }

    /// Sends the request built by `build`, retrying transient failures like gitlab-runner.
    async fn send(
        &self,
        what: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GitlabError> {
        let mut pause = self.retry_base;
        let mut attempt = 1;
        loop {
            let result = build().send().await;
            let last = attempt >= ATTEMPTS;
            match result {
                Ok(response) if !last && is_transient(response.status()) => {
                    let wait = retry_after(response.headers()).unwrap_or(pause);
                    tracing::debug!(what, status = %response.status(), ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Ok(response) => return Ok(response),
                Err(error) if !last && (error.is_connect() || error.is_timeout()) => {
                    tracing::debug!(what, %error, ?pause, "retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(error) => return Err(transport(&self.api, error)),
            }
            pause = (pause * 2).min(Duration::from_secs(60));
            attempt += 1;
        }
    }
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504) || status.as_u16() >= 512
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header(headers, "Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)))
}

fn update_interval(headers: &HeaderMap) -> Option<Duration> {
    header(headers, "X-GitLab-Trace-Update-Interval")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.min(15 * 60)))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

fn transport(url: &str, source: reqwest::Error) -> GitlabError {
    GitlabError::Transport {
        url: url.to_string(),
        cause: crate::error_chain(&source),
    }
}

async fn status_error(what: &'static str, response: reqwest::Response) -> GitlabError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    GitlabError::Status {
        what,
        status,
        body: body.chars().take(300).collect(),
    }
}

async fn json_body<T: for<'de> Deserialize<'de>>(
    response: reqwest::Response,
    what: &'static str,
) -> Result<T, GitlabError> {
    let bytes = response.bytes().await.map_err(|e| GitlabError::Payload {
        what,
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| GitlabError::Payload {
        what,
        reason: e.to_string(),
    })
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
