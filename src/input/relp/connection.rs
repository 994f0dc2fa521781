//! One RELP session on an accepted connection: reads and decodes its frames,
//! hands its messages on in batches, and answers each `200 OK` once the
//! pipeline reports it durable, in command order.
//!
//! ```text
//!  client ──"N syslog …"──► decode ─► batch (txnrs 5..9) ──► parse … output / disk buffer
//!     ▲                                                             │
//!     └── "5 rsp 6 200 OK" … "9 rsp 6 200 OK" ◄── Receipt ◄── Ack::done()
//! ```
//!
//! A batch carries an [`Ack`] holding its messages' transaction numbers;
//! when the output (or the disk buffer) has the batch, the numbers come back
//! on the session's channel and are answered. An `Ack` dropped without being
//! done (the buffer was full with `when_full = "drop_newest"`, the pipeline
//! closed, the drain deadline passed) means "not stored": the session is then
//! closed with the `serverclose` hint instead of being answered, because an
//! error answer makes librelp's client discard the message (`src/scrsp.c`:
//! a non-200 answer destroys the send buffer), whereas a session that ends
//! with commands unanswered has them resent on the next one.
//!
//! Back-pressure: handing a batch on waits while the pipeline is full, the
//! client stops by itself once its own window of unanswered commands is
//! full, and a session with `window` commands unanswered is not read until
//! answers go out (a client with a larger window is slowed, not dropped).
//! How a session ends, and what the client sees:
//!
//! | end                                   | sent last           |
//! |---------------------------------------|---------------------|
//! | `close` answered                      | the `close` answer  |
//! | framing or session error              | `serverclose` hint  |
//! | shutdown (answers waited for, bounded)| `serverclose` hint  |
//! | idle, evicted, a message not stored   | `serverclose` hint  |
//! | the client hung up, a socket error    | nothing             |

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::protocol::{Accepted, Phase, RelpDecoder, RelpError, RelpSession};
use crate::input::stats::LogThrottle;
use crate::input::stream::{send, Conversation, Io, Link};
use crate::input::BATCH_MAX_BYTES;
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::{Ack, FrameBatch, FrameSender, InputKind};

/// Bytes read from a connection at a time.
const READ_BUFFER: usize = 16 * 1024;

/// The shortest `syslog` frame (`2 syslog 0` LF): one read holds at most
/// `READ_BUFFER / MIN_SYSLOG_FRAME` commands, which bounds how far past the
/// window a session can get before it stops reading.
const MIN_SYSLOG_FRAME: usize = 11;

/// A client that does not read its answers for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sessions of one RELP input: their settings, and the warnings they
/// share (at most one a second each).
#[derive(Debug)]
pub(crate) struct RelpSessions {
    max_data: usize,
    window: usize,
    ack_wait: Duration,
    error_log: LogThrottle,
    lost_log: LogThrottle,
}

impl RelpSessions {
    pub(crate) fn new(max_data: usize, window: usize, ack_wait: Duration) -> Self {
        RelpSessions {
            max_data,
            window,
            ack_wait,
            error_log: LogThrottle::per_second(),
            lost_log: LogThrottle::per_second(),
        }
    }
}

impl Conversation for RelpSessions {
    fn serve<'a>(
        &'a self,
        stream: Box<dyn Io + 'a>,
        link: Link<'a>,
        tx: FrameSender,
        shutdown: Shutdown,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(Session::new(self, link).run(stream, tx, shutdown))
    }
}

/// A batch's messages coming back to their session: stored, or not.
#[derive(Debug)]
struct Settled {
    txnrs: Vec<u32>,
    delivered: bool,
}

/// Travels inside a batch's [`Ack`]: sends its transaction numbers back as
/// delivered when the ack is done, as not delivered when it is dropped.
struct Receipt {
    txnrs: Vec<u32>,
    back: mpsc::UnboundedSender<Settled>,
}

impl Receipt {
    fn delivered(mut self) {
        let txnrs = std::mem::take(&mut self.txnrs);
        let _ = self.back.send(Settled {
            txnrs,
            delivered: true,
        });
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if !self.txnrs.is_empty() {
            let txnrs = std::mem::take(&mut self.txnrs);
            let _ = self.back.send(Settled {
                txnrs,
                delivered: false,
            });
        }
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The `close` answer went out.
    Closed,
    Eof,
    Error(io::Error),
    Protocol(RelpError),
    Idle,
    Evicted,
    Shutdown,
    /// A batch was not stored (its ack was dropped).
    NotStored,
    PipelineClosed,
}

impl End {
    fn label(&self) -> &'static str {
        match self {
            End::Closed => "close",
            End::Eof => "peer_closed",
            End::Error(_) => "io_error",
            End::Protocol(_) => "protocol_error",
            End::Idle => "idle",
            End::Evicted => "evicted",
            End::Shutdown => "shutdown",
            End::NotStored => "not_stored",
            End::PipelineClosed => "pipeline_closed",
        }
    }

