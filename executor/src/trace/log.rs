//! The shared, live job log every stage writes into.

use std::sync::{Arc, Mutex, MutexGuard};

use super::buffer::TraceBuffer;
use super::format;
use super::mask::Masker;

/// The job log: one per job, shared by the stages that write and the sender that patches.
#[derive(Debug)]
pub struct JobLog {
    buffer: Mutex<TraceBuffer>,
}

impl JobLog {
    /// A log masking with `masker` and holding at most `limit` bytes.
    pub fn new(masker: Masker, limit: usize) -> Arc<JobLog> {
        Arc::new(JobLog {
            buffer: Mutex::new(TraceBuffer::new(masker, limit)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TraceBuffer> {
        // A writer that panicked leaves a consistent buffer: keep logging.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends output.
    pub fn write(&self, bytes: &[u8]) {
        self.lock().write(bytes);
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
        self.lock().finish();
    }

    /// Bytes accepted so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was accepted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next patch after `offset` (at most 1 MiB).
    pub fn patch_from(&self, offset: usize) -> Vec<u8> {
        self.lock().patch_from(offset).to_vec()
    }

    /// Checksum and size of the accepted bytes.
    pub fn checksum(&self) -> (String, usize) {
        let buffer = self.lock();
        (buffer.checksum(), buffer.len())
    }

    /// A copy of the whole log.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().as_bytes().to_vec()
    }
}
