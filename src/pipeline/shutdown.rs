//! Listens for the shutdown signal. Every long-running task holds a [`Shutdown`]
//! and stops taking new work once [`Shutdown::recv`] returns; draining what is
//! already in the pipeline is the job of the channels (see `pipeline`).

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
}
