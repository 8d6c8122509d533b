//! Differential cases of job steps: `srun` inside a batch job, as job libraries and workflow
//! tools write it (several tasks, labels, `%t` file names, exit codes of failing tasks,
//! accounting rows per step), and signals meant for steps, the batch shell or both. The same
//! cases run on real Slurm 22.05 and on the simulated cluster; the shared machinery is in
//! `differential/mod.rs`.

mod differential;

use std::time::Duration;

use conformance::poll::poll_until;
use conformance::slurm_env::{FakeCluster, RunOutput};
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// The lines of a file in sorted order: tasks write concurrently, in no fixed order. Lines
/// srun in the job printed or not by timing are left out, as [`Side::record_file`] does.
fn record_sorted_file(s: &mut Side, key: &str, relative: &str) {
    let value = match s.env.read_file(relative) {
        Some(text) => {
            let mut lines: Vec<&str> = text
                .lines()
                .filter(|line| !not_comparable("srun", line, s.queueing_on_purpose))
                .collect();
            lines.sort_unstable();
            s.norm.text(&lines.join("\n"))
        }
        None => "(no such file)".into(),
    };
    s.note(key, value);
}

#[test]
fn srun_steps_inside_a_batch_job() {
    differential("srun_steps", FakeCluster::mirroring_ci_slurm(), |s| {
        let script = r#"#!/bin/bash
srun -n 2 -l bash -c 'echo $SLURM_PROCID $SLURM_LOCALID $SLURM_NODEID $SLURM_STEP_ID $SLURM_NTASKS $SLURM_STEP_NUM_TASKS $SLURM_STEP_TASKS_PER_NODE $SLURM_GTIDS $SLURM_DISTRIBUTION; exit $SLURM_PROCID'
echo "rc=$?"
srun -n 2 bash -c 'exit 3'
echo "rc=$?"
srun --output=task-%j-%s-%t.out -n 2 bash -c 'echo hi $SLURM_PROCID'
echo "rc=$?"
srun -n 2 --label bash -c 'echo out; echo err >&2'
srun bash -c 'echo default $SLURM_NTASKS $SLURM_STEP_NUM_TASKS'
srun -n 3 true
echo "rc=$?"
"#;
        s.env.write_file("steps.sh", script)?;
        let id = s.submit(
            "sbatch",
            &[
                "sbatch",
                "-n",
                "2",
                "--mem",
                "100",
                "-o",
                "steps.out",
                "steps.sh",
            ],
        )?;
        s.wait_until_finished(id)?;
        record_sorted_file(s, "output, sorted", "steps.out");
        record_sorted_file(s, "task 0's file", &format!("task-{id}-2-0.out"));
        record_sorted_file(s, "task 1's file", &format!("task-{id}-2-1.out"));
        s.record_final_state("state", id)?;
        s.record_sacct("sacct", id, 7)?;
        Ok(())
    });
}

#[test]
fn signals_reach_steps_the_batch_shell_or_everything() {
    differential("signal_scopes", FakeCluster::mirroring_ci_slurm(), |s| {
        let script = "#!/bin/bash\n\
            trap 'echo shell-got-USR1' USR1\n\
            srun bash -c 'trap \"echo task-got-USR1\" USR1; echo task-ready; while :; do sleep 0.2; done' &\n\
            while :; do sleep 0.2; done\n";
        s.env.write_file("sig.sh", script)?;
        let id = s.submit(
            "sbatch",
            &[
                "sbatch", "-c", "1", "--mem", "100", "-o", "sig.out", "sig.sh",
            ],
        )?;
        s.wait_for_state(id, &["RUNNING"])?;
        let count = |s: &Side, what: &str| {
            s.env
                .read_file("sig.out")
                .map_or(0, |t| t.lines().filter(|l| *l == what).count())
        };
        if !poll_until(Duration::from_secs(30), || count(s, "task-ready") == 1) {
            return fail("the step's task never started");
        }
        let id_text = id.to_string();
        for (options, shell, task) in [
            (&["-s", "USR1"][..], 0, 1),
            (&["-b", "-s", "USR1"][..], 1, 1),
            (&["-f", "-s", "USR1"][..], 2, 2),
        ] {
            let mut argv = vec!["scancel"];
            argv.extend_from_slice(options);
            argv.push(&id_text);
            s.run(&format!("scancel {}", options.join(" ")), &argv)?;
            let arrived = poll_until(Duration::from_secs(10), || {
                count(s, "shell-got-USR1") >= shell && count(s, "task-got-USR1") >= task
            });
            s.note(
                &format!("after scancel {}", options.join(" ")),
                format!(
                    "arrived {arrived}; shell {} task {}",
                    count(s, "shell-got-USR1"),
                    count(s, "task-got-USR1")
                ),
            );
        }
        s.record_state("still running", id)?;
        s.run("scancel", &["scancel", &id_text])?;
        s.wait_until_finished(id)?;
        // The step's exit code is `0:15` or, now and then on a loaded node, `0:0` (fact 19).
        let step = format!("{id}.0|CANCELLED|");
        s.record_sacct_with("sacct", id, 3, |line| {
            match line.strip_prefix(step.as_str()) {
                Some("0:15" | "0:0") => format!("{step}0:15 or 0:0"),
                _ => line.to_string(),
            }
        })?;
        Ok(())
    });
}

