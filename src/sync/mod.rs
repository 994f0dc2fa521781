//! IoC sync: loads indicators from MISP (REST API and MISP-format feeds) and
//! from blocklists, and writes them into memcached as the keys the enricher
//! looks up — `domain-<name>`, `ip-dst-<ip>`, `ip-src-<ip>` — each naming
//! every feed that lists it, with a TTL so a withdrawn indicator ages out.
//! It replaces the script that pulled MISP into memcached every minute.
//!
//! One run ([`run_once`]) reads every source into one set ([`collect`]),
//! then writes it (pipelined into memcached, or as the in-process store file
//! with `to_file`). Any source failing fails the run before anything is
//! written, so a run writes all of its sources or none; the keys of the last
//! good run live on until their TTL. [`run_every`] repeats it, for
//! `dnsenrich sync --every` and for the `[sync]` section of `run`.

pub mod collect;
pub mod config;
mod feed;
mod file;
mod http;
mod list;
pub mod memcached;
mod misp;
mod progress;
pub mod report;
mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use self::config::{
    DurationSpec, InvalidSyncConfig, ListFormat, ListSource, SyncConfig, ValueFormat,
};
pub use self::feed::split_name;
pub use self::report::SyncReport;
/// Entry mapping moved to [`crate::indicator::normalize`]; the old path still works.
pub use crate::indicator::normalize as indicator;

use self::collect::Collector;
use self::progress::Progress;
use crate::pipeline::shutdown::Shutdown;

/// The interval of [`run_every`] when the configuration sets none.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(600);

/// Why a sync failed. Every message names the source or server and the reason.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Config(#[from] InvalidSyncConfig),
    #[error(
        "MISP at {url} rejected the API key (HTTP {status}); check --misp-key and that the \
         user may use the API"
    )]
    MispAuth { url: String, status: u16 },
    #[error(
        "no MISP API key: give --misp-key, --misp-key-file or ${}",
        config::MISP_KEY_ENV
    )]
    MissingKey,
    #[error("cannot read the MISP API key from {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    #[error("cannot use the CA file {}: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("{origin} unreachable: {reason}")]
    Unreachable { origin: String, reason: String },
    #[error("{origin} answered HTTP {status}: {body}")]
    Http {
        origin: String,
        status: u16,
        body: String,
    },
    #[error("{origin}: malformed data: {reason}")]
    Malformed { origin: String, reason: String },
    #[error(
        "{origin}: the response is larger than {limit_mib} MiB; lower page_limit \
         (--page-limit) or raise max_response_mib"
    )]
    TooLarge { origin: String, limit_mib: u64 },
    #[error("cannot read {origin}: {reason}")]
    Read { origin: String, reason: String },
    #[error("memcached {addr} unreachable: {reason}")]
    MemcachedUnreachable { addr: String, reason: String },
    #[error("memcached {addr}: {reason}")]
    Memcached { addr: String, reason: String },
    #[error("cannot write {}: {reason}", path.display())]
    WriteFile { path: PathBuf, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Runs one sync: reads every configured source, writes the keys, and
/// returns what it did. `progress` draws a progress display on stderr when
/// stderr is a terminal.
pub async fn run_once(cfg: &SyncConfig, progress: bool) -> Result<SyncReport, SyncError> {
    cfg.validate()?;
    let started = Instant::now();
    let bar = Progress::new(progress);
    let result = sync(cfg, &bar, started).await;
    bar.finish();
    result
}

async fn sync(cfg: &SyncConfig, bar: &Progress, started: Instant) -> Result<SyncReport, SyncError> {
    let ttl = cfg.effective_ttl_secs();
    // The target is opened first: a run that cannot write should fail
    // before it spends minutes reading MISP.
    let target = target::Target::open(cfg, bar).await?;
    let key = match &cfg.misp_url {
        Some(_) => Some(misp_key(cfg)?),
        None => None,
    };
    let now = chrono::Utc::now().timestamp();
    let filters = misp::Filters::new(cfg, now);
    let fetcher = http::Fetcher::new(cfg)?;
    let mut c = Collector::new();
    if let Some(key) = &key {
        c = misp::load(&fetcher, cfg, key, &filters, c, bar).await?;
    }
    for spec in &cfg.misp_feeds {
        let src = feed::FeedSource::parse(spec)?;
        c = feed::load(&fetcher, &src, &filters, c, bar).await?;
    }
    for l in &cfg.lists {
        c = list::load(&fetcher, l, c, bar).await?;
    }
    bar.bar(c.len() as u64, "writing keys");
    let write_started = Instant::now();
    let (ns, format, b, t) = (
        cfg.namespace.clone(),
        cfg.value_format,
        bar.clone(),
        target.clone(),
    );
    let (mut c, outcome) = blocking(move || {
        let out = t.write(&c, ns.as_deref(), format, ttl, &b);
        (c, out)
    })
    .await?;
    let outcome = outcome?;
    let (ns, t, written) = (cfg.namespace.clone(), target.clone(), outcome.written);
    blocking(move || t.write_status(ns.as_deref(), ttl, written)).await??;
    let write_elapsed = write_started.elapsed();
    outcome.account(&mut c.report);
    let mut report = std::mem::take(&mut c.report);
    target.report(ttl, &mut report).await?;
    report.elapsed = started.elapsed();
    report.write_elapsed = write_elapsed;
    Ok(report)
}

/// Repeats [`run_once`] every `cfg.every` (default [`DEFAULT_EVERY`]) until
/// `shutdown`, starting at once. A failed run is logged and retried at the
/// next tick; the keys of the last good run stay until their TTL (twice the
/// interval by default, so one failed run loses nothing). Each run's summary
/// is logged with `tracing` at info level. Returns early only for a
/// configuration that cannot work.
pub async fn run_every(cfg: SyncConfig, mut shutdown: Shutdown) -> Result<(), SyncError> {
    let mut cfg = cfg;
    if cfg.every.is_none() {
        cfg.every = Some(DurationSpec(DEFAULT_EVERY));
    }
    cfg.validate()?;
    let every = cfg.every.map_or(DEFAULT_EVERY, |e| e.0);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.recv() => return Ok(()),
        }
        tokio::select! {
            r = run_once(&cfg, false) => match r {
                Ok(report) => {
                    record_metrics(Some(&report));
                    tracing::info!(
                        indicators = report.indicators(),
                        written = report.written,
                        skipped = report.skipped_total(),
                        target = %report.target,
                        elapsed_ms = report.elapsed.as_millis() as u64,
                        "sync done"
                    )
                }
                Err(e @ SyncError::Config(_)) => return Err(e),
                Err(e) => {
                    record_metrics(None);
                    tracing::error!(
                        error = %e,
                        next_in_secs = every.as_secs(),
                        "sync failed; the keys already written stay until their TTL"
                    )
                }
            },
            _ = shutdown.recv() => return Ok(()),
        }
    }
}

