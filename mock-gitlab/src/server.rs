//! The server: configuration, start-up, the shared state and the admin API.

use crate::api::{
    Created, ErrorBody, FaultEndpoint, FaultSpec, JobCall, JobView, NewPipeline, NewProject,
    NewRunner, PipelineCreated, PipelineView, ProjectView, RunnerCredentials, RunnerView, Settings,
};
use crate::model::{ActiveFault, JobStatus, Project, Store};
use crate::{ci_yaml, git_http, runner_api};
use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, Listener};
use rand::Rng;
use serde::de::DeserializeOwned;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest JSON body accepted by the runner and admin endpoints.
pub(crate) const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// Largest trace patch accepted (the runner sends at most 1 MiB).
pub(crate) const TRACE_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Largest git request body (pushes are not served; fetch negotiations are small).
pub(crate) const GIT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// How to start a [`MockGitlab`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Registration token for `POST /api/v4/runners`; random when `None`.
    pub registration_token: Option<String>,
    /// Runtime settings (trace interval, limits, 202 answers).
    pub settings: Settings,
    /// The `git` program used to serve repositories (`git http-backend`).
    pub git_program: String,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            registration_token: None,
            settings: Settings::default(),
            git_program: "git".into(),
        }
    }
}

/// Errors of the in-process API.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// The request was refused, with the status the HTTP API would answer.
    #[error("{status}: {message}")]
    Rejected {
        /// HTTP status the admin API answers for the same request.
        status: u16,
        /// Why.
        message: String,
    },
    /// A wait ended before the job finished.
    #[error("job {job} still {status:?} after {waited:?}")]
    Timeout {
        /// Job id.
        job: u64,
        /// Its status when the wait ended.
        status: JobStatus,
        /// How long was waited.
        waited: Duration,
    },
}

/// An error reply: status, GitLab-style `{"message": ...}` body and optional `Job-Status`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub job_status: Option<JobStatus>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            job_status: None,
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("404 {what} Not Found"))
    }

    pub fn forbidden(job_status: Option<JobStatus>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: "403 Forbidden".into(),
            job_status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(ErrorBody {
                message: self.message,
            }),
        )
            .into_response();
        if let Some(status) = self.job_status {
            response.headers_mut().insert(
                HeaderName::from_static("job-status"),
                HeaderValue::from_static(status.as_str()),
            );
        }
        response
    }
}

impl From<ApiError> for MockError {
    fn from(e: ApiError) -> Self {
        MockError::Rejected {
            status: e.status.as_u16(),
            message: e.message,
        }
    }
}

/// Parses a JSON body: syntax errors are 400, wrong or missing fields 422, both naming where.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = match value {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(if inner.is_data() {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("invalid JSON body: field `{path}`: {inner}"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("invalid JSON body: {inner}"),
                )
            });
        }
    };
    deserializer
        .end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// State shared by every request.
pub(crate) struct App {
    store: Mutex<Store>,
    changes: watch::Sender<u64>,
    pub base_url: String,
    pub registration_token: String,
    pub git_program: String,
}

