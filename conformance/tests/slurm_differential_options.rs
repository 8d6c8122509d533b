//! Differential cases for Slurm 22.05's option table: the same sbatch, srun and salloc
//! submissions on the real Slurm of `ci/slurm` and on a simulated cluster configured like it
//! (see `slurm_differential.rs` for how cases run). One case per class of the table in
//! `mock-schedulers/src/cli/slurm/options.rs`: modelled, recorded in `scontrol show job`,
//! accepted without effect, checked by the command, and refused for want of the feature.
//! The facts are listed in `docs/slurm-observed.md` ("Options").

mod differential;
use differential::*;

use conformance::slurm_env::{FakeCluster, RunOptions};

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// Held jobs take nothing from the node; the case cancels them when it ends.
const HELD: [&str; 4] = ["sbatch", "-H", "-o", "/dev/null"];

fn held(extra: &[&'static str]) -> Vec<&'static str> {
    let mut argv = HELD.to_vec();
    argv.extend_from_slice(extra);
    argv.extend(["--wrap", "true"]);
    argv
}

#[test]
fn options_without_effect_are_accepted_in_one_submission() {
    differential("options_accepted", FakeCluster::mirroring_ci_slurm(), |s| {
        let id = s.submit(
            "sbatch with many options",
            &held(&[
                "--wckey=mykey",
                "--spread-job",
                "--kill-on-invalid-dep=yes",
                "--distribution=block:cyclic",
                "--acctg-freq=30",
                "--cpu-freq=high",
                "--mail-type=END",
                "--gres=none",
                "--use-min-nodes",
                "--no-kill",
                "--reboot",
                "--overcommit",
                "--propagate",
                "--ignore-pbs",
                "--comment=c",
            ]),
        )?;
        s.record_scontrol("job record", id, &["JobState", "Reason", "Nice"])?;
        let common = [
            "-c",
            "1",
            "--mem",
            "100",
            "--clusters=batchci",
            "--wckey=k",
            "--distribution=block",
            "--hint=nomultithread",
            "--nice=5",
            "--priority=10",
            "--time-min=1",
            "--mincpus=1",
            "--threads-per-core=1",
            "--spread-job",
            "--switches=1",
            "--contiguous",
            "--comment=c",
            "--acctg-freq=30",
            "--mail-type=END",
            "--no-kill",
            "--use-min-nodes",
            "--tmp=0",
            "--network=x",
            "--profile=none",
            "--gres-flags=enforce-binding",
            "--power=level",
            "--cpu-freq=high",
            "--mem-bind=local",
            "--gpu-bind=closest",
            "--gpu-freq=high",
            "echo",
            "ran",
        ];
        let mut srun = vec!["srun"];
        srun.extend(common);
        s.run("srun with many options", &srun)?;
        let mut salloc = vec!["salloc"];
        salloc.extend(common);
        s.run("salloc with many options", &salloc)?;
        Ok(())
    });
}

#[test]
fn recorded_options_show_in_scontrol() {
    differential("options_recorded", FakeCluster::mirroring_ci_slurm(), |s| {
        let id = s.submit(
            "sbatch",
            &held(&[
                "--tmp=100",
                "--contiguous",
                "--time-min=10",
                "--nice=10",
                "--delay-boot=5",
                "--exclude=localhost",
                "--mincpus=2",
                "--threads-per-core=1",
                "--cores-per-socket=1",
                "--sockets-per-node=1",
                "--ntasks-per-core=1",
                "--network=x",
                "--no-requeue",
                "--oversubscribe",
            ]),
        )?;
        s.record_scontrol(
            "scontrol",
            id,
            &[
                "ReqB:S:C:T",
                "Socks/Node",
                "Nice",
                "Requeue",
                "TimeMin",
                "ExcNodeList",
                "Contiguous",
                "NtasksPerN:B:S:C",
                "Network",
                "MinCPUsNode",
                "OverSubscribe",
                "MinTmpDiskNode",
                "DelayBoot",
            ],
        )?;
        let id = s.submit(
            "sbatch --nice --deadline",
            &held(&["--nice", "--deadline=now+1hour", "--exclusive=user"]),
        )?;
        s.record_scontrol("scontrol 2", id, &["Nice", "TimeMin", "OverSubscribe"])?;
        s.run("sbatch -S 1", &held(&["-S", "1"]))?;
        Ok(())
    });
}

#[test]
fn modelled_options_change_priority_placement_and_output() {
    differential("options_modelled", FakeCluster::mirroring_ci_slurm(), |s| {
        let begin = "--begin=now+1hour";
        let plain = s.submit(
            "plain",
            &["sbatch", begin, "-o", "/dev/null", "--wrap", "true"],
        )?;
        let nice = s.submit(
            "nice",
            &[
                "sbatch",
                begin,
                "--nice=10",
                "-o",
                "/dev/null",
                "--wrap",
                "true",
            ],
        )?;
        let top = s.submit(
            "priority",
            &[
                "sbatch",
                begin,
                "--priority=100",
                "-o",
                "/dev/null",
                "--wrap",
                "true",
            ],
        )?;
        let priority = |s: &mut Side, id: u64| -> Result<i64, CaseError> {
            let out = s
                .env
                .run(&["squeue", "-h", "-j", &id.to_string(), "-o", "%Q"])?;
            out.stdout
                .trim()
                .parse()
                .or_else(|_| fail(format!("no priority: {:?}", out.stdout)))
        };
        let (p, n, t) = (priority(s, plain)?, priority(s, nice)?, priority(s, top)?);
        s.note("plain minus nice=10", (p - n).to_string());
        s.note("root's --priority=100", t.to_string());
        s.run(
            "exclude the only node",
            &["sbatch", "--exclude=localhost", "--wrap", "true"],
        )?;
        s.run("-M this cluster", &held(&["-M", "batchci"]))?;
        s.run(
            "--cluster --parsable",
            &held(&["--cluster=batchci", "--parsable"]),
        )?;
        Ok(())
    });
}

#[test]
fn values_are_checked_by_the_commands() {
    differential("options_checked", FakeCluster::mirroring_ci_slurm(), |s| {
        for opt in [
            "--hint=bogus",
            "--distribution=bogus",
            "--deadline=garbage",
            "--time-min=abc",
            "--mincpus=abc",
            "--switches=abc",
            "--delay-boot=abc",
            "--kill-on-invalid-dep=bogus",
            "--mail-type=bogus",
            "--exclusive=bogus",
            "--propagate=bogus",
            "--x11",
        ] {
            s.run(&format!("sbatch {opt}"), &held(&[opt]))?;
        }
        s.run("srun --time-min=abc", &["srun", "--time-min=abc", "true"])?;
        s.run(
            "salloc --deadline=garbage",
            &["salloc", "--deadline=garbage", "true"],
        )?;
        s.run("srun --batch=x", &["srun", "--batch=x", "true"])?;
        s.run("salloc --test-only", &["salloc", "--test-only", "true"])?;
        Ok(())
    });
}

#[test]
fn features_the_cluster_lacks_are_refused() {
    differential("options_refused", FakeCluster::mirroring_ci_slurm(), |s| {
        for opt in [
            "--gres=gpu:1",
            "--gpus=1",
            "--gpus-per-node=1",
            "--cpus-per-gpu=1",
            "--mem-per-gpu=1G",
            "--ntasks-per-gpu=1",
            "--licenses=x",
            "--reservation=nosuch",
            "--clusters=other",
            "--prefer=x",
            "--batch=x",
        ] {
            s.run(&format!("sbatch {opt}"), &held(&[opt]))?;
        }
        for prog in ["srun", "salloc"] {
            for opt in [
                "--gres=gpu:1",
                "--licenses=x",
                "--reservation=nosuch",
                "--clusters=other",
            ] {
                s.run(&format!("{prog} {opt}"), &[prog, opt, "true"])?;
            }
        }
        Ok(())
    });
}

/// `--test-only` says when and where the job would start, submits nothing and uses up a job
/// id (also when it refuses the job, but not for an unknown partition).
#[test]
fn test_only_reports_a_start_and_uses_up_an_id() {
    differential("test_only", FakeCluster::mirroring_ci_slurm(), |s| {
        let first = s.submit("held job before", &held(&[]))?;
        let cases: &[&[&str]] = &[
            &[],
            &["--parsable"],
            &["-n", "2", "--mem", "100"],
            &["-t", "120", "-p", "gitlab-ci"],
            &["-c", "4"],
            &["--mem", "9000"],
            &["-p", "nope"],
            &["-Q"],
            &["-Q", "-c", "4"],
        ];
        for args in cases {
            let mut argv = vec!["sbatch", "--test-only", "-o", "/dev/null"];
            argv.extend_from_slice(args);
            argv.extend(["--wrap", "true"]);
            s.run(&format!("--test-only {}", args.join(" ")), &argv)?;
        }
        // srun's asks about an allocation of its own and runs nothing (fact 68).
        for args in [
            &[][..],
            &["-n", "2"],
            &["-p", "nope"],
            &["-c", "4"],
            &["-Q"],
        ] {
            let mut argv = vec!["srun", "--test-only"];
            argv.extend_from_slice(args);
            argv.extend(["echo", "never run"]);
            s.run(&format!("srun --test-only {}", args.join(" ")), &argv)?;
        }
        let last = s.submit("held job after", &held(&[]))?;
        s.note("ids used up in between", (last - first - 1).to_string());
        let ids = format!("{first},{last}");
        s.run(
            "squeue shows only the held jobs",
            &[
                "squeue", "-h", "-t", "all", "-j", &ids, "-o", "%i|%T", "-S", "i",
            ],
        )?;
        Ok(())
    });
}

/// `--nodefile` (`-F`) names the nodes in a file, host lists and `#` comments allowed; an
/// unreadable or empty file is refused before anything is asked of the controller (fact 68).
#[test]
fn a_nodefile_names_the_nodes() {
    differential("nodefile", FakeCluster::mirroring_ci_slurm(), |s| {
        s.env.write_file(
            "nodes.txt",
            "# the login node's neighbours\nlocalhost  # the one\n",
        )?;
        s.env.write_file("empty.txt", "# nothing\n")?;
        s.run(
            "srun -F nodes.txt",
            &[
                "srun",
                "-F",
                "nodes.txt",
                "bash",
                "-c",
                "echo $SLURM_JOB_NODELIST",
            ],
        )?;
        s.run(
            "srun --nodefile=missing.txt",
            &["srun", "--nodefile=missing.txt", "true"],
        )?;
        s.run(
            "salloc -F empty.txt",
            &["salloc", "-F", "empty.txt", "true"],
        )?;
        s.run(
            "sbatch -F missing.txt",
            &["sbatch", "-F", "missing.txt", "--wrap", "true"],
        )?;
        let id = s.submit(
            "sbatch -F nodes.txt",
            &[
                "sbatch",
                "-F",
                "nodes.txt",
                "-o",
                "/dev/null",
                "--wrap",
                "true",
            ],
        )?;
        s.wait_until_finished(id)?;
        s.run(
            "scontrol shows the nodes asked for",
            &[
                "bash",
                "-c",
                // `job ID`: the recorded command line numbers the id like the output.
                "scontrol show job \"$1\" | grep -o 'ReqNodeList=[^ ]*'",
                "job",
                &id.to_string(),
            ],
        )?;
        Ok(())
    });
}

/// A held job is not tried against the nodes: more memory than the node has is accepted
/// with `-H` (refused without), and once released the job pends with `BadConstraints`.
#[test]
fn a_held_job_is_not_checked_against_the_nodes() {
    differential(
        "held_unsatisfiable",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit("sbatch -H --mem 9000", &held(&["--mem", "9000"]))?;
            s.record_state("held", id)?;
            let ids = id.to_string();
            s.run("scontrol release", &["scontrol", "release", &ids])?;
            s.wait_for_reason(id, "BadConstraints")?;
            s.record_scontrol(
                "released",
                id,
                &["JobState", "Reason", "MinMemoryNode", "TRES"],
            )?;
            s.run("scancel", &["scancel", &ids])?;
            s.record_final_state("cancelled", id)?;
            let cpus = s.submit("sbatch -H -c 4", &held(&["-c", "4"]))?;
            s.run(
                "scontrol release -c 4",
                &["scontrol", "release", &cpus.to_string()],
            )?;
            s.wait_for_reason(cpus, "PartitionConfig")?;
            s.cancel_quietly(cpus);
            Ok(())
        },
    );
}

/// `#SBATCH` lines may say `--parsable` and `--wait` but not `-Q`/`--quiet`, which sbatch
/// reads from its command line only.
#[test]
fn directives_take_parsable_and_wait_but_not_quiet() {
    differential(
        "directives_output_options",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let scripts = [
                (
                    "parsable.sh",
                    "#SBATCH --parsable\n#SBATCH -H\n#SBATCH -o /dev/null\ntrue\n",
                ),
                (
                    "quiet.sh",
                    "#SBATCH -Q\n#SBATCH -H\n#SBATCH -o /dev/null\ntrue\n",
                ),
                (
                    "long-quiet.sh",
                    "#SBATCH --quiet\n#SBATCH -H\n#SBATCH -o /dev/null\ntrue\n",
                ),
                (
                    "test-only.sh",
                    "#SBATCH --quiet\n#SBATCH --parsable\n#SBATCH --test-only\ntrue\n",
                ),
                (
                    "wait.sh",
                    "#SBATCH --wait\n#SBATCH --mem 100\n#SBATCH -o /dev/null\nexit 3\n",
                ),
            ];
            for (name, body) in scripts {
                let path = s.env.cwd().join(name);
                std::fs::write(&path, format!("#!/bin/sh\n{body}"))
                    .map_err(|e| CaseError(e.to_string()))?;
                s.run(&format!("sbatch {name}"), &["sbatch", name])?;
            }
            // The command line's -Q still counts, over the script's --parsable too.
            s.run("sbatch -Q parsable.sh", &["sbatch", "-Q", "parsable.sh"])?;
            s.run(
                "sbatch -Q --parsable",
                &[
                    "sbatch",
                    "-Q",
                    "--parsable",
                    "-H",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            // The held jobs that printed no id: found by their working directory (this
            // case's own), so that the case cancels them.
            let cwd = s.env.cwd().display().to_string();
            let held = s.env.run(&["squeue", "-h", "-t", "PD", "-o", "%i %Z"])?;
            for line in held.stdout.lines() {
                if let Some((id, dir)) = line.split_once(' ')
                    && dir == cwd
                    && let Ok(id) = id.parse::<u64>()
                {
                    s.cancel_quietly(id);
                }
            }
            Ok(())
        },
    );
}

/// Seconds since 1970 of a `YYYY-MM-DDTHH:MM:SS` time, read as UTC (differences only).
fn seconds(stamp: &str) -> Option<i64> {
    let n = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `--deadline` takes every form of Slurm's `parse_time()`; the deadline shown is compared as
/// seconds after the submission (`now+...`) or as the moment itself (dates, times of day);
/// unreadable texts are refused by the command, past moments by the controller.
#[test]
fn deadline_takes_slurms_time_forms() {
    differential("deadline_forms", FakeCluster::mirroring_ci_slurm(), |s| {
        for form in [
            "now+1hour",
            "now+60",
            "now+1minutes",
            "now+2weeks",
            "2027-01-01",
            "2027-01-01T10:00",
            "12/31/27",
            "tomorrow",
            "noon",
            "teatime",
            "10:00am",
            "23:59:30",
        ] {
            let deadline = format!("--deadline={form}");
            let out = s.env.run(&[
                "sbatch",
                "--parsable",
                "-H",
                "-o",
                "/dev/null",
                &deadline,
                "--wrap",
                "true",
            ])?;
            let Some(id) = conformance::normalize::submitted_job_id(&out.stdout) else {
                s.note(
                    &format!("--deadline={form}"),
                    format!("refused: {:?} [{}]", out.stderr, out.status_text()),
                );
                continue;
            };
            s.norm.learn(id);
            let record = s
                .env
                .run(&["scontrol", "-o", "show", "job", &id.to_string()])?;
            let field = |name: &str| {
                record
                    .stdout
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .unwrap_or("")
                    .to_string()
            };
            let (submit, shown) = (field("SubmitTime"), field("Deadline"));
            let value = if form.starts_with("now") {
                match (seconds(&submit), seconds(&shown)) {
                    (Some(a), Some(b)) => format!("submission + {} s", b - a),
                    _ => format!("unreadable: {submit} {shown}"),
                }
            } else {
                shown
            };
            s.note(
                &format!("--deadline={form}"),
                format!("{value} TimeMin={}", field("TimeMin")),
            );
            s.cancel_quietly(id);
        }
        let with_limit = s.submit(
            "-t 10 --deadline=now+1hour",
            &held(&["-t", "10", "--deadline=now+1hour"]),
        )?;
        s.record_scontrol("with -t", with_limit, &["TimeMin", "TimeLimit"])?;
        for form in [
            "now+1foo",
            "25:00",
            "2027-13-01",
            "",
            "now+",
            "5pm",
            "now-1hour",
            "2020-01-01",
        ] {
            let deadline = format!("--deadline={form}");
            s.run(
                &format!("refused {form:?}"),
                &held(&[])
                    .iter()
                    .copied()
                    .chain([deadline.as_str()])
                    .collect::<Vec<_>>(),
            )?;
        }
        Ok(())
    });
}

/// `srun` with `--overcommit --ntasks-per-core=1 --reboot --delay-boot=1 --deadline`, which was
/// once seen to run its command twice: it runs it once, as one task (the "queued" lines the
/// deadline brings are left out of the comparison, see `not_comparable`).
#[test]
fn srun_with_boot_and_deadline_options_runs_the_command_once() {
    differential(
        "srun_boot_deadline",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            for _ in 0..2 {
                s.run(
                    "srun with the options",
                    &[
                        "srun",
                        "--mem",
                        "100",
                        "--overcommit",
                        "--ntasks-per-core=1",
                        "--reboot",
                        "--delay-boot=1",
                        "--deadline=now+1hour",
                        "bash",
                        "-c",
                        "echo task $SLURM_PROCID of $SLURM_NTASKS",
                    ],
                )?;
            }
            Ok(())
        },
    );
}

/// sbatch's input environment variables (sbatch(1), INPUT ENVIRONMENT VARIABLES): a site sets
/// a runner's default partition with `SBATCH_PARTITION`. They override `#SBATCH` lines, the
/// command line overrides them, and their values are checked as the options' own.
#[test]
fn input_environment_variables_sit_between_directives_and_the_command_line() {
    differential(
        "sbatch_input_environment",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let env = |pairs: &[(&str, &str)]| RunOptions {
                env: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..RunOptions::default()
            };
            s.env.write_file(
                "s.sh",
                "#!/bin/sh\n#SBATCH -J fromscript\n#SBATCH -t 7\ntrue\n",
            )?;
            let argv = ["sbatch", "--wrap", "true"];
            s.run_with(
                "SBATCH_PARTITION=nope",
                &argv,
                &env(&[("SBATCH_PARTITION", "nope")]),
            )?;
            let from_env = env(&[
                ("SBATCH_JOB_NAME", "fromenv"),
                ("SBATCH_TIMELIMIT", "5"),
                ("SBATCH_PARTITION", "gitlab-ci"),
                ("SBATCH_NO_REQUEUE", "1"),
            ]);
            let over_script = submit_with(
                s,
                "environment over #SBATCH",
                &["sbatch", "-H", "s.sh"],
                &from_env,
            )?;
            s.record_scontrol(
                "environment over #SBATCH: the job",
                over_script,
                &["JobName", "TimeLimit", "Partition", "Requeue"],
            )?;
            let over_env = submit_with(
                s,
                "command line over environment",
                &["sbatch", "-H", "-J", "cli", "s.sh"],
                &from_env,
            )?;
            s.record_scontrol(
                "command line over environment: the job",
                over_env,
                &["JobName", "TimeLimit"],
            )?;
            for (var, value) in [("SBATCH_TIMELIMIT", "abc"), ("SBATCH_EXCLUSIVE", "1")] {
                s.run_with(
                    &format!("{var}={value}"),
                    &["sbatch", "-H", "--wrap", "true"],
                    &env(&[(var, value)]),
                )?;
            }
            s.cancel_quietly(over_script);
            s.cancel_quietly(over_env);
            Ok(())
        },
    );
}

/// Runs a submission with extra environment, learns the job id it printed and records it.
fn submit_with(
    s: &mut Side,
    key: &str,
    argv: &[&str],
    options: &RunOptions,
) -> Result<u64, CaseError> {
    let out = s.env.run_with(argv, options)?;
    let Some(id) = conformance::normalize::submitted_job_id(&out.stdout) else {
        return fail(format!("`{}` printed no job id: {out:?}", argv.join(" ")));
    };
    s.norm.learn(id);
    s.record(key, argv, &out);
    Ok(id)
}
