//! Gathers the indicators of every source into one set keyed like memcached,
//! so an indicator listed by several events or feeds is written once,
//! carrying all of them.
//!
//! Memory is one entry per distinct indicator: the normalised value plus a
//! small list of sightings, each a 4-byte index into a table of interned
//! feed references (a MISP event's feed name, info and threat level are
//! stored once, however many attributes it has). The set is hashed with
//! foldhash, seeded per process: much cheaper than SipHash for millions of
//! short keys, and still not predictable from the feed data.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::config::ValueFormat;
use super::indicator::{KeyKind, Mapped, SkipReason};
use super::report::SyncReport;
use crate::indicator::key::{compose_into, SafeKey};
use crate::indicator::value::{rfc3339, threat_level_name, FeedRefJson, ValueRef, VALUE_VERSION};

pub use super::report::MAX_FEEDS_PER_KEY;

/// Where an indicator was seen: a feed, or a MISP event under a feed name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FeedRef {
    pub name: Box<str>,
    pub provider: Option<Box<str>>,
    pub event_id: Option<Box<str>>,
    pub event_info: Option<Box<str>>,
    /// MISP `threat_level_id`, 1 (high) to 4 (undefined).
    pub threat_level: Option<u8>,
}

impl FeedRef {
    /// A feed known only by its name (blocklists).
    pub fn named(name: &str) -> Self {
        FeedRef {
            name: name.into(),
            ..FeedRef::default()
        }
    }
}

/// An index into the collector's feed table.
pub type FeedId = u32;

#[derive(Debug, Clone, Copy)]
struct Sighting {
    feed: FeedId,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
}

/// First and last seen of one attribute, as epoch seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    pub first: Option<i64>,
    pub last: Option<i64>,
}

/// Every indicator read so far, and the counts for the report.
#[derive(Default)]
pub struct Collector {
    feeds: Vec<FeedRef>,
    feed_ids: HashMap<FeedRef, FeedId>,
    entries: HashMap<(KeyKind, Box<str>), SmallVec<[Sighting; 1]>, foldhash::fast::RandomState>,
    pub report: SyncReport,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of a feed reference, interning it on first use.
    pub fn feed(&mut self, r: FeedRef) -> FeedId {
        if let Some(&id) = self.feed_ids.get(&r) {
            return id;
        }
        let id = FeedId::try_from(self.feeds.len()).unwrap_or(FeedId::MAX);
        self.feeds.push(r.clone());
        self.feed_ids.insert(r, id);
        id
    }

    /// Distinct indicators (future keys) so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counts an indicator dropped before mapping (by a filter), with the
    /// value as an example for the report.
    pub fn skip(&mut self, reason: SkipReason, example: impl FnOnce() -> String) {
        self.report.skip(reason, example);
    }

    /// Adds what one attribute or list entry mapped to, under `feeds`.
    /// `ty` is the source's type (`hostname`, `domain|ip`, or `domain` for a
    /// list entry) for the by-type count.
    pub fn add(&mut self, ty: &str, raw: &str, mapped: Mapped, feeds: &[FeedId], seen: Seen) {
        for r in mapped.skipped {
            self.report.skip(r, || raw.to_string());
        }
        if mapped.atoms.is_empty() {
            return;
        }
        bump(&mut self.report.by_type, ty);
        for &f in feeds {
            if let Some(fr) = self.feeds.get(f as usize) {
                bump(&mut self.report.by_feed, &fr.name);
            }
        }
        for (kind, value) in mapped.atoms {
            let entry = self
                .entries
                .entry((kind, value.into_boxed_str()))
                .or_default();
            for &feed in feeds {
                if let Some(s) = entry.iter_mut().find(|s| s.feed == feed) {
                    s.first_seen = min_opt(s.first_seen, seen.first);
                    s.last_seen = max_opt(s.last_seen, seen.last);
                } else if entry.len() < MAX_FEEDS_PER_KEY {
                    entry.push(Sighting {
                        feed,
                        first_seen: seen.first,
                        last_seen: seen.last,
                    });
                } else {
                    self.report.feeds_truncated += 1;
                }
            }
        }
    }

