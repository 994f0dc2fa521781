//! Real resolvers, real lines: Debian's `bind9`, `unbound` and
//! `pdns-recursor`, each started on a loopback port with its own minimal
//! configuration and query logging on, are asked by `dig` for A, AAAA, CNAME,
//! NXDOMAIN, SERVFAIL, TCP, DNSSEC-flagged and refused queries. Every line
//! they write is fed to the real `dnsenrich parse`: none may be left
//! unmatched, and the question, the client (address and the source port dig
//! was told to use) and the response code of the events must be what dig sent
//! and got back.
//!
//! The SERVFAIL cases forward to a loopback responder that refuses every
//! query (fault injection: an upstream that says no).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is needed for this test: apt-get install -y {package}"
    );
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> u16 {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// A server process, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Server {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Server(
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start server"),
    )
}

/// An upstream that answers every query REFUSED, so the resolver in front of
/// it answers SERVFAIL. Stops when the flag is cleared.
fn refusing_upstream() -> (u16, Arc<AtomicBool>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let run = Arc::new(AtomicBool::new(true));
    let flag = run.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        // Bounded: at most 10,000 answers, and only while the test runs.
        for _ in 0..10_000 {
            if !flag.load(Ordering::Relaxed) {
                break;
            }
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            buf[2] |= 0x80; // QR
            buf[3] = (buf[3] & 0xf0) | 5; // REFUSED
            let _ = sock.send_to(&buf[..n], peer);
        }
    });
    (port, run)
}

/// What dig asked and got.
struct Asked {
    name: &'static str,
    qtype: &'static str,
    client: SocketAddr,
    tcp: bool,
    status: String,
}

/// Runs dig from `client` (address and source port) against `server`.
fn dig(
    server: SocketAddr,
    client: SocketAddr,
    name: &'static str,
    qtype: &'static str,
    extra: &[&str],
) -> Asked {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["-b", &format!("{}#{}", client.ip(), client.port())])
        .args(["+tries=1", "+time=3"])
        .args(extra)
        .args([name, qtype])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_owned();
    Asked {
        name,
        qtype,
        client,
        tcp: extra.contains(&"+tcp"),
        status,
    }
}

/// Waits until `server` answers `name` (bounded).
fn wait_ready(server: SocketAddr, name: &'static str) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new("dig")
            .arg(format!("@{}", server.ip()))
            .args(["-p", &server.port().to_string()])
            .args(["+tries=1", "+time=1", name, "A"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("status: ") {
            return;
        }
        assert!(Instant::now() < until, "{server} did not start answering");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses a log file with the real binary; asserts one event per line and
/// none unmatched.
fn parse(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap();
    let lines = text.lines().count();
    assert!(lines > 0, "{}: nothing logged", log.display());
    let out = Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .args(["parse", "--timezone", "UTC", "--quiet"])
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), lines, "one event per line");
    let unmatched: Vec<String> = events
        .iter()
        .filter(|e| {
            e["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "_dnsenrich_nomatch"))
        })
        .map(|e| e["event"]["original"].to_string())
        .collect();
    assert!(
        unmatched.is_empty(),
        "{}: unmatched lines:\n{}\nwhole log:\n{text}",
        log.display(),
        unmatched.join("\n")
    );
    events
}

/// The events of `action` that are about what `a` asked, from `a`'s port.
fn about<'e>(events: &'e [Value], action: &str, a: &Asked) -> Vec<&'e Value> {
    events
        .iter()
        .filter(|e| e["event"]["action"] == action)
        .filter(|e| e["dns"]["question"]["name"] == a.name)
        .filter(|e| e["dns"]["question"]["type"] == a.qtype)
        .filter(|e| e["client"]["ip"] == a.client.ip().to_string())
        .collect()
}

