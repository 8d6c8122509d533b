//! Job dependencies through the fake Slurm commands: `sbatch --dependency` kinds, lists,
//! reasons, what squeue and scontrol show of them, `--kill-on-invalid-dep` and the cluster's
//! `kill_invalid_depend`. Observations cited as "observed" were made on Slurm 22.05
//! (docs/slurm-observed.md, 41-46).

mod common;

use common::{FAST_CLUSTER, TestCluster, wait_for};

fn submit(c: &TestCluster, args: &[&str]) -> u32 {
    let mut all = vec!["-c", "1", "--mem", "100"];
    all.extend_from_slice(args);
    c.submit(&all)
}

/// `%T|%r|%E` of a job.
fn row(c: &TestCluster, id: u32) -> String {
    c.job_field(id, "%T|%r|%E")
}

/// Observed: a job waiting for another pends with reason Dependency and `afterok:N(unfulfilled)`;
/// once N ends well it runs and its dependency shows `(null)`; a met item leaves the list.
#[test]
fn a_job_waits_for_another_to_end_well() {
    let c = TestCluster::fast();
    let first = submit(&c, &["--wrap", "sleep 1"]);
    let failed = submit(&c, &["--wrap", "exit 3"]);
    c.wait_state(failed, "FAILED");
    let ok = submit(&c, &["-d", &format!("afterok:{first}"), "--wrap", "true"]);
    let any = submit(
        &c,
        &[
            "-d",
            &format!("afterany:{first}:{failed}"),
            "--wrap",
            "true",
        ],
    );
    wait_for("the dependencies to be looked at", || {
        row(&c, ok) == format!("PENDING|Dependency|afterok:{first}(unfulfilled)")
            && row(&c, any) == format!("PENDING|Dependency|afterany:{first}(unfulfilled)")
    });
    let show = c.run("scontrol", &["show", "job", &ok.to_string()]).0;
    assert!(
        show.contains(&format!(
            "   JobState=PENDING Reason=Dependency Dependency=afterok:{first}(unfulfilled)\n"
        )),
        "{show}"
    );
    c.wait_state(ok, "COMPLETED");
    c.wait_state(any, "COMPLETED");
    assert_eq!(row(&c, ok), "COMPLETED|None|(null)");
}

/// Observed: afterok on a failed job can never be met: the job stays pending with reason
/// DependencyNeverSatisfied and `afterok:N(failed)` (the reference cluster has no
/// kill_invalid_depend); with `--kill-on-invalid-dep=yes` it is cancelled instead. In a `?` list
/// one failed item leaves the job waiting for the others.
#[test]
fn a_dependency_that_can_never_be_met() {
    let c = TestCluster::fast();
    let failed = submit(&c, &["--wrap", "exit 3"]);
    let running = submit(&c, &["--wrap", "sleep 300"]);
    c.wait_state(failed, "FAILED");
    let stays = submit(&c, &["-d", &format!("afterok:{failed}"), "--wrap", "true"]);
    let killed = submit(
        &c,
        &[
            "-d",
            &format!("afterok:{failed}"),
            "--kill-on-invalid-dep=yes",
            "--wrap",
            "true",
        ],
    );
    let either = submit(
        &c,
        &[
            "-d",
            &format!("afterok:{failed}?afterok:{running}"),
            "--wrap",
            "true",
        ],
    );
    let notok = submit(
        &c,
        &["-d", &format!("afternotok:{failed}"), "--wrap", "true"],
    );
    wait_for("the dependencies to be looked at", || {
        row(&c, stays) == format!("PENDING|DependencyNeverSatisfied|afterok:{failed}(failed)")
    });
    wait_for("the job to be cancelled", || {
        row(&c, killed) == format!("CANCELLED|DependencyNeverSatisfied|afterok:{failed}(failed)")
    });
    // Accounting keeps the reason the job had before: none, killed at its first look
    // (docs/slurm-observed.md 53).
    assert_eq!(
        c.run(
            "sacct",
            &[
                "-j",
                &killed.to_string(),
                "-n",
                "-P",
                "-o",
                "State,Reason,ExitCode"
            ]
        )
        .0,
        "CANCELLED|None|0:0\n"
    );
    assert_eq!(
        row(&c, either),
        format!("PENDING|Dependency|afterok:{failed}(failed)?afterok:{running}(unfulfilled)")
    );
    c.wait_state(notok, "COMPLETED");
    assert_eq!(c.run("scancel", &[&running.to_string()]).2, 0);
    // afterok on a cancelled job: never (and `either` too, now both failed).
    wait_for("either to fail", || {
        row(&c, either)
            == format!(
                "PENDING|DependencyNeverSatisfied|afterok:{failed}(failed)?afterok:{running}(failed)"
            )
    });
}

