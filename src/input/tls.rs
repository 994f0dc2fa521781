//! The TLS syslog input (RFC 5425): TCP with rustls (ring provider) in front of
//! the same framing, batching and limits as the TCP input (the connection
//! handling in [`stream`](super::stream)); this module adds the configuration,
//! the certificates and the handshake.
//!
//! The certificate chain and private key (PKCS#8, RSA or SEC1, PEM) are loaded
//! once at start; every problem with them is an error naming the file. With
//! `client_ca` set, a client must present a certificate signed by that CA, so
//! only known resolvers may send. A failed or stalled handshake closes that
//! connection only; it is counted (`dnsenrich_tls_handshake_failures_total`)
//! and logged at debug, with a warning at most once a second.

use std::fs::File;
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::stats::{InputStats, LogThrottle};
use super::stream::{bind_all_with, Handshake, StreamLimits, StreamServer};
use super::InputError;
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::{FrameSender, InputKind};

/// The longest a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[input.tls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Addresses to listen on (6514 is the registered port); empty turns the
    /// input off.
    pub listen: Vec<SocketAddr>,
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8, RSA or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM: when set, clients must present a certificate
    /// signed by one of them.
    pub client_ca: Option<PathBuf>,
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
    /// Most frames in one batch.
    pub batch_size: usize,
    /// A partial batch is handed on after this many milliseconds.
    pub batch_timeout_ms: u64,
    /// Set `SO_REUSEPORT` on the listeners (several processes on one address).
    pub reuse_port: bool,
}
// The six fields from `max_frame` repeat `TcpConfig`'s for the reason given
// there: serde cannot combine `flatten` with `deny_unknown_fields`.

impl Default for TlsConfig {
    fn default() -> Self {
        let l = StreamLimits::default();
        TlsConfig {
            listen: Vec::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            client_ca: None,
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

impl TlsConfig {
    /// Loads the certificates and key, then binds every `listen` address.
    pub fn bind(&self) -> Result<TlsInput, InputError> {
        let server_config = self.server_config()?;
        let listeners = bind_all_with("tls", &self.listen, self.reuse_port)?;
        TlsInput::with_server_config(self, server_config, listeners)
    }

    /// The rustls configuration this input serves with.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, InputError> {
        if self.cert.as_os_str().is_empty() {
            return Err(InputError::TlsUnset("cert"));
        }
        if self.key.as_os_str().is_empty() {
            return Err(InputError::TlsUnset("key"));
        }
        let certs = load_certs(&self.cert, "certificate")?;
        let key = load_key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| InputError::TlsInvalid {
                what: "configuration",
                path: self.cert.clone(),
                reason: e.to_string(),
            })?;
        let builder = match &self.client_ca {
            Some(ca_path) => {
                let mut roots = RootCertStore::empty();
                for ca in load_certs(ca_path, "CA certificate")? {
                    roots.add(ca).map_err(|e| InputError::TlsInvalid {
                        what: "CA certificate",
                        path: ca_path.clone(),
                        reason: e.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| InputError::TlsInvalid {
                            what: "CA certificate",
                            path: ca_path.clone(),
                            reason: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| InputError::TlsInvalid {
                what: "certificate or key",
                path: self.key.clone(),
                reason: format!("{e} (certificate {})", self.cert.display()),
            })?;
        Ok(Arc::new(config))
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

/// Bound TLS listeners with their certificates loaded, ready to
/// [`run`](TlsInput::run).
#[derive(Debug)]
pub struct TlsInput {
    server: StreamServer<TlsHandshake>,
}

impl TlsInput {
    /// Accepts on listeners bound elsewhere (systemd socket activation); the
    /// config's `listen` is ignored, its certificates and limits apply.
    pub fn from_std(
        config: &TlsConfig,
        listeners: Vec<StdTcpListener>,
    ) -> Result<Self, InputError> {
        let server_config = config.server_config()?;
        Self::with_server_config(config, server_config, listeners)
    }

    fn with_server_config(
        config: &TlsConfig,
        server_config: Arc<ServerConfig>,
        listeners: Vec<StdTcpListener>,
    ) -> Result<Self, InputError> {
        let server = StreamServer::new(
            InputKind::Tls,
            listeners,
            config.limits(),
            TlsHandshake::new(server_config),
        )?;
        Ok(TlsInput { server })
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

/// The server side of the TLS handshake, run on every accepted connection.
pub(crate) struct TlsHandshake {
    acceptor: TlsAcceptor,
    /// Warnings about failed handshakes, at most one a second.
    log: LogThrottle,
}

impl TlsHandshake {
    /// The handshake with `server_config`'s certificates (the RELP input
    /// uses it too).
    pub(crate) fn new(server_config: Arc<ServerConfig>) -> Self {
        TlsHandshake {
            acceptor: TlsAcceptor::from(server_config),
            log: LogThrottle::per_second(),
        }
    }
}

impl std::fmt::Debug for TlsHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `TlsAcceptor` is not `Debug`, and its keys are not for logs anyway.
        f.write_str("TlsHandshake")
    }
}

impl Handshake for TlsHandshake {
    type Stream = TlsStream<TcpStream>;

    /// `None` (counted and logged) when the handshake fails, times out, or
    /// shutdown comes first.
    async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stats: &InputStats,
        mut shutdown: Shutdown,
    ) -> Option<TlsStream<TcpStream>> {
        let failure = tokio::select! {
            _ = shutdown.recv() => return None,
            done = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)) => match done {
                Ok(Ok(tls)) => return Some(tls),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no handshake within {}s", HANDSHAKE_TIMEOUT.as_secs()),
            },
        };
        stats.record_handshake_failure();
        debug!(%peer, error = %failure, "TLS handshake failed");
        if let Some(more) = self.log.check() {
            warn!(%peer, error = %failure, suppressed = more, "TLS handshake failed");
        }
        None
    }
}

fn open(path: &Path, what: &'static str) -> Result<BufReader<File>, InputError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| InputError::TlsRead {
            what,
            path: path.to_owned(),
            source,
        })
}

/// Every certificate in a PEM file; at least one.
fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, InputError> {
    let mut reader = open(path, what)?;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InputError::TlsInvalid {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(InputError::TlsMissing {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, InputError> {
    let what = "private key";
    let mut reader = open(path, what)?;
    match rustls_pemfile::private_key(&mut reader) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(InputError::TlsMissing {
            what,
            path: path.to_owned(),
        }),
        Err(e) => Err(InputError::TlsInvalid {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_paths_are_refused() {
        let cfg = TlsConfig::default();
        let e = cfg.server_config().unwrap_err().to_string();
        assert!(e.contains("`cert`"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let cfg = TlsConfig {
            cert: "/nonexistent/dnsenrich/cert.pem".into(),
            key: "/nonexistent/dnsenrich/key.pem".into(),
            ..TlsConfig::default()
        };
        let e = cfg.server_config().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/dnsenrich/cert.pem"), "{e}");
        assert!(e.contains("certificate"), "{e}");
    }

    #[test]
    fn a_file_without_pem_blocks_has_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "not a key\n").unwrap();
        let e = load_key(&key).unwrap_err().to_string();
        assert_eq!(e, format!("no private key found in {}", key.display()));
        let e = load_certs(&key, "certificate").unwrap_err().to_string();
        assert_eq!(e, format!("no certificate found in {}", key.display()));
    }
}
