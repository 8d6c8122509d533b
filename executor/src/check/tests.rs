//! Stories of `batchci check` against configurations with one problem each, on stand-in
//! scheduler commands (small scripts in a temporary `scheduler_bin`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A temporary site: a configuration file and a directory for everything else.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Site { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A stand-in scheduler command `name` in `bin/` that runs `body` (sh).
    fn program(&self, name: &str, body: &str) {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let file = bin.join(name);
        std::fs::write(&file, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Slurm's commands, `scontrol ping` answering with `ping`.
    fn slurm(&self, ping: &str) {
        for name in ["sbatch", "squeue", "scancel", "sacct"] {
            self.program(name, "exit 0");
        }
        self.program("scontrol", ping);
    }

    /// Checks `text` (with `{dir}` replaced by the site's directory) offline, with a short
    /// deadline; the rows as `check runner status detail` with the directory shown as DIR.
    async fn check(&self, text: &str) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        let text = text.replace("{dir}", &dir);
        let file = self.path("config.toml");
        std::fs::write(&file, &text).unwrap();
        let config = Config::parse(&file, &text).unwrap();
        let options = CheckOptions {
            offline: true,
            timeout: Duration::from_secs(2),
        };
        let report = check(&config, &file, &text, &options).await;
        report
            .rows
            .iter()
            .map(|row| {
                format!(
                    "{} {} {} {}",
                    row.check,
                    row.runner,
                    row.status.as_str(),
                    row.detail
                )
                .replace(&dir, "DIR")
                .replace(&dirs::own_user(), "USER")
            })
            .collect()
    }
}

const SOUND_SHELL: &str = "concurrent = 1\ncheck_interval = 3\nstate_dir = \"{dir}/state\"\n\n[[runners]]\nname = \"local\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-1\"\nexecutor = \"shell\"\nbuilds_dir = \"{dir}/builds\"\n";

#[tokio::test]
async fn a_sound_shell_runner_passes_offline() {
    let site = Site::new();
    assert_eq!(
        site.check(SOUND_SHELL).await,
        [
            "durations - ok check_interval 3s, shutdown_timeout 0s (running jobs finish however long they take)",
            "state_dir - ok `DIR/state` does not exist yet; USER can create it in `DIR`",
            "programs local ok bash in /bin",
            "token local skipped --offline: GitLab not asked",
            "builds_dir local ok `DIR/builds` does not exist yet; USER can create it in `DIR`",
            "durations local ok none used by the shell executor",
        ]
    );
}

#[tokio::test]
async fn each_broken_setting_is_an_error_or_warning_naming_line_and_key() {
    let site = Site::new();
    let text = "concurrent = 1\ncheck_interval = 0\nlisten_address = \"9252\"\nstate_dir = \"state\"\n\n[[runners]]\nname = \"local\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-1\"\nexecutor = \"shell\"\nbuilds_dir = \"builds\"\n  [runners.batch]\n  env_vars = [\"HOME\", \"BATCHCI_CHECK_SURELY_UNSET\"]\n";
    assert_eq!(
        site.check(text).await,
        [
            "listen_address - error DIR/config.toml:3: listen_address: `9252` is a port without a host: write `127.0.0.1:9252` (this host only) or `:9252` (every interface)",
            "durations - warning DIR/config.toml:2: check_interval: 0 is read as 3s (gitlab-runner's meaning of 0); write `check_interval = 3` to say so",
            "state_dir - error DIR/config.toml:4: state_dir: `state` is relative; write an absolute path (a relative one depends on the working directory, which differs between `batchci check`, `batchci run` and a service manager)",
            "programs local ok bash in /bin",
            "env_vars local warning DIR/config.toml:13: runners[0].batch.env_vars[1]: `BATCHCI_CHECK_SURELY_UNSET` is not set in batchci's environment; scheduler commands do not get it",
            "env_vars local ok HOME set in batchci's environment",
            "token local skipped --offline: GitLab not asked",
            "builds_dir local error DIR/config.toml:11: runners[0].builds_dir: `builds` is relative; write an absolute path (a relative one depends on the working directory, which differs between `batchci check`, `batchci run` and a service manager)",
            "durations local ok none used by the shell executor",
        ]
    );
}

