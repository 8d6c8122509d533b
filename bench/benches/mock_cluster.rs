//! Criterion benches of the simulated cluster: a fake `sbatch` process round trip, and one
//! submission through the daemon protocol. `mock-cluster-bench` (src/bin) reports the same
//! targets as JSON next to real `sbatch`.

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use mock_cluster::client::Conn;
use mock_cluster::model::JobKind;
use mock_cluster::protocol::{Request, Response};

const CLUSTER: &str = r#"
cluster_name = "bench"
[[nodes]]
names = "node[001-100]"
cpus = 64
memory_mb = 256000
[[partitions]]
name = "debug"
nodes = "node[001-100]"
default = true
"#;

fn mock_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOCK_CLUSTER_BIN") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    ["release", "debug"]
        .iter()
        .map(|p| root.join("target").join(p).join("mock-cluster"))
        .find(|p| p.exists())
}

fn benches(c: &mut Criterion) {
    let Some(bin) = mock_bin() else {
        eprintln!(
            "mock-cluster binary not found: run `cargo build --release -p mock-cluster` first"
        );
        return;
    };
    let Ok(tmp) = tempfile::tempdir() else { return };
    let cfg = tmp.path().join("cluster.toml");
    let state = tmp.path().join("state");
    if std::fs::write(&cfg, CLUSTER).is_err() {
        return;
    }
    let started = Command::new(&bin)
        .args(["start", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .status()
        .is_ok_and(|s| s.success());
    let env_ok = Command::new(&bin)
        .args(["env", "--state-dir"])
        .arg(&state)
        .output()
        .is_ok_and(|o| o.status.success());
    if !started || !env_ok {
        eprintln!("could not start mock-cluster in {}", state.display());
        return;
    }
    let fake = state.join("bin").join("sbatch");
    c.bench_function("fake_sbatch_round_trip", |b| {
        b.iter(|| {
            Command::new(&fake)
                .args(["--hold", "--parsable", "--wrap", "true"])
                .env("MOCK_CLUSTER_STATE_DIR", &state)
                .current_dir(tmp.path())
                .output()
                .map(|o| o.status.success())
        })
    });
    if let Ok(mut conn) = Conn::connect(&state) {
        let r = mock_cluster::cli::slurm::ResourceOpts {
            hold: true,
            ..Default::default()
        };
        let mut req = mock_cluster::cli::slurm::build_request(
            JobKind::Batch,
            &r,
            "bench",
            Default::default(),
            "(null)".into(),
        );
        req.script = Some("#!/bin/sh\ntrue\n".into());
        c.bench_function("daemon_submit", |b| {
            b.iter(|| {
                matches!(
                    conn.call(&Request::Submit {
                        req: Box::new(req.clone()),
                        wait: false
                    }),
                    Ok(Response::Submitted { .. })
                )
            })
        });
    }
    let _ = Command::new(&bin)
        .args(["stop", "--state-dir"])
        .arg(&state)
        .status();
}

criterion_group!(mock_cluster_benches, benches);
criterion_main!(mock_cluster_benches);
