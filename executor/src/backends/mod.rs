//! The backends: how a job's step script reaches compute.
//!
//! One file per scheduler. The batch schedulers are descriptions that the batch engine
//! ([`BatchBackend`], `batch.rs`) drives; the shell backend implements [`Backend`] itself, and
//! so does `docker+slurm` ([`DockerSlurmBackend`], `docker_slurm/`: its Slurm placeholder
//! allocation, its Docker daemon, and its custom-executor stages).
//! [`AnyBackend`] picks one from the configuration. What they share lives in the crate root:
//! parameter checks in [`crate::args`], following output files in [`crate::tail`], running
//! commands in [`crate::command`].

mod batch;
mod cobalt;
mod docker_slurm;
mod flux;
mod lsf;
mod pbs;
pub(crate) mod shell;
mod slurm;
mod status_rounds;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use batch::BatchBackend;
pub(crate) use docker_slurm::custom as docker_slurm_custom;
pub use docker_slurm::{Claim, DockerSlurmBackend};
pub use shell::ShellBackend;
pub use slurm::SBATCH_OPTIONS;

use crate::command::{CommandSpec, RunAs};
use crate::config::{ExecutorKind, RunnerConfig};
use crate::job::Job;
use crate::script::Export;
use crate::state::StateStore;

/// Where job output goes: the GitLab job log (runner mode) or gitlab-runner's pipe (custom
/// executor mode).
pub trait LogSink: Send + Sync {
    /// Raw output bytes.
    fn write(&self, bytes: &[u8]);
    /// A plain runner message line.
    fn info(&self, message: &str) {
        self.write(crate::trace::format::info(message).as_bytes());
    }
    /// A warning line.
    fn warning(&self, message: &str) {
        self.write(crate::trace::format::warning(message).as_bytes());
    }
    /// An error line.
    fn error(&self, message: &str) {
        self.write(crate::trace::format::error(message).as_bytes());
    }
}

impl LogSink for crate::trace::JobLog {
    fn write(&self, bytes: &[u8]) {
        crate::trace::JobLog::write(self, bytes);
    }
}

/// What GitLab is told when a job fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The user's script (or parameters) failed.
    ScriptFailure,
    /// batchci, the scheduler or the machine failed.
    RunnerSystemFailure,
    /// The job ran out of time.
    JobExecutionTimeout,
    /// The job was canceled.
    JobCanceled,
}

impl FailureReason {
    /// GitLab's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ScriptFailure => "script_failure",
            FailureReason::RunnerSystemFailure => "runner_system_failure",
            FailureReason::JobExecutionTimeout => "job_execution_timeout",
            FailureReason::JobCanceled => "job_canceled",
        }
    }
}

/// A failed job, with what to tell GitLab and the person reading the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobFailure {
    /// GitLab's failure reason.
    pub reason: FailureReason,
    /// The script's exit code, when there is one.
    pub exit_code: Option<i32>,
    /// The explanation shown in the log.
    pub message: String,
}

impl JobFailure {
    /// The user's script or parameters are at fault.
    pub fn script(message: impl Into<String>, exit_code: Option<i32>) -> Self {
        JobFailure {
            reason: FailureReason::ScriptFailure,
            exit_code,
            message: message.into(),
        }
    }

    /// batchci, the scheduler or the machine is at fault.
    pub fn system(message: impl Into<String>) -> Self {
        JobFailure {
            reason: FailureReason::RunnerSystemFailure,
            exit_code: None,
            message: message.into(),
        }
    }
}

/// How the step script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The script ran to its end with this exit code.
    Exited(i32),
    /// The step was cancelled (by GitLab, a timeout or shutdown) and its scheduler job is gone.
    Cancelled,
}

/// The directories of one job.
#[derive(Debug, Clone)]
pub struct JobDirs {
    /// The runner's builds directory.
    pub builds_dir: PathBuf,
    /// `CI_PROJECT_DIR`: the checkout.
    pub project_dir: PathBuf,
    /// Private scratch space beside the checkout: scripts, scheduler output, file variables.
    pub tmp_dir: PathBuf,
}

