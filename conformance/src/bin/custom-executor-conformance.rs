//! `custom-executor-conformance`: puts any gitlab-runner custom executor through the
//! scenarios of `conformance::custom_conformance` on a simulated Slurm cluster.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use conformance::custom_conformance::{
    DEFAULT_CLUSTER, Options, load_gitlab_runner_config, parse_custom_executor, run_scenarios,
};

#[derive(Parser)]
#[command(
    name = "custom-executor-conformance",
    about = "Run a gitlab-runner custom executor through batchci's conformance scenarios on a simulated Slurm cluster",
    after_help = "Examples:
  custom-executor-conformance --custom-executor \\
      config_exec=./config.sh,prepare_exec=./prepare.sh,run_exec=./run.sh,cleanup_exec=./cleanup.sh
  custom-executor-conformance --gitlab-runner-config /etc/gitlab-runner/config.toml --runner slurm
  custom-executor-conformance --gitlab-runner-config config.toml --junit report.xml

Exit status: 0 when every scenario holds, 1 when one does not, 2 on bad arguments or setup."
)]
struct Cli {
    /// The executor as KEY=VALUE,...: config_exec, prepare_exec, run_exec (required),
    /// cleanup_exec, and *_args (words separated by spaces); ./relative paths are taken from
    /// the current directory
    #[arg(
        long,
        value_name = "SPEC",
        conflicts_with = "gitlab_runner_config",
        required_unless_present = "gitlab_runner_config"
    )]
    custom_executor: Option<String>,
    /// A gitlab-runner config.toml whose [runners.custom] section names the executor
    #[arg(long, value_name = "FILE")]
    gitlab_runner_config: Option<PathBuf>,
    /// The [[runners]] entry to use (by name) when the file has several
    #[arg(long, value_name = "NAME", requires = "gitlab_runner_config")]
    runner: Option<String>,
    /// A mock-cluster cluster file (TOML); an embedded two-node cluster otherwise
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// Write the report as JUnit XML
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the report as Markdown (it is printed on stdout as well)
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// How long a log line, a queued Slurm job or a cancel may take, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    patience: u64,
    /// The mock-cluster binary [default: next to this one, else on PATH]
    #[arg(long, value_name = "FILE")]
    mock_cluster: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("custom-executor-conformance: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let (subject, title) = match (&cli.custom_executor, &cli.gitlab_runner_config) {
        (Some(spec), _) => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            (
                parse_custom_executor(spec)?.programs_from(&cwd),
                spec.clone(),
            )
        }
        (None, Some(file)) => (
            load_gitlab_runner_config(file, cli.runner.as_deref())?,
            file.display().to_string(),
        ),
        (None, None) => bail!("give --custom-executor or --gitlab-runner-config"),
    };
    let cluster_file = match &cli.cluster {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the cluster file {}", file.display()))?,
        None => DEFAULT_CLUSTER.to_string(),
    };
    let work_dir = tempfile::Builder::new()
        .prefix("custom-executor-conformance")
        .tempdir()
        .context("cannot create a work directory")?;
    let options = Options {
        subject,
        cluster_file,
        mock_cluster: cli.mock_cluster.clone().unwrap_or_else(mock_cluster_binary),
        work_dir: work_dir.path().to_path_buf(),
        patience: Duration::from_secs(cli.patience),
    };
    let report = run_scenarios(options)?;
    let markdown = report.markdown(&title);
    print!("{markdown}");
    if let Some(path) = &cli.markdown {
        std::fs::write(path, &markdown)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &cli.junit {
        std::fs::write(path, report.junit(&title))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report.passed())
}

/// `mock-cluster` next to this binary (a cargo build puts both in one directory), else the
/// one on PATH.
fn mock_cluster_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("mock-cluster")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("mock-cluster"))
}
