//! Following a scheduler's output file into the job log.
//!
//! Batch schedulers write job output to a file on the node that runs the job. batchci follows
//! that file live: inotify tells when it changes on this host, and a polling timer catches
//! writes made on another node over NFS, which inotify never sees. When the job has ended the
//! file is still read until it stops growing — NFS attribute caches can deliver the tail
//! seconds late — bounded by `nfs_timeout`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

mod mark;
mod watch;

pub(crate) use mark::written_line;

use watch::WatchHub;

/// How a followed file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailSummary {
    /// Bytes read.
    pub bytes: u64,
    /// The file never appeared, even `nfs_timeout` after the job ended.
    pub missing: bool,
    /// The file still grew when `nfs_timeout` ran out.
    pub still_growing: bool,
    /// How many times the file was looked at: once per inotify wake-up or poll. The cost of
    /// following it, whatever the machine's speed.
    pub checks: u64,
}

/// Settings of a [`follow`].
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Polling interval beside inotify, and the only clock without it.
    pub poll_interval: Duration,
    /// After the job ended: how long to wait for the file to appear or stop growing.
    pub nfs_timeout: Duration,
    /// After the job ended: how long the size must stay unchanged to count as complete.
    pub settle: Duration,
    /// Whether the process's shared inotify watcher wakes the follower (the default). Without
    /// it the file is only polled, as where inotify is unavailable.
    pub inotify: bool,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            poll_interval: Duration::from_millis(500),
            nfs_timeout: Duration::from_secs(30),
            settle: Duration::from_millis(200),
            inotify: true,
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
///
/// Every follower of the process shares one inotify instance. Where inotify cannot help (no
/// instance left, a directory that does not exist yet, writes made on another NFS client),
/// the file is read every `poll_interval`, and never more often than something tells it to.
pub async fn follow<F>(
    path: &Path,
    sink: impl FnMut(&[u8]),
    finished: F,
    options: &TailOptions,
) -> TailSummary
where
    F: std::future::Future<Output = Drain>,
{
    let hub = if options.inotify {
        WatchHub::global()
    } else {
        WatchHub::polling()
    };
    follow_with(&hub, path, sink, finished, options).await
}

