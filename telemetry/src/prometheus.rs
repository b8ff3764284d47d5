//! A metrics registry in the two text formats scrapers ask for.
//!
//! A scraper asking for `application/openmetrics-text` gets OpenMetrics
//! ([`openmetrics`], [`OPENMETRICS_CONTENT_TYPE`]); anything else gets the
//! Prometheus text format 0.0.4 ([`prometheus_text`],
//! [`PROMETHEUS_CONTENT_TYPE`]), which `promtool check metrics` and older
//! scrapers read.

use std::collections::HashSet;

use prometheus_client::registry::Registry;

/// The content type of [`openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `registry` in the OpenMetrics text format (ends with `# EOF`).
pub fn openmetrics(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// OpenMetrics text turned into the Prometheus text format 0.0.4: without
/// `# EOF` and `# UNIT`, a counter's HELP and TYPE lines named like its
/// `_total` sample.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let (name, tail) = line.strip_prefix(prefix)?.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;

    #[test]
    fn a_counter_is_named_by_its_sample_and_the_text_has_no_eof_or_unit() {
        let mut registry = Registry::default();
        let calls = Counter::<u64>::default();
        calls.inc();
        registry.register("calls", "Calls made", calls);
        registry.register_with_unit(
            "queue",
            "Queued bytes",
            prometheus_client::registry::Unit::Bytes,
            Gauge::<i64>::default(),
        );
        let open = openmetrics(&registry);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE calls counter\n"), "{open}");
        let text = prometheus_text(&open);
        assert!(text.contains("# HELP calls_total Calls made.\n"), "{text}");
        assert!(text.contains("# TYPE calls_total counter\n"), "{text}");
        assert!(text.contains("calls_total 1\n"), "{text}");
        assert!(text.contains("# TYPE queue_bytes gauge\n"), "{text}");
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }
}
