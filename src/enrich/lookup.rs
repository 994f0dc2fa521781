//! One enrichment thread's work on a batch, in four passes:
//!
//! 1. **Keys.** Every rule's values of every event become keys (names
//!    normalised and walked to their parents); the batch keeps each distinct
//!    key once, in an arena, identified by its keyed hash.
//! 2. **Local answers.** The in-process store, then the negative cache, answer
//!    what they can.
//! 3. **Fetch.** The rest are claimed in the in-flight table; this thread sends
//!    the keys it owns (made safe) to memcached in one request per server, then
//!    waits, until the batch deadline, for keys other threads were fetching.
//! 4. **Results.** Each event gets its hits, `"none"`, or the not-enriched tag.
//!
//! Everything per batch is kept in buffers reused from batch to batch; the
//! only allocations on the common path (every key answered by the cache) are
//! for the hits written into events.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use smallvec::SmallVec;

use super::cache::{Cached, PreHashedBuild};
use super::inflight::{Claim, Outcome, OwnerGuard, Pending};
use super::memcached::FetchError;
use super::rules::{parents, Atom, Target};
use super::stats::BatchCounts;
use super::{Enricher, Shared};
use crate::event::{
    tag, Enrichment, EnrichmentFeed, Event, IndicatorUrl, Matched, Str, ThreatIndicator,
};
use crate::indicator::key::{compose, is_safe, normalize_name, safe_key};
use crate::indicator::value::{parse_value, FeedInfo, Indicator, ValueForm};
use crate::pipeline::EventBatch;

/// What is known about one distinct key of the batch. (Not
/// [`crate::event::Answer`], a DNS answer.)
#[derive(Debug, Clone)]
enum KeyState {
    Pending,
    Hit(Arc<Indicator>),
    Miss,
    Failed,
}

struct Slot {
    hash: u64,
    /// The key (without namespace) in the arena.
    key: (u32, u32),
    /// The value inside the key.
    value: (u32, u32),
    /// The first rule that asked for the key (any rule that rendered the same
    /// key composes the same wire key).
    rule: u16,
    state: KeyState,
}

/// The ECS `threat.indicator.type` of a looked-up value. (Not
/// [`crate::grammar::Kind`], a grammar field's kind.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndicatorType {
    Domain,
    Ipv4,
    Ipv6,
}

impl IndicatorType {
    fn ecs(self) -> &'static str {
        match self {
            IndicatorType::Domain => "domain-name",
            IndicatorType::Ipv4 => "ipv4-addr",
            IndicatorType::Ipv6 => "ipv6-addr",
        }
    }
}

/// One key wanted by one event: its rule, which of the rule's values it came
/// from (`atom`), and whether it is a parent of that value.
#[derive(Clone, Copy)]
struct Lookup {
    event: u32,
    rule: u16,
    atom: u16,
    slot: u32,
    parent: bool,
    kind: IndicatorType,
}

pub(crate) struct BatchEnricher {
    shared: Arc<Shared>,
    scratch: String,
    value: String,
    arena: String,
    slots: Vec<Slot>,
    index: HashMap<u64, u32, PreHashedBuild>,
    lookups: Vec<Lookup>,
    fetch: Vec<u32>,
}

/// Per event and target: what its lookups gave.
#[derive(Default, Clone)]
struct TargetState {
    looked: bool,
    failed: bool,
    feeds: SmallVec<[Str; 2]>,
}

impl BatchEnricher {
    pub fn new(shared: Arc<Shared>) -> Self {
        BatchEnricher {
            shared,
            scratch: String::with_capacity(300),
            value: String::with_capacity(64),
            arena: String::new(),
            slots: Vec::new(),
            index: HashMap::default(),
            lookups: Vec::new(),
            fetch: Vec::new(),
        }
    }

