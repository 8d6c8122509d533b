//! `docker run`, `docker create` and `docker start` (cli `cli/command/container/run.go`,
//! `create.go`, `start.go`, `opts.go`; docs.docker.com/engine/reference/commandline/run/,
//! `.../create/`, `.../start/`).

use std::collections::BTreeMap;

use super::engine::{Attach, CreateErr, Spec, split_reference};
use super::flags::{self, Flag, Parsed, checked, flag, int_check, mem_check, swap_check, val};
use super::{Cli, Sub, from_daemon, report, start_error_code};

fn env_check(v: &str) -> Result<(), String> {
    if v.split('=').next().unwrap_or("").is_empty() {
        return Err(format!("invalid environment variable: {v}"));
    }
    Ok(())
}

pub(super) fn label_check(v: &str) -> Result<(), String> {
    let key = v.split('=').next().unwrap_or("").trim_start();
    if key.is_empty() {
        return Err(format!("invalid label '{v}': empty name"));
    }
    if key.contains(char::is_whitespace) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(())
}

/// The options of `docker create` (and `run`): cli `opts.go` `addFlags`.
const CONTAINER_FLAGS: &[Flag] = &[
    val("add-host", None),
    val("attach", Some('a')),
    val("blkio-weight", None),
    val("cap-add", None),
    val("cap-drop", None),
    val("cgroup-parent", None),
    val("cgroupns", None),
    val("cidfile", None),
    checked("cpu-period", None, int_check),
    checked("cpu-quota", None, int_check),
    checked("cpu-shares", Some('c'), int_check),
    checked("cpus", None, flags::CPUS_CHECK),
    val("cpuset-cpus", None),
    val("cpuset-mems", None),
    val("device", None),
    flag("disable-content-trust", None),
    val("dns", None),
    val("dns-option", None),
    val("dns-search", None),
    val("domainname", None),
    val("entrypoint", None),
    checked("env", Some('e'), env_check),
    val("env-file", None),
    val("expose", None),
    val("gpus", None),
    val("group-add", None),
    val("health-cmd", None),
    val("health-interval", None),
    val("health-retries", None),
    val("health-start-period", None),
    val("health-timeout", None),
    val("hostname", Some('h')),
    flag("init", None),
    flag("interactive", Some('i')),
    val("ip", None),
    val("ip6", None),
    val("ipc", None),
    val("isolation", None),
    checked("kernel-memory", None, mem_check),
    checked("label", Some('l'), label_check),
    val("label-file", None),
    val("link", None),
    val("log-driver", None),
    val("log-opt", None),
    val("mac-address", None),
    checked("memory", Some('m'), mem_check),
    checked("memory-reservation", None, mem_check),
    checked("memory-swap", None, swap_check),
    checked("memory-swappiness", None, int_check),
    val("mount", None),
    val("name", None),
    val("net", None),
    val("network", None),
    val("network-alias", None),
    flag("no-healthcheck", None),
    flag("oom-kill-disable", None),
    checked("oom-score-adj", None, int_check),
    val("pid", None),
    checked("pids-limit", None, int_check),
    val("platform", None),
    flag("privileged", None),
    val("publish", Some('p')),
    flag("publish-all", Some('P')),
    val("pull", None),
    flag("read-only", None),
    val("restart", None),
    flag("rm", None),
    val("runtime", None),
    val("security-opt", None),
    checked("shm-size", None, mem_check),
    val("stop-signal", None),
    checked("stop-timeout", None, int_check),
    val("storage-opt", None),
    val("sysctl", None),
    val("tmpfs", None),
    flag("tty", Some('t')),
    val("ulimit", None),
    val("user", Some('u')),
    val("userns", None),
    val("uts", None),
    val("volume", Some('v')),
    val("volume-driver", None),
    val("volumes-from", None),
    val("workdir", Some('w')),
];

