//! The contract of a gitlab-runner custom executor that runs jobs through Slurm, checked on a
//! simulated cluster: [`run_scenarios`] drives any [`Subject`] through [`SCENARIOS`] with
//! [`crate::custom_driver`] (gitlab-runner's calls, protocol reference §2) and says of each
//! whether it held, with a one-line reason when not ([`Report`]).

mod cluster;
mod subject;

use std::path::PathBuf;
use std::time::Duration;

pub use cluster::{ClusterError, DEFAULT_CLUSTER, QueuedJob, SimulatedCluster};
pub use subject::{
    ConfigError, SpecError, Subject, load_gitlab_runner_config, parse_custom_executor,
};

use crate::custom_driver::{Driver, JobReport, JobSpec, JobStatus, RunningJob};
use crate::poll::poll_until;

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The executor under test.
    pub subject: Subject,
    /// The cluster file (TOML text).
    pub cluster_file: String,
    /// The `mock-cluster` binary.
    pub mock_cluster: PathBuf,
    /// Where job temp dirs, builds and the cluster go.
    pub work_dir: PathBuf,
    /// How long a line, a queued job or a job's end may take.
    pub patience: Duration,
}

/// One scenario's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The scenario's name.
    pub scenario: &'static str,
    /// `None` when it held; else why not, in one line.
    pub failure: Option<String>,
}

/// Every verdict of a run, in scenario order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The verdicts.
    pub verdicts: Vec<Verdict>,
}

/// Why the scenarios could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The simulated cluster.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A directory under the work dir.
    #[error("cannot create {}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

type Outcome = Result<(), String>;

/// A scenario: its name, what it checks, and the check.
pub struct Scenario {
    /// Short name (the report's first column).
    pub name: &'static str,
    /// What it checks, in one sentence.
    pub checks: &'static str,
    run: fn(&Context) -> Outcome,
}

/// The scenarios, in the order they run.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "passing job",
        checks: "a script that prints a line succeeds and the line is in the job log",
        run: passing_job,
    },
    Scenario {
        name: "whole log",
        checks: "2000 numbered lines a job prints all reach the job log, in order",
        run: whole_log,
    },
    Scenario {
        name: "scheduler parameters",
        checks: "SCHEDULER_PARAMETERS naming a partition (not the default one) puts the Slurm job there",
        run: scheduler_parameters,
    },
    Scenario {
        name: "refused flag",
        checks: "SCHEDULER_PARAMETERS=--uid=0 (a job as another user) fails the job and never reaches sbatch",
        run: refused_flag,
    },
    Scenario {
        name: "failing script",
        checks: "`exit 3` fails the job as script_failure with exit code 3 (BUILD_FAILURE_EXIT_CODE, BUILD_EXIT_CODE_FILE)",
        run: failing_script,
    },
    Scenario {
        name: "system failure",
        checks: "an unreachable Slurm controller fails the job as runner_system_failure (SYSTEM_FAILURE_EXIT_CODE)",
        run: system_failure,
    },
    Scenario {
        name: "after_script status",
        checks: "after a failing script, after_script sees CI_JOB_STATUS=failed",
        run: after_script_status,
    },
    Scenario {
        name: "live output",
        checks: "a line the script prints reaches the job log while the job still runs",
        run: live_output,
    },
    Scenario {
        name: "cancel while pending",
        checks: "SIGTERM while the Slurm job is queued cancels it before run_exec ends",
        run: cancel_while_pending,
    },
    Scenario {
        name: "cancel while running",
        checks: "SIGTERM while the Slurm job runs ends it before run_exec ends",
        run: cancel_while_running,
    },
    Scenario {
        name: "cleanup",
        checks: "after run_exec is SIGKILLed (no trap can run), cleanup_exec leaves no Slurm job",
        run: cleanup_after_kill,
    },
    Scenario {
        name: "unknown stage names",
        checks: "a stage the executor may not know (step_release, besides build_script) runs",
        run: unknown_stage_names,
    },
];

