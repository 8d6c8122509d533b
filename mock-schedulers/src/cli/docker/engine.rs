//! The simulated Docker daemon (dockerd 20.10.24 with containerd 1.6 and runc 1.1, as
//! Debian 12 packages them) of one node: creating, starting, killing and removing containers
//! in its [`Store`], with the daemon's checks and error texts. Sources: moby/moby v20.10.24
//! (`daemon/create.go`, `daemon/daemon_unix.go` `verifyPlatformContainerResources`,
//! `daemon/names.go`, `daemon/errors.go`, `daemon/delete.go`, `daemon/kill.go`,
//! `container/container.go` `CreateDaemonEnvironment`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use super::store::{HostConfig, Lookup, Record, State, Store, digest, new_id, now};
use crate::config::DockerConfig;

/// The default `PATH` of a Linux container (moby `system.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the runtime says before a start failure (containerd 1.6, runc 1.1).
const OCI_PREFIX: &str = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: ";

/// A start failure as the daemon reports it.
pub fn oci_error(msg: &str) -> String {
    format!("{OCI_PREFIX}{msg}: unknown")
}

/// Moby's minimum memory limit (`linuxMinMemory`, 6 MiB).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// An error of the daemon: its message (the client adds `Error response from daemon: `).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiErr {
    /// The message.
    pub msg: String,
    /// A 404: no such container or image.
    pub not_found: bool,
}

impl ApiErr {
    /// An error.
    pub fn new(msg: impl Into<String>) -> ApiErr {
        ApiErr {
            msg: msg.into(),
            not_found: false,
        }
    }

    /// A 404.
    pub fn not_found(msg: impl Into<String>) -> ApiErr {
        ApiErr {
            msg: msg.into(),
            not_found: true,
        }
    }
}

/// One image a daemon has.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Repository, familiar form (`alpine`, `registry.example.com/ci/x`).
    pub repo: String,
    /// Tag.
    pub tag: String,
    /// 64 hex digits.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// Bytes.
    pub size: i64,
    /// The image's `Cmd`.
    pub cmd: Vec<String>,
}

impl Image {
    /// `repo:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repo, self.tag)
    }
}

/// A reference in familiar form split into repository and tag (`alpine` is `alpine:latest`;
/// `docker.io/library/` is dropped); `Err` is why it is no reference.
pub fn split_reference(reference: &str) -> Result<(String, String), String> {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let (repo, tag) = match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => {
            (&without_digest[..i], without_digest[i + 1..].to_string())
        }
        _ => (without_digest, "latest".to_string()),
    };
    if repo.is_empty() || tag.is_empty() {
        return Err("invalid reference format".into());
    }
    let path = match repo.split_once('/') {
        // A first component with a dot or colon, or `localhost`, is a registry host.
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => {
            repo.split_once('/').map_or(repo, |(_, p)| p)
        }
        _ => repo,
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("invalid reference format: repository name must be lowercase".into());
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c);
    if !repo.chars().all(|c| ok(c) || c.is_ascii_uppercase()) || repo.starts_with(['.', '-', '/']) {
        return Err("invalid reference format".into());
    }
    let familiar = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    let familiar = familiar.strip_prefix("library/").unwrap_or(familiar);
    Ok((familiar.to_string(), tag))
}

