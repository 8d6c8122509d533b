//! `mock-gitlab`: serve the mock, or drive a running one from the shell.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use mock_gitlab::api::{NewPipeline, Settings, Variable};
use mock_gitlab::{AdminClient, MockConfig, MockGitlab};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mock-gitlab",
    version,
    about = "A mock GitLab: the runner API v4 with GitLab's semantics, plus an admin API",
    after_help = "Examples:\n  \
        mock-gitlab serve --listen 127.0.0.1:8080 --registration-token secret\n  \
        mock-gitlab pipeline create --url http://127.0.0.1:8080 --project demo --repo ./demo .gitlab-ci.yml\n  \
        mock-gitlab job show --url http://127.0.0.1:8080 3\n  \
        mock-gitlab job trace --url http://127.0.0.1:8080 3\n  \
        mock-gitlab job cancel --url http://127.0.0.1:8080 --force 3\n  \
        mock-gitlab runner list --url http://127.0.0.1:8080"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the runner API, the admin API and project repositories until interrupted.
    #[command(after_help = "Examples:\n  \
        mock-gitlab serve\n  \
        mock-gitlab serve --listen 0.0.0.0:8080 --registration-token secret --trace-update-interval 1\n\n\
        The first two lines on stdout are `listening on http://HOST:PORT` and `registration token: T`.")]
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Registration token runners register with (random by default).
        #[arg(long)]
        registration_token: Option<String>,
        /// Seconds sent in X-GitLab-Trace-Update-Interval.
        #[arg(long, default_value_t = 3)]
        trace_update_interval: u64,
        /// Trace size limit in bytes; a larger trace fails the job with trace_size_exceeded.
        #[arg(long)]
        trace_size_limit: Option<u64>,
        /// Answer the first N final job updates of every job with 202 (trace still persisting).
        #[arg(long, default_value_t = 0)]
        update_accepts: u32,
        /// Hold job requests up to this many milliseconds until a job is available (0: answer 204 at once).
        #[arg(long, default_value_t = 0)]
        long_poll_ms: u64,
        /// Runner tokens issued from now on expire after this many seconds (GitLab's
        /// runner_token_expiration_interval); by default they never do.
        #[arg(long, value_name = "SECONDS")]
        runner_token_expiration_interval: Option<u64>,
    },
    /// Runners registered with a running mock.
    Runner {
        #[command(subcommand)]
        command: RunnerCommand,
    },
    /// Pipelines of a running mock.
    Pipeline {
        #[command(subcommand)]
        command: PipelineCommand,
    },
    /// Jobs of a running mock.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// Create a pipeline from a .gitlab-ci.yml and print its id and jobs.
    #[command(after_help = "Examples:\n  \
        mock-gitlab pipeline create --url http://127.0.0.1:8080 .gitlab-ci.yml\n  \
        mock-gitlab pipeline create --url http://127.0.0.1:8080 --project app --repo ~/src/app --var DEPLOY=0 ci.yml\n  \
        mock-gitlab pipeline create --url http://127.0.0.1:8080 --user alice --user-id 1001 ci.yml")]
    Create {
        /// Base URL of the mock.
        #[arg(long)]
        url: String,
        /// Project name (created when it does not exist yet, reused otherwise).
        #[arg(long, default_value = "demo")]
        project: String,
        /// Local git repository served to the jobs (new projects only).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Branch of the pipeline.
        #[arg(long = "ref", default_value = "main")]
        git_ref: String,
        /// Pipeline variable KEY=VALUE (repeatable).
        #[arg(long = "var")]
        variables: Vec<String>,
        /// Masked pipeline variable KEY=VALUE (repeatable).
        #[arg(long = "masked-var")]
        masked_variables: Vec<String>,
        /// Login of the user who starts the pipeline (default root).
        #[arg(long = "user")]
        user_login: Option<String>,
        /// That user's id (default: the id the mock gave the login, or the next free one).
        #[arg(long, requires = "user_login")]
        user_id: Option<u64>,
        /// The .gitlab-ci.yml file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum RunnerCommand {
    /// Print every registered runner as JSON: id, description, tags, paused, token expiry,
    /// last contact, registration time, status.
    #[command(after_help = "Example:\n  mock-gitlab runner list --url http://127.0.0.1:8080")]
    List {
        /// Base URL of the mock.
        #[arg(long)]
        url: String,
    },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Print a job as JSON.
    #[command(after_help = "Example:\n  mock-gitlab job show --url http://127.0.0.1:8080 3")]
    Show {
        /// Base URL of the mock.
        #[arg(long)]
        url: String,
        /// Job id.
        id: u64,
    },
    /// Print a job's trace, byte for byte.
    #[command(after_help = "Example:\n  mock-gitlab job trace --url http://127.0.0.1:8080 3")]
    Trace {
        /// Base URL of the mock.
        #[arg(long)]
        url: String,
        /// Job id.
        id: u64,
    },
    /// Cancel a job: gracefully (like the UI button) or hard with --force.
    #[command(after_help = "Examples:\n  \
        mock-gitlab job cancel --url http://127.0.0.1:8080 3\n  \
        mock-gitlab job cancel --url http://127.0.0.1:8080 --force 3")]
    Cancel {
        /// Base URL of the mock.
        #[arg(long)]
        url: String,
        /// Hard cancel: the runner's next call gets 403 + Job-Status: canceled.
        #[arg(long)]
        force: bool,
        /// Job id.
        id: u64,
    },
}

