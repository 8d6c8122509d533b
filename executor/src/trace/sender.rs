//! Streams a [`JobLog`] to GitLab with gitlab-runner's trace protocol.
//!
//! While the job runs, every interval the bytes GitLab does not have yet are patched in chunks
//! of at most 1 MiB. Output that comes faster does not wait for the interval: every full chunk
//! is patched as soon as the log holds it, and the rest of such a burst once the output has
//! paused for [`BURST_QUIET`]. Output that never fills a chunk costs one request per interval,
//! as with gitlab-runner; a burst costs one request per chunk and at most two short ones (its
//! end, and its start when the interval's patch ended inside a chunk). GitLab's
//! `X-GitLab-Trace-Update-Interval` replaces the interval, a 416
//! resumes from the size GitLab reports, `Job-Status: canceling` requests a graceful cancel and
//! `canceled`/403 aborts the job. At the end the whole log is flushed and the final state is
//! sent with the log's checksum, repeating as GitLab asks (202, 412) until it is accepted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::buffer::MAX_PATCH_BYTES;
use super::log::JobLog;
use crate::gitlab::{GitlabClient, JobUpdate, PatchOutcome, UpdateOutcome};

/// gitlab-runner's initial update interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);
/// Longest interval GitLab may ask for.
pub const MAX_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// A keep-alive `PUT state=running` is sent after at most this long without contact
/// (gitlab-runner's force-send interval).
pub const KEEPALIVE_AFTER: Duration = Duration::from_secs(30);
/// ... and at least this long. A quiet job (one pending in a batch queue) learns of a cancel
/// from GitLab only through these updates, so they come every three update intervals.
pub const KEEPALIVE_MIN: Duration = Duration::from_secs(5);
/// Attempts of the final update when GitLab fails.
pub const FINAL_UPDATE_ATTEMPTS: usize = 10;
/// After full chunks were patched, the rest of the burst is patched once the log has not
/// grown for this long (instead of at the next interval).
pub const BURST_QUIET: Duration = Duration::from_millis(5);

/// What GitLab asked for while the job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteRequest {
    /// `Job-Status: canceling`: stop the script, still run after_script.
    Cancel,
    /// `Job-Status: canceled`/`failed` or 403: stop everything.
    Abort,
}

/// How the final update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalOutcome {
    /// GitLab accepted the final state.
    Accepted,
    /// GitLab refused the job (canceled, gone, token invalid): nothing more can be sent.
    Aborted,
    /// GitLab could not be reached or kept failing.
    Failed(String),
}

/// Sends one job's log.
#[derive(Debug)]
pub struct TraceSender {
    client: GitlabClient,
    job_id: u64,
    token: String,
    log: Arc<JobLog>,
    sent: usize,
    interval: Duration,
    last_contact: Instant,
    gone: bool,
}

impl TraceSender {
    /// A sender for job `job_id` authenticated by `token`.
    pub fn new(client: GitlabClient, job_id: u64, token: String, log: Arc<JobLog>) -> Self {
        TraceSender {
            client,
            job_id,
            token,
            log,
            sent: 0,
            interval: DEFAULT_INTERVAL,
            last_contact: Instant::now(),
            gone: false,
        }
    }

