//! `dnsenrich sync` against real servers: a memcached started for each test,
//! and MISP answered by the fixture-replaying server in `common::misp`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::memcached::Memcached;
use common::misp::{fixtures, MispServer, Mode};
use common::pki::Pki;
use dnsenrich::indicator::key::safe_key;
use dnsenrich::indicator::value::{parse_value, IndicatorValue, ValueForm};
use dnsenrich::sync::indicator::SkipReason;
use dnsenrich::sync::{run_once, ListFormat, ListSource, SyncConfig, ValueFormat};

const KEY: &str = "test-api-key-0123456789";

/// Reads back what sync wrote, with the TTL memcached keeps for it.
trait ReadBack {
    /// `mg <key> t v`: the value and the remaining TTL, or None on a miss.
    fn entry(&self, key: &str) -> Option<(Vec<u8>, i64)>;
    /// The value under `key` as the JSON sync writes.
    fn json(&self, key: &str) -> IndicatorValue;
    fn item_count(&self) -> u64;
}

impl ReadBack for Memcached {
    fn entry(&self, key: &str) -> Option<(Vec<u8>, i64)> {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "mg {key} t v\r\n").unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line == "EN" {
            return None;
        }
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("VA"), "{line}");
        let len: usize = parts.next().unwrap().parse().unwrap();
        let ttl: i64 = parts
            .find_map(|p| p.strip_prefix('t'))
            .unwrap()
            .parse()
            .unwrap();
        let mut buf = vec![0; len + 2];
        std::io::Read::read_exact(&mut r, &mut buf).unwrap();
        buf.truncate(len);
        Some((buf, ttl))
    }

    fn json(&self, key: &str) -> IndicatorValue {
        let (v, _) = self
            .entry(key)
            .unwrap_or_else(|| panic!("no key {key:?} in memcached"));
        serde_json::from_slice(&v).unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    fn item_count(&self) -> u64 {
        self.stat("curr_items")
    }
}

/// A loopback port that refuses connections, held (bound, not listening)
/// for as long as the socket lives, so no other test can start a server on
/// it meanwhile.
fn closed_port() -> (socket2::Socket, u16) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

fn misp_config(misp: &MispServer, mc: &Memcached) -> SyncConfig {
    SyncConfig {
        misp_url: Some(misp.url.clone()),
        misp_key: Some(dnsenrich::output::Secret::new(KEY)),
        memcached: vec![mc.addr.clone()],
        page_limit: 5,
        ttl_secs: Some(1200),
        ..SyncConfig::default()
    }
}

fn names(v: &IndicatorValue) -> Vec<&str> {
    v.feeds.iter().map(|f| f.name.as_str()).collect()
}

