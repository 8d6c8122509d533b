//! `batchci`: the command line. The work is done by the library; see `batchci --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use batchci::logging::LogFormat;
use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  batchci demo                                   run the sample pipeline on a simulated cluster
  batchci register --config /etc/batchci/config.toml --url https://gitlab.example.com \\
      --registration-token GR1348941xyz --executor slurm --name cluster-a --tag-list slurm
  batchci check --config /etc/batchci/config.toml
  batchci run --config /etc/batchci/config.toml
  batchci run --log-format json --config /etc/batchci/config.toml   (one JSON object per line)
  batchci verify-runners --config /etc/batchci/config.toml          (are the tokens valid?)
  batchci reset-token --config /etc/batchci/config.toml --name cluster-a
  batchci unregister --config /etc/batchci/config.toml --name cluster-a
  batchci custom run --config /etc/batchci/custom.toml /tmp/script build_script   (from gitlab-runner)

Logs go to standard error. BATCHCI_LOG sets their level and filters, overriding log_level
(BATCHCI_LOG=debug, BATCHCI_LOG=info,batchci::tail=debug); colours only on a terminal and
never with NO_COLOR set.";

/// GitLab CI jobs through batch schedulers: Slurm, PBS, LSF, Flux, Cobalt, shell, docker+slurm.
#[derive(Debug, Parser)]
#[command(name = "batchci", version, after_help = EXAMPLES)]
struct Cli {
    /// Log lines as text, or as one JSON object per line for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "BATCHCI_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as a standalone runner: poll GitLab for jobs and run them.
    #[command(
        after_help = "Example:\n  batchci run --config /etc/batchci/config.toml\n\n\
First SIGTERM: take no new jobs, let running ones finish. Second SIGTERM or SIGINT: cancel\n\
running jobs (their scheduler jobs are cancelled), then exit."
    )]
    Run {
        /// The configuration file (gitlab-runner's config.toml shape).
        #[arg(long, short, default_value = "/etc/batchci/config.toml")]
        config: PathBuf,
    },
    /// Register a runner with GitLab and append it to the configuration file.
    #[command(
        after_help = "Example:\n  batchci register --config /etc/batchci/config.toml \\\n      --url https://gitlab.example.com --registration-token GR1348941xyz \\\n      --executor slurm --name cluster-a --tag-list slurm,hpc"
    )]
    Register {
        /// The configuration file to append to (created when missing).
        #[arg(long, short, default_value = "/etc/batchci/config.toml")]
        config: PathBuf,
        /// GitLab's URL.
        #[arg(long)]
        url: String,
        /// The registration token from GitLab's runner settings.
        #[arg(long)]
        registration_token: String,
        /// shell, slurm (sbatch), pbs, lsf (bsub), flux, cobalt (qsub) or docker+slurm.
        #[arg(long)]
        executor: String,
        /// The runner's name (default: this host's name).
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated tags.
        #[arg(long, default_value = "")]
        tag_list: String,
        /// Also take jobs without tags.
        #[arg(long)]
        run_untagged: bool,
        /// Most jobs this runner runs at once (0: no own limit).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Where job directories are created; must be visible on the compute nodes.
        #[arg(long)]
        builds_dir: Option<PathBuf>,
    },
    /// Ask GitLab whether each runner's token is valid (gitlab-runner's `verify`).
    #[command(after_help = VERIFY_RUNNERS_HELP)]
    VerifyRunners {
        /// The configuration file.
        #[arg(long, short, default_value = "/etc/batchci/config.toml")]
        config: PathBuf,
        /// Only this runner.
        #[arg(long, short)]
        name: Option<String>,
        /// Remove the runners whose token GitLab refuses from the configuration.
        #[arg(long)]
        delete: bool,
    },
    /// Remove runners from GitLab, then from the configuration.
    #[command(after_help = UNREGISTER_HELP)]
    Unregister {
        /// The configuration file.
        #[arg(long, short, default_value = "/etc/batchci/config.toml")]
        config: PathBuf,
        #[command(flatten)]
        which: WhichRunners,
    },
    /// Have GitLab issue a runner a new token and write it into the configuration.
    #[command(after_help = RESET_TOKEN_HELP)]
    ResetToken {
        /// The configuration file.
        #[arg(long, short, default_value = "/etc/batchci/config.toml")]
        config: PathBuf,
        #[command(flatten)]
        which: WhichRunners,
    },
    /// Custom executor mode: the stages gitlab-runner's `[runners.custom]` calls.
    #[command(
        after_help = "gitlab-runner's config.toml:\n  [runners.custom]\n    config_exec = \"/usr/local/bin/batchci\"\n    config_args = [\"custom\", \"config\", \"--config\", \"/etc/batchci/custom.toml\"]\n    prepare_exec = \"/usr/local/bin/batchci\"\n    prepare_args = [\"custom\", \"prepare\", \"--config\", \"/etc/batchci/custom.toml\"]\n    run_exec = \"/usr/local/bin/batchci\"\n    run_args = [\"custom\", \"run\", \"--config\", \"/etc/batchci/custom.toml\"]\n    cleanup_exec = \"/usr/local/bin/batchci\"\n    cleanup_args = [\"custom\", \"cleanup\", \"--config\", \"/etc/batchci/custom.toml\"]"
    )]
    Custom {
        #[command(subcommand)]
        stage: CustomStage,
    },
    /// Run the sample pipeline through every backend on a mock GitLab and a simulated cluster.
    #[cfg(feature = "demo")]
    #[command(
        after_help = "Example:\n  batchci demo           # prints each job's log and a summary; exit 0 when all is as expected\n  batchci demo --keep    # keep the demo directory (builds, cluster state, config) afterwards"
    )]
    Demo {
        /// Keep the demo's directory afterwards.
        #[arg(long)]
        keep: bool,
        /// Print only the summary, not each job's log.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a site's setup on a mock GitLab and its own cluster, simulated, before going live.
    #[cfg(feature = "demo")]
    #[command(after_help = VERIFY_HELP)]
    Verify {
        /// The site's batchci configuration (as `batchci run` reads it).
        #[arg(long, short, default_value = "/etc/batchci/config.toml")]
        config: PathBuf,
        /// The site's cluster file (`mock-cluster import slurm|pbs` makes one).
        #[arg(long)]
        cluster: PathBuf,
        /// A users' .gitlab-ci.yml whose jobs run too (repeatable).
        #[arg(long = "pipeline", value_name = "FILE")]
        pipelines: Vec<PathBuf>,
        /// The tags a runner offers, `NAME=tag,tag` (repeatable; default: its name and its
        /// executor's name).
        #[arg(long = "tags", value_name = "NAME=TAGS", value_parser = parse_tags)]
        tags: Vec<(String, Vec<String>)>,
        /// A runner that also takes jobs without tags (repeatable; a runner given no tags,
        /// `--tags NAME=`, takes them anyway).
        #[arg(long = "run-untagged", value_name = "NAME")]
        run_untagged: Vec<String>,
        /// Run the users' scripts instead of an `echo` stand-in.
        #[arg(long)]
        run_scripts: bool,
        /// The GitLab user who starts verify's pipelines: the account a runner that runs jobs
        /// as their users maps them to (default: who runs verify, `SUDO_USER` under sudo).
        #[arg(long, value_name = "LOGIN")]
        user: Option<String>,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write a Markdown report here.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Simulated seconds per real second (the cluster file's own when higher).
        #[arg(long, default_value_t = 60.0)]
        time_scale: f64,
        /// Seconds one job may take before it counts as hung.
        #[arg(long, default_value_t = 120)]
        job_timeout: u64,
        /// Keep the working directory (rewritten config, cluster state, builds) afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Check a configuration and what it needs before `run`: scheduler commands, controller,
    /// token, directories, listen address, durations.
    #[command(after_help = CHECK_HELP)]
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "/etc/batchci/config.toml")]
        config: PathBuf,
        /// Ask GitLab nothing (the runners' tokens are not checked).
        #[arg(long)]
        offline: bool,
        /// Seconds one scheduler command or GitLab request may take.
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
}

