//! The Elasticsearch output: batches of encoded events go to the `_bulk` API,
//! several requests at a time, and come back as acks only once every document
//! of a request is settled.
//!
//! ```text
//!  rx ──EncodedBatch──► gather until flush_bytes or flush_interval ──► BulkJob
//!                                                                        │ waits for a slot
//!         (no slot free: rx is not read, so the inputs are pushed back)  ▼ (max_in_flight)
//!                                 POST /<target>/_bulk ◄── retry with backoff + jitter
//!                                        │
//!             per item: 2xx stored · 409 already stored · 429/5xx resend that item
//!                       · other 4xx → dead-letter file with the server's reason
//!                                        │
//!                     every item settled ─► the acks of the job's batches fire
//! ```
//!
//! The target is either a data stream (the default, `logs-pihole.dns-default`,
//! as Elastic's own shippers write on Elasticsearch 8/9 and OpenSearch) or a
//! plain index (`index = "..."`). Both use `create` actions and the same index
//! template; only the name and the template's `data_stream` object differ.
//!
//! A request that fails as a whole (connection refused, timeout, 429, 5xx, an
//! unreadable answer) is sent again, indefinitely, with exponential backoff and
//! full jitter; it keeps its slot meanwhile, so back-pressure reaches the
//! inputs. Rejected credentials are retried at the longest delay, with an error
//! in the log each time, rather than dropping data. The index template is
//! installed before the first bulk request, and retried the same way if the
//! server is not up yet.

pub mod bulk;
pub mod template;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{Method, Url};
use elasticsearch::Elasticsearch;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use self::bulk::{Backoff, ItemOutcome, RequestVerdict, ResponseError};
use super::dead_letter::{self, DeadLetterFile};
use super::{OutputError, OutputReport, OutputStats, ReopenSignal};
use crate::pipeline::{EncodedBatch, EncodedReceiver};

/// Environment variable read for the password when the config has none.
pub const ENV_PASSWORD: &str = "DNSENRICH_ES_PASSWORD";
/// Environment variable read for the API key when the config has none.
pub const ENV_API_KEY: &str = "DNSENRICH_ES_API_KEY";

/// `[output] type = "elasticsearch"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URL of the cluster (one node or a load balancer).
    pub url: String,
    /// Write to this plain index instead of a data stream.
    pub index: Option<String>,
    /// The data stream, `<type>-<dataset>-<namespace>`.
    pub data_stream: String,
    /// Send a bulk request once this many bytes of documents are gathered.
    pub flush_bytes: usize,
    /// ... or once the oldest gathered document has waited this long.
    pub flush_interval_ms: u64,
    /// Bulk requests sent at the same time.
    pub max_in_flight: usize,
    /// Compress request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// `id:key`, or the base64 `encoded` form Elasticsearch prints.
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    /// PEM file of the CA that signed the cluster's certificate.
    pub ca_file: Option<PathBuf>,
    pub request_timeout_ms: u64,
    /// Install the index template before the first bulk request.
    pub install_template: bool,
    /// Give every document an `_id` when it joins a bulk request, kept across
    /// retries: a retried request whose first attempt was stored (its answer
    /// lost) is answered 409 and not stored twice. Off by default: documents
    /// with ids index more slowly than with ids the server makes.
    pub document_ids: bool,
    /// Where refused documents go; relative to the state directory.
    pub dead_letter_path: PathBuf,
    pub retry: RetryConfig,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            url: "http://127.0.0.1:9200".into(),
            index: None,
            data_stream: "logs-pihole.dns-default".into(),
            flush_bytes: 5 * 1024 * 1024,
            flush_interval_ms: 1000,
            max_in_flight: 2,
            gzip: false,
            username: None,
            password: None,
            password_file: None,
            api_key: None,
            api_key_file: None,
            ca_file: None,
            request_timeout_ms: 30_000,
            install_template: true,
            document_ids: false,
            dead_letter_path: PathBuf::from("dead-letter.ndjson"),
            retry: RetryConfig::default(),
        }
    }
}

/// `[output.retry]`: the delays between retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 30_000,
        }
    }
}

/// A password or API key. It prints and serialises as `***`, so a config dump
/// or a debug log never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for handing to the HTTP client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Checks a data-stream name against the ECS naming scheme:
/// `<type>-<dataset>-<namespace>`, type `logs` or `metrics`, dataset and
/// namespace without `-`, at most 100 characters each, no upper case, none of
/// `\ / * ? " < > | , #` or space.
pub fn validate_data_stream_name(name: &str) -> Result<(), String> {
    check_chars(name)?;
    let parts: Vec<&str> = name.split('-').collect();
    let [ty, dataset, namespace] = parts[..] else {
        return Err(format!(
            "`{name}` is not <type>-<dataset>-<namespace> (e.g. logs-pihole.dns-default); \
             dataset and namespace cannot contain `-`"
        ));
    };
    if !matches!(ty, "logs" | "metrics") {
        return Err(format!("type `{ty}` must be `logs` or `metrics`"));
    }
    for (what, part) in [("dataset", dataset), ("namespace", namespace)] {
        if part.is_empty() {
            return Err(format!("the {what} of `{name}` is empty"));
        }
        if part.chars().count() > 100 {
            return Err(format!(
                "the {what} of `{name}` is longer than 100 characters"
            ));
        }
    }
    Ok(())
}

