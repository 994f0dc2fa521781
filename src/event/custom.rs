//! The custom field namespaces, `dnsmasq.*` and `pihole.*`, and the product
//! namespaces of the other resolvers (`bind.*`, `unbound.*`, `pdns.*`,
//! `coredns.*`, `adguard.*`): values a resolver logs that ECS has no field
//! for, each with a real type.
//!
//! [`FIELDS`] is the one list of them. The grammar compiler resolves a field
//! name against it (and refuses a name it does not hold), the Elasticsearch
//! template maps each entry with its type, and the README documents each one
//! (a test holds the README to the list). An event keeps its values in a
//! [`CustomFields`] sorted by their place in the list, so the JSON encoder
//! writes nested objects in one pass.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::Str;

/// The type of a custom field, as mapped in Elasticsearch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomType {
    /// A number (`long`), from a number in the line.
    Long,
    /// An IP address (`ip`).
    Ip,
    /// A time (`date`), from seconds since the epoch in the line.
    Date,
    /// One keyword, trimmed of surrounding spaces.
    Keyword,
    /// A list of keywords: the text split at the separator, each part trimmed.
    Keywords(char),
    /// `true` or `false`, set by a rule's constant.
    Boolean,
}

impl CustomType {
    /// The Elasticsearch mapping type.
    pub fn es_type(self) -> &'static str {
        match self {
            CustomType::Long => "long",
            CustomType::Ip => "ip",
            CustomType::Date => "date",
            CustomType::Keyword | CustomType::Keywords(_) => "keyword",
            CustomType::Boolean => "boolean",
        }
    }
}

/// One custom field.
#[derive(Debug)]
pub struct CustomField {
    /// The full dotted name, e.g. `dnsmasq.dnssec.keytag`.
    pub name: &'static str,
    pub ty: CustomType,
    /// An example value as it appears in a document.
    pub example: &'static str,
    /// The line kinds (grammar rules) that fill it.
    pub lines: &'static str,
}

const fn f(
    name: &'static str,
    ty: CustomType,
    example: &'static str,
    lines: &'static str,
) -> CustomField {
    CustomField {
        name,
        ty,
        example,
        lines,
    }
}

use CustomType::*;

