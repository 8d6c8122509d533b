//! The log pipeline end to end: a Slurm job writes its output file at GB/s, batchci follows,
//! masks and buffers it and patches it to GitLab; `tail -F` follows the same kind of write on
//! the same machine in the same run, as the anchor to compare with.
//!
//! - **throughput**: a job with one masked CI variable `cat`s a prepared file of `--mib` MiB of
//!   generated build-like text (the secret on every 1,000th line) into its output file. The
//!   time runs from the job's first byte (`date` just before `cat`) to the moment the last
//!   payload byte is in GitLab's stored trace (a task of this process watching the mock's
//!   trace size). The trace is then checked byte for byte against the payload with the secret
//!   replaced by `[MASKED]`: lost, duplicated or changed bytes and leaked secrets are reported
//!   and must all be 0. batchci's CPU time for the job comes from `/proc/<pid>/stat`.
//! - **`tail -F` anchor**, in the same run, alternating with batchci: `tail -c +1 -F FILE`
//!   follows an existing empty file while `cat` appends the same payload to it; its stdout is a
//!   pipe that this process drains (1 MiB reads, on a thread of its own), and the time runs from
//!   just before `cat` is started to the moment the last byte has come out of the pipe. `tail`
//!   writing into a pipe instead of `/dev/null` costs it one copy per byte; the pipe is what
//!   makes its progress observable without sampling.
//! - **follow → buffer**: the same write followed by the library's `tail::follow` into a `JobLog`
//!   (masking, UTF-8 repair, limit, checksum) in this process: batchci without GitLab. The log is
//!   compared with the masked payload.
//! - **write → batchci's buffer**: the library's `tail::follow` feeding a `JobLog` (one masked
//!   value), as the batch backends do, in this process. A writer thread appends `--lines`
//!   lines `--line-interval-ms` apart, each holding the time it was written; the latency of a
//!   line is from that time to the return of the `JobLog::write` that took it in. Measured with
//!   inotify and with polling only (`--poll-interval-ms`, the runner's `poll_interval`).
//! - **write → GitLab**: the same lines written by a Slurm job through batchci; the latency runs
//!   to the moment the line is in GitLab's stored trace. It includes GitLab's trace update
//!   interval (3 s), as with gitlab-runner.
//!
//! Targets: batchci's throughput ≥ 0.8× `tail -F`'s, write → buffer p99 ≤ 50 ms with inotify
//! and ≤ the poll interval without, 0 bytes lost or duplicated. Output: a table, and with
//! `--json FILE` every sample. Exits 1 when the trace was wrong or a run failed (not when a
//! target is missed: the table says that).
//!
//! Usage: `cargo build --release -p batchci -p mock-cluster && cargo run --release -p bench
//! --bin log-throughput-bench -- --mib 256 --runs 3`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use batchci::tail::{Drain, TailOptions, follow};
use batchci::trace::{DEFAULT_OUTPUT_LIMIT, JobLog, Masker};
use bench::harness::{Batchci, Cluster, Common, Gitlab, cpu_seconds};
use clap::Parser;
use mock_gitlab::JobStatus;
use mock_gitlab::api::{NewPipeline, Variable};
use serde_json::json;

const CLUSTER: &str = "cluster_name = \"throughput\"\ntime_scale = 1.0\n\n[[nodes]]\nnames = \"node[01-02]\"\ncpus = 4\nmemory_mb = 16000\n\n[[partitions]]\nname = \"debug\"\nnodes = \"node[01-02]\"\ndefault = true\nmax_time = \"UNLIMITED\"\n";

/// The masked CI variable's value; the payload holds it on every 1,000th line.
const SECRET: &str = "s3cr3t-LOG-THROUGHPUT-value";
/// The payload's first and last lines, to find it in the trace.
const BEGIN: &str = "=== log-throughput-bench payload begins ===\n";
const END: &str = "=== log-throughput-bench payload ends ===\n";
/// How long any one wait may last.
const PATIENCE: Duration = Duration::from_secs(600);

/// The log pipeline end to end against `tail -F`, and write → buffer latency.
#[derive(Debug, clap::Parser)]
struct Options {
    /// Size of the payload a job writes, in MiB.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Throughput runs (each one `tail -F` and one batchci job).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Lines of the latency measurements.
    #[arg(long, default_value_t = 200)]
    lines: usize,
    /// Pause between two lines, in ms.
    #[arg(long, default_value_t = 20)]
    line_interval_ms: u64,
    /// The polling interval of the measurement without inotify (the runner's default).
    #[arg(long, default_value_t = 500)]
    poll_interval_ms: u64,
    /// Skip the measurements through batchci and GitLab (the library's only).
    #[arg(long)]
    library_only: bool,
    #[command(flatten)]
    common: Common,
}

