//! Differential case of requeueing and holding jobs (`scontrol requeue|requeuehold|hold|uhold|
//! release`, `--no-requeue`), which workflow tools use to retry work: the same calls on real
//! Slurm 22.05 and on the simulated cluster print the same refusals, leave the jobs in the same
//! states and reasons and count the same restarts. The requeued job is not waited for (Slurm
//! keeps it back for two minutes); the shared machinery is in `differential/mod.rs`.

mod differential;

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
