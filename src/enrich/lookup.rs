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
use crate::event::{tag, Enrichment, Event, IndicatorUrl, Matched, Str, ThreatIndicator};
use crate::indicator::key::{compose, is_safe, normalize_name, safe_key};
use crate::indicator::value::{parse_value, Indicator, ValueForm};
use crate::pipeline::EventBatch;

/// What is known about one distinct key of the batch.
#[derive(Debug, Clone)]
enum Answer {
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
    answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Domain,
    Ipv4,
    Ipv6,
}

impl Kind {
    fn ecs(self) -> &'static str {
        match self {
            Kind::Domain => "domain-name",
            Kind::Ipv4 => "ipv4-addr",
            Kind::Ipv6 => "ipv6-addr",
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
    kind: Kind,
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
            answer: Answer::Pending,
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
                    let push = |this: &mut Self, value: &str, parent: bool, kind: Kind| {
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
                            push(self, &norm, false, Kind::Domain);
                            if shared.parent_domains {
                                for p in parents(&norm) {
                                    push(self, p, true, Kind::Domain);
                                }
                            }
                        }
                        Atom::Ip(ip) => {
                            let mut v = std::mem::take(&mut self.value);
                            v.clear();
                            let _ = write!(v, "{ip}");
                            let kind = if ip.is_ipv4() { Kind::Ipv4 } else { Kind::Ipv6 };
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
                    self.slots[id].answer = Answer::Hit(ind.clone());
                    continue;
                }
                c.store_misses += 1;
            }
            let answer = match (&shared.memcached, &shared.cache) {
                (None, _) => Answer::Miss,
                (Some(_), None) => Answer::Pending,
                (Some(_), Some(cache)) => match cache.get(slot.hash, now) {
                    Some(Cached::Hit(i)) => Answer::Hit(i),
                    Some(Cached::Miss) => Answer::Miss,
                    None => Answer::Pending,
                },
            };
            if shared.memcached.is_some() {
                if matches!(answer, Answer::Pending) {
                    c.cache_misses += 1;
                    self.fetch.push(id as u32);
                } else {
                    c.cache_hits += 1;
                }
            }
            self.slots[id].answer = answer;
        }
    }

    /// Pass 3: memcached, once per key across threads.
    fn fetch_remote(&mut self, c: &mut BatchCounts) {
        let shared = self.shared.clone();
        let Some(mc) = &shared.memcached else { return };
        if self.fetch.is_empty() {
            return;
        }
        let deadline = Instant::now() + shared.timeout;
        let now = shared.cache.as_ref().map_or(0, |c| c.now());
        let mut owned: Vec<(u32, OwnerGuard<'_>)> = Vec::new();
        let mut waiting: Vec<(u32, Arc<Pending>)> = Vec::new();
        for &id in &self.fetch {
            let hash = self.slots[id as usize].hash;
            match shared.inflight.claim(hash) {
                Claim::Owner(g) => {
                    // Another thread may have fetched and released the key
                    // between our cache look-up and the claim.
                    match shared.cache.as_ref().and_then(|c| c.get(hash, now)) {
                        Some(Cached::Hit(i)) => {
                            g.complete(Outcome::Found(Some(i.clone())));
                            self.slots[id as usize].answer = Answer::Hit(i);
                        }
                        Some(Cached::Miss) => {
                            g.complete(Outcome::Found(None));
                            self.slots[id as usize].answer = Answer::Miss;
                        }
                        None => owned.push((id, g)),
                    }
                }
                Claim::Waiter(p) => waiting.push((id, p)),
            }
        }
        if !owned.is_empty() {
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
                let answer = match r {
                    Ok(Some(bytes)) => {
                        let ind = Arc::new(parse_value(&bytes));
                        c.memcached_hits += 1;
                        c.malformed_values += u64::from(ind.form == ValueForm::Malformed);
                        if let Some(cache) = &shared.cache {
                            cache.insert(slot.hash, Cached::Hit(ind.clone()), now);
                        }
                        guard.complete(Outcome::Found(Some(ind.clone())));
                        Answer::Hit(ind)
                    }
                    Ok(None) => {
                        c.memcached_misses += 1;
                        if let Some(cache) = &shared.cache {
                            cache.insert(slot.hash, Cached::Miss, now);
                        }
                        guard.complete(Outcome::Found(None));
                        Answer::Miss
                    }
                    Err(e) => {
                        match e {
                            FetchError::Down => c.memcached_down += 1,
                            FetchError::Timeout => c.memcached_timeouts += 1,
                            FetchError::Io => c.memcached_errors += 1,
                        }
                        guard.complete(Outcome::Failed);
                        Answer::Failed
                    }
                };
                slot.answer = answer;
            }
        }
        for (id, p) in waiting {
            c.inflight_waits += 1;
            self.slots[id as usize].answer = match p.wait(deadline) {
                Outcome::Found(Some(i)) => Answer::Hit(i),
                Outcome::Found(None) => Answer::Miss,
                Outcome::Failed => {
                    if Instant::now() >= deadline {
                        c.memcached_timeouts += 1;
                    }
                    Answer::Failed
                }
            };
        }
    }

    /// Pass 4: write what was found into the events.
    fn apply(&self, events: &mut [Event], c: &mut BatchCounts) {
        let shared = &self.shared;
        let mut states: SmallVec<[TargetState; 2]> =
            SmallVec::from_elem(TargetState::default(), shared.targets.len());
        let mut j = 0;
        while j < self.lookups.len() {
            let ei = self.lookups[j].event;
            let ev = &mut events[ei as usize];
            for s in states.iter_mut() {
                s.looked = false;
                s.failed = false;
                s.feeds.clear();
            }
            let mut failed = false;
            // One group per (rule, value): exact first, then parents, nearest first.
            while j < self.lookups.len() && self.lookups[j].event == ei {
                let first = self.lookups[j];
                let mut end = j;
                while end < self.lookups.len()
                    && self.lookups[end].event == ei
                    && self.lookups[end].rule == first.rule
                    && self.lookups[end].atom == first.atom
                {
                    end += 1;
                }
                let group = &self.lookups[j..end];
                j = end;
                let rule = &shared.rules[first.rule as usize];
                let st = &mut states[rule.target];
                st.looked = true;
                let mut winner = None;
                for l in group {
                    match &self.slots[l.slot as usize].answer {
                        Answer::Hit(i) if winner.is_none() => winner = Some((l, i)),
                        Answer::Failed | Answer::Pending => {
                            st.failed = true;
                            failed = true;
                        }
                        _ => {}
                    }
                }
                let Some((l, ind)) = winner else { continue };
                let slot = &self.slots[l.slot as usize];
                let value = &self.arena[slot.value.0 as usize..slot.value.1 as usize];
                for feed in &ind.feeds {
                    let e = Enrichment {
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
                                Kind::Domain => None,
                                _ => value.parse::<IpAddr>().ok(),
                            },
                            url: IndicatorUrl {
                                domain: (l.kind == Kind::Domain).then(|| Str::from(value)),
                            },
                        },
                        matched: Matched {
                            atomic: Str::from(value),
                            field: rule.field.name(),
                            type_: if l.parent { "parent_domain" } else { "exact" },
                        },
                    };
                    if !ev.threat.enrichments.contains(&e) {
                        ev.threat.enrichments.push(e);
                    }
                    ev.threat.feed.name.add(&feed.name);
                    if !st.feeds.iter().any(|f| *f == feed.name) {
                        st.feeds.push(Str::from(&feed.name));
                    }
                }
            }
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
