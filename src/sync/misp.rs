//! MISP: the attribute model shared by the REST API and MISP-format feeds,
//! the filters applied to it, and `POST /attributes/restSearch` with paging.
//!
//! A restSearch page is parsed as it arrives: the `{"response":{"Attribute":
//! [...]}}` array is visited element by element, so memory holds one
//! attribute at a time, not the page. Pages (`page`/`limit`) bound what any
//! one response has to carry; a response over `max_response_mib` is an error.

use std::fmt;
use std::io::BufRead;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::collect::{Collector, FeedRef, Seen};
use super::config::SyncConfig;
use super::http::{error_body, reqwest_reason, Fetcher, ParseFailure};
use super::indicator::{map_misp, tags_selected, wildcard_match, SkipReason};
use super::progress::Progress;
use super::SyncError;
use crate::indicator::value::parse_time;

/// No sync asks for more pages than this (a server that ignores `page`
/// must not keep it busy forever).
const MAX_PAGES: u32 = 100_000;

/// A MISP attribute as the API and feeds send it; unknown fields are skipped.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawAttribute {
    #[serde(rename = "type", default)]
    pub ty: String,
    #[serde(default, deserialize_with = "loose_string")]
    pub value: String,
    #[serde(default, deserialize_with = "loose_bool")]
    pub to_ids: Option<bool>,
    #[serde(default, deserialize_with = "loose_bool")]
    pub deleted: Option<bool>,
    #[serde(default, deserialize_with = "loose_string")]
    pub event_id: String,
    #[serde(default, deserialize_with = "loose_string")]
    pub timestamp: String,
    #[serde(default, deserialize_with = "loose_string")]
    pub first_seen: String,
    #[serde(default, deserialize_with = "loose_string")]
    pub last_seen: String,
    #[serde(rename = "Tag", default, deserialize_with = "null_as_default")]
    pub tags: Vec<RawTag>,
    /// The event context (restSearch with `includeContext`).
    #[serde(rename = "Event", default)]
    pub event: Option<RawEvent>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawTag {
    #[serde(default, deserialize_with = "loose_string")]
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawOrg {
    #[serde(default, deserialize_with = "loose_string")]
    pub name: String,
}

/// An event's own fields (restSearch context, a feed event, or a manifest
/// entry).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawEvent {
    #[serde(default, deserialize_with = "loose_string")]
    pub id: String,
    #[serde(default, deserialize_with = "loose_string")]
    pub uuid: String,
    #[serde(default, deserialize_with = "loose_string")]
    pub info: String,
    #[serde(default, deserialize_with = "loose_string")]
    pub threat_level_id: String,
    #[serde(default, deserialize_with = "loose_bool")]
    pub published: Option<bool>,
    #[serde(default, deserialize_with = "loose_string")]
    pub timestamp: String,
    #[serde(rename = "Orgc", default)]
    pub orgc: Option<RawOrg>,
    #[serde(rename = "Tag", default, deserialize_with = "null_as_default")]
    pub tags: Vec<RawTag>,
}

/// What the selection keeps, applied to every MISP attribute whatever its
/// source (the API filters server-side too; feeds only here).
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    pub types: Vec<String>,
    pub tags: Vec<String>,
    pub feed_tags: Vec<String>,
    pub to_ids: bool,
    pub published: Option<bool>,
    /// Epoch seconds; older attributes are dropped.
    pub since: Option<i64>,
}

impl Filters {
    pub fn new(cfg: &SyncConfig, now: i64) -> Self {
        Filters {
            types: cfg.types.clone(),
            tags: cfg.tags.clone(),
            feed_tags: cfg.feed_tags.clone(),
            to_ids: cfg.to_ids,
            published: cfg.published,
            since: cfg
                .since
                .map(|d| now - i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)),
        }
    }
}

