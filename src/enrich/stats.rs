//! Counters of the enrichment stage, kept as atomics for
//! [`super::EnrichStage::stats`] and mirrored to the `metrics` registry:
//!
//! | metric | meaning |
//! |---|---|
//! | `dnsenrich_lookups_total{result="cache_hit"}` | distinct keys of a batch answered by the negative cache |
//! | `dnsenrich_lookups_total{result="cache_miss"}` | … not in the cache (sent to memcached, or waited for) |
//! | `dnsenrich_lookups_total{result="memcached_hit"\|"memcached_miss"}` | memcached's answers |
//! | `dnsenrich_lookups_total{result="store_hit"\|"store_miss"}` | the in-process store's answers |
//! | `dnsenrich_memcached_requests_total` | `gets` requests sent |
//! | `dnsenrich_memcached_keys_total` | keys in them |
//! | `dnsenrich_memcached_errors_total{kind="timeout"\|"io"\|"down"}` | keys without an answer, by cause |
//! | `dnsenrich_memcached_request_duration_seconds` | histogram, per request |
//! | `dnsenrich_enrichment_hits_total{feed}` | events matched, per feed (at most 1,000 feed labels; then `feed="other"`) |
//! | `dnsenrich_events_not_enriched_total` | events tagged `_dnsenrich_not_enriched` |
//! | `dnsenrich_unsafe_keys_hashed_total` | keys sent in digest form (too long or unsafe bytes) |
//! | `dnsenrich_malformed_values_total` | values that could not be read (feed `unknown`) |

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Most feeds counted by name.
const MAX_FEED_LABELS: usize = 1000;

/// The stage's counters.
#[derive(Debug, Default)]
pub struct EnrichStats {
    pub events: AtomicU64,
    pub lookups: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub store_hits: AtomicU64,
    pub store_misses: AtomicU64,
    pub memcached_requests: AtomicU64,
    pub memcached_keys: AtomicU64,
    pub memcached_hits: AtomicU64,
    pub memcached_misses: AtomicU64,
    pub memcached_errors: AtomicU64,
    pub memcached_timeouts: AtomicU64,
    pub memcached_down: AtomicU64,
    pub inflight_waits: AtomicU64,
    pub events_enriched: AtomicU64,
    pub events_none: AtomicU64,
    pub events_not_enriched: AtomicU64,
    pub unsafe_keys_hashed: AtomicU64,
    pub malformed_values: AtomicU64,
    feeds: Mutex<HashMap<String, u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrichStatsSnapshot {
    /// Events that passed through an active enricher.
    pub events: u64,
    /// Distinct keys looked up (per batch).
    pub lookups: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub store_hits: u64,
    pub store_misses: u64,
    /// `gets` requests sent to memcached.
    pub memcached_requests: u64,
    /// Keys in those requests.
    pub memcached_keys: u64,
    pub memcached_hits: u64,
    pub memcached_misses: u64,
    /// Keys without an answer because of an I/O or protocol error.
    pub memcached_errors: u64,
    /// … because of a timeout (including waits for another thread's fetch).
    pub memcached_timeouts: u64,
    /// … because their server was down (in backoff).
    pub memcached_down: u64,
    /// Keys another thread was already fetching (asked for once).
    pub inflight_waits: u64,
    /// Events that matched at least one indicator.
    pub events_enriched: u64,
    /// Events given the "none" value after a clean miss.
    pub events_none: u64,
    /// Events tagged `_dnsenrich_not_enriched`.
    pub events_not_enriched: u64,
    pub unsafe_keys_hashed: u64,
    pub malformed_values: u64,
    /// Events matched, per feed name, most first.
    pub hits_per_feed: Vec<(String, u64)>,
    /// Entries in the negative cache now.
    pub cache_entries: usize,
    /// Entries the cache dropped to stay within its bound (or expired).
    pub cache_evicted: u64,
}

/// Counts of one batch, added to the shared counters once.
#[derive(Debug, Default)]
pub(crate) struct BatchCounts {
    pub events: u64,
    pub lookups: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub store_hits: u64,
    pub store_misses: u64,
    pub memcached_requests: u64,
    pub memcached_keys: u64,
    pub memcached_hits: u64,
    pub memcached_misses: u64,
    pub memcached_errors: u64,
    pub memcached_timeouts: u64,
    pub memcached_down: u64,
    pub inflight_waits: u64,
    pub events_enriched: u64,
    pub events_none: u64,
    pub events_not_enriched: u64,
    pub unsafe_keys_hashed: u64,
    pub malformed_values: u64,
    pub feeds: Vec<(String, u64)>,
}

impl BatchCounts {
    pub fn feed_hit(&mut self, name: &str) {
        match self.feeds.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => self.feeds.push((name.to_owned(), 1)),
        }
    }
}

