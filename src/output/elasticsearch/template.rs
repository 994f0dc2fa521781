//! The index template dnsenrich installs before its first bulk request, so the
//! index or data stream is created with ECS types for every field dnsenrich
//! writes (`source.ip` an `ip`, `@timestamp` a `date`, `threat.enrichments`
//! `nested`) instead of whatever dynamic mapping would guess.
//!
//! Index mode and data-stream mode share this template; they differ only in
//! the pattern (the index or data-stream name) and in the `data_stream`
//! object, which makes Elasticsearch create a data stream on the first write.
//!
//! Choices that keep one template valid on Elasticsearch 8/9 and OpenSearch:
//! - `log.syslog.structured_data` is an `object` with `enabled: false` (kept in
//!   `_source`, not indexed). ECS says `flattened`, but OpenSearch has no
//!   `flattened` type (its equivalent is `flat_object`).
//! - `event.original` is a keyword that is neither indexed nor has doc values,
//!   as ECS recommends: stored in `_source` only, and never too long to store.
//! - Any other string (a field a user grammar adds, `labels.*`) becomes a
//!   keyword through dynamic templates.

use serde_json::{json, Map, Value};

/// Above Elastic's built-in `logs-*-*` template (priority 100), so ours is the
/// one applied to `logs-pihole.dns-*`.
pub const PRIORITY: u64 = 200;

/// The template's name: one per target, so two dnsenrich instances writing to
/// different indices or data streams do not overwrite each other's template.
pub fn template_name(target: &str) -> String {
    format!("dnsenrich-{target}")
}

/// The `PUT _index_template/<name>` body for `target`.
pub fn template_body(target: &str, data_stream: bool) -> Value {
    let mut body = json!({
        "index_patterns": [target],
        "priority": PRIORITY,
        "template": { "mappings": mappings() },
        "_meta": {
            "description": "ECS mappings for dnsenrich DNS events",
            "managed_by": "dnsenrich",
            "version": env!("CARGO_PKG_VERSION"),
        },
    });
    if data_stream {
        body["data_stream"] = json!({});
    }
    body
}

fn keyword() -> Value {
    json!({ "type": "keyword", "ignore_above": 1024 })
}

fn typed(t: &str) -> Value {
    json!({ "type": t })
}

/// `{"properties": {...}}` of the named fields, all of type `kind`.
fn all(kind: fn() -> Value, names: &[&str]) -> Map<String, Value> {
    names.iter().map(|n| (n.to_string(), kind())).collect()
}

fn object(props: Map<String, Value>) -> Value {
    json!({ "properties": props })
}

fn with(mut props: Map<String, Value>, extra: &[(&str, Value)]) -> Map<String, Value> {
    for (k, v) in extra {
        props.insert(k.to_string(), v.clone());
    }
    props
}

fn endpoint() -> Value {
    object(with(
        all(keyword, &["domain"]),
        &[("ip", typed("ip")), ("port", typed("long"))],
    ))
}

fn code_name() -> Value {
    object(with(all(keyword, &["name"]), &[("code", typed("long"))]))
}

