//! RFC 6587 framing: splitting a syslog byte stream (TCP, TLS) into frames, one
//! message each, with a bound on frame length; and the one-frame-per-datagram
//! rule for UDP.
//!
//! The framing is detected per connection from its first frame. rsyslog and
//! syslog-ng look only at the first byte (a digit means octet counting), but a
//! plain line may start with digits and a space too (`12 files removed`), so
//! octet counting is taken only when the first `LEN SP` is followed by a `<`,
//! the start of the `<PRI>` every syslog sender puts first. Anything else on
//! the first frame makes the connection non-transparent, keeping the bytes
//! read so far as the start of its first line (this is detection, not a
//! framing error). A first frame of length 0 is therefore read as a line.
//!
//! A non-transparent connection ends its frames with LF or with NUL, not both:
//! the first of the two it sends becomes its delimiter, and from then on the
//! other is an ordinary byte of the message (a NUL inside an LF-framed message
//! no longer splits it in two).
//!
//! ```text
//!  octet counting (RFC 6587 §3.4.1)         non-transparent (§3.4.2)
//!
//!   "57" SP "<13>1 2024-…"   "12" SP …        "<13>Jan  1 …" LF "<13>…" NUL …
//!    │   │   └ exactly 57 bytes, any bytes      └ up to LF or NUL; a CR just
//!    │   └ one space                              before the LF is dropped
//!    └ decimal length, no sign
//! ```
//!
//! A frame longer than the maximum is delivered cut to the maximum and flagged
//! truncated, and the rest of it is skipped so the next frame starts in the
//! right place: for octet counting exactly the remaining declared bytes, for
//! non-transparent framing everything up to the next LF or NUL. A length prefix
//! that is not a number (a non-digit before the space, no space, more than
//! 1 GiB) cannot be resynchronised on, so the connection falls back to
//! non-transparent framing from that byte on; the bytes of the bad prefix become
//! the start of the next frame rather than being lost, and the error is counted
//! ([`FrameDecoder::framing_errors`]).
//!
//! Empty frames, case by case:
//!
//! - `0 ` in an octet-counted stream: the sender said explicitly that it sent
//!   an empty message, so it is delivered as an empty frame and becomes an
//!   event tagged `_dnsenrich_empty`.
//! - an empty line (two delimiters in a row, a bare CR LF, a lone CR at the end
//!   of the stream): senders emit these as padding or keep-alives, and an event
//!   for each would only fill the index, so they are skipped and counted
//!   ([`FrameDecoder::empty_lines`], the metric
//!   `dnsenrich_frames_skipped_total{reason="empty_line"}`). A line of only a
//!   CR is such a line: the CR before the LF is dropped like any other.
//! - LF, CR and NUL bytes before the first frame, or between octet-counted
//!   frames (some senders end those with LF anyway), are separators, not
//!   frames; they are neither delivered nor counted.

/// The default maximum frame length, for every input.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// A declared octet count above this is treated as garbage, not as a length.
pub const MAX_OCTET_COUNT: usize = 1 << 30;

/// Enough digits for [`MAX_OCTET_COUNT`] and a few leading zeros.
const MAX_LENGTH_DIGITS: usize = 12;

/// How a connection frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No message byte seen yet.
    Undetected,
    /// `LEN SP MSG`.
    OctetCounting,
    /// Messages ended by LF or NUL.
    NonTransparent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first byte of a connection.
    Detect,
    /// Octet counting: reading a length prefix (its digits so far are in
    /// `partial`, so they can become a frame if the prefix turns out bad).
    Length { len: usize },
    /// Octet counting: `want` more bytes of the frame to deliver, then `skip`
    /// bytes over the maximum to discard.
    Body { want: usize, skip: usize },
    /// Octet counting: skipping the rest of a frame over the maximum.
    Discarding(usize),
    /// Octet counting not yet confirmed: the first `LEN SP` has been read
    /// (it is in `partial`), waiting for the byte that says whether this is a
    /// frame (`<`) or a plain line that starts with digits.
    Confirm { len: usize },
    /// Non-transparent: collecting a frame up to LF or NUL.
    Line,
    /// Non-transparent: skipping the rest of a frame over the maximum.
    DiscardingToEol,
}

