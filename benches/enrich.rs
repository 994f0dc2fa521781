//! The enrichment stage against a real memcached, with realistic popularity:
//! Zipf (s = 1) over 100,000 names, 2 % of them (and their answer addresses)
//! indicators in memcached, as the three value forms sync jobs write.
//!
//! `cargo bench --bench enrich` prints, besides criterion's per-batch timing:
//! * bytes per negative-cache entry (RSS growth for 1,000,000 entries);
//! * the stage at steady state, one thread and two: events/s, and memcached
//!   gets per event (from memcached's own `cmd_get`, and our key count);
//! * parse → enrich → encode on worker threads as `dnsenrich run` wires them
//!   (2 parse + 2 enrichment threads): events/s and CPU time per event, with
//!   enrichment on and off.
//!
//! Needs memcached (`apt-get install -y memcached`). Without `--bench` (as
//! when `cargo test --benches` runs it) everything runs briefly, as a smoke test.

#[path = "../tests/common/memcached.rs"]
mod memcached;
#[path = "support/mix.rs"]
mod mix;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput};
use dnsenrich::decode::{LineDecoder, DEFAULT_MAX_LINE};
use dnsenrich::enrich::cache::{Cached, KeyHasher, NegativeCache};
use dnsenrich::enrich::{EnrichConfig, EnrichStage, Enricher, PassThrough};
use dnsenrich::event::Event;
use dnsenrich::grammar::GrammarSet;
use dnsenrich::indicator::value::{encode_value, FeedInfo, IndicatorValue};
use dnsenrich::pipeline::stages::{spawn_enrichers, spawn_parsers, ParseSettings};
use dnsenrich::pipeline::{EventBatch, FrameBatch, InputKind};
use memcached::Memcached;
use mix::Rng;

const NAMES: usize = 100_000;
/// One name in 50 is an indicator.
const INDICATOR_EVERY: usize = 50;
const BATCH: usize = 512;

const HOSTS: &[&str] = &["www", "api", "cdn", "img", "mail"];
const TLDS: &[&str] = &["com", "net", "org", "co.uk", "de", "io", "com.au"];

/// Name `i`: five hosts under each of 20,000 registered domains.
fn name(i: usize) -> String {
    let j = i / HOSTS.len();
    format!(
        "{}.site{j}.{}",
        HOSTS[i % HOSTS.len()],
        TLDS[j % TLDS.len()]
    )
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn is_indicator(i: usize) -> bool {
    (i.wrapping_mul(2_654_435_761) >> 7) % INDICATOR_EVERY == 0
}

/// Popularity rank → name index, spreading popular names over domains.
fn by_rank(r: usize) -> usize {
    (r * 7919) % NAMES
}

/// `n` pihole.log lines whose names follow Zipf(1) over [`NAMES`].
fn zipf_lines(n: usize, seed: u64) -> Vec<String> {
    let mut cdf = Vec::with_capacity(NAMES);
    let mut acc = 0.0;
    for r in 1..=NAMES {
        acc += 1.0 / r as f64;
        cdf.push(acc);
    }
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|k| {
            let u = rng.unit() * acc;
            let r = cdf.partition_point(|&c| c < u).min(NAMES - 1);
            let i = by_rank(r);
            let head = format!(
                "Nov 28 01:02:03 dnsmasq[4321]: {k} 192.168.1.{}/5353 ",
                k % 200 + 2
            );
            match rng.next_u64() % 10 {
                0..=3 => format!("{head}query[A] {} from 192.168.1.{}", name(i), k % 200 + 2),
                4..=5 => format!("{head}forwarded {} to 1.1.1.1", name(i)),
                _ => format!("{head}reply {} is {}", name(i), ip(i)),
            }
        })
        .collect()
}

