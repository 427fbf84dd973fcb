//! What ingest, check and the delivery monitor report, as people read it (`Display`,
//! [`CheckReport::render`]) and as programs do (`Serialize`, [`CheckReport::to_json`]).

use std::collections::BTreeMap;
use std::fmt;

use arrow::array::RecordBatch;
use kefu_model::number::{count, thousands};
use kefu_storage::ledger::TableCounts;
use kefu_storage::report::megabytes;
use kefu_storage::tables::REJECTS_TABLE;
use serde::Serialize;

use crate::check::CheckReport;
use crate::deliveries::{DayDelivery, DeliveryReport, DeliveryStatus, VolumeFlag};
use crate::ingest::IngestReport;
use crate::{FileOutcome, RejectedRecord};

impl fmt::Display for RejectedRecord {
    /// "line 12, column 呼叫结果: invalid_enum: outcome: '未知状态'".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(column) = &self.reject.column {
            write!(f, ", column {column}")?;
        }
        write!(f, ": {}: {}", self.reject.reason, self.reject.detail)
    }
}

/// How many of the skipped sources a terminal summary names.
const SKIPPED_LISTED: usize = 5;

impl fmt::Display for IngestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let total = self.totals();
        for s in self.skipped.iter().take(SKIPPED_LISTED) {
            match s.committed_in {
                Some(seq) => writeln!(f, "already ingested (batch {seq}): {}", s.name)?,
                None => writeln!(f, "same content as another source: {}", s.name)?,
            }
        }
        if self.skipped.len() > SKIPPED_LISTED {
            writeln!(
                f,
                "… and {} more already ingested (--json lists them all)",
                thousands((self.skipped.len() - SKIPPED_LISTED) as u64)
            )?;
        }
        let Some(batch) = &self.batch else {
            if self.sources == 0 {
                return writeln!(
                    f,
                    "nothing to ingest: {} already in the warehouse",
                    count(self.skipped.len() as u64, "source")
                );
            }
            return writeln!(
                f,
                "nothing changed: {} records read, {total} (every record was already in the warehouse)",
                thousands(total.records),
            );
        };
        writeln!(
            f,
            "batch {} committed: {} records from {} ({:.1} MB) in {:.2} s, {:.1} MB/s",
            batch.seq,
            thousands(total.records),
            count(self.sources as u64, "file"),
            megabytes(self.bytes),
            seconds,
            megabytes(self.bytes) / seconds.max(1e-9),
        )?;
        for (table, c) in &self.counts {
            writeln!(f, "  {table:<10} {c}")?;
        }
        if !self.rejects_by_reason.is_empty() {
            writeln!(
                f,
                "rejects by reason: {}; query them in {REJECTS_TABLE} (batch_id = '{}')",
                by_reason(&self.rejects_by_reason),
                batch.id
            )?;
            for (source, r) in self.examples.iter().take(5) {
                writeln!(f, "  {source} {r}")?;
            }
        }
        if let Some(c) = &self.compaction
            && let Some(r) = &c.record
        {
            writeln!(
                f,
                "compacted (operation {}): {} partitions, {} files into {}",
                r.seq, c.partitions, c.files_before, c.files_after
            )?;
        }
        Ok(())
    }
}

/// "invalid_enum 3, bad_timestamp 1".
fn by_reason(reasons: &BTreeMap<&'static str, u64>) -> String {
    reasons
        .iter()
        .map(|(r, n)| format!("{r} {}", thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Serialize for IngestReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Batch<'a> {
            seq: u64,
            batch_id: &'a str,
            versions: &'a BTreeMap<String, u64>,
            changes: &'a BTreeMap<String, kefu_storage::ledger::TableChange>,
        }
        #[derive(Serialize)]
        struct Skipped<'a> {
            source: &'a str,
            committed_in: Option<u64>,
        }
        #[derive(Serialize)]
        struct Compaction<'a> {
            seq: u64,
            changes: &'a BTreeMap<String, kefu_storage::ledger::TableChange>,
        }
        #[derive(Serialize)]
        struct Report<'a> {
            batch: Option<Batch<'a>>,
            tables: &'a BTreeMap<String, TableCounts>,
            #[serde(flatten)]
            totals: TableCounts,
            rejects_by_reason: &'a BTreeMap<&'static str, u64>,
            sources: usize,
            bytes: u64,
            seconds: f64,
            skipped: Vec<Skipped<'a>>,
            recovered_operations: &'a [u64],
            compaction: Option<Compaction<'a>>,
        }
        Report {
            batch: self.batch.as_ref().map(|b| Batch {
                seq: b.seq,
                batch_id: &b.id,
                versions: &b.versions,
                changes: &b.changes,
            }),
            tables: &self.counts,
            totals: self.totals(),
            rejects_by_reason: &self.rejects_by_reason,
            sources: self.sources,
            bytes: self.bytes,
            seconds: self.elapsed.as_secs_f64(),
            skipped: self
                .skipped
                .iter()
                .map(|s| Skipped {
                    source: &s.name,
                    committed_in: s.committed_in,
                })
                .collect(),
            recovered_operations: &self.recovery.completed,
            compaction: self
                .compaction
                .as_ref()
                .and_then(|c| c.record.as_ref())
                .map(|r| Compaction {
                    seq: r.seq,
                    changes: &r.changes,
                }),
        }
        .serialize(serializer)
    }
}

