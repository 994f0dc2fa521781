//! One raw line in, one ECS [`Event`] out: size limit, UTF-8 check, syslog
//! header, grammar, and the derived fields (public-suffix split, `related.*`,
//! outcome). This is the whole parse stage; `dnsenrich parse` and the collector's
//! parse workers both call [`LineDecoder::decode`].
//!
//! No line is ever lost here: a line no rule matches still becomes an event
//! (`event.kind: pipeline_error`, `error.message`, `event.original` and the tag
//! [`tag::NO_MATCH`]); bad bytes are replaced and tagged; an over-long line is
//! cut and tagged. [`DecodeStats`] counts each case.
//!
//! Every event carries `ecs.version`, `event.created` (when the line was
//! received) and `message` (the text after the syslog header); `event.original`,
//! the whole raw line, only when the decoder keeps originals
//! ([`LineDecoder::keep_original`]) or the line could not be parsed.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use smallvec::SmallVec;

use crate::event::{tag, Answer, CodeName, Event, SdElement, Str, Syslog, ECS_VERSION};
use crate::grammar::{Constant, Field, GrammarSet, Matched};
use crate::syslog::{self, Format, Header, SyslogDecoder, Zone};

/// The default maximum line length, in bytes (matches the TCP frame limit).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// The name dnsmasq writes in place of a name with unprintable characters.
const NAME_UNPRINTABLE: &str = "<name unprintable>";

/// Counters kept by a decoder; added up across decoders for a summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecodeStats {
    pub lines: u64,
    pub parsed: u64,
    pub no_match: u64,
    pub empty: u64,
    pub invalid_utf8: u64,
    pub truncated: u64,
    pub header_invalid: u64,
}

impl DecodeStats {
    /// Adds another decoder's counters to these.
    pub fn add(&mut self, o: &DecodeStats) {
        self.lines += o.lines;
        self.parsed += o.parsed;
        self.no_match += o.no_match;
        self.empty += o.empty;
        self.invalid_utf8 += o.invalid_utf8;
        self.truncated += o.truncated;
        self.header_invalid += o.header_invalid;
    }

    /// Failures and repairs by reason, for the summary line.
    pub fn reasons(&self) -> [(&'static str, u64); 5] {
        [
            ("no_rule_matched", self.no_match),
            ("empty", self.empty),
            ("invalid_utf8", self.invalid_utf8),
            ("truncated", self.truncated),
            ("syslog_header_invalid", self.header_invalid),
        ]
    }
}

/// Turns raw lines into events. One per worker: it keeps a timestamp cache.
#[derive(Debug)]
pub struct LineDecoder {
    syslog: SyslogDecoder,
    grammars: Arc<GrammarSet>,
    max_line: usize,
    keep_original: bool,
    /// With an Elasticsearch data stream as output: its namespace.
    namespace: Option<&'static str>,
    queries: QueryContext,
    pub stats: DecodeStats,
    last_match: Option<Matched>,
}

impl LineDecoder {
    /// A decoder reading RFC 3164 stamps in `zone`, cutting lines at `max_line` bytes.
    pub fn new(grammars: Arc<GrammarSet>, zone: Zone, max_line: usize) -> Self {
        LineDecoder {
            syslog: SyslogDecoder::new(zone),
            grammars,
            max_line: max_line.max(1),
            keep_original: false,
            namespace: None,
            queries: QueryContext::default(),
            stats: DecodeStats::default(),
            last_match: None,
        }
    }

    /// Whether every event keeps the raw line in `event.original` (Elastic
    /// integrations' `preserve_original_event`). Off by default: `message`
    /// already holds the searchable text, and the raw line roughly doubles a
    /// document. Lines that could not be parsed keep it regardless.
    pub fn keep_original(mut self, on: bool) -> Self {
        self.keep_original = on;
        self
    }

    /// Writes `data_stream.{type,dataset,namespace}` into every event, for an
    /// output that is a data stream of `namespace`: `logs`, the event's
    /// `event.dataset`, `namespace`.
    pub fn data_stream(mut self, namespace: Option<&'static str>) -> Self {
        self.namespace = namespace;
        self
    }

    /// Decodes one line (without its line terminator; a trailing `\r` is dropped).
    pub fn decode(&mut self, raw: &[u8]) -> Event {
        self.decode_at(raw, false, Utc::now())
    }

