//! The negative cache: recent memcached answers, shared by every enrichment
//! thread, so popular names stop reaching memcached.
//!
//! Misses are kept for `miss_ttl` (default 60 s) and hits for the shorter
//! `hit_ttl` (default 10 s: a new indicator or a changed feed list shows up
//! quickly, a removed one ages out). Failures (timeouts, a server down) are
//! never cached.
//!
//! Entries are keyed by a 64-bit keyed SipHash of the key ([`KeyHasher`],
//! random keys per process), not by the key text: an entry is 8 bytes of key,
//! 4 of expiry and 8 of value (`Option<Arc<Indicator>>`, null for a miss);
//! with the hash table's own overhead (control bytes, free slots, the table
//! doubling) that is about 55 bytes per entry, 55 MB for the default million
//! (`benches/enrich.rs` measures it as RSS growth). Two keys share an entry
//! only if their hashes collide, which an outsider cannot arrange without the
//! process's random hash keys, and which happens by chance with probability
//! about n²/2⁶⁵ (10⁻⁸ for a full million entries).
//!
//! The cache is bounded: past `max_entries`, the thread that crossed the line
//! sweeps the map once, dropping expired entries and a random sample of the
//! rest, down to 15/16 of the bound. A random-subdomain flood (millions of
//! unique names) therefore cycles through the cache without growing it, and
//! popular names, asked again within moments, come straight back.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::indicator::value::Indicator;

/// What the cache remembers about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Hit(Arc<Indicator>),
    Miss,
}

/// Hashes keys for the cache and the in-flight table (SipHash-1-3 with random
/// keys, drawn once per [`super::EnrichStage`]).
#[derive(Debug, Clone, Default)]
pub struct KeyHasher(RandomState);

impl KeyHasher {
    pub fn hash(&self, key: &str) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(key.as_bytes());
        h.finish()
    }
}

/// A `Hasher` for keys that are already hashes.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `BuildHasher` for maps keyed by a hash.
pub type PreHashedBuild = BuildHasherDefault<PreHashed>;

/// Time in tenths of a second since the cache was made: 4 bytes per entry
/// and 13 years before it wraps.
pub type Tick = u32;

struct Entry {
    expires: Tick,
    value: Option<Arc<Indicator>>,
}

/// The shared cache of memcached answers.
pub struct NegativeCache {
    map: DashMap<u64, Entry, PreHashedBuild>,
    len: AtomicUsize,
    max: usize,
    hit_ttl: Tick,
    miss_ttl: Tick,
    epoch: Instant,
    sweeping: AtomicBool,
    evicted: AtomicU64,
    seed: AtomicU64,
}

fn ticks(d: Duration) -> Tick {
    u32::try_from(d.as_millis() / 100).unwrap_or(u32::MAX)
}

impl NegativeCache {
    /// A cache of at most `max_entries` (0 disables it).
    pub fn new(max_entries: usize, hit_ttl: Duration, miss_ttl: Duration) -> NegativeCache {
        NegativeCache {
            map: DashMap::with_capacity_and_hasher_and_shard_amount(
                0,
                PreHashedBuild::default(),
                64,
            ),
            len: AtomicUsize::new(0),
            max: max_entries,
            hit_ttl: ticks(hit_ttl),
            miss_ttl: ticks(miss_ttl),
            epoch: Instant::now(),
            sweeping: AtomicBool::new(false),
            evicted: AtomicU64::new(0),
            seed: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// The current time in the cache's ticks; read once per batch.
    pub fn now(&self) -> Tick {
        ticks(self.epoch.elapsed())
    }

    /// The remembered answer for a key hash, unless it has expired.
    pub fn get(&self, hash: u64, now: Tick) -> Option<Cached> {
        let e = self.map.get(&hash)?;
        if e.expires <= now {
            return None;
        }
        Some(match &e.value {
            Some(i) => Cached::Hit(i.clone()),
            None => Cached::Miss,
        })
    }

    /// Remembers an answer.
    pub fn insert(&self, hash: u64, value: Cached, now: Tick) {
        if self.max == 0 {
            return;
        }
        let (ttl, value) = match value {
            Cached::Hit(i) => (self.hit_ttl, Some(i)),
            Cached::Miss => (self.miss_ttl, None),
        };
        if ttl == 0 {
            return;
        }
        let e = Entry {
            expires: now.saturating_add(ttl),
            value,
        };
        if self.map.insert(hash, e).is_none()
            && self.len.fetch_add(1, Ordering::Relaxed) >= self.max
        {
            self.sweep(now);
        }
    }

    /// Entries held (expired ones included until a sweep drops them).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries dropped by sweeps so far (expired or evicted).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Drops expired entries, then, if that was not enough, a random share of
    /// the others, so that about 15/16 of `max` remain. One thread sweeps at a
    /// time; the others go on inserting meanwhile (the bound can be passed by
    /// what they add during the sweep, a few batches' worth).
    fn sweep(&self, now: Tick) {
        if self.sweeping.swap(true, Ordering::Acquire) {
            return;
        }
        let target = self.max - self.max / 16;
        let mut removed = 0usize;
        self.map.retain(|_, e| {
            let keep = e.expires > now;
            removed += usize::from(!keep);
            keep
        });
        let len = self.len().saturating_sub(removed).max(1);
        let excess = len.saturating_sub(target);
        if excess > 0 {
            // Keep an entry with probability target/len: a threshold on 32 random bits.
            let drop_below = ((excess as u128 * (1u128 << 32)) / len as u128) as u64;
            let mut rng = self
                .seed
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
                | 1;
            self.map.retain(|_, _| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let keep = (rng & 0xffff_ffff) >= drop_below;
                removed += usize::from(!keep);
                keep
            });
        }
        let _ = self
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(l.saturating_sub(removed))
            });
        self.evicted.fetch_add(removed as u64, Ordering::Relaxed);
        self.sweeping.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit() -> Cached {
        Cached::Hit(Arc::new(Indicator::in_feed("F")))
    }

