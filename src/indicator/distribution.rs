//! memcached key distributions: which of several servers holds a key, worked
//! out exactly as the client that wrote the key works it out.
//!
//! Threat-intelligence keys are often written by someone else's client, and a
//! reader that places keys its own way looks on the wrong server and sees a
//! silent miss. So each classic writer's placement is re-implemented here from
//! its source, including how it turns the server string the user wrote into
//! the name it hashes:
//!
//! | distribution | writer | how a key is placed |
//! |--------------|--------|---------------------|
//! | `dalli`      | Ruby Dalli (`lib/dalli/ring.rb`; Logstash's memcached filter) | ring of `floor(n × 160 × weight / Σweight)` points per server, point = first 4 bytes (big-endian) of SHA-1 of `"host:port:i"`; key hash = CRC-32 of the namespaced key; the largest point ≤ hash, wrapping to the last point. One server: no hashing |
//! | `pymemcache` | pymemcache `HashClient` (`client/rendezvous.py`, `client/murmur3.py`; the MISP pull scripts) | rendezvous: the node with the highest `murmur3_32("host:port-key", seed 0)`; a tie goes to the greater node name. No weights |
//! | `ketama`     | libmemcached with `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED` (`hosts.cc`; php-memcached's `libketama_compatible`, pylibmc's `ketama_weighted`) | ring of `floor(weight / Σweight × 40 × n) × 4` points per server, four from each MD5 of `"host-i"` (port 11211) or `"host:port-i"`, each a little-endian u32; key hash = first 4 bytes of MD5, little-endian; the first point ≥ hash, wrapping to the first point |
//! | `rendezvous` | dnsenrich itself ([`pick_server`]) | see `enrich::memcached` |
//!
//! What is *not* reproduced: the writers' failover. Dalli re-hashes
//! `"{try}{key}"` when the chosen server is down, pymemcache drops a failing
//! node from the hasher for `dead_timeout`, and libmemcached's auto-eject
//! rebuilds its ring; keys written during such an outage sit elsewhere. A
//! reader cannot know about a writer's outage, so placement here is always the
//! one with every server up.

use std::borrow::Cow;

use md5::{Digest as _, Md5};
use sha1::Sha1;

use crate::enrich::memcached::{parse_server, pick_server};

/// memcached's default port, which every client fills in when none is given.
const DEFAULT_PORT: u16 = 11211;
/// Dalli's `Ring::POINTS_PER_SERVER`.
const DALLI_POINTS_PER_SERVER: u32 = 160;
/// Dalli's `KeyManager::MAX_KEY_LENGTH`: longer keys are shortened with a digest.
const DALLI_MAX_KEY_LENGTH: usize = 250;
/// Dalli's `KeyManager::TRUNCATED_KEY_TARGET_SIZE`.
const DALLI_TRUNCATED_TARGET: usize = 249;
/// Dalli's `KeyManager::TRUNCATED_KEY_SEPARATOR`.
const DALLI_TRUNCATED_SEPARATOR: &str = ":md5:";
/// libmemcached's `MEMCACHED_POINTS_PER_SERVER_KETAMA`.
const KETAMA_POINTS_PER_SERVER: f32 = 160.0;

/// Which client's placement to follow (the `distribution` setting).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DistributionKind {
    /// Ruby Dalli's consistent ring.
    Dalli,
    /// pymemcache `HashClient`'s rendezvous hashing with murmur3.
    Pymemcache,
    /// libmemcached's weighted ketama.
    Ketama,
    /// dnsenrich's own rendezvous hashing, which `dnsenrich sync` writes with.
    #[default]
    Rendezvous,
}

impl DistributionKind {
    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DistributionKind::Dalli => "dalli",
            DistributionKind::Pymemcache => "pymemcache",
            DistributionKind::Ketama => "ketama",
            DistributionKind::Rendezvous => "rendezvous",
        }
    }
}

/// A server string the chosen client would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistributionError {
    /// No server was given.
    #[error("no memcached servers are configured")]
    NoServers,
    /// Server `index` (from 0) cannot be parsed the way the client parses it.
    #[error("memcached server #{index} {server:?} ({distribution} distribution): {reason}")]
    BadServer {
        index: usize,
        server: String,
        distribution: &'static str,
        reason: String,
    },
}

