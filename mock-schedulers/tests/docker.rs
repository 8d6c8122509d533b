//! The fake `docker` (and `hostname`) of the simulated cluster, as the docker+slurm executor
//! uses them: a placeholder job tells its node and cores, the build runs in a container on
//! that node's Docker daemon. Each comment names where the pinned behaviour comes from:
//! `run-ref` is docs.docker.com/engine/reference/run/ (docker/cli `docs/reference/run.md`),
//! `cmd/<x>` docs.docker.com/engine/reference/commandline/<x>/, `cli <path>` and
//! `moby <path>` the v20.10.24 sources of docker/cli and moby/moby, `choice` a decision of
//! the simulation.

mod common;

use std::time::Duration;

use common::{TestCluster, wait_for};

/// Two nodes with a Docker daemon each; node03 has none.
const CLUSTER: &str = r#"
cluster_name = "batchci"
time_scale = 60.0
kill_wait = 2

[[nodes]]
names = "node[01-03]"
cpus = 2
memory_mb = 8000

[[partitions]]
name = "debug"
nodes = "node[01-03]"
default = true

[docker]
port = 2376
images = ["alpine", "debian:bookworm"]
nodes = "node[01-02]"
"#;

const NODE01: &str = "tcp://node01:2376";

fn cluster() -> TestCluster {
    TestCluster::with_config(CLUSTER)
}

fn tls_cluster() -> TestCluster {
    TestCluster::with_config(&CLUSTER.replace("port = 2376", "port = 2376\ntls = true"))
}

/// `docker ARGS` against the cluster, with no Docker variables of the caller's:
/// (stdout, stderr, exit code).
fn docker(c: &TestCluster, args: &[&str]) -> (String, String, i32) {
    docker_in(c, args, &[], None)
}

fn docker_in(
    c: &TestCluster,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (String, String, i32) {
    let mut cmd = c.cmd("docker");
    for var in [
        "DOCKER_HOST",
        "DOCKER_TLS_VERIFY",
        "DOCKER_TLS",
        "DOCKER_CERT_PATH",
        "DOCKER_CONFIG",
        "DOCKER_CONTEXT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", c.tmp.path())
        .args(args)
        .envs(env.iter().copied());
    if let Some(input) = stdin {
        cmd.write_stdin(input);
    }
    let out = cmd.output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// `docker -H tcp://node01:2376 ARGS`.
fn on_node01(c: &TestCluster, args: &[&str]) -> (String, String, i32) {
    let mut all = vec!["-H", NODE01];
    all.extend_from_slice(args);
    docker(c, &all)
}

/// A `docker` process in the background against node01.
fn spawn_on_node01(c: &TestCluster, args: &[&str]) -> std::process::Child {
    let mut all = vec!["-H", NODE01];
    all.extend_from_slice(args);
    let mut cmd = std::process::Command::new(c.state.join("bin").join("docker"));
    cmd.args(&all)
        .env("MOCK_CLUSTER_STATE_DIR", &c.state)
        .env("PATH", c.path_var())
        .env_remove("DOCKER_HOST")
        .current_dir(&c.work)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().unwrap()
}

fn inspect(c: &TestCluster, name: &str, format: &str) -> String {
    let (out, err, code) = on_node01(c, &["inspect", "-f", format, name]);
    assert_eq!(code, 0, "{err}");
    out.trim_end().to_string()
}

fn wait_status(c: &TestCluster, name: &str, status: &str) {
    wait_for(&format!("{name} to be {status}"), || {
        on_node01(c, &["inspect", "-f", "{{.State.Status}}", name])
            .0
            .trim()
            == status
    });
}

/// The CPUs this machine offers containers.
fn cpus() -> Vec<usize> {
    mock_cluster::cli::docker::engine::machine_cpus().0
}

#[test]
fn an_attached_run_reads_the_script_on_stdin_and_exits_with_its_code() {
    let c = cluster();
    // run-ref "Exit Status": otherwise the exit code of the contained command; cmd/run
    // `-i` keeps STDIN open, `--rm` removes the container when it exits.
    let (out, err, code) = docker_in(
        &c,
        &[
            "-H", NODE01, "run", "--rm", "-i", "--name", "build-1", "alpine", "sh", "-c", "sh -s",
        ],
        &[],
        Some("echo out; echo err >&2; exit 3\n"),
    );
    assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 3));
    let (out, _, code) = on_node01(&c, &["ps", "-a", "-q"]);
    assert_eq!((out.as_str(), code), ("", 0));
    // The call record keeps every docker call: program, argv, exit code (choice: like
    // every fake).
    let calls = c.admin(&["calls", "--json"]);
    let calls: serde_json::Value = serde_json::from_slice(&calls.stdout).unwrap();
    let runs: Vec<&serde_json::Value> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|call| call["program"] == "docker" && call["argv"][3] == "run")
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["exit_code"], 3);
    assert_eq!(runs[0]["argv"][8], "alpine");
}

