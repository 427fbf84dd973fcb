//! The HTTP API.
//!
//! - `GET /healthz`: `ok` when the server is up (no token needed).
//! - `POST /api/v1/sql` (analyst, admin): `{"sql": "SELECT …"}` or
//!   `{"query": "calls_kpis", "params": {"from": "2026-01-01"}}`, optionally with
//!   `"format"` (`json`, `csv`, `arrow`) and `"max_rows"`; without `format` the `Accept`
//!   header decides (`text/csv`, `application/vnd.apache.arrow.stream`, else JSON). Ad hoc
//!   SQL is read-only. Results are cut at the row limit (`"truncated": true`, or the
//!   `X-Kefu-Truncated` header), a query running past the timeout is cancelled (504), and
//!   each query has its own memory limit. Errors are JSON: `{"error": …, "line": …,
//!   "column": …}` (the position in the SQL where the parser gives one).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kefu_sql::{Engine, EngineOptions, Format, QueryLibrary};
use kefu_storage::Warehouse;
use serde::Deserialize;

use crate::auth::{Denied, Right, Tokens};
use crate::config::SqlLimits;
use crate::metrics::{Metrics, RequestLabels};

/// What every request handler shares.
pub struct AppState {
    pub warehouse: Warehouse,
    /// What the offices deliver and by when.
    pub deliveries: kefu_ingest::deliveries::Schedule,
    pub tokens: Tokens,
    pub sql: SqlLimits,
    pub library: QueryLibrary,
    /// Queries run on their own runtime: DataFusion keeps its threads busy, and the
    /// server's must stay free to answer (health, timeouts, other requests).
    pub queries: tokio::runtime::Handle,
    pub metrics: Arc<Metrics>,
    /// The inbox and the ingest queue.
    pub ingest: Arc<crate::uploads::IngestContext>,
    /// The memory all queries draw from together (`total_memory_limit`).
    pub query_memory: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    /// Turns to run a query (`max_concurrent_queries`).
    pub query_turns: Arc<tokio::sync::Semaphore>,
}

/// How long a query waits for a turn before it is refused.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl AppState {
    /// The deliveries of the `days` data days up to yesterday (the warehouse's calendar).
    pub async fn recent_deliveries(
        &self,
        days: u32,
    ) -> Result<kefu_ingest::deliveries::DeliveryReport, kefu_ingest::IngestError> {
        let window = kefu_ingest::deliveries::DayWindow::Ending {
            until: "yesterday",
            days,
        };
        kefu_ingest::deliveries::in_warehouse(&self.warehouse, &self.deliveries, window).await
    }

    /// A turn to run a query, waiting up to 10 s for one; held until the query ends.
    pub async fn turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, String> {
        match tokio::time::timeout(TURN_WAIT, self.query_turns.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(format!(
                "the server is running its {} queries at once (max_concurrent_queries); try again shortly",
                self.sql.max_concurrent_queries
            )),
        }
    }

    /// A read-only session over the warehouse with the per-query memory limit, drawing on
    /// the server's shared pool: every query of the server (HTTP, Flight SQL, the
    /// dashboard) runs in one.
    pub async fn engine(&self) -> Result<Engine, kefu_sql::SqlError> {
        let options = EngineOptions {
            memory_limit: self.sql.memory_limit,
            bounds: self.sql.bounds,
            shared_pool: Some(self.query_memory.clone()),
            ..EngineOptions::default()
        };
        Engine::open(&self.warehouse, &options).await
    }
}

/// Why a streamed query stopped before its end.
#[derive(Debug)]
pub enum Interrupted {
    Failed(datafusion::error::DataFusionError),
    /// It ran past this timeout and was cancelled.
    TimedOut(std::time::Duration),
}

