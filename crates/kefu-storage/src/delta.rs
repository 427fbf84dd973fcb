//! The warehouse's tables as Delta Lake tables, through `deltalake-core`: creating a table,
//! reading the files of one version, committing kefu's actions at an exact version with an
//! application transaction, and writing a Parquet file with the statistics Delta readers
//! prune by.
//!
//! kefu is the only writer of its tables. It commits version `v + 1` of a table with
//! put-if-absent, carrying the transaction `(kefu, operation number)`: finding that version
//! already written with the same transaction means an earlier, interrupted run committed it
//! (nothing is done twice); finding it written by anything else is a conflict kefu reports
//! rather than resolves.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use delta_kernel::expressions::Scalar;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitData, TransactionError};
use deltalake_core::kernel::{
    Action, Add, DeletionVectorDescriptor, Remove, StorageType, StructType, Transaction,
};
use deltalake_core::logstore::{CommitOrBytes, LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::DeltaOperation;
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake_core::{BlindDeltaTable, DeltaTableError};
use futures::TryStreamExt;
use indexmap::IndexMap;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::file::properties::WriterProperties;
use roaring::RoaringTreemap;
use url::Url;

/// The application id of kefu's transactions in every table's log.
pub const APP_ID: &str = "kefu";

/// Errors of the Delta side, with the table they concern.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error(
        "table {table}: version {version} of its log was not written by kefu's operation {seq} (was the table changed by another program? kefu must be its only writer)"
    )]
    Conflict {
        table: String,
        version: u64,
        seq: u64,
    },
    #[error("table {table}, file {path}: deletion vector: {reason}")]
    DeletionVector {
        table: String,
        path: String,
        reason: String,
    },
}

impl DeltaError {
    /// An error of deltalake-core about `table`.
    pub fn delta(table: &str, source: impl Into<DeltaTableError>) -> Self {
        DeltaError::Delta {
            table: table.to_string(),
            source: Box::new(source.into()),
        }
    }
}

/// One table's transaction log.
#[derive(Clone)]
pub struct TableLog {
    name: String,
    url: Url,
    log_store: LogStoreRef,
}

impl std::fmt::Debug for TableLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableLog").field("url", &self.url).finish()
    }
}

/// A file of a table at some version.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Relative to the table's root, e.g. `month=2026-01/part-….parquet`.
    pub path: String,
    pub size: u64,
    /// The value of the table's partition column (`month`, or `table` for `_rejects`);
    /// `None` for an unpartitioned table.
    pub partition: Option<String>,
    /// Rows in the file, from its statistics.
    pub rows: Option<u64>,
    /// Delta's per-file statistics (JSON), as written: of the file as written, rows
    /// its deletion vector removes included.
    pub stats: Option<String>,
    pub modification_time: i64,
    /// The rows of the file that later operations deleted (an upsert replaced them),
    /// kept in the log instead of rewriting the file.
    pub deletion: Option<DeletionVectorDescriptor>,
}

/// The magic number that starts a serialised deletion vector (Delta's
/// `RoaringBitmapArray` format, portable serialisation).
const DELETION_VECTOR_MAGIC: u32 = 1681511377;

impl DataFile {
    /// The minimum and maximum of `column` in this file, from its statistics, when they
    /// are text.
    pub fn text_range(&self, column: &str) -> Option<(String, String)> {
        let stats: serde_json::Value = serde_json::from_str(self.stats.as_deref()?).ok()?;
        let min = stats.get("minValues")?.get(column)?.as_str()?;
        let max = stats.get("maxValues")?.get(column)?.as_str()?;
        Some((min.to_string(), max.to_string()))
    }

    /// Rows the table reads from this file: those written less those deleted since.
    pub fn live_rows(&self) -> Option<u64> {
        let deleted = self
            .deletion
            .as_ref()
            .map_or(0, |d| d.cardinality.max(0) as u64);
        self.rows.map(|r| r.saturating_sub(deleted))
    }

    /// The row numbers (from 0, as written) deleted from this file; empty without a
    /// deletion vector. kefu writes its deletion vectors inline in the log; one stored in
    /// a file of its own (another writer's) is refused rather than ignored.
    pub fn deleted_rows(&self, table: &str) -> Result<RoaringTreemap, DeltaError> {
        match &self.deletion {
            None => Ok(RoaringTreemap::new()),
            Some(dv) => read_inline(dv).map_err(|reason| deletion_error(table, &self.path, reason)),
        }
    }