#[test]
fn the_container_sees_only_its_own_environment_and_working_directory() {
    let c = cluster();
    let wd = c.tmp.path().join("builds/project");
    let wd = wd.display().to_string();
    // run-ref "ENV": Docker sets HOME, HOSTNAME (the container's host name, by default its
    // short id), PATH; the rest comes from -e and --env-file. cmd/run `-w`: the working
    // directory is created if it does not exist.
    std::fs::write(c.tmp.path().join("env.list"), "# comment\nFROM_FILE=1\n").unwrap();
    let env_file = c.tmp.path().join("env.list").display().to_string();
    let (out, err, code) = docker_in(
        &c,
        &[
            "-H",
            NODE01,
            "run",
            "--rm",
            "-e",
            "A=1",
            "-e",
            "PASSED",
            "--env-file",
            &env_file,
            "-w",
            &wd,
            "alpine",
            "sh",
            "-c",
            "pwd; env | sort",
        ],
        &[("PASSED", "yes")],
        None,
    );
    assert_eq!((err.as_str(), code), ("", 0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], wd);
    let keys: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    // PWD and SHLVL are the shell's own.
    let keys: Vec<&str> = keys
        .into_iter()
        .filter(|k| !["PWD", "SHLVL", "OLDPWD"].contains(k))
        .collect();
    assert_eq!(
        keys,
        ["A", "FROM_FILE", "HOME", "HOSTNAME", "PASSED", "PATH"]
    );
    assert!(lines.contains(&"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    assert!(lines.contains(&"PASSED=yes"));
    let hostname = lines.iter().find(|l| l.starts_with("HOSTNAME=")).unwrap();
    assert_eq!(hostname.len(), "HOSTNAME=".len() + 12);
}

#[test]
fn cpuset_cpus_binds_the_container_and_unavailable_cpus_are_refused() {
    let c = cluster();
    let cpus = cpus();
    // cmd/run `--cpuset-cpus`: CPUs in which to allow execution; the simulation applies
    // them with sched_setaffinity (choice), as seen in /proc/self/status.
    let mut seen = Vec::new();
    for cpu in cpus.iter().take(2) {
        let (out, err, code) = on_node01(
            &c,
            &[
                "run",
                "--rm",
                "--cpuset-cpus",
                &cpu.to_string(),
                "alpine",
                "sh",
                "-c",
                "grep Cpus_allowed_list /proc/self/status",
            ],
        );
        assert_eq!((err.as_str(), code), ("", 0));
        seen.push(out);
    }
    let expected: Vec<String> = cpus
        .iter()
        .take(2)
        .map(|c| format!("Cpus_allowed_list:\t{c}\n"))
        .collect();
    assert_eq!(seen, expected);
    // moby daemon/daemon_unix.go verifyPlatformContainerResources; cli run.go
    // reportError + runStartContainerErr: 125.
    let (_, available) = mock_cluster::cli::docker::engine::machine_cpus();
    let (out, err, code) = on_node01(
        &c,
        &["run", "--rm", "--cpuset-cpus", "0-4095", "alpine", "true"],
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "",
            format!(
                "docker: Error response from daemon: Requested CPUs are not available - requested 0-4095, available: {available}.\nSee 'docker run --help'.\n"
            )
            .as_str(),
            125
        )
    );
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    let c = cluster();
    // run-ref "User memory constraints": by default the kernel kills processes of a
    // container that is out of memory; inspect shows OOMKilled. The simulation sums the
    // resident memory of the container's processes every 50 ms and kills the largest
    // (choice, as the kernel's OOM killer picks its victim). `tail` keeps a line without a
    // newline in memory: 400 MB here, the limit is 20 MB; the shell reports 128+9.
    let (_, err, code) = on_node01(
        &c,
        &[
            "run",
            "--name",
            "hog",
            "--memory",
            "20m",
            "--memory-swap",
            "20m",
            "alpine",
            "sh",
            "-c",
            "head -c 400000000 /dev/zero | tail",
        ],
    );
    assert_eq!(code, 137, "{err}");
    assert_eq!(inspect(&c, "hog", "{{.State.OOMKilled}}"), "true");
    assert_eq!(
        inspect(&c, "hog", "{{.State.ExitCode}} {{.State.Status}}"),
        "137 exited"
    );
    // moby daemon_unix.go: `Minimum memory limit allowed is 6MB`.
    let (_, err, code) = on_node01(&c, &["run", "--rm", "-m", "4m", "alpine", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: Error response from daemon: Minimum memory limit allowed is 6MB.\nSee 'docker run --help'.\n",
            125
        )
    );
    // cli opts MemBytes: go-units RAMInBytes.
    let (_, err, code) = on_node01(&c, &["run", "--rm", "-m", "lots", "alpine", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'\nSee 'docker run --help'.\n",
            125
        )
    );
    // moby daemon_unix.go (20.10.24, cgroup v2): kernel memory is accepted with two
    // warnings (cli create.go prints the daemon's warnings).
    let (out, err, code) = on_node01(
        &c,
        &[
            "run",
            "--rm",
            "--kernel-memory",
            "50m",
            "alpine",
            "echo",
            "ok",
        ],
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "ok\n",
            "WARNING: Specifying a kernel memory limit is deprecated and will be removed in a future release.\nWARNING: Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.\n",
            0
        )
    );
}

