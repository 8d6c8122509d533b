//! The `.gitlab-ci.yml` subset the mock understands.
//!
//! Supported keywords: `stages`, `default` (`image`, `services`, `before_script`,
//! `after_script`, `tags`, `timeout`, `id_tokens`), global and job `variables`, `before_script`,
//! `script`, `after_script`, `tags`, `timeout`, `image`, `services`, `allow_failure`,
//! `when`, `needs`, `dependencies`, `artifacts` (`paths`, `exclude`, `name`, `when`,
//! `expire_in`, `untracked`), `id_tokens` (`aud`) and `stage`. Hidden jobs (names starting with `.`) and YAML
//! anchors/merge keys work as in GitLab. Anything else is an error that names the line and
//! the key, the way GitLab's linter names the offending key.

use serde_yaml::{Mapping, Value};
use std::fmt;

/// GitLab's default stages when a file has no `stages:` list.
const DEFAULT_STAGES: [&str; 5] = [".pre", "build", "test", "deploy", ".post"];

/// Job keys the mock accepts and ignores because they do not change what a runner sees.
const IGNORED_JOB_KEYS: [&str; 6] = [
    "cache",
    "retry",
    "interruptible",
    "coverage",
    "environment",
    "resource_group",
];

/// Top-level keys that are not jobs.
const GLOBAL_KEYS: [&str; 8] = [
    "stages",
    "variables",
    "default",
    "image",
    "services",
    "before_script",
    "after_script",
    "workflow",
];

/// Top-level keywords of GitLab that the mock refuses rather than silently ignores.
const UNSUPPORTED_GLOBAL_KEYS: [&str; 3] = ["include", "cache", "spec"];

/// An error in a `.gitlab-ci.yml`, naming the line (1-based, when known) and the key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CiYamlError {
    /// 1-based line of the offending key, when it could be located.
    pub line: Option<usize>,
    /// Key path in GitLab's notation, e.g. `jobs:build:script`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CiYamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// When a job runs relative to the jobs before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Only when every job before it succeeded (the default).
    OnSuccess,
    /// Only when a job before it failed.
    OnFailure,
    /// Whatever happened before.
    Always,
    /// Waits for a person; the mock never starts it by itself.
    Manual,
}

/// A container image (`image:` or one entry of `services:`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageSpec {
    /// Image reference.
    pub name: String,
    /// Service alias.
    pub alias: Option<String>,
    /// Entrypoint override.
    pub entrypoint: Vec<String>,
    /// Command override (services).
    pub command: Vec<String>,
    /// Pull policies.
    pub pull_policy: Vec<String>,
}

/// One `needs:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Name of the needed job.
    pub job: String,
    /// Whether its artifacts are downloaded.
    pub artifacts: bool,
}

/// One entry of a job's `id_tokens:`: GitLab signs a JWT for the job and delivers it in the
/// variable `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenSpec {
    /// Variable the token is delivered in, e.g. `BATCHCI_ID_TOKEN`.
    pub name: String,
    /// The token's `aud` claim, as written: one audience or a list.
    pub aud: Audience,
}

/// The `aud` of an ID token: GitLab copies a string as a string and a list as a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `aud: https://batchci.example`.
    One(String),
    /// `aud: [https://a.example, https://b.example]`.
    Many(Vec<String>),
}

/// `artifacts:` of a job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArtifactsSpec {
    /// Archive name (`artifacts:name`).
    pub name: Option<String>,
    /// Globs to collect.
    pub paths: Vec<String>,
    /// Globs to leave out.
    pub exclude: Vec<String>,
    /// `on_success`, `on_failure` or `always`.
    pub when: String,
    /// Expiry, passed through.
    pub expire_in: Option<String>,
    /// Whether untracked files are collected.
    pub untracked: bool,
}