/// The event an attribute belongs to, resolved to what the value carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventContext {
    pub id: Option<String>,
    pub info: Option<String>,
    pub threat_level: Option<u8>,
    pub published: Option<bool>,
    pub tags: Vec<String>,
    pub provider: String,
    /// The feed name when no tag names one.
    pub fallback_feed: String,
}

impl EventContext {
    pub fn from_raw(ev: &RawEvent, provider: &str, fallback_feed: &str) -> Self {
        EventContext {
            id: non_empty(&ev.id).or_else(|| non_empty(&ev.uuid)),
            info: non_empty(&ev.info),
            threat_level: ev
                .threat_level_id
                .trim()
                .parse()
                .ok()
                .filter(|l| (1..=4).contains(l)),
            published: ev.published,
            tags: ev.tags.iter().map(|t| t.name.clone()).collect(),
            provider: provider.to_string(),
            fallback_feed: fallback_feed.to_string(),
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Filters one attribute and adds what it maps to.
pub(crate) fn take_attribute(c: &mut Collector, f: &Filters, a: &RawAttribute, ev: &EventContext) {
    let example = || format!("{} {}", a.ty, a.value);
    if a.deleted == Some(true) {
        return c.skip(SkipReason::Deleted, example);
    }
    if !f.types.iter().any(|t| wildcard_match(t, &a.ty)) {
        return c.skip(SkipReason::TypeNotSelected, example);
    }
    if f.to_ids && a.to_ids == Some(false) {
        return c.skip(SkipReason::NotForDetection, example);
    }
    if let (Some(want), Some(is)) = (f.published, ev.published) {
        if want != is {
            return c.skip(SkipReason::PublishedFilter, example);
        }
    }
    let all_tags = || {
        a.tags
            .iter()
            .map(|t| t.name.as_str())
            .chain(ev.tags.iter().map(String::as_str))
    };
    if !tags_selected(&f.tags, all_tags()) {
        return c.skip(SkipReason::TagNotSelected, example);
    }
    if let Some(since) = f.since {
        if parse_time(&a.timestamp).is_some_and(|t| t < since) {
            return c.skip(SkipReason::TooOld, example);
        }
    }
    let mut names: Vec<&str> = all_tags()
        .filter(|t| f.feed_tags.iter().any(|p| wildcard_match(p, t)))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        names.push(&ev.fallback_feed);
    }
    let event_id = ev.id.clone().or_else(|| non_empty(&a.event_id));
    let feeds: Vec<u32> = names
        .iter()
        .map(|n| {
            c.feed(FeedRef {
                name: (*n).into(),
                provider: Some(ev.provider.as_str().into()),
                event_id: event_id.as_deref().map(Into::into),
                event_info: ev.info.as_deref().map(Into::into),
                threat_level: ev.threat_level,
            })
        })
        .collect();
    let seen = Seen {
        first: parse_time(&a.first_seen),
        last: parse_time(&a.last_seen),
    };
    let mapped = map_misp(&a.ty, &a.value);
    c.add(&a.ty, &example(), mapped, &feeds, seen);
}

/// Loads every page of `POST /attributes/restSearch`.
pub(crate) async fn load(
    fetcher: &Fetcher,
    cfg: &SyncConfig,
    key: &str,
    filters: &Filters,
    mut c: Collector,
    progress: &Progress,
) -> Result<Collector, SyncError> {
    let base = cfg.misp_url.as_deref().unwrap_or_default();
    let url = format!("{}/attributes/restSearch", base.trim_end_matches('/'));
    let origin = format!("MISP at {base}");
    let before = c.report.indicators();
    let mut attributes: u64 = 0;
    for page in 1..=MAX_PAGES {
        progress.message(format!(
            "{origin}: page {page}, {attributes} attributes so far"
        ));
        let body = request_body(cfg, filters, page);
        let resp = fetcher
            .client()
            .post(&url)
            .header("Authorization", key)
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| SyncError::Unreachable {
                origin: origin.clone(),
                reason: reqwest_reason(&e),
            })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(SyncError::MispAuth {
                url: base.to_string(),
                status,
            });
        }
        if !resp.status().is_success() {
            let body = error_body(resp).await;
            return Err(SyncError::Http {
                origin,
                status,
                body,
            });
        }
        let f = filters.clone();
        let fallback = EventContext {
            provider: "MISP".into(),
            fallback_feed: "MISP".into(),
            ..EventContext::default()
        };
        let (back, n) = fetcher
            .parse_response(format!("{origin} (page {page})"), resp, move |r| {
                let mut n: u64 = 0;
                parse_page(r, |a| {
                    n += 1;
                    let ev = match &a.event {
                        Some(e) => EventContext::from_raw(e, "MISP", "MISP"),
                        None => fallback.clone(),
                    };
                    take_attribute(&mut c, &f, &a, &ev);
                })?;
                Ok((c, n))
            })
            .await?;
        c = back;
        attributes += n;
        if n < u64::from(cfg.page_limit) {
            break;
        }
    }
    let taken = c.report.indicators() - before;
    c.report.sources.push((origin, taken));
    Ok(c)
}

