//! Differential case of time as Slurm spends it: the accounting database lags the controller.
//! Tools that read a job's state from `sacct` meet this on every real cluster; the simulated
//! cluster makes them meet it on a laptop. When a batch job starts after `sbatch` returned is
//! not compared here: on the reference cluster (`sched_interval=1`) a scheduling pass that
//! happens to fall right after the submission starts the job within milliseconds, so the
//! outcome of a client's race is luck there (slurm-observed.md 56); `mock-cluster`'s
//! `sbatch.rs` pins the fake's rule instead. The shared machinery is in `differential/mod.rs`.

mod differential;

use conformance::slurm_env::FakeCluster;
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// `2026-11-29T22:17:55` as `<time>`: the two sides run at different times of day. An elapsed
/// time of a few seconds (`00:00:00` to `00:00:03`) as `<seconds>`: when sacct is asked, the
/// job has been running for however long squeue took to show it (real Slurm counts it even
/// while it still reports the job PENDING).
fn times_as_words(text: &str) -> String {
    text.split('|')
        .map(|field| {
            let is_time = field.len() == 19
                && field.as_bytes()[10] == b'T'
                && field.chars().filter(char::is_ascii_digit).count() == 14;
            let is_a_few_seconds =
                matches!(field, "00:00:00" | "00:00:01" | "00:00:02" | "00:00:03");
            if is_time {
                "<time>"
            } else if is_a_few_seconds {
                "<seconds>"
            } else {
                field
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// `sacct` hears of a start well after `squeue` shows it: a tool that reads the state from
/// accounting sees PENDING at the moment the job runs (slurm-observed.md 57), then RUNNING,
/// and the end at once.
#[test]
fn accounting_lags_the_controller_on_a_start_but_not_on_an_end() {
    differential("accounting_lag", FakeCluster::mirroring_ci_slurm(), |s| {
        if s.is_real() && !real_accounting() {
            return fail("real Slurm has no accounting (slurmdbd): this case needs it");
        }
        s.wait_for_quiet_node();
        s.env.write_file("go", "")?;
        let id = s.submit(
            "sbatch",
            &["sbatch", "--wrap", "while [ -e go ]; do sleep 0.05; done"],
        )?;
        let id_text = id.to_string();
        let sacct = [
            "sacct",
            "-n",
            "-X",
            "-P",
            "-j",
            &id_text,
            "-o",
            "State,Start,Eligible,NodeList,Elapsed",
        ];
        s.wait_for_state(id, &["RUNNING"])?;
        let seen = s.env.run(&sacct)?;
        // The start time and the node are there, the state and the eligible time are not; but now and then real Slurm has the start record at once
        // (slurm-observed.md 57): either is Slurm, anything else is not.
        let seen = times_as_words(seen.stdout.trim());
        let slurm_like = [
            "PENDING|<time>|Unknown|localhost|<seconds>",
            "RUNNING|<time>|<time>|localhost|<seconds>",
        ];
        s.note(
            "sacct when squeue first says RUNNING",
            if slurm_like.contains(&seen.as_str()) {
                "PENDING without an eligible time, or RUNNING".to_string()
            } else {
                seen
            },
        );
        s.poll_output("sacct to hear of the start", &sacct, |out| {
            out.starts_with("RUNNING|")
        })?;
        s.note("sacct, later", "RUNNING");
        std::fs::remove_file(s.env.cwd().join("go"))
            .map_err(|e| CaseError(format!("cannot remove go: {e}")))?;
        s.wait_until_finished(id)?;
        let ended = s
            .env
            .run(&["sacct", "-n", "-X", "-P", "-j", &id_text, "-o", "State"])?;
        s.note(
            "sacct as soon as squeue no longer shows it running",
            ended.stdout.trim().to_string(),
        );
        Ok(())
    });
}
