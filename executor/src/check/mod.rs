//! `batchci check`: a preflight that catches what would make `batchci run` or its first jobs
//! fail, before they do.
//!
//! Per runner, with the environment its scheduler commands get (`env_vars`,
//! `scheduler_environment` and the scheduler's own client variables such as `SLURM_CONF`) and
//! as the user they run as (`[runners.slurm] user`): the scheduler's commands resolve in that
//! PATH, its controller answers (`scontrol ping`, `qstat -B`, `bhosts`, `flux uptime`, Cobalt's
//! `qstat`), GitLab accepts the token (not with `--offline`), the builds and cache
//! directories are absolute and there or creatable, writable and reachable; and for the whole
//! file: `listen_address` is one `batchci run` can serve, `state_dir` is fit for job tokens,
//! and the durations are sane. The result is a table of checks, each `ok`, `warning`, `error`
//! or `skipped`; a problem that comes from the file names its line and key.

pub(crate) mod describe;
pub(crate) mod dirs;
mod scheduler;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::command::RunAs;
use crate::config::{BatchWait, Config, ConfigError, ExecutorKind, RunnerConfig};

/// How `batchci check` runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Ask GitLab nothing (the token is not checked).
    pub offline: bool,
    /// How long one scheduler command or GitLab request may take.
    pub timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            offline: false,
            timeout: Duration::from_secs(20),
        }
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but likely not as meant.
    Warning,
    /// Will fail: `batchci check` exits 1.
    Error,
    /// Not checked (`--offline`, or what it needs failed first).
    Skipped,
}

impl Status {
    /// The word in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What was checked (`controller`, `builds_dir`, ...).
    pub check: String,
    /// The runner's name, `-` for the whole file.
    pub runner: String,
    /// The verdict.
    pub status: Status,
    /// What was found, and what to do about a problem.
    pub detail: String,
}

/// Every check's row, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The rows.
    pub rows: Vec<Row>,
}

impl Report {
    fn push(&mut self, check: &str, runner: &str, (status, detail): (Status, String)) {
        self.rows.push(Row {
            check: check.to_string(),
            runner: runner.to_string(),
            status,
            detail,
        });
    }

    fn count(&self, status: Status) -> usize {
        self.rows.iter().filter(|row| row.status == status).count()
    }

    /// The table: a header, then one aligned line per check.
    pub fn table(&self) -> String {
        let header = ("check", "runner", "status");
        let width = |column: fn(&Row) -> &str, title: &str| {
            self.rows
                .iter()
                .map(|row| column(row).chars().count())
                .chain(std::iter::once(title.len()))
                .max()
                .unwrap_or(0)
        };
        let check = width(|row| &row.check, header.0);
        let runner = width(|row| &row.runner, header.1);
        let status = width(|row| row.status.as_str(), header.2);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:check$}  {:runner$}  {:status$}  detail",
            header.0, header.1, header.2
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:check$}  {:runner$}  {:status$}  {}",
                row.check,
                row.runner,
                row.status.as_str(),
                row.detail
            );
        }
        out
    }

    /// One line: how many errors and warnings, and whether the check passed.
    pub fn summary(&self) -> String {
        let (errors, warnings) = (self.count(Status::Error), self.count(Status::Warning));
        match (errors, warnings) {
            (0, 0) => "check passed".to_string(),
            (0, w) => format!("check passed with {w} warning(s)"),
            (e, w) => format!("check failed: {e} error(s), {w} warning(s)"),
        }
    }

    /// 1 when a check failed, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.count(Status::Error) > 0)
    }
}

/// A configuration file's text, to say where a key is written.
pub(crate) struct Located<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> Located<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Located { file, text }
    }

    /// `FILE:LINE: KEY: message`, as configuration errors are written.
    pub(crate) fn at(&self, key: &str, message: String) -> String {
        ConfigError {
            file: self.file.to_path_buf(),
            line: crate::config::line_of_key(self.text, key),
            key: key.to_string(),
            message,
        }
        .to_string()
    }
}

/// `batchci check --config PATH`: prints what each runner will do, the table and its
/// summary; returns the exit code: 0 without errors, 1 with, 2 when the file does not load.
pub async fn run(path: &Path, options: &CheckOptions) -> u8 {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{}: cannot read: {error}", path.display());
            return 2;
        }
    };
    let config = match Config::parse(path, &text) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return 2;
        }
    };
    print!("{}", describe::describe(path, &config));
    let report = check(&config, path, &text, options).await;
    println!();
    print!("{}", report.table());
    println!("\n{}", report.summary());
    report.exit_code()
}