/// `sbatch --signal=[B:]USR1@25` with a one-minute limit: with `B:` the batch shell's trap
/// runs (`wait` returns to it at once) and its step gets nothing; without it the step's trap
/// runs and the batch shell gets nothing (`docs/slurm-observed.md` 29, 62). Real Slurm sends
/// the signal at its first time-limit check (every 30 s) within 30 s before `limit - 25 s`,
/// that is 5 to 35 s after the start: late enough for the traps to be set, and the case waits
/// for the traps to have run, not for a second. Each trap ends its script, so neither job meets
/// its limit. Only the lines the scripts print are compared: a `sleep` that the signal killed
/// may or may not be reported by its shell.
#[test]
fn sbatch_signal_option_reaches_the_batch_shell_or_the_steps() {
    differential("sbatch_signal", FakeCluster::mirroring_ci_slurm(), |s| {
        let script = "#!/bin/bash\n\
            trap 'echo shell-got-USR1; exit 0' USR1\n\
            srun bash -c 'trap \"echo task-got-USR1; exit 0\" USR1; while :; do sleep 0.2; done' &\n\
            wait $!\n\
            echo srun-rc=$?\n";
        s.env.write_file("sig.sh", script)?;
        let mut ids = Vec::new();
        for (key, signal) in [
            ("batch", "--signal=B:USR1@25"),
            ("steps", "--signal=USR1@25"),
        ] {
            let out = format!("{key}.out");
            let id = s.submit(
                &format!("sbatch {signal}"),
                &[
                    "sbatch", "-t", "1", signal, "-c", "1", "--mem", "100", "-o", &out, "sig.sh",
                ],
            )?;
            ids.push((key, id));
        }
        for (key, id) in ids {
            s.record_final_state(&format!("{key}: final state"), id)?;
            let lines = s
                .env
                .read_file(format!("{key}.out"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("got-USR1") || l.starts_with("srun-rc="))
                .map(|l| format!("{l}\n"))
                .collect::<String>();
            s.note(&format!("{key}: what the scripts printed"), lines);
            // The step the batch shell's end cut short is `0:15` or, on a loaded node, `0:0`
            // (fact 19).
            let step = format!("{id}.0|CANCELLED|");
            s.record_sacct_with(&format!("{key}: sacct"), id, 3, |line| {
                match line.strip_prefix(step.as_str()) {
                    Some("0:15" | "0:0") => format!("{step}0:15 or 0:0"),
                    _ => line.to_string(),
                }
            })?;
        }
        Ok(())
    });
}

/// `srun --output` inside an array task: `%A` and `%a` are the array's id and the task's index
/// (index 5: the simulated cluster's first ids are small, and an index equal to one would read as
/// that job's id after normalisation)
/// (submitit names every task's files `logs/%A_%a/%A_%a_%t_log.out`); a file in a directory that
/// does not exist ends the step before it runs, with srun's own message and exit 1.
#[test]
fn srun_output_patterns_in_an_array_task() {
    differential(
        "srun_output_in_array_task",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let script = r#"#!/bin/bash
srun --output=step_%A_%a_%j_%t.out bash -c 'echo task $SLURM_ARRAY_TASK_ID'
echo "rc=$?"
srun --output=missing/%A_%a.out bash -c 'echo never'
echo "rc=$?"
"#;
            s.env.write_file("array.sh", script)?;
            let id = s.submit(
                "sbatch --array=5",
                &[
                    "sbatch",
                    "--array=5",
                    "--mem",
                    "100",
                    "-o",
                    "array_%A_%a.out",
                    "array.sh",
                ],
            )?;
            s.wait_until_finished(id)?;
            s.record_files("files");
            s.record_file("batch output", &format!("array_{id}_5.out"));
            s.record_file("step output", &format!("step_{id}_5_{id}_0.out"));
            s.record_final_state("state", id)?;
            Ok(())
        },
    );
}

