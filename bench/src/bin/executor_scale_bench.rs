//! How hard one `batchci run` works as the number of concurrent CI jobs grows.
//!
//! For each concurrency N it starts a mock GitLab (in this process) and a simulated Slurm
//! cluster large enough for N jobs, gives one `batchci run` (`concurrent = N`) a pipeline of N
//! Slurm jobs that each run `--job-seconds` seconds, and measures, until every job has
//! finished:
//!
//! - `cpu_seconds`, `cpu_ms_per_job`: batchci's own CPU time (user + system, from
//!   `/proc/<pid>/stat`; the scheduler commands it starts are not counted);
//! - `inotify_instances`, `threads`: the most batchci held at once;
//! - `wall_seconds`: from the pipeline's creation to its last job's end;
//! - `succeeded`: jobs that ended `success` (all of them, or the run is reported as failed).
//!
//! The target: CPU per job stays flat, within 2× of the smallest run, from 10 to 1,000 jobs.
//! Output: a table, and with `--json FILE` one JSON object per concurrency.
//!
//! Usage: `cargo build --release -p batchci -p mock-cluster && cargo run --release -p bench
//! --bin executor-scale-bench -- --jobs 10,100,200,1000`.

use std::time::{Duration, Instant};

use bench::harness::{Batchci, Cluster, Common, Gitlab, cpu_seconds, inotify_instances, threads};
use clap::Parser;
use mock_gitlab::JobStatus;
use mock_gitlab::api::NewPipeline;
use serde_json::json;

/// How hard one `batchci run` works as the number of concurrent CI jobs grows.
#[derive(Debug, clap::Parser)]
struct Options {
    /// Concurrencies to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "10,100,200,1000")]
    jobs: Vec<usize>,
    /// How long each job runs (`sleep`).
    #[arg(long, default_value_t = 20)]
    job_seconds: u64,
    /// The runners' `poll_interval`.
    #[arg(long, default_value = "500ms")]
    poll_interval: String,
    /// How batchci waits for the jobs: `submit` (one `sbatch --wait` each) or `batched` (one
    /// `squeue` per status interval for all), or both, one run each.
    #[arg(long, value_delimiter = ',', default_value = "submit")]
    wait: Vec<String>,
    /// With `--wait batched`: the status interval.
    #[arg(long, default_value = "10s")]
    status_interval: String,
    /// `simulated`, or `real`: the Slurm that `SLURM_CONF` names (`ci/slurm up`), where the
    /// controller's RPCs are counted with `sdiag` before and after each run (nothing else
    /// should use that Slurm meanwhile). Real Slurm runs as many jobs at once as it has CPUs.
    #[arg(long, default_value = "simulated")]
    cluster: String,
    #[command(flatten)]
    common: Common,
}

/// A simulated cluster with room for `jobs` one-core jobs at once.
fn cluster_config(jobs: usize) -> String {
    let nodes = jobs.div_ceil(64).max(1);
    format!(
        "cluster_name = \"scale\"\ntime_scale = 1.0\n\n[[nodes]]\nnames = \"node[001-{nodes:03}]\"\ncpus = 64\nmemory_mb = 64000\n\n[[partitions]]\nname = \"batch\"\nnodes = \"node[001-{nodes:03}]\"\ndefault = true\nmax_time = \"UNLIMITED\"\n"
    )
}

fn pipeline_yaml(jobs: usize, seconds: u64) -> String {
    let mut yaml = String::new();
    for n in 0..jobs {
        yaml.push_str(&format!(
            "job-{n}:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n    SCHEDULER_PARAMETERS: \"--mem=10M\"\n  script:\n    - echo \"$CI_JOB_NAME on $SLURM_JOB_NODELIST\"\n    - sleep {seconds}\n    - echo done\n"
        ));
    }
    yaml
}

