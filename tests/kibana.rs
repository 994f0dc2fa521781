//! The Kibana saved objects in `kibana/dnsenrich.ndjson` (written by
//! `kibana/generate.py`): the file is what Kibana's saved-objects import takes
//! (one object per line with type, id, attributes, references and migration
//! versions; unique ids; every reference resolves to an object of the file;
//! the dashboard's JSON strings parse and its by-value Lens panels are
//! consistent), the data view covers the data streams dnsenrich writes, and
//! every field a panel aggregates or queries, and every field of the README's
//! sample KQL queries, is in the index template dnsenrich installs with a type
//! the visualisation can use. And every panel has something to show for the
//! events the real daemon writes for a handful of Pi-hole lines.
//!
//! The file has not been loaded into a running Kibana here; the shapes follow
//! Kibana 8.8's own sample-data dashboards (elastic/kibana,
//! `src/plugins/home/server/services/sample_data/data_sets/flights/saved_objects.ts`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::daemon::{logger, wait_until, DaemonBuilder};

use dnsenrich::grammar::GrammarSet;
use dnsenrich::output::elasticsearch::route::Target;
use dnsenrich::output::elasticsearch::template::{component_body, Flavour, Parts};
use serde_json::Value;

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The saved objects, each checked to have the shape every import line has.
fn objects() -> Vec<Value> {
    let p = path("kibana/dnsenrich.ndjson");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        assert!(!line.trim().is_empty(), "line {n}: empty line in NDJSON");
        let o: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {n}: not JSON: {e}"));
        assert!(o.is_object(), "line {n}: not a JSON object");
        for key in ["type", "id", "coreMigrationVersion", "typeMigrationVersion"] {
            let v = o[key]
                .as_str()
                .unwrap_or_else(|| panic!("line {n}: no string {key}"));
            assert!(!v.is_empty(), "line {n}: empty {key}");
        }
        for key in ["coreMigrationVersion", "typeMigrationVersion"] {
            let v = o[key].as_str().unwrap();
            let parts: Vec<_> = v.split('.').collect();
            assert!(
                parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
                "line {n}: {key} {v:?} is not x.y.z"
            );
            // Kibana refuses an object migrated by a newer release than itself;
            // the file is meant for 8.8 and later.
            assert!(
                version(v) <= version("8.8.0"),
                "line {n}: {key} {v} is newer than 8.8.0"
            );
        }
        assert!(
            o["attributes"].is_object(),
            "line {n}: no attributes object"
        );
        let refs = o["references"].as_array();
        let refs = refs.unwrap_or_else(|| panic!("line {n}: no references array"));
        for r in refs {
            for key in ["type", "id", "name"] {
                assert!(
                    r[key].is_string(),
                    "line {n}: a reference without {key}: {r}"
                );
            }
        }
        out.push(o);
    }
    out
}

fn version(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

fn of_type<'a>(objects: &'a [Value], ty: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["type"] == ty).collect()
}

fn json_string(v: &Value, what: &str) -> Value {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string"));
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{what} does not parse: {e}"))
}

/// The dashboard's panels, parsed from `panelsJSON`.
fn panels(dashboard: &Value) -> Vec<Value> {
    let p = json_string(&dashboard["attributes"]["panelsJSON"], "panelsJSON");
    p.as_array().expect("panelsJSON is an array").clone()
}

/// The Lens attributes of every by-value Lens panel, with the panel's title.
fn lens_states(objects: &[Value]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for d in of_type(objects, "dashboard") {
        for p in panels(d) {
            if p["type"] == "lens" {
                let a = &p["embeddableConfig"]["attributes"];
                out.push((a["title"].as_str().unwrap_or("").to_owned(), a.clone()));
            }
        }
    }
    out
}

/// The mappings dnsenrich installs on Elasticsearch (where Kibana runs): the
/// `dnsenrich@mappings` component, as the crate builds it.
fn template_mappings() -> Value {
    let parts = Parts {
        flavour: Flavour::Elasticsearch,
        elastic: vec!["logs@mappings", "logs@settings", "ecs@mappings"],
        hooks: true,
    };
    component_body(&parts)["template"]["mappings"].clone()
}