    /// The slot of the key `template(value)`, made if new.
    fn slot_for(&mut self, rule: usize, value: &str) -> u32 {
        let t = &self.shared.rules[rule].template;
        self.scratch.clear();
        t.render(value, &mut self.scratch);
        let hash = self.shared.hasher.hash(&self.scratch);
        if let Some(&s) = self.index.get(&hash) {
            return s;
        }
        let start = self.arena.len();
        self.arena.push_str(&self.scratch);
        let vstart = start + t.prefix().len();
        let id = self.slots.len() as u32;
        self.slots.push(Slot {
            hash,
            key: (start as u32, self.arena.len() as u32),
            value: (vstart as u32, (vstart + value.len()) as u32),
            rule: rule as u16,
            state: KeyState::Pending,
        });
        self.index.insert(hash, id);
        id
    }

    fn key(&self, s: &Slot) -> &str {
        &self.arena[s.key.0 as usize..s.key.1 as usize]
    }

    fn value(&self, s: &Slot) -> &str {
        &self.arena[s.value.0 as usize..s.value.1 as usize]
    }

    /// Pass 1: the keys of every event.
    fn collect(&mut self, events: &[Event]) {
        let shared = self.shared.clone();
        let mut atoms: SmallVec<[Atom<'_>; 4]> = SmallVec::new();
        for (ei, ev) in events.iter().enumerate() {
            let mut atom_no: u16 = 0;
            for (ri, rule) in shared.rules.iter().enumerate() {
                atoms.clear();
                rule.field.for_each(ev, |a| atoms.push(a));
                for a in &atoms {
                    atom_no = atom_no.wrapping_add(1);
                    let push = |this: &mut Self, value: &str, parent: bool, kind: IndicatorType| {
                        let slot = this.slot_for(ri, value);
                        this.lookups.push(Lookup {
                            event: ei as u32,
                            rule: ri as u16,
                            atom: atom_no,
                            slot,
                            parent,
                            kind,
                        });
                    };
                    match *a {
                        Atom::Name(n) => {
                            let norm = normalize_name(n);
                            if norm.is_empty() {
                                continue;
                            }
                            push(self, &norm, false, IndicatorType::Domain);
                            if shared.parent_domains {
                                for p in parents(&norm) {
                                    push(self, p, true, IndicatorType::Domain);
                                }
                            }
                        }
                        Atom::Ip(ip) => {
                            let mut v = std::mem::take(&mut self.value);
                            v.clear();
                            let _ = write!(v, "{ip}");
                            let kind = if ip.is_ipv4() {
                                IndicatorType::Ipv4
                            } else {
                                IndicatorType::Ipv6
                            };
                            push(self, &v, false, kind);
                            self.value = v;
                        }
                    }
                }
            }
        }
    }

    /// Pass 2: the store and the cache.
    fn answer_locally(&mut self, c: &mut BatchCounts) {
        let shared = self.shared.clone();
        let store = shared.store.as_ref().map(|s| s.snapshot());
        let now = shared.cache.as_ref().map_or(0, |c| c.now());
        for id in 0..self.slots.len() {
            c.lookups += 1;
            let slot = &self.slots[id];
            if let Some(store) = &store {
                let key = self.key(slot);
                let found = if is_safe(key) {
                    store.get(key)
                } else {
                    store.get(safe_key(key).as_str())
                };
                if let Some(ind) = found {
                    c.store_hits += 1;
                    self.slots[id].state = KeyState::Hit(ind.clone());
                    continue;
                }
                c.store_misses += 1;
            }
            let answer = match (&shared.memcached, &shared.cache) {
                (None, _) => KeyState::Miss,
                (Some(_), None) => KeyState::Pending,
                (Some(_), Some(cache)) => match cache.get(slot.hash, now) {
                    Some(Cached::Hit(i)) => KeyState::Hit(i),
                    Some(Cached::Miss) => KeyState::Miss,
                    None => KeyState::Pending,
                },
            };
            if shared.memcached.is_some() {
                if matches!(answer, KeyState::Pending) {
                    c.cache_misses += 1;
                    self.fetch.push(id as u32);
                } else {
                    c.cache_hits += 1;
                }
            }
            self.slots[id].state = answer;
        }
    }

    /// Pass 3: memcached, once per key across threads.
    fn fetch_remote(&mut self, c: &mut BatchCounts) {
        let shared = self.shared.clone();
        if shared.memcached.is_none() || self.fetch.is_empty() {
            return;
        }
        let deadline = Instant::now() + shared.timeout;
        let now = shared.cache.as_ref().map_or(0, |c| c.now());
        let (owned, waiting) = self.claim(&shared, now);
        if !owned.is_empty() {
            self.fetch_owned(&shared, owned, now, c);
        }
        for (id, p) in waiting {
            c.inflight_waits += 1;
            self.slots[id as usize].state = match p.wait(deadline) {
                Outcome::Found(Some(i)) => KeyState::Hit(i),
                Outcome::Found(None) => KeyState::Miss,
                Outcome::Failed => {
                    if Instant::now() >= deadline {
                        c.memcached_timeouts += 1;
                    }
                    KeyState::Failed
                }
            };
        }
    }

    /// Claims every key to fetch in the in-flight table: the ones this thread
    /// now owns, and the ones another thread is fetching.
    #[allow(clippy::type_complexity)]
    fn claim<'s>(
        &mut self,
        shared: &'s Shared,
        now: u32,
    ) -> (Vec<(u32, OwnerGuard<'s>)>, Vec<(u32, Arc<Pending>)>) {
        let mut owned = Vec::new();
        let mut waiting = Vec::new();
        for &id in &self.fetch {
            let hash = self.slots[id as usize].hash;
            match shared.inflight.claim(hash) {
                Claim::Owner(g) => {
                    // Another thread may have fetched and released the key
                    // between our cache look-up and the claim.
                    match shared.cache.as_ref().and_then(|c| c.get(hash, now)) {
                        Some(Cached::Hit(i)) => {
                            g.complete(Outcome::Found(Some(i.clone())));
                            self.slots[id as usize].state = KeyState::Hit(i);
                        }
                        Some(Cached::Miss) => {
                            g.complete(Outcome::Found(None));
                            self.slots[id as usize].state = KeyState::Miss;
                        }
                        None => owned.push((id, g)),
                    }
                }
                Claim::Waiter(p) => waiting.push((id, p)),
            }
        }
        (owned, waiting)
    }

    /// Asks memcached for the keys this thread owns, and hands each answer to
    /// the threads waiting for it.
    fn fetch_owned(
        &mut self,
        shared: &Shared,
        owned: Vec<(u32, OwnerGuard<'_>)>,
        now: u32,
        c: &mut BatchCounts,
    ) {
        let Some(mc) = &shared.memcached else { return };
        let wire: Vec<String> = owned
            .iter()
            .map(|(id, _)| {
                let slot = &self.slots[*id as usize];
                let template = &shared.rules[slot.rule as usize].template;
                let sk = compose(shared.namespace.as_deref(), template, self.value(slot));
                c.unsafe_keys_hashed += u64::from(sk.is_hashed());
                sk.into_string()
            })
            .collect();
        let keys: Vec<&str> = wire.iter().map(String::as_str).collect();
        let (results, requests) = mc.fetch(&keys);
        c.memcached_requests += requests;
        c.memcached_keys += keys.len() as u64;
        for ((id, guard), r) in owned.into_iter().zip(results) {
            let slot = &mut self.slots[id as usize];
            let (state, cached, outcome) = match r {
                Ok(Some(bytes)) => {
                    let ind = Arc::new(parse_value(&bytes));
                    c.memcached_hits += 1;
                    c.malformed_values += u64::from(ind.form == ValueForm::Malformed);
                    let found = Outcome::Found(Some(ind.clone()));
                    (KeyState::Hit(ind.clone()), Some(Cached::Hit(ind)), found)
                }
                Ok(None) => {
                    c.memcached_misses += 1;
                    (KeyState::Miss, Some(Cached::Miss), Outcome::Found(None))
                }
                Err(e) => {
                    match e {
                        FetchError::Down => c.memcached_down += 1,
                        FetchError::Timeout => c.memcached_timeouts += 1,
                        FetchError::Io => c.memcached_errors += 1,
                    }
                    // A failure is never cached: the next batch asks again.
                    (KeyState::Failed, None, Outcome::Failed)
                }
            };
            if let (Some(cache), Some(cached)) = (&shared.cache, cached) {
                cache.insert(slot.hash, cached, now);
            }
            guard.complete(outcome);
            slot.state = state;
        }
    }

    /// Pass 4: write what was found into the events.
    fn apply(&self, events: &mut [Event], c: &mut BatchCounts) {
        let shared = &self.shared;
        // One time for the batch: its matches are made together.
        let occurred = chrono::Utc::now();
        let mut states: SmallVec<[TargetState; 2]> =
            SmallVec::from_elem(TargetState::default(), shared.targets.len());
        for per_event in self.lookups.chunk_by(|a, b| a.event == b.event) {
            let ev = &mut events[per_event[0].event as usize];
            for s in states.iter_mut() {
                *s = TargetState::default();
            }
            let mut failed = false;
            for group in group_lookups(per_event) {
                let rule = &shared.rules[group[0].rule as usize];
                let st = &mut states[rule.target];
                st.looked = true;
                let (winner, group_failed) = self.winner(group);
                st.failed |= group_failed;
                failed |= group_failed;
                let Some((l, ind)) = winner else { continue };
                let value = self.value(&self.slots[l.slot as usize]);
                for feed in &ind.feeds {
                    let e = enrichment_for(shared, l, rule.field.name(), value, feed, occurred);
                    if !ev.threat.enrichments.contains(&e) {
                        ev.threat.enrichments.push(e);
                    }
                    ev.threat.feed.name.add(&feed.name);
                    if !st.feeds.iter().any(|f| *f == feed.name) {
                        st.feeds.push(Str::from(&feed.name));
                    }
                }
            }
            self.finish_event(ev, &states, failed, c);
        }
    }

    /// The nearest hit of one group (exact first, then parents, nearest
    /// first), and whether any of its keys failed. A failed key makes the
    /// event not enriched even when another key of the group hit: an outage
    /// is not a clean miss, and what failed might have been a nearer match.
    fn winner<'l>(&self, group: &'l [Lookup]) -> (Option<(&'l Lookup, &Arc<Indicator>)>, bool) {
        let mut winner = None;
        let mut failed = false;
        for l in group {
            match &self.slots[l.slot as usize].state {
                KeyState::Hit(i) if winner.is_none() => winner = Some((l, i)),
                KeyState::Failed | KeyState::Pending => failed = true,
                _ => {}
            }
        }
        (winner, failed)
    }

    /// Writes each target's feeds, or the none value where every lookup of
    /// the target was a clean miss, tags an event with a failed lookup, and
    /// counts the event.
    fn finish_event(
        &self,
        ev: &mut Event,
        states: &[TargetState],
        failed: bool,
        c: &mut BatchCounts,
    ) {
        let shared = &self.shared;
        let mut none = false;
        for (t, st) in shared.targets.iter().zip(states.iter()) {
            if !st.feeds.is_empty() {
                write_target(ev, *t, &st.feeds);
            } else if st.looked && !st.failed {
                if let Some(nv) = &shared.none_value {
                    write_target(ev, *t, std::slice::from_ref(nv));
                    none = true;
                }
            }
        }
        if failed {
            ev.tag(tag::NOT_ENRICHED);
            c.events_not_enriched += 1;
        }
        if !ev.threat.feed.name.is_empty() {
            c.events_enriched += 1;
            for f in ev.threat.feed.name.iter() {
                c.feed_hit(f);
            }
        } else if none {
            c.events_none += 1;
        }
    }
}

/// One event's lookups in groups of one (rule, value) each: the exact key
/// first, then its parents, nearest first (the order pass 1 pushed them in).
fn group_lookups(per_event: &[Lookup]) -> impl Iterator<Item = &[Lookup]> {
    per_event.chunk_by(|a, b| a.rule == b.rule && a.atom == b.atom)
}

/// The ECS enrichment for a hit of `l` on `value`, from one of its feeds.
fn enrichment_for(
    shared: &Shared,
    l: &Lookup,
    field: &'static str,
    value: &str,
    feed: &FeedInfo,
    occurred: chrono::DateTime<chrono::Utc>,
) -> Enrichment {
    Enrichment {
        feed: EnrichmentFeed {
            name: Some(Str::from(&feed.name)),
        },
        indicator: ThreatIndicator {
            type_: l.kind.ecs(),
            provider: Some(
                feed.provider
                    .as_deref()
                    .map_or_else(|| shared.provider.clone(), Str::from),
            ),
            description: feed.event_info.as_deref().map(Str::from),
            first_seen: feed.first_seen.as_deref().map(Str::from),
            last_seen: feed.last_seen.as_deref().map(Str::from),
            ip: match l.kind {
                IndicatorType::Domain => None,
                _ => value.parse::<IpAddr>().ok(),
            },
            url: IndicatorUrl {
                domain: (l.kind == IndicatorType::Domain).then(|| Str::from(value)),
            },
        },
        matched: Matched {
            atomic: Str::from(value),
            field,
            type_: if l.parent { "parent_domain" } else { "exact" },
            occurred: Some(occurred),
        },
    }
}

fn write_target(ev: &mut Event, t: Target, feeds: &[Str]) {
    match t {
        Target::MispSrc => feeds.iter().for_each(|f| ev.misp_src.add(f)),
        Target::Label(name) => {
            let mut joined = String::new();
            for (i, f) in feeds.iter().enumerate() {
                if i > 0 {
                    joined.push(',');
                }
                joined.push_str(f);
            }
            ev.labels.set(name, &joined);
        }
    }
}

impl Enricher for BatchEnricher {
    fn enrich(&mut self, batch: &mut EventBatch) {
        self.arena.clear();
        self.slots.clear();
        self.index.clear();
        self.lookups.clear();
        self.fetch.clear();
        let mut counts = BatchCounts {
            events: batch.events.len() as u64,
            ..Default::default()
        };
        self.collect(&batch.events);
        if !self.slots.is_empty() {
            self.answer_locally(&mut counts);
            self.fetch_remote(&mut counts);
            self.apply(&mut batch.events, &mut counts);
        }
        self.shared.stats.record(counts);
        // A flood of unique names must not keep a huge arena alive.
        if self.arena.capacity() > 4 << 20 {
            self.arena = String::new();
            self.slots = Vec::new();
            self.index = HashMap::default();
            self.lookups = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    //! Pass 4 on hand-set key states: what an event gets when its keys hit,
    //! miss cleanly, fail or were never answered.
    use super::*;
    use crate::enrich::EnrichConfig;
    use serde_json::Value;

    /// An enricher whose memcached is never reached (the states are set by
    /// hand), with the default rules and parent domains on.
    fn enricher() -> BatchEnricher {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let stage = EnrichConfig {
            memcached: vec![closed.to_string()],
            ..Default::default()
        }
        .build()
        .unwrap();
        BatchEnricher::new(stage.shared.clone().unwrap())
    }

    fn query(name: &str) -> Event {
        let mut ev = Event::default();
        ev.dns.question.name = Some(Str::from(name));
        ev
    }

    /// Runs passes 1 and 4, with each key's state set by `state(key)`.
    fn apply(names: &[&str], state: impl Fn(&str) -> KeyState) -> (Vec<Value>, BatchCounts) {
        let mut b = enricher();
        let mut events: Vec<Event> = names.iter().map(|n| query(n)).collect();
        b.collect(&events);
        for i in 0..b.slots.len() {
            let s = state(b.key(&b.slots[i]));
            b.slots[i].state = s;
        }
        let mut c = BatchCounts::default();
        b.apply(&mut events, &mut c);
        let docs = events
            .iter()
            .map(|e| serde_json::from_str(&e.to_json()).unwrap())
            .collect();
        (docs, c)
    }

    fn hit(feed: &str) -> KeyState {
        KeyState::Hit(Arc::new(Indicator::in_feed(feed)))
    }

    fn not_enriched(d: &Value) -> bool {
        d["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == tag::NOT_ENRICHED))
    }

    #[test]
    fn a_clean_miss_is_none_and_a_hit_names_its_feed() {
        let (d, c) = apply(&["clean.example", "evil.example"], |k| {
            if k == "domain-evil.example" {
                hit("Feed-A")
            } else {
                KeyState::Miss
            }
        });
        assert_eq!(d[0]["misp_src"], "none");
        assert!(!not_enriched(&d[0]));
        assert_eq!(d[1]["misp_src"], "Feed-A");
        assert_eq!(d[1]["threat"]["enrichments"][0]["matched"]["type"], "exact");
        assert_eq!((c.events_none, c.events_enriched), (1, 1));
        assert_eq!(c.events_not_enriched, 0);
    }

    #[test]
    fn an_outage_is_not_a_clean_miss() {
        for state in [KeyState::Failed, KeyState::Pending] {
            let (d, c) = apply(&["a.evil.example"], |_| state.clone());
            assert!(d[0].get("misp_src").is_none(), "no \"none\": {}", d[0]);
            assert!(not_enriched(&d[0]), "{}", d[0]);
            assert_eq!((c.events_none, c.events_not_enriched), (0, 1));
        }
        // One parent failing is enough: it might have been the match.
        let (d, _) = apply(&["a.evil.example"], |k| {
            if k == "domain-evil.example" {
                KeyState::Failed
            } else {
                KeyState::Miss
            }
        });
        assert!(d[0].get("misp_src").is_none(), "{}", d[0]);
        assert!(not_enriched(&d[0]));
    }

    #[test]
    fn the_nearest_hit_wins_and_a_failure_beside_it_still_tags() {
        let (d, c) = apply(&["a.b.evil.example"], |k| match k {
            "domain-b.evil.example" => hit("Near"),
            "domain-evil.example" => hit("Far"),
            _ => KeyState::Miss,
        });
        assert_eq!(d[0]["misp_src"], "Near");
        let m = &d[0]["threat"]["enrichments"][0]["matched"];
        assert_eq!(m["type"], "parent_domain");
        assert_eq!(m["atomic"], "b.evil.example");
        assert_eq!(c.events_not_enriched, 0);

        let (d, c) = apply(&["a.evil.example"], |k| match k {
            "domain-a.evil.example" => KeyState::Failed,
            _ => hit("Parent"),
        });
        assert_eq!(d[0]["misp_src"], "Parent");
        assert!(not_enriched(&d[0]));
        assert_eq!((c.events_enriched, c.events_not_enriched), (1, 1));
    }

    #[test]
    fn lookups_group_by_rule_and_value() {
        let mut b = enricher();
        let events = [query("a.one.example"), query("two.example")];
        b.collect(&events);
        let per_event: Vec<&[Lookup]> = b.lookups.chunk_by(|a, b| a.event == b.event).collect();
        assert_eq!(per_event.len(), 2);
        let groups: Vec<Vec<&str>> = group_lookups(per_event[0])
            .map(|g| g.iter().map(|l| b.key(&b.slots[l.slot as usize])).collect())
            .collect();
        assert_eq!(groups, [["domain-a.one.example", "domain-one.example"]]);
        assert!(!per_event[0][0].parent && per_event[0][1].parent);
    }
}