/// The name of the jobs that fill the nodes so that the job under test stays pending.
const BLOCKER: &str = "conformance-blocker";

struct Context {
    options: Options,
    cluster: SimulatedCluster,
    runner_tmp: PathBuf,
    next_id: std::cell::Cell<u64>,
}

/// Starts the simulated cluster and runs every scenario against `options.subject`.
pub fn run_scenarios(options: Options) -> Result<Report, RunError> {
    let runner_tmp = options.work_dir.join("runner-tmp");
    for dir in [&runner_tmp, &options.work_dir.join("builds")] {
        std::fs::create_dir_all(dir).map_err(|source| RunError::Dir {
            path: dir.clone(),
            source,
        })?;
    }
    let cluster = SimulatedCluster::start(
        &options.mock_cluster,
        &options.work_dir,
        &options.cluster_file,
    )?;
    let context = Context {
        options,
        cluster,
        runner_tmp,
        next_id: std::cell::Cell::new(1001),
    };
    let mut verdicts = Vec::new();
    for scenario in SCENARIOS {
        let failure = (scenario.run)(&context).err();
        // A scenario's left-overs must not change the next one's queue.
        context.cancel_all_jobs();
        verdicts.push(Verdict {
            scenario: scenario.name,
            failure,
        });
    }
    Ok(Report { verdicts })
}

impl Report {
    /// Whether every scenario held.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.failure.is_none())
    }

    /// A Markdown table, one row per scenario, and a summary line.
    pub fn markdown(&self, subject: &str) -> String {
        let mut text = format!(
            "# Custom executor conformance: {subject}\n\n| scenario | result | reason |\n|---|---|---|\n"
        );
        for verdict in &self.verdicts {
            let (result, reason) = match &verdict.failure {
                None => ("ok", String::new()),
                Some(reason) => ("FAIL", reason.replace('|', "\\|")),
            };
            text.push_str(&format!("| {} | {result} | {reason} |\n", verdict.scenario));
        }
        let failed = self.verdicts.iter().filter(|v| v.failure.is_some()).count();
        text.push_str(&format!(
            "\n{} of {} scenarios hold\n",
            self.verdicts.len() - failed,
            self.verdicts.len()
        ));
        text
    }

    /// A JUnit XML document, one test case per scenario.
    pub fn junit(&self, subject: &str) -> String {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
        let mut suite = TestSuite::new(format!("custom-executor-conformance: {subject}"));
        for verdict in &self.verdicts {
            let status = match &verdict.failure {
                None => TestCaseStatus::success(),
                Some(reason) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(reason.as_str());
                    status
                }
            };
            suite.add_test_case(TestCase::new(verdict.scenario, status));
        }
        let mut report = quick_junit::Report::new("custom-executor-conformance");
        report.add_test_suite(suite);
        // Serialising into memory fails only on an I/O error, which a String cannot have.
        report
            .to_string()
            .unwrap_or_else(|e| format!("<!-- JUnit report not written: {e} -->\n"))
    }
}

