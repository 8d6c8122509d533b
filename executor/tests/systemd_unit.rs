//! The systemd unit the admin's guide installs (`docs/examples/batchci.service`) is one that
//! systemd accepts, and one that keeps batchci's drain working.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn docs_example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .join(name)
}

fn unit() -> String {
    std::fs::read_to_string(docs_example("batchci.service")).expect("the example unit")
}

/// The value of `key=` in the unit, from its one line that sets it.
fn setting(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    let values: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .collect();
    assert_eq!(values.len(), 1, "{key} is set once: {values:?}");
    values[0].to_string()
}

#[test]
fn the_example_unit_passes_systemd_analyze_verify() {
    let found = Command::new("systemd-analyze").arg("--version").output();
    if found.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing: ci/test installs it (Debian package systemd)"
        );
        eprintln!("systemd_unit: DID NOT RUN: systemd-analyze is not installed");
        return;
    }
    // ExecStart must name a program that exists here: the batchci just built stands in for
    // /usr/local/bin/batchci.
    let unit = unit().replace("/usr/local/bin/batchci", env!("CARGO_BIN_EXE_batchci"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batchci.service");
    std::fs::write(&path, unit).unwrap();

    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();

    // systemd-analyze exits 0 on settings it ignores, naming them on stderr: both must be
    // clean.
    assert_eq!(String::from_utf8_lossy(&verified.stderr), "");
    assert_eq!(String::from_utf8_lossy(&verified.stdout), "");
    assert!(verified.status.success());
}

/// systemd's default KillMode sends SIGTERM to every process of the service: the scheduler
/// commands and job shells would die with the drain's first SIGTERM. And its stop timeout
/// must outlast the sample configuration's `shutdown_timeout`, plus time for the cancels.
#[test]
fn the_example_unit_signals_batchci_alone_and_outwaits_its_drain() {
    let unit = unit();
    assert_eq!(setting(&unit, "KillMode"), "mixed");
    assert_eq!(setting(&unit, "KillSignal"), "SIGTERM");
    let config = batchci::config::Config::load(&docs_example("config.toml"))
        .expect("the example configuration loads");
    let stop_timeout: u64 = setting(&unit, "TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(!config.shutdown_timeout.is_zero());
    assert!(
        Duration::from_secs(stop_timeout) >= config.shutdown_timeout + Duration::from_secs(300),
        "TimeoutStopSec={stop_timeout} leaves less than 5 minutes after shutdown_timeout {:?}",
        config.shutdown_timeout
    );
    assert_eq!(
        setting(&unit, "ExecStart"),
        "/usr/local/bin/batchci run --config /etc/batchci/config.toml"
    );
}
