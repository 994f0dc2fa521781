//! Parse-stage throughput on a realistic Pi-hole line mix (see `benches/support/mix.rs`):
//! syslog header + grammar + event, and the same plus JSON encoding.
//!
//! `cargo bench --bench parse`; lines/s = 1 / (time per line).

#[path = "support/mix.rs"]
mod mix;

use std::sync::Arc;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dnsenrich::decode::{LineDecoder, DEFAULT_MAX_LINE};
use dnsenrich::grammar::GrammarSet;

const LINES: usize = 10_000;

fn bench(c: &mut Criterion) {
    let lines = mix::lines(LINES);
    let grammars = Arc::new(GrammarSet::builtin().unwrap());
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(LINES as u64));
    g.sample_size(20);

    g.bench_function("decode", |b| {
        let mut d = LineDecoder::new(
            grammars.clone(),
            "Europe/Berlin".parse().unwrap(),
            DEFAULT_MAX_LINE,
        );
        let now = Utc::now();
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                let ev = d.decode_at(l.as_bytes(), false, now);
                n += ev.dns.answers.len();
            }
            n
        })
    });

    g.bench_function("decode+encode", |b| {
        let mut d = LineDecoder::new(
            grammars.clone(),
            "Europe/Berlin".parse().unwrap(),
            DEFAULT_MAX_LINE,
        );
        let now = Utc::now();
        let mut out = Vec::with_capacity(LINES * 900);
        b.iter(|| {
            out.clear();
            for l in &lines {
                let ev = d.decode_at(l.as_bytes(), false, now);
                ev.write_json(&mut out);
                out.push(b'\n');
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
