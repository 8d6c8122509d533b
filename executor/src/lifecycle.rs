//! A runner's life with GitLab, as gitlab-runner's admins know it:
//!
//! | batchci | gitlab-runner | GitLab call |
//! |---|---|---|
//! | `verify-runners [--name N] [--delete]` | `verify [--name N] [--delete]` | `POST /api/v4/runners/verify` |
//! | `unregister --name N` / `--all-runners` | `unregister --name N` / `--all-runners` | `DELETE /api/v4/runners` |
//! | `reset-token --name N` / `--all-runners` | `reset-token --name N` / `--all-runners` | `POST /api/v4/runners/reset_authentication_token` |
//!
//! (`batchci verify` is taken: it checks a site against a simulated cluster.) Each command
//! works runner by runner and says what happened to each on its own line; the configuration
//! file is edited in place by [`crate::config_edit`], one runner at a time, so a failure half
//! way leaves every runner either done or untouched.

use std::path::Path;

use crate::config::{Config, ConfigError, RunnerConfig};
use crate::config_edit::{ConfigFile, EditError};
use crate::gitlab::GitlabClient;
use crate::stages::short_token;

/// Which runners of the configuration a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The one with this name.
    Named(String),
    /// Every one.
    All,
}

/// Why a command could not start (problems with one runner are [`Report`] lines instead).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The configuration does not load.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The configuration could not be edited.
    #[error("{0}")]
    Edit(#[from] EditError),
}

/// What a command did: one line per runner, and whether every runner ended as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One line per runner, for standard output.
    pub lines: Vec<String>,
    /// Advice for standard error, when something did not work.
    pub hints: Vec<String>,
    /// Whether any runner could not be done.
    pub failed: bool,
}

impl Report {
    fn ok(&mut self, line: String) {
        self.lines.push(line);
    }

    fn failed(&mut self, line: String) {
        self.lines.push(line);
        self.failed = true;
    }

    fn hint(&mut self, hint: &str) {
        if !self.hints.iter().any(|h| h == hint) {
            self.hints.push(hint.to_string());
        }
    }
}

/// The runners `which` names, checked against the file.
fn selected(config: &Config, path: &Path, which: &Which) -> Result<Vec<RunnerConfig>, EditError> {
    match which {
        Which::All => Ok(config.runners.clone()),
        Which::Named(name) => match config.runners.iter().find(|r| &r.name == name) {
            Some(runner) => Ok(vec![runner.clone()]),
            None => Err(EditError::NoSuchRunner {
                path: path.to_path_buf(),
                name: name.clone(),
                known: config.runners.iter().map(|r| r.name.clone()).collect(),
            }),
        },
    }
}

fn label(runner: &RunnerConfig) -> String {
    format!(
        "runner {:?} (token {})",
        runner.name,
        short_token(&runner.token)
    )
}

fn client(runner: &RunnerConfig) -> Result<GitlabClient, String> {
    GitlabClient::new(&runner.url, runner.executor.name()).map_err(|e| e.to_string())
}

const REFUSED: &str =
    "GitLab refuses its token: it no longer knows this runner, or the token expired";
const DELETE_HINT: &str = "`batchci verify-runners --delete` removes the runners whose token GitLab refuses from the configuration";
const RESTART_HINT: &str = "a running `batchci run` keeps the configuration it started with: restart it (systemctl restart batchci)";

/// `batchci verify-runners`: asks GitLab whether each runner's token is valid; with `delete`,
/// removes from the configuration the runners whose token GitLab refuses.
pub async fn verify_runners(
    path: &Path,
    name: Option<&str>,
    delete: bool,
) -> Result<Report, LifecycleError> {
    let config = Config::load(path)?;
    let which = name.map_or(Which::All, |n| Which::Named(n.to_string()));
    let runners = selected(&config, path, &which)?;
    let mut report = Report::default();
    if runners.is_empty() {
        report.failed(format!(
            "{} has no [[runners]]; add one with `batchci register`",
            path.display()
        ));
    }
    let mut removed = false;
    for runner in runners {
        let label = label(&runner);
        let verified = match client(&runner) {
            Ok(client) => client
                .verify_details(&runner.token)
                .await
                .map_err(|e| crate::error_chain(&e)),
            Err(error) => Err(error),
        };
        match verified {
            Ok(Some(verified)) => {
                let expiry = match verified.token_expires_at {
                    Some(at) => format!("; the token expires {at}"),
                    None => String::new(),
                };
                report.ok(format!(
                    "{label}: valid at {} (runner id {}){expiry}",
                    runner.url, verified.id
                ));
            }
            Ok(None) if delete => {
                let mut file = ConfigFile::open(path)?;
                file.remove_runner(&runner.name)?;
                file.save()?;
                removed = true;
                report.ok(format!(
                    "{label}: {REFUSED}; removed from {}",
                    path.display()
                ));
            }
            Ok(None) => {
                report.failed(format!("{label}: {REFUSED} ({})", runner.url));
                report.hint(DELETE_HINT);
            }
            Err(error) => report.failed(format!("{label}: cannot verify: {error}")),
        }
    }
    if removed {
        report.hint(RESTART_HINT);
    }
    Ok(report)
}

