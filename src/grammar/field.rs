//! The ECS fields a grammar may fill, and how a captured or constant value is
//! written into an [`Event`].
//!
//! Field names are resolved once, when a grammar is compiled, into a [`Field`];
//! matching a line then only runs a `match` on that enum. Each field accepts some
//! kinds of value (an IP field takes an address, an endpoint a host and port, a
//! constant-only field such as `event.action` a constant), and the compiler
//! refuses a rule that puts the wrong kind into a field.

use std::net::IpAddr;

use crate::event::custom::{self, CustomType};
use crate::event::{Answer, CustomValue, Endpoint, Event, Str};

/// A value produced by a capture.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Text(&'a str),
    Owned(Str),
    Ip(IpAddr),
    Endpoint(IpAddr, Option<u16>),
    Uint(u64),
    Bool(bool),
}

/// What kind of value a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// A keyword: any text, or an address or number written as text.
    Text,
    /// An IP address.
    Ip,
    /// An address with an optional port (`source`, `destination`, `server`).
    Endpoint,
    /// An unsigned integer.
    Uint,
    /// Constants only (set with `field = value`), never a capture.
    Constant,
    /// A list of constants (`event.type = [denied, protocol]`).
    ConstantList,
    /// A yes/no value: a `bool` capture, or the constant `true` or `false`.
    Bool,
}

/// Which endpoint object of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Source,
    Destination,
    Server,
}

/// A settable ECS field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    EventKind,
    EventCategory,
    EventType,
    EventAction,
    EventOutcome,
    EventReason,
    EventDataset,
    EventModule,
    EventProvider,
    DnsType,
    DnsId,
    DnsOpCode,
    DnsQuestionName,
    DnsQuestionType,
    DnsQuestionClass,
    DnsAnswerName,
    DnsAnswerType,
    DnsAnswerData,
    DnsResolvedIp,
    DnsResponseCode,
    DnsHeaderFlags,
    Endpoint(Side),
    EndpointIp(Side),
    EndpointPort(Side),
    EndpointDomain(Side),
    EndpointMac(Side),
    NetworkTransport,
    NetworkProtocol,
    RelatedIp,
    RelatedHosts,
    HostHostname,
    ObserverHostname,
    ObserverProduct,
    ObserverVendor,
    ObserverType,
    ObserverVersion,
    ProcessName,
    ProcessPid,
    RuleName,
    RuleRuleset,
    RuleCategory,
    Tags,
    ErrorMessage,
    DnsmasqSerial,
    FilePath,
    LogOriginFileName,
    LogOriginFileLine,
    ObserverIngressInterfaceName,
    /// A field of [`custom::FIELDS`], by its place there.
    Custom(u16),
    EventDuration,
    LogLevel,
    ProcessThreadId,
    Label(&'static str),
}

/// Every field name a grammar may use, for error messages.
pub const FIELD_NAMES: &[&str] = &[
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.outcome",
    "event.reason",
    "event.dataset",
    "event.module",
    "event.provider",
    "dns.type",
    "dns.id",
    "dns.op_code",
    "dns.question.name",
    "dns.question.type",
    "dns.question.class",
    "dns.answers",
    "dns.answers.name",
    "dns.answers.type",
    "dns.answers.data",
    "dns.resolved_ip",
    "dns.response_code",
    "dns.header_flags",
    "client",
    "client.ip",
    "client.port",
    "client.domain",
    "client.mac",
    "source",
    "source.ip",
    "source.port",
    "source.domain",
    "destination",
    "destination.ip",
    "destination.port",
    "destination.domain",
    "server",
    "server.ip",
    "server.port",
    "server.domain",
    "network.transport",
    "network.protocol",
    "related.ip",
    "related.hosts",
    "host.hostname",
    "observer.hostname",
    "observer.product",
    "observer.vendor",
    "observer.type",
    "observer.version",
    "process.name",
    "process.pid",
    "rule.name",
    "rule.ruleset",
    "rule.category",
    "tags",
    "error.message",
    "dnsmasq.serial",
    "dnsmasq.<field>, pihole.<field>, bind.<field>, unbound.<field>, pdns.<field>, coredns.<field>, adguard.<field> (the README's custom field list)",
    "file.path",
    "log.origin.file.name",
    "log.origin.file.line",
    "observer.ingress.interface.name",
    "event.duration",
    "log.level",
    "process.thread.id",
    "labels.<name>",
];

impl Accepts {
    /// Whether only constants (never captures) fill the field.
    pub fn is_constant(self) -> bool {
        matches!(self, Accepts::Constant | Accepts::ConstantList)
    }
}