/// Every custom field, sorted by name (a test checks it), so the fields of
/// one object are neighbours. `dnsmasq.serial` and `dnsmasq.answer_type` are
/// fields of [`super::Dnsmasq`] itself and not listed here.
pub static FIELDS: &[CustomField] = &[
    f("adguard.ad", Boolean, "true", "`querylog.json` `AD` (the answer was DNSSEC-authenticated)"),
    f("adguard.cached", Boolean, "false", "`querylog.json` `Cached`"),
    f("adguard.canonical_name", Keyword, "forcesafesearch.google.com", "`querylog.json` `Result.CanonName` (a rewrite or safe-search target)"),
    f("adguard.client_id", Keyword, "laptop", "`querylog.json` `CID` (the ClientID of a DoH/DoT/DoQ client)"),
    f("adguard.client_proto", Keyword, "doh", "`querylog.json` `CP`"),
    f("adguard.ecs", Keyword, "192.0.2.0/24", "`querylog.json` `ECS`"),
    f("adguard.filter_list_id", Long, "1", "`querylog.json` `Result.Rules[0].FilterListID`"),
    f("adguard.reason", Long, "3", "`querylog.json` `Result.Reason` (AdGuard Home's filtering reason code)"),
    f("adguard.service_name", Keyword, "tiktok", "`querylog.json` `Result.ServiceName` (a blocked service)"),
    f("adguard.upstream", Keyword, "tls://1.1.1.1:853", "`querylog.json` `Upstream`"),
    f("bind.additional_count", Long, "1", "9.21 `response:` lines"),
    f("bind.answer_count", Long, "1", "9.21 `response:` lines"),
    f("bind.authority_count", Long, "0", "9.21 `response:` lines"),
    f("bind.cookie", Keyword, "present", "`query:` flags `K` (a cookie was sent: `present`) and `V` (a valid server cookie: `valid`)"),
    f("bind.ecs", Keyword, "198.51.100.0/24/0", "`query:` lines ending in `[ECS …]`"),
    f("bind.edns_version", Long, "0", "`query:` flags `E(N)`"),
    f("bind.flags", Keyword, "+E(0)K", "`query:` lines: the flags as written"),
    f("bind.rrl_action", Keyword, "drop", "`rate limit ACTION response to …`, `would rate limit …`"),
    f("bind.rrl_key", Keyword, "17a62589", "`rate-limit` lines: the hash of the rate-limit bucket"),
    f("bind.rrl_prefix", Keyword, "192.0.2.0/24/24", "`rate-limit` lines: the client prefix limited"),
    f("bind.signed", Boolean, "false", "`query:` flags `S` (the request was signed)"),
    f("bind.source_location", Keyword, "query.c:5708", "`query failed (RCODE) for … at FILE:LINE`"),
    f("bind.tsig_key", Keyword, "ddns-key", "`client … /key NAME`"),
    f("bind.view", Keyword, "internal", "`client … view NAME:`"),
    f("coredns.bufsize", Long, "4096", "`log` plugin lines: the EDNS buffer size"),
    f("coredns.do", Boolean, "false", "`log` plugin lines: the DO bit"),
    f("coredns.request_size", Long, "41", "`log` plugin lines: request bytes"),
    f("coredns.response_size", Long, "68", "`log` plugin lines: response bytes"),
    f("dnsmasq.cache.entry", Keyword, "!F I    C", "cache dump table rows (`dump-entry`)"),
    f("dnsmasq.cache.insertions", Long, "26", "cache statistics (`dump-cache-size`)"),
    f("dnsmasq.cache.name", Keyword, "bind", "cache dump table rows (`dump-entry`)"),
    f("dnsmasq.cache.reused", Long, "0", "cache statistics (`dump-cache-size`): insertions that re-used unexpired entries"),
    f("dnsmasq.cache.size", Long, "10000", "`started, version … cachesize N`, cache statistics"),
    f("dnsmasq.compile_options", Keywords(' '), "[\"IPv6\", \"GNU-getopt\", \"no-DBus\"]", "`compile time options:`"),
    f("dnsmasq.dhcp.address", Ip, "192.0.2.55", "`DHCP<TYPE>(iface) ADDR MAC …`: the address the message is about (requested, offered, acknowledged, released)"),
    f("dnsmasq.dhcp.detail", Keyword, "00:01:00:01:2a:3b:4c:5d:00:00:5e:00:53:01", "DHCP messages and ranges in a shape without a typed rule (DHCPv6 DUIDs, static-only ranges, infinite leases)"),
    f("dnsmasq.dhcp.lease_time", Long, "3600", "`DHCP, IP range … lease time 1h`, `sent … option: 51 lease-time 1h` (seconds)"),
    f("dnsmasq.dhcp.message_type", Keyword, "ACK", "`DHCP<TYPE>(iface) …` (DISCOVER, OFFER, REQUEST, ACK, NAK, INFORM, RELEASE, DECLINE, SOLICIT, …)"),
    f("dnsmasq.dhcp.next_server", Ip, "192.0.2.1", "`next server:` (`--log-dhcp`)"),
    f("dnsmasq.dhcp.option.code", Long, "54", "`sent size: N option: N NAME VALUE` (`--log-dhcp`)"),
    f("dnsmasq.dhcp.option.name", Keyword, "server-identifier", "`sent size: … option: …` (`--log-dhcp`)"),
    f("dnsmasq.dhcp.option.size", Long, "4", "`sent size: … option: …` (`--log-dhcp`): bytes"),
    f("dnsmasq.dhcp.option.value", Keyword, "192.0.2.1", "`sent size: … option: …` (`--log-dhcp`), as dnsmasq prints it"),
    f("dnsmasq.dhcp.range.end", Ip, "192.0.2.60", "`available DHCP range:`, `DHCP, IP range`, `DHCPv6, IP range`"),
    f("dnsmasq.dhcp.range.start", Ip, "192.0.2.50", "`available DHCP range:`, `DHCP, IP range`, `DHCPv6, IP range`"),
    f("dnsmasq.dhcp.rebinding_time", Long, "3150", "`sent … option: 59 T2 52m30s` (seconds)"),
    f("dnsmasq.dhcp.renewal_time", Long, "1800", "`sent … option: 58 T1 30m` (seconds)"),
    f("dnsmasq.dhcp.requested_options", Keywords(','), "[\"1:netmask\", \"3:router\"]", "`requested options:` (`--log-dhcp`)"),
    f("dnsmasq.dhcp.tags", Keywords(','), "[\"lan\", \"known\"]", "`tags:` (`--log-dhcp`)"),
    f("dnsmasq.dhcp.user_class", Keyword, "homelab", "`user class:` (`--log-dhcp`)"),
    f("dnsmasq.dhcp.vendor_class", Keyword, "MSFT 5.0", "`vendor class:` (`--log-dhcp`)"),
    f("dnsmasq.dhcp.xid", Long, "1589698051", "every `--log-dhcp` line (the DHCP transaction id in front)"),
    f("dnsmasq.dnssec.algorithm", Long, "13", "`reply NAME is DNSKEY keytag K, algo A`, `… is DS for keytag K, algo A, digest D`"),
    f("dnsmasq.dnssec.algorithm_supported", Boolean, "false", "keytag lines ending in `(not supported)`"),
    f("dnsmasq.dnssec.anchor", Keyword, "<root>", "`configured with trust anchor for NAME keytag K`"),
    f("dnsmasq.dnssec.digest", Long, "2", "`reply NAME is DS for keytag K, algo A, digest D`"),
    f("dnsmasq.dnssec.keytag", Long, "20326", "DNSKEY and DS replies, `configured with trust anchor`"),
    f("dnsmasq.dnssec.mode", Keyword, "but DNSSEC timestamp checking disabled", "`DNSSEC validation enabled …` (what follows, if anything)"),
    f("dnsmasq.dnssec.status", Keyword, "BOGUS", "`validation … is STATUS`, `reply NAME is BOGUS DS`, `… is no DS`"),
    f("dnsmasq.file.entries", Long, "112231", "`read FILE - N names|addresses`"),
    f("dnsmasq.file.entry_type", Keyword, "addresses", "`read FILE - N names|addresses`"),
    f("dnsmasq.ipset", Keyword, "dnsenrich4", "`ipset add SET ADDR NAME`"),
    f("dnsmasq.nameserver.dnssec", Boolean, "false", "`using nameserver … for domain NAME (no DNSSEC)`"),
    f("dnsmasq.nameserver.domain", Keyword, "home.lan", "`using nameserver ADDR for domain NAME`, `using only locally-known addresses for NAME`"),
    f("dnsmasq.nameserver.local_only", Boolean, "true", "`using only locally-known addresses for NAME`"),
    f("dnsmasq.nameserver.scope", Keyword, "standard nameservers for example.test", "other `using …` lines, as written"),
    f("dnsmasq.nftset", Keyword, "4 inet dnsenrich resolved4", "`nftset add SET ADDR NAME`"),
    f("dnsmasq.signal", Keyword, "SIGTERM", "`exiting on receipt of SIGNAL`"),
    f("dnsmasq.startup", Keyword, "cache disabled", "`started, version V …` without a cache size"),
    f("dnsmasq.stats.dnssec.crypto_work_hwm", Long, "9", "`DNSSEC per-query crypto work HWM N` (SIGUSR1)"),
    f("dnsmasq.stats.dnssec.signature_fails_hwm", Long, "0", "`DNSSEC per-RRSet signature fails HWM N` (SIGUSR1)"),
    f("dnsmasq.stats.dnssec.subqueries_hwm", Long, "5", "`DNSSEC per-query subqueries HWM N` (SIGUSR1)"),
    f("dnsmasq.stats.pool.allocated", Long, "2400", "`pool memory in use N, max N, allocated N` (SIGUSR1)"),
    f("dnsmasq.stats.pool.in_use", Long, "240", "`pool memory in use …` (SIGUSR1)"),
    f("dnsmasq.stats.pool.max", Long, "336", "`pool memory in use …` (SIGUSR1)"),
    f("dnsmasq.stats.queries.answered_locally", Long, "18", "`queries forwarded N, queries answered locally N` (SIGUSR1)"),
    f("dnsmasq.stats.queries.authoritative", Long, "0", "`queries for authoritative zones N` (SIGUSR1)"),
    f("dnsmasq.stats.queries.forwarded", Long, "41", "`queries forwarded N, …` (SIGUSR1)"),
    f("dnsmasq.stats.queries.stale", Long, "1", "`queries answered from stale cache N` (SIGUSR1)"),
    f("dnsmasq.stats.server.failed", Long, "0", "`server ADDR: queries sent N, retried N, failed N, …` (SIGUSR1)"),
    f("dnsmasq.stats.server.latency_ms", Long, "12", "`server ADDR: … avg. latency Nms` (SIGUSR1)"),
    f("dnsmasq.stats.server.nxdomain", Long, "2", "`server ADDR: … nxdomain replies N, …` (SIGUSR1)"),
    f("dnsmasq.stats.server.queries_sent", Long, "26", "`server ADDR: queries sent N, …` (SIGUSR1)"),
    f("dnsmasq.stats.server.retried", Long, "0", "`server ADDR: … retried N, …` (SIGUSR1)"),
    f("dnsmasq.stats.server.retried_or_failed", Long, "0", "`server ADDR: queries sent N, retried or failed N` (SIGUSR1, dnsmasq before 2.89)"),
    f("dnsmasq.stats.tcp_children.highest", Long, "1", "`child processes for TCP requests: in use N, highest since last SIGUSR1 N, max allowed N.`"),
    f("dnsmasq.stats.tcp_children.in_use", Long, "0", "`child processes for TCP requests: …`"),
    f("dnsmasq.stats.tcp_children.max", Long, "20", "`child processes for TCP requests: …`"),
    f("dnsmasq.stats.time", Date, "2026-11-28T01:10:55.000Z", "`time N` at the head of the SIGUSR1 dump (dnsmasq's clock, epoch seconds)"),
    f("pdns.additional", Long, "1", "classic `answer to question …: N answers, N additional`"),
    f("pdns.answers", Long, "1", "classic `answer to question …: N answers, …`"),
    f("pdns.dotout", Long, "0", "structured `Answer` lines: outgoing DoT queries"),
    f("pdns.ecs", Keyword, "198.51.100.0/24", "classic `question for … (ecs SUBNET)`"),
    f("pdns.msg", Keyword, "Enabling IPv4 transport for outgoing queries", "structured lines without a rule of their own (`msg=`)"),
    f("pdns.net_duration", Long, "617317000", "structured `Answer` lines: `netms` (nanoseconds waited on the network)"),
    f("pdns.outqueries", Long, "13", "`Answer` lines and classic answers: outgoing queries"),
    f("pdns.questions", Long, "3", "classic `stats: N questions, …`"),
    f("pdns.rd", Boolean, "true", "structured `Question`/`Answer` lines: the RD bit"),
    f("pdns.stats", Keyword, "30 cache entries, 0 negative entries, 0% cache hits", "classic `stats: N questions, …` (the rest as written)"),
    f("pdns.subsystem", Keyword, "config", "structured lines (`subsystem=`)"),
    f("pdns.tcpout", Long, "0", "structured `Answer` lines: outgoing TCP queries"),
    f("pdns.throttled", Long, "0", "structured `Answer` lines: throttled outgoing queries"),
    f("pdns.timeouts", Long, "0", "structured `Answer` lines: timed-out outgoing queries"),
    f("pdns.validation_state", Keyword, "Secure", "structured `Answer` lines (`validationState`)"),
    f("unbound.cached", Boolean, "true", "`log-replies` lines: the answer came from the cache"),
    f("unbound.interface_type", Keyword, "udp", "1.19.3+ `log-destaddr` lines (` on udp ADDR PORT`)"),
    f("unbound.local_zone", Keyword, "local.test", "`log-local-actions` lines"),
    f("unbound.local_zone_type", Keyword, "static", "`log-local-actions` lines"),
    f("unbound.module", Keyword, "iterator", "`init module N: NAME`"),
    f("unbound.recursion_time_avg", Long, "1434000", "`average recursion processing time N sec` (statistics; nanoseconds)"),
    f("unbound.response_size", Long, "59", "`log-replies` lines: response bytes"),
    f("unbound.stats", Keyword, "10 queries, 5 answers from cache, 5 recursions, 0 prefetch, 0 rejected by ip ratelimiting", "`server stats for thread N: …` (the rest as written)"),
    f("unbound.thread", Long, "0", "`[PID:THREAD]` of every Unbound line, `server stats for thread N`"),
];

