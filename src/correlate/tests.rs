use std::sync::atomic::AtomicUsize;

use super::*;
use crate::decode::LineDecoder;
use crate::grammar::GrammarSet;

fn decoder() -> LineDecoder {
    LineDecoder::new(
        Arc::new(GrammarSet::builtin().unwrap()),
        "UTC".parse().unwrap(),
        4096,
    )
}

fn cfg() -> TxnConfig {
    TxnConfig::default()
}

/// Feeds `lines` at `now`, then closes everything due `after` later.
fn run(c: &mut Correlator, lines: &[&str], now: Instant) -> Vec<Event> {
    let mut d = decoder();
    for l in lines {
        c.push(d.decode(l.as_bytes()), None, now);
    }
    c.take_output().0
}

fn txns(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.dnsmasq.status.is_some())
        .collect()
}

fn lines_in(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|e| u64::from(e.dnsmasq.lines.unwrap_or(1)))
        .sum()
}

const PLAIN: &str = "Nov 28 01:10:34 dnsmasq[15637]: ";

fn plain(msg: &str) -> String {
    format!("{PLAIN}{msg}")
}

#[test]
fn a_forwarded_query_with_a_cname_chain_is_one_transaction() {
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let t0 = Instant::now();
    let lines = [
        plain("query[AAAA] deep.example.test from 192.0.2.7"),
        plain("forwarded deep.example.test to 127.0.0.1#15354"),
        plain("reply deep.example.test is <CNAME>"),
        plain("reply alias.example.test is <CNAME>"),
        plain("reply www.example.test is 2001:db8::10"),
    ];
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    assert!(run(&mut c, &refs, t0).is_empty(), "open until it settles");
    assert_eq!(c.open_count(), 1);
    c.expire(t0 + Duration::from_millis(cfg().settle_ms));
    let out = c.take_output().0;
    assert_eq!(out.len(), 1);
    let t = &out[0];
    assert_eq!(t.event.action, Some("forwarded"));
    assert_eq!(t.dnsmasq.status_code, Some(2));
    assert_eq!(t.dnsmasq.lines, Some(5));
    assert_eq!(t.client.ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(t.server.port, Some(15354));
    let answers: Vec<(&str, &str, &str)> = t
        .dns
        .answers
        .iter()
        .map(|a| {
            (
                a.name.as_deref().unwrap(),
                a.type_.as_deref().unwrap(),
                a.data.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("deep.example.test", "CNAME", "alias.example.test"),
            ("alias.example.test", "CNAME", "www.example.test"),
            ("www.example.test", "AAAA", "2001:db8::10"),
        ]
    );
    assert_eq!(t.dns.type_, Some("answer"));
    assert_eq!(t.event.outcome, Some("success"));
    assert!(t.related.hosts.iter().any(|h| h == "alias.example.test"));
    assert!(t.message.lines().count() == 5);
    assert_eq!(c.stats.closed_by(CloseReason::Answered), 1);
}

#[test]
fn a_and_aaaa_for_one_name_in_flight_together_keep_their_records() {
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let t0 = Instant::now();
    let lines = [
        plain("query[A] www.example.test from 192.0.2.7"),
        plain("forwarded www.example.test to 127.0.0.1#53"),
        plain("query[AAAA] www.example.test from 192.0.2.7"),
        plain("forwarded www.example.test to 127.0.0.1#53"),
        plain("reply www.example.test is 2001:db8::10"),
        plain("reply www.example.test is 192.0.2.10"),
    ];
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    run(&mut c, &refs, t0);
    c.flush();
    let out = c.take_output().0;
    let t = txns(&out);
    assert_eq!(t.len(), 2);
    for t in t {
        let q = t.dns.question.type_.as_deref().unwrap();
        assert_eq!(t.dns.answers.len(), 1, "{q}");
        assert_eq!(t.dns.answers[0].type_.as_deref(), Some(q));
        assert_eq!(t.dnsmasq.forwards, Some(1));
    }
}

#[test]
fn two_clients_asking_at_once_both_get_the_one_reply() {
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let t0 = Instant::now();
    let lines = [
        plain("query[A] slow.example.test from 192.0.2.7"),
        plain("forwarded slow.example.test to 127.0.0.1#53"),
        plain("query[A] slow.example.test from 192.0.2.8"),
        plain("reply slow.example.test is 192.0.2.61"),
    ];
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    run(&mut c, &refs, t0);
    c.expire(t0 + Duration::from_secs(1));
    let out = c.take_output().0;
    let t = txns(&out);
    assert_eq!(t.len(), 2);
    let by = |ip: &str| {
        *t.iter()
            .find(|e| e.client.ip == Some(ip.parse().unwrap()))
            .unwrap()
    };
    assert_eq!(by("192.0.2.7").event.action, Some("forwarded"));
    let second = by("192.0.2.8");
    assert_eq!(second.event.action, Some("in_progress"));
    assert_eq!(
        second.dns.resolved_ip.as_slice(),
        ["192.0.2.61".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(lines_in(&out), 4, "the reply line left once");
}

#[test]
fn extra_serials_keep_interleaved_queries_apart_and_restart_resets() {
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let t0 = Instant::now();
    let p = "Nov 28 01:10:39 dnsmasq[16144]: ";
    let lines = [
        format!("{p}1 192.0.2.7/5000 query[A] a.example.test from 192.0.2.7"),
        format!("{p}2 192.0.2.8/5001 query[A] a.example.test from 192.0.2.8"),
        format!("{p}1 192.0.2.7/5000 forwarded a.example.test to 127.0.0.1#53"),
        format!("{p}2 192.0.2.8/5001 cached a.example.test is 192.0.2.1"),
        format!("{p}1 192.0.2.7/5000 reply a.example.test is 192.0.2.1"),
        format!("{p}3 192.0.2.9/5002 query[A] open.example.test from 192.0.2.9"),
        "Nov 28 01:10:40 dnsmasq[16200]: started, version 2.90 cachesize 150".to_owned(),
        "Nov 28 01:10:40 dnsmasq[16200]: 1 192.0.2.7/5003 query[A] b.example.test from 192.0.2.7"
            .to_owned(),
    ];
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    let out = run(&mut c, &refs, t0);
    // The start line closed the three open transactions, then left itself.
    let t = txns(&out);
    assert_eq!(t.len(), 3);
    assert_eq!(c.stats.closed_by(CloseReason::Restart), 3);
    let by = |port: u16| *t.iter().find(|e| e.client.port == Some(port)).unwrap();
    assert_eq!(by(5000).event.action, Some("forwarded"));
    assert_eq!(by(5001).event.action, Some("cache"));
    assert_eq!(by(5002).event.outcome, Some("unknown"));
    assert!(by(5002).tags.contains(&tag::TXN_NO_REPLY));
    assert_eq!(c.open_count(), 1, "the new process's query is open");
}

#[test]
fn late_lines_and_orphans_are_kept_and_counted() {
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let t0 = Instant::now();
    let q = plain("query[A] lost.example.test from 192.0.2.7");
    let f = plain("forwarded lost.example.test to 127.0.0.1#53");
    run(&mut c, &[&q, &f], t0);
    // No reply within the idle timeout.
    c.expire(t0 + Duration::from_millis(cfg().idle_timeout_ms));
    let out = c.take_output().0;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event.outcome, Some("unknown"));
    assert_eq!(out[0].dns.type_, Some("query"));
    assert_eq!(c.stats.closed_by(CloseReason::Timeout), 1);
    // The reply comes after all: a late line.
    let r = plain("reply lost.example.test is 192.0.2.5");
    let out = run(&mut c, &[&r], t0 + Duration::from_secs(6));
    assert_eq!(out.len(), 1);
    assert!(out[0].tags.contains(&tag::TXN_LATE));
    assert_eq!(out[0].event.action, Some("dns-reply"), "a line event");
    assert_eq!(c.stats.late_lines, 1);
    // A reply whose query was never seen: an incomplete transaction.
    let r = plain("reply never.example.test is 192.0.2.6");
    run(&mut c, &[&r], t0 + Duration::from_secs(7));
    c.flush();
    let out = c.take_output().0;
    assert_eq!(out.len(), 1);
    assert!(out[0].tags.contains(&tag::TXN_INCOMPLETE));
    assert_eq!(out[0].dns.resolved_ip.len(), 1);
    assert_eq!(out[0].dnsmasq.lines, Some(1));
    assert_eq!(c.stats.orphans, 1);
}

#[test]
fn both_mode_writes_every_line_and_every_transaction() {
    let mut c = Correlator::new(EventsMode::Both, cfg());
    let lines = [
        plain("query[A] a.example.test from 192.0.2.7"),
        plain("cached a.example.test is 192.0.2.1"),
        plain("read /etc/hosts - 3 names"),
    ];
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    let mut out = run(&mut c, &refs, Instant::now());
    c.flush();
    out.extend(c.take_output().0);
    assert_eq!(out.len(), 4);
    assert_eq!(txns(&out).len(), 1);
}

#[test]
fn pihole_reason_lines_give_ftl_status_and_rule() {
    let text = include_str!("../../fixtures/raw/constructed/pihole-v6-blocking.log");
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let lines: Vec<&str> = text.lines().collect();
    let mut out = run(&mut c, &lines, Instant::now());
    c.flush();
    out.extend(c.take_output().0);
    assert_eq!(lines_in(&out), lines.len() as u64);
    let status = |name: &str| -> Vec<(&'static str, Option<&'static str>)> {
        txns(&out)
            .into_iter()
            .filter(|t| t.dns.question.name.as_deref() == Some(name))
            .map(|t| (t.dnsmasq.status.unwrap(), t.rule.ruleset))
            .collect()
    };
    assert_eq!(
        status("tracker.example.net")[0],
        ("denylist", Some("denylist-exact"))
    );
    assert_eq!(
        status("ad7.example.org"),
        [("regex", Some("denylist-regex"))]
    );
    assert_eq!(
        status("cdn.example.com"),
        [
            ("gravity_cname", Some("cname-inspection")),
            ("gravity_cname", Some("gravity"))
        ]
    );
    assert_eq!(
        status("media.example.com"),
        [("denylist_cname", Some("denylist-exact"))]
    );
    assert_eq!(
        status("img.example.com"),
        [("regex_cname", Some("denylist-regex"))]
    );
    assert_eq!(status("mask.icloud.com")[0].0, "special_domain");
    assert_eq!(status("pi.hole"), [("cache", Some("pihole-hostname"))]);
    assert_eq!(status("ip.example.com")[0].0, "external_blocked_ip");
    assert_eq!(status("nx.example.com")[0].0, "external_blocked_nxra");
    assert_eq!(status("ede.example.com")[0].0, "external_blocked_ede15");
    for t in txns(&out) {
        let blocked = Status::ALL
            .iter()
            .find(|s| Some(s.name()) == t.dnsmasq.status)
            .unwrap()
            .is_blocked();
        assert_eq!(t.event.type_.contains(&"denied"), blocked, "{t:?}");
        assert_eq!(t.event.action, t.dnsmasq.status);
    }
}

#[test]
fn status_names_and_codes_are_ftls() {
    for (i, s) in Status::ALL.iter().enumerate() {
        assert_eq!(s.code() as usize, i);
    }
    assert_eq!(Status::CacheStale.code(), 17);
    assert_eq!(Status::DbBusy.name(), "dbbusy");
}

/// A small deterministic generator (xorshift), so the test is repeatable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn lost_and_shuffled_lines_all_leave_and_counts_add_up() {
    for (fixture, text) in [
        (
            "extra",
            include_str!("../../fixtures/raw/dnsmasq/dnsmasq-extra.log"),
        ),
        (
            "plain",
            include_str!("../../fixtures/raw/dnsmasq/dnsmasq-plain.log"),
        ),
    ] {
        for seed in 1..=5u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut lines: Vec<&str> = text.lines().collect();
            // Drop about one line in ten, then swap neighbours within a
            // window of four, as a lossy UDP feed would.
            lines.retain(|_| rng.next() % 10 != 0);
            for i in 0..lines.len().saturating_sub(4) {
                let j = i + (rng.next() % 4) as usize;
                lines.swap(i, j);
            }
            let mut c = Correlator::new(EventsMode::Transactions, cfg());
            let t0 = Instant::now();
            let mut d = decoder();
            let mut out = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                let now = t0 + Duration::from_millis(10 * i as u64);
                c.push(d.decode(l.as_bytes()), None, now);
                c.expire(now);
                out.extend(c.take_output().0);
            }
            c.flush();
            out.extend(c.take_output().0);
            assert_eq!(lines_in(&out), lines.len() as u64, "{fixture} seed {seed}");
            // Every line's text is in exactly one event.
            let mut texts: Vec<String> = out
                .iter()
                .flat_map(|e| e.message.lines().map(str::to_owned).collect::<Vec<_>>())
                .collect();
            let mut want: Vec<String> = lines
                .iter()
                .map(|l| d.decode(l.as_bytes()).message)
                .collect();
            texts.sort();
            want.sort();
            assert_eq!(texts, want, "{fixture} seed {seed}");
            let s = &c.stats;
            assert_eq!(s.lines_in, lines.len() as u64);
            assert_eq!(s.closed.iter().sum::<u64>(), s.transactions);
            assert_eq!(s.by_status.iter().sum::<u64>(), s.transactions);
            assert_eq!(s.transactions + s.line_events, out.len() as u64);
            assert_eq!(c.open_count(), 0);
            assert_eq!(c.open_bytes(), 0);
        }
    }
}

