//! Printing ingest results and warehouse status, as text for people or JSON for programs.

use kefu_ingest::IngestReport;
use kefu_model::Table;
use kefu_storage::WarehouseLocation;
use kefu_storage::warehouse::REJECTS_TABLE;

use crate::cli::{count, describe_reject, exit, thousands};

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The summary of one `kefu ingest`.
pub fn print_ingest_report(report: &IngestReport, json: bool) {
    let seconds = report.elapsed.as_secs_f64();
    let c = report.counts;
    if json {
        let value = serde_json::json!({
            "batch": report.batch.as_ref().map(|b| serde_json::json!({
                "seq": b.seq,
                "batch_id": b.batch_id,
                "tables": b.tables,
                "files": b.files.len(),
            })),
            "records": c.records,
            "landed": c.landed,
            "rejected": c.rejected,
            "duplicates": c.duplicates,
            "rejects_by_reason": report.rejects_by_reason,
            "sources": report.sources,
            "bytes": report.bytes,
            "seconds": seconds,
            "skipped": report.skipped.iter().map(|s| serde_json::json!({
                "source": s.name,
                "committed_in": s.committed_in,
            })).collect::<Vec<_>>(),
            "recovered_batches": report.recovery.completed,
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
        println!(
            "nothing to ingest: {} already in the warehouse",
            count(report.skipped.len() as u64, "source")
        );
        return;
    };
    let tables: Vec<String> = batch
        .tables
        .iter()
        .map(|(t, n)| format!("{t} {}", thousands(*n)))
        .collect();
    println!(
        "batch {} committed: {} rows landed ({}), {} rejected, {} duplicates, from {} ({:.1} MB) in {:.2} s, {:.1} MB/s",
        batch.seq,
        thousands(c.landed),
        tables.join(", "),
        thousands(c.rejected),
        thousands(c.duplicates),
        count(report.sources as u64, "file"),
        mb(report.bytes),
        seconds,
        mb(report.bytes) / seconds.max(1e-9),
    );
    if !report.rejects_by_reason.is_empty() {
        let reasons: Vec<String> = report
            .rejects_by_reason
            .iter()
            .map(|(r, n)| format!("{r} {}", thousands(*n)))
            .collect();
        println!(
            "rejects by reason: {}; query them in {REJECTS_TABLE} (batch_id = '{}')",
            reasons.join(", "),
            batch.batch_id
        );
        for (source, r) in report.examples.iter().take(5) {
            println!("  {source} {}", describe_reject(r));
        }
    }
}

/// `kefu status`.
pub fn status_command(
    location: &WarehouseLocation,
    batches: usize,
    json: bool,
) -> Result<(), (u8, String)> {
    let io = |e: kefu_storage::StorageError| (exit::IO, e.to_string());
    let warehouse = kefu_storage::Warehouse::open(location).map_err(io)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (exit::IO, e.to_string()))?;
    let mut names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
    names.push(REJECTS_TABLE);
    let status = runtime.block_on(warehouse.status(&names)).map_err(io)?;
    let recent: Vec<_> = status.batches.iter().rev().take(batches).collect();
    if json {
        let value = serde_json::json!({
            "warehouse": location.to_string(),
            "tables": status.tables,
            "batches": recent,
        });
        println!("{value}");
        return Ok(());
    }
    println!("warehouse {location}");
    println!(
        "{:<12} {:>14} {:>6} {:>11} {:>10}",
        "table", "rows", "files", "partitions", "MB"
    );
    for t in &status.tables {
        println!(
            "{:<12} {:>14} {:>6} {:>11} {:>10.1}",
            t.table,
            thousands(t.rows),
            t.files,
            t.partitions,
            mb(t.bytes)
        );
        if t.unrecorded_files > 0 || t.missing_files > 0 {
            println!(
                "  warning: {} files not written by a committed batch, {} committed files missing (an interrupted ingest is completed by the next one)",
                t.unrecorded_files, t.missing_files
            );
        }
    }
    println!(
        "\n{} batches; the last {}:",
        status.batches.len(),
        recent.len()
    );
    for b in recent {
        println!(
            "  #{:<4} {}  {} sources, {} records: {} landed, {} rejected, {} duplicates ({:.1} s)",
            b.seq,
            b.committed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            b.sources.len(),
            thousands(b.records),
            thousands(b.landed),
            thousands(b.rejected),
            thousands(b.duplicates),
            b.seconds
        );
    }
    Ok(())
}
