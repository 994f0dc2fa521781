//! Settling a bulk job: send it, read the answer item by item, and send again
//! what the server refused for now, until every document is stored, already
//! stored, or in the dead-letter file; then fire the job's acks.
//!
//! The decision is [`classify`], a pure function from one answer to a
//! [`Round`]; [`settle`] is the loop around it that backs off, writes the
//! dead letters and counts. Every bulk metric is emitted from [`emit`], next
//! to [`describe_metrics`], so their names are spelled in one place.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::{Method, Url};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use super::auth::explain_transport;
use super::bulk::{self, Backoff, Blocked, ItemOutcome, RequestVerdict, ResponseError};
use super::install::ready_for;
use super::job::{BulkJob, Item};
use super::nodes::{Health, Lease, Node};
use super::route::Target;
use super::Shared;
use crate::output::dead_letter;
use crate::output::OutputStats;

/// Why a bulk request got no item-by-item answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// No answer: the error and its causes, with what to do about it;
    /// `connect` when no connection was made, so nothing can be stored.
    Transport {
        text: String,
        connect: bool,
    },
    Status {
        status: u16,
        error: Value,
    },
    Invalid(ResponseError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport { text, .. } => f.write_str(text),
            Failure::Status { status, error } => write!(f, "HTTP {status}: {}", reason(error)),
            Failure::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// An error and its causes: the HTTP client's own message ("error sending
/// request") says little without the "connection refused" underneath.
pub(super) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

pub(super) fn reason(error: &Value) -> String {
    match error.get("reason").and_then(Value::as_str) {
        Some(r) => match error.get("type").and_then(Value::as_str) {
            Some(t) => format!("{t}: {r}"),
            None => r.to_owned(),
        },
        None => error.to_string(),
    }
}

/// What one answer to a bulk request comes to for the documents sent in it.
#[derive(Debug, Default)]
pub(super) struct Round {
    /// Stored now.
    created: usize,
    /// Stored already (409 to a `create`: an earlier try got through).
    duplicates: usize,
    /// To send again: the items refused for now (429, 5xx), or every
    /// document when the request failed as a whole.
    retry: Vec<Item>,
    /// Refused for good, each with the server's status and reason.
    dead: Vec<Refused>,
    /// Of `retry`, how many were refused for a reason of the target's, and
    /// the first such refusal: they wait for the cause to be fixed.
    blocked: usize,
    block: Option<Block>,
    /// What the request came to as a whole.
    request: Request,
}

/// A refusal every document of the target meets, whatever it holds.
#[derive(Debug)]
struct Block {
    why: Blocked,
    status: u16,
    error: Value,
}

/// A document the server will never take.
#[derive(Debug)]
struct Refused {
    item: Item,
    status: u16,
    error: Value,
}

/// What a bulk request came to as a whole.
#[derive(Debug, Default)]
enum Request {
    /// Answered item by item.
    #[default]
    Answered,
    /// Refused as a whole for good (a 4xx other than 401, 403, 408, 429,
    /// for a reason of the request's own): every document is dead.
    Refused { status: u16, error: Value },
    /// Failed as a whole (no connection, a timeout, 408, 429, 5xx, an
    /// unreadable answer): every document is sent again.
    Failed(Failure),
    /// Refused as a whole for a reason of the target's ([`Blocked`]: the
    /// credentials, a read-only or closed index): every document is sent
    /// again; after rejected credentials at the longest delay.
    Blocked(Blocked, Failure),
}

impl Round {
    /// The request failed as a whole and nothing is known of its items.
    fn failed(&self) -> bool {
        matches!(self.request, Request::Failed(_) | Request::Blocked(..))
    }

    /// Why the target refuses every document, if it does.
    fn blocked_by(&self) -> Option<Blocked> {
        match &self.request {
            Request::Blocked(why, _) => Some(*why),
            _ => self.block.as_ref().map(|b| b.why),
        }
    }
}

/// Sorts the documents `sent` in one request by the server's answer.
pub(super) fn classify(answer: Result<Vec<ItemOutcome>, Failure>, sent: &[Item]) -> Round {
    let outcomes = match answer {
        Ok(outcomes) => outcomes,
        Err(failure) => return classify_failure(failure, sent),
    };
    // The response was checked to hold one item per document sent. Counted
    // here and reported once per request: a metrics lookup per document
    // would cost more than the bookkeeping.
    let mut round = Round::default();
    for (outcome, &item) in outcomes.into_iter().zip(sent) {
        match outcome {
            ItemOutcome::Created => round.created += 1,
            ItemOutcome::Duplicate => round.duplicates += 1,
            ItemOutcome::Retry { .. } => round.retry.push(item),
            ItemOutcome::Blocked { why, status, error } => {
                round.retry.push(item);
                round.blocked += 1;
                round.block.get_or_insert(Block { why, status, error });
            }
            ItemOutcome::Reject { status, error } => round.dead.push(Refused {
                item,
                status,
                error,
            }),
        }
    }
    round
}

/// A request that got no item-by-item answer.
fn classify_failure(failure: Failure, sent: &[Item]) -> Round {
    let blocked = match &failure {
        Failure::Status { status, error } => match RequestVerdict::from_status(*status) {
            RequestVerdict::Credentials => {
                Some(Blocked::of(*status, error).unwrap_or(Blocked::Credentials))
            }
            RequestVerdict::Reject => Blocked::of(*status, error),
            RequestVerdict::Retry => None,
        },
        _ => None,
    };
    let request = match (blocked, failure) {
        (Some(why), failure) => Request::Blocked(why, failure),
        (None, Failure::Status { status, error })
            if RequestVerdict::from_status(status) == RequestVerdict::Reject =>
        {
            let dead = sent
                .iter()
                .map(|&item| Refused {
                    item,
                    status,
                    error: error.clone(),
                })
                .collect();
            return Round {
                dead,
                request: Request::Refused { status, error },
                ..Round::default()
            };
        }
        (None, failure) => Request::Failed(failure),
    };
    Round {
        retry: sent.to_vec(),
        request,
        ..Round::default()
    }
}

/// Whether an answer is `413 Request Entity Too Large` to a request of
/// several documents, which smaller requests can get through.
fn too_large(answer: &Result<Vec<ItemOutcome>, Failure>, docs: usize) -> bool {
    matches!(answer, Err(Failure::Status { status: 413, .. })) && docs > 1
}

/// Sends one bulk job until every document is stored, already stored, or
/// dead-lettered, then fires the acks of its batches.
pub(super) async fn settle(shared: Arc<Shared>, mut job: BulkJob, _slot: OwnedSemaphorePermit) {
    let _in_flight = InFlight::enter();
    let pending = job.items();
    if pending.is_empty() {
        shared.stats.ack_all(job.take_acks());
        return;
    }
    ready_for(&shared, &job.datasets).await;
    // The first request sends the job's body as built; only a retry of some
    // items, or a half of a request too large, needs a body of its own.
    let source = job.seal();
    let mut parts = VecDeque::from([(pending, source.clone())]);
    while let Some((items, body)) = parts.pop_front() {
        // `&mut`: a job is not `Sync` (its acks are not), and a shared
        // borrow would have to be to live across the awaits.
        if let Some((first, second)) = settle_part(&shared, &mut job, &source, items, body).await {
            let (b1, b2) = (job.body(&source, &first), job.body(&source, &second));
            parts.push_front((second, b2));
            parts.push_front((first, b1));
        }
    }
    shared.stats.ack_all(job.take_acks());
}

/// Sends the documents `pending` of a job until each is settled; or, when
/// the server answers that the request is too large, returns them in two
/// halves to be sent one after the other.
async fn settle_part(
    shared: &Shared,
    job: &mut BulkJob,
    source: &[u8],
    mut pending: Vec<Item>,
    mut body: Bytes,
) -> Option<(Vec<Item>, Vec<Item>)> {
    let mut attempts = Attempts::default();
    // The node where the last try failed: the next one goes elsewhere.
    let mut avoid = None;
    loop {
        let node = shared.nodes.pick(avoid).await;
        let answer = send_bulk(shared, &node, body.clone(), pending.len()).await;
        if too_large(&answer, pending.len()) {
            tracing::warn!(
                target = %shared.target.describe(),
                node = %node.node().url,
                documents = pending.len(),
                bytes = body.len(),
                "Elasticsearch (or a proxy before it) refused a bulk request as too large \
                 (413); sending it in two halves (lower flush_bytes to avoid this)"
            );
            let second = pending.split_off(pending.len() / 2);
            return Some((pending, second));
        }
        let answered = !matches!(answer, Err(Failure::Transport { .. }));
        if let Err(Failure::Transport { connect: false, .. }) = &answer {
            // Sent, answer lost: the server may have stored it.
            emit(Metric::PossibleDuplicates(pending.len()));
        }
        let round = classify(answer, &pending);
        count(&shared.stats, &round);
        let (attempt, delay) = attempts.next(&round, shared.backoff, answered);
        log_round(shared, node.node(), &round, pending.len(), attempt, delay);
        if !round.dead.is_empty() {
            let lines = dead_letter_lines(job, source, &shared.target, &round.dead);
            write_dead_letters(shared, &lines, round.dead.len()).await;
        }
        if round.retry.is_empty() {
            return None;
        }
        avoid = Some(node.index());
        drop(node);
        tokio::time::sleep(delay).await;
        // After a failed request the same body goes again.
        if !round.failed() {
            pending = round.retry;
            body = job.body(source, &pending);
        }
    }
}

/// Whether the request never reached the server (no connection was made), so
/// sending it again cannot store anything twice.
fn is_connect_error(e: &elasticsearch::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            if r.is_connect() {
                return true;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// The retries of one job so far. Failed requests and rounds of refused items
/// back off separately: a recovered server that answers 429 should not
/// inherit a long outage's delay.
#[derive(Debug, Default)]
struct Attempts {
    request: u32,
    items: u32,
}

impl Attempts {
    /// The attempt number and the delay before the next request of a round
    /// that has documents to send again. A request that got no answer at
    /// all (`answered` false) is sent again at once: its node is marked down,
    /// so it goes to another node, or waits until a probe finds one back up.
    fn next(&mut self, round: &Round, backoff: Backoff, answered: bool) -> (u32, Duration) {
        match round.request {
            Request::Answered => {
                self.request = 0;
                if round.retry.is_empty() {
                    return (self.items, Duration::ZERO);
                }
                self.items += 1;
                (self.items, backoff.delay(self.items))
            }
            Request::Refused { .. } => (self.request, Duration::ZERO),
            Request::Failed(_) if !answered => {
                self.request += 1;
                (self.request, Duration::ZERO)
            }
            Request::Failed(_) => {
                self.request += 1;
                (self.request, backoff.delay(self.request))
            }
            Request::Blocked(Blocked::Credentials, _) => {
                self.request += 1;
                (self.request, backoff.max)
            }
            Request::Blocked(..) => {
                self.request += 1;
                (self.request, backoff.delay(self.request))
            }
        }
    }
}

/// Adds a round to the output's counters and the metrics.
fn count(stats: &OutputStats, round: &Round) {
    if round.failed() {
        OutputStats::add(&stats.request_failures, 1);
    } else {
        OutputStats::add(&stats.stored, round.created);
        OutputStats::add(&stats.duplicates, round.duplicates);
        OutputStats::add(&stats.retried, round.retry.len());
    }
    emit(Metric::Round(round));
}

/// Says what a round means for the documents `sent`, and when they go again.
fn log_round(
    shared: &Shared,
    node: &Node,
    round: &Round,
    sent: usize,
    attempt: u32,
    delay: Duration,
) {
    let target = shared.target.describe();
    let node = &node.url;
    let retry_in_ms = delay.as_millis() as u64;
    match &round.request {
        Request::Answered if round.block.is_some() => {
            let Some(b) = &round.block else { return };
            tracing::error!(
                target = %target,
                blocked = round.blocked,
                of = sent,
                status = b.status,
                reason = %reason(&b.error),
                credential = %shared.auth.describe(),
                attempt,
                retry_in_ms,
                "Elasticsearch refuses documents for a reason that is not theirs: {}; they \
                 are kept and sent again until that is fixed (not dead-lettered)",
                b.why.advice()
            )
        }
        Request::Answered if !round.retry.is_empty() => tracing::warn!(
            target = %target,
            refused = round.retry.len(),
            of = sent,
            attempt,
            retry_in_ms,
            "Elasticsearch refused documents for now (429 or 5xx); sending them again"
        ),
        Request::Answered => {}
        Request::Refused { status, error } => tracing::error!(
            target = %target,
            status,
            reason = %reason(error),
            documents = sent,
            "Elasticsearch refused a whole bulk request; its documents go to the dead-letter file"
        ),
        Request::Blocked(why, failure) => tracing::error!(
            target = %target,
            attempt,
            retry_in_ms,
            documents = sent,
            credential = %shared.auth.describe(),
            error = %failure,
            "Elasticsearch refused a whole bulk request: {}; its documents are kept and \
             sent again until that is fixed",
            why.advice()
        ),
        Request::Failed(failure) if delay.is_zero() => tracing::warn!(
            target = %target,
            node = %node,
            attempt,
            documents = sent,
            error = %failure,
            "bulk request failed; sending it again on a node that is up"
        ),
        Request::Failed(failure) => tracing::warn!(
            target = %target,
            node = %node,
            attempt,
            retry_in_ms,
            documents = sent,
            error = %failure,
            "bulk request failed; retrying"
        ),
    }
}

/// The dead-letter lines of the documents a round refused for good.
fn dead_letter_lines(job: &BulkJob, source: &[u8], target: &Target, dead: &[Refused]) -> Vec<u8> {
    let mut lines = Vec::new();
    for r in dead {
        let doc = job.doc(source, r.item.0, r.item.1);
        dead_letter::push_line(&mut lines, r.status, &r.error, &target.for_doc(doc), doc);
    }
    lines
}

/// Counts a request in flight for as long as it lives (also when aborted).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        emit(Metric::InFlight { entering: true });
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        emit(Metric::InFlight { entering: false });
    }
}

/// Something the bulk metrics count.
enum Metric<'a> {
    /// One bulk request sent and its answer read (or not).
    Request {
        result: &'a Result<Vec<ItemOutcome>, Failure>,
        took: Duration,
    },
    /// What one answer came to.
    Round(&'a Round),
    /// Documents written to the dead-letter file.
    DeadLetters(usize),
    /// A request entering or leaving flight.
    InFlight { entering: bool },
    /// Documents of a request sent again after its answer was lost.
    PossibleDuplicates(usize),
}

/// Emits every bulk metric; [`describe_metrics`] describes them.
fn emit(m: Metric<'_>) {
    match m {
        Metric::Request { result, took } => {
            metrics::histogram!("dnsenrich_bulk_request_duration_seconds")
                .record(took.as_secs_f64());
            metrics::counter!("dnsenrich_bulk_requests_total", "result" => result_label(result))
                .increment(1);
        }
        Metric::Round(round) => {
            // Items are counted only when the answer said what became of
            // each; a request that failed as a whole is one retry.
            if !round.failed() {
                for (status, n) in [
                    ("created", round.created),
                    ("duplicate", round.duplicates),
                    ("retried", round.retry.len() - round.blocked),
                    ("blocked", round.blocked),
                    ("dead_letter", round.dead.len()),
                ] {
                    if n > 0 {
                        metrics::counter!("dnsenrich_bulk_items_total", "status" => status)
                            .increment(n as u64);
                    }
                }
            }
            if !round.retry.is_empty() {
                metrics::counter!("dnsenrich_bulk_retries_total").increment(1);
            }
            if let Some(why) = round.blocked_by() {
                metrics::counter!("dnsenrich_bulk_blocked_total", "reason" => why.label())
                    .increment(1);
            }
        }
        Metric::DeadLetters(n) => {
            metrics::counter!("dnsenrich_dead_letters_total").increment(n as u64);
        }
        Metric::PossibleDuplicates(n) => {
            metrics::counter!("dnsenrich_bulk_possible_duplicates_total").increment(n as u64);
        }
        Metric::InFlight { entering } => {
            let gauge = metrics::gauge!("dnsenrich_output_in_flight");
            if entering {
                gauge.increment(1.0);
            } else {
                gauge.decrement(1.0);
            }
        }
    }
}

pub(super) fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "dnsenrich_bulk_requests_total",
        "Bulk requests sent, by result (ok, http_error, transport_error, invalid_response)"
    );
    describe_histogram!(
        "dnsenrich_bulk_request_duration_seconds",
        Unit::Seconds,
        "Time from sending a bulk request to reading its response"
    );
    describe_counter!(
        "dnsenrich_bulk_items_total",
        "Bulk items by outcome (created, duplicate, retried, blocked, dead_letter)"
    );
    describe_counter!(
        "dnsenrich_bulk_blocked_total",
        "Bulk requests whose documents the target refused for a reason of its own, by \
         reason (credentials, read_only, index_closed, missing_target, mapping); the \
         documents are kept and sent again"
    );
    describe_counter!(
        "dnsenrich_bulk_retries_total",
        "Bulk requests sent again after a failure or 429/5xx items"
    );
    describe_counter!(
        "dnsenrich_dead_letters_total",
        "Documents written to the dead-letter file"
    );
    describe_counter!(
        "dnsenrich_bulk_possible_duplicates_total",
        "Documents sent again after their request's answer was lost (a timeout or a \
         connection broken after sending); each may be stored twice unless document_ids is on"
    );
    describe_gauge!(
        "dnsenrich_output_in_flight",
        "Bulk requests being sent or retried"
    );
}

