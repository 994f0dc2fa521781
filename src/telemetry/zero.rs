//! Every counter an operator alerts on exists from the start, at zero. A
//! Prometheus counter that appears only with its first increment makes
//! `increase(x[5m]) > 0` miss that first burst (there is no earlier sample to
//! compare with), and a dashboard shows "no data" instead of 0.
//!
//! Which series exist depends on what is configured: the inputs that are on,
//! enrichment, the Elasticsearch output, the disk buffer, transactions.

/// What is configured, for [`register`].
#[derive(Debug, Default, Clone)]
pub struct Parts {
    /// The inputs that are on (`udp`, `tcp`, `tls`, `relp`, `file`).
    pub inputs: Vec<&'static str>,
    pub enrich: bool,
    pub memcached: bool,
    pub elasticsearch: bool,
    pub buffer: bool,
    pub transactions: bool,
}

/// Creates every series of `parts` at zero (adding 0 to a counter that
/// already counts leaves it as it is).
pub fn register(parts: &Parts) {
    use metrics::counter;
    for &input in &parts.inputs {
        counter!("dnsenrich_events_received_total", "input" => input).increment(0);
        counter!("dnsenrich_events_parsed_total", "input" => input).increment(0);
        counter!("dnsenrich_frames_truncated_total", "input" => input).increment(0);
        let dropped: &[&'static str] = match input {
            "udp" => &["pipeline_full", "socket_buffer_full", "shutdown_deadline"],
            "file" => &[],
            _ => &["pipeline_closed", "shutdown_deadline"],
        };
        for &reason in dropped {
            counter!("dnsenrich_events_dropped_total", "input" => input, "reason" => reason)
                .increment(0);
        }
        if matches!(input, "tcp" | "tls" | "relp") {
            counter!("dnsenrich_framing_errors_total", "input" => input).increment(0);
        }
    }
    if parts.inputs.contains(&"tls") {
        counter!("dnsenrich_tls_handshake_failures_total").increment(0);
    }
    if parts.inputs.contains(&"relp") {
        counter!("dnsenrich_relp_messages_acknowledged_total").increment(0);
    }
    for (reason, _) in crate::decode::DecodeStats::default().reasons() {
        counter!("dnsenrich_parse_failures_total", "reason" => reason).increment(0);
    }
    if parts.enrich {
        counter!("dnsenrich_events_not_enriched_total").increment(0);
        counter!("dnsenrich_malformed_values_total").increment(0);
        let results: &[&'static str] = if parts.memcached {
            &["cache_hit", "cache_miss", "memcached_hit", "memcached_miss"]
        } else {
            &["store_hit", "store_miss"]
        };
        for &result in results {
            counter!("dnsenrich_lookups_total", "result" => result).increment(0);
        }
    }
    if parts.memcached {
        counter!("dnsenrich_memcached_requests_total").increment(0);
        counter!("dnsenrich_memcached_keys_total").increment(0);
        for kind in ["timeout", "io", "down"] {
            counter!("dnsenrich_memcached_errors_total", "kind" => kind).increment(0);
        }
    }
    if parts.elasticsearch {
        counter!("dnsenrich_dead_letters_total").increment(0);
        counter!("dnsenrich_bulk_retries_total").increment(0);
        counter!("dnsenrich_bulk_possible_duplicates_total").increment(0);
    }
    if parts.buffer {
        counter!("dnsenrich_buffer_corrupt_records_total").increment(0);
        counter!("dnsenrich_buffer_dropped_total").increment(0);
    }
    if parts.transactions {
        counter!("dnsenrich_transaction_late_lines_total").increment(0);
        counter!("dnsenrich_transaction_orphans_total").increment(0);
    }
}
