//! State across daemon restarts, and failure injection (run time and TOML).

mod common;

use common::{FAST_CLUSTER, TestCluster, wait_file_contains, wait_for};

#[test]
fn a_restart_keeps_the_queue_finished_records_and_running_jobs() {
    // The finished job must still be in the controller after the restart: at 60× a
    // `min_job_age` of 300 simulated seconds is 5 real ones, which a loaded machine can spend
    // before the restart is done.
    let c =
        TestCluster::with_config(&FAST_CLUSTER.replace("min_job_age = 300", "min_job_age = 36000"));
    c.run("sbatch", &["--wait", "--wrap", "exit 3"]);
    // The running job waits on a fifo so the test decides when it ends.
    let fifo = c.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Its submitter waits with --wait across the restart.
    let waiter = c.spawn(
        "sbatch",
        &[
            "--wait",
            "-o",
            "long.out",
            "--wrap",
            "echo begin; read line < fifo; echo end; exit 4",
        ],
    );
    let running = 2;
    wait_file_contains(&c.path("long.out"), "begin");
    let pending = c.submit(&["-J", "queued", "--wrap", "true"]);
    common::wait_for("reason", || c.job_field(pending, "%r") == "Resources");
    assert!(c.admin(&["stop"]).status.success());
    assert!(c.admin(&["start"]).status.success());
    assert_eq!(c.job_field(1, "%T %r"), "FAILED NonZeroExitCode");
    assert_eq!(c.job_field(running, "%T"), "RUNNING");
    assert_eq!(c.job_field(pending, "%T %j"), "PENDING queued");
    // The job that kept running across the restart is accounted for with its real exit code.
    std::fs::write(&fifo, "go\n").unwrap();
    c.wait_state(running, "FAILED");
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "sbatch --wait saw the exit code across the restart"
    );
    assert_eq!(
        std::fs::read_to_string(c.path("long.out")).unwrap(),
        "begin\nend\n"
    );
    let (show, _, _) = c.run("scontrol", &["show", "job", &running.to_string()]);
    assert!(show.contains("ExitCode=4:0"), "{show}");
    c.wait_state(pending, "COMPLETED");
    // New ids continue after the old ones.
    assert_eq!(c.submit(&["--wrap", "true"]), pending + 1);
}

#[test]
fn injected_submit_errors_fail_the_next_n_submissions() {
    let c = TestCluster::fast();
    assert!(c.admin(&["start"]).status.success());
    c.inject(&[
        "submit-errors",
        "2",
        "--message",
        "Invalid account or account/partition combination specified",
    ]);
    for _ in 0..2 {
        assert_eq!(
            c.run("sbatch", &["--wrap", "true"]),
            (
                String::new(),
                "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n".into(),
                1
            )
        );
    }
    assert_eq!(
        c.run("sbatch", &["--wrap", "true"]).0,
        "Submitted batch job 1\n"
    );
}

#[test]
fn injected_status_timeouts_and_node_failure() {
    let c = TestCluster::fast();
    let id = c.submit(&["--wrap", "sleep 300"]);
    c.wait_state(id, "RUNNING");
    let inject = |args: &[&str]| c.inject(args);
    inject(&["status-timeout", "on"]);
    assert_eq!(
        c.run("squeue", &[]),
        (
            String::new(),
            "slurm_load_jobs error: Socket timed out on send/recv operation\n".into(),
            1
        )
    );
    assert_eq!(c.run("scontrol", &["show", "job", "1"]).2, 1);
    inject(&["status-timeout", "off"]);
    inject(&["fail-node", "localhost"]);
    c.wait_state(id, "NODE_FAIL");
    let queued = c.submit(&["--wrap", "true"]);
    wait_for("node down reason", || {
        c.job_field(queued, "%r") == "ReqNodeNotAvail, UnavailableNodes:localhost"
    });
    assert_eq!(
        c.run("sinfo", &["-h", "-p", "debug", "-o", "%t"]).0,
        "down\n"
    );
    inject(&["resume-node", "localhost"]);
    c.wait_state(queued, "COMPLETED");
}

#[test]
fn injected_output_delay_makes_the_file_appear_late() {
    // Two simulated minutes per real second: a 60 s delay is half a real second.
    let c = TestCluster::with_config(&format!(
        "{}\n[inject]\noutput_delay = 60.0\n",
        FAST_CLUSTER.replace("time_scale = 60.0", "time_scale = 120.0")
    ));
    let id = c.submit(&["-o", "late.out", "--wrap", "echo early-line; sleep 300"]);
    c.wait_state(id, "RUNNING");
    assert!(
        !c.path("late.out").exists(),
        "the file must not exist right after the start"
    );
    let text = wait_file_contains(&c.path("late.out"), "early-line");
    assert_eq!(text, "early-line\n");
    c.run("scancel", &[&id.to_string()]);
}

#[test]
fn injections_in_toml_apply_from_the_start() {
    let c = TestCluster::with_config(&format!(
        "{FAST_CLUSTER}\n[inject]\nsubmit_errors = 1\nsubmit_error_text = \"Resource temporarily unavailable\"\n"
    ));
    assert_eq!(
        c.run("sbatch", &["--wrap", "true"]).1,
        "sbatch: error: Batch job submission failed: Resource temporarily unavailable\n"
    );
    assert_eq!(c.run("sbatch", &["--wrap", "true"]).2, 0);
}
