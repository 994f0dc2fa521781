//! The `[sync]` configuration: which sources to load indicators from and where
//! to write them. The same struct backs `dnsenrich sync` (flags merged over a
//! config file's `[sync]` section) and the background sync inside `run`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::indicator::distribution::{address_of, DistributionError, DistributionKind, Placement};
use crate::output::Secret;

/// The environment variable the MISP API key is read from when neither
/// `misp_key` nor `misp_key_file` is set.
pub const MISP_KEY_ENV: &str = "DNSENRICH_MISP_KEY";

/// The default TTL of a one-shot sync (no `every`): one day.
pub const ONE_SHOT_TTL_SECS: u64 = 86_400;

/// `[sync]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Base URL of a MISP instance, e.g. `https://misp.example`; its
    /// `/attributes/restSearch` is queried.
    pub misp_url: Option<String>,
    /// The MISP API key (sent as `Authorization: <key>`). Prints as `***`.
    pub misp_key: Option<Secret>,
    /// A file holding the MISP API key (surrounding whitespace is ignored).
    /// Without this and `misp_key`, the key comes from `$DNSENRICH_MISP_KEY`.
    pub misp_key_file: Option<PathBuf>,
    /// Trust this CA (PEM) for the MISP instance and feed URLs, in addition to
    /// the built-in web roots.
    pub misp_ca_file: Option<PathBuf>,
    /// Accept any TLS certificate from MISP and feed URLs. Only for tests and
    /// labs; never on by default.
    pub insecure: bool,
    /// MISP attribute types to load; `%` is a wildcard as in MISP.
    pub types: Vec<String>,
    /// Only attributes with one of these tags (attribute or event tags; `%`
    /// wildcard, `!` negates), e.g. `["Feed-%"]`. Empty: no tag filter.
    pub tags: Vec<String>,
    /// Tags whose names become the feed names of an indicator (`%` wildcard).
    /// An indicator without one is named after its source (`MISP`, the MISP
    /// feed's name).
    pub feed_tags: Vec<String>,
    /// Only attributes flagged for detection (`to_ids`).
    pub to_ids: bool,
    /// Only attributes of published (`true`) or unpublished (`false`) events;
    /// unset: both.
    pub published: Option<bool>,
    /// Let MISP drop attributes that match its warning lists (well-known
    /// benign names and addresses).
    pub enforce_warninglist: bool,
    /// Only attributes changed within this window, e.g. `"30d"` (MISP's
    /// attribute `timestamp`; for MISP feeds the event timestamp).
    pub since: Option<DurationSpec>,
    /// Attributes per restSearch page, so no single response is unbounded.
    pub page_limit: u32,
    /// The most bytes one HTTP response may have, in MiB; a larger one is an
    /// error (lower `page_limit`).
    pub max_response_mib: u64,
    /// MISP-format feeds (`manifest.json` + one `<uuid>.json` per event): a
    /// directory or an `http(s)://` URL, optionally `NAME=` in front.
    pub misp_feeds: Vec<String>,
    /// Blocklists: plain, hosts-format or CSV, from a file or URL.
    pub lists: Vec<ListSource>,
    /// memcached servers (`host:port`); keys are spread over several servers
    /// by `distribution`, which must be the enricher's (`enrich.distribution`).
    pub memcached: Vec<String>,
    /// How keys are spread over several servers: `rendezvous` (dnsenrich's
    /// own, the default, so keys written by earlier runs stay where they
    /// are), or as `dalli`, `pymemcache` or `ketama` (libmemcached) would
    /// place them, for readers that use those clients.
    pub distribution: DistributionKind,
    /// A key prefix: keys become `<namespace>:domain-…` (as Dalli and the
    /// Logstash memcached filter write them).
    pub namespace: Option<String>,
    /// Key TTL in seconds. Default: twice `every`, or one day for a one-shot
    /// sync, so an indicator withdrawn at the source ages out.
    pub ttl_secs: Option<u64>,
    /// Repeat the sync this often (e.g. `"10m"`); unset: once.
    pub every: Option<DurationSpec>,
    /// `json` (the default) or `plain` (the feed names joined by `,`, like the
    /// classic MISP-to-memcached script).
    pub value_format: ValueFormat,
    /// Write the in-process store file (NDJSON) here instead of memcached.
    pub to_file: Option<PathBuf>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            misp_url: None,
            misp_key: None,
            misp_key_file: None,
            misp_ca_file: None,
            insecure: false,
            types: DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
            tags: Vec::new(),
            feed_tags: vec!["Feed-%".into()],
            to_ids: true,
            published: None,
            enforce_warninglist: true,
            since: None,
            page_limit: 10_000,
            max_response_mib: 256,
            misp_feeds: Vec::new(),
            lists: Vec::new(),
            memcached: vec!["127.0.0.1:11211".into()],
            distribution: DistributionKind::default(),
            namespace: None,
            ttl_secs: None,
            every: None,
            value_format: ValueFormat::Json,
            to_file: None,
        }
    }
}

