//! The Elasticsearch output against a real server (osmem-server), in plain-index
//! mode: events stored and read back, the index template's ECS mappings,
//! rejected documents in the dead-letter file, a server that is down at start
//! or dies mid-stream, request failures injected by a proxy, gzip bodies, one
//! index per dataset, the mapping types against the pinned ECS release, the
//! template version rule, and the data-stream target, which osmem cannot take
//! (it has no data streams) and which therefore stops the output at start.
//!
//! The tests are plain `#[test]`s: the output runs on its own runtime while the
//! test thread feeds it with flume's blocking `send` and checks the server with
//! blocking HTTP calls.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::osmem::{self, Osmem};
use dnsenrich::decode::LineDecoder;
use dnsenrich::event::Event;
use dnsenrich::grammar::GrammarSet;
use dnsenrich::output::{
    ElasticsearchConfig, OutputConfig, OutputError, OutputReport, OutputStats, ReopenSignal,
    RetryConfig,
};
use dnsenrich::pipeline::{Ack, EncodedBatch};
use dnsenrich::syslog::Zone;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(15);

/// Which batches have been acked, by the id the test gave them.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<BTreeSet<usize>>>);

impl Acks {
    fn ack(&self, id: usize) -> Ack {
        let set = self.0.clone();
        Ack::new(move || {
            set.lock().unwrap().insert(id);
        })
    }

