//! `docker version`, `info`, `images`, `image inspect`, `pull` (cli
//! `cli/command/system/{version,info}.go`, `cli/command/image/{list,inspect,pull}.go`,
//! `cli/command/formatter/image.go`; docs.docker.com `engine/reference/commandline/<command>/`).

use super::engine::{Daemon, Image, machine_cpus, mem_total};
use super::flags::{Parsed, checked, filter_check, flag, val};
use super::json::J;
use super::manage::{human_duration, print_inspected, render, since};
use super::template::{self, Missing};
use super::{API_VERSION, Cli, Sub, VERSION};

fn simple(
    path: &'static str,
    usage: &'static str,
    short: &'static str,
    flags: Vec<super::flags::Flag>,
    (min, max): (usize, Option<usize>),
    help: &'static str,
) -> Sub {
    Sub {
        path,
        usage,
        short,
        flags,
        interspersed: true,
        min,
        max,
        help,
    }
}

/// `docker version`.
pub fn version_sub() -> Sub {
    simple(
        "docker version",
        "docker version [OPTIONS]",
        "Show the Docker version information",
        vec![val("format", Some('f')), val("kubeconfig", None)],
        (0, Some(0)),
        "
Options:
  -f, --format string   Format the output using the given Go template

Examples:
  docker -H tcp://node01:2376 version --format '{{.Server.Version}}'
",
    )
}

/// `docker info`.
pub fn info_sub(name: &str) -> Sub {
    let long = name != "info";
    simple(
        if long {
            "docker system info"
        } else {
            "docker info"
        },
        if long {
            "docker system info [OPTIONS]"
        } else {
            "docker info [OPTIONS]"
        },
        "Display system-wide information",
        vec![val("format", Some('f'))],
        (0, Some(0)),
        "
Options:
  -f, --format string   Format the output using the given Go template

Examples:
  docker -H tcp://node01:2376 info --format '{{.NCPU}} {{.MemTotal}}'
",
    )
}

/// `docker images`.
pub fn images_sub(name: &str) -> Sub {
    let long = name != "images";
    simple(
        if long {
            "docker image ls"
        } else {
            "docker images"
        },
        if long {
            "docker image ls [OPTIONS] [REPOSITORY[:TAG]]"
        } else {
            "docker images [OPTIONS] [REPOSITORY[:TAG]]"
        },
        "List images",
        vec![
            flag("all", Some('a')),
            flag("digests", None),
            checked("filter", Some('f'), filter_check),
            val("format", None),
            flag("no-trunc", None),
            flag("quiet", Some('q')),
        ],
        (0, Some(1)),
        "
Options:
  -a, --all             Show all images (default hides intermediate images)
      --format string   Pretty-print images using a Go template
      --no-trunc        Don't truncate output
  -q, --quiet           Only show image IDs

Examples:
  docker images --format '{{.Repository}}:{{.Tag}}'
",
    )
}

/// `docker image inspect`.
pub fn image_inspect_sub() -> Sub {
    simple(
        "docker image inspect",
        "docker image inspect [OPTIONS] IMAGE [IMAGE...]",
        "Display detailed information on one or more images",
        vec![val("format", Some('f'))],
        (1, None),
        "
Options:
  -f, --format string   Format the output using the given Go template

Examples:
  docker image inspect -f '{{.Id}}' alpine
",
    )
}

