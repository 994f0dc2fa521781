//! The correlation stage: the log lines of one DNS query (`query`,
//! `forwarded`, one `reply` per record, `cached`, Pi-hole's reason lines, ...)
//! become one transaction event, as Pi-hole's Query Log, Packetbeat and Zeek
//! show one row per query.
//!
//! ```text
//!  parse ─EventBatch (line events, in input order)─► correlate ─EventBatch (transactions)─► enrich
//! ```
//!
//! # Which lines go together
//!
//! * **With a serial** (`log-queries=extra`/`proto`): the key is (source, pid,
//!   serial). The source is the syslog host name, else the tailed file, else
//!   the sending address; the pid is dnsmasq's (a forked TCP child has its own
//!   pid and its own serials). A `started, version` line closes every open
//!   transaction of its source, since serials restart.
//! * **Without** (the default log): the key is (source, pid, question name),
//!   and the order of lines. A `query[T]` opens; lines naming the question
//!   attach to the oldest open transaction for the name whose query type the
//!   record fits (an A record fits `query[A]`, `NODATA-IPv6` fits
//!   `query[AAAA]`); the records right after a `<CNAME>` line are the chain
//!   and attach to the same transaction whatever their name; the records of
//!   one multi-record reply follow each other and stay together.
//!   Two clients asking the same name at once: dnsmasq forwards once and logs
//!   the reply once. Each client has its own transaction (its own
//!   `query[T]` line, so its own `client.*`); the one that was forwarded gets
//!   the reply lines, and the other — a query with no `forwarded` line of its
//!   own — gets a copy of the answer when the first closes, with status
//!   `in_progress` (FTL's status 14 for the same case).
//!
//! # When a transaction closes
//!
//! * An answer line (reply, cached, config, hosts file, DHCP, blocked, error)
//!   starts the settle time (`transactions.settle_ms`): the records of an
//!   answer come in one burst, so the transaction closes once no line has
//!   joined it for that long.
//! * Otherwise after `transactions.idle_timeout_ms` without a line: a query
//!   without reply closes with `event.outcome: unknown` and the tag
//!   [`tag::TXN_NO_REPLY`].
//! * Past the bounds (`max_open`, `max_open_bytes`) the oldest open
//!   transaction closes at once with [`tag::TXN_EVICTED`].
//! * At shutdown every open transaction is emitted before the output flushes.
//!
//! A line that belongs to a transaction already emitted is a late line: it
//! leaves as a line event tagged [`tag::TXN_LATE`]. A reply without its query
//! becomes a transaction tagged [`tag::TXN_INCOMPLETE`]. Lines that are not
//! part of a query (start-up, cache dumps, DHCP, lines no rule matched) pass
//! as line events. Nothing is dropped.
//!
//! # Delivery
//!
//! An input batch's acknowledgement is shared by its lines ([`AckShare`]);
//! it fires once every event holding one of its lines has been delivered, so
//! a tailed file's offset never passes a line still in an open transaction.

mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::event::{tag, Answer, Event, Str};
use crate::pipeline::{Ack, EventBatch};

pub use status::Status;

/// `events`: what the daemon writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EventsMode {
    /// One document per log line (the classic dashboards).
    #[default]
    Lines,
    /// One document per DNS query; lines that are not part of a query stay
    /// line documents.
    Transactions,
    /// Both: every line, and every transaction.
    Both,
}

impl EventsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EventsMode::Lines => "lines",
            EventsMode::Transactions => "transactions",
            EventsMode::Both => "both",
        }
    }

    /// Whether the correlation stage runs.
    pub fn correlates(self) -> bool {
        self != EventsMode::Lines
    }
}

/// `[transactions]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TxnConfig {
    /// How long a transaction with an answer waits for more records of it.
    pub settle_ms: u64,
    /// How long a transaction without an answer waits for a line.
    pub idle_timeout_ms: u64,
    /// At most this many open transactions; past it the oldest is emitted early.
    pub max_open: usize,
    /// At most about this many bytes held by open transactions.
    pub max_open_bytes: usize,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            settle_ms: 250,
            idle_timeout_ms: 5000,
            max_open: 50_000,
            max_open_bytes: 64 << 20,
        }
    }
}

impl TxnConfig {
    /// What the types alone do not check: (key, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_open == 0 {
            return Err(("transactions.max_open", "must be at least 1".into()));
        }
        if self.max_open_bytes < 64 << 10 {
            return Err((
                "transactions.max_open_bytes",
                "must be at least 65536".into(),
            ));
        }
        if self.idle_timeout_ms == 0 || self.idle_timeout_ms > 600_000 {
            return Err((
                "transactions.idle_timeout_ms",
                "must be between 1 and 600000".into(),
            ));
        }
        if self.settle_ms > self.idle_timeout_ms {
            return Err((
                "transactions.settle_ms",
                "must not exceed transactions.idle_timeout_ms".into(),
            ));
        }
        Ok(())
    }
}

/// The acknowledgements of one input batch, shared by its lines. When the
/// last holder lets go it fires them, unless some holder's event was not
/// delivered (then they are dropped: the input reads the lines again).
pub struct AckShare {
    acks: Mutex<Vec<Ack>>,
    failed: AtomicBool,
}

impl AckShare {
    pub fn new(acks: Vec<Ack>) -> Arc<AckShare> {
        Arc::new(AckShare {
            acks: Mutex::new(acks),
            failed: AtomicBool::new(false),
        })
    }

    /// An [`Ack`] for one emitted batch holding lines of this input batch.
    pub fn part(self: &Arc<Self>) -> Ack {
        let mut part = Part {
            share: self.clone(),
            delivered: false,
        };
        Ack::new(move || {
            part.delivered = true;
            drop(part);
        })
    }
}