/// Seconds since the epoch, now.
fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Bytes per second in MB/s (10^6).
fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

/// Nearest-rank percentile `p` (0–100) of `values` (`NaN` for none).
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The file a job `cat`s, and what GitLab must end up with.
struct Payload {
    path: PathBuf,
    bytes: usize,
    /// The payload as it must appear in the trace: the secret masked.
    expected: Vec<u8>,
    secrets: usize,
}

/// Writes `mib` MiB of build-like lines (exactly) to `dir/payload.txt`.
fn make_payload(dir: &Path, mib: usize) -> Result<Payload, String> {
    let size = mib << 20;
    let mut raw = Vec::with_capacity(size);
    let mut expected = Vec::with_capacity(size);
    raw.extend_from_slice(BEGIN.as_bytes());
    expected.extend_from_slice(BEGIN.as_bytes());
    let templates = [
        "   Compiling solver-{n} v1.0.{m} (/builds/group/project/crates/solver)\n",
        "gcc -O2 -c src/kernel_{n}.c -o build/kernel_{n}.o -I/opt/spack/include -DSTEP={m}\n",
        "[{m:>3}%] Building CXX object CMakeFiles/app.dir/part_{n}.cpp.o\n",
        "test case_{n} ... ok ({m} ms)\n",
    ];
    let mut secrets = 0;
    let mut n = 0usize;
    loop {
        let line = if n % 1000 == 999 {
            format!("export API_TOKEN={SECRET} step={n}\n")
        } else {
            templates[n % templates.len()]
                .replace("{n}", &n.to_string())
                .replace("{m:>3}", &format!("{:>3}", n % 101))
                .replace("{m}", &(n % 997).to_string())
        };
        if raw.len() + line.len() + END.len() > size {
            break;
        }
        raw.extend_from_slice(line.as_bytes());
        if line.contains(SECRET) {
            secrets += 1;
            expected.extend_from_slice(line.replace(SECRET, "[MASKED]").as_bytes());
        } else {
            expected.extend_from_slice(line.as_bytes());
        }
        n += 1;
    }
    let room = size - raw.len() - END.len();
    if room > 0 {
        let filler = format!("{}\n", "x".repeat(room - 1));
        raw.extend_from_slice(filler.as_bytes());
        expected.extend_from_slice(filler.as_bytes());
    }
    raw.extend_from_slice(END.as_bytes());
    expected.extend_from_slice(END.as_bytes());
    let path = dir.join("payload.txt");
    std::fs::write(&path, &raw).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Payload {
        path,
        bytes: raw.len(),
        expected,
        secrets,
    })
}

/// One `tail -F` run: seconds from the start of the write to the last byte out of tail, and
/// seconds the write took.
fn tail_anchor(dir: &Path, payload: &Payload) -> Result<(f64, f64), String> {
    let file = dir.join("anchor.out");
    std::fs::write(&file, b"").map_err(|e| e.to_string())?;
    let mut tail = Command::new("tail")
        .args(["-c", "+1", "-F"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("tail: {e}"))?;
    let mut out = tail.stdout.take().ok_or("tail has no stdout")?;
    let target = payload.bytes;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buffer = vec![0u8; 1 << 20];
        let mut seen = 0usize;
        while seen < target {
            match out.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen += n,
            }
        }
        let _ = done_tx.send((seen, wall()));
    });
    // tail has opened the file and set its inotify watch.
    std::thread::sleep(Duration::from_millis(300));
    let append = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .map_err(|e| e.to_string())?;
    let started = wall();
    let status = Command::new("cat")
        .arg(&payload.path)
        .stdout(append)
        .status()
        .map_err(|e| format!("cat: {e}"))?;
    let written = wall();
    let result = done_rx.recv_timeout(PATIENCE);
    let _ = tail.kill();
    let _ = tail.wait();
    let _ = reader.join();
    let _ = std::fs::remove_file(&file);
    if !status.success() {
        return Err(format!("cat ended {status}"));
    }
    match result {
        Ok((seen, at)) if seen == target => Ok((at - started, written - started)),
        Ok((seen, _)) => Err(format!("tail -F gave {seen} bytes of {target}")),
        Err(_) => Err("tail -F never gave the whole file".into()),
    }
}

