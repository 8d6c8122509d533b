//! Differential case of `SLURM_TIME_FORMAT`, which tools set to parse times (`%s`) or to read
//! them (`relative`): squeue, sacct and scontrol print every time the way it asks, on real Slurm
//! 22.05 and on the simulated cluster alike. Times of day differ between the two runs, so the
//! formats compared are coarse or their shape is; the shared machinery is in
//! `differential/mod.rs`.

mod differential;

use conformance::slurm_env::{FakeCluster, RunOptions};
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

fn with_format(format: &str) -> RunOptions {
    RunOptions {
        env: vec![("SLURM_TIME_FORMAT".into(), format.into())],
        ..RunOptions::default()
    }
}

/// A description of a relative time's shape: `HH:MM:SS`, `Day HH:MM`, ...
fn shape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '0'..='9' => 'D',
            'a'..='z' | 'A'..='Z' => 'A',
            other => other,
        })
        .collect()
}

#[test]
fn slurm_time_format_shapes_the_times_shown() {
    differential(
        "slurm_time_format",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch",
                &[
                    "sbatch",
                    "--hold",
                    "--begin=now+3days",
                    "-c",
                    "1",
                    "--mem",
                    "50",
                    "--wrap",
                    "true",
                ],
            )?;
            let id_text = id.to_string();
            let squeue = ["squeue", "-h", "-j", &id_text, "-o", "%V|%S"];
            for format in ["%Y %b", "%a", "standard", "", "bogus"] {
                s.run_with(
                    &format!("squeue, SLURM_TIME_FORMAT={format:?}"),
                    &squeue,
                    &with_format(format),
                )?;
            }
            let relative = s.env.run_with(&squeue, &with_format("relative"))?;
            s.note(
                "squeue, relative (shape)",
                format!(
                    "{} {}",
                    shape(relative.stdout.trim()),
                    relative.status_text()
                ),
            );
            let epoch = s.env.run_with(&squeue, &with_format("%s"))?;
            s.note(
                "squeue, %s (shape)",
                format!("{} {}", shape(epoch.stdout.trim()), epoch.status_text()),
            );
            let show = s
                .env
                .run_with(&["scontrol", "show", "job", &id_text], &with_format("%Y"))?;
            let submit = show
                .stdout
                .split_whitespace()
                .find(|w| w.starts_with("SubmitTime="))
                .map(shape)
                .unwrap_or_default();
            s.note("scontrol SubmitTime, %Y (shape)", submit);
            // The times of pending jobs: a begin time is their start; held without one, they
            // are not even eligible.
            let plain = s.submit(
                "sbatch (held, no begin)",
                &[
                    "sbatch", "--hold", "-c", "1", "--mem", "50", "--wrap", "true",
                ],
            )?;
            let fields = ["SubmitTime", "EligibleTime", "StartTime", "EndTime"];
            s.record_scontrol("scontrol, held with --begin", id, &fields)?;
            s.record_scontrol("scontrol, held", plain, &fields)?;
            let plain_text = plain.to_string();
            s.run(
                "squeue, both",
                &[
                    "squeue",
                    "-h",
                    "-j",
                    &format!("{id},{plain}"),
                    "-S",
                    "i",
                    "-o",
                    "%i %S %e",
                ],
            )?;
            s.run("scancel", &["scancel", &id_text, &plain_text])?;
            Ok(())
        },
    );
}
