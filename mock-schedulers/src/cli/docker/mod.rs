//! The fake `docker` client, on every simulated cluster: the Docker CLI 20.10.24 of Debian 12
//! (`docker.io` 20.10.24+dfsg1) talking to a simulated Docker daemon on a node of the
//! cluster. Sources, cited as `cli <path>` and `moby <path>`: docker/cli v20.10.24 and
//! moby/moby v20.10.24 on GitHub, and docs.docker.com's reference pages
//! (`docs.docker.com/engine/reference/commandline/<command>/`, and `docker run`'s exit
//! status section in `docs.docker.com/engine/reference/run/`: 125 for an error of the daemon,
//! 126 for a command that cannot be invoked, 127 for a command that is not found, else the
//! command's own exit code).
//!
//! Which daemon: `-H`/`DOCKER_HOST` `tcp://NODE:PORT` names a node of the cluster; its
//! daemon answers when the node runs one (`[docker] nodes`), is not down (`mock-cluster
//! inject fail-node`) and `PORT` is `[docker] port`. `unix://...` (and no host) is the
//! daemon of this machine. Containers are real processes on this machine (see
//! [`shim`]), kept in the cluster's state directory (see [`store`]); the `docker` fake needs
//! the mock-cluster daemon only to know the cluster's nodes (without one it reads the stored
//! cluster file).

pub mod engine;
pub mod flags;
pub mod json;
pub mod network;
pub mod shim;
pub mod store;
pub mod template;

mod container;
mod manage;
mod system;

use std::path::{Path, PathBuf};

use super::Call;
use crate::config::Cluster;
use crate::protocol::{Request, Response};
use engine::Daemon;
use flags::{Flag, Parsed, flag, val};

/// The commands, by the name each is called as.
pub const COMMANDS: &[&str] = &["docker"];

/// Prefixes of the variables the Docker CLI reads, kept in call records.
pub const ENV_PREFIXES: &[&str] = &["DOCKER_"];

/// The client's and the simulated daemons' version (Debian 12's `docker.io`).
pub const VERSION: &str = "20.10.24+dfsg1";
/// The Engine API version of 20.10.
pub const API_VERSION: &str = "1.41";

/// Runs `docker`; `None` when `prog` is not it.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    COMMANDS.contains(&prog).then(|| main(call))
}

/// The global options (cli `cli/flags/common.go` `InstallFlags`, `cli/flags/client.go`).
const ROOT_FLAGS: &[Flag] = &[
    val("config", None),
    val("context", Some('c')),
    flag("debug", Some('D')),
    val("host", Some('H')),
    val("log-level", Some('l')),
    flag("tls", None),
    val("tlscacert", None),
    val("tlscert", None),
    val("tlskey", None),
    flag("tlsverify", None),
    flag("version", Some('v')),
];

const USAGE: &str = "
Usage:  docker [OPTIONS] COMMAND

