//! End to end through the real `dnsenrich` binary: real syslog clients
//! (util-linux `logger`, `openssl s_client`, plain sockets) and a tailed file
//! on one side, osmem-server (an in-memory server speaking the Elasticsearch
//! API) or the NDJSON output on the other, with faults in between: the server
//! missing or restarted, refused documents, oversized frames and garbage,
//! a thousand idle connections, SIGTERM right after a burst, SIGKILL, and bad
//! configuration.
//!
//! The module-level behaviour of each stage is tested next to it
//! (`tests/inputs.rs`, `tests/elasticsearch.rs`); these tests check that the
//! daemon wires the stages together as `dnsenrich run` users rely on.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{
    complete_lines, logger, read_events, run_to_exit, wait_child, wait_until, Daemon,
    DaemonBuilder, LoggerStream,
};
use common::limits::raise_nofile;
use common::osmem::{self, Osmem};
use common::pki::Pki;
use serde_json::{json, Value};

/// The longest a test waits for events to arrive.
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------- helpers

/// The value at a dotted path (`dns.question.name`), or `Null`.
fn field<'a>(doc: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(doc, |v, key| v.get(key).unwrap_or(&Value::Null))
}

/// The string at a dotted path, or "".
fn text<'a>(doc: &'a Value, path: &str) -> &'a str {
    field(doc, path).as_str().unwrap_or("")
}

fn tags(doc: &Value) -> Vec<&str> {
    field(doc, "tags")
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn question_names(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| text(d, "dns.question.name").to_owned())
        .collect()
}

/// How often each name occurs.
fn tally(names: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n).or_insert(0) += 1;
    }
    m
}

/// `dns.question.name` of an encoded event, found without parsing the JSON
/// (fast enough for tens of thousands of lines in a debug build).
fn encoded_question_name(line: &str) -> Option<&str> {
    const KEY: &str = r#""question":{"name":""#;
    let at = line.find(KEY)? + KEY.len();
    let len = line[at..].find('"')?;
    Some(&line[at..at + len])
}

