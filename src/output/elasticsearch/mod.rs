//! The Elasticsearch output: batches of encoded events go to the `_bulk` API,
//! several requests at a time, and come back as acks only once every document
//! of a request is settled.
//!
//! ```text
//!  rx ──EncodedBatch──► gather until flush_bytes or flush_interval ──► BulkJob
//!                                                                        │ waits for a slot
//!         (no slot free: rx is not read, so the inputs are pushed back)  ▼ (max_in_flight)
//!                                       POST /_bulk ◄── retry with backoff + jitter
//!                                        │
//!             per item: 2xx stored · 409 already stored · 429/5xx resend that item
//!                       · refused for the target's reason (credentials, read-only
//!                         or closed index, a field every document has) → resend
//!                       · other 4xx → dead-letter file with the server's reason
//!             whole request: 413 → two halves, each settled on its own
//!                                        │
//!                     every item settled ─► the acks of the job's batches fire
//! ```
//!
//! The target is either one data stream per dataset (the default,
//! `logs-pihole.dns-default` and `logs-pihole.dhcp-default`, as Elastic's own
//! integrations lay out theirs on Elasticsearch 8/9 and OpenSearch) or a plain
//! index (`index = "..."`); each document's action line names where it goes
//! ([`route`]). Before the first document, `install` finds out what the
//! server is and installs the templates of [`template`].
//!
//! A request that fails as a whole is sent again, indefinitely, keeping its
//! slot meanwhile, so back-pressure reaches the inputs: one that got no
//! answer (connection refused, timeout, a broken connection) at once on
//! another node, or as soon as a probe finds one back up; one answered 429
//! or 5xx after an exponential backoff with full jitter. Rejected
//! credentials are retried at the longest delay, with an error in the log
//! each time, rather than dropping data. The templates are installed before
//! the first bulk request of their dataset, and retried the same way if no
//! node is up yet. With `sniff = true` the nodes the cluster names in
//! `GET _nodes/http` are added to the configured ones.
//!
//! The parts: `config` (the settings, their checks and `build`), `auth`
//! (the credentials, the CA, the URL checks and what connection errors
//! mean), `job` (a bulk request's body, ids and acks), `nodes` (which node
//! gets a request, and the probes of a node that is down), `settle` (an
//! answer's meaning and the retry loop, and the metrics), [`bulk`] (the
//! `_bulk` wire format and decision tables), [`route`] (where a document
//! goes), [`template`] (the template bodies), `server` (what `GET /` says)
//! and `install` (the start-up check and the template installs). This file
//! gathers batches into jobs and hands them to slots.

mod auth;
pub mod bulk;
mod config;
mod install;
mod job;
mod nodes;
pub mod route;
mod server;
mod settle;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

pub use self::auth::{
    mask_url, mask_urls_in, Auth, ENV_API_KEY, ENV_API_KEY_FILE, ENV_CA, ENV_PASSWORD,
    ENV_PASSWORD_FILE, ENV_USER,
};
use self::bulk::Backoff;
pub use self::config::{
    validate_data_stream_name, validate_dataset, validate_index_name, validate_namespace,
    validate_retention, ElasticsearchConfig, RetryConfig, Secret,
};
use self::install::{Setup, Templates};
use self::job::BulkJob;
use self::nodes::Nodes;
use self::route::Target;
use self::settle::{describe_metrics, settle};
use super::dead_letter::DeadLetterFile;
use super::{OutputError, OutputReport, OutputStats, ReopenSignal};
use crate::pipeline::EncodedReceiver;

/// What every bulk task needs.
struct Shared {
    nodes: Arc<Nodes>,
    /// The credential every request carries, named in refusals.
    auth: Auth,
    target: Target,
    /// `retention`: a data stream lifecycle instead of the `logs` ILM policy.
    retention: Option<String>,
    gzip: bool,
    timeout: Duration,
    backoff: Backoff,
    dead_letters: DeadLetterFile,
    stats: Arc<OutputStats>,
    /// `None` with `install_template = false`.
    templates: Option<Templates>,
    /// What the server is, found out once.
    server: OnceCell<Setup>,
}

/// How to sniff the cluster's nodes.
struct Sniff {
    scheme: String,
    every: Duration,
    connect: nodes::Connector,
}

/// A built Elasticsearch output.
pub struct ElasticsearchOutput {
    shared: Arc<Shared>,
    /// Set with `document_ids`.
    ids: Option<bulk::DocIds>,
    flush_bytes: usize,
    flush_interval: Duration,
    max_in_flight: usize,
    /// Set with `sniff = true`.
    sniff: Option<Sniff>,
}

impl std::fmt::Debug for ElasticsearchOutput {
    // By hand: the client holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticsearchOutput")
            .field("nodes", &self.shared.nodes.urls())
            .field("auth", &self.shared.auth)
            .field("target", &self.shared.target)
            .field("flush_bytes", &self.flush_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl ElasticsearchOutput {
    /// The live counters.
    pub fn stats(&self) -> Arc<OutputStats> {
        self.shared.stats.clone()
    }

    /// Each node's URL and the flag that is up while the node is (`stats().
    /// reachable` is up while any node is).
    pub fn node_flags(&self) -> Vec<(String, Arc<std::sync::atomic::AtomicBool>)> {
        self.shared.nodes.flags()
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
        nodes::describe_metrics();
        let shared = self.shared;
        shared.nodes.publish();
        let mut ids = self.ids;
        tracing::info!(
            nodes = %shared.nodes.urls().join(" "),
            credential = %shared.auth.describe(),
            target = %shared.target.describe(),
            mode = if shared.target.is_data_stream() { "data stream" } else { "index" },
            "sending events to Elasticsearch"
        );
        // Finding out the server and installing the default dataset's
        // templates right away means the mapping is in place before the first
        // event arrives; bulk requests also wait for it.
        let mut background = JoinSet::new();
        {
            let s = shared.clone();
            background.spawn(async move {
                let default = [crate::event::DEFAULT_DATASET.to_owned()];
                install::ready_for(&s, &default).await
            });
        }
        if let Some(s) = self.sniff {
            background.spawn(nodes::sniff_forever(
                shared.nodes.clone(),
                s.scheme,
                s.connect,
                shared.timeout,
                s.every,
            ));
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
                        job.push(batch, &shared.target, ids.as_mut());
                    }
                    Err(_) => break,
                },
                _ = sleep_until(deadline) => {}
                _ = reopen.requested() => shared.dead_letters.close().await,
                Some(res) = requests.join_next(), if !requests.is_empty() => log_join(res),
            }
        }

        drain(&shared, job, &slots, requests, &mut reopen).await;
        // With no events to send there is no need to keep trying.
        background.abort_all();
        Ok(shared.stats.report())
    }
}

/// The channel is closed: sends what is gathered, then waits for every
/// request to be settled.
async fn drain(
    shared: &Arc<Shared>,
    job: BulkJob,
    slots: &Arc<Semaphore>,
    mut requests: JoinSet<()>,
    reopen: &mut ReopenSignal,
) {
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
