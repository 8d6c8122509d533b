//! One inotify instance for the whole process, shared by every follower.
//!
//! The kernel gives each user only a few inotify instances (`fs.inotify.max_user_instances`,
//! 128 by default, shared with every other process of that user), so one watcher per followed
//! file stops working past ~128 concurrent jobs. Here one watcher watches every directory that
//! holds a followed file and hands each event to the followers of that file.
//!
//! Without inotify (no instance left, a file system without it, a directory that does not exist
//! yet) a follower is never woken by this module; it polls at its own interval and asks again on
//! every poll, so a directory that appears late, or an instance that becomes free, is picked up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use notify::Watcher;
use tokio::sync::Notify;

/// After a failed attempt to create the watcher, the next attempt waits this long: creating an
/// instance that the kernel refuses is cheap, but trying on every poll of every follower is not.
const RETRY_CREATE_AFTER: Duration = Duration::from_secs(30);

/// The followers of each file, by the file's path under its canonical directory. The watcher's
/// own thread reads it to dispatch events, so it has a lock of its own.
type Followers = Arc<Mutex<FollowerMap>>;
type FollowerMap = HashMap<PathBuf, Vec<(u64, Arc<Notify>)>>;

/// Where the shared watcher comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The kernel's inotify (notify's recommended watcher).
    Inotify,
    /// None: every follower polls. Stands in for a machine whose instances are used up.
    #[cfg(test)]
    Unavailable,
    /// None, by choice ([`super::TailOptions::inotify`] off): every follower polls, and no
    /// warning says why.
    Off,
}

/// The process's one watcher and the followers it serves.
pub(crate) struct WatchHub {
    source: Source,
    followers: Followers,
    /// The watcher and its watched directories. The watcher's thread never takes this lock,
    /// so calling into the watcher while holding it cannot deadlock with event dispatch.
    watching: Mutex<Watching>,
    /// Watchers created so far (one, unless creation failed and was retried).
    created: AtomicUsize,
    said_unavailable: AtomicBool,
    said_unwatchable: AtomicBool,
}

#[derive(Default)]
struct Watching {
    watcher: Option<notify::RecommendedWatcher>,
    failed_at: Option<Instant>,
    /// Watched directories and how many subscriptions use each.
    directories: HashMap<PathBuf, usize>,
    next_id: u64,
}