/// The images of a daemon, from `[docker] images`.
pub fn images_of(config: &DockerConfig) -> Vec<Image> {
    config
        .images
        .iter()
        .filter_map(|r| split_reference(r).ok())
        .map(|(repo, tag)| {
            let id = digest(&format!("image {repo}:{tag}"));
            let cmd = match repo.as_str() {
                "alpine" => vec!["/bin/sh".to_string()],
                "debian" => vec!["bash".to_string()],
                "ubuntu" => vec!["/bin/bash".to_string()],
                _ => vec!["sh".to_string()],
            };
            let size = match repo.as_str() {
                "alpine" => 7_334_434,
                "busybox" => 4_261_550,
                "debian" => 116_513_120,
                "ubuntu" => 77_863_112,
                _ => 4_870_000 + i64::from(id.as_bytes()[0]) * 1000,
            };
            // A fixed creation time per image, in 2024.
            let day = u32::from(id.as_bytes()[1]) % 28 + 1;
            let month = u32::from(id.as_bytes()[2]) % 12 + 1;
            Image {
                created: format!("2024-{month:02}-{day:02}T10:20:30.123456789Z"),
                repo,
                tag,
                id,
                size,
                cmd,
            }
        })
        .collect()
}

/// The CPUs containers may use: the daemon's cgroup's cpuset, else the online CPUs (moby
/// `sysinfo.Cpus`), with that list's text.
pub fn machine_cpus() -> (Vec<usize>, String) {
    for path in [
        "/sys/fs/cgroup/cpuset.cpus.effective",
        "/sys/fs/cgroup/cpuset/cpuset.effective_cpus",
        "/sys/devices/system/cpu/online",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            let text = text.trim();
            if let Ok(list) = parse_uint_list(text)
                && !list.is_empty()
            {
                return (list, text.to_string());
            }
        }
    }
    let cpus = crate::daemon::launch::available_cpus();
    let text = cpus
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    (cpus, text)
}

