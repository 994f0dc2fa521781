//! The disk buffer: encoded batches kept in append-only segment files between
//! the encoders and the output, so that an output outage, a `kill -9` or a
//! power cut loses nothing an input was told is safe.
//!
//! ```text
//!  encoders ──EncodedBatch──► BufferWriter::append ──► segment files ──► BufferReader::next ──► output
//!     ▲                          │ fsync                                      │ (EncodedBatch with one Ack)
//!     └──── input acks fired ◄───┘                 segment deleted ◄── Ack::done for every record in it
//! ```
//!
//! * One record per batch, framed with its length and a CRC32C (the format is
//!   drawn in [`format`](mod@format); the directory layout in [`files`]). Segments are only
//!   appended to; a segment is deleted once every record in it is acknowledged
//!   and it is no longer written to.
//! * There is no ledger that can disagree with the data. On open the state is
//!   recomputed from the segments plus an acked-position file that may be
//!   stale — stale means sending again, never losing (see [`recovery`]). A torn
//!   tail is truncated, a damaged range is skipped, counted and reported in the
//!   [`OpenReport`] and the log; damage never makes the open fail.
//! * A new segment's header is written and fsynced, and the directory synced,
//!   before any record goes into it.
//! * `flock` on `buffer.lock` keeps a second process (or handle) out; every
//!   file is created 0600.
//!
//! The input's acks are fired once the batch is on disk by the sync policy:
//!
//! | `sync`     | input acked                    | `kill -9` loses | power loss / kernel crash loses |
//! |------------|--------------------------------|-----------------|---------------------------------|
//! | `always`   | after the batch's own fsync    | nothing         | nothing acknowledged            |
//! | `interval` | after the next fsync, at most `sync_interval_ms` or `sync_bytes` later | nothing written | batches written in the last interval; none of them was acknowledged yet, so inputs that resend (files, RELP) lose nothing, UDP loses up to one interval |
//!
//! Either way a process crash keeps what `write` put in the page cache. The
//! acknowledgements of the output are recorded in the acked file at the same
//! interval, so after a crash up to one interval of delivered records (and,
//! with several bulk requests in flight, those acked out of order) is sent
//! again: duplicates, bounded, never loss.
//!
//! `max_bytes` bounds the segment files on disk. When it is reached, `block`
//! makes [`BufferWriter::append`] wait (asynchronously) until an acknowledged
//! segment is deleted; `drop_newest` refuses the batch and counts it.
//!
//! Wiring, in outline: open it with [`DiskBuffer::open`] (`config.disk_options()`),
//! log or report the [`OpenReport`], give clones of [`DiskBuffer::writer`] to
//! the stage that has the `EncodedBatch`es and `append` each one, run
//! [`BufferReader::forward`] into the channel the output already reads, call
//! [`metrics::publish`] on the metrics tick, and on shutdown
//! [`BufferWriter::close`] once the encoders are done — without waiting for
//! the output, whose unacknowledged records stay on disk for the next start.

pub mod config;
pub mod files;
pub mod format;
pub mod metrics;
pub mod recovery;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use self::format::{RecordMeta, HEADER_LEN};
use crate::pipeline::Ack;

pub use self::config::{BufferConfig, BufferType, InvalidBufferConfig, SyncPolicy, WhenFull};
pub use self::recovery::{AckedUse, Damage, OpenReport};

/// Where a record starts: its segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// The settings a disk buffer runs with (see [`BufferConfig::disk_options`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    pub max_bytes: u64,
    /// A segment is closed once a record would take it past this size.
    pub segment_bytes: u64,
    pub when_full: WhenFull,
    pub sync: SyncPolicy,
    pub sync_interval: Duration,
    pub sync_bytes: u64,
}

/// Why the disk buffer could not open or write.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("disk buffer {}: another process holds {}", path.display(), files::LOCK_FILE)]
    Locked { path: PathBuf },
    #[error("disk buffer: cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("disk buffer: {0}")]
    TooLarge(#[from] format::TooLarge),
    #[error("disk buffer: closed")]
    Closed,
}

impl BufferError {
    fn io(what: &'static str, path: PathBuf, source: std::io::Error) -> Self {
        BufferError::Io { what, path, source }
    }
}

