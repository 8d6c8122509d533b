//! `batchci register` and `batchci check`: writing a runner entry and explaining a configuration.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::config::{Config, ExecutorKind};

/// Appends a `[[runners]]` entry to `config` (creating the file, mode 0600, when missing).
/// The rest of the file, comments included, is left as it is.
pub fn append_runner(
    config: &Path,
    name: &str,
    url: &str,
    token: &str,
    executor: ExecutorKind,
    limit: usize,
    builds_dir: Option<&Path>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut entry = String::new();
    let existing = std::fs::read_to_string(config).unwrap_or_default();
    if existing.trim().is_empty() {
        entry.push_str("concurrent = 4\ncheck_interval = 3\n");
    }
    let _ = write!(
        entry,
        "\n[[runners]]\nname = {}\nurl = {}\ntoken = {}\nexecutor = {}\nlimit = {limit}\n",
        toml_string(name),
        toml_string(url),
        toml_string(token),
        toml_string(executor.name())
    );
    if let Some(dir) = builds_dir {
        let _ = writeln!(
            entry,
            "builds_dir = {}",
            toml_string(&dir.to_string_lossy())
        );
    }
    if executor != ExecutorKind::Shell {
        entry.push_str("  [runners.batch]\n  arguments_variable = [\"SCHEDULER_PARAMETERS\"]\n");
        entry.push_str(&found_client_variables(executor, |key| {
            std::env::var_os(key)
        }));
    }
    let combined = format!("{existing}{entry}");
    Config::parse(config, &combined).map_err(anyhow::Error::msg)?;
    if let Some(parent) = config.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(config)?;
    file.write_all(entry.as_bytes())?;
    Ok(())
}

/// The `scheduler_environment` lines that pin the client variables of `executor`'s scheduler
/// (`SLURM_CONF`, ...) that `lookup` (batchci's environment at registration) sets: `batchci
/// run` usually starts from a service manager, whose environment lacks what a login shell or
/// an environment module exported. Empty when none is set (or a value is not UTF-8).
fn found_client_variables(
    executor: ExecutorKind,
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> String {
    let pairs: Vec<String> = crate::backends::client_variables(executor)
        .iter()
        .filter_map(|key| {
            let value = lookup(key)?.into_string().ok()?;
            (!value.is_empty()).then(|| toml_string(&format!("{key}={value}")))
        })
        .collect();
    if pairs.is_empty() {
        return String::new();
    }
    format!(
        "  # as `batchci register` found them; `batchci run` gets these whatever its own environment\n  scheduler_environment = [{}]\n",
        pairs.join(", ")
    )
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// A person-readable account of what each runner will do.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "configuration ok: {} runner(s), at most {} job(s) at once, polling every {:?}{}",
        config.runners.len(),
        config.concurrent,
        config.job_poll_interval(),
        if config.check_interval.is_zero() {
            " (check_interval = 0 means the default, as in gitlab-runner)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "scheduler jobs are recorded in {}",
        config.state_dir.display()
    );
    for runner in &config.runners {
        let _ = writeln!(out, "\nrunner {:?} at {}", runner.name, runner.url);
        let limit = if runner.limit == 0 {
            "no own limit".to_string()
        } else {
            format!("at most {} job(s)", runner.limit)
        };
        let _ = writeln!(out, "  executor: {} ({limit})", runner.executor);
        let (how, programs) = crate::backends::describe(runner.executor)
            .unwrap_or(("NOT AVAILABLE in this version", &[]));
        let _ = writeln!(out, "  step script: {how}");
        if runner.executor == ExecutorKind::DockerSlurm {
            let slurm = &runner.slurm;
            let _ = writeln!(
                out,
                "  allocation: partition {}, {} CPU(s), memory {}; user parameters are not used",
                slurm.partition.as_deref().unwrap_or("(default)"),
                slurm.cpus.unwrap_or(1),
                slurm.memory.as_deref().unwrap_or("(partition default)")
            );
        } else if runner.executor != ExecutorKind::Shell {
            let _ = writeln!(
                out,
                "  user parameters: from {}{}",
                runner.batch.arguments_variable.join(", then "),
                if runner.batch.allow_illegal_args {
                    " (controlled flags allowed!)"
                } else {
                    "; flags batchci controls are refused"
                }
            );
        }
        if runner.executor != ExecutorKind::Shell {
            let path = crate::command::search_path(runner.batch.scheduler_bin.as_deref());
            for program in programs {
                match crate::command::resolve(program, &path) {
                    Some(found) => {
                        let _ = writeln!(out, "  {program}: {}", found.display());
                    }
                    None => {
                        let _ = writeln!(out, "  {program}: NOT FOUND on PATH");
                    }
                }
            }
        }
        let builds = runner
            .builds_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| {
                format!(
                    "{} (default)",
                    std::env::temp_dir().join("batchci-builds").display()
                )
            });
        let auth = &runner.auth;
        let downscoped = auth.downscope != crate::auth::Downscope::None;
        if auth.enabled() {
            let runs_as = if downscoped {
                format!(
                    "each job runs as the local account of the person who started it ({})",
                    auth.downscope.name()
                )
            } else {
                "the identity is checked; jobs run as batchci's own user".to_string()
            };
            let _ = writeln!(
                out,
                "  identity: the ID token in {} for audience {}; {runs_as}",
                auth.token_variable,
                auth.audience.as_deref().unwrap_or("(none)")
            );
            let lists = [
                ("allowed users", &auth.user_allowlist),
                ("allowed groups", &auth.group_allowlist),
                ("blocked users", &auth.user_blocklist),
                ("blocked groups", &auth.group_blocklist),
            ];
            for (what, list) in lists.iter().filter(|(_, list)| !list.is_empty()) {
                let _ = writeln!(out, "  {what}: {}", list.join(", "));
            }
            if let Some(script) = &auth.validation_script {
                let _ = writeln!(
                    out,
                    "  validation script: {} (at most {:?})",
                    script.display(),
                    auth.validation_timeout
                );
            }
            if !auth.allow_root {
                let _ = writeln!(out, "  root (uid 0) never runs jobs");
            }
        }
        let builds = if downscoped {
            format!("{builds}/<user>, one directory per user, mode 0700")
        } else {
            builds
        };
        let _ = writeln!(out, "  builds_dir: {builds}");
        if let Some(retention) = &runner.builds_retention {
            let _ = writeln!(out, "  builds_retention: {retention}");
        }
        let _ = writeln!(out, "  job log limit: {} KiB", runner.output_limit);
    }
    out
}

