//! Property test: any bytes at all, fed to the parse stage, produce exactly one
//! event and never a panic; the event always keeps the line in `event.original`.

use std::sync::Arc;

use dnsenrich::decode::LineDecoder;
use dnsenrich::event::tag;
use dnsenrich::grammar::GrammarSet;
use proptest::prelude::*;

fn decoder(max: usize) -> LineDecoder {
    LineDecoder::new(
        Arc::new(GrammarSet::builtin().unwrap()),
        "Europe/Berlin".parse().unwrap(),
        max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_yield_an_event(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut d = decoder(512);
        let ev = d.decode(&bytes);
        prop_assert!(ev.timestamp.is_some());
        prop_assert_eq!(d.stats.lines, 1);
        // Serialising never fails and gives one JSON object.
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        prop_assert!(v.is_object());
        if bytes.len() > 512 {
            prop_assert!(ev.tags.contains(&tag::TRUNCATED));
        }
    }

    #[test]
    fn dnsmasq_like_lines_never_panic(
        prefix in prop::sample::select(vec!["", "<30>", "<13>1 2026-11-28T01:02:03Z h dnsmasq 1 - - ", "Nov 28 01:02:03 dnsmasq[1]: ", "Jan  8 01:02:03 host dnsmasq[1]: "]),
        serial in prop::option::of(0u32..99999),
        verb in prop::sample::select(vec!["query[A]", "reply", "cached", "forwarded", "gravity blocked", "config", "/etc/hosts", "validation", "ipset add", "UDP", "*"]),
        name in "[a-z0-9. <>\\-]{0,40}",
        tail in "[ -~]{0,60}",
    ) {
        let mut line = String::from(prefix);
        if let Some(s) = serial {
            line.push_str(&format!("{s} 10.0.0.1/53 "));
        }
        line.push_str(verb);
        line.push(' ');
        line.push_str(&name);
        line.push_str(&tail);
        let mut d = decoder(64 * 1024).keep_original(true);
        let ev = d.decode(line.as_bytes());
        prop_assert_eq!(ev.event.original.as_str(), line.trim_end_matches(['\r', '\n', '\0']));
    }
}
