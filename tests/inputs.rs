//! The inputs against real sockets on loopback and real files: UDP, TCP and TLS
//! syslog receivers with their framing, limits, back-pressure and shutdown, and
//! the file follower with rotation and acknowledged offsets.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use dnsenrich::input::{
    FileConfig, InputStats, StartAt, TcpConfig, TcpInput, TlsConfig, UdpConfig, UdpInput,
};
use dnsenrich::pipeline::shutdown::{self, ShutdownTrigger};
use dnsenrich::pipeline::{FrameBatch, InputKind};

use common::limits::raise_nofile;
use common::pki::Pki;

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(5);

/// One frame as the pipeline would see it.
#[derive(Debug, Clone)]
struct Got {
    text: String,
    truncated: bool,
    peer: Option<SocketAddr>,
    offset: Option<u64>,
    file: Option<String>,
    input: InputKind,
}

fn unpack(b: &FrameBatch) -> Vec<Got> {
    b.frames
        .iter()
        .map(|f| Got {
            text: String::from_utf8_lossy(b.bytes(f)).into_owned(),
            truncated: f.truncated,
            peer: f.peer,
            offset: f.offset,
            file: b.file.as_deref().map(str::to_owned),
            input: b.input,
        })
        .collect()
}

fn texts(got: &[Got]) -> Vec<String> {
    got.iter().map(|g| g.text.clone()).collect()
}

/// A running input with the receiving end of its pipeline.
struct Harness {
    rx: flume::Receiver<FrameBatch>,
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
    stats: InputStats,
    addr: Option<SocketAddr>,
}

impl Harness {
    fn addr(&self) -> SocketAddr {
        self.addr.expect("a network input")
    }

    /// Receives until `n` frames came or `within` passed, acknowledging every
    /// batch.
    async fn collect(&self, n: usize, within: Duration) -> Vec<Got> {
        let mut held = Vec::new();
        let got = self.collect_holding(n, within, &mut held).await;
        for mut b in held {
            if let Some(ack) = b.ack.take() {
                ack.done();
            }
        }
        got
    }

    /// Like `collect`, but keeps the batches (and their acks) in `held`.
    async fn collect_holding(
        &self,
        n: usize,
        within: Duration,
        held: &mut Vec<FrameBatch>,
    ) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv_async()).await {
                Ok(Ok(b)) => {
                    got.extend(unpack(&b));
                    held.push(b);
                }
                _ => break,
            }
        }
        got
    }

    /// Asserts nothing more arrives for a little while.
    async fn assert_quiet(&self, for_: Duration) {
        if let Ok(Ok(b)) = tokio::time::timeout(for_, self.rx.recv_async()).await {
            panic!("unexpected frames: {:?}", texts(&unpack(&b)));
        }
    }

    /// Triggers shutdown and waits for the input to return.
    async fn stop(self) -> flume::Receiver<FrameBatch> {
        self.trigger.trigger();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("input stops within the deadline")
            .expect("input task ends cleanly");
        self.rx
    }
}

/// Polls `cond` every 10 ms until it holds; false if `within` passed first.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

fn loopback4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn loopback6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

// ---------------------------------------------------------------- UDP

fn udp_config(addr: SocketAddr) -> UdpConfig {
    UdpConfig {
        listen: vec![addr],
        recv_buffer_bytes: 1 << 20,
        ..UdpConfig::default()
    }
}

fn start_udp(input: UdpInput, capacity: usize) -> Harness {
    let addr = input.local_addrs()[0];
    let stats = input.stats();
    let (tx, rx) = flume::bounded(capacity);
    let (trigger, sd) = shutdown::channel();
    let task = tokio::spawn(input.run(tx, sd));
    Harness {
        rx,
        trigger,
        task,
        stats,
        addr: Some(addr),
    }
}

async fn udp_roundtrip(listen: SocketAddr, client_bind: &str) {
    let h = start_udp(udp_config(listen).bind().unwrap(), 16);
    let client = UdpSocket::bind(client_bind).await.unwrap();
    client.send_to(b"<13>one\n", h.addr()).await.unwrap();
    client.send_to(b"<13>two", h.addr()).await.unwrap();
    let got = h.collect(2, WAIT).await;
    assert_eq!(texts(&got), ["<13>one", "<13>two"]);
    let me = client.local_addr().unwrap();
    assert!(got.iter().all(|g| g.peer == Some(me) && !g.truncated));
    assert!(got.iter().all(|g| g.input == InputKind::Udp));
    assert_eq!(h.stats.received(), 2);
    h.stop().await;
}

#[tokio::test]
async fn udp_v4_datagrams_arrive_with_their_peer() {
    udp_roundtrip(loopback4(), "127.0.0.1:0").await;
}

#[tokio::test]
async fn udp_v6_datagrams_arrive_with_their_peer() {
    udp_roundtrip(loopback6(), "[::1]:0").await;
}