impl AppState {
    /// Runs `df` on the query runtime within `timeout`, holding `turn` until it ends,
    /// and records it in the metrics. Its batches arrive on the returned stream (two at a
    /// time at most: a slow client slows the query rather than filling memory); a failure
    /// or the timeout is the last item. A client that goes away stops it.
    pub fn stream(
        self: &Arc<Self>,
        df: datafusion::dataframe::DataFrame,
        turn: tokio::sync::OwnedSemaphorePermit,
        timeout: std::time::Duration,
    ) -> impl futures::Stream<Item = Result<RecordBatch, Interrupted>> + Send + 'static {
        use futures::StreamExt;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, Interrupted>>(2);
        let state = self.clone();
        self.queries.spawn(async move {
            let _turn = turn;
            let started = std::time::Instant::now();
            let deadline = tokio::time::Instant::now() + timeout;
            let run = async {
                let mut stream = kefu_sql::execute_cancellable(df)
                    .await
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                let mut rows = 0u64;
                while let Some(batch) = stream.next().await {
                    // An operator that never pauses is stopped here, between batches
                    // (the timeout below stops the others at their next pause).
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                    let batch = batch?;
                    rows += batch.num_rows() as u64;
                    if tx.send(Ok(batch)).await.is_err() {
                        break; // the client went away
                    }
                }
                Ok::<_, datafusion::error::DataFusionError>(Some(rows))
            };
            let seconds = || started.elapsed().as_secs_f64();
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(Some(rows))) => state.metrics.query("ok", seconds(), rows),
                Ok(Err(e)) => {
                    state.metrics.query("error", seconds(), 0);
                    let _ = tx.send(Err(Interrupted::Failed(e))).await;
                }
                Ok(Ok(None)) | Err(_) => {
                    state.metrics.query("timeout", seconds(), 0);
                    let _ = tx.send(Err(Interrupted::TimedOut(timeout))).await;
                }
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/sql", post(sql))
        .route(
            "/api/v1/uploads",
            post(crate::upload_api::receive).get(crate::upload_api::list),
        )
        .route("/api/v1/uploads/{id}", get(crate::upload_api::status))
        .route("/api/v1/whoami", get(crate::console::whoami))
        .route("/api/v1/queries", get(crate::console::queries))
        .route("/api/v1/dashboard", get(crate::console::dashboard))
        .route("/api/v1/deliveries", get(crate::console::deliveries))
        .route("/", get(crate::console::root))
        .route("/console/", get(crate::console::home))
        .route("/console/upload", get(crate::console::upload_page))
        .route("/console/sql", get(crate::console::sql_page))
        .route("/console/dashboard", get(crate::console::dashboard_page))
        .route("/console/console.js", get(crate::console::script))
        .route("/console/console.css", get(crate::console::style))
        .route(
            "/api/v1/uploads/{id}/rejects.csv",
            get(crate::upload_api::rejects),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.encode();
    // The deliveries of the last seven data days, as gauges per region (none when the
    // ledger cannot be read: the scrape still answers).
    match state.recent_deliveries(7).await {
        Ok(report) => {
            let at = text.rfind("# EOF").unwrap_or(text.len());
            text.insert_str(at, &crate::metrics::delivery_gauges(&report));
        }
        Err(e) => tracing::warn!(error = %e, "deliveries for /metrics"),
    }
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Gives every request an id (the caller's `X-Request-Id` when it is a plain token,
/// else a new UUID), logs it with its route, status and time, counts it, and returns the
/// id in the response.
async fn track(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: status.as_u16().to_string(),
        })
        .inc();
    tracing::info!(parent: &span, status = status.as_u16(), seconds = started.elapsed().as_secs_f64(), "request");
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// A JSON error response.
pub(crate) fn error(status: StatusCode, message: &str, position: Option<(u64, u64)>) -> Response {
    let mut body = serde_json::json!({ "error": message });
    if let Some((line, column)) = position {
        body["line"] = line.into();
        body["column"] = column.into();
    }
    (status, axum::Json(body)).into_response()
}

pub(crate) fn denied(d: Denied) -> Response {
    match d {
        Denied::Unauthenticated => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or unknown token (Authorization: Bearer <token>)",
                None,
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Denied::Forbidden => error(
            StatusCode::FORBIDDEN,
            "this token's role may not do that",
            None,
        ),
    }
}

/// "… at Line: 3, Column: 14" in a parser message → (3, 14).
fn sql_position(message: &str) -> Option<(u64, u64)> {
    let after = |key: &str| -> Option<u64> {
        let rest = &message[message.find(key)? + key.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((after("Line: ")?, after("Column: ")?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: Option<String>,
    query: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
    format: Option<String>,
    max_rows: Option<usize>,
    /// CSV for Excel: a UTF-8 byte-order mark first (the console's downloads ask for it).
    #[serde(default)]
    bom: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultFormat {
    Json,
    /// CSV for people: text cells that look like formulas get a leading `'`.
    Csv,
    /// CSV for people opening it in Excel: as `Csv`, after a byte-order mark
    /// (`"bom": true`).
    CsvBom,
    /// CSV for machines: text cells as they are (`"format": "csv-raw"`).
    CsvRaw,
    Arrow,
    /// An Excel workbook (`"format": "xlsx"`).
    Xlsx,
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

fn result_format(requested: Option<&str>, headers: &HeaderMap) -> Result<ResultFormat, String> {
    match requested {
        Some("json") => Ok(ResultFormat::Json),
        Some("csv") => Ok(ResultFormat::Csv),
        Some("csv-raw") => Ok(ResultFormat::CsvRaw),
        Some("arrow") => Ok(ResultFormat::Arrow),
        Some("xlsx") => Ok(ResultFormat::Xlsx),
        Some(other) => Err(format!(
            "format '{other}': use json, csv, csv-raw, arrow or xlsx"
        )),
        None => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Ok(if accept.contains(ARROW_STREAM) {
                ResultFormat::Arrow
            } else if accept.contains(XLSX) {
                ResultFormat::Xlsx
            } else if accept.contains("text/csv") {
                ResultFormat::Csv
            } else {
                ResultFormat::Json
            })
        }
    }
}

async fn sql(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match state.tokens.authorize(auth, Right::Query) {
        Ok(p) => p,
        Err(d) => return denied(d),
    };
    // The body is read only for a known token, and only as far as SQL may be long.
    let limit = state.sql.bounds.max_bytes.saturating_mul(2).max(64 << 10);
    let read = tokio::time::timeout(crate::BODY_IDLE_TIMEOUT, axum::body::to_bytes(body, limit));
    let body = match read.await {
        Ok(Ok(body)) => body,
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request's body did not arrive within {} s",
                    crate::BODY_IDLE_TIMEOUT.as_secs()
                ),
                None,
            );
        }
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request is larger than {limit} bytes, or was cut off"),
                None,
            );
        }
    };
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body is not a valid request: {e} (send {{\"sql\": \"…\"}} or {{\"query\": \"name\", \"params\": {{…}}}})"
                ),
                None,
            );
        }
    };
    let format = match result_format(request.format.as_deref(), &headers) {
        Ok(ResultFormat::Csv) if request.bom => ResultFormat::CsvBom,
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e, None),
    };
    let text = match (&request.sql, &request.query) {
        (Some(sql), None) => sql.clone(),
        (None, Some(name)) => {
            let params: Vec<(String, String)> = request
                .params
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), value)
                })
                .collect();
            match state.library.get(name).and_then(|q| q.render(&params)) {
                Ok(sql) => sql,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), None),
            }
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of `sql` and `query`",
                None,
            );
        }
    };
    let max_rows = request
        .max_rows
        .map_or(state.sql.max_rows, |n| n.min(state.sql.max_rows));
    let started = std::time::Instant::now();
    let turn = match state.turn().await {
        Ok(turn) => turn,
        Err(e) => {
            state.metrics.query("busy", 0.0, 0);
            return error(StatusCode::SERVICE_UNAVAILABLE, &e, None);
        }
    };
    let mut task = state.queries.spawn({
        let state = state.clone();
        async move {
            let _turn = turn;
            run(&state, &text, Some(max_rows)).await
        }
    });
    let outcome = match tokio::time::timeout(state.sql.timeout, &mut task).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(join)) => Ok(Err(format!("the query failed: {join}"))),
        Err(elapsed) => {
            // Dropping the task's streams stops DataFusion's work at its next yield.
            task.abort();
            Err(elapsed)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (schema, batches, truncated) = match outcome {
        Err(_) => {
            state.metrics.query("timeout", seconds, 0);
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the query ran longer than {} s and was cancelled",
                    state.sql.timeout.as_secs_f64()
                ),
                None,
            );
        }
        Ok(Err(message)) => {
            state.metrics.query("error", seconds, 0);
            let position = sql_position(&message);
            return error(StatusCode::BAD_REQUEST, &message, position);
        }
        Ok(Ok(r)) => r,
    };
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    state.metrics.query("ok", seconds, rows as u64);
    tracing::info!(
        token = %principal.name,
        rows,
        truncated,
        seconds,
        "sql"
    );
    respond(format, schema, &batches, truncated)
}