/// A key's placement over a fixed list of servers, built once from the
/// server strings in configuration order; [`Distribution::server_for`]
/// returns an index into that list.
#[derive(Debug, Clone)]
pub enum Distribution {
    /// Dalli: `ring` is `None` with a single server (Dalli does not hash then).
    Dalli {
        ring: Option<Continuum>,
        namespace: Option<String>,
    },
    /// pymemcache: the node names it hashes (`"host:port"` or a socket path).
    Pymemcache { nodes: Vec<String> },
    /// libmemcached weighted ketama.
    Ketama { ring: Continuum },
    /// dnsenrich's rendezvous hashing over normalised `host:port` names.
    Rendezvous { names: Vec<String> },
}

/// A sorted ring of points, each owned by a server index.
#[derive(Debug, Clone)]
pub struct Continuum {
    /// `(point, server index)`, sorted by point then index.
    points: Vec<(u32, usize)>,
}

impl Continuum {
    fn new(mut points: Vec<(u32, usize)>) -> Continuum {
        // libmemcached sorts equal points by server index; Dalli's sort is
        // unstable, so for it a tie (two 32-bit SHA-1 prefixes equal) is
        // undefined anyway.
        points.sort_unstable();
        Continuum { points }
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

impl Distribution {
    /// Builds the placement of `kind` over `servers`, with no Dalli namespace.
    pub fn new<S: AsRef<str>>(
        kind: DistributionKind,
        servers: &[S],
    ) -> Result<Distribution, DistributionError> {
        match kind {
            DistributionKind::Dalli => Self::dalli(servers, None),
            DistributionKind::Pymemcache => Self::pymemcache(servers),
            DistributionKind::Ketama => Self::ketama(servers),
            DistributionKind::Rendezvous => Self::rendezvous(servers),
        }
    }

    /// Dalli's ring. Server strings as Dalli takes them:
    /// `host[:port[:weight]]`, `[v6]:port:weight`, `/socket/path[:weight]`
    /// or `memcached://[user:pass@]host[:port]`. `namespace` is Dalli's
    /// `:namespace` option, which is part of the hashed key.
    pub fn dalli<S: AsRef<str>>(
        servers: &[S],
        namespace: Option<&str>,
    ) -> Result<Distribution, DistributionError> {
        let parsed = parse_all(servers, DistributionKind::Dalli, parse_dalli)?;
        let ring = (parsed.len() > 1).then(|| {
            let n = parsed.len() as u64;
            let total: u64 = parsed.iter().map(|(_, w)| u64::from(*w)).sum();
            let mut points = Vec::new();
            for (i, (name, weight)) in parsed.iter().enumerate() {
                // ((total_servers * POINTS_PER_SERVER * weight) / Float(total_weight)).floor
                let count = ((n * u64::from(DALLI_POINTS_PER_SERVER) * u64::from(*weight)) as f64
                    / total as f64)
                    .floor() as u64;
                for idx in 0..count {
                    let digest = Sha1::digest(format!("{name}:{idx}").as_bytes());
                    let point = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
                    points.push((point, i));
                }
            }
            Continuum::new(points)
        });
        Ok(Distribution::Dalli {
            ring,
            namespace: namespace.map(str::to_owned),
        })
    }

    /// pymemcache `HashClient`'s rendezvous hashing. Server strings as
    /// pymemcache's `normalize_server_spec` takes them: `host[:port]`,
    /// `[v6]:port`, `unix:/path` or `/path`.
    pub fn pymemcache<S: AsRef<str>>(servers: &[S]) -> Result<Distribution, DistributionError> {
        let nodes = parse_all(servers, DistributionKind::Pymemcache, parse_pymemcache)?;
        Ok(Distribution::Pymemcache { nodes })
    }

    /// libmemcached's weighted ketama. Server strings as libmemcached's
    /// `memcached_servers_parse` takes them: `host[:port[:weight]]` or
    /// `[v6]:port[:weight]` (the brackets stay part of the host name).
    pub fn ketama<S: AsRef<str>>(servers: &[S]) -> Result<Distribution, DistributionError> {
        let parsed = parse_all(servers, DistributionKind::Ketama, parse_ketama)?;
        let live = parsed.len() as f32;
        let total: u64 = parsed.iter().map(|(_, _, w)| u64::from(*w)).sum();
        let mut points = Vec::new();
        for (i, (host, port, weight)) in parsed.iter().enumerate() {
            // In float, as hosts.cc computes it:
            // floor(pct * 160 / 4 * live + 1e-10) * 4
            let pct = *weight as f32 / total as f32;
            let per_server = ((pct * KETAMA_POINTS_PER_SERVER / 4.0 * live + 0.000_000_000_1_f32)
                .floor() as u32)
                * 4;
            for idx in 0..per_server / 4 {
                let label = if *port == DEFAULT_PORT {
                    format!("{host}-{idx}")
                } else {
                    format!("{host}:{port}-{idx}")
                };
                let digest = Md5::digest(label.as_bytes());
                for x in 0..4 {
                    let b = &digest[x * 4..x * 4 + 4];
                    points.push((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), i));
                }
            }
        }
        Ok(Distribution::Ketama {
            ring: Continuum::new(points),
        })
    }

    /// dnsenrich's own rendezvous hashing (what `dnsenrich sync` writes with).
    pub fn rendezvous<S: AsRef<str>>(servers: &[S]) -> Result<Distribution, DistributionError> {
        let names = parse_all(servers, DistributionKind::Rendezvous, parse_server)?;
        Ok(Distribution::Rendezvous { names })
    }

    /// Which distribution this is.
    pub fn kind(&self) -> DistributionKind {
        match self {
            Distribution::Dalli { .. } => DistributionKind::Dalli,
            Distribution::Pymemcache { .. } => DistributionKind::Pymemcache,
            Distribution::Ketama { .. } => DistributionKind::Ketama,
            Distribution::Rendezvous { .. } => DistributionKind::Rendezvous,
        }
    }

    /// The index (in the order the servers were given) of the server that
    /// holds `key`, where `key` is the key as the writing program passes it
    /// to its client (before any namespace the client adds itself).
    pub fn server_for(&self, key: &[u8]) -> usize {
        match self {
            Distribution::Dalli { ring: None, .. } => 0,
            Distribution::Dalli {
                ring: Some(ring),
                namespace,
            } => {
                let key = dalli_key(key, namespace.as_deref());
                let hash = crc32fast::hash(&key);
                // bsearch_index { |e| e.value > hash } - 1: the last point
                // ≤ hash; none (index -1 in Ruby) is the last point.
                let above = ring.points.partition_point(|&(p, _)| p <= hash);
                let at = above.checked_sub(1).unwrap_or(ring.points.len() - 1);
                ring.points[at].1
            }
            Distribution::Pymemcache { nodes } => pymemcache_node(nodes, key),
            Distribution::Ketama { ring } => {
                if ring.points.is_empty() {
                    return 0;
                }
                let digest = Md5::digest(key);
                let hash = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
                // lower_bound: the first point ≥ hash, wrapping to the first.
                let at = ring.points.partition_point(|&(p, _)| p < hash);
                ring.points.get(at).unwrap_or(&ring.points[0]).1
            }
            Distribution::Rendezvous { names } => pick_server(&String::from_utf8_lossy(key), names),
        }
    }
}

/// The address to connect to in a server string of `kind`: the string
/// without the `:weight` Dalli and libmemcached allow after `host:port`
/// (`host:port:weight`, `[v6]:port:weight`); any other string as it is.
pub fn address_of(kind: DistributionKind, server: &str) -> &str {
    if !matches!(kind, DistributionKind::Dalli | DistributionKind::Ketama) {
        return server;
    }
    let mut parts = server.rsplitn(3, ':');
    let (Some(w), Some(port), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return server;
    };
    let numeric = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let plain_host = (host.starts_with('[') && host.ends_with(']')) || !host.contains(':');
    if numeric(w) && numeric(port) && plain_host && !host.is_empty() {
        &server[..host.len() + 1 + port.len()]
    } else {
        server
    }
}

/// A [`Distribution`] for keys that already carry dnsenrich's
/// `<namespace>:` prefix ([`crate::indicator::key::compose`]), which is how
/// the enricher and `dnsenrich sync` hold them.
///
/// For every client but Dalli the namespace is just part of the key the
/// writer hashed. Dalli adds its `:namespace` itself and hashes the result,
/// which is the same bytes, except for keys over 250 characters, which it
/// shortens counting the namespace in; so for Dalli the prefix is taken off
/// again and handed to Dalli's own key logic.
#[derive(Debug, Clone)]
pub struct Placement {
    distribution: Distribution,
    /// `"<namespace>:"` when the distribution is Dalli and a namespace is set.
    dalli_prefix: Option<String>,
}

impl Placement {
    /// The placement of `kind` over `servers` for keys composed with
    /// `namespace` (`None` or empty: no namespace).
    pub fn new<S: AsRef<str>>(
        kind: DistributionKind,
        servers: &[S],
        namespace: Option<&str>,
    ) -> Result<Placement, DistributionError> {
        let namespace = namespace.filter(|ns| !ns.is_empty());
        Ok(match (kind, namespace) {
            (DistributionKind::Dalli, Some(ns)) => Placement {
                distribution: Distribution::dalli(servers, Some(ns))?,
                dalli_prefix: Some(format!("{ns}:")),
            },
            _ => Placement {
                distribution: Distribution::new(kind, servers)?,
                dalli_prefix: None,
            },
        })
    }