/// Moby's `parsers.ParseUintList` (`0-2,4`), sorted.
pub fn parse_uint_list(text: &str) -> Result<Vec<usize>, String> {
    let mut out = std::collections::BTreeSet::new();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |_| format!("invalid format: {text}");
    for part in text.split(',') {
        match part.split_once('-') {
            None => {
                out.insert(part.parse::<usize>().map_err(bad)?);
            }
            Some((a, b)) => {
                let (a, b) = (
                    a.parse::<usize>().map_err(bad)?,
                    b.parse::<usize>().map_err(bad)?,
                );
                if b < a || b - a > 65_536 {
                    return Err(format!("invalid format: {text}"));
                }
                out.extend(a..=b);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// This machine's memory in bytes (`MemTotal`).
pub fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A container to create, as the client sends it.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// `--name`.
    pub name: Option<String>,
    /// The image reference.
    pub image: String,
    /// The command after the image (`None`: the image's).
    pub cmd: Option<Vec<String>>,
    /// `--entrypoint` (`Some(empty)`: none).
    pub entrypoint: Option<Vec<String>>,
    /// `-e`, `--env-file`.
    pub env: Vec<String>,
    /// `-l`, `--label-file`.
    pub labels: BTreeMap<String, String>,
    /// `-w`.
    pub working_dir: String,
    /// `-u`.
    pub user: String,
    /// `-h`.
    pub hostname: Option<String>,
    /// `-i`.
    pub open_stdin: bool,
    /// `-t`.
    pub tty: bool,
    /// Attached streams.
    pub attach: [bool; 3],
    /// `StdinOnce`.
    pub stdin_once: bool,
    /// Host configuration (CPUs not yet parsed).
    pub host: HostConfig,
    /// `--network-alias`.
    pub aliases: Vec<String>,
}

/// Why a container was not created.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateErr {
    /// The image is not there (`No such image: x:latest`).
    NoImage(String),
    /// Another refusal.
    Refused(ApiErr),
}

/// One node's daemon.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Its containers.
    pub store: Store,
    /// Its node (`None`: this machine's daemon).
    pub node: Option<String>,
    /// Its host name (`docker info`'s `Name`).
    pub host_name: String,
    /// Its images.
    pub images: Vec<Image>,
    /// The cluster's state directory.
    pub state_dir: PathBuf,
}

static SHIM_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn proxy_signal(sig: libc::c_int) {
    let pid = SHIM_PID.load(Ordering::SeqCst);
    if pid > 1 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

impl Daemon {
    /// The image a reference names (by `repo:tag`, or by a prefix of its id).
    pub fn image(&self, reference: &str) -> Option<&Image> {
        let bare = reference.strip_prefix("sha256:").unwrap_or(reference);
        if bare.len() >= 4
            && bare.chars().all(|c| c.is_ascii_hexdigit())
            && let Some(img) = self.images.iter().find(|i| i.id.starts_with(bare))
        {
            return Some(img);
        }
        let (repo, tag) = split_reference(reference).ok()?;
        self.images.iter().find(|i| i.repo == repo && i.tag == tag)
    }

    /// `POST /containers/create`: the container's id and the daemon's warnings.
    pub fn create(&self, spec: &Spec) -> Result<(String, Vec<String>), CreateErr> {
        let refuse = |msg: String| CreateErr::Refused(ApiErr::new(msg));
        let mut warnings = Vec::new();
        // verifyContainerSettings.
        if !spec.working_dir.is_empty() && !spec.working_dir.starts_with('/') {
            return Err(refuse(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                spec.working_dir
            )));
        }
        let mut host = spec.host.clone();
        if host.memory != 0 && host.memory < MIN_MEMORY {
            return Err(refuse("Minimum memory limit allowed is 6MB".into()));
        }
        if host.memory > 0 && host.memory_swap > 0 && host.memory_swap < host.memory {
            return Err(refuse(
                "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
            ));
        }
        if host.memory == 0 && host.memory_swap > 0 {
            return Err(refuse(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            ));
        }
        if host.kernel_memory > 0 {
            // A cgroup v2 host (Debian 12) has no kernel memory limit.
            warnings.push(
                "Specifying a kernel memory limit is deprecated and will be removed in a future release."
                    .to_string(),
            );
            warnings.push("Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.".to_string());
            host.kernel_memory = 0;
        }
        let (available, available_text) = machine_cpus();
        let ncpu = available.len() as i64;
        if host.nano_cpus > 0 && host.nano_cpus > ncpu * 1_000_000_000 {
            return Err(refuse(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            )));
        }
        if !host.cpuset_cpus.is_empty() {
            let cpus = match parse_uint_list(&host.cpuset_cpus) {
                Ok(cpus) => cpus,
                Err(e) => {
                    return Err(refuse(format!(
                        "Invalid value {} for cpuset cpus: {e}",
                        host.cpuset_cpus
                    )));
                }
            };
            if cpus.iter().any(|c| !available.contains(c)) {
                return Err(refuse(format!(
                    "Requested CPUs are not available - requested {}, available: {available_text}",
                    host.cpuset_cpus
                )));
            }
            host.cpus = cpus;
        }
        // daemon.create: the image, the command, the name.
        let Some(image) = self.image(&spec.image) else {
            let shown = match split_reference(&spec.image) {
                Ok((repo, tag)) => format!("{repo}:{tag}"),
                Err(_) => spec.image.clone(),
            };
            return Err(CreateErr::NoImage(shown));
        };
        let entrypoint = spec.entrypoint.clone().filter(|e| !e.is_empty());
        let cmd = match &spec.cmd {
            Some(c) if !c.is_empty() => Some(c.clone()),
            // An entrypoint given on the command line drops the image's command.
            _ if spec.entrypoint.is_some() => None,
            _ => Some(image.cmd.clone()),
        };
        let mut argv: Vec<String> = entrypoint.clone().unwrap_or_default();
        argv.extend(cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(refuse("No command specified".into()));
        }
        let mut env: Vec<String> = spec.env.clone();
        let image_env = [format!("PATH={DEFAULT_PATH}")];
        for e in image_env {
            let key = e.split('=').next().unwrap_or("");
            if !env.iter().any(|u| u.split('=').next() == Some(key)) {
                env.push(e);
            }
        }
        let _lock = self
            .store
            .lock()
            .map_err(|e| refuse(format!("cannot lock the container store: {e}")))?;
        let id = new_id();
        let all = self.store.all();
        let name = match &spec.name {
            Some(requested) => {
                let bare = requested.strip_prefix('/').unwrap_or(requested);
                if !valid_name(bare) {
                    return Err(refuse(format!(
                        "Invalid container name ({requested}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                if let Some(other) = all.iter().find(|r| r.name == bare) {
                    return Err(CreateErr::Refused(ApiErr::new(format!(
                        "Conflict. The container name \"/{bare}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    ))));
                }
                bare.to_string()
            }
            None => loop {
                let candidate = random_name();
                if !all.iter().any(|r| r.name == candidate) {
                    break candidate;
                }
            },
        };
        let rec = Record {
            id: id.clone(),
            name,
            created: now(),
            node: self.node.clone(),
            image: spec.image.clone(),
            image_id: format!("sha256:{}", image.id),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            cmd,
            entrypoint,
            env,
            labels: spec.labels.clone(),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            hostname: spec
                .hostname
                .clone()
                .unwrap_or_else(|| id[..12].to_string()),
            open_stdin: spec.open_stdin,
            tty: spec.tty,
            attach: spec.attach,
            stdin_once: spec.stdin_once,
            host,
            aliases: spec.aliases.clone(),
            state: State::default(),
        };
        self.store
            .save(&rec)
            .map_err(|e| refuse(format!("cannot store the container: {e}")))?;
        let _ = std::fs::File::create(self.store.log_path(&id));
        Ok((id, warnings))
    }

    /// The container a reference names (`No such container: x`).
    pub fn find(&self, reference: &str) -> Result<Record, ApiErr> {
        self.store.find(reference).map_err(|e| match e {
            Lookup::NotFound => ApiErr::not_found(format!("No such container: {reference}")),
            Lookup::Ambiguous => ApiErr::new(format!(
                "multiple IDs found with provided prefix: {reference}"
            )),
        })
    }

    /// `POST /containers/ID/start`, attached when `attach` is given: then the container's
    /// exit code once it ended.
    pub fn start(&self, rec: &Record, attach: Option<Attach>) -> Result<Option<i32>, ApiErr> {
        if rec.state.running() {
            return match attach {
                Some(_) => Ok(Some(self.follow(rec, true, true))),
                None => Ok(None),
            };
        }
        if let Err(e) = super::network::check_start(&self.store, rec) {
            return Err(self.start_refused(rec, e.msg, 128));
        }
        if !rec.working_dir.is_empty()
            && let Err(e) = std::fs::create_dir_all(&rec.working_dir)
        {
            let msg = format!(
                "error during container init: chdir to cwd ({:?}) set in config.json failed: {}",
                rec.working_dir,
                strerror(&e)
            );
            return Err(self.start_failed(rec, &msg, 126));
        }
        if let Err((msg, code)) = resolve(rec) {
            return Err(self.start_failed(rec, &msg, code));
        }
        let stdin_wanted = attach.is_some_and(|a| a.stdin) && rec.open_stdin;
        let (attach_r, attach_w) = match attach {
            Some(_) => match std::io::pipe() {
                Ok((r, w)) => (Some(r), Some(OwnedFd::from(w))),
                Err(e) => return Err(ApiErr::new(e.to_string())),
            },
            None => (None, None),
        };
        let (stdin, stdin_mode, stdin_w) = if stdin_wanted {
            match std::io::pipe() {
                Ok((r, w)) => (Stdio::from(r), "inherit", Some(w)),
                Err(e) => return Err(ApiErr::new(e.to_string())),
            }
        } else if rec.open_stdin && attach.is_none() {
            (Stdio::null(), "hold", None)
        } else {
            (Stdio::null(), "null", None)
        };
        let mut child = self
            .spawn_shim(&rec.id, stdin_mode, stdin, attach_w)
            .map_err(|e| ApiErr::new(format!("cannot start the container's supervisor: {e}")))?;
        match (attach, attach_r) {
            (Some(a), Some(reader)) => {
                let code = attach_loop(&mut child, reader, stdin_w, a, self, &rec.id);
                match self.store.load(&rec.id) {
                    // The supervisor could not start the command.
                    Some(r) if r.state.status == "created" && !r.state.error.is_empty() => {
                        Err(self.failed_in_supervisor(&r))
                    }
                    _ => Ok(Some(code)),
                }
            }
            _ => {
                // Detached: the container runs (or already ended) when start returns.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let status = self.store.load(&rec.id).map(|r| r.state);
                    match status {
                        Some(s) if s.status != "created" => break,
                        None => break,
                        _ => {}
                    }
                    if let Ok(Some(_)) = child.try_wait() {
                        if let Some(r) = self.store.load(&rec.id)
                            && r.state.status == "created"
                            && !r.state.error.is_empty()
                        {
                            return Err(self.failed_in_supervisor(&r));
                        }
                        break;
                    }
                    if Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                // The supervisor lives on without us.
                std::mem::forget(child);
                Ok(None)
            }
        }
    }

    /// The supervisor recorded why the command could not start.
    fn failed_in_supervisor(&self, rec: &Record) -> ApiErr {
        if rec.host.auto_remove {
            let _lock = self.store.lock();
            self.store.remove(&rec.id);
        }
        ApiErr::new(rec.state.error.clone())
    }

    fn start_failed(&self, rec: &Record, msg: &str, code: i32) -> ApiErr {
        self.start_refused(rec, oci_error(msg), code)
    }

    /// A start that failed: the error and exit code stay (moby `daemon/start.go`: 128 when
    /// nothing set one), the container stays created; `--rm` removes it.
    fn start_refused(&self, rec: &Record, error: String, code: i32) -> ApiErr {
        // daemon/start.go: the exit code and the error stay, the container stays created.
        self.store.update(&rec.id, |r| {
            r.state.exit_code = code;
            r.state.error = error.clone();
        });
        if rec.host.auto_remove {
            let _lock = self.store.lock();
            self.store.remove(&rec.id);
        }
        ApiErr::new(error)
    }

    fn spawn_shim(
        &self,
        id: &str,
        stdin_mode: &str,
        stdin: Stdio,
        attach: Option<OwnedFd>,
    ) -> std::io::Result<Child> {
        let proc_exe = Path::new("/proc/self/exe");
        let exe = if proc_exe.exists() {
            proc_exe.to_path_buf()
        } else {
            std::env::current_exe()?
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state_dir.join("daemon.log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let mut cmd = Command::new(exe);
        cmd.arg0("mock-cluster")
            .arg("__container")
            .arg(&self.store.dir)
            .arg(id)
            .arg(stdin_mode)
            .arg(if attach.is_some() { "1" } else { "0" })
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(log);
        let raw = attach.as_ref().map(|fd| fd.as_raw_fd());
        // SAFETY: setsid, dup2 and fcntl are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if let Some(fd) = raw {
                    if fd == 3 {
                        libc::fcntl(3, libc::F_SETFD, 0);
                    } else if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn();
        drop(attach);
        child
    }

    /// Sends `sig` to a running container (SIGKILL: all its processes, and waits until it
    /// ended, as `daemon.Kill` does).
    pub fn kill(&self, rec: &Record, sig: i32) -> Result<(), ApiErr> {
        if !rec.state.running() {
            return Err(ApiErr::new(format!("Container {} is not running", rec.id)));
        }
        if sig == libc::SIGKILL {
            super::shim::kill_session(rec.state.pid, libc::SIGKILL);
            self.wait_not_running(&rec.id, Duration::from_secs(10));
        } else {
            // SAFETY: signalling the container's main process.
            unsafe {
                libc::kill(rec.state.pid, sig);
            }
        }
        Ok(())
    }

    /// `DELETE /containers/ID[?force=1]`.
    pub fn remove(&self, reference: &str, force: bool) -> Result<(), ApiErr> {
        let rec = self.find(reference)?;
        if rec.state.running() {
            if !force {
                return Err(ApiErr::new(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    rec.id
                )));
            }
            self.kill(&rec, libc::SIGKILL)?;
        }
        let _lock = self.store.lock();
        self.store.remove(&rec.id);
        Ok(())
    }

    /// Polls until the container does not run (or is gone); its last record.
    pub fn wait_not_running(&self, id: &str, timeout: Duration) -> Option<Record> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let rec = self.store.load(id)?;
            if !rec.state.running() || deadline.is_some_and(|d| Instant::now() > d) {
                return Some(rec);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Streams a container's log (stdout entries to stdout, stderr entries to stderr), from
    /// the start or its last `tail` lines, until it stops running when `follow`; the exit code.
    pub fn follow(&self, rec: &Record, follow: bool, _attach: bool) -> i32 {
        let mut offset = 0u64;
        loop {
            let running = self.store.load(&rec.id).is_some_and(|r| r.state.running());
            offset = print_log_from(&self.store.log_path(&rec.id), offset, None, false);
            if !follow || !running {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.store.load(&rec.id).map_or(0, |r| r.state.exit_code)
    }
}

/// What an attached start forwards.
#[derive(Debug, Clone, Copy)]
pub struct Attach {
    /// Our standard input goes to the container's (`-i`).
    pub stdin: bool,
    /// Signals we receive go to the container (`--sig-proxy`).
    pub sig_proxy: bool,
}

/// Copies our standard input to the container, the attach stream to our standard output and
/// error, and returns the container's exit code once its supervisor ended.
fn attach_loop(
    child: &mut Child,
    mut reader: std::io::PipeReader,
    stdin_w: Option<std::io::PipeWriter>,
    attach: Attach,
    daemon: &Daemon,
    id: &str,
) -> i32 {
    if let Some(mut w) = stdin_w {
        std::thread::spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping the writer is the container's end of input.
        });
    }
    if attach.sig_proxy {
        SHIM_PID.store(child.id() as i32, Ordering::SeqCst);
        for &sig in super::shim::PROXIED {
            // SAFETY: the handler only reads an atomic and calls kill.
            unsafe {
                libc::signal(sig, proxy_signal as *const () as libc::sighandler_t);
            }
        }
    }
    let mut header = [0u8; 8];
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        if reader.read_exact(&mut header).is_err() {
            break;
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len];
        if reader.read_exact(&mut data).is_err() {
            break;
        }
        if header[0] == 2 {
            let _ = err.write_all(&data);
            let _ = err.flush();
        } else {
            let _ = out.write_all(&data);
            let _ = out.flush();
        }
    }
    match child.wait() {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c,
            _ => daemon
                .store
                .load(id)
                .map(|r| r.state.exit_code)
                .or_else(|| daemon.store.removed_exit_code(id))
                .unwrap_or(125),
        },
        Err(_) => 125,
    }
}

/// Prints `json-file` entries of a log from byte `offset` (or its last `tail` lines), with
/// their times when `timestamps`; returns the offset after them.
pub fn print_log_from(path: &Path, offset: u64, tail: Option<usize>, timestamps: bool) -> u64 {
    use std::io::{BufRead, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return offset;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut reader = std::io::BufReader::new(f);
    let mut entries: Vec<(bool, String, String)> = Vec::new();
    let mut consumed = offset;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !line.ends_with('\n') {
                    // An entry still being written.
                    break;
                }
                consumed += n as u64;
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let text = v["log"].as_str().unwrap_or("").to_string();
                let time = v["time"].as_str().unwrap_or("").to_string();
                entries.push((v["stream"] == "stderr", text, time));
            }
        }
    }
    let skip = tail.map_or(0, |t| entries.len().saturating_sub(t));
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    for (is_err, text, time) in entries.into_iter().skip(skip) {
        let line = if timestamps {
            format!("{time} {text}")
        } else {
            text
        };
        if is_err {
            let _ = err.write_all(line.as_bytes());
        } else {
            let _ = out.write_all(line.as_bytes());
        }
    }
    let _ = out.flush();
    let _ = err.flush();
    consumed
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A name as dockerd makes one up (`namesgenerator.GetRandomName`: adjective_scientist).
fn random_name() -> String {
    const LEFT: &[&str] = &[
        "admiring",
        "brave",
        "clever",
        "dazzling",
        "eager",
        "focused",
        "gifted",
        "happy",
        "inspiring",
        "jolly",
        "keen",
        "lucid",
        "modest",
        "nifty",
        "optimistic",
        "peaceful",
        "quirky",
        "relaxed",
        "serene",
        "tender",
        "upbeat",
        "vibrant",
        "wizardly",
        "youthful",
        "zealous",
    ];
    const RIGHT: &[&str] = &[
        "archimedes",
        "babbage",
        "curie",
        "darwin",
        "euler",
        "fermi",
        "galileo",
        "hopper",
        "lovelace",
        "mendel",
        "noether",
        "pascal",
        "ritchie",
        "shannon",
        "turing",
        "wozniak",
    ];
    let r = super::store::random_hex(4);
    let n = usize::from_str_radix(&r, 16).unwrap_or(0);
    format!(
        "{}_{}",
        LEFT[n % LEFT.len()],
        RIGHT[(n / LEFT.len()) % RIGHT.len()]
    )
}

/// The environment of a container's process (`CreateDaemonEnvironment`): `PATH`,
/// `HOSTNAME`, `TERM=xterm` with a TTY, then `Config.Env` replacing or adding; and `HOME`
/// when none is set, as runc sets it from the user's passwd entry (the container's
/// filesystem is this machine's: this user's home).
pub fn process_env(rec: &Record) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOSTNAME".into(), rec.hostname.clone()),
    ];
    if rec.tty {
        env.push(("TERM".into(), "xterm".into()));
    }
    for e in &rec.env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    }
    if !env.iter().any(|(k, _)| k == "HOME")
        && let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::getuid())
    {
        env.push(("HOME".into(), user.dir.display().to_string()));
    }
    env
}

fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

/// The program of a container as runc finds it (Go's `exec.LookPath` with the container's
/// `PATH`): `Err((message, exit code))` worded as runc words it.
pub fn resolve(rec: &Record) -> Result<PathBuf, (String, i32)> {
    use std::os::unix::fs::PermissionsExt;
    let program = &rec.path;
    let executable = |p: &Path| -> Result<(), std::io::Error> {
        let meta = std::fs::metadata(p)?;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EACCES));
        }
        Ok(())
    };
    if program.contains('/') {
        let cwd = if rec.working_dir.is_empty() {
            "/"
        } else {
            &rec.working_dir
        };
        // An absolute program replaces the directory it is joined to.
        let path = Path::new(cwd).join(program);
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err((
                format!("exec: {program:?}: stat {program}: no such file or directory"),
                127,
            )),
            Err(_) => Err((format!("exec: {program:?}: permission denied"), 126)),
        };
    }
    let env = process_env(rec);
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err((
        format!("exec: {program:?}: executable file not found in $PATH"),
        127,
    ))
}

/// A failed exec as runc reports it, with its exit code.
pub fn exec_error(program: &str, e: &std::io::Error) -> (String, i32) {
    match e.raw_os_error() {
        Some(libc::ENOENT) => (
            format!("exec: {program:?}: stat {program}: no such file or directory"),
            127,
        ),
        Some(libc::EACCES) => (format!("exec: {program:?}: permission denied"), 126),
        _ => (format!("exec: {program:?}: {}", strerror(e)), 125),
    }
}
