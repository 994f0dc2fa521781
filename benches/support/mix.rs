//! A realistic mix of Pi-hole / dnsmasq query-log lines, generated
//! deterministically, for the benchmarks and the load generator.
//!
//! The mix follows what one query produces in a Pi-hole log: `query` is always
//! there, then either `forwarded` + one or more `reply` lines, a `cached` answer,
//! a blocking reason, or a local answer (`config`, hosts file). About a third of
//! the queries are AAAA, some answers are CNAME chains, NXDOMAIN or NODATA. Most
//! lines use the `log-queries=extra` prefix, some `proto`, some none.
//!
//! Bench and load-generator data, so it lives beside the benches and not in the
//! library: `benches/*.rs`, `examples/loadgen.rs` and `tests/golden.rs` include
//! it with `#[path = "…/benches/support/mix.rs"] mod mix;`.

#![allow(dead_code)]

/// A small deterministic generator (xorshift), so the mix is the same on
/// every run; the benchmarks draw from it too. The seed must not be 0.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const WORDS: &[&str] = &[
    "api",
    "cdn",
    "www",
    "mail",
    "static",
    "img",
    "login",
    "update",
    "telemetry",
    "push",
    "edge",
    "assets",
    "media",
    "video",
    "auth",
    "graph",
    "ocsp",
    "time",
    "news",
    "shop",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "example.co.uk",
    "example.io",
    "example.de",
    "example.fr",
    "example.com.au",
    "example.app",
    "example.dev",
];
const BLOCK_REASONS: &[&str] = &[
    "gravity blocked",
    "gravity blocked",
    "gravity blocked",
    "regex denied",
    "exactly denied",
    "regex blacklisted",
];

/// `n` lines of the mix, each without a trailing newline, in the pihole.log file
/// format (`Mmm dd HH:MM:SS dnsmasq[PID]: msg`).
pub fn lines(n: usize) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(n);
    let mut serial: u64 = 1000;
    let mut sec = 0u64;
    while out.len() < n {
        serial += 1;
        sec += 1;
        let stamp = format!(
            "Nov 28 {:02}:{:02}:{:02} dnsmasq[4321]: ",
            (sec / 3600) % 24,
            (sec / 60) % 60,
            sec % 60
        );
        let client_last = 2 + rng.below(200);
        let port = 1024 + rng.below(60000);
        let proto = rng.below(10);
        let prefix = match proto {
            0..=5 => format!("{serial} 192.168.1.{client_last}/{port} "),
            6..=7 => format!("UDP {serial} 192.168.1.{client_last}/{port} "),
            _ => String::new(),
        };
        let name = format!(
            "{}{}.{}",
            WORDS[rng.below(WORDS.len() as u64) as usize],
            rng.below(50),
            DOMAINS[rng.below(DOMAINS.len() as u64) as usize]
        );
        let aaaa = rng.below(3) == 0;
        let qtype = if aaaa { "AAAA" } else { "A" };
        let mut push = |msg: String| {
            let mut l = String::with_capacity(stamp.len() + prefix.len() + msg.len());
            l.push_str(&stamp);
            l.push_str(&prefix);
            l.push_str(&msg);
            out.push(l);
        };
        push(format!(
            "query[{qtype}] {name} from 192.168.1.{client_last}"
        ));
        let answer = |rng: &mut Rng| {
            if aaaa {
                format!("2001:db8::{:x}", rng.below(65535))
            } else {
                format!("203.0.113.{}", rng.below(255))
            }
        };
        match rng.below(100) {
            0..=44 => {
                push(format!("forwarded {name} to 127.0.0.1#5335"));
                if rng.below(5) == 0 {
                    let target = format!("edge{}.cdn.example.net", rng.below(20));
                    push(format!("reply {name} is <CNAME>"));
                    let a = answer(&mut rng);
                    push(format!("reply {target} is {a}"));
                } else {
                    for _ in 0..1 + rng.below(2) {
                        let a = answer(&mut rng);
                        push(format!("reply {name} is {a}"));
                    }
                }
            }
            45..=74 => {
                let a = answer(&mut rng);
                push(format!("cached {name} is {a}"));
            }
            75..=86 => {
                let reason = BLOCK_REASONS[rng.below(BLOCK_REASONS.len() as u64) as usize];
                let a = if aaaa { "::" } else { "0.0.0.0" };
                push(format!("{reason} {name} is {a}"));
            }
            87..=91 => {
                push(format!("forwarded {name} to 127.0.0.1#5335"));
                let neg = if aaaa { "NODATA-IPv6" } else { "NXDOMAIN" };
                push(format!("reply {name} is {neg}"));
            }
            92..=95 => {
                push(format!(
                    "/etc/pihole/custom.list {name} is 192.168.1.{}",
                    rng.below(255)
                ));
            }
            _ => {
                push(format!("config {name} is NODATA-IPv4"));
            }
        }
    }
    out.truncate(n);
    out
}
