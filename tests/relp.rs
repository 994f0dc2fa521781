//! The RELP input end to end: the real daemon answering a RELP client written
//! here from the wire format (every malformed frame ends the session with the
//! `serverclose` hint), and real rsyslog forwarding with `omrelp` — every
//! message arrives, across a `kill -9` of dnsenrich and across an
//! Elasticsearch outage with the disk buffer.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::daemon::{wait_until, Daemon, DaemonBuilder};
use common::osmem::{self, Osmem};
use common::rsyslog::Rsyslog;

/// Bounded waits, generous for a machine under load (they only matter when
/// something is wrong).
const WAIT: Duration = Duration::from_secs(60);

/// The query name of message `i`, so what arrives can be told apart.
fn name(i: usize) -> String {
    format!("q{i}.relp.example")
}

fn line(i: usize) -> String {
    format!(
        "<30>Dec  2 13:00:00 pihole dnsmasq[1]: query[A] {} from 10.0.0.1",
        name(i)
    )
}

fn names(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(name).collect()
}

/// The query names in NDJSON events, and how many events carry one.
fn names_in(events: &[serde_json::Value]) -> (BTreeSet<String>, usize) {
    let all: Vec<String> = events
        .iter()
        .filter_map(|e| e["dns"]["question"]["name"].as_str().map(String::from))
        .collect();
    let n = all.len();
    (all.into_iter().collect(), n)
}

/// The daemon with RELP on loopback (`listen`, port 0 for any) and `extra`
/// TOML, the metrics listener on.
fn relp_daemon(state: &Path, listen: &str, extra: &str) -> DaemonBuilder {
    DaemonBuilder::new(state)
        .no_network()
        .config(&format!("[input.relp]\nlisten = [\"{listen}\"]\n"))
        .config(extra)
        .arg("--metrics")
        .arg("127.0.0.1:0")
}

/// A RELP client speaking the wire format directly.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    txnr: u32,
}

/// One frame the server sent.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    txnr: u32,
    command: String,
    data: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            s,
            buf: Vec::new(),
            txnr: 1,
        }
    }

    /// A connected client whose `open` was answered.
    fn opened(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        c.send_open();
        let r = c.reply().expect("an answer to open");
        assert_eq!((r.txnr, r.command.as_str()), (1, "rsp"), "{r:?}");
        assert!(r.data.starts_with("200 OK\n"), "{r:?}");
        assert!(r.data.contains("relp_version=0"), "{r:?}");
        assert!(r.data.contains("commands=syslog"), "{r:?}");
        c
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    /// The next command as librelp would frame it.
    fn frame(&mut self, command: &str, data: &[u8]) -> Vec<u8> {
        let mut f = format!("{} {command} {}", self.txnr, data.len()).into_bytes();
        if !data.is_empty() {
            f.push(b' ');
            f.extend_from_slice(data);
        }
        f.push(b'\n');
        self.txnr += 1;
        f
    }

    fn send_open(&mut self) {
        // What librelp 1.11 offers.
        let f = self.frame(
            "open",
            b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog",
        );
        self.raw(&f);
    }

    /// Sends messages `range`, all in one write.
    fn send_messages(&mut self, range: std::ops::Range<usize>) -> Vec<u32> {
        let mut bytes = Vec::new();
        let mut txnrs = Vec::new();
        for i in range {
            txnrs.push(self.txnr);
            let f = self.frame("syslog", line(i).as_bytes());
            bytes.extend_from_slice(&f);
        }
        self.raw(&bytes);
        txnrs
    }

    /// The next frame; `None` once the server has closed the connection.
    fn reply(&mut self) -> Option<Reply> {
        loop {
            if let Some(r) = self.parse() {
                return Some(r);
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no answer from the server: {e}"),
            }
        }
    }

    /// Whether nothing arrives within `d` (the connection stays open).
    fn silent_for(&mut self, d: Duration) -> bool {
        self.s.set_read_timeout(Some(d)).unwrap();
        let mut chunk = [0u8; 256];
        let silent = match self.s.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
        self.s
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        silent
    }

    /// One whole frame off the front of the buffer, if there is one.
    fn parse(&mut self) -> Option<Reply> {
        let text = &self.buf;
        let sp1 = text.iter().position(|&b| b == b' ')?;
        let sp2 = sp1 + 1 + text[sp1 + 1..].iter().position(|&b| b == b' ')?;
        let rest = &text[sp2 + 1..];
        let len_end = rest.iter().position(|&b| b == b' ' || b == b'\n')?;
        let len: usize = std::str::from_utf8(&rest[..len_end]).ok()?.parse().ok()?;
        let data_start = sp2 + 1 + len_end + usize::from(len > 0);
        let end = data_start + len;
        if text.len() <= end {
            return None;
        }
        assert_eq!(text[end], b'\n', "a frame ends in LF: {:?}", self.buf);
        let r = Reply {
            txnr: std::str::from_utf8(&text[..sp1]).unwrap().parse().unwrap(),
            command: String::from_utf8_lossy(&text[sp1 + 1..sp2]).into_owned(),
            data: String::from_utf8_lossy(&text[data_start..end]).into_owned(),
        };
        self.buf.drain(..=end);
        Some(r)
    }

    /// The `200 OK` answers to `txnrs`, in order.
    fn expect_ok(&mut self, txnrs: &[u32]) {
        for &t in txnrs {
            let r = self.reply().expect("an answer");
            assert_eq!(
                r,
                Reply {
                    txnr: t,
                    command: "rsp".into(),
                    data: "200 OK".into()
                }
            );
        }
    }

    /// The `serverclose` hint, then the end of the connection.
    fn expect_serverclose(&mut self) {
        let r = self.reply().expect("the serverclose hint");
        assert_eq!(
            r,
            Reply {
                txnr: 0,
                command: "serverclose".into(),
                data: String::new()
            }
        );
        assert_eq!(self.reply(), None, "the server closes after serverclose");
    }
}

