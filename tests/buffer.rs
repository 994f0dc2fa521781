//! The disk buffer end to end: the real daemon with `[buffer] type = "disk"`
//! shipping TCP syslog to osmem-server while that server is down, after a
//! `kill -9`, and with a damaged segment file in the buffer.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::{wait_until, Daemon, DaemonBuilder};
use common::osmem::{self, Osmem};

const WAIT: Duration = Duration::from_secs(15);

/// The daemon shipping to `url` (up or not) through a disk buffer in
/// `state`, with the metrics listener on so the buffer's level can be read.
fn buffered(state: &Path, url: &str, index: &str) -> Daemon {
    DaemonBuilder::new(state)
        .elasticsearch(url, index)
        .config("[buffer]\ntype = \"disk\"\nmax_bytes = 16777216\n")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start()
}

/// The query name of line `i`, so what arrives can be told apart.
fn name(i: usize) -> String {
    format!("q{i}.buffer.example")
}

/// Sends lines `range` over one TCP connection, LF-framed, and closes it.
fn send(addr: SocketAddr, range: std::ops::Range<usize>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let mut text = String::new();
    for i in range {
        text.push_str(&format!(
            "<30>Dec  2 13:00:00 pihole dnsmasq[1]: query[A] {} from 10.0.0.1\n",
            name(i)
        ));
    }
    s.write_all(text.as_bytes()).expect("send the lines");
}

/// Waits until the buffer holds `n` documents not yet delivered.
fn wait_buffered(d: &Daemon, n: usize) {
    wait_until(&format!("{n} documents in the disk buffer"), WAIT, || {
        d.metric("dnsenrich_buffer_documents") == Some(n as f64)
    });
}

/// The query names stored in `index`, and how many documents there are.
fn stored(es: &Osmem, index: &str) -> (BTreeSet<String>, usize) {
    let docs = es.search_all(index);
    let names = docs
        .iter()
        .filter_map(|d| d["dns"]["question"]["name"].as_str().map(String::from))
        .collect();
    (names, docs.len())
}

fn all_names(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(name).collect()
}

/// The newest segment file of the buffer in `state`.
fn last_segment(state: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(state.join("buffer"))
        .expect("the buffer directory exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    segs.sort();
    segs.pop().expect("at least one segment file")
}

#[test]
fn lines_sent_while_elasticsearch_is_down_are_all_stored_once_it_is_up() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let d = buffered(state.path(), &format!("http://127.0.0.1:{port}"), "down");
    const N: usize = 300;
    send(d.tcp(), 0..N / 2);
    send(d.tcp(), N / 2..N);
    wait_buffered(&d, N);
    std::thread::sleep(Duration::from_secs(5));
    let es = Osmem::start_on(port);
    wait_until("every line is stored", WAIT, || {
        es.count("down") >= N as u64
    });
    // Nothing more trickles in: the server was refusing connections, so no
    // request was half-done.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(es.count("down"), N as u64);
    assert_eq!(stored(&es, "down").0, all_names(0..N));
    wait_buffered(&d, 0);
}

#[test]
fn kill_9_while_elasticsearch_is_down_loses_nothing() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let url = format!("http://127.0.0.1:{port}");
    const N: usize = 200;
    let mut d = buffered(state.path(), &url, "crash");
    send(d.tcp(), 0..N);
    wait_buffered(&d, N);
    d.kill();

    let es = Osmem::start_on(port);
    let d = buffered(state.path(), &url, "crash");
    wait_until("every line is stored after the restart", WAIT, || {
        es.count("crash") >= N as u64
    });
    let (names, docs) = stored(&es, "crash");
    assert_eq!(names, all_names(0..N));
    assert!(docs >= N, "{docs} documents for {N} lines");
    eprintln!("{} duplicates after kill -9", docs - N);
    wait_buffered(&d, 0);
}

#[test]
fn sigterm_while_elasticsearch_is_down_keeps_the_buffer_and_does_not_wait() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let url = format!("http://127.0.0.1:{port}");
    const N: usize = 100;
    let mut d = buffered(state.path(), &url, "term");
    send(d.tcp(), 0..N);
    wait_buffered(&d, N);
    let started = std::time::Instant::now();
    assert!(d.sigterm_within(Duration::from_secs(5)).success());
    assert!(started.elapsed() < Duration::from_secs(5));
    // The summary counts what was taken in, though the output was stopped.
    assert_eq!(d.stopped().lines, N as u64);

    let es = Osmem::start_on(port);
    let _d = buffered(state.path(), &url, "term");
    wait_until("the buffered lines are stored", WAIT, || {
        es.count("term") >= N as u64
    });
    assert_eq!(stored(&es, "term").0, all_names(0..N));
}

#[test]
fn a_torn_segment_still_starts_and_delivers_the_intact_records() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let url = format!("http://127.0.0.1:{port}");
    const FIRST: usize = 50;
    const N: usize = 100;
    let mut d = buffered(state.path(), &url, "torn");
    // Two sends, each waited for, so the second ends in a record of its own.
    send(d.tcp(), 0..FIRST);
    wait_buffered(&d, FIRST);
    send(d.tcp(), FIRST..N);
    wait_buffered(&d, N);
    d.kill();

    // Cut the newest record short, as a crash in the middle of a write would.
    let seg = last_segment(state.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 20).unwrap();
    drop(f);

    let es = Osmem::start_on(port);
    let d = buffered(state.path(), &url, "torn");
    wait_until("the intact records are stored", WAIT, || {
        es.count("torn") >= FIRST as u64
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (names, _) = stored(&es, "torn");
    assert!(names.is_superset(&all_names(0..FIRST)), "{names:?}");
    assert!(
        names.len() < N,
        "the torn record cannot have been delivered"
    );
    assert!(
        d.stderr().contains("torn tail"),
        "the damage is logged:\n{}",
        d.stderr()
    );
}

#[test]
fn a_flipped_byte_is_skipped_and_the_rest_delivered() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let url = format!("http://127.0.0.1:{port}");
    const N: usize = 90;
    let mut d = buffered(state.path(), &url, "flip");
    // Three records; the middle one is damaged.
    send(d.tcp(), 0..30);
    wait_buffered(&d, 30);
    let seg = last_segment(state.path());
    let before = std::fs::metadata(&seg).unwrap().len();
    send(d.tcp(), 30..60);
    wait_buffered(&d, 60);
    let after = std::fs::metadata(&seg).unwrap().len();
    send(d.tcp(), 60..N);
    wait_buffered(&d, N);
    d.kill();
    assert_eq!(
        last_segment(state.path()),
        seg,
        "one segment holds all three"
    );

    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = ((before + after) / 2) as usize;
    bytes[mid] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();

    let es = Osmem::start_on(port);
    let d = buffered(state.path(), &url, "flip");
    let expect: BTreeSet<String> = all_names(0..30)
        .into_iter()
        .chain(all_names(60..N))
        .collect();
    wait_until("the undamaged records are stored", WAIT, || {
        stored(&es, "flip").0.is_superset(&expect)
    });
    let (names, _) = stored(&es, "flip");
    assert!(
        names.len() < N,
        "the damaged record cannot have been delivered"
    );
    wait_until("the damage is counted", WAIT, || {
        d.metric("dnsenrich_buffer_corrupt_records_total") == Some(1.0)
    });
}