/// Splits one connection's bytes into frames. Feed it chunks as they are read;
/// a frame that lies within one chunk is handed out as a slice of it, only a
/// frame split across reads is copied (into a buffer reused for the life of
/// the connection).
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    state: State,
    framing: Framing,
    /// The part of a frame (or length prefix) seen so far; at most `max + 1`
    /// bytes for LF framing (room for a CR that may turn out to precede an LF).
    partial: Vec<u8>,
    framing_errors: u64,
    /// LF framing: the delimiter this connection uses, once it has sent one.
    delim: Option<u8>,
    empty_lines: u64,
}

impl FrameDecoder {
    /// A decoder for a new connection, delivering frames of at most `max_frame`
    /// bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max: max_frame.max(1),
            state: State::Detect,
            framing: Framing::Undetected,
            partial: Vec::new(),
            framing_errors: 0,
            delim: None,
            empty_lines: 0,
        }
    }

    /// The framing this connection uses (after any fallback).
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// How many times an invalid length prefix made this connection fall back
    /// to LF framing (at most once per connection).
    pub fn framing_errors(&self) -> u64 {
        self.framing_errors
    }

    /// How many empty lines this connection sent; they are skipped.
    pub fn empty_lines(&self) -> u64 {
        self.empty_lines
    }

    /// Consumes `chunk`, calling `out(frame, truncated)` for every frame it
    /// completes.
    pub fn decode(&mut self, mut chunk: &[u8], out: &mut impl FnMut(&[u8], bool)) {
        while !chunk.is_empty() {
            chunk = match self.state {
                State::Detect => self.detect(chunk),
                State::Length { len } => self.length(len, chunk),
                State::Confirm { len } => self.confirm(len, chunk),
                State::Body { want, skip } => self.body(want, skip, chunk, out),
                State::Discarding(n) => {
                    let take = n.min(chunk.len());
                    self.state = if take == n {
                        State::Length { len: 0 }
                    } else {
                        State::Discarding(n - take)
                    };
                    &chunk[take..]
                }
                State::Line => self.line(chunk, out),
                State::DiscardingToEol => match self.find_terminator(chunk) {
                    Some(p) => {
                        self.state = State::Line;
                        &chunk[p + 1..]
                    }
                    None => &[],
                },
            };
        }
    }

    /// The stream ended: delivers what is left. A partial LF frame is a frame
    /// (its sender just did not end it); a partial octet-counted frame, or a
    /// dangling length prefix, is delivered flagged truncated.
    pub fn finish(&mut self, out: &mut impl FnMut(&[u8], bool)) {
        match self.state {
            State::Line | State::Confirm { .. } => {
                if self.undecided_nul() {
                    // A NUL at the very end ends the last frame.
                    self.partial.pop();
                }
                match finish_line(&self.partial, false, self.max) {
                    Some((frame, cut)) => out(frame, cut),
                    None if !self.partial.is_empty() => self.empty_lines += 1,
                    None => {}
                }
            }
            State::Body { want: 0, .. } => out(&[], false),
            State::Body { .. } | State::Length { .. } if !self.partial.is_empty() => {
                let n = self.partial.len().min(self.max);
                out(&self.partial[..n], true);
            }
            _ => {}
        }
        self.partial.clear();
        self.state = State::Detect;
    }

    fn detect<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        let blank = chunk.iter().take_while(|&&b| is_separator(b)).count();
        let rest = &chunk[blank..];
        match rest.first() {
            None => {}
            Some(b) if b.is_ascii_digit() => {
                // Octet counting perhaps: `framing` stays undetected until
                // the first frame confirms it.
                self.state = State::Length { len: 0 };
            }
            Some(_) => {
                self.framing = Framing::NonTransparent;
                self.state = State::Line;
            }
        }
        rest
    }

    fn length<'a>(&mut self, mut len: usize, chunk: &'a [u8]) -> &'a [u8] {
        for (i, &b) in chunk.iter().enumerate() {
            if b.is_ascii_digit() {
                let next = len
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(usize::from(b - b'0')))
                    .filter(|&n| n <= MAX_OCTET_COUNT);
                match next {
                    Some(n) if self.partial.len() < MAX_LENGTH_DIGITS => {
                        self.partial.push(b);
                        len = n;
                    }
                    _ => return self.fall_back(&chunk[i..]),
                }
            } else if self.partial.is_empty() && is_separator(b) {
                // Some senders end octet-counted frames with LF anyway.
            } else if b == b' ' && !self.partial.is_empty() && self.framing == Framing::Undetected {
                self.partial.push(b' ');
                self.state = State::Confirm { len };
                return &chunk[i + 1..];
            } else if b == b' ' && !self.partial.is_empty() {
                self.partial.clear();
                let keep = len.min(self.max);
                self.state = State::Body {
                    want: keep,
                    skip: len - keep,
                };
                return &chunk[i + 1..];
            } else {
                return self.fall_back(&chunk[i..]);
            }
        }
        self.state = State::Length { len };
        &[]
    }

    /// The length prefix is garbage: from here on this is an LF-framed stream,
    /// and the prefix digits seen so far (still in `partial`) start its next
    /// frame. On the first frame this is detection, not an error: the
    /// connection simply sends lines that start with digits.
    fn fall_back<'a>(&mut self, rest: &'a [u8]) -> &'a [u8] {
        if self.framing == Framing::OctetCounting {
            self.framing_errors += 1;
        }
        self.framing = Framing::NonTransparent;
        self.state = State::Line;
        rest
    }

    /// The first `LEN SP` was read: a `<` next confirms octet counting, any
    /// other byte makes this a plain line starting with `LEN SP`.
    fn confirm<'a>(&mut self, len: usize, chunk: &'a [u8]) -> &'a [u8] {
        if chunk.first() != Some(&b'<') {
            return self.fall_back(chunk);
        }
        self.framing = Framing::OctetCounting;
        self.partial.clear();
        let keep = len.min(self.max);
        self.state = State::Body {
            want: keep,
            skip: len - keep,
        };
        chunk
    }

    fn body<'a>(
        &mut self,
        want: usize,
        skip: usize,
        chunk: &'a [u8],
        out: &mut impl FnMut(&[u8], bool),
    ) -> &'a [u8] {
        let take = want.min(chunk.len());
        let (piece, rest) = chunk.split_at(take);
        if want == 0 {
            // `0 `: an empty message, sent as such.
            out(&[], false);
            self.state = State::Length { len: 0 };
            return chunk;
        }
        if take < want {
            self.partial.extend_from_slice(piece);
            self.state = State::Body {
                want: want - take,
                skip,
            };
            return rest;
        }
        if self.partial.is_empty() {
            out(piece, skip > 0);
        } else {
            self.partial.extend_from_slice(piece);
            out(&self.partial, skip > 0);
            self.partial.clear();
        }
        self.state = if skip > 0 {
            State::Discarding(skip)
        } else {
            State::Length { len: 0 }
        };
        rest
    }

    fn line<'a>(&mut self, chunk: &'a [u8], out: &mut impl FnMut(&[u8], bool)) -> &'a [u8] {
        if self.undecided_nul() {
            if chunk.first() == Some(&b'<') {
                self.delim = Some(0);
                self.partial.pop();
                match finish_line(&self.partial, false, self.max) {
                    Some((frame, cut)) => out(frame, cut),
                    None => self.empty_lines += 1,
                }
                self.partial.clear();
                return chunk;
            }
            self.delim = Some(b'\n');
        }
        let room = (self.max + 1).saturating_sub(self.partial.len());
        match self.find_terminator(chunk) {
            Some(p) => {
                let piece = &chunk[..p];
                let delivered = if self.partial.is_empty() {
                    finish_line(piece, false, self.max).map(|(frame, cut)| out(frame, cut))
                } else {
                    let overflow = piece.len() > room;
                    self.partial
                        .extend_from_slice(&piece[..piece.len().min(room)]);
                    let d = finish_line(&self.partial, overflow, self.max)
                        .map(|(frame, cut)| out(frame, cut));
                    self.partial.clear();
                    d
                };
                if delivered.is_none() {
                    self.empty_lines += 1;
                }
                &chunk[p + 1..]
            }
            None if chunk.len() > room => {
                // Over the maximum even if the next byte is the LF: deliver the
                // cut frame now and skip the rest.
                self.partial.extend_from_slice(&chunk[..room]);
                out(&self.partial[..self.max], true);
                self.partial.clear();
                self.state = State::DiscardingToEol;
                &[]
            }
            None => {
                self.partial.extend_from_slice(chunk);
                &[]
            }
        }
    }
}

