//! Request and reply bodies of the admin API (`/admin/api/...`), shared by the server and
//! [`AdminClient`](crate::AdminClient).

use crate::model::JobStatus;
use serde::{Deserialize, Serialize};

/// `POST /admin/api/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    /// Project name; the project's path becomes `group/<name>`.
    pub name: String,
    /// Local git repository served to jobs (a working tree or a bare repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One entry of `GET /admin/api/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    /// Project id.
    pub id: u64,
    /// Project name.
    pub name: String,
    /// `group/<name>`: where its repository is served (`<url>/group/<name>.git`).
    pub path_with_namespace: String,
    /// Local repository served to jobs.
    pub path: Option<String>,
}

/// Reply carrying the id of what was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// New object's id.
    pub id: u64,
}

/// `POST /admin/api/runners`: registers a runner without a registration token.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewRunner {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags the runner offers.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether it also takes untagged jobs (always true without tags).
    #[serde(default)]
    pub run_untagged: bool,
    /// Caps every job's timeout (`runner_info.timeout`) at this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_timeout: Option<u64>,
}

/// One entry of `GET /admin/api/runners`: a registered runner as GitLab's runner details show
/// it. Times are RFC 3339 in UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerView {
    /// Runner id.
    pub id: u64,
    /// Its description: the name it registered with.
    pub description: String,
    /// Tags it offers.
    pub tag_list: Vec<String>,
    /// Whether it also takes untagged jobs.
    pub run_untagged: bool,
    /// Whether it is paused (gets no jobs).
    pub paused: bool,
    /// `!paused`, GitLab's older name for it.
    pub active: bool,
    /// Caps every job's timeout at this many seconds.
    pub maximum_timeout: Option<u64>,
    /// When its current token stops working; `None` when it never does.
    pub token_expires_at: Option<String>,
    /// Its last authenticated `jobs/request` or `runners/verify`; `None` before the first.
    pub contacted_at: Option<String>,
    /// When it was registered.
    pub created_at: String,
    /// `online` (contacted in the last 2 hours), `offline` or `never_contacted`, as GitLab
    /// tells them apart.
    pub status: String,
    /// The `system_id`s of the runner managers that verified with its token.
    pub system_ids: Vec<String>,
}

/// A registered runner's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerCredentials {
    /// Runner id.
    pub id: u64,
    /// Runner authentication token (`glrt-...`).
    pub token: String,
}

/// A pipeline variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Name.
    pub key: String,
    /// Value.
    pub value: String,
    /// Whether runners must mask it in job logs.
    #[serde(default)]
    pub masked: bool,
}

/// `POST /admin/api/pipelines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPipeline {
    /// Project the pipeline runs for.
    pub project_id: u64,
    /// The `.gitlab-ci.yml` text.
    pub ci_yaml: String,
    /// Pipeline variables (highest precedence).
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// Branch the pipeline runs on (default `main`).
    #[serde(rename = "ref", default = "default_ref")]
    pub git_ref: String,
    /// Login of the user who started the pipeline: the jobs' `GITLAB_USER_LOGIN` and the
    /// `user_login` claim of their ID tokens. Default [`DEFAULT_USER_LOGIN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_login: Option<String>,
    /// That user's id (only with `user_login`). Default: the id the mock gave that login
    /// before, or the next free one (`root` is 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u64>,
}

impl Default for NewPipeline {
    /// A pipeline on `main` of project 0 (set `project_id` and `ci_yaml`), started by `root`.
    fn default() -> Self {
        NewPipeline {
            project_id: 0,
            ci_yaml: String::new(),
            variables: Vec::new(),
            git_ref: default_ref(),
            user_login: None,
            user_id: None,
        }
    }
}

/// Who starts a pipeline that names no user: GitLab's first administrator.
pub const DEFAULT_USER_LOGIN: &str = "root";
/// The id of [`DEFAULT_USER_LOGIN`], as on a new GitLab instance.
pub const DEFAULT_USER_ID: u64 = 1;

