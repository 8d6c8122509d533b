//! `builds_retention`: removing a runner's old build directories.
//!
//! A job runs in `<builds_dir>/<short token>/<slot>/<project path>`, and the directory stays
//! after the job, so that the next job of the project fetches instead of cloning (as with
//! gitlab-runner). Nothing else removes it; on a busy runner they add up. With
//!
//! ```toml
//! [[runners]]
//! builds_retention = { max_age = "7d", max_count = 50 }
//! ```
//!
//! a runner removes its build directories last used more than `max_age` ago, and all but its
//! `max_count` most recently used ones — at startup, after each job, and every hour. A build
//! directory's last use is its modification time, which batchci sets when a job starts in it and
//! when the job ends.
//!
//! Which directories are a runner's is written down, not guessed: when a job starts, batchci
//! records its directory in `<state_dir>/builds/`. Directories batchci did not record (made
//! before this version, or by another program) are left alone, and so is anything outside the
//! runner's `builds_dir`. A directory a job of this process uses, or one that a record of
//! `<state_dir>/submissions/` names (a running job's, or one waiting for crash recovery), is
//! never removed. A directory is first renamed to `<dir>.removing` (so a job starting in it at
//! that moment gets a fresh one) and then deleted; what cannot be removed is logged and tried
//! again at the next pass, never an error of the job or of batchci. The directory of a
//! downscoped job is its user's: it is touched, renamed and removed as that user.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::command::RunAs;
use crate::config::{Config, RunnerConfig};
use crate::state::StateStore;

/// How often a runner's build directories are looked at when no job ends.
pub const PERIOD: Duration = Duration::from_secs(3600);

/// `builds_retention` of a `[[runners]]` entry: at least one of the two limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RawRetention", into = "RawRetention")]
pub struct BuildsRetention {
    /// Remove build directories last used longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many build directories, the most recently used.
    pub max_count: Option<usize>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_age",
        serialize_with = "serialize_age"
    )]
    max_age: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_count: Option<usize>,
}

impl TryFrom<RawRetention> for BuildsRetention {
    type Error = String;

    fn try_from(raw: RawRetention) -> Result<Self, String> {
        if raw.max_age.is_none() && raw.max_count.is_none() {
            return Err(
                "set max_age (e.g. \"7d\"), max_count (e.g. 50) or both; without them nothing would be removed"
                    .into(),
            );
        }
        if raw.max_count == Some(0) {
            return Err(
                "max_count = 0 would remove every build directory as soon as its job ends; keep at least 1"
                    .into(),
            );
        }
        Ok(BuildsRetention {
            max_age: raw.max_age,
            max_count: raw.max_count,
        })
    }
}

impl From<BuildsRetention> for RawRetention {
    fn from(retention: BuildsRetention) -> Self {
        RawRetention {
            max_age: retention.max_age,
            max_count: retention.max_count,
        }
    }
}

impl std::fmt::Display for BuildsRetention {
    /// `max_age 7d, max_count 50`, as `batchci check` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(age) = self.max_age {
            parts.push(format!("max_age {}", format_age(age)));
        }
        if let Some(count) = self.max_count {
            parts.push(format!("max_count {count}"));
        }
        f.write_str(&parts.join(", "))
    }
}

fn deserialize_age<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    match Raw::deserialize(deserializer) {
        Ok(Raw::Text(text)) => parse_age(&text).map(Some).map_err(serde::de::Error::custom),
        Ok(Raw::Number(n)) => Err(serde::de::Error::custom(format!(
            "`{n}` has no unit: write \"{n}d\" for days, \"{n}h\" for hours (units: w, d, h, m, s)"
        ))),
        Err(_) => Err(serde::de::Error::custom(
            "expected an age such as \"7d\", \"12h\" or \"1w2d\"",
        )),
    }
}

fn serialize_age<S: serde::Serializer>(
    age: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match age {
        Some(age) => serializer.serialize_str(&format_age(*age)),
        None => serializer.serialize_none(),
    }
}

/// Parses an age: numbers with units `w`, `d`, `h`, `m`, `s`, e.g. `7d`, `36h`, `1w2d12h`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not an age (examples: \"7d\", \"12h\", \"1w2d\"; units: w, d, h, m, s)"
        )
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad());
    }
    const DAY: u64 = 24 * 3_600_000;
    let units = [
        ("w", 7 * DAY),
        ("d", DAY),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ];
    let total = crate::config::duration::sum_of_units(trimmed, &units).ok_or_else(bad)?;
    if total.is_zero() {
        return Err(format!(
            "`{text}` would remove every build directory as soon as its job ends; use an age longer than 0"
        ));
    }
    Ok(total)
}

/// An age in the largest units that divide it: `7d`, `36h`, `90m`, `45s`.
pub fn format_age(age: Duration) -> String {
    let seconds = age.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds >= size && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// The directory a runner's builds go under: its `builds_dir`, or the default.
pub fn builds_root(runner: &RunnerConfig) -> PathBuf {
    runner
        .builds_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("batchci-builds"))
}