fn add(a: &AtomicU64, n: u64) {
    if n > 0 {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

fn lookups(result: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("dnsenrich_lookups_total", "result" => result).increment(n);
    }
}

impl EnrichStats {
    /// Adds a batch's counts and emits them as metrics.
    pub(crate) fn record(&self, b: BatchCounts) {
        add(&self.events, b.events);
        add(&self.lookups, b.lookups);
        add(&self.cache_hits, b.cache_hits);
        add(&self.cache_misses, b.cache_misses);
        add(&self.store_hits, b.store_hits);
        add(&self.store_misses, b.store_misses);
        add(&self.memcached_requests, b.memcached_requests);
        add(&self.memcached_keys, b.memcached_keys);
        add(&self.memcached_hits, b.memcached_hits);
        add(&self.memcached_misses, b.memcached_misses);
        add(&self.memcached_errors, b.memcached_errors);
        add(&self.memcached_timeouts, b.memcached_timeouts);
        add(&self.memcached_down, b.memcached_down);
        add(&self.inflight_waits, b.inflight_waits);
        add(&self.events_enriched, b.events_enriched);
        add(&self.events_none, b.events_none);
        add(&self.events_not_enriched, b.events_not_enriched);
        add(&self.unsafe_keys_hashed, b.unsafe_keys_hashed);
        add(&self.malformed_values, b.malformed_values);

        lookups("cache_hit", b.cache_hits);
        lookups("cache_miss", b.cache_misses);
        lookups("memcached_hit", b.memcached_hits);
        lookups("memcached_miss", b.memcached_misses);
        lookups("store_hit", b.store_hits);
        lookups("store_miss", b.store_misses);
        if b.memcached_requests > 0 {
            metrics::counter!("dnsenrich_memcached_requests_total").increment(b.memcached_requests);
            metrics::counter!("dnsenrich_memcached_keys_total").increment(b.memcached_keys);
        }
        for (kind, n) in [
            ("timeout", b.memcached_timeouts),
            ("io", b.memcached_errors),
            ("down", b.memcached_down),
        ] {
            if n > 0 {
                metrics::counter!("dnsenrich_memcached_errors_total", "kind" => kind).increment(n);
            }
        }
        if b.events_not_enriched > 0 {
            metrics::counter!("dnsenrich_events_not_enriched_total")
                .increment(b.events_not_enriched);
        }
        if b.unsafe_keys_hashed > 0 {
            metrics::counter!("dnsenrich_unsafe_keys_hashed_total").increment(b.unsafe_keys_hashed);
        }
        if b.malformed_values > 0 {
            metrics::counter!("dnsenrich_malformed_values_total").increment(b.malformed_values);
        }
        if !b.feeds.is_empty() {
            let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
            for (name, n) in b.feeds {
                let label = if feeds.contains_key(&name) || feeds.len() < MAX_FEED_LABELS {
                    name
                } else {
                    "other".to_owned()
                };
                *feeds.entry(label.clone()).or_default() += n;
                metrics::counter!("dnsenrich_enrichment_hits_total", "feed" => label).increment(n);
            }
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> EnrichStatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut hits_per_feed: Vec<(String, u64)> = self
            .feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        hits_per_feed.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        EnrichStatsSnapshot {
            events: g(&self.events),
            lookups: g(&self.lookups),
            cache_hits: g(&self.cache_hits),
            cache_misses: g(&self.cache_misses),
            store_hits: g(&self.store_hits),
            store_misses: g(&self.store_misses),
            memcached_requests: g(&self.memcached_requests),
            memcached_keys: g(&self.memcached_keys),
            memcached_hits: g(&self.memcached_hits),
            memcached_misses: g(&self.memcached_misses),
            memcached_errors: g(&self.memcached_errors),
            memcached_timeouts: g(&self.memcached_timeouts),
            memcached_down: g(&self.memcached_down),
            inflight_waits: g(&self.inflight_waits),
            events_enriched: g(&self.events_enriched),
            events_none: g(&self.events_none),
            events_not_enriched: g(&self.events_not_enriched),
            unsafe_keys_hashed: g(&self.unsafe_keys_hashed),
            malformed_values: g(&self.malformed_values),
            hits_per_feed,
            cache_entries: 0,
            cache_evicted: 0,
        }
    }
}