/// Runs every check of `config`, read from `path` whose text is `text`.
pub async fn check(config: &Config, path: &Path, text: &str, options: &CheckOptions) -> Report {
    let at = Located::new(path, text);
    let mut report = Report::default();
    if config.runners.is_empty() {
        report.push(
            "runners",
            "-",
            (
                Status::Error,
                "the configuration has no [[runners]]; add one with `batchci register`".into(),
            ),
        );
    }
    if let Some(address) = &config.listen_address {
        report.push("listen_address", "-", listen_address(address, &at));
    }
    durations(&mut report, "-", global_durations(config, &at));
    report.push(
        "state_dir",
        "-",
        dirs::check(
            &dirs::DirCheck {
                path: &config.state_dir,
                key: Some("state_dir".into()).filter(|_| line_of(&at, "state_dir")),
                private: true,
                reach: None,
            },
            &at,
        ),
    );
    for (index, runner) in config.runners.iter().enumerate() {
        check_runner(&mut report, index, runner, &at, options).await;
    }
    report
}

/// Whether `key` is written in the file (else its value is the default).
fn line_of(at: &Located<'_>, key: &str) -> bool {
    crate::config::line_of_key(at.text, key).is_some()
}

/// The rows of one runner.
async fn check_runner(
    report: &mut Report,
    index: usize,
    runner: &RunnerConfig,
    at: &Located<'_>,
    options: &CheckOptions,
) {
    let name = runner.name.as_str();
    let key = |k: &str| format!("runners[{index}].{k}");
    if let Err(why) = crate::backends::AnyBackend::new(runner.executor) {
        report.push(
            "executor",
            name,
            (Status::Error, at.at(&key("executor"), why)),
        );
        return;
    }
    let auth = &runner.auth;
    let privileged = match crate::auth::privilege_problem(auth) {
        Some(why) => {
            report.push(
                "auth",
                name,
                (Status::Error, at.at(&key("auth.downscope"), why)),
            );
            false
        }
        None => true,
    };
    if let Some(why) = crate::auth::validation_script_problem(auth) {
        report.push(
            "auth",
            name,
            (Status::Error, at.at(&key("auth.validation_script"), why)),
        );
    }
    if privileged && auth.downscope != crate::auth::Downscope::None {
        report.push(
            "auth",
            name,
            (
                Status::Ok,
                format!(
                    "jobs run as the user of their ID token ({}); the rows below are checked as \
                     batchci's user, and a user's own rights and environment may differ",
                    auth.downscope.name()
                ),
            ),
        );
    }
    let run_as = run_as(report, name, runner, at, &key("slurm.user"));
    let env = crate::backends::scheduler_env(runner, None);
    if runner.executor == ExecutorKind::Shell {
        report.push("programs", name, shell_program());
    } else {
        report.push("programs", name, scheduler::programs(runner, &env));
        report.push(
            "environment",
            name,
            (Status::Ok, scheduler::environment(runner, &env)),
        );
    }
    env_vars(report, index, runner, at);
    if runner.executor != ExecutorKind::Shell {
        let row = match &run_as {
            RunAsState::Impossible => Some((
                Status::Skipped,
                "not asked: the commands cannot run as their user (see run_as)".to_string(),
            )),
            RunAsState::Own => scheduler::controller(runner, &env, None, options.timeout).await,
            RunAsState::As(_, user) => {
                scheduler::controller(runner, &env, Some(user.clone()), options.timeout).await
            }
        };
        if let Some(row) = row {
            report.push("controller", name, row);
        }
    }
    report.push(
        "token",
        name,
        token(runner, at, &key("token"), options).await,
    );
    let reach = match &run_as {
        RunAsState::As(user, id) => Some((user.as_str(), id.clone())),
        _ => None,
    };
    let builds = runner
        .builds_dir
        .clone()
        .unwrap_or_else(dirs::default_builds_dir);
    let mut row = dirs::check(
        &dirs::DirCheck {
            path: &builds,
            key: runner.builds_dir.as_ref().map(|_| key("builds_dir")),
            private: false,
            reach: reach.clone(),
        },
        at,
    );
    if runner.builds_dir.is_none() && runner.executor != ExecutorKind::Shell && row.0 == Status::Ok
    {
        row = (
            Status::Warning,
            format!(
                "not set: jobs are checked out in `{}` on this host, where compute nodes do not see them (unless they are this host); set builds_dir to a directory they share",
                builds.display()
            ),
        );
    }
    report.push("builds_dir", name, row);
    if let Some(cache) = &runner.cache_dir {
        let row = dirs::check(
            &dirs::DirCheck {
                path: cache,
                key: Some(key("cache_dir")),
                private: false,
                reach,
            },
            at,
        );
        report.push("cache_dir", name, row);
    }
    durations(report, name, runner_durations(index, runner, at));
}