A self-sufficient runtime for containers (mock-cluster's simulated Docker)

Options:
      --config string      Location of client config files (default \"~/.docker\")
  -c, --context string     Name of the context to use to connect to the daemon
  -D, --debug              Enable debug mode
  -H, --host list          Daemon socket(s) to connect to
  -l, --log-level string   Set the logging level (\"debug\"|\"info\"|\"warn\"|\"error\"|\"fatal\") (default \"info\")
      --tls                Use TLS; implied by --tlsverify
      --tlscacert string   Trust certs signed only by this CA (default \"~/.docker/ca.pem\")
      --tlscert string     Path to TLS certificate file (default \"~/.docker/cert.pem\")
      --tlskey string      Path to TLS key file (default \"~/.docker/key.pem\")
      --tlsverify          Use TLS and verify the remote
  -v, --version            Print version information and quit

Management Commands:
  container   Manage containers
  image       Manage images
  network     Manage networks
  system      Manage Docker

Commands:
  create      Create a new container
  images      List images
  info        Display system-wide information
  inspect     Return low-level information on Docker objects
  kill        Kill one or more running containers
  logs        Fetch the logs of a container
  ps          List containers
  pull        Pull an image or a repository from a registry
  rm          Remove one or more containers
  run         Run a command in a new container
  start       Start one or more stopped containers
  stop        Stop one or more running containers
  version     Show the Docker version information
  wait        Block until one or more containers stop, then print their exit codes

Examples (mock-cluster):
  docker -H tcp://node01:2376 run --rm -i --cpuset-cpus 0 --memory 512m alpine sh -c 'cat' < script
  docker -H tcp://node01:2376 ps -a --filter label=com.example.job=42 --format '{{.Names}}'
  docker -H tcp://node01:2376 inspect -f '{{.State.ExitCode}} {{.State.OOMKilled}}' build-42
  docker -H tcp://node01:2376 rm -f build-42

Run 'docker COMMAND --help' for more information on a command.
";

/// The global options after parsing.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    hosts: Vec<String>,
    tls: bool,
    tls_verify: bool,
    tls_verify_given: bool,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    context: Option<String>,
}

impl Globals {
    fn of(p: &Parsed) -> Globals {
        Globals {
            hosts: p.values("host"),
            tls: p.bool("tls", env_set("DOCKER_TLS")),
            tls_verify: p.bool("tlsverify", env_set("DOCKER_TLS_VERIFY")),
            tls_verify_given: p.changed("tlsverify"),
            ca: p.value("tlscacert").map(str::to_string),
            cert: p.value("tlscert").map(str::to_string),
            key: p.value("tlskey").map(str::to_string),
            context: p.value("context").map(str::to_string).or_else(|| {
                std::env::var("DOCKER_CONTEXT")
                    .ok()
                    .filter(|c| !c.is_empty())
            }),
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty())
}

/// The daemon address and how the client talks to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `tcp://host:port`, `unix:///path`, ...
    pub host: String,
    /// The client speaks TLS (https).
    pub tls: bool,
    /// The client has a certificate and key to show.
    pub client_cert: bool,
}

/// Where the client's certificates are by default: `DOCKER_CERT_PATH`, else the
/// configuration directory (`DOCKER_CONFIG`, else `~/.docker`).
fn cert_dir() -> PathBuf {
    if let Ok(p) = std::env::var("DOCKER_CERT_PATH")
        && !p.is_empty()
    {
        return PathBuf::from(p);
    }
    if let Ok(p) = std::env::var("DOCKER_CONFIG")
        && !p.is_empty()
    {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    Path::new(&home).join(".docker")
}

/// A file error as Go's `os.ReadFile` words it (`open /x: no such file or directory`).
fn go_read_error(path: &str, e: &std::io::Error) -> String {
    let text = e.to_string();
    let reason = match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    };
    let op = if e.raw_os_error() == Some(libc::EISDIR) {
        "read"
    } else {
        "open"
    };
    format!("{op} {path}: {reason}")
}

fn read_file(path: &str) -> Result<(), String> {
    std::fs::read(path)
        .map(|_| ())
        .map_err(|e| go_read_error(path, &e))
}

/// cli `opts/hosts.go` `ParseHost`.
pub fn parse_host(tls: bool, value: &str) -> Result<String, String> {
    let host = value.trim();
    if host.is_empty() {
        return Ok(if tls {
            "tcp://localhost:2376".into()
        } else {
            "unix:///var/run/docker.sock".into()
        });
    }
    let (proto, addr) = match host.split_once("://") {
        Some((p, a)) => (p, a),
        None => ("tcp", host),
    };
    match proto {
        "tcp" => parse_tcp(addr, value),
        "unix" | "npipe" => {
            if addr.contains("://") {
                return Err(format!("Invalid proto, expected {proto}: {addr}"));
            }
            let addr = if addr.is_empty() {
                if proto == "unix" {
                    "/var/run/docker.sock"
                } else {
                    "//./pipe/docker_engine"
                }
            } else {
                addr
            };
            Ok(format!("{proto}://{addr}"))
        }
        "fd" | "ssh" => Ok(host.to_string()),
        _ => Err(format!("Invalid bind address format: {value}")),
    }
}

fn parse_tcp(addr: &str, original: &str) -> Result<String, String> {
    if addr.is_empty() {
        return Ok("tcp://localhost:2375".into());
    }
    if addr.contains("://") {
        return Err(format!("Invalid proto, expected tcp: {addr}"));
    }
    let hostport = addr.split('/').next().unwrap_or(addr);
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (
                format!("[{h}]"),
                p.strip_prefix(':').unwrap_or("").to_string(),
            ),
            None => return Err(format!("Invalid bind address format: {original}")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), p.to_string()),
            Some(_) => return Err(format!("Invalid bind address format: {original}")),
            None => (hostport.to_string(), String::new()),
        }
    };
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    let port = if port.is_empty() {
        "2375".to_string()
    } else {
        port
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("Invalid bind address format: {original}"));
    }
    Ok(format!("tcp://{host}:{port}"))
}

/// The endpoint of the default context (cli `cli/command/cli.go`
/// `resolveDefaultDockerEndpoint`, `cli/flags/common.go` `SetDefaultOptions`,
/// `cli/context/tlsdata.go` `TLSDataFromFiles`): the error is the text after `unable to
/// resolve docker endpoint: `.
pub fn resolve_endpoint(g: &Globals) -> Result<Endpoint, String> {
    if let Some(ctx) = g.context.as_deref().filter(|c| *c != "default") {
        return Err(format!("context {ctx:?} does not exist"));
    }
    // --tlsverify given at all (even =false) or DOCKER_TLS_VERIFY turns TLS on.
    let tls = g.tls || g.tls_verify || g.tls_verify_given;
    let host = match g.hosts.as_slice() {
        [] => std::env::var("DOCKER_HOST").unwrap_or_default(),
        [one] => one.clone(),
        _ => return Err("Please specify only one -H".into()),
    };
    let host = parse_host(tls, &host)?;
    let mut client_cert = false;
    if tls {
        let dir = cert_dir();
        let default = |name: &str| dir.join(name).display().to_string();
        let ca = g.ca.clone().unwrap_or_else(|| default("ca.pem"));
        // A default certificate or key that is not there is left out; one given is read.
        let cert = g
            .cert
            .clone()
            .or_else(|| Some(default("cert.pem")).filter(|p| Path::new(p).exists()));
        let key = g
            .key
            .clone()
            .or_else(|| Some(default("key.pem")).filter(|p| Path::new(p).exists()));
        read_file(&ca)?;
        for file in [&cert, &key].into_iter().flatten() {
            read_file(file)?;
        }
        client_cert = cert.is_some() && key.is_some();
    }
    Ok(Endpoint {
        host,
        tls,
        client_cert,
    })
}

/// One subcommand.
pub struct Sub {
    /// `docker run`.
    pub path: &'static str,
    /// The usage line after `Usage:  `.
    pub usage: &'static str,
    /// One line.
    pub short: &'static str,
    /// Its options.
    pub flags: Vec<Flag>,
    /// Options may follow operands.
    pub interspersed: bool,
    /// Fewest operands.
    pub min: usize,
    /// Most operands.
    pub max: Option<usize>,
    /// The options and examples of `--help`.
    pub help: &'static str,
}

impl Sub {
    /// `--help`.
    fn print_help(&self) {
        print!("\nUsage:  {}\n\n{}\n{}", self.usage, self.short, self.help);
    }

    /// An operand count error (cli `cli/required.go`), exit 1.
    fn args_error(&self, n: usize) -> Option<String> {
        let tail = format!(
            ".\nSee '{0} --help'.\n\nUsage:  {1}\n\n{2}",
            self.path, self.usage, self.short
        );
        let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
        match self.max {
            Some(0) if n > 0 => Some(format!("{:?} accepts no arguments{tail}", self.path)),
            Some(max) if self.min == max && n != max => Some(format!(
                "{:?} requires exactly {max} {}{tail}",
                self.path,
                plural(max)
            )),
            Some(max) if n > max => Some(format!(
                "{:?} requires at most {max} {}{tail}",
                self.path,
                plural(max)
            )),
            _ if n < self.min => Some(format!(
                "{:?} requires at least {} {}{tail}",
                self.path,
                self.min,
                plural(self.min)
            )),
            _ => None,
        }
    }
}

/// The running command: its call, its endpoint.
pub struct Cli<'a> {
    /// The call (recorded at the end).
    pub call: &'a mut Call,
    /// Where the daemon is.
    pub endpoint: Endpoint,
}