/// The namespaces custom fields live in: the top-level object each is written under.
pub const NAMESPACES: &[&str] = &[
    "dnsmasq", "pihole", "bind", "unbound", "pdns", "coredns", "adguard",
];

/// The place of `name` in [`FIELDS`].
pub fn lookup(name: &str) -> Option<u16> {
    FIELDS
        .binary_search_by(|f| f.name.cmp(name))
        .ok()
        .map(|i| i as u16)
}

/// A custom field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomValue {
    Long(u64),
    Ip(IpAddr),
    Date(DateTime<Utc>),
    Keyword(Str),
    Keywords(Vec<Str>),
    Bool(bool),
}

impl Serialize for CustomValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CustomValue::Long(n) => s.serialize_u64(*n),
            CustomValue::Ip(ip) => ip.serialize(s),
            CustomValue::Date(d) => {
                let mut buf = String::with_capacity(32);
                super::format_timestamp(d, &mut buf);
                s.serialize_str(&buf)
            }
            CustomValue::Keyword(k) => s.serialize_str(k),
            CustomValue::Keywords(l) => l.serialize(s),
            CustomValue::Bool(b) => s.serialize_bool(*b),
        }
    }
}

/// The custom values of one namespace, sorted by their place in [`FIELDS`].
/// A `Vec`, not inline storage: most events (every DNS line) have none, and
/// an empty `Vec` keeps the event small.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CustomFields(pub Vec<(u16, CustomValue)>);

