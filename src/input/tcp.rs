//! The TCP syslog input (RFC 6587): its `[input.tcp]` configuration and its
//! listeners. Accepting, limits, framing, batching and back-pressure are the
//! connection handling it shares with TLS, in [`stream`](super::stream); TCP
//! adds no handshake ([`Plain`]).

use std::net::{SocketAddr, TcpListener as StdTcpListener};

use serde::{Deserialize, Serialize};

use super::stats::InputStats;
use super::stream::{bind_all_with, Plain, StreamLimits, StreamServer};
use super::{InputError, DEFAULT_SYSLOG_PORT};
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::{FrameSender, InputKind};

/// `[input.tcp]`.
///
/// The last six fields are [`StreamLimits`], spelt out here (and again in
/// `TlsConfig`) because serde cannot combine `#[serde(flatten)]` with
/// `deny_unknown_fields`, and an unknown key must stay an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpConfig {
    /// Addresses to listen on; empty turns the input off. IPv6 sockets are
    /// IPv6-only, so `0.0.0.0:514` and `[::]:514` can both be listed.
    pub listen: Vec<SocketAddr>,
    /// Longer frames are cut to this many bytes and flagged truncated.
    pub max_frame: usize,
    /// Most connections open at once, over all addresses; at the limit a new
    /// connection evicts the one that has been idle longest.
    pub max_connections: usize,
    /// Most connections open at once from one peer IP address; more are
    /// refused, so one sender cannot take every slot.
    pub max_connections_per_source: usize,
    /// A connection that sends nothing for this many seconds is closed; 0 never.
    pub idle_timeout_secs: u64,
    /// Most frames in one batch (gathered over all connections).
    pub batch_size: usize,
    /// A partial batch is handed on after this many milliseconds.
    pub batch_timeout_ms: u64,
    /// Set `SO_REUSEPORT` on the listeners, so several dnsenrich processes
    /// can listen on one address and the kernel spreads the connections.
    pub reuse_port: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        let l = StreamLimits::default();
        TcpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_SYSLOG_PORT))],
            max_frame: l.max_frame,
            max_connections: l.max_connections,
            max_connections_per_source: l.max_connections_per_source,
            idle_timeout_secs: l.idle_timeout_secs,
            batch_size: l.batch_size,
            batch_timeout_ms: l.batch_timeout_ms,
            reuse_port: false,
        }
    }
}

impl TcpConfig {
    /// Binds every `listen` address.
    pub fn bind(&self) -> Result<TcpInput, InputError> {
        let listeners = bind_all_with("tcp", &self.listen, self.reuse_port)?;
        TcpInput::from_std(self, listeners)
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
}

/// Bound TCP listeners, ready to [`run`](TcpInput::run).
#[derive(Debug)]
pub struct TcpInput {
    server: StreamServer<Plain>,
}

impl TcpInput {
    /// Accepts on listeners bound elsewhere (systemd socket activation); the
    /// config's `listen` is ignored, its limits apply.
    pub fn from_std(
        config: &TcpConfig,
        listeners: Vec<StdTcpListener>,
    ) -> Result<Self, InputError> {
        let server = StreamServer::new(InputKind::Tcp, listeners, config.limits(), Plain)?;
        Ok(TcpInput { server })
    }

    /// The addresses actually bound (with the port the kernel chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.server.local_addrs()
    }

    /// This input's counters.
    pub fn stats(&self) -> InputStats {
        self.server.stats.clone()
    }

    /// Accepts and reads until shutdown; returns once every connection has
    /// handed on what it read and closed.
    pub async fn run(self, tx: FrameSender, shutdown: Shutdown) {
        self.server.run(tx, shutdown).await
    }
}
