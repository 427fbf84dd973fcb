//! `/metrics` in the Prometheus text format, and the counters behind it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

/// The server's counters.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub queries: Family<QueryLabels, Counter>,
    pub query_seconds: Histogram,
    pub rows_returned: Counter,
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
        Metrics {
            registry,
            requests,
            queries,
            query_seconds,
            rows_returned,
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

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
