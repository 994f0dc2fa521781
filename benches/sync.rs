//! Loading 1,000,000 indicators into a real memcached with `dnsenrich sync`
//! (`cargo bench --bench sync`). The target is at least 200,000 keys/s.
//!
//! The indicators come from a 1,000,000-line blocklist (names and addresses)
//! in a temporary directory, so a run measures the whole path: reading and
//! normalising the list, building the values, and the pipelined write. The
//! memcached is started for the run on a free loopback port (`memcached`
//! from Debian's package of that name). `SYNC_BENCH_KEYS` changes the count.

use std::io::{BufWriter, Write};
use std::time::Instant;

#[path = "../tests/common/memcached.rs"]
mod memcached;

use dnsenrich::sync::collect::{Collector, FeedRef, Seen};
use dnsenrich::sync::indicator::map_free;
use dnsenrich::sync::{run_once, ListFormat, ListSource, SyncConfig, ValueFormat};
use memcached::Memcached;

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("SYNC_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 1_000_000 });
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("bench.txt");
    {
        let mut w = BufWriter::new(std::fs::File::create(&list).expect("list file"));
        for i in 0..n {
            if i % 10 == 0 {
                let a = i / 10;
                writeln!(w, "10.{}.{}.{}", (a >> 16) & 255, (a >> 8) & 255, a & 255).unwrap();
            } else {
                writeln!(w, "host-{i}.c2-{}.bench.example", i % 997).unwrap();
            }
        }
    }
    // Room for a million keys without evictions; a thread per core.
    let mc = Memcached::start_with(&["-m", "2048", "-t", "2"]);
    let cfg = SyncConfig {
        lists: vec![ListSource {
            path_or_url: list.display().to_string(),
            feed_name: Some("Feed-Bench".into()),
            format: ListFormat::Plain,
            csv_column: None,
            csv_feed_column: None,
        }],
        memcached: vec![mc.addr.clone()],
        ttl_secs: Some(3600),
        ..SyncConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let runs = if quick { 1 } else { 3 };
    let mut rates = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        let report = rt.block_on(run_once(&cfg, false)).expect("sync");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(report.written, n, "{report}");
        let rate = n as f64 / secs;
        let w = report.write_elapsed.as_secs_f64();
        println!(
            "sync/{n} run {run}: {secs:.2}s, {rate:.0} keys/s (read {:.2}s, write {w:.2}s = {:.0} keys/s)",
            secs - w,
            n as f64 / w
        );
        rates.push(rate);
    }
    assert_eq!(mc.stat("curr_items"), n, "every key is in memcached");
    render_only(n);
    assert_eq!(mc.stat("evictions"), 0, "nothing was evicted");
    rates.sort_by(|a, b| a.total_cmp(b));
    let median = rates[rates.len() / 2];
    println!("sync/{n}: median {median:.0} keys/s (target >= 200000)");
}

/// The client's share of the write: keys and values rendered, not sent.
fn render_only(n: u64) {
    let mut c = Collector::new();
    let feed = c.feed(FeedRef::named("Feed-Bench"));
    for i in 0..n {
        let v = format!("host-{i}.c2-{}.bench.example", i % 997);
        c.add("domain", &v, map_free(&v), &[feed], Seen::default());
    }
    let started = Instant::now();
    let mut bytes = 0usize;
    c.for_each_item(None, ValueFormat::Json, |it| {
        bytes += it.key.as_str().len() + it.value.len()
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sync/{n}: rendering keys and values alone: {secs:.2}s ({:.0} keys/s, {} MiB)",
        n as f64 / secs,
        bytes >> 20
    );
}