/// Runs `sql` to at most `max_rows` rows (all with `None`); says whether there were more.
pub(crate) async fn run(
    state: &AppState,
    sql: &str,
    max_rows: Option<usize>,
) -> Result<(SchemaRef, Vec<RecordBatch>, bool), String> {
    let engine = state.engine().await.map_err(|e| e.to_string())?;
    let mut df = engine.sql(sql).await.map_err(|e| e.to_string())?;
    if let Some(max_rows) = max_rows {
        // One row more than allowed tells whether the result was cut.
        df = df
            .limit(0, Some(max_rows.saturating_add(1)))
            .map_err(|e| e.to_string())?;
    }
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    // The handler answers 504 at the timeout and aborts this task, which stops a plan at
    // its next pause; an operator that never pauses (a nested-loop join emitting batch
    // after batch) is stopped here instead, between two of its batches.
    let deadline = tokio::time::Instant::now() + state.sql.timeout;
    let failed = |e| kefu_sql::SqlError::from(e).to_string();
    let mut stream = kefu_sql::execute_cancellable(df)
        .await
        .map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        if tokio::time::Instant::now() >= deadline {
            return Err("the query ran past the timeout and was cancelled".into());
        }
        batches.push(batch.map_err(failed)?);
    }
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let truncated = max_rows.is_some_and(|m| total > m);
    if let Some(max_rows) = max_rows.filter(|_| truncated) {
        let mut keep = max_rows;
        batches = batches
            .into_iter()
            .filter_map(|b| {
                let n = b.num_rows().min(keep);
                keep -= n;
                (n > 0).then(|| b.slice(0, n))
            })
            .collect();
    }
    Ok((schema, batches, truncated))
}

