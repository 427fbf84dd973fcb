//! Uploads from regional offices: received into an inbox on disk, then ingested by a
//! queue, each upload as its own batch.
//!
//! An upload is streamed to `<inbox>/<id>/.<name>.partial` while its SHA-256 (reported to
//! the office) and BLAKE3 (the ledger's content hash) are computed, flushed to the disk
//! and renamed to `<inbox>/<id>/<name>`; `<inbox>/<id>/upload.json` then records it as
//! queued, and only then is the office answered `202`. The queue ingests at most
//! `concurrency` uploads at a time and those of one region in the order they arrived.
//! Rows of another region than the office's are rejected (`region_not_allowed`).
//!
//! Exactly once: a batch commits through the ledger, which knows every source by its
//! content. At start, uploads still queued or ingesting are queued again; one whose batch
//! had committed before the stop is found in the ledger and finished from it, not
//! ingested twice.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use kefu_ingest::{IngestOptions, Profile};
use kefu_storage::{OperationRecord, Warehouse};
use serde::{Deserialize, Serialize};

use crate::ServerError;
use crate::metrics::Metrics;

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Ingesting,
    Done,
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Ingesting => "ingesting",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }
}

/// What became of an upload's records: each is new, an update of a record in the
/// warehouse, unchanged (identical to the version kept), stale (older than it) or
/// rejected. `landed` (new + updated) and `duplicates` (unchanged + stale) sum them up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadCounts {
    pub records: u64,
    #[serde(default)]
    pub new: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub unchanged: u64,
    #[serde(default)]
    pub stale: u64,
    pub rejected: u64,
    pub landed: u64,
    pub duplicates: u64,
}

impl From<kefu_storage::TableCounts> for UploadCounts {
    fn from(c: kefu_storage::TableCounts) -> Self {
        UploadCounts {
            records: c.records,
            new: c.new,
            updated: c.updated,
            unchanged: c.unchanged,
            stale: c.stale,
            rejected: c.rejected,
            landed: c.new + c.updated,
            duplicates: c.unchanged + c.stale,
        }
    }
}

/// What an upload repeats: an earlier upload, or a batch of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateOf {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
}

/// One upload, as `upload.json` keeps it and the status endpoint shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub file_name: String,
    /// The office's region (its rows only land), or none for an admin's upload.
    pub region: Option<String>,
    /// The name of the token that sent it.
    pub token: String,
    pub bytes: u64,
    pub sha256: String,
    /// How the ledger knows the source: BLAKE3 of the bytes, and of the region for an
    /// office's upload (`kefu_ingest::ingest::source_fingerprint`).
    pub content_hash: String,
    pub received_at: DateTime<Utc>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<DuplicateOf>,
    #[serde(default)]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub batch_seq: Option<u64>,
    #[serde(default)]
    pub counts: UploadCounts,
    #[serde(default)]
    pub rejects_by_reason: BTreeMap<String, u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times its ingest was started; one the server stopped during this often is
    /// quarantined rather than tried again.
    #[serde(default)]
    pub attempts: u32,
}

/// Ingest attempts an upload gets: a start after a crash tries it again (the crash may
/// have been a power cut), but an upload whose ingest keeps ending the process is
/// quarantined instead of killing every start.
pub const MAX_INGEST_ATTEMPTS: u32 = 3;

/// The `[uploads]` settings.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// The inbox; `None` means `<warehouse>/_inbox` (local warehouses only).
    pub dir: Option<PathBuf>,
    /// Larger uploads are refused with 413.
    pub max_bytes: u64,
    /// Uploads ingested at the same time at most.
    pub concurrency: usize,
    /// An upload whose rejected share is higher fails and lands nothing.
    pub max_reject_ratio: f64,
    /// How far a compressed upload may expand.
    pub decompression: kefu_ingest::DecompressionLimits,
    /// Failed uploads are deleted from the inbox this long after they failed.
    pub failed_retention: std::time::Duration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            dir: None,
            max_bytes: 1 << 30,
            concurrency: 2,
            max_reject_ratio: kefu_ingest::ingest::DEFAULT_MAX_REJECT_RATIO,
            decompression: kefu_ingest::DecompressionLimits::default(),
            failed_retention: std::time::Duration::from_secs(30 * 86_400),
        }
    }
}

