//! Indicator values: what a lookup key maps to, in every form sync jobs write.
//!
//! | form | example | who writes it |
//! |---|---|---|
//! | plain text | `Feed-RansomwareTracker` | the classic blog set-up: value = feed name |
//! | Python list | `['Feed-A', 'Feed-B']` (or `"…"` quotes) | the classic `misppull.py`: pymemcache stores `str(tagList)` |
//! | JSON | `{"v":1,"type":"domain","value":"evil.example","feeds":[{"name":"Feed-A",…}]}` | `dnsenrich sync` ([`IndicatorValue`], [`encode_value`]) |
//!
//! A JSON string (`"Feed-A"`) is read as plain text. [`parse_value`] never
//! fails: a value it cannot read still means the key exists, so it becomes an
//! indicator of the feed [`UNKNOWN_FEED`] marked [`ValueForm::Malformed`] (and
//! counted), rather than a miss.
//!
//! Feed names are cut to [`MAX_NAME_LEN`] bytes and a value keeps at most
//! [`MAX_FEEDS`] feeds, so a hostile value cannot inflate every event that
//! matches it. `first_seen`/`last_seen` are kept only when they are RFC 3339
//! timestamps (they are mapped as dates; a bad one would get the document
//! rejected).
//!
//! Both sides live here: the read side ([`parse_value`], [`Indicator`]) that
//! the enricher applies to every hit, and the write side ([`ValueRef`],
//! [`rfc3339`], [`threat_level_name`]) that `dnsenrich sync` renders from
//! borrowed data without copying strings.

use serde::{Deserialize, Deserializer, Serialize};

/// The `v` a reader of this version understands.
pub const VALUE_VERSION: u32 = 1;
/// Feed name of a value that exists but could not be read.
pub const UNKNOWN_FEED: &str = "unknown";
/// Longest feed name, provider or description kept, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Most feeds kept from one value.
pub const MAX_FEEDS: usize = 32;

/// The JSON value `dnsenrich sync` writes for one key. Only `feeds[].name`
/// is required; unknown fields are ignored so later versions can add some.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndicatorValue {
    /// Format version, [`VALUE_VERSION`].
    pub v: u32,
    /// MISP attribute type: `domain`, `ip-dst`, `ip-src`, …
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The indicator itself, e.g. `evil.example`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub feeds: Vec<FeedInfo>,
}

/// One feed that lists the indicator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedInfo {
    /// The feed's name, e.g. `Feed-RansomwareTracker` (what `misp_src` shows).
    pub name: String,
    /// Who provides the indicator, e.g. `MISP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// MISP event id (a JSON string or number).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_number"
    )]
    pub event_id: Option<String>,
    /// MISP event info, e.g. `Ransomware C2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_info: Option<String>,
    /// MISP threat level: `high`, `medium`, `low`, `undefined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat_level: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

impl FeedInfo {
    /// A feed known only by its name.
    pub fn named(name: &str) -> FeedInfo {
        FeedInfo {
            name: name.to_owned(),
            ..Default::default()
        }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    }))
}

/// The bytes `dnsenrich sync` stores for `value` (compact JSON, `v` set).
pub fn encode_value(value: &IndicatorValue) -> Vec<u8> {
    let mut v = value.clone();
    if v.v == 0 {
        v.v = VALUE_VERSION;
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Which form a value was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueForm {
    Plain,
    PythonList,
    Json,
    /// Unreadable (bad UTF-8, control characters, broken JSON, no feed).
    Malformed,
}

/// A value as the enricher uses it: the feeds, cleaned and capped. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub feeds: Vec<FeedInfo>,
    pub form: ValueForm,
}

impl Indicator {
    /// An indicator listed by one named feed.
    pub fn in_feed(name: &str) -> Indicator {
        Indicator {
            feeds: vec![FeedInfo::named(name)],
            form: ValueForm::Plain,
        }
    }

    fn malformed() -> Indicator {
        Indicator {
            feeds: vec![FeedInfo::named(UNKNOWN_FEED)],
            form: ValueForm::Malformed,
        }
    }

    /// Adds the feeds of `other` that are not there yet (by name).
    pub fn merge(&mut self, other: &Indicator) {
        for f in &other.feeds {
            if self.feeds.len() < MAX_FEEDS && !self.feeds.iter().any(|g| g.name == f.name) {
                self.feeds.push(f.clone());
            }
        }
    }
}

/// Reads a value in any of the forms above.
pub fn parse_value(bytes: &[u8]) -> Indicator {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Indicator::malformed();
    };
    let text = text.trim();
    let (form, feeds) = match text.as_bytes().first() {
        Some(b'{') => (ValueForm::Json, parse_json(text)),
        Some(b'[') => (ValueForm::PythonList, parse_list(text)),
        Some(b'"') => (
            ValueForm::Plain,
            serde_json::from_str::<String>(text)
                .ok()
                .and_then(|s| clean(&s))
                .map(|n| vec![FeedInfo::named(&n)]),
        ),
        Some(_) => (
            ValueForm::Plain,
            clean(text).map(|n| vec![FeedInfo::named(&n)]),
        ),
        None => (ValueForm::Malformed, None),
    };
    match feeds {
        Some(feeds) if !feeds.is_empty() => Indicator { feeds, form },
        _ => Indicator::malformed(),
    }
}

