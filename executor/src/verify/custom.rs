//! Sites whose CI goes through gitlab-runner's custom executor: a gitlab-runner `config.toml`
//! whose runners have `executor = "custom"`, or a Jacamar-style file of batchci's custom mode
//! (`[general]`). verify puts each such executor through the custom-executor scenarios
//! (`conformance::custom_conformance`, what `custom-executor-conformance` runs), calling it as
//! gitlab-runner does, with the site's cluster simulated and its fakes first on `PATH`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use conformance::custom_conformance::{
    Options, Report as ScenarioReport, SCENARIOS, Subject, load_gitlab_runner_config,
};
use conformance::custom_driver::{Executable, Executables};

use super::report::{Check, Verdict};
use super::{UsageError, VerifyOptions};

/// A custom executor of the site: its name in the report and how gitlab-runner calls it.
pub(crate) struct CustomSite {
    /// `runner NAME` of a gitlab-runner config, or the file's name for a Jacamar-style file.
    pub name: String,
    /// The executor.
    pub subject: Subject,
}

/// A custom-executor site: its executors and the notes on what verify changed or left out.
pub(crate) type CustomSites = (Vec<CustomSite>, Vec<String>);

/// What the file at `path` holds when it is not batchci's runner configuration: its custom
/// executors, and notes on what verify changed or left out. `None`: a batchci configuration,
/// or a file that does not parse (the normal loader says where).
pub(crate) fn custom_sites(
    path: &Path,
    exe: &Path,
    root: &Path,
) -> Result<Option<CustomSites>, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    let Ok(table) = toml::from_str::<toml::Table>(&text) else {
        return Ok(None);
    };
    if table.contains_key("general") {
        return jacamar_site(path, &table, exe, root).map(Some);
    }
    let runners = table
        .get("runners")
        .and_then(toml::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let executor_of = |runner: &toml::Value| {
        runner
            .get("executor")
            .and_then(toml::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name_of = |runner: &toml::Value| {
        runner
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    if !runners.iter().any(|r| executor_of(r) == "custom") {
        return Ok(None);
    }
    let mut sites = Vec::new();
    let mut notes = Vec::new();
    for runner in runners {
        let name = name_of(runner);
        if executor_of(runner) != "custom" {
            notes.push(format!(
                "runner {name}: gitlab-runner's own {} executor, not checked",
                executor_of(runner)
            ));
            continue;
        }
        let subject =
            load_gitlab_runner_config(path, Some(&name)).map_err(|e| UsageError(e.to_string()))?;
        missing_programs(path, &name, &subject.executables)?;
        sites.push(CustomSite {
            name: format!("runner {name}"),
            subject,
        });
    }
    notes.push(
        "custom executors run with the simulated cluster's commands first on PATH; one that names its scheduler commands by absolute path reaches none".into(),
    );
    Ok(Some((sites, notes)))
}

/// A stage program that is not here fails every scenario the same way: said once instead.
fn missing_programs(
    path: &Path,
    runner: &str,
    executables: &Executables,
) -> Result<(), UsageError> {
    let stages = [
        ("config_exec", executables.config.as_ref()),
        ("prepare_exec", executables.prepare.as_ref()),
        ("run_exec", Some(&executables.run)),
        ("cleanup_exec", executables.cleanup.as_ref()),
    ];
    for (key, executable) in stages {
        let Some(executable) = executable else {
            continue;
        };
        let program = &executable.program;
        // A bare name is looked up on PATH when the stage runs, as gitlab-runner does.
        if program.components().count() > 1 && !program.is_file() {
            return Err(UsageError(format!(
                "{}: runner {runner}: {key} {} does not exist here; install the executor on this machine, or give a copy of the file whose paths point at it",
                path.display(),
                program.display()
            )));
        }
    }
    Ok(())
}

/// batchci's custom mode with the site's Jacamar-style file, rewritten where it must run here:
/// `data_dir` and `state_dir` under verify's directory, no `scheduler_bin` (the fakes on PATH).
fn jacamar_site(
    path: &Path,
    table: &toml::Table,
    exe: &Path,
    root: &Path,
) -> Result<CustomSites, UsageError> {
    // The loader custom mode uses: its errors name the file, the line and the key.
    let settings =
        crate::custom::CustomSettings::load(path).map_err(|e| UsageError(e.to_string()))?;
    if settings.runner.auth.enabled() {
        return Err(UsageError(format!(
            "{}: [auth]: in custom mode every stage checks the job's ID token against the GitLab that gitlab-runner names, which verify's custom-executor driver does not stand in for; verify the same [auth] settings as [runners.auth] of a batchci runner configuration",
            path.display()
        )));
    }
    let mut table = table.clone();
    let mut notes = Vec::new();
    let here = root.join("custom");
    if let Some(general) = table.get_mut("general").and_then(toml::Value::as_table_mut) {
        for (key, dir) in [("data_dir", "data"), ("state_dir", "state")] {
            let configured = general
                .get(key)
                .and_then(toml::Value::as_str)
                .map(PathBuf::from);
            let used = here.join(dir);
            if let Some(configured) = configured {
                notes.push(format!(
                    "{key} {} is not used here; {} is",
                    configured.display(),
                    used.display()
                ));
            }
            general.insert(key.into(), toml::Value::String(used.display().to_string()));
        }
    }
    let batch = table
        .entry("batch")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(batch) = batch.as_table_mut() {
        if batch.remove("scheduler_bin").is_some() {
            notes.push(
                "batch.scheduler_bin: the simulated cluster's commands on PATH instead".into(),
            );
        }
        // The scenarios name the cluster (and, for a system failure, none) through these.
        let env_vars = batch
            .entry("env_vars")
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        if let Some(env_vars) = env_vars.as_array_mut() {
            for name in ["MOCK_CLUSTER_STATE_DIR", "MOCK_CLUSTER_NO_AUTOSTART"] {
                env_vars.push(toml::Value::String(name.into()));
            }
        }
    }
    std::fs::create_dir_all(&here)
        .map_err(|e| UsageError(format!("cannot create {}: {e}", here.display())))?;
    let rewritten = here.join("custom.toml");
    let text = toml::to_string(&table)
        .map_err(|e| UsageError(format!("cannot write the rewritten file: {e}")))?;
    std::fs::write(&rewritten, text)
        .map_err(|e| UsageError(format!("cannot write {}: {e}", rewritten.display())))?;
    crate::custom::CustomSettings::load(&rewritten).map_err(|e| UsageError(e.to_string()))?;
    let stage = |name: &str| Executable {
        program: exe.to_path_buf(),
        args: vec![
            "custom".into(),
            name.into(),
            "--config".into(),
            rewritten.display().to_string(),
        ],
    };
    let subject = Subject {
        executables: Executables {
            config: Some(stage("config")),
            prepare: Some(stage("prepare")),
            run: stage("run"),
            cleanup: Some(stage("cleanup")),
        },
        builds_dir: None,
        cache_dir: None,
        graceful_kill_timeout: None,
        force_kill_timeout: None,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok((
        vec![CustomSite {
            name: format!("batchci custom mode with {name}"),
            subject,
        }],
        notes,
    ))
}

/// Runs the scenarios through each of `sites` on the site's cluster (`cluster_file`, already
/// scaled), one site after the other, calling `done` with each check.
pub(crate) async fn run(
    options: &VerifyOptions,
    sites: Vec<CustomSite>,
    cluster_file: &str,
    exe: &Path,
    root: &Path,
    done: &(dyn Fn(&Check) + Sync),
) -> anyhow::Result<Vec<Check>> {
    // The scenarios start the simulated cluster with `mock-cluster`: this binary under that
    // name.
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    let mock_cluster = bin.join("mock-cluster");
    std::os::unix::fs::symlink(exe, &mock_cluster)
        .with_context(|| format!("cannot link {}", mock_cluster.display()))?;
    let mut checks = Vec::new();
    for (index, site) in sites.into_iter().enumerate() {
        let group = site.name.clone();
        println!("{group}: {} custom-executor scenarios", SCENARIOS.len());
        let work_dir = root.join(format!("custom-{index}"));
        std::fs::create_dir_all(&work_dir)?;
        let scenario_options = Options {
            subject: site.subject,
            cluster_file: cluster_file.to_string(),
            mock_cluster: mock_cluster.clone(),
            work_dir,
            patience: options.job_timeout.min(Duration::from_secs(30)),
        };
        let started = Instant::now();
        let report = tokio::task::spawn_blocking(move || {
            conformance::custom_conformance::run_scenarios(scenario_options)
        })
        .await
        .context("the custom-executor scenarios stopped")?;
        let took = started.elapsed();
        for check in checks_of(&group, report, took) {
            done(&check);
            checks.push(check);
        }
    }
    Ok(checks)
}

/// The scenarios' verdicts as verify's checks; a run that could not start is one failed check.
fn checks_of(
    group: &str,
    report: Result<ScenarioReport, conformance::custom_conformance::RunError>,
    took: Duration,
) -> Vec<Check> {
    match report {
        Err(error) => vec![Check {
            group: group.to_string(),
            name: "custom-executor scenarios".into(),
            verdict: Verdict::Fail,
            reason: format!("could not run: {error}"),
            took,
        }],
        Ok(report) => {
            let each = took / u32::try_from(report.verdicts.len().max(1)).unwrap_or(1);
            report
                .verdicts
                .into_iter()
                .map(|verdict| {
                    let what = SCENARIOS
                        .iter()
                        .find(|s| s.name == verdict.scenario)
                        .map_or("", |s| s.checks);
                    let (result, reason) = match verdict.failure {
                        None => (Verdict::Ok, what.to_string()),
                        Some(why) => (Verdict::Fail, why),
                    };
                    Check {
                        group: group.to_string(),
                        name: verdict.scenario.to_string(),
                        verdict: result,
                        reason,
                        took: each,
                    }
                })
                .collect()
        }
    }
}