#[tokio::test]
async fn misp_pages_become_keys_with_every_feed() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let report = run_once(&misp_config(&misp, &mc), false).await.unwrap();

    // 12 attributes, 5 per page: three requests, pages 1..3, all with the key.
    let reqs = misp.requests();
    assert_eq!(misp.attribute_count(), 12);
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.authorization.as_deref(), Some(KEY));
        assert_eq!(r.body["page"], i as u64 + 1);
        assert_eq!(r.body["limit"], 5);
        assert_eq!(r.body["returnFormat"], "json");
        assert_eq!(r.body["to_ids"], 1);
        assert_eq!(r.body["includeContext"], 1);
        assert_eq!(r.body["type"][0], "domain");
    }

    // In two events (42 and 43): the value names both feeds, with context.
    let v = mc.json("domain-evil.example");
    assert_eq!(v.v, 1);
    assert_eq!(v.type_.as_deref(), Some("domain"));
    assert_eq!(v.value.as_deref(), Some("evil.example"));
    assert_eq!(names(&v), ["Feed-PhishTank", "Feed-RansomwareTracker"]);
    let rw = &v.feeds[1];
    assert_eq!(rw.provider.as_deref(), Some("MISP"));
    assert_eq!(rw.event_id.as_deref(), Some("42"));
    assert_eq!(rw.event_info.as_deref(), Some("Ransomware C2"));
    assert_eq!(rw.threat_level.as_deref(), Some("high"));
    assert_eq!(rw.first_seen.as_deref(), Some("2026-01-02T00:00:00Z"));
    assert_eq!(rw.last_seen.as_deref(), Some("2026-11-01T00:00:00Z"));
    assert_eq!(v.feeds[0].threat_level.as_deref(), Some("medium"));
    // What the enricher makes of it.
    let read = parse_value(&mc.entry("domain-evil.example").unwrap().0);
    assert_eq!(read.form, ValueForm::Json);
    assert_eq!(read.feeds.len(), 2);

    // hostname → domain-, lower-cased; url → its host; domain|ip → both.
    assert_eq!(
        names(&mc.json("domain-c2.evil.example")),
        ["Feed-RansomwareTracker"]
    );
    assert!(mc.entry("domain-C2.Evil.Example").is_none());
    assert_eq!(
        names(&mc.json("domain-landing.evil.example")),
        ["Feed-RansomwareTracker"]
    );
    assert_eq!(
        mc.json("domain-dual.example").feeds[0].event_id.as_deref(),
        Some("43")
    );
    let ip = mc.json("ip-dst-198.51.100.10");
    assert_eq!(ip.type_.as_deref(), Some("ip-dst"));
    assert_eq!(names(&ip), ["Feed-PhishTank"]);
    assert!(mc.entry("ip-dst-203.0.113.66").is_some());
    // No Feed- tag: named after the source.
    assert_eq!(names(&mc.json("ip-src-192.0.2.200")), ["MISP"]);

    // A space or a control character: stored under the hashed key.
    for odd in ["domain-bad name.example", "domain-ctl\u{7}.example"] {
        let k = safe_key(odd);
        assert!(k.is_hashed());
        assert!(k.as_str().starts_with("domain-#"));
        assert!(mc.entry(k.as_str()).is_some(), "{odd:?} as {}", k.as_str());
    }
    assert_eq!(report.hashed, 2);

    // Invalid values and filters: skipped and counted, never written.
    assert!(mc.entry("ip-dst-not-an-ip").is_none());
    assert!(mc.entry("domain-ids-off.example").is_none());
    assert_eq!(report.skipped[&SkipReason::InvalidIp], 1);
    assert_eq!(report.skipped[&SkipReason::IpRange], 1);
    assert_eq!(report.skipped[&SkipReason::NotForDetection], 1);
    assert!(report.examples[&SkipReason::InvalidIp][0].contains("not-an-ip"));

    // Every key has the TTL.
    let (_, ttl) = mc.entry("domain-evil.example").unwrap();
    assert!((1190..=1200).contains(&ttl), "ttl {ttl}");

    assert_eq!(report.written, 9);
    // The keys, and the run's status key beside them.
    assert_eq!(mc.item_count(), 10);
    assert!(mc.get("dnsenrich-sync-status").is_some());
    assert_eq!(report.keys["domain"], 6);
    assert_eq!(report.keys["ip-dst"], 2);
    assert_eq!(report.keys["ip-src"], 1);
    assert_eq!(report.by_type["domain"], 4);
    assert_eq!(report.by_type["hostname"], 1);
    assert_eq!(report.by_type["domain|ip"], 1);
    assert_eq!(report.by_feed["Feed-RansomwareTracker"], 4);
    let summary = report.to_string();
    assert!(
        summary.contains("9 keys written to memcached 127.0.0.1:"),
        "{summary}"
    );
    assert!(
        summary.contains("invalid ip: 1 (e.g. \"ip-dst not-an-ip\")"),
        "{summary}"
    );
}

#[tokio::test]
async fn keys_age_out_after_their_ttl() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let cfg = SyncConfig {
        ttl_secs: Some(2),
        ..misp_config(&misp, &mc)
    };
    run_once(&cfg, false).await.unwrap();
    assert!(mc.entry("domain-evil.example").is_some());
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(
        mc.entry("domain-evil.example").is_none(),
        "still there after its TTL"
    );
}

#[tokio::test]
async fn plain_values_name_the_feeds_like_the_classic_script() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let cfg = SyncConfig {
        value_format: ValueFormat::Plain,
        ..misp_config(&misp, &mc)
    };
    run_once(&cfg, false).await.unwrap();
    let (v, _) = mc.entry("domain-evil.example").unwrap();
    assert_eq!(v, b"Feed-PhishTank,Feed-RansomwareTracker");
    assert_eq!(mc.entry("ip-src-192.0.2.200").unwrap().0, b"MISP");
}

#[tokio::test]
async fn a_namespace_prefixes_every_key() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let cfg = SyncConfig {
        namespace: Some("ti".into()),
        ..misp_config(&misp, &mc)
    };
    run_once(&cfg, false).await.unwrap();
    assert!(mc.entry("ti:domain-evil.example").is_some());
    assert!(mc.entry("domain-evil.example").is_none());
    assert!(mc
        .get(safe_key("ti:domain-bad name.example").as_str())
        .is_some());
}

