//! The Elasticsearch output with several nodes and through outages, end to
//! end with the real binary and osmem-server: one of three nodes dies in the
//! middle of a request and comes back; with `document_ids`, a node that dies
//! after storing leaves no duplicate on the node the request goes to next; a
//! stopped server is found again by probes, not by resending the bulk;
//! `/ready` follows a hung server and a nearly full disk buffer.
//!
//! osmem-server keeps its documents in memory, so a node that is "killed" is
//! a proxy in front of a server that keeps running: what it stored before the
//! kill still counts, and the proxy knows exactly which documents were
//! forwarded without their answer reaching the daemon — the only ones that
//! may be stored twice (at-least-once), once on the dead node and once where
//! the daemon sent them again.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{http_get, wait_until, DaemonBuilder, LoggerStream};
use common::osmem::Osmem;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(20);

/// A dnsmasq query line for `name`.
fn query(serial: usize, name: &str) -> String {
    format!("{serial} 10.0.78.42/60678 query[A] {name} from 10.0.78.42")
}

/// `logger` over TCP with octet counting to the daemon.
fn tcp_logger(addr: SocketAddr) -> LoggerStream {
    let port = addr.port().to_string();
    LoggerStream::spawn(&[
        "-n",
        "127.0.0.1",
        "-P",
        &port,
        "-T",
        "--octet-count",
        "--rfc5424",
        "-t",
        "dnsmasq",
        "--id=1712",
    ])
}

/// How often each `dns.question.name` occurs over `servers`.
fn names_over(servers: &[&Osmem], index: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in servers {
        for d in s.search_all(index) {
            if let Some(n) = d["dns"]["question"]["name"].as_str() {
                *m.entry(n.to_owned()).or_insert(0) += 1;
            }
        }
    }
    m
}

/// What the proxy shares with its connections.
#[derive(Default)]
struct ProxyState {
    /// Delay before an answer is passed on, so requests are in flight long
    /// enough for a kill to land in the middle of one.
    answer_delay: Duration,
    /// While set, bulk requests are held (not forwarded) until released.
    hold: AtomicBool,
    released: Notify,
    killed: AtomicBool,
    /// Documents forwarded to the server whose answer has not been passed
    /// back yet.
    pending: AtomicUsize,
    /// Of those, documents whose answer the server has given (so they are
    /// stored) but that has not been passed back yet.
    answered: AtomicUsize,
    /// Bulk requests forwarded.
    bulks: AtomicUsize,
}

/// A stand-in for one node's network path (fault injection only): it
/// forwards HTTP requests one by one to a real server, can hold bulk
/// requests, and can be killed (every connection cut, the port closed) and
/// started again on the same port.
struct NodeProxy {
    rt: tokio::runtime::Runtime,
    port: u16,
    upstream: SocketAddr,
    state: Arc<ProxyState>,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl NodeProxy {
    fn start(upstream: SocketAddr, answer_delay: Duration) -> NodeProxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut p = NodeProxy {
            rt,
            port: 0,
            upstream,
            state: Arc::new(ProxyState {
                answer_delay,
                ..Default::default()
            }),
            accept: None,
        };
        p.listen();
        p
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Binds the port (a new one the first time, the same one after a kill)
    /// and serves it.
    fn listen(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match self
                .rt
                .block_on(TcpListener::bind(("127.0.0.1", self.port)))
            {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("the proxy cannot bind port {}: {e}", self.port),
            }
        };
        self.port = listener.local_addr().unwrap().port();
        let (state, upstream) = (self.state.clone(), self.upstream);
        self.accept = Some(self.rt.spawn(async move {
            // Dropping the set (when this task is aborted) aborts every
            // connection, which closes its sockets: the cut.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.spawn(forward(c, upstream, state.clone()));
            }
        }));
    }

    /// Waits (bounded) until a bulk request is forwarded and unanswered,
    /// then cuts every connection and closes the port. Returns how many
    /// documents were forwarded without their answer reaching the client.
    fn kill_mid_request(&mut self) -> usize {
        let deadline = Instant::now() + WAIT;
        while self.state.pending.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no request went through the proxy"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        self.state.killed.store(true, Ordering::SeqCst);
        let at_risk = self.state.pending.load(Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            a.abort();
            let _ = self.rt.block_on(a);
        }
        at_risk
    }

    /// Waits (bounded) until the server has answered a bulk request whose
    /// answer is not passed back yet, then cuts every connection: those
    /// documents are stored, and the client never learns it. Returns how
    /// many there were.
    fn kill_after_the_server_answered(&mut self) -> usize {
        let deadline = Instant::now() + WAIT;
        while self.state.answered.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no request was answered through the proxy"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        self.state.killed.store(true, Ordering::SeqCst);
        // Aborting now leaves the count as it is: the answers are not passed on.
        let stored_unknown = self.state.answered.load(Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            a.abort();
            let _ = self.rt.block_on(a);
        }
        stored_unknown
    }

    /// Cuts every connection and closes the port, whatever is in flight.
    fn kill(&mut self) {
        self.state.killed.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            a.abort();
            let _ = self.rt.block_on(a);
        }
    }

    /// Serves the same port again after a kill.
    fn restart(&mut self) {
        self.state.pending.store(0, Ordering::SeqCst);
        self.state.killed.store(false, Ordering::SeqCst);
        self.listen();
    }

    fn release(&self) {
        self.state.hold.store(false, Ordering::SeqCst);
        self.state.released.notify_waiters();
    }
}