impl FrameDecoder {
    /// Where the next non-transparent frame ends: at this connection's
    /// delimiter. Before it is known, an LF makes it LF; a NUL makes it NUL
    /// only when a `<` (the next message's `<PRI>`) follows, otherwise the
    /// NUL is part of an LF-framed message. A NUL at the end of `bytes` is
    /// left undecided: it goes into `partial` and [`Self::line`] decides on
    /// the next byte.
    fn find_terminator(&mut self, bytes: &[u8]) -> Option<usize> {
        if let Some(d) = self.delim {
            return memchr::memchr(d, bytes);
        }
        let p = memchr::memchr2(b'\n', 0, bytes)?;
        if bytes[p] == b'\n' {
            self.delim = Some(b'\n');
            return Some(p);
        }
        match bytes.get(p + 1) {
            None => None,
            Some(b'<') => {
                self.delim = Some(0);
                Some(p)
            }
            Some(_) => {
                self.delim = Some(b'\n');
                memchr::memchr(b'\n', bytes)
            }
        }
    }

    /// A NUL that ended the previous read, with the delimiter still unknown.
    fn undecided_nul(&self) -> bool {
        self.delim.is_none() && self.partial.last() == Some(&0)
    }
}

/// Bytes that may sit between octet-counted frames, or before the first frame.
fn is_separator(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | 0)
}

