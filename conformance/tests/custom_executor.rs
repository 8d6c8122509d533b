//! batchci as gitlab-runner's custom executor driver, called by a stand-in for gitlab-runner
//! (`support::driver`) exactly as gitlab-runner calls it: config → prepare → run per stage →
//! cleanup, in a job temp dir, with gitlab-runner's environment, each call in its own process
//! group, SIGTERM then SIGKILL on cancel. Slurm is the simulated cluster always, and the real
//! Slurm 22.05 as well when `ci/test` started one.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use conformance::custom_driver::{
    Driver, JobReport, JobSpec, JobStatus, PROJECT_PATH, SHORT_TOKEN,
};
use support::cluster::Cluster;

/// Runs `$case` against the simulated cluster and, when present, the real Slurm.
macro_rules! on_both_clusters {
    ($($case:ident),* $(,)?) => {
        mod fake {
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let cluster = super::Cluster::fake(dir.path());
                    super::$case(dir.path(), &cluster);
                }
            )*
        }
        mod real {
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    if let Some(cluster) = super::Cluster::real(dir.path()) {
                        super::$case(dir.path(), &cluster);
                    }
                }
            )*
        }
    };
}

on_both_clusters!(
    config_exec_describes_the_builds_dir_and_the_driver_uses_it,
    a_one_runner_config_toml_works_the_same_way,
    a_passing_job_sends_only_build_script_through_sbatch,
    a_failing_script_reports_its_exit_code_and_after_script_sees_failed,
    scheduler_parameters_reach_sbatch_and_an_illegal_one_fails_prepare,
    sigterm_during_build_script_cancels_the_slurm_job_promptly,
    a_sigkill_right_after_sigterm_still_releases_the_allocation,
    a_killed_run_leaves_the_slurm_job_to_cleanup,
    a_killed_host_stage_leaves_no_process_behind,
    custom_failure_exit_codes_are_honoured,
    a_broken_config_is_a_system_failure_naming_file_line_and_key,
    a_refused_submission_is_a_build_failure_with_sbatchs_words,
);

/// How long anything in these cases may take (a real Slurm shared with other suites can keep
/// a job pending for a while).
const PATIENCE: Duration = Duration::from_secs(120);

/// A Jacamar-style configuration `dir/batchci.toml`; `data_dir` is `dir/data`.
fn jacamar_config(dir: &Path, extra_batch: &str) -> PathBuf {
    jacamar_config_named(dir, "batchci.toml", extra_batch)
}

/// A Jacamar-style configuration `dir/<name>` with `extra_batch` lines ending `[batch]`.
fn jacamar_config_named(dir: &Path, name: &str, extra_batch: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[general]\nexecutor = \"slurm\"\ndata_dir = {data:?}\n\n[batch]\nenv_vars = [\"MOCK_CLUSTER_STATE_DIR\", \"SLURM_CONF\"]\npoll_interval = \"100ms\"\nnfs_timeout = \"5s\"\n{extra_batch}",
            data = dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    path
}

/// gitlab-runner with batchci as its custom executor, reaching `cluster`.
fn driver(dir: &Path, config: &Path, cluster: &Cluster) -> Driver {
    let work = dir.join("runner-tmp");
    std::fs::create_dir_all(&work).unwrap();
    Driver::batchci(&support::workspace_binary("batchci"), config, &work)
        .runner_envs(&cluster.batchci_env())
        .graceful_kill_timeout(Duration::from_secs(10))
        .force_kill_timeout(Duration::from_secs(10))
        .preparation_retry_pause(Duration::from_millis(100))
}

fn sbatch_calls(cluster: &Cluster) -> Vec<Vec<String>> {
    cluster
        .calls_of("sbatch")
        .into_iter()
        .filter(|argv| argv.iter().any(|a| a.starts_with("--job-name=ci-job-")))
        .collect()
}

/// The lines of the job log's section `header` (up to the next section header).
fn section(report: &JobReport, header: &str) -> Vec<String> {
    let lines = report.lines();
    lines
        .iter()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !is_header(l))
        .cloned()
        .collect()
}

