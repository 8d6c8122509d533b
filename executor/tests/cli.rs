//! The `batchci` command line as a person uses it.

use assert_cmd::Command;

fn batchci() -> Command {
    Command::cargo_bin("batchci").unwrap()
}

/// `batchci check --offline` of a config file holding `text`, with no scheduler command on PATH;
/// returns the output and the file's path.
fn check(text: &str) -> (std::process::Output, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let output = batchci()
        .args(["check", "--offline", "--config"])
        .arg(&path)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    (output, dir, path)
}

#[test]
fn the_demo_runs_every_sample_job_as_expected() {
    let output = batchci()
        .args(["demo", "--quiet"])
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("job "))
        .collect();
    assert_eq!(
        summary,
        [
            "job             executor     expected   got        exit  result",
            "shell-build     shell        success    success    0     ok",
            "slurm-build     slurm        success    success    0     ok",
            "slurm-secret    slurm        success    success    0     ok",
            "slurm-fails     slurm        failed     failed     3     ok",
            "slurm-refused   slurm        failed     failed     0     ok",
            "pbs-build       pbs          success    success    0     ok",
            "cobalt-build    cobalt       success    success    0     ok",
            "lsf-build       lsf          success    success    0     ok",
            "flux-build      flux         success    success    0     ok",
            "docker-build    docker+slurm success    success    0     ok",
            "shell-fails     shell        failed     failed     3     ok",
            "",
            "demo passed: every job ended as expected",
        ]
    );
}

#[test]
fn check_names_file_line_and_key_of_a_config_error() {
    let (output, _dir, path) = check(
        "concurrent = 1\n\n[[runners]]\nname = \"a\"\nurl = \"https://gitlab.example.com\"\ntoken = \"t\"\nexecutor = \"slurm\"\n  [runners.batch]\n  alow_illegal_args = true\n",
    );

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "{}:9: runners[0].batch.alow_illegal_args: unknown key `alow_illegal_args`; did you mean `allow_illegal_args`?\n",
            path.display()
        )
    );
}

/// A valid file is explained runner by runner, then checked: without the scheduler's commands
/// on PATH the check fails, naming them.
#[test]
fn check_explains_a_valid_config_and_fails_without_the_schedulers_commands() {
    let (output, _dir, path) = check(
        "concurrent = 3\n\n[[runners]]\nname = \"hpc\"\nurl = \"https://gitlab.example.com\"\ntoken = \"t\"\nexecutor = \"sbatch\"\nlimit = 2\nbuilds_dir = \"/scratch/ci\"\n",
    );

    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "configuration {}: 1 runner(s), at most 3 job(s) at once, polling every 3s",
            path.display()
        )
    );
    assert!(
        lines.contains(&"  executor: slurm (at most 2 job(s))"),
        "{stdout}"
    );
    assert!(
        lines.contains(
            &"  user parameters: from SCHEDULER_PARAMETERS; flags batchci controls are refused"
        ),
        "{stdout}"
    );
    assert!(lines.contains(&"  builds_dir: /scratch/ci"), "{stdout}");
    let words: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("programs "))
        .map(|l| l.split_whitespace().take(3).collect())
        .unwrap_or_default();
    assert_eq!(words, ["programs", "hpc", "error"], "{stdout}");
    assert!(
        stdout.contains(" error    sbatch, scancel, squeue, scontrol, sacct not found in PATH=/nonexistent; install the scheduler's commands or set scheduler_bin under [runners.batch]\n"),
        "{stdout}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("check failed: ")),
        "{stdout}"
    );
}

const DOWNSCOPING: &str = "[[runners]]\nname = \"hpc\"\nurl = \"https://gitlab.example.com\"\ntoken = \"t\"\nexecutor = \"shell\"\nbuilds_dir = \"/scratch/ci\"\n  [runners.auth]\n  downscope = \"setuid\"\n  audience = \"https://ci.example.com\"\n  user_blocklist = [\"admin\"]\n";

#[test]
fn check_says_who_jobs_run_as() {
    let (output, _dir, _) = check(DOWNSCOPING);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("  identity"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines,
        [
            "  identity: the ID token in BATCHCI_ID_TOKEN for audience https://ci.example.com; each job runs as the local account of the person who started it (setuid)",
            "  blocked users: admin",
            "  root (uid 0) never runs jobs",
            "  builds_dir: /scratch/ci/<user>, one directory per user, mode 0700",
            "  job log limit: 4096 KiB",
        ]
    );
    let auth: Vec<&str> = stdout.lines().filter(|l| l.starts_with("auth ")).collect();
    assert_eq!(
        auth,
        [
            "auth        hpc     ok       jobs run as the user of their ID token (setuid); the rows below are checked as batchci's user, and a user's own rights and environment may differ"
        ]
    );
}

