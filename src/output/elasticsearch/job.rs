//! A bulk job: the batches gathered for one bulk request, their documents
//! placed once in the request body (with their action lines and, with
//! `document_ids`, their ids), the smaller bodies of the retries cut from that
//! one, and the acks fired when the job is settled.

use bytes::Bytes;

use super::bulk;
use super::route::{checked_dataset, raw_dataset, Target};
use crate::pipeline::{Ack, EncodedBatch};

/// Batches gathered for one bulk request. The documents are copied once,
/// into the request body, as the batches arrive; the batches keep only their
/// acks. A retry of some items builds its (smaller) body from slices of the
/// first one, so a request in flight holds its documents once, not once per
/// stage of its life.
#[derive(Default)]
pub(super) struct BulkJob {
    /// The body of the first request: every document, in order.
    source: Vec<u8>,
    /// Per batch, where each of its documents lies in `source`.
    ranges: Vec<Vec<Placed>>,
    /// Per batch, its acks (fired when the whole job is settled).
    acks: Vec<Vec<Ack>>,
    docs: usize,
    /// The datasets of the job's documents, each once: their templates are
    /// installed before the job is sent.
    pub(super) datasets: Vec<String>,
    /// Each dataset value the documents hold, as written, with the index or
    /// data stream it goes to: a document's action line is written without
    /// checking and building the name again.
    routes: Vec<(Vec<u8>, String)>,
    /// Document bytes gathered (without the action lines).
    pub(super) bytes: usize,
}

/// One document of a job: (batch index, document index within the batch).
pub(super) type Item = (usize, usize);

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
    pub(super) fn with_capacity(bytes: usize) -> Self {
        BulkJob {
            source: Vec::with_capacity(bytes),
            ..Default::default()
        }
    }

    /// Adds a batch's documents, each addressed to its place in `target` and
    /// with an id from `ids` if given.
    pub(super) fn push(
        &mut self,
        batch: EncodedBatch,
        target: &Target,
        mut ids: Option<&mut bulk::DocIds>,
    ) {
        let mut ranges = Vec::with_capacity(batch.len());
        for d in 0..batch.len() {
            let doc = batch.doc(d);
            let raw = raw_dataset(doc);
            let at = match self.routes.iter().position(|(r, _)| r == raw) {
                Some(at) => at,
                None => {
                    let dataset = checked_dataset(raw);
                    if !self.datasets.iter().any(|d| d == dataset) {
                        self.datasets.push(dataset.to_owned());
                    }
                    self.routes
                        .push((raw.to_vec(), target.for_dataset(dataset)));
                    self.routes.len() - 1
                }
            };
            let action = self.source.len();
            let id = ids.as_deref_mut().map(bulk::DocIds::next_id);
            bulk::push_create(&mut self.source, &self.routes[at].1, id.as_ref(), doc);
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

    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Every (batch index, document index) of the job, in order.
    pub(super) fn items(&self) -> Vec<Item> {
        self.ranges
            .iter()
            .enumerate()
            .flat_map(|(b, r)| (0..r.len()).map(move |d| (b, d)))
            .collect()
    }

    /// Hands the body over for sending. `Bytes` is shared, not copied, by
    /// the HTTP client, so the documents stay in memory once while in flight.
    pub(super) fn seal(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.source))
    }

    /// Document `d` of batch `b` in `source`, the job's sealed body.
    pub(super) fn doc<'a>(&self, source: &'a [u8], b: usize, d: usize) -> &'a [u8] {
        &source[self.ranges[b][d].doc.clone()]
    }

    /// The body for the documents at `items` (batch index, document index),
    /// taken from `source`, the job's sealed body: each with the action line
    /// it was first sent with, so an `_id` stays the same.
    pub(super) fn body(&self, source: &[u8], items: &[Item]) -> Bytes {
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
    pub(super) fn take_acks(&mut self) -> impl Iterator<Item = Ack> {
        std::mem::take(&mut self.acks).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn index() -> Target {
        Target::Index { name: "i".into() }
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
            job.push(b, &index(), None);
        }
        assert_eq!((job.docs, job.bytes), (3, 21));
        let source = job.seal();
        let a = "{\"create\":{\"_index\":\"i\"}}\n";
        assert_eq!(
            String::from_utf8_lossy(&source),
            format!("{a}{{\"a\":0}}\n{a}{{\"a\":1}}\n{a}{{\"b\":0}}\n")
        );
        assert_eq!(job.doc(&source, 1, 0), b"{\"b\":0}");
        assert_eq!(
            String::from_utf8_lossy(&job.body(&source, &[(0, 1), (1, 0)])),
            format!("{a}{{\"a\":1}}\n{a}{{\"b\":0}}\n")
        );
    }

    #[test]
    fn each_document_goes_to_the_data_stream_of_its_dataset() {
        let mut job = BulkJob::default();
        let mut b = EncodedBatch::default();
        for d in [
            r#"{"event":{"dataset":"pihole.dns"}}"#,
            r#"{"event":{"dataset":"pihole.dhcp"}}"#,
            r#"{"event":{"dataset":"pihole.dns"}}"#,
            r#"{"event":{"dataset":"Not-A-Dataset"}}"#,
        ] {
            b.docs.extend_from_slice(d.as_bytes());
            b.ends.push(b.docs.len());
        }
        let target = Target::DataStream {
            namespace: "home".into(),
        };
        job.push(b, &target, None);
        assert_eq!(job.datasets, ["pihole.dns", "pihole.dhcp"]);
        let source = job.seal();
        let actions: Vec<Value> = source
            .split(|&c| c == b'\n')
            .step_by(2)
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let indices: Vec<&str> = actions
            .iter()
            .map(|a| a["create"]["_index"].as_str().unwrap())
            .collect();
        assert_eq!(
            indices,
            [
                "logs-pihole.dns-home",
                "logs-pihole.dhcp-home",
                "logs-pihole.dns-home",
                "logs-pihole.dns-home"
            ]
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
        job.push(b, &index(), Some(&mut ids));
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
}