#[tokio::test]
async fn a_rejected_key_names_the_status() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let mut cfg = misp_config(&misp, &mc);
    cfg.misp_key = Some(dnsenrich::output::Secret::new("wrong"));
    let e = run_once(&cfg, false).await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "MISP at {} rejected the API key (HTTP 403); check --misp-key and that the user may use the API",
            misp.url
        )
    );
    // And a 401 the same way; nothing was written.
    misp.set_mode(Mode::Status(401));
    let e = run_once(&misp_config(&misp, &mc), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("rejected the API key (HTTP 401)"), "{e}");
    misp.set_mode(Mode::Status(500));
    let e = run_once(&misp_config(&misp, &mc), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("answered HTTP 500: Authentication failed"),
        "{e}"
    );
    assert_eq!(mc.item_count(), 0);
}

#[tokio::test]
async fn missing_key_is_a_clear_error() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let mut cfg = misp_config(&misp, &mc);
    cfg.misp_key = None;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("misp.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    cfg.misp_key_file = Some(key_file);
    run_once(&cfg, false).await.unwrap();
    cfg.misp_key_file = Some(dir.path().join("missing.key"));
    let e = run_once(&cfg, false).await.unwrap_err().to_string();
    assert!(e.starts_with("cannot read the MISP API key from "), "{e}");
    assert!(e.ends_with("missing.key: no such file or directory"), "{e}");
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    misp.set_mode(Mode::Malformed);
    let e = run_once(&misp_config(&misp, &mc), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("MISP at {} (page 1): malformed data: ", misp.url)),
        "{e}"
    );
    assert!(e.contains("line"), "names where: {e}");
    assert_eq!(mc.item_count(), 0);
}