/// The mappings: every field `crate::event::Event` writes, plus the threat
/// fields enrichment adds.
pub fn mappings() -> Value {
    let event = with(
        all(
            keyword,
            &[
                "kind", "category", "type", "action", "outcome", "reason", "dataset", "module",
                "provider",
            ],
        ),
        &[
            (
                "original",
                json!({ "type": "keyword", "index": false, "doc_values": false }),
            ),
            ("created", typed("date")),
            ("ingested", typed("date")),
        ],
    );
    let question = all(
        keyword,
        &[
            "name",
            "type",
            "class",
            "registered_domain",
            "subdomain",
            "top_level_domain",
        ],
    );
    let answers = with(
        all(keyword, &["name", "type", "class", "data"]),
        &[("ttl", typed("long"))],
    );
    let dns = with(
        all(
            keyword,
            &["type", "id", "op_code", "response_code", "header_flags"],
        ),
        &[
            ("question", object(question)),
            ("answers", object(answers)),
            ("resolved_ip", typed("ip")),
        ],
    );
    let syslog = with(
        all(
            keyword,
            &["appname", "hostname", "procid", "msgid", "version"],
        ),
        &[
            ("priority", typed("long")),
            ("facility", code_name()),
            ("severity", code_name()),
            (
                "structured_data",
                json!({ "type": "object", "enabled": false }),
            ),
        ],
    );
    let log = Map::from_iter([
        ("syslog".to_string(), object(syslog)),
        ("source".to_string(), object(all(keyword, &["address"]))),
        ("file".to_string(), object(all(keyword, &["path"]))),
        ("offset".to_string(), typed("long")),
    ]);
    let indicator = with(
        all(
            keyword,
            &[
                "type",
                "provider",
                "name",
                "description",
                "confidence",
                "reference",
            ],
        ),
        &[
            ("first_seen", typed("date")),
            ("last_seen", typed("date")),
            ("ip", typed("ip")),
            ("url", object(all(keyword, &["domain", "full"]))),
        ],
    );
    let matched = with(
        all(keyword, &["atomic", "field", "type", "id", "index"]),
        &[("occurred", typed("date"))],
    );
    let enrichments = json!({
        "type": "nested",
        "properties": { "indicator": object(indicator), "matched": object(matched) },
    });
    let threat = Map::from_iter([
        ("enrichments".to_string(), enrichments),
        (
            "feed".to_string(),
            object(all(
                keyword,
                &["name", "description", "reference", "dashboard_id"],
            )),
        ),
    ]);

    let mut m = json!({
        "dynamic_templates": [
            { "labels_as_keyword": {
                "path_match": "labels.*",
                "match_mapping_type": "string",
                "mapping": keyword(),
            } },
            { "strings_as_keyword": {
                "match_mapping_type": "string",
                "mapping": keyword(),
            } },
        ],
        "properties": {
            "@timestamp": typed("date"),
            "message": typed("match_only_text"),
            "ecs": object(all(keyword, &["version"])),
            "event": object(event),
            "dns": object(dns),
            "client": endpoint(),
            "source": endpoint(),
            "destination": endpoint(),
            "server": endpoint(),
            "network": object(all(keyword, &["transport", "protocol", "type", "direction"])),
            "related": object(with(all(keyword, &["hosts"]), &[("ip", typed("ip"))])),
            "host": object(all(keyword, &["hostname", "name"])),
            "observer": object(all(keyword, &["hostname", "product", "vendor", "type", "version"])),
            "process": object(with(all(keyword, &["name"]), &[("pid", typed("long"))])),
            "rule": object(all(keyword, &["name", "ruleset", "category"])),
            "log": object(log),
            "error": object(Map::from_iter([
                ("message".to_string(), typed("match_only_text")),
            ])),
            "dnsmasq": object(with(
                all(keyword, &["answer_type"]),
                &[("serial", typed("long"))],
            )),
            "labels": { "type": "object" },
            "tags": keyword(),
            "misp_src": keyword(),
            "threat": object(threat),
        },
    });
    for (path, mapping) in field_homes() {
        insert_mapping(&mut m, &path, mapping);
    }
    m
}

// ---- fields that replaced `labels.*`, and the threat enrichment's feed ------
//
// One list, merged into whatever `mappings()` builds: ECS homes of values that
// used to be labels, every custom field of `crate::event::custom::FIELDS` with
// its type, and `threat.enrichments.feed.name`.

/// `(dotted path, mapping)` of each field listed above.
pub fn field_homes() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = [
        ("client.mac", keyword()),
        ("source.mac", keyword()),
        ("destination.mac", keyword()),
        ("server.mac", keyword()),
        ("file.path", keyword()),
        ("log.origin.file.name", keyword()),
        ("log.origin.file.line", typed("long")),
        ("observer.ingress.interface.name", keyword()),
        ("threat.enrichments.feed.name", keyword()),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m))
    .collect();
    for f in crate::event::custom::FIELDS {
        let m = match f.ty.es_type() {
            "keyword" => keyword(),
            t => typed(t),
        };
        v.push((f.name.to_string(), m));
    }
    v
}

