//! The runner API (`/api/v4/...`) with GitLab's semantics; see the protocol reference §1.

use crate::api::JobCall;
use crate::id_token;
use crate::model::{Artifact, FAILURE_REASONS, JobStatus, Store};
use crate::payload::{job_payload, job_timeout};
use crate::server::{ApiError, App, JSON_BODY_LIMIT, TRACE_BODY_LIMIT, parse_json};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use futures::StreamExt;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const JOB_STATUS: HeaderName = HeaderName::from_static("job-status");
const TRACE_UPDATE_INTERVAL: HeaderName = HeaderName::from_static("x-gitlab-trace-update-interval");
const LAST_UPDATE: HeaderName = HeaderName::from_static("x-gitlab-last-update");

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v4/runners", post(register).delete(unregister))
        .route("/api/v4/runners/verify", post(verify))
        .route("/api/v4/runners/managers", delete(unregister_manager))
        .route(
            "/api/v4/runners/reset_authentication_token",
            post(reset_token),
        )
        .route("/api/v4/runners/router/discovery", get(discovery))
        .route("/api/v4/jobs/request", post(request_job))
        .route("/api/v4/jobs/{id}", put(update_job))
        .route(
            "/api/v4/jobs/{id}/trace",
            patch(append_trace).layer(DefaultBodyLimit::max(TRACE_BODY_LIMIT)),
        )
        .route(
            "/api/v4/jobs/{id}/artifacts",
            post(upload_artifacts)
                .get(download_artifacts)
                // The configurable limit is checked while reading the part.
                .layer(DefaultBodyLimit::disable()),
        )
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn status_value(status: JobStatus) -> HeaderValue {
    HeaderValue::from_static(status.as_str())
}

fn number_value(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// A body that may be empty (`{}` then).
fn parse_optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

/// Runner-token calls: the token comes from `RUNNER-TOKEN` or the body's `token`.
#[derive(Debug, Default, Deserialize)]
struct TokenBody {
    token: Option<String>,
    system_id: Option<String>,
}

fn runner_token(headers: &HeaderMap, body_token: Option<&str>) -> Option<String> {
    header_str(headers, "runner-token")
        .or(body_token)
        .map(str::to_string)
}

/// `tag_list` arrives as a comma-separated string from gitlab-runner, as a list from others.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TagList {
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct RegisterBody {
    token: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tag_list: Option<TagList>,
    #[serde(default)]
    run_untagged: Option<bool>,
    #[serde(default)]
    paused: Option<bool>,
    #[serde(default)]
    maximum_timeout: Option<u64>,
    #[serde(default)]
    active: Option<bool>,
}

async fn register(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RegisterBody = parse_optional_json(&body)?;
    let token = req
        .token
        .as_deref()
        .or_else(|| header_str(&headers, "runner-token"));
    if token != Some(app.registration_token.as_str()) {
        return Err(ApiError::forbidden(None));
    }
    let tags: Vec<String> = match req.tag_list {
        None => Vec::new(),
        Some(TagList::Text(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        Some(TagList::List(list)) => list,
    };
    let run_untagged = req.run_untagged.unwrap_or(true);
    let mut store = app.store();
    // GitLab treats a maximum_timeout of 0 as "not set".
    let maximum_timeout = req.maximum_timeout.filter(|t| *t > 0);
    let mut runner = store.add_runner(
        req.description.unwrap_or_default(),
        tags,
        run_untagged,
        maximum_timeout,
    );
    let paused = req.paused.unwrap_or(false) || req.active == Some(false);
    if paused && let Some(r) = store.runners.get_mut(&runner.id) {
        r.paused = true;
        runner.paused = true;
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "id": runner.id,
            "token": runner.token,
            "token_expires_at": runner.token_expires_at.map(crate::model::api_time),
        })),
    )
        .into_response())
}

