//! The Docker daemon of the allocated node, through the `docker` client.
//!
//! Every call names the daemon (`-H`) and, with TLS, the client's certificates, so batchci's
//! own `DOCKER_*` environment never decides where a build runs.

use std::path::{Path, PathBuf};

use crate::backends::{JobContext, JobFailure};
use crate::command::CommandSpec;
use crate::config::{DockerConfig, SlurmConfig};

/// The daemon address when `[runners.docker] host` is not set: Docker's TLS port.
pub(crate) const DEFAULT_HOST: &str = "tcp://{hostname}:2376";

/// The container's command: the first shell the image has, reading the stage script on its
/// standard input (the script holds the job's secrets: it is never written to a file).
/// A fixed text; nothing of the user's goes through it.
pub(crate) const DETECT_SHELL: &str = "if [ -x /usr/local/bin/bash ]; then exec /usr/local/bin/bash -s; \
elif [ -x /usr/bin/bash ]; then exec /usr/bin/bash -s; \
elif [ -x /bin/bash ]; then exec /bin/bash -s; \
elif [ -x /bin/sh ]; then exec /bin/sh -s; \
else echo 'batchci: no shell in the image' >&2; exit 1; fi";

/// One node's Docker daemon.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    program: PathBuf,
    /// `-H tcp://node01:2376 [--tlsverify --tlscacert ...]`.
    global: Vec<String>,
    /// The daemon's address, for messages.
    pub(crate) host: String,
}

impl Daemon {
    /// The daemon of `hostname`, as `[runners.docker]` describes it. The TLS files must be
    /// there: their absence is said here, not in a docker error later.
    pub(crate) fn of(config: &DockerConfig, hostname: &str) -> Result<Daemon, JobFailure> {
        let template = config.host.as_deref().unwrap_or(DEFAULT_HOST);
        let host = template
            .replace("{hostname}", hostname)
            .replace("{node}", hostname);
        let mut global = vec!["-H".to_string(), host.clone()];
        if let Some(dir) = &config.tls_cert_path {
            let file = |name: &str| -> Result<String, JobFailure> {
                let path = dir.join(name);
                std::fs::File::open(&path).map_err(|error| {
                    JobFailure::system(format!(
                        "[runners.docker] tls_cert_path: cannot read {}: {error}",
                        path.display()
                    ))
                })?;
                Ok(path.display().to_string())
            };
            if config.tls_verify {
                global.extend([
                    "--tlsverify".to_string(),
                    "--tlscacert".to_string(),
                    file("ca.pem")?,
                ]);
            } else {
                global.push("--tls".to_string());
                // The client reads a CA file even without verifying (~/.docker/ca.pem when not
                // named): name the site's when there is one.
                if dir.join("ca.pem").is_file() {
                    global.extend(["--tlscacert".to_string(), file("ca.pem")?]);
                }
            }
            global.extend(["--tlscert".to_string(), file("cert.pem")?]);
            global.extend(["--tlskey".to_string(), file("key.pem")?]);
        } else if config.tls_verify {
            return Err(JobFailure::system(
                "[runners.docker] tls_verify is set but tls_cert_path is not: batchci needs ca.pem, cert.pem and key.pem",
            ));
        }
        let program = config
            .docker_program
            .clone()
            .unwrap_or_else(|| PathBuf::from("docker"));
        Ok(Daemon {
            program,
            global,
            host,
        })
    }

