//! The site as verify runs it: its configuration, loaded with the normal loader, and rewritten
//! only where it must point at the mocks (GitLab's URL and token, the scheduler commands'
//! PATH, directories that are not writable here); everything else stays as configured.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{Config, ExecutorKind};

/// One configured runner and what verify gives it.
#[derive(Debug, Clone)]
pub(crate) struct SiteRunner {
    /// Its name in the configuration.
    pub name: String,
    /// Its executor.
    pub executor: ExecutorKind,
    /// The tags it is registered with in the mock GitLab (besides its own verify tag).
    pub tags: Vec<String>,
    /// Whether it takes untagged jobs: registered without tags, or `--run-untagged NAME`.
    pub run_untagged: bool,
    /// The tag only verify's own jobs for this runner carry.
    pub own_tag: String,
    /// The partition the runner's jobs go to unless they name one, and the setting that says
    /// so: docker+slurm's `[runners.slurm] partition`, or `SBATCH_PARTITION` in a Slurm
    /// runner's `scheduler_environment` (sbatch reads it).
    pub partition: Option<(String, &'static str)>,
}

/// What had to change in a runner's settings to run it here, for the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rewrite {
    /// One line per setting that was not kept.
    pub notes: Vec<String>,
}

/// The mock GitLab's side of one runner: its URL and the token it was registered with.
pub(crate) struct Registration {
    /// GitLab's URL.
    pub url: String,
    /// The runner's authentication token.
    pub token: String,
}

/// Loads the site's configuration; its errors name the file, the line and the key.
pub(crate) fn load(path: &Path) -> Result<(Config, String), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((config, text))
}

/// The tags of a runner: `--tags NAME=a,b` when given, else its name and its executor's name.
pub(crate) fn tags_of(
    name: &str,
    executor: ExecutorKind,
    given: &[(String, Vec<String>)],
) -> Vec<String> {
    given
        .iter()
        .find(|(runner, _)| runner == name)
        .map(|(_, tags)| tags.clone())
        .unwrap_or_else(|| vec![name.to_string(), executor.name().to_string()])
}

/// Whether a directory can be used here: it exists and takes a file. A missing one is not
/// created: verify leaves no trace of itself in the site's directories.
fn writable(dir: &Path) -> bool {
    dir.is_dir()
        && tempfile::Builder::new()
            .prefix(".batchci-verify-")
            .tempfile_in(dir)
            .is_ok()
}

