//! One batch for many connections: a stream input's connections hand on what
//! each read gave them, and the merger here gathers those small batches into
//! full ones for the parse workers.
//!
//! Why: a collector with hundreds of resolvers each sending a few lines a
//! second gets a few lines per read. Batching per connection would hand the
//! parse workers one tiny batch per connection and `batch_timeout_ms` (a
//! thread wake-up in every stage for each), and arm a timer per connection.
//! Merged, the stages see one batch of up to `batch_size` frames at most every
//! `batch_timeout_ms`, whatever the number of connections.
//!
//! Guarantees are those of a connection's own batches: a frame waits at most
//! `batch_timeout_ms` here; frames of one connection stay in order (one
//! merger, FIFO channels); back-pressure carries through, since the merger's
//! own channel is small and bounded ([`MERGE_CHANNEL`]) and it stops taking
//! batches while the pipeline is full, so the connections' sends wait and
//! they stop reading; acknowledgements of merged batches all fire once the
//! merged batch is delivered (and none if it is not). When every sender is
//! gone, the merger hands on what it holds and ends.

use std::time::Duration;

use tokio::time::Instant;

use super::stats::InputStats;
use super::BATCH_MAX_BYTES;
use crate::pipeline::{Ack, Frame, FrameBatch, FrameSender, InputKind};

/// Small batches the merger's channel holds before a connection's send waits.
pub(crate) const MERGE_CHANNEL: usize = 32;

/// Starts the merger for one input on the current runtime: returns the sender
/// the connections hand their batches to, and the task, which ends once every
/// clone of that sender is dropped and what it held is handed on to `tx`.
pub(crate) fn spawn(
    kind: InputKind,
    batch_size: usize,
    batch_timeout: Duration,
    stats: InputStats,
    tx: FrameSender,
) -> (FrameSender, tokio::task::JoinHandle<()>) {
    let (merge_tx, merge_rx) = flume::bounded(MERGE_CHANNEL);
    let merger = Merger {
        kind,
        batch_size: batch_size.max(1),
        batch_timeout,
        stats,
        tx,
        current: FrameBatch::new(kind),
        acks: Vec::new(),
    };
    (merge_tx, tokio::spawn(merger.run(merge_rx)))
}

struct Merger {
    kind: InputKind,
    batch_size: usize,
    batch_timeout: Duration,
    stats: InputStats,
    tx: FrameSender,
    /// The batch being filled.
    current: FrameBatch,
    /// The acknowledgements of the small batches merged into `current`.
    acks: Vec<Ack>,
}

impl Merger {
    async fn run(mut self, rx: flume::Receiver<FrameBatch>) {
        // One timer, armed when `current` gets its first frame.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed = false;
        loop {
            tokio::select! {
                biased;
                got = rx.recv_async() => {
                    let Ok(batch) = got else { break };
                    let mut next = Some(batch);
                    // Take what else is queued without going back to sleep.
                    while let Some(batch) = next.take().or_else(|| rx.try_recv().ok()) {
                        for full in self.add(batch).into_iter().flatten() {
                            if !self.send(full).await {
                                return;
                            }
                        }
                    }
                    if self.current.is_empty() {
                        armed = false;
                    } else if !armed {
                        timer.as_mut().reset(Instant::now() + self.batch_timeout);
                        armed = true;
                    }
                }
                _ = &mut timer, if armed => {
                    armed = false;
                    let batch = self.take();
                    if !self.send(batch).await {
                        return;
                    }
                }
            }
        }
        let batch = self.take();
        if !batch.is_empty() || batch.ack.is_some() {
            self.send(batch).await;
        }
    }

    /// Adds a small batch; returns the full batches to hand on, in order: the
    /// current one when this batch would take it past `batch_size`, and the
    /// current one again when it is full now.
    fn add(&mut self, mut batch: FrameBatch) -> [Option<FrameBatch>; 2] {
        let size = self.batch_size;
        let full = |b: &FrameBatch| b.len() >= size || b.buf.len() >= BATCH_MAX_BYTES;
        let mut out = [None, None];
        if !self.current.is_empty()
            && (self.current.len() + batch.len() > size
                || self.current.buf.len() + batch.buf.len() > BATCH_MAX_BYTES)
        {
            out[0] = Some(self.take());
        }
        if self.current.is_empty() && self.acks.is_empty() && full(&batch) {
            // Full by itself (a fast sender's read): on as it is, no copy.
            out[1] = Some(batch);
            return out;
        }
        let offset = self.current.buf.len();
        self.current.buf.extend_from_slice(&batch.buf);
        self.current
            .frames
            .extend(batch.frames.drain(..).map(|f| Frame {
                start: f.start + offset,
                end: f.end + offset,
                ..f
            }));
        self.acks.extend(batch.ack.take());
        if full(&self.current) {
            out[1] = Some(self.take());
        }
        out
    }

    /// The current batch, with one acknowledgement for all it merged.
    fn take(&mut self) -> FrameBatch {
        let mut batch = std::mem::replace(&mut self.current, FrameBatch::new(self.kind));
        let acks = std::mem::take(&mut self.acks);
        if !acks.is_empty() {
            batch.ack = Some(Ack::new(move || acks.into_iter().for_each(Ack::done)));
        }
        batch
    }