fn seed_memcached(mc: &Memcached) -> usize {
    let mut n = 0;
    for i in (0..NAMES).filter(|&i| is_indicator(i)) {
        let value = match i % 3 {
            0 => format!("Feed-{}", i % 7).into_bytes(),
            1 => format!("['Feed-{}', 'Feed-Shared']", i % 7).into_bytes(),
            _ => encode_value(&IndicatorValue {
                type_: Some("domain".into()),
                value: Some(name(i)),
                feeds: vec![FeedInfo {
                    provider: Some("MISP".into()),
                    event_info: Some("bench".into()),
                    ..FeedInfo::named("Feed-JSON")
                }],
                ..Default::default()
            }),
        };
        mc.set(&format!("domain-{}", name(i)), &value);
        mc.set(&format!("ip-dst-{}", ip(i)), b"Feed-IP");
        n += 2;
    }
    n
}

fn decode_batches(lines: &[String]) -> Vec<Vec<Event>> {
    let mut d = LineDecoder::new(
        Arc::new(GrammarSet::builtin().unwrap()),
        "UTC".parse().unwrap(),
        DEFAULT_MAX_LINE,
    );
    let now = Utc::now();
    lines
        .chunks(BATCH)
        .map(|c| {
            c.iter()
                .map(|l| d.decode_at(l.as_bytes(), false, now))
                .collect()
        })
        .collect()
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn cpu_time() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// RSS growth per entry of a negative cache holding `n` misses.
fn bytes_per_cache_entry(n: usize) -> f64 {
    let h = KeyHasher::default();
    let keys: Vec<u64> = (0..n)
        .map(|i| h.hash(&format!("domain-r{i}.flood.example")))
        .collect();
    let before = rss_bytes();
    let cache = NegativeCache::new(n + 1, Duration::from_secs(10), Duration::from_secs(60));
    for &k in &keys {
        cache.insert(k, Cached::Miss, 0);
    }
    let after = rss_bytes();
    assert_eq!(cache.len(), n);
    (after.saturating_sub(before)) as f64 / n as f64
}

/// Runs `threads` enrichers over `batches` (cloned each round) for `secs`;
/// returns events/s counting only the time inside `enrich`.
fn steady(stage: &EnrichStage, batches: &[Vec<Event>], threads: usize, secs: f64) -> (f64, u64) {
    let per: Vec<&[Vec<Event>]> = batches.chunks(batches.len().div_ceil(threads)).collect();
    let results: Vec<(Duration, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = per
            .iter()
            .map(|mine| {
                let mut e = stage.enricher();
                s.spawn(move || {
                    let start = Instant::now();
                    let (mut busy, mut events) = (Duration::ZERO, 0u64);
                    loop {
                        for b in mine.iter() {
                            let mut batch = EventBatch {
                                events: b.clone(),
                                acks: Vec::new(),
                                seq: 0,
                            };
                            let t = Instant::now();
                            e.enrich(&mut batch);
                            busy += t.elapsed();
                            events += batch.events.len() as u64;
                        }
                        if start.elapsed().as_secs_f64() >= secs {
                            break (busy, events);
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let events: u64 = results.iter().map(|r| r.1).sum();
    // Threads run side by side: the stage's rate is the sum of each one's.
    let rate = results
        .iter()
        .map(|(busy, ev)| *ev as f64 / busy.as_secs_f64())
        .sum();
    (rate, events)
}

/// parse → enrich → encode on worker threads, as `dnsenrich run` wires them.
fn pipeline(lines: &[String], make: &(dyn Fn() -> Box<dyn Enricher> + Sync)) -> (f64, f64) {
    let settings = ParseSettings {
        grammars: Arc::new(GrammarSet::builtin().unwrap()),
        zone: "UTC".parse().unwrap(),
        max_line: DEFAULT_MAX_LINE,
        keep_original: false,
        data_stream: None,
        tally: Arc::default(),
        ordered: false,
    };
    let frames: Vec<FrameBatch> = lines
        .chunks(BATCH)
        .map(|c| {
            let mut b = FrameBatch::new(InputKind::Tcp);
            for l in c {
                b.push(l.as_bytes(), false, None, None);
            }
            b
        })
        .collect();
    let (ftx, frx) = flume::bounded(16);
    let (etx, erx) = flume::bounded(16);
    let (otx, orx) = flume::bounded(16);
    let cpu0 = cpu_time();
    let start = Instant::now();
    let parsers = spawn_parsers(2, &settings, frx, etx);
    let enrichers = spawn_enrichers(2, make, erx, otx);
    let counter = std::thread::spawn(move || orx.iter().map(|b| b.len()).sum::<usize>());
    for f in frames {
        ftx.send(f).unwrap();
    }
    drop(ftx);
    for p in parsers {
        p.join().unwrap();
    }
    for e in enrichers {
        e.join().unwrap();
    }
    let n = counter.join().unwrap();
    let wall = start.elapsed();
    let cpu = cpu_time() - cpu0;
    assert_eq!(n, lines.len());
    (
        n as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64,
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 50 };

    let entries = 1_000_000 / scale;
    let per_entry = bytes_per_cache_entry(entries);
    println!("negative cache: {per_entry:.1} bytes per entry (RSS growth for {entries} entries)");

    let mc = Memcached::start();
    let keys = seed_memcached(&mc);
    let stage = EnrichConfig {
        memcached: vec![mc.addr.clone()],
        ..Default::default()
    }
    .build()
    .unwrap();
    let lines = zipf_lines(262_144 / scale, 42);
    let batches = decode_batches(&lines);
    let distinct: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(7))
        .collect();
    println!(
        "workload: {} events in batches of {BATCH}, {} distinct names of {NAMES} (Zipf s=1), {keys} indicator keys in memcached",
        lines.len(),
        distinct.len()
    );

    // Warm-up: fills the cache, as a running daemon's would be.
    let _ = steady(&stage, &batches, 1, 0.0);
    let secs = if full { 5.0 } else { 0.2 };
    for threads in [1, 2] {
        let gets0 = mc.stat("cmd_get");
        let s0 = stage.stats();
        let (rate, events) = steady(&stage, &batches, threads, secs);
        let gets = mc.stat("cmd_get") - gets0;
        let s1 = stage.stats();
        println!(
            "enrich stage, {threads} thread(s), steady state: {rate:.0} events/s; memcached cmd_get {gets} for {events} events = {:.3}% ({} requests, {} keys by our count; {} events enriched)",
            100.0 * gets as f64 / events as f64,
            s1.memcached_requests - s0.memcached_requests,
            s1.memcached_keys - s0.memcached_keys,
            s1.events_enriched - s0.events_enriched,
        );
    }
    let s = stage.stats();
    println!(
        "cache: {} entries, lookups {} (cache hits {}, misses {}), memcached hits {} misses {}",
        s.cache_entries,
        s.lookups,
        s.cache_hits,
        s.cache_misses,
        s.memcached_hits,
        s.memcached_misses
    );

    let pl_lines = zipf_lines(if full { 1_000_000 } else { 20_000 }, 7);
    let make_on = || stage.enricher();
    let make_off = || Box::new(PassThrough) as Box<dyn Enricher>;
    let _ = pipeline(&pl_lines, &make_on);
    for (label, make) in [
        ("on", &make_on as &(dyn Fn() -> Box<dyn Enricher> + Sync)),
        ("off", &make_off),
    ] {
        let (rate, cpu_us) = pipeline(&pl_lines, make);
        println!(
            "parse+enrich+encode (2 parse, 2 enrich threads), enrichment {label}: {rate:.0} events/s, {cpu_us:.2} µs CPU per event"
        );
    }

    let mut c = Criterion::default().configure_from_args();
    if !full {
        c = c
            .sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(200));
    }
    let mut g = c.benchmark_group("enrich");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(if full { 50 } else { 10 });
    let mut enricher = stage.enricher();
    let mut i = 0;
    g.bench_function("stage_batch_512_warm", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % batches.len();
                EventBatch {
                    events: batches[i].clone(),
                    acks: Vec::new(),
                    seq: 0,
                }
            },
            |mut batch| {
                enricher.enrich(&mut batch);
                batch
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    c.final_summary();
}
