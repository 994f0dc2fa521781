//! The RELP input (rsyslog's Reliable Event Logging Protocol, as its
//! `omrelp` sends it): its `[input.relp]` configuration and its listeners.
//!
//! Accepting, the connection limits and the optional TLS handshake are the
//! ones the TCP and TLS inputs use ([`stream`](super::stream)); what is spoken
//! on a connection is RELP: [`protocol`] decodes the frames and keeps the
//! session rules, [`connection`] runs a session on a socket.
//!
//! A message is answered `200 OK` only once it is durable: written into the
//! disk buffer (with `[buffer] type = "disk"`), else taken by the output
//! (written to the NDJSON sink, stored by Elasticsearch, or dead-lettered).
//! Until then the sender keeps it, and resends it on its next session if
//! this one ends first — so nothing the sender handed over is lost by a
//! crash, a restart or an output outage here; a message delivered but not
//! yet answered when the session ended arrives twice.

mod connection;
pub mod protocol;

pub use protocol::*;

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::connection::RelpSessions;
use super::stats::InputStats;
use super::stream::{bind_all, Plain, StreamLimits, StreamServer};
use super::tls::{TlsConfig, TlsHandshake};
use super::InputError;
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::{FrameSender, InputKind};

/// How long a session waits at shutdown for its last messages to be stored
/// (and answered) when the daemon's drain deadline is not known.
const ACK_GRACE: Duration = Duration::from_secs(2);

/// `[input.relp]`.
///
/// The limits repeat `TcpConfig`'s for the reason given there: serde cannot
/// combine `flatten` with `deny_unknown_fields`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelpConfig {
    /// Addresses to listen on (20514 is librelp's default port); empty turns
    /// the input off.
    pub listen: Vec<SocketAddr>,
    /// With `cert` and `key` set, sessions are TLS from the first byte (as
    /// `omrelp` with `tls="on"` connects); the server's certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// The server's private key, PEM (PKCS#8, RSA or SEC1).
    pub key: Option<PathBuf>,
    /// CA certificates, PEM: when set, clients must present a certificate
    /// signed by one of them.
    pub client_ca: Option<PathBuf>,
    /// The largest message (RELP DATALEN) taken; a longer one ends the
    /// session, as librelp's server does by default (`oversizeMode` abort).
    pub max_frame: usize,
    /// Most commands a session may have unanswered before it is no longer
    /// read until answers go out (back-pressure). librelp's client keeps at
    /// most its `windowSize` (omrelp's setting, 128 by default) unanswered.
    pub window: usize,
    /// Most connections open at once, over all addresses; at the limit a new
    /// connection evicts the one that has been idle longest.
    pub max_connections: usize,
    /// Most connections open at once from one peer IP address; more are
    /// refused, so one sender cannot take every slot.
    pub max_connections_per_source: usize,
    /// A session that sends nothing and waits for no answer for this many
    /// seconds is closed (with the `serverclose` hint); 0 never.
    pub idle_timeout_secs: u64,
    /// Most messages in one batch.
    pub batch_size: usize,
    /// A partial batch is handed on after this many milliseconds.
    pub batch_timeout_ms: u64,
    /// At shutdown, how long a session waits for the messages it handed on
    /// to be stored and answered; `run` sets it from its shutdown deadline.
    #[serde(skip)]
    pub ack_wait: Option<Duration>,
}

impl Default for RelpConfig {
    fn default() -> Self {
        let l = StreamLimits::default();
        RelpConfig {
            listen: Vec::new(),
            cert: None,
            key: None,
            client_ca: None,
            max_frame: DEFAULT_MAX_DATA,
            window: DEFAULT_MAX_UNACKED,
            max_connections: l.max_connections,
            max_connections_per_source: l.max_connections_per_source,
            idle_timeout_secs: l.idle_timeout_secs,
            batch_size: l.batch_size,
            batch_timeout_ms: l.batch_timeout_ms,
            ack_wait: None,
        }
    }
}

impl RelpConfig {
    /// Loads the certificates (when TLS is on), then binds every `listen`
    /// address.
    pub fn bind(&self) -> Result<RelpInput, InputError> {
        let tls = self.tls()?;
        let listeners = bind_all("relp", &self.listen)?;
        RelpInput::with_tls(self, tls, listeners)
    }

