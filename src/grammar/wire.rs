//! A DNS message in wire format, as AdGuard Home keeps it (base64 of the
//! packed answer in `querylog.json`): the response code, the header flags and
//! the A, AAAA, CNAME, PTR and NS answers are read out of it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;

use crate::event::{Answer, Event, Str};

const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

/// Reads a (possibly compressed) name at `at`; returns it and the offset
/// after it in the record (not after a pointer's target).
fn name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut end = None;
    // Bounded: a pointer loop cannot run forever.
    for _ in 0..128 {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            return Some((
                if out.is_empty() { ".".into() } else { out },
                end.unwrap_or(at + 1),
            ));
        }
        if len & 0xc0 == 0xc0 {
            let ptr = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
            end.get_or_insert(at + 2);
            at = ptr;
            continue;
        }
        let label = msg.get(at + 1..at + 1 + len)?;
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(label));
        at += 1 + len;
    }
    None
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Fills the event from a base64 wire message. Returns false (and sets
/// nothing) when the text is not one.
pub fn apply(ev: &mut Event, b64: &str) -> bool {
    let Ok(msg) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let (Some(flags), Some(qd), Some(an)) = (u16_at(&msg, 2), u16_at(&msg, 4), u16_at(&msg, 6))
    else {
        return false;
    };
    let rcode = usize::from(flags & 0x0f);
    ev.dns.response_code = Some(Str::from(RCODES.get(rcode).copied().unwrap_or("")));
    if rcode >= RCODES.len() {
        ev.dns.response_code = Some(Str::from(rcode.to_string()));
    }
    for (bit, f) in [
        (0x0400, "AA"),
        (0x0200, "TC"),
        (0x0100, "RD"),
        (0x0080, "RA"),
        (0x0020, "AD"),
        (0x0010, "CD"),
    ] {
        if flags & bit != 0 && !ev.dns.header_flags.contains(&f) {
            ev.dns.header_flags.push(f);
        }
    }
    let mut at = 12;
    for _ in 0..qd {
        let Some((_, next)) = name(&msg, at) else {
            return true;
        };
        at = next + 4;
    }
    for _ in 0..an {
        let Some((owner, next)) = name(&msg, at) else {
            break;
        };
        let (Some(rtype), Some(rdlen)) = (u16_at(&msg, next), u16_at(&msg, next + 8)) else {
            break;
        };
        let rdata_at = next + 10;
        let Some(rdata) = msg.get(rdata_at..rdata_at + usize::from(rdlen)) else {
            break;
        };
        at = rdata_at + usize::from(rdlen);
        let (t, data) = match (rtype, rdata.len()) {
            (1, 4) => {
                let ip = IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
                if !ev.dns.resolved_ip.contains(&ip) {
                    ev.dns.resolved_ip.push(ip);
                }
                ("A", ip.to_string())
            }
            (28, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(rdata);
                let ip = IpAddr::V6(Ipv6Addr::from(o));
                if !ev.dns.resolved_ip.contains(&ip) {
                    ev.dns.resolved_ip.push(ip);
                }
                ("AAAA", ip.to_string())
            }
            (5 | 12 | 2, _) => {
                let Some((target, _)) = name(&msg, rdata_at) else {
                    continue;
                };
                let t = match rtype {
                    5 => "CNAME",
                    12 => "PTR",
                    _ => "NS",
                };
                (t, target)
            }
            _ => continue,
        };
        ev.dns.answers.push(Answer {
            name: Some(Str::from(owner)),
            type_: Some(Str::from(t)),
            data: Some(Str::from(data)),
        });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adguard_fixture_answer_is_read() {
        // From AdGuard Home's internal/querylog decode tests: an.yandex.ru A 0.0.0.0.
        let mut ev = Event::default();
        assert!(apply(
            &mut ev,
            "Qz+BgAABAAEAAAAAAmFuBnlhbmRleAJydQAAAQABwAwAAQABAAAACgAEAAAAAA=="
        ));
        assert_eq!(ev.dns.response_code.as_deref(), Some("NOERROR"));
        assert_eq!(ev.dns.header_flags.as_slice(), ["RD", "RA"]);
        assert_eq!(ev.dns.answers.len(), 1);
        let a = &ev.dns.answers[0];
        assert_eq!(a.name.as_deref(), Some("an.yandex.ru"));
        assert_eq!(a.type_.as_deref(), Some("A"));
        assert_eq!(a.data.as_deref(), Some("0.0.0.0"));
    }

    #[test]
    fn garbage_is_not_a_message() {
        let mut ev = Event::default();
        assert!(!apply(&mut ev, "not base64!"));
        assert!(!apply(&mut ev, "AAAA"));
        assert!(ev.dns.response_code.is_none());
        // A pointer loop ends.
        let msg = [
            0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ];
        let b64 = base64::engine::general_purpose::STANDARD.encode(msg);
        assert!(apply(&mut ev, &b64));
        assert!(ev.dns.answers.is_empty());
    }
}
