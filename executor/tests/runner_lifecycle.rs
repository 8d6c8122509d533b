//! A runner's life as an admin runs it: `batchci verify-runners`, `unregister` and
//! `reset-token` against the mock GitLab, with what they print, their exit codes, what GitLab
//! knows afterwards and what the configuration file holds.

use std::path::{Path, PathBuf};

use mock_gitlab::api::{NewRunner, Settings};
use mock_gitlab::{MockConfig, MockGitlab};

/// A mock GitLab with two runners and a configuration naming them, plus a third runner whose
/// token GitLab does not know.
struct Site {
    _dir: tempfile::TempDir,
    gitlab: MockGitlab,
    config: PathBuf,
    tokens: [String; 2],
}

const STALE: &str = "glrt-stale0000000000";

impl Site {
    async fn start(settings: Settings) -> Site {
        let gitlab = MockGitlab::start(MockConfig {
            settings,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let register = |name: &str| {
            gitlab
                .register_runner(NewRunner {
                    description: name.into(),
                    ..NewRunner::default()
                })
                .token
        };
        let tokens = [register("cluster-a"), register("cluster-b")];
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text(gitlab.url(), &tokens)).unwrap();
        Site {
            _dir: dir,
            gitlab,
            config,
            tokens,
        }
    }

    /// Runs `batchci ARGS --config <config>`: exit code, stdout, stderr.
    async fn batchci(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = assert_cmd::Command::cargo_bin("batchci").unwrap();
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("BATCHCI_LOG")
            .timeout(std::time::Duration::from_secs(60));
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn file(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }

    fn registered(&self) -> Vec<String> {
        self.gitlab
            .runners()
            .into_iter()
            .map(|r| r.description)
            .collect()
    }

    /// The output with the configuration's path and the short tokens made readable.
    fn plain(&self, text: &str) -> String {
        let short = |token: &str| token.trim_start_matches("glrt-")[..8].to_string();
        text.replace(&self.config.display().to_string(), "CONFIG")
            .replace(self.gitlab.url(), "GITLAB")
            .replace(&short(&self.tokens[0]), "A-TOKEN")
            .replace(&short(&self.tokens[1]), "B-TOKEN")
    }
}

fn config_text(url: &str, tokens: &[String; 2]) -> String {
    format!(
        r#"# batchci on the login node
concurrent = 2

# Production.
[[runners]]
name = "cluster-a"
url = "{url}"
token = "{a}"   # from the runner settings
executor = "shell"

# Removed from GitLab's UI last week.
[[runners]]
name = "stale"
url = "{url}"
token = "{STALE}"
executor = "shell"

[[runners]]
name = "cluster-b"
url = "{url}"
token = "{b}"
executor = "shell"
"#,
        a = tokens[0],
        b = tokens[1],
    )
}

fn entry_names(path: &Path) -> Vec<String> {
    batchci::config::Config::load(path)
        .unwrap()
        .runners
        .into_iter()
        .map(|r| r.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_runners_says_which_tokens_gitlab_accepts_and_delete_drops_the_refused() {
    let site = Site::start(Settings::default()).await;
    let ids: Vec<u64> = site.gitlab.runners().iter().map(|r| r.id).collect();

    let (code, stdout, stderr) = site.batchci(&["verify-runners"]).await;

    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        site.plain(&stdout),
        format!(
            "runner \"cluster-a\" (token A-TOKEN): valid at GITLAB (runner id {})\n\
             runner \"stale\" (token stale000): GitLab refuses its token: it no longer knows this runner, or the token expired (GITLAB)\n\
             runner \"cluster-b\" (token B-TOKEN): valid at GITLAB (runner id {})\n",
            ids[0], ids[1]
        )
    );
    assert_eq!(
        stderr,
        "hint: `batchci verify-runners --delete` removes the runners whose token GitLab refuses from the configuration\n"
    );
    let before = site.file();

    let (code, stdout, stderr) = site.batchci(&["verify-runners", "--delete"]).await;

    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        site.plain(&stdout).lines().nth(1),
        Some(
            "runner \"stale\" (token stale000): GitLab refuses its token: it no longer knows this runner, or the token expired; removed from CONFIG"
        )
    );
    let without_stale = before.replace(
        &format!(
            "# Removed from GitLab's UI last week.\n[[runners]]\nname = \"stale\"\nurl = \"{}\"\ntoken = \"{STALE}\"\nexecutor = \"shell\"\n\n",
            site.gitlab.url()
        ),
        "",
    );
    assert_ne!(without_stale, before);
    assert_eq!(site.file(), without_stale);
    assert_eq!(site.registered(), ["cluster-a", "cluster-b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_runners_of_one_name_asks_about_that_runner_only() {
    let site = Site::start(Settings::default()).await;

    let (code, stdout, _) = site
        .batchci(&["verify-runners", "--name", "cluster-b"])
        .await;
    let (unknown, _, stderr) = site
        .batchci(&["verify-runners", "--name", "cluster-c"])
        .await;

    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.starts_with("runner \"cluster-b\""), "{stdout}");
    assert_eq!(unknown, 2);
    assert_eq!(
        site.plain(&stderr),
        "batchci: CONFIG: no runner is named `cluster-c`; its runners are `cluster-a`, `stale`, `cluster-b`; did you mean `cluster-a`?\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unregister_removes_the_runner_from_gitlab_and_its_entry_from_the_file() {
    let site = Site::start(Settings::default()).await;
    let before = site.file();

    let (code, stdout, stderr) = site.batchci(&["unregister", "--name", "cluster-a"]).await;

    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        site.plain(&stdout),
        "runner \"cluster-a\" (token A-TOKEN): unregistered from GITLAB; removed from CONFIG\n"
    );
    assert_eq!(
        stderr,
        "hint: a running `batchci run` keeps the configuration it started with: restart it (systemctl restart batchci)\n"
    );
    assert_eq!(site.registered(), ["cluster-b"]);
    let removed = format!(
        "# Production.\n[[runners]]\nname = \"cluster-a\"\nurl = \"{}\"\ntoken = \"{}\"   # from the runner settings\nexecutor = \"shell\"\n\n",
        site.gitlab.url(),
        site.tokens[0]
    );
    assert_eq!(site.file(), before.replace(&removed, ""));
}

#[tokio::test(flavor = "multi_thread")]
async fn unregister_all_runners_keeps_the_one_gitlab_refuses() {
    let site = Site::start(Settings::default()).await;

    let (code, stdout, stderr) = site.batchci(&["unregister", "--all-runners"]).await;

    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        site.plain(&stdout),
        "runner \"cluster-a\" (token A-TOKEN): unregistered from GITLAB; removed from CONFIG\n\
         runner \"stale\" (token stale000): GitLab refuses its token: it no longer knows this runner, or the token expired (GITLAB); left in CONFIG\n\
         runner \"cluster-b\" (token B-TOKEN): unregistered from GITLAB; removed from CONFIG\n"
    );
    assert_eq!(site.registered(), Vec::<String>::new());
    assert_eq!(entry_names(&site.config), ["stale"]);
    assert!(
        site.file()
            .starts_with("# batchci on the login node\nconcurrent = 2\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unregister_needs_a_name_or_all_runners_but_not_both() {
    let site = Site::start(Settings::default()).await;

    let (neither, _, neither_err) = site.batchci(&["unregister"]).await;
    let (both, _, both_err) = site
        .batchci(&["unregister", "--name", "cluster-a", "--all-runners"])
        .await;

    assert_eq!(neither, 2);
    assert!(
        neither_err.contains("the following required arguments were not provided"),
        "{neither_err}"
    );
    assert_eq!(both, 2);
    assert!(both_err.contains("cannot be used with"), "{both_err}");
    assert_eq!(site.registered(), ["cluster-a", "cluster-b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_token_writes_the_new_token_and_its_expiry_in_place() {
    let site = Site::start(Settings {
        runner_token_expiration_interval: Some(30 * 24 * 3600),
        ..Settings::default()
    })
    .await;
    let before = site.file();

    let (code, stdout, stderr) = site.batchci(&["reset-token", "--name", "cluster-a"]).await;

    assert_eq!(code, 0, "{stderr}");
    let config = batchci::config::Config::load(&site.config).unwrap();
    let new = config.runners[0].token.clone();
    assert_ne!(new, site.tokens[0]);
    let listed = site.gitlab.runners();
    let expires = listed[0].token_expires_at.clone().unwrap();
    // GitLab's milliseconds are dropped: TOML times here are to the second.
    let expires_toml = format!("{}Z", &expires[..19]);
    let new_short: String = new.trim_start_matches("glrt-").chars().take(8).collect();
    let builds = std::env::temp_dir().join("batchci-builds");
    assert_eq!(
        site.plain(&stdout),
        format!(
            "runner \"cluster-a\" (token A-TOKEN): new token {new_short}, expires {expires} written to CONFIG; builds now go to {}/ ({}/ is no longer used)\n",
            builds.join(&new_short).display(),
            builds.join("A-TOKEN").display(),
        )
    );
    let text = site.file();
    let obtained = text
        .lines()
        .find_map(|l| l.strip_prefix("token_obtained_at = "))
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        before.replace(
            &format!(
                "token = \"{}\"   # from the runner settings\nexecutor = \"shell\"\n",
                site.tokens[0]
            ),
            &format!(
                "token = \"{new}\"   # from the runner settings\nexecutor = \"shell\"\ntoken_obtained_at = {obtained}\ntoken_expires_at = {expires_toml}\n"
            )
        )
    );
    let client = batchci::gitlab::GitlabClient::new(site.gitlab.url(), "shell").unwrap();
    assert!(client.verify(&new).await.unwrap());
    assert!(!client.verify(&site.tokens[0]).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_token_of_a_refused_token_changes_nothing() {
    let site = Site::start(Settings::default()).await;
    let before = site.file();

    let (code, stdout, _) = site.batchci(&["reset-token", "--name", "stale"]).await;

    assert_eq!(code, 1);
    assert_eq!(
        site.plain(&stdout),
        "runner \"stale\" (token stale000): not reset: GitLab refuses its token: it no longer knows this runner, or the token expired (GITLAB)\n"
    );
    assert_eq!(site.file(), before);
}