const RECORD: &str = "upload.json";
/// The file that marks a directory as kefu's inbox.
const MARKER: &str = ".kefu-inbox";

/// A file kefu writes while it receives an upload (`.<name>.partial`).
fn is_partial(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".partial")
}

/// Whether `dir` holds nothing but partial files (an upload never acknowledged).
fn only_partials(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            e.file_type().is_ok_and(|t| t.is_file()) && is_partial(&e.file_name().to_string_lossy())
        })
    })
}

/// Makes `dir` kefu's inbox, or refuses it: marked already, or empty, or holding only
/// uploads (an inbox of a kefu that did not mark its inboxes yet).
fn claim_inbox(dir: &Path) -> Result<(), ServerError> {
    let marker = dir.join(MARKER);
    if marker.exists() {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("cannot read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read", dir, e))?;
        let path = entry.path();
        let is_upload = path.is_dir() && (path.join(RECORD).is_file() || only_partials(&path));
        if !is_upload {
            return Err(ServerError::Config {
                path: dir.display().to_string(),
                line: 0,
                message: format!(
                    "[uploads] dir holds {}, which is not an upload: give the uploads a \
                     directory of their own (a new or empty one); kefu deletes \
                     unacknowledged uploads in it and must never touch anything else",
                    path.display()
                ),
            });
        }
    }
    kefu_storage::atomic::write(&marker, b"kefu uploads inbox\n")
        .map_err(|e| io_error("cannot write", &marker, e))
}

/// The uploads on disk, and an index of them in memory.
pub struct Inbox {
    dir: PathBuf,
    uploads: Mutex<BTreeMap<String, Upload>>,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ServerError {
    ServerError::io(format_args!("{what} {}", path.display()), e)
}

/// A file name an office may give: a plain name (no directories) of a data file or
/// archive the ingest reads.
pub fn valid_file_name(name: &str) -> Result<&str, String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        // Control characters (a newline would forge log lines) are no part of a name.
        && !name.chars().any(char::is_control)
        && name != RECORD;
    if !ok {
        return Err(format!(
            "'{name}' is not a plain file name (give ?name=beijing_20260301.zip)"
        ));
    }
    if !kefu_ingest::source::is_data_file(Path::new(name)) {
        return Err(format!(
            "'{name}' is not a file kefu ingests (.csv .tsv .txt .jsonl .xlsx .xlsm .xlsb .xls .ods .zip .tar .tar.gz .tgz, optionally .gz or .zst)"
        ));
    }
    Ok(name)
}

