//! The typed Elastic Common Schema event that every stage passes along, and its
//! JSON encoding.
//!
//! An [`Event`] is a plain struct, not a JSON map: the fields dnsenrich writes are
//! known in advance, so they are typed (IP addresses are [`IpAddr`], counts are
//! integers) and serialised by serde in ECS's nested shape. Empty parts are left
//! out of the JSON so a housekeeping line does not carry an empty `dns` object.
//!
//! Short strings (record types, most names) live inline in [`Str`]
//! (`CompactString`) and constants set by grammar rules are `&'static str`
//! interned once at start-up, so building an event allocates little beyond
//! `event.original`.

pub mod custom;
mod json;

pub use custom::{CustomFields, CustomValue, ProductFields};

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use smallvec::SmallVec;

/// An owned string that stores up to 24 bytes inline.
pub type Str = compact_str::CompactString;

/// The ECS release every document conforms to, written as `ecs.version`.
///
/// 8.17.0 is the last 8.x release and the one the template's types are
/// checked against. Every field dnsenrich writes is defined the same way in
/// 8.17.0 and in the 9.x releases, so the documents are read correctly by an
/// 8.x stack (still the usual home install) and by a 9.x one; pinning a 9.x
/// release would claim conformance an 8.x `ecs@mappings` does not know of.
pub const ECS_VERSION: &str = "8.17.0";

/// Tags dnsenrich itself puts on events; documented in the README.
pub mod tag {
    /// No grammar rule matched the message; `event.original` holds the line.
    pub const NO_MATCH: &str = "_dnsenrich_nomatch";
    /// The line was not valid UTF-8; invalid bytes were replaced by U+FFFD.
    pub const INVALID_UTF8: &str = "_dnsenrich_invalid_utf8";
    /// The line or frame was longer than the maximum and was cut.
    pub const TRUNCATED: &str = "_dnsenrich_truncated";
    /// The line was empty (nothing but whitespace).
    pub const EMPTY: &str = "_dnsenrich_empty";
    /// dnsmasq replaced the queried name by `<name unprintable>`.
    pub const NAME_UNPRINTABLE: &str = "_dnsenrich_name_unprintable";
    /// A syslog header was present but malformed; the line was read as a bare message.
    pub const SYSLOG_HEADER_INVALID: &str = "_dnsenrich_syslog_header_invalid";
    /// Threat-intelligence lookup could not be done (lookup backend slow or down).
    pub const NOT_ENRICHED: &str = "_dnsenrich_not_enriched";
    /// A transaction closed without a reply line (idle timeout, eviction or
    /// stop); its `event.outcome` is `unknown`.
    pub const TXN_NO_REPLY: &str = "_dnsenrich_txn_no_reply";
    /// A transaction built from lines without their query line (lost, or
    /// read before dnsenrich started): client and question may be missing.
    pub const TXN_INCOMPLETE: &str = "_dnsenrich_txn_incomplete";
    /// A transaction emitted early because the open-transaction bound was
    /// reached (a flood of unique names); lines after it arrive late.
    pub const TXN_EVICTED: &str = "_dnsenrich_txn_evicted";
    /// A line that belongs to a transaction already emitted; it is sent as a
    /// line event of its own.
    pub const TXN_LATE: &str = "_dnsenrich_txn_late";
}

