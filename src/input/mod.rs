//! Inputs: where frames come from — syslog over UDP, TCP, TLS and RELP, and tailed
//! log files — and the `[input]` section of the configuration that sets them up.
//!
//! Every input follows the same shape: a config struct (serde, every field
//! defaulted) → `bind()`/`build()`, which acquires the sockets or state files and
//! fails with an actionable [`InputError`] → `run(self, tx, shutdown)`, which
//! reads until shutdown and hands [`FrameBatch`](crate::pipeline::FrameBatch)es
//! to the pipeline. How each input behaves when the pipeline is full follows
//! from what its transport allows:
//!
//! | input | pipeline full                         | unit of a frame          |
//! |-------|---------------------------------------|--------------------------|
//! | udp   | batch dropped and counted             | one datagram             |
//! | tcp   | stops reading the socket (pushback)   | RFC 6587 frame           |
//! | tls   | stops reading the socket (pushback)   | RFC 6587 frame (RFC 5425)|
//! | relp  | stops reading; the sender's window    | RELP `syslog` command;   |
//! |       | fills (answers wait for durability)   | answered once stored     |
//! | file  | stops reading the file; offsets are   | one line                 |
//! |       | committed only for acknowledged lines |                          |
//!
//! An input is off when its address or path list is empty.

pub mod file;
pub mod framing;
mod merge;
pub mod relp;
pub mod stats;
mod stream;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::FrameSender;

pub use file::{FileConfig, FileInput, StartAt};
pub use framing::{FrameDecoder, Framing, DEFAULT_MAX_FRAME};
pub use relp::{RelpConfig, RelpInput};
pub use stats::InputStats;
pub use tcp::{TcpConfig, TcpInput};
pub use tls::{TlsConfig, TlsInput};
pub use udp::{UdpConfig, UdpInput};

/// The port the network inputs listen on by default (the unprivileged
/// counterpart of syslog's 514).
pub const DEFAULT_SYSLOG_PORT: u16 = 5514;

/// A batch is handed on once its frames hold this many bytes, even when it has
/// fewer frames than its input's batch size, so a run of long frames cannot make
/// one connection hold megabytes.
pub(crate) const BATCH_MAX_BYTES: usize = 256 * 1024;

/// Sets `SO_REUSEPORT` on a socket before it is bound: several processes
/// (each setting it, as the same user) can then bind the same address, and
/// the kernel spreads new TCP connections, and UDP datagrams by sender, over
/// them.
pub(crate) fn set_reuse_port(socket: &socket2::Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid descriptor, and an option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The `[input]` section: one sub-section per kind of input.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputsConfig {
    /// Syslog over UDP (`[input.udp]`); on by default, on loopback.
    pub udp: UdpConfig,
    /// Syslog over TCP (`[input.tcp]`); on by default, on loopback.
    pub tcp: TcpConfig,
    /// Syslog over TLS (`[input.tls]`); off until `listen`, `cert` and `key` are set.
    pub tls: TlsConfig,
    /// Syslog over RELP from rsyslog's `omrelp` (`[input.relp]`); off until
    /// `listen` is set.
    pub relp: RelpConfig,
    /// Tailed log files (`[input.file]`); off until `paths` is set.
    pub file: FileConfig,
    /// Which of the UDP and TCP `listen` lists the operator gave (in the
    /// file or with a flag) rather than took from the defaults.
    #[serde(skip)]
    pub explicit_listen: ExplicitListen,
}

/// Which network `listen` lists were set by the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExplicitListen {
    pub udp: bool,
    pub tcp: bool,
}

impl InputsConfig {
    /// Records which `listen` lists a configuration file sets.
    pub fn note_explicit_listen(&mut self, table: &toml::Table) {
        let input = table.get("input").and_then(|v| v.as_table());
        let set = |kind: &str| {
            input
                .and_then(|t| t.get(kind))
                .and_then(|v| v.as_table())
                .is_some_and(|t| t.contains_key("listen"))
        };
        self.explicit_listen = ExplicitListen {
            udp: set("udp"),
            tcp: set("tcp"),
        };
    }

    /// A collector that tails files opens no syslog listener it was not asked
    /// for: the loopback defaults apply only when no file is followed. (A
    /// second instance tailing another file would otherwise fail on the port,
    /// and a tail-only sensor would accept events from any local process.)
    pub fn drop_unasked_listeners(&mut self) {
        if self.file.paths.is_empty() {
            return;
        }
        if !self.explicit_listen.udp {
            self.udp.listen.clear();
        }
        if !self.explicit_listen.tcp {
            self.tcp.listen.clear();
        }
    }

    /// Turns every network listener off (`--no-listen`).
    pub fn no_listeners(&mut self) {
        self.udp.listen.clear();
        self.tcp.listen.clear();
        self.tls.listen.clear();
        self.explicit_listen = ExplicitListen {
            udp: true,
            tcp: true,
        };
    }
}