    /// Decodes one line that the framing layer may already have cut
    /// (`truncated`), as if received at `now`.
    pub fn decode_at(&mut self, raw: &[u8], truncated: bool, now: DateTime<Utc>) -> Event {
        let mut ev = self.decode_line(raw, truncated, now);
        if let Some(ns) = self.namespace {
            ev.set_data_stream(ns);
        }
        ev
    }

    fn decode_line(&mut self, raw: &[u8], truncated: bool, now: DateTime<Utc>) -> Event {
        self.stats.lines += 1;
        self.last_match = None;
        let mut ev = Event::default();
        ev.ecs.version = Some(ECS_VERSION);
        ev.event.created = Some(now);
        let text = self.line_text(raw, truncated, &mut ev);
        if text.trim().is_empty() {
            self.stats.empty += 1;
            ev.tag(tag::EMPTY);
            ev.timestamp = Some(now);
            self.pipeline_error(&mut ev, None, "empty line");
            ev.event.original = text.into_owned();
            return ev;
        }
        let header = self.syslog.decode_at(&text, now);
        if header.header_invalid {
            self.stats.header_invalid += 1;
            ev.tag(tag::SYSLOG_HEADER_INVALID);
        }
        fill_header(&mut ev, &header, now);
        let (app, message) =
            self.unwrap_relay(header.appname, header.message, &header, now, &mut ev);
        let matched = self.grammars.apply(app, message, &mut ev);
        self.last_match = matched;
        ev.message = message.to_owned();
        if matched.is_some() {
            self.stats.parsed += 1;
        } else {
            self.stats.no_match += 1;
            ev.tag(tag::NO_MATCH);
            self.pipeline_error(&mut ev, app, "no grammar rule matched the message");
        }
        self.queries.apply(&mut ev);
        derive_fields(&mut ev);
        if self.keep_original || matched.is_none() {
            ev.event.original = text.into_owned();
        }
        ev
    }

    /// The rule that matched the line decoded last, if any (for tests and for
    /// explaining a parse).
    pub fn last_match(&self) -> Option<Matched> {
        self.last_match
    }

    /// The line as text: cut at `max_line`, its terminators dropped, invalid
    /// UTF-8 replaced. Tags and counts what needed care.
    fn line_text<'r>(&mut self, raw: &'r [u8], truncated: bool, ev: &mut Event) -> Cow<'r, str> {
        let mut raw = raw;
        let mut cut = truncated;
        if raw.len() > self.max_line {
            raw = &raw[..self.max_line];
            cut = true;
        }
        while let Some((&last, rest)) = raw.split_last() {
            if last == b'\r' || last == b'\n' || last == 0 {
                raw = rest;
            } else {
                break;
            }
        }
        let text = match std::str::from_utf8(raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(e) if cut && e.error_len().is_none() => {
                // The cut fell inside a multi-byte character: drop the partial one.
                Cow::Borrowed(std::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or_default())
            }
            Err(_) => {
                self.stats.invalid_utf8 += 1;
                ev.tag(tag::INVALID_UTF8);
                String::from_utf8_lossy(raw)
            }
        };
        if cut {
            self.stats.truncated += 1;
            ev.tag(tag::TRUNCATED);
        }
        text
    }

    /// A relay that forwards pihole.log lines as they are (rsyslog imfile,
    /// syslog-ng file(), Filebeat) wraps dnsmasq's own file line in its
    /// header: read the inner `Mmm dd HH:MM:SS dnsmasq[PID]: ` too, and take
    /// the program and time dnsmasq wrote. Returns the program and message.
    fn unwrap_relay<'m>(
        &mut self,
        app: Option<&'m str>,
        message: &'m str,
        header: &Header<'_>,
        now: DateTime<Utc>,
        ev: &mut Event,
    ) -> (Option<&'m str>, &'m str) {
        if header.format == Format::Bare || !looks_like_file_line(message) {
            return (app, message);
        }
        // The relay stamped its header with its own zone's offset: the inner
        // zone-less stamp was written on the same clock, moments before.
        let inner = match header.stated_offset {
            Some(offset) => self.syslog.decode_at_offset(message, now, offset),
            None => self.syslog.decode_at(message, now),
        };
        if inner.format != Format::Rfc3164 || inner.appname.is_none() {
            return (app, message);
        }
        if let Some(ts) = inner.timestamp {
            ev.timestamp = Some(ts);
        }
        ev.process.name = inner.appname.map(Str::from);
        ev.process.pid = inner.procid.and_then(|p| p.parse().ok());
        (inner.appname, inner.message)
    }

    /// Marks an event as a line that could not be read: ECS's `pipeline_error`
    /// with the reason, in the dataset of the grammar that reads `app` (the
    /// first grammar when no grammar claims it), so it lands beside the lines
    /// of its kind that could be read.
    fn pipeline_error(&self, ev: &mut Event, app: Option<&str>, why: &'static str) {
        ev.event.kind = Some("pipeline_error");
        ev.error.message = Some(Str::from(why));
        let grammars = self.grammars.grammars();
        let by_app = app.and_then(|a| grammars.iter().find(|g| g.apps.iter().any(|x| x == a)));
        // Without a claimed tag: the first grammar that reads any tag or
        // dnsmasq's (the other resolvers' grammars name their own programs).
        let fallback = grammars
            .iter()
            .filter(|g| g.apps.is_empty() || g.apps.iter().any(|x| x == "dnsmasq"));
        let defaults = by_app
            .into_iter()
            .chain(fallback)
            .map(|g| &g.defaults)
            .find(|d| d.iter().any(|(f, _)| *f == Field::EventDataset));
        for (f, c) in defaults.into_iter().flatten() {
            match (f, c) {
                (Field::EventDataset, Constant::Static(s)) => ev.event.dataset = Some(s),
                (Field::EventModule, Constant::Static(s)) => ev.event.module = Some(s),
                _ => {}
            }
        }
    }
}

