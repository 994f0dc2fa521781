//! Reading a `.grammar` file into a [`Grammar`], with errors that name the file,
//! line and column and say what was expected.

use std::fmt;
use std::net::IpAddr;

use super::field::{intern, Accepts, Constant, Field, FIELD_NAMES};
use super::pattern::{Element, Kind, Pattern};
use super::{Affix, Grammar, Rule};

/// A grammar file that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct GrammarError {
    pub file: String,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: usize,
    /// 1-based; 0 when the error concerns the whole line.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for GrammarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file, self.message),
            (l, 0) => write!(f, "{}:{}: {}", self.file, l, self.message),
            (l, c) => write!(f, "{}:{}:{}: {}", self.file, l, c, self.message),
        }
    }
}

/// Where the indented constant lines that follow belong.
enum Target {
    None,
    Defaults,
    Header(usize),
    Prefix(usize),
    Suffix(usize),
    Rule(usize),
}

struct Ctx<'a> {
    file: &'a str,
    line: usize,
}

impl Ctx<'_> {
    fn err(&self, column: usize, message: impl Into<String>) -> GrammarError {
        GrammarError {
            file: self.file.to_owned(),
            line: self.line,
            column,
            message: message.into(),
        }
    }
}

/// Compiles one grammar file. `file` is used in messages and, without its
/// directory and `.grammar` extension, as the grammar's name.
pub fn compile(file: &str, text: &str) -> Result<Grammar, GrammarError> {
    let stem = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file);
    let mut g = Grammar {
        name: intern(stem),
        file: file.to_owned(),
        ..Default::default()
    };
    let mut target = Target::None;
    for (idx, raw) in text.lines().enumerate() {
        let cx = Ctx {
            file,
            line: idx + 1,
        };
        let line = raw.trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if indent > 0 {
            constant_line(&cx, &mut g, &target, body, indent)?;
        } else {
            target = directive(&cx, &mut g, body)?;
        }
    }
    Ok(g)
}

/// An indented `field = value` line, added to the rule or directive above it.
fn constant_line(
    cx: &Ctx<'_>,
    g: &mut Grammar,
    target: &Target,
    body: &str,
    indent: usize,
) -> Result<(), GrammarError> {
    let cs = match *target {
        Target::None => {
            return Err(cx.err(
                indent + 1,
                "expected a rule or directive at the start of the line; indented `field = value` lines belong to the rule, @prefix, @suffix or @defaults above them",
            ))
        }
        Target::Defaults => &mut g.defaults,
        Target::Header(i) => &mut g.headers[i].constants,
        Target::Prefix(i) => &mut g.prefixes[i].constants,
        Target::Suffix(i) => &mut g.suffixes[i].constants,
        Target::Rule(i) => &mut g.rules[i].constants,
    };
    cs.push(constant(cx, body, indent + 1)?);
    Ok(())
}

/// A line at the start of the line: a rule or a directive, told apart by its
/// first word. Returns where the indented lines that follow belong.
fn directive(cx: &Ctx<'_>, g: &mut Grammar, body: &str) -> Result<Target, GrammarError> {
    let (word, rest) = match body.split_once(' ') {
        Some((w, r)) => (w, Some(r)),
        None => (body, None),
    };
    match (word, rest) {
        ("rule", Some(rest)) => rule(cx, g, rest),
        ("@prefix", Some(_)) | ("@suffix", Some(_)) if g.json => {
            Err(cx.err(1, "a JSON grammar has no @header, @prefix or @suffix"))
        }
        ("@prefix", Some(rest)) => prefix(cx, g, rest),
        ("@header", Some(rest)) => header(cx, g, rest),
        ("@suffix", Some(rest)) => suffix(cx, g, rest),
        ("@defaults", None) => Ok(Target::Defaults),
        ("@json", None) => {
            if !g.rules.is_empty() || !g.prefixes.is_empty() || !g.headers.is_empty() {
                return Err(cx.err(1, "`@json` must come before the rules, and a JSON grammar has no @header, @prefix or @suffix"));
            }
            g.json = true;
            Ok(Target::None)
        }
        ("@map", Some(rest)) => map(cx, g, rest),
        ("@app", Some(rest)) => {
            g.apps = rest.split_whitespace().map(str::to_owned).collect();
            Ok(Target::None)
        }
        ("@affixes-from", Some(rest)) => affixes_from(cx, g, rest),
        _ => {
            let word = body.split_whitespace().next().unwrap_or(body);
            Err(cx.err(
                1,
                format!(
                    "expected `rule NAME: PATTERN`, `@app`, `@header`, `@prefix`, `@suffix`, `@defaults` or `@affixes-from`, found `{word}`"
                ),
            ))
        }
    }
}

