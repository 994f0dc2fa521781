//! The templates dnsenrich installs, so every index or data stream it writes
//! is created with ECS types for every field (`source.ip` an `ip`,
//! `@timestamp` a `date`, `threat.enrichments` `nested`) instead of whatever
//! dynamic mapping would guess, and, on Elasticsearch, with Elastic's own
//! parts for logs data streams.
//!
//! This file only builds request bodies; sending them is `install.rs`. The
//! field types are one table, [`FIELDS`]: a field dnsenrich starts writing is
//! one entry there (the unit tests fail for a written field without one).
//!
//! What is installed, by server and target:
//!
//! ```text
//!  Elasticsearch 8/9, data stream (the default)
//!    PUT _component_template/dnsenrich@mappings     FIELDS, explicit mappings
//!    PUT _index_template/dnsenrich-logs-<dataset>   pattern logs-<dataset>-*, priority 200
//!        composed_of: logs@mappings, logs@settings,       (Elastic's, where the server has them)
//!                     dnsenrich@mappings,
//!                     logs@custom, logs-<dataset>@custom, (site hooks, may be missing)
//!                     ecs@mappings                        (Elastic's, where the server has it)
//!        template.lifecycle.data_retention                (only with `retention`)
//!  OpenSearch (and osmem-server), data stream
//!    PUT _index_template/dnsenrich-logs-<dataset>   standalone: FIELDS + keyword catch-all,
//!                                                   flat_object for log.syslog.structured_data
//!  any server, plain index (`index = "..."`)
//!    PUT _index_template/dnsenrich-<index>          standalone, pattern = the index name
//! ```
//!
//! Every body carries `_meta.version` = [`TEMPLATE_VERSION`]; `install.rs`
//! replaces a template only when the one on the server is older.

use serde_json::{json, Map, Value};

/// Above Elastic's built-in `logs` template (priority 100, pattern
/// `logs-*-*`), so ours is the one applied to `logs-pihole.dns-*`; the same
/// priority Elastic's integrations use for their own datasets.
pub const PRIORITY: u64 = 200;

/// The version of the templates this binary installs, in `_meta.version`.
/// Raised whenever a body changes (a field added, a type changed); a server
/// holding a template of a higher version (installed by a newer dnsenrich) is
/// left alone.
pub const TEMPLATE_VERSION: u64 = 2;

/// The component template with dnsenrich's explicit mappings (Elasticsearch).
pub const COMPONENT: &str = "dnsenrich@mappings";

/// Elastic's built-in component templates composed before ours: the
/// `data_stream.*` `constant_keyword`s and `date_detection: false`; the
/// settings with the `logs` ILM policy and `best_compression`.
pub const ELASTIC_BEFORE: [&str; 2] = ["logs@mappings", "logs@settings"];
/// Elastic's dynamic ECS mappings, composed last as Elastic's integrations
/// do: types for ECS fields dnsenrich does not map itself (a user grammar's).
pub const ELASTIC_ECS: &str = "ecs@mappings";

/// How a field is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Keyword,
    Long,
    Boolean,
    Ip,
    Date,
    /// `match_only_text`: full-text search without scoring data.
    Text,
    /// `constant_keyword`: one value per index (`data_stream.*`).
    Constant,
    /// A keyword kept in `_source` only: neither indexed nor doc values
    /// (ECS's mapping of `event.original`).
    Stored,
    /// ECS `flattened`; OpenSearch's equivalent is `flat_object`.
    Flattened,
    /// An array of objects queried as units (`threat.enrichments`).
    Nested,
    /// An object whose sub-fields are mapped dynamically (`labels`).
    Object,
}