/// This machine's host name, which `logger` puts in its messages.
fn machine_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(rc, 0, "gethostname failed");
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `logger` arguments sending to `addr` as dnsmasq with pid 1712.
fn logger_args(addr: SocketAddr, transport: &[&'static str], format: &'static str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-n".into(),
        addr.ip().to_string(),
        "-P".into(),
        addr.port().to_string(),
    ];
    args.extend(transport.iter().map(|s| s.to_string()));
    args.extend(
        [format, "-t", "dnsmasq", "--id=1712", "--size", "8192"]
            .iter()
            .map(|s| s.to_string()),
    );
    args
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A dnsmasq `log-queries=extra` query line for `name`.
fn query_body(serial: usize, name: &str) -> String {
    format!("{serial} 10.0.78.42/60678 query[A] {name} from 10.0.78.42")
}

/// The same as an RFC 5424 frame with a fixed stamp and host `pihole`.
fn rfc5424_frame(serial: usize, name: &str) -> String {
    format!(
        "<30>1 2026-11-28T01:02:03.000Z pihole dnsmasq 1712 - - {}",
        query_body(serial, name)
    )
}

/// The same as a raw pihole.log line.
fn pihole_log_line(serial: usize, name: &str) -> String {
    format!(
        "Nov 28 01:02:03 dnsmasq[1712]: {}\n",
        query_body(serial, name)
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

// ------------------------------------------- 1. logger → daemon → Elasticsearch

/// The dnsmasq bodies every logger test sends: a query, a gravity block and a
/// reply (for another query id and client).
const DNSMASQ_BODIES: [&str; 3] = [
    "1712 10.0.78.42/60678 query[AAAA] registry.example.com from 10.0.78.42",
    "1712 10.0.78.42/60678 gravity blocked ads.example.com is 0.0.0.0",
    "1713 10.0.78.43/41000 reply registry.example.com is 2001:db8::1",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Udp,
    TcpLf,
    TcpOctetCounting,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Rfc3164,
    Rfc5424,
}

/// Sends [`DNSMASQ_BODIES`] with `logger` and checks what osmem stores.
fn logger_to_elasticsearch(index: &str, via: Via, format: Format) {
    let es = Osmem::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&es.url, index)
        .start();
    let (addr, transport): (SocketAddr, &[&str]) = match via {
        Via::Udp => (d.udp(), &["-d"]),
        Via::TcpLf => (d.tcp(), &["-T"]),
        Via::TcpOctetCounting => (d.tcp(), &["-T", "--octet-count"]),
    };
    let fmt = match format {
        Format::Rfc3164 => "--rfc3164",
        Format::Rfc5424 => "--rfc5424",
    };
    let args = logger_args(addr, transport, fmt);
    logger(
        &as_strs(&args),
        (DNSMASQ_BODIES.join("\n") + "\n").as_bytes(),
    );

    wait_until("the three events are stored", WAIT, || es.count(index) >= 3);
    let docs = es.search_all(index);
    assert_eq!(docs.len(), 3, "{docs:#?}");
    let by_action = |action: &str| -> &Value {
        docs.iter()
            .find(|d| text(d, "event.action") == action)
            .unwrap_or_else(|| panic!("no {action} event in {docs:#?}"))
    };

    let query = by_action("dns-query");
    assert_eq!(text(query, "dns.question.name"), "registry.example.com");
    assert_eq!(text(query, "dns.question.type"), "AAAA");
    assert_eq!(text(query, "source.ip"), "10.0.78.42");
    assert_eq!(field(query, "source.port"), 60678);
    assert_eq!(field(query, "dnsmasq.serial"), 1712);
    assert_eq!(text(query, "message"), DNSMASQ_BODIES[0]);

    let blocked = by_action("dns-blocked");
    assert_eq!(text(blocked, "rule.name"), "gravity blocked");
    assert_eq!(text(blocked, "dns.question.name"), "ads.example.com");
    assert_eq!(field(blocked, "dns.resolved_ip"), &json!(["0.0.0.0"]));
    assert_eq!(text(blocked, "client.ip"), "10.0.78.42");
    assert_eq!(text(blocked, "message"), DNSMASQ_BODIES[1]);

    let reply = by_action("dns-reply");
    assert_eq!(text(reply, "dns.question.name"), "registry.example.com");
    assert_eq!(field(reply, "dnsmasq.serial"), 1713);
    assert_eq!(text(reply, "client.ip"), "10.0.78.43");
    assert_eq!(field(reply, "dns.resolved_ip"), &json!(["2001:db8::1"]));
    assert_eq!(text(reply, "message"), DNSMASQ_BODIES[2]);

    // Both logger formats carry the sender's host name (RFC 3164 its first
    // label only).
    let host = machine_hostname();
    let short = host.split('.').next().unwrap_or_default();
    for doc in &docs {
        assert_eq!(text(doc, "log.syslog.appname"), "dnsmasq", "{doc}");
        assert_eq!(field(doc, "process.pid"), 1712, "{doc}");
        assert!(
            text(doc, "log.source.address").starts_with("127.0.0.1:"),
            "{doc}"
        );
        assert_eq!(
            text(doc, "host.hostname").split('.').next(),
            Some(short),
            "{doc}"
        );
        assert!(field(doc, "@timestamp").is_string(), "{doc}");
        assert!(tags(doc).is_empty(), "{doc}");
        let version = field(doc, "log.syslog.version");
        match format {
            Format::Rfc5424 => assert_eq!(version, "1", "{doc}"),
            Format::Rfc3164 => assert!(version.is_null(), "{doc}"),
        }
    }

    let m = es.mapping(index);
    assert_eq!(m["properties"]["source"]["properties"]["ip"]["type"], "ip");
    assert_eq!(m["properties"]["@timestamp"]["type"], "date");

    assert!(d.sigterm().success(), "{}", d.stderr());
    let s = d.stopped();
    assert_eq!((s.lines, s.parsed, s.unmatched), (3, 3, 0), "{s:?}");
    assert_eq!((s.stored, s.dead_lettered), (3, 0), "{s:?}");
}

#[test]
fn logger_rfc3164_over_udp_is_stored_as_ecs() {
    logger_to_elasticsearch("dns-3164-udp", Via::Udp, Format::Rfc3164);
}

#[test]
fn logger_rfc5424_over_udp_is_stored_as_ecs() {
    logger_to_elasticsearch("dns-5424-udp", Via::Udp, Format::Rfc5424);
}

#[test]
fn logger_rfc3164_over_tcp_with_lf_framing_is_stored_as_ecs() {
    logger_to_elasticsearch("dns-3164-tcp", Via::TcpLf, Format::Rfc3164);
}

#[test]
fn logger_rfc5424_over_tcp_with_octet_counting_is_stored_as_ecs() {
    logger_to_elasticsearch("dns-5424-tcp", Via::TcpOctetCounting, Format::Rfc5424);
}

// ---------------------------------------------------------------- 2. TLS

/// Sends `bytes` with `openssl s_client`, verifying the server against `ca`,
/// and closes the connection at the end of the input.
fn s_client(addr: SocketAddr, ca: &Path, bytes: &[u8]) {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-quiet", "-no_ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the openssl command is needed: install it with `apt-get install openssl`");
    let mut pipe = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let status = wait_child(&mut child, Duration::from_secs(10), "openssl s_client");
    writer.join().unwrap();
    assert!(status.success(), "openssl s_client failed: {status}");
}

#[test]
fn tls_syslog_from_openssl_s_client_is_stored() {
    let es = Osmem::start();
    let state = tempfile::tempdir().unwrap();
    let pki = Pki::server();
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("server.pem"),
        pki.path("server.key"),
    );
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&es.url, "dns-tls")
        .arg("--listen-tls")
        .arg("127.0.0.1:0")
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .start();

    // One connection with octet counting (RFC 5425), one with LF framing.
    let mut octets = Vec::new();
    for (i, name) in ["tls-1.example.com", "tls-2.example.com"]
        .into_iter()
        .enumerate()
    {
        let f = rfc5424_frame(i, name);
        write!(octets, "{} {f}", f.len()).unwrap();
    }
    s_client(d.tls(), &ca, &octets);
    let lf = format!("{}\n", rfc5424_frame(3, "tls-3.example.com"));
    s_client(d.tls(), &ca, lf.as_bytes());

    wait_until("three events are stored", WAIT, || es.count("dns-tls") >= 3);
    let docs = es.search_all("dns-tls");
    let names: BTreeSet<String> = question_names(&docs).into_iter().collect();
    assert_eq!(
        names,
        BTreeSet::from(
            [
                "tls-1.example.com",
                "tls-2.example.com",
                "tls-3.example.com"
            ]
            .map(String::from)
        )
    );
    for doc in &docs {
        assert_eq!(text(doc, "event.action"), "dns-query", "{doc}");
        assert_eq!(text(doc, "host.hostname"), "pihole", "{doc}");
        assert!(
            text(doc, "log.source.address").starts_with("127.0.0.1:"),
            "{doc}"
        );
    }
    assert!(d.sigterm().success(), "{}", d.stderr());
    assert_eq!(d.stopped().stored, 3);
}