    /// The TLS handshake when `cert` or `key` is set (both must be).
    fn tls(&self) -> Result<Option<TlsHandshake>, InputError> {
        if self.cert.is_none() && self.key.is_none() {
            return Ok(None);
        }
        let tls = TlsConfig {
            cert: self.cert.clone().ok_or(InputError::TlsUnset("cert"))?,
            key: self.key.clone().ok_or(InputError::TlsUnset("key"))?,
            client_ca: self.client_ca.clone(),
            ..TlsConfig::default()
        };
        Ok(Some(TlsHandshake::new(tls.server_config()?)))
    }

    fn limits(&self) -> StreamLimits {
        StreamLimits {
            max_frame: self.max_frame,
            max_connections: self.max_connections,
            max_connections_per_source: self.max_connections_per_source,
            idle_timeout_secs: self.idle_timeout_secs,
            batch_size: self.batch_size,
            batch_timeout_ms: self.batch_timeout_ms,
        }
    }

    fn sessions(&self) -> RelpSessions {
        RelpSessions::new(
            self.max_frame,
            self.window,
            self.ack_wait.unwrap_or(ACK_GRACE),
        )
    }
}

/// Bound RELP listeners, plain or TLS, ready to [`run`](RelpInput::run).
#[derive(Debug)]
pub struct RelpInput {
    server: Server,
}

#[derive(Debug)]
enum Server {
    Plain(StreamServer<Plain>),
    Tls(StreamServer<TlsHandshake>),
}

impl RelpInput {
    /// Accepts on listeners bound elsewhere; the config's `listen` is
    /// ignored, its certificates and limits apply.
    pub fn from_std(
        config: &RelpConfig,
        listeners: Vec<StdTcpListener>,
    ) -> Result<Self, InputError> {
        Self::with_tls(config, config.tls()?, listeners)
    }

    fn with_tls(
        config: &RelpConfig,
        tls: Option<TlsHandshake>,
        listeners: Vec<StdTcpListener>,
    ) -> Result<Self, InputError> {
        let (kind, limits) = (InputKind::Relp, config.limits());
        let server = match tls {
            None => Server::Plain(
                StreamServer::new(kind, listeners, limits, Plain)?.speaking(config.sessions()),
            ),
            Some(tls) => Server::Tls(
                StreamServer::new(kind, listeners, limits, tls)?.speaking(config.sessions()),
            ),
        };
        Ok(RelpInput { server })
    }

    /// Whether sessions are TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.server, Server::Tls(_))
    }

    /// The addresses actually bound (with the port the kernel chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        match &self.server {
            Server::Plain(s) => s.local_addrs(),
            Server::Tls(s) => s.local_addrs(),
        }
    }

    /// This input's counters.
    pub fn stats(&self) -> InputStats {
        match &self.server {
            Server::Plain(s) => s.stats.clone(),
            Server::Tls(s) => s.stats.clone(),
        }
    }

    /// Accepts and serves sessions until shutdown; returns once every session
    /// has handed on what it read, waited (bounded) for its answers and closed.
    pub async fn run(self, tx: FrameSender, shutdown: Shutdown) {
        match self.server {
            Server::Plain(s) => s.run(tx, shutdown).await,
            Server::Tls(s) => s.run(tx, shutdown).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_with_librelp_limits() {
        let cfg = RelpConfig::default();
        assert!(cfg.listen.is_empty());
        assert_eq!(cfg.max_frame, 128 * 1024);
        assert!(cfg.window >= LIBRELP_WINDOW);
    }

    #[test]
    fn a_key_without_a_certificate_is_refused() {
        let cfg = RelpConfig {
            key: Some("/etc/dnsenrich/key.pem".into()),
            ..RelpConfig::default()
        };
        let e = cfg.bind().unwrap_err().to_string();
        assert!(e.contains("`cert`"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = toml::from_str::<RelpConfig>("windw = 3\n").unwrap_err();
        assert!(e.to_string().contains("windw"), "{e}");
    }
}
