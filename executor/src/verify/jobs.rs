//! One job through the mock GitLab and the site's runner: created as a one-job pipeline,
//! watched in GitLab and in the simulated cluster (pending reason, partition), cancelled when
//! the scenario asks or when it would pend forever.

use std::time::{Duration, Instant};

use mock_cluster::model::JobState;
use mock_gitlab::MockGitlab;
use mock_gitlab::api::{JobView, NewPipeline, Variable};

use super::cluster::{Seen, SimCluster, pends_forever};

/// When verify cancels the job itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelWhen {
    /// Only when it would pend forever or takes too long.
    Never,
    /// As soon as the cluster shows it pending.
    Pending,
    /// As soon as the cluster shows it running.
    Running,
}

/// How one job went.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// GitLab's view at the end.
    pub view: JobView,
    /// The whole log.
    pub trace: String,
    /// The scheduler's job as last seen (none: nothing was submitted, or no batch executor).
    pub seen: Option<Seen>,
    /// The pending reason that would never clear, when the job showed one.
    pub pend_forever: Option<String>,
    /// The state the job was in when verify cancelled it on purpose.
    pub cancelled_in: Option<JobState>,
    /// Whether the scheduler's job had left the queue (ended) after the GitLab job ended;
    /// `None` when there was no scheduler job.
    pub released: Option<bool>,
    /// The job did not end within the time verify gives it.
    pub timed_out: bool,
}

/// The mocks verify drives.
pub(crate) struct Harness {
    /// The mock GitLab.
    pub gitlab: MockGitlab,
    /// The project every pipeline runs for.
    pub project: u64,
    /// The GitLab login that starts every pipeline.
    pub user: String,
    /// The site's simulated cluster.
    pub cluster: SimCluster,
    /// How long one job may take before verify gives up on it.
    pub timeout: Duration,
    /// The `batchci run` serving the site's runners.
    pub runner: std::sync::Mutex<crate::mock_site::Runner>,
}

impl Harness {
    /// Runs `job` (a `.gitlab-ci.yml` job as JSON, which is YAML) as job `name` of a new
    /// pipeline with `variables`, and watches it until it ends.
    pub(crate) async fn run(
        &self,
        name: &str,
        job: serde_json::Value,
        variables: Vec<Variable>,
        cancel: CancelWhen,
    ) -> anyhow::Result<Outcome> {
        let mut yaml = serde_json::Map::new();
        yaml.insert(name.to_string(), job);
        let pipeline = self.gitlab.create_pipeline(NewPipeline {
            project_id: self.project,
            ci_yaml: serde_json::Value::Object(yaml).to_string(),
            variables,
            git_ref: "main".into(),
            user_login: Some(self.user.clone()),
            ..Default::default()
        })?;
        let id = pipeline
            .jobs
            .first()
            .map(|j| j.id)
            .ok_or_else(|| anyhow::anyhow!("the pipeline of {name} has no job"))?;
        let started = Instant::now();
        let mut seen = None;
        let mut pend_forever = None;
        let mut cancelled_in = None;
        let mut timed_out = false;
        let mut cancelled = false;
        let view = loop {
            let view = self.gitlab.job(id)?;
            if view.status.is_finished() {
                break view;
            }
            if let Some(now) = self.cluster.job_of(id) {
                if now.state == JobState::Pending
                    && pends_forever(&now.reason)
                    && pend_forever.is_none()
                {
                    pend_forever = Some(now.reason.clone());
                }
                let wanted = match cancel {
                    CancelWhen::Pending => now.state == JobState::Pending,
                    CancelWhen::Running => now.state == JobState::Running,
                    CancelWhen::Never => false,
                };
                if !cancelled && (wanted || pend_forever.is_some()) {
                    if wanted {
                        cancelled_in = Some(now.state);
                    }
                    self.gitlab.cancel_job(id, false)?;
                    cancelled = true;
                }
                seen = Some(now);
            }
            // A runner that stopped (a configuration `run` refuses, run-as without root)
            // would leave every job waiting out its timeout.
            if let Some(status) = self.runner_exited() {
                anyhow::bail!("batchci run exited ({status}); its errors are above");
            }
            if started.elapsed() > self.timeout && !timed_out {
                timed_out = true;
                self.gitlab.cancel_job(id, true)?;
            }
            if started.elapsed() > self.timeout * 2 {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        };
        let trace = String::from_utf8_lossy(&self.gitlab.trace(id)?).into_owned();
        let last = self.cluster.job_of(id);
        let released = match last.or(seen.clone()) {
            None => None,
            Some(_) => Some(self.released(id).await),
        };
        // The last record tells where the job ran (its nodes once it started).
        let seen = self.cluster.job_of(id).or(seen);
        Ok(Outcome {
            view,
            trace,
            seen,
            pend_forever,
            cancelled_in,
            released,
            timed_out,
        })
    }

    /// How `batchci run` ended, if it has.
    fn runner_exited(&self) -> Option<std::process::ExitStatus> {
        let mut runner = self.runner.lock().unwrap_or_else(|e| e.into_inner());
        runner.exited()
    }

    /// Stops `batchci run` (dropping the harness stops it too); stopping it twice is harmless.
    pub(crate) fn stop_runner(&self) {
        let mut runner = self.runner.lock().unwrap_or_else(|e| e.into_inner());
        runner.stop();
    }

    /// Whether the scheduler's job of GitLab job `id` has ended (left the queue, its
    /// allocation free), given a few seconds: a cancel takes the scheduler's kill_wait. Only
    /// the controller's record of the job ended proves it: a daemon that does not answer, or
    /// a job it no longer shows, proves nothing (verify asks with accounting, which keeps
    /// every ended job).
    async fn released(&self, id: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(job) = self.cluster.job_of(id)
                && job.state.is_finished()
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}
