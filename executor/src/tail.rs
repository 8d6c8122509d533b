//! Following a scheduler's output file into the job log.
//!
//! Batch schedulers write job output to a file on the node that runs the job. batchci follows
//! that file live: inotify tells when it changes on this host, and a polling timer catches
//! writes made on another node over NFS, which inotify never sees. When the job has ended the
//! file is still read until it stops growing — NFS attribute caches can deliver the tail
//! seconds late — bounded by `nfs_timeout`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::Watcher;
use tokio::sync::mpsc;

/// How a followed file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailSummary {
    /// Bytes read.
    pub bytes: u64,
    /// The file never appeared, even `nfs_timeout` after the job ended.
    pub missing: bool,
    /// The file still grew when `nfs_timeout` ran out.
    pub still_growing: bool,
}

/// Settings of a [`follow`].
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Polling interval beside inotify.
    pub poll_interval: Duration,
    /// After the job ended: how long to wait for the file to appear or stop growing.
    pub nfs_timeout: Duration,
    /// After the job ended: how long the size must stay unchanged to count as complete.
    pub settle: Duration,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            poll_interval: Duration::from_millis(500),
            nfs_timeout: Duration::from_secs(30),
            settle: Duration::from_millis(200),
        }
    }
}

/// What to do once the job has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Keep reading until the file has settled, bounded by `nfs_timeout`.
    UntilSettled,
    /// Read what is there and stop (e.g. the job never started, so no output will come).
    Now,
}

/// Follows `path`, handing every new piece to `sink`, until `finished` resolves and then as
/// its [`Drain`] says.
pub async fn follow<F>(
    path: &Path,
    mut sink: impl FnMut(&[u8]),
    finished: F,
    options: &TailOptions,
) -> TailSummary
where
    F: std::future::Future<Output = Drain>,
{
    let (wake_tx, mut wake_rx) = mpsc::unbounded_channel::<()>();
    // The watcher lives as long as this function; without inotify the timer does the work.
    let _watcher = watch_directory(path, wake_tx);
    let mut reader = FileReader::new(path.to_path_buf());
    let mut bytes = 0u64;
    let mut poll = tokio::time::interval(options.poll_interval.max(Duration::from_millis(10)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(finished);

    let drain = loop {
        bytes += reader.read_new(&mut sink);
        tokio::select! {
            drain = &mut finished => break drain,
            _ = wake_rx.recv() => {}
            _ = poll.tick() => {}
        }
    };
    if drain == Drain::Now {
        bytes += reader.read_new(&mut sink);
        return TailSummary {
            bytes,
            missing: !reader.exists(),
            still_growing: false,
        };
    }

    // The job has ended: drain until the file stops growing, bounded by nfs_timeout.
    let deadline = Instant::now() + options.nfs_timeout;
    let mut last_growth = Instant::now();
    loop {
        let read = reader.read_new(&mut sink);
        bytes += read;
        let now = Instant::now();
        if read > 0 {
            last_growth = now;
        }
        let settled = reader.exists() && now.duration_since(last_growth) >= options.settle;
        if settled {
            return TailSummary {
                bytes,
                missing: false,
                still_growing: false,
            };
        }
        if now >= deadline {
            return TailSummary {
                bytes,
                missing: !reader.exists(),
                still_growing: reader.exists(),
            };
        }
        let pause = options
            .poll_interval
            .min(options.settle)
            .max(Duration::from_millis(10));
        tokio::select! {
            _ = wake_rx.recv() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Watches the file's directory (the file may not exist yet) and wakes the follower on change.
fn watch_directory(
    path: &Path,
    wake: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    let name = path.file_name()?.to_os_string();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = wake.send(());
        }
    })
    .ok()?;
    watcher
        .watch(directory, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}

/// Reads a file from where it left off, reopening it if it appears late or is replaced.
struct FileReader {
    path: PathBuf,
    file: Option<std::fs::File>,
    offset: u64,
    buffer: Vec<u8>,
}

impl FileReader {
    fn new(path: PathBuf) -> Self {
        FileReader {
            path,
            file: None,
            offset: 0,
            buffer: vec![0; 64 * 1024],
        }
    }

    fn exists(&self) -> bool {
        self.file.is_some() || self.path.exists()
    }

    fn read_new(&mut self, sink: &mut impl FnMut(&[u8])) -> u64 {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(_) => return 0,
            }
        }
        let Some(file) = self.file.as_mut() else {
            return 0;
        };
        // A file truncated under us (rewritten by a requeued job) is read again from its start.
        if let Ok(metadata) = file.metadata()
            && metadata.len() < self.offset
        {
            tracing::warn!(path = %self.path.display(), "output file shrank; reading it from the start");
            self.offset = 0;
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return 0;
        }
        let mut total = 0u64;
        loop {
            match file.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => {
                    sink(&self.buffer[..n]);
                    total += n as u64;
                    self.offset += n as u64;
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "reading output file failed");
                    break;
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    type Collected = Arc<Mutex<Vec<u8>>>;

    fn collector() -> (Collected, impl FnMut(&[u8])) {
        let collected = Arc::new(Mutex::new(Vec::new()));
        let sink_target = collected.clone();
        (collected, move |bytes: &[u8]| {
            sink_target.lock().unwrap().extend_from_slice(bytes)
        })
    }

    fn fast() -> TailOptions {
        TailOptions {
            poll_interval: Duration::from_millis(20),
            nfs_timeout: Duration::from_secs(5),
            settle: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn everything_written_before_the_end_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slurm-1.out");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut file = std::fs::File::create(&writer_path).unwrap();
            for n in 0..200 {
                writeln!(file, "line {n}").unwrap();
            }
            drop(file);
            done_tx.send(()).unwrap();
        });
        let (collected, sink) = collector();

        let summary = follow(
            &path,
            sink,
            async {
                done_rx.await.unwrap();
                Drain::UntilSettled
            },
            &fast(),
        )
        .await;

        writer.join().unwrap();
        let expected: String = (0..200).map(|n| format!("line {n}\n")).collect();
        assert_eq!(
            String::from_utf8(collected.lock().unwrap().clone()).unwrap(),
            expected
        );
        assert_eq!(
            summary,
            TailSummary {
                bytes: expected.len() as u64,
                missing: false,
                still_growing: false
            }
        );
    }

    #[tokio::test]
    async fn a_file_that_appears_after_the_job_ended_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.out");
        let writer_path = path.clone();
        // Stands in for an NFS client that shows the file only after the job has ended.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(&writer_path, b"arrived late\n").unwrap();
        });
        let (collected, sink) = collector();

        let summary = follow(&path, sink, async { Drain::UntilSettled }, &fast()).await;

        writer.join().unwrap();
        assert_eq!(collected.lock().unwrap().as_slice(), b"arrived late\n");
        assert!(!summary.missing);
    }

    #[tokio::test]
    async fn a_file_that_never_appears_is_reported_after_nfs_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let options = TailOptions {
            nfs_timeout: Duration::from_millis(100),
            ..fast()
        };
        let (collected, sink) = collector();

        let summary = follow(
            &dir.path().join("never.out"),
            sink,
            async { Drain::UntilSettled },
            &options,
        )
        .await;

        assert!(collected.lock().unwrap().is_empty());
        assert_eq!(
            summary,
            TailSummary {
                bytes: 0,
                missing: true,
                still_growing: false
            }
        );
    }
}
