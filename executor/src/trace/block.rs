//! Memory for a long job log.
//!
//! A log past its first mebibyte is kept in blocks of [`BLOCK_BYTES`] mapped on their own:
//!
//! - aligned to and as large as a huge page, and marked for one (`MADV_HUGEPAGE`), so that a
//!   256 MiB log costs 128 page faults instead of 65,536 — each one also charges, zeroes and
//!   later unmaps its page;
//! - not inherited by forked children (`MADV_DONTFORK`): every scheduler command batchci
//!   starts with `fork` would otherwise copy the page tables of every log it holds and make
//!   the next write to each page a copy-on-write fault. A child never reads a log: it execs at
//!   once (or runs only the few steps between `fork` and `exec` that set its user and group).
//!
//! Where the kernel refuses the mapping, a block is ordinary heap memory: only slower.

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::Arc;

use bytes::Bytes;
use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, munmap};

/// Size of a block: one huge page on x86-64 and arm64 (4 KiB base pages).
pub(crate) const BLOCK_BYTES: usize = 2 * 1024 * 1024;

/// A block being filled. What it holds can be shared as [`Bytes`] at any time, without a
/// copy: bytes once written are never written again, and the next ones go after them.
#[derive(Debug)]
pub(crate) struct Block {
    memory: Arc<Memory>,
    filled: usize,
}

impl Block {
    /// An empty block of [`BLOCK_BYTES`].
    pub(crate) fn new() -> Block {
        Block {
            memory: Arc::new(Memory::new()),
            filled: 0,
        }
    }

    /// The bytes written so far.
    pub(crate) fn filled(&self) -> &[u8] {
        // SAFETY: the first `filled` bytes were written by `fill` and are never written again.
        unsafe { std::slice::from_raw_parts(self.memory.start.as_ptr(), self.filled) }
    }

    /// Copies as much of `bytes` as fits and returns how much that was.
    pub(crate) fn fill(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(BLOCK_BYTES - self.filled);
        // SAFETY: `filled + n <= BLOCK_BYTES`, inside the block, past every byte any share
        // reads; `&mut self` makes this the only writer, and `bytes` is borrowed from
        // elsewhere, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.memory.start.as_ptr().add(self.filled),
                n,
            );
        }
        self.filled += n;
        n
    }

    /// Whether the block is full.
    pub(crate) fn is_full(&self) -> bool {
        self.filled == BLOCK_BYTES
    }

    /// The bytes written so far, shared: the block's memory lives as long as its last share.
    pub(crate) fn share(&self) -> Bytes {
        Bytes::from_owner(Filled {
            memory: self.memory.clone(),
            len: self.filled,
        })
    }
}

/// The written part of a block, as a [`Bytes`] owner.
struct Filled {
    memory: Arc<Memory>,
    len: usize,
}

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: these bytes were written before this share was made and are never written
        // again.
        unsafe { std::slice::from_raw_parts(self.memory.start.as_ptr(), self.len) }
    }
}

/// [`BLOCK_BYTES`] of memory: mapped on its own, aligned to its size, or, where the kernel
/// refuses the mapping, on the heap (only slower).
#[derive(Debug)]
struct Memory {
    start: NonNull<u8>,
    mapped: bool,
}

