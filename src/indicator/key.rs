//! Keys: how an indicator becomes a memcached key, and the one rule that makes
//! every key safe to send.
//!
//! Keys follow the MISP convention of the classic setup, `<misp type>-<value>`
//! (`domain-evil.example`, `ip-dst-192.0.2.1`, `ip-src-…`), optionally behind a
//! `<namespace>:` prefix as Dalli writes it. The built-in prefixes are the
//! [`KeyKind`]s; a lookup rule may configure its own [`KeyTemplate`]. Names are
//! normalised first ([`normalize_name`]: lower case, no trailing dot) and
//! addresses are written in Rust's canonical form (`2001:db8::1`).
//!
//! [`compose`] is the one place a key is put together: `dnsenrich sync` calls
//! it for every key it writes, the lookups for every key they send, and the
//! in-process store for every key it loads. That is how the two processes agree
//! on every key.
//!
//! # Key safety (stable: every key written or sent goes through [`safe_key`])
//!
//! memcached's text protocol ends a key at a space and a command at `\r\n`, and
//! refuses keys over 250 bytes. A name in a log line is attacker-controlled, so
//! a key is sent as it is only when it is *safe*:
//!
//! * at most [`MAX_KEY_LEN`] (250) bytes, and
//! * no byte ≤ 0x20 (space and control characters), no 0x7f (DEL), and no `#`.
//!
//! Any other key is replaced by its digest:
//!
//! ```text
//!   <type prefix>#<first 40 hex digits of SHA-256(full key)>
//!   domain-#3f0c…                      (the full key includes any namespace)
//! ```
//!
//! The type prefix is the key up to and including its first `-` when that
//! part is itself safe and at most 64 bytes long (`domain-`, `ip-`,
//! `ns:domain-`), else empty. `#` never occurs in a host name or an address,
//! so hashing every key that holds one keeps a queried name from spelling a
//! digest form itself. Nothing is skipped: a hashed key is looked up like any
//! other (sync stores long indicators under the same digest), and each one is
//! counted (`unsafe_keys_hashed`).

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// memcached's limit on a key's length, in bytes.
pub const MAX_KEY_LEN: usize = 250;
/// Hex digits of the SHA-256 digest kept in a hashed key.
pub const HASH_HEX_LEN: usize = 40;
/// The longest type prefix kept in front of a hashed key.
const MAX_PREFIX_LEN: usize = 64;

/// A key ready to send: the key itself, or its digest form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SafeKey {
    /// The key was safe and is sent unchanged.
    AsIs(String),
    /// The key was too long or held unsafe bytes; this is its digest form.
    Hashed(String),
}

impl SafeKey {
    /// The key to send.
    pub fn as_str(&self) -> &str {
        match self {
            SafeKey::AsIs(s) | SafeKey::Hashed(s) => s,
        }
    }

    pub fn into_string(self) -> String {
        match self {
            SafeKey::AsIs(s) | SafeKey::Hashed(s) => s,
        }
    }

    pub fn is_hashed(&self) -> bool {
        matches!(self, SafeKey::Hashed(_))
    }
}

/// Whether `key` may be sent as it is (see the module documentation).
pub fn is_safe(key: &str) -> bool {
    key.len() <= MAX_KEY_LEN && key.bytes().all(safe_byte)
}

/// Whether `key` can be written on memcached's text protocol without being
/// taken for anything but one key: what every key that is sent satisfies
/// (safe keys and digest forms alike).
pub fn is_wire_safe(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b > 0x20 && b != 0x7f)
}

#[inline]
fn safe_byte(b: u8) -> bool {
    b > 0x20 && b != 0x7f && b != b'#'
}

/// The key to send for `key`: itself when safe, else its digest form.
pub fn safe_key(key: &str) -> SafeKey {
    if is_safe(key) {
        return SafeKey::AsIs(key.to_owned());
    }
    SafeKey::Hashed(hashed_key(key))
}

/// The digest form of `key`, whether or not it is safe.
pub fn hashed_key(key: &str) -> String {
    let prefix = type_prefix(key);
    let digest = Sha256::digest(key.as_bytes());
    let mut s = String::with_capacity(prefix.len() + 1 + HASH_HEX_LEN);
    s.push_str(prefix);
    s.push('#');
    for b in &digest[..HASH_HEX_LEN / 2] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The part of `key` up to and including its first `-`, if that is safe and
/// short; else empty.
fn type_prefix(key: &str) -> &str {
    match key.find('-') {
        Some(i) if i < MAX_PREFIX_LEN && key.as_bytes()[..i].iter().all(|&b| safe_byte(b)) => {
            &key[..=i]
        }
        _ => "",
    }
}

/// A DNS name as keys use it: lower case, without a trailing dot.
/// Borrows when the name is already in that form.
pub fn normalize_name(name: &str) -> Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_ascii() {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        }
    } else {
        Cow::Owned(name.to_lowercase())
    }
}