/// What became of an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written; its acks fire once it is synced.
    Stored,
    /// Refused under `when_full = "drop_newest"`; its acks were dropped, not
    /// fired, as an output does with a batch it abandons.
    Dropped { documents: usize },
}

/// Counters and levels of a buffer at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Bytes of segment files.
    pub bytes: u64,
    /// Bytes of the records not yet acknowledged by the output: what the
    /// buffer holds for it, without the settled records an active segment
    /// still carries.
    pub unacked_bytes: u64,
    /// Records and documents not yet acknowledged by the output.
    pub records: u64,
    pub documents: u64,
    /// When the oldest unacknowledged record was appended (Unix ms).
    pub oldest_appended_ms: Option<u64>,
    /// Damaged ranges skipped (at open, or found while reading).
    pub corrupt_records: u64,
    pub dropped_batches: u64,
    pub dropped_documents: u64,
}

struct Segment {
    len: u64,
    /// Records not yet acknowledged, by offset.
    unacked: BTreeMap<u64, RecordMeta>,
}

struct State {
    segments: BTreeMap<u64, Segment>,
    active_id: u64,
    active: Arc<File>,
    /// The next record to read is the first unacked one at or after this.
    read_cursor: Position,
    /// Input acks of batches written but not yet synced.
    pending: Vec<Ack>,
    unsynced: u64,
    sync_scheduled: bool,
    acked_dirty: bool,
    writers_closed: bool,
    stats: BufferStats,
}

struct Shared {
    dir: PathBuf,
    opts: DiskOptions,
    state: Mutex<State>,
    /// Serialises acked-file writes so an older position never lands last.
    acked_file: Mutex<()>,
    readable: Notify,
    space: Notify,
    runtime: Option<tokio::runtime::Handle>,
    _lock: File,
}

/// An open disk buffer; [`DiskBuffer::writer`] and [`DiskBuffer::reader`]
/// give the two ends. The directory stays locked while any handle is alive.
#[derive(Clone)]
pub struct DiskBuffer {
    shared: Arc<Shared>,
}

/// The pipeline's end: appends batches. Cheap to clone.
#[derive(Clone)]
pub struct BufferWriter {
    shared: Arc<Shared>,
}

/// The output's end: reads records oldest first.
pub struct BufferReader {
    shared: Arc<Shared>,
    file: Option<(u64, Arc<File>)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves counters, not files, half-done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DiskBuffer {
    /// Opens (creating if needed) the buffer in `dir`, recovering whatever is
    /// there; fails only on I/O errors or when another handle holds the lock.
    /// Called inside a Tokio runtime, interval syncs are timed on it.
    pub fn open(dir: &Path, opts: DiskOptions) -> Result<(DiskBuffer, OpenReport), BufferError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| BufferError::io("create", dir.into(), e))?;
        let lock = files::lock(dir)
            .map_err(|e| BufferError::io("lock", dir.join(files::LOCK_FILE), e))?
            .ok_or_else(|| BufferError::Locked { path: dir.into() })?;
        let (recovered, mut report) = recovery::recover(dir)?;
        let (state, removed) = open_state(dir, recovered, report.corrupt.len() as u64)?;
        report.removed = removed;
        let shared = Arc::new(Shared {
            dir: dir.into(),
            opts,
            state: Mutex::new(state),
            acked_file: Mutex::new(()),
            readable: Notify::new(),
            space: Notify::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            _lock: lock,
        });
        // Start from a position that matches these segments, so a later
        // segment that reuses an old number is never taken for acknowledged.
        shared.write_acked(true)?;
        Ok((DiskBuffer { shared }, report))
    }

    pub fn writer(&self) -> BufferWriter {
        BufferWriter {
            shared: self.shared.clone(),
        }
    }

    pub fn reader(&self) -> BufferReader {
        BufferReader {
            shared: self.shared.clone(),
            file: None,
        }
    }

    pub fn stats(&self) -> BufferStats {
        lock(&self.shared.state).stats
    }

    pub fn path(&self) -> &Path {
        &self.shared.dir
    }
}

