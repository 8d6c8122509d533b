//! Fake `flux uptime` (flux-core `src/cmd/builtin/uptime.c`, `doc/man1/flux-uptime.rst`):
//! one line about the instance, ` HH:MM:SS run <duration>,  owner <user>,  depth 0,  size
//! <brokers>`, the time local, the duration in Flux Standard Duration form with two
//! significant digits (`fsd_format_duration_ex(..., 2)`). The simulated instance is always in
//! state `run`, at depth 0, with one broker per node, owned by the user whose cluster it is
//! (the owner of the state directory), with no node drained or offline and queues enabled.
//! No broker: `flux-uptime: flux_open: <why>` (`log_err_exit`), exit 1.

use std::os::unix::fs::MetadataExt;

use super::units::fsd_c;
use crate::cli::Call;
use crate::protocol::{Request, Response};

/// Runs `flux uptime`; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let (started, now) = match call.conn() {
        Ok(conn) => match conn.call(&Request::Ping) {
            Ok(Response::Pong { started, now, .. }) => (started, now),
            Ok(other) => {
                eprintln!("flux-uptime: Error fetching broker state: {other:?}");
                return 1;
            }
            Err(error) => {
                eprintln!("flux-uptime: Error fetching broker state: {error}");
                return 1;
            }
        },
        Err(e) => {
            eprintln!(
                "flux-uptime: flux_open: mock-cluster daemon not reachable at {}: {}",
                e.socket.display(),
                e.error
            );
            return 1;
        }
    };
    let owner = std::fs::metadata(&call.dir)
        .ok()
        .and_then(|m| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(m.uid())).ok())
        .flatten()
        .map_or_else(|| "flux".to_string(), |user| user.name);
    let size = crate::config::Cluster::load(&crate::daemon::stored_config_path(&call.dir))
        .unwrap_or_else(|_| crate::config::Cluster::embedded_default())
        .nodes
        .len();
    println!("{}", line(now, now - started, &owner, size));
    0
}

/// The line for an instance up `duration` simulated seconds at `now`.
fn line(now: f64, duration: f64, owner: &str, size: usize) -> String {
    use chrono::TimeZone;
    let clock = match chrono::Local.timestamp_opt(now.floor() as i64, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%T").to_string()
        }
        chrono::LocalResult::None => "00:00:00".into(),
    };
    format!(
        " {clock} run {},  owner {owner},  depth 0,  size {size}",
        fsd_c(duration.max(0.0), 2)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_uptimes_fields_and_spacing() {
        let shown = line(0.0, 4200.0, "flux", 4);
        assert!(shown.starts_with(' '), "{shown}");
        assert_eq!(&shown[9..], " run 1.2h,  owner flux,  depth 0,  size 4");
        assert!(line(0.0, 42.0, "ci", 1).ends_with(" run 42s,  owner ci,  depth 0,  size 1"));
    }
}