// ------------------------------------------------- 3. Elasticsearch faults

#[test]
fn elasticsearch_absent_at_start_then_started_gets_every_line() {
    let port = osmem::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&url, "dns-late")
        .start();
    let names: Vec<String> = (0..200).map(|i| format!("late-{i}.example.com")).collect();
    let bodies: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| query_body(i, n) + "\n")
        .collect();
    let args = logger_args(d.tcp(), &["-T", "--octet-count"], "--rfc5424");
    logger(&as_strs(&args), bodies.as_bytes());

    // Nothing to talk to: the daemon keeps the events and says it keeps
    // probing the node (requests wait for it instead of each retrying).
    assert!(
        d.wait_for_stderr("probing it until it answers", Duration::from_secs(5)),
        "{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.try_status().is_none(), "{}", d.stderr());

    let es = Osmem::start_on(port);
    wait_until("every line is stored", WAIT, || es.count("dns-late") >= 200);
    let stored = tally(question_names(&es.search_all("dns-late")));
    assert_eq!(
        stored,
        tally(names.iter().cloned()),
        "each line exactly once"
    );
    // The template went in before the first document created the index.
    let m = es.mapping("dns-late");
    assert_eq!(m["properties"]["source"]["properties"]["ip"]["type"], "ip");

    assert!(d.sigterm().success(), "{}", d.stderr());
    let s = d.stopped();
    assert_eq!((s.lines, s.stored, s.dead_lettered), (200, 200, 0), "{s:?}");
}

#[test]
fn elasticsearch_killed_mid_stream_and_restarted_loses_nothing() {
    let mut es = Osmem::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&es.url, "dns-outage")
        .start();

    // One logger keeps its TCP connection open and sends a line every 2 ms
    // for the whole test; `sent` counts the lines handed to it.
    let args = logger_args(d.tcp(), &["-T", "--octet-count"], "--rfc5424");
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (sent, stop) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut l = LoggerStream::spawn(&as_strs(&args));
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 5000 {
                l.send(&query_body(i, &format!("o{i}.outage.example.com")));
                i += 1;
                sent.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
            l.finish();
            i
        })
    };

    wait_until("the first lines are stored", WAIT, || {
        es.count("dns-outage") >= 100
    });
    es.stop();
    // Every line handed to logger from here on reaches the daemon after the
    // server died, so it can only be stored by the restarted server.
    let after_kill = sent.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(800));
    es.restart_same_port();
    let restarted_at = sent.load(Ordering::SeqCst);
    wait_until("lines are sent after the restart", WAIT, || {
        sent.load(Ordering::SeqCst) >= restarted_at + 150
    });
    stop.store(true, Ordering::SeqCst);
    let total = sender.join().unwrap();
    assert!(
        restarted_at > after_kill,
        "lines were sent during the outage"
    );

    // Wait for the names, not a count: the restarted server may also hold
    // lines sent just before the kill.
    wait_until("every line sent after the kill is stored", WAIT, || {
        let stored: BTreeSet<String> = question_names(&es.search_all("dns-outage"))
            .into_iter()
            .collect();
        (after_kill..total).all(|i| stored.contains(&format!("o{i}.outage.example.com")))
    });
    assert!(d.sigterm().success(), "{}", d.stderr());

    // The restarted server is empty at first, so it holds what reached it:
    // every line sent after the kill exactly once, and possibly lines sent
    // just before it. Those are the only ones that can show up twice overall
    // (at-least-once): a bulk request the old server stored but died before
    // answering is sent again whole to the new one. Within one server there
    // are no duplicates: the daemon only resends a request that got no
    // answer, here a connection cut by the kill (a request that timed out
    // would be another case, but the timeout is 30 s, longer than this test).
    let stored = tally(question_names(&es.search_all("dns-outage")));
    let log = d.stderr();
    for i in after_kill..total {
        let name = format!("o{i}.outage.example.com");
        assert_eq!(
            stored.get(&name),
            Some(&1),
            "{name} (sent after the kill); kill after line {after_kill}, restart after line {restarted_at}:\n{log}"
        );
    }
    for (name, n) in &stored {
        let i: usize = name
            .strip_prefix('o')
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected document {name}"));
        assert!(i < total && *n == 1, "{name} stored {n} times");
    }

    // The daemon's own account: every line was stored once (a resent request
    // counts only the answer it got), and the outage shows as failed requests.
    let s = d.stopped();
    assert_eq!(s.lines as usize, total, "{s:?}");
    assert_eq!(s.stored as usize, total, "{s:?}");
    assert_eq!((s.dead_lettered, s.duplicates), (0, 0), "{s:?}");
    assert!(s.failed_requests > 0, "{s:?}");
}

// ---------------------------------------------------------------- 4. files