/// `docker pull`.
pub fn pull_sub(name: &str) -> Sub {
    let long = name != "pull";
    simple(
        if long {
            "docker image pull"
        } else {
            "docker pull"
        },
        if long {
            "docker image pull [OPTIONS] NAME[:TAG|@DIGEST]"
        } else {
            "docker pull [OPTIONS] NAME[:TAG|@DIGEST]"
        },
        "Pull an image or a repository from a registry",
        vec![
            flag("all-tags", Some('a')),
            flag("disable-content-trust", None),
            val("platform", None),
            flag("quiet", Some('q')),
        ],
        (1, Some(1)),
        "
Options:
  -q, --quiet   Suppress verbose output

The simulated registry has only the images the daemons already have ([docker] images).

Examples:
  docker pull alpine
",
    )
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

const BUILT: &str = "Thu May 18 08:38:34 2023";
const GO_VERSION: &str = "go1.19.8";

fn version_value(server: bool) -> J {
    let client = J::obj(vec![
        ("Platform", J::obj(vec![("Name", J::s(""))])),
        ("Version", J::s(VERSION)),
        ("APIVersion", J::s(API_VERSION)),
        ("DefaultAPIVersion", J::s(API_VERSION)),
        ("GitCommit", J::s("297e128")),
        ("GoVersion", J::s(GO_VERSION)),
        ("Os", J::s("linux")),
        ("Arch", J::s(arch())),
        ("BuildTime", J::s(BUILT)),
        ("Context", J::s("default")),
        ("Experimental", J::Bool(true)),
    ]);
    let server = if server {
        let component = |name: &str, version: &str, details: Vec<(&str, &str)>| {
            J::obj(vec![
                ("Name", J::s(name)),
                ("Version", J::s(version)),
                (
                    "Details",
                    J::Map(
                        details
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), J::s(v)))
                            .collect(),
                    ),
                ),
            ])
        };
        J::obj(vec![
            ("Platform", J::obj(vec![("Name", J::s(""))])),
            (
                "Components",
                J::Arr(vec![
                    component(
                        "Engine",
                        VERSION,
                        vec![
                            ("ApiVersion", API_VERSION),
                            ("Arch", arch()),
                            ("BuildTime", BUILT),
                            ("Experimental", "false"),
                            ("GitCommit", "5d6db84"),
                            ("GoVersion", GO_VERSION),
                            ("KernelVersion", "6.1.0-mock-cluster"),
                            ("MinAPIVersion", "1.12"),
                            ("Os", "linux"),
                        ],
                    ),
                    component(
                        "containerd",
                        "1.6.20~ds1",
                        vec![("GitCommit", "1.6.20~ds1-1+b1")],
                    ),
                    component(
                        "runc",
                        "1.1.5+ds1",
                        vec![("GitCommit", "1.1.5+ds1-1+deb12u1")],
                    ),
                    component("docker-init", "0.19.0", vec![("GitCommit", "")]),
                ]),
            ),
            ("Version", J::s(VERSION)),
            ("APIVersion", J::s(API_VERSION)),
            ("MinAPIVersion", J::s("1.12")),
            ("GitCommit", J::s("5d6db84")),
            ("GoVersion", J::s(GO_VERSION)),
            ("Os", J::s("linux")),
            ("Arch", J::s(arch())),
            ("KernelVersion", J::s("6.1.0-mock-cluster")),
            ("Experimental", J::Bool(false)),
            ("BuildTime", J::s("2023-05-18T08:38:34.000000000+00:00")),
        ])
    } else {
        J::Null
    };
    J::obj(vec![("Client", client), ("Server", server)])
}

