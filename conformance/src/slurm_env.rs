//! Where Slurm commands run: the real Slurm on this machine, or a simulated cluster.
//!
//! A [`SlurmEnv`] runs `sbatch`, `squeue`, ... as argv vectors (never through a shell) with a
//! small, fixed environment, in a fresh temporary working directory. The same test code then
//! drives either side, so the two can be compared.
//!
//! ```no_run
//! use conformance::slurm_env::{FakeCluster, SlurmEnv};
//!
//! let fake = SlurmEnv::fake(&FakeCluster::mirroring_ci_slurm())?;
//! let out = fake.run(&["sbatch", "--parsable", "--wrap", "true"])?;
//! assert_eq!(out.code, Some(0));
//! # Ok::<(), conformance::slurm_env::EnvError>(())
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::poll::poll_until;

/// How long one command may take before it is killed and reported as hung.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(240);

/// Environment variable that tells the suites a real Slurm was started for them.
pub const REAL_SLURM_VAR: &str = "BATCHCI_REAL_SLURM";

/// Environment variable that overrides where the `mock-cluster` binary is looked for.
pub const MOCK_CLUSTER_VAR: &str = "BATCHCI_MOCK_CLUSTER";

/// Errors of the environment itself (not of the commands run in it).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The `mock-cluster` binary is not where cargo puts it.
    #[error(
        "the mock-cluster binary was not found at {0}; build it first with \
         `cargo build -p mock-cluster` (cargo test --workspace does), or point {MOCK_CLUSTER_VAR} at it"
    )]
    MockClusterMissing(PathBuf),
    /// A setup command (`mock-cluster env/start`) failed.
    #[error("`{command}` failed with {status}: {stderr}")]
    Setup {
        /// The command line, for the message.
        command: String,
        /// Exit status as text.
        status: String,
        /// What the command printed on stderr.
        stderr: String,
    },
    /// A command could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line, for the message.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command did not end before its deadline; it was killed.
    #[error(
        "`{command}` did not end within {deadline:?}; killed. stdout so far: {stdout:?}, stderr so far: {stderr:?}"
    )]
    Hung {
        /// The command line, for the message.
        command: String,
        /// The deadline it missed.
        deadline: Duration,
        /// Output collected until then.
        stdout: String,
        /// Output collected until then.
        stderr: String,
    },
    /// Any other I/O error (temporary directories, files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvError {
    let context = context.into();
    move |source| EnvError::Io { context, source }
}

/// A simulated cluster's description, written as the `mock-cluster` TOML.
#[derive(Debug, Clone)]
pub struct FakeCluster {
    /// Simulated seconds per real second.
    pub time_scale: f64,
}

impl FakeCluster {
    /// The cluster that `ci/slurm` starts: `batchci`, node `localhost` with 2 CPUs and 8000 MB,
    /// partitions `debug` (default, unlimited) and `gitlab-ci` (60 minutes), KillWait 2 s,
    /// MinJobAge 300 s, scheduling passes every second (`sched_interval=1,bf_interval=1`),
    /// real time.
    pub fn mirroring_ci_slurm() -> Self {
        FakeCluster { time_scale: 1.0 }
    }

    /// The same cluster with a faster clock, for cases where time only means waiting.
    pub fn with_time_scale(mut self, time_scale: f64) -> Self {
        self.time_scale = time_scale;
        self
    }

    /// The TOML text `mock-cluster` reads.
    pub fn to_toml(&self) -> String {
        format!(
            r#"cluster_name = "batchci"
time_scale = {:?}
kill_wait = 2
min_job_age = 300
sched_interval = 1

[[nodes]]
names = "localhost"
cpus = 2
memory_mb = 8000

[[partitions]]
name = "debug"
nodes = "localhost"
default = true
max_time = "UNLIMITED"

[[partitions]]
name = "gitlab-ci"
nodes = "localhost"
max_time = "60"
"#,
            self.time_scale
        )
    }
}

/// Which Slurm the commands reach.
#[derive(Debug)]
pub enum Backend {
    /// The real Slurm whose configuration file is `slurm_conf`.
    Real {
        /// Value of `SLURM_CONF` for every command.
        slurm_conf: PathBuf,
    },
    /// A simulated cluster; its fakes are in `state_dir/bin`.
    Fake {
        /// The `mock-cluster` binary.
        mock_cluster: PathBuf,
        /// The cluster's state directory (inside `_state`).
        state_dir: PathBuf,
        /// Keeps the state directory alive as long as the environment.
        _state: TempDir,
    },
}

