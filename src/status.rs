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

/// Reads `--schedule FILE`, or the default schedule.
pub fn read_schedule(
    path: Option<&std::path::Path>,
) -> Result<kefu_ingest::deliveries::Schedule, (u8, String)> {
    let Some(path) = path else {
        return Ok(kefu_ingest::deliveries::Schedule::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| (exit::IO, format!("{}: cannot read: {e}", path.display())))?;
    kefu_ingest::deliveries::Schedule::from_toml(&text, &path.display().to_string())
        .map_err(|e| (exit::BAD_CONFIG, e.to_string()))
}

/// "2 h 10 min", "35 min", "3 d 4 h".
fn duration_text(seconds: i64) -> String {
    let minutes = (seconds.max(0) + 59) / 60;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// One line about a delivery that needs attention.
fn delivery_problem(d: &kefu_ingest::deliveries::DayDelivery, zone: chrono_tz::Tz) -> String {
    use kefu_ingest::deliveries::{DeliveryStatus, VolumeFlag};
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
    };
    let mut what = Vec::new();
    match d.status {
        DeliveryStatus::Missing => what.push(format!("missing (due {})", local(d.due))),
        DeliveryStatus::Late => what.push(format!(
            "late by {} (due {}, arrived {})",
            duration_text(d.late_by_s.unwrap_or(0)),
            local(d.due),
            d.arrived.map(local).unwrap_or_default()
        )),
        DeliveryStatus::OnTime | DeliveryStatus::Pending => {}
    }
    if let (Some(flag), Some(records), Some(usual)) = (d.volume, d.records, d.usual_records) {
        what.push(format!(
            "volume {}: {} records, {:.0}% of the usual {}",
            match flag {
                VolumeFlag::Low => "low",
                VolumeFlag::High => "high",
            },
            thousands(records),
            100.0 * records as f64 / usual,
            thousands(usual.round() as u64)
        ));
    }
    format!("{:<12} {}  {}", d.region, d.day, what.join("; "))
}

/// `kefu status --deliveries`.
pub fn deliveries_command(
    location: &WarehouseLocation,
    args: &crate::cli::DeliveriesArgs,
    json: bool,
) -> Result<(), (u8, String)> {
    use kefu_ingest::deliveries::{DeliveryStatus, VolumeFlag};
    let io = |e: kefu_storage::StorageError| (exit::IO, e.to_string());
    let schedule = read_schedule(args.schedule.as_deref())?;
    let warehouse = crate::sql::open_existing_warehouse(location)?;
    let runtime = crate::sql::runtime()?;
    let zone = runtime.block_on(warehouse.time_zone()).map_err(io)?;
    let ledger = runtime.block_on(warehouse.ledger()).map_err(io)?;
    let now = chrono::Utc::now();
    let today = now.with_timezone(&zone).date_naive();
    let to = kefu_jobs::dates::eval(&args.until, today)
        .map_err(|e| (exit::BAD_CONFIG, format!("--until: {e}")))?;
    let from = to - chrono::Days::new(u64::from(args.days) - 1);
    let report = kefu_ingest::deliveries::deliveries(&ledger, &schedule, zone, from, to, now);
    let missing = report.missing().count();
    if json {
        let mut value = serde_json::to_value(&report).expect("the report serialises");
        value["warehouse"] = location.to_string().into();
        value["problems"] = report.problems().count().into();
        value["missing"] = missing.into();
        println!("{value}");
    } else {
        println!(
            "deliveries to {location}, data days {from} to {to} (calendar {}), as of {}",
            zone.name(),
            now.with_timezone(&zone).format("%Y-%m-%d %H:%M")
        );
        let config = schedule.config();
        println!(
            "  expected: {} by {} local, {} day(s) after the data day{}",
            if config.regions.is_empty() {
                "every region that has delivered".to_string()
            } else {
                config.regions.join(", ")
            },
            config.due,
            config.due_days_after,
            config
                .region
                .iter()
                .filter_map(|(r, rule)| rule.due.as_ref().map(|d| format!("; {r} by {d}")))
                .collect::<String>()
        );
        if report.regions.is_empty() {
            println!(
                "\nno ingested file is named as a delivery (REGION_YYYYMMDD.zip|tar.gz by default; --schedule sets the pattern)"
            );
        } else {
            let problems: Vec<_> = report.problems().collect();
            if problems.is_empty() {
                println!(
                    "\nno problems: every delivery due has arrived on time, at its usual volume"
                );
            } else {
                println!("\n{}:", count(problems.len() as u64, "problem"));
                for d in problems {
                    println!("  {}", delivery_problem(d, zone));
                }
            }
            print!("\n{:<12}", "region");
            let days: Vec<chrono::NaiveDate> = report
                .days
                .iter()
                .filter(|d| d.region == report.regions[0])
                .map(|d| d.day)
                .collect();
            for day in &days {
                print!(" {:>7}", day.format("%m-%d"));
            }
            println!();
            for region in &report.regions {
                print!("{region:<12}");
                for d in report.days.iter().filter(|d| &d.region == region) {
                    let cell = match (d.status, d.volume) {
                        (DeliveryStatus::Missing, _) => "MISSING",
                        (DeliveryStatus::Pending, _) => "-",
                        (DeliveryStatus::Late, _) => "late",
                        (_, Some(VolumeFlag::Low)) => "low",
                        (_, Some(VolumeFlag::High)) => "high",
                        (DeliveryStatus::OnTime, None) => "ok",
                    };
                    print!(" {cell:>7}");
                }
                println!();
            }
            println!(
                "  (ok: on time at the usual volume; -: not due yet; low/high: volume far from the region's usual for that weekday)"
            );
        }
        if report.unrecognised_count > 0 {
            println!(
                "\n{} not named as deliveries (e.g. {}): master data and snapshots are; else change the schedule's pattern",
                count(report.unrecognised_count as u64, "ingested file"),
                report.unrecognised.first().map_or("", String::as_str)
            );
        }
    }
    if missing > 0 {
        return Err((
            exit::PARTIAL,
            format!(
                "{} past the due time not arrived",
                count(missing as u64, "delivery")
            ),
        ));
    }
    Ok(())
}