fn wait_for(log: &Path, needle: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never logged {needle:?}", log.display());
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

fn client(ip: &str) -> SocketAddr {
    addr(ip, free_port())
}

const ZONE: &str = "$TTL 300
@ IN SOA ns.test. admin.test. 1 3600 600 86400 300
@ IN NS ns.test.
ns IN A 127.0.0.1
www IN A 192.0.2.10
www IN AAAA 2001:db8::10
alias IN CNAME www
";

#[test]
fn bind9_query_log_parses_completely() {
    require("named", "bind9");
    require("dig", "dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(d.join("db.test"), ZONE).unwrap();
    let log = d.join("query.log");
    let conf = format!(
        r#"options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  querylog yes;
  dnssec-validation no;
}};
controls {{ }};
logging {{
  channel q {{ file "{log}"; severity info; print-time yes; print-category yes; print-severity yes; }};
  category queries {{ q; }};
  category query-errors {{ q; }};
  category default {{ null; }};
}};
view "internal" {{
  match-clients {{ any; }};
  zone "test" {{ type primary; file "{d}/db.test"; }};
}};
"#,
        d = d.display(),
        log = log.display()
    );
    std::fs::write(d.join("named.conf"), conf).unwrap();
    let stderr = d.join("named.stderr");
    let named = spawn(
        Command::new("named")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("-c")
            .arg(d.join("named.conf"))
            .args(["-f", "-n", "1"]),
        &stderr,
    );
    let server = addr("127.0.0.1", port);
    wait_ready(server, "www.test");
    let asked = vec![
        dig(server, client("127.0.0.1"), "www.test", "A", &[]),
        dig(server, client("127.0.0.1"), "www.test", "AAAA", &["+tcp"]),
        dig(server, client("127.0.0.1"), "alias.test", "A", &["+norec"]),
        dig(
            server,
            client("127.0.0.1"),
            "nx.test",
            "A",
            &["+dnssec", "+cd"],
        ),
        dig(server, client("127.0.0.1"), "example.com", "A", &[]),
    ];
    wait_for(&log, "example.com/IN/A");
    drop(named);
    let events = parse(&log);
    for a in &asked {
        let q: Vec<&Value> = about(&events, "dns-query", a)
            .into_iter()
            .filter(|e| e["client"]["port"] == a.client.port())
            .collect();
        assert_eq!(q.len(), 1, "{}: one query line from dig's port", a.name);
        let q = q[0];
        assert_eq!(q["client"]["port"], a.client.port(), "{}", a.name);
        assert_eq!(q["source"]["ip"], "127.0.0.1");
        assert_eq!(q["destination"]["ip"], "127.0.0.1");
        assert_eq!(q["event"]["dataset"], "bind.query");
        assert_eq!(q["bind"]["view"], "internal");
        assert_eq!(q["log"]["level"], "info");
        let transport = if a.tcp { "tcp" } else { "udp" };
        assert_eq!(q["network"]["transport"], transport, "{}", a.name);
        let flags: Vec<&str> = q["dns"]["header_flags"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(flags.contains(&"RD"), a.name != "alias.test", "{}", a.name);
        assert_eq!(flags.contains(&"DO"), a.name == "nx.test", "{}", a.name);
        assert_eq!(flags.contains(&"CD"), a.name == "nx.test", "{}", a.name);
    }
    // BIND 9.18 logs an rcode only for failed queries.
    let refused = &asked[4];
    assert_eq!(refused.status, "REFUSED");
    let failed = about(&events, "dns-query-failed", refused);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["dns"]["response_code"], refused.status.as_str());
    assert_eq!(failed[0]["client"]["port"], refused.client.port());
    assert_eq!(asked[3].status, "NXDOMAIN");
}

