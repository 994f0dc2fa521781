//! A small, fast syslog load generator for the end-to-end benchmarks.
//!
//! It renders frames from the deterministic Pi-hole line mix
//! (`benches/support/mix.rs`) into memory once, then sends them:
//!
//! * over TCP (`--tcp ADDR`), octet-counted (RFC 6587) or LF-terminated, by
//!   writing large pre-built slices with `write_all` on one or more connections;
//! * over UDP (`--udp ADDR`), one datagram per line, with `sendmmsg`, either as
//!   fast as possible or paced at `--rate` lines/s in small bursts.
//!
//! Every run is bounded by a line count and a duration. At the end it prints one
//! JSON line with what was sent. `--self-test tcp|udp` sends to an in-process
//! discard server instead, which measures the generator's own ceiling.
//! `--watch-pid PID` also follows the receiving process: after the last write it
//! waits until that process stops using CPU, and reports when it went idle, the
//! CPU it used meanwhile and its peak RSS — the receiver's throughput measured
//! from the outside.
//!
//! ```text
//! cargo run --release --example loadgen -- --tcp 127.0.0.1:5514 --lines 3000000
//! cargo run --release --example loadgen -- --udp 127.0.0.1:5514 --rate 100000 --duration-secs 10
//! cargo run --release --example loadgen -- --self-test tcp --lines 5000000
//! ```

#[path = "../benches/support/mix.rs"]
mod mix;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HELP: &str = "\
loadgen: syslog load generator (Pi-hole line mix) for the dnsenrich benchmarks

USAGE:
  loadgen (--tcp ADDR | --udp ADDR | --self-test tcp|udp) [OPTIONS]

TARGET:
  --tcp ADDR              send over TCP to ADDR (e.g. 127.0.0.1:5514)
  --udp ADDR              send over UDP to ADDR, one datagram per line
  --self-test tcp|udp     send to an in-process discard server (measures the
                          generator's own ceiling on this machine)

OPTIONS:
  --lines N               total lines to send (default 1000000)
  --duration-secs S       stop after S seconds at most (default 60)
  --rate R                pace at R lines/s overall (default: as fast as possible)
  --framing octet|lf      TCP framing: RFC 6587 octet counting or LF (default octet)
  --format syslog|file    syslog: RFC 3164 frames `<30>` + pihole.log line (default);
                          file: the bare pihole.log lines
  --connections K         TCP connections / UDP sockets, one thread each (default 1)
  --mix N                 distinct lines rendered and cycled through
                          (default min(lines, 200000))
  --watch-pid PID         after sending, wait until PID stops using CPU and report
                          its busy time, CPU and peak RSS
  --idle-ms MS            how long PID must stay idle to count as done (default 500)
  --watch-timeout-secs S  give up waiting for PID after S seconds (default 120)
  -h, --help              this text

Prints one JSON line: lines, bytes, seconds, lines_per_sec, ...";

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, PartialEq)]
enum Framing {
    Octet,
    Lf,
}

struct Args {
    proto: Proto,
    addr: Option<SocketAddr>,
    self_test: bool,
    lines: u64,
    duration: Duration,
    rate: Option<f64>,
    framing: Framing,
    file_format: bool,
    connections: usize,
    mix: Option<usize>,
    watch_pid: Option<u32>,
    idle: Duration,
    watch_timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        proto: Proto::Tcp,
        addr: None,
        self_test: false,
        lines: 1_000_000,
        duration: Duration::from_secs(60),
        rate: None,
        framing: Framing::Octet,
        file_format: false,
        connections: 1,
        mix: None,
        watch_pid: None,
        idle: Duration::from_millis(500),
        watch_timeout: Duration::from_secs(120),
    };
    let mut target_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{HELP}");
            std::process::exit(0);
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tcp" | "--udp" => {
                let v = value()?;
                a.proto = if flag == "--tcp" {
                    Proto::Tcp
                } else {
                    Proto::Udp
                };
                a.addr = Some(v.parse().map_err(|e| format!("{flag} {v}: {e}"))?);
                target_given = true;
            }
            "--self-test" => {
                a.proto = match value()?.as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    o => return Err(format!("--self-test: `{o}` is not tcp or udp")),
                };
                a.self_test = true;
                target_given = true;
            }
            "--lines" => a.lines = num(&flag, &value()?)?,
            "--duration-secs" => {
                let s: f64 = num(&flag, &value()?)?;
                if !(s > 0.0 && s <= 3600.0) {
                    return Err("--duration-secs must be in (0, 3600]".into());
                }
                a.duration = Duration::from_secs_f64(s);
            }
            "--rate" => {
                let r: f64 = num(&flag, &value()?)?;
                if r <= 0.0 {
                    return Err("--rate must be positive".into());
                }
                a.rate = Some(r);
            }
            "--framing" => {
                a.framing = match value()?.as_str() {
                    "octet" => Framing::Octet,
                    "lf" => Framing::Lf,
                    o => return Err(format!("--framing: `{o}` is not octet or lf")),
                }
            }
            "--format" => {
                a.file_format = match value()?.as_str() {
                    "syslog" => false,
                    "file" => true,
                    o => return Err(format!("--format: `{o}` is not syslog or file")),
                }
            }
            "--connections" => a.connections = num(&flag, &value()?)?,
            "--mix" => a.mix = Some(num(&flag, &value()?)?),
            "--watch-pid" => a.watch_pid = Some(num(&flag, &value()?)?),
            "--idle-ms" => a.idle = Duration::from_millis(num(&flag, &value()?)?),
            "--watch-timeout-secs" => a.watch_timeout = Duration::from_secs(num(&flag, &value()?)?),
            other => return Err(format!("unknown option `{other}` (see --help)")),
        }
    }
    if !target_given {
        return Err("give --tcp ADDR, --udp ADDR or --self-test tcp|udp (see --help)".into());
    }
    if a.connections == 0 || a.connections > 256 {
        return Err("--connections must be in 1..=256".into());
    }
    if a.mix == Some(0) {
        return Err("--mix must be at least 1".into());
    }
    Ok(a)
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag} {v}: {e}"))
}