    fn ids(&self) -> BTreeSet<usize> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A document with a marker in `dns.question.name`.
fn doc(marker: &str) -> String {
    json!({
        "@timestamp": "2026-11-28T01:10:39.000Z",
        "event": { "kind": "event", "dataset": "pihole.dns", "original": format!("line {marker}") },
        "dns": { "type": "query", "question": { "name": marker, "type": "A" } },
        "source": { "ip": "10.0.0.7", "port": 53000 },
    })
    .to_string()
}

fn batch(docs: &[String], ack: Ack) -> EncodedBatch {
    let mut b = EncodedBatch::default();
    for d in docs {
        b.docs.extend_from_slice(d.as_bytes());
        b.ends.push(b.docs.len());
    }
    b.acks.push(ack);
    b
}

/// Batch `id` of `n` documents, markers `b<id>-d<i>.example.test`.
fn marked_batch(id: usize, n: usize, acks: &Acks) -> (EncodedBatch, Vec<String>) {
    let markers: Vec<String> = (0..n).map(|i| format!("b{id}-d{i}.example.test")).collect();
    let docs: Vec<String> = markers.iter().map(|m| doc(m)).collect();
    (batch(&docs, acks.ack(id)), markers)
}

fn question_names(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter_map(|d| d["dns"]["question"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Events decoded from the captured dnsmasq log in `fixtures/`.
fn fixture_events() -> Vec<Event> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/raw/dnsmasq/dnsmasq-extra.log");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let grammars = Arc::new(GrammarSet::builtin().expect("builtin grammars"));
    let utc = Zone::Fixed(chrono::FixedOffset::east_opt(0).unwrap());
    let mut dec = LineDecoder::new(grammars, utc, 64 * 1024);
    text.lines().map(|l| dec.decode(l.as_bytes())).collect()
}

fn config(url: &str, index: &str, dir: &Path) -> ElasticsearchConfig {
    ElasticsearchConfig {
        url: vec![url.to_owned()],
        index: Some(index.to_owned()),
        flush_interval_ms: 50,
        request_timeout_ms: 5_000,
        dead_letter_path: dir.join("dead-letter.ndjson"),
        retry: RetryConfig {
            initial_backoff_ms: 20,
            max_backoff_ms: 200,
        },
        ..ElasticsearchConfig::default()
    }
}

/// An output running on its own runtime, fed from the test thread.
struct Running {
    rt: tokio::runtime::Runtime,
    task: tokio::task::JoinHandle<Result<OutputReport, OutputError>>,
    tx: flume::Sender<EncodedBatch>,
    stats: Arc<OutputStats>,
}

impl Running {
    fn start(cfg: ElasticsearchConfig) -> Running {
        Self::start_on(runtime(), cfg)
    }

    fn start_on(rt: tokio::runtime::Runtime, cfg: ElasticsearchConfig) -> Running {
        let output = OutputConfig::Elasticsearch(cfg)
            .build()
            .expect("valid config");
        let stats = output.stats();
        let (tx, rx) = flume::bounded(64);
        let task = rt.spawn(output.run(rx, ReopenSignal::never()));
        Running {
            rt,
            task,
            tx,
            stats,
        }
    }

    fn send(&self, b: EncodedBatch) {
        self.tx.send(b).expect("output is running");
    }

    /// Closes the channel and waits for the output to settle everything.
    fn finish(self) -> OutputReport {
        drop(self.tx);
        let task = self.task;
        self.rt
            .block_on(async { tokio::time::timeout(WAIT, task).await })
            .expect("output finished in time")
            .expect("output task")
            .expect("output ran")
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting until {what}");
}

fn dead_letters(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead-letter line is JSON"))
        .collect()
}

#[test]
fn parsed_events_are_stored_and_read_back() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let events = fixture_events();
    assert!(events.len() > 100);
    let out = Running::start(config(&es.url, "dns-events", dir.path()));
    let acks = Acks::default();
    for (id, chunk) in events.chunks(40).enumerate() {
        out.send(EncodedBatch::encode(chunk, vec![acks.ack(id)]));
    }
    let batches = events.len().div_ceil(40);
    let report = out.finish();

    assert_eq!(report.stored as usize, events.len());
    assert_eq!(report.dead_lettered, 0);
    assert_eq!(acks.len(), batches);
    let stored = es.search_all("dns-events");
    assert_eq!(stored.len(), events.len());
    // Every document comes back exactly as it was encoded (serde_json's maps
    // are sorted, so `to_string` is canonical).
    let canonical = |v: Value| v.to_string();
    let mut sent: Vec<String> = events
        .iter()
        .map(|e| canonical(serde_json::from_str(&e.to_json()).unwrap()))
        .collect();
    let mut got: Vec<String> = stored.into_iter().map(canonical).collect();
    sent.sort();
    got.sort();
    assert_eq!(got, sent);
    assert!(!dir.path().join("dead-letter.ndjson").exists());
}

#[test]
fn template_gives_ecs_types_and_installing_it_twice_is_fine() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let acks = Acks::default();
    for run in 0..2 {
        let out = Running::start(config(&es.url, "dns-mapped", dir.path()));
        let mut ev = fixture_events()
            .into_iter()
            .find(|e| e.source.ip.is_some() && e.timestamp.is_some())
            .expect("an event with a client address");
        ev.tags.push("run");
        out.send(EncodedBatch::encode(&[ev], vec![acks.ack(run)]));
        assert_eq!(out.finish().stored, 1);
    }
    assert_eq!(es.count("dns-mapped"), 2);

    let m = es.mapping("dns-mapped");
    let p = &m["properties"];
    assert_eq!(p["@timestamp"]["type"], "date");
    assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
    assert_eq!(p["source"]["properties"]["port"]["type"], "long");
    assert_eq!(p["related"]["properties"]["ip"]["type"], "ip");
    assert_eq!(
        p["dns"]["properties"]["question"]["properties"]["name"]["type"],
        "keyword"
    );
    assert_eq!(p["threat"]["properties"]["enrichments"]["type"], "nested");
    assert_eq!(p["event"]["properties"]["original"]["index"], false);

    let t = es.get("_index_template/dnsenrich-dns-mapped");
    let t = &t["index_templates"][0]["index_template"];
    assert_eq!(t["index_patterns"], json!(["dns-mapped"]));
    assert_eq!(t["priority"], 200);
    assert!(t.get("data_stream").is_none());
}

#[test]
fn a_refused_document_goes_to_the_dead_letter_file_and_the_rest_is_stored() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&es.url, "dns-dl", dir.path());
    let dl_path = cfg.dead_letter_path.clone();
    let out = Running::start(cfg);
    let acks = Acks::default();
    let bad = json!({
        "@timestamp": "2026-11-28T01:10:39.000Z",
        "dns": { "question": { "name": "bad.example.test" } },
        "source": { "ip": "not-an-ip" },
    })
    .to_string();
    out.send(batch(
        &[doc("good-1.example.test"), bad, doc("good-2.example.test")],
        acks.ack(0),
    ));
    out.send(batch(&[doc("good-3.example.test")], acks.ack(1)));
    let report = out.finish();

    assert_eq!((report.stored, report.dead_lettered), (3, 1));
    assert_eq!(acks.len(), 2);
    assert_eq!(
        question_names(&es.search_all("dns-dl")),
        BTreeSet::from(
            [
                "good-1.example.test",
                "good-2.example.test",
                "good-3.example.test"
            ]
            .map(String::from)
        )
    );
    let dl = dead_letters(&dl_path);
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0]["status"], 400);
    assert_eq!(dl[0]["index"], "dns-dl");
    assert_eq!(dl[0]["error"]["type"], "mapper_parsing_exception");
    assert!(
        dl[0]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("source.ip"),
        "{}",
        dl[0]["error"]
    );
    assert_eq!(dl[0]["document"]["source"]["ip"], "not-an-ip");
    assert_eq!(
        dl[0]["document"]["dns"]["question"]["name"],
        "bad.example.test"
    );
}

