//! Generating the bash scripts of a job's stages.
//!
//! Each stage becomes one self-contained bash script: it exports the job's variables (values
//! single-quoted, so nothing in them is interpreted), changes into the project directory and
//! runs the user's lines one after the other, echoing each as gitlab-runner does (`$ make`, in
//! green). `errexit` and `pipefail` make the first failing line end the script with its code.
//!
//! The script is the user's code by design; what batchci itself runs around it (scheduler
//! commands, git) never goes through a shell.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use crate::trace::format::{ANSI_BOLD_GREEN, ANSI_RESET};

/// A variable exported by a stage script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Name.
    pub key: String,
    /// Value, exported literally.
    pub value: String,
}

/// How a stage script treats failing lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop at the first failing line (`script`, `before_script`).
    Stop,
    /// Go on and exit with the last line's code (`after_script` never fails the job anyway).
    Continue,
}

/// Builds the bash script of one stage.
pub fn stage_script(
    exports: &[Export],
    project_dir: &Path,
    lines: &[String],
    on_error: OnError,
) -> String {
    let mut script = String::from("#!/bin/bash\n");
    // Everything before the first command must not look like a scheduler directive to `sbatch`,
    // `qsub` or `bsub`: plain commands end their directive scan.
    match on_error {
        OnError::Stop => script.push_str("set -o errexit -o pipefail\n"),
        OnError::Continue => script.push_str("set -o pipefail\n"),
    }
    script.push_str("set +o noclobber\n");
    for export in exports {
        if is_variable_name(&export.key) {
            let _ = writeln!(
                script,
                "export {}={}",
                export.key,
                shell_words::quote(&export.value)
            );
        }
    }
    let _ = writeln!(
        script,
        "cd -- {}",
        shell_words::quote(&project_dir.to_string_lossy())
    );
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let shown = match line.split_once('\n') {
            Some((first, _)) => format!("{first} # collapsed multi-line command"),
            None => line.clone(),
        };
        let _ = writeln!(
            script,
            "printf '%s\\n' {}",
            shell_words::quote(&format!("{ANSI_BOLD_GREEN}$ {shown}{ANSI_RESET}"))
        );
        script.push_str(line);
        script.push('\n');
    }
    script
}

/// Whether `key` can be exported by bash.
pub fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands `$NAME` and `${NAME}` in `value` from `variables`, as GitLab does for non-raw
/// variables; unknown names expand to nothing and `$$` is a literal `$`.
pub fn expand(value: &str, variables: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|(_, c)| *c) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if closed {
                    out.push_str(variables.get(&name).map(String::as_str).unwrap_or(""));
                } else {
                    out.push_str("${");
                    out.push_str(&name);
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some((_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || *c == '_' {
                        name.push(*c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(variables.get(&name).map(String::as_str).unwrap_or(""));
            }
            _ => out.push('$'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_script_exports_quoted_values_and_echoes_each_line() {
        let exports = vec![
            Export {
                key: "GREETING".into(),
                value: "it's $HOME; `x`".into(),
            },
            Export {
                key: "bad-name".into(),
                value: "skipped".into(),
            },
        ];
        let script = stage_script(
            &exports,
            Path::new("/builds/my project"),
            &[
                "echo \"$GREETING\"".to_string(),
                "for i in 1 2; do\n  echo $i\ndone".to_string(),
            ],
            OnError::Stop,
        );
        insta::assert_snapshot!(script.replace('\x1b', "<ESC>"));
    }

    #[tokio::test]
    async fn the_script_runs_in_bash_and_stops_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let exports = vec![Export {
            key: "V".into(),
            value: "a 'quoted' $value".into(),
        }];
        let script = stage_script(
            &exports,
            dir.path(),
            &[
                "echo \"$V\"".into(),
                "pwd".into(),
                "false".into(),
                "echo not reached".into(),
            ],
            OnError::Stop,
        );
        let output = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let text = String::from_utf8(output.stdout)
            .unwrap()
            .replace('\x1b', "<ESC>");
        assert_eq!(
            text,
            format!(
                "<ESC>[32;1m$ echo \"$V\"<ESC>[0;m\na 'quoted' $value\n<ESC>[32;1m$ pwd<ESC>[0;m\n{}\n<ESC>[32;1m$ false<ESC>[0;m\n",
                dir.path().display()
            )
        );
    }

    #[test]
    fn expansion_follows_gitlab() {
        let vars: HashMap<String, String> = [
            ("A".to_string(), "1".to_string()),
            ("B_2".to_string(), "two".to_string()),
        ]
        .into();
        assert_eq!(expand("$A-${B_2}-$MISSING-$$A-${A", &vars), "1-two--$A-${A");
        assert_eq!(expand("cost: 5$", &vars), "cost: 5$");
    }
}