#[tokio::test]
async fn a_configuration_without_runners_fails() {
    let site = Site::new();
    let rows = site.check("state_dir = \"{dir}/state\"\n").await;
    assert_eq!(
        rows[0],
        "runners - error the configuration has no [[runners]]; add one with `batchci register`"
    );
}

fn slurm_runner(extra: &str) -> String {
    format!(
        "state_dir = \"{{dir}}/state\"\n\n[[runners]]\nname = \"hpc\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-1\"\nexecutor = \"slurm\"\nbuilds_dir = \"{{dir}}\"\n  [runners.batch]\n  scheduler_bin = \"{{dir}}/bin\"\n{extra}"
    )
}

/// The rows of the runner's scheduler commands only.
fn scheduler_rows(rows: Vec<String>) -> Vec<String> {
    rows.into_iter()
        .filter(|row| {
            row.starts_with("programs ")
                || row.starts_with("environment ")
                || row.starts_with("controller ")
        })
        .collect()
}

#[tokio::test]
async fn a_slurm_runner_whose_controller_answers_passes() {
    let site = Site::new();
    site.slurm("echo 'Slurmctld(primary) at head is UP'");
    let text = slurm_runner("  scheduler_environment = [\"SLURM_CONF=/etc/slurm/site.conf\"]\n");
    assert_eq!(
        scheduler_rows(site.check(&text).await),
        [
            "programs hpc ok sbatch scancel squeue scontrol sacct in DIR/bin",
            "environment hpc ok client variables: SLURM_CONF=/etc/slurm/site.conf (from scheduler_environment)",
            "controller hpc ok `scontrol ping`: Slurmctld(primary) at head is UP",
        ]
    );
}

/// The programs are looked for in the commands' own PATH (here only the stand-ins' directory:
/// this machine's own PATH may hold a real Slurm).
#[test]
fn a_missing_scheduler_command_is_an_error() {
    let site = Site::new();
    site.program("scontrol", "exit 0");
    site.program("squeue", "exit 0");
    let text = slurm_runner("").replace("{dir}", &site.dir.path().display().to_string());
    let config = Config::parse(Path::new("config.toml"), &text).unwrap();
    let bin = site.path("bin");
    let env = [("PATH".into(), bin.clone().into_os_string())];
    assert_eq!(
        scheduler::programs(&config.runners[0], &env),
        (
            Status::Error,
            format!(
                "sbatch, scancel, sacct not found in PATH={}; install the scheduler's commands or set scheduler_bin under [runners.batch]",
                bin.display()
            )
        )
    );
}

/// A controller the commands cannot find is an error in the words of the scheduler's command
/// (here those of real Slurm 22.05 without a configuration source), with the client variables
/// the commands got.
#[tokio::test]
async fn a_controller_that_cannot_be_reached_is_an_error_that_says_what_the_commands_got() {
    let site = Site::new();
    site.slurm(
        "if [ \"$SLURM_CONF\" = /etc/slurm/right.conf ]; then echo 'Slurmctld(primary) at head is UP'; exit 0; fi\necho 'scontrol: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host' >&2\necho 'scontrol: fatal: Could not establish a configuration source' >&2\nexit 1",
    );
    let wrong = slurm_runner("  scheduler_environment = [\"SLURM_CONF=/etc/slurm/wrong.conf\"]\n");
    assert_eq!(
        scheduler_rows(site.check(&wrong).await)[1..],
        [
            "environment hpc ok client variables: SLURM_CONF=/etc/slurm/wrong.conf (from scheduler_environment)",
            "controller hpc error `scontrol ping` failed (exit 1): scontrol: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host / scontrol: fatal: Could not establish a configuration source (the commands got SLURM_CONF=/etc/slurm/wrong.conf)",
        ]
    );
    let right = wrong.replace("wrong.conf", "right.conf");
    assert_eq!(
        scheduler_rows(site.check(&right).await)[2],
        "controller hpc ok `scontrol ping`: Slurmctld(primary) at head is UP"
    );
}

