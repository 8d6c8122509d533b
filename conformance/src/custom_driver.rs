//! A stand-in for gitlab-runner's custom executor (R `executors/custom`, protocol reference §2):
//! for one job it calls a driver's `config_exec`, `prepare_exec`, `run_exec <script> <stage>`
//! and `cleanup_exec` the way gitlab-runner does, so a test sees the driver exactly as a site
//! deploying it would. The driver is any set of executables ([`Executables`]): batchci's
//! `custom` mode, or a site's shell scripts.
//!
//! What it reproduces:
//! - a job temp dir `custom-executor*` that is the working directory of every call, holding
//!   `response.json` (`JOB_RESPONSE_FILE`) and `build_exit_code` (`BUILD_EXIT_CODE_FILE`);
//! - the environment of §2.4: the runner's own variables, `TMPDIR`, the two exit codes, the
//!   two files, `job_env` from config_exec's JSON (not for config_exec itself) and
//!   `CUSTOM_ENV_<KEY>` for every job variable and the runner-predefined ones;
//! - the order of §2.5 with stage names as argv[2], skipping stages with nothing to do;
//! - script files `<tmpdir>/script<random>/script`, mode 0700, as gitlab-runner's bash shell
//!   writes them (shebang, errexit, pipefail, exported variables);
//! - config and prepare retried on system failures (3 attempts);
//! - exit codes read as in §2.6, `BUILD_EXIT_CODE_FILE` giving the job's exit code;
//! - every call in its own process group; a cancel sends SIGTERM to the group, then SIGKILL
//!   after `graceful_kill_timeout`, then gives up after `force_kill_timeout` (§2.7), also on
//!   output that something the call started keeps open;
//! - after a failed step the later steps are skipped, `after_script` still runs with
//!   `CI_JOB_STATUS` set to `failed` or `canceled`;
//! - cleanup always (also after each failed preparation attempt), its output kept out of the
//!   job log, and the job temp dir removed afterwards.
//!
//! Not reproduced: masking, job timeouts, caches and artifacts (their stages are skipped, as
//! gitlab-runner skips them for jobs without caches or artifacts), and `git clone`:
//! `get_sources` creates the project directory with one file, standing in for a checkout.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use thiserror::Error;

/// The project every job belongs to (`CI_PROJECT_PATH`).
pub const PROJECT_PATH: &str = "group/project";

/// The runner's short token (`CI_RUNNER_SHORT_TOKEN`).
pub const SHORT_TOKEN: &str = "t3stT0k3";

/// What `get_sources` puts in the project directory.
pub const README: &str = "hello from the repository";

/// A job as GitLab hands it to the runner, built up case by case.
#[derive(Debug, Clone)]
pub struct JobSpec {
    id: u64,
    variables: Vec<JobVariable>,
    steps: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
struct JobVariable {
    key: String,
    value: String,
    file: bool,
}

impl JobSpec {
    /// Job `id` of `group/project`, with the variables GitLab itself always sends.
    pub fn new(id: u64) -> JobSpec {
        let job = JobSpec {
            id,
            variables: Vec::new(),
            steps: Vec::new(),
        };
        job.variable("CI", "true")
            .variable("GITLAB_CI", "true")
            .variable("CI_JOB_ID", &id.to_string())
            .variable("CI_JOB_NAME", "build")
            .variable("CI_PROJECT_PATH", PROJECT_PATH)
            .variable("CI_PROJECT_NAME", "project")
    }

    /// The job's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Adds a CI variable.
    pub fn variable(mut self, key: &str, value: &str) -> JobSpec {
        self.variables.push(JobVariable {
            key: key.into(),
            value: value.into(),
            file: false,
        });
        self
    }

    /// Adds a file variable: scripts see a path to a file holding `value`.
    pub fn file_variable(mut self, key: &str, value: &str) -> JobSpec {
        self.variables.push(JobVariable {
            key: key.into(),
            value: value.into(),
            file: true,
        });
        self
    }

    /// The `script` step (GitLab merges `before_script` into it).
    pub fn script(self, lines: &[&str]) -> JobSpec {
        self.step("script", lines)
    }

    /// The `after_script` step.
    pub fn after_script(self, lines: &[&str]) -> JobSpec {
        self.step("after_script", lines)
    }

    /// Any step, e.g. `release`.
    pub fn step(mut self, name: &str, lines: &[&str]) -> JobSpec {
        self.steps.push((
            name.into(),
            lines.iter().map(|line| line.to_string()).collect(),
        ));
        self
    }