#[test]
fn server_absent_at_start_then_started_gets_everything() {
    let port = osmem::free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = Running::start(config(
        &format!("http://127.0.0.1:{port}"),
        "dns-late",
        dir.path(),
    ));
    let acks = Acks::default();
    let mut markers = BTreeSet::new();
    for id in 0..3 {
        let (b, m) = marked_batch(id, 5, &acks);
        markers.extend(m);
        out.send(b);
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(acks.ids().is_empty(), "acked before any server was up");

    let es = Osmem::start_on(port);
    wait_until("all batches are acked", || acks.len() == 3);
    let report = out.finish();
    assert_eq!(report.stored, 15);
    assert_eq!(question_names(&es.search_all("dns-late")), markers);
    // The template went in before the first document created the index.
    assert_eq!(
        es.mapping("dns-late")["properties"]["source"]["properties"]["ip"]["type"],
        "ip"
    );
}

#[test]
fn server_killed_mid_stream_and_restarted_gets_everything_sent_after_the_kill() {
    let mut es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let out = Running::start(config(&es.url, "dns-restart", dir.path()));
    let acks = Acks::default();
    for id in 0..5 {
        out.send(marked_batch(id, 4, &acks).0);
    }
    wait_until("the first batches are acked", || acks.len() == 5);

    es.stop();
    let mut after_kill = BTreeSet::new();
    for id in 5..10 {
        let (b, m) = marked_batch(id, 4, &acks);
        after_kill.extend(m);
        out.send(b);
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        acks.ids(),
        (0..5).collect(),
        "acked while the server was down"
    );
    assert!(out.stats.report().request_failures > 0);

    es.restart_same_port();
    wait_until("every batch is acked", || acks.len() == 10);
    let report = out.finish();
    assert_eq!(report.stored, 40);
    // The server keeps nothing across a restart: what it holds now is exactly
    // what was sent after the kill.
    assert_eq!(question_names(&es.search_all("dns-restart")), after_kill);
}

/// What the proxy does with the connection it accepts, in order; connections
/// after the last fault are forwarded untouched.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer the whole request with this status and close.
    Status(u16),
    /// Read the request and close without answering.
    Cut,
    /// Answer 200, every item refused with this status (nothing is stored).
    Items(u16),
    /// Forward the request, wait for the server's answer (so the documents
    /// are stored), then close without passing the answer on.
    LoseAnswer,
}

/// A TCP proxy in front of the server for fault injection. It reads each
/// connection's first request (recording its head); a bulk request gets the
/// next fault, or the connection is forwarded as it is once the faults are
/// used up. Any other request (the output's `GET /` probe of a node it marked
/// down) is answered 200 by the proxy itself and closed, so probes neither
/// use up faults nor open a connection that later bulk requests could reuse
/// past the faults.
struct FaultProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    faults_served: Arc<AtomicUsize>,
}