fn is_header(line: &str) -> bool {
    [
        "Preparing the \"custom\" executor",
        "Preparing environment",
        "Getting source from Git repository",
        "Running after_script",
        "Cleaning up project directory and file based variables",
        "Job succeeded",
    ]
    .contains(&line)
        || line.starts_with("Executing \"step_")
        || line.starts_with("ERROR: Job failed")
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// What `batchci custom run` prints when it submits: `$ sbatch ...` (the script goes to
/// sbatch's standard input, never to a file) then the job id line.
fn submission_lines(report: &JobReport, job: u64) -> (String, String) {
    let tmp = format!("{}.batchci", report.project_dir.display());
    let command = format!("$ sbatch --wait --output={tmp}/slurm-{job}.out --job-name=ci-job-{job}");
    let section = section(report, "Executing \"step_script\" stage of the job script");
    let id = section
        .get(1)
        .and_then(|l| l.strip_prefix("Submitted batch job "))
        .unwrap_or_else(|| panic!("no submission in {section:#?}"))
        .to_string();
    (command, id)
}

// 1. The config_exec JSON, and the driver builds the job where it says.
fn config_exec_describes_the_builds_dir_and_the_driver_uses_it(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "");
    let job = JobSpec::new(101).script(&["pwd", "cat README.md"]);

    let report = driver(dir, &config, cluster).run(job).unwrap();

    let data = dir.join("data");
    let builds = data.join("builds").join(SHORT_TOKEN).join("0");
    assert_eq!(
        report.config,
        Some(serde_json::json!({
            "builds_dir": builds,
            "cache_dir": data.join("cache"),
            "builds_dir_is_shared": false,
            "hostname": hostname(),
            "driver": {"name": "batchci", "version": batchci::gitlab::VERSION},
            "job_env": {"BATCHCI_EXECUTOR": "slurm"},
            "shell": "bash",
        }))
    );
    assert_eq!(report.status, JobStatus::Success, "{}", report.log);
    assert_eq!(report.project_dir, builds.join(PROJECT_PATH));
    assert_eq!(
        section(&report, "Preparing the \"custom\" executor"),
        [
            format!(
                "Using Custom executor with driver batchci {}...",
                batchci::gitlab::VERSION
            ),
            format!(
                "Using batchci {} with the slurm executor on {}",
                batchci::gitlab::VERSION,
                hostname()
            ),
        ]
    );
    let (_, id) = submission_lines(&report, 101);
    let script = section(&report, "Executing \"step_script\" stage of the job script");
    assert_eq!(
        script[2..],
        [
            "$ pwd".to_string(),
            report.project_dir.display().to_string(),
            "$ cat README.md".into(),
            "hello from the repository".into(),
        ],
        "Slurm job {id}"
    );
}

/// The same kind of job with a gitlab-runner style config.toml holding one `[[runners]]`.
fn a_one_runner_config_toml_works_the_same_way(dir: &Path, cluster: &Cluster) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n\n[[runners]]\nname = \"custom\"\nurl = \"https://gitlab.example.com\"\ntoken = \"glrt-t3stT0k3n\"\nexecutor = \"slurm\"\nbuilds_dir = {builds:?}\ncache_dir = {cache:?}\n{batch}",
            state = dir.join("state").display().to_string(),
            builds = dir.join("builds").display().to_string(),
            cache = dir.join("cache").display().to_string(),
            batch = cluster.batch_table(""),
        ),
    )
    .unwrap();
    let job = JobSpec::new(109).script(&["echo hello"]);

    let report = driver(dir, &config, cluster).run(job).unwrap();

    let json = report.config.clone().unwrap_or_default();
    assert_eq!(
        json["builds_dir"],
        serde_json::json!(dir.join("builds").join(SHORT_TOKEN).join("0"))
    );
    assert_eq!(json["cache_dir"], serde_json::json!(dir.join("cache")));
    assert_eq!(report.status, JobStatus::Success, "{}", report.log);
    let (command, id) = submission_lines(&report, 109);
    assert_eq!(
        section(&report, "Executing \"step_script\" stage of the job script"),
        [
            command,
            format!("Submitted batch job {id}"),
            "$ echo hello".into(),
            "hello".into()
        ]
    );
    assert_eq!(sbatch_calls(cluster).len(), 1, "{:?}", cluster.calls());
}

