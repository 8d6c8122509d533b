//! What GitLab does to a `.gitlab-ci.yml` before it reads jobs from it: the `include:` files
//! merged in, `extends:` resolved, `!reference [job, key]` tags replaced — in GitLab's order
//! (includes, then extends, then references).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::{CiYamlError, GLOBAL_KEYS, key_path, locate_key};

/// GitLab refuses deeper `include:` chains ("Maximum of 100 nested includes are allowed").
const MAX_INCLUDE_DEPTH: usize = 100;
/// GitLab refuses longer `extends:` chains ("nesting too deep in `extends`").
const MAX_EXTENDS_DEPTH: usize = 11;
/// GitLab refuses deeper `!reference` chains.
const MAX_REFERENCE_DEPTH: usize = 10;

/// One file of the pipeline: the one given, or one it includes.
pub(super) struct Source {
    /// Its path; `None` for text given without a file.
    pub file: Option<PathBuf>,
    /// Its text, to find the line of a key.
    pub text: String,
}

/// Where `include: local:` files are read from.
pub(super) enum Includes<'a> {
    /// Nowhere: every `include:` is an error (the mock server has only the text).
    Refused,
    /// Relative to this directory; the files of `project:`, `remote:`, `template:` and
    /// `component:` cannot be fetched and are only noted.
    From(&'a Path),
}

/// The pipeline as one mapping, and where each of its top-level keys came from.
pub(super) struct Composed {
    /// Every file merged, `extends:` and `!reference` resolved.
    pub root: Mapping,
    /// The files read; index 0 is the one given.
    pub sources: Vec<Source>,
    /// Top-level key → index in `sources` of the file whose definition won.
    pub origin: HashMap<String, usize>,
    /// Job → the templates it extends, nearest first, for errors in keys it inherited.
    pub ancestry: HashMap<String, Vec<String>>,
    /// What could not be read, one line each.
    pub notes: Vec<String>,
}

impl Composed {
    /// An error at `path` (first element: the top-level key) in the file that defined it.
    pub(super) fn err(&self, path: &[&str], message: impl Into<String>) -> CiYamlError {
        let first = path.first().copied().unwrap_or_default();
        // A key a job inherited is found in the template that has it.
        let candidates = std::iter::once(first).chain(
            self.ancestry
                .get(first)
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        let mut found = None;
        for owner in candidates {
            let index = self.origin.get(owner).copied().unwrap_or(0);
            let mut owned_path = path.to_vec();
            if let Some(head) = owned_path.first_mut() {
                *head = owner;
            }
            if let Some(source) = self.sources.get(index)
                && let Some(line) = locate_key(&source.text, &owned_path)
            {
                found = Some((index, Some(line)));
                break;
            }
        }
        let (index, line) =
            found.unwrap_or_else(|| (self.origin.get(first).copied().unwrap_or(0), None));
        CiYamlError {
            file: self.sources.get(index).and_then(|s| s.file.clone()),
            line,
            key: key_path(path),
            message: message.into(),
        }
    }
}

/// Reads `text` (the file `file`, when it is one) and everything it includes.
pub(super) fn compose(
    text: &str,
    file: Option<&Path>,
    includes: Includes<'_>,
) -> Result<Composed, CiYamlError> {
    let mut composer = Composer {
        includes,
        sources: Vec::new(),
        origin: HashMap::new(),
        notes: Vec::new(),
    };
    // The files being read, outermost first: one of them included again is a cycle.
    let mut chain: Vec<PathBuf> = file
        .map(|f| f.canonicalize().unwrap_or_else(|_| f.to_path_buf()))
        .into_iter()
        .collect();
    let root = composer.file(text.to_string(), file.map(Path::to_path_buf), &mut chain)?;
    let mut composed = Composed {
        root,
        sources: composer.sources,
        origin: composer.origin,
        ancestry: HashMap::new(),
        notes: composer.notes,
    };
    resolve_extends(&mut composed)?;
    resolve_references(&mut composed)?;
    Ok(composed)
}

struct Composer<'a> {
    includes: Includes<'a>,
    sources: Vec<Source>,
    origin: HashMap<String, usize>,
    notes: Vec<String>,
}

/// One `include:` entry.
enum Entry {
    /// `local:` or a plain path.
    Local(String),
    /// `project:`, `remote:`, `template:` or `component:`, as written.
    Elsewhere(String),
}

