//! The mock's state: runners, projects, pipelines and jobs, and how jobs move between states.

use crate::api::{
    DEFAULT_USER_ID, DEFAULT_USER_LOGIN, FaultEndpoint, FaultSpec, IdTokenFault, JobCall, JobView,
    PipelineJob, PipelineView, Settings, Variable as ApiVariable,
};
use crate::ci_yaml::{CiConfig, JobSpec, When};
use rand::Rng;
use rand::distr::Alphanumeric;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// A job's status, with GitLab's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for earlier jobs.
    Created,
    /// Ready for a runner (or handed out and not yet acknowledged).
    Pending,
    /// A runner works on it.
    Running,
    /// Finished successfully.
    Success,
    /// Finished with a failure.
    Failed,
    /// Graceful cancel requested; the runner still runs `after_script`.
    Canceling,
    /// Canceled.
    Canceled,
    /// Not run because of earlier results.
    Skipped,
    /// Waits for a person.
    Manual,
}

impl JobStatus {
    /// GitLab's lower-case name, as sent in `Job-Status`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Created => "created",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Canceling => "canceling",
            JobStatus::Canceled => "canceled",
            JobStatus::Skipped => "skipped",
            JobStatus::Manual => "manual",
        }
    }

    /// Whether the job will not change any more by itself.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Skipped
        )
    }

    /// Whether a runner may still send trace and updates (GitLab's `processing_on_runner?`).
    pub fn is_processing(self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Canceling)
    }
}

/// GitLab's `Ci::Build.failure_reasons` keys, sent in every job payload.
pub const FAILURE_REASONS: [&str; 28] = [
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "missing_dependency_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
    "forward_deployment_failure",
    "user_blocked",
    "project_deleted",
    "ci_quota_exceeded",
    "pipeline_loop_detected",
    "no_matching_runner",
    "trace_size_exceeded",
    "builds_disabled",
    "insufficient_bridge_permissions",
    "downstream_bridge_project_not_found",
    "invalid_bridge_trigger",
    "bridge_pipeline_is_child_pipeline",
    "downstream_pipeline_creation_failed",
    "secrets_provider_not_found",
    "reached_max_descendant_pipelines_depth",
];

/// A registered runner.
#[derive(Debug, Clone)]
pub struct Runner {
    pub id: u64,
    pub token: String,
    pub description: String,
    pub tags: Vec<String>,
    pub run_untagged: bool,
    pub paused: bool,
    pub maximum_timeout: Option<u64>,
    pub system_ids: Vec<String>,
    /// When the current token stops working (`runner_token_expiration_interval`).
    pub token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last authenticated `jobs/request` or `runners/verify`.
    pub contacted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was registered.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// GitLab counts a runner online while its last contact is younger than this.
const ONLINE_CONTACT_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::hours(2);

/// A time as GitLab's API prints it: RFC 3339 in UTC with milliseconds.
pub fn api_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Runner {
    /// Whether its token has passed its expiry at `now`.
    pub fn token_expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.token_expires_at.is_some_and(|at| at <= now)
    }

    /// Gives it a new token, expiring after `lifetime` seconds when set.
    pub fn renew_token(&mut self, lifetime: Option<u64>) {
        self.token = new_token("glrt-");
        self.token_expires_at = token_expiry(lifetime);
    }

    /// Its entry of `GET /admin/api/runners`.
    pub fn view(&self, now: chrono::DateTime<chrono::Utc>) -> crate::api::RunnerView {
        let status = match self.contacted_at {
            None => "never_contacted",
            Some(at) if now - at < ONLINE_CONTACT_TIMEOUT => "online",
            Some(_) => "offline",
        };
        crate::api::RunnerView {
            id: self.id,
            description: self.description.clone(),
            tag_list: self.tags.clone(),
            run_untagged: self.run_untagged,
            paused: self.paused,
            active: !self.paused,
            maximum_timeout: self.maximum_timeout,
            token_expires_at: self.token_expires_at.map(api_time),
            contacted_at: self.contacted_at.map(api_time),
            created_at: api_time(self.created_at),
            status: status.to_string(),
            system_ids: self.system_ids.clone(),
        }
    }
}