#[test]
fn tailed_file_survives_sigkill_at_least_once_and_sigterm_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("pihole.log");
    let state = work.path().join("state");
    let outs: Vec<PathBuf> = (1..=3)
        .map(|n| work.path().join(format!("out-{n}.ndjson")))
        .collect();
    let builder = |out: &Path| {
        DaemonBuilder::new(&state)
            .no_network()
            .config("[input.file]\npoll_interval_ms = 20\n")
            .ndjson_file(out)
            .arg("--tail")
            .arg(&log)
    };
    let name = |i: usize| format!("f{i}.file.example.com");
    let names_in = |out: &Path| -> Vec<String> { question_names(&read_events(out)) };

    // Run 1: a writer appends 3000 lines in chunks while the daemon follows;
    // SIGKILL once part of them is out.
    let mut d1 = builder(&outs[0]).start();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for chunk in 0..150 {
                let text: String = (chunk * 20..chunk * 20 + 20)
                    .map(|i| pihole_log_line(i, &format!("f{i}.file.example.com")))
                    .collect();
                append(&log, &text);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    wait_until("run 1 delivers some lines", WAIT, || {
        complete_lines(&outs[0]).len() >= 500
    });
    d1.kill();
    writer.join().unwrap();
    let text: String = (3000..3500).map(|i| pihole_log_line(i, &name(i))).collect();
    append(&log, &text);

    // Run 2, same state: every line is delivered at least once over both
    // runs. Duplicates are possible: offsets are saved at most once a second,
    // so what run 1 delivered after its last save is read again.
    let mut d2 = builder(&outs[1]).start();
    let want: BTreeSet<String> = (0..3500).map(name).collect();
    wait_until("every line is delivered", WAIT, || {
        let mut got: BTreeSet<String> = names_in(&outs[0]).into_iter().collect();
        got.extend(names_in(&outs[1]));
        want.is_subset(&got)
    });
    assert!(d2.sigterm().success(), "{}", d2.stderr());
    let (run1, run2) = (names_in(&outs[0]), names_in(&outs[1]));
    assert_eq!(d2.stopped().lines as usize, run2.len());
    let all: BTreeSet<String> = run1.iter().chain(&run2).cloned().collect();
    assert_eq!(all, want, "nothing but the lines written");
    // Neither run repeats a line by itself.
    assert!(tally(run1.clone()).values().all(|&n| n == 1));
    assert!(tally(run2.clone()).values().all(|&n| n == 1));

    // Run 3 after a clean stop: only the new lines, each once.
    let text: String = (3500..4000).map(|i| pihole_log_line(i, &name(i))).collect();
    append(&log, &text);
    let mut d3 = builder(&outs[2]).start();
    wait_until("run 3 delivers the new lines", WAIT, || {
        complete_lines(&outs[2]).len() >= 500
    });
    // Give a repeat of old lines the time to show up.
    std::thread::sleep(Duration::from_millis(300));
    assert!(d3.sigterm().success(), "{}", d3.stderr());
    let run3 = tally(names_in(&outs[2]));
    assert_eq!(run3, tally((3500..4000).map(name)), "nothing is repeated");
    assert_eq!(d3.stopped().lines, 500);
}

// ------------------------------------------------------- 5. dead letters

#[test]
fn documents_the_server_refuses_go_to_the_dead_letter_file() {
    let es = Osmem::start();
    // The index exists with a mapping the events cannot fit: names are text.
    let created = es.put(
        "dns-conflict",
        &json!({ "mappings": { "properties": { "dns": { "properties": {
            "question": { "properties": { "name": { "type": "long" } } }
        } } } } }),
    );
    assert_eq!(created["acknowledged"], true, "{created}");
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&es.url, "dns-conflict")
        .config("[output]\ninstall_template = false\n")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();

    let names = ["dl-1.example.com", "dl-2.example.com", "dl-3.example.com"];
    let mut bodies: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| query_body(i, n) + "\n")
        .collect();
    // No name in this one: it fits the mapping and is stored.
    bodies.push_str("a line no grammar knows\n");
    let args = logger_args(d.tcp(), &["-T"], "--rfc5424");
    logger(&as_strs(&args), bodies.as_bytes());

    let dl_path = state.path().join("dead-letter.ndjson");
    wait_until("three dead letters", WAIT, || {
        read_events(&dl_path).len() >= 3
    });
    wait_until("the fitting line is stored", WAIT, || {
        es.count("dns-conflict") >= 1
    });
    // The outcomes are counted by status; acks come after the counting.
    wait_until("the metrics count both outcomes", WAIT, || {
        d.metric("dnsenrich_bulk_items_total{status=\"created\"}") == Some(1.0)
            && d.metric("dnsenrich_bulk_items_total{status=\"dead_letter\"}") == Some(3.0)
    });
    assert_eq!(d.metric("dnsenrich_dead_letters_total"), Some(3.0));
    assert!(d.sigterm().success(), "{}", d.stderr());

    let dead = read_events(&dl_path);
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let mut dead_names: Vec<&str> = dead
        .iter()
        .map(|l| text(l, "document.dns.question.name"))
        .collect();
    dead_names.sort();
    assert_eq!(dead_names, names);
    for l in &dead {
        assert_eq!(l["status"], 400, "{l}");
        assert_eq!(l["index"], "dns-conflict", "{l}");
        assert_eq!(text(l, "error.type"), "mapper_parsing_exception", "{l}");
        assert!(text(l, "error.reason").contains("dns.question.name"), "{l}");
        assert!(
            text(l, "document.message").contains(text(l, "document.dns.question.name")),
            "{l}"
        );
    }
    let stored = es.search_all("dns-conflict");
    assert_eq!(stored.len(), 1);
    assert!(tags(&stored[0]).contains(&"_dnsenrich_nomatch"));
    // install_template = false: the daemon left the templates alone.
    assert!(
        es.get("_index_template/dnsenrich-dns-conflict")["index_templates"]
            .as_array()
            .map_or(true, |a| a.is_empty())
    );

    let s = d.stopped();
    assert_eq!((s.lines, s.stored, s.dead_lettered), (4, 1, 3), "{s:?}");
}

// ------------------------------------------------- 6. frames and garbage

