//! The UDP syslog input (RFC 5426): one datagram is one frame.
//!
//! One thread per socket waits for the socket to become readable, then takes
//! every datagram already queued (up to a batch, 32 per `recvmmsg` call)
//! without waiting again. While datagrams only trickle in, it pauses
//! `coalesce_us` between reads so they are taken in groups: one wake-up per
//! group rather than per message. A partial batch is handed on after
//! `batch_timeout_ms` so a lone message is not held.
//!
//! UDP cannot push back on its senders, so when the pipeline is full the batch
//! is dropped — counted as `dnsenrich_events_dropped_total{input="udp",
//! reason="pipeline_full"}` and logged at most once a second — rather than
//! queued without bound. A large socket receive buffer (`recv_buffer_bytes`)
//! absorbs bursts before it comes to that. When the receive buffer itself
//! overflows, the kernel drops datagrams before we see them; it reports its
//! running count with later datagrams (SO_RXQ_OVFL), and those are counted as
//! `reason="socket_buffer_full"` and logged the same way.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tracing::{debug, error, info, warn};

use super::framing::{datagram_frame, DEFAULT_MAX_FRAME};
use super::stats::{InputStats, LogThrottle};
use super::{InputError, DEFAULT_SYSLOG_PORT};
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::{FrameBatch, FrameSender, InputKind};

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
    /// While datagrams trickle in, wait this many microseconds between reads
    /// so they are taken in groups instead of one wake-up each (bounded by
    /// `batch_timeout_ms`, and skipped when traffic is heavy enough to fill
    /// the receive buffer). 0 reads each datagram as soon as it arrives.
    pub coalesce_us: u64,
    /// Longer datagrams are cut to this many bytes and flagged truncated.
    pub max_frame: usize,
    /// Set `SO_REUSEPORT` on the sockets, so several dnsenrich processes can
    /// receive on one address; the kernel spreads datagrams over them by a
    /// hash of the sender's address and port, so one sender's datagrams all
    /// go to the same process.
    pub reuse_port: bool,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_SYSLOG_PORT))],
            recv_buffer_bytes: 8 << 20,
            max_datagrams_per_batch: 512,
            batch_timeout_ms: 5,
            coalesce_us: 1000,
            max_frame: DEFAULT_MAX_FRAME,
            reuse_port: false,
        }
    }
}

impl UdpConfig {
    /// Binds every `listen` address.
    pub fn bind(&self) -> Result<UdpInput, InputError> {
        let mut sockets = Vec::with_capacity(self.listen.len());
        for &addr in &self.listen {
            let socket = bind_udp(addr, self.reuse_port).map_err(|source| InputError::Bind {
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
            report_kernel_drops(s);
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
    ///
    /// Each socket gets a thread of its own (`udp-recv`), outside the async
    /// runtime: a socket registered with the runtime's event loop wakes a
    /// thread for every datagram, which at 100,000 datagrams/s costs more CPU
    /// than parsing them. The thread instead sleeps `coalesce_us` between
    /// reads while datagrams trickle in and takes them in groups.
    pub async fn run(self, tx: FrameSender, shutdown: Shutdown) {
        let mut threads = Vec::with_capacity(self.sockets.len());
        for socket in self.sockets {
            let addr = socket.local_addr().ok();
            let receiver = Receiver {
                socket,
                max_batch: self.config.max_datagrams_per_batch.max(1),
                batch_timeout: Duration::from_millis(self.config.batch_timeout_ms),
                coalesce: Duration::from_micros(self.config.coalesce_us),
                max_frame: self.config.max_frame.max(1),
                stats: self.stats.clone(),
                drop_log: LogThrottle::per_second(),
                error_log: LogThrottle::per_second(),
                kernel_drops: 0,
                kernel_drop_log: LogThrottle::per_second(),
            };
            let (tx, shutdown) = (tx.clone(), shutdown.clone());
            match std::thread::Builder::new()
                .name("udp-recv".into())
                .spawn(move || receiver.run(tx, shutdown))
            {
                Ok(t) => threads.push(t),
                Err(e) => error!(?addr, error = %e, "cannot start a UDP receive thread"),
            }
        }
        drop(tx);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    error!("a UDP receive thread panicked");
                }
            }
        });
        let _ = joined.await;
    }
}

/// Datagrams taken by one `recvmmsg` call.
const RECV_VLEN: usize = 32;

/// How long an idle receiver blocks in `poll` before it looks at the shutdown
/// signal again.
const IDLE_POLL_MS: i32 = 100;

/// One socket's receive loop, on a thread of its own.
struct Receiver {
    socket: StdUdpSocket,
    max_batch: usize,
    batch_timeout: Duration,
    coalesce: Duration,
    max_frame: usize,
    stats: InputStats,
    drop_log: LogThrottle,
    error_log: LogThrottle,
    /// The socket's drop counter as last reported by the kernel.
    kernel_drops: u32,
    kernel_drop_log: LogThrottle,
}