fn parse_variables(plain: &[String], masked: &[String]) -> Result<Vec<Variable>> {
    let mut out = Vec::new();
    for (items, is_masked) in [(plain, false), (masked, true)] {
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                bail!("variable {item:?} is not KEY=VALUE");
            };
            out.push(Variable {
                key: key.into(),
                value: value.into(),
                masked: is_masked,
            });
        }
    }
    Ok(out)
}

async fn serve(
    listen: SocketAddr,
    registration_token: Option<String>,
    settings: Settings,
) -> Result<()> {
    let gitlab = MockGitlab::start(MockConfig {
        listen,
        registration_token,
        settings,
        ..MockConfig::default()
    })
    .await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", gitlab.url())?;
    writeln!(
        stdout,
        "registration token: {}",
        gitlab.registration_token()
    )?;
    stdout.flush()?;
    drop(stdout);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            registration_token,
            trace_update_interval,
            trace_size_limit,
            update_accepts,
            long_poll_ms,
            runner_token_expiration_interval,
        } => {
            let settings = Settings {
                trace_update_interval,
                trace_size_limit,
                update_accepts,
                long_poll_ms,
                runner_token_expiration_interval,
                ..Settings::default()
            };
            serve(listen, registration_token, settings).await
        }
        Command::Runner {
            command: RunnerCommand::List { url },
        } => {
            let runners = AdminClient::new(&url).runners().await?;
            println!("{}", serde_json::to_string_pretty(&runners)?);
            Ok(())
        }
        Command::Pipeline {
            command:
                PipelineCommand::Create {
                    url,
                    project,
                    repo,
                    git_ref,
                    variables,
                    masked_variables,
                    user_login,
                    user_id,
                    file,
                },
        } => {
            let ci_yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let variables = parse_variables(&variables, &masked_variables)?;
            let client = AdminClient::new(&url);
            let repo = match repo {
                Some(r) => Some(
                    r.canonicalize()
                        .with_context(|| format!("repository {}", r.display()))?
                        .display()
                        .to_string(),
                ),
                None => None,
            };
            let existing = client
                .projects()
                .await?
                .into_iter()
                .find(|p| p.name == project);
            let project_id = match existing {
                Some(p) if repo.is_some() && p.path != repo => {
                    bail!(
                        "project {project} already exists with another repository; pass a new --project name"
                    )
                }
                Some(p) => p.id,
                None => client.create_project(&project, repo.as_deref()).await?,
            };
            let created = client
                .create_pipeline(&NewPipeline {
                    project_id,
                    ci_yaml,
                    variables,
                    git_ref,
                    user_login,
                    user_id,
                })
                .await
                .with_context(|| format!("creating a pipeline from {}", file.display()))?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(())
        }
        Command::Job { command } => match command {
            JobCommand::Show { url, id } => {
                let job = AdminClient::new(&url).job(id).await?;
                println!("{}", serde_json::to_string_pretty(&job)?);
                Ok(())
            }
            JobCommand::Trace { url, id } => {
                let trace = AdminClient::new(&url).trace(id).await?;
                std::io::stdout().write_all(&trace)?;
                Ok(())
            }
            JobCommand::Cancel { url, force, id } => {
                let job = AdminClient::new(&url).cancel(id, force).await?;
                println!("{}", serde_json::to_string_pretty(&job)?);
                Ok(())
            }
        },
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-gitlab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
