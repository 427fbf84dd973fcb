//! The tables a warehouse stores: the five canonical tables of the model and `_rejects`,
//! each a Delta table under `<warehouse>/<name>/`, with its partition column and the Delta
//! table properties kefu sets.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::filter_record_batch;
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

/// Event tables are partitioned by month; `customers` is a dimension (one row per
/// customer, opened over decades) and is not partitioned.
pub fn partitioned_by_month(table: Table) -> bool {
    table != Table::Customers
}

impl StoredTable {
    pub const ALL: [StoredTable; 6] = [
        StoredTable::Model(Table::Calls),
        StoredTable::Model(Table::Tickets),
        StoredTable::Model(Table::Callbacks),
        StoredTable::Model(Table::Visits),
        StoredTable::Model(Table::Customers),
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
        matches!(
            self,
            StoredTable::Model(Table::Tickets) | StoredTable::Model(Table::Customers)
        )
    }
}

impl std::fmt::Display for StoredTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The time zone whose calendar months partition the tables (`month=YYYY-MM`): the
/// reporting calendar of the offices, not UTC.
pub const PARTITION_TIME_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// `YYYY-MM` of local time in [`PARTITION_TIME_ZONE`].
pub fn month_of(micros: i64) -> String {
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = PARTITION_TIME_ZONE.from_utc_datetime(&utc.naive_utc());
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The first instant (µs UTC) of the local month after the one containing `micros`.
pub fn next_month_start(micros: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = PARTITION_TIME_ZONE.from_utc_datetime(&utc.naive_utc());
    let (y, m) = if local.month() == 12 {
        (local.year() + 1, 1)
    } else {
        (local.year(), local.month() + 1)
    };
    let start = chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .expect("valid month")
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    PARTITION_TIME_ZONE
        .from_local_datetime(&start)
        .earliest()
        .map_or(i64::MAX, |t| t.timestamp_micros())
}

/// The rows of `batch` (in `table`'s file schema) by partition: per local month of the
/// event time for the event tables, all in one for `customers`.
pub fn split_by_partition(
    table: Table,
    batch: &RecordBatch,
) -> Result<Vec<(Option<String>, RecordBatch)>, arrow::error::ArrowError> {
    if !partitioned_by_month(table) {
        return Ok(vec![(None, batch.clone())]);
    }
    let time_column = table
        .columns()
        .iter()
        .position(|c| c.name == table.event_time_column())
        .expect("event time column");
    let times = batch
        .column(time_column)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("event times are timestamps");
    // Event times are required: a null cannot reach a table.
    let (Some(min), Some(max)) = (arrow::compute::min(times), arrow::compute::max(times)) else {
        return Ok(Vec::new());
    };
    if times.null_count() == 0 && max < next_month_start(min) {
        return Ok(vec![(Some(month_of(min)), batch.clone())]);
    }
    let mut out = Vec::new();
    let mut month_start = min;
    while month_start <= max {
        let end = next_month_start(month_start);
        let mask: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t >= month_start && t < end)))
            .collect();
        let rows = filter_record_batch(batch, &mask)?;
        if rows.num_rows() > 0 {
            out.push((Some(month_of(month_start)), rows));
        }
        month_start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_local_calendar() {
        // 2026-01-31T16:00:00Z is 2026-02-01 00:00 in Shanghai.
        let feb_start = 1_769_875_200_000_000;
        assert_eq!(month_of(feb_start), "2026-02");
        assert_eq!(month_of(feb_start - 1), "2026-01");
        assert_eq!(next_month_start(feb_start - 1), feb_start);
    }
}