/// `token=...&system_id=...` as `curl --data` sends it (GitLab's API takes forms as well as
/// JSON); other fields are ignored.
fn form_token_body(body: &[u8]) -> TokenBody {
    let decode = |text: &str| {
        let spaced = text.replace('+', " ");
        percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
    };
    let mut req = TokenBody::default();
    for pair in String::from_utf8_lossy(body).split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key).as_str() {
            "token" => req.token = Some(decode(value)),
            "system_id" => req.system_id = Some(decode(value)),
            _ => {}
        }
    }
    req
}

/// The body of a runner-token call and the token, from the `RUNNER-TOKEN` header or the body
/// (403 when neither has one).
fn token_request(headers: &HeaderMap, body: &Bytes) -> Result<(TokenBody, String), ApiError> {
    let form = header_str(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let req: TokenBody = if form {
        form_token_body(body)
    } else {
        parse_optional_json(body)?
    };
    let token = runner_token(headers, req.token.as_deref()).ok_or(ApiError::forbidden(None))?;
    Ok((req, token))
}

async fn verify(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (req, token) = token_request(&headers, &body)?;
    let mut store = app.store();
    let runner = store
        .runner_contacted(&token)
        .ok_or(ApiError::forbidden(None))?;
    if let Some(system_id) = req.system_id
        && !runner.system_ids.contains(&system_id)
    {
        runner.system_ids.push(system_id);
    }
    Ok(axum::Json(json!({
        "id": runner.id,
        "token": runner.token,
        "token_expires_at": runner.token_expires_at.map(crate::model::api_time),
    }))
    .into_response())
}

async fn unregister(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (_, token) = token_request(&headers, &body)?;
    let mut store = app.store();
    let id = store
        .runner_by_token(&token)
        .map(|r| r.id)
        .ok_or(ApiError::forbidden(None))?;
    store.runners.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

async fn unregister_manager(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (req, token) = token_request(&headers, &body)?;
    let mut store = app.store();
    let runner = store
        .runner_by_token_mut(&token)
        .ok_or(ApiError::forbidden(None))?;
    if let Some(system_id) = req.system_id {
        runner.system_ids.retain(|s| *s != system_id);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, token) = token_request(&headers, &body)?;
    let mut store = app.store();
    let lifetime = store.settings.runner_token_expiration_interval;
    // Not a contact: GitLab resets without updating `contacted_at`.
    let runner = store
        .runner_by_token_mut(&token)
        .ok_or(ApiError::forbidden(None))?;
    runner.renew_token(lifetime);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "token": runner.token,
            "token_expires_at": runner.token_expires_at.map(crate::model::api_time),
        })),
    )
        .into_response())
}

/// Job Router discovery: the mock has no job router, which GitLab answers with 501.
async fn discovery(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = runner_token(&headers, None).ok_or(ApiError::forbidden(None))?;
    if app.store().runner_by_token(&token).is_none() {
        return Err(ApiError::forbidden(None));
    }
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "501 Not Implemented: job router is not enabled",
    ))
}

#[derive(Debug, Default, Deserialize)]
struct JobRequestBody {
    token: Option<String>,
    last_update: Option<String>,
    #[serde(default)]
    info: Option<Value>,
}

