//! `batchci check` as an admin runs it before `batchci run`: the real binary against a mock
//! GitLab and the simulated cluster (every scheduler's commands), and the real Slurm with and
//! without `SLURM_CONF` when `ci/test` started one. A sound site passes (exit 0); each broken
//! setup fails (exit 1) with a row that names the problem, or warns (exit 0).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cluster::Cluster;
use support::{Site, workspace_binary};

/// What `batchci check` printed and how it exited.
struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Checked {
    /// The rows of the table, as `(check, runner, status, detail)`, cut at the header's
    /// columns.
    fn rows(&self) -> Vec<(String, String, String, String)> {
        let mut lines = self
            .stdout
            .lines()
            .skip_while(|line| !line.starts_with("check "));
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let at = |title: &str| header.find(title).unwrap();
        let (runner, status, detail) = (at("runner"), at("status"), at("detail"));
        lines
            .take_while(|line| !line.is_empty())
            .map(|line| {
                let cut = |from: usize, to: usize| line[from..to].trim_end().to_string();
                (
                    cut(0, runner),
                    cut(runner, status),
                    cut(status, detail),
                    line[detail..].to_string(),
                )
            })
            .collect()
    }

    /// The status and detail of the row `check` of `runner`; panics with the output when
    /// there is none.
    fn row(&self, check: &str, runner: &str) -> (String, String) {
        self.rows()
            .into_iter()
            .find(|(c, r, _, _)| c == check && r == runner)
            .map(|(_, _, status, detail)| (status, detail))
            .unwrap_or_else(|| panic!("no row {check} of {runner} in:\n{}", self.stdout))
    }

    /// The rows that are not `ok` or `skipped`, as `check status`.
    fn problems(&self) -> Vec<String> {
        self.rows()
            .into_iter()
            .filter(|(_, _, status, _)| status != "ok" && status != "skipped")
            .map(|(check, runner, status, _)| format!("{check} {runner} {status}"))
            .collect()
    }
}

