//! The Elasticsearch nodes the output talks to, and which one gets the next
//! request.
//!
//! ```text
//!  pick ──► the up node with the fewest requests in flight (ties: in turn)
//!    │        no node up: wait until a probe brings one back
//!    ▼
//!  request ──► answered ─────────────────────────► node stays up
//!          └─► connect error, timeout, broken
//!              connection, 5xx, unreadable ──────► node down ──► probe task:
//!                                                    GET / after 100 ms, 200 ms, …
//!                                                    at most probe_interval_ms apart;
//!                                                    any answer below 500 ─► up again
//! ```
//!
//! Least in flight rather than plain round robin: a node that is slow (a long
//! GC pause, a merge storm, a busy disk) holds its requests longer and so is
//! given fewer new ones on its own, while round robin would keep sending it
//! its share and let the slowest node set the pace. With equal nodes the two
//! are the same, as ties go round.
//!
//! A down node is probed with `GET /` — a few hundred bytes, where a bulk body
//! is megabytes — so a returning node is found within `probe_interval_ms` and
//! the requests waiting for it go at once, instead of each sleeping out its
//! own retry backoff. Failures that come back on the first bulk after a good
//! probe (a node that answers `GET /` and fails every bulk) move the first
//! probe later each time, so such a node gets at most one bulk request per
//! `probe_interval_ms`; an answered bulk request resets that.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, Weak};
use std::time::Duration;

use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use tokio::sync::Notify;

use super::bulk::Backoff;

/// The first probe of a down node comes this long after it failed (doubling
/// from there up to `probe_interval_ms`).
pub(super) const FIRST_PROBE: Duration = Duration::from_millis(100);
/// A probe waits at most this long for its answer (less with a shorter
/// `request_timeout_ms`).
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One node: its client and its health.
pub(super) struct Node {
    /// As configured, for logs and the `node` label.
    pub(super) url: String,
    pub(super) client: Elasticsearch,
    /// Shared with `/ready`.
    up: Arc<AtomicBool>,
    in_flight: AtomicUsize,
    /// Requests that failed since the node last answered a bulk request.
    failures: AtomicU32,
}

/// What a request's outcome says about the node that answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// It answered a bulk request.
    Answered,
    /// It answered, but nothing in the answer speaks of the node itself (a
    /// 4xx, 429): its state is left as it is.
    Neutral,
    /// No connection, a timeout, a broken connection, a 5xx or an unreadable
    /// answer: the node is taken out until a probe brings it back.
    Failed,
}

/// Every configured node, and those found by sniffing (appended, never
/// removed, so a node's index stays what it is).
pub(super) struct Nodes {
    nodes: RwLock<Vec<Arc<Node>>>,
    /// Where the search for the fewest requests in flight starts (ties go
    /// round).
    next: AtomicUsize,
    /// Woken when a node comes back up.
    back_up: Notify,
    /// Whether any node is up (the output's `/ready` flag).
    any_up: Arc<AtomicBool>,
    probe_backoff: Backoff,
    probe_timeout: Duration,
}

/// A node picked for one request; counts the request in flight on that node
/// for as long as it lives.
pub(super) struct Lease {
    nodes: Arc<Nodes>,
    node: Arc<Node>,
    index: usize,
}

impl Lease {
    pub(super) fn node(&self) -> &Node {
        &self.node
    }

    /// The node's position in the configured list.
    pub(super) fn index(&self) -> usize {
        self.index
    }

    /// Records what the request's outcome says about the node.
    pub(super) fn report(&self, health: Health) {
        self.nodes.report(self.index, health);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let node = self.node();
        let left = node.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!("dnsenrich_output_node_in_flight", "node" => node.url.clone())
            .set(left as f64);
    }
}