/// A stream of datagrams, more than one `recvmmsg` group (32) and more than
/// one batch, arrives complete and in order, with and without the pause that
/// gathers trickling datagrams.
async fn udp_stream_arrives_in_order(coalesce_us: u64) {
    let cfg = UdpConfig {
        max_datagrams_per_batch: 100,
        coalesce_us,
        ..udp_config(loopback4())
    };
    let h = start_udp(cfg.bind().unwrap(), 64);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let total = 1000;
    for i in 0..total {
        client
            .send_to(format!("<13>line {i}\n").as_bytes(), h.addr())
            .await
            .unwrap();
        // Paced, so a small receive buffer on the test machine never overflows.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut lines = Vec::new();
    let mut batches = 0;
    while lines.len() < total {
        match tokio::time::timeout_at(deadline, h.rx.recv_async()).await {
            Ok(Ok(b)) => {
                assert!(
                    b.len() <= 100,
                    "a batch holds at most max_datagrams_per_batch"
                );
                batches += 1;
                lines.extend(unpack(&b).into_iter().map(|g| g.text));
            }
            _ => break,
        }
    }
    let want: Vec<String> = (0..total).map(|i| format!("<13>line {i}")).collect();
    assert_eq!(lines, want);
    assert!(batches >= total / 100, "{batches} batches");
    assert_eq!(h.stats.received(), total as u64);
    h.stop().await;
}

#[tokio::test]
async fn udp_stream_arrives_in_order_in_gathered_groups() {
    udp_stream_arrives_in_order(UdpConfig::default().coalesce_us).await;
}

#[tokio::test]
async fn udp_stream_arrives_in_order_read_as_it_comes() {
    udp_stream_arrives_in_order(0).await;
}

#[tokio::test]
async fn udp_oversized_datagram_is_truncated_and_tagged() {
    let cfg = UdpConfig {
        max_frame: 8,
        ..udp_config(loopback4())
    };
    let h = start_udp(cfg.bind().unwrap(), 16);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(b"0123456789abcdef", h.addr()).await.unwrap();
    client.send_to(b"01234567\n", h.addr()).await.unwrap();
    let got = h.collect(2, WAIT).await;
    assert_eq!(texts(&got), ["01234567", "01234567"]);
    assert!(got[0].truncated && !got[1].truncated);
    assert_eq!(h.stats.truncated(), 1);
    h.stop().await;
}

#[tokio::test]
async fn udp_drops_are_counted_when_the_pipeline_is_full() {
    let cfg = UdpConfig {
        batch_timeout_ms: 1,
        ..udp_config(loopback4())
    };
    // Capacity 1 and nobody reads: the first batch fills the channel.
    let h = start_udp(cfg.bind().unwrap(), 1);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut sent = 0u64;
    for i in 0..50 {
        client
            .send_to(format!("<13>msg {i}").as_bytes(), h.addr())
            .await
            .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = h.stats.clone();
    assert!(
        eventually(WAIT, || stats.received() == sent).await,
        "received {} of {sent}",
        stats.received()
    );
    let queued: u64 = h.rx.drain().map(|b| b.len() as u64).sum();
    assert!(stats.dropped() > 0, "nothing was counted as dropped");
    assert_eq!(
        stats.dropped() + queued,
        sent,
        "every datagram is either queued or counted"
    );
    h.stop().await;
}

#[tokio::test]
async fn udp_datagrams_the_kernel_drops_are_counted() {
    // The smallest receive buffer, and nobody reading yet: a burst sent now
    // overflows it in the kernel.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = UdpConfig {
        recv_buffer_bytes: 1,
        ..UdpConfig::default()
    };
    let input = UdpInput::from_std(&cfg, vec![socket]).unwrap();
    let addr = input.local_addrs()[0];
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let padding = "x".repeat(300);
    let mut sent = 0u64;
    for i in 0..200 {
        client
            .send_to(format!("<13>burst {i} {padding}").as_bytes(), addr)
            .unwrap();
        sent += 1;
    }
    let h = start_udp(input, 64);
    let stats = h.stats.clone();
    // The kernel hands its running drop count over with the next datagram it
    // queues: keep sending one now and then until everything is accounted for.
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats.received() + stats.dropped() < sent && tokio::time::Instant::now() < deadline {
        client.send_to(b"<13>after the burst", addr).unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        eventually(WAIT, || stats.received() + stats.dropped() == sent).await,
        "sent {sent}, received {}, counted as dropped {}",
        stats.received(),
        stats.dropped()
    );
    assert!(stats.dropped() > 0, "the burst overflowed nothing?");
    let delivered: u64 = h.rx.drain().map(|b| b.len() as u64).sum();
    assert_eq!(
        delivered,
        stats.received(),
        "what was received was handed on"
    );
    h.stop().await;
}

#[tokio::test]
async fn udp_input_adopts_a_socket_bound_elsewhere() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let input = UdpInput::from_std(&UdpConfig::default(), vec![socket]).unwrap();
    assert_eq!(input.local_addrs(), vec![addr]);
    let h = start_udp(input, 4);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(b"<13>adopted", addr).await.unwrap();
    assert_eq!(texts(&h.collect(1, WAIT).await), ["<13>adopted"]);
    h.stop().await;
}

