//! Checking a distribution against what is really in memcached
//! (`dnsenrich check-indicators`).
//!
//! A wrong `distribution` makes every lookup of a key on the wrong server a
//! silent miss, so nothing in normal operation shows it. The check asks every
//! server for every key of a sample, so it sees where each key really is,
//! whichever client wrote it, and compares that with the server the
//! configured distribution picks. When keys are found elsewhere, it also
//! works out which distributions would have placed every found key where it
//! is, which names the setting to use.

use super::memcached::Memcached;
use crate::indicator::distribution::{DistributionKind, Placement};

/// Every distribution, in the order hints name them.
pub const ALL_KINDS: [DistributionKind; 4] = [
    DistributionKind::Dalli,
    DistributionKind::Pymemcache,
    DistributionKind::Ketama,
    DistributionKind::Rendezvous,
];

/// Where one key was found, and where the distribution expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    /// The key as stored (with the namespace).
    pub key: String,
    /// The server index the configured distribution picks.
    pub expected: usize,
    /// The servers that hold the key.
    pub found_on: Vec<usize>,
}

impl KeyCheck {
    /// Found, and on the expected server.
    pub fn matches(&self) -> bool {
        self.found_on.contains(&self.expected)
    }

    /// Found, but not on the expected server: a lookup misses it.
    pub fn misplaced(&self) -> bool {
        !self.found_on.is_empty() && !self.matches()
    }
}

/// The outcome of a check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The servers, in configuration order (normalised `host:port`).
    pub servers: Vec<String>,
    /// The distribution checked.
    pub distribution: DistributionKind,
    /// One entry per key, in the order given.
    pub keys: Vec<KeyCheck>,
    /// Servers that did not answer, with why; a key there cannot be seen.
    pub unreachable: Vec<(usize, String)>,
    /// The distributions that would place every found key where it is
    /// (empty when no key was found).
    pub would_match: Vec<DistributionKind>,
}

impl CheckReport {
    /// Keys found but not where the distribution looks.
    pub fn misplaced(&self) -> usize {
        self.keys.iter().filter(|k| k.misplaced()).count()
    }

    /// Keys found on no server.
    pub fn missing(&self) -> usize {
        self.keys.iter().filter(|k| k.found_on.is_empty()).count()
    }

    /// Whether the configured distribution finds every key that exists.
    pub fn ok(&self) -> bool {
        self.misplaced() == 0 && self.unreachable.is_empty()
    }
}

/// Asks every server of `memcached` for every key of `keys` and compares
/// where each is with where `memcached`'s own placement looks for it.
/// `configured` are the server strings as written (weights included) and
/// `namespace` the one the keys were composed with: the other distributions
/// are tried over them for the hint.
pub fn check(
    memcached: &Memcached,
    configured: &[String],
    keys: &[String],
    namespace: Option<&str>,
) -> CheckReport {
    let servers = memcached.server_names().to_vec();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut found_on: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
    let mut unreachable = Vec::new();
    for server in 0..servers.len() {
        match memcached.fetch_on(server, &refs) {
            Ok(found) => {
                for (i, k) in keys.iter().enumerate() {
                    if found.contains_key(k) {
                        found_on[i].push(server);
                    }
                }
            }
            Err(e) => unreachable.push((server, e.label().to_string())),
        }
    }
    let would_match = ALL_KINDS
        .into_iter()
        .filter(|&kind| {
            let Ok(p) = Placement::new(kind, configured, namespace) else {
                return false;
            };
            let mut any = false;
            let all = keys.iter().zip(&found_on).all(|(k, on)| {
                any |= !on.is_empty();
                on.is_empty() || on.contains(&p.server_for(k))
            });
            any && all
        })
        .collect();
    let keys = keys
        .iter()
        .zip(found_on)
        .map(|(k, on)| KeyCheck {
            key: k.clone(),
            expected: memcached.server_for(k),
            found_on: on,
        })
        .collect();
    CheckReport {
        servers,
        distribution: memcached.distribution(),
        keys,
        unreachable,
        would_match,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_on_another_server_is_misplaced() {
        let k = |expected, found_on: &[usize]| KeyCheck {
            key: "domain-x".into(),
            expected,
            found_on: found_on.to_vec(),
        };
        assert!(k(1, &[1]).matches());
        assert!(!k(1, &[1]).misplaced());
        assert!(k(1, &[0]).misplaced());
        assert!(!k(1, &[]).misplaced());
        assert!(!k(1, &[]).matches());
        assert!(k(1, &[0, 1]).matches());
    }
}