    /// This file with `deleted` (row numbers as written) as its deletion vector, inline.
    pub fn with_deleted_rows(&self, deleted: &RoaringTreemap) -> Self {
        let mut file = self.clone();
        file.deletion = (!deleted.is_empty()).then(|| inline_deletion_vector(deleted));
        file
    }

    /// The rows to read from this file (the ones not deleted), `None` to read them all.
    pub fn selection(&self, table: &str) -> Result<Option<RowSelection>, DeltaError> {
        self.deletion
            .as_ref()
            .map(|dv| selection_of(table, &self.path, self.rows, dv))
            .transpose()
    }

    /// The Add action that puts this file (back) into a table.
    pub fn add(&self, partition_column: Option<&str>, data_change: bool) -> Add {
        Add {
            path: self.path.clone(),
            partition_values: partition_column
                .map(|c| HashMap::from([(c.to_string(), self.partition.clone())]))
                .unwrap_or_default(),
            size: self.size as i64,
            modification_time: self.modification_time,
            data_change,
            stats: self.stats.clone(),
            deletion_vector: self.deletion.clone(),
            ..Default::default()
        }
    }

    /// The Remove action that takes this file out of a table.
    pub fn remove(&self, partition_column: Option<&str>, data_change: bool) -> Remove {
        Remove {
            path: self.path.clone(),
            data_change,
            deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
            extended_file_metadata: Some(true),
            partition_values: Some(
                partition_column
                    .map(|c| HashMap::from([(c.to_string(), self.partition.clone())]))
                    .unwrap_or_default(),
            ),
            size: Some(self.size as i64),
            deletion_vector: self.deletion.clone(),
            ..Default::default()
        }
    }

    /// The file described by an Add action.
    pub fn from_add(add: &Add) -> Self {
        DataFile {
            path: add.path.clone(),
            size: add.size.max(0) as u64,
            partition: add.partition_values.values().next().cloned().flatten(),
            rows: add
                .stats
                .as_deref()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| v.get("numRecords").and_then(serde_json::Value::as_u64)),
            stats: add.stats.clone(),
            modification_time: add.modification_time,
            deletion: add.deletion_vector.clone(),
        }
    }
}

/// `deleted` as an inline deletion vector: Delta's portable format, base85 (Z85) in the
/// log, padded with zeros to whole 4-byte groups as the protocol's readers expect.
fn inline_deletion_vector(deleted: &RoaringTreemap) -> DeletionVectorDescriptor {
    let mut bytes = DELETION_VECTOR_MAGIC.to_le_bytes().to_vec();
    deleted
        .serialize_into(&mut bytes)
        .expect("serialising into memory");
    let size = bytes.len();
    bytes.resize(size.div_ceil(4) * 4, 0);
    DeletionVectorDescriptor {
        storage_type: StorageType::Inline,
        path_or_inline_dv: z85::encode(&bytes),
        offset: None,
        size_in_bytes: size as i32,
        cardinality: deleted.len() as i64,
    }
}

fn deletion_error(table: &str, path: &str, reason: String) -> DeltaError {
    DeltaError::DeletionVector {
        table: table.to_string(),
        path: path.to_string(),
        reason,
    }
}

/// The rows an inline deletion vector holds. One stored in a file of its own (another
/// writer's) is refused rather than ignored.
fn read_inline(dv: &DeletionVectorDescriptor) -> Result<RoaringTreemap, String> {
    if dv.storage_type != StorageType::Inline {
        return Err(format!(
            "stored as '{}' (in a file of its own); kefu reads inline deletion vectors only — compact the table with the program that wrote it",
            dv.storage_type
        ));
    }
    let bytes = z85::decode(&dv.path_or_inline_dv).map_err(|e| e.to_string())?;
    let size = dv.size_in_bytes.max(0) as usize;
    if bytes.len() < size || size < 4 {
        return Err(format!("{} bytes, the log says {size}", bytes.len()));
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into().expect("four bytes"));
    if magic != DELETION_VECTOR_MAGIC {
        return Err(format!("unknown format {magic}"));
    }
    let rows = RoaringTreemap::deserialize_from(&bytes[4..size]).map_err(|e| e.to_string())?;
    if rows.len() != dv.cardinality.max(0) as u64 {
        return Err(format!(
            "holds {} rows, the log says {}",
            rows.len(),
            dv.cardinality
        ));
    }
    Ok(rows)
}

