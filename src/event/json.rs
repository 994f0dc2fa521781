//! The hot-path JSON encoder for [`Event`].
//!
//! serde_json spends most of its time escaping, including every object key; an
//! event has about sixty keys and a few hundred bytes of strings. This encoder
//! writes keys as pre-escaped literals, checks eight bytes at a time whether a
//! value needs escaping at all, and formats numbers, addresses and the
//! timestamp without `core::fmt`. Its output is byte for byte what
//! `serde_json::to_vec(&event)` gives for the derived `Serialize` (the tests
//! here and the golden tests hold it to that), so the serde derive stays the
//! reference and this is only a faster way to the same bytes.

use std::net::IpAddr;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::*;

/// An object key known to need no escaping, as the literal `,"name":` that
/// [`Obj::key`] writes (without the comma for an object's first key): one
/// copy of a constant length instead of four small ones.
macro_rules! k {
    ($name:literal) => {
        concat!(",\"", $name, "\":").as_bytes()
    };
}

/// Writes the field set `$v` under `$key` with `$write` unless it is empty:
/// a document leaves out what its line does not say rather than carrying
/// empty objects.
macro_rules! part {
    ($o:ident, $key:literal, $v:expr, $write:expr) => {
        if !$v.is_empty() {
            $o.key(k!($key));
            $write($o.out, &$v);
        }
    };
}

/// Writes `ev` as one JSON object.
pub fn write_event(ev: &Event, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    if let Some(ts) = &ev.timestamp {
        o.key(k!("@timestamp"));
        timestamp(o.out, ts);
    }
    part!(o, "message", ev.message, string);
    if !ev.ecs.is_empty() {
        o.key(k!("ecs"));
        let mut e = Obj::open(o.out);
        e.opt_str(k!("version"), ev.ecs.version);
        e.close();
    }
    if !ev.data_stream.is_empty() {
        o.key(k!("data_stream"));
        let mut d = Obj::open(o.out);
        d.opt_str(k!("type"), ev.data_stream.type_);
        d.opt_str(k!("dataset"), ev.data_stream.dataset);
        d.opt_str(k!("namespace"), ev.data_stream.namespace);
        d.close();
    }
    o.key(k!("event"));
    event_meta(o.out, &ev.event);
    part!(o, "dns", ev.dns, dns);
    for (k, e) in [
        (k!("client"), &ev.client),
        (k!("source"), &ev.source),
        (k!("destination"), &ev.destination),
        (k!("server"), &ev.server),
    ] {
        if !e.is_empty() {
            o.key(k);
            endpoint(o.out, e);
        }
    }
    part!(o, "network", ev.network, network);
    part!(o, "related", ev.related, related);
    part!(o, "host", ev.host, host);
    part!(o, "observer", ev.observer, observer);
    part!(o, "process", ev.process, process);
    part!(o, "rule", ev.rule, rule);
    part!(o, "log", ev.log, log);
    part!(o, "file", ev.file, file_info);
    part!(o, "error", ev.error, error_info);
    part!(o, "dnsmasq", ev.dnsmasq, dnsmasq);
    part!(o, "pihole", ev.pihole.fields, custom_object);
    // The product namespaces (`bind`, `unbound`, …) as top-level objects.
    custom_level(&mut o, &ev.custom.0 .0, 0);
    part!(o, "labels", ev.labels, labels);
    part!(o, "misp_src", ev.misp_src, keywords);
    part!(o, "threat", ev.threat, threat);
    if !ev.tags.is_empty() {
        o.key(k!("tags"));
        str_list(o.out, ev.tags.iter().copied());
    }
    o.close();
}

fn network(out: &mut Vec<u8>, x: &Network) {
    let mut n = Obj::open(out);
    n.opt_str(k!("transport"), x.transport);
    n.opt_str(k!("protocol"), x.protocol);
    n.close();
}

