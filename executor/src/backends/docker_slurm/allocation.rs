//! The placeholder Slurm job that holds a docker+slurm build's cores and memory.
//!
//! `srun` runs the allocation script with its standard input kept open. The script says where
//! it runs, in exactly two lines, then waits on its standard input (`exec cat`):
//!
//! ```text
//! gitlab-runner: hostname: node01
//! gitlab-runner: cpuset: 0-3
//! ```
//!
//! Closing its standard input ends the job; `scancel` makes sure of it. While Slurm has not
//! started the job, a progress line goes into the job log at an interval, so that the person
//! waiting (and GitLab, which considers a silent job stuck) sees why.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::sync::CancellationToken;

use crate::backends::{JobContext, JobFailure};
use crate::command::{CommandSpec, Input, RunAs};
use crate::config::SlurmConfig;

/// The allocation script batchci runs when `allocation_script` is not set. It reads the CPU
/// list from `/proc` so that nodes need nothing beyond a shell.
pub(crate) const BUILTIN_SCRIPT: &str = "echo \"gitlab-runner: hostname: $(hostname)\"; \
echo \"gitlab-runner: cpuset: $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$$/status)\"; \
exec cat";

/// Where the build may run: what the allocation script reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handle {
    /// The node's host name, for the Docker daemon's address.
    pub(crate) hostname: String,
    /// The CPUs Slurm allocated, as `--cpuset-cpus` takes them (`0-3,8`).
    pub(crate) cpuset: String,
}

/// Reads the allocation script's two lines, strictly; `Err` quotes what is wrong.
pub(crate) fn parse_handle(first: &str, second: &str) -> Result<Handle, String> {
    let field = |line: &str, key: &str| -> Result<String, String> {
        let value = line
            .strip_prefix("gitlab-runner: ")
            .and_then(|rest| rest.strip_prefix(key))
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::trim)
            .filter(|value| !value.is_empty() && !value.contains(char::is_whitespace));
        value.map(str::to_string).ok_or_else(|| {
            format!("the allocation script printed {line:?} where `gitlab-runner: {key}: <value>` was expected")
        })
    };
    let hostname = field(first, "hostname")?;
    let cpuset = field(second, "cpuset")?;
    let valid_cpuset = cpuset.split(',').all(|part| {
        let mut ends = part.splitn(2, '-');
        let number = |s: Option<&str>| {
            s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        let (low, high) = (ends.next(), ends.next());
        number(low) && (high.is_none() || number(high))
    });
    if !valid_cpuset {
        return Err(format!(
            "the allocation script printed {second:?}: {cpuset:?} is not a CPU list such as 0-3,8"
        ));
    }
    Ok(Handle { hostname, cpuset })
}

/// The placeholder job's settings, from `[runners.slurm]`.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The job name: identifies runner and CI job (`batchci-<token>-job-<id>`).
    pub(crate) name: String,
    /// The Slurm time limit, whole minutes.
    pub(crate) time_minutes: u64,
    /// Give up when Slurm has not started the job within this.
    pub(crate) timeout: Option<Duration>,
    /// Progress lines while pending, this far apart.
    pub(crate) progress_interval: Duration,
    /// Fail at once when Slurm expects the start after the timeout.
    pub(crate) abort_on_expected_timeout: bool,
}

/// The `srun` argv of the placeholder job.
pub(crate) fn srun_args(slurm: &SlurmConfig, request: &Request) -> Vec<String> {
    let mut args = vec![
        format!("--job-name={}", request.name),
        "--ntasks=1".to_string(),
        format!("--time={}", request.time_minutes.max(1)),
    ];
    if let Some(partition) = &slurm.partition {
        args.push(format!("--partition={partition}"));
    }
    if let Some(qos) = slurm.qos.as_deref().filter(|q| !q.is_empty()) {
        args.push(format!("--qos={qos}"));
    }
    if let Some(cpus) = slurm.cpus {
        args.push(format!("--cpus-per-task={cpus}"));
    }
    if let Some(memory) = &slurm.memory {
        args.push(format!("--mem={memory}"));
    }
    match &slurm.allocation_script {
        Some(script) => args.push(script.display().to_string()),
        None => {
            args.extend(["/bin/sh".to_string(), "-c".to_string()]);
            args.push(BUILTIN_SCRIPT.to_string());
        }
    }
    args
}

