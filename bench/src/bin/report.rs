//! Runs every end-to-end measurement and writes `docs/benchmarks.md` with its plots.
//!
//! The other bench binaries sit next to this one (`target/release/`); each is run as a
//! subprocess with `--json FILE` (`mock-cluster-bench` prints its JSON instead), in this order:
//! `mock-cluster-bench`, `allocation-latency-bench`, `executor-latency-bench`,
//! `executor-scale-bench` (both ways of waiting, `--wait submit,batched`; with real Slurm a
//! second run, `--cluster real`, counts the controller's RPCs) and, when it is built,
//! `log-throughput-bench`. Real Slurm is included when `sinfo` answers for `SLURM_CONF`
//! (default `/tmp/batchci-slurm/slurm.conf`, where `ci/slurm up` puts it); otherwise the page
//! says it was not running.
//!
//! The page comes from the template `bench/report/benchmarks.md.in` with one table per area
//! (what, batchci, its anchor measured in the same run, the target, the ratio and verdict), a
//! summary of the rows with a target at its top, what each bench printed, and SVG plots under
//! `benchmarks/` beside it (drawn with plotters): latency distributions per backend, the scale
//! curve per way of waiting, log throughput. All the JSON the benches wrote is kept in
//! `benchmarks/results.json`. What the report cannot measure again (old builds, criterion
//! benches) stays in the template as prose, labelled as from an earlier run.
//!
//! `--smoke` runs tiny sizes in well under a minute (the simulated cluster and the shell
//! executor only): what `ci/test` runs so that the benches cannot rot. It writes wherever
//! `--out DIR` says (default: the workspace's `docs/`). The report exits 1 when a bench failed
//! or wrote no usable JSON, never because a target was missed: the tables say that.
//!
//! Usage: `cargo build --release -p batchci -p mock-cluster -p bench && cargo run --release
//! -p bench --bin report` (about 20 minutes; `--smoke --out /tmp/report` for the short one).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{Value, json};

/// The page, with `{{name}}` for what a run fills in.
const TEMPLATE: &str = include_str!("../../report/benchmarks.md.in");

/// Areas, in the order they run (`--skip` names).
const AREAS: [&str; 5] = ["mock-cluster", "allocation", "latency", "scale", "log"];

/// Runs every end-to-end measurement and writes docs/benchmarks.md with SVG plots.
#[derive(Debug, clap::Parser)]
struct Options {
    /// Tiny sizes (about a minute after the build), simulated cluster and shell executor only:
    /// a smoke test of every bench, not a measurement.
    #[arg(long)]
    smoke: bool,
    /// Where to write benchmarks.md and benchmarks/*.svg (default: the workspace's docs/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Areas to leave out: mock-cluster, allocation, latency, scale, log.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// The batchci binary the benches measure (default: the workspace's).
    #[arg(long)]
    batchci: Option<PathBuf>,
    /// The mock-cluster binary the benches use (default: the workspace's).
    #[arg(long)]
    mock_cluster: Option<PathBuf>,
}

/// What a bench run left.
struct BenchRun {
    /// The command, as a person would type it.
    command: String,
    /// What it printed on standard output.
    printed: String,
    json: Option<Value>,
    /// Why it did not run or did not finish well, if so.
    problem: Option<String>,
    seconds: f64,
}

impl BenchRun {
    fn skipped(why: &str) -> BenchRun {
        BenchRun {
            command: String::new(),
            printed: String::new(),
            json: None,
            problem: Some(why.to_string()),
            seconds: 0.0,
        }
    }
}

/// Real Slurm, if it answers.
#[derive(Clone)]
enum RealSlurm {
    Running { conf: String },
    Absent { why: String },
}

impl RealSlurm {
    fn running(&self) -> bool {
        matches!(self, RealSlurm::Running { .. })
    }
}

/// What every bench run shares.
struct Context {
    bin_dir: PathBuf,
    json_dir: tempfile::TempDir,
    slurm: RealSlurm,
    options: Options,
}

impl Context {
    /// Runs bench `name` with `args`; `json_flag`: it takes `--json FILE` (else its standard
    /// output is the JSON) and the `--batchci`/`--mock-cluster` options.
    fn run(&self, name: &str, args: &[String], json_flag: bool) -> BenchRun {
        self.run_as(name, name, args, json_flag)
    }

    /// As [`Context::run`], its JSON file named after `key` (one bench run twice in a report).
    fn run_as(&self, key: &str, name: &str, args: &[String], json_flag: bool) -> BenchRun {
        let program = self.bin_dir.join(name);
        if !program.exists() {
            return BenchRun::skipped(&format!(
                "{name} is not built (cargo build --release -p bench)"
            ));
        }
        let json_file = self.json_dir.path().join(format!("{key}.json"));
        let mut command = Command::new(&program);
        command.args(args);
        let mut shown: Vec<String> = args.to_vec();
        if json_flag {
            command.arg("--json").arg(&json_file);
            if let Some(batchci) = &self.options.batchci {
                command.arg("--batchci").arg(batchci);
                shown.push(format!("--batchci {}", batchci.display()));
            }
            if let Some(mock) = &self.options.mock_cluster {
                command.arg("--mock-cluster").arg(mock);
                shown.push(format!("--mock-cluster {}", mock.display()));
            }
        } else if let Some(mock) = &self.options.mock_cluster {
            command.env("MOCK_CLUSTER_BIN", mock);
        }
        match &self.slurm {
            RealSlurm::Running { conf } => {
                command.env("SLURM_CONF", conf);
            }
            // mock-cluster-bench falls back to the default path; a missing file keeps it
            // from timing a real sbatch that cannot answer.
            RealSlurm::Absent { .. } => {
                command.env("SLURM_CONF", "/nonexistent/slurm.conf");
            }
        }
        let shown = format!("{name} {}", shown.join(" ")).trim().to_string();
        eprintln!("report: running {shown}");
        let started = Instant::now();
        let output = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output();
        let seconds = started.elapsed().as_secs_f64();
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                return BenchRun {
                    command: shown,
                    printed: String::new(),
                    json: None,
                    problem: Some(format!("cannot start {}: {error}", program.display())),
                    seconds,
                };
            }
        };
        let printed = String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string();
        let json: Option<Value> = if json_flag {
            std::fs::read_to_string(&json_file)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
        } else {
            serde_json::from_str(&printed).ok()
        };
        let problem = if !output.status.success() {
            Some(format!(
                "{name} failed ({}); its messages are in the report's standard error",
                output.status
            ))
        } else if json.is_none() {
            Some(format!("{name} wrote no JSON the report could read"))
        } else {
            None
        };
        eprintln!("report: {name} took {seconds:.0} s");
        BenchRun {
            command: shown,
            printed,
            json,
            problem,
            seconds,
        }
    }
}

