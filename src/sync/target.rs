//! Where a sync run writes its key set: memcached (the default) or the
//! in-process store file (`to_file`). One [`Target`] is opened before any
//! source is read, so a run that cannot write fails before it spends minutes
//! reading MISP; [`Target::write`] gives the same [`WriteOutcome`] whatever
//! the target, and [`Target::report`] fills in what the summary shows of it.
//! A third target (Redis, say) is a new variant here and nothing else.

use std::collections::HashMap;
use std::path::PathBuf;

use super::collect::Collector;
use super::config::{SyncConfig, ValueFormat};
use super::memcached::{self, ServerInfo};
use super::progress::Progress;
use super::report::SyncReport;
use super::{blocking, file, SyncError};
use crate::indicator::distribution::{address_of, Placement};
use crate::indicator::normalize::SkipReason;

/// Keys written, by kind, and what was refused.
#[derive(Debug, Default)]
pub(crate) struct WriteOutcome {
    pub keys: HashMap<&'static str, u64>,
    pub written: u64,
    pub hashed: u64,
    pub too_large: Vec<String>,
    pub rejected: Vec<String>,
}

impl WriteOutcome {
    /// Adds the outcome to the report.
    pub fn account(self, report: &mut SyncReport) {
        for (k, n) in self.keys {
            *report.keys.entry(k.to_string()).or_default() += n;
        }
        report.written += self.written;
        report.hashed += self.hashed;
        for k in self.too_large {
            report.skip(SkipReason::TooLarge, || k.clone());
        }
        for e in self.rejected {
            report.skip(SkipReason::Rejected, || e.clone());
        }
    }
}

/// The write target of one run.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The in-process store file (NDJSON), written whole and renamed.
    File(PathBuf),
    /// These servers, probed when the target was opened, and where each key
    /// goes among them.
    Memcached(Vec<ServerInfo>, Placement),
}

impl Target {
    /// The configured target; memcached servers are probed now.
    pub async fn open(cfg: &SyncConfig, bar: &Progress) -> Result<Target, SyncError> {
        if let Some(path) = &cfg.to_file {
            return Ok(Target::File(path.clone()));
        }
        let placement = cfg.placement().map_err(|e| {
            SyncError::Config(super::config::InvalidSyncConfig {
                key: "distribution",
                reason: e.to_string(),
            })
        })?;
        bar.message("connecting to memcached");
        let addrs: Vec<String> = cfg
            .memcached
            .iter()
            .filter_map(|m| {
                crate::enrich::memcached::parse_server(address_of(cfg.distribution, m)).ok()
            })
            .collect();
        let servers = blocking(move || {
            addrs
                .iter()
                .map(|a| memcached::probe(a))
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        Ok(Target::Memcached(servers, placement))
    }

    /// Writes every key of `c` (blocking: call it off the runtime).
    pub fn write(
        &self,
        c: &Collector,
        namespace: Option<&str>,
        format: ValueFormat,
        ttl: u64,
        bar: &Progress,
    ) -> Result<WriteOutcome, SyncError> {
        match self {
            // The store is keyed without namespace and keeps no TTL.
            Target::File(path) => file::write(path, c, format),
            Target::Memcached(servers, placement) => {
                memcached::write(servers, placement, c, namespace, format, ttl, bar)
            }
        }
    }

    /// Leaves the status key (see [`crate::indicator::freshness`]) beside the
    /// keys, on the server the distribution puts it on (blocking). The file
    /// target needs none: the collector reads the file itself.
    pub fn write_status(
        &self,
        namespace: Option<&str>,
        ttl: u64,
        keys: u64,
    ) -> Result<(), SyncError> {
        use crate::indicator::freshness::{status_key, SyncStatus};
        let Target::Memcached(servers, placement) = self else {
            return Ok(());
        };
        if servers.is_empty() {
            return Ok(());
        }
        let key = status_key(namespace);
        let server = &servers[placement.server_for(key.as_str()).min(servers.len() - 1)];
        let value = SyncStatus::now(ttl, keys).to_bytes();
        memcached::set_one(&server.addr, key.as_str(), &value, memcached::exptime(ttl))
    }

    /// Fills in the report's target, the TTL shown and, for memcached, the
    /// items evicted while the run wrote.
    pub async fn report(&self, ttl: u64, report: &mut SyncReport) -> Result<(), SyncError> {
        match self {
            Target::File(path) => {
                report.target = format!("file {}", path.display());
                report.ttl_secs = 0;
                report.evictions = None;
            }
            Target::Memcached(servers, _) => {
                let infos = servers.clone();
                report.evictions = blocking(move || {
                    infos
                        .iter()
                        .map(|s| {
                            memcached::evictions(&s.addr).map(|now| now.saturating_sub(s.evictions))
                        })
                        .sum::<Option<u64>>()
                })
                .await?;
                let addrs: Vec<&str> = servers.iter().map(|s| s.addr.as_str()).collect();
                report.target = format!("memcached {}", addrs.join(", "));
                report.ttl_secs = ttl;
            }
        }
        Ok(())
    }
}