#[tokio::test]
async fn a_huge_response_is_cut_off_not_buffered() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    misp.set_mode(Mode::Huge(64 << 20));
    let cfg = SyncConfig {
        max_response_mib: 2,
        ..misp_config(&misp, &mc)
    };
    let started = Instant::now();
    let e = run_once(&cfg, false).await.unwrap_err().to_string();
    assert!(
        e.contains("(page 1): the response is larger than 2 MiB; lower page_limit"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn unreachable_misp_is_a_clear_error() {
    let mc = Memcached::start();
    let (_hold, port) = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = SyncConfig {
        misp_url: Some(url.clone()),
        misp_key: Some(dnsenrich::output::Secret::new(KEY)),
        memcached: vec![mc.addr.clone()],
        ..SyncConfig::default()
    };
    let e = run_once(&cfg, false).await.unwrap_err().to_string();
    assert_eq!(e, format!("MISP at {url} unreachable: connection refused"));
}

#[tokio::test]
async fn unreachable_memcached_fails_before_misp_is_asked() {
    let misp = MispServer::start(KEY);
    let (_hold, port) = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = SyncConfig {
        misp_url: Some(misp.url.clone()),
        misp_key: Some(dnsenrich::output::Secret::new(KEY)),
        memcached: vec![addr.clone()],
        ..SyncConfig::default()
    };
    let e = run_once(&cfg, false).await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!("memcached {addr} unreachable: connection refused")
    );
    assert!(misp.requests().is_empty());
}

/// The keys of the fixture feed, and who they name.
fn check_feed_keys(mc: &Memcached, report: &dnsenrich::sync::SyncReport) {
    // Event 1 is tagged Feed-BotnetC2; event 2 has no Feed- tag, so it is
    // named after the feed. botnet-c2.example is in both.
    let v = mc.json("domain-botnet-c2.example");
    assert_eq!(names(&v), ["Feed-BotnetC2", "feed"]);
    assert_eq!(v.feeds[0].provider.as_deref(), Some("CIRCL"));
    assert_eq!(
        v.feeds[0].event_id.as_deref(),
        Some("0b5b6f3c-2f7e-4f71-9a43-6c1f0e8d7a01")
    );
    assert_eq!(v.feeds[0].event_info.as_deref(), Some("Botnet C2 servers"));
    assert_eq!(v.feeds[0].threat_level.as_deref(), Some("high"));
    assert_eq!(
        v.feeds[0].first_seen.as_deref(),
        Some("2026-03-30T12:00:00Z")
    );
    assert_eq!(v.feeds[1].threat_level.as_deref(), Some("medium"));
    assert!(mc.entry("ip-dst-198.51.100.77").is_some());
    // Attributes inside objects count too.
    assert_eq!(
        names(&mc.json("domain-obj-domain.example")),
        ["Feed-BotnetC2"]
    );
    assert!(mc.entry("ip-dst-198.51.100.78").is_some());
    assert!(mc.entry("domain-drop.obj-domain.example").is_some());
    assert_eq!(names(&mc.json("domain-login.phish.example")), ["feed"]);
    // md5 and email-src are not selected; to_ids off is not loaded.
    assert!(mc.entry("domain-benign-context.example").is_none());
    assert_eq!(report.skipped[&SkipReason::TypeNotSelected], 2);
    assert_eq!(report.skipped[&SkipReason::NotForDetection], 1);
    assert_eq!(report.written, 6);
    assert_eq!(report.by_type["domain"], 3);
    assert_eq!(report.by_type["url"], 1);
}

#[tokio::test]
async fn misp_feed_from_a_directory() {
    let mc = Memcached::start();
    let cfg = SyncConfig {
        misp_feeds: vec![fixtures().join("feed").display().to_string()],
        memcached: vec![mc.addr.clone()],
        ..SyncConfig::default()
    };
    let report = run_once(&cfg, false).await.unwrap();
    check_feed_keys(&mc, &report);
    assert_eq!(report.sources.len(), 1);
    assert!(report.sources[0].0.starts_with("MISP feed /"));
    // A one-shot run without --ttl keeps keys for a day.
    let (_, ttl) = mc.entry("domain-botnet-c2.example").unwrap();
    assert!((86_390..=86_400).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn misp_feed_over_http() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let cfg = SyncConfig {
        misp_feeds: vec![format!("{}/feed/", misp.url)],
        memcached: vec![mc.addr.clone()],
        ..SyncConfig::default()
    };
    let report = run_once(&cfg, false).await.unwrap();
    check_feed_keys(&mc, &report);
    let mut gets = misp.gets();
    gets.sort();
    assert_eq!(
        gets,
        [
            "/feed/0b5b6f3c-2f7e-4f71-9a43-6c1f0e8d7a01.json",
            "/feed/0b5b6f3c-2f7e-4f71-9a43-6c1f0e8d7a02.json",
            "/feed/manifest.json"
        ]
    );
    // A feed URL that is not there names the URL and the status.
    let cfg = SyncConfig {
        misp_feeds: vec![format!("{}/feed/nowhere/", misp.url)],
        memcached: vec![mc.addr.clone()],
        ..SyncConfig::default()
    };
    let e = run_once(&cfg, false).await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "MISP feed manifest {}/feed/nowhere/manifest.json answered HTTP 404: Not Found",
            misp.url
        )
    );
}

#[tokio::test]
async fn a_feed_named_on_the_command_line_keeps_its_feed_tags() {
    let mc = Memcached::start();
    let cfg = SyncConfig {
        misp_feeds: vec![format!("CIRCL-OSINT={}", fixtures().join("feed").display())],
        memcached: vec![mc.addr.clone()],
        ..SyncConfig::default()
    };
    run_once(&cfg, false).await.unwrap();
    assert_eq!(
        names(&mc.json("domain-botnet-c2.example")),
        ["CIRCL-OSINT", "Feed-BotnetC2"]
    );
}

fn list(path: String, name: Option<&str>) -> ListSource {
    ListSource {
        path_or_url: path,
        feed_name: name.map(str::to_string),
        format: ListFormat::Auto,
        csv_column: None,
        csv_feed_column: None,
    }
}

