//! The status of a transaction, one-to-one with Pi-hole FTL's query status
//! (`enum query_status` in FTL's `src/enums.h`; the numbers are FTL's, as
//! stored in the `queries.status` column of its database).

use std::net::IpAddr;

use super::{all_unspecified, Seen};

/// FTL's query status. [`Status::name`] is written to `event.action` and
/// `dnsmasq.status`, [`Status::code`] to `dnsmasq.status_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: no answer line was seen.
    Unknown,
    /// 1: `gravity blocked NAME is ...`
    Gravity,
    /// 2: `forwarded NAME to SRV`, then its reply.
    Forwarded,
    /// 3: answered by dnsmasq itself: `cached`, `config` (local=/address=),
    /// a hosts file, DHCP, an auth zone, Pi-hole's own names.
    Cache,
    /// 4: `regex denied` (v5: `regex blacklisted`).
    Regex,
    /// 5: `exactly denied` (v5: `exactly blacklisted`).
    Denylist,
    /// 6: `blocked upstream with known address`.
    ExternalBlockedIp,
    /// 7: `blocked upstream with NULL address`, or an upstream reply that is
    /// only 0.0.0.0 / ::.
    ExternalBlockedNull,
    /// 8: `blocked upstream with NXRA address`.
    ExternalBlockedNxra,
    /// 9: `gravity blocked (CNAME)`, and `reply NAME is blocked during CNAME
    /// inspection` (the log line does not say which list; gravity is assumed).
    GravityCname,
    /// 10: `regex denied (CNAME)`.
    RegexCname,
    /// 11: `exactly denied (CNAME)`.
    DenylistCname,
    /// 12: forwarded more than once.
    Retried,
    /// 13: `dnssec-retry[...]`.
    RetriedDnssec,
    /// 14: answered from another client's query in flight (`reply query is
    /// duplicate`, or the same name asked twice and forwarded once).
    InProgress,
    /// 15: `to be blocked|refused (gravity database is not available)`;
    /// `Rate-limiting NAME is ...` is counted here too.
    DbBusy,
    /// 16: `special domain`, `Mozilla canary domain`, `Apple iCloud Private
    /// Relay domain`, `Designated Resolver domain`.
    SpecialDomain,
    /// 17: `cached-stale NAME is ...`.
    CacheStale,
    /// 18: `blocked upstream with EDE15`.
    ExternalBlockedEde15,
}

impl Status {
    pub const COUNT: usize = 19;

    pub const ALL: [Status; Status::COUNT] = [
        Status::Unknown,
        Status::Gravity,
        Status::Forwarded,
        Status::Cache,
        Status::Regex,
        Status::Denylist,
        Status::ExternalBlockedIp,
        Status::ExternalBlockedNull,
        Status::ExternalBlockedNxra,
        Status::GravityCname,
        Status::RegexCname,
        Status::DenylistCname,
        Status::Retried,
        Status::RetriedDnssec,
        Status::InProgress,
        Status::DbBusy,
        Status::SpecialDomain,
        Status::CacheStale,
        Status::ExternalBlockedEde15,
    ];

    /// FTL's number.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// FTL's enum name in lower case.
    pub fn name(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Gravity => "gravity",
            Status::Forwarded => "forwarded",
            Status::Cache => "cache",
            Status::Regex => "regex",
            Status::Denylist => "denylist",
            Status::ExternalBlockedIp => "external_blocked_ip",
            Status::ExternalBlockedNull => "external_blocked_null",
            Status::ExternalBlockedNxra => "external_blocked_nxra",
            Status::GravityCname => "gravity_cname",
            Status::RegexCname => "regex_cname",
            Status::DenylistCname => "denylist_cname",
            Status::Retried => "retried",
            Status::RetriedDnssec => "retried_dnssec",
            Status::InProgress => "in_progress",
            Status::DbBusy => "dbbusy",
            Status::SpecialDomain => "special_domain",
            Status::CacheStale => "cache_stale",
            Status::ExternalBlockedEde15 => "external_blocked_ede15",
        }
    }

    /// Whether Pi-hole (or its upstream) blocked the query.
    pub fn is_blocked(self) -> bool {
        matches!(
            self,
            Status::Gravity
                | Status::Regex
                | Status::Denylist
                | Status::ExternalBlockedIp
                | Status::ExternalBlockedNull
                | Status::ExternalBlockedNxra
                | Status::GravityCname
                | Status::RegexCname
                | Status::DenylistCname
                | Status::DbBusy
                | Status::SpecialDomain
                | Status::ExternalBlockedEde15
        )
    }

    /// The status a Pi-hole reason line (`rule.name`) stands for.
    pub fn of_block(rule_name: Option<&str>) -> Status {
        match rule_name.unwrap_or("") {
            "gravity blocked" => Status::Gravity,
            "gravity blocked (CNAME)" | "blocked during CNAME inspection" => Status::GravityCname,
            "regex denied" | "regex blacklisted" => Status::Regex,
            "regex denied (CNAME)" => Status::RegexCname,
            "exactly denied" | "exactly blacklisted" => Status::Denylist,
            "exactly denied (CNAME)" => Status::DenylistCname,
            "blocked upstream with known address" => Status::ExternalBlockedIp,
            "blocked upstream with NULL address" => Status::ExternalBlockedNull,
            "blocked upstream with NXRA address" => Status::ExternalBlockedNxra,
            "blocked upstream with EDE15" => Status::ExternalBlockedEde15,
            "special domain"
            | "Mozilla canary domain"
            | "Apple iCloud Private Relay domain"
            | "Designated Resolver domain" => Status::SpecialDomain,
            n if n.starts_with("to be ") || n.starts_with("Rate-limiting") => Status::DbBusy,
            _ => Status::Gravity,
        }
    }

    /// The status of a finished transaction from what its lines showed.
    pub(super) fn decide(seen: &Seen, forwards: u32, ips: &[IpAddr], answered: bool) -> Status {
        if let Some(b) = seen.blocked {
            return b;
        }
        if seen.duplicate {
            return Status::InProgress;
        }
        if seen.stale {
            return Status::CacheStale;
        }
        if forwards > 0 || seen.reply {
            if seen.dnssec_retry {
                return Status::RetriedDnssec;
            }
            if forwards > 1 {
                return Status::Retried;
            }
            if answered && all_unspecified(ips) {
                return Status::ExternalBlockedNull;
            }
            return Status::Forwarded;
        }
        if seen.cache {
            return Status::Cache;
        }
        Status::Unknown
    }
}