/// The job id a task printed as `SLURM_JOB_ID=<id>`.
fn printed_job_id(stdout: &str) -> Result<u64, CaseError> {
    stdout
        .split_whitespace()
        .find_map(|word| word.strip_prefix("SLURM_JOB_ID=")?.parse().ok())
        .map_or_else(
            || fail(format!("no SLURM_JOB_ID= in the tasks' output: {stdout:?}")),
            Ok,
        )
}

/// Runs `argv` and records it with its stdout and stderr lines sorted: tasks print
/// concurrently, in no fixed order, and srun's error line about a task races the other task's
/// output.
fn run_sorted(s: &mut Side, key: &str, argv: &[&str]) -> Result<RunOutput, CaseError> {
    let out = s.env.run(argv)?;
    let sort = |text: &str| {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    };
    let mut sorted = out.clone();
    sorted.stdout = sort(&out.stdout);
    sorted.stderr = sort(&out.stderr);
    s.record(key, argv, &sorted);
    Ok(out)
}

/// `srun -n N` outside a job makes its own allocation and runs there the step `<id>.0` of N
/// tasks, as srun in a batch job does: ranks, labels, `%t` files, the error line of failing
/// tasks and the highest exit code, a program that cannot start, sacct's step row. On the reference node (one node, two
/// CPUs) both tasks run on it.
#[test]
fn srun_outside_a_job_runs_a_step_of_n_tasks() {
    differential(
        "srun_top_level_tasks",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let labelled = [
                "srun",
                "-n",
                "2",
                "-l",
                "--mem",
                "100",
                "bash",
                "-c",
                "echo SLURM_JOB_ID=$SLURM_JOB_ID $SLURM_PROCID $SLURM_LOCALID $SLURM_NODEID $SLURM_STEP_ID $SLURM_NTASKS $SLURM_NPROCS $SLURM_STEP_NUM_TASKS $SLURM_STEP_NUM_NODES $SLURM_STEP_TASKS_PER_NODE $SLURM_TASKS_PER_NODE $SLURM_GTIDS $SLURM_DISTRIBUTION $SLURM_CPUS_ON_NODE $SLURM_JOB_CPUS_PER_NODE $SLURM_LABELIO; echo err $SLURM_PROCID >&2; exit $SLURM_PROCID",
            ];
            let out = run_sorted(s, "srun -n 2 -l (lines sorted)", &labelled)?;
            let first = printed_job_id(&out.stdout)?;
            let files = [
                "srun",
                "-n",
                "2",
                "--mem",
                "100",
                "--output=task-%j-%s-%t.out",
                "bash",
                "-c",
                "echo SLURM_JOB_ID=$SLURM_JOB_ID task $SLURM_PROCID",
            ];
            s.run("srun -n 2 --output=%t", &files)?;
            let names: Vec<String> = std::fs::read_dir(s.env.cwd())
                .map_err(|e| CaseError(format!("reading the case's directory: {e}")))?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("task-"))
                .collect();
            let second = names
                .iter()
                .find_map(|name| name.strip_prefix("task-")?.split('-').next()?.parse().ok())
                .map_or_else(|| fail("srun --output made no task file"), Ok)?;
            let second_text = s.norm.learn(second);
            s.note("task files", {
                let mut shown: Vec<String> = names
                    .iter()
                    .map(|n| n.replace(&second.to_string(), &second_text))
                    .collect();
                shown.sort_unstable();
                shown.join("\n")
            });
            for task in 0..2 {
                record_sorted_file(
                    s,
                    &format!("task {task}'s file"),
                    &format!("task-{second}-0-{task}.out"),
                );
            }
            s.run(
                "srun -n 2 exit 3",
                &["srun", "-n", "2", "--mem", "100", "bash", "-c", "exit 3"],
            )?;
            run_sorted(
                s,
                "srun -n 2 of a missing program (lines sorted)",
                &["srun", "-n", "2", "--mem", "100", "no-such-program"],
            )?;
            s.record_sacct("sacct of srun -n 2 -l", first, 2)?;
            s.record_sacct("sacct of srun -n 2 --output", second, 2)?;
            Ok(())
        },
    );
}

