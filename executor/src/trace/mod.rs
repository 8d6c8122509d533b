//! The job-log pipeline: masking, the trace buffer GitLab's checksum is computed over, and
//! chunking for `PATCH /jobs/:id/trace`.

mod block;
mod buffer;
pub mod format;
mod log;
mod mask;
mod sender;

pub use buffer::{DEFAULT_OUTPUT_LIMIT, MAX_PATCH_BYTES, TraceBuffer};
pub use log::JobLog;
pub use mask::{DEFAULT_TOKEN_PREFIXES, MASK, Masker};
pub use sender::{FinalOutcome, RemoteRequest, TraceSender};
