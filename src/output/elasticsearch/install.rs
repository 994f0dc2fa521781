//! Getting the server ready for the target before documents go to it: what
//! the server is (`GET /`, [`Server`]), which of Elastic's component
//! templates it has, the templates of `template.rs` (each replaced only when
//! the server's copy is older), and whether it can take the target at all.
//!
//! ```text
//!  GET /                                   Elasticsearch or OpenSearch, version
//!  GET /_component_template/logs@mappings  (and logs@settings, ecs@mappings; ES only)
//!  per dataset, when its first document comes (the default dataset at start):
//!    GET /_component_template/dnsenrich@mappings   → PUT unless as new or newer (ES only)
//!    GET /_index_template/dnsenrich-logs-<dataset> → PUT unless as new or newer
//!    (first: DELETE the 0.x template dnsenrich-logs-<dataset>-<namespace>)
//!  data stream mode, at start:
//!    PUT /_data_stream/logs-pihole.dns-<namespace> created, already there, or
//!                                                  401/403 (a writer may still
//!                                                  create it by writing); any
//!                                                  other 4xx: the server cannot take it
//! ```
//!
//! A 401/403 to `GET /` (credentials that may write but not monitor) leaves
//! the server unknown: no templates are installed and the events are sent.
//!
//! With `install_template = false` none of this is done: the templates are
//! someone else's, and so is knowing that the server can take the target.
//!
//! A target the server cannot take (no data streams, a retention it has no
//! lifecycle for) stops the daemon at start with the reason
//! ([`ElasticsearchOutput::prepare`]). If the server was not reachable at
//! start, the same is found when it first answers; then the output holds
//! the events (they are not dead-lettered one by one) and logs the reason
//! until it is restarted with a target the server can take.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::{Method, Url};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::bulk::{self, RequestVerdict};
use super::nodes::Health;
use super::route::Target;
use super::server::Server;
use super::settle::{reason, with_causes};
use super::template::{self, Flavour, Parts, TEMPLATE_VERSION};
use super::{ElasticsearchOutput, Shared};
use crate::event::DEFAULT_DATASET;
use crate::output::OutputError;

/// What was found out about the server, once.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    pub server: Server,
    pub parts: Parts,
    /// `false` when the server refused to say (`GET /` answered 401/403: a
    /// writer without the `monitor` privilege); no templates are installed
    /// then, and the bulk requests meet whatever the server does.
    pub known: bool,
}

/// The templates installed so far, one gate per template key (a dataset, or
/// a plain index name), so concurrent requests install each once.
#[derive(Default)]
pub(super) struct Templates {
    gates: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    component: OnceCell<()>,
}

/// Why a step did not succeed.
#[derive(Debug)]
enum Problem {
    /// Unreachable, busy, or an unreadable answer: try again later.
    Retry(String),
    /// The server answered with a refusal that another try will not change.
    Refused(String),
    /// The server cannot take the target; the reason says what to change.
    Unfit(String),
}

impl ElasticsearchOutput {
    /// Checks once, at start, that the server can take the target: a data
    /// stream on a server without data streams, or a retention on a server
    /// without data stream lifecycles, is an error with the reason. A server
    /// that does not answer is not an error here (it is retried once events
    /// flow); neither is a refused template (logged, and sent without).
    pub async fn prepare(&self) -> Result<(), OutputError> {
        let shared = &self.shared;
        if shared.templates.is_none() {
            return Ok(());
        }
        match probe(shared).await {
            Ok(setup) => {
                tracing::info!(server = %setup.server.describe(), "Elasticsearch output ready");
                let _ = shared.server.set(setup);
                Ok(())
            }
            Err(Problem::Unfit(reason)) => Err(OutputError::Unfit { reason }),
            Err(Problem::Retry(e) | Problem::Refused(e)) => {
                tracing::warn!(
                    nodes = %shared.nodes.urls().join(" "),
                    error = %e,
                    "Elasticsearch is not ready at start; events are kept and sent once it is"
                );
                Ok(())
            }
        }
    }
}

