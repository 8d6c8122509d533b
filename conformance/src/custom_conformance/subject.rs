//! Which custom executor to test: `--custom-executor KEY=VALUE,...` text, or the
//! `[runners.custom]` section of a gitlab-runner `config.toml` (protocol reference §2.1).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::custom_driver::{Executable, Executables};

/// A custom executor as gitlab-runner would call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Its executables.
    pub executables: Executables,
    /// `[[runners]]` `builds_dir`, when configured.
    pub builds_dir: Option<PathBuf>,
    /// `[[runners]]` `cache_dir`, when configured.
    pub cache_dir: Option<PathBuf>,
    /// `graceful_kill_timeout`, when configured.
    pub graceful_kill_timeout: Option<Duration>,
    /// `force_kill_timeout`, when configured.
    pub force_kill_timeout: Option<Duration>,
}

impl Subject {
    /// The subject with each relative program path that has a `/` (`./run.sh`) taken from
    /// `base`; gitlab-runner would take it from the job temp dir, where it cannot be.
    pub fn programs_from(mut self, base: &Path) -> Subject {
        let executables = &mut self.executables;
        for executable in [
            executables.config.as_mut(),
            executables.prepare.as_mut(),
            Some(&mut executables.run),
            executables.cleanup.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            let program = &executable.program;
            if program.is_relative() && program.components().count() > 1 {
                executable.program = base.join(program);
            }
        }
        self
    }
}

/// Why `--custom-executor` text cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    /// A comma-separated part is not `KEY=VALUE`.
    #[error("--custom-executor: {part:?} is not KEY=VALUE (e.g. run_exec=/opt/run.sh)")]
    NotKeyValue {
        /// The part.
        part: String,
    },
    /// A key `[runners.custom]` does not have (or one this tool does not take).
    #[error(
        "--custom-executor: unknown key {key:?}; known: config_exec, prepare_exec, run_exec, cleanup_exec and their *_args"
    )]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A key given twice.
    #[error("--custom-executor: {key} is given twice")]
    Twice {
        /// The key.
        key: String,
    },
    /// An empty path.
    #[error("--custom-executor: {key} is empty")]
    Empty {
        /// The key.
        key: String,
    },
    /// `run_exec` is missing (§2.1: required).
    #[error("--custom-executor: run_exec is required")]
    NoRunExec,
    /// `*_args` without its `*_exec`.
    #[error("--custom-executor: {key} without {exec}")]
    ArgsWithoutExec {
        /// The `*_args` key.
        key: String,
        /// The missing `*_exec` key.
        exec: String,
    },
}

const STAGES: [&str; 4] = ["config", "prepare", "run", "cleanup"];

/// Parses `config_exec=PATH,prepare_exec=PATH,run_exec=PATH,cleanup_exec=PATH` with optional
/// `*_args=WORDS` (words separated by spaces).
pub fn parse_custom_executor(text: &str) -> Result<Subject, SpecError> {
    let mut programs: [Option<PathBuf>; 4] = Default::default();
    let mut args: [Option<Vec<String>>; 4] = Default::default();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(SpecError::NotKeyValue { part: part.into() });
        };
        let key = key.trim();
        let (stage, kind) = key
            .rsplit_once('_')
            .and_then(|(stage, kind)| Some((STAGES.iter().position(|s| *s == stage)?, kind)))
            .filter(|(_, kind)| matches!(*kind, "exec" | "args"))
            .ok_or_else(|| SpecError::UnknownKey { key: key.into() })?;
        let twice = || SpecError::Twice { key: key.into() };
        if kind == "exec" {
            if value.trim().is_empty() {
                return Err(SpecError::Empty { key: key.into() });
            }
            if programs[stage]
                .replace(PathBuf::from(value.trim()))
                .is_some()
            {
                return Err(twice());
            }
        } else if args[stage]
            .replace(value.split_whitespace().map(String::from).collect())
            .is_some()
        {
            return Err(twice());
        }
    }
    let mut executables: [Option<Executable>; 4] = Default::default();
    for (stage, name) in STAGES.iter().enumerate() {
        match (programs[stage].take(), args[stage].take()) {
            (Some(program), args) => {
                executables[stage] = Some(Executable {
                    program,
                    args: args.unwrap_or_default(),
                })
            }
            (None, Some(_)) => {
                return Err(SpecError::ArgsWithoutExec {
                    key: format!("{name}_args"),
                    exec: format!("{name}_exec"),
                });
            }
            (None, None) => {}
        }
    }
    let [config, prepare, run, cleanup] = executables;
    Ok(Subject {
        executables: Executables {
            config,
            prepare,
            run: run.ok_or(SpecError::NoRunExec)?,
            cleanup,
        },
        builds_dir: None,
        cache_dir: None,
        graceful_kill_timeout: None,
        force_kill_timeout: None,
    })
}