/// The rows to read from the file at `path` (of `table`) with `rows` rows as written and
/// the deletion vector `dv`: the ones not deleted, as a Parquet selection.
pub fn selection_of(
    table: &str,
    path: &str,
    rows: Option<u64>,
    dv: &DeletionVectorDescriptor,
) -> Result<RowSelection, DeltaError> {
    let err = |reason| deletion_error(table, path, reason);
    let deleted = read_inline(dv).map_err(err)?;
    let rows = rows.ok_or_else(|| err("the file has no row count in the log".into()))?;
    Ok(keep_selection(&deleted, rows))
}

/// The rows of a file of `rows` rows that are not in `deleted`, as a Parquet selection.
fn keep_selection(deleted: &RoaringTreemap, rows: u64) -> RowSelection {
    let mut selectors = Vec::new();
    let mut next = 0u64;
    for row in deleted.iter().take_while(|&r| r < rows) {
        if row > next {
            selectors.push(RowSelector::select((row - next) as usize));
        }
        selectors.push(RowSelector::skip(1));
        next = row + 1;
    }
    if next < rows {
        selectors.push(RowSelector::select((rows - next) as usize));
    }
    RowSelection::from(selectors)
}

/// The outcome of committing one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// This call wrote the version.
    Now,
    /// The version was already there with this operation's transaction: an earlier run
    /// committed it.
    Earlier,
}