    /// `docker <global options> <args>` with the runner's scheduler environment.
    pub(crate) fn command<I, S>(&self, ctx: &JobContext, args: I) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = self
            .global
            .iter()
            .cloned()
            .chain(args.into_iter().map(Into::into))
            .collect();
        let mut spec = CommandSpec::new(&self.program, args, "/");
        spec.env = ctx.command_env();
        spec
    }

    /// Asks the daemon for its version: an unreachable daemon or refused certificates fail
    /// the job before any of its code runs.
    pub(crate) async fn check(&self, ctx: &JobContext) -> Result<(), JobFailure> {
        let spec = self.command(ctx, ["version", "--format", "{{.Server.Version}}"]);
        let out = spec
            .output()
            .await
            .map_err(|e| JobFailure::system(e.to_string()))?;
        if out.code == 0 {
            return Ok(());
        }
        let said = out
            .stderr_text()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        Err(JobFailure::system(format!(
            "the Docker daemon at {} cannot be used (docker version, exit code {}): {said}",
            self.host, out.code
        )))
    }

    /// Removes a container, running or not; a container that is not there is no error.
    pub(crate) async fn remove(&self, ctx: &JobContext, name: &str) {
        self.remove_quietly(ctx, &["rm", "--force", name], "No such container")
            .await;
    }

    /// Removes the job's network; one that is not there is no error.
    pub(crate) async fn remove_network(&self, ctx: &JobContext, name: &str) {
        self.remove_quietly(ctx, &["network", "rm", name], "No such network")
            .await;
    }

    /// Runs a removal; its failure is a warning in the job log, unless docker says the thing
    /// is gone already (`gone`).
    async fn remove_quietly(&self, ctx: &JobContext, args: &[&str], gone: &str) {
        let spec = self.command(ctx, args.iter().copied());
        match spec.output().await {
            Ok(out) if out.code == 0 => {}
            Ok(out) if out.stderr_text().contains(gone) => {}
            Ok(out) => ctx.log.warning(&format!(
                "{} failed (exit code {}): {}",
                spec.display(),
                out.code,
                out.stderr_text().trim()
            )),
            Err(error) => ctx.log.warning(&format!("{}: {error}", spec.display())),
        }
    }

    /// Whether the kernel killed the container for exceeding its memory limit.
    pub(crate) async fn oom_killed(&self, ctx: &JobContext, name: &str) -> bool {
        let spec = self.command(ctx, ["inspect", "--format", "{{.State.OOMKilled}}", name]);
        matches!(spec.output().await, Ok(out) if out.code == 0 && out.stdout_text().trim() == "true")
    }

    /// The argv (after the global options) of `docker run` for one stage.
    pub(crate) fn run_args(&self, container: &Container<'_>) -> Vec<String> {
        let mut args = vec![
            "run".to_string(),
            "--interactive".to_string(),
            format!("--name={}", container.name),
            format!("--label=com.batchci.job={}", container.job_id),
            format!("--cpuset-cpus={}", container.cpuset),
        ];
        if let Some(memory) = &container.memory {
            // --memory-swap equal to --memory: no swap beyond the allocation.
            args.push(format!("--memory={memory}"));
            args.push(format!("--memory-swap={memory}"));
        }
        if let Some(kernel) = &container.kernel_memory {
            args.push(format!("--kernel-memory={kernel}"));
        }
        if container.docker.shm_size > 0 {
            args.push(format!("--shm-size={}", container.docker.shm_size));
        }
        if container.docker.privileged {
            args.push("--privileged".to_string());
        }
        for dir in container.shared_dirs() {
            let dir = dir.display().to_string();
            args.push(format!("--volume={dir}:{dir}"));
        }
        for volume in &container.docker.volumes {
            args.push(format!("--volume={volume}"));
        }
        if let Some(network) = container.network {
            args.push(format!("--network={network}"));
        }
        args.push(format!("--workdir={}", container.workdir.display()));
        args.extend([
            container.image.to_string(),
            "sh".to_string(),
            "-c".to_string(),
            DETECT_SHELL.to_string(),
        ]);
        args
    }
}

