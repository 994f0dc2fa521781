//! The grammar engine: line grammars kept as data in `grammars/*.grammar`,
//! compiled at start-up into matchers, and applied to the message of every line.
//!
//! The file format is documented in `grammars/README.md`. In short: a file has
//! directives (`@app`, `@prefix`, `@suffix`, `@defaults`, `@affixes-from`) and
//! rules (`rule NAME: PATTERN`), each followed by indented `field = value`
//! constants. Patterns are literals and typed captures `%{kind:field}`.
//!
//! Matching a message: for each grammar whose `@app` fits the syslog tag, strip
//! a known suffix (`(DNSSEC signed)`, `(EDE: …)`), try the prefixes (dnsmasq's
//! `log-queries=extra`/`proto` serial and client), then look the first word of
//! what is left up in a dispatch table built from the rules' leading literals, so
//! only rules that can match are tried. Adding rules for other words costs a line
//! nothing.

mod field;
mod json;
mod pattern;
mod syntax;
mod wire;

use std::collections::HashMap;
use std::path::Path;

pub use field::{intern, Constant, Field, Value};
pub use pattern::{arpa_name, Element, Kind, Pattern};
pub use syntax::GrammarError;

use smallvec::SmallVec;

use crate::event::{Answer, CustomValue, Event, Str};
use pattern::Captures;

/// The grammars shipped with dnsenrich, embedded in the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    // The other resolvers first: each reads its own program's tag, and lines
    // with no tag by their shape. dnsmasq's cache-dump rule would read any
    // untagged line with two spaces in it, so it comes after them.
    ("bind.grammar", include_str!("../../grammars/bind.grammar")),
    (
        "unbound.grammar",
        include_str!("../../grammars/unbound.grammar"),
    ),
    (
        "pdns-recursor.grammar",
        include_str!("../../grammars/pdns-recursor.grammar"),
    ),
    (
        "coredns.grammar",
        include_str!("../../grammars/coredns.grammar"),
    ),
    (
        "adguardhome.grammar",
        include_str!("../../grammars/adguardhome.grammar"),
    ),
    (
        "pihole-ftl.grammar",
        include_str!("../../grammars/pihole-ftl.grammar"),
    ),
    // Pi-hole's reasons are specific literals; tried first so dnsmasq's generic
    // answer rules do not read them as plain answers.
    (
        "pihole.grammar",
        include_str!("../../grammars/pihole.grammar"),
    ),
    (
        "dnsmasq.grammar",
        include_str!("../../grammars/dnsmasq.grammar"),
    ),
    (
        "dnsmasq-dhcp.grammar",
        include_str!("../../grammars/dnsmasq-dhcp.grammar"),
    ),
];

/// Constants set when a rule, prefix or suffix matches.
pub type Constants = Vec<(Field, Constant)>;

/// One rule: a line shape and the constants it sets.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: &'static str,
    pub pattern: Pattern,
    pub constants: Constants,
    /// Where the rule is defined, for messages.
    pub line: usize,
    /// The literal the pattern ends with, checked before the full match.
    trailing: Option<String>,
    /// In a JSON grammar: the keys that must be present (`KEY`) or hold a
    /// value (`KEY=VALUE`) for the rule to match.
    pub conditions: Vec<json::Condition>,
}

/// A prefix or suffix shape shared by the rules of a grammar.
#[derive(Debug, Clone)]
pub struct Affix {
    pub name: &'static str,
    pub pattern: Pattern,
    pub constants: Constants,
}

/// One compiled grammar file.
#[derive(Debug, Clone, Default)]
pub struct Grammar {
    pub name: &'static str,
    pub file: String,
    /// Syslog tags this grammar reads; empty means any.
    pub apps: Vec<String>,
    pub defaults: Constants,
    /// Optional shapes at the very start of the line (a log file's own time,
    /// category and severity), stripped before the suffix and prefixes.
    pub headers: Vec<Affix>,
    pub prefixes: Vec<Affix>,
    pub suffixes: Vec<Affix>,
    pub rules: Vec<Rule>,
    /// Name of the grammar whose prefixes and suffixes this one uses.
    pub affixes_from: Option<String>,
    /// A JSON-lines grammar (`@json`): rules test keys, `@map` lines capture them.
    pub json: bool,
    /// `@map KEY: %{kind:field}` lines of a JSON grammar, in file order.
    pub maps: Vec<json::Map>,
    /// foldhash, not SipHash: the keys are a few short words, for which
    /// SipHash's set-up dominates the lookup.
    dispatch: HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
    fallback: Vec<usize>,
}