/// The pre-rendered frames: one buffer, and where each frame ends in it.
struct Frames {
    buf: Vec<u8>,
    /// `ends[i]` is the end of frame `i`; it starts at `ends[i-1]` (or 0).
    ends: Vec<usize>,
}

impl Frames {
    fn render(lines: &[String], proto: Proto, framing: Framing, file_format: bool) -> Frames {
        let total: usize = lines.iter().map(|l| l.len() + 12).sum();
        let mut buf = Vec::with_capacity(total);
        let mut ends = Vec::with_capacity(lines.len());
        let pri: &[u8] = if file_format { b"" } else { b"<30>" };
        for l in lines {
            let msg_len = pri.len() + l.len();
            if proto == Proto::Tcp && framing == Framing::Octet {
                buf.extend_from_slice(itoa::Buffer::new().format(msg_len).as_bytes());
                buf.push(b' ');
            }
            buf.extend_from_slice(pri);
            buf.extend_from_slice(l.as_bytes());
            if proto == Proto::Tcp && framing == Framing::Lf {
                buf.push(b'\n');
            }
            ends.push(buf.len());
        }
        Frames { buf, ends }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }

    /// The bytes of frames `from..to`.
    fn slice(&self, from: usize, to: usize) -> &[u8] {
        &self.buf[self.start(from)..self.ends[to - 1]]
    }

    fn frame(&self, i: usize) -> &[u8] {
        &self.buf[self.start(i)..self.ends[i]]
    }
}

/// Paces a sender at `rate` lines/s: call `wait(sent)` before each burst.
struct Pacer {
    start: Instant,
    rate: Option<f64>,
}

impl Pacer {
    /// How many lines to send in one go: about a millisecond's worth when paced.
    fn burst(&self, max: usize) -> usize {
        match self.rate {
            Some(r) => ((r / 1000.0).ceil() as usize).clamp(1, max),
            None => max,
        }
    }