fn runner_wants_two_phase(info: Option<&Value>) -> bool {
    info.and_then(|i| i.get("features"))
        .and_then(|f| f.get("two_phase_job_commit"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `POST /api/v4/jobs/request`: 201 + job, 204 + `X-GitLab-Last-Update`, or 403.
///
/// With `long_poll_ms` set, a request that finds nothing waits (like GitLab Workhorse) until a
/// job may have become available or the time is up.
async fn request_job(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: JobRequestBody = parse_optional_json(&body)?;
    let token = runner_token(&headers, req.token.as_deref()).ok_or(ApiError::forbidden(None))?;
    let two_phase = runner_wants_two_phase(req.info.as_ref());
    let mut changes = app.subscribe();
    let long_poll = Duration::from_millis(app.store().settings.long_poll_ms);
    let deadline = tokio::time::Instant::now() + long_poll;
    loop {
        changes.mark_unchanged();
        let outcome = {
            let mut store = app.store();
            try_assign(
                &mut store,
                &token,
                req.last_update.as_deref(),
                two_phase,
                &app.base_url,
            )?
        };
        let queue_value = match outcome {
            Assignment::Job(payload) => {
                app.notify();
                // GitLab sends X-GitLab-Last-Update only with 204: a runner echoing it after a
                // 201 would otherwise be told "nothing new" while more jobs are still pending.
                return Ok((StatusCode::CREATED, axum::Json(payload)).into_response());
            }
            Assignment::Nothing(queue_value) => queue_value,
        };
        let woken = tokio::time::timeout_at(deadline, changes.changed()).await;
        if !matches!(woken, Ok(Ok(()))) {
            let mut response = StatusCode::NO_CONTENT.into_response();
            if let Ok(v) = HeaderValue::from_str(&queue_value) {
                response.headers_mut().insert(LAST_UPDATE, v);
            }
            return Ok(response);
        }
    }
}

enum Assignment {
    /// The job payload for the runner.
    Job(Value),
    /// Nothing for this runner; the current queue value.
    Nothing(String),
}

fn try_assign(
    store: &mut Store,
    token: &str,
    last_update: Option<&str>,
    two_phase: bool,
    base_url: &str,
) -> Result<Assignment, ApiError> {
    let runner = store
        .runner_contacted(token)
        .map(|runner| runner.clone())
        .ok_or(ApiError::forbidden(None))?;
    let queue_value = store.queue_version.to_string();
    if runner.paused || last_update == Some(queue_value.as_str()) {
        return Ok(Assignment::Nothing(queue_value));
    }
    let candidate = store
        .jobs
        .values()
        .find(|job| {
            job.status == JobStatus::Pending
                && job.runner_id.is_none()
                && if job.spec.tags.is_empty() {
                    runner.run_untagged
                } else {
                    job.spec.tags.iter().all(|t| runner.tags.contains(t))
                }
        })
        .map(|job| job.id);
    Ok(match candidate {
        Some(job_id) => Assignment::Job(assign_job(store, job_id, &runner, two_phase, base_url)?),
        None => Assignment::Nothing(queue_value),
    })
}

/// Hands a job to a runner. Without two-phase commit the job runs at once; with it the job
/// stays pending (taken, unacknowledged) until the runner's first `PUT state=running`.
/// A job whose ID tokens cannot be signed stays in the queue (500).
fn assign_job(
    store: &mut Store,
    job_id: u64,
    runner: &crate::model::Runner,
    two_phase: bool,
    base_url: &str,
) -> Result<Value, ApiError> {
    let timeout = store
        .jobs
        .get(&job_id)
        .map_or(0, |job| job_timeout(job, runner));
    let id_tokens = id_token::issue(store, job_id, runner, base_url, timeout)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if let Some(job) = store.jobs.get_mut(&job_id) {
        job.runner_id = Some(runner.id);
    }
    let payload = match store.jobs.get(&job_id) {
        Some(job) => job_payload(store, job, runner, base_url, &id_tokens),
        None => Value::Null,
    };
    if !two_phase {
        store.set_status(job_id, JobStatus::Running);
    }
    store.record(
        job_id,
        JobCall::Request {
            runner_id: runner.id,
            two_phase,
        },
    );
    Ok(payload)
}

#[derive(Debug, Default, Deserialize)]
struct OutputBody {
    checksum: Option<String>,
    bytesize: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct UpdateBody {
    token: Option<String>,
    state: Option<String>,
    failure_reason: Option<String>,
    exit_code: Option<i64>,
    checksum: Option<String>,
    #[serde(default)]
    output: Option<OutputBody>,
}

fn job_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("Job {raw:?}")))
}

fn with_job_status(mut response: Response, status: JobStatus, interval: Option<u64>) -> Response {
    response
        .headers_mut()
        .insert(JOB_STATUS, status_value(status));
    if let Some(interval) = interval {
        response
            .headers_mut()
            .insert(TRACE_UPDATE_INTERVAL, number_value(interval));
    }
    response
}

/// `PUT /api/v4/jobs/:id`: acknowledgement, keep-alive and final update.
async fn update_job(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = job_id(&raw_id)?;
    let req: UpdateBody = parse_optional_json(&body)?;
    let call = |reply: StatusCode| JobCall::Update {
        state: req.state.clone(),
        failure_reason: req.failure_reason.clone(),
        exit_code: req.exit_code,
        checksum: req
            .output
            .as_ref()
            .and_then(|o| o.checksum.clone())
            .or(req.checksum.clone()),
        bytesize: req.output.as_ref().and_then(|o| o.bytesize),
        reply: reply.as_u16(),
    };
    let result = {
        let mut store = app.store();
        let result = update_job_locked(&mut store, id, &headers, &req);
        let reply = match &result {
            Ok(r) => r.status(),
            Err(e) => e.status,
        };
        store.record(id, call(reply));
        result
    };
    app.notify();
    result
}

fn update_job_locked(
    store: &mut Store,
    id: u64,
    headers: &HeaderMap,
    req: &UpdateBody,
) -> Result<Response, ApiError> {
    let interval = store.settings.trace_update_interval;
    let job = store
        .jobs
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("Job {id}")))?;
    let token = header_str(headers, "job-token").or(req.token.as_deref());
    if token != Some(job.token.as_str()) {
        return Err(ApiError::forbidden(Some(job.status)));
    }
    let state = req.state.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "400 Bad request - state is missing",
        )
    })?;
    if !matches!(state, "running" | "pending" | "success" | "failed") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "400 Bad request - state: {state:?} is not one of running, pending, success, failed"
            ),
        ));
    }
    let acknowledged_by_runner = job.status.is_processing();
    let awaiting_ack = job.status == JobStatus::Pending && job.runner_id.is_some();
    if !acknowledged_by_runner && !awaiting_ack {
        return Err(ApiError::forbidden(Some(job.status)));
    }
    let ok = |status| with_job_status(StatusCode::OK.into_response(), status, Some(interval));
    match state {
        "pending" => return Ok(ok(job.status)),
        "running" => {
            if awaiting_ack {
                store.set_status(id, JobStatus::Running);
                return Ok(ok(JobStatus::Running));
            }
            return Ok(ok(job.status));
        }
        _ => {}
    }

    // Final update: the trace must be complete before the job may finish.
    let expected_checksum = req
        .output
        .as_ref()
        .and_then(|o| o.checksum.clone())
        .or_else(|| req.checksum.clone());
    let expected_size = req.output.as_ref().and_then(|o| o.bytesize);
    let stored_checksum = job.trace.checksum();
    let stored_size = job.trace.len() as u64;
    let checksum_bad = expected_checksum
        .as_deref()
        .is_some_and(|c| !c.eq_ignore_ascii_case(&stored_checksum));
    let size_bad = expected_size.is_some_and(|s| s != stored_size);
    if checksum_bad || size_bad {
        // GitLab answers 412 and the runner re-sends the whole trace from offset 0 (feature
        // trace_reset), so the stored copy is dropped to let that resend start at 0.
        let message = format!(
            "412 Precondition Failed - trace mismatch: stored {stored_size} bytes {stored_checksum}, runner reported {} bytes {}",
            expected_size
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            expected_checksum.unwrap_or_else(|| "?".into())
        );
        job.trace.clear();
        let status = job.status;
        let mut err = ApiError::new(StatusCode::PRECONDITION_FAILED, message);
        err.job_status = Some(status);
        return Err(err);
    }
    if job.update_accepts_left > 0 {
        job.update_accepts_left -= 1;
        return Ok(with_job_status(
            StatusCode::ACCEPTED.into_response(),
            job.status,
            Some(interval),
        ));
    }
    let final_status = if job.status == JobStatus::Canceling {
        JobStatus::Canceled
    } else if state == "success" {
        JobStatus::Success
    } else {
        JobStatus::Failed
    };
    job.exit_code = Some(req.exit_code.unwrap_or(0));
    job.failure_reason = (final_status == JobStatus::Failed).then(|| {
        match req.failure_reason.as_deref() {
            None | Some("") => "script_failure".to_string(),
            Some(reason) if FAILURE_REASONS.contains(&reason) => reason.to_string(),
            // GitLab maps reasons it does not know (e.g. job_canceled) to unknown_failure.
            Some(_) => "unknown_failure".to_string(),
        }
    });
    store.finish(id, final_status);
    Ok(ok(final_status))
}