/// Go's `tabwriter` with the version command's settings (minwidth 20, padding 1).
fn tab20(text: &str) -> String {
    text.split('\n')
        .map(|line| match line.split_once('\t') {
            Some((key, value)) => {
                let width = (key.chars().count() + 1).max(20);
                format!("{key}{}{value}", " ".repeat(width - key.chars().count()))
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `docker version`: the client's part always, the server's when it answers (cli
/// `version.go`: the error of the server after the client's part, exit 1).
pub fn version(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let server = cli.daemon("GET", "/version");
    let value = version_value(server.is_ok());
    match p.value("format").filter(|f| !f.is_empty()) {
        Some(format) => {
            let tmpl = match template::parse(format) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("Template parsing error: {e}");
                    return 64;
                }
            };
            let text = tmpl.execute(&value, Missing::Typed("main.versionInfo"));
            match (&text, &server) {
                (Ok(t), _) => println!("{t}"),
                (Err(_), Err(_)) => println!(),
                (Err(e), Ok(_)) => {
                    println!();
                    eprintln!("{e}");
                    return 1;
                }
            }
        }
        None => {
            let mut text = format!(
                "Client:\n Version:\t{VERSION}\n API version:\t{API_VERSION}\n Go version:\t{GO_VERSION}\n Git commit:\t297e128\n Built:\t{BUILT}\n OS/Arch:\tlinux/{}\n Context:\tdefault\n Experimental:\ttrue\n",
                arch()
            );
            if server.is_ok() {
                text.push_str(&format!(
                    "\nServer:\n Engine:\n  Version:\t{VERSION}\n  API version:\t{API_VERSION} (minimum version 1.12)\n  Go version:\t{GO_VERSION}\n  Git commit:\t5d6db84\n  Built:\t{BUILT}\n  OS/Arch:\tlinux/{}\n  Experimental:\tfalse\n containerd:\n  Version:\t1.6.20~ds1\n  GitCommit:\t1.6.20~ds1-1+b1\n runc:\n  Version:\t1.1.5+ds1\n  GitCommit:\t1.1.5+ds1-1+deb12u1\n docker-init:\n  Version:\t0.19.0\n  GitCommit:\t\n",
                    arch()
                ));
            }
            print!("{}", tab20(&text));
        }
    }
    match server {
        Ok(_) => 0,
        Err(text) => {
            eprintln!("{text}");
            1
        }
    }
}

/// go-units `HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
pub fn human_size(size: i64) -> String {
    const UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = size as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{v:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[i])
}

/// `docker info`.
pub fn info(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let daemon = cli.daemon("GET", "/info");
    let value = daemon.as_ref().ok().map(info_value);
    if let Some(format) = p.value("format").filter(|f| !f.is_empty()) {
        let tmpl = match template::parse(format) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("template parsing error: {e}");
                return 64;
            }
        };
        return match (&value, &daemon) {
            (Some(v), _) => match tmpl.execute(v, Missing::Typed("info")) {
                Ok(t) => {
                    println!("{t}");
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            },
            (None, Err(text)) => {
                eprintln!("{text}");
                1
            }
            (None, Ok(_)) => 1,
        };
    }
    println!("Client:\n Context:    default\n Debug Mode: false\n\nServer:");
    let (Some(v), Ok(_)) = (&value, &daemon) else {
        if let Err(text) = &daemon {
            println!("ERROR: {text}");
        }
        eprintln!("errors pretty printing info");
        return 1;
    };
    let get = |k: &str| v.get(k).map(J::go_string).unwrap_or_default();
    println!(" Containers: {}", get("Containers"));
    println!("  Running: {}", get("ContainersRunning"));
    println!("  Paused: 0");
    println!("  Stopped: {}", get("ContainersStopped"));
    println!(" Images: {}", get("Images"));
    println!(" Server Version: {VERSION}");
    println!(" Storage Driver: overlay2");
    println!(" Logging Driver: json-file");
    println!(" Cgroup Driver: systemd");
    println!(" Cgroup Version: 2");
    println!(" Default Runtime: runc");
    println!(" Kernel Version: {}", get("KernelVersion"));
    println!(" Operating System: {}", get("OperatingSystem"));
    println!(" OSType: linux");
    println!(" Architecture: {}", get("Architecture"));
    println!(" CPUs: {}", get("NCPU"));
    let mem = v.get("MemTotal").and_then(|m| match m {
        J::Int(i) => Some(*i),
        _ => None,
    });
    println!(
        " Total Memory: {:.2}GiB",
        mem.unwrap_or(0) as f64 / (1u64 << 30) as f64
    );
    println!(" Name: {}", get("Name"));
    println!(" ID: {}", get("ID"));
    println!(" Docker Root Dir: /var/lib/docker");
    println!(" Debug Mode: false");
    println!(" Registry: https://index.docker.io/v1/");
    println!(" Labels:");
    println!(" Experimental: false");
    println!(" Insecure Registries:");
    println!("  127.0.0.0/8");
    println!(" Live Restore Enabled: false");
    0
}

fn info_value(daemon: &Daemon) -> J {
    let all = daemon.store.all();
    let running = all.iter().filter(|r| r.state.running()).count() as i64;
    let (cpus, cpus_text) = machine_cpus();
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let machine = uname
        .as_ref()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = super::store::digest(&format!("daemon {}", daemon.host_name));
    J::obj(vec![
        ("ID", J::s(id[..36].to_uppercase())),
        ("Containers", J::Int(all.len() as i64)),
        ("ContainersRunning", J::Int(running)),
        ("ContainersPaused", J::Int(0)),
        ("ContainersStopped", J::Int(all.len() as i64 - running)),
        ("Images", J::Int(daemon.images.len() as i64)),
        ("Driver", J::s("overlay2")),
        ("MemoryLimit", J::Bool(true)),
        ("SwapLimit", J::Bool(true)),
        ("KernelMemory", J::Bool(false)),
        ("CpuCfsPeriod", J::Bool(true)),
        ("CpuCfsQuota", J::Bool(true)),
        ("CPUShares", J::Bool(true)),
        ("CPUSet", J::Bool(true)),
        ("PidsLimit", J::Bool(true)),
        ("OomKillDisable", J::Bool(false)),
        ("NCPU", J::Int(cpus.len() as i64)),
        ("CPUs", J::s(cpus_text)),
        ("MemTotal", J::Int(mem_total())),
        ("DockerRootDir", J::s("/var/lib/docker")),
        ("Name", J::s(daemon.host_name.clone())),
        ("Labels", J::Arr(Vec::new())),
        ("ServerVersion", J::s(VERSION)),
        ("KernelVersion", J::s(kernel)),
        ("OperatingSystem", J::s("Debian GNU/Linux 12 (bookworm)")),
        ("OSType", J::s("linux")),
        ("Architecture", J::s(machine)),
        ("CgroupDriver", J::s("systemd")),
        ("CgroupVersion", J::s("2")),
        ("LoggingDriver", J::s("json-file")),
        ("Debug", J::Bool(false)),
    ])
}

/// `docker image inspect`'s view of an image (moby `api/types` `ImageInspect`).
pub fn image_json(img: &Image) -> J {
    let id = format!("sha256:{}", img.id);
    J::obj(vec![
        ("Id", J::s(id.clone())),
        ("RepoTags", J::Arr(vec![J::s(img.reference())])),
        (
            "RepoDigests",
            J::Arr(vec![J::s(format!(
                "{}@sha256:{}",
                img.repo,
                super::store::digest(&img.id)
            ))]),
        ),
        ("Parent", J::s("")),
        ("Comment", J::s("")),
        ("Created", J::s(img.created.clone())),
        ("Container", J::s("")),
        ("DockerVersion", J::s("20.10.23")),
        ("Author", J::s("")),
        (
            "Config",
            J::obj(vec![
                ("Hostname", J::s("")),
                ("Domainname", J::s("")),
                ("User", J::s("")),
                ("AttachStdin", J::Bool(false)),
                ("AttachStdout", J::Bool(false)),
                ("AttachStderr", J::Bool(false)),
                ("Tty", J::Bool(false)),
                ("OpenStdin", J::Bool(false)),
                ("StdinOnce", J::Bool(false)),
                (
                    "Env",
                    J::Arr(vec![J::s(format!("PATH={}", super::engine::DEFAULT_PATH))]),
                ),
                ("Cmd", J::strings(Some(&img.cmd))),
                ("Image", J::s(id.clone())),
                ("Volumes", J::Null),
                ("WorkingDir", J::s("")),
                ("Entrypoint", J::Null),
                ("OnBuild", J::Null),
                ("Labels", J::Null),
            ]),
        ),
        ("Architecture", J::s(arch())),
        ("Os", J::s("linux")),
        ("Size", J::Int(img.size)),
        ("VirtualSize", J::Int(img.size)),
        (
            "GraphDriver",
            J::obj(vec![("Data", J::Null), ("Name", J::s("overlay2"))]),
        ),
        (
            "RootFS",
            J::obj(vec![
                ("Type", J::s("layers")),
                (
                    "Layers",
                    J::Arr(vec![J::s(format!(
                        "sha256:{}",
                        super::store::digest(&format!("layer {}", img.id))
                    ))]),
                ),
            ]),
        ),
        (
            "Metadata",
            J::obj(vec![("LastTagTime", J::s(super::store::ZERO_TIME))]),
        ),
    ])
}

/// `docker image inspect`.
pub fn image_inspect(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for reference in &p.args {
        match cli.daemon("GET", &format!("/images/{reference}/json")) {
            Ok(daemon) => match daemon.image(reference) {
                Some(img) => values.push(image_json(img)),
                None => errors.push(format!("Error: No such image: {reference}")),
            },
            Err(text) => errors.push(text),
        }
    }
    print_inspected(values, errors, p.value("format"))
}

/// `docker images`.
pub fn images(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let daemon = match cli.daemon("GET", "/images/json") {
        Ok(d) => d,
        Err(text) => {
            eprintln!("{text}");
            return 1;
        }
    };
    let trunc = !p.bool("no-trunc", false);
    let wanted: Vec<String> = p
        .args
        .iter()
        .cloned()
        .chain(
            p.values("filter")
                .into_iter()
                .filter_map(|f| f.strip_prefix("reference=").map(str::to_string)),
        )
        .collect();
    let rows: Vec<J> = daemon
        .images
        .iter()
        .filter(|img| {
            wanted.is_empty()
                || wanted.iter().any(|w| match w.split_once(':') {
                    Some((r, t)) => img.repo == r && img.tag == t,
                    None => img.repo == *w,
                })
        })
        .map(|img| {
            J::obj(vec![
                (
                    "ID",
                    J::s(if trunc {
                        img.id[..12].to_string()
                    } else {
                        format!("sha256:{}", img.id)
                    }),
                ),
                ("Repository", J::s(img.repo.clone())),
                ("Tag", J::s(img.tag.clone())),
                ("Digest", J::s("<none>")),
                (
                    "CreatedSince",
                    J::s(format!("{} ago", human_duration(since(&img.created)))),
                ),
                ("CreatedAt", J::s(img.created.clone())),
                ("Size", J::s(human_size(img.size))),
                ("Containers", J::s("N/A")),
                ("VirtualSize", J::s(human_size(img.size))),
                ("SharedSize", J::s("N/A")),
                ("UniqueSize", J::s("N/A")),
            ])
        })
        .collect();
    let header = J::obj(vec![
        ("ID", J::s("IMAGE ID")),
        ("Repository", J::s("REPOSITORY")),
        ("Tag", J::s("TAG")),
        ("Digest", J::s("DIGEST")),
        ("CreatedSince", J::s("CREATED")),
        ("CreatedAt", J::s("CREATED AT")),
        ("Size", J::s("SIZE")),
        ("Containers", J::s("CONTAINERS")),
        ("VirtualSize", J::s("VIRTUAL SIZE")),
        ("SharedSize", J::s("SHARED SIZE")),
        ("UniqueSize", J::s("UNIQUE SIZE")),
    ]);
    let format = if p.bool("quiet", false) {
        "{{.ID}}".to_string()
    } else {
        match p.value("format") {
            Some(f) if !f.is_empty() && f != "table" => f.to_string(),
            _ => "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into(),
        }
    };
    match render(&format, &rows, &header, "*formatter.imageContext") {
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

/// `docker pull`: the simulated registry has the daemons' images and nothing else.
pub fn pull(cli: &mut Cli<'_>, _sub: &Sub, p: Parsed) -> i32 {
    let reference = &p.args[0];
    let daemon = match cli.daemon("POST", "/images/create") {
        Ok(d) => d,
        Err(text) => {
            eprintln!("{text}");
            return 1;
        }
    };
    if !reference.contains(':') && !reference.contains('@') {
        println!("Using default tag: latest");
    }
    match daemon.image(reference) {
        Some(img) => {
            if !p.bool("quiet", false) {
                let path = if img.repo.contains('/') {
                    img.repo.clone()
                } else {
                    format!("library/{}", img.repo)
                };
                println!("{}: Pulling from {path}", img.tag);
                println!("Digest: sha256:{}", super::store::digest(&img.id));
                println!("Status: Image is up to date for {}", img.reference());
            }
            let full = if img.repo.contains('/') {
                img.reference()
            } else {
                format!("docker.io/library/{}", img.reference())
            };
            println!("{full}");
            0
        }
        None => {
            let repo =
                super::engine::split_reference(reference).map_or(reference.clone(), |(r, _)| r);
            eprintln!(
                "Error response from daemon: pull access denied for {repo}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units_prints_them() {
        assert_eq!(human_size(7_334_434), "7.33MB");
        assert_eq!(human_size(116_513_120), "117MB");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(10_000_000), "10MB");
    }
}