impl Composer<'_> {
    fn err(&self, index: usize, path: &[&str], message: impl Into<String>) -> CiYamlError {
        let source = self.sources.get(index);
        CiYamlError {
            file: source.and_then(|s| s.file.clone()),
            line: source.and_then(|s| locate_key(&s.text, path)),
            key: key_path(path),
            message: message.into(),
        }
    }

    /// The file's mapping with its includes merged under it; `chain` holds the files that
    /// include it, to refuse a file that includes itself.
    fn file(
        &mut self,
        text: String,
        file: Option<PathBuf>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Mapping, CiYamlError> {
        let mut value: Value = serde_yaml::from_str(&text).map_err(|e| CiYamlError {
            file: file.clone(),
            line: e.location().map(|l| l.line()),
            key: "yaml".into(),
            message: e.to_string(),
        })?;
        // Anchors and `<<:` belong to one file in GitLab too.
        value.apply_merge().map_err(|e| CiYamlError {
            file: file.clone(),
            line: e.location().map(|l| l.line()),
            key: "yaml".into(),
            message: e.to_string(),
        })?;
        let index = self.sources.len();
        self.sources.push(Source {
            file: file.clone(),
            text,
        });
        let mut own = match value {
            Value::Mapping(map) => map,
            // An empty included file adds nothing, as in GitLab.
            Value::Null if index > 0 => Mapping::new(),
            _ => {
                return Err(CiYamlError {
                    file,
                    line: Some(1),
                    key: "root".into(),
                    message: "the file must be a mapping of keywords and jobs".into(),
                });
            }
        };
        let mut merged = Mapping::new();
        if let Some(include) = own.shift_remove("include") {
            let entries = entries(&include).map_err(|m| self.err(index, &["include"], m))?;
            for entry in entries {
                match entry {
                    Entry::Local(path) => {
                        let included = self.local(index, &path, chain)?;
                        deep_merge(&mut merged, included);
                    }
                    Entry::Elsewhere(what) => match self.includes {
                        Includes::Refused => {
                            return Err(self.err(
                                index,
                                &["include"],
                                format!("{what} cannot be read by the mock"),
                            ));
                        }
                        Includes::From(_) => self.notes.push(format!(
                            "include {what} was not read (only local files are): its jobs are not checked"
                        )),
                    },
                }
            }
        }
        for key in own.keys() {
            if let Some(key) = key.as_str() {
                self.origin.insert(key.to_string(), index);
            }
        }
        deep_merge(&mut merged, own);
        Ok(merged)
    }

    /// An `include: local:` file, read relative to the given file's directory.
    fn local(
        &mut self,
        index: usize,
        path: &str,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Mapping, CiYamlError> {
        let Includes::From(dir) = self.includes else {
            return Err(self.err(
                index,
                &["include"],
                format!("local: {path} cannot be read by the mock (it has no files)"),
            ));
        };
        if path.contains('*') {
            return Err(self.err(
                index,
                &["include"],
                format!("local: {path}: wildcard includes are not read; name each file"),
            ));
        }
        // GitLab reads `/ci/a.yml` and `ci/a.yml` alike from the repository's root.
        let full = dir.join(path.trim_start_matches('/'));
        let text = std::fs::read_to_string(&full).map_err(|e| {
            self.err(
                index,
                &["include"],
                format!("local: {path}: cannot read {}: {e}", full.display()),
            )
        })?;
        let canonical = full.canonicalize().unwrap_or_else(|_| full.clone());
        if chain.contains(&canonical) {
            return Err(self.err(
                index,
                &["include"],
                format!("local: {path} includes itself"),
            ));
        }
        if chain.len() > MAX_INCLUDE_DEPTH {
            return Err(self.err(
                index,
                &["include"],
                format!("local: {path}: more than {MAX_INCLUDE_DEPTH} nested includes"),
            ));
        }
        chain.push(canonical);
        let included = self.file(text, Some(full), chain);
        chain.pop();
        included
    }
}

/// The entries of an `include:` value: a path, a mapping, or a list of either.
fn entries(value: &Value) -> Result<Vec<Entry>, String> {
    let items: Vec<&Value> = match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    };
    items.into_iter().map(entry).collect()
}

fn entry(value: &Value) -> Result<Entry, String> {
    const SHAPE: &str =
        "each entry is a path or a mapping with local, project, remote, template or component";
    match value {
        Value::String(s) if s.starts_with("https://") || s.starts_with("http://") => {
            Ok(Entry::Elsewhere(format!("remote: {s}")))
        }
        Value::String(s) => Ok(Entry::Local(s.clone())),
        Value::Mapping(map) => {
            let text = |key: &str| map.get(key).map(scalar_text);
            if let Some(local) = map.get("local") {
                return local
                    .as_str()
                    .map(|s| Entry::Local(s.to_string()))
                    .ok_or_else(|| "local must be a path".to_string());
            }
            if let Some(project) = text("project") {
                let file = match map.get("file") {
                    Some(Value::Sequence(files)) => {
                        files.iter().map(scalar_text).collect::<Vec<_>>().join(", ")
                    }
                    Some(file) => scalar_text(file),
                    None => return Err(format!("project: {project} needs a file")),
                };
                return Ok(Entry::Elsewhere(format!(
                    "project: {project}, file: {file}"
                )));
            }
            for key in ["remote", "template", "component"] {
                if let Some(what) = text(key) {
                    return Ok(Entry::Elsewhere(format!("{key}: {what}")));
                }
            }
            Err(SHAPE.into())
        }
        _ => Err(SHAPE.into()),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// GitLab's deep merge: mappings are merged key by key, anything else in `over` replaces.
pub(super) fn deep_merge(base: &mut Mapping, over: Mapping) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(inner)), Value::Mapping(value)) => deep_merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Replaces each job's `extends:` by the templates it names, merged under its own keys.
fn resolve_extends(composed: &mut Composed) -> Result<(), CiYamlError> {
    let names: Vec<String> = composed
        .root
        .iter()
        .filter(|(_, v)| v.as_mapping().is_some_and(|m| m.contains_key("extends")))
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .filter(|name| !GLOBAL_KEYS.contains(&name.as_str()))
        .collect();
    let mut resolved: HashMap<String, Mapping> = HashMap::new();
    for name in &names {
        extend(composed, name, &mut Vec::new(), &mut resolved)?;
    }
    for (name, map) in resolved {
        composed
            .root
            .insert(Value::String(name), Value::Mapping(map));
    }
    Ok(())
}