#[test]
fn an_image_the_daemon_lacks_is_pulled_and_refused() {
    let c = cluster();
    // cli create.go: `Unable to find image '<ref>' locally`, then the pull; Docker Hub's
    // refusal as moby words it; run-ref "Exit Status": 125.
    let (out, err, code) = on_node01(&c, &["run", "--rm", "ci/nosuch", "true"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "",
            "Unable to find image 'ci/nosuch:latest' locally\ndocker: Error response from daemon: pull access denied for ci/nosuch, repository does not exist or may require 'docker login': denied: requested access to the resource is denied.\nSee 'docker run --help'.\n",
            125
        )
    );
    // cmd/run `--pull never`: no pull, the daemon's `No such image`.
    let (_, err, code) = on_node01(&c, &["run", "--rm", "--pull", "never", "busybox", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: Error response from daemon: No such image: busybox:latest.\nSee 'docker run --help'.\n",
            125
        )
    );
    // The images of [docker] images; a name without a tag is `:latest`.
    let (out, _, code) = on_node01(&c, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(
        (out.as_str(), code),
        ("alpine:latest\ndebian:bookworm\n", 0)
    );
    let (out, _, code) = on_node01(&c, &["run", "--rm", "debian:bookworm", "echo", "deb"]);
    assert_eq!((out.as_str(), code), ("deb\n", 0));
}

#[test]
fn a_command_that_is_not_there_or_cannot_run_is_127_or_126() {
    let c = cluster();
    // run-ref "Exit Status": 127 when the contained command cannot be found, 126 when it
    // cannot be invoked; the text is runc's (containerd 1.6, runc 1.1), without `See`.
    let (_, err, code) = on_node01(&c, &["run", "--rm", "alpine", "nosuchcmd"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH: unknown.\n",
            127
        )
    );
    let (_, err, code) = on_node01(&c, &["run", "--rm", "alpine", "/etc"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/etc\": permission denied: unknown.\n",
            126
        )
    );
    // --rm removed them (moby: AutoRemove also after a failed start).
    assert_eq!(on_node01(&c, &["ps", "-a", "-q"]).0, "");
}

#[test]
fn a_host_that_is_no_daemon_or_a_failed_node_cannot_be_reached() {
    let c = cluster();
    // moby client/errors.go ErrorConnectionFailed; cli run.go reportError (a trailing
    // `.` after the `?`) and 125; other commands print the error, exit 1.
    let unreachable = |host: &str| {
        format!(
            "docker: Cannot connect to the Docker daemon at {host}. Is the docker daemon running?.\nSee 'docker run --help'.\n"
        )
    };
    for host in [
        "tcp://node09:2376",
        "tcp://node03:2376",
        "tcp://node01:2375",
    ] {
        let (out, err, code) = docker(&c, &["-H", host, "run", "--rm", "alpine", "true"]);
        assert_eq!(
            (out.as_str(), err.as_str(), code),
            ("", unreachable(host).as_str(), 125)
        );
    }
    let (_, err, code) = docker(&c, &["-H", "tcp://node09:2376", "ps"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "Cannot connect to the Docker daemon at tcp://node09:2376. Is the docker daemon running?\n",
            1
        )
    );
    // DOCKER_HOST names the daemon when -H does not (cmd/cli "Environment variables").
    let (out, _, code) = docker_in(
        &c,
        &["ps", "-q"],
        &[("DOCKER_HOST", "tcp://node02:2376")],
        None,
    );
    assert_eq!((out.as_str(), code), ("", 0));
    // A node that is down: its daemon does not answer (choice: what a client sees of a
    // host that does not answer, moby client/request.go: a timeout is ErrorConnectionFailed).
    c.inject(&["fail-node", "node02"]);
    let (_, err, code) = docker(
        &c,
        &["-H", "tcp://node02:2376", "run", "--rm", "alpine", "true"],
    );
    assert_eq!(
        (err.as_str(), code),
        (unreachable("tcp://node02:2376").as_str(), 125)
    );
    c.inject(&["resume-node", "node02"]);
    let (out, _, code) = docker(
        &c,
        &[
            "-H",
            "tcp://node02:2376",
            "run",
            "--rm",
            "alpine",
            "echo",
            "up",
        ],
    );
    assert_eq!((out.as_str(), code), ("up\n", 0));
}

#[test]
fn tls_files_must_be_readable_and_a_tls_daemon_wants_tls() {
    let c = tls_cluster();
    let certs = c.tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let file = |name: &str| certs.join(name).display().to_string();
    // cli cli/command/cli.go + cli/context/tlsdata.go TLSDataFromFiles: each file is read
    // before anything else; `unable to resolve docker endpoint: open ...`, exit 1.
    let (out, err, code) = on_node01(
        &c,
        &[
            "--tlsverify",
            "--tlscacert",
            &file("ca.pem"),
            "--tlscert",
            &file("cert.pem"),
            "--tlskey",
            &file("key.pem"),
            "ps",
        ],
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "",
            format!(
                "unable to resolve docker endpoint: open {}: no such file or directory\n",
                file("ca.pem")
            )
            .as_str(),
            1
        )
    );
    // DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (cmd/cli): ca.pem, cert.pem, key.pem there.
    let cert_path = certs.display().to_string();
    let (_, err, code) = docker_in(
        &c,
        &["-H", NODE01, "ps"],
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &cert_path)],
        None,
    );
    assert_eq!(
        (err.as_str(), code),
        (
            format!(
                "unable to resolve docker endpoint: open {}: no such file or directory\n",
                file("ca.pem")
            )
            .as_str(),
            1
        )
    );
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(certs.join(name), "not checked\n").unwrap();
    }
    let (out, err, code) = docker_in(
        &c,
        &["-H", NODE01, "run", "--rm", "alpine", "echo", "secure"],
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &cert_path)],
        None,
    );
    assert_eq!((out.as_str(), err.as_str(), code), ("secure\n", "", 0));
    // A plain request to the TLS port: Go's TLS server answers `Client sent an HTTP
    // request to an HTTPS server.`; moby client/request.go: `Error response from daemon`.
    let (_, err, code) = on_node01(&c, &["ps"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "Error response from daemon: Client sent an HTTP request to an HTTPS server.\n",
            1
        )
    );
    let (_, err, code) = on_node01(&c, &["run", "--rm", "alpine", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: Error response from daemon: Client sent an HTTP request to an HTTPS server.\nSee 'docker run --help'.\n",
            125
        )
    );
    // TLS without a client certificate: dockerd --tlsverify refuses the handshake (moby
    // client/request.go).
    std::fs::remove_file(certs.join("cert.pem")).unwrap();
    let (_, err, code) = docker_in(
        &c,
        &["-H", NODE01, "ps"],
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &cert_path)],
        None,
    );
    assert_eq!(
        (err.as_str(), code),
        (
            "The server probably has client authentication (--tlsverify) enabled. Please check your TLS client certification settings: Get \"https://node01:2376/v1.41/containers/json\": remote error: tls: bad certificate\n",
            1
        )
    );
}