/// Which rule matched a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub grammar: &'static str,
    pub rule: &'static str,
}

/// All grammars in force, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct GrammarSet {
    grammars: Vec<Grammar>,
    /// Grammars grouped by the prefixes and suffixes they share, in the order
    /// of each group's first member.
    groups: Vec<Group>,
    /// Every tag some grammar names in `@app`.
    known_apps: Vec<String>,
}

/// Grammars that use the same prefixes and suffixes (one owns them, the others
/// borrow them with `@affixes-from`).
#[derive(Debug, Clone)]
struct Group {
    owner: usize,
    members: Vec<usize>,
}

/// Splits off the first word of a message: up to a space or `[`.
fn first_word(s: &str) -> &str {
    let end = s.find([' ', '[']).unwrap_or(s.len());
    &s[..end]
}

impl Grammar {
    /// Builds the dispatch table: rules are grouped by the first word of their
    /// leading literal; rules starting with a capture are tried for every word.
    fn index(&mut self) {
        self.dispatch.clear();
        self.fallback.clear();
        let mut order: Vec<usize> = (0..self.rules.len()).collect();
        // Longer leading literals are more specific: try them first.
        order.sort_by_key(|&i| {
            std::cmp::Reverse(self.rules[i].pattern.leading_literal().map_or(0, str::len))
        });
        for i in order {
            let key = self.rules[i].pattern.leading_literal().and_then(|lit| {
                let w = first_word(lit);
                // Only a word that ends inside the literal is a whole word.
                (w.len() < lit.len()).then(|| w.to_owned())
            });
            match key {
                Some(k) => self.dispatch.entry(k).or_default().push(i),
                None => self.fallback.push(i),
            }
        }
    }

    fn reads_app(&self, app: Option<&str>) -> bool {
        match app {
            Some(a) => self.apps.is_empty() || self.apps.iter().any(|x| x == a),
            None => true,
        }
    }

    /// Tries the rules on a message whose prefix and suffix are already removed.
    fn match_rules<'a>(&self, msg: &'a str, caps: &mut Captures<'a>) -> Option<usize> {
        let bucket = self
            .dispatch
            .get(first_word(msg))
            .map_or(&[][..], Vec::as_slice);
        for &i in bucket.iter().chain(self.fallback.iter()) {
            let rule = &self.rules[i];
            if let Some(t) = &rule.trailing {
                if !msg.ends_with(t.as_str()) {
                    continue;
                }
            }
            if rule.pattern.matches_all(msg, caps) {
                return Some(i);
            }
        }
        None
    }
}

impl GrammarSet {
    /// The embedded grammars.
    pub fn builtin() -> Result<Self, GrammarError> {
        Self::from_sources(&[], BUILTIN)
    }

