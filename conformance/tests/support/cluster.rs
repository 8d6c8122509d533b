//! The Slurm a test talks to: the simulated cluster, or the real one `ci/slurm` started.
//! Either way the test can read back what the scheduler was asked.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::workspace_binary;

/// A Slurm cluster for one test.
pub enum Cluster {
    /// The simulated cluster in a state directory of its own.
    Fake {
        /// Its state directory.
        state_dir: PathBuf,
        /// Where its fake commands are.
        bin_dir: PathBuf,
    },
    /// The real Slurm, reached through recording wrappers in `shim_dir`.
    Real {
        /// `SLURM_CONF`.
        conf: String,
        /// Wrappers that log argv, then exec the real command.
        shim_dir: PathBuf,
        /// The log the wrappers append to.
        log: PathBuf,
    },
}

/// The simulated cluster of every case: the one `custom-executor-conformance` uses too.
const FAKE_CLUSTER: &str = conformance::custom_conformance::DEFAULT_CLUSTER;

impl Cluster {
    /// A simulated cluster under `dir`.
    pub fn fake(dir: &Path) -> Cluster {
        Cluster::fake_with(dir, FAKE_CLUSTER, None)
    }

    /// A simulated cluster under `dir` whose `qsub qstat qdel` are `flavor`'s (`pbs` or
    /// `cobalt`), at 30 simulated seconds per real one, so that walltimes in minutes pass
    /// in seconds.
    pub fn fake_flavored(dir: &Path, flavor: &str) -> Cluster {
        let text = FAKE_CLUSTER.replace("time_scale = 1.0", "time_scale = 30.0");
        Cluster::fake_with(dir, &text, Some(flavor))
    }

    fn fake_with(dir: &Path, text: &str, flavor: Option<&str>) -> Cluster {
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        let state_dir = dir.join("cluster");
        let mut command = Command::new(workspace_binary("mock-cluster"));
        command
            .args(["env", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state_dir);
        if let Some(flavor) = flavor {
            command.args(["--flavor", flavor]);
        }
        let output = command.output().expect("mock-cluster env runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Cluster::Fake {
            bin_dir: state_dir.join("bin"),
            state_dir,
        }
    }

    /// A simulated cluster under `dir` whose daemon already runs, for cases that inject
    /// failures before batchci starts (the daemon otherwise starts with the first command).
    pub fn fake_running(dir: &Path) -> Cluster {
        let cluster = Cluster::fake(dir);
        let squeue = Command::new("squeue")
            .envs(cluster.batchci_env())
            .output()
            .expect("the fake squeue runs");
        assert!(
            squeue.status.success(),
            "{}",
            String::from_utf8_lossy(&squeue.stderr)
        );
        cluster
    }

    /// The real Slurm when `BATCHCI_REAL_SLURM=1` and `SLURM_CONF` are set. In CI a missing
    /// real Slurm is a failure, not a skip.
    pub fn real(dir: &Path) -> Option<Cluster> {
        let wanted = std::env::var("BATCHCI_REAL_SLURM").is_ok_and(|v| v == "1");
        let conf = std::env::var("SLURM_CONF")
            .ok()
            .filter(|c| Path::new(c).exists());
        match (wanted, conf) {
            (true, Some(conf)) => {
                let shim_dir = dir.join("shims");
                std::fs::create_dir_all(&shim_dir).unwrap();
                let log = dir.join("calls.log");
                for program in ["sbatch", "scancel", "squeue", "scontrol", "sacct", "srun"] {
                    let real =
                        which(program).unwrap_or_else(|| panic!("{program} not found on PATH"));
                    // One record, one write: concurrent calls append to the same log, and a
                    // record written in pieces could be cut by another's. The record ends in
                    // \036, so the command substitution keeps the arguments' own newlines.
                    let script = format!(
                        "#!/bin/sh\nrecord=$(printf '%s\\037' {program} \"$@\"; printf '\\036')\nprintf '%s' \"$record\" >> '{log}'\nexec '{real}' \"$@\"\n",
                        log = log.display(),
                        real = real.display()
                    );
                    let path = shim_dir.join(program);
                    std::fs::write(&path, script).unwrap();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                }
                Some(Cluster::Real {
                    conf,
                    shim_dir,
                    log,
                })
            }
            (true, None) => panic!("BATCHCI_REAL_SLURM=1 but SLURM_CONF does not name a file"),
            (false, _) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but no real Slurm: run the suite through ci/test, which starts one")
            }
            (false, _) => {
                eprintln!(
                    "NOTE: real Slurm not available (BATCHCI_REAL_SLURM unset): real-Slurm cases did NOT run"
                );
                None
            }
        }
    }

