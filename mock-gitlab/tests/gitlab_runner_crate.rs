//! Fidelity: a runner built on the `gitlab-runner` crate (gitlab-runner-rs), written by others
//! against real GitLab, takes jobs from the mock, streams their logs and finishes them.

mod common;

use gitlab_runner::job::Job;
use gitlab_runner::{GitlabLayer, JobHandler, JobResult, Phase, RunnerBuilder};
use mock_gitlab::api::{JobCall, NewPipeline, NewRunner, Variable};
use mock_gitlab::{JobStatus, MockConfig, MockGitlab};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(60);

/// Runs `echo TEXT` lines, `exit N`, `await-upload` (blocks until the mock has stored every
/// byte logged so far, which forces the crate to stream the log in more than one PATCH) and
/// `await-hard-cancel` (logs a line once the job is canceled, then blocks forever).
struct ScriptHandler {
    job: Job,
    gitlab: Arc<MockGitlab>,
    logged: u64,
}

impl ScriptHandler {
    fn log(&mut self, text: &str) {
        self.job.trace(text);
        self.logged += text.len() as u64;
    }
}

#[async_trait::async_trait]
impl JobHandler for ScriptHandler {
    async fn step(&mut self, script: &[String], phase: Phase) -> JobResult {
        self.log(&format!("--- {phase:?}\n"));
        for line in script {
            self.log(&format!("$ {line}\n"));
            if let Some(text) = line.strip_prefix("echo ") {
                self.log(&format!("{text}\n"));
            } else if line == "await-upload" {
                if self
                    .gitlab
                    .wait_for_trace(self.job.id(), self.logged, WAIT)
                    .await
                    .is_err()
                {
                    return Err(());
                }
            } else if line == "await-hard-cancel" {
                let canceled = [JobStatus::Canceled];
                if self
                    .gitlab
                    .wait_for_status(self.job.id(), &canceled, WAIT)
                    .await
                    .is_err()
                {
                    return Err(());
                }
                self.log("still running after the cancel\n");
                // Never ends by itself: only the crate's reaction to the cancel stops it.
                std::future::pending::<()>().await;
            } else if line.starts_with("exit ") {
                return Err(());
            }
        }
        Ok(())
    }
}

async fn start() -> (Arc<MockGitlab>, u64) {
    let gitlab = Arc::new(
        MockGitlab::start(MockConfig::default())
            .await
            .expect("mock starts"),
    );
    let project = gitlab.create_project("crate", None).unwrap();
    (gitlab, project)
}

async fn run_one_job(gitlab: &Arc<MockGitlab>, runner_token: &str) -> bool {
    let (layer, jobs) = GitlabLayer::new();
    // The layer only routes `outputln!` into job logs; keep it local to this test's thread.
    let _guard = tracing_subscriber::registry().with(layer).set_default();
    let builds = tempfile::tempdir().unwrap();
    let url = reqwest::Url::parse(gitlab.url()).unwrap();
    let mut runner = RunnerBuilder::new(url, runner_token, builds.path(), jobs)
        .system_id("s_0123456789ab")
        .build()
        .await;
    let gitlab_for_jobs = gitlab.clone();
    let took = runner
        .request_job(move |job| {
            let gitlab = gitlab_for_jobs.clone();
            async move {
                Ok(ScriptHandler {
                    job,
                    gitlab,
                    logged: 0,
                })
            }
        })
        .await
        .expect("request_job");
    runner.drain().await;
    took
}

#[tokio::test]
async fn a_gitlab_runner_crate_runner_streams_the_log_and_finishes_the_job() {
    let (gitlab, project) = start().await;
    let runner = gitlab.register_runner(NewRunner::default());
    let pipeline = gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: "build:\n  before_script: [echo preparing]\n  script:\n    - echo part one\n    - await-upload\n    - echo part two\n  after_script: [echo cleanup]\n".into(),
            variables: vec![],
            git_ref: "main".into(),
            ..Default::default()
        })
        .unwrap();
    let id = pipeline.jobs[0].id;

    let took = run_one_job(&gitlab, &runner.token).await;
    let job = gitlab.wait_for_job(id, WAIT).await.unwrap();

    assert!(took);
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(job.exit_code, Some(0));
    assert_eq!(job.runner_id, Some(runner.id));
    assert_eq!(
        String::from_utf8(gitlab.trace(id).unwrap()).unwrap(),
        "--- Script\n$ echo preparing\npreparing\n$ echo part one\npart one\n$ await-upload\n\
         $ echo part two\npart two\n--- AfterScript\n$ echo cleanup\ncleanup\n"
    );
    assert_eq!(job.trace_bytes as usize, gitlab.trace(id).unwrap().len());
    // What the crate sent: no two-phase ack, the log in several patches, a bare final update.
    let calls = gitlab.job_calls(id).unwrap();
    assert_eq!(
        calls.first(),
        Some(&JobCall::Request {
            runner_id: runner.id,
            two_phase: false
        })
    );
    let patches: Vec<&JobCall> = calls
        .iter()
        .filter(|c| matches!(c, JobCall::Patch { .. }))
        .collect();
    assert!(
        patches.len() >= 2,
        "streamed, not sent at the end: {calls:?}"
    );
    assert!(
        patches
            .iter()
            .all(|c| matches!(c, JobCall::Patch { reply: 202, .. }))
    );
    assert_eq!(
        calls.last(),
        Some(&JobCall::Update {
            state: Some("success".into()),
            failure_reason: None,
            exit_code: None,
            checksum: None,
            bytesize: None,
            reply: 200
        })
    );
}

