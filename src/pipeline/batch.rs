//! The batches that flow between stages, and the acknowledgement that travels
//! with them back to the input that produced them.
//!
//! ```text
//!  inputs ──FrameBatch──► parse workers ──EventBatch──► enrich + encode ──EncodedBatch──► output
//!    ▲                                                                                     │
//!    └──────────────────────────── Ack::done() once the output has it ◄────────────────────┘
//! ```
//!
//! Every channel between stages is bounded: when the output cannot keep up, the
//! channels fill, workers wait, and inputs stop reading (TCP, TLS, files) or count
//! what they drop (UDP). Shutdown needs no message: an input that stops drops its
//! sender, each stage finishes what it holds and drops its own, and the output
//! returns when its channel is closed and empty.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::event::Event;

/// Which kind of input a batch came from; used as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    Udp,
    Tcp,
    Tls,
    Relp,
    File,
    Stdin,
}

impl InputKind {
    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Udp => "udp",
            InputKind::Tcp => "tcp",
            InputKind::Tls => "tls",
            InputKind::Relp => "relp",
            InputKind::File => "file",
            InputKind::Stdin => "stdin",
        }
    }
}

/// One received line or syslog message, as a range of its batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub start: usize,
    pub end: usize,
    /// The framing layer cut it at the maximum frame length.
    pub truncated: bool,
    /// The network peer that sent it.
    pub peer: Option<SocketAddr>,
    /// For file input: the byte offset where this line starts (`log.offset`).
    pub offset: Option<u64>,
}

/// A run of frames from one input, sharing one buffer.
pub struct FrameBatch {
    pub input: InputKind,
    pub buf: Vec<u8>,
    pub frames: Vec<Frame>,
    /// For file input: the file the lines were read from.
    pub file: Option<Arc<str>>,
    /// Fired when the output has stored every event of the batch.
    pub ack: Option<Ack>,
}

impl FrameBatch {
    /// An empty batch for `input`.
    pub fn new(input: InputKind) -> Self {
        FrameBatch {
            input,
            buf: Vec::new(),
            frames: Vec::new(),
            file: None,
            ack: None,
        }
    }

    /// Appends one frame's bytes.
    pub fn push(
        &mut self,
        bytes: &[u8],
        truncated: bool,
        peer: Option<SocketAddr>,
        offset: Option<u64>,
    ) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.frames.push(Frame {
            start,
            end: self.buf.len(),
            truncated,
            peer,
            offset,
        });
    }

    /// The bytes of frame `i`.
    pub fn bytes(&self, f: &Frame) -> &[u8] {
        &self.buf[f.start..f.end]
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Parsed events on their way to enrichment.
#[derive(Default)]
pub struct EventBatch {
    pub events: Vec<Event>,
    pub acks: Vec<Ack>,
    /// The batch's place in input order, counted by the parse workers when
    /// the correlation stage needs the order back (0 otherwise).
    pub seq: u64,
}

/// Events encoded as JSON documents, one after another in `docs`; document `i`
/// is `docs[ends[i-1]..ends[i]]` (no newline).
#[derive(Default)]
pub struct EncodedBatch {
    pub docs: Vec<u8>,
    pub ends: Vec<usize>,
    pub acks: Vec<Ack>,
}

impl EncodedBatch {
    /// Encodes `events` as JSON documents.
    pub fn encode(events: &[Event], acks: Vec<Ack>) -> Self {
        let mut docs = Vec::with_capacity(events.len() * 700);
        let mut ends = Vec::with_capacity(events.len());
        for ev in events {
            ev.write_json(&mut docs);
            ends.push(docs.len());
        }
        EncodedBatch { docs, ends, acks }
    }

    /// Document `i`.
    pub fn doc(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.docs[start..self.ends[i]]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A callback to the input, run when the output has durably handed the batch on
/// (written to the NDJSON sink, accepted by Elasticsearch, or written to the
/// dead-letter file). Dropping an `Ack` without calling [`Ack::done`] means
/// "not delivered": a file input then re-reads those lines after a restart.
pub struct Ack(Box<dyn FnOnce() + Send>);

impl Ack {
    /// Wraps the callback.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Ack(Box::new(f))
    }

    /// Reports the batch delivered.
    pub fn done(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// The sending side of the channel into the parse workers.
pub type FrameSender = flume::Sender<FrameBatch>;
/// The receiving side of the channel into the output.
pub type EncodedReceiver = flume::Receiver<EncodedBatch>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn frames_index_the_shared_buffer() {
        let mut b = FrameBatch::new(InputKind::Tcp);
        b.push(b"one", false, None, None);
        b.push(b"two", true, None, Some(8));
        assert_eq!(b.len(), 2);
        assert_eq!(b.bytes(&b.frames[1].clone()), b"two");
        assert!(b.frames[1].truncated);
    }

    #[test]
    fn encoded_batch_splits_documents() {
        let mut e1 = Event::default();
        e1.event.action = Some("a");
        let e2 = Event::default();
        let b = EncodedBatch::encode(&[e1, e2], vec![]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.doc(0), br#"{"event":{"action":"a"}}"#);
        assert_eq!(b.doc(1), br#"{"event":{}}"#);
    }

    #[test]
    fn ack_runs_its_callback_once_done() {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let ack = Ack::new(move || f.store(true, Ordering::SeqCst));
        assert!(!flag.load(Ordering::SeqCst));
        ack.done();
        assert!(flag.load(Ordering::SeqCst));
    }
}