/// What keeps srun's standard input open.
#[derive(Debug)]
enum StdinHolder {
    /// batchci's end of the pipe (runner mode); dropping it ends the job.
    Pipe(Option<ChildStdin>),
    /// A process that holds the pipe's write end and nothing else (custom-executor mode,
    /// where srun outlives the `prepare` process); ending it ends the job.
    Process(u32),
}

/// Where the allocation script's lines come from.
#[derive(Debug)]
enum Output {
    /// srun's standard output pipe (buffered once: a buffer per read would lose lines).
    Pipe(Option<BufReader<ChildStdout>>),
    /// A file srun writes, read as it grows.
    File { path: PathBuf, read: usize },
}

/// A placeholder job: the running `srun`, and what is known of its Slurm job.
#[derive(Debug)]
pub(crate) struct Placeholder {
    child: Child,
    stdin: StdinHolder,
    output: Output,
    name: String,
    /// srun's standard error: the last lines (runner mode), or the file it goes to.
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_file: Option<PathBuf>,
    /// The Slurm job id, once known.
    pub(crate) job_id: Option<String>,
    /// Whether the allocation script reported its node (the job runs).
    granted: bool,
}

/// How many of srun's last stderr lines a failure quotes.
const STDERR_TAIL: usize = 8;

/// How often a file srun writes is read again.
const FILE_POLL: Duration = Duration::from_millis(100);

fn spawn_failure(error: std::io::Error, run_as: Option<&RunAs>) -> JobFailure {
    let hint = if run_as.is_some() && error.kind() == std::io::ErrorKind::PermissionDenied {
        " (running Slurm commands as another user needs root)"
    } else {
        ""
    };
    JobFailure::system(format!("{error}{hint}"))
}

impl Placeholder {
    /// Starts `srun` (as `run_as` when set) with its output on pipes that batchci reads.
    pub(crate) fn start(
        ctx: &JobContext,
        args: Vec<String>,
        name: &str,
        run_as: Option<&RunAs>,
    ) -> Result<Placeholder, JobFailure> {
        let spec = scheduler_command(ctx, "srun", args, run_as).input(Input::Piped);
        ctx.log.info(&format!("$ {}", spec.display()));
        let mut child = spec.spawn_piped().map_err(|e| spawn_failure(e, run_as))?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = stderr_tail.clone();
            let log = ctx.log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.info(&line);
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        Ok(Placeholder {
            stdin: StdinHolder::Pipe(child.stdin.take()),
            output: Output::Pipe(child.stdout.take().map(BufReader::new)),
            child,
            name: name.to_string(),
            stderr_tail,
            stderr_file: None,
            job_id: None,
            granted: false,
        })
    }

    /// Starts `srun` so that it outlives this process: its standard input is a pipe whose
    /// write end a `sleep infinity` holds, its output goes to `dir/placeholder.out` and
    /// `.err`. Returns the placeholder and the holder's and srun's process ids.
    pub(crate) fn start_detached(
        ctx: &JobContext,
        args: Vec<String>,
        name: &str,
        run_as: Option<&RunAs>,
        dir: &Path,
    ) -> Result<(Placeholder, u32, u32), JobFailure> {
        let io = |e: std::io::Error| {
            JobFailure::system(format!("cannot start the placeholder job: {e}"))
        };
        let (reader, writer) = std::io::pipe().map_err(io)?;
        let holder = CommandSpec::new("sleep", ["infinity"], "/")
            .env("PATH", "/usr/bin:/bin")
            .spawn_with(Stdio::null(), Stdio::from(writer), Stdio::null())
            .map_err(io)?;
        let holder_pid = holder.id().unwrap_or_default();
        let out = dir.join("placeholder.out");
        let err = dir.join("placeholder.err");
        let spec = scheduler_command(ctx, "srun", args, run_as);
        ctx.log.info(&format!("$ {}", spec.display()));
        let started = std::fs::File::create(&out).and_then(|stdout| {
            let stderr = std::fs::File::create(&err)?;
            spec.spawn_with(
                Stdio::from(reader),
                Stdio::from(stdout),
                Stdio::from(stderr),
            )
        });
        let child = match started {
            Ok(child) => child,
            Err(error) => {
                stop_group(holder_pid);
                return Err(spawn_failure(error, run_as));
            }
        };
        let srun_pid = child.id().unwrap_or_default();
        Ok((
            Placeholder {
                child,
                stdin: StdinHolder::Process(holder_pid),
                output: Output::File { path: out, read: 0 },
                name: name.to_string(),
                stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
                stderr_file: Some(err),
                job_id: None,
                granted: false,
            },
            holder_pid,
            srun_pid,
        ))
    }

