//! The wiring: builds every stage from a [`ValidConfig`], connects them with
//! bounded channels, and runs until SIGTERM or SIGINT (the `run` command).
//!
//! ```text
//!  inputs (tokio) ─► parse threads ─► enrich threads ─► output (tokio)
//!                 background: queue depths, memcached readiness,
//!                 indicator reload, sync, metrics, watchdog
//! ```
//!
//! [`Daemon::run_until`] is four steps, in this order:
//!
//! 1. `start_stages` — the data flow, one channel and one entry per stage in
//!    flow order (the batch types are in [`batch`], the CPU stages in
//!    [`stages`]). A new stage, such as a correlation stage between parse and
//!    enrich, is a new entry there and nothing else. With `[buffer] type =
//!    "disk"` the disk buffer is one more entry in front of the output: the
//!    encoders' channel goes into the buffer's writer (inputs are acknowledged
//!    once their documents are durable) and the buffer's reader feeds the
//!    channel the output reads.
//! 2. `start_background` — the tasks beside the data flow ([`background`]),
//!    each holding a [`Shutdown`]; then READY=1.
//! 3. `wait_for_stop` — answers SIGHUP (reopen output files, reload indicator
//!    files) until a stop signal.
//! 4. `drain` — the shutdown trigger stops the inputs; each drops its sender
//!    after handing on what it holds; the CPU stages finish their channels and
//!    exit, joined in flow order; the output settles what it took in and
//!    returns. The whole drain has `shutdown_timeout_secs`; past that, what is
//!    still in flight is abandoned without acknowledgement (file offsets are
//!    not advanced past it, so a restart reads it again). With a disk buffer
//!    the drain ends once the buffer is synced and closed: the output gets
//!    [`BUFFERED_OUTPUT_GRACE`] to settle what it holds, and whatever it has
//!    not settled stays on disk for the next start.

pub mod background;
pub mod batch;
pub mod context;
pub mod shutdown;
pub mod stages;
pub mod tally;
pub mod wakeups;

pub use batch::*;
pub use context::BuildContext;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use self::background::QueueProbe;
use self::shutdown::{reopen_channel, ReopenSignal, ReopenTrigger, Shutdown};
use self::stages::{spawn_enrichers, spawn_parsers, ParseSettings};
use self::tally::{Abandoned, Tally};
use crate::config::{PipelineConfig, ValidConfig};
use crate::correlate::{spawn_correlator, TxnStats};
use crate::decode::DecodeStats;
use crate::enrich::{EnrichError, EnrichStage};
use crate::input::{InputError, Inputs};
use crate::input::{TcpInput, UdpInput};
use crate::output::buffer::{self, Appended, BufferError, BufferType, BufferWriter, DiskBuffer};
use crate::output::{Output, OutputError, OutputReport, OutputStats};
use crate::telemetry::{self, Readiness};

