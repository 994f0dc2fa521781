//! Lookup rules: which event fields are looked up, under which key template,
//! and where the result goes; and the parent-domain walk.
//!
//! Defaults, as the classic dashboards expect:
//!
//! ```toml
//! [[enrich.rules]]
//! field = "dns.question.name"
//! key = "domain-{}"
//!
//! [[enrich.rules]]
//! field = "dns.resolved_ip"
//! key = "ip-dst-{}"
//! ```
//!
//! Fields holding names ([`SourceField::holds_names`]) are normalised (lower
//! case, no trailing dot) and, with `parent_domains` on, walked up to their
//! registered domain: `a.b.evil.example` is also looked up as `b.evil.example`
//! and `evil.example`, never as a bare public suffix (`co.uk`); the most
//! specific hit wins. Fields holding addresses are written in canonical form.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::indicator::key::KeyKind;

/// One lookup rule, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupRule {
    /// The event field whose value(s) are looked up; one of [`SourceField::NAMES`].
    pub field: String,
    /// The key template, `{}` standing for the value: `domain-{}`, `ip-dst-{}`.
    /// A configured `enrich.namespace` is put in front (`<namespace>:`).
    pub key: String,
    /// Where the feed names go: `misp_src` or `labels.<name>`. Default:
    /// `enrich.target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl LookupRule {
    pub fn new(field: &str, key: &str) -> LookupRule {
        LookupRule {
            field: field.into(),
            key: key.into(),
            target: None,
        }
    }
}

/// `domain-<dns.question.name>` and `ip-dst-<each answer IP>`.
pub fn default_rules() -> Vec<LookupRule> {
    vec![
        LookupRule::new("dns.question.name", &KeyKind::Domain.template()),
        LookupRule::new("dns.resolved_ip", &KeyKind::IpDst.template()),
    ]
}

/// An event field a rule can look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceField {
    QuestionName,
    QuestionRegisteredDomain,
    ResolvedIp,
    /// Each `dns.answers[].data`: addresses as IPs, CNAME/PTR targets as names.
    AnswersData,
    /// Each `dns.answers[].name` other than the question: on a transaction,
    /// the names of its CNAME chain.
    AnswersName,
    SourceIp,
    SourceDomain,
    DestinationIp,
    DestinationDomain,
    ServerIp,
    ServerDomain,
    RelatedIp,
    RelatedHosts,
}

/// One value taken from an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atom<'e> {
    Name(&'e str),
    Ip(IpAddr),
}

