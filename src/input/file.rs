//! The file input: follows log files like `tail -F` (pihole.log on the Pi-hole
//! box itself), one line per frame, and remembers how far it got.
//!
//! Following is poll-based (no inotify), one blocking thread per path: each poll
//! reads what was appended since the last one, splits it into lines and hands
//! them on in batches; a partial last line waits for its newline. Handled:
//!
//! - rotation by rename + create (logrotate's default): the path now names
//!   another file (dev/inode changed); the old file is read to its end, a last
//!   line without newline is delivered, and the new file is read from offset 0;
//! - copytruncate (Pi-hole's own logrotate): the same file got shorter than our
//!   offset, or its first bytes changed; reading starts again at offset 0;
//! - a file that does not exist yet: retried every poll, logged once.
//!
//! Offsets are committed only when acknowledged. Every batch carries an
//! [`Ack`](crate::pipeline::Ack) that reports its sequence number back to the
//! tail thread; the committed position is that of the newest batch such that it
//! and every earlier batch are acknowledged, whatever order the acks come in.
//! It is written to `<state_dir>/file-offsets.json` (temp file, fsync, rename)
//! at most once a second and at shutdown, keyed by path, with the file's device,
//! inode and a hash of its first bytes. On start, a saved position resumes only
//! the same file with the same first bytes; anything else is read from the
//! start. An `Ack` dropped without being done means "not delivered": the
//! committed position then stays put until restart, so those lines are read
//! again (at least once, never lost).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};

use super::framing::{finish_line, DEFAULT_MAX_FRAME};
use super::stats::{InputStats, LogThrottle};
use super::{InputError, BATCH_MAX_BYTES};
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::{Ack, FrameBatch, FrameSender, InputKind};

/// The state file's name inside `state_dir`.
pub const STATE_FILE: &str = "file-offsets.json";

/// Bytes read from a file at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Most bytes read in one poll, so a fast writer cannot keep the thread from
/// checking for rotation and acknowledgements.
const READ_PER_POLL: u64 = 16 << 20;

/// How many first bytes of a file identify its content.
const HEAD_BYTES: usize = 256;

/// How long a blocked send waits before looking at acks and shutdown again.
const SEND_WAIT: Duration = Duration::from_millis(100);

/// Committed offsets are written at most this often (and at shutdown).
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// At shutdown, how long to wait for batches already handed on to be
/// acknowledged, unless the configuration says otherwise.
const ACK_GRACE: Duration = Duration::from_secs(2);

/// Where to start in a file that has no saved offset and exists at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Read the whole file, so nothing already in it is missed.
    #[default]
    Beginning,
    /// Only lines written from now on.
    End,
}

/// `[input.file]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Files to follow; empty turns the input off.
    pub paths: Vec<PathBuf>,
    /// Where the committed offsets are kept (`file-offsets.json`).
    pub state_dir: PathBuf,
    /// For a file with no saved offset that exists at start: `beginning` (the
    /// default) or `end`. A file that appears later, or replaces a rotated
    /// one, is always read from its beginning.
    pub start_at: StartAt,
    /// How often to look for new lines, in milliseconds.
    pub poll_interval_ms: u64,
    /// Longer lines are cut to this many bytes and flagged truncated.
    pub max_line: usize,
    /// Most lines in one batch.
    pub batch_size: usize,
    /// At shutdown, how long to wait for lines already handed on to be stored
    /// before saving the offset; `run` sets it to its shutdown deadline.
    #[serde(skip)]
    pub ack_wait: Option<Duration>,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            paths: Vec::new(),
            state_dir: PathBuf::from("/var/lib/dnsenrich"),
            start_at: StartAt::Beginning,
            poll_interval_ms: 250,
            max_line: DEFAULT_MAX_FRAME,
            batch_size: 512,
            ack_wait: None,
        }
    }
}

