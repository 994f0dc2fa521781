//! The connection handling the TCP and TLS inputs share: binding and accepting
//! under a connection limit, then, per connection, an optional handshake passed
//! in by the input ([`Handshake`]), and reading, framing and batching its
//! stream, pushing back on the sender.
//!
//! Back-pressure: a connection hands each batch on with an awaited send, so
//! while the pipeline is full the connection is not read; the kernel's socket
//! buffers fill and the sender's writes block. What one connection holds is
//! bounded by its read buffer, one batch and one partial frame.
//!
//! Limits: at most `max_connections` at once over all the input's addresses;
//! at the limit a new connection evicts the one that has gone longest without
//! sending (it hands on what it read and closes), so idle connections cannot
//! lock other senders out; at most `max_connections_per_source` from one peer
//! IP address, more are accepted and closed at once. Both are counted. A
//! connection that sends nothing for `idle_timeout_secs` is closed. On shutdown the input stops accepting, and every connection
//! hands on what it has read and closes without waiting for its peer.
//!
//! Batching: a connection hands on what each read gave it, and the input's
//! [merger](super::merge) gathers those into full batches for the parse
//! workers, so many slow connections cost one batch per `batch_timeout_ms`
//! rather than one per connection. A connection arms no timer per read: its
//! idle deadline is checked when a single timer, set from its last activity,
//! fires.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::framing::{FrameDecoder, DEFAULT_MAX_FRAME};
use super::merge;
use super::stats::{InputStats, LogThrottle};
use super::{InputError, BATCH_MAX_BYTES};
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::{FrameBatch, FrameSender, InputKind};

/// Bytes read from a connection at a time.
const READ_BUFFER: usize = 16 * 1024;

/// Pending connections the kernel queues for us.
const LISTEN_BACKLOG: i32 = 1024;

/// At shutdown a connection keeps reading until the peer closes or sends
/// nothing for this long, so a burst written just before SIGTERM is not cut…
const SHUTDOWN_QUIET: Duration = Duration::from_millis(250);

/// …but for no longer than this, so a peer that never stops cannot hold the
/// shutdown (which has its own deadline, 10 s by default).
const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(5);

/// The limits a stream input (TCP or TLS) applies; see
/// [`TcpConfig`](super::TcpConfig).
///
/// `TcpConfig` and `TlsConfig` each repeat these five fields rather than
/// `#[serde(flatten)]` one `StreamLimits`: serde does not support `flatten`
/// together with `deny_unknown_fields`, and a misspelt key in `[input.tcp]`
/// must stay an error. Their defaults come from here, so they cannot drift.
#[derive(Debug, Clone)]
pub(crate) struct StreamLimits {
    pub max_frame: usize,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub idle_timeout_secs: u64,
    pub batch_size: usize,
    pub batch_timeout_ms: u64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_connections_per_source: 64,
            idle_timeout_secs: 300,
            batch_size: 512,
            batch_timeout_ms: 10,
        }
    }
}

impl StreamLimits {
    fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }
}

/// What is layered on an accepted TCP connection before its bytes are framed:
/// nothing for TCP ([`Plain`]), a TLS handshake for TLS.
pub(crate) trait Handshake: Debug + Send + Sync + 'static {
    /// The stream the frames are read from once the handshake is done.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send;

    /// Turns an accepted connection into [`Self::Stream`]; `None` closes it
    /// (the handshake counts and logs its own failures).
    fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stats: &InputStats,
        shutdown: Shutdown,
    ) -> impl Future<Output = Option<Self::Stream>> + Send;
}

/// No handshake: the TCP input reads the socket as it is.
#[derive(Debug)]
pub(crate) struct Plain;

impl Handshake for Plain {
    type Stream = TcpStream;

    async fn accept(
        &self,
        stream: TcpStream,
        _peer: SocketAddr,
        _stats: &InputStats,
        _shutdown: Shutdown,
    ) -> Option<TcpStream> {
        Some(stream)
    }
}

/// Listeners plus everything their connections share.
#[derive(Debug)]
pub(crate) struct StreamServer<H: Handshake> {
    listeners: Vec<StdTcpListener>,
    shared: Arc<Shared<H>>,
    pub(crate) stats: InputStats,
}

#[derive(Debug)]
struct Shared<H> {
    kind: InputKind,
    limits: StreamLimits,
    handshake: H,
    /// What a connection speaks once accepted, when not syslog frames (RELP).
    protocol: Option<Box<dyn Conversation>>,
    stats: InputStats,
    slots: Mutex<Slots>,
    /// When the server started: `Slot::last_active` counts from here.
    epoch: Instant,
    reject_log: LogThrottle,
    accept_log: LogThrottle,
    framing_log: LogThrottle,
}