/// Whether a message starts like a pihole.log line (`Mmm dd HH:MM:SS `), so
/// it is worth decoding a second header.
fn looks_like_file_line(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() > 16
        && b[0].is_ascii_uppercase()
        && b[3] == b' '
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
}

/// Copies the syslog header into `@timestamp`, `log.syslog.*`, `host.*` and `process.*`.
fn fill_header(ev: &mut Event, h: &Header<'_>, now: DateTime<Utc>) {
    ev.timestamp = Some(h.timestamp.unwrap_or(now));
    if let Some(host) = h.hostname {
        ev.host.name = Some(Str::from(host));
        ev.host.hostname = Some(Str::from(host));
        ev.observer.hostname = Some(Str::from(host));
    }
    if let Some(app) = h.appname {
        ev.process.name = Some(Str::from(app));
    }
    if let Some(pid) = h.procid {
        ev.process.pid = pid.parse().ok();
    }
    let has_syslog = h.priority.is_some() || h.appname.is_some() || h.hostname.is_some();
    if !has_syslog {
        return;
    }
    let mut sl = Syslog {
        priority: h.priority,
        appname: h.appname.map(Str::from),
        hostname: h.hostname.map(Str::from),
        procid: h.procid.map(Str::from),
        msgid: h.msgid.map(Str::from),
        version: h.version.map(Str::from),
        ..Default::default()
    };
    if let Some(f) = h.facility() {
        sl.facility = Some(CodeName {
            code: f,
            name: syslog::facility_name(f),
        });
    }
    if let Some(s) = h.severity() {
        sl.severity = Some(CodeName {
            code: s,
            name: syslog::severity_name(s),
        });
    }
    sl.structured_data = h
        .structured_data
        .iter()
        .map(|el| SdElement {
            id: el.id.to_owned(),
            params: el
                .params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                .collect(),
        })
        .collect();
    ev.log.syslog = Some(Box::new(sl));
}

