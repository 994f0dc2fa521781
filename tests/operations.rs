//! Operating dnsenrich: the systemd units verify, socket activation hands
//! sockets over (under Debian's `systemd-socket-activate`), the sd_notify
//! protocol, and the metrics/health listener.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn require(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{tool} is needed for this test: apt-get install -y {package}"
    );
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `path` holds a line for which `f` is true.
fn wait_for_line(path: &Path, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Ok(text) = std::fs::read_to_string(path) {
            // Only complete lines: the writer may be half-way through one.
            let complete = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
            if let Some(l) = complete.map(str::trim_end).find(|l| f(l)) {
                return Some(l.to_owned());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

struct Running {
    child: Child,
    stderr: PathBuf,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let out = dir.path().join("out.ndjson");
        cmd.env("STATE_DIRECTORY", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let child = cmd.spawn().unwrap();
        Running {
            child,
            stderr,
            out,
            _dir: dir,
        }
    }

    fn announced(&self) -> String {
        wait_for_line(&self.stderr, Duration::from_secs(15), |l| {
            l.contains("dnsenrich: listening on")
        })
        .unwrap_or_else(|| {
            panic!(
                "no start-up line; stderr:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            )
        })
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < end, "dnsenrich did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn logger(args: &[&str], msg: &str) {
    require("logger", "bsdutils");
    let st = Command::new("logger").args(args).arg(msg).status().unwrap();
    assert!(st.success());
}

#[test]
fn systemd_units_verify() {
    require("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let units = [
        "dnsenrich.service",
        "dnsenrich.socket",
        "dnsenrich-sync.service",
        "dnsenrich-sync.timer",
    ];
    for u in units {
        // verify checks that ExecStart exists: point it at the binary under test.
        let text = std::fs::read_to_string(repo().join("systemd").join(u)).unwrap();
        let text = text.replace("/usr/bin/dnsenrich", env!("CARGO_BIN_EXE_dnsenrich"));
        std::fs::write(dir.path().join(u), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units.iter().map(|u| dir.path().join(u)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn service_is_hardened() {
    require("systemd-analyze", "systemd");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(repo().join("systemd/dnsenrich.service"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .expect("an exposure score");
    let score: f64 = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a number in the exposure line");
    assert!(score <= 2.0, "exposure {score}: {line}");
}

fn socket_activated(datagram: bool) {
    require("systemd-socket-activate", "systemd");
    let port = free_port();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l").arg(format!("127.0.0.1:{port}"));
    if datagram {
        cmd.arg("--datagram");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    cmd.arg(env!("CARGO_BIN_EXE_dnsenrich"))
        .args(["run", "--timezone", "UTC", "--output"])
        .arg(&out);
    let mut d = Running::start(cmd);
    // systemd-socket-activate starts the program on the first connection or
    // datagram, and hands it the socket with that data still waiting.
    wait_for_line(&d.stderr, Duration::from_secs(10), |l| {
        l.starts_with("Listening on")
    })
    .expect("systemd-socket-activate did not start listening");
    let transport = if datagram { "-d" } else { "-T" };
    logger(
        &[
            "-n",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            transport,
            "-t",
            "dnsmasq",
        ],
        "query[A] activated.example from 192.0.2.7",
    );
    let got = wait_for_line(&out, Duration::from_secs(15), |l| {
        l.contains("activated.example")
    });
    assert!(
        got.is_some(),
        "the event did not arrive through the inherited socket; stderr:\n{}",
        std::fs::read_to_string(&d.stderr).unwrap_or_default()
    );
    let line = d.announced();
    let expect = if datagram {
        format!("udp://127.0.0.1:{port}")
    } else {
        format!("tcp://127.0.0.1:{port}")
    };
    assert!(line.contains(&expect), "{line}");
    // The configured default (127.0.0.1:5514) is not bound: the inherited socket replaces it.
    assert!(!line.contains(":5514"), "{line}");
    let v: serde_json::Value = serde_json::from_str(&got.unwrap()).unwrap();
    assert_eq!(v["source"]["ip"], "192.0.2.7");
    assert!(d.sigterm().success());
}

#[test]
fn socket_activation_tcp() {
    socket_activated(false);
}

#[test]
fn socket_activation_udp() {
    socket_activated(true);
}

#[test]
fn sd_notify_ready_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dnsenrich"));
    cmd.args([
        "run",
        "--listen-udp",
        "127.0.0.1:0",
        "--listen-tcp",
        "127.0.0.1:0",
        "--output",
        "/dev/null",
    ])
    .env("NOTIFY_SOCKET", &sock_path)
    .env("WATCHDOG_USEC", "400000");
    let mut d = Running::start(cmd);
    let mut buf = [0u8; 256];
    let mut seen = Vec::new();
    // READY=1, then watchdog pings (every 200 ms for a 400 ms WatchdogSec).
    while seen.iter().filter(|m: &&String| *m == "WATCHDOG=1").count() < 2 {
        let n = sock.recv(&mut buf).expect("a notification");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(seen[0], "READY=1");
    d.sigterm();
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if &buf[..n] == b"STOPPING=1" {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM; got {seen:?}");
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // One write: a request split across writes could be answered (and the
    // connection closed) before its second half is sent.
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn metrics_addr(announce: &str) -> SocketAddr {
    announce
        .split_whitespace()
        .find_map(|w| w.strip_prefix("metrics://"))
        .and_then(|a| a.trim_end_matches(';').parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in {announce}"))
}

fn udp_addr(announce: &str) -> String {
    announce
        .split_whitespace()
        .find_map(|w| w.strip_prefix("udp://"))
        .map(|a| a.trim_end_matches(';').to_owned())
        .unwrap_or_else(|| panic!("no udp address in {announce}"))
}

#[test]
fn metrics_health_and_ready() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dnsenrich"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    cmd.args([
        "run",
        "--listen-udp",
        "127.0.0.1:0",
        "--listen-tcp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--output",
    ])
    .arg(&out);
    let mut d = Running::start(cmd);
    let line = d.announced();
    let m = metrics_addr(&line);
    let udp = udp_addr(&line);
    let (host, port) = udp.rsplit_once(':').unwrap();
    logger(
        &["-n", host, "-P", port, "-d", "-t", "dnsmasq"],
        "query[A] metrics.example from 192.0.2.8",
    );
    logger(
        &["-n", host, "-P", port, "-d", "-t", "dnsmasq"],
        "this line matches no rule",
    );
    assert!(wait_for_line(&out, Duration::from_secs(10), |l| l.contains("no rule")).is_some());
    assert_eq!(http_get(m, "/health").0, 200);
    assert_eq!(http_get(m, "/ready"), (200, "ready\n".into()));
    let (status, body) = http_get(m, "/metrics");
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{body}"))
    };
    assert_eq!(value("dnsenrich_events_received_total{input=\"udp\"}"), 2.0);
    assert_eq!(
        value("dnsenrich_parse_failures_total{reason=\"no_rule_matched\"}"),
        1.0
    );
    assert!(body.contains("dnsenrich_queue_depth"), "{body}");
    assert!(d.sigterm().success());
}

#[test]
fn ready_reports_an_unreachable_elasticsearch() {
    let closed = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dnsenrich"));
    cmd.args([
        "run",
        "--listen-udp",
        "127.0.0.1:0",
        "--listen-tcp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--index",
        "x",
        "--elasticsearch",
    ])
    .arg(format!("http://127.0.0.1:{closed}"));
    let d = Running::start(cmd);
    let m = metrics_addr(&d.announced());
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = http_get(m, "/ready");
        if status == 503 {
            assert!(body.contains("output"), "{body}");
            break;
        }
        assert!(Instant::now() < end, "/ready kept answering {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(m, "/health").0, 200);
    let _ = BufReader::new(std::fs::File::open(&d.stderr).unwrap()).lines();
    let _ = &d.out;
}
