//! Line shapes: literals and typed captures, and the nom parsers that match them.
//!
//! A compiled [`Pattern`] is a list of [`Element`]s. Captures of a fixed shape
//! (an IP address, a number, a record type) are matched by small nom parsers.
//! Captures of free text (`name`, `answer`, `rest`) end where the next literal
//! starts; because a DNS name may itself contain spaces or the next literal, the
//! matcher tries each occurrence of that literal in turn (lazy matching with
//! backtracking), so `reply a is b is 1.2.3.4` still parses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{map_res, opt, recognize};
use nom::sequence::preceded;
use nom::IResult;
use smallvec::SmallVec;

use super::field::{Accepts, Field, Value};
use crate::event::Str;

/// The typed captures a grammar may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An IPv4 or IPv6 address.
    Ip,
    /// An address with an optional `#port` or `/port`.
    IpPort,
    /// An address, turned into its reverse-lookup name (`4.3.2.1.in-addr.arpa`).
    Arpa,
    /// A DNS name: free text up to the next literal (names may hold spaces).
    Name,
    /// A record type mnemonic (`AAAA`, `HTTPS`) or `type=NNN` (stored as `TYPENNN`).
    RrType,
    /// An unsigned decimal number.
    Uint,
    /// A run of non-space characters.
    Word,
    /// A path: a word starting with `/`; before a literal, it ends at the
    /// first occurrence of that literal that lets the rest match.
    Path,
    /// A MAC address (six hex pairs joined by `:` or `-`), stored as ECS
    /// spells it: `02-00-5E-C0-DE-01`.
    Mac,
    /// A duration as dnsmasq prints it (`1h`, `52m30s`, `2d`, `45s`), stored
    /// as seconds.
    Duration,
    /// A number right-aligned with spaces (printf `%3d`): leading spaces are skipped.
    Padded,
    /// Text between double quotes (the quotes are not captured).
    Quoted,
    /// Free text up to the next literal, or to the end of the line.
    Rest,
    /// A DNS name written with its trailing dot (`www.example.com.`), stored
    /// without it; the root stays `.`.
    Fqdn,
    /// A run of letters, digits, `_`, `.` and `-`.
    Token,
    /// `ADDR:PORT`, `[V6ADDR]:PORT` or a bare address.
    SockAddr,
    /// A duration in seconds with a fraction (`0.000320`, `0.037990251s`), stored in nanoseconds.
    Seconds,
    /// A duration in milliseconds with a fraction (`617.317000`), stored in nanoseconds.
    Millis,
    /// `0`/`1` (also `true`/`false`, `yes`/`no`).
    Bool,
    /// A DNS message in wire format, base64 (AdGuard Home's `Answer`).
    DnsWire,
    /// A comma-separated list of header flags (`qr,rd,ra,ad`), or `-`.
    FlagList,
    /// BIND's query flags (`+E(0)TK`, `-S E(0)D`…), in any order.
    BindFlags,
    /// A DNS answer: an address, `<TYPE>`, `NXDOMAIN`, `NODATA[-IPv4|-IPv6]`, an
    /// RCODE name, or record data as text.
    Answer,
}

impl Kind {
    /// Resolves a capture type name.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "ip" => Kind::Ip,
            "ipport" => Kind::IpPort,
            "arpa" => Kind::Arpa,
            "name" => Kind::Name,
            "rrtype" => Kind::RrType,
            "uint" => Kind::Uint,
            "word" => Kind::Word,
            "path" => Kind::Path,
            "mac" => Kind::Mac,
            "duration" => Kind::Duration,
            "padded" => Kind::Padded,
            "quoted" => Kind::Quoted,
            "rest" => Kind::Rest,
            "answer" => Kind::Answer,
            "fqdn" => Kind::Fqdn,
            "token" => Kind::Token,
            "sockaddr" => Kind::SockAddr,
            "seconds" => Kind::Seconds,
            "millis" => Kind::Millis,
            "bool" => Kind::Bool,
            "bindflags" => Kind::BindFlags,
            "flaglist" => Kind::FlagList,
            "dnswire" => Kind::DnsWire,
            _ => return None,
        })
    }

    /// Every capture type name, for error messages.
    pub const NAMES: &'static str = "ip, ipport, arpa, name, rrtype, uint, padded, duration, word, path, mac, quoted, rest, answer, fqdn, token, sockaddr, seconds, millis, bool, bindflags, flaglist, dnswire";

    /// What kind of value the capture produces.
    pub fn produces(self) -> Accepts {
        match self {
            Kind::Ip => Accepts::Ip,
            Kind::IpPort => Accepts::Endpoint,
            Kind::Uint | Kind::Duration | Kind::Padded | Kind::Seconds | Kind::Millis => {
                Accepts::Uint
            }
            Kind::SockAddr => Accepts::Endpoint,
            Kind::Bool => Accepts::Bool,
            _ => Accepts::Text,
        }
    }

    /// Free-text captures end at the next literal rather than by their own shape.
    pub fn is_free_text(self) -> bool {
        matches!(self, Kind::Name | Kind::Rest | Kind::Answer)
    }
}