/// The built-in kinds of key: what `dnsenrich sync` writes and the default
/// lookup rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Domain,
    IpDst,
    IpSrc,
}

impl KeyKind {
    /// The key prefix, e.g. `domain-`.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Domain => "domain-",
            KeyKind::IpDst => "ip-dst-",
            KeyKind::IpSrc => "ip-src-",
        }
    }

    /// The `type` of the value JSON (the MISP attribute type).
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Domain => "domain",
            KeyKind::IpDst => "ip-dst",
            KeyKind::IpSrc => "ip-src",
        }
    }

    /// The lookup-rule template for this kind, e.g. `domain-{}`.
    pub fn template(self) -> String {
        format!("{}{{}}", self.prefix())
    }
}

/// What goes around the value in a key: a built-in [`KeyKind`] or a
/// configured [`KeyTemplate`].
pub trait KeyShape {
    /// Appends the key for `value` (without namespace) to `out`.
    fn render(&self, value: &str, out: &mut String);
}

impl KeyShape for KeyKind {
    fn render(&self, value: &str, out: &mut String) {
        out.push_str(self.prefix());
        out.push_str(value);
    }
}

impl KeyShape for KeyTemplate {
    fn render(&self, value: &str, out: &mut String) {
        KeyTemplate::render(self, value, out)
    }
}

/// The key for `value` of `kind`, behind an optional namespace
/// (`<namespace>:`), made safe. `value` must already be normalised
/// ([`normalize_name`], or an address's canonical text).
pub fn compose(namespace: Option<&str>, kind: &impl KeyShape, value: &str) -> SafeKey {
    compose_into(namespace, kind, value, &mut String::new())
}

/// [`compose`], leaving the key before it was made safe in `raw` (cleared
/// first), so a caller writing many keys reuses one buffer.
pub fn compose_into(
    namespace: Option<&str>,
    kind: &impl KeyShape,
    value: &str,
    raw: &mut String,
) -> SafeKey {
    raw.clear();
    if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
        raw.push_str(ns);
        raw.push(':');
    }
    kind.render(value, raw);
    safe_key(raw)
}

/// A key template such as `domain-{}`: fixed text around exactly one `{}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    prefix: String,
    suffix: String,
}