    /// Which distribution this is.
    pub fn kind(&self) -> DistributionKind {
        self.distribution.kind()
    }

    /// The index of the server holding the composed key `key`.
    pub fn server_for(&self, key: &str) -> usize {
        let bare = match &self.dalli_prefix {
            Some(p) => key.strip_prefix(p.as_str()).unwrap_or(key),
            None => key,
        };
        self.distribution.server_for(bare.as_bytes())
    }
}

/// Parses every server with `parse`, naming the first bad one.
fn parse_all<S: AsRef<str>, T>(
    servers: &[S],
    kind: DistributionKind,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, DistributionError> {
    if servers.is_empty() {
        return Err(DistributionError::NoServers);
    }
    servers
        .iter()
        .enumerate()
        .map(|(index, s)| {
            parse(s.as_ref()).map_err(|reason| DistributionError::BadServer {
                index,
                server: s.as_ref().to_owned(),
                distribution: kind.as_str(),
                reason,
            })
        })
        .collect()
}

/// A weight of at least 1 (0 would leave a server with no points, and all
/// zero is a division by zero in every client).
fn weight(s: &str, parse: impl Fn(&str) -> Option<u64>) -> Result<u32, String> {
    match parse(s) {
        Some(w) if w >= 1 && w <= u64::from(u32::MAX) => Ok(w as u32),
        _ => Err(format!("{s:?} is not a weight (a whole number from 1)")),
    }
}

/// Ruby's `Integer("…")` on a run of digits: a leading 0 means octal.
fn ruby_integer(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()
    } else {
        digits.parse().ok()
    }
}

fn port_from(n: Option<u64>, s: &str) -> Result<u16, String> {
    n.and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("{s:?} is not a port"))
}

