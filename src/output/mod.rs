//! Outputs: where encoded events go — an NDJSON stream (stdout or a file) or
//! Elasticsearch's `_bulk` API.
//!
//! An output owns the receiving end of the last pipeline channel. It fires a
//! batch's acks once the batch is handed on for good — written to the NDJSON
//! sink, or settled item by item by Elasticsearch (stored, already stored, or
//! written to the dead-letter file) — and it returns when the channel is closed
//! and everything it took in has been settled. That is how shutdown reaches it:
//! no message, just the upstream senders going away (see [`crate::pipeline`]).
//!
//! The shape is config → build → run: [`OutputConfig`] is what the user writes;
//! [`OutputConfig::build`] checks it, reads secret and CA files and opens the
//! NDJSON file, refusing bad values with the key and the reason; [`Output::run`]
//! does the work. Dropping the `run` future abandons what is in flight: those
//! acks are dropped, not fired, so the inputs treat the data as not delivered.

pub mod buffer;
pub mod dead_letter;
pub mod elasticsearch;
pub mod ndjson;
pub mod replay;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::pipeline::{Ack, EncodedReceiver};
use serde::{Deserialize, Serialize};

// The reopen signal is a pipeline signal like shutdown; outputs are its only
// readers, so it keeps its old path here too.
pub use crate::pipeline::shutdown::{reopen_channel, ReopenSignal, ReopenTrigger};

pub use self::elasticsearch::{ElasticsearchConfig, ElasticsearchOutput, RetryConfig, Secret};
pub use self::ndjson::{NdjsonConfig, NdjsonOutput};

/// Which output to use, and its settings. In a config file:
///
/// ```toml
/// [output]
/// type = "elasticsearch"   # or "ndjson" (the default)
/// url = "https://es.example:9200"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
// Built once at start-up; boxing would only make it clumsier to write.
#[allow(clippy::large_enum_variant)]
pub enum OutputConfig {
    Ndjson(NdjsonConfig),
    Elasticsearch(ElasticsearchConfig),
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig::Ndjson(NdjsonConfig::default())
    }
}

impl OutputConfig {
    /// Checks the settings and prepares the output.
    pub fn build(&self) -> Result<Output, OutputError> {
        Ok(match self {
            OutputConfig::Ndjson(c) => Output::Ndjson(c.build()?),
            OutputConfig::Elasticsearch(c) => Output::Elasticsearch(c.build()?),
        })
    }

    /// The namespace of the data streams events are written to, if the
    /// output writes data streams: every event then carries `data_stream.*`.
    pub fn data_stream_namespace(&self) -> Option<&'static str> {
        match self {
            OutputConfig::Elasticsearch(c) if c.index.is_none() => {
                Some(crate::grammar::intern(&c.namespace))
            }
            _ => None,
        }
    }
}

/// A built output, ready to run.
#[derive(Debug)]
pub enum Output {
    Ndjson(NdjsonOutput),
    Elasticsearch(ElasticsearchOutput),
}

impl Output {
    /// The live counters; they keep counting while [`Output::run`] works.
    pub fn stats(&self) -> Arc<OutputStats> {
        match self {
            Output::Ndjson(o) => o.stats(),
            Output::Elasticsearch(o) => o.stats(),
        }
    }

    /// Checks at start that the destination can take what is sent to it
    /// (Elasticsearch: the data streams, the retention); an error says why not.
    pub async fn prepare(&self) -> Result<(), OutputError> {
        match self {
            Output::Ndjson(_) => Ok(()),
            Output::Elasticsearch(o) => o.prepare().await,
        }
    }

    /// With several Elasticsearch nodes, each node's URL and its up flag;
    /// empty otherwise (the output's own flag, `stats().reachable`, says it all).
    pub fn node_flags(&self) -> Vec<(String, Arc<std::sync::atomic::AtomicBool>)> {
        match self {
            Output::Elasticsearch(o) => {
                let flags = o.node_flags();
                if flags.len() > 1 {
                    flags
                } else {
                    Vec::new()
                }
            }
            Output::Ndjson(_) => Vec::new(),
        }
    }

