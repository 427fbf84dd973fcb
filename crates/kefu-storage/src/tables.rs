//! The tables a warehouse stores: the five canonical tables of the model and `_rejects`,
//! each a Delta table under `<warehouse>/<name>/`, with its partition column and the Delta
//! table properties kefu sets.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{Datelike, TimeZone};
use kefu_model::Table;

pub const REJECTS_TABLE: &str = "_rejects";
/// The partition column of the event tables: `YYYY-MM`, the month of the event time on
/// the Asia/Shanghai calendar.
pub const MONTH_COLUMN: &str = "month";
/// The partition column of `_rejects`: the table the record was meant for (`unknown` when
/// it never reached one).
pub const REJECTS_TABLE_COLUMN: &str = "table";

/// Commits between two checkpoints of a table's log: a reader replays at most this many
/// JSON commits (about 1 ms each), a writer writes a checkpoint (about 30 ms) this often.
pub const CHECKPOINT_INTERVAL: u64 = 20;

/// A table of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoredTable {
    Model(Table),
    Rejects,
}

/// The schema of `_rejects` files (its `table` is the partition column).
pub fn rejects_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("batch_id", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("member", DataType::Utf8, true),
            Field::new("line", DataType::Int64, false),
            Field::new("column", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, false),
            Field::new("detail", DataType::Utf8, false),
            Field::new("raw", DataType::Utf8, false),
            Field::new(
                "rejected_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]))
    });
    SCHEMA.clone()
}

/// Event tables are partitioned by month; dimensions (`customers`, one row per customer
/// opened over decades; the organisation, queues, categories) are not.
pub fn partitioned_by_month(table: Table) -> bool {
    !table.is_dimension()
}

impl StoredTable {
    pub const ALL: [StoredTable; 10] = [
        StoredTable::Model(Table::Calls),
        StoredTable::Model(Table::Tickets),
        StoredTable::Model(Table::Callbacks),
        StoredTable::Model(Table::Visits),
        StoredTable::Model(Table::Customers),
        StoredTable::Model(Table::OrgUnits),
        StoredTable::Model(Table::Staff),
        StoredTable::Model(Table::Queues),
        StoredTable::Model(Table::Categories),
        StoredTable::Rejects,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoredTable::Model(t) => t.name(),
            StoredTable::Rejects => REJECTS_TABLE,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The columns stored in the Parquet files.
    pub fn file_schema(self) -> SchemaRef {
        match self {
            StoredTable::Model(t) => t.schema(),
            StoredTable::Rejects => rejects_schema(),
        }
    }

    pub fn partition_column(self) -> Option<&'static str> {
        match self {
            StoredTable::Model(t) if partitioned_by_month(t) => Some(MONTH_COLUMN),
            StoredTable::Model(_) => None,
            StoredTable::Rejects => Some(REJECTS_TABLE_COLUMN),
        }
    }

    /// The table's schema as Delta and SQL see it: the file columns, then the partition
    /// column (text).
    pub fn table_schema(self) -> SchemaRef {
        let file = self.file_schema();
        match self.partition_column() {
            None => file,
            Some(p) => {
                let mut fields: Vec<Field> =
                    file.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new(p, DataType::Utf8, true));
                Arc::new(Schema::new(fields))
            }
        }
    }

    /// The key column of a canonical table (`_rejects` has none: it only grows).
    pub fn key_column(self) -> Option<&'static str> {
        match self {
            StoredTable::Model(t) => Some(t.key_column()),
            StoredTable::Rejects => None,
        }
    }

    /// Delta table properties: how often to checkpoint, per-file statistics only on the
    /// columns readers prune by (the key, region, branch, times), which keeps the log
    /// small, and deletion vectors where records change.
    pub fn properties(self) -> Vec<(&'static str, String)> {
        let stats: Vec<&str> = match self {
            StoredTable::Model(t) => t
                .columns()
                .iter()
                .filter(|c| {
                    c.name == t.key_column()
                        || c.name == "region"
                        || c.name == "branch_id"
                        || c.kind == kefu_model::ColumnKind::Timestamp
                })
                .map(|c| c.name)
                .collect(),
            StoredTable::Rejects => vec!["batch_id", "source", "reason", "rejected_at"],
        };
        let mut properties = vec![
            ("delta.checkpointInterval", CHECKPOINT_INTERVAL.to_string()),
            ("delta.dataSkippingStatsColumns", stats.join(",")),
        ];
        if self.records_change() {
            properties.push(("delta.enableDeletionVectors", "true".to_string()));
        }
        properties
    }

    /// Tables whose records change after they are first exported (tickets move through
    /// their workflow, customers change tier and close): an update marks the stored row
    /// deleted in a deletion vector instead of rewriting its whole file, so a day's few
    /// hundred updates cost a few hundred rows, not the table.
    pub fn records_change(self) -> bool {
        matches!(self, StoredTable::Model(Table::Tickets))
            || matches!(self, StoredTable::Model(t) if t.is_dimension())
    }
}

