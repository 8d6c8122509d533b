//! A GitLab CI job as `POST /api/v4/jobs/request` hands it out.
//!
//! Every field GitLab may leave out has a default, and unknown fields are ignored, so a newer
//! GitLab never breaks job intake. Only the fields batchci acts on are typed.

use serde::{Deserialize, Serialize};

/// GitLab's default job timeout when `runner_info.timeout` is missing or not positive.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 7200;

/// The job payload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Job {
    /// Job id.
    pub id: u64,
    /// Job token: authenticates trace and update calls, git and artifact downloads.
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
    /// Whether GitLab allows `git fetch` into an existing work tree.
    #[serde(default, deserialize_with = "nullable")]
    pub allow_git_fetch: bool,
    /// Names and ids.
    #[serde(default, deserialize_with = "nullable")]
    pub job_info: JobInfo,
    /// What to check out.
    #[serde(default, deserialize_with = "nullable")]
    pub git_info: GitInfo,
    /// Runner-side settings GitLab sends, chiefly the timeout.
    #[serde(default, deserialize_with = "nullable")]
    pub runner_info: RunnerInfo,
    /// CI variables, in GitLab's order; later duplicates win.
    #[serde(default, deserialize_with = "nullable")]
    pub variables: Vec<Variable>,
    /// The steps: `script`, `after_script`, and custom ones.
    #[serde(default, deserialize_with = "nullable")]
    pub steps: Vec<Step>,
    /// The job image, for container executors.
    #[serde(default, deserialize_with = "nullable")]
    pub image: Option<Image>,
    /// Service containers.
    #[serde(default, deserialize_with = "nullable")]
    pub services: Vec<Image>,
    /// Artifacts to upload.
    #[serde(default, deserialize_with = "nullable")]
    pub artifacts: Vec<Artifact>,
    /// Jobs whose artifacts this job downloads.
    #[serde(default, deserialize_with = "nullable")]
    pub dependencies: Vec<Dependency>,
    /// What GitLab supports.
    #[serde(default, deserialize_with = "nullable")]
    pub features: Features,
}

/// `job_info`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct JobInfo {
    /// Job name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Stage name.
    #[serde(default, deserialize_with = "nullable")]
    pub stage: String,
    /// Project id.
    #[serde(default, deserialize_with = "nullable")]
    pub project_id: u64,
    /// Project name.
    #[serde(default, deserialize_with = "nullable")]
    pub project_name: String,
}

/// `git_info`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GitInfo {
    /// Clone URL with the job token as credentials.
    #[serde(default, deserialize_with = "nullable")]
    pub repo_url: String,
    /// Branch or tag.
    #[serde(default, rename = "ref", deserialize_with = "nullable")]
    pub git_ref: String,
    /// Commit to check out.
    #[serde(default, deserialize_with = "nullable")]
    pub sha: String,
    /// Previous commit of the ref.
    #[serde(default, deserialize_with = "nullable")]
    pub before_sha: String,
    /// `branch` or `tag`.
    #[serde(default, deserialize_with = "nullable")]
    pub ref_type: String,
    /// Refspecs to fetch.
    #[serde(default, deserialize_with = "nullable")]
    pub refspecs: Vec<String>,
    /// Shallow clone depth; 0 means full.
    #[serde(default, deserialize_with = "nullable")]
    pub depth: u32,
}

/// `runner_info`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RunnerInfo {
    /// Job timeout in seconds.
    #[serde(default, deserialize_with = "nullable")]
    pub timeout: i64,
}

/// One CI variable.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Variable {
    /// Name.
    pub key: String,
    /// Value (for file variables: the file's content).
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
    /// Whether the value may be shown.
    #[serde(default, deserialize_with = "nullable")]
    pub public: bool,
    /// Whether the value must be masked in the log.
    #[serde(default, deserialize_with = "nullable")]
    pub masked: bool,
    /// Whether the variable is a file variable.
    #[serde(default, deserialize_with = "nullable")]
    pub file: bool,
    /// Whether `$VAR` references in the value are left unexpanded.
    #[serde(default, deserialize_with = "nullable")]
    pub raw: bool,
}

/// One step.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Step {
    /// `script`, `after_script`, `release`, ...
    pub name: String,
    /// Shell lines.
    #[serde(default, deserialize_with = "nullable")]
    pub script: Vec<String>,
    /// `on_success` (or empty), `on_failure` or `always`.
    #[serde(default, deserialize_with = "nullable")]
    pub when: String,
    /// Whether a failure of this step fails the job.
    #[serde(default, deserialize_with = "nullable")]
    pub allow_failure: bool,
}

/// An image or service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Image {
    /// Image reference.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Network alias (services).
    #[serde(default, deserialize_with = "nullable")]
    pub alias: String,
    /// Entrypoint override.
    #[serde(default, deserialize_with = "nullable")]
    pub entrypoint: Vec<String>,
    /// Command override.
    #[serde(default, deserialize_with = "nullable")]
    pub command: Vec<String>,
}

/// One artifacts entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Artifact {
    /// Archive name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Include untracked files.
    #[serde(default, deserialize_with = "nullable")]
    pub untracked: bool,
    /// Paths (globs) relative to the project directory.
    #[serde(default, deserialize_with = "nullable")]
    pub paths: Vec<String>,
    /// Excluded paths.
    #[serde(default, deserialize_with = "nullable")]
    pub exclude: Vec<String>,
    /// `on_success`, `on_failure` or `always`.
    #[serde(default, deserialize_with = "nullable")]
    pub when: String,
    /// `archive`, `junit`, ...
    #[serde(default, deserialize_with = "nullable")]
    pub artifact_type: String,
    /// `zip`, `gzip`, `raw`, ...
    #[serde(default, deserialize_with = "nullable")]
    pub artifact_format: String,
    /// Expiry, e.g. `7d`.
    #[serde(default, deserialize_with = "nullable")]
    pub expire_in: String,
}

