//! The job payload of a `201` reply to `POST /api/v4/jobs/request`, shaped like GitLab's
//! `API::Entities::Ci::JobRequest::Response`.

use crate::ci_yaml::ImageSpec;
use crate::model::{FAILURE_REASONS, Job, JobStatus, Runner, Store};
use serde_json::{Value, json};

/// GitLab's default `GIT_DEPTH` for new projects.
const DEFAULT_GIT_DEPTH: u64 = 20;
/// GitLab's default job timeout when neither the job nor the project sets one.
pub const DEFAULT_JOB_TIMEOUT: u64 = 3600;

/// `CI_*_SLUG` form: lower case, non-alphanumerics to `-`, at most 63 bytes, no `-` at the ends.
pub fn slug(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped.trim_matches('-').to_string()
}

fn variable(key: &str, value: &str, public: bool, masked: bool) -> Value {
    json!({"key": key, "value": value, "public": public, "masked": masked})
}

fn image(spec: &ImageSpec) -> Value {
    let mut image = json!({"name": spec.name, "ports": []});
    if let Some(alias) = &spec.alias {
        image["alias"] = json!(alias);
    }
    if !spec.entrypoint.is_empty() {
        image["entrypoint"] = json!(spec.entrypoint);
    }
    if !spec.command.is_empty() {
        image["command"] = json!(spec.command);
    }
    if !spec.pull_policy.is_empty() {
        image["pull_policy"] = json!(spec.pull_policy);
    }
    image
}

/// The job's timeout as the runner gets it: its own (or GitLab's default), capped at the
/// runner's `maximum_timeout`.
pub fn job_timeout(job: &Job, runner: &Runner) -> u64 {
    let job_timeout = job.spec.timeout.unwrap_or(DEFAULT_JOB_TIMEOUT);
    runner
        .maximum_timeout
        .map_or(job_timeout, |max| job_timeout.min(max))
}