fn token_expiry(lifetime: Option<u64>) -> Option<chrono::DateTime<chrono::Utc>> {
    let seconds = i64::try_from(lifetime?).ok()?;
    chrono::Utc::now().checked_add_signed(chrono::TimeDelta::try_seconds(seconds)?)
}

/// A project with an optional local git repository.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub name: String,
    /// `group/<name>`: the path of the project URL and of the served repository.
    pub full_path: String,
    pub repo: Option<PathBuf>,
}

/// A GitLab user, as far as jobs see one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub login: String,
    /// `<login>@example.com`; `admin@example.com` for `root`, as on a new GitLab.
    pub email: String,
}

impl User {
    /// The user `login` with id `id`.
    pub fn new(id: u64, login: &str) -> User {
        let email = if login == DEFAULT_USER_LOGIN {
            "admin@example.com".to_string()
        } else {
            format!("{login}@example.com")
        };
        User {
            id,
            login: login.to_string(),
            email,
        }
    }
}

/// A pipeline: a set of jobs from one `.gitlab-ci.yml`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: u64,
    pub project_id: u64,
    /// Who started it.
    pub user: User,
    pub git_ref: String,
    pub sha: String,
    pub before_sha: String,
    pub config: CiConfig,
    pub variables: Vec<ApiVariable>,
    pub job_ids: Vec<u64>,
}

/// A job's stored log: the received chunks as they arrived, so appending never copies.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    chunks: Vec<bytes::Bytes>,
    len: usize,
}

impl Trace {
    /// Stored size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends a chunk.
    pub fn push(&mut self, chunk: bytes::Bytes) {
        self.len += chunk.len();
        if !chunk.is_empty() {
            self.chunks.push(chunk);
        }
    }

    /// Drops everything (GitLab's trace reset after a checksum mismatch).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// The log as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }

    /// `crc32:%08x` (CRC-32/IEEE) of the log, as gitlab-runner reports it.
    pub fn checksum(&self) -> String {
        let mut hasher = crc32fast::Hasher::new();
        for chunk in &self.chunks {
            hasher.update(chunk);
        }
        format!("crc32:{:08x}", hasher.finalize())
    }
}

/// An uploaded artifacts archive.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub filename: String,
    pub data: bytes::Bytes,
}

/// One job of a pipeline.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub pipeline_id: u64,
    pub project_id: u64,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub token: String,
    pub runner_id: Option<u64>,
    pub queued_at: Option<Instant>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub failure_reason: Option<String>,
    pub trace: Trace,
    pub artifact: Option<Artifact>,
    /// How many more final updates get 202 before one is accepted.
    pub update_accepts_left: u32,
    /// Runner calls about this job, in arrival order.
    pub calls: Vec<JobCall>,
}

impl Job {
    /// The admin view of the job.
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id,
            pipeline_id: self.pipeline_id,
            name: self.spec.name.clone(),
            stage: self.spec.stage.clone(),
            status: self.status,
            exit_code: self.exit_code,
            failure_reason: self.failure_reason.clone(),
            runner_id: self.runner_id,
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            trace_bytes: self.trace.len() as u64,
        }
    }
}

/// A fault being injected, with how often it may still fire.
#[derive(Debug, Clone)]
pub struct ActiveFault {
    pub id: u64,
    pub spec: FaultSpec,
    pub remaining: Option<u64>,
}

/// Everything the mock knows.
#[derive(Debug)]
pub struct Store {
    pub settings: Settings,
    pub runners: BTreeMap<u64, Runner>,
    pub projects: BTreeMap<u64, Project>,
    pub pipelines: BTreeMap<u64, Pipeline>,
    pub jobs: BTreeMap<u64, Job>,
    pub faults: Vec<ActiveFault>,
    /// Users that started pipelines: login to id (`root` is 1 from the start).
    pub users: BTreeMap<String, u64>,
    /// Ticks whenever a job becomes pending; echoed as `X-GitLab-Last-Update`.
    pub queue_version: u64,
    next_id: u64,
}

