//! SIGTERM without a disk buffer while Elasticsearch (osmem-server) is down
//! or hung: once the drain deadline passes, the stop summary and the log say
//! truthfully what was abandoned — network events still queued are lost and
//! counted per input, tailed lines are read again after the restart, RELP
//! messages stay unanswered for their senders to resend — and the summary
//! still shows what was parsed.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::daemon::{log_field, wait_until, Daemon, DaemonBuilder, Stopped};
use common::osmem::{self, Osmem};

const WAIT: Duration = Duration::from_secs(15);

fn line(i: usize) -> String {
    format!("<30>Dec  2 13:00:00 pihole dnsmasq[1]: query[A] q{i}.stop.example from 10.0.0.1\n")
}

fn send_tcp(addr: SocketAddr, n: usize) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let text: String = (0..n).map(line).collect();
    s.write_all(text.as_bytes()).expect("send");
}

/// A daemon shipping to `url` with no disk buffer and a 2 s drain deadline.
fn daemon(state: &Path, url: &str, extra: &str) -> Daemon {
    DaemonBuilder::new(state)
        .elasticsearch(url, "stop")
        .config("shutdown_timeout_secs = 2\n")
        .config(extra)
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start()
}

/// A field of the `stopped` line that `Stopped` does not read.
fn stopped_field(d: &Daemon, key: &str) -> u64 {
    let err = d.stderr();
    let line = err
        .lines()
        .find(|l| l.contains(" stopped ") && l.contains("lines="))
        .unwrap_or_else(|| panic!("no stopped line:\n{err}"));
    log_field(line, key).unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn sigterm_with_elasticsearch_down_counts_queued_tcp_events_as_lost() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let mut d = daemon(state.path(), &format!("http://127.0.0.1:{port}"), "");
    const N: usize = 100;
    send_tcp(d.tcp(), N);
    wait_until("the lines are parsed", WAIT, || {
        d.metric("dnsenrich_events_parsed_total{input=\"tcp\"}") == Some(N as f64)
    });
    let status = d.sigterm();
    assert!(
        !status.success(),
        "a stop that abandons events is not clean"
    );
    let s: Stopped = d.stopped();
    assert_eq!(s.lines, N as u64, "the summary shows what was parsed");
    assert_eq!(s.stored, 0);
    assert_eq!(stopped_field(&d, "lost"), N as u64);
    assert_eq!(stopped_field(&d, "reread_from_files"), 0);
    let err = d.stderr();
    assert!(err.contains("in_flight=tcp=100"), "{err}");
    assert!(
        err.contains("UDP, TCP and TLS events still queued are lost"),
        "{err}"
    );
}

#[test]
fn sigterm_with_elasticsearch_hung_says_which_events_are_read_again_resent_or_lost() {
    let state = tempfile::tempdir().unwrap();
    let es = Osmem::start();
    es.signal(libc::SIGSTOP);
    let log = state.path().join("pihole.log");
    const FILE_LINES: usize = 30;
    std::fs::write(&log, (0..FILE_LINES).map(line).collect::<String>()).unwrap();
    let tail = toml::Value::String(log.display().to_string());
    let mut d = daemon(
        state.path(),
        &es.url,
        &format!("[input.file]\npaths = [{tail}]\n[input.relp]\nlisten = [\"127.0.0.1:0\"]\n"),
    );
    const N: usize = 50;
    send_tcp(d.tcp(), N);
    // A RELP session whose messages cannot be answered.
    const RELP: usize = 20;
    let mut relp = TcpStream::connect(d.relp.expect("RELP is on")).unwrap();
    let mut frames = b"1 open 14 relp_version=0\n".to_vec();
    for i in 0..RELP {
        let msg = line(1000 + i);
        let msg = msg.trim_end();
        frames.extend_from_slice(format!("{} syslog {} {msg}\n", i + 2, msg.len()).as_bytes());
    }
    relp.write_all(&frames).unwrap();
    wait_until("the lines are parsed", WAIT, || {
        d.metric("dnsenrich_events_parsed_total{input=\"tcp\"}") == Some(N as f64)
            && d.metric("dnsenrich_events_parsed_total{input=\"file\"}") == Some(FILE_LINES as f64)
            && d.metric("dnsenrich_events_parsed_total{input=\"relp\"}") == Some(RELP as f64)
    });
    let status = d.sigterm();
    assert!(!status.success());
    assert_eq!(d.stopped().lines, (N + FILE_LINES + RELP) as u64);
    assert_eq!(stopped_field(&d, "lost"), N as u64);
    assert_eq!(stopped_field(&d, "reread_from_files"), FILE_LINES as u64);
    assert_eq!(stopped_field(&d, "resent_by_relp"), RELP as u64);
    // The session was told: the open answer, then serverclose, unanswered.
    let mut got = String::new();
    relp.set_read_timeout(Some(WAIT)).unwrap();
    let _ = std::io::Read::read_to_string(&mut relp, &mut got);
    assert!(got.starts_with("1 rsp "), "{got}");
    assert!(got.ends_with("0 serverclose 0\n"), "{got}");
    assert!(!got.contains("200 OK\n2 rsp"), "{got}");
    es.signal(libc::SIGCONT);
}
