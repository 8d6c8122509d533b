//! Differential cases of `sacct`'s output forms, which tools parse by column or by `|`: the
//! header, its underline and every value justified and cut as real Slurm 22.05 does, default
//! and `%N` widths, `-P`, `-p`, `-n`. Job ids have other lengths on the two clusters, so a
//! fixed-width table is compared cell by cell (its text and on which side it is padded); the
//! shared machinery is in `differential/mod.rs`.

mod differential;

use conformance::normalize::submitted_job_id;
use conformance::slurm_env::FakeCluster;
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// A fixed-width sacct table as its header, its underline and, per row, each cell marked by
/// where its blanks are: `>text` right-justified, `<text` left-justified, `=text` filling the
/// column, `∅` empty. The columns are the underline's runs of `-`.
fn cells(s: &mut Side, stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    let (Some(header), Some(dashes)) = (lines.first(), lines.get(1)) else {
        return format!("(no header) {stdout:?}");
    };
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in dashes.char_indices() {
        match (c, start) {
            ('-', None) => start = Some(i),
            (' ', Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, dashes.len()));
    }
    let mut out = vec![format!("{header}|"), format!("{dashes}|")];
    for line in &lines[2..] {
        let row: Vec<String> = spans
            .iter()
            .map(|&(a, b)| {
                let id_column = header
                    .get(a..b.min(header.len()))
                    .is_some_and(|h| h.trim().starts_with("JobID"));
                let cell = line.get(a..b.min(line.len())).unwrap_or("");
                let text = cell.trim();
                let mark = if text.is_empty() {
                    return "∅".to_string();
                } else if cell.len() < b - a {
                    "?"
                } else if cell.starts_with(' ') {
                    ">"
                } else if cell.ends_with(' ') {
                    "<"
                } else {
                    "="
                };
                // Only the id columns hold job ids; `1` elsewhere is a count.
                let text = if id_column {
                    s.norm.text(text)
                } else {
                    s.norm.value(text)
                };
                format!("{mark}{text}")
            })
            .collect();
        out.push(row.join(" "));
    }
    out.join("\n")
}

#[test]
fn sacct_justifies_and_cuts_columns_as_slurm_does() {
    differential("sacct_columns", FakeCluster::mirroring_ci_slurm(), |s| {
        if !real_accounting() {
            if real_required() {
                return fail(
                    "the real Slurm has no accounting (slurmdbd); start it with ci/slurm up",
                );
            }
            loud("sacct_columns NOT COMPARED: the real Slurm runs without accounting");
            return Ok(());
        }
        let out = s.env.run(&[
            "sbatch",
            "--parsable",
            "--mem",
            "100",
            "-t",
            "5",
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        ])?;
        let Some(id) = submitted_job_id(&out.stdout) else {
            return fail(format!("sbatch printed no id: {:?}", out.stderr));
        };
        s.norm.learn(id);
        s.wait_for_state(id, &["COMPLETED"])?;
        let ids = id.to_string();
        // Settled rows: both rows final, and not the provisional job row (fact 24).
        s.env.run_until(
            &["sacct", "-j", &ids, "-n", "-P", "-o", "JobName,State"],
            SACCT_DEADLINE,
            |o| o.stdout == "wrap|COMPLETED\nbatch|COMPLETED\n",
        )?;
        for format in [
            "JobID,JobName,State,ExitCode",
            "JobID%15,JobName%12,State%-12,ExitCode%3",
            "JobID%-15,JobName%-3,State%15,AllocCPUS%4",
            "JobName%10,JobName%-10,State,State%-10",
            "JobIDRaw,Partition,Account,NCPUS,DerivedExitCode,Timelimit,NodeList,NNodes",
            "User,UID,GID,Group,WorkDir,QOS,ReqMem,ReqCPUS,Reason,Cluster,AllocNodes,NTasks",
            "JobID,State%0",
        ] {
            let argv = ["sacct", "-j", &ids, "-o", format];
            let out = s.env.run(&argv)?;
            let table = cells(s, &out.stdout);
            s.note(
                &format!("sacct -o {format}"),
                format!("{table}\n[stderr] {:?} [{}]", out.stderr, out.status_text()),
            );
        }
        let table = s.env.run(&["sacct", "-j", &ids])?;
        let table = cells(s, &table.stdout);
        s.note("sacct (default fields)", table);
        for flags in [
            &["-P"][..],
            &["--parsable2"],
            &["-p"],
            &["-n", "-P"],
            &["-p", "-n"],
        ] {
            let mut argv = vec!["sacct", "-j", &ids, "-o", "JobID,JobName,State,ExitCode"];
            argv.extend_from_slice(flags);
            s.run(&format!("sacct {}", flags.join(" ")), &argv)?;
        }
        Ok(())
    });
}