/// Every field dnsenrich writes and its type: ECS's type for ECS fields (held
/// to `fixtures/ecs/ecs-8.17-fields.tsv` by the tests), a real type for the
/// custom ones ([`CUSTOM`]). Parents are created as plain objects unless
/// listed (`threat.enrichments` is `nested`).
pub const FIELDS: &[(&str, Kind)] = {
    use Kind::*;
    &[
        ("@timestamp", Date),
        ("message", Text),
        ("tags", Keyword),
        ("labels", Object),
        ("ecs.version", Keyword),
        ("data_stream.type", Constant),
        ("data_stream.dataset", Constant),
        ("data_stream.namespace", Constant),
        ("event.kind", Keyword),
        ("event.category", Keyword),
        ("event.type", Keyword),
        ("event.action", Keyword),
        ("event.outcome", Keyword),
        ("event.reason", Keyword),
        ("event.dataset", Keyword),
        ("event.module", Keyword),
        ("event.provider", Keyword),
        ("event.created", Date),
        ("event.ingested", Date),
        ("event.original", Stored),
        ("dns.type", Keyword),
        ("dns.id", Keyword),
        ("dns.op_code", Keyword),
        ("dns.response_code", Keyword),
        ("dns.header_flags", Keyword),
        ("dns.resolved_ip", Ip),
        ("dns.question.name", Keyword),
        ("dns.question.type", Keyword),
        ("dns.question.class", Keyword),
        ("dns.question.registered_domain", Keyword),
        ("dns.question.subdomain", Keyword),
        ("dns.question.top_level_domain", Keyword),
        ("dns.answers.name", Keyword),
        ("dns.answers.type", Keyword),
        ("dns.answers.class", Keyword),
        ("dns.answers.data", Keyword),
        ("dns.answers.ttl", Long),
        ("client.ip", Ip),
        ("client.port", Long),
        ("client.domain", Keyword),
        ("source.ip", Ip),
        ("source.port", Long),
        ("source.domain", Keyword),
        ("destination.ip", Ip),
        ("destination.port", Long),
        ("destination.domain", Keyword),
        ("server.ip", Ip),
        ("server.port", Long),
        ("server.domain", Keyword),
        ("network.transport", Keyword),
        ("network.protocol", Keyword),
        ("network.type", Keyword),
        ("network.direction", Keyword),
        ("related.ip", Ip),
        ("related.hosts", Keyword),
        ("host.hostname", Keyword),
        ("host.name", Keyword),
        ("observer.hostname", Keyword),
        ("observer.product", Keyword),
        ("observer.vendor", Keyword),
        ("observer.type", Keyword),
        ("observer.version", Keyword),
        ("process.name", Keyword),
        ("process.pid", Long),
        ("rule.name", Keyword),
        ("rule.ruleset", Keyword),
        ("rule.category", Keyword),
        ("error.message", Text),
        ("log.syslog.priority", Long),
        ("log.syslog.facility.code", Long),
        ("log.syslog.facility.name", Keyword),
        ("log.syslog.severity.code", Long),
        ("log.syslog.severity.name", Keyword),
        ("log.syslog.appname", Keyword),
        ("log.syslog.hostname", Keyword),
        ("log.syslog.procid", Keyword),
        ("log.syslog.msgid", Keyword),
        ("log.syslog.version", Keyword),
        ("log.syslog.structured_data", Flattened),
        ("log.file.path", Keyword),
        ("log.source.address", Keyword),
        ("log.offset", Long),
        ("threat.feed.name", Keyword),
        ("threat.feed.description", Keyword),
        ("threat.feed.reference", Keyword),
        ("threat.feed.dashboard_id", Keyword),
        ("threat.enrichments", Nested),
        ("threat.enrichments.indicator.type", Keyword),
        ("threat.enrichments.indicator.provider", Keyword),
        ("threat.enrichments.indicator.name", Keyword),
        ("threat.enrichments.indicator.description", Keyword),
        ("threat.enrichments.indicator.confidence", Keyword),
        ("threat.enrichments.indicator.reference", Keyword),
        ("threat.enrichments.indicator.first_seen", Date),
        ("threat.enrichments.indicator.last_seen", Date),
        ("threat.enrichments.indicator.ip", Ip),
        ("threat.enrichments.indicator.url.domain", Keyword),
        ("threat.enrichments.matched.atomic", Keyword),
        ("threat.enrichments.matched.field", Keyword),
        ("threat.enrichments.matched.type", Keyword),
        ("threat.enrichments.matched.id", Keyword),
        ("threat.enrichments.matched.index", Keyword),
        ("threat.enrichments.matched.occurred", Date),
        ("threat.enrichments.feed.name", Keyword),
        ("client.mac", Keyword),
        ("source.mac", Keyword),
        ("destination.mac", Keyword),
        ("server.mac", Keyword),
        ("file.path", Keyword),
        ("log.origin.file.name", Keyword),
        ("log.origin.file.line", Long),
        ("observer.ingress.interface.name", Keyword),
        ("event.start", Date),
        ("event.end", Date),
        ("event.duration", Long),
        ("log.level", Keyword),
        ("process.thread.id", Long),
        ("dnsmasq.serial", Long),
        ("dnsmasq.answer_type", Keyword),
        ("dnsmasq.status", Keyword),
        ("dnsmasq.status_code", Long),
        ("dnsmasq.lines", Long),
        ("dnsmasq.forwards", Long),
        ("misp_src", Keyword),
    ]
};