#[test]
fn a_name_in_use_is_a_conflict() {
    let c = cluster();
    let (id, _, code) = on_node01(&c, &["create", "--name", "build-7", "alpine", "true"]);
    assert_eq!(code, 0);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    // moby daemon/errors.go nameConflictError; cli run.go: 125.
    let (_, err, code) = on_node01(&c, &["run", "--rm", "--name", "build-7", "alpine", "true"]);
    assert_eq!(
        (err, code),
        (
            format!(
                "docker: Error response from daemon: Conflict. The container name \"/build-7\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.\nSee 'docker run --help'.\n"
            ),
            125
        )
    );
    // moby daemon/names.go: the allowed characters.
    let (_, err, code) = on_node01(&c, &["run", "--name", "a b", "alpine", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: Error response from daemon: Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed.\nSee 'docker run --help'.\n",
            125
        )
    );
}

#[test]
fn rm_force_of_a_running_container_ends_the_attached_run_with_137() {
    let c = cluster();
    let mut run = spawn_on_node01(
        &c,
        &[
            "run",
            "--rm",
            "-i",
            "--name",
            "busy",
            "alpine",
            "sh",
            "-c",
            "echo started; exec sleep 60",
        ],
    );
    wait_status(&c, "busy", "running");
    // cmd/rm `--force`: remove a running container, using SIGKILL; the attached client
    // ends with the container, 128+9.
    let (out, _, code) = on_node01(&c, &["rm", "-f", "busy"]);
    assert_eq!((out.as_str(), code), ("busy\n", 0));
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    // cli rm.go: a container that is not there is said, and with -f it is no error.
    let (out, err, code) = on_node01(&c, &["rm", "-f", "busy"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("", "Error: No such container: busy\n", 0)
    );
    let (_, err, code) = on_node01(&c, &["rm", "busy"]);
    assert_eq!(
        (err.as_str(), code),
        ("Error: No such container: busy\n", 1)
    );
}

#[test]
fn a_killed_client_leaves_its_container_running_until_kill() {
    let c = cluster();
    let mut run = spawn_on_node01(
        &c,
        &[
            "run",
            "--name",
            "orphan",
            "alpine",
            "sh",
            "-c",
            "exec sleep 60",
        ],
    );
    wait_status(&c, "orphan", "running");
    // choice (as with a real daemon): the container belongs to the daemon, not to the
    // client that started it.
    run.kill().unwrap();
    run.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(inspect(&c, "orphan", "{{.State.Running}}"), "true");
    // cmd/kill: SIGKILL by default; the name is printed.
    let (out, _, code) = on_node01(&c, &["kill", "orphan"]);
    assert_eq!((out.as_str(), code), ("orphan\n", 0));
    assert_eq!(
        inspect(&c, "orphan", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    // moby router postContainersKill: `Cannot kill container: <name>: ...`.
    let (_, err, code) = on_node01(&c, &["kill", "orphan"]);
    let id = inspect(&c, "orphan", "{{.Id}}");
    assert_eq!(
        (err, code),
        (
            format!(
                "Error response from daemon: Cannot kill container: orphan: Container {id} is not running\n"
            ),
            1
        )
    );
}

#[test]
fn a_detached_container_is_listed_inspected_and_logged() {
    let c = cluster();
    // cmd/run `-d`: prints the container's full id.
    let (id, _, code) = on_node01(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "svc",
            "-l",
            "com.batchci.job=42",
            "alpine",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; exec sleep 60",
        ],
    );
    assert_eq!(code, 0);
    let id = id.trim().to_string();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    // cmd/ps: filters and Go-template formats; running containers by default.
    let (out, _, code) = on_node01(
        &c,
        &[
            "ps",
            "--filter",
            "label=com.batchci.job=42",
            "--format",
            "{{.ID}} {{.Names}} {{.State}} {{.Label \"com.batchci.job\"}}",
        ],
    );
    assert_eq!((out, code), (format!("{} svc running 42\n", &id[..12]), 0));
    let (out, _, _) = on_node01(&c, &["ps", "--format", "table {{.Names}}\t{{.Image}}"]);
    assert_eq!(out, "NAMES     IMAGE\nsvc       alpine\n");
    // cmd/inspect: templates and the JSON list.
    assert_eq!(
        inspect(
            &c,
            "svc",
            "{{.Name}} {{.State.Status}} {{.State.Running}} {{.Id}}"
        ),
        format!("/svc running true {id}")
    );
    let (out, _, code) = on_node01(&c, &["inspect", &id[..12]]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["Id"], id.as_str());
    assert_eq!(json[0]["Config"]["Labels"]["com.batchci.job"], "42");
    assert_eq!(json[0]["State"]["Status"], "running");
    let (_, err, code) = on_node01(&c, &["inspect", "-f", "{{.State.Nope}}", "svc"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "template parsing error: template: :1:8: executing \"\" at <.State.Nope>: map has no entry for key \"Nope\"\n",
            1
        )
    );
    // cmd/logs: the container's stdout and stderr, each on its own stream.
    wait_for("the log", || {
        on_node01(&c, &["logs", "svc"]).0 == "to-out\n"
    });
    let (out, err, _) = on_node01(&c, &["logs", "svc"]);
    assert_eq!((out.as_str(), err.as_str()), ("to-out\n", "to-err\n"));
    // cmd/kill `-s`, cmd/wait: the exit code (143 = 128+SIGTERM).
    let (_, _, code) = on_node01(&c, &["kill", "-s", "TERM", "svc"]);
    assert_eq!(code, 0);
    let (out, _, code) = on_node01(&c, &["wait", "svc"]);
    assert_eq!((out.as_str(), code), ("143\n", 0));
    let (out, _, _) = on_node01(&c, &["ps", "-q"]);
    assert_eq!(out, "");
    let (out, _, _) = on_node01(
        &c,
        &[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.Names}} {{.Status}}",
        ],
    );
    assert!(out.starts_with("svc Exited (143) "), "{out}");
}