    /// The job as gitlab-runner re-serialises it into `JOB_RESPONSE_FILE`.
    fn response(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "token": format!("job-token-{}", self.id),
            "allow_git_fetch": false,
            "job_info": {"id": self.id, "name": "build", "stage": "test",
                         "project_id": 123, "project_name": "project"},
            "git_info": {"repo_url": "https://gitlab-ci-token:job-token@gitlab.example.com/group/project.git",
                         "ref": "main", "sha": "abcdef123456", "before_sha": "654321fedcba",
                         "ref_type": "branch", "refspecs": [], "depth": 20},
            "runner_info": {"timeout": 3600},
            "variables": self.variables.iter().map(|v| serde_json::json!({
                "key": v.key, "value": v.value, "public": true, "masked": false, "file": v.file,
            })).collect::<Vec<_>>(),
            "steps": self.steps.iter().map(|(name, script)| serde_json::json!({
                "name": name, "script": script, "timeout": 3600,
                "when": if name == "after_script" { "always" } else { "on_success" },
                "allow_failure": false,
            })).collect::<Vec<_>>(),
            "image": null,
            "services": [],
            "artifacts": [],
            "cache": [],
            "dependencies": [],
            "features": {"trace_sections": true},
        })
    }
}

/// gitlab-runner's `[runners.custom]` pointing at one driver program.
#[derive(Debug, Clone)]
pub struct Driver {
    executables: Executables,
    builds_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    work_dir: PathBuf,
    runner_env: Vec<(String, String)>,
    build_failure_exit_code: i32,
    system_failure_exit_code: i32,
    graceful_kill_timeout: Duration,
    force_kill_timeout: Duration,
    preparation_attempts: u32,
    preparation_retry_pause: Duration,
    hold_before_cleanup: bool,
    runner_variables: Vec<(String, String)>,
}

impl Driver {
    /// The batchci binary `program` as every `*_exec`, with
    /// `*_args = ["custom", <stage>, "--config", config]`; see [`Driver::new`].
    pub fn batchci(program: &Path, config: &Path, work_dir: &Path) -> Driver {
        let exec = |verb: &str| Executable {
            program: program.to_path_buf(),
            args: ["custom", verb, "--config"]
                .iter()
                .map(|a| a.to_string())
                .chain([config.display().to_string()])
                .collect(),
        };
        Driver::new(
            Executables {
                config: Some(exec("config")),
                prepare: Some(exec("prepare")),
                run: exec("run"),
                cleanup: Some(exec("cleanup")),
            },
            work_dir,
        )
    }

    /// gitlab-runner's `[runners.custom]` with `executables`; job temp dirs go under
    /// `work_dir` (gitlab-runner's `os.TempDir()`). The runner's own environment starts as
    /// PATH and HOME only.
    pub fn new(executables: Executables, work_dir: &Path) -> Driver {
        let mut runner_env = Vec::new();
        for key in ["PATH", "HOME"] {
            if let Ok(value) = std::env::var(key) {
                runner_env.push((key.to_string(), value));
            }
        }
        Driver {
            executables,
            builds_dir: None,
            cache_dir: None,
            work_dir: work_dir.to_path_buf(),
            runner_env,
            build_failure_exit_code: 1,
            system_failure_exit_code: 2,
            // Code defaults are 600 s and 10 s; tests choose their own.
            graceful_kill_timeout: Duration::from_secs(10),
            force_kill_timeout: Duration::from_secs(10),
            preparation_attempts: 3,
            preparation_retry_pause: Duration::from_secs(3),
            hold_before_cleanup: false,
            runner_variables: Vec::new(),
        }
    }

    /// The `[[runners]]` `builds_dir` and `cache_dir`, used when config_exec's JSON does not
    /// name them (§2.1: one of the two must).
    pub fn dirs(mut self, builds_dir: Option<PathBuf>, cache_dir: Option<PathBuf>) -> Driver {
        self.builds_dir = builds_dir;
        self.cache_dir = cache_dir;
        self
    }

    /// A variable from the runner's `environment = ["KEY=value"]`: the job's scripts and
    /// `CUSTOM_ENV_<KEY>` have it, `JOB_RESPONSE_FILE` does not (it holds only what GitLab
    /// sent).
    pub fn runner_variable(mut self, key: &str, value: &str) -> Driver {
        self.runner_variables.push((key.into(), value.into()));
        self
    }

    /// Sets (or replaces) a variable of the runner's own environment.
    pub fn runner_env(mut self, key: &str, value: &str) -> Driver {
        self.runner_env.retain(|(k, _)| k != key);
        self.runner_env.push((key.into(), value.into()));
        self
    }

    /// Sets several variables of the runner's own environment.
    pub fn runner_envs(self, pairs: &[(String, String)]) -> Driver {
        pairs
            .iter()
            .fold(self, |driver, (key, value)| driver.runner_env(key, value))
    }

    /// `BUILD_FAILURE_EXIT_CODE` and `SYSTEM_FAILURE_EXIT_CODE`.
    pub fn exit_codes(mut self, build_failure: i32, system_failure: i32) -> Driver {
        self.build_failure_exit_code = build_failure;
        self.system_failure_exit_code = system_failure;
        self
    }

    /// `graceful_kill_timeout`.
    pub fn graceful_kill_timeout(mut self, timeout: Duration) -> Driver {
        self.graceful_kill_timeout = timeout;
        self
    }

    /// `force_kill_timeout`.
    pub fn force_kill_timeout(mut self, timeout: Duration) -> Driver {
        self.force_kill_timeout = timeout;
        self
    }

    /// The pause between preparation attempts (gitlab-runner: 3 s).
    pub fn preparation_retry_pause(mut self, pause: Duration) -> Driver {
        self.preparation_retry_pause = pause;
        self
    }