/// The column where the text after `directive ` starts (1-based).
fn after(directive: &str) -> usize {
    directive.len() + 2
}

/// `rule NAME: PATTERN`.
fn rule(cx: &Ctx<'_>, g: &mut Grammar, rest: &str) -> Result<Target, GrammarError> {
    let at = after("rule");
    let (name, pat) = named(cx, rest, at, "rule")?;
    if g.rules.iter().any(|r| r.name == name) {
        return Err(cx.err(at, format!("rule `{name}` is defined twice in this file")));
    }
    let col = at + rest.len() - pat.len();
    if g.json {
        let conditions = super::json::conditions(pat);
        g.rules.push(Rule {
            name: intern(name),
            pattern: Pattern::default(),
            constants: Vec::new(),
            line: cx.line,
            trailing: None,
            conditions,
        });
        return Ok(Target::Rule(g.rules.len() - 1));
    }
    let pattern = parse_pattern(cx, pat, col)?;
    check_free_text_end(cx, &pattern, col, true)?;
    let trailing = match pattern.elements.last() {
        Some(Element::Literal(l)) => Some(l.clone()),
        _ => None,
    };
    g.rules.push(Rule {
        name: intern(name),
        pattern,
        constants: Vec::new(),
        line: cx.line,
        trailing,
        conditions: Vec::new(),
    });
    Ok(Target::Rule(g.rules.len() - 1))
}

/// `@prefix NAME: PATTERN`: may not end in free text, since the rule follows.
fn prefix(cx: &Ctx<'_>, g: &mut Grammar, rest: &str) -> Result<Target, GrammarError> {
    let (affix, col) = affix(cx, g, rest, "@prefix")?;
    check_free_text_end(cx, &affix.pattern, col, false)?;
    g.prefixes.push(affix);
    Ok(Target::Prefix(g.prefixes.len() - 1))
}

/// `@map KEY: %{kind:field}` in a JSON grammar.
fn map(cx: &Ctx<'_>, g: &mut Grammar, rest: &str) -> Result<Target, GrammarError> {
    if !g.json {
        return Err(cx.err(1, "`@map` is only for JSON grammars (put `@json` first)"));
    }
    let at = after("@map");
    let Some((key, pat)) = rest.split_once(": ") else {
        return Err(cx.err(at, "expected `@map KEY: %{kind:field}`"));
    };
    let col = at + rest.len() - pat.len();
    let pattern = parse_pattern(cx, pat.trim(), col)?;
    if !matches!(pattern.elements.as_slice(), [Element::Capture { .. }]) {
        return Err(cx.err(
            col,
            "expected exactly one capture `%{kind:field}` after the key",
        ));
    }
    g.maps.push(super::json::Map {
        path: super::json::path(key.trim()),
        pattern,
    });
    Ok(Target::None)
}

/// `@header NAME: PATTERN`: like a prefix, at the very start of the line.
fn header(cx: &Ctx<'_>, g: &mut Grammar, rest: &str) -> Result<Target, GrammarError> {
    if g.json {
        return Err(cx.err(1, "a JSON grammar has no @header, @prefix or @suffix"));
    }
    let (affix, col) = affix(cx, g, rest, "@header")?;
    check_free_text_end(cx, &affix.pattern, col, false)?;
    g.headers.push(affix);
    Ok(Target::Header(g.headers.len() - 1))
}

