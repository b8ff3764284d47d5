//! The code-analysis connector's own Prometheus metrics (beside the kit's gRPC
//! call durations), served on `METRICS_ADDR`:
//!
//! - `switchboard_code_files_analyzed_total{language, kind}` and
//!   `switchboard_code_bytes_analyzed_total{language, kind}`: files (and their
//!   bytes) whose metrics (`kind="metrics"`) or security findings
//!   (`kind="security"`) were served, from the cache or computed; `rate()` of
//!   them is files/s and bytes/s;
//! - `switchboard_cache_requests_total{cache, backend="memory", result}`: lookups
//!   in the content-hash caches (`cache` `analysis` or `findings`), `result` `hit`
//!   or `miss` (a miss is a parse).
//!
//! Every label comes from code: the language's name, a fixed kind, a fixed cache
//! name; never a path.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Which result of a file was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Metrics (AnalyzeCode, AnalyzePath ...).
    Metrics,
    /// Security findings.
    Security,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Metrics => "metrics",
            Self::Security => "security",
        }
    }

    fn cache(self) -> &'static str {
        match self {
            Self::Metrics => "analysis",
            Self::Security => "findings",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    language: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    backend: &'static str,
    result: &'static str,
}

struct Metrics {
    files: Family<FileLabels, Counter>,
    bytes: Family<FileLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        files: Family::default(),
        bytes: Family::default(),
        cache: Family::default(),
    };
    connector_kit::metrics::register(
        "switchboard_code_files_analyzed",
        "Files whose metrics or security findings were served, by language and kind",
        metrics.files.clone(),
    );
    connector_kit::metrics::register(
        "switchboard_code_bytes_analyzed",
        "Bytes of the files whose metrics or security findings were served, by language and kind",
        metrics.bytes.clone(),
    );
    connector_kit::metrics::register(
        "switchboard_cache_requests",
        "Content-hash cache lookups, by cache (analysis or findings) and result (hit or miss)",
        metrics.cache.clone(),
    );
    metrics
});

/// Counts one file of `bytes` in `language` served as `kind`, and whether its
/// result came from the cache.
pub fn record_file(language: &'static str, kind: Kind, bytes: usize, from_cache: bool) {
    let labels = FileLabels {
        language,
        kind: kind.label(),
    };
    METRICS.files.get_or_create(&labels).inc();
    METRICS
        .bytes
        .get_or_create(&labels)
        .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    record_lookup(kind, from_cache);
}

/// Counts one cache lookup of `kind` (a computation that failed is still a miss).
pub fn record_lookup(kind: Kind, hit: bool) {
    METRICS
        .cache
        .get_or_create(&CacheLabels {
            cache: kind.cache(),
            backend: "memory",
            result: if hit { "hit" } else { "miss" },
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_bytes_and_lookups_are_counted_with_bounded_labels() {
        record_file("python", Kind::Security, 42, false);
        let text = connector_kit::metrics::encode_prometheus();
        for line in [
            "# TYPE switchboard_code_files_analyzed_total counter",
            "switchboard_code_files_analyzed_total{language=\"python\",kind=\"security\"}",
            "switchboard_code_bytes_analyzed_total{language=\"python\",kind=\"security\"}",
            "switchboard_cache_requests_total{cache=\"findings\",backend=\"memory\",result=\"miss\"}",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
