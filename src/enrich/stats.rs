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

/// Declares the stage's counters once: the shared atomics
/// ([`EnrichStats`]), a batch's local tally ([`BatchCounts`]), the copy the
/// stage reports ([`EnrichStatsSnapshot`]), and adding and reading them all.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// The stage's counters.
        #[derive(Debug, Default)]
        pub struct EnrichStats {
            $(pub $name: AtomicU64,)*
            feeds: Mutex<HashMap<String, u64>>,
        }

        /// A copy of the counters at one moment.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct EnrichStatsSnapshot {
            $($(#[doc = $doc])* pub $name: u64,)*
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
            $(pub $name: u64,)*
            pub feeds: Vec<(String, u64)>,
        }

        impl EnrichStats {
            /// Adds every counter of `b` (not its feeds).
            fn add_counts(&self, b: &BatchCounts) {
                $(add(&self.$name, b.$name);)*
            }

            /// Every counter now, with `hits_per_feed`; the cache's figures
            /// are the stage's to fill in.
            fn load_counts(&self, hits_per_feed: Vec<(String, u64)>) -> EnrichStatsSnapshot {
                EnrichStatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                    hits_per_feed,
                    cache_entries: 0,
                    cache_evicted: 0,
                }
            }
        }
    };
}

counters! {
    /// Events that passed through an active enricher.
    events,
    /// Distinct keys looked up (per batch).
    lookups,
    cache_hits,
    cache_misses,
    store_hits,
    store_misses,
    /// `gets` requests sent to memcached.
    memcached_requests,
    /// Keys in those requests.
    memcached_keys,
    memcached_hits,
    memcached_misses,
    /// Keys without an answer because of an I/O or protocol error.
    memcached_errors,
    /// … because of a timeout (including waits for another thread's fetch).
    memcached_timeouts,
    /// … because their server was down (in backoff).
    memcached_down,
    /// Keys another thread was already fetching (asked for once).
    inflight_waits,
    /// Events that matched at least one indicator.
    events_enriched,
    /// Events given the "none" value after a clean miss.
    events_none,
    /// Events tagged `_dnsenrich_not_enriched`.
    events_not_enriched,
    unsafe_keys_hashed,
    malformed_values,
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
        self.add_counts(&b);

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
        let mut hits_per_feed: Vec<(String, u64)> = self
            .feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        hits_per_feed.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.load_counts(hits_per_feed)
    }
}