/// What keeps a runner of `config` from working at all, one line each.
pub fn problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for runner in &config.runners {
        if let Err(why) = crate::backends::AnyBackend::new(runner.executor) {
            problems.push(format!("runner {:?}: {why}", runner.name));
        }
        if let Some(why) = crate::auth::privilege_problem(&runner.auth) {
            problems.push(format!("runner {:?}: [runners.auth] {why}", runner.name));
        }
        if let Some(why) = crate::auth::validation_script_problem(&runner.auth) {
            problems.push(format!("runner {:?}: [runners.auth] {why}", runner.name));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_keeps_the_file_valid_and_its_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# site settings\nconcurrent = 2\n").unwrap();
        append_runner(
            &path,
            "a \"quoted\" name",
            "https://gitlab.example.com",
            "glrt-1",
            ExecutorKind::Slurm,
            3,
            None,
        )
        .unwrap();
        append_runner(
            &path,
            "second",
            "https://gitlab.example.com",
            "glrt-2",
            ExecutorKind::Shell,
            0,
            Some(Path::new("/scratch/ci")),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# site settings\nconcurrent = 2\n"));
        let config = Config::load(&path).unwrap();
        assert_eq!(config.runners.len(), 2);
        assert_eq!(config.runners[0].name, "a \"quoted\" name");
        assert_eq!(config.runners[0].limit, 3);
        assert_eq!(
            config.runners[1].builds_dir.as_deref(),
            Some(Path::new("/scratch/ci"))
        );
    }

    /// `register` pins the client variables of the runner's scheduler that its environment
    /// sets (`SLURM_CONF`), and only those: `run` from a service manager lacks them.
    #[test]
    fn register_pins_the_schedulers_client_variables_it_found() {
        let environment = |key: &str| match key {
            "SLURM_CONF" => Some(std::ffi::OsString::from("/etc/slurm/site \"a\".conf")),
            "FLUX_URI" => Some(std::ffi::OsString::new()),
            _ => None,
        };
        let found = found_client_variables(ExecutorKind::Slurm, environment);
        let text = format!(
            "[[runners]]\nname = \"a\"\nurl = \"https://g.example\"\ntoken = \"t\"\nexecutor = \"slurm\"\n  [runners.batch]\n{found}"
        );
        let config = Config::parse(Path::new("config.toml"), &text).unwrap();
        assert_eq!(
            config.runners[0].batch.scheduler_environment,
            ["SLURM_CONF=/etc/slurm/site \"a\".conf"]
        );
        assert_eq!(
            found_client_variables(ExecutorKind::DockerSlurm, |key| {
                (key == "SLURM_CONF").then(|| "/etc/slurm/slurm.conf".into())
            }),
            "  # as `batchci register` found them; `batchci run` gets these whatever its own environment\n  scheduler_environment = [\"SLURM_CONF=/etc/slurm/slurm.conf\"]\n"
        );
        assert_eq!(found_client_variables(ExecutorKind::Pbs, environment), "");
        assert_eq!(found_client_variables(ExecutorKind::Flux, environment), "");
    }

    #[test]
    fn a_duplicate_name_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        append_runner(
            &path,
            "a",
            "https://g.example",
            "glrt-1",
            ExecutorKind::Shell,
            0,
            None,
        )
        .unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        let error = append_runner(
            &path,
            "a",
            "https://g.example",
            "glrt-2",
            ExecutorKind::Shell,
            0,
            None,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("runner name `a` is used twice"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }
}