/// Whether real Slurm answers: `sinfo` exits 0 within 15 s for `SLURM_CONF`.
fn real_slurm() -> RealSlurm {
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| {
        let default = "/tmp/batchci-slurm/slurm.conf";
        if Path::new(default).exists() {
            default.to_string()
        } else {
            String::new()
        }
    });
    if conf.is_empty() {
        return RealSlurm::Absent {
            why: "real Slurm not running (no SLURM_CONF; `ci/slurm up` as root starts it)".into(),
        };
    }
    let child = Command::new("sinfo")
        .arg("-h")
        .env("SLURM_CONF", &conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            return RealSlurm::Absent {
                why: format!("real Slurm not running (cannot run sinfo: {error})"),
            };
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return RealSlurm::Running { conf },
            Ok(Some(status)) => {
                return RealSlurm::Absent {
                    why: format!(
                        "real Slurm not running (`sinfo` for {conf} exited with {status}; `ci/slurm up` as root starts it)"
                    ),
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return RealSlurm::Absent {
                    why: format!("real Slurm not running (`sinfo` for {conf} did not answer)"),
                };
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tables.

/// One area's table: what, the subject's number, its anchor, the target, ratio and verdict.
struct Table {
    subject: &'static str,
    rows: Vec<[String; 5]>,
    /// The rows the page's summary at the top repeats.
    headlines: Vec<usize>,
    notes: Vec<String>,
}

impl Table {
    fn new(subject: &'static str) -> Table {
        Table {
            subject,
            rows: Vec::new(),
            headlines: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn row(&mut self, what: String, value: String, anchor: String, target: &str, ratio: String) {
        self.rows
            .push([what, value, anchor, target.to_string(), ratio]);
    }

    /// Marks the last row for the summary at the top of the page.
    fn headline(&mut self) {
        if !self.rows.is_empty() {
            self.headlines.push(self.rows.len() - 1);
        }
    }

    fn markdown(&self) -> String {
        let mut text = String::new();
        if !self.rows.is_empty() {
            let _ = writeln!(
                text,
                "| what | {} | anchor | target | ratio / verdict |\n|---|---|---|---|---|",
                self.subject
            );
            for row in &self.rows {
                let _ = writeln!(text, "| {} |", row.join(" | "));
            }
        }
        for note in &self.notes {
            if !text.is_empty() {
                text.push('\n');
            }
            let _ = writeln!(text, "{note}");
        }
        text.trim_end().to_string()
    }
}

fn number(value: &Value, key: &str) -> Option<f64> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or("—".into(), |s| format!("{:.1} ms", s * 1000.0))
}

fn secs(seconds: Option<f64>) -> String {
    seconds.map_or("—".into(), |s| format!("{s:.2} s"))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// `value / anchor` as `0.42×`, when both are known and the anchor is not ~0.
fn ratio(value: Option<f64>, anchor: Option<f64>, least_anchor: f64) -> Option<f64> {
    match (value, anchor) {
        (Some(v), Some(a)) if a > least_anchor => Some(v / a),
        _ => None,
    }
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or(String::new(), |r| format!("{r:.2}×"))
}

fn join_verdict(ratio: Option<f64>, verdict: Option<&str>) -> String {
    match (times(ratio).as_str(), verdict) {
        ("", None) => "—".into(),
        ("", Some(v)) => v.into(),
        (r, None) => r.into(),
        (r, Some(v)) => format!("{r} · {v}"),
    }
}

fn label(backend: &str) -> &str {
    match backend {
        "shell" => "shell executor",
        "slurm" => "simulated Slurm",
        "slurm-real" => "real Slurm 22.05",
        other => other,
    }
}

/// The note for a bench that did not run or did not finish well.
fn problem_note(run: &BenchRun) -> Option<String> {
    run.problem
        .as_ref()
        .map(|p| format!("**Not measured or incomplete:** {p}."))
}

/// `[[jobs]]`-like rows of a bench's JSON array.
fn array(run: &BenchRun) -> Vec<Value> {
    run.json
        .as_ref()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn allocation_table(run: &BenchRun, slurm: &RealSlurm) -> Table {
    let mut table = Table::new("batchci");
    let rows = array(run);
    let find = |backend: &str, scenario: &str| {
        rows.iter()
            .find(|r| r["backend"] == backend && r["scenario"] == scenario)
    };
    let shell = find("shell", "single");
    let shell_total = shell.and_then(|r| number(r, "total_p50_s"));
    let login_shell = shell.and_then(|r| number(r, "login_shell_p50_s"));
    let floor = match login_shell {
        Some(login) => format!(
            "shell executor floor {} (`bash --login` alone {})",
            ms(shell_total),
            ms(Some(login))
        ),
        None => format!("shell executor floor {}", ms(shell_total)),
    };
    let real_scheduler = find("slurm-real", "single").and_then(|r| number(r, "scheduler_p50_s"));
    let pair = |r: &Value, p50: &str, max: &str, f: fn(Option<f64>) -> String| {
        format!("{} / {}", f(number(r, p50)), f(number(r, max)))
    };
    for backend in ["slurm", "slurm-real"] {
        let Some(single) = find(backend, "single") else {
            continue;
        };
        let name = label(backend);
        let batchci = number(single, "batchci_p50_s");
        let target = number(single, "target_batchci_p50_s").unwrap_or(0.150);
        table.row(
            format!("batchci's share, {name}: job handed out → `sbatch` started (p50 / max)"),
            pair(single, "batchci_p50_s", "batchci_max_s", ms),
            floor.clone(),
            &format!("≤ {:.0} ms p50", target * 1000.0),
            join_verdict(
                ratio(batchci, shell_total, 0.0),
                batchci.map(|b| verdict(b <= target)),
            ),
        );
        table.headline();
        let scheduler = number(single, "scheduler_p50_s");
        let (anchor, r) = if backend == "slurm" {
            (
                real_scheduler.map_or_else(
                    || {
                        if slurm.running() {
                            "—".into()
                        } else {
                            "— (no real Slurm in this run)".into()
                        }
                    },
                    |s| format!("real Slurm {}", ms(Some(s))),
                ),
                ratio(scheduler, real_scheduler, 0.0),
            )
        } else {
            ("—".into(), None)
        };
        table.row(
            format!("the scheduler's share, {name}: `sbatch` → first line (p50 / max)"),
            pair(single, "scheduler_p50_s", "scheduler_max_s", ms),
            anchor,
            "— (shown beside)",
            join_verdict(r, None),
        );
        let total = number(single, "total_p50_s");
        table.row(
            format!("total, {name}: job handed out → first line (p50 / max)"),
            pair(single, "total_p50_s", "total_max_s", ms),
            format!("shell executor floor {}", ms(shell_total)),
            "—",
            join_verdict(ratio(total, shell_total, 0.0), None),
        );
        for together in rows
            .iter()
            .filter(|r| r["backend"] == backend && r["jobs_per_pipeline"].as_u64() > Some(1))
        {
            table.row(
                format!(
                    "total, {name}, {} jobs submitted together (p50 / max over the jobs; the shares' p50)",
                    together["jobs_per_pipeline"]
                ),
                format!(
                    "{} (batchci {}, scheduler {})",
                    pair(together, "total_p50_s", "total_max_s", ms),
                    ms(number(together, "batchci_p50_s")),
                    ms(number(together, "scheduler_p50_s")),
                ),
                format!("one job alone {}", ms(total)),
                "—",
                join_verdict(ratio(number(together, "total_p50_s"), total, 0.0), None),
            );
        }
    }
    if let Some(shell) = shell {
        table.row(
            "the floor: shell executor, job handed out → first line (p50 / max)".into(),
            pair(shell, "total_p50_s", "total_max_s", ms),
            login_shell.map_or("—".into(), |l| {
                format!("`bash --login` alone {} (the host's profile)", ms(Some(l)))
            }),
            "—",
            "—".into(),
        );
    }
    for backend in ["shell", "slurm", "slurm-real"] {
        if let Some(clone) = find(backend, "clone") {
            table.row(
                format!(
                    "`git` clone of a small repository, {} (inside batchci's share; p50)",
                    label(backend)
                ),
                ms(number(clone, "git_p50_s")),
                format!(
                    "batchci's share without it {}",
                    ms(number(clone, "batchci_without_git_p50_s"))
                ),
                "— (left out of the target)",
                "—".into(),
            );
        }
    }
    if !rows.iter().any(|r| r["backend"] == "slurm-real")
        && let RealSlurm::Absent { why } = slurm
    {
        table
            .notes
            .push(format!("{}: its rows are left out.", capitalised(why)));
    }
    if let Some(queued) = rows
        .iter()
        .filter(|r| r["backend"] == "slurm-real")
        .filter_map(|r| r["real_queue_at_start"].as_u64())
        .find(|&q| q > 0)
    {
        table.notes.push(format!(
            "Real Slurm was not idle: {queued} other jobs were in its queue when the bench started."
        ));
    }
    table.notes.extend(problem_note(run));
    table
}

fn latency_table(run: &BenchRun, slurm: &RealSlurm) -> Table {
    let mut table = Table::new("batchci");
    let rows = array(run);
    for row in &rows {
        let backend = row["backend"].as_str().unwrap_or("?");
        let scenario = row["scenario"].as_str().unwrap_or("?");
        let p50 = number(row, "p50_s");
        let what = if scenario == "cancel" {
            format!(
                "cancel in GitLab → final state, {} (p50 / max)",
                label(backend)
            )
        } else {
            format!(
                "last script line → final state, {} s script, {} (p50 / max)",
                scenario.trim_start_matches("end-").trim_end_matches('s'),
                label(backend)
            )
        };
        let shell = rows
            .iter()
            .find(|r| r["backend"] == "shell" && r["scenario"] == scenario)
            .and_then(|r| number(r, "p50_s"));
        let anchor = if backend == "shell" {
            "—".to_string()
        } else {
            format!("shell executor {}", secs(shell))
        };
        let target = match (backend, scenario) {
            (_, "cancel") | ("shell", _) => None,
            ("slurm-real", _) => Some(2.0),
            _ => Some(1.0),
        };
        table.row(
            what,
            format!("{} / {}", secs(p50), secs(number(row, "max_s"))),
            anchor,
            &target.map_or("—".into(), |t| format!("≤ {t:.0} s")),
            join_verdict(
                if backend == "shell" {
                    None
                } else {
                    ratio(p50, shell, 0.05)
                },
                target.zip(p50).map(|(t, p)| verdict(p <= t)),
            ),
        );
        if target.is_some() {
            table.headline();
        }
    }
    if !rows.iter().any(|r| r["backend"] == "slurm-real")
        && let RealSlurm::Absent { why } = slurm
    {
        table
            .notes
            .push(format!("{}: its rows are left out.", capitalised(why)));
    }
    table.notes.extend(problem_note(run));
    table
}

/// How a scale row waited for its jobs (`submit` when the bench predates `--wait`).
fn wait_mode(row: &Value) -> &str {
    row["wait"].as_str().unwrap_or("submit")
}

/// The modes of a scale run, in the order the bench ran them.
fn wait_modes(rows: &[Value]) -> Vec<String> {
    let mut modes: Vec<String> = Vec::new();
    for row in rows {
        if !modes.iter().any(|m| m == wait_mode(row)) {
            modes.push(wait_mode(row).to_string());
        }
    }
    modes
}

fn scale_table(run: &BenchRun) -> Table {
    let mut table = Table::new("batchci");
    let rows = array(run);
    let modes = wait_modes(&rows);
    for mode in &modes {
        let of_mode: Vec<&Value> = rows.iter().filter(|r| wait_mode(r) == mode).collect();
        // The anchor of each size: the smallest run of the same mode.
        let smallest = of_mode
            .iter()
            .filter_map(|r| Some((r["jobs"].as_u64()?, number(r, "cpu_ms_per_job")?)))
            .min_by_key(|&(jobs, _)| jobs);
        let largest = of_mode.iter().filter_map(|r| r["jobs"].as_u64()).max();
        for row in &of_mode {
            let jobs = row["jobs"].as_u64().unwrap_or(0);
            let per_job = number(row, "cpu_ms_per_job");
            let r = smallest.and_then(|(_, low)| per_job.map(|p| p / low));
            let queries = number(row, "status_queries_per_job_minute");
            table.row(
                format!(
                    "CPU per job, `wait = \"{mode}\"`, {jobs} concurrent {} s Slurm jobs",
                    row["job_seconds"]
                ),
                format!(
                    "{} ({} of {jobs} succeeded; {} inotify, {} threads, {} children at most{}; wall {})",
                    per_job.map_or("—".into(), |p| format!("{p:.1} ms")),
                    row["succeeded"],
                    row["inotify_instances"],
                    row["threads"],
                    row["children"].as_u64().map_or("?".into(), |c| c.to_string()),
                    queries.map_or(String::new(), |q| format!(
                        ", {q:.2} status queries per job and minute"
                    )),
                    secs(number(row, "wall_seconds")),
                ),
                smallest.map_or("—".into(), |(n, low)| {
                    format!("{low:.1} ms at {n} jobs, same mode")
                }),
                "≤ 2× the smallest run",
                join_verdict(r, r.map(|r| verdict(r <= 2.0))),
            );
            if Some(jobs) == largest {
                table.headline();
            }
        }
    }
    // The two modes side by side at each size both ran.
    if modes.iter().any(|m| m == "submit") && modes.iter().any(|m| m == "batched") {
        let find = |mode: &str, jobs: u64| {
            rows.iter()
                .find(|r| wait_mode(r) == mode && r["jobs"].as_u64() == Some(jobs))
        };
        let mut sizes: Vec<u64> = rows.iter().filter_map(|r| r["jobs"].as_u64()).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for jobs in sizes {
            let (Some(batched), Some(submit)) = (find("batched", jobs), find("submit", jobs))
            else {
                continue;
            };
            let described = |r: &Value| {
                format!(
                    "{} children at most, {} status queries per job and minute",
                    r["children"].as_u64().map_or("?".into(), |c| c.to_string()),
                    fmt2(number(r, "status_queries_per_job_minute"))
                )
            };
            table.row(
                format!("`wait = \"batched\"` against one `sbatch --wait` per job, {jobs} jobs"),
                described(batched),
                format!("`wait = \"submit\"`: {}", described(submit)),
                "—",
                ratio(
                    number(batched, "cpu_ms_per_job"),
                    number(submit, "cpu_ms_per_job"),
                    0.0,
                )
                .map_or("—".into(), |r| format!("{r:.2}× submit's CPU per job")),
            );
        }
    }
    table.notes.extend(problem_note(run));
    table
}

/// The controller's RPCs on real Slurm, per wait mode and number of jobs.
fn scale_real_table(run: &BenchRun, slurm: &RealSlurm, queued_before: Option<usize>) -> Table {
    let mut table = Table::new("controller RPCs");
    if let RealSlurm::Absent { why } = slurm {
        table.notes.push(format!(
            "{}: not measured in this run; the counts of an earlier run are below.",
            capitalised(why)
        ));
        return table;
    }
    let rows = array(run);
    let find = |mode: &str, jobs: u64| {
        rows.iter()
            .find(|r| wait_mode(r) == mode && r["jobs"].as_u64() == Some(jobs))
    };
    let counts = |row: &Value| -> Vec<(String, u64)> {
        row["controller_rpcs"]
            .as_array()
            .map(|rpcs| {
                rpcs.iter()
                    .filter_map(|r| Some((r["type"].as_str()?.to_string(), r["count"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let total = |row: &Value| counts(row).iter().map(|(_, n)| n).sum::<u64>();
    let per_job = |row: &Value| {
        row["jobs"]
            .as_u64()
            .filter(|&j| j > 0)
            .map(|j| total(row) as f64 / j as f64)
    };
    for row in &rows {
        let mode = wait_mode(row);
        let jobs = row["jobs"].as_u64().unwrap_or(0);
        let rpcs = counts(row);
        let mut top: Vec<String> = rpcs
            .iter()
            .take(5)
            .map(|(name, n)| format!("{} {n}", name.trim_start_matches("REQUEST_")))
            .collect();
        if rpcs.len() > 5 {
            top.push("…".into());
        }
        let submit = (mode != "submit").then(|| find("submit", jobs)).flatten();
        let succeeded = row["succeeded"].as_u64().unwrap_or(0);
        table.row(
            format!(
                "`wait = \"{mode}\"`, {jobs} {} of {} s ({succeeded} succeeded; batchci's CPU {} per job)",
                if jobs == 1 { "job" } else { "jobs" },
                row["job_seconds"],
                number(row, "cpu_ms_per_job").map_or("—".into(), |p| format!("{p:.0} ms"))
            ),
            format!(
                "{} in all, {} per job: {}",
                total(row),
                fmt1(per_job(row)),
                if top.is_empty() {
                    "none".into()
                } else {
                    top.join(", ")
                }
            ),
            submit.map_or("—".into(), |s| {
                format!("`wait = \"submit\"` {} per job", fmt1(per_job(s)))
            }),
            "—",
            join_verdict(
                ratio(per_job(row), submit.and_then(&per_job), 0.0),
                (succeeded != jobs).then_some("**not every job succeeded**"),
            ),
        );
    }
    if let Some(queued) = queued_before.filter(|&q| q > 0) {
        table.notes.push(format!(
            "Real Slurm was not idle: {queued} other {} in its queue when this run started, \
             and the counts include whatever else asked its controller meanwhile.",
            if queued == 1 { "job was" } else { "jobs were" }
        ));
    }
    table.notes.extend(problem_note(run));
    table
}

/// How many jobs real Slurm's queue holds, if `squeue` answers.
fn real_queue_length(slurm: &RealSlurm) -> Option<usize> {
    let RealSlurm::Running { conf } = slurm else {
        return None;
    };
    let output = Command::new("squeue")
        .args(["-h", "-o", "%i"])
        .env("SLURM_CONF", conf)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
    )
}

fn mock_cluster_table(run: &BenchRun, slurm: &RealSlurm) -> Table {
    let mut table = Table::new("simulated cluster");
    let Some(json) = &run.json else {
        table.notes.extend(problem_note(run));
        return table;
    };
    let rt = &json["sbatch_round_trip"];
    let fake = number(rt, "fake_median_ms");
    let real = number(rt, "real_median_ms");
    let target = number(rt, "target_ms").unwrap_or(2.0);
    let f_ms = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2} ms"));
    table.row(
        "`sbatch` round trip (median)".into(),
        f_ms(fake),
        real.map_or_else(
            || {
                if slurm.running() {
                    "—".into()
                } else {
                    "— (no real Slurm in this run)".into()
                }
            },
            |r| format!("real `sbatch` {}", f_ms(Some(r))),
        ),
        &format!("≤ {target} ms"),
        join_verdict(ratio(fake, real, 0.0), fake.map(|f| verdict(f <= target))),
    );
    table.headline();
    let tp = &json["submissions_per_second"];
    if let Some(per_second) = number(tp, "per_second") {
        let target = number(tp, "target").unwrap_or(2000.0);
        table.row(
            format!("submissions through the daemon, {} clients", tp["clients"]),
            format!("{} /s", thousands(per_second)),
            "—".into(),
            &format!("≥ {} /s", thousands(target)),
            verdict(per_second >= target).into(),
        );
        table.headline();
    }
    let queue = &json["queued_jobs"];
    if let Some(queued) = number(queue, "queued") {
        let target = number(queue, "target").unwrap_or(10000.0);
        table.row(
            format!("{} held jobs in the queue", thousands(queued)),
            format!(
                "`squeue` of all {}; `sbatch` {}",
                f_ms(number(queue, "squeue_all_ms")),
                f_ms(number(queue, "fake_sbatch_median_ms_with_queue"))
            ),
            format!("`sbatch` on an empty queue {}", f_ms(fake)),
            &format!("{} jobs held", thousands(target)),
            join_verdict(
                ratio(number(queue, "fake_sbatch_median_ms_with_queue"), fake, 0.0),
                Some(verdict(queued >= target)),
            ),
        );
        table.headline();
    }
    let ts = &json["time_scale_accuracy"];
    if let Some(error) = number(ts, "max_relative_error") {
        let target = number(ts, "target_relative_error").unwrap_or(0.01);
        let in_order = ts["in_order"].as_bool().unwrap_or(false);
        table.row(
            format!(
                "time-scale accuracy at `time_scale = {}`: recorded run time against the limit, and the chain against the sum of the limits (largest error)",
                ts["time_scale"].as_f64().map_or("?".into(), trim_number)
            ),
            format!(
                "{:.2} %, events {}; a polling client saw each end ≤ {:.1} ms (real) after it",
                error * 100.0,
                if in_order { "in order" } else { "OUT of order" },
                number(ts, "max_seen_after_real_ms").unwrap_or(f64::NAN),
            ),
            "—".into(),
            &format!("≤ {:.0} %", target * 100.0),
            verdict(error <= target && in_order).into(),
        );
        table.headline();
    }
    table.notes.extend(problem_note(run));
    table
}

/// The log bench's table: its known shape (a `throughput` object and a `latency` array), any
/// array of objects as a plain table, anything else as raw JSON.
fn log_table(run: &BenchRun) -> Table {
    let mut table = Table::new("batchci");
    let Some(json) = &run.json else {
        table.notes.extend(problem_note(run));
        return table;
    };
    let throughput = &json["throughput"];
    if let (Some(ours), Some(tail)) = (
        number(throughput, "batchci_mb_per_s"),
        number(throughput, "tail_mb_per_s"),
    ) {
        let r = ours / tail;
        let bytes = number(throughput, "bytes");
        // MB/s of the median of a list of seconds.
        let rate = |key: &str| -> Option<f64> {
            let seconds: Vec<f64> = throughput[key]
                .as_array()?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            let median = nearest_rank_median(&seconds)?;
            bytes.filter(|_| median > 0.0).map(|b| b / median / 1e6)
        };
        let runs = throughput["batchci_seconds"].as_array().map_or(0, Vec::len);
        table.row(
            format!(
                "throughput, a Slurm job's output → GitLab, {} MiB, one masked variable (median of {runs})",
                throughput["mib"]
            ),
            format!("{ours:.0} MB/s"),
            match rate("write_seconds") {
                Some(write) => format!(
                    "`tail -F` {tail:.0} MB/s (the write itself: {write:.0} MB/s)"
                ),
                None => format!("`tail -F` {tail:.0} MB/s"),
            },
            "≥ 0.8× `tail -F`",
            join_verdict(Some(r), Some(verdict(r >= 0.8))),
        );
        table.headline();
        if let Some(library) = rate("library_seconds") {
            table.row(
                "throughput, follow → buffer in the bench's process (batchci's library without GitLab)"
                    .into(),
                format!("{library:.0} MB/s"),
                format!("`tail -F` {tail:.0} MB/s"),
                "—",
                join_verdict(Some(library / tail), None),
            );
        }
        let median = |key: &str| -> Option<f64> {
            let values: Vec<f64> = throughput[key]
                .as_array()?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            nearest_rank_median(&values)
        };
        if let Some(cpu) = median("batchci_cpu_seconds") {
            table.row(
                format!("CPU per {} MiB run (median)", throughput["mib"]),
                format!("batchci {}", secs(Some(cpu))),
                format!("mock GitLab {}", secs(median("gitlab_cpu_seconds"))),
                "—",
                "—".into(),
            );
        }
        let wrong: Vec<(&str, u64)> = ["lost", "duplicated", "changed", "leaked"]
            .iter()
            .filter_map(|k| Some((*k, throughput.get(*k)?.as_u64()?)))
            .collect();
        if !wrong.is_empty() {
            let sum: u64 = wrong.iter().map(|(_, n)| n).sum();
            table.row(
                "bytes lost, duplicated, changed; secrets leaked".into(),
                wrong
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                "—".into(),
                "0",
                verdict(sum == 0).into(),
            );
            table.headline();
        }
    }
    if let Some(latency) = json["latency"].as_array() {
        for row in latency {
            let what = row["what"].as_str().unwrap_or("?");
            let p99 = number(row, "p99_ms");
            // The bench's own targets: p99 ≤ 50 ms with inotify, ≤ the poll interval (named
            // in the row, "polling 500 ms") without.
            let poll_interval = what
                .strip_suffix(" ms")
                .and_then(|w| w.rsplit(' ').next())
                .and_then(|n| n.parse::<f64>().ok());
            let target = if what.contains("inotify") {
                Some(50.0)
            } else if what.contains("polling") {
                poll_interval
            } else {
                None
            };
            table.row(
                format!("latency, {what} (p50 / p99 / max)"),
                format!(
                    "{} / {} / {} ms",
                    fmt1(number(row, "p50_ms")),
                    fmt1(p99),
                    fmt1(number(row, "max_ms"))
                ),
                "—".into(),
                &target.map_or("—".into(), |t| format!("p99 ≤ {t:.0} ms")),
                join_verdict(None, target.zip(p99).map(|(t, p)| verdict(p <= t))),
            );
            if target.is_some() {
                table.headline();
            }
        }
    }
    if table.rows.is_empty() {
        // A shape this report does not know: plain tables of its arrays of objects, else raw.
        let arrays: Vec<(String, &Vec<Value>)> = match json {
            Value::Array(items) => vec![(String::new(), items)],
            Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_array()?)))
                .collect(),
            _ => Vec::new(),
        };
        let mut any = false;
        for (name, items) in arrays {
            if let Some(text) = generic_table(items) {
                if !name.is_empty() {
                    table.notes.push(format!("`{name}`:\n"));
                }
                table.notes.push(text);
                any = true;
            }
        }
        if !any {
            let raw = serde_json::to_string_pretty(json).unwrap_or_default();
            table
                .notes
                .push(format!("Its JSON, as written:\n\n```json\n{raw}\n```"));
        }
    }
    table.notes.extend(problem_note(run));
    table
}

/// The page's summary: every row an area's table marked, linked to its section.
fn summary(tables: &[Area]) -> String {
    let mut text = String::from(
        "| area | what | measured | anchor | target | ratio / verdict |\n|---|---|---|---|---|---|\n",
    );
    let mut any = false;
    for area in tables {
        for &index in &area.table.headlines {
            let [what, value, anchor, target, verdict] = &area.table.rows[index];
            let _ = writeln!(
                text,
                "| [{}](#{}) | {what} | {value} | {anchor} | {target} | {verdict} |",
                area.short,
                slug(area.heading)
            );
            any = true;
        }
    }
    if any {
        text.trim_end().to_string()
    } else {
        "Nothing with a target was measured in this run.".into()
    }
}

/// The anchor GitHub gives a heading.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// One section of the page: its heading (as in the template), a short name, its table.
struct Area {
    heading: &'static str,
    short: &'static str,
    table: Table,
}

/// The median as log-throughput-bench prints it (nearest rank: the lower of two middles).
fn nearest_rank_median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = sorted.len().div_ceil(2);
    rank.checked_sub(1).map(|i| sorted[i])
}

/// `15143.2` as `15,143`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut text = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            text.push(',');
        }
        text.push(c);
    }
    if value < 0.0 {
        format!("-{text}")
    } else {
        text
    }
}

fn fmt1(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.1}"))
}

fn fmt2(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.2}"))
}

/// A markdown table of the scalar fields of an array of objects.
fn generic_table(items: &[Value]) -> Option<String> {
    let mut keys: Vec<String> = Vec::new();
    for item in items {
        for (k, v) in item.as_object()? {
            if !v.is_array() && !v.is_object() && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    if keys.is_empty() {
        return None;
    }
    let mut text = format!("| {} |\n|{}\n", keys.join(" | "), "---|".repeat(keys.len()));
    for item in items {
        let cells: Vec<String> = keys
            .iter()
            .map(|k| match &item[k] {
                Value::Null => "—".into(),
                Value::Number(n) => n
                    .as_f64()
                    .filter(|f| f.fract() != 0.0)
                    .map_or(n.to_string(), |f| format!("{f:.3}")),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let _ = writeln!(text, "| {} |", cells.join(" | "));
    }
    Some(text)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    })
}

// ---------------------------------------------------------------------------------------------
// Plots.

/// One row of a strip chart: its name and its samples, by series.
struct Strip {
    name: String,
    samples: Vec<(usize, Vec<f64>)>,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(127, 127, 127),
    RGBColor(44, 160, 44),
];

fn plot_error(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// A horizontal strip chart on a log axis: one row per strip, each sample a dot (series by
/// colour, spread so they do not hide each other), each series' median a bar.
fn strip_chart(
    path: &Path,
    title: &str,
    unit: &str,
    series: &[&str],
    strips: &[Strip],
) -> Result<(), String> {
    let values: Vec<f64> = strips
        .iter()
        .flat_map(|s| s.samples.iter().flat_map(|(_, v)| v.iter().copied()))
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return Err("no samples".into());
    }
    let floor = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        / 2.0;
    let ceiling = values.iter().copied().fold(0.0, f64::max).max(floor * 4.0) * 2.0;
    let height = 110 + 46 * strips.len() as u32 + 21 * series.len() as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let rows = strips.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(250)
        .build_cartesian_2d(
            (floor..ceiling).log_scale(),
            // Room above the rows for the legend.
            -0.6f64..rows - 0.1 + 0.45 * series.len() as f64,
        )
        .map_err(plot_error)?;
    let x_label = |x: &f64| trim_number(*x);
    chart
        .configure_mesh()
        .y_labels(0)
        .x_label_formatter(&x_label)
        .x_desc(unit)
        .disable_y_mesh()
        .light_line_style(RGBColor(240, 240, 240))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_error)?;
    row_labels(&root, &chart, floor, strips.iter().map(|s| s.name.as_str()))?;
    for (index, name) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let offset = if series.len() > 1 {
            (index as f64 / (series.len() - 1) as f64 - 0.5) * 0.5
        } else {
            0.0
        };
        let mut dots = Vec::new();
        let mut medians = Vec::new();
        for (row, strip) in strips.iter().enumerate() {
            for (_, values) in strip.samples.iter().filter(|(s, _)| *s == index) {
                for (k, v) in values.iter().enumerate() {
                    // A small fixed spread, so that equal values stay visible.
                    let jitter = ((k * 37) % 11) as f64 / 11.0 * 0.12 - 0.06;
                    dots.push((v.max(floor), row as f64 + offset + jitter));
                }
                let (median, _) = bench::harness::median_and_max(values);
                if median.is_finite() {
                    medians.push((median.max(floor), row as f64 + offset));
                }
            }
        }
        if dots.is_empty() {
            continue;
        }
        chart
            .draw_series(
                dots.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, colour.mix(0.55).filled())),
            )
            .map_err(plot_error)?
            .label(*name)
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
        chart
            .draw_series(medians.iter().map(|&(x, y)| {
                PathElement::new(vec![(x, y - 0.14), (x, y + 0.14)], colour.stroke_width(3))
            }))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Writes each row's name left of the plotting area, level with row `i` (y = i).
fn row_labels<'a, X>(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    chart: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, RangedCoordf64>>,
    left: X::ValueType,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), String>
where
    X: Ranged,
    X::ValueType: Clone,
{
    let style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (row, name) in names.enumerate() {
        let (x, y) = chart.backend_coord(&(left.clone(), row as f64));
        root.draw(&Text::new(name.to_string(), (x - 8, y), style.clone()))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// `0.001`, `10`, `1000` without trailing zeros.
fn trim_number(x: f64) -> String {
    let text = format!("{x:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

fn allocation_plot(path: &Path, run: &BenchRun) -> Result<(), String> {
    let mut strips = Vec::new();
    for row in array(run) {
        let samples = row["samples"].as_array().cloned().unwrap_or_default();
        let take = |key: &str| -> Vec<f64> {
            samples
                .iter()
                .filter_map(|s| s[key].as_f64())
                .map(|s| s * 1000.0)
                .collect()
        };
        let backend = row["backend"].as_str().unwrap_or("?");
        let mut series = vec![(0, take("batchci_s")), (1, take("scheduler_s"))];
        if row["scenario"] == "clone" {
            series.push((3, take("git_s")));
        }
        series.push((2, take("total_s")));
        strips.push(Strip {
            name: format!(
                "{} · {}",
                label(backend),
                row["scenario"].as_str().unwrap_or("?")
            ),
            samples: series,
        });
    }
    strip_chart(
        path,
        "Job handed out → first line, per job",
        "ms (log scale)",
        &["batchci's share", "scheduler's share", "total", "git clone"],
        &strips,
    )
}

fn latency_plot(path: &Path, run: &BenchRun) -> Result<(), String> {
    let strips: Vec<Strip> = array(run)
        .iter()
        .map(|row| {
            let scenario = row["scenario"].as_str().unwrap_or("?");
            let series = usize::from(scenario == "cancel");
            Strip {
                name: format!(
                    "{} · {scenario}",
                    label(row["backend"].as_str().unwrap_or("?"))
                ),
                samples: vec![(
                    series,
                    row["samples_s"]
                        .as_array()
                        .map(|s| s.iter().filter_map(Value::as_f64).collect())
                        .unwrap_or_default(),
                )],
            }
        })
        .collect();
    strip_chart(
        path,
        "Until GitLab knows: end of a job and cancel, per job",
        "seconds (log scale; 0 drawn at the left edge)",
        &["script end → final state", "cancel → final state"],
        &strips,
    )
}

fn scale_plot(path: &Path, run: &BenchRun) -> Result<(), String> {
    let rows = array(run);
    /// One way of waiting: its name, its points and its target (2× its smallest run).
    type Line = (String, Vec<(f64, f64)>, f64);
    let mut lines: Vec<Line> = Vec::new();
    for mode in wait_modes(&rows) {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| wait_mode(r) == mode)
            .filter_map(|r| Some((r["jobs"].as_f64()?, number(r, "cpu_ms_per_job")?)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some(&(_, smallest)) = points.first() {
            lines.push((mode, points, smallest * 2.0));
        }
    }
    if lines.is_empty() {
        return Err("no samples".into());
    }
    let all: Vec<(f64, f64)> = lines.iter().flat_map(|l| l.1.iter().copied()).collect();
    let low = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) / 1.5;
    let high = all.iter().map(|p| p.0).fold(0.0, f64::max) * 1.5;
    let top = all
        .iter()
        .map(|p| p.1)
        .chain(lines.iter().map(|l| l.2))
        .fold(0.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "batchci's CPU per job against concurrent jobs",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((low..high).log_scale(), 0f64..top.max(1e-9))
        .map_err(plot_error)?;
    let x_label = |x: &f64| trim_number(*x);
    chart
        .configure_mesh()
        .x_label_formatter(&x_label)
        .x_desc("concurrent jobs in one batchci run (log scale)")
        .y_desc("CPU ms per job")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_error)?;
    for (index, (mode, points, target)) in lines.iter().enumerate() {
        let colour = [COLOURS[0], COLOURS[3], COLOURS[2]][index % 3];
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("wait = \"{mode}\""))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(PointSeries::of_element(
                points.clone(),
                4,
                colour.filled(),
                &|c, s, st| EmptyElement::at(c) + Circle::new((0, 0), s, st),
            ))
            .map_err(plot_error)?;
        let faint = colour.mix(0.6);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(low, *target), (high, *target)],
                6,
                4,
                faint.stroke_width(1),
            ))
            .map_err(plot_error)?
            .label(format!("target, {mode}: ≤ 2× its smallest run"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], faint.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Throughput by chunk size when the log bench's JSON has such rows (an array of objects with
/// a numeric `*chunk*` field and `*per_s` fields), else bars of its `throughput` object's MB/s.
fn log_plot(path: &Path, run: &BenchRun) -> Result<(), String> {
    let Some(json) = &run.json else {
        return Err("no JSON".into());
    };
    let mut arrays: Vec<&Vec<Value>> = Vec::new();
    match json {
        Value::Array(items) => arrays.push(items),
        Value::Object(map) => arrays.extend(map.values().filter_map(Value::as_array)),
        _ => {}
    }
    for items in arrays {
        let Some(first) = items.first().and_then(Value::as_object) else {
            continue;
        };
        let Some(chunk) = first
            .keys()
            .find(|k| k.contains("chunk") && first[*k].is_number())
        else {
            continue;
        };
        let rates: Vec<&String> = first
            .keys()
            .filter(|k| k.ends_with("per_s") && first[*k].is_number())
            .collect();
        if rates.is_empty() {
            continue;
        }
        let lines: Vec<(String, Vec<(f64, f64)>)> = rates
            .iter()
            .map(|rate| {
                let mut points: Vec<(f64, f64)> = items
                    .iter()
                    .filter_map(|i| Some((i[chunk.as_str()].as_f64()?, i[rate.as_str()].as_f64()?)))
                    .filter(|(c, _)| *c > 0.0)
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                (rate.to_string(), points)
            })
            .collect();
        return line_chart(path, "Log throughput by chunk size", chunk, &lines);
    }
    let throughput = &json["throughput"];
    let mut bars: Vec<(String, f64)> = Vec::new();
    if let Some(tail) = number(throughput, "tail_mb_per_s") {
        bars.push(("tail -F".into(), tail));
    }
    if let Some(ours) = number(throughput, "batchci_mb_per_s") {
        bars.push(("batchci → GitLab".into(), ours));
    }
    let bytes = number(throughput, "bytes");
    if let (Some(bytes), Some(library)) = (bytes, throughput["library_seconds"].as_array()) {
        let seconds: Vec<f64> = library.iter().filter_map(Value::as_f64).collect();
        let median = nearest_rank_median(&seconds).unwrap_or(0.0);
        if median > 0.0 {
            bars.push(("follow → buffer (library)".into(), bytes / median / 1e6));
        }
    }
    if bars.is_empty() {
        return Err("no throughput in its JSON".into());
    }
    bar_chart(path, "Log throughput (MB/s, median)", &bars)
}

fn line_chart(
    path: &Path,
    title: &str,
    x_name: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let all: Vec<(f64, f64)> = lines.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    if all.is_empty() {
        return Err("no points".into());
    }
    let low = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) / 1.5;
    let high = all.iter().map(|p| p.0).fold(0.0, f64::max) * 1.5;
    let top = all.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((low..high).log_scale(), 0f64..top.max(1e-9))
        .map_err(plot_error)?;
    let x_label = |x: &f64| trim_number(*x);
    chart
        .configure_mesh()
        .x_label_formatter(&x_label)
        .x_desc(format!("{x_name} (log scale)"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_error)?;
    for (index, (name, points)) in lines.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn bar_chart(path: &Path, title: &str, bars: &[(String, f64)]) -> Result<(), String> {
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max) * 1.15;
    let height = 110 + 50 * bars.len() as u32;
    let root = SVGBackend::new(path, (800, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(200)
        .build_cartesian_2d(0f64..top.max(1e-9), -0.6f64..bars.len() as f64 - 0.4)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .y_labels(0)
        .disable_y_mesh()
        .x_desc("MB/s")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_error)?;
    row_labels(&root, &chart, 0.0, bars.iter().map(|b| b.0.as_str()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, value))| {
            let y = i as f64;
            Rectangle::new(
                [(0.0, y - 0.3), (*value, y + 0.3)],
                COLOURS[i % COLOURS.len()].filled(),
            )
        }))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run.

/// When, where and how this run was taken.
fn run_description(options: &Options, slurm: &RealSlurm, load: &str, minutes: f64) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1048576.0));
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or("?".into(), |v| v.trim_matches('"').to_string());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("?".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        });
    let slurm_text = match slurm {
        RealSlurm::Running { conf } => format!("real Slurm running (`SLURM_CONF={conf}`)"),
        RealSlurm::Absent { why } => why.clone(),
    };
    let mode = if options.smoke {
        "**smoke run** (`--smoke`: tiny sizes, not a measurement)"
    } else {
        "full run"
    };
    format!(
        "Last run: {} UTC, {mode}, commit `{commit}`, {minutes:.1} minutes; {cores} cores, {memory}, {os}, Linux {kernel}; load average at the start {load}; {slurm_text}.",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
    )
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (key, value) in values {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    text
}

/// What a bench printed, for a ```text block.
fn printed(run: &BenchRun) -> String {
    if run.printed.is_empty() {
        return "(nothing: see the note above the plot)".into();
    }
    format!("$ {}\n{}", run.command, run.printed)
}

fn main() {
    let options = Options::parse();
    for area in &options.skip {
        if !AREAS.contains(&area.as_str()) {
            eprintln!("--skip {area}: not one of {}", AREAS.join(", "));
            std::process::exit(2);
        }
    }
    let started = Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let out = options.out.clone().unwrap_or_else(|| {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("docs");
        docs.canonicalize().unwrap_or(docs)
    });
    let plots = out.join("benchmarks");
    if let Err(error) = std::fs::create_dir_all(&plots) {
        eprintln!("{}: {error}", plots.display());
        std::process::exit(2);
    }
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let slurm = if options.smoke {
        RealSlurm::Absent {
            why: "real Slurm not used (`--smoke` measures the simulated cluster and the shell executor only)".into(),
        }
    } else {
        real_slurm()
    };
    eprintln!(
        "report: {}",
        match &slurm {
            RealSlurm::Running { conf } => format!("real Slurm answers (SLURM_CONF={conf})"),
            RealSlurm::Absent { why } => why.clone(),
        }
    );
    let json_dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("temporary directory: {error}");
            std::process::exit(2);
        }
    };
    let context = Context {
        bin_dir,
        json_dir,
        slurm: slurm.clone(),
        options,
    };
    let options = &context.options;
    let wanted = |area: &str| !options.skip.iter().any(|s| s == area);
    let skipped = || BenchRun::skipped("left out with --skip");
    let smoke = options.smoke;
    let real = slurm.running();
    let backends = if real {
        "shell,slurm,slurm-real"
    } else {
        "shell,slurm"
    };
    let strings = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();

    let mock_cluster = if !wanted("mock-cluster") {
        skipped()
    } else {
        // Its sizes are fixed; it takes seconds.
        context.run("mock-cluster-bench", &[], false)
    };
    let allocation = if !wanted("allocation") {
        skipped()
    } else if smoke {
        context.run(
            "allocation-latency-bench",
            &strings(&["--backends", "shell,slurm", "--runs", "1"]),
            true,
        )
    } else {
        context.run(
            "allocation-latency-bench",
            &strings(&["--backends", backends, "--runs", "10", "--together", "2"]),
            true,
        )
    };
    let latency = if !wanted("latency") {
        skipped()
    } else if smoke {
        context.run(
            "executor-latency-bench",
            &strings(&[
                "--backends",
                "shell,slurm",
                "--runs",
                "1",
                "--script-seconds",
                "1",
                "--no-cancel",
            ]),
            true,
        )
    } else {
        context.run(
            "executor-latency-bench",
            &strings(&[
                "--backends",
                backends,
                "--script-seconds",
                "5,45",
                "--runs",
                "3",
            ]),
            true,
        )
    };
    let scale_seconds = if smoke { "2" } else { "20" };
    let scale = if !wanted("scale") {
        skipped()
    } else {
        let jobs = if smoke { "10" } else { "10,100,1000" };
        context.run(
            "executor-scale-bench",
            &strings(&[
                "--jobs",
                jobs,
                "--job-seconds",
                scale_seconds,
                "--wait",
                "submit,batched",
            ]),
            true,
        )
    };
    // The controller's RPCs on real Slurm: its one node runs two jobs at a time.
    let mut real_queue_before = None;
    let scale_real = if !wanted("scale") {
        skipped()
    } else if !real {
        BenchRun::skipped("real Slurm not running")
    } else {
        real_queue_before = real_queue_length(&slurm);
        context.run_as(
            "executor-scale-bench-real",
            "executor-scale-bench",
            &strings(&[
                "--cluster",
                "real",
                "--jobs",
                "1,20",
                "--job-seconds",
                "5",
                "--wait",
                "submit,batched",
            ]),
            true,
        )
    };
    let log = if !wanted("log") {
        skipped()
    } else if !context.bin_dir.join("log-throughput-bench").exists() {
        BenchRun::skipped("log-throughput-bench is not built: not measured")
    } else {
        // Only the options it has (`--help` says), so that an older build still runs.
        let help = Command::new(context.bin_dir.join("log-throughput-bench"))
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let wanted_args: &[(&str, &str)] = if smoke {
            &[("--mib", "8"), ("--runs", "1"), ("--lines", "20")]
        } else {
            &[("--mib", "256"), ("--runs", "5"), ("--lines", "200")]
        };
        let mut args = Vec::new();
        for (flag, value) in wanted_args {
            if help.contains(&format!("{flag} ")) {
                args.push(flag.to_string());
                args.push(value.to_string());
            }
        }
        context.run("log-throughput-bench", &args, true)
    };

    // Tables, plots, the page.
    let areas = [
        Area {
            heading: "From GitLab handing out a job to its first line",
            short: "first line",
            table: allocation_table(&allocation, &slurm),
        },
        Area {
            heading: "The end of a job, and of a cancelled one",
            short: "end of a job",
            table: latency_table(&latency, &slurm),
        },
        Area {
            heading: "Concurrent jobs in one batchci run",
            short: "concurrent jobs",
            table: scale_table(&scale),
        },
        Area {
            heading: "Controller RPCs on real Slurm",
            short: "real Slurm RPCs",
            table: scale_real_table(&scale_real, &slurm, real_queue_before),
        },
        Area {
            heading: "The simulated cluster",
            short: "simulated cluster",
            table: mock_cluster_table(&mock_cluster, &slurm),
        },
        Area {
            heading: "A job's log, end to end",
            short: "log pipeline",
            table: log_table(&log),
        },
    ];
    let table = |heading: &str| {
        areas
            .iter()
            .find(|a| a.heading == heading)
            .map_or(String::new(), |a| a.table.markdown())
    };
    let mut plot_notes = Vec::new();
    let mut plot =
        |name: &str, run: &BenchRun, draw: fn(&Path, &BenchRun) -> Result<(), String>| {
            let path = plots.join(name);
            if run.json.is_none() {
                let _ = std::fs::remove_file(&path);
                return false;
            }
            match draw(&path, run) {
                Ok(()) => true,
                Err(error) => {
                    plot_notes.push(format!("{name}: {error}"));
                    let _ = std::fs::remove_file(&path);
                    false
                }
            }
        };
    plot("allocation-latency.svg", &allocation, allocation_plot);
    plot("end-latency.svg", &latency, latency_plot);
    plot("scale.svg", &scale, scale_plot);
    let log_drawn = plot("log-throughput.svg", &log, log_plot);
    for note in &plot_notes {
        eprintln!("report: no plot {note}");
    }

    let mut results = serde_json::Map::new();
    for (name, run) in [
        ("mock-cluster-bench", &mock_cluster),
        ("allocation-latency-bench", &allocation),
        ("executor-latency-bench", &latency),
        ("executor-scale-bench", &scale),
        ("executor-scale-bench --cluster real", &scale_real),
        ("log-throughput-bench", &log),
    ] {
        results.insert(
            name.to_string(),
            json!({
                "command": run.command,
                "seconds": run.seconds,
                "problem": run.problem,
                "results": run.json,
            }),
        );
    }
    let results_path = plots.join("results.json");
    let results_text = serde_json::to_string_pretty(&Value::Object(results)).unwrap_or_default();
    let mut failed = false;
    if let Err(error) = std::fs::write(&results_path, results_text + "\n") {
        eprintln!("{}: {error}", results_path.display());
        failed = true;
    }

    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let block = |run: &BenchRun| {
        if run.printed.is_empty() {
            String::new()
        } else {
            format!("```text\n{}\n```", printed(run))
        }
    };
    let page = fill(
        TEMPLATE,
        &[
            ("run", run_description(options, &slurm, &load, minutes)),
            ("summary", summary(&areas)),
            ("mock_cluster_table", table("The simulated cluster")),
            (
                "allocation_table",
                table("From GitLab handing out a job to its first line"),
            ),
            ("allocation_output", printed(&allocation)),
            (
                "latency_table",
                table("The end of a job, and of a cancelled one"),
            ),
            ("latency_output", printed(&latency)),
            ("scale_table", table("Concurrent jobs in one batchci run")),
            ("scale_output", printed(&scale)),
            ("scale_seconds", scale_seconds.to_string()),
            ("scale_real_table", table("Controller RPCs on real Slurm")),
            ("scale_real_output", block(&scale_real)),
            ("log_table", table("A job's log, end to end")),
            (
                "log_plot",
                if log_drawn {
                    "![Log throughput](benchmarks/log-throughput.svg)".into()
                } else {
                    String::new()
                },
            ),
            ("log_output", block(&log)),
        ],
    );
    // Empty placeholders leave blank lines; keep at most one.
    let mut page = page.replace("\n\n\n\n", "\n\n").replace("\n\n\n", "\n\n");
    if !page.ends_with('\n') {
        page.push('\n');
    }
    let page_path = out.join("benchmarks.md");
    if let Err(error) = std::fs::write(&page_path, &page) {
        eprintln!("{}: {error}", page_path.display());
        failed = true;
    }

    for area in &areas {
        println!("## {}\n\n{}\n", area.heading, area.table.markdown());
    }
    println!(
        "Written: {} and {} ({minutes:.1} minutes).",
        page_path.display(),
        plots.display()
    );
    for run in [
        &mock_cluster,
        &allocation,
        &latency,
        &scale,
        &scale_real,
        &log,
    ] {
        if let Some(problem) = &run.problem
            && !run.command.is_empty()
        {
            eprintln!("report: {problem}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(json: Value) -> BenchRun {
        BenchRun {
            command: "executor-scale-bench".into(),
            printed: String::new(),
            json: Some(json),
            problem: None,
            seconds: 1.0,
        }
    }

    fn scale_row(wait: &str, jobs: u64, cpu_ms: f64, children: u64) -> Value {
        json!({
            "cluster": "simulated", "controller_rpcs": [], "wait": wait, "jobs": jobs,
            "succeeded": jobs, "job_seconds": 20, "cpu_ms_per_job": cpu_ms,
            "inotify_instances": 1, "threads": 4, "children": children,
            "status_queries_per_job_minute": 1.5, "wall_seconds": 21.0,
        })
    }

    #[test]
    fn each_way_of_waiting_is_judged_against_its_own_smallest_run() {
        let run = run_with(json!([
            scale_row("submit", 10, 10.0, 10),
            scale_row("submit", 1000, 25.0, 1138),
            scale_row("batched", 10, 5.0, 0),
            scale_row("batched", 1000, 9.0, 209),
        ]));
        let table = scale_table(&run);
        let text = table.markdown();
        assert!(
            text.contains(
                "10.0 ms at 10 jobs, same mode | ≤ 2× the smallest run | 2.50× · **not met**"
            ),
            "{text}"
        );
        assert!(
            text.contains("5.0 ms at 10 jobs, same mode | ≤ 2× the smallest run | 1.80× · met"),
            "{text}"
        );
        assert!(text.contains("209 children at most"), "{text}");
        assert!(
            text.contains("`wait = \"submit\"`: 1138 children at most"),
            "{text}"
        );
        // The largest run of each way of waiting goes to the summary.
        assert_eq!(table.headlines.len(), 2);
    }

    #[test]
    fn controller_rpcs_are_counted_per_job_against_the_submit_run() {
        let row = |wait: &str, jobs: u64, rpcs: Value| {
            let mut row = scale_row(wait, jobs, 20.0, 0);
            row["cluster"] = json!("real");
            row["controller_rpcs"] = rpcs;
            row
        };
        let run = run_with(json!([
            row(
                "submit",
                20,
                json!([
                    {"type": "REQUEST_JOB_INFO_SINGLE", "count": 65},
                    {"type": "REQUEST_FED_INFO", "count": 65},
                    {"type": "REQUEST_SUBMIT_BATCH_JOB", "count": 20},
                    {"type": "REQUEST_COMPLETE_BATCH_SCRIPT", "count": 20},
                    {"type": "REQUEST_STATS_INFO", "count": 1},
                ])
            ),
            row(
                "batched",
                20,
                json!([
                    {"type": "REQUEST_JOB_INFO_SINGLE", "count": 40},
                    {"type": "REQUEST_FED_INFO", "count": 40},
                    {"type": "REQUEST_JOB_INFO", "count": 6},
                    {"type": "REQUEST_PARTITION_INFO", "count": 6},
                    {"type": "REQUEST_SUBMIT_BATCH_JOB", "count": 20},
                    {"type": "REQUEST_COMPLETE_BATCH_SCRIPT", "count": 20},
                ])
            ),
        ]));
        let running = RealSlurm::Running {
            conf: "/tmp/slurm.conf".into(),
        };
        let text = scale_real_table(&run, &running, Some(0)).markdown();
        assert!(
            text.contains("171 in all, 8.6 per job: JOB_INFO_SINGLE 65"),
            "{text}"
        );
        assert!(text.contains("132 in all, 6.6 per job"), "{text}");
        assert!(
            text.contains("`wait = \"submit\"` 8.6 per job | — | 0.77× |"),
            "{text}"
        );
        assert!(!text.contains("not idle"), "{text}");
        let busy = scale_real_table(&run, &running, Some(3)).markdown();
        assert!(busy.contains("not idle: 3 other jobs"), "{busy}");
        let absent = RealSlurm::Absent {
            why: "real Slurm not running".into(),
        };
        let text = scale_real_table(&run, &absent, None).markdown();
        assert!(
            text.starts_with("Real Slurm not running: not measured"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_links_each_row_to_its_section() {
        let mut table = Table::new("batchci");
        table.row(
            "throughput".into(),
            "800 MB/s".into(),
            "`tail -F` 1000 MB/s".into(),
            "≥ 0.8× `tail -F`",
            "0.80× · met".into(),
        );
        table.headline();
        let text = summary(&[Area {
            heading: "A job's log, end to end",
            short: "log pipeline",
            table,
        }]);
        assert!(
            text.contains("| [log pipeline](#a-jobs-log-end-to-end) | throughput | 800 MB/s |"),
            "{text}"
        );
    }
}