/// `Content-Range: <start>-<end>` with an inclusive end, which GitLab ignores.
fn parse_content_range(headers: &HeaderMap) -> Result<u64, ApiError> {
    let raw = header_str(headers, "content-range").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "400 Bad request - missing header Content-Range",
        )
    })?;
    let parsed = raw.split_once('-').and_then(|(start, end)| {
        Some((
            start.trim().parse::<u64>().ok()?,
            end.trim().parse::<u64>().ok()?,
        ))
    });
    match parsed {
        Some((start, _end)) => Ok(start),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("400 Bad request - Content-Range: expected <start>-<end>, got {raw:?}"),
        )),
    }
}

/// Checks that `token` may append to job `id` now; returns the refusal otherwise.
fn check_trace_access(store: &Store, id: u64, headers: &HeaderMap) -> Result<(), ApiError> {
    let job = store
        .jobs
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("Job {id}")))?;
    if header_str(headers, "job-token") != Some(job.token.as_str()) || !job.status.is_processing() {
        return Err(ApiError::forbidden(Some(job.status)));
    }
    Ok(())
}

/// Reads a request body as the frames hyper received, without joining them.
async fn read_frames(body: Body, limit: usize) -> Result<(Vec<Bytes>, usize), ApiError> {
    let mut stream = body.into_data_stream();
    let mut frames = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("400 Bad request - body: {e}"),
            )
        })?;
        total += frame.len();
        if total > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("413 Request Entity Too Large - a trace patch is limited to {limit} bytes"),
            ));
        }
        frames.push(frame);
    }
    Ok((frames, total))
}

