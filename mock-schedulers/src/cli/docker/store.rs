//! The simulated Docker daemons' containers, kept in the cluster's state directory:
//! `<state-dir>/docker/<daemon>/<id>/config.v2.json` (the container, as dockerd keeps it in
//! `/var/lib/docker/containers/<id>/config.v2.json`) and `<id>-json.log` next to it (the
//! `json-file` log driver's file). `<daemon>` is the node's name, or `local` for the daemon
//! of this machine (`unix://...`). Fakes running at the same time share it: changes are made
//! under `<daemon>/.lock` (flock) and written by an atomic rename, so a reader never sees half
//! of a record.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Go's zero time, as Docker prints an unset time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What `docker inspect` calls `State`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// `created`, `running`, `exited`.
    pub status: String,
    /// The main process' pid while it runs.
    pub pid: i32,
    /// The exit code (128+N for signal N).
    pub exit_code: i32,
    /// Whether the memory limit killed a process of the container.
    pub oom_killed: bool,
    /// Why the container could not start.
    pub error: String,
    /// RFC 3339 (nanoseconds).
    pub started_at: String,
    /// RFC 3339 (nanoseconds).
    pub finished_at: String,
    /// The supervisor (`mock-cluster __container`) while the container runs.
    pub shim_pid: i32,
}

impl Default for State {
    fn default() -> State {
        State {
            status: "created".into(),
            pid: 0,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            shim_pid: 0,
        }
    }
}

impl State {
    /// Whether the container runs.
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// A container: its configuration (`Config`, `HostConfig`) and state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// RFC 3339 (nanoseconds).
    pub created: String,
    /// The simulated node the daemon runs on (`None`: this machine's daemon).
    pub node: Option<String>,
    /// The image as given (`Config.Image`).
    pub image: String,
    /// The image's `sha256:` id.
    pub image_id: String,
    /// The program started.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `Config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Config.Env` (`KEY=value`).
    pub env: Vec<String>,
    /// `Config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `Config.WorkingDir`.
    pub working_dir: String,
    /// `Config.User`.
    pub user: String,
    /// `Config.Hostname`.
    pub hostname: String,
    /// `-i`.
    pub open_stdin: bool,
    /// `-t`.
    pub tty: bool,
    /// The streams attached by `docker run` (`AttachStdin`, `AttachStdout`, `AttachStderr`).
    pub attach: [bool; 3],
    /// `StdinOnce`.
    pub stdin_once: bool,
    /// `HostConfig`.
    pub host: HostConfig,
    /// `--network-alias` (`NetworkSettings.Networks.<network>.Aliases`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `State`.
    pub state: State,
}

