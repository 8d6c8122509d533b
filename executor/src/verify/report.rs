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
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
        let mut groups: Vec<&str> = Vec::new();
        for check in &self.checks {
            if !groups.contains(&check.group.as_str()) {
                groups.push(&check.group);
            }
        }
        let mut report = quick_junit::Report::new("batchci verify");
        report.set_time(self.took);
        for group in groups {
            let mut suite = TestSuite::new(group);
            let mut took = Duration::ZERO;
            for check in self.checks.iter().filter(|c| c.group == group) {
                took += check.took;
                let status = match check.verdict {
                    Verdict::Ok => TestCaseStatus::success(),
                    Verdict::Fail => {
                        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        status.set_message(check.reason.as_str());
                        status
                    }
                    Verdict::Skip => {
                        let mut status = TestCaseStatus::skipped();
                        status.set_message(check.reason.as_str());
                        status
                    }
                };
                let mut case = TestCase::new(check.name.as_str(), status);
                case.set_classname(group).set_time(check.took);
                if check.verdict == Verdict::Ok {
                    case.set_system_out(check.reason.as_str());
                }
                suite.add_test_case(case);
            }
            suite.set_time(took);
            report.add_test_suite(suite);
        }
        // Serialising into memory fails only on an I/O error, which a String cannot have.
        report
            .to_string()
            .unwrap_or_else(|e| format!("<!-- JUnit report not written: {e} -->\n"))
    }
}

/// Text that stays in its Markdown table cell.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
        // The escape character cannot be in XML 1.0 and is dropped.
        insta::assert_snapshot!(report.junit());
        assert!(!report.passed());
    }
}
