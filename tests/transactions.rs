//! Transactions from a real resolver: a dnsmasq (Debian `dnsmasq-base`) on
//! loopback forwarding to a second dnsmasq, queried with dig, its log
//! followed by `dnsenrich run --tail --events transactions`. For every dig
//! query there must be exactly one transaction, and its client, question,
//! rcode and answer records must be what dig received.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{logger, wait_until, DaemonBuilder};
use common::memcached::free_port;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is needed for this test: apt-get install -y {package}"
    );
}

/// A dnsmasq in the foreground, stopped when dropped.
struct Dnsmasq {
    child: Child,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts dnsmasq on `port` with `args`, logging to `log`; waits (bounded)
/// for its start line.
fn dnsmasq(port: u16, log: &Path, args: &[String]) -> Dnsmasq {
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--pid-file=",
    ])
    .arg(format!("--port={port}"))
    .arg(format!("--log-facility={}", log.display()))
    .args(args)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // As root dnsmasq drops to "nobody", who cannot write the log here.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["--user=root", "--group=root"]);
    }
    let child = cmd.spawn().expect("dnsmasq starts");
    let d = Dnsmasq { child };
    wait_until("dnsmasq logs its start", Duration::from_secs(10), || {
        std::fs::read_to_string(log).is_ok_and(|t| t.contains("started, version"))
    });
    d
}

/// One dig query and what came back.
#[derive(Debug)]
struct Asked {
    client: String,
    name: String,
    qtype: String,
    rcode: String,
    /// (owner, type, data) of the answer section, names without the final dot.
    answers: BTreeSet<(String, String, String)>,
}

/// The record types dnsmasq writes with their data (others it logs as `<MX>`).
const LOGGED_TYPES: [&str; 4] = ["A", "AAAA", "CNAME", "PTR"];

fn dig(port: u16, client: &str, name: &str, qtype: &str, tcp: bool) -> Asked {
    let mut cmd = Command::new("dig");
    cmd.arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .arg("-b")
        .arg(client)
        .args(["+tries=1", "+time=3", "+noall", "+comments", "+answer"]);
    if tcp {
        cmd.arg("+tcp");
    }
    if qtype == "PTR" {
        cmd.arg("-x").arg(name);
    } else {
        cmd.arg(name).arg(qtype);
    }
    let out = cmd.output().expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rcode = text
        .split("status: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("dig {name} {qtype}: no status in\n{text}"))
        .to_owned();
    let mut answers = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || !LOGGED_TYPES.contains(&f[3]) {
            continue;
        }
        answers.insert((
            f[0].trim_end_matches('.').to_owned(),
            f[3].to_owned(),
            f[4].trim_end_matches('.').to_owned(),
        ));
    }
    let name = if qtype == "PTR" {
        let ip: std::net::Ipv4Addr = name.parse().unwrap();
        let o = ip.octets();
        format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
    } else {
        name.to_owned()
    };
    Asked {
        client: client.to_owned(),
        name,
        qtype: qtype.to_owned(),
        rcode,
        answers,
    }
}

