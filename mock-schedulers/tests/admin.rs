//! The mock-cluster command: env, start/stop/status, calls, config errors, unreachable daemon.

mod common;

use std::process::Command;

use common::{TestCluster, exe};

#[test]
fn env_prints_shell_lines_and_creates_the_fakes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c1");
    let out = Command::new(exe())
        .args(["env", "--state-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "export MOCK_CLUSTER_STATE_DIR='{0}'\nexport PATH='{0}/bin':\"$PATH\"\n",
            dir.display()
        )
    );
    for fake in [
        "sbatch", "squeue", "scancel", "sacct", "scontrol", "srun", "salloc", "sinfo",
    ] {
        assert!(dir.join("bin").join(fake).exists(), "{fake}");
    }
    // The lines work with eval in a shell.
    let script = format!(
        "eval \"$({} env --state-dir {})\"; command -v sbatch",
        exe().display(),
        dir.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}/bin/sbatch\n", dir.display())
    );
}

#[test]
fn start_status_stop() {
    let c = TestCluster::fast();
    let out = c.admin(&["status"]);
    assert!(!out.status.success(), "no daemon yet");
    let out = c.admin(&["start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.admin(&["status"]);
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("mock-cluster running (pid "), "{line}");
    assert!(line.contains("cluster batchci, 1 nodes, 2 partitions, time_scale 60, jobs: 0 pending, 0 running, 0 finished"), "{line}");
    assert_eq!(line.lines().count(), 1);
    assert!(c.admin(&["stop"]).status.success());
    assert!(!c.admin(&["status"]).status.success());
    assert!(!c.state.join("daemon.sock").exists());
}

#[test]
fn calls_are_recorded_in_order_with_argv_cwd_env_and_exit_code() {
    let c = TestCluster::fast();
    c.cmd("sbatch")
        .env("SLURM_TEST_VAR", "x")
        .args(["--parsable", "-J", "rec", "--wrap", "true"])
        .assert()
        .success();
    c.cmd("squeue").args(["-j", "999999"]).assert().code(1);
    c.cmd("sbatch").arg("--bogus").assert().code(255);
    let out = c.admin(&["calls", "--json"]);
    assert!(out.status.success());
    let calls: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["program"], "sbatch");
    // argv[0] is recorded as the program was called (here through the bin/ symlink).
    assert_eq!(
        calls[0]["argv"][0],
        c.state.join("bin/sbatch").display().to_string()
    );
    assert_eq!(
        calls[0]["argv"].as_array().unwrap()[1..],
        serde_json::json!(["--parsable", "-J", "rec", "--wrap", "true"])
            .as_array()
            .unwrap()[..]
    );
    assert_eq!(calls[0]["cwd"], c.work.display().to_string());
    assert_eq!(calls[0]["env"]["SLURM_TEST_VAR"], "x");
    assert_eq!(calls[0]["exit_code"], 0);
    assert_eq!(calls[0]["job_id"], 1);
    assert!(chrono::DateTime::parse_from_rfc3339(calls[0]["time"].as_str().unwrap()).is_ok());
    assert_eq!(
        (calls[1]["program"].as_str(), calls[1]["exit_code"].as_i64()),
        (Some("squeue"), Some(1))
    );
    assert_eq!(
        (calls[2]["program"].as_str(), calls[2]["exit_code"].as_i64()),
        (Some("sbatch"), Some(255))
    );
}