    /// The update interval until GitLab names one (gitlab-runner's 3 s by default).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.min(MAX_INTERVAL);
        self
    }

    /// Bytes GitLab has acknowledged.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Patches until `done` is cancelled — every interval, and full chunks as soon as the log
    /// holds them — reporting GitLab's requests on `requests`.
    pub async fn run(
        &mut self,
        done: CancellationToken,
        requests: mpsc::UnboundedSender<RemoteRequest>,
    ) {
        let mut next_tick = tokio::time::Instant::now() + self.interval;
        // The log's length when a burst's full chunks were sent; `None` outside a burst.
        let mut burst: Option<usize> = None;
        // Whether full chunks go at once. Off from a failed attempt to the next interval, so
        // that a GitLab that refuses or fails is not asked again and again.
        let mut eager = true;
        loop {
            if eager {
                self.log.wake_at(self.sent.saturating_add(MAX_PATCH_BYTES));
            }
            enum Wake {
                Tick,
                FullChunk,
                Quiet,
            }
            let wake = tokio::select! {
                () = tokio::time::sleep_until(next_tick) => Wake::Tick,
                () = self.log.reached(), if eager => Wake::FullChunk,
                () = tokio::time::sleep(BURST_QUIET), if burst.is_some() => Wake::Quiet,
                () = done.cancelled() => return,
            };
            let request = match wake {
                Wake::Tick => {
                    burst = None;
                    eager = !self.gone;
                    let request = self.flush().await;
                    next_tick = tokio::time::Instant::now() + self.interval;
                    request
                }
                Wake::FullChunk => {
                    if self.log.len().saturating_sub(self.sent) < MAX_PATCH_BYTES {
                        continue;
                    }
                    let before = self.sent;
                    let request = self.send(true).await;
                    if self.sent == before {
                        eager = false;
                        burst = None;
                    } else {
                        burst = Some(self.log.len());
                    }
                    request
                }
                Wake::Quiet => {
                    let len = self.log.len();
                    if burst != Some(len) {
                        // Still growing: wait for it to pause.
                        burst = Some(len);
                        continue;
                    }
                    burst = None;
                    self.flush().await
                }
            };
            if let Some(request) = request {
                let _ = requests.send(request);
                if request == RemoteRequest::Abort {
                    return;
                }
            }
            if self.last_contact.elapsed()
                >= (self.interval * 3).clamp(KEEPALIVE_MIN, KEEPALIVE_AFTER)
            {
                self.keepalive(&requests).await;
            }
        }
    }

    /// Sends everything GitLab does not have yet. Returns a cancel or abort request, if any.
    pub async fn flush(&mut self) -> Option<RemoteRequest> {
        self.send(false).await
    }

    /// Sends what GitLab does not have yet: everything, or with `full_chunks` only whole
    /// chunks of [`MAX_PATCH_BYTES`].
    async fn send(&mut self, full_chunks: bool) -> Option<RemoteRequest> {
        let mut request = None;
        let mut mismatches = 0;
        while !self.gone {
            // Full chunks: while a whole chunk waits (its first patch may end short, at the
            // end of a block of the log).
            if full_chunks && self.log.len().saturating_sub(self.sent) < MAX_PATCH_BYTES {
                break;
            }
            let patch = self.log.patch_from(self.sent);
            if patch.is_empty() {
                break;
            }
            match self
                .client
                .patch_trace_bytes(self.job_id, &self.token, self.sent, patch.clone())
                .await
            {
                Ok(PatchOutcome::Accepted {
                    interval,
                    cancel_requested,
                }) => {
                    self.sent += patch.len();
                    self.last_contact = Instant::now();
                    if let Some(interval) = interval {
                        self.interval = interval.min(MAX_INTERVAL);
                    }
                    if cancel_requested {
                        request = Some(RemoteRequest::Cancel);
                    }
                }
                Ok(PatchOutcome::RangeMismatch { remote_size }) => {
                    tracing::warn!(
                        job = self.job_id,
                        remote_size,
                        sent = self.sent,
                        "trace range mismatch; resending"
                    );
                    self.sent = remote_size.min(self.log.len());
                    mismatches += 1;
                    if mismatches > 3 {
                        break;
                    }
                }
                Ok(PatchOutcome::Abort) => return Some(RemoteRequest::Abort),
                Ok(PatchOutcome::NotFound) => {
                    self.gone = true;
                }
                Err(error) => {
                    tracing::warn!(job = self.job_id, %error, "trace patch failed; will retry");
                    break;
                }
            }
        }
        request
    }

    async fn keepalive(&mut self, requests: &mpsc::UnboundedSender<RemoteRequest>) {
        let (checksum, bytesize) = self.log.checksum();
        let update = JobUpdate {
            state: "running",
            checksum: Some(checksum),
            bytesize: Some(bytesize),
            ..JobUpdate::default()
        };
        match self
            .client
            .update_job(self.job_id, &self.token, &update)
            .await
        {
            Ok(UpdateOutcome::Accepted { cancel_requested }) => {
                self.last_contact = Instant::now();
                if cancel_requested {
                    let _ = requests.send(RemoteRequest::Cancel);
                }
            }
            Ok(UpdateOutcome::Abort) => {
                let _ = requests.send(RemoteRequest::Abort);
            }
            Ok(_) => self.last_contact = Instant::now(),
            Err(error) => tracing::warn!(job = self.job_id, %error, "keep-alive failed"),
        }
    }

    /// Flushes the whole log and reports the final state, as long as GitLab asks for it.
    pub async fn finish(&mut self, mut update: JobUpdate) -> FinalOutcome {
        self.log.finish();
        self.interval = DEFAULT_INTERVAL.min(self.interval);
        let mut failures = 0;
        let mut pause = Duration::from_secs(1);
        loop {
            // Even when GitLab refuses more trace, the final update still reports the outcome.
            let _ = self.flush().await;
            let (checksum, bytesize) = self.log.checksum();
            update.checksum = Some(checksum);
            update.bytesize = Some(bytesize);
            match self
                .client
                .update_job(self.job_id, &self.token, &update)
                .await
            {
                Ok(UpdateOutcome::Accepted { .. }) => return FinalOutcome::Accepted,
                Ok(UpdateOutcome::Abort) => return FinalOutcome::Aborted,
                Ok(UpdateOutcome::TryAgain { interval }) => {
                    tokio::time::sleep(interval.min(MAX_INTERVAL)).await;
                }
                Ok(UpdateOutcome::TraceMismatch) => {
                    failures += 1;
                    if failures >= FINAL_UPDATE_ATTEMPTS {
                        return FinalOutcome::Failed(
                            "GitLab kept rejecting the trace checksum".into(),
                        );
                    }
                    self.sent = 0;
                }
                Err(error) => {
                    failures += 1;
                    if failures >= FINAL_UPDATE_ATTEMPTS {
                        return FinalOutcome::Failed(error.to_string());
                    }
                    tracing::warn!(job = self.job_id, %error, ?pause, "final update failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}
