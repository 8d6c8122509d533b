//! Many processes submitting and cancelling at once never corrupt state.

mod common;

use common::TestCluster;

#[test]
fn concurrent_submitters_and_cancellers_leave_a_consistent_state() {
    let c = TestCluster::with_config(&common::FAST_CLUSTER.replace("cpus = 2", "cpus = 64"));
    const SUBMITTERS: usize = 8;
    const PER: usize = 15;
    std::thread::scope(|s| {
        for t in 0..SUBMITTERS {
            let c = &c;
            s.spawn(move || {
                for i in 0..PER {
                    let name = format!("t{t}-{i}");
                    let (out, err, code) = c.run(
                        "sbatch",
                        &[
                            "--parsable",
                            "-J",
                            &name,
                            "--mem",
                            "10",
                            "--wrap",
                            "sleep 1",
                        ],
                    );
                    assert_eq!(code, 0, "{err}");
                    let id: u32 = out.trim().parse().unwrap();
                    if i % 3 == 0 {
                        assert_eq!(c.run("scancel", &[&id.to_string()]).2, 0);
                    }
                }
            });
        }
        for _ in 0..2 {
            let c = &c;
            s.spawn(move || {
                for _ in 0..10 {
                    assert_eq!(c.run("scancel", &["-n", "t0-1"]).2, 0);
                    assert_eq!(c.run("squeue", &["-h"]).2, 0);
                }
            });
        }
    });
    let total = (SUBMITTERS * PER) as u32;
    common::wait_for("all jobs finished", || {
        c.run("squeue", &["-h"]).0.is_empty()
    });
    // Every id exactly once, all finished, nothing lost.
    let (out, _, _) = c.run("sacct", &["-X", "-n", "-P", "-o", "JobID,JobName,State"]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), total as usize);
    let mut ids: Vec<u32> = rows
        .iter()
        .map(|r| r.split('|').next().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=total).collect::<Vec<_>>());
    for r in &rows {
        let state = r.rsplit('|').next().unwrap();
        assert!(
            state == "COMPLETED" || state.starts_with("CANCELLED"),
            "{r}"
        );
    }
    let cancelled = rows.iter().filter(|r| r.contains("CANCELLED")).count();
    assert!(
        cancelled >= SUBMITTERS * PER / 3,
        "every third job was cancelled: {cancelled}"
    );
    // The journal replays to the same state after a restart.
    assert!(c.admin(&["stop"]).status.success());
    let (again, _, _) = c.run("sacct", &["-X", "-n", "-P", "-o", "JobID,JobName,State"]);
    assert_eq!(again, out);
    let calls = c.admin(&["calls", "--json"]);
    let calls: serde_json::Value = serde_json::from_slice(&calls.stdout).unwrap();
    let sbatch_calls = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["program"] == "sbatch")
        .count();
    assert_eq!(sbatch_calls, SUBMITTERS * PER);
}