// 2. Only build_script reaches Slurm; everything else runs on this host.
fn a_passing_job_sends_only_build_script_through_sbatch(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "");
    let job = JobSpec::new(102)
        .file_variable("SETTINGS_FILE", "threads=2\n")
        .script(&["echo \"on $SLURM_JOB_NAME\"", "cat \"$SETTINGS_FILE\""])
        .after_script(&["echo \"after: ${SLURM_JOB_ID:-not in Slurm} $CI_JOB_STATUS\""]);

    let report = driver(dir, &config, cluster).run(job).unwrap();

    assert_eq!(report.status, JobStatus::Success, "{}", report.log);
    assert_eq!(
        report.stages(),
        [
            "config",
            "prepare",
            "prepare_script",
            "get_sources",
            "build_script",
            "after_script",
            "cleanup_file_variables",
            "cleanup"
        ]
    );
    for invocation in &report.invocations {
        assert_eq!(invocation.exit, Some(0), "{invocation:?}");
    }
    let tmp = format!("{}.batchci", report.project_dir.display());
    assert_eq!(
        sbatch_calls(cluster),
        [vec![
            "sbatch".to_string(),
            "--wait".into(),
            format!("--output={tmp}/slurm-102.out"),
            "--job-name=ci-job-102".into(),
        ]]
    );
    let (command, id) = submission_lines(&report, 102);
    assert_eq!(
        section(&report, "Executing \"step_script\" stage of the job script"),
        [
            command,
            format!("Submitted batch job {id}"),
            "$ echo \"on $SLURM_JOB_NAME\"".into(),
            "on ci-job-102".into(),
            "$ cat \"$SETTINGS_FILE\"".into(),
            "threads=2".into(),
        ]
    );
    assert_eq!(
        section(&report, "Running after_script"),
        [
            "$ echo \"after: ${SLURM_JOB_ID:-not in Slurm} $CI_JOB_STATUS\"",
            "after: not in Slurm success"
        ]
    );
    assert_eq!(
        section(&report, "Preparing environment"),
        [format!("Running on {}...", hostname())]
    );
    assert_eq!(
        report.lines().last().map(String::as_str),
        Some("Job succeeded")
    );
    let file_variable = PathBuf::from(format!(
        "{}.tmp/SETTINGS_FILE",
        report.project_dir.display()
    ));
    assert!(
        !file_variable.exists(),
        "cleanup_file_variables removes {}",
        file_variable.display()
    );
    assert!(!Path::new(&tmp).exists(), "cleanup removes {tmp}");
    assert!(cluster.calls_of("scancel").is_empty());
}

// 3. `exit 7` on the node: BUILD_FAILURE_EXIT_CODE, 7 in BUILD_EXIT_CODE_FILE, after_script.
fn a_failing_script_reports_its_exit_code_and_after_script_sees_failed(
    dir: &Path,
    cluster: &Cluster,
) {
    let config = jacamar_config(dir, "");
    let job = JobSpec::new(103)
        .script(&["echo on the node", "exit 7", "echo never"])
        .step("release", &["echo releasing"])
        .after_script(&["echo \"after: $CI_JOB_STATUS\""]);

    let report = driver(dir, &config, cluster).run(job).unwrap();

    assert_eq!(
        report.stages(),
        [
            "config",
            "prepare",
            "prepare_script",
            "get_sources",
            "build_script",
            "after_script",
            "cleanup"
        ],
        "step_release is skipped after the failure, after_script is not"
    );
    let build = report.invocation("build_script");
    assert_eq!(build.exit, Some(1), "{}", report.log);
    assert_eq!(build.build_exit_code_file.as_deref(), Some("7"));
    assert_eq!(report.status, JobStatus::Failed);
    assert_eq!(report.exit_code, Some(7));
    assert_eq!(report.failure_reason, Some("script_failure"));
    let (command, id) = submission_lines(&report, 103);
    assert_eq!(
        section(&report, "Executing \"step_script\" stage of the job script"),
        [
            command,
            format!("Submitted batch job {id}"),
            "$ echo on the node".into(),
            "on the node".into(),
            "$ exit 7".into(),
        ]
    );
    assert_eq!(
        section(&report, "Running after_script"),
        ["$ echo \"after: $CI_JOB_STATUS\"", "after: failed"]
    );
    assert_eq!(report.invocation("after_script").exit, Some(0));
    assert_eq!(
        report.lines().last().map(String::as_str),
        Some("ERROR: Job failed: exit code 7")
    );
}