impl Drop for AckShare {
    fn drop(&mut self) {
        let acks = std::mem::take(self.acks.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !self.failed.load(Ordering::SeqCst) {
            for a in acks {
                a.done();
            }
        }
    }
}

struct Part {
    share: Arc<AckShare>,
    delivered: bool,
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.delivered {
            self.share.failed.store(true, Ordering::SeqCst);
        }
    }
}

type Token = Arc<AckShare>;

/// Why a transaction was closed (the `reason` label of
/// `dnsenrich_transactions_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its answer was complete (settle time after the last answer line).
    Answered,
    /// No line for the idle timeout, without an answer.
    Timeout,
    /// Emitted early at the open-transaction bound.
    Evicted,
    /// dnsmasq restarted (`started, version`) or the same key was reused.
    Restart,
    /// The daemon stopped.
    Stop,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Answered => "answered",
            CloseReason::Timeout => "timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::Restart => "restart",
            CloseReason::Stop => "stop",
        }
    }
    const ALL: [CloseReason; 5] = [
        CloseReason::Answered,
        CloseReason::Timeout,
        CloseReason::Evicted,
        CloseReason::Restart,
        CloseReason::Stop,
    ];
}

/// What the correlator counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxnStats {
    pub lines_in: u64,
    /// Line events emitted (not part of a query, late, or `both` copies).
    pub line_events: u64,
    pub transactions: u64,
    pub late_lines: u64,
    pub orphans: u64,
    /// Transactions closed, by [`CloseReason`] in [`CloseReason::ALL`] order.
    pub closed: [u64; 5],
    /// Emitted transactions by status code.
    pub by_status: [u64; Status::COUNT],
}

impl TxnStats {
    pub fn add(&mut self, o: &TxnStats) {
        self.lines_in += o.lines_in;
        self.line_events += o.line_events;
        self.transactions += o.transactions;
        self.late_lines += o.late_lines;
        self.orphans += o.orphans;
        for i in 0..self.closed.len() {
            self.closed[i] += o.closed[i];
        }
        for i in 0..self.by_status.len() {
            self.by_status[i] += o.by_status[i];
        }
    }

    pub fn closed_by(&self, r: CloseReason) -> u64 {
        self.closed[r as usize]
    }
}

/// What a line is to a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Query,
    Forward,
    /// An answer line of the given kind.
    Answer(AnswerKind),
    /// `reply error is X`, `config error is X`: an answer without a name.
    Error,
    /// `reply query is duplicate`.
    Duplicate,
    /// DNSSEC sub-queries and results, truncation, ipset/nftset adds: they
    /// join a transaction when one matches and are line events otherwise.
    Aux,
    /// `started, version`: serials restart.
    Started,
    /// Not part of a query.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerKind {
    Reply,
    Cache,
    Stale,
    Blocked,
}

fn classify(ev: &Event) -> Class {
    match ev.event.action {
        Some("dns-query" | "dns-query-auth") => Class::Query,
        Some("dns-forward") => Class::Forward,
        // A truncated reply goes to the client as it is (TC set); the
        // client asks again over TCP, which is a transaction of its own.
        Some("dns-reply" | "dns-truncated") => Class::Answer(AnswerKind::Reply),
        Some("dns-reply-error") => Class::Error,
        Some("dns-config") if ev.dns.question.name.is_none() => Class::Error,
        Some(
            "dns-cached" | "dns-config" | "dns-hosts-file" | "dns-dhcp" | "dns-auth" | "dns-local",
        ) => Class::Answer(AnswerKind::Cache),
        Some("dns-cached-stale") => Class::Answer(AnswerKind::Stale),
        Some("dns-blocked") => Class::Answer(AnswerKind::Blocked),
        Some("dns-duplicate") => Class::Duplicate,
        Some(
            "dnssec-query" | "dnssec-retry" | "dnssec-dnskey" | "dnssec-ds" | "dnssec-status"
            | "dnssec-validation" | "ipset-add" | "nftset-add",
        ) => Class::Aux,
        Some("dnsmasq-started") => Class::Started,
        _ => Class::Other,
    }
}

/// Where a line came from: the syslog host, else the tailed file, else the
/// sender's address (without its port).
fn source_of(ev: &Event) -> Str {
    if let Some(h) = ev.host.hostname.as_ref().or(ev.observer.hostname.as_ref()) {
        return h.clone();
    }
    if let Some(p) = &ev.log.file.path {
        return Str::from(&**p);
    }
    if let Some(a) = &ev.log.source.address {
        if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
            return Str::from(sa.ip().to_string());
        }
        return a.clone();
    }
    Str::default()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Serial { src: Str, pid: u32, serial: u64 },
    Name { src: Str, pid: u32, name: Str },
}

/// One transaction being built.
struct Open {
    /// The transaction event; the query line's event when there was one.
    ev: Event,
    keys: SmallVec<[Key; 1]>,
    src: Str,
    pid: u32,
    has_query: bool,
    answered: bool,
    forwards: u32,
    lines: u32,
    bytes: usize,
    deadline: Instant,
    tokens: SmallVec<[Token; 1]>,
    /// A CNAME answer waiting for its target (the next record's owner).
    pending_cname: Option<usize>,
    /// The owner of the last record that joined.
    last_owner: Option<Str>,
    seen: Seen,
}

#[derive(Default, Clone, Copy)]
struct Seen {
    reply: bool,
    cache: bool,
    stale: bool,
    duplicate: bool,
    dnssec_retry: bool,
    error: bool,
    blocked: Option<Status>,
}

