//! The UDP syslog input (RFC 5426): one datagram is one frame.
//!
//! One task per socket waits for the socket to become readable, then takes
//! every datagram already queued (up to a batch) without waiting again, so a
//! busy socket costs one wake-up per batch rather than per message. A partial
//! batch is handed on after a few milliseconds so a lone message is not held.
//!
//! UDP cannot push back on its senders, so when the pipeline is full the batch
//! is dropped — counted as `dnsenrich_events_dropped_total{input="udp",
//! reason="pipeline_full"}` and logged at most once a second — rather than
//! queued without bound. A large socket receive buffer (`recv_buffer_bytes`)
//! absorbs bursts before it comes to that.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::framing::{datagram_frame, DEFAULT_MAX_FRAME};
use super::stats::{InputStats, LogThrottle};
use super::{InputError, DEFAULT_SYSLOG_PORT};
use crate::pipeline::{FrameBatch, FrameSender, InputKind};
use crate::shutdown::Shutdown;

/// Large enough for any UDP datagram (IPv4 payloads stop at 65,507 bytes), so
/// the kernel never cuts one before we can tell it was too long.
const RECV_SCRATCH: usize = 64 * 1024;

/// `[input.udp]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpConfig {
    /// Addresses to receive on; empty turns the input off. IPv6 sockets are
    /// IPv6-only, so `0.0.0.0:514` and `[::]:514` can both be listed.
    pub listen: Vec<SocketAddr>,
    /// Socket receive buffer (SO_RCVBUF) requested per socket; the kernel caps
    /// it at `net.core.rmem_max`, and the value granted is logged. 0 leaves the
    /// system default.
    pub recv_buffer_bytes: usize,
    /// Most datagrams in one batch.
    pub max_datagrams_per_batch: usize,
    /// A partial batch is handed on after this many milliseconds.
    pub batch_timeout_ms: u64,
    /// Longer datagrams are cut to this many bytes and flagged truncated.
    pub max_frame: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_SYSLOG_PORT))],
            recv_buffer_bytes: 8 << 20,
            max_datagrams_per_batch: 512,
            batch_timeout_ms: 5,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl UdpConfig {
    /// Binds every `listen` address.
    pub fn bind(&self) -> Result<UdpInput, InputError> {
        let mut sockets = Vec::with_capacity(self.listen.len());
        for &addr in &self.listen {
            let socket = bind_udp(addr).map_err(|source| InputError::Bind {
                input: "udp",
                addr,
                source,
            })?;
            sockets.push(socket);
        }
        UdpInput::from_std(self, sockets)
    }
}

/// Bound UDP sockets, ready to [`run`](UdpInput::run).
#[derive(Debug)]
pub struct UdpInput {
    sockets: Vec<StdUdpSocket>,
    config: UdpConfig,
    stats: InputStats,
}

impl UdpInput {
    /// Receives on sockets bound elsewhere (systemd socket activation); the
    /// config's `listen` is ignored, its limits apply.
    pub fn from_std(config: &UdpConfig, sockets: Vec<StdUdpSocket>) -> Result<Self, InputError> {
        for s in &sockets {
            s.set_nonblocking(true)
                .map_err(|source| InputError::Adopt {
                    input: "udp",
                    source,
                })?;
            if config.recv_buffer_bytes > 0 {
                set_recv_buffer(s, config.recv_buffer_bytes);
            }
        }
        Ok(UdpInput {
            sockets,
            config: config.clone(),
            stats: InputStats::new(InputKind::Udp),
        })
    }

    /// The addresses actually bound (with the port the kernel chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// This input's counters.
    pub fn stats(&self) -> InputStats {
        self.stats.clone()
    }

    /// Receives until shutdown, then hands on what it holds and returns.
    pub async fn run(self, tx: FrameSender, shutdown: Shutdown) {
        let mut tasks = tokio::task::JoinSet::new();
        for std_socket in self.sockets {
            let addr = std_socket.local_addr().ok();
            match UdpSocket::from_std(std_socket) {
                Ok(socket) => {
                    let receiver = Receiver {
                        socket,
                        max_batch: self.config.max_datagrams_per_batch.max(1),
                        batch_timeout: Duration::from_millis(self.config.batch_timeout_ms),
                        max_frame: self.config.max_frame.max(1),
                        stats: self.stats.clone(),
                        drop_log: LogThrottle::per_second(),
                        error_log: LogThrottle::per_second(),
                    };
                    tasks.spawn(receiver.run(tx.clone(), shutdown.clone()));
                }
                Err(e) => error!(?addr, error = %e, "cannot register UDP socket"),
            }
        }
        drop(tx);
        while tasks.join_next().await.is_some() {}
    }
}