#[test]
fn oversized_tcp_frame_is_truncated_and_tagged_and_the_next_is_intact() {
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .config("[parse]\nkeep_original = true\n[input.tcp]\nmax_frame = 1024\n")
        .start();
    let long = format!("{}.example.com", "x".repeat(5000));
    for (transport, after) in [
        (&["-T"][..], "after-lf.example.com"),
        (&["-T", "--octet-count"][..], "after-octets.example.com"),
    ] {
        let args = logger_args(d.tcp(), transport, "--rfc5424");
        let input = format!("{}\n{}\n", query_body(1, &long), query_body(2, after));
        logger(&as_strs(&args), input.as_bytes());
    }
    wait_until("four events", WAIT, || d.events().len() >= 4);
    assert!(d.sigterm().success(), "{}", d.stderr());

    let events = d.events();
    assert_eq!(events.len(), 4);
    for pair in events.chunks(2) {
        let (cut, next) = (&pair[0], &pair[1]);
        let original = text(cut, "event.original");
        assert_eq!(original.len(), 1024, "{original}");
        assert!(original.starts_with("<13>1 "), "{original}");
        assert!(original.ends_with("xxxxx"), "{original}");
        assert!(tags(cut).contains(&"_dnsenrich_truncated"), "{cut}");
        assert!(tags(next).is_empty(), "{next}");
        assert_eq!(text(next, "event.action"), "dns-query");
        assert!(text(next, "dns.question.name").starts_with("after-"));
    }
    assert_eq!(d.stopped().lines, 4);
}

/// Pseudo-random bytes (xorshift; the same every run).
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_over_tcp_is_tagged_and_the_daemon_keeps_working() {
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path()).start();

    // Starts with a byte that is not a digit (LF framing) and is not UTF-8;
    // the random part holds LFs and NULs, so it is several frames.
    let mut bytes = b"\xff\xfe not syslog \xc3\x28\n".to_vec();
    bytes.extend(garbage(4000, 0x5eed_1234_abcd_0001));
    bytes.push(b'\n');
    // LF-framed from the first line on, so a NUL is an ordinary byte.
    let expected_frames = bytes
        .split(|&b| b == b'\n')
        .filter(|f| !f.is_empty() && *f != b"\r")
        .count();
    let mut c = TcpStream::connect(d.tcp()).unwrap();
    c.write_all(&bytes).unwrap();
    drop(c);

    // A well-behaved client afterwards is served as usual.
    let args = logger_args(d.tcp(), &["-T"], "--rfc3164");
    logger(
        &as_strs(&args),
        (query_body(7, "after-garbage.example.com") + "\n").as_bytes(),
    );
    wait_until("the line after the garbage", WAIT, || {
        question_names(&d.events()).contains(&"after-garbage.example.com".to_owned())
    });
    assert!(d.sigterm().success(), "{}", d.stderr());

    let events = d.events();
    let (good, junk): (Vec<&Value>, Vec<&Value>) = events
        .iter()
        .partition(|e| text(e, "dns.question.name") == "after-garbage.example.com");
    assert_eq!(good.len(), 1);
    assert!(tags(good[0]).is_empty(), "{}", good[0]);
    assert_eq!(junk.len(), expected_frames, "one event per frame");
    let first = junk
        .iter()
        .find(|e| text(e, "event.original").contains("not syslog"))
        .expect("the first frame");
    assert!(tags(first).contains(&"_dnsenrich_invalid_utf8"), "{first}");
    assert!(tags(first).contains(&"_dnsenrich_nomatch"), "{first}");
    for e in &junk {
        let t = tags(e);
        assert!(
            t.iter().any(|t| [
                "_dnsenrich_invalid_utf8",
                "_dnsenrich_nomatch",
                "_dnsenrich_empty"
            ]
            .contains(t)),
            "untagged garbage: {e}"
        );
        assert!(field(e, "event.original").is_string(), "{e}");
    }
    assert!(
        junk.iter()
            .filter(|e| tags(e).contains(&"_dnsenrich_invalid_utf8"))
            .count()
            > 1
    );
    let s = d.stopped();
    assert_eq!(s.lines as usize, expected_frames + 1, "{s:?}");
    assert_eq!(s.parsed, 1, "{s:?}");
}

// --------------------------------------------------- 7. idle connections

#[test]
fn a_thousand_idle_tcp_connections_do_not_block_a_new_one() {
    raise_nofile(4096);
    let state = tempfile::tempdir().unwrap();
    // Every connection comes from the one loopback address.
    let mut d = DaemonBuilder::new(state.path())
        .config("[input.tcp]\nmax_connections_per_source = 2000\n")
        .start();
    let idle: Vec<TcpStream> = (0..1000)
        .map(|i| TcpStream::connect(d.tcp()).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();

    let args = logger_args(d.tcp(), &["-T"], "--rfc5424");
    logger(
        &as_strs(&args),
        (query_body(1, "through.example.com") + "\n").as_bytes(),
    );
    wait_until("the new connection's line", WAIT, || d.events().len() == 1);
    assert_eq!(question_names(&d.events()), ["through.example.com"]);

    // Every idle connection is still served.
    for (i, mut c) in idle.iter().enumerate() {
        c.write_all(format!("{}\n", rfc5424_frame(i, &format!("idle-{i}.example.com"))).as_bytes())
            .unwrap();
    }
    wait_until("a line from every idle connection", WAIT, || {
        d.events().len() >= 1001
    });
    drop(idle);
    assert!(d.sigterm().success(), "{}", d.stderr());
    let names = tally(question_names(&d.events()));
    assert_eq!(names.len(), 1001);
    assert!(names.values().all(|&n| n == 1));
    assert_eq!(d.stopped().lines, 1001);
}

// ------------------------------------------------ 8. SIGTERM after a burst

const BURST: usize = 50_000;

fn burst_name(i: usize) -> String {
    format!("b{i}.burst.example.com")
}

/// The question names in an NDJSON file, each with its count, and the
/// events without one (a frame cut short).
fn burst_names(path: &Path) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut nameless = Vec::new();
    let names = tally(complete_lines(path).into_iter().filter_map(
        |l| match encoded_question_name(&l) {
            Some(n) => Some(n.to_owned()),
            None => {
                nameless.push(l);
                None
            }
        },
    ));
    (names, nameless)
}