fn default_ref() -> String {
    "main".into()
}

/// One job in a pipeline listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineJob {
    /// Job id.
    pub id: u64,
    /// Job name.
    pub name: String,
    /// Stage name.
    pub stage: String,
    /// Current status.
    pub status: JobStatus,
}

/// Reply of `POST /admin/api/pipelines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCreated {
    /// Pipeline id.
    pub id: u64,
    /// Its jobs in file order.
    pub jobs: Vec<PipelineJob>,
}

/// `GET /admin/api/pipelines/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineView {
    /// Pipeline id.
    pub id: u64,
    /// Project id.
    pub project_id: u64,
    /// Branch.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Commit.
    pub sha: String,
    /// Login of the user who started the pipeline.
    pub user_login: String,
    /// That user's id.
    pub user_id: u64,
    /// Composite status (`pending`, `running`, `success`, `failed`, `canceled`, ...).
    pub status: String,
    /// Jobs in file order.
    pub jobs: Vec<PipelineJob>,
}

/// `GET /admin/api/jobs/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// Job id.
    pub id: u64,
    /// Pipeline id.
    pub pipeline_id: u64,
    /// Job name.
    pub name: String,
    /// Stage name.
    pub stage: String,
    /// Current status.
    pub status: JobStatus,
    /// Exit code of the final update (absent in the update means 0).
    pub exit_code: Option<i64>,
    /// Failure reason of a failed job.
    pub failure_reason: Option<String>,
    /// Runner that took the job.
    pub runner_id: Option<u64>,
    /// When the runner acknowledged the job (RFC 3339).
    pub started_at: Option<String>,
    /// When the job finished (RFC 3339).
    pub finished_at: Option<String>,
    /// Size of the stored trace.
    pub trace_bytes: u64,
}

/// One runner call about a job, as the mock received and answered it
/// (`GET /admin/api/jobs/:id/calls`), so tests can assert what a runner sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum JobCall {
    /// The job was handed out by `POST jobs/request`.
    Request {
        /// Runner that took it.
        runner_id: u64,
        /// Whether the runner asked for two-phase start.
        two_phase: bool,
    },
    /// `PATCH jobs/:id/trace`.
    Patch {
        /// `Content-Range` as sent.
        content_range: Option<String>,
        /// Body length (0 when refused before reading it).
        bytes: u64,
        /// Reply status.
        reply: u16,
    },
    /// `PUT jobs/:id`.
    Update {
        /// `state` as sent.
        state: Option<String>,
        /// `failure_reason` as sent (before GitLab's mapping).
        failure_reason: Option<String>,
        /// `exit_code` as sent.
        exit_code: Option<i64>,
        /// `output.checksum` (or legacy `checksum`) as sent.
        checksum: Option<String>,
        /// `output.bytesize` as sent.
        bytesize: Option<u64>,
        /// Reply status.
        reply: u16,
    },
    /// A git request (clone or fetch) authenticated with the job's token.
    Git {
        /// What was asked: `info/refs` or `git-upload-pack` (`git-receive-pack` is refused).
        service: String,
    },
}

/// Which runner endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultEndpoint {
    /// `POST /api/v4/jobs/request`.
    #[serde(rename = "request")]
    Request,
    /// `PATCH /api/v4/jobs/:id/trace`.
    #[serde(rename = "trace")]
    Trace,
    /// `PUT /api/v4/jobs/:id`.
    #[serde(rename = "update")]
    Update,
    /// `POST|GET /api/v4/jobs/:id/artifacts`.
    #[serde(rename = "artifacts")]
    Artifacts,
    /// Every `/api/v4` endpoint.
    #[serde(rename = "*")]
    All,
    /// The ID tokens of jobs with `id_tokens:`, as they are issued at hand-out; the fault's
    /// [`mode`](FaultSpec::mode) says what is wrong with them. `*` does not include it.
    #[serde(rename = "id_token")]
    IdToken,
}