#[test]
fn unknown_options_and_commands_are_refused_as_the_cli_refuses_them() {
    let c = cluster();
    // cli cli/cobra.go FlagErrorFunc: 125 for every command.
    let (_, err, code) = on_node01(&c, &["run", "--bogus", "alpine"]);
    assert_eq!(
        (err.as_str(), code),
        ("unknown flag: --bogus\nSee 'docker run --help'.\n", 125)
    );
    let (_, err, code) = on_node01(&c, &["ps", "-Z"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "unknown shorthand flag: 'Z' in -Z\nSee 'docker ps --help'.\n",
            125
        )
    );
    let (_, err, code) = docker(&c, &["--bogus", "ps"]);
    assert_eq!(
        (err.as_str(), code),
        ("unknown flag: --bogus\nSee 'docker --help'.\n", 125)
    );
    // cli cmd/docker/docker.go.
    let (_, err, code) = on_node01(&c, &["frobnicate"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: 'frobnicate' is not a docker command.\nSee 'docker --help'\n",
            1
        )
    );
    // cli cli/required.go.
    let (_, err, code) = on_node01(&c, &["run"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "\"docker run\" requires at least 1 argument.\nSee 'docker run --help'.\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun a command in a new container\n",
            1
        )
    );
    let (out, _, code) = on_node01(&c, &["run", "--help"]);
    assert!(
        out.starts_with("\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n") && code == 0
    );
    // cmd/version `--format`.
    let (out, _, code) = on_node01(&c, &["version", "--format", "{{.Server.Version}}"]);
    assert_eq!((out.as_str(), code), ("20.10.24+dfsg1\n", 0));
}