    /// Stops before `cleanup` until [`RunningJob::release_cleanup`], so a test can look at
    /// what the job left behind.
    pub fn hold_before_cleanup(mut self) -> Driver {
        self.hold_before_cleanup = true;
        self
    }

    /// Runs `job` to its end.
    pub fn run(&self, job: JobSpec) -> Result<JobReport, DriverError> {
        Ok(self.start(job)?.finish())
    }

    /// Starts `job` in the background: makes the job temp dir with `JOB_RESPONSE_FILE` in it.
    pub fn start(&self, job: JobSpec) -> Result<RunningJob, DriverError> {
        let job_dir = tempfile::Builder::new()
            .prefix("custom-executor")
            .tempdir_in(&self.work_dir)
            .map_err(|source| DriverError::JobDir {
                dir: self.work_dir.clone(),
                source,
            })?
            .keep();
        let response = serde_json::to_vec_pretty(&job.response()).unwrap_or_default();
        std::fs::write(job_dir.join("response.json"), response).map_err(|source| {
            DriverError::JobDir {
                dir: job_dir.clone(),
                source,
            }
        })?;
        let (events, inbox) = mpsc::channel();
        let log = Arc::new(JobLog::default());
        let execution = Execution {
            driver: self.clone(),
            job,
            log: log.clone(),
            events: events.clone(),
            inbox,
            sequence: 0,
            canceled: false,
            released: false,
            job_env: Vec::new(),
            job_status: "running",
            builds_dir: PathBuf::new(),
            project_dir: PathBuf::new(),
            job_dir,
            invocations: Vec::new(),
        };
        let thread = std::thread::spawn(move || execution.run());
        Ok(RunningJob {
            control: events,
            log,
            thread: Some(thread),
        })
    }
}

/// One `*_exec` with its `*_args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// The program (`*_exec`).
    pub program: PathBuf,
    /// Its arguments before any gitlab-runner adds (`*_args`).
    pub args: Vec<String>,
}

/// The executables of `[runners.custom]` (§2.1): only `run_exec` is required; a missing
/// config, prepare or cleanup executable is a stage gitlab-runner skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executables {
    /// `config_exec`.
    pub config: Option<Executable>,
    /// `prepare_exec`.
    pub prepare: Option<Executable>,
    /// `run_exec`.
    pub run: Executable,
    /// `cleanup_exec`.
    pub cleanup: Option<Executable>,
}

/// Why a job could not be started.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The job temp dir or `JOB_RESPONSE_FILE` could not be written.
    #[error("cannot write the job temp dir {}", dir.display())]
    JobDir {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// How GitLab would see the job end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Every stage passed.
    Success,
    /// A stage failed.
    Failed,
    /// The job was canceled.
    Canceled,
}

/// One call of the driver.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `config`, `prepare`, `cleanup`, or the run stage's name.
    pub stage: String,
    /// The driver's exit code; `None` when a signal ended it or it was abandoned.
    pub exit: Option<i32>,
    /// The signals sent to its process group.
    pub signals: Vec<Signal>,
    /// The first line of `BUILD_EXIT_CODE_FILE` after the call, when the file existed.
    pub build_exit_code_file: Option<String>,
    /// Why the executable could not be started, when it could not.
    pub spawn_error: Option<String>,
    /// Whether its stdout or stderr was still open `force_kill_timeout` after it ended (a
    /// process it started kept them).
    pub output_abandoned: bool,
}

/// Everything a finished job left for a test to check.
#[derive(Debug)]
pub struct JobReport {
    /// The job's final status.
    pub status: JobStatus,
    /// GitLab's failure reason.
    pub failure_reason: Option<&'static str>,
    /// The job's exit code (failures only).
    pub exit_code: Option<i32>,
    /// The job log, raw.
    pub log: String,
    /// Every call of the driver, in order.
    pub invocations: Vec<Invocation>,
    /// config_exec's JSON.
    pub config: Option<serde_json::Value>,
    /// `CI_BUILDS_DIR`.
    pub builds_dir: PathBuf,
    /// `CI_PROJECT_DIR`.
    pub project_dir: PathBuf,
    /// The job temp dir.
    pub job_dir: PathBuf,
    /// cleanup_exec's stdout (gitlab-runner's own log, never the job's).
    pub cleanup_stdout: String,
    /// cleanup_exec's stderr.
    pub cleanup_stderr: String,
}

impl JobReport {
    /// The job log without ANSI sequences and section markers.
    pub fn lines(&self) -> Vec<String> {
        plain_lines(&self.log)
    }

    /// The stages called, in order.
    pub fn stages(&self) -> Vec<&str> {
        self.invocations.iter().map(|i| i.stage.as_str()).collect()
    }

    /// The first call of `stage`, if there was one.
    pub fn find_invocation(&self, stage: &str) -> Option<&Invocation> {
        self.invocations.iter().find(|i| i.stage == stage)
    }