/// One ECS document.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Event {
    #[serde(
        rename = "@timestamp",
        serialize_with = "ser_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    /// The syslog MSG text: the line without its syslog header(s).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "Ecs::is_empty")]
    pub ecs: Ecs,
    /// Written only when the output is an Elasticsearch data stream.
    #[serde(skip_serializing_if = "DataStream::is_empty")]
    pub data_stream: DataStream,
    pub event: EventMeta,
    #[serde(skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    /// The host that asked the resolver.
    #[serde(skip_serializing_if = "Endpoint::is_empty")]
    pub client: Endpoint,
    #[serde(skip_serializing_if = "Endpoint::is_empty")]
    pub source: Endpoint,
    #[serde(skip_serializing_if = "Endpoint::is_empty")]
    pub destination: Endpoint,
    #[serde(skip_serializing_if = "Endpoint::is_empty")]
    pub server: Endpoint,
    #[serde(skip_serializing_if = "Network::is_empty")]
    pub network: Network,
    #[serde(skip_serializing_if = "Related::is_empty")]
    pub related: Related,
    #[serde(skip_serializing_if = "Host::is_empty")]
    pub host: Host,
    #[serde(skip_serializing_if = "Observer::is_empty")]
    pub observer: Observer,
    #[serde(skip_serializing_if = "Process::is_empty")]
    pub process: Process,
    #[serde(skip_serializing_if = "Rule::is_empty")]
    pub rule: Rule,
    #[serde(skip_serializing_if = "Log::is_empty")]
    pub log: Log,
    /// `file.*`: the file a line names (a hosts file, resolv.conf).
    #[serde(skip_serializing_if = "FileInfo::is_empty")]
    pub file: FileInfo,
    #[serde(skip_serializing_if = "ErrorInfo::is_empty")]
    pub error: ErrorInfo,
    #[serde(skip_serializing_if = "Dnsmasq::is_empty")]
    pub dnsmasq: Dnsmasq,
    #[serde(skip_serializing_if = "Pihole::is_empty")]
    pub pihole: Pihole,
    /// Product namespaces of the other resolvers (`bind.*`, `unbound.*`, …),
    /// from the same [`custom::FIELDS`] list.
    #[serde(flatten)]
    pub custom: ProductFields,
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// The classic dashboards' field: the feed name(s) of the indicators the
    /// event matched, or the configured "none" value after a clean miss.
    #[serde(skip_serializing_if = "Keywords::is_empty")]
    pub misp_src: Keywords,
    #[serde(skip_serializing_if = "Threat::is_empty")]
    pub threat: Threat,
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub tags: SmallVec<[&'static str; 2]>,
    /// What the decoder knew about the line that its document leaves out;
    /// read by the correlation stage, never written.
    #[serde(skip)]
    pub scratch: Scratch,
}

/// Line facts the correlation stage needs and the line's document does not
/// carry.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Scratch {
    /// The owner of a record dnsmasq logs without data (`alias is <CNAME>`):
    /// the CNAME's target is the owner of the next record of the answer.
    pub dataless_owner: Option<Str>,
}

/// `event.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct EventMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub category: SmallVec<[&'static str; 1]>,
    #[serde(rename = "type", skip_serializing_if = "SmallVec::is_empty")]
    pub type_: SmallVec<[&'static str; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    /// How long the resolver took to answer, in nanoseconds (ECS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// When dnsenrich received the line.
    #[serde(
        serialize_with = "ser_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<DateTime<Utc>>,
    /// On a transaction: the time of its first line.
    #[serde(
        serialize_with = "ser_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub start: Option<DateTime<Utc>>,
    /// On a transaction: the time of its last line.
    #[serde(
        serialize_with = "ser_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub end: Option<DateTime<Utc>>,
    /// The whole raw line; only with `keep_original` (and on lines that could
    /// not be parsed, so they can be read and replayed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub original: String,
}

/// `ecs.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Ecs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'static str>,
}

impl Ecs {
    pub fn is_empty(&self) -> bool {
        self.version.is_none()
    }
}

/// The dataset of an event whose grammar names none, so that it still has a
/// data stream to go to.
pub const DEFAULT_DATASET: &str = "pihole.dns";

/// `data_stream.*`: the data stream the event is written to,
/// `<type>-<dataset>-<namespace>`; the dataset is the event's `event.dataset`.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct DataStream {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'static str>,
}

impl DataStream {
    pub fn is_empty(&self) -> bool {
        self.type_.is_none() && self.dataset.is_none() && self.namespace.is_none()
    }
}

impl Event {
    /// Names the logs data stream of `namespace` the event goes to, after its
    /// `event.dataset` ([`DEFAULT_DATASET`] if the grammar gave none, which
    /// then becomes its `event.dataset` too, so the two always agree).
    pub fn set_data_stream(&mut self, namespace: &'static str) {
        let dataset = *self.event.dataset.get_or_insert(DEFAULT_DATASET);
        self.data_stream = DataStream {
            type_: Some("logs"),
            dataset: Some(dataset),
            namespace: Some(namespace),
        };
    }
}

/// `dnsmasq.*`: dnsmasq's own values that ECS has no field for.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Dnsmasq {
    /// The `log-queries=extra` serial that ties the lines of one query
    /// together. Not the DNS message id (`dns.id`): dnsmasq counts its own
    /// queries, and forked TCP children count on their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
    /// The record type of an answer dnsmasq logs without its data
    /// (`is <CNAME>`, `is <HTTPS>`); ECS requires `data` in every answer, so
    /// such an answer is not in `dns.answers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_type: Option<Str>,
    /// The typed fields of [`custom::FIELDS`] in this namespace.
    #[serde(flatten)]
    pub fields: CustomFields,
    /// On a transaction: its status, named as Pi-hole FTL's query status
    /// (`forwarded`, `cache`, `gravity`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// On a transaction: FTL's number for the status (`queries.status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u8>,
    /// On a transaction: how many log lines it was built from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<u32>,
    /// On a transaction: how many times the query was forwarded upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwards: Option<u32>,
}