/// `batchci check --config CONFIG ARGS` with exactly `env` as its environment.
fn check(config: &Path, env: &[(String, String)], args: &[&str]) -> Checked {
    let output = Command::new(workspace_binary("batchci"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    Checked {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The environment batchci gets for the simulated cluster, and nothing of the test's own
/// (under `ci/test` that holds the real Slurm's `SLURM_CONF`).
fn fake_env(cluster: &Cluster) -> Vec<(String, String)> {
    cluster.batchci_env()
}

/// The `[runners.batch]` table of a runner on the simulated cluster: its fakes find their
/// cluster through `MOCK_CLUSTER_STATE_DIR`.
const FAKE_BATCH: &str = "  [runners.batch]\n  env_vars = [\"MOCK_CLUSTER_STATE_DIR\"]\n";

fn state_dir_of(cluster: &Cluster) -> PathBuf {
    match cluster {
        Cluster::Fake { state_dir, .. } => state_dir.clone(),
        Cluster::Real { .. } => panic!("the simulated cluster only"),
    }
}

/// The output with what changes from run to run replaced: the site's and the cluster's
/// directories, the mock GitLab's address, the user the tests run as.
fn redacted(text: &str, site: &Site, cluster_dir: &Path) -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    text.replace(&cluster_dir.display().to_string(), "[CLUSTER]")
        .replace(&site.dir.path().display().to_string(), "[SITE]")
        .replace(site.gitlab.url(), "[GITLAB]")
        .replace(&format!(" {user} "), " [USER] ")
        .replace(&format!(" {user},"), " [USER],")
        .replace(&format!(" {user})"), " [USER])")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sound_slurm_runner_on_the_simulated_cluster_passes_and_the_table_says_why() {
    let site = Site::start(&["slurm"]).await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let config = site.write_config("slurm", FAKE_BATCH);

    let checked = check(&config, &fake_env(&cluster), &[]);

    assert_eq!(
        checked.code,
        Some(0),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    assert_eq!(checked.stderr, "");
    insta::assert_snapshot!(
        "sound_slurm_runner",
        redacted(&checked.stdout, &site, dir.path())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_setup_fails_naming_the_problem() {
    let site = Site::start(&["slurm"]).await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let env = fake_env(&cluster);
    let file = site.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();

    // sbatch and the others missing from the commands' PATH.
    let config = site.write_config("slurm", FAKE_BATCH);
    let empty = site.dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let no_path = [
        ("PATH".to_string(), empty.display().to_string()),
        (
            "MOCK_CLUSTER_STATE_DIR".to_string(),
            state_dir_of(&cluster).display().to_string(),
        ),
    ];
    let checked = check(&config, &no_path, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    assert_eq!(
        checked.row("programs", "conformance"),
        (
            "error".into(),
            format!(
                "sbatch, scancel, squeue, scontrol, sacct not found in PATH={}; install the scheduler's commands or set scheduler_bin under [runners.batch]",
                empty.display()
            )
        )
    );
    assert_eq!(
        checked.row("controller", "conformance"),
        (
            "error".into(),
            format!(
                "`scontrol ping`: cannot start scontrol: not found (PATH={})",
                empty.display()
            )
        )
    );
    assert_eq!(
        checked.stdout.lines().last(),
        Some("check failed: 2 error(s), 0 warning(s)")
    );

    // A token GitLab refuses.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&site.runner_token, "glrt-refused")).unwrap();
    let checked = check(&config, &env, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    assert_eq!(
        checked.row("token", "conformance"),
        (
            "error".into(),
            format!(
                "{}:8: runners[0].token: {} refuses this token: register the runner again (`batchci register`) or write its current token",
                config.display(),
                site.gitlab.url()
            )
        )
    );
    // ... which --offline does not ask about.
    let checked = check(&config, &env, &["--offline"]);
    assert_eq!(checked.code, Some(0), "{}", checked.stdout);
    assert_eq!(
        checked.row("token", "conformance"),
        ("skipped".into(), "--offline: GitLab not asked".into())
    );

    // A state_dir and a builds_dir that cannot be made (a file is in the way), and a
    // relative builds_dir.
    let config = site.write_config("slurm", FAKE_BATCH);
    let text = std::fs::read_to_string(&config).unwrap();
    let state = site.dir.path().join("state").display().to_string();
    let builds = site.dir.path().join("builds").display().to_string();
    let in_file = file.join("sub").display().to_string();
    std::fs::write(
        &config,
        text.replace(&state, &in_file).replace(&builds, &in_file),
    )
    .unwrap();
    let checked = check(&config, &env, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    let owner = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777
    };
    for (check_name, runner, line, key) in [
        ("state_dir", "-", 3, "state_dir"),
        ("builds_dir", "conformance", 10, "runners[0].builds_dir"),
    ] {
        assert_eq!(
            checked.row(check_name, runner),
            (
                "error".into(),
                format!(
                    "{}:{line}: {key}: `{}` is not a directory (owner {owner}, mode {mode:04o})",
                    config.display(),
                    file.display()
                )
            )
        );
    }
    std::fs::write(
        &config,
        text.replace(
            &format!("builds_dir = {builds:?}"),
            "builds_dir = \"builds\"",
        ),
    )
    .unwrap();
    let checked = check(&config, &env, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    assert_eq!(
        checked.row("builds_dir", "conformance"),
        (
            "error".into(),
            format!(
                "{}:10: runners[0].builds_dir: `builds` is relative; write an absolute path (a relative one depends on the working directory, which differs between `batchci check`, `batchci run` and a service manager)",
                config.display()
            )
        )
    );

    // A listen_address `batchci run` cannot serve.
    std::fs::write(&config, format!("listen_address = \"9252\"\n{text}")).unwrap();
    let checked = check(&config, &env, &[]);
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    assert_eq!(
        checked.row("listen_address", "-"),
        (
            "error".into(),
            format!(
                "{}:1: listen_address: `9252` is a port without a host: write `127.0.0.1:9252` (this host only) or `:9252` (every interface)",
                config.display()
            )
        )
    );
    assert_eq!(checked.problems(), ["listen_address - error"]);
}

/// Warnings say what is probably not meant, and leave the exit code 0.
#[tokio::test(flavor = "multi_thread")]
async fn check_interval_zero_and_unset_env_vars_are_warnings() {
    let site = Site::start(&["slurm"]).await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let config = site.write_config(
        "slurm",
        "  [runners.batch]\n  env_vars = [\"MOCK_CLUSTER_STATE_DIR\", \"SITE_MODULES\"]\n",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("check_interval = 1", "check_interval = 0"),
    )
    .unwrap();

    let checked = check(&config, &fake_env(&cluster), &[]);

    assert_eq!(checked.code, Some(0), "{}", checked.stdout);
    assert_eq!(
        checked.problems(),
        ["durations - warning", "env_vars conformance warning"]
    );
    assert_eq!(
        checked.row("durations", "-").1,
        format!(
            "{}:2: check_interval: 0 is read as 3s (gitlab-runner's meaning of 0); write `check_interval = 3` to say so",
            config.display()
        )
    );
    let (_, unset) = checked
        .rows()
        .into_iter()
        .filter(|(c, _, s, _)| c == "env_vars" && s == "warning")
        .map(|(_, _, s, d)| (s, d))
        .next()
        .unwrap();
    assert_eq!(
        unset,
        format!(
            "{}:12: runners[0].batch.env_vars[1]: `SITE_MODULES` is not set in batchci's environment; scheduler commands do not get it",
            config.display()
        )
    );
    assert_eq!(
        checked.stdout.lines().last(),
        Some("check passed with 2 warning(s)")
    );
}

/// Every scheduler's controller is asked with that scheduler's own command; a controller
/// that does not answer fails the check in its command's words.
#[tokio::test(flavor = "multi_thread")]
async fn every_schedulers_controller_is_asked_and_one_that_is_down_fails() {
    let site = Site::start(&["slurm"]).await;
    for (executor, flavor, command, answer) in [
        (
            "slurm",
            "pbs",
            "scontrol ping",
            "`scontrol ping`: Slurmctld(primary) at mock-cluster is UP",
        ),
        (
            "docker+slurm",
            "pbs",
            "scontrol ping",
            "`scontrol ping`: Slurmctld(primary) at mock-cluster is UP",
        ),
        ("pbs", "pbs", "qstat -B", "`qstat -B` answered"),
        ("cobalt", "cobalt", "qstat", "`qstat` answered"),
        ("lsf", "pbs", "bhosts", "`bhosts` answered"),
        ("flux", "pbs", "flux uptime", "`flux uptime`: "),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::fake_flavored(dir.path(), flavor);
        let config = site.write_config(executor, FAKE_BATCH);
        let env = fake_env(&cluster);

        let checked = check(&config, &env, &[]);

        assert_eq!(checked.code, Some(0), "{executor}:\n{}", checked.stdout);
        let (status, detail) = checked.row("controller", "conformance");
        assert_eq!(status, "ok", "{executor}: {detail}");
        assert!(detail.starts_with(answer), "{executor}: {detail}");

        // The controller stops and may not be started by the commands.
        let stopped = Command::new(workspace_binary("mock-cluster"))
            .args(["stop", "--state-dir"])
            .arg(state_dir_of(&cluster))
            .output()
            .unwrap();
        assert!(stopped.status.success());
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!("{text}  scheduler_environment = [\"MOCK_CLUSTER_NO_AUTOSTART=1\"]\n"),
        )
        .unwrap();

        let checked = check(&config, &env, &[]);

        assert_eq!(checked.code, Some(1), "{executor}:\n{}", checked.stdout);
        assert_eq!(
            checked.problems(),
            ["controller conformance error"],
            "{executor}"
        );
        let (_, detail) = checked.row("controller", "conformance");
        assert!(
            detail.starts_with(&format!("`{command}` failed (exit ")),
            "{executor}: {detail}"
        );
    }
}

/// `register` where the scheduler's client variable is set writes it into the runner's
/// `scheduler_environment`: `run` under a service manager gets it whatever its environment.
#[tokio::test(flavor = "multi_thread")]
async fn register_pins_the_slurm_conf_it_found() {
    let site = Site::start(&[]).await;
    let config = site.dir.path().join("registered.toml");
    let output = Command::new(workspace_binary("batchci"))
        .args(["register", "--config"])
        .arg(&config)
        .args(["--url", site.gitlab.url()])
        .args(["--registration-token", site.gitlab.registration_token()])
        .args(["--executor", "slurm", "--name", "hpc"])
        .env("SLURM_CONF", "/etc/slurm/site.conf")
        .env("PBS_CONF_FILE", "/etc/pbs.conf")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.ends_with(
            "  [runners.batch]\n  arguments_variable = [\"SCHEDULER_PARAMETERS\"]\n  # as `batchci register` found them; `batchci run` gets these whatever its own environment\n  scheduler_environment = [\"SLURM_CONF=/etc/slurm/site.conf\"]\n"
        ),
        "{text}"
    );
}

mod real {
    use super::*;

    /// The real Slurm's commands, reached through recording wrappers, with or without its
    /// `SLURM_CONF` in batchci's environment.
    fn real_env(cluster: &Cluster, with_conf: bool) -> Vec<(String, String)> {
        cluster
            .batchci_env()
            .into_iter()
            .filter(|(k, _)| with_conf || k != "SLURM_CONF")
            .collect()
    }

    /// `SLURM_CONF` in batchci's environment reaches the scheduler commands without being
    /// listed in `env_vars`; without it, `scontrol ping` cannot find the controller and the
    /// check fails in Slurm's words, saying what to set.
    #[tokio::test(flavor = "multi_thread")]
    async fn slurm_conf_decides_whether_the_controller_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let Some(cluster) = Cluster::real(dir.path()) else {
            return;
        };
        let site = Site::start(&["slurm"]).await;
        let config = site.write_config("slurm", "");

        let checked = check(&config, &real_env(&cluster, true), &[]);

        assert_eq!(checked.code, Some(0), "{}", checked.stdout);
        let (status, detail) = checked.row("controller", "conformance");
        assert_eq!(status, "ok");
        assert!(
            detail.starts_with("`scontrol ping`: Slurmctld(primary) at ")
                && detail.ends_with(" is UP"),
            "{detail}"
        );
        let conf = std::env::var("SLURM_CONF").unwrap();
        assert_eq!(
            checked.row("environment", "conformance").1,
            format!("client variables: SLURM_CONF={conf} (from batchci's environment)")
        );
        assert!(
            cluster
                .calls_of("scontrol")
                .contains(&vec!["scontrol".to_string(), "ping".to_string()])
        );

        let checked = check(&config, &real_env(&cluster, false), &[]);

        assert_eq!(checked.code, Some(1), "{}", checked.stdout);
        assert_eq!(checked.problems(), ["controller conformance error"]);
        let (_, detail) = checked.row("controller", "conformance");
        assert!(
            detail.starts_with("`scontrol ping` failed (exit 1): ")
                && detail.contains("Could not establish a configuration source")
                && detail.ends_with("; SLURM_CONF is not set for them: export it in batchci's environment, or set `scheduler_environment = [\"SLURM_CONF=...\"]` under [runners.batch]"),
            "{detail}"
        );
    }

    /// A runner registered in a shell where `SLURM_CONF` was set passes the check in an
    /// environment without it, as `run` from a service manager has.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_runner_registered_with_slurm_conf_passes_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let Some(cluster) = Cluster::real(dir.path()) else {
            return;
        };
        let site = Site::start(&[]).await;
        let config = site.dir.path().join("registered.toml");
        let conf = std::env::var("SLURM_CONF").unwrap();
        let output = Command::new(workspace_binary("batchci"))
            .args(["register", "--config"])
            .arg(&config)
            .args(["--url", site.gitlab.url()])
            .args(["--registration-token", site.gitlab.registration_token()])
            .args(["--executor", "slurm", "--name", "hpc", "--builds-dir"])
            .arg(site.dir.path().join("builds"))
            .env("SLURM_CONF", &conf)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n{text}",
                site.dir.path().join("state").display().to_string()
            ),
        )
        .unwrap();

        let checked = check(&config, &real_env(&cluster, false), &[]);

        assert_eq!(checked.code, Some(0), "{}", checked.stdout);
        assert_eq!(
            checked.row("environment", "hpc").1,
            format!("client variables: SLURM_CONF={conf} (from scheduler_environment)")
        );
        assert_eq!(checked.row("controller", "hpc").0, "ok");
    }
}
