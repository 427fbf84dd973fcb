//! Printing ingest results and warehouse status, as text for people or JSON for programs.

use std::collections::BTreeMap;

use kefu_ingest::IngestReport;
use kefu_storage::ledger::TableCounts;
use kefu_storage::tables::REJECTS_TABLE;
use kefu_storage::{OperationRecord, WarehouseLocation};

use crate::cli::{count, describe_reject, exit, thousands};

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Counts as JSON: every category and the total.
pub fn counts_json(c: &TableCounts) -> serde_json::Value {
    serde_json::json!({
        "records": c.records,
        "new": c.new,
        "updated": c.updated,
        "unchanged": c.unchanged,
        "stale": c.stale,
        "rejected": c.rejected,
        "filtered": c.filtered,
        "duplicate_keys": c.duplicate_keys,
    })
}

/// "12,345 new, 310 updated, 2,001 unchanged, 17 stale, 3 rejected" (and ", 40 filtered"
/// when a SQL profile dropped records on purpose).
pub fn counts_text(c: &TableCounts) -> String {
    let mut filtered = if c.filtered > 0 {
        format!(", {} filtered", thousands(c.filtered))
    } else {
        String::new()
    };
    if c.duplicate_keys > 0 {
        filtered.push_str(&format!(
            " ({} repeating a key of their source)",
            thousands(c.duplicate_keys)
        ));
    }
    format!(
        "{} new, {} updated, {} unchanged, {} stale, {} rejected{filtered}",
        thousands(c.new),
        thousands(c.updated),
        thousands(c.unchanged),
        thousands(c.stale),
        thousands(c.rejected)
    )
}