/// The job `name` with its `extends:` resolved; `chain` holds the jobs extending it.
fn extend(
    composed: &mut Composed,
    name: &str,
    chain: &mut Vec<String>,
    resolved: &mut HashMap<String, Mapping>,
) -> Result<Mapping, CiYamlError> {
    if let Some(done) = resolved.get(name) {
        return Ok(done.clone());
    }
    let Some(Value::Mapping(own)) = composed.root.get(name).cloned() else {
        // Not reached: the names come from mappings of the root, and bases are checked to be
        // mappings before they are extended.
        return Ok(Mapping::new());
    };
    let mut own = own;
    let Some(extends) = own.shift_remove("extends") else {
        return Ok(own);
    };
    let path = [name, "extends"];
    let bases: Vec<String> = match &extends {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| composed.err(&path, "must be a string or a list of strings"))?,
        _ => return Err(composed.err(&path, "must be a string or a list of strings")),
    };
    if let Some(start) = chain.iter().position(|c| c == name) {
        // The cycle alone, from the job it comes back to, not the jobs that lead into it.
        let mut cycle = chain[start..].to_vec();
        cycle.push(name.to_string());
        return Err(composed.err(
            &path,
            format!(
                "circular dependency detected in `extends`: {}",
                cycle.join(" -> ")
            ),
        ));
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        return Err(composed.err(&path, "nesting too deep in `extends`"));
    }
    let missing: Vec<&str> = bases
        .iter()
        .filter(|b| !composed.root.get(b.as_str()).is_some_and(Value::is_mapping))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let unread = if composed.notes.is_empty() {
            String::new()
        } else {
            " (an include that was not read may define them)".to_string()
        };
        return Err(composed.err(
            &path,
            format!("unknown keys in `extends` ({}){unread}", missing.join(", ")),
        ));
    }
    chain.push(name.to_string());
    let mut merged = Mapping::new();
    let mut ancestry = Vec::new();
    for base in bases.iter() {
        let base_map = extend(composed, base, chain, resolved)?;
        deep_merge(&mut merged, base_map);
        ancestry.push(base.clone());
        ancestry.extend(composed.ancestry.get(base).cloned().unwrap_or_default());
    }
    chain.pop();
    deep_merge(&mut merged, own);
    // The nearest template first: the last one named wins a key.
    ancestry.reverse();
    composed.ancestry.insert(name.to_string(), ancestry);
    resolved.insert(name.to_string(), merged.clone());
    Ok(merged)
}

/// Replaces every `!reference [job, key, ...]` by the value it names.
fn resolve_references(composed: &mut Composed) -> Result<(), CiYamlError> {
    let snapshot = Value::Mapping(composed.root.clone());
    let keys: Vec<Value> = composed.root.keys().cloned().collect();
    for key in keys {
        let name = key.as_str().unwrap_or("?").to_string();
        if let Some(value) = composed.root.get_mut(&key) {
            replace_references(value, &snapshot, 0).map_err(|m| composed.err(&[&name], m))?;
        }
    }
    Ok(())
}

fn replace_references(value: &mut Value, root: &Value, depth: usize) -> Result<(), String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "reference" => {
            let Some(keys) = tagged
                .value
                .as_sequence()
                .and_then(|s| s.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            else {
                return Err(
                    "!reference takes a list of keys, e.g. !reference [.setup, script]".into(),
                );
            };
            if depth >= MAX_REFERENCE_DEPTH {
                return Err(format!(
                    "!reference [{}]: more than {MAX_REFERENCE_DEPTH} nested references",
                    keys.join(", ")
                ));
            }
            let mut target = root;
            for key in &keys {
                target = target.get(key).ok_or_else(|| {
                    format!("!reference [{}]: {key} is not defined", keys.join(", "))
                })?;
            }
            let mut replacement = target.clone();
            replace_references(&mut replacement, root, depth + 1)?;
            *value = replacement;
            Ok(())
        }
        Value::Tagged(tagged) => replace_references(&mut tagged.value, root, depth),
        Value::Sequence(items) => items
            .iter_mut()
            .try_for_each(|item| replace_references(item, root, depth)),
        Value::Mapping(map) => map
            .values_mut()
            .try_for_each(|item| replace_references(item, root, depth)),
        _ => Ok(()),
    }
}