fn related(out: &mut Vec<u8>, x: &Related) {
    let mut r = Obj::open(out);
    if !x.ip.is_empty() {
        r.key(k!("ip"));
        ip_list(r.out, &x.ip);
    }
    if !x.hosts.is_empty() {
        r.key(k!("hosts"));
        str_list(r.out, x.hosts.iter().map(|s| s.as_str()));
    }
    r.close();
}

fn host(out: &mut Vec<u8>, x: &Host) {
    let mut h = Obj::open(out);
    h.opt_str(k!("name"), x.name.as_deref());
    h.opt_str(k!("hostname"), x.hostname.as_deref());
    h.close();
}

fn observer(out: &mut Vec<u8>, x: &Observer) {
    let mut w = Obj::open(out);
    w.opt_str(k!("hostname"), x.hostname.as_deref());
    w.opt_str(k!("product"), x.product);
    w.opt_str(k!("vendor"), x.vendor);
    w.opt_str(k!("type"), x.type_);
    w.opt_str(k!("version"), x.version.as_deref());
    if !x.ingress.is_empty() {
        w.key(k!("ingress"));
        let mut i = Obj::open(w.out);
        i.key(k!("interface"));
        let mut n = Obj::open(i.out);
        n.opt_str(k!("name"), x.ingress.interface.name.as_deref());
        n.close();
        i.close();
    }
    w.close();
}

fn file_info(out: &mut Vec<u8>, x: &FileInfo) {
    let mut f = Obj::open(out);
    f.opt_str(k!("path"), x.path.as_deref());
    f.close();
}

fn process(out: &mut Vec<u8>, x: &Process) {
    let mut p = Obj::open(out);
    p.opt_str(k!("name"), x.name.as_deref());
    if let Some(pid) = x.pid {
        p.key(k!("pid"));
        uint(p.out, u64::from(pid));
    }
    if let Some(id) = x.thread.id {
        p.key(k!("thread"));
        let mut t = Obj::open(p.out);
        t.key(k!("id"));
        uint(t.out, id);
        t.close();
    }
    p.close();
}

fn rule(out: &mut Vec<u8>, x: &Rule) {
    let mut r = Obj::open(out);
    r.opt_str(k!("name"), x.name.as_deref());
    r.opt_str(k!("ruleset"), x.ruleset);
    r.opt_str(k!("category"), x.category);
    r.close();
}

fn error_info(out: &mut Vec<u8>, x: &ErrorInfo) {
    let mut e = Obj::open(out);
    e.opt_str(k!("message"), x.message.as_deref());
    e.close();
}

fn dnsmasq(out: &mut Vec<u8>, x: &Dnsmasq) {
    let mut d = Obj::open(out);
    if let Some(n) = x.serial {
        d.key(k!("serial"));
        uint(d.out, n);
    }
    d.opt_str(k!("answer_type"), x.answer_type.as_deref());
    custom_level(&mut d, &x.fields.0, 1);
    d.opt_str(k!("status"), x.status);
    for (key, n) in [
        (k!("status_code"), x.status_code.map(u64::from)),
        (k!("lines"), x.lines.map(u64::from)),
        (k!("forwards"), x.forwards.map(u64::from)),
    ] {
        if let Some(n) = n {
            d.key(key);
            uint(d.out, n);
        }
    }
    d.close();
}

fn custom_object(out: &mut Vec<u8>, x: &CustomFields) {
    let mut o = Obj::open(out);
    custom_level(&mut o, &x.0, 1);
    o.close();
}

/// Custom fields (all below one object at `depth`, sorted as in
/// [`custom::FIELDS`]) as keys of `o`, nested objects for their dotted parts.
fn custom_level(o: &mut Obj<'_>, entries: &[(u16, CustomValue)], depth: usize) {
    let mut rest = entries;
    while let Some((id, v)) = rest.first() {
        o.key_escaped(custom::segment(*id, depth));
        if custom::is_leaf(*id, depth) {
            custom_value(o.out, v);
            rest = &rest[1..];
            continue;
        }
        let n = custom::run_len(rest, depth);
        let mut inner = Obj::open(o.out);
        custom_level(&mut inner, &rest[..n], depth + 1);
        inner.close();
        rest = &rest[n..];
    }
}