// 4. SCHEDULER_PARAMETERS reach sbatch; an illegal one stops the job in prepare.
fn scheduler_parameters_reach_sbatch_and_an_illegal_one_fails_prepare(
    dir: &Path,
    cluster: &Cluster,
) {
    let config = jacamar_config(dir, "");
    let driver = driver(dir, &config, cluster);
    let good = JobSpec::new(104)
        .variable("SCHEDULER_PARAMETERS", "-p gitlab-ci -t 10 -c 2")
        .script(&["echo \"$SLURM_JOB_PARTITION $SLURM_CPUS_PER_TASK\""]);
    let sneaky = JobSpec::new(105)
        .variable("SCHEDULER_PARAMETERS", "-p gitlab-ci --output=x")
        .script(&["echo never"]);

    let from_runner = JobSpec::new(111).script(&["echo \"$SLURM_JOB_PARTITION\""]);

    let passed = driver.run(good).unwrap();
    let refused = driver.run(sneaky).unwrap();
    // Set in the runner's `environment`: only CUSTOM_ENV_ has it, not JOB_RESPONSE_FILE.
    let site_wide = driver
        .clone()
        .runner_variable("SCHEDULER_PARAMETERS", "--partition=gitlab-ci")
        .run(from_runner)
        .unwrap();

    assert_eq!(passed.status, JobStatus::Success, "{}", passed.log);
    assert!(
        section(&passed, "Executing \"step_script\" stage of the job script")
            .ends_with(&["gitlab-ci 2".to_string()]),
        "{}",
        passed.log
    );
    let calls = sbatch_calls(cluster);
    assert_eq!(
        calls.len(),
        2,
        "no submission for the refused job: {calls:?}"
    );
    assert_eq!(calls[0][3], "--job-name=ci-job-104");
    assert_eq!(&calls[0][4..], ["-p", "gitlab-ci", "-t", "10", "-c", "2"]);

    assert_eq!(site_wide.status, JobStatus::Success, "{}", site_wide.log);
    assert_eq!(calls[1][3], "--job-name=ci-job-111");
    assert_eq!(calls[1][4], "--partition=gitlab-ci", "{:?}", calls[1]);
    assert!(
        section(
            &site_wide,
            "Executing \"step_script\" stage of the job script"
        )
        .ends_with(&["gitlab-ci".to_string()]),
        "{}",
        site_wide.log
    );

    assert_eq!(refused.stages(), ["config", "prepare", "cleanup"]);
    assert_eq!(refused.invocation("prepare").exit, Some(1));
    assert_eq!(refused.status, JobStatus::Failed);
    assert_eq!(refused.failure_reason, Some("script_failure"));
    assert_eq!(refused.exit_code, Some(1));
    assert_eq!(
        section(&refused, "Preparing the \"custom\" executor")[2..],
        [
            "ERROR: SCHEDULER_PARAMETERS: -o/--output is set by batchci and cannot be given (a site can permit it with allow_illegal_args = true in its batch settings)",
        ]
    );
}

// 5. gitlab-runner's SIGTERM to the group: scancel, then a prompt exit.
fn sigterm_during_build_script_cancels_the_slurm_job_promptly(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "");
    let job = JobSpec::new(106)
        .script(&["echo started", "sleep 300"])
        .after_script(&["echo \"after: $CI_JOB_STATUS\""]);
    let running = driver(dir, &config, cluster).start(job).unwrap();
    let id = running
        .wait_for_log("Submitted batch job ", PATIENCE)
        .trim_start_matches("Submitted batch job ")
        .to_string();
    running.wait_for_log("$ sleep 300", PATIENCE);

    running.cancel();
    let report = running.finish();

    let build = report.invocation("build_script");
    assert_eq!(
        build.signals,
        [nix::sys::signal::Signal::SIGTERM],
        "batchci must exit within graceful_kill_timeout, before any SIGKILL"
    );
    assert_eq!(build.exit, Some(2), "a cancelled stage is a system failure");
    assert_eq!(report.status, JobStatus::Canceled);
    let script = section(&report, "Executing \"step_script\" stage of the job script");
    let sleeping = script.iter().position(|l| l == "$ sleep 300");
    assert_eq!(
        sleeping.and_then(|i| script.get(i + 1)).map(String::as_str),
        Some(format!("$ scancel {id}").as_str()),
        "{script:#?}"
    );
    assert_eq!(
        script.last().map(String::as_str),
        Some("WARNING: script canceled externally (UI, API)")
    );
    assert_eq!(
        cluster.calls_of("scancel"),
        [vec!["scancel".to_string(), id.clone()]]
    );
    assert!(
        !cluster.job_active(&id),
        "Slurm job {id} outlived the cancel"
    );
    assert_eq!(
        section(&report, "Running after_script"),
        ["$ echo \"after: $CI_JOB_STATUS\"", "after: canceled"]
    );
    assert_eq!(
        report.lines().last().map(String::as_str),
        Some("ERROR: Job failed: canceled")
    );
}