/// `@suffix NAME: PATTERN`: must start with a literal, which is what finds it
/// at the end of a message.
fn suffix(cx: &Ctx<'_>, g: &mut Grammar, rest: &str) -> Result<Target, GrammarError> {
    let (affix, col) = affix(cx, g, rest, "@suffix")?;
    if affix.pattern.leading_literal().is_none() {
        return Err(cx.err(col, "expected a suffix pattern that starts with a literal"));
    }
    check_free_text_end(cx, &affix.pattern, col, true)?;
    g.suffixes.push(affix);
    Ok(Target::Suffix(g.suffixes.len() - 1))
}

/// What `@prefix` and `@suffix` share: the affix and the column its pattern
/// starts at.
fn affix(
    cx: &Ctx<'_>,
    g: &Grammar,
    rest: &str,
    directive: &str,
) -> Result<(Affix, usize), GrammarError> {
    if g.affixes_from.is_some() {
        return Err(own_affixes(cx));
    }
    let at = after(directive);
    let (name, pat) = named(cx, rest, at, directive)?;
    let col = at + rest.len() - pat.len();
    let pattern = parse_pattern(cx, pat, col)?;
    let affix = Affix {
        name: intern(name),
        pattern,
        constants: Vec::new(),
    };
    Ok((affix, col))
}

/// `@affixes-from GRAMMAR`.
fn affixes_from(cx: &Ctx<'_>, g: &mut Grammar, rest: &str) -> Result<Target, GrammarError> {
    if !g.prefixes.is_empty() || !g.suffixes.is_empty() || !g.headers.is_empty() {
        return Err(own_affixes(cx));
    }
    g.affixes_from = Some(rest.trim().to_owned());
    Ok(Target::None)
}

/// A grammar borrows its prefixes and suffixes or declares them, not both.
fn own_affixes(cx: &Ctx<'_>) -> GrammarError {
    cx.err(
        1,
        "a grammar that uses @affixes-from cannot declare its own @prefix or @suffix",
    )
}

/// Splits `NAME: PATTERN`.
fn named<'a>(
    cx: &Ctx<'_>,
    s: &'a str,
    col: usize,
    what: &str,
) -> Result<(&'a str, &'a str), GrammarError> {
    let Some((name, pat)) = s.split_once(": ") else {
        return Err(cx.err(
            col,
            format!(
                "expected `{what} NAME: PATTERN` (a name, a colon and a space, then the pattern)"
            ),
        ));
    };
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid {
        return Err(cx.err(
            col,
            format!("expected a name of letters, digits, `-`, `_` or `.`, found `{name}`"),
        ));
    }
    if pat.is_empty() {
        return Err(cx.err(col + s.len(), "expected a pattern after the colon"));
    }
    Ok((name, pat))
}

/// A free-text capture needs a literal after it to know where it ends, except
/// at the very end of a rule.
fn check_free_text_end(
    cx: &Ctx<'_>,
    p: &Pattern,
    col: usize,
    end_ok: bool,
) -> Result<(), GrammarError> {
    for (i, el) in p.elements.iter().enumerate() {
        if let Element::Capture { kind, .. } = el {
            if !kind.is_free_text() {
                continue;
            }
            match p.elements.get(i + 1) {
                Some(Element::Literal(_)) => {}
                None if end_ok => {}
                None => {
                    return Err(cx.err(col, format!("expected a literal after the `{kind:?}` capture: a prefix cannot end in free text")))
                }
                Some(Element::Capture { .. }) => {
                    return Err(cx.err(col, format!("expected a literal after the `{kind:?}` capture, found another capture")))
                }
            }
        }
    }
    Ok(())
}

/// Parses literals, `%%` and `%{kind:field,field}` captures.
fn parse_pattern(cx: &Ctx<'_>, s: &str, col0: usize) -> Result<Pattern, GrammarError> {
    let mut elements = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] != b'%' {
            let ch = s[i..].chars().next().unwrap_or(' ');
            lit.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match b.get(i + 1) {
            Some(b'%') => {
                lit.push('%');
                i += 2;
            }
            Some(b'{') => {
                let (capture, len) = parse_capture(cx, &s[i..], col0 + i)?;
                if !lit.is_empty() {
                    elements.push(Element::Literal(std::mem::take(&mut lit)));
                }
                elements.push(capture);
                i += len;
            }
            _ => {
                return Err(cx.err(
                    col0 + i,
                    "expected `%{` to start a capture or `%%` for a literal percent sign",
                ))
            }
        }
    }
    if !lit.is_empty() {
        elements.push(Element::Literal(lit));
    }
    Ok(Pattern { elements })
}

