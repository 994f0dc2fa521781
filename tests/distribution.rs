//! Key distributions against the real clients: three real memcached servers
//! are filled by pymemcache's `HashClient` (PyPI `pymemcache`), by Ruby's Dalli
//! (Debian `ruby-dalli`) and by libmemcached's weighted ketama (through
//! Debian's `python3-pylibmc`), and for every key the server that
//! [`Distribution::server_for`] names must be the one where a plain `get`
//! finds it — and no other server may have it.
//!
//! Then dnsenrich itself against those writers: its lookups with the
//! matching `enrich.distribution` find every key, `dnsenrich check-indicators`
//! says so and, with the wrong distribution, says which one would match and
//! fails; and `dnsenrich sync --distribution dalli` writes keys where Dalli
//! reads them.
//!
//! A missing client fails the test with the command that installs it: a
//! skipped comparison would say nothing about whether the placement matches.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::memcached::Memcached;
use dnsenrich::decode::LineDecoder;
use dnsenrich::enrich::EnrichConfig;
use dnsenrich::grammar::GrammarSet;
use dnsenrich::indicator::distribution::{Distribution, DistributionKind};
use dnsenrich::pipeline::EventBatch;
use dnsenrich::syslog::Zone;

/// Fills the servers with pymemcache's `HashClient`: argv are the servers,
/// stdin the keys, one a line.
const PYMEMCACHE: &str = r#"
import sys
from pymemcache.client.hash import HashClient
c = HashClient(sys.argv[1:])
for k in sys.stdin.read().split():
    assert c.set(k, "v", noreply=False), k
"#;

/// Fills the servers with Dalli: argv are the namespace ("" for none) and the
/// servers (`host:port[:weight]`), stdin the keys.
const DALLI: &str = r#"
require "dalli"
Dalli.logger.level = Logger::ERROR
ns, *servers = ARGV
opts = ns.empty? ? {} : { namespace: ns }
c = Dalli::Client.new(servers, opts)
STDIN.read.split.each { |k| c.set(k, "v", 0, raw: true) or raise k }
c.close
"#;

/// Fills the servers with libmemcached's weighted ketama through pylibmc:
/// argv are the servers (`host:port[:weight]`), stdin the keys.
const PYLIBMC: &str = r#"
import sys
import pylibmc
c = pylibmc.Client(sys.argv[1:], behaviors={"ketama_weighted": True})
for k in sys.stdin.read().split():
    assert c.set(k, "v"), k
"#;

/// Reads keys back with Dalli: argv are the namespace and the servers, stdin
/// the keys; prints the keys Dalli does not find, one a line.
const DALLI_READ: &str = r#"
require "dalli"
Dalli.logger.level = Logger::ERROR
ns, *servers = ARGV
opts = ns.empty? ? {} : { namespace: ns }
c = Dalli::Client.new(servers, opts)
STDIN.read.split.each { |k| puts k if c.get(k, raw: true).nil? }
c.close
"#;

/// Runs `program args…` with `keys` on stdin; a missing program or module
/// fails the test with `install`. Returns what it printed.
fn run_writer(program: &str, args: &[String], keys: &[String], install: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); install it with `{install}`"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(keys.join("\n").as_bytes())
        .expect("write the keys");
    drop(stdin);
    let out = child.wait_with_output().expect("wait for the writer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("ModuleNotFoundError")
            || stderr.contains("cannot load such file")
            || stderr.contains("No module named")
        {
            panic!(
                "the writer's client library is missing; install it with `{install}`:\n{stderr}"
            );
        }
        panic!("{program} failed ({}):\n{stderr}", out.status);
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first Python interpreter on this machine that can import `module`
/// (pip's and Debian's packages may live under different interpreters).
fn python_with(module: &str, install: &str) -> String {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.to_owned();
        }
    }
    panic!("no python3 here can import {module}; install it with `{install}`");
}

fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..150)
        .map(|i| format!("domain-host{i}.example"))
        .collect();
    keys.extend((0..50).map(|i| format!("ip-198.51.100.{i}")));
    keys
}

