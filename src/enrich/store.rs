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
//! Every format but NDJSON is read by [`crate::indicator::list`], the reader
//! `dnsenrich sync --list` uses, so a list gives the same keys either way: a
//! name becomes `domain-<name>` (normalised), a URL its host, an IP address
//! both `ip-dst-<ip>` and `ip-src-<ip>` (a list gives no direction); hosts
//! files' own names (`localhost`, `broadcasthost`, …, any case) are skipped.
//! Hosts and plain lines may be mixed in one file. Keys are composed by [`crate::indicator::key::compose`].
//! Entries that cannot be read are skipped and counted; the first few are
//! logged with the file. A key listed in several places gets the union of its
//! feeds.
//! A file that cannot be read fails the load; a reload that fails keeps the
//! indicators that were loaded before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::indicator::key::{compose, safe_key, SafeKey};
use crate::indicator::list::{self, Column, Entry, LineFormat};
use crate::indicator::normalize::SkipReason;
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

    /// Every key held, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| &**k)
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
        let bad = |report: &mut FileReport, what: &dyn std::fmt::Display| {
            report.bad_lines += 1;
            if report.bad_lines <= 5 {
                tracing::warn!(file = %path.display(), entry = %what, "indicator entry not understood; skipped");
            }
        };
        let mut take = |this: &mut Self, report: &mut FileReport, e: Entry<'_>| match e {
            Entry::Value {
                raw, mapped, feed, ..
            } => {
                if mapped.atoms.is_empty() {
                    bad(report, &raw);
                }
                let ind = match feed {
                    Some(f) => feeds
                        .entry(f.to_owned())
                        .or_insert_with(|| Arc::new(parse_value(f.as_bytes())))
                        .clone(),
                    None => stem_feed.clone(),
                };
                for (kind, value) in mapped.atoms {
                    this.insert(compose(None, &kind, &value), &ind, report);
                }
            }
            Entry::Skip { reason, line } => {
                if reason != SkipReason::HostsBoilerplate {
                    bad(report, &line);
                }
            }
        };
        let mut input = text.as_bytes();
        // Reading from memory cannot fail underneath; bad CSV ends the file
        // there, like any line that cannot be read.
        let read = match format {
            FileFormat::Ndjson => {
                for raw in text.lines() {
                    if !self.ndjson_line(raw, &mut report) {
                        bad(&mut report, &"a line that is not {\"key\":…,\"value\":…}");
                    }
                }
                Ok(())
            }
            FileFormat::Csv => list::read_csv(
                &mut input,
                &Column::Index(0),
                Some(&Column::Index(1)),
                |e| take(self, &mut report, e),
            ),
            FileFormat::Hosts | FileFormat::List | FileFormat::Empty => {
                list::read_lines(&mut input, LineFormat::Auto, |e| take(self, &mut report, e))
            }
        };
        if let Err(e) = read {
            bad(&mut report, &e);
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
}

/// Kept at its old path for callers outside the contract.
pub use crate::indicator::list::HOSTS_OWN_NAMES;

fn strip_comment(raw: &str) -> &str {
    raw.split('#').next().unwrap_or("").trim()
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

    /// A store of `files`, already read into `map`.
    pub fn with_map(files: Vec<PathBuf>, map: Arc<StoreMap>) -> Store {
        Store {
            files,
            map: RwLock::new(map),
        }
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
    fn lists_read_like_sync_reads_them() {
        // Boilerplate in any case, URL entries, and hosts lines mixed into a
        // plain list, as `dnsenrich sync --list` reads them.
        let m = load(
            "mixed.txt",
            "127.0.0.1 LocalHost\n::1 IP6-Localhost\nhttps://Drop.Example/x.exe\n0.0.0.0 ads.example\nplain.example\n",
        );
        assert!(m.get("domain-localhost").is_none());
        assert!(m.get("domain-ip6-localhost").is_none());
        assert_eq!(feeds(&m, "domain-drop.example"), ["mixed"]);
        assert_eq!(feeds(&m, "domain-ads.example"), ["mixed"]);
        assert_eq!(feeds(&m, "domain-plain.example"), ["mixed"]);
        assert_eq!(m.len(), 3);
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