/// Appends to the dead-letter file, retrying until it works: the documents
/// are acked only once they are there.
async fn write_dead_letters(shared: &Shared, lines: &[u8], count: usize) {
    let mut attempt = 0;
    while let Err(e) = shared.dead_letters.append(lines).await {
        attempt += 1;
        let delay = shared.backoff.delay(attempt);
        tracing::error!(
            path = %shared.dead_letters.path().display(),
            error = %e,
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            "cannot write the dead-letter file; retrying"
        );
        tokio::time::sleep(delay).await;
    }
    OutputStats::add(&shared.stats.dead_lettered, count);
    emit(Metric::DeadLetters(count));
    tracing::warn!(
        documents = count,
        path = %shared.dead_letters.path().display(),
        "Elasticsearch refused documents for good; they are in the dead-letter file with the reason"
    );
}

/// One `POST /_bulk`, read item by item.
pub(super) async fn send_bulk(
    shared: &Shared,
    node: &Lease,
    body: Bytes,
    docs: usize,
) -> Result<Vec<ItemOutcome>, Failure> {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    let body = if shared.gzip {
        // Compressing megabytes takes milliseconds: not on a runtime thread,
        // where it would hold up every connection's reads meanwhile.
        let plain = body.clone();
        match tokio::task::spawn_blocking(move || bulk::gzip(&plain)).await {
            Ok(Ok(z)) => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                Bytes::from(z)
            }
            // Writing into memory does not fail; if it ever did, send it plain.
            _ => body,
        }
    } else {
        body
    };
    let started = Instant::now();
    let result = request(shared, node.node(), headers, body, docs).await;
    emit(Metric::Request {
        result: &result,
        took: started.elapsed(),
    });
    metrics::counter!("dnsenrich_output_node_requests_total",
        "node" => node.node().url.clone(), "result" => result_label(&result))
    .increment(1);
    node.report(match &result {
        Ok(_) => Health::Answered,
        Err(Failure::Status { status, .. }) if *status >= 500 => Health::Failed,
        Err(Failure::Status { .. }) => Health::Neutral,
        Err(Failure::Transport { .. } | Failure::Invalid(_)) => Health::Failed,
    });
    result
}

