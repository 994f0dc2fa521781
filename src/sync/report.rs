//! What a sync did: indicators read by source, type and feed, keys written,
//! and everything skipped with the reason. Its `Display` is the summary
//! `dnsenrich sync` prints at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::indicator::SkipReason;

/// The most feeds one key lists; beyond it further ones are dropped and
/// counted (an address such as a public resolver can sit in thousands of
/// events, and a memcached item is limited in size). Here because the report
/// says so; the collector applies it.
pub const MAX_FEEDS_PER_KEY: usize = 100;

/// Examples kept per skip reason, for an actionable summary.
const EXAMPLES_PER_REASON: usize = 3;

/// The outcome of one sync run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Indicators taken from each source, in the order read.
    pub sources: Vec<(String, u64)>,
    /// Indicators read, by source type (`domain`, `hostname`, `domain|ip`,
    /// `ip-dst`, `url`, …; list entries count as `domain` or `ip-dst`).
    pub by_type: BTreeMap<String, u64>,
    /// Indicators read, by feed name.
    pub by_feed: BTreeMap<String, u64>,
    /// Keys written, by key type (`domain`, `ip-dst`, `ip-src`).
    pub keys: BTreeMap<String, u64>,
    /// Keys written in all.
    pub written: u64,
    /// Of those, keys replaced by their hash (too long, or with spaces or
    /// control characters).
    pub hashed: u64,
    /// Feed references dropped because a key already listed the maximum.
    pub feeds_truncated: u64,
    /// Indicators (or parts of `domain|ip` pairs) not written, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// A few skipped values per reason.
    pub examples: BTreeMap<SkipReason, Vec<String>>,
    /// Where the keys went: `memcached 127.0.0.1:11211` or `file PATH`.
    pub target: String,
    /// The TTL every key got, in seconds (0 for a file).
    pub ttl_secs: u64,
    /// Items memcached evicted while the sync wrote (its memory is too small
    /// for the set), when known.
    pub evictions: Option<u64>,
    /// The whole run.
    pub elapsed: Duration,
    /// Of that, writing the keys.
    pub write_elapsed: Duration,
}

impl SyncReport {
    /// Indicators read from all sources.
    pub fn indicators(&self) -> u64 {
        self.by_type.values().sum()
    }

    /// Everything skipped, whatever the reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    pub(crate) fn skip(&mut self, reason: SkipReason, example: impl FnOnce() -> String) {
        *self.skipped.entry(reason).or_default() += 1;
        let ex = self.examples.entry(reason).or_default();
        if ex.len() < EXAMPLES_PER_REASON {
            let mut e = example();
            if e.len() > 80 {
                let mut cut = 77;
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.truncate(cut);
                e.push_str("...");
            }
            ex.push(e);
        }
    }
}

fn counts<'a, K: fmt::Display + 'a>(m: impl IntoIterator<Item = (K, &'a u64)>) -> String {
    let v: Vec<String> = m.into_iter().map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ttl = if self.ttl_secs > 0 {
            format!(" (ttl {}s)", self.ttl_secs)
        } else {
            String::new()
        };
        writeln!(
            f,
            "dnsenrich sync: {} indicators from {} source{} in {:.2}s; {} keys written to {}{ttl}",
            self.indicators(),
            self.sources.len(),
            if self.sources.len() == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64(),
            self.written,
            self.target,
        )?;
        writeln!(
            f,
            "  sources: {}",
            counts(self.sources.iter().map(|(s, n)| (s, n)))
        )?;
        writeln!(f, "  by type: {}", counts(&self.by_type))?;
        writeln!(f, "  by feed: {}", counts(&self.by_feed))?;
        write!(f, "  keys:    {}", counts(&self.keys))?;
        let w = self.write_elapsed.as_secs_f64();
        if w > 0.0 && self.written > 0 {
            write!(
                f,
                "; written in {w:.2}s ({:.0} keys/s)",
                self.written as f64 / w
            )?;
        }
        if self.hashed > 0 {
            write!(
                f,
                " ({} hashed: too long or with spaces/control characters)",
                self.hashed
            )?;
        }
        writeln!(f)?;
        if self.feeds_truncated > 0 {
            writeln!(
                f,
                "  {} feed references dropped: a key lists at most {} feeds",
                self.feeds_truncated, MAX_FEEDS_PER_KEY
            )?;
        }
        if let Some(e) = self.evictions.filter(|&e| e > 0) {
            writeln!(
                f,
                "  warning: memcached evicted {e} items during the sync; give it more memory (-m)"
            )?;
        }
        write!(f, "  skipped: {}", self.skipped_total())?;
        for (reason, n) in &self.skipped {
            write!(f, "\n    {reason}: {n}")?;
            if let Some(ex) = self.examples.get(reason).filter(|e| !e.is_empty()) {
                let quoted: Vec<String> = ex.iter().map(|e| format!("{e:?}")).collect();
                write!(f, " (e.g. {})", quoted.join(", "))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_counts_and_reasons() {
        let mut r = SyncReport {
            target: "memcached 127.0.0.1:11211".into(),
            ttl_secs: 1200,
            written: 2,
            ..SyncReport::default()
        };
        r.sources.push(("MISP https://misp.example".into(), 3));
        r.by_type.insert("domain".into(), 2);
        r.by_feed.insert("Feed-A".into(), 2);
        r.keys.insert("domain".into(), 2);
        for _ in 0..5 {
            r.skip(SkipReason::InvalidIp, || "not-an-ip".into());
        }
        let s = r.to_string();
        assert!(s.contains("2 indicators from 1 source"), "{s}");
        assert!(
            s.contains("2 keys written to memcached 127.0.0.1:11211 (ttl 1200s)"),
            "{s}"
        );
        assert!(s.contains("invalid ip: 5 (e.g. \"not-an-ip\""), "{s}");
        assert_eq!(
            r.examples[&SkipReason::InvalidIp].len(),
            EXAMPLES_PER_REASON
        );
    }
}
