//! A fresh capture from a real dnsmasq, parsed by the real `dnsenrich parse`:
//! `scripts/capture-dnsmasq.sh` runs dnsmasq (Debian `dnsmasq-base`) on
//! loopback ports and queries it with dig; every line it logs must come out as
//! exactly one event, and none may be left unmatched.

use std::path::{Path, PathBuf};
use std::process::Command;

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

fn parse_file(log: &Path) -> (usize, Vec<serde_json::Value>) {
    let input = std::fs::read_to_string(log).unwrap();
    let n = input.lines().count();
    let out = Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .args(["parse", "--timezone", "UTC", "--quiet"])
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (n, events)
}

#[test]
fn fresh_dnsmasq_capture_parses_completely() {
    require("dnsmasq", "dnsmasq-base");
    require("dig", "dnsutils");
    let out = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/capture-dnsmasq.sh");
    // A port range of its own, below the kernel's ephemeral range (32768+)
    // that other tests' free ports come from, so this can run beside them.
    let base = 15000 + (std::process::id() % 1500) as u16 * 10;
    let status = Command::new("bash")
        .arg(&script)
        .arg(out.path())
        .env("CAPTURE_VARIANTS", "plain extra")
        .env("CAPTURE_BASE_PORT", base.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "capture script failed");

    let mut total = 0;
    for variant in ["plain", "extra"] {
        let log = out.path().join(format!("dnsmasq-{variant}.log"));
        let (lines, events) = parse_file(&log);
        assert!(lines > 50, "{variant}: only {lines} lines captured");
        assert_eq!(events.len(), lines, "{variant}: one event per line");
        total += lines;
        let unmatched: Vec<_> = events
            .iter()
            .filter(|e| {
                e["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "_dnsenrich_nomatch"))
            })
            .map(|e| e["event"]["original"].to_string())
            .collect();
        assert!(
            unmatched.is_empty(),
            "{variant}: unmatched lines:\n{}",
            unmatched.join("\n")
        );

        let action = |a: &'static str| events.iter().filter(move |e| e["event"]["action"] == a);
        // Queries name the client; forwards name the upstream with its port.
        assert!(action("dns-query").all(|e| e["source"]["ip"].is_string()));
        assert!(action("dns-forward").any(|e| e["destination"]["port"].is_u64()));
        // Replies carry answers with addresses.
        assert!(action("dns-reply").any(|e| e["dns"]["resolved_ip"].is_array()));
        assert!(
            action("dns-cached").count() > 0,
            "{variant}: no cached answers"
        );
        if variant == "extra" {
            // The serial ties the lines of one query together.
            // It is dnsmasq's counter, not the DNS message id.
            assert!(action("dns-query").all(|e| e["dnsmasq"]["serial"].is_u64()));
            assert!(events.iter().all(|e| e["dns"]["id"].is_null()));
            // Every answer has data, as ECS requires.
            assert!(events
                .iter()
                .filter_map(|e| e["dns"]["answers"].as_array())
                .flatten()
                .all(|a| a["data"].is_string()));
            assert!(action("dns-query").all(|e| e["source"]["port"].is_u64()));
        }
    }
    eprintln!("parsed {total} freshly captured lines");
}