    /// The next line the allocation script printed; `None` once srun has ended.
    async fn next_line(&mut self) -> Option<String> {
        match &mut self.output {
            Output::Pipe(stdout) => {
                let reader = stdout.as_mut()?;
                let mut line = String::new();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
                }
            }
            Output::File { path, read } => loop {
                let text = std::fs::read(&*path).unwrap_or_default();
                if let Some(end) = text[(*read).min(text.len())..]
                    .iter()
                    .position(|b| *b == b'\n')
                {
                    let line = String::from_utf8_lossy(&text[*read..*read + end]).into_owned();
                    *read += end + 1;
                    return Some(line);
                }
                if let Ok(Some(_)) = self.child.try_wait() {
                    return None;
                }
                tokio::time::sleep(FILE_POLL).await;
            },
        }
    }

    /// Waits until the allocation script reports where it runs, writing progress lines while
    /// Slurm keeps the job pending. Fails on `cancel`, at the allocation timeout, when Slurm
    /// expects the start too late (`abort_on_expected_timeout`), when srun ends first, or
    /// when the script's lines are not the handle.
    pub(crate) async fn wait_for_handle(
        &mut self,
        ctx: &JobContext,
        request: &Request,
        run_as: Option<&RunAs>,
        cancel: &CancellationToken,
    ) -> Result<Handle, JobFailure> {
        let started = Instant::now();
        let mut first: Option<String> = None;
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + request.progress_interval,
            request.progress_interval,
        );
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                line = self.next_line() => match line {
                    Some(line) => match first.take() {
                        // A wrong first line is said at once, not after a second that may
                        // never come (the script then waits on its input).
                        None if !line.starts_with("gitlab-runner: hostname: ") => {
                            return Err(JobFailure::system(format!(
                                "the allocation script printed {line:?} where `gitlab-runner: hostname: <value>` was expected"
                            )));
                        }
                        None => first = Some(line),
                        Some(first) => {
                            let handle = parse_handle(&first, &line).map_err(JobFailure::system)?;
                            self.granted = true;
                            self.job_id = query(ctx, &self.name, run_as).await.map(|status| status.id);
                            return Ok(handle);
                        }
                    },
                    None => {
                        let code = crate::command::exit_code_of(self.child.wait().await);
                        let said = self.stderr_text();
                        let partial = first.map(|l| format!("; it printed only {l:?}")).unwrap_or_default();
                        return Err(JobFailure::system(format!(
                            "the Slurm placeholder job ended before it reported its node (srun exit code {}){partial}{said}",
                            code.map_or("unknown".to_string(), |c| c.to_string())
                        )));
                    }
                },
                _ = progress.tick() => {
                    let status = query(ctx, &self.name, run_as).await;
                    let waited = format_duration(started.elapsed());
                    match &status {
                        Some(status) => {
                            self.job_id = Some(status.id.clone());
                            ctx.log.info(&format!(
                                "waiting for a Slurm allocation: job {} {} ({}), {waited}",
                                status.id, status.state.to_lowercase(), status.reason
                            ));
                            if NEVER_STARTS.contains(&status.reason.as_str()) {
                                return Err(JobFailure::system(format!(
                                    "Slurm will not start the placeholder job {} ({}): it asks for --time={} and the runner's [runners.slurm] settings; fix them or the partition's limits",
                                    status.id, status.reason, request.time_minutes.max(1)
                                )));
                            }
                        }
                        None => ctx.log.info(&format!("waiting for a Slurm allocation, {waited}")),
                    }
                    if let (Some(status), Some(timeout)) = (&status, request.timeout)
                        && request.abort_on_expected_timeout
                        && let Some(expected) = status.expected_start
                        && expected > chrono::Local::now().naive_local()
                            + chrono::Duration::from_std(timeout.saturating_sub(started.elapsed())).unwrap_or_default()
                    {
                        return Err(JobFailure::system(format!(
                            "Slurm expects job {} to start at {expected}, after the allocation timeout of {}",
                            status.id,
                            format_duration(timeout)
                        )));
                    }
                }
                _ = sleep_until(deadline) => {
                    let status = query(ctx, &self.name, run_as).await;
                    let detail = status
                        .map(|s| format!(" (job {} {}: {})", s.id, s.state.to_lowercase(), s.reason))
                        .unwrap_or_default();
                    return Err(JobFailure::system(format!(
                        "Slurm did not start the placeholder job within the allocation timeout of {}{detail}",
                        format_duration(request.timeout.unwrap_or_default())
                    )));
                }
                () = cancel.cancelled() => {
                    return Err(JobFailure::system("cancelled while waiting for a Slurm allocation"));
                }
            }
        }
    }

    /// Waits until srun ends (the placeholder job is over); its exit code.
    pub(crate) async fn ended(&mut self) -> Option<i32> {
        crate::command::exit_code_of(self.child.wait().await)
    }

    /// Ends the placeholder job: closes its standard input, waits for srun, stops it if it
    /// does not end, and cancels whatever Slurm still has under the job's name.
    pub(crate) async fn release(mut self, ctx: &JobContext, run_as: Option<&RunAs>) {
        match &mut self.stdin {
            StdinHolder::Pipe(stdin) => drop(stdin.take()),
            StdinHolder::Process(pid) => stop_group(*pid),
        }
        if let Output::Pipe(stdout) = &mut self.output {
            drop(stdout.take());
        }
        let grace = ctx.kill_timeout.max(Duration::from_secs(1));
        // A running job ends when its script reads the end of its input; srun still waiting
        // for Slurm reads nothing, and is told to give the request up (SIGTERM) at once.
        let ended = self.granted && tokio::time::timeout(grace, self.child.wait()).await.is_ok();
        if !ended {
            let _ = crate::command::terminate_group(&mut self.child, grace).await;
        }
        cancel_leftover(ctx, &self.name, run_as).await;
    }

    fn stderr_text(&self) -> String {
        let mut lines: Vec<String> = self
            .stderr_tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        if let Some(file) = &self.stderr_file {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            lines = all[all.len().saturating_sub(STDERR_TAIL)..]
                .iter()
                .map(|l| l.to_string())
                .collect();
        }
        if lines.is_empty() {
            String::new()
        } else {
            format!(": {}", lines.join(" / "))
        }
    }
}