impl Inbox {
    /// Opens (creating) the inbox. Uploads never acknowledged (no `upload.json`, only a
    /// partial file) are deleted; the ids of those still queued or ingesting are
    /// returned, oldest first, to be queued again.
    ///
    /// A directory that holds anything kefu did not put there (the warehouse, `.`) is
    /// refused: an inbox is marked by a `.kefu-inbox` file, and an unmarked one is taken
    /// only when empty or holding nothing but uploads.
    pub fn open(dir: &Path) -> Result<(Inbox, Vec<String>), ServerError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
        claim_inbox(dir)?;
        let mut uploads = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| io_error("cannot read", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("cannot read", dir, e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let record = path.join(RECORD);
            match std::fs::read(&record) {
                Ok(bytes) => {
                    let upload: Upload = serde_json::from_slice(&bytes).map_err(|e| {
                        ServerError::io(
                            format_args!("{}: not an upload record", record.display()),
                            e,
                        )
                    })?;
                    // A partial left by a crash while the file was being received.
                    for f in std::fs::read_dir(&path)
                        .map_err(|e| io_error("cannot read", &path, e))?
                        .flatten()
                    {
                        if is_partial(&f.file_name().to_string_lossy()) {
                            let _ = std::fs::remove_file(f.path());
                        }
                    }
                    let upload = quarantine_if_tried_out(upload, &record)?;
                    uploads.insert(upload.id.clone(), upload);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if only_partials(&path) {
                        tracing::info!(path = %path.display(), "deleting an upload that was never acknowledged");
                        std::fs::remove_dir_all(&path)
                            .map_err(|e| io_error("cannot delete", &path, e))?;
                    } else {
                        tracing::warn!(path = %path.display(), "leaving a directory of the inbox that is not an upload");
                    }
                }
                Err(e) => return Err(io_error("cannot read", &record, e)),
            }
        }
        // In the order they were queued.
        let mut pending: Vec<&Upload> = uploads
            .values()
            .filter(|u| matches!(u.status, Status::Queued | Status::Ingesting))
            .collect();
        pending.sort_by_key(|u| (u.received_at, u.id.clone()));
        let resume = pending.iter().map(|u| u.id.clone()).collect();
        Ok((
            Inbox {
                dir: dir.to_path_buf(),
                uploads: Mutex::new(uploads),
            },
            resume,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes uploads that failed longer than `retention` before `now` (their file and
    /// record); returns how many.
    pub fn delete_failed(&self, retention: std::time::Duration, now: DateTime<Utc>) -> usize {
        let cutoff = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| now.checked_sub_signed(r))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut index = self.uploads.lock().expect("inbox lock");
        let old: Vec<String> = index
            .values()
            .filter(|u| u.status == Status::Failed && u.finished_at.is_some_and(|t| t < cutoff))
            .map(|u| u.id.clone())
            .collect();
        let mut deleted = 0;
        for id in old {
            let dir = self.dir.join(&id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    index.remove(&id);
                    deleted += 1;
                }
                Err(e) => tracing::warn!(upload = %id, error = %e, "cannot delete a failed upload"),
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted failed uploads past their retention");
        }
        deleted
    }

    pub fn upload_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn file_path(&self, upload: &Upload) -> PathBuf {
        self.upload_dir(&upload.id).join(&upload.file_name)
    }

    /// Writes `upload.json` durably, then updates the index.
    pub fn save(&self, upload: &Upload) -> Result<(), ServerError> {
        let path = self.upload_dir(&upload.id).join(RECORD);
        let mut index = self.uploads.lock().expect("inbox lock");
        write_record(&path, upload)?;
        index.insert(upload.id.clone(), upload.clone());
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Upload> {
        self.uploads.lock().expect("inbox lock").get(id).cloned()
    }

    /// Uploads, newest first; only `region`'s when given.
    pub fn list(&self, region: Option<&str>, limit: usize) -> Vec<Upload> {
        self.uploads
            .lock()
            .expect("inbox lock")
            .values()
            .rev()
            .filter(|u| region.is_none() || u.region.as_deref() == region)
            .take(limit)
            .cloned()
            .collect()
    }

    /// An upload with this content that has not failed.
    pub fn find_content(&self, content_hash: &str) -> Option<Upload> {
        self.uploads
            .lock()
            .expect("inbox lock")
            .values()
            .find(|u| u.content_hash == content_hash && u.status != Status::Failed)
            .cloned()
    }

    /// Uploads waiting or being ingested.
    pub fn pending(&self) -> usize {
        self.uploads
            .lock()
            .expect("inbox lock")
            .values()
            .filter(|u| matches!(u.status, Status::Queued | Status::Ingesting))
            .count()
    }
}

/// Marks an upload failed when the server stopped during each of its
/// [`MAX_INGEST_ATTEMPTS`] ingests, and records that; other uploads are returned as they
/// are.
fn quarantine_if_tried_out(mut upload: Upload, record: &Path) -> Result<Upload, ServerError> {
    if upload.status != Status::Ingesting || upload.attempts < MAX_INGEST_ATTEMPTS {
        return Ok(upload);
    }
    tracing::error!(
        upload = %upload.id,
        attempts = upload.attempts,
        "quarantining an upload whose ingest never finished"
    );
    upload.status = Status::Failed;
    upload.error = Some(format!(
        "quarantined: the server stopped during each of the {} attempts to ingest this \
         upload, so it is not tried again; check the file with `kefu check` and upload it \
         corrected",
        upload.attempts
    ));
    upload.finished_at = Some(Utc::now());
    write_record(record, &upload)?;
    Ok(upload)
}

/// Writes an upload's `upload.json` durably.
fn write_record(path: &Path, upload: &Upload) -> Result<(), ServerError> {
    let bytes = serde_json::to_vec_pretty(upload).expect("an upload serialises");
    kefu_storage::atomic::write(path, &bytes).map_err(|e| io_error("cannot write", path, e))
}

/// The batch and source of the ledger that hold `content_hash`.
pub fn find_in_ledger<'l>(
    ledger: &'l [OperationRecord],
    content_hash: &str,
) -> Option<(&'l OperationRecord, &'l kefu_storage::LedgerSource)> {
    let reverted = kefu_storage::maintain::reverted(ledger);
    ledger
        .iter()
        .filter(|b| !reverted.contains(&b.seq))
        .find_map(|b| {
            b.sources
                .iter()
                .find(|s| s.content_hash == content_hash)
                .map(|s| (b, s))
        })
}

/// Uploads, the queue that ingests them and what it needs.
pub struct Uploads {
    pub settings: UploadSettings,
    pub inbox: Inbox,
    /// Mapping profiles by token name (the built-in one for tokens without).
    pub profiles: HashMap<String, Profile>,
    queues: Mutex<HashMap<String, tokio::sync::mpsc::UnboundedSender<String>>>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Held while an upload is checked against the inbox, stamped, recorded and queued,
    /// so that `received_at` orders a region's uploads as its queue does.
    accepting: Mutex<()>,
}

impl Uploads {
    pub fn new(settings: UploadSettings, inbox: Inbox, profiles: HashMap<String, Profile>) -> Self {
        let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        Uploads {
            settings,
            inbox,
            profiles,
            queues: Mutex::new(HashMap::new()),
            permits,
            accepting: Mutex::new(()),
        }
    }
}

/// What the queue needs from the server.
pub struct IngestContext {
    pub warehouse: Warehouse,
    pub uploads: Uploads,
    pub metrics: Arc<Metrics>,
}

/// What became of a received upload.
pub enum Accepted {
    Queued(Box<Upload>),
    /// An upload in the inbox (not failed) has the same content.
    Duplicate(DuplicateOf),
}

/// Records a received upload as queued and queues it, unless the inbox has its content
/// already; stamps `received_at` in queue order.
pub fn accept(context: &Arc<IngestContext>, mut upload: Upload) -> Result<Accepted, ServerError> {
    let uploads = &context.uploads;
    let _order = uploads.accepting.lock().expect("accepting lock");
    if let Some(earlier) = uploads.inbox.find_content(&upload.content_hash) {
        return Ok(Accepted::Duplicate(DuplicateOf {
            upload: Some(earlier.id),
            batch: earlier.batch_seq,
        }));
    }
    upload.received_at = Utc::now();
    upload.status = Status::Queued;
    uploads.inbox.save(&upload)?;
    enqueue(context, &upload);
    Ok(Accepted::Queued(Box::new(upload)))
}

/// Queues an upload for ingest: after the uploads of its region queued before it, and
/// when one of the `concurrency` permits is free. Must be called in a Tokio runtime.
pub fn enqueue(context: &Arc<IngestContext>, upload: &Upload) {
    let key = upload.region.clone().unwrap_or_default();
    context.metrics.queue_depth.inc();
    let mut queues = context.uploads.queues.lock().expect("queue lock");
    let sender = queues.entry(key).or_insert_with(|| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let context = context.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "a region's queue worker lives as long as the server's runtime"
        )]
        tokio::spawn(async move {
            while let Some(id) = rx.recv().await {
                let permit = context.uploads.permits.clone().acquire_owned().await;
                context.metrics.queue_depth.dec();
                ingest_one(&context, &id).await;
                drop(permit);
            }
        });
        tx
    });
    // The receiver lives as long as the runtime; a send fails only while it shuts down,
    // and then the upload stays queued on disk for the next start.
    let _ = sender.send(upload.id.clone());
}

