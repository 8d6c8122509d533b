//! `docker network create|rm|ls|inspect` and the networks of a simulated daemon (cli
//! `cli/command/network/{create,remove,list,inspect,formatter}.go`; moby `daemon/network.go`
//! `FindNetwork`, `createNetwork`, `deleteNetwork`, `daemon/network/filter.go`,
//! `api/server/router/network/network_routes.go`, and the vendored libnetwork
//! `vendor/github.com/docker/libnetwork/error.go`, `network.go`; docs.docker.com
//! `engine/reference/commandline/network_<command>/`).
//!
//! A daemon's networks are kept beside its containers, one file each:
//! `<state-dir>/docker/<daemon>/.networks/<id>.json`. `bridge`, `host` and `none` are
//! written the first time the networks are read, as dockerd creates them when it starts.
//! Nothing is connected: a container's processes use the host's network whatever its
//! network, so a network only records which containers are on it (its endpoints are the
//! running containers whose `--network` names it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::engine::{ApiErr, Daemon};
use super::flags::{Flag, Parsed, checked, filter_check, flag, val};
use super::json::J;
use super::manage::{print_inspected, render};
use super::store::{Record, Store, new_id, now};
use super::{Cli, Sub, from_daemon};

/// The networks every daemon has (moby `runconfig.IsPreDefinedNetwork`), with their
/// drivers.
pub const PREDEFINED: &[(&str, &str)] = &[("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// A network, as the daemon keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `bridge`, `host`, `null`.
    pub driver: String,
    /// RFC 3339 (nanoseconds).
    pub created: String,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
    /// The made-up IPv4 subnet (`172.N.0.0/16`; empty for `host` and `none`).
    pub subnet: String,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// `--ipv6`.
    pub ipv6: bool,
}

impl Network {
    /// One of `bridge`, `host`, `none`.
    pub fn predefined(&self) -> bool {
        PREDEFINED.iter().any(|(n, _)| *n == self.name)
    }
}

/// Whether a network mode names a user-defined network (moby `NetworkMode.IsUserDefined`).
pub fn user_defined(mode: &str) -> bool {
    !matches!(mode, "" | "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

fn dir(store: &Store) -> PathBuf {
    store.dir.join(".networks")
}

fn save(store: &Store, net: &Network) -> std::io::Result<()> {
    std::fs::create_dir_all(dir(store))?;
    let text = serde_json::to_vec(net).map_err(std::io::Error::other)?;
    crate::daemon::launch::write_atomic(&dir(store).join(format!("{}.json", net.id)), &text)
}

fn read_all(store: &Store) -> Vec<Network> {
    let Ok(entries) = std::fs::read_dir(dir(store)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

/// Every network of a daemon (the predefined ones written on first use).
pub fn all(store: &Store) -> Vec<Network> {
    let nets = read_all(store);
    if PREDEFINED
        .iter()
        .all(|(n, _)| nets.iter().any(|x| x.name == *n))
    {
        return nets;
    }
    let Ok(_lock) = store.lock() else {
        return nets;
    };
    let nets = read_all(store);
    for (name, driver) in PREDEFINED {
        if !nets.iter().any(|x| x.name == *name) {
            let net = Network {
                id: new_id(),
                name: name.to_string(),
                driver: driver.to_string(),
                created: now(),
                subnet: if *name == "bridge" {
                    "172.17.0.0/16".into()
                } else {
                    String::new()
                },
                ..Network::default()
            };
            let _ = save(store, &net);
        }
    }
    read_all(store)
}

/// The network a term names (moby `daemon/network.go` `FindNetwork`): a full id, a name, a
/// unique id prefix; else `network x not found` (not found).
pub fn find(store: &Store, term: &str) -> Result<Network, ApiErr> {
    let nets = all(store);
    if let Some(n) = nets.iter().find(|n| n.id == term) {
        return Ok(n.clone());
    }
    if let Some(n) = nets.iter().find(|n| n.name == term) {
        return Ok(n.clone());
    }
    let by_id: Vec<&Network> = nets.iter().filter(|n| n.id.starts_with(term)).collect();
    match by_id.as_slice() {
        [one] if !term.is_empty() => Ok((*one).clone()),
        [] | [_] => Err(ApiErr::not_found(format!("network {term} not found"))),
        many => Err(ApiErr::new(format!(
            "network {term} is ambiguous ({} matches found based on ID prefix)",
            many.len()
        ))),
    }
}

/// The network a container's network mode names, when it exists.
pub fn of_container(store: &Store, rec: &Record) -> Option<Network> {
    let mode = rec.host.network_mode.as_str();
    match mode {
        "" | "default" => find(store, "bridge").ok(),
        m if m.starts_with("container:") => None,
        m => find(store, m).ok(),
    }
}

/// The running containers on a network (its endpoints), oldest first.
pub fn endpoints(store: &Store, net: &Network) -> Vec<Record> {
    let mut on: Vec<Record> = store
        .all()
        .into_iter()
        .filter(|r| r.state.running())
        .filter(|r| of_container(store, r).is_some_and(|n| n.id == net.id))
        .collect();
    on.sort_by(|a, b| a.created.cmp(&b.created));
    on
}

/// What the daemon checks of a container's network when it starts it (moby
/// `daemon/container_operations.go` `findAndAttachNetwork`: a network that is gone is
/// `network x not found`, found only at start, so `docker create` takes any name;
/// `validateNetworkingConfig`: aliases only on a user-defined network).
pub fn check_start(store: &Store, rec: &Record) -> Result<(), ApiErr> {
    let mode = rec.host.network_mode.as_str();
    if user_defined(mode) {
        find(store, mode)?;
    } else if !rec.aliases.is_empty() {
        return Err(ApiErr::new(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    Ok(())
}

/// Made-up addresses of a container on a network: its position among the endpoints.
fn address(net: &Network, index: usize) -> (String, String, String) {
    let base: Vec<&str> = net.subnet.split(['.', '/']).collect();
    if base.len() < 2 {
        return (String::new(), String::new(), String::new());
    }
    let second: u8 = base[1].parse().unwrap_or(17);
    let host = index + 2;
    (
        format!("{}.{}.0.{host}", base[0], base[1]),
        format!("{}.{}.0.1", base[0], base[1]),
        format!("02:42:ac:{second:02x}:00:{:02x}", host % 256),
    )
}

/// `docker inspect`'s `NetworkSettings.Networks` of a container (moby `api/types/network`
/// `EndpointSettings`; the daemon adds the short id, and the host name when `-h` set one, to
/// the aliases on a user-defined network when the container starts: `updateNetworkConfig`).
pub fn container_networks(daemon: &Daemon, rec: &Record) -> J {
    let mode = rec.host.network_mode.as_str();
    if mode.starts_with("container:") {
        return J::Map(BTreeMap::new());
    }
    let net = of_container(&daemon.store, rec);
    let key = match (&net, mode) {
        (Some(n), _) => n.name.clone(),
        (None, "" | "default") => "bridge".to_string(),
        (None, m) => m.to_string(),
    };
    let mut aliases = rec.aliases.clone();
    if rec.state.status != "created" && user_defined(&key) {
        let short = rec.id[..12].to_string();
        if !aliases.contains(&short) {
            aliases.push(short);
        }
        if rec.hostname != rec.id[..12] && !aliases.contains(&rec.hostname) {
            aliases.push(rec.hostname.clone());
        }
    }
    let attached = net.as_ref().filter(|_| rec.state.running());
    let (ip, gateway, mac, prefix) = match attached {
        Some(n) => {
            let index = endpoints(&daemon.store, n)
                .iter()
                .position(|r| r.id == rec.id)
                .unwrap_or(0);
            let (ip, gw, mac) = address(n, index);
            let prefix = if ip.is_empty() { 0 } else { 16 };
            (ip, gw, mac, prefix)
        }
        None => Default::default(),
    };
    let endpoint = J::obj(vec![
        ("IPAMConfig", J::Null),
        ("Links", J::Null),
        (
            "Aliases",
            J::strings(Some(aliases.as_slice()).filter(|a| !a.is_empty())),
        ),
        (
            "NetworkID",
            J::s(attached.map(|n| n.id.clone()).unwrap_or_default()),
        ),
        (
            "EndpointID",
            J::s(attached.map(|n| endpoint_id(n, rec)).unwrap_or_default()),
        ),
        ("Gateway", J::s(gateway)),
        ("IPAddress", J::s(ip)),
        ("IPPrefixLen", J::Int(prefix)),
        ("IPv6Gateway", J::s("")),
        ("GlobalIPv6Address", J::s("")),
        ("GlobalIPv6PrefixLen", J::Int(0)),
        ("MacAddress", J::s(mac)),
        ("DriverOpts", J::Null),
    ]);
    J::Map(BTreeMap::from([(key, endpoint)]))
}

fn endpoint_id(net: &Network, rec: &Record) -> String {
    super::store::digest(&format!("{}/{}", net.id, rec.id))
}

/// `docker network inspect`'s view (moby `api/types` `NetworkResource`, fields in order).
pub fn network_json(store: &Store, net: &Network) -> J {
    let containers: BTreeMap<String, J> = endpoints(store, net)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (ip, _, mac) = address(net, i);
            let ip = if ip.is_empty() {
                ip
            } else {
                format!("{ip}/16")
            };
            (
                r.id.clone(),
                J::obj(vec![
                    ("Name", J::s(r.name.clone())),
                    ("EndpointID", J::s(endpoint_id(net, r))),
                    ("MacAddress", J::s(mac)),
                    ("IPv4Address", J::s(ip)),
                    ("IPv6Address", J::s("")),
                ]),
            )
        })
        .collect();
    let config = if net.subnet.is_empty() {
        J::Arr(Vec::new())
    } else {
        let gateway = address(net, 0).1;
        J::Arr(vec![J::obj(vec![
            ("Subnet", J::s(net.subnet.clone())),
            ("Gateway", J::s(gateway)),
        ])])
    };
    let predefined = net.predefined();
    J::obj(vec![
        ("Name", J::s(net.name.clone())),
        ("Id", J::s(net.id.clone())),
        ("Created", J::s(net.created.clone())),
        ("Scope", J::s("local")),
        ("Driver", J::s(net.driver.clone())),
        ("EnableIPv6", J::Bool(net.ipv6)),
        (
            "IPAM",
            J::obj(vec![
                ("Driver", J::s("default")),
                (
                    "Options",
                    if predefined {
                        J::Null
                    } else {
                        J::Map(BTreeMap::new())
                    },
                ),
                ("Config", config),
            ]),
        ),
        ("Internal", J::Bool(net.internal)),
        ("Attachable", J::Bool(net.attachable)),
        ("Ingress", J::Bool(false)),
        ("ConfigFrom", J::obj(vec![("Network", J::s(""))])),
        ("ConfigOnly", J::Bool(false)),
        ("Containers", J::Map(containers)),
        ("Options", J::string_map(&net.options)),
        ("Labels", J::string_map(&net.labels)),
    ])
}

/// The `docker network` commands, by the word after `network`.
pub fn sub(word: &str) -> Option<Sub> {
    let (path, usage, short, flags, min, max, help): (
        &'static str,
        &'static str,
        &'static str,
        Vec<Flag>,
        usize,
        Option<usize>,
        &'static str,
    ) = match word {
        "create" => (
            "docker network create",
            "docker network create [OPTIONS] NETWORK",
            "Create a network",
            vec![
                val("aux-address", None),
                flag("attachable", None),
                val("config-from", None),
                flag("config-only", None),
                val("driver", Some('d')),
                val("gateway", None),
                flag("ingress", None),
                flag("internal", None),
                val("ip-range", None),
                val("ipam-driver", None),
                val("ipam-opt", None),
                flag("ipv6", None),
                checked("label", None, super::container::label_check),
                val("opt", Some('o')),
                val("scope", None),
                val("subnet", None),
            ],
            1,
            Some(1),
            "
Options (recorded; no network is really made):
  -d, --driver string   Driver to manage the Network (default \"bridge\"; the only one)
      --label list      Set metadata on a network
  -o, --opt map         Set driver specific options
      --internal        Restrict external access to the network
      --attachable      Enable manual container attachment
      --ipv6            Enable IPv6 networking

Examples:
  docker -H tcp://node01:2376 network create --label com.example.job=42 ci-42
",
        ),
        "rm" | "remove" => (
            if word == "rm" {
                "docker network rm"
            } else {
                "docker network remove"
            },
            "docker network rm NETWORK [NETWORK...]",
            "Remove one or more networks",
            Vec::new(),
            1,
            None,
            "
Examples:
  docker -H tcp://node01:2376 network rm ci-42
",
        ),
        "ls" | "list" => (
            if word == "ls" {
                "docker network ls"
            } else {
                "docker network list"
            },
            "docker network ls [OPTIONS]",
            "List networks",
            vec![
                checked("filter", Some('f'), filter_check),
                val("format", None),
                flag("no-trunc", None),
                flag("quiet", Some('q')),
            ],
            0,
            Some(0),
            "
Options:
  -f, --filter filter   Provide filter values (name=, label=KEY[=VALUE], driver=, id=, scope=, type=)
      --format string   Pretty-print networks using a Go template
      --no-trunc        Do not truncate the output
  -q, --quiet           Only display network IDs
",
        ),
        "inspect" => (
            "docker network inspect",
            "docker network inspect [OPTIONS] NETWORK [NETWORK...]",
            "Display detailed information on one or more networks",
            vec![val("format", Some('f')), flag("verbose", Some('v'))],
            1,
            None,
            "
Options:
  -f, --format string   Format the output using the given Go template
  -v, --verbose         Verbose output for diagnostics
",
        ),
        _ => return None,
    };
    Some(Sub {
        path,
        usage,
        short,
        flags,
        interspersed: true,
        min,
        max,
        help,
    })
}

/// `docker network` alone.
pub const USAGE: &str = "\nUsage:  docker network COMMAND\n\nManage networks\n\nCommands:\n  create      Create a network\n  inspect     Display detailed information on one or more networks\n  ls          List networks\n  rm          Remove one or more networks\n\nRun 'docker network COMMAND --help' for more information on a command.\n";

fn daemon_or_print(cli: &mut Cli<'_>, method: &str, path: &str) -> Option<Daemon> {
    match cli.daemon(method, path) {
        Ok(d) => Some(d),
        Err(text) => {
            eprintln!("{text}");
            None
        }
    }
}

/// `docker network create`: prints the id (moby `createNetwork`: a predefined name, then
/// `CheckDuplicate`, which the client always sets).
pub fn create(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let name = p.args[0].clone();
    let Some(daemon) = daemon_or_print(cli, "POST", "/networks/create") else {
        return 1;
    };
    let refuse = |msg: String| {
        eprintln!("Error response from daemon: {msg}");
        1
    };
    if PREDEFINED.iter().any(|(n, _)| *n == name) {
        // moby `daemon/network.go` `PredefinedNetworkError` (its trailing space too).
        return refuse(format!(
            "operation is not permitted on predefined {name} network "
        ));
    }
    let driver = p.value("driver").unwrap_or("bridge").to_string();
    let store = &daemon.store;
    // The predefined networks first: `all` may take the lock to write them.
    all(store);
    let Ok(_lock) = store.lock() else {
        return refuse("cannot lock the network store".into());
    };
    let existing = read_all(store);
    if existing.iter().any(|n| n.name == name) {
        // libnetwork `error.go` `NetworkNameError`.
        return refuse(format!("network with name {name} already exists"));
    }
    if driver != "bridge" {
        // libnetwork's driver lookup through the plugin registry (choice: only bridge).
        return refuse(format!("plugin {driver:?} not found"));
    }
    let used: Vec<String> = existing.iter().map(|n| n.subnet.clone()).collect();
    let subnet = (18..=31)
        .map(|b| format!("172.{b}.0.0/16"))
        .chain((0..=255).map(|b| format!("192.168.{b}.0/20")))
        .find(|s| !used.contains(s))
        .unwrap_or_default();
    let kv = |name: &str| -> BTreeMap<String, String> {
        p.values(name)
            .into_iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l, String::new()),
            })
            .collect()
    };
    let net = Network {
        id: new_id(),
        name,
        driver,
        created: now(),
        labels: kv("label"),
        options: kv("opt"),
        subnet,
        internal: p.bool("internal", false),
        attachable: p.bool("attachable", false),
        ipv6: p.bool("ipv6", false),
    };
    if let Err(e) = save(store, &net) {
        return refuse(format!("cannot store the network: {e}"));
    }
    println!("{}", net.id);
    0
}

/// `docker network rm`: each name removed is printed; each error is printed as it comes,
/// exit 1 at the end (cli `network/remove.go`; moby `deleteNetwork`, libnetwork
/// `network.go` `delete`: `ActiveEndpointsError`, wrapped `error while removing network`).
pub fn rm(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let mut status = 0;
    for name in &p.args {
        let Some(daemon) = daemon_or_print(cli, "DELETE", &format!("/networks/{name}")) else {
            status = 1;
            continue;
        };
        let store = &daemon.store;
        let result = (|| -> Result<(), String> {
            let net = find(store, name).map_err(|e| {
                if e.not_found {
                    // moby client `wrapResponseError`.
                    format!("Error: No such network: {name}")
                } else {
                    from_daemon(&e)
                }
            })?;
            let daemon_err = |msg: String| from_daemon(&ApiErr::new(msg));
            if net.predefined() {
                return Err(daemon_err(format!(
                    "{} is a pre-defined network and cannot be removed",
                    net.name
                )));
            }
            let _lock = store
                .lock()
                .map_err(|e| daemon_err(format!("cannot lock the network store: {e}")))?;
            if !endpoints(store, &net).is_empty() {
                return Err(daemon_err(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    net.name, net.id
                )));
            }
            let _ = std::fs::remove_file(dir(store).join(format!("{}.json", net.id)));
            Ok(())
        })();
        match result {
            Ok(()) => println!("{name}"),
            Err(text) => {
                eprintln!("{text}");
                status = 1;
            }
        }
    }
    status
}

/// `docker network ls`: by name (cli `network/list.go` sorts with `sortorder.NaturalLess`),
/// the daemon's filters (moby `daemon/network/filter.go`).
pub fn ls(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let Some(daemon) = daemon_or_print(cli, "GET", "/networks") else {
        return 1;
    };
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in p.values("filter") {
        let (k, v) = f.split_once('=').unwrap_or((&f, ""));
        filters
            .entry(k.to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    const ACCEPTED: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];
    if let Some(bad) = filters.keys().find(|k| !ACCEPTED.contains(&k.as_str())) {
        eprintln!("Error response from daemon: Invalid filter '{bad}'");
        return 1;
    }
    for v in filters.get("type").into_iter().flatten() {
        if !matches!(v.as_str(), "builtin" | "custom") {
            eprintln!("Error response from daemon: invalid filter: 'type'='{v}'");
            return 1;
        }
    }
    let substring = |pattern: &str, text: &str| -> bool {
        let start = pattern.starts_with('^');
        let end = pattern.ends_with('$');
        let core = pattern.trim_start_matches('^').trim_end_matches('$');
        match (start, end) {
            (true, true) => text == core,
            (true, false) => text.starts_with(core),
            (false, true) => text.ends_with(core),
            (false, false) => text.contains(core),
        }
    };
    let mut nets = all(&daemon.store);
    nets.sort_by(|a, b| a.name.cmp(&b.name));
    let nets: Vec<Network> = nets
        .into_iter()
        .filter(|n| {
            let any = |key: &str, test: &dyn Fn(&str) -> bool| {
                filters.get(key).is_none_or(|vs| vs.iter().any(|v| test(v)))
            };
            any("name", &|v| substring(v, &n.name))
                && any("id", &|v| substring(v, &n.id))
                && any("driver", &|v| v == n.driver)
                && any("scope", &|v| v == "local")
                && any("label", &|v| match v.split_once('=') {
                    Some((k, val)) => n.labels.get(k).is_some_and(|x| x == val),
                    None => n.labels.contains_key(v),
                })
                && any("type", &|v| (v == "builtin") == n.predefined())
                && any("dangling", &|v| {
                    let dangling = !n.predefined() && endpoints(&daemon.store, n).is_empty();
                    matches!(v, "1" | "true") == dangling
                })
        })
        .collect();
    let trunc = !p.bool("no-trunc", false);
    let format = if p.bool("quiet", false) {
        "{{.ID}}".to_string()
    } else {
        match p.value("format") {
            Some(f) if !f.is_empty() && f != "table" => f.to_string(),
            _ => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_string(),
        }
    };
    let rows: Vec<J> = nets
        .iter()
        .map(|n| {
            let labels = n
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            J::obj(vec![
                (
                    "ID",
                    J::s(if trunc {
                        n.id[..12].to_string()
                    } else {
                        n.id.clone()
                    }),
                ),
                ("Name", J::s(n.name.clone())),
                ("Driver", J::s(n.driver.clone())),
                ("Scope", J::s("local")),
                ("IPv6", J::s(n.ipv6.to_string())),
                ("Internal", J::s(n.internal.to_string())),
                ("Labels", J::s(labels)),
                ("Label", J::string_map(&n.labels)),
                ("CreatedAt", J::s(n.created.clone())),
            ])
        })
        .collect();
    let header = J::obj(vec![
        ("ID", J::s("NETWORK ID")),
        ("Name", J::s("NAME")),
        ("Driver", J::s("DRIVER")),
        ("Scope", J::s("SCOPE")),
        ("IPv6", J::s("IPV6")),
        ("Internal", J::s("INTERNAL")),
        ("Labels", J::s("LABELS")),
        ("Label", J::s("LABEL")),
        ("CreatedAt", J::s("CREATED AT")),
    ]);
    match render(&format, &rows, &header, "*network.networkContext") {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// `docker network inspect` (cli `network/inspect.go`, `inspect.Inspect`).
pub fn inspect(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for name in &p.args {
        let daemon = match cli.daemon("GET", &format!("/networks/{name}")) {
            Ok(d) => d,
            Err(text) => {
                errors.push(text);
                continue;
            }
        };
        match find(&daemon.store, name) {
            Ok(net) => values.push(network_json(&daemon.store, &net)),
            Err(e) if e.not_found => errors.push(format!("Error: No such network: {name}")),
            Err(e) => errors.push(from_daemon(&e)),
        }
    }
    print_inspected(values, errors, p.value("format"))
}