/// Why the daemon could not start. The stages' own errors name their key or
/// their file already, so they pass through unchanged.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("installing the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Enrich(#[from] EnrichError),
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("metrics.listen: cannot listen on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What a finished run reports.
#[derive(Debug, Default)]
pub struct RunReport {
    pub parse: DecodeStats,
    /// What the correlation stage counted (all zero with `events = "lines"`).
    pub transactions: TxnStats,
    pub output: OutputReport,
    /// The drain did not finish within the shutdown timeout.
    pub timed_out: bool,
    /// What a drain that timed out left in the pipeline, by its fate.
    pub abandoned: Abandoned,
}

/// A configuration turned into bound sockets and opened files, not yet running.
/// Binding first lets `run` fail fast (and tests learn the ports) before any
/// thread starts.
pub struct Daemon {
    cfg: ValidConfig,
    ctx: BuildContext,
    inputs: Inputs,
    output: Output,
    metrics_listener: Option<tokio::net::TcpListener>,
    enrich: Arc<EnrichStage>,
    /// The disk buffer, open (and locked) when `[buffer] type = "disk"`.
    buffer: Option<DiskBuffer>,
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
    fn install() -> Result<Signals, DaemonError> {
        let install = |signal_name, kind| {
            signal(kind).map_err(|source| DaemonError::Signal {
                signal: signal_name,
                source,
            })
        };
        Ok(Signals {
            hup: install("SIGHUP", SignalKind::hangup())?,
            term: install("SIGTERM", SignalKind::terminate())?,
            int: install("SIGINT", SignalKind::interrupt())?,
        })
    }
}

/// A started CPU stage as one join of its threads, which adds what they
/// counted to the report.
type StageJoin = Box<dyn FnOnce(&mut RunReport) + Send>;

/// The data flow once started (step 1), held until the drain (step 4).
struct Running {
    inputs: JoinHandle<()>,
    /// The CPU stages in flow order.
    stages: Vec<StageJoin>,
    output: JoinHandle<Result<OutputReport, OutputError>>,
    /// The disk buffer's two tasks, when there is one.
    buffer: Option<BufferTasks>,
    /// What is in flight and what was parsed, for a drain that times out.
    tally: Arc<Tally>,
    /// The parse channel, to count what no worker took at the deadline.
    unparsed: flume::Receiver<FrameBatch>,
    /// The output's live counters, for a drain that stops it unfinished.
    output_stats: Arc<OutputStats>,
}

/// The disk buffer as a stage: `fill` appends what the encoders send and
/// closes the writer when they are done; `forward` feeds the output.
struct BufferTasks {
    fill: JoinHandle<()>,
    forward: JoinHandle<()>,
}

/// With a disk buffer, how long a stop waits for the output to settle what it
/// holds once the buffer is closed. Anything it has not settled by then stays
/// in the buffer and is sent after the next start, so the stop never waits for
/// an output that is down.
pub const BUFFERED_OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// One bounded channel into the stage `name`, with a probe of its depth for
/// `dnsenrich_queue_depth{stage=name}`.
fn queue<T: Send + 'static>(
    cap: usize,
    name: &'static str,
    probes: &mut Vec<(&'static str, QueueProbe)>,
) -> (flume::Sender<T>, flume::Receiver<T>) {
    let (tx, rx) = flume::bounded::<T>(cap);
    let probe = rx.clone();
    probes.push((name, Box::new(move || probe.len())));
    (tx, rx)
}

/// A stage's threads as one join, for [`Running::stages`].
fn joined<T: Send + 'static>(
    handles: Vec<std::thread::JoinHandle<T>>,
    add: impl Fn(&mut RunReport, T) + Send + 'static,
) -> StageJoin {
    Box::new(move |report| {
        for h in handles {
            if let Ok(counted) = h.join() {
                add(report, counted);
            }
        }
    })
}