struct Measurement {
    wait: String,
    jobs: usize,
    /// The most child processes batchci had at once (waiting submit commands, queries).
    children: usize,
    /// Status queries (`squeue`, `scontrol`, `sacct`) the cluster was asked, per job and
    /// minute of the run (simulated cluster).
    queries_per_job_minute: f64,
    /// The controller's RPCs during the run, by message type, busiest first (real Slurm).
    rpcs: Vec<(String, u64)>,
    succeeded: usize,
    cpu_seconds: f64,
    inotify_instances: usize,
    threads: usize,
    wall_seconds: f64,
}

/// How many processes have `pid` as their parent.
fn children(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok())
                == Some(pid)
        })
        .count()
}

/// How many status queries the simulated cluster in `state_dir` was asked.
fn status_queries(mock_cluster: &std::path::Path, state_dir: &std::path::Path) -> usize {
    let Ok(output) = std::process::Command::new(mock_cluster)
        .args(["calls", "--json", "--state-dir"])
        .arg(state_dir)
        .output()
    else {
        return 0;
    };
    let calls: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    calls.as_array().map_or(0, |calls| {
        calls
            .iter()
            .filter(|c| matches!(c["program"].as_str(), Some("squeue" | "scontrol" | "sacct")))
            .count()
    })
}

