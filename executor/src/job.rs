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
    pub token: String,
    /// Whether GitLab allows `git fetch` into an existing work tree.
    #[serde(default)]
    pub allow_git_fetch: bool,
    /// Names and ids.
    #[serde(default)]
    pub job_info: JobInfo,
    /// What to check out.
    #[serde(default)]
    pub git_info: GitInfo,
    /// Runner-side settings GitLab sends, chiefly the timeout.
    #[serde(default)]
    pub runner_info: RunnerInfo,
    /// CI variables, in GitLab's order; later duplicates win.
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// The steps: `script`, `after_script`, and custom ones.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// The job image, for container executors.
    #[serde(default)]
    pub image: Option<Image>,
    /// Service containers.
    #[serde(default)]
    pub services: Vec<Image>,
    /// Artifacts to upload.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// Jobs whose artifacts this job downloads.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// What GitLab supports.
    #[serde(default)]
    pub features: Features,
}

/// `job_info`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct JobInfo {
    /// Job name.
    #[serde(default)]
    pub name: String,
    /// Stage name.
    #[serde(default)]
    pub stage: String,
    /// Project id.
    #[serde(default)]
    pub project_id: u64,
    /// Project name.
    #[serde(default)]
    pub project_name: String,
}

/// `git_info`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GitInfo {
    /// Clone URL with the job token as credentials.
    #[serde(default)]
    pub repo_url: String,
    /// Branch or tag.
    #[serde(default, rename = "ref")]
    pub git_ref: String,
    /// Commit to check out.
    #[serde(default)]
    pub sha: String,
    /// Previous commit of the ref.
    #[serde(default)]
    pub before_sha: String,
    /// `branch` or `tag`.
    #[serde(default)]
    pub ref_type: String,
    /// Refspecs to fetch.
    #[serde(default)]
    pub refspecs: Vec<String>,
    /// Shallow clone depth; 0 means full.
    #[serde(default)]
    pub depth: u32,
}

/// `runner_info`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RunnerInfo {
    /// Job timeout in seconds.
    #[serde(default)]
    pub timeout: i64,
}

/// One CI variable.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Variable {
    /// Name.
    pub key: String,
    /// Value (for file variables: the file's content).
    #[serde(default)]
    pub value: String,
    /// Whether the value may be shown.
    #[serde(default)]
    pub public: bool,
    /// Whether the value must be masked in the log.
    #[serde(default)]
    pub masked: bool,
    /// Whether the variable is a file variable.
    #[serde(default)]
    pub file: bool,
    /// Whether `$VAR` references in the value are left unexpanded.
    #[serde(default)]
    pub raw: bool,
}

/// One step.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Step {
    /// `script`, `after_script`, `release`, ...
    pub name: String,
    /// Shell lines.
    #[serde(default)]
    pub script: Vec<String>,
    /// `on_success` (or empty), `on_failure` or `always`.
    #[serde(default)]
    pub when: String,
    /// Whether a failure of this step fails the job.
    #[serde(default)]
    pub allow_failure: bool,
}

/// An image or service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Image {
    /// Image reference.
    #[serde(default)]
    pub name: String,
    /// Network alias (services).
    #[serde(default)]
    pub alias: String,
    /// Entrypoint override.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Command override.
    #[serde(default)]
    pub command: Vec<String>,
}

/// One artifacts entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Artifact {
    /// Archive name.
    #[serde(default)]
    pub name: String,
    /// Include untracked files.
    #[serde(default)]
    pub untracked: bool,
    /// Paths (globs) relative to the project directory.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Excluded paths.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `on_success`, `on_failure` or `always`.
    #[serde(default)]
    pub when: String,
    /// `archive`, `junit`, ...
    #[serde(default)]
    pub artifact_type: String,
    /// `zip`, `gzip`, `raw`, ...
    #[serde(default)]
    pub artifact_format: String,
    /// Expiry, e.g. `7d`.
    #[serde(default)]
    pub expire_in: String,
}

/// A job whose artifacts to download.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Dependency {
    /// Its job id.
    pub id: u64,
    /// Its job token, used for the download.
    #[serde(default)]
    pub token: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its artifacts archive, if any.
    #[serde(default)]
    pub artifacts_file: Option<ArtifactsFile>,
}

/// An uploaded artifacts archive.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ArtifactsFile {
    /// File name.
    #[serde(default)]
    pub filename: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// `features`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Features {
    /// Whether the log gets `section_start`/`section_end` markers.
    #[serde(default = "default_true")]
    pub trace_sections: bool,
    /// Extra token prefixes to mask.
    #[serde(default)]
    pub token_mask_prefixes: Vec<String>,
    /// Failure reasons GitLab understands.
    #[serde(default)]
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

impl Job {
    /// Parses a job payload.
    pub fn from_json(bytes: &[u8]) -> Result<Job, serde_json::Error> {
        serde_json::from_slice(bytes)
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
        assert!(Job::from_json(b"{\"id\": \"ten\"}").is_err());
        assert!(Job::from_json(b"\xff").is_err());
    }
}