#[tokio::test]
async fn blocklists_plain_hosts_and_csv() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let lists = fixtures().join("lists");
    let mut csv = list(format!("{}/lists/urlhaus.csv", misp.url), Some("URLhaus"));
    csv.csv_column = Some("url".into());
    csv.csv_feed_column = Some("threat".into());
    let cfg = SyncConfig {
        lists: vec![
            list(
                lists.join("ads.hosts").display().to_string(),
                Some("StevenBlack"),
            ),
            list(lists.join("plain.txt").display().to_string(), None),
            csv,
        ],
        memcached: vec![mc.addr.clone()],
        ..SyncConfig::default()
    };
    let report = run_once(&cfg, false).await.unwrap();

    // hosts: every name after the address; localhost lines are not indicators.
    for k in [
        "domain-ads.tracker.example",
        "domain-pixel.tracker.example",
        "domain-metrics.tracker.example",
        "domain-telemetry.example",
    ] {
        assert_eq!(names(&mc.json(k)), ["StevenBlack"], "{k}");
    }
    assert!(mc.entry("domain-localhost").is_none());
    assert_eq!(report.skipped[&SkipReason::HostsBoilerplate], 7);
    // plain: names (lower-cased, no trailing dot), addresses, URL hosts; the
    // feed is named after the file.
    let v = mc.json("domain-malware-drop.example");
    assert_eq!(names(&v), ["plain"]);
    assert!(mc.entry("domain-www.malware-drop.example").is_some());
    assert!(mc.entry("ip-dst-198.51.100.23").is_some());
    assert!(mc.entry("ip-dst-2001:db8::bad").is_some());
    assert!(mc.entry("ip-dst-203.0.113.99").is_some());
    // CSV over HTTP, by header name, the feed from another column.
    assert_eq!(
        names(&mc.json("domain-payload.example")),
        ["malware_download"]
    );
    assert_eq!(
        names(&mc.json("domain-phish.landing.example")),
        ["phishing"]
    );
    assert!(mc.entry("ip-dst-198.51.100.200").is_some());
    // A list gives no direction: every address is also filed under ip-src.
    for ip in [
        "198.51.100.23",
        "2001:db8::bad",
        "203.0.113.99",
        "198.51.100.200",
    ] {
        assert!(mc.entry(&format!("ip-src-{ip}")).is_some(), "{ip}");
    }
    // Bad entries are counted with the reason.
    assert_eq!(report.skipped[&SkipReason::InvalidDomain], 2);
    assert_eq!(report.skipped[&SkipReason::InvalidIp], 1);
    assert_eq!(report.written, 16);
    assert_eq!(report.sources.len(), 3);
    assert_eq!(report.sources[0].1, 4);
}

#[tokio::test]
async fn csv_by_column_number() {
    let mc = Memcached::start();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c2.txt");
    std::fs::write(
        &p,
        "first_seen,host,port\n2026-04-01,c2-a.example,443\n2026-04-02,C2-B.example,8443\n",
    )
    .unwrap();
    let mut l = list(p.display().to_string(), Some("C2"));
    l.format = ListFormat::Csv;
    l.csv_column = Some("2".into());
    let cfg = SyncConfig {
        lists: vec![l],
        memcached: vec![mc.addr.clone()],
        ..SyncConfig::default()
    };
    let report = run_once(&cfg, false).await.unwrap();
    assert_eq!(report.written, 2);
    assert!(mc.entry("domain-c2-b.example").is_some());
}

#[tokio::test]
async fn to_file_writes_the_store_file_the_enricher_loads() {
    let misp = MispServer::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("iocs.ndjson");
    let cfg = SyncConfig {
        misp_url: Some(misp.url.clone()),
        misp_key: Some(dnsenrich::output::Secret::new(KEY)),
        misp_feeds: vec![fixtures().join("feed").display().to_string()],
        // No memcached is contacted.
        memcached: vec![format!("127.0.0.1:{}", closed_port().1)],
        to_file: Some(out.clone()),
        ..SyncConfig::default()
    };
    let report = run_once(&cfg, false).await.unwrap();
    assert_eq!(report.target, format!("file {}", out.display()));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, report.written);
    // Keys as the lookups build them; the store applies key safety itself.
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"domain-bad name.example"));
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by key");
    let evil = lines
        .iter()
        .find(|l| l["key"] == "domain-evil.example")
        .unwrap();
    assert_eq!(evil["value"]["feeds"].as_array().unwrap().len(), 2);
    assert_eq!(evil["value"]["type"], "domain");
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // The enricher's in-process store reads it under the same keys.
    let store = dnsenrich::enrich::store::StoreMap::load(std::slice::from_ref(&out)).unwrap();
    assert_eq!(store.len() as u64, report.written);
    let ind = store.get("domain-evil.example").unwrap();
    assert_eq!(ind.feeds.len(), 2);
    assert!(store
        .get(safe_key("domain-bad name.example").as_str())
        .is_some());
    assert!(store.get("domain-botnet-c2.example").is_some());
}

