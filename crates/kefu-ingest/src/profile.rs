//! Mapping profiles: how a source's columns and values map to a canonical table.
//!
//! The built-in profile knows the model's English column names and Chinese export headers
//! (`kefu model` lists both), timestamps split over `…日期`/`…时间` or `…_date`/`…_time`
//! columns, Chinese enum labels, the usual null tokens, and `0` as an unidentified
//! customer. It reads plain and `--messy` `kefu gen` output without any configuration.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use kefu_model::{Column, ColumnKind, Table};

use crate::value::{DEFAULT_DATE_FORMATS, DEFAULT_DATETIME_FORMATS, DEFAULT_TIME_FORMATS};

/// How a source's values are read and mapped.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// The file the profile was read from, for messages.
    pub file: Option<String>,
    /// The table every file feeds; detected from the file name or header when absent.
    pub table: Option<Table>,
    /// Time zone of local timestamps in the source.
    pub time_zone: Tz,
    /// Whether the profile set the zone; if not, ingest reads local times in the
    /// warehouse's own zone.
    pub time_zone_given: bool,
    /// Values meaning "no value" in every column (compared after trimming).
    pub null_values: Vec<String>,
    /// Extra null values per canonical column (e.g. customer_id `0`).
    pub column_null_values: BTreeMap<String, Vec<String>>,
    /// Source headers per canonical column, tried before the built-in names; a source
    /// column may feed several canonical ones.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Values for canonical columns the source does not have (e.g. region).
    pub constants: BTreeMap<String, String>,
    /// The source encoding; detected when absent.
    pub encoding: Option<crate::TextEncoding>,
    /// The field delimiter; sniffed from the header line when absent (`,` `\t` `;` `|`).
    pub delimiter: Option<u8>,
    /// Source value → canonical code, per enum column (e.g. outcome `HANG` → `abandoned`).
    pub value_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub datetime_formats: Vec<String>,
    pub date_formats: Vec<String>,
    pub time_formats: Vec<String>,
    /// Fill missing durations from the row's timestamps (wait, talk).
    pub derive_durations: bool,
    /// When set, only rows of this region land; rows of any other region are rejected
    /// (`region_not_allowed`). A regional office's uploads are ingested with its own.
    pub only_region: Option<String>,
    /// A SQL mapping (`SELECT … FROM source [WHERE …]`) in place of header matching; see
    /// [`crate::transform`].
    pub sql: Option<String>,
    /// Seconds a later event may read before an earlier one (clock skew between systems)
    /// and still be accepted, moved up to the earlier one.
    pub ordering_tolerance_s: u32,
    /// The dates (first, last) a record's event time may fall on; default from 1950 to a
    /// year after today. Outside, the record is rejected (`implausible_timestamp`).
    pub event_time_window: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    /// The source is an event log: each row a later state of its record, many rows per
    /// key (the warehouse keeps the newest). Repeated keys are then expected, not
    /// counted.
    pub event_log: bool,
}

impl Profile {
    pub fn builtin() -> Self {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Profile {
            name: "builtin".into(),
            file: None,
            table: None,
            time_zone: kefu_model::calendar::DEFAULT_TIME_ZONE,
            time_zone_given: false,
            null_values: owned(&["", "NULL", "null", "-"]),
            column_null_values: BTreeMap::from([("customer_id".to_string(), owned(&["0"]))]),
            aliases: BTreeMap::new(),
            constants: BTreeMap::new(),
            encoding: None,
            delimiter: None,
            value_maps: BTreeMap::new(),
            datetime_formats: owned(DEFAULT_DATETIME_FORMATS),
            date_formats: owned(DEFAULT_DATE_FORMATS),
            time_formats: owned(DEFAULT_TIME_FORMATS),
            derive_durations: true,
            only_region: None,
            sql: None,
            ordering_tolerance_s: 0,
            event_time_window: None,
            event_log: false,
        }
    }
}

impl Profile {
    /// The instants (µs UTC, from inclusive, until exclusive) an event time may take: the
    /// profile's window (whole UTC days, so that no zone cuts off a local day at its
    /// edges), else from 1950 to a year after today.
    pub fn event_time_window(&self) -> (i64, i64) {
        let day = |d: chrono::NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp_micros()
        };
        const DAY: i64 = 86_400_000_000;
        match self.event_time_window {
            Some((first, last)) => (day(first) - DAY, day(last) + 2 * DAY),
            None => (
                crate::value::PLAUSIBLE_FROM,
                chrono::Utc::now().timestamp_micros() + 366 * DAY,
            ),
        }
    }
}

/// Required counts an export may leave out (absent or empty): they are zero. Other
/// required columns have no default (e.g. a callback's `attempt`).
pub(crate) fn zero_when_missing(table: Table, column: &str) -> bool {
    matches!(
        (table, column),
        (Table::Calls, "transfers") | (Table::Tickets, "reopened_count")
    )
}

/// Where a canonical column's value comes from in a source record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Whole(usize),
    /// A timestamp split over a date and a time field.
    Split {
        date: usize,
        time: usize,
    },
    /// The profile's constant for the column.
    Constant,
}

/// A source header resolved against one canonical table.
#[derive(Debug, Clone)]
pub struct FieldMap {
    pub table: Table,
    /// Per model column (in model order), where its value comes from, if anywhere.
    pub columns: Vec<Option<Source>>,
    /// Number of fields a record must have.
    pub width: usize,
    pub headers: Vec<String>,
    /// Headers that map to no column (ignored).
    pub unmapped: Vec<String>,
}

