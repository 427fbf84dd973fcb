//! What the storage layer reports, as people read it (`Display`) and as programs do
//! (`Serialize`): counts of a batch, a ledger operation, a warehouse's status.

use std::collections::BTreeSet;
use std::fmt;

use kefu_model::number::{count, thousands};
use serde::Serialize;

use crate::StorageError;
use crate::ledger::{OperationKind, OperationRecord, TableCounts};
use crate::warehouse::{Cut, TableStatus, Warehouse};

/// Bytes as megabytes (10⁶), as the terminal output gives sizes.
pub fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// "12,345 new, 310 updated, 2,001 unchanged, 17 stale, 3 rejected" (and ", 40 filtered"
/// when a SQL profile dropped records on purpose).
impl fmt::Display for TableCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} new, {} updated, {} unchanged, {} stale, {} rejected",
            thousands(self.new),
            thousands(self.updated),
            thousands(self.unchanged),
            thousands(self.stale),
            thousands(self.rejected)
        )?;
        if self.filtered > 0 {
            write!(f, ", {} filtered", thousands(self.filtered))?;
        }
        if self.duplicate_keys > 0 {
            write!(
                f,
                " ({} repeating a key of their source)",
                thousands(self.duplicate_keys)
            )?;
        }
        Ok(())
    }
}

impl OperationRecord {
    /// The operation as one line of `kefu status` and `kefu batch list`.
    pub fn line(&self, reverted: bool) -> String {
        let when = self.committed_at.format("%Y-%m-%d %H:%M:%S UTC");
        let mark = if reverted { " [reverted]" } else { "" };
        let body = match self.kind {
            OperationKind::Ingest => {
                let t = self.totals();
                format!(
                    "{} sources, {} records: {t}",
                    self.sources.len(),
                    thousands(t.records),
                )
            }
            OperationKind::Revert => {
                let list: Vec<String> = self.reverts.iter().map(u64::to_string).collect();
                format!(
                    "reverted batch{} {}{}",
                    if self.reverts.len() == 1 { "" } else { "es" },
                    list.join(", "),
                    self.note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )
            }
            _ => self.note.clone().unwrap_or_default(),
        };
        format!(
            "#{:<5} {:<8} {when}  {body} ({:.1} s){mark}",
            self.seq,
            self.kind.name(),
            self.seconds
        )
    }
}

/// `kefu status`: a warehouse's tables and its last operations.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub warehouse: String,
    pub time_zone: String,
    pub as_of: Cut,
    pub tables: Vec<TableStatus>,
    /// The last operations, newest first.
    pub operations: Vec<OperationRecord>,
    /// Batches taken back by a revert.
    pub reverted: BTreeSet<u64>,
    /// Operations in the ledger, all of them.
    #[serde(skip)]
    pub operation_count: usize,
}

impl Warehouse {
    /// The status of the tables and the `recent` last operations.
    pub async fn status_report(&self, recent: usize) -> Result<StatusReport, StorageError> {
        let status = self.status().await?;
        let zone = self.time_zone().await?;
        Ok(StatusReport {
            warehouse: self.location().to_string(),
            time_zone: zone.name().to_string(),
            as_of: status.cut,
            tables: status.tables,
            reverted: crate::maintain::reverted(&status.operations),
            operation_count: status.operations.len(),
            operations: status.operations.into_iter().rev().take(recent).collect(),
        })
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "warehouse {} (Delta tables, calendar {}), as of operation {}",
            self.warehouse, self.time_zone, self.as_of.seq
        )?;
        writeln!(
            f,
            "{:<12} {:>8} {:>14} {:>6} {:>11} {:>10}",
            "table", "version", "rows", "files", "partitions", "MB"
        )?;
        let mut hints = Vec::new();
        for t in &self.tables {
            writeln!(
                f,
                "{:<12} {:>8} {:>14} {:>6} {:>11} {:>10.1}",
                t.table,
                t.version,
                thousands(t.rows),
                t.files,
                t.partitions,
                megabytes(t.bytes)
            )?;
            if t.missing_files > 0 {
                hints.push(format!(
                    "  warning: {}: {} files its current version names are missing",
                    t.table, t.missing_files
                ));
            }
            if t.partitions_to_compact > 0 {
                hints.push(format!(
                    "  {}: {} partitions hold several files (kefu compact merges them)",
                    t.table, t.partitions_to_compact
                ));
            }
            if t.unreferenced_files > 0 {
                hints.push(format!(
                    "  {}: {} files ({:.1} MB) no longer in the table (replaced, or left by an interrupted batch; kefu vacuum deletes them after the retention period)",
                    t.table,
                    t.unreferenced_files,
                    megabytes(t.unreferenced_bytes)
                ));
            }
        }
        for h in hints {
            writeln!(f, "{h}")?;
        }
        writeln!(
            f,
            "\n{}; the last {}:",
            count(self.operation_count as u64, "operation"),
            self.operations.len()
        )?;
        for op in &self.operations {
            writeln!(f, "  {}", op.line(self.reverted.contains(&op.seq)))?;
        }
        Ok(())
    }
}

/// `kefu batch list`: the ledger's last operations, newest first.
#[derive(Debug, Clone)]
pub struct OperationList {
    pub operations: Vec<OperationRecord>,
    /// The last operation readers see (later ones are being committed).
    pub committed: u64,
    pub reverted: BTreeSet<u64>,
}

impl Warehouse {
    /// The `last` operations of the ledger (all with 0), newest first.
    pub async fn operation_list(&self, last: usize) -> Result<OperationList, StorageError> {
        let ledger = self.ledger().await?;
        let cut = self.cut(crate::AsOf::Latest).await?;
        let take = if last == 0 { ledger.len() } else { last };
        Ok(OperationList {
            reverted: crate::maintain::reverted(&ledger),
            committed: cut.seq,
            operations: ledger.into_iter().rev().take(take).collect(),
        })
    }
}