/// Everything a backend needs to run one job.
#[derive(Clone)]
pub struct JobContext {
    /// The job.
    pub job: Arc<Job>,
    /// The runner's configuration.
    pub runner: Arc<RunnerConfig>,
    /// Where output goes.
    pub log: Arc<dyn LogSink>,
    /// The job's directories.
    pub dirs: JobDirs,
    /// Variables every stage script exports.
    pub exports: Vec<Export>,
    /// Where submitted scheduler jobs are recorded.
    pub state: Option<StateStore>,
    /// GitLab, in runner mode (artifacts); `None` when gitlab-runner drives batchci.
    pub gitlab: Option<crate::gitlab::GitlabClient>,
    /// User to run the job's commands as (scheduler commands, git, host stages).
    pub run_as: Option<RunAs>,
    /// Whether the job is downscoped to `run_as`: then batchci's own file work in the job's
    /// directories happens as that user too (see [`JobContext::as_user`]).
    pub downscoped: bool,
    /// How long a cancelled scheduler job may take to leave before batchci gives up waiting.
    pub kill_timeout: Duration,
}

impl JobContext {
    /// The environment scheduler commands run with: [`scheduler_env`] of the job's runner.
    pub fn command_env(&self) -> Vec<(OsString, OsString)> {
        scheduler_env(&self.runner, self.run_as.as_ref())
    }

    /// A scheduler command with [`JobContext::command_env`], run in the project directory.
    pub fn scheduler_command<I, S>(&self, program: &str, args: I) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut spec =
            CommandSpec::new(program, args, &self.dirs.project_dir).run_as(self.run_as.as_ref());
        spec.env = self.command_env();
        spec
    }

    /// Runs `work`, which touches the job's directories, as the job's user when the job is
    /// downscoped (with that user's file permissions, see [`crate::auth::downscope`]), else
    /// as batchci.
    pub fn as_user<T: Send>(
        &self,
        work: impl FnOnce() -> std::io::Result<T> + Send,
    ) -> std::io::Result<T> {
        crate::auth::downscope::as_user_if(self.files_user(), work)
    }

    /// The user batchci's file work happens as: `run_as` when the job is downscoped.
    pub(crate) fn files_user(&self) -> Option<&RunAs> {
        self.run_as.as_ref().filter(|_| self.downscoped)
    }

    /// The durable record of this job, before anything is submitted (see [`crate::state`]).
    pub fn record(&self) -> crate::state::Submission {
        crate::state::Submission {
            gitlab_url: self.runner.url.clone(),
            gitlab_job_id: self.job.id,
            job_token: self.job.token.clone(),
            runner_name: self.runner.name.clone(),
            executor: self.runner.executor,
            scheduler_job_id: String::new(),
            scratch_dir: Some(self.dirs.tmp_dir.clone()),
            leftovers: Vec::new(),
            user: self.files_user().map(|user| user.name.clone()),
            pid: std::process::id(),
            submitted_at: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// The user's scheduler parameters: the first variable of `arguments_variable` that the job
    /// sets, as `(variable, text)`.
    pub fn user_parameters(&self) -> Option<(String, String)> {
        self.runner
            .batch
            .arguments_variable
            .iter()
            .find_map(|name| {
                self.job
                    .variable(name)
                    .map(|v| (name.clone(), v.to_string()))
            })
    }
}

/// The contract of a backend.
pub trait Backend {
    /// Checks the job before anything runs (e.g. user parameters) and acquires resources;
    /// `cancel` fires when the job is cancelled or batchci stops while it waits for them.
    fn prepare(
        &mut self,
        ctx: &JobContext,
        cancel: &CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), JobFailure>> + Send;

    /// How long the job may run once prepared: GitLab's timeout, unless the backend has
    /// shortened it (docker+slurm's `truncate_job_timeout`). The clock starts after
    /// [`Backend::prepare`], so waiting for resources never counts against it.
    fn build_timeout(&self, ctx: &JobContext) -> Duration {
        ctx.job.timeout()
    }

    /// Whether every stage with user code (custom steps, `after_script`) runs where the build
    /// runs, not on the executor's host: a container's user code must never reach the host.
    fn runs_all_user_stages(&self) -> bool {
        false
    }

    /// Runs the step script `script` (bash, with the job's variables, secrets among them: a
    /// backend writes it nowhere it can avoid); `cancel` fires on cancel, abort, timeout or
    /// shutdown.
    fn run_step(
        &mut self,
        ctx: &JobContext,
        script: &[u8],
        cancel: &CancellationToken,
    ) -> impl std::future::Future<Output = Result<StepOutcome, JobFailure>> + Send;

    /// Releases everything the job holds. Always called, also after failures and cancels.
    fn cleanup(&mut self, ctx: &JobContext) -> impl std::future::Future<Output = ()> + Send;
}

/// The configured backend.
#[derive(Debug)]
pub enum AnyBackend {
    /// `shell`.
    Shell(ShellBackend),
    /// A batch scheduler through the batch engine (`slurm`).
    Batch(BatchBackend),
    /// `docker+slurm`: Slurm allocates, Docker runs the build on the allocated node.
    DockerSlurm(Box<DockerSlurmBackend>),
}

/// Every batch scheduler this version drives, each described once in its own file.
const SCHEDULERS: &[&dyn batch::Scheduler] = &[
    &slurm::Slurm,
    &pbs::Pbs,
    &cobalt::Cobalt,
    &lsf::Lsf,
    &flux::Flux,
];

fn scheduler(kind: ExecutorKind) -> Option<&'static dyn batch::Scheduler> {
    SCHEDULERS.iter().copied().find(|s| s.kind() == kind)
}