// 5b. A site with no grace at all: SIGKILL follows SIGTERM at once, whatever batchci was doing.
fn a_sigkill_right_after_sigterm_still_releases_the_allocation(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "");
    let job = JobSpec::new(112).script(&["sleep 300"]);
    let running = driver(dir, &config, cluster)
        .graceful_kill_timeout(Duration::ZERO)
        .start(job)
        .unwrap();
    let id = running
        .wait_for_log("Submitted batch job ", PATIENCE)
        .trim_start_matches("Submitted batch job ")
        .to_string();

    running.cancel();
    let report = running.finish();

    let build = report.invocation("build_script");
    assert_eq!(
        build.signals,
        [
            nix::sys::signal::Signal::SIGTERM,
            nix::sys::signal::Signal::SIGKILL
        ]
    );
    assert_eq!(build.exit, None, "killed, so no exit code");
    assert_eq!(report.status, JobStatus::Canceled);
    assert_eq!(report.invocation("cleanup").exit, Some(0));
    // Either batchci's own scancel got out before the kill, or cleanup's did; never none, and
    // never one for another job.
    let scancels = cluster.calls_of("scancel");
    assert!(!scancels.is_empty(), "nobody cancelled Slurm job {id}");
    assert!(
        scancels
            .iter()
            .all(|argv| argv == &["scancel".to_string(), id.clone()]),
        "{scancels:?}"
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    while cluster.job_active(&id) {
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm job {id} outlived the kill and cleanup"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// 6. SIGKILL leaves the Slurm job running; cleanup, always called, cancels it.
fn a_killed_run_leaves_the_slurm_job_to_cleanup(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "");
    let job = JobSpec::new(107).script(&["sleep 300"]);
    let running = driver(dir, &config, cluster)
        .hold_before_cleanup()
        .start(job)
        .unwrap();
    let id = running
        .wait_for_log("Submitted batch job ", PATIENCE)
        .trim_start_matches("Submitted batch job ")
        .to_string();

    running.force_kill();
    running.wait_until_cleanup_is_next(PATIENCE);
    assert!(
        cluster.job_active(&id),
        "Slurm job {id} must survive the kill"
    );
    assert!(cluster.calls_of("scancel").is_empty());
    running.release_cleanup();
    let report = running.finish();

    let build = report.invocation("build_script");
    assert_eq!(build.signals, [nix::sys::signal::Signal::SIGKILL]);
    assert_eq!(build.exit, None);
    assert_eq!(report.invocation("cleanup").exit, Some(0));
    assert_eq!(
        report.cleanup_stderr.lines().collect::<Vec<_>>(),
        [format!(
            "batchci: cancelling slurm job {id} left by an interrupted stage"
        )]
    );
    assert!(
        !report.log.contains("left by an interrupted stage"),
        "cleanup output stays out of the job log"
    );
    assert_eq!(
        cluster.calls_of("scancel"),
        [vec!["scancel".to_string(), id.clone()]]
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    while cluster.job_active(&id) {
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm job {id} still active after cleanup"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(report.status, JobStatus::Canceled);
}

// 6b. gitlab-runner's SIGKILL to the process group must end a host stage's script too: after
// it, gitlab-runner abandons the call and nothing else would ever stop the script.
fn a_killed_host_stage_leaves_no_process_behind(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "");
    let job = JobSpec::new(113).script(&["true"]).after_script(&[
        "echo $$ > ../after_script.pid",
        "echo waiting",
        "sleep 300",
    ]);
    let running = driver(dir, &config, cluster).start(job).unwrap();
    running.wait_for_log("$ sleep 300", PATIENCE);

    running.force_kill();
    let report = running.finish();

    let after = report.invocation("after_script");
    assert_eq!(after.signals, [nix::sys::signal::Signal::SIGKILL]);
    assert!(
        !after.output_abandoned,
        "something batchci started kept the stage's output open after the kill"
    );
    let pid_file = report.project_dir.with_file_name("after_script.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let shell = nix::unistd::Pid::from_raw(pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while nix::sys::signal::kill(shell, None).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "after_script's shell {pid} outlived the SIGKILL of the driver's process group"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// 7. The exit codes come from the environment, whatever gitlab-runner chooses.
fn custom_failure_exit_codes_are_honoured(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "");
    let broken = jacamar_config_named(dir, "broken.toml", "command_delay = \"soon\"\n");
    let failing = JobSpec::new(108).script(&["exit 7"]);

    let failed = driver(dir, &config, cluster)
        .exit_codes(43, 42)
        .run(failing.clone())
        .unwrap();
    let unprepared = driver(dir, &broken, cluster)
        .exit_codes(43, 42)
        .run(failing)
        .unwrap();

    assert_eq!(failed.invocation("build_script").exit, Some(43));
    assert_eq!(
        failed
            .invocation("build_script")
            .build_exit_code_file
            .as_deref(),
        Some("7")
    );
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.exit_code, Some(7));
    assert_eq!(failed.failure_reason, Some("script_failure"));

    assert_eq!(
        unprepared
            .invocations
            .iter()
            .map(|i| (i.stage.as_str(), i.exit))
            .collect::<Vec<_>>(),
        [
            ("config", Some(42)),
            ("cleanup", Some(42)),
            ("config", Some(42)),
            ("cleanup", Some(42)),
            ("config", Some(42)),
            ("cleanup", Some(42)),
        ]
    );
    assert_eq!(unprepared.failure_reason, Some("runner_system_failure"));
    assert_eq!(
        unprepared.lines().last().map(String::as_str),
        Some("ERROR: Job failed (system failure): config: exit status 42")
    );
}

// 8. A typo in the configuration: system failure, and the message says where.
fn a_broken_config_is_a_system_failure_naming_file_line_and_key(dir: &Path, cluster: &Cluster) {
    let config = jacamar_config(dir, "poll_intervall = \"1s\"\n");
    let job = JobSpec::new(110).script(&["echo never"]);

    let report = driver(dir, &config, cluster).run(job).unwrap();

    assert_eq!(report.status, JobStatus::Failed);
    assert_eq!(report.failure_reason, Some("runner_system_failure"));
    assert_eq!(
        report.stages(),
        [
            "config", "cleanup", "config", "cleanup", "config", "cleanup"
        ]
    );
    assert!(report.invocations.iter().all(|i| i.exit == Some(2)));
    let message = format!(
        "batchci: {}:9: batch.poll_intervall: unknown key `poll_intervall`; did you mean `poll_interval`?",
        config.display()
    );
    let lines = report.lines();
    assert_eq!(
        lines.iter().filter(|l| **l == message).count(),
        3,
        "config_exec's stderr reaches the job log once per attempt:\n{lines:#?}"
    );
    assert_eq!(
        report.cleanup_stderr.trim_end(),
        message,
        "the last cleanup said the same, outside the job log"
    );
    assert!(cluster.calls().is_empty(), "{:?}", cluster.calls());
}

// 9. sbatch refuses what the user asked: BUILD_FAILURE_EXIT_CODE at once, sbatch's own lines.
fn a_refused_submission_is_a_build_failure_with_sbatchs_words(dir: &Path, cluster: &Cluster) {
    // A batchci that waited for the output of a job that never existed would outlast the case.
    let config =
        jacamar_config(dir, "").replace_in_file("nfs_timeout = \"5s\"", "nfs_timeout = \"1h\"");
    let job = JobSpec::new(112)
        .variable("SCHEDULER_PARAMETERS", "-p nonexistent")
        .script(&["echo never"]);

    let report = driver(dir, &config, cluster).run(job).unwrap();

    assert_eq!(report.status, JobStatus::Failed, "{}", report.log);
    assert_eq!(report.failure_reason, Some("script_failure"));
    assert_eq!(report.exit_code, Some(1));
    let step = section(&report, "Executing \"step_script\" stage of the job script");
    assert_eq!(
        step[step.len() - 3..],
        [
            "sbatch: error: invalid partition specified: nonexistent",
            "sbatch: error: Batch job submission failed: Invalid partition name specified",
            "ERROR: sbatch refused the job (exit code 1): Batch job submission failed: Invalid partition name specified",
        ],
        "{} cluster:\n{}",
        cluster.kind(),
        report.log
    );
}

/// Simulated cluster only: a controller that cannot be reached is the site's failure.
#[test]
fn fake_an_unreachable_controller_is_a_system_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path());
    let config = jacamar_config(dir.path(), "").replace_in_file(
        "\"SLURM_CONF\"]",
        "\"SLURM_CONF\", \"MOCK_CLUSTER_NO_AUTOSTART\"]",
    );
    let nowhere = dir.path().join("no-cluster-here").display().to_string();
    let job = JobSpec::new(113).script(&["echo never"]);

    let report = driver(dir.path(), &config, &cluster)
        .runner_env("MOCK_CLUSTER_STATE_DIR", &nowhere)
        .runner_env("MOCK_CLUSTER_NO_AUTOSTART", "1")
        .exit_codes(43, 42)
        .run(job)
        .unwrap();

    assert_eq!(report.invocation("build_script").exit, Some(42));
    assert_eq!(report.failure_reason, Some("runner_system_failure"));
    assert_eq!(
        report.lines().last().map(String::as_str),
        Some("ERROR: Job failed (system failure): build_script: exit status 42"),
        "{}",
        report.log
    );
    let step = section(&report, "Executing \"step_script\" stage of the job script");
    assert!(
        step.contains(&"ERROR: sbatch refused the job (exit code 1): Batch job submission failed: Unable to contact slurm controller (connect failure)".to_string()),
        "{step:#?}"
    );
}

