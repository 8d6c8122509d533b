//! `docker ps`, `inspect`, `logs`, `wait`, `rm`, `kill`, `stop` (cli
//! `cli/command/container/{list,inspect,logs,wait,rm,kill,stop}.go`,
//! `cli/command/formatter/container.go`, `cli/command/inspect/inspector.go`; the daemon's
//! side in moby `daemon/list.go`, `daemon/kill.go`, `daemon/delete.go`; docs.docker.com
//! `engine/reference/commandline/<command>/`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::engine::{ApiErr, Daemon};
use super::flags::{Parsed, checked, filter_check, flag, int_check, val};
use super::json::J;
use super::store::{Record, ZERO_TIME, parse_time};
use super::template::{self, Missing};
use super::{Cli, Sub, from_daemon};

/// A container command called as `docker <short_name>` or `docker container <...>`:
/// `(short_name, usage, long_usage, short)` name it.
fn sub(
    name: &str,
    (short_name, usage, long_usage, short): (&str, &'static str, &'static str, &'static str),
    flags: Vec<super::flags::Flag>,
    (min, max): (usize, Option<usize>),
    help: &'static str,
) -> Sub {
    let short_form = name == short_name;
    Sub {
        path: Box::leak(
            format!("docker {}", if short_form { short_name } else { name }).into_boxed_str(),
        ),
        usage: if short_form { usage } else { long_usage },
        short,
        flags,
        interspersed: true,
        min,
        max,
        help,
    }
}

/// `docker ps`.
pub fn ps_sub(name: &str) -> Sub {
    sub(
        name,
        (
            "ps",
            "docker ps [OPTIONS]",
            "docker container ls [OPTIONS]",
            "List containers",
        ),
        vec![
            flag("all", Some('a')),
            checked("filter", Some('f'), filter_check),
            val("format", None),
            checked("last", Some('n'), int_check),
            flag("latest", Some('l')),
            flag("no-trunc", None),
            flag("quiet", Some('q')),
            flag("size", Some('s')),
        ],
        (0, Some(0)),
        "
Options:
  -a, --all             Show all containers (default shows just running)
  -f, --filter filter   Filter output based on conditions provided (name=, label=KEY[=VALUE],
                        status=created|running|exited, id=, ancestor=)
      --format string   Pretty-print containers using a Go template
  -n, --last int        Show n last created containers (includes all states) (default -1)
  -l, --latest          Show the latest created container (includes all states)
      --no-trunc        Don't truncate output
  -q, --quiet           Only display container IDs

Examples:
  docker ps -a --filter label=com.example.job=42 --format '{{.Names}} {{.Status}}'
",
    )
}

/// `docker inspect`.
pub fn inspect_sub(name: &str) -> Sub {
    sub(
        name,
        (
            "inspect",
            "docker inspect [OPTIONS] NAME|ID [NAME|ID...]",
            "docker container inspect [OPTIONS] CONTAINER [CONTAINER...]",
            "Return low-level information on Docker objects",
        ),
        vec![
            val("format", Some('f')),
            flag("size", Some('s')),
            val("type", None),
        ],
        (1, None),
        "
Options:
  -f, --format string   Format the output using the given Go template
  -s, --size            Display total file sizes if the type is container
      --type string     Return JSON for specified type

Examples:
  docker inspect -f '{{.State.ExitCode}} {{.State.OOMKilled}}' build-42
  docker inspect -f '{{json .State}}' build-42
",
    )
}

/// `docker logs`.
pub fn logs_sub(name: &str) -> Sub {
    sub(
        name,
        (
            "logs",
            "docker logs [OPTIONS] CONTAINER",
            "docker container logs [OPTIONS] CONTAINER",
            "Fetch the logs of a container",
        ),
        vec![
            flag("details", None),
            flag("follow", Some('f')),
            val("since", None),
            val("tail", Some('n')),
            flag("timestamps", Some('t')),
            val("until", None),
        ],
        (1, Some(1)),
        "
Options:
  -f, --follow         Follow log output
  -n, --tail string    Number of lines to show from the end of the logs (default \"all\")
  -t, --timestamps     Show timestamps

Examples:
  docker logs -f build-42
",
    )
}

/// `docker wait`.
pub fn wait_sub(name: &str) -> Sub {
    sub(
        name,
        (
            "wait",
            "docker wait CONTAINER [CONTAINER...]",
            "docker container wait CONTAINER [CONTAINER...]",
            "Block until one or more containers stop, then print their exit codes",
        ),
        Vec::new(),
        (1, None),
        "
Examples:
  docker wait build-42
",
    )
}

/// `docker rm`.
pub fn rm_sub(name: &str) -> Sub {
    sub(
        name,
        (
            "rm",
            "docker rm [OPTIONS] CONTAINER [CONTAINER...]",
            "docker container rm [OPTIONS] CONTAINER [CONTAINER...]",
            "Remove one or more containers",
        ),
        vec![
            flag("force", Some('f')),
            flag("link", Some('l')),
            flag("volumes", Some('v')),
        ],
        (1, None),
        "
Options:
  -f, --force     Force the removal of a running container (uses SIGKILL)
  -l, --link      Remove the specified link
  -v, --volumes   Remove anonymous volumes associated with the container

Examples:
  docker rm -f build-42
",
    )
}

/// `docker kill`.
pub fn kill_sub(name: &str) -> Sub {
    sub(
        name,
        (
            "kill",
            "docker kill [OPTIONS] CONTAINER [CONTAINER...]",
            "docker container kill [OPTIONS] CONTAINER [CONTAINER...]",
            "Kill one or more running containers",
        ),
        vec![val("signal", Some('s'))],
        (1, None),
        "
Options:
  -s, --signal string   Signal to send to the container (default \"KILL\")

Examples:
  docker kill -s TERM build-42
",
    )
}

/// `docker stop`.
pub fn stop_sub(name: &str) -> Sub {
    sub(
        name,
        (
            "stop",
            "docker stop [OPTIONS] CONTAINER [CONTAINER...]",
            "docker container stop [OPTIONS] CONTAINER [CONTAINER...]",
            "Stop one or more running containers",
        ),
        vec![checked("time", Some('t'), int_check)],
        (1, None),
        "
Options:
  -t, --time int   Seconds to wait for stop before killing it (default 10)

Examples:
  docker stop -t 5 build-42
",
    )
}

/// go-units `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// Seconds since an RFC 3339 time.
pub fn since(time: &str) -> i64 {
    parse_time(time).map_or(0, |t| (chrono::Utc::now() - t).num_seconds())
}

/// The `Status` column (moby `container/state.go` `String`).
fn status_text(rec: &Record) -> String {
    let s = &rec.state;
    match s.status.as_str() {
        "running" => format!("Up {}", human_duration(since(&s.started_at))),
        _ if s.started_at == ZERO_TIME => "Created".into(),
        _ => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at))
        ),
    }
}