/// Where Slurm commands run, with a private working directory.
#[derive(Debug)]
pub struct SlurmEnv {
    backend: Backend,
    cwd: TempDir,
    base_env: BTreeMap<String, OsString>,
}

/// What a finished command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Everything it wrote to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything it wrote to stderr (lossy UTF-8).
    pub stderr: String,
    /// Exit code, `None` when it was killed by a signal.
    pub code: Option<i32>,
    /// Signal that killed it, if any.
    pub signal: Option<i32>,
}

impl RunOutput {
    fn from_status(status: ExitStatus, stdout: String, stderr: String) -> Self {
        use std::os::unix::process::ExitStatusExt;
        RunOutput {
            stdout,
            stderr,
            code: status.code(),
            signal: status.signal(),
        }
    }

    /// `rc=N` or `signal=N`, for observations.
    pub fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("rc={code}"),
            (None, Some(sig)) => format!("signal={sig}"),
            (None, None) => "rc=?".to_string(),
        }
    }
}

/// Options of one command beyond its argv.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Extra environment variables (on top of the fixed base environment).
    pub env: Vec<(String, String)>,
    /// Bytes written to stdin, which is then closed. `None`: stdin is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Working directory relative to the environment's directory (default: that directory).
    pub subdir: Option<PathBuf>,
    /// Run as this local user (the caller must be root), with the `HOME`, `USER` and `LOGNAME`
    /// of a login of that user; see [`SlurmEnv::share_with_local_users`].
    pub user: Option<LocalUser>,
}

/// A local user a command can run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUser {
    /// User name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

impl LocalUser {
    /// The user `name` of the user database, if there is one.
    pub fn lookup(name: &str) -> Option<LocalUser> {
        let user = nix::unistd::User::from_name(name).ok().flatten()?;
        Some(LocalUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
        })
    }
}

impl SlurmEnv {
    /// The real Slurm configured by `SLURM_CONF`, if its controller answers `scontrol ping`.
    ///
    /// Returns `Ok(None)` when `SLURM_CONF` is unset, names no file, or the controller is down.
    pub fn real_from_env() -> Result<Option<SlurmEnv>, EnvError> {
        let Some(conf) = std::env::var_os("SLURM_CONF") else {
            return Ok(None);
        };
        let slurm_conf = PathBuf::from(conf);
        if !slurm_conf.is_file() {
            return Ok(None);
        }
        let env = SlurmEnv::new(Backend::Real { slurm_conf })?;
        match env.run(&["scontrol", "ping"]) {
            Ok(out) if out.code == Some(0) && out.stdout.contains("UP") => Ok(Some(env)),
            _ => Ok(None),
        }
    }