impl Field {
    /// Resolves an ECS field name. `dns.answers` is the same field as
    /// `dns.answers.data`: the `answer` capture fills the whole answer from it.
    pub fn parse(name: &str) -> Option<Field> {
        use Field::*;
        let side = |s: &str| match s {
            "client" => Some(Side::Client),
            "source" => Some(Side::Source),
            "destination" => Some(Side::Destination),
            "server" => Some(Side::Server),
            _ => None,
        };
        if let Some(label) = name.strip_prefix("labels.") {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            return ok.then(|| Label(intern(label)));
        }
        if let Some(s) = side(name) {
            return Some(Endpoint(s));
        }
        if let Some((head, tail)) = name.split_once('.') {
            if let Some(s) = side(head) {
                return match tail {
                    "ip" => Some(EndpointIp(s)),
                    "port" => Some(EndpointPort(s)),
                    "domain" => Some(EndpointDomain(s)),
                    "mac" => Some(EndpointMac(s)),
                    _ => None,
                };
            }
        }
        Some(match name {
            "event.kind" => EventKind,
            "event.category" => EventCategory,
            "event.type" => EventType,
            "event.action" => EventAction,
            "event.outcome" => EventOutcome,
            "event.reason" => EventReason,
            "event.dataset" => EventDataset,
            "event.module" => EventModule,
            "event.provider" => EventProvider,
            "dns.type" => DnsType,
            "dns.id" => DnsId,
            "dns.op_code" => DnsOpCode,
            "dns.question.name" => DnsQuestionName,
            "dns.question.type" => DnsQuestionType,
            "dns.question.class" => DnsQuestionClass,
            "dns.answers" | "dns.answers.data" => DnsAnswerData,
            "dns.answers.name" => DnsAnswerName,
            "dns.answers.type" => DnsAnswerType,
            "dns.resolved_ip" => DnsResolvedIp,
            "dns.response_code" => DnsResponseCode,
            "dns.header_flags" => DnsHeaderFlags,
            "network.transport" => NetworkTransport,
            "network.protocol" => NetworkProtocol,
            "related.ip" => RelatedIp,
            "related.hosts" => RelatedHosts,
            "host.hostname" => HostHostname,
            "observer.hostname" => ObserverHostname,
            "observer.product" => ObserverProduct,
            "observer.vendor" => ObserverVendor,
            "observer.type" => ObserverType,
            "observer.version" => ObserverVersion,
            "process.name" => ProcessName,
            "process.pid" => ProcessPid,
            "rule.name" => RuleName,
            "rule.ruleset" => RuleRuleset,
            "rule.category" => RuleCategory,
            "tags" => Tags,
            "dnsmasq.serial" => DnsmasqSerial,
            "error.message" => ErrorMessage,
            "file.path" => FilePath,
            "log.origin.file.name" => LogOriginFileName,
            "log.origin.file.line" => LogOriginFileLine,
            "observer.ingress.interface.name" => ObserverIngressInterfaceName,
            "event.duration" => EventDuration,
            "log.level" => LogLevel,
            "process.thread.id" => ProcessThreadId,
            _ => return custom::lookup(name).map(Custom),
        })
    }

    /// What values the field takes.
    pub fn accepts(self) -> Accepts {
        use Field::*;
        match self {
            EventKind | EventAction | EventOutcome | EventDataset | EventModule | EventProvider
            | DnsType | NetworkProtocol | ObserverProduct | ObserverVendor | ObserverType
            | RuleRuleset | RuleCategory => Accepts::Constant,
            EventCategory | EventType | Tags | DnsHeaderFlags => Accepts::ConstantList,
            DnsResolvedIp | RelatedIp | EndpointIp(_) => Accepts::Ip,
            Endpoint(_) => Accepts::Endpoint,
            EndpointPort(_) | ProcessPid | DnsmasqSerial | LogOriginFileLine | EventDuration
            | ProcessThreadId => Accepts::Uint,
            Custom(id) => match custom::FIELDS[id as usize].ty {
                CustomType::Long | CustomType::Date => Accepts::Uint,
                CustomType::Ip => Accepts::Ip,
                CustomType::Keyword | CustomType::Keywords(_) => Accepts::Text,
                CustomType::Boolean => Accepts::Bool,
            },
            _ => Accepts::Text,
        }
    }

