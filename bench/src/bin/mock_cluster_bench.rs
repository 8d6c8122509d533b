//! Speed targets of the simulated cluster, printed as one JSON object:
//!
//! - `sbatch_round_trip`: median wall time of the fake `sbatch` (a new process that connects,
//!   submits and records the call), next to real `sbatch` when a real Slurm answers
//!   (`SLURM_CONF`, default `/tmp/batchci-slurm/slurm.conf`);
//! - `submissions_per_second`: submissions through the daemon protocol from several clients;
//! - `queued_jobs`: 10,000 held jobs in the queue, and how long listing them takes;
//! - `time_scale_accuracy`: at time_scale 1000, a chain of jobs on one CPU each killed at its
//!   time limit: the largest error of a job's recorded run time against its limit and of the
//!   whole chain against the sum of the limits, whether the events keep their order, and how
//!   many real milliseconds after each end a polling client saw it.
//!
//! Usage: `cargo run --release -p bench --bin mock-cluster-bench` (builds `mock-cluster` first
//! with `cargo build --release -p mock-cluster`, or set MOCK_CLUSTER_BIN).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mock_cluster::client::Conn;
use mock_cluster::model::{JobKind, JobState};
use mock_cluster::protocol::{Request, Response};
use serde_json::json;

fn mock_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOCK_CLUSTER_BIN") {
        return PathBuf::from(p);
    }
    bench::harness::workspace_binary("mock-cluster")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn start_cluster(bin: &Path, dir: &Path, toml: &str) {
    let cfg = dir.join("cluster.toml");
    std::fs::write(&cfg, toml).expect("write config");
    let out = Command::new(bin)
        .arg("env")
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("env");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin)
        .arg("start")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stop_cluster(bin: &Path, dir: &Path) {
    let _ = Command::new(bin)
        .arg("stop")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output();
}

const BIG_CLUSTER: &str = r#"
cluster_name = "bench"
time_scale = 1.0
[[nodes]]
names = "node[001-100]"
cpus = 64
memory_mb = 256000
[[partitions]]
name = "debug"
nodes = "node[001-100]"
default = true
"#;