/// An error and its sources, in one line.
fn reason(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl Context {
    fn job(&self) -> JobSpec {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        JobSpec::new(id)
    }

    /// gitlab-runner with the subject, the fakes first on its PATH.
    fn driver(&self) -> Driver {
        let subject = &self.options.subject;
        let base_path = std::env::var("PATH").unwrap_or_default();
        let work = &self.options.work_dir;
        Driver::new(subject.executables.clone(), &self.runner_tmp)
            .dirs(
                Some(
                    subject
                        .builds_dir
                        .clone()
                        .unwrap_or_else(|| work.join("builds")),
                ),
                Some(
                    subject
                        .cache_dir
                        .clone()
                        .unwrap_or_else(|| work.join("cache")),
                ),
            )
            .runner_envs(&self.cluster.env(&base_path))
            // §2.7's defaults (600 s, 10 s) would make a stuck executor stall the run.
            .graceful_kill_timeout(
                subject
                    .graceful_kill_timeout
                    .unwrap_or(self.options.patience),
            )
            .force_kill_timeout(
                subject
                    .force_kill_timeout
                    .unwrap_or(Duration::from_secs(10)),
            )
            .preparation_retry_pause(Duration::from_millis(100))
    }

    fn run(&self, driver: &Driver, job: JobSpec) -> Result<JobReport, String> {
        driver.run(job).map_err(|error| reason(&error))
    }

    fn start(&self, driver: &Driver, job: JobSpec) -> Result<RunningJob, String> {
        driver.start(job).map_err(|error| reason(&error))
    }

    /// The jobs in the queue but the blockers.
    fn queue(&self) -> Result<Vec<QueuedJob>, String> {
        Ok(self
            .cluster
            .queue()
            .map_err(|e| reason(&e))?
            .into_iter()
            .filter(|job| job.name != BLOCKER)
            .collect())
    }

    /// Waits until a job other than the blockers is in `state`.
    fn wait_for_job_in(&self, state: &str) -> Result<QueuedJob, String> {
        let mut found = None;
        poll_until(self.options.patience, || {
            found = self
                .queue()
                .ok()
                .and_then(|q| q.into_iter().find(|job| job.state == state));
            found.is_some()
        });
        found.ok_or_else(|| {
            format!(
                "no Slurm job was {state} within {} s",
                self.options.patience.as_secs()
            )
        })
    }

    /// Fills every node with a job, so that the next job stays pending.
    fn block_nodes(&self) -> Result<(), String> {
        let nodes = self.cluster.nodes().map_err(|e| reason(&e))?;
        for node in &nodes {
            self.cluster
                .command(
                    "sbatch",
                    &[
                        "--exclusive",
                        &format!("--nodelist={node}"),
                        &format!("--job-name={BLOCKER}"),
                        "--output=/dev/null",
                        "--wrap=sleep 3600",
                    ],
                )
                .map_err(|e| reason(&e))?;
        }
        let running = poll_until(self.options.patience, || {
            self.cluster.queue().is_ok_and(|q| {
                q.iter()
                    .filter(|j| j.name == BLOCKER && j.state == "RUNNING")
                    .count()
                    == nodes.len()
            })
        });
        if running {
            Ok(())
        } else {
            Err("the jobs filling the nodes did not start".into())
        }
    }

    fn cancel_all_jobs(&self) {
        for job in self.cluster.queue().unwrap_or_default() {
            let _ = self.cluster.cancel(&job.id);
        }
        poll_until(self.options.patience, || {
            self.cluster.queue().is_ok_and(|q| q.is_empty())
        });
    }
}

/// The job's end as one phrase: `success`, `failed (script_failure, exit code 1)`, or for a
/// system failure its message too.
fn outcome(report: &JobReport) -> String {
    match report.status {
        JobStatus::Success => "success".into(),
        JobStatus::Canceled => "canceled".into(),
        JobStatus::Failed => {
            let reason = report.failure_reason.unwrap_or("unknown_failure");
            let detail = match report.exit_code {
                Some(code) => format!(", exit code {code}"),
                None => report
                    .lines()
                    .into_iter()
                    .rev()
                    .find_map(|line| {
                        line.strip_prefix("ERROR: Job failed (system failure): ")
                            .map(|message| format!(": {message}"))
                    })
                    .unwrap_or_default(),
            };
            format!("failed ({reason}{detail})")
        }
    }
}

fn has_line(report: &JobReport, line: &str) -> bool {
    report.lines().iter().any(|l| l == line)
}

fn passing_job(context: &Context) -> Outcome {
    let job = context
        .job()
        .script(&["echo \"conformance: hello from job $CI_JOB_ID\""]);
    let expected = format!("conformance: hello from job {}", job.id());
    let report = context.run(&context.driver(), job)?;
    if report.status != JobStatus::Success {
        return Err(format!("the job ended {}", outcome(&report)));
    }
    if !has_line(&report, &expected) {
        return Err(format!("the job log has no line {expected:?}"));
    }
    Ok(())
}

/// Lines a job prints in "whole log".
const WHOLE_LOG_LINES: usize = 2000;

fn whole_log(context: &Context) -> Outcome {
    let job = context.job().script(&[&format!(
        "for i in $(seq 1 {WHOLE_LOG_LINES}); do echo \"conformance: line $i\"; done"
    )]);
    let report = context.run(&context.driver(), job)?;
    if report.status != JobStatus::Success {
        return Err(format!("the job ended {}", outcome(&report)));
    }
    let numbers: Vec<usize> = report
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("conformance: line ")?.parse().ok())
        .collect();
    let expected: Vec<usize> = (1..=WHOLE_LOG_LINES).collect();
    if numbers == expected {
        return Ok(());
    }
    let first_wrong = numbers
        .iter()
        .zip(&expected)
        .position(|(got, want)| got != want)
        .unwrap_or(numbers.len().min(expected.len()));
    Err(format!(
        "{} of {WHOLE_LOG_LINES} lines arrived; the first missing or out of order is line {}",
        numbers.len(),
        first_wrong + 1
    ))
}

