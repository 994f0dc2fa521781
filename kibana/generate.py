#!/usr/bin/env python3
"""Writes kibana/dnsenrich.ndjson: a data view for the data streams dnsenrich
writes and a dashboard of Lens visualisations embedded by value, in the
saved-objects format Kibana 8.8+ imports (POST /api/saved_objects/_import, or
Stack Management > Saved objects > Import).

The file is generated so the panels stay readable here; tests/kibana.rs checks
the generated file (valid import NDJSON, references resolve, every field a
panel uses is in dnsenrich's index template with a usable type). Run it after
changing a panel:

    python3 kibana/generate.py [OUT]     (default: kibana/dnsenrich.ndjson)

Only the standard library is used; the output is deterministic.
"""

import json
import os
import sys
import uuid

DATA_VIEW_ID = "dnsenrich-logs-pihole"
DASHBOARD_ID = "dnsenrich-overview"
# The shapes below are those of Kibana 8.8's own sample dashboards: panel
# version 8.8.0, the "formBased" Lens datasource, dashboard migration 8.7.0.
KIBANA_VERSION = "8.8.0"
NS = uuid.UUID("5b1f7c52-8f1e-4d8e-9a57-0d1c4e7a2b10")


def uid(name):
    return str(uuid.uuid5(NS, name))


# Lens column data types by the template's field types.
DATA_TYPE = {"keyword": "string", "constant_keyword": "string", "ip": "ip", "long": "number"}


def count(cid, label="Count of records"):
    return cid, {
        "label": label,
        "dataType": "number",
        "operationType": "count",
        "isBucketed": False,
        "scale": "ratio",
        "sourceField": "___records___",
        "params": {"emptyAsNull": True},
        "customLabel": label != "Count of records",
    }


def date_histogram(cid):
    return cid, {
        "label": "@timestamp",
        "dataType": "date",
        "operationType": "date_histogram",
        "sourceField": "@timestamp",
        "isBucketed": True,
        "scale": "interval",
        "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
    }


def terms(cid, field, ftype, size, order_by, label=None):
    return cid, {
        "label": label or f"Top {size} values of {field}",
        "dataType": DATA_TYPE[ftype],
        "operationType": "terms",
        "scale": "ordinal",
        "sourceField": field,
        "isBucketed": True,
        "params": {
            "size": size,
            "orderBy": {"type": "column", "columnId": order_by},
            "orderDirection": "desc",
            "otherBucket": False,
            "missingBucket": False,
            "parentFormat": {"id": "terms"},
        },
        "customLabel": label is not None,
    }


