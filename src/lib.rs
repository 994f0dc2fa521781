//! dnsenrich: parse Pi-hole and dnsmasq DNS query logs into Elastic Common Schema
//! events, enrich them with threat intelligence, and ship them to Elasticsearch.
//!
//! # Layout
//!
//! The modules in the order a line passes through them:
//!
//! * [`input`]: where frames come from — syslog over UDP, TCP and TLS, tailed files.
//! * [`decode`]: one raw line to one [`event::Event`], through the two below.
//!   * [`syslog`]: the syslog header (RFC 5424, RFC 3164, `pihole.log` lines).
//!   * [`grammar`]: the message text to ECS fields, by grammars kept as data.
//! * [`correlate`]: optionally, the lines of one DNS query into one transaction event.
//! * [`event`]: the typed ECS event every stage passes along, and its JSON.
//! * [`enrich`]: threat intelligence from memcached added to each event.
//! * [`output`]: where encoded events go — NDJSON or Elasticsearch `_bulk`,
//!   optionally through a crash-safe disk buffer.
//!
//! Around the flow:
//!
//! * [`pipeline`]: the wiring — builds the stages, the bounded channels and batches
//!   between them, the acknowledgements back to the inputs, and shutdown.
//! * [`indicator`]: the memcached key/value contract, written by [`sync`] and read
//!   by [`enrich`]; the one invariant that spans two processes.
//! * [`sync`]: the side job that loads indicators from MISP and blocklists.
//! * [`telemetry`]: Prometheus metrics, `/health`, `/ready`, and systemd.
//! * [`config`]: the TOML configuration and its validation.
//! * [`lines`]: length-bounded line reading, for `dnsenrich parse` and sync's lists.

pub mod config;
pub mod correlate;
pub mod decode;
pub mod enrich;
pub mod event;
pub mod grammar;
pub mod indicator;
pub mod input;
pub mod lines;
pub mod output;
pub mod pipeline;
pub mod sync;
pub mod syslog;
pub mod telemetry;