/// Forwards one client connection request by request.
async fn forward(mut client: TcpStream, upstream: SocketAddr, st: Arc<ProxyState>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    loop {
        let Some(request) = read_message(&mut client).await else {
            return;
        };
        let bulk = request.starts_with(b"POST ") && contains(&request, b"/_bulk");
        if bulk {
            loop {
                let released = st.released.notified();
                if !st.hold.load(Ordering::SeqCst) {
                    break;
                }
                released.await;
            }
        }
        let docs = count(&request, b"{\"create\"");
        // Counted before the kill flag is read: a request forwarded after
        // the kill's count is one that saw the flag and was not forwarded.
        st.pending.fetch_add(docs, Ordering::SeqCst);
        if st.killed.load(Ordering::SeqCst) {
            return;
        }
        if server.write_all(&request).await.is_err() {
            return;
        }
        if bulk {
            st.bulks.fetch_add(1, Ordering::SeqCst);
        }
        let Some(answer) = read_message(&mut server).await else {
            return;
        };
        st.answered.fetch_add(docs, Ordering::SeqCst);
        tokio::time::sleep(st.answer_delay).await;
        if client.write_all(&answer).await.is_err() {
            return;
        }
        st.answered.fetch_sub(docs, Ordering::SeqCst);
        st.pending.fetch_sub(docs, Ordering::SeqCst);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// One HTTP/1.1 message with a `content-length` body (or none).
async fn read_message(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
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
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A metric's value, 0 when it is not exposed (a counter never increased).
fn metric(d: &common::daemon::Daemon, sample: &str) -> f64 {
    d.metric(sample).unwrap_or(0.0)
}

#[test]
fn three_nodes_one_dies_mid_request_nothing_is_lost_and_it_is_used_again() {
    let servers = [Osmem::start(), Osmem::start(), Osmem::start()];
    let mut proxy = NodeProxy::start(servers[0].addr(), Duration::from_millis(50));
    let urls = [proxy.url(), servers[1].url.clone(), servers[2].url.clone()];
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .config(
            r#"
            [output]
            type = "elasticsearch"
            index = "dns-nodes"
            flush_bytes = 8192
            flush_interval_ms = 50
            max_in_flight = 3
            "#,
        )
        .arg("--elasticsearch")
        .arg(&urls[0])
        .arg("--elasticsearch")
        .arg(&urls[1])
        .arg("--elasticsearch")
        .arg(&urls[2])
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();

    // A paced, bounded TCP stream for the whole test.
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (sent, stop, addr) = (sent.clone(), stop.clone(), d.tcp());
        std::thread::spawn(move || {
            let mut l = tcp_logger(addr);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 4000 {
                l.send(&query(i, &format!("n{i}.nodes.example.com")));
                i += 1;
                sent.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
            l.finish();
            i
        })
    };

    wait_until("the first node has stored documents", WAIT, || {
        servers[0].count("dns-nodes") >= 30
    });
    let at_risk = proxy.kill_mid_request();
    let stored_before = servers[0].count("dns-nodes");
    // While it is dead, the other two take the load.
    let others_before = servers[1].count("dns-nodes") + servers[2].count("dns-nodes");
    wait_until("the other nodes take the load", WAIT, || {
        servers[1].count("dns-nodes") + servers[2].count("dns-nodes") >= others_before + 100
    });
    assert_eq!(
        metric(
            &d,
            &format!("dnsenrich_output_node_up{{node=\"{}\"}}", urls[0])
        ),
        0.0,
        "the dead node is marked down"
    );
    proxy.restart();
    let bulks_at_restart = proxy.state.bulks.load(Ordering::SeqCst);
    // The lines that can reach it are those sent once a probe found it up
    // (on a loaded machine that can take a while after the restart).
    let up = format!("dnsenrich_output_node_up{{node=\"{}\"}}", urls[0]);
    wait_until("the returned node is probed up", WAIT, || {
        metric(&d, &up) == 1.0
    });
    let restarted_at = sent.load(Ordering::SeqCst);
    wait_until("lines are sent after the restart", WAIT, || {
        sent.load(Ordering::SeqCst) >= restarted_at + 300
    });
    stop.store(true, Ordering::SeqCst);
    let total = sender.join().unwrap();

    let all: Vec<&Osmem> = servers.iter().collect();
    wait_until("every line is stored on some node", WAIT, || {
        names_over(&all, "dns-nodes").len() == total
    });
    let names = names_over(&all, "dns-nodes");
    for i in 0..total {
        assert!(
            names.contains_key(&format!("n{i}.nodes.example.com")),
            "line {i} is missing"
        );
    }
    let stored: usize = names.values().sum();
    let twice = stored - total;
    // At-least-once: only documents of the request cut by the kill can be
    // stored twice (on the dead node, and where they were sent again).
    assert!(
        twice <= at_risk,
        "{twice} documents stored twice, but only {at_risk} were in flight at the kill"
    );
    assert!(
        twice as f64 <= metric(&d, "dnsenrich_bulk_possible_duplicates_total"),
        "the daemon counts what it may have stored twice"
    );
    // The dead node was used again once it was back.
    wait_until("the returned node is used again", WAIT, || {
        servers[0].count("dns-nodes") > stored_before
    });
    assert!(proxy.state.bulks.load(Ordering::SeqCst) > bulks_at_restart);
    assert_eq!(
        metric(
            &d,
            &format!("dnsenrich_output_node_up{{node=\"{}\"}}", urls[0])
        ),
        1.0
    );
    assert!(
        metric(
            &d,
            &format!(
                "dnsenrich_output_node_probes_total{{node=\"{}\",result=\"up\"}}",
                urls[0]
            )
        ) >= 1.0
    );
}

#[test]
fn a_stopped_server_is_found_again_by_probes_not_by_resending_the_bulk() {
    let mut es = Osmem::start();
    let state = tempfile::tempdir().unwrap();
    // The retry backoff is left at its default (up to 30 s): a request that
    // found the server down must not wait that out once the server is back.
    let mut d = DaemonBuilder::new(state.path())
        .config("[output]\ntype = \"elasticsearch\"\nflush_interval_ms = 50\nmax_in_flight = 2\n")
        .arg("--elasticsearch")
        .arg(&es.url)
        .arg("--index")
        .arg("dns-probe")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();
    let mut l = tcp_logger(d.tcp());
    for i in 0..10 {
        l.send(&query(i, &format!("p{i}.probe.example.com")));
    }
    wait_until("the first lines are stored", WAIT, || {
        es.count("dns-probe") == 10
    });

    es.stop();
    for i in 10..40 {
        l.send(&query(i, &format!("p{i}.probe.example.com")));
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = es.url.clone();
    let probes_down =
        format!("dnsenrich_output_node_probes_total{{node=\"{url}\",result=\"down\"}}");
    wait_until("the down server is probed", WAIT, || {
        metric(&d, &probes_down) >= 2.0
    });
    es.restart_same_port();
    // The restarted server is empty: it gets the 30 lines sent while it was
    // down, and nothing else.
    wait_until("the lines of the outage arrive", WAIT, || {
        es.count("dns-probe") >= 30
    });
    l.finish();
    let failed_bulks = metric(
        &d,
        "dnsenrich_bulk_requests_total{result=\"transport_error\"}",
    );
    // Each bulk request that found the server gone failed once and then
    // waited for a probe; the outage was not spent resending bulk bodies.
    assert!(
        (1.0..=2.0).contains(&failed_bulks),
        "{failed_bulks} bulk requests failed during the outage"
    );
    assert!(
        metric(
            &d,
            &format!("dnsenrich_output_node_probes_total{{node=\"{url}\",result=\"up\"}}")
        ) >= 1.0
    );
    assert!(d.sigterm().success(), "{}", d.stderr());
    let s = d.stopped();
    assert_eq!((s.lines, s.stored), (40, 40), "{s:?}");
}

#[test]
fn ready_is_503_while_elasticsearch_hangs_and_200_once_it_answers() {
    let es = Osmem::start();
    // Made beforehand: creating the first index can take osmem seconds on a
    // loaded machine, longer than the short request timeout below.
    es.put("dns-hang", &serde_json::json!({}));
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .config(
            "[output]\ntype = \"elasticsearch\"\nflush_interval_ms = 50\nrequest_timeout_ms = 3000\n\
             install_template = false\n",
        )
        .arg("--elasticsearch")
        .arg(&es.url)
        .arg("--index")
        .arg("dns-hang")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();
    let m = d.metrics.expect("the metrics address is announced");
    let mut l = tcp_logger(d.tcp());
    l.send(&query(0, "h0.hang.example.com"));
    let deadline = Instant::now() + WAIT;
    while es.count("dns-hang") == 0 {
        assert!(
            Instant::now() < deadline,
            "the first line is not stored: {}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(m, "/ready"), (200, "ready\n".into()));

    // Hung: connections are accepted by the kernel, nothing is answered.
    es.pause();
    for i in 1..6 {
        l.send(&query(i, &format!("h{i}.hang.example.com")));
    }
    wait_until("/ready says the output is not answering", WAIT, || {
        http_get(m, "/ready") == (503, "not ready: output unreachable\n".into())
    });
    es.resume();
    wait_until("/ready is 200 again", WAIT, || {
        http_get(m, "/ready").0 == 200
    });
    l.finish();
    wait_until("every line is stored", WAIT, || {
        let docs: Vec<Value> = es.search_all("dns-hang");
        (0..6).all(|i| {
            docs.iter()
                .any(|d| d["dns"]["question"]["name"] == format!("h{i}.hang.example.com"))
        })
    });
}

#[test]
fn ready_is_503_while_the_disk_buffer_is_above_its_high_water_mark() {
    let es = Osmem::start();
    let proxy = NodeProxy::start(es.addr(), Duration::ZERO);
    // Bulk requests are held: the output stays reachable (nothing failed,
    // the timeout is long) while the buffer fills.
    proxy.state.hold.store(true, Ordering::SeqCst);
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .config(
            r#"
            [output]
            type = "elasticsearch"
            index = "dns-full"
            flush_interval_ms = 50
            install_template = false
            request_timeout_ms = 60000
            [buffer]
            type = "disk"
            max_bytes = 1048576
            high_water_percent = 20
            "#,
        )
        .arg("--elasticsearch")
        .arg(proxy.url())
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();
    let m = d.metrics.expect("the metrics address is announced");
    assert_eq!(http_get(m, "/ready"), (200, "ready\n".into()));
    let mut l = tcp_logger(d.tcp());
    // 20 % of 1 MiB is about 210 kB; each event takes well over 600 bytes,
    // and 400 of them stay well below max_bytes (no push-back).
    let padding = ["x".repeat(50), "y".repeat(50)].join(".");
    for i in 0..400 {
        l.send(&query(i, &format!("f{i}.{padding}.full.example.com")));
    }
    l.finish();
    wait_until("/ready says the buffer is nearly full", WAIT, || {
        http_get(m, "/ready") == (503, "not ready: buffer above its high-water mark\n".into())
    });
    assert!(metric(&d, "dnsenrich_buffer_bytes") > 209_715.0);
    proxy.release();
    wait_until("everything is stored", WAIT, || es.count("dns-full") >= 400);
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(m, "/ready");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/ready stayed {status} {body:?} once the buffer drained ({} bytes, {} documents buffered); {:?} {}",
            metric(&d, "dnsenrich_buffer_bytes"),
            metric(&d, "dnsenrich_buffer_documents"),
            std::fs::read_dir(state.path().join("buffer")).unwrap().map(|e| { let e = e.unwrap(); (e.file_name(), e.metadata().unwrap().len()) }).collect::<Vec<_>>(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_document_ids_a_node_dying_after_storing_leaves_no_duplicate() {
    // Two HTTP endpoints of one store, as two coordinating nodes of one
    // cluster: the proxy in front of the server is the node that dies, the
    // server itself the node that stays.
    let es = Osmem::start();
    let mut proxy = NodeProxy::start(es.addr(), Duration::from_millis(50));
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .config(
            r#"
            [output]
            type = "elasticsearch"
            index = "dns-ids"
            flush_bytes = 8192
            flush_interval_ms = 50
            document_ids = true
            "#,
        )
        .arg("--elasticsearch")
        .arg(proxy.url())
        .arg("--elasticsearch")
        .arg(&es.url)
        .start();
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (sent, stop, addr) = (sent.clone(), stop.clone(), d.tcp());
        std::thread::spawn(move || {
            let mut l = tcp_logger(addr);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 3000 {
                l.send(&query(i, &format!("i{i}.ids.example.com")));
                i += 1;
                sent.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
            l.finish();
            i
        })
    };
    // Stored through the dying node, answer never delivered: the daemon
    // sends these documents again, to the other node.
    let stored_unknown = proxy.kill_after_the_server_answered();
    let killed_at = sent.load(Ordering::SeqCst);
    wait_until("lines are sent after the kill", WAIT, || {
        sent.load(Ordering::SeqCst) >= killed_at + 200
    });
    stop.store(true, Ordering::SeqCst);
    let total = sender.join().unwrap();
    wait_until("every line is stored", WAIT, || {
        names_over(&[&es], "dns-ids").len() == total
    });
    let names = names_over(&[&es], "dns-ids");
    assert!(
        names.values().all(|&n| n == 1),
        "stored twice: {:?}",
        names.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
    assert_eq!(es.count("dns-ids"), total as u64);
    assert!(d.sigterm().success(), "{}", d.stderr());
    let s = d.stopped();
    // The resent documents were answered 409: already there.
    assert!(
        s.duplicates >= stored_unknown as u64,
        "{stored_unknown} documents were stored unbeknown to the daemon: {s:?}"
    );
    assert_eq!(s.lines, total as u64, "{s:?}");
}

#[test]
fn with_sniffing_the_nodes_the_cluster_names_take_over_when_the_configured_one_dies() {
    // The only configured address is a proxy (think of a load balancer); the
    // cluster itself names the server's own address in `_nodes/http`.
    let es = Osmem::start();
    let mut proxy = NodeProxy::start(es.addr(), Duration::ZERO);
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .config(
            r#"
            [output]
            type = "elasticsearch"
            index = "dns-sniff"
            flush_interval_ms = 50
            sniff = true
            "#,
        )
        .arg("--elasticsearch")
        .arg(proxy.url())
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();
    let found = format!("dnsenrich_output_node_up{{node=\"{}\"}}", es.url);
    wait_until("the server's own address is found", WAIT, || {
        metric(&d, &found) == 1.0
    });
    let mut l = tcp_logger(d.tcp());
    for i in 0..10 {
        l.send(&query(i, &format!("s{i}.sniff.example.com")));
    }
    wait_until("the first lines are stored", WAIT, || {
        es.count("dns-sniff") >= 10
    });
    // The configured address goes away for good: the sniffed node carries on.
    proxy.kill();
    for i in 10..30 {
        l.send(&query(i, &format!("s{i}.sniff.example.com")));
    }
    l.finish();
    wait_until("every line is stored", WAIT, || {
        let names = names_over(&[&es], "dns-sniff");
        (0..30).all(|i| names.contains_key(&format!("s{i}.sniff.example.com")))
    });
}
