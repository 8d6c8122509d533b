//! A site in a temp dir for end-to-end executor tests: a mock GitLab with one project whose
//! repository is real, and batchci started as the real binary against it.
#![allow(dead_code)]

pub mod cluster;

/// Turns `async fn case(cluster: &Cluster)` functions into two tests each: `fake::case` on the
/// simulated cluster, and `real::case` on the real Slurm when `ci/test` started one (in CI a
/// missing real Slurm fails the case instead of skipping it).
#[macro_export]
macro_rules! on_both_clusters {
    ($($case:ident),* $(,)?) => {
        mod fake {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let cluster = $crate::support::cluster::Cluster::fake(dir.path());
                    super::$case(&cluster).await;
                }
            )*
        }
        mod real {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    if let Some(cluster) = $crate::support::cluster::Cluster::real(dir.path()) {
                        super::$case(&cluster).await;
                    }
                }
            )*
        }
    };
}

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mock_gitlab::api::{JobView, NewPipeline, NewRunner, PipelineCreated, Variable};
use mock_gitlab::{JobStatus, MockConfig, MockGitlab};

/// Path of a workspace binary next to the test executable (`cargo test --workspace` builds it).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=ci",
            "-c",
            "user.email=ci@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed");
}

/// A mock GitLab with a project, a registered runner, and a directory for everything else.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub gitlab: MockGitlab,
    pub project_id: u64,
    pub runner_token: String,
}

impl Site {
    /// Starts the mock GitLab with a one-commit project and a runner with `tags`.
    pub async fn start(tags: &[&str]) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("README.md"), "hello from the repository\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "first"]);
        let mut config = MockConfig::default();
        config.settings.trace_update_interval = 1;
        let gitlab = MockGitlab::start(config).await.expect("mock GitLab starts");
        let project_id = gitlab.create_project("demo", Some(&repo)).expect("project");
        let credentials = gitlab.register_runner(NewRunner {
            description: "conformance".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            run_untagged: tags.is_empty(),
            ..Default::default()
        });
        Site {
            dir,
            gitlab,
            project_id,
            runner_token: credentials.token,
        }
    }

    /// Writes a config for one runner with `executor`, plus `extra` TOML appended inside the
    /// runner entry (e.g. `[runners.batch]` tables). Returns its path.
    pub fn write_config(&self, executor: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join("config.toml");
        let text = format!(
            "concurrent = 2\ncheck_interval = 1\nstate_dir = {state:?}\n\n[[runners]]\nname = \"conformance\"\nurl = {url:?}\ntoken = {token:?}\nexecutor = {executor:?}\nbuilds_dir = {builds:?}\n{extra}\n",
            state = self.dir.path().join("state").display().to_string(),
            url = self.gitlab.url(),
            token = self.runner_token,
            builds = self.dir.path().join("builds").display().to_string(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Creates a pipeline from `yaml` with `variables` (`(key, value, masked)`).
    pub fn pipeline(&self, yaml: &str, variables: &[(&str, &str, bool)]) -> PipelineCreated {
        self.gitlab
            .create_pipeline(NewPipeline {
                project_id: self.project_id,
                ci_yaml: yaml.into(),
                variables: variables
                    .iter()
                    .map(|(key, value, masked)| Variable {
                        key: key.to_string(),
                        value: value.to_string(),
                        masked: *masked,
                    })
                    .collect(),
                git_ref: "main".into(),
                ..Default::default()
            })
            .expect("pipeline is valid")
    }

    /// Waits until job `id` has finished and returns it with its trace as text.
    pub async fn finished(&self, id: u64) -> (JobView, String) {
        let job = match self.gitlab.wait_for_job(id, Duration::from_secs(120)).await {
            Ok(job) => job,
            Err(error) => {
                let trace = self.gitlab.trace(id).unwrap_or_default();
                panic!(
                    "job {id} did not finish ({error:?}); its trace so far:\n{}",
                    String::from_utf8_lossy(&trace)
                )
            }
        };
        let trace = String::from_utf8_lossy(&self.gitlab.trace(id).unwrap()).into_owned();
        (job, trace)
    }

    /// Waits until a line of job `id`'s trace (plain, as [`plain_lines`] gives it) makes `find`
    /// return something, while the job may still be running; panics with the trace after 120 s.
    pub async fn wait_for_line<T>(&self, id: u64, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let trace = String::from_utf8_lossy(&self.gitlab.trace(id).unwrap()).into_owned();
            if let Some(found) = plain_lines(&trace).iter().find_map(|l| find(l)) {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} never logged the line waited for; trace:\n{trace}"
            );
            self.gitlab
                .wait_for_trace(id, trace.len() as u64 + 1, Duration::from_secs(5))
                .await
                .ok();
        }
    }

    /// Waits until job `id` has status `status`.
    pub async fn reaches(&self, id: u64, status: JobStatus) -> JobView {
        self.gitlab
            .wait_for_status(id, &[status], Duration::from_secs(60))
            .await
            .expect("job reaches the status")
    }
}

