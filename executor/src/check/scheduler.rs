//! A runner's scheduler commands, in the environment and as the user they will run with: do
//! they resolve, what do they get to find their cluster, and does the controller answer.

use std::ffi::OsString;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Status;
use crate::command::{CommandSpec, RunAs};
use crate::config::RunnerConfig;

/// The value of `key` in `env`.
fn value_of<'a>(env: &'a [(OsString, OsString)], key: &str) -> Option<&'a OsString> {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Whether the programs the runner's jobs need resolve in the commands' own PATH.
pub(crate) fn programs(runner: &RunnerConfig, env: &[(OsString, OsString)]) -> (Status, String) {
    let path = value_of(env, "PATH").cloned().unwrap_or_default();
    let mut found: Vec<(String, String)> = Vec::new();
    let mut missing = Vec::new();
    for program in crate::backends::programs(runner) {
        match crate::command::resolve(&program, &path) {
            Some(at) => {
                let dir = at
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                match found.iter_mut().find(|(d, _)| *d == dir) {
                    Some((_, names)) => {
                        names.push(' ');
                        names.push_str(&program);
                    }
                    None => found.push((dir, program)),
                }
            }
            None => missing.push(program),
        }
    }
    if !missing.is_empty() {
        return (
            Status::Error,
            format!(
                "{} not found in PATH={}; install the scheduler's commands or set scheduler_bin under [runners.batch]",
                missing.join(", "),
                path.to_string_lossy()
            ),
        );
    }
    let places: Vec<String> = found
        .iter()
        .map(|(dir, names)| format!("{names} in {dir}"))
        .collect();
    (Status::Ok, places.join("; "))
}

/// Where each of the scheduler's client variables comes from, for the `environment` row.
pub(crate) fn environment(runner: &RunnerConfig, env: &[(OsString, OsString)]) -> String {
    let variables = crate::backends::client_variables(runner.executor);
    let parts: Vec<String> = variables
        .iter()
        .map(|key| {
            let own = runner
                .batch
                .scheduler_environment
                .iter()
                .any(|pair| pair.split_once('=').is_some_and(|(k, _)| k == *key));
            let listed = runner.batch.env_vars.iter().any(|name| name == key);
            match value_of(env, key) {
                Some(value) => {
                    let source = if own {
                        "scheduler_environment"
                    } else if listed {
                        "env_vars"
                    } else {
                        "batchci's environment"
                    };
                    format!("{key}={} (from {source})", value.to_string_lossy())
                }
                None => format!("{key} not set (the commands use their built-in default)"),
            }
        })
        .collect();
    format!("client variables: {}", parts.join(", "))
}

/// How a command ended, within its deadline or not.
enum Ran {
    /// It exited (or was killed by a signal: 128 + the signal).
    Exited {
        code: i32,
        stdout: String,
        stderr: String,
    },
    /// It did not end in time and was killed.
    TimedOut { stdout: String, stderr: String },
}

/// Runs `spec` for at most `deadline`, killing its process group when it takes longer.
async fn run(spec: &CommandSpec, deadline: Duration) -> std::io::Result<Ran> {
    let mut child = spec.spawn_piped()?;
    let read = |stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        tokio::spawn(async move {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes).await;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = read(child.stderr.take().map(|s| Box::new(s) as _));
    let collect = |task: tokio::task::JoinHandle<String>| async move {
        // A process that escaped the group may hold the pipe open: what came is enough.
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => {
            let code = crate::command::exit_code(status?);
            Ok(Ran::Exited {
                code,
                stdout: collect(stdout).await,
                stderr: collect(stderr).await,
            })
        }
        Err(_) => {
            let _ = crate::command::terminate_group(&mut child, Duration::from_secs(2)).await;
            Ok(Ran::TimedOut {
                stdout: collect(stdout).await,
                stderr: collect(stderr).await,
            })
        }
    }
}

/// The lines of a command's output worth showing: at most the last four that say something
/// (not `****` banners), each cut at 200 characters, joined by ` / `.
fn summary(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.chars().all(|c| c == '*'))
        .map(|line| line.chars().take(200).collect())
        .collect();
    lines[lines.len().saturating_sub(4)..].join(" / ")
}

