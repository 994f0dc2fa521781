//! The `_bulk` wire format as dnsenrich uses it: the request body, the reading
//! of the response item by item, and the retry delays.
//!
//! ```text
//!  POST /_bulk?filter_path=errors,items.*.status,items.*.error
//!  Content-Type: application/x-ndjson        (Content-Encoding: gzip when enabled)
//!
//!  {"create":{"_index":"logs-pihole.dns-default"}}\n{ ...document 0... }\n
//!  {"create":{"_index":"logs-pihole.dhcp-default"}}\n{ ...document 1... }\n
//!
//!  200 {"errors":true,"items":[{"create":{"status":201}},
//!                              {"create":{"status":400,"error":{"type":"mapper_parsing_exception",...}}}]}
//! ```
//!
//! Item `i` of the response answers document `i` of the request. What each
//! status means for the document is [`ItemOutcome`]; what a whole-request
//! status means is [`RequestVerdict`].

use std::io::Write as _;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::Value;

/// Keeps the response to what is read: the flag and, per item, status and error.
pub const FILTER_PATH: &str = "errors,items.*.status,items.*.error";

/// Appends one action line and one document line to a request body. The
/// action is `create`, which data streams require, and with which a retried
/// document that is already stored answers 409; it names the document's index
/// or data stream (each document of a request can go elsewhere) and its
/// `_id` if given. Index names are checked at start-up and hold no character
/// JSON would escape.
pub fn push_create(body: &mut Vec<u8>, index: &str, id: Option<&DocId>, doc: &[u8]) {
    body.extend_from_slice(b"{\"create\":{\"_index\":\"");
    body.extend_from_slice(index.as_bytes());
    if let Some(id) = id {
        body.extend_from_slice(b"\",\"_id\":\"");
        body.extend_from_slice(id.as_bytes());
    }
    body.extend_from_slice(b"\"}}\n");
    body.extend_from_slice(doc);
    body.push(b'\n');
}

/// A document id: 20 characters of URL-safe base64, the shape of the ids
/// Elasticsearch makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocId([u8; 20]);

impl DocId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Gives out document ids unique to this process run and, with 72 random
/// bits per run, across runs: the random part, then a 48-bit counter.
#[derive(Debug)]
pub struct DocIds {
    run: [u8; 9],
    next: u64,
}

impl DocIds {
    pub fn new() -> Self {
        DocIds {
            run: rand::thread_rng().gen(),
            next: 0,
        }
    }

    pub fn next_id(&mut self) -> DocId {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut raw = [0u8; 15];
        raw[..9].copy_from_slice(&self.run);
        raw[9..].copy_from_slice(&self.next.to_be_bytes()[2..]);
        self.next = self.next.wrapping_add(1);
        let mut id = [0u8; 20];
        for (chunk, out) in raw.chunks(3).zip(id.chunks_mut(4)) {
            let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
            for (i, o) in out.iter_mut().enumerate() {
                *o = ALPHABET[(n >> (18 - 6 * i) & 63) as usize];
            }
        }
        DocId(id)
    }
}

impl Default for DocIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Compresses a request body for `Content-Encoding: gzip`. Level 1: bulk
/// bodies are repetitive JSON, so the fast level already shrinks them several
/// times over at a fraction of the CPU cost of the default level.
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
}

/// What happened to one document of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// Stored (2xx).
    Created,
    /// 409 to a `create`: the document is already there, from an earlier try.
    Duplicate,
    /// 429 or 5xx: not stored this time; send it again.
    Retry { status: u16 },
    /// Any other status: the server will never take it (a mapping error on
    /// a field of its own). It goes to the dead-letter file with the
    /// server's error.
    Reject { status: u16, error: Value },
    /// Refused for a reason that is not the document's but the target's
    /// ([`Blocked`]): every other document would be refused the same way, so
    /// it is kept and sent again until the cause is fixed.
    Blocked {
        why: Blocked,
        status: u16,
        error: Value,
    },
}

impl ItemOutcome {
    /// Classifies one item from its status and error object.
    pub fn from_status(status: u16, error: Option<Value>) -> Self {
        match status {
            200..=299 => ItemOutcome::Created,
            409 => ItemOutcome::Duplicate,
            429 | 500..=599 => ItemOutcome::Retry { status },
            _ => {
                let error = error.unwrap_or(Value::Null);
                match Blocked::of(status, &error) {
                    Some(why) => ItemOutcome::Blocked { why, status, error },
                    None => ItemOutcome::Reject { status, error },
                }
            }
        }
    }
}