fn custom_value(out: &mut Vec<u8>, v: &CustomValue) {
    match v {
        CustomValue::Long(n) => uint(out, *n),
        CustomValue::Ip(ip) => ip_addr(out, ip),
        CustomValue::Date(d) => timestamp(out, d),
        CustomValue::Keyword(k) => string(out, k),
        CustomValue::Keywords(l) => str_list(out, l.iter().map(|s| s.as_str())),
        CustomValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
    }
}

fn labels(out: &mut Vec<u8>, x: &Labels) {
    let mut l = Obj::open(out);
    for (k, v) in &x.0 {
        l.key_escaped(k);
        string(l.out, v);
    }
    l.close();
}

fn event_meta(out: &mut Vec<u8>, m: &EventMeta) {
    let mut o = Obj::open(out);
    o.opt_str(k!("kind"), m.kind);
    if !m.category.is_empty() {
        o.key(k!("category"));
        str_list(o.out, m.category.iter().copied());
    }
    if !m.type_.is_empty() {
        o.key(k!("type"));
        str_list(o.out, m.type_.iter().copied());
    }
    o.opt_str(k!("action"), m.action);
    o.opt_str(k!("outcome"), m.outcome);
    o.opt_str(k!("reason"), m.reason.as_deref());
    o.opt_str(k!("dataset"), m.dataset);
    o.opt_str(k!("module"), m.module);
    o.opt_str(k!("provider"), m.provider);
    if let Some(d) = m.duration {
        o.key(k!("duration"));
        uint(o.out, d);
    }
    for (key, ts) in [
        (k!("created"), &m.created),
        (k!("start"), &m.start),
        (k!("end"), &m.end),
    ] {
        if let Some(ts) = ts {
            o.key(key);
            timestamp(o.out, ts);
        }
    }
    if !m.original.is_empty() {
        o.key(k!("original"));
        string(o.out, &m.original);
    }
    o.close();
}

fn dns(out: &mut Vec<u8>, d: &Dns) {
    let mut o = Obj::open(out);
    o.opt_str(k!("type"), d.type_);
    o.opt_str(k!("id"), d.id.as_deref());
    o.opt_str(k!("op_code"), d.op_code.as_deref());
    if !d.question.is_empty() {
        o.key(k!("question"));
        let q = &d.question;
        let mut w = Obj::open(o.out);
        w.opt_str(k!("name"), q.name.as_deref());
        w.opt_str(k!("type"), q.type_.as_deref());
        w.opt_str(k!("class"), q.class);
        w.opt_str(k!("registered_domain"), q.registered_domain.as_deref());
        w.opt_str(k!("subdomain"), q.subdomain.as_deref());
        w.opt_str(k!("top_level_domain"), q.top_level_domain.as_deref());
        w.close();
    }
    if !d.answers.is_empty() {
        o.key(k!("answers"));
        o.out.push(b'[');
        for (i, a) in d.answers.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            let mut w = Obj::open(o.out);
            w.opt_str(k!("name"), a.name.as_deref());
            w.opt_str(k!("type"), a.type_.as_deref());
            w.opt_str(k!("data"), a.data.as_deref());
            w.close();
        }
        o.out.push(b']');
    }
    if !d.resolved_ip.is_empty() {
        o.key(k!("resolved_ip"));
        ip_list(o.out, &d.resolved_ip);
    }
    o.opt_str(k!("response_code"), d.response_code.as_deref());
    if !d.header_flags.is_empty() {
        o.key(k!("header_flags"));
        str_list(o.out, d.header_flags.iter().copied());
    }
    o.close();
}

