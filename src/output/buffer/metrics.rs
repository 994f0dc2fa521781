//! The disk buffer's metrics, all named `dnsenrich_buffer_*` and set from one
//! place: [`publish`] copies a [`BufferStats`] snapshot into the gauges (call
//! it on the metrics tick), and drops are counted as they happen.

use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

use super::BufferStats;

/// Registers the help texts; call once when the buffer is set up.
pub fn describe() {
    describe_gauge!(
        "dnsenrich_buffer_bytes",
        Unit::Bytes,
        "Bytes of disk buffer segment files"
    );
    describe_gauge!(
        "dnsenrich_buffer_documents",
        "Documents in the disk buffer not yet acknowledged by the output"
    );
    describe_gauge!(
        "dnsenrich_buffer_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest unacknowledged record in the disk buffer (0 when empty)"
    );
    describe_counter!(
        "dnsenrich_buffer_corrupt_records_total",
        "Damaged ranges of the disk buffer skipped (each holds no intact record)"
    );
    describe_counter!(
        "dnsenrich_buffer_dropped_total",
        "Documents refused because the disk buffer was full (when_full = drop_newest)"
    );
}

/// Sets the gauges from `s`; `corrupt_seen` is the corrupt count published
/// last time (the counter is advanced by the difference), and is updated.
pub fn publish(s: &BufferStats, corrupt_seen: &mut u64) {
    gauge!("dnsenrich_buffer_bytes").set(s.bytes as f64);
    gauge!("dnsenrich_buffer_documents").set(s.documents as f64);
    gauge!("dnsenrich_buffer_oldest_age_seconds").set(oldest_age_secs(s, now_ms()));
    if s.corrupt_records > *corrupt_seen {
        counter!("dnsenrich_buffer_corrupt_records_total")
            .increment(s.corrupt_records - *corrupt_seen);
        *corrupt_seen = s.corrupt_records;
    }
}

/// Seconds since the oldest record was appended, 0 when there is none.
pub fn oldest_age_secs(s: &BufferStats, now_ms: u64) -> f64 {
    s.oldest_appended_ms
        .map_or(0.0, |t| now_ms.saturating_sub(t) as f64 / 1000.0)
}

pub(super) fn count_drop(docs: u32) {
    counter!("dnsenrich_buffer_dropped_total").increment(u64::from(docs));
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_age_is_zero_when_empty_and_never_negative() {
        let mut s = BufferStats::default();
        assert_eq!(oldest_age_secs(&s, 5_000), 0.0);
        s.oldest_appended_ms = Some(2_000);
        assert_eq!(oldest_age_secs(&s, 5_000), 3.0);
        assert_eq!(oldest_age_secs(&s, 1_000), 0.0);
    }

    #[test]
    fn publish_advances_the_corrupt_counter_by_the_difference() {
        let mut seen = 0;
        let s = BufferStats {
            corrupt_records: 2,
            ..Default::default()
        };
        publish(&s, &mut seen);
        assert_eq!(seen, 2);
        publish(&s, &mut seen);
        assert_eq!(seen, 2);
    }
}