/// The restSearch request for one page (PyMISP's `search(controller=
/// 'attributes', ...)` body).
pub(crate) fn request_body(cfg: &SyncConfig, f: &Filters, page: u32) -> serde_json::Value {
    let mut b = json!({
        "returnFormat": "json",
        "type": cfg.types,
        "includeEventTags": 1,
        "includeContext": 1,
        "deleted": 0,
        "page": page,
        "limit": cfg.page_limit,
    });
    if !cfg.tags.is_empty() {
        b["tags"] = json!(cfg.tags);
    }
    if cfg.to_ids {
        b["to_ids"] = json!(1);
    }
    if let Some(p) = cfg.published {
        b["published"] = json!(u8::from(p));
    }
    if cfg.enforce_warninglist {
        b["enforceWarninglist"] = json!(1);
    }
    if let Some(since) = f.since {
        b["timestamp"] = json!(since.to_string());
    }
    b
}

/// Streams `{"response": {"Attribute": [...]}}`, calling `each` per attribute.
pub(crate) fn parse_page(
    r: &mut dyn BufRead,
    mut each: impl FnMut(RawAttribute),
) -> Result<(), ParseFailure> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let found = Body { each: &mut each }.deserialize(&mut de)?;
    de.end()?;
    if !found {
        return Err(ParseFailure::Malformed(
            "no `response` object (not a restSearch answer)".into(),
        ));
    }
    Ok(())
}

/// The top level: finds `response`, skips everything else. Yields whether
/// `response` was there.
struct Body<'a, F> {
    each: &'a mut F,
}

impl<'de, F: FnMut(RawAttribute)> DeserializeSeed<'de> for Body<'_, F> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(RawAttribute)> Visitor<'de> for Body<'_, F> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a restSearch answer {\"response\": {\"Attribute\": [...]}}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(k) = map.next_key::<String>()? {
            if k == "response" && !found {
                map.next_value_seed(Response {
                    each: &mut *self.each,
                })?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// `response`: `{"Attribute": [...]}`, or `[]` from servers that answer an
/// empty result that way.
struct Response<'a, F> {
    each: &'a mut F,
}

impl<'de, F: FnMut(RawAttribute)> DeserializeSeed<'de> for Response<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(RawAttribute)> Visitor<'de> for Response<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with an `Attribute` array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            if k == "Attribute" {
                map.next_value_seed(Attributes {
                    each: &mut *self.each,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "`response` is a list of events; query /attributes/restSearch, not /events/restSearch",
            ));
        }
        Ok(())
    }
}

struct Attributes<'a, F> {
    each: &'a mut F,
}