impl App {
    /// Locks the store. A panic elsewhere while holding the lock must not take the whole
    /// mock down, so a poisoned lock is used as is.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that wakes on every job change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes everyone waiting for a job change.
    pub fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn create_project(&self, req: NewProject) -> Result<u64, ApiError> {
        if req.name.is_empty()
            || !req
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name: use letters, digits, '-', '_' and '.' only",
            ));
        }
        let repo = match req.path {
            None => None,
            Some(path) => {
                let path = std::path::PathBuf::from(path);
                if !path.is_dir() {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("path: {} is not a directory", path.display()),
                    ));
                }
                Some(path)
            }
        };
        let mut store = self.store();
        let full_path = format!("group/{}", req.name);
        if store.projects.values().any(|p| p.full_path == full_path) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("name: project {} already exists", req.name),
            ));
        }
        let id = store.next_id();
        store.projects.insert(
            id,
            Project {
                id,
                name: req.name,
                full_path,
                repo,
            },
        );
        Ok(id)
    }

    fn runners(&self) -> Vec<RunnerView> {
        let now = chrono::Utc::now();
        self.store().runners.values().map(|r| r.view(now)).collect()
    }

    fn register_runner(&self, req: NewRunner) -> RunnerCredentials {
        let runner = self.store().add_runner(
            req.description,
            req.tags,
            req.run_untagged,
            req.maximum_timeout,
        );
        RunnerCredentials {
            id: runner.id,
            token: runner.token,
        }
    }

    fn create_pipeline(&self, req: NewPipeline) -> Result<PipelineCreated, ApiError> {
        let config = ci_yaml::parse(&req.ci_yaml).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("ci_yaml: {e}"))
        })?;
        let repo = {
            let store = self.store();
            let project = store
                .projects
                .get(&req.project_id)
                .ok_or_else(|| ApiError::not_found(format!("Project {}", req.project_id)))?;
            project.repo.clone()
        };
        let sha = match repo {
            Some(repo) => {
                git_http::resolve_ref(&self.git_program, &repo, &req.git_ref).map_err(|e| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("ref: {e}"))
                })?
            }
            None => "0".repeat(40),
        };
        let mut store = self.store();
        if !store.projects.contains_key(&req.project_id) {
            return Err(ApiError::not_found(format!("Project {}", req.project_id)));
        }
        let user = store
            .user(req.user_login.as_deref(), req.user_id)
            .map_err(|message| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message))?;
        let id = store.add_pipeline(
            req.project_id,
            user,
            req.git_ref,
            sha,
            config,
            req.variables,
        );
        let view = store
            .pipelines
            .get(&id)
            .map(|p| store.pipeline_view(p))
            .ok_or_else(|| ApiError::not_found(format!("Pipeline {id}")))?;
        drop(store);
        self.notify();
        Ok(PipelineCreated {
            id,
            jobs: view.jobs,
        })
    }

    fn pipeline(&self, id: u64) -> Result<PipelineView, ApiError> {
        let store = self.store();
        store
            .pipelines
            .get(&id)
            .map(|p| store.pipeline_view(p))
            .ok_or_else(|| ApiError::not_found(format!("Pipeline {id}")))
    }

    fn delete_pipeline(&self, id: u64) -> Result<(), ApiError> {
        let mut store = self.store();
        let pipeline = store
            .pipelines
            .remove(&id)
            .ok_or_else(|| ApiError::not_found(format!("Pipeline {id}")))?;
        for job in pipeline.job_ids {
            store.jobs.remove(&job);
        }
        drop(store);
        self.notify();
        Ok(())
    }

    fn job(&self, id: u64) -> Result<JobView, ApiError> {
        self.store()
            .jobs
            .get(&id)
            .map(|j| j.view())
            .ok_or_else(|| ApiError::not_found(format!("Job {id}")))
    }

    fn calls(&self, id: u64) -> Result<Vec<JobCall>, ApiError> {
        self.store()
            .jobs
            .get(&id)
            .map(|j| j.calls.clone())
            .ok_or_else(|| ApiError::not_found(format!("Job {id}")))
    }

    fn trace(&self, id: u64) -> Result<Vec<u8>, ApiError> {
        self.store()
            .jobs
            .get(&id)
            .map(|j| j.trace.to_vec())
            .ok_or_else(|| ApiError::not_found(format!("Job {id}")))
    }

    /// Graceful cancel (like the UI button) or, with `force`, a hard cancel.
    fn cancel(&self, id: u64, force: bool) -> Result<JobView, ApiError> {
        let mut store = self.store();
        let job = store
            .jobs
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("Job {id}")))?;
        let next = match (job.status, force) {
            (s, _) if s.is_finished() => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("job {id} is already {}", s.as_str()),
                ));
            }
            (JobStatus::Running, false) => JobStatus::Canceling,
            (JobStatus::Canceling, false) => JobStatus::Canceling,
            _ => JobStatus::Canceled,
        };
        if next == JobStatus::Canceled {
            store.finish(id, JobStatus::Canceled);
        } else {
            store.set_status(id, next);
        }
        let view = store.jobs.get(&id).map(|j| j.view());
        drop(store);
        self.notify();
        view.ok_or_else(|| ApiError::not_found(format!("Job {id}")))
    }

    fn play(&self, id: u64) -> Result<JobView, ApiError> {
        let mut store = self.store();
        let job = store
            .jobs
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("Job {id}")))?;
        if job.status != JobStatus::Manual {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("job {id} is {}, not manual", job.status.as_str()),
            ));
        }
        store.set_status(id, JobStatus::Pending);
        let view = store.jobs.get(&id).map(|j| j.view());
        drop(store);
        self.notify();
        view.ok_or_else(|| ApiError::not_found(format!("Job {id}")))
    }

    fn add_fault(&self, spec: FaultSpec) -> Result<u64, ApiError> {
        let unprocessable = |message: &str| {
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                message.to_string(),
            ))
        };
        if spec.endpoint == FaultEndpoint::IdToken {
            if spec.mode.is_none() {
                return unprocessable(
                    "mode: endpoint id_token needs one of wrong_key, expired, wrong_audience, missing",
                );
            }
            if spec.status.is_some()
                || spec.delay_ms > 0
                || spec.drop_connection
                || spec.retry_after_s.is_some()
            {
                return unprocessable(
                    "endpoint id_token takes mode, rate and count only (it spoils tokens, not replies)",
                );
            }
        } else if spec.mode.is_some() {
            return unprocessable("mode: only for endpoint id_token");
        }
        if !(0.0..=1.0).contains(&spec.rate) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rate: must be between 0 and 1",
            ));
        }
        if let Some(status) = spec.status
            && StatusCode::from_u16(status).is_err()
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("status: {status} is not an HTTP status"),
            ));
        }
        let mut store = self.store();
        let id = store.next_id();
        let remaining = spec.count;
        store.faults.push(ActiveFault {
            id,
            spec,
            remaining,
        });
        Ok(id)
    }

    /// Waits until `done` holds for the job's view.
    async fn wait_until(
        &self,
        id: u64,
        timeout: Duration,
        done: impl Fn(&JobView) -> bool,
    ) -> Result<JobView, MockError> {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.mark_unchanged();
            let view = self.job(id)?;
            if done(&view) {
                return Ok(view);
            }
            if !matches!(
                tokio::time::timeout_at(deadline, changes.changed()).await,
                Ok(Ok(()))
            ) {
                return Err(MockError::Timeout {
                    job: id,
                    status: view.status,
                    waited: timeout,
                });
            }
        }
    }

    /// Waits until `id` is finished (or, with `until`, has one of those statuses).
    async fn wait_for_job(
        &self,
        id: u64,
        timeout: Duration,
        until: Option<&[JobStatus]>,
    ) -> Result<JobView, MockError> {
        self.wait_until(id, timeout, |view| match until {
            Some(statuses) => statuses.contains(&view.status),
            None => view.status.is_finished(),
        })
        .await
    }
}