/// The cluster's `kill_invalid_depend` cancels such jobs by default; `--kill-on-invalid-dep=no`
/// keeps one pending.
#[test]
fn the_cluster_may_kill_invalid_dependencies() {
    let c = TestCluster::with_config(&FAST_CLUSTER.replace(
        "min_job_age = 300",
        "min_job_age = 300\nkill_invalid_depend = true",
    ));
    let failed = submit(&c, &["--wrap", "exit 1"]);
    c.wait_state(failed, "FAILED");
    let killed = submit(&c, &["-d", &format!("afterok:{failed}"), "--wrap", "true"]);
    let kept = submit(
        &c,
        &[
            "-d",
            &format!("afterok:{failed}"),
            "--kill-on-invalid-dep=no",
            "--wrap",
            "true",
        ],
    );
    c.wait_state(killed, "CANCELLED");
    wait_for("the kept job to be looked at", || {
        row(&c, kept) == format!("PENDING|DependencyNeverSatisfied|afterok:{failed}(failed)")
    });
}

/// Observed: malformed dependencies are refused with "Job dependency problem", rc 1, and use up
/// a job id; an id the controller does not know counts as ended well.
#[test]
fn malformed_dependencies_are_refused_and_unknown_jobs_count_as_done() {
    let c = TestCluster::fast();
    let before = submit(&c, &["-H", "--wrap", "true"]);
    for bad in ["afterok", "foo:1", "afterok:x", "afterok:0"] {
        let (out, err, code) = c.run("sbatch", &["-d", bad, "--wrap", "true"]);
        assert_eq!(
            (out.as_str(), err.as_str(), code),
            (
                "",
                "sbatch: error: Batch job submission failed: Job dependency problem\n",
                1
            ),
            "{bad}"
        );
    }
    let unknown = submit(&c, &["-d", "afterok:999999", "--wrap", "true"]);
    assert_eq!(unknown, before + 5, "each refusal used up an id");
    c.wait_state(unknown, "COMPLETED");
    let (_, err, code) = c.run("sbatch", &["--kill-on-invalid-dep=maybe", "--wrap", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "sbatch: error: Invalid --kill-on-invalid-dep specification\n",
            255
        )
    );
}

/// Observed: `after:N+M` waits M minutes after N started; a held job's dependency is not looked
/// at (it keeps `(unfulfilled)`).
#[test]
fn after_with_minutes_and_held_jobs() {
    let c = TestCluster::fast();
    let first = submit(&c, &["--wrap", "sleep 300"]);
    c.wait_state(first, "RUNNING");
    let later = submit(&c, &["-d", &format!("after:{first}+1"), "--wrap", "true"]);
    let held = submit(
        &c,
        &["-H", "-d", &format!("afternotok:{first}"), "--wrap", "true"],
    );
    assert_eq!(
        row(&c, held),
        format!("PENDING|JobHeldUser|afternotok:{first}(unfulfilled)")
    );
    // One simulated minute is a real second on the fast cluster.
    c.wait_state(later, "COMPLETED");
    assert_eq!(c.run("scancel", &[&first.to_string()]).2, 0);
    c.wait_state(first, "CANCELLED");
    assert_eq!(
        row(&c, held),
        format!("PENDING|JobHeldUser|afternotok:{first}(unfulfilled)")
    );
}

/// Observed: afterok on an array waits for every task (`afterok:N_*`), on one task for that
/// task (`afterok:N_1`); a failed task makes the whole never satisfied.
#[test]
fn dependencies_on_arrays_and_their_tasks() {
    let c = TestCluster::fast();
    let array = submit(
        &c,
        &[
            "-a",
            "1-2",
            "--wrap",
            "sleep 1; exit $((SLURM_ARRAY_TASK_ID - 1))",
        ],
    );
    let all = submit(&c, &["-d", &format!("afterok:{array}"), "--wrap", "true"]);
    let one = submit(&c, &["-d", &format!("afterok:{array}_1"), "--wrap", "true"]);
    wait_for("the dependencies to be looked at", || {
        row(&c, all) == format!("PENDING|Dependency|afterok:{array}_*(unfulfilled)")
    });
    c.wait_state(one, "COMPLETED");
    wait_for("the array's failure to be seen", || {
        row(&c, all) == format!("PENDING|DependencyNeverSatisfied|afterok:{array}_*(failed)")
    });
}

