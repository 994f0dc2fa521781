//! The bytes of a segment file: its header, the framing of each record, and
//! the scan that finds every intact record in a segment whatever happened to
//! the bytes around it.
//!
//! ```text
//!  segment file  = HEADER RECORD*
//!
//!  HEADER (16 bytes)
//!  +----------------+---------+---------+-----------------------+
//!  | magic (8)      | ver u16 | 0 u16   | crc32c(bytes 0..12)   |
//!  | "DNSEBUF\0"    |   = 1   |         | u32                   |
//!  +----------------+---------+---------+-----------------------+
//!
//!  RECORD (12 + len bytes), one encoded batch
//!  +-------------+-------------+----------------------+-------------------+
//!  | magic u32   | len u32     | crc u32              | payload (len)     |
//!  | "DNSR"      |             | crc32c(len ‖ payload)|                   |
//!  +-------------+-------------+----------------------+-------------------+
//!
//!  PAYLOAD
//!  +------------------+-----------+----------------------+----------------+
//!  | appended_ms u64  | docs u32  | end u32 × docs       | document bytes |
//!  | (Unix time, ms)  |           | (exclusive, into the | (no newlines   |
//!  |                  |           |  document bytes)     |  added)        |
//!  +------------------+-----------+----------------------+----------------+
//! ```
//!
//! Every integer is little-endian. The record magic lets [`scan`] find the
//! next record after a damaged one: it tries each later occurrence of the
//! magic and takes the first that frames a record whose CRC and payload check.
//! A false match needs a 32-bit CRC to agree by chance.

use crate::pipeline::EncodedBatch;

/// The first bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"DNSEBUF\0";
/// The format version written in the header.
pub const VERSION: u16 = 1;
/// Length of the segment header.
pub const HEADER_LEN: u64 = 16;
/// The first bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"DNSR";
/// Bytes before a record's payload: magic, length and CRC.
pub const FRAME_OVERHEAD: u64 = 12;

/// The segment header.
pub fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Whether `bytes` begins with an intact header of a version we read.
pub fn header_is_valid(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN as usize && bytes[..HEADER_LEN as usize] == header()
}

/// A batch could not be framed.
#[derive(Debug, thiserror::Error)]
#[error("batch of {bytes} bytes is too large for one buffer record (at most {max})")]
pub struct TooLarge {
    pub bytes: usize,
    pub max: usize,
}

/// The largest payload a record may carry.
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// Appends the framed record for `batch` to `out`.
pub fn encode_record(
    batch: &EncodedBatch,
    appended_ms: u64,
    out: &mut Vec<u8>,
) -> Result<(), TooLarge> {
    let payload_len = 12 + 4 * batch.ends.len() + batch.docs.len();
    if payload_len > MAX_PAYLOAD || batch.ends.len() > u32::MAX as usize {
        return Err(TooLarge {
            bytes: payload_len,
            max: MAX_PAYLOAD,
        });
    }
    let start = out.len();
    out.reserve(FRAME_OVERHEAD as usize + payload_len);
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.extend_from_slice(&(batch.ends.len() as u32).to_le_bytes());
    for &end in &batch.ends {
        // end <= docs.len() <= MAX_PAYLOAD, checked above.
        out.extend_from_slice(&(end as u32).to_le_bytes());
    }
    out.extend_from_slice(&batch.docs);
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&out[start + 4..start + 8]),
        &out[start + 12..],
    );
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What a record's payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// The whole frame's length on disk.
    pub frame_len: u64,
    pub docs: u32,
    pub appended_ms: u64,
}

/// Checks the record framed at the start of `bytes`; `None` if there is none
/// intact there (short, bad magic, bad CRC, or a payload that does not parse).
pub fn check_record(bytes: &[u8]) -> Option<RecordMeta> {
    if bytes.len() < FRAME_OVERHEAD as usize || bytes[..4] != RECORD_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(bytes[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
    let payload = bytes.get(12..12 + len)?;
    if crc32c::crc32c_append(crc32c::crc32c(&bytes[4..8]), payload) != crc {
        return None;
    }
    let (appended_ms, ends, docs) = split_payload(payload)?;
    Some(RecordMeta {
        frame_len: FRAME_OVERHEAD + len as u64,
        docs: (ends.len() / 4) as u32,
        appended_ms,
    })
    .filter(|_| ends_are_valid(ends, docs.len()))
}

/// The parts of a payload: append time, the raw end table, document bytes.
fn split_payload(payload: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let appended_ms = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let n = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?) as usize;
    let table_end = 12usize.checked_add(n.checked_mul(4)?)?;
    let ends = payload.get(12..table_end)?;
    Some((appended_ms, ends, &payload[table_end..]))
}

fn ends_are_valid(ends: &[u8], docs_len: usize) -> bool {
    let mut prev = 0usize;
    for c in ends.chunks_exact(4) {
        let end = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize;
        if end < prev || end > docs_len {
            return false;
        }
        prev = end;
    }
    prev == docs_len
}

/// Decodes a record already accepted by [`check_record`] back into a batch
/// (with no acks); `None` if it does not check.
pub fn decode_record(bytes: &[u8]) -> Option<(EncodedBatch, RecordMeta)> {
    let meta = check_record(bytes)?;
    let (_, ends, docs) = split_payload(&bytes[FRAME_OVERHEAD as usize..meta.frame_len as usize])?;
    let batch = EncodedBatch {
        docs: docs.to_vec(),
        ends: ends
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect(),
        acks: Vec::new(),
    };
    Some((batch, meta))
}

/// An intact record found by [`scan`], at `offset` in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: u64,
    pub meta: RecordMeta,
}