#[tokio::test]
async fn run_every_repeats_until_shutdown() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let cfg = SyncConfig {
        every: Some("1s".parse().unwrap()),
        ttl_secs: None,
        ..misp_config(&misp, &mc)
    };
    let (trigger, shutdown) = dnsenrich::pipeline::shutdown::channel();
    let task = tokio::spawn(dnsenrich::sync::run_every(cfg, shutdown));
    let deadline = Instant::now() + Duration::from_secs(10);
    while misp.requests().len() < 6 {
        assert!(Instant::now() < deadline, "fewer than two runs in 10s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run_every stops on shutdown")
        .unwrap()
        .unwrap();
    // The TTL defaults to twice the interval.
    let (_, ttl) = mc.entry("domain-evil.example").unwrap();
    assert!((1..=2).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn ttl_over_30_days_is_sent_as_a_unix_time() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let cfg = SyncConfig {
        ttl_secs: Some(40 * 86_400),
        ..misp_config(&misp, &mc)
    };
    run_once(&cfg, false).await.unwrap();
    let (_, ttl) = mc.entry("domain-evil.example").unwrap();
    // memcached's clock ticks in whole seconds from its own start.
    assert!((40 * 86_400 - 10..=40 * 86_400 + 2).contains(&ttl), "{ttl}");
}

#[test]
fn fixtures_are_where_the_readme_says() {
    for f in [
        "README.md",
        "attributes.json",
        "malformed.json",
        "error-403.json",
        "feed/manifest.json",
        "feed/hashes.csv",
        "lists/ads.hosts",
        "lists/plain.txt",
        "lists/urlhaus.csv",
        "lists/both-ways/blocklist.txt",
        "lists/both-ways/iocs.csv",
    ] {
        let p: PathBuf = fixtures().join(f);
        assert!(p.is_file(), "{}", p.display());
    }
}

#[tokio::test]
async fn https_misp_with_a_custom_ca_and_only_explicit_insecure() {
    let mc = Memcached::start();
    let pki = Pki::server();
    let misp = MispServer::start_tls(KEY, &pki.path("server.pem"), &pki.path("server.key"));
    assert!(misp.url.starts_with("https://"));

    // Not trusted by default: a clear certificate error, nothing asked.
    let e = run_once(&misp_config(&misp, &mc), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("MISP at {} unreachable: ", misp.url)) && e.contains("certificate"),
        "{e}"
    );
    assert!(misp.requests().is_empty());

    // Trusted through --misp-ca.
    let cfg = SyncConfig {
        misp_ca_file: Some(pki.path("ca.pem")),
        ..misp_config(&misp, &mc)
    };
    let report = run_once(&cfg, false).await.unwrap();
    assert_eq!(report.written, 9);

    // Or, only when asked, not verified at all.
    let cfg = SyncConfig {
        insecure: true,
        ..misp_config(&misp, &mc)
    };
    run_once(&cfg, false).await.unwrap();

    // A CA file that is not PEM is refused with its path.
    let cfg = SyncConfig {
        misp_ca_file: Some(pki.path("server.ext")),
        ..misp_config(&misp, &mc)
    };
    let e = run_once(&cfg, false).await.unwrap_err().to_string();
    assert!(e.starts_with("cannot use the CA file "), "{e}");
}

// ------------------------------------------------- the binary, end to end

fn sync_cli(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut v: Vec<&std::ffi::OsStr> = vec!["sync".as_ref()];
    v.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    let (status, _out, err) = common::daemon::run_to_exit(&v, Duration::from_secs(60));
    (status, err)
}

#[test]
fn sync_then_run_enriches_a_live_query_for_a_synced_indicator() {
    use common::daemon::{logger, wait_until, DaemonBuilder};
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("misp.key");
    std::fs::write(&key_file, KEY).unwrap();
    let (status, err) = sync_cli(&[
        "--misp-url",
        &misp.url,
        "--misp-key-file",
        key_file.to_str().unwrap(),
        "--memcached",
        &mc.addr,
        "--page-limit",
        "5",
    ]);
    assert!(status.success(), "{err}");
    assert!(err.contains("9 keys written to memcached"), "{err}");
    assert!(err.contains("by feed: Feed-PhishTank"), "{err}");

    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .arg("--memcached")
        .arg(&mc.addr)
        .start();
    let port = d.udp().port().to_string();
    logger(
        &["-n", "127.0.0.1", "-P", &port, "-d", "-t", "dnsmasq"],
        b"query[A] evil.example from 192.0.2.1\nquery[A] clean.example from 192.0.2.1\n",
    );
    wait_until("two events", Duration::from_secs(10), || {
        d.events().len() >= 2
    });
    let events = d.events();
    let hit = events
        .iter()
        .find(|e| e["dns"]["question"]["name"] == "evil.example")
        .expect("the query for the synced indicator");
    assert_eq!(
        hit["misp_src"],
        serde_json::json!(["Feed-PhishTank", "Feed-RansomwareTracker"]),
        "{hit}"
    );
    let enrichments = hit["threat"]["enrichments"].as_array().unwrap();
    assert!(enrichments
        .iter()
        .all(|e| e["matched"]["atomic"] == "evil.example"));
    let miss = events
        .iter()
        .find(|e| e["dns"]["question"]["name"] == "clean.example")
        .unwrap();
    // A clean miss, as the classic pipeline marks it.
    assert_eq!(miss["misp_src"], "none", "{miss}");
    assert!(miss["threat"]["enrichments"].is_null(), "{miss}");
    assert!(d.sigterm().success());
}

