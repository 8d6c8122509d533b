//! What one side of a differential case saw, and how two sides are compared.

use std::fmt::Write as _;

/// An ordered record of named, already normalised facts (outputs, exit codes, states, files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    entries: Vec<(String, String)>,
}

impl Observation {
    /// An empty observation.
    pub fn new() -> Self {
        Observation::default()
    }

    /// Records `value` under `key` (keys keep their order; a repeated key gets a `#n` suffix).
    pub fn record(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let mut key = key.into();
        let base = key.clone();
        let mut n = 2;
        while self.entries.iter().any(|(k, _)| *k == key) {
            key = format!("{base} #{n}");
            n += 1;
        }
        self.entries.push((key, value.into()));
    }

    /// The recorded entries, in order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The value recorded under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All entries as text, one `== key` header per entry.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.entries {
            let _ = writeln!(out, "== {key}");
            let _ = writeln!(out, "{}", value.trim_end_matches('\n'));
        }
        out
    }
}

/// Compares the real side with the fake side; `Err` holds a readable report of every entry
/// that differs (a unified diff, `-` real, `+` fake).
pub fn compare(case: &str, real: &Observation, fake: &Observation) -> Result<(), String> {
    let mut report = String::new();
    let mut keys: Vec<&str> = real.entries().iter().map(|(k, _)| k.as_str()).collect();
    for (key, _) in fake.entries() {
        if !keys.contains(&key.as_str()) {
            keys.push(key);
        }
    }
    let mut differing = 0;
    for key in keys {
        let r = real.get(key);
        let f = fake.get(key);
        if r == f {
            continue;
        }
        differing += 1;
        let r = r
            .map(with_newline)
            .unwrap_or_else(|| "(not recorded)\n".into());
        let f = f
            .map(with_newline)
            .unwrap_or_else(|| "(not recorded)\n".into());
        let _ = writeln!(report, "--- {key}: real Slurm (-) vs simulated cluster (+)");
        let diff = similar::TextDiff::from_lines(&r, &f);
        for change in diff.iter_all_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            let _ = write!(report, "{sign} {}", with_newline(change.value()));
        }
    }
    if differing == 0 {
        Ok(())
    } else {
        Err(format!(
            "case `{case}`: {differing} observation(s) differ between real Slurm and the simulated cluster\n{report}"
        ))
    }
}

fn with_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_observations_compare_equal() {
        let mut a = Observation::new();
        a.record("rc", "rc=0");
        assert_eq!(compare("c", &a, &a.clone()), Ok(()));
    }

    #[test]
    fn a_difference_is_shown_as_a_diff() {
        let mut real = Observation::new();
        real.record("stderr", "line a\nline b\n");
        let mut fake = Observation::new();
        fake.record("stderr", "line a\nline c\n");
        let report = compare("c", &real, &fake).unwrap_err();
        assert!(report.contains("- line b\n"), "{report}");
        assert!(report.contains("+ line c\n"), "{report}");
        assert!(report.contains("  line a\n"), "{report}");
    }

    #[test]
    fn repeated_keys_are_numbered() {
        let mut o = Observation::new();
        o.record("k", "1");
        o.record("k", "2");
        assert_eq!(o.get("k #2"), Some("2"));
    }
}
