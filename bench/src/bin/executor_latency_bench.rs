//! How long GitLab waits to learn that a job ended, per backend, one job at a time.
//!
//! - `end`: a job whose script prints the time as its last act; the latency is from that
//!   moment to the job's `finished_at` in GitLab (the final update arriving). This is what a
//!   user waits on top of their script, once per job of a pipeline.
//! - `cancel`: a running job (`sleep 300`) is cancelled in GitLab like the UI's button; the
//!   latency is from the cancel to the job's `finished_at`: batchci must notice the request,
//!   stop the script (and its scheduler job) and report.
//!
//! Backends: `shell`, `slurm` on the simulated cluster, and `slurm-real` on the Slurm that
//! `SLURM_CONF` names (started by `ci/slurm up`). Output: a table of p50 and max per backend
//! and scenario, and with `--json FILE` the samples.
//!
//! Usage: `cargo build --release -p batchci -p mock-cluster && cargo run --release -p bench
//! --bin executor-latency-bench -- --backends shell,slurm --runs 5`.

use std::time::{Duration, Instant};

use bench::harness::{Batchci, Cluster, Common, Gitlab, median_and_max};
use clap::Parser;
use mock_gitlab::JobStatus;
use mock_gitlab::api::NewPipeline;
use serde_json::json;

const CLUSTER: &str = "cluster_name = \"latency\"\ntime_scale = 1.0\n\n[[nodes]]\nnames = \"node[01-02]\"\ncpus = 4\nmemory_mb = 16000\n\n[[partitions]]\nname = \"debug\"\nnodes = \"node[01-02]\"\ndefault = true\nmax_time = \"UNLIMITED\"\n";

/// How long GitLab waits to learn that a job ended or was cancelled, per backend.
#[derive(Debug, clap::Parser)]
struct Options {
    /// Backends to measure: shell, slurm (simulated cluster), slurm-real (SLURM_CONF).
    #[arg(long, value_delimiter = ',', default_value = "shell,slurm")]
    backends: Vec<String>,
    /// Jobs per backend and scenario.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// How long the `end` jobs' scripts run, in seconds: one scenario each (`sbatch --wait`
    /// looks at a job after 2, 10, 42, 74... s, so how late it hears depends on this).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    script_seconds: Vec<f64>,
    /// Leave out the `cancel` scenario.
    #[arg(long)]
    no_cancel: bool,
    #[command(flatten)]
    common: Common,
}