/// One piece of a line shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    Literal(String),
    Capture { kind: Kind, fields: Vec<Field> },
}

/// A compiled line shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pattern {
    pub elements: Vec<Element>,
}

/// A capture's position in the pattern and what it matched.
pub type Captures<'a> = SmallVec<[(usize, Value<'a>); 6]>;

impl Pattern {
    /// The literal the pattern starts with, if any.
    pub fn leading_literal(&self) -> Option<&str> {
        match self.elements.first() {
            Some(Element::Literal(l)) => Some(l),
            _ => None,
        }
    }

    /// Matches the whole of `input`; captures are appended to `caps`.
    pub fn matches_all<'a>(&self, input: &'a str, caps: &mut Captures<'a>) -> bool {
        let start = caps.len();
        if match_from(&self.elements, 0, input, caps, true).is_some() {
            return true;
        }
        caps.truncate(start);
        false
    }

    /// Matches a prefix of `input` and returns the remainder.
    pub fn matches_prefix<'a>(&self, input: &'a str, caps: &mut Captures<'a>) -> Option<&'a str> {
        let start = caps.len();
        let rest = match_from(&self.elements, 0, input, caps, false);
        if rest.is_none() {
            caps.truncate(start);
        }
        rest
    }
}

/// Matches `elems[i..]` against `input`. With `whole`, the input must be used up.
fn match_from<'a>(
    elems: &[Element],
    i: usize,
    input: &'a str,
    caps: &mut Captures<'a>,
    whole: bool,
) -> Option<&'a str> {
    let Some(el) = elems.get(i) else {
        return (!whole || input.is_empty()).then_some(input);
    };
    match el {
        Element::Literal(lit) => {
            let rest = input.strip_prefix(lit.as_str())?;
            match_from(elems, i + 1, rest, caps, whole)
        }
        Element::Capture { kind, .. } if kind.is_free_text() => {
            match elems.get(i + 1) {
                // Last element: the capture takes the rest (or, for a prefix, nothing sensible).
                None => {
                    if !whole || (input.is_empty() && *kind != Kind::Rest) {
                        return None;
                    }
                    caps.push((i, Value::Text(input)));
                    Some("")
                }
                Some(Element::Literal(next)) => {
                    let mut from = 0;
                    while let Some(pos) = find_literal(&input[from..], next) {
                        let at = from + pos;
                        if at > 0 || *kind == Kind::Rest {
                            let mark = caps.len();
                            caps.push((i, Value::Text(&input[..at])));
                            if let Some(r) = match_from(elems, i + 1, &input[at..], caps, whole) {
                                return Some(r);
                            }
                            caps.truncate(mark);
                        }
                        from = at + next.len().max(1);
                        if from > input.len() {
                            break;
                        }
                    }
                    None
                }
                // Two captures in a row: the compiler refuses this for free text.
                Some(Element::Capture { .. }) => None,
            }
        }
        Element::Capture {
            kind: Kind::Path, ..
        } if matches!(elems.get(i + 1), Some(Element::Literal(_))) => {
            let Some(Element::Literal(next)) = elems.get(i + 1) else {
                return None;
            };
            if !input.starts_with('/') {
                return None;
            }
            let mut from = 1;
            while let Some(pos) = find_literal(&input[from..], next) {
                let at = from + pos;
                let candidate = &input[..at];
                if candidate.contains(' ') {
                    break;
                }
                let mark = caps.len();
                caps.push((i, Value::Text(candidate)));
                if let Some(r) = match_from(elems, i + 1, &input[at..], caps, whole) {
                    return Some(r);
                }
                caps.truncate(mark);
                from = at + next.len().max(1);
                if from > input.len() {
                    break;
                }
            }
            None
        }
        Element::Capture { kind, .. } => {
            let (rest, value) = fixed(*kind, input)?;
            let mark = caps.len();
            caps.push((i, value));
            let r = match_from(elems, i + 1, rest, caps, whole);
            if r.is_none() {
                caps.truncate(mark);
            }
            r
        }
    }
}