impl Dnsmasq {
    pub fn is_empty(&self) -> bool {
        self.serial.is_none()
            && self.answer_type.is_none()
            && self.fields.is_empty()
            && self.status.is_none()
            && self.status_code.is_none()
            && self.lines.is_none()
            && self.forwards.is_none()
    }
}

/// `pihole.*`: Pi-hole's own values that ECS has no field for (the typed
/// fields of [`custom::FIELDS`] in this namespace).
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Pihole {
    #[serde(flatten)]
    pub fields: CustomFields,
}

impl Pihole {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// `file.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct FileInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Str>,
}

impl FileInfo {
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
    }
}

/// `error.*`: why a line could not be read into an event.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ErrorInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Str>,
}

impl ErrorInfo {
    pub fn is_empty(&self) -> bool {
        self.message.is_none()
    }
}

/// `dns.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Dns {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_code: Option<Str>,
    #[serde(skip_serializing_if = "Question::is_empty")]
    pub question: Question,
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub answers: SmallVec<[Answer; 1]>,
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub resolved_ip: SmallVec<[IpAddr; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<Str>,
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub header_flags: SmallVec<[&'static str; 1]>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.type_.is_none()
            && self.id.is_none()
            && self.op_code.is_none()
            && self.question.is_empty()
            && self.answers.is_empty()
            && self.resolved_ip.is_empty()
            && self.response_code.is_none()
            && self.header_flags.is_empty()
    }
}

/// `dns.question.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Question {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_domain: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_level_domain: Option<Str>,
}

impl Question {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.type_.is_none() && self.class.is_none()
    }
}

/// One entry of `dns.answers`.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Str>,
}

/// `client.*`, `source.*`, `destination.*`, `server.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str>,
    /// ECS spelling: upper-case hex pairs joined by `-`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Str>,
}

impl Endpoint {
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.port.is_none() && self.domain.is_none() && self.mac.is_none()
    }
}

/// `network.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
}

impl Network {
    pub fn is_empty(&self) -> bool {
        self.transport.is_none() && self.protocol.is_none()
    }
}

/// `related.*`: every IP and host name the event mentions, for pivoting.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Related {
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub ip: SmallVec<[IpAddr; 2]>,
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub hosts: SmallVec<[Str; 1]>,
}

impl Related {
    pub fn is_empty(&self) -> bool {
        self.ip.is_empty() && self.hosts.is_empty()
    }
    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ip.contains(&ip) {
            self.ip.push(ip);
        }
    }
    pub fn add_host(&mut self, host: &str) {
        if !self.hosts.iter().any(|h| h == host) {
            self.hosts.push(Str::from(host));
        }
    }
}

/// `host.*`: the machine the log line came from.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Host {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Str>,
}

impl Host {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.hostname.is_none()
    }
}

/// `observer.*`: the resolver that wrote the line.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Observer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Str>,
    #[serde(skip_serializing_if = "ObserverIngress::is_empty")]
    pub ingress: ObserverIngress,
}

impl Observer {
    pub fn is_empty(&self) -> bool {
        self.hostname.is_none()
            && self.product.is_none()
            && self.vendor.is_none()
            && self.type_.is_none()
            && self.version.is_none()
            && self.ingress.is_empty()
    }
}

/// `observer.ingress.*`: where a packet the line tells of came in.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ObserverIngress {
    pub interface: Interface,
}

impl ObserverIngress {
    pub fn is_empty(&self) -> bool {
        self.interface.name.is_none()
    }
}

/// `observer.ingress.interface.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Interface {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
}

/// `process.*`: the program named in the syslog tag.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Process {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Thread::is_empty")]
    pub thread: Thread,
}

impl Process {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.pid.is_none() && self.thread.is_empty()
    }
}