/// Ends a placeholder job that another batchci process started ([`Placeholder::start_detached`]):
/// stops its stdin holder, gives srun the grace to end, stops it, and cancels what Slurm still
/// has under `name`.
pub(crate) async fn release_detached(
    ctx: &JobContext,
    name: &str,
    holder_pid: u32,
    srun_pid: u32,
    run_as: Option<&RunAs>,
) {
    // The pids come from a file: signal only processes that are what it says they are.
    if runs(holder_pid, "sleep") {
        stop_group(holder_pid);
    }
    let grace = ctx.kill_timeout.max(Duration::from_secs(1));
    let deadline = Instant::now() + grace;
    while runs(srun_pid, "srun") && Instant::now() < deadline {
        tokio::time::sleep(FILE_POLL).await;
    }
    if runs(srun_pid, "srun") {
        stop_group(srun_pid);
    }
    cancel_leftover(ctx, name, run_as).await;
}

/// SIGTERM to a process group we started (its leader's pid); nothing for pid 0.
fn stop_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// Whether process `pid` runs `program` (its argv[0] ends with it).
fn runs(pid: u32, program: &str) -> bool {
    pid > 0
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(argv0).rsplit('/').next() == Some(program)
        })
}

/// Cancels the Slurm job named `name` if Slurm still has it running or pending.
async fn cancel_leftover(ctx: &JobContext, name: &str, run_as: Option<&RunAs>) {
    let Some(status) = query(ctx, name, run_as)
        .await
        .filter(|s| !is_ended(&s.state))
    else {
        return;
    };
    ctx.log.info(&format!(
        "Slurm job {} is still {}; cancelling it",
        status.id,
        status.state.to_lowercase()
    ));
    let cancel = scheduler_command(ctx, "scancel", [status.id.clone()], run_as);
    match cancel.output().await {
        Ok(out) if out.code == 0 => {}
        Ok(out) => ctx.log.warning(&format!(
            "{} failed (exit code {}): {}",
            cancel.display(),
            out.code,
            out.stderr_text().trim()
        )),
        Err(error) => ctx.log.warning(&format!("{}: {error}", cancel.display())),
    }
}