/// One `%{kind:field,field}` capture at the start of `s`, which is at column
/// `col`; returns it and its length in bytes.
fn parse_capture(cx: &Ctx<'_>, s: &str, col: usize) -> Result<(Element, usize), GrammarError> {
    let Some(close) = s.find('}') else {
        return Err(cx.err(col, "expected `}` to close the capture `%{`"));
    };
    let inner = &s[2..close];
    let (kind_s, fields_s) = match inner.split_once(':') {
        Some((k, f)) => (k, Some(f)),
        None => (inner, None),
    };
    let kind = Kind::parse(kind_s).ok_or_else(|| {
        cx.err(
            col + 2,
            format!(
                "expected a capture type ({}), found `{kind_s}`",
                Kind::NAMES
            ),
        )
    })?;
    let fields = match fields_s {
        Some(fs) => parse_fields(cx, fs, col + 2 + kind_s.len() + 1, kind)?,
        None => Vec::new(),
    };
    if kind == Kind::DnsWire && fields != [Field::DnsAnswerData] {
        return Err(cx.err(col, "expected `%{dnswire:dns.answers}`: a wire message fills dns.answers, dns.resolved_ip, dns.response_code and dns.header_flags together"));
    }
    if kind == Kind::FlagList && fields != [Field::DnsHeaderFlags] {
        return Err(cx.err(col, "expected `%{flaglist:dns.header_flags}`"));
    }
    if kind == Kind::BindFlags && fields != [Field::DnsHeaderFlags] {
        return Err(cx.err(col, "expected `%{bindflags:dns.header_flags}`: BIND's flags fill dns.header_flags, network.transport and bind.* together"));
    }
    if kind == Kind::Answer && fields != [Field::DnsAnswerData] {
        return Err(cx.err(col, "expected `%{answer:dns.answers}`: an answer fills dns.answers, dns.resolved_ip and dns.response_code together"));
    }
    Ok((Element::Capture { kind, fields }, close + 1))
}

/// The comma-separated ECS fields of a capture, starting at column `col`; `-`
/// discards a value.
fn parse_fields(
    cx: &Ctx<'_>,
    list: &str,
    col: usize,
    kind: Kind,
) -> Result<Vec<Field>, GrammarError> {
    let mut fields = Vec::new();
    let mut fcol = col;
    for raw in list.split(',') {
        let at = fcol;
        fcol += raw.len() + 1;
        let name = raw.trim();
        if name == "-" {
            continue;
        }
        let f = Field::parse(name).ok_or_else(|| {
            cx.err(
                at,
                format!(
                    "expected an ECS field ({}), found `{name}`",
                    FIELD_NAMES.join(", ")
                ),
            )
        })?;
        check_capture_field(cx, at, kind, f, name)?;
        fields.push(f);
    }
    Ok(fields)
}

fn check_capture_field(
    cx: &Ctx<'_>,
    col: usize,
    kind: Kind,
    f: Field,
    name: &str,
) -> Result<(), GrammarError> {
    if matches!(
        kind,
        Kind::Answer | Kind::BindFlags | Kind::FlagList | Kind::DnsWire
    ) {
        return Ok(());
    }
    if f.takes_capture(kind.produces()) {
        return Ok(());
    }
    let why = match f.accepts() {
        Accepts::Constant | Accepts::ConstantList => {
            "it can only be set to a constant (`field = value`)".to_owned()
        }
        Accepts::Ip => "it holds an IP address (use an `ip` capture)".to_owned(),
        Accepts::Endpoint => "it holds an address and port (use `ip` or `ipport`)".to_owned(),
        Accepts::Uint => "it holds a number (use a `uint` capture)".to_owned(),
        Accepts::Text => "it holds text".to_owned(),
        Accepts::Bool => {
            "it holds `true` or `false` (use a `bool` capture or `field = true`)".to_owned()
        }
    };
    Err(cx.err(
        col,
        format!(
            "field `{name}` cannot take a `{}` capture: {why}",
            format!("{kind:?}").to_lowercase()
        ),
    ))
}

