//! MISP-format feeds: `manifest.json` (event uuid → info, tags, threat level,
//! timestamp) and one `<uuid>.json` per event, read from a directory or an
//! HTTP URL. Attributes inside objects count like top-level ones. Events
//! older than `since` are not even fetched.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use serde::Deserialize;

use super::collect::Collector;
use super::http::{Fetcher, Location, ParseFailure};
use super::misp::{take_attribute, EventContext, Filters, RawAttribute, RawEvent};
use super::progress::Progress;
use super::SyncError;
use crate::indicator::value::parse_time;

/// Event files fetched at the same time from a feed URL.
const PARALLEL_FETCHES: usize = 4;

/// A `--misp-feed` value: `[NAME=]DIR|URL`.
#[derive(Debug, Clone)]
pub(crate) struct FeedSource {
    pub name: String,
    pub location: Location,
}

impl FeedSource {
    pub fn parse(spec: &str) -> Result<FeedSource, SyncError> {
        let (name, loc) = split_name(spec);
        let location = Location::parse(loc)?;
        let name = name.map(str::to_string).unwrap_or_else(|| {
            let trimmed = loc.trim_end_matches('/');
            let last = trimmed.rsplit(['/', '\\']).next().unwrap_or("");
            if last.is_empty() || last.contains(':') {
                "MISP feed".to_string()
            } else {
                last.to_string()
            }
        });
        Ok(FeedSource { name, location })
    }
}

/// `NAME=rest` when NAME looks like a name (letters, digits, `-_.` and
/// spaces, no `/` or `:`), else no name.
pub fn split_name(spec: &str) -> (Option<&str>, &str) {
    if let Some((n, rest)) = spec.split_once('=') {
        let is_name = !n.is_empty()
            && n.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
        if is_name && !rest.is_empty() {
            return (Some(n), rest);
        }
    }
    (None, spec)
}

#[derive(Debug, Deserialize)]
struct EventFile {
    #[serde(rename = "Event")]
    event: FeedEvent,
}

#[derive(Debug, Deserialize)]
struct FeedEvent {
    #[serde(flatten)]
    meta: RawEvent,
    #[serde(rename = "Attribute", default)]
    attributes: Option<Vec<RawAttribute>>,
    #[serde(rename = "Object", default)]
    objects: Option<Vec<FeedObject>>,
}

#[derive(Debug, Deserialize)]
struct FeedObject {
    #[serde(rename = "Attribute", default)]
    attributes: Option<Vec<RawAttribute>>,
    #[serde(default)]
    deleted: Option<serde_json::Value>,
}

/// Loads one MISP feed.
pub(crate) async fn load(
    fetcher: &Fetcher,
    src: &FeedSource,
    filters: &Filters,
    mut c: Collector,
    progress: &Progress,
) -> Result<Collector, SyncError> {
    let origin = format!("MISP feed {}", src.location);
    let before = c.report.indicators();
    progress.message(format!("{origin}: manifest"));
    let manifest_loc = src.location.join("manifest.json");
    let manifest: BTreeMap<String, RawEvent> = fetcher
        .read("MISP feed manifest", &manifest_loc, |r| {
            serde_json::from_reader(r).map_err(ParseFailure::from)
        })
        .await?;
    let mut wanted = Vec::new();
    for (uuid, ev) in &manifest {
        if !is_uuid(uuid) {
            return Err(SyncError::Malformed {
                origin: format!("MISP feed manifest {manifest_loc}"),
                reason: format!("`{uuid}` is not an event uuid"),
            });
        }
        let old = filters
            .since
            .zip(parse_time(&ev.timestamp))
            .is_some_and(|(since, t)| t < since);
        if !old {
            wanted.push(uuid.clone());
        }
    }
    let skipped_events = manifest.len() - wanted.len();
    let total = wanted.len();
    let mut events = stream::iter(wanted.into_iter().map(|uuid| {
        let loc = src.location.join(&format!("{uuid}.json"));
        let fetcher = fetcher.clone();
        async move {
            let ev: EventFile = fetcher
                .read("MISP feed event", &loc, |r| {
                    serde_json::from_reader(r).map_err(ParseFailure::from)
                })
                .await?;
            Ok::<_, SyncError>((uuid, ev))
        }
    }))
    .buffer_unordered(PARALLEL_FETCHES);
    let mut done = 0;
    while let Some(r) = events.next().await {
        let (uuid, file) = r?;
        done += 1;
        progress.message(format!("{origin}: event {done}/{total}"));
        let ev = file.event;
        // The manifest's entry fills in what the event file leaves out.
        let m = manifest.get(&uuid);
        let provider = ev
            .meta
            .orgc
            .as_ref()
            .or_else(|| m.and_then(|m| m.orgc.as_ref()))
            .map(|o| o.name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("MISP");
        let mut ctx = EventContext::from_raw(&ev.meta, provider, &src.name);
        ctx.id = Some(uuid.clone());
        if let Some(m) = m {
            if ctx.tags.is_empty() {
                ctx.tags = m.tags.iter().map(|t| t.name.clone()).collect();
            }
            let mctx = EventContext::from_raw(m, provider, &src.name);
            ctx.info = ctx.info.or(mctx.info);
            ctx.threat_level = ctx.threat_level.or(mctx.threat_level);
        }
        for a in ev.attributes.iter().flatten() {
            take_attribute(&mut c, filters, a, &ctx);
        }
        for o in ev.objects.iter().flatten() {
            let deleted = matches!(&o.deleted, Some(serde_json::Value::Bool(true)))
                || matches!(&o.deleted, Some(serde_json::Value::String(s)) if s == "1");
            for a in o.attributes.iter().flatten() {
                if deleted {
                    c.skip(super::indicator::SkipReason::Deleted, || {
                        format!("{} {}", a.ty, a.value)
                    });
                } else {
                    take_attribute(&mut c, filters, a, &ctx);
                }
            }
        }
    }
    if skipped_events > 0 {
        tracing::debug!(feed = %src.name, events = skipped_events, "events older than `since` not fetched");
    }
    let taken = c.report.indicators() - before;
    c.report.sources.push((origin, taken));
    Ok(c)
}

/// A MISP event uuid (hex and dashes; also keeps `../` out of file names).
fn is_uuid(s: &str) -> bool {
    (32..=36).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_locations() {
        let f = FeedSource::parse("CIRCL=https://feeds.example/osint/").unwrap();
        assert_eq!(f.name, "CIRCL");
        assert!(matches!(f.location, Location::Url(_)));
        let f = FeedSource::parse("/srv/feeds/feed-osint/").unwrap();
        assert_eq!(f.name, "feed-osint");
        assert_eq!(
            f.location.join("manifest.json").to_string(),
            "/srv/feeds/feed-osint/manifest.json"
        );
        let f = FeedSource::parse("https://feeds.example/osint").unwrap();
        assert_eq!(
            f.location.join("manifest.json").to_string(),
            "https://feeds.example/osint/manifest.json"
        );
        assert_eq!(
            split_name("https://x.example/?a=b"),
            (None, "https://x.example/?a=b")
        );
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("5e6a2b8c-1f3d-4e5a-9b7c-0d1e2f3a4b5c"));
        assert!(!is_uuid("../../etc/passwd"));
    }
}
