//! The `run` command: builds every stage from a [`Config`], wires them with
//! bounded channels, and runs until SIGTERM or SIGINT.
//!
//! ```text
//!  inputs (tokio) ─► parse threads ─► enrich threads ─► output (tokio)
//! ```
//!
//! Shutdown: the signal stops the inputs; each drops its sender after handing
//! on what it holds; the parse and enrich threads finish their channels and
//! exit; the output settles what it took in and returns. The whole drain has
//! `shutdown_timeout_secs`; past that, what is still in flight is abandoned
//! without acknowledgement (file offsets are not advanced past it, so a restart
//! reads it again). SIGHUP reopens the output and dead-letter files.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, PipelineConfig};
use crate::decode::DecodeStats;
use crate::enrich::EnrichStage;
use crate::grammar::GrammarSet;
use crate::input::Inputs;
use crate::input::{TcpInput, UdpInput};
use crate::output::{reopen_channel, Output, OutputReport};
use crate::pipeline::{EncodedBatch, EventBatch, FrameBatch};
use crate::shutdown::{self, Shutdown};
use crate::telemetry::{self, Readiness};
use crate::workers::{spawn_enrichers, spawn_parsers, ParseSettings};

/// Reads how many batches wait in one channel.
type QueueProbe = Box<dyn Fn() -> usize + Send>;

/// Samples the channel depths into `dnsenrich_queue_depth{stage}` once a second.
/// The probes hold receiver clones only to read lengths; they are dropped at
/// shutdown so the channels can close.
async fn watch_queues(probes: [(&'static str, QueueProbe); 3], mut sd: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => {
                for (stage, probe) in &probes {
                    metrics::gauge!("dnsenrich_queue_depth", "stage" => *stage).set(probe() as f64);
                }
            }
        }
    }
}

/// Marks memcached down when, over two seconds, lookups failed and none was
/// answered; up again as soon as one is. Runs until the process exits.
fn watch_memcached(stage: &EnrichStage, up: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let mut before = stage.stats();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = stage.stats();
        let answered = (now.memcached_hits + now.memcached_misses)
            > (before.memcached_hits + before.memcached_misses);
        let failed = (now.memcached_errors + now.memcached_timeouts + now.memcached_down)
            > (before.memcached_errors + before.memcached_timeouts + before.memcached_down);
        if answered {
            up.store(true, Ordering::Relaxed);
        } else if failed {
            up.store(false, Ordering::Relaxed);
        }
        before = now;
    }
}

/// Reloads the indicator files when one of them changes (a sync job rewrote
/// it), checking modification times every few seconds.
async fn reload_on_change(
    files: Vec<std::path::PathBuf>,
    stage: Arc<EnrichStage>,
    mut sd: Shutdown,
) {
    let stamp = |files: &[std::path::PathBuf]| -> Vec<Option<std::time::SystemTime>> {
        files
            .iter()
            .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut last = stamp(&files);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = sd.recv() => return,
            _ = tick.tick() => {
                let now = stamp(&files);
                if now != last {
                    last = now;
                    let stage = stage.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Err(e) = stage.reload() {
                            tracing::error!(error = %e, "indicator files changed but could not be reloaded");
                        }
                    })
                    .await;
                }
            }
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Default)]
pub struct RunReport {
    pub parse: DecodeStats,
    pub output: OutputReport,
    /// The drain did not finish within the shutdown timeout.
    pub timed_out: bool,
}

/// A configuration turned into bound sockets and opened files, not yet running.
/// Binding first lets `run` fail fast (and tests learn the ports) before any
/// thread starts.
pub struct Daemon {
    cfg: Config,
    inputs: Inputs,
    output: Output,
    grammars: Arc<GrammarSet>,
    metrics_listener: Option<tokio::net::TcpListener>,
    enrich: Arc<EnrichStage>,
    signals: Signals,
}

/// The signals the daemon answers, registered when it is built: a SIGTERM
/// that arrives once the inputs are bound (and announced) is a drain, not
/// the default of dying on the spot.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }
}