    /// Takes batches from `rx` until it is closed and empty, settles them, and
    /// returns the final counts. `reopen` closes and reopens the output's files.
    pub async fn run(
        self,
        rx: EncodedReceiver,
        reopen: ReopenSignal,
    ) -> Result<OutputReport, OutputError> {
        match self {
            Output::Ndjson(o) => o.run(rx, reopen).await,
            Output::Elasticsearch(o) => o.run(rx, reopen).await,
        }
    }
}

/// Why an output could not be built or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A setting is invalid; `key` is its name under `[output]`.
    #[error("output.{key}: {reason}")]
    Config { key: &'static str, reason: String },
    /// A file could not be opened or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server cannot take the target (found at start).
    #[error("Elasticsearch: {reason}")]
    Unfit { reason: String },
}

impl OutputError {
    pub(crate) fn config(key: &'static str, reason: impl Into<String>) -> Self {
        OutputError::Config {
            key,
            reason: reason.into(),
        }
    }
}

/// Counters an output keeps while it runs; read them any time.
#[derive(Debug)]
pub struct OutputStats {
    /// The destination answered the last request (for `/ready`).
    pub reachable: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Documents taken from the channel.
    pub sent: AtomicU64,
    /// Documents written (NDJSON) or created by Elasticsearch.
    pub stored: AtomicU64,
    /// Documents Elasticsearch answered with 409 (already stored).
    pub duplicates: AtomicU64,
    /// Item retries after a 429 or 5xx item status.
    pub retried: AtomicU64,
    /// Documents written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Whole requests that failed and were retried.
    pub request_failures: AtomicU64,
    /// Batches whose acks were fired.
    pub batches_acked: AtomicU64,
}

impl Default for OutputStats {
    fn default() -> Self {
        OutputStats {
            reachable: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            sent: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            request_failures: AtomicU64::new(0),
            batches_acked: AtomicU64::new(0),
        }
    }
}

impl OutputStats {
    /// A snapshot of the counters.
    pub fn report(&self) -> OutputReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OutputReport {
            sent: get(&self.sent),
            stored: get(&self.stored),
            duplicates: get(&self.duplicates),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            request_failures: get(&self.request_failures),
            batches_acked: get(&self.batches_acked),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Fires every ack and counts the batches.
    pub(crate) fn ack_all(&self, acks: impl IntoIterator<Item = Ack>) {
        let mut n = 0;
        for ack in acks {
            ack.done();
            n += 1;
        }
        Self::add(&self.batches_acked, n);
    }
}

/// The counters of an output at one moment (printed at shutdown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutputReport {
    pub sent: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub request_failures: u64,
    pub batches_acked: u64,
}

impl fmt::Display for OutputReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent, {} stored, {} duplicates, {} item retries, {} dead-lettered, {} failed requests",
            self.sent,
            self.stored,
            self.duplicates,
            self.retried,
            self.dead_lettered,
            self.request_failures
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn config_is_tagged_by_type_and_refuses_unknown_keys() {
        let c: OutputConfig = toml::from_str("type = \"ndjson\"\npath = \"out.ndjson\"\n").unwrap();
        assert!(matches!(&c, OutputConfig::Ndjson(n) if n.path == Path::new("out.ndjson")));

        let c: OutputConfig =
            toml::from_str("type = \"elasticsearch\"\nindex = \"dns\"\ngzip = true\n").unwrap();
        let OutputConfig::Elasticsearch(es) = c else {
            panic!("not elasticsearch")
        };
        assert_eq!(es.index.as_deref(), Some("dns"));
        assert!(es.gzip);

        let err = toml::from_str::<OutputConfig>("type = \"elasticsearch\"\nurls = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `urls`"), "{err}");
        assert!(toml::from_str::<OutputConfig>("type = \"kafka\"\n").is_err());
    }

    #[test]
    fn report_reads_the_counters() {
        let s = OutputStats::default();
        OutputStats::add(&s.sent, 3);
        OutputStats::add(&s.stored, 2);
        s.ack_all([Ack::new(|| ())]);
        let r = s.report();
        assert_eq!((r.sent, r.stored, r.batches_acked), (3, 2, 1));
        assert!(r.to_string().starts_with("3 sent, 2 stored"));
    }
}
