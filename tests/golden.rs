//! Golden tests: every raw log file under `fixtures/raw/` is parsed and compared,
//! line by line, with its expected ECS output under `fixtures/golden/` (same
//! relative path, `.ndjson`). Also checks that every rule of every shipped grammar
//! is exercised by at least one fixture line, and that every line of the bench
//! mix (`benches/support/mix.rs`) parses, so the benchmarks measure real matches.
//!
//! To regenerate the expected files after an intended change, run
//! `DNSENRICH_BLESS=1 cargo test --test golden` and review the diff.

#[path = "../benches/support/mix.rs"]
mod mix;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dnsenrich::decode::{LineDecoder, DEFAULT_MAX_LINE};
use dnsenrich::grammar::GrammarSet;

const NOW: &str = "2026-11-28T12:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn raw_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "log") {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&root().join("raw"), &mut v);
    assert!(!v.is_empty(), "no fixtures under fixtures/raw");
    v
}

fn golden_path(raw: &Path) -> PathBuf {
    let rel = raw.strip_prefix(root().join("raw")).unwrap();
    root().join("golden").join(rel).with_extension("ndjson")
}

fn decoder() -> LineDecoder {
    LineDecoder::new(
        Arc::new(GrammarSet::builtin().unwrap()),
        "UTC".parse().unwrap(),
        DEFAULT_MAX_LINE,
    )
}

fn lines(raw: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(raw).unwrap();
    let mut v: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if v.last().is_some_and(Vec::is_empty) {
        v.pop();
    }
    v
}

#[test]
fn fixtures_match_golden_output() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let bless = std::env::var_os("DNSENRICH_BLESS").is_some();
    let mut failures = Vec::new();
    for raw in raw_files() {
        let mut d = decoder();
        let actual: Vec<String> = lines(&raw)
            .iter()
            .map(|l| {
                let ev = d.decode_at(l, false, now);
                let fast = ev.to_json();
                // The hand-written encoder must give serde's bytes exactly.
                assert_eq!(
                    fast,
                    serde_json::to_string(&ev).unwrap(),
                    "{}",
                    raw.display()
                );
                fast
            })
            .collect();
        let gpath = golden_path(&raw);
        if bless {
            std::fs::create_dir_all(gpath.parent().unwrap()).unwrap();
            std::fs::write(&gpath, actual.join("\n") + "\n").unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&gpath).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with DNSENRICH_BLESS=1 to create it)",
                gpath.display()
            )
        });
        let expected: Vec<&str> = expected.lines().collect();
        assert_eq!(
            expected.len(),
            actual.len(),
            "{}: one event per line",
            raw.display()
        );
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            let ev: serde_json::Value = serde_json::from_str(e).unwrap();
            let av: serde_json::Value = serde_json::from_str(a).unwrap();
            if ev != av {
                failures.push(format!(
                    "{}:{}:\n  expected {e}\n  actual   {a}",
                    raw.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} lines differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_grammar_rule_has_a_fixture_line() {
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let set = GrammarSet::builtin().unwrap();
    let mut seen = BTreeSet::new();
    let mut d = decoder();
    for raw in raw_files() {
        for l in lines(&raw) {
            d.decode_at(&l, false, now);
            if let Some(m) = d.last_match() {
                seen.insert((m.grammar, m.rule));
            }
        }
    }
    let missing: Vec<String> = set
        .grammars()
        .iter()
        .flat_map(|g| g.rules.iter().map(move |r| (g.name, r.name)))
        .filter(|k| !seen.contains(k))
        .map(|(g, r)| format!("{g}:{r}"))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a fixture line: {missing:?}"
    );
}

#[test]
fn fixture_lines_all_parse_except_the_known_unparsable_set() {
    // Lines in fixtures/raw/unparsable/ are there to show what happens to lines no
    // rule knows; everywhere else every line must match a rule.
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let mut d = decoder();
    let mut unmatched = Vec::new();
    for raw in raw_files() {
        let expect_parse = !raw.components().any(|c| c.as_os_str() == "unparsable");
        for (i, l) in lines(&raw).iter().enumerate() {
            let ev = d.decode_at(l, false, now);
            if expect_parse && ev.tags.contains(&dnsenrich::event::tag::NO_MATCH) {
                unmatched.push(format!(
                    "{}:{}: {}",
                    raw.display(),
                    i + 1,
                    String::from_utf8_lossy(l)
                ));
            }
        }
    }
    assert!(
        unmatched.is_empty(),
        "unmatched fixture lines:\n{}",
        unmatched.join("\n")
    );
}

#[test]
fn the_mix_is_deterministic_and_sized() {
    let a = mix::lines(1000);
    assert_eq!(a.len(), 1000);
    assert_eq!(a, mix::lines(1000));
    assert!(a.iter().any(|l| l.contains("gravity blocked")));
    assert!(a.iter().any(|l| l.contains("UDP ")));
}

#[test]
fn every_line_of_the_mix_parses() {
    let mut d = decoder();
    for l in mix::lines(5000) {
        let ev = d.decode(l.as_bytes());
        assert!(ev.tags.is_empty(), "{l}: {:?}", ev.tags);
    }
}