impl Nodes {
    /// The nodes, all taken to be up until a request says otherwise.
    /// `any_up` is set here and kept up to date.
    pub(super) fn new(
        nodes: Vec<(String, Elasticsearch)>,
        probe_interval: Duration,
        request_timeout: Duration,
        any_up: Arc<AtomicBool>,
    ) -> Nodes {
        assert!(!nodes.is_empty(), "at least one node");
        any_up.store(true, Ordering::Relaxed);
        Nodes {
            nodes: RwLock::new(
                nodes
                    .into_iter()
                    .map(|(u, c)| Arc::new(new_node(u, c)))
                    .collect(),
            ),
            next: AtomicUsize::new(0),
            back_up: Notify::new(),
            any_up,
            probe_backoff: Backoff {
                initial: FIRST_PROBE.min(probe_interval),
                max: probe_interval,
            },
            probe_timeout: PROBE_TIMEOUT.min(request_timeout),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Arc<Node>>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, index: usize) -> Arc<Node> {
        self.read()[index].clone()
    }

    /// The nodes' URLs, in order.
    pub(super) fn urls(&self) -> Vec<String> {
        self.read().iter().map(|n| n.url.clone()).collect()
    }

    /// Adds a node found by sniffing unless one with that URL is known;
    /// whether it was added.
    pub(super) fn add(&self, url: String, client: Elasticsearch) -> bool {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        if nodes.iter().any(|n| n.url == url) {
            return false;
        }
        metrics::gauge!("dnsenrich_output_node_up", "node" => url.clone()).set(1.0);
        nodes.push(Arc::new(new_node(url, client)));
        drop(nodes);
        self.any_up.store(true, Ordering::Relaxed);
        self.back_up.notify_waiters();
        true
    }

    /// Each node's URL and its up flag, for `/ready`.
    pub(super) fn flags(&self) -> Vec<(String, Arc<AtomicBool>)> {
        self.read()
            .iter()
            .map(|n| (n.url.clone(), n.up.clone()))
            .collect()
    }

    /// Sets the per-node gauges to their starting values, so every node shows
    /// in `/metrics` before its first request.
    pub(super) fn publish(&self) {
        for n in self.read().iter() {
            let up = n.up.load(Ordering::Relaxed);
            metrics::gauge!("dnsenrich_output_node_up", "node" => n.url.clone()).set(if up {
                1.0
            } else {
                0.0
            });
            metrics::gauge!("dnsenrich_output_node_in_flight", "node" => n.url.clone())
                .set(n.in_flight.load(Ordering::Relaxed) as f64);
        }
    }

    /// A node for the next request: the up node with the fewest requests in
    /// flight, other than `avoid` (where the last try of this request failed)
    /// while another is up. With no node up this waits for a probe to bring
    /// one back.
    pub(super) async fn pick(self: &Arc<Self>, avoid: Option<usize>) -> Lease {
        loop {
            // Registered before looking, so a node coming up in between is
            // not missed.
            let back = self.back_up.notified();
            tokio::pin!(back);
            back.as_mut().enable();
            if let Some(index) = self.choose(avoid) {
                let node = self.get(index);
                let now = node.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::gauge!("dnsenrich_output_node_in_flight", "node" => node.url.clone())
                    .set(now as f64);
                return Lease {
                    nodes: self.clone(),
                    node,
                    index,
                };
            }
            back.await;
        }
    }

    /// The index [`Nodes::pick`] takes, if any node is up.
    fn choose(&self, avoid: Option<usize>) -> Option<usize> {
        let nodes = self.read();
        let n = nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, usize)> = None;
        let mut fallback = None;
        for k in 0..n {
            let i = (start + k) % n;
            let node = &nodes[i];
            if !node.up.load(Ordering::Relaxed) {
                continue;
            }
            if Some(i) == avoid {
                fallback = Some(i);
                continue;
            }
            let load = node.in_flight.load(Ordering::Relaxed);
            if best.map_or(true, |(_, b)| load < b) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i).or(fallback)
    }

    /// Whether any node is up.
    #[cfg(test)]
    pub(super) fn any_up(&self) -> bool {
        self.any_up.load(Ordering::Relaxed)
    }

    fn report(self: &Arc<Self>, index: usize, health: Health) {
        let node = self.get(index);
        match health {
            Health::Answered => node.failures.store(0, Ordering::Relaxed),
            Health::Neutral => {}
            Health::Failed => {
                let failures = node.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if node.up.swap(false, Ordering::AcqRel) {
                    self.state_changed(index, false);
                    tracing::warn!(
                        node = %node.url,
                        nodes_up = self.read().iter().filter(|n| n.up.load(Ordering::Relaxed)).count(),
                        "Elasticsearch node marked down; probing it until it answers"
                    );
                    metrics::counter!("dnsenrich_output_node_down_total", "node" => node.url.clone())
                        .increment(1);
                    tokio::spawn(probe(Arc::downgrade(self), index, failures));
                }
            }
        }
    }

