//! The in-process indicator store: the embedded default when there is no
//! memcached. `--ioc-file FILE` (repeatable) loads indicators into memory
//! under the same keys memcached would hold, so lookups, results and
//! `misp_src` are the same; SIGHUP reloads every file.
//!
//! A file's format is detected from its first line that is neither blank nor
//! a `#` comment:
//!
//! | first line | format | feed name |
//! |---|---|---|
//! | starts with `{` | NDJSON from `dnsenrich sync --to-file`: `{"key":"domain-evil.example","value":{…}}` | from the value |
//! | an IP address, whitespace, a name (`0.0.0.0 ads.example`) | hosts-format blocklist; every name after the address counts | the file's stem |
//! | holds a `,` | CSV `value,feed[,…]`; a first line `value,feed` (any case) is a header | the second column, else the stem |
//! | anything else | plain list, one domain or IP per line | the file's stem |
//!
//! In every format but NDJSON, `#` starts a comment, a domain becomes the key
//! `domain-<name>` (normalised) and an IP address both `ip-dst-<ip>` and
//! `ip-src-<ip>`; hosts files' own names (`localhost`, `broadcasthost`, …) are
//! skipped. Keys are made safe with [`crate::indicator::key::compose`]. Lines that cannot
//! be read are skipped and counted; the first few are logged with file and
//! line number. A key listed in several places gets the union of its feeds.
//! A file that cannot be read fails the load; a reload that fails keeps the
//! indicators that were loaded before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::indicator::key::{compose, normalize_name, safe_key, KeyKind, SafeKey};
use crate::indicator::value::{parse_value, Indicator};

/// A file's detected format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Ndjson,
    Hosts,
    Csv,
    List,
    /// No line with content.
    Empty,
}

/// What loading one file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub path: PathBuf,
    pub format: FileFormat,
    /// Keys added from this file.
    pub keys: usize,
    /// Lines that could not be read.
    pub bad_lines: usize,
}

/// A file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The loaded indicators, keyed by (safe) lookup key without namespace.
#[derive(Debug, Default)]
pub struct StoreMap {
    entries: HashMap<Box<str>, Arc<Indicator>>,
    pub files: Vec<FileReport>,
}

impl StoreMap {
    /// The indicator under `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<Indicator>> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads `files` into a new map.
    pub fn load(files: &[PathBuf]) -> Result<StoreMap, StoreError> {
        let mut map = StoreMap::default();
        for path in files {
            let text = std::fs::read(path).map_err(|source| StoreError {
                path: path.clone(),
                source,
            })?;
            let text = String::from_utf8_lossy(&text);
            let report = map.add_file(path, &text);
            tracing::info!(
                file = %path.display(),
                format = ?report.format,
                keys = report.keys,
                bad_lines = report.bad_lines,
                "indicator file loaded"
            );
            map.files.push(report);
        }
        Ok(map)
    }