/// The `docker run --detach` argv (after the global options) of a service container: on the
/// job's network under its aliases, limited like the build when `limits` (cpuset, memory).
pub(crate) fn service_args(
    service: &crate::job::Image,
    name: &str,
    job_id: u64,
    network: &str,
    limits: Option<(&str, Option<&str>)>,
) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        "--detach".to_string(),
        format!("--name={name}"),
        format!("--label=com.batchci.job={job_id}"),
        format!("--network={network}"),
    ];
    for alias in service_aliases(service) {
        args.push(format!("--network-alias={alias}"));
    }
    if let Some((cpuset, memory)) = limits {
        args.push(format!("--cpuset-cpus={cpuset}"));
        if let Some(memory) = memory {
            args.push(format!("--memory={memory}"));
            args.push(format!("--memory-swap={memory}"));
        }
    }
    let mut command: Vec<String> = Vec::new();
    if let Some((entrypoint, rest)) = service.entrypoint.split_first() {
        args.push(format!("--entrypoint={entrypoint}"));
        command.extend(rest.iter().cloned());
    }
    command.extend(service.command.iter().cloned());
    args.push(service.name.clone());
    args.extend(command);
    args
}

/// The names a service answers to, as gitlab-runner's docker executor gives them: its
/// `alias`es, then the image name without tag or digest with `/` as `-` and as `__`
/// (`tutum/wordpress:4` → `tutum-wordpress`, `tutum__wordpress`).
pub(crate) fn service_aliases(service: &crate::job::Image) -> Vec<String> {
    let mut aliases: Vec<String> = service
        .alias
        .split([',', ' '])
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    let image = service.name.split('@').next().unwrap_or_default();
    let image = match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => image,
    };
    for derived in [image.replace('/', "-"), image.replace('/', "__")] {
        if !derived.is_empty() && !aliases.contains(&derived) {
            aliases.push(derived);
        }
    }
    aliases
}

/// What one stage's container is.
#[derive(Debug)]
pub(crate) struct Container<'a> {
    pub(crate) name: &'a str,
    pub(crate) job_id: u64,
    pub(crate) image: &'a str,
    pub(crate) cpuset: &'a str,
    /// Docker's form of the allocation's memory (`4096m`).
    pub(crate) memory: Option<String>,
    pub(crate) kernel_memory: Option<String>,
    pub(crate) docker: &'a DockerConfig,
    /// The project directory: the container's working directory.
    pub(crate) workdir: &'a Path,
    /// The job's network, when it has services.
    pub(crate) network: Option<&'a str>,
}

impl Container<'_> {
    /// What of the shared file system the container sees, each at its own path: the job's
    /// checkout and its `.tmp` sibling (file variables), never the rest of the builds
    /// directory (other jobs' files) nor batchci's own scratch files.
    fn shared_dirs(&self) -> [PathBuf; 2] {
        let mut tmp = self.workdir.as_os_str().to_os_string();
        tmp.push(".tmp");
        [self.workdir.to_path_buf(), PathBuf::from(tmp)]
    }
}

/// Slurm's memory (`4G`, `4000` = MB, `512M`, `1T`) in Docker's units (`4096m`): Slurm counts
/// in MiB without a suffix, Docker in bytes. `None` for a value that is neither.
pub(crate) fn docker_memory(slurm: &str) -> Option<String> {
    let text = slurm.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, "M"),
    };
    let amount: u64 = digits.parse().ok()?;
    let mebibytes = match unit.to_ascii_uppercase().as_str() {
        "K" => amount.div_ceil(1024),
        "M" => amount,
        "G" => amount.checked_mul(1024)?,
        "T" => amount.checked_mul(1024 * 1024)?,
        _ => return None,
    };
    Some(format!("{mebibytes}m"))
}