impl FaultProxy {
    fn start(rt: &tokio::runtime::Runtime, upstream: SocketAddr, faults: Vec<Fault>) -> FaultProxy {
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(AtomicUsize::new(0));
        let (h, s) = (heads.clone(), served.clone());
        let faults = Arc::new(Mutex::new(faults.into_iter()));
        rt.spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(proxy_connection(
                    conn,
                    upstream,
                    faults.clone(),
                    h.clone(),
                    s.clone(),
                ));
            }
        });
        FaultProxy {
            addr,
            heads,
            faults_served: served,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn proxy_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: Arc<Mutex<std::vec::IntoIter<Fault>>>,
    heads: Arc<Mutex<Vec<String>>>,
    served: Arc<AtomicUsize>,
) {
    let Some(request) = read_message(&mut client).await else {
        return;
    };
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let bulk = head.starts_with("POST ") && head.contains("/_bulk");
    heads.lock().unwrap().push(head);
    if !bulk {
        respond(&mut client, 200, r#"{"tagline":"proxy"}"#).await;
        return;
    }
    let fault = faults.lock().unwrap().next();
    match fault {
        Some(Fault::Status(status)) => {
            let body = format!(
                r#"{{"error":{{"type":"injected","reason":"injected {status}"}},"status":{status}}}"#
            );
            respond(&mut client, status, &body).await;
            served.fetch_add(1, Ordering::SeqCst);
        }
        Some(Fault::Items(status)) => {
            let docs = request[head_end + 4..]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                / 2;
            let item = json!({"create": {"status": status, "error": {"type": "injected", "reason": "injected"}}});
            let body = json!({"errors": true, "items": vec![item; docs]}).to_string();
            respond(&mut client, 200, &body).await;
            served.fetch_add(1, Ordering::SeqCst);
        }
        Some(Fault::Cut) => {
            served.fetch_add(1, Ordering::SeqCst);
            drop(client);
        }
        Some(Fault::LoseAnswer) => {
            let mut server = TcpStream::connect(upstream)
                .await
                .expect("the proxy reaches the server");
            server
                .write_all(&request)
                .await
                .expect("forward the request");
            // An answer (head and body) means the server is done with it.
            let answer = read_message(&mut server).await;
            assert!(answer.is_some(), "the server did not answer");
            served.fetch_add(1, Ordering::SeqCst);
            drop(client);
        }
        None => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            if server.write_all(&request).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
    }
}

async fn respond(conn: &mut TcpStream, status: u16, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Reads one HTTP/1.1 message (a request, or the server's answer) with a
/// `content-length` body (bounded).
async fn read_message(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(buf);
            }
        }
        if buf.len() > 64 * 1024 * 1024 {
            return None;
        }
        let n = tokio::time::timeout(WAIT, conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn failed_requests_and_refused_items_are_retried_until_stored() {
    let es = Osmem::start();
    // Made beforehand: creating the first index can take osmem seconds on a
    // loaded machine, and a request that times out would count as one more
    // failure than the faults injected.
    es.put("dns-faults", &json!({}));
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let faults = vec![
        Fault::Status(503),
        Fault::Cut,
        Fault::Status(429),
        // Wrong credentials: retried at the longest delay, nothing dropped.
        Fault::Status(401),
        Fault::Items(429),
    ];
    let proxy = FaultProxy::start(&rt, es.addr(), faults);
    let cfg = ElasticsearchConfig {
        max_in_flight: 1,
        // Keeps the first connections for bulk requests, so they get the faults.
        install_template: false,
        ..config(&proxy.url(), "dns-faults", dir.path())
    };
    let out = Running::start_on(rt, cfg);
    let acks = Acks::default();
    let mut markers = BTreeSet::new();
    for id in 0..3 {
        let (b, m) = marked_batch(id, 3, &acks);
        markers.extend(m);
        out.send(b);
    }
    wait_until("every batch is acked", || acks.len() == 3);
    let report = out.finish();

    assert_eq!(proxy.faults_served.load(Ordering::SeqCst), 5);
    assert_eq!(report.request_failures, 4);
    assert!((1..=9).contains(&report.retried), "{report:?}");
    assert_eq!((report.stored, report.dead_lettered), (9, 0));
    assert_eq!(question_names(&es.search_all("dns-faults")), markers);
    assert!(proxy.heads.lock().unwrap()[0].starts_with("POST /_bulk?filter_path="));
}

/// Sends 10 marked documents through a proxy that loses the answer to the
/// first bulk request after the server stored it; returns the report and
/// how many documents the server holds.
fn lose_the_first_answer(document_ids: bool, index: &str) -> (OutputReport, u64) {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let proxy = FaultProxy::start(&rt, es.addr(), vec![Fault::LoseAnswer]);
    let cfg = ElasticsearchConfig {
        max_in_flight: 1,
        install_template: false,
        document_ids,
        ..config(&proxy.url(), index, dir.path())
    };
    let out = Running::start_on(rt, cfg);
    let acks = Acks::default();
    let (b, markers) = marked_batch(0, 10, &acks);
    out.send(b);
    wait_until("the batch is acked", || acks.len() == 1);
    let report = out.finish();
    assert_eq!(proxy.faults_served.load(Ordering::SeqCst), 1);
    assert_eq!(report.request_failures, 1, "{report}");
    let docs = es.search_all(index);
    let names = question_names(&docs);
    assert_eq!(
        names,
        markers.iter().cloned().collect(),
        "every document is there"
    );
    (report, es.count(index))
}

#[test]
fn with_document_ids_a_lost_answer_does_not_store_twice() {
    let (report, count) = lose_the_first_answer(true, "dns-ids");
    assert_eq!(count, 10, "stored once each: {report}");
    // The first attempt's 201s never arrived; the retry, with the same ids,
    // was answered 409 for each document: already stored, and acked as such.
    assert_eq!((report.stored, report.duplicates), (0, 10), "{report}");
}

#[test]
fn without_document_ids_a_lost_answer_stores_twice() {
    // What the README calls at-least-once: the server makes new ids for the
    // resent documents, so both attempts are kept.
    let (report, count) = lose_the_first_answer(false, "dns-no-ids");
    assert_eq!(count, 20, "{report}");
    assert_eq!((report.stored, report.duplicates), (10, 0), "{report}");
}

#[test]
fn gzip_bodies_are_accepted() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let proxy = FaultProxy::start(&rt, es.addr(), vec![]);
    let cfg = ElasticsearchConfig {
        gzip: true,
        install_template: false,
        ..config(&proxy.url(), "dns-gzip", dir.path())
    };
    let out = Running::start_on(rt, cfg);
    let acks = Acks::default();
    let (b, markers) = marked_batch(0, 50, &acks);
    out.send(b);
    let report = out.finish();
    assert_eq!(report.stored, 50);
    assert_eq!(
        question_names(&es.search_all("dns-gzip")),
        markers.into_iter().collect()
    );
    let heads = proxy.heads.lock().unwrap();
    let head = heads[0].to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        head.contains("content-type: application/x-ndjson"),
        "{head}"
    );
}

/// A DNS query and a DHCP acknowledgement as a Pi-hole box sends them over
/// syslog, and an RFC 5424 line with structured data.
const LINES: [&str; 3] = [
    "<30>Nov 28 01:10:50 pihole dnsmasq[17008]: query[A] routed.example.test from 10.0.0.7",
    "<30>Nov 28 01:10:50 pihole dnsmasq-dhcp[17008]: DHCPACK(lo) 127.0.0.55 02:00:5e:c0:de:01 laptop",
    "<30>1 2026-11-28T01:10:51Z pihole dnsmasq 17008 - [origin@48577 ip=\"10.0.0.1\"] query[AAAA] sd.example.test from 10.0.0.8",
];

/// Events decoded as the pipeline does for a data-stream output of
/// namespace `test`, with the raw line kept.
fn routed_events(lines: &[&str]) -> Vec<Event> {
    let grammars = Arc::new(GrammarSet::builtin().expect("builtin grammars"));
    let utc = Zone::Fixed(chrono::FixedOffset::east_opt(0).unwrap());
    let mut dec = LineDecoder::new(grammars, utc, 64 * 1024)
        .keep_original(true)
        .data_stream(Some("test"));
    lines.iter().map(|l| dec.decode(l.as_bytes())).collect()
}

#[test]
fn each_dataset_lands_in_its_own_index_with_the_required_fields() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let out = Running::start(config(&es.url, "dns-{dataset}", dir.path()));
    let acks = Acks::default();
    out.send(EncodedBatch::encode(
        &routed_events(&LINES),
        vec![acks.ack(0)],
    ));
    let report = out.finish();
    assert_eq!((report.stored, report.dead_lettered), (3, 0), "{report}");

    let dns = es.search_all("dns-pihole.dns");
    let dhcp = es.search_all("dns-pihole.dhcp");
    assert_eq!((dns.len(), dhcp.len()), (2, 1));
    for (doc, dataset) in dns
        .iter()
        .map(|d| (d, "pihole.dns"))
        .chain(dhcp.iter().map(|d| (d, "pihole.dhcp")))
    {
        assert_eq!(doc["ecs"]["version"], "8.17.0", "{doc}");
        assert_eq!(doc["event"]["dataset"], dataset, "{doc}");
        assert_eq!(
            doc["data_stream"],
            json!({ "type": "logs", "dataset": dataset, "namespace": "test" }),
            "{doc}"
        );
        assert_eq!(doc["host"]["name"], "pihole", "{doc}");
        assert!(doc["event"]["created"].is_string(), "{doc}");
        assert!(doc["message"].is_string(), "{doc}");
        assert!(doc["event"]["original"].is_string(), "{doc}");
    }
    assert!(dhcp[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("DHCPACK(lo) 127.0.0.55"));
    // One index template per index, each with the ECS mappings.
    for index in ["dns-pihole.dns", "dns-pihole.dhcp"] {
        let t = es.get(&format!("_index_template/dnsenrich-{index}"));
        let t = &t["index_templates"][0]["index_template"];
        assert_eq!(t["index_patterns"], json!([index]), "{t}");
        assert_eq!(
            t["_meta"]["version"],
            dnsenrich::output::elasticsearch::template::TEMPLATE_VERSION
        );
    }
}

/// `a.b.c` → type of every field in a `_mapping` answer's `properties`.
fn flat_mapping(m: &Value) -> std::collections::BTreeMap<String, String> {
    dnsenrich::output::elasticsearch::template::flat_types(m)
        .into_iter()
        .collect()
}

#[test]
fn stored_mapping_types_equal_the_pinned_ecs_release() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let out = Running::start(config(&es.url, "dns-ecs", dir.path()));
    let acks = Acks::default();
    let mut events = routed_events(&LINES);
    events.extend(fixture_events());
    out.send(EncodedBatch::encode(&events, vec![acks.ack(0)]));
    let report = out.finish();
    assert_eq!(report.dead_lettered, 0, "{report}");

    let ecs: std::collections::BTreeMap<String, String> = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ecs/ecs-8.17-fields.tsv"),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.starts_with('#') && !l.is_empty())
    .map(|l| {
        let (f, t) = l.split_once('\t').unwrap();
        (f.to_owned(), t.to_owned())
    })
    .collect();
    // The two ECS types OpenSearch (and so osmem) names differently.
    let on_opensearch = |t: &str| match t {
        "flattened" => "flat_object".to_owned(),
        "constant_keyword" => "keyword".to_owned(),
        t => t.to_owned(),
    };
    let stored = flat_mapping(&es.mapping("dns-ecs"));
    let docs = es.search_all("dns-ecs");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (field, ty) in &stored {
        if let Some(want) = ecs.get(field) {
            checked += 1;
            if on_opensearch(want) != *ty {
                wrong.push(format!("{field}: stored as {ty}, ECS 8.17 says {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // What the documents carry is in the mapping, so the check covered them.
    for field in [
        "message",
        "ecs.version",
        "data_stream.dataset",
        "host.name",
        "event.created",
        "event.original",
        "dns.question.name",
        "client.ip",
        "log.syslog.structured_data",
    ] {
        assert!(stored.contains_key(field), "{field} not mapped");
        assert!(ecs.contains_key(field), "{field} not in the ECS extract");
    }
    assert!(checked >= 30, "only {checked} ECS fields stored");
    assert!(docs
        .iter()
        .any(|d| d["log"]["syslog"]["structured_data"]["origin@48577"]["ip"] == "10.0.0.1"));
}

#[test]
fn a_newer_template_on_the_server_is_left_alone_and_an_older_one_replaced() {
    use dnsenrich::output::elasticsearch::template::TEMPLATE_VERSION;
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let put = |index: &str, version: u64| {
        es.put(
            &format!("_index_template/dnsenrich-{index}"),
            &json!({
                "index_patterns": [index],
                "template": { "mappings": { "properties": { "marker": { "type": "keyword" } } } },
                "_meta": { "managed_by": "dnsenrich", "version": version },
            }),
        )
    };
    put("dns-newer", TEMPLATE_VERSION + 1);
    put("dns-older", TEMPLATE_VERSION - 1);
    for index in ["dns-newer", "dns-older"] {
        let out = Running::start(config(&es.url, index, dir.path()));
        let acks = Acks::default();
        out.send(marked_batch(0, 1, &acks).0);
        assert_eq!(out.finish().stored, 1);
    }
    let version = |index: &str| {
        let t = es.get(&format!("_index_template/dnsenrich-{index}"));
        t["index_templates"][0]["index_template"]["_meta"]["version"].clone()
    };
    assert_eq!(version("dns-newer"), TEMPLATE_VERSION + 1);
    assert_eq!(version("dns-older"), TEMPLATE_VERSION);
    // The newer template's mapping is the one the index got.
    let newer = es.mapping("dns-newer");
    assert_eq!(newer["properties"]["marker"]["type"], "keyword");
    assert!(
        newer["properties"]["source"]["properties"]["ip"].is_null() || {
            // Dynamic mapping may still add fields; none of ours is typed `ip`.
            newer["properties"]["source"]["properties"]["ip"]["type"] != "ip"
        }
    );
}

#[test]
fn a_data_stream_on_a_server_without_data_streams_stops_at_start() {
    // osmem has no data streams (PUT _data_stream answers
    // unsupported_operation_exception); it reports itself as OpenSearch.
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = ElasticsearchConfig {
        index: None,
        namespace: "test".into(),
        ..config(&es.url, "unused", dir.path())
    };
    let output = OutputConfig::Elasticsearch(cfg)
        .build()
        .expect("valid config");
    let err = runtime()
        .block_on(output.prepare())
        .expect_err("the target is refused at start");
    let text = err.to_string();
    assert!(matches!(err, OutputError::Unfit { .. }), "{text}");
    assert!(text.contains("OpenSearch 3.8.0"), "{text}");
    assert!(text.contains("logs-pihole.dns-test"), "{text}");
    assert!(text.contains("--index"), "{text}");
    assert!(text.contains("data streams are not supported"), "{text}");

    // The standalone template OpenSearch takes was installed on the way,
    // with flat_object for the structured data.
    let t = es.get("_index_template/dnsenrich-logs-pihole.dns");
    let t = &t["index_templates"][0]["index_template"];
    assert_eq!(t["index_patterns"], json!(["logs-pihole.dns-*"]));
    assert!(t["data_stream"].is_object(), "{t}");
    assert!(
        t.get("composed_of").map_or(true, |c| c == &json!([])),
        "{t}"
    );
    assert_eq!(
        t["template"]["mappings"]["properties"]["log"]["properties"]["syslog"]["properties"]
            ["structured_data"]["type"],
        "flat_object"
    );
}

#[test]
fn the_daemon_refuses_to_start_with_a_data_stream_osmem_cannot_take() {
    let es = Osmem::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = common::daemon::DaemonBuilder::new(state.path())
        .config("[output]\ntype = \"elasticsearch\"\n")
        .arg("--elasticsearch")
        .arg(&es.url)
        .arg("--es-namespace")
        .arg("home")
        .spawn();
    let status = d.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{}", d.stderr());
    let stderr = d.stderr();
    assert!(stderr.contains("logs-pihole.dns-home"), "{stderr}");
    assert!(stderr.contains("--index"), "{stderr}");
    assert!(
        stderr.contains("dnsenrich: error: Elasticsearch: OpenSearch"),
        "{stderr}"
    );
}

#[test]
fn the_per_data_stream_template_of_an_earlier_version_gives_way() {
    // dnsenrich 0.x installed dnsenrich-<data stream> at priority 200; its
    // pattern overlaps logs-pihole.dns-* at the same priority, which the
    // server refuses, so it has to go first.
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let legacy = "_index_template/dnsenrich-logs-pihole.dns-test";
    let put = es.put(
        legacy,
        &json!({
            "index_patterns": ["logs-pihole.dns-test"],
            "priority": 200,
            "data_stream": {},
            "_meta": { "managed_by": "dnsenrich", "version": "0.1.0" },
        }),
    );
    assert_eq!(put["acknowledged"], true, "{put}");
    let cfg = ElasticsearchConfig {
        index: None,
        namespace: "test".into(),
        ..config(&es.url, "unused", dir.path())
    };
    let output = OutputConfig::Elasticsearch(cfg)
        .build()
        .expect("valid config");
    // osmem then refuses the data stream itself; the templates are in place.
    assert!(runtime().block_on(output.prepare()).is_err());
    assert!(
        es.get(legacy).get("index_templates").is_none(),
        "{}",
        es.get(legacy)
    );
    let t = es.get("_index_template/dnsenrich-logs-pihole.dns");
    assert_eq!(
        t["index_templates"][0]["index_template"]["index_patterns"],
        json!(["logs-pihole.dns-*"])
    );
}

#[test]
fn a_server_that_will_not_say_what_it_is_still_gets_the_events() {
    // A writer without the `monitor` privilege gets 403 to GET /: no
    // templates then, but the documents are sent, not held.
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let proxy = FaultProxy::start(&rt, es.addr(), vec![Fault::Status(403)]);
    let cfg = config(&proxy.url(), "dns-blind", dir.path());
    let out = Running::start_on(rt, cfg);
    let acks = Acks::default();
    let (b, markers) = marked_batch(0, 3, &acks);
    out.send(b);
    let report = out.finish();
    assert_eq!((report.stored, report.dead_lettered), (3, 0), "{report}");
    assert_eq!(
        question_names(&es.search_all("dns-blind")),
        markers.into_iter().collect()
    );
    assert!(proxy.heads.lock().unwrap()[0].starts_with("GET / "));
    assert!(es.get("_index_template/dnsenrich-dns-blind")["index_templates"][0].is_null());
}

#[test]
fn a_server_down_at_start_is_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", osmem::free_port());
    let cfg = ElasticsearchConfig {
        index: None,
        ..config(&url, "unused", dir.path())
    };
    let output = OutputConfig::Elasticsearch(cfg)
        .build()
        .expect("valid config");
    // Nothing answers: the check is left to when the server does.
    runtime()
        .block_on(output.prepare())
        .expect("an unreachable server does not stop the start");
}

#[test]
fn a_target_found_unfit_after_start_holds_the_events_instead_of_dead_lettering_them() {
    // The output runs without the start-up check (as when the server came up
    // only later); osmem cannot take the data stream.
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = ElasticsearchConfig {
        index: None,
        namespace: "held".into(),
        ..config(&es.url, "unused", dir.path())
    };
    let dl_path = cfg.dead_letter_path.clone();
    let out = Running::start(cfg);
    let acks = Acks::default();
    out.send(marked_batch(0, 3, &acks).0);
    wait_until("the data-stream template is installed", || {
        es.get("_index_template/dnsenrich-logs-pihole.dns")["index_templates"][0].is_object()
    });
    std::thread::sleep(Duration::from_millis(500));
    let stats = out.stats.report();
    assert_eq!((stats.stored, stats.dead_lettered), (0, 0), "{stats}");
    assert_eq!(acks.len(), 0, "held, not acknowledged");
    assert!(!dl_path.exists());
    // Dropping the runtime abandons the held batch unacknowledged.
}

#[test]
fn a_retention_on_a_server_without_lifecycles_stops_at_start() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = ElasticsearchConfig {
        index: None,
        retention: Some("30d".into()),
        ..config(&es.url, "unused", dir.path())
    };
    let output = OutputConfig::Elasticsearch(cfg)
        .build()
        .expect("valid config");
    let err = runtime().block_on(output.prepare()).unwrap_err();
    assert!(err.to_string().contains("retention"), "{err}");
    assert!(err.to_string().contains("ISM"), "{err}");
}

/// Threat fields and the typed custom namespace end to end: dnsmasq lines
/// decoded, enriched from a real memcached, stored in osmem-server, read back
/// with `_search`, and mapped with their types by the template.
#[test]
fn enrichment_feeds_and_typed_custom_fields_are_stored_with_their_types() {
    use dnsenrich::enrich::EnrichConfig;
    use dnsenrich::pipeline::EventBatch;

    let mc = common::memcached::Memcached::start();
    mc.set("domain-evil.example", b"['Feed-A', 'Feed-B']");
    let stage = EnrichConfig {
        memcached: vec![mc.addr.clone()],
        ..Default::default()
    }
    .build()
    .unwrap();
    let lines = [
        "Nov 28 01:10:39 dnsmasq[16144]: 7 10.0.0.5/40000 query[A] www.evil.example from 10.0.0.5",
        "Nov 28 01:10:40 dnsmasq-dhcp[16144]: 1589698051 DHCPACK(eth0) 192.0.2.55 02:00:5e:c0:de:01 laptop",
        "Nov 28 01:10:41 dnsmasq[16144]: 8 10.0.0.5/40001 reply sec.test is DS for keytag 48748, algo 13, digest 2",
        "Nov 28 01:10:42 dnsmasq[16144]: time 1795828255",
        "Nov 28 01:10:43 dnsmasq[16144]: read /etc/hosts - 8 names",
    ];
    let grammars = Arc::new(GrammarSet::builtin().unwrap());
    let utc = Zone::Fixed(chrono::FixedOffset::east_opt(0).unwrap());
    let mut dec = LineDecoder::new(grammars, utc, 64 * 1024);
    let mut batch = EventBatch {
        events: lines.iter().map(|l| dec.decode(l.as_bytes())).collect(),
        acks: Vec::new(),
        seq: 0,
    };
    let before = chrono::Utc::now();
    stage.enricher().enrich(&mut batch);

    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let out = Running::start(config(&es.url, "dns-typed", dir.path()));
    out.send(EncodedBatch::encode(&batch.events, Vec::new()));
    assert_eq!(out.finish().stored as usize, lines.len());
    let stored = es.search_all("dns-typed");
    let by_message = |start: &str| {
        stored
            .iter()
            .find(|d| d["message"].as_str().is_some_and(|m| m.starts_with(start)))
            .unwrap_or_else(|| panic!("no document for {start:?}: {stored:?}"))
    };

    let hit = by_message("7 10.0.0.5/40000 query[A]");
    assert_eq!(
        hit["misp_src"],
        json!(["Feed-A", "Feed-B"]),
        "compatibility field kept"
    );
    let e = hit["threat"]["enrichments"].as_array().unwrap();
    let feeds: Vec<&str> = e
        .iter()
        .map(|x| x["feed"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(feeds, ["Feed-A", "Feed-B"]);
    for x in e {
        assert_eq!(x["matched"]["atomic"], "evil.example");
        assert_eq!(x["matched"]["field"], "dns.question.name");
        assert_eq!(x["matched"]["type"], "parent_domain");
        let at: chrono::DateTime<chrono::Utc> =
            x["matched"]["occurred"].as_str().unwrap().parse().unwrap();
        assert!(at >= before - chrono::Duration::milliseconds(1), "{at}");
    }

    let dhcp = by_message("1589698051 DHCPACK");
    assert_eq!(dhcp["client"]["mac"], "02-00-5E-C0-DE-01");
    assert_eq!(dhcp["client"]["domain"], "laptop");
    assert_eq!(dhcp["observer"]["ingress"]["interface"]["name"], "eth0");
    assert_eq!(dhcp["dnsmasq"]["dhcp"]["xid"], 1589698051);
    assert_eq!(dhcp["dnsmasq"]["dhcp"]["address"], "192.0.2.55");
    assert_eq!(dhcp["related"]["ip"], json!(["192.0.2.55"]));
    assert_eq!(dhcp["related"]["hosts"], json!(["laptop"]));
    assert!(dhcp.get("labels").is_none());
    let ds = by_message("8 10.0.0.5/40001 reply");
    assert_eq!(
        ds["dnsmasq"]["dnssec"],
        json!({"keytag": 48748, "algorithm": 13, "digest": 2})
    );
    let dump = by_message("time ");
    assert_eq!(dump["dnsmasq"]["stats"]["time"], "2026-11-28T01:10:55.000Z");
    let read = by_message("read ");
    assert_eq!(read["file"]["path"], "/etc/hosts");
    assert_eq!(read["dnsmasq"]["file"]["entries"], 8);

    let m = es.mapping("dns-typed");
    let at = |path: &str| {
        path.split('.')
            .fold(&m, |v, part| &v["properties"][part])
            .clone()
    };
    for (path, ty) in [
        ("threat.enrichments.feed.name", "keyword"),
        ("threat.enrichments.matched.occurred", "date"),
        ("client.mac", "keyword"),
        ("file.path", "keyword"),
        ("observer.ingress.interface.name", "keyword"),
        ("dnsmasq.serial", "long"),
    ] {
        assert_eq!(at(path)["type"], ty, "{path}");
    }
    for f in dnsenrich::event::custom::FIELDS {
        assert_eq!(at(f.name)["type"], f.ty.es_type(), "{}", f.name);
    }
}
