//! `batchci register`: writing a runner entry into the configuration file.

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