/// The memory settings of `[runners.slurm]` for the container, checked.
pub(crate) fn memory_limits(
    slurm: &SlurmConfig,
) -> Result<(Option<String>, Option<String>), JobFailure> {
    let convert = |key: &str, value: &Option<String>| match value {
        None => Ok(None),
        Some(value) => docker_memory(value).map(Some).ok_or_else(|| {
            JobFailure::system(format!(
                "[runners.slurm] {key} = {value:?} is not a memory size such as 4G or 4000 (MB)"
            ))
        }),
    };
    Ok((
        convert("memory", &slurm.memory)?,
        convert("kernel_memory", &slurm.kernel_memory)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_memory_becomes_docker_memory() {
        assert_eq!(docker_memory("4G").as_deref(), Some("4096m"));
        assert_eq!(docker_memory("2g").as_deref(), Some("2048m"));
        assert_eq!(docker_memory("4000").as_deref(), Some("4000m"));
        assert_eq!(docker_memory("512M").as_deref(), Some("512m"));
        assert_eq!(docker_memory("1536K").as_deref(), Some("2m"));
        assert_eq!(docker_memory("1T").as_deref(), Some("1048576m"));
        assert_eq!(docker_memory("lots"), None);
        assert_eq!(docker_memory("4GB"), None);
    }

    #[test]
    fn services_answer_to_their_aliases_and_image_names() {
        let service = |name: &str, alias: &str| crate::job::Image {
            name: name.into(),
            alias: alias.into(),
            ..crate::job::Image::default()
        };
        assert_eq!(service_aliases(&service("postgres:14", "")), ["postgres"]);
        assert_eq!(
            service_aliases(&service("tutum/wordpress:4", "db,wp")),
            ["db", "wp", "tutum-wordpress", "tutum__wordpress"]
        );
        assert_eq!(
            service_aliases(&service("registry:5000/team/redis", "")),
            ["registry:5000-team-redis", "registry:5000__team__redis"]
        );
        let args = service_args(
            &crate::job::Image {
                name: "redis:7".into(),
                entrypoint: vec!["redis-server".into(), "--save".into()],
                command: vec!["--port".into(), "6380".into()],
                ..crate::job::Image::default()
            },
            "svc-1",
            9,
            "net",
            Some(("2-3", Some("512m"))),
        );
        assert_eq!(
            args,
            [
                "run",
                "--detach",
                "--name=svc-1",
                "--label=com.batchci.job=9",
                "--network=net",
                "--network-alias=redis",
                "--cpuset-cpus=2-3",
                "--memory=512m",
                "--memory-swap=512m",
                "--entrypoint=redis-server",
                "redis:7",
                "--save",
                "--port",
                "6380"
            ]
        );
    }

    #[test]
    fn the_daemon_is_the_allocated_nodes() {
        let config = DockerConfig::default();
        let daemon = Daemon::of(&config, "node07").unwrap();
        assert_eq!(daemon.host, "tcp://node07:2376");
        assert_eq!(daemon.global, ["-H", "tcp://node07:2376"]);
        let config = DockerConfig {
            host: Some("tcp://{node}.cluster:2375".into()),
            ..DockerConfig::default()
        };
        assert_eq!(
            Daemon::of(&config, "n1").unwrap().host,
            "tcp://n1.cluster:2375"
        );
    }

    #[test]
    fn tls_needs_its_three_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ca.pem", "cert.pem"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let config = DockerConfig {
            tls_cert_path: Some(dir.path().to_path_buf()),
            tls_verify: true,
            ..DockerConfig::default()
        };
        let missing = Daemon::of(&config, "n").unwrap_err();
        assert!(
            missing.message.starts_with(&format!(
                "[runners.docker] tls_cert_path: cannot read {}/key.pem: ",
                dir.path().display()
            )),
            "{}",
            missing.message
        );
        std::fs::write(dir.path().join("key.pem"), "x").unwrap();
        let daemon = Daemon::of(&config, "n").unwrap();
        let d = dir.path().display();
        assert_eq!(
            daemon.global,
            [
                "-H".to_string(),
                "tcp://n:2376".into(),
                "--tlsverify".into(),
                "--tlscacert".into(),
                format!("{d}/ca.pem"),
                "--tlscert".into(),
                format!("{d}/cert.pem"),
                "--tlskey".into(),
                format!("{d}/key.pem"),
            ]
        );
    }
}