/// The attribute types loaded unless `types` says otherwise.
pub const DEFAULT_TYPES: &[&str] = &["domain", "hostname", "domain|ip", "ip-dst", "ip-src", "url"];

/// One blocklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSource {
    /// A file path or an `http(s)://` URL.
    pub path_or_url: String,
    /// The feed name its indicators carry. Default: the file name without
    /// its extension.
    #[serde(default)]
    pub feed_name: Option<String>,
    /// `auto` (CSV for `*.csv` or when `csv_column` is set; otherwise each
    /// line is plain or hosts format), `plain`, `hosts` or `csv`.
    #[serde(default)]
    pub format: ListFormat,
    /// The CSV column holding the indicator: a 1-based number or a header
    /// name. Default: 1.
    #[serde(default)]
    pub csv_column: Option<String>,
    /// A CSV column naming the feed per row (number or header name).
    #[serde(default)]
    pub csv_feed_column: Option<String>,
}

impl ListSource {
    /// The feed name: the configured one, else the file name up to its first dot.
    pub fn effective_feed_name(&self) -> String {
        if let Some(n) = &self.feed_name {
            return n.clone();
        }
        let last = self
            .path_or_url
            .trim_end_matches('/')
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or("");
        let stem = last.split(['.', '?']).next().unwrap_or("");
        if stem.is_empty() {
            "list".into()
        } else {
            stem.into()
        }
    }

    /// The format after `auto` is resolved by name and options.
    pub fn effective_format(&self) -> ListFormat {
        match self.format {
            ListFormat::Auto
                if self.csv_column.is_some()
                    || self.csv_feed_column.is_some()
                    || self
                        .path_or_url
                        .split('?')
                        .next()
                        .is_some_and(|p| p.to_ascii_lowercase().ends_with(".csv")) =>
            {
                ListFormat::Csv
            }
            f => f,
        }
    }
}

/// How a blocklist is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// Per line: `0.0.0.0 name …` is hosts format, a single token is plain.
    #[default]
    Auto,
    /// One indicator per line.
    Plain,
    /// `<address> <name> [<name>…]` per line.
    Hosts,
    /// Comma-separated values, one indicator per row.
    Csv,
}

/// The value written under each key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// `{"v":1,"type":…,"value":…,"feeds":[…]}`
    #[default]
    Json,
    /// The feed names joined by `,`.
    Plain,
}

/// A duration written as `90s`, `10m`, `12h`, `30d`, `1h30m`, or a number of
/// seconds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl std::str::FromStr for DurationSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("`{s}` is not a duration (use e.g. 90s, 10m, 12h, 30d)");
        if t.is_empty() {
            return Err(bad());
        }
        if let Ok(n) = t.parse::<u64>() {
            return Ok(DurationSpec(Duration::from_secs(n)));
        }
        let mut total: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let mult = match &rest[..unit] {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                "w" => 7 * 86_400,
                _ => return Err(bad()),
            };
            rest = &rest[unit..];
            total = n
                .checked_mul(mult)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(DurationSpec(Duration::from_secs(total)))
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s >= n && s % n == 0 {
                return write!(f, "{}{unit}", s / n);
            }
        }
        write!(f, "{s}s")
    }
}

impl fmt::Debug for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(DurationSpec(Duration::from_secs(n))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A `[sync]` setting that cannot work, with the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("sync.{key}: {reason}")]
pub struct InvalidSyncConfig {
    pub key: &'static str,
    pub reason: String,
}

