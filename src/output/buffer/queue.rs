//! The running queue: appending and syncing on the writer's side, reading and
//! acknowledging on the output's side, and deleting segments once settled.
//!
//! File work (writes, fsyncs, reads) runs on Tokio's blocking pool, so an
//! fsync never holds the async runtime's only thread.

use std::sync::{Arc, Weak};

use tracing::warn;

use super::format::{self, HEADER_LEN};
use super::{
    create_segment, files, lock, now_ms, Appended, BufferError, BufferReader, BufferStats,
    BufferWriter, Position, Segment, Shared, State, SyncPolicy, WhenFull,
};
use crate::pipeline::{Ack, EncodedBatch};

/// The outcome of one attempt to append under the lock.
enum Attempt {
    /// Written; these acks may fire now (already synced).
    Written {
        fire: Vec<super::Ack>,
        schedule_sync: bool,
    },
    NoSpace {
        acks: Vec<super::Ack>,
    },
}

impl Shared {
    /// Whether a record of `len` bytes fits, rolling a fully acknowledged
    /// active segment away first if that makes room.
    fn make_room(&self, st: &mut State, len: u64) -> Result<bool, BufferError> {
        // Counting a header too keeps a roll from going past `max_bytes`.
        let need = len + HEADER_LEN;
        let fits =
            |st: &State| st.stats.bytes + need <= self.opts.max_bytes || st.stats.records == 0;
        if fits(st) {
            return Ok(true);
        }
        let active = &st.segments[&st.active_id];
        if active.unacked.is_empty() && active.len > HEADER_LEN {
            self.roll(st)?;
        }
        Ok(fits(st))
    }

    /// Closes the active segment (synced) and starts the next one; the old
    /// one is deleted right away if nothing in it is left to send.
    fn roll(&self, st: &mut State) -> Result<(), BufferError> {
        let old = st.active_id;
        let path = files::segment_path(&self.dir, old);
        st.active
            .sync_data()
            .map_err(|e| BufferError::io("sync", path, e))?;
        let file = create_segment(&self.dir, old + 1)?;
        st.segments.insert(
            old + 1,
            Segment {
                len: HEADER_LEN,
                unacked: Default::default(),
            },
        );
        st.active_id = old + 1;
        st.active = Arc::new(file);
        st.unsynced = 0;
        if st.segments[&old].unacked.is_empty() {
            self.remove_segment(st, old);
        }
        st.refresh_levels();
        Ok(())
    }

    fn remove_segment(&self, st: &mut State, id: u64) {
        if let Some(seg) = st.segments.remove(&id) {
            st.stats.bytes -= seg.len;
        }
        let path = files::segment_path(&self.dir, id);
        // A file that cannot be removed is recovered (and removed) next open.
        if let Err(e) = std::fs::remove_file(&path) {
            warn!(segment = %path.display(), error = %e, "disk buffer: cannot remove a settled segment");
        }
        st.acked_dirty = true;
        self.space.notify_waiters();
    }

    /// One attempt to append `record` (blocking: runs on the blocking pool).
    fn try_append(
        &self,
        record: &[u8],
        meta: format::RecordMeta,
        acks: Vec<super::Ack>,
    ) -> Result<Attempt, BufferError> {
        let mut st = lock(&self.state);
        if st.writers_closed {
            return Err(BufferError::Closed);
        }
        let len = record.len() as u64;
        if !self.make_room(&mut st, len)? {
            return Ok(Attempt::NoSpace { acks });
        }
        let active_len = st.segments[&st.active_id].len;
        if active_len + len > self.opts.segment_bytes && active_len > HEADER_LEN {
            self.roll(&mut st)?;
        }
        let id = st.active_id;
        let path = files::segment_path(&self.dir, id);
        let offset = st.segments.get(&id).ok_or(BufferError::Closed)?.len;
        if let Err(e) = std::io::Write::write_all(&mut &*st.active, record) {
            // Cut off a partial write, so the offsets kept in memory stay
            // those of the file and the next record starts clean.
            let _ = st.active.set_len(offset);
            return Err(BufferError::io("write", path, e));
        }
        let seg = st.segments.get_mut(&id).ok_or(BufferError::Closed)?;
        seg.len += len;
        seg.unacked.insert(offset, meta);
        st.stats.bytes += len;
        st.stats.unacked_bytes += len;
        st.stats.records += 1;
        st.stats.documents += u64::from(meta.docs);
        st.stats.oldest_appended_ms.get_or_insert(meta.appended_ms);
        st.unsynced += len;
        self.readable.notify_waiters();
        if self.opts.sync == SyncPolicy::Always
            || st.unsynced >= self.opts.sync_bytes
            || self.runtime.is_none()
        {
            st.active
                .sync_data()
                .map_err(|e| BufferError::io("sync", path, e))?;
            st.unsynced = 0;
            let mut fire = std::mem::take(&mut st.pending);
            fire.extend(acks);
            return Ok(Attempt::Written {
                fire,
                schedule_sync: false,
            });
        }
        st.pending.extend(acks);
        let schedule_sync = !std::mem::replace(&mut st.sync_scheduled, true);
        Ok(Attempt::Written {
            fire: Vec::new(),
            schedule_sync,
        })
    }