/// A running batchci with its GitLab and cluster.
struct Setup {
    gitlab: Gitlab,
    batchci: Batchci,
    _cluster: Cluster,
    _dir: tempfile::TempDir,
}

async fn setup(options: &Options) -> Result<Setup, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let gitlab = Gitlab::start(&["slurm"]).await?;
    // The job log limit in KiB, as gitlab-runner: room for the payload and the runner's lines.
    let limit_kib = (options.mib + 16) * 1024;
    let config = gitlab.write_config_with(
        dir.path(),
        "slurm",
        1,
        &format!("output_limit = {limit_kib}\n"),
        "",
    )?;
    let cluster = Cluster::simulated(&options.common.mock_cluster(), dir.path(), CLUSTER)?;
    let env = [
        ("PATH", cluster.path()),
        (
            "MOCK_CLUSTER_STATE_DIR",
            cluster.state_dir.display().to_string(),
        ),
    ];
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let batchci = Batchci::run(&options.common.batchci(), &config, &env_refs)?;
    Ok(Setup {
        gitlab,
        batchci,
        _cluster: cluster,
        _dir: dir,
    })
}

/// The job's YAML: one Slurm job running `script`, with the masked variable.
fn job_yaml(script: &str) -> String {
    format!(
        "job:\n  tags: [slurm]\n  variables:\n    GIT_STRATEGY: none\n    SCHEDULER_PARAMETERS: \"--mem=100M -t 10\"\n  script:\n    - {script}\n"
    )
}

