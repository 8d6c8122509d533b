//! Prometheus metrics of runner mode, served on `listen_address` at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one batchci process.
#[derive(Debug)]
pub struct Metrics {
    /// Jobs taken from GitLab.
    pub jobs_started: AtomicU64,
    /// Jobs running now.
    pub jobs_running: AtomicU64,
    /// Jobs that succeeded.
    pub jobs_succeeded: AtomicU64,
    /// Jobs that failed because of their script.
    pub jobs_failed_script: AtomicU64,
    /// Jobs that failed because of the system.
    pub jobs_failed_system: AtomicU64,
    /// Jobs that ran out of time.
    pub jobs_timed_out: AtomicU64,
    /// Jobs that were canceled.
    pub jobs_canceled: AtomicU64,
    /// Job requests sent to GitLab.
    pub job_requests: AtomicU64,
    /// Each configured runner, by name: whether it can take jobs.
    runners: Mutex<BTreeMap<String, bool>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    /// All counters at zero, no runner known.
    pub const fn new() -> Metrics {
        Metrics {
            jobs_started: AtomicU64::new(0),
            jobs_running: AtomicU64::new(0),
            jobs_succeeded: AtomicU64::new(0),
            jobs_failed_script: AtomicU64::new(0),
            jobs_failed_system: AtomicU64::new(0),
            jobs_timed_out: AtomicU64::new(0),
            jobs_canceled: AtomicU64::new(0),
            job_requests: AtomicU64::new(0),
            runners: Mutex::new(BTreeMap::new()),
        }
    }

    /// Says whether runner `name` can take jobs (`batchci_runner_ready`).
    pub fn set_runner_ready(&self, name: &str, ready: bool) {
        self.runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), ready);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP batchci_jobs_started_total Jobs taken from GitLab.\n\
             # TYPE batchci_jobs_started_total counter\n\
             batchci_jobs_started_total {}\n\
             # HELP batchci_jobs_running Jobs running now.\n\
             # TYPE batchci_jobs_running gauge\n\
             batchci_jobs_running {}\n\
             # HELP batchci_jobs_finished_total Finished jobs by outcome.\n\
             # TYPE batchci_jobs_finished_total counter\n\
             batchci_jobs_finished_total{{outcome=\"success\"}} {}\n\
             batchci_jobs_finished_total{{outcome=\"script_failure\"}} {}\n\
             batchci_jobs_finished_total{{outcome=\"runner_system_failure\"}} {}\n\
             batchci_jobs_finished_total{{outcome=\"job_execution_timeout\"}} {}\n\
             batchci_jobs_finished_total{{outcome=\"canceled\"}} {}\n\
             # HELP batchci_job_requests_total Job requests sent to GitLab.\n\
             # TYPE batchci_job_requests_total counter\n\
             batchci_job_requests_total {}\n\
             # HELP batchci_runner_ready Whether a configured runner can take jobs (0: see the log).\n\
             # TYPE batchci_runner_ready gauge\n{}",
            get(&self.jobs_started),
            get(&self.jobs_running),
            get(&self.jobs_succeeded),
            get(&self.jobs_failed_script),
            get(&self.jobs_failed_system),
            get(&self.jobs_timed_out),
            get(&self.jobs_canceled),
            get(&self.job_requests),
            self.render_runners(),
        )
    }

    fn render_runners(&self) -> String {
        let runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, ready) in runners.iter() {
            // Prometheus label escaping: backslash, double quote, line feed.
            let name = name
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = writeln!(
                out,
                "batchci_runner_ready{{runner=\"{name}\"}} {}",
                u8::from(*ready)
            );
        }
        out
    }
}

/// Serves `/metrics` on `address` until the process ends.
pub async fn serve(address: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address, "metrics at /metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                METRICS.render(),
            )
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_lists_every_counter() {
        let metrics = Metrics::default();
        metrics.jobs_started.fetch_add(2, Ordering::Relaxed);
        metrics.jobs_failed_script.fetch_add(1, Ordering::Relaxed);
        let text = metrics.render();
        assert!(text.contains("\nbatchci_jobs_started_total 2\n"), "{text}");
        assert!(
            text.contains("\nbatchci_jobs_finished_total{outcome=\"script_failure\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("\nbatchci_jobs_running 0\n"), "{text}");
    }
}
