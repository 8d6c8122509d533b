//! The `.gitlab-ci.yml` GitLab reads, within what a mock and `batchci verify` need.
//!
//! Composition as in GitLab: `include:` (`local:` files or plain paths, read relative to the
//! given file's directory by [`parse_file`]; `project:`, `remote:`, `template:` and
//! `component:` cannot be fetched and are noted in [`CiConfig::notes`], or refused by
//! [`parse`], which has no files), `extends:` (deep merge: mappings merged, anything else
//! replaced), `!reference [job, key]`, hidden jobs (`.name`), YAML anchors and `<<:` merge
//! keys.
//!
//! Jobs: `stages`, `default` (`image`, `services`, `before_script`, `after_script`, `tags`,
//! `timeout`, `id_tokens`, `artifacts`, ...), global and job `variables`, `inherit`,
//! `before_script`, `script`, `after_script`, `tags`, `timeout`, `image`, `services`,
//! `allow_failure`, `when`, `needs`, `dependencies`, `artifacts`, `id_tokens`, `stage`,
//! `parallel` (`N` and `matrix:`, expanded into one job each as GitLab names them).
//! `rules`, `only`, `except`, `workflow` are accepted and not evaluated: a job with them is
//! created as if its rules let it run ([`JobSpec::conditional`]). A `trigger:` job runs on no
//! runner and is left out, noted. Anything else is an error that names the file, the line and
//! the key, the way GitLab's linter names the offending key.

mod compose;

use serde_yaml::{Mapping, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use compose::{Composed, Includes};

/// GitLab's default stages when a file has no `stages:` list.
const DEFAULT_STAGES: [&str; 5] = [".pre", "build", "test", "deploy", ".post"];

/// Job keys the mock accepts and ignores because they do not change what a runner sees, or
/// (`rules`, `only`, `except`) because the mock creates every job as if they let it run.
const IGNORED_JOB_KEYS: [&str; 17] = [
    "cache",
    "retry",
    "interruptible",
    "coverage",
    "environment",
    "resource_group",
    "rules",
    "only",
    "except",
    "release",
    "secrets",
    "hooks",
    "start_in",
    "pages",
    "manual_confirmation",
    "identity",
    "dast_configuration",
];

/// The keys of a job that make whether it is created depend on the pipeline.
const CONDITIONAL_JOB_KEYS: [&str; 3] = ["rules", "only", "except"];

/// Top-level keys that are not jobs.
const GLOBAL_KEYS: [&str; 10] = [
    "stages",
    "variables",
    "default",
    "image",
    "services",
    "before_script",
    "after_script",
    "workflow",
    "cache",
    "include",
];

/// Top-level keywords of GitLab that the mock refuses rather than silently ignores: a file
/// with a `spec:` header is a component with inputs, which the mock does not interpolate.
const UNSUPPORTED_GLOBAL_KEYS: [&str; 1] = ["spec"];

/// GitLab's bounds for `parallel:` (a number, or the jobs a matrix makes).
const MAX_PARALLEL: usize = 200;

/// A key path in GitLab's notation: `jobs:build:script` for a job's keys, `stages` for a
/// top-level keyword's.
fn key_path(path: &[&str]) -> String {
    let first = path.first().copied().unwrap_or_default();
    let top_level = GLOBAL_KEYS.contains(&first) || UNSUPPORTED_GLOBAL_KEYS.contains(&first);
    if top_level {
        path.join(":")
    } else {
        format!("jobs:{}", path.join(":"))
    }
}

/// An error in a `.gitlab-ci.yml`, naming the file (when read from one), the line (1-based,
/// when known) and the key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CiYamlError {
    /// The file the key is in: the one given or one it includes; `None` for text.
    pub file: Option<PathBuf>,
    /// 1-based line of the offending key, when it could be located.
    pub line: Option<usize>,
    /// Key path in GitLab's notation, e.g. `jobs:build:script`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CiYamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
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
    /// Whether it has `rules`, `only` or `except`: whether GitLab creates it depends on the
    /// pipeline, which the mock does not evaluate; it is created as if they let it run.
    pub conditional: bool,
    /// The global variables it gets (`inherit: variables:`): `None` all, else only these.
    pub inherit_variables: Option<Vec<String>>,
    /// For an instance of a `parallel:` job, its `CI_NODE_INDEX` (from 1) and `CI_NODE_TOTAL`,
    /// which GitLab sets as predefined variables.
    pub node: Option<(usize, usize)>,
}

