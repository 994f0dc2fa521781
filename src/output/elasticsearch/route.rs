//! Where each document goes: one data stream per dataset,
//! `logs-<event.dataset>-<namespace>` (as Elastic's integrations lay out
//! theirs), or a plain index, which may name the dataset as `{dataset}`.
//!
//! The dataset is read from the encoded document itself, so a document goes
//! to the same place however it arrives (straight from the pipeline, from the
//! disk buffer, or replayed from a dead-letter file): the first `"dataset":"`
//! key of the document. dnsenrich's encoder writes `data_stream` and `event`
//! (whose `dataset` it is) before any object a user can name keys in
//! (`labels`), and a quote inside a JSON string is always escaped, so that
//! first key is the event's dataset.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;

use super::config::validate_dataset;
use crate::event::DEFAULT_DATASET;

/// The placeholder an `index` name can hold for the event's dataset.
pub const DATASET_PLACEHOLDER: &str = "{dataset}";

/// Where the output writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `logs-<dataset>-<namespace>` data streams.
    DataStream { namespace: String },
    /// A plain index, the same for every document unless it holds
    /// [`DATASET_PLACEHOLDER`].
    Index { name: String },
}

impl Target {
    pub fn is_data_stream(&self) -> bool {
        matches!(self, Target::DataStream { .. })
    }

    /// The index or data stream of `dataset`.
    pub fn for_dataset(&self, dataset: &str) -> String {
        match self {
            Target::DataStream { namespace } => format!("logs-{dataset}-{namespace}"),
            Target::Index { name } => name.replace(DATASET_PLACEHOLDER, dataset),
        }
    }

    /// The index or data stream of an encoded document.
    pub fn for_doc(&self, doc: &[u8]) -> Cow<'_, str> {
        match self {
            Target::Index { name } if !name.contains(DATASET_PLACEHOLDER) => {
                Cow::Borrowed(name.as_str())
            }
            _ => Cow::Owned(self.for_dataset(dataset_of(doc))),
        }
    }

    /// What one index template covers: a dataset's data streams (every
    /// namespace), or one plain index.
    pub fn template_key<'a>(&self, dataset: &'a str) -> Cow<'a, str> {
        match self {
            Target::DataStream { .. } => Cow::Borrowed(dataset),
            Target::Index { .. } => Cow::Owned(self.for_dataset(dataset)),
        }
    }

    /// How the log names the target.
    pub fn describe(&self) -> String {
        match self {
            Target::DataStream { namespace } => format!("logs-<dataset>-{namespace}"),
            Target::Index { name } => name.clone(),
        }
    }
}

/// The dataset of an encoded document: its first `"dataset":"…"` value, or
/// [`DEFAULT_DATASET`] if it has none or one that cannot be part of an index
/// name.
pub fn dataset_of(doc: &[u8]) -> &str {
    checked_dataset(raw_dataset(doc))
}

/// The bytes of a document's first `"dataset":"…"` value, unchecked.
pub fn raw_dataset(doc: &[u8]) -> &[u8] {
    const KEY: &[u8] = b"\"dataset\":\"";
    static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(KEY));
    FINDER
        .find(doc)
        .and_then(|at| {
            let rest = &doc[at + KEY.len()..];
            memchr::memchr(b'"', rest).map(|end| &rest[..end])
        })
        .unwrap_or_default()
}

/// `raw` if it can name a data stream or index, else [`DEFAULT_DATASET`].
pub fn checked_dataset(raw: &[u8]) -> &str {
    std::str::from_utf8(raw)
        .ok()
        .filter(|v| validate_dataset(v).is_ok())
        .unwrap_or(DEFAULT_DATASET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataset_comes_from_the_event_not_from_a_label() {
        assert_eq!(
            dataset_of(br#"{"data_stream":{"type":"logs","dataset":"pihole.dhcp"}}"#),
            "pihole.dhcp"
        );
        assert_eq!(
            dataset_of(br#"{"event":{"dataset":"pihole.dhcp"},"labels":{"dataset":"x"}}"#),
            "pihole.dhcp"
        );
        // A message quoting the key is escaped, so it is not the key.
        assert_eq!(
            dataset_of(br#"{"message":"\"dataset\":\"evil\"","event":{"dataset":"pihole.dhcp"}}"#),
            "pihole.dhcp"
        );
        assert_eq!(dataset_of(br#"{"event":{}}"#), DEFAULT_DATASET);
        assert_eq!(
            dataset_of(br#"{"event":{"dataset":"Bad-Name"}}"#),
            DEFAULT_DATASET
        );
    }

    #[test]
    fn data_streams_are_per_dataset_and_an_index_may_name_it() {
        let ds = Target::DataStream {
            namespace: "home".into(),
        };
        let dhcp = br#"{"event":{"dataset":"pihole.dhcp"}}"#;
        assert_eq!(ds.for_doc(dhcp), "logs-pihole.dhcp-home");
        assert_eq!(ds.for_doc(b"{}"), "logs-pihole.dns-home");
        assert_eq!(ds.template_key("pihole.dhcp"), "pihole.dhcp");
        let fixed = Target::Index { name: "dns".into() };
        assert_eq!(fixed.for_doc(dhcp), "dns");
        let split = Target::Index {
            name: "dns-{dataset}".into(),
        };
        assert_eq!(split.for_doc(dhcp), "dns-pihole.dhcp");
        assert_eq!(split.template_key("pihole.dhcp"), "dns-pihole.dhcp");
    }
}