#[test]
fn unbound_query_reply_and_local_action_logs_parse_completely() {
    require("unbound", "unbound");
    require("dig", "dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let (upstream, run) = refusing_upstream();
    let log = d.join("unbound.log");
    let conf = format!(
        r#"server:
  interface: 127.0.0.1@{port}
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  logfile: "{log}"
  use-syslog: no
  verbosity: 1
  log-queries: yes
  log-replies: yes
  log-local-actions: yes
  log-servfail: yes
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  access-control: 127.0.0.9/32 refuse
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "test." nodefault
  local-zone: "local.test." static
  local-data: "www.local.test. A 192.0.2.20"
  local-data: "www.local.test. AAAA 2001:db8::20"
  local-zone: "blocked.test." always_nxdomain
remote-control:
  control-enable: no
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@{upstream}
"#,
        d = d.display(),
        log = log.display()
    );
    std::fs::write(d.join("unbound.conf"), conf).unwrap();
    let unbound = spawn(
        Command::new("unbound")
            .arg("-c")
            .arg(d.join("unbound.conf"))
            .arg("-d"),
        &d.join("unbound.stderr"),
    );
    let server = addr("127.0.0.1", port);
    wait_ready(server, "www.local.test");
    let asked = vec![
        dig(server, client("127.0.0.1"), "www.local.test", "A", &[]),
        dig(
            server,
            client("127.0.0.1"),
            "www.local.test",
            "AAAA",
            &["+tcp"],
        ),
        dig(server, client("127.0.0.1"), "x.blocked.test", "A", &[]),
        dig(
            server,
            client("127.0.0.1"),
            "nope.local.test",
            "A",
            &["+dnssec"],
        ),
        dig(server, client("127.0.0.1"), "example.com", "A", &[]),
    ];
    let refused = dig(server, client("127.0.0.9"), "www.local.test", "A", &[]);
    wait_for(&log, "127.0.0.9");
    drop(unbound);
    run.store(false, Ordering::Relaxed);
    let events = parse(&log);
    assert_eq!(asked[2].status, "NXDOMAIN");
    assert_eq!(asked[4].status, "SERVFAIL");
    for a in &asked {
        assert!(!a.status.is_empty(), "{}: dig got no answer", a.name);
        let q = about(&events, "dns-query", a);
        assert!(!q.is_empty(), "{}: no query event", a.name);
        assert_eq!(q[0]["event"]["dataset"], "unbound.query");
        let r = about(&events, "dns-reply", a);
        assert!(!r.is_empty(), "{}: no reply event", a.name);
        // The readiness probe asked www.local.test A too; the last is dig's.
        let r = r.last().unwrap();
        assert_eq!(r["dns"]["response_code"], a.status.as_str(), "{}", a.name);
        assert!(r["event"]["duration"].is_u64(), "{}", a.name);
        assert!(r["unbound"]["cached"].is_boolean());
        assert!(r["unbound"]["response_size"].is_u64());
    }
    // Local actions name the client's source port.
    for a in &asked[..4] {
        let l = about(&events, "dns-local-zone", a);
        assert!(
            l.iter().any(|e| e["client"]["port"] == a.client.port()),
            "{}: no local-zone event from port {}",
            a.name,
            a.client.port()
        );
    }
    let sf: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"]["action"] == "dns-servfail")
        .filter(|e| e["dns"]["question"]["name"] == "example.com")
        .collect();
    assert_eq!(sf.len(), 1, "log-servfail line");
    assert_eq!(sf[0]["dns"]["response_code"], "SERVFAIL");
    assert!(sf[0]["event"]["reason"]
        .as_str()
        .unwrap()
        .contains("REFUSED"));
    // A refused client: Unbound logs the reply without the question.
    assert_eq!(refused.status, "REFUSED");
    assert!(events.iter().any(|e| e["event"]["action"] == "dns-reply"
        && e["client"]["ip"] == "127.0.0.9"
        && e["dns"]["response_code"] == "REFUSED"));
}

fn pdns_recursor(dir: &Path, port: u16, upstream: u16, structured: bool) -> (Server, PathBuf) {
    std::fs::write(dir.join("db.test"), ZONE).unwrap();
    let conf = format!(
        "local-address=127.0.0.1:{port}
allow-from=127.0.0.0/8
daemon=no
quiet=no
write-pid=no
socket-dir={d}
auth-zones=test={d}/db.test
forward-zones-recurse=.=127.0.0.1:{upstream}
dont-query=
disable-syslog=yes
log-timestamp=no
threads=1
dnssec=off
security-poll-suffix=
structured-logging={s}
",
        d = dir.display(),
        s = if structured { "yes" } else { "no" }
    );
    std::fs::write(dir.join("recursor.conf"), conf).unwrap();
    let log = dir.join("recursor.log");
    let server = spawn(
        Command::new("pdns_recursor")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!("--config-dir={}", dir.display())),
        &log,
    );
    (server, log)
}