/// Build directories jobs of this process use now (a count per directory).
static IN_USE: LazyLock<Mutex<HashMap<PathBuf, usize>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A runner's retention task: the index directory and the runner's name.
type TaskKey = (PathBuf, String);

/// Wakes a runner's retention task.
static WAKE: LazyLock<Mutex<HashMap<TaskKey, Arc<Notify>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn wake_handle(index: &Path, runner: &str) -> Arc<Notify> {
    WAKE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((index.to_path_buf(), runner.to_string()))
        .or_default()
        .clone()
}

/// The record of one build directory in `<state_dir>/builds/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    runner: String,
    path: PathBuf,
    /// The local user a downscoped job ran as: the directory is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

/// The build directories batchci has used, by runner: `<state_dir>/builds/`, one small file
/// per directory.
#[derive(Debug, Clone)]
pub struct BuildsIndex {
    dir: PathBuf,
}

impl BuildsIndex {
    /// The index of the state directory `store` lives in.
    pub fn of(store: &StateStore) -> BuildsIndex {
        BuildsIndex {
            dir: store.root().join("builds"),
        }
    }

    fn record_path(&self, path: &Path) -> PathBuf {
        let text = path.to_string_lossy();
        let tail: String = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        self.dir.join(format!(
            "{:08x}-{tail}.json",
            crc32fast::hash(text.as_bytes())
        ))
    }

    fn record(&self, runner: &str, path: &Path, user: Option<&str>) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let file = self.record_path(path);
        let record = Record {
            runner: runner.to_string(),
            path: path.to_path_buf(),
            user: user.map(str::to_string),
        };
        let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        let temporary = file.with_extension("json.tmp");
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, &file)
    }

    fn forget(&self, path: &Path) {
        let _ = std::fs::remove_file(self.record_path(path));
    }

    fn records(&self, runner: &str) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut records: Vec<Record> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
            .filter(|r| r.runner == runner)
            .collect();
        records.sort_by(|a, b| a.path.cmp(&b.path));
        records
    }
}

/// A build directory a job of this process uses; dropped when the job has ended.
#[derive(Debug)]
pub struct BuildInUse {
    path: PathBuf,
    user: Option<RunAs>,
    wake: Arc<Notify>,
}

/// Notes that a job of `runner` runs in `project_dir` now (as `user` when downscoped): it is
/// recorded as one of the runner's build directories, its last use set to now, and no
/// retention pass removes it until the returned guard is dropped (which sets its last use
/// again and starts a pass).
pub fn job_started(
    store: &StateStore,
    runner: &RunnerConfig,
    project_dir: &Path,
    user: Option<&RunAs>,
) -> BuildInUse {
    let index = BuildsIndex::of(store);
    *IN_USE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(project_dir.to_path_buf())
        .or_default() += 1;
    let name = user.map(|u| u.name.as_str());
    if let Err(error) = index.record(&runner.name, project_dir, name) {
        tracing::warn!(runner = %runner.name, directory = %project_dir.display(), %error, "cannot record the build directory for builds_retention");
    }
    touch(project_dir, user);
    BuildInUse {
        path: project_dir.to_path_buf(),
        user: user.cloned(),
        wake: wake_handle(&index.dir, &runner.name),
    }
}

impl Drop for BuildInUse {
    fn drop(&mut self) {
        touch(&self.path, self.user.as_ref());
        let mut in_use = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_use.get_mut(&self.path) {
            *count -= 1;
            if *count == 0 {
                in_use.remove(&self.path);
            }
        }
        drop(in_use);
        self.wake.notify_one();
    }
}

/// Sets a directory's modification time to now (as its owner `user`, when given); a
/// directory that is not there is no error.
fn touch(path: &Path, user: Option<&RunAs>) {
    let touched = crate::auth::downscope::as_user_if(user, || {
        std::fs::File::open(path).and_then(|dir| dir.set_modified(SystemTime::now()))
    });
    if let Err(error) = touched
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!(directory = %path.display(), %error, "cannot set the last use of a build directory");
    }
}

/// What one retention pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The build directories removed.
    pub removed: Vec<PathBuf>,
    /// Those that could not be removed, with the reason; tried again at the next pass.
    pub failed: Vec<(PathBuf, String)>,
}

/// Whether `path` lies strictly inside `root` with plain components only.
fn inside(root: &Path, path: &Path) -> bool {
    match path.strip_prefix(root) {
        Ok(rest) => {
            rest.components().next().is_some()
                && rest.components().all(|c| matches!(c, Component::Normal(_)))
        }
        Err(_) => false,
    }
}

/// The build directories of running or unrecovered jobs: those of this process, and those
/// the scheduler-job records of `store` name (their scratch directory is `<dir>.tmp`).
fn busy(store: &StateStore) -> HashSet<PathBuf> {
    let mut busy: HashSet<PathBuf> = IN_USE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    for submission in store.list() {
        if let Some(scratch) = submission.scratch_dir
            && let Some(project) = scratch.to_str().and_then(|s| s.strip_suffix(".tmp"))
        {
            busy.insert(PathBuf::from(project));
        }
    }
    busy
}

