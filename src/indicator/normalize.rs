//! Indicators as the enricher looks them up: a [`KeyKind`] (`domain-`,
//! `ip-dst-`, `ip-src-`) and a normalised value. Turns MISP attribute types and
//! free-form list entries into those, and says why when it cannot. Both
//! `dnsenrich sync` and the in-process store (`--ioc-file`) map entries here,
//! so a list gives the same keys through either.

use std::fmt;
use std::net::IpAddr;

pub use crate::indicator::key::KeyKind;

/// Why an indicator was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// An attribute type with no DNS key (e.g. `md5`, `email-src`).
    UnsupportedType,
    /// Not one of the configured `types`.
    TypeNotSelected,
    /// `to_ids` is off and only detection indicators are loaded.
    NotForDetection,
    /// None of the configured `tags` (or a negated one).
    TagNotSelected,
    /// The event is (un)published, against the `published` filter.
    PublishedFilter,
    /// Older than `since`.
    TooOld,
    /// A deleted attribute (MISP feeds carry them).
    Deleted,
    /// An empty value.
    Empty,
    /// Not an IP address.
    InvalidIp,
    /// A network range; only single addresses can be looked up.
    IpRange,
    /// Not a DNS name.
    InvalidDomain,
    /// A URL without a usable host.
    InvalidUrl,
    /// `localhost` and friends at the top of hosts-format lists.
    HostsBoilerplate,
    /// A CSV row without the chosen column.
    MissingColumn,
    /// The value would not fit a memcached item.
    TooLarge,
    /// memcached answered an error for it.
    Rejected,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnsupportedType => "unsupported type",
            SkipReason::TypeNotSelected => "type not selected",
            SkipReason::NotForDetection => "not for detection (to_ids off)",
            SkipReason::TagNotSelected => "tags not selected",
            SkipReason::PublishedFilter => "published filter",
            SkipReason::TooOld => "older than since",
            SkipReason::Deleted => "deleted",
            SkipReason::Empty => "empty value",
            SkipReason::InvalidIp => "invalid ip",
            SkipReason::IpRange => "ip range (cidr)",
            SkipReason::InvalidDomain => "invalid domain",
            SkipReason::InvalidUrl => "invalid url",
            SkipReason::HostsBoilerplate => "hosts-file boilerplate",
            SkipReason::MissingColumn => "missing csv column",
            SkipReason::TooLarge => "value too large for memcached",
            SkipReason::Rejected => "rejected by memcached",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key-to-be: kind and normalised value.
pub type Atom = (KeyKind, String);

/// What one attribute or list entry yields: up to two atoms (`domain|ip`) and
/// the reasons its other parts were dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    pub atoms: Vec<Atom>,
    pub skipped: Vec<SkipReason>,
}

impl Mapped {
    fn push(&mut self, r: Result<Atom, SkipReason>) {
        match r {
            Ok(a) => self.atoms.push(a),
            Err(e) => self.skipped.push(e),
        }
    }
}

/// Maps a MISP attribute (`type`, `value`) to keys.
pub fn map_misp(ty: &str, value: &str) -> Mapped {
    let mut m = Mapped::default();
    let value = value.trim();
    if value.is_empty() {
        m.skipped.push(SkipReason::Empty);
        return m;
    }
    let first = |v: &str| v.split('|').next().unwrap_or("").to_string();
    match ty {
        "domain" | "hostname" => m.push(domain(value)),
        "ip-dst" => m.push(ip(KeyKind::IpDst, value)),
        "ip-src" => m.push(ip(KeyKind::IpSrc, value)),
        "domain|ip" => match value.split_once('|') {
            Some((d, i)) => {
                m.push(domain(d));
                m.push(ip(KeyKind::IpDst, i));
            }
            None => m.skipped.push(SkipReason::InvalidDomain),
        },
        "hostname|port" => m.push(domain(&first(value))),
        "ip-dst|port" => m.push(ip(KeyKind::IpDst, &first(value))),
        "ip-src|port" => m.push(ip(KeyKind::IpSrc, &first(value))),
        "url" => m.push(url_host(value)),
        _ => m.skipped.push(SkipReason::UnsupportedType),
    }
    m
}