/// Every field of [`FIELDS`] and the typed custom fields of
/// [`crate::event::custom::FIELDS`] (`dnsmasq.*` and the other products'
/// namespaces), each with its mapping kind.
pub fn all_fields() -> impl Iterator<Item = (&'static str, Kind)> {
    use crate::event::custom::CustomType;
    FIELDS.iter().copied().chain(
        crate::event::custom::FIELDS
            .iter()
            .filter(|f| !FIELDS.iter().any(|(name, _)| *name == f.name))
            .map(|f| {
                let kind = match f.ty {
                    CustomType::Long => Kind::Long,
                    CustomType::Ip => Kind::Ip,
                    CustomType::Date => Kind::Date,
                    CustomType::Boolean => Kind::Boolean,
                    CustomType::Keyword | CustomType::Keywords(_) => Kind::Keyword,
                };
                (f.name, kind)
            }),
    )
}

/// Fields (or prefixes ending in `.`) of [`FIELDS`] that are not ECS:
/// dnsenrich's typed namespaces, the classic dashboards' `misp_src`, and the
/// two fields Filebeat writes beside ECS (`log.offset`, `log.source.address`).
pub const CUSTOM: &[&str] = &[
    // Kibana's indicator-match enrichment writes the feed's name here
    // (FEED_NAME in Kibana's security_solution/common/cti/constants.ts).
    "threat.enrichments.feed.",
    "dnsmasq.",
    "pihole.",
    // The other resolvers' product namespaces (custom::FIELDS too).
    "bind.",
    "unbound.",
    "pdns.",
    "coredns.",
    "adguard.",
    "misp_src",
    "log.offset",
    "log.source.address",
];

/// Whether `field` is one of [`CUSTOM`].
pub fn is_custom(field: &str) -> bool {
    CUSTOM.iter().any(|c| match c.strip_suffix('.') {
        Some(prefix) => field.starts_with(prefix) && field[prefix.len()..].starts_with('.'),
        None => field == *c,
    })
}

/// Which mapping types the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Elasticsearch,
    /// OpenSearch and servers that speak its API (osmem-server).
    OpenSearch,
}

/// What the server has, as far as the templates are concerned; see
/// `server.rs` for how it is found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub flavour: Flavour,
    /// Which of [`ELASTIC_BEFORE`] and [`ELASTIC_ECS`] the server has.
    pub elastic: Vec<&'static str>,
    /// The server takes `ignore_missing_component_templates` (ES 8.7+), so
    /// the `@custom` hooks can be named before a site creates them.
    pub hooks: bool,
}

impl Parts {
    /// A server to install standalone templates on (OpenSearch, osmem).
    pub fn standalone() -> Parts {
        Parts {
            flavour: Flavour::OpenSearch,
            elastic: vec![],
            hooks: false,
        }
    }

    /// Whether index templates are composed from component templates: on
    /// Elasticsearch only (OpenSearch has component templates but none of
    /// Elastic's parts to compose with).
    pub fn composed(&self) -> bool {
        self.flavour == Flavour::Elasticsearch
    }

    fn has(&self, name: &str) -> bool {
        self.elastic.contains(&name)
    }
}

/// The index template's name: one per data-stream dataset (it covers every
/// namespace) or per plain index.
pub fn index_template_name(pattern_base: &str) -> String {
    format!("dnsenrich-{pattern_base}")
}

/// The two `@custom` hooks Elastic's convention gives every logs dataset.
pub fn custom_hooks(dataset: &str) -> [String; 2] {
    ["logs@custom".to_owned(), format!("logs-{dataset}@custom")]
}

fn meta() -> Value {
    json!({
        "description": "ECS mappings for dnsenrich DNS and DHCP events",
        "managed_by": "dnsenrich",
        "version": TEMPLATE_VERSION,
    })
}

/// `PUT _component_template/dnsenrich@mappings`: the explicit mappings, and
/// the keyword catch-all only where `ecs@mappings` is missing (it has its own,
/// and dynamic templates are matched first-come).
pub fn component_body(parts: &Parts) -> Value {
    json!({
        "template": { "mappings": mappings(parts.flavour, !parts.has(ELASTIC_ECS)) },
        "_meta": meta(),
    })
}