impl CustomFields {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets field `id` (replacing a value it had).
    pub fn set(&mut self, id: u16, v: CustomValue) {
        match self.0.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => self.0[at].1 = v,
            Err(at) => self.0.insert(at, (id, v)),
        }
    }

    /// The value of the field named `name`, if set.
    pub fn get(&self, name: &str) -> Option<&CustomValue> {
        let id = lookup(name)?;
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    /// Sets the field named `name`, a name of [`FIELDS`] (the shipped code's
    /// own names; a test sets each one it uses).
    pub fn set_named(&mut self, name: &str, v: CustomValue) {
        match lookup(name) {
            Some(id) => self.set(id, v),
            None => debug_assert!(false, "{name} is not in custom::FIELDS"),
        }
    }

    /// The IP addresses among the values.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.0.iter().filter_map(|(_, v)| match v {
            CustomValue::Ip(ip) => Some(*ip),
            _ => None,
        })
    }
}

/// The `depth`-th dot-separated part of field `id`'s name (0 is the namespace).
pub fn segment(id: u16, depth: usize) -> &'static str {
    FIELDS[id as usize].name.split('.').nth(depth).unwrap_or("")
}

/// Whether the name of field `id` ends at `depth`.
pub fn is_leaf(id: u16, depth: usize) -> bool {
    FIELDS[id as usize].name.split('.').count() == depth + 1
}