#[tokio::test]
async fn a_failing_script_ends_failed_with_script_failure_and_the_whole_log() {
    let (gitlab, project) = start().await;
    let runner = gitlab.register_runner(NewRunner::default());
    let pipeline = gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: "stages: [build, test]\nbuild:\n  stage: build\n  script: [echo compiling, exit 1, echo never]\ntest:\n  stage: test\n  script: [echo testing]\n".into(),
            variables: vec![Variable { key: "K".into(), value: "v".into(), masked: false }],
            git_ref: "main".into(),
            ..Default::default()
        })
        .unwrap();
    let (build, test) = (pipeline.jobs[0].id, pipeline.jobs[1].id);

    run_one_job(&gitlab, &runner.token).await;
    let job = gitlab.wait_for_job(build, WAIT).await.unwrap();

    assert_eq!(job.status, JobStatus::Failed);
    // The crate sends neither failure_reason nor exit_code: GitLab's defaults apply.
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(job.exit_code, Some(0));
    assert_eq!(
        gitlab.trace(build).unwrap(),
        b"--- Script\n$ echo compiling\ncompiling\n$ exit 1\n"
    );
    assert_eq!(gitlab.job(test).unwrap().status, JobStatus::Skipped);
    assert_eq!(gitlab.pipeline(pipeline.id).unwrap().status, "failed");
}

#[tokio::test]
async fn a_tagged_job_waits_for_a_runner_with_its_tags() {
    let (gitlab, project) = start().await;
    let untagged = gitlab.register_runner(NewRunner::default());
    let slurm = gitlab.register_runner(NewRunner {
        tags: vec!["slurm".into()],
        ..NewRunner::default()
    });
    let pipeline = gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: "hpc:\n  tags: [slurm]\n  script: [echo on the cluster]\n".into(),
            variables: vec![],
            git_ref: "main".into(),
            ..Default::default()
        })
        .unwrap();

    let untagged_took = run_one_job(&gitlab, &untagged.token).await;
    let slurm_took = run_one_job(&gitlab, &slurm.token).await;
    let job = gitlab
        .wait_for_job(pipeline.jobs[0].id, WAIT)
        .await
        .unwrap();

    assert!(!untagged_took);
    assert!(slurm_took);
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(job.runner_id, Some(slurm.id));
}

#[tokio::test]
async fn a_hard_cancel_reaches_the_crate_as_403_with_job_status_canceled_and_stops_the_job() {
    let (gitlab, project) = start().await;
    let runner = gitlab.register_runner(NewRunner::default());
    let pipeline = gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: "long:\n  script: [echo started, await-hard-cancel]\n".into(),
            variables: vec![],
            git_ref: "main".into(),
            ..Default::default()
        })
        .unwrap();
    let id = pipeline.jobs[0].id;
    let canceller = {
        let gitlab = gitlab.clone();
        tokio::spawn(async move {
            gitlab
                .wait_for_status(id, &[JobStatus::Running], WAIT)
                .await
                .unwrap();
            gitlab.cancel_job(id, true).unwrap()
        })
    };

    // Returns only once the crate has stopped the job's handler.
    run_one_job(&gitlab, &runner.token).await;

    assert_eq!(canceller.await.unwrap().status, JobStatus::Canceled);
    let job = gitlab.job(id).unwrap();
    assert_eq!(job.status, JobStatus::Canceled);
    assert_eq!(job.exit_code, None, "no final update after a hard cancel");
    assert_eq!(
        gitlab.trace(id).unwrap(),
        b"",
        "the refused patch stored nothing"
    );
}