def lens(key, title, vis_type, kql, columns, visualization):
    """One by-value Lens panel's attributes; `columns` is [(id, column)]."""
    layer = uid(key + "/layer")
    ref_name = f"indexpattern-datasource-layer-{layer}"
    vis = dict(visualization(layer))
    return layer, ref_name, {
        "title": title,
        "description": "",
        "visualizationType": vis_type,
        "type": "lens",
        "references": [{"type": "index-pattern", "id": DATA_VIEW_ID, "name": ref_name}],
        "state": {
            "visualization": vis,
            "query": {"query": kql, "language": "kuery"},
            "filters": [],
            "datasourceStates": {
                "formBased": {
                    "layers": {
                        layer: {
                            "columns": dict(columns),
                            "columnOrder": [c for c, _ in columns],
                            "incompleteColumns": {},
                        }
                    }
                },
                "textBased": {"layers": {}},
            },
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }


def metric(key, title, kql, label):
    c = uid(key + "/count")
    return lens(
        key,
        title,
        "lnsMetric",
        kql,
        [count(c, label)],
        lambda layer: {"layerId": layer, "layerType": "data", "metricAccessor": c},
    )


def over_time(key, title, kql, field, ftype, size):
    t, s, c = uid(key + "/time"), uid(key + "/split"), uid(key + "/count")
    return lens(
        key,
        title,
        "lnsXY",
        kql,
        # Terms first: the same top values in every time bucket.
        [terms(s, field, ftype, size, c), date_histogram(t), count(c)],
        lambda layer: {
            "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide",
            "preferredSeriesType": "bar_stacked",
            "layers": [
                {
                    "layerId": layer,
                    "layerType": "data",
                    "seriesType": "bar_stacked",
                    "xAccessor": t,
                    "splitAccessor": s,
                    "accessors": [c],
                    "position": "top",
                    "showGridlines": False,
                }
            ],
        },
    )


def top_bar(key, title, kql, field, ftype, size):
    s, c = uid(key + "/terms"), uid(key + "/count")
    return lens(
        key,
        title,
        "lnsXY",
        kql,
        [terms(s, field, ftype, size, c), count(c)],
        lambda layer: {
            "legend": {"isVisible": False, "position": "right"},
            "valueLabels": "show",
            "preferredSeriesType": "bar_horizontal",
            "layers": [
                {
                    "layerId": layer,
                    "layerType": "data",
                    "seriesType": "bar_horizontal",
                    "xAccessor": s,
                    "accessors": [c],
                    "position": "top",
                    "showGridlines": False,
                }
            ],
        },
    )


def donut(key, title, kql, field, ftype, size):
    s, c = uid(key + "/terms"), uid(key + "/count")
    return lens(
        key,
        title,
        "lnsPie",
        kql,
        [terms(s, field, ftype, size, c), count(c)],
        lambda layer: {
            "shape": "donut",
            "layers": [
                {
                    "layerId": layer,
                    "layerType": "data",
                    "primaryGroups": [s],
                    "metrics": [c],
                    "numberDisplay": "percent",
                    "categoryDisplay": "default",
                    "legendDisplay": "default",
                    "nestedLegend": False,
                }
            ],
        },
    )


def table(key, title, kql, fields, size):
    """A data table: one terms column per (field, type, label), then the count."""
    c = uid(key + "/count")
    cols = [
        terms(uid(f"{key}/{f}"), f, t, size, c, label) for f, t, label in fields
    ] + [count(c, "Events")]
    return lens(
        key,
        title,
        "lnsDatatable",
        kql,
        cols,
        lambda layer: {
            "layerId": layer,
            "layerType": "data",
            "columns": [{"columnId": cid, "isTransposed": False} for cid, _ in cols],
            "sorting": {"columnId": c, "direction": "desc"},
        },
    )


# Queries the panels share. Field names stand bare before ":" so
# tests/kibana.rs can check each against the index template.
DNS_LINES = 'event.dataset : "pihole.dns" and dns.type : *'
QUERIES = 'event.action : "dns-query"'
BLOCKED = 'event.action : "dns-blocked"'
THREATS = "threat.feed.name : *"

# (key, (x, y, w, h), attributes)
PANELS = [
    ("queries", (0, 0, 12, 6), metric("queries", "DNS queries", QUERIES, "Queries")),
    ("blocked", (12, 0, 12, 6), metric("blocked", "Blocked queries", BLOCKED, "Blocked")),
    ("threat-count", (24, 0, 12, 6), metric("threat-count", "Threat hits", THREATS, "Threat hits")),
    (
        "failures",
        (36, 0, 12, 6),
        metric(
            "failures",
            "Failed answers (NXDOMAIN, SERVFAIL, ...)",
            'event.outcome : "failure"',
            "Failed answers",
        ),
    ),
    (
        "by-action",
        (0, 6, 48, 12),
        over_time(
            "by-action",
            "DNS lines over time by action (status)",
            DNS_LINES,
            "event.action",
            "keyword",
            10,
        ),
    ),
    (
        "top-clients",
        (0, 18, 16, 14),
        top_bar("top-clients", "Top clients", QUERIES, "client.ip", "ip", 10),
    ),
    (
        "top-domains",
        (16, 18, 16, 14),
        top_bar(
            "top-domains",
            "Top queried domains",
            QUERIES,
            "dns.question.registered_domain",
            "keyword",
            10,
        ),
    ),
    (
        "top-blocked",
        (32, 18, 16, 14),
        top_bar("top-blocked", "Top blocked domains", BLOCKED, "dns.question.name", "keyword", 10),
    ),
    (
        "threats",
        (0, 32, 24, 14),
        table(
            "threats",
            "Threat hits by feed and client",
            THREATS,
            [
                ("threat.feed.name", "keyword", "Feed"),
                ("client.ip", "ip", "Client"),
                ("dns.question.name", "keyword", "Name"),
            ],
            20,
        ),
    ),
    (
        "upstreams",
        (24, 32, 12, 14),
        donut(
            "upstreams",
            "Upstream share (forwarded queries)",
            'event.action : "dns-forward"',
            "server.ip",
            "ip",
            10,
        ),
    ),
    (
        "rcodes",
        (36, 32, 12, 14),
        donut(
            "rcodes",
            "Response codes",
            "dns.response_code : *",
            "dns.response_code",
            "keyword",
            10,
        ),
    ),
]


def dashboard():
    panels, refs = [], []
    for key, (x, y, w, h), (_layer, ref_name, attrs) in PANELS:
        index = uid(key + "/panel")
        panels.append(
            {
                "version": KIBANA_VERSION,
                "type": "lens",
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                "panelIndex": index,
                "embeddableConfig": {"attributes": attrs, "enhancements": {}},
                "title": attrs["title"],
            }
        )
        refs.append({"type": "index-pattern", "id": DATA_VIEW_ID, "name": f"{index}:{ref_name}"})
    return {
        "type": "dashboard",
        "id": DASHBOARD_ID,
        "attributes": {
            "title": "dnsenrich: DNS overview",
            "description": "Pi-hole / dnsmasq DNS events written by dnsenrich: "
            "statuses over time, top clients and domains, blocks, threat hits, "
            "upstreams and response codes.",
            "panelsJSON": json.dumps(panels, separators=(",", ":")),
            "optionsJSON": json.dumps(
                {
                    "useMargins": True,
                    "syncColors": False,
                    "syncCursor": True,
                    "syncTooltips": False,
                    "hidePanelTitles": False,
                },
                separators=(",", ":"),
            ),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 60000},
            "version": 1,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []},
                    separators=(",", ":"),
                )
            },
        },
        "references": refs,
        "coreMigrationVersion": KIBANA_VERSION,
        "typeMigrationVersion": "8.7.0",
        "managed": False,
    }


def data_view():
    return {
        "type": "index-pattern",
        "id": DATA_VIEW_ID,
        "attributes": {
            # Every dataset dnsenrich's grammars write (pihole.dns,
            # pihole.dhcp, pihole.ftl and the other resolvers' query
            # datasets), in every namespace.
            "title": ",".join(
                [
                    "logs-pihole.*-*",
                    "logs-bind.query-*",
                    "logs-unbound.query-*",
                    "logs-pdns_recursor.query-*",
                    "logs-coredns.query-*",
                    "logs-adguardhome.query-*",
                ]
            ),
            "name": "dnsenrich (DNS logs)",
            "timeFieldName": "@timestamp",
            "fields": "[]",
            "fieldFormatMap": "{}",
            "runtimeFieldMap": "{}",
            "typeMeta": "{}",
        },
        "references": [],
        "coreMigrationVersion": KIBANA_VERSION,
        "typeMigrationVersion": "7.11.0",
        "managed": False,
    }


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dnsenrich.ndjson")
    if len(sys.argv) > 1:
        out = sys.argv[1]
    with open(out, "w", encoding="utf-8") as f:
        for obj in (data_view(), dashboard()):
            f.write(json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