/// A connection that can be cut from inside a request (fault `drop_connection`).
pub(crate) struct CuttableStream {
    inner: TcpStream,
    cut: Arc<AtomicBool>,
}

/// The handle a request uses to cut its own connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionCutter(Arc<AtomicBool>);

impl ConnectionCutter {
    pub fn cut(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection dropped by fault",
    )
}

impl AsyncRead for CuttableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(crate) struct CuttableListener(TcpListener);

impl Listener for CuttableListener {
    type Io = CuttableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    // Trace patches are latency-bound; Nagle would add delays to every reply.
                    let _ = stream.set_nodelay(true);
                    let stream = CuttableStream {
                        inner: stream,
                        cut: Arc::new(AtomicBool::new(false)),
                    };
                    return (stream, addr);
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, CuttableListener>> for ConnectionCutter {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Self {
        ConnectionCutter(stream.io().cut.clone())
    }
}

/// A running mock GitLab. Dropping it stops the server.
pub struct MockGitlab {
    app: Arc<App>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for MockGitlab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockGitlab")
            .field("url", &self.app.base_url)
            .finish()
    }
}

impl Drop for MockGitlab {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl MockGitlab {
    /// Binds the listening socket and serves in a background task of the current runtime.
    pub async fn start(config: MockConfig) -> Result<MockGitlab, MockError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| MockError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind {
            addr: config.listen,
            source,
        })?;
        let registration_token = config
            .registration_token
            .unwrap_or_else(|| crate::model::new_token("GR1348941"));
        let (changes, _) = watch::channel(0);
        let app = Arc::new(App {
            store: Mutex::new(Store::new(config.settings)),
            changes,
            base_url: format!("http://{addr}"),
            registration_token,
            git_program: config.git_program,
        });
        let router = router(app.clone());
        let server = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<ConnectionCutter>();
            if let Err(e) = axum::serve(CuttableListener(listener), service).await {
                tracing::error!("mock GitLab server stopped: {e}");
            }
        });
        Ok(MockGitlab { app, addr, server })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.app.base_url
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Token for `POST /api/v4/runners`.
    pub fn registration_token(&self) -> &str {
        &self.app.registration_token
    }

    /// A client of this server's admin API (for code that only has the URL).
    pub fn admin(&self) -> crate::AdminClient {
        crate::AdminClient::new(self.url())
    }

    /// Creates a project; `repo` is a local git repository served to its jobs.
    pub fn create_project(
        &self,
        name: &str,
        repo: Option<&std::path::Path>,
    ) -> Result<u64, MockError> {
        Ok(self.app.create_project(NewProject {
            name: name.into(),
            path: repo.map(|p| p.display().to_string()),
        })?)
    }

    /// Registers a runner directly (no registration token needed).
    pub fn register_runner(&self, runner: NewRunner) -> RunnerCredentials {
        self.app.register_runner(runner)
    }

    /// Every registered runner, by id: what `GET /admin/api/runners` answers.
    pub fn runners(&self) -> Vec<RunnerView> {
        self.app.runners()
    }

    /// Creates a pipeline; its first jobs become pending at once.
    pub fn create_pipeline(&self, pipeline: NewPipeline) -> Result<PipelineCreated, MockError> {
        Ok(self.app.create_pipeline(pipeline)?)
    }

    /// A pipeline and its jobs.
    pub fn pipeline(&self, id: u64) -> Result<PipelineView, MockError> {
        Ok(self.app.pipeline(id)?)
    }

    /// Forgets a pipeline and its jobs (their traces and artifacts too).
    pub fn delete_pipeline(&self, id: u64) -> Result<(), MockError> {
        Ok(self.app.delete_pipeline(id)?)
    }

    /// A job's state.
    pub fn job(&self, id: u64) -> Result<JobView, MockError> {
        Ok(self.app.job(id)?)
    }

    /// A job's stored trace, byte for byte.
    pub fn trace(&self, id: u64) -> Result<Vec<u8>, MockError> {
        Ok(self.app.trace(id)?)
    }

    /// The runner calls the mock received about a job, in order, with its replies.
    pub fn job_calls(&self, id: u64) -> Result<Vec<JobCall>, MockError> {
        Ok(self.app.calls(id)?)
    }

    /// The job token of a job (what a runner receives), for tests of the runner API.
    pub fn job_token(&self, id: u64) -> Result<String, MockError> {
        self.app
            .store()
            .jobs
            .get(&id)
            .map(|j| j.token.clone())
            .ok_or_else(|| ApiError::not_found(format!("Job {id}")).into())
    }

    /// Cancels a job: gracefully (`canceling`, like the UI button) or hard (`force`).
    pub fn cancel_job(&self, id: u64, force: bool) -> Result<JobView, MockError> {
        Ok(self.app.cancel(id, force)?)
    }

    /// Starts a manual job.
    pub fn play_job(&self, id: u64) -> Result<JobView, MockError> {
        Ok(self.app.play(id)?)
    }

    /// Injects a fault; returns its id.
    pub fn add_fault(&self, fault: FaultSpec) -> Result<u64, MockError> {
        Ok(self.app.add_fault(fault)?)
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.app.store().faults.clear();
    }

    /// Current runtime settings.
    pub fn settings(&self) -> Settings {
        self.app.store().settings.clone()
    }

    /// Replaces the runtime settings (jobs created later get the new `update_accepts`).
    pub fn set_settings(&self, settings: Settings) {
        self.app.store().settings = settings;
    }

    /// Waits, without polling, until the job is finished (success, failed, canceled, skipped).
    pub async fn wait_for_job(&self, id: u64, timeout: Duration) -> Result<JobView, MockError> {
        self.app.wait_for_job(id, timeout, None).await
    }

    /// Waits until the job's stored trace holds at least `bytes` bytes.
    pub async fn wait_for_trace(
        &self,
        id: u64,
        bytes: u64,
        timeout: Duration,
    ) -> Result<JobView, MockError> {
        self.app
            .wait_until(id, timeout, |view| view.trace_bytes >= bytes)
            .await
    }

    /// Waits until the job has one of `statuses`.
    pub async fn wait_for_status(
        &self,
        id: u64,
        statuses: &[JobStatus],
        timeout: Duration,
    ) -> Result<JobView, MockError> {
        self.app.wait_for_job(id, timeout, Some(statuses)).await
    }
}