/// The fixed part of an open transaction's footprint: the struct, its event,
/// and its entries in the three indexes.
/// Allocator rounding and the B-tree and hash-table slots are included as
/// measured by `tests/transaction_memory.rs`.
const OPEN_BASE_BYTES: usize = std::mem::size_of::<Open>()
    + 16
    + 2 * (std::mem::size_of::<Key>() + std::mem::size_of::<SmallVec<[u64; 1]>>() + 8)
    + 3 * 32;

impl Open {
    /// An estimate of the bytes this transaction holds: the fixed part plus
    /// the heap text of the line messages and answers.
    fn weigh(&self) -> usize {
        let ev = &self.ev;
        let s = |x: &Option<Str>| heap_len(x.as_deref());
        let q = &ev.dns.question;
        let mut n = OPEN_BASE_BYTES
            + ev.message.capacity()
            + ev.event.original.capacity()
            + s(&q.name)
            + s(&q.type_)
            + s(&q.registered_domain)
            + s(&q.subdomain)
            + s(&q.top_level_domain)
            + s(&ev.host.name)
            + s(&ev.host.hostname)
            + s(&ev.observer.hostname)
            + s(&ev.process.name)
            + s(&ev.log.source.address)
            + s(&ev.dnsmasq.answer_type);
        if ev.dns.answers.spilled() {
            n += ev.dns.answers.capacity() * std::mem::size_of::<Answer>();
        }
        n += ev
            .dns
            .answers
            .iter()
            .map(|a| s(&a.name) + s(&a.type_) + s(&a.data))
            .sum::<usize>();
        if ev.dns.resolved_ip.spilled() {
            n += ev.dns.resolved_ip.capacity() * std::mem::size_of::<IpAddr>();
        }
        if ev.related.ip.spilled() {
            n += ev.related.ip.capacity() * std::mem::size_of::<IpAddr>();
        }
        if ev.related.hosts.spilled() {
            n += ev.related.hosts.capacity() * std::mem::size_of::<Str>();
        }
        n += ev
            .related
            .hosts
            .iter()
            .map(|h| heap_len(Some(h)))
            .sum::<usize>();
        n += ev.labels.0.capacity() * std::mem::size_of::<(&str, Str)>();
        if let Some(sl) = &ev.log.syslog {
            let sd: usize = sl
                .structured_data
                .iter()
                .map(|e| {
                    48 + e.id.capacity()
                        + e.params
                            .iter()
                            .map(|(k, v)| 48 + k.capacity() + v.capacity())
                            .sum::<usize>()
                })
                .sum();
            n += std::mem::size_of_val(&**sl)
                + s(&sl.appname)
                + s(&sl.hostname)
                + s(&sl.procid)
                + sd;
        }
        // The keys are stored twice (index and the transaction's own list).
        n += self
            .keys
            .iter()
            .map(|k| match k {
                Key::Serial { src, .. } => 2 * heap_len(Some(src)),
                Key::Name { src, name, .. } => 2 * (heap_len(Some(src)) + heap_len(Some(name))),
            })
            .sum::<usize>();
        n
    }
}

fn key_hash(k: &Key) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x0074_786e).hash_one(k)
}

/// Heap bytes of a [`Str`] (inline up to 24 bytes).
fn heap_len(s: Option<&str>) -> usize {
    match s {
        Some(s) if s.len() > 24 => s.len(),
        _ => 0,
    }
}

/// The correlator's tables hash with foldhash (faster than the default
/// SipHash; its seed is random per process, so names in the log cannot be
/// chosen to collide).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// How many closed keys are remembered to tell a late line from an orphan.
const RECENTLY_CLOSED: usize = 16_384;

/// The correlator: lines in (in input order), events out.
pub struct Correlator {
    mode: EventsMode,
    cfg: TxnConfig,
    settle: Duration,
    idle: Duration,
    next_id: u64,
    /// Boxed: a B-tree node holds eleven values, and an open transaction
    /// is a couple of kilobytes.
    open: BTreeMap<u64, Box<Open>>,
    index: FastMap<Key, SmallVec<[u64; 1]>>,
    deadlines: BTreeSet<(Instant, u64)>,
    open_bytes: usize,
    /// Hashes of the keys closed last (a hash, not the key: 16 bytes each).
    recently_closed: FastSet<u64>,
    closed_order: VecDeque<u64>,
    /// Per (source, pid): the transaction the previous line joined, and
    /// whether that line was a `<CNAME>` record (the next is its target).
    last_line: FastMap<(Str, u32), (u64, bool)>,
    out: Vec<Event>,
    out_tokens: Vec<Token>,
    out_seen: FastSet<usize>,
    pub stats: TxnStats,
}

impl Correlator {
    pub fn new(mode: EventsMode, cfg: TxnConfig) -> Correlator {
        Correlator {
            mode,
            settle: Duration::from_millis(cfg.settle_ms),
            idle: Duration::from_millis(cfg.idle_timeout_ms),
            cfg,
            next_id: 0,
            open: BTreeMap::new(),
            index: FastMap::default(),
            deadlines: BTreeSet::new(),
            open_bytes: 0,
            recently_closed: FastSet::default(),
            closed_order: VecDeque::new(),
            last_line: FastMap::default(),
            out: Vec::new(),
            out_tokens: Vec::new(),
            out_seen: FastSet::default(),
            stats: TxnStats::default(),
        }
    }

    /// Open transactions now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The estimated bytes open transactions hold now.
    pub fn open_bytes(&self) -> usize {
        self.open_bytes
    }