fn per_table_json(counts: &BTreeMap<String, TableCounts>) -> serde_json::Value {
    counts
        .iter()
        .map(|(t, c)| (t.clone(), counts_json(c)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The summary of one `kefu ingest`.
pub fn print_ingest_report(report: &IngestReport, json: bool) {
    let seconds = report.elapsed.as_secs_f64();
    let total = report.totals();
    if json {
        let value = serde_json::json!({
            "batch": report.batch.as_ref().map(|b| serde_json::json!({
                "seq": b.seq,
                "batch_id": b.id,
                "versions": b.versions,
                "changes": b.changes,
            })),
            "tables": per_table_json(&report.counts),
            "records": total.records,
            "new": total.new,
            "updated": total.updated,
            "unchanged": total.unchanged,
            "stale": total.stale,
            "rejected": total.rejected,
            "filtered": total.filtered,
            "rejects_by_reason": report.rejects_by_reason,
            "sources": report.sources,
            "bytes": report.bytes,
            "seconds": seconds,
            "skipped": report.skipped.iter().map(|s| serde_json::json!({
                "source": s.name,
                "committed_in": s.committed_in,
            })).collect::<Vec<_>>(),
            "recovered_operations": report.recovery.completed,
            "compaction": report.compaction.as_ref().and_then(|c| c.record.as_ref()).map(|r| serde_json::json!({
                "seq": r.seq,
                "changes": r.changes,
            })),
        });
        println!("{value}");
        return;
    }
    const LISTED: usize = 5;
    for s in report.skipped.iter().take(LISTED) {
        match s.committed_in {
            Some(seq) => println!("already ingested (batch {seq}): {}", s.name),
            None => println!("same content as another source: {}", s.name),
        }
    }
    if report.skipped.len() > LISTED {
        println!(
            "… and {} more already ingested (--json lists them all)",
            thousands((report.skipped.len() - LISTED) as u64)
        );
    }
    let Some(batch) = &report.batch else {
        if report.sources == 0 {
            println!(
                "nothing to ingest: {} already in the warehouse",
                count(report.skipped.len() as u64, "source")
            );
        } else {
            println!(
                "nothing changed: {} records read, {} (every record was already in the warehouse)",
                thousands(total.records),
                counts_text(&total)
            );
        }
        return;
    };
    println!(
        "batch {} committed: {} records from {} ({:.1} MB) in {:.2} s, {:.1} MB/s",
        batch.seq,
        thousands(total.records),
        count(report.sources as u64, "file"),
        mb(report.bytes),
        seconds,
        mb(report.bytes) / seconds.max(1e-9),
    );
    for (table, c) in &report.counts {
        println!("  {table:<10} {}", counts_text(c));
    }
    if !report.rejects_by_reason.is_empty() {
        let reasons: Vec<String> = report
            .rejects_by_reason
            .iter()
            .map(|(r, n)| format!("{r} {}", thousands(*n)))
            .collect();
        println!(
            "rejects by reason: {}; query them in {REJECTS_TABLE} (batch_id = '{}')",
            reasons.join(", "),
            batch.id
        );
        for (source, r) in report.examples.iter().take(5) {
            println!("  {source} {}", describe_reject(r));
        }
    }
    if let Some(c) = &report.compaction
        && let Some(r) = &c.record
    {
        println!(
            "compacted (operation {}): {} partitions, {} files into {}",
            r.seq, c.partitions, c.files_before, c.files_after
        );
    }
}

/// One operation of the ledger as a line.
pub fn operation_line(op: &OperationRecord, reverted: bool) -> String {
    let when = op.committed_at.format("%Y-%m-%d %H:%M:%S UTC");
    let mark = if reverted { " [reverted]" } else { "" };
    let body = match op.kind {
        kefu_storage::OperationKind::Ingest => {
            let t = op.totals();
            format!(
                "{} sources, {} records: {}",
                op.sources.len(),
                thousands(t.records),
                counts_text(&t)
            )
        }
        kefu_storage::OperationKind::Revert => {
            let list: Vec<String> = op.reverts.iter().map(u64::to_string).collect();
            format!(
                "reverted batch{} {}{}",
                if op.reverts.len() == 1 { "" } else { "es" },
                list.join(", "),
                op.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            )
        }
        _ => op.note.clone().unwrap_or_default(),
    };
    format!(
        "#{:<5} {:<8} {when}  {body} ({:.1} s){mark}",
        op.seq,
        op.kind.name(),
        op.seconds
    )
}

/// `kefu status`.
pub fn status_command(
    location: &WarehouseLocation,
    batches: usize,
    json: bool,
) -> Result<(), (u8, String)> {
    let io = |e: kefu_storage::StorageError| (exit::IO, e.to_string());
    let warehouse = crate::sql::open_existing_warehouse(location)?;
    let runtime = crate::sql::runtime()?;
    let status = runtime.block_on(warehouse.status()).map_err(io)?;
    let zone = runtime.block_on(warehouse.time_zone()).map_err(io)?;
    let reverted = kefu_storage::maintain::reverted(&status.operations);
    let recent: Vec<_> = status.operations.iter().rev().take(batches).collect();
    if json {
        let value = serde_json::json!({
            "warehouse": location.to_string(),
            "time_zone": zone.name(),
            "as_of": status.cut,
            "tables": status.tables,
            "operations": recent,
            "reverted": reverted,
        });
        println!("{value}");
        return Ok(());
    }
    println!(
        "warehouse {location} (Delta tables, calendar {}), as of operation {}",
        zone.name(),
        status.cut.seq
    );
    println!(
        "{:<12} {:>8} {:>14} {:>6} {:>11} {:>10}",
        "table", "version", "rows", "files", "partitions", "MB"
    );
    let mut hints = Vec::new();
    for t in &status.tables {
        println!(
            "{:<12} {:>8} {:>14} {:>6} {:>11} {:>10.1}",
            t.table,
            t.version,
            thousands(t.rows),
            t.files,
            t.partitions,
            mb(t.bytes)
        );
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
                mb(t.unreferenced_bytes)
            ));
        }
    }
    for h in hints {
        println!("{h}");
    }
    println!(
        "\n{}; the last {}:",
        count(status.operations.len() as u64, "operation"),
        recent.len()
    );
    for op in recent {
        println!("  {}", operation_line(op, reverted.contains(&op.seq)));
    }
    Ok(())
}