fn answers_of(t: &Value) -> BTreeSet<(String, String, String)> {
    t["dns"]["answers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| LOGGED_TYPES.contains(&r["type"].as_str().unwrap_or("")))
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or("").to_owned(),
                        r["type"].as_str().unwrap_or("").to_owned(),
                        r["data"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The queries: forwarded, CNAME chains, several records, NXDOMAIN, NODATA,
/// cache hits, a local block, a hosts-file answer, a PTR, TCP, REFUSED.
/// (name, type, tcp, client address).
const QUERIES: &[(&str, &str, bool, &str)] = &[
    ("www.example.test", "A", false, "127.0.0.1"),
    ("www.example.test", "AAAA", false, "127.0.0.2"),
    ("alias.example.test", "A", false, "127.0.0.1"),
    ("deep.example.test", "AAAA", false, "127.0.0.3"),
    ("multi.example.test", "A", false, "127.0.0.1"),
    ("foo.nx.test", "A", false, "127.0.0.2"),
    ("v4only.example.test", "AAAA", false, "127.0.0.1"),
    ("www.example.test", "A", false, "127.0.0.3"),
    ("alias.example.test", "A", false, "127.0.0.2"),
    ("ads.example.test", "A", false, "127.0.0.1"),
    ("printer.lan", "A", false, "127.0.0.4"),
    ("192.0.2.10", "PTR", false, "127.0.0.1"),
    ("deep.example.test", "A", true, "127.0.0.2"),
    ("tcp.example.test", "A", true, "127.0.0.1"),
    // The upstream knows no such zone and has no server: REFUSED.
    ("www.refused.test", "A", false, "127.0.0.3"),
];

fn is_txn(e: &Value) -> bool {
    e["dnsmasq"]["status"].is_string()
}

fn with_query(e: &Value) -> bool {
    is_txn(e) && e["client"]["ip"].is_string()
}

/// Exactly one transaction per dig query, each with what dig received.
fn check_transactions<'e>(
    log_queries: &str,
    events: &'e [Value],
    asked: &[Asked],
) -> Vec<&'e Value> {
    let txns: Vec<&Value> = events.iter().filter(|e| with_query(e)).collect();
    assert_eq!(
        txns.len(),
        asked.len(),
        "{log_queries}: one transaction per dig query:\n{}",
        txns.iter()
            .map(|t| t["message"].to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut unused: Vec<&Value> = txns.clone();
    for a in asked {
        let at = unused.iter().position(|t| {
            t["client"]["ip"] == a.client.as_str()
                && t["dns"]["question"]["name"] == a.name.as_str()
                && t["dns"]["question"]["type"] == a.qtype.as_str()
        });
        let t = unused.remove(at.unwrap_or_else(|| {
            panic!("{log_queries}: no transaction for {a:?} among {unused:#?}")
        }));
        assert_eq!(t["dns"]["response_code"], a.rcode.as_str(), "{a:?}: {t}");
        assert_eq!(answers_of(t), a.answers, "{a:?}: {t}");
        assert_eq!(t["dns"]["type"], "answer", "{t}");
        assert!(t["event"]["start"].is_string() && t["event"]["end"].is_string());
        assert!(
            t["tags"].is_null(),
            "{a:?}: a complete transaction has no tag: {t}"
        );
        if log_queries.starts_with("=extra") {
            assert!(t["dnsmasq"]["serial"].is_u64(), "{t}");
            assert!(t["client"]["port"].is_u64(), "{t}");
        }
    }
    txns
}

fn run_variant(log_queries: &str) {
    require("dnsmasq", "dnsmasq-base");
    require("dig", "dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let up_hosts = dir.path().join("upstream.hosts");
    std::fs::write(
        &up_hosts,
        "192.0.2.21 multi.example.test\n192.0.2.22 multi.example.test\n192.0.2.23 tcp.example.test\n",
    )
    .unwrap();
    let front_hosts = dir.path().join("front.hosts");
    std::fs::write(&front_hosts, "192.0.2.30 printer.lan\n").unwrap();
    let (up_port, front_port) = (free_port(), free_port());
    let _upstream = dnsmasq(
        up_port,
        &dir.path().join("upstream.log"),
        &[
            "--local-ttl=300".into(),
            "--local=/example.test/".into(),
            "--local=/nx.test/".into(),
            format!("--addn-hosts={}", up_hosts.display()),
            "--host-record=www.example.test,192.0.2.10,2001:db8::10".into(),
            "--host-record=v4only.example.test,192.0.2.11".into(),
            "--cname=alias.example.test,www.example.test".into(),
            "--cname=deep.example.test,alias.example.test".into(),
            "--ptr-record=10.2.0.192.in-addr.arpa,www.example.test".into(),
        ],
    );
    let log = dir.path().join("front.log");
    let _front = dnsmasq(
        front_port,
        &log,
        &[
            format!("--log-queries{log_queries}"),
            format!("--server=127.0.0.1#{up_port}"),
            format!("--addn-hosts={}", front_hosts.display()),
            "--address=/ads.example.test/0.0.0.0".into(),
            "--cache-size=100".into(),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .no_network()
        .config("[transactions]\nsettle_ms = 150\nidle_timeout_ms = 3000\n")
        .arg("--events")
        .arg("transactions")
        .arg("--tail")
        .arg(&log)
        .start();
    let asked: Vec<Asked> = QUERIES
        .iter()
        .map(|(n, t, tcp, c)| dig(front_port, c, n, t, *tcp))
        .collect();
    wait_until("a transaction per query", WAIT, || {
        d.events().iter().filter(|e| with_query(e)).count() >= asked.len()
    });
    let started = Instant::now();
    assert!(d.sigterm().success(), "{}", d.stderr());
    assert!(started.elapsed() < WAIT);
    let events = d.events();
    let txns = check_transactions(log_queries, &events, &asked);
    // Statuses as Pi-hole shows them.
    let status = |name: &str, qtype: &str, client: &str| {
        txns.iter()
            .find(|t| {
                t["dns"]["question"]["name"] == name
                    && t["dns"]["question"]["type"] == qtype
                    && t["client"]["ip"] == client
            })
            .map(|t| t["event"]["action"].as_str().unwrap_or("").to_owned())
            .unwrap()
    };
    assert_eq!(status("www.example.test", "A", "127.0.0.1"), "forwarded");
    assert_eq!(status("www.example.test", "A", "127.0.0.3"), "cache");
    assert_eq!(status("alias.example.test", "A", "127.0.0.2"), "cache");
    assert_eq!(status("ads.example.test", "A", "127.0.0.1"), "cache");
    assert_eq!(status("printer.lan", "A", "127.0.0.4"), "cache");
    assert_eq!(status("foo.nx.test", "A", "127.0.0.2"), "forwarded");
    for t in &txns {
        if t["dnsmasq"]["status"] == "forwarded" {
            assert_eq!(t["server"]["port"], up_port, "{t}");
        }
    }
    // Nothing lost: every log line left in exactly one event.
    let logged = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    let in_events: u64 = events
        .iter()
        .map(|e| e["dnsmasq"]["lines"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(
        in_events, logged,
        "{log_queries}: every line of the log in exactly one event"
    );
    // Every transaction was acknowledged: the offset saved at the stop is
    // the end of the log.
    let offsets: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("file-offsets.json")).unwrap(),
    )
    .unwrap();
    let saved: Vec<u64> = offsets["files"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|f| f["offset"].as_u64())
        .collect();
    let size = std::fs::metadata(&log).unwrap().len();
    assert_eq!(saved, [size], "{offsets}");

    // The same log over UDP syslog, one datagram per line, as a relay that
    // forwards pihole.log sends it.
    let state = tempfile::tempdir().unwrap();
    let mut u = DaemonBuilder::new(state.path())
        .config("[input.tcp]\nlisten = []\n[transactions]\nsettle_ms = 150\n")
        .arg("--events")
        .arg("transactions")
        .start();
    let port = u.udp().port().to_string();
    let text = std::fs::read(&log).unwrap();
    logger(
        &["-n", "127.0.0.1", "-P", &port, "-d", "-t", "dnsmasq"],
        &text,
    );
    wait_until("a transaction per query over UDP", WAIT, || {
        u.events().iter().filter(|e| with_query(e)).count() >= asked.len()
    });
    assert!(u.sigterm().success(), "{}", u.stderr());
    let events = u.events();
    check_transactions(&format!("{log_queries} over UDP"), &events, &asked);
    let in_events: u64 = events
        .iter()
        .map(|e| e["dnsmasq"]["lines"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(in_events, logged, "UDP: every line in exactly one event");
}

#[test]
fn every_dig_query_is_one_transaction_with_its_answer_extra_log() {
    run_variant("=extra");
}

#[test]
fn every_dig_query_is_one_transaction_with_its_answer_plain_log() {
    run_variant("");
}

/// A query whose upstream never answers, with an idle timeout far longer
/// than the test: SIGTERM must still emit it (no reply, outcome unknown)
/// before the output flushes, and save the offset past it.
#[test]
fn sigterm_emits_the_open_transactions() {
    require("dnsmasq", "dnsmasq-base");
    require("dig", "dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let (front_port, dead_port) = (free_port(), free_port());
    let log = dir.path().join("front.log");
    let _front = dnsmasq(
        front_port,
        &log,
        &[
            "--log-queries=extra".into(),
            format!("--server=127.0.0.1#{dead_port}"),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .no_network()
        .config("[transactions]\nidle_timeout_ms = 600000\n")
        .arg("--events")
        .arg("transactions")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .arg("--tail")
        .arg(&log)
        .start();
    let _ = Command::new("dig")
        .args(["@127.0.0.1", "-p", &front_port.to_string()])
        .args(["+tries=1", "+time=1", "lost.dead.test", "A"])
        .output()
        .expect("dig runs");
    wait_until("the query is open", WAIT, || {
        d.metric("dnsenrich_transactions_open") == Some(1.0)
    });
    assert!(d.events().is_empty() || d.events().iter().all(|e| e["dnsmasq"]["status"].is_null()));
    assert!(d.sigterm().success(), "{}", d.stderr());
    let events = d.events();
    let t: Vec<&Value> = events
        .iter()
        .filter(|e| e["dns"]["question"]["name"] == "lost.dead.test")
        .collect();
    assert_eq!(t.len(), 1, "{events:#?}");
    assert_eq!(t[0]["event"]["outcome"], "unknown");
    assert_eq!(t[0]["dns"]["type"], "query");
    assert_eq!(t[0]["event"]["action"], "forwarded");
    assert!(t[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "_dnsenrich_txn_no_reply"));
    let offsets: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("file-offsets.json")).unwrap(),
    )
    .unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    let saved: Vec<u64> = offsets["files"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|f| f["offset"].as_u64())
        .collect();
    assert_eq!(saved, [size], "{offsets}");
}

/// Enrichment sees finished transactions: a name of the CNAME chain and an
/// answer address are looked up with the question, `matched.field` says
/// which field matched, and a query Pi-hole blocked that is also on a feed
/// says both. The `dns.answers.name` rule comes from `events =
/// "transactions"` with the default rules.
#[test]
fn a_transaction_is_enriched_on_its_chain_its_addresses_and_its_question() {
    use dnsenrich::config::Config;
    use dnsenrich::correlate::Correlator;
    use dnsenrich::decode::LineDecoder;
    use dnsenrich::pipeline::EventBatch;

    let dir = tempfile::tempdir().unwrap();
    let iocs = dir.path().join("feed.txt");
    std::fs::write(&iocs, "cdn.evil.example\n192.0.2.99\nads.example.com\n").unwrap();
    let cfg = Config::parse(&format!(
        "events = \"transactions\"\n[enrich]\nioc_files = [{:?}]\n",
        iocs.display().to_string()
    ))
    .unwrap();
    assert!(cfg
        .enrich
        .rules
        .iter()
        .any(|r| r.field == "dns.answers.name"));
    let stage = cfg.enrich.build().unwrap();
    let mut c = Correlator::new(cfg.events, cfg.transactions.clone());
    let mut d = LineDecoder::new(cfg.grammars().clone(), cfg.zone().clone(), 4096);
    let p = "Nov 28 01:10:34 dnsmasq[15637]: ";
    for l in [
        "query[A] shop.example.net from 192.0.2.7",
        "forwarded shop.example.net to 1.1.1.1#53",
        "reply shop.example.net is <CNAME>",
        "reply cdn.evil.example is 192.0.2.99",
        "query[A] ads.example.com from 192.0.2.8",
        "gravity blocked ads.example.com is 0.0.0.0",
    ] {
        c.push(d.decode(format!("{p}{l}").as_bytes()), None, Instant::now());
    }
    c.flush();
    let (events, acks) = c.take_output();
    let mut batch = EventBatch {
        events,
        acks,
        seq: 0,
    };
    stage.enricher().enrich(&mut batch);
    let docs: Vec<Value> = batch
        .events
        .iter()
        .map(|e| serde_json::from_str(&e.to_json()).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let by = |name: &str| {
        docs.iter()
            .find(|t| t["dns"]["question"]["name"] == name)
            .unwrap()
    };
    let matched = |t: &Value| -> BTreeSet<(String, String)> {
        t["threat"]["enrichments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["matched"]["field"].as_str().unwrap().to_owned(),
                    e["matched"]["atomic"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let shop = by("shop.example.net");
    assert_eq!(
        matched(shop),
        BTreeSet::from([
            ("dns.answers.name".to_owned(), "cdn.evil.example".to_owned()),
            ("dns.resolved_ip".to_owned(), "192.0.2.99".to_owned()),
        ]),
        "{shop}"
    );
    let ads = by("ads.example.com");
    assert_eq!(ads["event"]["action"], "gravity");
    assert_eq!(ads["rule"]["ruleset"], "gravity");
    assert_eq!(
        matched(ads),
        BTreeSet::from([("dns.question.name".to_owned(), "ads.example.com".to_owned())])
    );
}