// ---------------------------------------------------------------- TCP

fn tcp_config() -> TcpConfig {
    TcpConfig {
        listen: vec![loopback4()],
        batch_timeout_ms: 5,
        ..TcpConfig::default()
    }
}

fn start_tcp(cfg: TcpConfig, capacity: usize) -> Harness {
    start_tcp_input(cfg.bind().unwrap(), capacity)
}

fn start_tcp_input(input: TcpInput, capacity: usize) -> Harness {
    let addr = input.local_addrs()[0];
    let stats = input.stats();
    let (tx, rx) = flume::bounded(capacity);
    let (trigger, sd) = shutdown::channel();
    let task = tokio::spawn(input.run(tx, sd));
    Harness {
        rx,
        trigger,
        task,
        stats,
        addr: Some(addr),
    }
}

/// Sends `bytes` on a new connection and closes it.
async fn send_tcp(addr: SocketAddr, bytes: &[u8]) -> SocketAddr {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(bytes).await.unwrap();
    c.shutdown().await.unwrap();
    c.local_addr().unwrap()
}

/// Waits for the server to close `c`: true on EOF or reset within `within`.
async fn closed_by_server(c: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, c.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn tcp_lf_framing() {
    let h = start_tcp(tcp_config(), 16);
    let me = send_tcp(h.addr(), b"<13>one\n<13>two\r\n<13>three").await;
    let got = h.collect(3, WAIT).await;
    assert_eq!(texts(&got), ["<13>one", "<13>two", "<13>three"]);
    assert!(got
        .iter()
        .all(|g| g.peer == Some(me) && g.input == InputKind::Tcp));
    h.stop().await;
}

#[tokio::test]
async fn tcp_nul_framing() {
    let h = start_tcp(tcp_config(), 16);
    send_tcp(h.addr(), b"<13>one\0<13>two\0").await;
    assert_eq!(texts(&h.collect(2, WAIT).await), ["<13>one", "<13>two"]);
    h.stop().await;
}

#[tokio::test]
async fn tcp_octet_counting() {
    let h = start_tcp(tcp_config(), 16);
    send_tcp(h.addr(), b"9 <13>a\nb c11 <13>two\0\n\n").await;
    assert_eq!(
        texts(&h.collect(2, WAIT).await),
        ["<13>a\nb c", "<13>two\0\n\n"]
    );
    assert_eq!(h.stats.framing_errors(), 0);
    h.stop().await;
}

#[tokio::test]
async fn tcp_framing_is_detected_per_connection() {
    let h = start_tcp(tcp_config(), 16);
    let mut octet = TcpStream::connect(h.addr()).await.unwrap();
    let mut lf = TcpStream::connect(h.addr()).await.unwrap();
    // Interleaved: each connection keeps its own framing.
    octet.write_all(b"6 <13>o1").await.unwrap();
    lf.write_all(b"<13>l1\n").await.unwrap();
    octet.write_all(b"8 <13>o2\nx").await.unwrap();
    lf.write_all(b"12 not a len\n").await.unwrap();
    octet.shutdown().await.unwrap();
    lf.shutdown().await.unwrap();
    let mut got = texts(&h.collect(4, WAIT).await);
    got.sort();
    assert_eq!(got, ["12 not a len", "<13>l1", "<13>o1", "<13>o2\nx"]);
    h.stop().await;
}

#[tokio::test]
async fn tcp_no_frame_vanishes_uncounted() {
    let h = start_tcp(tcp_config(), 16);
    // A first line starting with digits and a space is a line; a NUL inside
    // an LF-framed message is part of it; the empty and CR-only lines are
    // skipped and counted.
    send_tcp(h.addr(), b"12 files removed\n<13>x\0y\n\n\r\n<13>z\n").await;
    assert_eq!(
        texts(&h.collect(3, WAIT).await),
        ["12 files removed", "<13>x\0y", "<13>z"]
    );
    let stats = h.stats.clone();
    assert!(
        eventually(WAIT, || stats.skipped() == 2).await,
        "{}",
        stats.skipped()
    );
    assert_eq!(stats.framing_errors(), 0);
    // An empty octet-counted frame is an empty message, delivered.
    send_tcp(h.addr(), b"6 <13>o10 6 <13>o2").await;
    assert_eq!(texts(&h.collect(3, WAIT).await), ["<13>o1", "", "<13>o2"]);
    h.stop().await;
}

#[tokio::test]
async fn tcp_frame_over_the_limit_is_truncated_and_the_next_is_intact() {
    let cfg = TcpConfig {
        max_frame: 16,
        ..tcp_config()
    };
    let h = start_tcp(cfg, 16);
    let long = "x".repeat(100);
    send_tcp(h.addr(), format!("{long}\nafter-lf\n").as_bytes()).await;
    // A syslog frame starts with its `<PRI>`.
    let long_frame = format!("<{}", "x".repeat(99));
    send_tcp(h.addr(), format!("100 {long_frame}9 after-oct").as_bytes()).await;
    let got = h.collect(4, WAIT).await;
    let mut pairs: Vec<(String, bool)> =
        got.iter().map(|g| (g.text.clone(), g.truncated)).collect();
    pairs.sort();
    let cut = "x".repeat(16);
    assert_eq!(
        pairs,
        [
            (format!("<{}", "x".repeat(15)), true),
            ("after-lf".to_owned(), false),
            ("after-oct".to_owned(), false),
            (cut, true),
        ]
    );
    assert_eq!(h.stats.truncated(), 2);
    h.stop().await;
}

#[tokio::test]
async fn tcp_garbage_comes_out_as_frames_and_harms_nothing() {
    let h = start_tcp(tcp_config(), 64);
    // Deterministic pseudo-random bytes, including digits, NULs and LFs.
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    c.write_all(&garbage).await.unwrap();
    c.write_all(b"\n<13>still-framed\n").await.unwrap();
    c.shutdown().await.unwrap();
    let rx_deadline = tokio::time::Instant::now() + WAIT;
    let mut all = Vec::new();
    while !all.iter().any(|g: &Got| g.text == "<13>still-framed") {
        match tokio::time::timeout_at(rx_deadline, h.rx.recv_async()).await {
            Ok(Ok(b)) => all.extend(unpack(&b)),
            _ => panic!("the line after the garbage never came"),
        }
    }
    let bytes: usize = all.iter().map(|g| g.text.len()).sum();
    assert!(all.len() > 10 && bytes > 1000, "garbage came out as frames");
    // The server still serves new connections.
    send_tcp(h.addr(), b"<13>next\n").await;
    assert_eq!(texts(&h.collect(1, WAIT).await), ["<13>next"]);
    h.stop().await;
}

#[tokio::test]
async fn tcp_ipv6() {
    let cfg = TcpConfig {
        listen: vec![loopback6()],
        ..tcp_config()
    };
    let h = start_tcp(cfg, 16);
    let me = send_tcp(h.addr(), b"<13>v6\n").await;
    let got = h.collect(1, WAIT).await;
    assert_eq!(texts(&got), ["<13>v6"]);
    assert_eq!(got[0].peer, Some(me));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_backpressure_blocks_the_sender_then_loses_nothing() {
    let batch_size = 64;
    let cfg = TcpConfig {
        batch_size,
        ..tcp_config()
    };
    // Capacity 1 and nobody reads until the sender is stuck.
    let h = start_tcp(cfg, 1);
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lines_sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (written, stop, lines_sent) = (written.clone(), stop.clone(), lines_sent.clone());
        let addr = h.addr();
        tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut seq = 0u64;
            let mut chunk = Vec::with_capacity(70_000);
            // Bounded: 256 MiB is far beyond what socket buffers can hold.
            while !stop.load(Ordering::SeqCst) && written.load(Ordering::SeqCst) < 256 << 20 {
                chunk.clear();
                for _ in 0..64 {
                    let line = format!("<13>line {seq:08} ");
                    chunk.extend_from_slice(line.as_bytes());
                    chunk.resize(chunk.len() + 1000 - line.len() - 1, b'.');
                    chunk.push(b'\n');
                    seq += 1;
                }
                c.write_all(&chunk).await.unwrap();
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                lines_sent.store(seq, Ordering::SeqCst);
            }
            c.shutdown().await.unwrap();
        })
    };

    // The writer must get stuck: no progress for 700 ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut last, mut since) = (u64::MAX, Instant::now());
    let stalled = loop {
        let now = written.load(Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_millis(700) {
            break true;
        }
        if Instant::now() > deadline || now >= 256 << 20 {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        stalled,
        "the sender was never pushed back ({last} bytes written)"
    );
    // What the server took in is bounded: one batch in the channel, one in
    // the merger's hands waiting to go in, and the reads queued to the merger
    // (32) or held by the connection (1), each at most 16 KiB: 17 frames of
    // 1,000 bytes.
    let bound = 2 * batch_size as u64 + 33 * 17;
    assert!(
        h.stats.received() <= bound,
        "server buffered {} frames while the pipeline was full",
        h.stats.received()
    );

    // Drain: everything the writer wrote arrives, in order.
    stop.store(true, Ordering::SeqCst);
    let mut next = 0u64;
    let drain_deadline = Instant::now() + Duration::from_secs(20);
    while !(writer.is_finished() && next == lines_sent.load(Ordering::SeqCst)) {
        assert!(
            Instant::now() < drain_deadline,
            "lines missing: got {next} of {}",
            lines_sent.load(Ordering::SeqCst)
        );
        let Ok(batch) = tokio::time::timeout(Duration::from_millis(100), h.rx.recv_async()).await
        else {
            continue;
        };
        let b = batch.expect("channel open");
        for f in &b.frames {
            let text = std::str::from_utf8(b.bytes(f)).unwrap();
            let want = format!("<13>line {next:08} ");
            assert!(
                text.starts_with(&want),
                "expected {want:?}, got {:?}",
                &text[..30]
            );
            assert_eq!(text.len(), 999);
            next += 1;
        }
    }
    writer.await.unwrap();
    assert!(next > 1000, "only {next} lines went through");
    h.stop().await;
}

#[tokio::test]
async fn tcp_idle_connections_at_the_limit_make_room_for_a_new_sender() {
    let cfg = TcpConfig {
        max_connections: 3,
        ..tcp_config()
    };
    let h = start_tcp(cfg, 16);
    let stats = h.stats.clone();
    // The input is full of connections that sent once and then went quiet;
    // `oldest` has been quiet longest.
    let mut oldest = TcpStream::connect(h.addr()).await.unwrap();
    oldest.write_all(b"<13>a\n").await.unwrap();
    assert_eq!(h.collect(1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(h.addr()).await.unwrap();
        c.write_all(b"<13>b\n").await.unwrap();
        assert_eq!(h.collect(1, WAIT).await.len(), 1);
        idle.push(c);
    }
    assert!(eventually(WAIT, || stats.connections_active() == 3).await);

    // A new sender's lines still arrive: the longest-idle connection goes.
    let me = send_tcp(h.addr(), b"<13>new\n").await;
    let got = h.collect(1, WAIT).await;
    assert_eq!(texts(&got), ["<13>new"]);
    assert_eq!(got[0].peer, Some(me));
    assert!(
        closed_by_server(&mut oldest, WAIT).await,
        "oldest stays open"
    );
    assert_eq!(stats.connections_evicted(), 1);
    assert_eq!(stats.connections_rejected(), 0);
    // The others are untouched.
    idle[1].write_all(b"<13>still\n").await.unwrap();
    assert_eq!(texts(&h.collect(1, WAIT).await), ["<13>still"]);
    h.stop().await;
}

#[tokio::test]
async fn tcp_one_source_cannot_take_every_slot() {
    let cfg = TcpConfig {
        max_connections: 8,
        max_connections_per_source: 2,
        ..tcp_config()
    };
    let h = start_tcp(cfg, 16);
    let stats = h.stats.clone();
    let _a = TcpStream::connect(h.addr()).await.unwrap();
    let _b = TcpStream::connect(h.addr()).await.unwrap();
    assert!(eventually(WAIT, || stats.connections_active() == 2).await);
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    assert!(
        closed_by_server(&mut c, WAIT).await,
        "third connection stays open"
    );
    assert!(eventually(WAIT, || stats.connections_rejected() == 1).await);
    assert_eq!(stats.connections_evicted(), 0);
    // The same source from another address of its own is another source.
    let d = tokio::net::TcpSocket::new_v4().unwrap();
    d.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut d = d.connect(h.addr()).await.unwrap();
    d.write_all(b"<13>other\n").await.unwrap();
    assert_eq!(texts(&h.collect(1, WAIT).await), ["<13>other"]);
    h.stop().await;
}

#[tokio::test]
async fn tcp_idle_connection_is_closed() {
    let cfg = TcpConfig {
        idle_timeout_secs: 1,
        ..tcp_config()
    };
    let h = start_tcp(cfg, 16);
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut c, Duration::from_secs(4)).await);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    let stats = h.stats.clone();
    assert!(eventually(WAIT, || stats.connections_active() == 0).await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_a_thousand_idle_connections_do_not_block_a_new_one() {
    raise_nofile(4096);
    let cfg = TcpConfig {
        max_connections: 1100,
        max_connections_per_source: 1100,
        ..tcp_config()
    };
    let h = start_tcp(cfg, 16);
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(h.addr()).await.unwrap());
    }
    let stats = h.stats.clone();
    assert!(
        eventually(WAIT, || stats.connections_active() == 1000).await,
        "{} connections active",
        stats.connections_active()
    );
    let me = send_tcp(h.addr(), b"<13>through\n").await;
    let got = h.collect(1, WAIT).await;
    assert_eq!(texts(&got), ["<13>through"]);
    assert_eq!(got[0].peer, Some(me));
    assert_eq!(stats.connections_rejected(), 0);
    drop(idle);
    h.stop().await;
}

