//! The fake Cobalt commands (`qsub`, `qstat`, `qdel`; reference section 5). Each command lives
//! in its own file; this module holds what they share.

use super::Call;

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["qsub", "qstat", "qdel"];

/// Prefixes of the variables Cobalt's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["COBALT_", "QSTAT_HEADER", "CQSTAT_HEADER"];

/// Runs the Cobalt command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    let _ = call;
    match prog {
        "qsub" | "qstat" | "qdel" => {
            eprintln!("{prog}: the Cobalt commands of the simulated cluster are not built yet");
            Some(2)
        }
        _ => None,
    }
}