async fn ingest_one(context: &Arc<IngestContext>, id: &str) {
    let uploads = &context.uploads;
    let Some(mut upload) = uploads.inbox.get(id) else {
        return;
    };
    upload.status = Status::Ingesting;
    upload.attempts += 1;
    if let Err(e) = uploads.inbox.save(&upload) {
        tracing::error!(upload = %id, error = %e, "cannot record the upload as ingesting");
    }
    let started = std::time::Instant::now();
    // The ledger first: an upload whose batch committed before a stop is finished from
    // it, not ingested again.
    let ledger = context.warehouse.ledger().await;
    let done_before = ledger
        .as_ref()
        .ok()
        .and_then(|l| find_in_ledger(l, &upload.content_hash))
        .map(|(b, s)| (b.clone(), s.clone()));
    let outcome = match done_before {
        Some(found) => Ok(Finished::Ledger(Box::new(found))),
        None => run_ingest(context, &upload).await,
    };
    match outcome {
        Ok(Finished::Batch(report)) => {
            upload.counts = UploadCounts::from(report.totals());
            upload.rejects_by_reason = report
                .rejects_by_reason
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            if let Some(batch) = &report.batch {
                upload.batch_id = Some(batch.id.clone());
                upload.batch_seq = Some(batch.seq);
            } else if let Some(skip) = report.skipped.first() {
                // Committed by someone else meanwhile (another writer of the warehouse).
                upload.duplicate_of = Some(DuplicateOf {
                    upload: None,
                    batch: skip.committed_in,
                });
            }
            upload.status = Status::Done;
        }
        Ok(Finished::Ledger(found)) => {
            let (batch, source) = *found;
            let own = source.name == uploads.inbox.file_path(&upload).to_string_lossy();
            if own {
                tracing::info!(upload = %id, batch = batch.seq, "the upload had committed before the last stop");
                upload.batch_id = Some(batch.id.clone());
                upload.batch_seq = Some(batch.seq);
                // Each upload is a batch of its own: the batch's counts are the upload's.
                upload.counts = UploadCounts::from(batch.totals());
            } else {
                upload.duplicate_of = Some(DuplicateOf {
                    upload: None,
                    batch: Some(batch.seq),
                });
            }
            upload.status = Status::Done;
        }
        Err(message) => {
            upload.status = Status::Failed;
            upload.error = Some(message);
        }
    }
    upload.finished_at = Some(Utc::now());
    context.metrics.upload_finished(&upload);
    tracing::info!(
        upload = %id,
        status = upload.status.name(),
        landed = upload.counts.landed,
        rejected = upload.counts.rejected,
        seconds = started.elapsed().as_secs_f64(),
        "ingested"
    );
    if let Err(e) = uploads.inbox.save(&upload) {
        tracing::error!(upload = %id, error = %e, "cannot record the upload's outcome");
    }
}