/// One job after `default:` has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Job name.
    pub name: String,
    /// Stage name.
    pub stage: String,
    /// Index of the stage in [`CiConfig::stages`].
    pub stage_index: usize,
    /// Job-level variables in file order.
    pub variables: Vec<(String, String)>,
    /// `before_script` (own or from `default:`).
    pub before_script: Vec<String>,
    /// `script`.
    pub script: Vec<String>,
    /// `after_script` (own or from `default:`).
    pub after_script: Vec<String>,
    /// Runner tags the job needs.
    pub tags: Vec<String>,
    /// Timeout in seconds.
    pub timeout: Option<u64>,
    /// Job image.
    pub image: Option<ImageSpec>,
    /// Service containers.
    pub services: Vec<ImageSpec>,
    /// Whether a failure of this job lets the pipeline go on.
    pub allow_failure: bool,
    /// When the job runs.
    pub when: When,
    /// `needs:`; `None` means stage ordering.
    pub needs: Option<Vec<Need>>,
    /// `dependencies:`; `None` means "all earlier jobs" (or the needs).
    pub dependencies: Option<Vec<String>>,
    /// `artifacts:`.
    pub artifacts: Option<ArtifactsSpec>,
    /// `id_tokens:` (own or from `default:`), in file order.
    pub id_tokens: Vec<IdTokenSpec>,
}

/// A parsed pipeline definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiConfig {
    /// Stages in order.
    pub stages: Vec<String>,
    /// Global `variables:` in file order.
    pub variables: Vec<(String, String)>,
    /// Jobs in file order (hidden jobs and `when: never` jobs removed).
    pub jobs: Vec<JobSpec>,
}

/// Parses a `.gitlab-ci.yml` text into a pipeline definition.
pub fn parse(text: &str) -> Result<CiConfig, CiYamlError> {
    let mut root: Value = serde_yaml::from_str(text).map_err(|e| CiYamlError {
        line: e.location().map(|l| l.line()),
        key: "yaml".into(),
        message: e.to_string(),
    })?;
    root.apply_merge().map_err(|e| CiYamlError {
        line: e.location().map(|l| l.line()),
        key: "yaml".into(),
        message: e.to_string(),
    })?;
    let parser = Parser { text };
    parser.config(&root)
}

struct Parser<'a> {
    text: &'a str,
}

#[derive(Default)]
struct Defaults {
    image: Option<ImageSpec>,
    services: Vec<ImageSpec>,
    before_script: Vec<String>,
    after_script: Vec<String>,
    tags: Vec<String>,
    timeout: Option<u64>,
    id_tokens: Vec<IdTokenSpec>,
}

