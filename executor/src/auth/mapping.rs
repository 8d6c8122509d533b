//! From verified claims to a local account: the token's `user_login`, unless the site's
//! validation script names another user or refuses; then the account must exist and pass the
//! table's lists and the root rule.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Check;
use super::token::Claims;
use crate::command::{RunAs, Switch};

/// A local account a job may run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalUser {
    /// Its name.
    pub(crate) name: String,
    /// Its uid.
    pub(crate) uid: u32,
    /// Its primary group.
    pub(crate) gid: u32,
    /// Every group it is in, the primary one included.
    pub(crate) groups: Vec<u32>,
    /// Its home directory.
    pub(crate) home: PathBuf,
    /// Its login shell.
    pub(crate) shell: PathBuf,
}

impl LocalUser {
    /// Looks up `name`: `Ok(None)` when there is no such account.
    pub(crate) fn lookup(name: &str) -> Result<Option<LocalUser>, String> {
        let Some(user) = nix::unistd::User::from_name(name)
            .map_err(|e| format!("cannot look up local user `{name}`: {e}"))?
        else {
            return Ok(None);
        };
        let groups = std::ffi::CString::new(user.name.as_str())
            .ok()
            .and_then(|cname| nix::unistd::getgrouplist(&cname, user.gid).ok())
            .unwrap_or_else(|| vec![user.gid])
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        Ok(Some(LocalUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups,
            home: user.dir,
            shell: user.shell,
        }))
    }

    /// How commands run as this user, switched by `switch`.
    pub(crate) fn run_as(&self, switch: Switch) -> RunAs {
        RunAs {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
            name: self.name.clone(),
            home: self.home.clone(),
            shell: self.shell.clone(),
            switch,
        }
    }
}

/// The local account of the job `claims` describe, or the one-line reason it may not run.
pub(crate) async fn map(check: &Check<'_>, claims: &Claims) -> Result<LocalUser, String> {
    let auth = check.auth;
    let login = &claims.user_login;
    let name = match &auth.validation_script {
        Some(script) => validate(script, auth.validation_timeout, claims)
            .await?
            .unwrap_or_else(|| login.clone()),
        None => login.clone(),
    };
    if !is_user_name(&name) {
        return Err(format!(
            "GitLab user `{login}` maps to `{name}`, which is not a local user name"
        ));
    }
    let user = LocalUser::lookup(&name)?.ok_or_else(|| {
        format!(
            "GitLab user `{login}` maps to local user `{name}`, which does not exist on this host"
        )
    })?;
    let table = check.table;
    if user.uid == 0 && !auth.allow_root {
        return Err(format!(
            "GitLab user `{login}` maps to local user `{name}`, which is root (uid 0), and {table} allow_root is false"
        ));
    }
    if auth.user_blocklist.contains(&user.name) {
        return Err(format!(
            "local user `{name}` (GitLab user `{login}`) is in {table} user_blocklist"
        ));
    }
    let (allow_key, block_key) = group_keys(table);
    if let Some(group) = auth
        .group_blocklist
        .iter()
        .find(|g| is_member(&user, g.as_str()))
    {
        return Err(format!(
            "local user `{name}` (GitLab user `{login}`) is in group `{group}` of {table} {block_key}"
        ));
    }
    let listed = auth.user_allowlist.contains(&user.name)
        || auth
            .group_allowlist
            .iter()
            .any(|g| is_member(&user, g.as_str()));
    let open = auth.user_allowlist.is_empty() && auth.group_allowlist.is_empty();
    if !listed && !open {
        let lists = match (
            auth.user_allowlist.is_empty(),
            auth.group_allowlist.is_empty(),
        ) {
            (false, true) => "user_allowlist".to_string(),
            (true, false) => format!("a group of {allow_key}"),
            _ => format!("user_allowlist nor in a group of {allow_key}"),
        };
        return Err(format!(
            "local user `{name}` (GitLab user `{login}`) is not in {table} {lists}"
        ));
    }
    Ok(user)
}

/// The group lists' key names: Jacamar's `[auth]` spells them `groups_...`.
fn group_keys(table: &str) -> (&'static str, &'static str) {
    if table == "[auth]" {
        ("groups_allowlist", "groups_blocklist")
    } else {
        ("group_allowlist", "group_blocklist")
    }
}

fn is_member(user: &LocalUser, group: &str) -> bool {
    match nix::unistd::Group::from_name(group) {
        Ok(Some(found)) => user.groups.contains(&found.gid.as_raw()),
        _ => false,
    }
}

/// Whether `name` can be a local account's name: no path separators, spaces, colons or
/// control characters, not `.`/`..`, not an option.
fn is_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Most of a validation script's words that reach the job log.
const REFUSAL_LIMIT: usize = 1000;

