//! The counters every input keeps, recorded in one place: each is emitted as a
//! `metrics` counter or gauge and also kept in an [`InputStats`] handle that
//! callers (tests, the health endpoint) can read without a metrics recorder.
//! Also [`LogThrottle`], which keeps a flood of drops or rejected connections
//! from turning into a flood of log lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pipeline::{FrameBatch, InputKind};

/// A cheap, cloneable view of one input's counters.
#[derive(Debug, Clone)]
pub struct InputStats {
    kind: InputKind,
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    dropped: AtomicU64,
    truncated: AtomicU64,
    framing_errors: AtomicU64,
    skipped: AtomicU64,
    connections_active: AtomicU64,
    connections_rejected: AtomicU64,
    connections_evicted: AtomicU64,
    handshake_failures: AtomicU64,
}

impl InputStats {
    /// Fresh counters for an input of `kind`.
    pub fn new(kind: InputKind) -> Self {
        InputStats {
            kind,
            inner: Arc::default(),
        }
    }

    /// The input these counters belong to.
    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// Frames received (including any dropped afterwards).
    pub fn received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// Frames dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Frames cut at the maximum frame length.
    pub fn truncated(&self) -> u64 {
        self.inner.truncated.load(Ordering::Relaxed)
    }

    /// Connections whose octet counting was invalid and which fell back to
    /// LF framing.
    pub fn framing_errors(&self) -> u64 {
        self.inner.framing_errors.load(Ordering::Relaxed)
    }

    /// Frames skipped because they carry no message (empty lines), whatever
    /// the reason.
    pub fn skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections_active(&self) -> u64 {
        self.inner.connections_active.load(Ordering::Relaxed)
    }

    /// Connections closed at once because their source had its share.
    pub fn connections_rejected(&self) -> u64 {
        self.inner.connections_rejected.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for a new one.
    pub fn connections_evicted(&self) -> u64 {
        self.inner.connections_evicted.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed or timed out.
    pub fn handshake_failures(&self) -> u64 {
        self.inner.handshake_failures.load(Ordering::Relaxed)
    }

    /// Counts the frames of a batch about to be handed on.
    pub(crate) fn record_batch(&self, batch: &FrameBatch) {
        let n = batch.frames.len() as u64;
        let cut = batch.frames.iter().filter(|f| f.truncated).count() as u64;
        self.record_received(n, cut);
    }

    /// Counts `n` frames received, `cut` of them truncated.
    pub(crate) fn record_received(&self, n: u64, cut: u64) {
        if n == 0 {
            return;
        }
        self.inner.received.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("dnsenrich_events_received_total", "input" => self.kind.as_str())
            .increment(n);
        if cut > 0 {
            self.inner.truncated.fetch_add(cut, Ordering::Relaxed);
            metrics::counter!("dnsenrich_frames_truncated_total", "input" => self.kind.as_str())
                .increment(cut);
        }
    }

    /// Counts `n` frames dropped for `reason` (a metrics label).
    pub(crate) fn record_dropped(&self, n: u64, reason: &'static str) {
        self.inner.dropped.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(
            "dnsenrich_events_dropped_total",
            "input" => self.kind.as_str(),
            "reason" => reason
        )
        .increment(n);
    }

    /// Counts `n` frames skipped for `reason` (a metrics label): nothing of
    /// them becomes an event, by design rather than by loss.
    pub(crate) fn record_skipped(&self, n: u64, reason: &'static str) {
        if n == 0 {
            return;
        }
        self.inner.skipped.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(
            "dnsenrich_frames_skipped_total",
            "input" => self.kind.as_str(),
            "reason" => reason
        )
        .increment(n);
    }

    pub(crate) fn record_framing_error(&self) {
        self.inner.framing_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dnsenrich_framing_errors_total", "input" => self.kind.as_str())
            .increment(1);
    }

    pub(crate) fn record_rejected(&self, reason: &'static str) {
        self.inner
            .connections_rejected
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!(
            "dnsenrich_connections_rejected_total",
            "input" => self.kind.as_str(),
            "reason" => reason
        )
        .increment(1);
    }

    pub(crate) fn record_evicted(&self, reason: &'static str) {
        self.inner
            .connections_evicted
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!(
            "dnsenrich_connections_evicted_total",
            "input" => self.kind.as_str(),
            "reason" => reason
        )
        .increment(1);
    }

    pub(crate) fn record_handshake_failure(&self) {
        self.inner
            .handshake_failures
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dnsenrich_tls_handshake_failures_total").increment(1);
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub(crate) fn connection_opened(&self) -> ConnectionGuard {
        self.inner
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("dnsenrich_connections_active", "input" => self.kind.as_str())
            .increment(1.0);
        ConnectionGuard(self.clone())
    }
}

/// Keeps a connection counted as active while it lives.
#[derive(Debug)]
pub(crate) struct ConnectionGuard(InputStats);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let s = &self.0;
        s.inner.connections_active.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("dnsenrich_connections_active", "input" => s.kind.as_str()).decrement(1.0);
    }
}

/// Lets a repeated warning through at most once per interval and counts the
/// ones held back, so the next line that goes out can say how many there were.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            state: Mutex::default(),
        }
    }

    /// One warning per second.
    pub(crate) fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// `Some(held back since the last one)` when a line may be logged now.
    pub(crate) fn check(&self) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match st.last {
            Some(t) if now.duration_since(t) < self.interval => {
                st.suppressed += 1;
                None
            }
            _ => {
                st.last = Some(now);
                Some(std::mem::take(&mut st.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_counts_frames_and_truncations() {
        let s = InputStats::new(InputKind::Tcp);
        let mut b = FrameBatch::new(InputKind::Tcp);
        b.push(b"a", false, None, None);
        b.push(b"b", true, None, None);
        s.record_batch(&b);
        s.record_dropped(2, "pipeline_full");
        assert_eq!((s.received(), s.truncated(), s.dropped()), (2, 1, 2));
    }

    #[test]
    fn guard_counts_open_connections() {
        let s = InputStats::new(InputKind::Tls);
        let g = s.connection_opened();
        let clone = s.clone();
        assert_eq!(clone.connections_active(), 1);
        drop(g);
        assert_eq!(s.connections_active(), 0);
    }

    #[test]
    fn throttle_holds_back_repeats_and_counts_them() {
        let t = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(t.check(), Some(0));
        assert_eq!(t.check(), None);
        assert_eq!(t.check(), None);
        let t = LogThrottle::new(Duration::ZERO);
        assert_eq!(t.check(), Some(0));
        assert_eq!(t.check(), Some(0));
    }
}
