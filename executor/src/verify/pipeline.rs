//! The site's users' own jobs: each job of a `.gitlab-ci.yml` (its includes, `extends:`,
//! `parallel:` ... resolved as GitLab does) whose tags a runner offers — or, untagged, on a
//! runner that takes untagged jobs — runs on it with its variables (`SCHEDULER_PARAMETERS`
//! ...), its script replaced by a stand-in unless `--run-scripts`. Does it land in the
//! partition it names, would it pend forever, does batchci or the scheduler refuse its
//! parameters? A pipeline none of whose jobs ran fails: it checked nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mock_cluster::model::JobState;
use mock_gitlab::JobStatus;
use mock_gitlab::ci_yaml::{Audience, CiConfig, JobSpec};
use serde_json::json;

use super::cluster::explain;
use super::jobs::{CancelWhen, Harness};
use super::report::{Check, Verdict};
use super::scenarios::{ended, failure_line};
use super::site::SiteRunner;
use crate::config::{ExecutorKind, RunnerConfig};

/// A user's pipeline file, parsed.
pub(crate) struct UserPipeline {
    /// The file.
    pub path: PathBuf,
    /// Its jobs.
    pub ci: CiConfig,
}

/// Reads and parses a `.gitlab-ci.yml` with the local files it includes (relative to its
/// directory); the error names the file (it or one it includes) and the line.
pub(crate) fn load(path: &Path) -> Result<UserPipeline, String> {
    let ci = mock_gitlab::ci_yaml::parse_file(path).map_err(|e| e.to_string())?;
    Ok(UserPipeline {
        path: path.to_path_buf(),
        ci,
    })
}

impl UserPipeline {
    /// The file's name, as the report shows it.
    pub(crate) fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// What the report must say about how the file was read: includes not read, jobs left
    /// out, jobs whose `rules`/`only`/`except` were not evaluated.
    pub(crate) fn notes(&self) -> Vec<String> {
        let file = self.file_name();
        let mut notes: Vec<String> = self
            .ci
            .notes
            .iter()
            .map(|n| format!("{file}: {n}"))
            .collect();
        let conditional: Vec<&str> = self
            .ci
            .jobs
            .iter()
            .filter(|j| j.conditional)
            .map(|j| j.name.as_str())
            .collect();
        if !conditional.is_empty() {
            notes.push(format!(
                "{file}: rules, only and except are not evaluated: {} checked as if they run",
                conditional.join(", ")
            ));
        }
        notes
    }
}

/// The first runner that takes `spec`: one offering all its tags, or for an untagged job one
/// that takes untagged jobs, as GitLab assigns them.
fn runner_for<'a>(
    spec: &JobSpec,
    runners: &'a [(SiteRunner, RunnerConfig)],
) -> Option<&'a (SiteRunner, RunnerConfig)> {
    runners.iter().find(|(site, _)| {
        if spec.tags.is_empty() {
            site.run_untagged
        } else {
            spec.tags.iter().all(|t| site.tags.contains(t))
        }
    })
}

/// The partition (queue) a job's parameters name, read the way `executor`'s submit command
/// reads its options.
fn named_partition(executor: ExecutorKind, parameters: &str) -> Option<String> {
    let words = shell_words::split(parameters).ok()?;
    let (short, long) = match executor {
        ExecutorKind::Slurm | ExecutorKind::DockerSlurm => ("-p", "--partition"),
        ExecutorKind::Flux => ("-q", "--queue"),
        _ => ("-q", "--queue"),
    };
    let mut named = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == short || word == long {
            named = words.next().cloned();
        } else if let Some(value) = word.strip_prefix(&format!("{long}=")) {
            named = Some(value.to_string());
        } else if let Some(value) = word.strip_prefix(short).filter(|v| !v.is_empty()) {
            named = Some(value.to_string());
        }
    }
    named
}

/// The job as verify runs it: pinned to `site` by its own tag, the script a stand-in unless
/// `run_scripts`.
fn job_for(
    spec: &JobSpec,
    ci: &CiConfig,
    site: &SiteRunner,
    run_scripts: bool,
) -> serde_json::Value {
    let mut variables = serde_json::Map::new();
    for (key, value) in ci.variables_of(spec) {
        variables.insert(key.clone(), json!(value));
    }
    // GitLab's predefined variables of a `parallel:` instance; the mock's one-job pipeline
    // would say 1 of 1.
    if let Some((index, total)) = spec.node {
        variables.insert("CI_NODE_INDEX".into(), json!(index.to_string()));
        variables.insert("CI_NODE_TOTAL".into(), json!(total.to_string()));
    }
    let mut tags = spec.tags.clone();
    tags.push(site.own_tag.clone());
    let mut job = json!({ "tags": tags, "variables": variables });
    if run_scripts {
        job["before_script"] = json!(spec.before_script);
        job["script"] = json!(spec.script);
        job["after_script"] = json!(spec.after_script);
    } else {
        job["script"] = json!([format!(
            "echo 'batchci verify: stand-in for the script of {}'",
            spec.name
        )]);
    }
    if let Some(image) = &spec.image {
        job["image"] = json!(image.name);
    }
    // Kept: a runner that runs jobs as their users refuses a job without its ID token.
    if !spec.id_tokens.is_empty() {
        let tokens: serde_json::Map<String, serde_json::Value> = spec
            .id_tokens
            .iter()
            .map(|token| {
                let aud = match &token.aud {
                    Audience::One(one) => json!(one),
                    Audience::Many(many) => json!(many),
                };
                (token.name.clone(), json!({ "aud": aud }))
            })
            .collect();
        job["id_tokens"] = serde_json::Value::Object(tokens);
    }
    job
}