/// Options recorded in `HostConfig` without an effect of their own.
const RECORDED: &[&str] = &[
    "add-host",
    "cap-add",
    "cap-drop",
    "device",
    "dns",
    "gpus",
    "group-add",
    "ipc",
    "log-driver",
    "log-opt",
    "mount",
    "pid",
    "publish",
    "security-opt",
    "sysctl",
    "tmpfs",
    "ulimit",
    "volumes-from",
    "runtime",
];

const RUN_HELP: &str = "
Options (those with an effect in mock-cluster; every docker 20.10 option is accepted):
  -d, --detach                  Run container in background and print container ID
      --name string             Assign a name to the container
  -i, --interactive             Keep STDIN open even if not attached
  -t, --tty                     Allocate a pseudo-TTY (no TTY here: TERM=xterm, one stream)
      --rm                      Automatically remove the container when it exits
  -e, --env list                Set environment variables
      --env-file list           Read in a file of environment variables
  -l, --label list              Set meta data on a container
  -w, --workdir string          Working directory inside the container (created)
  -v, --volume list             Bind mount a volume (recorded; SRC:DST with SRC == DST is honoured)
      --cpuset-cpus string      CPUs in which to allow execution (0-3, 0,1): sched_setaffinity
      --cpus decimal            Number of CPUs (checked, recorded)
  -m, --memory bytes            Memory limit: the container's resident memory, checked every 50 ms
      --memory-swap bytes       Swap limit equal to memory plus swap: '-1' to enable unlimited swap
      --kernel-memory bytes     Kernel memory limit (discarded, with the daemon's warnings)
      --shm-size bytes          Size of /dev/shm (recorded)
      --entrypoint string       Overwrite the default ENTRYPOINT of the image
  -u, --user string             Username or UID (recorded; the command runs as you)
  -h, --hostname string         Container host name (HOSTNAME)
      --pull string             Pull image before running (\"always\"|\"missing\"|\"never\") (default \"missing\")
      --sig-proxy               Proxy received signals to the process (default true)
      --privileged              Give extended privileges to this container (recorded)
      --network string          Connect a container to a network (checked when it starts; recorded)
      --network-alias list      Add network-scoped alias for the container (recorded)
      --init                    Run an init inside the container (recorded)

Examples:
  docker -H tcp://node01:2376 run --rm -i --name ci-1 --cpuset-cpus 0-1 -m 2g alpine sh -s < script.sh
  docker run -d --name sleeper busybox sleep 300
";

const START_HELP: &str = "
Options:
  -a, --attach               Attach STDOUT/STDERR and forward signals
      --detach-keys string   Override the key sequence for detaching a container
  -i, --interactive          Attach container's STDIN

Examples:
  docker create --name job -i alpine sh -s && docker start -a -i job < script.sh
";

/// `docker run`.
pub fn run_sub(name: &str) -> Sub {
    let mut flags = vec![
        flag("detach", Some('d')),
        val("detach-keys", None),
        flag("sig-proxy", None),
    ];
    flags.extend_from_slice(CONTAINER_FLAGS);
    Sub {
        path: if name == "run" {
            "docker run"
        } else {
            "docker container run"
        },
        usage: if name == "run" {
            "docker run [OPTIONS] IMAGE [COMMAND] [ARG...]"
        } else {
            "docker container run [OPTIONS] IMAGE [COMMAND] [ARG...]"
        },
        short: "Run a command in a new container",
        flags,
        interspersed: false,
        min: 1,
        max: None,
        help: RUN_HELP,
    }
}

/// `docker create`.
pub fn create_sub(name: &str) -> Sub {
    Sub {
        path: if name == "create" {
            "docker create"
        } else {
            "docker container create"
        },
        usage: if name == "create" {
            "docker create [OPTIONS] IMAGE [COMMAND] [ARG...]"
        } else {
            "docker container create [OPTIONS] IMAGE [COMMAND] [ARG...]"
        },
        short: "Create a new container",
        flags: CONTAINER_FLAGS.to_vec(),
        interspersed: false,
        min: 1,
        max: None,
        help: RUN_HELP,
    }
}

/// `docker start`.
pub fn start_sub(name: &str) -> Sub {
    Sub {
        path: if name == "start" {
            "docker start"
        } else {
            "docker container start"
        },
        usage: if name == "start" {
            "docker start [OPTIONS] CONTAINER [CONTAINER...]"
        } else {
            "docker container start [OPTIONS] CONTAINER [CONTAINER...]"
        },
        short: "Start one or more stopped containers",
        flags: vec![
            flag("attach", Some('a')),
            val("checkpoint", None),
            val("checkpoint-dir", None),
            val("detach-keys", None),
            flag("interactive", Some('i')),
        ],
        interspersed: true,
        min: 1,
        max: None,
        help: START_HELP,
    }
}

/// `KEY=value` lines of an env or label file (cli `opts/file.go` `parseKeyValueFile`).
fn key_value_file(path: &str, from_env: bool) -> Result<Vec<String>, String> {
    let text = std::fs::read(path).map_err(|e| {
        let t = e.to_string();
        let reason = t
            .find(" (os error")
            .map_or(t.clone(), |i| t[..i].to_lowercase());
        format!("open {path}: {reason}")
    })?;
    let text = String::from_utf8_lossy(&text);
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let raw = if n == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (variable, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_start(), Some(v)),
            None => (line, None),
        };
        if variable.contains(char::is_whitespace) {
            return Err(format!(
                "poorly formatted environment: variable '{variable}' contains whitespaces"
            ));
        }
        if variable.is_empty() {
            return Err(format!(
                "poorly formatted environment: no variable name on line '{line}'"
            ));
        }
        match value {
            Some(v) => out.push(format!("{variable}={v}")),
            None if from_env => {
                if let Ok(v) = std::env::var(line.trim()) {
                    out.push(format!("{}={v}", line.trim()));
                }
            }
            None => out.push(line.trim().to_string()),
        }
    }
    Ok(out)
}