#[test]
fn messages_are_answered_in_order_once_written_and_close_is_answered_last() {
    let state = tempfile::tempdir().unwrap();
    let d = relp_daemon(state.path(), "127.0.0.1:0", "").start();
    let mut c = Client::opened(d.relp());
    const N: usize = 50;
    let txnrs = c.send_messages(0..N);
    c.expect_ok(&txnrs);
    // Answered only once written: every message is in the output already.
    assert_eq!(names_in(&d.events()), (names(0..N), N));
    let close = c.frame("close", b"");
    c.raw(&close);
    let r = c.reply().expect("the close answer");
    assert_eq!((r.txnr, r.data.as_str()), (N as u32 + 2, "200 OK"));
    assert_eq!(c.reply(), None, "the server closes after answering close");
    assert_eq!(
        d.metric("dnsenrich_events_received_total{input=\"relp\"}"),
        Some(N as f64)
    );
    assert_eq!(
        d.metric("dnsenrich_relp_messages_acknowledged_total"),
        Some(N as f64)
    );
}

#[test]
fn no_answer_until_elasticsearch_has_stored_the_message() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let d = relp_daemon(state.path(), "127.0.0.1:0", "")
        .elasticsearch(&format!("http://127.0.0.1:{port}"), "relp")
        .start();
    let mut c = Client::opened(d.relp());
    let txnrs = c.send_messages(0..3);
    assert!(
        c.silent_for(Duration::from_millis(1500)),
        "answered while Elasticsearch is down"
    );
    let es = Osmem::start_on(port);
    c.expect_ok(&txnrs);
    assert_eq!(es.count("relp"), 3, "stored before answered");
}

#[test]
fn with_the_disk_buffer_messages_are_answered_while_elasticsearch_is_down() {
    let state = tempfile::tempdir().unwrap();
    let port = osmem::free_port();
    let d = relp_daemon(state.path(), "127.0.0.1:0", "[buffer]\ntype = \"disk\"\n")
        .elasticsearch(&format!("http://127.0.0.1:{port}"), "relpbuf")
        .start();
    let mut c = Client::opened(d.relp());
    const N: usize = 40;
    let txnrs = c.send_messages(0..N);
    c.expect_ok(&txnrs);
    // (The gauge is refreshed periodically.)
    wait_until("the buffer holds every message", WAIT, || {
        d.metric("dnsenrich_buffer_documents") == Some(N as f64)
    });
    let es = Osmem::start_on(port);
    wait_until("the buffered messages are stored", WAIT, || {
        es.count("relpbuf") >= N as u64
    });
    assert_eq!(es.count("relpbuf"), N as u64);
}

/// Each malformed input on a fresh session, after `open` when the flag is
/// set: the server sends `serverclose` and closes.
const MALFORMED: &[(&str, bool, &[u8])] = &[
    ("letter in TXNR", false, b"x open 14 relp_version=0\n"),
    ("TXNR of ten digits", false, b"1234567890 open 0\n"),
    ("TXNR 0", false, b"0 open 14 relp_version=0\n"),
    ("command before open", false, b"1 syslog 1 a\n"),
    (
        "open without a version offer",
        false,
        b"1 open 15 commands=syslog\n",
    ),
    ("TXNR out of order", true, b"3 syslog 1 a\n"),
    ("TXNR repeated", true, b"1 syslog 1 a\n"),
    ("unknown command", true, b"2 starttls 0\n"),
    ("digit in the command", true, b"2 sys1og 1 a\n"),
    (
        "command of 33 letters",
        true,
        b"2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0\n",
    ),
    ("second open", true, b"2 open 14 relp_version=0\n"),
    ("letter in DATALEN", true, b"2 syslog 1x a\n"),
    ("DATALEN of ten digits", true, b"2 syslog 1234567890 "),
    ("DATALEN over max_frame", true, b"2 syslog 4097 "),
    ("DATALEN without data", true, b"2 syslog 3\n"),
    ("space after DATALEN 0", true, b"2 close 0 \n"),
    ("data longer than DATALEN", true, b"2 syslog 3 hello\n"),
    ("CR LF trailer", true, b"2 close 0\r\n"),
    ("a command after close", true, b"2 close 0\n3 syslog 1 a\n"),
];

