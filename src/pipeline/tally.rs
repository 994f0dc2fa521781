//! What the pipeline holds, per input, and what the parse workers have
//! counted so far — so a stop that runs out of time can say truthfully what
//! it abandons (and the stop summary need not wait for threads that are
//! stuck behind an output that is down).
//!
//! Every batch a parse worker takes is [`Tally::track`]ed: its frames count
//! as in flight until its [`Ack`] is done (the output or the disk buffer has
//! them) or dropped (whoever dropped it counted why). What is still in flight
//! at the drain deadline is abandoned: a tailed file reads it again after the
//! restart (its offsets were not committed), a RELP sender resends it (it was
//! not answered), and UDP, TCP and TLS events are lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::decode::DecodeStats;
use crate::pipeline::{Ack, FrameBatch, InputKind};

/// Every kind of input, in the order of [`Tally`]'s counters.
const KINDS: [InputKind; 6] = [
    InputKind::Udp,
    InputKind::Tcp,
    InputKind::Tls,
    InputKind::Relp,
    InputKind::File,
    InputKind::Stdin,
];

fn slot(kind: InputKind) -> usize {
    KINDS.iter().position(|&k| k == kind).unwrap_or(0)
}

/// The pipeline's running count of frames in flight per input, and of what
/// each parse worker has decoded.
#[derive(Debug, Default)]
pub struct Tally {
    in_flight: [AtomicU64; KINDS.len()],
    parsed: Mutex<Vec<DecodeStats>>,
}

/// What happens to frames abandoned at the deadline, by where they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Abandoned {
    /// From tailed files: read again after the restart.
    pub reread: u64,
    /// From RELP sessions: unanswered, so the senders resend them.
    pub resent: u64,
    /// From UDP, TCP, TLS (and stdin): gone.
    pub lost: u64,
}

impl Tally {
    /// Counts `batch` in flight until its ack is done or dropped.
    pub fn track(self: &Arc<Self>, mut batch: FrameBatch) -> FrameBatch {
        let n = batch.len() as u64;
        if n == 0 {
            return batch;
        }
        let i = slot(batch.input);
        self.in_flight[i].fetch_add(n, Ordering::Relaxed);
        let held = Held {
            tally: self.clone(),
            i,
            n,
            inner: batch.ack.take(),
        };
        batch.ack = Some(Ack::new(move || held.done()));
        batch
    }

    /// Frames of `batches` that were never taken by a parse worker, added to
    /// the count (they are abandoned with the rest).
    pub fn add_untaken(&self, batches: impl IntoIterator<Item = FrameBatch>) {
        for b in batches {
            self.in_flight[slot(b.input)].fetch_add(b.len() as u64, Ordering::Relaxed);
            // Not an ack: dropping the batch here must not count it twice.
            if let Some(ack) = b.ack {
                drop(ack);
            }
        }
    }

    /// The frames in flight now, per input (inputs with none left out).
    pub fn in_flight(&self) -> Vec<(InputKind, u64)> {
        KINDS
            .iter()
            .zip(&self.in_flight)
            .map(|(&k, c)| (k, c.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// What is in flight now, by what becomes of it.
    pub fn abandoned(&self) -> Abandoned {
        let mut a = Abandoned::default();
        for (kind, n) in self.in_flight() {
            match kind {
                InputKind::File => a.reread += n,
                InputKind::Relp => a.resent += n,
                _ => a.lost += n,
            }
        }
        a
    }

    /// Parse worker `worker`'s counters so far.
    pub fn note_parsed(&self, worker: usize, stats: &DecodeStats) {
        let mut all = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() <= worker {
            all.resize(worker + 1, DecodeStats::default());
        }
        all[worker] = stats.clone();
    }

    /// Every parse worker's counters so far, added up.
    pub fn parsed(&self) -> DecodeStats {
        let all = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        let mut sum = DecodeStats::default();
        for s in all.iter() {
            sum.add(s);
        }
        sum
    }
}

/// A tracked batch's share of the count, given back when its ack is done or
/// dropped.
struct Held {
    tally: Arc<Tally>,
    i: usize,
    n: u64,
    inner: Option<Ack>,
}

impl Held {
    fn done(mut self) {
        if let Some(ack) = self.inner.take() {
            ack.done();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.tally.in_flight[self.i].fetch_sub(self.n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn batch(kind: InputKind, n: usize) -> FrameBatch {
        let mut b = FrameBatch::new(kind);
        for _ in 0..n {
            b.push(b"x", false, None, None);
        }
        b
    }

    #[test]
    fn a_batch_is_in_flight_until_its_ack_is_done_or_dropped_and_the_input_ack_still_fires() {
        let t = Arc::new(Tally::default());
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let mut b = batch(InputKind::File, 3);
        b.ack = Some(Ack::new(move || f.store(true, Ordering::SeqCst)));
        let b = t.track(b);
        let dropped = t.track(batch(InputKind::Tcp, 2));
        let kept = t.track(batch(InputKind::Relp, 4));
        assert_eq!(
            t.in_flight(),
            vec![
                (InputKind::Tcp, 2),
                (InputKind::Relp, 4),
                (InputKind::File, 3)
            ]
        );
        b.ack.unwrap().done();
        assert!(fired.load(Ordering::SeqCst));
        drop(dropped);
        assert_eq!(
            t.abandoned(),
            Abandoned {
                reread: 0,
                resent: 4,
                lost: 0
            }
        );
        t.add_untaken([batch(InputKind::Udp, 5)]);
        assert_eq!(t.abandoned().lost, 5);
        drop(kept);
    }

    #[test]
    fn parsed_adds_up_the_workers_latest_counts() {
        let t = Tally::default();
        let s = |lines| DecodeStats {
            lines,
            ..DecodeStats::default()
        };
        t.note_parsed(1, &s(5));
        t.note_parsed(0, &s(2));
        t.note_parsed(1, &s(7));
        assert_eq!(t.parsed().lines, 9);
    }
}