impl KeyTemplate {
    /// Parses a template; the text around `{}` must itself be safe key text.
    pub fn parse(t: &str) -> Result<KeyTemplate, String> {
        let Some((prefix, suffix)) = t.split_once("{}") else {
            return Err(format!("{t:?} has no \"{{}}\" for the value"));
        };
        if suffix.contains("{}") {
            return Err(format!("{t:?} has more than one \"{{}}\""));
        }
        for part in [prefix, suffix] {
            if !part.bytes().all(safe_byte) {
                return Err(format!(
                    "{t:?}: spaces, control characters and '#' are not allowed in a key"
                ));
            }
        }
        if prefix.len() + suffix.len() > 100 {
            return Err(format!("{t:?} is too long (at most 100 bytes around {{}})"));
        }
        Ok(KeyTemplate {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    /// The template of a built-in kind (`domain-{}` for [`KeyKind::Domain`]).
    pub fn of(kind: KeyKind) -> KeyTemplate {
        KeyTemplate {
            prefix: kind.prefix().to_owned(),
            suffix: String::new(),
        }
    }

    /// The `domain-{}` template.
    pub fn domain() -> KeyTemplate {
        KeyTemplate::of(KeyKind::Domain)
    }

    /// Appends the key for `value` to `out`.
    pub fn render(&self, value: &str, out: &mut String) {
        out.push_str(&self.prefix);
        out.push_str(value);
        out.push_str(&self.suffix);
    }

    /// The value inside a key this template rendered.
    pub fn value_of<'k>(&self, key: &'k str) -> &'k str {
        key.get(self.prefix.len()..key.len().saturating_sub(self.suffix.len()))
            .unwrap_or("")
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{{}}{}", self.prefix, self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_are_sent_as_they_are() {
        for k in [
            "domain-evil.example",
            "ip-dst-192.0.2.1",
            "ip-dst-2001:db8::1",
            "ns:domain-xn--bcher-kva.example",
            "domain-bücher.example",
        ] {
            assert_eq!(safe_key(k), SafeKey::AsIs(k.to_owned()), "{k}");
        }
        let k = format!("domain-{}", "a".repeat(MAX_KEY_LEN - 7));
        assert_eq!(k.len(), MAX_KEY_LEN);
        assert!(!safe_key(&k).is_hashed());
    }

    #[test]
    fn long_or_unsafe_keys_are_hashed_with_their_type_prefix() {
        let long = format!("domain-{}", "a".repeat(MAX_KEY_LEN));
        let cases = [
            long.as_str(),
            "domain-a b",
            "domain-evil\r\nset evil 0 0 1\r\nx\r\n",
            "domain-tab\there",
            "domain-del\u{7f}",
            "domain-#0123",
            "domain-\0",
        ];
        for k in cases {
            let s = safe_key(k);
            assert!(s.is_hashed(), "{k:?}");
            let h = s.as_str();
            assert!(h.starts_with("domain-#"), "{h}");
            assert_eq!(h.len(), "domain-#".len() + HASH_HEX_LEN);
            assert!(is_wire_safe(h));
            assert!(!is_safe(h), "a digest form is never taken for a plain key");
            // Stable: the same key always gives the same digest.
            assert_eq!(safe_key(k), s);
        }
        // Known answer, so the sync side can check its implementation.
        assert_eq!(
            safe_key("domain-a b").as_str(),
            format!(
                "domain-#{}",
                &hex(&Sha256::digest(b"domain-a b"))[..HASH_HEX_LEN]
            )
        );
        assert_ne!(safe_key("domain-a b"), safe_key("domain-a  b"));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn prefix_is_dropped_when_it_is_not_a_type() {
        assert!(safe_key("no dash at all").as_str().starts_with('#'));
        assert!(safe_key("has space-x y").as_str().starts_with('#'));
        let ns = safe_key("prod:domain-a b");
        assert!(ns.as_str().starts_with("prod:domain-#"), "{ns:?}");
    }

    #[test]
    fn names_are_lower_case_without_trailing_dot() {
        assert_eq!(normalize_name("WWW.Example.COM."), "www.example.com");
        assert!(matches!(normalize_name("a.example"), Cow::Borrowed(_)));
        assert_eq!(normalize_name("BÜCHER.example"), "bücher.example");
        assert_eq!(normalize_name("."), "");
    }

    #[test]
    fn templates_have_one_placeholder_and_safe_text() {
        let t = KeyTemplate::parse("ip-dst-{}").unwrap();
        let mut s = String::new();
        t.render("192.0.2.1", &mut s);
        assert_eq!(s, "ip-dst-192.0.2.1");
        assert_eq!(t.value_of(&s), "192.0.2.1");
        assert_eq!(t.to_string(), "ip-dst-{}");
        assert!(KeyTemplate::parse("domain-").is_err());
        assert!(KeyTemplate::parse("{}-{}").is_err());
        assert!(KeyTemplate::parse("dom ain-{}").is_err());
        let k = compose(Some("misp"), &KeyTemplate::domain(), "evil.example");
        assert_eq!(k, SafeKey::AsIs("misp:domain-evil.example".into()));
        let k = compose(None, &KeyTemplate::domain(), "evil.example");
        assert_eq!(k.as_str(), "domain-evil.example");
    }

    #[test]
    fn kinds_and_their_templates_give_the_same_keys() {
        for kind in [KeyKind::Domain, KeyKind::IpDst, KeyKind::IpSrc] {
            let t = KeyTemplate::parse(&kind.template()).unwrap();
            assert_eq!(t, KeyTemplate::of(kind));
            for ns in [None, Some("misp")] {
                for v in ["evil.example", "192.0.2.1", "a b", &"x".repeat(300)] {
                    assert_eq!(compose(ns, &kind, v), compose(ns, &t, v), "{kind:?} {v}");
                }
            }
        }
        let mut raw = String::from("left over");
        let k = compose_into(Some("ns"), &KeyKind::IpSrc, "2001:db8::1", &mut raw);
        assert_eq!(raw, "ns:ip-src-2001:db8::1");
        assert_eq!(k.as_str(), raw);
        assert_eq!(
            compose(Some(""), &KeyKind::Domain, "a").as_str(),
            "domain-a"
        );
    }
}