/// The container a command line describes (cli `opts.go` `parse`); `Err` is the text
/// reported with `See 'docker run --help'.`
fn spec_of(p: &Parsed, detach: bool) -> Result<(Spec, String), String> {
    let mut spec = Spec {
        image: p.args[0].clone(),
        ..Spec::default()
    };
    if p.args.len() > 1 {
        spec.cmd = Some(p.args[1..].to_vec());
    }
    // Environment: the files first, then -e (`ReadKVEnvStrings`); `-e NAME` takes the
    // client's value when it has one.
    for file in p.values("env-file") {
        spec.env.extend(key_value_file(&file, true)?);
    }
    for e in p.values("env") {
        if e.contains('=') {
            spec.env.push(e);
        } else if let Ok(v) = std::env::var(&e) {
            spec.env.push(format!("{e}={v}"));
        } else {
            spec.env.push(e);
        }
    }
    let mut labels: Vec<String> = Vec::new();
    for file in p.values("label-file") {
        labels.extend(key_value_file(&file, false)?);
    }
    labels.extend(p.values("label"));
    spec.labels = labels
        .into_iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l, String::new()),
        })
        .collect::<BTreeMap<_, _>>();
    spec.working_dir = p.value("workdir").unwrap_or("").to_string();
    spec.user = p.value("user").unwrap_or("").to_string();
    spec.hostname = p.value("hostname").map(str::to_string);
    spec.name = p
        .value("name")
        .map(str::to_string)
        .filter(|n| !n.is_empty());
    spec.entrypoint = p.value("entrypoint").map(|e| {
        if e.is_empty() {
            Vec::new()
        } else {
            vec![e.to_string()]
        }
    });
    spec.open_stdin = p.bool("interactive", false);
    spec.tty = p.bool("tty", false);
    let attach = p.values("attach");
    let mut streams = [
        attach.iter().any(|a| a.eq_ignore_ascii_case("stdin")),
        attach.iter().any(|a| a.eq_ignore_ascii_case("stdout")),
        attach.iter().any(|a| a.eq_ignore_ascii_case("stderr")),
    ];
    if spec.open_stdin {
        streams[0] = true;
    }
    if attach.is_empty() {
        streams[1] = true;
        streams[2] = true;
    }
    if detach {
        if !attach.is_empty() {
            return Err("Conflicting options: -a and -d".into());
        }
        streams = [false; 3];
    }
    spec.attach = streams;
    spec.stdin_once = streams[0];
    let bytes = |name: &str| -> i64 {
        p.value(name)
            .and_then(|v| flags::ram_in_bytes(v).ok())
            .unwrap_or(0)
    };
    let host = &mut spec.host;
    host.binds = p.values("volume");
    host.auto_remove = p.bool("rm", false);
    host.privileged = p.bool("privileged", false);
    host.init = p.bool("init", false);
    let network = p.value("network").or(p.value("net"));
    host.network_mode = network.unwrap_or("default").to_string();
    // cli `opts.go` `parseNetworkOpts`: the aliases go with the first `--network`; without
    // one they are dropped.
    if network.is_some() {
        spec.aliases = p.values("network-alias");
    }
    host.cpuset_cpus = p.value("cpuset-cpus").unwrap_or("").to_string();
    host.nano_cpus = p
        .value("cpus")
        .and_then(|v| flags::nano_cpus(v).ok())
        .unwrap_or(0);
    host.memory = bytes("memory");
    host.memory_swap = match p.value("memory-swap") {
        Some("-1") => -1,
        Some(_) => bytes("memory-swap"),
        None => 0,
    };
    host.kernel_memory = bytes("kernel-memory");
    host.shm_size = bytes("shm-size");
    host.restart = p.value("restart").unwrap_or("no").to_string();
    host.other = p
        .opts
        .iter()
        .filter(|(k, _)| RECORDED.contains(k))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if host.auto_remove && !matches!(host.restart.as_str(), "" | "no") {
        return Err("Conflicting options: --restart and --rm".into());
    }
    let pull = p.value("pull").unwrap_or("missing").to_string();
    if !matches!(pull.as_str(), "always" | "missing" | "never") {
        return Err(format!(
            "invalid pull option: '{pull}': must be one of \"always\", \"missing\" or \"never\""
        ));
    }
    split_reference(&spec.image)?;
    Ok((spec, pull))
}

