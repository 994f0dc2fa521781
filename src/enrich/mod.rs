//! Enrichment: the stage between parsing and output where events gain threat
//! intelligence. Until lookups are configured it passes batches through
//! unchanged; the stage, its threads and its channel exist either way, so
//! turning lookups on changes no wiring.

use crate::pipeline::EventBatch;

/// What the enrichment stage does to each batch.
pub trait Enricher: Send {
    /// Enriches every event of the batch in place.
    fn enrich(&mut self, batch: &mut EventBatch);
}

/// The enricher used when no lookup is configured.
#[derive(Debug, Default, Clone)]
pub struct PassThrough;

impl Enricher for PassThrough {
    fn enrich(&mut self, _batch: &mut EventBatch) {}
}