impl WatchHub {
    /// The hub every follower of this process shares.
    pub(crate) fn global() -> Arc<WatchHub> {
        static GLOBAL: OnceLock<Arc<WatchHub>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Arc::new(WatchHub::new(Source::Inotify)))
            .clone()
    }

    /// The hub of followers that were asked not to use inotify: it never watches anything.
    pub(crate) fn polling() -> Arc<WatchHub> {
        static POLLING: OnceLock<Arc<WatchHub>> = OnceLock::new();
        POLLING
            .get_or_init(|| Arc::new(WatchHub::new(Source::Off)))
            .clone()
    }

    pub(crate) fn new(source: Source) -> WatchHub {
        WatchHub {
            source,
            followers: Arc::default(),
            watching: Mutex::default(),
            created: AtomicUsize::new(0),
            said_unavailable: AtomicBool::new(false),
            said_unwatchable: AtomicBool::new(false),
        }
    }

    /// Subscribes to changes of `path`, watching its directory now if it can.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        path: &Path,
        poll_interval: Duration,
    ) -> Subscription {
        let mut subscription = Subscription {
            hub: self.clone(),
            path: path.to_path_buf(),
            poll_interval,
            registered: None,
            wake: Arc::new(Notify::new()),
        };
        subscription.try_watch();
        subscription
    }

    /// How many watchers (inotify instances) this hub has created.
    #[cfg(test)]
    pub(crate) fn watchers_created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }

    /// How many directories are watched now.
    #[cfg(test)]
    pub(crate) fn watched_directories(&self) -> usize {
        self.lock_watching().directories.len()
    }

    fn lock_watching(&self) -> MutexGuard<'_, Watching> {
        self.watching.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `directory` for one more subscription and returns the subscription's id; `None`
    /// when it cannot be watched.
    fn watch(&self, directory: &Path, poll_interval: Duration) -> Option<u64> {
        let mut watching = self.lock_watching();
        if watching.watcher.is_none() {
            let watcher = self.create(&mut watching, poll_interval)?;
            watching.watcher = Some(watcher);
        }
        let already = watching.directories.get(directory).copied().unwrap_or(0);
        if already == 0 {
            let watcher = watching.watcher.as_mut()?;
            if let Err(error) = watcher.watch(directory, notify::RecursiveMode::NonRecursive) {
                let first = !self.said_unwatchable.swap(true, Ordering::SeqCst);
                if first {
                    tracing::warn!(
                        directory = %directory.display(), %error,
                        "cannot watch an output directory with inotify; its files are polled every {poll_interval:?}"
                    );
                } else {
                    tracing::debug!(directory = %directory.display(), %error, "cannot watch an output directory");
                }
                return None;
            }
        }
        watching
            .directories
            .insert(directory.to_path_buf(), already + 1);
        watching.next_id += 1;
        Some(watching.next_id)
    }

    /// Creates the shared watcher, or says once why there is none.
    fn create(
        &self,
        watching: &mut Watching,
        poll_interval: Duration,
    ) -> Option<notify::RecommendedWatcher> {
        if self.source == Source::Off
            || watching
                .failed_at
                .is_some_and(|at| at.elapsed() < RETRY_CREATE_AFTER)
        {
            return None;
        }
        let result = match self.source {
            Source::Inotify => notify::recommended_watcher(dispatcher(&self.followers)),
            #[cfg(test)]
            Source::Unavailable => Err(notify::Error::generic(
                "inotify is switched off in this test",
            )),
            Source::Off => return None,
        };
        match result {
            Ok(watcher) => {
                self.created.fetch_add(1, Ordering::SeqCst);
                if watching.failed_at.take().is_some() {
                    tracing::info!("inotify is available again; output files are watched");
                }
                Some(watcher)
            }
            Err(error) => {
                watching.failed_at = Some(Instant::now());
                if !self.said_unavailable.swap(true, Ordering::SeqCst) {
                    tracing::warn!(
                        %error,
                        "inotify is unavailable (see fs.inotify.max_user_instances); output files are polled every {poll_interval:?}"
                    );
                }
                None
            }
        }
    }

    fn unwatch(&self, directory: &Path) {
        let mut watching = self.lock_watching();
        let remaining = match watching.directories.get_mut(directory) {
            Some(count) => {
                *count = count.saturating_sub(1);
                *count
            }
            None => return,
        };
        if remaining == 0 {
            watching.directories.remove(directory);
            if let Some(watcher) = watching.watcher.as_mut() {
                // The directory may be gone already, which ended its watch too.
                let _ = watcher.unwatch(directory);
            }
        }
    }

    fn lock_followers(&self) -> MutexGuard<'_, FollowerMap> {
        self.followers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watcher's event handler: wakes the followers of every path an event names. An event
/// without paths (an overflowed kernel queue) or an error wakes every follower once, so
/// nothing waits for a poll to see what the lost events would have said.
fn dispatcher(followers: &Followers) -> impl notify::EventHandler {
    let followers = Arc::downgrade(followers);
    move |event: notify::Result<notify::Event>| {
        let Some(followers) = followers.upgrade() else {
            return;
        };
        let followers = followers.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Ok(event) if !event.need_rescan() && !event.paths.is_empty() => {
                for path in &event.paths {
                    for (_, wake) in followers.get(path).into_iter().flatten() {
                        wake.notify_one();
                    }
                }
            }
            _ => {
                for (_, wake) in followers.values().flatten() {
                    wake.notify_one();
                }
            }
        }
    }
}

