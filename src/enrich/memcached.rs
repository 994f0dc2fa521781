//! The memcached backend: several servers, keys spread over them as the
//! configured distribution does, one multi-key `gets` per server per batch, bounded
//! waits, and reconnection with backoff.
//!
//! Built on the `memcache` crate (text protocol, an r2d2 pool per server),
//! with four things the crate does not do on its own, each for a reason:
//!
//! * **A broken connection is never reused.** The crate's pool manager never
//!   reports a connection broken (`has_broken` is a TODO returning `false`), so
//!   a connection whose read timed out half-way would go back to the pool with
//!   the rest of the old reply unread, and the next `gets` on it would read that
//!   reply: wrong answers, or a "clean miss" that is not one. So on any error
//!   the server's whole client (its pool and every connection in it) is
//!   dropped, and a fresh one is built for the next attempt.
//! * **An unreachable server is skipped, not waited for.** After an error the
//!   server is *down* until a backoff passes (`reconnect_min_ms`, doubling on
//!   each failed attempt up to `reconnect_max_ms`); meanwhile its keys fail at
//!   once, so a dead server costs no batch any time. When the backoff passes,
//!   one thread tries again with a new client while the others keep skipping.
//! * **Nothing blocks at start.** Pools are built unchecked (no connection is
//!   opened until needed), so a server that is down at start-up is a warning,
//!   not an error.
//! * **Bounded waits.** Every socket read and write, and the wait for a pooled
//!   connection, is bounded by `timeout_ms`; servers are asked in parallel, so
//!   a batch waits about one timeout at most, however many servers are slow.
//!
//! Placement (which server holds a key) is part of the contract with whoever
//! wrote the keys: dnsenrich's own rendezvous hashing by default (what
//! `dnsenrich sync` writes with, [`crate::indicator::placement`]), or the
//! writing client's own ([`crate::indicator::distribution`], chosen with
//! `enrich.distribution` and set with [`Memcached::placed`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memcache::{ConnectionManager, MemcacheError, Url};

use crate::indicator::distribution::{DistributionKind, Placement};
pub use crate::indicator::placement::pick_server;

/// Most keys sent in one `gets` line.
pub const MAX_KEYS_PER_REQUEST: usize = 200;
/// memcached's default port.
pub const DEFAULT_PORT: u16 = 11211;

/// Why keys got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// The server is down and in its backoff; nothing was sent.
    Down,
    /// A read, write or connection wait took longer than the timeout.
    Timeout,
    /// Connection refused or reset, a protocol error, a refused key.
    Io,
}

impl FetchError {
    /// The `kind` label of `dnsenrich_memcached_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            FetchError::Down => "down",
            FetchError::Timeout => "timeout",
            FetchError::Io => "io",
        }
    }
}

/// One key's answer: the value, `None` for a clean miss, or why there is none.
pub type KeyAnswer = Result<Option<Vec<u8>>, FetchError>;