#[test]
fn every_malformed_frame_ends_the_session_with_serverclose() {
    let state = tempfile::tempdir().unwrap();
    let d = relp_daemon(
        state.path(),
        "127.0.0.1:0",
        "[input.relp]\nmax_frame = 4096\n",
    )
    .start();
    for (i, (what, open, bytes)) in MALFORMED.iter().enumerate() {
        let mut c = if *open {
            Client::opened(d.relp())
        } else {
            Client::connect(d.relp())
        };
        c.raw(bytes);
        c.expect_serverclose();
        wait_until(&format!("{what}: counted"), WAIT, || {
            d.metric("dnsenrich_framing_errors_total{input=\"relp\"}") == Some((i + 1) as f64)
        });
    }
}

#[test]
fn messages_before_a_framing_error_are_kept_and_a_window_overrun_is_slowed() {
    let state = tempfile::tempdir().unwrap();
    let d = relp_daemon(state.path(), "127.0.0.1:0", "[input.relp]\nwindow = 4\n").start();
    // One good message, then garbage in the same write.
    let mut c = Client::opened(d.relp());
    let mut bytes = c.frame("syslog", line(0).as_bytes());
    bytes.extend_from_slice(b"3 syslog x\n");
    c.raw(&bytes);
    c.expect_serverclose();
    wait_until("the good message is delivered", WAIT, || {
        names_in(&d.events()).0 == names(0..1)
    });
    // More unanswered commands than the window: read as answers go out.
    let mut c = Client::opened(d.relp());
    let txnrs = c.send_messages(1..30);
    c.expect_ok(&txnrs);
    assert_eq!(names_in(&d.events()).0, names(0..30));
}

#[test]
fn sigterm_answers_what_was_stored_then_sends_serverclose() {
    let state = tempfile::tempdir().unwrap();
    let mut d = relp_daemon(state.path(), "127.0.0.1:0", "").start();
    let mut c = Client::opened(d.relp());
    let txnrs = c.send_messages(0..5);
    c.expect_ok(&txnrs);
    d.signal(libc::SIGTERM);
    c.expect_serverclose();
    assert!(d.wait_exit(Duration::from_secs(15)).success());
}

/// rsyslog configured with the shipped Pi-hole snippet, changed only in the
/// file it follows and where it sends.
fn pihole_snippet(log: &Path, relp: SocketAddr) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/rsyslog/60-pihole-dnsenrich-relp.conf"
    ))
    .expect("the shipped rsyslog snippet");
    let swapped = text
        .replace("/var/log/pihole/pihole.log", &log.display().to_string())
        .replace("collector.example", &relp.ip().to_string())
        .replace("Port=\"20514\"", &format!("Port=\"{}\"", relp.port()));
    assert_ne!(swapped, text);
    swapped
}

/// Appends dnsmasq lines `range` to the Pi-hole log file.
fn append_log(log: &Path, range: std::ops::Range<usize>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut text = String::new();
    for i in range {
        text.push_str(&format!(
            "Dec  2 13:00:00 dnsmasq[1]: query[A] {} from 10.0.0.1\n",
            name(i)
        ));
    }
    f.write_all(text.as_bytes()).unwrap();
}

fn ndjson_daemon(state: &Path, out: &Path, port: u16) -> Daemon {
    relp_daemon(state, &format!("127.0.0.1:{port}"), "")
        .ndjson_file(out)
        .start()
}

#[test]
fn rsyslog_omrelp_delivers_every_message() {
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("events.ndjson");
    let d = ndjson_daemon(state.path(), &out, 0);
    let log = state.path().join("pihole.log");
    append_log(&log, 0..0);
    let r = Rsyslog::start(&pihole_snippet(&log, d.relp()));
    const N: usize = 2000;
    append_log(&log, 0..N);
    wait_until("every message arrives", WAIT, || {
        names_in(&common::daemon::read_events(&out)).1 >= N
    });
    let (got, n) = names_in(&common::daemon::read_events(&out));
    assert_eq!(got, names(0..N), "rsyslog log:\n{}", r.log());
    assert_eq!(n, N, "no message twice in an undisturbed session");
}

