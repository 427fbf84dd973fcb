//! The upload endpoints (office and admin tokens).
//!
//! - `POST /api/v1/uploads?name=beijing_20260301.zip` with the file as the body: `202`
//!   and the upload's record once the file is on disk (fsynced) and queued; `200` with
//!   `"duplicate": true` when its content was uploaded or ingested before; `413` when it
//!   is larger than `max_bytes` (at once when `Content-Length` says so). An admin may add
//!   `&region=R` to restrict the upload to one region; an office's uploads always are
//!   restricted to its own.
//! - `GET /api/v1/uploads`: the caller's uploads (an office's region, or all for an
//!   admin), newest first.
//! - `GET /api/v1/uploads/{id}`: status (`queued`, `ingesting`, `done`, `failed`) and
//!   counts (`landed`, `rejected`, `duplicates`).
//! - `GET /api/v1/uploads/{id}/rejects.csv`: the upload's rejected records with line,
//!   column, reason and the raw record.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use crate::auth::{Denied, Principal, Right, Role};
use crate::http::{AppState, denied, error};
use crate::uploads::{Accepted, DuplicateOf, Status, Upload, UploadCounts, accept, find_in_ledger};

/// Why a caller gets no upload.
enum Refused {
    Denied(Denied),
    NotFound(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Denied(d) => denied(d),
            Refused::NotFound(id) => error(StatusCode::NOT_FOUND, &format!("no upload {id}"), None),
        }
    }
}

fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, Refused> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state
        .tokens
        .authorize(auth, Right::Upload)
        .map_err(Refused::Denied)
}

/// The upload's record as the API shows it, with its links.
fn shown(upload: &Upload) -> serde_json::Value {
    let mut value = serde_json::to_value(upload).expect("an upload serialises");
    value["links"] = serde_json::json!({
        "status": format!("/api/v1/uploads/{}", upload.id),
        "rejects": format!("/api/v1/uploads/{}/rejects.csv", upload.id),
    });
    value
}

#[derive(Debug, Deserialize)]
pub struct UploadParams {
    name: Option<String>,
    region: Option<String>,
}

struct Received {
    bytes: u64,
    sha256: String,
    content_hash: String,
}

enum ReceiveError {
    TooLarge,
    /// Nothing arrived for [`crate::BODY_IDLE_TIMEOUT`].
    Stalled,
    Client(String),
    Io(String),
}

/// Streams `body` to `<dir>/.<name>.partial`, hashing it, then fsyncs it and renames it
/// to `<dir>/<name>`.
async fn receive_body(
    dir: &Path,
    name: &str,
    body: Body,
    limit: u64,
) -> Result<Received, ReceiveError> {
    let io = |what: &str, e: std::io::Error| ReceiveError::Io(format!("{what}: {e}"));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io("creating the upload's directory", e))?;
    let partial = dir.join(format!(".{name}.partial"));
    let file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| io("creating the upload's file", e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut sha256 = sha2::Sha256::new();
    let mut blake3 = blake3::Hasher::new();
    let mut bytes = 0u64;
    let mut stream = body.into_data_stream();
    loop {
        let Ok(next) = tokio::time::timeout(crate::BODY_IDLE_TIMEOUT, stream.next()).await else {
            return Err(ReceiveError::Stalled);
        };
        let Some(chunk) = next else {
            break;
        };
        let chunk =
            chunk.map_err(|e| ReceiveError::Client(format!("the upload was cut off: {e}")))?;
        bytes += chunk.len() as u64;
        if bytes > limit {
            return Err(ReceiveError::TooLarge);
        }
        sha256.update(&chunk);
        blake3.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| io("writing the upload", e))?;
    }
    if bytes == 0 {
        return Err(ReceiveError::Client("the upload is empty".into()));
    }
    out.flush().await.map_err(|e| io("writing the upload", e))?;
    let file = out.into_inner();
    file.sync_all()
        .await
        .map_err(|e| io("flushing the upload to the disk", e))?;
    drop(file);
    tokio::fs::rename(&partial, dir.join(name))
        .await
        .map_err(|e| io("moving the upload into the inbox", e))?;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(|e| ReceiveError::Io(e.to_string()))?
        .map_err(|e| io("flushing the inbox directory", e))?;
    Ok(Received {
        bytes,
        sha256: format!("{:x}", sha256.finalize()),
        content_hash: blake3.finalize().to_hex().to_string(),
    })
}