    /// Renders every key and value, in no particular order.
    pub fn for_each_item(
        &self,
        namespace: Option<&str>,
        format: ValueFormat,
        f: impl FnMut(Item<'_>),
    ) {
        self.for_each_item_of_part(0, 1, namespace, format, f)
    }

    /// [`Self::for_each_item`] for every `parts`-th entry starting at `part`,
    /// so several threads can render and write disjoint shares.
    pub fn for_each_item_of_part(
        &self,
        part: usize,
        parts: usize,
        namespace: Option<&str>,
        format: ValueFormat,
        mut f: impl FnMut(Item<'_>),
    ) {
        let mut buf = Vec::with_capacity(512);
        let mut raw = String::with_capacity(128);
        let parts = parts.max(1);
        for ((kind, value), sightings) in self.entries.iter().skip(part).step_by(parts) {
            let key = compose_into(namespace, kind, value, &mut raw);
            buf.clear();
            self.render(*kind, value, sightings, format, &mut buf);
            f(Item {
                kind: *kind,
                raw: &raw,
                key,
                value: &buf,
            });
        }
    }

    /// Every key and value, sorted by key (for files and tests).
    pub fn sorted_items(&self, namespace: Option<&str>, format: ValueFormat) -> Vec<OwnedItem> {
        let mut v = Vec::with_capacity(self.entries.len());
        self.for_each_item(namespace, format, |it| {
            v.push(OwnedItem {
                kind: it.kind,
                raw: it.raw.to_string(),
                key: it.key,
                value: it.value.to_vec(),
            })
        });
        v.sort_by(|a, b| a.raw.cmp(&b.raw));
        v
    }

    fn render(
        &self,
        kind: KeyKind,
        value: &str,
        sightings: &[Sighting],
        format: ValueFormat,
        out: &mut Vec<u8>,
    ) {
        let mut refs: SmallVec<[(&FeedRef, &Sighting); 4]> = sightings
            .iter()
            .filter_map(|s| self.feeds.get(s.feed as usize).map(|f| (f, s)))
            .collect();
        refs.sort_by(|a, b| {
            (&a.0.name, &a.0.event_id, &a.0.event_info).cmp(&(
                &b.0.name,
                &b.0.event_id,
                &b.0.event_info,
            ))
        });
        match format {
            ValueFormat::Plain => {
                let mut last: Option<&str> = None;
                for (f, _) in &refs {
                    if last == Some(&f.name) {
                        continue;
                    }
                    if last.is_some() {
                        out.push(b',');
                    }
                    out.extend_from_slice(f.name.as_bytes());
                    last = Some(&f.name);
                }
            }
            ValueFormat::Json => {
                let v = ValueRef {
                    v: VALUE_VERSION,
                    kind: kind.name(),
                    value,
                    feeds: refs
                        .iter()
                        .map(|(f, s)| FeedRefJson {
                            name: &f.name,
                            provider: f.provider.as_deref(),
                            event_id: f.event_id.as_deref(),
                            event_info: f.event_info.as_deref(),
                            threat_level: f.threat_level.and_then(threat_level_name),
                            first_seen: s.first_seen.and_then(rfc3339),
                            last_seen: s.last_seen.and_then(rfc3339),
                        })
                        .collect(),
                };
                // Writing into a Vec cannot fail, and every field serialises.
                let _ = serde_json::to_writer(&mut *out, &v);
            }
        }
    }
}

/// One key and its rendered value.
pub struct Item<'a> {
    pub kind: KeyKind,
    /// The key before key safety (namespace, prefix, value).
    pub raw: &'a str,
    /// The key as sent: `raw`, or its digest form.
    pub key: SafeKey,
    pub value: &'a [u8],
}

/// [`Item`] with its value copied out.
#[derive(Debug, Clone)]
pub struct OwnedItem {
    pub kind: KeyKind,
    pub raw: String,
    pub key: SafeKey,
    pub value: Vec<u8>,
}

fn bump(m: &mut std::collections::BTreeMap<String, u64>, k: &str) {
    if let Some(n) = m.get_mut(k) {
        *n += 1;
    } else {
        m.insert(k.to_string(), 1);
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::key::safe_key;
    use crate::indicator::value::{parse_value, IndicatorValue, ValueForm};
    use crate::sync::indicator::map_misp;

    fn event(c: &mut Collector, name: &str, id: &str) -> FeedId {
        c.feed(FeedRef {
            name: name.into(),
            provider: Some("MISP".into()),
            event_id: Some(id.into()),
            event_info: Some(format!("event {id}").into()),
            threat_level: Some(1),
        })
    }

    #[test]
    fn an_indicator_in_two_events_carries_both() {
        let mut c = Collector::new();
        let a = event(&mut c, "Feed-A", "1");
        let b = event(&mut c, "Feed-B", "2");
        let seen = Seen {
            first: Some(1_767_312_000),
            last: None,
        };
        c.add(
            "domain",
            "Evil.Example",
            map_misp("domain", "Evil.Example"),
            &[a],
            seen,
        );
        c.add(
            "hostname",
            "evil.example",
            map_misp("hostname", "evil.example"),
            &[b],
            Seen::default(),
        );
        c.add(
            "domain",
            "evil.example",
            map_misp("domain", "evil.example"),
            &[a],
            Seen::default(),
        );
        let items = c.sorted_items(None, ValueFormat::Json);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key.as_str(), "domain-evil.example");
        let v: IndicatorValue = serde_json::from_slice(&items[0].value).unwrap();
        assert_eq!(v.type_.as_deref(), Some("domain"));
        assert_eq!(v.value.as_deref(), Some("evil.example"));
        let read = parse_value(&items[0].value);
        assert_eq!(read.form, ValueForm::Json);
        assert_eq!(read.feeds.len(), 2);
        let names: Vec<_> = v.feeds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Feed-A", "Feed-B"]);
        assert_eq!(v.feeds[0].threat_level.as_deref(), Some("high"));
        assert_eq!(
            v.feeds[0].first_seen.as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
        let plain = c.sorted_items(None, ValueFormat::Plain);
        assert_eq!(plain[0].value, b"Feed-A,Feed-B");
        assert_eq!(c.report.by_type["domain"], 2);
        assert_eq!(c.report.by_feed["Feed-A"], 2);
    }

    #[test]
    fn odd_keys_are_hashed_like_the_enricher_hashes_them() {
        let mut c = Collector::new();
        let f = c.feed(FeedRef::named("A"));
        c.add(
            "domain",
            "x",
            map_misp("domain", "bad name.example"),
            &[f],
            Seen::default(),
        );
        let items = c.sorted_items(Some("ti"), ValueFormat::Plain);
        assert!(items[0].key.is_hashed());
        assert_eq!(items[0].key, safe_key("ti:domain-bad name.example"));
        assert!(items[0].key.as_str().starts_with("ti:domain-#"));
    }

    #[test]
    fn feeds_per_key_are_capped() {
        let mut c = Collector::new();
        for i in 0..(MAX_FEEDS_PER_KEY + 5) {
            let f = event(&mut c, "Feed-A", &i.to_string());
            c.add(
                "ip-dst",
                "192.0.2.1",
                map_misp("ip-dst", "192.0.2.1"),
                &[f],
                Seen::default(),
            );
        }
        assert_eq!(c.report.feeds_truncated, 5);
        let items = c.sorted_items(None, ValueFormat::Json);
        let v: IndicatorValue = serde_json::from_slice(&items[0].value).unwrap();
        assert_eq!(v.feeds.len(), MAX_FEEDS_PER_KEY);
    }
}
