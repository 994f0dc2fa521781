//! The background tasks: none of them carries events. Each watches or keeps
//! something beside the data flow — channel depths, memcached readiness, the
//! indicator files, a background sync, systemd's watchdog — and each takes a
//! [`Shutdown`] and ends on it, so a drain never waits on one and a test can
//! run the daemon twice in one process.
//!
//! A new background task is a function here that takes a [`Shutdown`], and one
//! line in `start_background` (`pipeline/mod.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::shutdown::Shutdown;
use super::tally::Tally;
use crate::decode::DecodeStats;
use crate::enrich::EnrichStage;
use crate::output::buffer::{self, DiskBuffer};
use crate::output::{OutputReport, OutputStats};
use crate::sync::SyncConfig;
use crate::telemetry;

/// The disk buffer's fill level as `/ready` sees it.
pub struct BufferLevel {
    /// Bytes above which the buffer counts as nearly full.
    pub high_water: u64,
    /// Up while the buffer is below `high_water`.
    pub below: Arc<AtomicBool>,
}

impl BufferLevel {
    /// Sets the flag from the unsettled bytes the buffer holds now, logging
    /// each change.
    pub fn judge(&self, bytes: u64) {
        let below = bytes <= self.high_water;
        if self.below.swap(below, Ordering::Relaxed) != below {
            if below {
                tracing::info!(
                    bytes,
                    high_water = self.high_water,
                    "disk buffer below its high-water mark again; ready"
                );
            } else {
                tracing::warn!(
                    bytes,
                    high_water = self.high_water,
                    "disk buffer above its high-water mark; /ready answers 503"
                );
            }
        }
    }
}

/// Reads how many batches wait in one channel.
pub type QueueProbe = Box<dyn Fn() -> usize + Send>;

/// How often memcached readiness is judged.
pub const MEMCACHED_WINDOW: Duration = Duration::from_secs(2);

/// How often the indicator files' modification times are compared.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// Samples the channel depths into `dnsenrich_queue_depth{stage}` once a second,
/// and the disk buffer's levels into `dnsenrich_buffer_*` when there is one.
/// The probes hold receiver clones only to read lengths, and the buffer handle
/// only to read its counters; both are dropped at shutdown so the channels can
/// close and the buffer's lock is released.
/// The buffer's `/ready` flag goes down while it holds more than `high_water`
/// bytes of records the output has not settled, and up again below.
pub async fn watch_queues(
    probes: Vec<(&'static str, QueueProbe)>,
    buffer: Option<(DiskBuffer, BufferLevel)>,
    mut sd: Shutdown,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut corrupt_seen = 0;
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => {
                for (stage, probe) in &probes {
                    metrics::gauge!("dnsenrich_queue_depth", "stage" => *stage).set(probe() as f64);
                }
                if let Some((b, level)) = &buffer {
                    let stats = b.stats();
                    buffer::metrics::publish(&stats, &mut corrupt_seen);
                    level.judge(stats.unacked_bytes);
                }
            }
        }
    }
}

/// Sets `up` to whether every memcached server answers now.
async fn probe_memcached(stage: &Arc<EnrichStage>, up: &Arc<AtomicBool>) {
    let s = stage.clone();
    if let Ok(Some(answers)) = tokio::task::spawn_blocking(move || s.memcached_answers()).await {
        up.store(answers, Ordering::Relaxed);
    }
}