/// `batchci unregister`: removes each runner from GitLab (`DELETE /api/v4/runners`), then its
/// entry from the configuration. A runner GitLab refuses stays in the file (see
/// [`verify_runners`] with `delete`).
pub async fn unregister(path: &Path, which: &Which) -> Result<Report, LifecycleError> {
    let config = Config::load(path)?;
    let runners = selected(&config, path, which)?;
    let mut report = Report::default();
    for runner in runners {
        let label = label(&runner);
        let deleted = match client(&runner) {
            Ok(client) => client
                .unregister(&runner.token)
                .await
                .map_err(|e| crate::error_chain(&e)),
            Err(error) => Err(error),
        };
        match deleted {
            Ok(true) => {
                let mut file = ConfigFile::open(path)?;
                file.remove_runner(&runner.name)?;
                file.save()?;
                report.ok(format!(
                    "{label}: unregistered from {}; removed from {}",
                    runner.url,
                    path.display()
                ));
                report.hint(RESTART_HINT);
            }
            Ok(false) => {
                report.failed(format!(
                    "{label}: {REFUSED} ({}); left in {}",
                    runner.url,
                    path.display()
                ));
                report.hint(DELETE_HINT);
            }
            Err(error) => report.failed(format!(
                "{label}: cannot unregister: {error}; left in {}",
                path.display()
            )),
        }
    }
    Ok(report)
}

/// `batchci reset-token`: has GitLab issue each runner a new token
/// (`POST /api/v4/runners/reset_authentication_token`) and writes it, with its expiry, into
/// the configuration. The file's directory is checked for writing before GitLab is asked: once
/// GitLab has answered, the old token no longer works.
pub async fn reset_tokens(path: &Path, which: &Which) -> Result<Report, LifecycleError> {
    let config = Config::load(path)?;
    let runners = selected(&config, path, which)?;
    let mut report = Report::default();
    for runner in runners {
        let label = label(&runner);
        let mut file = ConfigFile::open(path)?;
        let pending = match file.prepare() {
            Ok(pending) => pending,
            Err(error) => {
                report.failed(format!(
                    "{label}: not reset, the configuration cannot be rewritten: {error}"
                ));
                continue;
            }
        };
        let reset = match client(&runner) {
            Ok(client) => client
                .reset_token(&runner.token)
                .await
                .map_err(|e| crate::error_chain(&e)),
            Err(error) => Err(error),
        };
        let new = match reset {
            Ok(Some(new)) => new,
            Ok(None) => {
                report.failed(format!("{label}: not reset: {REFUSED} ({})", runner.url));
                report.hint(DELETE_HINT);
                continue;
            }
            Err(error) => {
                report.failed(format!("{label}: not reset: {error}"));
                continue;
            }
        };
        let expires = new.token_expires_at.as_deref().and_then(|at| {
            chrono::DateTime::parse_from_rfc3339(at)
                .ok()
                .map(|t| crate::config_edit::toml_datetime(t.with_timezone(&chrono::Utc)))
        });
        let written = file
            .set_token(
                &runner.name,
                &new.token,
                expires,
                crate::config_edit::toml_datetime(chrono::Utc::now()),
            )
            .and_then(|()| file.commit(pending));
        if let Err(error) = written {
            // The old token is dead: without the new one the runner is lost.
            report.failed(format!(
                "{label}: GitLab issued a new token but it could not be written ({error}); the old token no longer works: put `token = \"{}\"` into the entry by hand",
                new.token
            ));
            continue;
        }
        let expiry = match &new.token_expires_at {
            Some(at) => format!(", expires {at}"),
            None => String::new(),
        };
        let builds = crate::retention::builds_root(&runner);
        report.ok(format!(
            "{label}: new token {}{expiry} written to {}; builds now go to {}/ ({}/ is no longer used)",
            short_token(&new.token),
            path.display(),
            builds.join(short_token(&new.token)).display(),
            builds.join(short_token(&runner.token)).display(),
        ));
        report.hint(RESTART_HINT);
    }
    Ok(report)
}