    /// Hands one batch on, waiting while the pipeline is full. False when the
    /// pipeline is gone (what was lost is counted).
    fn send(&self, batch: FrameBatch) -> impl std::future::Future<Output = bool> + Send {
        send(self.tx.clone(), self.stats.clone(), batch)
    }
}

async fn send(tx: FrameSender, stats: InputStats, batch: FrameBatch) -> bool {
    match tx.send_async(batch).await {
        Ok(()) => true,
        Err(flume::SendError(lost)) => {
            stats.record_dropped(lost.len() as u64, "pipeline_closed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn small(lines: &[&str], peer: u16) -> FrameBatch {
        let mut b = FrameBatch::new(InputKind::Tcp);
        for l in lines {
            b.push(
                l.as_bytes(),
                false,
                Some(([127, 0, 0, 1], peer).into()),
                None,
            );
        }
        b
    }

    fn texts(b: &FrameBatch) -> Vec<String> {
        b.frames
            .iter()
            .map(|f| String::from_utf8(b.bytes(f).to_vec()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn merges_small_batches_in_order_and_keeps_each_frames_peer() {
        let (tx, rx) = flume::bounded(8);
        let stats = InputStats::new(InputKind::Tcp);
        let (mtx, task) = spawn(InputKind::Tcp, 4, Duration::from_secs(60), stats, tx);
        mtx.send_async(small(&["a1", "a2"], 1)).await.unwrap();
        mtx.send_async(small(&["b1"], 2)).await.unwrap();
        mtx.send_async(small(&["a3", "b2"], 1)).await.unwrap();
        mtx.send_async(small(&["c1"], 3)).await.unwrap();
        drop(mtx);
        task.await.unwrap();
        let out: Vec<FrameBatch> = rx.drain().collect();
        // At most four frames a batch: a small batch that does not fit starts
        // the next; the last goes out when the senders are gone.
        assert_eq!(out.len(), 2);
        assert_eq!(texts(&out[0]), ["a1", "a2", "b1"]);
        assert_eq!(texts(&out[1]), ["a3", "b2", "c1"]);
        let peers: Vec<u16> = out[0]
            .frames
            .iter()
            .map(|f| f.peer.unwrap().port())
            .collect();
        assert_eq!(peers, [1, 1, 2]);
    }

    #[tokio::test]
    async fn a_partial_batch_goes_out_after_the_timeout() {
        let (tx, rx) = flume::bounded(8);
        let stats = InputStats::new(InputKind::Tcp);
        let (mtx, task) = spawn(InputKind::Tcp, 512, Duration::from_millis(5), stats, tx);
        mtx.send_async(small(&["lone"], 1)).await.unwrap();
        // The sender is still open: only the timer can hand it on.
        let got = tokio::time::timeout(Duration::from_secs(30), rx.recv_async())
            .await
            .expect("the partial batch was not handed on")
            .unwrap();
        assert_eq!(texts(&got), ["lone"]);
        drop(mtx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn merged_acks_fire_once_the_merged_batch_is_done_and_not_before() {
        let (tx, rx) = flume::bounded(8);
        let stats = InputStats::new(InputKind::Tcp);
        let (mtx, task) = spawn(InputKind::Tcp, 512, Duration::from_secs(60), stats, tx);
        let fired = Arc::new(AtomicUsize::new(0));
        for i in 0..3 {
            let mut b = small(&["x"], i);
            let f = fired.clone();
            b.ack = Some(Ack::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            }));
            mtx.send_async(b).await.unwrap();
        }
        drop(mtx);
        task.await.unwrap();
        let mut out: Vec<FrameBatch> = rx.drain().collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 3);
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        out[0].ack.take().unwrap().done();
        assert_eq!(fired.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_full_pipeline_stops_the_merger_taking_batches() {
        // The pipeline holds one batch and nobody reads it.
        let (tx, rx) = flume::bounded(1);
        let stats = InputStats::new(InputKind::Tcp);
        let (mtx, task) = spawn(InputKind::Tcp, 1, Duration::from_secs(60), stats, tx);
        // Each small batch is full: one in the pipeline, one in the merger's
        // hands, MERGE_CHANNEL queued; the next send cannot complete.
        for i in 0..(MERGE_CHANNEL + 2) {
            tokio::time::timeout(
                Duration::from_secs(30),
                mtx.send_async(small(&["f"], i as u16)),
            )
            .await
            .expect("the merger took fewer batches than it holds")
            .unwrap();
        }
        let blocked = tokio::time::timeout(
            Duration::from_millis(200),
            mtx.send_async(small(&["over"], 9)),
        )
        .await;
        assert!(
            blocked.is_err(),
            "a send went through while the pipeline was full"
        );
        // Reading the pipeline lets everything through, nothing lost.
        drop(mtx);
        let mut frames = 0;
        while let Ok(b) = rx.recv_async().await {
            frames += b.len();
        }
        task.await.unwrap();
        assert_eq!(frames, MERGE_CHANNEL + 2);
    }

    #[tokio::test]
    async fn a_closed_pipeline_counts_what_was_lost() {
        let (tx, rx) = flume::bounded(1);
        drop(rx);
        let stats = InputStats::new(InputKind::Tcp);
        let (mtx, task) = spawn(
            InputKind::Tcp,
            2,
            Duration::from_secs(60),
            stats.clone(),
            tx,
        );
        mtx.send_async(small(&["a", "b"], 1)).await.unwrap();
        task.await.unwrap();
        assert_eq!(stats.dropped(), 2);
    }
}