    fn wait(&self, sent: u64) {
        if let Some(r) = self.rate {
            let due = self.start + Duration::from_secs_f64(sent as f64 / r);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

/// What every sender thread adds up.
#[derive(Default)]
struct Totals {
    lines: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    hit_deadline: AtomicBool,
}

/// The share of `total` that sender `i` of `k` sends.
fn share(total: u64, i: usize, k: usize) -> u64 {
    total / k as u64 + u64::from((i as u64) < total % k as u64)
}

/// A TCP sender thread: writes `count` frames, in chunks of up to `CHUNK`.
fn tcp_sender(
    stream: TcpStream,
    frames: &Frames,
    first: usize,
    count: u64,
    pacer: &Pacer,
    deadline: Instant,
    totals: &Totals,
) -> std::io::Result<()> {
    const CHUNK: usize = 8192;
    let mut stream = stream;
    let mut pos = first % frames.len();
    let mut sent = 0u64;
    let burst = pacer.burst(CHUNK);
    while sent < count {
        if Instant::now() >= deadline {
            totals.hit_deadline.store(true, Ordering::Relaxed);
            break;
        }
        pacer.wait(sent);
        let n = (burst as u64).min(count - sent) as usize;
        let n = n.min(frames.len() - pos);
        let bytes = frames.slice(pos, pos + n);
        stream.write_all(bytes)?;
        sent += n as u64;
        totals.lines.fetch_add(n as u64, Ordering::Relaxed);
        totals
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        pos = (pos + n) % frames.len();
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// A UDP sender thread: `count` datagrams with `sendmmsg`, up to 64 per call.
fn udp_sender(
    sock: UdpSocket,
    frames: &Frames,
    first: usize,
    count: u64,
    pacer: &Pacer,
    deadline: Instant,
    totals: &Totals,
) {
    use std::os::fd::AsRawFd;
    const VLEN: usize = 64;
    let fd = sock.as_raw_fd();
    let mut pos = first % frames.len();
    let mut sent = 0u64;
    let burst = pacer.burst(VLEN);
    // SAFETY: plain-old-data C structs; zeroed is a valid value for both.
    let mut iov: [libc::iovec; VLEN] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; VLEN] = unsafe { std::mem::zeroed() };
    let mut calls = 0u32;
    while sent < count {
        // Instant::now() is cheap, but not free: check every few calls.
        calls = calls.wrapping_add(1);
        if calls % 16 == 0 && Instant::now() >= deadline {
            totals.hit_deadline.store(true, Ordering::Relaxed);
            break;
        }
        pacer.wait(sent);
        let n = (burst as u64).min(count - sent) as usize;
        let mut bytes = 0usize;
        for k in 0..n {
            let f = frames.frame((pos + k) % frames.len());
            iov[k].iov_base = f.as_ptr() as *mut libc::c_void;
            iov[k].iov_len = f.len();
            hdrs[k].msg_hdr.msg_iov = &mut iov[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
            hdrs[k].msg_len = 0;
        }
        // SAFETY: `hdrs[..n]` point at `iov[..n]`, which point into `frames`,
        // all alive for the duration of the call.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
        let done = if r < 0 {
            // A refused or full send: count the first datagram as lost and
            // move on, so a missing receiver cannot stall the loop.
            totals.errors.fetch_add(1, Ordering::Relaxed);
            1
        } else {
            let r = r as usize;
            for h in &hdrs[..r] {
                bytes += h.msg_len as usize;
            }
            totals.lines.fetch_add(r as u64, Ordering::Relaxed);
            totals.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            r.max(1)
        };
        sent += done as u64;
        pos = (pos + done) % frames.len();
        if Instant::now() >= deadline {
            totals.hit_deadline.store(true, Ordering::Relaxed);
            break;
        }
    }
}

/// The in-process discard server of `--self-test`.
struct Discard {
    addr: SocketAddr,
    received_bytes: Arc<AtomicU64>,
    received_datagrams: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Discard {
    fn start(proto: Proto, connections: usize) -> std::io::Result<Discard> {
        let received_bytes = Arc::new(AtomicU64::new(0));
        let received_datagrams = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let addr;
        match proto {
            Proto::Tcp => {
                let l = TcpListener::bind("127.0.0.1:0")?;
                addr = l.local_addr()?;
                let rb = received_bytes.clone();
                threads.push(std::thread::spawn(move || {
                    let mut readers = Vec::new();
                    for _ in 0..connections {
                        let Ok((mut s, _)) = l.accept() else { break };
                        let rb = rb.clone();
                        readers.push(std::thread::spawn(move || {
                            let mut buf = vec![0u8; 1 << 20];
                            while let Ok(n) = s.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                rb.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        }));
                    }
                    for r in readers {
                        let _ = r.join();
                    }
                }));
            }
            Proto::Udp => {
                let s = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::DGRAM,
                    Some(socket2::Protocol::UDP),
                )?;
                let _ = s.set_recv_buffer_size(8 << 20);
                s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())?;
                let s: UdpSocket = s.into();
                s.set_read_timeout(Some(Duration::from_millis(100)))?;
                addr = s.local_addr()?;
                let (rb, rd, stop) = (
                    received_bytes.clone(),
                    received_datagrams.clone(),
                    stop.clone(),
                );
                threads.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        match s.recv(&mut buf) {
                            Ok(n) => {
                                rb.fetch_add(n as u64, Ordering::Relaxed);
                                rd.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) if stop.load(Ordering::Relaxed) => break,
                            Err(_) => {}
                        }
                    }
                }));
            }
        }
        Ok(Discard {
            addr,
            received_bytes,
            received_datagrams,
            threads,
            stop,
        })
    }