/// What the template says of one field.
#[derive(Debug, Clone, PartialEq)]
struct Mapped {
    ty: String,
    indexed: bool,
    /// The innermost `nested` object the field is in.
    nested_in: Option<String>,
}

fn template_fields() -> BTreeMap<String, Mapped> {
    fn walk(props: &Value, prefix: &str, nested: Option<&str>, out: &mut BTreeMap<String, Mapped>) {
        let Value::Object(props) = props else { return };
        for (name, m) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let ty = m["type"].as_str().unwrap_or("object").to_owned();
            let indexed = m["index"] != false;
            out.insert(
                path.clone(),
                Mapped {
                    ty: ty.clone(),
                    indexed,
                    nested_in: nested.map(str::to_owned),
                },
            );
            let inner = if ty == "nested" {
                Some(path.as_str())
            } else {
                nested
            };
            walk(&m["properties"], &path, inner, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&template_mappings()["properties"], "", None, &mut out);
    assert!(out.len() > 50, "the template maps too few fields: {out:?}");
    out
}

/// A field a KQL query names, with the `nested` group it is written in
/// (`path:{ inner : value }`); `opens` marks the `path` of such a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KqlField {
    field: String,
    group: Option<String>,
    opens: bool,
}

/// The fields a KQL query names: every name before `:`, `<`, `<=`, `>`, `>=`,
/// outside quoted strings; a `name:{ … }` group prefixes the names inside it.
fn kql_fields(q: &str) -> Vec<KqlField> {
    let special = |c: char| c.is_whitespace() || "\"(){}:<>=\\".contains(c);
    let chars: Vec<char> = q.chars().collect();
    let mut groups: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '}' {
            groups.pop();
            i += 1;
        } else if c == '\\' {
            i += 2;
        } else if special(c) {
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && !special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && ":<>".contains(chars[j]) {
                let field = match groups.last() {
                    Some(g) => format!("{g}.{word}"),
                    None => word,
                };
                let mut k = j + 1;
                while k < chars.len() && (chars[k].is_whitespace() || chars[k] == '=') {
                    k += 1;
                }
                if chars[j] == ':' && k < chars.len() && chars[k] == '{' {
                    out.push(KqlField {
                        field: field.clone(),
                        group: groups.last().cloned(),
                        opens: true,
                    });
                    groups.push(field);
                    i = k + 1;
                    continue;
                }
                out.push(KqlField {
                    field,
                    group: groups.last().cloned(),
                    opens: false,
                });
            }
        }
    }
    out
}

/// Why a KQL query cannot work against the template, one line per field.
fn kql_problems(q: &str, fields: &BTreeMap<String, Mapped>) -> Vec<String> {
    let mut bad = Vec::new();
    let found = kql_fields(q);
    if found.is_empty() {
        bad.push(format!("{q:?}: names no field"));
    }
    for KqlField {
        field,
        group,
        opens,
    } in found
    {
        let Some(m) = fields.get(&field) else {
            bad.push(format!("{q:?}: {field} is not in the template"));
            continue;
        };
        if opens {
            if m.ty != "nested" {
                bad.push(format!("{q:?}: {field}:{{…}} but {field} is {}", m.ty));
            }
            continue;
        }
        if m.ty == "object" || m.ty == "nested" {
            bad.push(format!("{q:?}: {field} is an {} (no values)", m.ty));
        } else if !m.indexed {
            bad.push(format!("{q:?}: {field} is not indexed"));
        } else if m.nested_in != group {
            bad.push(format!(
                "{q:?}: {field} is in nested {:?} but queried in {:?} (write path:{{ field : value }})",
                m.nested_in, group
            ));
        }
    }
    bad
}

