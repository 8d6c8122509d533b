//! Streaming masking of secrets in job output.
//!
//! GitLab promises that a masked CI variable never shows up in a job log. Output reaches us in
//! arbitrary pieces (pipe reads, file tail reads, chunks), so a secret can be split across two
//! or more pieces. [`Masker`] keeps back exactly the bytes that could still turn into a secret
//! and releases everything else at once, so live logs stay live.
//!
//! Two kinds of patterns are masked, with gitlab-runner's semantics:
//! - **values** (masked variables): every occurrence becomes `[MASKED]`; where several values
//!   match at one position the longest wins, so no tail of a longer secret leaks;
//! - **token prefixes** (`glpat-` and the job's `token_mask_prefixes`): the prefix stays and the
//!   token characters that follow it (`[0-9A-Za-z._=-]`, at least one) become `[MASKED]`.

/// The text that replaces a masked value or token.
pub const MASK: &[u8] = b"[MASKED]";

/// Token prefixes gitlab-runner masks by default.
pub const DEFAULT_TOKEN_PREFIXES: &[&str] = &["glpat-"];

/// Incremental masker: feed it pieces with [`Masker::push`], end with [`Masker::finish`].
///
/// A multi-pattern searcher (Aho-Corasick with a SIMD prefilter) finds where the next whole
/// value or prefix starts, so the bytes before it are released in one piece however many of
/// them could begin a pattern; only the last bytes of the input, which could be the start of
/// a pattern cut by the read boundary, are looked at one by one.
///
/// ```
/// use batchci::trace::Masker;
/// let mut masker = Masker::new(["hunter2"], Vec::<String>::new());
/// let mut out = Vec::new();
/// masker.push(b"password: hun", &mut out);
/// masker.push(b"ter2\n", &mut out);
/// masker.finish(&mut out);
/// assert_eq!(out, b"password: [MASKED]\n");
/// ```
#[derive(Debug, Clone)]
pub struct Masker {
    values: Vec<Vec<u8>>,
    /// For each first byte, the indices of values starting with it, longest first.
    values_by_first_byte: Vec<Vec<usize>>,
    prefixes: Vec<Vec<u8>>,
    /// Whether a byte can begin a value or a prefix.
    can_start: [bool; 256],
    /// Finds the leftmost whole value or prefix; `None` without patterns, or if it could not
    /// be built (then every byte that can begin a pattern is looked at).
    searcher: Option<Searcher>,
    /// The longest value or prefix: only that many last bytes of the input can be a pattern's
    /// beginning that needs more input.
    longest: usize,
    /// Bytes received but not yet released: they may be the start of a pattern.
    pending: Vec<u8>,
    /// Inside a token after a masked prefix: token characters are swallowed.
    in_token: bool,
}

/// Finds where the leftmost whole pattern starts.
#[derive(Debug, Clone)]
enum Searcher {
    /// SIMD (Teddy) over the patterns' first bytes: up to a few dozen patterns.
    Packed(aho_corasick::packed::Searcher),
    /// The automaton, for more patterns or a machine without the SIMD it needs.
    Automaton(aho_corasick::AhoCorasick),
}

impl Searcher {
    fn new(patterns: &[&[u8]]) -> Option<Searcher> {
        if patterns.is_empty() {
            return None;
        }
        // Chosen here, not by the automaton's heuristics: those prefer a scan for the
        // patterns' first bytes, and a secret's first byte is often a common letter.
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(patterns)
            .build();
        if let Some(packed) = packed {
            return Some(Searcher::Packed(packed));
        }
        aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(patterns)
            .inspect_err(|error| tracing::warn!(%error, "masking falls back to its slow path"))
            .ok()
            .map(Searcher::Automaton)
    }

    /// Where the leftmost whole pattern in `haystack` starts.
    fn leftmost(&self, haystack: &[u8]) -> Option<usize> {
        match self {
            Searcher::Packed(searcher) => searcher.find(haystack).map(|m| m.start()),
            Searcher::Automaton(searcher) => searcher.find(haystack).map(|m| m.start()),
        }
    }
}

/// What a position in the pending buffer turned out to be.
enum Step {
    /// Not the start of any pattern: release one byte.
    Literal,
    /// A masked value of this length starts here.
    Value(usize),
    /// A token prefix of this length starts here and a token character follows it.
    Token(usize),
    /// More input is needed to decide.
    Undecided,
}