impl SourceField {
    /// Every field name a rule may use.
    pub const NAMES: &'static [(&'static str, SourceField)] = &[
        ("dns.question.name", SourceField::QuestionName),
        (
            "dns.question.registered_domain",
            SourceField::QuestionRegisteredDomain,
        ),
        ("dns.resolved_ip", SourceField::ResolvedIp),
        ("dns.answers.data", SourceField::AnswersData),
        ("dns.answers.name", SourceField::AnswersName),
        ("source.ip", SourceField::SourceIp),
        ("source.domain", SourceField::SourceDomain),
        ("destination.ip", SourceField::DestinationIp),
        ("destination.domain", SourceField::DestinationDomain),
        ("server.ip", SourceField::ServerIp),
        ("server.domain", SourceField::ServerDomain),
        ("related.ip", SourceField::RelatedIp),
        ("related.hosts", SourceField::RelatedHosts),
    ];

    pub fn parse(name: &str) -> Option<SourceField> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// The field's ECS name (`threat.enrichments.matched.field`).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("")
    }

    /// Whether the field can hold DNS names (normalised, walked to parents).
    pub fn holds_names(self) -> bool {
        use SourceField::*;
        matches!(
            self,
            QuestionName
                | QuestionRegisteredDomain
                | AnswersData
                | AnswersName
                | SourceDomain
                | DestinationDomain
                | ServerDomain
                | RelatedHosts
        )
    }

    /// Calls `f` with every value of the field in `ev`.
    pub fn for_each<'e>(self, ev: &'e Event, mut f: impl FnMut(Atom<'e>)) {
        use SourceField::*;
        let mut name = |n: Option<&'e str>| {
            if let Some(n) = n {
                f(Atom::Name(n))
            }
        };
        match self {
            QuestionName => name(ev.dns.question.name.as_deref()),
            QuestionRegisteredDomain => name(ev.dns.question.registered_domain.as_deref()),
            SourceDomain => name(ev.source.domain.as_deref()),
            DestinationDomain => name(ev.destination.domain.as_deref()),
            ServerDomain => name(ev.server.domain.as_deref()),
            RelatedHosts => ev.related.hosts.iter().for_each(|h| name(Some(h))),
            ResolvedIp => ev.dns.resolved_ip.iter().for_each(|ip| f(Atom::Ip(*ip))),
            RelatedIp => ev.related.ip.iter().for_each(|ip| f(Atom::Ip(*ip))),
            SourceIp => ev.source.ip.into_iter().for_each(|ip| f(Atom::Ip(ip))),
            DestinationIp => ev.destination.ip.into_iter().for_each(|ip| f(Atom::Ip(ip))),
            ServerIp => ev.server.ip.into_iter().for_each(|ip| f(Atom::Ip(ip))),
            AnswersName => {
                let q = ev.dns.question.name.as_deref();
                let mut seen: Option<&str> = None;
                for a in &ev.dns.answers {
                    let Some(n) = a.name.as_deref() else { continue };
                    // The question is its own rule's; a multi-record answer
                    // repeats its owner.
                    if Some(n) != q && Some(n) != seen {
                        f(Atom::Name(n));
                        seen = Some(n);
                    }
                }
            }
            AnswersData => {
                for a in &ev.dns.answers {
                    let Some(d) = a.data.as_deref() else { continue };
                    match d.parse::<IpAddr>() {
                        Ok(ip) => f(Atom::Ip(ip)),
                        Err(_) if is_host_name(d) => f(Atom::Name(d)),
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

/// Whether an answer's data reads as a host name (not `<CNAME>`, `NXDOMAIN`…).
fn is_host_name(d: &str) -> bool {
    d.contains('.')
        && !d.starts_with('.')
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Where a rule's feed names go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    MispSrc,
    Label(&'static str),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        if s == "misp_src" {
            return Ok(Target::MispSrc);
        }
        if let Some(l) = s.strip_prefix("labels.") {
            if !l.is_empty()
                && l.len() <= 64
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                // Once per configured label at start-up.
                return Ok(Target::Label(Box::leak(l.to_owned().into_boxed_str())));
            }
        }
        Err(format!(
            "{s:?}: expected \"misp_src\" or \"labels.NAME\" (NAME of letters, digits, '_')"
        ))
    }
}

/// The parents of `name` down to its registered domain (public suffix list),
/// nearest first; nothing when `name` is itself a registered domain, a public
/// suffix, or has no registered domain. `name` must be normalised.
pub fn parents(name: &str) -> impl Iterator<Item = &str> {
    let reg_len = psl::domain_str(name).map_or(usize::MAX, str::len);
    let mut rest = name;
    std::iter::from_fn(move || loop {
        if rest.len() <= reg_len {
            return None;
        }
        let dot = rest.find('.')?;
        rest = &rest[dot + 1..];
        if rest.len() < reg_len || rest.is_empty() {
            return None;
        }
        if !rest.starts_with('.') {
            return Some(rest);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(n: &str) -> Vec<&str> {
        parents(n).collect()
    }

    #[test]
    fn parents_stop_at_the_registered_domain() {
        assert_eq!(walk("a.b.evil.example"), ["b.evil.example", "evil.example"]);
        assert_eq!(walk("www.example.co.uk"), ["example.co.uk"]);
        assert_eq!(
            walk("x.y.example.com.au"),
            ["y.example.com.au", "example.com.au"]
        );
        assert!(walk("example.co.uk").is_empty());
        assert!(walk("co.uk").is_empty(), "never a bare public suffix");
        assert!(walk("uk").is_empty());
        assert!(walk("localhost").is_empty());
        assert!(walk("").is_empty());
        assert_eq!(walk("a..evil.example"), ["evil.example"]);
        // A private suffix of the PSL (github.io) counts as a suffix too.
        assert_eq!(
            walk("a.b.user.github.io"),
            ["b.user.github.io", "user.github.io"]
        );
    }

    #[test]
    fn fields_give_their_values() {
        let mut ev = Event::default();
        ev.dns.question.name = Some("A.Example.".into());
        ev.dns.resolved_ip.push("192.0.2.1".parse().unwrap());
        ev.dns.answers.push(crate::event::Answer {
            data: Some("cname.example.net".into()),
            ..Default::default()
        });
        ev.dns.answers.push(crate::event::Answer {
            data: Some("<CNAME>".into()),
            ..Default::default()
        });
        ev.dns.answers.push(crate::event::Answer {
            data: Some("2001:db8::2".into()),
            ..Default::default()
        });
        let collect = |f: SourceField| {
            let mut v = Vec::new();
            f.for_each(&ev, |a| v.push(a));
            v
        };
        assert_eq!(
            collect(SourceField::QuestionName),
            [Atom::Name("A.Example.")]
        );
        assert_eq!(
            collect(SourceField::ResolvedIp),
            [Atom::Ip("192.0.2.1".parse().unwrap())]
        );
        assert_eq!(
            collect(SourceField::AnswersData),
            [
                Atom::Name("cname.example.net"),
                Atom::Ip("2001:db8::2".parse().unwrap())
            ]
        );
        assert!(collect(SourceField::SourceIp).is_empty());
        for (n, f) in SourceField::NAMES {
            assert_eq!(SourceField::parse(n), Some(*f));
            assert_eq!(f.name(), *n);
        }
        assert_eq!(SourceField::parse("dns.question"), None);
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("misp_src").unwrap(), Target::MispSrc);
        assert_eq!(Target::parse("labels.misp").unwrap(), Target::Label("misp"));
        assert!(Target::parse("labels.").is_err());
        assert!(Target::parse("labels.a-b").is_err());
        assert!(Target::parse("threat").is_err());
    }
}