/// The job `name` of `backend`, running `script` lines.
fn job_yaml(backend: &str, script: &[&str]) -> String {
    let tag = if backend == "shell" { "shell" } else { "slurm" };
    let parameters = if backend == "shell" {
        ""
    } else {
        "    SCHEDULER_PARAMETERS: \"--mem=100M -t 10\"\n"
    };
    let lines: String = script.iter().map(|l| format!("    - {l}\n")).collect();
    format!(
        "job:\n  tags: [{tag}]\n  variables:\n    GIT_STRATEGY: none\n{parameters}  script:\n{lines}"
    )
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch_seconds(rfc3339: &str) -> Option<f64> {
    let time = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(time.timestamp_micros() as f64 / 1e6)
}

/// Samples of one backend, by scenario (`end-1s`, ..., `cancel`), in seconds.
async fn measure(options: &Options, backend: &str) -> Result<Vec<(String, Vec<f64>)>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let gitlab = Gitlab::start(&[if backend == "shell" { "shell" } else { "slurm" }]).await?;
    let executor = if backend == "shell" { "shell" } else { "slurm" };
    let config = gitlab.write_config(dir.path(), executor, 1, "")?;
    let mut env: Vec<(String, String)> = Vec::new();
    let _cluster = match backend {
        "slurm" => {
            let cluster = Cluster::simulated(&options.common.mock_cluster(), dir.path(), CLUSTER)?;
            env.push(("PATH".into(), cluster.path()));
            env.push((
                "MOCK_CLUSTER_STATE_DIR".into(),
                cluster.state_dir.display().to_string(),
            ));
            Some(cluster)
        }
        "slurm-real" => {
            let conf = std::env::var("SLURM_CONF").map_err(
                |_| "slurm-real needs SLURM_CONF (ci/slurm up; eval \"$(ci/slurm env)\")",
            )?;
            env.push(("SLURM_CONF".into(), conf));
            None
        }
        "shell" => None,
        other => return Err(format!("unknown backend {other:?}")),
    };
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _batchci = Batchci::run(&options.common.batchci(), &config, &env_refs)?;
    let run = |yaml: String| {
        gitlab
            .server
            .create_pipeline(NewPipeline {
                project_id: gitlab.project_id,
                ci_yaml: yaml,
                variables: Vec::new(),
                git_ref: "main".into(),
                ..Default::default()
            })
            .map_err(|e| e.to_string())
            .map(|p| p.jobs[0].id)
    };
    let patience = Duration::from_secs(300);

    let mut scenarios = Vec::new();
    for seconds in &options.script_seconds {
        let mut ends = Vec::new();
        for _ in 0..options.runs {
            let sleep = format!("sleep {seconds}");
            let id = run(job_yaml(
                backend,
                &[&sleep, "echo \"script-end $(date +%s.%N)\""],
            ))?;
            let job = gitlab
                .server
                .wait_for_job(id, patience)
                .await
                .map_err(|e| e.to_string())?;
            if job.status != JobStatus::Success {
                return Err(format!("{backend}: the end job ended {:?}", job.status));
            }
            let trace =
                String::from_utf8_lossy(&gitlab.server.trace(id).map_err(|e| e.to_string())?)
                    .into_owned();
            let script_end = trace
                .lines()
                .find_map(|l| l.trim().strip_prefix("script-end "))
                .and_then(|t| t.trim().parse::<f64>().ok())
                .ok_or(format!("{backend}: no script-end line in the log"))?;
            let finished = job
                .finished_at
                .as_deref()
                .and_then(epoch_seconds)
                .ok_or(format!("{backend}: no finished_at"))?;
            ends.push(finished - script_end);
        }
        scenarios.push((format!("end-{seconds}s"), ends));
    }
    if options.no_cancel {
        return Ok(scenarios);
    }

    let mut cancels = Vec::new();
    for _ in 0..options.runs {
        let id = run(job_yaml(backend, &["echo started", "sleep 300"]))?;
        let deadline = Instant::now() + patience;
        loop {
            let trace = gitlab.server.trace(id).map_err(|e| e.to_string())?;
            if String::from_utf8_lossy(&trace)
                .lines()
                .any(|l| l.trim() == "started")
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{backend}: the cancel job never started"));
            }
            let _ = gitlab
                .server
                .wait_for_trace(id, trace.len() as u64 + 1, Duration::from_secs(5))
                .await;
        }
        let cancelled_at = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        gitlab
            .server
            .cancel_job(id, false)
            .map_err(|e| e.to_string())?;
        let job = gitlab
            .server
            .wait_for_job(id, patience)
            .await
            .map_err(|e| e.to_string())?;
        let finished = job
            .finished_at
            .as_deref()
            .and_then(epoch_seconds)
            .ok_or(format!("{backend}: no finished_at"))?;
        cancels.push(finished - cancelled_at);
    }
    scenarios.push(("cancel".to_string(), cancels));
    Ok(scenarios)
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    println!(
        "{:<12} {:<10} {:>5} {:>9} {:>9}",
        "backend", "scenario", "runs", "p50_s", "max_s"
    );
    let mut results = Vec::new();
    let mut failed = false;
    for backend in &options.backends {
        match measure(&options, backend).await {
            Ok(scenarios) => {
                for (scenario, samples) in &scenarios {
                    let (p50, max) = median_and_max(samples);
                    println!(
                        "{backend:<12} {scenario:<10} {:>5} {p50:>9.2} {max:>9.2}",
                        samples.len()
                    );
                    results.push(json!({
                        "backend": backend,
                        "scenario": scenario,
                        "samples_s": samples,
                        "p50_s": p50,
                        "max_s": max,
                    }));
                }
            }
            Err(error) => {
                eprintln!("{backend}: {error}");
                failed = true;
            }
        }
    }
    if let Err(error) = options.common.write_json(&json!(results)) {
        eprintln!("{error}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