#[test]
fn acks_fire_once_every_line_left_and_not_if_a_part_failed() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let share = AckShare::new(vec![Ack::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    })]);
    let (a, b) = (share.part(), share.part());
    drop(share);
    a.done();
    assert_eq!(fired.load(Ordering::SeqCst), 0, "one part still out");
    b.done();
    assert_eq!(fired.load(Ordering::SeqCst), 1);

    let f = fired.clone();
    let share = AckShare::new(vec![Ack::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    })]);
    let (a, b) = (share.part(), share.part());
    drop(share);
    a.done();
    drop(b); // not delivered
    assert_eq!(fired.load(Ordering::SeqCst), 1, "no ack for a failed part");
}

#[test]
fn an_input_batch_is_acknowledged_only_when_its_open_transaction_leaves() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let share = AckShare::new(vec![Ack::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    })]);
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let mut d = decoder();
    let t0 = Instant::now();
    for l in [
        plain("read /etc/hosts - 3 names"),
        plain("query[A] a.example.test from 192.0.2.7"),
    ] {
        c.push(d.decode(l.as_bytes()), Some(share.clone()), t0);
    }
    drop(share);
    let (events, acks) = c.take_output();
    assert_eq!(events.len(), 1, "the housekeeping line left");
    acks.into_iter().for_each(Ack::done);
    assert_eq!(fired.load(Ordering::SeqCst), 0, "the query is still open");
    c.flush();
    let (events, acks) = c.take_output();
    assert_eq!(events.len(), 1);
    acks.into_iter().for_each(Ack::done);
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