/// Go's `text/tabwriter` as the CLI sets it up (minwidth 10, tabwidth 1, padding 3, spaces):
/// tab-terminated cells of a column are padded to the widest one plus 3.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for cells in &lines {
        for (i, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(10));
        }
    }
    lines
        .iter()
        .map(|cells| {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < cells.len() {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    line.push_str(&" ".repeat(pad));
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders records with a `--format` (cli `formatter.Context`): `table` prints the header
/// and aligns the columns; `\t` and `\n` written as two characters become tab and newline.
pub fn render(format: &str, rows: &[J], header: &J, type_name: &str) -> Result<String, String> {
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest),
        None => (false, format),
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let tmpl = template::parse(&body).map_err(|e| format!("template parsing error: {e}"))?;
    let mut out = String::new();
    if table {
        let head = tmpl
            .execute(header, Missing::Typed(type_name))
            .map_err(|e| format!("template parsing error: {e}"))?;
        out.push_str(&head);
        out.push('\n');
    }
    for row in rows {
        let line = tmpl
            .execute(row, Missing::Typed(type_name))
            .map_err(|e| format!("template parsing error: {e}"))?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(if table { tabwrite(&out) } else { out })
}

/// Go's `strconv.Quote` of ASCII-and-printable text.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// cli `formatter.Ellipsis`.
fn ellipsis(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// One row of `docker ps` (cli `formatter.ContainerContext`).
fn ps_row(rec: &Record, trunc: bool) -> J {
    let command = if rec.args.is_empty() {
        rec.path.clone()
    } else {
        format!("{} {}", rec.path, rec.args.join(" "))
    };
    let created = parse_time(&rec.created).unwrap_or_else(chrono::Utc::now);
    let labels = rec
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mounts = rec
        .host
        .binds
        .iter()
        .map(|b| {
            let src = b.split(':').next().unwrap_or(b);
            if trunc {
                ellipsis(src, 15)
            } else {
                src.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    J::obj(vec![
        (
            "ID",
            J::s(if trunc {
                rec.id[..12].to_string()
            } else {
                rec.id.clone()
            }),
        ),
        ("Image", J::s(rec.image.clone())),
        (
            "Command",
            J::s(go_quote(&if trunc {
                ellipsis(&command, 20)
            } else {
                command
            })),
        ),
        (
            "CreatedAt",
            J::s(created.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()),
        ),
        (
            "RunningFor",
            J::s(format!("{} ago", human_duration(since(&rec.created)))),
        ),
        ("Ports", J::s("")),
        ("State", J::s(rec.state.status.clone())),
        ("Status", J::s(status_text(rec))),
        ("Size", J::s("0B")),
        ("Names", J::s(rec.name.clone())),
        ("Labels", J::s(labels)),
        ("Label", J::string_map(&rec.labels)),
        ("Mounts", J::s(mounts)),
        (
            "Networks",
            J::s(rec.host.network_mode.replace("default", "bridge")),
        ),
        ("LocalVolumes", J::s("0")),
    ])
}

fn ps_header() -> J {
    J::obj(vec![
        ("ID", J::s("CONTAINER ID")),
        ("Image", J::s("IMAGE")),
        ("Command", J::s("COMMAND")),
        ("CreatedAt", J::s("CREATED AT")),
        ("RunningFor", J::s("CREATED")),
        ("Ports", J::s("PORTS")),
        ("State", J::s("STATE")),
        ("Status", J::s("STATUS")),
        ("Size", J::s("SIZE")),
        ("Names", J::s("NAMES")),
        ("Labels", J::s("LABELS")),
        ("Label", J::s("LABEL")),
        ("Mounts", J::s("MOUNTS")),
        ("Networks", J::s("NETWORKS")),
        ("LocalVolumes", J::s("LOCAL VOLUMES")),
    ])
}

/// `docker ps`.
pub fn ps(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let daemon = match cli.daemon("GET", "/containers/json") {
        Ok(d) => d,
        Err(text) => {
            eprintln!("{text}");
            return 1;
        }
    };
    // moby `daemon/list.go`: the filters the daemon accepts, and their values.
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in p.values("filter") {
        let (k, v) = f.split_once('=').unwrap_or((&f, ""));
        filters
            .entry(k.to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    const ACCEPTED: &[&str] = &[
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    ];
    if let Some(bad) = filters.keys().find(|k| !ACCEPTED.contains(&k.as_str())) {
        eprintln!("Error response from daemon: Invalid filter '{bad}'");
        return 1;
    }
    const STATES: &[&str] = &[
        "paused",
        "restarting",
        "removing",
        "running",
        "dead",
        "created",
        "exited",
    ];
    for v in filters.get("status").into_iter().flatten() {
        if !STATES.contains(&v.as_str()) {
            eprintln!("Error response from daemon: Invalid filter 'status={v}'");
            return 1;
        }
    }
    let last: i64 = if p.bool("latest", false) {
        1
    } else {
        p.value("last").and_then(|v| v.parse().ok()).unwrap_or(-1)
    };
    let all = p.bool("all", false)
        || last > 0
        || filters.contains_key("status")
        || filters.contains_key("exited");
    let mut records: Vec<Record> = daemon.store.all();
    if last > 0 {
        records.truncate(usize::try_from(last).unwrap_or(usize::MAX));
    }
    let matches = |rec: &Record| -> bool {
        let any = |key: &str, test: &dyn Fn(&str) -> bool| {
            filters.get(key).is_none_or(|vs| vs.iter().any(|v| test(v)))
        };
        (all || rec.state.running())
            && any("name", &|v| {
                let v = v.strip_prefix('/').unwrap_or(v);
                let anchored_start = v.starts_with('^');
                let anchored_end = v.ends_with('$');
                let core = v.trim_start_matches('^').trim_end_matches('$');
                match (anchored_start, anchored_end) {
                    (true, true) => rec.name == core,
                    (true, false) => rec.name.starts_with(core),
                    (false, true) => rec.name.ends_with(core),
                    (false, false) => rec.name.contains(core),
                }
            })
            && any("label", &|v| match v.split_once('=') {
                Some((k, val)) => rec.labels.get(k).is_some_and(|x| x == val),
                None => rec.labels.contains_key(v),
            })
            && any("status", &|v| rec.state.status == v)
            && any("id", &|v| rec.id.starts_with(v))
            && any("exited", &|v| {
                rec.state.status == "exited" && v.parse::<i32>().ok() == Some(rec.state.exit_code)
            })
            && any("ancestor", &|v| {
                rec.image == v
                    || daemon
                        .image(v)
                        .is_some_and(|img| format!("sha256:{}", img.id) == rec.image_id)
            })
    };
    let records: Vec<&Record> = records.iter().filter(|r| matches(r)).collect();
    let trunc = !p.bool("no-trunc", false);
    let format = if p.bool("quiet", false) {
        "{{.ID}}".to_string()
    } else {
        match p.value("format") {
            Some(f) if !f.is_empty() && f != "table" => f.to_string(),
            _ => "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string(),
        }
    };
    let rows: Vec<J> = records.iter().map(|r| ps_row(r, trunc)).collect();
    match render(&format, &rows, &ps_header(), "*formatter.ContainerContext") {
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

/// `docker inspect`'s view of a container (moby `api/types` `ContainerJSON`, fields in
/// their order).
pub fn container_json(rec: &Record, daemon: &Daemon) -> J {
    let s = &rec.state;
    let state = J::obj(vec![
        ("Status", J::s(s.status.clone())),
        ("Running", J::Bool(s.running())),
        ("Paused", J::Bool(false)),
        ("Restarting", J::Bool(false)),
        ("OOMKilled", J::Bool(s.oom_killed)),
        ("Dead", J::Bool(false)),
        ("Pid", J::Int(i64::from(s.pid))),
        ("ExitCode", J::Int(i64::from(s.exit_code))),
        ("Error", J::s(s.error.clone())),
        ("StartedAt", J::s(s.started_at.clone())),
        ("FinishedAt", J::s(s.finished_at.clone())),
    ]);
    let h = &rec.host;
    let other = |key: &str| -> J {
        let v: Vec<String> = h
            .other
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect();
        if v.is_empty() {
            J::Null
        } else {
            J::strings(Some(&v))
        }
    };
    let dir = daemon.store.container_dir(&rec.id).display().to_string();
    let host_config = J::obj(vec![
        (
            "Binds",
            if h.binds.is_empty() {
                J::Null
            } else {
                J::strings(Some(&h.binds))
            },
        ),
        ("ContainerIDFile", J::s("")),
        (
            "LogConfig",
            J::obj(vec![
                ("Type", J::s("json-file")),
                ("Config", J::Map(BTreeMap::new())),
            ]),
        ),
        ("NetworkMode", J::s(h.network_mode.clone())),
        ("PortBindings", J::Map(BTreeMap::new())),
        (
            "RestartPolicy",
            J::obj(vec![
                ("Name", J::s(h.restart.clone())),
                ("MaximumRetryCount", J::Int(0)),
            ]),
        ),
        ("AutoRemove", J::Bool(h.auto_remove)),
        ("VolumeDriver", J::s("")),
        ("VolumesFrom", other("volumes-from")),
        ("CapAdd", other("cap-add")),
        ("CapDrop", other("cap-drop")),
        ("CgroupnsMode", J::s("private")),
        ("Dns", J::Arr(Vec::new())),
        ("DnsOptions", J::Arr(Vec::new())),
        ("DnsSearch", J::Arr(Vec::new())),
        ("ExtraHosts", other("add-host")),
        ("GroupAdd", other("group-add")),
        ("IpcMode", J::s("private")),
        ("Cgroup", J::s("")),
        ("Links", J::Null),
        ("OomScoreAdj", J::Int(0)),
        ("PidMode", J::s("")),
        ("Privileged", J::Bool(h.privileged)),
        ("PublishAllPorts", J::Bool(false)),
        ("ReadonlyRootfs", J::Bool(false)),
        ("SecurityOpt", other("security-opt")),
        ("UTSMode", J::s("")),
        ("UsernsMode", J::s("")),
        (
            "ShmSize",
            J::Int(if h.shm_size > 0 {
                h.shm_size
            } else {
                67_108_864
            }),
        ),
        ("Runtime", J::s("runc")),
        ("ConsoleSize", J::Arr(vec![J::Int(0), J::Int(0)])),
        ("Isolation", J::s("")),
        ("CpuShares", J::Int(0)),
        ("Memory", J::Int(h.memory)),
        ("NanoCpus", J::Int(h.nano_cpus)),
        ("CgroupParent", J::s("")),
        ("CpuPeriod", J::Int(0)),
        ("CpuQuota", J::Int(0)),
        ("CpusetCpus", J::s(h.cpuset_cpus.clone())),
        ("CpusetMems", J::s("")),
        ("Devices", J::Arr(Vec::new())),
        ("KernelMemory", J::Int(h.kernel_memory)),
        ("KernelMemoryTCP", J::Int(0)),
        ("MemoryReservation", J::Int(0)),
        (
            "MemorySwap",
            J::Int(if h.memory > 0 && h.memory_swap == 0 {
                h.memory * 2
            } else {
                h.memory_swap
            }),
        ),
        ("MemorySwappiness", J::Null),
        ("OomKillDisable", J::Null),
        ("PidsLimit", J::Null),
        ("Ulimits", J::Null),
        ("Init", if h.init { J::Bool(true) } else { J::Null }),
    ]);
    let mounts = J::Arr(
        h.binds
            .iter()
            .map(|b| {
                let parts: Vec<&str> = b.split(':').collect();
                let (src, dst) = match parts.as_slice() {
                    [one] => ("", *one),
                    [s, d, ..] => (*s, *d),
                    [] => ("", ""),
                };
                let rw = !parts
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|x| x == "ro"));
                J::obj(vec![
                    (
                        "Type",
                        J::s(if src.starts_with('/') {
                            "bind"
                        } else {
                            "volume"
                        }),
                    ),
                    ("Source", J::s(src)),
                    ("Destination", J::s(dst)),
                    ("Mode", J::s(parts.get(2).copied().unwrap_or(""))),
                    ("RW", J::Bool(rw)),
                    ("Propagation", J::s("rprivate")),
                ])
            })
            .collect(),
    );
    let config = J::obj(vec![
        ("Hostname", J::s(rec.hostname.clone())),
        ("Domainname", J::s("")),
        ("User", J::s(rec.user.clone())),
        ("AttachStdin", J::Bool(rec.attach[0])),
        ("AttachStdout", J::Bool(rec.attach[1])),
        ("AttachStderr", J::Bool(rec.attach[2])),
        ("Tty", J::Bool(rec.tty)),
        ("OpenStdin", J::Bool(rec.open_stdin)),
        ("StdinOnce", J::Bool(rec.stdin_once)),
        ("Env", J::strings(Some(&rec.env))),
        ("Cmd", J::strings(rec.cmd.as_deref())),
        ("Image", J::s(rec.image.clone())),
        ("Volumes", J::Null),
        ("WorkingDir", J::s(rec.working_dir.clone())),
        ("Entrypoint", J::strings(rec.entrypoint.as_deref())),
        ("OnBuild", J::Null),
        ("Labels", J::string_map(&rec.labels)),
    ]);
    J::obj(vec![
        ("Id", J::s(rec.id.clone())),
        ("Created", J::s(rec.created.clone())),
        ("Path", J::s(rec.path.clone())),
        ("Args", J::strings(Some(&rec.args))),
        ("State", state),
        ("Image", J::s(rec.image_id.clone())),
        ("ResolvConfPath", J::s(format!("{dir}/resolv.conf"))),
        ("HostnamePath", J::s(format!("{dir}/hostname"))),
        ("HostsPath", J::s(format!("{dir}/hosts"))),
        (
            "LogPath",
            J::s(daemon.store.log_path(&rec.id).display().to_string()),
        ),
        ("Name", J::s(format!("/{}", rec.name))),
        ("RestartCount", J::Int(0)),
        ("Driver", J::s("overlay2")),
        ("Platform", J::s("linux")),
        ("MountLabel", J::s("")),
        ("ProcessLabel", J::s("")),
        ("AppArmorProfile", J::s("docker-default")),
        ("ExecIDs", J::Null),
        ("HostConfig", host_config),
        ("Mounts", mounts),
        ("Config", config),
        (
            "NetworkSettings",
            J::obj(vec![
                ("Bridge", J::s("")),
                ("SandboxID", J::s("")),
                ("Ports", J::Map(BTreeMap::new())),
                ("IPAddress", J::s("")),
                ("Networks", super::network::container_networks(daemon, rec)),
            ]),
        ),
    ])
}

/// Prints inspected values (cli `inspect.Inspect`): without a format an indented JSON list,
/// with one each value's text; errors after, exit 1 (a template that does not parse: 64).
pub fn print_inspected(values: Vec<J>, errors: Vec<String>, format: Option<&str>) -> i32 {
    let mut errors = errors;
    match format.filter(|f| !f.is_empty()) {
        None => println!("{}", J::Arr(values).to_json_pretty()),
        Some(f) => {
            let tmpl = match template::parse(f) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("template parsing error: {e}");
                    return 64;
                }
            };
            let mut out = String::new();
            for v in &values {
                match tmpl.execute(v, Missing::Inspect) {
                    Ok(text) => {
                        out.push_str(&text);
                        out.push('\n');
                    }
                    Err(e) => errors.push(format!("template parsing error: {e}")),
                }
            }
            if out.is_empty() {
                out.push('\n');
            }
            print!("{out}");
        }
    }
    if errors.is_empty() {
        0
    } else {
        eprintln!("{}", errors.join("\n"));
        1
    }
}

/// `docker inspect`.
pub fn inspect(cli: &mut Cli<'_>, sub: &Sub, p: Parsed) -> i32 {
    let containers_only = sub.path == "docker container inspect";
    let kind = p
        .value("type")
        .unwrap_or(if containers_only { "container" } else { "" });
    if !matches!(kind, "" | "container" | "image") {
        eprintln!("{kind:?} is not a valid value for --type");
        return 1;
    }
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for reference in &p.args {
        let path = if kind == "image" {
            format!("/images/{reference}/json")
        } else {
            format!("/containers/{reference}/json")
        };
        let daemon = match cli.daemon("GET", &path) {
            Ok(d) => d,
            Err(text) => {
                errors.push(text);
                continue;
            }
        };
        if kind != "image" {
            match daemon.find(reference) {
                Ok(rec) => {
                    values.push(container_json(&rec, &daemon));
                    continue;
                }
                Err(e) if !e.not_found => {
                    errors.push(from_daemon(&e));
                    continue;
                }
                Err(_) => {}
            }
        }
        if kind != "container"
            && let Some(img) = daemon.image(reference)
        {
            values.push(super::system::image_json(img));
            continue;
        }
        errors.push(match kind {
            "container" => format!("Error: No such container: {reference}"),
            "image" => format!("Error: No such image: {reference}"),
            _ => format!("Error: No such object: {reference}"),
        });
    }
    print_inspected(values, errors, p.value("format"))
}

/// `docker logs`.
pub fn logs(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
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
    let tail = p.value("tail").and_then(|t| t.parse::<usize>().ok());
    let timestamps = p.bool("timestamps", false);
    let log = daemon.store.log_path(&rec.id);
    let mut offset = super::engine::print_log_from(&log, 0, tail, timestamps);
    if p.bool("follow", false) {
        loop {
            let running = daemon
                .store
                .load(&rec.id)
                .is_some_and(|r| r.state.running());
            offset = super::engine::print_log_from(&log, offset, None, timestamps);
            if !running {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    0
}

/// `docker wait`.
pub fn wait(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let mut errors = Vec::new();
    for reference in &p.args {
        let result = cli
            .daemon("POST", &format!("/containers/{reference}/wait"))
            .and_then(|daemon| {
                let rec = daemon.find(reference).map_err(|e| from_daemon(&e))?;
                match daemon.wait_not_running(&rec.id, Duration::MAX) {
                    Some(last) => Ok(last.state.exit_code),
                    // Removed by --rm, or by someone else: its last exit code.
                    None => Ok(daemon.store.removed_exit_code(&rec.id).unwrap_or(137)),
                }
            });
        match result {
            Ok(code) => println!("{code}"),
            Err(text) => errors.push(text),
        }
    }
    if errors.is_empty() {
        0
    } else {
        eprintln!("{}", errors.join("\n"));
        1
    }
}

/// `docker rm`: a container that is not there is reported and, with `-f`, no error (cli
/// `rm.go`).
pub fn rm(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let force = p.bool("force", false);
    let mut errors = Vec::new();
    for reference in &p.args {
        let name = reference.trim_matches('/');
        if name.is_empty() {
            errors.push("Container name cannot be empty".to_string());
            continue;
        }
        let query = if force { "?force=1" } else { "" };
        let result: Result<(), (String, bool)> = cli
            .daemon("DELETE", &format!("/containers/{name}{query}"))
            .map_err(|t| (t, false))
            .and_then(|daemon| {
                daemon.remove(name, force).map_err(|e: ApiErr| {
                    if e.not_found {
                        // moby client `wrapResponseError`.
                        (format!("Error: No such container: {name}"), true)
                    } else {
                        (from_daemon(&e), false)
                    }
                })
            });
        match result {
            Ok(()) => println!("{reference}"),
            Err((text, true)) if force => eprintln!("{text}"),
            Err((text, _)) => errors.push(text),
        }
    }
    if errors.is_empty() {
        0
    } else {
        eprintln!("{}", errors.join("\n"));
        1
    }
}

/// A signal by number or name, with or without `SIG` (moby `pkg/signal` `ParseSignal`).
pub fn parse_signal(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return (n > 0 && n < 65).then_some(n);
    }
    let upper = text.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    })
}

/// `docker kill` (moby `api/server/router/container` `postContainersKill`: `Cannot kill
/// container: <name>: <why>`).
pub fn kill(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let signal = p.value("signal").unwrap_or("KILL").to_string();
    let mut errors = Vec::new();
    for reference in &p.args {
        let result = cli
            .daemon(
                "POST",
                &format!("/containers/{reference}/kill?signal={signal}"),
            )
            .and_then(|daemon| {
                let Some(sig) = parse_signal(&signal) else {
                    return Err(format!(
                        "Error response from daemon: Invalid signal: {signal}"
                    ));
                };
                let cannot = |e: ApiErr| {
                    format!(
                        "Error response from daemon: Cannot kill container: {reference}: {}",
                        e.msg
                    )
                };
                let rec = daemon.find(reference).map_err(cannot)?;
                daemon.kill(&rec, sig).map_err(cannot)
            });
        match result {
            Ok(()) => println!("{reference}"),
            Err(text) => errors.push(text),
        }
    }
    if errors.is_empty() {
        0
    } else {
        eprintln!("{}", errors.join("\n"));
        1
    }
}

/// `docker stop`: SIGTERM, then SIGKILL after `-t` seconds (default 10).
pub fn stop(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let seconds: u64 = p.value("time").and_then(|t| t.parse().ok()).unwrap_or(10);
    let mut errors = Vec::new();
    for reference in &p.args {
        let result = cli
            .daemon("POST", &format!("/containers/{reference}/stop"))
            .and_then(|daemon| {
                let rec = daemon.find(reference).map_err(|e| from_daemon(&e))?;
                if rec.state.running() {
                    let _ = daemon.kill(&rec, libc::SIGTERM);
                    let last = daemon.wait_not_running(&rec.id, Duration::from_secs(seconds));
                    if let Some(last) = last
                        && last.state.running()
                    {
                        let _ = daemon.kill(&last, libc::SIGKILL);
                    }
                }
                Ok(())
            });
        match result {
            Ok(()) => println!("{reference}"),
            Err(text) => errors.push(text),
        }
    }
    if errors.is_empty() {
        0
    } else {
        eprintln!("{}", errors.join("\n"));
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_as_tabwriter_does() {
        let text = "CONTAINER ID\tIMAGE\tNAMES\nabc\talpine\tx\n";
        assert_eq!(
            tabwrite(text),
            "CONTAINER ID   IMAGE     NAMES\nabc            alpine    x\n"
        );
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(75), "About a minute");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(
            ellipsis("sh -c 'if [ -x /usr/local/bin/bash ]'", 20),
            "sh -c 'if [ -x /usr…"
        );
    }
}