/// Reads the sync status key (see [`crate::indicator::freshness`]) at start
/// and every `every`: exports `dnsenrich_indicators_age_seconds`,
/// `dnsenrich_indicators_expire_in_seconds` and
/// `dnsenrich_indicators_status_present`, warns when the indicators are about
/// to expire or have, and from the first time a status was seen keeps the
/// `indicators` part of `/ready` down while there is none (they expired).
/// Keys written by other tools carry no status: that is said once, and
/// readiness is left alone. Ends on shutdown.
pub async fn watch_freshness(
    stage: Arc<EnrichStage>,
    readiness: Arc<telemetry::Readiness>,
    every: Duration,
    mut sd: Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    let mut fresh: Option<Arc<AtomicBool>> = None;
    let (mut said_absent, mut said_running_out) = (false, false);
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => {}
        }
        let s = stage.clone();
        let Ok(Some(answer)) = tokio::task::spawn_blocking(move || s.sync_status()).await else {
            return;
        };
        // memcached not answering is memcached readiness's business.
        let Ok(status) = answer else { continue };
        let now = chrono::Utc::now().timestamp();
        match status {
            Some(st) => {
                metrics::gauge!("dnsenrich_indicators_status_present").set(1.0);
                metrics::gauge!("dnsenrich_indicators_age_seconds").set(st.age_secs(now) as f64);
                metrics::gauge!("dnsenrich_indicators_expire_in_seconds")
                    .set(st.expires_in_secs(now) as f64);
                match &fresh {
                    Some(f) => f.store(true, Ordering::Relaxed),
                    None => {
                        tracing::info!(
                            synced_secs_ago = st.age_secs(now),
                            expire_in_secs = st.expires_in_secs(now),
                            keys = st.keys,
                            "indicators in memcached written by dnsenrich sync"
                        );
                        fresh = Some(readiness.register("indicators", true));
                    }
                }
                if st.running_out(now) && !said_running_out {
                    tracing::warn!(
                        expire_in_secs = st.expires_in_secs(now),
                        ttl_secs = st.ttl_secs,
                        "indicators expire soon and no newer sync has run: schedule `dnsenrich sync` (dnsenrich-sync.timer) or give run a [sync] section"
                    );
                }
                said_running_out = st.running_out(now);
                said_absent = false;
            }
            None => {
                metrics::gauge!("dnsenrich_indicators_status_present").set(0.0);
                if let Some(f) = &fresh {
                    if f.swap(false, Ordering::Relaxed) {
                        tracing::warn!(
                            "the indicators in memcached have expired (their sync status key is gone): every lookup is a miss until `dnsenrich sync` runs again"
                        );
                    }
                } else if !said_absent {
                    tracing::warn!(
                        "no sync status in memcached: the indicators were written by another tool or not yet, so their age is unknown"
                    );
                    said_absent = true;
                }
            }
        }
    }
}

/// Marks memcached down (`up` false) when, over one `window`, lookups failed
/// and none was answered; up again as soon as one is. Ends on shutdown.
pub async fn watch_memcached(
    stage: Arc<EnrichStage>,
    up: Arc<AtomicBool>,
    window: Duration,
    mut sd: Shutdown,
) {
    // Ready only once memcached has answered since start: a server down from
    // the start is not reported ready until the first lookup fails.
    probe_memcached(&stage, &up).await;
    let mut before = stage.stats();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + window, window);
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => {
                let now = stage.stats();
                let answered = (now.memcached_hits + now.memcached_misses)
                    > (before.memcached_hits + before.memcached_misses);
                let failed = (now.memcached_errors + now.memcached_timeouts + now.memcached_down)
                    > (before.memcached_errors + before.memcached_timeouts + before.memcached_down);
                if answered {
                    up.store(true, Ordering::Relaxed);
                } else if failed {
                    up.store(false, Ordering::Relaxed);
                } else {
                    // No lookups in this window: ask the servers instead.
                    probe_memcached(&stage, &up).await;
                }
                before = now;
            }
        }
    }
}

/// Re-reads the indicator files on the blocking pool; on error the previous
/// indicators stay in use. The one reload, for SIGHUP and for a changed file.
pub fn reload_indicators(stage: &Arc<EnrichStage>) -> JoinHandle<()> {
    let stage = stage.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = stage.reload() {
            tracing::error!(error = %e, "indicator files not reloaded; the previous ones stay in use");
        }
    })
}

/// Reloads the indicator files when one of them changes (a sync job rewrote
/// it), checking modification times every few seconds. Ends on shutdown.
pub async fn reload_on_change(files: Vec<PathBuf>, stage: Arc<EnrichStage>, mut sd: Shutdown) {
    let stamp = |files: &[PathBuf]| -> Vec<Option<SystemTime>> {
        files
            .iter()
            .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut last = stamp(&files);
    let mut tick = tokio::time::interval(RELOAD_CHECK);
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => {
                let now = stamp(&files);
                if now != last {
                    last = now;
                    let _ = reload_indicators(&stage).await;
                }
            }
        }
    }
}

