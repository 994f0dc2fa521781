//! Reading newline-terminated lines from a byte stream with a bound on length:
//! a line longer than the limit is returned cut to the limit and flagged, and
//! the rest of it is skipped, so one huge line can neither exhaust memory nor
//! knock the reader out of step with the lines that follow.

use std::io::{self, BufRead};

/// One line as read: its bytes (without the `\n`) and whether it was cut.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub bytes: &'a [u8],
    pub truncated: bool,
}

/// An iterator-like reader of bounded lines.
pub struct BoundedLines<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> BoundedLines<R> {
    /// Reads lines of at most `max` bytes from `inner`.
    pub fn new(inner: R, max: usize) -> Self {
        BoundedLines {
            inner,
            max: max.max(1),
            buf: Vec::with_capacity(1024),
        }
    }

    /// The next line, or `None` at the end of the stream. A last line without
    /// a trailing newline is still returned.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut truncated = false;
        let mut seen_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !seen_any {
                    return Ok(None);
                }
                break;
            }
            seen_any = true;
            let (take, done) = match memchr(chunk) {
                Some(i) => (i, Some(i + 1)),
                None => (chunk.len(), None),
            };
            let room = self.max.saturating_sub(self.buf.len());
            if take > room {
                truncated = true;
            }
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            match done {
                Some(n) => {
                    self.inner.consume(n);
                    break;
                }
                None => {
                    let n = chunk.len();
                    self.inner.consume(n);
                }
            }
        }
        Ok(Some(Line {
            bytes: &self.buf,
            truncated,
        }))
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max: usize) -> Vec<(Vec<u8>, bool)> {
        let mut r = BoundedLines::new(io::BufReader::with_capacity(4, input), max);
        let mut v = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            v.push((l.bytes.to_vec(), l.truncated));
        }
        v
    }

    #[test]
    fn splits_lines_across_small_reads() {
        let v = all(b"abc\ndefghij\n\nlast", 100);
        assert_eq!(
            v,
            vec![
                (b"abc".to_vec(), false),
                (b"defghij".to_vec(), false),
                (b"".to_vec(), false),
                (b"last".to_vec(), false)
            ]
        );
    }

    #[test]
    fn long_line_is_cut_and_next_line_is_intact() {
        let v = all(b"0123456789abcdef\nok\n", 5);
        assert_eq!(v, vec![(b"01234".to_vec(), true), (b"ok".to_vec(), false)]);
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(all(b"", 10).is_empty());
    }
}