/// Waits until the server is known and fit for the target, then installs
/// the templates of `datasets` (each once per run). While the server cannot
/// take the target this keeps the caller waiting, so its documents are held,
/// not dead-lettered.
pub(super) async fn ready_for(shared: &Shared, datasets: &[String]) {
    // Without templates to install there is nothing to find out first.
    if shared.templates.is_none() {
        return;
    }
    let setup = shared
        .server
        .get_or_init(|| async {
            let mut attempt = 0;
            loop {
                let delay = match probe(shared).await {
                    Ok(setup) => return setup,
                    Err(Problem::Unfit(reason)) => {
                        let delay = shared.backoff.max;
                        tracing::error!(
                            nodes = %shared.nodes.urls().join(" "),
                            reason = %reason,
                            retry_in_ms = delay.as_millis() as u64,
                            "Elasticsearch cannot take the target; events are kept, \
                             not sent (restart with a target it can take)"
                        );
                        delay
                    }
                    Err(Problem::Refused(e)) => {
                        tracing::warn!(
                            nodes = %shared.nodes.urls().join(" "),
                            error = %e,
                            "Elasticsearch does not say what it is to these credentials; \
                             sending events without installing templates"
                        );
                        return Setup {
                            server: Server::from_root(&Value::Null),
                            parts: Parts::standalone(),
                            known: false,
                        };
                    }
                    Err(Problem::Retry(e)) => {
                        attempt += 1;
                        let delay = shared.backoff.delay(attempt);
                        tracing::warn!(
                            nodes = %shared.nodes.urls().join(" "),
                            attempt,
                            retry_in_ms = delay.as_millis() as u64,
                            error = %e,
                            "could not reach Elasticsearch; retrying (events are kept)"
                        );
                        delay
                    }
                };
                tokio::time::sleep(delay).await;
            }
        })
        .await;
    for dataset in datasets {
        install_for(shared, setup, dataset).await;
    }
}

/// Finds out what the server is, and that it can take the target.
async fn probe(shared: &Shared) -> Result<Setup, Problem> {
    let (status, root) = call(shared, Method::Get, "/", None).await?;
    if status >= 300 {
        return Err(refusal(status, &root));
    }
    let server = Server::from_root(&root);
    let mut parts = Parts {
        flavour: server.flavour,
        elastic: vec![],
        hooks: server.takes_missing_components(),
    };
    if server.flavour == Flavour::Elasticsearch {
        for name in template::ELASTIC_BEFORE
            .into_iter()
            .chain([template::ELASTIC_ECS])
        {
            let (status, _) = call(
                shared,
                Method::Get,
                &format!("/_component_template/{name}"),
                None,
            )
            .await?;
            if status == 200 {
                parts.elastic.push(name);
            }
        }
    }
    if shared.retention.is_some() {
        if let Some(why) = server.refuses_retention() {
            return Err(Problem::Unfit(why));
        }
    }
    let setup = Setup {
        server,
        parts,
        known: true,
    };
    if let Target::DataStream { .. } = &shared.target {
        install_for(shared, &setup, DEFAULT_DATASET).await;
        check_data_stream(shared, &setup).await?;
    }
    Ok(setup)
}

/// Creates the default dataset's data stream (or finds it there): the one
/// request that shows whether the server has data streams at all.
async fn check_data_stream(shared: &Shared, setup: &Setup) -> Result<(), Problem> {
    let name = shared.target.for_dataset(DEFAULT_DATASET);
    let (status, body) = call(shared, Method::Put, &format!("/_data_stream/{name}"), None).await?;
    let error = bulk::error_object(status, body.to_string().as_bytes());
    let kind = error["type"].as_str().unwrap_or_default();
    match status {
        200..=299 => Ok(()),
        400 if kind == "resource_already_exists_exception" => Ok(()),
        // A writer may create the data stream by writing to it
        // (`auto_configure`) without the right to create it explicitly.
        401 | 403 => Ok(()),
        400..=499 => Err(Problem::Unfit(format!(
            "{} cannot create the data stream {name} ({}); write to a plain index instead \
             with --index NAME (or index = \"...\" under [output])",
            setup.server.describe(),
            reason(&error)
        ))),
        _ => Err(Problem::Retry(format!("HTTP {status}: {}", reason(&error)))),
    }
}

