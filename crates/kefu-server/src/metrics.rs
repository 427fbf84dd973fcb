//! `/metrics` in the Prometheus text format, and the counters behind it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// ok, error or timeout.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UploadLabels {
    /// accepted, duplicate, too_large, refused (bad request), done or failed.
    pub status: String,
}

/// The server's counters.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub queries: Family<QueryLabels, Counter>,
    pub query_seconds: Histogram,
    pub rows_returned: Counter,
    pub uploads: Family<UploadLabels, Counter>,
    pub upload_bytes: Counter,
    pub rows_landed: Counter,
    pub rows_rejected: Counter,
    pub queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kefu");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "sql_queries",
            "SQL queries over HTTP by outcome",
            queries.clone(),
        );
        let query_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "sql_query_seconds",
            "Time to answer a SQL query",
            query_seconds.clone(),
        );
        let rows_returned = Counter::default();
        registry.register(
            "sql_rows_returned",
            "Rows returned by SQL queries",
            rows_returned.clone(),
        );
        let uploads = Family::<UploadLabels, Counter>::default();
        registry.register(
            "uploads",
            "Uploads by status: accepted, duplicate, too_large, refused when received; done or failed when ingested",
            uploads.clone(),
        );
        let upload_bytes = Counter::default();
        registry.register(
            "upload_bytes",
            "Bytes of accepted uploads",
            upload_bytes.clone(),
        );
        let rows_landed = Counter::default();
        registry.register(
            "rows_landed",
            "Rows landed by the ingest of uploads",
            rows_landed.clone(),
        );
        let rows_rejected = Counter::default();
        registry.register(
            "rows_rejected",
            "Records rejected by the ingest of uploads",
            rows_rejected.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "ingest_queue_depth",
            "Uploads waiting for the ingest queue",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            requests,
            queries,
            query_seconds,
            rows_returned,
            uploads,
            upload_bytes,
            rows_landed,
            rows_rejected,
            queue_depth,
        }
    }
}

impl Metrics {
    pub fn query(&self, outcome: &str, seconds: f64, rows: u64) {
        self.queries
            .get_or_create(&QueryLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        self.query_seconds.observe(seconds);
        self.rows_returned.inc_by(rows);
    }

    /// Counts an upload under `status` (see [`UploadLabels`]).
    pub fn upload(&self, status: &str) {
        self.uploads
            .get_or_create(&UploadLabels {
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts an upload whose ingest finished.
    pub fn upload_finished(&self, upload: &crate::uploads::Upload) {
        self.upload(upload.status.name());
        self.rows_landed.inc_by(upload.counts.landed);
        self.rows_rejected.inc_by(upload.counts.rejected);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