async fn follow_with<F>(
    hub: &Arc<WatchHub>,
    path: &Path,
    mut sink: impl FnMut(&[u8]),
    finished: F,
    options: &TailOptions,
) -> TailSummary
where
    F: std::future::Future<Output = Drain>,
{
    let poll_interval = options.poll_interval.max(MIN_PAUSE);
    let mut subscription = hub.subscribe(path, poll_interval);
    let mut reader = FileReader::new(path.to_path_buf());
    let mut poll = tokio::time::interval(poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(finished);

    let drain = loop {
        if reader.read_new(&mut sink).more {
            // A fast writer: let the other tasks (the trace sender) run before reading on.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            drain = &mut finished => break drain,
            () = subscription.changed() => {}
            _ = poll.tick() => {
                // The directory may exist by now, or an inotify instance may be free.
                subscription.try_watch();
            }
        }
    };
    if drain == Drain::Now {
        while reader.read_new(&mut sink).more {
            tokio::task::yield_now().await;
        }
        return reader.summary(false);
    }

    // The job has ended: drain until the file stops growing, bounded by nfs_timeout.
    let deadline = Instant::now() + options.nfs_timeout;
    let mut last_growth = Instant::now();
    let mut seen = reader.exists();
    let pause = options.poll_interval.min(options.settle).max(MIN_PAUSE);
    loop {
        let read = reader.read_new(&mut sink);
        let now = Instant::now();
        // A file that has just appeared counts as grown: created before it is written (and
        // on NFS shown before its data), it must have its settle time like any growth.
        let exists = reader.exists();
        if read.bytes > 0 || (exists && !seen) {
            last_growth = now;
        }
        if read.more && now < deadline {
            seen = exists;
            tokio::task::yield_now().await;
            continue;
        }
        seen = exists;
        if exists && now.duration_since(last_growth) >= options.settle {
            return reader.summary(false);
        }
        if now >= deadline {
            let still_growing = reader.exists();
            return reader.summary(still_growing);
        }
        tokio::select! {
            () = subscription.changed() => {}
            () = tokio::time::sleep(pause) => {
                subscription.try_watch();
            }
        }
    }
}

/// The shortest pause between two looks at a file, whatever the configuration says.
const MIN_PAUSE: Duration = Duration::from_millis(10);

/// A follower's read buffer: this size while reads are small...
const READ_BUFFER: usize = 64 * 1024;
/// ... growing, while reads fill it, up to this size (fewer, larger writes into the log).
const MAX_READ_BUFFER: usize = 256 * 1024;
/// The large buffer is given back after this long without a read that filled it.
const SHRINK_AFTER: Duration = Duration::from_secs(2);
/// Most bytes read in one look before the follower lets other tasks run.
const READ_BUDGET: u64 = 8 * 1024 * 1024;

/// What one look at the file found.
struct Look {
    /// Bytes read.
    bytes: u64,
    /// The look stopped at [`READ_BUDGET`], not at the end of the file.
    more: bool,
}

/// Reads a file from where it left off, reopening it if it appears late or is replaced.
struct FileReader {
    path: PathBuf,
    file: Option<std::fs::File>,
    offset: u64,
    buffer: Vec<u8>,
    /// When a read last filled the buffer.
    filled_at: std::time::Instant,
    bytes: u64,
    checks: u64,
}

impl FileReader {
    fn new(path: PathBuf) -> Self {
        FileReader {
            path,
            file: None,
            offset: 0,
            buffer: vec![0; READ_BUFFER],
            filled_at: std::time::Instant::now(),
            bytes: 0,
            checks: 0,
        }
    }

    fn summary(&self, still_growing: bool) -> TailSummary {
        TailSummary {
            bytes: self.bytes,
            missing: !self.exists(),
            still_growing,
            checks: self.checks,
        }
    }

    fn exists(&self) -> bool {
        self.file.is_some() || self.path.exists()
    }

    fn read_new(&mut self, sink: &mut impl FnMut(&[u8])) -> Look {
        const NOTHING: Look = Look {
            bytes: 0,
            more: false,
        };
        self.checks += 1;
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(_) => return NOTHING,
            }
        }
        let Some(file) = self.file.as_mut() else {
            return NOTHING;
        };
        // A file truncated under us (rewritten by a requeued job) is read again from its start.
        if let Ok(metadata) = file.metadata()
            && metadata.len() < self.offset
        {
            tracing::warn!(path = %self.path.display(), "output file shrank; reading it from the start");
            self.offset = 0;
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return NOTHING;
        }
        let mut total = 0u64;
        let mut more = false;
        loop {
            if total >= READ_BUDGET {
                more = true;
                break;
            }
            match file.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => {
                    sink(&self.buffer[..n]);
                    total += n as u64;
                    self.offset += n as u64;
                    self.bytes += n as u64;
                    if n == self.buffer.len() {
                        self.filled_at = std::time::Instant::now();
                        if n < MAX_READ_BUFFER {
                            self.buffer = vec![0; (2 * n).min(MAX_READ_BUFFER)];
                        }
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "reading output file failed");
                    break;
                }
            }
        }
        if total == 0 && self.buffer.len() > READ_BUFFER && self.filled_at.elapsed() >= SHRINK_AFTER
        {
            // The burst is over: give the large buffer back.
            self.buffer = vec![0; READ_BUFFER];
        }
        Look { bytes: total, more }
    }
}