    /// Whether a capture producing `kind` values may fill this field.
    pub fn takes_capture(self, produces: Accepts) -> bool {
        match (self.accepts(), produces) {
            (Accepts::Constant | Accepts::ConstantList, _) => false,
            (Accepts::Text, Accepts::Text | Accepts::Ip | Accepts::Uint) => true,
            (Accepts::Ip, Accepts::Ip) => true,
            (Accepts::Endpoint, Accepts::Ip | Accepts::Endpoint) => true,
            (Accepts::Uint, Accepts::Uint) => true,
            (Accepts::Bool, Accepts::Bool) => true,
            (Accepts::Text, Accepts::Bool) => true,
            _ => false,
        }
    }
}

/// Interns a string for the life of the process. Grammar constants are read once
/// at start-up, so this is bounded by the size of the grammar files.
pub fn intern(s: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static POOL: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pool = guard.get_or_insert_with(HashSet::new);
    if let Some(&found) = pool.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    pool.insert(leaked);
    leaked
}

/// A constant a rule sets, resolved at compile time.
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    Static(&'static str),
    List(Vec<&'static str>),
    Ip(IpAddr),
    Uint(u64),
}

fn endpoint(ev: &mut Event, side: Side) -> &mut Endpoint {
    match side {
        Side::Client => &mut ev.client,
        Side::Source => &mut ev.source,
        Side::Destination => &mut ev.destination,
        Side::Server => &mut ev.server,
    }
}

fn first_answer(ev: &mut Event) -> &mut Answer {
    if ev.dns.answers.is_empty() {
        ev.dns.answers.push(Answer::default());
    }
    &mut ev.dns.answers[0]
}

fn text_of(v: &Value<'_>) -> Str {
    match v {
        Value::Text(s) => Str::from(*s),
        Value::Owned(s) => s.clone(),
        Value::Ip(ip) => Str::from(ip.to_string()),
        Value::Endpoint(ip, _) => Str::from(ip.to_string()),
        Value::Uint(n) => Str::from(n.to_string()),
        Value::Bool(b) => Str::from(if *b { "true" } else { "false" }),
    }
}

/// The record classes a `dns.question.class` capture may hold (the field is
/// a constant string; an unknown class is left out).
fn class_of(s: &str) -> Option<&'static str> {
    ["IN", "CH", "HS", "CS", "NONE", "ANY"]
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(s))
}

/// The transports a `network.transport` capture may hold, lower case as ECS
/// writes them.
fn transport_of(s: &str) -> Option<&'static str> {
    ["udp", "tcp"]
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(s))
}

/// Writes a captured value into the event. The compiler has already checked
/// that the value's kind fits the field, so a mismatch here is ignored.
pub fn set_value(ev: &mut Event, field: Field, v: &Value<'_>) {
    use Field::*;
    // An empty capture (`%{rest}` at the end of a line) sets nothing.
    if matches!(v, Value::Text(t) if t.trim().is_empty()) {
        return;
    }
    match (field, v) {
        (EndpointIp(s), Value::Ip(ip) | Value::Endpoint(ip, _)) => endpoint(ev, s).ip = Some(*ip),
        (Endpoint(s), Value::Ip(ip)) => endpoint(ev, s).ip = Some(*ip),
        (Endpoint(s), Value::Endpoint(ip, port)) => {
            let e = endpoint(ev, s);
            e.ip = Some(*ip);
            e.port = *port;
        }
        (EndpointPort(s), Value::Uint(n)) => endpoint(ev, s).port = u16::try_from(*n).ok(),
        (ProcessPid, Value::Uint(n)) => ev.process.pid = u32::try_from(*n).ok(),
        (DnsmasqSerial, Value::Uint(n)) => ev.dnsmasq.serial = Some(*n),
        (LogOriginFileLine, Value::Uint(n)) => ev.log.origin.file.line = Some(*n),
        (Custom(id), v) => set_custom(ev, id, v),
        (EventDuration, Value::Uint(n)) => ev.event.duration = Some(*n),
        (ProcessThreadId, Value::Uint(n)) => ev.process.thread.id = Some(*n),
        (DnsQuestionClass, v) => {
            if let Some(c) = class_of(&text_of(v)) {
                ev.dns.question.class = Some(c);
            }
        }
        (NetworkTransport, v) => {
            if let Some(t) = transport_of(&text_of(v)) {
                ev.network.transport = Some(t);
            }
        }
        (DnsResolvedIp, Value::Ip(ip)) => {
            if !ev.dns.resolved_ip.contains(ip) {
                ev.dns.resolved_ip.push(*ip)
            }
        }
        (RelatedIp, Value::Ip(ip)) => ev.related.add_ip(*ip),
        (f, v) => set_text(ev, f, text_of(v)),
    }
}