/// Why a Lens column cannot work against the template.
fn column_problems(col: &Value, fields: &BTreeMap<String, Mapped>) -> Option<String> {
    let op = col["operationType"].as_str().unwrap_or("");
    let src = col["sourceField"].as_str().unwrap_or("");
    // Lens's dataType for each mapping type it aggregates.
    let data_type = |ty: &str| match ty {
        "keyword" | "constant_keyword" => "string",
        "ip" => "ip",
        "long" => "number",
        "date" => "date",
        _ => "?",
    };
    let usable: &[&str] = match op {
        "count" => {
            return (src != "___records___")
                .then(|| format!("count of {src:?}: only a count of records is used here"));
        }
        "terms" => &["keyword", "ip", "long", "constant_keyword"],
        "date_histogram" => &["date"],
        other => return Some(format!("operation {other:?} is not checked by this test")),
    };
    let Some(m) = fields.get(src) else {
        return Some(format!("{op} on {src:?}: not in the template"));
    };
    if !usable.contains(&m.ty.as_str()) {
        return Some(format!("{op} on {src}: a {} field", m.ty));
    }
    if let Some(n) = &m.nested_in {
        return Some(format!(
            "{op} on {src}: inside nested {n}, which Lens cannot aggregate"
        ));
    }
    if col["dataType"] != data_type(&m.ty) {
        return Some(format!(
            "{op} on {src}: dataType {} but the field is {}",
            col["dataType"], m.ty
        ));
    }
    None
}

/// Every KQL query in a JSON value: objects `{"language":"kuery","query":…}`.
fn queries_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if o.get("language") == Some(&Value::from("kuery")) {
                if let Some(Value::String(q)) = o.get("query") {
                    out.push(q.clone());
                }
            }
            o.values().for_each(|v| queries_in(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| queries_in(v, out)),
        Value::String(s) if s.starts_with('{') || s.starts_with('[') => {
            // The JSON-in-a-string attributes (searchSourceJSON, panelsJSON).
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                queries_in(&inner, out);
            }
        }
        _ => {}
    }
}

/// Whether `name` matches an index pattern (`*` any run of characters;
/// comma-separated alternatives).
fn glob(pattern: &str, name: &str) -> bool {
    fn one(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| one(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && one(rest, &n[1..]),
        }
    }
    pattern
        .split(',')
        .any(|p| one(p.trim().as_bytes(), name.as_bytes()))
}

