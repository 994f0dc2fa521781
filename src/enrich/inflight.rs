//! In-flight deduplication: when two enrichment threads want the same key at
//! once, only the first asks memcached; the second waits for its answer.
//!
//! A thread [`InFlight::claim`]s each key it must fetch. The first claim makes
//! it the key's owner ([`Claim::Owner`]); later claims, until the owner
//! completes, get the owner's [`Pending`] to wait on. An owner fetches all its
//! keys before it waits for anyone else's, so no two threads can wait on each
//! other. An owner that returns without completing (a panic, an early return)
//! completes as [`Outcome::Failed`] when its guard drops, so nobody waits past
//! their deadline for it.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::cache::PreHashedBuild;
use crate::indicator::value::Indicator;

/// What became of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// memcached answered: the value, or `None` for a clean miss.
    Found(Option<Arc<Indicator>>),
    /// No answer (timeout, error, server down).
    Failed,
}

/// A fetch some thread is doing.
#[derive(Debug, Default)]
pub struct Pending {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

impl Pending {
    /// Waits for the owner's outcome until `deadline`; [`Outcome::Failed`] past it.
    pub fn wait(&self, deadline: Instant) -> Outcome {
        let mut g = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(o) = &*g {
                return o.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return Outcome::Failed;
            }
            g = self
                .done
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn set(&self, o: Outcome) {
        let mut g = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(o);
        }
        self.done.notify_all();
    }
}

/// The keys being fetched right now, by key hash.
#[derive(Default)]
pub struct InFlight {
    map: DashMap<u64, Arc<Pending>, PreHashedBuild>,
}

/// The result of a claim.
pub enum Claim<'a> {
    /// This thread fetches the key and must complete it.
    Owner(OwnerGuard<'a>),
    /// Another thread is fetching it: wait on this.
    Waiter(Arc<Pending>),
}

/// The obligation to complete a claimed key.
pub struct OwnerGuard<'a> {
    table: &'a InFlight,
    hash: u64,
    pending: Arc<Pending>,
    completed: bool,
}

impl OwnerGuard<'_> {
    /// Publishes the outcome to the waiters and releases the key. Callers
    /// store a cacheable outcome in the cache first, so a thread arriving
    /// after the release finds it there.
    pub fn complete(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        self.completed = true;
        self.pending.set(outcome);
        let p = &self.pending;
        self.table
            .map
            .remove_if(&self.hash, |_, v| Arc::ptr_eq(v, p));
    }
}

impl Drop for OwnerGuard<'_> {
    fn drop(&mut self) {
        if !self.completed {
            self.finish(Outcome::Failed);
        }
    }
}

impl InFlight {
    /// Claims the key with this hash.
    pub fn claim(&self, hash: u64) -> Claim<'_> {
        match self.map.entry(hash) {
            Entry::Occupied(e) => Claim::Waiter(e.get().clone()),
            Entry::Vacant(v) => {
                let pending = Arc::new(Pending::default());
                v.insert(pending.clone());
                Claim::Owner(OwnerGuard {
                    table: self,
                    hash,
                    pending,
                    completed: false,
                })
            }
        }
    }

    /// Keys being fetched now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn second_claim_waits_for_the_first() {
        let t = InFlight::default();
        let Claim::Owner(owner) = t.claim(1) else {
            panic!("first claim owns")
        };
        let Claim::Waiter(w) = t.claim(1) else {
            panic!("second claim waits")
        };
        std::thread::scope(|s| {
            let h = s.spawn(|| w.wait(Instant::now() + Duration::from_secs(5)));
            std::thread::sleep(Duration::from_millis(20));
            owner.complete(Outcome::Found(None));
            assert_eq!(h.join().unwrap(), Outcome::Found(None));
        });
        assert!(t.is_empty());
        assert!(
            matches!(t.claim(1), Claim::Owner(_)),
            "released after completion"
        );
    }

    #[test]
    fn waiting_ends_at_the_deadline() {
        let t = InFlight::default();
        let _owner = t.claim(9);
        let Claim::Waiter(w) = t.claim(9) else {
            panic!()
        };
        let start = Instant::now();
        assert_eq!(w.wait(start + Duration::from_millis(30)), Outcome::Failed);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_dropped_owner_fails_its_waiters() {
        let t = InFlight::default();
        let owner = t.claim(3);
        let Claim::Waiter(w) = t.claim(3) else {
            panic!()
        };
        drop(owner);
        assert_eq!(w.wait(Instant::now()), Outcome::Failed);
        assert!(t.is_empty());
    }
}