/// A parsed pipeline definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiConfig {
    /// Stages in order.
    pub stages: Vec<String>,
    /// Global `variables:` in file order.
    pub variables: Vec<(String, String)>,
    /// Jobs in file order (hidden jobs, `when: never` and `trigger:` jobs removed; a
    /// `parallel:` job is one job per instance).
    pub jobs: Vec<JobSpec>,
    /// What was read differently from GitLab, one line each: includes that could not be
    /// fetched, `trigger:` jobs left out.
    pub notes: Vec<String>,
}

impl CiConfig {
    /// The variables `job` gets from the file: the global ones it inherits, then its own
    /// (which win, as in GitLab).
    pub fn variables_of<'a>(
        &'a self,
        job: &'a JobSpec,
    ) -> impl Iterator<Item = &'a (String, String)> + 'a {
        self.variables
            .iter()
            .filter(|(name, _)| {
                job.inherit_variables
                    .as_ref()
                    .is_none_or(|only| only.contains(name))
            })
            .chain(&job.variables)
    }
}

/// Parses a `.gitlab-ci.yml` text into a pipeline definition. It has no files to read, so an
/// `include:` is an error.
pub fn parse(text: &str) -> Result<CiConfig, CiYamlError> {
    let composed = compose::compose(text, None, Includes::Refused)?;
    Parser { doc: &composed }.config()
}