/// Dalli's `ServerConfigParser`: the name it hashes (`"host:port"`, or the
/// socket path) and the weight.
fn parse_dalli(s: &str) -> Result<(String, u32), String> {
    if let Some(rest) = s.strip_prefix("memcached://") {
        // URI.parse: userinfo before '@', the path after the authority is
        // ignored; `uri.host` keeps an IPv6 address's brackets.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("{s:?}: missing ']'"))?;
                (&hostport[..addr.len() + 2], after.strip_prefix(':'))
            }
            None => match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let port = match port.filter(|p| !p.is_empty()) {
            Some(p) => port_from(p.parse().ok(), p)?,
            None => DEFAULT_PORT,
        };
        return Ok((format!("{host}:{port}"), 1));
    }
    // SERVER_CONFIG_REGEXP = /\A(\[([\h:]+)\]|[^:]+)(?::(\d+))?(?::(\d+))?\z/
    let (host, rest) = match s.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: missing ']'"))?;
            if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                return Err(format!("{addr:?} is not an IPv6 address"));
            }
            (addr, after)
        }
        None => s.split_at(s.find(':').unwrap_or(s.len())),
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    let fields: Vec<&str> = match rest {
        "" => Vec::new(),
        r => r
            .strip_prefix(':')
            .ok_or_else(|| format!("{s:?}: junk after the host"))?
            .split(':')
            .collect(),
    };
    if fields.len() > 2 || fields.iter().any(|f| ruby_integer(f).is_none()) {
        return Err(format!("{s:?} is not HOST[:PORT[:WEIGHT]]"));
    }
    if host.starts_with('/') {
        // A UNIX socket: only a weight may follow the path.
        if fields.len() > 1 {
            return Err(format!("{s:?}: a socket path takes a weight, not a port"));
        }
        let w = match fields.first() {
            Some(f) => weight(f, ruby_integer)?,
            None => 1,
        };
        return Ok((host.to_owned(), w));
    }
    let port = match fields.first() {
        Some(p) => port_from(ruby_integer(p), p)?,
        None => DEFAULT_PORT,
    };
    let w = match fields.get(1) {
        Some(f) => weight(f, ruby_integer)?,
        None => 1,
    };
    Ok((format!("{host}:{port}"), w))
}