/// `PUT _index_template/dnsenrich-logs-<dataset>` for the data stream
/// `logs-<dataset>-<namespace>` of every namespace. `retention` (e.g. `30d`)
/// installs a data stream lifecycle instead of the `logs` ILM policy of
/// `logs@settings`; `index.lifecycle.prefer_ilm: false` is what makes
/// Elasticsearch follow the lifecycle when both are set.
pub fn data_stream_body(dataset: &str, parts: &Parts, retention: Option<&str>) -> Value {
    let mut body = json!({
        "index_patterns": [format!("logs-{dataset}-*")],
        "priority": PRIORITY,
        "data_stream": {},
        "_meta": meta(),
    });
    if parts.composed() {
        let hooks = custom_hooks(dataset);
        let mut composed: Vec<Value> = ELASTIC_BEFORE
            .iter()
            .filter(|n| parts.has(n))
            .map(|n| json!(n))
            .collect();
        composed.push(json!(COMPONENT));
        if parts.hooks {
            composed.extend(hooks.iter().map(|h| json!(h)));
            body["ignore_missing_component_templates"] = json!(hooks);
        }
        if parts.has(ELASTIC_ECS) {
            composed.push(json!(ELASTIC_ECS));
        }
        body["composed_of"] = Value::Array(composed);
        // Without retention the lifecycle is the ILM policy logs@settings names.
        if let Some(r) = retention {
            body["template"] = json!({
                "lifecycle": { "data_retention": r },
                "settings": { "index.lifecycle.prefer_ilm": false },
            });
        }
    } else {
        body["template"] = json!({ "mappings": mappings(parts.flavour, true) });
    }
    body
}

/// `PUT _index_template/dnsenrich-<index>` for a plain index: standalone on
/// every server (Elastic's `logs@settings` names an ILM policy that needs
/// data-stream rollover, which a plain index does not have).
pub fn index_body(index: &str, flavour: Flavour) -> Value {
    json!({
        "index_patterns": [index],
        "priority": PRIORITY,
        "template": { "mappings": mappings(flavour, true) },
        "_meta": meta(),
    })
}

/// The mapping of one field.
fn leaf(kind: Kind, flavour: Flavour) -> Value {
    match kind {
        Kind::Keyword => json!({ "type": "keyword", "ignore_above": 1024 }),
        Kind::Long => json!({ "type": "long" }),
        Kind::Boolean => json!({ "type": "boolean" }),
        Kind::Ip => json!({ "type": "ip" }),
        Kind::Date => json!({ "type": "date" }),
        Kind::Text => json!({ "type": "match_only_text" }),
        // OpenSearch's constant_keyword wants its value up front, and a
        // template covering every namespace cannot give one.
        Kind::Constant => match flavour {
            Flavour::Elasticsearch => json!({ "type": "constant_keyword" }),
            Flavour::OpenSearch => json!({ "type": "keyword" }),
        },
        Kind::Stored => json!({ "type": "keyword", "index": false, "doc_values": false }),
        Kind::Flattened => match flavour {
            Flavour::Elasticsearch => json!({ "type": "flattened" }),
            Flavour::OpenSearch => json!({ "type": "flat_object" }),
        },
        Kind::Nested => json!({ "type": "nested" }),
        Kind::Object => json!({ "type": "object" }),
    }
}

/// The `mappings` object: [`FIELDS`] as nested `properties`, and with
/// `catch_all` the dynamic templates that make any other string a keyword.
pub fn mappings(flavour: Flavour, catch_all: bool) -> Value {
    let mut root = Map::new();
    for (path, kind) in all_fields() {
        let mut props = &mut root;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                let mapping = leaf(kind, flavour);
                // A parent listed before its children (`threat.enrichments`)
                // keeps the children already placed under it.
                match props.get_mut(part) {
                    Some(Value::Object(existing)) => {
                        if let Value::Object(m) = mapping {
                            existing.extend(m);
                        }
                    }
                    _ => {
                        props.insert(part.to_owned(), mapping);
                    }
                }
                break;
            }
            let node = props
                .entry(part.to_owned())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("FIELDS parents are objects");
            props = node
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("properties is an object");
        }
    }
    let mut m = json!({ "date_detection": false, "properties": root });
    if catch_all {
        let keyword = leaf(Kind::Keyword, flavour);
        m["dynamic_templates"] = json!([
            { "labels_as_keyword": {
                "path_match": "labels.*",
                "match_mapping_type": "string",
                "mapping": keyword,
            } },
            { "strings_as_keyword": {
                "match_mapping_type": "string",
                "mapping": keyword,
            } },
        ]);
    }
    m
}

