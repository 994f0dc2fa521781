//! dnsenrich: parse Pi-hole and dnsmasq DNS query logs into Elastic Common Schema
//! events, enrich them with threat intelligence, and ship them to Elasticsearch.
//!
//! The stages, in the order a line passes through them:
//! [`syslog`] (header decoding) → [`grammar`] (message → ECS fields) →
//! [`decode`] (the two together, one line to one [`event::Event`]).

pub mod config;
pub mod daemon;
pub mod decode;
pub mod enrich;
pub mod event;
pub mod grammar;
pub mod indicator;
pub mod input;
pub mod lines;
pub mod mix;
pub mod output;
pub mod pipeline;
pub mod shutdown;
pub mod sync;
pub mod syslog;
pub mod telemetry;
pub mod workers;