fn parse_json(text: &str) -> Option<Vec<FeedInfo>> {
    let v: IndicatorValue = serde_json::from_str(text).ok()?;
    let mut out: Vec<FeedInfo> = Vec::new();
    for f in v.feeds {
        let Some(name) = clean(&f.name) else { continue };
        if out.len() == MAX_FEEDS || out.iter().any(|g| g.name == name) {
            continue;
        }
        out.push(FeedInfo {
            name,
            provider: f.provider.as_deref().and_then(clean),
            event_id: f.event_id.as_deref().and_then(clean),
            event_info: f.event_info.as_deref().and_then(clean),
            threat_level: f.threat_level.as_deref().and_then(clean),
            first_seen: f.first_seen.filter(|t| is_rfc3339(t)),
            last_seen: f.last_seen.filter(|t| is_rfc3339(t)),
        });
    }
    Some(out)
}

/// `['Feed-A', 'Feed-B']`, `["Feed-A"]`, or `[Feed-A, Feed-B]`: items
/// separated by commas, each quoted with `'` or `"` (backslash escapes the
/// next character) or bare.
fn parse_list(text: &str) -> Option<Vec<FeedInfo>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let mut out: Vec<FeedInfo> = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&c) = chars.peek() else { break };
        let mut item = String::new();
        if c == '\'' || c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(ch) = chars.next() {
                match ch {
                    '\\' => item.push(chars.next()?),
                    q if q == c => {
                        closed = true;
                        break;
                    }
                    ch => item.push(ch),
                }
            }
            if !closed {
                return None;
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.next() {
                None | Some(',') => {}
                Some(_) => return None,
            }
        } else {
            for ch in chars.by_ref() {
                if ch == ',' {
                    break;
                }
                item.push(ch);
            }
        }
        if let Some(name) = clean(&item) {
            if out.len() < MAX_FEEDS && !out.iter().any(|g| g.name == name) {
                out.push(FeedInfo::named(&name));
            }
        }
    }
    Some(out)
}

/// Trimmed, non-empty, free of control characters, at most [`MAX_NAME_LEN`] bytes.
fn clean(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().any(char::is_control) {
        return None;
    }
    let mut end = s.len().min(MAX_NAME_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(s[..end].to_owned())
}

fn is_rfc3339(t: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(t).is_ok()
}

// ---- The write side: rendering from borrowed data, and MISP's times and
// threat levels in the form the read side keeps.

/// The value JSON of [`IndicatorValue`], serialised on the write path
/// without copying strings (what `dnsenrich sync` renders for each key).
#[derive(Serialize)]
pub struct ValueRef<'a> {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub value: &'a str,
    pub feeds: Vec<FeedRefJson<'a>>,
}

#[derive(Serialize)]
pub struct FeedRefJson<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_info: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat_level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// MISP's `threat_level_id` (1–4) as a word.
pub fn threat_level_name(id: u8) -> Option<&'static str> {
    match id {
        1 => Some("high"),
        2 => Some("medium"),
        3 => Some("low"),
        4 => Some("undefined"),
        _ => None,
    }
}

