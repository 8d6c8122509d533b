//! The fake Flux commands (`flux alloc|run|submit|jobs|job|cancel`; reference section 4). Each
//! subcommand lives in its own file; this module holds what they share.

use super::Call;

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["flux"];

/// Prefixes of the variables Flux's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["FLUX_"];

/// Runs the Flux command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    let _ = call;
    COMMANDS.contains(&prog).then(|| {
        eprintln!("{prog}: the Flux commands of the simulated cluster are not built yet");
        2
    })
}
