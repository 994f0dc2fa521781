//! Fuzzes the whole parse stage: syslog header decoding, the shipped grammars
//! and the derived fields, plus JSON encoding of the result.
#![no_main]

use std::sync::{Arc, OnceLock};

use dnsenrich::decode::LineDecoder;
use dnsenrich::grammar::GrammarSet;
use libfuzzer_sys::fuzz_target;

fn grammars() -> Arc<GrammarSet> {
    static G: OnceLock<Arc<GrammarSet>> = OnceLock::new();
    G.get_or_init(|| Arc::new(GrammarSet::builtin().expect("shipped grammars compile")))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut d = LineDecoder::new(grammars(), "UTC".parse().expect("zone"), 4096);
    let ev = d.decode(data);
    let json = ev.to_json();
    assert!(json.starts_with('{'));
});
