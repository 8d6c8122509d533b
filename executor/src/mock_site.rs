//! What `batchci demo` and `batchci verify` share: the simulated cluster's commands (this very
//! binary under other names), starting and stopping a cluster, a throw-away repository for the
//! mock GitLab to serve, a `batchci run` child and a job log made readable.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// Whether this process was started as one of the simulated cluster's commands (the fakes are
/// links to the batchci binary).
pub fn is_cluster_command(argv: &[std::ffi::OsString]) -> bool {
    let program = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    program == "mock-cluster"
        || mock_cluster::cli::FAKES.contains(&program.as_str())
        || argv.get(1).is_some_and(|a| a == "__launch")
}

/// Runs the simulated cluster's command this process was started as.
pub fn cluster_command_main() -> i32 {
    mock_cluster::cli::main()
}

/// A simulated cluster this process started, stopped (with its jobs) when dropped: a demo or
/// verify run that is interrupted or fails half-way leaves no daemon behind.
pub(crate) struct Cluster {
    exe: std::path::PathBuf,
    dir: std::path::PathBuf,
    stopped: bool,
}

impl Cluster {
    /// Stops the cluster and the jobs still running in it; stopping it twice is harmless.
    pub(crate) fn stop(&mut self) {
        if !std::mem::replace(&mut self.stopped, true) {
            let _ = cluster_admin(
                &self.exe,
                &self.dir,
                &["stop".into(), "--cancel-jobs".into()],
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates a simulated cluster in `dir` (`mock-cluster env`): its fakes in `dir/bin`, the
/// cluster file `config` (else the embedded default) and the `qsub` flavour `flavor`.
pub(crate) fn start_cluster(
    exe: &Path,
    dir: &Path,
    config: Option<&Path>,
    flavor: Option<&str>,
) -> anyhow::Result<Cluster> {
    let mut env: Vec<OsString> = vec!["env".into()];
    if let Some(config) = config {
        env.extend(["--config".into(), config.into()]);
    }
    if let Some(flavor) = flavor {
        env.extend(["--flavor".into(), flavor.into()]);
    }
    cluster_admin(exe, dir, &env).context("the simulated cluster did not start")?;
    let cluster = Cluster {
        exe: exe.to_path_buf(),
        dir: dir.to_path_buf(),
        stopped: false,
    };
    // Started here rather than by the first fake that finds none: its errors then surface
    // here, and the fakes may forbid starting one (MOCK_CLUSTER_NO_AUTOSTART).
    cluster_admin(exe, dir, &["start".into()])
        .context("the simulated cluster's daemon did not start")?;
    Ok(cluster)
}

/// `mock-cluster ARGS --state-dir DIR`; its standard error is the error when it fails.
fn cluster_admin(exe: &Path, dir: &Path, args: &[OsString]) -> anyhow::Result<()> {
    let output = Command::new(exe)
        .arg0("mock-cluster")
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .output()
        .context("cannot run mock-cluster")?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// A `batchci run` child, stopped when dropped: a demo or verify run that is interrupted or
/// fails half-way leaves no runner behind.
pub(crate) struct Runner(Child);

impl Runner {
    /// The child's pid.
    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }

    /// How the child ended, if it has.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// Stops the child (see [`stop_runner`]); stopping it twice is harmless.
    pub(crate) fn stop(&mut self) {
        stop_runner(&mut self.0);
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `batchci run --config <config>` with its own log reduced to errors. The child dies
/// with this process, also when this process is killed outright: it would otherwise poll a mock
/// GitLab that is gone, forever.
pub(crate) fn spawn_runner(exe: &Path, config: &Path) -> anyhow::Result<Runner> {
    let mut command = Command::new(exe);
    command
        .args(["run", "--config"])
        .arg(config)
        .env("BATCHCI_LOG", "error")
        .stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    command
        .spawn()
        .map(Runner)
        .context("cannot start batchci run")
}

/// Stops a `batchci run` child: SIGINT (running jobs are cancelled), then SIGKILL after 30 s.
/// A child already stopped is left alone (its pid may belong to another process by now).
fn stop_runner(runner: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if !matches!(runner.try_wait(), Ok(None)) {
        return;
    }
    if let Ok(pid) = i32::try_from(runner.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = runner.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = runner.kill();
    let _ = runner.wait();
}

/// A git repository at `repo` with one commit of a README saying `readme`.
pub(crate) fn make_repository(repo: &Path, readme: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(repo)?;
    std::fs::write(repo.join("README.md"), readme)?;
    for args in [
        vec!["init", "-q"],
        vec!["add", "README.md"],
        vec!["commit", "-q", "-m", "batchci"],
    ] {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=batchci",
                "-c",
                "user.email=demo@batchci.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(&args)
            .current_dir(repo)
            .stdout(Stdio::null())
            .status()
            .context("git is needed for the sample repository")?;
        if !status.success() {
            bail!("git {} failed in {}", args.join(" "), repo.display());
        }
    }
    Ok(())
}

/// The log without section markers, for a terminal.
pub(crate) fn readable(trace: &str) -> String {
    let mut out = String::new();
    for line in trace.split('\n') {
        let line = match line.rsplit_once('\r') {
            Some((_, after)) => after,
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}