/// What a scan of one segment's bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The segment starts with a valid header.
    pub header_ok: bool,
    /// Every intact record, in file order.
    pub records: Vec<Found>,
    /// Byte ranges between intact records that hold no intact record.
    pub corrupt: Vec<(u64, u64)>,
    /// Where the last intact record ends (or the header, or 0): bytes after
    /// it are a torn tail, `tail..len`.
    pub valid_end: u64,
}

/// Finds every intact record in `bytes`, a whole segment file. A damaged
/// header is not fatal: records are looked for after it all the same.
pub fn scan(bytes: &[u8]) -> Scan {
    let header_ok = header_is_valid(bytes);
    let start = if header_ok { HEADER_LEN as usize } else { 0 };
    let mut s = Scan {
        header_ok,
        valid_end: start.min(bytes.len()) as u64,
        ..Scan::default()
    };
    let mut pos = start;
    while pos < bytes.len() {
        if let Some(meta) = check_record(&bytes[pos..]) {
            s.records.push(Found {
                offset: pos as u64,
                meta,
            });
            pos += meta.frame_len as usize;
            s.valid_end = pos as u64;
            continue;
        }
        match next_record(bytes, pos + 1) {
            Some(next) => {
                s.corrupt.push((pos as u64, next as u64));
                pos = next;
            }
            None => break,
        }
    }
    s
}

/// The offset of the first intact record at or after `from`.
fn next_record(bytes: &[u8], from: usize) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(&RECORD_MAGIC);
    let mut at = from;
    while at < bytes.len() {
        let hit = at + finder.find(&bytes[at..])?;
        if check_record(&bytes[hit..]).is_some() {
            return Some(hit);
        }
        at = hit + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(docs: &[&str]) -> EncodedBatch {
        let mut b = EncodedBatch::default();
        for d in docs {
            b.docs.extend_from_slice(d.as_bytes());
            b.ends.push(b.docs.len());
        }
        b
    }

    fn segment(batches: &[&[&str]]) -> Vec<u8> {
        let mut out = header().to_vec();
        for (i, b) in batches.iter().enumerate() {
            encode_record(&batch(b), 1000 + i as u64, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn a_record_round_trips_with_its_documents_and_time() {
        let mut out = Vec::new();
        encode_record(&batch(&["{\"a\":1}", "", "{}"]), 42, &mut out).unwrap();
        let (b, meta) = decode_record(&out).unwrap();
        assert_eq!(meta.frame_len, out.len() as u64);
        assert_eq!((meta.docs, meta.appended_ms), (3, 42));
        assert_eq!(b.doc(0), b"{\"a\":1}");
        assert_eq!(b.doc(1), b"");
        assert_eq!(b.doc(2), b"{}");
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let mut out = Vec::new();
        encode_record(&batch(&["{\"q\":\"example.com\"}"]), 7, &mut out).unwrap();
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(check_record(&bad).is_none(), "flip at {i} not caught");
        }
    }

    #[test]
    fn scan_finds_all_records_of_an_intact_segment() {
        let seg = segment(&[&["a"], &["b", "c"], &["d"]]);
        let s = scan(&seg);
        assert!(s.header_ok);
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.records[0].offset, HEADER_LEN);
        assert!(s.corrupt.is_empty());
        assert_eq!(s.valid_end, seg.len() as u64);
    }

    #[test]
    fn scan_skips_a_damaged_record_and_resumes_at_the_next() {
        let seg = segment(&[&["aaaa"], &["bbbb"], &["cccc"]]);
        let second = scan(&seg).records[1];
        let mut bad = seg.clone();
        bad[(second.offset + 5) as usize] ^= 0xff; // inside its length field
        let s = scan(&bad);
        assert_eq!(s.records.len(), 2);
        let end = second.offset + second.meta.frame_len;
        assert_eq!(s.corrupt, vec![(second.offset, end)]);
        assert_eq!(s.valid_end, seg.len() as u64);
    }

    #[test]
    fn scan_stops_at_a_torn_tail() {
        let seg = segment(&[&["aaaa"], &["bbbb"]]);
        let torn = &seg[..seg.len() - 3];
        let s = scan(torn);
        assert_eq!(s.records.len(), 1);
        assert_eq!(
            s.valid_end,
            s.records[0].offset + s.records[0].meta.frame_len
        );
        assert!(s.corrupt.is_empty());
    }

    #[test]
    fn scan_of_empty_or_headerless_bytes_finds_nothing_and_does_not_fail() {
        assert_eq!(scan(&[]).records.len(), 0);
        assert!(!scan(&[]).header_ok);
        let garbage = vec![0x5a; 100];
        let s = scan(&garbage);
        assert!(s.records.is_empty());
        assert_eq!(s.valid_end, 0);
    }

    #[test]
    fn scan_reads_records_after_a_damaged_header() {
        let mut seg = segment(&[&["x"]]);
        seg[0] = b'Z';
        let s = scan(&seg);
        assert!(!s.header_ok);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.corrupt, vec![(0, HEADER_LEN)]);
    }
}