/// Fields computed from what the grammar filled in.
pub fn derive_fields(ev: &mut Event) {
    if let Some(name) = &ev.dns.question.name {
        if name == NAME_UNPRINTABLE {
            ev.tag(tag::NAME_UNPRINTABLE);
            ev.dns.question.name = None;
        }
    }
    if let Some(name) = ev.dns.question.name.clone() {
        split_registered_domain(ev, &name);
        if name != "." {
            ev.related.add_host(&name);
        }
        let qtype = ev.dns.question.type_.clone();
        for a in ev.dns.answers.iter_mut() {
            if a.name.is_none() {
                a.name = Some(name.clone());
            }
            if a.type_.is_none() && qtype.as_deref() == Some("PTR") {
                a.type_ = qtype.clone();
            }
        }
    }
    // ECS: every answer has `data`. dnsmasq logs some records by type only
    // (`is <CNAME>`, `is <HTTPS>`); their type is kept in `dnsmasq.answer_type`.
    if let Some(a) = ev.dns.answers.iter().find(|a| a.data.is_none()) {
        ev.dnsmasq.answer_type = a.type_.clone();
        ev.scratch.dataless_owner = a.name.clone();
    }
    ev.dns.answers.retain(|a| a.data.is_some());
    normalise_codes(ev);
    set_roles(ev);
    let owners: Vec<Str> = ev
        .dns
        .answers
        .iter()
        .filter_map(|a| a.name.clone())
        .collect();
    for n in owners {
        if n != "." {
            ev.related.add_host(&n);
        }
    }
    let ptr_names: Vec<Str> = ev
        .dns
        .answers
        .iter()
        .filter(|a| a.type_.as_deref() == Some("PTR"))
        .filter_map(|a| a.data.clone())
        .collect();
    for n in ptr_names {
        ev.related.add_host(&n);
    }
    for ip in [ev.client.ip, ev.source.ip, ev.destination.ip, ev.server.ip]
        .into_iter()
        .flatten()
    {
        ev.related.add_ip(ip);
    }
    for i in 0..ev.dns.resolved_ip.len() {
        let ip = ev.dns.resolved_ip[i];
        ev.related.add_ip(ip);
    }
    // Addresses in the custom namespaces (DHCP leases, ranges, next server).
    if !ev.dnsmasq.fields.is_empty() || !ev.pihole.fields.is_empty() {
        let ips: SmallVec<[IpAddr; 2]> = ev
            .dnsmasq
            .fields
            .ips()
            .chain(ev.pihole.fields.ips())
            .collect();
        for ip in ips {
            ev.related.add_ip(ip);
        }
    }
    if ev.event.outcome.is_none() && !ev.event.type_.contains(&"denied") {
        if let Some(rc) = &ev.dns.response_code {
            ev.event.outcome = Some(if rc == "NOERROR" {
                "success"
            } else {
                "failure"
            });
        }
    }
}

/// `source`/`destination` by the direction of the line: a query goes from the
/// client to the resolver (`source` is the client); a forward goes from the
/// resolver to the upstream (`destination`/`server`; the resolver's own
/// address is not in the line, so there is no `source`). Lines that are not
/// network traffic (start-up, configuration, cache dumps) name no protocol.
fn set_roles(ev: &mut Event) {
    if matches!(
        ev.event.action,
        Some("dns-query" | "dns-query-auth" | "dns-non-query")
    ) && ev.source.is_empty()
    {
        ev.source = ev.client.clone();
    }
    if !ev.event.category.is_empty() && !ev.event.category.contains(&"network") {
        ev.network.protocol = None;
    }
}

/// RCODE mnemonics of the IANA "DNS RCODEs" registry (16 is BADVERS in an
/// OPT record and BADSIG in a TSIG one; dnsmasq logs header RCODEs, which
/// stop at 15, so the 4-bit codes are what it can write).
const RCODES: [&str; 24] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    "",
    "",
    "",
    "",
    "BADVERS",
    "BADKEY",
    "BADTIME",
    "BADMODE",
    "BADNAME",
    "BADALG",
    "BADTRUNC",
    "BADCOOKIE",
];

/// Opcode mnemonics of the IANA "DNS OpCodes" registry (3 is unassigned).
const OPCODES: [&str; 7] = ["QUERY", "IQUERY", "STATUS", "", "NOTIFY", "UPDATE", "DSO"];