/// Seconds since the epoch as `2026-01-02T00:00:00Z`.
pub fn rfc3339(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Parses MISP's `first_seen`/`last_seen` (`2026-01-02T00:00:00.000000+00:00`),
/// a date, or epoch seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(i: &Indicator) -> Vec<&str> {
        i.feeds.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn plain_feed_name() {
        let i = parse_value(b"Feed-RansomwareTracker\r\n");
        assert_eq!(names(&i), ["Feed-RansomwareTracker"]);
        assert_eq!(i.form, ValueForm::Plain);
        assert_eq!(names(&parse_value(br#""Feed-A""#)), ["Feed-A"]);
    }

    #[test]
    fn python_list_strings() {
        for v in [
            &b"['Feed-A', 'Feed-B']"[..],
            b"[\"Feed-A\", \"Feed-B\"]",
            b"[ 'Feed-A' ,'Feed-B', 'Feed-A' ]",
            b"[Feed-A, Feed-B]",
        ] {
            let i = parse_value(v);
            assert_eq!(
                names(&i),
                ["Feed-A", "Feed-B"],
                "{}",
                String::from_utf8_lossy(v)
            );
            assert_eq!(i.form, ValueForm::PythonList);
        }
        assert_eq!(names(&parse_value(br"['it\'s']")), ["it's"]);
        assert_eq!(names(&parse_value(b"['Feed-X']")), ["Feed-X"]);
    }

    #[test]
    fn json_from_sync() {
        let v = br#"{"v":1,"type":"domain","value":"evil.example","feeds":[{"name":"Feed-RansomwareTracker","provider":"MISP","event_id":"42","event_info":"Ransomware C2","threat_level":"high","first_seen":"2026-01-02T00:00:00Z","last_seen":"2026-11-01T00:00:00Z"}],"future":true}"#;
        let i = parse_value(v);
        assert_eq!(i.form, ValueForm::Json);
        let f = &i.feeds[0];
        assert_eq!(f.name, "Feed-RansomwareTracker");
        assert_eq!(f.provider.as_deref(), Some("MISP"));
        assert_eq!(f.event_id.as_deref(), Some("42"));
        assert_eq!(f.event_info.as_deref(), Some("Ransomware C2"));
        assert_eq!(f.first_seen.as_deref(), Some("2026-01-02T00:00:00Z"));
        let i = parse_value(
            br#"{"feeds":[{"name":"A","event_id":7,"first_seen":"yesterday"},{"name":"B"}]}"#,
        );
        assert_eq!(names(&i), ["A", "B"]);
        assert_eq!(i.feeds[0].event_id.as_deref(), Some("7"));
        assert_eq!(i.feeds[0].first_seen, None, "not a date: dropped");
    }

    #[test]
    fn encode_round_trips() {
        let v = IndicatorValue {
            v: 0,
            type_: Some("domain".into()),
            value: Some("evil.example".into()),
            feeds: vec![FeedInfo {
                provider: Some("MISP".into()),
                ..FeedInfo::named("Feed-A")
            }],
        };
        let bytes = encode_value(&v);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"v":1,"type":"domain","value":"evil.example","feeds":[{"name":"Feed-A","provider":"MISP"}]}"#
        );
        let back: IndicatorValue = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.feeds, v.feeds);
        assert_eq!(names(&parse_value(&bytes)), ["Feed-A"]);
    }

    #[test]
    fn garbage_is_a_hit_of_an_unknown_feed() {
        for v in [
            &b""[..],
            b"   ",
            b"\xff\xfe",
            b"{not json",
            b"{\"feeds\":[]}",
            b"{\"feeds\":[{\"name\":\"\"}]}",
            b"['unterminated",
            b"[]",
            b"line\nbreak",
            b"['a' 'b']",
        ] {
            let i = parse_value(v);
            assert_eq!(
                i.form,
                ValueForm::Malformed,
                "{}",
                String::from_utf8_lossy(v)
            );
            assert_eq!(names(&i), [UNKNOWN_FEED]);
        }
    }

    #[test]
    fn values_are_capped() {
        let long = "x".repeat(1000);
        assert_eq!(
            parse_value(long.as_bytes()).feeds[0].name.len(),
            MAX_NAME_LEN
        );
        let many: Vec<String> = (0..100).map(|i| format!("'F{i}'")).collect();
        let list = format!("[{}]", many.join(","));
        assert_eq!(parse_value(list.as_bytes()).feeds.len(), MAX_FEEDS);
        let mut a = Indicator::in_feed("A");
        a.merge(&parse_value(b"['A','B']"));
        assert_eq!(names(&a), ["A", "B"]);
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2026-01-02T00:00:00.000000+00:00").and_then(rfc3339),
            Some("2026-01-02T00:00:00Z".into())
        );
        assert_eq!(
            parse_time("2026-01-02").and_then(rfc3339),
            Some("2026-01-02T00:00:00Z".into())
        );
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("soon"), None);
    }
}
