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

/// The addresses `listen_address` names: `host:port` (a name is resolved), `[v6]:port`, or
/// `:port` for every IPv4 interface (`0.0.0.0:port`, as gitlab-runner's samples write it).
/// A port alone is refused: it does not say whether the metrics are for this host only.
pub fn listen_addresses(text: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    use std::net::{SocketAddr, ToSocketAddrs};
    let text = text.trim();
    let port_of = |port: &str| {
        port.parse::<u16>()
            .map_err(|_| format!("`{text}`: the port `{port}` is not a number from 0 to 65535"))
    };
    if text.is_empty() {
        return Err("is empty; write host:port, e.g. `127.0.0.1:9252`".into());
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "`{text}` is a port without a host: write `127.0.0.1:{text}` (this host only) or `:{text}` (every interface)"
        ));
    }
    if let Some(port) = text.strip_prefix(':') {
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], port_of(port)?))]);
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(vec![address]);
    }
    let Some((host, port)) = text.rsplit_once(':').filter(|(host, _)| !host.is_empty()) else {
        return Err(format!("`{text}` has no port: write `{text}:9252`"));
    };
    let port = port_of(port)?;
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("`{text}`: cannot resolve `{host}`: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("`{text}`: `{host}` has no address"));
    }
    Ok(found)
}

/// Serves `/metrics` on `address` until the process ends.
pub async fn serve(address: &str) -> std::io::Result<()> {
    let addresses = listen_addresses(address)
        .map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why))?;
    let listener = tokio::net::TcpListener::bind(&addresses[..]).await?;
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
    fn listen_addresses_are_host_and_port() {
        let show = |text: &str| match listen_addresses(text) {
            Ok(found) => found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            Err(why) => format!("error: {why}"),
        };
        assert_eq!(show("127.0.0.1:9252"), "127.0.0.1:9252");
        assert_eq!(show(":9252"), "0.0.0.0:9252");
        assert_eq!(show("[::1]:9252"), "[::1]:9252");
        assert_eq!(
            show("9252"),
            "error: `9252` is a port without a host: write `127.0.0.1:9252` (this host only) or `:9252` (every interface)"
        );
        assert_eq!(
            show("metrics.example"),
            "error: `metrics.example` has no port: write `metrics.example:9252`"
        );
        assert_eq!(
            show("127.0.0.1:http"),
            "error: `127.0.0.1:http`: the port `http` is not a number from 0 to 65535"
        );
        assert_eq!(
            show(":70000"),
            "error: `:70000`: the port `70000` is not a number from 0 to 65535"
        );
        assert_eq!(
            show(""),
            "error: is empty; write host:port, e.g. `127.0.0.1:9252`"
        );
        assert!(
            show("localhost:9252").contains(":9252"),
            "{}",
            show("localhost:9252")
        );
    }

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
