//! Differential case of `SLURM_TIME_FORMAT`, which tools set to parse times (`%s`) or to read
//! them (`relative`): squeue, sacct and scontrol print every time the way it asks, on real Slurm
//! 22.05 and on the simulated cluster alike (fact 30; one case for squeue and scontrol, one for
//! sacct). Times of day differ between the two runs, so the
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

/// `SLURM_TIME_FORMAT` in sacct: the submit, eligible, start and end times of a finished job in
/// the standard form, `relative`, `%s` and a strftime format, and the warning for a format it
/// refuses (fact 30). Times differ between the runs, so the year is compared as it is and the
/// rest by shape.
#[test]
fn slurm_time_format_in_sacct() {
    differential(
        "slurm_time_format_sacct",
        FakeCluster::mirroring_ci_slurm(),
        |s| {
            let id = s.submit(
                "sbatch",
                &[
                    "sbatch",
                    "-c",
                    "1",
                    "--mem",
                    "50",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "true",
                ],
            )?;
            s.wait_until_finished(id)?;
            if !sacct_comparable("sacct")? {
                return Ok(());
            }
            let id_text = id.to_string();
            let argv = [
                "sacct",
                "-X",
                "-n",
                "-P",
                "-j",
                &id_text,
                "-o",
                "Submit,Eligible,Start,End",
            ];
            // Accounting records the end a moment after squeue shows it (fact 57).
            s.env.run_until(&argv, SACCT_DEADLINE, |o| {
                o.stdout.lines().count() == 1 && !o.stdout.contains("Unknown")
            })?;
            // Noted as printed: the normaliser would read a year opening the line as a job id.
            let year = s.env.run_with(&argv, &with_format("%Y"))?;
            s.note(
                "sacct, %Y",
                format!(
                    "{}[stderr]\n{}[{}]",
                    year.stdout,
                    year.stderr,
                    year.status_text()
                ),
            );
            for format in ["standard", "", "relative", "%s", "%d.%m.%Y %H:%M", "bogus"] {
                let out = s.env.run_with(&argv, &with_format(format))?;
                s.note(
                    &format!("sacct, SLURM_TIME_FORMAT={format:?} (shape)"),
                    format!(
                        "{}[stderr]\n{}[{}]",
                        shape(&out.stdout),
                        out.stderr,
                        out.status_text()
                    ),
                );
            }
            Ok(())
        },
    );
}