impl fmt::Display for OperationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operations.is_empty() {
            return writeln!(f, "no operations yet");
        }
        for op in &self.operations {
            writeln!(f, "{}", op.line(self.reverted.contains(&op.seq)))?;
            if op.seq > self.committed {
                writeln!(f, "        (being committed: readers do not see it yet)")?;
            }
        }
        Ok(())
    }
}

impl Serialize for OperationList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Listed<'a> {
            seq: u64,
            kind: &'static str,
            id: &'a str,
            committed_at: chrono::DateTime<chrono::Utc>,
            complete: bool,
            reverted: bool,
            sources: &'a [crate::LedgerSource],
            counts: &'a std::collections::BTreeMap<String, TableCounts>,
            changes: &'a std::collections::BTreeMap<String, crate::ledger::TableChange>,
            versions: &'a std::collections::BTreeMap<String, u64>,
            reverts: &'a [u64],
            note: &'a Option<String>,
            seconds: f64,
        }
        serializer.collect_seq(self.operations.iter().map(|op| Listed {
            seq: op.seq,
            kind: op.kind.name(),
            id: &op.id,
            committed_at: op.committed_at,
            complete: op.seq <= self.committed,
            reverted: self.reverted.contains(&op.seq),
            sources: &op.sources,
            counts: &op.counts,
            changes: &op.changes,
            versions: &op.versions,
            reverts: &op.reverts,
            note: &op.note,
            seconds: op.seconds,
        }))
    }
}

/// `kefu batch revert`: the revert's operation and the batch it was asked to take back.
#[derive(Debug, Clone)]
pub struct RevertReport {
    pub asked: u64,
    pub record: OperationRecord,
}

impl fmt::Display for RevertReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.record.reverts.iter().map(u64::to_string).collect();
        writeln!(
            f,
            "reverted batch{} {} (operation {}): the tables are as before batch {}; their sources can be ingested again",
            if self.record.reverts.len() == 1 {
                ""
            } else {
                "es"
            },
            list.join(", "),
            self.record.seq,
            self.asked
        )?;
        for (table, c) in &self.record.changes {
            writeln!(
                f,
                "  {table:<10} version {}: {} files back, {} files out ({} rows back, {} rows out)",
                c.version,
                c.files_added,
                c.files_removed,
                thousands(c.rows_added),
                thousands(c.rows_removed)
            )?;
        }
        Ok(())
    }
}

impl Serialize for RevertReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Reverted<'a> {
            seq: u64,
            reverts: &'a [u64],
            changes: &'a std::collections::BTreeMap<String, crate::ledger::TableChange>,
            versions: &'a std::collections::BTreeMap<String, u64>,
        }
        Reverted {
            seq: self.record.seq,
            reverts: &self.record.reverts,
            changes: &self.record.changes,
            versions: &self.record.versions,
        }
        .serialize(serializer)
    }
}

impl fmt::Display for crate::maintain::CompactReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.record {
            None => writeln!(
                f,
                "nothing to compact: no partition holds {} files or more",
                self.min_files.max(2)
            ),
            Some(r) => writeln!(
                f,
                "compacted (operation {}): {} partitions, {} files into {} ({} rows, {:.1} MB into {:.1} MB)",
                r.seq,
                self.partitions,
                self.files_before,
                self.files_after,
                thousands(self.rows),
                megabytes(self.bytes_before),
                megabytes(self.bytes_after)
            ),
        }
    }
}

impl Serialize for crate::maintain::CompactReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Compacted<'a> {
            operation: Option<u64>,
            partitions: u64,
            files_before: u64,
            files_after: u64,
            rows: u64,
            bytes_before: u64,
            bytes_after: u64,
            changes: Option<&'a std::collections::BTreeMap<String, crate::ledger::TableChange>>,
        }
        Compacted {
            operation: self.record.as_ref().map(|r| r.seq),
            partitions: self.partitions,
            files_before: self.files_before,
            files_after: self.files_after,
            rows: self.rows,
            bytes_before: self.bytes_before,
            bytes_after: self.bytes_after,
            changes: self.record.as_ref().map(|r| &r.changes),
        }
        .serialize(serializer)
    }
}

impl fmt::Display for crate::maintain::VacuumReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: usize = self.files.values().map(Vec::len).sum();
        writeln!(
            f,
            "{} {} ({:.1} MB) no table version of the last {} names",
            if self.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            count(files as u64, "file"),
            megabytes(self.bytes),
            humantime::format_duration(self.retention)
        )?;
        for (table, list) in &self.files {
            writeln!(f, "  {table}: {}", list.len())?;
        }
        Ok(())
    }
}

impl Serialize for crate::maintain::VacuumReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Vacuumed<'a> {
            dry_run: bool,
            files: &'a std::collections::BTreeMap<String, Vec<String>>,
            bytes: u64,
        }
        Vacuumed {
            dry_run: self.dry_run,
            files: &self.files,
            bytes: self.bytes,
        }
        .serialize(serializer)
    }
}

impl fmt::Display for crate::maintain::ConvertReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "converted {} to Delta tables: {} earlier batches (kept under {})",
            self.warehouse,
            self.batches,
            crate::maintain::LEGACY_LEDGER_DIR
        )?;
        for (table, (files, rows)) in &self.tables {
            writeln!(f, "  {table:<10} {files} files, {} rows", thousands(*rows))?;
        }
        if !self.unrecorded.is_empty() {
            writeln!(
                f,
                "  {} Parquet files no batch had recorded were moved to {}/",
                self.unrecorded.len(),
                crate::maintain::UNRECORDED_DIR
            )?;
        }
        Ok(())
    }
}
