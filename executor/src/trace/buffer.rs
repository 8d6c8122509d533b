//! The job log as GitLab will store it.
//!
//! Every byte of output passes through one [`TraceBuffer`]: masked first, then repaired to valid
//! UTF-8 (invalid sequences become U+FFFD, as gitlab-runner does), then held against the
//! configured output limit. The final `PUT /jobs/:id` reports the CRC-32 and size of exactly
//! these bytes, and the trace sender patches them to GitLab from any offset GitLab asks for.

use super::mask::Masker;

/// gitlab-runner's default `output_limit`: 4096 KiB.
pub const DEFAULT_OUTPUT_LIMIT: usize = 4096 * 1024;

/// Largest body of one `PATCH /jobs/:id/trace` request.
pub const MAX_PATCH_BYTES: usize = 1024 * 1024;

/// Accepted job-log bytes with masking, UTF-8 repair, the output limit and the running checksum.
#[derive(Debug)]
pub struct TraceBuffer {
    masker: Masker,
    /// The tail of a UTF-8 sequence cut by a read boundary.
    utf8_carry: Vec<u8>,
    data: Vec<u8>,
    limit: usize,
    truncated: bool,
    crc: crc32fast::Hasher,
}

impl TraceBuffer {
    /// An empty log that masks with `masker` and keeps at most `limit` bytes of output.
    pub fn new(masker: Masker, limit: usize) -> Self {
        TraceBuffer {
            masker,
            utf8_carry: Vec::new(),
            data: Vec::new(),
            limit,
            truncated: false,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Adds output. Bytes that may begin a secret or a UTF-8 character stay held back until
    /// the next write or [`TraceBuffer::finish`].
    pub fn write(&mut self, bytes: &[u8]) {
        let mut masked = Vec::with_capacity(bytes.len());
        self.masker.push(bytes, &mut masked);
        self.accept_masked(&masked, false);
    }

    /// Releases everything held back. Call once when the job's output has ended.
    pub fn finish(&mut self) {
        let mut masked = Vec::new();
        self.masker.finish(&mut masked);
        self.accept_masked(&masked, true);
    }

    /// Whether the output limit cut the log.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Number of bytes in the log.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether nothing has been accepted yet.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The whole log as accepted so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The next patch to send when GitLab holds `offset` bytes: at most [`MAX_PATCH_BYTES`],
    /// empty when everything was sent (and also when `offset` is beyond the log).
    pub fn patch_from(&self, offset: usize) -> &[u8] {
        let start = offset.min(self.data.len());
        let end = start.saturating_add(MAX_PATCH_BYTES).min(self.data.len());
        &self.data[start..end]
    }

    /// `crc32:xxxxxxxx` over the accepted bytes, as GitLab checks it.
    pub fn checksum(&self) -> String {
        format!("crc32:{:08x}", self.crc.clone().finalize())
    }

    fn accept_masked(&mut self, masked: &[u8], at_end: bool) {
        let mut input = std::mem::take(&mut self.utf8_carry);
        input.extend_from_slice(masked);
        let mut rest = input.as_slice();
        let mut repaired = Vec::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    repaired.extend_from_slice(valid.as_bytes());
                    break;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    repaired.extend_from_slice(valid);
                    match error.error_len() {
                        Some(bad) => {
                            repaired.extend_from_slice("\u{FFFD}".as_bytes());
                            rest = &after[bad..];
                        }
                        None if at_end => {
                            repaired.extend_from_slice("\u{FFFD}".as_bytes());
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
        self.append_limited(&repaired);
    }

    fn append_limited(&mut self, bytes: &[u8]) {
        if self.truncated || bytes.is_empty() {
            return;
        }
        let room = self.limit.saturating_sub(self.data.len());
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
        self.data.extend_from_slice(bytes);
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
        assert_eq!(buffer.as_bytes(), b"hello\n");
        assert_eq!(buffer.checksum(), "crc32:363a3020");
    }

    #[test]
    fn a_character_split_across_writes_is_kept_whole() {
        let mut buffer = TraceBuffer::new(plain(), DEFAULT_OUTPUT_LIMIT);
        let text = "grüße".as_bytes();
        buffer.write(&text[..3]);
        assert_eq!(buffer.as_bytes(), b"gr");
        buffer.write(&text[3..]);
        buffer.finish();
        assert_eq!(buffer.as_bytes(), text);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut buffer = TraceBuffer::new(plain(), DEFAULT_OUTPUT_LIMIT);
        buffer.write(b"a\xffb\xe2\x82");
        buffer.finish();
        assert_eq!(buffer.as_bytes(), "a\u{FFFD}b\u{FFFD}".as_bytes());
    }

    #[test]
    fn the_limit_cuts_at_a_character_and_appends_gitlabs_notice() {
        let mut buffer = TraceBuffer::new(plain(), 4);
        buffer.write("abcé".as_bytes());
        buffer.write(b"more output");
        buffer.finish();
        assert!(buffer.is_truncated());
        assert_eq!(
            String::from_utf8_lossy(buffer.as_bytes()),
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
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

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
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();

            let mut buffer = TraceBuffer::new(Masker::new([&secret], Vec::<String>::new()), usize::MAX);
            let mut start = 0;
            for cut in cuts {
                buffer.write(&input[start..cut]);
                start = cut;
            }
            buffer.write(&input[start..]);
            buffer.finish();

            let mut received = Vec::new();
            loop {
                let patch = buffer.patch_from(received.len());
                if patch.is_empty() {
                    break;
                }
                received.extend_from_slice(patch);
            }
            let expected = text.replace(&secret, "[MASKED]");
            prop_assert_eq!(String::from_utf8(received).unwrap(), expected);
            prop_assert_eq!(buffer.checksum(), format!("crc32:{:08x}", crc32fast::hash(buffer.as_bytes())));
        }
    }
}