/// Every key of a store and its feeds, sorted.
fn store_keys(files: &[PathBuf]) -> Vec<(String, Vec<String>)> {
    let m = dnsenrich::enrich::store::StoreMap::load(files).unwrap();
    let mut v: Vec<(String, Vec<String>)> = m
        .keys()
        .map(|k| {
            let feeds = m.get(k).unwrap().feeds.iter().map(|f| f.name.clone());
            (k.to_string(), feeds.collect())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_list_gives_the_same_keys_as_ioc_file_and_through_sync() {
    let dir = fixtures().join("lists/both-ways");
    let (txt, csv) = (dir.join("blocklist.txt"), dir.join("iocs.csv"));
    let direct = store_keys(&[txt.clone(), csv.clone()]);

    let out = tempfile::tempdir().unwrap();
    let (txt_out, csv_out) = (out.path().join("txt.ndjson"), out.path().join("csv.ndjson"));
    let (status, err) = sync_cli(&[
        "--list",
        txt.to_str().unwrap(),
        "--to-file",
        txt_out.to_str().unwrap(),
    ]);
    assert!(status.success(), "{err}");
    // The CSV names the feed in its second column.
    let (status, err) = sync_cli(&[
        "--list",
        csv.to_str().unwrap(),
        "--csv-feed-column",
        "2",
        "--to-file",
        csv_out.to_str().unwrap(),
    ]);
    assert!(status.success(), "{err}");
    let synced = store_keys(&[txt_out, csv_out]);

    // The same keys with the same feeds, whichever way the list was read.
    assert_eq!(direct, synced);
    let keys: Vec<&str> = synced.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "domain-ads.tracker.example",
            "domain-c2.example",
            "domain-malware-drop.example",
            "domain-metrics.tracker.example",
            "domain-nofeed.example",
            "domain-payload.example",
            "domain-phish.landing.example",
            "domain-pixel.tracker.example",
            "domain-www.malware-drop.example",
            "ip-dst-198.51.100.200",
            "ip-dst-198.51.100.23",
            "ip-dst-2001:db8::bad",
            "ip-dst-203.0.113.99",
            "ip-src-198.51.100.200",
            "ip-src-198.51.100.23",
            "ip-src-2001:db8::bad",
            "ip-src-203.0.113.99",
        ]
    );
    let feeds = |k: &str| synced.iter().find(|(x, _)| x == k).unwrap().1.clone();
    assert_eq!(feeds("domain-ads.tracker.example"), ["blocklist"]);
    assert_eq!(feeds("domain-c2.example"), ["Feed-CSV"]);
    assert_eq!(feeds("ip-dst-198.51.100.200"), ["Feed-Other"]);
    assert_eq!(feeds("domain-nofeed.example"), ["iocs"]);
}

#[test]
fn the_command_fails_clearly_on_bad_credentials_and_servers() {
    let mc = Memcached::start();
    let misp = MispServer::start(KEY);
    let (status, err) = sync_cli(&[
        "--misp-url",
        &misp.url,
        "--misp-key",
        "wrong",
        "--memcached",
        &mc.addr,
    ]);
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "MISP at {} rejected the API key (HTTP 403)",
            misp.url
        )),
        "{err}"
    );

    let (_hold, port) = closed_port();
    let dead = format!("127.0.0.1:{port}");
    let (status, err) = sync_cli(&[
        "--list",
        fixtures().join("lists/plain.txt").to_str().unwrap(),
        "--memcached",
        &dead,
    ]);
    assert!(!status.success());
    assert!(
        err.contains(&format!("memcached {dead} unreachable: connection refused")),
        "{err}"
    );

    let (status, err) = sync_cli(&["--memcached", &mc.addr]);
    assert!(!status.success());
    assert!(err.contains("no source"), "{err}");
}

