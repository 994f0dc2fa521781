//! Fewer wake-ups of the async runtime under a trickle of traffic.
//!
//! Hundreds of connections each sending a few lines a second make a socket
//! readable every few tens of microseconds. Left alone, the runtime thread
//! wakes for each, reads one line, and goes back to sleep: tens of thousands
//! of wake-ups a second, each costing more than the line's parsing. The hook
//! here runs just before a runtime thread parks: if the thread last parked
//! less than `interval` ago, it first sleeps out the rest of that interval, so
//! whatever became ready meanwhile — on every socket — is handled in one pass.
//! A runtime thread then wakes at most about once per `interval` while
//! traffic trickles in, and each event waits at most `interval` longer
//! (1 ms by default, `pipeline.io_coalesce_us`). A thread that has been
//! parked longer than `interval` (idle, or rare events) is not held up at all,
//! and a busy thread seldom parks, so full-speed traffic is not delayed.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// When this runtime thread last went to park.
    static LAST_PARK: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// How long to sleep before parking at `now`, when the last park began at
/// `last`: the rest of `interval`, if it has not passed.
pub fn pause_before_park(last: Option<Instant>, now: Instant, interval: Duration) -> Duration {
    match last {
        Some(last) => interval.saturating_sub(now.saturating_duration_since(last)),
        None => Duration::ZERO,
    }
}

/// The runtime's `on_thread_park` hook for `interval` (`None` when 0: off).
pub fn park_hook(interval: Duration) -> Option<impl Fn() + Send + Sync + 'static> {
    if interval.is_zero() {
        return None;
    }
    Some(move || {
        let now = Instant::now();
        let pause = pause_before_park(LAST_PARK.get(), now, interval);
        if pause.is_zero() {
            LAST_PARK.set(Some(now));
        } else {
            std::thread::sleep(pause);
            LAST_PARK.set(Some(Instant::now()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_for_the_rest_of_the_interval_only_when_parking_again_within_it() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let i = ms(1);
        // First park ever, or the last one long ago: no pause.
        assert_eq!(pause_before_park(None, t0, i), Duration::ZERO);
        assert_eq!(pause_before_park(Some(t0), t0 + ms(5), i), Duration::ZERO);
        assert_eq!(pause_before_park(Some(t0), t0 + i, i), Duration::ZERO);
        // Parking again 300 µs after the last: sleep the other 700 µs.
        let at = t0 + Duration::from_micros(300);
        assert_eq!(
            pause_before_park(Some(t0), at, i),
            Duration::from_micros(700)
        );
        // A clock that seems to go back never pauses longer than the interval.
        assert_eq!(pause_before_park(Some(t0 + ms(2)), t0, i), i);
    }

    #[test]
    fn zero_turns_it_off() {
        assert!(park_hook(Duration::ZERO).is_none());
        assert!(park_hook(Duration::from_micros(1000)).is_some());
    }
}