    /// The events ready to go, and the acknowledgements they carry (one per
    /// input batch with lines among them).
    pub fn take_output(&mut self) -> (Vec<Event>, Vec<Ack>) {
        self.out_seen.clear();
        let acks = self.out_tokens.drain(..).map(|t| t.part()).collect();
        (std::mem::take(&mut self.out), acks)
    }

    /// Whether events are waiting in the output.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    fn emit(&mut self, ev: Event, tokens: &[Token]) {
        for t in tokens {
            let p = Arc::as_ptr(t) as usize;
            if self.out_seen.insert(p) {
                self.out_tokens.push(t.clone());
            }
        }
        self.out.push(ev);
    }

    fn emit_line(&mut self, mut ev: Event, token: Option<Token>, late: bool) {
        if late {
            ev.tag(tag::TXN_LATE);
            self.stats.late_lines += 1;
        }
        self.stats.line_events += 1;
        ev.scratch = Default::default();
        self.emit(ev, token.as_slice());
    }

    /// Takes one line event, received at `now`.
    pub fn push(&mut self, ev: Event, token: Option<Token>, now: Instant) {
        self.stats.lines_in += 1;
        let class = classify(&ev);
        let (ev, token) = if self.mode == EventsMode::Both {
            let mut copy = ev.clone();
            copy.scratch = Default::default();
            self.stats.line_events += 1;
            self.out.push(copy);
            (ev, token)
        } else {
            (ev, token)
        };
        // In `both` mode the copy above is the line event; a line that is
        // not part of a query leaves with it.
        let as_line = |me: &mut Self, ev: Event, token: Option<Token>, late: bool| {
            if me.mode == EventsMode::Both {
                if late {
                    me.stats.late_lines += 1;
                }
                if let Some(t) = token {
                    me.emit_tokens_only(&[t]);
                }
            } else {
                me.emit_line(ev, token, late);
            }
        };
        let src = source_of(&ev);
        let pid = ev.process.pid.unwrap_or(0);
        match class {
            Class::Other => as_line(self, ev, token, false),
            Class::Started => {
                let ids: Vec<u64> = self
                    .open
                    .iter()
                    .filter(|(_, o)| o.src == src)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.close(id, CloseReason::Restart);
                }
                self.last_line.retain(|(s, _), _| *s != src);
                as_line(self, ev, token, false)
            }
            Class::Query => self.open_query(ev, token, src, pid, now),
            _ => {
                let found = self.find(&ev, class, &src, pid);
                match found {
                    Found::Open(id) => {
                        self.join(id, ev, class, token, now);
                        if class == Class::Duplicate {
                            self.copy_sibling_answer(id);
                        }
                    }
                    Found::Late => as_line(self, ev, token, true),
                    Found::None if class == Class::Aux => {
                        self.last_line.remove(&(src, pid));
                        as_line(self, ev, token, false)
                    }
                    Found::None => {
                        self.stats.orphans += 1;
                        let id = self.create(ev, token, src.clone(), pid, false, now);
                        if let Some(o) = self.open.get_mut(&id) {
                            o.ev.tag(tag::TXN_INCOMPLETE);
                        }
                        // The orphan's line joins through the common path.
                        self.rejoin_first_line(id, class, now);
                        self.enforce_bounds();
                    }
                }
            }
        }
    }

    /// In `both` mode a line already left as its copy; what it still owes is
    /// its acknowledgement, which the next batch carries.
    fn emit_tokens_only(&mut self, tokens: &[Token]) {
        for t in tokens {
            let p = Arc::as_ptr(t) as usize;
            if self.out_seen.insert(p) {
                self.out_tokens.push(t.clone());
            }
        }
    }

    fn key_of(ev: &Event, src: &Str, pid: u32) -> Option<Key> {
        if let Some(serial) = ev.dnsmasq.serial {
            return Some(Key::Serial {
                src: src.clone(),
                pid,
                serial,
            });
        }
        let name = ev.dns.question.name.clone()?;
        Some(Key::Name {
            src: src.clone(),
            pid,
            name,
        })
    }

    fn open_query(&mut self, ev: Event, token: Option<Token>, src: Str, pid: u32, now: Instant) {
        let key = Self::key_of(&ev, &src, pid);
        if let Some(k @ Key::Serial { .. }) = &key {
            // A serial seen again: dnsmasq restarted without a start line in
            // this log (or a TCP child reused a number): the old one is done.
            let ids: Vec<u64> = self.index.get(k).map(|v| v.to_vec()).unwrap_or_default();
            for id in ids {
                self.close(id, CloseReason::Restart);
            }
        }
        self.last_line.remove(&(src.clone(), pid));
        self.create(ev, token, src, pid, true, now);
        self.enforce_bounds();
    }

    /// Opens a transaction from its first line.
    fn create(
        &mut self,
        mut ev: Event,
        token: Option<Token>,
        src: Str,
        pid: u32,
        has_query: bool,
        now: Instant,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut keys = SmallVec::new();
        if let Some(k) = Self::key_of(&ev, &src, pid) {
            self.index.entry(k.clone()).or_default().push(id);
            keys.push(k);
        }
        ev.event.start = ev.timestamp;
        ev.event.end = ev.timestamp;
        ev.destination = Default::default();
        let deadline = now + self.idle;
        let mut o = Open {
            ev,
            keys,
            src,
            pid,
            has_query,
            answered: false,
            forwards: 0,
            lines: 1,
            bytes: 0,
            deadline,
            tokens: token.into_iter().collect(),
            pending_cname: None,
            last_owner: None,
            seen: Seen::default(),
        };
        o.bytes = o.weigh();
        self.open_bytes += o.bytes;
        self.deadlines.insert((deadline, id));
        self.open.insert(id, Box::new(o));
        id
    }

    /// An orphan was created from a non-query line: read that line's content
    /// into the transaction as if it had joined.
    fn rejoin_first_line(&mut self, id: u64, class: Class, now: Instant) {
        let Some(o) = self.open.get_mut(&id) else {
            return;
        };
        let line = o.ev.clone();
        o.ev.dns.answers.clear();
        o.ev.dns.resolved_ip.clear();
        o.ev.server = Default::default();
        o.lines = 0;
        o.ev.message.clear();
        self.join(id, line, class, None, now);
    }

    fn find(&self, ev: &Event, class: Class, src: &Str, pid: u32) -> Found {
        let open_ids =
            |k: &Key| -> SmallVec<[u64; 1]> { self.index.get(k).cloned().unwrap_or_default() };
        if let Some(serial) = ev.dnsmasq.serial {
            let k = Key::Serial {
                src: src.clone(),
                pid,
                serial,
            };
            return match open_ids(&k).last() {
                Some(id) => Found::Open(*id),
                None if self.recently_closed.contains(&key_hash(&k)) => Found::Late,
                None => Found::None,
            };
        }
        // Without a serial: the order of lines.
        let prev = self.last_line.get(&(src.clone(), pid)).copied();
        if let (Class::Answer(_), Some((id, true))) = (class, prev) {
            if self.open.contains_key(&id) {
                return Found::Open(id);
            }
        }
        let name = match &ev.dns.question.name {
            Some(n) => n.clone(),
            None => {
                // `reply error is X`, `reply is truncated` and lines for a
                // `<name unprintable>` name nothing: the newest unanswered
                // query of this resolver that is at that step (forwarded
                // for an answer, not yet forwarded for a forward).
                if class == Class::Aux {
                    return Found::None;
                }
                let hit = self.open.iter().rev().take(64).find(|(_, o)| {
                    o.src == *src
                        && o.pid == pid
                        && !o.answered
                        && if class == Class::Forward {
                            o.forwards == 0 && o.ev.dns.question.name.is_none()
                        } else {
                            o.forwards > 0
                        }
                });
                return match hit {
                    Some((id, _)) => Found::Open(*id),
                    None => Found::None,
                };
            }
        };
        let record = record_type(ev);
        if let (Class::Answer(_), Some((id, false))) = (class, prev) {
            if let Some(o) = self.open.get(&id) {
                if o.last_owner.as_deref() == Some(name.as_str()) && fits(o, record) {
                    return Found::Open(id);
                }
            }
        }
        let k = Key::Name {
            src: src.clone(),
            pid,
            name,
        };
        let ids = open_ids(&k);
        let pick = match class {
            Class::Answer(_) | Class::Error | Class::Duplicate => ids
                .iter()
                .copied()
                .find(|id| {
                    self.open
                        .get(id)
                        .is_some_and(|o| !o.answered && fits(o, record))
                })
                .or_else(|| {
                    ids.iter()
                        .copied()
                        .find(|id| self.open.get(id).is_some_and(|o| !o.answered))
                }),
            Class::Forward => ids
                .iter()
                .copied()
                .find(|id| {
                    self.open
                        .get(id)
                        .is_some_and(|o| o.forwards == 0 && !o.answered)
                })
                // Else the one the previous line answered: a stale answer
                // is refreshed upstream right after it.
                .or_else(|| prev.map(|(id, _)| id).filter(|id| ids.contains(id)))
                .or_else(|| ids.first().copied()),
            _ => ids.last().copied(),
        };
        match pick {
            Some(id) => Found::Open(id),
            None if self.recently_closed.contains(&key_hash(&k)) => Found::Late,
            None if !ids.is_empty() => Found::Open(ids[0]),
            None => Found::None,
        }
    }

    /// A line joins the open transaction `id`.
    fn join(&mut self, id: u64, line: Event, class: Class, token: Option<Token>, now: Instant) {
        let settle = self.settle;
        let idle = self.idle;
        let Some(o) = self.open.get_mut(&id) else {
            return;
        };
        let before = o.bytes;
        if let Some(t) = token {
            if !o.tokens.iter().any(|x| Arc::ptr_eq(x, &t)) {
                o.tokens.push(t);
            }
        }
        o.lines += 1;
        if !o.ev.message.is_empty() {
            o.ev.message.push('\n');
        }
        o.ev.message.push_str(&line.message);
        if line.timestamp.is_some() {
            o.ev.event.end = line.timestamp;
            if o.ev.event.start.is_none() {
                o.ev.event.start = line.timestamp;
                o.ev.timestamp = line.timestamp;
            }
        }
        let mut cname = false;
        match class {
            Class::Forward => {
                o.forwards += 1;
                if !line.server.is_empty() {
                    o.ev.server = line.server.clone();
                    if let Some(ip) = line.server.ip {
                        o.ev.related.add_ip(ip);
                    }
                }
                if o.ev.dns.question.name.is_none() {
                    o.ev.dns.question = line.dns.question.clone();
                }
            }
            Class::Answer(kind) => {
                o.answered = true;
                match kind {
                    AnswerKind::Reply => o.seen.reply = true,
                    AnswerKind::Cache => o.seen.cache = true,
                    AnswerKind::Stale => o.seen.stale = true,
                    AnswerKind::Blocked => {
                        o.seen.blocked = Some(Status::of_block(line.rule.name.as_deref()));
                    }
                }
                if !line.rule.is_empty() {
                    o.ev.rule = line.rule.clone();
                }
                cname = add_records(o, &line);
                if line.event.action == Some("dns-truncated")
                    && !o.ev.dns.header_flags.contains(&"TC")
                {
                    o.ev.dns.header_flags.push("TC");
                }
            }
            Class::Error => {
                o.answered = true;
                o.seen.error = true;
            }
            Class::Duplicate => {
                o.answered = true;
                o.seen.duplicate = true;
            }
            Class::Aux => {
                if line.event.action == Some("dnssec-retry") {
                    o.seen.dnssec_retry = true;
                }
            }
            Class::Query | Class::Started | Class::Other => {}
        }
        if line.dns.response_code.is_some() && class != Class::Aux {
            o.ev.dns.response_code = line.dns.response_code.clone();
        }
        for f in &line.dns.header_flags {
            if !o.ev.dns.header_flags.contains(f) {
                o.ev.dns.header_flags.push(f);
            }
        }
        for (k, v) in &line.labels.0 {
            o.ev.labels.set(k, v);
        }
        if o.ev.client.is_empty() && !line.client.is_empty() {
            o.ev.client = line.client.clone();
        }
        if o.ev.dnsmasq.answer_type.is_none() {
            if let Some(t) = &line.dnsmasq.answer_type {
                if t != "CNAME" {
                    o.ev.dnsmasq.answer_type = Some(t.clone());
                }
            }
        }
        let deadline = now + if o.answered { settle } else { idle };
        let old = o.deadline;
        o.deadline = deadline;
        o.bytes = o.weigh();
        let after = o.bytes;
        let (src, pid) = (o.src.clone(), o.pid);
        self.open_bytes = self.open_bytes + after - before;
        self.deadlines.remove(&(old, id));
        self.deadlines.insert((deadline, id));
        let answer_line = matches!(class, Class::Answer(_));
        if answer_line {
            self.last_line.insert((src, pid), (id, cname));
        } else {
            self.last_line.remove(&(src, pid));
        }
        self.enforce_bounds();
    }

    /// `reply query is duplicate`: this client got the answer of the query
    /// in flight for the same name and type, which is open (settling) or
    /// was just emitted; copy it from an open one.
    fn copy_sibling_answer(&mut self, id: u64) {
        let Some(o) = self.open.get(&id) else { return };
        let (src, pid) = (o.src.clone(), o.pid);
        let q = o.ev.dns.question.clone();
        let sibling = self
            .open
            .iter()
            .rev()
            .find(|(sid, s)| {
                **sid != id
                    && s.src == src
                    && s.pid == pid
                    && s.answered
                    && !s.seen.duplicate
                    && s.ev.dns.question.name == q.name
                    && s.ev.dns.question.type_ == q.type_
            })
            .map(|(_, s)| {
                (
                    s.ev.dns.answers.clone(),
                    s.ev.dns.resolved_ip.clone(),
                    s.ev.dns.response_code.clone(),
                )
            });
        if let (Some((answers, ips, rcode)), Some(o)) = (sibling, self.open.get_mut(&id)) {
            o.ev.dns.answers = answers;
            o.ev.dns.resolved_ip = ips;
            o.ev.dns.response_code = rcode;
        }
    }

    /// Closes what is due at `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            let answered = self.open.get(&id).is_some_and(|o| o.answered);
            self.close(
                id,
                if answered {
                    CloseReason::Answered
                } else {
                    CloseReason::Timeout
                },
            );
        }
    }

    /// The next deadline, if any transaction is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Emits every open transaction (at shutdown).
    pub fn flush(&mut self) {
        while let Some((&id, _)) = self.open.first_key_value() {
            self.close(id, CloseReason::Stop);
        }
    }

    fn enforce_bounds(&mut self) {
        while self.open.len() > self.cfg.max_open
            || (self.open_bytes > self.cfg.max_open_bytes && self.open.len() > 1)
        {
            let Some((&id, _)) = self.open.first_key_value() else {
                break;
            };
            self.close(id, CloseReason::Evicted);
        }
    }

    fn close(&mut self, id: u64, reason: CloseReason) {
        let Some(mut o) = self.open.remove(&id) else {
            return;
        };
        self.open_bytes -= o.bytes;
        self.deadlines.remove(&(o.deadline, id));
        for k in &o.keys {
            if let Some(v) = self.index.get_mut(k) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.index.remove(k);
                }
            }
            let h = key_hash(k);
            if self.recently_closed.insert(h) {
                self.closed_order.push_back(h);
                if self.closed_order.len() > RECENTLY_CLOSED {
                    if let Some(old) = self.closed_order.pop_front() {
                        self.recently_closed.remove(&old);
                    }
                }
            }
        }
        let line_key = (o.src.clone(), o.pid);
        if self
            .last_line
            .get(&line_key)
            .is_some_and(|(lid, _)| *lid == id)
        {
            self.last_line.remove(&line_key);
        }
        self.stats.closed[reason as usize] += 1;
        if reason == CloseReason::Evicted {
            o.ev.tag(tag::TXN_EVICTED);
        }
        // Only when other queries for the key are still waiting (this one
        // has left the index already).
        let fan_out = o.has_query
            && o.answered
            && o.forwards > 0
            && o.keys.first().is_some_and(|k| {
                matches!(k, Key::Name { .. }) && self.index.get(k).is_some_and(|v| !v.is_empty())
            });
        let answer = fan_out.then(|| {
            (
                o.ev.dns.answers.clone(),
                o.ev.dns.resolved_ip.clone(),
                o.ev.dns.response_code.clone(),
                o.ev.dns.question.type_.clone(),
                o.keys[0].clone(),
            )
        });
        self.finish_and_emit(*o);
        // Two clients, one upstream reply: the queries for the same name and
        // type that were never forwarded themselves get the answer.
        if let Some((answers, ips, rcode, qtype, key @ Key::Name { .. })) = answer {
            let waiting: Vec<u64> = self
                .index
                .get(&key)
                .map(|v| v.to_vec())
                .unwrap_or_default()
                .into_iter()
                .filter(|w| {
                    self.open.get(w).is_some_and(|x| {
                        x.has_query
                            && x.forwards == 0
                            && !x.answered
                            && x.ev.dns.question.type_ == qtype
                    })
                })
                .collect();
            for w in waiting {
                if let Some(x) = self.open.get_mut(&w) {
                    x.ev.dns.answers = answers.clone();
                    x.ev.dns.resolved_ip = ips.clone();
                    x.ev.dns.response_code = rcode.clone();
                    x.answered = true;
                    x.seen.duplicate = true;
                }
                self.close(w, CloseReason::Answered);
            }
        }
    }

    fn finish_and_emit(&mut self, mut o: Open) {
        let status = Status::decide(&o.seen, o.forwards, &o.ev.dns.resolved_ip, o.answered);
        let ev = &mut o.ev;
        if !o.has_query && !ev.tags.contains(&tag::TXN_INCOMPLETE) {
            ev.tag(tag::TXN_INCOMPLETE);
        }
        // A CNAME whose target never came: ECS wants data in every answer.
        ev.dns.answers.retain(|a| a.data.is_some());
        ev.dns.type_ = Some(if o.answered { "answer" } else { "query" });
        ev.event.kind = Some("event");
        ev.event.action = Some(status.name());
        ev.event.type_.clear();
        ev.event.type_.push("protocol");
        if status.is_blocked() {
            ev.event.type_.push("denied");
        } else if o.answered {
            ev.event.type_.push("allowed");
        }
        ev.event.outcome = Some(if !o.answered {
            "unknown"
        } else if o.seen.error {
            "failure"
        } else {
            match ev.dns.response_code.as_deref() {
                Some("NOERROR") | None => "success",
                Some(_) => "failure",
            }
        });
        if !o.answered {
            ev.tag(tag::TXN_NO_REPLY);
        }
        ev.dnsmasq.status = Some(status.name());
        ev.dnsmasq.status_code = Some(status.code());
        ev.dnsmasq.lines = Some(o.lines);
        ev.dnsmasq.forwards = (o.forwards > 0).then_some(o.forwards);
        ev.scratch = Default::default();
        ev.source = ev.client.clone();
        for i in 0..ev.dns.answers.len() {
            if let Some(n) = ev.dns.answers[i].name.clone() {
                if n != "." {
                    ev.related.add_host(&n);
                }
            }
        }
        for i in 0..ev.dns.resolved_ip.len() {
            let ip = ev.dns.resolved_ip[i];
            ev.related.add_ip(ip);
        }
        for ip in [ev.client.ip, ev.server.ip].into_iter().flatten() {
            ev.related.add_ip(ip);
        }
        self.stats.transactions += 1;
        self.stats.by_status[status.code() as usize] += 1;
        let tokens = std::mem::take(&mut o.tokens);
        self.emit(o.ev, &tokens);
    }
}