/// Backend settings.
#[derive(Debug, Clone)]
pub struct MemcachedSettings {
    pub timeout: Duration,
    pub pool_size: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Normalises a server address: `host`, `host:port`, `[v6]:port`, `v6`
/// (port 11211 when none), with an optional `memcache://` in front.
/// Returns `host:port` (`[v6]:port` for IPv6).
pub fn parse_server(s: &str) -> Result<String, String> {
    let s = s.trim();
    let s = s.strip_prefix("memcache://").unwrap_or(s);
    let s = s.strip_suffix('/').unwrap_or(s);
    if s.is_empty() {
        return Err("empty address".into());
    }
    if s.contains(['/', '?', '@', ' ']) {
        return Err(format!("{s:?} is not HOST[:PORT]"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{p:?} is not a port"))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: missing ']'"))?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{host:?} is not an IPv6 address"))?;
        let p = match after {
            "" => DEFAULT_PORT,
            a => port(
                a.strip_prefix(':')
                    .ok_or_else(|| format!("{s:?}: junk after ']'"))?,
            )?,
        };
        return Ok(format!("[{host}]:{p}"));
    }
    if s.matches(':').count() > 1 {
        let v6: std::net::Ipv6Addr = s
            .parse()
            .map_err(|_| format!("{s:?}: write IPv6 addresses as [ADDR]:PORT"))?;
        return Ok(format!("[{v6}]:{DEFAULT_PORT}"));
    }
    let (host, p) = match s.split_once(':') {
        Some((h, p)) => (h, port(p)?),
        None => (s, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err(format!("{s:?}: no host"));
    }
    Ok(format!("{host}:{p}"))
}

/// One server and its health.
struct Server {
    name: String,
    url: Url,
    health: Mutex<Health>,
}

struct Health {
    /// The client in use; `None` while the server is down.
    client: Option<Arc<memcache::Client>>,
    /// While down: when the next attempt may be made.
    retry_at: Instant,
    /// The wait after the next failed attempt.
    backoff: Duration,
}

/// The memcached servers.
pub struct Memcached {
    servers: Vec<Server>,
    names: Vec<String>,
    /// Which server holds a key; `None`: dnsenrich's rendezvous hashing.
    placement: Option<Placement>,
    settings: MemcachedSettings,
}

impl Memcached {
    /// Prepares clients for `servers` (normalised with [`parse_server`]);
    /// nothing is connected yet. Errors carry the index of the bad address.
    pub fn new(
        servers: &[String],
        settings: MemcachedSettings,
    ) -> Result<Memcached, (usize, String)> {
        let mut out = Vec::with_capacity(servers.len());
        for (i, s) in servers.iter().enumerate() {
            let name = parse_server(s).map_err(|e| (i, e))?;
            let url = Url::parse(&format!(
                "memcache://{name}?protocol=ascii&timeout={}",
                settings.timeout.as_secs_f64()
            ))
            .map_err(|e| (i, e.to_string()))?;
            out.push(Server {
                name,
                url,
                health: Mutex::new(Health {
                    client: None,
                    retry_at: Instant::now(),
                    backoff: settings.backoff_min,
                }),
            });
        }
        let names = out.iter().map(|s| s.name.clone()).collect();
        Ok(Memcached {
            servers: out,
            names,
            placement: None,
            settings,
        })
    }

    /// Places keys with `placement` (built over the same servers, in the
    /// same order) instead of dnsenrich's rendezvous hashing.
    pub fn placed(mut self, placement: Placement) -> Memcached {
        self.placement = Some(placement);
        self
    }

    /// The distribution keys are looked for with.
    pub fn distribution(&self) -> DistributionKind {
        self.placement
            .as_ref()
            .map_or(DistributionKind::Rendezvous, Placement::kind)
    }

    /// The index of the server that holds `key`.
    pub fn server_for(&self, key: &str) -> usize {
        match &self.placement {
            Some(p) => p.server_for(key),
            None => pick_server(key, &self.names),
        }
    }

    /// The normalised server names, in configuration order.
    pub fn server_names(&self) -> &[String] {
        &self.names
    }

    /// Asks every server for its version once; a server that does not answer
    /// is logged as a warning and starts out down (retried after the backoff).
    /// Whether every server answers now (no log line).
    pub fn all_answer(&self) -> bool {
        self.servers.iter().all(|s| s.probe(&self.settings).is_ok())
    }

    pub fn probe(&self) -> Vec<(String, Result<String, String>)> {
        self.servers
            .iter()
            .map(|s| {
                let r = s.probe(&self.settings);
                match &r {
                    Ok(v) => tracing::info!(server = %s.name, version = %v, "memcached reachable"),
                    Err(e) => tracing::warn!(
                        server = %s.name,
                        error = %e,
                        "memcached unreachable at start; events are tagged not enriched until it answers"
                    ),
                }
                (s.name.clone(), r)
            })
            .collect()
    }

    /// Fetches `keys` (all wire-safe). The result is aligned with `keys`:
    /// the value, `None` for a clean miss, or why there is no answer. Each
    /// server gets one request per [`MAX_KEYS_PER_REQUEST`] keys; servers are
    /// asked in parallel. Also returns how many requests were sent.
    pub fn fetch(&self, keys: &[&str]) -> (Vec<KeyAnswer>, u64) {
        let mut out: Vec<KeyAnswer> = vec![Ok(None); keys.len()];
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.servers.len()];
        for (i, k) in keys.iter().enumerate() {
            if !crate::indicator::key::is_wire_safe(k) {
                // Never reached through the enricher, which sends only safe keys.
                out[i] = Err(FetchError::Io);
                continue;
            }
            groups[self.server_for(k)].push(i);
        }
        let busy: Vec<usize> = (0..groups.len())
            .filter(|&s| !groups[s].is_empty())
            .collect();
        type Answer = (usize, (Result<HashMap<String, Vec<u8>>, FetchError>, u64));
        let answers: Vec<Answer> = if busy.len() <= 1 {
            busy.iter()
                .map(|&s| (s, self.fetch_from(s, &groups[s], keys)))
                .collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = busy
                    .iter()
                    .map(|&s| {
                        let g = &groups[s];
                        (s, scope.spawn(move || self.fetch_from(s, g, keys)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(s, h)| (s, h.join().unwrap_or((Err(FetchError::Io), 0))))
                    .collect()
            })
        };
        let mut requests = 0;
        for (s, (answer, sent)) in answers {
            requests += sent;
            match answer {
                Ok(mut found) => {
                    for &i in &groups[s] {
                        out[i] = Ok(found.remove(keys[i]));
                    }
                }
                Err(e) => {
                    for &i in &groups[s] {
                        out[i] = Err(e);
                    }
                }
            }
        }
        (out, requests)
    }

    /// Asks server `server` (an index into [`Memcached::server_names`]) for
    /// `keys`, whichever server they belong on: what checking a placement
    /// needs. Keys that are not wire-safe are left out.
    pub fn fetch_on(
        &self,
        server: usize,
        keys: &[&str],
    ) -> Result<HashMap<String, Vec<u8>>, FetchError> {
        if server >= self.servers.len() {
            return Err(FetchError::Io);
        }
        let idx: Vec<usize> = (0..keys.len())
            .filter(|&i| crate::indicator::key::is_wire_safe(keys[i]))
            .collect();
        self.fetch_from(server, &idx, keys).0
    }

    /// One server's keys; the answers and the number of requests sent.
    fn fetch_from(
        &self,
        server: usize,
        idx: &[usize],
        keys: &[&str],
    ) -> (Result<HashMap<String, Vec<u8>>, FetchError>, u64) {
        let s = &self.servers[server];
        let mut found = HashMap::new();
        let mut sent = 0;
        for chunk in idx.chunks(MAX_KEYS_PER_REQUEST) {
            let ks: Vec<&str> = chunk.iter().map(|&i| keys[i]).collect();
            match s.get_multi(&ks, &self.settings) {
                Ok(m) => {
                    sent += 1;
                    found.extend(m);
                }
                Err(FetchError::Down) => return (Err(FetchError::Down), sent),
                Err(e) => return (Err(e), sent + 1),
            }
        }
        (Ok(found), sent)
    }
}

impl Server {
    fn new_client(&self, settings: &MemcachedSettings) -> Arc<memcache::Client> {
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(settings.timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(ConnectionManager::new(self.url.clone()));
        let mut client = memcache::Client::with_pool(pool).expect("with_pool cannot fail");
        client.hash_function = |_| 0;
        Arc::new(client)
    }

    fn probe(&self, settings: &MemcachedSettings) -> Result<String, String> {
        let client = self.new_client(settings);
        match client.version() {
            Ok(v) => {
                let version = v.into_iter().next().map(|(_, v)| v).unwrap_or_default();
                self.up(&client);
                Ok(version)
            }
            Err(e) => {
                let mut h = self.lock();
                h.client = None;
                h.retry_at = Instant::now() + h.backoff;
                Err(e.to_string())
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client to use now, or `Down` while in backoff.
    fn client(&self, settings: &MemcachedSettings) -> Result<Arc<memcache::Client>, FetchError> {
        let mut h = self.lock();
        if let Some(c) = &h.client {
            return Ok(c.clone());
        }
        let now = Instant::now();
        if now < h.retry_at {
            return Err(FetchError::Down);
        }
        // This thread tries; the others keep skipping until it reports back.
        h.retry_at = now + h.backoff;
        drop(h);
        Ok(self.new_client(settings))
    }

    fn get_multi(
        &self,
        keys: &[&str],
        settings: &MemcachedSettings,
    ) -> Result<HashMap<String, Vec<u8>>, FetchError> {
        let client = self.client(settings)?;
        let start = Instant::now();
        let r = client.gets::<Vec<u8>>(keys);
        metrics::histogram!("dnsenrich_memcached_request_duration_seconds")
            .record(start.elapsed().as_secs_f64());
        match r {
            Ok(found) => {
                self.up(&client);
                Ok(found)
            }
            Err(e) => {
                let kind = classify(&e);
                self.down(&client, &e, settings);
                Err(kind)
            }
        }
    }

    fn up(&self, client: &Arc<memcache::Client>) {
        let mut h = self.lock();
        if h.client.is_none() {
            if h.backoff > Duration::ZERO {
                tracing::info!(server = %self.name, "memcached answering");
            }
            h.client = Some(client.clone());
        }
    }

    fn down(
        &self,
        client: &Arc<memcache::Client>,
        e: &MemcacheError,
        settings: &MemcachedSettings,
    ) {
        let mut h = self.lock();
        let now = Instant::now();
        match &h.client {
            // Someone already reconnected with a newer client: keep it.
            Some(c) if !Arc::ptr_eq(c, client) => {}
            Some(_) => {
                tracing::warn!(
                    server = %self.name,
                    error = %e,
                    retry_in_ms = settings.backoff_min.as_millis() as u64,
                    "memcached request failed; dropping its connections"
                );
                h.client = None;
                h.backoff = settings.backoff_min;
                h.retry_at = now + h.backoff;
            }
            None => {
                // A reconnection attempt failed: wait longer next time.
                h.backoff = (h.backoff * 2).clamp(settings.backoff_min, settings.backoff_max);
                h.retry_at = now + h.backoff;
                tracing::debug!(server = %self.name, error = %e, retry_in_ms = h.backoff.as_millis() as u64, "memcached still unreachable");
            }
        }
    }
}

fn classify(e: &MemcacheError) -> FetchError {
    match e {
        MemcacheError::IOError(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            FetchError::Timeout
        }
        MemcacheError::PoolError(p) if p.to_string().contains("timed out") => FetchError::Timeout,
        _ => FetchError::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_normalised() {
        assert_eq!(parse_server("localhost").unwrap(), "localhost:11211");
        assert_eq!(parse_server("10.0.0.1:11212").unwrap(), "10.0.0.1:11212");
        assert_eq!(parse_server("memcache://m1:1/").unwrap(), "m1:1");
        assert_eq!(parse_server("[::1]:11211").unwrap(), "[::1]:11211");
        assert_eq!(parse_server("[::1]").unwrap(), "[::1]:11211");
        assert_eq!(parse_server("::1").unwrap(), "[::1]:11211");
        for bad in [
            "", "h:0", "h:x", "[::1", "[nope]:1", "a b", "h:1/x", ":11211",
        ] {
            assert!(parse_server(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unreachable_server_fails_fast_then_backs_off() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let m = Memcached::new(
            &[format!("127.0.0.1:{port}")],
            MemcachedSettings {
                timeout: Duration::from_millis(50),
                pool_size: 2,
                backoff_min: Duration::from_millis(200),
                backoff_max: Duration::from_secs(1),
            },
        )
        .unwrap();
        let probed = m.probe();
        assert!(probed[0].1.is_err());
        let start = Instant::now();
        let (r, sent) = m.fetch(&["domain-a.example", "domain-b.example"]);
        assert_eq!(r, vec![Err(FetchError::Down), Err(FetchError::Down)]);
        assert_eq!(sent, 0);
        assert!(
            start.elapsed() < Duration::from_millis(20),
            "skipped while down"
        );
        let (r, _) = m.fetch(&["bad key"]);
        assert_eq!(r, vec![Err(FetchError::Io)]);
    }
}