/// pymemcache's `normalize_server_spec` then `HashClient._make_client_key`.
fn parse_pymemcache(s: &str) -> Result<String, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        return Ok(path.to_owned());
    }
    if s.starts_with('/') {
        return Ok(s.to_owned());
    }
    let (host, port) = if !s.contains(':') || s.ends_with(']') {
        (s, DEFAULT_PORT)
    } else {
        let (h, p) = s.rsplit_once(':').unwrap_or((s, ""));
        // Python's int(): surrounding blanks, a '+', leading zeros are fine.
        let digits = p.trim();
        let digits = digits.strip_prefix('+').unwrap_or(digits);
        let n = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.trim_start_matches('0').parse::<u64>().unwrap_or(0));
        (h, port_from(n, p)?)
    };
    let host = if host.starts_with('[') {
        host.trim_matches(['[', ']'])
    } else {
        host
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    Ok(format!("{host}:{port}"))
}

/// libmemcached's `memcached_servers_parse` for one server: host (IPv6
/// brackets kept), port (0 or missing → 11211) and weight (missing → 1).
fn parse_ketama(s: &str) -> Result<(String, u16, u32), String> {
    let s = s.trim();
    let colon = match (s.find('['), s.find(']')) {
        (Some(open), Some(close)) if open < close => s[close..].find(':').map(|c| close + c),
        _ => s.find(':'),
    };
    let (host, rest) = match colon {
        Some(c) => (&s[..c], Some(&s[c + 1..])),
        None => (s, None),
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    let (mut port, mut w) = (DEFAULT_PORT, 1);
    if let Some(rest) = rest {
        let (p, wt) = match rest.find([' ', ':']) {
            Some(i) => (&rest[..i], Some(rest[i + 1..].trim())),
            None => (rest, None),
        };
        let n: u64 = p.parse().map_err(|_| format!("{p:?} is not a port"))?;
        if n != 0 {
            port = port_from(Some(n), p)?;
        }
        if let Some(wt) = wt {
            w = weight(wt, |x| x.parse().ok())?;
        }
    }
    Ok((host.to_owned(), port, w))
}

/// The key Dalli hashes: `"namespace:key"`, shortened to a prefix plus
/// `":md5:" + md5hex(key)` when over 250 characters (`KeyManager`).
fn dalli_key<'a>(key: &'a [u8], namespace: Option<&str>) -> Cow<'a, [u8]> {
    let full: Cow<[u8]> = match namespace {
        None => Cow::Borrowed(key),
        Some(ns) => {
            let mut k = Vec::with_capacity(ns.len() + 1 + key.len());
            k.extend_from_slice(ns.as_bytes());
            k.push(b':');
            k.extend_from_slice(key);
            Cow::Owned(k)
        }
    };
    // Ruby measures and slices a UTF-8 string in characters.
    let text = std::str::from_utf8(&full).ok();
    let length = text.map_or(full.len(), |t| t.chars().count());
    if length <= DALLI_MAX_KEY_LENGTH {
        return full;
    }
    let digest = hex(&Md5::digest(&full));
    let mut prefix_len = DALLI_TRUNCATED_TARGET - (DALLI_TRUNCATED_SEPARATOR.len() + digest.len());
    if namespace.is_some() {
        // "For historical reasons, truncated keys with namespaces had a
        // length of 250 rather than 249."
        prefix_len += 1;
    }
    let prefix_bytes = match text {
        Some(t) => t.char_indices().nth(prefix_len).map_or(t.len(), |(i, _)| i),
        None => prefix_len,
    };
    let mut k = full[..prefix_bytes].to_vec();
    k.extend_from_slice(DALLI_TRUNCATED_SEPARATOR.as_bytes());
    k.extend_from_slice(digest.as_bytes());
    Cow::Owned(k)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// pymemcache's `RendezvousHash.get_node`: the highest