    /// `fake` or `real`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Cluster::Fake { .. } => "fake",
            Cluster::Real { .. } => "real",
        }
    }

    /// Waits until `squeue` shows the job running. A batch job starts at the scheduler's next
    /// pass after `sbatch` returned, so a job meant to hold nodes must be seen running before
    /// the job it should block is submitted.
    pub fn wait_until_running(&self, job_id: &str) {
        let running = conformance::poll::poll_until(std::time::Duration::from_secs(60), || {
            Command::new("squeue")
                .envs(self.batchci_env())
                .args(["-h", "-j", job_id, "-o", "%T"])
                .output()
                .is_ok_and(|out| out.stdout == b"RUNNING\n")
        });
        assert!(running, "job {job_id} did not start within 60 s");
    }

    /// Environment for batchci so its scheduler commands reach this cluster.
    pub fn batchci_env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        match self {
            Cluster::Fake { state_dir, bin_dir } => vec![
                ("PATH".into(), format!("{}:{path}", bin_dir.display())),
                (
                    "MOCK_CLUSTER_STATE_DIR".into(),
                    state_dir.display().to_string(),
                ),
            ],
            Cluster::Real { conf, shim_dir, .. } => vec![
                ("PATH".into(), format!("{}:{path}", shim_dir.display())),
                ("SLURM_CONF".into(), conf.clone()),
            ],
        }
    }

    /// The `[runners.batch]` table that passes this cluster's variables on.
    pub fn batch_table(&self, extra: &str) -> String {
        format!(
            "  [runners.batch]\n  env_vars = [\"MOCK_CLUSTER_STATE_DIR\", \"SLURM_CONF\"]\n  poll_interval = \"100ms\"\n  nfs_timeout = \"5s\"\n{extra}"
        )
    }

    /// Every scheduler command the cluster was asked, as argv (program first), in order.
    pub fn calls(&self) -> Vec<Vec<String>> {
        match self {
            Cluster::Fake { state_dir, .. } => fake_call_records(state_dir)
                .iter()
                .map(argv_of)
                .map(|mut argv| {
                    if let Some(first) = argv.first_mut() {
                        *first = Path::new(first.as_str())
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                    }
                    argv
                })
                .collect(),
            Cluster::Real { log, .. } => {
                let text = std::fs::read(log).unwrap_or_default();
                text.split(|b| *b == 0x1e)
                    .filter(|record| !record.is_empty())
                    .map(|record| {
                        record
                            .split(|b| *b == 0x1f)
                            .filter(|f| !f.is_empty())
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The calls of `program` on the simulated cluster, as (argv without the program, exit
    /// code), in order. A call killed by a signal has 128 + the signal.
    pub fn fake_calls_with_codes(&self, program: &str) -> Vec<(Vec<String>, i64)> {
        let Cluster::Fake { state_dir, .. } = self else {
            panic!("exit codes of calls are recorded by the simulated cluster only");
        };
        fake_call_records(state_dir)
            .iter()
            .filter(|call| call["program"] == program)
            .map(|call| {
                let argv = argv_of(call).into_iter().skip(1).collect();
                (argv, call["exit_code"].as_i64().unwrap_or(-1))
            })
            .collect()
    }

    /// Who made each call on the simulated cluster, in order: (program, the caller's user).
    pub fn fake_callers(&self) -> Vec<(String, String)> {
        let Cluster::Fake { state_dir, .. } = self else {
            panic!("callers are recorded by the simulated cluster only");
        };
        fake_call_records(state_dir)
            .iter()
            .map(|call| {
                (
                    call["program"].as_str().unwrap_or_default().to_string(),
                    call["user"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Runs `mock-cluster inject ARGS` (simulated cluster only).
    pub fn inject(&self, args: &[&str]) {
        let Cluster::Fake { state_dir, .. } = self else {
            panic!("failure injection needs the simulated cluster");
        };
        let output = Command::new(workspace_binary("mock-cluster"))
            .arg("inject")
            .arg("--state-dir")
            .arg(state_dir)
            .args(args)
            .output()
            .expect("mock-cluster inject runs");
        assert!(
            output.status.success(),
            "inject {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The calls of one program.
    pub fn calls_of(&self, program: &str) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter(|argv| argv.first().is_some_and(|p| p == program))
            .collect()
    }

    /// Whether the cluster still has job `id` pending or running. On the simulated cluster
    /// `squeue` sees every flavour's jobs, by the number of their id (`12.sim` is 12).
    pub fn job_active(&self, id: &str) -> bool {
        if id.starts_with('ƒ') || id.starts_with('f') {
            // A Flux id: Flux says whether the job is still active.
            let mut command = Command::new("flux");
            for (key, value) in self.batchci_env() {
                command.env(key, value);
            }
            let output = command
                .args(["jobs", "-n", "-o", "{state}", id])
                .output()
                .expect("flux jobs runs");
            let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
            return output.status.success() && !state.is_empty() && state != "INACTIVE";
        }
        let id = id.split('.').next().unwrap_or(id);
        let mut command = Command::new("squeue");
        for (key, value) in self.batchci_env() {
            command.env(key, value);
        }
        let output = command
            .args(["-h", "-j", id, "-o", "%T"])
            .output()
            .expect("squeue runs");
        let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
        output.status.success()
            && matches!(
                state.as_str(),
                "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING"
            )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Cluster::Fake { state_dir, .. } = self {
            let _ = Command::new(workspace_binary("mock-cluster"))
                .args(["stop", "--state-dir"])
                .arg(&*state_dir)
                .output();
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The call records of the simulated cluster in `state_dir` (`mock-cluster calls --json`).
fn fake_call_records(state_dir: &Path) -> Vec<serde_json::Value> {
    let output = Command::new(workspace_binary("mock-cluster"))
        .args(["calls", "--json", "--state-dir"])
        .arg(state_dir)
        .output()
        .expect("mock-cluster calls runs");
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    let calls: serde_json::Value = serde_json::from_slice(&output.stdout).expect("calls are JSON");
    calls.as_array().expect("an array").clone()
}

/// The argv of one call record, program first, as it was called.
fn argv_of(call: &serde_json::Value) -> Vec<String> {
    call["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}
