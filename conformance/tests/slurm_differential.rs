//! Differential suite: the same Slurm cases run on the real Slurm 22.05 that `ci/slurm up`
//! starts and on a simulated cluster (`mock-cluster`) configured like it; their normalised
//! outputs, exit codes, output files and job states must be equal.
//!
//! Every case reads as: set up jobs, act (cancel, close stdin, wait), observe. The observations
//! are normalised (job ids, host names, timestamps, the working directory) and compared; a
//! mismatch fails the test with a diff, `-` real Slurm, `+` simulated cluster.
//!
//! The real side runs only when a real Slurm answers at `$SLURM_CONF`. When it does not, each
//! case says so loudly on stderr and does nothing, unless `CI=true` or `BATCHCI_REAL_SLURM=1`,
//! where it fails. The facts these cases pin are listed in `docs/slurm-observed.md`.
//!
//! The real cluster has one node with 2 CPUs and 8000 MB, and a job without `--mem` takes all of
//! the node's memory. Cases therefore take the node one at a time (`REAL_NODE`) and ask for
//! `-c 1 --mem 100` or similar, so that the one case that runs for minutes (the time limit, started
//! in the background by the first case) can hold one CPU and 100 MB while the others run.

mod differential;

use std::sync::{LazyLock, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use conformance::normalize::submitted_job_id;
use conformance::poll::poll_until;
use conformance::slurm_env::{FakeCluster, RunOptions};
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    ensure_walltime_started();
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

// ---------------------------------------------------------------------------------------------
// The time-limit case takes one to two minutes on the real Slurm (its limit check runs every
// 30 s or so and `sbatch --wait` polls at growing intervals). The first case to run starts it in
// the background (when this run selects it); `walltime_kills_the_job_and_sbatch_wait_returns_1`
// collects the result.

/// The background run of the time-limit case: its comparison result, once joined.
type BackgroundCase = JoinHandle<Result<(), String>>;

static WALLTIME: LazyLock<Mutex<Option<BackgroundCase>>> = LazyLock::new(|| Mutex::new(None));
static WALLTIME_STARTED: OnceLock<()> = OnceLock::new();

const WALLTIME_TEST: &str = "walltime_kills_the_job_and_sbatch_wait_returns_1";

/// Whether this run of the test binary selects the time-limit test (libtest's positional name
/// filters, `--exact` and `--skip`), so that a run of a few chosen cases does not leave a real
/// job and a simulated cluster behind when it exits.
fn walltime_selected() -> bool {
    const TAKES_VALUE: [&str; 6] = [
        "--test-threads",
        "--color",
        "--format",
        "--logfile",
        "--shuffle-seed",
        "-Z",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--skip" {
            if let Some(value) = args.get(i + 1) {
                skips.push(value.clone());
            }
            i += 2;
            continue;
        }
        if TAKES_VALUE.contains(&arg.as_str()) {
            i += 2;
            continue;
        }
        if !arg.starts_with('-') {
            filters.push(arg.clone());
        }
        i += 1;
    }
    let matches = |f: &String| {
        if exact {
            f == WALLTIME_TEST
        } else {
            WALLTIME_TEST.contains(f.as_str())
        }
    };
    (filters.is_empty() || filters.iter().any(matches)) && !skips.iter().any(matches)
}

fn ensure_walltime_started() {
    if !walltime_selected() {
        return;
    }
    WALLTIME_STARTED.get_or_init(|| {
        let handle = std::thread::spawn(|| {
            differential_result(
                "walltime",
                FakeCluster::mirroring_ci_slurm().with_time_scale(20.0),
                case_walltime,
            )
        });
        if let Ok(mut slot) = WALLTIME.lock() {
            *slot = Some(handle);
        }
    });
}

fn case_walltime(s: &mut Side) -> CaseResult {
    let argv = [
        "sbatch",
        "--wait",
        "-t",
        "1",
        "-c",
        "1",
        "--mem",
        "100",
        "-J",
        "walltime",
        "-o",
        "wall-%j.out",
        "--wrap",
        "echo started; exec sleep 600",
    ];
    let (running, id) = s.spawn_sbatch_wait(&argv)?;
    if s.is_real()
        && let Ok(mut jobs) = BACKGROUND_JOBS.lock()
    {
        jobs.push(id);
    }
    s.wait_for_state(id, &["RUNNING"])?;
    // From here on the case only waits; the node is free for the other cases.
    s.release_node();
    s.finish("sbatch --wait -t 1", &argv, running)?;
    s.record_file("output file", &format!("wall-{id}.out"));
    s.record_final_state("squeue -t all", id)?;
    s.record_scontrol(
        "scontrol",
        id,
        &["JobState", "Reason", "ExitCode", "TimeLimit"],
    )?;
    s.record_sacct("sacct", id, 2)?;
    Ok(())
}