/// `murmur3_32(f"{node}-{key}")`; on a tie, the greater node name.
fn pymemcache_node(nodes: &[String], key: &[u8]) -> usize {
    // pymemcache hashes a Python str by `ord(c)`, keeping the low 8 bits of
    // each character (every step is taken mod 2^32), so a non-ASCII key is
    // hashed one truncated byte per character, not as UTF-8.
    let key_units: Cow<[u8]> = match std::str::from_utf8(key) {
        Ok(s) if !s.is_ascii() => Cow::Owned(s.chars().map(|c| c as u32 as u8).collect()),
        _ => Cow::Borrowed(key),
    };
    let mut best: Option<(u32, usize)> = None;
    let mut buf = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        buf.clear();
        // The node name is ASCII in practice; hashed the same way as the key.
        match node.is_ascii() {
            true => buf.extend_from_slice(node.as_bytes()),
            false => buf.extend(node.chars().map(|c| c as u32 as u8)),
        }
        buf.push(b'-');
        buf.extend_from_slice(&key_units);
        let score = murmur3_32(&buf, 0);
        best = match best {
            None => Some((score, i)),
            Some((high, _)) if score > high => Some((score, i)),
            Some((high, w)) if score == high && nodes[i] > nodes[w] => Some((score, i)),
            keep => keep,
        };
    }
    best.map_or(0, |(_, i)| i)
}