/// For every key, the one server holding it (a plain `get` on each); panics
/// when a key is on none or on several.
fn where_stored(
    servers: &[Memcached],
    keys: &[String],
    stored_as: impl Fn(&str) -> String,
) -> Vec<usize> {
    keys.iter()
        .map(|k| {
            let on: Vec<usize> = (0..servers.len())
                .filter(|&i| servers[i].get(&stored_as(k)).is_some())
                .collect();
            assert_eq!(on.len(), 1, "{k:?} is on servers {on:?}");
            on[0]
        })
        .collect()
}

/// Asserts that `d` names the server each key was found on, and that every
/// server got some keys (so the comparison covered the whole ring).
fn assert_matches(d: &Distribution, keys: &[String], found: &[usize]) {
    let mut per_server = [0usize; 3];
    for (k, &on) in keys.iter().zip(found) {
        assert_eq!(
            d.server_for(k.as_bytes()),
            on,
            "{:?}: {k:?} was written to server {on}",
            d.kind()
        );
        per_server[on] += 1;
    }
    assert!(
        per_server.iter().all(|&n| n > 0),
        "{:?}: keys per server {per_server:?}",
        d.kind()
    );
}

/// How many keys `d` places where they are not.
fn misplaced(d: &Distribution, keys: &[String], found: &[usize]) -> usize {
    keys.iter()
        .zip(found)
        .filter(|(k, &on)| d.server_for(k.as_bytes()) != on)
        .count()
}

fn start_three() -> Vec<Memcached> {
    (0..3).map(|_| Memcached::start()).collect()
}

#[test]
fn pymemcache_hash_client_keys_are_found_where_it_put_them() {
    let py = python_with("pymemcache", "pip install pymemcache");
    let mc = start_three();
    let servers: Vec<String> = mc.iter().map(|m| m.addr.clone()).collect();
    let keys = keys();
    let mut args = vec!["-c".to_owned(), PYMEMCACHE.to_owned()];
    args.extend(servers.iter().cloned());
    run_writer(&py, &args, &keys, "pip install pymemcache");

    let found = where_stored(&mc, &keys, str::to_owned);
    assert_matches(&Distribution::pymemcache(&servers).unwrap(), &keys, &found);
    // Another placement misses many of them: the choice is visible.
    let ours = Distribution::rendezvous(&servers).unwrap();
    assert!(misplaced(&ours, &keys, &found) > 50);
}

#[test]
fn dalli_keys_are_found_where_it_put_them_with_weights_and_a_namespace() {
    let mc = start_three();
    // The middle server has weight 2, as Dalli's "host:port:weight".
    let servers = vec![
        mc[0].addr.clone(),
        format!("{}:2", mc[1].addr),
        mc[2].addr.clone(),
    ];
    let keys = keys();
    let install = "apt-get install -y ruby ruby-dalli";

    for ns in ["", "intel"] {
        for m in &mc {
            m.flush();
        }
        let mut args = vec!["-e".to_owned(), DALLI.to_owned(), ns.to_owned()];
        args.extend(servers.iter().cloned());
        run_writer("ruby", &args, &keys, install);

        let found = where_stored(&mc, &keys, |k| match ns {
            "" => k.to_owned(),
            ns => format!("{ns}:{k}"),
        });
        let namespace = (!ns.is_empty()).then_some(ns);
        let d = Distribution::dalli(&servers, namespace).unwrap();
        assert_matches(&d, &keys, &found);
        // The weight-2 server holds about half the keys.
        let on_heavy = found.iter().filter(|&&i| i == 1).count();
        assert!(
            (70..=130).contains(&on_heavy),
            "{on_heavy} of 200 on the weight-2 server"
        );
        assert!(misplaced(&Distribution::ketama(&servers).unwrap(), &keys, &found) > 50);
    }
}

