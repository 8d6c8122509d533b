//! `mock-cluster import`: a site's cluster, simulated.
//!
//! The Slurm stories read `tests/fixtures/slurm-22.05-capture/`, which `ci/slurm capture`
//! wrote from a real Slurm 22.05 slurmctld (see its README.md); with real Slurm on this
//! machine (`BATCHCI_REAL_SLURM=1` or `CI=true`) they also capture afresh and import the running
//! cluster live. The PBS stories read samples written in the formats OpenPBS prints (sources
//! cited at each).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestCluster, exe};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

fn capture_dir() -> PathBuf {
    fixtures("slurm-22.05-capture")
}

/// Runs `mock-cluster ARGS` in `dir`: (stdout, stderr, exit code).
fn mock_cluster(dir: &Path, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(exe())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Imports the capture in `dir` (the multi-line or the `-o` form).
fn import_capture(dir: &Path, one_line: bool) -> String {
    let (nodes, partitions) = if one_line {
        (
            "scontrol-o-show-nodes.txt",
            "scontrol-o-show-partitions.txt",
        )
    } else {
        ("scontrol-show-nodes.txt", "scontrol-show-partitions.txt")
    };
    let (out, err, code) = mock_cluster(
        dir,
        &[
            "import",
            "slurm",
            "--nodes",
            nodes,
            "--partitions",
            partitions,
            "--config",
            "scontrol-show-config.txt",
            "--qos",
            "sacctmgr-n-P-show-qos.txt",
        ],
    );
    assert_eq!((code, err.as_str()), (0, ""), "import failed");
    out
}

/// The cluster file without its first line (which names the files read).
fn body(toml: &str) -> String {
    toml.lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// What real sinfo printed for nodes no slurmd ever registered, as a simulated cluster prints
/// them. The capture's controller runs without slurmd (a second slurmd on this machine would
/// register with the running cluster's controller too), so its nodes stay UNKNOWN: `unk` in the
/// short state column, `unknown` in the long one. A simulated node starts idle. Only the state
/// column is rewritten; every other character is compared as captured.
fn normalise_unknown(text: &str) -> String {
    text.lines()
        .map(|line| {
            // `%T` (long, unpadded at the end of a line): `unknown` is `idle`.
            let line = match line.strip_suffix(" unknown") {
                Some(rest) => format!("{rest} idle"),
                None => line.to_string(),
            };
            // `%.6t` (right aligned: `   unk`) and `%6t` (left aligned: `unk   `) keep their width.
            let line = line
                .replacen("    unk ", "   idle ", 1)
                .replacen(" unk   ", " idle  ", 1);
            line + "\n"
        })
        .collect()
}

#[test]
fn the_capture_imports_to_a_cluster_file_mock_cluster_accepts() {
    let dir = capture_dir();
    let toml = import_capture(&dir, false);
    insta::assert_snapshot!("slurm_capture", toml);
    // The one-line form (`scontrol -o`) says the same.
    assert_eq!(body(&import_capture(&dir, true)), body(&toml));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("site.toml");
    std::fs::write(&file, &toml).unwrap();
    let (out, err, code) = mock_cluster(tmp.path(), &["check-config", "site.toml"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            "site.toml: ok: cluster capture, 16 nodes, 3 partitions\n",
            ""
        )
    );
}

#[test]
fn the_simulated_cluster_prints_what_real_sinfo_printed() {
    let dir = capture_dir();
    let cluster = TestCluster::with_config(&import_capture(&dir, false));
    let captured = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    let (out, err, code) = cluster.run("sinfo", &[]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, normalise_unknown(&captured("sinfo.txt")));
    let (out, _, _) = cluster.run("sinfo", &["-o", "%P %a %l %D %c %m %f %N"]);
    assert_eq!(out, captured("sinfo-o.txt"));
}

/// The rows of `sinfo -N` output, blanks collapsed, sorted.
fn rows(text: &str) -> Vec<String> {
    let mut rows: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    rows.sort();
    rows
}

/// `sinfo -N` lists the same node/partition rows as real Slurm did. Compared as sorted rows:
/// the simulated `sinfo -N` prints the rows partition by partition where Slurm sorts them by
/// node name (and orders one node's partitions differently from run to run), and its NODELIST
/// column is narrower (see the exact comparison below).
#[test]
fn the_simulated_cluster_lists_the_captured_nodes() {
    let dir = capture_dir();
    let cluster = TestCluster::with_config(&import_capture(&dir, false));
    let captured = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    let (out, _, _) = cluster.run("sinfo", &["-N"]);
    assert_eq!(
        rows(&out),
        rows(&normalise_unknown(&captured("sinfo-N.txt")))
    );
    let (out, _, _) = cluster.run("sinfo", &["-N", "-o", "%N %P %c %m %f %T"]);
    assert_eq!(
        rows(&out),
        rows(&normalise_unknown(&captured("sinfo-N-o.txt")))
    );
}

/// Exactly as captured: rows by node name, NODELIST 9 wide. Real Slurm's order of one node's
/// partitions varies from run to run (see `a_fresh_capture_imports_like_the_committed_one`);
/// this capture has them in declaration order, the simulated cluster's rule.
#[test]
fn the_simulated_sinfo_n_prints_exactly_what_real_sinfo_printed() {
    let dir = capture_dir();
    let cluster = TestCluster::with_config(&import_capture(&dir, false));
    let captured = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    let (out, _, _) = cluster.run("sinfo", &["-N"]);
    assert_eq!(out, normalise_unknown(&captured("sinfo-N.txt")));
    let (out, _, _) = cluster.run("sinfo", &["-N", "-o", "%N %P %c %m %f %T"]);
    assert_eq!(out, normalise_unknown(&captured("sinfo-N-o.txt")));
}

#[test]
fn normalising_touches_only_the_state_column() {
    assert_eq!(
        normalise_unknown(
            "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\ndebug*       up      30:00     12    unk node[01-12]\n"
        ),
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\ndebug*       up      30:00     12   idle node[01-12]\n"
    );
    assert_eq!(
        normalise_unknown("gpu01          1       gpu unk   \nn1 gpu 8 64000 gpu unknown\n"),
        "gpu01          1       gpu idle  \nn1 gpu 8 64000 gpu idle\n"
    );
}

// ---- Real Slurm -------------------------------------------------------------------------------

/// Whether the real-Slurm stories must run (as the differential suite decides:
/// `conformance/tests/differential/mod.rs` `real_required`).
fn real_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("BATCHCI_REAL_SLURM").is_ok_and(|v| v == "1")
}

/// SLURM_CONF of a running real Slurm (`ci/slurm up`), else `None`; under `real_required` its
/// absence fails the test, elsewhere it is said loudly.
fn real_slurm(story: &str) -> Option<String> {
    let conf = std::env::var("SLURM_CONF")
        .ok()
        .filter(|c| Path::new(c).is_file());
    let up = conf.as_ref().is_some_and(|conf| {
        Command::new("scontrol")
            .arg("ping")
            .env("SLURM_CONF", conf)
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"))
    });
    if up {
        return conf;
    }
    assert!(
        !real_required(),
        "real Slurm is required (CI=true or BATCHCI_REAL_SLURM=1) but no controller answers at SLURM_CONF={conf:?}"
    );
    eprintln!(
        "\n!!! IMPORT STORY `{story}` DID NOT RUN: no real Slurm (ci/slurm up; eval \"$(ci/slurm env)\")\n"
    );
    None
}

/// A command of the real Slurm.
fn real(conf: &str, argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--live` against the running real cluster: the simulated cluster started from the import
/// lists the same partitions, limits, nodes, CPUs, memory and features. The state column is
/// left out: other suites run jobs on that cluster at the same time.
#[test]
fn a_live_import_of_the_running_cluster_round_trips() {
    let Some(conf) = real_slurm("a_live_import_of_the_running_cluster_round_trips") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(exe())
        .args(["import", "slurm", "--live"])
        .env("SLURM_CONF", &conf)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let toml = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        toml.starts_with(
            "# Imported by `mock-cluster import slurm` from: scontrol show nodes, scontrol show partitions, scontrol show config"
        ),
        "{toml}"
    );
    let format = "%P %a %l %D %c %m %f %N";
    let cluster = TestCluster::with_config(&toml);
    let (sim, err, code) = cluster.run("sinfo", &["-o", format]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(sim, real(&conf, &["sinfo", "-o", format]));
    let (sim, _, _) = cluster.run("sinfo", &["-N", "-o", "%N %P %c %m %f"]);
    assert_eq!(
        rows(&sim),
        rows(&real(&conf, &["sinfo", "-N", "-o", "%N %P %c %m %f"]))
    );
}

/// `ci/slurm capture` (about a second) captures what is committed: importing the fresh capture
/// gives the same cluster file.
#[test]
fn a_fresh_capture_imports_like_the_committed_one() {
    if real_slurm("a_fresh_capture_imports_like_the_committed_one").is_none() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/slurm");
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .arg("capture")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "ci/slurm capture took {:?}",
        started.elapsed()
    );
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    for file in [
        "scontrol-show-nodes.txt",
        "scontrol-o-show-nodes.txt",
        "scontrol-show-partitions.txt",
        "scontrol-o-show-partitions.txt",
        "sinfo.txt",
        "sinfo-o.txt",
    ] {
        assert_eq!(read(tmp.path(), file), read(&capture_dir(), file), "{file}");
    }
    // Real `sinfo -N` sorts its rows by node name only: the rows of one node in several
    // partitions come in either order from one run to the next (`debug*` or `batch` first).
    for file in ["sinfo-N.txt", "sinfo-N-o.txt"] {
        assert_eq!(
            rows(&read(tmp.path(), file)),
            rows(&read(&capture_dir(), file)),
            "{file}"
        );
    }
    assert_eq!(
        body(&import_capture(tmp.path(), false)),
        body(&import_capture(&capture_dir(), false))
    );
}

// ---- PBS --------------------------------------------------------------------------------------

/// The PBS samples in `tests/fixtures/pbs/`, in the formats OpenPBS prints:
/// - `pbsnodes-av.txt`: `src/cmds/pbsnodes.c` `prt_node` (the name, then `     attr = value`
///   with five blanks, a blank line after each node); attributes as in the `pbsnodes -a` sample
///   of OpenPBS's `INSTALL`; `queue` and `resources_available.ngpus` from
///   `pbs_node_attributes(7B)`, sizes as `pbs_resources(7B)` writes them (`32gb`, `33554432kb`).
/// - `qstat-Qf.txt`: `src/cmds/qstat.c` `display_statque` (`Queue: <name>`) and `prt_attr`
///   (`    attr = value`, four blanks; values longer than a line continue after a tab);
///   attributes from `pbs_queue_attributes(7B)`.
/// - `qmgr-p-s.txt`: `src/cmds/qmgr.c` (`create queue <name>`, `set queue <name> attr = value`,
///   `set server attr = value`), the server attributes `src/cmds/scripts/pbs_habitat.in` sets.
#[test]
fn a_pbs_cluster_imports_from_pbsnodes_and_qstat() {
    let dir = fixtures("pbs");
    let (toml, err, code) = mock_cluster(
        &dir,
        &[
            "import",
            "pbs",
            "--nodes",
            "pbsnodes-av.txt",
            "--queues",
            "qstat-Qf.txt",
            "--server",
            "qmgr-p-s.txt",
            "--cluster-name",
            "pbs01",
        ],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    insta::assert_snapshot!("pbs_samples", toml);
    let cluster = TestCluster::with_config(&toml);
    let (out, _, code) = cluster.run("sinfo", &["-o", "%P %a %l %D %c %m %N"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "PARTITION AVAIL TIMELIMIT NODES CPUS MEMORY NODELIST\n\
         workq up 1-00:00:00 3 8 32768 cn[01-03]\n\
         long* up 7-00:00:00 3 8 32768 cn[01-03]\n\
         gpu down 4:00:00 1 16 131072 gn01\n"
    );
    // Without the server's settings the first queue is the default, and the output says so.
    let (toml, _, code) = mock_cluster(
        &dir,
        &[
            "import",
            "pbs",
            "--nodes",
            "pbsnodes-av.txt",
            "--queues",
            "qstat-Qf.txt",
            "--cluster-name",
            "pbs01",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        toml.lines().nth(1),
        Some("# default queue: workq, the first queue (no `qmgr -c 'p s'` output was given)")
    );
}

/// `import pbs --live` runs `pbsnodes -av`, `qstat -Qf` and `qmgr -c 'p s'` from PATH and
/// imports what they print as the files would be: here commands on PATH that print the
/// samples (no PBS server runs here); a `qmgr` that refuses (not a manager) leaves the first
/// queue the default, as without `--server`.
#[test]
fn a_live_pbs_import_reads_the_commands_on_path() {
    use std::os::unix::fs::PermissionsExt;
    let samples = fixtures("pbs");
    let bin = tempfile::tempdir().unwrap();
    let stub = |name: &str, body: String| {
        let path = bin.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let cat = |args: &str, file: &str| {
        format!(
            "[ \"$*\" = \"{args}\" ] || {{ echo \"unexpected: $*\" >&2; exit 9; }}\nexec cat {}",
            samples.join(file).display()
        )
    };
    stub("pbsnodes", cat("-av", "pbsnodes-av.txt"));
    stub("qstat", cat("-Qf", "qstat-Qf.txt"));
    stub("qmgr", cat("-c p s", "qmgr-p-s.txt"));
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let live = |path: &str| {
        let out = Command::new(exe())
            .args(["import", "pbs", "--live", "--cluster-name", "pbs01"])
            .env("PATH", path)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    };
    let (toml, err, code) = live(&path);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(
        toml.lines().next(),
        Some("# Imported by `mock-cluster import pbs` from: pbsnodes -av, qstat -Qf, qmgr -c p s")
    );
    let (from_files, _, _) = mock_cluster(
        &samples,
        &[
            "import",
            "pbs",
            "--nodes",
            "pbsnodes-av.txt",
            "--queues",
            "qstat-Qf.txt",
            "--server",
            "qmgr-p-s.txt",
            "--cluster-name",
            "pbs01",
        ],
    );
    assert_eq!(body(&toml), body(&from_files));

    stub(
        "qmgr",
        "echo 'qmgr: Unauthorized Request' >&2; exit 1".into(),
    );
    let (toml, _, code) = live(&path);
    assert_eq!(code, Some(0));
    assert_eq!(
        toml.lines().nth(1),
        Some("# default queue: workq, the first queue (no `qmgr -c 'p s'` output was given)")
    );
    stub(
        "pbsnodes",
        "echo 'pbsnodes: Server has no node list' >&2; exit 1".into(),
    );
    let (toml, err, code) = live(&path);
    assert_eq!(
        (code, toml.as_str(), err.as_str()),
        (
            Some(1),
            "",
            "mock-cluster: error: `pbsnodes -av`: exit status: 1: pbsnodes: Server has no node list\n"
        )
    );
}

// ---- Bad input --------------------------------------------------------------------------------

/// Bad input is refused with the file and the line, exit code 2, nothing on stdout.
#[test]
fn bad_input_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(tmp.path().join(name), text).unwrap();
    let capture = capture_dir();
    for file in [
        "scontrol-show-nodes.txt",
        "scontrol-show-partitions.txt",
        "scontrol-show-config.txt",
    ] {
        std::fs::copy(capture.join(file), tmp.path().join(file)).unwrap();
    }
    write(
        "garbage.txt",
        "NodeName=n1 CPUTot=2 RealMemory=100\n\u{1}\u{2} binary junk\n",
    );
    write(
        "units.txt",
        "NodeName=n1 Arch=x86_64 CoresPerSocket=1\n   CPUTot=2\n   RealMemory=16G\n",
    );
    write("missing.txt", "NodeName=n1 CPUTot=2\n");
    write(
        "pbsmem.txt",
        "cn01\n     resources_available.ncpus = 8\n     resources_available.mem = 32 gigs\n",
    );
    write(
        "queues.txt",
        "Queue: workq\n    queue_type = Execution\n    enabled = True\n    started = True\n",
    );
    let slurm = |nodes: &str, partitions: &str| -> Vec<String> {
        [
            "import",
            "slurm",
            "--nodes",
            nodes,
            "--partitions",
            partitions,
            "--cluster-name",
            "c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            slurm("garbage.txt", "scontrol-show-partitions.txt"),
            "mock-cluster: error: garbage.txt:2: expected `Key=Value`, found `\u{1}\u{2}`\n",
        ),
        (
            slurm("units.txt", "scontrol-show-partitions.txt"),
            "mock-cluster: error: units.txt:3: node `n1`: `RealMemory=16G`: unknown unit or not a number (scontrol prints whole megabytes)\n",
        ),
        (
            slurm("missing.txt", "scontrol-show-partitions.txt"),
            "mock-cluster: error: missing.txt:1: node `n1`: no `RealMemory=`\n",
        ),
        (
            slurm("scontrol-show-partitions.txt", "scontrol-show-nodes.txt"),
            "mock-cluster: error: scontrol-show-partitions.txt:1: expected a `NodeName=` record (the output of `scontrol show nodes`), found `PartitionName=`\n",
        ),
        (
            slurm("scontrol-show-nodes.txt", "scontrol-show-config.txt"),
            "mock-cluster: error: scontrol-show-config.txt:1: expected `Key=Value`, found `Configuration`\n",
        ),
        (
            slurm("absent.txt", "scontrol-show-partitions.txt"),
            "mock-cluster: error: absent.txt: cannot read: No such file or directory (os error 2)\n",
        ),
        (
            [
                "import",
                "slurm",
                "--nodes",
                "scontrol-show-nodes.txt",
                "--partitions",
                "scontrol-show-partitions.txt",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            "mock-cluster: error: scontrol-show-nodes.txt:1: the cluster's name is not in this output: give --cluster-name NAME, or --config FILE with the output of `scontrol show config`\n",
        ),
        (
            [
                "import",
                "pbs",
                "--nodes",
                "pbsmem.txt",
                "--queues",
                "queues.txt",
                "--cluster-name",
                "p",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            "mock-cluster: error: pbsmem.txt:3: node `cn01`: `resources_available.mem = 32 gigs`: unknown unit or not a size (b, kb, mb, gb, tb, pb)\n",
        ),
        (
            [
                "import",
                "pbs",
                "--nodes",
                "scontrol-show-nodes.txt",
                "--queues",
                "queues.txt",
                "--cluster-name",
                "p",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            "mock-cluster: error: scontrol-show-nodes.txt:1: expected a node name, found `NodeName=gpu01 CoresPerSocket=1`\n",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, err, code) = mock_cluster(tmp.path(), &args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (2, "", expected),
            "{args:?}"
        );
    }
}

#[test]
fn import_help_shows_examples() {
    let (out, _, code) = mock_cluster(Path::new("."), &["import", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("mock-cluster import slurm --live >site.toml"),
        "{out}"
    );
    let (out, _, code) = mock_cluster(Path::new("."), &["import", "slurm", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--nodes <FILE>") && out.contains("# not imported: ..."),
        "{out}"
    );
}