/// Builds the payload a runner receives for `job`; `id_tokens` are its signed ID tokens as
/// `(variable, token)`.
pub fn job_payload(
    store: &Store,
    job: &Job,
    runner: &Runner,
    base_url: &str,
    id_tokens: &[(String, String)],
) -> Value {
    let host_port = base_url
        .strip_prefix("http://")
        .unwrap_or(base_url)
        .trim_end_matches('/');
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "80"));
    let pipeline = store.pipelines.get(&job.pipeline_id);
    let project = store.projects.get(&job.project_id);
    let project_name = project.map(|p| p.name.clone()).unwrap_or_default();
    let full_path = project.map(|p| p.full_path.clone()).unwrap_or_default();
    let namespace = full_path
        .rsplit_once('/')
        .map(|(ns, _)| ns.to_string())
        .unwrap_or_default();
    let git_ref = pipeline.map(|p| p.git_ref.clone()).unwrap_or_default();
    let sha = pipeline.map(|p| p.sha.clone()).unwrap_or_default();
    let before_sha = pipeline.map(|p| p.before_sha.clone()).unwrap_or_default();
    let repo_url = format!(
        "http://gitlab-ci-token:{}@{host_port}/{full_path}.git",
        job.token
    );
    let project_url = format!("{base_url}/{full_path}");
    let timeout = job_timeout(job, runner);
    let spec = &job.spec;
    let (user_id, user_login, user_email) = pipeline
        .map(|p| (p.user.id, p.user.login.clone(), p.user.email.clone()))
        .unwrap_or_default();

    let id = job.id.to_string();
    let pipeline_id = job.pipeline_id.to_string();
    let project_id = job.project_id.to_string();
    let short_sha: String = sha.chars().take(8).collect();
    let predefined: [(&str, String); 40] = [
        ("CI", "true".into()),
        ("GITLAB_CI", "true".into()),
        ("CI_SERVER", "yes".into()),
        ("CI_SERVER_NAME", "GitLab".into()),
        ("CI_SERVER_URL", base_url.to_string()),
        ("CI_SERVER_HOST", host.to_string()),
        ("CI_SERVER_PORT", port.to_string()),
        ("CI_SERVER_PROTOCOL", "http".into()),
        ("CI_API_V4_URL", format!("{base_url}/api/v4")),
        ("CI_PROJECT_ID", project_id.clone()),
        ("CI_PROJECT_NAME", project_name.clone()),
        ("CI_PROJECT_TITLE", project_name.clone()),
        ("CI_PROJECT_PATH", full_path.clone()),
        ("CI_PROJECT_PATH_SLUG", slug(&full_path)),
        ("CI_PROJECT_NAMESPACE", namespace),
        ("CI_PROJECT_URL", project_url.clone()),
        ("CI_PROJECT_VISIBILITY", "private".into()),
        ("CI_DEFAULT_BRANCH", "main".into()),
        ("CI_PIPELINE_ID", pipeline_id.clone()),
        ("CI_PIPELINE_IID", pipeline_id.clone()),
        ("CI_PIPELINE_SOURCE", "push".into()),
        (
            "CI_PIPELINE_URL",
            format!("{project_url}/-/pipelines/{pipeline_id}"),
        ),
        ("CI_JOB_ID", id.clone()),
        ("CI_JOB_NAME", spec.name.clone()),
        ("CI_JOB_STAGE", spec.stage.clone()),
        ("CI_JOB_URL", format!("{project_url}/-/jobs/{id}")),
        ("CI_REPOSITORY_URL", repo_url.clone()),
        ("CI_COMMIT_SHA", sha.clone()),
        ("CI_COMMIT_SHORT_SHA", short_sha),
        ("CI_COMMIT_BEFORE_SHA", before_sha.clone()),
        ("CI_COMMIT_REF_NAME", git_ref.clone()),
        ("CI_COMMIT_REF_SLUG", slug(&git_ref)),
        ("CI_COMMIT_BRANCH", git_ref.clone()),
        (
            "CI_NODE_TOTAL",
            spec.node.map_or(1, |(_, total)| total).to_string(),
        ),
        ("CI_RUNNER_ID", runner.id.to_string()),
        ("CI_RUNNER_DESCRIPTION", runner.description.clone()),
        ("CI_RUNNER_TAGS", json!(runner.tags).to_string()),
        ("GITLAB_USER_ID", user_id.to_string()),
        ("GITLAB_USER_LOGIN", user_login),
        ("GITLAB_USER_EMAIL", user_email),
    ];
    let mut variables: Vec<Value> = Vec::new();
    for (key, value) in &predefined {
        // GitLab sets CI_NODE_INDEX, just before CI_NODE_TOTAL, only for `parallel:` jobs.
        if *key == "CI_NODE_TOTAL"
            && let Some((index, _)) = spec.node
        {
            variables.push(variable("CI_NODE_INDEX", &index.to_string(), true, false));
        }
        variables.push(variable(key, value, true, false));
        if *key == "CI_JOB_URL" {
            variables.push(variable("CI_JOB_TOKEN", &job.token, false, true));
        }
    }
    if let Some(pipeline) = pipeline {
        // Precedence as GitLab applies it (the runner keeps the last of duplicate keys):
        // global YAML (those the job inherits) < job YAML < pipeline variables.
        for (key, value) in pipeline.config.variables_of(spec) {
            variables.push(variable(key, value, true, false));
        }
        for v in &pipeline.variables {
            variables.push(variable(&v.key, &v.value, false, v.masked));
        }
    }
    // Last, so no YAML or pipeline variable of the same name can replace a token.
    for (name, token) in id_tokens {
        variables.push(variable(name, token, false, true));
    }

    let mut steps = vec![json!({
        "name": "script",
        "script": spec.before_script.iter().chain(&spec.script).collect::<Vec<_>>(),
        "timeout": timeout,
        "when": "on_success",
        "allow_failure": spec.allow_failure,
    })];
    if !spec.after_script.is_empty() {
        steps.push(json!({
            "name": "after_script",
            "script": spec.after_script,
            "timeout": timeout,
            "when": "always",
            "allow_failure": true,
        }));
    }

    let artifacts: Vec<Value> = spec
        .artifacts
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "untracked": a.untracked,
                "paths": a.paths,
                "exclude": a.exclude,
                "when": a.when,
                "artifact_type": "archive",
                "artifact_format": "zip",
                "expire_in": a.expire_in,
            })
        })
        .collect();

    let dependencies: Vec<Value> = store
        .artifact_dependencies(job)
        .into_iter()
        .map(|dep| {
            let mut d = json!({"id": dep.id, "name": dep.spec.name, "token": dep.token});
            if let Some(artifact) = &dep.artifact {
                d["artifacts_file"] =
                    json!({"filename": artifact.filename, "size": artifact.data.len()});
            }
            d
        })
        .collect();

    let queue_size = store
        .jobs
        .values()
        .filter(|j| j.status == JobStatus::Pending && j.runner_id.is_none())
        .count();
    let time_in_queue = job
        .queued_at
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);

    json!({
        "id": job.id,
        "token": job.token,
        "allow_git_fetch": true,
        "job_info": {
            "id": job.id,
            "name": spec.name,
            "stage": spec.stage,
            "pipeline_id": job.pipeline_id,
            "project_id": job.project_id,
            "project_name": project_name,
            "project_full_path": full_path,
            "namespace_id": 1,
            "root_namespace_id": 1,
            "organization_id": 1,
            "user_id": user_id,
            "time_in_queue_seconds": time_in_queue,
            "project_jobs_running_on_instance_runners_count": "0",
            "queue_size": queue_size,
            "queue_depth": 0,
        },
        "git_info": {
            "repo_url": repo_url,
            "repo_object_format": "sha1",
            "ref": git_ref,
            "sha": sha,
            "before_sha": before_sha,
            "ref_type": "branch",
            "refspecs": [format!("+refs/heads/{git_ref}:refs/remotes/origin/{git_ref}")],
            "depth": DEFAULT_GIT_DEPTH,
            "protected": false,
        },
        "runner_info": {"timeout": timeout},
        "variables": variables,
        "steps": steps,
        "image": spec.image.as_ref().map(image),
        "services": spec.services.iter().map(image).collect::<Vec<_>>(),
        "artifacts": artifacts,
        "cache": [],
        "credentials": [],
        "dependencies": dependencies,
        "hooks": [],
        "features": {
            "trace_sections": true,
            "token_mask_prefixes": [],
            "failure_reasons": FAILURE_REASONS,
        },
    })
}
