//! Who a job runs as: the person GitLab says started it, as a local account.
//!
//! ```text
//! ID token (job variable) → verified claims → local user (user_login, or what the
//!   validation script says) → checks (exists, lists, not root) → downscoping (setuid | sudo)
//! ```
//!
//! GitLab signs an ID token (an RS256 JWT) for every job whose `.gitlab-ci.yml` has
//! `id_tokens:` and delivers it as a masked job variable. [`token`] checks such a token against
//! the keys the GitLab instance publishes ([`jwks`]) and what the runner expects of it
//! (issuer, audience, job, time) before any of the job's code runs, and hands back the
//! [`token::Claims`] that [`mapping`] maps to a local account; [`downscope`] acts as it.
//!
//! `[runners.auth]` (and the Jacamar-style `[auth]` table of custom executor mode) configures
//! it; [`AuthConfig::problem`] checks the table itself at load, [`privilege_problem`] whether
//! this process may switch users at all. A job whose identity fails any step fails before any
//! command of it runs; see `docs/security.md`.

pub(crate) mod downscope;
pub(crate) mod jwks;
pub(crate) mod mapping;
pub(crate) mod token;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{RunAs, Switch};

/// How a job's processes become the job's user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Downscope {
    /// batchci starts them with the user's uid, gid and groups itself.
    Setuid,
    /// batchci starts them through `sudo -u USER`.
    Sudo,
    /// They run as batchci's own user (the identity is still checked when `audience` is set).
    #[default]
    None,
}

impl Downscope {
    /// The name written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Downscope::Setuid => "setuid",
            Downscope::Sudo => "sudo",
            Downscope::None => "none",
        }
    }
}

/// `[runners.auth]`: the job's identity and the local account it runs as.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `setuid`, `sudo` or `none`.
    #[serde(default)]
    pub downscope: Downscope,
    /// The job variable holding the ID token (the job's `id_tokens:` entry).
    #[serde(default = "default_token_variable")]
    pub token_variable: String,
    /// The `aud` the ID token must carry; required unless `downscope = "none"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Only these local users may run jobs (with `group_allowlist`: these or its members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_allowlist: Vec<String>,
    /// These local users never run jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_blocklist: Vec<String>,
    /// Only members of these groups may run jobs (with `user_allowlist`: or the users listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_allowlist: Vec<String>,
    /// Members of these groups never run jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_blocklist: Vec<String>,
    /// A program that sees the verified claims and may refuse the job or name another local
    /// user (RunAs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_script: Option<PathBuf>,
    /// How long `validation_script` may take.
    #[serde(
        default = "default_validation_timeout",
        with = "crate::config::duration"
    )]
    pub validation_timeout: Duration,
    /// Let jobs run as root (uid 0).
    #[serde(default)]
    pub allow_root: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            downscope: Downscope::None,
            token_variable: default_token_variable(),
            audience: None,
            user_allowlist: Vec::new(),
            user_blocklist: Vec::new(),
            group_allowlist: Vec::new(),
            group_blocklist: Vec::new(),
            validation_script: None,
            validation_timeout: default_validation_timeout(),
            allow_root: false,
        }
    }
}

fn default_token_variable() -> String {
    token::DEFAULT_TOKEN_VARIABLE.to_string()
}

fn default_validation_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A problem of an auth table: the key (relative to the table) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProblem {
    /// The key, e.g. `audience`.
    pub key: String,
    /// The key whose line the message points at (a missing key's table neighbour).
    pub line_key: String,
    /// What is wrong.
    pub message: String,
}

impl AuthConfig {
    /// Whether jobs are identified at all: downscoped, or checked against an audience.
    pub fn enabled(&self) -> bool {
        self.downscope != Downscope::None || self.audience.is_some()
    }