impl Daemon {
    /// What is configured, for the metrics created at zero.
    fn metric_parts(&self) -> telemetry::zero::Parts {
        let i = &self.inputs;
        let inputs = [
            ("udp", i.udp.is_some()),
            ("tcp", i.tcp.is_some()),
            ("tls", i.tls.is_some()),
            ("relp", i.relp.is_some()),
            ("file", i.file.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        telemetry::zero::Parts {
            inputs,
            enrich: self.enrich.is_active(),
            memcached: !self.enrich.memcached_servers().is_empty(),
            elasticsearch: matches!(self.output, Output::Elasticsearch(_)),
            buffer: self.buffer.is_some(),
            transactions: self.cfg.events.correlates(),
        }
    }

    /// Prepares the output, loads the indicators and binds the inputs, with
    /// the daemon-wide settings of `ctx`; the configuration was checked (and
    /// its grammars compiled) once, by [`crate::config::Config::check`].
    /// Registers the signal handlers first; call it within the Tokio runtime.
    pub fn build(cfg: ValidConfig, ctx: BuildContext) -> Result<Daemon, DaemonError> {
        let signals = Signals::install()?;
        let output = ctx.output(&cfg.output).build()?;
        let enrich = Arc::new(cfg.enrich.build_with(cfg.indicators())?);
        if enrich.is_active() {
            tracing::info!(
                memcached = ?enrich.memcached_servers(),
                indicators_in_files = enrich.store_keys(),
                "threat-intelligence lookups on"
            );
        }
        let buffer = Self::open_buffer(&cfg, &ctx)?;
        let inputs = Self::bind_inputs(&cfg, &ctx)?;
        let metrics_listener = match cfg.metrics.listen {
            Some(addr) => {
                let err = |source| DaemonError::Metrics { addr, source };
                let l = std::net::TcpListener::bind(addr).map_err(err)?;
                l.set_nonblocking(true).map_err(err)?;
                Some(tokio::net::TcpListener::from_std(l).map_err(err)?)
            }
            None => None,
        };
        Ok(Daemon {
            cfg,
            ctx,
            inputs,
            output,
            metrics_listener,
            enrich,
            buffer,
            signals,
        })
    }

    /// Opens the disk buffer under the state directory, recovering what a
    /// previous run left, and logs what recovery found; `None` in memory mode.
    fn open_buffer(
        cfg: &ValidConfig,
        ctx: &BuildContext,
    ) -> Result<Option<DiskBuffer>, DaemonError> {
        let bcfg = ctx.buffer(&cfg.buffer);
        if bcfg.kind != BufferType::Disk {
            return Ok(None);
        }
        let (buf, report) = DiskBuffer::open(&bcfg.path, bcfg.disk_options())?;
        buffer::metrics::describe();
        for d in &report.truncated {
            tracing::warn!(
                segment = %d.segment.display(),
                start = d.start,
                end = d.end,
                "disk buffer: torn tail cut off (written, never acknowledged to an input)"
            );
        }
        for d in &report.corrupt {
            tracing::warn!(
                segment = %d.segment.display(),
                start = d.start,
                end = d.end,
                "disk buffer: damaged range skipped"
            );
        }
        tracing::info!(
            path = %buf.path().display(),
            segments = report.segments,
            records = report.records,
            documents = report.documents,
            corrupt = report.corrupt.len(),
            "disk buffer open; unsent documents are sent first"
        );
        Ok(Some(buf))
    }

    /// Binds the configured inputs, or takes systemd's sockets (socket
    /// activation): they replace the configured UDP and TCP addresses; TLS and
    /// files are set up as configured.
    fn bind_inputs(cfg: &ValidConfig, ctx: &BuildContext) -> Result<Inputs, DaemonError> {
        let mut wanted = ctx.inputs(&cfg.input);
        let inherited = telemetry::inherited_sockets();
        if inherited.udp.is_empty() && inherited.tcp.is_empty() {
            return Ok(wanted.build()?);
        }
        tracing::info!(
            udp = inherited.udp.len(),
            tcp = inherited.tcp.len(),
            "using sockets handed over by systemd"
        );
        wanted.udp.listen.clear();
        wanted.tcp.listen.clear();
        let mut inputs = wanted.build()?;
        if !inherited.udp.is_empty() {
            inputs.udp = Some(UdpInput::from_std(&cfg.input.udp, inherited.udp)?);
        }
        if !inherited.tcp.is_empty() {
            inputs.tcp = Some(TcpInput::from_std(&cfg.input.tcp, inherited.tcp)?);
        }
        Ok(inputs)
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
    ) -> Result<RunReport, DaemonError> {
        // Installed before any stage runs, so no count is lost.
        let prometheus = telemetry::install_recorder();
        telemetry::zero::register(&self.metric_parts());
        let readiness = Arc::new(Readiness::default());
        readiness.register_flag("output", self.output.stats().reachable.clone());
        // One node of several down is worth saying, not a reason to stop
        // taking traffic: the others carry it.
        for (url, up) in self.output.node_flags() {
            readiness.register_degraded(format!("elasticsearch node {url}"), "down", up);
        }
        let (trigger, sd) = shutdown::channel();
        let (reopen, reopen_rx) = reopen_channel();
        let mut probes = Vec::new();

        let Daemon {
            cfg,
            ctx,
            inputs,
            output,
            metrics_listener,
            enrich,
            buffer,
            signals,
        } = self;
        // A target the server cannot take stops the daemon here, with the
        // reason, before any input is read. A server that does not answer
        // (hung, or slow behind a proxy) does not hold the start up: after
        // START_CHECK the daemon starts as with a server that is down, and
        // keeps the events until it answers.
        match tokio::time::timeout(START_CHECK, output.prepare()).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!(
                waited_ms = START_CHECK.as_millis() as u64,
                "the output did not answer the start-up check in time; starting anyway (events are kept until it answers)"
            ),
        }
        let running = start_stages(
            &cfg,
            &enrich,
            inputs,
            output,
            buffer.as_ref(),
            reopen_rx,
            &mut probes,
            &sd,
        );
        let metrics = metrics_listener.map(|l| (l, prometheus));
        start_background(&cfg, &enrich, metrics, readiness, probes, buffer, &sd);
        if cfg.log.summary_interval_secs > 0 {
            tokio::spawn(background::log_throughput(
                Duration::from_secs(cfg.log.summary_interval_secs),
                running.tally.clone(),
                running.output_stats.clone(),
                sd.clone(),
            ));
        }
        wait_for_stop(signals, stop, &reopen, &enrich).await;
        telemetry::sd_notify("STOPPING=1");
        trigger.trigger();
        Ok(drain(running, ctx.drain_deadline).await)
    }
}

/// Step 1: the data flow. One channel into each stage and one entry per
/// stage, in flow order; the output starts before the inputs so nothing
/// waits on a stage that is not there yet.
#[allow(clippy::too_many_arguments)]
fn start_stages(
    cfg: &ValidConfig,
    enrich: &Arc<EnrichStage>,
    inputs: Inputs,
    output: Output,
    buffer: Option<&DiskBuffer>,
    reopen: ReopenSignal,
    probes: &mut Vec<(&'static str, QueueProbe)>,
    sd: &Shutdown,
) -> Running {
    let cap = cfg.pipeline.channel_batches;
    let (to_parse, frames) = queue::<FrameBatch>(cap, "parse", probes);
    let (to_enrich, events) = queue::<EventBatch>(cap, "enrich", probes);
    let (to_output, encoded) = queue::<EncodedBatch>(cap, "output", probes);
    // The encoders write into the disk buffer when there is one, else
    // straight into the output's channel.
    let (to_encoded, buffer) = match buffer {
        Some(buf) => {
            let (to_buffer, for_buffer) = queue::<EncodedBatch>(cap, "buffer", probes);
            let tasks = BufferTasks {
                fill: tokio::spawn(fill_buffer(buf.writer(), for_buffer)),
                forward: tokio::spawn(buf.reader().forward(to_output)),
            };
            (to_buffer, Some(tasks))
        }
        None => (to_output, None),
    };

    let tally = Arc::new(Tally::default());
    let unparsed = frames.clone();
    let output_stats = output.stats();
    let parse = ParseSettings {
        grammars: cfg.grammars().clone(),
        zone: cfg.zone().clone(),
        max_line: cfg.parse.max_line_bytes,
        keep_original: cfg.parse.keep_original,
        data_stream: cfg.output.data_stream_namespace(),
        tally: tally.clone(),
        ordered: cfg.events.correlates(),
    };
    let threads = PipelineConfig::threads;
    // With transactions on, the parse workers write into the correlation
    // stage, which writes into the enrichers' channel.
    let (parsed, correlate) = if cfg.events.correlates() {
        let (to_correlate, lines) = queue::<EventBatch>(cap, "correlate", probes);
        let handle = spawn_correlator(cfg.events, cfg.transactions.clone(), lines, to_enrich);
        let join = joined(vec![handle], |report, counted: TxnStats| {
            report.transactions.add(&counted)
        });
        (to_correlate, Some(join))
    } else {
        (to_enrich, None)
    };
    let mut stages = vec![joined(
        spawn_parsers(threads(cfg.pipeline.parse_workers), &parse, frames, parsed),
        |report, counted: DecodeStats| report.parse.add(&counted),
    )];
    stages.extend(correlate);
    stages.extend([joined(
        spawn_enrichers(
            threads(cfg.pipeline.enrich_workers),
            || enrich.enricher(),
            events,
            to_encoded,
        ),
        |_, ()| {},
    )]);
    let output = tokio::spawn(output.run(encoded, reopen));
    let inputs = tokio::spawn(inputs.run(to_parse, sd.clone()));
    Running {
        inputs,
        stages,
        output,
        buffer,
        tally,
        unparsed,
        output_stats,
    }
}

/// The disk buffer's writing end: appends each encoded batch (its inputs are
/// acknowledged once it is durable), and syncs and closes the buffer when the
/// encoders are done.
async fn fill_buffer(writer: BufferWriter, rx: flume::Receiver<EncodedBatch>) {
    while let Ok(batch) = rx.recv_async().await {
        match writer.append(batch).await {
            Ok(Appended::Stored) => {}
            // Counted in dnsenrich_buffer_dropped_total by the buffer.
            Ok(Appended::Dropped { documents }) => {
                tracing::debug!(documents, "disk buffer full: batch dropped");
            }
            Err(e) => {
                tracing::error!(error = %e, "disk buffer: batch not stored; its inputs are not acknowledged");
            }
        }
    }
    if let Err(e) = writer.close().await {
        tracing::error!(error = %e, "disk buffer: closing failed; unsynced batches are sent again after a restart");
    }
}

/// Step 2: every background task, each ending on `sd`; then READY=1 and the
/// watchdog. The probes read the channel depths; `metrics` is the listener
/// for `/metrics`, `/health` and `/ready`, if on.
fn start_background(
    cfg: &ValidConfig,
    enrich: &Arc<EnrichStage>,
    metrics: Option<(tokio::net::TcpListener, PrometheusHandle)>,
    readiness: Arc<Readiness>,
    probes: Vec<(&'static str, QueueProbe)>,
    buffer: Option<DiskBuffer>,
    sd: &Shutdown,
) {
    if !enrich.memcached_servers().is_empty() {
        let up = readiness.register("memcached", false);
        let window = background::MEMCACHED_WINDOW;
        tokio::spawn(background::watch_memcached(
            enrich.clone(),
            up,
            window,
            sd.clone(),
        ));
    }
    if !enrich.memcached_servers().is_empty() && cfg.enrich.freshness_check_secs > 0 {
        tokio::spawn(background::watch_freshness(
            enrich.clone(),
            readiness.clone(),
            Duration::from_secs(cfg.enrich.freshness_check_secs),
            sd.clone(),
        ));
    }
    let buffer = buffer.map(|b| {
        let level = background::BufferLevel {
            high_water: cfg.buffer.high_water_bytes(),
            below: Arc::new(AtomicBool::new(true)),
        };
        readiness.register_part("buffer", "above its high-water mark", level.below.clone());
        (b, level)
    });
    if let Some((listener, prometheus)) = metrics {
        tokio::spawn(telemetry::serve(
            listener,
            prometheus,
            readiness,
            sd.clone(),
        ));
    }
    tokio::spawn(background::watch_queues(probes, buffer, sd.clone()));
    if cfg.sync_enabled() {
        tokio::spawn(background::sync_indicators(cfg.sync.clone(), sd.clone()));
    }
    if !cfg.enrich.ioc_files.is_empty() {
        let files = cfg.enrich.ioc_files.clone();
        tokio::spawn(background::reload_on_change(
            files,
            enrich.clone(),
            sd.clone(),
        ));
    }
    telemetry::sd_notify("READY=1");
    if let Some(every) = telemetry::watchdog_interval() {
        tokio::spawn(background::watchdog(every, sd.clone()));
    }
}

/// How long the output's start-up check may hold the start.
const START_CHECK: Duration = Duration::from_secs(2);

/// Step 3: answers SIGHUP until `stop` resolves or SIGTERM or SIGINT arrives.
async fn wait_for_stop(
    signals: Signals,
    stop: impl std::future::Future<Output = ()>,
    reopen: &ReopenTrigger,
    enrich: &Arc<EnrichStage>,
) {
    let Signals {
        mut hup,
        mut term,
        mut int,
    } = signals;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = term.recv() => { tracing::info!("SIGTERM: draining"); return }
            _ = int.recv() => { tracing::info!("SIGINT: draining"); return }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reopening output files, reloading indicator files");
                reopen.trigger();
                // Not awaited: the signals are answered while the files load.
                drop(background::reload_indicators(enrich));
            }
        }
    }
}