/// The first occurrence of `lit` in `hay`: memchr for its first byte, then a
/// comparison. Literals here are short and usually found at the first
/// candidate, where building a substring searcher would cost more than it saves.
fn find_literal(hay: &str, lit: &str) -> Option<usize> {
    let (h, l) = (hay.as_bytes(), lit.as_bytes());
    let first = *l.first()?;
    let mut i = 0;
    while let Some(p) = memchr::memchr(first, &h[i..]) {
        let at = i + p;
        if h[at..].starts_with(l) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// Runs the nom parser of a fixed-shape capture.
fn fixed(kind: Kind, input: &str) -> Option<(&str, Value<'_>)> {
    let r = match kind {
        Kind::Ip => ip(input).map(|(r, ip)| (r, Value::Ip(ip))),
        Kind::IpPort => ip_port(input).map(|(r, (ip, port))| (r, Value::Endpoint(ip, port))),
        Kind::Arpa => ip(input).map(|(r, ip)| (r, Value::Owned(arpa_name(ip)))),
        Kind::RrType => rr_type(input),
        Kind::Uint => uint(input).map(|(r, n)| (r, Value::Uint(n))),
        Kind::Word => word(input).map(|(r, w)| (r, Value::Text(w))),
        Kind::Path => path(input).map(|(r, w)| (r, Value::Text(w))),
        Kind::Mac => mac(input).map(|(r, m)| (r, Value::Owned(m))),
        Kind::Duration => duration(input).map(|(r, n)| (r, Value::Uint(n))),
        Kind::Padded => uint(input.trim_start_matches(' ')).map(|(r, n)| (r, Value::Uint(n))),
        Kind::Quoted => quoted(input).map(|(r, w)| (r, Value::Text(w))),
        Kind::Fqdn => word(input).map(|(r, w)| {
            let name = if w.len() > 1 {
                w.strip_suffix('.').unwrap_or(w)
            } else {
                w
            };
            (r, Value::Text(name))
        }),
        Kind::Token => token(input).map(|(r, w)| (r, Value::Text(w))),
        Kind::SockAddr => sock_addr(input).map(|(r, (ip, port))| (r, Value::Endpoint(ip, port))),
        Kind::Seconds => decimal_nanos(input, 1_000_000_000)
            .map(|(r, n)| (r.strip_prefix('s').unwrap_or(r), Value::Uint(n))),
        Kind::Millis => decimal_nanos(input, 1_000_000).map(|(r, n)| (r, Value::Uint(n))),
        Kind::Bool => boolean(input).map(|(r, b)| (r, Value::Bool(b))),
        Kind::BindFlags => bind_flags(input).map(|(r, w)| (r, Value::Text(w))),
        Kind::DnsWire => {
            take_while1(|c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))(input)
                .map(|(r, w)| (r, Value::Text(w)))
        }
        Kind::FlagList => {
            take_while1(|c: char| c.is_ascii_alphabetic() || c == ',' || c == '-')(input)
                .map(|(r, w)| (r, Value::Text(w)))
        }
        Kind::Name | Kind::Rest | Kind::Answer => return None,
    };
    r.ok()
}

fn is_ip_char(c: char) -> bool {
    c.is_ascii_hexdigit() || c == ':' || c == '.'
}

/// An IPv4 or IPv6 address in text form; an IPv6 zone (`%eth0`) is dropped.
pub fn ip(input: &str) -> IResult<&str, IpAddr> {
    let (rest, text) = take_while1(is_ip_char)(input)?;
    let addr = if text.contains(':') {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    let addr = addr.map_err(|_| nom_error(input))?;
    let rest = match rest.strip_prefix('%') {
        Some(zoned) => zoned.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_'),
        None => rest,
    };
    Ok((rest, addr))
}

/// An address with an optional `#port` (upstream servers) or `/port` (clients in
/// `log-queries=extra` lines).
pub fn ip_port(input: &str) -> IResult<&str, (IpAddr, Option<u16>)> {
    let (rest, addr) = ip(input)?;
    let (rest, port) = opt(preceded(
        nom::branch::alt((char('#'), char('/'))),
        map_res(digit1, str::parse::<u16>),
    ))(rest)?;
    Ok((rest, (addr, port)))
}

/// An unsigned decimal number.
pub fn uint(input: &str) -> IResult<&str, u64> {
    map_res(digit1, str::parse::<u64>)(input)
}

/// A run of characters other than space.
pub fn word(input: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c != ' ')(input)
}

/// A run of letters, digits, `_`, `.` and `-`.
pub fn token(input: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))(input)
}

