//! What an operator watches: Prometheus metrics, `/health` and `/ready` on one
//! small HTTP listener, and the systemd protocol (readiness, stopping, watchdog
//! via `sd_notify`; sockets handed over with `LISTEN_FDS`), which is in
//! [`systemd`].
//!
//! Metrics are recorded with the `metrics` crate everywhere in the code; this
//! module installs the Prometheus recorder and serves its rendering. The
//! listener is off unless `[metrics] listen` (or `--metrics ADDR`) is set; the
//! recorder is installed either way, so counters can be summarised at exit.

pub mod systemd;
pub mod zero;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::pipeline::shutdown::Shutdown;

pub use systemd::{inherited_sockets, sd_notify, watchdog_interval, InheritedSockets};

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

/// Whether the parts dnsenrich depends on are usable. Each part reports
/// itself through a flag; `/ready` answers 200 only when all of them are up,
/// and 503 naming each part that is not, with its reason.
#[derive(Debug, Default)]
pub struct Readiness {
    parts: std::sync::Mutex<Vec<Part>>,
}

#[derive(Debug)]
struct Part {
    name: String,
    /// What `/ready` says when the part is down.
    reason: &'static str,
    up: Arc<AtomicBool>,
    /// Whether `/ready` fails while it is down; a part that is not required
    /// is only listed as degraded.
    required: bool,
}

impl Readiness {
    /// Registers a part, initially `up`; returns the flag the part updates.
    /// Down, it is reported as unreachable.
    pub fn register(&self, name: &'static str, up: bool) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(up));
        self.register_flag(name, flag.clone());
        flag
    }

    /// Registers a part whose flag is kept elsewhere (reported as unreachable).
    pub fn register_flag(&self, name: &'static str, flag: Arc<AtomicBool>) {
        self.register_part(name, "unreachable", flag);
    }

    /// Registers a part with its own name and the reason `/ready` gives when
    /// its flag is down.
    pub fn register_part(
        &self,
        name: impl Into<String>,
        reason: &'static str,
        flag: Arc<AtomicBool>,
    ) {
        self.push(name.into(), reason, flag, true);
    }

    /// Registers a part that is listed while down but does not make `/ready`
    /// fail (one node of several).
    pub fn register_degraded(
        &self,
        name: impl Into<String>,
        reason: &'static str,
        flag: Arc<AtomicBool>,
    ) {
        self.push(name.into(), reason, flag, false);
    }

    fn push(&self, name: String, reason: &'static str, up: Arc<AtomicBool>, required: bool) {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Part {
                name,
                reason,
                up,
                required,
            });
    }

    /// The required parts that are down, each as "name reason".
    pub fn down(&self) -> Vec<String> {
        self.list(true)
    }

    /// The parts that are down but not required.
    pub fn degraded(&self) -> Vec<String> {
        self.list(false)
    }

    fn list(&self, required: bool) -> Vec<String> {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|p| p.required == required && !p.up.load(Ordering::Relaxed))
            .map(|p| format!("{} {}", p.name, p.reason))
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
            let mut body = if down.is_empty() {
                "ready\n".to_owned()
            } else {
                format!("not ready: {}\n", down.join(", "))
            };
            for d in readiness.degraded() {
                body.push_str(&format!("degraded: {d}\n"));
            }
            let status = if down.is_empty() {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "text/plain", body)
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
        assert!(ready.contains("elasticsearch unreachable"), "{ready}");
        let full = Arc::new(AtomicBool::new(false));
        r.register_part("buffer", "above its high-water mark", full);
        let ready = respond(b"GET /ready HTTP/1.1\r\n\r\n", &handle, &r);
        assert!(
            ready.ends_with(
                "not ready: elasticsearch unreachable, buffer above its high-water mark\n"
            ),
            "{ready}"
        );
        let node = Arc::new(AtomicBool::new(false));
        let r = Readiness::default();
        r.register_degraded("elasticsearch node http://b:9200", "down", node);
        assert_eq!(
            respond(b"GET /ready HTTP/1.1\r\n\r\n", &handle, &r)
                .split_once("\r\n\r\n")
                .unwrap()
                .1,
            "ready\ndegraded: elasticsearch node http://b:9200 down\n"
        );
        assert!(respond(b"GET /nope HTTP/1.1\r\n\r\n", &handle, &r).starts_with("HTTP/1.1 404"));
        assert!(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &handle, &r).starts_with("HTTP/1.1 405"));
    }
}