    /// The call of `stage`, for tests.
    ///
    /// # Panics
    /// When `stage` was not called (the message lists the calls).
    pub fn invocation(&self, stage: &str) -> &Invocation {
        self.find_invocation(stage)
            .unwrap_or_else(|| panic!("no {stage} call; calls: {:?}", self.stages()))
    }
}

/// A job the driver is running.
pub struct RunningJob {
    control: Sender<Event>,
    log: Arc<JobLog>,
    thread: Option<JoinHandle<JobReport>>,
}

impl RunningJob {
    /// Waits until a job log line contains `text` and returns that line.
    ///
    /// # Panics
    /// When no such line came within `timeout` (the message holds the log); see
    /// [`RunningJob::find_log_line`] for the non-panicking form.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) -> String {
        self.find_log_line(text, timeout).unwrap_or_else(|| {
            panic!(
                "the job log has no line with {text:?} after {timeout:?}:\n{}",
                self.log.text()
            )
        })
    }

    /// Waits until a job log line contains `text` and returns it; `None` after `timeout`.
    pub fn find_log_line(&self, text: &str, timeout: Duration) -> Option<String> {
        self.log.wait_for(
            |log, _| {
                plain_lines(log)
                    .into_iter()
                    .find(|line| line.contains(text))
            },
            timeout,
        )
    }

    /// The job log so far, raw.
    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Cancels the job as GitLab's cancel button does: SIGTERM, then SIGKILL after
    /// `graceful_kill_timeout`.
    pub fn cancel(&self) {
        let _ = self.control.send(Event::Cancel);
    }

    /// SIGKILL to the process group of the running call right away (gitlab-runner's step
    /// after the graceful timeout).
    pub fn force_kill(&self) {
        let _ = self.control.send(Event::ForceKill);
    }

    /// With [`Driver::hold_before_cleanup`]: waits until every stage is done and cleanup is
    /// next.
    ///
    /// # Panics
    /// When it did not within `timeout`; [`RunningJob::cleanup_is_next`] does not panic.
    pub fn wait_until_cleanup_is_next(&self, timeout: Duration) {
        assert!(
            self.cleanup_is_next(timeout),
            "the job did not reach cleanup in {timeout:?}:\n{}",
            self.log.text()
        );
    }

    /// With [`Driver::hold_before_cleanup`]: whether every stage was done, with cleanup next,
    /// within `timeout`.
    pub fn cleanup_is_next(&self, timeout: Duration) -> bool {
        self.log
            .wait_for(|_, held| held.then_some(()), timeout)
            .is_some()
    }

    /// Lets a held job go on with cleanup.
    pub fn release_cleanup(&self) {
        let _ = self.control.send(Event::ReleaseCleanup);
    }

    /// Waits for the job to end.
    pub fn finish(mut self) -> JobReport {
        let thread = self.thread.take().expect("finish is called once");
        match thread.join() {
            Ok(report) => report,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        // A failed assertion must not leave driver processes (or Slurm jobs) behind.
        if self.thread.is_some() {
            let _ = self.control.send(Event::ForceKill);
            let _ = self.control.send(Event::ReleaseCleanup);
        }
    }
}

/// The job log as it grows, and whether the job is held before cleanup.
#[derive(Default)]
struct JobLog {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl JobLog {
    fn append(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Bytes, not text: a character may be split across two reads.
        state.0.extend_from_slice(bytes);
        self.changed.notify_all();
    }

    fn set_held(&self, held: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 = held;
        self.changed.notify_all();
    }