/// `ADDR:PORT`, `[ADDR]:PORT`, `[ADDR]` or a bare address (CoreDNS, PowerDNS).
pub fn sock_addr(input: &str) -> IResult<&str, (IpAddr, Option<u16>)> {
    let port = |r| opt(preceded(char(':'), map_res(digit1, str::parse::<u16>)))(r);
    if let Some(inner) = input.strip_prefix('[') {
        let (r, addr) = ip(inner)?;
        let r = r.strip_prefix(']').ok_or_else(|| nom_error(input))?;
        let (r, p) = port(r)?;
        return Ok((r, (addr, p)));
    }
    // An IPv4 address, then `:port`; a bare IPv6 address has no port.
    let end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    if let Ok(v4) = input[..end].parse::<Ipv4Addr>() {
        let (r, p) = port(&input[end..])?;
        return Ok((r, (IpAddr::V4(v4), p)));
    }
    let (r, addr) = ip(input)?;
    Ok((r, (addr, None)))
}

/// A decimal number with an optional fraction, times `unit`, as an integer
/// (`0.000320` seconds with unit 10^9 is 320000 ns). Digits past the unit's
/// precision are dropped.
pub fn decimal_nanos(input: &str, unit: u64) -> IResult<&str, u64> {
    let (rest, whole) = uint(input)?;
    let (rest, frac) = match rest.strip_prefix('.') {
        Some(f) => {
            let n = f.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return Err(nom_error(input));
            }
            (&f[n..], &f[..n])
        }
        None => (rest, ""),
    };
    let mut scale = unit;
    let mut part = 0u64;
    for d in frac.bytes() {
        if scale < 10 {
            break;
        }
        scale /= 10;
        part += u64::from(d - b'0') * scale;
    }
    let total = whole
        .checked_mul(unit)
        .and_then(|w| w.checked_add(part))
        .ok_or_else(|| nom_error(input))?;
    Ok((rest, total))
}

/// `0`/`1`, `true`/`false`, `yes`/`no`.
pub fn boolean(input: &str) -> IResult<&str, bool> {
    for (t, v) in [
        ("0", false),
        ("1", true),
        ("true", true),
        ("false", false),
        ("yes", true),
        ("no", false),
    ] {
        if let Some(r) = input.strip_prefix(t) {
            if !r.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                return Ok((r, v));
            }
        }
    }
    Err(nom_error(input))
}

/// BIND's flags word: `+` or `-` (recursion desired or not), then any of
/// `E(n)`, `S`, `T`, `D`, `C`, `V`, `K` in any order (9.18 writes
/// `+SE(0)TDCK`, later versions `+E(0)STDCK`).
pub fn bind_flags(input: &str) -> IResult<&str, &str> {
    let b = input.as_bytes();
    if !matches!(b.first(), Some(b'+' | b'-')) {
        return Err(nom_error(input));
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'S' | b'T' | b'D' | b'C' | b'V' | b'K' => i += 1,
            b'E' => {
                let close = input[i..].find(')').ok_or_else(|| nom_error(input))?;
                let inner = input[i + 1..i + close]
                    .strip_prefix('(')
                    .ok_or_else(|| nom_error(input))?;
                if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(nom_error(input));
                }
                i += close + 1;
            }
            _ => break,
        }
    }
    Ok((&input[i..], &input[..i]))
}

/// A word starting with `/`.
pub fn path(input: &str) -> IResult<&str, &str> {
    recognize(preceded(
        char('/'),
        nom::bytes::complete::take_while(|c: char| c != ' '),
    ))(input)
}