/// What one round of reads ended with.
enum Round {
    /// The socket has nothing more queued; `got` datagrams were taken.
    Drained { got: usize },
    /// A batch filled up and was handed on; there may be more queued.
    Full,
    /// The pipeline is gone.
    Closed,
}

impl Receiver {
    fn run(mut self, tx: FrameSender, shutdown: Shutdown) {
        let local = self.socket.local_addr().ok();
        debug!(?local, "UDP input receiving");
        let mut slots = RecvSlots::new(self.max_frame);
        let mut batch = self.new_batch();
        // When the oldest datagram of the partial batch arrived.
        let mut oldest: Option<std::time::Instant> = None;
        // Lingering is safe while a pause lets at most a quarter of the
        // receive buffer fill up.
        let linger_below = (rcvbuf_datagrams(&self.socket) / 4).max(1);
        while !shutdown.is_shutdown() {
            match self.read_round(&mut slots, &mut batch, &tx) {
                Round::Closed => return,
                Round::Full => {
                    oldest = None;
                    continue;
                }
                Round::Drained { got } => {
                    if batch.is_empty() {
                        oldest = None;
                        self.wait_readable(IDLE_POLL_MS);
                        continue;
                    }
                    let now = std::time::Instant::now();
                    let first = *oldest.get_or_insert(now);
                    let due = first + self.batch_timeout;
                    if now >= due {
                        oldest = None;
                        if !self.flush(&mut batch, &tx) {
                            return;
                        }
                        self.wait_readable(IDLE_POLL_MS);
                    } else if !self.coalesce.is_zero() && got < linger_below {
                        // Datagrams trickle in: let some gather in the kernel
                        // rather than waking up for each one.
                        std::thread::sleep(self.coalesce.min(due - now));
                    } else {
                        let left = (due - now).as_millis().clamp(1, IDLE_POLL_MS as u128);
                        self.wait_readable(left as i32);
                    }
                }
            }
        }
        self.flush(&mut batch, &tx);
    }