#[test]
fn run_with_a_sync_section_loads_indicators_in_the_background() {
    use common::daemon::{logger, wait_until, DaemonBuilder};
    let mc = Memcached::start();
    let hosts = fixtures().join("lists/ads.hosts");
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .config(&format!(
            "[sync]\nmemcached = [{addr:?}]\nevery = \"1h\"\n\
             [[sync.lists]]\npath_or_url = {path:?}\nfeed_name = \"StevenBlack\"\n",
            addr = mc.addr,
            path = hosts.display().to_string(),
        ))
        .arg("--memcached")
        .arg(&mc.addr)
        .start();
    wait_until("the background sync", Duration::from_secs(10), || {
        mc.entry("domain-ads.tracker.example").is_some()
    });
    // The TTL is twice the interval.
    let (_, ttl) = mc.entry("domain-ads.tracker.example").unwrap();
    assert!((7190..=7200).contains(&ttl), "{ttl}");
    let port = d.udp().port().to_string();
    logger(
        &["-n", "127.0.0.1", "-P", &port, "-d", "-t", "dnsmasq"],
        b"query[A] ads.tracker.example from 192.0.2.9\n",
    );
    wait_until("the event", Duration::from_secs(10), || {
        !d.events().is_empty()
    });
    assert_eq!(d.events()[0]["misp_src"], "StevenBlack");
    assert!(d.sigterm().success());
}

#[test]
fn run_tells_how_old_the_synced_indicators_are_and_when_they_expired() {
    use common::daemon::{http_get, wait_until, DaemonBuilder};
    let mc = Memcached::start();
    let dir = tempfile::tempdir().unwrap();
    let list_file = dir.path().join("bad.txt");
    std::fs::write(&list_file, "evil.example\nworse.example\n").unwrap();
    let (status, err) = sync_cli(&[
        "--list",
        &format!("Blocklist={}", list_file.display()),
        "--memcached",
        &mc.addr,
        "--ttl",
        "1h",
    ]);
    assert!(status.success(), "{err}");
    // The run left its status beside the keys, with the TTL it used.
    let status_value = mc
        .get("dnsenrich-sync-status")
        .expect("sync writes its status key");
    let st: serde_json::Value = serde_json::from_slice(&status_value).unwrap();
    assert_eq!(st["ttl_secs"], 3600, "{st}");
    assert_eq!(st["keys"], 2, "{st}");
    let synced_at = st["synced_at"].as_i64().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - synced_at).abs() < 120,
        "{st}"
    );

    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .config("[enrich]\nfreshness_check_secs = 1\n")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .arg("--memcached")
        .arg(&mc.addr)
        .start();
    let m = d.metrics.unwrap();
    wait_until("the status read", Duration::from_secs(10), || {
        d.metric("dnsenrich_indicators_status_present") == Some(1.0)
    });
    let left = d.metric("dnsenrich_indicators_expire_in_seconds").unwrap();
    assert!(left > 3000.0 && left <= 3600.0, "{left}");
    wait_until("ready", Duration::from_secs(10), || {
        http_get(m, "/ready").0 == 200
    });

    // The keys expire, and their status with them.
    mc.delete("dnsenrich-sync-status");
    wait_until("not ready once expired", Duration::from_secs(10), || {
        http_get(m, "/ready").0 == 503
    });
    let (_, body) = http_get(m, "/ready");
    assert!(body.contains("indicators"), "{body}");
    assert!(
        d.stderr()
            .contains("the indicators in memcached have expired"),
        "{}",
        d.stderr()
    );
    assert_eq!(d.metric("dnsenrich_indicators_status_present"), Some(0.0));
    assert!(d.sigterm().success());
}

#[test]
fn memcached_down_from_the_start_is_not_ready() {
    use common::daemon::{http_get, wait_until, DaemonBuilder};
    let port = common::memcached::free_port();
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .arg("--memcached")
        .arg(format!("127.0.0.1:{port}"))
        .start();
    let m = d.metrics.unwrap();
    // No lookup has happened: readiness comes from asking the server.
    let (code, body) = http_get(m, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("memcached"), "{body}");
    let _mc = Memcached::start_on(port);
    wait_until(
        "ready once memcached answers",
        Duration::from_secs(15),
        || http_get(m, "/ready").0 == 200,
    );
    assert!(d.sigterm().success());
}