fn set_text(ev: &mut Event, field: Field, s: Str) {
    use Field::*;
    match field {
        EventReason => ev.event.reason = Some(s),
        DnsId => ev.dns.id = Some(s),
        DnsOpCode => ev.dns.op_code = Some(s),
        DnsQuestionName => ev.dns.question.name = Some(s),
        DnsQuestionType => ev.dns.question.type_ = Some(s),
        DnsAnswerName => first_answer(ev).name = Some(s),
        DnsAnswerType => first_answer(ev).type_ = Some(s),
        DnsAnswerData => first_answer(ev).data = Some(s),
        DnsResponseCode => ev.dns.response_code = Some(s),
        EndpointDomain(side) => endpoint(ev, side).domain = Some(s),
        RelatedHosts => ev.related.add_host(&s),
        HostHostname => ev.host.hostname = Some(s),
        ObserverHostname => ev.observer.hostname = Some(s),
        ObserverVersion => ev.observer.version = Some(s),
        ProcessName => ev.process.name = Some(s),
        RuleName => ev.rule.name = Some(s),
        ErrorMessage => ev.error.message = Some(Str::from(s.trim())),
        EndpointMac(side) => endpoint(ev, side).mac = Some(s),
        FilePath => ev.file.path = Some(s),
        LogOriginFileName => ev.log.origin.file.name = Some(s),
        ObserverIngressInterfaceName => ev.observer.ingress.interface.name = Some(s),
        Custom(id) => set_custom(ev, id, &Value::Owned(s)),
        LogLevel => ev.log.level = Some(s),
        Label(key) => ev.labels.set(key, &s),
        _ => {}
    }
}

/// Writes a custom field, converting the value to the field's type: text is
/// trimmed (and split for a list), a number is a time in epoch seconds for a
/// date. A value that does not fit the type sets nothing.
fn set_custom(ev: &mut Event, id: u16, v: &Value<'_>) {
    let def = &custom::FIELDS[id as usize];
    let text = || text_of(v);
    let value = match (def.ty, v) {
        (CustomType::Long, Value::Uint(n)) => CustomValue::Long(*n),
        (CustomType::Date, Value::Uint(n)) => {
            let Some(t) = i64::try_from(*n)
                .ok()
                .and_then(|n| chrono::DateTime::from_timestamp(n, 0))
            else {
                return;
            };
            CustomValue::Date(t)
        }
        (CustomType::Ip, Value::Ip(ip) | Value::Endpoint(ip, _)) => CustomValue::Ip(*ip),
        (CustomType::Keyword, _) => match text().trim() {
            "" => return,
            t => CustomValue::Keyword(Str::from(t)),
        },
        (CustomType::Keywords(sep), _) => {
            let t = text();
            let parts: Vec<Str> = t
                .split(sep)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(Str::from)
                .collect();
            if parts.is_empty() {
                return;
            }
            CustomValue::Keywords(parts)
        }
        (CustomType::Boolean, _) => match text().trim() {
            "true" => CustomValue::Bool(true),
            "false" => CustomValue::Bool(false),
            _ => return,
        },
        _ => return,
    };
    let fields = if def.name.starts_with("pihole.") {
        &mut ev.pihole.fields
    } else if custom::is_product(def.name) {
        &mut ev.custom.0
    } else {
        &mut ev.dnsmasq.fields
    };
    fields.set(id, value);
}

