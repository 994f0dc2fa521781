//! The enrichment stage against a real memcached (and the in-process store):
//! hits of every kind and value form, clean misses, key injection, memcached
//! stopped, frozen and restarted mid-run, the negative cache's effect on
//! memcached's own `cmd_get`, and in-flight deduplication across threads.
//!
//! Events are built the way the pipeline builds them: dnsmasq lines through
//! `LineDecoder`, then `EnrichStage::enricher().enrich(&mut batch)`.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::memcached::{free_port, Memcached};
use dnsenrich::decode::LineDecoder;
use dnsenrich::enrich::{CacheConfig, EnrichConfig, EnrichStage};
use dnsenrich::event::{tag, Event};
use dnsenrich::grammar::GrammarSet;
use dnsenrich::indicator::key::{compose, safe_key, KeyTemplate};
use dnsenrich::indicator::placement::pick_server;
use dnsenrich::indicator::value::{encode_value, FeedInfo, IndicatorValue};
use dnsenrich::input::framing::FrameDecoder;
use dnsenrich::pipeline::EventBatch;
use dnsenrich::syslog::Zone;
use serde_json::{json, Value};

fn decoder() -> LineDecoder {
    LineDecoder::new(Arc::new(GrammarSet::builtin().unwrap()), Zone::Local, 4096)
}

fn batch(lines: &[&str]) -> EventBatch {
    let mut d = decoder();
    EventBatch {
        events: lines.iter().map(|l| d.decode(l.as_bytes())).collect(),
        acks: Vec::new(),
        seq: 0,
    }
}

fn query(name: &str) -> String {
    format!("Nov 28 01:10:39 dnsmasq[16144]: 7 10.0.0.5/40000 query[A] {name} from 10.0.0.5")
}

fn reply(name: &str, ip: &str) -> String {
    format!("Nov 28 01:10:39 dnsmasq[16144]: 7 10.0.0.5/40000 reply {name} is {ip}")
}

fn doc(ev: &Event) -> Value {
    serde_json::from_str(&ev.to_json()).unwrap()
}

fn memcached_config(servers: &[&Memcached]) -> EnrichConfig {
    EnrichConfig {
        memcached: servers.iter().map(|m| m.addr.clone()).collect(),
        reconnect_min_ms: 50,
        reconnect_max_ms: 400,
        ..Default::default()
    }
}

fn enrich(stage: &EnrichStage, lines: &[&str]) -> Vec<Event> {
    let mut b = batch(lines);
    stage.enricher().enrich(&mut b);
    b.events
}

const SYNC_JSON: &str = r#"{"v":1,"type":"domain","value":"c2.example","feeds":[{"name":"Feed-RansomwareTracker","provider":"MISP","event_id":"42","event_info":"Ransomware C2","threat_level":"high","first_seen":"2026-01-02T00:00:00Z","last_seen":"2026-11-01T00:00:00Z"}]}"#;

fn seed(mc: &Memcached) {
    mc.set("domain-evil.example", b"Feed-RansomwareTracker");
    mc.set("ip-dst-192.0.2.66", b"['Feed-A', 'Feed-B']");
    mc.set("domain-c2.example", SYNC_JSON.as_bytes());
    mc.set("domain-deep.evil.example", b"[\"Feed-Deep\"]");
}