/// Who the runner's commands run as.
enum RunAsState {
    /// batchci's own user.
    Own,
    /// `[runners.slurm] user`, which batchci (root) can switch to.
    As(String, RunAs),
    /// A user batchci cannot switch to.
    Impossible,
}

fn run_as(
    report: &mut Report,
    name: &str,
    runner: &RunnerConfig,
    at: &Located<'_>,
    key: &str,
) -> RunAsState {
    let Some(user) = runner.slurm.user.as_deref().filter(|u| !u.is_empty()) else {
        return RunAsState::Own;
    };
    let me = nix::unistd::Uid::effective();
    match RunAs::lookup(user, runner.slurm.group.as_deref()) {
        Err(why) => {
            report.push("run_as", name, (Status::Error, at.at(key, why)));
            RunAsState::Impossible
        }
        Ok(id) if !me.is_root() && id.uid != me.as_raw() => {
            report.push(
                "run_as",
                name,
                (
                    Status::Error,
                    at.at(
                        key,
                        format!(
                            "batchci runs as {} (uid {}), not root: it cannot run commands as `{user}`",
                            dirs::own_user(),
                            me.as_raw()
                        ),
                    ),
                ),
            );
            RunAsState::Impossible
        }
        Ok(id) => {
            report.push(
                "run_as",
                name,
                (
                    Status::Ok,
                    format!(
                        "scheduler commands and git run as {user} (uid {}, gid {}); the controller is asked as that user",
                        id.uid, id.gid
                    ),
                ),
            );
            RunAsState::As(user.to_string(), id)
        }
    }
}

/// The shell executor runs `/bin/bash`.
fn shell_program() -> (Status, String) {
    use std::os::unix::fs::PermissionsExt;
    let bash = Path::new("/bin/bash");
    match std::fs::metadata(bash) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
            (Status::Ok, "bash in /bin".into())
        }
        _ => (
            Status::Error,
            "/bin/bash is missing: the shell executor runs every job with it".into(),
        ),
    }
}

/// `env_vars` naming variables batchci's environment does not set: the commands will not get
/// them.
fn env_vars(report: &mut Report, index: usize, runner: &RunnerConfig, at: &Located<'_>) {
    let given_by_runner = |name: &str| {
        runner
            .batch
            .scheduler_environment
            .iter()
            .any(|pair| pair.split_once('=').is_some_and(|(k, _)| k == name))
    };
    let mut set = Vec::new();
    for (n, name) in runner.batch.env_vars.iter().enumerate() {
        if std::env::var_os(name).is_some() || given_by_runner(name) {
            set.push(name.as_str());
            continue;
        }
        report.push(
            "env_vars",
            &runner.name,
            (
                Status::Warning,
                at.at(
                    &format!("runners[{index}].batch.env_vars[{n}]"),
                    format!("`{name}` is not set in batchci's environment; scheduler commands do not get it"),
                ),
            ),
        );
    }
    if !set.is_empty() {
        report.push(
            "env_vars",
            &runner.name,
            (
                Status::Ok,
                format!("{} set in batchci's environment", set.join(", ")),
            ),
        );
    }
}

/// Whether GitLab accepts the runner's token.
async fn token(
    runner: &RunnerConfig,
    at: &Located<'_>,
    key: &str,
    options: &CheckOptions,
) -> (Status, String) {
    if options.offline {
        return (Status::Skipped, "--offline: GitLab not asked".into());
    }
    let client = match crate::gitlab::GitlabClient::new(&runner.url, runner.executor.name()) {
        Ok(client) => client,
        Err(error) => return (Status::Error, crate::error_chain(&error)),
    };
    match tokio::time::timeout(options.timeout, client.verify(&runner.token)).await {
        Ok(Ok(true)) => (Status::Ok, format!("accepted by {}", runner.url)),
        Ok(Ok(false)) => (
            Status::Error,
            at.at(
                key,
                format!(
                    "{} refuses this token: register the runner again (`batchci register`) or write its current token",
                    runner.url
                ),
            ),
        ),
        Ok(Err(error)) => (
            Status::Error,
            format!(
                "cannot ask {} about the token: {}",
                runner.url,
                crate::error_chain(&error)
            ),
        ),
        Err(_) => (
            Status::Error,
            format!(
                "{} did not answer within {}s",
                runner.url,
                options.timeout.as_secs()
            ),
        ),
    }
}

