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
use crate::enrich::{Enricher, PassThrough};
use crate::grammar::GrammarSet;
use crate::input::Inputs;
use crate::output::{reopen_channel, Output, OutputReport};
use crate::pipeline::{EncodedBatch, EventBatch, FrameBatch};
use crate::shutdown;
use crate::workers::{spawn_enrichers, spawn_parsers, ParseSettings};

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
}

impl Daemon {
    /// Checks the configuration, compiles grammars, binds inputs and prepares the output.
    pub fn build(mut cfg: Config) -> anyhow::Result<Daemon> {
        cfg.validate()?;
        let grammars = Arc::new(GrammarSet::with_files(&cfg.parse.grammars)?);
        if cfg.input.file.state_dir == crate::input::FileConfig::default().state_dir {
            cfg.input.file.state_dir = cfg.state_dir.clone();
        }
        let output = cfg
            .output
            .clone()
            .with_state_dir(&cfg.state_dir)
            .build()
            .context("setting up the output")?;
        let inputs = cfg.input.build().context("setting up the inputs")?;
        Ok(Daemon {
            cfg,
            inputs,
            output,
            grammars,
        })
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
        } = self;
        let cap = cfg.pipeline.channel_batches;
        let (frame_tx, frame_rx) = flume::bounded::<FrameBatch>(cap);
        let (event_tx, event_rx) = flume::bounded::<EventBatch>(cap);
        let (enc_tx, enc_rx) = flume::bounded::<EncodedBatch>(cap);

        let settings = ParseSettings {
            grammars,
            zone: cfg.zone().map_err(anyhow::Error::msg)?,
            max_line: cfg.parse.max_line_bytes,
        };
        let parsers = spawn_parsers(
            PipelineConfig::threads(cfg.pipeline.parse_workers),
            &settings,
            frame_rx,
            event_tx,
        );
        let enrichers = spawn_enrichers(
            PipelineConfig::threads(cfg.pipeline.enrich_workers),
            || Box::new(PassThrough) as Box<dyn Enricher>,
            event_rx,
            enc_tx,
        );

        let (reopen_tx, reopen_rx) = reopen_channel();
        let output_task = tokio::spawn(output.run(enc_rx, reopen_rx));
        let (trigger, sd) = shutdown::channel();
        let inputs_task = tokio::spawn(inputs.run(frame_tx, sd));

        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = term.recv() => { tracing::info!("SIGTERM: draining"); break }
                _ = int.recv() => { tracing::info!("SIGINT: draining"); break }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reopening output files");
                    reopen_tx.trigger();
                }
            }
        }
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