impl Parser<'_> {
    fn err(&self, path: &[&str], message: impl Into<String>) -> CiYamlError {
        let first = path.first().copied().unwrap_or_default();
        let top_level = GLOBAL_KEYS.contains(&first) || UNSUPPORTED_GLOBAL_KEYS.contains(&first);
        let key = if !top_level {
            format!("jobs:{}", path.join(":"))
        } else {
            path.join(":")
        };
        CiYamlError {
            line: locate_key(self.text, path),
            key,
            message: message.into(),
        }
    }

    fn config(&self, root: &Value) -> Result<CiConfig, CiYamlError> {
        let Some(map) = root.as_mapping() else {
            return Err(CiYamlError {
                line: Some(1),
                key: "root".into(),
                message: "the file must be a mapping of keywords and jobs".into(),
            });
        };
        let stages = match map.get("stages") {
            None => DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
            Some(v) => {
                let mut stages = self.string_list(v, &["stages"])?;
                // GitLab always wraps user stages in .pre and .post.
                if !stages.iter().any(|s| s == ".pre") {
                    stages.insert(0, ".pre".into());
                }
                if !stages.iter().any(|s| s == ".post") {
                    stages.push(".post".into());
                }
                stages
            }
        };
        let variables = match map.get("variables") {
            None => Vec::new(),
            Some(v) => self.variables(v, &["variables"])?,
        };
        let defaults = self.defaults(map)?;

        let mut jobs = Vec::new();
        for (key, value) in map {
            let Some(name) = key.as_str() else {
                return Err(CiYamlError {
                    line: None,
                    key: format!("{key:?}"),
                    message: "job names must be strings".into(),
                });
            };
            if GLOBAL_KEYS.contains(&name) || name.starts_with('.') {
                continue;
            }
            if UNSUPPORTED_GLOBAL_KEYS.contains(&name) {
                return Err(self.err(&[name], "is not supported by the mock"));
            }
            if let Some(job) = self.job(name, value, &stages, &defaults)? {
                jobs.push(job);
            }
        }
        if jobs.is_empty() {
            return Err(CiYamlError {
                line: None,
                key: "jobs".into(),
                message: "the pipeline has no jobs".into(),
            });
        }
        self.check_references(&jobs)?;
        Ok(CiConfig {
            stages,
            variables,
            jobs,
        })
    }

    fn defaults(&self, map: &Mapping) -> Result<Defaults, CiYamlError> {
        let mut defaults = Defaults::default();
        // Deprecated top-level keywords behave like `default:`.
        for key in ["image", "services", "before_script", "after_script"] {
            if let Some(v) = map.get(key) {
                self.default_entry(&mut defaults, key, v, &[key])?;
            }
        }
        let Some(default) = map.get("default") else {
            return Ok(defaults);
        };
        let Some(default) = default.as_mapping() else {
            return Err(self.err(&["default"], "must be a mapping"));
        };
        for (key, v) in default {
            let key = key.as_str().unwrap_or("?");
            if !IGNORED_JOB_KEYS.contains(&key) {
                self.default_entry(&mut defaults, key, v, &["default", key])?;
            }
        }
        Ok(defaults)
    }

    fn default_entry(
        &self,
        defaults: &mut Defaults,
        key: &str,
        v: &Value,
        path: &[&str],
    ) -> Result<(), CiYamlError> {
        match key {
            "image" => defaults.image = Some(self.image(v, path)?),
            "services" => defaults.services = self.services(v, path)?,
            "before_script" => defaults.before_script = self.script(v, path)?,
            "after_script" => defaults.after_script = self.script(v, path)?,
            "tags" => defaults.tags = self.string_list(v, path)?,
            "timeout" => defaults.timeout = Some(self.timeout(v, path)?),
            "id_tokens" => defaults.id_tokens = self.id_tokens(v, path)?,
            _ => return Err(self.err(path, "unknown key in default")),
        }
        Ok(())
    }

    fn job(
        &self,
        name: &str,
        value: &Value,
        stages: &[String],
        defaults: &Defaults,
    ) -> Result<Option<JobSpec>, CiYamlError> {
        let Some(map) = value.as_mapping() else {
            return Err(self.err(&[name], "a job must be a mapping"));
        };
        let mut job = JobSpec {
            name: name.to_string(),
            stage: "test".into(),
            stage_index: 0,
            variables: Vec::new(),
            before_script: defaults.before_script.clone(),
            script: Vec::new(),
            after_script: defaults.after_script.clone(),
            tags: defaults.tags.clone(),
            timeout: defaults.timeout,
            image: defaults.image.clone(),
            services: defaults.services.clone(),
            allow_failure: false,
            when: When::OnSuccess,
            needs: None,
            dependencies: None,
            artifacts: None,
            id_tokens: defaults.id_tokens.clone(),
        };
        let mut has_script = false;
        let mut never = false;
        for (key, v) in map {
            let key = key.as_str().unwrap_or("?");
            let path = [name, key];
            match key {
                "stage" => {
                    job.stage = v
                        .as_str()
                        .ok_or_else(|| self.err(&path, "must be a string"))?
                        .to_string()
                }
                "variables" => job.variables = self.variables(v, &path)?,
                "before_script" => job.before_script = self.script(v, &path)?,
                "script" => {
                    job.script = self.script(v, &path)?;
                    has_script = true;
                }
                "after_script" => job.after_script = self.script(v, &path)?,
                "tags" => job.tags = self.string_list(v, &path)?,
                "timeout" => job.timeout = Some(self.timeout(v, &path)?),
                "image" => job.image = Some(self.image(v, &path)?),
                "services" => job.services = self.services(v, &path)?,
                "allow_failure" => {
                    job.allow_failure = match v {
                        Value::Bool(b) => *b,
                        // `allow_failure: {exit_codes: ...}` means failures can be allowed.
                        Value::Mapping(_) => true,
                        _ => return Err(self.err(&path, "must be a boolean")),
                    }
                }
                "when" => match v.as_str() {
                    Some("on_success") => job.when = When::OnSuccess,
                    Some("on_failure") => job.when = When::OnFailure,
                    Some("always") => job.when = When::Always,
                    Some("manual") => job.when = When::Manual,
                    Some("never") => never = true,
                    _ => {
                        return Err(self.err(
                            &path,
                            "must be one of on_success, on_failure, always, manual, never",
                        ));
                    }
                },
                "needs" => job.needs = Some(self.needs(v, &path)?),
                "dependencies" => job.dependencies = Some(self.string_list(v, &path)?),
                "artifacts" => job.artifacts = Some(self.artifacts(v, &path)?),
                "id_tokens" => job.id_tokens = self.id_tokens(v, &path)?,
                k if IGNORED_JOB_KEYS.contains(&k) => {}
                _ => return Err(self.err(&path, "unknown key")),
            }
        }
        if !has_script {
            return Err(self.err(&[name], "config should contain a script"));
        }
        if job.when == When::Manual && !map.contains_key("allow_failure") {
            // GitLab: manual jobs are allowed to fail unless told otherwise.
            job.allow_failure = true;
        }
        job.stage_index = stages.iter().position(|s| *s == job.stage).ok_or_else(|| {
            self.err(
                &[name, "stage"],
                format!("chosen stage {} does not exist", job.stage),
            )
        })?;
        Ok((!never).then_some(job))
    }

    fn check_references(&self, jobs: &[JobSpec]) -> Result<(), CiYamlError> {
        let stage_of = |name: &str| jobs.iter().find(|j| j.name == name).map(|j| j.stage_index);
        for job in jobs {
            for need in job.needs.iter().flatten() {
                match stage_of(&need.job) {
                    None => {
                        return Err(self.err(
                            &[&job.name, "needs"],
                            format!("undefined need: {}", need.job),
                        ));
                    }
                    Some(s) if s > job.stage_index => {
                        return Err(self.err(
                            &[&job.name, "needs"],
                            format!("need {} is in a later stage", need.job),
                        ));
                    }
                    Some(_) => {}
                }
            }
            for dep in job.dependencies.iter().flatten() {
                match stage_of(dep) {
                    Some(s) if s < job.stage_index => {}
                    Some(_) => {
                        return Err(self.err(
                            &[&job.name, "dependencies"],
                            format!("dependency {dep} is not defined in current or prior stages"),
                        ));
                    }
                    None => {
                        return Err(self.err(
                            &[&job.name, "dependencies"],
                            format!("undefined dependency: {dep}"),
                        ));
                    }
                }
            }
        }
        self.check_needs_cycles(jobs)
    }

    /// GitLab refuses pipelines whose `needs:` form a cycle; they would never start.
    fn check_needs_cycles(&self, jobs: &[JobSpec]) -> Result<(), CiYamlError> {
        fn visit<'a>(
            name: &'a str,
            jobs: &'a [JobSpec],
            on_path: &mut Vec<&'a str>,
            done: &mut Vec<&'a str>,
        ) -> Option<Vec<&'a str>> {
            if done.contains(&name) {
                return None;
            }
            if let Some(start) = on_path.iter().position(|n| *n == name) {
                let mut cycle = on_path[start..].to_vec();
                cycle.push(name);
                return Some(cycle);
            }
            on_path.push(name);
            let needs = jobs
                .iter()
                .find(|j| j.name == name)
                .and_then(|j| j.needs.as_ref());
            for need in needs.into_iter().flatten() {
                if let Some(cycle) = visit(&need.job, jobs, on_path, done) {
                    return Some(cycle);
                }
            }
            on_path.pop();
            done.push(name);
            None
        }
        let mut done = Vec::new();
        for job in jobs {
            if let Some(cycle) = visit(&job.name, jobs, &mut Vec::new(), &mut done) {
                let first = cycle.first().copied().unwrap_or_default();
                return Err(self.err(
                    &[first, "needs"],
                    format!(
                        "circular dependency detected in needs: {}",
                        cycle.join(" -> ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn scalar(&self, v: &Value, path: &[&str]) -> Result<String, CiYamlError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(self.err(path, "must be a string, a number or a boolean")),
        }
    }

    fn string_list(&self, v: &Value, path: &[&str]) -> Result<Vec<String>, CiYamlError> {
        let Some(seq) = v.as_sequence() else {
            return Err(self.err(path, "must be a list of strings"));
        };
        seq.iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.err(path, "must be a list of strings"))
            })
            .collect()
    }

    fn script(&self, v: &Value, path: &[&str]) -> Result<Vec<String>, CiYamlError> {
        match v {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Sequence(seq) => {
                let mut lines = Vec::new();
                for item in seq {
                    match item {
                        Value::String(s) => lines.push(s.clone()),
                        // Nested lists come from anchors (`- *setup`) and are flattened.
                        Value::Sequence(inner) => {
                            for s in inner {
                                lines.push(self.scalar(s, path)?);
                            }
                        }
                        Value::Number(_) | Value::Bool(_) => lines.push(self.scalar(item, path)?),
                        _ => {
                            return Err(self.err(
                                path,
                                "must be a string or a list of strings (quote lines that contain `: `)",
                            ));
                        }
                    }
                }
                Ok(lines)
            }
            _ => Err(self.err(path, "must be a string or a list of strings")),
        }
    }

    fn variables(&self, v: &Value, path: &[&str]) -> Result<Vec<(String, String)>, CiYamlError> {
        let Some(map) = v.as_mapping() else {
            return Err(self.err(path, "must be a mapping of names to values"));
        };
        let mut out = Vec::new();
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                return Err(self.err(path, "variable names must be strings"));
            };
            let mut var_path = path.to_vec();
            var_path.push(key);
            let value = match value {
                Value::Mapping(m) => match m.get("value") {
                    Some(v) => self.scalar(v, &var_path)?,
                    None => String::new(),
                },
                Value::Null => String::new(),
                other => self.scalar(other, &var_path)?,
            };
            out.push((key.to_string(), value));
        }
        Ok(out)
    }

    fn timeout(&self, v: &Value, path: &[&str]) -> Result<u64, CiYamlError> {
        let text = self.scalar(v, path)?;
        parse_duration(&text).ok_or_else(|| {
            self.err(
                path,
                format!("invalid duration {text:?} (examples: 3600, 90m, 1h 30m, 2 hours)"),
            )
        })
    }

    fn image(&self, v: &Value, path: &[&str]) -> Result<ImageSpec, CiYamlError> {
        match v {
            Value::String(s) => Ok(ImageSpec {
                name: s.clone(),
                ..ImageSpec::default()
            }),
            Value::Mapping(m) => {
                let mut image = ImageSpec::default();
                for (key, value) in m {
                    let key = key.as_str().unwrap_or("?");
                    let mut p = path.to_vec();
                    p.push(key);
                    match key {
                        "name" => image.name = self.scalar(value, &p)?,
                        "alias" => image.alias = Some(self.scalar(value, &p)?),
                        "entrypoint" => image.entrypoint = self.string_list(value, &p)?,
                        "command" => image.command = self.string_list(value, &p)?,
                        "pull_policy" => {
                            image.pull_policy = match value {
                                Value::String(s) => vec![s.clone()],
                                _ => self.string_list(value, &p)?,
                            }
                        }
                        "docker" | "kubernetes" | "variables" => {}
                        _ => return Err(self.err(&p, "unknown key")),
                    }
                }
                if image.name.is_empty() {
                    return Err(self.err(path, "needs a name"));
                }
                Ok(image)
            }
            _ => Err(self.err(path, "must be a string or a mapping with a name")),
        }
    }

    fn services(&self, v: &Value, path: &[&str]) -> Result<Vec<ImageSpec>, CiYamlError> {
        let Some(seq) = v.as_sequence() else {
            return Err(self.err(path, "must be a list"));
        };
        seq.iter().map(|item| self.image(item, path)).collect()
    }

    fn needs(&self, v: &Value, path: &[&str]) -> Result<Vec<Need>, CiYamlError> {
        let Some(seq) = v.as_sequence() else {
            return Err(self.err(path, "must be a list"));
        };
        seq.iter()
            .map(|item| match item {
                Value::String(s) => Ok(Need {
                    job: s.clone(),
                    artifacts: true,
                }),
                Value::Mapping(m) => {
                    let job = m
                        .get("job")
                        .and_then(Value::as_str)
                        .ok_or_else(|| self.err(path, "each need names a job"))?;
                    let artifacts = match m.get("artifacts") {
                        None => true,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => return Err(self.err(path, "artifacts must be a boolean")),
                    };
                    Ok(Need {
                        job: job.to_string(),
                        artifacts,
                    })
                }
                _ => Err(self.err(path, "each need is a job name or {job: NAME}")),
            })
            .collect()
    }

    fn id_tokens(&self, v: &Value, path: &[&str]) -> Result<Vec<IdTokenSpec>, CiYamlError> {
        let Some(map) = v.as_mapping() else {
            return Err(self.err(path, "must be a mapping of variable names to {aud: ...}"));
        };
        let mut out = Vec::new();
        for (name, spec) in map {
            let Some(name) = name.as_str().filter(|n| is_variable_name(n)) else {
                return Err(self.err(
                    path,
                    "token names are variable names (letters, digits and '_')",
                ));
            };
            let mut p = path.to_vec();
            p.push(name);
            let Some(spec) = spec.as_mapping() else {
                return Err(self.err(&p, "must be a mapping with aud"));
            };
            let mut aud = None;
            for (key, value) in spec {
                let key = key.as_str().unwrap_or("?");
                let mut q = p.clone();
                q.push(key);
                match key {
                    "aud" => {
                        aud = Some(match value {
                            Value::Sequence(_) => {
                                let list = self.string_list(value, &q)?;
                                if list.is_empty() {
                                    return Err(self.err(&q, "must name at least one audience"));
                                }
                                Audience::Many(list)
                            }
                            other => Audience::One(self.scalar(other, &q)?),
                        })
                    }
                    _ => return Err(self.err(&q, "unknown key")),
                }
            }
            let Some(aud) = aud else {
                return Err(self.err(&p, "missing aud"));
            };
            out.push(IdTokenSpec {
                name: name.to_string(),
                aud,
            });
        }
        Ok(out)
    }

    fn artifacts(&self, v: &Value, path: &[&str]) -> Result<ArtifactsSpec, CiYamlError> {
        let Some(map) = v.as_mapping() else {
            return Err(self.err(path, "must be a mapping"));
        };
        let mut spec = ArtifactsSpec {
            when: "on_success".into(),
            ..ArtifactsSpec::default()
        };
        for (key, value) in map {
            let key = key.as_str().unwrap_or("?");
            let mut p = path.to_vec();
            p.push(key);
            match key {
                "paths" => spec.paths = self.string_list(value, &p)?,
                "exclude" => spec.exclude = self.string_list(value, &p)?,
                "name" => spec.name = Some(self.scalar(value, &p)?),
                "expire_in" => spec.expire_in = Some(self.scalar(value, &p)?),
                "untracked" => {
                    spec.untracked = value
                        .as_bool()
                        .ok_or_else(|| self.err(&p, "must be a boolean"))?
                }
                "when" => match value.as_str() {
                    Some(w @ ("on_success" | "on_failure" | "always")) => spec.when = w.into(),
                    _ => return Err(self.err(&p, "must be on_success, on_failure or always")),
                },
                "reports" | "expose_as" | "public" | "access" => {}
                _ => return Err(self.err(&p, "unknown key")),
            }
        }
        Ok(spec)
    }
}

