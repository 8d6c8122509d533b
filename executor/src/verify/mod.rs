//! `batchci verify`: a site checks its own setup before touching its cluster.
//!
//! It loads the site's configuration with the normal loader, starts the mock GitLab and the
//! site's cluster (its cluster file) simulated, points each configured runner at them — only
//! GitLab's URL and token and the scheduler commands' PATH change — and runs a real
//! `batchci run` through the contract scenarios and, when given, the users' own pipelines.
//! Each scenario is a named check with a one-line reason; the result is a summary on the
//! terminal and, on request, JUnit XML and Markdown reports.

mod cluster;
mod custom;
mod jobs;
mod pipeline;
mod report;
mod scenarios;
mod site;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use mock_gitlab::api::NewRunner;
use mock_gitlab::{MockConfig, MockGitlab};

use crate::config::{Config, ExecutorKind};
use crate::mock_site;
use cluster::SimCluster;
use jobs::Harness;
use report::{Check, Report};
use site::{Registration, SiteRunner};

/// Options of `batchci verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The site's batchci configuration.
    pub config: PathBuf,
    /// The site's cluster file.
    pub cluster: PathBuf,
    /// Users' `.gitlab-ci.yml` files.
    pub pipelines: Vec<PathBuf>,
    /// Where to write the JUnit XML report.
    pub junit: Option<PathBuf>,
    /// Where to write the Markdown report.
    pub markdown: Option<PathBuf>,
    /// Run the users' scripts instead of stand-ins.
    pub run_scripts: bool,
    /// The GitLab login that starts verify's pipelines; `None`: who runs verify.
    pub user: Option<String>,
    /// The tags each runner offers (`NAME=a,b`); a runner not named offers its name and its
    /// executor's name.
    pub tags: Vec<(String, Vec<String>)>,
    /// Runners that also take untagged jobs (gitlab-runner's `--run-untagged`); a runner
    /// given no tags (`--tags NAME=`) takes them anyway.
    pub run_untagged: Vec<String>,
    /// Simulated seconds per real second; the cluster file's own when higher.
    pub time_scale: f64,
    /// How long one job may take.
    pub job_timeout: Duration,
    /// Keep the working directory afterwards.
    pub keep: bool,
}