enum Finished {
    Batch(Box<kefu_ingest::IngestReport>),
    Ledger(Box<(OperationRecord, kefu_storage::LedgerSource)>),
}

/// Ingests the upload on a thread of its own (the ingest blocks and uses every core; a
/// stop does not wait for it, and the ledger makes the next start finish it).
async fn run_ingest(context: &Arc<IngestContext>, upload: &Upload) -> Result<Finished, String> {
    let uploads = &context.uploads;
    let mut profile = uploads
        .profiles
        .get(&upload.token)
        .cloned()
        .unwrap_or_else(Profile::builtin);
    profile.only_region = upload.region.clone();
    let options = IngestOptions {
        profile,
        max_reject_ratio: uploads.settings.max_reject_ratio,
        decompression: uploads.settings.decompression,
        ..IngestOptions::default()
    };
    let source = uploads
        .inbox
        .file_path(upload)
        .to_string_lossy()
        .into_owned();
    let warehouse = context.warehouse.clone();
    let runtime = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kefu-upload-ingest".into())
        .spawn(move || {
            // For the quarantine test: an input that ends the process.
            if std::env::var("KEFU_FAILPOINT").as_deref() == Ok("upload_abort_in_ingest") {
                std::process::abort();
            }
            let report = kefu_ingest::ingest(
                &runtime,
                &[source],
                &warehouse,
                &options,
                &kefu_progress::NoProgress,
            );
            let _ = tx.send(report);
        })
        .map_err(|e| format!("cannot start the ingest: {e}"))?;
    match rx.await {
        Ok(Ok(report)) => {
            // For the exactly-once test: a stop between the commit and its record.
            if report.batch.is_some()
                && std::env::var("KEFU_FAILPOINT").as_deref() == Ok("upload_after_commit")
            {
                std::process::abort();
            }
            Ok(Finished::Batch(Box::new(report)))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the ingest stopped without an answer".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(valid_file_name("beijing_20260301.zip").is_ok());
        assert!(valid_file_name("calls.csv.gz").is_ok());
        for bad in [
            "../x.csv",
            "a/b.csv",
            ".hidden.csv",
            "",
            "upload.json",
            "x.exe",
            "a.csv\nlevel=ERROR forged.csv",
            "a\r.csv",
        ] {
            assert!(valid_file_name(bad).is_err(), "{bad}");
        }
    }

    /// Failed uploads stayed on disk for ever; they go after their retention.
    #[test]
    fn failed_uploads_are_deleted_after_their_retention() {
        let dir = tempfile::tempdir().unwrap();
        let (inbox, _) = Inbox::open(dir.path()).unwrap();
        let now = Utc::now();
        for (id, status, days_ago) in [
            ("old-failed", Status::Failed, 40),
            ("new-failed", Status::Failed, 5),
            ("old-done", Status::Done, 40),
        ] {
            std::fs::create_dir_all(dir.path().join(id)).unwrap();
            std::fs::write(dir.path().join(id).join("a.csv"), "x").unwrap();
            let mut upload: Upload = serde_json::from_value(serde_json::json!({
                "id": id, "file_name": "a.csv", "region": null, "token": "t", "bytes": 1,
                "sha256": "", "content_hash": id, "received_at": now, "status": status,
            }))
            .unwrap();
            upload.finished_at = Some(now - chrono::Duration::days(days_ago));
            inbox.save(&upload).unwrap();
        }
        let retention = std::time::Duration::from_secs(30 * 86_400);
        assert_eq!(inbox.delete_failed(retention, now), 1);
        assert!(!dir.path().join("old-failed").exists());
        assert!(inbox.get("old-failed").is_none());
        assert!(dir.path().join("new-failed/a.csv").exists());
        assert!(dir.path().join("old-done/a.csv").exists());
    }

    #[test]
    fn the_inbox_drops_unacknowledged_uploads_and_resumes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (inbox, resume) = Inbox::open(dir.path()).unwrap();
        assert!(resume.is_empty());
        let upload = |id: &str, status| Upload {
            id: id.into(),
            file_name: "a.csv".into(),
            region: Some("beijing".into()),
            token: "bj".into(),
            bytes: 1,
            sha256: String::new(),
            content_hash: id.into(),
            received_at: Utc::now(),
            status,
            duplicate_of: None,
            batch_id: None,
            batch_seq: None,
            counts: UploadCounts::default(),
            rejects_by_reason: BTreeMap::new(),
            error: None,
            finished_at: None,
            attempts: 0,
        };
        inbox.save(&upload("01-a", Status::Done)).unwrap();
        inbox.save(&upload("02-b", Status::Ingesting)).unwrap();
        inbox.save(&upload("03-c", Status::Queued)).unwrap();
        std::fs::create_dir_all(dir.path().join("04-d")).unwrap();
        std::fs::write(dir.path().join("04-d/.a.csv.partial"), "x").unwrap();
        std::fs::write(dir.path().join("03-c/.a.csv.partial"), "x").unwrap();
        let (inbox, resume) = Inbox::open(dir.path()).unwrap();
        assert_eq!(resume, vec!["02-b".to_string(), "03-c".to_string()]);
        assert!(!dir.path().join("04-d").exists());
        assert!(!dir.path().join("03-c/.a.csv.partial").exists());
        assert_eq!(inbox.find_content("01-a").unwrap().id, "01-a");
        assert_eq!(inbox.list(Some("beijing"), 2).len(), 2);
        assert_eq!(inbox.pending(), 2);
    }
}
