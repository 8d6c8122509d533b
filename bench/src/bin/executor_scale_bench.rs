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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mock_gitlab::api::{NewPipeline, NewRunner};
use mock_gitlab::{JobStatus, MockConfig, MockGitlab};
use serde_json::json;

struct Options {
    jobs: Vec<usize>,
    job_seconds: u64,
    poll_interval: String,
    batchci: PathBuf,
    mock_cluster: PathBuf,
    json: Option<PathBuf>,
}

const USAGE: &str = "usage: executor-scale-bench [--jobs 10,100,200,1000] [--job-seconds 20] \
[--poll-interval 500ms] [--batchci PATH] [--mock-cluster PATH] [--json FILE]";

fn workspace_binary(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for profile in ["release", "debug"] {
        let path = root.join("target").join(profile).join(name);
        if path.exists() {
            return path;
        }
    }
    eprintln!("{name} not found: run `cargo build --release -p {name}` first");
    std::process::exit(2);
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        jobs: vec![10, 100, 200, 1000],
        job_seconds: 20,
        poll_interval: "500ms".into(),
        batchci: PathBuf::new(),
        mock_cluster: PathBuf::new(),
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--jobs" => {
                options.jobs = value()?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|_| format!("--jobs: {n:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--job-seconds" => {
                options.job_seconds = value()?.parse().map_err(|_| "--job-seconds")?
            }
            "--poll-interval" => options.poll_interval = value()?,
            "--batchci" => options.batchci = value()?.into(),
            "--mock-cluster" => options.mock_cluster = value()?.into(),
            "--json" => options.json = Some(value()?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.batchci.as_os_str().is_empty() {
        options.batchci = workspace_binary("batchci");
    }
    if options.mock_cluster.as_os_str().is_empty() {
        options.mock_cluster = workspace_binary("mock-cluster");
    }
    Ok(options)
}

/// CPU time (user + system) of one process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_second)
}

fn inotify_instances(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:inotify")
        .count()
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count())
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
    jobs: usize,
    succeeded: usize,
    cpu_seconds: f64,
    inotify_instances: usize,
    threads: usize,
    wall_seconds: f64,
}

async fn measure(options: &Options, jobs: usize) -> Result<Measurement, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state_dir = dir.path().join("cluster");
    let cluster_toml = dir.path().join("cluster.toml");
    std::fs::write(&cluster_toml, cluster_config(jobs)).map_err(|e| e.to_string())?;
    let env = Command::new(&options.mock_cluster)
        .args(["env", "--config"])
        .arg(&cluster_toml)
        .arg("--state-dir")
        .arg(&state_dir)
        .output()
        .map_err(|e| format!("mock-cluster env: {e}"))?;
    if !env.status.success() {
        return Err(String::from_utf8_lossy(&env.stderr).into_owned());
    }

    let mut config = MockConfig::default();
    config.settings.trace_update_interval = 3;
    let gitlab = MockGitlab::start(config).await.map_err(|e| e.to_string())?;
    let project = gitlab
        .create_project("scale", None)
        .map_err(|e| e.to_string())?;
    let runner = gitlab.register_runner(NewRunner {
        description: "scale".into(),
        tags: vec!["slurm".into()],
        ..Default::default()
    });
    let batchci_toml = dir.path().join("config.toml");
    std::fs::write(
        &batchci_toml,
        format!(
            "concurrent = {jobs}\ncheck_interval = 1\nstate_dir = {state:?}\n\n[[runners]]\nname = \"scale\"\nurl = {url:?}\ntoken = {token:?}\nexecutor = \"slurm\"\nbuilds_dir = {builds:?}\n  [runners.batch]\n  env_vars = [\"MOCK_CLUSTER_STATE_DIR\"]\n  poll_interval = {poll:?}\n",
            state = dir.path().join("state").display().to_string(),
            url = gitlab.url(),
            token = runner.token,
            builds = dir.path().join("builds").display().to_string(),
            poll = options.poll_interval,
        ),
    )
    .map_err(|e| e.to_string())?;

    let path = format!(
        "{}:{}",
        state_dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut batchci = Command::new(&options.batchci)
        .args(["run", "--config"])
        .arg(&batchci_toml)
        .env("PATH", path)
        .env("MOCK_CLUSTER_STATE_DIR", &state_dir)
        .env("BATCHCI_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("batchci: {e}"))?;
    let pid = batchci.id();

    let started = Instant::now();
    let pipeline = gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: pipeline_yaml(jobs, options.job_seconds),
            variables: Vec::new(),
            git_ref: "main".into(),
        })
        .map_err(|e| e.to_string())?;
    let mut most_instances = 0;
    let mut most_threads = 0;
    let limit = Duration::from_secs(options.job_seconds * 4 + 300);
    let mut succeeded = 0;
    loop {
        most_instances = most_instances.max(inotify_instances(pid));
        most_threads = most_threads.max(threads(pid));
        let view = gitlab.pipeline(pipeline.id).map_err(|e| e.to_string())?;
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
    stop(&mut batchci);
    let _ = Command::new(&options.mock_cluster)
        .args(["stop", "--state-dir"])
        .arg(&state_dir)
        .output();
    Ok(Measurement {
        jobs,
        succeeded,
        cpu_seconds: cpu,
        inotify_instances: most_instances,
        threads: most_threads,
        wall_seconds,
    })
}

fn stop(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::main]
async fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    println!(
        "{:>6} {:>9} {:>11} {:>12} {:>8} {:>8} {:>9}",
        "jobs", "succeeded", "cpu_s", "cpu_ms/job", "inotify", "threads", "wall_s"
    );
    let mut results = Vec::new();
    let mut failed = false;
    for &jobs in &options.jobs {
        match measure(&options, jobs).await {
            Ok(m) => {
                let per_job = m.cpu_seconds * 1000.0 / m.jobs as f64;
                println!(
                    "{:>6} {:>9} {:>11.2} {:>12.1} {:>8} {:>8} {:>9.1}",
                    m.jobs,
                    m.succeeded,
                    m.cpu_seconds,
                    per_job,
                    m.inotify_instances,
                    m.threads,
                    m.wall_seconds
                );
                failed |= m.succeeded != m.jobs;
                results.push(json!({
                    "jobs": m.jobs,
                    "succeeded": m.succeeded,
                    "job_seconds": options.job_seconds,
                    "poll_interval": options.poll_interval,
                    "cpu_seconds": m.cpu_seconds,
                    "cpu_ms_per_job": per_job,
                    "inotify_instances": m.inotify_instances,
                    "threads": m.threads,
                    "wall_seconds": m.wall_seconds,
                }));
            }
            Err(error) => {
                eprintln!("{jobs} jobs: {error}");
                failed = true;
            }
        }
    }
    let per_job: Vec<f64> = results
        .iter()
        .filter_map(|r| r["cpu_ms_per_job"].as_f64())
        .collect();
    if let (Some(low), Some(high)) = (
        per_job.iter().copied().reduce(f64::min),
        per_job.iter().copied().reduce(f64::max),
    ) {
        let ratio = high / low;
        let verdict = if ratio <= 2.0 { "flat" } else { "NOT flat" };
        println!("cpu per job, largest / smallest: {ratio:.2} ({verdict}; target ≤ 2)");
    }
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&results).unwrap_or_default();
        if let Err(error) = std::fs::write(path, text + "\n") {
            eprintln!("cannot write {}: {error}", path.display());
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