    /// The embedded grammars plus the user's files, which are tried first so
    /// they can override a shipped rule.
    pub fn with_files(paths: &[impl AsRef<Path>]) -> Result<Self, GrammarError> {
        let mut user = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let text = std::fs::read_to_string(p).map_err(|e| GrammarError {
                file: p.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read grammar file: {e}"),
            })?;
            user.push((p.display().to_string(), text));
        }
        let user: Vec<(&str, &str)> = user.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        Self::from_sources(&user, BUILTIN)
    }

    /// Compiles grammars from `(file name, text)` pairs: `first` ahead of `then`.
    pub fn from_sources(
        first: &[(&str, &str)],
        then: &[(&str, &str)],
    ) -> Result<Self, GrammarError> {
        let mut grammars = Vec::new();
        for (file, text) in first.iter().chain(then.iter()) {
            grammars.push(syntax::compile(file, text)?);
        }
        // Resolve @affixes-from now that every grammar is known.
        let mut groups: Vec<Group> = Vec::new();
        for i in 0..grammars.len() {
            let owner = match &grammars[i].affixes_from {
                None => i,
                Some(from) => grammars
                    .iter()
                    .position(|g| g.name == from && g.affixes_from.is_none())
                    .ok_or_else(|| GrammarError {
                        file: grammars[i].file.clone(),
                        line: 0,
                        column: 0,
                        message: format!(
                            "@affixes-from names grammar `{from}`, which does not exist or itself borrows its affixes"
                        ),
                    })?,
            };
            match groups.iter_mut().find(|g| g.owner == owner) {
                Some(g) => g.members.push(i),
                None => groups.push(Group {
                    owner,
                    members: vec![i],
                }),
            }
        }
        for g in &mut grammars {
            g.index();
        }
        let mut known_apps: Vec<String> = grammars.iter().flat_map(|g| g.apps.clone()).collect();
        known_apps.sort();
        known_apps.dedup();
        Ok(GrammarSet {
            grammars,
            groups,
            known_apps,
        })
    }

    /// The grammars in the order they are tried.
    /// Every `event.dataset` a grammar sets (as a default, in an affix or
    /// in a rule), each once.
    pub fn datasets(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for g in self.grammars() {
            let constants = g
                .prefixes
                .iter()
                .chain(&g.suffixes)
                .map(|a| &a.constants)
                .chain(g.rules.iter().map(|r| &r.constants))
                .chain([&g.defaults]);
            for (field, c) in constants.flatten() {
                if let (Field::EventDataset, Constant::Static(s)) = (field, c) {
                    if !out.contains(s) {
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    pub fn grammars(&self) -> &[Grammar] {
        &self.grammars
    }

    /// Applies the first matching rule to `ev`. `app` is the syslog tag, if any.
    /// Returns which rule matched, or `None` when nothing did (the event is then
    /// left untouched).
    pub fn apply(&self, app: Option<&str>, msg: &str, ev: &mut Event) -> Option<Matched> {
        // A tag no grammar claims (a relay's own tag, `logger`'s user name) is
        // read by every grammar rather than by none.
        let app = app.filter(|a| self.known_apps.iter().any(|x| x == a));
        for group in &self.groups {
            if let Some(m) = self.apply_group(group, app, msg, ev) {
                return Some(m);
            }
        }
        None
    }

    /// Tries the grammars sharing one set of prefixes and suffixes: each affix is
    /// matched once, then every member grammar's rules are tried behind it.
    fn apply_group(
        &self,
        group: &Group,
        app: Option<&str>,
        msg: &str,
        ev: &mut Event,
    ) -> Option<Matched> {
        let members: SmallVec<[&Grammar; 4]> = group
            .members
            .iter()
            .map(|&i| &self.grammars[i])
            .filter(|g| g.reads_app(app))
            .collect();
        if members.is_empty() {
            return None;
        }
        let owner = &self.grammars[group.owner];
        if owner.json {
            return json::apply(&members, msg, ev);
        }
        let mut caps = Captures::new();
        // Headers (then none), then the suffix, then prefixes (then none).
        for hdr in owner.headers.iter().map(Some).chain(std::iter::once(None)) {
            caps.clear();
            let Some(line) = after_prefix(hdr, msg, &mut caps) else {
                continue;
            };
            let base = caps.len();
            // Suffix first: a matching suffix is stripped; if no rule then fits, the
            // message is tried whole (a TXT record may end in text that looks like one).
            let mut attempts: [(Option<&Affix>, &str); 2] = [(None, line), (None, line)];
            let mut n = 1;
            for sfx in &owner.suffixes {
                if let Some(body) = strip_suffix(sfx, line, &mut caps) {
                    attempts[0] = (Some(sfx), body);
                    n = 2;
                    break;
                }
            }
            let sfx_caps = caps.len();
            for &(sfx, body) in &attempts[..n] {
                let keep = if sfx.is_some() { sfx_caps } else { base };
                // Prefixes, then the message without one.
                for pfx in owner.prefixes.iter().map(Some).chain(std::iter::once(None)) {
                    caps.truncate(keep);
                    let Some(rest) = after_prefix(pfx, body, &mut caps) else {
                        continue;
                    };
                    let pfx_caps = caps.len();
                    for g in &members {
                        let Some(ri) = g.match_rules(rest, &mut caps) else {
                            continue;
                        };
                        let rule = &g.rules[ri];
                        if let Some(h) = hdr {
                            set_constants(ev, &h.constants);
                            set_captures(ev, &h.pattern, &caps[..base]);
                        }
                        fill(
                            ev,
                            g,
                            rule,
                            sfx,
                            pfx,
                            &caps[base..],
                            (keep - base, pfx_caps - base),
                        );
                        return Some(Matched {
                            grammar: g.name,
                            rule: rule.name,
                        });
                    }
                }
            }
        }
        None
    }
}

/// The message after prefix `pfx` and the space that ends it; all of `body`
/// when there is no prefix.
fn after_prefix<'a>(
    pfx: Option<&Affix>,
    body: &'a str,
    caps: &mut Captures<'a>,
) -> Option<&'a str> {
    match pfx {
        Some(p) => p.pattern.matches_prefix(body, caps)?.strip_prefix(' '),
        None => Some(body),
    }
}

/// Sets what a match found, in this order: the grammar's defaults, then the
/// suffix's, the prefix's and the rule's constants and captures. `caps` holds the suffix's captures up to
/// `bounds.0`, the prefix's up to `bounds.1`, and the rule's after that.
fn fill(
    ev: &mut Event,
    g: &Grammar,
    rule: &Rule,
    sfx: Option<&Affix>,
    pfx: Option<&Affix>,
    caps: &[(usize, Value<'_>)],
    (keep, pfx_caps): (usize, usize),
) {
    set_constants(ev, &g.defaults);
    if let Some(s) = sfx {
        set_constants(ev, &s.constants);
        set_captures(ev, &s.pattern, &caps[..keep]);
    }
    if let Some(p) = pfx {
        set_constants(ev, &p.constants);
        set_captures(ev, &p.pattern, &caps[keep..pfx_caps]);
    }
    set_constants(ev, &rule.constants);
    set_captures(ev, &rule.pattern, &caps[pfx_caps..]);
}

/// Matches a suffix at the end of the message; returns the message without it.
fn strip_suffix<'a>(sfx: &Affix, msg: &'a str, caps: &mut Captures<'a>) -> Option<&'a str> {
    if let Some(Element::Literal(t)) = sfx.pattern.elements.last() {
        if !msg.ends_with(t.as_str()) {
            return None;
        }
    }
    let lead = sfx.pattern.leading_literal()?;
    let at = msg.rfind(lead)?;
    // A suffix is separated from the message by one space.
    let body = msg[..at].strip_suffix(' ')?;
    if body.is_empty() {
        return None;
    }
    sfx.pattern.matches_all(&msg[at..], caps).then_some(body)
}

pub(crate) fn set_constants(ev: &mut Event, cs: &Constants) {
    for (f, c) in cs {
        field::set_constant(ev, *f, c);
    }
}

pub(crate) fn set_captures(ev: &mut Event, pattern: &Pattern, caps: &[(usize, Value<'_>)]) {
    for (i, v) in caps {
        if let Element::Capture { kind, fields } = &pattern.elements[*i] {
            if *kind == Kind::Answer {
                if let Value::Text(t) = v {
                    apply_answer(ev, t);
                }
                continue;
            }
            if *kind == Kind::DnsWire {
                if let Value::Text(t) = v {
                    wire::apply(ev, t);
                }
                continue;
            }
            if *kind == Kind::FlagList {
                if let Value::Text(t) = v {
                    apply_flag_list(ev, t);
                }
                continue;
            }
            if *kind == Kind::BindFlags {
                if let Value::Text(t) = v {
                    apply_bind_flags(ev, t);
                }
                continue;
            }
            for f in fields {
                field::set_value(ev, *f, v);
            }
        }
    }
}

/// The header flags ECS allows in `dns.header_flags`.
const HEADER_FLAGS: [&str; 7] = ["AA", "TC", "RD", "RA", "AD", "CD", "DO"];

/// Reads a list of flags such as CoreDNS's `qr,rd,ra,ad`: the ones ECS
/// knows go into `dns.header_flags` (QR, the answer bit, is not one).
pub fn apply_flag_list(ev: &mut Event, list: &str) {
    for f in list.split(',') {
        if let Some(&known) = HEADER_FLAGS.iter().find(|k| k.eq_ignore_ascii_case(f)) {
            if !ev.dns.header_flags.contains(&known) {
                ev.dns.header_flags.push(known);
            }
        }
    }
}

/// Reads BIND's query flags (`lib/ns/query.c`, `log_query()`): `+` is RD,
/// `D` DO, `C` CD (into `dns.header_flags`); `T` means the query came over
/// TCP (else UDP); `E(n)` is the EDNS version, `S` a signed (TSIG/SIG(0))
/// request, `V` a valid server cookie and `K` a cookie without one. The word
/// itself is kept in `bind.flags`.
pub fn apply_bind_flags(ev: &mut Event, flags: &str) {
    let mut push = |f: &'static str| {
        if !ev.dns.header_flags.contains(&f) {
            ev.dns.header_flags.push(f);
        }
    };
    if flags.starts_with('+') {
        push("RD");
    }
    let letters = match flags.find('E') {
        Some(at) => {
            let end = flags[at..].find(')').map_or(flags.len(), |e| at + e + 1);
            (
                &flags[..at],
                &flags[end..],
                flags[at + 2..end.saturating_sub(1)].parse::<u64>().ok(),
            )
        }
        None => (flags, "", None),
    };
    let (before, after, edns) = letters;
    let has = |c: char| before.contains(c) || after.contains(c);
    if has('D') {
        push("DO");
    }
    if has('C') {
        push("CD");
    }
    ev.network.transport = Some(if has('T') { "tcp" } else { "udp" });
    let c = &mut ev.custom;
    c.set_named("bind.flags", CustomValue::Keyword(Str::from(flags)));
    if let Some(v) = edns {
        c.set_named("bind.edns_version", CustomValue::Long(v));
    }
    c.set_named("bind.signed", CustomValue::Bool(has('S')));
    if has('V') {
        c.set_named("bind.cookie", CustomValue::Keyword(Str::from("valid")));
    } else if has('K') {
        c.set_named("bind.cookie", CustomValue::Keyword(Str::from("present")));
    }
}

/// Interprets the right-hand side of `NAME is ANSWER` as dnsmasq writes it.
pub fn apply_answer(ev: &mut Event, text: &str) {
    let rcode = match text {
        "NXDOMAIN" => Some("NXDOMAIN"),
        // NODATA is not a response code: the name exists, with no record of the type.
        "NODATA" | "NODATA-IPv4" | "NODATA-IPv6" => Some("NOERROR"),
        "SERVFAIL" => Some("SERVFAIL"),
        "REFUSED" => Some("REFUSED"),
        "FORMERR" => Some("FORMERR"),
        "not implemented" | "NOTIMP" => Some("NOTIMP"),
        _ => None,
    };
    if let Some(rc) = rcode {
        ev.dns.response_code = Some(Str::from(rc));
        return;
    }
    ev.dns.response_code = Some(Str::from("NOERROR"));
    if let Ok((rest, ip)) = pattern::ip(text) {
        if rest.is_empty() {
            let t = if ip.is_ipv4() { "A" } else { "AAAA" };
            ev.dns.answers.push(Answer {
                name: None,
                type_: Some(Str::from(t)),
                data: Some(Str::from(ip.to_string())),
            });
            if !ev.dns.resolved_ip.contains(&ip) {
                ev.dns.resolved_ip.push(ip);
            }
            return;
        }
    }
    if let Some(inner) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
        let t = match inner.strip_prefix("type=") {
            Some(n) => Str::from(format!("TYPE{n}")),
            None => Str::from(inner),
        };
        ev.dns.answers.push(Answer {
            name: None,
            type_: Some(t),
            data: None,
        });
        return;
    }
    ev.dns.answers.push(Answer {
        name: None,
        type_: None,
        data: Some(Str::from(text)),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(src: &str) -> GrammarSet {
        GrammarSet::from_sources(&[("t.grammar", src)], &[]).unwrap()
    }

    #[test]
    fn builtin_grammars_compile() {
        let g = GrammarSet::builtin().unwrap();
        assert!(g.grammars().iter().map(|g| g.rules.len()).sum::<usize>() > 40);
    }

    #[test]
    fn dispatch_uses_first_word_and_fallback() {
        let g = set("rule a: query[%{rrtype:dns.question.type}] %{name:dns.question.name}\n\
                     rule b: %{path:labels.file} %{name:dns.question.name} is %{answer:dns.answers}\n");
        let gr = &g.grammars()[0];
        assert_eq!(gr.dispatch.get("query"), Some(&vec![0]));
        assert_eq!(gr.fallback, vec![1]);
        let mut ev = Event::default();
        let m = g
            .apply(None, "/etc/hosts x.test is 1.2.3.4", &mut ev)
            .unwrap();
        assert_eq!(m.rule, "b");
        assert_eq!(ev.labels.0[0].1, "/etc/hosts");
        assert_eq!(ev.dns.resolved_ip[0].to_string(), "1.2.3.4");
    }

    #[test]
    fn longer_leading_literal_wins() {
        let g = set(
            "rule generic: reply %{name:dns.question.name} is %{answer:dns.answers}\n\
                     rule error: reply error is %{answer:dns.answers}\n",
        );
        let mut ev = Event::default();
        let m = g.apply(None, "reply error is SERVFAIL", &mut ev).unwrap();
        assert_eq!(m.rule, "error");
        assert_eq!(ev.dns.response_code.as_deref(), Some("SERVFAIL"));
    }

    #[test]
    fn prefixes_and_suffixes_apply() {
        let g = set("@prefix extra: %{uint:dns.id} %{ipport:source}\n\
                     @suffix signed: (DNSSEC signed)\n    dns.header_flags = AD\n\
                     rule reply: reply %{name:dns.question.name} is %{answer:dns.answers}\n    dns.type = answer\n");
        let mut ev = Event::default();
        g.apply(
            None,
            "7 10.0.0.2/4000 reply a.test is 192.0.2.1 (DNSSEC signed)",
            &mut ev,
        )
        .unwrap();
        assert_eq!(ev.dns.id.as_deref(), Some("7"));
        assert_eq!(ev.source.port, Some(4000));
        assert_eq!(ev.dns.header_flags.as_slice(), ["AD"]);
        assert_eq!(ev.dns.type_, Some("answer"));
        assert_eq!(ev.dns.answers[0].type_.as_deref(), Some("A"));
    }

    #[test]
    fn apps_filter_grammars() {
        let g = GrammarSet::from_sources(
            &[
                ("a.grammar", "@app alpha\nrule r: x %{word:labels.w}\n"),
                ("b.grammar", "@app beta\nrule s: x %{word:labels.w}\n"),
            ],
            &[],
        )
        .unwrap();
        let mut ev = Event::default();
        assert_eq!(g.apply(Some("beta"), "x y", &mut ev).unwrap().rule, "s");
        assert_eq!(g.apply(Some("alpha"), "x y", &mut ev).unwrap().rule, "r");
        // An unknown tag is read by every grammar.
        assert_eq!(g.apply(Some("root"), "x y", &mut ev).unwrap().rule, "r");
    }

    #[test]
    fn answers_are_interpreted() {
        let cases = [
            ("NXDOMAIN", Some("NXDOMAIN"), None, None),
            ("NODATA-IPv6", Some("NOERROR"), None, None),
            ("<CNAME>", Some("NOERROR"), Some("CNAME"), None),
            ("<type=65>", Some("NOERROR"), Some("TYPE65"), None),
            (
                "2001:db8::1",
                Some("NOERROR"),
                Some("AAAA"),
                Some("2001:db8::1"),
            ),
            ("v=spf1 -all", Some("NOERROR"), None, Some("v=spf1 -all")),
        ];
        for (text, rc, ty, data) in cases {
            let mut ev = Event::default();
            apply_answer(&mut ev, text);
            assert_eq!(ev.dns.response_code.as_deref(), rc, "{text}");
            assert_eq!(
                ev.dns.answers.first().and_then(|a| a.type_.as_deref()),
                ty,
                "{text}"
            );
            assert_eq!(
                ev.dns.answers.first().and_then(|a| a.data.as_deref()),
                data,
                "{text}"
            );
        }
    }

    #[test]
    fn headers_come_before_prefixes() {
        let g = set("@header time: %{word:-} %{word:-}\n\
                     @prefix client: client %{ipport:client}:\n\
                     rule q: query: %{name:dns.question.name}\n");
        let mut ev = Event::default();
        let m = g.apply(
            None,
            "02-Dec-2026 14:54:49.952 client 192.0.2.1#53: query: a.test",
            &mut ev,
        );
        assert_eq!(m.unwrap().rule, "q");
        assert_eq!(ev.client.port, Some(53));
        let mut ev = Event::default();
        assert!(g
            .apply(None, "client 192.0.2.1#53: query: a.test", &mut ev)
            .is_some());
        assert_eq!(ev.dns.question.name.as_deref(), Some("a.test"));
    }

    #[test]
    fn bind_flags_fill_flags_transport_and_bind_fields() {
        for (flags, hf, tcp, edns, signed, cookie) in [
            (
                "+E(0)K",
                &["RD"][..],
                false,
                Some(0),
                false,
                Some("present"),
            ),
            (
                "+SE(0)TDCV",
                &["RD", "DO", "CD"][..],
                true,
                Some(0),
                true,
                Some("valid"),
            ),
            (
                "+E(0)STDCV",
                &["RD", "DO", "CD"][..],
                true,
                Some(0),
                true,
                Some("valid"),
            ),
            ("-", &[][..], false, None, false, None),
        ] {
            let mut ev = Event::default();
            apply_bind_flags(&mut ev, flags);
            assert_eq!(ev.dns.header_flags.as_slice(), hf, "{flags}");
            assert_eq!(
                ev.network.transport,
                Some(if tcp { "tcp" } else { "udp" }),
                "{flags}"
            );
            assert_eq!(
                ev.custom.get("bind.edns_version"),
                edns.map(CustomValue::Long).as_ref(),
                "{flags}"
            );
            assert_eq!(
                ev.custom.get("bind.signed"),
                Some(&CustomValue::Bool(signed))
            );
            assert_eq!(
                ev.custom.get("bind.cookie"),
                cookie.map(|c| CustomValue::Keyword(c.into())).as_ref()
            );
        }
    }

    #[test]
    fn json_rules_test_keys_and_maps_capture_them() {
        let g = set(
            "@json\n@map QH: %{name:dns.question.name}\n@map N: %{uint:event.duration}\n\
                     @map C: %{bool:adguard.cached}\n\
                     rule blocked: QH R.Reason=3\n    event.action = dns-blocked\n\
                     rule any: QH\n    event.action = dns-reply\n",
        );
        let mut ev = Event::default();
        let m = g.apply(
            None,
            r#"{"QH":"a.test","R":{"Reason":3},"N":42,"C":true}"#,
            &mut ev,
        );
        assert_eq!(m.unwrap().rule, "blocked");
        assert_eq!(ev.event.duration, Some(42));
        assert_eq!(
            ev.custom.get("adguard.cached"),
            Some(&CustomValue::Bool(true))
        );
        let mut ev = Event::default();
        assert_eq!(
            g.apply(None, r#"{"QH":"b.test","N":"x"}"#, &mut ev)
                .unwrap()
                .rule,
            "any"
        );
        assert_eq!(
            ev.event.duration, None,
            "a value that does not fit its capture is left out"
        );
        for bad in ["not json", "{broken", r#"{"QH":""}"#, "[1,2]"] {
            let mut ev = Event::default();
            assert!(g.apply(None, bad, &mut ev).is_none(), "{bad}");
            assert_eq!(ev, Event::default());
        }
    }

    #[test]
    fn flag_lists_keep_the_ecs_flags() {
        let mut ev = Event::default();
        apply_flag_list(&mut ev, "qr,aa,rd,ra,ad");
        assert_eq!(ev.dns.header_flags.as_slice(), ["AA", "RD", "RA", "AD"]);
    }

    #[test]
    fn no_match_leaves_event_untouched() {
        let g = set("rule a: query[%{rrtype:dns.question.type}] %{name:dns.question.name} from %{ip:source.ip}\n");
        let mut ev = Event::default();
        assert!(g
            .apply(None, "query[A] x from not-an-ip", &mut ev)
            .is_none());
        assert_eq!(ev, Event::default());
    }
}