/// Times `runs` held submissions; the first refusal ends it with the command's words.
fn time_sbatch(
    program: &Path,
    envs: &[(&str, &str)],
    runs: usize,
    cwd: &Path,
) -> Result<Vec<f64>, String> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(program)
            .args(["--hold", "-J", "bench-rt", "--parsable", "--wrap", "true"])
            .envs(envs.iter().copied())
            .current_dir(cwd)
            .output()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if !out.status.success() {
            return Err(format!(
                "{}: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(times)
}

/// The simulated cluster must answer: without it there is nothing to measure.
fn fake_times(result: Result<Vec<f64>, String>) -> Vec<f64> {
    result.unwrap_or_else(|error| {
        eprintln!("mock-cluster-bench: {error}");
        std::process::exit(1)
    })
}

fn round_trip(bin: &Path) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    start_cluster(bin, tmp.path(), BIG_CLUSTER);
    let state = tmp.path().join("state");
    let state_s = state.display().to_string();
    let fake = state.join("bin").join("sbatch");
    let runs = 300;
    fake_times(time_sbatch(
        &fake,
        &[("MOCK_CLUSTER_STATE_DIR", &state_s)],
        20,
        tmp.path(),
    ));
    let fake_ms = median(fake_times(time_sbatch(
        &fake,
        &[("MOCK_CLUSTER_STATE_DIR", &state_s)],
        runs,
        tmp.path(),
    )));
    stop_cluster(bin, tmp.path());
    let conf =
        std::env::var("SLURM_CONF").unwrap_or_else(|_| "/tmp/batchci-slurm/slurm.conf".into());
    let real = Path::new("/usr/bin/sbatch");
    // A configuration left behind by a stopped Slurm is no Slurm: its refusal is noted, not
    // fatal.
    let (real_ms, real_problem) = if real.exists() && Path::new(&conf).exists() {
        let real_runs = 50;
        let times = time_sbatch(real, &[("SLURM_CONF", &conf)], real_runs, tmp.path());
        let _ = Command::new("/usr/bin/scancel")
            .args(["-n", "bench-rt"])
            .env("SLURM_CONF", &conf)
            .output();
        match times {
            Ok(times) => (Some(median(times)), None),
            Err(problem) => (None, Some(problem)),
        }
    } else {
        (None, None)
    };
    json!({
        "fake_median_ms": fake_ms,
        "fake_runs": runs,
        "real_median_ms": real_ms,
        "real_problem": real_problem,
        "ratio_fake_to_real": real_ms.map(|r| fake_ms / r),
        "target_ms": 2.0,
    })
}

fn held_request(name: &str, cwd: &str) -> mock_cluster::model::JobRequest {
    let r = mock_cluster::cli::slurm::ResourceOpts {
        hold: true,
        name: Some(name.into()),
        ..Default::default()
    };
    let mut req = mock_cluster::cli::slurm::build_request(
        JobKind::Batch,
        &r,
        name,
        Default::default(),
        "(null)".into(),
    );
    req.work_dir = cwd.into();
    req.script = Some("#!/bin/sh\ntrue\n".into());
    req
}

fn throughput(bin: &Path) -> (serde_json::Value, serde_json::Value) {
    let tmp = tempfile::tempdir().expect("tempdir");
    start_cluster(bin, tmp.path(), BIG_CLUSTER);
    let state = tmp.path().join("state");
    let cwd = tmp.path().display().to_string();
    let clients = 8;
    let per = 1250;
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let state = &state;
            let cwd = &cwd;
            s.spawn(move || {
                let mut conn = Conn::connect(state).expect("connect");
                for i in 0..per {
                    let req = held_request(&format!("q{c}-{i}"), cwd);
                    match conn.call(&Request::Submit {
                        req: Box::new(req),
                        wait: false,
                    }) {
                        Ok(Response::Submitted { .. }) => {}
                        other => panic!("submit failed: {other:?}"),
                    }
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let total = clients * per;
    let mut conn = Conn::connect(&state).expect("connect");
    let t = Instant::now();
    let jobs = match conn.call(&Request::Jobs {
        ids: None,
        accounting: false,
        status_command: true,
    }) {
        Ok(Response::Jobs { jobs, .. }) => jobs,
        other => panic!("jobs: {other:?}"),
    };
    let list_ms = t.elapsed().as_secs_f64() * 1000.0;
    let pending = jobs
        .iter()
        .filter(|j| j.run.state == JobState::Pending)
        .count();
    // A fake squeue over the full queue, as a person would run it.
    let t = Instant::now();
    let out = Command::new(state.join("bin").join("squeue"))
        .args(["-h", "-o", "%i %T %r"])
        .env("MOCK_CLUSTER_STATE_DIR", &state)
        .output()
        .expect("squeue");
    let squeue_ms = t.elapsed().as_secs_f64() * 1000.0;
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    // And a submission with 10,000 jobs queued.
    let fake = state.join("bin").join("sbatch");
    let state_s = state.display().to_string();
    let with_queue_ms = median(fake_times(time_sbatch(
        &fake,
        &[("MOCK_CLUSTER_STATE_DIR", &state_s)],
        50,
        tmp.path(),
    )));
    stop_cluster(bin, tmp.path());
    (
        json!({ "submissions": total, "clients": clients, "seconds": secs, "per_second": total as f64 / secs, "target": 2000 }),
        json!({
            "queued": pending,
            "list_via_protocol_ms": list_ms,
            "squeue_all_ms": squeue_ms,
            "squeue_lines": lines,
            "fake_sbatch_median_ms_with_queue": with_queue_ms,
            "target": 10000,
        }),
    )
}

const FAST_CLUSTER: &str = r#"
cluster_name = "bench"
time_scale = 1000.0
kill_wait = 30
[[nodes]]
names = "n1"
cpus = 1
memory_mb = 1000
[[partitions]]
name = "debug"
nodes = "n1"
default = true
"#;

fn time_scale_accuracy(bin: &Path) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    start_cluster(bin, tmp.path(), FAST_CLUSTER);
    let state = tmp.path().join("state");
    let cwd = tmp.path().display().to_string();
    let scale = 1000.0;
    // A chain on a one-CPU node: each job waits for the previous one's time limit.
    let limits_min = [5u64, 10, 3, 8];
    let mut conn = Conn::connect(&state).expect("connect");
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for (i, m) in limits_min.iter().enumerate() {
        let mut req = held_request(&format!("chain{i}"), &cwd);
        req.hold = false;
        req.time_limit = Some(mock_cluster::units::TimeLimit::Seconds(m * 60));
        req.script = Some("#!/bin/sh\nexec sleep 100000\n".into());
        match conn.call(&Request::Submit {
            req: Box::new(req),
            wait: false,
        }) {
            Ok(Response::Submitted { id }) => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    // Observe from outside: poll the states and note the real time of each transition. The
    // cluster's own records (start and end in simulated time) are what the model promises; the
    // outside view adds how long a client takes to see an event.
    let mut ended_seen: Vec<Option<f64>> = vec![None; ids.len()];
    let mut records: Vec<(f64, Option<f64>, Option<f64>)> = vec![(0.0, None, None); ids.len()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended_seen.iter().any(Option::is_none) && Instant::now() < deadline {
        let jobs = match conn.call(&Request::Jobs {
            ids: Some(ids.clone()),
            accounting: true,
            status_command: false,
        }) {
            Ok(Response::Jobs { jobs, .. }) => jobs,
            other => panic!("{other:?}"),
        };
        let seen_at = t0.elapsed().as_secs_f64();
        for (k, j) in jobs.iter().enumerate() {
            records[k] = (j.submit_time, j.run.start_time, j.run.end_time);
            if j.run.state.is_finished() && ended_seen[k].is_none() {
                ended_seen[k] = Some(seen_at);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let submitted = records.first().map_or(f64::NAN, |r| r.0);
    let mut events = Vec::new();
    let mut max_rel_err: f64 = 0.0;
    let mut max_lag_ms: f64 = 0.0;
    let mut in_order = true;
    let mut last_end = submitted;
    for (k, m) in limits_min.iter().enumerate() {
        let limit = (*m * 60) as f64;
        let (_, start, end) = records[k];
        let (start, end) = (start.unwrap_or(f64::NAN), end.unwrap_or(f64::NAN));
        // The limit as the cluster kept it, and how long the job waited for the one before.
        let rel = ((end - start) - limit).abs() / limit;
        max_rel_err = max_rel_err.max(rel);
        in_order &= start >= last_end && end > start;
        // Seen from outside, in real milliseconds after the event's real moment.
        let lag_ms =
            ended_seen[k].map_or(f64::NAN, |seen| (seen - (end - submitted) / scale) * 1000.0);
        max_lag_ms = max_lag_ms.max(lag_ms);
        events.push(json!({
            "job": ids[k],
            "limit_sim_s": limit,
            "start_sim_s": start - submitted,
            "end_sim_s": end - submitted,
            "waited_for_previous_sim_s": start - last_end,
            "relative_error": rel,
            "seen_after_real_ms": lag_ms,
        }));
        last_end = end;
    }
    // The whole chain against the sum of its limits: every job's start waited for the end of
    // the one before, so the scheduler's own delays add up here.
    let total: f64 = limits_min.iter().map(|m| (m * 60) as f64).sum();
    let chain_error = ((last_end - submitted) - total).abs() / total;
    stop_cluster(bin, tmp.path());
    json!({
        "time_scale": scale,
        "events": events,
        "max_relative_error": max_rel_err.max(chain_error),
        "chain_relative_error": chain_error,
        "max_seen_after_real_ms": max_lag_ms,
        "in_order": in_order,
        "target_relative_error": 0.01,
    })
}

fn main() {
    let bin = mock_bin();
    let rt = round_trip(&bin);
    let (tp, queue) = throughput(&bin);
    let ts = time_scale_accuracy(&bin);
    let report = json!({
        "mock_cluster_binary": bin.display().to_string(),
        "sbatch_round_trip": rt,
        "submissions_per_second": tp,
        "queued_jobs": queue,
        "time_scale_accuracy": ts,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
}