#[test]
fn pdns_recursor_structured_query_log_parses_completely() {
    require("pdns_recursor", "pdns-recursor");
    require("dig", "dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (upstream, run) = refusing_upstream();
    let (rec, log) = pdns_recursor(dir.path(), port, upstream, true);
    let server = addr("127.0.0.1", port);
    wait_ready(server, "ns.test");
    let asked = vec![
        dig(server, client("127.0.0.1"), "www.test", "A", &[]),
        dig(server, client("127.0.0.1"), "www.test", "AAAA", &["+tcp"]),
        dig(server, client("127.0.0.1"), "alias.test", "A", &[]),
        dig(server, client("127.0.0.1"), "nx.test", "A", &["+dnssec"]),
        dig(server, client("127.0.0.1"), "example.com", "A", &[]),
    ];
    wait_for(&log, "qname=\"example.com\" qtype=\"A\" rcode=");
    drop(rec);
    run.store(false, Ordering::Relaxed);
    let events = parse(&log);
    assert_eq!(asked[3].status, "NXDOMAIN");
    assert_eq!(asked[4].status, "SERVFAIL");
    for a in &asked {
        let q = about(&events, "dns-query", a);
        assert_eq!(q.len(), 1, "{}: one Question line", a.name);
        assert_eq!(q[0]["client"]["port"], a.client.port(), "{}", a.name);
        assert_eq!(q[0]["event"]["dataset"], "pdns_recursor.query");
        let transport = if a.tcp { "tcp" } else { "udp" };
        assert_eq!(q[0]["network"]["transport"], transport);
        let r = about(&events, "dns-reply", a);
        assert_eq!(r.len(), 1, "{}: one Answer line", a.name);
        assert_eq!(
            r[0]["dns"]["response_code"],
            a.status.as_str(),
            "{}",
            a.name
        );
        assert_eq!(r[0]["client"]["port"], a.client.port());
        assert!(r[0]["event"]["duration"].is_u64());
    }
}

#[test]
fn pdns_recursor_classic_query_log_lines_parse() {
    require("pdns_recursor", "pdns-recursor");
    require("dig", "dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (upstream, run) = refusing_upstream();
    let (rec, log) = pdns_recursor(dir.path(), port, upstream, false);
    let server = addr("127.0.0.1", port);
    wait_ready(server, "ns.test");
    let asked = vec![
        dig(server, client("127.0.0.1"), "www.test", "A", &[]),
        dig(server, client("127.0.0.1"), "www.test", "AAAA", &["+tcp"]),
        dig(server, client("127.0.0.1"), "nx.test", "A", &[]),
    ];
    wait_for(&log, "answer to question 'nx.test|A'");
    drop(rec);
    run.store(false, Ordering::Relaxed);
    // The classic mode's start-up text is free prose; the per-query lines
    // (and the banner) are what the grammar reads.
    let text = std::fs::read_to_string(&log).unwrap();
    let queries: String = text
        .lines()
        .filter(|l| l.contains("question") || l.starts_with("PowerDNS"))
        .map(|l| format!("{l}\n"))
        .collect();
    let qlog = dir.path().join("queries.log");
    std::fs::write(&qlog, queries).unwrap();
    let events = parse(&qlog);
    for a in &asked {
        let q = about(&events, "dns-query", a);
        assert_eq!(q.len(), 1, "{}", a.name);
        assert_eq!(q[0]["client"]["port"], a.client.port());
        let transport = if a.tcp { "tcp" } else { "udp" };
        assert_eq!(q[0]["network"]["transport"], transport);
        let r: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"]["action"] == "dns-reply")
            .filter(|e| e["dns"]["question"]["name"] == a.name)
            .filter(|e| e["dns"]["question"]["type"] == a.qtype)
            .collect();
        assert_eq!(r.len(), 1, "{}", a.name);
        assert_eq!(r[0]["dns"]["response_code"], a.status.as_str());
    }
}