#[tokio::test]
async fn tcp_shutdown_flushes_partial_batches_and_closes() {
    let cfg = TcpConfig {
        batch_timeout_ms: 60_000,
        ..tcp_config()
    };
    let h = start_tcp(cfg, 16);
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    c.write_all(b"<13>one\n<13>two\n<13>partial").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        h.rx.is_empty(),
        "the batch timeout is long; nothing is handed on yet"
    );
    // The peer keeps its connection open: shutdown must not wait for it.
    let rx = h.stop().await;
    let got: Vec<Got> = rx.drain().flat_map(|b| unpack(&b)).collect();
    assert_eq!(texts(&got), ["<13>one", "<13>two", "<13>partial"]);
    assert!(closed_by_server(&mut c, WAIT).await);
}

#[tokio::test]
async fn tcp_input_adopts_a_listener_bound_elsewhere() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let input = TcpInput::from_std(&tcp_config(), vec![listener]).unwrap();
    let h = start_tcp_input(input, 16);
    send_tcp(h.addr(), b"<13>adopted\n").await;
    assert_eq!(texts(&h.collect(1, WAIT).await), ["<13>adopted"]);
    h.stop().await;
}

#[tokio::test]
async fn tcp_bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = TcpConfig {
        listen: vec![addr],
        ..tcp_config()
    };
    let e = cfg.bind().unwrap_err().to_string();
    assert!(e.contains(&addr.to_string()), "{e}");
}