/// Runs the validation script: `Ok(Some(user))` when it names a user, `Ok(None)` when it
/// accepts the default, `Err(reason)` when it refuses, fails or hangs.
async fn validate(
    script: &std::path::Path,
    timeout: Duration,
    claims: &Claims,
) -> Result<Option<String>, String> {
    let login = &claims.user_login;
    let shown = script.display();
    let mut command = tokio::process::Command::new(script);
    command
        .arg(login)
        .env_clear()
        .envs(script_env(claims))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("the validation script {shown} cannot start: {e}"))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let run = async {
        let (out, err) = tokio::join!(read_some(stdout.take()), read_some(stderr.take()));
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(timeout, run).await {
        Ok(done) => done,
        Err(_) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            return Err(format!(
                "the validation script {shown} did not answer within {timeout:?} for GitLab user `{login}`"
            ));
        }
    };
    let code = status
        .map(crate::command::exit_code)
        .map_err(|e| format!("the validation script {shown} failed: {e}"))?;
    let out = String::from_utf8_lossy(&out);
    let err = String::from_utf8_lossy(&err);
    if code != 0 {
        let words = one_line(if err.trim().is_empty() { &out } else { &err });
        let because = if words.is_empty() {
            format!("exit code {code}")
        } else {
            words
        };
        return Err(format!(
            "the validation script refused GitLab user `{login}`: {because}"
        ));
    }
    let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next()) {
        (None, _) => Ok(None),
        (Some(user), None) => Ok(Some(user.to_string())),
        (Some(_), Some(_)) => Err(format!(
            "the validation script {shown} printed more than one user name for GitLab user `{login}`"
        )),
    }
}

/// The first 64 KiB of `stream`; the rest is read to its end and dropped.
async fn read_some(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    const KEPT: usize = 64 * 1024;
    let mut bytes = Vec::new();
    let Some(mut stream) = stream else {
        return bytes;
    };
    let mut buffer = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let room = KEPT.saturating_sub(bytes.len()).min(n);
        bytes.extend_from_slice(&buffer[..room]);
    }
    bytes
}

/// `text` on one line, its lines joined with `; `, cut at [`REFUSAL_LIMIT`] characters.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let cleaned: String = joined
        .chars()
        .filter(|c| !c.is_control())
        .take(REFUSAL_LIMIT)
        .collect();
    if joined.chars().count() > REFUSAL_LIMIT {
        format!("{cleaned}...")
    } else {
        cleaned
    }
}