/// A mistake in what verify was given (a file that does not load, a runner that does not
/// exist): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs verify; `Ok(true)` when every check holds.
pub async fn run(options: VerifyOptions) -> anyhow::Result<bool> {
    let begun = Instant::now();
    let exe = std::env::current_exe().context("cannot find the batchci executable")?;
    let dir = tempfile::Builder::new()
        .prefix("batchci-verify-")
        .tempdir()
        .context("cannot create a working directory")?;
    if let Some((sites, notes)) = custom::custom_sites(&options.config, &exe, dir.path())? {
        return run_custom(options, sites, notes, dir, &exe, begun).await;
    }
    let (config, config_text) = site::load(&options.config).map_err(UsageError)?;
    let cluster_text = std::fs::read_to_string(&options.cluster)
        .map_err(|e| UsageError(format!("{}: {e}", options.cluster.display())))?;
    mock_cluster::config::Cluster::load(&options.cluster).map_err(|e| UsageError(e.to_string()))?;
    let mut pipelines = Vec::new();
    for path in &options.pipelines {
        pipelines.push(pipeline::load(path).map_err(UsageError)?);
    }
    let named = (options
        .tags
        .iter()
        .map(|(name, _)| (format!("--tags {name}=..."), name)))
    .chain((options.run_untagged.iter()).map(|name| (format!("--run-untagged {name}"), name)));
    for (flag, name) in named {
        if !config.runners.iter().any(|r| &r.name == name) {
            return Err(UsageError(format!(
                "{flag}: {} has no runner named {name}",
                options.config.display()
            ))
            .into());
        }
    }

    let user = pipeline_user(&config, options.user.as_deref()).map_err(UsageError)?;

    let root = dir.path().to_path_buf();
    println!("batchci verify in {}", root.display());

    let (cluster_file, time_scale) = scaled_cluster(&cluster_text, options.time_scale, &root)
        .with_context(|| format!("{}", options.cluster.display()))?;
    let cluster_dir = root.join("cluster");
    let mut cluster = mock_site::start_cluster(&exe, &cluster_dir, Some(&cluster_file), None)?;
    let cluster_config =
        mock_cluster::config::Cluster::load(&cluster_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "simulated cluster {} from {} (time_scale {time_scale})",
        cluster_config.cluster_name,
        options.cluster.display()
    );

    let repo = root.join("repo");
    mock_site::make_repository(&repo, "The batchci verify repository.\n")?;
    let mut gitlab_config = MockConfig::default();
    gitlab_config.settings.trace_update_interval = 1;
    let gitlab = MockGitlab::start(gitlab_config).await?;
    let project = gitlab.create_project("verify", Some(&repo))?;
    println!("mock GitLab at {}", gitlab.url());

    let mut runners = Vec::new();
    let mut registrations = Vec::new();
    for (index, runner) in config.runners.iter().enumerate() {
        let tags = site::tags_of(&runner.name, runner.executor, &options.tags);
        let own_tag = format!("batchci-verify-{index}");
        // As GitLab registers them: a runner without tags takes untagged jobs.
        let run_untagged = tags.is_empty() || options.run_untagged.contains(&runner.name);
        let credentials = gitlab.register_runner(NewRunner {
            description: runner.name.clone(),
            tags: tags.iter().cloned().chain([own_tag.clone()]).collect(),
            run_untagged,
            ..NewRunner::default()
        });
        registrations.push(Registration {
            url: gitlab.url().to_string(),
            token: credentials.token,
        });
        let partition = match runner.executor {
            ExecutorKind::DockerSlurm => runner
                .slurm
                .partition
                .clone()
                .map(|name| (name, "runners.slurm.partition")),
            ExecutorKind::Slurm => runner
                .batch
                .scheduler_environment
                .iter()
                .rev()
                .find_map(|pair| pair.strip_prefix("SBATCH_PARTITION="))
                .map(|name| {
                    (
                        name.to_string(),
                        "SBATCH_PARTITION in runners.batch.scheduler_environment",
                    )
                }),
            _ => None,
        };
        runners.push((
            SiteRunner {
                name: runner.name.clone(),
                executor: runner.executor,
                tags,
                run_untagged,
                own_tag,
                partition,
            },
            runner.clone(),
        ));
    }
    let (rewritten, rewrite) = site::rewrite(
        &options.config,
        &config_text,
        &registrations,
        &cluster_dir,
        &root,
    )?;
    let run_config = root.join("config.toml");
    std::fs::write(&run_config, &rewritten)?;
    // What batchci run will read must load as the site's did.
    Config::parse(&run_config, &rewritten).map_err(|e| anyhow::anyhow!("{e}"))?;
    for (site, _) in &runners {
        println!(
            "runner {} ({}) takes jobs tagged [{}]{}",
            site.name,
            site.executor,
            site.tags.join(", "),
            if site.run_untagged {
                " and untagged jobs"
            } else {
                ""
            }
        );
    }
    println!("pipelines are started by GitLab user {user}");
    println!();

    let child = mock_site::spawn_runner(&exe, &run_config)?;
    let harness = Harness {
        gitlab,
        project,
        user,
        cluster: SimCluster::new(&cluster_dir, cluster_config, &root.join("state")),
        timeout: options.job_timeout,
        runner: std::sync::Mutex::new(child),
    };
    let progress = |check: &Check| println!("{}", check.progress_line());
    // Runners are independent: their scenarios run side by side, each runner's in turn.
    let per_runner = futures::future::join_all(
        runners
            .iter()
            .map(|(site, config)| scenarios::run(&harness, site, config, &progress)),
    )
    .await;
    let mut checks: Vec<Check> = per_runner.into_iter().flatten().collect();
    for pipeline in &pipelines {
        checks.extend(
            pipeline::run(&harness, pipeline, &runners, options.run_scripts, &progress).await,
        );
    }
    harness.stop_runner();
    cluster.stop();

    let mut notes = rewrite.notes;
    for pipeline in &pipelines {
        notes.extend(pipeline.notes());
    }
    if !options.run_scripts && !pipelines.is_empty() {
        notes.push("users' scripts were replaced by an echo (--run-scripts runs them)".into());
    }
    let report = Report {
        checks,
        notes,
        took: begun.elapsed(),
    };
    finish(&options, &report, dir)
}