#[test]
fn sigterm_right_after_a_tcp_burst_loses_nothing() {
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .config("shutdown_timeout_secs = 15\n")
        .start();
    let mut bytes = Vec::with_capacity(BURST * 130);
    for i in 0..BURST {
        let f = rfc5424_frame(i, &burst_name(i));
        write!(bytes, "{} {f}", f.len()).unwrap();
    }
    let mut c = TcpStream::connect(d.tcp()).unwrap();
    c.write_all(&bytes).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    drop(c);
    let started = Instant::now();
    let status = d.sigterm_within(Duration::from_secs(18));
    assert!(status.success(), "{status}: {}", d.stderr());

    let (names, nameless) = burst_names(&d.stdout_path);
    let s = d.stopped();
    let written: usize = names.values().sum::<usize>() + nameless.len();
    assert!(
        nameless.is_empty() && written == BURST && names.len() == BURST,
        "{written} events written for {BURST} lines, {} distinct; {} without a name, e.g. {:?}; \
         drain took {:?}; {s:?}",
        names.len(),
        nameless.len(),
        nameless.first(),
        started.elapsed()
    );
    assert_eq!((s.lines, s.stored), (BURST as u64, BURST as u64), "{s:?}");
}

#[test]
fn sigterm_while_tailing_a_burst_resumes_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("pihole.log");
    let state = work.path().join("state");
    std::fs::write(&log, "").unwrap();
    let (out1, out2) = (
        work.path().join("out-1.ndjson"),
        work.path().join("out-2.ndjson"),
    );
    let builder = |out: &Path| {
        DaemonBuilder::new(&state)
            .no_network()
            .config("shutdown_timeout_secs = 15\n[input.file]\npoll_interval_ms = 20\n")
            .ndjson_file(out)
            .arg("--tail")
            .arg(&log)
    };
    let mut d1 = builder(&out1).start();
    let text: String = (0..BURST)
        .map(|i| pihole_log_line(i, &burst_name(i)))
        .collect();
    append(&log, &text);
    // SIGTERM while the burst is being read.
    wait_until("run 1 has started on the burst", WAIT, || {
        !complete_lines(&out1).is_empty()
    });
    assert!(
        d1.sigterm_within(Duration::from_secs(18)).success(),
        "{}",
        d1.stderr()
    );
    let run1 = d1.stopped().lines as usize;
    assert!(run1 < BURST, "the test wants SIGTERM mid-burst");

    let mut d2 = builder(&out2).start();
    wait_until("the rest of the burst", WAIT, || {
        complete_lines(&out1).len() + complete_lines(&out2).len() >= BURST
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(d2.sigterm().success(), "{}", d2.stderr());

    let (mut names, nameless1) = burst_names(&out1);
    let (names2, nameless2) = burst_names(&out2);
    assert!(
        nameless1.is_empty() && nameless2.is_empty(),
        "{nameless1:?} {nameless2:?}"
    );
    for (n, c) in names2 {
        *names.entry(n).or_insert(0) += c;
    }
    let repeated: Vec<&String> = names
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(n, _)| n)
        .collect();
    let warnings: Vec<String> = d1
        .stderr()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_owned)
        .collect();
    assert!(
        repeated.is_empty(),
        "{} lines delivered twice, e.g. {:?}; run 1 delivered {run1} and warned: {warnings:#?}",
        repeated.len(),
        &repeated[..repeated.len().min(3)]
    );
    assert_eq!(names.len(), BURST);
    assert_eq!(run1 + d2.stopped().lines as usize, BURST);
}

#[test]
fn a_tail_only_collector_opens_no_syslog_listener() {
    let state = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("pihole.log");
    std::fs::write(&log, pihole_log_line(1, "tail-only.example.com")).unwrap();
    // No listen address anywhere: the loopback defaults (port 5514) would
    // apply if dnsenrich did not follow a file.
    let mut d = DaemonBuilder::new(state.path())
        .unset("input.udp.listen")
        .unset("input.tcp.listen")
        .config("[input.file]\npoll_interval_ms = 20\n")
        .arg("--tail")
        .arg(&log)
        .start();
    let line = d.announced.clone().unwrap();
    assert!(
        line.starts_with("dnsenrich: following ") && line.contains("pihole.log"),
        "{line}"
    );
    assert!(d.udp.is_none() && d.tcp.is_none(), "{line}");
    wait_until("the tailed line", Duration::from_secs(10), || {
        d.stdout().contains("tail-only.example.com")
    });
    assert!(d.sigterm().success(), "{}", d.stderr());

    // --no-listen wins over listen addresses in the file.
    let mut d = DaemonBuilder::new(state.path())
        .config("[input.file]\npoll_interval_ms = 20\n")
        .arg("--no-listen")
        .arg("--tail")
        .arg(&log)
        .start();
    assert!(d.udp.is_none() && d.tcp.is_none(), "{:?}", d.announced);
    assert!(d.sigterm().success(), "{}", d.stderr());
    // A listen address given with a flag is opened next to the file.
    let mut d = DaemonBuilder::new(state.path())
        .unset("input.udp.listen")
        .unset("input.tcp.listen")
        .arg("--listen-udp")
        .arg("127.0.0.1:0")
        .arg("--tail")
        .arg(&log)
        .start();
    assert!(d.udp.is_some() && d.tcp.is_none(), "{:?}", d.announced);
    assert!(d.sigterm().success(), "{}", d.stderr());
}