    /// Whether the client is told with the `serverclose` hint.
    fn hints(&self) -> bool {
        !matches!(self, End::Closed | End::Eof | End::Error(_))
    }
}

/// The messages read and not yet handed on, and the batches ready to go.
struct Outbox {
    kind: InputKind,
    peer: SocketAddr,
    batch_size: usize,
    batch: FrameBatch,
    txnrs: Vec<u32>,
    ready: Vec<FrameBatch>,
    back: mpsc::UnboundedSender<Settled>,
}

impl Outbox {
    fn push(&mut self, txnr: u32, data: &[u8]) {
        self.batch.push(data, false, Some(self.peer), None);
        self.txnrs.push(txnr);
        if self.batch.len() >= self.batch_size || self.batch.buf.len() >= BATCH_MAX_BYTES {
            self.cut();
        }
    }

    /// Moves the current batch, with its receipt, onto `ready`.
    fn cut(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::replace(&mut self.batch, FrameBatch::new(self.kind));
        let receipt = Receipt {
            txnrs: std::mem::take(&mut self.txnrs),
            back: self.back.clone(),
        };
        batch.ack = Some(Ack::new(move || receipt.delivered()));
        self.ready.push(batch);
    }
}

struct Session<'a> {
    settings: &'a RelpSessions,
    link: Link<'a>,
    decoder: RelpDecoder,
    session: RelpSession,
    outbox: Outbox,
    settled: mpsc::UnboundedReceiver<Settled>,
    /// Batches handed on and not settled yet.
    in_flight: usize,
    /// Answers to write.
    out: Vec<u8>,
}

impl<'a> Session<'a> {
    fn new(settings: &'a RelpSessions, link: Link<'a>) -> Self {
        let (back, settled) = mpsc::unbounded_channel();
        let outbox = Outbox {
            kind: link.kind,
            peer: link.peer,
            batch_size: link.limits.batch_size.max(1),
            batch: FrameBatch::new(link.kind),
            txnrs: Vec::new(),
            ready: Vec::new(),
            back,
        };
        Session {
            settings,
            decoder: RelpDecoder::new(settings.max_data),
            // Reading stops at the window; one read's worth more is
            // tolerated, anything beyond is a client ignoring the answers.
            session: RelpSession::new(settings.window + READ_BUFFER / MIN_SYSLOG_FRAME + 1),
            outbox,
            settled,
            in_flight: 0,
            out: Vec::new(),
            link,
        }
    }

    async fn run(mut self, mut stream: Box<dyn Io + 'a>, tx: FrameSender, mut shutdown: Shutdown) {
        let end = self.serve(&mut stream, &tx, &mut shutdown).await;
        self.finish(&mut stream, end, tx).await;
    }

