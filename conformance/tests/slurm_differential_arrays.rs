//! Differential cases of job arrays: the same `sbatch --array` runs on the real Slurm 22.05 and
//! on the simulated cluster, and what squeue, scontrol, sacct and scancel say of it must match
//! (see `slurm_differential.rs` for how cases run and are normalised; the facts are
//! `docs/slurm-observed.md` 34-40, 65, 66).

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

/// `--array=10-16:3`: the pending record is shown as the list of its tasks (`<id>_[10,13,16]`),
/// the tasks are 10, 13 and 16, and each sees the step in `SLURM_ARRAY_TASK_STEP` (fact 65).
/// The indices are above the simulated cluster's first job ids, and the values are printed
/// after names: a number equal to a job id, or opening a line, would read as one.
#[test]
fn an_array_with_a_step_runs_every_third_index() {
    differential("array_step", FakeCluster::mirroring_ci_slurm(), |s| {
        let id = s.submit(
            "sbatch -H --array=10-16:3",
            &[
                "sbatch",
                "--parsable",
                "-H",
                "-c",
                "1",
                "--mem",
                "100",
                "--array=10-16:3",
                "-o",
                "o-%a.out",
                "--wrap",
                "echo task=$SLURM_ARRAY_TASK_ID count=$SLURM_ARRAY_TASK_COUNT \
                 min=$SLURM_ARRAY_TASK_MIN max=$SLURM_ARRAY_TASK_MAX \
                 step=$SLURM_ARRAY_TASK_STEP",
            ],
        )?;
        let ids = id.to_string();
        s.run(
            "squeue of the held array",
            &["squeue", "-h", "-j", &ids, "-o", "%i|%K|%T|%r"],
        )?;
        s.run(
            "squeue -r of the held array",
            &["squeue", "-h", "-r", "-j", &ids, "-o", "%i|%K|%T"],
        )?;
        s.run("release", &["scontrol", "release", &ids])?;
        wait_for_array_end(s, id)?;
        s.record_files("files");
        for task in [10, 13, 16] {
            s.record_file(&format!("task {task} output"), &format!("o-{task}.out"));
        }
        s.record_sacct("sacct of the array", id, 6)?;
        Ok(())
    });
}

/// `--array=1-4%1`: one task runs, the others wait in the array's record with reason
/// `JobArrayTaskLimit`; squeue shows the running task and the record, `-r` every task on a
/// row of its own, and `scontrol show job` the record first (fact 66).
#[test]
fn a_throttled_array_runs_one_task_at_a_time() {
    differential("array_throttle", FakeCluster::mirroring_ci_slurm(), |s| {
        let id = s.submit(
            "sbatch --array=1-4%1",
            &[
                "sbatch",
                "--parsable",
                "-c",
                "1",
                "--mem",
                "100",
                "--array=1-4%1",
                "-o",
                "/dev/null",
                "--wrap",
                "sleep 120",
            ],
        )?;
        let ids = id.to_string();
        let rows = ["squeue", "-h", "-j", &ids, "-o", "%i|%K|%T|%r"];
        s.poll_output("the throttled array did not settle", &rows, |out| {
            out.contains("|RUNNING|") && out.contains("|PENDING|JobArrayTaskLimit")
        })?;
        // Real squeue lists the running task before or after the waiting ones from one run to
        // the next (fact 66): the rows are compared in sorted order.
        for (key, argv) in [
            ("squeue (rows sorted)", &rows[..]),
            (
                "squeue -r (rows sorted)",
                &["squeue", "-h", "-r", "-j", &ids, "-o", "%i|%K|%T|%r"][..],
            ),
        ] {
            let mut out = s.env.run(argv)?;
            let mut lines: Vec<&str> = out.stdout.lines().collect();
            lines.sort_unstable();
            out.stdout = lines.iter().map(|l| format!("{l}\n")).collect();
            s.record(key, argv, &out);
        }
        let running = s.env.run(&["squeue", "-h", "-j", &ids, "-t", "R"])?;
        let row = running
            .stdout
            .lines()
            .map(|line| default_squeue_row(&mut s.norm, line))
            .collect::<Vec<_>>()
            .join("\n");
        s.note("squeue, default format, running task", row);
        s.record_scontrol(
            "scontrol of the record",
            id,
            &["ArrayTaskId", "ArrayTaskThrottle", "JobState", "Reason"],
        )?;
        s.run("scancel", &["scancel", &ids])?;
        Ok(())
    });
}