#[test]
fn the_file_is_import_ndjson_whose_references_resolve() {
    let objects = objects();
    let mut ids = BTreeSet::new();
    for o in &objects {
        assert!(
            ids.insert(o["id"].as_str().unwrap()),
            "duplicate id {}",
            o["id"]
        );
    }
    let known: BTreeSet<(&str, &str)> = objects
        .iter()
        .map(|o| (o["type"].as_str().unwrap(), o["id"].as_str().unwrap()))
        .collect();
    assert_eq!(of_type(&objects, "index-pattern").len(), 1);
    assert_eq!(of_type(&objects, "dashboard").len(), 1);

    let resolves = |r: &Value, what: &str| {
        let key = (r["type"].as_str().unwrap(), r["id"].as_str().unwrap());
        assert!(
            known.contains(&key),
            "{what}: reference {r} is to no object of the file"
        );
    };
    for o in &objects {
        let mut names = BTreeSet::new();
        for r in o["references"].as_array().unwrap() {
            resolves(r, o["id"].as_str().unwrap());
            assert!(
                names.insert(r["name"].as_str().unwrap()),
                "duplicate reference name {r}"
            );
        }
    }

    let dashboard = of_type(&objects, "dashboard")[0];
    let a = &dashboard["attributes"];
    assert!(a["title"].as_str().is_some_and(|t| !t.is_empty()));
    json_string(&a["optionsJSON"], "optionsJSON");
    json_string(
        &a["kibanaSavedObjectMeta"]["searchSourceJSON"],
        "searchSourceJSON",
    );
    let dash_refs: BTreeMap<&str, &Value> = dashboard["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r))
        .collect();
    let panels = panels(dashboard);
    assert!(panels.len() >= 8, "only {} panels", panels.len());
    let mut indexes = BTreeSet::new();
    let mut used_refs = BTreeSet::new();
    for p in &panels {
        let index = p["panelIndex"].as_str().expect("panelIndex");
        assert!(indexes.insert(index), "duplicate panelIndex {index}");
        let g = &p["gridData"];
        assert_eq!(g["i"], index, "gridData.i is the panelIndex");
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 48 && w > 0 && g["h"].as_u64().unwrap() > 0, "{g}");
        assert_eq!(p["type"], "lens", "every panel is a by-value Lens panel");
        assert!(
            p.get("panelRefName").is_none(),
            "by value, not by reference"
        );
        let attrs = &p["embeddableConfig"]["attributes"];
        assert_eq!(attrs["type"], "lens");
        let title = attrs["title"].as_str().unwrap();
        let vis_type = attrs["visualizationType"].as_str().unwrap();
        assert!(
            ["lnsXY", "lnsPie", "lnsMetric", "lnsDatatable"].contains(&vis_type),
            "{title}: {vis_type}"
        );
        let state = &attrs["state"];
        let layers = state["datasourceStates"]["formBased"]["layers"]
            .as_object()
            .unwrap_or_else(|| panic!("{title}: no formBased layers"));
        assert!(!layers.is_empty(), "{title}: no layer");
        let inner_refs: BTreeMap<&str, &Value> = attrs["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap(), r))
            .collect();
        let mut columns = BTreeSet::new();
        for (layer, l) in layers {
            let name = format!("indexpattern-datasource-layer-{layer}");
            let inner = inner_refs
                .get(name.as_str())
                .unwrap_or_else(|| panic!("{title}: layer {layer} has no data view reference"));
            resolves(inner, title);
            let outer = dash_refs
                .get(format!("{index}:{name}").as_str())
                .unwrap_or_else(|| panic!("{title}: the dashboard does not carry {name}"));
            assert_eq!(outer["id"], inner["id"], "{title}");
            assert_eq!(outer["type"], "index-pattern", "{title}");
            used_refs.insert(format!("{index}:{name}"));
            let cols = l["columns"].as_object().unwrap();
            let order: BTreeSet<&str> = l["columnOrder"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let keys: BTreeSet<&str> = cols.keys().map(String::as_str).collect();
            assert_eq!(order, keys, "{title}: columnOrder names every column once");
            for (id, c) in cols {
                if let Some(by) = c["params"]["orderBy"]["columnId"].as_str() {
                    assert!(
                        cols.contains_key(by),
                        "{title}: {id} is ordered by no column"
                    );
                }
                columns.insert(id.clone());
            }
        }
        // Every column the visualisation draws is one of the layer's.
        let vis = &state["visualization"];
        let mut accessors = Vec::new();
        let mut collect = |v: &Value| {
            for key in ["xAccessor", "splitAccessor", "metricAccessor", "columnId"] {
                if let Some(s) = v[key].as_str() {
                    accessors.push(s.to_owned());
                }
            }
            for key in ["accessors", "primaryGroups", "metrics"] {
                for s in v[key].as_array().into_iter().flatten() {
                    accessors.push(s.as_str().unwrap().to_owned());
                }
            }
        };
        collect(vis);
        for l in vis["layers"].as_array().into_iter().flatten() {
            assert!(
                layers.contains_key(l["layerId"].as_str().unwrap()),
                "{title}"
            );
            collect(l);
        }
        for c in vis["columns"].as_array().into_iter().flatten() {
            collect(c);
        }
        if let Some(l) = vis["layerId"].as_str() {
            assert!(layers.contains_key(l), "{title}: layerId {l}");
        }
        assert!(!accessors.is_empty(), "{title}: draws nothing");
        for acc in &accessors {
            assert!(
                columns.contains(acc),
                "{title}: draws {acc}, no column of its layer"
            );
        }
    }
    let unused: Vec<_> = dash_refs
        .keys()
        .filter(|n| !used_refs.contains(**n))
        .collect();
    assert!(
        unused.is_empty(),
        "dashboard references no panel uses: {unused:?}"
    );
}

#[test]
fn the_data_view_covers_every_data_stream_dnsenrich_writes() {
    let objects = objects();
    let view = &of_type(&objects, "index-pattern")[0]["attributes"];
    let pattern = view["title"].as_str().unwrap();
    let datasets = GrammarSet::builtin().unwrap().datasets();
    assert!(datasets.contains(&"pihole.dns") && datasets.contains(&"pihole.dhcp"));
    for namespace in ["default", "home"] {
        let target = Target::DataStream {
            namespace: namespace.into(),
        };
        for d in &datasets {
            let stream = target.for_dataset(d);
            assert!(glob(pattern, &stream), "{pattern} misses {stream}");
        }
    }
    // Not someone else's logs.
    assert!(!glob(pattern, "logs-nginx.access-default"));
    let fields = template_fields();
    let time = view["timeFieldName"].as_str().unwrap();
    assert_eq!(fields[time].ty, "date", "time field {time}");
    json_string(&view["fields"], "fields");
}

#[test]
fn every_field_a_panel_uses_is_mapped_with_a_usable_type() {
    let objects = objects();
    let fields = template_fields();
    let mut problems = Vec::new();
    let mut aggregated = BTreeSet::new();
    let states = lens_states(&objects);
    for (title, attrs) in &states {
        let layers = attrs["state"]["datasourceStates"]["formBased"]["layers"]
            .as_object()
            .unwrap();
        for l in layers.values() {
            for c in l["columns"].as_object().unwrap().values() {
                if let Some(p) = column_problems(c, &fields) {
                    problems.push(format!("{title}: {p}"));
                }
                if let Some(f) = c["sourceField"].as_str() {
                    aggregated.insert(f.to_owned());
                }
            }
        }
        // Filters are kept as KQL in the query, so there is one form to check.
        assert_eq!(attrs["state"]["filters"], serde_json::json!([]), "{title}");
    }
    let mut queries = Vec::new();
    for o in &objects {
        queries_in(o, &mut queries);
    }
    let written: Vec<_> = queries.iter().filter(|q| !q.is_empty()).collect();
    assert!(
        written.len() >= states.len(),
        "a panel without a query: {queries:?}"
    );
    for q in written {
        problems.extend(kql_problems(q, &fields));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // What the dashboard is for: these are all drawn.
    for f in [
        "@timestamp",
        "event.action",
        "client.ip",
        "dns.question.registered_domain",
        "dns.question.name",
        "threat.feed.name",
        "server.ip",
        "dns.response_code",
    ] {
        assert!(aggregated.contains(f), "no panel aggregates {f}");
    }
}

/// The README's sample queries (the `kql` block of its Kibana section) name
/// fields the template has.
#[test]
fn the_readme_sample_queries_use_mapped_fields() {
    let readme = std::fs::read_to_string(path("README.md")).unwrap();
    let section = readme
        .split("\n## Kibana\n")
        .nth(1)
        .expect("README has a Kibana section");
    let section = section.split("\n## ").next().unwrap();
    let block = section
        .split("```kql\n")
        .nth(1)
        .expect("the Kibana section has a ```kql block")
        .split("\n```")
        .next()
        .unwrap();
    let queries: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(queries.len() >= 6, "{queries:?}");
    let fields = template_fields();
    let problems: Vec<_> = queries
        .iter()
        .flat_map(|q| kql_problems(q, &fields))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The committed file is what `kibana/generate.py` writes, so a panel changed
/// in the script (where it is readable) cannot be forgotten in the file, nor
/// the file edited by hand and overwritten by the next run.
#[test]
fn the_file_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dnsenrich.ndjson");
    let status = std::process::Command::new("python3")
        .arg(path("kibana/generate.py"))
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install it with: apt-get install -y python3")
        });
    assert!(status.success(), "kibana/generate.py failed: {status}");
    let fresh = std::fs::read_to_string(&out).unwrap();
    let committed = std::fs::read_to_string(path("kibana/dnsenrich.ndjson")).unwrap();
    assert!(
        fresh == committed,
        "kibana/dnsenrich.ndjson is not what kibana/generate.py writes; run python3 kibana/generate.py"
    );
}

/// The checks above do reject what Kibana could not use.
#[test]
fn the_checker_rejects_unknown_unindexed_and_misplaced_fields() {
    let fields = template_fields();
    let ok = |q| kql_problems(q, &fields).is_empty();
    assert!(ok(
        r#"client.ip : "192.0.2.10" and not event.action : ("dns-query" or "dns-forward")"#
    ));
    assert!(ok(
        r#"threat.enrichments : { matched.type : "parent_domain" }"#
    ));
    assert!(ok(
        "dns.answers.ttl < 60 and dns.question.name : *.example.com"
    ));
    assert!(!ok("dns.qname : x"), "unknown field");
    assert!(!ok(r#"event.original : "query""#), "not indexed");
    assert!(
        !ok(r#"threat.enrichments.matched.type : "exact""#),
        "nested without a group"
    );
    assert!(
        !ok(r#"dns.question : { name : x }"#),
        "a group on an object"
    );
    assert!(!ok(r#"dns.question : x"#), "an object");
    assert!(!ok(r#"message"#), "no field at all");
    assert_eq!(
        kql_fields(r#"a.b:"x:y" or c <= 3 and d:{ e : "}" }"#),
        [
            KqlField {
                field: "a.b".into(),
                group: None,
                opens: false
            },
            KqlField {
                field: "c".into(),
                group: None,
                opens: false
            },
            KqlField {
                field: "d".into(),
                group: None,
                opens: true
            },
            KqlField {
                field: "d.e".into(),
                group: Some("d".into()),
                opens: false
            },
        ]
    );

    let col = |op: &str, field: &str, dt: &str| serde_json::json!({"operationType": op, "sourceField": field, "dataType": dt});
    assert!(column_problems(&col("terms", "client.ip", "ip"), &fields).is_none());
    assert!(column_problems(&col("terms", "dnsmasq.serial", "number"), &fields).is_none());
    assert!(column_problems(&col("date_histogram", "@timestamp", "date"), &fields).is_none());
    assert!(column_problems(&col("terms", "message", "string"), &fields).is_some());
    assert!(column_problems(&col("terms", "client.ip", "string"), &fields).is_some());
    assert!(column_problems(&col("date_histogram", "client.ip", "date"), &fields).is_some());
    assert!(column_problems(
        &col("terms", "threat.enrichments.indicator.provider", "string"),
        &fields
    )
    .is_some());
    assert!(column_problems(&col("terms", "no.such.field", "string"), &fields).is_some());
    assert!(column_problems(&col("average", "client.port", "number"), &fields).is_some());

    assert!(glob("logs-pihole.*-*", "logs-pihole.dns-default"));
    assert!(!glob("logs-pihole.*-*", "logs-pihole"));
}

/// Whether an event matches a panel query. The panels' queries are kept to
/// `field : "value"` and `field : *` clauses joined by `and`, which is what
/// this evaluates; anything else fails the test rather than being guessed at.
fn kql_matches(q: &str, ev: &Value) -> bool {
    q.split(" and ").all(|clause| {
        let (field, value) = clause
            .split_once(':')
            .unwrap_or_else(|| panic!("{q:?}: {clause:?} is not field : value"));
        let (field, value) = (field.trim(), value.trim());
        let found = values_at(ev, field);
        if value == "*" {
            return !found.is_empty();
        }
        let want = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .filter(|v| !v.contains(['"', '\\', '*']))
            .unwrap_or_else(|| panic!("{q:?}: {value:?} is outside the form this test evaluates"));
        found.iter().any(|v| match v {
            Value::String(s) => s == want,
            other => serde_json::from_str::<Value>(want).is_ok_and(|w| w == **other),
        })
    })
}

/// The values at a dotted path of an event, through arrays of objects.
fn values_at<'a>(ev: &'a Value, field: &str) -> Vec<&'a Value> {
    let mut here = vec![ev];
    for part in field.split('.') {
        here = here
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                v => vec![v],
            })
            .filter_map(|v| v.get(part))
            .filter(|v| !v.is_null())
            .collect();
    }
    here.into_iter()
        .flat_map(|v| match v {
            Value::Array(a) => a.iter().collect::<Vec<_>>(),
            v => vec![v],
        })
        .collect()
}

/// Pi-hole lines through `logger` over TCP into the real daemon, with one of
/// the names on an indicator list: every panel of the dashboard finds events
/// its query selects that carry every field it breaks them down by, so none
/// stays empty for lack of a field dnsenrich does not write.
#[test]
fn every_panel_shows_events_the_daemon_writes() {
    let state = tempfile::tempdir().unwrap();
    let list = state.path().join("Feed-Test.txt");
    std::fs::write(&list, "evil.example.org\n").unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .arg("--ioc-file")
        .arg(&list)
        .start();
    let lines = [
        "query[A] www.example.com from 192.0.2.10",
        "forwarded www.example.com to 9.9.9.9",
        "reply www.example.com is 192.0.2.1",
        "query[A] ads.example.net from 192.0.2.11",
        "gravity blocked ads.example.net is 0.0.0.0",
        "query[A] evil.example.org from 192.0.2.12",
        "forwarded evil.example.org to 1.1.1.1",
        "reply evil.example.org is NXDOMAIN",
        "query[AAAA] broken.example from 192.0.2.10",
        "reply error is SERVFAIL",
    ];
    let port = d.tcp().port().to_string();
    let text = lines.join("\n") + "\n";
    logger(
        &["-n", "127.0.0.1", "-P", &port, "-T", "-t", "dnsmasq"],
        text.as_bytes(),
    );
    wait_until("an event per line", Duration::from_secs(20), || {
        d.events().len() >= lines.len()
    });
    assert!(d.sigterm().success());
    let events = d.events();
    assert_eq!(events.len(), lines.len(), "{events:#?}");
    let unread: Vec<_> = events
        .iter()
        .filter(|e| e["event"]["kind"] == "pipeline_error")
        .collect();
    assert!(unread.is_empty(), "lines not read: {unread:#?}");

    let objects = objects();
    let states = lens_states(&objects);
    assert!(!states.is_empty());
    for (title, attrs) in &states {
        let q = attrs["state"]["query"]["query"].as_str().unwrap();
        let layers = attrs["state"]["datasourceStates"]["formBased"]["layers"]
            .as_object()
            .unwrap();
        let broken_down_by: Vec<&str> = layers
            .values()
            .flat_map(|l| l["columns"].as_object().unwrap().values())
            .filter_map(|c| c["sourceField"].as_str())
            .filter(|f| *f != "___records___")
            .collect();
        let shown: Vec<&Value> = events
            .iter()
            .filter(|e| kql_matches(q, e))
            .filter(|e| broken_down_by.iter().all(|f| !values_at(e, f).is_empty()))
            .collect();
        assert!(
            !shown.is_empty(),
            "{title}: no event matches {q:?} with {broken_down_by:?}\n{events:#?}"
        );
    }

    // What the panels would show, for the lines above.
    let of = |q: &str, field: &str| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| kql_matches(q, e))
            .flat_map(|e| values_at(e, field))
            .map(|v| v.as_str().map(str::to_owned).unwrap_or(v.to_string()))
            .collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        of(r#"event.action : "dns-blocked""#, "dns.question.name"),
        set(&["ads.example.net"])
    );
    assert_eq!(
        of(r#"event.action : "dns-forward""#, "server.ip"),
        set(&["1.1.1.1", "9.9.9.9"])
    );
    let hits: Vec<_> = events
        .iter()
        .filter(|e| kql_matches("threat.feed.name : *", e) && !values_at(e, "client.ip").is_empty())
        .collect();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["threat"]["feed"]["name"], "Feed-Test");
    assert_eq!(hits[0]["client"]["ip"], "192.0.2.12");
    assert!(of("dns.response_code : *", "dns.response_code").contains("NXDOMAIN"));
    assert_eq!(
        of(r#"event.outcome : "failure""#, "dns.response_code"),
        set(&["NXDOMAIN", "SERVFAIL"])
    );
    assert_eq!(
        of(r#"event.outcome : "success""#, "dns.response_code"),
        set(&["NOERROR"])
    );
}