    fn text(&self) -> String {
        let bytes = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until `check` finds something in the log and hold flag.
    fn wait_for<T>(&self, check: impl Fn(&str, bool) -> Option<T>, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(found) = check(&String::from_utf8_lossy(&state.0), state.1) {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn line(&self, text: &str) {
        self.append(format!("\x1b[0K{text}\x1b[0;m\n").as_bytes());
    }

    fn success(&self, text: &str) {
        self.append(format!("\x1b[32;1m{text}\x1b[0;m\n").as_bytes());
    }

    fn warning(&self, text: &str) {
        self.append(format!("\x1b[0;33mWARNING: {text}\x1b[0;m\n").as_bytes());
    }

    fn error(&self, text: &str) {
        self.append(format!("\x1b[31;1mERROR: {text}\x1b[0;m\n").as_bytes());
    }

    fn section_start(&self, name: &str, header: &str) {
        self.append(
            format!(
                "section_start:{}:{name}\r\x1b[0K\x1b[0K\x1b[36;1m{header}\x1b[0;m\n",
                unix_now()
            )
            .as_bytes(),
        );
    }

    fn section_end(&self, name: &str) {
        self.append(format!("section_end:{}:{name}\r\x1b[0K", unix_now()).as_bytes());
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum Event {
    Exited(u64, std::io::Result<ExitStatus>),
    Cancel,
    ForceKill,
    ReleaseCleanup,
}

/// Where a call's output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// stdout and stderr to the job log (prepare, run).
    JobLog,
    /// stdout captured, stderr to the job log (config).
    ConfigJson,
    /// Both captured, none in the job log (cleanup).
    RunnerLog,
}

#[derive(Clone, Copy)]
enum Pipe {
    Stdout,
    Stderr,
}

/// How a call ended, per §2.6.
enum StageResult {
    Passed,
    BuildFailure(i32),
    SystemFailure(String),
    Canceled,
}

struct Execution {
    driver: Driver,
    job: JobSpec,
    log: Arc<JobLog>,
    events: Sender<Event>,
    inbox: Receiver<Event>,
    sequence: u64,
    canceled: bool,
    released: bool,
    job_env: Vec<(String, String)>,
    job_status: &'static str,
    builds_dir: PathBuf,
    project_dir: PathBuf,
    job_dir: PathBuf,
    invocations: Vec<Invocation>,
}

impl Execution {
    fn run(mut self) -> JobReport {
        let mut config = None;
        let mut result = StageResult::SystemFailure("not prepared".into());
        for attempt in 1..=self.driver.preparation_attempts {
            self.log
                .section_start("prepare_executor", "Preparing the \"custom\" executor");
            result = self.config_and_prepare(&mut config);
            self.log.section_end("prepare_executor");
            match &result {
                StageResult::SystemFailure(message)
                    if attempt < self.driver.preparation_attempts =>
                {
                    // gitlab-runner calls cleanup after every failed preparation attempt.
                    let _ = self.invoke("cleanup", Vec::new(), Output::RunnerLog);
                    self.log.error(&format!("Preparation failed: {message}"));
                    self.log.line(&format!(
                        "Will be retried in {:?} ...",
                        self.driver.preparation_retry_pause
                    ));
                    std::thread::sleep(self.driver.preparation_retry_pause);
                }
                _ => break,
            }
        }
        if matches!(result, StageResult::Passed) {
            result = self.run_stages();
        }

        if self.driver.hold_before_cleanup {
            self.log.set_held(true);
            while !self.released {
                match self.inbox.recv_timeout(Duration::from_secs(600)) {
                    Ok(Event::ReleaseCleanup) | Err(_) => self.released = true,
                    Ok(_) => {}
                }
            }
        }
        let (_, stdout, stderr) = self.invoke("cleanup", Vec::new(), Output::RunnerLog);
        // gitlab-runner removes the job temp dir (and with it JOB_RESPONSE_FILE) at the end.
        let _ = std::fs::remove_dir_all(&self.job_dir);

        let (status, failure_reason, exit_code) = match result {
            _ if self.canceled => {
                self.log.error("Job failed: canceled");
                (JobStatus::Canceled, Some("job_canceled"), None)
            }
            StageResult::Canceled => {
                self.log.error("Job failed: canceled");
                (JobStatus::Canceled, Some("job_canceled"), None)
            }
            StageResult::Passed => {
                self.log.success("Job succeeded");
                (JobStatus::Success, None, None)
            }
            StageResult::BuildFailure(code) => {
                self.log.error(&format!("Job failed: exit code {code}"));
                (JobStatus::Failed, Some("script_failure"), Some(code))
            }
            StageResult::SystemFailure(message) => {
                self.log
                    .error(&format!("Job failed (system failure): {message}"));
                (JobStatus::Failed, Some("runner_system_failure"), None)
            }
        };
        JobReport {
            status,
            failure_reason,
            exit_code,
            log: self.log.text(),
            invocations: self.invocations,
            config,
            builds_dir: self.builds_dir,
            project_dir: self.project_dir,
            job_dir: self.job_dir,
            cleanup_stdout: String::from_utf8_lossy(&stdout).into_owned(),
            cleanup_stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// config_exec, then prepare_exec.
    fn config_and_prepare(&mut self, config: &mut Option<serde_json::Value>) -> StageResult {
        self.job_env.clear();
        // §2.1: without config_exec the dirs come from config.toml alone.
        let mut stdout = Vec::new();
        if self.driver.executables.config.is_some() {
            let (invocation, out, _) = self.invoke("config", Vec::new(), Output::ConfigJson);
            let result = self.interpret(&invocation);
            if !matches!(result, StageResult::Passed) {
                return result;
            }
            stdout = out;
        }
        let json: serde_json::Value = if stdout.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else {
            match serde_json::from_slice(&stdout) {
                Ok(json) => json,
                Err(error) => {
                    return StageResult::SystemFailure(format!(
                        "error while parsing JSON output: {error}"
                    ));
                }
            }
        };
        if let Some(driver) = json.get("driver") {
            self.log.line(&format!(
                "Using Custom executor with driver {} {}...",
                driver["name"].as_str().unwrap_or_default(),
                driver["version"].as_str().unwrap_or_default()
            ));
        } else {
            self.log.line("Using Custom executor...");
        }
        let Some(builds_dir) = json["builds_dir"]
            .as_str()
            .map(PathBuf::from)
            .or_else(|| self.driver.builds_dir.clone())
        else {
            return StageResult::SystemFailure("the builds_dir is not configured".into());
        };
        if json["cache_dir"].as_str().is_none() && self.driver.cache_dir.is_none() {
            return StageResult::SystemFailure("the cache_dir is not configured".into());
        }
        self.builds_dir = builds_dir;
        // R `common/build.go` ProjectUniqueDir: a shared builds dir gets the runner's short
        // token and the concurrent project id before the project's path.
        self.project_dir = if json["builds_dir_is_shared"].as_bool() == Some(true) {
            self.builds_dir
                .join(SHORT_TOKEN)
                .join("0")
                .join(PROJECT_PATH)
        } else {
            self.builds_dir.join(PROJECT_PATH)
        };
        if let Some(env) = json["job_env"].as_object() {
            self.job_env = env
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
        }
        *config = Some(json);
        if self.driver.executables.prepare.is_none() {
            return StageResult::Passed;
        }
        let (invocation, _, _) = self.invoke("prepare", Vec::new(), Output::JobLog);
        self.interpret(&invocation)
    }

    /// The run stages in gitlab-runner's order.
    fn run_stages(&mut self) -> StageResult {
        let mut result = self.stage("prepare_script", "Preparing environment");
        if matches!(result, StageResult::Passed) {
            result = self.stage("get_sources", "Getting source from Git repository");
        }
        let user_steps: Vec<String> = self
            .job
            .steps
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| name != "after_script")
            .collect();
        for step in user_steps {
            if !matches!(result, StageResult::Passed) || self.canceled {
                break;
            }
            let stage = if step == "script" {
                "build_script".to_string()
            } else {
                format!("step_{step}")
            };
            let header = format!("Executing \"step_{step}\" stage of the job script");
            result = self.stage(&stage, &header);
        }
        if self.step_lines("after_script").is_some() {
            self.job_status = match (&result, self.canceled) {
                (_, true) => "canceled",
                (StageResult::Passed, false) => "success",
                _ => "failed",
            };
            let _ = self.stage("after_script", "Running after_script");
        }
        if self.job.variables.iter().any(|v| v.file) {
            let _ = self.stage(
                "cleanup_file_variables",
                "Cleaning up project directory and file based variables",
            );
        }
        result
    }

    fn step_lines(&self, name: &str) -> Option<Vec<String>> {
        self.job
            .steps
            .iter()
            .find(|(step, lines)| step == name && !lines.is_empty())
            .map(|(_, lines)| lines.clone())
    }

    /// One `run <script> <stage>` call, in its log section.
    fn stage(&mut self, stage: &str, header: &str) -> StageResult {
        let section = if stage == "build_script" {
            "step_script"
        } else {
            stage
        };
        self.log.section_start(section, header);
        let script = match self.write_script(stage) {
            Ok(script) => script,
            Err(error) => {
                self.log.section_end(section);
                return StageResult::SystemFailure(format!(
                    "{stage}: cannot write the script: {error}"
                ));
            }
        };
        let _ = std::fs::remove_file(self.job_dir.join("build_exit_code"));
        let (invocation, _, _) = self.invoke(
            stage,
            vec![script.into_os_string(), stage.into()],
            Output::JobLog,
        );
        self.log.section_end(section);
        let result = self.interpret(&invocation);
        if let StageResult::Canceled = result {
            self.log.warning("script canceled externally (UI, API)");
        }
        result
    }

    /// Every variable of the job as gitlab-runner has it, in R `common/build.go`
    /// GetAllVariables' order: predefined, the runner's environment, then GitLab's variables.
    fn variables(&self) -> Vec<(String, String)> {
        let mut variables = Vec::new();
        if !self.builds_dir.as_os_str().is_empty() {
            variables.push((
                "CI_BUILDS_DIR".to_string(),
                self.builds_dir.display().to_string(),
            ));
            variables.push((
                "CI_PROJECT_DIR".into(),
                self.project_dir.display().to_string(),
            ));
        }
        variables.extend([
            ("CI_CONCURRENT_ID".to_string(), "0".to_string()),
            ("CI_CONCURRENT_PROJECT_ID".into(), "0".into()),
            ("CI_JOB_TIMEOUT".into(), "3600".into()),
            ("CI_RUNNER_SHORT_TOKEN".into(), SHORT_TOKEN.into()),
            ("CI_JOB_STATUS".into(), self.job_status.into()),
        ]);
        variables.extend(self.driver.runner_variables.iter().cloned());
        variables.extend(
            self.job
                .variables
                .iter()
                .map(|v| (v.key.clone(), v.value.clone())),
        );
        variables
    }

    /// The environment of one call (§2.4); `job_env` is not there yet for config_exec.
    fn environment(&self, stage: &str) -> Vec<(String, String)> {
        let mut env = self.driver.runner_env.clone();
        let job_dir = self.job_dir.display().to_string();
        env.extend([
            ("TMPDIR".to_string(), job_dir.clone()),
            (
                "BUILD_FAILURE_EXIT_CODE".into(),
                self.driver.build_failure_exit_code.to_string(),
            ),
            (
                "SYSTEM_FAILURE_EXIT_CODE".into(),
                self.driver.system_failure_exit_code.to_string(),
            ),
            (
                "BUILD_EXIT_CODE_FILE".into(),
                format!("{job_dir}/build_exit_code"),
            ),
            (
                "JOB_RESPONSE_FILE".into(),
                format!("{job_dir}/response.json"),
            ),
        ]);
        if stage != "config" {
            env.extend(self.job_env.iter().cloned());
        }
        for (key, value) in self.variables() {
            env.push((format!("CUSTOM_ENV_{key}"), value));
        }
        env.push(("CUSTOM_ENV_CI_JOB_SERVICES".into(), String::new()));
        env
    }

    /// `<tmpdir>/script<random>/script`, as gitlab-runner's bash shell writes it.
    fn write_script(&self, stage: &str) -> std::io::Result<PathBuf> {
        use std::fmt::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("script")
            .tempdir_in(&self.job_dir)?
            .keep();
        let file_dir = format!("{}.tmp", self.project_dir.display());
        let mut text = String::from(
            "#!/usr/bin/env bash\n\nset -o errexit\nset -o pipefail\nset +o noclobber\ntrap exit 1 TERM\n\n",
        );
        let file_keys: Vec<&str> = self
            .job
            .variables
            .iter()
            .filter(|v| v.file)
            .map(|v| v.key.as_str())
            .collect();
        for (key, value) in self.variables() {
            if !file_keys.contains(&key.as_str()) {
                let _ = writeln!(text, "export {key}={}", quote(&value));
            }
        }
        if stage == "cleanup_file_variables" {
            for key in &file_keys {
                let _ = writeln!(text, "rm -f -- {}", quote(&format!("{file_dir}/{key}")));
            }
        } else {
            for variable in self.job.variables.iter().filter(|v| v.file) {
                let path = quote(&format!("{file_dir}/{}", variable.key));
                let _ = writeln!(
                    text,
                    "mkdir -p {dir}\nprintf '%s' {value} > {path}\nexport {key}={path}",
                    dir = quote(&file_dir),
                    value = quote(&variable.value),
                    key = variable.key,
                );
            }
        }
        match stage {
            "prepare_script" => text.push_str("echo \"Running on $(hostname)...\"\n"),
            "get_sources" => {
                let _ = writeln!(
                    text,
                    "rm -rf -- \"$CI_PROJECT_DIR\"\nmkdir -p -- \"$CI_PROJECT_DIR\"\necho \"Fetching changes...\"\nprintf '%s\\n' {} > \"$CI_PROJECT_DIR/README.md\"",
                    quote(README)
                );
            }
            "cleanup_file_variables" => {}
            _ => {
                let step = match stage {
                    "build_script" => "script",
                    "after_script" => "after_script",
                    other => other.trim_start_matches("step_"),
                };
                text.push_str("cd -- \"$CI_PROJECT_DIR\"\n");
                for line in self.step_lines(step).unwrap_or_default() {
                    let _ = writeln!(
                        text,
                        "printf '%s\\n' {}\n{line}",
                        quote(&format!("\x1b[32;1m$ {line}\x1b[0;m"))
                    );
                }
            }
        }
        let path = dir.join("script");
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        Ok(path)
    }

    /// Calls the driver for `stage` and waits for it, passing on cancels and kills.
    fn invoke(
        &mut self,
        stage: &str,
        extra_args: Vec<OsString>,
        output: Output,
    ) -> (Invocation, Vec<u8>, Vec<u8>) {
        let executables = &self.driver.executables;
        let executable = match stage {
            "config" => executables.config.as_ref(),
            "prepare" => executables.prepare.as_ref(),
            "cleanup" => executables.cleanup.as_ref(),
            _ => Some(&executables.run),
        };
        let Some(executable) = executable.cloned() else {
            // A stage without an executable is skipped (§2.1); only cleanup gets here.
            return (self.not_called(stage, None), Vec::new(), Vec::new());
        };
        let mut command = Command::new(&executable.program);
        command
            .args(&executable.args)
            .args(&extra_args)
            .env_clear()
            .envs(self.environment(stage))
            .current_dir(&self.job_dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let error = format!("cannot start {}: {error}", executable.program.display());
                return (self.not_called(stage, Some(error)), Vec::new(), Vec::new());
            }
        };
        let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let (closed, output_closed) = mpsc::channel();
        self.reader(
            child.stdout.take(),
            Pipe::Stdout,
            output == Output::JobLog,
            &closed,
        );
        self.reader(
            child.stderr.take(),
            Pipe::Stderr,
            output != Output::RunnerLog,
            &closed,
        );
        drop(closed);
        self.sequence += 1;
        let sequence = self.sequence;
        let events = self.events.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            let _ = events.send(Event::Exited(sequence, status));
        });

        let cancellable = !matches!(stage, "after_script" | "cleanup_file_variables" | "cleanup");
        let mut signals = Vec::new();
        let mut terminated_at: Option<Instant> = None;
        let mut killed_at: Option<Instant> = None;
        let kill = |signal: Signal, signals: &mut Vec<Signal>| {
            let _ = killpg(group, signal);
            signals.push(signal);
            Some(Instant::now())
        };
        let exit = loop {
            let deadline = match (terminated_at, killed_at) {
                (_, Some(at)) => Some(at + self.driver.force_kill_timeout),
                (Some(at), None) => Some(at + self.driver.graceful_kill_timeout),
                (None, None) => None,
            };
            let event = match deadline {
                Some(deadline) => self
                    .inbox
                    .recv_timeout(deadline.saturating_duration_since(Instant::now())),
                None => self
                    .inbox
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match event {
                Ok(Event::Exited(seq, status)) if seq == sequence => {
                    break status.ok().and_then(|s| s.code());
                }
                Ok(Event::Exited(..)) => {}
                Ok(Event::Cancel) => {
                    self.canceled = true;
                    if cancellable && terminated_at.is_none() && killed_at.is_none() {
                        terminated_at = kill(Signal::SIGTERM, &mut signals);
                    }
                }
                Ok(Event::ForceKill) => {
                    self.canceled = true;
                    if killed_at.is_none() {
                        killed_at = kill(Signal::SIGKILL, &mut signals);
                    }
                }
                Ok(Event::ReleaseCleanup) => self.released = true,
                Err(RecvTimeoutError::Timeout) if killed_at.is_none() => {
                    killed_at = kill(Signal::SIGKILL, &mut signals);
                }
                // Past force_kill_timeout gitlab-runner abandons the process.
                Err(_) => break None,
            }
        };
        // Something the call started may hold its output open after it is gone; like an
        // abandoned process, such output is given up after force_kill_timeout.
        let (mut captured_stdout, mut captured_stderr) = (Vec::new(), Vec::new());
        let mut output_abandoned = false;
        let output_deadline = Instant::now() + self.driver.force_kill_timeout;
        for _ in 0..2 {
            match output_closed
                .recv_timeout(output_deadline.saturating_duration_since(Instant::now()))
            {
                Ok((Pipe::Stdout, bytes)) => captured_stdout = bytes,
                Ok((Pipe::Stderr, bytes)) => captured_stderr = bytes,
                Err(_) => {
                    output_abandoned = true;
                    break;
                }
            }
        }
        let build_exit_code_file = std::fs::read_to_string(self.job_dir.join("build_exit_code"))
            .ok()
            .map(|text| text.lines().next().unwrap_or_default().to_string());
        let invocation = Invocation {
            stage: stage.to_string(),
            exit,
            signals,
            build_exit_code_file,
            spawn_error: None,
            output_abandoned,
        };
        self.invocations.push(invocation.clone());
        (invocation, captured_stdout, captured_stderr)
    }

    /// A stage whose executable is absent (`error` None: skipped, not recorded) or could not
    /// be started.
    fn not_called(&mut self, stage: &str, error: Option<String>) -> Invocation {
        let invocation = Invocation {
            stage: stage.to_string(),
            exit: None,
            signals: Vec::new(),
            build_exit_code_file: None,
            spawn_error: error.clone(),
            output_abandoned: false,
        };
        if error.is_some() {
            self.invocations.push(invocation.clone());
        }
        invocation
    }

    /// Copies a pipe into the job log, or captures it; reports on `closed` at EOF.
    fn reader(
        &self,
        pipe: Option<impl Read + Send + 'static>,
        which: Pipe,
        to_job_log: bool,
        closed: &Sender<(Pipe, Vec<u8>)>,
    ) {
        let log = self.log.clone();
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut captured = Vec::new();
            if let Some(mut pipe) = pipe {
                let mut buffer = [0u8; 8192];
                loop {
                    match pipe.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) if to_job_log => log.append(&buffer[..n]),
                        Ok(n) => captured.extend_from_slice(&buffer[..n]),
                    }
                }
            }
            let _ = closed.send((which, captured));
        });
    }

