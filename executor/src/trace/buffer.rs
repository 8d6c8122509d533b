//! The job log as GitLab will store it.
//!
//! Every byte of output passes through one [`TraceBuffer`]: masked first, then repaired to valid
//! UTF-8 (invalid sequences become U+FFFD, as gitlab-runner does), then held against the
//! configured output limit. The final `PUT /jobs/:id` reports the CRC-32 and size of exactly
//! these bytes, and the trace sender patches them to GitLab from any offset GitLab asks for.
//!
//! The bytes are kept in blocks (the first of [`MAX_PATCH_BYTES`], the others of two): a full
//! block never moves again and a patch of it shares it instead of copying it, and the log grows
//! without reallocating.

use bytes::Bytes;

use super::block::{BLOCK_BYTES, Block};
use super::mask::Masker;

/// gitlab-runner's default `output_limit`: 4096 KiB.
pub const DEFAULT_OUTPUT_LIMIT: usize = 4096 * 1024;

/// Largest body of one `PATCH /jobs/:id/trace` request.
pub const MAX_PATCH_BYTES: usize = 1024 * 1024;

/// Accepted job-log bytes with masking, UTF-8 repair, the output limit and the running checksum.
#[derive(Debug)]
pub struct TraceBuffer {
    masker: Masker,
    accepted: Accepted,
}

/// What the masker released, repaired, limited and summed.
#[derive(Debug)]
struct Accepted {
    /// The tail of a UTF-8 sequence cut by a read boundary.
    utf8_carry: Vec<u8>,
    data: Blocks,
    limit: usize,
    truncated: bool,
    crc: crc32fast::Hasher,
}

impl TraceBuffer {
    /// An empty log that masks with `masker` and keeps at most `limit` bytes of output.
    pub fn new(masker: Masker, limit: usize) -> Self {
        TraceBuffer {
            masker,
            accepted: Accepted {
                utf8_carry: Vec::new(),
                data: Blocks::default(),
                limit,
                truncated: false,
                crc: crc32fast::Hasher::new(),
            },
        }
    }

    /// Adds output. Bytes that may begin a secret or a UTF-8 character stay held back until
    /// the next write or [`TraceBuffer::finish`].
    pub fn write(&mut self, bytes: &[u8]) {
        if self.accepted.truncated {
            return;
        }
        // What the masker releases goes straight into the log, not through a copy.
        let accepted = &mut self.accepted;
        self.masker
            .push_with(bytes, &mut |piece| accepted.accept(piece, false));
    }

    /// Releases everything held back. Call once when the job's output has ended.
    pub fn finish(&mut self) {
        let accepted = &mut self.accepted;
        self.masker
            .finish_with(&mut |piece| accepted.accept(piece, false));
        accepted.accept(b"", true);
    }

    /// Whether the output limit cut the log.
    pub fn is_truncated(&self) -> bool {
        self.accepted.truncated
    }

    /// Number of bytes in the log.
    pub fn len(&self) -> usize {
        self.accepted.data.len
    }

    /// Whether nothing has been accepted yet.
    pub fn is_empty(&self) -> bool {
        self.accepted.data.len == 0
    }

    /// A copy of the whole log as accepted so far.
    pub fn to_vec(&self) -> Vec<u8> {
        let data = &self.accepted.data;
        let mut out = Vec::with_capacity(data.len);
        for block in &data.full {
            out.extend_from_slice(block);
        }
        out.extend_from_slice(data.current.filled());
        out
    }

    /// The next patch to send when GitLab holds `offset` bytes: up to the log's next whole
    /// mebibyte ([`MAX_PATCH_BYTES`]), so that after a short first patch the next ones are
    /// whole mebibytes; past the log's first one they are shared, not copied. Empty when everything was sent (and also when
    /// `offset` is beyond the log).
    pub fn patch_from(&self, offset: usize) -> Bytes {
        let data = &self.accepted.data;
        let (index, within) = data.locate(offset.min(data.len));
        match data.full.get(index) {
            Some(block) => block.slice(within..block.len().min(next_mebibyte(within))),
            None => match &data.current {
                Current::First(first) => {
                    let end = first.len().min(within + MAX_PATCH_BYTES);
                    Bytes::copy_from_slice(&first[within..end])
                }
                Current::Later(block) => {
                    let end = block.filled().len().min(next_mebibyte(within));
                    block.share().slice(within..end)
                }
            },
        }
    }

