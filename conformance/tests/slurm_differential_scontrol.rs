//! Differential cases of `scontrol`'s host-list tools, which job scripts and job libraries call
//! on every job (`scontrol show hostnames "$SLURM_JOB_NODELIST"`): the same calls on real Slurm
//! 22.05 and on the simulated cluster must print the same lines and exit alike. The shared
//! machinery is in `differential/mod.rs`.

mod differential;

use conformance::slurm_env::{FakeCluster, RunOptions};
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
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