/// Metrics of one background sync run: runs by result, keys written and
/// skipped, and when the last good run finished (alert when it gets old).
fn record_metrics(report: Option<&SyncReport>) {
    match report {
        Some(r) => {
            metrics::counter!("dnsenrich_sync_runs_total", "result" => "ok").increment(1);
            metrics::counter!("dnsenrich_sync_keys_written_total").increment(r.written);
            metrics::counter!("dnsenrich_sync_skipped_total").increment(r.skipped_total());
            metrics::gauge!("dnsenrich_sync_indicators").set(r.indicators() as f64);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics::gauge!("dnsenrich_sync_last_success_timestamp_seconds").set(now);
        }
        None => metrics::counter!("dnsenrich_sync_runs_total", "result" => "error").increment(1),
    }
}

/// The MISP API key: `misp_key`, else `misp_key_file`, else the environment.
fn misp_key(cfg: &SyncConfig) -> Result<String, SyncError> {
    if let Some(k) = &cfg.misp_key {
        let k = k.expose().trim();
        if !k.is_empty() {
            return Ok(k.to_string());
        }
    }
    if let Some(path) = &cfg.misp_key_file {
        let text = std::fs::read_to_string(path).map_err(|e| SyncError::KeyFile {
            path: path.clone(),
            reason: http::io_reason(&e),
        })?;
        let k = text.trim();
        if k.is_empty() {
            return Err(SyncError::KeyFile {
                path: path.clone(),
                reason: "the file is empty".into(),
            });
        }
        return Ok(k.to_string());
    }
    match std::env::var(config::MISP_KEY_ENV) {
        Ok(k) if !k.trim().is_empty() => Ok(k.trim().to_string()),
        _ => Err(SyncError::MissingKey),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Internal(e.to_string()))
}