#[test]
fn rsyslog_resends_across_a_kill_9_of_dnsenrich() {
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("events.ndjson");
    let port = osmem::free_port();
    let mut d = ndjson_daemon(state.path(), &out, port);
    let relp = d.relp();
    let log = state.path().join("pihole.log");
    append_log(&log, 0..0);
    let _r = Rsyslog::start(&pihole_snippet(&log, relp));
    const N: usize = 3000;
    append_log(&log, 0..N / 2);
    wait_until("the first messages arrive", WAIT, || {
        names_in(&common::daemon::read_events(&out)).1 >= 200
    });
    d.kill();
    // Sent while dnsenrich is gone: rsyslog queues and retries.
    append_log(&log, N / 2..N);
    std::thread::sleep(Duration::from_millis(500));
    let _d = ndjson_daemon(state.path(), &out, port);
    wait_until("every message arrives after the restart", WAIT, || {
        names_in(&common::daemon::read_events(&out)).0.len() >= N
    });
    let (got, n) = names_in(&common::daemon::read_events(&out));
    assert_eq!(got, names(0..N));
    eprintln!(
        "{} duplicates across kill -9 (sent, not yet answered)",
        n - N
    );
}

#[test]
fn rsyslog_through_an_elasticsearch_outage_with_the_disk_buffer() {
    let state = tempfile::tempdir().unwrap();
    let es_port = osmem::free_port();
    let d = relp_daemon(state.path(), "127.0.0.1:0", "[buffer]\ntype = \"disk\"\n")
        .elasticsearch(&format!("http://127.0.0.1:{es_port}"), "outage")
        .start();
    let log = state.path().join("pihole.log");
    append_log(&log, 0..0);
    let r = Rsyslog::start(&pihole_snippet(&log, d.relp()));
    const N: usize = 2000;
    let started = std::time::Instant::now();
    append_log(&log, 0..N);
    // Elasticsearch is down: every message is still answered, from the buffer.
    wait_until(
        "every message is answered from the disk buffer",
        WAIT,
        || d.metric("dnsenrich_relp_messages_acknowledged_total") >= Some(N as f64),
    );
    eprintln!(
        "{N} messages answered from the buffer in {:?}",
        started.elapsed()
    );
    wait_until("the buffer holds every message", WAIT, || {
        d.metric("dnsenrich_buffer_documents") >= Some(N as f64)
    });
    // rsyslog has nothing left to send: stopping it now loses nothing.
    drop(r);
    let es = Osmem::start_on(es_port);
    wait_until("every message is stored", WAIT, || {
        es.count("outage") >= N as u64
    });
    let stored: BTreeSet<String> = es
        .search_all("outage")
        .iter()
        .filter_map(|e| e["dns"]["question"]["name"].as_str().map(String::from))
        .collect();
    assert_eq!(stored, names(0..N));
}

#[test]
fn rsyslog_omrelp_over_tls_delivers_every_message() {
    let pki = common::pki::Pki::server();
    // librelp offers only anonymous TLS unless it has a certificate of its own.
    pki.leaf("ca", "client", "pihole", "extendedKeyUsage=clientAuth\n");
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("events.ndjson");
    let tls = format!(
        "[input.relp]\ncert = {}\nkey = {}\n",
        toml::Value::String(pki.path("server.pem").display().to_string()),
        toml::Value::String(pki.path("server.key").display().to_string()),
    );
    let d = relp_daemon(state.path(), "127.0.0.1:0", &tls)
        .ndjson_file(&out)
        .start();
    assert!(
        d.announced.as_deref().unwrap_or("").contains("relp+tls://"),
        "{:?}",
        d.announced
    );
    let log = state.path().join("pihole.log");
    append_log(&log, 0..0);
    // The shipped snippet with TLS on, checking the server's name.
    let config = pihole_snippet(&log, d.relp()).replace(
        "WindowSize=\"1024\"",
        &format!(
            "WindowSize=\"1024\" tls=\"on\" tls.caCert=\"{}\" tls.myCert=\"{}\" tls.myPrivKey=\"{}\" tls.authMode=\"name\" tls.permittedPeer=[\"localhost\"]",
            pki.path("ca.pem").display(),
            pki.path("client.pem").display(),
            pki.path("client.key").display(),
        ),
    );
    let r = Rsyslog::start(&config);
    const N: usize = 500;
    append_log(&log, 0..N);
    let deadline = std::time::Instant::now() + WAIT;
    while names_in(&common::daemon::read_events(&out)).1 < N {
        assert!(
            std::time::Instant::now() < deadline,
            "not every message arrived over TLS; rsyslog:\n{}\ndnsenrich:\n{}",
            r.log(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        names_in(&common::daemon::read_events(&out)).0,
        names(0..N),
        "rsyslog log:\n{}",
        r.log()
    );
}