// SAFETY: `Memory` owns its bytes alone; the one `Block` writes only bytes that no share reads
// (see `Block::fill`), and shares only read.
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Memory {
    fn new() -> Memory {
        match Self::map() {
            Some(start) => Memory {
                start,
                mapped: true,
            },
            None => {
                let heap: Box<[u8]> = vec![0; BLOCK_BYTES].into_boxed_slice();
                let start =
                    NonNull::new(Box::into_raw(heap).cast::<u8>()).expect("a box is never null");
                Memory {
                    start,
                    mapped: false,
                }
            }
        }
    }

    /// Maps twice the size, keeps the aligned middle and unmaps the rest; marks it for a
    /// huge page and keeps it from forked children. `None` when the kernel refuses.
    fn map() -> Option<NonNull<u8>> {
        let twice = NonZeroUsize::new(2 * BLOCK_BYTES)?;
        // SAFETY: a new private anonymous mapping at an address the kernel chooses aliases
        // nothing.
        let mapped = unsafe {
            mmap_anonymous(
                None,
                twice,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .ok()?;
        let base = mapped.as_ptr() as usize;
        let aligned = base.next_multiple_of(BLOCK_BYTES);
        let before = aligned - base;
        let after = BLOCK_BYTES - before;
        // SAFETY: both ranges lie inside the mapping just made and outside the part kept.
        unsafe {
            if before > 0 {
                let _ = munmap(mapped, before);
            }
            if after > 0
                && let Some(end) = NonNull::new((aligned + BLOCK_BYTES) as *mut c_void)
            {
                let _ = munmap(end, after);
            }
        }
        let start = NonNull::new(aligned as *mut c_void)?;
        // Advice only: a kernel without huge pages, or without either flag, still gives
        // memory.
        // SAFETY: the range is the block's own mapping.
        unsafe {
            let _ = madvise(start, BLOCK_BYTES, MmapAdvise::MADV_HUGEPAGE);
            let _ = madvise(start, BLOCK_BYTES, MmapAdvise::MADV_DONTFORK);
        }
        Some(start.cast())
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: the block's own mapping, unmapped once, after its last share.
            unsafe {
                let _ = munmap(self.start.cast(), BLOCK_BYTES);
            }
        } else {
            // SAFETY: made by `Box::into_raw` of a boxed slice of `BLOCK_BYTES`, freed once.
            unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.start.as_ptr(),
                    BLOCK_BYTES,
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_aligned_and_holds_what_was_written() {
        let mut block = Block::new();
        assert!(block.memory.mapped);
        assert_eq!(block.memory.start.as_ptr() as usize % BLOCK_BYTES, 0);
        let text: Vec<u8> = (0..BLOCK_BYTES + 10).map(|i| (i % 251) as u8).collect();
        assert_eq!(block.fill(&text[..100]), 100);
        assert_eq!(block.fill(&text[100..]), BLOCK_BYTES - 100);
        assert_eq!(block.fill(b"more"), 0);
        assert!(block.is_full());
        assert_eq!(block.filled(), &text[..BLOCK_BYTES]);
    }

    #[test]
    fn a_share_keeps_its_bytes_while_the_block_fills_and_after_it_is_gone() {
        let mut block = Block::new();
        block.fill(b"hello, ");
        let early = block.share();
        block.fill(b"log");
        let part = block.share().slice(7..);
        drop(block);
        assert_eq!(&early[..], b"hello, ");
        assert_eq!(&part[..], b"log");
    }

    /// A forked child does not see the block (`MADV_DONTFORK`): reading it there faults.
    /// The parent's bytes are untouched by the fork.
    #[test]
    fn a_forked_child_does_not_inherit_a_block() {
        let mut block = Block::new();
        block.fill(b"x");
        let address = block.memory.start.as_ptr() as usize;
        // SAFETY: the child only reads a byte and leaves with `_exit`; it runs no allocator
        // or lock code.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                // SAFETY: deliberately reading memory that should not be mapped here; a
                // SIGSEGV is the expected outcome.
                let byte = unsafe { std::ptr::read_volatile(address as *const u8) };
                // SAFETY: `_exit` runs no destructors or atexit handlers.
                unsafe { libc_exit(i32::from(byte)) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
                assert!(
                    matches!(
                        status,
                        nix::sys::wait::WaitStatus::Signaled(
                            pid,
                            nix::sys::signal::Signal::SIGSEGV,
                            _
                        ) if pid == child
                    ),
                    "the child read the block: {status:?}"
                );
                assert_eq!(block.filled(), b"x");
            }
        }
    }

    unsafe fn libc_exit(code: i32) -> ! {
        unsafe extern "C" {
            fn _exit(code: i32) -> !;
        }
        unsafe { _exit(code) }
    }
}
