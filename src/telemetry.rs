//! What an operator watches: Prometheus metrics, `/health` and `/ready` on one
//! small HTTP listener, and the systemd protocol (readiness, stopping, watchdog
//! via `sd_notify`; sockets handed over with `LISTEN_FDS`).
//!
//! Metrics are recorded with the `metrics` crate everywhere in the code; this
//! module installs the Prometheus recorder and serves its rendering. The
//! listener is off unless `[metrics] listen` (or `--metrics ADDR`) is set; the
//! recorder is installed either way, so counters can be summarised at exit.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::pipeline::shutdown::Shutdown;

/// `[metrics]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the metrics and health listener (`/metrics`, `/health`,
    /// `/ready`), e.g. `127.0.0.1:9750`. Off when unset.
    pub listen: Option<SocketAddr>,
}

/// Installs the Prometheus recorder for this process (once; later calls get
/// the same handle).
pub fn install_recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests in one process);
            // the handle still renders this one's metrics.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Whether the parts dnsenrich depends on are reachable. Each part reports
/// itself; `/ready` answers 200 only when all of them are up.
#[derive(Debug, Default)]
pub struct Readiness {
    parts: std::sync::Mutex<Vec<(&'static str, Arc<AtomicBool>)>>,
}

impl Readiness {
    /// Registers a part, initially `up`; returns the flag the part updates.
    pub fn register(&self, name: &'static str, up: bool) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(up));
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, flag.clone()));
        flag
    }

    /// Registers a part whose flag is kept elsewhere.
    pub fn register_flag(&self, name: &'static str, flag: Arc<AtomicBool>) {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, flag));
    }

    /// The parts that are down.
    pub fn down(&self) -> Vec<&'static str> {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, f)| !f.load(Ordering::Relaxed))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Serves `/metrics`, `/health` and `/ready` until shutdown.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    readiness: Arc<Readiness>,
    mut shutdown: Shutdown,
) {
    let upkeep = handle.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => upkeep.run_upkeep(),
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else { continue };
                let (handle, readiness) = (handle.clone(), readiness.clone());
                tokio::spawn(async move {
                    // Read until the end of the request head (it may arrive in
                    // pieces), at most 8 KiB and 5 s.
                    let mut buf = Vec::with_capacity(1024);
                    let mut chunk = [0u8; 1024];
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => break,
                        }
                    }
                    if buf.is_empty() {
                        return;
                    }
                    let response = respond(&buf, &handle, &readiness);
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        }
    }
}

/// The HTTP response to one request.
fn respond(request: &[u8], handle: &PrometheusHandle, readiness: &Readiness) -> String {
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", handle.render()),
        ("GET", "/health") => ("200 OK", "text/plain", "alive\n".to_owned()),
        ("GET", "/ready") => {
            let down = readiness.down();
            if down.is_empty() {
                ("200 OK", "text/plain", "ready\n".to_owned())
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("not ready: {} unreachable\n", down.join(", ")),
                )
            }
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /health or /ready\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Tells systemd (when it started us with `NOTIFY_SOCKET`) about our state:
/// `READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=…`. Without the variable it
/// does nothing.
pub fn sd_notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket name.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for our PID), halved
/// as systemd recommends.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sockets handed over by systemd socket activation.
#[derive(Debug, Default)]
pub struct InheritedSockets {
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: Vec<std::net::TcpListener>,
}

/// Takes the sockets passed with `LISTEN_FDS` (if `LISTEN_PID` is us): datagram
/// sockets become UDP inputs, stream sockets TCP listeners. The variables are
/// removed so no child inherits them.
pub fn inherited_sockets() -> InheritedSockets {
    let mut out = InheritedSockets::default();
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let n: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // SAFETY of the environment edits: done at start-up, before threads start.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !pid_ok {
        return out;
    }
    const FIRST: RawFd = 3;
    for fd in FIRST..FIRST + n {
        let mut ty: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `ty`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&mut ty as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            tracing::warn!(fd, "inherited descriptor is not a socket; ignored");
            continue;
        }
        // SAFETY: systemd passed us ownership of descriptors 3..3+LISTEN_FDS.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        match ty {
            libc::SOCK_DGRAM => out.udp.push(std::net::UdpSocket::from(owned)),
            libc::SOCK_STREAM => out.tcp.push(std::net::TcpListener::from(owned)),
            other => tracing::warn!(
                fd,
                socket_type = other,
                "inherited socket of unknown type; ignored"
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_answer() {
        let handle = install_recorder();
        metrics::counter!("dnsenrich_test_total").increment(3);
        let r = Readiness::default();
        let flag = r.register("elasticsearch", true);
        assert!(respond(b"GET /health HTTP/1.1\r\n\r\n", &handle, &r).starts_with("HTTP/1.1 200"));
        assert!(respond(b"GET /ready HTTP/1.1\r\n\r\n", &handle, &r).starts_with("HTTP/1.1 200"));
        flag.store(false, Ordering::Relaxed);
        let ready = respond(b"GET /ready HTTP/1.1\r\n\r\n", &handle, &r);
        assert!(ready.starts_with("HTTP/1.1 503"));
        assert!(ready.contains("elasticsearch"));
        assert!(respond(b"GET /nope HTTP/1.1\r\n\r\n", &handle, &r).starts_with("HTTP/1.1 404"));
        assert!(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &handle, &r).starts_with("HTTP/1.1 405"));
    }

    #[test]
    fn sd_notify_sends_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        sd_notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