    /// `crc32:xxxxxxxx` over the accepted bytes, as GitLab checks it.
    pub fn checksum(&self) -> String {
        format!("crc32:{:08x}", self.accepted.crc.clone().finalize())
    }
}

/// The end of the mebibyte that `within` (an offset in a block) is in: blocks begin on a
/// mebibyte of the log, so this is also the log's next mebibyte.
fn next_mebibyte(within: usize) -> usize {
    (within / MAX_PATCH_BYTES + 1) * MAX_PATCH_BYTES
}

impl Accepted {
    /// Takes one piece of masked output; `at_end`, an incomplete character left at the end
    /// becomes U+FFFD instead of waiting for its next bytes.
    fn accept(&mut self, mut piece: &[u8], at_end: bool) {
        if self.truncated {
            return;
        }
        // A character cut by the last piece is completed with the few bytes it needs, so
        // the rest of this piece is repaired in place, not copied behind the carry.
        while !self.utf8_carry.is_empty() && !piece.is_empty() {
            let take = piece.len().min(4 - self.utf8_carry.len());
            let mut head = std::mem::take(&mut self.utf8_carry);
            head.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            self.repair(&head, false);
        }
        if self.utf8_carry.is_empty() {
            self.repair(piece, at_end);
        } else if at_end {
            let carry = std::mem::take(&mut self.utf8_carry);
            self.repair(&carry, true);
        }
    }

