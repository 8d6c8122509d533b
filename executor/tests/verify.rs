//! `batchci verify` on a sample site (`tests/fixtures/verify-site/`): the correct site passes,
//! seeded misconfigurations fail naming the problem, and files that do not load exit 2.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn site(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/verify-site")
        .join(file)
}

/// `batchci verify --config CONFIG --cluster <the sample cluster> [--pipeline PIPELINE] ARGS`.
fn verify(config: &Path, pipeline: Option<&Path>, args: &[&Path]) -> std::process::Output {
    let mut command = Command::cargo_bin("batchci").unwrap();
    command
        .arg("verify")
        .timeout(std::time::Duration::from_secs(600))
        .arg("--config")
        .arg(config)
        .arg("--cluster")
        .arg(site("cluster.toml"));
    if let Some(pipeline) = pipeline {
        command.arg("--pipeline").arg(pipeline);
    }
    command.args(args).output().unwrap()
}

/// The Markdown report without what changes from run to run: times, job ids, nodes, paths.
fn normalised(markdown: &str) -> String {
    let rules = [
        (r"\d+\.\d s", "T s"),
        (r"in \d+\.\d s\)", "in T s)"),
        (r"job \d+", "job N"),
        (r"node(\[[0-9,\-]+\]|\d+)", "NODE"),
        (r"\S*/batchci-verify-[^/\s]+", "TMP"),
    ];
    let mut text = markdown.to_string();
    for (pattern, replacement) in rules {
        text = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&text, replacement)
            .into_owned();
    }
    text
}

