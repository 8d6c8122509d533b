//! What the end-to-end benches share: the workspace's binaries, a simulated cluster, a mock
//! GitLab with a runner, a `batchci run` process and what `/proc` says about it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mock_gitlab::api::NewRunner;
use mock_gitlab::{MockConfig, MockGitlab};

/// The options every end-to-end bench takes: which binaries to measure, where to write JSON.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The batchci binary to measure (default: the workspace's, the same build as this bench
    /// first); another build, for comparisons.
    #[arg(long)]
    pub batchci: Option<PathBuf>,
    /// The mock-cluster binary (default: the workspace's).
    #[arg(long)]
    pub mock_cluster: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl Common {
    /// The batchci binary to run.
    pub fn batchci(&self) -> PathBuf {
        self.batchci
            .clone()
            .unwrap_or_else(|| workspace_binary("batchci"))
    }

    /// The mock-cluster binary to run.
    pub fn mock_cluster(&self) -> PathBuf {
        self.mock_cluster
            .clone()
            .unwrap_or_else(|| workspace_binary("mock-cluster"))
    }

    /// Writes `results` as JSON to `--json`, if given.
    pub fn write_json(&self, results: &serde_json::Value) -> Result<(), String> {
        let Some(path) = &self.json else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(results).unwrap_or_default();
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// A workspace binary: the one beside this bench (the same build), else the release then the
/// debug build of the target directory this bench was built in (`CARGO_TARGET_DIR` or not),
/// else of the workspace's `target/`; exits the bench when it is not built.
pub fn workspace_binary(name: &str) -> PathBuf {
    // Tests and criterion benches run from `deps/` inside the profile's directory.
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.to_path_buf()))
        .map(|dir| match dir.file_name() {
            Some(last) if last == "deps" => dir.parent().map_or(dir.clone(), Path::to_path_buf),
            _ => dir,
        });
    let workspace_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &own_dir {
        candidates.push(dir.join(name));
        if let Some(target) = dir.parent() {
            candidates.extend(["release", "debug"].map(|p| target.join(p).join(name)));
        }
    }
    candidates.extend(["release", "debug"].map(|p| workspace_target.join(p).join(name)));
    if let Some(path) = candidates.into_iter().find(|p| p.exists()) {
        return path;
    }
    eprintln!("{name} not found: run `cargo build --release -p {name}` first");
    std::process::exit(2);
}

/// A simulated cluster in a state directory of its own, stopped when dropped.
pub struct Cluster {
    mock_cluster: PathBuf,
    /// Its state directory (`MOCK_CLUSTER_STATE_DIR`).
    pub state_dir: PathBuf,
}

impl Cluster {
    /// Sets up the cluster described by `toml` under `dir` with the `mock-cluster` binary.
    pub fn simulated(mock_cluster: &Path, dir: &Path, toml: &str) -> Result<Cluster, String> {
        let config = dir.join("cluster.toml");
        std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
        let state_dir = dir.join("cluster");
        let output = Command::new(mock_cluster)
            .args(["env", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state_dir)
            .output()
            .map_err(|e| format!("{}: {e}", mock_cluster.display()))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(Cluster {
            mock_cluster: mock_cluster.to_path_buf(),
            state_dir,
        })
    }

    /// `PATH` with the fake commands first.
    pub fn path(&self) -> String {
        format!(
            "{}:{}",
            self.state_dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.mock_cluster)
            .args(["stop", "--state-dir"])
            .arg(&self.state_dir)
            .output();
    }
}

/// A mock GitLab with one project (without a repository jobs use `GIT_STRATEGY: none`) and
/// one runner with `tags`.
pub struct Gitlab {
    /// The server.
    pub server: MockGitlab,
    /// The project's id.
    pub project_id: u64,
    /// The runner's token.
    pub runner_token: String,
}

impl Gitlab {
    /// Starts it in the current runtime.
    pub async fn start(tags: &[&str]) -> Result<Gitlab, String> {
        Gitlab::start_with_repo(tags, None).await
    }

    /// Starts it in the current runtime, its project serving the local git repository `repo`
    /// (jobs may then clone or fetch it).
    pub async fn start_with_repo(tags: &[&str], repo: Option<&Path>) -> Result<Gitlab, String> {
        let mut config = MockConfig::default();
        config.settings.trace_update_interval = 3;
        let server = MockGitlab::start(config).await.map_err(|e| e.to_string())?;
        let project_id = server
            .create_project("bench", repo)
            .map_err(|e| e.to_string())?;
        let runner = server.register_runner(NewRunner {
            description: "bench".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        });
        Ok(Gitlab {
            server,
            project_id,
            runner_token: runner.token,
        })
    }

    /// A batchci configuration with one runner of `executor`, `concurrent` jobs at once and
    /// `batch` lines in its `[runners.batch]` table, written to `dir/config.toml`.
    pub fn write_config(
        &self,
        dir: &Path,
        executor: &str,
        concurrent: usize,
        batch: &str,
    ) -> Result<PathBuf, String> {
        self.write_config_with(dir, executor, concurrent, "", batch)
    }

    /// As [`Gitlab::write_config`], with `runner` lines (e.g. `output_limit = 300000`) added to
    /// the `[[runners]]` table.
    pub fn write_config_with(
        &self,
        dir: &Path,
        executor: &str,
        concurrent: usize,
        runner: &str,
        batch: &str,
    ) -> Result<PathBuf, String> {
        let path = dir.join("config.toml");
        let text = format!(
            "concurrent = {concurrent}\ncheck_interval = 1\nstate_dir = {state:?}\n\n[[runners]]\nname = \"bench\"\nurl = {url:?}\ntoken = {token:?}\nexecutor = {executor:?}\nbuilds_dir = {builds:?}\n{runner}  [runners.batch]\n  env_vars = [\"MOCK_CLUSTER_STATE_DIR\", \"SLURM_CONF\"]\n{batch}",
            state = dir.join("state").display().to_string(),
            url = self.server.url(),
            token = self.runner_token,
            builds = dir.join("builds").display().to_string(),
        );
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

/// A running `batchci run`, stopped (SIGINT, then SIGKILL) when dropped.
pub struct Batchci {
    child: Child,
}

impl Batchci {
    /// Starts `batchci run --config <config>` with `env` added to this process's environment.
    pub fn run(batchci: &Path, config: &Path, env: &[(&str, &str)]) -> Result<Batchci, String> {
        let mut command = Command::new(batchci);
        command
            .args(["run", "--config"])
            .arg(config)
            .env("BATCHCI_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", batchci.display()))?;
        Ok(Batchci { child })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Batchci {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of process `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_second)
}

/// How many inotify instances process `pid` holds.
pub fn inotify_instances(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:inotify")
        .count()
}

/// How many threads process `pid` has.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count())
}

/// The median and the largest of `values` (`NaN` for none).
pub fn median_and_max(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => (f64::NAN, f64::NAN),
        n => (sorted[n / 2], sorted[n - 1]),
    }
}

/// Seconds since the epoch of an RFC 3339 time (GitLab's `started_at`, `finished_at`).
pub fn epoch_seconds(rfc3339: &str) -> Option<f64> {
    let time = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(time.timestamp_micros() as f64 / 1e6)
}

/// `program` as `execvp` would find it on `path`.
pub fn find_on_path(program: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