/// Writes a rule's constant into the event.
pub fn set_constant(ev: &mut Event, field: Field, c: &Constant) {
    use Field::*;
    match (field, c) {
        (EventCategory, Constant::List(l)) => ev.event.category = l.iter().copied().collect(),
        (EventType, Constant::List(l)) => ev.event.type_ = l.iter().copied().collect(),
        (DnsHeaderFlags, Constant::List(l)) => {
            for f in l {
                if !ev.dns.header_flags.contains(f) {
                    ev.dns.header_flags.push(f)
                }
            }
        }
        (Tags, Constant::List(l)) => {
            for t in l {
                ev.tag(t)
            }
        }
        (field, Constant::Static(s)) => match field {
            EventKind => ev.event.kind = Some(s),
            EventAction => ev.event.action = Some(s),
            EventOutcome => ev.event.outcome = Some(s),
            EventDataset => ev.event.dataset = Some(s),
            EventModule => ev.event.module = Some(s),
            EventProvider => ev.event.provider = Some(s),
            DnsType => ev.dns.type_ = Some(s),
            DnsQuestionClass => ev.dns.question.class = Some(s),
            NetworkTransport => ev.network.transport = Some(s),
            NetworkProtocol => ev.network.protocol = Some(s),
            ObserverProduct => ev.observer.product = Some(s),
            ObserverVendor => ev.observer.vendor = Some(s),
            ObserverType => ev.observer.type_ = Some(s),
            RuleRuleset => ev.rule.ruleset = Some(s),
            RuleCategory => ev.rule.category = Some(s),
            other => set_text(ev, other, Str::from(*s)),
        },
        (field, Constant::Ip(ip)) => set_value(ev, field, &Value::Ip(*ip)),
        (field, Constant::Uint(n)) => set_value(ev, field, &Value::Uint(*n)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_name_resolves() {
        for f in custom::FIELDS {
            assert_eq!(
                Field::parse(f.name).map(|f| f.accepts() == Accepts::Bool),
                Some(f.ty == CustomType::Boolean),
                "{}",
                f.name
            );
        }
        assert_eq!(Field::parse("dnsmasq.nope"), None);
        for name in FIELD_NAMES.iter().filter(|n| !n.contains(' ')) {
            let name = name.replace("<name>", "x");
            assert!(Field::parse(&name).is_some(), "{name}");
        }
        assert_eq!(Field::parse("dns.nope"), None);
        assert_eq!(Field::parse("labels."), None);
        assert_eq!(Field::parse("labels.a b"), None);
    }

    #[test]
    fn kinds_are_checked() {
        let f = Field::parse("source.ip").unwrap();
        assert!(f.takes_capture(Accepts::Ip));
        assert!(!f.takes_capture(Accepts::Text));
        let f = Field::parse("event.action").unwrap();
        assert!(!f.takes_capture(Accepts::Text));
        let f = Field::parse("dns.question.name").unwrap();
        assert!(f.takes_capture(Accepts::Ip));
    }

    #[test]
    fn endpoint_sets_ip_and_port() {
        let mut ev = Event::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        set_value(
            &mut ev,
            Field::parse("destination").unwrap(),
            &Value::Endpoint(ip, Some(5353)),
        );
        assert_eq!(ev.destination.ip, Some(ip));
        assert_eq!(ev.destination.port, Some(5353));
    }

    #[test]
    fn custom_fields_take_their_type() {
        let set = |name: &str, v: Value<'_>| {
            let mut ev = Event::default();
            set_value(&mut ev, Field::parse(name).unwrap(), &v);
            serde_json::to_value(&ev).unwrap()
        };
        let d = set("dnsmasq.dnssec.keytag", Value::Uint(20326));
        assert_eq!(d["dnsmasq"]["dnssec"]["keytag"], 20326);
        let d = set("dnsmasq.stats.time", Value::Uint(1_795_828_255));
        assert_eq!(d["dnsmasq"]["stats"]["time"], "2026-11-28T01:10:55.000Z");
        let d = set("dnsmasq.compile_options", Value::Text(" IPv6  no-DBus "));
        assert_eq!(
            d["dnsmasq"]["compile_options"],
            serde_json::json!(["IPv6", "no-DBus"])
        );
        let d = set("dnsmasq.dhcp.tags", Value::Text("lan, known,"));
        assert_eq!(
            d["dnsmasq"]["dhcp"]["tags"],
            serde_json::json!(["lan", "known"])
        );
        let d = set("dnsmasq.cache.entry", Value::Text("   !F I    C   "));
        assert_eq!(d["dnsmasq"]["cache"]["entry"], "!F I    C");
        let d = set("dnsmasq.signal", Value::Uint(15));
        assert_eq!(
            d["dnsmasq"]["signal"], "15",
            "a number into a keyword is text"
        );
        let d = set("dnsmasq.cache.entry", Value::Text("    "));
        assert!(d.get("dnsmasq").is_none(), "padding alone sets nothing");
        let mut ev = Event::default();
        let f = Field::parse("dnsmasq.nameserver.dnssec").unwrap();
        set_constant(&mut ev, f, &Constant::Static("false"));
        assert_eq!(
            ev.dnsmasq.fields.get("dnsmasq.nameserver.dnssec"),
            Some(&CustomValue::Bool(false))
        );
        let f = Field::parse("dnsmasq.dhcp.address").unwrap();
        assert_eq!(f.accepts(), Accepts::Ip);
        assert!(!f.takes_capture(Accepts::Text));
        let f = Field::parse("dnsmasq.dnssec.digest").unwrap();
        assert!(!f.takes_capture(Accepts::Text), "a long takes a number");
    }

    #[test]
    fn intern_returns_the_same_pointer() {
        let a = intern("denied");
        let b = intern(&String::from("denied"));
        assert!(std::ptr::eq(a, b));
    }
}
