//! Command-line front ends: the `mock-cluster` admin command and the fake scheduler commands,
//! chosen by the name the binary was called as.

pub mod admin;
pub mod cobalt;
pub mod docker;
pub mod flux;
pub mod getopt;
pub mod hostname;
pub mod jobs;
pub mod lsf;
pub mod pbs;
pub mod session;
pub mod slurm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::client::{Conn, Unreachable, state_dir_from_env};
use crate::model::CallRecord;
use crate::protocol::Request;

/// Every fake command, by the name it is called as: Slurm's, the `qsub qstat qdel` of PBS
/// or Cobalt (which one, the cluster's `flavor` says; see [`qsub_flavor`]), Flux's `flux`,
/// LSF's `bsub bjobs bkill bhosts`, the Docker client `docker` (see [`docker`]) and `hostname`
/// (the node of a job; see [`hostname`]).
pub const FAKES: &[&str] = &[
    "sbatch", "squeue", "scancel", "sacct", "scontrol", "srun", "salloc", "sinfo", "qsub", "qstat",
    "qdel", "flux", "bsub", "bjobs", "bkill", "bhosts", "docker", "hostname",
];

/// The file in a state directory that records `mock-cluster env --flavor`.
pub const FLAVOR_FILE: &str = "qsub-flavor";

/// Whose `qsub qstat qdel` the cluster in `dir` provides: `mock-cluster env --flavor`, else
/// the cluster file's `flavor` key, else PBS.
pub fn qsub_flavor(dir: &Path) -> crate::config::QsubFlavor {
    use crate::config::QsubFlavor;
    match std::fs::read_to_string(dir.join(FLAVOR_FILE))
        .as_deref()
        .map(str::trim)
    {
        Ok("cobalt") => return QsubFlavor::Cobalt,
        Ok("pbs") => return QsubFlavor::Pbs,
        _ => {}
    }
    crate::config::Cluster::load(&crate::daemon::stored_config_path(dir))
        .map(|cluster| cluster.flavor)
        .unwrap_or_default()
}

/// Entry point of the binary; returns the exit code.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let prog = argv
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if argv.get(1).map(String::as_str) == Some("__launch") {
        return match argv.get(2) {
            Some(spec) => crate::daemon::launch::launcher_main(Path::new(spec)),
            None => 2,
        };
    }
    if argv.get(1).map(String::as_str) == Some("__container") {
        return docker::shim::main(&argv[2..]);
    }
    if !FAKES.contains(&prog.as_str()) {
        return admin::main(argv);
    }
    let mut call = Call::new(&prog, argv.clone());
    let code = slurm::run(&prog, &mut call)
        .or_else(|| lsf::run(&prog, &mut call))
        .or_else(|| flux::run(&prog, &mut call))
        .or_else(|| docker::run(&prog, &mut call))
        .or_else(|| hostname::run(&prog, &mut call))
        .or_else(|| match qsub_flavor(&call.dir) {
            crate::config::QsubFlavor::Pbs => pbs::run(&prog, &mut call),
            crate::config::QsubFlavor::Cobalt => cobalt::run(&prog, &mut call),
        })
        .unwrap_or(2);
    call.finish(code);
    code
}

/// One invocation of a fake: its argv, the connection it uses, and the record sent at the end.
pub struct Call {
    /// Program name.
    pub prog: String,
    /// Full argv.
    pub argv: Vec<String>,
    /// State directory.
    pub dir: PathBuf,
    conn: Option<Conn>,
    record: CallRecord,
    /// Set once the call was recorded through another path (allocations record on their
    /// connection).
    pub recorded: bool,
}

/// The C library's text of an I/O error (`strerror(3)`, as the real commands print it),
/// without Rust's ` (os error N)`.
pub(crate) fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// The caller's environment. Variables that are not UTF-8 are left out: `std::env::vars`
/// would panic on them, and no Slurm variable is ever such.
pub fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The caller's variables a call record keeps: every front end's own, the simulated
/// cluster's, `USER` and `HOME`.
fn chosen_env() -> BTreeMap<String, String> {
    let prefixes = slurm::ENV_PREFIXES
        .iter()
        .chain(pbs::ENV_PREFIXES)
        .chain(cobalt::ENV_PREFIXES)
        .chain(lsf::ENV_PREFIXES)
        .chain(flux::ENV_PREFIXES)
        .chain(docker::ENV_PREFIXES)
        .chain(["MOCK_CLUSTER_"].iter());
    let prefixes: Vec<&str> = prefixes.copied().collect();
    environment()
        .into_iter()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)) || k == "USER" || k == "HOME")
        .collect()
}

impl Call {
    fn new(prog: &str, argv: Vec<String>) -> Call {
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // What the caller believes it is; the daemon replaces both with what the kernel says.
        let (user, uid, _) = slurm::identity();
        Call {
            prog: prog.to_string(),
            dir: state_dir_from_env(),
            conn: None,
            record: CallRecord {
                program: prog.to_string(),
                argv: argv.clone(),
                cwd,
                uid,
                user,
                env: chosen_env(),
                exit_code: 0,
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                job_id: None,
            },
            argv,
            recorded: false,
        }
    }

    /// Arguments after the program name.
    pub fn args(&self) -> Vec<String> {
        self.argv.iter().skip(1).cloned().collect()
    }

    /// The connection, opened (and the daemon started) on first use.
    pub fn conn(&mut self) -> Result<&mut Conn, Unreachable> {
        if self.conn.is_none() {
            self.conn = Some(Conn::connect_or_start(&self.dir)?);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(Unreachable {
                socket: crate::daemon::socket_path(&self.dir),
                error: std::io::Error::other("no connection"),
            }),
        }
    }

    /// Closes the connection; the call is recorded at its end over a new one (for calls that
    /// last long without the daemon, such as an attached `docker run`).
    pub fn release_conn(&mut self) {
        self.conn = None;
    }

    /// Takes the connection out (for long-lived use).
    pub fn take_conn(&mut self) -> Result<Conn, Unreachable> {
        self.conn()?;
        self.conn.take().ok_or_else(|| Unreachable {
            socket: crate::daemon::socket_path(&self.dir),
            error: std::io::Error::other("no connection"),
        })
    }

    /// Prints the unreachable-controller error the way Slurm words it, with the socket tried.
    pub fn unreachable(&self, e: &Unreachable, slurm_line: &str) {
        eprintln!(
            "{}: error: mock-cluster daemon not reachable at {}: {}",
            self.prog,
            e.socket.display(),
            e.error
        );
        eprintln!("{slurm_line}");
    }

    /// Remembers the job id the call created.
    pub fn set_job_id(&mut self, id: u32) {
        self.record.job_id = Some(id);
    }

    /// The record to send, with the exit code filled in.
    pub fn record(&self, code: i32) -> CallRecord {
        let mut r = self.record.clone();
        r.exit_code = code;
        r
    }

    fn finish(&mut self, code: i32) {
        if self.recorded {
            return;
        }
        let record = Request::Record(Box::new(self.record(code)));
        let conn = match self.conn.take() {
            Some(c) => Some(c),
            // Calls that never needed the daemon (bad options) are still recorded, but never
            // start a daemon just for that.
            None => Conn::connect(&self.dir).ok(),
        };
        if let Some(mut c) = conn {
            let _ = c.call(&record);
        }
    }
}
