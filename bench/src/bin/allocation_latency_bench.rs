//! From GitLab handing a job out to the first line of its `before_script` running on the
//! compute node, split into batchci's own share and the scheduler's.
//!
//! One `batchci run` per backend takes jobs from a mock GitLab (in this process). Each job has
//! `before_script: [echo "first-line $(date +%s.%N)"]`, so its log says when its first line
//! ran. A directory put first on batchci's `PATH` holds two wrappers that note the time and
//! then run the real command found on the rest of `PATH`: `sbatch` (the fake one of the
//! simulated cluster or real Slurm's) and `git`. Per job:
//!
//! - `total`: GitLab's `started_at` (the job handed out) → the first line;
//! - `batchci`: `started_at` → the moment the job's `sbatch` was started (sources, the stage
//!   script, the submit command); with the shell executor there is no scheduler and this is
//!   the whole `total`, the floor of any executor;
//! - `scheduler`: that `sbatch` → the first line (submission, queueing, start on the node);
//! - `git`: with `GIT_STRATEGY: clone` of a small repository served by the mock GitLab, from
//!   the first `git` call to the end of the last (inside `batchci`'s share, and reported apart
//!   from it);
//! - with the shell executor, also `bash --login` alone, started as that executor starts it
//!   (`login_shell`): the host's login profile is part of the floor (`pyenv init` in root's
//!   profile, for one, costs a quarter of a second).
//!
//! Scenarios: `single` (one job per pipeline, `GIT_STRATEGY: none`), `together-K` (K jobs in
//! one pipeline, submitted at once) and `clone` (one job, `GIT_STRATEGY: clone`). A warm-up
//! job per backend is not counted. On real Slurm the pipelines are spread over 2 s
//! (`--spread-seconds`): it starts jobs on the ticks of its scheduling loop, and pipelines run
//! back to back would all be submitted at the same point of that cycle. Target: batchci's share ≤ 150 ms p50 on an idle cluster.
//!
//! Backends: `shell`, `slurm` (simulated cluster), `slurm-real` (the Slurm that `SLURM_CONF`
//! names, started by `ci/slurm up`). Output: a table of p50 and max in ms, and with
//! `--json FILE` one object per backend and scenario with every sample.
//!
//! Usage: `cargo build --release -p batchci -p mock-cluster && cargo run --release -p bench
//! --bin allocation-latency-bench -- --backends shell,slurm,slurm-real --runs 10`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bench::harness::{
    Batchci, Cluster, Common, Gitlab, epoch_seconds, find_on_path, median_and_max,
};
use clap::Parser;
use mock_gitlab::JobStatus;
use mock_gitlab::api::NewPipeline;
use serde_json::json;

const CLUSTER: &str = "cluster_name = \"allocation\"\ntime_scale = 1.0\n\n[[nodes]]\nnames = \"node[01-02]\"\ncpus = 4\nmemory_mb = 16000\n\n[[partitions]]\nname = \"debug\"\nnodes = \"node[01-02]\"\ndefault = true\nmax_time = \"UNLIMITED\"\n";

/// batchci's share, p50, on an idle cluster (the target), in seconds.
const TARGET_BATCHCI_S: f64 = 0.150;

/// From GitLab handing a job out to its first line, split into batchci's and the scheduler's.
#[derive(Debug, clap::Parser)]
struct Options {
    /// Backends to measure: shell, slurm (simulated cluster), slurm-real (SLURM_CONF).
    #[arg(long, value_delimiter = ',', default_value = "shell,slurm")]
    backends: Vec<String>,
    /// Pipelines per backend and scenario.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Jobs submitted together in one pipeline for the `together-K` scenario (1: leave it
    /// out).
    #[arg(long, default_value_t = 2)]
    together: usize,
    /// Leave out the `clone` scenario (GIT_STRATEGY: clone of a small repository).
    #[arg(long)]
    no_clone: bool,
    /// Jobs run first and not counted, per backend.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Start each pipeline a different fraction of this many seconds after the previous one
    /// ended (default: 2 on real Slurm, 0 elsewhere). Real Slurm starts jobs on the ticks of
    /// its scheduling loop, so a job's wait depends on when in the cycle it was submitted;
    /// pipelines run back to back would all land at the same point of it.
    #[arg(long)]
    spread_seconds: Option<f64>,
    #[command(flatten)]
    common: Common,
}

