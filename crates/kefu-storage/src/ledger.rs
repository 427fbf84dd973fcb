//! The ledger: one record per operation on the warehouse (an ingest batch, a compaction, a
//! revert, the conversion of an old warehouse), numbered 1, 2, 3 … in commit order under
//! `_kefu/ledger/`.
//!
//! A record is kefu's own account of an operation — the sources a batch read (with their
//! content hashes, so the same file is never ingested twice), what became of every record
//! read, the Delta version each touched table reached — and it is the operation's commit
//! point: created with put-if-absent before any table's log is written, it makes the
//! operation happen. Its `versions` name every table's version after the operation, so a
//! reader takes one record and reads each table at that version: a consistent cut across
//! the tables, which time travel reuses (`--as-of 12` reads the cut of record 12).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Sources ingested as one batch.
    Ingest,
    /// Small files of partitions rewritten as fewer, sorted ones (no data change).
    Compact,
    /// Batches taken back: the tables returned to their state before them.
    Revert,
    /// A warehouse of an earlier kefu (Hive-partitioned Parquet) turned into Delta tables.
    Convert,
    /// Columns the model gained added to the tables (no data change: null in the rows
    /// before).
    AddColumns,
}

impl OperationKind {
    pub fn name(self) -> &'static str {
        match self {
            OperationKind::Ingest => "ingest",
            OperationKind::Compact => "compact",
            OperationKind::Revert => "revert",
            OperationKind::Convert => "convert",
            OperationKind::AddColumns => "add_columns",
        }
    }
}

/// One source of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSource {
    /// As given on the command line (path or URL).
    pub name: String,
    /// BLAKE3 of the source's bytes, hex.
    pub content_hash: String,
    pub bytes: u64,
    /// Records read from it (rows of any table, and rejects).
    pub records: u64,
    pub rejected: u64,
    /// Records the profile's SQL dropped on purpose (`WHERE`).
    #[serde(default)]
    pub filtered: u64,
    /// The source's modification time when it was read: when it arrived (an office's
    /// upload, a file put into the inbox). What delivery monitoring goes by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// What became of the records a batch read for one table. Every record read is counted
/// once: `records = new + updated + unchanged + stale + rejected + filtered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounts {
    pub records: u64,
    /// Records whose key was not in the table: a row more.
    pub new: u64,
    /// Newer versions of records in the table: their row replaced.
    pub updated: u64,
    /// Records identical to the version kept (re-sent, overlapping exports): dropped.
    pub unchanged: u64,
    /// Versions older than the one kept (late or out-of-order exports, or superseded in
    /// the same batch): dropped.
    pub stale: u64,
    /// Records that could not become a row (see `_rejects`).
    pub rejected: u64,
    /// Records a SQL profile's `WHERE` dropped on purpose (test calls, other lines).
    #[serde(default)]
    pub filtered: u64,
    /// Of the records, those repeating a key an earlier record of the same source had
    /// (counted among new, updated, unchanged or stale, not beside them).
    #[serde(default)]
    pub duplicate_keys: u64,
}

impl TableCounts {
    pub fn add(&mut self, o: &TableCounts) {
        self.records += o.records;
        self.new += o.new;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.stale += o.stale;
        self.rejected += o.rejected;
        self.filtered += o.filtered;
        self.duplicate_keys += o.duplicate_keys;
    }

    /// Records that were not a change: unchanged and stale.
    pub fn dropped(&self) -> u64 {
        self.unchanged + self.stale
    }
}

/// What an operation did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChange {
    /// The table's version this operation committed.
    pub version: u64,
    pub files_added: u64,
    pub files_removed: u64,
    pub rows_added: u64,
    pub rows_removed: u64,
    /// Partition values (months, or tables for `_rejects`) whose files changed.
    pub partitions: Vec<String>,
}

/// A committed operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    pub seq: u64,
    pub kind: OperationKind,
    /// Unique id (`20260103T020000-1a2b3c4d`); names the operation's actions file.
    pub id: String,
    pub committed_at: chrono::DateTime<chrono::Utc>,
    pub kefu_version: String,
    /// The mapping profile of an ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<LedgerSource>,
    /// Per table: what became of the records read (ingest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, TableCounts>,
    /// Per table touched: the version committed and what changed.
    pub changes: BTreeMap<String, TableChange>,
    /// Every table's version after this operation: the cut readers of this record see.
    pub versions: BTreeMap<String, u64>,
    /// The operations a revert took back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<u64>,
    /// A human note (why a revert, what a conversion found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub seconds: f64,
}

impl OperationRecord {
    /// Counts of every table together.
    pub fn totals(&self) -> TableCounts {
        let mut total = TableCounts::default();
        for c in self.counts.values() {
            total.add(c);
        }
        total
    }

    /// Records read from sources that are not in any table (`_rejects` has no counts of
    /// its own: rejects are counted under the table they were meant for).
    pub fn records(&self) -> u64 {
        self.totals().records
    }
}

/// The relative path of record `seq`.
pub fn record_path(seq: u64) -> String {
    format!("{}/{seq:010}.json", crate::warehouse::LEDGER_DIR)
}

/// The relative path of an operation's actions file.
pub fn actions_path(id: &str) -> String {
    format!("{}/{id}.json", crate::warehouse::ACTIONS_DIR)
}

/// What an operation writes to one table's log: kept in the actions file until every
/// table has it, so that a writer interrupted after the commit point can be finished by
/// the next one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableActions {
    /// The version the actions were planned against; they commit as `base + 1`.
    pub base_version: u64,
    pub operation: deltalake_core::protocol::DeltaOperation,
    pub actions: Vec<deltalake_core::kernel::Action>,
    #[serde(default)]
    pub info: std::collections::HashMap<String, serde_json::Value>,
}

/// The actions file: `_kefu/actions/<id>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OperationActions {
    pub tables: BTreeMap<String, TableActions>,
}

/// A ledger record of the earlier (Hive-layout) format: what `kefu convert` reads.
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyBatch {
    pub seq: u64,
    pub batch_id: String,
    pub committed_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub sources: Vec<LegacySource>,
    pub files: Vec<LegacyFile>,
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub landed: u64,
    #[serde(default)]
    pub rejected: u64,
    #[serde(default)]
    pub duplicates: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LegacySource {
    pub name: String,
    pub content_hash: String,
    pub bytes: u64,
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub rejected: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LegacyFile {
    pub path: String,
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
}