/// A dependency survives a daemon restart and is met afterwards.
#[test]
fn a_dependency_survives_a_daemon_restart() {
    let c = TestCluster::fast();
    let first = submit(&c, &["--wrap", "sleep 300"]);
    let next = submit(&c, &["-d", &format!("afterany:{first}"), "--wrap", "true"]);
    wait_for("the dependency to be looked at", || {
        row(&c, next) == format!("PENDING|Dependency|afterany:{first}(unfulfilled)")
    });
    assert!(c.admin(&["stop"]).status.success());
    assert!(c.admin(&["start"]).status.success());
    assert_eq!(
        row(&c, next),
        format!("PENDING|Dependency|afterany:{first}(unfulfilled)")
    );
    assert_eq!(c.run("scancel", &[&first.to_string()]).2, 0);
    c.wait_state(next, "COMPLETED");
}

/// Observed: an array with aftercorr shows and runs each task on its own (`3130_2`, `3130_1`
/// rows, `aftercorr:3129_*(unfulfilled)` on each); task 1 ran after 3129_1 completed, task 2
/// never after 3129_2 failed.
#[test]
fn aftercorr_waits_task_by_task() {
    let c = TestCluster::fast();
    let first = submit(
        &c,
        &[
            "-a",
            "1-2",
            "--wrap",
            "sleep 1; exit $((SLURM_ARRAY_TASK_ID - 1))",
        ],
    );
    let then = submit(
        &c,
        &[
            "-a",
            "1-2",
            "-d",
            &format!("aftercorr:{first}"),
            "--wrap",
            "true",
        ],
    );
    let ids = then.to_string();
    let rows = || {
        c.run(
            "squeue",
            &["-h", "-t", "all", "-j", &ids, "-o", "%i|%T|%r|%E"],
        )
        .0
    };
    wait_for("the tasks to wait one by one", || {
        rows()
            == format!(
                "{then}_2|PENDING|Dependency|aftercorr:{first}_*(unfulfilled)\n\
                 {then}_1|PENDING|Dependency|aftercorr:{first}_*(unfulfilled)\n"
            )
    });
    wait_for("task 1 to run and task 2 to fail", || {
        rows()
            == format!(
                "{then}_1|COMPLETED|None|(null)\n\
                 {then}_2|PENDING|DependencyNeverSatisfied|aftercorr:{first}_*(failed)\n"
            )
    });
}

/// Observed: `scontrol update jobid=N dependency=...` replaces a pending job's dependency
/// silently; an empty one removes it; a malformed one, an unknown or a finished job are refused
/// with `<text> for job N`, rc 1.
#[test]
fn scontrol_update_replaces_a_dependency() {
    let c = TestCluster::fast();
    let first = submit(&c, &["--wrap", "sleep 300"]);
    let held = submit(&c, &["-H", "--wrap", "true"]);
    let job = format!("jobid={held}");
    let update = |dep: &str| c.run("scontrol", &["update", &job, &format!("dependency={dep}")]);
    assert_eq!(
        update(&format!("afterok:{first}")),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        row(&c, held),
        format!("PENDING|JobHeldUser|afterok:{first}(unfulfilled)")
    );
    assert_eq!(
        update("foo:1"),
        (
            String::new(),
            format!("Job dependency problem for job {held}\n"),
            1
        )
    );
    assert_eq!(update(""), (String::new(), String::new(), 0));
    assert_eq!(row(&c, held), "PENDING|JobHeldUser|(null)");
    assert_eq!(
        c.run(
            "scontrol",
            &["update", "jobid=999999", "dependency=afterok:1"]
        ),
        (
            String::new(),
            "Invalid job id specified for job 999999\n".to_string(),
            1
        )
    );
    assert_eq!(
        c.run("scontrol", &["update", &job, "foo=bar"]),
        (
            String::new(),
            "Update of this parameter is not supported: foo=bar\nRequest aborted\n".to_string(),
            1
        )
    );
    assert_eq!(c.run("scancel", &[&held.to_string()]).2, 0);
    assert_eq!(
        update("afterok:1"),
        (
            String::new(),
            format!("Job has already finished for job {held}\n"),
            1
        )
    );
}