/// Step 4: waits, within `deadline`, for the inputs to stop, the CPU stages to
/// finish in flow order and the output to settle.
async fn drain(running: Running, deadline: Duration) -> RunReport {
    let Running {
        mut inputs,
        stages,
        output,
        buffer,
        tally,
        unparsed,
        output_stats,
    } = running;
    let work = async {
        let _ = (&mut inputs).await;
        let mut report = tokio::task::spawn_blocking(move || {
            let mut report = RunReport::default();
            for join in stages {
                join(&mut report);
            }
            report
        })
        .await
        .unwrap_or_default();
        let output = match buffer {
            Some(b) => match settle_buffered(b, output).await {
                Some(finished) => finished,
                None => {
                    // Stopped unsettled: what it did so far still counts.
                    report.output = output_stats.report();
                    return report;
                }
            },
            None => output.await,
        };
        report.output = match output {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the output stopped with an error");
                output_stats.report()
            }
            Err(e) => {
                tracing::error!(error = %e, "the output task failed");
                output_stats.report()
            }
        };
        report
    };
    // A statement of its own, so `work` (which borrows `inputs`) is gone
    // before the timed-out arm looks at the inputs again.
    let finished = tokio::time::timeout(deadline, work).await;
    match finished {
        Ok(report) => report,
        Err(_) => {
            take_what_inputs_hold(&mut inputs, &unparsed, &tally).await;
            let abandoned = tally.abandoned();
            for (kind, n) in tally.in_flight() {
                if !matches!(kind, InputKind::File | InputKind::Relp) {
                    metrics::counter!(
                        "dnsenrich_events_dropped_total",
                        "input" => kind.as_str(),
                        "reason" => "shutdown_deadline"
                    )
                    .increment(n);
                }
            }
            let by_input: Vec<String> = tally
                .in_flight()
                .iter()
                .map(|(k, n)| format!("{}={n}", k.as_str()))
                .collect();
            tracing::warn!(
                timeout_secs = deadline.as_secs(),
                in_flight = %by_input.join(" "),
                reread_from_files = abandoned.reread,
                resent_by_relp_senders = abandoned.resent,
                lost = abandoned.lost,
                "shutdown timed out with the output not done: events from tailed files are read again on restart, RELP senders resend what was not answered, UDP, TCP and TLS events still queued are lost"
            );
            RunReport {
                parse: tally.parsed(),
                output: output_stats.report(),
                timed_out: true,
                abandoned,
                transactions: Default::default(),
            }
        }
    }
}

