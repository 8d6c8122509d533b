//! Differential cases of `scontrol`: the host-list tools, which job scripts and job libraries
//! call on every job (`scontrol show hostnames "$SLURM_JOB_NODELIST"`), and the records of
//! `show node|partition|job` that tools parse (`-o`, one line per record): the same calls on
//! real Slurm 22.05 and on the simulated cluster must print the same lines and exit alike. The
//! shared machinery is in `differential/mod.rs`.

mod differential;

use conformance::normalize::submitted_job_id;
use conformance::slurm_env::{FakeCluster, RunOptions, RunOutput};
use differential::*;
use regex::Regex;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// Runs `argv` and records it with the values that differ from moment to moment (not from
/// cluster to cluster) replaced: `FIELD=<FIELD>` for each of `volatile`.
fn run_masked(s: &mut Side, key: &str, argv: &[&str], volatile: &[&str]) -> CaseResult {
    let mut out: RunOutput = s.env.run(argv)?;
    for field in volatile {
        let pattern = Regex::new(&format!(r"\b{}=\S*", regex::escape(field)))
            .map_err(|e| CaseError(e.to_string()))?;
        out.stdout = pattern
            .replace_all(&out.stdout, format!("{field}=<{field}>").as_str())
            .into_owned();
    }
    s.record(key, argv, &out);
    Ok(())
}

/// Submits `sbatch --parsable <args>` without recording it and learns the id.
fn submit_quietly(s: &mut Side, args: &[&str]) -> Result<u64, CaseError> {
    let mut argv = vec!["sbatch", "--parsable"];
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

/// What slurmd measures on the machine when it last reported (load, free memory) and the
/// session of the submitting shell.
const NODE_VOLATILE: &[&str] = &["CPULoad", "FreeMem"];

#[test]
fn scontrol_shows_nodes_and_partitions_as_slurm_does() {
    differential(
        "scontrol_nodes_partitions",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            for (key, argv) in [
                (
                    "-o show nodes, idle",
                    &["scontrol", "-o", "show", "nodes"][..],
                ),
                (
                    "show node NAME, idle",
                    &["scontrol", "show", "node", "localhost"],
                ),
                ("show nodes", &["scontrol", "show", "nodes"]),
                ("show node unknown", &["scontrol", "show", "node", "nosuch"]),
                (
                    "-o show nodes unknown",
                    &["scontrol", "-o", "show", "nodes", "nosuch"],
                ),
            ] {
                run_masked(s, key, argv, NODE_VOLATILE)?;
            }
            for (key, argv) in [
                (
                    "-o show partitions",
                    &["scontrol", "-o", "show", "partitions"][..],
                ),
                ("show partition", &["scontrol", "show", "partition"]),
                (
                    "show partition NAME",
                    &["scontrol", "show", "partition", "gitlab-ci"],
                ),
                (
                    "show partition unknown",
                    &["scontrol", "show", "partition", "nosuch"],
                ),
            ] {
                s.run(key, argv)?;
            }
            // One CPU and 100 MB in use: MIXED, AllocMem, AllocTRES.
            let id = submit_quietly(
                s,
                &[
                    "-c",
                    "1",
                    "--mem",
                    "100",
                    "-t",
                    "5",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "exec sleep 60",
                ],
            )?;
            s.wait_for_state(id, &["RUNNING"])?;
            run_masked(
                s,
                "-o show node NAME, one job",
                &["scontrol", "-o", "show", "node", "localhost"],
                NODE_VOLATILE,
            )?;
            s.cancel_quietly(id);
            Ok(())
        },
    );
}

