//! The two signals that reach running tasks from outside the data flow.
//!
//! Shutdown: every long-running task holds a [`Shutdown`] and stops taking new
//! work once [`Shutdown::recv`] returns; draining what is already in the
//! pipeline is the job of the channels (see [`crate::pipeline`]).
//!
//! Reopen: an output holds a [`ReopenSignal`] and closes and reopens its files
//! when SIGHUP fires it, after logrotate has moved them away.

use tokio::sync::watch;

/// The controlling side: `trigger` tells every [`Shutdown`] to stop.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A task's handle on the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and the first handle.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Signals every handle.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    /// Another handle.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether shutdown has been signalled, or the trigger is gone (as with
    /// [`Shutdown::recv`]): a thread polling this must not outlive it.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Waits for the signal (returns at once if it was already given, or if the
    /// trigger is gone).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }
}

/// The controlling side of the reopen signal: `trigger` on SIGHUP, after
/// logrotate has moved the files away.
#[derive(Debug)]
pub struct ReopenTrigger(watch::Sender<()>);

/// An output's handle on the reopen signal.
#[derive(Debug, Clone)]
pub struct ReopenSignal(watch::Receiver<()>);

/// A new trigger and its first handle.
pub fn reopen_channel() -> (ReopenTrigger, ReopenSignal) {
    let (tx, rx) = watch::channel(());
    (ReopenTrigger(tx), ReopenSignal(rx))
}

impl ReopenTrigger {
    /// Asks every handle to reopen its files.
    pub fn trigger(&self) {
        self.0.send_replace(());
    }

    /// Another handle.
    pub fn subscribe(&self) -> ReopenSignal {
        ReopenSignal(self.0.subscribe())
    }
}

impl ReopenSignal {
    /// A handle that never fires.
    pub fn never() -> Self {
        reopen_channel().1
    }

    /// Waits for the next request. Once the trigger is gone this never returns,
    /// so it can sit in a `select!` without spinning.
    pub async fn requested(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_handle_sees_the_trigger() {
        let (t, mut a) = channel();
        let mut b = t.subscribe();
        assert!(!a.is_shutdown());
        t.trigger();
        a.recv().await;
        b.recv().await;
        assert!(b.is_shutdown());
    }

    #[test]
    fn a_dropped_trigger_counts_as_shutdown() {
        let (t, a) = channel();
        assert!(!a.is_shutdown());
        drop(t);
        assert!(a.is_shutdown());
    }

    #[tokio::test]
    async fn reopen_signal_fires_once_per_trigger_and_never_after_the_trigger_is_gone() {
        let (t, mut a) = reopen_channel();
        let mut b = t.subscribe();
        t.trigger();
        a.requested().await;
        b.requested().await;
        drop(t);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), a.requested()).await;
        assert!(waited.is_err());
    }
}