impl<'de, F: FnMut(RawAttribute)> DeserializeSeed<'de> for Attributes<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(RawAttribute)> Visitor<'de> for Attributes<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of attributes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(a) = seq.next_element::<RawAttribute>()? {
            (self.each)(a);
        }
        Ok(())
    }
}

/// A string that MISP may send as a string, a number, a bool or null.
fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or number")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(V)
}

/// A flag MISP may send as `true`, `1`, `"1"`, `"true"` (or their opposites)
/// or null.
fn loose_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s = loose_string(d)?;
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    })
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<RawAttribute>, ParseFailure> {
        let mut v = Vec::new();
        parse_page(&mut s.as_bytes(), |a| v.push(a))?;
        Ok(v)
    }

    #[test]
    fn attributes_are_streamed_out_of_the_response() {
        let v = parse(
            r#"{"response": {"Attribute": [
                {"id": "1", "type": "domain", "value": "evil.example", "to_ids": true,
                 "event_id": "42", "Tag": [{"name": "Feed-A"}], "first_seen": null,
                 "Event": {"id": "42", "info": "C2", "threat_level_id": "1"}},
                {"type": "ip-dst", "value": "192.0.2.1", "to_ids": "0", "Tag": null}
            ]}}"#,
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].tags[0].name, "Feed-A");
        assert_eq!(v[0].event.as_ref().unwrap().info, "C2");
        assert_eq!(v[1].to_ids, Some(false));
        assert!(parse(r#"{"response": []}"#).unwrap().is_empty());
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        for bad in [
            r#"{"response": {"Attribute": [{"type": "domain", "value": "x"}"#,
            r#"{"name": "Not Found", "message": "Not Found"}"#,
            r#"{"response": [{"Event": {}}]}"#,
            "<html>",
        ] {
            assert!(
                matches!(parse(bad), Err(ParseFailure::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn filters_apply_locally() {
        let mut c = Collector::new();
        let cfg = SyncConfig {
            tags: vec!["Feed-%".into()],
            ..SyncConfig::default()
        };
        let f = Filters::new(&cfg, 0);
        let ev = EventContext {
            provider: "MISP".into(),
            fallback_feed: "MISP".into(),
            ..EventContext::default()
        };
        let attr = |ty: &str, v: &str, ids: bool, tag: &str| RawAttribute {
            ty: ty.into(),
            value: v.into(),
            to_ids: Some(ids),
            tags: vec![RawTag { name: tag.into() }],
            ..RawAttribute::default()
        };
        take_attribute(
            &mut c,
            &f,
            &attr("domain", "a.example", true, "Feed-A"),
            &ev,
        );
        take_attribute(
            &mut c,
            &f,
            &attr("domain", "b.example", false, "Feed-A"),
            &ev,
        );
        take_attribute(
            &mut c,
            &f,
            &attr("domain", "c.example", true, "tlp:white"),
            &ev,
        );
        take_attribute(&mut c, &f, &attr("md5", "00", true, "Feed-A"), &ev);
        assert_eq!(c.len(), 1);
        let s = &c.report.skipped;
        assert_eq!(s[&SkipReason::NotForDetection], 1);
        assert_eq!(s[&SkipReason::TagNotSelected], 1);
        assert_eq!(s[&SkipReason::TypeNotSelected], 1);
    }

    #[test]
    fn request_carries_the_filters() {
        let cfg = SyncConfig {
            tags: vec!["Feed-%".into()],
            published: Some(true),
            page_limit: 500,
            ..SyncConfig::default()
        };
        let b = request_body(&cfg, &Filters::new(&cfg, 0), 3);
        assert_eq!(b["page"], 3);
        assert_eq!(b["limit"], 500);
        assert_eq!(b["to_ids"], 1);
        assert_eq!(b["published"], 1);
        assert_eq!(b["tags"][0], "Feed-%");
        assert_eq!(b["type"][0], "domain");
        assert_eq!(b["includeContext"], 1);
    }
}