/// Puts `mapping` at dotted `path` of a mappings object, making the objects
/// on the way (and keeping what is there, such as a `nested` type).
fn insert_mapping(m: &mut Value, path: &str, mapping: Value) {
    let mut at = m;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let props = at
            .as_object_mut()
            .expect("a mappings object")
            .entry("properties")
            .or_insert_with(|| json!({}));
        let slot = props
            .as_object_mut()
            .expect("properties is an object")
            .entry(part.to_string());
        if parts.peek().is_none() {
            *slot.or_insert(Value::Null) = mapping;
            return;
        }
        at = slot.or_insert_with(|| json!({ "properties": {} }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(m: &'a Value, path: &str) -> &'a Value {
        path.split('.')
            .fold(&m["properties"], |v, part| &v[part]["properties"])
    }

    fn leaf<'a>(m: &'a Value, path: &str) -> &'a Value {
        let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
        let props = if parent.is_empty() {
            &m["properties"]
        } else {
            field(m, parent)
        };
        &props[name]
    }

    #[test]
    fn index_mode_has_no_data_stream_object() {
        let t = template_body("dns-events", false);
        assert_eq!(t["index_patterns"], json!(["dns-events"]));
        assert_eq!(t["priority"], 200);
        assert!(t.get("data_stream").is_none());
    }

    #[test]
    fn data_stream_mode_adds_the_data_stream_object() {
        let t = template_body("logs-pihole.dns-default", true);
        assert_eq!(t["index_patterns"], json!(["logs-pihole.dns-default"]));
        assert_eq!(t["data_stream"], json!({}));
        assert_eq!(
            t["template"]["mappings"],
            template_body("x", false)["template"]["mappings"]
        );
        assert_eq!(
            template_name("logs-pihole.dns-default"),
            "dnsenrich-logs-pihole.dns-default"
        );
    }

    #[test]
    fn ecs_types() {
        let m = mappings();
        for (path, ty) in [
            ("@timestamp", "date"),
            ("message", "match_only_text"),
            ("ecs.version", "keyword"),
            ("event.created", "date"),
            ("host.name", "keyword"),
            ("error.message", "match_only_text"),
            ("dnsmasq.serial", "long"),
            ("dnsmasq.answer_type", "keyword"),
            ("source.ip", "ip"),
            ("source.port", "long"),
            ("client.ip", "ip"),
            ("client.port", "long"),
            ("destination.ip", "ip"),
            ("server.ip", "ip"),
            ("dns.resolved_ip", "ip"),
            ("related.ip", "ip"),
            ("related.hosts", "keyword"),
            ("dns.question.name", "keyword"),
            ("dns.answers.data", "keyword"),
            ("dns.header_flags", "keyword"),
            ("process.pid", "long"),
            ("log.offset", "long"),
            ("log.syslog.priority", "long"),
            ("log.syslog.facility.code", "long"),
            ("log.syslog.severity.name", "keyword"),
            ("log.file.path", "keyword"),
            ("tags", "keyword"),
            ("misp_src", "keyword"),
            ("threat.enrichments", "nested"),
            ("threat.enrichments.indicator.first_seen", "date"),
            ("threat.enrichments.matched.atomic", "keyword"),
            ("threat.feed.name", "keyword"),
            ("threat.enrichments.indicator.type", "keyword"),
            ("threat.enrichments.indicator.provider", "keyword"),
            ("threat.enrichments.indicator.last_seen", "date"),
            ("threat.enrichments.indicator.ip", "ip"),
            ("threat.enrichments.indicator.url.domain", "keyword"),
            ("threat.enrichments.matched.field", "keyword"),
            ("threat.enrichments.matched.type", "keyword"),
            ("threat.enrichments.matched.occurred", "date"),
            ("threat.enrichments.feed.name", "keyword"),
            ("client.mac", "keyword"),
            ("file.path", "keyword"),
            ("log.origin.file.name", "keyword"),
            ("log.origin.file.line", "long"),
            ("observer.ingress.interface.name", "keyword"),
            ("dnsmasq.dnssec.keytag", "long"),
            ("dnsmasq.dnssec.algorithm_supported", "boolean"),
            ("dnsmasq.dhcp.address", "ip"),
            ("dnsmasq.dhcp.lease_time", "long"),
            ("dnsmasq.stats.time", "date"),
            ("dnsmasq.compile_options", "keyword"),
        ] {
            assert_eq!(leaf(&m, path)["type"], ty, "{path}");
        }
        assert_eq!(leaf(&m, "event.original")["index"], false);
        assert_eq!(
            leaf(&m, "dnsmasq.serial")["type"],
            "long",
            "kept beside the custom fields"
        );
        for f in crate::event::custom::FIELDS {
            assert_eq!(leaf(&m, f.name)["type"], f.ty.es_type(), "{}", f.name);
        }
        assert_eq!(leaf(&m, "log.syslog.structured_data")["enabled"], false);
    }

    #[test]
    fn every_field_an_event_writes_is_mapped() {
        use crate::event::*;
        let mut ev = Event {
            timestamp: Some(chrono::Utc::now()),
            ..Event::default()
        };
        ev.event.kind = Some("event");
        ev.event.category.push("network");
        ev.event.type_.push("protocol");
        ev.event.action = Some("a");
        ev.event.outcome = Some("success");
        ev.event.reason = Some("r".into());
        ev.event.dataset = Some("pihole.dns");
        ev.event.module = Some("pihole");
        ev.event.provider = Some("dnsmasq");
        ev.event.original = "line".into();
        ev.event.created = Some(chrono::Utc::now());
        ev.message = "query[A] a.example.com from 10.0.0.1".into();
        ev.ecs.version = Some(ECS_VERSION);
        ev.error.message = Some("e".into());
        ev.dnsmasq.serial = Some(7);
        ev.dnsmasq.answer_type = Some("CNAME".into());
        (ev.dnsmasq.fields, ev.pihole.fields) = custom::all_samples();
        ev.file.path = Some("/etc/hosts".into());
        ev.log.origin.file.name = Some("forward.c".into());
        ev.log.origin.file.line = Some(1638);
        ev.dns.type_ = Some("answer");
        ev.dns.id = Some("1".into());
        ev.dns.op_code = Some("QUERY".into());
        ev.dns.question = Question {
            name: Some("a.example.com".into()),
            type_: Some("A".into()),
            class: Some("IN"),
            registered_domain: Some("example.com".into()),
            subdomain: Some("a".into()),
            top_level_domain: Some("com".into()),
        };
        ev.dns.answers.push(Answer {
            name: Some("a".into()),
            type_: Some("A".into()),
            data: Some("1.2.3.4".into()),
        });
        ev.dns.resolved_ip.push("1.2.3.4".parse().unwrap());
        ev.dns.response_code = Some("NOERROR".into());
        ev.dns.header_flags.push("RD");
        let ep = Endpoint {
            ip: Some("10.0.0.1".parse().unwrap()),
            port: Some(53),
            domain: Some("d".into()),
            mac: Some("00-00-5E-00-53-01".into()),
        };
        ev.source = ep.clone();
        ev.client = ep.clone();
        ev.destination = ep.clone();
        ev.server = ep;
        ev.network.transport = Some("udp");
        ev.network.protocol = Some("dns");
        ev.related.add_ip("10.0.0.1".parse().unwrap());
        ev.related.add_host("a.example.com");
        ev.host.hostname = Some("h".into());
        ev.host.name = Some("h".into());
        ev.observer = Observer {
            hostname: Some("o".into()),
            product: Some("p"),
            vendor: Some("v"),
            type_: Some("dns"),
            version: Some("2.90".into()),
            ingress: ObserverIngress {
                interface: Interface {
                    name: Some("eth0".into()),
                },
            },
        };
        ev.process.name = Some("dnsmasq".into());
        ev.process.pid = Some(1);
        ev.rule.name = Some("gravity blocked".into());
        ev.rule.ruleset = Some("gravity");
        ev.rule.category = Some("c");
        let code = |code| Some(CodeName { code, name: "n" });
        ev.log.syslog = Some(Box::new(Syslog {
            priority: Some(30),
            facility: code(3),
            severity: code(6),
            appname: Some("a".into()),
            hostname: Some("h".into()),
            procid: Some("1".into()),
            msgid: Some("m".into()),
            version: Some("1".into()),
            structured_data: vec![],
        }));
        ev.log.source.address = Some("10.0.0.2:514".into());
        ev.log.file.path = Some("/var/log/pihole/pihole.log".into());
        ev.log.offset = Some(10);
        ev.misp_src.add("Feed-A");
        ev.misp_src.add("Feed-B");
        ev.threat.feed.name.add("Feed-A");
        ev.threat.enrichments.push(Enrichment {
            indicator: ThreatIndicator {
                type_: "domain-name",
                provider: Some("MISP".into()),
                description: Some("C2".into()),
                first_seen: Some("2026-01-02T00:00:00Z".into()),
                last_seen: Some("2026-11-01T00:00:00Z".into()),
                ip: Some("192.0.2.1".parse().unwrap()),
                url: IndicatorUrl {
                    domain: Some("example.com".into()),
                },
            },
            matched: Matched {
                atomic: "example.com".into(),
                field: "dns.question.name",
                type_: "parent_domain",
                occurred: Some(chrono::Utc::now()),
            },
            feed: EnrichmentFeed {
                name: Some("Feed-A".into()),
            },
        });
        ev.tags.push("t");

        let doc: Value = serde_json::from_str(&ev.to_json()).unwrap();
        let m = mappings();
        let mut missing = Vec::new();
        fn walk(doc: &Value, props: &Value, path: String, missing: &mut Vec<String>) {
            let Value::Object(o) = doc else { return };
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let mapped = &props[k];
                if mapped.is_null() {
                    missing.push(p);
                    continue;
                }
                let v = match v {
                    Value::Array(a) => a.first().unwrap_or(&Value::Null),
                    v => v,
                };
                if v.is_object() {
                    walk(v, &mapped["properties"], p, missing);
                }
            }
        }
        walk(&doc, &m["properties"], String::new(), &mut missing);
        assert!(missing.is_empty(), "unmapped fields: {missing:?}");
    }
}