/// Removes `runner`'s build directories that `policy` no longer keeps at `now`, except busy
/// ones. Blocking: file system work.
pub fn prune(
    store: &StateStore,
    runner: &RunnerConfig,
    policy: &BuildsRetention,
    now: SystemTime,
) -> Pruned {
    let index = BuildsIndex::of(store);
    let root = builds_root(runner);
    let mut pruned = Pruned::default();
    let mut present: Vec<(PathBuf, SystemTime, Option<String>)> = Vec::new();
    for record in index.records(&runner.name) {
        let path = record.path;
        if !inside(&root, &path) {
            tracing::debug!(runner = %runner.name, directory = %path.display(), root = %root.display(), "a recorded build directory outside builds_dir is left alone");
            continue;
        }
        let leftover = removing_name(&path);
        let owner = owner(runner, record.user.as_deref());
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) => present.push((path, metadata.modified().unwrap_or(now), record.user)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // Gone, or renamed by a pass that stopped before deleting it.
                match crate::auth::downscope::as_user_if(owner.as_ref(), || remove_any(&leftover)) {
                    Ok(()) => index.forget(&path),
                    Err(error) => pruned.failed.push((leftover, error.to_string())),
                }
            }
            Err(error) => pruned.failed.push((path, error.to_string())),
        }
    }
    // Newest first: what max_count keeps.
    present.sort_by_key(|(_, used, _)| std::cmp::Reverse(*used));
    let busy = busy(store);
    for (rank, (path, used, user)) in present.into_iter().enumerate() {
        let too_many = policy.max_count.is_some_and(|max| rank >= max);
        let too_old = policy
            .max_age
            .is_some_and(|max| now.duration_since(used).is_ok_and(|age| age > max));
        if !(too_many || too_old) {
            continue;
        }
        // Checked and renamed under the lock a starting job takes: it uses the directory
        // before the rename or gets a new one after it.
        let owner = owner(runner, user.as_deref());
        let as_owner = |work: &(dyn Fn() -> std::io::Result<()> + Sync)| {
            crate::auth::downscope::as_user_if(owner.as_ref(), work)
        };
        let renamed = {
            let in_use = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
            if busy.contains(&path) || in_use.contains_key(&path) {
                continue;
            }
            as_owner(&|| std::fs::rename(&path, removing_name(&path)))
        };
        let removed = renamed.and_then(|()| as_owner(&|| remove_any(&removing_name(&path))));
        match removed {
            Ok(()) => {
                let _ = as_owner(&|| remove_any(&scratch_name(&path)));
                index.forget(&path);
                pruned.removed.push(path);
            }
            Err(error) => pruned.failed.push((path, error.to_string())),
        }
    }
    pruned
}

/// How to act as the local user `name` that a downscoped job of `runner` ran as; `None`
/// (act as batchci) when there is no such user, or the account is gone.
fn owner(runner: &RunnerConfig, name: Option<&str>) -> Option<RunAs> {
    name.and_then(|name| crate::auth::recorded_user(name, Some(runner.auth.downscope)))
}

fn removing_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".removing");
    PathBuf::from(name)
}

fn scratch_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Removes a directory tree, a file or a symbolic link (never what a link points to); a
/// path that is not there is no error.
fn remove_any(path: &Path) -> std::io::Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) => Err(error),
    };
    match removed {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Runs one pass for `runner` and logs what it did.
async fn pass(store: &StateStore, runner: &Arc<RunnerConfig>, policy: BuildsRetention) {
    let (store, task_runner) = (store.clone(), runner.clone());
    let done = tokio::task::spawn_blocking(move || {
        prune(&store, &task_runner, &policy, SystemTime::now())
    })
    .await;
    let Ok(pruned) = done else {
        tracing::warn!(runner = %runner.name, "a builds_retention pass stopped unexpectedly");
        return;
    };
    for path in &pruned.removed {
        tracing::info!(runner = %runner.name, directory = %path.display(), "removed an old build directory (builds_retention)");
    }
    for (path, error) in &pruned.failed {
        tracing::warn!(runner = %runner.name, directory = %path.display(), %error, "cannot remove an old build directory (builds_retention); trying again later");
    }
}

/// Starts the retention task of every runner of `config` that has `builds_retention`: a pass
/// now, after each of its jobs, and every [`PERIOD`], until `stop`.
pub fn start(config: &Config, store: &StateStore, stop: &CancellationToken) {
    for runner in &config.runners {
        let Some(policy) = runner.builds_retention else {
            continue;
        };
        let runner = Arc::new(runner.clone());
        let store = store.clone();
        let stop = stop.clone();
        let wake = wake_handle(&BuildsIndex::of(&store).dir, &runner.name);
        tokio::spawn(async move {
            loop {
                pass(&store, &runner, policy).await;
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(PERIOD) => {}
                    () = stop.cancelled() => break,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;