/// Fields every document dnsenrich writes carries, with values dnsenrich
/// makes itself (not copied from a log line). A mapping that refuses one of
/// them refuses every document, so such a refusal is the mapping's fault,
/// not the document's.
pub const EVERY_DOCUMENT_FIELDS: &[&str] = &[
    "@timestamp",
    "event",
    "event.kind",
    "event.category",
    "event.type",
    "event.dataset",
    "event.module",
    "event.created",
    "ecs",
    "ecs.version",
    "data_stream",
    "data_stream.type",
    "data_stream.dataset",
    "data_stream.namespace",
];

/// Why the target refuses every document, whatever the document holds. Such
/// documents are not dead-lettered (that would empty the pipeline into the
/// dead-letter file for as long as the cause lasts) but kept and sent again,
/// and the cause is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// 401/403: the credential is wrong or lacks a privilege on the target.
    Credentials,
    /// `cluster_block_exception`: the index or the cluster is read-only
    /// (`index.blocks.write`, a flood-stage disk watermark).
    ReadOnly,
    /// `index_closed_exception`.
    Closed,
    /// The target does not exist and cannot be created
    /// (`index_not_found_exception`, an invalid name).
    Missing,
    /// The mapping refuses a field every document has
    /// ([`EVERY_DOCUMENT_FIELDS`]).
    Mapping,
}

impl Blocked {
    /// Whether a refusal with `status` and the server's `error` object is
    /// one of these.
    pub fn of(status: u16, error: &Value) -> Option<Blocked> {
        let ty = error.get("type").and_then(Value::as_str).unwrap_or("");
        match ty {
            "cluster_block_exception" => return Some(Blocked::ReadOnly),
            "index_closed_exception" => return Some(Blocked::Closed),
            "index_not_found_exception" | "invalid_index_name_exception" => {
                return Some(Blocked::Missing)
            }
            "security_exception" => return Some(Blocked::Credentials),
            _ => {}
        }
        if matches!(status, 401 | 403) {
            return Some(Blocked::Credentials);
        }
        let mapping = matches!(
            ty,
            "mapper_parsing_exception"
                | "document_parsing_exception"
                | "illegal_argument_exception"
                | "strict_dynamic_mapping_exception"
        );
        let reason = error.get("reason").and_then(Value::as_str).unwrap_or("");
        (mapping && field_of(reason).is_some_and(|f| EVERY_DOCUMENT_FIELDS.contains(&f)))
            .then_some(Blocked::Mapping)
    }

    /// The label of `dnsenrich_bulk_blocked_total`.
    pub fn label(self) -> &'static str {
        match self {
            Blocked::Credentials => "credentials",
            Blocked::ReadOnly => "read_only",
            Blocked::Closed => "index_closed",
            Blocked::Missing => "missing_target",
            Blocked::Mapping => "mapping",
        }
    }

    /// What the operator can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Blocked::Credentials => {
                "the credential is rejected or lacks a privilege (create_doc and \
                 auto_configure on the target); fix username and password_file, or \
                 api_key_file (--es-user, --es-password-file, --es-api-key-file)"
            }
            Blocked::ReadOnly => {
                "the target is read-only (index.blocks.write, or the disk's flood-stage \
                 watermark); free disk space or lift the block"
            }
            Blocked::Closed => "the target index is closed; open it (POST /<index>/_open)",
            Blocked::Missing => {
                "the target does not exist and cannot be created; create it, allow \
                 auto-creation, or install the index template (install_template = true)"
            }
            Blocked::Mapping => {
                "the target's mapping refuses a field every document has; fix the mapping \
                 or the index template (or write to a new index)"
            }
        }
    }
}

/// The field an Elasticsearch mapping error names: `failed to parse field
/// [x] of type ...`, `mapper [x] cannot be changed ...`, `object mapping for
/// [x] tried to parse ...`, `mapping set to strict, dynamic introduction of
/// [x] within [y] is not allowed`.
fn field_of(reason: &str) -> Option<&str> {
    for marker in ["field [", "mapper [", "mapping for [", "introduction of ["] {
        if let Some(at) = reason.find(marker) {
            let rest = &reason[at + marker.len()..];
            return rest.find(']').map(|end| &rest[..end]);
        }
    }
    None
}

/// A 2xx response that cannot be matched to the request.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("unreadable bulk response: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bulk response has {got} items for {sent} documents")]
    ItemCount { got: usize, sent: usize },
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<ItemEnvelope>,
}

/// `{"create": {...}}`; the other action names are accepted for robustness.
#[derive(Deserialize)]
struct ItemEnvelope {
    #[serde(alias = "index", alias = "update", alias = "delete")]
    create: ItemBody,
}

