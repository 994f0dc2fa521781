//! Key distributions against the real clients: three real memcached servers
//! are filled by pymemcache's `HashClient` (PyPI `pymemcache`), by Ruby's Dalli
//! (Debian `ruby-dalli`) and by libmemcached's weighted ketama (through
//! Debian's `python3-pylibmc`), and for every key the server that
//! [`Distribution::server_for`] names must be the one where a plain `get`
//! finds it — and no other server may have it.
//!
//! A missing client fails the test with the command that installs it: a
//! skipped comparison would say nothing about whether the placement matches.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::memcached::Memcached;
use dnsenrich::indicator::distribution::{Distribution, DistributionKind};

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

/// Runs `program args…` with `keys` on stdin; a missing program or module
/// fails the test with `install`.
fn run_writer(program: &str, args: &[String], keys: &[String], install: &str) {
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