/// Every field path of a `mappings` object with its `type` (`object` for a
/// parent without one), flattened to `a.b.c` — the shape of `_mapping`
/// answers and of ECS's `ecs_flat.yml`.
pub fn flat_types(mappings: &Value) -> Vec<(String, String)> {
    fn walk(props: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
        let Value::Object(props) = props else { return };
        for (name, m) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let ty = m["type"].as_str().unwrap_or("object");
            out.push((path.clone(), ty.to_owned()));
            walk(&m["properties"], &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&mappings["properties"], "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn elastic() -> Parts {
        Parts {
            flavour: Flavour::Elasticsearch,
            elastic: vec!["logs@mappings", "logs@settings", "ecs@mappings"],
            hooks: true,
        }
    }

    fn types(m: &Value) -> BTreeMap<String, String> {
        flat_types(m).into_iter().collect()
    }

    /// The pinned ECS release's types of the ECS fields dnsenrich writes.
    fn ecs_fixture() -> BTreeMap<String, String> {
        let text = include_str!("../../../fixtures/ecs/ecs-8.17-fields.tsv");
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (f, t) = l.split_once('\t').expect("field<TAB>type");
                (f.to_owned(), t.trim().to_owned())
            })
            .collect()
    }

    #[test]
    fn every_ecs_field_has_the_type_of_the_pinned_release() {
        let ecs = ecs_fixture();
        let ours = types(&mappings(Flavour::Elasticsearch, false));
        let mut wrong = Vec::new();
        for (field, _) in FIELDS {
            if is_custom(field) {
                assert!(!ecs.contains_key(*field), "{field} is ECS, not custom");
                continue;
            }
            match ecs.get(*field) {
                None => wrong.push(format!("{field}: not in the ECS extract")),
                Some(t) if *t != ours[*field] => {
                    wrong.push(format!("{field}: ours {}, ECS {t}", ours[*field]))
                }
                Some(_) => {}
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn opensearch_gets_its_own_names_for_two_types() {
        let es = types(&mappings(Flavour::Elasticsearch, true));
        let os = types(&mappings(Flavour::OpenSearch, true));
        assert_eq!(es["log.syslog.structured_data"], "flattened");
        assert_eq!(os["log.syslog.structured_data"], "flat_object");
        assert_eq!(es["data_stream.dataset"], "constant_keyword");
        assert_eq!(os["data_stream.dataset"], "keyword");
        let differ: Vec<_> = es.iter().filter(|(k, v)| os[*k] != **v).collect();
        assert_eq!(differ.len(), 4, "{differ:?}");
    }

    #[test]
    fn original_is_stored_only_and_dates_are_not_guessed() {
        let m = mappings(Flavour::Elasticsearch, false);
        let original = &m["properties"]["event"]["properties"]["original"];
        assert_eq!(original["index"], false);
        assert_eq!(original["doc_values"], false);
        assert_eq!(m["date_detection"], false);
        assert!(m.get("dynamic_templates").is_none());
        let nested = &m["properties"]["threat"]["properties"]["enrichments"];
        assert_eq!(nested["type"], "nested");
        assert_eq!(
            nested["properties"]["matched"]["properties"]["occurred"]["type"],
            "date"
        );
    }

    /// The request shape of Elastic's composable index template API with a
    /// data stream lifecycle, and the built-in component names, as documented:
    /// https://www.elastic.co/guide/en/elasticsearch/reference/current/index-templates.html
    /// https://www.elastic.co/guide/en/elasticsearch/reference/current/data-streams.html
    /// (logs@mappings, logs@settings, ecs@mappings, logs@custom,
    /// logs-<dataset>@custom, ignore_missing_component_templates) and
    /// https://www.elastic.co/guide/en/elasticsearch/reference/current/tutorial-manage-data-stream-retention.html
    /// (`template.lifecycle.data_retention`).
    #[test]
    fn composed_data_stream_template_follows_elastics_convention() {
        let t = data_stream_body("pihole.dhcp", &elastic(), None);
        assert_eq!(t["index_patterns"], json!(["logs-pihole.dhcp-*"]));
        assert_eq!(t["priority"], 200);
        assert_eq!(t["data_stream"], json!({}));
        assert_eq!(
            t["composed_of"],
            json!([
                "logs@mappings",
                "logs@settings",
                "dnsenrich@mappings",
                "logs@custom",
                "logs-pihole.dhcp@custom",
                "ecs@mappings",
            ])
        );
        assert_eq!(
            t["ignore_missing_component_templates"],
            json!(["logs@custom", "logs-pihole.dhcp@custom"])
        );
        assert_eq!(t["_meta"]["version"], TEMPLATE_VERSION);
        assert_eq!(t["_meta"]["managed_by"], "dnsenrich");
        // Without retention the lifecycle is logs@settings' ILM policy.
        assert!(t.get("template").is_none());
        let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        for k in keys {
            assert!(
                [
                    "index_patterns",
                    "priority",
                    "data_stream",
                    "composed_of",
                    "ignore_missing_component_templates",
                    "template",
                    "_meta"
                ]
                .contains(&k.as_str()),
                "{k} is not a field of the index template API"
            );
        }
    }

    #[test]
    fn retention_installs_a_data_stream_lifecycle_that_wins_over_ilm() {
        let t = data_stream_body("pihole.dns", &elastic(), Some("30d"));
        assert_eq!(
            t["template"],
            json!({
                "lifecycle": { "data_retention": "30d" },
                "settings": { "index.lifecycle.prefer_ilm": false },
            })
        );
    }

    #[test]
    fn missing_elastic_parts_are_left_out_and_old_servers_get_no_hooks() {
        let parts = Parts {
            flavour: Flavour::Elasticsearch,
            elastic: vec!["logs@mappings", "logs@settings"],
            hooks: false,
        };
        let t = data_stream_body("pihole.dns", &parts, None);
        assert_eq!(
            t["composed_of"],
            json!(["logs@mappings", "logs@settings", "dnsenrich@mappings"])
        );
        assert!(t.get("ignore_missing_component_templates").is_none());
        // Without ecs@mappings our component brings the keyword catch-all.
        let c = component_body(&parts);
        assert!(c["template"]["mappings"]["dynamic_templates"].is_array());
        assert!(component_body(&elastic())["template"]["mappings"]
            .get("dynamic_templates")
            .is_none());
        assert_eq!(c["_meta"]["version"], TEMPLATE_VERSION);
        // The component template API's shape: a template and its _meta.
        let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["_meta", "template"]);
        let inner: Vec<&String> = c["template"].as_object().unwrap().keys().collect();
        assert_eq!(inner, ["mappings"]);
    }

    #[test]
    fn standalone_templates_carry_the_mappings_themselves() {
        let t = data_stream_body("pihole.dns", &Parts::standalone(), Some("30d"));
        assert!(t.get("composed_of").is_none());
        assert!(t["template"].get("lifecycle").is_none());
        assert_eq!(
            t["template"]["mappings"],
            mappings(Flavour::OpenSearch, true)
        );
        let i = index_body("dns-events", Flavour::Elasticsearch);
        assert_eq!(i["index_patterns"], json!(["dns-events"]));
        assert!(i.get("data_stream").is_none());
        assert_eq!(
            index_template_name("logs-pihole.dns"),
            "dnsenrich-logs-pihole.dns"
        );
    }

    #[test]
    fn custom_fields_are_told_apart() {
        assert!(is_custom("dnsmasq.serial"));
        assert!(is_custom("misp_src"));
        assert!(is_custom("bind.view"));
        assert!(!is_custom("binder"));
        assert!(!is_custom("dnsmasqx"));
        assert!(!is_custom("dns.id"));
    }

    #[test]
    fn every_field_an_event_writes_is_mapped() {
        use crate::event::*;
        let mut ev = Event {
            timestamp: Some(chrono::Utc::now()),
            ..Event::default()
        };
        ev.data_stream = DataStream {
            type_: Some("logs"),
            dataset: Some("pihole.dns"),
            namespace: Some("default"),
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
        (ev.dnsmasq.fields, ev.pihole.fields, ev.custom) = custom::all_samples();
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
        ev.process.thread.id = Some(2);
        ev.event.duration = Some(3);
        ev.log.level = Some("info".into());
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
        let m = mappings(Flavour::Elasticsearch, false);
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
                if v.is_object() && mapped["type"] != "flattened" {
                    walk(v, &mapped["properties"], p, missing);
                }
            }
        }
        walk(&doc, &m["properties"], String::new(), &mut missing);
        assert!(missing.is_empty(), "unmapped fields: {missing:?}");
    }
}