fn endpoint(out: &mut Vec<u8>, e: &Endpoint) {
    let mut o = Obj::open(out);
    if let Some(ip) = &e.ip {
        o.key(k!("ip"));
        ip_addr(o.out, ip);
    }
    if let Some(p) = e.port {
        o.key(k!("port"));
        uint(o.out, u64::from(p));
    }
    o.opt_str(k!("domain"), e.domain.as_deref());
    o.opt_str(k!("mac"), e.mac.as_deref());
    o.close();
}

fn log(out: &mut Vec<u8>, l: &Log) {
    let mut o = Obj::open(out);
    if let Some(sl) = &l.syslog {
        o.key(k!("syslog"));
        syslog(o.out, sl);
    }
    if !l.source.is_empty() {
        o.key(k!("source"));
        let mut w = Obj::open(o.out);
        w.opt_str(k!("address"), l.source.address.as_deref());
        w.close();
    }
    if !l.file.is_empty() {
        o.key(k!("file"));
        let mut w = Obj::open(o.out);
        w.opt_str(k!("path"), l.file.path.as_deref());
        w.close();
    }
    if let Some(off) = l.offset {
        o.key(k!("offset"));
        uint(o.out, off);
    }
    if !l.origin.is_empty() {
        o.key(k!("origin"));
        let mut w = Obj::open(o.out);
        w.key(k!("file"));
        let mut f = Obj::open(w.out);
        f.opt_str(k!("name"), l.origin.file.name.as_deref());
        if let Some(n) = l.origin.file.line {
            f.key(k!("line"));
            uint(f.out, n);
        }
        f.close();
        w.close();
    }
    o.opt_str(k!("level"), l.level.as_deref());
    o.close();
}

fn syslog(out: &mut Vec<u8>, s: &Syslog) {
    let mut o = Obj::open(out);
    if let Some(p) = s.priority {
        o.key(k!("priority"));
        uint(o.out, u64::from(p));
    }
    for (k, cn) in [(k!("facility"), &s.facility), (k!("severity"), &s.severity)] {
        if let Some(cn) = cn {
            o.key(k);
            let mut w = Obj::open(o.out);
            w.key(k!("code"));
            uint(w.out, u64::from(cn.code));
            w.key(k!("name"));
            string(w.out, cn.name);
            w.close();
        }
    }
    o.opt_str(k!("appname"), s.appname.as_deref());
    o.opt_str(k!("hostname"), s.hostname.as_deref());
    o.opt_str(k!("procid"), s.procid.as_deref());
    o.opt_str(k!("msgid"), s.msgid.as_deref());
    o.opt_str(k!("version"), s.version.as_deref());
    if !s.structured_data.is_empty() {
        o.key(k!("structured_data"));
        let mut w = Obj::open(o.out);
        for el in &s.structured_data {
            w.key_escaped(&el.id);
            let mut p = Obj::open(w.out);
            for (k, v) in &el.params {
                p.key_escaped(k);
                string(p.out, v);
            }
            p.close();
        }
        w.close();
    }
    o.close();
}

fn keywords(out: &mut Vec<u8>, k: &Keywords) {
    match k.0.as_slice() {
        [one] => string(out, one),
        many => str_list(out, many.iter().map(|s| s.as_str())),
    }
}

fn threat(out: &mut Vec<u8>, t: &Threat) {
    let mut o = Obj::open(out);
    if !t.enrichments.is_empty() {
        o.key(k!("enrichments"));
        o.out.push(b'[');
        for (i, e) in t.enrichments.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            enrichment(o.out, e);
        }
        o.out.push(b']');
    }
    if !t.feed.is_empty() {
        o.key(k!("feed"));
        let mut f = Obj::open(o.out);
        if !t.feed.name.is_empty() {
            f.key(k!("name"));
            keywords(f.out, &t.feed.name);
        }
        f.close();
    }
    o.close();
}

