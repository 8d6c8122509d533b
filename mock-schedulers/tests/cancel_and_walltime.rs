//! scancel, walltime enforcement (fast time scale) and what waiters see.

mod common;

use common::{TestCluster, normalize_times, wait_file_contains};

fn host_line(text: &str) -> String {
    normalize_times(text)
}

#[test]
fn cancelling_a_running_job_writes_slurmstepds_line_and_wait_returns_1() {
    let c = TestCluster::fast();
    let waiter = c.spawn(
        "sbatch",
        &[
            "--wait",
            "-o",
            "cancel-%j.out",
            "--wrap",
            "echo started; sleep 300",
        ],
    );
    wait_file_contains(&c.path("cancel-1.out"), "started");
    assert_eq!(c.run("scancel", &["1"]), (String::new(), String::new(), 0));
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Submitted batch job 1\n"
    );
    let text = std::fs::read_to_string(c.path("cancel-1.out")).unwrap();
    assert_eq!(
        host_line(&text),
        "started\nslurmstepd-localhost: error: *** JOB 1 ON localhost CANCELLED AT <TIME> ***\n"
    );
    assert_eq!(c.job_field(1, "%T %r"), "CANCELLED None");
    let (show, _, _) = c.run("scontrol", &["show", "job", "1"]);
    assert!(show.contains("ExitCode=0:15"), "{show}");
    assert_eq!(
        c.run("sacct", &["-j", "1", "-n", "-P", "-o", "State,ExitCode"])
            .0,
        format!(
            "CANCELLED by {}|0:0\nCANCELLED|0:15\n",
            mock_cluster::cli::slurm::identity().1
        )
    );
}

#[test]
fn cancelling_a_pending_job_keeps_its_reason_and_wait_returns_0() {
    let c = TestCluster::fast();
    let filler = c.submit(&["--wrap", "sleep 300"]);
    c.wait_state(filler, "RUNNING");
    let waiter = c.spawn(
        "sbatch",
        &["--wait", "-o", "never-%j.out", "--wrap", "true"],
    );
    common::wait_for("reason", || c.job_field(2, "%r") == "Resources");
    assert_eq!(c.run("scancel", &["2"]).2, 0);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(c.job_field(2, "%T %r"), "CANCELLED Resources");
    assert!(!c.path("never-2.out").exists());
    let uid = mock_cluster::cli::slurm::identity().1;
    assert_eq!(
        c.run("sacct", &["-j", "2", "-n", "-P", "-o", "State,ExitCode"])
            .0,
        format!("CANCELLED by {uid}|0:0\n")
    );
    c.run("scancel", &[&filler.to_string()]);
}