// ---------------------------------------------------------------- TLS

/// The CA `ca` with a server certificate for localhost/127.0.0.1, a client
/// certificate from that CA, and a client certificate from another CA.
fn pki() -> Pki {
    let pki = Pki::server();
    pki.ca("other-ca");
    pki.leaf(
        "ca",
        "client",
        "resolver-1",
        "subjectAltName=DNS:resolver-1\nextendedKeyUsage=clientAuth\n",
    );
    pki.leaf(
        "other-ca",
        "stranger",
        "stranger",
        "subjectAltName=DNS:stranger\nextendedKeyUsage=clientAuth\n",
    );
    pki
}

/// What the TLS input tests build from the certificates.
trait TlsFixtures {
    fn tls_config(&self, client_ca: bool) -> TlsConfig;
    fn connector(&self, identity: Option<&str>) -> TlsConnector;
}

impl TlsFixtures for Pki {
    fn tls_config(&self, client_ca: bool) -> TlsConfig {
        TlsConfig {
            listen: vec![loopback4()],
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: client_ca.then(|| self.path("ca.pem")),
            batch_timeout_ms: 5,
            ..TlsConfig::default()
        }
    }

    /// A client trusting our CA, presenting `identity`'s certificate if given.
    fn connector(&self, identity: Option<&str>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        for c in read_certs(&self.path("ca.pem")) {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let key_pem = std::fs::read(self.path(&format!("{name}.key"))).unwrap();
                let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                    .unwrap()
                    .unwrap();
                builder
                    .with_client_auth_cert(read_certs(&self.path(&format!("{name}.pem"))), key)
                    .unwrap()
            }
        };
        TlsConnector::from(Arc::new(config))
    }
}