    /// What is wrong with the table itself, for a runner of `executor` (independent of the
    /// machine: [`privilege_problem`] says whether this process can switch users).
    pub fn problem(
        &self,
        executor: crate::config::ExecutorKind,
        fixed_user: bool,
    ) -> Option<AuthProblem> {
        let problem = |key: &str, line_key: &str, message: String| {
            Some(AuthProblem {
                key: key.to_string(),
                line_key: line_key.to_string(),
                message,
            })
        };
        let downscoped = self.downscope != Downscope::None;
        match &self.audience {
            None if downscoped => {
                return problem(
                    "audience",
                    "downscope",
                    format!(
                        "required with downscope = \"{}\": the `aud` of the ID token jobs name in their `id_tokens:` (e.g. \"https://ci.example.com\")",
                        self.downscope.name()
                    ),
                );
            }
            Some(audience) if audience.trim().is_empty() => {
                return problem("audience", "audience", "must not be empty".into());
            }
            _ => {}
        }
        if !crate::script::is_variable_name(&self.token_variable) {
            return problem(
                "token_variable",
                "token_variable",
                format!("`{}` is not a variable name", self.token_variable),
            );
        }
        let lists = [
            ("user_allowlist", &self.user_allowlist),
            ("user_blocklist", &self.user_blocklist),
            ("group_allowlist", &self.group_allowlist),
            ("group_blocklist", &self.group_blocklist),
        ];
        for (key, list) in lists {
            for (n, name) in list.iter().enumerate() {
                if name.trim().is_empty() || name.contains(char::is_whitespace) {
                    return problem(
                        &format!("{key}[{n}]"),
                        key,
                        format!("`{name}` is not a user or group name"),
                    );
                }
            }
        }
        if let Some(script) = &self.validation_script
            && !script.is_absolute()
        {
            return problem(
                "validation_script",
                "validation_script",
                format!(
                    "`{}` must be an absolute path: batchci runs it as root with no PATH lookup",
                    script.display()
                ),
            );
        }
        if self.validation_timeout.is_zero() {
            return problem(
                "validation_timeout",
                "validation_timeout",
                "must be longer than 0s".into(),
            );
        }
        if downscoped && executor == crate::config::ExecutorKind::DockerSlurm {
            return problem(
                "downscope",
                "downscope",
                "docker+slurm cannot downscope: its builds run in containers of the node's Docker daemon, not as a local user; use downscope = \"none\" or another executor".into(),
            );
        }
        if downscoped && fixed_user {
            return problem(
                "downscope",
                "downscope",
                "[runners.slurm] user runs every job as one fixed user; remove it to run each job as its own user".into(),
            );
        }
        None
    }
}

/// The Jacamar-style `[auth]` table of custom executor mode: Jacamar's keys where batchci does
/// the same, batchci's own for the ID token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JacamarAuth {
    /// As `[runners.auth] downscope`.
    #[serde(default)]
    pub downscope: Downscope,
    /// As `[runners.auth] token_variable`.
    #[serde(default)]
    pub token_variable: Option<String>,
    /// As `[runners.auth] audience`.
    #[serde(default)]
    pub audience: Option<String>,
    /// As `[runners.auth] user_allowlist`.
    #[serde(default)]
    pub user_allowlist: Vec<String>,
    /// As `[runners.auth] user_blocklist`.
    #[serde(default)]
    pub user_blocklist: Vec<String>,
    /// As `[runners.auth] group_allowlist`.
    #[serde(default)]
    pub groups_allowlist: Vec<String>,
    /// As `[runners.auth] group_blocklist`.
    #[serde(default)]
    pub groups_blocklist: Vec<String>,
    /// As `[runners.auth] allow_root`.
    #[serde(default)]
    pub allow_root: bool,
    /// `[auth.runas]`.
    #[serde(default)]
    pub runas: JacamarRunAs,
    /// Jacamar's; batchci creates each user's directories itself (ignored with a warning).
    #[serde(default)]
    pub root_dir_creation: Option<toml::Value>,
    /// Jacamar's path to its own binary (ignored with a warning).
    #[serde(default)]
    pub jacamar_path: Option<toml::Value>,
    /// Jacamar's limit of the job environment's size (ignored with a warning).
    #[serde(default)]
    pub max_env_chars: Option<toml::Value>,
    /// Jacamar's audit logging (ignored with a warning; batchci logs with `BATCHCI_LOG`).
    #[serde(default)]
    pub logging: Option<toml::Value>,
    /// A Jacamar policy batchci does not enforce: refused, so a site never believes it holds.
    #[serde(default)]
    pub pipeline_source_allowlist: Option<toml::Value>,
    /// A Jacamar policy batchci does not enforce: refused.
    #[serde(default)]
    pub shell_allowlist: Option<toml::Value>,
}

/// `[auth.runas]` of a Jacamar-style file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JacamarRunAs {
    /// As `[runners.auth] validation_script`.
    #[serde(default)]
    pub validation_script: Option<PathBuf>,
    /// As `[runners.auth] validation_timeout`.
    #[serde(default, with = "optional_duration")]
    pub validation_timeout: Option<Duration>,
    /// Jacamar's job variable naming another target user (ignored with a warning: the
    /// validation script decides).
    #[serde(default)]
    pub user_variable: Option<toml::Value>,
    /// Jacamar's checksum of the validation script: refused, batchci does not check it.
    #[serde(default)]
    pub sha256: Option<toml::Value>,
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "crate::config::duration")] Duration);
        Ok(Some(Wrapped::deserialize(deserializer)?.0))
    }
}

