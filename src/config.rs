//! The configuration file (TOML) and its validation.
//!
//! Validation runs once: [`Config::load`] (or [`Config::check`] after `run`'s
//! flags are applied) returns a [`ValidConfig`], which also holds what checking
//! produced — the compiled grammars and the time zone — so nothing is compiled
//! or parsed twice at start. The daemon takes only a [`ValidConfig`].
//!
//! Every section has a default, so an empty file — or no file at all — is the
//! embedded default: syslog on 127.0.0.1:5514 (UDP and TCP), NDJSON on stdout.
//! Unknown keys are refused (a typo must not silently do nothing), and every
//! error names the key and the reason. `dnsenrich check-config FILE` prints the
//! effective configuration with secrets masked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decode::DEFAULT_MAX_LINE;
use crate::enrich::{EnrichConfig, EnrichError};
use crate::grammar::{GrammarError, GrammarSet};
use crate::input::InputsConfig;
use crate::output::buffer::{BufferConfig, InvalidBufferConfig};
use crate::output::OutputConfig;
use crate::sync::{InvalidSyncConfig, SyncConfig};
use crate::syslog::Zone;
use crate::telemetry::MetricsConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where dnsenrich keeps state: file offsets and the dead-letter file.
    /// Default: `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`), else
    /// `/var/lib/dnsenrich`.
    pub state_dir: PathBuf,
    /// How long SIGTERM/SIGINT may take to drain the pipeline, in seconds.
    pub shutdown_timeout_secs: u64,
    pub parse: ParseConfig,
    pub pipeline: PipelineConfig,
    pub input: InputsConfig,
    pub output: OutputConfig,
    /// Where encoded batches wait for the output (`[buffer]`): in memory (the
    /// default) or in a disk buffer under the state directory.
    pub buffer: BufferConfig,
    /// Threat-intelligence lookups (`[enrich]`); off until memcached servers or
    /// indicator files are set.
    pub enrich: EnrichConfig,
    /// Indicator sync run in the background by `run` (`[sync]`); off until a
    /// source is set. `dnsenrich sync --config FILE` reads the same section.
    pub sync: SyncConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: std::env::var_os("STATE_DIRECTORY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/lib/dnsenrich")),
            shutdown_timeout_secs: 10,
            parse: ParseConfig::default(),
            pipeline: PipelineConfig::default(),
            input: InputsConfig::default(),
            output: OutputConfig::default(),
            buffer: BufferConfig::default(),
            enrich: EnrichConfig::default(),
            sync: SyncConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// `[parse]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParseConfig {
    /// Time zone of RFC 3164 stamps, which carry none: `local`, `UTC`, an IANA
    /// name such as `Europe/Berlin`, or an offset such as `+02:00`.
    pub timezone: String,
    /// Extra grammar files, tried before the built-in ones.
    pub grammars: Vec<PathBuf>,
    /// Longer lines are cut to this many bytes and tagged.
    pub max_line_bytes: usize,
    /// Keep the raw line in `event.original` on every event (lines that could
    /// not be parsed always keep it).
    pub keep_original: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            timezone: "local".into(),
            grammars: Vec::new(),
            max_line_bytes: DEFAULT_MAX_LINE,
            keep_original: false,
        }
    }
}

/// `[pipeline]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Parse threads; 0 means one per CPU core.
    pub parse_workers: usize,
    /// Enrichment (and JSON encoding) threads; 0 means one per CPU core.
    pub enrich_workers: usize,
    /// How many batches each channel between stages holds before the stage
    /// before it has to wait.
    pub channel_batches: usize,
    /// Threads of the async runtime, which runs the network inputs, the
    /// output and the metrics listener; 0 means half the CPU cores, at least
    /// 1 and at most 4.
    pub io_threads: usize,
    /// While traffic trickles in, a runtime thread about to sleep waits until
    /// this many microseconds have passed since it last went to sleep, so the
    /// sockets that became readable meanwhile are read in one wake-up; adds
    /// at most this much latency. 0 wakes for every readable socket.
    pub io_coalesce_us: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            parse_workers: 0,
            enrich_workers: 0,
            channel_batches: 4,
            io_threads: 0,
            io_coalesce_us: 1000,
        }
    }
}