/// The output of a verify that exited 0, or a failure showing it all.
fn passed(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_correct_site_passes() {
    let dir = tempfile::tempdir().unwrap();
    let markdown = dir.path().join("verify.md");
    let junit = dir.path().join("verify.xml");
    let output = verify(
        &site("config.toml"),
        Some(&site("pipeline.yml")),
        &[
            Path::new("--markdown"),
            &markdown,
            Path::new("--junit"),
            &junit,
        ],
    );
    let stdout = passed(&output);
    assert!(stdout.contains("verify passed"), "{stdout}");
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(junit.contains("failures=\"0\""), "{junit}");
    let markdown = std::fs::read_to_string(&markdown).unwrap();
    insta::assert_snapshot!(normalised(&markdown));
}

#[test]
fn a_misconfigured_site_fails_naming_each_problem() {
    let output = verify(
        &site("config-bad.toml"),
        Some(&site("pipeline-bad.yml")),
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for needle in [
        // The runners whose default partition does not exist.
        "partition gpu (runners.slurm.partition) does not exist; the cluster has batch, short, fat",
        "runner cluster-b / default partition: partition bigmem (SBATCH_PARTITION in runners.batch.scheduler_environment) does not exist; the cluster has batch, short, fat",
        // A user job asking more cores than any node of its partition has (fat01 of
        // partition fat has 64).
        "would pend forever (PartitionConfig): asks 64 CPUs; partition batch cannot give them (its largest node has 8)",
        // A time limit over its partition's QOS.
        "long: would pend forever (QOSMaxWallDurationPerJobLimit): asks more than QOS ci allows, in partition short",
        // A partition the cluster does not have.
        "gpu: the scheduler refuses it: sbatch refused the job (exit code 1): Batch job submission failed: Invalid partition name specified",
        // A flag batchci sets itself.
        "batchci refuses its parameters",
        "--output is set by batchci",
        "verify FAILED",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }
    // The job that fits still passes.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("pipeline-bad.yml / build")),
        "{stdout}"
    );
}

/// The lines of `stdout` about `pipeline`'s jobs (progress lines without their times, table
/// rows) and the notes, with node names normalised.
fn pipeline_lines(stdout: &str, pipeline: &str) -> Vec<String> {
    let node = regex::Regex::new(r"node\d+").unwrap();
    let took = regex::Regex::new(r" \(\d+\.\ds\)$").unwrap();
    stdout
        .lines()
        .filter(|l| l.contains(&format!("pipeline {pipeline}")) || l.starts_with("note: "))
        .filter(|l| !l.contains("builds_dir"))
        .map(|l| took.replace(&node.replace_all(l, "NODE"), "").into_owned())
        .collect()
}

/// A pipeline written as projects write them — an included file of templates, `default:`,
/// `extends:`, `parallel:` as a number and a matrix, `rules:`, `only:`, a manual job, a GitLab
/// template, a downstream pipeline — is read as GitLab reads it: each instance of a parallel
/// job is checked with the template's parameters; what was not read or not checked, and the
/// jobs whose rules were not evaluated, are named.
#[test]
fn a_real_pipeline_is_read_as_gitlab_reads_it() {
    let output = verify(&site("config.toml"), Some(&site("pipeline-real.yml")), &[]);
    let stdout = passed(&output);
    let rows: Vec<String> = pipeline_lines(&stdout, "pipeline-real.yml")
        .into_iter()
        .filter(|l| !l.starts_with("ok ") && !l.starts_with("FAIL ") && !l.starts_with("skip "))
        .collect();
    assert_eq!(
        rows,
        [
            "pipeline pipeline-real.yml  build                    ok     ran in short (the partition it names) on NODE, runner cluster-a, 2 CPUs",
            "pipeline pipeline-real.yml  test 1/2                 ok     ran in batch (the partition it names) on NODE, runner cluster-a, 4 CPUs",
            "pipeline pipeline-real.yml  test 2/2                 ok     ran in batch (the partition it names) on NODE, runner cluster-a, 4 CPUs",
            "pipeline pipeline-real.yml  mpi: [openmpi]           ok     ran in batch (the partition it names) on NODE, runner cluster-a, 4 CPUs",
            "pipeline pipeline-real.yml  mpi: [mpich]             ok     ran in batch (the partition it names) on NODE, runner cluster-a, 4 CPUs",
            "pipeline pipeline-real.yml  lint                     ok     success on runner login-shell",
            "pipeline pipeline-real.yml  docs                     ok     success on runner login-shell",
            "note: check_interval: 1 s (verify's jobs are short)",
            "note: pipeline-real.yml: include template: Jobs/Secret-Detection.gitlab-ci.yml was not read (only local files are): its jobs are not checked",
            "note: pipeline-real.yml: job deploy-site triggers a downstream pipeline: no runner runs it",
            "note: pipeline-real.yml: rules, only and except are not evaluated: test 1/2, test 2/2, lint checked as if they run",
            "note: users' scripts were replaced by an echo (--run-scripts runs them)",
        ]
    );
}

/// Untagged jobs go only to a runner that takes untagged jobs; with none, nothing of the
/// pipeline is checked and verify fails saying so instead of passing on skips alone.
#[test]
fn a_pipeline_none_of_whose_jobs_ran_fails_and_untagged_jobs_need_a_runner_for_them() {
    let pipeline = site("pipeline-untagged.yml");
    let output = verify(&site("config.toml"), Some(&pipeline), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let progress: Vec<String> = pipeline_lines(&stdout, "pipeline-untagged.yml")
        .into_iter()
        .filter(|l| l.starts_with("skip ") || l.starts_with("FAIL ") || l.starts_with("ok "))
        .collect();
    let untagged = "untagged, and no configured runner takes untagged jobs (give --run-untagged RUNNER, or --tags RUNNER= for a runner without tags)";
    assert_eq!(
        progress,
        [
            format!("skip pipeline pipeline-untagged.yml / build: {untagged}"),
            format!("skip pipeline pipeline-untagged.yml / test: {untagged}"),
            "FAIL pipeline pipeline-untagged.yml / any job checked: none of its 2 jobs went to a configured runner, so none was checked".to_string(),
        ]
    );
    assert!(
        stdout.contains("13 checks: 10 ok, 1 failed, 2 skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("verify FAILED"), "{stdout}");

    let output = verify(
        &site("config.toml"),
        Some(&pipeline),
        &[Path::new("--run-untagged"), Path::new("login-shell")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "runner login-shell (shell) takes jobs tagged [login-shell, shell] and untagged jobs"
        ),
        "{stdout}"
    );
    let progress: Vec<String> = pipeline_lines(&stdout, "pipeline-untagged.yml")
        .into_iter()
        .filter(|l| l.starts_with("skip ") || l.starts_with("FAIL ") || l.starts_with("ok "))
        .collect();
    assert_eq!(
        progress,
        [
            "ok   pipeline pipeline-untagged.yml / build: success on runner login-shell",
            "ok   pipeline pipeline-untagged.yml / test: success on runner login-shell",
        ]
    );
}

#[test]
fn files_that_do_not_load_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[runners]]\nname = \"a\"\nurl = \"http://x\"\ntoken = \"t\"\nexecutor = \"slrum\"\n",
    )
    .unwrap();
    let output = verify(&config, None, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("config.toml:5: runners[0].executor: unknown executor `slrum`"),
        "{stderr}"
    );

    let pipeline = dir.path().join("ci.yml");
    std::fs::write(&pipeline, "build:\n  tags: [slurm]\n  scrpt: [make]\n").unwrap();
    let output = verify(&site("config.toml"), Some(&pipeline), &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ci.yml: line "), "{stderr}");

    // An included file that is not there, a template no file defines: named with their line.
    for (yaml, expected) in [
        (
            "include:\n  - local: ci/missing.yml\nbuild:\n  script: [make]\n",
            format!(
                "{}: line 1: include: local: ci/missing.yml: cannot read {}: ",
                pipeline.display(),
                dir.path().join("ci/missing.yml").display()
            ),
        ),
        (
            "build:\n  extends: .nowhere\n  script: [make]\n",
            format!(
                "{}: line 2: jobs:build:extends: unknown keys in `extends` (.nowhere)",
                pipeline.display()
            ),
        ),
    ] {
        std::fs::write(&pipeline, yaml).unwrap();
        let output = verify(&site("config.toml"), Some(&pipeline), &[]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&expected), "{expected}\n{stderr}");
    }
}

/// Interrupted with SIGINT while its runner works, verify stops it, the simulated cluster and
/// its directory: nothing of the run is left on the machine.
#[test]
fn an_interrupted_verify_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("batchci"))
        .arg("verify")
        .arg("--config")
        .arg(site("config.toml"))
        .arg("--cluster")
        .arg(site("cluster.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    // Its working directory, then the first finished check: the runner is serving jobs.
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(path) = line.strip_prefix("batchci verify in ") {
            dir = Some(PathBuf::from(path));
        }
        if line.starts_with("ok ") || line.starts_with("FAIL ") {
            break;
        }
    }
    let dir = dir.expect("verify names its working directory");
    assert!(dir.exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("interrupted; nothing left running"),
        "{stderr}"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    // No process of the run is left: its runner, its cluster's daemon, their jobs.
    let needle = dir.to_string_lossy().into_owned();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

/// A site whose jobs run as the GitLab user who started them: verify starts its pipelines as
/// `--user`, gives its jobs the ID token the runner asks for, and checks that the job ran as
/// that account in the script and in the scheduler's record; a user the runner refuses fails
/// every check with the refusal; as root without `--user`, verify says what to give.
#[test]
fn a_site_running_jobs_as_their_users() {
    let root = nix::unistd::geteuid().is_root();
    let users = ["ci-alice", "ci-bob"]
        .iter()
        .all(|name| nix::unistd::User::from_name(name).ok().flatten().is_some());
    if !root || !users {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "verify's run-as story must run with CI=true (root and ci/users)"
        );
        eprintln!(
            "\n!!! verify::a_site_running_jobs_as_their_users DID NOT RUN: it needs root and the local accounts ci-alice and ci-bob (ci/users creates them)\n"
        );
        return;
    }
    let config = site("config-as-users.toml");
    let output = verify(&config, None, &[Path::new("--user"), Path::new("ci-alice")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("pipelines are started by GitLab user ci-alice"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ok   runner as-users / runs as the pipeline's user:"))
        .unwrap_or_else(|| panic!("no runs-as line in\n{stdout}"));
    let job = regex::Regex::new(r"scheduler job \d+ \(\d+\.\ds\)$").unwrap();
    assert_eq!(
        job.replace(line, "scheduler job N (T)"),
        "ok   runner as-users / runs as the pipeline's user: GitLab user ci-alice ran as ci-alice, and so did scheduler job N (T)",
        "{line}"
    );

    let output = verify(&config, None, &[Path::new("--user"), Path::new("ci-bob")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("8 checks: 0 ok, 8 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("runs as the pipeline's user  FAIL   GitLab user ci-bob's job did not run as a local user: ERROR: Job failed (system failure): local user `ci-bob` (GitLab user `ci-bob`) is in [runners.auth] user_blocklist"),
        "{stdout}"
    );

    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("batchci"))
        .args(["verify", "--config"])
        .arg(&config)
        .arg("--cluster")
        .arg(site("cluster.toml"))
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "batchci verify: runner as-users runs jobs as their users and refuses root: give --user LOGIN, a local account verify's jobs may run as\n"
    );
}

/// A Jacamar-style file of batchci's custom mode: verify calls `batchci custom` as
/// gitlab-runner would, through every custom-executor scenario, on the site's cluster; only
/// the directories and `scheduler_bin` change, and the report says so.
#[test]
fn a_custom_mode_file_goes_through_the_custom_executor_scenarios() {
    let output = verify(&site("custom-jacamar.toml"), None, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for needle in [
        "batchci custom mode with custom-jacamar.toml: 12 custom-executor scenarios",
        "ok   batchci custom mode with custom-jacamar.toml / cancel while pending: SIGTERM while the Slurm job is queued cancels it before run_exec ends",
        "ok   batchci custom mode with custom-jacamar.toml / system failure: an unreachable Slurm controller fails the job as runner_system_failure (SYSTEM_FAILURE_EXIT_CODE)",
        "note: batch.scheduler_bin: the simulated cluster's commands on PATH instead",
        "12 checks: 12 ok, 0 failed, 0 skipped",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }
}

/// A gitlab-runner config.toml with a site's own custom executor (the sbatch sample of
/// `conformance/examples/`): verify tells it apart from batchci's, naming the traps it falls
/// into, and exits 1; one whose programs are not on this machine is refused at once (exit 2).
#[test]
fn a_sites_own_custom_executor_is_told_apart() {
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/examples/sbatch-custom-executor");
    let installed = std::fs::read_to_string(sample.join("config.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        installed.replace(
            "/opt/sbatch-custom-executor",
            &sample.canonicalize().unwrap().display().to_string(),
        ),
    )
    .unwrap();
    let output = verify(&config, None, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let job = regex::Regex::new(r"Slurm job \d+ \(ci-\d+\)").unwrap();
    let stdout = job.replace_all(&stdout, "Slurm job N (ci-N)");
    for needle in [
        "ok   runner sbatch / passing job:",
        "FAIL runner sbatch / failing script: exit code 1 reported, not 3: BUILD_EXIT_CODE_FILE was not written",
        "FAIL runner sbatch / cancel while pending: Slurm job N (ci-N) was still PENDING when run_exec ended on SIGTERM; only cleanup_exec cancelled it, later",
        "FAIL runner sbatch / cancel while running: Slurm job N (ci-N) was still RUNNING when run_exec ended on SIGTERM; only cleanup_exec cancelled it, later",
        "FAIL runner sbatch / refused flag: `--uid=0` reached sbatch; the job ended success",
        "ok   runner sbatch / scheduler parameters:",
        "12 checks: 6 ok, 6 failed, 0 skipped",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }

    let output = verify(&sample.join("config.toml"), None, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "batchci verify: {}: runner sbatch: config_exec /opt/sbatch-custom-executor/config.sh does not exist here; install the executor on this machine, or give a copy of the file whose paths point at it\n",
            sample.join("config.toml").display()
        )
    );
}

/// A Slurm cluster without `Default=YES` (what `mock-cluster import` notes as not imported):
/// a Slurm runner that names no partition fails its default-partition check, because Slurm
/// refuses such jobs even where the simulated cluster would take the first partition.
#[test]
fn a_cluster_without_a_default_partition_fails_a_runner_that_names_none() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(site("cluster.toml")).unwrap();
    assert!(text.contains("default = true\n"));
    std::fs::write(&cluster, text.replace("default = true\n", "")).unwrap();
    let output = Command::cargo_bin("batchci")
        .unwrap()
        .args(["verify", "--config"])
        .arg(site("config.toml"))
        .arg("--cluster")
        .arg(&cluster)
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("FAIL runner cluster-a / default partition: the runner names no partition and the cluster has no default one (Default=YES): Slurm refuses its jobs (No partition specified or system default partition); the cluster has batch, short, fat (")),
        "{stdout}"
    );
}

/// The checks of one runner, from verify's progress lines: `(check, verdict)` in order.
fn checks_of(stdout: &str, runner: &str) -> Vec<(String, String)> {
    let prefix = format!("runner {runner} / ");
    stdout
        .lines()
        .filter_map(|line| {
            let (verdict, rest) = line.split_once(' ')?;
            let rest = rest.trim_start().strip_prefix(&prefix)?;
            let (check, _) = rest.split_once(':')?;
            Some((check.to_string(), verdict.to_string()))
        })
        .collect()
}

/// Every batch scheduler's runner goes through the whole contract, a held job's cancel
/// included (`qsub -h`, `bsub -H`, `flux submit --urgency=0`, Cobalt's `qsub -h`).
#[test]
fn every_batch_scheduler_holds_the_contract() {
    let every_check = [
        "default partition",
        "passing job, whole log",
        "failing job's exit code",
        "masked variable",
        "refused flag",
        "cancel while pending",
        "cancel while running",
    ]
    .map(|check| (check.to_string(), "ok".to_string()));
    let output = verify(&site("config-schedulers.toml"), None, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for runner in ["pbs-a", "lsf-a", "flux-a"] {
        assert_eq!(
            checks_of(&stdout, runner),
            every_check,
            "{runner}:\n{stdout}"
        );
    }

    let output = Command::cargo_bin("batchci")
        .unwrap()
        .args(["verify", "--config"])
        .arg(site("config-cobalt.toml"))
        .arg("--cluster")
        .arg(site("cluster-cobalt.toml"))
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(checks_of(&stdout, "cobalt-a"), every_check, "{stdout}");
}

/// A user's job runs a stand-in unless `--run-scripts`: its own failing script passes verify
/// (where the job lands is what is checked) until verify is told to run it, and then fails
/// with the script's exit code.
#[test]
fn users_scripts_run_only_with_run_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("ci.yml");
    std::fs::write(
        &pipeline,
        "build:\n  tags: [cluster-a]\n  variables:\n    SCHEDULER_PARAMETERS: \"--partition=short --time=5\"\n  script:\n    - exit 7\n",
    )
    .unwrap();
    let line = |stdout: &str| {
        stdout
            .lines()
            .find(|l| l.contains("pipeline ci.yml / build:"))
            .map(|l| l.rsplit_once(" (").map_or(l, |(line, _)| line))
            .map(|l| {
                regex::Regex::new(r"node\d+")
                    .unwrap()
                    .replace_all(l, "NODE")
                    .into_owned()
            })
    };
    let output = verify(&site("config.toml"), Some(&pipeline), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(
        line(&stdout).as_deref(),
        Some(
            "ok   pipeline ci.yml / build: ran in short (the partition it names) on NODE, runner cluster-a, 1 CPUs"
        ),
        "{stdout}"
    );
    let output = verify(
        &site("config.toml"),
        Some(&pipeline),
        &[Path::new("--run-scripts")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(
        line(&stdout).as_deref(),
        Some("FAIL pipeline ci.yml / build: ended failed (exit code 7): exit code 7 in short"),
        "{stdout}"
    );
}