#[test]
fn time_limit_sends_term_then_kill_and_ends_timeout() {
    let c = TestCluster::fast();
    let out = c
        .cmd("sbatch")
        .args([
            "--wait",
            "-t",
            "1",
            "-o",
            "to.out",
            "--wrap",
            "echo started; trap 'echo got-TERM' TERM; while true; do sleep 0.05; done",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = normalize_times(&std::fs::read_to_string(c.path("to.out")).unwrap());
    let line = "slurmstepd-localhost: error: *** JOB 1 ON localhost CANCELLED AT <TIME> DUE TO TIME LIMIT ***";
    // The shell reports its killed `sleep` child when the signal hit one.
    assert!(
        text == format!("started\n{line}\nTerminated\ngot-TERM\n")
            || text == format!("started\n{line}\ngot-TERM\n"),
        "{text:?}"
    );
    assert_eq!(c.job_field(1, "%T %r"), "TIMEOUT TimeLimit");
    let (show, _, _) = c.run("scontrol", &["show", "job", "1"]);
    assert!(
        show.contains("ExitCode=0:9"),
        "TERM was trapped, so SIGKILL ended it: {show}"
    );
    assert_eq!(
        c.run("sacct", &["-j", "1", "-n", "-P", "-o", "State,ExitCode"])
            .0,
        "TIMEOUT|0:9\nCANCELLED|0:9\n"
    );
    // Simulated run time: the limit (60 s), give or take scheduling, not the limit plus the
    // kill_wait (2 s) the trapped TERM made the job last: slurmctld's `_job_timed_out()` sets
    // the job's end time when it decides, before the job turns COMPLETING.
    let elapsed = c.job_field(1, "%M");
    assert!(["1:00", "1:01"].contains(&elapsed.as_str()), "{elapsed}");
}

#[test]
fn signal_option_warns_before_the_limit() {
    let c = TestCluster::fast();
    let out = c
        .cmd("sbatch")
        .args([
            "--wait",
            "-t",
            "2",
            // `B:`: for the batch shell; without it the signal would go to steps only
            // (sbatch(1), --signal).
            "--signal=B:USR1@60",
            "-o",
            "sig.out",
            "--wrap",
            "trap 'echo got-USR1; exit 0' USR1; while true; do sleep 0.05; done",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // The shell reports its killed `sleep` child (when the signal hit one), then runs the trap.
    let text = std::fs::read_to_string(c.path("sig.out")).unwrap();
    assert!(
        text == "got-USR1\n" || text == "User defined signal 1\ngot-USR1\n",
        "{text:?}"
    );
    assert_eq!(c.state_of(1), "COMPLETED");
    let elapsed = c.job_field(1, "%M");
    assert!(
        elapsed.starts_with("1:0"),
        "signal came 60 s before the 2 min limit: {elapsed}"
    );
}

#[test]
fn scancel_is_silent_for_finished_and_unknown_jobs() {
    let c = TestCluster::fast();
    let (_, _, code) = c.run("sbatch", &["--wait", "--wrap", "true"]);
    assert_eq!(code, 0);
    assert_eq!(c.run("scancel", &["1"]), (String::new(), String::new(), 0));
    assert_eq!(
        c.run("scancel", &["999999"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        c.run("scancel", &["abc"]),
        (
            String::new(),
            "scancel: error: Invalid job id abc\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("scancel", &["-s", "TERM", "1"]),
        (
            String::new(),
            "scancel: error: Kill job error on job id 1: Invalid job id specified\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("scancel", &["-Q", "-s", "TERM", "1"]),
        (String::new(), String::new(), 1)
    );
    assert_eq!(
        c.run("scancel", &["-v", "1"]),
        (
            String::new(),
            "scancel: Terminating job 1\nscancel: error: Kill job error on job id 1: Job/step already completing or completed\n".into(),
            0
        )
    );
    assert_eq!(
        c.run("scancel", &[]),
        (
            String::new(),
            "scancel: error: No job identification provided\n".into(),
            1
        )
    );
}

#[test]
fn scancel_by_name_and_with_a_signal() {
    let c = TestCluster::fast();
    let a = c.submit(&["-J", "victim", "--mem", "10", "--wrap", "sleep 300"]);
    let b = c.submit(&[
        "-J",
        "keeper",
        "--mem",
        "10",
        "-o",
        "keeper.out",
        "--wrap",
        "srun bash -c \"trap 'echo got-USR1' USR1; echo ready; while true; do sleep 0.05; done\"",
    ]);
    c.wait_state(a, "RUNNING");
    wait_file_contains(&c.path("keeper.out"), "ready");
    assert_eq!(c.run("scancel", &["-n", "victim"]).2, 0);
    c.wait_state(a, "CANCELLED");
    // Without --batch or --full the signal goes to the job's steps (scancel(1)).
    assert_eq!(c.run("scancel", &["-s", "USR1", &b.to_string()]).2, 0);
    wait_file_contains(&c.path("keeper.out"), "got-USR1");
    assert_eq!(c.state_of(b), "RUNNING");
    assert_eq!(
        c.run(
            "scancel",
            &[
                "-t",
                "RUNNING",
                "-u",
                &mock_cluster::cli::slurm::identity().0
            ]
        )
        .2,
        0
    );
    c.wait_state(b, "CANCELLED");
}

#[test]
fn scancel_batch_signal_reaches_the_shell_right_after_the_start() {
    let c = TestCluster::fast();
    let id = c.submit(&[
        "-o",
        "b.out",
        "--wrap",
        "trap 'echo got-USR1; exit 0' USR1; echo started; while :; do sleep 0.05; done",
    ]);
    wait_file_contains(&c.path("b.out"), "started");
    assert_eq!(
        c.run("scancel", &["-b", "-s", "USR1", &id.to_string()]),
        (String::new(), String::new(), 0)
    );
    wait_file_contains(&c.path("b.out"), "got-USR1");
    c.wait_state(id, "COMPLETED");
}

#[test]
fn signals_reach_steps_the_batch_shell_or_both_as_asked() {
    // scancel(1): -s alone signals the job's steps, -b the batch shell alone, -f the batch
    // shell, its children and the steps; observed on Slurm 22.05 (docs/slurm-observed.md).
    let c = TestCluster::fast();
    let script = "trap 'echo shell-got-USR1' USR1\n\
        srun bash -c 'trap \"echo task-got-USR1\" USR1; echo task-ready; while :; do sleep 0.05; done' &\n\
        while :; do sleep 0.05; done\n";
    std::fs::write(c.path("job.sh"), format!("#!/bin/bash\n{script}")).unwrap();
    let id = c.submit(&["-o", "sig.out", "job.sh"]).to_string();
    wait_file_contains(&c.path("sig.out"), "task-ready");
    let count = |what: &str| {
        std::fs::read_to_string(c.path("sig.out"))
            .unwrap()
            .lines()
            .filter(|l| *l == what)
            .count()
    };
    assert_eq!(c.run("scancel", &["-s", "USR1", &id]).2, 0);
    common::wait_for("the task's trap", || count("task-got-USR1") == 1);
    assert_eq!(c.run("scancel", &["-b", "-s", "USR1", &id]).2, 0);
    common::wait_for("the shell's trap", || count("shell-got-USR1") == 1);
    assert_eq!(c.run("scancel", &["-f", "-s", "USR1", &id]).2, 0);
    common::wait_for("both traps", || {
        count("shell-got-USR1") == 2 && count("task-got-USR1") == 2
    });
    // Neither -s nor -b reached the other side.
    assert_eq!((count("shell-got-USR1"), count("task-got-USR1")), (2, 2));
    assert_eq!(c.state_of(id.parse().unwrap()), "RUNNING");
    assert_eq!(c.run("scancel", &[&id]).2, 0);
    c.wait_state(id.parse().unwrap(), "CANCELLED");
    // The step was ended with the job, and accounting shows it as a step of its own.
    assert_eq!(
        c.run(
            "sacct",
            &["-j", &id, "-n", "-P", "-o", "JobID,JobName,State"]
        )
        .0,
        format!(
            "{id}|job.sh|CANCELLED by {uid}\n{id}.batch|batch|CANCELLED\n{id}.0|bash|CANCELLED\n",
            uid = mock_cluster::cli::slurm::identity().1
        )
    );
}

#[test]
fn signal_option_without_b_reaches_the_steps_not_the_batch_shell() {
    let c = TestCluster::fast();
    let out = c
        .cmd("sbatch")
        .args([
            "--wait",
            "-t",
            "2",
            "--signal=USR1@60",
            "-o",
            "sig.out",
            "--wrap",
            "trap 'echo shell-got-USR1' USR1; srun bash -c \"trap 'echo task-got-USR1; exit 0' USR1; while true; do sleep 0.05; done\"",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(c.path("sig.out")).unwrap();
    assert!(
        text == "task-got-USR1\n" || text == "User defined signal 1\ntask-got-USR1\n",
        "{text:?}"
    );
}

#[test]
fn a_requeued_job_runs_again_after_slurms_wait_with_its_restart_count() {
    // Observed on Slurm 22.05 (docs/slurm-observed.md, requeue): the running job is ended,
    // waits in the queue (BeginTime, 121 s), runs again with SLURM_RESTART_COUNT into a fresh
    // output file, and scontrol counts Restarts.
    let c = TestCluster::fast();
    let id = c.submit(&[
        "-o",
        "rq.out",
        "--wrap",
        "echo run ${SLURM_RESTART_COUNT-unset}; sleep 3",
    ]);
    wait_file_contains(&c.path("rq.out"), "run unset");
    let text = id.to_string();
    assert_eq!(
        c.run("scontrol", &["requeue", &text]),
        (String::new(), String::new(), 0)
    );
    common::wait_for("the requeued job to wait", || {
        c.job_field(id, "%T %r") == "PENDING BeginTime"
    });
    let (show, _, _) = c.run("scontrol", &["show", "job", &text]);
    assert!(show.contains("Requeue=1 Restarts=1 "), "{show}");
    // Pending: nothing to requeue.
    assert_eq!(
        c.run("scontrol", &["requeue", &text]),
        (
            String::new(),
            format!("Job is pending execution for job {id}\n"),
            1
        )
    );
    c.wait_state(id, "COMPLETED");
    // The new run opens its output file afresh: the first run's lines are gone.
    assert_eq!(
        std::fs::read_to_string(c.path("rq.out")).unwrap(),
        "run 1\n"
    );
}

#[test]
fn requeuehold_release_and_a_new_begin_time_run_the_job_again_and_sacct_d_shows_both_runs() {
    // Observed on Slurm 22.05 (docs/slurm-observed.md 63): held with its own reason, then
    // waiting for the requeue's begin time, which `scontrol update StartTime=now` moves. Real
    // time, so that the requeue's 121 s cannot pass while the test looks.
    let c = TestCluster::with_config(
        &common::FAST_CLUSTER.replace("time_scale = 60.0", "time_scale = 1.0"),
    );
    let id = c.submit(&[
        "-o",
        "rq.out",
        "--wrap",
        "echo run ${SLURM_RESTART_COUNT-unset}; sleep 300",
    ]);
    wait_file_contains(&c.path("rq.out"), "run unset");
    let text = id.to_string();
    assert_eq!(c.run("scontrol", &["requeuehold", &text]).2, 0);
    common::wait_for("the requeued job to be held", || {
        c.job_field(id, "%T|%r") == "PENDING|job requeued in held state"
    });
    let (show, _, _) = c.run("scontrol", &["show", "job", &text]);
    assert!(
        show.contains("JobState=PENDING Reason=job_requeued_in_held_state "),
        "{show}"
    );
    assert_eq!(c.run("scontrol", &["release", &text]).2, 0);
    assert_eq!(c.job_field(id, "%T|%r"), "PENDING|BeginTime");
    let job = format!("jobid={id}");
    assert_eq!(
        c.run("scontrol", &["update", &job, "StartTime=bogus"]),
        (
            String::new(),
            "Invalid time specification (pos=0): bogus\nNo changes specified\n".into(),
            1
        )
    );
    assert_eq!(
        c.run(
            "scontrol",
            &["update", &format!("jobid={id}"), "StartTime=now"]
        ),
        (String::new(), String::new(), 0)
    );
    wait_file_contains(&c.path("rq.out"), "run 1");
    assert_eq!(c.run("scancel", &[&text]).2, 0);
    c.wait_state(id, "CANCELLED");
    let uid = mock_cluster::cli::slurm::identity().1;
    let sacct = |extra: &[&str]| {
        let mut args = vec!["-j", &text, "-n", "-P", "-o", "JobID,State,ExitCode"];
        args.extend_from_slice(extra);
        c.run("sacct", &args).0
    };
    assert_eq!(
        sacct(&["-D"]),
        format!(
            "{id}|REQUEUED|0:0\n{id}.batch|CANCELLED|0:15\n\
             {id}|CANCELLED by {uid}|0:0\n{id}.batch|CANCELLED|0:15\n"
        )
    );
    assert_eq!(
        sacct(&["--duplicates", "-X"]),
        format!("{id}|REQUEUED|0:0\n{id}|CANCELLED by {uid}|0:0\n")
    );
    assert_eq!(
        sacct(&[]),
        format!("{id}|CANCELLED by {uid}|0:0\n{id}.batch|CANCELLED|0:15\n")
    );
    // Only a pending job's begin time can move.
    assert_eq!(
        c.run(
            "scontrol",
            &["update", &format!("jobid={id}"), "StartTime=now"]
        ),
        (
            String::new(),
            format!("Job has already finished for job {id}\n"),
            1
        )
    );
}

#[test]
fn requeue_hold_and_release_refuse_what_slurm_refuses() {
    let c = TestCluster::fast();
    let never = c.submit(&["--no-requeue", "--wrap", "sleep 300"]);
    c.wait_state(never, "RUNNING");
    assert_eq!(
        c.run("scontrol", &["requeue", &never.to_string()]),
        (
            String::new(),
            format!("Requested operation is presently disabled for job {never}\n"),
            1
        )
    );
    assert_eq!(
        c.run("scontrol", &["requeue", "999999"]),
        (
            String::new(),
            "Invalid job id specified for job 999999\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("scontrol", &["uhold"]),
        (
            String::new(),
            "too few arguments for keyword:uhold\n".into(),
            1
        )
    );
    // A pending job held by its user, then by an administrator, then released.
    let waiting = c.submit(&["--begin=now+1hour", "--wrap", "true"]);
    let w = waiting.to_string();
    assert_eq!(c.run("scontrol", &["uhold", &w]).2, 0);
    assert_eq!(c.job_field(waiting, "%r"), "JobHeldUser");
    assert_eq!(c.run("scontrol", &["hold", &w]).2, 0);
    assert_eq!(c.job_field(waiting, "%r"), "JobHeldAdmin");
    assert_eq!(c.run("scontrol", &["release", &w]).2, 0);
    common::wait_for("the released job to wait for its begin time", || {
        c.job_field(waiting, "%r") == "BeginTime"
    });
    // Releasing what is not held is no error.
    assert_eq!(
        c.run("scontrol", &["release", &w]),
        (String::new(), String::new(), 0)
    );
    c.run("scancel", &[&never.to_string(), &w]);
}