#[test]
fn libmemcached_ketama_keys_are_found_where_it_put_them() {
    let install = "apt-get install -y python3-pylibmc";
    let py = python_with("pylibmc", install);
    let mc = start_three();
    let servers = vec![
        format!("{}:3", mc[0].addr),
        mc[1].addr.clone(),
        mc[2].addr.clone(),
    ];
    let keys = keys();
    let mut args = vec!["-c".to_owned(), PYLIBMC.to_owned()];
    args.extend(servers.iter().cloned());
    run_writer(&py, &args, &keys, install);

    let found = where_stored(&mc, &keys, str::to_owned);
    assert_matches(&Distribution::ketama(&servers).unwrap(), &keys, &found);
    let dalli = Distribution::new(DistributionKind::Dalli, &servers).unwrap();
    assert!(misplaced(&dalli, &keys, &found) > 50);
}

/// The names whose `domain-` keys the enrichment tests write.
fn names() -> Vec<String> {
    (0..150).map(|i| format!("host{i}.example")).collect()
}

fn domain_keys() -> Vec<String> {
    names().iter().map(|n| format!("domain-{n}")).collect()
}

/// How many of `names` the enrichment stage built from `cfg` finds (as a
/// query for each, in one batch).
fn enriched(cfg: EnrichConfig, names: &[String]) -> usize {
    let stage = EnrichConfig {
        parent_domains: false,
        ..cfg
    }
    .build()
    .expect("the enrich stage builds");
    let mut d = LineDecoder::new(Arc::new(GrammarSet::builtin().unwrap()), Zone::Local, 4096);
    let mut b = EventBatch {
        events: names
            .iter()
            .map(|n| {
                d.decode(
                    format!("Nov 28 01:10:39 dnsmasq[16144]: 7 10.0.0.5/40000 query[A] {n} from 10.0.0.5")
                        .as_bytes(),
                )
            })
            .collect(),
        acks: Vec::new(),
        seq: 0,
    };
    stage.enricher().enrich(&mut b);
    b.events
        .iter()
        .filter(|ev| {
            let doc: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
            doc["misp_src"] == "v"
        })
        .count()
}

/// `dnsenrich check-indicators ARGS`: the exit code and stderr.
fn check_indicators(args: &[String]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .arg("check-indicators")
        .args(args)
        .output()
        .expect("run dnsenrich check-indicators");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn memcached_flags(servers: &[String]) -> Vec<String> {
    servers
        .iter()
        .flat_map(|s| ["--memcached".to_owned(), s.clone()])
        .collect()
}

#[test]
fn enrich_finds_pymemcache_keys_with_its_distribution_and_the_check_says_so() {
    let py = python_with("pymemcache", "pip install pymemcache");
    let mc = start_three();
    let servers: Vec<String> = mc.iter().map(|m| m.addr.clone()).collect();
    let keys = domain_keys();
    let mut args = vec!["-c".to_owned(), PYMEMCACHE.to_owned()];
    args.extend(servers.iter().cloned());
    run_writer(&py, &args, &keys, "pip install pymemcache");

    let cfg = |distribution| EnrichConfig {
        memcached: servers.clone(),
        distribution,
        ..EnrichConfig::default()
    };
    assert_eq!(enriched(cfg(DistributionKind::Pymemcache), &names()), 150);
    // The default looks for most of them on the wrong server.
    assert!(enriched(cfg(DistributionKind::Rendezvous), &names()) < 100);

    let mut flags = memcached_flags(&servers);
    for k in &keys {
        flags.extend(["--key".to_owned(), k.clone()]);
    }
    let mut right = flags.clone();
    right.extend(["--distribution".to_owned(), "pymemcache".to_owned()]);
    let (code, stdout, stderr) = check_indicators(&right);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("150 keys: 150 found, 0 not where the pymemcache distribution looks"),
        "{stderr}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("\tok: found on "))
            .count(),
        150
    );

    let (code, stdout, stderr) = check_indicators(&flags);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("MISPLACED"), "{stdout}");
    assert!(
        stderr.contains("the pymemcache distribution puts them")
            && stderr.contains("--distribution pymemcache"),
        "{stderr}"
    );
}