impl PipelineConfig {
    /// The number of threads `n` stands for (0 = one per core).
    pub fn threads(n: usize) -> usize {
        if n > 0 {
            return n;
        }
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// The async runtime's threads. One is enough for reading sockets and
    /// sending requests up to a million lines a second; more of them only
    /// take turns waking up (and each brings its own malloc arena): on two
    /// cores, one thread costs 10–20 % less CPU per event than two.
    pub fn io_threads(&self) -> usize {
        if self.io_threads > 0 {
            return self.io_threads;
        }
        (Self::threads(0) / 2).clamp(1, 4)
    }
}

/// `[log]`: dnsenrich's own log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (plain text; without timestamps under systemd, which adds its
    /// own), `text` or `json`.
    pub format: LogFormat,
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a `tracing`
    /// filter such as `dnsenrich=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// How dnsenrich writes its own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

/// A configuration that cannot be used, with the key at fault. The sections'
/// own errors already name their keys (`enrich.timeout_ms: ...`), so they are
/// passed through unchanged rather than prefixed a second time.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("parse.grammars: {0}")]
    Grammar(#[source] GrammarError),
    #[error(transparent)]
    Enrich(#[from] EnrichError),
    #[error(transparent)]
    Sync(#[from] InvalidSyncConfig),
    #[error(transparent)]
    Buffer(#[from] InvalidBufferConfig),
}

/// A configuration that passed [`Config::check`], with what checking it
/// produced. It reads as a [`Config`] (it derefs to one) but can only be made
/// by checking, so whoever holds one need not check again.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    config: Config,
    grammars: Arc<GrammarSet>,
    zone: Zone,
}

impl ValidConfig {
    /// The grammars of `[parse] grammars` and the built-in ones, compiled.
    pub fn grammars(&self) -> &Arc<GrammarSet> {
        &self.grammars
    }

    /// The time zone of `[parse] timezone`.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }
}

impl std::ops::Deref for ValidConfig {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

impl Config {
    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<ValidConfig, ConfigError> {
        Self::read(path)?.check()
    }

    /// Reads and parses a configuration file without checking it, for a caller
    /// that changes it before [`Config::check`] (`run` applies its flags).
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<ValidConfig, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        cfg.check()
    }

    /// Checks what the types alone cannot, and compiles the grammars.
    pub fn check(self) -> Result<ValidConfig, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        let zone = self.zone().map_err(|e| invalid("parse.timezone", e))?;
        if self.parse.max_line_bytes < 64 {
            return Err(invalid(
                "parse.max_line_bytes",
                "must be at least 64".into(),
            ));
        }
        if self.pipeline.channel_batches == 0 {
            return Err(invalid(
                "pipeline.channel_batches",
                "must be at least 1".into(),
            ));
        }
        if self.pipeline.io_coalesce_us > 100_000 {
            return Err(invalid(
                "pipeline.io_coalesce_us",
                "must be at most 100000 (0.1 s of added latency)".into(),
            ));
        }
        if self.shutdown_timeout_secs == 0 {
            return Err(invalid(
                "shutdown_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        let grammars =
            Arc::new(GrammarSet::with_files(&self.parse.grammars).map_err(ConfigError::Grammar)?);
        self.enrich.validate()?;
        self.buffer.validate()?;
        if self.sync_enabled() {
            self.sync.validate()?;
            // The background sync writes what this collector reads: placed
            // differently over the same servers, most keys would be missed.
            if self.sync.to_file.is_none()
                && self.sync.memcached.len() > 1
                && self.sync.memcached == self.enrich.memcached
                && self.sync.distribution != self.enrich.distribution
            {
                return Err(invalid(
                    "sync.distribution",
                    format!(
                        "{} writes keys where enrich.distribution = {:?} does not look for them; set both the same",
                        self.sync.distribution.as_str(),
                        self.enrich.distribution.as_str()
                    ),
                ));
            }
        }
        Ok(ValidConfig {
            config: self,
            grammars,
            zone,
        })
    }

    /// Whether `run` syncs indicators in the background: `[sync]` names a source.
    pub fn sync_enabled(&self) -> bool {
        self.sync.misp_url.is_some()
            || !self.sync.misp_feeds.is_empty()
            || !self.sync.lists.is_empty()
    }

    /// The time zone of `[parse] timezone`.
    pub fn zone(&self) -> Result<Zone, String> {
        self.parse.timezone.parse::<Zone>()
    }

    /// The effective configuration as TOML (secrets masked).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_threads_are_as_set_or_half_the_cores_within_1_to_4() {
        let c = Config::parse("[pipeline]\nio_threads = 3\n").unwrap();
        assert_eq!(c.pipeline.io_threads(), 3);
        let auto = Config::parse("").unwrap().pipeline.io_threads();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(auto, (cores / 2).clamp(1, 4), "{cores} cores");
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        let c = Config::parse("").unwrap();
        assert!(matches!(c.output, OutputConfig::Ndjson(_)));
        assert_eq!(c.shutdown_timeout_secs, 10);
        assert_eq!(c.parse.timezone, "local");
    }

    #[test]
    fn the_background_sync_writes_where_the_collector_reads() {
        let text = |sync: &str| {
            format!(
                "[enrich]\nmemcached = [\"m1\", \"m2\"]\ndistribution = \"pymemcache\"\n\
                 [sync]\nmemcached = [\"m1\", \"m2\"]\nmisp_feeds = [\"/srv/feed\"]\n{sync}"
            )
        };
        let e = Config::parse(&text("")).unwrap_err();
        assert!(e.to_string().starts_with("sync.distribution:"), "{e}");
        Config::parse(&text("distribution = \"pymemcache\"\n")).unwrap();
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let e = Config::parse("[parse]\ntimezone = \"UTC\"\nbogus = 1\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("bogus"), "{s}");
        assert!(s.contains("line 3"), "{s}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::parse("[parse]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
        assert!(e.to_string().starts_with("parse.timezone:"), "{e}");
        let e = Config::parse("[pipeline]\nio_coalesce_us = 200000\n").unwrap_err();
        assert!(e.to_string().starts_with("pipeline.io_coalesce_us:"), "{e}");
        let e = Config::parse("[pipeline]\nchannel_batches = 0\n").unwrap_err();
        assert!(
            e.to_string().starts_with("pipeline.channel_batches:"),
            "{e}"
        );
        let e = Config::parse("[parse]\ngrammars = [\"/nonexistent.grammar\"]\n").unwrap_err();
        assert!(e.to_string().starts_with("parse.grammars:"), "{e}");
        let e = Config::parse("[parse]\nmax_line_bytes = \"big\"\n").unwrap_err();
        assert!(e.to_string().contains("max_line_bytes"), "{e}");
    }

    #[test]
    fn section_errors_name_their_key_once() {
        let e = Config::parse("[enrich]\ntimeout_ms = 0\n").unwrap_err();
        assert!(e.to_string().starts_with("enrich.timeout_ms:"), "{e}");
        let e = Config::parse("[buffer]\ntype = \"disk\"\nmax_bytes = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("buffer.max_bytes:"), "{e}");
    }

    #[test]
    fn buffer_defaults_to_memory_and_shows_in_the_effective_config() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.buffer.kind, crate::output::buffer::BufferType::Memory);
        let c = Config::parse("[buffer]\ntype = \"disk\"\nsync = \"always\"\n").unwrap();
        let shown = c.to_toml();
        assert!(shown.contains("[buffer]"), "{shown}");
        assert!(shown.contains("type = \"disk\""), "{shown}");
        assert!(shown.contains("sync = \"always\""), "{shown}");
    }

    #[test]
    fn effective_config_round_trips() {
        let c = Config::parse("[output]\ntype = \"elasticsearch\"\nurl = \"http://127.0.0.1:9200\"\nindex = \"dns\"\n").unwrap();
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }

    #[test]
    fn example_config_in_the_repo_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dnsenrich.example.toml");
        Config::load(&path).unwrap();
    }
}
