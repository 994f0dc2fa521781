//! Parse-stage throughput per resolver product, beside the dnsmasq mix: each
//! product's lines as they arrive over syslog (AdGuard Home's as read from
//! `querylog.json`), shaped like the lines captured from the real servers in
//! `fixtures/raw/resolvers/`, with names, clients and ports varied so no two
//! lines are the same.
//!
//! `cargo bench --bench resolvers`; lines/s = 1 / (time per line).

#[path = "support/mix.rs"]
mod mix;

use std::sync::Arc;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dnsenrich::decode::{LineDecoder, DEFAULT_MAX_LINE};
use dnsenrich::grammar::GrammarSet;

const LINES: usize = 10_000;

/// `LINES` lines from `templates`, with `{n}` a name, `{ip}` a client and
/// `{p}` a port drawn from a fixed-seed generator.
fn lines(templates: &[&str]) -> Vec<String> {
    let mut rng = mix::Rng(0x9e37_79b9_7f4a_7c15);
    let names = ["www", "api", "cdn", "mail", "img", "static", "login", "ads"];
    let zones = ["example.com", "example.net", "example.org", "test"];
    (0..LINES)
        .map(|i| {
            let t = templates[i % templates.len()];
            let n = format!(
                "{}{}.{}",
                names[rng.below(names.len() as u64) as usize],
                rng.below(50),
                zones[rng.below(zones.len() as u64) as usize]
            );
            let ip = format!("192.0.2.{}", 1 + rng.below(250));
            let p = (1024 + rng.below(60000)).to_string();
            t.replace("{n}", &n).replace("{ip}", &ip).replace("{p}", &p)
        })
        .collect()
}

fn products() -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("dnsmasq", mix::lines(LINES)),
        (
            "bind",
            lines(&[
                "<30>Dec  2 14:54:49 ns1 named[812]: client @0x7fd24dc32098 {ip}#{p} ({n}): query: {n} IN A +E(0)K (192.0.2.53)",
                "<30>Dec  2 14:54:49 ns1 named[812]: client @0x7fd24a4f9c98 {ip}#{p} ({n}): query: {n} IN AAAA +E(0)TK (192.0.2.53)",
                "<30>Dec  2 14:54:49 ns1 named[812]: client @0x7fd24dc33c98 {ip}#{p} ({n}): view internal: query: {n} IN A +E(0)DCK (192.0.2.53)",
                "<30>Dec  2 14:54:49 ns1 named[812]: client @0x7fd24a4f9c98 {ip}#{p} ({n}): query failed (REFUSED) for {n}/IN/A at query.c:5708",
            ]),
        ),
        (
            "unbound",
            lines(&[
                "<30>Dec  2 14:55:26 resolver unbound: [27240:0] info: {ip} {n}. A IN",
                "<30>Dec  2 14:55:26 resolver unbound: [27240:0] info: {ip} {n}. A IN NOERROR 0.000320 0 53",
                "<30>Dec  2 14:55:26 resolver unbound: [27240:0] info: {ip} {n}. AAAA IN",
                "<30>Dec  2 14:55:26 resolver unbound: [27240:0] info: {ip} {n}. AAAA IN NXDOMAIN 0.000000 1 96",
                "<30>Dec  2 14:55:26 resolver unbound: [27240:0] info: local.test. static {ip}@{p} {n}. A IN",
            ]),
        ),
        (
            "pdns_recursor",
            lines(&[
                r#"<30>Dec  2 14:55:44 resolver pdns-recursor[812]: msg="Question" subsystem="syncres" level="0" prio="Info" tid="1" ts="1796223333.750" ecs="" mtid="1" proto="udp" qname="{n}" qtype="A" remote="{ip}:{p}""#,
                r#"<30>Dec  2 14:55:44 resolver pdns-recursor[812]: msg="Answer" subsystem="syncres" level="0" prio="Info" tid="1" ts="1796223333.750" additional="1" answers="1" dotout="0" ecs="" mtid="1" netms="0.261000" outqueries="1" proto="udp" qname="{n}" qtype="A" rcode="0" rd="1" remote="{ip}:{p}" tcpout="0" throttled="0" timeouts="0" totms="0.499000" validationState="Indeterminate""#,
            ]),
        ),
        (
            "coredns",
            lines(&[
                r#"<30>Dec  2 14:55:26 node coredns[812]: [INFO] {ip}:{p} - 29008 "A IN {n}. udp 41 false 4096" NOERROR qr,rd,ra,ad 68 0.037990251s"#,
                r#"<30>Dec  2 14:55:26 node coredns[812]: [INFO] {ip}:{p} - 5811 "AAAA IN {n}. udp 43 true 1232" NXDOMAIN qr,rd,ra 114 0.020813s"#,
            ]),
        ),
        (
            "adguardhome",
            lines(&[
                r#"{"T":"2026-12-02T14:55:26.312+00:00","QH":"{n}","QT":"A","QC":"IN","CP":"","Upstream":"tls://1.1.1.1:853","Answer":"EjSBgAABAAEAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQABwAwAAQABAAAAPAAEwAACCg==","IP":"{ip}","Result":{},"Elapsed":12004000,"Cached":false}"#,
                r#"{"IP":"{ip}","T":"2020-11-25T18:55:56.519796+03:00","QH":"{n}","QT":"A","QC":"IN","CP":"","Answer":"Qz+BgAABAAEAAAAAAmFuBnlhbmRleAJydQAAAQABwAwAAQABAAAACgAEAAAAAA==","Result":{"IsFiltered":true,"Reason":3,"Rule":"||an.yandex.","FilterID":1},"Elapsed":837429}"#,
            ]),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let grammars = Arc::new(GrammarSet::builtin().unwrap());
    let mut g = c.benchmark_group("resolvers");
    g.throughput(Throughput::Elements(LINES as u64));
    g.sample_size(20);
    for (product, lines) in products() {
        let mut d = LineDecoder::new(grammars.clone(), "UTC".parse().unwrap(), DEFAULT_MAX_LINE);
        let now = Utc::now();
        // Every line must parse, or the figure would measure misses.
        for l in &lines {
            let ev = d.decode_at(l.as_bytes(), false, now);
            assert!(ev.tags.is_empty(), "{product}: {l}: {:?}", ev.tags);
        }
        g.bench_function(product, |b| {
            b.iter(|| {
                let mut n = 0usize;
                for l in &lines {
                    let ev = d.decode_at(l.as_bytes(), false, now);
                    n += ev.dns.question.name.as_ref().map_or(0, |s| s.len());
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