    fn state_changed(&self, index: usize, up: bool) {
        let node = self.get(index);
        metrics::gauge!("dnsenrich_output_node_up", "node" => node.url.clone()).set(if up {
            1.0
        } else {
            0.0
        });
        let any = self.read().iter().any(|n| n.up.load(Ordering::Relaxed));
        self.any_up.store(any, Ordering::Relaxed);
        if up {
            self.back_up.notify_waiters();
        }
    }

    /// Whether node `index` is up (for tests and logs).
    #[cfg(test)]
    fn is_up(&self, index: usize) -> bool {
        self.get(index).up.load(Ordering::Relaxed)
    }
}

fn new_node(url: String, client: Elasticsearch) -> Node {
    Node {
        url,
        client,
        up: Arc::new(AtomicBool::new(true)),
        in_flight: AtomicUsize::new(0),
        failures: AtomicU32::new(0),
    }
}

/// Probes a down node with `GET /` until it answers, then marks it up. Ends
/// early when the output is gone. `failures` (the node's failed requests since
/// its last answered bulk) sets where the delays start.
async fn probe(nodes: Weak<Nodes>, index: usize, failures: u32) {
    let mut attempt = failures.max(1);
    loop {
        let Some(strong) = nodes.upgrade() else {
            return;
        };
        let delay = strong.probe_backoff.delay(attempt);
        let timeout = strong.probe_timeout;
        drop(strong);
        tokio::time::sleep(delay).await;
        let Some(nodes) = nodes.upgrade() else {
            return;
        };
        let node = nodes.get(index);
        let answer = node
            .client
            .send(
                Method::Get,
                "/",
                HeaderMap::new(),
                None::<&()>,
                None::<&[u8]>,
                Some(timeout),
            )
            .await;
        // Any answer below 500 means the node is there: a 401 is a matter of
        // credentials, which the bulk requests report themselves.
        let up = answer
            .as_ref()
            .is_ok_and(|r| r.status_code().as_u16() < 500);
        let result = if up { "up" } else { "down" };
        metrics::counter!("dnsenrich_output_node_probes_total",
            "node" => node.url.clone(), "result" => result)
        .increment(1);
        if up {
            node.up.store(true, Ordering::Release);
            nodes.state_changed(index, true);
            tracing::info!(node = %node.url, "Elasticsearch node answers again; sending to it");
            return;
        }
        tracing::debug!(node = %node.url, attempt, "probe: Elasticsearch node still down");
        attempt = attempt.saturating_add(1);
    }
}

/// Builds the client of a node found by sniffing, with the configured
/// credentials, CA and timeout.
pub(super) type Connector =
    Box<dyn Fn(elasticsearch::http::Url) -> Result<Elasticsearch, String> + Send + Sync>;