fn scheduler_parameters(context: &Context) -> Outcome {
    let partitions = context.cluster.partitions().map_err(|e| reason(&e))?;
    // Another partition than the default where there is one: one a job reaches only by
    // asking for it.
    let Some(partition) = partitions.get(1).or(partitions.first()) else {
        return Err("the cluster has no partition".into());
    };
    let before = last_job_id(context)?;
    // One minute: within any partition's or QOS's time limit.
    let parameters = format!("--partition={partition} --time=1");
    let job = context
        .job()
        .variable("SCHEDULER_PARAMETERS", &parameters)
        .script(&["echo conformance: parameters"]);
    // A partition where the job can never start must not hang the run: the job gets the
    // patience, then it is cancelled.
    let running = context.start(&context.driver().hold_before_cleanup(), job)?;
    if !running.cleanup_is_next(context.options.patience) {
        let state = context
            .queue()
            .ok()
            .and_then(|q| {
                q.into_iter()
                    .find(|j| j.id.parse().is_ok_and(|id: u64| id > before))
            })
            .map(|j| format!(" (Slurm job {} {})", j.id, j.state))
            .unwrap_or_default();
        running.cancel();
        running.release_cleanup();
        let _ = running.finish();
        return Err(format!(
            "SCHEDULER_PARAMETERS={parameters}: the job did not end within {} s{state}",
            context.options.patience.as_secs()
        ));
    }
    running.release_cleanup();
    let report = running.finish();
    if report.status != JobStatus::Success {
        return Err(format!("the job ended {}", outcome(&report)));
    }
    let jobs = context.cluster.accounted().map_err(|e| reason(&e))?;
    let ran: Vec<&(u64, String, String)> = jobs
        .iter()
        .filter(|(id, name, _)| *id > before && name != BLOCKER)
        .collect();
    match ran.as_slice() {
        [] => Err("no Slurm job was submitted".into()),
        jobs if jobs.iter().all(|(_, _, p)| p == partition) => Ok(()),
        jobs => Err(format!(
            "SCHEDULER_PARAMETERS={parameters}, but Slurm ran it in {}",
            jobs.iter()
                .map(|(_, _, p)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The highest job id accounting knows (0 for none).
fn last_job_id(context: &Context) -> Result<u64, String> {
    Ok(context
        .cluster
        .accounted()
        .map_err(|e| reason(&e))?
        .last()
        .map_or(0, |(id, _, _)| *id))
}

fn refused_flag(context: &Context) -> Outcome {
    let before = context
        .cluster
        .calls_of("sbatch")
        .map_err(|e| reason(&e))?
        .len();
    let job = context
        .job()
        .variable("SCHEDULER_PARAMETERS", "--uid=0")
        .script(&["echo conformance: never as another user"]);
    let report = context.run(&context.driver(), job)?;
    let calls = context.cluster.calls_of("sbatch").map_err(|e| reason(&e))?;
    if let Some(argument) = calls
        .iter()
        .skip(before)
        .flatten()
        .find(|a| a.starts_with("--uid"))
    {
        return Err(format!(
            "`{argument}` reached sbatch; the job ended {}",
            outcome(&report)
        ));
    }
    if report.status != JobStatus::Failed {
        return Err(format!(
            "the job ended {}, not failed on its parameters",
            outcome(&report)
        ));
    }
    Ok(())
}

fn failing_script(context: &Context) -> Outcome {
    let report = context.run(&context.driver(), context.job().script(&["exit 3"]))?;
    match (report.status, report.failure_reason, report.exit_code) {
        (JobStatus::Failed, Some("script_failure"), Some(3)) => Ok(()),
        (JobStatus::Failed, Some("script_failure"), Some(code)) => Err(format!(
            "exit code {code} reported, not 3: BUILD_EXIT_CODE_FILE {}",
            match report
                .find_invocation("build_script")
                .and_then(|i| i.build_exit_code_file.as_deref())
            {
                Some(text) => format!("holds {text:?}"),
                None => "was not written".into(),
            }
        )),
        _ => Err(format!("the job ended {}", outcome(&report))),
    }
}

fn system_failure(context: &Context) -> Outcome {
    // The fakes reach no daemon and start none: Slurm's "Unable to contact slurm controller".
    let nowhere = context.options.work_dir.join("no-cluster-here");
    let driver = context
        .driver()
        .runner_env("MOCK_CLUSTER_STATE_DIR", &nowhere.display().to_string())
        .runner_env("MOCK_CLUSTER_NO_AUTOSTART", "1");
    let report = context.run(&driver, context.job().script(&["echo never"]))?;
    match (report.status, report.failure_reason) {
        (JobStatus::Failed, Some("runner_system_failure")) => Ok(()),
        _ => Err(format!(
            "with the Slurm controller unreachable the job ended {}",
            outcome(&report)
        )),
    }
}

fn after_script_status(context: &Context) -> Outcome {
    let job = context
        .job()
        .script(&["exit 4"])
        .after_script(&["echo \"conformance: status=$CI_JOB_STATUS\""]);
    let report = context.run(&context.driver(), job)?;
    if report.status != JobStatus::Failed {
        return Err(format!("the job ended {}", outcome(&report)));
    }
    match report
        .lines()
        .into_iter()
        .find(|l| l.starts_with("conformance: status="))
    {
        Some(line) if line == "conformance: status=failed" => Ok(()),
        Some(line) => Err(format!("after_script printed {line:?}")),
        None => Err("after_script printed no status line".into()),
    }
}

fn live_output(context: &Context) -> Outcome {
    let release = context.options.work_dir.join("release-live-output");
    let _ = std::fs::remove_file(&release);
    // The job waits for a file that is created only once its line was seen in the log.
    let job = context.job().script(&[
        "echo \"conformance: line while running\"",
        &format!("while [ ! -e '{}' ]; do sleep 0.1; done", release.display()),
    ]);
    let running = context.start(&context.driver(), job)?;
    let seen = running.find_log_line("conformance: line while running", context.options.patience);
    let _ = std::fs::write(&release, "");
    let report = running.finish();
    match seen {
        Some(_) => Ok(()),
        None if has_line(&report, "conformance: line while running") => Err(format!(
            "the line reached the job log only after the job ended (not within {} s while it ran)",
            context.options.patience.as_secs()
        )),
        None => Err(format!(
            "the line never reached the job log; the job ended {}",
            outcome(&report)
        )),
    }
}

/// Starts a job, waits for its Slurm job in `state`, cancels it (SIGTERM, §2.7) and says
/// which Slurm jobs are left when run_exec has ended, before cleanup_exec.
fn cancel_in(context: &Context, state: &str, script: &[&str]) -> Outcome {
    let running = context.start(
        &context.driver().hold_before_cleanup(),
        context.job().script(script),
    )?;
    if let Err(reason) = context.wait_for_job_in(state) {
        running.force_kill();
        running.release_cleanup();
        let report = running.finish();
        return Err(format!("{reason}; the job ended {}", outcome(&report)));
    }
    running.cancel();
    let ended = running.cleanup_is_next(context.options.patience * 2);
    let left = context.queue()?;
    running.release_cleanup();
    let report = running.finish();
    if !ended {
        return Err("run_exec did not end after SIGTERM and SIGKILL".into());
    }
    let signals = report
        .find_invocation("build_script")
        .map(|i| i.signals.len())
        .unwrap_or_default();
    let after_cleanup = context.queue()?;
    if let Some(job) = left.first() {
        let when_cancelled = if job.state == state {
            String::new()
        } else {
            format!(" ({state} when cancelled)")
        };
        return Err(format!(
            "Slurm job {} ({}) was still {}{when_cancelled} when run_exec ended on {}; {}",
            job.id,
            job.name,
            job.state,
            if signals > 1 { "SIGKILL" } else { "SIGTERM" },
            if after_cleanup.is_empty() {
                "only cleanup_exec cancelled it, later"
            } else {
                "cleanup_exec left it too"
            }
        ));
    }
    if report.status != JobStatus::Canceled {
        return Err(format!("the job ended {}", outcome(&report)));
    }
    Ok(())
}

fn cancel_while_pending(context: &Context) -> Outcome {
    context.block_nodes()?;
    cancel_in(context, "PENDING", &["echo \"conformance: never runs\""])
}

fn cancel_while_running(context: &Context) -> Outcome {
    cancel_in(
        context,
        "RUNNING",
        &["echo \"conformance: running\"", "sleep 3600"],
    )
}

fn cleanup_after_kill(context: &Context) -> Outcome {
    let running = context.start(&context.driver(), context.job().script(&["sleep 3600"]))?;
    if let Err(reason) = context.wait_for_job_in("RUNNING") {
        running.force_kill();
        let report = running.finish();
        return Err(format!("{reason}; the job ended {}", outcome(&report)));
    }
    running.force_kill();
    let report = running.finish();
    if report.find_invocation("cleanup").is_none()
        && context.options.subject.executables.cleanup.is_some()
    {
        return Err("cleanup_exec was not called".into());
    }
    // The cancel may still be under way when cleanup_exec returns (Slurm's kill wait).
    let mut left = Vec::new();
    let gone = poll_until(context.options.patience, || {
        left = context.queue().unwrap_or_default();
        left.is_empty()
    });
    match left.first() {
        Some(job) if !gone => Err(format!(
            "Slurm job {} ({}) still {} after cleanup_exec",
            job.id, job.name, job.state
        )),
        _ => Ok(()),
    }
}

fn unknown_stage_names(context: &Context) -> Outcome {
    let job = context
        .job()
        .script(&["echo \"conformance: build_script ran\""])
        .step("release", &["echo \"conformance: step_release ran\""]);
    let report = context.run(&context.driver(), job)?;
    if report.status != JobStatus::Success {
        return Err(format!("the job ended {}", outcome(&report)));
    }
    for line in [
        "conformance: build_script ran",
        "conformance: step_release ran",
    ] {
        if !has_line(&report, line) {
            return Err(format!("the job log has no line {line:?}"));
        }
    }
    Ok(())
}