/// The controller's RPC counts by message type, from `sdiag`.
fn sdiag_counts() -> Result<std::collections::BTreeMap<String, u64>, String> {
    let output = std::process::Command::new("sdiag")
        .output()
        .map_err(|e| format!("sdiag: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "sdiag: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok(text
        .lines()
        .skip_while(|l| !l.starts_with("Remote Procedure Call statistics by message type"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Remote Procedure Call"))
        .filter_map(|l| {
            let name = l.split_whitespace().next()?.to_string();
            let count = l
                .split("count:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((name, count))
        })
        .collect())
}

async fn measure(options: &Options, wait: &str, jobs: usize) -> Result<Measurement, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let real = options.cluster == "real";
    let cluster = if real {
        None
    } else {
        Some(Cluster::simulated(
            &options.common.mock_cluster(),
            dir.path(),
            &cluster_config(jobs),
        )?)
    };
    let gitlab = Gitlab::start(&["slurm"]).await?;
    let config = gitlab.write_config(
        dir.path(),
        "slurm",
        jobs,
        &format!(
            "  poll_interval = {:?}\n  wait = {wait:?}\n  status_interval = {:?}\n",
            options.poll_interval, options.status_interval
        ),
    )?;
    let mut env: Vec<(String, String)> = Vec::new();
    match &cluster {
        Some(cluster) => {
            env.push(("PATH".into(), cluster.path()));
            env.push((
                "MOCK_CLUSTER_STATE_DIR".into(),
                cluster.state_dir.display().to_string(),
            ));
        }
        None => env.push((
            "SLURM_CONF".into(),
            std::env::var("SLURM_CONF")
                .map_err(|_| "--cluster real needs SLURM_CONF (eval \"$(ci/slurm env)\")")?,
        )),
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rpcs_before = if real {
        sdiag_counts()?
    } else {
        Default::default()
    };
    let batchci = Batchci::run(&options.common.batchci(), &config, &env_refs)?;
    let pid = batchci.pid();

    let started = Instant::now();
    let pipeline = gitlab
        .server
        .create_pipeline(NewPipeline {
            project_id: gitlab.project_id,
            ci_yaml: pipeline_yaml(jobs, options.job_seconds),
            variables: Vec::new(),
            git_ref: "main".into(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let mut most_instances = 0;
    let mut most_threads = 0;
    let mut most_children = 0;
    let limit = Duration::from_secs(options.job_seconds * 4 + 300);
    let mut succeeded = 0;
    loop {
        most_instances = most_instances.max(inotify_instances(pid));
        most_threads = most_threads.max(threads(pid));
        most_children = most_children.max(children(pid));
        let view = gitlab
            .server
            .pipeline(pipeline.id)
            .map_err(|e| e.to_string())?;
        let done = view.jobs.iter().filter(|j| j.status.is_finished()).count();
        if done == jobs {
            succeeded = view
                .jobs
                .iter()
                .filter(|j| j.status == JobStatus::Success)
                .count();
            break;
        }
        if started.elapsed() > limit {
            eprintln!("{jobs} jobs: only {done} finished within {limit:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid).unwrap_or(f64::NAN);
    drop(batchci);
    let queries = cluster.as_ref().map_or(0, |cluster| {
        status_queries(&options.common.mock_cluster(), &cluster.state_dir)
    });
    drop(cluster);
    let mut rpcs: Vec<(String, u64)> = if real {
        let after = sdiag_counts()?;
        after
            .into_iter()
            .map(|(name, count)| {
                let before = rpcs_before.get(&name).copied().unwrap_or(0);
                (name, count.saturating_sub(before))
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    } else {
        Vec::new()
    };
    rpcs.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    Ok(Measurement {
        wait: wait.to_string(),
        jobs,
        children: most_children,
        queries_per_job_minute: queries as f64 / jobs as f64 / (wall_seconds / 60.0),
        rpcs,
        succeeded,
        cpu_seconds: cpu,
        inotify_instances: most_instances,
        threads: most_threads,
        wall_seconds,
    })
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    println!(
        "{:>8} {:>6} {:>9} {:>9} {:>11} {:>8} {:>8} {:>9} {:>12} {:>9}",
        "wait",
        "jobs",
        "succeeded",
        "cpu_s",
        "cpu_ms/job",
        "inotify",
        "threads",
        "children",
        "queries/j/m",
        "wall_s"
    );
    let mut results = Vec::new();
    let mut failed = false;
    for wait in &options.wait {
        for &jobs in &options.jobs {
            match measure(&options, wait, jobs).await {
                Ok(m) => {
                    let per_job = m.cpu_seconds * 1000.0 / m.jobs as f64;
                    println!(
                        "{:>8} {:>6} {:>9} {:>9.2} {:>11.1} {:>8} {:>8} {:>9} {:>12.2} {:>9.1}",
                        m.wait,
                        m.jobs,
                        m.succeeded,
                        m.cpu_seconds,
                        per_job,
                        m.inotify_instances,
                        m.threads,
                        m.children,
                        m.queries_per_job_minute,
                        m.wall_seconds
                    );
                    failed |= m.succeeded != m.jobs;
                    if !m.rpcs.is_empty() {
                        let total: u64 = m.rpcs.iter().map(|(_, n)| n).sum();
                        let top: Vec<String> = m
                            .rpcs
                            .iter()
                            .map(|(name, n)| format!("{name} {n}"))
                            .collect();
                        println!(
                            "         controller RPCs: {total} in all, {:.1} per job: {}",
                            total as f64 / m.jobs as f64,
                            top.join(", ")
                        );
                    }
                    results.push(json!({
                        "cluster": options.cluster,
                        "controller_rpcs": m.rpcs.iter().map(|(name, n)| json!({"type": name, "count": n})).collect::<Vec<_>>(),
                        "wait": m.wait,
                        "jobs": m.jobs,
                        "succeeded": m.succeeded,
                        "job_seconds": options.job_seconds,
                        "poll_interval": options.poll_interval,
                        "cpu_seconds": m.cpu_seconds,
                        "cpu_ms_per_job": per_job,
                        "inotify_instances": m.inotify_instances,
                        "threads": m.threads,
                        "children": m.children,
                        "status_queries_per_job_minute": m.queries_per_job_minute,
                        "wall_seconds": m.wall_seconds,
                    }));
                }
                Err(error) => {
                    eprintln!("{wait} {jobs} jobs: {error}");
                    failed = true;
                }
            }
        }
    }
    for wait in &options.wait {
        let per_job: Vec<f64> = results
            .iter()
            .filter(|r| r["wait"].as_str() == Some(wait))
            .filter_map(|r| r["cpu_ms_per_job"].as_f64())
            .collect();
        if let (Some(low), Some(high)) = (
            per_job.iter().copied().reduce(f64::min),
            per_job.iter().copied().reduce(f64::max),
        ) {
            let ratio = high / low;
            let verdict = if ratio <= 2.0 { "flat" } else { "NOT flat" };
            println!("{wait}: cpu per job, largest / smallest: {ratio:.2} ({verdict}; target ≤ 2)");
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
