//! `[enrich]`: the enrichment stage's configuration, checked and turned into
//! a running [`EnrichStage`] by [`EnrichConfig::build`].
//!
//! ```toml
//! [enrich]
//! memcached = ["127.0.0.1:11211"]   # or --memcached HOST:PORT (repeatable)
//! # ioc_files = ["/etc/dnsenrich/iocs.ndjson"]   # or --ioc-file FILE (repeatable)
//! namespace = ""                    # keys become "<namespace>:domain-…" (Dalli's namespace)
//! distribution = "rendezvous"       # with several servers: dalli | pymemcache | ketama | rendezvous
//! timeout_ms = 50                   # per batch
//! target = "misp_src"
//! none_value = "none"
//!
//! [enrich.cache]
//! miss_ttl_secs = 60
//! hit_ttl_secs = 10
//! max_entries = 1000000
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cache::{KeyHasher, NegativeCache};
use super::inflight::InFlight;
use super::memcached::{parse_server, Memcached, MemcachedSettings};
use super::rules::{default_rules, LookupRule, SourceField, Target};
use super::stats::EnrichStats;
use super::store::{Store, StoreMap};
use super::{CompiledRule, EnrichStage, Shared};
use crate::event::Str;
use crate::indicator::distribution::{address_of, DistributionKind, Placement};
use crate::indicator::key::KeyTemplate;

/// `[enrich]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// memcached servers, `HOST[:PORT]` or `[IPv6]:PORT` (port 11211 when
    /// none). Keys are spread over several servers by `distribution`.
    /// Empty: no memcached.
    pub memcached: Vec<String>,
    /// How keys are spread over several servers: as the client that wrote
    /// them does (`dalli`, `pymemcache`, `ketama`), or `rendezvous`,
    /// dnsenrich's own and what `dnsenrich sync` writes with by default.
    /// The default stays `rendezvous` so keys already written by
    /// `dnsenrich sync` are found where they are.
    pub distribution: DistributionKind,
    /// Put `<namespace>:` in front of every memcached key, as Dalli's
    /// `namespace` option does. Not applied to the in-process store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How long a batch may wait for memcached, in milliseconds (each socket
    /// operation and each wait for another thread's fetch is bounded by it).
    pub timeout_ms: u64,
    /// Connections per memcached server (one per enrichment thread is enough).
    pub pool_size: u32,
    /// First wait before reconnecting to a server that failed, in ms.
    pub reconnect_min_ms: u64,
    /// Longest wait between reconnection attempts, in ms (the wait doubles).
    pub reconnect_max_ms: u64,
    /// Also look names up by their parent domains, down to the registered domain.
    pub parent_domains: bool,
    /// Where feed names go unless a rule says otherwise: `misp_src` or `labels.NAME`.
    pub target: String,
    /// Written to the target after a clean miss (every lookup answered, none
    /// matched); empty: write nothing.
    pub none_value: String,
    /// `threat.enrichments.indicator.provider` when a value names none.
    pub provider: String,
    /// Indicator files for the in-process store (plain list, hosts, CSV
    /// `value,feed`, or `dnsenrich sync --to-file` NDJSON); reloaded on SIGHUP.
    pub ioc_files: Vec<PathBuf>,
    /// What is looked up; default `domain-<dns.question.name>` and
    /// `ip-dst-<dns.resolved_ip>`.
    pub rules: Vec<LookupRule>,
    pub cache: CacheConfig,
    /// How often, in seconds, the sync status key `dnsenrich sync` leaves in
    /// memcached is read to tell the indicators' age; 0 turns it off.
    pub freshness_check_secs: u64,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            memcached: Vec::new(),
            distribution: DistributionKind::default(),
            namespace: None,
            timeout_ms: 50,
            pool_size: 8,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            parent_domains: true,
            target: "misp_src".into(),
            none_value: "none".into(),
            provider: "MISP".into(),
            ioc_files: Vec::new(),
            rules: default_rules(),
            cache: CacheConfig::default(),
            freshness_check_secs: 60,
        }
    }
}