/// One job's times, in seconds.
#[derive(Debug, Clone, Copy)]
struct Sample {
    job: u64,
    total: f64,
    batchci: f64,
    scheduler: Option<f64>,
    git: Option<f64>,
    /// From `started_at` to the first `git` call.
    before_git: Option<f64>,
}

/// What one backend's measurements share.
struct Setup {
    gitlab: Gitlab,
    backend: String,
    /// Where the wrappers note when `sbatch` started and how long `git` ran.
    sbatch_log: PathBuf,
    git_log: PathBuf,
}

/// A small repository (a README, a source file, a CI file; two commits) in `dir`.
fn small_repo(dir: &Path) -> Result<PathBuf, String> {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("src")).map_err(|e| e.to_string())?;
    let git = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.invalid",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
            .map_err(|e| format!("git: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    git(&["init", "--quiet", "--initial-branch=main"])?;
    let write = |name: &str, text: String| {
        std::fs::write(repo.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("README.md", "# bench\n\nA small project.\n".repeat(20))?;
    write(".gitlab-ci.yml", "job:\n  script: [make]\n".into())?;
    write(
        "src/main.c",
        (0..200)
            .map(|n| format!("int f{n}(int x) {{ return x * {n} + 1; }}\n"))
            .collect(),
    )?;
    git(&["add", "-A"])?;
    git(&["commit", "--quiet", "-m", "first"])?;
    write("Makefile", "all:\n\tcc -c src/main.c\n".into())?;
    git(&["add", "-A"])?;
    git(&["commit", "--quiet", "-m", "second"])?;
    Ok(repo)
}

/// Writes an executable `sh` script.
fn write_script(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `dir/wrappers` with `git` and (for Slurm) `sbatch` that note their times in `dir` and run
/// the real programs found on `path`. Returns the wrappers' directory.
fn wrappers(dir: &Path, path: &str, slurm: bool) -> Result<PathBuf, String> {
    let bin = dir.join("wrappers");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let git = find_on_path("git", path).ok_or("git is not on PATH")?;
    write_script(
        &bin.join("git"),
        &format!(
            "#!/bin/sh\nstart=$(date +%s.%N)\n{git} \"$@\"\nstatus=$?\necho \"$start $(date +%s.%N) $*\" >> {log}\nexit $status\n",
            git = quote(&git),
            log = quote(&dir.join("git.log")),
        ),
    )?;
    if slurm {
        let sbatch = find_on_path("sbatch", path).ok_or("sbatch is not on PATH")?;
        write_script(
            &bin.join("sbatch"),
            &format!(
                "#!/bin/sh\necho \"$(date +%s.%N) $*\" >> {log}\nexec {sbatch} \"$@\"\n",
                sbatch = quote(&sbatch),
                log = quote(&dir.join("sbatch.log")),
            ),
        )?;
    }
    Ok(bin)
}

/// The job `name` of `backend`: its first line prints the time.
fn job_yaml(backend: &str, name: &str, git_strategy: &str) -> String {
    let tag = if backend == "shell" { "shell" } else { "slurm" };
    let parameters = if backend == "shell" {
        ""
    } else {
        "    SCHEDULER_PARAMETERS: \"--mem=100M -t 10\"\n"
    };
    format!(
        "{name}:\n  tags: [{tag}]\n  variables:\n    GIT_STRATEGY: {git_strategy}\n{parameters}  before_script:\n    - echo \"first-line $(date +%s.%N)\"\n  script:\n    - echo done\n"
    )
}

/// The earliest time noted for `--job-name=ci-job-<job>` in the `sbatch` log.
fn sbatch_time(log: &str, job: u64) -> Option<f64> {
    let name = format!("--job-name=ci-job-{job}");
    log.lines()
        .filter(|line| line.split_whitespace().any(|word| word == name))
        .filter_map(|line| line.split_whitespace().next()?.parse::<f64>().ok())
        .reduce(f64::min)
}

/// When the first `git` call that began and ended within `from..to` began, and when the last
/// ended: the sources, with what the wrappers cost between the calls.
fn git_span(log: &str, from: f64, to: f64) -> Option<(f64, f64)> {
    let spans: Vec<(f64, f64)> = log
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .filter(|&(start, end)| start >= from && end <= to)
        .collect();
    let first = spans.iter().map(|s| s.0).reduce(f64::min)?;
    let last = spans.iter().map(|s| s.1).reduce(f64::max)?;
    Some((first, last))
}

/// Runs one pipeline of `jobs` jobs and returns their samples.
async fn pipeline(setup: &Setup, jobs: usize, git_strategy: &str) -> Result<Vec<Sample>, String> {
    let backend = setup.backend.as_str();
    let yaml: String = (0..jobs)
        .map(|n| job_yaml(backend, &format!("job-{n}"), git_strategy))
        .collect();
    let created = setup
        .gitlab
        .server
        .create_pipeline(NewPipeline {
            project_id: setup.gitlab.project_id,
            ci_yaml: yaml,
            variables: Vec::new(),
            git_ref: "main".into(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let mut finished = Vec::new();
    for job in &created.jobs {
        let view = setup
            .gitlab
            .server
            .wait_for_job(job.id, Duration::from_secs(300))
            .await
            .map_err(|e| e.to_string())?;
        finished.push(view);
    }
    let sbatch_log = std::fs::read_to_string(&setup.sbatch_log).unwrap_or_default();
    let git_log = std::fs::read_to_string(&setup.git_log).unwrap_or_default();
    let mut samples = Vec::new();
    for job in finished {
        let trace = String::from_utf8_lossy(
            &setup
                .gitlab
                .server
                .trace(job.id)
                .map_err(|e| e.to_string())?,
        )
        .into_owned();
        if job.status != JobStatus::Success {
            return Err(format!(
                "{backend}: job {} ended {:?}:\n{trace}",
                job.id, job.status
            ));
        }
        let first_line = trace
            .lines()
            .find_map(|l| l.trim().strip_prefix("first-line "))
            .and_then(|t| t.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                format!(
                    "{backend}: job {} succeeded without a first-line line in its log:\n{trace:?}",
                    job.id
                )
            })?;
        let started = job
            .started_at
            .as_deref()
            .and_then(epoch_seconds)
            .ok_or(format!("{backend}: no started_at"))?;
        let submitted = if backend == "shell" {
            None
        } else {
            Some(sbatch_time(&sbatch_log, job.id).ok_or(format!(
                "{backend}: the sbatch wrapper noted no call for job {}",
                job.id
            ))?)
        };
        let end_of_batchci = submitted.unwrap_or(first_line);
        let git = if git_strategy == "none" || jobs > 1 {
            None
        } else {
            git_span(&git_log, started - 0.001, end_of_batchci)
        };
        samples.push(Sample {
            job: job.id,
            total: first_line - started,
            batchci: end_of_batchci - started,
            scheduler: submitted.map(|s| first_line - s),
            git: git.map(|(first, last)| last - first),
            before_git: git.map(|(first, _)| first - started),
        });
    }
    Ok(samples)
}

/// How long `bash --login` takes to run its first line, started as the shell executor starts
/// it (an empty environment but for a few basics): the host's login profile, part of the
/// shell executor's floor.
fn login_shell_seconds() -> Result<f64, String> {
    use std::io::Write;
    let mut command = Command::new("/bin/bash");
    command
        .arg("--login")
        .env_clear()
        .env("SHELL", "/bin/bash")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for key in ["HOME", "USER", "LOGNAME", "LANG"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    let before = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let mut child = command.spawn().map_err(|e| format!("/bin/bash: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"echo \"first-line $(date +%s.%N)\"\n");
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let first_line = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("first-line ")?.parse::<f64>().ok())
        .ok_or("bash --login printed no first line")?;
    Ok(first_line - before)
}

/// Jobs in real Slurm's queue now (`squeue -h`), to tell whether it was idle.
fn real_queue_length() -> Option<usize> {
    let output = Command::new("squeue")
        .args(["-h", "-o", "%i"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).lines().count())
}

/// One backend's scenarios: name, git strategy, jobs per pipeline, samples.
type Scenarios = Vec<(String, String, usize, Vec<Sample>)>;

/// What one backend gave: its scenarios, real Slurm's queue at the start, `bash --login`.
struct Measured {
    scenarios: Scenarios,
    queued: Option<usize>,
    login_shell: Vec<f64>,
}

async fn measure(options: &Options, backend: &str) -> Result<Measured, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let repo = small_repo(dir.path())?;
    let tag = if backend == "shell" { "shell" } else { "slurm" };
    let gitlab = Gitlab::start_with_repo(&[tag], Some(&repo)).await?;
    let executor = if backend == "shell" { "shell" } else { "slurm" };
    let config = gitlab.write_config(dir.path(), executor, options.together.max(1), "")?;
    let mut env: Vec<(String, String)> = Vec::new();
    let inherited = std::env::var("PATH").unwrap_or_default();
    let (cluster, path) = match backend {
        "slurm" => {
            let cluster = Cluster::simulated(&options.common.mock_cluster(), dir.path(), CLUSTER)?;
            env.push((
                "MOCK_CLUSTER_STATE_DIR".into(),
                cluster.state_dir.display().to_string(),
            ));
            let path = cluster.path();
            (Some(cluster), path)
        }
        "slurm-real" => {
            let conf = std::env::var("SLURM_CONF").map_err(
                |_| "slurm-real needs SLURM_CONF (ci/slurm up; eval \"$(ci/slurm env)\")",
            )?;
            env.push(("SLURM_CONF".into(), conf));
            (None, inherited)
        }
        "shell" => (None, inherited),
        other => return Err(format!("unknown backend {other:?}")),
    };
    let bin = wrappers(dir.path(), &path, backend != "shell")?;
    env.push(("PATH".into(), format!("{}:{path}", bin.display())));
    let queued = (backend == "slurm-real").then(real_queue_length).flatten();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let batchci = Batchci::run(&options.common.batchci(), &config, &env_refs)?;
    let setup = Setup {
        gitlab,
        backend: backend.to_string(),
        sbatch_log: dir.path().join("sbatch.log"),
        git_log: dir.path().join("git.log"),
    };

    for _ in 0..options.warmup {
        pipeline(&setup, 1, "none").await?;
    }
    let mut scenarios: Scenarios = Vec::new();
    let mut plan = vec![("single".to_string(), "none", 1)];
    if options.together > 1 {
        plan.push((
            format!("together-{}", options.together),
            "none",
            options.together,
        ));
    }
    if !options.no_clone {
        plan.push(("clone".to_string(), "clone", 1));
    }
    let spread = options
        .spread_seconds
        .unwrap_or(if backend == "slurm-real" { 2.0 } else { 0.0 });
    for (name, strategy, jobs) in plan {
        let mut samples = Vec::new();
        for run in 0..options.runs {
            // Fractions of the spread that never repeat and fill it evenly (golden ratio).
            let pause = (run as f64 * 0.618_034).fract() * spread;
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
            samples.extend(pipeline(&setup, jobs, strategy).await?);
        }
        scenarios.push((name, strategy.to_string(), jobs, samples));
    }
    drop(batchci);
    drop(cluster);
    let mut login_shell = Vec::new();
    if backend == "shell" {
        for _ in 0..options.runs {
            login_shell.push(login_shell_seconds()?);
        }
    }
    Ok(Measured {
        scenarios,
        queued,
        login_shell,
    })
}

fn ms(seconds: f64) -> String {
    if seconds.is_nan() {
        "-".to_string()
    } else {
        format!("{:.1}", seconds * 1000.0)
    }
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    println!(
        "{:<11} {:<11} {:>4} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9} {:>8}",
        "backend",
        "scenario",
        "jobs",
        "total_p50",
        "total_max",
        "batchci_p50",
        "batchci_max",
        "sched_p50",
        "sched_max",
        "git_p50"
    );
    let mut results = Vec::new();
    let mut verdicts = Vec::new();
    let mut failed = false;
    for backend in &options.backends {
        match measure(&options, backend).await {
            Ok(Measured {
                scenarios,
                queued,
                login_shell,
            }) => {
                let (login_p50, login_max) = median_and_max(&login_shell);
                for (scenario, strategy, jobs, samples) in &scenarios {
                    let pick = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> {
                        samples.iter().filter_map(f).collect()
                    };
                    let total = pick(&|s| Some(s.total));
                    let batchci = pick(&|s| Some(s.batchci));
                    let scheduler = pick(&|s| s.scheduler);
                    let git = pick(&|s| s.git);
                    let without_git = pick(&|s| Some(s.batchci - s.git.unwrap_or(0.0)));
                    let (total_p50, total_max) = median_and_max(&total);
                    let (batchci_p50, batchci_max) = median_and_max(&batchci);
                    let (scheduler_p50, scheduler_max) = median_and_max(&scheduler);
                    let (git_p50, _) = median_and_max(&git);
                    let (without_git_p50, _) = median_and_max(&without_git);
                    println!(
                        "{backend:<11} {scenario:<11} {:>4} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9} {:>8}",
                        samples.len(),
                        ms(total_p50),
                        ms(total_max),
                        ms(batchci_p50),
                        ms(batchci_max),
                        ms(scheduler_p50),
                        ms(scheduler_max),
                        ms(git_p50),
                    );
                    if scenario == "single" && backend != "shell" {
                        let met = if batchci_p50 <= TARGET_BATCHCI_S {
                            "met"
                        } else {
                            "NOT met"
                        };
                        verdicts.push(format!(
                            "{backend}: batchci's share p50 {} ms (target ≤ {} ms: {met})",
                            ms(batchci_p50),
                            ms(TARGET_BATCHCI_S)
                        ));
                    }
                    let nan_to_null = |v: f64| if v.is_nan() { json!(null) } else { json!(v) };
                    results.push(json!({
                        "backend": backend,
                        "scenario": scenario,
                        "git_strategy": strategy,
                        "jobs_per_pipeline": jobs,
                        "real_queue_at_start": queued,
                        "samples": samples.iter().map(|s| json!({
                            "job": s.job,
                            "total_s": s.total,
                            "batchci_s": s.batchci,
                            "scheduler_s": s.scheduler,
                            "git_s": s.git,
                            "before_git_s": s.before_git,
                        })).collect::<Vec<_>>(),
                        "total_p50_s": nan_to_null(total_p50),
                        "total_max_s": nan_to_null(total_max),
                        "batchci_p50_s": nan_to_null(batchci_p50),
                        "batchci_max_s": nan_to_null(batchci_max),
                        "scheduler_p50_s": nan_to_null(scheduler_p50),
                        "scheduler_max_s": nan_to_null(scheduler_max),
                        "git_p50_s": nan_to_null(git_p50),
                        "batchci_without_git_p50_s": nan_to_null(without_git_p50),
                        "target_batchci_p50_s": TARGET_BATCHCI_S,
                        "login_shell_samples_s": login_shell,
                        "login_shell_p50_s": nan_to_null(login_p50),
                        "login_shell_max_s": nan_to_null(login_max),
                    }));
                }
                if !login_shell.is_empty() {
                    verdicts.push(format!(
                        "{backend}: `bash --login` alone, as the shell executor starts it: p50 {} ms, max {} ms (the host's login profile)",
                        ms(login_p50),
                        ms(login_max)
                    ));
                }
                if let Some(queued) = queued.filter(|&q| q > 0) {
                    verdicts.push(format!(
                        "{backend}: {queued} other jobs were in real Slurm's queue at the start (not idle)"
                    ));
                }
            }
            Err(error) => {
                eprintln!("{backend}: {error}");
                failed = true;
            }
        }
    }
    println!(
        "(ms; total = GitLab's started_at → first line; batchci = started_at → sbatch started; sched = sbatch → first line)"
    );
    for verdict in verdicts {
        println!("{verdict}");
    }
    if let Err(error) = options.common.write_json(&json!(results)) {
        eprintln!("{error}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
