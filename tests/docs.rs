//! The documentation is kept true by tests: every configuration key the code
//! accepts is in `dnsenrich.example.toml` (which says it documents every key),
//! and every metric the code registers is in the README's metrics table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every dotted key of a TOML table (`input.udp.listen`); arrays of tables
/// contribute the keys of their elements.
fn keys(prefix: &str, t: &toml::Table, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => keys(&key, inner, out),
            toml::Value::Array(items)
                if items.iter().all(|i| i.is_table()) && !items.is_empty() =>
            {
                for i in items {
                    keys(&key, i.as_table().unwrap(), out);
                }
            }
            _ => {
                out.insert(key);
            }
        }
    }
}

/// The keys the example file sets or shows commented out (`# key = ...`),
/// with the section they are under.
fn example_keys(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim_start_matches('#').trim();
        if let Some(s) = l.strip_prefix("[[").and_then(|s| s.strip_suffix("]]")) {
            section = s.trim().to_owned();
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            if !s.contains(' ') && !s.contains('"') {
                section = s.trim().to_owned();
            }
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.insert(if section.is_empty() {
                    k.to_owned()
                } else {
                    format!("{section}.{k}")
                });
            }
        }
    }
    out
}

#[test]
fn every_configuration_key_is_in_the_example_config() {
    // The effective configuration of an empty file names every key with its
    // default (check-config prints it).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .arg("check-config")
        .arg("/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    let mut accepted = BTreeSet::new();
    keys("", &printed, &mut accepted);
    let example = std::fs::read_to_string(repo().join("dnsenrich.example.toml")).unwrap();
    let documented = example_keys(&example);
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|k| !documented.contains(*k))
        // Keys under a table the example shows as a whole (e.g. a list of
        // rules) are documented with it.
        .filter(|k| !documented.iter().any(|d| k.starts_with(&format!("{d}."))))
        // A list of tables the example shows with its keys (`[[sync.lists]]`).
        .filter(|k| !documented.iter().any(|d| d.starts_with(&format!("{k}."))))
        .collect();
    assert!(
        missing.is_empty(),
        "keys the code accepts that dnsenrich.example.toml does not show: {missing:?}"
    );
}

/// Every `"dnsenrich_..."` metric name in the sources.
fn metric_names(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            metric_names(&path, out);
            continue;
        }
        if path.extension().map_or(true, |e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for macro_name in [
            "counter!(",
            "gauge!(",
            "histogram!(",
            "describe_counter!(",
            "describe_gauge!(",
            "describe_histogram!(",
        ] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = text[at + macro_name.len()..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else {
                    continue;
                };
                let Some(end) = rest.find('"') else { continue };
                let name = &rest[..end];
                if name.starts_with("dnsenrich_") && !name.starts_with("dnsenrich_test") {
                    out.insert(name.to_owned());
                }
            }
        }
    }
}

#[test]
fn every_metric_is_in_the_readme() {
    let mut names = BTreeSet::new();
    metric_names(&repo().join("src"), &mut names);
    assert!(names.len() > 20, "found only {names:?}");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")) && !readme.contains(&format!("`{n}{{")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics the README does not list: {missing:?}"
    );
}