/// A correlator dropped with transactions still open (the stage stopped
/// before it could emit them): their lines were not delivered, so their
/// input batches must not be acknowledged.
impl Drop for Correlator {
    fn drop(&mut self) {
        let held = self.open.values().flat_map(|o| o.tokens.iter());
        for t in held.chain(self.out_tokens.iter()) {
            t.failed.store(true, Ordering::SeqCst);
        }
    }
}

enum Found {
    Open(u64),
    Late,
    None,
}

/// The record type a line answers with, if it says.
fn record_type(ev: &Event) -> Option<&str> {
    if let Some(a) = ev.dns.answers.first() {
        return a.type_.as_deref();
    }
    // `NODATA-IPv4` / `NODATA-IPv6` name the type that has no data.
    let m = ev.message.as_str();
    if m.ends_with("NODATA-IPv4") {
        return Some("A");
    }
    if m.ends_with("NODATA-IPv6") {
        return Some("AAAA");
    }
    None
}

/// Whether a record of `record` type fits the question of `o`.
fn fits(o: &Open, record: Option<&str>) -> bool {
    match (o.ev.dns.question.type_.as_deref(), record) {
        (Some(q), Some(r @ ("A" | "AAAA"))) => q == r || q == "ANY",
        _ => true,
    }
}