/// srun inside salloc's allocation is that job's step 0; salloc's own command is no step, and
/// its job is named `interactive`.
#[test]
fn srun_inside_salloc_is_the_jobs_step() {
    differential("salloc_srun_step", FakeCluster::mirroring_ci_slurm(), |s| {
        let argv = [
            "salloc",
            "--mem",
            "100",
            "srun",
            "bash",
            "-c",
            "echo SLURM_JOB_ID=$SLURM_JOB_ID step $SLURM_STEP_ID $SLURM_NTASKS",
        ];
        let out = s.run("salloc srun", &argv)?;
        let id = printed_job_id(&out.stdout)?;
        s.record_sacct("sacct", id, 2)?;
        // The name from the controller: accounting's JobName of an allocation is `allocation`
        // or its name, by a race (fact 67).
        let id = id.to_string();
        s.run(
            "squeue name",
            &["squeue", "-h", "-t", "all", "-j", &id, "-o", "%j"],
        )?;
        Ok(())
    });
}

/// `srun --multi-prog FILE ARGS`: each task runs its line's program (`%t` the rank, `%o` the
/// offset within the line's ranks, quotes and `\`), then ARGS; without `-n` the file's
/// highest rank sets the task count. srun checks the file before it asks for anything: an
/// unreadable file, a rank no line names, a rank beyond `-n`, a duplicate (fact 69).
#[test]
fn multi_prog_gives_each_task_its_program() {
    differential("multi_prog", FakeCluster::mirroring_ci_slurm(), |s| {
        s.env.write_file(
            "mp.conf",
            "# both ranks\n0,1 echo 'rank %t' offset=%o a\\ b\n",
        )?;
        s.env
            .write_file("two.conf", "1 echo one %t %o\n0 echo zero %t %o\n")?;
        s.env.write_file("short.conf", "0 echo only zero\n")?;
        s.env.write_file("dup.conf", "0-1 true\n1 false\n")?;
        s.env.write_file("wide.conf", "0-2 true\n* false\n")?;
        run_sorted(
            s,
            "srun -n 2 -l --multi-prog mp.conf tail (lines sorted)",
            &[
                "srun",
                "-n",
                "2",
                "-l",
                "--mem",
                "100",
                "--multi-prog",
                "mp.conf",
                "tail",
            ],
        )?;
        run_sorted(
            s,
            "srun --multi-prog two.conf without -n (lines sorted)",
            &["srun", "-l", "--mem", "100", "--multi-prog", "two.conf"],
        )?;
        s.run(
            "srun -n 2 --multi-prog short.conf",
            &["srun", "-n", "2", "--multi-prog", "short.conf"],
        )?;
        s.run(
            "srun -n 1 --multi-prog two.conf",
            &["srun", "-n", "1", "--multi-prog", "two.conf"],
        )?;
        s.run(
            "srun -n 2 --multi-prog dup.conf",
            &["srun", "-n", "2", "--multi-prog", "dup.conf"],
        )?;
        s.run(
            "srun -n 2 --multi-prog missing.conf",
            &["srun", "-n", "2", "--multi-prog", "missing.conf"],
        )?;
        run_sorted(
            s,
            "srun -n 2 --multi-prog wide.conf (a * after the ranks)",
            &["srun", "-n", "2", "--multi-prog", "wide.conf"],
        )?;
        Ok(())
    });
}