impl SyncConfig {
    /// Where each key goes among the memcached servers.
    pub fn placement(&self) -> Result<Placement, DistributionError> {
        Placement::new(
            self.distribution,
            &self.memcached,
            self.namespace.as_deref(),
        )
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), InvalidSyncConfig> {
        let invalid = |key, reason: &str| {
            Err(InvalidSyncConfig {
                key,
                reason: reason.into(),
            })
        };
        if self.misp_url.is_none() && self.misp_feeds.is_empty() && self.lists.is_empty() {
            return invalid(
                "misp_url",
                "no source: set misp_url, misp_feeds or lists (--misp-url, --misp-feed, --list)",
            );
        }
        if let Some(u) = &self.misp_url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                _ => return invalid("misp_url", &format!("`{u}` is not an http(s) URL")),
            }
        }
        if self.page_limit == 0 {
            return invalid("page_limit", "must be at least 1");
        }
        if self.max_response_mib == 0 {
            return invalid("max_response_mib", "must be at least 1");
        }
        if self.types.is_empty() {
            return invalid("types", "must name at least one attribute type");
        }
        if self.to_file.is_none() && self.memcached.is_empty() {
            return invalid(
                "memcached",
                "no target: give at least one memcached server or to_file",
            );
        }
        for m in &self.memcached {
            if let Err(e) = crate::enrich::memcached::parse_server(address_of(self.distribution, m))
            {
                return Err(InvalidSyncConfig {
                    key: "memcached",
                    reason: e,
                });
            }
        }
        if self.to_file.is_none() {
            if let Err(e) = self.placement() {
                return Err(InvalidSyncConfig {
                    key: "distribution",
                    reason: e.to_string(),
                });
            }
        }
        if let Some(ns) = &self.namespace {
            if ns.is_empty()
                || ns.len() > 100
                || ns.bytes().any(|b| b <= 0x20 || b == 0x7f || b == b'#')
            {
                return invalid(
                    "namespace",
                    "must be 1 to 100 bytes without spaces, control characters or '#'",
                );
            }
        }
        if self.ttl_secs == Some(0) {
            return invalid("ttl_secs", "must be at least 1 (every key gets a TTL)");
        }
        if let Some(e) = self.every {
            if e.as_secs() == 0 {
                return invalid("every", "must be at least 1s");
            }
        }
        for l in &self.lists {
            if l.path_or_url.trim().is_empty() {
                return invalid("lists", "path_or_url is empty");
            }
        }
        Ok(())
    }

    /// The TTL every key gets: `ttl_secs`, else twice `every`, else one day.
    pub fn effective_ttl_secs(&self) -> u64 {
        self.ttl_secs.unwrap_or_else(|| match self.every {
            Some(e) => e.as_secs().saturating_mul(2).max(1),
            None => ONE_SHOT_TTL_SECS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<DurationSpec>().map(|d| d.as_secs());
        assert_eq!(d("90s"), Ok(90));
        assert_eq!(d("10m"), Ok(600));
        assert_eq!(d("1h30m"), Ok(5400));
        assert_eq!(d("30d"), Ok(30 * 86_400));
        assert_eq!(d("120"), Ok(120));
        assert!(d("10 minutes").is_err());
        assert!(d("m").is_err());
        assert!(d("").is_err());
        assert_eq!(DurationSpec(Duration::from_secs(600)).to_string(), "10m");
        assert_eq!(DurationSpec(Duration::from_secs(90)).to_string(), "90s");
    }

    #[test]
    fn ttl_defaults_to_twice_the_interval() {
        let mut c = SyncConfig::default();
        assert_eq!(c.effective_ttl_secs(), ONE_SHOT_TTL_SECS);
        c.every = Some("10m".parse().unwrap());
        assert_eq!(c.effective_ttl_secs(), 1200);
        c.ttl_secs = Some(5);
        assert_eq!(c.effective_ttl_secs(), 5);
    }

    #[test]
    fn toml_section_round_trips_and_refuses_typos() {
        let c: SyncConfig = toml::from_str(
            r#"
            misp_url = "https://misp.example"
            misp_key = "abc"
            every = "10m"
            [[lists]]
            path_or_url = "/etc/blocklists/ads.hosts"
            "#,
        )
        .unwrap();
        assert_eq!(c.every.unwrap().as_secs(), 600);
        assert_eq!(c.lists[0].effective_feed_name(), "ads");
        let shown = toml::to_string(&c).unwrap();
        assert!(shown.contains("misp_key = \"***\""), "{shown}");
        assert!(toml::from_str::<SyncConfig>("misp_ur = 1").is_err());
    }

    #[test]
    fn list_format_and_name_are_guessed_from_the_path() {
        let l = ListSource {
            path_or_url: "https://lists.example/urlhaus.csv?x=1".into(),
            feed_name: None,
            format: ListFormat::Auto,
            csv_column: None,
            csv_feed_column: None,
        };
        assert_eq!(l.effective_format(), ListFormat::Csv);
        assert_eq!(l.effective_feed_name(), "urlhaus");
    }
}