/// Checks a plain index name against Elasticsearch's rules.
pub fn validate_index_name(name: &str) -> Result<(), String> {
    check_chars(name)?;
    if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
        return Err(format!(
            "`{name}` cannot start with `-`, `_` or `+`, or be `.` or `..`"
        ));
    }
    if name.contains(':') {
        return Err(format!("`{name}` cannot contain `:`"));
    }
    Ok(())
}

fn check_chars(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > 255 {
        return Err(format!("`{name}` is longer than 255 bytes"));
    }
    if name.chars().any(char::is_uppercase) {
        return Err(format!("`{name}` has upper-case letters"));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ' '
        )
    }) {
        return Err(format!("`{name}` contains `{c}`"));
    }
    Ok(())
}

impl ElasticsearchConfig {
    /// The index or data stream written to.
    pub fn target(&self) -> &str {
        self.index.as_deref().unwrap_or(&self.data_stream)
    }

    /// Checks the settings, reads secret and CA files, and builds the client.
    /// Secrets missing from the config are taken from
    /// [`ENV_PASSWORD`] / [`ENV_API_KEY`].
    pub fn build(&self) -> Result<ElasticsearchOutput, OutputError> {
        self.build_with_env(|k| std::env::var(k).ok())
    }

    fn build_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ElasticsearchOutput, OutputError> {
        let url = self.checked_url()?;
        validate_data_stream_name(&self.data_stream)
            .map_err(|r| OutputError::config("data_stream", r))?;
        if let Some(index) = &self.index {
            validate_index_name(index).map_err(|r| OutputError::config("index", r))?;
        }
        for (key, v) in [
            ("flush_bytes", self.flush_bytes as u64),
            ("flush_interval_ms", self.flush_interval_ms),
            ("max_in_flight", self.max_in_flight as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("retry.initial_backoff_ms", self.retry.initial_backoff_ms),
        ] {
            if v == 0 {
                return Err(OutputError::config(key, "must be at least 1"));
            }
        }
        if self.retry.max_backoff_ms < self.retry.initial_backoff_ms {
            return Err(OutputError::config(
                "retry.max_backoff_ms",
                "must not be less than retry.initial_backoff_ms",
            ));
        }
        if self.dead_letter_path.as_os_str().is_empty() {
            return Err(OutputError::config("dead_letter_path", "is empty"));
        }

        let timeout = Duration::from_millis(self.request_timeout_ms);
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(timeout);
        if let Some(creds) = self.credentials(&env)? {
            builder = builder.auth(creds);
        }
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|source| OutputError::Io {
                what: "cannot read the CA file",
                path: ca.clone(),
                source,
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| OutputError::config("ca_file", format!("{}: {e}", ca.display())))?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| OutputError::config("url", e.to_string()))?;

        let target = self.target().to_owned();
        let data_stream = self.index.is_none();
        let template = self.install_template.then(|| TemplateGate {
            name: template::template_name(&target),
            body: template::template_body(&target, data_stream).to_string(),
            installed: OnceCell::new(),
        });
        Ok(ElasticsearchOutput {
            shared: Arc::new(Shared {
                client: Elasticsearch::new(transport),
                url: self.url.clone(),
                bulk_path: format!("/{target}/_bulk"),
                target,
                data_stream,
                gzip: self.gzip,
                timeout,
                backoff: Backoff {
                    initial: Duration::from_millis(self.retry.initial_backoff_ms),
                    max: Duration::from_millis(self.retry.max_backoff_ms),
                },
                dead_letters: DeadLetterFile::new(&self.dead_letter_path),
                stats: Arc::default(),
                template,
            }),
            ids: self.document_ids.then(bulk::DocIds::new),
            flush_bytes: self.flush_bytes,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            max_in_flight: self.max_in_flight,
        })
    }