/// A job whose artifacts to download.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Dependency {
    /// Its job id.
    pub id: u64,
    /// Its job token, used for the download.
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
    /// Its name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Its artifacts archive, if any.
    #[serde(default, deserialize_with = "nullable")]
    pub artifacts_file: Option<ArtifactsFile>,
}

/// An uploaded artifacts archive.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ArtifactsFile {
    /// File name.
    #[serde(default, deserialize_with = "nullable")]
    pub filename: String,
    /// Size in bytes.
    #[serde(default, deserialize_with = "nullable")]
    pub size: u64,
}

/// `features`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Features {
    /// Whether the log gets `section_start`/`section_end` markers.
    #[serde(default = "default_true", deserialize_with = "nullable_true")]
    pub trace_sections: bool,
    /// Extra token prefixes to mask.
    #[serde(default, deserialize_with = "nullable")]
    pub token_mask_prefixes: Vec<String>,
    /// Failure reasons GitLab understands.
    #[serde(default, deserialize_with = "nullable")]
    pub failure_reasons: Vec<String>,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            trace_sections: true,
            token_mask_prefixes: Vec::new(),
            failure_reasons: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// GitLab sends `null` for many unset fields: treat it like a missing field.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn nullable_true<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}

impl Job {
    /// Parses a job payload; the error names the offending field, e.g.
    /// `variables[3].value: invalid type: integer `5`, expected a string`.
    pub fn from_json(bytes: &[u8]) -> Result<Job, String> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }
        })
    }

    /// The id and token of a payload that is otherwise unreadable, so the job can still be
    /// failed with a message instead of being lost.
    pub fn identify(bytes: &[u8]) -> Option<(u64, String)> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        Some((
            value.get("id")?.as_u64()?,
            value.get("token")?.as_str()?.to_string(),
        ))
    }

    /// The job timeout, with GitLab's default for a missing or non-positive value.
    pub fn timeout(&self) -> std::time::Duration {
        let seconds = u64::try_from(self.runner_info.timeout)
            .ok()
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        std::time::Duration::from_secs(seconds)
    }

    /// The value of variable `key`; the last definition wins, as in GitLab.
    pub fn variable(&self, key: &str) -> Option<&str> {
        self.variables
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.as_str())
    }

    /// Values to mask in the log.
    pub fn masked_values(&self) -> Vec<String> {
        let mut values: Vec<String> = self
            .variables
            .iter()
            .filter(|v| v.masked && !v.value.is_empty())
            .map(|v| v.value.clone())
            .collect();
        // The job token is a credential whether or not GitLab marked it masked.
        if !self.token.is_empty() {
            values.push(self.token.clone());
        }
        values
    }

    /// The step called `name`, if the job has it with at least one line.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.name == name && s.script.iter().any(|l| !l.trim().is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/job_request_201_response.json");

    #[test]
    fn gitlabs_example_payload_parses() {
        let job = Job::from_json(FIXTURE.as_bytes()).unwrap();
        assert_eq!(job.id, 10);
        assert_eq!(job.token, "job-token");
        assert_eq!(job.job_info.name, "test-job");
        assert_eq!(job.git_info.git_ref, "main");
        assert_eq!(job.timeout(), std::time::Duration::from_secs(3600));
        assert_eq!(job.step("script").unwrap().script, ["date", "ls -ls"]);
        assert_eq!(job.step("after_script").unwrap().when, "always");
        assert_eq!(job.dependencies[0].token, "other-job-token");
        assert!(job.features.trace_sections);
        assert_eq!(job.variable("CI_REF_NAME"), Some("main"));
    }

    #[test]
    fn missing_or_zero_timeout_means_two_hours() {
        let job = Job::from_json(br#"{"id":1,"token":"t","runner_info":{"timeout":0}}"#).unwrap();
        assert_eq!(job.timeout(), std::time::Duration::from_secs(7200));
    }

    #[test]
    fn the_last_definition_of_a_variable_wins_and_masked_values_include_the_token() {
        let job = Job::from_json(
            br#"{"id":1,"token":"tok","variables":[
                {"key":"A","value":"1"},{"key":"A","value":"2","masked":true}]}"#,
        )
        .unwrap();
        assert_eq!(job.variable("A"), Some("2"));
        assert_eq!(job.masked_values(), ["2", "tok"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(
            Job::from_json(b"{\"id\": \"ten\"}").unwrap_err(),
            "id: invalid type: string \"ten\", expected u64 at line 1 column 12"
        );
        assert!(Job::from_json(b"\xff").is_err());
        assert_eq!(
            Job::from_json(br#"{"id":1,"token":"t","variables":[{"key":"A","value":5}]}"#)
                .unwrap_err(),
            "variables[0].value: invalid type: integer `5`, expected a string at line 1 column 53"
        );
        assert_eq!(
            Job::identify(br#"{"id":1,"token":"t","variables":7}"#),
            Some((1, "t".into()))
        );
    }

    #[test]
    fn nulls_are_unset_fields() {
        let job = Job::from_json(
            br#"{"id":1,"token":"t","allow_git_fetch":null,"job_info":{"name":null},
                "variables":[{"key":"A","value":null,"masked":null}],
                "artifacts":[{"name":null,"paths":["out/"],"when":null,"expire_in":null}],
                "features":{"trace_sections":null}}"#,
        )
        .unwrap();
        assert_eq!(job.variable("A"), Some(""));
        assert_eq!(job.artifacts[0].paths, ["out/"]);
        assert!(job.features.trace_sections);
    }
}