/// The fields `scontrol show job` prints only for some options, after `WorkDir=` and
/// `Power=`, on held jobs (whose other fields do not change with time).
#[test]
fn scontrol_show_job_prints_the_optional_fields_as_slurm_does() {
    differential(
        "scontrol_show_job_optional_fields",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let cases: &[&[&str]] = &[
                &[],
                &["--comment=two words", "--mail-type=end,begin"],
                &["--mail-type=ALL", "--mail-user=u@example.org"],
                &["--mail-type=NONE", "--mail-user=u@example.org"],
                &[
                    "--switches=1@10",
                    "--bb=x",
                    "--cpu-freq=high",
                    "--power=level",
                ],
                &["--switches=2", "--cpu-freq=low-high:ondemand"],
                &["--cpu-freq=performance", "--container=/tmp"],
                &[
                    "--spread-job",
                    "--kill-on-invalid-dep=yes",
                    "--gres-flags=enforce-binding",
                ],
                &[
                    "--kill-on-invalid-dep=no",
                    "--cluster-constraint=x",
                    "--reboot",
                ],
                &[
                    "--mail-type=TIME_LIMIT_90,ARRAY_TASKS",
                    "--cpu-freq=2000000",
                ],
            ];
            for args in cases {
                let mut argv = vec!["-H", "--mem", "100", "-o", "/dev/null"];
                argv.extend_from_slice(args);
                argv.extend(["--wrap", "true"]);
                let id = submit_quietly(s, &argv)?;
                let ids = id.to_string();
                let key = args.join(" ");
                run_masked(
                    s,
                    &format!("show job, {key}"),
                    &["scontrol", "show", "job", &ids],
                    &["AllocNode:Sid"],
                )?;
                run_masked(
                    s,
                    &format!("-o show job, {key}"),
                    &["scontrol", "-o", "show", "job", &ids],
                    &["AllocNode:Sid"],
                )?;
                s.cancel_quietly(id);
            }
            // A running and a completed job: every field, the values that change from moment
            // to moment (or with which scheduler started the job) masked.
            const JOB_VOLATILE: &[&str] = &["AllocNode:Sid", "Priority", "RunTime", "Scheduler"];
            let running = submit_quietly(
                s,
                &[
                    "--mem",
                    "100",
                    "-t",
                    "5",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "exec sleep 60",
                ],
            )?;
            s.wait_for_state(running, &["RUNNING"])?;
            let ids = running.to_string();
            run_masked(
                s,
                "show job, running",
                &["scontrol", "show", "job", &ids],
                JOB_VOLATILE,
            )?;
            run_masked(
                s,
                "-o show job, running",
                &["scontrol", "-o", "show", "job", &ids],
                JOB_VOLATILE,
            )?;
            s.cancel_quietly(running);
            let done = submit_quietly(
                s,
                &[
                    "--mem",
                    "100",
                    "-t",
                    "5",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            s.wait_for_state(done, &["COMPLETED"])?;
            let ids = done.to_string();
            run_masked(
                s,
                "show job, completed",
                &["scontrol", "show", "job", &ids],
                JOB_VOLATILE,
            )?;
            Ok(())
        },
    );
}

#[test]
fn scontrol_expands_and_compresses_host_lists() {
    differential(
        "scontrol_host_lists",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            for list in [
                "node[01-03],x[1-2]",
                "n[1-2]-ib[3-4]",
                "n[01-2]",
                "n[1,3-4]",
                "n1,,n2",
                "",
                "n[3-1]",
                "n[1-3]x",
            ] {
                s.run(
                    &format!("hostnames {list}"),
                    &["scontrol", "show", "hostnames", list],
                )?;
            }
            for list in [
                "node01,node02,node03,x1",
                "n9,n10,n08,n09",
                "n01,n1,n2,n001,n10,n9",
                "n1,n1",
                "a1,b1,a2",
                "n1-ib3,n1-ib4,n2-ib3",
                "a b,c",
                "n[1-3],",
                "",
                "n[3-1]",
                "n[1-3]x",
            ] {
                s.run(
                    &format!("hostlist {list}"),
                    &["scontrol", "show", "hostlist", list],
                )?;
                s.run(
                    &format!("hostlistsorted {list}"),
                    &["scontrol", "show", "hostlistsorted", list],
                )?;
            }
            // Case and abbreviations, as scontrol.c compares entities.
            s.run("HOSTNAME", &["scontrol", "SHOW", "HOSTNAME", "n[1-2]"])?;
            s.run(
                "too many",
                &["scontrol", "show", "hostnames", "n[1-2]", "extra"],
            )?;
            // Without a list: hostnames takes SLURM_NODELIST; hostlist prints its usage.
            s.run("hostnames, no list", &["scontrol", "show", "hostnames"])?;
            s.run_with(
                "hostnames, SLURM_NODELIST",
                &["scontrol", "show", "hostnames"],
                &RunOptions {
                    env: vec![("SLURM_NODELIST".into(), "c[1-2]".into())],
                    ..RunOptions::default()
                },
            )?;
            let usage = s.env.run(&["scontrol", "show", "hostlist"])?;
            s.note(
                "hostlist, no list",
                format!(
                    "stderr {:?}, usage on stdout {}, {}",
                    usage.stderr,
                    usage.stdout.starts_with("scontrol [<OPTION>] [<COMMAND>]"),
                    usage.status_text()
                ),
            );
            // An absolute path names a file of names for hostlist, but is a name for hostnames.
            let file = s.env.cwd().join("hosts");
            std::fs::write(&file, "x1,x2\nx3\n\n").map_err(|e| CaseError(e.to_string()))?;
            let file = file.display().to_string();
            s.run("hostlist FILE", &["scontrol", "show", "hostlist", &file])?;
            s.run(
                "hostlistsorted FILE",
                &["scontrol", "show", "hostlistsorted", &file],
            )?;
            s.run("hostnames FILE", &["scontrol", "show", "hostnames", &file])?;
            let missing = format!("{file}.missing");
            s.run(
                "hostlist missing FILE",
                &["scontrol", "show", "hostlist", &missing],
            )?;
            Ok(())
        },
    );
}