    fn checked_url(&self) -> Result<Url, OutputError> {
        let url = Url::parse(&self.url)
            .map_err(|e| OutputError::config("url", format!("`{}`: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutputError::config(
                "url",
                "must start with http:// or https://",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutputError::config(
                "url",
                "must not hold credentials (they would show in logs); \
                 use username/password or api_key",
            ));
        }
        Ok(url)
    }

    /// Basic auth, an API key, or nothing. A value in the config (or its
    /// `_file`) wins over the environment; setting both forms of one secret,
    /// or a password and an API key, is refused.
    fn credentials(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, OutputError> {
        let password = secret(
            ("password", &self.password),
            ("password_file", &self.password_file),
        )?;
        let api_key = secret(
            ("api_key", &self.api_key),
            ("api_key_file", &self.api_key_file),
        )?;
        match (&self.username, password, api_key) {
            (Some(_), _, Some(_)) => Err(OutputError::config(
                "api_key",
                "set either username/password or api_key, not both",
            )),
            (None, Some(_), _) => Err(OutputError::config(
                "username",
                "a password is set but no username",
            )),
            (Some(user), password, None) => {
                let password = password
                    .or_else(|| env(ENV_PASSWORD).filter(|p| !p.is_empty()).map(Secret))
                    .ok_or_else(|| {
                        OutputError::config(
                            "password",
                            format!(
                                "username is set but no password \
                                 (password, password_file or {ENV_PASSWORD})"
                            ),
                        )
                    })?;
                Ok(Some(Credentials::Basic(user.clone(), password.0)))
            }
            (None, None, key) => {
                let Some(key) =
                    key.or_else(|| env(ENV_API_KEY).filter(|k| !k.is_empty()).map(Secret))
                else {
                    return Ok(None);
                };
                Ok(Some(match key.0.split_once(':') {
                    Some((id, k)) => Credentials::ApiKey(id.to_owned(), k.to_owned()),
                    None => Credentials::EncodedApiKey(key.0),
                }))
            }
        }
    }
}

/// One secret given inline or as a file (trailing whitespace trimmed).
fn secret(
    inline: (&'static str, &Option<Secret>),
    file: (&'static str, &Option<PathBuf>),
) -> Result<Option<Secret>, OutputError> {
    match (inline.1, file.1) {
        (Some(_), Some(_)) => Err(OutputError::config(
            file.0,
            format!("set {} or {}, not both", inline.0, file.0),
        )),
        (Some(s), None) if s.0.is_empty() => Err(OutputError::config(inline.0, "is empty")),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| OutputError::Io {
                what: "cannot read",
                path: path.clone(),
                source,
            })?;
            let s = text.trim_end();
            if s.is_empty() {
                return Err(OutputError::config(
                    file.0,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(Secret(s.to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// What every bulk task needs.
struct Shared {
    client: Elasticsearch,
    url: String,
    target: String,
    data_stream: bool,
    bulk_path: String,
    gzip: bool,
    timeout: Duration,
    backoff: Backoff,
    dead_letters: DeadLetterFile,
    stats: Arc<OutputStats>,
    template: Option<TemplateGate>,
}

/// The index template, installed once before the first bulk request.
struct TemplateGate {
    name: String,
    body: String,
    installed: OnceCell<()>,
}

/// A built Elasticsearch output.
pub struct ElasticsearchOutput {
    shared: Arc<Shared>,
    /// Set with `document_ids`.
    ids: Option<bulk::DocIds>,
    flush_bytes: usize,
    flush_interval: Duration,
    max_in_flight: usize,
}

impl std::fmt::Debug for ElasticsearchOutput {
    // By hand: the client holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticsearchOutput")
            .field("url", &self.shared.url)
            .field("target", &self.shared.target)
            .field("data_stream", &self.shared.data_stream)
            .field("flush_bytes", &self.flush_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// Batches gathered for one bulk request. The documents are copied once,
/// into the request body, as the batches arrive; the batches keep only their
/// acks. A retry of some items builds its (smaller) body from slices of the
/// first one, so a request in flight holds its documents once, not once per
/// stage of its life.
#[derive(Default)]
struct BulkJob {
    /// The body of the first request: every document, in order.
    source: Vec<u8>,
    /// Per batch, where each of its documents lies in `source`.
    ranges: Vec<Vec<Placed>>,
    /// Per batch, its acks (fired when the whole job is settled).
    acks: Vec<Vec<crate::pipeline::Ack>>,
    docs: usize,
    /// Document bytes gathered (without the action lines).
    bytes: usize,
}

/// Where one document lies in a job's body: its action line starts at
/// `action`, the document itself is `doc` (a newline follows).
#[derive(Debug, Clone)]
struct Placed {
    action: usize,
    doc: std::ops::Range<usize>,
}

impl BulkJob {
    /// A job whose body will not need to grow (and be copied) on the way to
    /// `flush_bytes`: growing by doubling would briefly hold it twice.
    fn with_capacity(bytes: usize) -> Self {
        BulkJob {
            source: Vec::with_capacity(bytes),
            ..Default::default()
        }
    }

    /// Adds a batch's documents, each with an id from `ids` if given.
    fn push(&mut self, batch: EncodedBatch, mut ids: Option<&mut bulk::DocIds>) {
        let mut ranges = Vec::with_capacity(batch.len());
        for d in 0..batch.len() {
            let doc = batch.doc(d);
            let action = self.source.len();
            let id = ids.as_deref_mut().map(bulk::DocIds::next_id);
            bulk::push_create(&mut self.source, id.as_ref(), doc);
            let end = self.source.len() - 1;
            ranges.push(Placed {
                action,
                doc: end - doc.len()..end,
            });
        }
        self.docs += batch.len();
        self.bytes += batch.docs.len();
        self.ranges.push(ranges);
        self.acks.push(batch.acks);
    }

    fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Every (batch index, document index) of the job, in order.
    fn items(&self) -> Vec<(usize, usize)> {
        self.ranges
            .iter()
            .enumerate()
            .flat_map(|(b, r)| (0..r.len()).map(move |d| (b, d)))
            .collect()
    }

    /// Hands the body over for sending. `Bytes` is shared, not copied, by
    /// the HTTP client, so the documents stay in memory once while in flight.
    fn seal(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.source))
    }

    /// Document `d` of batch `b` in `source`, the job's sealed body.
    fn doc<'a>(&self, source: &'a [u8], b: usize, d: usize) -> &'a [u8] {
        &source[self.ranges[b][d].doc.clone()]
    }

    /// The body for the documents at `items` (batch index, document index),
    /// taken from `source`, the job's sealed body: each with the action line
    /// it was first sent with, so an `_id` stays the same.
    fn body(&self, source: &[u8], items: &[(usize, usize)]) -> Bytes {
        let mut body =
            Vec::with_capacity(self.bytes * items.len() / self.docs.max(1) + items.len() * 48);
        for &(b, d) in items {
            let at = &self.ranges[b][d];
            // The document's newline is the byte after it.
            body.extend_from_slice(&source[at.action..=at.doc.end]);
        }
        Bytes::from(body)
    }

    /// Every ack of the job.
    fn take_acks(&mut self) -> impl Iterator<Item = crate::pipeline::Ack> {
        std::mem::take(&mut self.acks).into_iter().flatten()
    }
}

/// Why a bulk request got no item-by-item answer.
enum Failure {
    Transport(elasticsearch::Error),
    Status { status: u16, error: Value },
    Invalid(ResponseError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(e) => f.write_str(&with_causes(e)),
            Failure::Status { status, error } => write!(f, "HTTP {status}: {}", reason(error)),
            Failure::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// An error and its causes: the HTTP client's own message ("error sending
/// request") says little without the "connection refused" underneath.
fn with_causes(e: &dyn std::error::Error) -> String {
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

fn reason(error: &Value) -> String {
    match error.get("reason").and_then(Value::as_str) {
        Some(r) => match error.get("type").and_then(Value::as_str) {
            Some(t) => format!("{t}: {r}"),
            None => r.to_owned(),
        },
        None => error.to_string(),
    }
}

/// Counts a request in flight for as long as it lives (also when aborted).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!("dnsenrich_output_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("dnsenrich_output_in_flight").decrement(1.0);
    }
}

fn describe_metrics() {
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
        "Bulk items by outcome (created, duplicate, retried, dead_letter)"
    );
    describe_counter!(
        "dnsenrich_bulk_retries_total",
        "Bulk requests sent again after a failure or 429/5xx items"
    );
    describe_counter!(
        "dnsenrich_dead_letters_total",
        "Documents written to the dead-letter file"
    );
    describe_gauge!(
        "dnsenrich_output_in_flight",
        "Bulk requests being sent or retried"
    );
}

impl ElasticsearchOutput {
    /// The live counters.
    pub fn stats(&self) -> Arc<OutputStats> {
        self.shared.stats.clone()
    }

    /// Sends batches until `rx` is closed and empty and every request is
    /// settled; see the module docs. While the server is unreachable this keeps
    /// retrying, so a shutdown deadline belongs around it: dropping the future
    /// abandons the requests in flight and their acks are never fired.
    ///
    /// Acks fire per bulk request, so with `max_in_flight > 1` a later batch
    /// can be acked before an earlier one.
    pub async fn run(
        self,
        rx: EncodedReceiver,
        mut reopen: ReopenSignal,
    ) -> Result<OutputReport, OutputError> {
        describe_metrics();
        let shared = self.shared;
        let mut ids = self.ids;
        tracing::info!(
            url = %shared.url,
            target = %shared.target,
            mode = if shared.data_stream { "data stream" } else { "index" },
            "sending events to Elasticsearch"
        );
        // Installing the template right away means the mapping is in place
        // before the first event arrives; bulk requests also wait for it.
        let mut background = JoinSet::new();
        if shared.template.is_some() {
            let s = shared.clone();
            background.spawn(async move { ensure_template(&s).await });
        }

        let slots = Arc::new(Semaphore::new(self.max_in_flight));
        let mut requests = JoinSet::new();
        // Room for a full request plus the action lines and the batch that
        // crosses the threshold.
        let job_capacity = self.flush_bytes + self.flush_bytes / 4 + (256 << 10);
        let mut job = BulkJob::with_capacity(job_capacity);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let due = job.bytes >= self.flush_bytes
                || deadline.is_some_and(|d| d <= tokio::time::Instant::now());
            if due {
                // Waiting here for a free slot is the back-pressure: `rx` is not
                // read until one of the requests in flight is settled.
                let permit = tokio::select! {
                    p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = reopen.requested() => {
                        shared.dead_letters.close().await;
                        continue;
                    }
                };
                let full = std::mem::replace(&mut job, BulkJob::with_capacity(job_capacity));
                requests.spawn(settle(shared.clone(), full, permit));
                deadline = None;
                continue;
            }
            tokio::select! {
                msg = rx.recv_async() => match msg {
                    // An empty batch rides along with the others; its ack
                    // fires when its bulk job is settled.
                    Ok(batch) => {
                        OutputStats::add(&shared.stats.sent, batch.len());
                        if job.is_empty() {
                            deadline = Some(tokio::time::Instant::now() + self.flush_interval);
                        }
                        job.push(batch, ids.as_mut());
                    }
                    Err(_) => break,
                },
                _ = sleep_until(deadline) => {}
                _ = reopen.requested() => shared.dead_letters.close().await,
                Some(res) = requests.join_next(), if !requests.is_empty() => log_join(res),
            }
        }

        // The channel is closed: send what is gathered, then wait for every
        // request to be settled.
        if !job.is_empty() {
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            requests.spawn(settle(shared.clone(), job, permit));
        }
        loop {
            tokio::select! {
                res = requests.join_next() => match res {
                    Some(res) => log_join(res),
                    None => break,
                },
                _ = reopen.requested() => shared.dead_letters.close().await,
            }
        }
        // With no events to send there is no need to keep trying.
        background.abort_all();
        Ok(shared.stats.report())
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn log_join(res: Result<(), tokio::task::JoinError>) {
    if let Err(e) = res {
        if e.is_panic() {
            tracing::error!(error = %e, "a bulk request task panicked; its batches stay unacknowledged");
        }
    }
}

/// Installs the index template once; every caller waits until that is done.
async fn ensure_template(shared: &Shared) {
    if let Some(t) = &shared.template {
        t.installed
            .get_or_init(|| install_template(shared, t))
            .await;
    }
}

/// `PUT _index_template/<name>`, retried while the server is unreachable or
/// busy. A refusal (a bad request, missing privileges) is logged and the
/// output carries on without it rather than holding every event back.
async fn install_template(shared: &Shared, t: &TemplateGate) {
    let path = format!("/_index_template/{}", t.name);
    let mut attempt = 0;
    loop {
        let res = shared
            .client
            .send(
                Method::Put,
                &path,
                HeaderMap::new(),
                None::<&()>,
                Some(t.body.as_bytes()),
                Some(shared.timeout),
            )
            .await;
        shared.stats.reachable.store(
            res.as_ref().is_ok_and(|r| r.status_code().as_u16() < 500),
            std::sync::atomic::Ordering::Relaxed,
        );
        let problem = match res {
            Ok(resp) if resp.status_code().is_success() => {
                tracing::info!(template = %t.name, "installed the index template");
                return;
            }
            Ok(resp) => {
                let status = resp.status_code().as_u16();
                let body = resp.bytes().await.unwrap_or_default();
                let error = bulk::error_object(status, &body);
                if RequestVerdict::from_status(status) != RequestVerdict::Retry {
                    tracing::error!(
                        template = %t.name,
                        status,
                        reason = %reason(&error),
                        "could not install the index template; sending events without it \
                         (set install_template = false if the template is managed elsewhere)"
                    );
                    return;
                }
                format!("HTTP {status}: {}", reason(&error))
            }
            Err(e) => with_causes(&e),
        };
        attempt += 1;
        let delay = shared.backoff.delay(attempt);
        tracing::warn!(
            template = %t.name,
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            error = %problem,
            "could not install the index template; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Sends one bulk job until every document is stored, already stored, or
/// dead-lettered, then fires the acks of its batches.
async fn settle(shared: Arc<Shared>, mut job: BulkJob, _slot: OwnedSemaphorePermit) {
    let _in_flight = InFlight::enter();
    let stats = &shared.stats;
    let backoff = shared.backoff;
    let mut pending: Vec<(usize, usize)> = job.items();
    if pending.is_empty() {
        stats.ack_all(job.take_acks());
        return;
    }
    ensure_template(&shared).await;
    // The first request sends the job's body as built; only a retry of some
    // items needs a body of its own.
    let source = job.seal();
    let mut body = source.clone();
    // Failed requests and rounds of refused items back off separately: a
    // recovered server that answers 429 should not inherit a long outage's delay.
    let mut request_attempt = 0;
    let mut item_attempt = 0;
    loop {
        match send_bulk(&shared, body.clone(), pending.len()).await {
            Ok(outcomes) => {
                request_attempt = 0;
                let mut retry = Vec::new();
                let mut dead = Vec::new();
                let mut dead_count = 0;
                // Counted here and reported once per request: a metrics
                // lookup per document would cost more than the bookkeeping.
                let (mut created, mut duplicates) = (0, 0);
                for (outcome, &(b, d)) in outcomes.into_iter().zip(&pending) {
                    match outcome {
                        ItemOutcome::Created => created += 1,
                        ItemOutcome::Duplicate => duplicates += 1,
                        ItemOutcome::Retry { .. } => retry.push((b, d)),
                        ItemOutcome::Reject { status, error } => {
                            let doc = job.doc(&source, b, d);
                            dead_letter::push_line(&mut dead, status, &error, &shared.target, doc);
                            dead_count += 1;
                        }
                    }
                }
                OutputStats::add(&stats.stored, created);
                OutputStats::add(&stats.duplicates, duplicates);
                for (status, n) in [
                    ("created", created),
                    ("duplicate", duplicates),
                    ("retried", retry.len()),
                    ("dead_letter", dead_count),
                ] {
                    if n > 0 {
                        metrics::counter!("dnsenrich_bulk_items_total", "status" => status)
                            .increment(n as u64);
                    }
                }
                if dead_count > 0 {
                    write_dead_letters(&shared, &dead, dead_count).await;
                }
                if retry.is_empty() {
                    break;
                }
                item_attempt += 1;
                OutputStats::add(&stats.retried, retry.len());
                metrics::counter!("dnsenrich_bulk_retries_total").increment(1);
                let delay = backoff.delay(item_attempt);
                tracing::warn!(
                    target = %shared.target,
                    refused = retry.len(),
                    of = pending.len(),
                    attempt = item_attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "Elasticsearch refused documents for now (429 or 5xx); sending them again"
                );
                tokio::time::sleep(delay).await;
                pending = retry;
                body = job.body(&source, &pending);
            }
            Err(Failure::Status { status, error })
                if RequestVerdict::from_status(status) == RequestVerdict::Reject =>
            {
                let mut dead = Vec::new();
                for &(b, d) in &pending {
                    let doc = job.doc(&source, b, d);
                    dead_letter::push_line(&mut dead, status, &error, &shared.target, doc);
                }
                tracing::error!(
                    target = %shared.target,
                    status,
                    reason = %reason(&error),
                    documents = pending.len(),
                    "Elasticsearch refused a whole bulk request; its documents go to the dead-letter file"
                );
                metrics::counter!("dnsenrich_bulk_items_total", "status" => "dead_letter")
                    .increment(pending.len() as u64);
                write_dead_letters(&shared, &dead, pending.len()).await;
                break;
            }
            Err(failure) => {
                OutputStats::add(&stats.request_failures, 1);
                metrics::counter!("dnsenrich_bulk_retries_total").increment(1);
                request_attempt += 1;
                if let Failure::Status { status, .. } = &failure {
                    if RequestVerdict::from_status(*status) == RequestVerdict::Credentials {
                        tracing::error!(
                            target = %shared.target,
                            attempt = request_attempt,
                            retry_in_ms = backoff.max.as_millis() as u64,
                            error = %failure,
                            "Elasticsearch rejected the credentials or their privileges; \
                             check username/password or api_key (events are kept and retried)"
                        );
                        tokio::time::sleep(backoff.max).await;
                        continue;
                    }
                }
                let delay = backoff.delay(request_attempt);
                tracing::warn!(
                    target = %shared.target,
                    attempt = request_attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    documents = pending.len(),
                    error = %failure,
                    "bulk request failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
    stats.ack_all(job.take_acks());
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
    metrics::counter!("dnsenrich_dead_letters_total").increment(count as u64);
    tracing::warn!(
        documents = count,
        path = %shared.dead_letters.path().display(),
        "Elasticsearch refused documents for good; they are in the dead-letter file with the reason"
    );
}

/// One `POST /<target>/_bulk`, read item by item.
async fn send_bulk(shared: &Shared, body: Bytes, docs: usize) -> Result<Vec<ItemOutcome>, Failure> {
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
    let result = request(shared, headers, body, docs).await;
    metrics::histogram!("dnsenrich_bulk_request_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    let label = match &result {
        Ok(_) => "ok",
        Err(Failure::Transport(_)) => "transport_error",
        Err(Failure::Status { .. }) => "http_error",
        Err(Failure::Invalid(_)) => "invalid_response",
    };
    metrics::counter!("dnsenrich_bulk_requests_total", "result" => label).increment(1);
    // Reachable means it answered and is not failing as a whole.
    let up = match &result {
        Ok(_) => true,
        Err(Failure::Status { status, .. }) => *status < 500,
        Err(_) => false,
    };
    shared
        .stats
        .reachable
        .store(up, std::sync::atomic::Ordering::Relaxed);
    result
}

async fn request(
    shared: &Shared,
    headers: HeaderMap,
    body: Bytes,
    docs: usize,
) -> Result<Vec<ItemOutcome>, Failure> {
    let resp = shared
        .client
        .send(
            Method::Post,
            &shared.bulk_path,
            headers,
            Some(&[("filter_path", bulk::FILTER_PATH)]),
            Some(body),
            Some(shared.timeout),
        )
        .await
        .map_err(Failure::Transport)?;
    let status = resp.status_code();
    let bytes = resp.bytes().await.map_err(Failure::Transport)?;
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
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn data_stream_names_follow_the_ecs_scheme() {
        assert!(validate_data_stream_name("logs-pihole.dns-default").is_ok());
        assert!(validate_data_stream_name("metrics-x-prod_eu").is_ok());
        for bad in [
            "logs-pihole.dns",
            "logs-pihole-dns-default",
            "traces-a-b",
            "logs-Pihole.dns-default",
            "logs-pihole.dns-",
            "logs--default",
            "logs-a b-default",
            "logs-a,b-default",
            "logs-a#b-default",
            "logs-a*b-default",
            "logs-a/b-default",
            "",
        ] {
            assert!(validate_data_stream_name(bad).is_err(), "{bad}");
        }
        let long = format!("logs-{}-default", "a".repeat(101));
        assert!(validate_data_stream_name(&long)
            .unwrap_err()
            .contains("longer than 100"));
    }

    #[test]
    fn index_names_follow_elasticsearch_rules() {
        assert!(validate_index_name("dns-events").is_ok());
        for bad in [
            "Dns", "_dns", "-dns", "+dns", ".", "..", "a:b", "a?b", "a\"b", "a|b", "",
        ] {
            assert!(validate_index_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_their_key() {
        let build = |c: ElasticsearchConfig| c.build_with_env(no_env).unwrap_err().to_string();
        let c = ElasticsearchConfig {
            data_stream: "logs-Pihole-x".into(),
            ..Default::default()
        };
        assert!(build(c).starts_with("output.data_stream: "));
        let c = ElasticsearchConfig {
            index: Some("Bad".into()),
            ..Default::default()
        };
        assert!(build(c).starts_with("output.index: "));
        let c = ElasticsearchConfig {
            url: "ftp://x".into(),
            ..Default::default()
        };
        assert!(build(c).starts_with("output.url: "));
        let c = ElasticsearchConfig {
            url: "https://elastic:hunter2@es:9200".into(),
            ..Default::default()
        };
        let err = build(c);
        assert!(
            err.starts_with("output.url: ") && !err.contains("hunter2"),
            "{err}"
        );
        let c = ElasticsearchConfig {
            max_in_flight: 0,
            ..Default::default()
        };
        assert_eq!(build(c), "output.max_in_flight: must be at least 1");
        let c = ElasticsearchConfig {
            retry: RetryConfig {
                initial_backoff_ms: 500,
                max_backoff_ms: 100,
            },
            ..Default::default()
        };
        assert!(build(c).starts_with("output.retry.max_backoff_ms: "));
    }

    #[test]
    fn target_is_the_index_or_the_data_stream_and_one_bulk_path() {
        let c = ElasticsearchConfig::default();
        let out = c.build_with_env(no_env).unwrap();
        assert_eq!(out.shared.bulk_path, "/logs-pihole.dns-default/_bulk");
        assert!(out.shared.data_stream);
        let t = out.shared.template.as_ref().unwrap();
        assert_eq!(t.name, "dnsenrich-logs-pihole.dns-default");
        let body: Value = serde_json::from_str(&t.body).unwrap();
        assert_eq!(body["data_stream"], serde_json::json!({}));
        assert_eq!(body["index_patterns"][0], "logs-pihole.dns-default");

        let c = ElasticsearchConfig {
            index: Some("dns".into()),
            ..Default::default()
        };
        let out = c.build_with_env(no_env).unwrap();
        assert_eq!(out.shared.bulk_path, "/dns/_bulk");
        assert!(!out.shared.data_stream);
        let body: Value =
            serde_json::from_str(&out.shared.template.as_ref().unwrap().body).unwrap();
        assert!(body.get("data_stream").is_none());
        assert_eq!(body["index_patterns"][0], "dns");

        let c = ElasticsearchConfig {
            install_template: false,
            ..Default::default()
        };
        assert!(c.build_with_env(no_env).unwrap().shared.template.is_none());
    }

    #[test]
    fn job_body_holds_the_selected_documents_in_order() {
        let mut job = BulkJob::default();
        for docs in [&[r#"{"a":0}"#, r#"{"a":1}"#][..], &[r#"{"b":0}"#]] {
            let mut b = EncodedBatch::default();
            for d in docs {
                b.docs.extend_from_slice(d.as_bytes());
                b.ends.push(b.docs.len());
            }
            job.push(b, None);
        }
        assert_eq!((job.docs, job.bytes), (3, 21));
        let source = job.seal();
        assert_eq!(
            &source[..],
            b"{\"create\":{}}\n{\"a\":0}\n{\"create\":{}}\n{\"a\":1}\n{\"create\":{}}\n{\"b\":0}\n"
        );
        assert_eq!(job.doc(&source, 1, 0), b"{\"b\":0}");
        assert_eq!(
            &job.body(&source, &[(0, 1), (1, 0)])[..],
            b"{\"create\":{}}\n{\"a\":1}\n{\"create\":{}}\n{\"b\":0}\n"
        );
    }

    #[test]
    fn a_retry_body_keeps_the_ids_of_the_first() {
        let mut job = BulkJob::default();
        let mut ids = bulk::DocIds::new();
        let mut b = EncodedBatch::default();
        for d in [r#"{"a":0}"#, r#"{"a":1}"#, r#"{"a":2}"#] {
            b.docs.extend_from_slice(d.as_bytes());
            b.ends.push(b.docs.len());
        }
        job.push(b, Some(&mut ids));
        let source = job.seal();
        let lines: Vec<&[u8]> = source.split(|&c| c == b'\n').collect();
        assert_eq!(lines.len(), 7, "three pairs and the final newline");
        for (i, doc) in [r#"{"a":0}"#, r#"{"a":1}"#, r#"{"a":2}"#]
            .iter()
            .enumerate()
        {
            let action: Value = serde_json::from_slice(lines[2 * i]).unwrap();
            assert_eq!(action["create"]["_id"].as_str().unwrap().len(), 20);
            assert_eq!(lines[2 * i + 1], doc.as_bytes());
            assert_eq!(job.doc(&source, 0, i), doc.as_bytes());
        }
        assert_ne!(lines[0], lines[2]);
        let retry = job.body(&source, &[(0, 0), (0, 2)]);
        let expect = [lines[0], lines[1], lines[4], lines[5], b""].join(&b'\n');
        assert_eq!(&retry[..], &expect[..]);
    }

    #[test]
    fn secrets_never_show_in_debug_or_serialised_config() {
        let c = ElasticsearchConfig {
            username: Some("elastic".into()),
            password: Some(Secret::new("hunter2")),
            api_key: Some(Secret::new("id:topsecret")),
            ..Default::default()
        };
        let debug = format!("{c:?}");
        let json = serde_json::to_string(&c).unwrap();
        let toml = toml::to_string(&c).unwrap();
        for text in [&debug, &json, &toml] {
            assert!(
                !text.contains("hunter2") && !text.contains("topsecret"),
                "{text}"
            );
            assert!(text.contains("***"), "{text}");
        }
        let parsed: ElasticsearchConfig =
            toml::from_str("password = \"hunter2\"\nusername = \"u\"\n").unwrap();
        assert_eq!(parsed.password.unwrap().expose(), "hunter2");
    }

    #[test]
    fn credentials_come_from_config_files_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let pw_file = dir.path().join("pw");
        std::fs::write(&pw_file, "from-file\n").unwrap();
        let basic = |c: &ElasticsearchConfig, env: &dyn Fn(&str) -> Option<String>| match c
            .credentials(&|k: &str| env(k))
        {
            Ok(Some(Credentials::Basic(u, p))) => Ok((u, p)),
            Ok(other) => Err(format!("{:?}", other.is_some())),
            Err(e) => Err(e.to_string()),
        };
        let env_pw = |k: &str| (k == ENV_PASSWORD).then(|| "from-env".to_string());

        let mut c = ElasticsearchConfig {
            username: Some("elastic".into()),
            ..Default::default()
        };
        assert_eq!(basic(&c, &env_pw).unwrap().1, "from-env");
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.password: "));
        c.password_file = Some(pw_file.clone());
        assert_eq!(basic(&c, &env_pw).unwrap().1, "from-file");
        c.password = Some(Secret::new("inline"));
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.password_file: "));
        c.password_file = None;
        assert_eq!(
            basic(&c, &env_pw).unwrap(),
            ("elastic".into(), "inline".into())
        );
        c.api_key = Some(Secret::new("id:key"));
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.api_key: "));

        let c = ElasticsearchConfig {
            password: Some(Secret::new("x")),
            ..Default::default()
        };
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.username: "));

        let key = |c: &ElasticsearchConfig, env: &dyn Fn(&str) -> Option<String>| {
            c.credentials(&|k: &str| env(k)).unwrap()
        };
        let c = ElasticsearchConfig {
            api_key: Some(Secret::new("my-id:my-key")),
            ..Default::default()
        };
        assert!(
            matches!(key(&c, &no_env), Some(Credentials::ApiKey(i, k)) if i == "my-id" && k == "my-key")
        );
        let env_key = |k: &str| (k == ENV_API_KEY).then(|| "ZW5jb2RlZA==".to_string());
        let c = ElasticsearchConfig::default();
        assert!(
            matches!(key(&c, &env_key), Some(Credentials::EncodedApiKey(k)) if k == "ZW5jb2RlZA==")
        );
        assert!(key(&c, &no_env).is_none());
        // An API key in the environment does not get in the way of basic auth.
        let c = ElasticsearchConfig {
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            ..Default::default()
        };
        assert!(matches!(key(&c, &env_key), Some(Credentials::Basic(..))));
    }
}