/// How the client reaches a daemon that does not answer (moby `client/errors.go`
/// `ErrorConnectionFailed`, reported for a refused or timed-out connection).
pub fn connection_failed(host: &str) -> String {
    format!("Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")
}

impl Cli<'_> {
    /// The cluster: from the mock-cluster daemon (started if needed, as every fake does), else
    /// the stored cluster file; with the nodes that are down.
    fn cluster(&mut self, ask_daemon: bool) -> (Cluster, Vec<String>) {
        if ask_daemon
            && let Ok(conn) = self.call.conn()
            && let Ok(Response::Cluster { cluster, usage, .. }) = conn.call(&Request::Cluster {
                status_command: false,
            })
        {
            let down = usage
                .into_iter()
                .filter(|u| u.down)
                .map(|u| u.name)
                .collect();
            // A container may run for hours: no daemon connection is held meanwhile.
            self.call.release_conn();
            return (*cluster, down);
        }
        let stored = crate::daemon::stored_config_path(&self.call.dir);
        let cluster = Cluster::load(&stored).unwrap_or_else(|_| Cluster::embedded_default());
        let down = cluster.inject.failed_nodes.clone();
        (cluster, down)
    }

    /// The daemon for a request `method path` (the path after `/v1.41`, for the texts that
    /// show the URL); `Err` is what the client prints.
    pub fn daemon(&mut self, method: &str, path: &str) -> Result<Daemon, String> {
        let host = self.endpoint.host.clone();
        if let Some(_socket) = host.strip_prefix("unix://") {
            let (cluster, _) = self.cluster(false);
            return Ok(Daemon {
                store: store::Store::open(&self.call.dir, "local"),
                node: None,
                host_name: crate::host::short_hostname(),
                images: engine::images_of(&cluster.docker),
                state_dir: self.call.dir.clone(),
            });
        }
        let Some(hostport) = host.strip_prefix("tcp://") else {
            return Err(connection_failed(&host));
        };
        let (name, port) = hostport.rsplit_once(':').unwrap_or((hostport, ""));
        let (cluster, down) = self.cluster(true);
        let reachable = cluster.node(name).is_some()
            && cluster.docker.runs_on(name)
            && !down.iter().any(|d| d == name)
            && port == cluster.docker.port.to_string();
        if !reachable {
            return Err(connection_failed(&host));
        }
        // Go's url.Error names the method as `Get`, `Post`, `Delete`.
        let op = {
            let lower = method.to_lowercase();
            let mut c = lower.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        };
        let url = format!("https://{hostport}/v{API_VERSION}{path}");
        match (cluster.docker.tls, self.endpoint.tls) {
            // A plain request to a TLS port: Go's TLS server answers 400 with this text.
            (true, false) => {
                return Err(
                    "Error response from daemon: Client sent an HTTP request to an HTTPS server."
                        .into(),
                );
            }
            // dockerd --tlsverify refuses a client without a certificate
            // (moby `client/request.go` `doRequest`).
            (true, true) if !self.endpoint.client_cert => {
                return Err(format!(
                    "The server probably has client authentication (--tlsverify) enabled. Please check your TLS client certification settings: {op} \"{url}\": remote error: tls: bad certificate"
                ));
            }
            (false, true) => {
                return Err(format!(
                    "error during connect: {op} \"{url}\": http: server gave HTTP response to HTTPS client"
                ));
            }
            _ => {}
        }
        Ok(Daemon {
            store: store::Store::open(&self.call.dir, name),
            node: Some(name.to_string()),
            host_name: name.to_string(),
            images: engine::images_of(&cluster.docker),
            state_dir: self.call.dir.clone(),
        })
    }
}