/// Installs the templates `dataset`'s documents need, once per run.
async fn install_for(shared: &Shared, setup: &Setup, dataset: &str) {
    let Some(templates) = &shared.templates else {
        return;
    };
    if !setup.known {
        return;
    }
    let key = shared.target.template_key(dataset).into_owned();
    let gate = {
        let mut gates = templates.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.entry(key.clone()).or_default().clone()
    };
    gate.get_or_init(|| async {
        let (name, body) = match &shared.target {
            Target::DataStream { .. } => {
                if setup.parts.composed() {
                    templates
                        .component
                        .get_or_init(|| {
                            install(
                                shared,
                                "_component_template",
                                template::COMPONENT,
                                template::component_body(&setup.parts),
                            )
                        })
                        .await;
                }
                remove_legacy(shared, &shared.target.for_dataset(&key)).await;
                (
                    template::index_template_name(&format!("logs-{key}")),
                    template::data_stream_body(&key, &setup.parts, shared.retention.as_deref()),
                )
            }
            Target::Index { .. } => (
                template::index_template_name(&key),
                template::index_body(&key, setup.parts.flavour),
            ),
        };
        install(shared, "_index_template", &name, body).await;
    })
    .await;
}

/// Deletes the template dnsenrich 0.x installed for one data stream
/// (`dnsenrich-<data stream>`, priority 200): its pattern overlaps the
/// per-dataset template's at the same priority, which the server refuses.
/// Only a template dnsenrich manages is deleted; failing to is logged, and
/// the install that follows says what the server refused.
async fn remove_legacy(shared: &Shared, data_stream: &str) {
    let path = format!(
        "/_index_template/{}",
        template::index_template_name(data_stream)
    );
    let Ok((200, found)) = call(shared, Method::Get, &path, None).await else {
        return;
    };
    if stored("_index_template", &found)["_meta"]["managed_by"] != "dnsenrich" {
        return;
    }
    match call(shared, Method::Delete, &path, None).await {
        Ok((status, _)) if status < 300 => tracing::info!(
            template = %path.trim_start_matches("/_index_template/"),
            "deleted the per-data-stream template of an earlier dnsenrich"
        ),
        Ok((status, body)) => tracing::warn!(
            template = %path.trim_start_matches("/_index_template/"),
            status,
            body = %body,
            "could not delete the per-data-stream template of an earlier dnsenrich"
        ),
        Err(_) => {}
    }
}