/// Maps a list entry whose type is not given: an address, a URL (its host),
/// or a domain.
pub fn map_free(value: &str) -> Mapped {
    let mut m = Mapped::default();
    let v = value.trim();
    if v.is_empty() {
        m.skipped.push(SkipReason::Empty);
    } else if v.contains("://") {
        m.push(url_host(v));
    } else if looks_like_ip(v) {
        m.push(ip(KeyKind::IpDst, v));
    } else if v.contains(char::is_whitespace) {
        // In a list, text with spaces is prose, not a name.
        m.skipped.push(SkipReason::InvalidDomain);
    } else {
        m.push(domain(v));
    }
    m
}

/// Whether a token is meant as an address (including a malformed or ranged
/// one), so it is judged as an IP rather than as a name.
pub fn looks_like_ip(v: &str) -> bool {
    let v = v.split('/').next().unwrap_or(v);
    v.parse::<IpAddr>().is_ok()
        || (v.contains('.') && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        || (v.contains(':')
            && v.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'))
}

/// A single IP address in canonical text (RFC 5952 for IPv6). `/32` and
/// `/128` are accepted; other prefixes are ranges.
pub fn ip(kind: KeyKind, raw: &str) -> Result<Atom, SkipReason> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(SkipReason::Empty);
    }
    let (addr, prefix) = match raw.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (raw, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| SkipReason::InvalidIp)?;
    if let Some(p) = prefix {
        let full = if addr.is_ipv4() { "32" } else { "128" };
        if p != full {
            return Err(if p.parse::<u8>().is_ok() {
                SkipReason::IpRange
            } else {
                SkipReason::InvalidIp
            });
        }
    }
    Ok((kind, addr.to_string()))
}

/// A domain as the resolver logs it: lower case, no trailing dot, IDN in
/// its ASCII (punycode) form. Spaces and control characters are kept (the
/// key is then hashed, see `key`); `/`, `|`, `:` and empty labels are not
/// names.
pub fn domain(raw: &str) -> Result<Atom, SkipReason> {
    let v = raw.trim_matches(|c: char| c == ' ' || c == '\t');
    let v = v.strip_suffix('.').unwrap_or(v);
    if v.is_empty() {
        return Err(SkipReason::Empty);
    }
    let lower = if v.is_ascii() {
        v.to_ascii_lowercase()
    } else {
        match url::Host::parse(v) {
            Ok(url::Host::Domain(d)) => d,
            _ => return Err(SkipReason::InvalidDomain),
        }
    };
    if lower.contains(['/', '|', ':', '\\'])
        || lower.starts_with('.')
        || lower.contains("..")
        || lower.len() > 1024
    {
        return Err(SkipReason::InvalidDomain);
    }
    Ok((KeyKind::Domain, lower))
}

/// The host of a URL, as a domain or (for an address literal) `ip-dst`.
pub fn url_host(raw: &str) -> Result<Atom, SkipReason> {
    let parsed = match url::Url::parse(raw.trim()) {
        Ok(u) => u,
        // MISP `url` values are often written without a scheme.
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            url::Url::parse(&format!("http://{}", raw.trim()))
                .map_err(|_| SkipReason::InvalidUrl)?
        }
        Err(_) => return Err(SkipReason::InvalidUrl),
    };
    match parsed.host() {
        Some(url::Host::Domain(d)) => domain(d).map_err(|_| SkipReason::InvalidUrl),
        Some(url::Host::Ipv4(a)) => Ok((KeyKind::IpDst, a.to_string())),
        Some(url::Host::Ipv6(a)) => Ok((KeyKind::IpDst, a.to_string())),
        None => Err(SkipReason::InvalidUrl),
    }
}

/// MISP's `%` wildcard, case-insensitive, as in `Feed-%` or `ip-%`.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    // Iterative match with backtracking to the last `%`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'%' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'%')
}