#[test]
fn malformed_toml_names_file_line_and_key_and_starts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    for (text, line, key, msg) in [
        (
            "cluster_name = \"x\"\n[[nodes]]\nnames = \"n1\"\ncpus = \"four\"\nmemory_mb = 1\n",
            4,
            "cpus",
            "invalid type",
        ),
        (
            "cluster_name = \"x\"\nbogus_key = 1\n",
            2,
            "bogus_key",
            "unknown field",
        ),
        (
            "[[nodes]]\nnames = \"n[1-\"\ncpus = 1\nmemory_mb = 1\n",
            2,
            "names",
            "invalid hostlist",
        ),
        (
            "time_scale = 1.0\nkill_wait = \n",
            2,
            "kill_wait",
            "string values must be quoted",
        ),
        (
            "[[nodes]]\nnames = \"n1\"\ncpus = 1\nmemory_mb = 1\n[[partitions]]\nname = \"p\"\nnodes = \"n1\"\nmax_time = \"soon\"\n",
            8,
            "max_time",
            "invalid time specification",
        ),
        // Values that parse but no cluster can have.
        (
            "[[nodes]]\nnames = \"n1\"\ncpus = 4000000000\nmemory_mb = 1\n[[partitions]]\nname = \"p\"\nnodes = \"n1\"\n",
            2,
            "cpus",
            "must be between 1 and 65535",
        ),
        (
            "[[nodes]]\nnames = \"n1\"\ncpus = 1\nmemory_mb = 1\n[[partitions]]\nname = \"p\"\nnodes = \"n1\"\n[inject]\noutput_delay = nan\n",
            9,
            "output_delay",
            "must be a number of seconds, 0 or more",
        ),
        (
            "cluster_name = \"x\"\nsched_delay = -0.5\n",
            2,
            "sched_delay",
            "must be a number of seconds, 0 or more",
        ),
        (
            "accounting_start_delay = inf\n",
            1,
            "accounting_start_delay",
            "must be a number of seconds, 0 or more",
        ),
    ] {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(exe())
            .args(["start", "--config"])
            .arg(&file)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        let prefix = format!(
            "mock-cluster: error: {}:{line}: key `{key}`: ",
            file.display()
        );
        assert!(err.starts_with(&prefix), "{err} (wanted {prefix})");
        assert!(err.contains(msg), "{err}");
        assert!(!state.join("daemon.sock").exists(), "no daemon for {text}");
    }
}

#[test]
fn unreachable_daemon_names_the_socket_and_uses_slurms_wording() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    Command::new(exe())
        .args(["env", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    // A socket file that nobody listens on.
    let sock = state.join("daemon.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let run = |name: &str, args: &[&str]| {
        Command::new(state.join("bin").join(name))
            .args(args)
            .env("MOCK_CLUSTER_STATE_DIR", &state)
            .env("MOCK_CLUSTER_NO_AUTOSTART", "1")
            .output()
            .unwrap()
    };
    let out = run("sbatch", &["--wrap", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "sbatch: error: mock-cluster daemon not reachable at {}: Connection refused (os error 111)\nsbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n",
            sock.display()
        )
    );
    let out = run("squeue", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).ends_with(
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    ));
    let out = run("srun", &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("srun: error: Unable to allocate resources: Unable to contact slurm controller (connect failure)\n"));
}

#[test]
fn a_fake_without_daemon_starts_the_embedded_default_cluster() {
    let c = TestCluster::default_cluster();
    let (out, _, code) = c.run("sinfo", &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\ndebug*       up   infinite      4   idle node[01-04]\ngitlab-ci    up   infinite      4   idle node[01-04]\n"
    );
    let (out, _, _) = c.run("scontrol", &["show", "node", "node03"]);
    assert!(out.contains("CPUTot=4"), "{out}");
    assert!(out.contains("RealMemory=16000"), "{out}");
}

#[test]
fn a_fake_on_path_reaches_its_own_cluster_without_the_state_dir_variable() {
    // Two clusters; the second one's fakes are first on PATH, and the environment holds
    // nothing else of ours, as after `env -i` or a tool's scrubbing.
    let other = TestCluster::fast();
    let c = TestCluster::fast();
    let held = other.submit(&["--hold", "--wrap", "true"]);
    assert_eq!(held, 1);
    let scrubbed = |program: &str, args: &[&str]| {
        let out = Command::new("env")
            .args(["-i", &format!("PATH={}", c.path_var()), program])
            .args(args)
            .current_dir(&c.work)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    };
    assert_eq!(
        scrubbed("sbatch", &["--hold", "-J", "mine", "--wrap", "true"]),
        ("Submitted batch job 1\n".into(), String::new(), Some(0))
    );
    assert_eq!(
        scrubbed("squeue", &["-h", "-o", "%i %j %T"]),
        ("1 mine PENDING\n".into(), String::new(), Some(0))
    );
    // The cluster behind the other PATH entry did not see it; the variable still wins.
    assert_eq!(other.job_field(1, "%j"), "wrap");
    let out = Command::new("env")
        .arg("-i")
        .arg(format!("PATH={}", c.path_var()))
        .arg(format!("MOCK_CLUSTER_STATE_DIR={}", other.state.display()))
        .args(["squeue", "-h", "-o", "%i %j"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 wrap\n");
}