/// What the scheduler's commands were told of their cluster, for a failure's detail.
fn client_hint(runner: &RunnerConfig, env: &[(OsString, OsString)]) -> String {
    let variables = crate::backends::client_variables(runner.executor);
    if variables.is_empty() {
        return String::new();
    }
    let (set, unset): (Vec<&&str>, Vec<&&str>) = variables
        .iter()
        .partition(|key| value_of(env, key).is_some());
    let mut hint = String::new();
    if !set.is_empty() {
        let pairs: Vec<String> = set
            .iter()
            .map(|key| {
                format!(
                    "{key}={}",
                    value_of(env, key)
                        .map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )
            })
            .collect();
        hint.push_str(&format!(" (the commands got {})", pairs.join(", ")));
    }
    if !unset.is_empty() {
        let names: Vec<&str> = unset.iter().map(|k| **k).collect();
        hint.push_str(&format!(
            "; {} {} not set for them: export {} in batchci's environment, or set `scheduler_environment = [\"{}=...\"]` under [runners.batch]",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" },
            if names.len() == 1 { "it" } else { "them" },
            names[0]
        ));
    }
    hint
}

/// Asks the runner's controller whether it answers, with the commands' own environment and
/// as their user.
pub(crate) async fn controller(
    runner: &RunnerConfig,
    env: &[(OsString, OsString)],
    run_as: Option<RunAs>,
    deadline: Duration,
) -> Option<(Status, String)> {
    let (program, args) = crate::backends::controller_check(runner.executor)?;
    let mut spec = CommandSpec::new(program, args, "/").run_as(run_as.as_ref());
    spec.env = env.to_vec();
    let shown = spec.display();
    let ran = match run(&spec, deadline).await {
        Ok(ran) => ran,
        Err(error) => return Some((Status::Error, format!("`{shown}`: {error}"))),
    };
    Some(match ran {
        Ran::Exited {
            code: 0, stdout, ..
        } => {
            let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
            match lines.as_slice() {
                [line] => (Status::Ok, format!("`{shown}`: {}", line.trim())),
                _ => (Status::Ok, format!("`{shown}` answered")),
            }
        }
        Ran::Exited {
            code,
            stdout,
            stderr,
        } => (
            Status::Error,
            format!(
                "`{shown}` failed (exit {code}): {}{}",
                summary(&format!("{stdout}\n{stderr}")),
                client_hint(runner, env)
            ),
        ),
        Ran::TimedOut { stdout, stderr } => {
            let said = summary(&format!("{stdout}\n{stderr}"));
            (
                Status::Error,
                format!(
                    "`{shown}` did not answer within {}s and was stopped{}{}",
                    deadline.as_secs(),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!("; it said: {said}")
                    },
                    client_hint(runner, env)
                ),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm_runner() -> RunnerConfig {
        let text = "[[runners]]\nname = \"a\"\nurl = \"https://g.example\"\ntoken = \"t\"\nexecutor = \"slurm\"\n";
        crate::config::Config::parse(std::path::Path::new("c.toml"), text)
            .unwrap()
            .runners
            .remove(0)
    }

    #[test]
    fn a_failures_hint_says_which_client_variables_the_commands_got() {
        let runner = slurm_runner();
        let path = (OsString::from("PATH"), OsString::from("/usr/bin"));
        assert_eq!(
            client_hint(&runner, std::slice::from_ref(&path)),
            "; SLURM_CONF is not set for them: export it in batchci's environment, or set `scheduler_environment = [\"SLURM_CONF=...\"]` under [runners.batch]"
        );
        let conf = (
            OsString::from("SLURM_CONF"),
            OsString::from("/etc/slurm/a.conf"),
        );
        assert_eq!(
            client_hint(&runner, &[path.clone(), conf.clone()]),
            " (the commands got SLURM_CONF=/etc/slurm/a.conf)"
        );
        assert_eq!(
            environment(&runner, std::slice::from_ref(&path)),
            "client variables: SLURM_CONF not set (the commands use their built-in default)"
        );
        assert_eq!(
            environment(&runner, &[path, conf]),
            "client variables: SLURM_CONF=/etc/slurm/a.conf (from batchci's environment)"
        );
    }

    #[test]
    fn a_summary_keeps_the_last_lines_that_say_something() {
        assert_eq!(
            summary(
                "Slurmctld(primary) at vm is DOWN\n*****************************************\n** RESTORE SLURMCTLD DAEMON TO SERVICE **\n*****************************************\n"
            ),
            "Slurmctld(primary) at vm is DOWN / ** RESTORE SLURMCTLD DAEMON TO SERVICE **"
        );
        assert_eq!(summary("a\nb\n\nc\nd\ne\n"), "b / c / d / e");
        assert_eq!(summary(""), "");
    }
}