    #[test]
    fn hits_and_misses_expire_after_their_ttls() {
        let c = NegativeCache::new(100, Duration::from_secs(10), Duration::from_secs(60));
        c.insert(1, hit(), 0);
        c.insert(2, Cached::Miss, 0);
        assert_eq!(c.get(1, 99), Some(hit()));
        assert_eq!(c.get(1, 100), None, "hit TTL is 10 s = 100 ticks");
        assert_eq!(c.get(2, 599), Some(Cached::Miss));
        assert_eq!(c.get(2, 600), None);
        assert_eq!(c.get(3, 0), None);
        // A re-insert refreshes without counting twice.
        c.insert(2, Cached::Miss, 600);
        assert_eq!(c.get(2, 601), Some(Cached::Miss));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn real_clock_ticks() {
        let c = NegativeCache::new(10, Duration::from_millis(100), Duration::from_millis(300));
        let now = c.now();
        c.insert(7, Cached::Miss, now);
        assert_eq!(c.get(7, c.now()), Some(Cached::Miss));
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(c.get(7, c.now()), None);
    }

    #[test]
    fn a_flood_of_unique_keys_stays_within_the_bound() {
        let max = 10_000;
        let c = NegativeCache::new(max, Duration::from_secs(10), Duration::from_secs(60));
        let h = KeyHasher::default();
        for i in 0..200_000u32 {
            c.insert(
                h.hash(&format!("domain-{i}.flood.example")),
                Cached::Miss,
                5,
            );
            assert!(c.len() <= max + 1, "{}", c.len());
        }
        assert_eq!(c.len(), c.map.len());
        assert!(c.evicted() >= 190_000 - max as u64);
        // A key asked for again and again survives the flood most of the time.
        let popular = h.hash("domain-popular.example");
        let mut present = 0;
        for i in 0..10_000u32 {
            if c.get(popular, 5).is_some() {
                present += 1;
            } else {
                c.insert(popular, Cached::Miss, 5);
            }
            c.insert(
                h.hash(&format!("domain-x{i}.flood.example")),
                Cached::Miss,
                5,
            );
        }
        assert!(present > 9_000, "{present}");
    }

    #[test]
    fn sweeps_drop_expired_entries_first() {
        let c = NegativeCache::new(100, Duration::from_secs(1), Duration::from_secs(1000));
        for i in 0..99 {
            c.insert(i, hit(), 0); // expire at tick 10
        }
        c.insert(1000, Cached::Miss, 50);
        c.insert(1001, Cached::Miss, 50); // crosses the bound: sweep at tick 50
        assert_eq!(c.get(1000, 50), Some(Cached::Miss));
        assert_eq!(c.get(1001, 50), Some(Cached::Miss));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let c = NegativeCache::new(0, Duration::from_secs(10), Duration::from_secs(60));
        c.insert(1, Cached::Miss, 0);
        assert_eq!(c.get(1, 0), None);
        assert!(c.is_empty());
    }
}