/// The header does not fit the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the header does not provide the required {table} columns: {}", missing.join(", "))]
pub struct MissingColumns {
    pub table: Table,
    pub missing: Vec<&'static str>,
}

fn normalise(header: &str) -> String {
    header.trim().trim_start_matches('\u{feff}').to_lowercase()
}

impl Profile {
    fn names(&self, c: &Column) -> Vec<String> {
        vec![normalise(c.name), normalise(c.zh)]
    }

    /// Resolves `headers` against `table`.
    pub fn resolve(&self, table: Table, headers: &[&str]) -> Result<FieldMap, MissingColumns> {
        let norm: Vec<String> = headers.iter().map(|h| normalise(h)).collect();
        let find = |name: &str| norm.iter().position(|h| h == name);
        let mut used = vec![false; norm.len()];
        let mut columns = Vec::with_capacity(table.columns().len());
        for c in table.columns() {
            // Explicit mappings first; they may reuse a source column.
            let mut source = self
                .aliases
                .get(c.name)
                .and_then(|names| names.iter().find_map(|n| find(&normalise(n))))
                .map(Source::Whole);
            if source.is_none() && self.constants.contains_key(c.name) {
                source = Some(Source::Constant);
            }
            if source.is_none() && c.kind == ColumnKind::Timestamp {
                for (date, time) in [c.split_headers(false), c.split_headers(true)] {
                    if let (Some(d), Some(t)) = (find(&date), find(&time)) {
                        source = Some(Source::Split { date: d, time: t });
                        break;
                    }
                }
            }
            if source.is_none() {
                source = self
                    .names(c)
                    .iter()
                    .find_map(|n| {
                        norm.iter()
                            .enumerate()
                            .position(|(i, h)| h == n && !used[i])
                    })
                    .map(Source::Whole);
            }
            match source {
                Some(Source::Whole(i)) => used[i] = true,
                Some(Source::Split { date, time }) => {
                    used[date] = true;
                    used[time] = true;
                }
                Some(Source::Constant) | None => {}
            }
            columns.push(source);
        }
        let missing: Vec<&'static str> = table
            .columns()
            .iter()
            .zip(&columns)
            .filter(|(c, s)| !c.nullable && s.is_none() && !zero_when_missing(table, c.name))
            .map(|(c, _)| c.name)
            .collect();
        if !missing.is_empty() {
            return Err(MissingColumns { table, missing });
        }
        Ok(FieldMap {
            table,
            columns,
            width: headers.len(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            unmapped: headers
                .iter()
                .zip(&used)
                .filter(|(_, u)| !**u)
                .map(|(h, _)| h.to_string())
                .collect(),
        })
    }

    /// The table a file feeds: the profile's, else the file name's stem (`calls_…`,
    /// `话务记录_…`), else the table whose required columns the header provides.
    pub fn detect_table(&self, file_name: &str, headers: &[&str]) -> Option<Table> {
        if self.table.is_some() {
            return self.table;
        }
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        let stem = base.split(['_', '.', '-']).next().unwrap_or(base);
        if let Ok(t) = stem.parse::<Table>() {
            return Some(t);
        }
        Table::ALL
            .into_iter()
            .filter_map(|t| {
                let map = self.resolve(t, headers).ok()?;
                Some((map.columns.iter().filter(|s| s.is_some()).count(), t))
            })
            .max()
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_chinese_and_split_headers_resolve() {
        let p = Profile::builtin();
        let english: Vec<&str> = Table::Customers.columns().iter().map(|c| c.name).collect();
        let map = p.resolve(Table::Customers, &english).unwrap();
        assert!(map.columns.iter().all(Option::is_some));
        let chinese = [
            "\u{feff}客户号",
            "地区",
            "归属网点",
            "客户类型",
            "客户等级",
            "开户日期",
            "开户时间",
            "销户日期",
            "销户时间",
            "销户原因",
        ];
        let map = p.resolve(Table::Customers, &chinese).unwrap();
        assert_eq!(map.columns[0], Some(Source::Whole(0)));
        assert_eq!(map.columns[5], Some(Source::Split { date: 5, time: 6 }));
        assert!(map.unmapped.is_empty());
    }

    #[test]
    fn missing_required_columns_are_named() {
        let err = Profile::builtin()
            .resolve(Table::Customers, &["customer_id", "region"])
            .unwrap_err();
        assert_eq!(
            err.missing,
            vec!["branch_id", "segment", "tier", "opened_at"]
        );
        assert!(err.to_string().contains("branch_id, segment"));
    }

    #[test]
    fn tables_are_detected_from_names_and_headers() {
        let p = Profile::builtin();
        assert_eq!(
            p.detect_table("x/话务记录_20260101.csv", &[]),
            Some(Table::Calls)
        );
        assert_eq!(p.detect_table("tickets.csv", &[]), Some(Table::Tickets));
        let headers: Vec<&str> = Table::Visits.columns().iter().map(|c| c.zh).collect();
        assert_eq!(p.detect_table("export.csv", &headers), Some(Table::Visits));
        assert_eq!(p.detect_table("export.csv", &["a", "b"]), None);
    }
}