/// Asks an up node for the cluster's HTTP addresses (`GET _nodes/http`)
/// every `every`, and adds each node not known yet, reached with `scheme`.
/// Runs until aborted.
pub(super) async fn sniff_forever(
    nodes: Arc<Nodes>,
    scheme: String,
    connect: Connector,
    timeout: Duration,
    every: Duration,
) {
    loop {
        match sniff(&nodes, &scheme, &connect, timeout).await {
            Ok(added) => {
                for url in &added {
                    tracing::info!(node = %url, "sniffing found an Elasticsearch node; sending to it too");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "sniffing the cluster's nodes failed; keeping the nodes known")
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// One round of sniffing; the URLs of the nodes added.
async fn sniff(
    nodes: &Arc<Nodes>,
    scheme: &str,
    connect: &Connector,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let lease = nodes.pick(None).await;
    let resp = lease
        .node()
        .client
        .send(
            Method::Get,
            "/_nodes/http",
            HeaderMap::new(),
            Some(&[("filter_path", "nodes.*.http.publish_address")]),
            None::<&[u8]>,
            Some(timeout),
        )
        .await
        .map_err(|e| format!("{}: {e}", lease.node().url))?;
    let status = resp.status_code().as_u16();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    drop(lease);
    if !(200..300).contains(&status) {
        return Err(format!("GET _nodes/http answered {status}"));
    }
    let mut added = Vec::new();
    for addr in publish_addresses(&body)? {
        let url = format!("{scheme}://{addr}");
        let parsed = elasticsearch::http::Url::parse(&url).map_err(|e| format!("{url}: {e}"))?;
        if nodes.urls().contains(&url) {
            continue;
        }
        let client = connect(parsed)?;
        if nodes.add(url.clone(), client) {
            added.push(url);
        }
    }
    Ok(added)
}

/// The `host:port` of each node in a `_nodes/http` answer. A publish
/// address written `hostname/ip:port` gives `hostname:port` (what a
/// certificate names), as Elastic's own clients read it.
fn publish_addresses(body: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("GET _nodes/http: {e}"))?;
    let Some(map) = v.get("nodes").and_then(|n| n.as_object()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for node in map.values() {
        let Some(addr) = node
            .pointer("/http/publish_address")
            .and_then(|a| a.as_str())
        else {
            continue;
        };
        let addr = match addr.split_once('/') {
            Some((host, ip_port)) if !host.is_empty() => {
                let port = ip_port.rsplit_once(':').map_or("9200", |(_, p)| p);
                format!("{host}:{port}")
            }
            Some((_, ip_port)) => ip_port.to_owned(),
            None => addr.to_owned(),
        };
        out.push(addr);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Registers the help texts of the per-node metrics.
pub(super) fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "dnsenrich_output_node_up",
        "1 while the Elasticsearch node is taken to be up (its last request or probe was answered), 0 while it is down"
    );
    describe_gauge!(
        "dnsenrich_output_node_in_flight",
        "Requests being sent to the Elasticsearch node"
    );
    describe_counter!(
        "dnsenrich_output_node_down_total",
        "Times the Elasticsearch node was marked down after a failed request"
    );
    describe_counter!(
        "dnsenrich_output_node_probes_total",
        "Probes (GET /) of a down Elasticsearch node, by result (up, down)"
    );
    describe_counter!(
        "dnsenrich_output_node_requests_total",
        "Bulk requests sent to the Elasticsearch node, by result (ok, http_error, transport_error, invalid_response)"
    );
}

#[cfg(test)]
mod tests {
    use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
    use elasticsearch::http::Url;

    use super::*;

    fn nodes(n: usize) -> Arc<Nodes> {
        let list = (0..n)
            .map(|i| {
                // Port 9 (discard) on loopback: nothing answers there, so a
                // probe fails and the node stays down.
                let url = format!("http://127.0.0.{}:9", i + 1);
                let pool = SingleNodeConnectionPool::new(Url::parse(&url).unwrap());
                let t = TransportBuilder::new(pool).build().unwrap();
                (url, Elasticsearch::new(t))
            })
            .collect();
        Arc::new(Nodes::new(
            list,
            Duration::from_secs(60),
            Duration::from_secs(1),
            Arc::default(),
        ))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_least_busy_node_is_picked_and_ties_go_round() {
        rt().block_on(async {
            let n = nodes(3);
            // Three requests at once land on three nodes.
            let a = n.pick(None).await;
            let b = n.pick(None).await;
            let c = n.pick(None).await;
            let mut used = [a.index(), b.index(), c.index()];
            used.sort();
            assert_eq!(used, [0, 1, 2]);
            // One finishes: the next request goes to the node it freed.
            let freed = b.index();
            drop(b);
            let d = n.pick(None).await;
            assert_eq!(d.index(), freed);
            drop((a, c, d));
            // Idle nodes share the requests in turn.
            let mut seen = [0; 3];
            for _ in 0..30 {
                seen[n.pick(None).await.index()] += 1;
            }
            assert_eq!(seen, [10, 10, 10]);
        });
    }

    #[test]
    fn a_failed_node_is_left_out_and_a_retry_avoids_the_last_node() {
        rt().block_on(async {
            let n = nodes(3);
            assert!(n.any_up());
            let first = n.pick(None).await;
            let failed = first.index();
            first.report(Health::Failed);
            drop(first);
            assert!(!n.is_up(failed));
            for _ in 0..20 {
                assert_ne!(n.pick(None).await.index(), failed);
            }
            // A retry avoids the node where it just failed while another is up...
            let other = n.pick(None).await;
            let other_i = other.index();
            drop(other);
            for _ in 0..20 {
                assert_ne!(n.pick(Some(other_i)).await.index(), other_i);
            }
            // ... and goes back to it when it is the only one up.
            for i in 0..3 {
                if i != other_i && i != failed {
                    let l = Lease {
                        nodes: n.clone(),
                        node: n.get(i),
                        index: i,
                    };
                    n.get(i).in_flight.fetch_add(1, Ordering::Relaxed);
                    l.report(Health::Failed);
                }
            }
            assert_eq!(n.pick(Some(other_i)).await.index(), other_i);
            assert!(n.any_up());
        });
    }

    #[test]
    fn with_every_node_down_a_pick_waits_until_one_is_back() {
        rt().block_on(async {
            let n = nodes(2);
            for _ in 0..2 {
                n.pick(None).await.report(Health::Failed);
            }
            assert!(!n.any_up());
            let waiting = tokio::time::timeout(Duration::from_millis(200), n.pick(None)).await;
            assert!(waiting.is_err(), "picked a node while all were down");
            // A probe's success, as `probe` records it.
            let picker = {
                let n = n.clone();
                tokio::spawn(async move { n.pick(None).await.index() })
            };
            tokio::task::yield_now().await;
            n.get(1).up.store(true, Ordering::Release);
            n.state_changed(1, true);
            let got = tokio::time::timeout(Duration::from_secs(5), picker)
                .await
                .expect("the waiting pick is woken")
                .unwrap();
            assert_eq!(got, 1);
            assert!(n.any_up());
        });
    }

    #[test]
    fn publish_addresses_are_read_as_the_clients_read_them() {
        let body = serde_json::json!({"nodes": {
            "a": {"http": {"publish_address": "10.0.0.1:9200"}},
            "b": {"http": {"publish_address": "es2.example/10.0.0.2:9201"}},
            "c": {"http": {"publish_address": "/10.0.0.3:9200"}},
            "d": {"http": {"publish_address": "[::1]:9200"}},
            "e": {"roles": ["master"]},
        }});
        assert_eq!(
            publish_addresses(body.to_string().as_bytes()).unwrap(),
            [
                "10.0.0.1:9200",
                "10.0.0.3:9200",
                "[::1]:9200",
                "es2.example:9201"
            ]
        );
        assert!(publish_addresses(b"{}").unwrap().is_empty());
        assert!(publish_addresses(b"<html>").is_err());
    }

    #[test]
    fn a_sniffed_node_is_added_once_and_wakes_a_waiting_pick() {
        rt().block_on(async {
            let n = nodes(1);
            n.pick(None).await.report(Health::Failed);
            let picker = {
                let n = n.clone();
                tokio::spawn(async move { n.pick(None).await.index() })
            };
            tokio::task::yield_now().await;
            let extra = nodes(2).get(1);
            assert!(n.add(extra.url.clone(), extra.client.clone()));
            assert!(!n.add(extra.url.clone(), extra.client.clone()));
            let got = tokio::time::timeout(Duration::from_secs(5), picker)
                .await
                .expect("the waiting pick is woken")
                .unwrap();
            assert_eq!(got, 1);
            assert_eq!(n.urls(), ["http://127.0.0.1:9", "http://127.0.0.2:9"]);
        });
    }

    #[test]
    fn an_answered_request_resets_the_failures_a_neutral_one_does_not() {
        rt().block_on(async {
            let n = nodes(1);
            let l = n.pick(None).await;
            l.node().failures.store(3, Ordering::Relaxed);
            l.report(Health::Neutral);
            assert_eq!(l.node().failures.load(Ordering::Relaxed), 3);
            assert!(n.is_up(0));
            l.report(Health::Answered);
            assert_eq!(l.node().failures.load(Ordering::Relaxed), 0);
        });
    }
}