impl FileConfig {
    /// Creates the state directory if needed, checks it can be written, and
    /// loads the saved offsets.
    pub fn build(&self) -> Result<FileInput, InputError> {
        let state_err = |source| InputError::StateDir {
            path: self.state_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.state_dir).map_err(state_err)?;
        let store = OffsetStore::load(&self.state_dir);
        store.persist().map_err(state_err)?;
        Ok(FileInput {
            config: self.clone(),
            store: Arc::new(store),
            stats: InputStats::new(InputKind::File),
        })
    }
}

/// Files to follow with their saved offsets loaded, ready to
/// [`run`](FileInput::run).
#[derive(Debug)]
pub struct FileInput {
    config: FileConfig,
    store: Arc<OffsetStore>,
    stats: InputStats,
}

impl FileInput {
    /// The files this input follows.
    pub fn paths(&self) -> &[PathBuf] {
        &self.config.paths
    }

    /// This input's counters.
    pub fn stats(&self) -> InputStats {
        self.stats.clone()
    }

    /// Follows every path until shutdown; then waits briefly for outstanding
    /// acknowledgements, saves the offsets and returns.
    pub async fn run(self, tx: FrameSender, shutdown: Shutdown) {
        let mut threads = Vec::with_capacity(self.config.paths.len());
        let mut seen = std::collections::HashSet::new();
        for path in &self.config.paths {
            // Two followers of one path would fight over its saved offset.
            if !seen.insert(path) {
                warn!(path = %path.display(), "file listed twice; following it once");
                continue;
            }
            let tailer = Tailer::new(
                path.clone(),
                &self.config,
                self.store.clone(),
                self.stats.clone(),
                tx.clone(),
                shutdown.clone(),
            );
            threads.push(tokio::task::spawn_blocking(move || tailer.run()));
        }
        drop(tx);
        for t in threads {
            if let Err(e) = t.await {
                error!(error = %e, "file input thread failed");
            }
        }
    }
}

/// Where a file was read up to, and which file that was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    dev: u64,
    inode: u64,
    offset: u64,
    /// How many first bytes `head_hash` covers.
    head_len: u64,
    /// FNV-1a of the file's first `head_len` bytes.
    head_hash: u64,
}

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    files: BTreeMap<String, Position>,
}

/// The committed positions of every followed path, shared by their threads.
#[derive(Debug)]
struct OffsetStore {
    file: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    entries: Mutex<BTreeMap<String, Position>>,
    /// Serialises writers of the state file.
    writing: Mutex<()>,
}