#[test]
fn tailed_lines_shipped_late_in_a_clean_drain_are_not_read_again() {
    // Elasticsearch is down when SIGTERM comes and up 2.5 s later, well
    // within the drain deadline: the drain ships every line and the daemon
    // exits cleanly, so a restart must not send them again.
    let port = osmem::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("pihole.log");
    let state = work.path().join("state");
    let text: String = (0..20)
        .map(|i| pihole_log_line(i, &format!("late-drain-{i}.example.com")))
        .collect();
    std::fs::write(&log, text).unwrap();
    let builder = || {
        DaemonBuilder::new(&state)
            .no_network()
            .config("shutdown_timeout_secs = 15\n[input.file]\npoll_interval_ms = 20\n")
            .elasticsearch(&url, "dns-drain")
            .arg("--tail")
            .arg(&log)
    };

    let mut d1 = builder().start();
    assert!(
        d1.wait_for_stderr("probing it until it answers", Duration::from_secs(5)),
        "{}",
        d1.stderr()
    );
    // The file has been read and its lines wait in the pipeline.
    std::thread::sleep(Duration::from_millis(500));
    d1.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(2500));
    let es = Osmem::start_on(port);
    assert!(
        d1.wait_exit(Duration::from_secs(18)).success(),
        "{}",
        d1.stderr()
    );
    let s = d1.stopped();
    assert_eq!((s.lines, s.stored), (20, 20), "{s:?}");
    assert_eq!(es.count("dns-drain"), 20);

    let mut d2 = builder().start();
    // Many polls of the file; a SIGTERM drain then ships whatever was read.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(d2.sigterm().success(), "{}", d2.stderr());
    assert_eq!(d2.stopped().lines, 0, "lines read again after a clean stop");
    assert_eq!(es.count("dns-drain"), 20);
}

// ------------------------------------------------- 9. bad configuration

/// Starts the daemon with `builder` and expects it to refuse to start.
fn refused(builder: DaemonBuilder) -> (i32, String) {
    let mut d: Daemon = builder.spawn();
    let status = d.wait_exit(Duration::from_secs(10));
    let err = d.stderr();
    assert!(!status.success(), "started anyway: {err}");
    assert!(!err.contains("listening on"), "{err}");
    (status.code().unwrap_or(-1), err)
}

#[test]
fn sigterm_as_soon_as_it_listens_is_a_clean_stop() {
    // The handlers are in place before the addresses are announced: a
    // service manager stopping it right after start gets a drain, not a kill.
    for _ in 0..5 {
        let state = tempfile::tempdir().unwrap();
        let mut d = DaemonBuilder::new(state.path()).start();
        let status = d.sigterm();
        assert!(status.success(), "{status}: {}", d.stderr());
        assert!(d.stderr().contains("stopped"), "{}", d.stderr());
    }
}

#[test]
fn log_written_to_a_file_has_no_colour_codes() {
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path()).start();
    assert!(d.sigterm().success(), "{}", d.stderr());
    // Raw, not through `stderr()`, which removes colour codes.
    let raw = std::fs::read_to_string(&d.stderr_path).unwrap();
    assert!(
        raw.contains("listening on") && raw.contains("stopped"),
        "{raw}"
    );
    assert!(!raw.contains('\x1b'), "colour codes in a log file: {raw:?}");
}

#[test]
fn unknown_config_key_is_refused_naming_the_key() {
    let state = tempfile::tempdir().unwrap();
    let (code, err) =
        refused(DaemonBuilder::new(state.path()).config("[input.tcp]\nmax_conections = 3\n"));
    assert_eq!(code, 2);
    assert!(err.contains("max_conections"), "{err}");

    let (_, err) =
        refused(DaemonBuilder::new(state.path()).config("[parse]\ntimezone = \"Mars/Olympus\"\n"));
    assert!(err.contains("parse.timezone"), "{err}");

    // A section's own error names its key once, with no second prefix.
    let (_, err) = refused(DaemonBuilder::new(state.path()).config("[enrich]\ntimeout_ms = 0\n"));
    assert!(
        err.contains("error: enrich.timeout_ms: must be 1 to 10000"),
        "{err}"
    );
}