/// `[enrich.cache]`: the negative cache in front of memcached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long a miss is remembered, in seconds (0: not at all).
    pub miss_ttl_secs: u64,
    /// How long a hit is remembered, in seconds (0: not at all).
    pub hit_ttl_secs: u64,
    /// Most entries held (about 55 bytes each); 0 disables the cache.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            miss_ttl_secs: 60,
            hit_ttl_secs: 10,
            max_entries: 1_000_000,
        }
    }
}

/// An `[enrich]` setting that cannot be used, or an indicator file that
/// cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> EnrichError {
    EnrichError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl EnrichConfig {
    /// Whether a lookup backend is configured at all.
    pub fn is_enabled(&self) -> bool {
        !self.memcached.is_empty() || !self.ioc_files.is_empty()
    }

    /// Checks the settings without touching files or the network.
    pub fn validate(&self) -> Result<(), EnrichError> {
        self.compile().map(|_| ())
    }

    /// The configured placement of keys over the memcached servers; `None`
    /// without servers.
    pub fn placement(&self) -> Result<Option<Placement>, EnrichError> {
        if self.memcached.is_empty() {
            return Ok(None);
        }
        Placement::new(
            self.distribution,
            &self.memcached,
            self.namespace.as_deref(),
        )
        .map(Some)
        .map_err(|e| invalid("enrich.distribution", e.to_string()))
    }

    fn compile(&self) -> Result<(Vec<CompiledRule>, Vec<Target>), EnrichError> {
        for (i, s) in self.memcached.iter().enumerate() {
            parse_server(address_of(self.distribution, s))
                .map_err(|e| invalid(format!("enrich.memcached[{i}]"), e))?;
        }
        if let Some(ns) = &self.namespace {
            if ns.is_empty()
                || ns.len() > 64
                || !ns.bytes().all(|b| b > 0x20 && b != 0x7f && b != b'#')
            {
                return Err(invalid(
                    "enrich.namespace",
                    "1 to 64 characters, no spaces, control characters or '#'",
                ));
            }
        }
        self.placement()?;
        if !(1..=10_000).contains(&self.timeout_ms) {
            return Err(invalid("enrich.timeout_ms", "must be 1 to 10000"));
        }
        if !(1..=1024).contains(&self.pool_size) {
            return Err(invalid("enrich.pool_size", "must be 1 to 1024"));
        }
        if self.reconnect_min_ms == 0 {
            return Err(invalid("enrich.reconnect_min_ms", "must be at least 1"));
        }
        if self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(invalid(
                "enrich.reconnect_max_ms",
                "must be at least reconnect_min_ms",
            ));
        }
        if self.none_value.len() > 256 || self.none_value.chars().any(char::is_control) {
            return Err(invalid(
                "enrich.none_value",
                "at most 256 bytes, no control characters",
            ));
        }
        if self.provider.len() > 256 || self.provider.chars().any(char::is_control) {
            return Err(invalid(
                "enrich.provider",
                "at most 256 bytes, no control characters",
            ));
        }
        for (k, v) in [
            ("enrich.cache.miss_ttl_secs", self.cache.miss_ttl_secs),
            ("enrich.cache.hit_ttl_secs", self.cache.hit_ttl_secs),
        ] {
            if v > 86_400 {
                return Err(invalid(k, "at most 86400 (one day)"));
            }
        }
        if self.cache.max_entries > 100_000_000 {
            return Err(invalid("enrich.cache.max_entries", "at most 100000000"));
        }
        if self.rules.is_empty() && self.is_enabled() {
            return Err(invalid(
                "enrich.rules",
                "no rule: remove memcached and ioc_files to turn enrichment off",
            ));
        }
        let default_target =
            Target::parse(&self.target).map_err(|e| invalid("enrich.target", e))?;
        let mut targets = vec![default_target];
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let field = SourceField::parse(&r.field).ok_or_else(|| {
                let known: Vec<&str> = SourceField::NAMES.iter().map(|(n, _)| *n).collect();
                invalid(
                    format!("enrich.rules[{i}].field"),
                    format!("unknown field {:?}; one of {}", r.field, known.join(", ")),
                )
            })?;
            let template = KeyTemplate::parse(&r.key)
                .map_err(|e| invalid(format!("enrich.rules[{i}].key"), e))?;
            let target = match &r.target {
                None => 0,
                Some(t) => {
                    let t = Target::parse(t)
                        .map_err(|e| invalid(format!("enrich.rules[{i}].target"), e))?;
                    match targets.iter().position(|x| *x == t) {
                        Some(p) => p,
                        None => {
                            targets.push(t);
                            targets.len() - 1
                        }
                    }
                }
            };
            rules.push(CompiledRule {
                field,
                template,
                target,
            });
        }
        Ok((rules, targets))
    }

    /// Builds the stage: loads the indicator files and prepares the memcached
    /// clients (a server that does not answer is a warning, not an error).
    /// With neither memcached nor indicator files the stage is off: its
    /// enrichers pass batches through untouched (no `misp_src` at all).
    pub fn build(&self) -> Result<EnrichStage, EnrichError> {
        self.build_with(None)
    }

    /// [`build`](Self::build), with the indicator files already read into
    /// `loaded` (by [`crate::config::Config::check`]) instead of read again.
    pub fn build_with(&self, loaded: Option<Arc<StoreMap>>) -> Result<EnrichStage, EnrichError> {
        let (rules, targets) = self.compile()?;
        if !self.is_enabled() {
            return Ok(EnrichStage::off());
        }
        let store = match (self.ioc_files.is_empty(), loaded) {
            (true, _) => None,
            (false, Some(map)) => Some(Store::with_map(self.ioc_files.clone(), map)),
            (false, None) => Some(
                Store::open(self.ioc_files.clone())
                    .map_err(|e| invalid("enrich.ioc_files", e.to_string()))?,
            ),
        };
        let timeout = Duration::from_millis(self.timeout_ms);
        let memcached = if self.memcached.is_empty() {
            None
        } else {
            // Weights (`host:port:weight`) are for the placement only.
            let addrs: Vec<String> = self
                .memcached
                .iter()
                .map(|s| address_of(self.distribution, s).to_owned())
                .collect();
            let m = Memcached::new(
                &addrs,
                MemcachedSettings {
                    timeout,
                    pool_size: self.pool_size,
                    backoff_min: Duration::from_millis(self.reconnect_min_ms),
                    backoff_max: Duration::from_millis(self.reconnect_max_ms),
                },
            )
            .map_err(|(i, e)| invalid(format!("enrich.memcached[{i}]"), e))?;
            let m = match self.placement()? {
                Some(p) => m.placed(p),
                None => m,
            };
            m.probe();
            Some(m)
        };
        let cache = memcached.as_ref().map(|_| {
            NegativeCache::new(
                self.cache.max_entries,
                Duration::from_secs(self.cache.hit_ttl_secs),
                Duration::from_secs(self.cache.miss_ttl_secs),
            )
        });
        Ok(EnrichStage {
            shared: Some(Arc::new(Shared {
                rules,
                targets,
                parent_domains: self.parent_domains,
                none_value: (!self.none_value.is_empty()).then(|| Str::from(&self.none_value)),
                provider: Str::from(&self.provider),
                namespace: self.namespace.clone(),
                timeout,
                hasher: KeyHasher::default(),
                cache,
                memcached,
                inflight: InFlight::default(),
                store,
                stats: EnrichStats::default(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cfg: &EnrichConfig) -> String {
        cfg.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_the_classic_setup() {
        let c = EnrichConfig::default();
        assert_eq!(c.timeout_ms, 50);
        assert_eq!(c.target, "misp_src");
        assert_eq!(c.none_value, "none");
        assert!(c.parent_domains);
        assert_eq!(c.cache, CacheConfig::default());
        assert_eq!(c.rules[0].key, "domain-{}");
        assert_eq!(c.rules[1].field, "dns.resolved_ip");
        c.validate().unwrap();
        assert!(!c.is_enabled());
        assert!(!c.build().unwrap().is_active());
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        #[derive(Debug, Deserialize, Serialize)]
        struct Doc {
            enrich: EnrichConfig,
        }
        let text = "[enrich]\nmemcached = [\"m1\", \"[::1]:11212\"]\nnamespace = \"misp\"\n\
                    [[enrich.rules]]\nfield = \"source.ip\"\nkey = \"ip-src-{}\"\ntarget = \"labels.src_feed\"\n\
                    [enrich.cache]\nmax_entries = 10\n";
        let d: Doc = toml::from_str(text).unwrap();
        assert_eq!(d.enrich.memcached.len(), 2);
        assert_eq!(d.enrich.cache.max_entries, 10);
        assert_eq!(d.enrich.cache.miss_ttl_secs, 60);
        assert_eq!(d.enrich.rules.len(), 1);
        d.enrich.validate().unwrap();
        let again: Doc = toml::from_str(&toml::to_string_pretty(&d).unwrap()).unwrap();
        assert_eq!(again.enrich, d.enrich);
        let e = toml::from_str::<Doc>("[enrich]\ntimeout = 5\n").unwrap_err();
        assert!(e.to_string().contains("timeout"), "{e}");
    }

    #[test]
    fn weights_are_taken_only_by_the_distributions_that_have_them() {
        let text = "memcached = [\"m1:11211:2\", \"m2\"]\ndistribution = \"dalli\"\n";
        let mut c: EnrichConfig = toml::from_str(text).unwrap();
        assert_eq!(c.distribution, DistributionKind::Dalli);
        c.validate().unwrap();
        c.distribution = DistributionKind::Ketama;
        c.validate().unwrap();
        c.distribution = DistributionKind::Pymemcache;
        assert!(err(&c).starts_with("enrich.memcached[0]:"), "{}", err(&c));
        let e = toml::from_str::<EnrichConfig>("distribution = \"consistent\"\n").unwrap_err();
        assert!(e.to_string().contains("rendezvous"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = EnrichConfig {
            memcached: vec!["ok".into(), "bad:port".into()],
            ..Default::default()
        };
        assert!(err(&c).starts_with("enrich.memcached[1]:"), "{}", err(&c));
        c.memcached.clear();
        c.rules[1].field = "dns.nope".into();
        assert!(err(&c).starts_with("enrich.rules[1].field:"), "{}", err(&c));
        c.rules[1].field = "dns.resolved_ip".into();
        c.rules[0].key = "domain-".into();
        assert!(err(&c).starts_with("enrich.rules[0].key:"));
        c.rules[0].key = "domain-{}".into();
        c.rules[0].target = Some("nowhere".into());
        assert!(err(&c).starts_with("enrich.rules[0].target:"));
        c.rules[0].target = None;
        c.timeout_ms = 0;
        assert!(err(&c).starts_with("enrich.timeout_ms:"));
        c.timeout_ms = 50;
        c.namespace = Some("has space".into());
        assert!(err(&c).starts_with("enrich.namespace:"));
        c.namespace = None;
        c.target = "threat".into();
        assert!(err(&c).starts_with("enrich.target:"));
        c.target = "misp_src".into();
        c.ioc_files = vec!["/nonexistent/iocs.txt".into()];
        let e = c.build().err().unwrap().to_string();
        assert!(
            e.starts_with("enrich.ioc_files:") && e.contains("/nonexistent/iocs.txt"),
            "{e}"
        );
        c.rules.clear();
        assert!(err(&c).starts_with("enrich.rules:"));
    }
}
