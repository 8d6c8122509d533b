//! The `mock-cluster` admin command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client::{self, Conn};
use crate::config::{Cluster, DEFAULT_CLUSTER_TOML};
use crate::daemon;
use crate::model::JobState;
use crate::protocol::{CancelRequest, InjectRequest, Request, Response};

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

#[derive(Debug, Parser)]
#[command(
    name = "mock-cluster",
    version,
    about = "A simulated HPC cluster with fake Slurm commands (sbatch, squeue, scancel, sacct, scontrol, srun, salloc, sinfo)",
    after_help = "Examples:
  eval \"$(mock-cluster env)\"                      # fakes first on PATH, embedded default cluster
  eval \"$(mock-cluster env --config site.toml)\"   # a cluster described in TOML
  sbatch --wrap 'hostname'; squeue
  mock-cluster calls --json                        # what the fakes were asked
  mock-cluster inject submit-errors 2 --message 'Invalid qos specification'
  mock-cluster stop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct DirArg {
    /// State directory of the cluster [default: $MOCK_CLUSTER_STATE_DIR or /tmp/mock-cluster-<uid>]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl DirArg {
    fn dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(client::state_dir_from_env)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print shell lines that put the fake commands first on PATH
    #[command(
        after_help = "Example:\n  eval \"$(mock-cluster env --config cluster.toml --state-dir /tmp/c1)\""
    )]
    Env {
        /// Cluster description (TOML); the embedded default cluster when absent
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Whose qsub, qstat and qdel to provide (default: the cluster file's `flavor`, else pbs)
        #[arg(long, value_enum)]
        flavor: Option<FlavorArg>,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Start the cluster daemon (returns once it answers)
    #[command(
        after_help = "Example:\n  mock-cluster start --config cluster.toml --state-dir /tmp/c1"
    )]
    Start {
        /// Cluster description (TOML)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        dir: DirArg,
        /// Run in this process instead of in the background
        #[arg(long)]
        foreground: bool,
    },
    /// Stop the cluster daemon (running jobs keep running and are picked up by the next start)
    Stop {
        #[command(flatten)]
        dir: DirArg,
        /// Cancel all pending and running jobs first
        #[arg(long)]
        cancel_jobs: bool,
    },
    /// One-line summary; exits non-zero when no daemon runs
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Recorded CLI calls of the fakes, in call order
    #[command(
        after_help = "Example:\n  mock-cluster calls --state-dir /tmp/c1 --json | jq '.[].argv'"
    )]
    Calls {
        #[command(flatten)]
        dir: DirArg,
        /// Print a JSON array (the default prints one line per call)
        #[arg(long)]
        json: bool,
    },
    /// Failure injection at run time
    Inject {
        #[command(flatten)]
        dir: DirArg,
        #[command(subcommand)]
        what: Injection,
    },
    /// Print a cluster file built from what a real cluster reports (Slurm, PBS)
    #[command(after_help = crate::import::IMPORT_EXAMPLES)]
    Import {
        #[command(subcommand)]
        what: crate::import::ImportCommand,
    },
    /// Print the embedded default cluster description
    DefaultConfig,
    /// Validate a cluster description
    CheckConfig {
        /// The TOML file
        file: PathBuf,
    },
    /// Run the daemon (used by `start` and by the fakes' autostart)
    #[command(hide = true)]
    Daemon {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, Subcommand)]