    /// Syncs the active segment, fires the acks of what it covers and records
    /// the acked position (blocking).
    fn sync_now(&self) -> Result<(), BufferError> {
        let (file, pending) = {
            let mut st = lock(&self.state);
            st.sync_scheduled = false;
            st.unsynced = 0;
            (st.active.clone(), std::mem::take(&mut st.pending))
        };
        // Acks taken above belong to writes already in this file (or in older
        // segments, synced when they were rolled).
        file.sync_data()
            .map_err(|e| BufferError::io("sync", self.dir.clone(), e))?;
        for ack in pending {
            ack.done();
        }
        self.write_acked(false)
    }

    /// Writes the acked position if it moved since last time, or if `force`.
    pub(super) fn write_acked(&self, force: bool) -> Result<(), BufferError> {
        let _serial = self.acked_file.lock().unwrap_or_else(|p| p.into_inner());
        let pos = {
            let mut st = lock(&self.state);
            if !std::mem::replace(&mut st.acked_dirty, false) && !force {
                return Ok(());
            }
            st.low_water()
        };
        files::write_acked(&self.dir, pos)
            .map_err(|e| BufferError::io("write", self.dir.join(files::ACKED_FILE), e))
    }

    /// Arms a timer that syncs after the interval; holds the buffer weakly so
    /// a dropped buffer is not kept open by it.
    fn schedule_sync(self: &Arc<Self>) {
        let Some(rt) = &self.runtime else { return };
        let weak: Weak<Shared> = Arc::downgrade(self);
        let interval = self.opts.sync_interval;
        rt.spawn(async move {
            tokio::time::sleep(interval).await;
            let run = move || weak.upgrade().map(|s| s.sync_now());
            match tokio::task::spawn_blocking(run).await {
                Ok(Some(Err(e))) => warn!(error = %e, "disk buffer: sync failed"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "disk buffer: sync task failed"),
            }
        });
    }

    /// Marks the record at `pos` acknowledged; deletes its segment if that
    /// was the last record left in a segment no longer written to.
    fn ack(self: &Arc<Self>, pos: Position) {
        let schedule = {
            let mut st = lock(&self.state);
            let Some(seg) = st.segments.get_mut(&pos.segment) else {
                return;
            };
            let Some(meta) = seg.unacked.remove(&pos.offset) else {
                return;
            };
            let emptied = seg.unacked.is_empty();
            st.stats.records -= 1;
            st.stats.unacked_bytes = st.stats.unacked_bytes.saturating_sub(meta.frame_len);
            st.stats.documents -= u64::from(meta.docs);
            st.acked_dirty = true;
            if emptied && pos.segment != st.active_id {
                self.remove_segment(&mut st, pos.segment);
            } else if emptied {
                // A blocked writer can now roll this segment away.
                self.space.notify_waiters();
            }
            st.refresh_oldest();
            !std::mem::replace(&mut st.sync_scheduled, true)
        };
        if schedule {
            self.schedule_sync();
        }
    }

    /// Marks a record that could not be read back as skipped.
    fn skip_unreadable(self: &Arc<Self>, pos: Position, len: u64) {
        warn!(segment = %files::segment_path(&self.dir, pos.segment).display(),
            start = pos.offset, end = pos.offset + len,
            "disk buffer: a record changed on disk since it was checked; skipped");
        lock(&self.state).stats.corrupt_records += 1;
        self.ack(pos);
    }
}