/// The `HostConfig` fields the simulated daemon keeps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct HostConfig {
    /// `-v SRC:DST[:OPTS]`.
    pub binds: Vec<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--privileged`.
    pub privileged: bool,
    /// `--init`.
    pub init: bool,
    /// `--network`.
    pub network_mode: String,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// The CPUs of `cpuset_cpus`.
    pub cpus: Vec<usize>,
    /// `--cpus`, in nano CPUs.
    pub nano_cpus: i64,
    /// `--memory`, bytes.
    pub memory: i64,
    /// `--memory-swap`, bytes (-1 unlimited).
    pub memory_swap: i64,
    /// `--kernel-memory`, bytes (0: discarded, as a cgroup v2 host does).
    pub kernel_memory: i64,
    /// `--shm-size`, bytes.
    pub shm_size: i64,
    /// `--restart` name.
    pub restart: String,
    /// Other options, recorded as given (`--cap-add`, `--device`, ...).
    pub other: Vec<(String, String)>,
}

/// The containers of one daemon.
#[derive(Debug, Clone)]
pub struct Store {
    /// `<state-dir>/docker/<daemon>`.
    pub dir: PathBuf,
}

/// A held lock; released on drop.
pub struct Lock(#[allow(dead_code)] File);

/// A reference that names no container, or several.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// No such container.
    NotFound,
    /// An id prefix of several containers.
    Ambiguous,
}

impl Store {
    /// The store of daemon `key` in state directory `state_dir`.
    pub fn open(state_dir: &Path, key: &str) -> Store {
        let dir = state_dir.join("docker").join(key);
        let _ = std::fs::create_dir_all(&dir);
        Store { dir }
    }

    /// Every daemon's store in a state directory.
    pub fn all_daemons(state_dir: &Path) -> Vec<Store> {
        let Ok(entries) = std::fs::read_dir(state_dir.join("docker")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| Store { dir: e.path() })
            .collect()
    }

    /// Takes the daemon's lock.
    pub fn lock(&self) -> std::io::Result<Lock> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Lock(f))
    }

    /// The directory of a container.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The record file of a container.
    pub fn record_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("config.v2.json")
    }

    /// The log file of a container (`json-file`).
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    /// A container by full id, as stored (a container whose supervisor is gone is seen as
    /// exited, as dockerd sees its containers after a restart).
    pub fn load(&self, id: &str) -> Option<Record> {
        let mut text = String::new();
        File::open(self.record_path(id))
            .ok()?
            .read_to_string(&mut text)
            .ok()?;
        let mut rec: Record = serde_json::from_str(&text).ok()?;
        if rec.state.running() && rec.state.shim_pid > 0 && !alive(rec.state.shim_pid) {
            rec.state.status = "exited".into();
            rec.state.pid = 0;
            rec.state.exit_code = 255;
            rec.state.finished_at = now();
        }
        Some(rec)
    }

    /// Writes a record (atomically).
    pub fn save(&self, rec: &Record) -> std::io::Result<()> {
        let dir = self.container_dir(&rec.id);
        std::fs::create_dir_all(&dir)?;
        let text = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        crate::daemon::launch::write_atomic(&self.record_path(&rec.id), &text)
    }

    /// Changes a stored record under the lock; `false` when it is gone.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> bool {
        let Ok(_lock) = self.lock() else {
            return false;
        };
        let Some(mut rec) = self.load(id) else {
            return false;
        };
        change(&mut rec);
        self.save(&rec).is_ok()
    }

    /// Removes a container's files.
    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.container_dir(id));
    }

    /// Removes a container that `--rm` removes once it ended, keeping its exit code for a
    /// while (`.exits/<id>`): `docker wait` and an attached client report it even when the
    /// container is gone (dockerd answers a wait before it removes). Exit codes older than
    /// ten minutes are dropped.
    pub fn auto_remove(&self, id: &str, exit_code: i32) {
        let exits = self.dir.join(".exits");
        if std::fs::create_dir_all(&exits).is_ok() {
            let _ = std::fs::write(exits.join(id), exit_code.to_string());
            if let Ok(entries) = std::fs::read_dir(&exits) {
                for e in entries.flatten() {
                    let old = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() > 600);
                    if old {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        self.remove(id);
    }

    /// The exit code of a container `--rm` removed lately.
    pub fn removed_exit_code(&self, id: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(".exits").join(id))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every container, newest first.
    pub fn all(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut all: Vec<Record> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                (name.len() == 64).then(|| self.load(&name))?
            })
            .collect();
        all.sort_by(|a, b| b.created.cmp(&a.created));
        all
    }

    /// The container a reference names, as dockerd's `GetContainer` finds it: a full id, a
    /// name (with or without `/`), or a unique id prefix.
    pub fn find(&self, reference: &str) -> Result<Record, Lookup> {
        if reference.is_empty() {
            return Err(Lookup::NotFound);
        }
        if reference.len() == 64
            && let Some(rec) = self.load(reference)
        {
            return Ok(rec);
        }
        let all = self.all();
        let name = reference.strip_prefix('/').unwrap_or(reference);
        if let Some(rec) = all.iter().find(|r| r.name == name) {
            return Ok(rec.clone());
        }
        let matches: Vec<&Record> = all.iter().filter(|r| r.id.starts_with(reference)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Lookup::NotFound),
            _ => Err(Lookup::Ambiguous),
        }
    }
}

/// Whether a process exists.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Now, as Go's `time.RFC3339Nano` formats a UTC time (trailing zeros of the fraction
/// dropped).
pub fn now() -> String {
    rfc3339_nano(chrono::Utc::now())
}

/// A time as `time.RFC3339Nano` formats it.
pub fn rfc3339_nano(t: chrono::DateTime<chrono::Utc>) -> String {
    let full = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match full.split_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => full,
    }
}

/// Parses a stored time.
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let filled = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: time and pid make it unique enough for a simulation.
        let mut seed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64
            ^ (u64::from(std::process::id()) << 32);
        for b in &mut bytes {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A container id: 64 hex digits whose short form (12) is not all digits (so that it never
/// reads as a number; moby's `stringid.GenerateRandomID`).
pub fn new_id() -> String {
    loop {
        let id = random_hex(32);
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return id;
        }
    }
}

/// A hash of a text as 64 hex digits (image ids and digests of the simulated images).
pub fn digest(text: &str) -> String {
    let mut out = String::new();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0u64..4 {
        for b in text.bytes().chain(round.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}
