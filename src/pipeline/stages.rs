//! The CPU stages of the pipeline, each on its own OS threads: parse workers
//! (frames → events) and enrichment workers (events → enriched, encoded
//! documents). They are plain threads, not async tasks, because their work is
//! pure computation; they block on the bounded channels, which is what carries
//! back-pressure from the output to the inputs.
//!
//! A new CPU stage (a correlation stage between parse and enrich, say) is a
//! `spawn_*` function here that reads one channel and writes the next, and one
//! entry in `start_stages` (`pipeline/mod.rs`).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::Utc;

use crate::decode::{DecodeStats, LineDecoder};
use crate::enrich::Enricher;
use crate::event::Str;
use crate::grammar::GrammarSet;
use crate::pipeline::tally::Tally;
use crate::pipeline::{EncodedBatch, EventBatch, FrameBatch};
use crate::syslog::Zone;

/// Settings of the parse workers.
#[derive(Debug, Clone)]
pub struct ParseSettings {
    pub grammars: Arc<GrammarSet>,
    pub zone: Zone,
    pub max_line: usize,
    /// Keep the raw line in `event.original` on every event.
    pub keep_original: bool,
    /// The namespace of the data streams written to, when the output is an
    /// Elasticsearch data stream: every event then carries `data_stream.*`.
    pub data_stream: Option<&'static str>,
    /// Where the workers count what they hold and what they parsed.
    pub tally: Arc<Tally>,
    /// Number the batches in the order the workers take them
    /// ([`EventBatch::seq`]), so the correlation stage can restore input
    /// order after parallel parsing.
    pub ordered: bool,
}

/// Starts `n` parse workers reading `rx` and writing `tx`. Each returns its
/// counters when `rx` is closed and drained.
pub fn spawn_parsers(
    n: usize,
    settings: &ParseSettings,
    rx: flume::Receiver<FrameBatch>,
    tx: flume::Sender<EventBatch>,
) -> Vec<JoinHandle<DecodeStats>> {
    let counter = settings.ordered.then(|| Arc::new(Mutex::new(0u64)));
    (0..n.max(1))
        .map(|i| {
            let (rx, tx) = (rx.clone(), tx.clone());
            let tally = settings.tally.clone();
            let counter = counter.clone();
            let mut decoder = LineDecoder::new(
                settings.grammars.clone(),
                settings.zone.clone(),
                settings.max_line,
            )
            .keep_original(settings.keep_original)
            .data_stream(settings.data_stream);
            std::thread::Builder::new()
                .name(format!("parse-{i}"))
                .spawn(move || {
                    let mut reported = DecodeStats::default();
                    while let Some((batch, seq)) = take_next(&rx, counter.as_deref()) {
                        let mut out = parse_batch(&mut decoder, tally.track(batch));
                        out.seq = seq;
                        report_parse_metrics(&decoder.stats, &mut reported);
                        tally.note_parsed(i, &decoder.stats);
                        if tx.send(out).is_err() {
                            break;
                        }
                    }
                    decoder.stats
                })
                .expect("spawning a thread at start-up")
        })
        .collect()
}

/// The next batch, numbered in the order taken when `counter` is given (the
/// lock is held across the receive, so numbers follow the channel's order).
fn take_next(
    rx: &flume::Receiver<FrameBatch>,
    counter: Option<&Mutex<u64>>,
) -> Option<(FrameBatch, u64)> {
    match counter {
        None => rx.recv().ok().map(|b| (b, 0)),
        Some(c) => {
            let mut n = c.lock().unwrap_or_else(|p| p.into_inner());
            let b = rx.recv().ok()?;
            let seq = *n;
            *n += 1;
            Some((b, seq))
        }
    }
}

/// Adds what the decoder counted since the last report to the metrics.
fn report_parse_metrics(now: &DecodeStats, reported: &mut DecodeStats) {
    let before = reported.reasons();
    for ((reason, n), (_, m)) in now.reasons().iter().zip(before.iter()) {
        if n > m {
            metrics::counter!("dnsenrich_parse_failures_total", "reason" => *reason)
                .increment(n - m);
        }
    }
    *reported = now.clone();
}