/// Adds a line's records to the transaction, in order; a `<CNAME>` record
/// gets the next record's owner as its data. Returns whether the line was a
/// `<CNAME>` record.
fn add_records(o: &mut Open, line: &Event) -> bool {
    let owner = line
        .scratch
        .dataless_owner
        .clone()
        .or_else(|| line.dns.answers.first().and_then(|a| a.name.clone()))
        .or_else(|| line.dns.question.name.clone());
    if let (Some(i), Some(n)) = (o.pending_cname.take(), owner.as_ref()) {
        if let Some(a) = o.ev.dns.answers.get_mut(i) {
            a.data = Some(n.clone());
        }
    }
    let is_cname = line.dnsmasq.answer_type.as_deref() == Some("CNAME");
    if is_cname {
        o.ev.dns.answers.push(Answer {
            name: owner.clone(),
            type_: Some(Str::from("CNAME")),
            data: None,
        });
        o.pending_cname = Some(o.ev.dns.answers.len() - 1);
    }
    for a in &line.dns.answers {
        if !o.ev.dns.answers.contains(a) {
            o.ev.dns.answers.push(a.clone());
        }
    }
    for ip in &line.dns.resolved_ip {
        if !o.ev.dns.resolved_ip.contains(ip) {
            o.ev.dns.resolved_ip.push(*ip);
        }
    }
    o.last_owner = owner;
    is_cname
}