impl Masker {
    /// A masker for `values` (empty strings are ignored) and `token_prefixes` (surrounding
    /// whitespace is trimmed; empty prefixes are ignored).
    pub fn new<V, P>(values: V, token_prefixes: P) -> Self
    where
        V: IntoIterator,
        V::Item: AsRef<[u8]>,
        P: IntoIterator,
        P::Item: AsRef<str>,
    {
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| v.as_ref().to_vec())
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        let mut values_by_first_byte = vec![Vec::new(); 256];
        for (index, value) in values.iter().enumerate() {
            values_by_first_byte[usize::from(value[0])].push(index);
        }
        let mut prefixes: Vec<Vec<u8>> = token_prefixes
            .into_iter()
            .map(|p| p.as_ref().trim().as_bytes().to_vec())
            .filter(|p| !p.is_empty())
            .collect();
        prefixes.sort();
        prefixes.dedup();
        let mut can_start = [false; 256];
        for first in values
            .iter()
            .map(|v| v[0])
            .chain(prefixes.iter().map(|p| p[0]))
        {
            can_start[usize::from(first)] = true;
        }
        let patterns: Vec<&[u8]> = values
            .iter()
            .chain(prefixes.iter())
            .map(Vec::as_slice)
            .collect();
        let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let searcher = Searcher::new(&patterns);
        Masker {
            values,
            values_by_first_byte,
            prefixes,
            can_start,
            searcher,
            longest,
            pending: Vec::new(),
            in_token: false,
        }
    }

    /// A masker for the job's masked values with gitlab-runner's default token prefixes plus
    /// `extra_prefixes`.
    pub fn for_job<V, P>(values: V, extra_prefixes: P) -> Self
    where
        V: IntoIterator,
        V::Item: AsRef<[u8]>,
        P: IntoIterator,
        P::Item: AsRef<str>,
    {
        let prefixes: Vec<String> = DEFAULT_TOKEN_PREFIXES
            .iter()
            .map(|p| p.to_string())
            .chain(extra_prefixes.into_iter().map(|p| p.as_ref().to_string()))
            .collect();
        Masker::new(values, prefixes)
    }

    /// Number of bytes held back because they may start a secret.
    pub fn held_back(&self) -> usize {
        self.pending.len()
    }

    /// Masks `input` and appends every byte that can already be released to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        self.push_with(input, &mut |piece| out.extend_from_slice(piece));
    }

    /// Releases everything still held back; call once at the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.finish_with(&mut |piece| out.extend_from_slice(piece));
    }

    /// [`Masker::push`] handing the released bytes to `emit`, piece by piece, in order: plain
    /// output comes straight from `input`, in as few pieces as the patterns allow.
    pub fn push_with(&mut self, input: &[u8], emit: &mut impl FnMut(&[u8])) {
        if self.pending.is_empty() {
            // The common case: straight from the input, nothing copied.
            let used = self.drain(input, false, emit);
            self.pending.extend_from_slice(&input[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(input);
            let used = self.drain(&buf, false, emit);
            buf.drain(..used);
            self.pending = buf;
        }
    }

    /// [`Masker::finish`] handing the released bytes to `emit`.
    pub fn finish_with(&mut self, emit: &mut impl FnMut(&[u8])) {
        let buf = std::mem::take(&mut self.pending);
        let used = self.drain(&buf, true, emit);
        debug_assert_eq!(used, buf.len(), "the end releases everything");
        self.in_token = false;
    }

    /// How many bytes at the start of `rest` are plain output whatever follows them: those
    /// before the leftmost whole pattern, and before the last `longest` bytes, which may be a
    /// pattern's beginning; among those last bytes, the ones before a byte that can begin a
    /// pattern.
    fn literal_run(&self, rest: &[u8]) -> usize {
        let tail = match &self.searcher {
            Some(searcher) => {
                let tail = rest.len().saturating_sub(self.longest);
                match searcher.leftmost(rest) {
                    Some(start) if start < tail => return start,
                    _ => tail,
                }
            }
            None => 0,
        };
        tail + rest[tail..]
            .iter()
            .position(|&b| self.can_start[usize::from(b)])
            .unwrap_or(rest.len() - tail)
    }

    /// Releases what can be released of `buf`; returns how many bytes it used (the rest must
    /// wait for more input).
    fn drain(&mut self, buf: &[u8], at_end: bool, emit: &mut impl FnMut(&[u8])) -> usize {
        let mut i = 0;
        while i < buf.len() {
            if self.in_token {
                if is_token_byte(buf[i]) {
                    i += 1;
                    continue;
                }
                self.in_token = false;
            }
            // Bytes that cannot begin a pattern go out in one piece.
            let run = self.literal_run(&buf[i..]);
            if run > 0 {
                emit(&buf[i..i + run]);
                i += run;
                continue;
            }
            match self.step(&buf[i..], at_end) {
                Step::Literal => {
                    emit(&buf[i..=i]);
                    i += 1;
                }
                Step::Value(len) => {
                    emit(MASK);
                    i += len;
                }
                Step::Token(len) => {
                    emit(&buf[i..i + len]);
                    emit(MASK);
                    i += len;
                    self.in_token = true;
                }
                Step::Undecided => break,
            }
        }
        i
    }

    fn step(&self, rest: &[u8], at_end: bool) -> Step {
        let mut undecided = false;
        // Longest first: the first full match is the longest, unless a longer value could
        // still complete with more input.
        for &index in &self.values_by_first_byte[usize::from(rest[0])] {
            let value = &self.values[index];
            if rest.len() >= value.len() {
                if rest.starts_with(value) {
                    return if undecided {
                        Step::Undecided
                    } else {
                        Step::Value(value.len())
                    };
                }
            } else if !at_end && value.starts_with(rest) {
                undecided = true;
            }
        }
        for prefix in &self.prefixes {
            if rest.len() > prefix.len() {
                if rest.starts_with(prefix) && is_token_byte(rest[prefix.len()]) {
                    return if undecided {
                        Step::Undecided
                    } else {
                        Step::Token(prefix.len())
                    };
                }
            } else if !at_end && prefix.starts_with(rest) {
                undecided = true;
            }
        }
        if undecided {
            Step::Undecided
        } else {
            Step::Literal
        }
    }
}

/// Characters gitlab-runner treats as part of a token after a prefix.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'=' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at every `|` (the notation of gitlab-runner's own masker tests).
    fn mask(values: &[&str], prefixes: &[&str], input: &str) -> String {
        let mut masker = Masker::new(values, prefixes);
        let mut out = Vec::new();
        for part in input.split('|') {
            masker.push(part.as_bytes(), &mut out);
        }
        masker.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_masked_whole_and_split() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&[], "no escaping at all", "no escaping at all"),
            (&["secrets"], "secrets", "[MASKED]"),
            (&["secrets"], "secret|s", "[MASKED]"),
            (&["secrets"], "s|ecrets", "[MASKED]"),
            (&["secrets"], "secretssecrets", "[MASKED][MASKED]"),
            (&["secrets"], "s|secrets", "s[MASKED]"),
            (
                &["foo", "bar"],
                "prefix|ed, su|ffi|xed |and split|:| xfo|ox y|bary ffo|o ba|rr ffooo b|barr",
                "prefixed, suffixed and split: x[MASKED]x y[MASKED]y f[MASKED] [MASKED]r f[MASKED]o b[MASKED]r",
            ),
            (
                &["mask", "prefix_mask"],
                "prefix_mask mask prefix_|mask prefix_ma|sk mas|k",
                "[MASKED] [MASKED] [MASKED] [MASKED] [MASKED]",
            ),
            (
                &["this is the end", "en foobar", "en"],
                "overlap: this is the en| foobar",
                "overlap: this is the [MASKED]",
            ),
        ];
        for (values, input, expected) in cases {
            assert_eq!(mask(values, &[], input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn a_secret_longer_than_any_read_is_masked() {
        let secret = "_".repeat(16_000);
        let input = format!("large secret: {}|{}", &secret[..8000], &secret[8000..]);
        assert_eq!(mask(&[&secret], &[], &input), "large secret: [MASKED]");
    }

    #[test]
    fn token_prefixes_keep_the_prefix_and_mask_the_token() {
        let cases: &[(&str, &str)] = &[
            ("commodo glpat-imperdiet in", "commodo glpat-[MASKED] in"),
            ("esseglpat-imperdiet=_-. end", "esseglpat-[MASKED] end"),
            ("glpat-impglpat-erdiet x", "glpat-[MASKED] x"),
            (
                "glpat|-imperdiet a gl|pat-imperdiet b",
                "glpat-[MASKED] a glpat-[MASKED] b",
            ),
            ("glpat| -imperdiet", "glpat -imperdiet"),
            ("Lorglpat- ipsu", "Lorglpat- ipsu"),
            ("at the end glpat-", "at the end glpat-"),
        ];
        for (input, expected) in cases {
            assert_eq!(mask(&[], &["glpat-"], input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn custom_prefixes_are_trimmed() {
        assert_eq!(
            mask(&[], &[" tok- "], "a tok-abc b tok|-d"),
            "a tok-[MASKED] b tok-[MASKED]"
        );
    }

    #[test]
    fn bytes_that_cannot_start_a_secret_are_released_at_once() {
        let mut masker = Masker::new(["secret"], Vec::<String>::new());
        let mut out = Vec::new();
        masker.push(b"hello se", &mut out);
        assert_eq!(out, b"hello ");
        assert_eq!(masker.held_back(), 2);
        masker.push(b"x", &mut out);
        assert_eq!(out, b"hello sex");
        assert_eq!(masker.held_back(), 0);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Whole-input masking written the plain way, to check the streaming one against.
    fn reference(values: &[String], prefixes: &[String], input: &[u8]) -> Vec<u8> {
        let mut values: Vec<&[u8]> = values
            .iter()
            .map(|v| v.as_bytes())
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            if let Some(v) = values.iter().find(|v| rest.starts_with(v)) {
                out.extend_from_slice(MASK);
                i += v.len();
                continue;
            }
            let token = prefixes.iter().map(|p| p.as_bytes()).find(|p| {
                rest.len() > p.len() && rest.starts_with(p) && is_token_byte(rest[p.len()])
            });
            if let Some(p) = token {
                out.extend_from_slice(p);
                out.extend_from_slice(MASK);
                i += p.len();
                while i < input.len() && is_token_byte(input[i]) {
                    i += 1;
                }
                continue;
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }

    fn split_feed(masker: &mut Masker, input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts {
            masker.push(&input[start..cut], &mut out);
            start = cut;
        }
        masker.push(&input[start..], &mut out);
        masker.finish(&mut out);
        out
    }

    proptest! {
        #[test]
        fn splitting_never_changes_the_result(
            values in proptest::collection::vec("[abc]{1,6}", 0..4),
            input in "[abc x-]{0,200}",
            cuts in proptest::collection::vec(0usize..1000, 0..20),
        ) {
            let prefixes = vec!["ab-".to_string()];
            let mut masker = Masker::new(&values, &prefixes);
            let streamed = split_feed(&mut masker, input.as_bytes(), &cuts);
            prop_assert_eq!(streamed, reference(&values, &prefixes, input.as_bytes()));
        }

        /// More values than the SIMD searcher takes: the automaton finds them.
        #[test]
        fn many_values_are_masked_like_few(
            count in 65usize..100,
            picks in proptest::collection::vec(0usize..100, 0..20),
            filler in "[a-z ]{0,30}",
            cuts in proptest::collection::vec(0usize..2000, 0..20),
        ) {
            let values: Vec<String> = (0..count).map(|n| format!("val{n:03}ue")).collect();
            let mut input = String::new();
            for pick in picks {
                input.push_str(&filler);
                input.push_str(&values[pick % count]);
            }
            input.push_str(&filler);
            let prefixes = vec!["glpat-".to_string()];
            let mut masker = Masker::new(&values, &prefixes);
            prop_assert!(matches!(masker.searcher, Some(Searcher::Automaton(_))));
            let streamed = split_feed(&mut masker, input.as_bytes(), &cuts);
            prop_assert_eq!(streamed, reference(&values, &prefixes, input.as_bytes()));
        }

        /// Long input where the secret's first byte is everywhere: the searcher skips to whole
        /// secrets, the end of each piece is looked at byte by byte, and the result is the same.
        #[test]
        fn long_input_is_masked_like_the_reference(
            lines in proptest::collection::vec("[a-z ]{0,80}(s3cr3t-x|s3cr|glpat-t0k|glpat- )?", 0..200),
            cuts in proptest::collection::vec(0usize..20_000, 0..40),
        ) {
            let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let values = vec!["s3cr3t-x".to_string()];
            let prefixes = vec!["glpat-".to_string()];
            let mut masker = Masker::new(&values, &prefixes);
            let streamed = split_feed(&mut masker, input.as_bytes(), &cuts);
            prop_assert_eq!(streamed, reference(&values, &prefixes, input.as_bytes()));
        }

        #[test]
        fn no_masked_value_survives(
            values in proptest::collection::vec("[abc]{2,6}", 1..4),
            input in "[abc ]{0,200}",
            cuts in proptest::collection::vec(0usize..1000, 0..20),
        ) {
            let mut masker = Masker::new(&values, Vec::<String>::new());
            let out = split_feed(&mut masker, input.as_bytes(), &cuts);
            let text = String::from_utf8(out).unwrap();
            for value in &values {
                prop_assert!(!text.contains(value.as_str()), "{value:?} leaked in {text:?}");
            }
        }

        #[test]
        fn without_patterns_bytes_pass_through_unchanged(
            input in proptest::collection::vec(any::<u8>(), 0..500),
            cuts in proptest::collection::vec(0usize..1000, 0..20),
        ) {
            let mut masker = Masker::new(Vec::<String>::new(), Vec::<String>::new());
            prop_assert_eq!(split_feed(&mut masker, &input, &cuts), input);
        }
    }
}