#[derive(Deserialize)]
struct ItemBody {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads a 2xx `_bulk` response for a request of `sent` documents.
pub fn parse_response(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, ResponseError> {
    let resp: BulkResponse = serde_json::from_slice(body)?;
    if resp.items.len() != sent {
        return Err(ResponseError::ItemCount {
            got: resp.items.len(),
            sent,
        });
    }
    let outcomes: Vec<ItemOutcome> = resp
        .items
        .into_iter()
        .map(|it| ItemOutcome::from_status(it.create.status, it.create.error))
        .collect();
    if !resp.errors && outcomes.iter().any(|o| *o != ItemOutcome::Created) {
        // `errors:false` with a failed item would be a server bug; the items
        // are what counts, so they are used as they are.
        tracing::debug!("bulk response says no errors but has failed items");
    }
    Ok(outcomes)
}

/// What to do after a non-2xx answer to the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestVerdict {
    /// 408, 429, 5xx: the server is busy or broken; send it all again later.
    Retry,
    /// 401, 403: the credentials are wrong or lack a privilege. The data is
    /// kept and retried slowly until someone fixes it.
    Credentials,
    /// Any other 4xx: the server will never take this request as it is.
    Reject,
}

impl RequestVerdict {
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => RequestVerdict::Credentials,
            408 | 429 => RequestVerdict::Retry,
            400..=499 => RequestVerdict::Reject,
            _ => RequestVerdict::Retry,
        }
    }
}