enum Injection {
    /// The next COUNT submissions (sbatch, srun, salloc) fail with a Slurm error text
    #[command(
        after_help = "Example:\n  mock-cluster inject submit-errors 3 --message 'Invalid account or account/partition combination specified'"
    )]
    SubmitErrors {
        /// How many submissions fail
        count: u32,
        /// The error text (after `Batch job submission failed: `)
        #[arg(long)]
        message: Option<String>,
    },
    /// Status commands (squeue, sacct, scontrol, sinfo) fail with "Socket timed out on send/recv operation"
    StatusTimeout {
        /// on or off
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Fail a node: its jobs end NODE_FAIL, nothing new starts there
    FailNode {
        /// Node name
        node: String,
    },
    /// Bring a failed node back
    ResumeNode {
        /// Node name
        node: String,
    },
    /// Output files of jobs started from now on appear only after SECONDS (simulated)
    OutputDelay {
        /// Simulated seconds (0 turns it off)
        seconds: f64,
    },
    /// Clear all injections
    Clear,
    /// Print the active injections as JSON
    Show,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn load_config(path: &Path) -> Result<Cluster, i32> {
    Cluster::load(path).map_err(|e| {
        eprintln!("mock-cluster: error: {e}");
        2
    })
}

fn store_config(dir: &Path, config: Option<&Path>) -> Result<(), i32> {
    if let Some(path) = config {
        load_config(path)?;
        let io = |e: std::io::Error| {
            eprintln!("mock-cluster: error: {}: {e}", dir.display());
            1
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::copy(path, daemon::stored_config_path(dir)).map_err(io)?;
    }
    Ok(())
}

/// `--flavor` of `mock-cluster env`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FlavorArg {
    /// PBS Professional / OpenPBS
    Pbs,
    /// Cobalt
    Cobalt,
}

/// Records `--flavor` in the state directory (or forgets an earlier one when absent).
fn store_flavor(dir: &Path, flavor: Option<FlavorArg>) -> Result<(), i32> {
    let path = dir.join(super::FLAVOR_FILE);
    if flavor.is_some()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("mock-cluster: error: {}: {e}", dir.display());
        return Err(1);
    }
    let written = match flavor {
        Some(FlavorArg::Pbs) => std::fs::write(&path, "pbs\n"),
        Some(FlavorArg::Cobalt) => std::fs::write(&path, "cobalt\n"),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    written.map_err(|e| {
        eprintln!("mock-cluster: error: {}: {e}", path.display());
        1
    })
}

fn make_bin(dir: &Path) -> std::io::Result<PathBuf> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::write(
        bin.join(crate::client::BIN_MARKER),
        "The commands in this directory reach the simulated cluster whose state is in ..\n",
    )?;
    let exe = std::env::current_exe()?;
    for name in super::FAKES.iter().chain(["mock-cluster"].iter()) {
        let link = bin.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link)?;
    }
    Ok(bin)
}

fn absolute(dir: PathBuf) -> PathBuf {
    if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir().map(|c| c.join(&dir)).unwrap_or(dir)
    }
}

fn connect(dir: &Path) -> Result<Conn, i32> {
    Conn::connect(dir).map_err(|e| {
        eprintln!(
            "mock-cluster: no daemon answers at {}: {}",
            e.socket.display(),
            e.error
        );
        1
    })
}

fn ask(dir: &Path, req: &Request) -> Result<Response, i32> {
    let mut c = connect(dir)?;
    c.call(req).map_err(|e| {
        eprintln!(
            "mock-cluster: daemon at {} did not answer: {e}",
            daemon::socket_path(dir).display()
        );
        1
    })
}