/// Why an input could not start. Each message names the address or file and
/// what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A listen address could not be bound.
    #[error("cannot listen on {input} {addr}: {source}{}", bind_hint(*addr, source))]
    Bind {
        input: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A socket handed over (socket activation) could not be set up.
    #[error("cannot use the {input} socket handed over: {source}")]
    Adopt {
        input: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key or CA file could not be read.
    #[error("cannot read TLS {what} file {}: {source}", path.display())]
    TlsRead {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no block of the kind needed.
    #[error("no {what} found in {}", path.display())]
    TlsMissing { what: &'static str, path: PathBuf },
    /// A PEM file's content was rejected (bad PEM, key not matching the
    /// certificate, unusable CA).
    #[error("invalid TLS {what} in {}: {reason}", path.display())]
    TlsInvalid {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The TLS input is on but `cert` or `key` is not set.
    #[error("the TLS input needs `{0}` (a PEM file)")]
    TlsUnset(&'static str),
    /// The file input's state directory cannot be created or written.
    #[error("cannot use state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to do about a listen address that could not be bound.
fn bind_hint(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE: let systemd's \
             dnsenrich.socket bind port {} and hand it over, run `setcap \
             cap_net_bind_service=+ep` on the binary, or listen on {} instead)",
            addr.port(),
            DEFAULT_SYSLOG_PORT
        ),
        std::io::ErrorKind::AddrInUse => " (another process listens there: a second dnsenrich, \
             rsyslog or syslog-ng? `ss -lunpt` shows which; a collector that only follows \
             files needs no listener: --no-listen)"
            .into(),
        std::io::ErrorKind::AddrNotAvailable => {
            " (no interface of this machine has that address)".into()
        }
        _ => String::new(),
    }
}

/// Every configured input, bound and ready to run.
pub struct Inputs {
    /// Present when `[input.udp] listen` is not empty.
    pub udp: Option<UdpInput>,
    /// Present when `[input.tcp] listen` is not empty.
    pub tcp: Option<TcpInput>,
    /// Present when `[input.tls] listen` is not empty.
    pub tls: Option<TlsInput>,
    /// Present when `[input.relp] listen` is not empty.
    pub relp: Option<RelpInput>,
    /// Present when `[input.file] paths` is not empty.
    pub file: Option<FileInput>,
}

impl InputsConfig {
    /// Binds every input that is on. Nothing is left listening if one fails.
    pub fn build(&self) -> Result<Inputs, InputError> {
        Ok(Inputs {
            udp: (!self.udp.listen.is_empty())
                .then(|| self.udp.bind())
                .transpose()?,
            tcp: (!self.tcp.listen.is_empty())
                .then(|| self.tcp.bind())
                .transpose()?,
            tls: (!self.tls.listen.is_empty())
                .then(|| self.tls.bind())
                .transpose()?,
            relp: (!self.relp.listen.is_empty())
                .then(|| self.relp.bind())
                .transpose()?,
            file: (!self.file.paths.is_empty())
                .then(|| self.file.build())
                .transpose()?,
        })
    }
}

impl Inputs {
    /// Runs every input until shutdown; returns when all have stopped and
    /// dropped their senders.
    pub async fn run(self, tx: FrameSender, shutdown: Shutdown) {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(udp) = self.udp {
            tasks.spawn(udp.run(tx.clone(), shutdown.clone()));
        }
        if let Some(tcp) = self.tcp {
            tasks.spawn(tcp.run(tx.clone(), shutdown.clone()));
        }
        if let Some(tls) = self.tls {
            tasks.spawn(tls.run(tx.clone(), shutdown.clone()));
        }
        if let Some(relp) = self.relp {
            tasks.spawn(relp.run(tx.clone(), shutdown.clone()));
        }
        if let Some(file) = self.file {
            tasks.spawn(file.run(tx.clone(), shutdown.clone()));
        }
        drop(tx);
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "an input task failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_and_leave_tls_and_files_off() {
        let cfg = InputsConfig::default();
        assert!(cfg.udp.listen.iter().all(|a| a.ip().is_loopback()));
        assert!(cfg.tcp.listen.iter().all(|a| a.ip().is_loopback()));
        assert!(cfg.tls.listen.is_empty());
        assert!(cfg.relp.listen.is_empty());
        assert!(cfg.file.paths.is_empty());
    }

    #[test]
    fn a_section_overrides_only_what_it_names() {
        let cfg: InputsConfig = toml::from_str(
            r#"
            [udp]
            listen = ["0.0.0.0:514", "[::]:514"]
            [file]
            paths = ["/var/log/pihole/pihole.log"]
            start_at = "end"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.udp.listen.len(), 2);
        assert_eq!(cfg.udp.max_frame, DEFAULT_MAX_FRAME);
        assert_eq!(cfg.file.start_at, StartAt::End);
        assert_eq!(cfg.tcp.max_connections, 1024);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = toml::from_str::<InputsConfig>("[tcp]\nmax_conections = 3\n").unwrap_err();
        assert!(e.to_string().contains("max_conections"), "{e}");
    }
}