/// How many entries from the start of `entries` share the part at `depth`.
pub fn run_len(entries: &[(u16, CustomValue)], depth: usize) -> usize {
    let seg = segment(entries[0].0, depth);
    entries
        .iter()
        .take_while(|(id, _)| segment(*id, depth) == seg)
        .count()
}

/// Serialises entries (all below one object at `depth`) as map entries.
struct Level<'a> {
    entries: &'a [(u16, CustomValue)],
    depth: usize,
}

impl Level<'_> {
    fn entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let mut rest = self.entries;
        while let Some((id, v)) = rest.first() {
            if is_leaf(*id, self.depth) {
                map.serialize_entry(segment(*id, self.depth), v)?;
                rest = &rest[1..];
                continue;
            }
            let n = run_len(rest, self.depth);
            let inner = Level {
                entries: &rest[..n],
                depth: self.depth + 1,
            };
            map.serialize_entry(segment(*id, self.depth), &inner)?;
            rest = &rest[n..];
        }
        Ok(())
    }
}

impl Serialize for Level<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.entries(&mut map)?;
        map.end()
    }
}

impl Serialize for CustomFields {
    /// As map entries below the namespace object (used with `#[serde(flatten)]`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        Level {
            entries: &self.0,
            depth: 1,
        }
        .entries(&mut map)?;
        map.end()
    }
}

/// The product namespaces' values (`bind.*`, `unbound.*`, …), kept on the
/// event itself and written as one top-level object per namespace (the
/// values are sorted by name, so each namespace's are neighbours).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProductFields(pub CustomFields);

impl std::ops::Deref for ProductFields {
    type Target = CustomFields;
    fn deref(&self) -> &CustomFields {
        &self.0
    }
}

impl std::ops::DerefMut for ProductFields {
    fn deref_mut(&mut self) -> &mut CustomFields {
        &mut self.0
    }
}

/// Whether field `name` is kept in [`ProductFields`] rather than in the
/// `dnsmasq` or `pihole` object.
pub fn is_product(name: &str) -> bool {
    !(name.starts_with("dnsmasq.") || name.starts_with("pihole."))
}