/// Turns recovered segments into the running state: removes those with
/// nothing left to send, continues the newest one or starts a new one.
fn open_state(
    dir: &Path,
    recovered: Vec<recovery::Recovered>,
    corrupt: u64,
) -> Result<(State, usize), BufferError> {
    let next_id = recovered.last().map_or(1, |s| s.id + 1);
    let continue_newest = recovered.last().is_some_and(|s| s.header_ok);
    let count = recovered.len();
    let mut segments = BTreeMap::new();
    let mut removed = 0;
    for (i, r) in recovered.into_iter().enumerate() {
        let keep_as_active = continue_newest && i + 1 == count;
        if r.unacked.is_empty() && !keep_as_active {
            let path = files::segment_path(dir, r.id);
            std::fs::remove_file(&path).map_err(|e| BufferError::io("remove", path, e))?;
            removed += 1;
            continue;
        }
        segments.insert(
            r.id,
            Segment {
                len: r.len,
                unacked: r.unacked,
            },
        );
    }
    let (active_id, active) = if continue_newest {
        let id = next_id - 1;
        let path = files::segment_path(dir, id);
        let f = files::private()
            .append(true)
            .open(&path)
            .map_err(|e| BufferError::io("open", path, e))?;
        (id, f)
    } else {
        let f = create_segment(dir, next_id)?;
        segments.insert(
            next_id,
            Segment {
                len: HEADER_LEN,
                unacked: BTreeMap::new(),
            },
        );
        (next_id, f)
    };
    let first = *segments.keys().next().unwrap_or(&active_id);
    let mut state = State {
        segments,
        active_id,
        active: Arc::new(active),
        read_cursor: Position {
            segment: first,
            offset: 0,
        },
        pending: Vec::new(),
        unsynced: 0,
        sync_scheduled: false,
        acked_dirty: false,
        writers_closed: false,
        stats: BufferStats {
            corrupt_records: corrupt,
            ..BufferStats::default()
        },
    };
    state.refresh_levels();
    Ok((state, removed))
}

/// Creates segment `id` with its header, durable (file and directory entry)
/// before anything is written after it.
fn create_segment(dir: &Path, id: u64) -> Result<File, BufferError> {
    let path = files::segment_path(dir, id);
    let err = |e| BufferError::io("create", path.clone(), e);
    let mut f = files::private()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(err)?;
    f.write_all(&format::header()).map_err(err)?;
    f.sync_all().map_err(err)?;
    files::sync_dir(dir).map_err(|e| BufferError::io("sync", dir.into(), e))?;
    Ok(f)
}

impl State {
    /// Recomputes the byte, record and document levels.
    fn refresh_levels(&mut self) {
        let s = &mut self.stats;
        s.bytes = self.segments.values().map(|g| g.len).sum();
        s.records = self.segments.values().map(|g| g.unacked.len() as u64).sum();
        s.unacked_bytes = self
            .segments
            .values()
            .flat_map(|g| g.unacked.values())
            .map(|m| m.frame_len)
            .sum();
        s.documents = self
            .segments
            .values()
            .flat_map(|g| g.unacked.values())
            .map(|m| u64::from(m.docs))
            .sum();
        self.refresh_oldest();
    }

    fn refresh_oldest(&mut self) {
        self.stats.oldest_appended_ms = self
            .segments
            .values()
            .find_map(|g| g.unacked.values().next())
            .map(|m| m.appended_ms);
    }

    /// Every record before this position is acknowledged.
    fn low_water(&self) -> Position {
        for (&id, g) in &self.segments {
            if let Some((&offset, _)) = g.unacked.iter().next() {
                return Position {
                    segment: id,
                    offset,
                };
            }
        }
        let len = self
            .segments
            .get(&self.active_id)
            .map_or(HEADER_LEN, |g| g.len);
        Position {
            segment: self.active_id,
            offset: len,
        }
    }

    /// The next unread record, and moves the cursor past it.
    fn next_unread(&mut self) -> Option<(Position, RecordMeta)> {
        let c = self.read_cursor;
        let (pos, meta) = self.segments.range(c.segment..).find_map(|(&id, g)| {
            let from = if id == c.segment { c.offset } else { 0 };
            g.unacked.range(from..).next().map(|(&offset, &m)| {
                (
                    Position {
                        segment: id,
                        offset,
                    },
                    m,
                )
            })
        })?;
        self.read_cursor = Position {
            segment: pos.segment,
            offset: pos.offset + meta.frame_len,
        };
        Some((pos, meta))
    }
}

mod queue;
