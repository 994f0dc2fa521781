//! The value stored under each key, in the form the enricher reads.
//!
//! JSON (the default):
//! `{"v":1,"type":"domain","value":"evil.example","feeds":[{"name":"Feed-X",
//! "provider":"MISP","event_id":"42","event_info":"…","threat_level":"high",
//! "first_seen":"2026-01-02T00:00:00Z","last_seen":"…"}]}` — every feed field
//! but `name` is optional. Plain: the distinct feed names joined by `,`, as the
//! classic MISP-to-memcached script wrote them.
//!
//! The format is the enricher's ([`crate::enrich::value`]); this module
//! renders it from borrowed data on the write path, and converts MISP's
//! times and threat levels into it.

use serde::Serialize;

/// The value JSON of [`crate::enrich::value::IndicatorValue`], serialised on the write path
/// without copying strings.
#[derive(Serialize)]
pub(crate) struct ValueRef<'a> {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub value: &'a str,
    pub feeds: Vec<FeedRefJson<'a>>,
}

#[derive(Serialize)]
pub(crate) struct FeedRefJson<'a> {
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
