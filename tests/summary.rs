//! The periodic throughput line in dnsenrich's own log (`[log]
//! summary_interval_secs`): what went through since the last one, and none
//! when it is off.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::daemon::{log_field, wait_until, Daemon, DaemonBuilder};

const WAIT: Duration = Duration::from_secs(15);

fn send(d: &Daemon, lines: &[String]) {
    let mut s = TcpStream::connect_timeout(&d.tcp(), Duration::from_secs(5)).expect("connect");
    s.write_all(lines.concat().as_bytes()).expect("send");
}

fn lines(n: usize, unmatched: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n)
        .map(|i| {
            format!("<30>Dec  2 13:00:00 pihole dnsmasq[1]: query[A] s{i}.summary.example from 10.0.0.1\n")
        })
        .collect();
    v.extend(
        (0..unmatched)
            .map(|i| format!("<30>Dec  2 13:00:00 pihole dnsmasq[1]: no such line {i}\n")),
    );
    v
}

/// The `throughput` lines of the log, as their `lines=` and `unmatched=`
/// values (the log is text: `key=value` fields after the message).
fn summaries(err: &str) -> Vec<(u64, u64)> {
    let field = |l: &str, k: &str| log_field(l, k).unwrap_or_else(|| panic!("no {k} in {l}"));
    err.lines()
        .filter(|l| l.contains(" throughput "))
        .map(|l| (field(l, "lines"), field(l, "unmatched")))
        .collect()
}

/// A daemon writing NDJSON to `out` with throughput lines every `secs`.
fn daemon(state: &Path, out: &Path, secs: u64) -> Daemon {
    DaemonBuilder::new(state)
        .ndjson_file(out)
        .config(&format!("[log]\nsummary_interval_secs = {secs}\n"))
        .start()
}

#[test]
fn a_throughput_line_every_interval_says_what_went_through_since_the_last() {
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("events.ndjson");
    let mut d = daemon(state.path(), &out, 1);
    send(&d, &lines(40, 2));
    // Everything the interval saw, summed over the lines written so far.
    wait_until("the summaries count the 42 lines", WAIT, || {
        let s = summaries(&d.stderr());
        s.iter().map(|x| x.0).sum::<u64>() == 42
    });
    send(&d, &lines(8, 0));
    wait_until(
        "the later summaries count only the 8 new lines",
        WAIT,
        || {
            let s = summaries(&d.stderr());
            s.iter().map(|x| x.0).sum::<u64>() == 50
        },
    );
    let s = summaries(&d.stderr());
    assert_eq!(
        s.iter().map(|x| x.1).sum::<u64>(),
        2,
        "the unmatched lines: {s:?}"
    );
    // Had the lines been running totals, they would add up to more than 50.
    let _ = d.sigterm();
}

#[test]
fn no_throughput_line_when_the_interval_is_zero() {
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("events.ndjson");
    let mut d = daemon(state.path(), &out, 0);
    send(&d, &lines(5, 0));
    wait_until("the lines are written", WAIT, || {
        std::fs::read_to_string(&out)
            .map(|t| t.lines().count() == 5)
            .unwrap_or(false)
    });
    // Longer than the shortest interval would be; nothing is written.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(summaries(&d.stderr()).is_empty(), "{}", d.stderr());
    let _ = d.sigterm();
}