/// Runs `yaml` and records when GitLab's stored trace grew: `(job id, [(wall time, size)])`.
async fn run_job(gitlab: &Gitlab, yaml: String) -> Result<(u64, Vec<(f64, u64)>), String> {
    let server = &gitlab.server;
    let created = server
        .create_pipeline(NewPipeline {
            project_id: gitlab.project_id,
            ci_yaml: yaml,
            variables: vec![Variable {
                key: "BENCH_SECRET".into(),
                value: SECRET.into(),
                masked: true,
            }],
            git_ref: "main".into(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let id = created.jobs[0].id;
    let mut growth = Vec::new();
    let mut seen = 0u64;
    let started = wall();
    let finished = loop {
        let job = server.job(id).map_err(|e| e.to_string())?;
        if job.status.is_finished() && job.trace_bytes == seen {
            break job;
        }
        match server
            .wait_for_trace(id, seen + 1, Duration::from_millis(200))
            .await
        {
            Ok(view) => {
                seen = view.trace_bytes;
                growth.push((wall(), seen));
            }
            Err(mock_gitlab::MockError::Timeout { .. }) => {}
            Err(error) => return Err(error.to_string()),
        }
        if wall() - started > PATIENCE.as_secs_f64() {
            return Err(format!("job {id} did not end"));
        }
    };
    if finished.status != JobStatus::Success {
        return Err(format!("job {id} ended {:?}", finished.status));
    }
    Ok((id, growth))
}

/// When the trace first held `offset` bytes.
fn arrival(growth: &[(f64, u64)], offset: usize) -> Option<f64> {
    growth
        .iter()
        .find(|(_, size)| *size >= offset as u64)
        .map(|(t, _)| *t)
}

/// Where `needle` first occurs in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// One batchci throughput run.
struct Throughput {
    seconds: f64,
    write_seconds: f64,
    cpu_seconds: f64,
    /// This process's: the mock GitLab taking the trace, and the task watching it grow.
    gitlab_cpu_seconds: f64,
    lost: usize,
    duplicated: usize,
    changed: usize,
    leaked: usize,
    /// `(seconds after the first byte, bytes of the payload in GitLab)`, as the trace grew.
    growth: Vec<(f64, usize)>,
}

async fn batchci_throughput(setup: &Setup, payload: &Payload) -> Result<Throughput, String> {
    let script = format!(
        "t0=$(date +%s.%N); cat {}; t1=$(date +%s.%N); echo \"bench-times $t0 $t1\"",
        payload.path.display()
    );
    let cpu_before = cpu_seconds(setup.batchci.pid()).unwrap_or(f64::NAN);
    let own_before = cpu_seconds(std::process::id()).unwrap_or(f64::NAN);
    let (id, growth) = run_job(&setup.gitlab, job_yaml(&script)).await?;
    let cpu = cpu_seconds(setup.batchci.pid()).unwrap_or(f64::NAN) - cpu_before;
    let gitlab_cpu = cpu_seconds(std::process::id()).unwrap_or(f64::NAN) - own_before;
    let trace = setup.gitlab.server.trace(id).map_err(|e| e.to_string())?;
    let _ = setup
        .gitlab
        .server
        .job(id)
        .map(|j| setup.gitlab.server.delete_pipeline(j.pipeline_id));

    let leaked = trace
        .windows(SECRET.len())
        .filter(|w| *w == SECRET.as_bytes())
        .count();
    let times = find(&trace, b"\nbench-times ", 0).ok_or("no bench-times line in the trace")?;
    let line_end = find(&trace, b"\n", times + 1).unwrap_or(trace.len());
    let line = String::from_utf8_lossy(&trace[times + 13..line_end]).into_owned();
    let mut words = line.split_whitespace().map(|w| w.parse::<f64>());
    let (Some(Ok(t0)), Some(Ok(t1))) = (words.next(), words.next()) else {
        return Err(format!("bench-times line {line:?}"));
    };
    let begin = find(&trace, BEGIN.as_bytes(), 0).ok_or("the payload's first line is missing")?;
    let expected = &payload.expected;
    // What arrived between the payload's first line and its last.
    let received_end = find(&trace, END.as_bytes(), begin)
        .map(|e| e + END.len())
        .unwrap_or(times + 1);
    let received = &trace[begin..received_end];
    let lost = expected.len().saturating_sub(received.len());
    let duplicated = received.len().saturating_sub(expected.len());
    let changed = received
        .iter()
        .zip(expected.iter())
        .filter(|(a, b)| a != b)
        .count();
    let whole_at = arrival(&growth, begin + expected.len()).ok_or("the trace never got whole")?;
    let growth = growth
        .iter()
        .map(|(t, size)| {
            let payload = (*size as usize).saturating_sub(begin).min(expected.len());
            (t - t0, payload)
        })
        .collect();
    Ok(Throughput {
        seconds: whole_at - t0,
        write_seconds: t1 - t0,
        cpu_seconds: cpu,
        gitlab_cpu_seconds: gitlab_cpu,
        lost,
        duplicated,
        changed,
        leaked,
        growth,
    })
}

/// Write → GitLab latencies of lines a job writes `interval` apart, in ms.
async fn gitlab_latency(
    setup: &Setup,
    lines: usize,
    interval: Duration,
) -> Result<Vec<f64>, String> {
    let script = format!(
        "for i in $(seq {lines}); do echo \"tick $(date +%s.%N)\"; sleep {}; done",
        interval.as_secs_f64()
    );
    let (id, growth) = run_job(&setup.gitlab, job_yaml(&script)).await?;
    let trace = setup.gitlab.server.trace(id).map_err(|e| e.to_string())?;
    let mut latencies = Vec::new();
    let mut offset = 0;
    for line in trace.split_inclusive(|b| *b == b'\n') {
        offset += line.len();
        let text = String::from_utf8_lossy(line);
        if let Some(Ok(written)) = text.trim().strip_prefix("tick ").map(str::parse::<f64>) {
            let at = arrival(&growth, offset).ok_or("a line never arrived")?;
            latencies.push((at - written) * 1e3);
        }
    }
    if latencies.len() != lines {
        return Err(format!(
            "{} tick lines of {lines} in the trace",
            latencies.len()
        ));
    }
    Ok(latencies)
}

/// The library alone: `follow` into a `JobLog` (masking, UTF-8 repair, limit, checksum) while
/// `cat` writes the payload. Seconds from the start of the write to the last byte in the log.
async fn buffer_throughput(dir: &Path, payload: &Payload) -> Result<f64, String> {
    let path = dir.join("library.out");
    std::fs::write(&path, b"").map_err(|e| e.to_string())?;
    let log = JobLog::new(
        Masker::for_job([SECRET], Vec::<String>::new()),
        payload.bytes + (1 << 20),
    );
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let target = payload.bytes;
    let mut seen = 0usize;
    let mut whole_at = None;
    let writer = {
        let path = path.clone();
        let source = payload.path.clone();
        std::thread::spawn(move || -> Result<f64, String> {
            // The follower is watching before the first byte.
            std::thread::sleep(Duration::from_millis(200));
            let append = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            let started = wall();
            let status = Command::new("cat")
                .arg(&source)
                .stdout(append)
                .status()
                .map_err(|e| format!("cat: {e}"))?;
            let _ = done_tx.send(());
            if status.success() {
                Ok(started)
            } else {
                Err(format!("cat ended {status}"))
            }
        })
    };
    let sink_log = Arc::clone(&log);
    follow(
        &path,
        |bytes: &[u8]| {
            sink_log.write(bytes);
            seen += bytes.len();
            if seen >= target && whole_at.is_none() {
                whole_at = Some(wall());
            }
        },
        async {
            let _ = done_rx.await;
            Drain::UntilSettled
        },
        &TailOptions::default(),
    )
    .await;
    let started = writer
        .join()
        .map_err(|_| "the writer panicked".to_string())??;
    log.finish();
    if log.contents() != payload.expected {
        return Err("the library's log differs from the masked payload".into());
    }
    let _ = std::fs::remove_file(&path);
    Ok(whole_at.ok_or("the log never got whole")? - started)
}

/// Write → `JobLog` latencies through the library's `follow`, in ms.
async fn buffer_latency(
    lines: usize,
    interval: Duration,
    options: TailOptions,
) -> Result<Vec<f64>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("slurm-1.out");
    let log = JobLog::new(
        Masker::for_job([SECRET], Vec::<String>::new()),
        DEFAULT_OUTPUT_LIMIT,
    );
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        // The follower is watching before the first line.
        std::thread::sleep(Duration::from_millis(200));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&writer_path)?;
        for n in 0..lines {
            let line = format!("tick {:.9} {SECRET} {n}\n", wall());
            file.write_all(line.as_bytes())?;
            std::thread::sleep(interval);
        }
        let _ = done_tx.send(());
        Ok(())
    });
    let mut latencies = Vec::new();
    let mut carry = Vec::new();
    let sink_log = Arc::clone(&log);
    follow(
        &path,
        |bytes: &[u8]| {
            sink_log.write(bytes);
            let now = wall();
            carry.extend_from_slice(bytes);
            while let Some(end) = carry.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = carry.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                if let Some(Ok(written)) = text.split_whitespace().nth(1).map(str::parse::<f64>) {
                    latencies.push((now - written) * 1e3);
                }
            }
        },
        async {
            let _ = done_rx.await;
            Drain::UntilSettled
        },
        &options,
    )
    .await;
    writer
        .join()
        .map_err(|_| "the writer panicked".to_string())?
        .map_err(|e| e.to_string())?;
    log.finish();
    let contents = log.contents();
    if contents
        .windows(SECRET.len())
        .any(|w| w == SECRET.as_bytes())
    {
        return Err("the secret leaked into the buffer".into());
    }
    if latencies.len() != lines {
        return Err(format!("{} lines of {lines} followed", latencies.len()));
    }
    Ok(latencies)
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let mut failed = false;
    let mut results = serde_json::Map::new();
    let interval = Duration::from_millis(options.line_interval_ms);
    let poll = Duration::from_millis(options.poll_interval_ms);

    // Write → buffer through the library.
    let mut latency_rows: Vec<(String, Vec<f64>, String)> = Vec::new();
    for (name, inotify, target) in [
        ("write → buffer, inotify", true, "p99 ≤ 50 ms".to_string()),
        (
            "write → buffer, polling",
            false,
            format!("p99 ≤ {} ms", options.poll_interval_ms),
        ),
    ] {
        let tail_options = TailOptions {
            poll_interval: poll,
            inotify,
            ..TailOptions::default()
        };
        match buffer_latency(options.lines, interval, tail_options).await {
            Ok(samples) => latency_rows.push((name.to_string(), samples, target)),
            Err(error) => {
                eprintln!("{name}: {error}");
                failed = true;
            }
        }
    }

    let mut anchors = Vec::new();
    let mut writes = Vec::new();
    let mut library = Vec::new();
    let mut runs: Vec<Throughput> = Vec::new();
    let mut payload_bytes = 0;
    {
        let outcome: Result<(), String> = async {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let payload = make_payload(dir.path(), options.mib)?;
            payload_bytes = payload.bytes;
            if options.library_only {
                for _ in 0..options.runs {
                    anchors.push(tail_anchor(dir.path(), &payload)?.0);
                    library.push(buffer_throughput(dir.path(), &payload).await?);
                }
                return Ok(());
            }
            let setup = setup(&options).await?;
            // A first job warms the path (the cluster's commands, batchci's first job).
            run_job(&setup.gitlab, job_yaml("echo warm")).await?;
            for _ in 0..options.runs {
                let (seconds, write) = tail_anchor(dir.path(), &payload)?;
                anchors.push(seconds);
                writes.push(write);
                library.push(buffer_throughput(dir.path(), &payload).await?);
                let run = batchci_throughput(&setup, &payload).await?;
                writes.push(run.write_seconds);
                runs.push(run);
            }
            let samples = gitlab_latency(&setup, options.lines, interval).await?;
            latency_rows.push((
                "write → GitLab".to_string(),
                samples,
                "(update interval)".to_string(),
            ));
            results.insert("secrets_per_payload".into(), json!(payload.secrets));
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            eprintln!("{error}");
            failed = true;
        }
    }

    if !anchors.is_empty() {
        let anchor = percentile(&anchors, 50.0);
        let row = |name: &str, samples: &[f64], target: &str| {
            let median = percentile(samples, 50.0);
            let ratio = if name.starts_with("tail") || name.starts_with("write") {
                String::new()
            } else {
                format!("{:.2}", anchor / median)
            };
            println!(
                "  {name:<36} {:>5} {median:>9.3} {:>8.0} {ratio:>6}  {target}",
                samples.len(),
                mb_per_s(payload_bytes, median),
            );
        };
        println!(
            "throughput, {} MiB, one masked variable  runs  median_s     MB/s  ratio  target",
            options.mib
        );
        if !writes.is_empty() {
            row("write (cat into the output file)", &writes, "");
        }
        row("tail -F", &anchors, "");
        if !library.is_empty() {
            row("follow → buffer (library)", &library, "");
        }
        let mut throughput = json!({
            "mib": options.mib,
            "bytes": payload_bytes,
            "tail_seconds": anchors,
            "write_seconds": writes,
            "library_seconds": library,
            "tail_mb_per_s": mb_per_s(payload_bytes, anchor),
        });
        if !runs.is_empty() {
            let seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
            let ours = percentile(&seconds, 50.0);
            row("batchci → GitLab", &seconds, "≥ 0.80");
            let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_seconds).collect();
            let lost: usize = runs.iter().map(|r| r.lost).sum();
            let duplicated: usize = runs.iter().map(|r| r.duplicated).sum();
            let changed: usize = runs.iter().map(|r| r.changed).sum();
            let leaked: usize = runs.iter().map(|r| r.leaked).sum();
            let gitlab_cpu: Vec<f64> = runs.iter().map(|r| r.gitlab_cpu_seconds).collect();
            println!(
                "  CPU per run: batchci {:.2} s, mock GitLab {:.2} s; bytes lost {lost}, duplicated {duplicated}, changed {changed}; secrets leaked {leaked}",
                percentile(&cpu, 50.0),
                percentile(&gitlab_cpu, 50.0)
            );
            if lost + duplicated + changed + leaked > 0 {
                failed = true;
            }
            let more = json!({
                "batchci_seconds": seconds,
                "batchci_cpu_seconds": cpu,
                "gitlab_cpu_seconds": gitlab_cpu,
                "batchci_mb_per_s": mb_per_s(payload_bytes, ours),
                "ratio": anchor / ours,
                "lost": lost,
                "duplicated": duplicated,
                "changed": changed,
                "leaked": leaked,
                "trace_growth": runs.iter().map(|r| &r.growth).collect::<Vec<_>>(),
            });
            if let (Some(all), Some(more)) = (throughput.as_object_mut(), more.as_object()) {
                all.extend(more.clone());
            }
        }
        results.insert("throughput".into(), throughput);
        println!();
    }

    println!(
        "latency, {} lines {} ms apart        p50_ms   p99_ms   max_ms  target",
        options.lines, options.line_interval_ms
    );
    let mut latency_json = Vec::new();
    for (name, samples, target) in &latency_rows {
        let (p50, p99, max) = (
            percentile(samples, 50.0),
            percentile(samples, 99.0),
            percentile(samples, 100.0),
        );
        let name = if name.ends_with("polling") {
            format!("{name} {} ms", options.poll_interval_ms)
        } else {
            name.clone()
        };
        println!("  {name:<32} {p50:>8.1} {p99:>8.1} {max:>8.1}  {target}");
        latency_json.push(json!({
            "what": name,
            "samples_ms": samples,
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": max,
        }));
    }
    results.insert("latency".into(), json!(latency_json));

    if let Err(error) = options
        .common
        .write_json(&serde_json::Value::Object(results))
    {
        eprintln!("{error}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