fn read_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let pem = std::fs::read(path).unwrap();
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn start_tls(cfg: TlsConfig, capacity: usize) -> Harness {
    let input = cfg.bind().unwrap();
    let addr = input.local_addrs()[0];
    let stats = input.stats();
    let (tx, rx) = flume::bounded(capacity);
    let (trigger, sd) = shutdown::channel();
    let task = tokio::spawn(input.run(tx, sd));
    Harness {
        rx,
        trigger,
        task,
        stats,
        addr: Some(addr),
    }
}

/// Connects, sends `bytes` and closes; an error if the handshake or the
/// write fails.
async fn send_tls(connector: &TlsConnector, addr: SocketAddr, bytes: &[u8]) -> std::io::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(bytes).await?;
    tls.flush().await?;
    tls.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn tls_delivers_frames() {
    let pki = pki();
    let h = start_tls(pki.tls_config(false), 16);
    send_tls(&pki.connector(None), h.addr(), b"<13>over tls\n9 <13>octet")
        .await
        .unwrap();
    let got = h.collect(2, WAIT).await;
    assert_eq!(texts(&got), ["<13>over tls", "9 <13>octet"]);
    assert!(got
        .iter()
        .all(|g| g.input == InputKind::Tls && g.peer.is_some()));
    h.stop().await;
}

#[tokio::test]
async fn tls_octet_counting() {
    let pki = pki();
    let h = start_tls(pki.tls_config(false), 16);
    send_tls(&pki.connector(None), h.addr(), b"8 <13>a\nbc5 <13>d")
        .await
        .unwrap();
    assert_eq!(texts(&h.collect(2, WAIT).await), ["<13>a\nbc", "<13>d"]);
    h.stop().await;
}

#[tokio::test]
async fn tls_failed_handshakes_are_counted_and_do_not_stop_the_listener() {
    let pki = pki();
    let h = start_tls(pki.tls_config(false), 16);
    // Plain syslog to the TLS port (the server may reset it: no unwrap).
    if let Ok(mut c) = TcpStream::connect(h.addr()).await {
        let _ = c.write_all(b"<13>plain text\n").await;
    }
    let stats = h.stats.clone();
    assert!(eventually(WAIT, || stats.handshake_failures() == 1).await);
    send_tls(&pki.connector(None), h.addr(), b"<13>fine\n")
        .await
        .unwrap();
    assert_eq!(texts(&h.collect(1, WAIT).await), ["<13>fine"]);
    h.stop().await;
}

