//! Differential cases of job dependencies: the same `sbatch --dependency` runs on the real
//! Slurm 22.05 and on the simulated cluster, and the reasons and dependency texts squeue shows
//! must match (see `slurm_differential.rs` for how cases run and are normalised; the facts are
//! `docs/slurm-observed.md` 41-46, 53, 64).

mod differential;
use differential::*;

use conformance::normalize::submitted_job_id;
use conformance::slurm_env::FakeCluster;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// Submits `sbatch --parsable -c 1 --mem 100 <args>` without recording it (its command line
/// holds job ids the record would not normalise) and learns the id.
fn submit_quietly(s: &mut Side, args: &[&str]) -> Result<u64, CaseError> {
    let mut argv = vec!["sbatch", "--parsable", "-c", "1", "--mem", "100"];
    argv.extend_from_slice(args);
    let out = s.env.run(&argv)?;
    match submitted_job_id(&out.stdout) {
        Some(id) => {
            s.norm.learn(id);
            Ok(id)
        }
        None => fail(format!("`{}` failed: {:?}", argv.join(" "), out.stderr)),
    }
}

#[test]
fn dependencies_wait_fail_and_are_cancelled() {
    differential("dependencies", FakeCluster::mirroring_ci_slurm(), |s| {
        let failed = submit_quietly(s, &["-o", "/dev/null", "--wrap", "exit 3"])?;
        let running = submit_quietly(s, &["-o", "/dev/null", "--wrap", "sleep 60"])?;
        s.wait_for_state(failed, &["FAILED"])?;
        let f = failed.to_string();
        let r = running.to_string();
        let waits = submit_quietly(s, &["-d", &format!("afterok:{r}"), "--wrap", "true"])?;
        let never = submit_quietly(s, &["-d", &format!("afterok:{f}"), "--wrap", "true"])?;
        let killed = submit_quietly(
            s,
            &[
                "-d",
                &format!("afterok:{f}"),
                "--kill-on-invalid-dep=yes",
                "--wrap",
                "true",
            ],
        )?;
        let either = submit_quietly(
            s,
            &["-d", &format!("afterok:{f}?afterok:{r}"), "--wrap", "true"],
        )?;
        s.wait_for_reason(waits, "Dependency")?;
        s.wait_for_reason(never, "DependencyNeverSatisfied")?;
        s.wait_for_state(killed, &["CANCELLED"])?;
        for (key, id) in [
            ("waits", waits),
            ("never", never),
            ("killed", killed),
            ("either", either),
        ] {
            let ids = id.to_string();
            s.run(
                &format!("squeue of the job that {key}"),
                &["squeue", "-h", "-t", "all", "-j", &ids, "-o", "%i|%T|%r|%E"],
            )?;
        }
        for id in [waits, never, either, running] {
            s.cancel_quietly(id);
        }
        // scontrol update on a held job: the new dependency, then a malformed one.
        let held = submit_quietly(s, &["-H", "--wrap", "true"])?;
        let job = format!("jobid={held}");
        // (Not recorded: the dependency text holds a job id the record would not normalise.)
        let out = s.env.run(&[
            "scontrol",
            "update",
            &job,
            &format!("dependency=afterok:{r}"),
        ])?;
        s.note(
            "scontrol update dependency",
            format!("{:?} {}", out.stdout, out.status_text()),
        );
        s.run(
            "squeue after scontrol update",
            &["squeue", "-h", "-j", &held.to_string(), "-o", "%i|%r|%E"],
        )?;
        s.run(
            "scontrol update with a malformed dependency",
            &["scontrol", "update", &job, "dependency=foo:1"],
        )?;
        s.cancel_quietly(held);
        for bad in ["afterok", "foo:1", "afterok:0"] {
            s.run(
                &format!("sbatch -d {bad}"),
                &["sbatch", "-d", bad, "--wrap", "true"],
            )?;
        }
        Ok(())
    });
}

#[test]
fn dependencies_on_arrays_wait_for_all_tasks_or_task_by_task() {
    differential(
        "dependencies_on_arrays",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let array = submit_quietly(
                s,
                &[
                    "-a",
                    "1-2",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "sleep 2; exit $((SLURM_ARRAY_TASK_ID - 1))",
                ],
            )?;
            let a = array.to_string();
            let corr = submit_quietly(
                s,
                &[
                    "-a",
                    "1-2",
                    "-o",
                    "/dev/null",
                    "-d",
                    &format!("aftercorr:{a}"),
                    "--wrap",
                    "true",
                ],
            )?;
            let all = submit_quietly(
                s,
                &[
                    "-o",
                    "/dev/null",
                    "-d",
                    &format!("afterok:{a}"),
                    "--wrap",
                    "true",
                ],
            )?;
            let rows = [
                "squeue",
                "-h",
                "-t",
                "all",
                "-j",
                &corr.to_string(),
                "-o",
                "%i|%T|%r|%E",
            ];
            s.poll_output("the aftercorr array did not settle", &rows, |out| {
                out.contains("COMPLETED") && out.contains("DependencyNeverSatisfied")
            })?;
            s.run("squeue of the aftercorr array", &rows)?;
            s.wait_for_reason(all, "DependencyNeverSatisfied")?;
            s.run(
                "squeue of the job after the whole array",
                &[
                    "squeue",
                    "-h",
                    "-t",
                    "all",
                    "-j",
                    &all.to_string(),
                    "-o",
                    "%i|%T|%r|%E",
                ],
            )?;
            for id in [corr, all] {
                s.cancel_quietly(id);
            }
            Ok(())
        },
    );
}