/// A downscoping runner of a batchci that is neither root nor holds the capabilities: `check`
/// says what is missing, and `run` refuses to start rather than run jobs as its own user.
#[test]
fn a_batchci_that_cannot_switch_users_says_so_in_check_and_does_not_run() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, DOWNSCOPING).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // As root, the case runs batchci as `nobody` without capabilities.
    let unprivileged = |args: &[&str]| {
        let binary = assert_cmd::cargo::cargo_bin("batchci");
        let mut command = if nix::unistd::geteuid().is_root() {
            let mut command = std::process::Command::new("/usr/bin/setpriv");
            command
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .args(["--inh-caps=-all", "--bounding-set=-all"])
                .arg(binary);
            command
        } else {
            std::process::Command::new(binary)
        };
        let output = command.args(args).arg(&path).output().unwrap();
        let uid = regex::Regex::new(r"uid \d+( \([^)]*\))?").unwrap();
        let auth_rows: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.starts_with("auth "))
            .map(|l| uid.replace_all(l, "uid N").into_owned())
            .collect();
        (
            output.status.code(),
            uid.replace_all(&String::from_utf8_lossy(&output.stderr), "uid N")
                .into_owned(),
            auth_rows,
        )
    };
    let missing = "CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_KILL, CAP_SETGID, CAP_SETUID";
    let why = format!(
        "runner \"hpc\": [runners.auth] downscope = \"setuid\" needs root, or the capabilities {missing}; batchci runs as uid N without {missing}"
    );

    // `check` has the refusal as its auth row, naming the file, line and key.
    assert_eq!(
        unprivileged(&["check", "--offline", "--config"]),
        (
            Some(1),
            String::new(),
            vec![format!(
                "auth        hpc     error    {}:8: runners[0].auth.downscope: downscope = \"setuid\" needs root, or the capabilities {missing}; batchci runs as uid N without {missing}",
                path.display()
            )]
        )
    );
    // `run` says that it starts (its first log line), then why it cannot.
    let (code, stderr, _) = unprivileged(&["run", "--config"]);
    let time = regex::Regex::new(r"^\d{4}-\d\d-\d\dT[\d:.]+Z").unwrap();
    let lines: Vec<String> = stderr
        .lines()
        .map(|l| time.replace(l, "[time]").into_owned())
        .collect();
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        [
            format!(
                "[time]  INFO batchci starting version={} config={} state_dir=/var/lib/batchci concurrent=1 runners=\"hpc (shell)\"",
                env!("CARGO_PKG_VERSION"),
                path.display()
            ),
            format!("batchci: {why}"),
        ]
    );
}

#[test]
fn help_shows_examples() {
    let output = batchci().arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Examples:\n  batchci demo"), "{stdout}");
    for command in ["run", "register", "custom", "demo", "check"] {
        assert!(
            stdout.contains(&format!("\n  {command} ")),
            "{command} missing in {stdout}"
        );
    }
}

#[test]
fn custom_config_prints_the_json_gitlab_runner_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.toml");
    std::fs::write(
        &path,
        "[general]\nexecutor = \"slurm\"\ndata_dir = \"/scratch/ci\"\n",
    )
    .unwrap();

    let output = batchci()
        .args(["custom", "config", "--config"])
        .arg(&path)
        .env("CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN", "abcd1234")
        .env("CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID", "3")
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["builds_dir"], "/scratch/ci/builds/abcd1234/3");
    assert_eq!(json["cache_dir"], "/scratch/ci/cache");
    assert_eq!(json["builds_dir_is_shared"], false);
    assert_eq!(json["driver"]["name"], "batchci");
}

#[test]
fn a_broken_custom_config_is_a_system_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.toml");
    std::fs::write(&path, "[general]\nexecuter = \"slurm\"\n").unwrap();

    let output = batchci()
        .args(["custom", "prepare", "--config"])
        .arg(&path)
        .env("SYSTEM_FAILURE_EXIT_CODE", "42")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(42));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "batchci: {}:2: general.executer: unknown key `executer`; did you mean `executor`?\n",
            path.display()
        )
    );
}

#[test]
fn check_describes_the_allocation_of_a_docker_slurm_runner() {
    let (output, _dir, _) = check(
        "[[runners]]\nname = \"2c-4g\"\nurl = \"https://gitlab.example.com\"\ntoken = \"t\"\nexecutor = \"docker+slurm\"\n  [runners.slurm]\n  partition = \"gitlab-ci\"\n  cpus = 2\n  memory = \"4G\"\n",
    );

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "  step script: srun holds the allocation (placeholder job); docker run on the allocated node, limited to its CPUs and memory\n  allocation: partition gitlab-ci, 2 CPU(s), memory 4G; user parameters are not used\n"
        ),
        "{stdout}"
    );
}

/// gitlab-runner names each stage it asks `run` for. One batchci does not know may hold user
/// code, which batchci runs only on the scheduler: it is refused as a system failure and its
/// script never runs, here or anywhere. A host stage it knows runs as before.
#[test]
fn an_unknown_custom_stage_is_refused_and_its_script_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custom.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nexecutor = \"shell\"\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let marker = dir.path().join("ran");
    let script = dir.path().join("stage.sh");
    std::fs::write(&script, format!("touch '{}'\n", marker.display())).unwrap();
    let run = |stage: &str| {
        batchci()
            .args(["custom", "run", "--config"])
            .arg(&config)
            .arg(&script)
            .arg(stage)
            .env("SYSTEM_FAILURE_EXIT_CODE", "42")
            .env("BUILD_FAILURE_EXIT_CODE", "41")
            .output()
            .unwrap()
    };

    let refused = run("stage_release_notes");
    assert_eq!(refused.status.code(), Some(42));
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "\x1b[31;1mERROR: gitlab-runner asked for stage `stage_release_notes`, which batchci \
          does not know; it is not run, since it may hold user code and batchci runs \
         user code only on the scheduler. A gitlab-runner newer than batchci may have added \
         it: see docs/admin.md (custom executor stages).\n\x1b[0;m"
    );
    assert!(!marker.exists());

    let known = run("get_sources");
    assert_eq!(known.status.code(), Some(0));
    assert!(marker.exists());
}