fn too_large(limit: u64) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "the upload is larger than the server's limit of {} (max_bytes in [uploads])",
            bytesize::ByteSize(limit)
        ),
        None,
    )
}

pub async fn receive(
    State(state): State<Arc<AppState>>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let principal = match principal(&state, &headers) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let metrics = &state.metrics;
    let region = match principal.role {
        Role::Office => {
            if params.region.is_some() && params.region != principal.region {
                metrics.upload("refused");
                return error(
                    StatusCode::FORBIDDEN,
                    "an office uploads for its own region only",
                    None,
                );
            }
            principal.region.clone()
        }
        _ => params.region.clone(),
    };
    let name = match crate::uploads::valid_file_name(params.name.as_deref().unwrap_or("")) {
        Ok(n) => n.to_string(),
        Err(e) => {
            metrics.upload("refused");
            return error(StatusCode::BAD_REQUEST, &e, None);
        }
    };
    let uploads = &state.ingest.uploads;
    let limit = uploads.settings.max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        // Answered before a byte of the body is read.
        metrics.upload("too_large");
        let mut r = too_large(limit);
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let id = uuid::Uuid::now_v7().to_string();
    let dir = uploads.inbox.upload_dir(&id);
    let received = match receive_body(&dir, &name, body, limit).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return match e {
                ReceiveError::TooLarge => {
                    metrics.upload("too_large");
                    too_large(limit)
                }
                ReceiveError::Stalled => {
                    metrics.upload("refused");
                    error(
                        StatusCode::REQUEST_TIMEOUT,
                        &format!(
                            "the upload sent nothing for {} s and was dropped; send it again",
                            crate::BODY_IDLE_TIMEOUT.as_secs()
                        ),
                        None,
                    )
                }
                ReceiveError::Client(m) => {
                    metrics.upload("refused");
                    error(StatusCode::BAD_REQUEST, &m, None)
                }
                ReceiveError::Io(m) => {
                    tracing::error!(upload = %id, error = %m, "cannot store an upload");
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("the server could not store the upload: {m}"),
                        None,
                    )
                }
            };
        }
    };
    // Content seen before, in the warehouse or (see `accept`) in the inbox, is not
    // ingested again. An office's upload lands only its region's rows, so the ledger
    // knows it by its bytes and that region: the same file from another office, or from
    // an admin, is another source.
    let fingerprint =
        kefu_ingest::ingest::source_fingerprint(&received.content_hash, region.as_deref());
    let mut duplicate_of = match state.warehouse.ledger().await {
        Ok(ledger) => find_in_ledger(&ledger, &fingerprint).map(|(b, _)| DuplicateOf {
            // The upload that brought it, when it came through the server.
            upload: uploads.inbox.find_content(&fingerprint).map(|u| u.id),
            batch: Some(b.seq),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the ledger; the ingest will still skip known content");
            None
        }
    };
    let mut queued = None;
    if duplicate_of.is_none() {
        let upload = Upload {
            id: id.clone(),
            file_name: name.clone(),
            region,
            token: principal.name.clone(),
            bytes: received.bytes,
            sha256: received.sha256.clone(),
            content_hash: fingerprint,
            received_at: chrono::Utc::now(),
            status: Status::Queued,
            duplicate_of: None,
            batch_id: None,
            batch_seq: None,
            counts: UploadCounts::default(),
            rejects_by_reason: Default::default(),
            error: None,
            finished_at: None,
            attempts: 0,
        };
        match accept(&state.ingest, upload) {
            Ok(Accepted::Queued(u)) => queued = Some(*u),
            Ok(Accepted::Duplicate(d)) => duplicate_of = Some(d),
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                tracing::error!(upload = %id, error = %e, "cannot record an upload");
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("the server could not record the upload: {e}"),
                    None,
                );
            }
        }
    }
    let Some(upload) = queued else {
        // Not queued: a duplicate (of the ledger, or of an upload in the inbox).
        let _ = tokio::fs::remove_dir_all(&dir).await;
        metrics.upload("duplicate");
        tracing::info!(token = %principal.name, file = %name, "duplicate upload");
        return (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "duplicate": true,
                "duplicate_of": duplicate_of,
                "file_name": name,
                "bytes": received.bytes,
                "sha256": received.sha256,
                "message": "this content was uploaded or ingested before; it is not ingested again",
            })),
        )
            .into_response();
    };
    metrics.upload("accepted");
    metrics.upload_bytes.inc_by(upload.bytes);
    tracing::info!(upload = %id, token = %principal.name, file = %upload.file_name, bytes = upload.bytes, "upload accepted");
    let mut response = (StatusCode::ACCEPTED, axum::Json(shown(&upload))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/uploads/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The upload, if the caller may see it (an office sees its own region's only).
fn visible(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Principal, Upload), Refused> {
    let principal = principal(state, headers)?;
    state
        .ingest
        .uploads
        .inbox
        .get(id)
        .filter(|u| principal.role != Role::Office || u.region == principal.region)
        .map(|u| (principal, u))
        .ok_or_else(|| Refused::NotFound(id.to_string()))
}

pub async fn status(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match visible(&state, &headers, &id) {
        Ok((_, upload)) => axum::Json(shown(&upload)).into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let principal = match principal(&state, &headers) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let region = match principal.role {
        Role::Office => principal.region.as_deref(),
        _ => None,
    };
    let uploads: Vec<serde_json::Value> = state
        .ingest
        .uploads
        .inbox
        .list(region, 500)
        .iter()
        .map(shown)
        .collect();
    axum::Json(serde_json::json!({ "uploads": uploads })).into_response()
}

pub async fn rejects(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let upload = match visible(&state, &headers, &id) {
        Ok((_, u)) => u,
        Err(r) => return r.into_response(),
    };
    // Batch ids are made by the ingest (time and hex), so they are safe in a literal; an
    // upload without a batch has no rejects, and the query gives just the header.
    let batch = upload
        .batch_id
        .unwrap_or_default()
        .replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-'), "");
    let sql = format!(
        "SELECT source, member, line, \"column\", reason, detail, raw FROM _rejects \
         WHERE batch_id = '{batch}' ORDER BY source, member, line"
    );
    let task = state.queries.spawn({
        let state = state.clone();
        async move { crate::http::run(&state, &sql, None).await }
    });
    let (schema, batches) = match task.await {
        // The office sees the name it uploaded, not the server's inbox path.
        Ok(Ok((schema, batches, _))) => match with_source_name(&batches, &upload.file_name) {
            Ok(batches) => (schema, batches),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
        },
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e, None),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    };
    match kefu_sql::output::encode(kefu_sql::Format::Csv, schema, &batches) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!(
                "attachment; filename=\"rejects-{}.csv\"",
                upload.id
            )) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    }
}

/// `batches` with their first column (the source) replaced by `name`.
fn with_source_name(
    batches: &[arrow::record_batch::RecordBatch],
    name: &str,
) -> Result<Vec<arrow::record_batch::RecordBatch>, arrow::error::ArrowError> {
    batches
        .iter()
        .map(|batch| {
            let mut columns = batch.columns().to_vec();
            if let Some(first) = columns.first_mut() {
                let names = arrow::array::StringArray::from(vec![name; batch.num_rows()]);
                *first = arrow::compute::cast(&names, first.data_type())?;
            }
            arrow::record_batch::RecordBatch::try_new(batch.schema(), columns)
        })
        .collect()
}