impl JacamarAuth {
    /// The table as batchci's own, with a warning for every Jacamar key it ignores (key,
    /// why), or the problem of a key it refuses.
    pub fn to_auth(&self) -> Result<(AuthConfig, Vec<(String, String)>), AuthProblem> {
        let refuse = |key: &str, line_key: &str, what: &str| AuthProblem {
            key: key.to_string(),
            line_key: line_key.to_string(),
            message: format!(
                "{what} is a Jacamar policy batchci does not enforce; remove it, and enforce it in [auth.runas] validation_script, which sees the job's verified claims"
            ),
        };
        if self.pipeline_source_allowlist.is_some() {
            return Err(refuse(
                "pipeline_source_allowlist",
                "pipeline_source_allowlist",
                "pipeline_source_allowlist",
            ));
        }
        if self.shell_allowlist.is_some() {
            return Err(refuse(
                "shell_allowlist",
                "shell_allowlist",
                "shell_allowlist",
            ));
        }
        if self.runas.sha256.is_some() {
            return Err(AuthProblem {
                key: "runas.sha256".into(),
                line_key: "runas.sha256".into(),
                message: "batchci does not check the validation script's checksum; remove sha256 and keep the script writable by root only".into(),
            });
        }
        let mut warnings = Vec::new();
        let ignored = [
            (
                "root_dir_creation",
                self.root_dir_creation.is_some(),
                "batchci creates each user's directories itself",
            ),
            (
                "jacamar_path",
                self.jacamar_path.is_some(),
                "batchci runs no Jacamar binary",
            ),
            (
                "max_env_chars",
                self.max_env_chars.is_some(),
                "batchci does not limit the job environment's size",
            ),
            (
                "logging",
                self.logging.is_some(),
                "batchci logs to its standard error (BATCHCI_LOG)",
            ),
            (
                "runas.user_variable",
                self.runas.user_variable.is_some(),
                "only the validation script may name another user",
            ),
        ];
        for (key, set, why) in ignored {
            if set {
                warnings.push((key.to_string(), format!("ignored: {why}")));
            }
        }
        let auth = AuthConfig {
            downscope: self.downscope,
            token_variable: self
                .token_variable
                .clone()
                .unwrap_or_else(default_token_variable),
            audience: self.audience.clone(),
            user_allowlist: self.user_allowlist.clone(),
            user_blocklist: self.user_blocklist.clone(),
            group_allowlist: self.groups_allowlist.clone(),
            group_blocklist: self.groups_blocklist.clone(),
            validation_script: self.runas.validation_script.clone(),
            validation_timeout: self
                .runas
                .validation_timeout
                .unwrap_or_else(default_validation_timeout),
            allow_root: self.allow_root,
        };
        Ok((auth, warnings))
    }
}

/// Capabilities a downscoping batchci needs, with their bit in `/proc/self/status`.
pub(crate) const CAPABILITIES: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
];

/// Why this process cannot run jobs as other users as `auth` asks, if it cannot: it is neither
/// root nor holds the capabilities of [`CAPABILITIES`], or `sudo` is missing.
pub fn privilege_problem(auth: &AuthConfig) -> Option<String> {
    if auth.downscope == Downscope::None {
        return None;
    }
    let missing = missing_capabilities(
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .as_deref()
            .and_then(effective_capabilities)
            .unwrap_or(0),
    );
    if !missing.is_empty() {
        let uid = nix::unistd::geteuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| format!(" ({})", u.name))
            .unwrap_or_default();
        return Some(format!(
            "downscope = \"{}\" needs root, or the capabilities {}; batchci runs as uid {uid}{name} without {}",
            auth.downscope.name(),
            CAPABILITIES
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            missing.join(", ")
        ));
    }
    if auth.downscope == Downscope::Sudo && sudo_program().is_none() {
        return Some(format!(
            "downscope = \"sudo\" needs sudo, which is not installed (looked in {})",
            SUDO_DIRS.join(", ")
        ));
    }
    None
}

/// Why `validation_script` cannot run, if it cannot: missing, not a file, not executable.
pub fn validation_script_problem(auth: &AuthConfig) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let script = auth.validation_script.as_ref()?;
    match std::fs::metadata(script) {
        Err(e) => Some(format!(
            "validation_script {} cannot be used: {e}",
            script.display()
        )),
        Ok(meta) if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 => Some(format!(
            "validation_script {} is not an executable file",
            script.display()
        )),
        Ok(_) => None,
    }
}