/// `process.thread.*`: the thread that wrote the line (Pi-hole FTL's log).
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Thread {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

impl Thread {
    pub fn is_empty(&self) -> bool {
        self.id.is_none()
    }
}

/// `rule.*`: for blocked queries, which Pi-hole list or mechanism blocked them.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Rule {
    /// The reason exactly as Pi-hole wrote it, e.g. `gravity blocked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    /// The list kind, e.g. `gravity`, `denylist-exact`, `denylist-regex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
}

impl Rule {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.ruleset.is_none() && self.category.is_none()
    }
}

/// `log.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Log {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog: Option<Box<Syslog>>,
    #[serde(skip_serializing_if = "LogSource::is_empty")]
    pub source: LogSource,
    #[serde(skip_serializing_if = "LogFile::is_empty")]
    pub file: LogFile,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "LogOrigin::is_empty")]
    pub origin: LogOrigin,
    /// The severity the program wrote in the line itself (`info`, `Warning`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Str>,
}

impl Log {
    pub fn is_empty(&self) -> bool {
        self.syslog.is_none()
            && self.source.is_empty()
            && self.file.is_empty()
            && self.offset.is_none()
            && self.origin.is_empty()
            && self.level.is_none()
    }
}

/// `log.origin.*`: the place in the logging program's source that wrote the
/// line (Pi-hole FTL debug builds append it).
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct LogOrigin {
    pub file: OriginFile,
}

impl LogOrigin {
    pub fn is_empty(&self) -> bool {
        self.file.name.is_none() && self.file.line.is_none()
    }
}

/// `log.origin.file.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct OriginFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

/// `log.source.*`: the network peer that sent the syslog message.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct LogSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Str>,
}

impl LogSource {
    pub fn is_empty(&self) -> bool {
        self.address.is_none()
    }
}

/// `log.file.*`: the file a tailed line came from.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct LogFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<std::sync::Arc<str>>,
}

impl LogFile {
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
    }
}

/// `log.syslog.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Syslog {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<CodeName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<CodeName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appname: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub procid: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Str>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ser_structured_data"
    )]
    pub structured_data: Vec<SdElement>,
}

/// A syslog facility or severity: its number and its name.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CodeName {
    pub code: u8,
    pub name: &'static str,
}

/// One RFC 5424 structured-data element, `[id name="value" ...]`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

/// A keyword field with one value or several. It is written as a plain string
/// when it holds one value (what the classic dashboards read from `misp_src`)
/// and as an array when it holds more; Elasticsearch indexes both the same way.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Keywords(pub SmallVec<[Str; 1]>);

impl Keywords {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds `v` unless it is already there.
    pub fn add(&mut self, v: &str) {
        if !self.0.iter().any(|x| x == v) {
            self.0.push(Str::from(v));
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| s.as_str())
    }
}

impl Serialize for Keywords {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

/// `threat.*`: what threat-intelligence lookups found for this event.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Threat {
    /// One entry per indicator (and feed) that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enrichments: Vec<Enrichment>,
    #[serde(skip_serializing_if = "ThreatFeed::is_empty")]
    pub feed: ThreatFeed,
}

impl Threat {
    pub fn is_empty(&self) -> bool {
        self.enrichments.is_empty() && self.feed.is_empty()
    }
}

/// `threat.feed.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ThreatFeed {
    /// The names of the feeds whose indicators matched.
    #[serde(skip_serializing_if = "Keywords::is_empty")]
    pub name: Keywords,
}

impl ThreatFeed {
    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
    }
}

/// One entry of `threat.enrichments`.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Enrichment {
    /// The feed the indicator came from, as Kibana's indicator-match rules
    /// write it (`threat.enrichments.feed.name`).
    #[serde(skip_serializing_if = "EnrichmentFeed::is_empty")]
    pub feed: EnrichmentFeed,
    pub indicator: ThreatIndicator,
    pub matched: Matched,
}

/// `threat.enrichments.feed.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct EnrichmentFeed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
}

impl EnrichmentFeed {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
    }
}

/// `threat.enrichments.indicator.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ThreatIndicator {
    /// `domain-name`, `ipv4-addr` or `ipv6-addr`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Str>,
    /// RFC 3339, checked before it is set (the field is mapped as a date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Str>,
    /// For IP indicators: the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "IndicatorUrl::is_empty")]
    pub url: IndicatorUrl,
}

/// `threat.enrichments.indicator.url.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct IndicatorUrl {
    /// For domain indicators: the domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str>,
}

impl IndicatorUrl {
    pub fn is_empty(&self) -> bool {
        self.domain.is_none()
    }
}

