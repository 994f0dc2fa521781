//! Opening a buffer directory: the state is recomputed from the segments
//! themselves plus the acked-position file, whatever shape they are in.
//!
//! Per segment, [`format::scan`] finds every intact record. A damaged range in
//! the middle is skipped and reported; a torn tail of the newest segment (a
//! record cut short by a crash) is truncated so appends continue after the last
//! intact record. The acked position drops records before it, unless it
//! points past the data — then it belongs to data that no longer exists (a
//! tail lost with the page cache, a directory restored from a copy) and is
//! ignored, so everything is sent again rather than anything lost. Segments
//! left with nothing unacknowledged (empty files among them) are removed. No
//! damage makes the open fail; only I/O errors do.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::files::{self, AckedFile};
use super::format::{self, RecordMeta, HEADER_LEN};
use super::{BufferError, Position};

/// A byte range of a segment that held no intact record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    pub start: u64,
    pub end: u64,
}

/// How the acked-position file was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckedUse {
    /// There was none: every record is sent again.
    Missing,
    /// It could not be read: every record is sent again.
    Garbage,
    /// It points past the data and was ignored: every record is sent again.
    PastData(Position),
    /// Records before this position were dropped as acknowledged.
    Applied(Position),
}

/// What opening a buffer found; every part of it is also logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Segment files found.
    pub segments: usize,
    /// Records and documents left to send, oldest first.
    pub records: u64,
    pub documents: u64,
    /// Damaged ranges skipped, one per range, in the middle of a segment.
    pub corrupt: Vec<Damage>,
    /// Torn tails truncated (at most one, in the newest segment).
    pub truncated: Vec<Damage>,
    pub acked: AckedUse,
    /// Segments removed because nothing in them was left to send.
    pub removed: usize,
}

/// One segment as recovered.
pub(super) struct Recovered {
    pub id: u64,
    pub len: u64,
    pub header_ok: bool,
    pub unacked: BTreeMap<u64, RecordMeta>,
}

/// Recovers every segment of `dir` (already locked), oldest first.
pub(super) fn recover(dir: &Path) -> Result<(Vec<Recovered>, OpenReport), BufferError> {
    let ids = list_segments(dir)?;
    let mut report = OpenReport {
        segments: ids.len(),
        records: 0,
        documents: 0,
        corrupt: Vec::new(),
        truncated: Vec::new(),
        acked: AckedUse::Missing,
        removed: 0,
    };
    let mut segs = Vec::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        let newest = i + 1 == ids.len();
        segs.push(recover_segment(dir, id, newest, &mut report)?);
    }
    let acked = files::read_acked(dir)
        .map_err(|e| BufferError::io("read", dir.join(files::ACKED_FILE), e))?;
    report.acked = apply_acked(&mut segs, acked);
    for s in &segs {
        report.records += s.unacked.len() as u64;
        report.documents += s.unacked.values().map(|m| u64::from(m.docs)).sum::<u64>();
    }
    log_report(dir, &report);
    Ok((segs, report))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, BufferError> {
    let rd = std::fs::read_dir(dir).map_err(|e| BufferError::io("list", dir.to_path_buf(), e))?;
    let mut ids = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| BufferError::io("list", dir.to_path_buf(), e))?;
        if let Some(id) = entry.file_name().to_str().and_then(files::segment_id) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn recover_segment(
    dir: &Path,
    id: u64,
    newest: bool,
    report: &mut OpenReport,
) -> Result<Recovered, BufferError> {
    let path = files::segment_path(dir, id);
    let bytes = std::fs::read(&path).map_err(|e| BufferError::io("read", path.clone(), e))?;
    let scan = format::scan(&bytes);
    for &(start, end) in &scan.corrupt {
        report.corrupt.push(Damage {
            segment: path.clone(),
            start,
            end,
        });
    }
    let mut len = bytes.len() as u64;
    if len > scan.valid_end {
        let damage = Damage {
            segment: path.clone(),
            start: scan.valid_end,
            end: len,
        };
        if newest && scan.header_ok {
            truncate(&path, scan.valid_end)?;
            len = scan.valid_end;
            report.truncated.push(damage);
        } else {
            // Not appended to again, so left as it is; the range is skipped.
            report.corrupt.push(damage);
        }
    }
    let unacked = scan.records.iter().map(|r| (r.offset, r.meta)).collect();
    Ok(Recovered {
        id,
        len,
        header_ok: scan.header_ok,
        unacked,
    })
}

fn truncate(path: &Path, len: u64) -> Result<(), BufferError> {
    let err = |e| BufferError::io("truncate", path.to_path_buf(), e);
    let f = File::options().write(true).open(path).map_err(err)?;
    f.set_len(len).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Drops the records the acked position covers, if it can be trusted.
fn apply_acked(segs: &mut [Recovered], acked: AckedFile) -> AckedUse {
    let pos = match acked {
        AckedFile::Missing => return AckedUse::Missing,
        AckedFile::Garbage => return AckedUse::Garbage,
        AckedFile::Valid(p) => p,
    };
    let past = match segs.iter().find(|s| s.id == pos.segment) {
        Some(s) => pos.offset > s.len.max(HEADER_LEN),
        None => segs.last().map_or(true, |s| pos.segment > s.id),
    };
    if past {
        return AckedUse::PastData(pos);
    }
    for s in segs.iter_mut() {
        if s.id < pos.segment {
            s.unacked.clear();
        } else if s.id == pos.segment {
            s.unacked = s.unacked.split_off(&pos.offset);
        }
    }
    AckedUse::Applied(pos)
}

fn log_report(dir: &Path, r: &OpenReport) {
    for d in &r.corrupt {
        warn!(segment = %d.segment.display(), start = d.start, end = d.end,
            "disk buffer: skipped a damaged range with no intact record");
    }
    for d in &r.truncated {
        warn!(segment = %d.segment.display(), start = d.start, end = d.end,
            "disk buffer: truncated a torn record at the end of the newest segment");
    }
    match r.acked {
        AckedUse::Missing | AckedUse::Applied(_) => {}
        AckedUse::Garbage => warn!(dir = %dir.display(),
            "disk buffer: acked-position file unreadable; every buffered record will be sent again"),
        AckedUse::PastData(p) => {
            warn!(dir = %dir.display(), segment = p.segment, offset = p.offset,
            "disk buffer: acked position points past the data; every buffered record will be sent again")
        }
    }
    info!(dir = %dir.display(), segments = r.segments, records = r.records, documents = r.documents,
        "disk buffer opened");
}