#[test]
fn enrich_finds_dalli_keys_with_weights_and_its_namespace() {
    let mc = start_three();
    let servers = vec![
        mc[0].addr.clone(),
        format!("{}:2", mc[1].addr),
        mc[2].addr.clone(),
    ];
    let keys = domain_keys();
    let mut args = vec!["-e".to_owned(), DALLI.to_owned(), "intel".to_owned()];
    args.extend(servers.iter().cloned());
    run_writer("ruby", &args, &keys, "apt-get install -y ruby ruby-dalli");

    let cfg = |distribution| EnrichConfig {
        memcached: servers.clone(),
        distribution,
        namespace: Some("intel".into()),
        ..EnrichConfig::default()
    };
    assert_eq!(enriched(cfg(DistributionKind::Dalli), &names()), 150);
    assert!(enriched(cfg(DistributionKind::Ketama), &names()) < 100);

    // The check reads a blocklist of the names, composing the keys as sync
    // and the enricher do.
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("names.txt");
    std::fs::write(&list, names().join("\n")).unwrap();
    let mut flags = memcached_flags(&servers);
    flags.extend(["--namespace", "intel", "--list", list.to_str().unwrap()].map(str::to_owned));
    let mut right = flags.clone();
    right.extend(["--distribution".to_owned(), "dalli".to_owned()]);
    let (code, stdout, stderr) = check_indicators(&right);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("intel:domain-host7.example\tok: found on "),
        "{stdout}"
    );

    // The default (rendezvous) takes no weights and says so; ketama does.
    let (code, _, stderr) = check_indicators(&flags);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("rendezvous distribution"), "{stderr}");
    let mut wrong = flags.clone();
    wrong.extend(["--distribution".to_owned(), "ketama".to_owned()]);
    let (code, stdout, stderr) = check_indicators(&wrong);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("--distribution dalli"), "{stderr}");
}

#[test]
fn sync_with_the_dalli_distribution_writes_where_dalli_reads() {
    let mc = start_three();
    let servers = vec![
        mc[0].addr.clone(),
        format!("{}:2", mc[1].addr),
        mc[2].addr.clone(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("names.txt");
    std::fs::write(&list, names().join("\n")).unwrap();
    let mut args = memcached_flags(&servers);
    args.extend(
        [
            "--list",
            list.to_str().unwrap(),
            "--distribution",
            "dalli",
            "--namespace",
            "intel",
            "--no-progress",
        ]
        .map(str::to_owned),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .arg("sync")
        .args(&args)
        .output()
        .expect("run dnsenrich sync");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every key is on exactly one server, and all three got some.
    let found = where_stored(&mc, &domain_keys(), |k| format!("intel:{k}"));
    assert!((0..3).all(|s| found.contains(&s)), "{found:?}");

    let mut read = vec!["-e".to_owned(), DALLI_READ.to_owned(), "intel".to_owned()];
    read.extend(servers.iter().cloned());
    let missed = run_writer(
        "ruby",
        &read,
        &domain_keys(),
        "apt-get install -y ruby ruby-dalli",
    );
    assert_eq!(missed, "", "keys Dalli does not find");

    // The default placement puts many of them where Dalli does not look.
    for m in &mc {
        m.flush();
    }
    // (without the weight, which only dalli and ketama take)
    let plain: Vec<String> = mc.iter().map(|m| m.addr.clone()).collect();
    let mut default = memcached_flags(&plain);
    default.extend(
        [
            "--list",
            list.to_str().unwrap(),
            "--namespace",
            "intel",
            "--no-progress",
        ]
        .map(str::to_owned),
    );
    let status = Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .arg("sync")
        .args(&default)
        .output()
        .expect("run dnsenrich sync")
        .status;
    assert!(status.success());
    let missed = run_writer(
        "ruby",
        &read,
        &domain_keys(),
        "apt-get install -y ruby ruby-dalli",
    );
    assert!(missed.lines().count() > 50, "{missed}");
}