impl TableLog {
    /// The log of the table at `url` (a directory URL ending in `/`) in `root`, a store
    /// whose paths are those of the URLs (the file system root, or an S3 bucket).
    pub fn new(name: &str, root: Arc<dyn ObjectStore>, url: Url) -> Result<Self, DeltaError> {
        let config = StorageConfig::default();
        let prefixed: Arc<dyn ObjectStore> = config
            .decorate_store(root.clone(), &url)
            .map_err(|e| DeltaError::delta(name, e))?
            .into();
        let log_store = default_logstore(prefixed, root, &url, &config);
        Ok(TableLog {
            name: name.to_string(),
            url,
            log_store,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn log_store(&self) -> LogStoreRef {
        self.log_store.clone()
    }

    fn err(&self, e: impl Into<DeltaTableError>) -> DeltaError {
        DeltaError::delta(&self.name, e)
    }

    /// Whether the table's first version exists.
    pub async fn exists(&self) -> Result<bool, DeltaError> {
        self.has_version(0).await
    }

    /// Creates the table (version 0) with `schema` and `partition_columns` (which `schema`
    /// must hold, last) unless it exists.
    pub async fn create(
        &self,
        schema: &SchemaRef,
        partition_columns: &[&str],
        properties: &[(&str, String)],
    ) -> Result<(), DeltaError> {
        if self.exists().await? {
            return Ok(());
        }
        let kernel: StructType = schema.as_ref().try_into_kernel().map_err(|e| self.err(e))?;
        let mut builder = CreateBuilder::new()
            .with_log_store(self.log_store.clone())
            .with_table_name(self.name.clone())
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(partition_columns.iter().map(|c| c.to_string()))
            .with_save_mode(deltalake_core::protocol::SaveMode::Ignore);
        for (key, value) in properties {
            builder = builder.with_configuration_property(
                key.parse().map_err(|e: DeltaTableError| self.err(e))?,
                Some(value.clone()),
            );
        }
        match builder.await {
            Ok(_) => Ok(()),
            // Another writer created it meanwhile.
            Err(DeltaTableError::Transaction {
                source: TransactionError::VersionAlreadyExists(0),
            }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The actions that give the table the columns of `schema` it lacks (nullable; null
    /// in the files written before), or `None` when it has them all: a warehouse created
    /// before the model gained a column takes it through an operation of its own (see
    /// [`crate::maintain::add_model_columns`]). Reads the metadata only.
    pub async fn missing_columns(
        &self,
        schema: &SchemaRef,
    ) -> Result<Option<(Vec<Action>, DeltaOperation)>, DeltaError> {
        use deltalake_core::kernel::MetadataExt;
        let table = BlindDeltaTable::try_new_with_log_store(self.log_store.clone())
            .await
            .map_err(|e| self.err(e))?;
        let current = table.schema();
        let missing: Vec<deltalake_core::kernel::StructField> = schema
            .fields()
            .iter()
            .filter(|f| current.field(f.name()).is_none())
            .map(|f| (&f.as_ref().clone().with_nullable(true)).try_into_kernel())
            .collect::<Result<_, _>>()
            .map_err(|e: arrow::error::ArrowError| self.err(DeltaTableError::from(e)))?;
        if missing.is_empty() {
            return Ok(None);
        }
        let merged = StructType::try_new(current.fields().cloned().chain(missing.iter().cloned()))
            .map_err(|e| self.err(DeltaTableError::from(e)))?;
        let metadata = table
            .metadata()
            .clone()
            .with_schema(&merged)
            .map_err(|e| self.err(e))?;
        Ok(Some((
            vec![Action::Metadata(metadata)],
            DeltaOperation::AddColumn { fields: missing },
        )))
    }

    /// The newest version of the log (listing it).
    pub async fn latest_version(&self) -> Result<u64, DeltaError> {
        self.log_store
            .get_latest_version(0)
            .await
            .map_err(|e| self.err(e))
    }

    /// The files of the table at `version`.
    pub async fn files(&self, version: u64) -> Result<Vec<DataFile>, DeltaError> {
        let snapshot =
            deltalake_core::kernel::EagerSnapshot::try_new(self.log_store.as_ref(), Some(version))
                .await
                .map_err(|e| self.err(e))?;
        let views: Vec<_> = snapshot
            .file_views(self.log_store.as_ref(), None)
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        let mut files: Vec<DataFile> = views
            .iter()
            .map(|v| DataFile {
                path: v.path().into_owned(),
                size: v.size().max(0) as u64,
                partition: v.partition_values_map().into_values().next().flatten(),
                rows: v.num_records().map(|n| n as u64),
                stats: v.stats(),
                modification_time: v.modification_time(),
                deletion: v.deletion_vector_descriptor(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Commits `actions` as version `version` with the transaction `(kefu, seq)`.
    pub async fn commit(
        &self,
        version: u64,
        actions: Vec<Action>,
        operation: DeltaOperation,
        seq: u64,
        info: HashMap<String, serde_json::Value>,
    ) -> Result<Committed, DeltaError> {
        let txn = Transaction::new_with_last_update(
            APP_ID,
            seq as i64,
            Some(chrono::Utc::now().timestamp_millis()),
        );
        let data = CommitData::new(actions, operation, info, vec![txn]);
        let bytes = data
            .get_bytes()
            .map_err(|e| self.err(DeltaTableError::from(e)))?;
        match self
            .log_store
            .write_commit_entry(
                version,
                CommitOrBytes::LogBytes(bytes),
                uuid_for(seq, version),
            )
            .await
        {
            Ok(()) => Ok(Committed::Now),
            Err(TransactionError::VersionAlreadyExists(_)) => {
                if self.commit_is_ours(version, seq).await? {
                    Ok(Committed::Earlier)
                } else {
                    Err(DeltaError::Conflict {
                        table: self.name.clone(),
                        version,
                        seq,
                    })
                }
            }
            Err(e) => Err(self.err(DeltaTableError::from(e))),
        }
    }

    /// Whether `version` exists and carries kefu's transaction `seq`.
    pub async fn commit_is_ours(&self, version: u64, seq: u64) -> Result<bool, DeltaError> {
        let Some(bytes) = self
            .log_store
            .read_commit_entry(version)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(false);
        };
        Ok(bytes.split(|&b| b == b'\n').any(|line| {
            serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    let txn = v.get("txn")?;
                    Some(
                        txn.get("appId")?.as_str()? == APP_ID
                            && txn.get("version")?.as_u64()? == seq,
                    )
                })
                .unwrap_or(false)
        }))
    }

    /// Whether `version` exists (a HEAD request: nothing is read).
    pub async fn has_version(&self, version: u64) -> Result<bool, DeltaError> {
        let path = deltalake_core::logstore::commit_uri_from_version(Some(version));
        match self.log_store.object_store(None).head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(DeltaTableError::from(e))),
        }
    }

    /// Writes a checkpoint of `version`, so that readers replay few JSON commits.
    pub async fn checkpoint(&self, version: u64) -> Result<(), DeltaError> {
        let mut table = deltalake_core::DeltaTable::new(self.log_store.clone());
        table.load_version(version).await.map_err(|e| self.err(e))?;
        deltalake_core::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(|e| self.err(e))
    }

    /// A writer of new files for this table (its schema and partitioning from the log).
    pub async fn file_writer(&self) -> Result<FileWriter, DeltaError> {
        let table = BlindDeltaTable::try_new_with_log_store(self.log_store.clone())
            .await
            .map_err(|e| self.err(e))?;
        // Setting the property at creation adds the feature to the protocol (deltalake).
        let deletion_vectors = table.table_properties().enable_deletion_vectors == Some(true);
        Ok(FileWriter {
            table: Arc::new(table),
            name: self.name.clone(),
            deletion_vectors,
        })
    }
}

/// A stable operation id for a commit, so logs name the same commit the same way.
fn uuid_for(seq: u64, version: u64) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(seq, version)
}

/// Writes new Parquet files of one table, with Delta's statistics.
#[derive(Clone)]
pub struct FileWriter {
    table: Arc<BlindDeltaTable>,
    name: String,
    deletion_vectors: bool,
}

impl FileWriter {
    /// Whether the table takes deletion vectors (`delta.enableDeletionVectors`): upserts
    /// then mark replaced rows instead of rewriting files.
    pub fn deletion_vectors(&self) -> bool {
        self.deletion_vectors
    }

    /// Writes `batches` (in their order, which the caller has sorted; without the
    /// partition column) as one file of `partition` (the partition column and its value,
    /// null for none, for a partitioned table) and returns its Add action.
    ///
    /// The rows go to the partition's file as they are: Delta's generic write would group
    /// every batch by its partition values again, a copy of every row.
    pub async fn write(
        &self,
        partition: Option<(&str, Option<&str>)>,
        batches: impl IntoIterator<Item = RecordBatch>,
        properties: WriterProperties,
    ) -> Result<Add, DeltaError> {
        let err = |e| DeltaError::delta(&self.name, e);
        let mut writer = RecordBatchWriter::for_blind_appends(&self.table)
            .map_err(err)?
            .with_writer_properties(properties);
        let values: IndexMap<String, Scalar> = partition
            .map(|(column, value)| {
                let value = value
                    .map_or(Scalar::Null(delta_kernel::schema::DataType::STRING), |v| {
                        Scalar::String(v.to_string())
                    });
                (column.to_string(), value)
            })
            .into_iter()
            .collect();
        for batch in batches {
            writer
                .write_partition(batch, &values, WriteMode::Default)
                .await
                .map_err(err)?;
        }
        let mut adds = writer.flush().await.map_err(err)?;
        match adds.len() {
            1 => Ok(adds.remove(0)),
            n => Err(err(DeltaTableError::Generic(format!(
                "expected one file, the writer wrote {n}"
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    /// A deletion vector goes into the log inline and comes back as the same rows; the
    /// rows left to read are the others, in order.
    #[test]
    fn deletion_vectors_round_trip_inline_and_select_the_other_rows() {
        let file = DataFile {
            path: "month=2026-01/part-0.parquet".into(),
            size: 100,
            partition: Some("2026-01".into()),
            rows: Some(10),
            stats: None,
            modification_time: 0,
            deletion: None,
        };
        assert!(file.selection("tickets").unwrap().is_none());
        assert_eq!(file.live_rows(), Some(10));
        for deleted in [vec![0u64], vec![3, 4, 9], vec![1, 2, 5, 7, 8]] {
            let set: RoaringTreemap = deleted.iter().copied().collect();
            let marked = file.with_deleted_rows(&set);
            let dv = marked.deletion.as_ref().unwrap();
            assert_eq!(dv.storage_type, StorageType::Inline);
            assert_eq!(dv.path_or_inline_dv.len() % 5, 0, "whole Z85 groups");
            assert_eq!(marked.deleted_rows("tickets").unwrap(), set);
            assert_eq!(marked.live_rows(), Some(10 - deleted.len() as u64));
            let kept: Vec<usize> = marked
                .selection("tickets")
                .unwrap()
                .unwrap()
                .iter()
                .scan(0usize, |at, s| {
                    let start = *at;
                    *at += s.row_count;
                    Some((start, s.row_count, s.skip))
                })
                .filter(|(_, _, skip)| !skip)
                .flat_map(|(start, n, _)| start..start + n)
                .collect();
            let expected: Vec<usize> = (0..10)
                .filter(|r| !deleted.contains(&(*r as u64)))
                .collect();
            assert_eq!(kept, expected);
        }
        // Nothing deleted: no vector at all.
        assert!(
            file.with_deleted_rows(&RoaringTreemap::new())
                .deletion
                .is_none()
        );
        // A vector stored in a file of its own (another writer's) is refused, not ignored.
        let mut foreign = file.with_deleted_rows(&[1u64].into_iter().collect());
        foreign.deletion.as_mut().unwrap().storage_type = StorageType::UuidRelativePath;
        let err = foreign.deleted_rows("tickets").unwrap_err().to_string();
        assert!(err.contains("inline deletion vectors only"), "{err}");
    }

    fn append() -> DeltaOperation {
        DeltaOperation::Write {
            mode: deltalake_core::protocol::SaveMode::Append,
            partition_by: None,
            predicate: None,
        }
    }

    /// Commits land at exact versions, checkpoints do not change what a version holds,
    /// a retried transaction is recognised, and another writer's version is a conflict.
    #[tokio::test(flavor = "multi_thread")]
    async fn versions_commit_exactly_once_and_read_back_through_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("calls")).unwrap();
        let root: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
        let log = TableLog::new("calls", root, url).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("call_id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
            Field::new("month", DataType::Utf8, true),
        ]));
        log.create(
            &schema,
            &["month"],
            &[("delta.checkpointInterval", "10".into())],
        )
        .await
        .unwrap();
        let mut version = 0;
        for i in 0..25u64 {
            let writer = log.file_writer().await.unwrap();
            let ids: Vec<String> = (0..100).map(|j| format!("CL{:012}", i * 100 + j)).collect();
            let month = format!("2026-{:02}", i % 12 + 1);
            let batch = RecordBatch::try_new(
                Arc::new(schema.project(&[0, 1]).unwrap()),
                vec![
                    Arc::new(StringArray::from(ids)),
                    Arc::new(Int64Array::from_iter_values(0..100)),
                ],
            )
            .unwrap();
            let add = writer
                .write(
                    Some(("month", Some(&month))),
                    [batch],
                    WriterProperties::default(),
                )
                .await
                .unwrap();
            version += 1;
            let committed = log
                .commit(
                    version,
                    vec![Action::Add(add)],
                    append(),
                    i + 1,
                    HashMap::new(),
                )
                .await
                .unwrap();
            assert_eq!(committed, Committed::Now);
            if (version + 1) % 10 == 0 {
                log.checkpoint(version).await.unwrap();
            }
            let files = log.files(version).await.unwrap();
            assert_eq!(files.len() as u64, version);
            let newest = files
                .iter()
                .find(|f| f.text_range("call_id").unwrap().0 == format!("CL{:012}", i * 100))
                .expect("the new file with its key range");
            assert_eq!(newest.rows, Some(100));
            assert_eq!(
                newest.partition.as_deref(),
                Some(format!("2026-{:02}", i % 12 + 1).as_str())
            );
        }
        assert_eq!(log.latest_version().await.unwrap(), version);
        // The same transaction again is recognised as done.
        let again = log
            .commit(version, vec![], append(), 25, HashMap::new())
            .await
            .unwrap();
        assert_eq!(again, Committed::Earlier);
        // Another operation at a taken version is a conflict, not an overwrite.
        let other = log
            .commit(version, vec![], append(), 99, HashMap::new())
            .await;
        assert!(
            matches!(other, Err(DeltaError::Conflict { .. })),
            "{other:?}"
        );
        assert_eq!(log.files(version).await.unwrap().len() as u64, version);
    }
}