/// Which runners of the configuration a lifecycle command acts on: one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct WhichRunners {
    /// The runner's name.
    #[arg(long, short)]
    name: Option<String>,
    /// Every runner of the configuration.
    #[arg(long)]
    all_runners: bool,
}

impl WhichRunners {
    fn which(&self) -> batchci::lifecycle::Which {
        match &self.name {
            Some(name) if !self.all_runners => batchci::lifecycle::Which::Named(name.clone()),
            _ => batchci::lifecycle::Which::All,
        }
    }
}

const VERIFY_RUNNERS_HELP: &str = "\
Exit code: 0 when GitLab accepts every token (or --delete removed those it refuses), 1 when
it refuses one or cannot be asked, 2 when the configuration does not load.

Examples:
  batchci verify-runners --config /etc/batchci/config.toml
  batchci verify-runners --config /etc/batchci/config.toml --name cluster-a
  batchci verify-runners --config /etc/batchci/config.toml --delete

(`batchci verify` is another command: it checks a site against a simulated cluster.)";

const UNREGISTER_HELP: &str = "\
Calls DELETE /api/v4/runners with the runner's token, then removes its entry from the
configuration (comments and the other entries stay as they are). A runner whose token GitLab
refuses stays in the file: `batchci verify-runners --delete` removes those. Restart a running
`batchci run` afterwards.