/// `PATCH /api/v4/jobs/:id/trace`. Every outcome is recorded in the job's calls under the
/// same lock as the append, so the record's order is the order the trace grew in.
async fn append_trace(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = job_id(&raw_id)?;
    let content_range = header_str(&headers, "content-range").map(str::to_string);
    let refuse = |e: ApiError, bytes: u64| {
        app.store().record(
            id,
            JobCall::Patch {
                content_range: content_range.clone(),
                bytes,
                reply: e.status.as_u16(),
            },
        );
        Err(e)
    };
    // Refuse before reading the body, as GitLab authenticates before it appends.
    let checked = check_trace_access(&app.store(), id, &headers);
    if let Err(e) = checked {
        return refuse(e, 0);
    }
    let start = match parse_content_range(&headers) {
        Ok(start) => start,
        Err(e) => return refuse(e, 0),
    };
    let (frames, body_len) = match read_frames(body, TRACE_BODY_LIMIT).await {
        Ok(read) => read,
        Err(e) => return refuse(e, 0),
    };
    let (result, changed) = {
        let mut store = app.store();
        let (result, changed) = append_locked(&mut store, id, &headers, start, frames, body_len);
        let reply = match &result {
            Ok(r) => r.status(),
            Err(e) => e.status,
        };
        store.record(
            id,
            JobCall::Patch {
                content_range,
                bytes: body_len as u64,
                reply: reply.as_u16(),
            },
        );
        (result, changed)
    };
    if changed {
        app.notify();
    }
    result
}