#[test]
fn walltime_kills_the_job_and_sbatch_wait_returns_1() {
    ensure_walltime_started();
    let handle = WALLTIME.lock().ok().and_then(|mut slot| slot.take());
    let Some(handle) = handle else {
        panic!("the walltime case was not started");
    };
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(report)) => panic!("{report}"),
        Err(_) => panic!("the walltime case panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// Exit status passthrough.

#[test]
fn sbatch_wait_passes_exit_status_through() {
    differential(
        "sbatch_wait_exit_status",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let scripts = [
                "exit 0",
                "echo out-line; echo err-line >&2; exit 3",
                "exit 255",
                "exit 256",
                "exit 300",
                "kill -TERM $$",
                "kill -KILL $$",
            ];
            let mut started = Vec::new();
            for (n, script) in scripts.iter().enumerate() {
                let output = format!("exit-{n}-%j.out");
                let argv: Vec<String> = [
                    "sbatch", "--wait", "-c", "1", "--mem", "100", "-o", &output, "--wrap", script,
                ]
                .iter()
                .map(|a| a.to_string())
                .collect();
                let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
                let running = s.env.spawn(&argv_ref)?;
                started.push((argv, running));
            }
            let mut ids = Vec::new();
            for (n, (argv, running)) in started.into_iter().enumerate() {
                let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
                let out = s.finish(&format!("script `{}`", scripts[n]), &argv_ref, running)?;
                ids.push((n, submitted_job_id(&out.stdout)));
            }
            for (n, id) in ids {
                let Some(id) = id else { continue };
                s.record_file(
                    &format!("output of `{}`", scripts[n]),
                    &format!("exit-{n}-{id}.out"),
                );
                s.record_scontrol(
                    &format!("scontrol of `{}`", scripts[n]),
                    id,
                    &["JobState", "Reason", "ExitCode"],
                )?;
                s.record_sacct(&format!("sacct of `{}`", scripts[n]), id, 2)?;
            }
            Ok(())
        },
    );
}

/// When `sbatch --wait` returns: real sbatch is not told of the job's end, it looks at the job
/// after sleeping 2 s, then 8 s, then 32 s at a time (Slurm 22.05 `src/sbatch/sbatch.c`
/// `_job_wait()`: the sleep grows fourfold while below `MinJobAge / 2` and
/// `MAX_WAIT_SLEEP_TIME` 32; `MinJobAge=300` here), so it returns 2, 10, 42, ... s after the
/// submission. A job that ends at once is seen at 2 s; `sleep 3` is still running at 2 s and
/// seen at 10 s. Both sides measure the wall time of the command.
#[test]
fn sbatch_wait_returns_at_its_polling_times() {
    differential(
        "sbatch_wait_polling_times",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            // The jobs run one after the other: the background time-limit case may hold the
            // node's other CPU, and a job that pends would be seen later.
            for (script, from, to) in [("true", 2.0, 4.0), ("sleep 3", 10.0, 12.0)] {
                // The job before may still hold its CPU while it completes (`sbatch --wait`
                // returns once the job's state is final, before its epilog is done); a job
                // submitted then pends until the controller's next scheduling pass.
                if s.is_real() {
                    s.wait_for_quiet_node();
                }
                let argv = [
                    "sbatch",
                    "--wait",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    script,
                ];
                let started = std::time::Instant::now();
                s.run(&format!("sbatch --wait `{script}`"), &argv)?;
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "{}: `sbatch --wait --wrap '{script}'` returned after {secs:.2} s",
                    s.env.kind()
                );
                let when = if (from..to).contains(&secs) {
                    format!("within [{from} s, {to} s) of the submission")
                } else {
                    format!("after {secs:.2} s, outside [{from} s, {to} s)")
                };
                s.note(&format!("`{script}` returned"), when);
            }
            Ok(())
        },
    );
}