/// Runs the correlation stage on its own thread: batches in from the parse
/// workers (restored to input order by their `seq`), transactions out.
/// Returns its counters when `rx` is closed, after emitting every open
/// transaction.
pub fn spawn_correlator(
    mode: EventsMode,
    cfg: TxnConfig,
    rx: flume::Receiver<EventBatch>,
    tx: flume::Sender<EventBatch>,
) -> std::thread::JoinHandle<TxnStats> {
    describe_metrics();
    std::thread::Builder::new()
        .name("correlate".into())
        .spawn(move || {
            let tick = Duration::from_millis(cfg.settle_ms.clamp(10, 100));
            let mut c = Correlator::new(mode, cfg);
            let mut order = Reorder::default();
            let mut reported = TxnStats::default();
            let mut last_tick = Instant::now();
            loop {
                let wait = c
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
                    .unwrap_or(tick)
                    .min(tick);
                match rx.recv_timeout(wait) {
                    Ok(batch) => {
                        for b in order.put(batch) {
                            feed(&mut c, b);
                        }
                    }
                    Err(flume::RecvTimeoutError::Timeout) => {}
                    Err(flume::RecvTimeoutError::Disconnected) => break,
                }
                let now = Instant::now();
                c.expire(now);
                if c.has_output() || !c.out_tokens.is_empty() {
                    let (events, acks) = c.take_output();
                    if tx
                        .send(EventBatch {
                            events,
                            acks,
                            seq: 0,
                        })
                        .is_err()
                    {
                        return std::mem::take(&mut c.stats);
                    }
                }
                if now.duration_since(last_tick) >= Duration::from_millis(500) {
                    report_metrics(&c, &mut reported);
                    last_tick = now;
                }
            }
            for b in order.rest() {
                feed(&mut c, b);
            }
            c.flush();
            let (events, acks) = c.take_output();
            if !events.is_empty() || !acks.is_empty() {
                let _ = tx.send(EventBatch {
                    events,
                    acks,
                    seq: 0,
                });
            }
            report_metrics(&c, &mut reported);
            std::mem::take(&mut c.stats)
        })
        .expect("spawning a thread at start-up")
}