/// The validation script's environment: the verified claims, as Jacamar's RunAs gives them.
fn script_env(claims: &Claims) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("JWT_USER_LOGIN".into(), claims.user_login.clone()),
        ("JWT_USER_ID".into(), claims.user_id.to_string()),
        ("JWT_PROJECT_PATH".into(), claims.project_path.clone()),
        ("JWT_NAMESPACE_PATH".into(), claims.namespace_path.clone()),
        ("JWT_REF".into(), claims.ref_.clone()),
        ("JWT_REF_PROTECTED".into(), claims.ref_protected.to_string()),
        ("JWT_JOB_ID".into(), claims.job_id.to_string()),
        ("JWT_PIPELINE_ID".into(), claims.pipeline_id.to_string()),
        ("JWT_PROJECT_ID".into(), claims.project_id.to_string()),
        ("JWT_NAMESPACE_ID".into(), claims.namespace_id.to_string()),
    ];
    let optional = [
        ("JWT_USER_EMAIL", &claims.user_email),
        ("JWT_PIPELINE_SOURCE", &claims.pipeline_source),
        ("JWT_REF_TYPE", &claims.ref_type),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            env.push((key.into(), value.clone()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthConfig;

    fn claims(login: &str) -> Claims {
        Claims {
            user_login: login.into(),
            user_id: 42,
            user_email: Some("alice@example.com".into()),
            project_path: "group/project".into(),
            namespace_path: "group".into(),
            ref_: "main".into(),
            ref_protected: true,
            job_id: 7,
            pipeline_id: 3,
            namespace_id: 2,
            project_id: 5,
            pipeline_source: Some("push".into()),
            ref_type: Some("branch".into()),
            sha: None,
            runner_id: None,
            subject: "project_path:group/project:ref_type:branch:ref:main".into(),
            expires_at: 0,
        }
    }

    async fn mapped(auth: &AuthConfig, login: &str) -> Result<String, String> {
        let check = Check {
            table: "[runners.auth]",
            auth,
            gitlab_url: "https://gitlab.example.com",
            job_id: 7,
        };
        map(&check, &claims(login)).await.map(|user| user.name)
    }

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("validate");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    // `root`, `daemon` and `nobody` exist on every Debian system; `daemon` is in group `daemon`.

    #[tokio::test]
    async fn the_login_is_the_user_and_the_lists_and_root_rule_apply() {
        let mut auth = AuthConfig::default();
        assert_eq!(mapped(&auth, "daemon").await.as_deref(), Ok("daemon"));
        assert_eq!(
            mapped(&auth, "no-such-user-here").await,
            Err("GitLab user `no-such-user-here` maps to local user `no-such-user-here`, which does not exist on this host".into())
        );
        assert_eq!(
            mapped(&auth, "root").await,
            Err("GitLab user `root` maps to local user `root`, which is root (uid 0), and [runners.auth] allow_root is false".into())
        );
        auth.allow_root = true;
        assert_eq!(mapped(&auth, "root").await.as_deref(), Ok("root"));

        auth.user_blocklist = vec!["daemon".into()];
        assert_eq!(
            mapped(&auth, "daemon").await,
            Err(
                "local user `daemon` (GitLab user `daemon`) is in [runners.auth] user_blocklist"
                    .into()
            )
        );
        auth.user_blocklist.clear();
        auth.group_blocklist = vec!["daemon".into()];
        assert_eq!(
            mapped(&auth, "daemon").await,
            Err("local user `daemon` (GitLab user `daemon`) is in group `daemon` of [runners.auth] group_blocklist".into())
        );
        auth.group_blocklist.clear();

        auth.user_allowlist = vec!["nobody".into()];
        assert_eq!(
            mapped(&auth, "daemon").await,
            Err("local user `daemon` (GitLab user `daemon`) is not in [runners.auth] user_allowlist".into())
        );
        auth.group_allowlist = vec!["daemon".into()];
        assert_eq!(mapped(&auth, "daemon").await.as_deref(), Ok("daemon"));
        assert_eq!(mapped(&auth, "nobody").await.as_deref(), Ok("nobody"));
        auth.user_allowlist.clear();
        assert_eq!(
            mapped(&auth, "nobody").await,
            Err("local user `nobody` (GitLab user `nobody`) is not in [runners.auth] a group of group_allowlist".into())
        );
    }

    #[tokio::test]
    async fn the_validation_script_sees_the_claims_and_may_rename_accept_or_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let mut auth = AuthConfig {
            validation_script: Some(script(
                dir.path(),
                "[ \"$1 $JWT_USER_LOGIN $JWT_USER_ID $JWT_PROJECT_PATH $JWT_NAMESPACE_PATH $JWT_REF $JWT_REF_PROTECTED $JWT_JOB_ID $JWT_PIPELINE_ID $JWT_USER_EMAIL $JWT_PROJECT_ID $JWT_NAMESPACE_ID $JWT_PIPELINE_SOURCE $JWT_REF_TYPE\" = \
                 'alice alice 42 group/project group main true 7 3 alice@example.com 5 2 push branch' ] || exit 9\necho daemon",
            )),
            ..AuthConfig::default()
        };
        assert_eq!(mapped(&auth, "alice").await.as_deref(), Ok("daemon"));

        auth.validation_script = Some(script(dir.path(), "exit 0"));
        assert_eq!(mapped(&auth, "nobody").await.as_deref(), Ok("nobody"));

        auth.validation_script = Some(script(
            dir.path(),
            "echo 'alice may not use this cluster' >&2\necho 'ask the admins' >&2\nexit 1",
        ));
        assert_eq!(
            mapped(&auth, "alice").await,
            Err("the validation script refused GitLab user `alice`: alice may not use this cluster; ask the admins".into())
        );

        auth.validation_script = Some(script(dir.path(), "exit 3"));
        assert_eq!(
            mapped(&auth, "alice").await,
            Err("the validation script refused GitLab user `alice`: exit code 3".into())
        );

        auth.validation_script = Some(script(dir.path(), "echo root"));
        assert_eq!(
            mapped(&auth, "alice").await,
            Err("GitLab user `alice` maps to local user `root`, which is root (uid 0), and [runners.auth] allow_root is false".into())
        );

        auth.validation_script = Some(script(dir.path(), "echo ../etc"));
        assert_eq!(
            mapped(&auth, "alice").await,
            Err("GitLab user `alice` maps to `../etc`, which is not a local user name".into())
        );

        let path = script(dir.path(), "exec sleep 30");
        auth.validation_script = Some(path.clone());
        auth.validation_timeout = Duration::from_millis(300);
        assert_eq!(
            mapped(&auth, "alice").await,
            Err(format!(
                "the validation script {} did not answer within 300ms for GitLab user `alice`",
                path.display()
            ))
        );
    }
}