/// Whether `name` can be a CI/CD variable name: letters, digits and `_`.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses GitLab-style durations: `3600` (seconds), `90m`, `1h 30m`, `2 hours`, `1 day`.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(secs);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    let mut matched = false;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(factor)?)?;
        matched = true;
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(stripped) = rest.strip_prefix("and ") {
            rest = stripped;
        }
    }
    matched.then_some(total)
}

/// Finds the 1-based line of a key path (`["build", "script"]`) in block-style YAML.
fn locate_key(text: &str, path: &[&str]) -> Option<usize> {
    let mut parent_indent: Option<usize> = None;
    let mut line_no = 0;
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    for (depth, key) in path.iter().enumerate() {
        let mut found = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if let Some(p) = parent_indent
                && indent <= p
                && i > start
            {
                break;
            }
            if depth == 0 && indent != 0 {
                continue;
            }
            let bare = trimmed.trim_start_matches("- ");
            let key_text = bare
                .split_once(':')
                .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\''));
            if key_text == Some(*key) {
                found = Some((i, indent));
                break;
            }
        }
        let (i, indent) = found?;
        line_no = i + 1;
        parent_indent = Some(indent);
        start = i + 1;
    }
    (line_no > 0).then_some(line_no)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_gitlab_forms() {
        assert_eq!(parse_duration("3600"), Some(3600));
        assert_eq!(parse_duration("90m"), Some(5400));
        assert_eq!(parse_duration("1h 30m"), Some(5400));
        assert_eq!(parse_duration("2 hours"), Some(7200));
        assert_eq!(parse_duration("1 day"), Some(86_400));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn defaults_apply_unless_a_job_sets_its_own() {
        let config = parse(
            "default:\n  image: alpine\n  before_script: [setup]\n  tags: [hpc]\n\
             a:\n  script: [x]\n\
             b:\n  before_script: [own]\n  image: {name: ruby, entrypoint: [\"\"]}\n  script: [y]\n",
        )
        .unwrap();

        let (a, b) = (&config.jobs[0], &config.jobs[1]);
        assert_eq!(a.before_script, ["setup"]);
        assert_eq!(a.image.as_ref().map(|i| i.name.as_str()), Some("alpine"));
        assert_eq!(a.tags, ["hpc"]);
        assert_eq!(b.before_script, ["own"]);
        assert_eq!(
            b.image.as_ref().map(|i| i.entrypoint.clone()),
            Some(vec![String::new()])
        );
    }

    #[test]
    fn hidden_jobs_anchors_and_merge_keys_work_as_in_gitlab() {
        let config = parse(
            ".base: &base\n  tags: [slurm]\n  script: [make]\n\
             build:\n  <<: *base\n  variables: {N: 4}\n",
        )
        .unwrap();

        assert_eq!(config.jobs.len(), 1);
        assert_eq!(config.jobs[0].name, "build");
        assert_eq!(config.jobs[0].tags, ["slurm"]);
        assert_eq!(config.jobs[0].script, ["make"]);
        assert_eq!(
            config.jobs[0].variables,
            [("N".to_string(), "4".to_string())]
        );
    }

    #[test]
    fn id_tokens_take_one_audience_or_a_list_and_default_applies() {
        let config = parse(
            "default:\n  id_tokens:\n    SITE_TOKEN: {aud: https://site.example}\n\
             a:\n  script: [x]\n\
             b:\n  id_tokens:\n    BATCHCI_ID_TOKEN:\n      aud: https://batchci.example\n    \
             VAULT_TOKEN:\n      aud: [https://vault.example, https://other.example]\n  script: [y]\n",
        )
        .unwrap();

        assert_eq!(
            config.jobs[0].id_tokens,
            [IdTokenSpec {
                name: "SITE_TOKEN".into(),
                aud: Audience::One("https://site.example".into()),
            }]
        );
        assert_eq!(
            config.jobs[1].id_tokens,
            [
                IdTokenSpec {
                    name: "BATCHCI_ID_TOKEN".into(),
                    aud: Audience::One("https://batchci.example".into()),
                },
                IdTokenSpec {
                    name: "VAULT_TOKEN".into(),
                    aud: Audience::Many(vec![
                        "https://vault.example".into(),
                        "https://other.example".into()
                    ]),
                },
            ]
        );
    }

    #[test]
    fn id_tokens_errors_name_the_line_and_key() {
        let cases = [
            (
                "b:\n  script: [x]\n  id_tokens:\n    T:\n      audience: x\n",
                "line 5: jobs:b:id_tokens:T:audience: unknown key",
            ),
            (
                "b:\n  script: [x]\n  id_tokens:\n    T: {}\n",
                "line 4: jobs:b:id_tokens:T: missing aud",
            ),
            (
                "b:\n  script: [x]\n  id_tokens:\n    T:\n      aud: []\n",
                "line 5: jobs:b:id_tokens:T:aud: must name at least one audience",
            ),
            (
                "b:\n  script: [x]\n  id_tokens: [T]\n",
                "line 3: jobs:b:id_tokens: must be a mapping of variable names to {aud: ...}",
            ),
            (
                "b:\n  script: [x]\n  id_tokens:\n    MY-TOKEN: {aud: x}\n",
                "line 3: jobs:b:id_tokens: token names are variable names (letters, digits and '_')",
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(parse(yaml).unwrap_err().to_string(), expected, "{yaml}");
        }
    }

    #[test]
    fn stages_gain_pre_and_post_and_never_jobs_vanish() {
        let config =
            parse("stages: [build]\nb:\n  stage: build\n  script: [x]\nn:\n  stage: build\n  when: never\n  script: [x]\n")
                .unwrap();

        assert_eq!(config.stages, [".pre", "build", ".post"]);
        assert_eq!(config.jobs.len(), 1);
        assert_eq!(config.jobs[0].stage_index, 1);
    }

    #[test]
    fn circular_needs_are_refused_naming_the_cycle() {
        let err = parse(
            "a:\n  needs: [b]\n  script: [x]\nb:\n  needs: [c]\n  script: [x]\nc:\n  needs: [a]\n  script: [x]\n",
        )
        .unwrap_err();

        assert_eq!(
            err.to_string(),
            "line 2: jobs:a:needs: circular dependency detected in needs: a -> b -> c -> a"
        );
    }

    #[test]
    fn an_unsupported_top_level_keyword_is_named() {
        let err = parse("include: other.yml\nb:\n  script: [x]\n").unwrap_err();

        assert_eq!(
            err.to_string(),
            "line 1: include: is not supported by the mock"
        );
    }

    #[test]
    fn locate_key_finds_nested_keys() {
        let text = "stages: [a]\n\nbuild:\n  stage: a\n  script:\n    - make\ntest:\n  script: x\n";
        assert_eq!(locate_key(text, &["build"]), Some(3));
        assert_eq!(locate_key(text, &["build", "script"]), Some(5));
        assert_eq!(locate_key(text, &["test", "script"]), Some(8));
        assert_eq!(locate_key(text, &["test", "stage"]), None);
    }
}