fn respond(
    format: ResultFormat,
    schema: SchemaRef,
    batches: &[RecordBatch],
    truncated: bool,
) -> Response {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let encoded = match format {
        ResultFormat::Json => kefu_sql::output::encode(Format::Json, schema.clone(), batches)
            .map(|array| {
                let columns: Vec<serde_json::Value> = schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() }))
                    .collect();
                // The rows are already JSON; splice them in rather than parse them again.
                let array = if array.is_empty() { b"[]".to_vec() } else { array };
                let mut body = format!(
                    "{{\"columns\":{},\"row_count\":{rows},\"truncated\":{truncated},\"rows\":",
                    serde_json::Value::Array(columns)
                )
                .into_bytes();
                body.extend_from_slice(&array);
                body.push(b'}');
                (body, "application/json")
            })
            .map_err(|e| e.to_string()),
        ResultFormat::Csv | ResultFormat::CsvBom | ResultFormat::CsvRaw => {
            let style = kefu_sql::output::TableStyle {
                raw_csv: format == ResultFormat::CsvRaw,
                bom: format == ResultFormat::CsvBom,
                ..Default::default()
            };
            kefu_sql::output::encode_styled(Format::Csv, schema, batches, style)
                .map(|b| (b, "text/csv; charset=utf-8"))
                .map_err(|e| e.to_string())
        }
        ResultFormat::Xlsx => kefu_sql::output::encode(Format::Xlsx, schema, batches)
            .map(|b| (b, XLSX))
            .map_err(|e| e.to_string()),
        ResultFormat::Arrow => {
            let mut out = Vec::new();
            let written = (|| {
                let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema)?;
                for b in batches {
                    w.write(b)?;
                }
                w.finish()
            })();
            written.map(|()| (out, ARROW_STREAM)).map_err(|e| e.to_string())
        }
    };
    match encoded {
        Ok((bytes, content_type)) => {
            let mut response = Response::new(Body::from(bytes));
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert("x-kefu-rows", HeaderValue::from(rows));
            h.insert(
                "x-kefu-truncated",
                HeaderValue::from_static(if truncated { "true" } else { "false" }),
            );
            response
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding the result: {e}"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_from_parser_messages() {
        assert_eq!(
            sql_position(
                "sql parser error: Expected: end of statement, found: FORM at Line: 2, Column: 10"
            ),
            Some((2, 10))
        );
        assert_eq!(sql_position("No field named nope"), None);
    }
}