/// Decodes every frame of a batch and records where it came from.
pub fn parse_batch(decoder: &mut LineDecoder, batch: FrameBatch) -> EventBatch {
    let now = Utc::now();
    let mut events = Vec::with_capacity(batch.frames.len());
    let input = batch.input.as_str();
    // A TCP batch has one peer throughout: format it once, not per event.
    let mut peer_text: Option<(std::net::SocketAddr, Str)> = None;
    for f in &batch.frames {
        let mut ev = decoder.decode_at(batch.bytes(f), f.truncated, now);
        if let Some(peer) = f.peer {
            if !matches!(&peer_text, Some((p, _)) if *p == peer) {
                let mut s = Str::default();
                let _ = write!(s, "{peer}");
                peer_text = Some((peer, s));
            }
            ev.log.source.address = peer_text.as_ref().map(|(_, s)| s.clone());
        }
        if let Some(path) = &batch.file {
            ev.log.file.path = Some(path.clone());
            ev.log.offset = f.offset;
        }
        events.push(ev);
    }
    metrics::counter!("dnsenrich_events_parsed_total", "input" => input)
        .increment(events.len() as u64);
    EventBatch {
        events,
        acks: batch.ack.into_iter().collect(),
        seq: 0,
    }
}

/// Starts `n` enrichment workers, each with its own enricher from `make`.
pub fn spawn_enrichers(
    n: usize,
    make: impl Fn() -> Box<dyn Enricher>,
    rx: flume::Receiver<EventBatch>,
    tx: flume::Sender<EncodedBatch>,
) -> Vec<JoinHandle<()>> {
    (0..n.max(1))
        .map(|i| {
            let (rx, tx) = (rx.clone(), tx.clone());
            let mut enricher = make();
            std::thread::Builder::new()
                .name(format!("enrich-{i}"))
                .spawn(move || {
                    while let Ok(mut batch) = rx.recv() {
                        enricher.enrich(&mut batch);
                        let encoded = EncodedBatch::encode(&batch.events, batch.acks);
                        if tx.send(encoded).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawning a thread at start-up")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Ack, InputKind};
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn parse_records_peer_file_and_offset_and_keeps_the_ack() {
        let g = Arc::new(GrammarSet::builtin().unwrap());
        let mut d = LineDecoder::new(g, Zone::Local, 1024);
        let mut b = FrameBatch::new(InputKind::File);
        b.push(
            b"query[A] a.example from 10.0.0.1",
            false,
            Some("127.0.0.1:5000".parse().unwrap()),
            Some(33),
        );
        b.file = Some(Arc::from("/var/log/pihole.log"));
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        b.ack = Some(Ack::new(move || f.store(true, Ordering::SeqCst)));
        let out = parse_batch(&mut d, b);
        let ev = &out.events[0];
        assert_eq!(ev.log.source.address.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(ev.log.file.path.as_deref(), Some("/var/log/pihole.log"));
        assert_eq!(ev.log.offset, Some(33));
        assert_eq!(ev.dns.question.name.as_deref(), Some("a.example"));
        assert_eq!(out.acks.len(), 1);
        assert!(!fired.load(Ordering::SeqCst));
    }

    #[test]
    fn stages_drain_and_stop_when_the_input_closes() {
        let g = Arc::new(GrammarSet::builtin().unwrap());
        let settings = ParseSettings {
            grammars: g,
            zone: Zone::Local,
            max_line: 1024,
            keep_original: false,
            data_stream: None,
            tally: Arc::default(),
            ordered: false,
        };
        let (ftx, frx) = flume::bounded(2);
        let (etx, erx) = flume::bounded(2);
        let (otx, orx) = flume::bounded(100);
        let parsers = spawn_parsers(2, &settings, frx, etx);
        let enrichers = spawn_enrichers(2, || Box::new(crate::enrich::PassThrough), erx, otx);
        for _ in 0..10 {
            let mut b = FrameBatch::new(InputKind::Tcp);
            for _ in 0..5 {
                b.push(b"forwarded a.example to 127.0.0.1", false, None, None);
            }
            ftx.send(b).unwrap();
        }
        drop(ftx);
        let lines: u64 = parsers.into_iter().map(|h| h.join().unwrap().lines).sum();
        for h in enrichers {
            h.join().unwrap();
        }
        assert_eq!(lines, 50);
        let docs: usize = orx.drain().map(|b| b.len()).sum();
        assert_eq!(docs, 50);
    }
}