#[test]
fn srun_passes_exit_status_through() {
    differential("srun_exit_status", FakeCluster::mirroring_ci_slurm(), |s| {
        s.run(
            "srun hostname",
            &["srun", "-c", "1", "--mem", "100", "hostname"],
        )?;
        s.run(
            "srun exit 7",
            &[
                "srun",
                "-c",
                "1",
                "--mem",
                "100",
                "bash",
                "-c",
                "echo before; exit 7",
            ],
        )?;
        s.run(
            "srun exit 300",
            &["srun", "-c", "1", "--mem", "100", "bash", "-c", "exit 300"],
        )?;
        s.run(
            "srun kill -TERM",
            &[
                "srun",
                "-c",
                "1",
                "--mem",
                "100",
                "bash",
                "-c",
                "kill -TERM $$",
            ],
        )?;
        s.run(
            "salloc true",
            &["salloc", "-c", "1", "--mem", "100", "true"],
        )?;
        s.run(
            "salloc exit 5",
            &["salloc", "-c", "1", "--mem", "100", "bash", "-c", "exit 5"],
        )?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Cancellation.

#[test]
fn scancel_of_a_running_job() {
    differential("scancel_running", FakeCluster::mirroring_ci_slurm(), |s| {
        let argv = [
            "sbatch",
            "--wait",
            "-c",
            "1",
            "--mem",
            "100",
            "-J",
            "to-cancel",
            "-o",
            "cancel-%j.out",
            "--wrap",
            "echo started; exec sleep 600",
        ];
        let (running, id) = s.spawn_sbatch_wait(&argv)?;
        s.wait_for_state(id, &["RUNNING"])?;
        let file = format!("cancel-{id}.out");
        poll_until(STATE_DEADLINE, || {
            s.env
                .read_file(&file)
                .is_some_and(|t| t.contains("started"))
        });
        s.run("scancel", &["scancel", &id.to_string()])?;
        s.finish("sbatch --wait", &argv, running)?;
        s.record_file("output file", &file);
        s.run(
            "squeue -h -j (finished)",
            &["squeue", "-h", "-j", &id.to_string()],
        )?;
        s.record_final_state("squeue -t all", id)?;
        s.record_scontrol("scontrol", id, &["JobState", "Reason", "ExitCode"])?;
        s.record_sacct("sacct", id, 2)?;
        if real_accounting() {
            // What an executor asks once `sbatch --wait` has returned.
            let id_text = id.to_string();
            s.run(
                "sacct -X --format",
                &[
                    "sacct",
                    "-X",
                    "-j",
                    &id_text,
                    "-n",
                    "-P",
                    "--format",
                    "State,ExitCode",
                ],
            )?;
            // Right after a job ends, real slurmdbd may still hold a provisional job row
            // (JobName `allocation`, no partition, ReqMem `16?`): wait for the full record.
            let argv = [
                "sacct",
                "-j",
                &id_text,
                "-n",
                "-P",
                "-o",
                "JobID,JobName,Partition,Account,AllocCPUS,ReqMem,State,ExitCode",
            ];
            let out = s.env.run_until(&argv, SACCT_DEADLINE, |out| {
                out.stdout
                    .lines()
                    .next()
                    .is_some_and(|row| row.split('|').nth(2).is_some_and(|p| !p.is_empty()))
            })?;
            s.record("sacct more fields", &argv, &out);
        }
        Ok(())
    });
}

#[test]
fn scancel_of_a_pending_job() {
    differential("scancel_pending", FakeCluster::mirroring_ci_slurm(), |s| {
        let filler = s.fill_node()?;
        let argv = [
            "sbatch",
            "--wait",
            "-c",
            "1",
            "--mem",
            "200",
            "-J",
            "pending",
            "-o",
            "pending-%j.out",
            "--wrap",
            "echo should-not-run",
        ];
        let (running, id) = s.spawn_sbatch_wait(&argv)?;
        s.wait_for_pending_reason(id)?;
        s.record_state("squeue before scancel", id)?;
        s.run("scancel", &["scancel", &id.to_string()])?;
        let result = s.finish("sbatch --wait", &argv, running);
        s.cancel_quietly(filler);
        result?;
        s.record_files("files");
        s.record_final_state("squeue -t all", id)?;
        s.record_scontrol("scontrol", id, &["JobState", "Reason", "ExitCode"])?;
        s.record_sacct("sacct", id, 1)?;
        Ok(())
    });
}

#[test]
fn srun_cancelled_while_running_and_while_pending() {
    differential("srun_cancel", FakeCluster::mirroring_ci_slurm(), |s| {
        let argv = [
            "srun",
            "-c",
            "1",
            "--mem",
            "100",
            "-J",
            "srun-cancel",
            "bash",
            "-c",
            "echo started; exec sleep 600",
        ];
        let running = s.env.spawn(&argv)?;
        poll_until(STATE_DEADLINE, || {
            running.stdout_so_far().contains("started")
        });
        let id = job_of_name(s, "srun-cancel")?;
        s.run("scancel running srun", &["scancel", &id.to_string()])?;
        // srun's own message and the one slurmstepd forwards race each other on the real
        // Slurm: compare the lines, not their order.
        let mut out = running.wait()?;
        let mut lines: Vec<&str> = out.stderr.lines().collect();
        lines.sort_unstable();
        out.stderr = lines.join("\n");
        s.record("srun (cancelled while running; stderr sorted)", &argv, &out);
        s.record_final_state("squeue -t all (running srun)", id)?;

        let filler = s.fill_node()?;
        let argv = [
            "srun",
            "-c",
            "1",
            "--mem",
            "200",
            "-J",
            "srun-pending",
            "true",
        ];
        let running = s.env.spawn(&argv)?;
        poll_until(STATE_DEADLINE, || {
            running.stderr_so_far().contains("queued and waiting")
        });
        let id = job_of_name(s, "srun-pending")?;
        s.run("scancel pending srun", &["scancel", &id.to_string()])?;
        let result = s.finish("srun (cancelled while pending)", &argv, running);
        s.cancel_quietly(filler);
        result?;
        s.record_final_state("squeue -t all (pending srun)", id)?;
        Ok(())
    });
}

/// The id of this case's only pending or running job named `name`.
fn job_of_name(s: &mut Side, name: &str) -> Result<u64, CaseError> {
    let mut id = None;
    poll_until(STATE_DEADLINE, || {
        id = s
            .env
            .run(&["squeue", "-h", "-n", name, "-o", "%i"])
            .ok()
            .and_then(|o| o.stdout.trim().parse().ok());
        id.is_some()
    });
    match id {
        Some(id) => {
            s.norm.learn(id);
            Ok(id)
        }
        None => fail(format!("no job named {name} appeared in squeue")),
    }
}

// ---------------------------------------------------------------------------------------------
// Refused submissions.

#[test]
fn unknown_options_are_refused() {
    differential("unknown_option", FakeCluster::mirroring_ci_slurm(), |s| {
        s.run("sbatch --bogus", &["sbatch", "--bogus", "--wrap", "true"])?;
        s.run("srun --bogus", &["srun", "--bogus", "true"])?;
        s.run("sbatch -t abc", &["sbatch", "-t", "abc", "--wrap", "true"])?;
        s.run("sbatch nonexistent.sh", &["sbatch", "nonexistent.sh"])?;
        s.run_with(
            "sbatch without #!",
            &["sbatch"],
            &RunOptions {
                stdin: Some(b"echo no-shebang\n".to_vec()),
                ..RunOptions::default()
            },
        )?;
        s.run_with(
            "bad #SBATCH directive",
            &["sbatch"],
            &RunOptions {
                stdin: Some(b"#!/bin/bash\n#SBATCH --bogus-directive\necho x\n".to_vec()),
                ..RunOptions::default()
            },
        )?;
        s.record_files("files");
        Ok(())
    });
}

#[test]
fn unknown_partition_is_refused() {
    differential(
        "unknown_partition",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.run(
                "sbatch -p nope",
                &["sbatch", "-p", "nope", "--wrap", "true"],
            )?;
            s.run("srun -p nope", &["srun", "-p", "nope", "true"])?;
            s.run("salloc -p nope", &["salloc", "-p", "nope", "true"])?;
            Ok(())
        },
    );
}

#[test]
fn unsatisfiable_memory_is_refused() {
    differential(
        "unsatisfiable_memory",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.run(
                "sbatch --mem 100000",
                &["sbatch", "--mem", "100000", "--wrap", "true"],
            )?;
            s.run(
                "sbatch --mem 9000",
                &["sbatch", "--mem", "9000", "--wrap", "true"],
            )?;
            s.run("srun --mem 100000", &["srun", "--mem", "100000", "true"])?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Queue.

#[test]
fn pending_reasons() {
    differential("pending_reasons", FakeCluster::mirroring_ci_slurm(), |s| {
        let filler = s.fill_node()?;
        let mut ids = vec![filler];
        let waiters: [(&str, &[&str]); 4] = [
            ("first waiter", &["-c", "1", "--mem", "200"]),
            ("second waiter", &["-c", "1", "--mem", "200"]),
            ("more cpus than the node", &["-c", "4", "--mem", "200"]),
            (
                "above the partition time limit",
                &["-p", "gitlab-ci", "-t", "120", "-c", "1", "--mem", "200"],
            ),
        ];
        let mut outcome = Ok(());
        for (key, opts) in waiters {
            let mut argv = vec!["sbatch", "-o", "/dev/null"];
            argv.extend_from_slice(opts);
            argv.extend_from_slice(&["--wrap", "true"]);
            match s.submit(key, &argv) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if outcome.is_ok() {
            for id in &ids[1..] {
                if let Err(e) = s.wait_for_pending_reason(*id) {
                    outcome = Err(e);
                    break;
                }
            }
        }
        // Each waiter's settled reason (the first pass may show another one, e.g. Priority
        // before Resources, PartitionConfig before PartitionTimeLimit).
        let settled = [
            "Resources",
            "Priority",
            "PartitionConfig",
            "PartitionTimeLimit",
        ];
        for (id, reason) in ids[1..].iter().zip(settled) {
            if outcome.is_ok() {
                outcome = s.wait_for_reason(*id, reason);
            }
        }
        if outcome.is_ok() {
            let list: Vec<String> = ids.iter().map(u64::to_string).collect();
            let list = list.join(",");
            outcome = s
                .run(
                    "squeue %i|%T|%r",
                    &["squeue", "-h", "-j", &list, "-o", "%i|%T|%r", "-S", "i"],
                )
                .map(|_| ());
            if outcome.is_ok() {
                outcome = s.record_scontrol(
                    "scontrol of the second waiter",
                    ids[2],
                    &["JobState", "Reason"],
                );
            }
        }
        for id in ids.iter().rev() {
            s.cancel_quietly(*id);
        }
        outcome
    });
}

#[test]
fn squeue_scontrol_and_scancel_on_unknown_and_finished_jobs() {
    differential(
        "unknown_and_finished_jobs",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.run("squeue -j 999999", &["squeue", "-j", "999999"])?;
            s.run("squeue -h -j 999999", &["squeue", "-h", "-j", "999999"])?;
            s.run("squeue -j abc", &["squeue", "-j", "abc"])?;
            s.run(
                "scontrol show job 999999",
                &["scontrol", "show", "job", "999999"],
            )?;
            s.run("scancel 999999", &["scancel", "999999"])?;
            s.run("scancel abc", &["scancel", "abc"])?;
            s.run("scancel (no id)", &["scancel"])?;
            let id = s.submit(
                "sbatch --wait",
                &[
                    "sbatch",
                    "--wait",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "exit 3",
                ],
            )?;
            let id = id.to_string();
            s.run("squeue -j (finished)", &["squeue", "-j", &id])?;
            s.run("squeue -h -j (finished)", &["squeue", "-h", "-j", &id])?;
            s.run(
                "squeue -h -t all -j (finished)",
                &["squeue", "-h", "-t", "all", "-j", &id, "-o", "%i %T %r"],
            )?;
            s.run("scancel (finished)", &["scancel", &id])?;
            s.run(
                "scancel -s TERM (finished)",
                &["scancel", "-s", "TERM", &id],
            )?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// srun as the docker+slurm placeholder.

const PLACEHOLDER: &str = r#"echo "gitlab-runner: hostname: $(hostname)"; echo "gitlab-runner: cpuset: $(taskset -cp $$ | sed -e "s/.*: //")"; exec cat"#;

/// Keeps the placeholder's lines comparable: the cpuset becomes its number of CPUs (which CPU
/// Slurm picks depends on what else runs).
fn cpuset_as_count(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("gitlab-runner: cpuset: ") {
            Some(set) => format!("gitlab-runner: cpuset: <{} cpu(s)>", cpu_count(set)),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn cpu_count(set: &str) -> usize {
    set.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(part.trim().parse::<usize>().is_ok()),
        })
        .sum()
}

#[test]
fn srun_placeholder_starts_at_once_and_ends_when_stdin_closes() {
    differential("srun_placeholder", FakeCluster::mirroring_ci_slurm(), |s| {
        let argv = [
            "srun",
            "-c",
            "1",
            "--mem",
            "100",
            "-J",
            "placeholder",
            "bash",
            "-c",
            PLACEHOLDER,
        ];
        let mut running = s.env.spawn(&argv)?;
        let ready = poll_until(STATE_DEADLINE, || {
            running.stdout_so_far().contains("cpuset")
        });
        s.note("placeholder reported", ready.to_string());
        let id = job_of_name(s, "placeholder")?;
        s.record_state("squeue while it runs", id)?;
        running.write_stdin(b"line1\nline2\n")?;
        let echoed = poll_until(STATE_DEADLINE, || running.stdout_so_far().contains("line2"));
        s.note("stdin echoed while running", echoed.to_string());
        s.note(
            "still running before EOF",
            (!running.has_exited()).to_string(),
        );
        running.close_stdin();
        let out = running.wait()?;
        let mut out = out;
        out.stdout = cpuset_as_count(&out.stdout);
        s.record("srun placeholder", &argv, &out);
        s.run(
            "squeue -h -j (released)",
            &["squeue", "-h", "-j", &id.to_string()],
        )?;
        s.record_final_state("squeue -t all", id)?;
        Ok(())
    });
}

#[test]
fn srun_placeholder_waits_for_resources() {
    differential(
        "srun_placeholder_waits",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let filler = s.fill_node()?;
            let argv = [
                "srun",
                "-c",
                "1",
                "--mem",
                "200",
                "-J",
                "placeholder",
                "bash",
                "-c",
                PLACEHOLDER,
            ];
            let mut running = s.env.spawn(&argv)?;
            let queued = poll_until(STATE_DEADLINE, || {
                running
                    .stderr_so_far()
                    .contains("queued and waiting for resources")
            });
            s.note("queued message seen", queued.to_string());
            let stderr_while_waiting = s.norm.text(&running.stderr_so_far());
            s.note("stderr while waiting", stderr_while_waiting);
            let id = job_of_name(s, "placeholder")?;
            s.wait_for_pending_reason(id)?;
            s.run(
                "squeue while waiting",
                &["squeue", "-h", "-j", &id.to_string(), "-o", "%T|%r"],
            )?;
            s.run("scancel filler", &["scancel", &filler.to_string()])?;
            let ready = poll_until(STATE_DEADLINE, || {
                running.stdout_so_far().contains("cpuset")
            });
            s.note(
                "placeholder reported after the filler ended",
                ready.to_string(),
            );
            running.write_stdin(b"after-allocation\n")?;
            running.close_stdin();
            let mut out = running.wait()?;
            out.stdout = cpuset_as_count(&out.stdout);
            s.record("srun placeholder", &argv, &out);
            s.record_final_state("squeue -t all", id)?;
            Ok(())
        },
    );
}

#[test]
fn salloc_waits_for_resources() {
    differential("salloc_waits", FakeCluster::mirroring_ci_slurm(), |s| {
        let filler = s.fill_node()?;
        let argv = [
            "salloc",
            "-c",
            "1",
            "--mem",
            "200",
            "-J",
            "alloc",
            "bash",
            "-c",
            "echo inside; exit 4",
        ];
        let running = s.env.spawn(&argv)?;
        poll_until(STATE_DEADLINE, || {
            running
                .stderr_so_far()
                .contains("queued and waiting for resources")
        });
        s.run("scancel filler", &["scancel", &filler.to_string()])?;
        s.finish("salloc", &argv, running)?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Output files, directives, environment.

#[test]
fn output_file_name_patterns() {
    differential("output_patterns", FakeCluster::mirroring_ci_slurm(), |s| {
        let common = ["sbatch", "--wait", "-c", "1", "--mem", "100"];
        let cases: [(&str, &[&str]); 5] = [
            (
                "all codes",
                &[
                    "-J",
                    "pat",
                    "-o",
                    "pat-%j-%x-%u-%N-%%-%8j.out",
                    "--wrap",
                    "echo all",
                ],
            ),
            ("escaped", &["-o", r"esc-\%j.out", "--wrap", "echo escaped"]),
            (
                "default name",
                &["--wrap", "echo default; echo to-stderr >&2"],
            ),
            (
                "separate stderr",
                &[
                    "-o",
                    "o-%j.out",
                    "-e",
                    "e-%j.err",
                    "--wrap",
                    "echo out; echo err >&2",
                ],
            ),
            (
                "-D with relative -o",
                &[
                    "-D",
                    "sub",
                    "-o",
                    "in-sub-%j.out",
                    "--wrap",
                    "echo in-sub; pwd",
                ],
            ),
        ];
        std::fs::create_dir_all(s.env.cwd().join("sub"))
            .map_err(|e| CaseError(format!("mkdir sub: {e}")))?;
        for (key, opts) in cases {
            let mut argv = common.to_vec();
            argv.extend_from_slice(opts);
            s.run(key, &argv)?;
        }
        s.record_files("files");
        for file in s.env.list_files() {
            let key = format!("content of {}", s.norm.name(&file));
            s.record_file(&key, &file);
        }
        Ok(())
    });
}

#[test]
fn sbatch_directives_and_script_arguments() {
    differential(
        "sbatch_directives",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.env.write_file(
            "job.sh",
            "#!/bin/bash\n\
             #SBATCH --job-name=from-directive\n\
             #SBATCH -o directive-%x-%j.out\n\
             #SBATCH -e directive-%x-%j.err\n\
             #SBATCH --partition=gitlab-ci\n\
             #SBATCH --time=00:02:00\n\
             #SBATCH -c 1\n\
             #SBATCH --mem=150\n\
             echo \"name=$SLURM_JOB_NAME part=$SLURM_JOB_PARTITION cpus=$SLURM_CPUS_ON_NODE mem=$SLURM_MEM_PER_NODE\"\n\
             echo to-stderr >&2\n\
             echo \"args=$# [$1] [$2]\"\n",
        )?;
            let id = s.submit("directives", &["sbatch", "--wait", "job.sh", "a1", "b 2"])?;
            s.record_scontrol(
                "scontrol",
                id,
                &[
                    "JobName",
                    "Partition",
                    "TimeLimit",
                    "NumCPUs",
                    "StdOut",
                    "StdErr",
                    "WorkDir",
                ],
            )?;
            s.submit(
                "command line wins",
                &["sbatch", "--wait", "-J", "cli-wins", "-t", "3", "job.sh"],
            )?;
            s.record_files("files");
            for file in s.env.list_files() {
                if file != "job.sh" {
                    let key = format!("content of {}", s.norm.name(&file));
                    s.record_file(&key, &file);
                }
            }
            Ok(())
        },
    );
}

/// The job's `SLURM*` variables, one per line, normalised; volatile values become placeholders.
const ENV_DUMP: &str = "env | grep -E '^SLURM' | grep -v -E '^SLURM_CONF=' | sort; echo PWD=$PWD; echo MYVAR=${MYVAR-unset} EXTRA=${EXTRA-unset}";

fn normalize_env_dump(s: &mut Side, text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some(("SLURM_TASK_PID", _)) => "SLURM_TASK_PID=<PID>".to_string(),
            Some(("SLURM_WORKING_CLUSTER", v)) => {
                let cluster = v.split(':').next().unwrap_or("");
                format!("SLURM_WORKING_CLUSTER={cluster}:<controller address and protocol>")
            }
            _ => s.norm.text(line),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn job_environment() {
    differential("job_environment", FakeCluster::mirroring_ci_slurm(), |s| {
        let variants: [(&str, &[&str]); 5] = [
            (
                "plain --wrap",
                &["-c", "1", "--mem", "100", "-o", "plain.out"],
            ),
            (
                "-c 1 -n 1 --mem 500 -p gitlab-ci -J env-job",
                &[
                    "-c",
                    "1",
                    "-n",
                    "1",
                    "--mem",
                    "500",
                    "-p",
                    "gitlab-ci",
                    "-J",
                    "env-job",
                    "-o",
                    "opts.out",
                ],
            ),
            (
                "--export=NONE",
                &["--export=NONE", "-c", "1", "--mem", "100", "-o", "none.out"],
            ),
            (
                "--export=ALL,EXTRA=x",
                &[
                    "--export=ALL,EXTRA=x",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "all.out",
                ],
            ),
            (
                "--mem-per-cpu 100 -N 1 -A root -q normal",
                &[
                    "--mem-per-cpu",
                    "100",
                    "-N",
                    "1",
                    "-A",
                    "root",
                    "-q",
                    "normal",
                    "-c",
                    "1",
                    "-o",
                    "per-cpu.out",
                ],
            ),
        ];
        let files = [
            "plain.out",
            "opts.out",
            "none.out",
            "all.out",
            "per-cpu.out",
        ];
        for ((key, opts), file) in variants.iter().zip(files) {
            let mut argv = vec!["sbatch", "--wait"];
            argv.extend_from_slice(opts);
            argv.extend_from_slice(&["--wrap", ENV_DUMP]);
            s.run_with(
                key,
                &argv,
                &RunOptions {
                    env: vec![("MYVAR".into(), "from-submitter".into())],
                    ..RunOptions::default()
                },
            )?;
            let dump = s
                .env
                .read_file(file)
                .unwrap_or_else(|| "(no such file)".into());
            let dump = normalize_env_dump(s, &dump);
            s.note(&format!("environment of {key}"), dump);
        }
        // A script read from stdin: the job is named `sbatch` but SLURM_JOB_NAME is not set.
        let script = format!("#!/bin/bash\n{ENV_DUMP}\n");
        let out = s.run_with(
            "script on stdin",
            &["sbatch", "--wait", "-c", "1", "--mem", "100"],
            &RunOptions {
                stdin: Some(script.into_bytes()),
                ..RunOptions::default()
            },
        )?;
        if let Some(id) = submitted_job_id(&out.stdout) {
            let dump = s
                .env
                .read_file(format!("slurm-{id}.out"))
                .unwrap_or_else(|| "(no such file)".into());
            let dump = normalize_env_dump(s, &dump);
            s.note("environment of a script on stdin", dump);
            s.record_scontrol("scontrol of the stdin job", id, &["JobName"])?;
        }
        Ok(())
    });
}

#[test]
fn chdir_and_export_reach_the_job() {
    differential("chdir_and_export", FakeCluster::mirroring_ci_slurm(), |s| {
        std::fs::create_dir_all(s.env.cwd().join("wd"))
            .map_err(|e| CaseError(format!("mkdir wd: {e}")))?;
        let script = "echo PWD=$PWD SUBMIT_DIR=$SLURM_SUBMIT_DIR; echo MYVAR=${MYVAR-unset} EXTRA=${EXTRA-unset}";
        let variants: [(&str, &[&str]); 3] = [
            ("-D wd", &["-D", "wd", "-o", "d.out"]),
            ("--export=EXTRA=y", &["--export=EXTRA=y", "-o", "e.out"]),
            ("--export=NONE", &["--export=NONE", "-o", "n.out"]),
        ];
        for (key, opts) in variants {
            let mut argv = vec!["sbatch", "--wait", "-c", "1", "--mem", "100"];
            argv.extend_from_slice(opts);
            argv.extend_from_slice(&["--wrap", script]);
            s.run_with(
                key,
                &argv,
                &RunOptions {
                    env: vec![("MYVAR".into(), "from-submitter".into())],
                    ..RunOptions::default()
                },
            )?;
        }
        s.record_files("files");
        s.record_file("-D wd output", "wd/d.out");
        s.record_file("--export=EXTRA=y output", "e.out");
        s.record_file("--export=NONE output", "n.out");
        Ok(())
    });
}

#[test]
fn parsable_quiet_and_stdin_submission() {
    differential(
        "parsable_quiet_stdin",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "--parsable",
                &[
                    "sbatch",
                    "--parsable",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            s.run(
                "-Q",
                &[
                    "sbatch",
                    "-Q",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            s.run_with(
                "script on stdin",
                &["sbatch", "--wait", "-c", "1", "--mem", "100"],
                &RunOptions {
                    stdin: Some(b"#!/bin/bash\necho from-stdin\n".to_vec()),
                    ..RunOptions::default()
                },
            )?;
            s.record_files("files");
            for file in s.env.list_files() {
                let key = format!("content of {}", s.norm.name(&file));
                s.record_file(&key, &file);
            }
            s.wait_for_state(id, &["COMPLETED"])?;
            s.record_scontrol(
                "scontrol of the --parsable job",
                id,
                &["JobName", "JobState", "ExitCode", "StdOut"],
            )?;
            Ok(())
        },
    );
}

#[test]
fn scontrol_and_squeue_describe_a_running_job() {
    differential(
        "running_job_records",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch",
                &[
                    "sbatch",
                    "-c",
                    "1",
                    "--mem",
                    "300",
                    // Without -t the limit shows as UNLIMITED or 365-00:00:00, depending on whether
                    // the main or the backfill scheduler started the job (slurm-observed.md, 16).
                    "-t",
                    "30",
                    "-J",
                    "runner",
                    "-o",
                    "run-%j.out",
                    "--wrap",
                    "exec sleep 600",
                ],
            )?;
            let outcome = (|| {
                s.wait_for_state(id, &["RUNNING"])?;
                let id_text = id.to_string();
                s.run(
                    "squeue -o",
                    &[
                        "squeue",
                        "-h",
                        "-j",
                        &id_text,
                        "-o",
                        "%i|%j|%T|%t|%r|%P|%D|%C|%m|%l|%u|%N",
                    ],
                )?;
                let joined = format!("-j{id_text}");
                s.run(
                    "squeue -h -o %T -j<id>",
                    &["squeue", "-h", "-o", "%T", &joined],
                )?;
                s.run(
                    "squeue filters",
                    &[
                        "squeue", "-h", "-u", "root", "-t", "R", "-n", "runner", "-o", "%j|%T",
                    ],
                )?;
                s.run(
                    "squeue --me",
                    &["squeue", "--me", "-h", "-n", "runner", "-o", "%j|%t"],
                )?;
                s.run(
                    "squeue -O",
                    &["squeue", "-h", "-j", &id_text, "-O", "Name,State,Partition"],
                )?;
                let out = s.env.run(&["squeue", "-j", &id_text])?;
                // Column widths depend on the id's length: compare the header as printed and the
                // rows column by column.
                let mut lines = out.stdout.lines();
                let header = lines.next().unwrap_or("").to_string();
                let rows: Vec<String> = lines.map(|l| default_squeue_row(&mut s.norm, l)).collect();
                let stderr = s.norm.text(&out.stderr);
                let status = out.status_text();
                s.note(
                    "squeue default format",
                    format!("{header}\n{}\n[{status}]\n{stderr}", rows.join("\n")),
                );
                s.record_scontrol(
                    "scontrol",
                    id,
                    &[
                        "JobId",
                        "JobName",
                        "JobState",
                        "Reason",
                        "ExitCode",
                        "TimeLimit",
                        "Partition",
                        "NodeList",
                        "BatchHost",
                        "NumNodes",
                        "NumCPUs",
                        "NumTasks",
                        "CPUs/Task",
                        "TRES",
                        "MinMemoryNode",
                        "StdIn",
                        "StdOut",
                        "StdErr",
                        "WorkDir",
                    ],
                )?;
                let out = s.env.run(&["scontrol", "show", "job", &id_text])?;
                s.note("scontrol show job layout", scontrol_layout(&out));
                // Static partition facts only: the node's state depends on what else runs.
                s.run("sinfo -o", &["sinfo", "-h", "-o", "%P|%a|%l|%D|%c|%m|%N"])?;
                Ok(())
            })();
            s.cancel_quietly(id);
            outcome
        },
    );
}

#[test]
fn unwritable_output_file_fails_the_job() {
    differential(
        "unwritable_output",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch --wait -o /nonexistent/dir/x.out",
                &[
                    "sbatch",
                    "--wait",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/nonexistent/dir/x.out",
                    "--wrap",
                    "echo never-seen",
                ],
            )?;
            s.record_final_state("squeue -t all", id)?;
            s.record_scontrol("scontrol", id, &["JobState", "Reason", "ExitCode"])?;
            s.record_sacct("sacct", id, 2)?;
            Ok(())
        },
    );
}

/// Every `-j` of sacct adds to the list of jobs: submitit polls `sacct -o JobID,State,NodeList
/// --parsable2 -j A -j B` with one `-j` per job it follows (fact 59 of docs/slurm-observed.md).
#[test]
fn sacct_with_several_job_options() {
    differential("sacct_several_j", FakeCluster::mirroring_ci_slurm(), |s| {
        let mut ids = Vec::new();
        for (key, script) in [("sbatch true", "true"), ("sbatch false", "false")] {
            ids.push(s.submit(
                key,
                &[
                    "sbatch",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    script,
                ],
            )?);
        }
        for id in &ids {
            s.wait_until_finished(*id)?;
        }
        if !real_accounting() {
            loud("sacct_several_j NOT COMPARED: the real Slurm runs without accounting");
            return Ok(());
        }
        let (a, b) = (ids[0].to_string(), ids[1].to_string());
        let argv = [
            "sacct",
            "-o",
            "JobID,State,ExitCode",
            "--parsable2",
            "-j",
            &a,
            "-j",
            &b,
        ];
        let out = s.env.run_until(&argv, SACCT_DEADLINE, |out| {
            out.stdout.lines().count() == 5
                && !out.stdout.contains("|RUNNING|")
                && !out.stdout.contains("|PENDING|")
        })?;
        s.record("sacct -j A -j B", &argv, &out);
        Ok(())
    });
}

#[test]
fn scancel_options() {
    differential("scancel_options", FakeCluster::mirroring_ci_slurm(), |s| {
        // The batch shell traps USR1; `scancel -s USR1` without `--batch` signals the job's
        // steps (a batch job without steps: what happens is what this case pins).
        let script = "trap 'echo got-USR1' USR1; echo started; while :; do sleep 1; done";
        let id = s.submit(
            "sbatch",
            &[
                "sbatch",
                "-c",
                "1",
                "--mem",
                "100",
                "-J",
                "signalled",
                "-o",
                "sig-%j.out",
                "--wrap",
                script,
            ],
        )?;
        s.wait_for_state(id, &["RUNNING"])?;
        let file = format!("sig-{id}.out");
        poll_until(STATE_DEADLINE, || {
            s.env
                .read_file(&file)
                .is_some_and(|t| t.contains("started"))
        });
        let id_text = id.to_string();
        s.run(
            "scancel -b -s USR1",
            &["scancel", "-b", "-s", "USR1", &id_text],
        )?;
        let got = poll_until(Duration::from_secs(10), || {
            s.env
                .read_file(&file)
                .is_some_and(|t| t.contains("got-USR1"))
        });
        s.note("batch shell got USR1", got.to_string());
        s.run(
            "squeue after USR1",
            &["squeue", "-h", "-j", &id_text, "-o", "%T"],
        )?;
        s.run(
            "scancel -n (wrong name)",
            &["scancel", "-n", "no-such-name"],
        )?;
        s.run(
            "squeue after wrong name",
            &["squeue", "-h", "-j", &id_text, "-o", "%T"],
        )?;
        s.run("scancel -n", &["scancel", "-n", "signalled"])?;
        s.record_final_state("squeue -t all", id)?;
        s.run("scancel -Q unknown", &["scancel", "-Q", "999999"])?;
        s.run("scancel -v finished", &["scancel", "-v", &id_text])?;
        Ok(())
    });
}

#[test]
fn time_limit_formats() {
    differential(
        "time_limit_formats",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            // Held jobs never start, so the limits are only parsed and shown.
            let limits = [
                "0",
                "90",
                "5:30",
                "1:30:00",
                "2-0",
                "1-2:3",
                "1-2:3:4",
                "UNLIMITED",
            ];
            for limit in limits {
                let key = format!("-t {limit}");
                let argv = [
                    "sbatch",
                    "-H",
                    "-t",
                    limit,
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ];
                let out = s.run(&key, &argv)?;
                if let Some(id) = submitted_job_id(&out.stdout) {
                    s.record_scontrol(
                        &format!("{key}: scontrol"),
                        id,
                        &["JobState", "Reason", "TimeLimit"],
                    )?;
                    let id_text = id.to_string();
                    s.run(
                        &format!("{key}: squeue %l"),
                        &["squeue", "-h", "-j", &id_text, "-o", "%l|%r"],
                    )?;
                    s.cancel_quietly(id);
                }
            }
            s.run(
                "-t above the partition limit, held",
                &[
                    "sbatch",
                    "-H",
                    "-p",
                    "gitlab-ci",
                    "-t",
                    "61",
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            Ok(())
        },
    );
}

#[test]
fn output_is_written_live_and_stdin_is_dev_null() {
    differential(
        "live_output_and_stdin",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            // The job writes a first line, then waits for a file the case creates: the executor's
            // tailer relies on seeing output while the job still runs.
            let marker = s.env.cwd().join("go-on");
            let marker_text = marker.to_string_lossy().into_owned();
            let script = format!(
                "echo first; while [ ! -e '{marker_text}' ]; do sleep 0.2; done; \
             cat; echo cat-rc=$?; readlink /proc/$$/fd/0; echo second"
            );
            let argv = [
                "sbatch",
                "--wait",
                "-c",
                "1",
                "--mem",
                "100",
                "-o",
                "live-%j.out",
                "--wrap",
                &script,
            ];
            let (running, id) = s.spawn_sbatch_wait(&argv)?;
            let file = format!("live-{id}.out");
            let seen = poll_until(STATE_DEADLINE, || {
                s.env.read_file(&file).is_some_and(|t| t.contains("first"))
            });
            s.note("first line seen before the job ends", seen.to_string());
            let state = s.state(id)?;
            s.note("state while the first line is there", state);
            std::fs::write(&marker, b"")
                .map_err(|e| CaseError(format!("creating {marker_text}: {e}")))?;
            s.finish("sbatch --wait", &argv, running)?;
            s.record_file("output file", &file);
            Ok(())
        },
    );
}

#[test]
fn output_and_error_file_combinations() {
    differential(
        "output_error_combinations",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            s.env.write_file("existing.out", "old content\n")?;
            s.env.write_file("appended.out", "old content\n")?;
            let script = "echo to-out; echo to-err >&2";
            let cases: [(&str, &[&str]); 4] = [
                ("-e only", &["-e", "only-err-%j.err"]),
                (
                    "-o and -e the same file",
                    &["-o", "same-%j.log", "-e", "same-%j.log"],
                ),
                ("-o an existing file", &["-o", "existing.out"]),
                (
                    "--open-mode=append",
                    &["-o", "appended.out", "--open-mode=append"],
                ),
            ];
            for (key, opts) in cases {
                let mut argv = vec!["sbatch", "--wait", "-c", "1", "--mem", "100"];
                argv.extend_from_slice(opts);
                argv.extend_from_slice(&["--wrap", script]);
                s.run(key, &argv)?;
            }
            s.record_files("files");
            for file in s.env.list_files() {
                let key = format!("content of {}", s.norm.name(&file));
                s.record_file(&key, &file);
            }
            Ok(())
        },
    );
}