/// `Error response from daemon: <msg>`.
pub fn from_daemon(e: &engine::ApiErr) -> String {
    format!("Error response from daemon: {}", e.msg)
}

/// What `docker run` prints for an error (cli `run.go` `reportError`): `docker: <text>.` and,
/// with `with_help`, `See 'docker run --help'.`
pub fn report(command: &str, text: &str, with_help: bool) {
    let mut line = format!("docker: {}.", text.strip_suffix('.').unwrap_or(text));
    if with_help {
        line.push_str(&format!("\nSee 'docker {command} --help'."));
    }
    eprintln!("{line}");
}

/// `docker run`'s exit code for an error (cli `run.go` `runStartContainerErr`; the docs'
/// exit status section): 127 for a command not found, 126 for one that cannot be invoked,
/// else 125.
pub fn start_error_code(text: &str) -> i32 {
    let t = text
        .strip_prefix("Error response from daemon: ")
        .unwrap_or(text);
    if t.contains("executable file not found")
        || t.contains("no such file or directory")
        || t.contains("system cannot find the file specified")
    {
        127
    } else if t.contains("permission denied") {
        126
    } else {
        125
    }
}

fn main(call: &mut Call) -> i32 {
    let args = call.args();
    let root = match flags::parse(&args, ROOT_FLAGS, false) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}\nSee 'docker --help'.");
            return 125;
        }
    };
    if root.bool("version", false) {
        println!("Docker version {VERSION}, build 297e128");
        return 0;
    }
    if let Some(level) = root.value("log-level")
        && !matches!(
            level.to_lowercase().as_str(),
            "panic" | "fatal" | "error" | "warn" | "warning" | "info" | "debug" | "trace"
        )
    {
        eprintln!("Unable to parse logging level: {level}");
        return 1;
    }
    let Some(sub) = root.args.first().cloned() else {
        // cli `cmd/docker/docker.go`: no command shows the help, on standard error.
        if root.help {
            print!("{USAGE}");
        } else {
            eprint!("{USAGE}");
        }
        return 0;
    };
    let rest: Vec<String> = root.args[1..].to_vec();
    let globals = Globals::of(&root);
    // cli.Initialize resolves the endpoint (and reads the TLS files) before any command.
    let endpoint = match resolve_endpoint(&globals) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("unable to resolve docker endpoint: {e}");
            return 1;
        }
    };
    let mut cli = Cli { call, endpoint };
    dispatch(&mut cli, &sub, &rest)
}