/// The pull of an image the registry does not have (moby's words for Docker Hub's
/// refusal; the simulated registry has no image but the daemons' own).
fn pull_refusal(image: &str) -> String {
    let repo = split_reference(image).map_or(image.to_string(), |(r, _)| r);
    format!(
        "Error response from daemon: pull access denied for {repo}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
    )
}

/// What `docker pull` prints for an image the daemon has.
pub fn pull_progress(repo: &str, tag: &str, id: &str) {
    let path = if repo.contains('/') {
        repo.to_string()
    } else {
        format!("library/{repo}")
    };
    eprintln!("{tag}: Pulling from {path}");
    eprintln!("Digest: sha256:{}", super::store::digest(id));
    eprintln!("Status: Image is up to date for {repo}:{tag}");
}

/// Creates the container (cli `create.go` `createContainer`): its id, or the text to
/// report.
fn create_container(
    cli: &mut Cli<'_>,
    spec: &Spec,
    pull: &str,
) -> Result<(super::engine::Daemon, String), String> {
    let query = spec
        .name
        .as_ref()
        .map(|n| format!("?name={n}"))
        .unwrap_or_default();
    let daemon = cli.daemon("POST", &format!("/containers/create{query}"))?;
    if pull == "always" {
        match daemon.image(&spec.image) {
            Some(img) => pull_progress(&img.repo, &img.tag, &img.id),
            None => return Err(pull_refusal(&spec.image)),
        }
    }
    match daemon.create(spec) {
        Ok((id, warnings)) => {
            for w in warnings {
                eprintln!("WARNING: {w}");
            }
            Ok((daemon, id))
        }
        Err(CreateErr::NoImage(shown)) if pull == "missing" => {
            eprintln!("Unable to find image '{shown}' locally");
            Err(pull_refusal(&spec.image))
        }
        Err(CreateErr::NoImage(shown)) => Err(format!(
            "Error response from daemon: No such image: {shown}"
        )),
        Err(CreateErr::Refused(e)) => Err(from_daemon(&e)),
    }
}

fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(fd) == 1 }
}

/// `docker run`.
pub fn run(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let detach = p.bool("detach", false);
    let (spec, pull) = match spec_of(&p, detach) {
        Ok(s) => s,
        Err(text) => {
            report("run", &text, true);
            return 125;
        }
    };
    // cli `run.go`: `CheckTty`.
    if !detach && spec.attach[0] && spec.tty && !is_tty(0) {
        eprintln!("the input device is not a TTY");
        return 1;
    }
    let (daemon, id) = match create_container(cli, &spec, &pull) {
        Ok(d) => d,
        Err(text) => {
            report("run", &text, true);
            return start_error_code(&text);
        }
    };
    let Ok(rec) = daemon.find(&id) else {
        report(
            "run",
            &format!("Error response from daemon: No such container: {id}"),
            false,
        );
        return 125;
    };
    if detach {
        println!("{id}");
        return match daemon.start(&rec, None) {
            Ok(_) => 0,
            Err(e) => {
                let text = from_daemon(&e);
                report("run", &text, false);
                start_error_code(&text)
            }
        };
    }
    let attach = Attach {
        stdin: spec.attach[0],
        sig_proxy: p.bool("sig-proxy", true),
    };
    match daemon.start(&rec, Some(attach)) {
        Ok(code) => code.unwrap_or(0),
        Err(e) => {
            let text = from_daemon(&e);
            report("run", &text, false);
            start_error_code(&text)
        }
    }
}

/// `docker create`: prints the id.
pub fn create(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let (spec, pull) = match spec_of(&p, false) {
        Ok(s) => s,
        Err(text) => {
            report("create", &text, true);
            return 125;
        }
    };
    match create_container(cli, &spec, &pull) {
        Ok((_, id)) => {
            println!("{id}");
            0
        }
        Err(text) => {
            eprintln!("{text}");
            1
        }
    }
}

/// `docker start`.
pub fn start(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let attach = p.bool("attach", false);
    let interactive = p.bool("interactive", false);
    if attach || interactive {
        if p.args.len() > 1 {
            eprintln!("you cannot start and attach multiple containers at once");
            return 1;
        }
        let reference = &p.args[0];
        let daemon = match cli.daemon("GET", &format!("/containers/{reference}/json")) {
            Ok(d) => d,
            Err(text) => {
                eprintln!("{text}");
                return 1;
            }
        };
        let rec = match daemon.find(reference) {
            Ok(r) => r,
            Err(e) if e.not_found => {
                eprintln!("Error: No such container: {reference}");
                return 1;
            }
            Err(e) => {
                eprintln!("{}", from_daemon(&e));
                return 1;
            }
        };
        let how = Attach {
            stdin: interactive && rec.open_stdin,
            sig_proxy: !rec.tty,
        };
        return match daemon.start(&rec, Some(how)) {
            Ok(code) => code.unwrap_or(0),
            Err(e) => {
                eprintln!("{}", from_daemon(&e));
                1
            }
        };
    }
    let mut failed = Vec::new();
    for reference in &p.args {
        let result = cli
            .daemon("POST", &format!("/containers/{reference}/start"))
            .and_then(|daemon| {
                let rec = daemon.find(reference).map_err(|e| from_daemon(&e))?;
                daemon.start(&rec, None).map_err(|e| from_daemon(&e))
            });
        match result {
            Ok(_) => println!("{reference}"),
            Err(text) => {
                eprintln!("{text}");
                failed.push(reference.clone());
            }
        }
    }
    if failed.is_empty() {
        0
    } else {
        eprintln!("Error: failed to start containers: {}", failed.join(", "));
        1
    }
}