/// Puts one template unless the server's copy is as new or newer, retrying
/// while the server is unreachable or busy. A refusal is logged and the
/// output carries on without the template rather than holding every event.
async fn install(shared: &Shared, api: &'static str, name: &str, body: Value) {
    let mut attempt = 0;
    loop {
        let problem = match put_unless_newer(shared, api, name, &body).await {
            Ok(()) => return,
            Err(Problem::Refused(e) | Problem::Unfit(e)) => {
                tracing::error!(
                    template = %name,
                    reason = %e,
                    "could not install the template; sending events without it \
                     (set install_template = false if the templates are managed elsewhere)"
                );
                return;
            }
            Err(Problem::Retry(e)) => e,
        };
        attempt += 1;
        let delay = shared.backoff.delay(attempt);
        tracing::warn!(
            template = %name,
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            error = %problem,
            "could not install the template; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

async fn put_unless_newer(
    shared: &Shared,
    api: &'static str,
    name: &str,
    body: &Value,
) -> Result<(), Problem> {
    let path = format!("/{api}/{name}");
    let (status, existing) = call(shared, Method::Get, &path, None).await?;
    let current = match status {
        200 => Some(existing),
        404 => None,
        _ => return Err(refusal(status, &existing)),
    };
    if let Some(current) = &current {
        let found = stored(api, current);
        match keep(&found, body) {
            Keep::Yes(why) => {
                tracing::info!(template = %name, "{why}; left as it is");
                return Ok(());
            }
            Keep::No => {}
        }
    }
    let (status, answer) = call(shared, Method::Put, &path, Some(body.to_string())).await?;
    if status >= 300 {
        return Err(refusal(status, &answer));
    }
    tracing::info!(template = %name, version = TEMPLATE_VERSION, "installed the template");
    Ok(())
}

/// The template inside a `GET _index_template/<name>` or
/// `GET _component_template/<name>` answer.
fn stored(api: &str, answer: &Value) -> Value {
    let (list, item) = match api {
        "_component_template" => ("component_templates", "component_template"),
        _ => ("index_templates", "index_template"),
    };
    answer[list][0][item].clone()
}

enum Keep {
    Yes(String),
    No,
}

/// Whether the server's template `found` stays: one another program
/// manages, or one of a newer dnsenrich, or one of this version with the
/// same retention. An older one (or one without a numeric version, as
/// dnsenrich 0.x wrote) is replaced.
fn keep(found: &Value, ours: &Value) -> Keep {
    let meta = &found["_meta"];
    if meta["managed_by"] != "dnsenrich" {
        return Keep::Yes("a template of that name is managed by something else".into());
    }
    let Some(version) = meta["version"].as_u64() else {
        return Keep::No;
    };
    if version > TEMPLATE_VERSION {
        return Keep::Yes(format!(
            "the server has version {version} of the template, newer than this \
             dnsenrich's {TEMPLATE_VERSION}"
        ));
    }
    let retention = |t: &Value| t["template"]["lifecycle"]["data_retention"].clone();
    if version == TEMPLATE_VERSION && retention(found) == retention(ours) {
        return Keep::Yes(format!("version {version} is already installed"));
    }
    Keep::No
}

/// A refusal that will not change on a retry, or one that may (429, 5xx).
fn refusal(status: u16, body: &Value) -> Problem {
    let error = bulk::error_object(status, body.to_string().as_bytes());
    let text = format!("HTTP {status}: {}", reason(&error));
    if RequestVerdict::from_status(status) == RequestVerdict::Retry {
        Problem::Retry(text)
    } else {
        Problem::Refused(text)
    }
}

/// One request with the output's timeout, on the least busy node that is up
/// (waiting for one while none is); the answer's status and JSON body
/// (`null` if it is not JSON). What the answer says about the node is
/// reported on it, as a bulk request's is.
async fn call(
    shared: &Shared,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, Value), Problem> {
    let node = shared.nodes.pick(None).await;
    let res = node
        .node()
        .client
        .send(
            method,
            path,
            HeaderMap::new(),
            None::<&()>,
            body.as_deref().map(str::as_bytes),
            Some(shared.timeout),
        )
        .await;
    let failed = |text: String| {
        node.report(Health::Failed);
        // Every node's URL is checked (configured) or built (sniffed) to parse.
        let text = match Url::parse(&node.node().url) {
            Ok(url) => super::auth::explain_transport(&text, &url),
            Err(_) => text,
        };
        Problem::Retry(format!("node {}: {text}", node.node().url))
    };
    let resp = res.map_err(|e| failed(with_causes(&e)))?;
    let status = resp.status_code().as_u16();
    let bytes = resp.bytes().await.map_err(|e| failed(with_causes(&e)))?;
    node.report(if status >= 500 {
        Health::Failed
    } else {
        Health::Answered
    });
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ours(retention: Option<&str>) -> Value {
        let parts = Parts {
            flavour: Flavour::Elasticsearch,
            elastic: vec![],
            hooks: true,
        };
        template::data_stream_body("pihole.dns", &parts, retention)
    }

    #[test]
    fn an_older_template_is_replaced_and_a_newer_one_kept() {
        let t =
            |version: Value| json!({ "_meta": { "managed_by": "dnsenrich", "version": version } });
        assert!(matches!(keep(&t(json!(1)), &ours(None)), Keep::No));
        // dnsenrich 0.x wrote the crate version as a string.
        assert!(matches!(keep(&t(json!("0.1.0")), &ours(None)), Keep::No));
        assert!(matches!(
            keep(&t(json!(TEMPLATE_VERSION + 1)), &ours(None)),
            Keep::Yes(_)
        ));
        assert!(matches!(
            keep(&t(json!(TEMPLATE_VERSION)), &ours(None)),
            Keep::Yes(_)
        ));
        // Same version, a retention changed in the config: replaced.
        assert!(matches!(
            keep(&t(json!(TEMPLATE_VERSION)), &ours(Some("7d"))),
            Keep::No
        ));
        let foreign = json!({ "_meta": { "version": 99 } });
        assert!(matches!(keep(&foreign, &ours(None)), Keep::Yes(_)));
    }

    #[test]
    fn the_stored_template_is_read_from_either_api() {
        let it = json!({ "index_templates": [{ "name": "n", "index_template": { "_meta": { "version": 2 } } }] });
        assert_eq!(stored("_index_template", &it)["_meta"]["version"], 2);
        let ct = json!({ "component_templates": [{ "name": "n", "component_template": { "_meta": { "version": 3 } } }] });
        assert_eq!(stored("_component_template", &ct)["_meta"]["version"], 3);
    }
}
