//! Differential cases of job arrays: the same `sbatch --array` runs on the real Slurm 22.05 and
//! on the simulated cluster, and what squeue, scontrol, sacct and scancel say of it must match
//! (see `slurm_differential.rs` for how cases run and are normalised; the facts are
//! `docs/slurm-observed.md` 34-40).

mod differential;
use differential::*;

use conformance::slurm_env::FakeCluster;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// Polls until every job of array `id` has ended (squeue shows no pending or running task).
fn wait_for_array_end(s: &Side, id: u64) -> CaseResult {
    let argv = [
        "squeue",
        "-h",
        "-t",
        "all",
        "-j",
        &id.to_string(),
        "-o",
        "%T",
    ];
    s.poll_output(&format!("array {id} did not end"), &argv, |out| {
        !out.trim().is_empty()
            && out
                .lines()
                .all(|l| !matches!(l.trim(), "PENDING" | "RUNNING" | "COMPLETING"))
    })
}

#[test]
fn an_array_runs_its_tasks_with_their_ids_and_environment() {
    differential("array_tasks", FakeCluster::mirroring_ci_slurm(), |s| {
        let id = s.submit(
            "sbatch -a 1-3",
            &[
                "sbatch",
                "--parsable",
                "-c",
                "1",
                "--mem",
                "100",
                "-a",
                "1-3",
                "-o",
                "o-%a.out",
                "--wrap",
                "echo $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT \
                 $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX $SLURM_ARRAY_TASK_STEP",
            ],
        )?;
        wait_for_array_end(s, id)?;
        for task in 1..=3 {
            s.record_file(&format!("task {task} output"), &format!("o-{task}.out"));
        }
        s.record_sacct("sacct of the array", id, 6)?;
        let task = format!("{id}_3");
        s.run(
            "squeue of one task",
            &["squeue", "-h", "-t", "all", "-j", &task, "-o", "%i|%T"],
        )?;
        // The array's id opens the line, where the normaliser finds it.
        s.run(
            "squeue %F of one task",
            &["squeue", "-h", "-t", "all", "-j", &task, "-o", "%F|%K"],
        )?;
        Ok(())
    });
}

#[test]
fn a_held_array_is_shown_and_cancelled_task_by_task() {
    differential("array_held", FakeCluster::mirroring_ci_slurm(), |s| {
        let id = s.submit(
            "sbatch -H -a 1-4%2",
            &[
                "sbatch",
                "--parsable",
                "-H",
                "-c",
                "1",
                "--mem",
                "100",
                "-a",
                "1-4%2",
                "--wrap",
                "true",
            ],
        )?;
        let ids = id.to_string();
        s.run("squeue", &["squeue", "-h", "-j", &ids, "-o", "%i|%K|%T|%r"])?;
        // Ids open the line, where the normaliser finds them.
        s.run("squeue %F", &["squeue", "-h", "-j", &ids, "-o", "%F|%K"])?;
        s.run("squeue %A", &["squeue", "-h", "-j", &ids, "-o", "%A|%K"])?;
        s.run(
            "squeue -r",
            &["squeue", "-h", "-r", "-j", &ids, "-o", "%i|%K"],
        )?;
        let task = format!("{id}_3");
        s.run(
            "squeue one task",
            &["squeue", "-h", "-j", &task, "-o", "%i|%T"],
        )?;
        s.record_scontrol(
            "scontrol show job",
            id,
            &[
                "JobId",
                "ArrayJobId",
                "ArrayTaskId",
                "ArrayTaskThrottle",
                "JobState",
                "Reason",
                "EligibleTime",
                "NodeList",
                "StdOut",
            ],
        )?;
        let one = format!("{id}_2");
        let range = format!("{id}_[3-4]");
        let none = format!("{id}_9");
        for (key, target) in [("task", &one), ("range", &range), ("missing task", &none)] {
            s.run(&format!("scancel {key}"), &["scancel", target])?;
            s.run(
                &format!("squeue after scancel {key}"),
                &["squeue", "-h", "-t", "all", "-j", &ids, "-o", "%i|%T"],
            )?;
        }
        s.run("scancel array", &["scancel", &ids])?;
        s.run(
            "squeue after scancel array",
            &["squeue", "-h", "-t", "all", "-j", &ids, "-o", "%i|%T"],
        )?;
        Ok(())
    });
}

#[test]
fn sbatch_wait_on_an_array_and_bad_array_specifications() {
    differential(
        "array_wait_and_refusals",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.run(
                "sbatch --wait on an array",
                &[
                    "sbatch",
                    "--wait",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-a",
                    "1-2",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "exit $((3 - SLURM_ARRAY_TASK_ID))",
                ],
            )?;
            for bad in ["5-1", "1-3:0", "1001", "x"] {
                s.run(
                    &format!("sbatch -a {bad}"),
                    &["sbatch", "-H", "-a", bad, "--wrap", "true"],
                )?;
            }
            Ok(())
        },
    );
}