#[tokio::test]
async fn tls_client_certificates_are_required_when_a_ca_is_set() {
    let pki = pki();
    let h = start_tls(pki.tls_config(true), 16);
    let stats = h.stats.clone();

    // No certificate: the handshake fails (with TLS 1.3 the client may learn
    // only on its next read or write), and nothing arrives.
    let _ = send_tls(&pki.connector(None), h.addr(), b"<13>anonymous\n").await;
    assert!(eventually(WAIT, || stats.handshake_failures() == 1).await);

    // A certificate from another CA: refused too.
    let _ = send_tls(
        &pki.connector(Some("stranger")),
        h.addr(),
        b"<13>stranger\n",
    )
    .await;
    assert!(eventually(WAIT, || stats.handshake_failures() == 2).await);
    h.assert_quiet(Duration::from_millis(200)).await;

    // A certificate from our CA: accepted.
    send_tls(
        &pki.connector(Some("client")),
        h.addr(),
        b"<13>known resolver\n",
    )
    .await
    .unwrap();
    assert_eq!(texts(&h.collect(1, WAIT).await), ["<13>known resolver"]);
    h.stop().await;
}

#[tokio::test]
async fn tls_bad_certificate_or_key_paths_name_the_file() {
    let pki = pki();
    let missing = pki.path("nope.pem");
    let shown = |p: &Path| p.display().to_string();
    let base = || pki.tls_config(false);
    // (what is wrong, the config, what the error must say)
    let cases = [
        (
            "a missing certificate",
            TlsConfig {
                cert: missing.clone(),
                ..base()
            },
            vec![shown(&missing), "certificate".into()],
        ),
        (
            "a certificate where the key should be",
            TlsConfig {
                key: pki.path("server.pem"),
                ..base()
            },
            vec![format!(
                "no private key found in {}",
                shown(&pki.path("server.pem"))
            )],
        ),
        (
            "a key where the certificate should be",
            TlsConfig {
                cert: pki.path("server.key"),
                ..base()
            },
            vec![format!(
                "no certificate found in {}",
                shown(&pki.path("server.key"))
            )],
        ),
        (
            "a key that does not belong to the certificate",
            TlsConfig {
                key: pki.path("client.key"),
                ..base()
            },
            vec![shown(&pki.path("client.key"))],
        ),
        (
            "a missing client CA",
            TlsConfig {
                client_ca: Some(missing.clone()),
                ..base()
            },
            vec![shown(&missing), "CA".into()],
        ),
    ];
    for (what, cfg, says) in cases {
        let e = cfg.bind().map(|_| ()).unwrap_err().to_string();
        for s in &says {
            assert!(e.contains(s.as_str()), "{what}: {e:?} lacks {s:?}");
        }
    }
}

// ---------------------------------------------------------------- files

fn file_config(state_dir: &Path, path: &Path) -> FileConfig {
    FileConfig {
        paths: vec![path.to_owned()],
        state_dir: state_dir.to_owned(),
        poll_interval_ms: 20,
        ..FileConfig::default()
    }
}

fn start_file(cfg: &FileConfig) -> Harness {
    let input = cfg.build().unwrap();
    let stats = input.stats();
    let (tx, rx) = flume::bounded(16);
    let (trigger, sd) = shutdown::channel();
    let task = tokio::spawn(input.run(tx, sd));
    Harness {
        rx,
        trigger,
        task,
        stats,
        addr: None,
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn lines(range: std::ops::RangeInclusive<u32>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

fn names(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("line {i}")).collect()
}

#[tokio::test]
async fn file_appended_lines_are_delivered_with_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    append(&log, "first\nsecond\n");
    let h = start_file(&file_config(&dir.path().join("state"), &log));
    let got = h.collect(2, WAIT).await;
    assert_eq!(texts(&got), ["first", "second"]);
    // log.offset is where each line starts, as Beats writes it.
    assert_eq!(got[0].offset, Some(0));
    assert_eq!(got[1].offset, Some(6));
    assert_eq!(got[0].file.as_deref(), Some(log.to_str().unwrap()));
    assert_eq!(got[0].input, InputKind::File);
    // A partial line waits for its newline.
    append(&log, "third, in two");
    h.assert_quiet(Duration::from_millis(150)).await;
    append(&log, " writes\r\n");
    let third = h.collect(1, WAIT).await;
    assert_eq!(texts(&third), ["third, in two writes"]);
    assert_eq!(third[0].offset, Some(13), "a line read in two parts");
    h.stop().await;
}

#[tokio::test]
async fn file_long_line_is_cut_and_the_next_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    let cfg = FileConfig {
        max_line: 8,
        ..file_config(&dir.path().join("state"), &log)
    };
    append(&log, &format!("{}\nshort\n", "y".repeat(100)));
    let h = start_file(&cfg);
    let got = h.collect(2, WAIT).await;
    assert_eq!(texts(&got), ["yyyyyyyy", "short"]);
    assert!(got[0].truncated && !got[1].truncated);
    assert_eq!(got[0].offset, Some(0));
    assert_eq!(got[1].offset, Some(101));
    h.stop().await;
}

#[tokio::test]
async fn file_rename_rotation_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    append(&log, &lines(1..=5));
    let h = start_file(&file_config(&dir.path().join("state"), &log));
    assert_eq!(texts(&h.collect(5, WAIT).await), names(1..=5));

    // The writer still holds the old file open across the rename.
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, dir.path().join("pihole.log.1")).unwrap();
    std::io::Write::write_all(&mut writer, lines(6..=7).as_bytes()).unwrap();
    append(&log, &lines(8..=10));
    assert_eq!(texts(&h.collect(5, WAIT).await), names(6..=10));

    append(&log, &lines(11..=11));
    assert_eq!(texts(&h.collect(1, WAIT).await), names(11..=11));
    h.stop().await;
}