impl std::fmt::Display for StoredTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `YYYY-MM` of local time in `zone` (the warehouse's calendar partitions its tables by
/// month, `month=YYYY-MM`: the offices' reporting months, not UTC's).
pub fn month_of(zone: chrono_tz::Tz, micros: i64) -> String {
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = zone.from_utc_datetime(&utc.naive_utc());
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The first instant (µs UTC) of the local month after the one containing `micros`.
pub fn next_month_start(zone: chrono_tz::Tz, micros: i64) -> i64 {
    kefu_model::calendar::month_bounds(zone, micros).1
}

/// The first instant (µs UTC) of the local month containing `micros`.
fn month_start(zone: chrono_tz::Tz, micros: i64) -> i64 {
    kefu_model::calendar::month_bounds(zone, micros).0
}

/// A partition (`None` for an unpartitioned table) and row numbers of a batch in it.
pub type PartitionRows = (Option<String>, Vec<u32>);

/// The row numbers `rows` of `batch` (in `table`'s file schema) by partition, partitions
/// ascending and rows in the order given: named, not copied
/// (the caller gathers them once, in sorted order).
pub fn partition_rows(
    table: Table,
    zone: chrono_tz::Tz,
    batch: &RecordBatch,
    rows: impl IntoIterator<Item = u32>,
) -> Result<Vec<PartitionRows>, arrow::error::ArrowError> {
    if !partitioned_by_month(table) {
        return Ok(vec![(None, rows.into_iter().collect())]);
    }
    let times = batch
        .column_by_name(table.event_time_column())
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        .ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!(
                "{table}: the event time column is missing or not a timestamp"
            ))
        })?;
    let mut months: BTreeMap<i64, (String, Vec<u32>)> = BTreeMap::new();
    // Rows arrive mostly in time order: the month of the previous row is tried first.
    let mut current: Option<(i64, i64)> = None;
    for row in rows {
        if times.is_null(row as usize) {
            return Err(arrow::error::ArrowError::InvalidArgumentError(format!(
                "{table}: a row without its event time cannot be partitioned"
            )));
        }
        let t = times.value(row as usize);
        let start = match current {
            Some((start, end)) if start <= t && t < end => start,
            _ => {
                let start = month_start(zone, t);
                current = Some((start, next_month_start(zone, t)));
                start
            }
        };
        months
            .entry(start)
            .or_insert_with(|| (month_of(zone, t), Vec::new()))
            .1
            .push(row);
    }
    Ok(months
        .into_values()
        .map(|(month, rows)| (Some(month), rows))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn months_follow_the_local_calendar() {
        // 2026-01-31T16:00:00Z is 2026-02-01 00:00 in Shanghai.
        let feb_start = 1_769_875_200_000_000;
        assert_eq!(month_of(SH, feb_start), "2026-02");
        assert_eq!(month_of(SH, feb_start - 1), "2026-01");
        assert_eq!(next_month_start(SH, feb_start - 1), feb_start);
    }

    /// Every month of every zone from 1900 to 2100 is bounded by its own first instant
    /// and the next month's: a month whose first midnight falls in a DST gap (Shanghai
    /// 1940-06-01) made the end "the end of time" and filed later rows in that month.
    #[test]
    fn month_bounds_hold_in_every_zone_and_year() {
        for zone in [
            chrono_tz::Asia::Shanghai,
            chrono_tz::America::Sao_Paulo,
            chrono_tz::America::Havana,
            chrono_tz::Asia::Tehran,
            chrono_tz::Europe::London,
            chrono_tz::Pacific::Apia,
        ] {
            let mut day = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
            while day.year() < 2100 {
                // The 1st at noon, and the last minute of the month, locally.
                let next = day.checked_add_months(chrono::Months::new(1)).unwrap();
                for local in [
                    day.and_hms_opt(12, 0, 0).unwrap(),
                    next.and_hms_opt(0, 0, 0).unwrap() - chrono::Duration::minutes(1),
                ] {
                    let Some(at) = zone.from_local_datetime(&local).earliest() else {
                        continue;
                    };
                    let t = at.timestamp_micros();
                    let (start, end) = kefu_model::calendar::month_bounds(zone, t);
                    assert!(start <= t && t < end, "{zone} {local}: {start} {t} {end}");
                    assert!(end - start < 32 * 86_400_000_000, "{zone} {local}");
                    assert!(end - start > 27 * 86_400_000_000, "{zone} {local}");
                    // The first instant is local midnight, or the end of a gap over it.
                    let first = zone.timestamp_micros(start).unwrap();
                    assert_eq!(first.date_naive(), day, "{zone} {local}");
                    let before = zone.timestamp_micros(start - 1).unwrap();
                    assert!(before.date_naive() < day, "{zone} {local}");
                }
                day = next;
            }
        }
        // 1940-06-01 00:00 did not exist in Shanghai (clocks went to 01:00).
        let june = chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(1940, 6, 15, 12, 0, 0)
            .unwrap()
            .timestamp_micros();
        assert_eq!(month_of(SH, june), "1940-06");
        assert!(next_month_start(SH, june) < i64::MAX / 2);
    }

    /// Rows are grouped by local month (ascending), keep the order they were named in,
    /// and rows not named stay out.
    #[test]
    fn rows_are_named_by_local_month() {
        let feb_start = 1_769_875_200_000_000;
        let table = Table::Calls;
        let times = [
            feb_start,
            feb_start - 1,
            feb_start + 40 * 86_400_000_000,
            feb_start + 5,
        ];
        let field = table
            .schema()
            .field_with_name(table.event_time_column())
            .unwrap()
            .clone();
        let column = arrow::compute::cast(
            &TimestampMicrosecondArray::from(times.to_vec()),
            field.data_type(),
        )
        .unwrap();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column]).unwrap();
        let groups = partition_rows(table, SH, &batch, [3, 2, 1, 0]).unwrap();
        assert_eq!(
            groups,
            vec![
                (Some("2026-01".to_string()), vec![1]),
                (Some("2026-02".to_string()), vec![3, 0]),
                (Some("2026-03".to_string()), vec![2]),
            ]
        );
        assert_eq!(
            partition_rows(table, SH, &batch, [0, 1]).unwrap().len(),
            2,
            "rows not named stay out"
        );
        assert_eq!(
            partition_rows(Table::Customers, SH, &batch, [2, 0]).unwrap(),
            vec![(None, vec![2, 0])]
        );
    }
}
