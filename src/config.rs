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

use crate::correlate::{EventsMode, TxnConfig};
use crate::decode::DEFAULT_MAX_LINE;
use crate::enrich::store::StoreMap;
use crate::enrich::{EnrichConfig, EnrichError};
use crate::grammar::{GrammarError, GrammarSet};
use crate::input::InputError;
use crate::input::InputsConfig;
use crate::output::buffer::{BufferConfig, InvalidBufferConfig};
use crate::output::{OutputConfig, OutputError};
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
    /// What is written: `lines` (one document per log line), `transactions`
    /// (one per DNS query) or `both`.
    pub events: EventsMode,
    /// How lines are correlated into transactions (`[transactions]`).
    pub transactions: TxnConfig,
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
    /// Whether `state_dir` was set (in the file or with `--state-dir`)
    /// rather than taken from the default.
    #[serde(skip)]
    pub state_dir_explicit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: std::env::var_os("STATE_DIRECTORY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/lib/dnsenrich")),
            shutdown_timeout_secs: 10,
            events: EventsMode::default(),
            transactions: TxnConfig::default(),
            parse: ParseConfig::default(),
            pipeline: PipelineConfig::default(),
            input: InputsConfig::default(),
            output: OutputConfig::default(),
            buffer: BufferConfig::default(),
            enrich: EnrichConfig::default(),
            sync: SyncConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            state_dir_explicit: std::env::var_os("STATE_DIRECTORY").is_some(),
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
    /// Seconds between the one-line throughput summaries written at `info`
    /// (lines, unmatched, stored, dead-lettered since the last one); 0 = none.
    pub summary_interval_secs: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Auto,
            level: "info".into(),
            summary_interval_secs: 60,
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
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("input.tls: {0}")]
    Tls(#[source] InputError),
}