/// The configuration `batchci run` gets: the site's text with only what must point at the mocks
/// changed. `registrations[i]` belongs to `runners[i]`.
pub(crate) fn rewrite(
    source: &Path,
    text: &str,
    registrations: &[Registration],
    cluster_dir: &Path,
    root: &Path,
) -> anyhow::Result<(String, Rewrite)> {
    let mut table: toml::Table =
        toml::from_str(text).with_context(|| format!("{}: not a TOML table", source.display()))?;
    let mut rewrite = Rewrite::default();
    table.insert(
        "state_dir".into(),
        toml::Value::String(root.join("state").display().to_string()),
    );
    // Waiting up to a site's check_interval between verify's short jobs costs minutes and
    // checks nothing of the cluster.
    if table
        .get("check_interval")
        .and_then(toml::Value::as_integer)
        != Some(1)
    {
        table.insert("check_interval".into(), toml::Value::Integer(1));
        rewrite
            .notes
            .push("check_interval: 1 s (verify's jobs are short)".into());
    }
    if table.remove("listen_address").is_some() {
        rewrite
            .notes
            .push("listen_address: not served (the site's runner may be using it)".into());
    }
    let runners = table
        .get_mut("runners")
        .and_then(toml::Value::as_array_mut)
        .context("the configuration has no [[runners]]")?;
    for (index, (runner, registration)) in runners.iter_mut().zip(registrations).enumerate() {
        let runner = runner
            .as_table_mut()
            .with_context(|| format!("runners[{index}] is not a table"))?;
        let name = runner
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or("?")
            .to_string();
        runner.insert("url".into(), toml::Value::String(registration.url.clone()));
        runner.insert(
            "token".into(),
            toml::Value::String(registration.token.clone()),
        );
        for key in ["builds_dir", "cache_dir"] {
            let configured = runner
                .get(key)
                .and_then(toml::Value::as_str)
                .map(PathBuf::from);
            if let Some(dir) = configured
                && !writable(&dir)
            {
                let here = root.join(key).join(&name);
                rewrite.notes.push(format!(
                    "{name}: {key} {} is missing or not writable here; {} is used",
                    dir.display(),
                    here.display()
                ));
                runner.insert(key.into(), toml::Value::String(here.display().to_string()));
            }
        }
        // A docker+slurm runner's Docker client must reach the simulated nodes' daemons.
        if let Some(docker) = runner.get_mut("docker").and_then(toml::Value::as_table_mut)
            && docker.contains_key("docker_program")
        {
            let fake = cluster_dir.join("bin").join("docker");
            docker.insert(
                "docker_program".into(),
                toml::Value::String(fake.display().to_string()),
            );
            rewrite.notes.push(format!(
                "{name}: docker_program is the simulated cluster's {}",
                fake.display()
            ));
        }
        let batch = runner
            .entry("batch")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let batch = batch
            .as_table_mut()
            .with_context(|| format!("runners[{index}].batch is not a table"))?;
        batch.insert(
            "scheduler_bin".into(),
            toml::Value::String(cluster_dir.join("bin").display().to_string()),
        );
        let environment = batch
            .entry("scheduler_environment")
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        if let Some(environment) = environment.as_array_mut() {
            environment.push(toml::Value::String(format!(
                "MOCK_CLUSTER_STATE_DIR={}",
                cluster_dir.display()
            )));
            // A fake that finds no daemon must fail, not start a second cluster.
            environment.push(toml::Value::String("MOCK_CLUSTER_NO_AUTOSTART=1".into()));
        }
    }
    let rewritten = toml::to_string(&table).context("cannot write the rewritten configuration")?;
    Ok((rewritten, rewrite))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"concurrent = 2
check_interval = 3
listen_address = "127.0.0.1:9252"

[[runners]]
name = "a"
url = "https://gitlab.example.com"
token = "glrt-real"
executor = "slurm"
limit = 1
builds_dir = "/nonexistent/builds"
  [runners.batch]
  scheduler_bin = "/opt/slurm/bin"
  env_vars = ["SLURM_CONF"]
  scheduler_environment = ["SLURM_CONF=/etc/slurm/b.conf"]
  submit_retries = 7
"#;

    #[test]
    fn only_what_must_point_at_the_mocks_changes() {
        let root = Path::new("/tmp/verify-root");
        let (text, rewrite) = rewrite(
            Path::new("config.toml"),
            SITE,
            &[Registration {
                url: "http://127.0.0.1:1".into(),
                token: "glrt-mock".into(),
            }],
            Path::new("/tmp/verify-root/cluster"),
            root,
        )
        .unwrap();
        let config = Config::parse(Path::new("rewritten.toml"), &text).unwrap();
        let runner = &config.runners[0];
        assert_eq!(runner.url, "http://127.0.0.1:1");
        assert_eq!(runner.token, "glrt-mock");
        assert_eq!(
            runner.batch.scheduler_bin.as_deref(),
            Some(Path::new("/tmp/verify-root/cluster/bin"))
        );
        assert_eq!(
            runner.batch.scheduler_environment,
            [
                "SLURM_CONF=/etc/slurm/b.conf",
                "MOCK_CLUSTER_STATE_DIR=/tmp/verify-root/cluster",
                "MOCK_CLUSTER_NO_AUTOSTART=1"
            ]
        );
        assert_eq!(
            runner.builds_dir.as_deref(),
            Some(Path::new("/tmp/verify-root/builds_dir/a"))
        );
        // As configured.
        assert_eq!(runner.limit, 1);
        assert_eq!(runner.batch.submit_retries, 7);
        assert_eq!(runner.batch.env_vars, ["SLURM_CONF"]);
        assert_eq!(config.concurrent, 2);
        assert_eq!(config.listen_address, None);
        assert_eq!(rewrite.notes.len(), 3, "{:?}", rewrite.notes);
    }
}
