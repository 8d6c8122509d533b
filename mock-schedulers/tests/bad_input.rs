//! Bad input of every kind gets a clear error and never takes the cluster down: command-line
//! values past the integer ranges, a damaged state directory and garbage on the daemon socket.
//! Cluster files with impossible values are in `admin.rs`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

use common::{TestCluster, exe};

fn sbatch_error(text: &str, code: i32) -> (String, String, i32) {
    (String::new(), format!("sbatch: error: {text}\n"), code)
}

#[test]
fn numbers_past_their_range_are_refused_with_slurms_errors() {
    let c = TestCluster::fast();
    for (option, value, error, code) in [
        ("-t", "99999999999", "Invalid --time specification", 255),
        // More megabytes than a u64 holds.
        (
            "--mem",
            "999999999999999T",
            "Invalid --mem specification",
            255,
        ),
        (
            "--mem-per-cpu",
            "999999999999999T",
            "Invalid --mem-per-cpu specification",
            255,
        ),
        (
            "-c",
            "0",
            "Invalid numeric value \"0\" for --cpus-per-task.",
            1,
        ),
        (
            "-n",
            "99999999999",
            "Invalid numeric value \"99999999999\" for --ntasks.",
            1,
        ),
        ("-w", "node[05-01]", "Invalid node name specified", 1),
        ("-w", "node[1-99999999]", "Invalid node name specified", 1),
        (
            "-w",
            "node[1-99999999999999999999]",
            "Invalid node name specified",
            1,
        ),
    ] {
        assert_eq!(
            c.run("sbatch", &[option, value, "--wrap", "true"]),
            (String::new(), format!("sbatch: error: {error}\n"), code),
            "{option} {value}"
        );
    }
    // A size that parses but no node has.
    assert_eq!(
        c.run("sbatch", &["--mem", "99999999999T", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available\n".into(),
            1
        )
    );
    // The cluster is still there; the refused memory request used up id 1, as in Slurm.
    assert_eq!(c.submit(&["--wrap", "true"]), 2);
}

#[test]
fn garbage_on_the_socket_gets_an_error_answer_and_the_daemon_goes_on() {
    let c = TestCluster::fast();
    assert!(c.admin(&["start"]).status.success());
    let stream = UnixStream::connect(c.state.join("daemon.sock")).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut answer = |line: &[u8]| {
        writer.write_all(line).unwrap();
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        serde_json::from_str::<serde_json::Value>(&reply).unwrap()
    };
    for garbage in [
        &b"this is not json\n"[..],
        b"\xff\xfe not even utf-8\n",
        b"{\"op\":\"jobs\",\"ids\":[-1]}\n",
        b"{\"op\":\"submit\"}\n",
    ] {
        let reply = answer(garbage);
        assert_eq!(reply["kind"], "error", "{reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.starts_with("bad request: "), "{message}");
    }
    // The same connection still serves real requests.
    assert_eq!(answer(b"{\"op\":\"ping\"}\n")["kind"], "pong");
    assert_eq!(c.run("squeue", &["-h"]), (String::new(), String::new(), 0));
}

/// Stops the cluster and rewrites its journal line by line.
fn edit_journal(c: &TestCluster, edit: impl Fn(Vec<String>) -> Vec<String>) {
    assert!(c.admin(&["stop"]).status.success());
    let path = c.state.join("journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = edit(text.lines().map(str::to_string).collect());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

/// The journal's `job` entry of `id`, as JSON.
fn job_entry(lines: &[String], id: u32) -> serde_json::Value {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["job"]["id"] == id)
        .unwrap()
}

#[test]
fn a_damaged_journal_loses_only_its_damaged_lines() {
    let c = TestCluster::fast();
    assert_eq!(c.run("sbatch", &["--wait", "--wrap", "exit 3"]).2, 3);
    edit_journal(&c, |mut lines| {
        lines.insert(0, "not json at all".into());
        lines.push("{\"job\":{\"id\":7,\"partition\":".into());
        // A torn last line, as a crash mid-write leaves it.
        lines.push("{\"run\":{\"id\":1,\"ru".into());
        lines
    });
    assert!(c.admin(&["start"]).status.success());
    assert_eq!(c.job_field(1, "%T %r"), "FAILED NonZeroExitCode");
    assert_eq!(c.submit(&["--wrap", "true"]), 2);
    let log = std::fs::read_to_string(c.state.join("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("journal: skipped 3 unreadable line(s)"),
        "daemon.log: {log}"
    );
}

#[test]
fn a_journal_holding_the_highest_job_id_refuses_new_jobs_clearly() {
    let c = TestCluster::fast();
    c.submit(&["--wrap", "true"]);
    c.wait_state(1, "COMPLETED");
    edit_journal(&c, |lines| {
        let mut job = job_entry(&lines, 1);
        job["job"]["id"] = u32::MAX.into();
        vec![job.to_string()]
    });
    assert!(c.admin(&["start"]).status.success());
    assert_eq!(
        c.run("sbatch", &["--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: job id 4294967296 is beyond the highest job id\nsbatch: error: Batch job submission failed: Job id space exhausted\n".into(),
            1
        )
    );
    // The journal kept only the job's submission entry: the restarted daemon may still be
    // running it when asked. It is there, under the highest id, and ends as before.
    c.wait_state(u32::MAX, "COMPLETED");
    assert_eq!(c.job_field(u32::MAX, "%i %T"), "4294967295 COMPLETED");
}

#[test]
fn a_journal_job_on_zero_nodes_does_not_stop_the_scheduler() {
    let c = TestCluster::fast();
    let filler = c.submit(&["-c", "2", "--wrap", "sleep 300"]);
    c.wait_state(filler, "RUNNING");
    let pending = c.submit(&["-J", "zero", "--wrap", "true"]);
    common::wait_for("reason", || c.job_field(pending, "%r") == "Resources");
    edit_journal(&c, |lines| {
        let mut out: Vec<String> = lines
            .iter()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .map_or(true, |v| v["job"]["id"] != pending)
            })
            .cloned()
            .collect();
        let mut job = job_entry(&lines, pending);
        job["job"]["num_nodes"] = 0.into();
        out.push(job.to_string());
        out
    });
    assert!(c.admin(&["start"]).status.success());
    c.run("scancel", &[&filler.to_string()]);
    c.wait_state(pending, "COMPLETED");
}

#[test]
fn a_corrupt_launch_spec_ends_the_launcher_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("1.launch.json");
    std::fs::write(&spec, "{\"job_id\": 1, \"scri").unwrap();
    let out = Command::new(exe())
        .arg("__launch")
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "mock-cluster launcher: cannot read {}: ",
            spec.display()
        )),
        "{err}"
    );
}