/// A MAC address of six hex pairs joined by `:` or `-` (and not the start of
/// a longer hex string such as a DHCPv6 DUID), in ECS's spelling.
pub fn mac(input: &str) -> IResult<&str, Str> {
    let b = input.as_bytes();
    if b.len() < 17 {
        return Err(nom_error(input));
    }
    let sep = b[2];
    if sep != b':' && sep != b'-' {
        return Err(nom_error(input));
    }
    let mut out = Str::default();
    for g in 0..6 {
        let at = g * 3;
        let (h, l) = (b[at], b[at + 1]);
        if !h.is_ascii_hexdigit() || !l.is_ascii_hexdigit() || (g < 5 && b[at + 2] != sep) {
            return Err(nom_error(input));
        }
        if g > 0 {
            out.push('-');
        }
        out.push(h.to_ascii_uppercase() as char);
        out.push(l.to_ascii_uppercase() as char);
    }
    let rest = &input[17..];
    if rest.starts_with(|c: char| c.is_ascii_hexdigit() || c == ':' || c == '-') {
        return Err(nom_error(input));
    }
    Ok((rest, out))
}

/// A duration of `d`, `h`, `m`, `s` parts (dnsmasq's `prettyprint_time`), in seconds.
pub fn duration(input: &str) -> IResult<&str, u64> {
    let mut rest = input;
    let mut total: u64 = 0;
    let mut parts = 0;
    while let Ok((r, n)) = uint(rest) {
        let unit = match r.as_bytes().first() {
            Some(b'd') => 86_400,
            Some(b'h') => 3_600,
            Some(b'm') => 60,
            Some(b's') => 1,
            _ => break,
        };
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| nom_error(input))?;
        rest = &r[1..];
        parts += 1;
    }
    if parts == 0 {
        return Err(nom_error(input));
    }
    Ok((rest, total))
}

/// Text between double quotes.
pub fn quoted(input: &str) -> IResult<&str, &str> {
    let (rest, _) = char('"')(input)?;
    let end = rest.find('"').ok_or_else(|| nom_error(input))?;
    Ok((&rest[end + 1..], &rest[..end]))
}

/// A record type: a mnemonic, or `type=NNN` which is returned as `TYPENNN`
/// (the RFC 3597 spelling), so the same type reads the same whichever dnsmasq
/// version wrote it.
pub fn rr_type(input: &str) -> IResult<&str, Value<'_>> {
    if let Ok((rest, n)) = preceded(tag::<_, _, nom::error::Error<&str>>("type="), uint)(input) {
        return Ok((rest, Value::Owned(Str::from(format!("TYPE{n}")))));
    }
    let (rest, t) = take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-')(input)?;
    Ok((rest, Value::Text(t)))
}

/// The reverse-lookup name of an address.
pub fn arpa_name(ip: IpAddr) -> Str {
    use std::fmt::Write;
    let mut s = Str::default();
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let _ = write!(s, "{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        }
        IpAddr::V6(v6) => {
            for b in v6.octets().iter().rev() {
                let _ = write!(s, "{:x}.{:x}.", b & 0xf, b >> 4);
            }
            s.push_str("ip6.arpa");
        }
    }
    s
}

