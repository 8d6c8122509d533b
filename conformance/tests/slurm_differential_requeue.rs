//! Differential cases of requeueing and holding jobs (`scontrol requeue|requeuehold|hold|uhold|
//! release`, `--no-requeue`), which workflow tools use to retry work: the same calls on real
//! Slurm 22.05 and on the simulated cluster print the same refusals, leave the jobs in the same
//! states and reasons and count the same restarts. Slurm keeps a requeued job back for two
//! minutes; the second run is reached by moving its begin time (`scontrol update
//! StartTime=now`), and compared with `SLURM_RESTART_COUNT` and `sacct -D` (facts 32, 63). The
//! shared machinery is in `differential/mod.rs`.

mod differential;

use std::time::Duration;

use conformance::poll::poll_until;
use conformance::slurm_env::FakeCluster;
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

#[test]
fn requeue_hold_and_release() {
    differential(
        "requeue_hold_release",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch",
                &[
                    "sbatch",
                    "-c",
                    "1",
                    "--mem",
                    "50",
                    "-o",
                    "rq.out",
                    "--wrap",
                    "echo started; exec sleep 300",
                ],
            )?;
            s.wait_for_state(id, &["RUNNING"])?;
            poll_until(STATE_DEADLINE, || {
                s.env
                    .read_file("rq.out")
                    .is_some_and(|t| t.contains("started"))
            });
            let text = id.to_string();
            s.run("requeue", &["scontrol", "requeue", &text])?;
            s.wait_for_state(id, &["PENDING"])?;
            s.record_state("after requeue", id)?;
            s.record_scontrol(
                "scontrol",
                id,
                &["JobState", "Reason", "Requeue", "Restarts"],
            )?;
            s.record_file("output file", "rq.out");
            s.run("requeue (pending)", &["scontrol", "requeue", &text])?;
            s.run("requeue (unknown)", &["scontrol", "requeue", "999999"])?;
            s.run("uhold", &["scontrol", "uhold", &text])?;
            s.record_state("after uhold", id)?;
            s.run("hold", &["scontrol", "hold", &text])?;
            s.record_state("after hold", id)?;
            s.run("release", &["scontrol", "release", &text])?;
            s.run("release again", &["scontrol", "release", &text])?;
            s.run("scancel", &["scancel", &text])?;
            let never = s.submit(
                "sbatch --no-requeue",
                &[
                    "sbatch",
                    "--no-requeue",
                    "-c",
                    "1",
                    "--mem",
                    "50",
                    "--wrap",
                    "exec sleep 300",
                ],
            )?;
            s.wait_for_state(never, &["RUNNING"])?;
            let never_text = never.to_string();
            s.run(
                "requeue (--no-requeue)",
                &["scontrol", "requeue", &never_text],
            )?;
            s.record_scontrol("scontrol (--no-requeue)", never, &["Requeue", "Restarts"])?;
            s.run("scancel", &["scancel", &never_text])?;
            Ok(())
        },
    );
}

/// `scontrol requeuehold` of a running job, then `scontrol release`: the job waits held with
/// `job requeued in held state`, then for its begin time (Slurm's two minutes after a requeue,
/// fact 32), which `scontrol update StartTime=now` brings forward; the second run sees
/// `SLURM_RESTART_COUNT=1` and writes its output file afresh, and `sacct -D` shows the first
/// run as a `REQUEUED` row of its own (facts 32, 63).
#[test]
fn requeuehold_release_and_the_second_run() {
    differential(
        "requeuehold_release_second_run",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch",
                &[
                    "sbatch",
                    "-c",
                    "1",
                    "--mem",
                    "50",
                    "-o",
                    "rq.out",
                    "--wrap",
                    "echo run ${SLURM_RESTART_COUNT-unset}; exec sleep 300",
                ],
            )?;
            s.wait_for_state(id, &["RUNNING"])?;
            let has_line = |s: &Side, line: &str| {
                poll_until(STATE_DEADLINE, || {
                    s.env
                        .read_file("rq.out")
                        .is_some_and(|t| t.lines().any(|l| l == line))
                })
            };
            if !has_line(s, "run unset") {
                return fail("the first run printed nothing");
            }
            let text = id.to_string();
            s.run("requeuehold", &["scontrol", "requeuehold", &text])?;
            s.wait_for_state(id, &["PENDING"])?;
            let requeued_at = std::time::SystemTime::now();
            s.record_state("after requeuehold", id)?;
            s.record_scontrol(
                "scontrol after requeuehold",
                id,
                &["JobState", "Reason", "Priority", "Restarts"],
            )?;
            s.run("release", &["scontrol", "release", &text])?;
            s.wait_for_reason(id, "BeginTime")?;
            s.record_state("after release", id)?;
            // slurmd revokes the first run's credential by whole seconds: a run launched in the
            // second of the requeue is killed at once (`Job credential revoked`, FAILED 1:0;
            // fact 63), so the begin time moves only once that second is over. A wait for the
            // clock, not for the cluster.
            let whole_second_later = requeued_at + Duration::from_secs(2);
            poll_until(Duration::from_secs(3), || {
                std::time::SystemTime::now() >= whole_second_later
            });
            let job = format!("jobid={id}");
            s.run(
                "update with a bad StartTime",
                &["scontrol", "update", &job, "StartTime=bogus"],
            )?;
            s.run("update without a change", &["scontrol", "update", &job])?;
            s.run(
                "update StartTime=now",
                &["scontrol", "update", &job, "StartTime=now"],
            )?;
            s.wait_for_state(id, &["RUNNING"])?;
            if !has_line(s, "run 1") {
                return fail("the second run printed nothing");
            }
            s.record_file("output of the second run", "rq.out");
            s.record_scontrol("scontrol, second run", id, &["JobState", "Restarts"])?;
            s.run("scancel", &["scancel", &text])?;
            s.wait_until_finished(id)?;
            if !sacct_comparable("sacct -D")? {
                return Ok(());
            }
            let final_rows = |o: &conformance::slurm_env::RunOutput| {
                o.stdout.lines().count() >= 4
                    && !o.stdout.contains("|RUNNING|")
                    && !o.stdout.contains("|PENDING|")
            };
            for (key, options) in [
                ("sacct -D", &["-D"][..]),
                ("sacct --duplicates -X", &["--duplicates", "-X"][..]),
                ("sacct", &[][..]),
            ] {
                let mut argv = vec![
                    "sacct",
                    "-j",
                    &text,
                    "-n",
                    "-P",
                    "-o",
                    "JobID,State,ExitCode",
                ];
                argv.extend_from_slice(options);
                let out = if key == "sacct -D" {
                    s.env.run_until(&argv, SACCT_DEADLINE, final_rows)?
                } else {
                    s.env.run(&argv)?
                };
                s.record(key, &argv, &out);
            }
            Ok(())
        },
    );
}