#[test]
fn hostname_in_a_job_is_its_node_and_elsewhere_the_machine() {
    let c = cluster();
    // A job's processes run on its node, so `hostname` there names the node (the
    // docker+slurm executor's placeholder prints it); choice: the simulation passes it in
    // MOCK_CLUSTER_NODE.
    let id = c.submit(&[
        "-w",
        "node02",
        "-o",
        "job.out",
        "--wrap",
        "hostname; hostname -s; echo $MOCK_CLUSTER_NODE",
    ]);
    c.wait_state(id, "COMPLETED");
    let out = std::fs::read_to_string(c.path("job.out")).unwrap();
    assert_eq!(out, "node02\nnode02\nnode02\n");
    let (out, _, code) = c.run("srun", &["-w", "node01", "hostname"]);
    assert_eq!((out.as_str(), code), ("node01\n", 0));
    // Outside a job it is the real command.
    let real = mock_cluster::cli::hostname::real_hostname().expect("a hostname command");
    let expected = std::process::Command::new(real).output().unwrap();
    let (out, _, code) = c.run("hostname", &[]);
    assert_eq!((out.as_bytes(), code), (expected.stdout.as_slice(), 0));
}

#[test]
fn the_docker_table_of_the_cluster_file_is_optional_and_checked() {
    // choice: `[docker]` keys have defaults, so older cluster files keep loading.
    let c = TestCluster::default_cluster();
    let (out, _, code) = docker(
        &c,
        &[
            "-H",
            "tcp://node04:2376",
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ],
    );
    assert_eq!(
        (out.as_str(), code),
        (
            "alpine:latest\nbusybox:latest\ndebian:bookworm\nbatchci-busybox:latest\n",
            0
        )
    );
    let file = c.tmp.path().join("bad.toml");
    std::fs::write(
        &file,
        CLUSTER.replace("nodes = \"node[01-02]\"\n", "nodes = \"node09\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(common::exe())
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mock-cluster: error: {}:19: key `nodes`: node `node09` is not declared in [[nodes]]\n",
            file.display()
        )
    );
}