/// A site whose runner has the tag `slurm`, and a simulated cluster whose daemon already runs
/// (for cases that inject failures before batchci starts). The directory holds the cluster.
pub async fn site_and_fake_cluster() -> (Site, cluster::Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = cluster::Cluster::fake_running(dir.path());
    (Site::start(&["slurm"]).await, cluster, dir)
}

/// A running `batchci run`; stopped (SIGINT, then SIGKILL) when dropped.
pub struct Batchci {
    pub child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Batchci {
    /// Starts `batchci run --config <config>` with `env` added to a clean environment.
    pub fn run(config: &Path, env: &[(&str, &str)]) -> Batchci {
        let mut command = Command::new(workspace_binary("batchci"));
        command.args(["run", "--config"]).arg(config);
        Batchci::start(command, env)
    }

    /// Like [`Batchci::run`], started through `wrapper` (a program and its arguments, e.g.
    /// `setpriv` with the user and capabilities batchci is to have).
    pub fn run_wrapped(wrapper: &[&str], config: &Path, env: &[(&str, &str)]) -> Batchci {
        let (program, args) = wrapper.split_first().expect("a wrapper program");
        let mut command = Command::new(program);
        command
            .args(args)
            .arg(workspace_binary("batchci"))
            .args(["run", "--config"])
            .arg(config);
        Batchci::start(command, env)
    }

    /// Like [`Batchci::run`], in a user namespace of its own where the kernel allows only
    /// `instances` inotify instances (`/proc/sys/user/max_inotify_instances`), as on a host
    /// whose other processes have used up `fs.inotify.max_user_instances`.
    pub fn run_with_inotify_instances(
        config: &Path,
        env: &[(&str, &str)],
        instances: u32,
    ) -> Batchci {
        let mut command = Command::new("unshare");
        command
            .args(["--user", "--map-root-user", "/bin/sh", "-c"])
            .arg("echo \"$0\" > /proc/sys/user/max_inotify_instances && exec \"$@\"")
            .arg(instances.to_string())
            .arg(workspace_binary("batchci"))
            .args(["run", "--config"])
            .arg(config);
        Batchci::start(command, env)
    }

    fn start(mut command: Command, env: &[(&str, &str)]) -> Batchci {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
            )
            .env(
                "BATCHCI_LOG",
                std::env::var("TEST_BATCHCI_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("batchci starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    eprintln!("batchci: {line}");
                    log.lock().unwrap().push(line);
                }
            });
        }
        Batchci { child, log }
    }

    /// Every line batchci has logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many inotify instances the batchci process holds open now.
    pub fn inotify_instances(&self) -> usize {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("batchci's file descriptors are readable");
        fds.filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter(|target| target.as_os_str() == "anon_inode:inotify")
            .count()
    }

    /// Waits until batchci has logged a line containing `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
            assert!(
                std::time::Instant::now() < deadline,
                "batchci did not log {text:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to batchci.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Waits for batchci to exit and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Batchci {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(nix::sys::signal::Signal::SIGINT);
            if self.wait(Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// The trace without ANSI sequences and section markers, line by line.
pub use conformance::custom_driver::plain_lines;