#[test]
fn bad_tls_certificate_path_is_refused_naming_the_file() {
    let state = tempfile::tempdir().unwrap();
    let missing = state.path().join("no-such-cert.pem");
    let (_, err) = refused(
        DaemonBuilder::new(state.path())
            .arg("--listen-tls")
            .arg("127.0.0.1:0")
            .arg("--tls-cert")
            .arg(&missing)
            .arg("--tls-key")
            .arg(state.path().join("no-such-key.pem")),
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

/// Every value in `written` is in `printed` at the same key.
fn assert_sets_the_same(written: &toml::Table, printed: &toml::Table, at: &str) {
    for (key, value) in written {
        let path = format!("{at}{key}");
        let got = printed
            .get(key)
            .unwrap_or_else(|| panic!("`{path}` is not printed"));
        match (value, got) {
            (toml::Value::Table(w), toml::Value::Table(p)) => {
                assert_sets_the_same(w, p, &format!("{path}."))
            }
            _ => assert_eq!(got, value, "`{path}`"),
        }
    }
}

#[test]
fn check_config_prints_the_example_and_refuses_a_bad_file() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("dnsenrich.example.toml");
    let within = Duration::from_secs(10);
    let (status, out, err) =
        run_to_exit(&[OsStr::new("check-config"), example.as_os_str()], within);
    assert!(status.success(), "{err}");
    assert!(err.contains("OK"), "{err}");
    // The effective configuration, every section, as TOML that checks again,
    // with every value the example sets.
    let printed: toml::Table = out.parse().unwrap_or_else(|e| panic!("{e}\n{out}"));
    for section in ["parse", "pipeline", "input", "output", "log"] {
        assert!(printed.contains_key(section), "{section} missing:\n{out}");
    }
    let written: toml::Table = std::fs::read_to_string(&example).unwrap().parse().unwrap();
    assert_sets_the_same(&written, &printed, "");
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &out).unwrap();
    let (status, out2, err) = run_to_exit(&[OsStr::new("check-config"), again.as_os_str()], within);
    assert!(status.success(), "{err}");
    assert_eq!(out2, out);

    // Secrets are masked.
    let secret = dir.path().join("secret.toml");
    std::fs::write(
        &secret,
        "[output]\ntype = \"elasticsearch\"\nusername = \"dnsenrich\"\npassword = \"hunter2-secret\"\n",
    )
    .unwrap();
    let (status, out, err) = run_to_exit(&[OsStr::new("check-config"), secret.as_os_str()], within);
    assert!(status.success(), "{err}");
    assert!(
        !out.contains("hunter2-secret") && !err.contains("hunter2-secret"),
        "{out}"
    );
    assert!(out.contains("***"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[pipeline]\nparse_wokers = 2\n").unwrap();
    let (status, out, err) = run_to_exit(&[OsStr::new("check-config"), bad.as_os_str()], within);
    assert!(!status.success());
    assert!(err.contains("parse_wokers"), "{err}");
    assert!(err.contains(&bad.display().to_string()), "{err}");
    assert!(out.is_empty(), "{out}");
}

// ---------------------------------------------------------------- several collectors

/// Two collectors on one address with `reuse_port = true` (SO_REUSEPORT):
/// the kernel spreads 40 TCP connections and 40 UDP senders over them, each
/// stores what it was sent, and together they store every line exactly once.
/// Without `reuse_port` the second cannot bind and says why.
#[test]
fn two_collectors_share_one_port_with_reuse_port_and_lose_nothing() {
    let port = common::memcached::free_port();
    let listen = |reuse: bool| {
        format!(
            "[input.tcp]\nlisten = [\"127.0.0.1:{port}\"]\nreuse_port = {reuse}\n\
             [input.udp]\nlisten = [\"127.0.0.1:{port}\"]\nreuse_port = {reuse}\n"
        )
    };
    let (s1, s2, s3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut a = DaemonBuilder::new(s1.path()).config(&listen(true)).start();
    let mut b = DaemonBuilder::new(s2.path()).config(&listen(true)).start();
    assert_eq!(a.tcp().port(), port);
    assert_eq!(b.tcp().port(), port);

    // A third without the option is refused the address.
    let mut c = DaemonBuilder::new(s3.path()).config(&listen(false)).spawn();
    let status = c.wait_exit(WAIT);
    assert!(!status.success());
    let err = c.stderr();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("cannot listen"), "{err}");

    const SENDERS: usize = 40;
    const LINES: usize = 25;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let line = |proto: &str, s: usize, i: usize| {
        format!("<30>Dec  2 10:00:00 dnsmasq[7]: query[A] {proto}{s}-{i}.example from 10.0.0.1")
    };
    for s in 0..SENDERS {
        let mut conn = TcpStream::connect(addr).unwrap();
        let text: String = (0..LINES).map(|i| line("t", s, i) + "\n").collect();
        conn.write_all(text.as_bytes()).unwrap();
    }
    for s in 0..SENDERS {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..LINES {
            sock.send_to(line("u", s, i).as_bytes(), addr).unwrap();
        }
        // Bounded pacing: 1,000 datagrams in about 0.2 s, well within the
        // receive buffers.
        std::thread::sleep(Duration::from_millis(5));
    }
    let want = 2 * SENDERS * LINES;
    wait_until("both collectors stored every line", WAIT, || {
        a.events().len() + b.events().len() >= want
    });
    a.sigterm();
    b.sigterm();

    let (ea, eb) = (question_names(&a.events()), question_names(&b.events()));
    for (name, got) in [("first", &ea), ("second", &eb)] {
        for proto in ["t", "u"] {
            assert!(
                got.iter().any(|n| n.starts_with(proto)),
                "the {name} collector got no {proto} lines: the load did not split"
            );
        }
    }
    let all = tally(ea.iter().chain(&eb).cloned());
    assert_eq!(all.len(), want, "lines missing");
    assert!(all.values().all(|&n| n == 1), "lines stored twice");
    for s in 0..SENDERS {
        // One sender's lines all went to one collector (a TCP connection, or
        // a UDP source address and port, is hashed to one socket).
        let host = format!("t{s}-0.example");
        let owner_is_a = ea.contains(&host);
        for i in 0..LINES {
            let n = format!("t{s}-{i}.example");
            assert_eq!(
                ea.contains(&n),
                owner_is_a,
                "{n} went elsewhere than its connection"
            );
        }
    }
    assert_eq!(a.stopped().lines + b.stopped().lines, want as u64);
}
