//! The disk buffer: encoded batches kept in append-only segment files between
//! the encoders and the output, so that an output outage, a `kill -9` or a
//! power cut loses nothing an input was told is safe.
//!
//! This part holds the on-disk format ([`format`]) and the directory's other
//! files ([`files`]).

pub mod files;
pub mod format;

/// Where a record starts: its segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}