#[cfg(test)]
mod tests {
    use super::watch::Source;
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

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
            ..TailOptions::default()
        }
    }

    fn without_inotify() -> Arc<WatchHub> {
        Arc::new(WatchHub::new(Source::Unavailable))
    }

    /// A follower in a task of its own: what it reads arrives on `pieces`, piece by piece.
    struct Follower {
        pieces: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
        done: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<TailSummary>,
    }

    impl Follower {
        fn spawn(hub: &Arc<WatchHub>, path: &Path, options: TailOptions) -> Follower {
            let (pieces_tx, pieces) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
            let hub = hub.clone();
            let path = path.to_path_buf();
            let task = tokio::spawn(async move {
                follow_with(
                    &hub,
                    &path,
                    move |bytes| pieces_tx.send(bytes.to_vec()).unwrap(),
                    async {
                        done_rx.await.unwrap();
                        Drain::Now
                    },
                    &options,
                )
                .await
            });
            Follower { pieces, done, task }
        }

        /// Tells the follower the job has ended and returns its summary.
        async fn finish(self) -> TailSummary {
            self.done.send(()).unwrap();
            self.task.await.unwrap()
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
        assert_eq!(summary.bytes, expected.len() as u64);
        assert!(!summary.missing);
        assert!(!summary.still_growing);
    }

    /// More than one look's budget, written before the follower starts: all of it, in order,
    /// however many looks it takes.
    #[tokio::test]
    async fn a_file_larger_than_one_looks_budget_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.out");
        let text: Vec<u8> = (0..READ_BUDGET as usize * 5 / 2)
            .map(|n| {
                if n % 97 == 96 {
                    b'\n'
                } else {
                    b'a' + (n % 26) as u8
                }
            })
            .collect();
        std::fs::write(&path, &text).unwrap();
        let (collected, sink) = collector();

        let summary = follow(&path, sink, async { Drain::UntilSettled }, &fast()).await;

        assert_eq!(summary.bytes, text.len() as u64);
        assert!(
            *collected.lock().unwrap() == text,
            "the file arrived changed"
        );
    }

    #[tokio::test]
    async fn a_follower_told_not_to_use_inotify_polls_without_a_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("polled.out");
        std::fs::write(&path, b"polled\n").unwrap();
        let options = TailOptions {
            inotify: false,
            ..fast()
        };
        let (collected, sink) = collector();

        let summary = follow(&path, sink, async { Drain::UntilSettled }, &options).await;

        assert_eq!(collected.lock().unwrap().as_slice(), b"polled\n");
        assert_eq!(summary.bytes, 7);
        assert_eq!(WatchHub::polling().watchers_created(), 0);
        assert_eq!(WatchHub::polling().watched_directories(), 0);
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
        assert_eq!(summary.bytes, 0);
        assert!(summary.missing);
        assert!(!summary.still_growing);
    }

    /// The bug this guards against: a follower without a watcher woke on its closed channel
    /// at once, every time, and read the file in a tight loop (thousands of reads a second).
    #[tokio::test]
    async fn a_follower_without_inotify_reads_once_per_poll_not_in_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quiet.out");
        std::fs::write(&path, b"nothing new after this\n").unwrap();
        let options = TailOptions {
            poll_interval: Duration::from_millis(25),
            ..fast()
        };
        // The end comes from another thread: a follower that spins and never yields still
        // sees it, so a regression fails here instead of hanging.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let started = std::time::Instant::now();
        let window = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            done_tx.send(()).unwrap();
        });

        let summary = follow_with(
            &without_inotify(),
            &path,
            |_| {},
            async {
                done_rx.await.unwrap();
                Drain::Now
            },
            &options,
        )
        .await;
        window.join().unwrap();

        // However slow or busy the machine: one look per poll tick, plus the first and last.
        let ticks = started.elapsed().as_millis() / options.poll_interval.as_millis() + 1;
        assert!(
            u128::from(summary.checks) <= ticks + 2,
            "{} looks at the file in {:?} with a poll every {:?}",
            summary.checks,
            started.elapsed(),
            options.poll_interval
        );
        assert_eq!(summary.bytes, 23);
    }

    #[tokio::test]
    async fn draining_without_inotify_waits_between_looks_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("never.out");
        let options = TailOptions {
            poll_interval: Duration::from_millis(25),
            nfs_timeout: Duration::from_millis(500),
            settle: Duration::from_millis(25),
            ..TailOptions::default()
        };
        let started = std::time::Instant::now();

        let summary = follow_with(
            &without_inotify(),
            &path,
            |_| {},
            async { Drain::UntilSettled },
            &options,
        )
        .await;

        let pauses = started.elapsed().as_millis() / options.settle.as_millis() + 1;
        assert!(summary.missing);
        assert!(
            u128::from(summary.checks) <= pauses + 2,
            "{} looks at a missing file in {:?}",
            summary.checks,
            started.elapsed()
        );
    }

    /// The file is created empty and written a moment later, as `write` does (and as an NFS
    /// client may show it): the empty file is no sign that the output is complete.
    #[tokio::test(start_paused = true)]
    async fn a_file_that_appears_empty_after_the_end_gets_its_settle_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.out");
        let options = TailOptions {
            poll_interval: Duration::from_millis(20),
            nfs_timeout: Duration::from_secs(5),
            settle: Duration::from_millis(50),
            ..TailOptions::default()
        };
        let (collected, sink) = collector();
        let hub = without_inotify();
        let writer = {
            let path = path.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(310)).await;
                let file = std::fs::File::create(&path).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut file = file;
                file.write_all(b"the last line\n").unwrap();
            }
        };

        let (summary, ()) = tokio::join!(
            follow_with(&hub, &path, sink, async { Drain::UntilSettled }, &options),
            writer
        );

        assert_eq!(collected.lock().unwrap().as_slice(), b"the last line\n");
        assert_eq!(summary.bytes, 14);
    }

    /// Paused time: the clock moves only when every task waits, so "within one poll interval"
    /// is exact, not a race with the machine's load.
    #[tokio::test(start_paused = true)]
    async fn without_inotify_output_arrives_within_one_poll_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("polled.out");
        let poll_interval = Duration::from_secs(2);
        let options = TailOptions {
            poll_interval,
            ..fast()
        };
        let mut follower = Follower::spawn(&without_inotify(), &path, options);

        for n in 0..3 {
            // Written between two polls, somewhere in the interval.
            tokio::time::sleep(poll_interval / 3).await;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            writeln!(file, "line {n}").unwrap();
            let written = Instant::now();

            let arrived = follower.pieces.recv().await.unwrap();

            assert_eq!(arrived, format!("line {n}\n").into_bytes());
            assert!(
                written.elapsed() <= poll_interval,
                "{:?}",
                written.elapsed()
            );
        }
        let summary = follower.finish().await;
        assert_eq!(summary.bytes, 21);
    }

    #[tokio::test]
    async fn with_inotify_a_write_wakes_the_follower_long_before_its_poll() {
        let hub = Arc::new(WatchHub::new(Source::Inotify));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watched.out");
        let options = TailOptions {
            // Only inotify can deliver within this test's lifetime.
            poll_interval: Duration::from_secs(3600),
            ..fast()
        };
        let mut follower = Follower::spawn(&hub, &path, options);
        // The watch is in place once the hub says so.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while hub.watched_directories() == 0 {
            assert!(std::time::Instant::now() < deadline, "never watched");
            tokio::task::yield_now().await;
        }

        std::fs::write(&path, b"seen by inotify\n").unwrap();

        let arrived = tokio::time::timeout(Duration::from_secs(60), follower.pieces.recv())
            .await
            .expect("inotify woke the follower")
            .unwrap();
        assert_eq!(arrived, b"seen by inotify\n");
        follower.finish().await;
        assert_eq!(hub.watchers_created(), 1);
        assert_eq!(
            hub.watched_directories(),
            0,
            "the watch ends with the follower"
        );
    }
}