/// One follower's interest in one file. Dropping it stops the watch of the file's directory
/// when no other follower needs it.
pub(crate) struct Subscription {
    hub: Arc<WatchHub>,
    path: PathBuf,
    poll_interval: Duration,
    /// The watched directory, the key of the file, and this subscription's id, once watched.
    registered: Option<(PathBuf, PathBuf, u64)>,
    wake: Arc<Notify>,
}

impl Subscription {
    /// Whether the file's directory is watched; when it is not yet, tries again (the directory
    /// may exist now, or the kernel may have an instance to spare).
    pub(crate) fn try_watch(&mut self) -> bool {
        if self.registered.is_some() {
            return true;
        }
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let Some(name) = self.path.file_name() else {
            return false;
        };
        // Events name the directory as it was watched: one spelling per directory.
        let Ok(directory) = std::fs::canonicalize(directory) else {
            return false;
        };
        let Some(id) = self.hub.watch(&directory, self.poll_interval) else {
            return false;
        };
        let key = directory.join(name);
        self.hub
            .lock_followers()
            .entry(key.clone())
            .or_default()
            .push((id, self.wake.clone()));
        self.registered = Some((directory, key, id));
        true
    }

    /// Resolves when the file's directory reported a change since the last call. Without a
    /// watch it never resolves: the follower's poll timer does the work.
    pub(crate) async fn changed(&self) {
        self.wake.notified().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some((directory, key, id)) = self.registered.take() else {
            return;
        };
        {
            let mut followers = self.hub.lock_followers();
            if let Some(list) = followers.get_mut(&key) {
                list.retain(|(other, _)| *other != id);
                if list.is_empty() {
                    followers.remove(&key);
                }
            }
        }
        self.hub.unwatch(&directory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_subscriptions_share_one_watcher_and_release_their_directories() {
        let hub = Arc::new(WatchHub::new(Source::Inotify));
        let dir = tempfile::tempdir().unwrap();
        let mut subscriptions = Vec::new();
        for n in 0..200 {
            let job_dir = dir.path().join(format!("job-{}", n % 50));
            std::fs::create_dir_all(&job_dir).unwrap();
            subscriptions.push(hub.subscribe(
                &job_dir.join(format!("slurm-{n}.out")),
                Duration::from_secs(1),
            ));
        }

        assert_eq!(hub.watchers_created(), 1);
        assert_eq!(hub.watched_directories(), 50);
        subscriptions.truncate(100);
        assert_eq!(
            hub.watched_directories(),
            50,
            "every directory still has a follower"
        );
        subscriptions.clear();
        assert_eq!(hub.watched_directories(), 0);
        assert!(hub.lock_followers().is_empty());
    }

    #[test]
    fn a_directory_that_appears_later_is_watched_on_the_next_try() {
        let hub = Arc::new(WatchHub::new(Source::Inotify));
        let dir = tempfile::tempdir().unwrap();
        let job_dir = dir.path().join("not-yet");
        let mut subscription = hub.subscribe(&job_dir.join("out"), Duration::from_secs(1));
        assert!(!subscription.try_watch());

        std::fs::create_dir(&job_dir).unwrap();

        assert!(subscription.try_watch());
        assert_eq!(hub.watched_directories(), 1);
    }

    #[test]
    fn without_inotify_nothing_is_watched_and_creation_is_not_retried_at_once() {
        let hub = Arc::new(WatchHub::new(Source::Unavailable));
        let dir = tempfile::tempdir().unwrap();
        let mut subscription = hub.subscribe(&dir.path().join("out"), Duration::from_secs(1));

        assert!(!subscription.try_watch());
        assert!(!subscription.try_watch());
        assert_eq!(hub.watchers_created(), 0);
        assert!(hub.lock_watching().failed_at.is_some());
    }
}
