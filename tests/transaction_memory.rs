//! Bytes per open transaction, measured: every allocation of this test
//! binary is counted, so the heap that open transactions really hold can be
//! compared with the estimate the correlator bounds (`max_open_bytes`), and
//! a flood of unique names is shown to stay under the bound in real bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dnsenrich::correlate::{Correlator, EventsMode, TxnConfig};
use dnsenrich::decode::LineDecoder;
use dnsenrich::event::Str;
use dnsenrich::grammar::GrammarSet;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Query lines for `n` unique names as a flood sends them: a long random
/// label under one domain.
fn query(d: &mut LineDecoder, i: u64) -> dnsenrich::event::Event {
    let mut ev = d.decode(b"Nov 28 01:10:34 dnsmasq[812]: query[A] x.flood.example from 192.0.2.7");
    ev.dns.question.name = Some(Str::from(format!(
        "{:016x}{i:08x}.flood.example",
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )));
    ev.message = format!(
        "query[A] {} from 192.0.2.7",
        ev.dns.question.name.as_ref().unwrap()
    );
    ev
}

/// One test function: the counter is process-wide, so nothing else may
/// allocate while it measures.
#[test]
fn open_transactions_are_measured_and_bounded_in_real_bytes() {
    the_byte_estimate_matches_what_open_transactions_really_hold();
    a_flood_stays_under_the_byte_bound_in_real_bytes();
}

fn the_byte_estimate_matches_what_open_transactions_really_hold() {
    const N: u64 = 10_000;
    let mut d = LineDecoder::new(
        Arc::new(GrammarSet::builtin().unwrap()),
        "UTC".parse().unwrap(),
        4096,
    );
    let big = TxnConfig {
        max_open: 1_000_000,
        max_open_bytes: 1 << 30,
        ..TxnConfig::default()
    };
    let mut c = Correlator::new(EventsMode::Transactions, big);
    let _warm = query(&mut d, u64::MAX);
    let before = live();
    let events: Vec<_> = (0..N).map(|i| query(&mut d, i)).collect();
    let t0 = Instant::now();
    for ev in events {
        c.push(ev, None, t0);
    }
    // Everything the events and the correlator hold now, the events'
    // vector gone.
    let held = live() - before;
    let real_per_open = held / N as isize;
    let estimated_per_open = (c.open_bytes() / N as usize) as isize;
    eprintln!(
        "bytes per open transaction: {real_per_open} measured, {estimated_per_open} estimated"
    );
    assert_eq!(c.open_count(), N as usize);
    // The estimate is what the bound is enforced on: within a quarter of
    // what is really held.
    assert!(
        (estimated_per_open - real_per_open).abs() * 4 <= real_per_open,
        "estimate {estimated_per_open}, measured {real_per_open}"
    );
    c.flush();
    drop(c.take_output());
}

fn a_flood_stays_under_the_byte_bound_in_real_bytes() {
    const N: u64 = 50_000;
    const BOUND: usize = 4 << 20;
    let mut d = LineDecoder::new(
        Arc::new(GrammarSet::builtin().unwrap()),
        "UTC".parse().unwrap(),
        4096,
    );
    let cfg = TxnConfig {
        max_open: 1_000_000,
        max_open_bytes: BOUND,
        ..TxnConfig::default()
    };
    let mut c = Correlator::new(EventsMode::Transactions, cfg);
    let t0 = Instant::now();
    let base = live();
    let mut peak = 0isize;
    for i in 0..N {
        c.push(query(&mut d, i), None, t0);
        if i % 1024 == 0 {
            drop(c.take_output());
            peak = peak.max(live() - base);
        }
    }
    drop(c.take_output());
    peak = peak.max(live() - base);
    eprintln!(
        "flood of {N} names: {} open, peak {peak} bytes held (bound {BOUND})",
        c.open_count()
    );
    assert!(
        c.open_count() < N as usize / 4,
        "the oldest were emitted early"
    );
    // Real bytes: the bound, plus the events emitted early that wait to be
    // taken (up to 1024 here) and the recently-closed key hashes.
    assert!(
        peak < (BOUND as isize) * 3 / 2,
        "peak {peak} bytes for a bound of {BOUND}"
    );
}