impl BufferWriter {
    /// Appends `batch` as one record. Its acks fire once the record is synced
    /// (at once with `sync = "always"`). When the buffer is full this waits
    /// (`block`) or refuses the batch (`drop_newest`). The file work runs on
    /// the blocking pool: dropping this future once it has started may still
    /// leave the batch written (and its acks fired).
    pub async fn append(&self, mut batch: EncodedBatch) -> Result<Appended, BufferError> {
        let mut record = Vec::new();
        let appended_ms = now_ms();
        format::encode_record(&batch, appended_ms, &mut record)?;
        let meta = format::RecordMeta {
            frame_len: record.len() as u64,
            docs: batch.ends.len() as u32,
            appended_ms,
        };
        let record = Arc::new(record);
        let mut acks = std::mem::take(&mut batch.acks);
        loop {
            let space = self.shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            let (shared, rec) = (self.shared.clone(), record.clone());
            let attempt = tokio::task::spawn_blocking(move || shared.try_append(&rec, meta, acks))
                .await
                .map_err(|_| BufferError::Closed)??;
            match attempt {
                Attempt::Written {
                    fire,
                    schedule_sync,
                } => {
                    fire.into_iter().for_each(Ack::done);
                    if schedule_sync {
                        self.shared.schedule_sync();
                    }
                    return Ok(Appended::Stored);
                }
                Attempt::NoSpace { acks: back }
                    if self.shared.opts.when_full == WhenFull::Block =>
                {
                    acks = back;
                    space.await;
                }
                Attempt::NoSpace { .. } => return Ok(self.count_drop(meta.docs)),
            }
        }
    }

    fn count_drop(&self, docs: u32) -> Appended {
        let mut st = lock(&self.shared.state);
        st.stats.dropped_batches += 1;
        st.stats.dropped_documents += u64::from(docs);
        super::metrics::count_drop(docs);
        Appended::Dropped {
            documents: docs as usize,
        }
    }

    /// Syncs what was written, fires the acks waiting for it, records the
    /// acked position, and refuses later appends from every clone. A reader
    /// then ends once it has read everything; the output need not be waited
    /// for, since what it has not acknowledged stays on disk.
    pub async fn close(&self) -> Result<(), BufferError> {
        lock(&self.shared.state).writers_closed = true;
        self.shared.readable.notify_waiters();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            shared.sync_now().and_then(|()| shared.write_acked(true))
        })
        .await
        .map_err(|_| BufferError::Closed)?
    }

    pub fn stats(&self) -> BufferStats {
        lock(&self.shared.state).stats
    }
}

impl BufferReader {
    /// The oldest record not yet read, as a batch whose one ack settles the
    /// record in the buffer. Waits for one to be appended; `None` once the
    /// writers are closed and everything has been read. Dropping the ack
    /// without firing it leaves the record to be sent again after a restart.
    pub async fn next(&mut self) -> Option<EncodedBatch> {
        let shared = self.shared.clone();
        loop {
            let readable = shared.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            let next = {
                let mut st = lock(&self.shared.state);
                match st.next_unread() {
                    Some(n) => Some(n),
                    None if st.writers_closed => return None,
                    None => None,
                }
            };
            let Some((pos, meta)) = next else {
                readable.await;
                continue;
            };
            match self.read_at(pos, meta.frame_len).await {
                Some(mut batch) => {
                    let weak = Arc::downgrade(&self.shared);
                    batch.acks.push(Ack::new(move || {
                        if let Some(s) = weak.upgrade() {
                            s.ack(pos);
                        }
                    }));
                    return Some(batch);
                }
                None => self.shared.skip_unreadable(pos, meta.frame_len),
            }
        }
    }

    /// Hands every record to `tx`, the channel an output reads (see
    /// [`crate::output::Output::run`]), until the writers are closed and all is
    /// read, or the channel is closed. An output then runs unchanged behind
    /// the buffer: its acks settle the records.
    pub async fn forward(mut self, tx: flume::Sender<EncodedBatch>) {
        while let Some(batch) = self.next().await {
            if tx.send_async(batch).await.is_err() {
                // The output is gone; its unsent batch's ack is dropped, so
                // the record stays for the next start.
                return;
            }
        }
    }

    /// Reads and checks the record at `pos` (on the blocking pool).
    async fn read_at(&mut self, pos: Position, len: u64) -> Option<EncodedBatch> {
        let file = match &self.file {
            Some((id, f)) if *id == pos.segment => f.clone(),
            _ => {
                let path = files::segment_path(&self.shared.dir, pos.segment);
                let f = Arc::new(std::fs::File::open(&path).ok()?);
                self.file = Some((pos.segment, f.clone()));
                f
            }
        };
        let read = move || {
            let mut buf = vec![0u8; len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, pos.offset).ok()?;
            format::decode_record(&buf).map(|(b, _)| b)
        };
        tokio::task::spawn_blocking(read).await.ok().flatten()
    }
}