/// `--kill-on-invalid-dep=yes`: squeue shows the cancelled job with `DependencyNeverSatisfied`,
/// while sacct keeps the reason it had before: `Dependency` when it waited for a job that then
/// failed, `None` when the dependency had failed before the job was first looked at.
#[test]
fn a_job_killed_for_its_dependency_keeps_its_earlier_reason_in_sacct() {
    differential(
        "kill_on_invalid_dep_sacct",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let failed = submit_quietly(s, &["-o", "/dev/null", "--wrap", "exit 3"])?;
            s.wait_for_state(failed, &["FAILED"])?;
            let at_once = submit_quietly(
                s,
                &[
                    "-d",
                    &format!("afterok:{failed}"),
                    "--kill-on-invalid-dep=yes",
                    "--wrap",
                    "true",
                ],
            )?;
            let failing = submit_quietly(s, &["-o", "/dev/null", "--wrap", "sleep 4; exit 3"])?;
            let later = submit_quietly(
                s,
                &[
                    "-d",
                    &format!("afterok:{failing}"),
                    "--kill-on-invalid-dep=yes",
                    "--wrap",
                    "true",
                ],
            )?;
            s.wait_for_reason(later, "Dependency")?;
            for (key, id) in [("at once", at_once), ("later", later)] {
                s.wait_for_state(id, &["CANCELLED"])?;
                let ids = id.to_string();
                s.run(
                    &format!("squeue, killed {key}"),
                    &["squeue", "-h", "-t", "all", "-j", &ids, "-o", "%i|%T|%r|%E"],
                )?;
                if !real_accounting() {
                    if real_required() {
                        return fail("the real Slurm has no accounting (slurmdbd)");
                    }
                    loud("sacct NOT COMPARED: the real Slurm runs without accounting");
                    continue;
                }
                let argv = [
                    "sacct",
                    "-j",
                    &ids,
                    "-n",
                    "-P",
                    "-o",
                    "JobID,State,Reason,ExitCode",
                ];
                let out = s
                    .env
                    .run_until(&argv, SACCT_DEADLINE, |o| o.stdout.contains("|CANCELLED|"))?;
                s.record(&format!("sacct, killed {key}"), &argv, &out);
            }
            Ok(())
        },
    );
}

/// The other kinds workflow tools use: `afterany` and `afternotok` of a failed job run,
/// `afternotok` of a completed one never can; `after` of a running job runs at once, while
/// `after:<job>+<minutes>` waits (its minute is not waited for: the real clock cannot be
/// hurried, so only its text and reason are compared); a `,` list waits for all of its jobs;
/// `singleton` waits for the running job of the same name and user only (fact 64).
#[test]
fn afterany_afternotok_after_lists_and_singleton() {
    differential("dependency_kinds", FakeCluster::mirroring_ci_slurm(), |s| {
        let ok = submit_quietly(s, &["-o", "/dev/null", "--wrap", "true"])?;
        let bad = submit_quietly(s, &["-o", "/dev/null", "--wrap", "exit 3"])?;
        s.wait_for_state(ok, &["COMPLETED"])?;
        s.wait_for_state(bad, &["FAILED"])?;
        let running = submit_quietly(s, &["-J", "solo", "-o", "/dev/null", "--wrap", "sleep 120"])?;
        s.wait_for_state(running, &["RUNNING"])?;
        let (ok, bad, run) = (ok.to_string(), bad.to_string(), running.to_string());
        // What each job waits for, its name, and what it settles in: a final state or, still
        // pending, a reason.
        let cases = [
            (
                "afterany of a failed job",
                format!("afterany:{bad}"),
                "dep",
                "COMPLETED",
            ),
            (
                "afternotok of a failed job",
                format!("afternotok:{bad}"),
                "dep",
                "COMPLETED",
            ),
            (
                "after of a running job",
                format!("after:{run}"),
                "dep",
                "COMPLETED",
            ),
            (
                "a list of met ones",
                format!("afterok:{ok},afterany:{bad}"),
                "dep",
                "COMPLETED",
            ),
            (
                "singleton of another name",
                "singleton".to_string(),
                "other",
                "COMPLETED",
            ),
            (
                "afternotok of a completed job",
                format!("afternotok:{ok}"),
                "dep",
                "DependencyNeverSatisfied",
            ),
            (
                "after plus a minute",
                format!("after:{run}+1"),
                "dep",
                "Dependency",
            ),
            (
                "a list with a running job",
                format!("afterok:{ok},afterany:{run}"),
                "dep",
                "Dependency",
            ),
            ("singleton", "singleton".to_string(), "solo", "Dependency"),
        ];
        let mut jobs = Vec::new();
        for (key, dependency, name, settles) in cases {
            let id = submit_quietly(
                s,
                &[
                    "-J",
                    name,
                    "-o",
                    "/dev/null",
                    "-d",
                    &dependency,
                    "--wrap",
                    "true",
                ],
            )?;
            jobs.push((key, id, settles));
        }
        for (_, id, settles) in &jobs {
            match *settles {
                "COMPLETED" => s.wait_for_state(*id, &["COMPLETED"])?,
                reason => s.wait_for_reason(*id, reason)?,
            }
        }
        for (key, id, _) in jobs {
            s.run(
                &format!("squeue, {key}"),
                &[
                    "squeue",
                    "-h",
                    "-t",
                    "all",
                    "-j",
                    &id.to_string(),
                    "-o",
                    "%i|%T|%r|%E",
                ],
            )?;
        }
        Ok(())
    });
}