    /// Waits until the readers have everything (TCP) or have gone quiet (UDP).
    fn finish(self, proto: Proto) -> (u64, u64) {
        if proto == Proto::Udp {
            // Let the reader empty the socket buffer, then stop it.
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(Duration::from_millis(150));
                let now = self.received_datagrams.load(Ordering::Relaxed);
                if now == last {
                    break;
                }
                last = now;
            }
            self.stop.store(true, Ordering::Relaxed);
        }
        for t in self.threads {
            let _ = t.join();
        }
        (
            self.received_bytes.load(Ordering::Relaxed),
            self.received_datagrams.load(Ordering::Relaxed),
        )
    }
}

/// CPU time of a process in nanoseconds, from each thread's schedstat
/// (fine-grained, for telling busy from idle), and from /proc/PID/stat
/// (utime+stime, including threads that have exited; clock-tick grained).
fn cpu_schedstat_ns(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0u64;
    for e in dir.flatten() {
        let mut p = e.path();
        p.push("schedstat");
        if let Ok(s) = std::fs::read_to_string(&p) {
            sum += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    Some(sum)
}

fn cpu_stat_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// What `--watch-pid` saw.
struct Watch {
    pid: u32,
    cpu_start: f64,
    sched_start: u64,
}

impl Watch {
    fn begin(pid: u32) -> Result<Watch, String> {
        let cpu_start = cpu_stat_secs(pid).ok_or_else(|| format!("no process {pid}"))?;
        let sched_start = cpu_schedstat_ns(pid).unwrap_or(0);
        Ok(Watch {
            pid,
            cpu_start,
            sched_start,
        })
    }

    /// Polls until the process has used (almost) no CPU for `idle`; returns the
    /// JSON object describing it. `t0` is when sending started.
    fn finish(self, t0: Instant, idle: Duration, timeout: Duration, lines: u64) -> String {
        const POLL: Duration = Duration::from_millis(20);
        // Less than 10% of one core in a poll interval counts as idle.
        const BUSY_NS: u64 = 2_000_000;
        let give_up = Instant::now() + timeout;
        let mut last = cpu_schedstat_ns(self.pid).unwrap_or(0);
        let mut busy_until = Instant::now();
        let mut timed_out = false;
        let mut gone = false;
        loop {
            std::thread::sleep(POLL);
            let Some(now_ns) = cpu_schedstat_ns(self.pid) else {
                gone = true;
                break;
            };
            let now = Instant::now();
            if now_ns.saturating_sub(last) > BUSY_NS {
                busy_until = now;
            }
            last = now_ns;
            if now.duration_since(busy_until) >= idle {
                break;
            }
            if now >= give_up {
                timed_out = true;
                break;
            }
        }
        let busy = busy_until.duration_since(t0).as_secs_f64();
        let cpu = cpu_stat_secs(self.pid).map(|c| c - self.cpu_start);
        let sched = cpu_schedstat_ns(self.pid).map(|s| s.saturating_sub(self.sched_start));
        let hwm = status_kib(self.pid, "VmHWM:");
        let rss = status_kib(self.pid, "VmRSS:");
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
        let per_line = |v: Option<f64>| {
            v.filter(|_| lines > 0).map_or("null".to_string(), |v| {
                format!("{:.4}", v * 1e6 / lines as f64)
            })
        };
        let optu = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        format!(
            "{{\"pid\":{},\"busy_secs\":{:.6},\"lines_per_busy_sec\":{:.1},\"cpu_secs\":{},\
             \"cpu_us_per_line\":{},\"sched_cpu_secs\":{},\"vmhwm_kib\":{},\"vmrss_kib\":{},\
             \"timed_out\":{},\"exited\":{}}}",
            self.pid,
            busy,
            if busy > 0.0 { lines as f64 / busy } else { 0.0 },
            opt(cpu),
            per_line(cpu),
            opt(sched.map(|s| s as f64 / 1e9)),
            optu(hwm),
            optu(rss),
            timed_out,
            gone
        )
    }
}

fn run(a: Args) -> Result<(), String> {
    let mix_n = a
        .mix
        .unwrap_or_else(|| (a.lines as usize).clamp(1, 200_000));
    let t_render = Instant::now();
    let lines = mix::lines(mix_n);
    let frames = Frames::render(&lines, a.proto, a.framing, a.file_format);
    drop(lines);
    let render_secs = t_render.elapsed().as_secs_f64();

    let discard = if a.self_test {
        Some(Discard::start(a.proto, a.connections).map_err(|e| format!("discard server: {e}"))?)
    } else {
        None
    };
    let addr = discard.as_ref().map_or_else(|| a.addr.unwrap(), |d| d.addr);

    // Connect before the clock starts; a refused connection is an error.
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for _ in 0..a.connections {
        match a.proto {
            Proto::Tcp => {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                let _ = s.set_write_timeout(Some(a.duration + Duration::from_secs(5)));
                tcp.push(s);
            }
            Proto::Udp => {
                let bind = if addr.is_ipv6() {
                    "[::1]:0"
                } else {
                    "127.0.0.1:0"
                };
                let s = UdpSocket::bind(bind).map_err(|e| format!("udp bind: {e}"))?;
                s.connect(addr)
                    .map_err(|e| format!("udp connect {addr}: {e}"))?;
                let _ = socket2::SockRef::from(&s).set_send_buffer_size(4 << 20);
                udp.push(s);
            }
        }
    }

    let watch = a.watch_pid.map(Watch::begin).transpose()?;
    let totals = Totals::default();
    let t0 = Instant::now();
    let start_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    let deadline = t0 + a.duration;
    let k = a.connections;
    let pacers: Vec<Pacer> = (0..k)
        .map(|_| Pacer {
            start: t0,
            rate: a.rate.map(|r| r / k as f64),
        })
        .collect();
    let mut io_errors = Vec::new();
    std::thread::scope(|sc| {
        let mut handles = Vec::new();
        for (i, s) in tcp.into_iter().enumerate() {
            let (frames, totals, pacer) = (&frames, &totals, &pacers[i]);
            let first = i * frames.len() / k;
            let count = share(a.lines, i, k);
            handles.push(
                sc.spawn(move || tcp_sender(s, frames, first, count, pacer, deadline, totals)),
            );
        }
        for (i, s) in udp.into_iter().enumerate() {
            let (frames, totals, pacer) = (&frames, &totals, &pacers[i]);
            let first = i * frames.len() / k;
            let count = share(a.lines, i, k);
            handles.push(sc.spawn(move || {
                udp_sender(s, frames, first, count, pacer, deadline, totals);
                Ok(())
            }));
        }
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => io_errors.push(e.to_string()),
                Err(_) => io_errors.push("a sender thread panicked".into()),
            }
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let sent = totals.lines.load(Ordering::Relaxed);
    let bytes = totals.bytes.load(Ordering::Relaxed);

    let self_test = discard.map(|d| {
        let (rb, rd) = d.finish(a.proto);
        let recv_secs = t0.elapsed().as_secs_f64();
        format!(
            ",\"self_test\":{{\"received_bytes\":{rb},\"received_datagrams\":{rd},\"seconds_until_received\":{recv_secs:.6}}}"
        )
    });
    let watch =
        watch.map(|w| format!(",\"watch\":{}", w.finish(t0, a.idle, a.watch_timeout, sent)));

    let mut out = String::new();
    out.push_str(&format!(
        "{{\"proto\":\"{}\",\"addr\":\"{}\",\"framing\":\"{}\",\"format\":\"{}\",\"connections\":{},\
         \"mix\":{},\"render_secs\":{:.3},\"start_unix_ms\":{:.3},\"lines\":{},\"bytes\":{},\"seconds\":{:.6},\
         \"lines_per_sec\":{:.1},\"mib_per_sec\":{:.1},\"rate\":{},\"stopped_by\":\"{}\",\
         \"send_errors\":{},\"io_errors\":{}",
        if a.proto == Proto::Tcp { "tcp" } else { "udp" },
        addr,
        match (a.proto, a.framing) {
            (Proto::Udp, _) => "datagram",
            (_, Framing::Octet) => "octet",
            (_, Framing::Lf) => "lf",
        },
        if a.file_format { "file" } else { "syslog" },
        a.connections,
        frames.len(),
        render_secs,
        start_unix_ms,
        sent,
        bytes,
        secs,
        if secs > 0.0 { sent as f64 / secs } else { 0.0 },
        if secs > 0.0 { bytes as f64 / secs / 1048576.0 } else { 0.0 },
        a.rate.map_or("null".to_string(), |r| format!("{r}")),
        if totals.hit_deadline.load(Ordering::Relaxed) { "duration" } else { "lines" },
        totals.errors.load(Ordering::Relaxed),
        serde_json::to_string(&io_errors).unwrap_or_else(|_| "[]".into()),
    ));
    if let Some(s) = self_test {
        out.push_str(&s);
    }
    if let Some(w) = watch {
        out.push_str(&w);
    }
    out.push('}');
    println!("{out}");
    if io_errors.is_empty() {
        Ok(())
    } else {
        Err(format!("send failed: {}", io_errors.join("; ")))
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
