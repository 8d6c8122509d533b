//! The fake PBS Professional / OpenPBS commands (`qsub`, `qstat`, `qdel`; reference section 2).
//! Each command lives in its own file; this module holds what they share.

use super::Call;

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["qsub", "qstat", "qdel"];

/// Prefixes of the variables PBS's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["PBS_", "QSUB_", "QSTAT_"];

/// Runs the PBS command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    let _ = call;
    match prog {
        "qsub" | "qstat" | "qdel" => {
            eprintln!("{prog}: the PBS commands of the simulated cluster are not built yet");
            Some(2)
        }
        _ => None,
    }
}