impl AnyBackend {
    /// The backend for `kind`, or why it is not available.
    pub fn new(kind: ExecutorKind) -> Result<AnyBackend, String> {
        if kind == ExecutorKind::Shell {
            return Ok(AnyBackend::Shell(ShellBackend));
        }
        if kind == ExecutorKind::DockerSlurm {
            return Ok(AnyBackend::DockerSlurm(Box::default()));
        }
        match scheduler(kind) {
            Some(scheduler) => Ok(AnyBackend::Batch(BatchBackend::new(scheduler))),
            None => Err(format!(
                "the {kind} executor is not available in this version (available: {})",
                available_executors()
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The executors this version can drive.
pub fn available_executors() -> Vec<ExecutorKind> {
    std::iter::once(ExecutorKind::Shell)
        .chain(SCHEDULERS.iter().map(|s| s.kind()))
        .chain(std::iter::once(ExecutorKind::DockerSlurm))
        .collect()
}

/// The executor an alias names (`sbatch` → `slurm`), for `executor = ...`.
pub fn executor_for_alias(alias: &str) -> Option<ExecutorKind> {
    SCHEDULERS
        .iter()
        .find(|s| s.aliases().contains(&alias))
        .map(|s| s.kind())
}

/// The aliases of `kind`, for messages that list what `executor = ...` accepts.
pub fn executor_aliases(kind: ExecutorKind) -> Vec<&'static str> {
    scheduler(kind).map_or(Vec::new(), |s| s.aliases().to_vec())
}

/// How `kind` runs a step and which scheduler commands it needs, for `batchci check`;
/// `None` for an executor this version does not provide.
pub fn describe(kind: ExecutorKind) -> Option<(&'static str, &'static [&'static str])> {
    if kind == ExecutorKind::Shell {
        return Some(("env -i /bin/bash --login on this host", &[]));
    }
    if kind == ExecutorKind::DockerSlurm {
        return Some((docker_slurm::HOW, docker_slurm::PROGRAMS));
    }
    scheduler(kind).map(|s| (s.how(), s.programs()))
}

/// The environment variables the commands of `kind`'s scheduler read to find their cluster
/// (`SLURM_CONF`, `PBS_CONF_FILE`, ...): the scheduler's own, none of another's.
pub fn client_variables(kind: ExecutorKind) -> &'static [&'static str] {
    match kind {
        ExecutorKind::Shell => &[],
        ExecutorKind::DockerSlurm => slurm::CLIENT_VARIABLES,
        _ => scheduler(kind).map_or(&[], |s| s.client_variables()),
    }
}

/// The command that asks `kind`'s controller whether it answers (`scontrol ping`, `qstat -B`,
/// `bhosts`, `flux uptime`, Cobalt's `qstat`); it exits 0 when it does. `None` for the shell.
pub fn controller_check(kind: ExecutorKind) -> Option<(&'static str, Vec<String>)> {
    match kind {
        ExecutorKind::Shell => None,
        ExecutorKind::DockerSlurm => Some(slurm::controller_check()),
        _ => scheduler(kind).map(|s| s.controller_check()),
    }
}

/// The programs `runner`'s jobs need on the scheduler commands' PATH: its scheduler's
/// commands, and for docker+slurm the configured docker client.
pub fn programs(runner: &RunnerConfig) -> Vec<String> {
    let Some((_, programs)) = describe(runner.executor) else {
        return Vec::new();
    };
    programs
        .iter()
        .map(|program| match (*program, &runner.docker.docker_program) {
            ("docker", Some(client)) if runner.executor == ExecutorKind::DockerSlurm => {
                client.display().to_string()
            }
            (program, _) => program.to_string(),
        })
        .collect()
}

/// The whole environment of `runner`'s scheduler commands: PATH (`scheduler_bin` first), the
/// basics of a login, the variables `env_vars` names and the `scheduler_environment` pairs
/// ([`crate::command::scheduler_env`]), and, unless the runner sets them itself, the
/// variables its scheduler's commands read to find their cluster ([`client_variables`]) as
/// batchci's environment sets them. A service manager starts batchci with an environment of
/// its own: `SLURM_CONF` exported in a login shell reaches `batchci check` run there, not
/// necessarily `batchci run`.
pub fn scheduler_env(
    runner: &RunnerConfig,
    run_as: Option<&crate::command::RunAs>,
) -> Vec<(OsString, OsString)> {
    with_client_variables(
        crate::command::scheduler_env(&runner.batch, run_as),
        runner.executor,
        |key| std::env::var_os(key),
    )
}

/// `env` with `kind`'s client variables added from `lookup` where `env` has none; an empty
/// value is as good as none (a client would try to open a file named ``).
fn with_client_variables(
    mut env: Vec<(OsString, OsString)>,
    kind: ExecutorKind,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Vec<(OsString, OsString)> {
    for key in client_variables(kind) {
        if env.iter().any(|(k, _)| k == key) {
            continue;
        }
        if let Some(value) = lookup(key).filter(|v| !v.is_empty()) {
            env.push((OsString::from(key), value));
        }
    }
    env
}

/// Whether `runner` may ask GitLab for another job now (docker+slurm's `max_pending_builds`).
pub async fn can_take_job(runner: &RunnerConfig) -> bool {
    match runner.executor {
        ExecutorKind::DockerSlurm => docker_slurm::can_take_job(runner).await,
        _ => true,
    }
}

/// Notes that GitLab handed job `job_id` to `runner`, before its task starts, so that
/// [`can_take_job`] counts it at once; the note goes with the returned guard, which the job's
/// task holds to its end.
pub fn job_taken(runner: &RunnerConfig, job_id: u64) -> Option<docker_slurm::Claim> {
    (runner.executor == ExecutorKind::DockerSlurm).then(|| docker_slurm::claim(runner, job_id))
}

/// The command that cancels scheduler job `id` of `kind` (crash recovery), if `kind` has one.
pub fn cancel_command(kind: ExecutorKind, id: &str) -> Option<(&'static str, Vec<String>)> {
    if kind == ExecutorKind::DockerSlurm {
        return Some(("scancel", vec![id.to_string()]));
    }
    scheduler(kind).map(|s| s.cancel(id))
}

impl Backend for AnyBackend {
    async fn prepare(
        &mut self,
        ctx: &JobContext,
        cancel: &CancellationToken,
    ) -> Result<(), JobFailure> {
        match self {
            AnyBackend::Shell(b) => b.prepare(ctx, cancel).await,
            AnyBackend::Batch(b) => b.prepare(ctx, cancel).await,
            AnyBackend::DockerSlurm(b) => b.prepare(ctx, cancel).await,
        }
    }

    fn runs_all_user_stages(&self) -> bool {
        matches!(self, AnyBackend::DockerSlurm(_))
    }

    fn build_timeout(&self, ctx: &JobContext) -> Duration {
        match self {
            AnyBackend::Shell(b) => b.build_timeout(ctx),
            AnyBackend::Batch(b) => b.build_timeout(ctx),
            AnyBackend::DockerSlurm(b) => b.build_timeout(ctx),
        }
    }

    async fn run_step(
        &mut self,
        ctx: &JobContext,
        script: &[u8],
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, JobFailure> {
        match self {
            AnyBackend::Shell(b) => b.run_step(ctx, script, cancel).await,
            AnyBackend::Batch(b) => b.run_step(ctx, script, cancel).await,
            AnyBackend::DockerSlurm(b) => b.run_step(ctx, script, cancel).await,
        }
    }

    async fn cleanup(&mut self, ctx: &JobContext) {
        match self {
            AnyBackend::Shell(b) => b.cleanup(ctx).await,
            AnyBackend::Batch(b) => b.cleanup(ctx).await,
            AnyBackend::DockerSlurm(b) => b.cleanup(ctx).await,
        }
    }
}

/// A job context for the backends' own tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{JobContext, JobDirs, LogSink};

    /// A job log that keeps what was written.
    #[derive(Default)]
    pub(crate) struct CollectedLog(Mutex<Vec<u8>>);

    impl CollectedLog {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl LogSink for CollectedLog {
        fn write(&self, bytes: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
    }

    /// Job 1 of a shell runner, with its directories under `dir` and `kill_timeout`.
    pub(crate) fn context(dir: &Path, kill_timeout: Duration) -> (JobContext, Arc<CollectedLog>) {
        let text = "[[runners]]\nname = \"t\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"t\"\nexecutor = \"shell\"\n";
        let config = crate::config::Config::parse(Path::new("test.toml"), text).unwrap();
        let log = Arc::new(CollectedLog::default());
        let dirs = JobDirs {
            builds_dir: dir.to_path_buf(),
            project_dir: dir.join("project"),
            tmp_dir: dir.join("project.tmp"),
        };
        std::fs::create_dir_all(&dirs.project_dir).unwrap();
        std::fs::create_dir_all(&dirs.tmp_dir).unwrap();
        let ctx = JobContext {
            job: Arc::new(crate::job::Job::default()),
            runner: Arc::new(config.runners[0].clone()),
            log: log.clone(),
            dirs,
            exports: Vec::new(),
            state: None,
            gitlab: None,
            run_as: None,
            downscoped: false,
            kill_timeout,
        };
        (ctx, log)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn set(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn names(env: &[(OsString, OsString)]) -> Vec<String> {
        env.iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect()
    }

    /// Each scheduler's commands get that scheduler's client variables from batchci's
    /// environment, none of another scheduler's; what the runner sets itself wins, and an
    /// empty value is not passed.
    #[test]
    fn scheduler_commands_get_their_own_schedulers_client_variables() {
        let environment = set(&[
            ("SLURM_CONF", "/etc/slurm/a.conf"),
            ("PBS_CONF_FILE", "/etc/pbs.conf"),
            ("PBS_SERVER", ""),
            ("LSF_ENVDIR", "/opt/lsf/conf"),
            ("FLUX_URI", "local:///run/flux/local"),
            ("COBALT_CONFIG_FILES", "/etc/cobalt.conf"),
        ]);
        let base = || vec![(OsString::from("PATH"), OsString::from("/usr/bin"))];
        let with = |kind| names(&with_client_variables(base(), kind, &environment));
        assert_eq!(with(ExecutorKind::Shell), ["PATH=/usr/bin"]);
        assert_eq!(
            with(ExecutorKind::Slurm),
            ["PATH=/usr/bin", "SLURM_CONF=/etc/slurm/a.conf"]
        );
        assert_eq!(
            with(ExecutorKind::DockerSlurm),
            ["PATH=/usr/bin", "SLURM_CONF=/etc/slurm/a.conf"]
        );
        assert_eq!(
            with(ExecutorKind::Pbs),
            ["PATH=/usr/bin", "PBS_CONF_FILE=/etc/pbs.conf"]
        );
        assert_eq!(
            with(ExecutorKind::Lsf),
            ["PATH=/usr/bin", "LSF_ENVDIR=/opt/lsf/conf"]
        );
        assert_eq!(
            with(ExecutorKind::Flux),
            ["PATH=/usr/bin", "FLUX_URI=local:///run/flux/local"]
        );
        assert_eq!(
            with(ExecutorKind::Cobalt),
            ["PATH=/usr/bin", "COBALT_CONFIG_FILES=/etc/cobalt.conf"]
        );

        let own = vec![
            (OsString::from("PATH"), OsString::from("/usr/bin")),
            (
                OsString::from("SLURM_CONF"),
                OsString::from("/etc/slurm/b.conf"),
            ),
        ];
        assert_eq!(
            names(&with_client_variables(
                own,
                ExecutorKind::Slurm,
                &environment
            )),
            ["PATH=/usr/bin", "SLURM_CONF=/etc/slurm/b.conf"]
        );
    }

    #[test]
    fn every_batch_executor_has_a_controller_check() {
        let checks: Vec<String> = ExecutorKind::ALL
            .iter()
            .map(|kind| match controller_check(*kind) {
                Some((program, args)) => format!("{kind}: {program} {}", args.join(" ")),
                None => format!("{kind}: none"),
            })
            .collect();
        assert_eq!(
            checks,
            [
                "shell: none",
                "slurm: scontrol ping",
                "pbs: qstat -B",
                "lsf: bhosts ",
                "flux: flux uptime",
                "cobalt: qstat ",
                "docker+slurm: scontrol ping",
            ]
        );
    }
}