/// Parses `field = value` or `field = [a, b]`.
fn constant(cx: &Ctx<'_>, body: &str, col: usize) -> Result<(Field, Constant), GrammarError> {
    let Some((name, value)) = body.split_once('=') else {
        return Err(cx.err(col, "expected `field = value`"));
    };
    let name = name.trim();
    let value = value.trim();
    let f = Field::parse(name).ok_or_else(|| {
        cx.err(
            col,
            format!(
                "expected an ECS field ({}), found `{name}`",
                FIELD_NAMES.join(", ")
            ),
        )
    })?;
    let vcol = col + body.len() - body.trim_start_matches(|c| c != '=').len() + 1;
    if value.is_empty() {
        return Err(cx.err(vcol, "expected a value after `=`"));
    }
    let list: Option<Vec<&'static str>> = value
        .strip_prefix('[')
        .map(|v| {
            v.strip_suffix(']')
                .ok_or_else(|| cx.err(vcol, "expected `]` to close the list"))
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(intern)
                        .collect()
                })
        })
        .transpose()?;
    let c = match (f.accepts(), list) {
        (Accepts::ConstantList, Some(l)) => Constant::List(l),
        (Accepts::ConstantList, None) => Constant::List(vec![intern(value)]),
        (_, Some(_)) => {
            return Err(cx.err(
                vcol,
                format!("expected a single value: `{name}` is not a list"),
            ))
        }
        (Accepts::Ip | Accepts::Endpoint, None) => Constant::Ip(
            value
                .parse::<IpAddr>()
                .map_err(|_| cx.err(vcol, format!("expected an IP address, found `{value}`")))?,
        ),
        (Accepts::Bool, None) => match value {
            "true" | "false" => Constant::Static(intern(value)),
            _ => return Err(cx.err(vcol, format!("expected true or false, found `{value}`"))),
        },
        (Accepts::Uint, None) => Constant::Uint(
            value
                .parse::<u64>()
                .map_err(|_| cx.err(vcol, format!("expected a number, found `{value}`")))?,
        ),
        (_, None) => Constant::Static(intern(value)),
    };
    Ok((f, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> GrammarError {
        compile("x.grammar", src).unwrap_err()
    }

    #[test]
    fn compiles_rules_prefixes_and_constants() {
        let g = compile(
            "dir/dnsmasq.grammar",
            "# c\n@app dnsmasq pihole-FTL\n@defaults\n  event.kind = event\n\
             @prefix extra: %{uint:dns.id} %{ipport:source}\n\
             rule q: query[%{rrtype:dns.question.type}] %{name:dns.question.name} from %{ip:source.ip}\n\
             \tevent.type = [protocol, info]\n    dns.type = query\n",
        )
        .unwrap();
        assert_eq!(g.name, "dnsmasq");
        assert_eq!(g.apps, ["dnsmasq", "pihole-FTL"]);
        assert_eq!(g.defaults.len(), 1);
        assert_eq!(g.prefixes.len(), 1);
        assert_eq!(g.rules[0].pattern.elements.len(), 6);
        assert_eq!(
            g.rules[0].constants[0].1,
            Constant::List(vec!["protocol", "info"])
        );
    }

    #[test]
    fn percent_escape_is_a_literal() {
        let g = compile("x", "rule p: 100%% %{word:labels.x}\n").unwrap();
        assert_eq!(
            g.rules[0].pattern.elements[0],
            Element::Literal("100% ".into())
        );
    }

    #[test]
    fn errors_name_line_column_and_expectation() {
        let e = err("rule a: query %{bogus:dns.id}\n");
        assert_eq!((e.line, e.column), (1, 17));
        assert!(e.message.contains("expected a capture type"), "{e}");
        assert_eq!(e.to_string().split(": ").next(), Some("x.grammar:1:17"));

        let e = err("\n\nrule a: x %{ip:dns.nope}\n");
        assert_eq!((e.line, e.column), (3, 16));
        assert!(e.message.contains("expected an ECS field"), "{e}");

        let e = err("rule a: x\n    dnsmasq.nameserver.dnssec = maybe\n");
        assert!(e.message.contains("expected true or false"), "{e}");
        let e = err("rule a: x %{word:dnsmasq.nameserver.dnssec}\n");
        assert!(e.message.contains("`true` or `false`"), "{e}");
        let e = err("rule a: x %{word:dnsmasq.dnssec.keytag}\n");
        assert!(e.message.contains("it holds a number"), "{e}");
        let e = err("rule a: x %{word:dnsmasq.made_up}\n");
        assert!(e.message.contains("expected an ECS field"), "{e}");

        let e = err("rule a: x %{ip\n");
        assert!(e.message.contains("expected `}`"), "{e}");

        let e = err("rule a: x %{word:event.action}\n");
        assert!(e.message.contains("only be set to a constant"), "{e}");

        let e = err("rule a: x %{word:source.ip}\n");
        assert!(e.message.contains("IP address"), "{e}");

        let e = err("rule a: x %{name:dns.question.name}%{ip:source.ip}\n");
        assert!(e.message.contains("found another capture"), "{e}");

        let e = err("  event.kind = event\n");
        assert_eq!(e.column, 3);

        let e = err("rule a: x\n  source.ip = nope\n");
        assert!(e.message.contains("expected an IP address"), "{e}");

        let e = err("rule a: x\n  dns.type\n");
        assert!(e.message.contains("expected `field = value`"), "{e}");

        let e = err("rulez a: x\n");
        assert!(e.message.contains("found `rulez`"), "{e}");

        let e = err("rule a x\n");
        assert!(e.message.contains("NAME: PATTERN"), "{e}");

        let e = err("rule a: x\nrule a: y\n");
        assert!(e.message.contains("defined twice"), "{e}");

        let e = err("rule a: x %z\n");
        assert!(e.message.contains("`%%`"), "{e}");

        let e = err("@prefix p: %{uint:dns.id} %{name:dns.question.name}\n");
        assert!(e.message.contains("prefix cannot end"), "{e}");

        let e = err("@suffix s: %{rest:event.reason}\n");
        assert!(e.message.contains("starts with a literal"), "{e}");

        let e = err("rule a: x %{answer:dns.question.name}\n");
        assert!(e.message.contains("answer:dns.answers"), "{e}");

        let e = err("rule a: x\n  event.action = [a, b]\n");
        assert!(e.message.contains("not a list"), "{e}");

        let e = err("@map QH: %{name:dns.question.name}\n");
        assert!(e.message.contains("only for JSON grammars"), "{e}");

        let e = err("rule a: x\n@json\n");
        assert!(e.message.contains("must come before the rules"), "{e}");

        let e = err("@json\n@header h: [%{uint:-}]\n");
        assert!(e.message.contains("no @header"), "{e}");

        let e = err("@json\n@map QH: x %{name:dns.question.name}\n");
        assert!(e.message.contains("exactly one capture"), "{e}");

        let e = err("rule a: x %{bindflags:dns.question.name}\n");
        assert!(e.message.contains("bindflags:dns.header_flags"), "{e}");

        let e = err("rule a: x %{dnswire:dns.question.name}\n");
        assert!(e.message.contains("dnswire:dns.answers"), "{e}");

        let e = err("@header h: %{uint:-} %{rest:-}\n");
        assert!(e.message.contains("prefix cannot end"), "{e}");

        let e = err("rule a: x %{word:bind.a b}\n");
        assert!(e.message.contains("expected an ECS field"), "{e}");
    }

    #[test]
    fn product_fields_are_typed_like_the_other_custom_fields() {
        // Only the names of custom::FIELDS, each with its type.
        let e = err("rule a: x %{word:bind.nope}\n");
        assert!(e.message.contains("bind.nope"), "{e}");
        let e = err("rule a: x %{word:coredns.do}\n");
        assert!(e.message.contains("`true` or `false`"), "{e}");
        let e = err("rule a: x %{word:unbound.response_size}\n");
        assert!(e.message.contains("holds a number"), "{e}");
        compile(
            "x.grammar",
            "rule a: x %{bool:coredns.do} %{uint:unbound.response_size} %{word:bind.view}\n",
        )
        .unwrap();
        compile("x.grammar", "rule a: x\n    pdns.rd = true\n").unwrap();
    }
}
