//! batchci's own log as an admin meets it before any job: the startup line, what a wrong
//! `BATCHCI_LOG` does, and the JSON form. (The per-job lines are pinned end to end in
//! `conformance/tests/admin_log.rs`.)

/// `batchci run` of a configuration without runners (it stops right after its startup line),
/// with `env`: its standard error, line by line.
fn run_without_runners(env: &[(&str, &str)], args: &[&str]) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n",
            dir.path().join("state").display().to_string()
        ),
    )
    .unwrap();
    let mut command = assert_cmd::Command::cargo_bin("batchci").unwrap();
    command
        .env_remove("BATCHCI_LOG")
        .env_remove("BATCHCI_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .args(args)
        .args(["run", "--config"])
        .arg(&config);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr =
        String::from_utf8_lossy(&output.stderr).replace(&dir.path().display().to_string(), "[dir]");
    let time = regex::Regex::new(r"^\d{4}-\d\d-\d\dT[\d:.]+Z  ").unwrap();
    let lines = stderr
        .lines()
        .map(|l| time.replace(l, "").into_owned())
        .collect();
    (dir, lines)
}

#[test]
fn run_starts_with_one_line_naming_version_config_and_state_dir() {
    let (_dir, lines) = run_without_runners(&[], &[]);

    assert_eq!(
        lines,
        [
            format!(
                "INFO batchci starting version={} config=[dir]/config.toml state_dir=[dir]/state concurrent=1 runners=\"\"",
                env!("CARGO_PKG_VERSION")
            ),
            "batchci: the configuration has no [[runners]]; add one with `batchci register`"
                .to_string(),
        ]
    );
}

#[test]
fn a_batchci_log_that_is_not_a_filter_is_said_and_the_configured_level_used() {
    let (_dir, lines) = run_without_runners(&[("BATCHCI_LOG", "info,[")], &[]);

    assert!(
        lines[0].starts_with("WARN BATCHCI_LOG=\"info,[\" is not a filter ("),
        "{lines:#?}"
    );
    assert!(lines[0].ends_with("); logging at info"), "{lines:#?}");
    assert!(lines[1].starts_with("INFO batchci starting "), "{lines:#?}");
}

#[test]
fn batchci_log_raises_the_level_over_the_configuration() {
    let (_dir, quiet) = run_without_runners(&[("BATCHCI_LOG", "error")], &[]);

    assert_eq!(
        quiet,
        ["batchci: the configuration has no [[runners]]; add one with `batchci register`"]
    );
}

#[test]
fn log_format_json_from_the_flag_or_the_environment_writes_objects() {
    for (env, args) in [
        (vec![], vec!["--log-format", "json"]),
        (vec![("BATCHCI_LOG_FORMAT", "json")], vec![]),
    ] {
        let (_dir, lines) = run_without_runners(&env, &args);

        let object: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(object["message"], "batchci starting");
        assert_eq!(object["level"], "INFO");
        assert_eq!(object["config"], "[dir]/config.toml");
        assert_eq!(object["concurrent"], 1);
        assert!(object["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn no_colour_codes_on_a_pipe_even_without_no_color() {
    let (_dir, lines) = run_without_runners(&[], &[]);

    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "{lines:#?}");
}
