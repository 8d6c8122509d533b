//! Fake `hostname`: inside a job of the simulated cluster it prints the simulated node the job
//! runs on; everywhere else it is the real `hostname`.
//!
//! Why: on a real cluster a job's processes run on its node, so `hostname` in a job prints
//! that node's name (`node01`), and CI executors read it from their placeholder jobs (the
//! docker+slurm executor's `gitlab-runner: hostname: $(hostname)`) to find the node's Docker
//! daemon. The simulated cluster runs every job on this machine; the daemon puts the node's
//! name into every job's environment as `MOCK_CLUSTER_NODE` (see
//! `crate::daemon::State::job_env`), and this fake prints it.
//!
//! Inside a job, `hostname`, `hostname -s|--short` and `hostname -f|--fqdn|--long` print the
//! node name (simulated nodes have no domain). Any other use (`-i`, `-d`, setting the name),
//! and every use outside a job, runs the real `hostname` with the same arguments: the first
//! `hostname` on `PATH` that is not one of the fakes, else `/bin/hostname` or
//! `/usr/bin/hostname`. Calls of `hostname` are not recorded: it is no scheduler command.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::Call;
use crate::client::NODE_ENV;

/// The command, by the name it is called as.
pub const COMMANDS: &[&str] = &["hostname"];

/// Runs the fake `hostname`; `None` when `prog` is not it.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    COMMANDS.contains(&prog).then(|| main(call))
}

fn main(call: &mut Call) -> i32 {
    call.recorded = true;
    let args = call.args();
    if let Some(node) = std::env::var(NODE_ENV).ok().filter(|n| !n.is_empty())
        && args
            .iter()
            .all(|a| matches!(a.as_str(), "-s" | "--short" | "-f" | "--fqdn" | "--long"))
    {
        println!("{node}");
        return 0;
    }
    let Some(real) = real_hostname() else {
        if args.is_empty() {
            println!("{}", crate::host::short_hostname());
            return 0;
        }
        eprintln!("hostname: no real hostname command found on PATH");
        return 127;
    };
    let error = std::process::Command::new(&real)
        .arg0("hostname")
        .args(&args)
        .exec();
    eprintln!("hostname: {}: {error}", real.display());
    126
}

/// Whether `path` is one of the fakes: a link to this binary (or to any `mock-cluster`).
fn is_fake(path: &Path, own: Option<&Path>) -> bool {
    if let Ok(target) = std::fs::read_link(path)
        && target.file_name().is_some_and(|f| f == "mock-cluster")
    {
        return true;
    }
    match (std::fs::canonicalize(path), own) {
        (Ok(resolved), Some(own)) => resolved == own,
        _ => false,
    }
}

/// The real `hostname`: the first on `PATH` that is no fake, else the usual places.
pub fn real_hostname() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let own = std::env::current_exe()
        .ok()
        .and_then(|e| std::fs::canonicalize(e).ok());
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("hostname"))
        .chain([
            PathBuf::from("/bin/hostname"),
            PathBuf::from("/usr/bin/hostname"),
        ])
        .find(|candidate| executable(candidate) && !is_fake(candidate, own.as_deref()))
}
