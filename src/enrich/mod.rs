//! Enrichment: the stage between parsing and output where events gain threat
//! intelligence — what the classic set-up used Logstash's memcached filter for
//! (`get => {"domain-%{[destination][domain]}" => "[misp_src]"}`, then
//! `misp_src => "none"` on a miss), done per batch instead of per event.
//!
//! ```text
//!  batch ─► keys of every event (rules; parent domains) ─► distinct keys
//!        ─► in-process store ─► negative cache ─► in-flight table ─► one gets per server
//!        ─► misp_src · threat.enrichments[] · threat.feed.name · tag on failure
//! ```
//!
//! * [`config`]: `[enrich]` and [`EnrichConfig::build`].
//! * [`rules`]: what is looked up; the parent-domain walk.
//! * [`key`]: key templates and the key-safety rule ([`key::safe_key`]).
//! * [`value`]: the value forms sync jobs write ([`value::parse_value`]).
//! * [`cache`]: the bounded negative cache shared by all threads.
//! * [`inflight`]: one fetch per key however many threads want it.
//! * [`memcached`]: servers, placement, timeouts, reconnection.
//! * [`check`]: whether the configured distribution looks for keys where
//!   they are (`dnsenrich check-indicators`).
//! * [`store`]: the in-process store loaded from `--ioc-file`.
//! * [`stats`]: counters and metrics.
//!
//! What an event gets, per target (`misp_src` by default):
//! * a hit: the feed names (a string for one, an array for several), one
//!   `threat.enrichments[]` entry per matched indicator and feed, and the feed
//!   names in `threat.feed.name`. For a name, the most specific hit wins: an
//!   exact match over its parent domains (`matched.type` `exact` or
//!   `parent_domain`).
//! * a clean miss (every key answered, none matched): `none_value` (`"none"`).
//! * no answer for some key (memcached slow, down, or in backoff): the tag
//!   `_dnsenrich_not_enriched` and never `"none"` — an outage is not a clean
//!   miss. Hits found for its other keys are still written.
//! * nothing to look up (no name, no address): nothing.
//!
//! With neither memcached nor indicator files configured the stage is off:
//! [`EnrichStage::enricher`] hands out [`PassThrough`], and events carry no
//! `misp_src` at all (a "none" would claim a lookup that never happened).

pub mod cache;
pub mod check;
pub mod config;
pub mod inflight;
mod lookup;
pub mod memcached;
pub mod rules;
pub mod stats;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

/// Keys and values moved to [`crate::indicator`]; the old paths still work.
pub use crate::indicator::{key, value};
pub use config::{CacheConfig, EnrichConfig, EnrichError};
pub use rules::LookupRule;
pub use stats::EnrichStatsSnapshot;

use crate::event::Str;
use crate::pipeline::EventBatch;

/// What the enrichment stage does to each batch.
pub trait Enricher: Send {
    /// Enriches every event of the batch in place.
    fn enrich(&mut self, batch: &mut EventBatch);
}

/// The enricher used when no lookup is configured.
#[derive(Debug, Default, Clone)]
pub struct PassThrough;

impl Enricher for PassThrough {
    fn enrich(&mut self, _batch: &mut EventBatch) {}
}

/// A rule ready to use.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub field: rules::SourceField,
    pub template: key::KeyTemplate,
    /// Index into [`Shared::targets`].
    pub target: usize,
}

/// What every enricher of a stage shares.
pub(crate) struct Shared {
    pub rules: Vec<CompiledRule>,
    pub targets: Vec<rules::Target>,
    pub parent_domains: bool,
    pub none_value: Option<Str>,
    pub provider: Str,
    pub namespace: Option<String>,
    pub timeout: Duration,
    pub hasher: cache::KeyHasher,
    pub cache: Option<cache::NegativeCache>,
    pub memcached: Option<memcached::Memcached>,
    pub inflight: inflight::InFlight,
    pub store: Option<store::Store>,
    pub stats: stats::EnrichStats,
}

/// The running enrichment stage: built once from [`EnrichConfig::build`],
/// it hands each enrichment thread its own [`Enricher`]; they share the
/// negative cache, the memcached clients, the in-flight table and the store.
pub struct EnrichStage {
    shared: Option<Arc<Shared>>,
}

impl EnrichStage {
    /// A stage that does nothing (no backend configured).
    pub fn off() -> EnrichStage {
        EnrichStage { shared: None }
    }

    /// Whether lookups happen at all.
    pub fn is_active(&self) -> bool {
        self.shared.is_some()
    }

    /// An enricher for one enrichment thread (cheap; call once per thread).
    pub fn enricher(&self) -> Box<dyn Enricher> {
        match &self.shared {
            Some(s) => Box::new(lookup::BatchEnricher::new(s.clone())),
            None => Box::new(PassThrough),
        }
    }

    /// Re-reads the indicator files (SIGHUP). Returns the number of keys now
    /// loaded (0 without files). On error the previous indicators stay in use.
    pub fn reload(&self) -> Result<usize, EnrichError> {
        let Some(store) = self.shared.as_ref().and_then(|s| s.store.as_ref()) else {
            return Ok(0);
        };
        let map = store.reload().map_err(|e| EnrichError::Invalid {
            key: "enrich.ioc_files".into(),
            reason: e.to_string(),
        })?;
        tracing::info!(
            keys = map.len(),
            files = map.files.len(),
            "indicator files reloaded"
        );
        Ok(map.len())
    }

    /// The stage's counters.
    pub fn stats(&self) -> EnrichStatsSnapshot {
        let Some(s) = &self.shared else {
            return EnrichStatsSnapshot::default();
        };
        let mut snap = s.stats.snapshot();
        if let Some(c) = &s.cache {
            snap.cache_entries = c.len();
            snap.cache_evicted = c.evicted();
        }
        snap
    }

    /// The memcached servers in use (normalised `host:port`), if any.
    pub fn memcached_servers(&self) -> &[String] {
        self.shared
            .as_ref()
            .and_then(|s| s.memcached.as_ref())
            .map_or(&[], |m| m.server_names())
    }

    /// Whether every memcached server answers now; `None` without memcached.
    /// Blocking: call it off the runtime.
    pub fn memcached_answers(&self) -> Option<bool> {
        let m = self.shared.as_ref()?.memcached.as_ref()?;
        Some(m.all_answer())
    }

    /// The sync status key (see [`crate::indicator::freshness`]) as stored
    /// now: `Ok(None)` when memcached has none, `Err` when it did not answer,
    /// `None` without memcached. Blocking: call it off the runtime.
    pub fn sync_status(
        &self,
    ) -> Option<Result<Option<crate::indicator::freshness::SyncStatus>, memcached::FetchError>>
    {
        use crate::indicator::freshness::{status_key, SyncStatus};
        let shared = self.shared.as_ref()?;
        let m = shared.memcached.as_ref()?;
        let key = status_key(shared.namespace.as_deref());
        let (mut answers, _) = m.fetch(&[key.as_str()]);
        Some(
            answers
                .pop()
                .unwrap_or(Ok(None))
                .map(|v| v.and_then(|bytes| SyncStatus::parse(&bytes))),
        )
    }

    /// Keys loaded in the in-process store (0 without one).
    pub fn store_keys(&self) -> usize {
        self.shared
            .as_ref()
            .and_then(|s| s.store.as_ref())
            .map_or(0, |s| s.snapshot().len())
    }
}