/// The `CapEff` mask of a `/proc/<pid>/status` text.
fn effective_capabilities(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

fn missing_capabilities(effective: u64) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .filter(|(_, bit)| effective & (1 << bit) == 0)
        .map(|(name, _)| *name)
        .collect()
}

/// Where `sudo` is looked for: fixed system directories, never the PATH batchci was given.
const SUDO_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/local/bin"];

/// The `sudo` program, when installed.
pub(crate) fn sudo_program() -> Option<PathBuf> {
    SUDO_DIRS
        .iter()
        .map(|dir| Path::new(dir).join("sudo"))
        .find(|path| path.is_file())
}

/// How to act as `name`, the recorded user of a job a crashed batchci left behind, switched
/// as its runner downscopes (`None` when the account is gone).
pub(crate) fn recorded_user(name: &str, downscope: Option<Downscope>) -> Option<RunAs> {
    let user = mapping::LocalUser::lookup(name).ok().flatten()?;
    let switch = match (downscope, sudo_program()) {
        (Some(Downscope::Sudo), Some(sudo)) => Switch::Sudo(sudo),
        _ => Switch::Setuid,
    };
    Some(user.run_as(switch))
}

/// A job's verified identity and the account it runs as.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The token's claims.
    pub(crate) claims: token::Claims,
    /// The local account.
    pub(crate) user: mapping::LocalUser,
    /// How the job's commands run as it; `None` with `downscope = "none"`.
    pub(crate) run_as: Option<RunAs>,
}

impl Identity {
    /// The job-log line that says who the job runs as.
    pub(crate) fn describe(&self, downscope: Downscope) -> String {
        let who = format!(
            "GitLab user {} (id {})",
            self.claims.user_login, self.claims.user_id
        );
        match downscope {
            Downscope::None => format!(
                "{who} is local user {} (uid {}); the job runs as batchci's own user",
                self.user.name, self.user.uid
            ),
            mode => format!(
                "Running as local user {} (uid {}) for {who}, through {}",
                self.user.name,
                self.user.uid,
                mode.name()
            ),
        }
    }
}

/// Where a job's identity is checked: the table name for messages, and what the token must
/// say about the instance and the job.
#[derive(Debug, Clone)]
pub(crate) struct Check<'a> {
    /// `[runners.auth]` or `[auth]`.
    pub(crate) table: &'a str,
    /// The table.
    pub(crate) auth: &'a AuthConfig,
    /// The GitLab instance (the token's issuer).
    pub(crate) gitlab_url: &'a str,
    /// The job's id.
    pub(crate) job_id: u64,
}

/// The identity of the job whose variables are `variables` (its ID token among them), or the
/// one-line reason it may not run; `verifier` knows the keys of the job's GitLab. Runs the
/// validation script; runs nothing of the job.
pub(crate) async fn identify(
    check: &Check<'_>,
    verifier: &token::TokenVerifier,
    variables: &[crate::job::Variable],
) -> Result<Identity, String> {
    let auth = check.auth;
    let expected = token::Expectations::new(
        check.gitlab_url.trim_end_matches('/'),
        auth.audience.as_deref().unwrap_or_default(),
        &auth.token_variable,
        check.job_id,
    );
    let claims = verifier
        .verify_job(variables, &expected)
        .await
        .map_err(|e| e.to_string())?;
    let user = mapping::map(check, &claims).await?;
    let run_as = match auth.downscope {
        Downscope::None => None,
        Downscope::Setuid => Some(user.run_as(Switch::Setuid)),
        Downscope::Sudo => {
            let sudo = sudo_program().ok_or("downscope = \"sudo\" but sudo is not installed")?;
            Some(user.run_as(Switch::Sudo(sudo)))
        }
    };
    Ok(Identity {
        claims,
        user,
        run_as,
    })
}

#[cfg(test)]
mod privilege_tests {
    use super::*;

    #[test]
    fn the_effective_capabilities_are_read_from_proc_status() {
        let status = "Name:\tbatchci\nCapInh:\t0000000000000000\nCapEff:\t00000000000000e3\n";
        let effective = effective_capabilities(status).unwrap();
        // CHOWN DAC_OVERRIDE KILL SETGID SETUID, but not FOWNER.
        assert_eq!(missing_capabilities(effective), ["CAP_FOWNER"]);
        assert_eq!(missing_capabilities(u64::MAX), Vec::<&str>::new());
        assert_eq!(effective_capabilities("Name:\tx\n"), None);
    }
}