/// At the drain deadline, how long the inputs get to hand on the batches they
/// are still blocked sending (a connection's batch waiting for the merger, the
/// merger's waiting for the parse channel), once the channel is emptied for
/// them, so those frames are counted with the rest of what is abandoned.
const INPUT_HANDOFF_GRACE: Duration = Duration::from_millis(500);

/// Empties the parse channel into the tally until the inputs have stopped
/// (they stop reading at the shutdown trigger, so each only finishes the
/// hand-off it is blocked in) or [`INPUT_HANDOFF_GRACE`] has passed.
async fn take_what_inputs_hold(
    inputs: &mut JoinHandle<()>,
    unparsed: &flume::Receiver<FrameBatch>,
    tally: &Tally,
) {
    let give_up = tokio::time::Instant::now() + INPUT_HANDOFF_GRACE;
    loop {
        tally.add_untaken(unparsed.drain());
        if inputs.is_finished() || tokio::time::Instant::now() >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tally.add_untaken(unparsed.drain());
}

/// Closes the disk buffer once the encoders are done (syncing it, which fires
/// the last input acks), stops feeding the output, and gives the output
/// [`BUFFERED_OUTPUT_GRACE`] to settle what it already took. `None` when the
/// output was stopped unsettled: its records stay in the buffer.
async fn settle_buffered(
    b: BufferTasks,
    mut output: JoinHandle<Result<OutputReport, OutputError>>,
) -> Option<Result<Result<OutputReport, OutputError>, tokio::task::JoinError>> {
    let _ = b.fill.await;
    b.forward.abort();
    let _ = b.forward.await;
    match tokio::time::timeout(BUFFERED_OUTPUT_GRACE, &mut output).await {
        Ok(finished) => Some(finished),
        Err(_) => {
            output.abort();
            let _ = output.await;
            tracing::info!(
                "the output did not settle in time; what it had not stored stays in the disk buffer for the next start"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::InputKind;

    fn batch(n: usize) -> FrameBatch {
        let mut b = FrameBatch::new(InputKind::Tcp);
        for _ in 0..n {
            b.push(b"x", false, None, None);
        }
        b
    }

    #[tokio::test]
    async fn at_the_deadline_a_batch_an_input_is_still_blocked_sending_is_counted_as_lost() {
        let (tx, rx) = flume::bounded::<FrameBatch>(1);
        let tally = Tally::default();
        tx.send(batch(3)).unwrap();
        // The channel is full: this input waits to hand its batch on.
        let mut input = tokio::spawn(async move {
            let _ = tx.send_async(batch(5)).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!input.is_finished(), "the input is blocked sending");
        take_what_inputs_hold(&mut input, &rx, &tally).await;
        assert!(input.is_finished(), "emptying the channel let it finish");
        assert_eq!(tally.abandoned().lost, 8, "the queued 3 and the blocked 5");
    }

    #[tokio::test]
    async fn an_input_that_never_finishes_holds_the_stop_only_for_the_grace() {
        let (_tx, rx) = flume::bounded::<FrameBatch>(1);
        let tally = Tally::default();
        let mut input = tokio::spawn(std::future::pending::<()>());
        let start = std::time::Instant::now();
        take_what_inputs_hold(&mut input, &rx, &tally).await;
        // It returns (the test would hang otherwise), after the grace.
        let took = start.elapsed();
        assert!(took >= INPUT_HANDOFF_GRACE, "{took:?}");
        assert!(!input.is_finished());
        input.abort();
    }
}