/// Runs the admin command; returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli.command) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn run(cmd: Command) -> Result<(), i32> {
    match cmd {
        Command::Env {
            config,
            flavor,
            dir,
        } => {
            let dir = absolute(dir.dir());
            store_config(&dir, config.as_deref())?;
            store_flavor(&dir, flavor)?;
            let bin = make_bin(&dir).map_err(|e| {
                eprintln!(
                    "mock-cluster: error: cannot create {}/bin: {e}",
                    dir.display()
                );
                1
            })?;
            println!(
                "export {}={}",
                client::STATE_DIR_ENV,
                shell_quote(&dir.display().to_string())
            );
            println!(
                "export PATH={}:\"$PATH\"",
                shell_quote(&bin.display().to_string())
            );
            Ok(())
        }
        Command::Start {
            config,
            dir,
            foreground,
        } => {
            let dir = absolute(dir.dir());
            store_config(&dir, config.as_deref())?;
            if let Ok(mut c) = Conn::connect(&dir)
                && let Ok(Response::Pong { pid, .. }) = c.call(&Request::Ping)
            {
                println!(
                    "mock-cluster: already running (pid {pid}) at {}",
                    daemon::socket_path(&dir).display()
                );
                return Ok(());
            }
            let cluster = cluster_for(&dir)?;
            let _ = make_bin(&dir);
            if foreground {
                return run_daemon(&dir, cluster);
            }
            client::spawn_daemon(&dir).map_err(|e| {
                eprintln!("mock-cluster: error: cannot start daemon: {e}");
                1
            })?;
            match client::wait_for_daemon(&dir, Duration::from_secs(10)) {
                Ok(mut c) => {
                    let pid = match c.call(&Request::Ping) {
                        Ok(Response::Pong { pid, .. }) => pid,
                        _ => 0,
                    };
                    println!(
                        "mock-cluster: started (pid {pid}) at {}",
                        daemon::socket_path(&dir).display()
                    );
                    Ok(())
                }
                Err(e) => {
                    eprintln!(
                        "mock-cluster: error: daemon did not answer at {}: {} (see {})",
                        e.socket.display(),
                        e.error,
                        dir.join("daemon.log").display()
                    );
                    Err(1)
                }
            }
        }
        Command::Stop { dir, cancel_jobs } => {
            let dir = absolute(dir.dir());
            if cancel_jobs {
                // The simulated Docker daemons' containers end with the cluster's jobs.
                super::docker::kill_all(&dir);
                for state in [JobState::Pending, JobState::Running] {
                    let req = CancelRequest {
                        state: Some(state),
                        uid: current_uid(),
                        ..CancelRequest::default()
                    };
                    ask(&dir, &Request::Cancel(req))?;
                }
            }
            match ask(&dir, &Request::Shutdown) {
                Ok(Response::Error { message, .. }) => {
                    eprintln!("mock-cluster: error: {message}");
                    Err(1)
                }
                Ok(_) => {
                    // Wait until the daemon has released the state directory.
                    let deadline = std::time::Instant::now() + Duration::from_secs(10);
                    while std::time::Instant::now() < deadline {
                        if !daemon::is_locked(&dir) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    println!("mock-cluster: stopped");
                    Ok(())
                }
                Err(code) => Err(code),
            }
        }
        Command::Status { dir } => match ask(&absolute(dir.dir()), &Request::Status)? {
            Response::Status { summary } => {
                println!("{summary}");
                Ok(())
            }
            _ => Err(1),
        },
        Command::Calls { dir, json } => match ask(&absolute(dir.dir()), &Request::Calls)? {
            Response::Calls { calls } => {
                if json {
                    match serde_json::to_string_pretty(&calls) {
                        Ok(s) => println!("{s}"),
                        Err(_) => return Err(1),
                    }
                } else {
                    for c in calls {
                        let argv = shell_words::join(&c.argv);
                        println!(
                            "{} exit={} user={} cwd={} {argv}",
                            c.time, c.exit_code, c.user, c.cwd
                        );
                    }
                }
                Ok(())
            }
            _ => Err(1),
        },
        Command::Inject { dir, what } => {
            let mut req = InjectRequest::default();
            match what {
                Injection::SubmitErrors { count, message } => {
                    req.submit_errors = Some(count);
                    req.submit_error_text = message;
                }
                Injection::StatusTimeout { state } => req.status_timeout = Some(state == "on"),
                Injection::FailNode { node } => req.fail_nodes.push(node),
                Injection::ResumeNode { node } => req.resume_nodes.push(node),
                Injection::OutputDelay { seconds } => req.output_delay = Some(seconds.max(0.0)),
                Injection::Clear => req.clear = true,
                Injection::Show => {}
            }
            match ask(&absolute(dir.dir()), &Request::Inject(req))? {
                Response::Injections { inject } => {
                    println!("{}", serde_json::to_string(&inject).unwrap_or_default());
                    Ok(())
                }
                Response::Error { message, .. } => {
                    eprintln!("mock-cluster: error: {message}");
                    Err(1)
                }
                _ => Err(1),
            }
        }
        Command::Import { what } => crate::import::run(what),
        Command::DefaultConfig => {
            print!("{DEFAULT_CLUSTER_TOML}");
            Ok(())
        }
        Command::CheckConfig { file } => {
            let c = load_config(&file)?;
            println!(
                "{}: ok: cluster {}, {} nodes, {} partitions",
                file.display(),
                c.cluster_name,
                c.nodes.len(),
                c.partitions.len()
            );
            Ok(())
        }
        Command::Daemon { dir } => {
            let dir = absolute(dir.dir());
            let cluster = cluster_for(&dir)?;
            run_daemon(&dir, cluster)
        }
    }
}

fn cluster_for(dir: &Path) -> Result<Cluster, i32> {
    let stored = daemon::stored_config_path(dir);
    if stored.exists() {
        load_config(&stored)
    } else {
        Ok(Cluster::embedded_default())
    }
}

fn run_daemon(dir: &Path, cluster: Cluster) -> Result<(), i32> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    match daemon::run(dir, cluster) {
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!("mock-cluster: daemon error: {e:#}");
            Err(1)
        }
    }
}