/// Rewrites part of a file written by the case.
trait ReplaceInFile {
    fn replace_in_file(self, from: &str, to: &str) -> Self;
}

impl ReplaceInFile for PathBuf {
    fn replace_in_file(self, from: &str, to: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self).unwrap();
        assert!(text.contains(from), "{from:?} not in {}", self.display());
        std::fs::write(&self, text.replace(from, to)).unwrap();
        self
    }
}

/// PBS, Cobalt, LSF and Flux behind gitlab-runner: `build_script` goes through their submit
/// command (on a simulated cluster), its output reaches the job log, and a failing script's
/// exit code reaches `BUILD_EXIT_CODE_FILE`; the other stages stay on the host.
#[test]
fn pbs_cobalt_lsf_and_flux_run_build_script_and_report_its_exit_code() {
    for (executor, submit, parameters) in [
        ("pbs", "qsub", "-l walltime=00:10:00"),
        ("cobalt", "qsub", "-t 10 -n 1"),
        ("lsf", "bsub", "-n 1"),
        ("flux", "flux", "-n 1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = match executor {
            "pbs" | "cobalt" => Cluster::fake_flavored(dir.path(), executor),
            _ => Cluster::fake(dir.path()),
        };
        let config = jacamar_config(dir.path(), "").replace_in_file(
            "executor = \"slurm\"",
            &format!("executor = \"{executor}\""),
        );
        let passing = JobSpec::new(120)
            .variable("SCHEDULER_PARAMETERS", parameters)
            .script(&["echo \"hello from $CI_JOB_ID\""]);
        let failing = JobSpec::new(121)
            .variable("SCHEDULER_PARAMETERS", parameters)
            .script(&["exit 6"]);

        let passed = driver(dir.path(), &config, &cluster).run(passing).unwrap();
        let failed = driver(dir.path(), &config, &cluster).run(failing).unwrap();

        assert_eq!(
            passed.status,
            JobStatus::Success,
            "{executor}:\n{}",
            passed.log
        );
        assert!(
            section(&passed, "Executing \"step_script\" stage of the job script")
                .contains(&"hello from 120".to_string()),
            "{executor}:\n{}",
            passed.log
        );
        let submissions = cluster
            .calls_of(submit)
            .into_iter()
            .filter(|argv| {
                argv.iter()
                    .any(|a| a.contains("ci-job-") || a.contains("cobalt-"))
            })
            .count();
        assert_eq!(submissions, 2, "{executor}: one {submit} per build_script");
        let build = failed.invocation("build_script");
        assert_eq!(
            build.build_exit_code_file.as_deref(),
            Some("6"),
            "{executor}"
        );
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.exit_code, Some(6), "{executor}:\n{}", failed.log);
        assert_eq!(failed.failure_reason, Some("script_failure"));
    }
}