/// An ended line as it is delivered: without one trailing CR, cut to `max`;
/// `None` when nothing is left. `overflow` says bytes were already dropped
/// from it.
pub(crate) fn finish_line(line: &[u8], overflow: bool, max: usize) -> Option<(&[u8], bool)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max {
        Some((&line[..max], true))
    } else if line.is_empty() && !overflow {
        None
    } else {
        Some((line, overflow))
    }
}

/// A datagram as a frame: without one trailing LF (with a CR before it) or
/// NUL, cut to `max`. Returns the frame and whether it was cut.
pub fn datagram_frame(datagram: &[u8], max: usize) -> (&[u8], bool) {
    let d = match datagram {
        [rest @ .., b'\r', b'\n'] | [rest @ .., b'\n' | 0] => rest,
        _ => datagram,
    };
    if d.len() > max {
        (&d[..max], true)
    } else {
        (d, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Frames = Vec<(Vec<u8>, bool)>;

    fn run(max: usize, chunks: &[&[u8]]) -> (Frames, FrameDecoder) {
        let mut d = FrameDecoder::new(max);
        let mut got = Vec::new();
        let mut out = |f: &[u8], t: bool| got.push((f.to_vec(), t));
        for c in chunks {
            d.decode(c, &mut out);
        }
        d.finish(&mut out);
        (got, d)
    }

    fn frames(max: usize, input: &[u8]) -> Frames {
        run(max, &[input]).0
    }

    fn f(s: &str) -> (Vec<u8>, bool) {
        (s.as_bytes().to_vec(), false)
    }

    fn cut(s: &str) -> (Vec<u8>, bool) {
        (s.as_bytes().to_vec(), true)
    }

    /// Every way of splitting `input` in two reads, and one byte per read,
    /// gives the same frames as one read.
    fn assert_split_invariant(max: usize, input: &[u8]) {
        let whole = frames(max, input);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run(max, &[a, b]).0, whole, "split at {i} of {input:?}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(max, &bytes).0, whole, "byte by byte: {input:?}");
    }

    #[test]
    fn lf_frames_detected_from_first_byte() {
        let (got, d) = run(64, &[b"<13>one\n<13>two\n"]);
        assert_eq!(got, vec![f("<13>one"), f("<13>two")]);
        assert_eq!(d.framing(), Framing::NonTransparent);
    }

    #[test]
    fn octet_counted_frames_detected_from_first_byte() {
        let (got, d) = run(64, &[b"7 <13>one9 <13>two\nx"]);
        assert_eq!(got, vec![f("<13>one"), f("<13>two\nx")]);
        assert_eq!(d.framing(), Framing::OctetCounting);
        assert_eq!(d.framing_errors(), 0);
    }

    #[test]
    fn octet_counted_frames_may_contain_lf_and_nul() {
        assert_eq!(frames(64, b"8 <1>a\nb\0c"), vec![f("<1>a\nb\0c")]);
    }

    #[test]
    fn nul_ends_a_frame() {
        assert_eq!(
            frames(64, b"<1>one\0<1>two\0"),
            vec![f("<1>one"), f("<1>two")]
        );
        let (got, _) = run(64, &[b"<1>one\0", b"<1>two\0", b"x\n"]);
        assert_eq!(got, vec![f("<1>one"), f("<1>two"), f("x\n")]);
    }

    #[test]
    fn crlf_loses_its_cr_but_a_lone_cr_stays() {
        assert_eq!(
            frames(64, b"one\r\ntw\ro\r\r\n"),
            vec![f("one"), f("tw\ro\r")]
        );
    }

    #[test]
    fn empty_lines_are_skipped_and_counted() {
        // Leading separators are not lines; the two empty lines after `a`
        // (one of them only a CR) are.
        let (got, d) = run(64, &[b"\n\r\n\0a\n\n\r\n"]);
        assert_eq!(got, vec![f("a")]);
        assert_eq!(d.empty_lines(), 2);
        let (got, d) = run(64, &[b"<1>a\0<1>b\0\0\r\0<1>c"]);
        assert_eq!(got, vec![f("<1>a"), f("<1>b"), f("<1>c")]);
        assert_eq!(d.empty_lines(), 2);
    }

    #[test]
    fn an_empty_octet_counted_frame_is_an_empty_message() {
        let (got, d) = run(64, &[b"4 <1>a0 0 4 <1>b0 "]);
        assert_eq!(got, vec![f("<1>a"), f(""), f(""), f("<1>b"), f("")]);
        assert_eq!(d.empty_lines(), 0);
        assert_eq!(d.framing_errors(), 0);
    }

    #[test]
    fn nul_inside_an_lf_framed_message_is_part_of_it() {
        let (got, d) = run(64, &[b"<13>a\0b\n<13>c\n"]);
        assert_eq!(got, vec![f("<13>a\0b"), f("<13>c")]);
        assert_eq!(d.framing(), Framing::NonTransparent);
        // And LF inside a NUL-framed one.
        assert_eq!(
            frames(64, b"<1>a\0<1>b\nc\0"),
            vec![f("<1>a"), f("<1>b\nc")]
        );
    }

    #[test]
    fn a_first_line_starting_with_digits_and_a_space_is_a_line() {
        let (got, d) = run(64, &[b"12 files removed\n3 left\n"]);
        assert_eq!(got, vec![f("12 files removed"), f("3 left")]);
        assert_eq!(d.framing(), Framing::NonTransparent);
        assert_eq!(d.framing_errors(), 0);
        let (got, _) = run(64, &[b"2024 01 02 dns query\nnext\n"]);
        assert_eq!(got, vec![f("2024 01 02 dns query"), f("next")]);
        let (got, _) = run(64, &[b"0 \nx\n"]);
        assert_eq!(got, vec![f("0 "), f("x")]);
        // Cut off after the space: still a line.
        assert_eq!(frames(64, b"12 "), vec![f("12 ")]);
    }

    #[test]
    fn separators_between_octet_counted_frames_are_skipped() {
        let (got, d) = run(64, &[b"4 <1>a\n1 b\r\n\x001 c"]);
        assert_eq!(got, vec![f("<1>a"), f("b"), f("c")]);
        assert_eq!(d.framing_errors(), 0);
    }

    #[test]
    fn lf_frame_of_exactly_max_is_whole() {
        assert_eq!(frames(4, b"abcd\nabcd\r\n"), vec![f("abcd"), f("abcd")]);
    }

    #[test]
    fn octet_frame_of_exactly_max_is_whole() {
        assert_eq!(frames(4, b"4 <bcd4 efgh"), vec![f("<bcd"), f("efgh")]);
    }

    #[test]
    fn lf_frame_over_max_is_cut_and_the_next_is_intact() {
        assert_eq!(
            frames(4, b"abcdefghij\nnext\nabcde\r\nok\n"),
            vec![cut("abcd"), f("next"), cut("abcd"), f("ok")]
        );
    }

    #[test]
    fn octet_frame_over_max_skips_exactly_the_declared_rest() {
        // The skipped bytes hold an LF and a digit: neither may resync early.
        assert_eq!(
            frames(4, b"10 <bcdef\n9 x3 xyz"),
            vec![cut("<bcd"), f("xyz")]
        );
    }

    #[test]
    fn lf_frame_over_max_across_reads() {
        let (got, _) = run(4, &[b"ab", b"cde", b"fgh", b"\nnext\n"]);
        assert_eq!(got, vec![cut("abcd"), f("next")]);
    }

    #[test]
    fn non_digit_in_length_falls_back_to_lf_keeping_the_bytes() {
        let (got, d) = run(64, &[b"3 <bc12x4 rest\nafter\n"]);
        assert_eq!(got, vec![f("<bc"), f("12x4 rest"), f("after")]);
        assert_eq!(d.framing(), Framing::NonTransparent);
        assert_eq!(d.framing_errors(), 1);
    }

    #[test]
    fn missing_space_falls_back_to_lf() {
        let (got, d) = run(64, &[b"1 <12\nnext\n"]);
        assert_eq!(got, vec![f("<"), f("12"), f("next")]);
        assert_eq!(d.framing_errors(), 1);
        // On the first frame it is just a line.
        let (got, d) = run(64, &[b"12\nnext\n"]);
        assert_eq!(got, vec![f("12"), f("next")]);
        assert_eq!(d.framing_errors(), 0);
    }

    #[test]
    fn absurd_length_falls_back_to_lf() {
        let (got, d) = run(64, &[b"1 <99999999999 x\n"]);
        assert_eq!(got, vec![f("<"), f("99999999999 x")]);
        assert_eq!(d.framing_errors(), 1);
        let (got, d) = run(64, &[b"1 <0000000000000001 x\n"]);
        assert_eq!(got, vec![f("<"), f("0000000000000001 x")]);
        assert_eq!(d.framing_errors(), 1);
    }

    #[test]
    fn a_frame_without_length_after_octet_frames_falls_back() {
        let (got, d) = run(64, &[b"4 <1>a<13>plain\n"]);
        assert_eq!(got, vec![f("<1>a"), f("<13>plain")]);
        assert_eq!(d.framing_errors(), 1);
    }

    #[test]
    fn fallback_prefix_longer_than_max_is_cut() {
        let (got, _) = run(4, &[b"123456789x\nok\n"]);
        assert_eq!(got, vec![cut("1234"), f("ok")]);
    }

    #[test]
    fn garbage_comes_out_as_frames() {
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        let (got, _) = run(1024, &[&bytes]);
        let joined: Vec<u8> = got.iter().flat_map(|(b, _)| b.clone()).collect();
        // Everything but the LF comes out: the stream is LF-framed, so its
        // NUL is an ordinary byte.
        assert_eq!(joined.len(), 255);
        assert!(got.iter().all(|(_, t)| !t));
    }

    #[test]
    fn partial_lf_frame_is_delivered_at_eof() {
        assert_eq!(frames(64, b"a\nlast"), vec![f("a"), f("last")]);
        assert_eq!(frames(64, b"a\nlast\r"), vec![f("a"), f("last")]);
    }

    #[test]
    fn partial_octet_frame_is_delivered_truncated_at_eof() {
        assert_eq!(frames(64, b"1 <10 abc"), vec![f("<"), cut("abc")]);
        assert_eq!(frames(64, b"1 <10 "), vec![f("<")]);
        assert_eq!(frames(64, b"1 <12"), vec![f("<"), cut("12")]);
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert_eq!(frames(64, b""), vec![]);
        assert_eq!(frames(64, b"\n\n\0"), vec![]);
    }

    #[test]
    fn every_split_gives_the_same_frames() {
        let cases: &[&[u8]] = &[
            b"<13>one\r\n<13>two\0three\n\nfour",
            b"7 <13>one3 abc\n0 5 de\nfg",
            b"10 <bcdefghij2 ok",
            b"abcdefghij\nok\r\nabcde\r\nabcd\r\n",
            b"3 <bc12x4 rest\nafter\n",
            b"99999999999 x\nz",
            b"1 <12",
            b"12 files\0x\n\n\r\ny",
            b"1 <0 0 ",
        ];
        for c in cases {
            assert_split_invariant(4, c);
            assert_split_invariant(64, c);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_any_splits_same_frames_never_over_max(
            input in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"0123 \n\r\0ab".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..200,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..6),
            max in 1usize..12,
        ) {
            let whole = frames(max, &input);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&input[last..p]);
                last = p;
            }
            chunks.push(&input[last..]);
            proptest::prop_assert_eq!(run(max, &chunks).0, whole.clone());
            for (f, _) in &whole {
                proptest::prop_assert!(f.len() <= max);
            }
        }
    }

    #[test]
    fn datagram_loses_one_terminator_and_is_cut() {
        assert_eq!(datagram_frame(b"abc\n", 8), (&b"abc"[..], false));
        assert_eq!(datagram_frame(b"abc\r\n", 8), (&b"abc"[..], false));
        assert_eq!(datagram_frame(b"abc\0", 8), (&b"abc"[..], false));
        assert_eq!(datagram_frame(b"abc\n\n", 8), (&b"abc\n"[..], false));
        assert_eq!(datagram_frame(b"abcd\n", 4), (&b"abcd"[..], false));
        assert_eq!(datagram_frame(b"abcde", 4), (&b"abcd"[..], true));
        assert_eq!(datagram_frame(b"", 4), (&b""[..], false));
    }
}