/// A request that got no answer from `node`: the error with its causes and
/// what to do about it, and whether a connection was made at all.
fn transport(node: &Node, e: &elasticsearch::Error) -> Failure {
    let text = with_causes(e);
    // Every node's URL is checked (configured) or built (sniffed) to parse.
    let text = match Url::parse(&node.url) {
        Ok(url) => explain_transport(&text, &url),
        Err(_) => text,
    };
    Failure::Transport {
        text,
        connect: is_connect_error(e),
    }
}

fn result_label(result: &Result<Vec<ItemOutcome>, Failure>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Failure::Transport { .. }) => "transport_error",
        Err(Failure::Status { .. }) => "http_error",
        Err(Failure::Invalid(_)) => "invalid_response",
    }
}

async fn request(
    shared: &Shared,
    node: &Node,
    headers: HeaderMap,
    body: Bytes,
    docs: usize,
) -> Result<Vec<ItemOutcome>, Failure> {
    let resp = node
        .client
        .send(
            Method::Post,
            "/_bulk",
            headers,
            Some(&[("filter_path", bulk::FILTER_PATH)]),
            Some(body),
            Some(shared.timeout),
        )
        .await
        .map_err(|e| transport(node, &e))?;
    let status = resp.status_code();
    let bytes = resp.bytes().await.map_err(|e| transport(node, &e))?;
    if !status.is_success() {
        return Err(Failure::Status {
            status: status.as_u16(),
            error: bulk::error_object(status.as_u16(), &bytes),
        });
    }
    bulk::parse_response(&bytes, docs).map_err(Failure::Invalid)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pipeline::EncodedBatch;

    /// Six documents in two batches of three.
    const SENT: [Item; 6] = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)];

    fn status(status: u16, error: Value) -> Result<Vec<ItemOutcome>, Failure> {
        Err(Failure::Status { status, error })
    }

    #[test]
    fn a_mixed_answer_sorts_each_document_by_its_status() {
        // As Elasticsearch answers with the output's filter_path.
        let body = json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
            {"create": {"status": 503, "error": {"type": "unavailable_shards_exception"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception",
                                                 "reason": "failed to parse field [dns.id]"}}},
            {"create": {"status": 201}},
        ]});
        let outcomes = bulk::parse_response(body.to_string().as_bytes(), SENT.len());
        let round = classify(outcomes.map_err(Failure::Invalid), &SENT);
        assert!(matches!(round.request, Request::Answered));
        assert!(!round.failed());
        assert_eq!((round.created, round.duplicates), (2, 1));
        assert_eq!(round.retry, [(0, 2), (1, 0)]);
        assert_eq!(round.dead.len(), 1);
        let dead = &round.dead[0];
        assert_eq!((dead.item, dead.status), ((1, 1), 400));
        assert_eq!(dead.error["type"], "mapper_parsing_exception");
    }

    #[test]
    fn an_answer_of_only_created_and_duplicates_leaves_nothing_to_do() {
        let outcomes = vec![ItemOutcome::Created, ItemOutcome::Duplicate];
        let round = classify(Ok(outcomes), &SENT[..2]);
        assert_eq!((round.created, round.duplicates), (1, 1));
        assert!(round.retry.is_empty() && round.dead.is_empty());
    }

    #[test]
    fn a_request_refused_as_a_whole_sends_every_document_to_the_dead_letters() {
        let error = json!({"type": "illegal_argument_exception", "reason": "no such pipeline"});
        let round = classify(status(400, error.clone()), &SENT);
        assert!(matches!(
            round.request,
            Request::Refused { status: 400, .. }
        ));
        assert!(round.retry.is_empty());
        assert_eq!((round.created, round.duplicates), (0, 0));
        let items: Vec<Item> = round.dead.iter().map(|r| r.item).collect();
        assert_eq!(items, SENT);
        assert!(round
            .dead
            .iter()
            .all(|r| r.status == 400 && r.error == error));
    }

    #[test]
    fn a_request_that_failed_as_a_whole_sends_every_document_again() {
        let busy = json!({"type": "es_rejected_execution_exception"});
        for code in [408, 429, 500, 502, 503] {
            let round = classify(status(code, busy.clone()), &SENT);
            assert!(matches!(round.request, Request::Failed(_)), "{code}");
            assert!(round.failed());
            assert_eq!(round.retry, SENT, "{code}");
            assert!(round.dead.is_empty() && round.created == 0, "{code}");
        }
        let unreadable = Failure::Invalid(ResponseError::ItemCount { got: 5, sent: 6 });
        let round = classify(Err(unreadable), &SENT);
        assert!(matches!(
            round.request,
            Request::Failed(Failure::Invalid(_))
        ));
        assert_eq!(round.retry, SENT);
        for code in [401, 403] {
            let round = classify(status(code, json!({"type": "security_exception"})), &SENT);
            assert!(
                matches!(round.request, Request::Blocked(Blocked::Credentials, _)),
                "{code}"
            );
            assert_eq!(round.retry, SENT, "{code}");
            assert!(round.dead.is_empty(), "{code}");
        }
    }

    #[test]
    fn refusals_of_the_targets_keep_the_documents_instead_of_dead_lettering_them() {
        let ro = json!({"type": "cluster_block_exception", "reason": "blocked by: [FORBIDDEN/8/index write (api)];"});
        let own = json!({"type": "mapper_parsing_exception",
                         "reason": "failed to parse field [source.ip] of type [ip]"});
        let outcomes = vec![
            ItemOutcome::Created,
            ItemOutcome::from_status(403, Some(ro.clone())),
            ItemOutcome::from_status(400, Some(own)),
            ItemOutcome::from_status(403, Some(ro.clone())),
        ];
        let round = classify(Ok(outcomes), &SENT[..4]);
        assert_eq!(round.retry, [(0, 1), (1, 0)]);
        assert_eq!(round.blocked, 2);
        assert_eq!(round.blocked_by(), Some(Blocked::ReadOnly));
        assert_eq!(round.dead.len(), 1);
        assert_eq!(round.dead[0].item, (0, 2));
        assert!(!round.failed());

        // The same reasons as a whole-request answer: every document again.
        let closed = json!({"type": "index_closed_exception", "reason": "closed"});
        let round = classify(status(400, closed), &SENT);
        assert!(matches!(
            round.request,
            Request::Blocked(Blocked::Closed, _)
        ));
        assert_eq!(round.retry, SENT);
        assert!(round.dead.is_empty());
        let round = classify(status(403, ro), &SENT);
        assert!(matches!(
            round.request,
            Request::Blocked(Blocked::ReadOnly, _)
        ));
        // A 413 is split by the caller; a single document too large is dead.
        assert!(too_large(&status(413, Value::Null), 2));
        assert!(!too_large(&status(413, Value::Null), 1));
        assert_eq!(classify(status(413, Value::Null), &SENT[..1]).dead.len(), 1);
    }

    #[test]
    fn failed_requests_and_refused_items_back_off_separately() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(60),
        };
        let mut attempts = Attempts::default();
        let failed = || classify(status(503, Value::Null), &SENT);
        let some_refused = || classify(Ok(vec![ItemOutcome::Retry { status: 429 }]), &SENT[..1]);
        assert_eq!(attempts.next(&failed(), backoff, true).0, 1);
        assert_eq!(attempts.next(&failed(), backoff, true).0, 2);
        // An answer resets the request count; the items count on their own.
        let (attempt, delay) = attempts.next(&some_refused(), backoff, true);
        assert_eq!(attempt, 1);
        assert!(delay <= backoff.ceiling(1));
        assert_eq!(attempts.next(&some_refused(), backoff, true).0, 2);
        assert_eq!(attempts.next(&failed(), backoff, true).0, 1);
        // A request that got no answer goes again at once (to another node,
        // or when a probe finds one back): the attempts still count.
        let cut = classify(
            Err(Failure::Invalid(ResponseError::ItemCount {
                got: 0,
                sent: 6,
            })),
            &SENT,
        );
        assert_eq!(attempts.next(&cut, backoff, false), (2, Duration::ZERO));
        assert_eq!(attempts.next(&failed(), backoff, true).0, 3);
        attempts.request = 1;
        // Rejected credentials wait the longest delay, every time.
        let denied = classify(status(401, Value::Null), &SENT);
        assert_eq!(attempts.next(&denied, backoff, true), (2, backoff.max));
        let done = classify(Ok(vec![ItemOutcome::Created]), &SENT[..1]);
        assert_eq!(attempts.next(&done, backoff, true).1, Duration::ZERO);
        assert_eq!(attempts.request, 0);
    }

    #[test]
    fn a_round_is_counted_once_by_what_the_answer_said() {
        let stats = OutputStats::default();
        let outcomes = vec![
            ItemOutcome::Created,
            ItemOutcome::Duplicate,
            ItemOutcome::Retry { status: 503 },
            ItemOutcome::from_status(400, None),
        ];
        count(&stats, &classify(Ok(outcomes), &SENT[..4]));
        count(&stats, &classify(status(503, Value::Null), &SENT));
        count(&stats, &classify(status(400, Value::Null), &SENT));
        let r = stats.report();
        assert_eq!((r.stored, r.duplicates, r.retried), (1, 1, 1));
        // Only the 503 request failed; the refused one is dead-lettered,
        // counted when the file is written.
        assert_eq!((r.request_failures, r.dead_lettered), (1, 0));
    }

    #[test]
    fn dead_letter_lines_hold_the_refused_documents_with_their_reason() {
        let mut job = BulkJob::default();
        let mut batch = EncodedBatch::default();
        for d in [r#"{"a":0}"#, r#"{"a":1}"#] {
            batch.docs.extend_from_slice(d.as_bytes());
            batch.ends.push(batch.docs.len());
        }
        let target = Target::DataStream {
            namespace: "y".into(),
        };
        job.push(batch, &target, None);
        let source = job.seal();
        let error = json!({"type": "mapper_parsing_exception"});
        let outcomes = vec![
            ItemOutcome::Created,
            ItemOutcome::from_status(400, Some(error.clone())),
        ];
        let round = classify(Ok(outcomes), &[(0, 0), (0, 1)]);
        let lines = dead_letter_lines(&job, &source, &target, &round.dead);
        let lines: Vec<Value> = lines
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["document"], json!({"a": 1}));
        assert_eq!(lines[0]["status"], 400);
        assert_eq!(lines[0]["error"], error);
        assert_eq!(lines[0]["index"], "logs-pihole.dns-y");
    }
}