/// A MISP-style tag filter: any positive pattern must match (if there is
/// one), and no `!`-negated pattern may.
pub fn tags_selected<'a>(filter: &[String], tags: impl Iterator<Item = &'a str> + Clone) -> bool {
    let mut any_positive = false;
    let mut positive_hit = false;
    for f in filter {
        if let Some(neg) = f.strip_prefix('!') {
            if tags.clone().any(|t| wildcard_match(neg, t)) {
                return false;
            }
        } else {
            any_positive = true;
            positive_hit = positive_hit || tags.clone().any(|t| wildcard_match(f, t));
        }
    }
    !any_positive || positive_hit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atoms(m: Mapped) -> Vec<(&'static str, String)> {
        m.atoms.into_iter().map(|(k, v)| (k.prefix(), v)).collect()
    }

    #[test]
    fn misp_types_map_to_keys() {
        assert_eq!(
            atoms(map_misp("hostname", "WWW.Evil.Example.")),
            [("domain-", "www.evil.example".into())]
        );
        assert_eq!(
            atoms(map_misp("domain|ip", "evil.example|192.0.2.7")),
            [
                ("domain-", "evil.example".into()),
                ("ip-dst-", "192.0.2.7".into())
            ]
        );
        assert_eq!(
            atoms(map_misp("ip-src", "2001:DB8:0:0::1")),
            [("ip-src-", "2001:db8::1".into())]
        );
        assert_eq!(
            atoms(map_misp("ip-dst|port", "192.0.2.9|443")),
            [("ip-dst-", "192.0.2.9".into())]
        );
        assert_eq!(
            atoms(map_misp("url", "https://Bad.Example:8443/x?y")),
            [("domain-", "bad.example".into())]
        );
        assert_eq!(
            atoms(map_misp("url", "bad.example/payload.exe")),
            [("domain-", "bad.example".into())]
        );
        assert_eq!(
            map_misp("md5", "d41d8cd98f00b204e9800998ecf8427e").skipped,
            [SkipReason::UnsupportedType]
        );
    }

    #[test]
    fn bad_values_say_why() {
        assert_eq!(
            map_misp("ip-dst", "not-an-ip").skipped,
            [SkipReason::InvalidIp]
        );
        assert_eq!(
            map_misp("ip-dst", "10.0.0.0/8").skipped,
            [SkipReason::IpRange]
        );
        assert_eq!(
            atoms(map_misp("ip-dst", "10.0.0.1/32")),
            [("ip-dst-", "10.0.0.1".into())]
        );
        assert_eq!(map_misp("domain", "  ").skipped, [SkipReason::Empty]);
        assert_eq!(
            map_misp("domain", "http://x.example/").skipped,
            [SkipReason::InvalidDomain]
        );
        assert_eq!(
            map_misp("domain", "a..b").skipped,
            [SkipReason::InvalidDomain]
        );
        // A space is kept: the key will be hashed, not dropped.
        assert_eq!(
            atoms(map_misp("domain", "bad name.example")),
            [("domain-", "bad name.example".into())]
        );
        let m = map_misp("domain|ip", "ok.example|nope");
        assert_eq!(m.atoms.len(), 1);
        assert_eq!(m.skipped, [SkipReason::InvalidIp]);
    }

    #[test]
    fn idn_becomes_punycode() {
        assert_eq!(
            atoms(map_misp("domain", "Bücher.Example")),
            [("domain-", "xn--bcher-kva.example".into())]
        );
    }

    #[test]
    fn free_entries_are_typed_by_shape() {
        assert_eq!(
            atoms(map_free("198.51.100.4")),
            [("ip-dst-", "198.51.100.4".into())]
        );
        assert_eq!(
            atoms(map_free("Ads.Example")),
            [("domain-", "ads.example".into())]
        );
        assert_eq!(
            atoms(map_free("http://203.0.113.5/x")),
            [("ip-dst-", "203.0.113.5".into())]
        );
        assert_eq!(map_free("300.1.1.1").skipped, [SkipReason::InvalidIp]);
        assert_eq!(map_free("::zz").skipped, [SkipReason::InvalidDomain]);
        assert_eq!(map_free("not a name").skipped, [SkipReason::InvalidDomain]);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("Feed-%", "Feed-RansomwareTracker"));
        assert!(wildcard_match("feed-%", "Feed-X"));
        assert!(!wildcard_match("Feed-%", "tlp:white"));
        assert!(wildcard_match("ip-%", "ip-dst"));
        assert!(wildcard_match("%osint%", "type:OSINT"));
        assert!(wildcard_match("domain", "DOMAIN"));
        assert!(!wildcard_match("domain", "domain|ip"));
        let tags = ["Feed-A", "tlp:white"];
        let t = || tags.iter().copied();
        assert!(tags_selected(&[], t()));
        assert!(tags_selected(&["Feed-%".into()], t()));
        assert!(!tags_selected(&["Feed-%".into(), "!tlp:white".into()], t()));
        assert!(tags_selected(&["!tlp:red".into()], t()));
        assert!(!tags_selected(&["Other".into()], t()));
    }
}