#[test]
fn lines_of_a_transaction_never_emitted_are_not_acknowledged() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let share = AckShare::new(vec![Ack::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    })]);
    let mut c = Correlator::new(EventsMode::Transactions, cfg());
    let line = plain("query[A] a.example.test from 192.0.2.7");
    c.push(
        decoder().decode(line.as_bytes()),
        Some(share.clone()),
        Instant::now(),
    );
    drop(share);
    drop(c);
    assert_eq!(fired.load(Ordering::SeqCst), 0);
}

/// A random-subdomain flood: 200,000 unique names through the correlator
/// with small bounds (a million take a few seconds in a release build; the
/// debug build the tests run in is about ten times slower). Open transactions never pass either bound, the oldest
/// are emitted early with a tag, and every query leaves.
#[test]
fn a_flood_of_unique_names_stays_within_the_bounds() {
    const NAMES: u64 = 200_000;
    let bounds = TxnConfig {
        max_open: 5_000,
        max_open_bytes: 4 << 20,
        ..TxnConfig::default()
    };
    let mut c = Correlator::new(EventsMode::Transactions, bounds.clone());
    let mut template =
        decoder().decode(plain("query[A] x.flood.example from 192.0.2.7").as_bytes());
    template.message.shrink_to_fit();
    let t0 = Instant::now();
    let mut emitted = 0u64;
    let mut evicted = 0u64;
    let mut max_open = 0;
    let mut max_bytes = 0;
    for i in 0..NAMES {
        let mut ev = template.clone();
        ev.dns.question.name = Some(Str::from(format!("{i:x}.flood.example")));
        c.push(ev, None, t0);
        max_open = max_open.max(c.open_count());
        max_bytes = max_bytes.max(c.open_bytes());
        if i % 4096 == 0 {
            for e in c.take_output().0 {
                emitted += 1;
                evicted += u64::from(e.tags.contains(&tag::TXN_EVICTED));
            }
        }
    }
    let open = c.open_count();
    let per_open = c.open_bytes() / open.max(1);
    c.flush();
    for e in c.take_output().0 {
        emitted += 1;
        evicted += u64::from(e.tags.contains(&tag::TXN_EVICTED));
    }
    assert!(max_open <= bounds.max_open, "{max_open}");
    assert!(max_bytes <= bounds.max_open_bytes, "{max_bytes}");
    assert_eq!(emitted, NAMES, "every query left");
    assert_eq!(c.stats.closed_by(CloseReason::Evicted), evicted);
    assert!(evicted >= NAMES - bounds.max_open as u64);
    eprintln!("open transactions at the bound: {open}, about {per_open} bytes each");
}