#[test]
fn an_output_delay_no_clock_can_reach_means_none() {
    let c = TestCluster::fast();
    assert!(c.admin(&["start"]).status.success());
    c.inject(&["output-delay", "1e300"]);
    let (_, err, code) = c.run("sbatch", &["--wait", "-o", "out.txt", "--wrap", "echo hi"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(c.path("out.txt")).unwrap(), "hi\n");
}

#[test]
fn a_begin_offset_too_long_for_a_number_is_refused() {
    let c = TestCluster::fast();
    let begin = format!("--begin=now+{}", "9".repeat(400));
    assert_eq!(
        c.run("sbatch", &[&begin, "--wrap", "true"]),
        sbatch_error(
            &format!("Invalid time specification now+{}", "9".repeat(400)),
            1
        )
    );
}

#[test]
fn an_environment_variable_that_is_not_utf8_is_left_out() {
    use std::os::unix::ffi::OsStrExt;
    let c = TestCluster::fast();
    let out = c
        .cmd("sbatch")
        .env("NOT_UTF8", std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .args(["--parsable", "--wait", "-o", "env.txt", "--wrap", "env"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(c.path("env.txt")).unwrap();
    assert!(env.contains("SLURM_JOB_ID=1\n"), "{env}");
    assert!(!env.contains("NOT_UTF8"), "{env}");
    let out = c
        .cmd("srun")
        .env("NOT_UTF8", std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .args(["printenv", "SLURM_JOB_ID"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
}