/// What a command does with its parsed words.
type Handler = fn(&mut Cli<'_>, &Sub, Parsed) -> i32;

fn dispatch(cli: &mut Cli<'_>, sub: &str, rest: &[String]) -> i32 {
    let (name, rest) = match sub {
        "container" | "image" | "network" | "system" => match rest.first() {
            Some(word) if !word.starts_with('-') => (format!("{sub} {word}"), &rest[1..]),
            _ => {
                let text = match sub {
                    "container" => {
                        "\nUsage:  docker container COMMAND\n\nManage containers\n\nCommands:\n  create      Create a new container\n  inspect     Display detailed information on one or more containers\n  kill        Kill one or more running containers\n  logs        Fetch the logs of a container\n  ls          List containers\n  rm          Remove one or more containers\n  run         Run a command in a new container\n  start       Start one or more stopped containers\n  stop        Stop one or more running containers\n  wait        Block until one or more containers stop, then print their exit codes\n\nRun 'docker container COMMAND --help' for more information on a command.\n"
                    }
                    "network" => network::USAGE,
                    "image" => {
                        "\nUsage:  docker image COMMAND\n\nManage images\n\nCommands:\n  inspect     Display detailed information on one or more images\n  ls          List images\n  pull        Pull an image or a repository from a registry\n\nRun 'docker image COMMAND --help' for more information on a command.\n"
                    }
                    _ => {
                        "\nUsage:  docker system COMMAND\n\nManage Docker\n\nCommands:\n  info        Display system-wide information\n\nRun 'docker system COMMAND --help' for more information on a command.\n"
                    }
                };
                if rest.iter().any(|a| a == "--help") {
                    print!("{text}");
                    return 0;
                }
                eprint!("{text}");
                return 0;
            }
        },
        _ => (sub.to_string(), rest),
    };
    let (spec, handler): (Sub, Handler) = match name.as_str() {
        "run" | "container run" => (container::run_sub(&name), container::run),
        "create" | "container create" => (container::create_sub(&name), container::create),
        "start" | "container start" => (container::start_sub(&name), container::start),
        "ps" | "container ls" | "container ps" | "container list" => {
            (manage::ps_sub(&name), manage::ps)
        }
        "inspect" | "container inspect" => (manage::inspect_sub(&name), manage::inspect),
        "logs" | "container logs" => (manage::logs_sub(&name), manage::logs),
        "wait" | "container wait" => (manage::wait_sub(&name), manage::wait),
        "rm" | "container rm" => (manage::rm_sub(&name), manage::rm),
        "kill" | "container kill" => (manage::kill_sub(&name), manage::kill),
        "stop" | "container stop" => (manage::stop_sub(&name), manage::stop),
        "images" | "image ls" | "image list" => (system::images_sub(&name), system::images),
        "image inspect" => (system::image_inspect_sub(), system::image_inspect),
        "pull" | "image pull" => (system::pull_sub(&name), system::pull),
        "version" => (system::version_sub(), system::version),
        "info" | "system info" => (system::info_sub(&name), system::info),
        n if n.starts_with("network ") && network::sub(&n[8..]).is_some() => {
            let word = &n[8..];
            let handler: Handler = match word {
                "create" => network::create,
                "rm" | "remove" => network::rm,
                "ls" | "list" => network::ls,
                _ => network::inspect,
            };
            (
                network::sub(word).unwrap_or_else(|| unreachable!()),
                handler,
            )
        }
        _ => {
            let word = name.rsplit(' ').next().unwrap_or(&name);
            if KNOWN_ELSEWHERE.contains(&word) {
                eprintln!(
                    "docker: '{name}' is not supported by mock-cluster's simulated Docker.\nSee 'docker --help'"
                );
            } else {
                // cli `cmd/docker/docker.go`.
                eprintln!("docker: '{name}' is not a docker command.\nSee 'docker --help'");
            }
            return 1;
        }
    };
    let parsed = match flags::parse(rest, &spec.flags, spec.interspersed) {
        Ok(p) => p,
        Err(e) => {
            // cli `cli/cobra.go` `FlagErrorFunc`.
            eprintln!("{e}\nSee '{} --help'.", spec.path);
            return 125;
        }
    };
    if parsed.help {
        spec.print_help();
        return 0;
    }
    if let Some(e) = spec.args_error(parsed.args.len()) {
        eprintln!("{e}");
        return 1;
    }
    handler(cli, &spec, parsed)
}

/// Docker commands the simulation does not have.
const KNOWN_ELSEWHERE: &[&str] = &[
    "attach", "build", "builder", "commit", "config", "context", "cp", "diff", "events", "exec",
    "export", "history", "import", "load", "login", "logout", "node", "pause", "plugin", "port",
    "prune", "push", "rename", "restart", "rmi", "save", "search", "secret", "service", "stack",
    "stats", "swarm", "tag", "top", "trust", "unpause", "update", "volume", "buildx", "compose",
    "df", "events",
];

/// Kills every running container of a cluster (`mock-cluster stop --cancel-jobs`).
pub fn kill_all(state_dir: &Path) {
    for store in store::Store::all_daemons(state_dir) {
        for rec in store.all() {
            if rec.state.running() {
                shim::kill_session(rec.state.pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_the_cli_parses_them() {
        assert_eq!(
            parse_host(false, "").unwrap(),
            "unix:///var/run/docker.sock"
        );
        assert_eq!(parse_host(true, "").unwrap(), "tcp://localhost:2376");
        assert_eq!(
            parse_host(false, "tcp://node01:2376").unwrap(),
            "tcp://node01:2376"
        );
        assert_eq!(
            parse_host(false, "node01:2376").unwrap(),
            "tcp://node01:2376"
        );
        assert_eq!(
            parse_host(true, "tcp://node01").unwrap(),
            "tcp://node01:2375"
        );
        assert_eq!(
            parse_host(false, "http://x").unwrap_err(),
            "Invalid bind address format: http://x"
        );
        assert_eq!(
            parse_host(false, "unix://").unwrap(),
            "unix:///var/run/docker.sock"
        );
    }

    #[test]
    fn run_exit_codes_follow_the_cli() {
        assert_eq!(
            start_error_code(
                "Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"x\": executable file not found in $PATH: unknown"
            ),
            127
        );
        assert_eq!(
            start_error_code("Error response from daemon: x: permission denied: unknown"),
            126
        );
        assert_eq!(
            start_error_code(
                "Cannot connect to the Docker daemon at tcp://x:2376. Is the docker daemon running?"
            ),
            125
        );
    }
}