/// One socket's receive loop.
struct Receiver {
    socket: UdpSocket,
    max_batch: usize,
    batch_timeout: Duration,
    max_frame: usize,
    stats: InputStats,
    drop_log: LogThrottle,
    error_log: LogThrottle,
}

impl Receiver {
    async fn run(self, tx: FrameSender, mut shutdown: Shutdown) {
        let local = self.socket.local_addr().ok();
        debug!(?local, "UDP input receiving");
        let mut scratch = vec![0u8; RECV_SCRATCH];
        let mut batch = self.new_batch();
        // When the oldest datagram of a partial batch must be handed on.
        let mut deadline: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() =>
                {
                    deadline = None;
                    if !self.flush(&mut batch, &tx) {
                        return;
                    }
                    continue;
                }
                ready = self.socket.readable() => {
                    if let Err(e) = ready {
                        error!(?local, error = %e, "UDP socket failed");
                        break;
                    }
                }
            }
            loop {
                match self.socket.try_recv_from(&mut scratch) {
                    Ok((n, peer)) => {
                        let (frame, truncated) = datagram_frame(&scratch[..n], self.max_frame);
                        batch.push(frame, truncated, Some(peer), None);
                        if batch.len() >= self.max_batch {
                            // Hand it on and let other tasks run; the socket
                            // is still readable and brings us straight back.
                            deadline = None;
                            if !self.flush(&mut batch, &tx) {
                                return;
                            }
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        if let Some(more) = self.error_log.check() {
                            warn!(?local, error = %e, suppressed = more, "UDP receive error");
                        }
                        break;
                    }
                }
            }
            if !batch.is_empty() && deadline.is_none() {
                deadline = Some(Instant::now() + self.batch_timeout);
            }
        }
        self.flush(&mut batch, &tx);
    }

    fn new_batch(&self) -> FrameBatch {
        let mut b = FrameBatch::new(InputKind::Udp);
        b.frames.reserve(self.max_batch.min(1024));
        b
    }

    /// Hands `batch` on, or drops it if the pipeline is full. False when the
    /// pipeline is gone.
    fn flush(&self, batch: &mut FrameBatch, tx: &FrameSender) -> bool {
        if batch.is_empty() {
            return true;
        }
        let full = std::mem::replace(batch, self.new_batch());
        self.stats.record_batch(&full);
        match tx.try_send(full) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(mut lost)) => {
                let n = lost.len() as u64;
                self.stats.record_dropped(n, "pipeline_full");
                if let Some(more) = self.drop_log.check() {
                    warn!(
                        dropped = n,
                        dropped_total = self.stats.dropped(),
                        suppressed_warnings = more,
                        "pipeline full: dropping UDP datagrams"
                    );
                }
                // Reuse the dropped batch's buffers: under overload this path
                // runs for every batch.
                lost.buf.clear();
                lost.frames.clear();
                *batch = lost;
                true
            }
            Err(flume::TrySendError::Disconnected(lost)) => {
                self.stats
                    .record_dropped(lost.len() as u64, "pipeline_closed");
                false
            }
        }
    }
}

/// A non-blocking UDP socket on `addr`; IPv6 sockets do not take IPv4.
fn bind_udp(addr: SocketAddr) -> io::Result<StdUdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Asks for a receive buffer of `want` bytes and logs what was granted.
fn set_recv_buffer(socket: &StdUdpSocket, want: usize) {
    let sock = SockRef::from(socket);
    let addr = socket.local_addr().ok();
    if let Err(e) = sock.set_recv_buffer_size(want) {
        warn!(?addr, want, error = %e, "cannot set the UDP receive buffer");
        return;
    }
    match sock.recv_buffer_size() {
        // Linux reports twice the size asked for (half is bookkeeping) and
        // caps the request at net.core.rmem_max.
        Ok(got) if got < want => warn!(
            ?addr,
            requested = want,
            granted = got,
            "UDP receive buffer smaller than requested; raise net.core.rmem_max to absorb bursts"
        ),
        Ok(got) => info!(?addr, requested = want, granted = got, "UDP receive buffer"),
        Err(e) => debug!(?addr, error = %e, "cannot read back the UDP receive buffer"),
    }
}