/// Whether `run` can serve the metrics at `address`: it parses as `run` reads it, and no
/// other process holds the port now.
fn listen_address(address: &str, at: &Located<'_>) -> (Status, String) {
    let addresses = match crate::metrics::listen_addresses(address) {
        Ok(addresses) => addresses,
        Err(why) => return (Status::Error, at.at("listen_address", why)),
    };
    let shown: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    let shown = shown.join(", ");
    match std::net::TcpListener::bind(&addresses[..]) {
        Ok(_) => (
            Status::Ok,
            format!("metrics at http://{shown}/metrics (free now)"),
        ),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => (
            Status::Warning,
            at.at(
                "listen_address",
                format!("{shown} is in use now (by a running batchci?); `batchci run` cannot serve metrics there while it is"),
            ),
        ),
        Err(error) => (
            Status::Error,
            at.at(
                "listen_address",
                format!("`batchci run` could not listen on {shown}: {error}"),
            ),
        ),
    }
}

/// A duration as written back: `3s`, `500ms`.
fn shown(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// Durations of a scope: the values, and what is wrong with them.
struct Durations {
    values: Vec<String>,
    problems: Vec<(Status, String)>,
}

fn durations(report: &mut Report, runner: &str, found: Durations) {
    if found.problems.is_empty() {
        report.push("durations", runner, (Status::Ok, found.values.join(", ")));
    }
    for problem in found.problems {
        report.push("durations", runner, problem);
    }
}

fn global_durations(config: &Config, at: &Located<'_>) -> Durations {
    let mut problems = Vec::new();
    if config.check_interval.is_zero() {
        problems.push((
            Status::Warning,
            at.at(
                "check_interval",
                "0 is read as 3s (gitlab-runner's meaning of 0); write `check_interval = 3` to say so".into(),
            ),
        ));
    } else if config.check_interval > Duration::from_secs(300) {
        problems.push((
            Status::Warning,
            at.at(
                "check_interval",
                format!(
                    "{}: an idle runner leaves a new job waiting that long before it asks GitLab",
                    shown(config.check_interval)
                ),
            ),
        ));
    }
    Durations {
        values: vec![
            format!("check_interval {}", shown(config.job_poll_interval())),
            format!(
                "shutdown_timeout {}{}",
                shown(config.shutdown_timeout),
                if config.shutdown_timeout.is_zero() {
                    " (running jobs finish however long they take)"
                } else {
                    ""
                }
            ),
        ],
        problems,
    }
}

fn runner_durations(index: usize, runner: &RunnerConfig, at: &Located<'_>) -> Durations {
    let batch = &runner.batch;
    let key = |k: &str| format!("runners[{index}].batch.{k}");
    let mut values = Vec::new();
    let mut problems = Vec::new();
    if runner.executor == ExecutorKind::Shell {
        return Durations {
            values: vec!["none used by the shell executor".into()],
            problems,
        };
    }
    values.push(format!("poll_interval {}", shown(batch.poll_interval)));
    if batch.poll_interval > Duration::from_secs(60) {
        problems.push((
            Status::Warning,
            at.at(
                &key("poll_interval"),
                format!(
                    "{}: output written on another node (NFS, which inotify does not see) reaches the log that late",
                    shown(batch.poll_interval)
                ),
            ),
        ));
    }
    values.push(format!("nfs_timeout {}", shown(batch.nfs_timeout)));
    if batch.nfs_timeout.is_zero() {
        problems.push((
            Status::Warning,
            at.at(
                &key("nfs_timeout"),
                "0s: output that reaches this host after the job ended (written on a compute node over NFS) is cut off".into(),
            ),
        ));
    }
    if batch.wait == BatchWait::Batched {
        values.push(format!("status_interval {}", shown(batch.status_interval)));
        if batch.status_interval > Duration::from_secs(300) {
            problems.push((
                Status::Warning,
                at.at(
                    &key("status_interval"),
                    format!(
                        "{}: a job's end is noticed up to that late",
                        shown(batch.status_interval)
                    ),
                ),
            ));
        }
    }
    values.push(format!("command_delay {}", shown(batch.command_delay)));
    if batch.command_delay > Duration::from_secs(60) {
        problems.push((
            Status::Warning,
            at.at(
                &key("command_delay"),
                format!(
                    "{}: every job waits that long before it is submitted",
                    shown(batch.command_delay)
                ),
            ),
        ));
    }
    values.push(format!(
        "submit_retry_delay {}",
        shown(batch.submit_retry_delay)
    ));
    Durations { values, problems }
}

#[cfg(test)]
mod tests;