/// Current time as RFC 3339 with milliseconds, as GitLab's API prints times.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A random token with GitLab's prefix convention.
pub fn new_token(prefix: &str) -> String {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("{prefix}{random}")
}

impl Store {
    /// An empty store.
    pub fn new(settings: Settings) -> Self {
        Store {
            settings,
            runners: BTreeMap::new(),
            projects: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            jobs: BTreeMap::new(),
            faults: Vec::new(),
            users: BTreeMap::from([(DEFAULT_USER_LOGIN.to_string(), DEFAULT_USER_ID)]),
            queue_version: 1,
            next_id: 1,
        }
    }

    /// The next id; one sequence for everything keeps ids unique across kinds, which makes
    /// mix-ups (a pipeline id used as a job id) show up as 404 instead of a wrong object.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The user a pipeline creation names: `root` without a login; a login seen before keeps
    /// its id; a new login gets `id` or the next free id. `Err` says which field is wrong.
    pub fn user(&mut self, login: Option<&str>, id: Option<u64>) -> Result<User, String> {
        let Some(login) = login else {
            return match id {
                None => Ok(User::new(DEFAULT_USER_ID, DEFAULT_USER_LOGIN)),
                Some(_) => Err("user_id: give user_login with it".into()),
            };
        };
        if login.is_empty()
            || !login
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err("user_login: use letters, digits, '-', '_' and '.' only".into());
        }
        if let Some(&known) = self.users.get(login) {
            return match id {
                Some(id) if id != known => {
                    Err(format!("user_id: user {login} is user {known}, not {id}"))
                }
                _ => Ok(User::new(known, login)),
            };
        }
        let id = match id {
            Some(0) => return Err("user_id: ids start at 1".into()),
            Some(id) => {
                if let Some((other, _)) = self.users.iter().find(|(_, v)| **v == id) {
                    return Err(format!("user_id: {id} is already user {other}"));
                }
                id
            }
            None => self.users.values().max().map_or(1, |max| max + 1),
        };
        self.users.insert(login.to_string(), id);
        Ok(User::new(id, login))
    }

    /// Takes one hit of the first `id_token` fault that has hits left (and wins its `rate`
    /// draw): what is wrong with the next ID token issued.
    pub fn take_id_token_fault(&mut self) -> Option<IdTokenFault> {
        for fault in self.faults.iter_mut() {
            if fault.spec.endpoint != FaultEndpoint::IdToken || fault.remaining == Some(0) {
                continue;
            }
            if fault.spec.rate < 1.0 && rand::rng().random::<f64>() >= fault.spec.rate {
                continue;
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            return fault.spec.mode;
        }
        None
    }

    /// Registers a runner and returns it.
    pub fn add_runner(
        &mut self,
        description: String,
        tags: Vec<String>,
        run_untagged: bool,
        maximum_timeout: Option<u64>,
    ) -> Runner {
        let id = self.next_id();
        let runner = Runner {
            id,
            token: new_token("glrt-"),
            description,
            run_untagged: run_untagged || tags.is_empty(),
            tags,
            paused: false,
            maximum_timeout,
            system_ids: Vec::new(),
            token_expires_at: token_expiry(self.settings.runner_token_expiration_interval),
            contacted_at: None,
            created_at: chrono::Utc::now(),
        };
        self.runners.insert(id, runner.clone());
        runner
    }

    /// Finds a runner by its authentication token; an expired token finds none, as on GitLab.
    pub fn runner_by_token(&self, token: &str) -> Option<&Runner> {
        let now = chrono::Utc::now();
        self.runners
            .values()
            .find(|r| r.token == token && !r.token_expired(now))
    }

    /// The runner with `token` (not expired), to change it.
    pub fn runner_by_token_mut(&mut self, token: &str) -> Option<&mut Runner> {
        let now = chrono::Utc::now();
        self.runners
            .values_mut()
            .find(|r| r.token == token && !r.token_expired(now))
    }

    /// The runner with `token` after an authenticated call that counts as contact (GitLab's
    /// heartbeat: `jobs/request`, `runners/verify`).
    pub fn runner_contacted(&mut self, token: &str) -> Option<&mut Runner> {
        let runner = self.runner_by_token_mut(token)?;
        runner.contacted_at = Some(chrono::Utc::now());
        Some(runner)
    }

    /// Creates a pipeline's jobs and makes the first ones pending.
    pub fn add_pipeline(
        &mut self,
        project_id: u64,
        user: User,
        git_ref: String,
        sha: String,
        config: CiConfig,
        variables: Vec<ApiVariable>,
    ) -> u64 {
        let pipeline_id = self.next_id();
        let mut job_ids = Vec::new();
        for spec in &config.jobs {
            let id = self.next_id();
            job_ids.push(id);
            self.jobs.insert(
                id,
                Job {
                    id,
                    pipeline_id,
                    project_id,
                    spec: spec.clone(),
                    status: JobStatus::Created,
                    token: new_token("glcbt-"),
                    runner_id: None,
                    queued_at: None,
                    started_at: None,
                    finished_at: None,
                    exit_code: None,
                    failure_reason: None,
                    trace: Trace::default(),
                    artifact: None,
                    update_accepts_left: self.settings.update_accepts,
                    calls: Vec::new(),
                },
            );
        }
        self.pipelines.insert(
            pipeline_id,
            Pipeline {
                id: pipeline_id,
                project_id,
                user,
                git_ref,
                sha,
                before_sha: "0000000000000000000000000000000000000000".into(),
                config,
                variables,
                job_ids,
            },
        );
        self.advance(pipeline_id);
        pipeline_id
    }

    /// Moves created jobs on once the jobs they wait for are done, as GitLab's pipeline
    /// processing does: stage order, or `needs:` when given.
    pub fn advance(&mut self, pipeline_id: u64) {
        let Some(pipeline) = self.pipelines.get(&pipeline_id) else {
            return;
        };
        let job_ids = pipeline.job_ids.clone();
        loop {
            let mut changed = false;
            for &id in &job_ids {
                let Some(job) = self.jobs.get(&id) else {
                    continue;
                };
                if job.status != JobStatus::Created {
                    continue;
                }
                let Some(ok) = self.predecessors_outcome(&job_ids, job) else {
                    continue;
                };
                let next = match (job.spec.when, ok) {
                    (When::OnSuccess, true) | (When::OnFailure, false) | (When::Always, _) => {
                        JobStatus::Pending
                    }
                    (When::Manual, true) => JobStatus::Manual,
                    _ => JobStatus::Skipped,
                };
                self.set_status(id, next);
                changed = true;
            }
            if !changed {
                break;
            }
        }
    }

    /// `None` while a predecessor is unfinished; otherwise whether they all went well.
    fn predecessors_outcome(&self, job_ids: &[u64], job: &Job) -> Option<bool> {
        let mut ok = true;
        match &job.spec.needs {
            Some(needs) => {
                for need in needs {
                    for pred in job_ids
                        .iter()
                        .filter_map(|id| self.jobs.get(id))
                        .filter(|j| j.spec.name == need.job)
                    {
                        match pred.status {
                            JobStatus::Success | JobStatus::Manual => {}
                            JobStatus::Failed if pred.spec.allow_failure => {}
                            JobStatus::Failed | JobStatus::Canceled | JobStatus::Skipped => {
                                ok = false
                            }
                            _ => return None,
                        }
                    }
                }
            }
            None => {
                for pred in job_ids
                    .iter()
                    .filter_map(|id| self.jobs.get(id))
                    .filter(|p| p.spec.stage_index < job.spec.stage_index)
                {
                    match pred.status {
                        JobStatus::Success | JobStatus::Skipped | JobStatus::Manual => {}
                        JobStatus::Failed if pred.spec.allow_failure => {}
                        JobStatus::Failed | JobStatus::Canceled => ok = false,
                        _ => return None,
                    }
                }
            }
        }
        Some(ok)
    }

    /// Records a runner call about job `id` (ignored for unknown jobs).
    pub fn record(&mut self, id: u64, call: JobCall) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.calls.push(call);
        }
    }

    /// Sets a job's status and keeps the queue version and timestamps right.
    pub fn set_status(&mut self, id: u64, status: JobStatus) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.status = status;
        match status {
            JobStatus::Pending => {
                job.queued_at = Some(Instant::now());
                self.queue_version += 1;
            }
            JobStatus::Running if job.started_at.is_none() => {
                job.started_at = Some(now_rfc3339());
            }
            s if s.is_finished() && job.finished_at.is_none() => {
                job.finished_at = Some(now_rfc3339());
            }
            _ => {}
        }
    }

    /// Finishes a job and lets its pipeline move on.
    pub fn finish(&mut self, id: u64, status: JobStatus) {
        self.set_status(id, status);
        if let Some(pipeline_id) = self.jobs.get(&id).map(|j| j.pipeline_id) {
            self.advance(pipeline_id);
        }
    }

    /// The pipeline's overall status, as GitLab composes it from its jobs.
    pub fn pipeline_status(&self, pipeline: &Pipeline) -> &'static str {
        let jobs: Vec<&Job> = pipeline
            .job_ids
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .collect();
        let any = |f: &dyn Fn(&Job) -> bool| jobs.iter().any(|j| f(j));
        if any(&|j| j.status.is_processing()) {
            return "running";
        }
        if any(&|j| matches!(j.status, JobStatus::Pending | JobStatus::Created)) {
            if any(&|j| j.status.is_finished() && j.status != JobStatus::Skipped) {
                return "running";
            }
            return "pending";
        }
        if any(&|j| j.status == JobStatus::Failed && !j.spec.allow_failure) {
            return "failed";
        }
        if any(&|j| j.status == JobStatus::Canceled) {
            return "canceled";
        }
        if jobs.iter().all(|j| j.status == JobStatus::Skipped) {
            return "skipped";
        }
        if any(&|j| j.status == JobStatus::Manual && !j.spec.allow_failure) {
            return "manual";
        }
        "success"
    }

    /// The admin view of a pipeline.
    pub fn pipeline_view(&self, pipeline: &Pipeline) -> PipelineView {
        PipelineView {
            id: pipeline.id,
            project_id: pipeline.project_id,
            git_ref: pipeline.git_ref.clone(),
            sha: pipeline.sha.clone(),
            user_login: pipeline.user.login.clone(),
            user_id: pipeline.user.id,
            status: self.pipeline_status(pipeline).to_string(),
            jobs: pipeline
                .job_ids
                .iter()
                .filter_map(|id| self.jobs.get(id))
                .map(|j| PipelineJob {
                    id: j.id,
                    name: j.spec.name.clone(),
                    stage: j.spec.stage.clone(),
                    status: j.status,
                })
                .collect(),
        }
    }

    /// The jobs whose artifacts `job` downloads: its `dependencies:`, else its `needs:` with
    /// artifacts, else every job of earlier stages.
    pub fn artifact_dependencies(&self, job: &Job) -> Vec<&Job> {
        let Some(pipeline) = self.pipelines.get(&job.pipeline_id) else {
            return Vec::new();
        };
        let jobs = pipeline.job_ids.iter().filter_map(|id| self.jobs.get(id));
        match (&job.spec.dependencies, &job.spec.needs) {
            (Some(deps), _) => jobs.filter(|j| deps.contains(&j.spec.name)).collect(),
            (None, Some(needs)) => jobs
                .filter(|j| needs.iter().any(|n| n.artifacts && n.job == j.spec.name))
                .collect(),
            (None, None) => jobs
                .filter(|j| j.spec.stage_index < job.spec.stage_index)
                .collect(),
        }
    }
}