#[tokio::test]
async fn a_controller_that_is_down_is_an_error_with_its_words() {
    let site = Site::new();
    site.slurm(
        "echo 'Slurmctld(primary) at head is DOWN'\necho '*****************************************'\necho '** RESTORE SLURMCTLD DAEMON TO SERVICE **'\necho '*****************************************'\nexit 1",
    );
    let text = slurm_runner("  scheduler_environment = [\"SLURM_CONF=/etc/slurm/site.conf\"]\n");
    assert_eq!(
        scheduler_rows(site.check(&text).await)[2],
        "controller hpc error `scontrol ping` failed (exit 1): Slurmctld(primary) at head is DOWN / ** RESTORE SLURMCTLD DAEMON TO SERVICE ** (the commands got SLURM_CONF=/etc/slurm/site.conf)"
    );
}

#[tokio::test]
async fn a_controller_that_does_not_answer_in_time_is_stopped_and_an_error() {
    let site = Site::new();
    site.slurm("echo 'scontrol: error: cannot stat file, retrying in 1sec up to 60sec' >&2\nexec sleep 600");
    let text = slurm_runner("  scheduler_environment = [\"SLURM_CONF=/etc/slurm/none.conf\"]\n");
    assert_eq!(
        scheduler_rows(site.check(&text).await)[2],
        "controller hpc error `scontrol ping` did not answer within 2s and was stopped; it said: scontrol: error: cannot stat file, retrying in 1sec up to 60sec (the commands got SLURM_CONF=/etc/slurm/none.conf)"
    );
}

#[tokio::test]
async fn a_batch_runner_without_builds_dir_is_warned_that_nodes_do_not_see_it() {
    let site = Site::new();
    site.slurm("echo 'Slurmctld(primary) at head is UP'");
    let text = slurm_runner("").replace("builds_dir = \"{dir}\"\n", "");
    let rows = site.check(&text).await;
    let builds: Vec<&String> = rows
        .iter()
        .filter(|r| r.starts_with("builds_dir "))
        .collect();
    assert_eq!(
        builds,
        [&format!(
            "builds_dir hpc warning not set: jobs are checked out in `{}` on this host, where compute nodes do not see them (unless they are this host); set builds_dir to a directory they share",
            dirs::default_builds_dir().display()
        )]
    );
}

#[tokio::test]
async fn durations_that_delay_every_job_are_warned_about() {
    let site = Site::new();
    site.slurm("echo 'Slurmctld(primary) at head is UP'");
    let text = format!(
        "check_interval = \"10m\"\n{}  poll_interval = \"2m\"\n  nfs_timeout = 0\n  command_delay = \"5m\"\n",
        slurm_runner("")
    );
    let rows: Vec<String> = site
        .check(&text)
        .await
        .into_iter()
        .filter(|row| row.starts_with("durations "))
        .collect();
    assert_eq!(
        rows,
        [
            "durations - warning DIR/config.toml:1: check_interval: 600s: an idle runner leaves a new job waiting that long before it asks GitLab",
            "durations hpc warning DIR/config.toml:12: runners[0].batch.poll_interval: 120s: output written on another node (NFS, which inotify does not see) reaches the log that late",
            "durations hpc warning DIR/config.toml:13: runners[0].batch.nfs_timeout: 0s: output that reaches this host after the job ended (written on a compute node over NFS) is cut off",
            "durations hpc warning DIR/config.toml:14: runners[0].batch.command_delay: 300s: every job waits that long before it is submitted",
        ]
    );
}

#[test]
fn the_table_aligns_its_columns_and_the_summary_counts() {
    let mut report = Report::default();
    report.push("state_dir", "-", (Status::Ok, "fine".into()));
    report.push("controller", "cluster-a", (Status::Error, "down".into()));
    report.push("env_vars", "b", (Status::Warning, "unset".into()));
    assert_eq!(
        report.table(),
        "check       runner     status   detail\nstate_dir   -          ok       fine\ncontroller  cluster-a  error    down\nenv_vars    b          warning  unset\n"
    );
    assert_eq!(report.summary(), "check failed: 1 error(s), 1 warning(s)");
    assert_eq!(report.exit_code(), 1);
    report.rows.remove(1);
    assert_eq!(report.summary(), "check passed with 1 warning(s)");
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn a_located_problem_names_file_line_and_key() {
    let text = "concurrent = 1\n\n[[runners]]\nname = \"a\"\n";
    let at = Located::new(Path::new("/etc/batchci/config.toml"), text);
    assert_eq!(
        at.at("runners[0].name", "bad".into()),
        "/etc/batchci/config.toml:4: runners[0].name: bad"
    );
}