/// Runs `[sync]` on its schedule until shutdown.
pub async fn sync_indicators(cfg: SyncConfig, sd: Shutdown) {
    if let Err(e) = crate::sync::run_every(cfg, sd).await {
        tracing::error!(error = %e, "background indicator sync stopped");
    }
}

/// What went through the daemon between two throughput summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throughput {
    pub lines: u64,
    pub unmatched: u64,
    pub stored: u64,
    pub dead_lettered: u64,
}

impl Throughput {
    /// The totals now, from the parse workers' and the output's counters.
    pub fn now(parsed: &DecodeStats, output: &OutputReport) -> Self {
        Throughput {
            lines: parsed.lines,
            unmatched: parsed.no_match,
            stored: output.stored + output.duplicates,
            dead_lettered: output.dead_lettered,
        }
    }

    /// What was added since `before` (counters only grow).
    pub fn since(self, before: Throughput) -> Self {
        Throughput {
            lines: self.lines.saturating_sub(before.lines),
            unmatched: self.unmatched.saturating_sub(before.unmatched),
            stored: self.stored.saturating_sub(before.stored),
            dead_lettered: self.dead_lettered.saturating_sub(before.dead_lettered),
        }
    }
}

/// Every `every`, one `info` line with what went through since the last one
/// (`[log] summary_interval_secs`), so a glance at the log shows the daemon
/// is moving without a metrics scraper.
pub async fn log_throughput(
    every: Duration,
    tally: Arc<Tally>,
    output: Arc<OutputStats>,
    mut sd: Shutdown,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Throughput::default();
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => {}
        }
        let now = Throughput::now(&tally.parsed(), &output.report());
        let d = now.since(last);
        last = now;
        tracing::info!(
            interval_secs = every.as_secs(),
            lines = d.lines,
            lines_per_sec = (d.lines as f64 / every.as_secs_f64()).round() as u64,
            unmatched = d.unmatched,
            stored = d.stored,
            dead_lettered = d.dead_lettered,
            "throughput"
        );
    }
}

/// Tells systemd every `every` that the daemon is alive, until shutdown.
/// Start it only after READY=1: its first tick fires at once, and systemd
/// expects readiness first.
pub async fn watchdog(every: Duration, mut sd: Shutdown) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => telemetry::sd_notify("WATCHDOG=1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::shutdown;

    #[test]
    fn a_throughput_summary_counts_what_was_added_since_the_last() {
        let parsed = |lines, no_match| DecodeStats {
            lines,
            no_match,
            ..Default::default()
        };
        let out = |stored, duplicates, dead_lettered| OutputReport {
            stored,
            duplicates,
            dead_lettered,
            ..Default::default()
        };
        let first = Throughput::now(&parsed(100, 3), &out(90, 2, 1));
        assert_eq!(
            first,
            Throughput {
                lines: 100,
                unmatched: 3,
                stored: 92,
                dead_lettered: 1
            }
        );
        let second = Throughput::now(&parsed(250, 3), &out(240, 2, 4));
        assert_eq!(
            second.since(first),
            Throughput {
                lines: 150,
                unmatched: 0,
                stored: 150,
                dead_lettered: 3
            }
        );
    }

    #[tokio::test]
    async fn the_memcached_watcher_ends_on_shutdown() {
        let (trigger, sd) = shutdown::channel();
        let up = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(watch_memcached(
            Arc::new(EnrichStage::off()),
            up.clone(),
            Duration::from_millis(10),
            sd,
        ));
        // It keeps running while nothing stops it ...
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished());
        // ... and ends soon after the trigger, without a lookup ever failing.
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the watcher did not stop on shutdown")
            .unwrap();
        assert!(up.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn every_watcher_ends_on_shutdown() {
        let (trigger, sd) = shutdown::channel();
        let stage = Arc::new(EnrichStage::off());
        let tasks = [
            tokio::spawn(watch_queues(
                vec![("parse", Box::new(|| 0))],
                None,
                sd.clone(),
            )),
            tokio::spawn(reload_on_change(
                vec!["/nonexistent/indicators.txt".into()],
                stage,
                sd.clone(),
            )),
            tokio::spawn(watchdog(Duration::from_secs(3600), sd)),
        ];
        trigger.trigger();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(1), t)
                .await
                .expect("a watcher did not stop on shutdown")
                .unwrap();
        }
    }
}