fn enrichment(out: &mut Vec<u8>, e: &Enrichment) {
    let mut o = Obj::open(out);
    if let Some(name) = &e.feed.name {
        o.key(k!("feed"));
        let mut f = Obj::open(o.out);
        f.key(k!("name"));
        string(f.out, name);
        f.close();
    }
    o.key(k!("indicator"));
    let ind = &e.indicator;
    let mut w = Obj::open(o.out);
    w.key(k!("type"));
    string(w.out, ind.type_);
    w.opt_str(k!("provider"), ind.provider.as_deref());
    w.opt_str(k!("description"), ind.description.as_deref());
    w.opt_str(k!("first_seen"), ind.first_seen.as_deref());
    w.opt_str(k!("last_seen"), ind.last_seen.as_deref());
    if let Some(ip) = &ind.ip {
        w.key(k!("ip"));
        ip_addr(w.out, ip);
    }
    if !ind.url.is_empty() {
        w.key(k!("url"));
        let mut u = Obj::open(w.out);
        u.opt_str(k!("domain"), ind.url.domain.as_deref());
        u.close();
    }
    w.close();
    o.key(k!("matched"));
    let m = &e.matched;
    let mut w = Obj::open(o.out);
    w.key(k!("atomic"));
    string(w.out, &m.atomic);
    w.key(k!("field"));
    string(w.out, m.field);
    w.key(k!("type"));
    string(w.out, m.type_);
    if let Some(ts) = &m.occurred {
        w.key(k!("occurred"));
        timestamp(w.out, ts);
    }
    w.close();
    o.close();
}

/// An object being written: tracks whether a comma is needed.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }
    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }
    /// A key written with [`k!`]: `,"name":`.
    #[inline(always)]
    fn key(&mut self, lit: &[u8]) {
        if self.first {
            self.first = false;
            self.out.extend_from_slice(&lit[1..]);
        } else {
            self.out.extend_from_slice(lit);
        }
    }
    fn key_escaped(&mut self, k: &str) {
        self.sep();
        string(self.out, k);
        self.out.push(b':');
    }
    #[inline(always)]
    fn opt_str(&mut self, k: &[u8], v: Option<&str>) {
        if let Some(v) = v {
            self.key(k);
            string(self.out, v);
        }
    }
    fn close(self) {
        self.out.push(b'}');
    }
}

fn str_list<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s);
    }
    out.push(b']');
}

fn ip_list(out: &mut Vec<u8>, ips: &[IpAddr]) {
    out.push(b'[');
    for (i, ip) in ips.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        ip_addr(out, ip);
    }
    out.push(b']');
}

fn ip_addr(out: &mut Vec<u8>, ip: &IpAddr) {
    out.push(b'"');
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                uint(out, u64::from(*o));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

fn uint(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

fn two(out: &mut Vec<u8>, n: u32) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// `2026-11-28T01:02:03.456Z` (microseconds when the stamp has them), as
/// [`super::format_timestamp`] writes it.
fn timestamp(out: &mut Vec<u8>, ts: &DateTime<Utc>) {
    let y = ts.year();
    if !(0..=9999).contains(&y) {
        let mut s = String::new();
        format_timestamp(ts, &mut s);
        string(out, &s);
        return;
    }
    let y = y as u32;
    out.push(b'"');
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, ts.month());
    out.push(b'-');
    two(out, ts.day());
    out.push(b'T');
    two(out, ts.hour());
    out.push(b':');
    two(out, ts.minute());
    out.push(b':');
    two(out, ts.second());
    out.push(b'.');
    let micros = ts.timestamp_subsec_micros().min(999_999);
    let (digits, n) = if micros % 1000 == 0 {
        (3, micros / 1000)
    } else {
        (6, micros)
    };
    let mut div = 10u32.pow(digits - 1);
    while div > 0 {
        out.push(b'0' + (n / div % 10) as u8);
        div /= 10;
    }
    out.extend_from_slice(b"Z\"");
}

/// Whether any of the eight bytes is `"`, `\` or a control character.
#[inline]
fn needs_escape_word(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | has_zero(w ^ (ONES * b'"' as u64)) | has_zero(w ^ (ONES * b'\\' as u64))) != 0
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A JSON string with serde_json's escaping.
fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.push(b'"');
    let mut chunks = b.chunks_exact(8);
    let clean = chunks.by_ref().all(|c| {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        !needs_escape_word(w)
    }) && !chunks.remainder().iter().any(|&c| needs_escape(c));
    if clean {
        out.extend_from_slice(b);
    } else {
        escape_slow(out, b);
    }
    out.push(b'"');
}