/// `threat.enrichments.matched.*`
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Matched {
    /// The value that matched, e.g. `evil.example` (a parent of the queried
    /// name when `type` is `parent_domain`).
    pub atomic: Str,
    /// The event field the value came from, e.g. `dns.question.name`.
    pub field: &'static str,
    /// `exact` or `parent_domain`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// When the match was made.
    #[serde(
        serialize_with = "ser_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub occurred: Option<DateTime<Utc>>,
}

/// `labels.*`: free-form keyword fields that user grammars may set.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Labels(pub Vec<(&'static str, Str)>);

impl Labels {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn set(&mut self, key: &'static str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = Str::from(value),
            None => self.0.push((key, Str::from(value))),
        }
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn ser_structured_data<S: Serializer>(sd: &[SdElement], s: S) -> Result<S::Ok, S::Error> {
    struct Params<'a>(&'a [(String, String)]);
    impl Serialize for Params<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    let mut map = s.serialize_map(Some(sd.len()))?;
    for el in sd {
        map.serialize_entry(&el.id, &Params(&el.params))?;
    }
    map.end()
}

/// Writes `2026-11-28T01:02:03.456Z` (milliseconds; microseconds when present)
/// without going through chrono's formatting machinery, which is slow on a hot path.
fn ser_timestamp<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => {
            let mut buf = String::with_capacity(32);
            format_timestamp(ts, &mut buf);
            s.serialize_str(&buf)
        }
        None => s.serialize_none(),
    }
}

/// Formats an RFC 3339 UTC timestamp as ECS expects it.
pub fn format_timestamp(ts: &DateTime<Utc>, out: &mut String) {
    let micros = ts.timestamp_subsec_micros();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        ts.year(),
        ts.month(),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    );
    if micros % 1000 == 0 {
        let _ = write!(out, ".{:03}Z", micros / 1000);
    } else {
        let _ = write!(out, ".{:06}Z", micros);
    }
}

impl Event {
    /// Adds a tag once.
    pub fn tag(&mut self, tag: &'static str) {
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
    }

    /// Appends this event as one line of JSON (no trailing newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        json::write_event(self, out);
    }

    /// The event as a JSON string.
    pub fn to_json(&self) -> String {
        let mut v = Vec::with_capacity(512);
        self.write_json(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn empty_parts_are_left_out() {
        let ev = Event::default();
        assert_eq!(ev.to_json(), r#"{"event":{}}"#);
    }

    #[test]
    fn timestamp_has_milliseconds_or_microseconds() {
        let ts = Utc.with_ymd_and_hms(2026, 1, 8, 3, 4, 5).unwrap();
        let mut s = String::new();
        format_timestamp(&ts, &mut s);
        assert_eq!(s, "2026-01-08T03:04:05.000Z");
        let ts = ts + chrono::Duration::microseconds(1234);
        s.clear();
        format_timestamp(&ts, &mut s);
        assert_eq!(s, "2026-01-08T03:04:05.001234Z");
    }

    #[test]
    fn nested_fields_serialise_in_ecs_shape() {
        let mut ev = Event::default();
        ev.dns.question.name = Some("example.com".into());
        ev.source.ip = Some("10.0.0.1".parse().unwrap());
        ev.event.type_.push("protocol");
        ev.labels.set("k", "v");
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["dns"]["question"]["name"], "example.com");
        assert_eq!(v["source"]["ip"], "10.0.0.1");
        assert_eq!(v["event"]["type"][0], "protocol");
        assert_eq!(v["labels"]["k"], "v");
    }

    #[test]
    fn fast_encoder_matches_serde_json() {
        let mut ev = Event::default();
        ev.event.original = "quote \" backslash \\ ctrl \u{1} tab \t é ✓ \u{FFFD}".into();
        ev.dns.question.name = Some("ä.example".into());
        ev.timestamp = Some(Utc.with_ymd_and_hms(2026, 1, 8, 3, 4, 5).unwrap());
        ev.labels.set("x", "y\n");
        let ours = ev.to_json();
        let reference = serde_json::to_string(&ev).unwrap();
        assert_eq!(ours, reference);
    }

    #[test]
    fn structured_data_is_an_object_of_objects() {
        let sl = Syslog {
            structured_data: vec![SdElement {
                id: "origin@1".into(),
                params: vec![("ip".into(), "1.2.3.4".into())],
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(&sl).unwrap();
        assert_eq!(v["structured_data"]["origin@1"]["ip"], "1.2.3.4");
    }
}