#[test]
fn a_created_container_starts_attached_and_wait_reports_removed_ones() {
    let c = cluster();
    // cmd/create prints the id; cmd/start `-a -i` attaches the streams and stdin and exits
    // with the container's code.
    let (id, _, code) = on_node01(
        &c,
        &["create", "-i", "--name", "later", "alpine", "sh", "-s"],
    );
    assert_eq!((id.trim().len(), code), (64, 0));
    assert_eq!(inspect(&c, "later", "{{.State.Status}}"), "created");
    let (out, err, code) = docker_in(
        &c,
        &["-H", NODE01, "start", "-a", "-i", "later"],
        &[],
        Some("echo from-stdin; exit 4\n"),
    );
    assert_eq!((out.as_str(), err.as_str(), code), ("from-stdin\n", "", 4));
    assert_eq!(
        inspect(&c, "later", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 4"
    );
    // cmd/wait: the exit code, also of a container that --rm removes as it ends (dockerd
    // answers the wait first).
    let (_, _, code) = on_node01(
        &c,
        &[
            "run",
            "-d",
            "--rm",
            "--name",
            "brief",
            "alpine",
            "sh",
            "-c",
            "sleep 0.3; exit 5",
        ],
    );
    assert_eq!(code, 0);
    let (out, _, code) = on_node01(&c, &["wait", "brief"]);
    assert_eq!((out.as_str(), code), ("5\n", 0));
    let (_, err, code) = on_node01(&c, &["wait", "brief"]);
    assert_eq!(
        (err.as_str(), code),
        ("Error response from daemon: No such container: brief\n", 1)
    );
}

#[test]
fn clients_at_the_same_time_reserve_a_name_once() {
    let c = cluster();
    // moby daemon/names.go reserveName: one container per name; the simulation reserves it
    // under the daemon's lock in the state directory (choice).
    let children: Vec<std::process::Child> = (0..6)
        .map(|_| spawn_on_node01(&c, &["create", "--name", "shared", "alpine", "true"]))
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    assert_eq!(
        codes.iter().filter(|&&code| code == 0).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|&&code| code == 1).count(),
        5,
        "{codes:?}"
    );
    let (out, _, _) = on_node01(&c, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(out, "shared\n");
}

#[test]
fn networks_are_created_listed_inspected_and_removed_per_daemon() {
    let c = cluster();
    // cmd/network_create; cli network/create.go prints the id.
    let (id, err, code) = on_node01(
        &c,
        &[
            "network",
            "create",
            "--driver",
            "bridge",
            "--label",
            "com.batchci.job=42",
            "ci-42",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_string();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    // libnetwork error.go NetworkNameError (the client sends CheckDuplicate).
    let (out, err, code) = on_node01(&c, &["network", "create", "ci-42"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "",
            "Error response from daemon: network with name ci-42 already exists\n",
            1
        )
    );
    // moby daemon/network.go PredefinedNetworkError (with its trailing space).
    let (_, err, code) = on_node01(&c, &["network", "create", "host"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "Error response from daemon: operation is not permitted on predefined host network \n",
            1
        )
    );
    // cli network/list.go: sorted by name, the predefined networks too;
    // formatter.go's default table.
    let (out, _, code) = on_node01(&c, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!((out.as_str(), code), ("bridge\nci-42\nhost\nnone\n", 0));
    let (out, _, _) = on_node01(&c, &["network", "ls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NETWORK ID     NAME      DRIVER    SCOPE");
    assert_eq!(
        lines[2],
        format!("{}   ci-42     bridge    local", &id[..12])
    );
    assert!(lines[4].ends_with("none      null      local"), "{out}");
    // moby daemon/network/filter.go: name and label filters; -q prints short ids.
    let (out, _, _) = on_node01(
        &c,
        &[
            "network",
            "ls",
            "-q",
            "--filter",
            "label=com.batchci.job=42",
        ],
    );
    assert_eq!(out, format!("{}\n", &id[..12]));
    let (out, _, _) = on_node01(
        &c,
        &[
            "network",
            "ls",
            "--filter",
            "name=ci-",
            "--format",
            "{{.Name}}",
        ],
    );
    assert_eq!(out, "ci-42\n");
    let (_, err, code) = on_node01(&c, &["network", "ls", "--filter", "colour=red"]);
    assert_eq!(
        (err.as_str(), code),
        ("Error response from daemon: Invalid filter 'colour'\n", 1)
    );
    // Networks are the daemon's: node02 has none of node01's.
    let (out, _, _) = docker(
        &c,
        &[
            "-H",
            "tcp://node02:2376",
            "network",
            "ls",
            "--format",
            "{{.Name}}",
        ],
    );
    assert_eq!(out, "bridge\nhost\nnone\n");
    // cmd/network_inspect: a JSON list of NetworkResource.
    let (out, _, code) = on_node01(&c, &["network", "inspect", "ci-42"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["Name"], "ci-42");
    assert_eq!(json[0]["Id"], id.as_str());
    assert_eq!(json[0]["Driver"], "bridge");
    assert_eq!(json[0]["Scope"], "local");
    assert_eq!(json[0]["Labels"]["com.batchci.job"], "42");
    assert_eq!(json[0]["Containers"], serde_json::json!({}));
    let (out, _, _) = on_node01(
        &c,
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            &id[..12],
        ],
    );
    assert_eq!(out, "ci-42 bridge\n");
    // moby client errors.go wrapResponseError: `No such network`.
    let (_, err, code) = on_node01(&c, &["network", "inspect", "nope"]);
    assert_eq!((err.as_str(), code), ("Error: No such network: nope\n", 1));
    // cli network/remove.go: each name printed, each error on stderr, exit 1 at the end;
    // moby daemon/network.go deleteNetwork refuses a predefined network.
    let (out, err, code) = on_node01(&c, &["network", "rm", "nope", "bridge", "ci-42"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "ci-42\n",
            "Error: No such network: nope\nError response from daemon: bridge is a pre-defined network and cannot be removed\n",
            1
        )
    );
    let (out, _, _) = on_node01(&c, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(out, "bridge\nhost\nnone\n");
    // The name can be reused once it is gone.
    let (_, _, code) = on_node01(&c, &["network", "create", "ci-42"]);
    assert_eq!(code, 0);
}

#[test]
fn a_service_on_a_network_keeps_it_until_removed_and_shows_its_aliases() {
    let c = cluster();
    let (net, _, code) = on_node01(&c, &["network", "create", "ci-7"]);
    assert_eq!(code, 0);
    let net = net.trim().to_string();
    // cmd/run `-d --network --network-alias`: the id, and the service runs on.
    let (id, err, code) = on_node01(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "ci-7",
            "--network-alias",
            "database",
            "--network-alias",
            "pg",
            "alpine",
            "sh",
            "-c",
            "exec sleep 60",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    // `-d` returns once the container runs.
    assert_eq!(inspect(&c, "db", "{{.State.Status}}"), "running");
    // moby daemon/container_operations.go updateNetworkConfig: on a user-defined network
    // the daemon adds the short id to the aliases at start.
    assert_eq!(
        inspect(
            &c,
            "db",
            "{{.HostConfig.NetworkMode}} {{json (index .NetworkSettings.Networks \"ci-7\").Aliases}}"
        ),
        format!("ci-7 [\"database\",\"pg\",\"{}\"]", &id[..12])
    );
    let (out, _, _) = on_node01(&c, &["inspect", "db"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json[0]["NetworkSettings"]["Networks"]["ci-7"]["NetworkID"],
        net.as_str()
    );
    // The network lists its running container.
    let (out, _, _) = on_node01(&c, &["network", "inspect", "ci-7"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["Containers"][id.as_str()]["Name"], "db");
    // libnetwork network.go delete: ActiveEndpointsError, wrapped by moby
    // daemon/network.go deleteNetwork (`error while removing network`).
    let (out, err, code) = on_node01(&c, &["network", "rm", "ci-7"]);
    assert_eq!(
        (out, err, code),
        (
            String::new(),
            format!(
                "Error response from daemon: error while removing network: network ci-7 id {net} has active endpoints\n"
            ),
            1
        )
    );
    assert_eq!(inspect(&c, "db", "{{.State.Running}}"), "true");
    // cmd/rm -f kills it; then the network has no endpoint left.
    let (out, _, code) = on_node01(&c, &["rm", "-f", "db"]);
    assert_eq!((out.as_str(), code), ("db\n", 0));
    let (out, err, code) = on_node01(&c, &["network", "rm", "ci-7"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("ci-7\n", "", 0));
}

#[test]
fn a_network_that_is_not_there_fails_the_start_not_the_create() {
    let c = cluster();
    // moby daemon/container_operations.go findAndAttachNetwork: the network is looked up
    // when the container starts (libnetwork ErrNoSuchNetwork); cli run.go reports a start
    // error without `See 'docker run --help'.`, runStartContainerErr: 125.
    let (out, err, code) = on_node01(
        &c,
        &[
            "run",
            "--name",
            "lost",
            "--network",
            "nowhere",
            "alpine",
            "true",
        ],
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "",
            "docker: Error response from daemon: network nowhere not found.\n",
            125
        )
    );
    // moby daemon/start.go: the error stays, exit code 128, the container stays created.
    assert_eq!(
        inspect(
            &c,
            "lost",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}"
        ),
        "created 128 network nowhere not found"
    );
    // `create` takes the name; `start` fails (cli start.go: `failed to start containers`).
    let (_, _, code) = on_node01(
        &c,
        &[
            "create", "--name", "later", "--net", "nowhere", "alpine", "true",
        ],
    );
    assert_eq!(code, 0);
    let (_, err, code) = on_node01(&c, &["start", "later"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "Error response from daemon: network nowhere not found\nError: failed to start containers: later\n",
            1
        )
    );
    // Once the network exists, the container starts on it.
    let (_, _, code) = on_node01(&c, &["network", "create", "nowhere"]);
    assert_eq!(code, 0);
    let (out, _, code) = on_node01(&c, &["start", "-a", "later"]);
    assert_eq!((out.as_str(), code), ("", 0));
    // runconfig/errors.go ErrUnsupportedNetworkAndAlias, checked by
    // validateNetworkingConfig at start.
    let (_, err, code) = on_node01(
        &c,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "--network-alias",
            "x",
            "alpine",
            "true",
        ],
    );
    assert_eq!(
        (err.as_str(), code),
        (
            "docker: Error response from daemon: network-scoped alias is supported only for containers in user defined networks.\n",
            125
        )
    );
}