/// Why a gitlab-runner `config.toml` cannot be used; each names the file, a line and a key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not TOML, or a key of the wrong type.
    #[error("{}:{line}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// No `[[runners]]` entry matches.
    #[error("{}:{line}: no [[runners]] entry {what} (key runners)", file.display())]
    NoRunner {
        /// The file.
        file: PathBuf,
        /// The line (1-based).
        line: usize,
        /// Which entry was wanted.
        what: String,
    },
    /// Several runners, and no `--runner` to choose one.
    #[error(
        "{}:{line}: {count} [[runners]] entries (key runners): choose one with --runner NAME",
        file.display()
    )]
    Ambiguous {
        /// The file.
        file: PathBuf,
        /// The line of the second entry.
        line: usize,
        /// How many there are.
        count: usize,
    },
    /// The runner has no `[runners.custom]` section.
    #[error(
        "{}:{line}: runner {name:?} has no [runners.custom] section (key runners.custom; executor = {executor:?})",
        file.display()
    )]
    NoCustomSection {
        /// The file.
        file: PathBuf,
        /// The runner's line.
        line: usize,
        /// The runner's name.
        name: String,
        /// Its `executor`.
        executor: String,
    },
    /// `[runners.custom]` without `run_exec`.
    #[error("{}:{line}: [runners.custom] has no run_exec (key runners.custom.run_exec)", file.display())]
    NoRunExec {
        /// The file.
        file: PathBuf,
        /// The section's line.
        line: usize,
    },
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    runners: Vec<Spanned<Runner>>,
}

#[derive(Deserialize)]
struct Runner {
    name: Option<String>,
    executor: Option<String>,
    builds_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    custom: Option<Spanned<Custom>>,
}

#[derive(Deserialize)]
struct Custom {
    config_exec: Option<PathBuf>,
    #[serde(default)]
    config_args: Vec<String>,
    prepare_exec: Option<PathBuf>,
    #[serde(default)]
    prepare_args: Vec<String>,
    run_exec: Option<PathBuf>,
    #[serde(default)]
    run_args: Vec<String>,
    cleanup_exec: Option<PathBuf>,
    #[serde(default)]
    cleanup_args: Vec<String>,
    graceful_kill_timeout: Option<i64>,
    force_kill_timeout: Option<i64>,
}

/// Reads the `[runners.custom]` section of the runner named `runner` in gitlab-runner's
/// `config.toml` at `file` (the only runner when `runner` is `None`).
pub fn load_gitlab_runner_config(
    file: &Path,
    runner: Option<&str>,
) -> Result<Subject, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let line_of = |span: Range<usize>| {
        text.get(..span.start)
            .unwrap_or(&text)
            .matches('\n')
            .count()
            + 1
    };
    let config: ConfigFile = toml::from_str(&text).map_err(|error| {
        let line = error.span().map(line_of).unwrap_or(1);
        // The parser names the value, not its key: the key is what its line starts with.
        let key = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(key, _)| format!(" (key {})", key.trim()))
            .unwrap_or_default();
        ConfigError::Parse {
            file: file.to_path_buf(),
            line,
            message: format!("{}{key}", error.message().trim()),
        }
    })?;
    let chosen = match runner {
        Some(name) => config
            .runners
            .iter()
            .find(|r| r.get_ref().name.as_deref() == Some(name))
            .ok_or_else(|| ConfigError::NoRunner {
                file: file.to_path_buf(),
                line: 1,
                what: format!("named {name:?}"),
            })?,
        None => match config.runners.as_slice() {
            [only] => only,
            [] => {
                return Err(ConfigError::NoRunner {
                    file: file.to_path_buf(),
                    line: 1,
                    what: "at all".into(),
                });
            }
            [_, second, ..] => {
                return Err(ConfigError::Ambiguous {
                    file: file.to_path_buf(),
                    line: line_of(second.span()),
                    count: config.runners.len(),
                });
            }
        },
    };
    let entry = chosen.get_ref();
    let Some(custom) = &entry.custom else {
        return Err(ConfigError::NoCustomSection {
            file: file.to_path_buf(),
            line: line_of(chosen.span()),
            name: entry.name.clone().unwrap_or_default(),
            executor: entry.executor.clone().unwrap_or_default(),
        });
    };
    let section = custom.get_ref();
    let exec = |program: &Option<PathBuf>, args: &[String]| {
        program.as_ref().map(|program| Executable {
            program: program.clone(),
            args: args.to_vec(),
        })
    };
    let run = exec(&section.run_exec, &section.run_args).ok_or_else(|| ConfigError::NoRunExec {
        file: file.to_path_buf(),
        line: line_of(custom.span()),
    })?;
    // §2.1: a timeout of 0 or less means gitlab-runner's default.
    let seconds = |value: Option<i64>| {
        value
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    };
    Ok(Subject {
        executables: Executables {
            config: exec(&section.config_exec, &section.config_args),
            prepare: exec(&section.prepare_exec, &section.prepare_args),
            run,
            cleanup: exec(&section.cleanup_exec, &section.cleanup_args),
        },
        builds_dir: entry.builds_dir.clone(),
        cache_dir: entry.cache_dir.clone(),
        graceful_kill_timeout: seconds(section.graceful_kill_timeout),
        force_kill_timeout: seconds(section.force_kill_timeout),
    })
}