impl Serialize for ProductFields {
    /// As top-level map entries, one per namespace (used with `#[serde(flatten)]`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        Level {
            entries: &self.0 .0,
            depth: 0,
        }
        .entries(&mut map)?;
        map.end()
    }
}

/// A value of field `id`'s type, for tests that want every field set.
#[cfg(test)]
pub fn sample(id: u16) -> CustomValue {
    match FIELDS[id as usize].ty {
        Long => CustomValue::Long(7),
        Ip => CustomValue::Ip("192.0.2.7".parse().unwrap()),
        Date => CustomValue::Date(DateTime::from_timestamp(1_795_828_255, 0).unwrap()),
        Keyword => CustomValue::Keyword("k \"q\"".into()),
        Keywords(_) => CustomValue::Keywords(["a".into(), "b".into()].into_iter().collect()),
        Boolean => CustomValue::Bool(false),
    }
}

/// Every field of [`FIELDS`] set to [`sample`], in `dnsmasq`, `pihole` and
/// the product namespaces.
#[cfg(test)]
pub fn all_samples() -> (CustomFields, CustomFields, ProductFields) {
    let (mut d, mut p, mut o) = (
        CustomFields::default(),
        CustomFields::default(),
        ProductFields::default(),
    );
    for (i, f) in FIELDS.iter().enumerate() {
        let target = if f.name.starts_with("pihole.") {
            &mut p
        } else if f.name.starts_with("dnsmasq.") {
            &mut d
        } else {
            &mut o.0
        };
        target.set(i as u16, sample(i as u16));
    }
    (d, p, o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_no_field_is_an_object_too() {
        for w in FIELDS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
            let object = format!("{}.", w[0].name);
            assert!(
                !w[1].name.starts_with(&object),
                "{} is a field and an object",
                w[0].name
            );
        }
        for f in FIELDS {
            let ns = f.name.split('.').next().unwrap();
            assert!(NAMESPACES.contains(&ns), "{}", f.name);
            assert!(f.name.split('.').count() <= 6, "{}", f.name);
            assert_eq!(
                lookup(f.name).map(|i| FIELDS[i as usize].name),
                Some(f.name)
            );
        }
        assert_eq!(lookup("dnsmasq.nope"), None);
    }

    #[test]
    fn the_readme_documents_every_field_with_its_type() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let section = readme
            .split("### Custom fields (dnsmasq.\\*, pihole.\\*, product namespaces)")
            .nth(1)
            .expect("the README's custom fields section");
        let section = section.split("\n#").next().unwrap();
        for f in FIELDS {
            let ty = match f.ty {
                Keywords(_) => "keyword (list)",
                t => t.es_type(),
            };
            let row = format!("| `{}` | {ty} |", f.name);
            assert!(section.contains(&row), "README lacks {row}");
        }
        let rows = section.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(
            rows,
            FIELDS.len(),
            "a README row for a field that does not exist"
        );
    }

    #[test]
    fn values_stay_sorted_and_nest() {
        let mut c = CustomFields::default();
        let id = |n| lookup(n).unwrap();
        c.set(id("dnsmasq.stats.pool.max"), CustomValue::Long(3));
        c.set(id("dnsmasq.cache.size"), CustomValue::Long(1));
        c.set(id("dnsmasq.stats.pool.in_use"), CustomValue::Long(2));
        c.set(id("dnsmasq.signal"), CustomValue::Keyword("SIGHUP".into()));
        c.set(id("dnsmasq.stats.pool.max"), CustomValue::Long(4));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cache": {"size": 1},
                "signal": "SIGHUP",
                "stats": {"pool": {"in_use": 2, "max": 4}},
            })
        );
        assert_eq!(c.get("dnsmasq.cache.size"), Some(&CustomValue::Long(1)));
    }

    #[test]
    fn product_fields_are_one_top_level_object_per_namespace() {
        let mut p = ProductFields::default();
        p.set_named("unbound.thread", CustomValue::Long(0));
        p.set_named("bind.view", CustomValue::Keyword("internal".into()));
        p.set_named("bind.signed", CustomValue::Bool(false));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "bind": {"signed": false, "view": "internal"},
                "unbound": {"thread": 0},
            })
        );
        assert!(is_product("pdns.rd") && !is_product("dnsmasq.signal"));
    }
}
