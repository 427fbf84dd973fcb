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

/// The delivery gauges of `report`, one series per region, in the text format: missing,
/// late and volume-flagged data days, and the newest arrival.
pub fn delivery_gauges(report: &kefu_ingest::deliveries::DeliveryReport) -> String {
    use kefu_ingest::deliveries::DeliveryStatus;
    use std::fmt::Write;
    let days = report.days.len() / report.regions.len().max(1);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: &dyn Fn(&str) -> Option<f64>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for region in &report.regions {
            if let Some(v) = value(region) {
                // Region names come from file names: keep the label value well formed.
                let label: String = region
                    .chars()
                    .filter(|c| !matches!(c, '"' | '\\' | '\n'))
                    .collect();
                let _ = writeln!(out, "{name}{{region=\"{label}\"}} {v}");
            }
        }
    };
    let count = |region: &str, pick: &dyn Fn(&kefu_ingest::deliveries::DayDelivery) -> bool| {
        report
            .days
            .iter()
            .filter(|d| d.region == region && pick(d))
            .count() as f64
    };
    gauge(
        "kefu_deliveries_missing",
        &format!("Data days of the last {days} whose delivery is past due and has not arrived."),
        &|r| Some(count(r, &|d| d.status == DeliveryStatus::Missing)),
    );
    gauge(
        "kefu_deliveries_late",
        &format!("Data days of the last {days} whose delivery arrived after its due time."),
        &|r| Some(count(r, &|d| d.status == DeliveryStatus::Late)),
    );
    gauge(
        "kefu_deliveries_volume_flagged",
        &format!("Data days of the last {days} whose volume is far from the region's usual."),
        &|r| Some(count(r, &|d| d.volume.is_some())),
    );
    gauge(
        "kefu_delivery_last_arrival_timestamp_seconds",
        "When the region's newest delivery of these days arrived (Unix time).",
        &|r| {
            report
                .days
                .iter()
                .filter(|d| d.region == r)
                .filter_map(|d| d.files.iter().map(|f| f.arrived).max())
                .max()
                .map(|t| t.timestamp() as f64)
        },
    );
    out
}