    /// A fresh simulated cluster described by `cluster`, with its daemon started.
    pub fn fake(cluster: &FakeCluster) -> Result<SlurmEnv, EnvError> {
        let mock_cluster = locate_mock_cluster()?;
        let state = tempfile::Builder::new()
            .prefix("batchci-diff-cluster-")
            .tempdir()
            .map_err(io_err("creating the cluster's state directory"))?;
        let state_dir = state.path().join("state");
        let config = state.path().join("cluster.toml");
        std::fs::write(&config, cluster.to_toml())
            .map_err(io_err(format!("writing {}", config.display())))?;
        for args in [vec!["env", "--config"], vec!["start", "--config"]] {
            let mut cmd = Command::new(&mock_cluster);
            cmd.args(&args)
                .arg(&config)
                .arg("--state-dir")
                .arg(&state_dir)
                .stdin(Stdio::null());
            let command = format!(
                "{} {} {} --state-dir {}",
                mock_cluster.display(),
                args.join(" "),
                config.display(),
                state_dir.display()
            );
            let out = cmd.output().map_err(|source| EnvError::Spawn {
                command: command.clone(),
                source,
            })?;
            if !out.status.success() {
                return Err(EnvError::Setup {
                    command,
                    status: out.status.to_string(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
        }
        SlurmEnv::new(Backend::Fake {
            mock_cluster,
            state_dir,
            _state: state,
        })
    }

    fn new(backend: Backend) -> Result<SlurmEnv, EnvError> {
        let cwd = tempfile::Builder::new()
            .prefix("batchci-diff-case-")
            .tempdir_in(std::env::temp_dir())
            .map_err(io_err("creating the working directory"))?;
        let mut base_env = BTreeMap::new();
        for name in ["HOME", "USER", "LOGNAME"] {
            if let Some(value) = std::env::var_os(name) {
                base_env.insert(name.to_string(), value);
            }
        }
        base_env.insert("LANG".into(), "C".into());
        base_env.insert("TZ".into(), "UTC".into());
        let system_path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        match &backend {
            Backend::Real { slurm_conf } => {
                base_env.insert("SLURM_CONF".into(), slurm_conf.clone().into_os_string());
                base_env.insert("PATH".into(), system_path);
            }
            Backend::Fake { state_dir, .. } => {
                let mut path = OsString::from(state_dir.join("bin"));
                path.push(":");
                path.push(system_path);
                base_env.insert("PATH".into(), path);
                base_env.insert(
                    "MOCK_CLUSTER_STATE_DIR".into(),
                    state_dir.clone().into_os_string(),
                );
            }
        }
        Ok(SlurmEnv {
            backend,
            cwd,
            base_env,
        })
    }

    /// `"real"` or `"fake"`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Real { .. } => "real",
            Backend::Fake { .. } => "fake",
        }
    }

    /// The backend this environment drives.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The private working directory every command starts in.
    pub fn cwd(&self) -> &Path {
        self.cwd.path()
    }

    /// Lets other local users reach the working directory and, for a simulated cluster, its
    /// state directory (both are in temporary directories only their creator may enter):
    /// adds read and search permission for everyone. A real Slurm's configuration is readable
    /// already.
    pub fn share_with_local_users(&self) -> Result<(), EnvError> {
        use std::os::unix::fs::PermissionsExt;
        let mut dirs = vec![self.cwd.path().to_path_buf()];
        if let Backend::Fake { _state, .. } = &self.backend {
            dirs.push(_state.path().to_path_buf());
        }
        for dir in dirs {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err(format!("opening up {}", dir.display())))?;
        }
        Ok(())
    }

    /// Runs `argv` to completion with stdin `/dev/null`.
    pub fn run(&self, argv: &[&str]) -> Result<RunOutput, EnvError> {
        self.run_with(argv, &RunOptions::default())
    }

    /// Runs `argv` to completion with `options`.
    pub fn run_with(&self, argv: &[&str], options: &RunOptions) -> Result<RunOutput, EnvError> {
        let mut running = self.spawn_with(argv, options)?;
        if let Some(bytes) = &options.stdin {
            running.write_stdin(bytes)?;
            running.close_stdin();
        }
        running.wait()
    }

    /// Starts `argv` in the background; stdin is a pipe the caller writes to and closes.
    pub fn spawn(&self, argv: &[&str]) -> Result<Running, EnvError> {
        self.spawn_with(argv, &RunOptions::default())
    }

    /// Starts `argv` in the background with `options` (its `stdin` bytes are ignored: stdin is
    /// always a pipe here, see [`Running::write_stdin`] and [`Running::close_stdin`]).
    pub fn spawn_with(&self, argv: &[&str], options: &RunOptions) -> Result<Running, EnvError> {
        let (program, args) = argv.split_first().ok_or_else(|| EnvError::Spawn {
            command: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"),
        })?;
        let command_text = argv.join(" ");
        let cwd = match &options.subdir {
            Some(sub) => self.cwd.path().join(sub),
            None => self.cwd.path().to_path_buf(),
        };
        // PATH is looked up in the child's environment, so the fakes in `<state>/bin` win.
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&cwd)
            .env_clear()
            .envs(&self.base_env);
        if let Some(user) = &options.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        cmd.envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| EnvError::Spawn {
            command: command_text.clone(),
            source,
        })?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            pump(child.stdout.take(), Arc::clone(&stdout)),
            pump(child.stderr.take(), Arc::clone(&stderr)),
        ];
        let stdin = child.stdin.take();
        Ok(Running {
            command: command_text,
            child,
            stdin,
            stdout,
            stderr,
            readers,
        })
    }

    /// Polls `argv` until `accept` holds for its output, or `deadline` passes.
    ///
    /// Returns the last output, also when the deadline passed (the caller's comparison then
    /// shows what was seen).
    pub fn run_until(
        &self,
        argv: &[&str],
        deadline: Duration,
        mut accept: impl FnMut(&RunOutput) -> bool,
    ) -> Result<RunOutput, EnvError> {
        let mut last = self.run(argv)?;
        let mut error = None;
        poll_until(deadline, || {
            if accept(&last) {
                return true;
            }
            match self.run(argv) {
                Ok(out) => last = out,
                Err(e) => {
                    error = Some(e);
                    return true;
                }
            }
            accept(&last)
        });
        match error {
            Some(e) => Err(e),
            None => Ok(last),
        }
    }

    /// Reads a file below the working directory; `None` when it does not exist.
    pub fn read_file(&self, relative: impl AsRef<Path>) -> Option<String> {
        std::fs::read(self.cwd.path().join(relative))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Writes a file below the working directory (creating parent directories), mode 0755.
    pub fn write_file(&self, relative: impl AsRef<Path>, text: &str) -> Result<(), EnvError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.cwd.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_err(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("chmod {}", path.display())))
    }

    /// Every file below the working directory, as sorted relative paths.
    pub fn list_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        list_into(self.cwd.path(), self.cwd.path(), &mut out);
        out.sort();
        out
    }
}

