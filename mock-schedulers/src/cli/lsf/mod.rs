//! The fake IBM Spectrum LSF commands (`bsub`, `bjobs`, `bkill`; reference section 3). Each
//! command lives in its own file; this module holds what they share.

use super::Call;

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["bsub", "bjobs", "bkill"];

/// Prefixes of the variables LSF's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["LSB_", "LSF_"];

/// Runs the LSF command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    let _ = call;
    COMMANDS.contains(&prog).then(|| {
        eprintln!("{prog}: the LSF commands of the simulated cluster are not built yet");
        2
    })
}
