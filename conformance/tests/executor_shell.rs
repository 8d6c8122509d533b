//! The shell backend end to end: mock GitLab, the real `batchci run`, a real git clone.

mod support;

use mock_gitlab::JobStatus;
use support::{Batchci, Site, plain_lines};

#[tokio::test(flavor = "multi_thread")]
async fn a_passing_job_clones_runs_and_reports_success() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "");
    let pipeline = site.pipeline(
        "build:\n  tags: [shell]\n  before_script:\n    - echo before\n  script:\n    - cat README.md\n    - echo \"job $CI_JOB_NAME in $CI_PROJECT_DIR\" | sed \"s|$CI_PROJECT_DIR|<dir>|\"\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    assert_eq!(job.exit_code, Some(0));
    let lines = plain_lines(&trace);
    let script: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| *l != "Executing \"step_script\" stage of the job script")
        .collect();
    assert_eq!(
        script,
        [
            "Executing \"step_script\" stage of the job script",
            "$ echo before",
            "before",
            "$ cat README.md",
            "hello from the repository",
            "$ echo \"job $CI_JOB_NAME in $CI_PROJECT_DIR\" | sed \"s|$CI_PROJECT_DIR|<dir>|\"",
            "job build in <dir>",
            "Cleaning up project directory and file based variables",
            "Job succeeded",
        ]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Checking out ") && l.ends_with(" as main...")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_script_reports_its_exit_code_and_after_script_sees_failed() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "");
    let pipeline = site.pipeline(
        "test:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo running\n    - exit 7\n    - echo never\n  after_script:\n    - 'echo \"after: $CI_JOB_STATUS\"'\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Failed, "{trace}");
    assert_eq!(job.exit_code, Some(7));
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    let lines = plain_lines(&trace);
    assert!(!lines.iter().any(|l| l == "never"), "{lines:#?}");
    let tail: Vec<&str> = lines
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "Running after_script",
            "$ echo \"after: $CI_JOB_STATUS\"",
            "after: failed",
            "Cleaning up project directory and file based variables",
            "ERROR: Job failed: exit code 7",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_masked_variable_shows_only_as_masked() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "");
    let secret = "s3cr3t-Value-1234";
    let pipeline = site.pipeline(
        "leak:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo \"the secret is $SECRET\"\n    - printf '%s' \"$SECRET\" | fold -w 3\n",
        &[("SECRET", secret, true)],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    assert!(trace.contains("the secret is [MASKED]"), "{trace}");
    assert!(!trace.contains(secret), "{trace}");
    // The job token is a credential too.
    let token = site.gitlab.job_token(job.id).unwrap();
    assert!(!trace.contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_registered_with_batchci_register_takes_jobs() {
    let site = Site::start(&["unused"]).await;
    let config = site.dir.path().join("registered.toml");
    let output = std::process::Command::new(support::workspace_binary("batchci"))
        .args(["register", "--config"])
        .arg(&config)
        .args([
            "--url",
            site.gitlab.url(),
            "--registration-token",
            site.gitlab.registration_token(),
        ])
        .args([
            "--executor",
            "shell",
            "--name",
            "laptop",
            "--tag-list",
            "fresh",
        ])
        .arg("--builds-dir")
        .arg(site.dir.path().join("builds"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("Registered runner laptop (id "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!(
            "with executor shell; appended to {}\n",
            config.display()
        )),
        "{stdout}"
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
    let pipeline = site.pipeline(
        "hello:\n  tags: [fresh]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo registered\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (job, trace) = site.finished(pipeline.jobs[0].id).await;

    assert_eq!(job.status, JobStatus::Success, "{trace}");
    assert!(plain_lines(&trace).iter().any(|l| l == "registered"));
    assert!(
        plain_lines(&trace)
            .iter()
            .any(|l| l.starts_with("  on laptop "))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_registration_token_is_refused_and_nothing_is_written() {
    let site = Site::start(&[]).await;
    let config = site.dir.path().join("never.toml");
    let output = std::process::Command::new(support::workspace_binary("batchci"))
        .args(["register", "--config"])
        .arg(&config)
        .args([
            "--url",
            site.gitlab.url(),
            "--registration-token",
            "wrong",
            "--executor",
            "shell",
        ])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "batchci: registration failed: GitLab answered 403 Forbidden to POST runners"
        ),
        "{stderr}"
    );
    assert!(!config.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_of_one_job_reach_the_job_that_depends_on_it() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "");
    let pipeline = site.pipeline(
        "stages: [build, test]\nbuild:\n  stage: build\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - mkdir -p out/sub\n    - echo binary > out/app\n    - echo nested > out/sub/data\n    - echo ignored > other\n  artifacts:\n    paths: [out/]\ntest:\n  stage: test\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: empty\n  dependencies: [build]\n  script:\n    - cat out/app out/sub/data\n    - test ! -e other\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (build, build_trace) = site.finished(pipeline.jobs[0].id).await;
    let (test, test_trace) = site.finished(pipeline.jobs[1].id).await;

    assert_eq!(build.status, JobStatus::Success, "{build_trace}");
    assert!(
        plain_lines(&build_trace)
            .iter()
            .any(|l| l == "out/: found 4 matching artifact files and directories"),
        "{build_trace}"
    );
    assert_eq!(test.status, JobStatus::Success, "{test_trace}");
    let lines = plain_lines(&test_trace);
    let shown: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| *l != "$ cat out/app out/sub/data")
        .take(3)
        .collect();
    assert_eq!(shown, ["$ cat out/app out/sub/data", "binary", "nested"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_one_runs_jobs_one_after_the_other() {
    let site = Site::start(&["shell"]).await;
    let config = site.write_config("shell", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("concurrent = 2", "concurrent = 1");
    std::fs::write(&config, text).unwrap();
    let first = site.pipeline(
        "a:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - sleep 1\n",
        &[],
    );
    let second = site.pipeline(
        "b:\n  tags: [shell]\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - sleep 1\n",
        &[],
    );
    let _batchci = Batchci::run(&config, &[]);

    let (a, _) = site.finished(first.jobs[0].id).await;
    let (b, _) = site.finished(second.jobs[0].id).await;

    assert_eq!(
        (a.status, b.status),
        (JobStatus::Success, JobStatus::Success)
    );
    let (a_start, a_end) = (a.started_at.unwrap(), a.finished_at.unwrap());
    let (b_start, b_end) = (b.started_at.unwrap(), b.finished_at.unwrap());
    assert!(
        b_start >= a_end || a_start >= b_end,
        "a {a_start}..{a_end} overlaps b {b_start}..{b_end}"
    );
}