/// The `error` object of an error response, or a stand-in naming the status
/// when the body is not Elasticsearch's JSON (a proxy's HTML page, say).
pub fn error_object(status: u16, body: &[u8]) -> Value {
    if let Ok(Value::Object(mut o)) = serde_json::from_slice::<Value>(body) {
        if let Some(e) = o.remove("error") {
            return e;
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    serde_json::json!({ "type": "http_status", "status": status, "reason": text.trim() })
}

/// Exponential backoff with full jitter: the delay before retry `attempt`
/// (1-based) is uniform in `[0, min(max, initial · 2^(attempt-1))]`, so
/// many senders that failed together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the delay before retry `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// A random delay for retry `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = rand::thread_rng().gen_range(0..=ceiling.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn document_ids_are_url_safe_base64_of_run_and_counter() {
        let mut ids = DocIds {
            run: [0; 9],
            next: 0,
        };
        assert_eq!(ids.next_id().as_bytes(), b"AAAAAAAAAAAAAAAAAAAA");
        assert_eq!(ids.next_id().as_bytes(), b"AAAAAAAAAAAAAAAAAAAB");
        let mut ids = DocIds {
            run: [0xff; 9],
            next: 0x3f << 6 | 0x3e,
        };
        assert_eq!(ids.next_id().as_bytes(), b"____________AAAAAA_-");

        // Two runs give different ids; one run never repeats itself.
        let (mut a, mut b) = (DocIds::new(), DocIds::new());
        let seen: std::collections::HashSet<DocId> =
            (0..1000).flat_map(|_| [a.next_id(), b.next_id()]).collect();
        assert_eq!(seen.len(), 2000);
    }

    #[test]
    fn an_id_goes_into_the_action_line() {
        let mut ids = DocIds {
            run: [0; 9],
            next: 1,
        };
        let mut body = Vec::new();
        push_create(&mut body, "dns", Some(&ids.next_id()), br#"{"a":1}"#);
        assert_eq!(
            body,
            b"{\"create\":{\"_index\":\"dns\",\"_id\":\"AAAAAAAAAAAAAAAAAAAB\"}}\n{\"a\":1}\n"
        );
    }

    #[test]
    fn body_alternates_action_and_document_lines() {
        let mut body = Vec::new();
        push_create(&mut body, "a", None, br#"{"a":1}"#);
        push_create(&mut body, "b", None, br#"{"b":2}"#);
        assert_eq!(
            body,
            b"{\"create\":{\"_index\":\"a\"}}\n{\"a\":1}\n{\"create\":{\"_index\":\"b\"}}\n{\"b\":2}\n"
        );
    }

    #[test]
    fn gzip_round_trips() {
        let mut body = Vec::new();
        for _ in 0..100 {
            push_create(
                &mut body,
                "dns",
                None,
                br#"{"dns":{"question":{"name":"example.com"}}}"#,
            );
        }
        let z = gzip(&body).unwrap();
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        assert!(z.len() < body.len() / 5);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn mixed_statuses_are_read_item_by_item() {
        let resp = br#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"create":{"status":503,"error":{"type":"unavailable_shards_exception"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [source.ip]"}}},
            {"create":{"status":404,"error":{"type":"index_not_found_exception"}}},
            {"create":{"status":200}}
        ]}"#;
        let out = parse_response(resp, 7).unwrap();
        assert_eq!(out[0], ItemOutcome::Created);
        assert_eq!(out[1], ItemOutcome::Duplicate);
        assert_eq!(out[2], ItemOutcome::Retry { status: 429 });
        assert_eq!(out[3], ItemOutcome::Retry { status: 503 });
        match &out[4] {
            ItemOutcome::Reject { status: 400, error } => {
                assert_eq!(error["type"], "mapper_parsing_exception");
                assert_eq!(error["reason"], "failed to parse field [source.ip]");
            }
            other => panic!("{other:?}"),
        }
        // A missing index refuses every document alike: kept, not dead.
        assert!(matches!(
            out[5],
            ItemOutcome::Blocked {
                why: Blocked::Missing,
                status: 404,
                ..
            }
        ));
        assert_eq!(out[6], ItemOutcome::Created);
    }

    #[test]
    fn responses_that_do_not_match_the_request_are_errors() {
        let ok = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert!(matches!(
            parse_response(ok, 2),
            Err(ResponseError::ItemCount { got: 1, sent: 2 })
        ));
        assert!(matches!(
            parse_response(b"<html>bad gateway</html>", 1),
            Err(ResponseError::Json(_))
        ));
        assert!(parse_response(br#"{"errors":false}"#, 1).is_err());
    }

    #[test]
    fn whole_request_statuses() {
        assert_eq!(
            RequestVerdict::from_status(401),
            RequestVerdict::Credentials
        );
        assert_eq!(
            RequestVerdict::from_status(403),
            RequestVerdict::Credentials
        );
        assert_eq!(RequestVerdict::from_status(429), RequestVerdict::Retry);
        assert_eq!(RequestVerdict::from_status(408), RequestVerdict::Retry);
        assert_eq!(RequestVerdict::from_status(502), RequestVerdict::Retry);
        assert_eq!(RequestVerdict::from_status(400), RequestVerdict::Reject);
        assert_eq!(RequestVerdict::from_status(413), RequestVerdict::Reject);
    }

    #[test]
    fn refusals_that_no_document_can_escape_are_told_apart() {
        use serde_json::json;
        let item = |status, error: Value| ItemOutcome::from_status(status, Some(error));
        let blocked = |o: ItemOutcome| match o {
            ItemOutcome::Blocked { why, .. } => Some(why),
            _ => None,
        };
        // As osmem-server and Elasticsearch answer them.
        let ro = json!({"type": "cluster_block_exception",
                        "reason": "index [ro] blocked by: [FORBIDDEN/8/index write (api)];"});
        assert_eq!(blocked(item(403, ro)), Some(Blocked::ReadOnly));
        let closed = json!({"type": "index_closed_exception", "reason": "closed"});
        assert_eq!(blocked(item(400, closed)), Some(Blocked::Closed));
        let denied = json!({"type": "security_exception",
                            "reason": "action [indices:data/write/bulk[s]] is unauthorized"});
        assert_eq!(blocked(item(403, denied)), Some(Blocked::Credentials));
        let ts = json!({"type": "document_parsing_exception",
                        "reason": "[1:15] failed to parse field [@timestamp] of type [long] in document"});
        assert_eq!(blocked(item(400, ts)), Some(Blocked::Mapping));
        let kind = json!({"type": "illegal_argument_exception",
                          "reason": "mapper [event.kind] cannot be changed from type [keyword] to [long]"});
        assert_eq!(blocked(item(400, kind)), Some(Blocked::Mapping));
        // A field of the document's own: that document only.
        let ip = json!({"type": "mapper_parsing_exception",
                        "reason": "failed to parse field [source.ip] of type [ip] in document"});
        assert!(matches!(
            item(400, ip),
            ItemOutcome::Reject { status: 400, .. }
        ));
        assert!(matches!(
            ItemOutcome::from_status(400, None),
            ItemOutcome::Reject { .. }
        ));
    }

    #[test]
    fn error_object_prefers_the_servers_own() {
        let e = error_object(400, br#"{"error":{"type":"x","reason":"y"},"status":400}"#);
        assert_eq!(e["type"], "x");
        let e = error_object(413, b"<html>Request Entity Too Large</html>");
        assert_eq!(e["type"], "http_status");
        assert_eq!(e["status"], 413);
        assert_eq!(e["reason"], "<html>Request Entity Too Large</html>");
    }

    #[test]
    fn backoff_grows_to_its_cap_and_jitter_stays_below_the_ceiling() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(5), Duration::from_millis(1600));
        assert_eq!(b.ceiling(9), Duration::from_millis(25_600));
        assert_eq!(b.ceiling(10), Duration::from_secs(30));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(30));
        for attempt in [1, 3, 8, 40] {
            for _ in 0..200 {
                assert!(b.delay(attempt) <= b.ceiling(attempt));
            }
        }
        // Full jitter spreads over the whole range, not just near the top.
        let low = (0..500).filter(|_| b.delay(4) < b.ceiling(4) / 2).count();
        assert!((100..400).contains(&low), "{low}");
    }
}