impl FileOutcome {
    /// Whether the source repeats keys more than ingest allows by default.
    pub fn too_many_duplicates(&self) -> bool {
        self.duplicate_keys > crate::ingest::MIN_DUPLICATES_REFUSED
            && self.duplicate_keys as f64 / self.records.max(1) as f64
                > crate::ingest::DEFAULT_MAX_DUPLICATE_RATIO
    }
}

impl CheckReport {
    /// The report for a terminal: the sources with problems (every source with `all`),
    /// their example rejects and previews (`preview` renders a preview's rows), then the
    /// totals.
    pub fn render(&self, all: bool, preview: impl Fn(&RecordBatch) -> String) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for s in &self.sources {
            match &s.outcome {
                Err(e) => {
                    let _ = writeln!(out, "UNREADABLE {e}");
                }
                Ok(o) if o.rejected > 0 || o.duplicate_keys > 0 || all || s.preview.is_some() => {
                    let status = if o.rejected > 0 {
                        "REJECTS"
                    } else if o.too_many_duplicates() {
                        "DUPLICATES"
                    } else {
                        "ok"
                    };
                    let _ = write!(
                        out,
                        "{status} {}: {}, {}, {} rows",
                        s.source,
                        o.table,
                        o.encoding.name(),
                        thousands(o.rows)
                    );
                    if o.filtered > 0 {
                        let _ = write!(out, ", {} filtered", thousands(o.filtered));
                    }
                    if o.duplicate_keys > 0 {
                        let _ = write!(
                            out,
                            ", {} repeating a key of the source (one row kept per key)",
                            thousands(o.duplicate_keys)
                        );
                    }
                    if !s.rejects_by_reason.is_empty() {
                        let _ = write!(
                            out,
                            ", {} rejected ({})",
                            thousands(o.rejected),
                            by_reason(&s.rejects_by_reason)
                        );
                    }
                    out.push('\n');
                    for r in &s.examples {
                        let _ = writeln!(out, "  {r}\n    {}", r.raw);
                    }
                    if let Some(batch) = &s.preview {
                        out.push_str(&preview(batch));
                    }
                }
                Ok(_) => {}
            }
        }
        let totals = self.totals();
        let _ = writeln!(
            out,
            "checked {}: {} records, {} valid, {} rejected, {} filtered, {} unreadable",
            count(totals.sources, "source"),
            thousands(totals.records),
            thousands(totals.rows),
            thousands(totals.rejected),
            thousands(totals.filtered),
            thousands(totals.unreadable),
        );
        out
    }

    /// The report as JSON (`preview` gives a preview's rows as JSON).
    pub fn to_json(
        &self,
        preview: impl Fn(&RecordBatch) -> serde_json::Value,
    ) -> serde_json::Value {
        let sources: Vec<serde_json::Value> = self
            .sources
            .iter()
            .map(|s| {
                let (outcome, error) = match &s.outcome {
                    Ok(o) => (
                        serde_json::json!({
                            "table": o.table.name(),
                            "encoding": o.encoding.name(),
                            "records": o.records,
                            "rows": o.rows,
                            "rejected": o.rejected,
                            "filtered": o.filtered,
                            "duplicate_keys": o.duplicate_keys,
                        }),
                        None,
                    ),
                    Err(e) => (serde_json::json!({}), Some(e.clone())),
                };
                serde_json::json!({
                    "origin": s.source.origin,
                    "member": s.source.member,
                    "outcome": outcome,
                    "error": error,
                    "rejects_by_reason": s.rejects_by_reason,
                    "preview": s.preview.as_ref().map(&preview),
                    "examples": s.examples.iter().map(|r| serde_json::json!({
                        "line": r.line,
                        "column": r.reject.column,
                        "reason": r.reject.reason.code(),
                        "detail": r.reject.detail,
                        "raw": r.raw,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let totals = self.totals();
        serde_json::json!({
            "sources": sources,
            "totals": {
                "sources": totals.sources,
                "unreadable": totals.unreadable,
                "records": totals.records,
                "rows": totals.rows,
                "rejected": totals.rejected,
                "filtered": totals.filtered,
                "duplicate_keys": totals.duplicate_keys,
            },
        })
    }
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

impl DayDelivery {
    /// One line about a delivery that needs attention, times on `zone`'s clock.
    pub fn problem_line(&self, zone: chrono_tz::Tz) -> String {
        let local = |t: chrono::DateTime<chrono::Utc>| {
            t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
        };
        let mut what = Vec::new();
        match self.status {
            DeliveryStatus::Missing => what.push(format!("missing (due {})", local(self.due))),
            DeliveryStatus::Late => what.push(format!(
                "late by {} (due {}, arrived {})",
                duration_text(self.late_by_s.unwrap_or(0)),
                local(self.due),
                self.arrived.map(local).unwrap_or_default()
            )),
            DeliveryStatus::OnTime | DeliveryStatus::Pending => {}
        }
        if let (Some(flag), Some(records), Some(usual)) =
            (self.volume, self.records, self.usual_records)
        {
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
        format!("{:<12} {}  {}", self.region, self.day, what.join("; "))
    }

    /// Its cell in the region × day grid.
    fn cell(&self) -> &'static str {
        match (self.status, self.volume) {
            (DeliveryStatus::Missing, _) => "MISSING",
            (DeliveryStatus::Pending, _) => "-",
            (DeliveryStatus::Late, _) => "late",
            (_, Some(VolumeFlag::Low)) => "low",
            (_, Some(VolumeFlag::High)) => "high",
            (DeliveryStatus::OnTime, None) => "ok",
        }
    }
}

impl fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let zone: chrono_tz::Tz = self
            .zone
            .parse()
            .unwrap_or(kefu_model::calendar::DEFAULT_TIME_ZONE);
        writeln!(
            f,
            "deliveries to {}, data days {} to {} (calendar {}), as of {}",
            self.warehouse,
            self.from,
            self.to,
            self.zone,
            self.now.with_timezone(&zone).format("%Y-%m-%d %H:%M")
        )?;
        let config = &self.expected;
        writeln!(
            f,
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
        )?;
        if self.regions.is_empty() {
            writeln!(
                f,
                "\nno ingested file is named as a delivery (REGION_YYYYMMDD.zip|tar.gz by default; --schedule sets the pattern)"
            )?;
        } else {
            let problems: Vec<_> = self.problems().collect();
            if problems.is_empty() {
                writeln!(
                    f,
                    "\nno problems: every delivery due has arrived on time, at its usual volume"
                )?;
            } else {
                writeln!(f, "\n{}:", count(problems.len() as u64, "problem"))?;
                for d in problems {
                    writeln!(f, "  {}", d.problem_line(zone))?;
                }
            }
            write!(f, "\n{:<12}", "region")?;
            for d in self.days.iter().filter(|d| d.region == self.regions[0]) {
                write!(f, " {:>7}", d.day.format("%m-%d"))?;
            }
            writeln!(f)?;
            for region in &self.regions {
                write!(f, "{region:<12}")?;
                for d in self.days.iter().filter(|d| &d.region == region) {
                    write!(f, " {:>7}", d.cell())?;
                }
                writeln!(f)?;
            }
            writeln!(
                f,
                "  (ok: on time at the usual volume; -: not due yet; low/high: volume far from the region's usual for that weekday)"
            )?;
        }
        if self.unrecognised_count > 0 {
            writeln!(
                f,
                "\n{} not named as deliveries (e.g. {}): master data and snapshots are; else change the schedule's pattern",
                count(self.unrecognised_count as u64, "ingested file"),
                self.unrecognised.first().map_or("", String::as_str)
            )?;
        }
        Ok(())
    }
}