#[test]
fn exact_parent_and_answer_ip_hits_and_clean_misses() {
    let mc = Memcached::start();
    seed(&mc);
    let stage = memcached_config(&[&mc]).build().unwrap();
    let lines = [
        query("evil.example"),
        query("A.B.Evil.Example."),
        query("x.deep.evil.example"),
        reply("cdn.good.example", "192.0.2.66"),
        query("c2.example"),
        query("clean.example"),
        "Nov 28 01:10:39 dnsmasq[16144]: started, version 2.90 cachesize 1000".to_owned(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let before = chrono::Utc::now();
    let events = enrich(&stage, &refs);
    let after = chrono::Utc::now();
    let mut d: Vec<Value> = events.iter().map(doc).collect();

    // Every match says when it was made: during the enrich call.
    let entries = |d: &mut Value| {
        d.get_mut("threat")
            .and_then(|t| t.get_mut("enrichments"))
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
    };
    for (i, mut e) in d
        .iter_mut()
        .enumerate()
        .filter_map(|(i, d)| Some((i, entries(d)?)))
        .collect::<Vec<_>>()
    {
        for m in e.iter_mut() {
            let at = m["matched"]["occurred"].as_str().expect("matched.occurred");
            let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
            let ms = chrono::Duration::milliseconds(1);
            assert!(
                at >= before - ms && at <= after + ms,
                "{at} not in {before}..{after}"
            );
            m["matched"].as_object_mut().unwrap().remove("occurred");
        }
        d[i]["threat"]["enrichments"] = Value::Array(e);
    }

    // Exact hit, plain value.
    assert_eq!(d[0]["misp_src"], "Feed-RansomwareTracker");
    assert_eq!(d[0]["threat"]["feed"]["name"], "Feed-RansomwareTracker");
    assert_eq!(
        d[0]["threat"]["enrichments"],
        json!([{
            "feed": {"name": "Feed-RansomwareTracker"},
            "indicator": {"type": "domain-name", "provider": "MISP", "url": {"domain": "evil.example"}},
            "matched": {"atomic": "evil.example", "field": "dns.question.name", "type": "exact"}
        }])
    );
    // Parent hit, name normalised.
    assert_eq!(d[1]["misp_src"], "Feed-RansomwareTracker");
    assert_eq!(
        d[1]["threat"]["enrichments"][0]["matched"]["atomic"],
        "evil.example"
    );
    assert_eq!(
        d[1]["threat"]["enrichments"][0]["matched"]["type"],
        "parent_domain"
    );
    // The most specific hit wins: deep.evil.example over evil.example.
    assert_eq!(d[2]["misp_src"], "Feed-Deep");
    assert_eq!(d[2]["threat"]["enrichments"].as_array().unwrap().len(), 1);
    assert_eq!(
        d[2]["threat"]["enrichments"][0]["matched"]["atomic"],
        "deep.evil.example"
    );
    // Answer IP, Python-list value: two feeds.
    assert_eq!(d[3]["misp_src"], json!(["Feed-A", "Feed-B"]));
    assert_eq!(d[3]["threat"]["feed"]["name"], json!(["Feed-A", "Feed-B"]));
    let e = &d[3]["threat"]["enrichments"];
    // One indicator in two feeds: one entry per feed, each naming its feed
    // (as Kibana's indicator-match enrichment writes them).
    assert_eq!(e.as_array().unwrap().len(), 2);
    for (entry, feed) in e.as_array().unwrap().iter().zip(["Feed-A", "Feed-B"]) {
        assert_eq!(entry["feed"]["name"], feed);
        assert_eq!(entry["indicator"]["type"], "ipv4-addr");
        assert_eq!(entry["indicator"]["ip"], "192.0.2.66");
        assert_eq!(entry["matched"]["field"], "dns.resolved_ip");
        assert_eq!(entry["matched"]["atomic"], "192.0.2.66");
        assert_eq!(entry["matched"]["type"], "exact");
    }
    // JSON value from sync: all the context.
    assert_eq!(d[4]["misp_src"], "Feed-RansomwareTracker");
    let ind = &d[4]["threat"]["enrichments"][0]["indicator"];
    assert_eq!(ind["description"], "Ransomware C2");
    assert_eq!(ind["first_seen"], "2026-01-02T00:00:00Z");
    assert_eq!(ind["last_seen"], "2026-11-01T00:00:00Z");
    // Clean miss: "none", no threat, no tag.
    assert_eq!(d[5]["misp_src"], "none");
    assert!(d[5].get("threat").is_none());
    assert!(d[5].get("tags").is_none());
    // Nothing to look up: nothing written.
    assert!(d[6].get("misp_src").is_none());

    let s = stage.stats();
    assert_eq!(s.events, 7);
    assert_eq!(s.events_enriched, 5);
    assert_eq!(s.events_none, 1);
    assert_eq!(s.events_not_enriched, 0);
    assert_eq!(s.memcached_requests, 1, "one gets for the whole batch");
    assert!(
        s.hits_per_feed
            .contains(&("Feed-RansomwareTracker".into(), 3)),
        "{:?}",
        s.hits_per_feed
    );
}

#[test]
fn values_written_by_our_sync_are_read_back() {
    let mc = Memcached::start();
    let value = IndicatorValue {
        type_: Some("domain".into()),
        value: Some("sync.example".into()),
        feeds: vec![
            FeedInfo {
                provider: Some("abuse.ch".into()),
                ..FeedInfo::named("Feed-URLhaus")
            },
            FeedInfo::named("Feed-Other"),
        ],
        ..Default::default()
    };
    let key = compose(None, &KeyTemplate::domain(), "sync.example");
    mc.set(key.as_str(), &encode_value(&value));
    let stage = memcached_config(&[&mc]).build().unwrap();
    let q = query("sync.example");
    let d = doc(&enrich(&stage, &[&q])[0]);
    assert_eq!(d["misp_src"], json!(["Feed-URLhaus", "Feed-Other"]));
    assert_eq!(
        d["threat"]["enrichments"][0]["indicator"]["provider"],
        "abuse.ch"
    );
    assert_eq!(
        d["threat"]["enrichments"][1]["indicator"]["provider"],
        "MISP"
    );
}

#[test]
fn namespace_and_long_names_use_the_shared_key_rule() {
    let mc = Memcached::start();
    let long = format!("{}.long.example", "a".repeat(240));
    let long_key = compose(Some("misp"), &KeyTemplate::domain(), &long);
    assert!(long_key.is_hashed());
    mc.set(long_key.as_str(), b"Feed-Long");
    mc.set("misp:domain-ns.example", b"Feed-NS");
    mc.set("domain-ns.example", b"Feed-WithoutNamespace");
    let stage = EnrichConfig {
        namespace: Some("misp".into()),
        parent_domains: false,
        ..memcached_config(&[&mc])
    }
    .build()
    .unwrap();
    let (a, b) = (query(&long), query("ns.example"));
    let events = enrich(&stage, &[&a, &b]);
    assert_eq!(doc(&events[0])["misp_src"], "Feed-Long");
    assert_eq!(doc(&events[1])["misp_src"], "Feed-NS");
    assert_eq!(stage.stats().unsafe_keys_hashed, 1);
}

#[test]
fn a_crafted_name_cannot_inject_a_command() {
    let mc = Memcached::start();
    mc.set("domain-victim.example", b"Feed-Victim");
    let before = mc.stats();
    let stage = memcached_config(&[&mc]).build().unwrap();

    // An octet-counted frame whose message carries CR LF and a memcached command.
    let msg = "<30>Nov 28 01:10:39 dnsmasq[1]: 1 10.0.0.5/1 query[A] evil\r\nset evil 0 0 1\r\nx\r\n.example from 10.0.0.5";
    let framed = format!("{} {msg}", msg.len());
    let mut frames = Vec::new();
    FrameDecoder::new(65536).decode(framed.as_bytes(), &mut |f: &[u8], _| {
        frames.push(f.to_vec())
    });
    assert_eq!(frames, [msg.as_bytes()]);
    let mut d = decoder();
    let mut b = EventBatch {
        events: frames.iter().map(|f| d.decode(f)).collect(),
        acks: Vec::new(),
        seq: 0,
    };
    // Whatever the grammar makes of it, the same name also reaches the
    // enricher directly, as a future grammar might let it through.
    let mut crafted = Event::default();
    crafted.dns.question.name = Some("evil\r\nset evil 0 0 1\r\nx\r\n.example".into());
    b.events.push(crafted);
    let mut spaced = Event::default();
    spaced.dns.question.name = Some("a b\tc.example get domain-victim.example".into());
    b.events.push(spaced);
    stage.enricher().enrich(&mut b);

    assert_eq!(mc.get("evil"), None, "no key was set by the name");
    let after = mc.stats();
    assert_eq!(after["cmd_set"], before["cmd_set"]);
    assert_eq!(after["curr_items"], before["curr_items"]);
    let crafted = doc(&b.events[1]);
    assert_eq!(
        crafted["misp_src"], "none",
        "looked up under its digest, a clean miss"
    );
    assert_eq!(
        doc(&b.events[2])["misp_src"],
        "none",
        "did not read another key"
    );
    assert!(stage.stats().unsafe_keys_hashed >= 2);
    // The digest form is what sync would store it under: a hit then.
    let key = safe_key("domain-evil\r\nset evil 0 0 1\r\nx\r\n.example");
    assert!(key.is_hashed());
}

#[test]
fn memcached_stopped_mid_run_then_restarted() {
    let mut mc = Memcached::start();
    let port = mc.port;
    mc.set("domain-evil.example", b"Feed-A");
    let stage = EnrichConfig {
        // No cache: every batch asks memcached, so the outage is seen at once.
        cache: CacheConfig {
            max_entries: 0,
            ..Default::default()
        },
        ..memcached_config(&[&mc])
    }
    .build()
    .unwrap();
    let mut enricher = stage.enricher();
    let mut run = |n: usize| {
        let (a, b) = (query("evil.example"), query(&format!("fresh{n}.example")));
        let mut batch = batch(&[&a, &b]);
        let start = Instant::now();
        enricher.enrich(&mut batch);
        (start.elapsed(), batch.events)
    };
    let (_, ev) = run(0);
    assert_eq!(doc(&ev[0])["misp_src"], "Feed-A");

    mc.stop();
    for n in 1..20 {
        let (took, ev) = run(n);
        assert!(took < Duration::from_millis(500), "batch took {took:?}");
        for e in &ev {
            let d = doc(e);
            assert!(
                d.get("misp_src").is_none(),
                "no 'none' during an outage: {d}"
            );
            assert!(e.tags.contains(&tag::NOT_ENRICHED));
        }
    }
    let s = stage.stats();
    assert!(s.events_not_enriched >= 38);
    assert!(s.memcached_errors + s.memcached_down + s.memcached_timeouts > 0);

    let mc = Memcached::start_on(port);
    mc.set("domain-evil.example", b"Feed-B");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 100;
    loop {
        let (took, ev) = run(n);
        assert!(took < Duration::from_millis(500));
        if doc(&ev[0])["misp_src"] == "Feed-B" {
            assert!(!ev[0].tags.contains(&tag::NOT_ENRICHED));
            assert_eq!(doc(&ev[1])["misp_src"], "none");
            break;
        }
        assert!(Instant::now() < deadline, "no reconnection within 5 s");
        std::thread::sleep(Duration::from_millis(20));
        n += 1;
    }
}

#[test]
fn a_frozen_memcached_times_out_each_batch_quickly() {
    let mc = Memcached::start();
    mc.set("domain-evil.example", b"Feed-A");
    let stage = EnrichConfig {
        timeout_ms: 50,
        cache: CacheConfig {
            max_entries: 0,
            ..Default::default()
        },
        ..memcached_config(&[&mc])
    }
    .build()
    .unwrap();
    let mut enricher = stage.enricher();
    let q = query("evil.example");
    let mut b = batch(&[&q]);
    enricher.enrich(&mut b);
    assert_eq!(doc(&b.events[0])["misp_src"], "Feed-A");

    mc.pause();
    let start = Instant::now();
    for _ in 0..10 {
        let mut b = batch(&[&q]);
        let t = Instant::now();
        enricher.enrich(&mut b);
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        assert!(b.events[0].tags.contains(&tag::NOT_ENRICHED));
        assert!(b.events[0].misp_src.is_empty());
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(stage.stats().memcached_timeouts >= 1);
    mc.resume();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut b = batch(&[&q]);
        enricher.enrich(&mut b);
        if doc(&b.events[0])["misp_src"] == "Feed-A" {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn unreachable_at_start_is_a_warning_not_an_error() {
    let stage = EnrichConfig {
        memcached: vec![format!("127.0.0.1:{}", free_port())],
        ..Default::default()
    }
    .build()
    .expect("a server that is down at start is not fatal");
    let q = query("evil.example");
    let ev = enrich(&stage, &[&q]);
    assert!(ev[0].tags.contains(&tag::NOT_ENRICHED));
    assert!(ev[0].misp_src.is_empty());
}

#[test]
fn negative_cache_keeps_popular_names_off_memcached() {
    let mc = Memcached::start();
    seed(&mc);
    let names: Vec<String> = (0..10)
        .map(|i| query(&format!("n{i}.popular.example")))
        .collect();
    let mut lines: Vec<&str> = Vec::new();
    for _ in 0..10 {
        lines.extend(names.iter().map(String::as_str));
    }
    let q = query("evil.example");
    lines.push(&q);

    let gets = |cache: CacheConfig| {
        let stage = EnrichConfig {
            cache,
            ..memcached_config(&[&mc])
        }
        .build()
        .unwrap();
        let mut enricher = stage.enricher();
        let before = mc.stat("cmd_get");
        for _ in 0..5 {
            let mut b = batch(&lines);
            enricher.enrich(&mut b);
            assert_eq!(doc(&b.events[100])["misp_src"], "Feed-RansomwareTracker");
            assert_eq!(doc(&b.events[0])["misp_src"], "none");
        }
        (mc.stat("cmd_get") - before, stage.stats())
    };
    // 10 names + their parent popular.example + evil.example = 12 distinct keys.
    let (with_cache, s) = gets(CacheConfig::default());
    assert_eq!(
        with_cache, 12,
        "each distinct key asked once over 5 batches of 101 events"
    );
    assert_eq!(s.cache_hits, 4 * 12);
    assert_eq!(s.memcached_keys, 12);
    let (without, _) = gets(CacheConfig {
        max_entries: 0,
        ..Default::default()
    });
    assert_eq!(without, 5 * 12, "without the cache every batch asks again");
    eprintln!(
        "cmd_get over 5 batches of 101 events: {with_cache} with the cache, {without} without"
    );
}

#[test]
fn two_threads_wanting_the_same_keys_ask_once() {
    let mc = Memcached::start();
    seed(&mc);
    let stage = memcached_config(&[&mc]).build().unwrap();
    let names: Vec<String> = (0..200)
        .map(|i| query(&format!("h{i}.same.example")))
        .collect();
    let lines: Vec<&str> = names.iter().map(String::as_str).collect();
    let before = mc.stat("cmd_get");
    let threads = 4;
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut e = stage.enricher();
                let mut b = batch(&lines);
                barrier.wait();
                e.enrich(&mut b);
                assert!(b.events.iter().all(|e| doc(e)["misp_src"] == "none"));
            });
        }
    });
    assert_eq!(
        mc.stat("cmd_get") - before,
        201,
        "200 names + same.example, once each"
    );
}