    fn add_file(&mut self, path: &Path, text: &str) -> FileReport {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ioc".into());
        let format = detect(text);
        let mut report = FileReport {
            path: path.to_owned(),
            format,
            keys: 0,
            bad_lines: 0,
        };
        let stem_feed = Arc::new(Indicator::in_feed(&stem));
        let mut feeds: HashMap<String, Arc<Indicator>> = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let ok = match format {
                FileFormat::Ndjson => self.ndjson_line(raw, &mut report),
                FileFormat::Hosts => self.hosts_line(raw, &stem_feed, &mut report),
                FileFormat::Csv => self.csv_line(raw, &stem_feed, &mut feeds, &mut report),
                FileFormat::List | FileFormat::Empty => {
                    self.list_line(raw, &stem_feed, &mut report)
                }
            };
            if !ok {
                report.bad_lines += 1;
                if report.bad_lines <= 5 {
                    tracing::warn!(file = %path.display(), line = n + 1, "indicator line not understood; skipped");
                }
            }
        }
        report
    }

    fn insert(&mut self, key: SafeKey, ind: &Arc<Indicator>, report: &mut FileReport) {
        let key = key.into_string().into_boxed_str();
        match self.entries.get_mut(&key) {
            Some(existing) if !Arc::ptr_eq(existing, ind) => {
                let mut merged = (**existing).clone();
                merged.merge(ind);
                *existing = Arc::new(merged);
            }
            Some(_) => {}
            None => {
                self.entries.insert(key, ind.clone());
                report.keys += 1;
            }
        }
    }

    /// Adds a domain or an IP address; false if `v` is neither.
    fn insert_value(&mut self, v: &str, ind: &Arc<Indicator>, report: &mut FileReport) -> bool {
        if let Ok(ip) = v.parse::<IpAddr>() {
            let ip = ip.to_string();
            self.insert(compose(None, &KeyKind::IpDst, &ip), ind, report);
            self.insert(compose(None, &KeyKind::IpSrc, &ip), ind, report);
            return true;
        }
        if !looks_like_domain(v) {
            return false;
        }
        let key = compose(None, &KeyKind::Domain, &normalize_name(v));
        self.insert(key, ind, report);
        true
    }

    fn ndjson_line(&mut self, raw: &str, report: &mut FileReport) -> bool {
        #[derive(Deserialize)]
        struct Line {
            key: String,
            value: serde_json::Value,
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return true;
        }
        let Ok(l) = serde_json::from_str::<Line>(line) else {
            return false;
        };
        if l.key.is_empty() {
            return false;
        }
        let bytes = match &l.value {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            v => serde_json::to_vec(v).unwrap_or_default(),
        };
        let ind = Arc::new(parse_value(&bytes));
        self.insert(safe_key(&l.key), &ind, report);
        true
    }

    fn hosts_line(&mut self, raw: &str, feed: &Arc<Indicator>, report: &mut FileReport) -> bool {
        let line = strip_comment(raw);
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            return true;
        };
        if first.parse::<IpAddr>().is_err() {
            return false;
        }
        let mut ok = true;
        for name in words {
            if HOSTS_OWN_NAMES.contains(&name) || name.parse::<IpAddr>().is_ok() {
                continue;
            }
            ok &= self.insert_value(name, feed, report);
        }
        ok
    }

    fn csv_line(
        &mut self,
        raw: &str,
        stem: &Arc<Indicator>,
        feeds: &mut HashMap<String, Arc<Indicator>>,
        report: &mut FileReport,
    ) -> bool {
        let line = strip_comment(raw);
        if line.is_empty() {
            return true;
        }
        let mut cols = line.split(',').map(|c| c.trim().trim_matches('"').trim());
        let value = cols.next().unwrap_or("");
        let feed = cols.next().unwrap_or("");
        let first = report.keys == 0 && report.bad_lines == 0;
        if first && value.eq_ignore_ascii_case("value") && feed.eq_ignore_ascii_case("feed") {
            return true;
        }
        let ind = if feed.is_empty() {
            stem.clone()
        } else {
            feeds
                .entry(feed.to_owned())
                .or_insert_with(|| Arc::new(parse_value(feed.as_bytes())))
                .clone()
        };
        self.insert_value(value, &ind, report)
    }

    fn list_line(&mut self, raw: &str, feed: &Arc<Indicator>, report: &mut FileReport) -> bool {
        let line = strip_comment(raw);
        if line.is_empty() {
            return true;
        }
        if line.split_whitespace().count() != 1 {
            return false;
        }
        self.insert_value(line, feed, report)
    }
}

/// Names every hosts file carries for the machine itself (also skipped by
/// `dnsenrich sync` when it reads hosts-format lists).
pub(crate) const HOSTS_OWN_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

fn strip_comment(raw: &str) -> &str {
    raw.split('#').next().unwrap_or("").trim()
}

fn looks_like_domain(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253 + 1
        && !v.starts_with('.')
        && !v.contains("..")
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*') || b >= 0x80
        })
}

/// The format of a file, from its first line with content.
pub fn detect(text: &str) -> FileFormat {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return FileFormat::Empty;
    };
    if first.starts_with('{') {
        return FileFormat::Ndjson;
    }
    let content = strip_comment(first);
    let mut words = content.split_whitespace();
    if let (Some(a), Some(_)) = (words.next(), words.next()) {
        if a.parse::<IpAddr>().is_ok() {
            return FileFormat::Hosts;
        }
    }
    if content.contains(',') {
        return FileFormat::Csv;
    }
    FileFormat::List
}

/// The store: the loaded map, swapped whole on reload.
pub struct Store {
    files: Vec<PathBuf>,
    map: RwLock<Arc<StoreMap>>,
}

impl Store {
    /// Loads `files`.
    pub fn open(files: Vec<PathBuf>) -> Result<Store, StoreError> {
        let map = StoreMap::load(&files)?;
        Ok(Store {
            files,
            map: RwLock::new(Arc::new(map)),
        })
    }

