//! How old the indicators in memcached are. `dnsenrich sync` writes one small
//! status key next to the indicators, with the same TTL:
//!
//! ```text
//! [<namespace>:]dnsenrich-sync-status  →  {"v":1,"synced_at":1764680000,"ttl_secs":86400,"keys":15234}
//! ```
//!
//! `run` reads it now and then: its age is exported as a metric, and when it
//! has gone (it expires with the keys it describes) the indicators have too.
//! Keys written by other tools (MISP scripts, Logstash set-ups) come without
//! one; then their freshness is unknown, and `run` says so once.

use serde::{Deserialize, Serialize};

use super::key::{self, KeyShape, SafeKey};

/// The status key's name, after the namespace.
pub const STATUS_KEY: &str = "dnsenrich-sync-status";

struct Status;

impl KeyShape for Status {
    fn render(&self, _value: &str, out: &mut String) {
        out.push_str(STATUS_KEY);
    }
}

/// The status key under `namespace`.
pub fn status_key(namespace: Option<&str>) -> SafeKey {
    key::compose(namespace, &Status, "")
}

/// What one sync run wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Format version.
    pub v: u32,
    /// When the run finished writing, in seconds since the epoch.
    pub synced_at: i64,
    /// The TTL the keys were written with.
    pub ttl_secs: u64,
    /// How many keys the run wrote.
    pub keys: u64,
}

impl SyncStatus {
    /// A status for a run finishing now.
    pub fn now(ttl_secs: u64, keys: u64) -> SyncStatus {
        SyncStatus {
            v: 1,
            synced_at: chrono::Utc::now().timestamp(),
            ttl_secs,
            keys,
        }
    }

    /// The value to store.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a plain struct serialises")
    }

    /// A stored value, if it is one this version understands.
    pub fn parse(bytes: &[u8]) -> Option<SyncStatus> {
        serde_json::from_slice::<SyncStatus>(bytes)
            .ok()
            .filter(|s| s.v == 1)
    }

    /// Seconds since the run, at `now` (epoch seconds); never negative.
    pub fn age_secs(&self, now: i64) -> u64 {
        now.saturating_sub(self.synced_at).max(0) as u64
    }

    /// Seconds until the keys expire, at `now`; 0 once they have.
    pub fn expires_in_secs(&self, now: i64) -> u64 {
        self.ttl_secs.saturating_sub(self.age_secs(now))
    }

    /// Whether less than a quarter of the TTL is left at `now`: time to say
    /// that nothing seems to be refreshing the indicators.
    pub fn running_out(&self, now: i64) -> bool {
        self.expires_in_secs(now) < self.ttl_secs / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_ages() {
        let s = SyncStatus {
            v: 1,
            synced_at: 1_000,
            ttl_secs: 400,
            keys: 7,
        };
        assert_eq!(SyncStatus::parse(&s.to_bytes()), Some(s));
        assert_eq!(s.age_secs(1_100), 100);
        assert_eq!(s.expires_in_secs(1_100), 300);
        assert!(!s.running_out(1_250));
        assert!(s.running_out(1_350));
        assert_eq!(s.expires_in_secs(9_999), 0);
        assert_eq!(s.age_secs(900), 0, "a clock behind the writer's");
        assert_eq!(SyncStatus::parse(b"Feed-X"), None);
        assert_eq!(
            SyncStatus::parse(br#"{"v":2,"synced_at":1,"ttl_secs":1,"keys":1}"#),
            None
        );
    }

    #[test]
    fn the_key_sits_behind_the_namespace() {
        assert_eq!(status_key(None).as_str(), "dnsenrich-sync-status");
        assert_eq!(
            status_key(Some("misp")).as_str(),
            "misp:dnsenrich-sync-status"
        );
    }
}
