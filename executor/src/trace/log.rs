//! The shared, live job log every stage writes into.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::buffer::TraceBuffer;
use super::format;
use super::mask::Masker;

/// The job log: one per job, shared by the stages that write and the sender that patches.
#[derive(Debug)]
pub struct JobLog {
    buffer: Mutex<TraceBuffer>,
    /// The log's length, readable without the lock.
    len: AtomicUsize,
    /// The length at which [`JobLog::reached`] resolves; `usize::MAX` when nobody waits.
    wake_at: AtomicUsize,
    reached: Notify,
}

impl JobLog {
    /// A log masking with `masker` and holding at most `limit` bytes.
    pub fn new(masker: Masker, limit: usize) -> Arc<JobLog> {
        Arc::new(JobLog {
            buffer: Mutex::new(TraceBuffer::new(masker, limit)),
            len: AtomicUsize::new(0),
            wake_at: AtomicUsize::new(usize::MAX),
            reached: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TraceBuffer> {
        // A writer that panicked leaves a consistent buffer: keep logging.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends output.
    pub fn write(&self, bytes: &[u8]) {
        let len = {
            let mut buffer = self.lock();
            buffer.write(bytes);
            // Stored under the lock, so the length never goes back.
            self.len.store(buffer.len(), Ordering::Release);
            buffer.len()
        };
        self.grew_to(len);
    }

    /// Wakes [`JobLog::reached`] if the log, now `len` bytes, has reached its length.
    fn grew_to(&self, len: usize) {
        if len >= self.wake_at.load(Ordering::Acquire)
            && self.wake_at.swap(usize::MAX, Ordering::AcqRel) <= len
        {
            self.reached.notify_one();
        }
    }

    /// Arms [`JobLog::reached`] for when the log holds `len` bytes (replacing an earlier
    /// length); it fires at once if it already does.
    pub fn wake_at(&self, len: usize) {
        self.wake_at.store(len, Ordering::Release);
        self.grew_to(self.len.load(Ordering::Acquire));
    }

    /// Resolves once the log has reached the length given to [`JobLog::wake_at`] (or, rarely,
    /// for an earlier one: check the length again).
    pub async fn reached(&self) {
        self.reached.notified().await
    }

    /// Appends a plain runner message line.
    pub fn info(&self, message: &str) {
        self.write(format::info(message).as_bytes());
    }

    /// Appends a bold green line.
    pub fn notice(&self, message: &str) {
        self.write(format::notice(message).as_bytes());
    }

    /// Appends a `WARNING:` line.
    pub fn warning(&self, message: &str) {
        self.write(format::warning(message).as_bytes());
    }

    /// Appends an `ERROR:` line.
    pub fn error(&self, message: &str) {
        self.write(format::error(message).as_bytes());
    }

    /// Releases bytes held back for masking; call when all output has been written.
    pub fn finish(&self) {
        let len = {
            let mut buffer = self.lock();
            buffer.finish();
            self.len.store(buffer.len(), Ordering::Release);
            buffer.len()
        };
        self.grew_to(len);
    }

    /// Bytes accepted so far.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing was accepted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next patch after `offset` (at most 1 MiB, to the end of its block): a full block
    /// is shared, the block being filled is copied.
    pub fn patch_from(&self, offset: usize) -> bytes::Bytes {
        self.lock().patch_from(offset)
    }

    /// Checksum and size of the accepted bytes.
    pub fn checksum(&self) -> (String, usize) {
        let buffer = self.lock();
        (buffer.checksum(), buffer.len())
    }

    /// A copy of the whole log.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().to_vec()
    }
}