impl<H: Handshake> StreamServer<H> {
    pub(crate) fn new(
        kind: InputKind,
        listeners: Vec<StdTcpListener>,
        limits: StreamLimits,
        handshake: H,
    ) -> Result<Self, InputError> {
        for l in &listeners {
            l.set_nonblocking(true)
                .map_err(|source| InputError::Adopt {
                    input: kind.as_str(),
                    source,
                })?;
        }
        let stats = InputStats::new(kind);
        Ok(StreamServer {
            listeners,
            shared: Arc::new(Shared {
                kind,
                limits,
                handshake,
                protocol: None,
                stats: stats.clone(),
                slots: Mutex::default(),
                epoch: Instant::now(),
                reject_log: LogThrottle::per_second(),
                accept_log: LogThrottle::per_second(),
                framing_log: LogThrottle::per_second(),
            }),
            stats,
        })
    }

    /// Connections speak `protocol` instead of plain syslog frames; the
    /// accepting, the limits and the handshake stay as they are.
    pub(crate) fn speaking(mut self, protocol: impl Conversation) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.protocol = Some(Box::new(protocol));
        }
        self
    }

    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Accepts and reads until shutdown; returns once every connection has
    /// handed on what it read and closed.
    pub(crate) async fn run(self, tx: FrameSender, shutdown: Shutdown) {
        // Every connection of every listener hands its reads to one merger.
        let (tx, merger) = merge::spawn(
            self.shared.kind,
            self.shared.limits.batch_size,
            Duration::from_millis(self.shared.limits.batch_timeout_ms),
            self.stats.clone(),
            tx,
        );
        let mut tasks = JoinSet::new();
        for std_listener in self.listeners {
            let addr = std_listener.local_addr().ok();
            match TcpListener::from_std(std_listener) {
                Ok(listener) => {
                    debug!(input = self.shared.kind.as_str(), ?addr, "listening");
                    tasks.spawn(accept_loop(
                        listener,
                        self.shared.clone(),
                        tx.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => error!(?addr, error = %e, "cannot register listener"),
            }
        }
        drop(tx);
        while tasks.join_next().await.is_some() {}
        // Every connection is gone: the merger hands on what it holds.
        let _ = merger.await;
    }
}

/// Binds a listener per address, failing on the first that cannot be bound.
#[allow(dead_code)]
pub(crate) fn bind_all(
    input: &'static str,
    addrs: &[SocketAddr],
) -> Result<Vec<StdTcpListener>, InputError> {
    bind_all_with(input, addrs, false)
}

/// [`bind_all`], with `SO_REUSEPORT` on each listener when `reuse_port`: then
/// several processes can listen on one address and the kernel spreads new
/// connections over them.
pub(crate) fn bind_all_with(
    input: &'static str,
    addrs: &[SocketAddr],
    reuse_port: bool,
) -> Result<Vec<StdTcpListener>, InputError> {
    addrs
        .iter()
        .map(|&addr| {
            bind_tcp(addr, reuse_port).map_err(|source| InputError::Bind {
                input,
                addr,
                source,
            })
        })
        .collect()
}

/// A non-blocking listener on `addr`; IPv6 listeners do not take IPv4.
fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<StdTcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restart must not wait for the old connections' TIME_WAIT.
    socket.set_reuse_address(true)?;
    if reuse_port {
        super::set_reuse_port(&socket)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

async fn accept_loop<H: Handshake>(
    listener: TcpListener,
    shared: Arc<Shared<H>>,
    tx: FrameSender,
    mut shutdown: Shutdown,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match admit(&shared, peer) {
                    Some(slot) => {
                        connections.spawn(connection(
                            stream,
                            peer,
                            SlotGuard { shared: shared.clone(), slot },
                            tx.clone(),
                            shutdown.clone(),
                        ));
                    }
                    None => reject(stream, peer, &shared),
                },
                Err(e) => {
                    // Typically out of file descriptors: back off instead of
                    // spinning on an accept that keeps failing.
                    if let Some(more) = shared.accept_log.check() {
                        warn!(input = shared.kind.as_str(), error = %e, suppressed = more, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    drop(tx);
    while connections.join_next().await.is_some() {}
}

/// The open connections, for the limits.
#[derive(Debug, Default)]
struct Slots {
    next_id: u64,
    open: HashMap<u64, Arc<Slot>>,
    per_source: HashMap<IpAddr, usize>,
}

/// One open connection as the limits see it.
#[derive(Debug)]
struct Slot {
    id: u64,
    ip: IpAddr,
    /// Milliseconds from [`Shared::epoch`] to its last read.
    last_active: AtomicU64,
    /// Told to close when a new connection evicts it.
    evict: Notify,
}

impl Slot {
    fn touch(&self, epoch: Instant) {
        let ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(ms, Ordering::Relaxed);
    }
}

/// Frees a connection's slot when it ends.
struct SlotGuard<H> {
    shared: Arc<Shared<H>>,
    slot: Arc<Slot>,
}

impl<H> Drop for SlotGuard<H> {
    fn drop(&mut self) {
        let mut slots = lock(&self.shared.slots);
        release(&mut slots, &self.slot);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes `slot` out of the books, once (an evicted connection is taken out
/// when evicted, and again, harmlessly, when it ends).
fn release(slots: &mut Slots, slot: &Slot) {
    if slots.open.remove(&slot.id).is_some() {
        if let Some(n) = slots.per_source.get_mut(&slot.ip) {
            *n -= 1;
            if *n == 0 {
                slots.per_source.remove(&slot.ip);
            }
        }
    }
}

/// A slot for a new connection from `peer`, evicting the longest-idle
/// connection when the input is full; `None` when `peer`'s address already
/// has its share.
fn admit<H>(shared: &Shared<H>, peer: SocketAddr) -> Option<Arc<Slot>> {
    let limits = &shared.limits;
    let mut slots = lock(&shared.slots);
    let ip = peer.ip();
    if slots.per_source.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_source.max(1) {
        return None;
    }
    if slots.open.len() >= limits.max_connections.max(1) {
        let oldest = slots
            .open
            .values()
            .min_by_key(|s| s.last_active.load(Ordering::Relaxed))
            .cloned();
        if let Some(victim) = oldest {
            release(&mut slots, &victim);
            victim.evict.notify_one();
            shared.stats.record_evicted("connection_limit");
            debug!(input = shared.kind.as_str(), peer = %victim.ip, "connection limit reached; evicting the longest-idle connection");
        }
    }
    let id = slots.next_id;
    slots.next_id += 1;
    let slot = Arc::new(Slot {
        id,
        ip,
        last_active: AtomicU64::new(0),
        evict: Notify::new(),
    });
    slot.touch(shared.epoch);
    slots.open.insert(id, slot.clone());
    *slots.per_source.entry(ip).or_default() += 1;
    Some(slot)
}

/// Closes a connection over its source's limit at once, and counts it.
fn reject<H>(stream: TcpStream, peer: SocketAddr, shared: &Shared<H>) {
    drop(stream);
    shared.stats.record_rejected("per_source_limit");
    if let Some(more) = shared.reject_log.check() {
        warn!(
            input = shared.kind.as_str(),
            %peer,
            limit = shared.limits.max_connections_per_source,
            suppressed = more,
            "per-source connection limit reached; closing new connection"
        );
    }
}

async fn connection<H: Handshake>(
    stream: TcpStream,
    peer: SocketAddr,
    slot: SlotGuard<H>,
    tx: FrameSender,
    shutdown: Shutdown,
) {
    let shared = slot.shared.clone();
    let _active = shared.stats.connection_opened();
    let accepted = tokio::select! {
        a = shared.handshake.accept(stream, peer, &shared.stats, shutdown.clone()) => a,
        _ = slot.slot.evict.notified() => None,
    };
    if let Some(stream) = accepted {
        match &shared.protocol {
            Some(protocol) => {
                let link = Link {
                    peer,
                    kind: shared.kind,
                    limits: &shared.limits,
                    stats: &shared.stats,
                    slot: &slot.slot,
                    epoch: shared.epoch,
                };
                protocol.serve(Box::new(stream), link, tx, shutdown).await
            }
            None => read_frames(stream, peer, &shared, &slot.slot, tx, shutdown).await,
        }
    }
    drop(slot);
}

/// An accepted stream, after its handshake, for a [`Conversation`].
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A protocol other than plain syslog frames spoken on an accepted
/// connection (RELP): it reads, answers and hands batches on itself, and
/// returns when the connection is to be closed.
pub(crate) trait Conversation: Debug + Send + Sync + 'static {
    fn serve<'a>(
        &'a self,
        stream: Box<dyn Io + 'a>,
        link: Link<'a>,
        tx: FrameSender,
        shutdown: Shutdown,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// What a [`Conversation`] gets of its connection's place in the input: the
/// peer, the limits and counters, and its slot (activity, eviction).
pub(crate) struct Link<'a> {
    pub peer: SocketAddr,
    pub kind: InputKind,
    pub limits: &'a StreamLimits,
    pub stats: &'a InputStats,
    slot: &'a Slot,
    epoch: Instant,
}

impl Link<'_> {
    /// Notes that the peer sent something (for the longest-idle eviction).
    pub fn touch(&self) {
        self.slot.touch(self.epoch);
    }

    /// Resolves when a new connection evicts this one.
    pub async fn evicted(&self) {
        self.slot.evict.notified().await
    }

    /// How long the peer may send nothing; `None` for ever.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.limits.idle_timeout()
    }
}

/// Why a connection's read loop ended.
#[derive(Debug)]
enum End {
    Eof,
    Idle,
    Shutdown,
    Evicted,
    Error(io::Error),
    PipelineClosed,
}

/// One connection: reads, frames, batches and hands on its frames until the
/// peer hangs up, it idles out, or shutdown; then closes it.
async fn read_frames<S, H>(
    mut stream: S,
    peer: SocketAddr,
    shared: &Shared<H>,
    slot: &Slot,
    tx: FrameSender,
    mut shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Connection::new(peer, shared);
    let mut buf = vec![0u8; READ_BUFFER];
    let activity = Activity {
        slot,
        epoch: shared.epoch,
    };
    let end = read_until_end(
        &mut stream,
        &mut buf,
        &mut conn,
        &activity,
        &tx,
        &mut shutdown,
    )
    .await;
    if matches!(end, End::Shutdown) {
        drain_at_shutdown(&mut stream, &mut buf, &mut conn, &tx).await;
    }
    let kind = shared.kind.as_str();
    match &end {
        End::Error(e) => debug!(input = kind, %peer, error = %e, "connection failed"),
        End::Idle => debug!(input = kind, %peer, "closing idle connection"),
        End::Evicted => debug!(input = kind, %peer, "closing evicted connection"),
        other => debug!(input = kind, %peer, reason = ?other, "connection closed"),
    }
    if !matches!(end, End::PipelineClosed) {
        conn.finish();
        if conn.send_ready(&tx).await {
            conn.send_current(&tx).await;
        }
    }
    drop(tx);
    // Says goodbye properly (a FIN, or a TLS close_notify); a peer that does
    // not read cannot hold us here.
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.shutdown()).await;
}

/// Where a connection notes that it is active, and hears it is evicted.
struct Activity<'a> {
    slot: &'a Slot,
    epoch: Instant,
}

impl Activity<'_> {
    /// How long since the connection was last active.
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.slot.last_active.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// The read loop: hands on what each read gave (the merger batches it) until
/// the peer hangs up, it idles out, is evicted, or shutdown.
async fn read_until_end<S>(
    stream: &mut S,
    buf: &mut [u8],
    conn: &mut Connection<'_>,
    activity: &Activity<'_>,
    tx: &FrameSender,
    shutdown: &mut Shutdown,
) -> End
where
    S: AsyncRead + Unpin,
{
    let idle = conn.limits.idle_timeout();
    // One timer for the idle deadline, not one per read: when it fires, the
    // connection is idle only if it has not been active since it was set.
    let idle_timer = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(idle_timer);
    // Made once, not per read: each new one would join and leave its
    // notifier's waiter list (a lock each way) on every pass.
    let stopping = shutdown.recv();
    tokio::pin!(stopping);
    let evicted = activity.slot.evict.notified();
    tokio::pin!(evicted);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopping => return End::Shutdown,
            _ = &mut evicted => return End::Evicted,
            _ = &mut idle_timer, if idle.is_some() => {
                let idle = idle.unwrap_or_default();
                let quiet = activity.quiet_for();
                if quiet >= idle {
                    return End::Idle;
                }
                idle_timer.as_mut().reset(Instant::now() + (idle - quiet));
            }
            read = stream.read(buf) => match read {
                Ok(0) => return End::Eof,
                Ok(n) => {
                    conn.decode(&buf[..n]);
                    if !conn.send_ready(tx).await || !conn.send_current(tx).await {
                        return End::PipelineClosed;
                    }
                    // From after the send: time spent waiting on a full
                    // pipeline is ours, not the peer's idleness.
                    activity.slot.touch(activity.epoch);
                }
                Err(e) => return End::Error(e),
            },
        }
    }
}

/// At shutdown, takes what the peer has sent, handing it on as we go, until it
/// closes or goes quiet (bounded, see [`SHUTDOWN_DRAIN_MAX`]).
async fn drain_at_shutdown<S>(
    stream: &mut S,
    buf: &mut [u8],
    conn: &mut Connection<'_>,
    tx: &FrameSender,
) where
    S: AsyncRead + Unpin,
{
    let until = Instant::now() + SHUTDOWN_DRAIN_MAX;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match tokio::time::timeout(SHUTDOWN_QUIET.min(left), stream.read(buf)).await {
            Ok(Ok(n)) if n > 0 => {
                conn.decode(&buf[..n]);
                if !conn.send_ready(tx).await {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// A connection's framing and batching state.
struct Connection<'a> {
    peer: SocketAddr,
    kind: InputKind,
    limits: &'a StreamLimits,
    stats: &'a InputStats,
    framing_log: &'a LogThrottle,
    decoder: FrameDecoder,
    framing_errors: u64,
    empty_lines: u64,
    batch: FrameBatch,
    /// Full batches waiting to be handed on.
    ready: Vec<FrameBatch>,
}

impl<'a> Connection<'a> {
    fn new<H>(peer: SocketAddr, shared: &'a Shared<H>) -> Self {
        Connection {
            peer,
            kind: shared.kind,
            limits: &shared.limits,
            stats: &shared.stats,
            framing_log: &shared.framing_log,
            decoder: FrameDecoder::new(shared.limits.max_frame),
            framing_errors: 0,
            empty_lines: 0,
            batch: FrameBatch::new(shared.kind),
            ready: Vec::new(),
        }
    }

    /// The decoder, and where its frames go: into the current batch, full
    /// batches onto `ready`.
    fn decoder_and_sink(&mut self) -> (&mut FrameDecoder, impl FnMut(&[u8], bool) + '_) {
        let (peer, kind) = (Some(self.peer), self.kind);
        let batch_size = self.limits.batch_size.max(1);
        let Connection {
            decoder,
            batch,
            ready,
            ..
        } = self;
        (decoder, move |frame: &[u8], truncated: bool| {
            push(batch, ready, frame, truncated, peer, kind, batch_size)
        })
    }

    fn decode(&mut self, bytes: &[u8]) {
        {
            let (decoder, mut sink) = self.decoder_and_sink();
            decoder.decode(bytes, &mut sink);
        }
        self.note_framing_errors();
    }

    fn finish(&mut self) {
        {
            let (decoder, mut sink) = self.decoder_and_sink();
            decoder.finish(&mut sink);
        }
        self.note_framing_errors();
    }

    fn note_framing_errors(&mut self) {
        let empty = self.decoder.empty_lines();
        self.stats
            .record_skipped(empty - self.empty_lines, "empty_line");
        self.empty_lines = empty;
        let now = self.decoder.framing_errors();
        if now > self.framing_errors {
            self.framing_errors = now;
            self.stats.record_framing_error();
            if let Some(more) = self.framing_log.check() {
                warn!(
                    input = self.kind.as_str(),
                    peer = %self.peer,
                    suppressed = more,
                    "invalid octet count; reading this connection as LF-framed from here"
                );
            }
        }
    }

    /// Hands on the full batches. False when the pipeline is gone.
    async fn send_ready(&mut self, tx: &FrameSender) -> bool {
        let mut ready = std::mem::take(&mut self.ready);
        for batch in ready.drain(..) {
            if !send(self.stats, tx, batch).await {
                return false;
            }
        }
        // Keep the vector's allocation for the next read.
        self.ready = ready;
        true
    }

    /// Hands on the partial batch.
    async fn send_current(&mut self, tx: &FrameSender) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, FrameBatch::new(self.kind));
        send(self.stats, tx, batch).await
    }
}

/// Hands one batch on, waiting while the pipeline is full. False when the
/// pipeline is gone.
pub(crate) async fn send(stats: &InputStats, tx: &FrameSender, batch: FrameBatch) -> bool {
    stats.record_batch(&batch);
    match tx.send_async(batch).await {
        Ok(()) => true,
        Err(flume::SendError(lost)) => {
            stats.record_dropped(lost.len() as u64, "pipeline_closed");
            false
        }
    }
}

/// Adds a frame to the batch, moving the batch to `ready` once it is full.
fn push(
    batch: &mut FrameBatch,
    ready: &mut Vec<FrameBatch>,
    frame: &[u8],
    truncated: bool,
    peer: Option<SocketAddr>,
    kind: InputKind,
    batch_size: usize,
) {
    batch.push(frame, truncated, peer, None);
    if batch.len() >= batch_size || batch.buf.len() >= BATCH_MAX_BYTES {
        ready.push(std::mem::replace(batch, FrameBatch::new(kind)));
    }
}