#[test]
fn keys_spread_over_several_servers() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let stage = memcached_config(&[&a, &b]).build().unwrap();
    let servers = stage.memcached_servers().to_vec();
    let mut lines = Vec::new();
    for i in 0..40 {
        let key = format!("domain-bad{i}.example");
        let on = if pick_server(&key, &servers) == 0 {
            &a
        } else {
            &b
        };
        on.set(&key, format!("Feed-{i}").as_bytes());
        lines.push(query(&format!("bad{i}.example")));
    }
    assert!(a.stat("curr_items") > 5 && b.stat("curr_items") > 5);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let events = enrich(&stage, &refs);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(doc(e)["misp_src"], format!("Feed-{i}"));
    }
    assert_eq!(
        stage.stats().memcached_requests,
        2,
        "one request per server"
    );
}

#[test]
fn ioc_files_without_memcached_and_sighup_reload() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("Feed-Local.txt");
    std::fs::write(&list, "# local list\nevil.example\n192.0.2.66\n").unwrap();
    let hosts = dir.path().join("StevenBlack.hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n0.0.0.0 ads.example tracker.example\n",
    )
    .unwrap();
    let csv = dir.path().join("iocs.csv");
    std::fs::write(&csv, "value,feed\nc2.example,Feed-CSV\n").unwrap();
    let ndjson = dir.path().join("sync.ndjson");
    std::fs::write(
        &ndjson,
        format!("{}\n", json!({"key": "domain-sync.example", "value": serde_json::from_str::<Value>(SYNC_JSON).unwrap()})),
    )
    .unwrap();
    let stage = EnrichConfig {
        ioc_files: vec![list.clone(), hosts, csv, ndjson],
        ..Default::default()
    }
    .build()
    .unwrap();
    let lines = [
        query("www.evil.example"),
        query("tracker.example"),
        query("c2.example"),
        query("sync.example"),
        reply("x.example", "192.0.2.66"),
        query("fine.example"),
        query("new.example"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let d: Vec<Value> = enrich(&stage, &refs).iter().map(doc).collect();
    assert_eq!(d[0]["misp_src"], "Feed-Local");
    assert_eq!(
        d[0]["threat"]["enrichments"][0]["matched"]["type"],
        "parent_domain"
    );
    assert_eq!(d[1]["misp_src"], "StevenBlack");
    assert_eq!(d[2]["misp_src"], "Feed-CSV");
    assert_eq!(d[3]["misp_src"], "Feed-RansomwareTracker");
    assert_eq!(
        d[3]["threat"]["enrichments"][0]["indicator"]["description"],
        "Ransomware C2"
    );
    assert_eq!(d[4]["misp_src"], "Feed-Local");
    assert_eq!(d[5]["misp_src"], "none");
    assert_eq!(d[6]["misp_src"], "none");

    std::fs::write(&list, "new.example\n").unwrap();
    stage.reload().unwrap();
    let d: Vec<Value> = enrich(&stage, &refs).iter().map(doc).collect();
    assert_eq!(d[6]["misp_src"], "Feed-Local");
    assert_eq!(d[0]["misp_src"], "none");
    let s = stage.stats();
    assert!(s.store_hits > 0 && s.memcached_requests == 0);
}

#[test]
fn no_backend_leaves_events_alone() {
    let stage = EnrichConfig::default().build().unwrap();
    assert!(!stage.is_active());
    let q = query("evil.example");
    let mut b = batch(&[&q]);
    let before = b.events[0].to_json();
    stage.enricher().enrich(&mut b);
    assert_eq!(b.events[0].to_json(), before);
}