/// What an `id_token` fault does to a job's ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenFault {
    /// Signed with a key that is not published, under the published key's `kid`.
    WrongKey,
    /// Expired an hour ago (`exp` one hour before the hand-out).
    Expired,
    /// For the audience [`WRONG_AUDIENCE`] instead of the one the job asked for.
    WrongAudience,
    /// Not delivered: the job's variables lack it.
    Missing,
}

/// The `aud` of a token hit by [`IdTokenFault::WrongAudience`].
pub const WRONG_AUDIENCE: &str = "https://wrong-audience.example";

/// `POST /admin/api/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Endpoint the fault applies to.
    pub endpoint: FaultEndpoint,
    /// Status to answer instead of the real reply; `None` with only a delay passes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Probability (0..=1) that a matching request is hit.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Delay before answering (or passing through).
    #[serde(default)]
    pub delay_ms: u64,
    /// Close the connection without any reply.
    #[serde(default)]
    pub drop_connection: bool,
    /// How many requests are hit at most; `None` means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Seconds sent in `Retry-After` with the status (gitlab-runner waits that long before
    /// retrying a 429 or 5xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// For endpoint `id_token` (and only there): what is wrong with the tokens it hits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<IdTokenFault>,
}

fn default_rate() -> f64 {
    1.0
}

impl FaultSpec {
    /// A fault answering `status` on `endpoint` every time.
    pub fn status(endpoint: FaultEndpoint, status: u16) -> Self {
        FaultSpec {
            endpoint,
            status: Some(status),
            rate: 1.0,
            delay_ms: 0,
            drop_connection: false,
            count: None,
            retry_after_s: None,
            mode: None,
        }
    }

    /// A fault spoiling every job ID token issued from now on in the way `mode` says.
    pub fn id_token(mode: IdTokenFault) -> Self {
        FaultSpec {
            mode: Some(mode),
            status: None,
            ..FaultSpec::status(FaultEndpoint::IdToken, 500)
        }
    }

    /// A fault closing the connection on `endpoint` every time.
    pub fn drop_connection(endpoint: FaultEndpoint) -> Self {
        FaultSpec {
            drop_connection: true,
            status: None,
            ..FaultSpec::status(endpoint, 500)
        }
    }

    /// Limits the fault to `count` hits.
    pub fn times(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// Sends `Retry-After: <seconds>` with the status.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// Adds a delay.
    pub fn delay_ms(mut self, delay_ms: u64) -> Self {
        self.delay_ms = delay_ms;
        self
    }
}

/// Runtime settings (`GET|PUT /admin/api/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Seconds sent in `X-GitLab-Trace-Update-Interval`.
    pub trace_update_interval: u64,
    /// Trace size limit in bytes (GitLab's `ci_jobs_trace_size_limit`); `None` = no limit.
    pub trace_size_limit: Option<u64>,
    /// How many final `PUT jobs/:id` of each job are answered 202 before one is taken.
    pub update_accepts: u32,
    /// Largest accepted artifacts upload in bytes (413 above).
    pub max_artifact_size: u64,
    /// How long `POST jobs/request` waits for a job before answering 204 (GitLab Workhorse's
    /// long polling); 0 answers at once.
    #[serde(default)]
    pub long_poll_ms: u64,
    /// Lifetime in seconds of the runner tokens issued from now on, at registration and at
    /// `reset_authentication_token` (GitLab's `runner_token_expiration_interval`); a token past
    /// its `token_expires_at` is refused like an unknown one. `None`: tokens never expire.
    #[serde(default)]
    pub runner_token_expiration_interval: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            trace_update_interval: 3,
            trace_size_limit: None,
            update_accepts: 0,
            max_artifact_size: 100 * 1024 * 1024,
            long_poll_ms: 0,
            runner_token_expiration_interval: None,
        }
    }
}

/// Error reply body of every endpoint, as GitLab's API shapes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
}