fn router(app: Arc<App>) -> Router {
    let admin = Router::new()
        .route(
            "/admin/api/projects",
            get(admin_projects).post(admin_create_project),
        )
        .route(
            "/admin/api/runners",
            get(admin_runners).post(admin_register_runner),
        )
        .route("/admin/api/pipelines", post(admin_create_pipeline))
        .route(
            "/admin/api/pipelines/{id}",
            get(admin_pipeline).delete(admin_delete_pipeline),
        )
        .route("/admin/api/jobs/{id}", get(admin_job))
        .route("/admin/api/jobs/{id}/trace", get(admin_trace))
        .route("/admin/api/jobs/{id}/calls", get(admin_calls))
        .route("/admin/api/jobs/{id}/cancel", post(admin_cancel))
        .route("/admin/api/jobs/{id}/play", post(admin_play))
        .route("/admin/api/jobs/{id}/wait", get(admin_wait))
        .route(
            "/admin/api/faults",
            get(admin_faults)
                .post(admin_add_fault)
                .delete(admin_clear_faults),
        )
        .route(
            "/admin/api/faults/{id}",
            axum::routing::delete(admin_remove_fault),
        )
        .route(
            "/admin/api/settings",
            get(admin_settings).put(admin_set_settings),
        )
        .route(crate::id_token::JWKS_PATH, get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT));
    let runner =
        runner_api::routes().layer(middleware::from_fn_with_state(app.clone(), inject_faults));
    Router::new()
        .merge(admin)
        .merge(runner)
        .fallback(git_http::serve)
        .layer(DefaultBodyLimit::max(GIT_BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// `GET /oauth/discovery/keys`: the public key of the job ID tokens, as GitLab publishes it.
async fn jwks() -> Result<impl IntoResponse, ApiError> {
    let keys = crate::id_token::jwks()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(axum::Json(keys))
}

/// `GET /.well-known/openid-configuration`: the parts of GitLab's OpenID discovery document a
/// verifier of job ID tokens reads.
async fn openid_configuration(State(app): State<Arc<App>>) -> impl IntoResponse {
    let base = &app.base_url;
    axum::Json(serde_json::json!({
        "issuer": base,
        "jwks_uri": format!("{base}{}", crate::id_token::JWKS_PATH),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

/// Logs every request at debug level (`RUST_LOG=mock_gitlab=debug`).
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}

/// Which fault endpoint a runner API request belongs to.
fn fault_endpoint(method: &axum::http::Method, path: &str) -> Option<FaultEndpoint> {
    let rest = path.strip_prefix("/api/v4/")?;
    let endpoint = if rest == "jobs/request" {
        FaultEndpoint::Request
    } else if rest.starts_with("jobs/") && rest.ends_with("/trace") {
        FaultEndpoint::Trace
    } else if rest.starts_with("jobs/") && rest.ends_with("/artifacts") {
        FaultEndpoint::Artifacts
    } else if rest.starts_with("jobs/") && method == axum::http::Method::PUT {
        FaultEndpoint::Update
    } else {
        FaultEndpoint::All
    };
    Some(endpoint)
}

async fn inject_faults(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let Some(endpoint) = fault_endpoint(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let fault = {
        let mut store = app.store();
        let mut hit = None;
        for fault in store.faults.iter_mut() {
            let applies =
                fault.spec.endpoint == FaultEndpoint::All || fault.spec.endpoint == endpoint;
            if !applies || fault.remaining == Some(0) {
                continue;
            }
            if fault.spec.rate < 1.0 && rand::rng().random::<f64>() >= fault.spec.rate {
                continue;
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            hit = Some(fault.spec.clone());
            break;
        }
        hit
    };
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    tracing::debug!(?fault, path = req.uri().path(), "injecting fault");
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    if fault.drop_connection {
        if let Some(ConnectInfo(cutter)) = req.extensions().get::<ConnectInfo<ConnectionCutter>>() {
            cutter.cut();
        }
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    match fault.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) => {
            let mut response =
                ApiError::new(status, format!("{status} (injected fault)")).into_response();
            if let Some(seconds) = fault.retry_after_s {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        None => next.run(req).await,
    }
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("id {raw:?}")))
}

async fn admin_create_project(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: NewProject = parse_json(&body)?;
    let id = app.create_project(req)?;
    Ok((StatusCode::CREATED, axum::Json(Created { id })))
}

async fn admin_projects(State(app): State<Arc<App>>) -> impl IntoResponse {
    let projects: Vec<ProjectView> = app
        .store()
        .projects
        .values()
        .map(|p| ProjectView {
            id: p.id,
            name: p.name.clone(),
            path_with_namespace: p.full_path.clone(),
            path: p.repo.as_ref().map(|r| r.display().to_string()),
        })
        .collect();
    axum::Json(projects)
}

/// `GET /admin/api/runners`: every registered runner, by id.
async fn admin_runners(State(app): State<Arc<App>>) -> impl IntoResponse {
    axum::Json(app.runners())
}

async fn admin_register_runner(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: NewRunner = if body.is_empty() {
        NewRunner::default()
    } else {
        parse_json(&body)?
    };
    Ok((StatusCode::CREATED, axum::Json(app.register_runner(req))))
}

async fn admin_create_pipeline(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: NewPipeline = parse_json(&body)?;
    let created = app.create_pipeline(req)?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn admin_pipeline(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(app.pipeline(parse_id(&id)?)?))
}

async fn admin_delete_pipeline(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    app.delete_pipeline(parse_id(&id)?)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_job(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(app.job(parse_id(&id)?)?))
}

async fn admin_trace(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let trace = app.trace(parse_id(&id)?)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        trace,
    ))
}

async fn admin_calls(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(app.calls(parse_id(&id)?)?))
}

#[derive(serde::Deserialize)]
struct CancelQuery {
    #[serde(default)]
    force: bool,
}

async fn admin_cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<CancelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(axum::Json(app.cancel(parse_id(&id)?, query.force)?))
}

async fn admin_play(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(app.play(parse_id(&id)?)?))
}

#[derive(serde::Deserialize)]
struct WaitQuery {
    #[serde(default = "default_wait")]
    timeout_s: u64,
}

fn default_wait() -> u64 {
    60
}

async fn admin_wait(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let id = parse_id(&id)?;
    let timeout = Duration::from_secs(query.timeout_s.min(3600));
    match app.wait_for_job(id, timeout, None).await {
        Ok(view) => Ok(axum::Json(view).into_response()),
        // The job exists but is not finished: answer its current state with 408.
        Err(MockError::Timeout { .. }) => {
            Ok((StatusCode::REQUEST_TIMEOUT, axum::Json(app.job(id)?)).into_response())
        }
        Err(MockError::Rejected { status, message }) => Err(ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

async fn admin_add_fault(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let spec: FaultSpec = parse_json(&body)?;
    let id = app.add_fault(spec)?;
    Ok((StatusCode::CREATED, axum::Json(Created { id })))
}

async fn admin_faults(State(app): State<Arc<App>>) -> impl IntoResponse {
    let faults: Vec<serde_json::Value> = app
        .store()
        .faults
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(&f.spec).unwrap_or_default();
            v["id"] = f.id.into();
            v["remaining"] = f.remaining.into();
            v
        })
        .collect();
    axum::Json(faults)
}

async fn admin_remove_fault(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let mut store = app.store();
    let before = store.faults.len();
    store.faults.retain(|f| f.id != id);
    if store.faults.len() == before {
        return Err(ApiError::not_found(format!("Fault {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_clear_faults(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.store().faults.clear();
    StatusCode::NO_CONTENT
}

async fn admin_settings(State(app): State<Arc<App>>) -> impl IntoResponse {
    axum::Json(app.store().settings.clone())
}

async fn admin_set_settings(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let settings: Settings = parse_json(&body)?;
    app.store().settings = settings.clone();
    Ok(axum::Json(settings))
}