/// Appends `frames` at `start`; returns the reply and whether the job changed.
fn append_locked(
    store: &mut Store,
    id: u64,
    headers: &HeaderMap,
    start: u64,
    frames: Vec<Bytes>,
    body_len: usize,
) -> (Result<Response, ApiError>, bool) {
    // The job may have been canceled while the body was read.
    if let Err(e) = check_trace_access(store, id, headers) {
        return (Err(e), false);
    }
    let interval = store.settings.trace_update_interval;
    let limit = store.settings.trace_size_limit;
    let body_end = start.saturating_add(body_len as u64);
    if limit.is_some_and(|limit| body_end > limit) {
        if let Some(job) = store.jobs.get_mut(&id) {
            job.failure_reason = Some("trace_size_exceeded".into());
        }
        store.finish(id, JobStatus::Failed);
        return (Err(ApiError::forbidden(Some(JobStatus::Failed))), true);
    }
    let Some(job) = store.jobs.get_mut(&id) else {
        return (Err(ApiError::not_found(format!("Job {id}"))), false);
    };
    let stored = job.trace.len() as u64;
    let (status, size, changed) = if start != stored {
        (StatusCode::RANGE_NOT_SATISFIABLE, stored, false)
    } else {
        for frame in frames {
            job.trace.push(frame);
        }
        (StatusCode::ACCEPTED, job.trace.len() as u64, true)
    };
    let interval = (status == StatusCode::ACCEPTED).then_some(interval);
    let mut response = with_job_status(status.into_response(), job.status, interval);
    if let Ok(v) = HeaderValue::from_str(&format!("0-{size}")) {
        response.headers_mut().insert(header::RANGE, v);
    }
    (Ok(response), changed)
}

/// `POST /api/v4/jobs/:id/artifacts`: multipart with one part named `file`.
async fn upload_artifacts(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let id = job_id(&raw_id)?;
    let max = {
        let store = app.store();
        let job = store
            .jobs
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("Job {id}")))?;
        if header_str(&headers, "job-token") != Some(job.token.as_str())
            || !job.status.is_processing()
        {
            return Err(ApiError::forbidden(Some(job.status)));
        }
        store.settings.max_artifact_size
    };
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "400 Bad request - expected multipart/form-data: {}",
                e.body_text()
            ),
        )
    })?;
    let bad_multipart = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "400 Bad request - malformed multipart body: {}",
                e.body_text()
            ),
        )
    };
    let mut artifact = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field
            .file_name()
            .filter(|n| !n.is_empty())
            .unwrap_or("artifacts.zip")
            .to_string();
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
            if (data.len() + chunk.len()) as u64 > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("413 Request Entity Too Large - artifacts are limited to {max} bytes"),
                ));
            }
            data.extend_from_slice(&chunk);
        }
        artifact = Some(Artifact {
            filename,
            data: data.into(),
        });
    }
    let artifact = artifact.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "400 Bad request - file is missing")
    })?;
    let size = artifact.data.len();
    let mut store = app.store();
    let job = store
        .jobs
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("Job {id}")))?;
    let filename = artifact.filename.clone();
    job.artifact = Some(artifact);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "artifacts_file": {"filename": filename, "size": size}})),
    )
        .into_response())
}

/// `GET /api/v4/jobs/:id/artifacts` with the job's own token, as listed in a dependent job's
/// `dependencies[].token`.
async fn download_artifacts(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = job_id(&raw_id)?;
    let store = app.store();
    let job = store
        .jobs
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("Job {id}")))?;
    let token = header_str(&headers, "job-token").ok_or(ApiError::forbidden(None))?;
    let dependent_asks = store.jobs.values().any(|other| {
        other.token == token
            && other.status.is_processing()
            && store
                .artifact_dependencies(other)
                .iter()
                .any(|d| d.id == id)
    });
    if token != job.token && !dependent_asks {
        return Err(ApiError::forbidden(None));
    }
    let artifact = job
        .artifact
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Artifacts"))?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        artifact.filename.replace('"', "")
    );
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        )],
        artifact.data.clone(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