/// What squeue says of the job named `name`; `None` when it has none (ended or unknown).
async fn query(ctx: &JobContext, name: &str, run_as: Option<&RunAs>) -> Option<JobStatus> {
    let args = [
        "--noheader".to_string(),
        format!("--name={name}"),
        "--format=%i|%T|%r|%S".to_string(),
    ];
    let out = scheduler_command(ctx, "squeue", args, run_as)
        .output()
        .await
        .ok()?;
    if out.code != 0 {
        return None;
    }
    out.stdout_text().lines().find_map(JobStatus::parse)
}

/// One row of `squeue --format=%i|%T|%r|%S`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobStatus {
    pub(crate) id: String,
    pub(crate) state: String,
    pub(crate) reason: String,
    /// `%S`: the expected start of a pending job, when Slurm has one.
    pub(crate) expected_start: Option<chrono::NaiveDateTime>,
}

impl JobStatus {
    pub(crate) fn parse(line: &str) -> Option<JobStatus> {
        let mut fields = line.trim().split('|');
        let id = fields.next().filter(|id| !id.is_empty())?.to_string();
        let state = fields.next()?.to_string();
        let reason = fields.next().unwrap_or("").to_string();
        let expected_start = fields
            .next()
            .and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok());
        Some(JobStatus {
            id,
            state,
            reason,
            expected_start,
        })
    }
}

/// Pending reasons of a job Slurm will never start as it is (slurm.h `job_state_reason`):
/// waiting would only run into the allocation timeout, or forever.
const NEVER_STARTS: &[&str] = &[
    "PartitionTimeLimit",
    "PartitionNodeLimit",
    "PartitionConfig",
    "QOSMaxWallDurationPerJobLimit",
    "AssocMaxWallDurationPerJobLimit",
    "QOSMaxCpuPerJobLimit",
    "AssocMaxCpuPerJobLimit",
    "QOSMaxMemoryPerJob",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
];

fn is_ended(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "RESIZING"
    )
}

/// A Slurm command with the job's scheduler environment, as `run_as` when set.
pub(crate) fn scheduler_command<I, S>(
    ctx: &JobContext,
    program: &str,
    args: I,
    run_as: Option<&RunAs>,
) -> CommandSpec
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString>,
{
    let mut spec = ctx.scheduler_command(program, args);
    if run_as.is_some() {
        spec = spec.run_as(run_as);
        spec.env = crate::command::scheduler_env(&ctx.runner.batch, run_as);
    }
    // The placeholder's working directory on the node: the builds directory may not exist yet
    // (it is made after the allocation), and the job needs none.
    spec.cwd = "/".into();
    spec
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// `1m20s`, `45s`, `2h0m`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{}s", seconds / 60, seconds % 60),
        _ => format!("{}h{}m", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_read_strictly() {
        assert_eq!(
            parse_handle(
                "gitlab-runner: hostname: node01",
                "gitlab-runner: cpuset: 0-3,8"
            ),
            Ok(Handle {
                hostname: "node01".into(),
                cpuset: "0-3,8".into()
            })
        );
        assert_eq!(
            parse_handle("hello", "gitlab-runner: cpuset: 0").unwrap_err(),
            "the allocation script printed \"hello\" where `gitlab-runner: hostname: <value>` was expected"
        );
        assert!(parse_handle("gitlab-runner: hostname: a b", "gitlab-runner: cpuset: 0").is_err());
        assert_eq!(
            parse_handle("gitlab-runner: hostname: n", "gitlab-runner: cpuset: all").unwrap_err(),
            "the allocation script printed \"gitlab-runner: cpuset: all\": \"all\" is not a CPU list such as 0-3,8"
        );
        assert!(parse_handle("gitlab-runner: hostname: n", "gitlab-runner: cpuset: 1-").is_err());
    }

    #[test]
    fn squeue_rows_are_read() {
        let pending = JobStatus::parse("42|PENDING|Resources|2026-11-29T15:04:05").unwrap();
        assert_eq!(pending.id, "42");
        assert_eq!(pending.reason, "Resources");
        assert_eq!(
            pending.expected_start.map(|t| t.to_string()).as_deref(),
            Some("2026-11-29 15:04:05")
        );
        let unknown = JobStatus::parse("7|RUNNING|None|N/A").unwrap();
        assert_eq!(unknown.expected_start, None);
        assert_eq!(JobStatus::parse(""), None);
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(format_duration(Duration::from_secs(7260)), "2h1m");
    }
}