    /// Takes every queued datagram into `batch`, up to a full batch.
    fn read_round(
        &mut self,
        slots: &mut RecvSlots,
        batch: &mut FrameBatch,
        tx: &FrameSender,
    ) -> Round {
        let mut got = 0;
        loop {
            let want = RECV_VLEN.min(self.max_batch - batch.len());
            match slots.recv(&self.socket, want) {
                Ok(n) => {
                    let mut drops = None;
                    for i in 0..n {
                        let (datagram, peer) = slots.get(i);
                        let (frame, truncated) = datagram_frame(datagram, self.max_frame);
                        batch.push(frame, truncated, peer, None);
                        drops = slots.kernel_drops(i).or(drops);
                    }
                    if let Some(total) = drops {
                        self.count_kernel_drops(total);
                    }
                    got += n;
                    if batch.len() >= self.max_batch {
                        return if self.flush(batch, tx) {
                            Round::Full
                        } else {
                            Round::Closed
                        };
                    }
                    if n < want {
                        return Round::Drained { got };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Round::Drained { got },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(more) = self.error_log.check() {
                        let local = self.socket.local_addr().ok();
                        warn!(?local, error = %e, suppressed = more, "UDP receive error");
                    }
                    // A socket that keeps failing also keeps polling
                    // readable: do not spin on it.
                    std::thread::sleep(Duration::from_millis(10));
                    return Round::Drained { got };
                }
            }
        }
    }

    /// Counts what the kernel dropped since it last told us: `total` is the
    /// socket's running count (SO_RXQ_OVFL), sent along with a datagram.
    fn count_kernel_drops(&mut self, total: u32) {
        let new = total.wrapping_sub(std::mem::replace(&mut self.kernel_drops, total));
        if new == 0 {
            return;
        }
        self.stats
            .record_dropped(u64::from(new), "socket_buffer_full");
        if let Some(more) = self.kernel_drop_log.check() {
            warn!(
                local = ?self.socket.local_addr().ok(),
                dropped = new,
                dropped_total = self.stats.dropped(),
                suppressed_warnings = more,
                "UDP receive buffer overflowed: the kernel dropped datagrams; \
                 raise recv_buffer_bytes (and net.core.rmem_max)"
            );
        }
    }

    /// Blocks until the socket is readable or `timeout_ms` has passed.
    fn wait_readable(&self, timeout_ms: i32) {
        use std::os::fd::AsRawFd;
        let mut fds = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for a socket this receiver owns.
        unsafe { libc::poll(&mut fds, 1, timeout_ms) };
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

/// Buffers for one `recvmmsg` call: `RECV_VLEN` slots, each big enough to
/// tell a datagram over `max_frame` from one that fits.
struct RecvSlots {
    buf: Vec<u8>,
    slot: usize,
    iov: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    /// Ancillary data per slot (the SO_RXQ_OVFL drop counter), as u64 words
    /// for the alignment `cmsghdr` needs.
    ctrl: Vec<u64>,
    msgs: Vec<libc::mmsghdr>,
}

/// Room for one `cmsghdr` with a `u32` (24 bytes on 64-bit Linux) and spare.
const CTRL_WORDS: usize = 8;

// SAFETY: the raw pointers in `iov` and `msgs` point into `buf` and `addrs`,
// which move with the struct (their heap allocations do not).
unsafe impl Send for RecvSlots {}

impl RecvSlots {
    fn new(max_frame: usize) -> Self {
        // Two bytes over the limit: a frame of exactly `max_frame` bytes may
        // come with a CR LF that `datagram_frame` strips.
        let slot = (max_frame + 2).min(RECV_SCRATCH);
        let mut s = RecvSlots {
            buf: vec![0; slot * RECV_VLEN],
            slot,
            iov: Vec::with_capacity(RECV_VLEN),
            // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; RECV_VLEN],
            ctrl: vec![0; RECV_VLEN * CTRL_WORDS],
            msgs: Vec::with_capacity(RECV_VLEN),
        };
        // Pointers from `Vec::as_mut_ptr`, which makes no intermediate
        // reference: the kernel writes through them while `get` reads `buf`.
        let base = s.buf.as_mut_ptr();
        for i in 0..RECV_VLEN {
            s.iov.push(libc::iovec {
                // SAFETY: `i * slot` stays inside `buf` (RECV_VLEN slots).
                iov_base: unsafe { base.add(i * slot) }.cast(),
                iov_len: slot,
            });
        }
        for i in 0..RECV_VLEN {
            // SAFETY: mmsghdr is plain data; all zeroes is valid.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            // SAFETY: `i` < RECV_VLEN, the length of `iov` and `addrs`.
            m.msg_hdr.msg_iov = unsafe { s.iov.as_mut_ptr().add(i) };
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = unsafe { s.addrs.as_mut_ptr().add(i) }.cast();
            s.msgs.push(m);
        }
        s
    }

    /// Receives up to `want` queued datagrams without blocking.
    fn recv(&mut self, socket: &StdUdpSocket, want: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let want = want.clamp(1, RECV_VLEN);
        let ctrl = self.ctrl.as_mut_ptr();
        for (i, m) in self.msgs[..want].iter_mut().enumerate() {
            m.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: `i` < RECV_VLEN, so the slot lies inside `ctrl`.
            m.msg_hdr.msg_control = unsafe { ctrl.add(i * CTRL_WORDS) }.cast();
            m.msg_hdr.msg_controllen = CTRL_WORDS * 8;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        // SAFETY: `msgs[..want]` are initialised headers whose iovecs and
        // names point at live buffers of the sizes given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Datagram `i` of the last `recv` (cut to the slot) and its sender.
    fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let m = &self.msgs[i];
        let len = (m.msg_len as usize).min(self.slot);
        let data = &self.buf[i * self.slot..i * self.slot + len];
        // SAFETY: the kernel wrote `msg_namelen` bytes of a socket address
        // into this slot's sockaddr_storage.
        let peer =
            unsafe { socket2::SockAddr::new(self.addrs[i], m.msg_hdr.msg_namelen) }.as_socket();
        (data, peer)
    }
}

impl RecvSlots {
    /// The socket's running drop count sent with datagram `i` of the last
    /// `recv`, if the kernel sent one (it does once anything was dropped).
    fn kernel_drops(&self, i: usize) -> Option<u32> {
        let hdr = &self.msgs[i].msg_hdr;
        // SAFETY: the kernel filled `msg_control` up to `msg_controllen`;
        // the CMSG_* macros walk only within it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                    return Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
                }
                c = libc::CMSG_NXTHDR(hdr, c);
            }
        }
        None
    }
}

/// Asks the kernel to report the socket's drop count with each datagram
/// (SO_RXQ_OVFL), so datagrams lost to a full receive buffer are counted too.
fn report_kernel_drops(socket: &StdUdpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and an int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        debug!(error = %io::Error::last_os_error(), "cannot enable SO_RXQ_OVFL; kernel drops will not be counted");
    }
}

/// Roughly how many datagrams of a few hundred bytes the socket's receive
/// buffer holds (the kernel charges each about 1 KiB of overhead on top).
fn rcvbuf_datagrams(socket: &StdUdpSocket) -> usize {
    SockRef::from(socket)
        .recv_buffer_size()
        .map(|b| b / 2048)
        .unwrap_or(100)
}

/// A non-blocking UDP socket on `addr`; IPv6 sockets do not take IPv4.
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<StdUdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        super::set_reuse_port(&socket)?;
    }
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