    /// The current map (one per batch: a reload does not change a batch half-way).
    pub fn snapshot(&self) -> Arc<StoreMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads every file; on error the old map stays.
    pub fn reload(&self) -> Result<Arc<StoreMap>, StoreError> {
        let map = Arc::new(StoreMap::load(&self.files)?);
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = map.clone();
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::value::ValueForm;

    fn load(name: &str, text: &str) -> StoreMap {
        let mut m = StoreMap::default();
        let r = m.add_file(Path::new(name), text);
        m.files.push(r);
        m
    }

    fn feeds(m: &StoreMap, key: &str) -> Vec<String> {
        m.get(key)
            .map(|i| i.feeds.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn detection_by_first_line() {
        assert_eq!(detect("# c\n\n{\"key\":1}"), FileFormat::Ndjson);
        assert_eq!(detect("0.0.0.0 ads.example"), FileFormat::Hosts);
        assert_eq!(detect(":: ads.example # x"), FileFormat::Hosts);
        assert_eq!(detect("value,feed\nevil.example,F"), FileFormat::Csv);
        assert_eq!(detect("evil.example\n192.0.2.1"), FileFormat::List);
        assert_eq!(detect("192.0.2.1"), FileFormat::List);
        assert_eq!(detect("# only\n\n"), FileFormat::Empty);
    }

    #[test]
    fn plain_list_uses_the_file_stem_as_feed() {
        let m = load(
            "/etc/dnsenrich/Feed-Local.txt",
            "# my list\nEvil.Example.\n192.0.2.7 # a C2\n\nnot a domain\n",
        );
        assert_eq!(feeds(&m, "domain-evil.example"), ["Feed-Local"]);
        assert_eq!(feeds(&m, "ip-dst-192.0.2.7"), ["Feed-Local"]);
        assert_eq!(feeds(&m, "ip-src-192.0.2.7"), ["Feed-Local"]);
        assert_eq!(m.files[0].format, FileFormat::List);
        assert_eq!(m.files[0].bad_lines, 1);
        assert_eq!(m.files[0].keys, 3);
    }

    #[test]
    fn hosts_file_with_several_names_per_line() {
        let m = load(
            "blocklist.hosts",
            "127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n0.0.0.0 ads.example track.example # x\n0.0.0.0 0.0.0.0\n",
        );
        assert_eq!(feeds(&m, "domain-ads.example"), ["blocklist"]);
        assert_eq!(feeds(&m, "domain-track.example"), ["blocklist"]);
        assert!(m.get("domain-localhost").is_none());
        assert_eq!(m.len(), 2);
        assert_eq!(m.files[0].bad_lines, 0);
    }

    #[test]
    fn csv_value_feed() {
        let m = load(
            "iocs.csv",
            "Value,Feed\nevil.example,Feed-A\n\"evil.example\",\"Feed-B\"\n192.0.2.9,Feed-A\nnofeed.example\n",
        );
        assert_eq!(feeds(&m, "domain-evil.example"), ["Feed-A", "Feed-B"]);
        assert_eq!(feeds(&m, "ip-dst-192.0.2.9"), ["Feed-A"]);
        assert_eq!(feeds(&m, "domain-nofeed.example"), ["iocs"]);
        assert_eq!(m.files[0].bad_lines, 0);
    }

    #[test]
    fn ndjson_from_sync() {
        let long = format!("domain-{}", "a".repeat(300));
        let text = format!(
            "{}\n{}\n{}\nnot json\n",
            r#"{"key":"domain-evil.example","value":{"v":1,"type":"domain","value":"evil.example","feeds":[{"name":"Feed-R","provider":"MISP"}]}}"#,
            r#"{"key":"ip-dst-192.0.2.1","value":"['Feed-A', 'Feed-B']"}"#,
            serde_json::json!({"key": long, "value": "Feed-Long"}),
        );
        let m = load("sync.ndjson", &text);
        let i = m.get("domain-evil.example").unwrap();
        assert_eq!(i.form, ValueForm::Json);
        assert_eq!(i.feeds[0].provider.as_deref(), Some("MISP"));
        assert_eq!(feeds(&m, "ip-dst-192.0.2.1"), ["Feed-A", "Feed-B"]);
        assert_eq!(feeds(&m, safe_key(&long).as_str()), ["Feed-Long"]);
        assert_eq!(m.files[0].bad_lines, 1);
    }

    #[test]
    fn reload_swaps_and_keeps_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("Feed-X.txt");
        std::fs::write(&p, "a.example\n").unwrap();
        let s = Store::open(vec![p.clone()]).unwrap();
        assert!(s.snapshot().get("domain-a.example").is_some());
        std::fs::write(&p, "b.example\n").unwrap();
        s.reload().unwrap();
        let snap = s.snapshot();
        assert!(snap.get("domain-a.example").is_none());
        assert!(snap.get("domain-b.example").is_some());
        std::fs::remove_file(&p).unwrap();
        assert!(s.reload().is_err());
        assert!(s.snapshot().get("domain-b.example").is_some());
        assert!(Store::open(vec![dir.path().join("missing")]).is_err());
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        assert!(Store::open(vec![empty]).unwrap().snapshot().is_empty());
    }
}