/// Parses a `.gitlab-ci.yml` file with the files it includes: `include: local:` paths (and
/// plain ones) are read relative to the file's directory — GitLab reads them from the
/// repository's root, where the file usually is. Errors name the file they are in.
pub fn parse_file(path: &Path) -> Result<CiConfig, CiYamlError> {
    let text = std::fs::read_to_string(path).map_err(|e| CiYamlError {
        file: Some(path.to_path_buf()),
        line: None,
        key: "file".into(),
        message: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let composed = compose::compose(&text, Some(path), Includes::From(dir))?;
    Parser { doc: &composed }.config()
}

struct Parser<'a> {
    doc: &'a Composed,
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
    artifacts: Option<ArtifactsSpec>,
}

/// A `needs:` entry as written, before `parallel:` jobs are expanded.
#[derive(Clone)]
struct RawNeed {
    job: String,
    artifacts: bool,
    /// `optional: true`: a job that does not exist is no error.
    optional: bool,
    /// `parallel: matrix:`: only the instances with one of these variable sets.
    matrix: Option<Vec<Vec<(String, String)>>>,
}

/// One instance of a `parallel:` job.
struct Instance {
    name: String,
    /// The matrix variables it was made with (empty for `parallel: N`).
    matrix: Vec<(String, String)>,
    /// `CI_NODE_INDEX` (from 1) and `CI_NODE_TOTAL`.
    node: (usize, usize),
}

/// `inherit:` of a job: which `default:` keywords and global variables it takes; `None` is
/// all of them.
struct Inherit {
    default: Option<Vec<String>>,
    variables: Option<Vec<String>>,
}

/// What a top-level job key becomes.
enum Parsed {
    /// Runner jobs: one, or one per `parallel:` instance.
    Jobs {
        spec: Box<JobSpec>,
        needs: Option<Vec<RawNeed>>,
        instances: Vec<Instance>,
    },
    /// `when: never`: GitLab never creates it.
    Never,
    /// `trigger:`: a downstream pipeline, run by no runner.
    Trigger,
}

impl Parser<'_> {
    fn err(&self, path: &[&str], message: impl Into<String>) -> CiYamlError {
        self.doc.err(path, message)
    }

    fn config(&self) -> Result<CiConfig, CiYamlError> {
        let map = &self.doc.root;
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

        let mut notes = self.doc.notes.clone();
        let mut jobs = Vec::new();
        let mut raw_needs = Vec::new();
        let mut parallel: HashMap<String, Vec<Instance>> = HashMap::new();
        let mut triggers = Vec::new();
        for (key, value) in map {
            let Some(name) = key.as_str() else {
                return Err(CiYamlError {
                    file: None,
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
            match self.job(name, value, &stages, &defaults)? {
                Parsed::Never => {}
                Parsed::Trigger => {
                    notes.push(format!(
                        "job {name} triggers a downstream pipeline: no runner runs it"
                    ));
                    triggers.push(name.to_string());
                }
                Parsed::Jobs {
                    spec,
                    needs,
                    instances,
                } if instances.is_empty() => {
                    jobs.push(*spec);
                    raw_needs.push((name.to_string(), needs));
                }
                Parsed::Jobs {
                    spec,
                    needs,
                    instances,
                } => {
                    let mut made = Vec::new();
                    for instance in instances {
                        let mut job = (*spec).clone();
                        job.name = instance.name.clone();
                        // Matrix variables win over the job's own of the same name.
                        let extra = &instance.matrix;
                        job.variables
                            .retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
                        job.variables.extend(extra.iter().cloned());
                        job.node = Some(instance.node);
                        jobs.push(job);
                        raw_needs.push((name.to_string(), needs.clone()));
                        made.push(instance);
                    }
                    parallel.insert(name.to_string(), made);
                }
            }
        }
        if jobs.is_empty() {
            return Err(CiYamlError {
                file: self.doc.sources.first().and_then(|s| s.file.clone()),
                line: None,
                key: "jobs".into(),
                message: "the pipeline has no jobs".into(),
            });
        }
        for (job, (base, needs)) in jobs.iter_mut().zip(raw_needs) {
            job.needs = match needs {
                None => None,
                Some(needs) => Some(self.resolve_needs(&base, needs, &parallel, &triggers)?),
            };
            if let Some(dependencies) = job.dependencies.take() {
                job.dependencies = Some(
                    dependencies
                        .into_iter()
                        .filter(|d| !triggers.contains(d))
                        .flat_map(|d| match parallel.get(&d) {
                            Some(instances) => instances.iter().map(|i| i.name.clone()).collect(),
                            None => vec![d],
                        })
                        .collect(),
                );
            }
        }
        self.check_references(&jobs)?;
        Ok(CiConfig {
            stages,
            variables,
            jobs,
            notes,
        })
    }

    /// `needs:` with a `parallel:` job's name replaced by its instances (those of the matrix
    /// named, when one is), as GitLab does; a need of a `trigger:` job is dropped since no
    /// runner job stands for it.
    fn resolve_needs(
        &self,
        base: &str,
        needs: Vec<RawNeed>,
        parallel: &HashMap<String, Vec<Instance>>,
        triggers: &[String],
    ) -> Result<Vec<Need>, CiYamlError> {
        let mut out = Vec::new();
        for need in needs {
            if triggers.contains(&need.job) {
                continue;
            }
            let Some(instances) = parallel.get(&need.job) else {
                let exists = self
                    .doc
                    .root
                    .get(need.job.as_str())
                    .is_some_and(|_| !need.job.starts_with('.'));
                if need.optional && !exists {
                    continue;
                }
                out.push(Need {
                    job: need.job,
                    artifacts: need.artifacts,
                });
                continue;
            };
            let chosen: Vec<&Instance> = instances
                .iter()
                .filter(|i| match &need.matrix {
                    None => true,
                    Some(sets) => sets
                        .iter()
                        .any(|set| set.iter().all(|pair| i.matrix.contains(pair))),
                })
                .collect();
            if chosen.is_empty() {
                return Err(self.err(
                    &[base, "needs"],
                    format!("no instance of {} has the matrix values named", need.job),
                ));
            }
            out.extend(chosen.into_iter().map(|i| Need {
                job: i.name.clone(),
                artifacts: need.artifacts,
            }));
        }
        Ok(out)
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
            "artifacts" => defaults.artifacts = Some(self.artifacts(v, path)?),
            _ => return Err(self.err(path, "unknown key in default")),
        }
        Ok(())
    }

    /// `inherit:`: which `default:` keywords (`default`) and global variables (`variables`)
    /// the job takes; `None` is all of them.
    fn inherit(&self, name: &str, v: Option<&Value>) -> Result<Inherit, CiYamlError> {
        let mut out = Inherit {
            default: None,
            variables: None,
        };
        let Some(v) = v else {
            return Ok(out);
        };
        let Some(map) = v.as_mapping() else {
            return Err(self.err(&[name, "inherit"], "must be a mapping"));
        };
        for (key, value) in map {
            let key = key.as_str().unwrap_or("?");
            let path = [name, "inherit", key];
            let which = match value {
                Value::Bool(true) => None,
                Value::Bool(false) => Some(Vec::new()),
                other => Some(
                    self.string_list(other, &path)
                        .map_err(|_| self.err(&path, "must be a boolean or a list of names"))?,
                ),
            };
            match key {
                "default" => out.default = which,
                "variables" => out.variables = which,
                _ => return Err(self.err(&path, "unknown key")),
            }
        }
        Ok(out)
    }

    fn job(
        &self,
        name: &str,
        value: &Value,
        stages: &[String],
        defaults: &Defaults,
    ) -> Result<Parsed, CiYamlError> {
        let Some(map) = value.as_mapping() else {
            return Err(self.err(&[name], "a job must be a mapping"));
        };
        if map.contains_key("trigger") {
            return Ok(Parsed::Trigger);
        }
        let inherit = self.inherit(name, map.get("inherit"))?;
        let inherits =
            |key: &str| (inherit.default.as_ref()).is_none_or(|only| only.iter().any(|k| k == key));
        let mut job = JobSpec {
            name: name.to_string(),
            stage: "test".into(),
            stage_index: 0,
            variables: Vec::new(),
            before_script: inherited(inherits("before_script"), &defaults.before_script),
            script: Vec::new(),
            after_script: inherited(inherits("after_script"), &defaults.after_script),
            tags: inherited(inherits("tags"), &defaults.tags),
            timeout: defaults.timeout.filter(|_| inherits("timeout")),
            image: defaults.image.clone().filter(|_| inherits("image")),
            services: inherited(inherits("services"), &defaults.services),
            allow_failure: false,
            when: When::OnSuccess,
            needs: None,
            dependencies: None,
            artifacts: defaults.artifacts.clone().filter(|_| inherits("artifacts")),
            id_tokens: inherited(inherits("id_tokens"), &defaults.id_tokens),
            conditional: CONDITIONAL_JOB_KEYS.iter().any(|k| map.contains_key(*k)),
            inherit_variables: inherit.variables.clone(),
            node: None,
        };
        let mut has_script = false;
        let mut never = false;
        let mut needs = None;
        let mut instances = Vec::new();
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
                    // The mock has no clock for `start_in`: a delayed job starts when due.
                    Some("delayed") => job.when = When::OnSuccess,
                    Some("on_failure") => job.when = When::OnFailure,
                    Some("always") => job.when = When::Always,
                    Some("manual") => job.when = When::Manual,
                    Some("never") => never = true,
                    _ => {
                        return Err(self.err(
                            &path,
                            "must be one of on_success, on_failure, always, manual, delayed, never",
                        ));
                    }
                },
                "needs" => needs = Some(self.needs(v, &path)?),
                "dependencies" => job.dependencies = Some(self.string_list(v, &path)?),
                "artifacts" => job.artifacts = Some(self.artifacts(v, &path)?),
                "id_tokens" => job.id_tokens = self.id_tokens(v, &path)?,
                "parallel" => instances = self.parallel(name, v, &path)?,
                "inherit" => {}
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
        if never {
            return Ok(Parsed::Never);
        }
        Ok(Parsed::Jobs {
            spec: Box::new(job),
            needs,
            instances,
        })
    }

    /// `parallel: N` or `parallel: matrix:`, as GitLab names and numbers the instances: each
    /// with its name, its matrix variables and its `CI_NODE_INDEX`/`CI_NODE_TOTAL`.
    fn parallel(&self, name: &str, v: &Value, path: &[&str]) -> Result<Vec<Instance>, CiYamlError> {
        let range = format!("must be a number from 1 to {MAX_PARALLEL} or a mapping with matrix");
        let sets: Vec<Vec<(String, String)>> = match v {
            Value::Number(n) => {
                let count = n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (1..=MAX_PARALLEL).contains(n))
                    .ok_or_else(|| self.err(path, range.clone()))?;
                vec![Vec::new(); count]
            }
            Value::Mapping(m) => {
                let mut p = path.to_vec();
                p.push("matrix");
                let Some(matrix) = m.get("matrix") else {
                    return Err(self.err(path, range));
                };
                if let Some(other) = m.keys().find(|k| k.as_str() != Some("matrix")) {
                    let other = other.as_str().unwrap_or("?");
                    let mut q = path.to_vec();
                    q.push(other);
                    return Err(self.err(&q, "unknown key"));
                }
                self.matrix(matrix, &p)?
            }
            _ => return Err(self.err(path, range)),
        };
        if sets.len() > MAX_PARALLEL {
            return Err(self.err(
                path,
                format!("makes {} jobs; GitLab allows {MAX_PARALLEL}", sets.len()),
            ));
        }
        let total = sets.len();
        let numbered = sets.iter().all(Vec::is_empty);
        Ok(sets
            .into_iter()
            .enumerate()
            .map(|(i, set)| {
                let instance_name = if numbered {
                    format!("{name} {}/{total}", i + 1)
                } else {
                    let values: Vec<&str> = set.iter().map(|(_, v)| v.as_str()).collect();
                    format!("{name}: [{}]", values.join(", "))
                };
                Instance {
                    name: instance_name,
                    matrix: set,
                    node: (i + 1, total),
                }
            })
            .collect())
    }

    /// A `matrix:` list: each entry's variables (a value or a list of values each) make every
    /// combination, the first variable changing slowest, as GitLab orders them.
    fn matrix(&self, v: &Value, path: &[&str]) -> Result<Vec<Vec<(String, String)>>, CiYamlError> {
        let Some(entries) = v.as_sequence() else {
            return Err(self.err(path, "must be a list of mappings of variables to values"));
        };
        let mut sets = Vec::new();
        for entry in entries {
            let Some(entry) = entry.as_mapping() else {
                return Err(self.err(path, "must be a list of mappings of variables to values"));
            };
            let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
            for (key, values) in entry {
                let Some(key) = key.as_str().filter(|k| is_variable_name(k)) else {
                    return Err(self.err(path, "variable names are letters, digits and '_'"));
                };
                let mut p = path.to_vec();
                p.push(key);
                let values = match values {
                    Value::Sequence(items) => items
                        .iter()
                        .map(|item| self.scalar(item, &p))
                        .collect::<Result<Vec<_>, _>>()?,
                    other => vec![self.scalar(other, &p)?],
                };
                if values.is_empty() {
                    return Err(self.err(&p, "must have at least one value"));
                }
                combos = combos
                    .into_iter()
                    .flat_map(|combo| {
                        values.iter().map(move |value| {
                            let mut combo = combo.clone();
                            combo.push((key.to_string(), value.clone()));
                            combo
                        })
                    })
                    .collect();
                if combos.len() > MAX_PARALLEL {
                    return Err(self.err(
                        path,
                        format!(
                            "makes more than {MAX_PARALLEL} jobs; GitLab allows {MAX_PARALLEL}"
                        ),
                    ));
                }
            }
            sets.extend(combos);
        }
        if sets.is_empty() {
            return Err(self.err(path, "must have at least one entry"));
        }
        Ok(sets)
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

    fn needs(&self, v: &Value, path: &[&str]) -> Result<Vec<RawNeed>, CiYamlError> {
        let Some(seq) = v.as_sequence() else {
            return Err(self.err(path, "must be a list"));
        };
        let mut needs = Vec::new();
        for item in seq {
            match item {
                Value::String(s) => needs.push(RawNeed {
                    job: s.clone(),
                    artifacts: true,
                    optional: false,
                    matrix: None,
                }),
                // Artifacts of another project's or pipeline's job: nothing to wait for here.
                Value::Mapping(m) if m.contains_key("project") || m.contains_key("pipeline") => {}
                Value::Mapping(m) => {
                    let job = m
                        .get("job")
                        .and_then(Value::as_str)
                        .ok_or_else(|| self.err(path, "each need names a job"))?;
                    let flag = |key: &str, default: bool| match m.get(key) {
                        None => Ok(default),
                        Some(Value::Bool(b)) => Ok(*b),
                        Some(_) => Err(self.err(path, format!("{key} must be a boolean"))),
                    };
                    let matrix = match m.get("parallel") {
                        None => None,
                        Some(p) => {
                            let mut q = path.to_vec();
                            q.extend(["parallel", "matrix"]);
                            let matrix = p
                                .get("matrix")
                                .ok_or_else(|| self.err(path, "parallel names a matrix"))?;
                            Some(self.matrix(matrix, &q)?)
                        }
                    };
                    needs.push(RawNeed {
                        job: job.to_string(),
                        artifacts: flag("artifacts", true)?,
                        optional: flag("optional", false)?,
                        matrix,
                    });
                }
                _ => return Err(self.err(path, "each need is a job name or {job: NAME}")),
            }
        }
        Ok(needs)
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

/// A `default:` value when the job inherits it, else nothing.
fn inherited<T: Clone>(inherits: bool, value: &[T]) -> Vec<T> {
    if inherits { value.to_vec() } else { Vec::new() }
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

    /// Each text is refused with exactly its message.
    fn assert_refused(cases: &[(&str, &str)]) {
        for (yaml, expected) in cases {
            assert_eq!(parse(yaml).unwrap_err().to_string(), *expected, "{yaml}");
        }
    }

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
    fn a_list_of_merge_keys_takes_the_first_anchor_that_has_a_key() {
        let config = parse(
            ".a: &a\n  tags: [a]\n  script: [from-a]\n.b: &b\n  tags: [b]\n  timeout: 1h\n\
             build:\n  <<: [*a, *b]\n  variables: {N: 4}\n",
        )
        .unwrap();

        let build = &config.jobs[0];
        assert_eq!(
            (
                build.tags.as_slice(),
                build.script.as_slice(),
                build.timeout
            ),
            (
                &["a".to_string()][..],
                &["from-a".to_string()][..],
                Some(3600)
            )
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
        assert_refused(&cases);
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
        let err = parse("spec:\n  inputs: {}\nb:\n  script: [x]\n").unwrap_err();

        assert_eq!(
            err.to_string(),
            "line 1: spec: is not supported by the mock"
        );
    }

    #[test]
    fn text_without_a_file_refuses_every_include_naming_it() {
        let cases = [
            (
                "include: other.yml\nb:\n  script: [x]\n",
                "line 1: include: local: other.yml cannot be read by the mock (it has no files)",
            ),
            (
                "include:\n  - template: Security/SAST.gitlab-ci.yml\nb:\n  script: [x]\n",
                "line 1: include: template: Security/SAST.gitlab-ci.yml cannot be read by the mock",
            ),
            (
                "include: https://example.com/ci.yml\nb:\n  script: [x]\n",
                "line 1: include: remote: https://example.com/ci.yml cannot be read by the mock",
            ),
            (
                "include:\n  project: group/ci\n  file: [a.yml, b.yml]\nb:\n  script: [x]\n",
                "line 1: include: project: group/ci, file: a.yml, b.yml cannot be read by the mock",
            ),
            (
                "include:\n  - nothing: x\nb:\n  script: [x]\n",
                "line 1: include: each entry is a path or a mapping with local, project, remote, template or component",
            ),
        ];
        assert_refused(&cases);
    }

    /// The files of `files` written into a new directory; the first is the pipeline.
    fn pipeline_files(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let main = dir.path().join(files[0].0);
        (dir, main)
    }

    #[test]
    fn extends_deep_merges_hashes_and_replaces_everything_else() {
        let config = parse(
            ".base:\n  tags: [slurm]\n  variables: {A: base, B: base}\n  script: [base]\n\
             .gpu:\n  extends: .base\n  variables: {B: gpu, C: gpu}\n  tags: [slurm, gpu]\n\
             .other:\n  before_script: [other]\n  variables: {D: other}\n\
             train:\n  extends: [.gpu, .other]\n  variables: {C: own}\n  script: [train]\n",
        )
        .unwrap();

        let train = &config.jobs[0];
        assert_eq!(config.jobs.len(), 1);
        assert_eq!(train.tags, ["slurm", "gpu"]);
        assert_eq!(train.script, ["train"]);
        assert_eq!(train.before_script, ["other"]);
        let vars: Vec<(&str, &str)> = train
            .variables
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            vars,
            [("A", "base"), ("B", "gpu"), ("C", "own"), ("D", "other")]
        );
    }

    #[test]
    fn extends_errors_name_the_job_its_line_and_the_chain() {
        let cases = [
            (
                "a:\n  extends: .missing\n  script: [x]\n",
                "line 2: jobs:a:extends: unknown keys in `extends` (.missing)",
            ),
            (
                "a:\n  extends: .x\n  script: [x]\n.x:\n  extends: .y\n.y:\n  extends: .x\n",
                "line 5: jobs:.x:extends: circular dependency detected in `extends`: .x -> .y -> .x",
            ),
            (
                "a:\n  extends: {b: 1}\n  script: [x]\n",
                "line 2: jobs:a:extends: must be a string or a list of strings",
            ),
        ];
        assert_refused(&cases);
        let deep: String = (0..13)
            .map(|i| format!(".t{i}:\n  extends: .t{}\n", i + 1))
            .collect::<String>()
            + ".t13:\n  script: [x]\na:\n  extends: .t0\n";
        assert_eq!(
            parse(&deep).unwrap_err().to_string(),
            "line 24: jobs:.t11:extends: nesting too deep in `extends`"
        );
    }

    #[test]
    fn an_error_in_an_inherited_key_names_the_template_line() {
        let err =
            parse(".base:\n  timeout: soon\n  script: [x]\na:\n  extends: .base\n").unwrap_err();

        assert_eq!(
            err.to_string(),
            "line 2: jobs:a:timeout: invalid duration \"soon\" (examples: 3600, 90m, 1h 30m, 2 hours)"
        );
    }

    #[test]
    fn references_take_a_key_of_another_job() {
        let config = parse(
            ".setup:\n  script: [module load gcc, module load mpi]\n\
             a:\n  script:\n    - !reference [.setup, script]\n    - make\n",
        )
        .unwrap();
        assert_eq!(
            config.jobs[0].script,
            ["module load gcc", "module load mpi", "make"]
        );

        let err = parse("a:\n  script:\n    - !reference [.setup, script]\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: jobs:a: !reference [.setup, script]: .setup is not defined"
        );
    }

    #[test]
    fn parallel_numbers_and_matrices_make_one_job_each_as_gitlab_names_them() {
        let config = parse(
            "stages: [build, test]\n\
             build:\n  stage: build\n  parallel: 3\n  script: [make]\n\
             test:\n  stage: test\n  variables: {MPI: none}\n  parallel:\n    matrix:\n\
             \x20     - COMPILER: [gcc, clang]\n        MPI: [openmpi, mpich]\n\
             \x20     - COMPILER: intel\n  needs: [build]\n  script: [make check]\n\
             report:\n  stage: test\n  needs:\n    - job: test\n      parallel:\n        matrix:\n\
             \x20         - COMPILER: gcc\n  script: [x]\n",
        )
        .unwrap();

        let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "build 1/3",
                "build 2/3",
                "build 3/3",
                "test: [gcc, openmpi]",
                "test: [gcc, mpich]",
                "test: [clang, openmpi]",
                "test: [clang, mpich]",
                "test: [intel]",
                "report",
            ]
        );
        let vars = |i: usize| -> Vec<String> {
            config.jobs[i]
                .variables
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        };
        // Node numbers are GitLab's predefined variables, not the job's own.
        assert_eq!((vars(1), config.jobs[1].node), (vec![], Some((2, 3))));
        assert_eq!(
            (vars(4), config.jobs[4].node),
            (
                vec!["COMPILER=gcc".to_string(), "MPI=mpich".into()],
                Some((2, 5))
            )
        );
        assert_eq!(
            (vars(7), config.jobs[7].node),
            (
                vec!["MPI=none".to_string(), "COMPILER=intel".into()],
                Some((5, 5))
            )
        );
        assert_eq!(config.jobs[8].node, None);
        let needs = |i: usize| -> Vec<String> {
            config.jobs[i]
                .needs
                .iter()
                .flatten()
                .map(|n| n.job.clone())
                .collect()
        };
        assert_eq!(needs(3), ["build 1/3", "build 2/3", "build 3/3"]);
        assert_eq!(needs(8), ["test: [gcc, openmpi]", "test: [gcc, mpich]"]);
    }

    #[test]
    fn parallel_out_of_bounds_is_refused_naming_the_line() {
        let cases = [
            (
                "a:\n  script: [x]\n  parallel: 0\n",
                "line 3: jobs:a:parallel: must be a number from 1 to 200 or a mapping with matrix",
            ),
            (
                "a:\n  script: [x]\n  parallel: 201\n",
                "line 3: jobs:a:parallel: must be a number from 1 to 200 or a mapping with matrix",
            ),
            (
                "a:\n  script: [x]\n  parallel:\n    matrix:\n      - A: []\n",
                "line 5: jobs:a:parallel:matrix:A: must have at least one value",
            ),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn rules_only_except_are_accepted_and_mark_the_job_conditional() {
        let config = parse(
            "a:\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n  script: [x]\n\
             b:\n  only: [main]\n  except: [tags]\n  script: [x]\n\
             c:\n  retry: 2\n  interruptible: true\n  environment: production\n  release: {tag_name: v1}\n  script: [x]\n\
             d:\n  trigger: group/downstream\n\
             e:\n  when: delayed\n  start_in: 5 minutes\n  needs: [d]\n  script: [x]\n",
        )
        .unwrap();

        let conditional: Vec<(&str, bool)> = config
            .jobs
            .iter()
            .map(|j| (j.name.as_str(), j.conditional))
            .collect();
        assert_eq!(
            conditional,
            [("a", true), ("b", true), ("c", false), ("e", false)]
        );
        assert_eq!(config.jobs[3].needs, Some(vec![]));
        assert_eq!(
            config.notes,
            ["job d triggers a downstream pipeline: no runner runs it"]
        );
    }

    #[test]
    fn inherit_limits_what_default_and_global_variables_give() {
        let config = parse(
            "variables: {A: \"1\", B: \"2\"}\n\
             default:\n  image: alpine\n  tags: [hpc]\n  before_script: [setup]\n\
             a:\n  inherit:\n    default: [tags]\n    variables: [B]\n  script: [x]\n\
             b:\n  inherit: {default: false, variables: false}\n  script: [x]\n",
        )
        .unwrap();

        let (a, b) = (&config.jobs[0], &config.jobs[1]);
        assert_eq!(
            (a.tags.as_slice(), a.image.is_none()),
            (&["hpc".to_string()][..], true)
        );
        assert!(a.before_script.is_empty());
        let vars: Vec<&str> = config.variables_of(a).map(|(k, _)| k.as_str()).collect();
        assert_eq!(vars, ["B"]);
        assert!(b.tags.is_empty() && b.image.is_none());
        assert_eq!(config.variables_of(b).count(), 0);
    }

    #[test]
    fn includes_are_read_beside_the_file_merged_under_it_and_errors_name_their_file() {
        let (dir, main) = pipeline_files(&[
            (
                ".gitlab-ci.yml",
                "include:\n  - local: /ci/templates.yml\n  - ci/jobs.yml\n  - template: Jobs/SAST.gitlab-ci.yml\n\
                 variables: {WHO: main}\nbuild:\n  extends: .slurm\n  script: [make]\nlint:\n  script: [lint]\n",
            ),
            (
                "ci/templates.yml",
                "variables: {WHO: templates, SITE: x}\n.slurm:\n  tags: [slurm]\n  variables: {SCHEDULER_PARAMETERS: -p short}\n",
            ),
            (
                "ci/jobs.yml",
                "include:\n  - local: ci/docs.yml\n    rules:\n      - if: $DOCS\n\
                 test:\n  extends: .slurm\n  script: [make check]\n",
            ),
            // Nested includes are read from the root too, as GitLab does; their rules are
            // not evaluated.
            ("ci/docs.yml", "docs:\n  script: [make docs]\n"),
        ]);

        let config = parse_file(&main).unwrap();

        let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
        // Included jobs first, then the file's own, each in file order.
        assert_eq!(names, ["docs", "test", "build", "lint"]);
        assert_eq!(config.jobs[1].tags, ["slurm"]);
        assert_eq!(
            config.variables,
            [
                ("WHO".to_string(), "main".to_string()),
                ("SITE".to_string(), "x".to_string())
            ]
        );
        assert_eq!(
            config.notes,
            [
                "include template: Jobs/SAST.gitlab-ci.yml was not read (only local files are): its jobs are not checked"
            ]
        );

        std::fs::write(
            dir.path().join("ci/jobs.yml"),
            "test:\n  extends: .slurm\n  script: [make check]\n  timeout: soon\n",
        )
        .unwrap();
        assert_eq!(
            parse_file(&main).unwrap_err().to_string(),
            format!(
                "{}: line 4: jobs:test:timeout: invalid duration \"soon\" (examples: 3600, 90m, 1h 30m, 2 hours)",
                dir.path().join("ci/jobs.yml").display()
            )
        );
    }

    #[test]
    fn a_missing_or_circular_include_is_refused_naming_it() {
        let (dir, main) = pipeline_files(&[
            ("ci.yml", "include: a.yml\nb:\n  script: [x]\n"),
            ("a.yml", "include: ci.yml\n"),
        ]);
        assert_eq!(
            parse_file(&main).unwrap_err().to_string(),
            format!(
                "{}: line 1: include: local: ci.yml includes itself",
                dir.path().join("a.yml").display()
            )
        );

        std::fs::write(&main, "include: gone.yml\nb:\n  script: [x]\n").unwrap();
        let message = parse_file(&main).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "{}: line 1: include: local: gone.yml: cannot read {}: ",
                main.display(),
                dir.path().join("gone.yml").display()
            )),
            "{message}"
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