/// A configuration that passed [`Config::check`], with what checking it
/// produced. It reads as a [`Config`] (it derefs to one) but can only be made
/// by checking, so whoever holds one need not check again.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    config: Config,
    grammars: Arc<GrammarSet>,
    zone: Zone,
    indicators: Option<Arc<StoreMap>>,
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

    /// The indicators of `[enrich] ioc_files`, as read when checking.
    pub fn indicators(&self) -> Option<Arc<StoreMap>> {
        self.indicators.clone()
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
        Self::from_text(&text, path)
    }

    /// Parses configuration text, noting which listen lists it sets.
    fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            // The offending line is quoted: a password in a URL must not be.
            message: plain_type_names(&crate::output::elasticsearch::mask_urls_in(&e.to_string())),
        };
        let mut cfg: Config = toml::from_str(text).map_err(syntax)?;
        let table: toml::Table = toml::from_str(text).map_err(syntax)?;
        cfg.input.note_explicit_listen(&table);
        cfg.state_dir_explicit |= table.contains_key("state_dir");
        Ok(cfg)
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<ValidConfig, ConfigError> {
        Self::from_text(text, Path::new("<config>"))?.check()
    }

    /// Checks what the types alone cannot, and compiles the grammars. It
    /// also reads every file `run` reads at start (TLS certificates and keys,
    /// indicator files, the Elasticsearch credential and CA files), so
    /// `check-config` refuses all that `run` refuses, with the same message.
    pub fn check(mut self) -> Result<ValidConfig, ConfigError> {
        self.input.drop_unasked_listeners();
        self.fall_back_to_a_user_state_dir();
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
        // A transaction's CNAME chain is in dns.answers.name: looked up with
        // the question unless the rules were chosen by hand.
        if self.events.correlates() && self.enrich.rules == crate::enrich::rules::default_rules() {
            self.enrich
                .rules
                .push(crate::enrich::rules::LookupRule::new(
                    "dns.answers.name",
                    &crate::indicator::key::KeyKind::Domain.template(),
                ));
        }
        self.transactions
            .validate()
            .map_err(|(key, reason)| invalid(key, reason))?;
        let grammars =
            Arc::new(GrammarSet::with_files(&self.parse.grammars).map_err(ConfigError::Grammar)?);
        self.check_datasets(&grammars)?;
        self.enrich.validate()?;
        // Read here, so `check-config` refuses a file `run` would refuse,
        // with the same message; `run` uses what was read.
        let indicators = if self.enrich.ioc_files.is_empty() {
            None
        } else {
            Some(Arc::new(StoreMap::load(&self.enrich.ioc_files).map_err(
                |e| {
                    ConfigError::Enrich(EnrichError::Invalid {
                        key: "enrich.ioc_files".into(),
                        reason: e.to_string(),
                    })
                },
            )?))
        };
        if !self.input.tls.listen.is_empty() {
            self.input.tls.server_config().map_err(ConfigError::Tls)?;
        }
        if let OutputConfig::Elasticsearch(es) = &self.output {
            es.validate()?;
        }
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
            indicators,
        })
    }

    /// A person trying dnsenrich as a normal user cannot write the default
    /// `/var/lib/dnsenrich`: unless a state directory was asked for, use
    /// `$XDG_STATE_HOME/dnsenrich` (`~/.local/state/dnsenrich`) and say so.
    fn fall_back_to_a_user_state_dir(&mut self) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if self.state_dir_explicit || unsafe { libc::geteuid() } == 0 {
            return;
        }
        if writable_dir(&self.state_dir) {
            return;
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/state"))
            });
        let Some(base) = base else { return };
        let user_dir = base.join("dnsenrich");
        eprintln!(
            "dnsenrich: {} is not writable by this user; keeping state in {} (set state_dir or --state-dir to choose)",
            self.state_dir.display(),
            user_dir.display()
        );
        self.state_dir = user_dir;
    }

    /// The Elasticsearch output's names and limits; with data streams (or an
    /// index per `{dataset}`) every dataset a grammar sets becomes part of an
    /// index name, so it must be one.
    fn check_datasets(&self, grammars: &GrammarSet) -> Result<(), ConfigError> {
        let crate::output::OutputConfig::Elasticsearch(es) = &self.output else {
            return Ok(());
        };
        es.check_values().map_err(|e| match e {
            crate::output::OutputError::Config { key, reason } => ConfigError::Invalid {
                key: format!("output.{key}"),
                reason,
            },
            other => ConfigError::Invalid {
                key: "output".into(),
                reason: other.to_string(),
            },
        })?;
        let named = match &es.index {
            None => true,
            Some(i) => i.contains(crate::output::elasticsearch::route::DATASET_PLACEHOLDER),
        };
        if !named {
            return Ok(());
        }
        for dataset in grammars.datasets() {
            crate::output::elasticsearch::validate_dataset(dataset).map_err(|reason| {
                ConfigError::Invalid {
                    key: "parse.grammars".into(),
                    reason: format!(
                        "event.dataset = {dataset} cannot name an Elasticsearch data stream \
                         or index: {reason}"
                    ),
                }
            })?;
        }
        Ok(())
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

/// A parse error with the expectations in words rather than in Rust type
/// names (`expected usize` becomes `expected a whole number, 0 or more`).
fn plain_type_names(message: &str) -> String {
    const NAMES: [(&str, &str); 15] = [
        ("invalid socket address syntax", "not an address such as \"127.0.0.1:5514\" or \"[::1]:5514\" (an IP address and a port; names are not looked up)"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected a list such as [\"a\", \"b\"]"),
        ("expected a map", "expected a table"),
        ("expected a boolean", "expected true or false"),
        ("expected socket address", "expected an address such as \"127.0.0.1:5514\" or \"[::1]:5514\""),
        ("expected a borrowed string", "expected a string"),
    ];
    let mut out = message.to_owned();
    for (rust, words) in NAMES {
        // Whole words only: `expected u8` is not the start of `expected u80`.
        let mut from = 0;
        while let Some(at) = out[from..].find(rust).map(|i| i + from) {
            let end = at + rust.len();
            if out[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                from = end;
                continue;
            }
            out.replace_range(at..end, words);
            from = at + words.len();
        }
    }
    out
}

/// Whether `dir` exists and can be written, or could be created.
fn writable_dir(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut probe = dir;
    // The nearest existing ancestor decides whether it can be created.
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => return false,
        }
    }
    let Ok(c) = std::ffi::CString::new(probe.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_what_is_expected_in_words() {
        for (text, words) in [
            (
                "[input.tcp]\nmax_frame = \"big\"\n",
                "expected a whole number, 0 or more",
            ),
            (
                "[input.tcp]\nmax_frame = -5\n",
                "expected a whole number, 0 or more",
            ),
            ("[input.udp]\nlisten = \"x\"\n", "expected a list"),
            (
                "[input.udp]\nlisten = [\"localhost\"]\n",
                "an address such as",
            ),
            (
                "[parse]\nkeep_original = \"yes\"\n",
                "expected true or false",
            ),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(words), "{text}: {err}");
            for rust in ["usize", "u64", "u16", "sequence", "socket address"] {
                assert!(!err.contains(&format!("expected {rust}")), "{text}: {err}");
            }
        }
    }

    #[test]
    fn following_files_opens_only_the_listeners_asked_for() {
        // Nothing to follow: the loopback defaults are the inputs.
        let c = Config::parse("").unwrap();
        assert!(!c.input.udp.listen.is_empty() && !c.input.tcp.listen.is_empty());
        // A tail-only sensor opens no port.
        let c = Config::parse("[input.file]\npaths = [\"/tmp/pihole.log\"]\n").unwrap();
        assert!(c.input.udp.listen.is_empty(), "{:?}", c.input.udp.listen);
        assert!(c.input.tcp.listen.is_empty(), "{:?}", c.input.tcp.listen);
        // What the file sets stays, and only that.
        let c = Config::parse(
            "[input.file]\npaths = [\"/tmp/pihole.log\"]\n[input.udp]\nlisten = [\"127.0.0.1:1514\"]\n",
        )
        .unwrap();
        assert_eq!(c.input.udp.listen, vec!["127.0.0.1:1514".parse().unwrap()]);
        assert!(c.input.tcp.listen.is_empty());
    }

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
    fn a_dataset_that_cannot_name_a_data_stream_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("x.grammar");
        std::fs::write(
            &g,
            "@app myapp\n@defaults\n    event.dataset = my-app\n\nrule r: hello\n    event.action = hi\n",
        )
        .unwrap();
        let text = |output: &str| {
            format!(
                "[parse]\ngrammars = [{:?}]\n[output]\ntype = \"elasticsearch\"\n{output}",
                g.display().to_string()
            )
        };
        let e = Config::parse(&text("")).unwrap_err().to_string();
        assert!(
            e.starts_with("parse.grammars: ") && e.contains("my-app"),
            "{e}"
        );
        let e = Config::parse(&text("index = \"dns-{dataset}\"\n")).unwrap_err();
        assert!(e.to_string().contains("my-app"), "{e}");
        // One fixed index does not name the dataset.
        Config::parse(&text("index = \"dns\"\n")).unwrap();
        // check-config catches what run would refuse about the target.
        let e = Config::parse(&text("index = \"dns\"\nretention = \"30\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("output.retention: "), "{e}");
        let e = Config::parse(&text("index = \"dns\"\nnamespace = \"a-b\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("output.namespace: "), "{e}");
        assert!(GrammarSet::builtin()
            .unwrap()
            .datasets()
            .contains(&"pihole.dhcp"));
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
    fn indicator_files_are_read_once_when_checked_and_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.txt");
        std::fs::write(
            &list,
            "evil.example
bad.example
",
        )
        .unwrap();
        let c = Config::parse(&format!(
            "[enrich]
ioc_files = [{:?}]
",
            list.display().to_string()
        ))
        .unwrap();
        assert!(c.indicators().unwrap().len() >= 2);
        let e = Config::parse(
            "[enrich]
ioc_files = [\"/nonexistent/dnsenrich/ioc.txt\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("enrich.ioc_files: "), "{e}");
        assert!(Config::parse("").unwrap().indicators().is_none());
    }

    #[test]
    fn a_syntax_error_quoting_a_url_masks_its_password() {
        let e = Config::parse(
            "[output]\ntype = \"elasticsearch\"\nurl = \"https://u:hunter2@es:9200\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("https://***@es:9200") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn example_config_in_the_repo_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dnsenrich.example.toml");
        Config::load(&path).unwrap();
    }
}