impl Drop for SlurmEnv {
    fn drop(&mut self) {
        if let Backend::Fake {
            mock_cluster,
            state_dir,
            ..
        } = &self.backend
        {
            let _ = Command::new(mock_cluster)
                .arg("stop")
                .arg("--state-dir")
                .arg(state_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn list_into(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_into(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

fn pump<R: Read + Send + 'static>(source: Option<R>, sink: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut source) = source else { return };
        let mut buf = [0u8; 8192];
        loop {
            match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut sink) = sink.lock() {
                        sink.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    })
}

/// A command running in the background.
#[derive(Debug)]
pub struct Running {
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// What it wrote to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        snapshot(&self.stdout)
    }

    /// What it wrote to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        snapshot(&self.stderr)
    }

    /// Writes to its stdin.
    pub fn write_stdin(&mut self, bytes: &[u8]) -> Result<(), EnvError> {
        match &mut self.stdin {
            Some(stdin) => stdin
                .write_all(bytes)
                .and_then(|()| stdin.flush())
                .map_err(io_err(format!(
                    "writing to the stdin of `{}`",
                    self.command
                ))),
            None => Ok(()),
        }
    }

    /// Closes its stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for it to end (at most [`COMMAND_DEADLINE`]); stdin is closed first.
    pub fn wait(self) -> Result<RunOutput, EnvError> {
        self.wait_at_most(COMMAND_DEADLINE)
    }

    /// Waits for it to end, at most `deadline`; kills it and reports [`EnvError::Hung`] after.
    pub fn wait_at_most(mut self, deadline: Duration) -> Result<RunOutput, EnvError> {
        self.stdin = None;
        let start = Instant::now();
        let mut status = None;
        poll_until(deadline, || match self.child.try_wait() {
            Ok(Some(s)) => {
                status = Some(s);
                true
            }
            Ok(None) => false,
            Err(_) => true,
        });
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(EnvError::Hung {
                command: self.command.clone(),
                deadline: start.elapsed(),
                stdout: self.stdout_so_far(),
                stderr: self.stderr_so_far(),
            });
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Ok(RunOutput::from_status(
            status,
            self.stdout_so_far(),
            self.stderr_so_far(),
        ))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn snapshot(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    match buf.lock() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// Finds the `mock-cluster` binary: `$BATCHCI_MOCK_CLUSTER`, or next to the running test
/// executable (`target/<profile>/mock-cluster`, the test itself being in `target/<profile>/deps`).
pub fn locate_mock_cluster() -> Result<PathBuf, EnvError> {
    if let Some(path) = std::env::var_os(MOCK_CLUSTER_VAR) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(EnvError::MockClusterMissing(path))
        };
    }
    let exe = std::env::current_exe().map_err(io_err("locating the test executable"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join("mock-cluster");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(EnvError::MockClusterMissing(candidate))
    }
}