impl Daemon {
    /// Checks the configuration, compiles grammars, binds inputs and prepares
    /// the output. Registers the signal handlers first; call it within the
    /// Tokio runtime.
    pub fn build(mut cfg: Config) -> anyhow::Result<Daemon> {
        let signals = Signals::install()?;
        cfg.validate()?;
        let grammars = Arc::new(GrammarSet::with_files(&cfg.parse.grammars)?);
        if cfg.input.file.state_dir == crate::input::FileConfig::default().state_dir {
            cfg.input.file.state_dir = cfg.state_dir.clone();
        }
        // Files wait for their last batches to be stored for as long as the
        // whole drain may take, so a clean stop commits everything shipped.
        cfg.input.file.ack_wait = Some(
            Duration::from_secs(cfg.shutdown_timeout_secs)
                .saturating_sub(Duration::from_millis(500)),
        );
        let output = cfg
            .output
            .clone()
            .with_state_dir(&cfg.state_dir)
            .build()
            .context("setting up the output")?;
        let enrich = Arc::new(cfg.enrich.build().context("setting up enrichment")?);
        if enrich.is_active() {
            tracing::info!(
                memcached = ?enrich.memcached_servers(),
                indicators_in_files = enrich.store_keys(),
                "threat-intelligence lookups on"
            );
        }
        let inherited = telemetry::inherited_sockets();
        let inputs = if inherited.udp.is_empty() && inherited.tcp.is_empty() {
            cfg.input.build().context("setting up the inputs")?
        } else {
            // Socket activation: systemd's sockets replace the configured UDP and
            // TCP addresses; TLS and files are set up as configured.
            tracing::info!(
                udp = inherited.udp.len(),
                tcp = inherited.tcp.len(),
                "using sockets handed over by systemd"
            );
            let mut rest = cfg.input.clone();
            rest.udp.listen.clear();
            rest.tcp.listen.clear();
            let mut inputs = rest.build().context("setting up the inputs")?;
            if !inherited.udp.is_empty() {
                inputs.udp = Some(UdpInput::from_std(&cfg.input.udp, inherited.udp)?);
            }
            if !inherited.tcp.is_empty() {
                inputs.tcp = Some(TcpInput::from_std(&cfg.input.tcp, inherited.tcp)?);
            }
            inputs
        };
        let metrics_listener = match cfg.metrics.listen {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
                l.set_nonblocking(true)?;
                Some(tokio::net::TcpListener::from_std(l)?)
            }
            None => None,
        };
        Ok(Daemon {
            cfg,
            inputs,
            output,
            grammars,
            metrics_listener,
            enrich,
            signals,
        })
    }

    /// Where the metrics listener is, if on.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The inputs, bound (their addresses are known).
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// Runs until `stop` resolves (or a signal arrives), then drains.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<RunReport> {
        let Daemon {
            cfg,
            inputs,
            output,
            grammars,
            metrics_listener,
            enrich,
            signals,
        } = self;
        let prometheus = telemetry::install_recorder();
        let readiness = Arc::new(Readiness::default());
        readiness.register_flag("output", output.stats().reachable.clone());
        if !enrich.memcached_servers().is_empty() {
            let flag = readiness.register("memcached", true);
            let stage = enrich.clone();
            std::thread::Builder::new()
                .name("memcached-ready".into())
                .spawn(move || watch_memcached(&stage, &flag))
                .context("starting the memcached readiness watcher")?;
        }
        let cap = cfg.pipeline.channel_batches;
        let (frame_tx, frame_rx) = flume::bounded::<FrameBatch>(cap);
        let (event_tx, event_rx) = flume::bounded::<EventBatch>(cap);
        let (enc_tx, enc_rx) = flume::bounded::<EncodedBatch>(cap);
        let frame_probe: QueueProbe = {
            let r = frame_rx.clone();
            Box::new(move || r.len())
        };
        let event_probe: QueueProbe = {
            let r = event_rx.clone();
            Box::new(move || r.len())
        };
        let enc_probe: QueueProbe = {
            let r = enc_rx.clone();
            Box::new(move || r.len())
        };

        let settings = ParseSettings {
            grammars,
            zone: cfg.zone().map_err(anyhow::Error::msg)?,
            max_line: cfg.parse.max_line_bytes,
            keep_original: cfg.parse.keep_original,
        };
        let parsers = spawn_parsers(
            PipelineConfig::threads(cfg.pipeline.parse_workers),
            &settings,
            frame_rx,
            event_tx,
        );
        let enrichers = spawn_enrichers(
            PipelineConfig::threads(cfg.pipeline.enrich_workers),
            || enrich.enricher(),
            event_rx,
            enc_tx,
        );

        let (reopen_tx, reopen_rx) = reopen_channel();
        let output_task = tokio::spawn(output.run(enc_rx, reopen_rx));
        let (trigger, sd) = shutdown::channel();
        let inputs_task = tokio::spawn(inputs.run(frame_tx, sd.clone()));
        if let Some(l) = metrics_listener {
            tokio::spawn(telemetry::serve(l, prometheus, readiness, sd.clone()));
        }
        tokio::spawn(watch_queues(
            [
                ("parse", frame_probe),
                ("enrich", event_probe),
                ("output", enc_probe),
            ],
            sd.clone(),
        ));
        if cfg.sync_enabled() {
            let (sync_cfg, sd) = (cfg.sync.clone(), sd.clone());
            tokio::spawn(async move {
                if let Err(e) = crate::sync::run_every(sync_cfg, sd).await {
                    tracing::error!(error = %e, "background indicator sync stopped");
                }
            });
        }
        if !cfg.enrich.ioc_files.is_empty() {
            tokio::spawn(reload_on_change(
                cfg.enrich.ioc_files.clone(),
                enrich.clone(),
                sd.clone(),
            ));
        }
        telemetry::sd_notify("READY=1");
        // The watchdog starts only after READY=1 has been sent: its first tick
        // fires at once, on another thread, and systemd expects readiness first.
        if let Some(every) = telemetry::watchdog_interval() {
            let mut sd = sd.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = sd.recv() => return,
                        _ = tick.tick() => telemetry::sd_notify("WATCHDOG=1"),
                    }
                }
            });
        }

        let Signals {
            mut hup,
            mut term,
            mut int,
        } = signals;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = term.recv() => { tracing::info!("SIGTERM: draining"); break }
                _ = int.recv() => { tracing::info!("SIGINT: draining"); break }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reopening output files, reloading indicator files");
                    reopen_tx.trigger();
                    let stage = enrich.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = stage.reload() {
                            tracing::error!(error = %e, "indicator files not reloaded; the previous ones stay in use");
                        }
                    });
                }
            }
        }
        telemetry::sd_notify("STOPPING=1");
        trigger.trigger();

        let deadline = Duration::from_secs(cfg.shutdown_timeout_secs);
        let drain = async {
            let _ = inputs_task.await;
            let parse = tokio::task::spawn_blocking(move || {
                let mut total = DecodeStats::default();
                for h in parsers {
                    if let Ok(s) = h.join() {
                        total.add(&s);
                    }
                }
                for h in enrichers {
                    let _ = h.join();
                }
                total
            })
            .await
            .unwrap_or_default();
            let output = match output_task.await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "the output stopped with an error");
                    OutputReport::default()
                }
                Err(e) => {
                    tracing::error!(error = %e, "the output task failed");
                    OutputReport::default()
                }
            };
            RunReport {
                parse,
                output,
                timed_out: false,
            }
        };
        match tokio::time::timeout(deadline, drain).await {
            Ok(report) => Ok(report),
            Err(_) => {
                tracing::warn!(
                    timeout_secs = cfg.shutdown_timeout_secs,
                    "shutdown timed out; events still in flight were not acknowledged and will be re-read from files on restart"
                );
                Ok(RunReport {
                    timed_out: true,
                    ..Default::default()
                })
            }
        }
    }
}