    /// The session until it ends: reads and hands on, answers what is
    /// settled.
    async fn serve(
        &mut self,
        stream: &mut Box<dyn Io + 'a>,
        tx: &FrameSender,
        shutdown: &mut Shutdown,
    ) -> End {
        let mut buf = vec![0u8; READ_BUFFER];
        let idle = self.link.idle_timeout();
        let batch_timeout = Duration::from_millis(self.link.limits.batch_timeout_ms);
        let mut idle_deadline = idle.map(|d| Instant::now() + d);
        let mut flush_deadline: Option<Instant> = None;
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            // Idle only while no answer is owed: waiting on the output is
            // not the client's idleness.
            let may_idle = idle_deadline.is_some() && self.session.unacked() == 0;
            // Back-pressure at the window: a client with more unanswered
            // commands is not read until answers go out.
            let may_read = self.session.unacked() < self.settings.window;
            tokio::select! {
                biased;
                _ = shutdown.recv() => return End::Shutdown,
                _ = self.link.evicted() => return End::Evicted,
                Some(s) = self.settled.recv() => {
                    if let Err(end) = self.settle(s) {
                        return end;
                    }
                    if let Err(e) = self.answer(stream).await {
                        return End::Error(e);
                    }
                    if self.session.phase() == Phase::Closed {
                        return End::Closed;
                    }
                    idle_deadline = idle.map(|d| Instant::now() + d);
                }
                _ = tokio::time::sleep_until(flush_deadline.unwrap_or(far)), if flush_deadline.is_some() => {
                    flush_deadline = None;
                    self.outbox.cut();
                    if !self.hand_on(tx).await {
                        return End::PipelineClosed;
                    }
                }
                _ = tokio::time::sleep_until(idle_deadline.unwrap_or(far)), if may_idle => {
                    return End::Idle;
                }
                read = stream.read(&mut buf), if may_read => match read {
                    Ok(0) => return End::Eof,
                    Ok(n) => {
                        self.link.touch();
                        let decoded = self.decode(&buf[..n]);
                        if !self.hand_on(tx).await {
                            return End::PipelineClosed;
                        }
                        if let Err(e) = decoded {
                            return End::Protocol(e);
                        }
                        if let Err(e) = self.answer(stream).await {
                            return End::Error(e);
                        }
                        if self.session.phase() == Phase::Closed {
                            return End::Closed;
                        }
                        idle_deadline = idle.map(|d| Instant::now() + d);
                        if self.outbox.batch.is_empty() {
                            flush_deadline = None;
                        } else if flush_deadline.is_none() {
                            flush_deadline = Some(Instant::now() + batch_timeout);
                        }
                    }
                    Err(e) => return End::Error(e),
                },
            }
        }
    }

    /// Decodes `bytes`, checking each frame against the session and putting
    /// its message into the outbox. The frames before an error are kept.
    fn decode(&mut self, bytes: &[u8]) -> Result<(), RelpError> {
        let Session {
            decoder,
            session,
            outbox,
            ..
        } = self;
        decoder.decode(bytes, &mut |frame| {
            match session.accept(&frame)? {
                Accepted::Syslog { txnr } => outbox.push(txnr, frame.data),
                // Everything before `close` goes now: its answer waits for them.
                Accepted::Close => outbox.cut(),
                Accepted::Open => {}
            }
            Ok(())
        })
    }

    /// Hands the ready batches on, waiting while the pipeline is full.
    /// False when the pipeline is gone.
    async fn hand_on(&mut self, tx: &FrameSender) -> bool {
        let ready = std::mem::take(&mut self.outbox.ready);
        for batch in ready {
            self.in_flight += 1;
            if !send(self.link.stats, tx, batch).await {
                return false;
            }
        }
        true
    }

    /// Marks a settled batch's messages answered; a batch not stored ends
    /// the session.
    fn settle(&mut self, s: Settled) -> Result<(), End> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if !s.delivered {
            return Err(End::NotStored);
        }
        let mut answered = 0u64;
        for txnr in s.txnrs {
            answered += u64::from(self.session.complete(txnr, None));
        }
        metrics::counter!("dnsenrich_relp_messages_acknowledged_total").increment(answered);
        Ok(())
    }

    /// Writes every answer that may go now.
    async fn answer(&mut self, stream: &mut Box<dyn Io + 'a>) -> io::Result<()> {
        self.session.take_responses(&mut self.out);
        if self.out.is_empty() {
            return Ok(());
        }
        let written = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&self.out)).await;
        self.out.clear();
        match written {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client does not read its answers",
            )),
        }
    }

    /// Hands on what was read, at shutdown waits (bounded) for the answers
    /// still owed, tells the client with the `serverclose` hint when the
    /// server is the one ending, and closes.
    async fn finish(&mut self, stream: &mut Box<dyn Io + 'a>, end: End, tx: FrameSender) {
        self.log_end(&end);
        metrics::counter!("dnsenrich_relp_sessions_ended_total", "reason" => end.label())
            .increment(1);
        if !matches!(end, End::PipelineClosed) {
            // Messages read before the session ended are good: they are
            // stored even though the client will resend them unanswered.
            self.outbox.cut();
            self.hand_on(&tx).await;
        }
        drop(tx);
        if matches!(end, End::Shutdown) {
            self.await_answers(stream).await;
        }
        if end.hints() && self.session.phase() != Phase::Closed {
            self.out.clear();
            self.session.server_close(&mut self.out);
            let _ =
                tokio::time::timeout(Duration::from_millis(500), stream.write_all(&self.out)).await;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.shutdown()).await;
    }

    /// At shutdown: answers messages as they are stored, for at most the
    /// input's `ack_wait`, so the client need not resend them.
    async fn await_answers(&mut self, stream: &mut Box<dyn Io + 'a>) {
        let until = Instant::now() + self.settings.ack_wait;
        while self.in_flight > 0 && self.session.unacked() > 0 {
            match tokio::time::timeout_at(until, self.settled.recv()).await {
                Ok(Some(s)) => {
                    if self.settle(s).is_err() || self.answer(stream).await.is_err() {
                        return;
                    }
                }
                _ => {
                    debug!(
                        input = self.link.kind.as_str(),
                        peer = %self.link.peer,
                        unanswered = self.session.unacked(),
                        "shutdown: messages not stored in time stay unanswered; the client resends them"
                    );
                    return;
                }
            }
        }
    }

    fn log_end(&self, end: &End) {
        let (kind, peer) = (self.link.kind.as_str(), self.link.peer);
        match end {
            End::Protocol(e) => {
                self.link.stats.record_framing_error();
                if let Some(more) = self.settings.error_log.check() {
                    warn!(input = kind, %peer, error = %e, suppressed = more, "closing RELP session; the client resends what was not answered");
                }
            }
            End::NotStored => {
                if let Some(more) = self.settings.lost_log.check() {
                    warn!(input = kind, %peer, suppressed = more, "messages were not stored; closing the RELP session unanswered so the client resends them");
                }
            }
            End::Error(e) => debug!(input = kind, %peer, error = %e, "RELP connection failed"),
            other => debug!(input = kind, %peer, reason = other.label(), "RELP session ended"),
        }
    }
}
