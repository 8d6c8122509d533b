//! `custom-executor-conformance`, the custom-executor driver as a tool: its report on
//! batchci's own custom mode (every scenario holds) and on the sample shell-script executor of
//! `examples/sbatch-custom-executor` (the pending-cancel trap and more), and its errors on
//! bad arguments.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tool, built by cargo for this test.
const TOOL: &str = env!("CARGO_BIN_EXE_custom-executor-conformance");

/// The sample executor's directory.
fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sbatch-custom-executor")
}

/// Runs the tool with `args`, writing its reports into `dir`; returns its output and the
/// Markdown and JUnit files.
fn conformance(dir: &Path, args: &[&str]) -> (Output, String, String) {
    let markdown = dir.join("report.md");
    let junit = dir.join("report.xml");
    let output = Command::new(TOOL)
        .args(args)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--junit")
        .arg(&junit)
        .env_remove("MOCK_CLUSTER_STATE_DIR")
        .output()
        .expect("the tool runs");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    (output, read(&markdown), read(&junit))
}

/// `text` with `dir` as `<dir>`, the sample's directory as `<sample>` and Slurm job ids as
/// `<id>`, the only parts that change from run to run.
fn normalised(text: &str, dir: &Path) -> String {
    let text = text
        .replace(&sample_dir().display().to_string(), "<sample>")
        .replace(&dir.display().to_string(), "<dir>");
    regex::Regex::new(r"Slurm job \d+")
        .expect("a valid pattern")
        .replace_all(&text, "Slurm job <id>")
        .into_owned()
}

/// A gitlab-runner config.toml whose `[runners.custom]` runs `batchci custom <stage>` with a
/// Slurm configuration that passes the simulated cluster's variables on.
fn batchci_runner_config(dir: &Path) -> PathBuf {
    let batchci_config = dir.join("batchci.toml");
    std::fs::write(
        &batchci_config,
        format!(
            "[general]\nexecutor = \"slurm\"\ndata_dir = {data:?}\n\n[batch]\nenv_vars = [\"MOCK_CLUSTER_STATE_DIR\", \"MOCK_CLUSTER_NO_AUTOSTART\"]\npoll_interval = \"100ms\"\nnfs_timeout = \"5s\"\n",
            data = dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    let batchci = support::workspace_binary("batchci").display().to_string();
    let mut custom = String::new();
    for stage in ["config", "prepare", "run", "cleanup"] {
        custom.push_str(&format!(
            "    {stage}_exec = {batchci:?}\n    {stage}_args = [\"custom\", \"{stage}\", \"--config\", {config:?}]\n",
            config = batchci_config.display().to_string()
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!("concurrent = 1\n\n[[runners]]\n  name = \"batchci\"\n  executor = \"custom\"\n  [runners.custom]\n{custom}"),
    )
    .unwrap();
    path
}

#[test]
fn batchci_custom_mode_holds_every_scenario_and_the_tool_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = batchci_runner_config(dir.path());

    let (output, markdown, junit) = conformance(
        dir.path(),
        &[
            "--gitlab-runner-config",
            config.to_str().unwrap(),
            "--patience",
            "10",
        ],
    );

    assert_eq!(output.status.code(), Some(0), "{markdown}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), markdown);
    insta::assert_snapshot!("batchci_report", normalised(&markdown, dir.path()));
    insta::assert_snapshot!("batchci_junit", normalised(&junit, dir.path()));
}

#[test]
fn the_sample_script_executor_falls_into_the_pending_cancel_trap_and_the_tool_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let sample = sample_dir();
    let spec = ["config", "prepare", "run", "cleanup"]
        .map(|stage| {
            format!(
                "{stage}_exec={}",
                sample.join(format!("{stage}.sh")).display()
            )
        })
        .join(",");

    let (output, markdown, junit) =
        conformance(dir.path(), &["--custom-executor", &spec, "--patience", "5"]);

    assert_eq!(output.status.code(), Some(1), "{markdown}");
    insta::assert_snapshot!("sample_report", normalised(&markdown, dir.path()));
    insta::assert_snapshot!("sample_junit", normalised(&junit, dir.path()));
}

/// What the tool says and its exit code, for arguments it refuses.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(TOOL)
        .args(args)
        .output()
        .expect("the tool runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_custom_executor_text_is_refused_with_exit_2() {
    assert_eq!(
        refused(&["--custom-executor", "run_exe=/opt/run.sh"]),
        (
            Some(2),
            "custom-executor-conformance: --custom-executor: unknown key \"run_exe\"; known: config_exec, prepare_exec, run_exec, cleanup_exec and their *_args\n".into()
        )
    );
    assert_eq!(
        refused(&["--custom-executor", "config_exec=/opt/config.sh"]),
        (
            Some(2),
            "custom-executor-conformance: --custom-executor: run_exec is required\n".into()
        )
    );
    assert_eq!(
        refused(&["--custom-executor", "/opt/run.sh"]),
        (
            Some(2),
            "custom-executor-conformance: --custom-executor: \"/opt/run.sh\" is not KEY=VALUE (e.g. run_exec=/opt/run.sh)\n".into()
        )
    );
}

#[test]
fn a_config_toml_without_runners_custom_is_refused_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "concurrent = 1\n\n[[runners]]\n  name = \"shell\"\n  executor = \"shell\"\n",
    )
    .unwrap();

    let (code, stderr) = refused(&["--gitlab-runner-config", config.to_str().unwrap()]);

    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        format!(
            "custom-executor-conformance: {}:3: runner \"shell\" has no [runners.custom] section (key runners.custom; executor = \"shell\")\n",
            config.display()
        )
    );
}

#[test]
fn a_runner_the_config_toml_lacks_is_refused_naming_the_file() {
    let (code, stderr) = refused(&[
        "--gitlab-runner-config",
        sample_dir().join("config.toml").to_str().unwrap(),
        "--runner",
        "nonexistent",
    ]);

    assert_eq!(code, Some(2));
    assert_eq!(
        normalised(&stderr, Path::new("/nowhere")),
        "custom-executor-conformance: <sample>/config.toml:1: no [[runners]] entry named \"nonexistent\" (key runners)\n"
    );
}