/// Replaces the numbers dnsmasq writes for RCODEs (`reply error is 6`) and
/// opcodes (`non-query opcode 4`) by their registry mnemonics; an unassigned
/// number stays a number.
fn normalise_codes(ev: &mut Event) {
    fn name(table: &[&'static str], v: &str) -> Option<&'static str> {
        let n: usize = v.parse().ok()?;
        table.get(n).copied().filter(|m| !m.is_empty())
    }
    if let Some(m) = ev
        .dns
        .response_code
        .as_deref()
        .and_then(|v| name(&RCODES, v))
    {
        ev.dns.response_code = Some(Str::from(m));
    }
    if let Some(m) = ev.dns.op_code.as_deref().and_then(|v| name(&OPCODES, v)) {
        ev.dns.op_code = Some(Str::from(m));
    }
}

/// What a query line said was asked, so the answer lines that follow can be
/// read against it.
#[derive(Debug, Clone)]
struct Asked {
    name: Str,
    qtype: Option<Str>,
    /// Set by a `<CNAME>` answer: the lines after it are chain members.
    chain: bool,
}

/// The recent questions, by dnsmasq's `extra` serial, and for lines without a
/// serial the exchange the previous line belonged to.
///
/// dnsmasq writes one line per record: on `reply a is <CNAME>` /
/// `reply b is 192.0.2.1` the second line's name is the chain member `b`,
/// and dnsmasq's authoritative and config answers to A/AAAA queries are
/// written `ADDR is NAME`, the shape of a PTR answer. With the serial the
/// question is known exactly; without it only the adjacent lines of one
/// exchange are trusted (a `<CNAME>` line and the lines right after it, a
/// query and the answer right after it), since replies from upstream arrive
/// in any order. Lines of one query split between two parse workers are read
/// on their own.
#[derive(Debug, Default)]
struct QueryContext {
    /// Oldest first; at most [`REMEMBERED`].
    by_serial: VecDeque<(u64, Asked)>,
    previous: Option<Asked>,
}

/// How many questions are remembered by serial; dnsmasq answers a query
/// within a few lines of it.
const REMEMBERED: usize = 64;

impl QueryContext {
    /// Takes out the question `serial` (or, without one, the previous line's)
    /// belongs to; [`put`](Self::put) files it again as the newest.
    fn take(&mut self, serial: Option<u64>) -> Option<Asked> {
        match serial {
            Some(s) => {
                let at = self.by_serial.iter().position(|(k, _)| *k == s)?;
                self.by_serial.remove(at).map(|(_, a)| a)
            }
            None => self.previous.take(),
        }
    }

    fn put(&mut self, serial: Option<u64>, asked: Asked) {
        match serial {
            Some(s) => {
                self.by_serial.retain(|(k, _)| *k != s);
                if self.by_serial.len() >= REMEMBERED {
                    self.by_serial.pop_front();
                }
                self.by_serial.push_back((s, asked));
            }
            None => self.previous = Some(asked),
        }
    }

    fn apply(&mut self, ev: &mut Event) {
        let serial = ev.dnsmasq.serial;
        let is_query = ev.dns.type_ == Some("query")
            && matches!(ev.event.action, Some("dns-query" | "dns-query-auth"));
        if is_query {
            if let Some(name) = ev.dns.question.name.clone() {
                let qtype = ev.dns.question.type_.clone();
                self.put(
                    serial,
                    Asked {
                        name,
                        qtype,
                        chain: false,
                    },
                );
            }
            return;
        }
        if ev.dns.type_ != Some("answer") || ev.dns.answers.is_empty() {
            if serial.is_none() {
                self.previous = None;
            }
            return;
        }
        let exact = serial.is_some();
        let asked = self.take(serial);
        if let Some(a) = &asked {
            reread_address_answer(ev, a, exact);
        }
        let is_cname = ev
            .dns
            .answers
            .iter()
            .any(|a| a.type_.as_deref() == Some("CNAME"));
        match asked {
            // Only after a `<CNAME>`: a serial is not unique (forked TCP
            // children count on their own), a CNAME chain is what makes
            // another name answer the question.
            Some(a) if a.chain && ev.dns.question.name.as_ref() != Some(&a.name) => {
                // A chain member or record owner: it goes with the answers,
                // the question stays what was asked.
                let owner = ev.dns.question.name.take();
                for ans in ev.dns.answers.iter_mut() {
                    if ans.name.is_none() {
                        ans.name = owner.clone();
                    }
                }
                ev.dns.question = Default::default();
                ev.dns.question.name = Some(a.name.clone());
                let chain = a.chain || is_cname;
                self.put(serial, Asked { chain, ..a });
            }
            Some(a) => {
                let chain = a.chain || is_cname;
                self.put(serial, Asked { chain, ..a });
            }
            None => {
                if let Some(name) = ev.dns.question.name.clone() {
                    let qtype = ev.dns.question.type_.clone();
                    self.put(
                        serial,
                        Asked {
                            name,
                            qtype,
                            chain: is_cname,
                        },
                    );
                }
            }
        }
    }
}

/// A line read as a PTR answer (`ADDR is NAME`) for a question that asked for
/// A or AAAA is an address answer: `NAME` owns the address.
fn reread_address_answer(ev: &mut Event, asked: &Asked, exact: bool) {
    let want_v4 = match asked.qtype.as_deref() {
        Some("A") => true,
        Some("AAAA") => false,
        _ => return,
    };
    if ev.dns.question.type_.as_deref() != Some("PTR") || ev.dns.answers.len() != 1 {
        return;
    }
    let Some(ip) = ev.dns.question.name.as_deref().and_then(ip_from_arpa) else {
        return;
    };
    if ip.is_ipv4() != want_v4 {
        return;
    }
    let Some(owner) = ev.dns.answers[0].data.clone() else {
        return;
    };
    // Without a serial, only an answer naming the question itself is taken
    // (a chain member could be any name).
    if !exact && !asked.chain && owner != asked.name {
        return;
    }
    ev.dns.answers[0] = Answer {
        name: Some(owner.clone()),
        type_: Some(Str::from(if want_v4 { "A" } else { "AAAA" })),
        data: Some(Str::from(ip.to_string())),
    };
    if !ev.dns.resolved_ip.contains(&ip) {
        ev.dns.resolved_ip.push(ip);
    }
    ev.dns.question = Default::default();
    ev.dns.question.name = Some(owner);
}

/// The address of an `in-addr.arpa` or `ip6.arpa` name.
fn ip_from_arpa(name: &str) -> Option<IpAddr> {
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut o = [0u8; 4];
        let parts: Vec<&str> = v4.split('.').collect();
        if parts.len() != 4 {
            return None;
        }
        for (i, p) in parts.iter().rev().enumerate() {
            o[i] = p.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    let v6 = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = v6
        .split('.')
        .map(|n| u8::from_str_radix(n, 16).ok().filter(|_| n.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut o = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        // Reversed: the last two labels are the first byte, high nibble last.
        o[i] = (pair[1] << 4) | pair[0];
    }
    Some(IpAddr::V6(Ipv6Addr::from(o)))
}

/// Fills `dns.question.{registered_domain, subdomain, top_level_domain}` from
/// the public suffix list.
fn split_registered_domain(ev: &mut Event, name: &str) {
    if name == "." || name.is_empty() || name.contains(' ') {
        return;
    }
    let q = &mut ev.dns.question;
    let Some(sfx) = psl::suffix(name.as_bytes()) else {
        return;
    };
    let sfx_len = sfx.as_bytes().len();
    // A name that is itself a suffix, or a single unknown label, has no TLD
    // worth reporting beyond the name.
    if sfx_len < name.len() || sfx.is_known() {
        q.top_level_domain = Some(Str::from(&name[name.len() - sfx_len..]));
    }
    if sfx_len + 1 >= name.len() {
        return;
    }
    // The registered domain is the suffix plus one label.
    let before = &name[..name.len() - sfx_len - 1];
    let label_start = before.rfind('.').map_or(0, |i| i + 1);
    q.registered_domain = Some(Str::from(&name[label_start..]));
    if label_start > 0 {
        q.subdomain = Some(Str::from(&name[..label_start - 1]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> LineDecoder {
        LineDecoder::new(
            Arc::new(GrammarSet::builtin().unwrap()),
            "UTC".parse().unwrap(),
            DEFAULT_MAX_LINE,
        )
    }

    #[test]
    fn unmatched_line_is_kept_and_tagged() {
        let mut d = decoder();
        let ev = d.decode(b"something no grammar knows");
        assert!(ev.tags.contains(&tag::NO_MATCH));
        assert_eq!(ev.event.original, "something no grammar knows");
        assert_eq!(ev.event.kind, Some("pipeline_error"));
        assert!(ev.error.message.is_some());
        assert_eq!(ev.event.dataset, Some("pihole.dns"));
        assert_eq!(d.stats.no_match, 1);
        let ev = d.decode(b"<30>Nov 28 01:02:03 pihole dnsmasq-dhcp[9]: nothing known");
        assert_eq!(ev.event.kind, Some("pipeline_error"));
        assert_eq!(ev.event.dataset, Some("pihole.dhcp"));
        assert_eq!(ev.event.module, Some("pihole"));
    }

    #[test]
    fn every_event_has_version_message_and_receive_time() {
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let line = b"<30>Nov 28 01:02:03 pihole dnsmasq[812]: query[A] a.example from 192.0.2.10";
        let mut d = decoder();
        let ev = d.decode_at(line, false, now);
        assert_eq!(ev.ecs.version, Some(ECS_VERSION));
        assert_eq!(ev.event.created, Some(now));
        assert_eq!(ev.message, "query[A] a.example from 192.0.2.10");
        assert_eq!(ev.host.name.as_deref(), Some("pihole"));
        assert!(ev.event.original.is_empty(), "kept without keep_original");
        let mut d = decoder().keep_original(true);
        let ev = d.decode_at(line, false, now);
        assert_eq!(ev.event.original.as_bytes(), line);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_tagged() {
        let mut d = decoder();
        let ev = d.decode(b"query[A] caf\xe9.example from 10.0.0.1");
        assert!(ev.tags.contains(&tag::INVALID_UTF8));
        assert!(ev.message.contains('\u{FFFD}'));
        assert_eq!(d.stats.invalid_utf8, 1);
    }

    #[test]
    fn long_line_is_truncated_and_tagged() {
        let mut d = LineDecoder::new(Arc::new(GrammarSet::builtin().unwrap()), Zone::Local, 16);
        let ev = d.decode("query[A] ééééééééééé.example from 10.0.0.1".as_bytes());
        assert!(ev.tags.contains(&tag::TRUNCATED));
        assert!(ev.message.len() <= 16);
        assert!(
            !ev.tags.contains(&tag::INVALID_UTF8),
            "a cut inside a character is not bad input"
        );
    }

    #[test]
    fn empty_line_becomes_an_event() {
        let mut d = decoder();
        let ev = d.decode(b"  \r");
        assert!(ev.tags.contains(&tag::EMPTY));
        assert!(ev.timestamp.is_some());
    }

    #[test]
    fn relayed_file_line_is_read_through_both_headers() {
        let mut d = decoder();
        let ev = d.decode(
            b"<30>1 2026-11-28T01:02:04Z pihole dnsmasq - - - Nov 28 01:02:03 dnsmasq[812]: query[A] ads.example.com from 192.0.2.10",
        );
        assert!(ev.tags.is_empty(), "{:?}", ev.tags);
        assert_eq!(ev.dns.question.name.as_deref(), Some("ads.example.com"));
        assert_eq!(ev.host.hostname.as_deref(), Some("pihole"));
        assert_eq!(ev.process.pid, Some(812));
        let ts = ev.timestamp.unwrap().to_rfc3339();
        assert!(ts.ends_with("01:02:03+00:00"), "{ts}");
    }

    #[test]
    fn a_relay_header_offset_is_the_zone_of_the_inner_stamp() {
        // The decoder reads zone-less stamps as UTC; the relay (rsyslog with
        // an RFC 5424 or RFC 3339 template) says its clock is at +01:00.
        let mut d = decoder();
        for line in [
            "<30>1 2026-11-28T01:02:04.250+01:00 pihole dnsmasq - - - Nov 28 01:02:03 dnsmasq[812]: query[A] ads.example.com from 192.0.2.10",
            "<30>2026-11-28T01:02:04+01:00 pihole dnsmasq: Nov 28 01:02:03 dnsmasq[812]: query[A] ads.example.com from 192.0.2.10",
        ] {
            let ev = d.decode(line.as_bytes());
            assert_eq!(ev.dns.question.name.as_deref(), Some("ads.example.com"));
            let ts = ev.timestamp.unwrap().to_rfc3339();
            assert_eq!(ts, "2026-11-28T00:02:03+00:00", "{line}");
        }
        // A UTC (`Z`) header says nothing about the sender's own zone: the
        // configured zone applies, and the caches of that zone still hold.
        let ev = d.decode(b"<30>1 2026-11-28T00:02:04Z pihole dnsmasq - - - Nov 28 01:02:03 dnsmasq[812]: query[A] ads.example.com from 192.0.2.10");
        assert_eq!(
            ev.timestamp.unwrap().to_rfc3339(),
            "2026-11-28T01:02:03+00:00"
        );
        let ev =
            d.decode(b"Nov 28 01:02:03 dnsmasq[812]: query[A] ads.example.com from 192.0.2.10");
        assert_eq!(
            ev.timestamp.unwrap().to_rfc3339(),
            "2026-11-28T01:02:03+00:00"
        );
    }

    #[test]
    fn codes_become_mnemonics() {
        let mut d = decoder();
        let ev = d.decode(b"reply error is 6");
        assert_eq!(ev.dns.response_code.as_deref(), Some("YXDOMAIN"));
        let ev = d.decode(b"non-query opcode 4 from 192.0.2.1");
        assert_eq!(ev.dns.op_code.as_deref(), Some("NOTIFY"));
        let ev = d.decode(b"non-query opcode 3 from 192.0.2.1");
        assert_eq!(
            ev.dns.op_code.as_deref(),
            Some("3"),
            "unassigned stays a number"
        );
        let ev = d.decode(b"query[TXT] version.bind from 192.0.2.1");
        assert_eq!(ev.dns.question.class, None);
    }

    #[test]
    fn arpa_names_give_their_address() {
        for ip in ["192.0.2.20", "2001:db8::20", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_from_arpa(&crate::grammar::arpa_name(ip)), Some(ip));
        }
        assert_eq!(ip_from_arpa("2.0.192.in-addr.arpa"), None);
        assert_eq!(ip_from_arpa("example.com"), None);
    }

    #[test]
    fn chain_members_and_address_answers_keep_the_question() {
        let mut d = decoder();
        d.decode(b"9 192.0.2.1/5000 query[AAAA] www.auth.test from 192.0.2.1");
        let ev = d.decode(b"9 192.0.2.1/5000 config www.auth.test is <CNAME>");
        assert!(ev.dns.answers.is_empty(), "an answer without data");
        assert_eq!(ev.dnsmasq.answer_type.as_deref(), Some("CNAME"));
        let ev = d.decode(b"9 192.0.2.1/5000 config 2001:db8::20 is host.auth.test");
        assert_eq!(ev.dns.question.name.as_deref(), Some("www.auth.test"));
        let a = &ev.dns.answers[0];
        assert_eq!(a.name.as_deref(), Some("host.auth.test"));
        assert_eq!(a.type_.as_deref(), Some("AAAA"));
        assert_eq!(a.data.as_deref(), Some("2001:db8::20"));
        assert_eq!(ev.dnsmasq.serial, Some(9));
        assert!(ev.dns.id.is_none());
        // A real PTR query keeps its PTR answer.
        d.decode(b"10 192.0.2.1/5001 query[PTR] 20.2.0.192.in-addr.arpa from 192.0.2.1");
        let ev = d.decode(b"10 192.0.2.1/5001 config 192.0.2.20 is host.auth.test");
        assert_eq!(ev.dns.answers[0].type_.as_deref(), Some("PTR"));
        assert_eq!(
            ev.dns.question.name.as_deref(),
            Some("20.2.0.192.in-addr.arpa")
        );
    }

    #[test]
    fn registered_domain_uses_public_suffix_list() {
        let mut ev = Event::default();
        ev.dns.question.name = Some("a.b.example.co.uk".into());
        derive_fields(&mut ev);
        assert_eq!(
            ev.dns.question.registered_domain.as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(ev.dns.question.subdomain.as_deref(), Some("a.b"));
        assert_eq!(ev.dns.question.top_level_domain.as_deref(), Some("co.uk"));
        assert_eq!(ev.related.hosts.as_slice(), ["a.b.example.co.uk"]);
    }

    #[test]
    fn root_and_unprintable_names() {
        let mut ev = Event::default();
        ev.dns.question.name = Some(".".into());
        derive_fields(&mut ev);
        assert!(ev.dns.question.registered_domain.is_none());
        assert!(ev.related.hosts.is_empty());

        let mut ev = Event::default();
        ev.dns.question.name = Some(NAME_UNPRINTABLE.into());
        derive_fields(&mut ev);
        assert!(ev.dns.question.name.is_none());
        assert!(ev.tags.contains(&tag::NAME_UNPRINTABLE));
    }
}