Examples:
  batchci unregister --config /etc/batchci/config.toml --name cluster-a
  batchci unregister --config /etc/batchci/config.toml --all-runners";

const RESET_TOKEN_HELP: &str = "\
Calls POST /api/v4/runners/reset_authentication_token with the current token; GitLab answers
with a new token (and its expiry), which replaces the old one in the configuration, in place
and atomically. The old token stops working at once: restart a running `batchci run`.

Examples:
  batchci reset-token --config /etc/batchci/config.toml --name cluster-a
  batchci reset-token --config /etc/batchci/config.toml --all-runners";

#[derive(Debug, Subcommand)]
enum CustomStage {
    /// Print the JSON gitlab-runner reads (builds_dir, cache_dir, driver, ...).
    Config {
        /// batchci's configuration (Jacamar-style `[general]` file or a one-runner config.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check the job (e.g. its scheduler parameters) before any stage runs.
    Prepare {
        /// batchci's configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run one stage's script: build_script goes to the scheduler, other stages run here.
    Run {
        /// batchci's configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// The script gitlab-runner generated.
        script: PathBuf,
        /// The stage name (prepare_script, get_sources, build_script, after_script, ...).
        stage: String,
    },
    /// Release whatever the job still holds; always called.
    Cleanup {
        /// batchci's configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
}

const CHECK_HELP: &str =
    "Run it as the user `batchci run` runs as, with the environment it gets (a service
manager's is not a login shell's): scheduler commands get that environment's SLURM_CONF,
PBS_CONF_FILE, PBS_SERVER, LSF_ENVDIR, FLUX_URI or COBALT_CONFIG_FILES.

Exit code: 0 when no check failed (warnings allowed), 1 when one did, 2 when the file does not load.

Examples:
  batchci check --config /etc/batchci/config.toml
  batchci check --config /etc/batchci/config.toml --offline    # GitLab not asked";

#[cfg(feature = "demo")]
const VERIFY_HELP: &str =
    "Exit code: 0 when every check holds, 1 when one fails, 2 when the files given do not load.

Examples:
  batchci verify --config /etc/batchci/config.toml --cluster site.toml
  batchci verify --config /etc/batchci/config.toml --cluster site.toml \\
      --pipeline .gitlab-ci.yml --tags cluster-a=slurm,hpc \\
      --junit verify.xml --markdown verify.md
  batchci verify --config /etc/batchci/config.toml --cluster site.toml \\
      --pipeline .gitlab-ci.yml --run-untagged login-shell    # it takes untagged jobs
  mock-cluster import slurm --live >site.toml    # the cluster file, on a login node

A pipeline's local includes are read relative to its directory; rules, only and except are not
evaluated (every job is checked as if it runs). A pipeline none of whose jobs went to a runner
fails.

To ask GitLab whether the runners' tokens are valid, see `batchci verify-runners`.";

#[cfg(feature = "demo")]
fn parse_tags(text: &str) -> Result<(String, Vec<String>), String> {
    let (name, tags) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected NAME=tag,tag"))?;
    let tags = tags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    Ok((name.to_string(), tags))
}

fn main() -> ExitCode {
    #[cfg(feature = "demo")]
    {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if batchci::mock_site::is_cluster_command(&argv) {
            return exit(batchci::mock_site::cluster_command_main());
        }
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("batchci: cannot start: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, cli.log_format)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("batchci: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command, format: LogFormat) -> anyhow::Result<ExitCode> {
    let init_logging = |level: &str| batchci::logging::init(format, level);
    match command {
        Command::Run { config: path } => {
            let config = batchci::config::Config::load(&path).map_err(anyhow::Error::msg)?;
            init_logging(config.log_level.as_filter());
            batchci::logging::startup(&path, &config);
            let shutdown = batchci::runner::Shutdown::default();
            tokio::spawn(watch_signals(shutdown.clone(), config.shutdown_timeout));
            batchci::runner::run(config, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Register {
            config,
            url,
            registration_token,
            executor,
            name,
            tag_list,
            run_untagged,
            limit,
            builds_dir,
        } => {
            init_logging("warn");
            let kind =
                batchci::config::ExecutorKind::from_name(&executor).map_err(anyhow::Error::msg)?;
            // A runner that `run` cannot drive would register, then stay idle for good.
            batchci::backends::AnyBackend::new(kind).map_err(anyhow::Error::msg)?;
            let name = name.unwrap_or_else(|| {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "batchci".into())
            });
            let tags: Vec<String> = tag_list
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            let client = batchci::gitlab::GitlabClient::new(&url, kind.name())?;
            let registered = client
                .register(
                    &registration_token,
                    &name,
                    &tags,
                    run_untagged || tags.is_empty(),
                )
                .await
                .context("registration failed")?;
            batchci::register::append_runner(
                &config,
                &name,
                &url,
                &registered.token,
                kind,
                limit,
                builds_dir.as_deref(),
            )?;
            println!(
                "Registered runner {name} (id {}) with executor {kind}; appended to {}",
                registered.id,
                config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyRunners {
            config,
            name,
            delete,
        } => {
            init_logging("warn");
            lifecycle_exit(
                batchci::lifecycle::verify_runners(&config, name.as_deref(), delete).await,
            )
        }
        Command::Unregister { config, which } => {
            init_logging("warn");
            lifecycle_exit(batchci::lifecycle::unregister(&config, &which.which()).await)
        }
        Command::ResetToken { config, which } => {
            init_logging("warn");
            lifecycle_exit(batchci::lifecycle::reset_tokens(&config, &which.which()).await)
        }
        Command::Custom { stage } => Ok(custom(stage, format).await),
        #[cfg(feature = "demo")]
        Command::Demo { keep, quiet } => {
            init_logging("warn");
            let options = batchci::demo::DemoOptions {
                keep,
                show_logs: !quiet,
            };
            let cancel = cancel_on_signal();
            // On SIGINT or SIGTERM the run is dropped: its runner child, its simulated cluster
            // and its directory go with it.
            let passed = tokio::select! {
                passed = batchci::demo::run(options) => passed?,
                () = cancel.cancelled() => anyhow::bail!("interrupted; nothing left running"),
            };
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        #[cfg(feature = "demo")]
        Command::Verify {
            config,
            cluster,
            pipelines,
            tags,
            run_untagged,
            run_scripts,
            user,
            junit,
            markdown,
            time_scale,
            job_timeout,
            keep,
        } => {
            init_logging("warn");
            let options = batchci::verify::VerifyOptions {
                config,
                cluster,
                pipelines,
                junit,
                markdown,
                run_scripts,
                user,
                tags,
                run_untagged,
                time_scale,
                job_timeout: std::time::Duration::from_secs(job_timeout),
                keep,
            };
            let cancel = cancel_on_signal();
            // On SIGINT or SIGTERM the run is dropped: its runner child, its simulated cluster
            // and its directory go with it.
            let outcome = tokio::select! {
                outcome = batchci::verify::run(options) => outcome,
                () = cancel.cancelled() => anyhow::bail!("interrupted; nothing left running"),
            };
            match outcome {
                Ok(true) => Ok(ExitCode::SUCCESS),
                Ok(false) => Ok(ExitCode::from(1)),
                Err(error)
                    if error
                        .downcast_ref::<batchci::verify::UsageError>()
                        .is_some() =>
                {
                    eprintln!("batchci verify: {error}");
                    Ok(ExitCode::from(2))
                }
                Err(error) => Err(error),
            }
        }
        Command::Check {
            config,
            offline,
            timeout,
        } => {
            let options = batchci::check::CheckOptions {
                offline,
                timeout: std::time::Duration::from_secs(timeout.max(1)),
            };
            Ok(ExitCode::from(batchci::check::run(&config, &options).await))
        }
    }
}

/// Prints what a lifecycle command did: 0 when every runner was done, 1 when one was not, 2
/// when the configuration did not load.
fn lifecycle_exit(
    result: Result<batchci::lifecycle::Report, batchci::lifecycle::LifecycleError>,
) -> anyhow::Result<ExitCode> {
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("batchci: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    for line in &report.lines {
        println!("{line}");
    }
    for hint in &report.hints {
        eprintln!("hint: {hint}");
    }
    Ok(if report.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn custom(stage: CustomStage, format: LogFormat) -> ExitCode {
    use batchci::custom;
    let config = match &stage {
        CustomStage::Config { config }
        | CustomStage::Prepare { config }
        | CustomStage::Run { config, .. }
        | CustomStage::Cleanup { config } => config.clone(),
    };
    batchci::logging::init(format, "warn");
    let codes = custom::ExitCodes::from_env();
    let settings = match custom::CustomSettings::load(&config) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("batchci: {error}");
            return exit(codes.system_failure);
        }
    };
    match stage {
        CustomStage::Config { .. } => exit(custom::config(&settings).await),
        CustomStage::Prepare { .. } => exit(custom::prepare(&settings, cancel_on_signal()).await),
        CustomStage::Run { script, stage, .. } => {
            exit(custom::run(&settings, &script, &stage, cancel_on_signal()).await)
        }
        CustomStage::Cleanup { .. } => exit(custom::cleanup(&settings).await),
    }
}

/// A token that SIGTERM or SIGINT cancels: gitlab-runner ends a stage with SIGTERM.
fn cancel_on_signal() -> tokio_util::sync::CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    // Installed before this returns: a SIGTERM from now on is a cancel, never a sudden death
    // between starting a scheduler job and recording it.
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    tokio::spawn(async move {
        if let (Ok(mut term), Ok(mut int)) = handlers {
            // A stream that ends is not a signal: select! then waits on the other.
            tokio::select! {
                Some(()) = term.recv() => on_signal.cancel(),
                Some(()) = int.recv() => on_signal.cancel(),
                else => {}
            }
        }
    });
    cancel
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

async fn watch_signals(shutdown: batchci::runner::Shutdown, drain_limit: std::time::Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    // A signal stream that ends (`None`) is no signal: the pattern disables its branch.
    tokio::select! {
        Some(()) = term.recv() => {
            tracing::warn!("SIGTERM: taking no new jobs; running jobs finish (send SIGTERM again to cancel them)");
            shutdown.drain.cancel();
        }
        Some(()) = int.recv() => {
            tracing::warn!("SIGINT: cancelling running jobs");
            shutdown.drain.cancel();
            shutdown.cancel.cancel();
            return;
        }
        else => return,
    }
    tokio::select! {
        Some(()) = term.recv() => {}
        Some(()) = int.recv() => {}
        _ = tokio::time::sleep(drain_limit), if !drain_limit.is_zero() => {
            tracing::warn!("running jobs did not finish within shutdown_timeout ({drain_limit:?})");
        }
        else => return,
    }
    tracing::warn!("cancelling running jobs");
    shutdown.cancel.cancel();
}