fn escape_slow(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !needs_escape(c) {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn same_as_serde(ev: &Event) {
        let mut ours = Vec::new();
        write_event(ev, &mut ours);
        let reference = serde_json::to_vec(ev).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&reference)
        );
    }

    #[test]
    fn every_field_matches_serde() {
        let ip4: IpAddr = "192.0.2.1".parse().unwrap();
        let ip6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut ev = Event {
            timestamp: Some(Utc.with_ymd_and_hms(2026, 1, 8, 3, 4, 5).unwrap()),
            ..Default::default()
        };
        ev.message = "query[A] \"x\" from 192.0.2.1".into();
        ev.ecs.version = Some(ECS_VERSION);
        ev.event.created = Some(Utc.with_ymd_and_hms(2026, 1, 8, 3, 4, 6).unwrap());
        ev.error.message = Some("no \"rule\"".into());
        ev.dnsmasq.serial = Some(u64::MAX);
        ev.dnsmasq.answer_type = Some("CNAME".into());
        (ev.dnsmasq.fields, ev.pihole.fields, ev.custom) = custom::all_samples();
        ev.file.path = Some("/etc/ho\"sts".into());
        ev.log.origin.file.name = Some("/src/forward.c".into());
        ev.log.origin.file.line = Some(1638);
        ev.observer.ingress.interface.name = Some("eth0".into());
        ev.event.kind = Some("event");
        ev.event.category.push("network");
        ev.event.type_.extend(["denied", "protocol"]);
        ev.event.action = Some("dns-blocked");
        ev.event.outcome = Some("success");
        ev.event.reason = Some("not \"ready\"".into());
        ev.event.dataset = Some("pihole.dns");
        ev.event.module = Some("pihole");
        ev.event.provider = Some("p");
        ev.set_data_stream("default");
        ev.event.original = "line\twith\u{1}ctrl é \\ \u{7f}".into();
        ev.dns.type_ = Some("answer");
        ev.dns.id = Some("12".into());
        ev.dns.op_code = Some("4".into());
        ev.dns.question = Question {
            name: Some("a.b.example.co.uk".into()),
            type_: Some("AAAA".into()),
            class: Some("IN"),
            registered_domain: Some("example.co.uk".into()),
            subdomain: Some("a.b".into()),
            top_level_domain: Some("co.uk".into()),
        };
        ev.dns.answers.push(Answer {
            name: Some("x".into()),
            type_: Some("A".into()),
            data: Some("1.2.3.4".into()),
        });
        ev.dns.answers.push(Answer::default());
        ev.dns.resolved_ip.extend([ip4, ip6]);
        ev.dns.response_code = Some("NOERROR".into());
        ev.dns.header_flags.push("AD");
        ev.source = Endpoint {
            ip: Some(ip6),
            port: Some(65535),
            domain: Some("d".into()),
            mac: Some("00-00-5E-00-53-01".into()),
        };
        ev.destination.ip = Some(ip4);
        ev.client.ip = Some(ip4);
        ev.client.port = Some(1);
        ev.server.port = Some(53);
        ev.network.transport = Some("udp");
        ev.network.protocol = Some("dns");
        ev.related.ip.extend([ip4, ip6]);
        ev.related.hosts.push("h".into());
        ev.host.hostname = Some("pihole".into());
        ev.host.name = Some("pihole.lan".into());
        ev.observer = Observer {
            hostname: Some("o".into()),
            product: Some("dnsmasq"),
            vendor: Some("Pi-hole"),
            type_: Some("dns"),
            version: Some("2.90".into()),
            ..Default::default()
        };
        ev.process.name = Some("dnsmasq".into());
        ev.process.pid = Some(u32::MAX);
        ev.rule.name = Some("gravity blocked".into());
        ev.rule.ruleset = Some("gravity");
        ev.rule.category = Some("blocklist");
        ev.log.syslog = Some(Box::new(Syslog {
            priority: Some(191),
            facility: Some(CodeName {
                code: 23,
                name: "local7",
            }),
            severity: Some(CodeName {
                code: 7,
                name: "debug",
            }),
            appname: Some("a".into()),
            hostname: Some("h".into()),
            procid: Some("1".into()),
            msgid: Some("m".into()),
            version: Some("1".into()),
            structured_data: vec![SdElement {
                id: "id@1".into(),
                params: vec![("k".into(), "v\"]".into())],
            }],
        }));
        ev.log.source.address = Some("127.0.0.1:514".into());
        ev.log.file.path = Some("/var/log/pihole.log".into());
        ev.log.offset = Some(u64::MAX);
        ev.labels.set("hosts_file", "/etc/hosts");
        ev.misp_src.add("Feed-\"A\"");
        ev.threat.feed.name.add("Feed-\"A\"");
        ev.threat.enrichments.push(Enrichment {
            indicator: ThreatIndicator {
                type_: "domain-name",
                provider: Some("MISP".into()),
                description: Some("C2 \\ \u{1}".into()),
                first_seen: Some("2026-01-02T00:00:00Z".into()),
                last_seen: Some("2026-11-01T00:00:00Z".into()),
                ip: None,
                url: IndicatorUrl {
                    domain: Some("example.co.uk".into()),
                },
            },
            matched: Matched {
                atomic: "example.co.uk".into(),
                field: "dns.question.name",
                type_: "parent_domain",
                occurred: Some(Utc.with_ymd_and_hms(2026, 1, 8, 3, 4, 7).unwrap()),
            },
            feed: EnrichmentFeed {
                name: Some("Feed-\"A\"".into()),
            },
        });
        ev.threat.enrichments.push(Enrichment {
            indicator: ThreatIndicator {
                type_: "ipv6-addr",
                ip: Some(ip6),
                ..Default::default()
            },
            matched: Matched {
                atomic: "2001:db8::1".into(),
                field: "dns.resolved_ip",
                type_: "exact",
                occurred: None,
            },
            ..Default::default()
        });
        ev.tags.push(tag::NO_MATCH);
        same_as_serde(&ev);
        ev.misp_src.add("Feed-B");
        ev.threat.feed.name.add("Feed-B");
        same_as_serde(&ev);
        let mut only_feed = Event::default();
        only_feed.threat.feed.name.add("x");
        only_feed.misp_src.add("none");
        same_as_serde(&only_feed);
    }

    #[test]
    fn empty_event_and_microsecond_stamp_match_serde() {
        same_as_serde(&Event::default());
        let ev = Event {
            timestamp: Some(
                Utc.with_ymd_and_hms(2026, 1, 8, 3, 4, 5).unwrap()
                    + chrono::Duration::microseconds(7),
            ),
            ..Default::default()
        };
        same_as_serde(&ev);
    }

    #[test]
    fn escaping_matches_serde_for_every_byte() {
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        for s in [
            all.as_str(),
            "plain",
            "",
            "\"",
            "12345678\\",
            "1234567\u{1f}x",
        ] {
            let mut ours = Vec::new();
            string(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }
}