    /// §2.6: what the call's exit code means.
    fn interpret(&self, invocation: &Invocation) -> StageResult {
        if self.canceled && !invocation.signals.is_empty() {
            return StageResult::Canceled;
        }
        let stage = &invocation.stage;
        if let Some(error) = &invocation.spawn_error {
            return StageResult::SystemFailure(format!("{stage}: {error}"));
        }
        match invocation.exit {
            Some(0) => StageResult::Passed,
            Some(code) if code == self.driver.build_failure_exit_code => {
                match &invocation.build_exit_code_file {
                    None => StageResult::BuildFailure(1),
                    Some(line) => match line.trim().parse() {
                        Ok(code) => StageResult::BuildFailure(code),
                        Err(_) => StageResult::SystemFailure(format!(
                            "unknown failure: BUILD_EXIT_CODE_FILE holds {line:?}, not an integer"
                        )),
                    },
                }
            }
            Some(code) if code == self.driver.system_failure_exit_code => {
                StageResult::SystemFailure(format!("{stage}: exit status {code}"))
            }
            Some(code) => StageResult::SystemFailure(format!(
                "unknown Custom executor executable exit code {code}; executable execution terminated with: exit status {code}"
            )),
            None => StageResult::SystemFailure(format!("{stage}: killed by a signal")),
        }
    }
}

/// `value` single-quoted for bash.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// A job log without ANSI sequences and section markers, line by line.
pub fn plain_lines(trace: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for raw in trace.split('\n') {
        let mut line = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // ESC [ ... letter
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                continue;
            }
            line.push(c);
        }
        // Section markers end with \r: keep what follows the last one.
        let line = match line.rsplit_once('\r') {
            Some((_, after)) => after.to_string(),
            None => line,
        };
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}