/// Runs every job of `pipeline` on the runner whose tags it asks for.
pub(crate) async fn run(
    harness: &Harness,
    pipeline: &UserPipeline,
    runners: &[(SiteRunner, RunnerConfig)],
    run_scripts: bool,
    done: &(dyn Fn(&Check) + Sync),
) -> Vec<Check> {
    let group = format!("pipeline {}", pipeline.file_name());
    let mut checks = Vec::new();
    for spec in &pipeline.ci.jobs {
        let started = Instant::now();
        let (verdict, reason) = match runner_for(spec, runners) {
            None if spec.tags.is_empty() => (
                Verdict::Skip,
                "untagged, and no configured runner takes untagged jobs (give --run-untagged \
                 RUNNER, or --tags RUNNER= for a runner without tags)"
                    .to_string(),
            ),
            None => (
                Verdict::Skip,
                format!(
                    "no configured runner offers tags [{}] (give --tags RUNNER=TAG,...)",
                    spec.tags.join(", ")
                ),
            ),
            Some((site, config)) => judge(harness, pipeline, spec, site, config, run_scripts).await,
        };
        let check = Check {
            group: group.clone(),
            name: spec.name.clone(),
            verdict,
            reason,
            took: started.elapsed(),
        };
        done(&check);
        checks.push(check);
    }
    // Skips never fail a verify; a pipeline of skips alone would pass having checked nothing.
    if !checks.iter().any(|c| c.verdict != Verdict::Skip) {
        let check = Check {
            group,
            name: "any job checked".into(),
            verdict: Verdict::Fail,
            reason: format!(
                "none of its {} jobs went to a configured runner, so none was checked",
                pipeline.ci.jobs.len()
            ),
            took: std::time::Duration::ZERO,
        };
        done(&check);
        checks.push(check);
    }
    checks
}

async fn judge(
    harness: &Harness,
    pipeline: &UserPipeline,
    spec: &JobSpec,
    site: &SiteRunner,
    config: &RunnerConfig,
    run_scripts: bool,
) -> (Verdict, String) {
    let job = job_for(spec, &pipeline.ci, site, run_scripts);
    // The job's own value wins over a global one: the last of the file's variables.
    let parameters = config.batch.arguments_variable.iter().find_map(|name| {
        pipeline
            .ci
            .variables_of(spec)
            .filter(|(key, _)| key == name)
            .last()
            .map(|(_, value)| value.clone())
    });
    let named = parameters
        .as_deref()
        .and_then(|p| named_partition(site.executor, p));
    let outcome = match harness
        .run(&spec.name, job, vec![], CancelWhen::Never)
        .await
    {
        Ok(outcome) => outcome,
        Err(error) => return (Verdict::Fail, format!("{error:#}")),
    };
    let on = format!("runner {}", site.name);
    if let (Some(reason), Some(seen)) = (&outcome.pend_forever, &outcome.seen) {
        return (
            Verdict::Fail,
            format!(
                "would pend forever ({reason}): {}",
                explain(reason, seen, &harness.cluster.config)
            ),
        );
    }
    if outcome.timed_out {
        return (
            Verdict::Fail,
            format!("did not end within {:?} on {on}", harness.timeout),
        );
    }
    let Some(seen) = &outcome.seen else {
        if site.executor == ExecutorKind::Shell {
            return match outcome.view.status {
                JobStatus::Success => (Verdict::Ok, format!("success on {on}")),
                _ => (Verdict::Fail, ended(&outcome)),
            };
        }
        let line = failure_line(&outcome.trace);
        let whose = if outcome.trace.contains("is set by batchci") {
            "batchci refuses its parameters"
        } else {
            "the scheduler refuses it"
        };
        return (Verdict::Fail, format!("{whose}: {line}"));
    };
    if let Some(named) = &named
        && named != &seen.partition
    {
        return (
            Verdict::Fail,
            format!("names partition {named} but ran in {}", seen.partition),
        );
    }
    if outcome.view.status != JobStatus::Success {
        return (
            Verdict::Fail,
            format!("{} in {}", ended(&outcome), seen.partition),
        );
    }
    let place = if seen.state == JobState::Pending {
        "never started".to_string()
    } else {
        format!("on {}", seen.nodes)
    };
    let which = if named.is_some() {
        "the partition it names"
    } else {
        "the default partition"
    };
    (
        Verdict::Ok,
        format!(
            "ran in {} ({which}) {place}, {on}, {} CPUs",
            seen.partition, seen.cpus
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_in_every_spelling() {
        let slurm = ExecutorKind::Slurm;
        assert_eq!(
            named_partition(slurm, "-p gpu -t 10").as_deref(),
            Some("gpu")
        );
        assert_eq!(named_partition(slurm, "-pgpu").as_deref(), Some("gpu"));
        assert_eq!(
            named_partition(slurm, "--partition=gpu").as_deref(),
            Some("gpu")
        );
        assert_eq!(
            named_partition(slurm, "--partition gpu").as_deref(),
            Some("gpu")
        );
        assert_eq!(named_partition(slurm, "-t 10 -c 2"), None);
        assert_eq!(
            named_partition(ExecutorKind::Pbs, "-q batch -l walltime=1:00:00").as_deref(),
            Some("batch")
        );
    }
}