/// Prints the summary, writes the reports asked for, keeps the directory if asked; whether
/// every check held.
fn finish(
    options: &VerifyOptions,
    report: &Report,
    dir: tempfile::TempDir,
) -> anyhow::Result<bool> {
    println!();
    print!("{}", report.summary());
    write_report(options.junit.as_deref(), &report.junit())?;
    write_report(options.markdown.as_deref(), &report.markdown())?;
    if options.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    Ok(report.passed())
}

/// verify of a site whose executors are gitlab-runner custom executors: the custom-executor
/// scenarios through each, on the site's cluster simulated.
async fn run_custom(
    options: VerifyOptions,
    sites: Vec<custom::CustomSite>,
    notes: Vec<String>,
    dir: tempfile::TempDir,
    exe: &Path,
    begun: Instant,
) -> anyhow::Result<bool> {
    if !options.pipelines.is_empty() || !options.tags.is_empty() {
        return Err(UsageError(format!(
            "--pipeline and --tags need GitLab in the loop; {} names custom executors, which verify puts through the custom-executor scenarios only",
            options.config.display()
        ))
        .into());
    }
    let cluster_text = std::fs::read_to_string(&options.cluster)
        .map_err(|e| UsageError(format!("{}: {e}", options.cluster.display())))?;
    mock_cluster::config::Cluster::load(&options.cluster).map_err(|e| UsageError(e.to_string()))?;
    let root = dir.path().to_path_buf();
    println!("batchci verify in {}", root.display());
    let (cluster_file, time_scale) = scaled_cluster(&cluster_text, options.time_scale, &root)
        .with_context(|| format!("{}", options.cluster.display()))?;
    println!(
        "simulated cluster from {} (time_scale {time_scale}); gitlab-runner's custom executor calls stood in for",
        options.cluster.display()
    );
    println!();
    let scaled = std::fs::read_to_string(&cluster_file)?;
    let progress = |check: &Check| println!("{}", check.progress_line());
    let checks = custom::run(&options, sites, &scaled, exe, &root, &progress).await?;
    let report = Report {
        checks,
        notes,
        took: begun.elapsed(),
    };
    finish(&options, &report, dir)
}

/// The GitLab login verify's pipelines are started by: `given`, else who runs verify (the user
/// behind `sudo`). Runners that run jobs as their users must be able to: this process needs
/// the privileges `batchci run` would, and root is refused as a default where a runner
/// would refuse it.
fn pipeline_user(config: &Config, given: Option<&str>) -> Result<String, String> {
    for runner in &config.runners {
        if let Some(problem) = crate::auth::privilege_problem(&runner.auth) {
            return Err(format!(
                "runner {}: {problem}; verify runs the runner as `batchci run` would",
                runner.name
            ));
        }
    }
    if let Some(login) = given {
        return Ok(login.to_string());
    }
    let invoking = std::env::var("SUDO_USER")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.name)
        })
        .unwrap_or_else(|| "root".into());
    if invoking == "root"
        && let Some(runner) = config
            .runners
            .iter()
            .find(|r| r.auth.downscope != crate::auth::Downscope::None && !r.auth.allow_root)
    {
        return Err(format!(
            "runner {} runs jobs as their users and refuses root: give --user LOGIN, a local account verify's jobs may run as",
            runner.name
        ));
    }
    Ok(invoking)
}

fn write_report(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    Ok(())
}

/// The site's cluster file with `time_scale` raised to `wanted` (walltimes then cost little
/// real time), written under `root`; and the scale used.
fn scaled_cluster(text: &str, wanted: f64, root: &Path) -> anyhow::Result<(PathBuf, f64)> {
    let mut table: toml::Table = toml::from_str(text).context("not a TOML table")?;
    let configured = table
        .get("time_scale")
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        .unwrap_or(1.0);
    let scale = configured.max(wanted);
    table.insert("time_scale".into(), toml::Value::Float(scale));
    let path = root.join("site-cluster.toml");
    std::fs::write(&path, toml::to_string(&table)?)?;
    Ok((path, scale))
}