fn nom_error(input: &str) -> nom::Err<nom::error::Error<&str>> {
    nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Verify))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Element {
        Element::Literal(s.into())
    }
    fn cap(kind: Kind) -> Element {
        Element::Capture {
            kind,
            fields: vec![],
        }
    }

    #[test]
    fn ip_parses_v4_v6_and_zones() {
        assert_eq!(
            ip("10.0.0.1 x").unwrap(),
            (" x", "10.0.0.1".parse().unwrap())
        );
        assert_eq!(ip("::1").unwrap().1, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(ip("fe80::1%eth0 y").unwrap().0, " y");
        assert!(ip("example.com").is_err());
        assert!(ip("1.2.3").is_err());
        assert!(ip("").is_err());
    }

    #[test]
    fn ip_port_takes_hash_or_slash() {
        let (r, (a, p)) = ip_port("127.0.0.1#5353 rest").unwrap();
        assert_eq!(
            (r, a.to_string(), p),
            (" rest", "127.0.0.1".into(), Some(5353))
        );
        let (_, (a, p)) = ip_port("2001:db8::1/60678").unwrap();
        assert_eq!((a.to_string(), p), ("2001:db8::1".into(), Some(60678)));
        let (r, (_, p)) = ip_port("1.1.1.1").unwrap();
        assert_eq!((r, p), ("", None));
        // A port out of range is not a port.
        let (r, (_, p)) = ip_port("1.1.1.1#99999").unwrap();
        assert_eq!((r, p), ("#99999", None));
    }

    #[test]
    fn rr_type_normalises_numeric_types() {
        assert_eq!(rr_type("AAAA]").unwrap(), ("]", Value::Text("AAAA")));
        assert_eq!(
            rr_type("type=65]").unwrap(),
            ("]", Value::Owned(Str::from("TYPE65")))
        );
        assert!(rr_type("]").is_err());
    }

    #[test]
    fn small_parsers() {
        assert_eq!(uint("123 x").unwrap(), (" x", 123));
        assert!(uint("x").is_err());
        assert!(uint("99999999999999999999999").is_err());
        assert_eq!(word("abc def").unwrap(), (" def", "abc"));
        assert_eq!(path("/etc/hosts x").unwrap(), (" x", "/etc/hosts"));
        assert!(path("etc").is_err());
        assert_eq!(quoted("\"a b\" c").unwrap(), (" c", "a b"));
        assert!(quoted("\"open").is_err());
    }

    #[test]
    fn mac_duration_and_padded_numbers() {
        assert_eq!(
            mac("02:00:5e:c0:de:01 laptop").unwrap(),
            (" laptop", Str::from("02-00-5E-C0-DE-01"))
        );
        assert_eq!(mac("AA-BB-CC-DD-EE-FF").unwrap().1, "AA-BB-CC-DD-EE-FF");
        assert!(
            mac("00:01:00:01:2a:3b:4c:5d").is_err(),
            "a DUID is not a MAC"
        );
        assert!(mac("02:00:5e:c0:de").is_err());
        assert!(mac("02:00-5e:c0:de:01").is_err());
        assert!(mac("zz:00:5e:c0:de:01").is_err());
        assert_eq!(duration("1h").unwrap(), ("", 3600));
        assert_eq!(duration("52m30s,").unwrap(), (",", 3150));
        assert_eq!(duration("2d3h").unwrap(), ("", 2 * 86_400 + 3 * 3600));
        assert!(duration("infinite").is_err());
        assert!(duration("12").is_err());
        assert!(duration("99999999999999999d").is_err());
        let p = Pattern {
            elements: vec![lit("size:"), cap(Kind::Padded), lit(" option")],
        };
        let mut caps = Captures::new();
        assert!(p.matches_all("size:  4 option", &mut caps));
        assert_eq!(caps[0].1, Value::Uint(4));
        assert!(p.matches_all("size:121 option", &mut caps));
    }

    #[test]
    fn path_before_a_literal_ends_at_it() {
        let p = Pattern {
            elements: vec![
                lit("("),
                cap(Kind::Path),
                lit(":"),
                cap(Kind::Uint),
                lit(")"),
            ],
        };
        let mut caps = Captures::new();
        assert!(p.matches_all("(/src/a:b/forward.c:1638)", &mut caps));
        assert_eq!(caps[0].1, Value::Text("/src/a:b/forward.c"));
        assert_eq!(caps[1].1, Value::Uint(1638));
        caps.clear();
        assert!(
            !p.matches_all("(/src/a b.c:1)", &mut caps),
            "no spaces in a path"
        );
        assert!(!p.matches_all("(src/a.c:1)", &mut caps), "starts with /");
    }

    #[test]
    fn resolver_kinds() {
        assert_eq!(
            sock_addr("127.0.0.1:5353 x").unwrap(),
            (" x", ("127.0.0.1".parse().unwrap(), Some(5353)))
        );
        assert_eq!(
            sock_addr("[::1]:53\"").unwrap(),
            ("\"", ("::1".parse().unwrap(), Some(53)))
        );
        assert_eq!(sock_addr("2001:db8::1 x").unwrap().1 .1, None);
        assert!(sock_addr("[::1").is_err());
        assert_eq!(
            decimal_nanos("0.000320 x", 1_000_000_000).unwrap(),
            (" x", 320_000)
        );
        assert_eq!(
            decimal_nanos("0.037990251s", 1_000_000_000).unwrap().1,
            37_990_251
        );
        assert_eq!(
            decimal_nanos("617.317000", 1_000_000).unwrap().1,
            617_317_000
        );
        assert_eq!(decimal_nanos("2", 1_000_000).unwrap().1, 2_000_000);
        assert!(decimal_nanos("1.", 1_000).is_err());
        assert!(decimal_nanos("99999999999999999999.1", 1_000_000_000).is_err());
        assert_eq!(boolean("1 x").unwrap(), (" x", true));
        assert!(!boolean("false").unwrap().1);
        assert!(boolean("10").is_err());
        assert_eq!(bind_flags("+E(0)TK (").unwrap(), (" (", "+E(0)TK"));
        assert_eq!(bind_flags("-SE(12)D ").unwrap().1, "-SE(12)D");
        assert_eq!(bind_flags("+ (").unwrap().1, "+");
        assert!(bind_flags("E(0)").is_err());
        assert!(bind_flags("+E(x)").is_err());
        assert_eq!(token("query-errors: x").unwrap().1, "query-errors");
    }

    #[test]
    fn arpa_names() {
        assert_eq!(
            arpa_name("192.0.2.10".parse().unwrap()),
            "10.2.0.192.in-addr.arpa"
        );
        let v6 = arpa_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0."));
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"));
    }

    #[test]
    fn free_text_backtracks_over_literal_occurrences() {
        // name is <free text> up to " is ", answer takes the rest.
        let p = Pattern {
            elements: vec![
                lit("reply "),
                cap(Kind::Name),
                lit(" is "),
                cap(Kind::Answer),
            ],
        };
        let mut caps = Captures::new();
        assert!(p.matches_all("reply a.example is 1.2.3.4", &mut caps));
        assert_eq!(caps[0].1, Value::Text("a.example"));
        assert_eq!(caps[1].1, Value::Text("1.2.3.4"));
    }

    #[test]
    fn backtracking_finds_a_later_literal() {
        // "from" followed by an IP: a name containing " from " still parses.
        let p = Pattern {
            elements: vec![lit("q "), cap(Kind::Name), lit(" from "), cap(Kind::Ip)],
        };
        let mut caps = Captures::new();
        assert!(p.matches_all("q odd from name from 10.0.0.1", &mut caps));
        assert_eq!(caps[0].1, Value::Text("odd from name"));
        assert_eq!(caps.len(), 2);
    }

    #[test]
    fn failed_match_leaves_no_captures() {
        let p = Pattern {
            elements: vec![lit("q "), cap(Kind::Name), lit(" from "), cap(Kind::Ip)],
        };
        let mut caps = Captures::new();
        assert!(!p.matches_all("q a from b from c", &mut caps));
        assert!(caps.is_empty());
        assert!(!p.matches_all("q a from 1.2.3.4 trailing", &mut caps));
        assert!(caps.is_empty());
    }

    #[test]
    fn prefix_returns_remainder() {
        let p = Pattern {
            elements: vec![cap(Kind::Uint), lit(" "), cap(Kind::IpPort), lit(" ")],
        };
        let mut caps = Captures::new();
        let rest = p.matches_prefix("12 10.0.0.1/5353 query[A] x", &mut caps);
        assert_eq!(rest, Some("query[A] x"));
        assert_eq!(caps.len(), 2);
        assert_eq!(p.matches_prefix("query[A] x", &mut caps), None);
        assert_eq!(caps.len(), 2);
    }

    #[test]
    fn find_literal_finds_the_first_occurrence() {
        assert_eq!(find_literal("a is b is c", " is "), Some(1));
        assert_eq!(find_literal("a  is", " is"), Some(2));
        assert_eq!(find_literal("abc", " is "), None);
        assert_eq!(find_literal("é is", " is"), Some(2));
        assert_eq!(find_literal("x", ""), None);
    }

    #[test]
    fn empty_name_does_not_match() {
        let p = Pattern {
            elements: vec![
                lit("reply "),
                cap(Kind::Name),
                lit(" is "),
                cap(Kind::Answer),
            ],
        };
        let mut caps = Captures::new();
        assert!(!p.matches_all("reply  is 1.2.3.4", &mut caps));
        assert!(!p.matches_all("reply x is ", &mut caps));
    }
}