/// MurmurHash3 x86_32.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k |= u32::from(b) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_is_not_part_of_the_address() {
        use DistributionKind::*;
        assert_eq!(address_of(Dalli, "m1:11211:2"), "m1:11211");
        assert_eq!(address_of(Ketama, "[::1]:11212:3"), "[::1]:11212");
        assert_eq!(address_of(Dalli, "m1:11211"), "m1:11211");
        assert_eq!(address_of(Dalli, "::1"), "::1");
        assert_eq!(address_of(Ketama, "fe80::1:2"), "fe80::1:2");
        // pymemcache and dnsenrich take no weights.
        assert_eq!(address_of(Pymemcache, "m1:11211:2"), "m1:11211:2");
        assert_eq!(address_of(Rendezvous, "m1:11211:2"), "m1:11211:2");
    }

    #[test]
    fn murmur3_matches_the_reference_vectors() {
        // Values from pymemcache's own murmur3_32 (and the canonical C code).
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        assert_eq!(
            murmur3_32(b"127.0.0.1:11211-domain-evil.example", 0),
            0xa8ee_1839
        );
    }

    #[test]
    fn murmur3_truncates_non_ascii_characters_as_pymemcache_does() {
        // pymemcache: murmur3_32("é") == 0x44c6d4b2 (ord 0xE9, one unit).
        let d = Distribution::pymemcache(&["a:1"]).unwrap();
        assert_eq!(murmur3_32(&[0xe9], 0), 0x44c6_d4b2);
        assert_eq!(d.server_for("é".as_bytes()), 0);
    }

    #[test]
    fn dalli_places_keys_as_dalli_ring_does() {
        // From Dalli 3.0.6: Dalli::Ring over these servers (weights 1, 2, 1),
        // server_for_hash_key(Zlib.crc32(key)).
        let servers = ["10.0.0.1:11211", "10.0.0.2:11211:2", "10.0.0.3:11212"];
        let d = Distribution::dalli(&servers, None).unwrap();
        let Distribution::Dalli {
            ring: Some(ring), ..
        } = &d
        else {
            panic!("no ring for three servers");
        };
        assert_eq!(ring.len(), 480);
        let keys = [
            "domain-evil.example",
            "ip-192.0.2.1",
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
        ];
        let want = [0, 1, 0, 1, 0, 1, 1, 1];
        let got: Vec<usize> = keys.iter().map(|k| d.server_for(k.as_bytes())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dalli_hashes_the_namespaced_and_truncated_key() {
        let servers = ["10.0.0.1:11211", "10.0.0.2:11211:2", "10.0.0.3:11212"];
        let plain = Distribution::dalli(&servers, None).unwrap();
        let ns = Distribution::dalli(&servers, Some("intel")).unwrap();
        // Dalli: "intel:domain-evil.example" and "intel:a" go to 10.0.0.2,
        // while the bare keys go to 10.0.0.1.
        assert_eq!(plain.server_for(b"domain-evil.example"), 0);
        assert_eq!(ns.server_for(b"domain-evil.example"), 1);
        assert_eq!(ns.server_for(b"a"), 1);
        // KeyManager#validate_key("x" * 300): 249 characters ending in
        // ":md5:8a4876ea55d998a5d91ed59db796af28"; with the namespace 250.
        let long = "x".repeat(300);
        let k = dalli_key(long.as_bytes(), None);
        assert_eq!(k.len(), 249);
        assert!(k.ends_with(b"xxx:md5:8a4876ea55d998a5d91ed59db796af28"));
        let k = dalli_key(long.as_bytes(), Some("intel"));
        assert_eq!(k.len(), 250);
        assert!(k.starts_with(b"intel:xxx"));
        assert!(k.ends_with(b"xxx:md5:99978b0ccc386cdcf512a9d18fa9c3e2"));
        assert_eq!(dalli_key(b"short", Some("ns")).as_ref(), b"ns:short");
    }

    #[test]
    fn dalli_does_not_hash_with_one_server() {
        let d = Distribution::dalli(&["10.0.0.1:11211"], Some("x")).unwrap();
        assert!(matches!(d, Distribution::Dalli { ring: None, .. }));
        assert_eq!(d.server_for(b"anything"), 0);
    }

    #[test]
    fn dalli_parses_server_strings_as_dalli_does() {
        let ok = |s: &str| parse_dalli(s).unwrap();
        assert_eq!(ok("cache1"), ("cache1:11211".into(), 1));
        assert_eq!(ok("cache1:11212"), ("cache1:11212".into(), 1));
        assert_eq!(ok("cache1:11212:3"), ("cache1:11212".into(), 3));
        assert_eq!(ok("[::1]:11212:2"), ("::1:11212".into(), 2));
        assert_eq!(ok("[::1]"), ("::1:11211".into(), 1));
        assert_eq!(
            ok("/run/memcached.sock:2"),
            ("/run/memcached.sock".into(), 2)
        );
        // Ruby's Integer("011212") reads octal.
        assert_eq!(ok("h:011212"), ("h:4746".into(), 1));
        assert_eq!(
            ok("memcached://u:p@cache1:11213"),
            ("cache1:11213".into(), 1)
        );
        assert_eq!(ok("memcached://cache1"), ("cache1:11211".into(), 1));
        for bad in [
            "", ":11211", "h:x", "h:1:2:3", "h:1:0", "h:70000", "[zz]:1", "/s:1:2", "h:09",
        ] {
            assert!(parse_dalli(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn pymemcache_places_keys_as_rendezvous_hash_does() {
        // From pymemcache 4.0.0: RendezvousHash(["10.0.0.1:11211", …]).get_node(key).
        let servers = ["10.0.0.1", "10.0.0.2:11211", "[10.0.0.3]:011211"];
        let d = Distribution::pymemcache(&servers).unwrap();
        let keys = [
            "domain-evil.example",
            "ip-192.0.2.1",
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
        ];
        let want = [2, 0, 2, 0, 2, 1, 1, 0];
        let got: Vec<usize> = keys.iter().map(|k| d.server_for(k.as_bytes())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pymemcache_parses_server_strings_as_normalize_server_spec_does() {
        let ok = |s: &str| parse_pymemcache(s).unwrap();
        assert_eq!(ok("cache1"), "cache1:11211");
        assert_eq!(ok("cache1:0011212"), "cache1:11212");
        assert_eq!(ok("[::1]:11212"), "::1:11212");
        assert_eq!(ok("[::1]"), "::1:11211");
        assert_eq!(ok("unix:/run/mc.sock"), "/run/mc.sock");
        assert_eq!(ok("/run/mc.sock"), "/run/mc.sock");
        for bad in ["", "h:", "h:x", "h:70000", ":11211"] {
            assert!(parse_pymemcache(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn ketama_places_keys_as_libmemcached_does() {
        // From libmemcached 1.0.18 through pylibmc 1.6.3 with
        // behaviors={"ketama_weighted": True}: the server a plain `get` found
        // each key on after `set`. Two servers on 11211 check that the port
        // is left out of their labels.
        let servers = ["127.0.0.1:11211", "127.0.0.2:11211:2", "127.0.0.3:21013"];
        let d = Distribution::ketama(&servers).unwrap();
        let Distribution::Ketama { ring } = &d else {
            panic!("not ketama");
        };
        assert_eq!(ring.len(), 480);
        let mut keys = vec!["domain-evil.example".to_owned(), "ip-192.0.2.1".to_owned()];
        keys.extend((0..14).map(|i| format!("k{i}")));
        let want = [1, 1, 0, 0, 1, 0, 2, 0, 0, 0, 1, 2, 0, 1, 0, 2];
        let got: Vec<usize> = keys.iter().map(|k| d.server_for(k.as_bytes())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ketama_gives_points_by_weight_in_float_as_hosts_cc_does() {
        // floor(w/Σw × 40 × n + 1e-10) × 4: 1/3 of 160 × 3 is 160 points each.
        let d = Distribution::ketama(&["a", "b", "c"]).unwrap();
        let Distribution::Ketama { ring } = &d else {
            panic!("not ketama");
        };
        assert_eq!(ring.len(), 480);
        let d = Distribution::ketama(&["a:1:1", "b:1:3"]).unwrap();
        let Distribution::Ketama { ring } = &d else {
            panic!("not ketama");
        };
        // 1/4 × 40 × 2 = 20 → 80 points; 3/4 × 40 × 2 = 60 → 240 points.
        assert_eq!(ring.len(), 320);
        assert_eq!(ring.points.iter().filter(|p| p.1 == 0).count(), 80);
    }

    #[test]
    fn ketama_parses_server_strings_as_memcached_servers_parse_does() {
        let ok = |s: &str| parse_ketama(s).unwrap();
        assert_eq!(ok("cache1"), ("cache1".into(), 11211, 1));
        assert_eq!(ok("cache1:0"), ("cache1".into(), 11211, 1));
        assert_eq!(ok("cache1:11212:4"), ("cache1".into(), 11212, 4));
        assert_eq!(ok("cache1:11212 4"), ("cache1".into(), 11212, 4));
        assert_eq!(ok("[::1]:11212"), ("[::1]".into(), 11212, 1));
        for bad in ["", ":1", "h:x", "h:1:x", "h:1:0", "h:70000"] {
            assert!(parse_ketama(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rendezvous_is_dnsenrichs_own_placement() {
        let servers = ["mc1:11211", "mc2", "[::1]:11212"];
        let d = Distribution::rendezvous(&servers).unwrap();
        let normal = ["mc1:11211", "mc2:11211", "[::1]:11212"];
        for i in 0..200 {
            let key = format!("domain-{i}.example");
            assert_eq!(d.server_for(key.as_bytes()), pick_server(&key, &normal));
        }
    }

    #[test]
    fn the_distributions_disagree_so_the_choice_matters() {
        let servers = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];
        let all: Vec<Distribution> = [
            DistributionKind::Dalli,
            DistributionKind::Pymemcache,
            DistributionKind::Ketama,
            DistributionKind::Rendezvous,
        ]
        .into_iter()
        .map(|k| Distribution::new(k, &servers).unwrap())
        .collect();
        let keys: Vec<String> = (0..300).map(|i| format!("domain-{i}.example")).collect();
        for (i, a) in all.iter().enumerate() {
            let mut spread = [0usize; 3];
            for k in &keys {
                spread[a.server_for(k.as_bytes())] += 1;
            }
            assert!(spread.iter().all(|&n| n > 50), "{:?}: {spread:?}", a.kind());
            for b in &all[i + 1..] {
                let same = keys
                    .iter()
                    .filter(|k| a.server_for(k.as_bytes()) == b.server_for(k.as_bytes()))
                    .count();
                assert!(
                    same < 200,
                    "{:?} and {:?} agree on {same}/300",
                    a.kind(),
                    b.kind()
                );
            }
        }
    }

    #[test]
    fn bad_server_lists_are_named_errors() {
        assert_eq!(
            Distribution::new::<&str>(DistributionKind::Dalli, &[]).unwrap_err(),
            DistributionError::NoServers
        );
        let e = Distribution::new(DistributionKind::Ketama, &["ok", "h:x"]).unwrap_err();
        assert!(
            matches!(e, DistributionError::BadServer { index: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("ketama"), "{e}");
    }

    #[test]
    fn kinds_read_from_configuration_by_name() {
        #[derive(serde::Deserialize)]
        struct C {
            distribution: DistributionKind,
        }
        let c: C = toml::from_str("distribution = \"pymemcache\"").unwrap();
        assert_eq!(c.distribution, DistributionKind::Pymemcache);
        assert!(toml::from_str::<C>("distribution = \"modula\"").is_err());
        assert_eq!(DistributionKind::default(), DistributionKind::Rendezvous);
    }
}