    /// Appends `input` with invalid UTF-8 replaced, piece by piece; an incomplete character
    /// at its end is carried to the next piece (or replaced `at_end`).
    fn repair(&mut self, input: &[u8], at_end: bool) {
        let mut rest = input;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    self.append_limited(valid.as_bytes());
                    break;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    self.append_limited(valid);
                    match error.error_len() {
                        Some(bad) => {
                            self.append_limited("\u{FFFD}".as_bytes());
                            rest = &after[bad..];
                        }
                        None if at_end => {
                            self.append_limited("\u{FFFD}".as_bytes());
                            break;
                        }
                        None => {
                            self.utf8_carry = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
    }

    fn append_limited(&mut self, bytes: &[u8]) {
        if self.truncated || bytes.is_empty() {
            return;
        }
        let room = self.limit.saturating_sub(self.data.len);
        if bytes.len() <= room {
            self.append(bytes);
            return;
        }
        // `bytes` is valid UTF-8: cut at a character boundary.
        let mut cut = room;
        while cut > 0 && (bytes[cut] & 0b1100_0000) == 0b1000_0000 {
            cut -= 1;
        }
        self.append(&bytes[..cut]);
        let notice = format!(
            "\n\x1b[33;1mJob's log exceeded limit of {} bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n",
            self.limit
        );
        self.append(notice.as_bytes());
        self.truncated = true;
    }

    fn append(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.data.extend(bytes);
    }
}

/// The log's bytes: its first block, of at most [`MAX_PATCH_BYTES`], grows by doubling, so a
/// short log stays small; the log past it is kept in blocks of [`BLOCK_BYTES`] (see
/// [`super::block`]). Full blocks are frozen and shared by the patches cut from them.
#[derive(Debug, Default)]
struct Blocks {
    full: Vec<Bytes>,
    /// The block being filled: the first one, or a later one.
    current: Current,
    len: usize,
}

#[derive(Debug)]
enum Current {
    First(Vec<u8>),
    Later(Block),
}

impl Default for Current {
    fn default() -> Self {
        Current::First(Vec::new())
    }
}

impl Current {
    fn filled(&self) -> &[u8] {
        match self {
            Current::First(vec) => vec,
            Current::Later(block) => block.filled(),
        }
    }
}

impl Blocks {
    fn extend(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len();
        while !bytes.is_empty() {
            let taken = match &mut self.current {
                Current::First(first) => {
                    let now = &bytes[..bytes.len().min(MAX_PATCH_BYTES - first.len())];
                    if first.capacity() - first.len() < now.len() {
                        let wanted = (first.len() + now.len())
                            .next_power_of_two()
                            .clamp(4096, MAX_PATCH_BYTES);
                        first.reserve_exact(wanted - first.len());
                    }
                    first.extend_from_slice(now);
                    if first.len() == MAX_PATCH_BYTES {
                        let first = std::mem::take(first);
                        self.full.push(Bytes::from(first));
                        self.current = Current::Later(Block::new());
                    }
                    now.len()
                }
                Current::Later(block) => {
                    let taken = block.fill(bytes);
                    if block.is_full() {
                        self.full.push(block.share());
                        *block = Block::new();
                    }
                    taken
                }
            };
            bytes = &bytes[taken..];
        }
    }

    /// The block holding byte `offset` (`full.len()` for the current one) and the offset in it.
    fn locate(&self, offset: usize) -> (usize, usize) {
        if offset < MAX_PATCH_BYTES {
            (0, offset)
        } else {
            let later = offset - MAX_PATCH_BYTES;
            (1 + later / BLOCK_BYTES, later % BLOCK_BYTES)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Masker {
        Masker::new(Vec::<String>::new(), Vec::<String>::new())
    }

    #[test]
    fn checksum_is_crc32_of_the_stored_bytes() {
        let mut buffer = TraceBuffer::new(plain(), DEFAULT_OUTPUT_LIMIT);
        buffer.write(b"hello\n");
        buffer.finish();
        assert_eq!(buffer.to_vec(), b"hello\n");
        assert_eq!(buffer.checksum(), "crc32:363a3020");
    }

    #[test]
    fn a_character_split_across_writes_is_kept_whole() {
        let mut buffer = TraceBuffer::new(plain(), DEFAULT_OUTPUT_LIMIT);
        let text = "grüße".as_bytes();
        buffer.write(&text[..3]);
        assert_eq!(buffer.to_vec(), b"gr");
        buffer.write(&text[3..]);
        buffer.finish();
        assert_eq!(buffer.to_vec(), text);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut buffer = TraceBuffer::new(plain(), DEFAULT_OUTPUT_LIMIT);
        buffer.write(b"a\xffb\xe2\x82");
        buffer.finish();
        assert_eq!(buffer.to_vec(), "a\u{FFFD}b\u{FFFD}".as_bytes());
    }

    #[test]
    fn the_limit_cuts_at_a_character_and_appends_gitlabs_notice() {
        let mut buffer = TraceBuffer::new(plain(), 4);
        buffer.write("abcé".as_bytes());
        buffer.write(b"more output");
        buffer.finish();
        assert!(buffer.is_truncated());
        assert_eq!(
            String::from_utf8_lossy(&buffer.to_vec()),
            "abc\n\x1b[33;1mJob's log exceeded limit of 4 bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n"
        );
    }

    #[test]
    fn patches_are_at_most_one_mebibyte() {
        let mut buffer = TraceBuffer::new(plain(), 8 * MAX_PATCH_BYTES);
        buffer.write(&vec![b'x'; MAX_PATCH_BYTES + 10]);
        assert_eq!(buffer.patch_from(0).len(), MAX_PATCH_BYTES);
        assert_eq!(buffer.patch_from(MAX_PATCH_BYTES).len(), 10);
        assert!(buffer.patch_from(MAX_PATCH_BYTES + 10).is_empty());
        assert!(buffer.patch_from(usize::MAX).is_empty());
    }

    /// Blocks are filled across writes of any size; a patch ends at the log's next mebibyte,
    /// so that after a small first patch the next ones are whole mebibytes; GitLab may ask
    /// for any offset, and every byte is there once, in order.
    #[test]
    fn a_log_of_many_blocks_reassembles_from_any_offset() {
        // The first block, two whole later ones (1–3 MiB, 3–5 MiB) and half of one.
        let input: Vec<u8> = (0..13 * MAX_PATCH_BYTES / 2)
            .map(|n| b'a' + (n % 23) as u8)
            .collect();
        let mut buffer = TraceBuffer::new(plain(), usize::MAX);
        for piece in input.chunks(100_003) {
            buffer.write(piece);
        }
        buffer.finish();

        assert_eq!(buffer.len(), input.len());
        assert_eq!(buffer.to_vec(), input);
        assert_eq!(
            buffer.checksum(),
            format!("crc32:{:08x}", crc32fast::hash(&input))
        );
        for start in [
            0,
            10,
            MAX_PATCH_BYTES - 1,
            MAX_PATCH_BYTES,
            2 * MAX_PATCH_BYTES + 7,
            3 * MAX_PATCH_BYTES - 1,
            3 * MAX_PATCH_BYTES,
            5 * MAX_PATCH_BYTES + 1,
            6 * MAX_PATCH_BYTES + 5,
        ] {
            let mut received = Vec::new();
            let mut sizes = Vec::new();
            loop {
                let patch = buffer.patch_from(start + received.len());
                if patch.is_empty() {
                    break;
                }
                sizes.push(patch.len());
                received.extend_from_slice(&patch);
            }
            assert_eq!(received, input[start..], "from {start}");
            let first_block_end = (start / MAX_PATCH_BYTES + 1) * MAX_PATCH_BYTES;
            assert_eq!(sizes[0], first_block_end.min(input.len()) - start);
            assert!(
                sizes[1..]
                    .iter()
                    .rev()
                    .skip(1)
                    .all(|s| *s == MAX_PATCH_BYTES)
            );
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Writes `input` to `buffer` in the pieces that the cut positions `cuts` (any numbers,
    /// taken modulo the input's length) make, then finishes it.
    fn write_in_pieces(buffer: &mut TraceBuffer, input: &[u8], cuts: &[usize]) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts {
            buffer.write(&input[start..cut]);
            start = cut;
        }
        buffer.write(&input[start..]);
        buffer.finish();
    }

    proptest! {
        /// Output cut at random points, masked and sent in patches, arrives whole, in order,
        /// once, and without any masked value.
        #[test]
        fn patches_reassemble_the_masked_log(
            secret in "[a-z]{4,12}",
            lines in proptest::collection::vec("[a-z ]{0,40}", 0..30),
            cuts in proptest::collection::vec(0usize..4000, 0..30),
        ) {
            let mut text = String::new();
            for (n, line) in lines.iter().enumerate() {
                text.push_str(line);
                if n % 3 == 0 {
                    text.push_str(&secret);
                }
                text.push('\n');
            }
            let input = text.as_bytes();
            let mut buffer = TraceBuffer::new(Masker::new([&secret], Vec::<String>::new()), usize::MAX);
            write_in_pieces(&mut buffer, input, &cuts);

            let mut received = Vec::new();
            loop {
                let patch = buffer.patch_from(received.len());
                if patch.is_empty() {
                    break;
                }
                received.extend_from_slice(&patch);
            }
            let expected = text.replace(&secret, "[MASKED]");
            prop_assert_eq!(String::from_utf8(received).unwrap(), expected);
            prop_assert_eq!(buffer.checksum(), format!("crc32:{:08x}", crc32fast::hash(&buffer.to_vec())));
        }

        /// Invalid and cut UTF-8 is repaired the same wherever reads and masks cut it: as
        /// `from_utf8_lossy` repairs the whole output at once.
        #[test]
        fn utf8_repair_does_not_depend_on_the_cuts(
            input in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(0xe2u8), Just(0x82u8), Just(0xacu8), Just(0xf0u8), Just(0x9fu8), Just(b's')],
                0..300,
            ),
            cuts in proptest::collection::vec(0usize..1000, 0..30),
        ) {
            // A pattern whose first byte is everywhere, so that masking cuts the output too.
            let mut buffer = TraceBuffer::new(Masker::new(["s\u{20ac}x"], Vec::<String>::new()), usize::MAX);
            write_in_pieces(&mut buffer, &input, &cuts);

            let expected = String::from_utf8_lossy(&input).replace("s\u{20ac}x", "[MASKED]");
            prop_assert_eq!(String::from_utf8(buffer.to_vec()).unwrap(), expected);
        }
    }
}