fn feed(c: &mut Correlator, b: EventBatch) {
    let share = AckShare::new(b.acks);
    let now = Instant::now();
    for ev in b.events {
        c.push(ev, Some(share.clone()), now);
    }
}

/// Puts batches from several parse workers back in input order.
#[derive(Default)]
struct Reorder {
    next: u64,
    held: BTreeMap<u64, EventBatch>,
}

/// Past this many batches held waiting for a missing one, the gap is skipped.
const REORDER_MAX: usize = 64;

impl Reorder {
    fn put(&mut self, b: EventBatch) -> Vec<EventBatch> {
        self.held.insert(b.seq, b);
        let mut ready = Vec::new();
        if self.held.len() > REORDER_MAX {
            if let Some((&first, _)) = self.held.first_key_value() {
                self.next = first;
            }
        }
        while let Some(b) = self.held.remove(&self.next) {
            self.next += 1;
            ready.push(b);
        }
        ready
    }

    fn rest(&mut self) -> Vec<EventBatch> {
        std::mem::take(&mut self.held).into_values().collect()
    }
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "dnsenrich_transactions_total",
        "Transactions emitted, by status (Pi-hole FTL's query status names)"
    );
    describe_counter!(
        "dnsenrich_transactions_closed_total",
        "Transactions closed, by reason: answered, timeout, evicted, restart, stop"
    );
    describe_counter!(
        "dnsenrich_transaction_late_lines_total",
        "Lines that arrived after their transaction was emitted (sent as line events)"
    );
    describe_counter!(
        "dnsenrich_transaction_orphans_total",
        "Transactions opened by a line without its query line"
    );
    describe_gauge!("dnsenrich_transactions_open", "Open transactions");
    describe_gauge!(
        "dnsenrich_transactions_open_bytes",
        "Estimated bytes held by open transactions"
    );
}

fn report_metrics(c: &Correlator, reported: &mut TxnStats) {
    let now = &c.stats;
    for s in Status::ALL {
        let i = s.code() as usize;
        let d = now.by_status[i] - reported.by_status[i];
        if d > 0 {
            metrics::counter!("dnsenrich_transactions_total", "status" => s.name()).increment(d);
        }
    }
    for r in CloseReason::ALL {
        let i = r as usize;
        let d = now.closed[i] - reported.closed[i];
        if d > 0 {
            metrics::counter!("dnsenrich_transactions_closed_total", "reason" => r.as_str())
                .increment(d);
        }
    }
    metrics::counter!("dnsenrich_transaction_late_lines_total")
        .increment(now.late_lines - reported.late_lines);
    metrics::counter!("dnsenrich_transaction_orphans_total")
        .increment(now.orphans - reported.orphans);
    metrics::gauge!("dnsenrich_transactions_open").set(c.open_count() as f64);
    metrics::gauge!("dnsenrich_transactions_open_bytes").set(c.open_bytes() as f64);
    *reported = now.clone();
}

/// Whether every address of an answer is the unspecified one (0.0.0.0, ::).
fn all_unspecified(ips: &[IpAddr]) -> bool {
    !ips.is_empty() && ips.iter().all(|ip| ip.is_unspecified())
}

#[cfg(test)]
mod tests;
