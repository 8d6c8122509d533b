//! Test support: a simulated cluster in a temporary directory, commands pointed at it, and
//! polling with a deadline.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use tempfile::TempDir;

/// A cluster shaped like the real one the differential suite uses, with a fast clock:
/// one simulated minute per real second.
pub const FAST_CLUSTER: &str = r#"
cluster_name = "batchci"
time_scale = 60.0
kill_wait = 2
min_job_age = 300

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
max_time = 60
"#;

/// A cluster in a temporary state directory, stopped on drop.
pub struct TestCluster {
    pub tmp: TempDir,
    pub state: PathBuf,
    pub work: PathBuf,
}

pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mock-cluster"))
}

impl TestCluster {
    /// A cluster described by `toml` (written to `cluster.toml` in the temp dir).
    pub fn with_config(toml: &str) -> TestCluster {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let config = tmp.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        let out = std::process::Command::new(exe())
            .args(["env", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestCluster { tmp, state, work }
    }

    /// The fast one-node cluster.
    pub fn fast() -> TestCluster {
        TestCluster::with_config(FAST_CLUSTER)
    }

    /// The embedded default cluster.
    pub fn default_cluster() -> TestCluster {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let out = std::process::Command::new(exe())
            .arg("env")
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        assert!(out.status.success());
        TestCluster { tmp, state, work }
    }

    /// A fake command (`sbatch`, ...) run in the work directory against this cluster.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(self.state.join("bin").join(name));
        c.env("MOCK_CLUSTER_STATE_DIR", &self.state)
            .env("PATH", self.path_var())
            .env_remove("SLURM_JOB_ID")
            .current_dir(&self.work);
        c
    }

    /// The admin command with `--state-dir` appended after the subcommand words.
    pub fn admin(&self, args: &[&str]) -> Output {
        std::process::Command::new(exe())
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .output()
            .unwrap()
    }

    /// `mock-cluster inject ARGS`, which must succeed.
    pub fn inject(&self, args: &[&str]) {
        let out = std::process::Command::new(exe())
            .arg("inject")
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// PATH with the fakes first, as `eval "$(mock-cluster env)"` sets it.
    pub fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.state.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Starts a fake in the background with piped stdin/stdout/stderr.
    pub fn spawn(&self, name: &str, args: &[&str]) -> std::process::Child {
        self.spawn_with_stdout(name, args, std::process::Stdio::piped())
    }

    /// [`TestCluster::spawn`] with its standard output going to `stdout`.
    pub fn spawn_with_stdout(
        &self,
        name: &str,
        args: &[&str],
        stdout: impl Into<std::process::Stdio>,
    ) -> std::process::Child {
        std::process::Command::new(self.state.join("bin").join(name))
            .args(args)
            .env("MOCK_CLUSTER_STATE_DIR", &self.state)
            .env("PATH", self.path_var())
            .env_remove("SLURM_JOB_ID")
            .current_dir(&self.work)
            .stdin(std::process::Stdio::piped())
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs a fake and returns (stdout, stderr, exit code).
    pub fn run(&self, name: &str, args: &[&str]) -> (String, String, i32) {
        let out = self.cmd(name).args(args).output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// Submits with `--parsable` and returns the job id.
    pub fn submit(&self, args: &[&str]) -> u32 {
        let mut all = vec!["--parsable"];
        all.extend_from_slice(args);
        let (out, err, code) = self.run("sbatch", &all);
        assert_eq!(code, 0, "sbatch failed: {err}");
        out.trim().parse().unwrap()
    }

    /// `squeue -h -t all -j ID -o FORMAT` output, trimmed.
    pub fn job_field(&self, id: u32, format: &str) -> String {
        let (out, _, _) = self.run(
            "squeue",
            &["-h", "-t", "all", "-j", &id.to_string(), "-o", format],
        );
        out.trim().to_string()
    }

    /// The job's long state.
    pub fn state_of(&self, id: u32) -> String {
        self.job_field(id, "%T")
    }

    /// Polls until the job reaches `state`.
    pub fn wait_state(&self, id: u32, state: &str) {
        wait_for(&format!("job {id} to become {state}"), || {
            self.state_of(id) == state
        });
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Jobs of a test end with it; nothing is left running after the temp dir is gone.
        let _ = self.admin(&["stop", "--cancel-jobs"]);
    }
}

/// Polls `cond` every few milliseconds until it holds; panics after 20 s.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until a file exists and contains `needle`, returning its content.
pub fn wait_file_contains(path: &Path, needle: &str) -> String {
    let mut content = String::new();
    wait_for(&format!("{} to contain {needle:?}", path.display()), || {
        content = std::fs::read_to_string(path).unwrap_or_default();
        content.contains(needle)
    });
    content
}

/// Replaces `YYYY-MM-DDTHH:MM:SS` timestamps with `<TIME>`.
pub fn normalize_times(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let is_d = |c: u8| c.is_ascii_digit();
    while i < b.len() {
        if i + 19 <= b.len() {
            let s = &b[i..i + 19];
            let shape = s.iter().enumerate().all(|(k, &c)| match k {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                _ => is_d(c),
            });
            if shape {
                out.push_str("<TIME>");
                i += 19;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}
