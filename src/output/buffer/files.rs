//! The files of a buffer directory other than the records themselves: segment
//! names, the lock, the acked-position file, and files created 0600.
//!
//! ```text
//!  <dir>/buffer.lock                    flock(LOCK_EX): one process per buffer
//!  <dir>/acked                          acked position, may be stale
//!  <dir>/segment-00000000000000000001.dat  segments, oldest = lowest number
//!
//!  acked (28 bytes)
//!  +------------------+----------------+---------------+-----------------------+
//!  | magic "DNSEACK\0"| segment u64 LE | offset u64 LE | crc32c(bytes 0..24)   |
//!  +------------------+----------------+---------------+-----------------------+
//! ```
//!
//! The acked file says "every record before this position was acknowledged".
//! It is written now and then, never before the acknowledgements it records,
//! so a stale one only makes records be sent again; a missing or damaged one
//! means "nothing acknowledged".

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::Position;

const ACKED_MAGIC: [u8; 8] = *b"DNSEACK\0";
const ACKED_LEN: usize = 28;
pub const ACKED_FILE: &str = "acked";
pub const LOCK_FILE: &str = "buffer.lock";

/// The path of segment `id`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("segment-{id:020}.dat"))
}

/// The id in a segment file name, or `None` for any other file.
pub fn segment_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".dat")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Options for a new file readable by the owner only.
pub fn private() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

/// Takes the buffer's lock, or fails at once if another handle holds it.
pub fn lock(dir: &Path) -> io::Result<Option<File>> {
    let f = private()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    // SAFETY: flock on a descriptor we own; it touches no memory.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(f));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(err)
    }
}

/// Makes a directory entry change (a created or removed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What was found in the acked-position file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckedFile {
    Missing,
    /// Wrong length, magic or checksum.
    Garbage,
    Valid(Position),
}

/// Reads the acked-position file; never fails on its content.
pub fn read_acked(dir: &Path) -> io::Result<AckedFile> {
    let bytes = match std::fs::read(dir.join(ACKED_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AckedFile::Missing),
        Err(e) => return Err(e),
    };
    if bytes.len() != ACKED_LEN || bytes[..8] != ACKED_MAGIC {
        return Ok(AckedFile::Garbage);
    }
    let word = |r: std::ops::Range<usize>| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[r]);
        u64::from_le_bytes(a)
    };
    let crc = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    if crc32c::crc32c(&bytes[..24]) != crc {
        return Ok(AckedFile::Garbage);
    }
    Ok(AckedFile::Valid(Position {
        segment: word(8..16),
        offset: word(16..24),
    }))
}

/// Replaces the acked-position file: a new file, synced, renamed over the old,
/// so a crash leaves the old one or the new one.
pub fn write_acked(dir: &Path, pos: Position) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(ACKED_LEN);
    bytes.extend_from_slice(&ACKED_MAGIC);
    bytes.extend_from_slice(&pos.segment.to_le_bytes());
    bytes.extend_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("acked.tmp");
    let mut f = private()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, dir.join(ACKED_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_other_files_are_ignored() {
        let p = segment_path(Path::new("/b"), 42);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(segment_id(name), Some(42));
        assert_eq!(segment_id("segment-.dat"), None);
        assert_eq!(segment_id("segment-12.dat.tmp"), None);
        assert_eq!(segment_id("acked"), None);
    }

    #[test]
    fn acked_file_round_trips_and_damage_reads_as_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_acked(dir.path()).unwrap(), AckedFile::Missing);
        let pos = Position {
            segment: 3,
            offset: 99,
        };
        write_acked(dir.path(), pos).unwrap();
        assert_eq!(read_acked(dir.path()).unwrap(), AckedFile::Valid(pos));
        let path = dir.path().join(ACKED_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[17] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_acked(dir.path()).unwrap(), AckedFile::Garbage);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_acked(dir.path()).unwrap(), AckedFile::Garbage);
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        assert!(held.is_some());
        assert!(lock(dir.path()).unwrap().is_none());
        drop(held);
        assert!(lock(dir.path()).unwrap().is_some());
    }
}