impl OffsetStore {
    /// The offsets saved in `dir`; none if the file is missing or unreadable.
    fn load(dir: &Path) -> Self {
        let file = dir.join(STATE_FILE);
        let entries = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(state) => state.files,
                Err(e) => {
                    warn!(file = %file.display(), error = %e, "ignoring unreadable offsets file");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                warn!(file = %file.display(), error = %e, "cannot read offsets file");
                BTreeMap::new()
            }
        };
        OffsetStore {
            tmp: dir.join(format!("{STATE_FILE}.tmp")),
            dir: dir.to_owned(),
            file,
            entries: Mutex::new(entries),
            writing: Mutex::new(()),
        }
    }

    fn get(&self, key: &str) -> Option<Position> {
        lock(&self.entries).get(key).copied()
    }

    fn set(&self, key: &str, pos: Position) {
        lock(&self.entries).insert(key.to_owned(), pos);
    }

    /// Writes every entry: to a temp file, synced, then renamed over the old
    /// one, so a crash leaves either the old or the new state.
    fn persist(&self) -> io::Result<()> {
        let _writing = lock(&self.writing);
        let state = StateFile {
            version: 1,
            files: lock(&self.entries).clone(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(io::Error::other)?;
        // The offsets name the log files followed; only the daemon's user
        // needs them, and the mode is set on the temp file so the renamed
        // file never exists with a wider one.
        let mut tmp = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.tmp)?;
        // A temp file left by an older build keeps its old mode on open.
        tmp.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.write_all(&json)?;
        tmp.sync_all()?;
        drop(tmp);
        std::fs::rename(&self.tmp, &self.file)?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// FNV-1a, 64 bit: stable across builds, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Up to [`HEAD_BYTES`] first bytes of `file`.
fn read_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; HEAD_BYTES];
    let mut n = 0;
    while n < HEAD_BYTES {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

/// The file being read.
#[derive(Debug)]
struct Tailed {
    file: File,
    dev: u64,
    inode: u64,
    /// Bytes consumed (lines handed on, or held as the partial line).
    pos: u64,
    /// The size at which the head was last checked.
    checked_size: u64,
    head_len: u64,
    head_hash: u64,
}

impl Tailed {
    fn position(&self, offset: u64) -> Position {
        Position {
            dev: self.dev,
            inode: self.inode,
            offset,
            head_len: self.head_len,
            head_hash: self.head_hash,
        }
    }
}

/// The thread is to stop: shutdown, or the pipeline is gone.
struct Stop;

/// A batch's acknowledgement as it comes back to the tail thread.
struct AckMsg {
    seq: u64,
    delivered: bool,
}

/// Reports a batch to the tail thread exactly once: delivered when its `Ack`
/// is done, not delivered when the `Ack` is dropped unused.
struct AckSignal {
    seq: u64,
    tx: flume::Sender<AckMsg>,
    delivered: bool,
}

impl Drop for AckSignal {
    fn drop(&mut self) {
        let _ = self.tx.send(AckMsg {
            seq: self.seq,
            delivered: self.delivered,
        });
    }
}

/// Batches handed on and not yet acknowledged, in order, and the position
/// committed so far.
struct AckTracker {
    tx: flume::Sender<AckMsg>,
    rx: flume::Receiver<AckMsg>,
    next_seq: u64,
    /// The sequence number of `pending[0]`.
    front_seq: u64,
    pending: VecDeque<(Position, bool)>,
    /// A batch was not delivered: nothing from it on may be committed (the
    /// batches before it still may, when their acks arrive).
    stalled: bool,
    committed: Option<Position>,
    dirty: bool,
    last_persist: Instant,
}

impl AckTracker {
    fn new() -> Self {
        let (tx, rx) = flume::unbounded();
        AckTracker {
            tx,
            rx,
            next_seq: 0,
            front_seq: 0,
            pending: VecDeque::new(),
            stalled: false,
            committed: None,
            dirty: false,
            last_persist: Instant::now(),
        }
    }

    /// An `Ack` for a batch that ends at `pos`.
    fn register(&mut self, pos: Position) -> Ack {
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.stalled {
            self.pending.push_back((pos, false));
        }
        let mut signal = AckSignal {
            seq,
            tx: self.tx.clone(),
            delivered: false,
        };
        Ack::new(move || {
            signal.delivered = true;
            drop(signal);
        })
    }

    /// Whether some batch handed on may still be acknowledged.
    fn outstanding(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes every ack that has arrived.
    fn drain(&mut self, path: &Path) {
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(msg, path);
        }
    }

    fn handle(&mut self, msg: AckMsg, path: &Path) {
        let Some(index) = msg
            .seq
            .checked_sub(self.front_seq)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.pending.len())
        else {
            // Already committed past it, or dropped by an earlier stall.
            return;
        };
        if !msg.delivered {
            // Keep waiting for the batches before this one; forget this one
            // and everything after it.
            self.stalled = true;
            self.pending.truncate(index);
            warn!(
                path = %path.display(),
                committed = self.committed.map(|p| p.offset),
                "a batch was not delivered; the saved offset stays here and those lines are read again after a restart"
            );
            return;
        }
        self.pending[index].1 = true;
        while let Some(&(pos, true)) = self.pending.front() {
            self.pending.pop_front();
            self.front_seq += 1;
            self.committed = Some(pos);
            self.dirty = true;
        }
    }
}

/// Follows one path.
struct Tailer {
    path: PathBuf,
    key: Arc<str>,
    max_line: usize,
    batch_size: usize,
    poll: Duration,
    ack_wait: Duration,
    start_at: StartAt,
    store: Arc<OffsetStore>,
    stats: InputStats,
    tx: Option<FrameSender>,
    shutdown: Shutdown,

    file: Option<Tailed>,
    /// The saved position, until the first file is opened.
    resume: Option<Position>,
    /// `start_at` applies to the next open (the file existed at start).
    start_at_applies: bool,
    /// Whether the first open has happened (its position is committed at once).
    opened_once: bool,
    waiting_logged: bool,
    moved_logged: bool,
    io_log: LogThrottle,

    /// The current partial line: at most `max_line + 1` bytes.
    line: Vec<u8>,
    /// Bytes of the current line were dropped (it is over `max_line`).
    line_overflow: bool,
    /// Where the current partial line starts in the file (`log.offset`, as
    /// Beats writes it: the line's first byte, not the byte after it).
    line_start: u64,
    read_buf: Vec<u8>,
    batch: FrameBatch,
    /// The offset just past the last line of `batch`.
    batch_end: u64,
    acks: AckTracker,
}

impl Tailer {
    fn new(
        path: PathBuf,
        config: &FileConfig,
        store: Arc<OffsetStore>,
        stats: InputStats,
        tx: FrameSender,
        shutdown: Shutdown,
    ) -> Self {
        let key: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let resume = store.get(&key);
        Tailer {
            key,
            path,
            max_line: config.max_line.max(1),
            batch_size: config.batch_size.max(1),
            poll: Duration::from_millis(config.poll_interval_ms.max(1)),
            ack_wait: config.ack_wait.unwrap_or(ACK_GRACE),
            start_at: config.start_at,
            store,
            stats,
            tx: Some(tx),
            shutdown,
            file: None,
            resume,
            start_at_applies: true,
            opened_once: false,
            waiting_logged: false,
            moved_logged: false,
            io_log: LogThrottle::new(Duration::from_secs(60)),
            line: Vec::new(),
            line_overflow: false,
            line_start: 0,
            read_buf: vec![0u8; READ_CHUNK],
            batch: FrameBatch::new(InputKind::File),
            batch_end: 0,
            acks: AckTracker::new(),
        }
    }

    fn run(mut self) {
        debug!(path = %self.path.display(), "following file");
        while !self.shutdown.is_shutdown() {
            let busy = match self.poll() {
                Ok(busy) => busy,
                Err(Stop) => break,
            };
            self.acks.drain(&self.path);
            self.maybe_persist(false);
            if !busy {
                // Sleep until the next poll, taking acks as they come.
                let wake = Instant::now() + self.poll;
                while let Ok(msg) = self.acks.rx.recv_deadline(wake) {
                    self.acks.handle(msg, &self.path);
                }
            }
        }
        self.stop();
    }

    /// Stops reading, gives batches already handed on a moment to be
    /// acknowledged, and saves the offset.
    fn stop(mut self) {
        // Lines read but not handed on are simply read again next time.
        self.tx = None;
        self.batch = FrameBatch::new(InputKind::File);
        let deadline = Instant::now() + self.ack_wait;
        while self.acks.outstanding() {
            match self.acks.rx.recv_deadline(deadline) {
                Ok(msg) => self.acks.handle(msg, &self.path),
                Err(_) => break,
            }
        }
        self.acks.drain(&self.path);
        if self.acks.outstanding() {
            debug!(path = %self.path.display(), "stopping with unacknowledged lines; they are read again next time");
        }
        self.maybe_persist(true);
    }

    /// One look at the file. True when it read something (so look again soon).
    fn poll(&mut self) -> Result<bool, Stop> {
        if self.file.is_none() && !self.open()? {
            return Ok(false);
        }
        self.check_truncation()?;
        let (read, at_eof) = self.read_available()?;
        if at_eof && self.check_rotation()? {
            return Ok(true);
        }
        self.flush()?;
        Ok(read > 0 || !at_eof)
    }

    /// Opens the path if it exists. True when a file is open.
    fn open(&mut self) -> Result<bool, Stop> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                self.start_at_applies = false;
                if e.kind() == io::ErrorKind::NotFound {
                    if !self.waiting_logged {
                        info!(path = %self.path.display(), "waiting for the file to appear");
                        self.waiting_logged = true;
                    }
                } else if let Some(more) = self.io_log.check() {
                    warn!(path = %self.path.display(), error = %e, suppressed = more, "cannot open file");
                }
                return Ok(false);
            }
        };
        let (meta, head) = match file.metadata().and_then(|m| Ok((m, read_head(&file)?))) {
            Ok(v) => v,
            Err(e) => {
                if let Some(more) = self.io_log.check() {
                    warn!(path = %self.path.display(), error = %e, suppressed = more, "cannot read file");
                }
                return Ok(false);
            }
        };
        let mut tailed = Tailed {
            file,
            dev: meta.dev(),
            inode: meta.ino(),
            pos: 0,
            checked_size: meta.len(),
            head_len: head.len() as u64,
            head_hash: fnv1a(&head),
        };
        let path = self.path.display();
        tailed.pos = match self.resume.take() {
            Some(saved) if saved.dev == tailed.dev && saved.inode == tailed.inode => {
                let same_head = (saved.head_len as usize) <= head.len()
                    && fnv1a(&head[..saved.head_len as usize]) == saved.head_hash;
                if saved.offset <= meta.len() && same_head {
                    info!(%path, offset = saved.offset, "resuming at the saved offset");
                    saved.offset
                } else {
                    info!(%path, "file was truncated since the offset was saved; reading from the start");
                    0
                }
            }
            Some(_) => {
                info!(%path, "file was replaced since the offset was saved; reading from the start");
                0
            }
            None if self.start_at_applies && self.start_at == StartAt::End => meta.len(),
            None => 0,
        };
        debug!(%path, offset = tailed.pos, inode = tailed.inode, "opened file");
        if !self.opened_once {
            // Remember where we started, so a restart before the first ack
            // resumes here rather than applying `start_at` again.
            self.opened_once = true;
            self.acks.committed = Some(tailed.position(tailed.pos));
            self.acks.dirty = true;
        }
        self.start_at_applies = false;
        self.waiting_logged = false;
        self.moved_logged = false;
        self.file = Some(tailed);
        Ok(true)
    }

    /// Detects copytruncate: the file is shorter than what we read, or its
    /// first bytes are no longer those we saw.
    fn check_truncation(&mut self) -> Result<(), Stop> {
        let Some(t) = self.file.as_mut() else {
            return Ok(());
        };
        let size = match t.file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return Ok(()),
        };
        let mut truncated = size < t.pos;
        let mut head = None;
        if size != t.checked_size || truncated {
            if let Ok(bytes) = read_head(&t.file) {
                let old = t.head_len as usize;
                if old > bytes.len() || fnv1a(&bytes[..old]) != t.head_hash {
                    truncated = true;
                }
                head = Some((bytes.len() as u64, fnv1a(&bytes)));
            }
            t.checked_size = size;
        }
        if truncated {
            info!(path = %self.path.display(), offset = t.pos, size, "file was truncated; reading from the start");
            // Still under the old head: what is handed on here belongs to the
            // old content.
            self.end_file()?;
        }
        if let Some(t) = self.file.as_mut() {
            if truncated {
                t.pos = 0;
            }
            if let Some((len, hash)) = head {
                t.head_len = len;
                t.head_hash = hash;
            }
        }
        Ok(())
    }

    /// Sees whether the path now names another file; if so finishes the old
    /// one and opens the new. True when it switched.
    fn check_rotation(&mut self) -> Result<bool, Stop> {
        let Some(t) = self.file.as_ref() else {
            return Ok(false);
        };
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == t.dev && m.ino() == t.inode => Ok(false),
            Ok(_) => {
                // The writer may have added to the old file since we read it.
                self.read_available()?;
                self.end_file()?;
                info!(path = %self.path.display(), "file was rotated; following the new one");
                self.file = None;
                self.open()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.moved_logged {
                    debug!(path = %self.path.display(), "file was moved away; reading the old one until a new one appears");
                    self.moved_logged = true;
                }
                Ok(false)
            }
            Err(e) => {
                if let Some(more) = self.io_log.check() {
                    warn!(path = %self.path.display(), error = %e, suppressed = more, "cannot stat file");
                }
                Ok(false)
            }
        }
    }

    /// The content read so far ends here for good (rotation, truncation):
    /// delivers a last line without newline and hands the batch on.
    fn end_file(&mut self) -> Result<(), Stop> {
        let pos = self.file.as_ref().map_or(0, |t| t.pos);
        if let Some((frame, cut)) = finish_line(&self.line, self.line_overflow, self.max_line) {
            self.batch.push(frame, cut, None, Some(self.line_start));
            self.batch_end = pos;
        }
        self.line.clear();
        self.line_overflow = false;
        self.flush()
    }

    /// Reads what the file has past our position (up to a poll's worth).
    /// Returns the bytes read and whether the end of the file was reached.
    fn read_available(&mut self) -> Result<(u64, bool), Stop> {
        let mut total = 0u64;
        while total < READ_PER_POLL {
            if self.shutdown.is_shutdown() {
                return Err(Stop);
            }
            let Some(t) = self.file.as_ref() else {
                return Ok((total, true));
            };
            let base = t.pos;
            let n = match t.file.read_at(&mut self.read_buf, base) {
                Ok(0) => return Ok((total, true)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Some(more) = self.io_log.check() {
                        warn!(path = %self.path.display(), error = %e, suppressed = more, "cannot read file");
                    }
                    return Ok((total, true));
                }
            };
            let buf = std::mem::take(&mut self.read_buf);
            let split = self.split(&buf[..n], base);
            self.read_buf = buf;
            split?;
            if let Some(t) = self.file.as_mut() {
                t.pos = base + n as u64;
            }
            total += n as u64;
        }
        Ok((total, false))
    }

    /// Splits `chunk` (read at file offset `base`) into lines.
    fn split(&mut self, chunk: &[u8], base: u64) -> Result<(), Stop> {
        let mut start = 0;
        while let Some(p) = chunk[start..].iter().position(|&b| b == b'\n') {
            let end = start + p;
            let offset = base + end as u64 + 1;
            let piece = &chunk[start..end];
            if self.line.is_empty() && !self.line_overflow {
                if let Some((frame, cut)) = finish_line(piece, false, self.max_line) {
                    self.batch.push(frame, cut, None, Some(base + start as u64));
                }
            } else {
                self.append(piece);
                if let Some((frame, cut)) =
                    finish_line(&self.line, self.line_overflow, self.max_line)
                {
                    self.batch.push(frame, cut, None, Some(self.line_start));
                }
                self.line.clear();
                self.line_overflow = false;
            }
            self.batch_end = offset;
            start = end + 1;
            if self.batch.len() >= self.batch_size || self.batch.buf.len() >= BATCH_MAX_BYTES {
                self.flush()?;
            }
        }
        if self.line.is_empty() && !self.line_overflow && start < chunk.len() {
            self.line_start = base + start as u64;
        }
        self.append(&chunk[start..]);
        Ok(())
    }

    /// Adds to the partial line, keeping at most `max_line + 1` bytes (the one
    /// extra may be a CR before the newline). A longer line is delivered cut
    /// when its newline arrives, so its offset is the true end of the line.
    fn append(&mut self, bytes: &[u8]) {
        if self.line_overflow {
            return;
        }
        let room = (self.max_line + 1).saturating_sub(self.line.len());
        if bytes.len() > room {
            self.line.extend_from_slice(&bytes[..room]);
            self.line_overflow = true;
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// Hands the batch on, waiting while the pipeline is full.
    fn flush(&mut self) -> Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(tx) = self.tx.clone() else {
            return Err(Stop);
        };
        let Some(pos) = self.file.as_ref().map(|t| t.position(self.batch_end)) else {
            return Ok(());
        };
        let mut batch = std::mem::replace(&mut self.batch, FrameBatch::new(InputKind::File));
        batch.file = Some(self.key.clone());
        batch.ack = Some(self.acks.register(pos));
        // Counted before it goes (once sent, the batch is someone else's),
        // recorded once it went.
        let lines = batch.len() as u64;
        let cut = batch.frames.iter().filter(|f| f.truncated).count() as u64;
        loop {
            match tx.send_timeout(batch, SEND_WAIT) {
                Ok(()) => {
                    self.stats.record_received(lines, cut);
                    self.acks.drain(&self.path);
                    return Ok(());
                }
                Err(flume::SendTimeoutError::Timeout(b)) => {
                    // Unsent at shutdown: dropping it un-acks it, so its lines
                    // are read again next time.
                    if self.shutdown.is_shutdown() {
                        return Err(Stop);
                    }
                    batch = b;
                    self.acks.drain(&self.path);
                    self.maybe_persist(false);
                }
                Err(flume::SendTimeoutError::Disconnected(_)) => return Err(Stop),
            }
        }
    }

    /// Saves the committed position if it changed (at most once a second
    /// unless `now`).
    fn maybe_persist(&mut self, now: bool) {
        if !self.acks.dirty || (!now && self.acks.last_persist.elapsed() < PERSIST_EVERY) {
            return;
        }
        let Some(pos) = self.acks.committed else {
            return;
        };
        self.store.set(&self.key, pos);
        self.acks.last_persist = Instant::now();
        match self.store.persist() {
            Ok(()) => self.acks.dirty = false,
            Err(e) => {
                if let Some(more) = self.io_log.check() {
                    warn!(file = %self.store.file.display(), error = %e, suppressed = more, "cannot save file offsets");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64) -> Position {
        Position {
            dev: 1,
            inode: 2,
            offset,
            head_len: 0,
            head_hash: fnv1a(b""),
        }
    }

    #[test]
    fn commits_only_a_prefix_of_acknowledged_batches() {
        let mut t = AckTracker::new();
        let a = t.register(pos(10));
        let b = t.register(pos(20));
        let c = t.register(pos(30));
        c.done();
        t.drain(Path::new("x"));
        assert_eq!(t.committed, None);
        a.done();
        t.drain(Path::new("x"));
        assert_eq!(t.committed.map(|p| p.offset), Some(10));
        b.done();
        t.drain(Path::new("x"));
        assert_eq!(t.committed.map(|p| p.offset), Some(30));
        assert!(!t.outstanding());
    }

    #[test]
    fn a_dropped_ack_still_lets_earlier_batches_commit() {
        let mut t = AckTracker::new();
        let a = t.register(pos(10));
        let b = t.register(pos(20));
        drop(b);
        t.drain(Path::new("x"));
        assert!(t.outstanding(), "batch a may still be delivered");
        a.done();
        t.drain(Path::new("x"));
        assert_eq!(t.committed.map(|p| p.offset), Some(10));
        assert!(!t.outstanding());
    }

    #[test]
    fn a_dropped_ack_stops_commits() {
        let mut t = AckTracker::new();
        let a = t.register(pos(10));
        let b = t.register(pos(20));
        a.done();
        drop(b);
        let c = t.register(pos(30));
        c.done();
        t.drain(Path::new("x"));
        assert_eq!(t.committed.map(|p| p.offset), Some(10));
        assert!(t.stalled && !t.outstanding());
    }

    #[test]
    fn offsets_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::load(dir.path());
        assert_eq!(store.get("/a"), None);
        store.set("/a", pos(42));
        store.persist().unwrap();
        let again = OffsetStore::load(dir.path());
        assert_eq!(again.get("/a"), Some(pos(42)));
        assert!(!dir.path().join(format!("{STATE_FILE}.tmp")).exists());
    }

    #[test]
    fn the_offsets_file_is_readable_by_its_owner_only() {
        // The usual umask, under which a plain create gives 0644.
        // SAFETY: umask only swaps the process's creation mask.
        unsafe { libc::umask(0o022) };
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::load(dir.path());
        store.set("/a", pos(42));
        store.persist().unwrap();
        let mode = std::fs::metadata(dir.path().join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_state_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        assert_eq!(OffsetStore::load(dir.path()).get("/a"), None);
    }

    #[test]
    fn fnv_is_the_reference_function() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