#[tokio::test]
async fn file_copytruncate_rotation_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    append(&log, &lines(1..=5));
    let h = start_file(&file_config(&dir.path().join("state"), &log));
    assert_eq!(texts(&h.collect(5, WAIT).await), names(1..=5));

    std::fs::copy(&log, dir.path().join("pihole.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines(6..=7));
    assert_eq!(texts(&h.collect(2, WAIT).await), names(6..=7));
    h.stop().await;
}

#[tokio::test]
async fn file_copytruncate_regrown_past_the_offset_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    append(&log, "a\nb\n");
    let cfg = FileConfig {
        poll_interval_ms: 300,
        ..file_config(&dir.path().join("state"), &log)
    };
    let h = start_file(&cfg);
    assert_eq!(texts(&h.collect(2, WAIT).await), ["a", "b"]);
    // Truncated and written past the old offset before the next poll: only
    // the changed first bytes tell.
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(0).unwrap();
    append(&log, &lines(1..=3));
    assert_eq!(texts(&h.collect(3, WAIT).await), names(1..=3));
    h.stop().await;
}

#[tokio::test]
async fn file_that_appears_later_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later.log");
    let cfg = FileConfig {
        start_at: StartAt::End,
        ..file_config(&dir.path().join("state"), &log)
    };
    let h = start_file(&cfg);
    // Time for the input to look at the file before it changes (generous: a
    // busy CI machine may be slow to run the task).
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, &lines(1..=2));
    assert_eq!(texts(&h.collect(2, WAIT).await), names(1..=2));
    h.stop().await;
}

#[tokio::test]
async fn file_start_at_end_skips_what_is_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    append(&log, &lines(1..=3));
    let cfg = FileConfig {
        start_at: StartAt::End,
        ..file_config(&dir.path().join("state"), &log)
    };
    let h = start_file(&cfg);
    // Time for the input to look at the file before it changes (generous: a
    // busy CI machine may be slow to run the task).
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, &lines(4..=4));
    assert_eq!(texts(&h.collect(1, WAIT).await), names(4..=4));
    h.stop().await;
}

#[tokio::test]
async fn file_restart_resumes_at_the_stored_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    let cfg = file_config(&dir.path().join("state"), &log);
    append(&log, &lines(1..=3));

    let h = start_file(&cfg);
    assert_eq!(texts(&h.collect(3, WAIT).await), names(1..=3));
    h.stop().await;
    let state = std::fs::read_to_string(dir.path().join("state/file-offsets.json")).unwrap();
    assert!(state.contains(log.to_str().unwrap()), "{state}");

    append(&log, &lines(4..=5));
    let h = start_file(&cfg);
    assert_eq!(texts(&h.collect(2, WAIT).await), names(4..=5));
    h.assert_quiet(Duration::from_millis(200)).await;
    h.stop().await;
}

#[tokio::test]
async fn file_unacknowledged_lines_are_read_again_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    let cfg = file_config(&dir.path().join("state"), &log);
    append(&log, &lines(1..=2));

    let h = start_file(&cfg);
    assert_eq!(texts(&h.collect(2, WAIT).await), names(1..=2));
    // Let the first two be committed before more lines come.
    tokio::time::sleep(Duration::from_millis(100)).await;
    append(&log, &lines(3..=4));
    let mut held = Vec::new();
    assert_eq!(
        texts(&h.collect_holding(2, WAIT, &mut held).await),
        names(3..=4)
    );
    h.stop().await;
    // Acknowledged only after the input stopped: too late to count.
    for mut b in held {
        b.ack.take().unwrap().done();
    }

    let h = start_file(&cfg);
    assert_eq!(texts(&h.collect(2, WAIT).await), names(3..=4));
    h.stop().await;

    // Acknowledged this time: a third run has nothing to read.
    let h = start_file(&cfg);
    h.assert_quiet(Duration::from_millis(300)).await;
    h.stop().await;
}

#[tokio::test]
async fn file_dropped_ack_means_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pihole.log");
    let cfg = file_config(&dir.path().join("state"), &log);
    append(&log, &lines(1..=2));

    let h = start_file(&cfg);
    let mut held = Vec::new();
    assert_eq!(
        texts(&h.collect_holding(2, WAIT, &mut held).await),
        names(1..=2)
    );
    drop(held);
    h.stop().await;

    let h = start_file(&cfg);
    assert_eq!(texts(&h.collect(2, WAIT).await), names(1..=2));
    h.stop().await;
}

#[tokio::test]
async fn file_state_dir_that_cannot_be_created_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let cfg = file_config(&blocker.join("state"), &dir.path().join("x.log"));
    let e = cfg.build().unwrap_err().to_string();
    assert!(
        e.contains(&blocker.join("state").display().to_string()),
        "{e}"
    );
}
