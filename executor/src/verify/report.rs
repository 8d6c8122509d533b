//! Verify's results: one named check per scenario with ok/fail/skip and a one-line reason,
//! shown as progress lines, a summary table, JUnit XML and Markdown.

use std::fmt::Write as _;
use std::time::Duration;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The scenario holds.
    Ok,
    /// It does not.
    Fail,
    /// It does not apply (said why).
    Skip,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        }
    }
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    /// The runner, or `pipeline FILE` for a user's job.
    pub group: String,
    /// The scenario's name.
    pub name: String,
    /// How it ended.
    pub verdict: Verdict,
    /// Why, in one line.
    pub reason: String,
    /// How long it took.
    pub took: Duration,
}

impl Check {
    /// The progress line printed as the check finishes.
    pub(crate) fn progress_line(&self) -> String {
        format!(
            "{:<4} {} / {}: {} ({:.1}s)",
            self.verdict.word(),
            self.group,
            self.name,
            self.reason,
            self.took.as_secs_f64()
        )
    }
}

/// Everything verify found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// The checks in the order they were made.
    pub checks: Vec<Check>,
    /// What was changed in the site's settings to run them here.
    pub notes: Vec<String>,
    /// The time the whole verify took.
    pub took: Duration,
}

impl Report {
    /// Whether every check holds (skipped ones do not count).
    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }

    fn verdict_line(&self) -> String {
        format!(
            "{} checks: {} ok, {} failed, {} skipped",
            self.checks.len(),
            self.count(Verdict::Ok),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip)
        )
    }

    /// The summary table for the terminal.
    pub(crate) fn summary(&self) -> String {
        let group_width = self
            .checks
            .iter()
            .map(|c| c.group.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let name_width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<group_width$}  {:<name_width$}  {:<7}reason",
            "where", "check", "result"
        );
        for check in &self.checks {
            let _ = writeln!(
                out,
                "{:<group_width$}  {:<name_width$}  {:<7}{}",
                check.group,
                check.name,
                check.verdict.word(),
                check.reason
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(
            out,
            "\n{} ({:.1}s): {}",
            self.verdict_line(),
            self.took.as_secs_f64(),
            if self.passed() {
                "verify passed"
            } else {
                "verify FAILED"
            }
        );
        out
    }

    /// The report as Markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from("# batchci verify\n\n");
        let _ = writeln!(
            out,
            "**{}**: {} (in {:.1} s)\n",
            if self.passed() { "passed" } else { "FAILED" },
            self.verdict_line(),
            self.took.as_secs_f64()
        );
        out.push_str("| where | check | result | reason | time |\n|---|---|---|---|---|\n");
        for check in &self.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} s |",
                markdown_cell(&check.group),
                markdown_cell(&check.name),
                check.verdict.word(),
                markdown_cell(&check.reason),
                check.took.as_secs_f64()
            );
        }
        if !self.notes.is_empty() {
            out.push_str("\nChanged to run here:\n\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {}", markdown_cell(note));
            }
        }
        out
    }

    /// The report as JUnit XML: one test suite per runner or pipeline, one test case per check.
    pub(crate) fn junit(&self) -> String {
        let mut groups: Vec<&str> = Vec::new();
        for check in &self.checks {
            if !groups.contains(&check.group.as_str()) {
                groups.push(&check.group);
            }
        }
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"batchci verify\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            self.checks.len(),
            self.count(Verdict::Fail),
            self.count(Verdict::Skip),
            self.took.as_secs_f64()
        );
        for group in groups {
            let checks: Vec<&Check> = self.checks.iter().filter(|c| c.group == group).collect();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
                xml(group),
                checks.len(),
                checks.iter().filter(|c| c.verdict == Verdict::Fail).count(),
                checks.iter().filter(|c| c.verdict == Verdict::Skip).count(),
                checks.iter().map(|c| c.took.as_secs_f64()).sum::<f64>()
            );
            for check in checks {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    xml(group),
                    xml(&check.name),
                    check.took.as_secs_f64()
                );
                match check.verdict {
                    Verdict::Ok => {
                        let _ = writeln!(
                            out,
                            ">\n      <system-out>{}</system-out>\n    </testcase>",
                            xml(&check.reason)
                        );
                    }
                    Verdict::Fail => {
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\"/>\n    </testcase>",
                            xml(&check.reason)
                        );
                    }
                    Verdict::Skip => {
                        let _ = writeln!(
                            out,
                            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                            xml(&check.reason)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Text that stays in its Markdown table cell.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Text escaped for an XML attribute or element; characters XML 1.0 cannot hold are dropped.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(verdict: Verdict, reason: &str) -> Check {
        Check {
            group: "runner a".into(),
            name: "runs".into(),
            verdict,
            reason: reason.into(),
            took: Duration::from_millis(1500),
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let report = Report {
            checks: vec![
                check(Verdict::Ok, "fine"),
                check(Verdict::Fail, "asks <8> & \"more\"\u{1b}"),
                check(Verdict::Skip, "n/a"),
            ],
            notes: vec![],
            took: Duration::from_secs(3),
        };
        let xml = report.junit();
        assert!(xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(xml.contains("message=\"asks &lt;8&gt; &amp; &quot;more&quot;\""));
        assert!(!report.passed());
    }
}
