//! Source records → canonical Arrow batches, or rejects with the reason.
//!
//! A record is parsed and validated completely before anything is appended, so a rejected
//! record leaves no trace in the batch. Every record ends as exactly one of: a row, or a
//! [`Reject`].

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int32Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use csv::StringRecord;
use kefu_model::vocab::trim;
use kefu_model::{ColumnKind, Table};

use crate::profile::{FieldMap, Profile, Source, zero_when_missing};
use crate::value::{
    TimestampParser, ValueError, parse_bool, parse_duration, parse_int, parse_money,
};

/// Why a record was rejected. The codes match the reasons `kefu gen --messy` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    WrongColumnCount,
    MissingId,
    MissingValue,
    UnparseableTimestamp,
    /// A timestamp before 1950 or from 2100 on (a placeholder such as `1900-01-01`).
    ImplausibleTimestamp,
    InvalidEnum,
    BadNumber,
    BadBoolean,
    NegativeDuration,
    EndBeforeStart,
    /// Bytes that are not text in the source's encoding.
    InvalidText,
    /// A JSON Lines record that is not a JSON object.
    InvalidJson,
    /// An event id seen earlier in the same batch (counted as a duplicate, not a reject).
    DuplicateId,
    /// A row of another region than the only one the profile allows (an office's upload).
    RegionNotAllowed,
    /// Fields that cannot all be true (an abandoned call with an answer time).
    Contradictory,
    /// A profile's SQL failed on the record (a helper could not read a value).
    TransformFailed,
}

impl RejectReason {
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::WrongColumnCount => "wrong_column_count",
            RejectReason::MissingId => "missing_id",
            RejectReason::MissingValue => "missing_value",
            RejectReason::UnparseableTimestamp => "unparseable_timestamp",
            RejectReason::ImplausibleTimestamp => "implausible_timestamp",
            RejectReason::InvalidEnum => "invalid_enum",
            RejectReason::BadNumber => "bad_number",
            RejectReason::BadBoolean => "bad_boolean",
            RejectReason::NegativeDuration => "negative_duration",
            RejectReason::EndBeforeStart => "end_before_start",
            RejectReason::InvalidText => "invalid_text",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::DuplicateId => "duplicate_id",
            RejectReason::RegionNotAllowed => "region_not_allowed",
            RejectReason::Contradictory => "contradictory",
            RejectReason::TransformFailed => "transform_failed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl From<ValueError> for RejectReason {
    fn from(e: ValueError) -> Self {
        match e {
            ValueError::UnparseableTimestamp => RejectReason::UnparseableTimestamp,
            ValueError::ImplausibleTimestamp => RejectReason::ImplausibleTimestamp,
            ValueError::NegativeDuration => RejectReason::NegativeDuration,
            ValueError::BadNumber => RejectReason::BadNumber,
            ValueError::BadBoolean => RejectReason::BadBoolean,
        }
    }
}

/// A record that did not land, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    /// The source header of the offending field; none for a wrong column count.
    pub column: Option<String>,
    /// What was wrong, for people.
    pub detail: String,
}

/// The fields of one source record.
pub trait Fields {
    fn count(&self) -> usize;
    fn field(&self, i: usize) -> &str;
}

impl Fields for StringRecord {
    fn count(&self) -> usize {
        self.len()
    }
    fn field(&self, i: usize) -> &str {
        &self[i]
    }
}

/// The most columns a table has.
const MAX_COLUMNS: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Cell<'r> {
    Null,
    /// Text of the record, trimmed.
    Text(&'r str),
    /// The profile's constant for this column.
    Constant(usize),
    Code(&'static str),
    Int(i64),
    Bool(bool),
    Money(i128),
}

enum Builder {
    Text(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Int(Int32Builder),
    Bool(BooleanBuilder),
    Money(Decimal128Builder),
}

impl Builder {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Id | ColumnKind::Text | ColumnKind::Enum(_) => {
                Builder::Text(StringBuilder::new())
            }
            ColumnKind::Timestamp => Builder::Timestamp(
                TimestampMicrosecondBuilder::new()
                    .with_timezone(kefu_model::table::STORAGE_TIME_ZONE),
            ),
            ColumnKind::Seconds | ColumnKind::Int => Builder::Int(Int32Builder::new()),
            ColumnKind::Bool => Builder::Bool(BooleanBuilder::new()),
            ColumnKind::Money => Builder::Money(
                Decimal128Builder::new()
                    .with_precision_and_scale(14, 2)
                    .expect("valid decimal"),
            ),
        }
    }

    #[inline]
    fn append(&mut self, cell: Cell, constants: &[Option<String>]) {
        match (self, cell) {
            (Builder::Text(b), Cell::Text(text)) => b.append_value(text),
            (Builder::Text(b), Cell::Constant(i)) => {
                b.append_value(constants[i].as_deref().unwrap_or_default())
            }
            (Builder::Text(b), Cell::Code(c)) => b.append_value(c),
            (Builder::Text(b), Cell::Null) => b.append_null(),
            (Builder::Timestamp(b), Cell::Int(v)) => b.append_value(v),
            (Builder::Timestamp(b), Cell::Null) => b.append_null(),
            (Builder::Int(b), Cell::Int(v)) => b.append_value(v as i32),
            (Builder::Int(b), Cell::Null) => b.append_null(),
            (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Bool(b), Cell::Null) => b.append_null(),
            (Builder::Money(b), Cell::Money(v)) => b.append_value(v),
            (Builder::Money(b), Cell::Null) => b.append_null(),
            _ => unreachable!("cells are parsed to their column's kind"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Money(b) => Arc::new(b.finish()),
        }
    }
}

/// Pairs of (end, start) columns where the end may not precede the start.
fn ordered_pairs(table: Table) -> &'static [(&'static str, &'static str)] {
    match table {
        // In the order a call goes through them, so that a time moved up to its
        // predecessor within the tolerance is then compared with its successor.
        Table::Calls => &[
            ("queued_at", "ivr_entered_at"),
            ("answered_at", "queued_at"),
            ("ended_at", "ivr_entered_at"),
        ],
        Table::Tickets => &[("resolved_at", "created_at"), ("closed_at", "created_at")],
        Table::Visits => &[
            ("called_at", "arrived_at"),
            ("service_ended_at", "service_started_at"),
        ],
        Table::Customers | Table::OrgUnits => &[("closed_at", "opened_at")],
        Table::Staff => &[("left_at", "hired_at")],
        Table::Callbacks | Table::Queues | Table::Categories => &[],
    }
}

/// Positions of the calls columns that durations are derived from.
#[derive(Debug, Clone, Copy)]
struct CallColumns {
    queued_at: usize,
    answered_at: usize,
    ended_at: usize,
    wait_s: usize,
    talk_s: usize,
    hold_s: usize,
}

impl CallColumns {
    fn of(table: Table) -> Option<Self> {
        let at = |name| table.columns().iter().position(|c| c.name == name);
        Some(CallColumns {
            queued_at: at("queued_at")?,
            answered_at: at("answered_at")?,
            ended_at: at("ended_at")?,
            wait_s: at("wait_s")?,
            talk_s: at("talk_s")?,
            hold_s: at("hold_s")?,
        })
    }
}

/// The values meaning null in one column. Checked for every field of every record, so
/// most values are ruled out by their length alone.
#[derive(Debug, Clone)]
struct NullSet {
    values: Vec<String>,
    /// Bit n set: some value has n bytes (n < 64); bit 63 stands for all longer ones.
    lengths: u64,
}

impl NullSet {
    fn new<'a>(values: impl Iterator<Item = &'a String>) -> Self {
        let values: Vec<String> = values.map(|v| v.trim().to_string()).collect();
        let lengths = values.iter().fold(0, |m, v| m | Self::bit(v.len()));
        NullSet { values, lengths }
    }

    fn bit(len: usize) -> u64 {
        1 << len.min(63)
    }

    fn contains(&self, value: &str) -> bool {
        // Most fields are ruled out by length or first byte without a comparison call
        // (a libc memcmp per field shows up in profiles).
        if self.lengths & Self::bit(value.len()) == 0 {
            return false;
        }
        let first = value.as_bytes().first();
        self.values
            .iter()
            .any(|n| n.as_bytes().first() == first && n == value)
    }
}

/// Converts the records of one source file (one header) into batches of one table.
pub struct Converter {
    table: Table,
    map: FieldMap,
    times: TimestampParser,
    null_values: Vec<NullSet>,
    value_maps: Vec<Option<std::collections::BTreeMap<String, String>>>,
    /// Per enum column: each code and Chinese label → its code (the exact spellings,
    /// looked up by hash; other spellings fall back to the vocabulary's own lookup).
    terms: Vec<std::collections::HashMap<&'static str, &'static str, ahash::RandomState>>,
    constants: Vec<Option<String>>,
    builders: Vec<Builder>,
    rows: usize,
    pairs: Vec<(usize, usize)>,
    /// How far (µs) a later event may read before an earlier one (clock skew between
    /// systems); such a time is moved up to the earlier one.
    ordering_tolerance: i64,
    /// Where to derive call durations, when the profile asks for it.
    derive_calls: Option<CallColumns>,
    /// The region column and the one region allowed in it, when the profile restricts.
    only_region: Option<(usize, String)>,
    /// The event-time column and the instants (µs, from inclusive, until exclusive) it
    /// may hold: a date outside is a placeholder or a typo, and would land in a far-away
    /// partition.
    event_window: Option<(usize, i64, i64)>,
    /// Calls: the outcome and answer-time columns, for the abandoned-with-an-answer check.
    call_outcome: Option<(usize, usize)>,
}

impl Converter {
    pub fn new(profile: &Profile, map: FieldMap) -> Result<Self, String> {
        let table = map.table;
        let columns = table.columns();
        let times = TimestampParser::new(
            profile.time_zone,
            &profile.datetime_formats,
            &profile.date_formats,
            &profile.time_formats,
        )?;
        let at = |name: &str| {
            columns
                .iter()
                .position(|c| c.name == name)
                .expect("ordered pairs name columns of their table")
        };
        let pairs = ordered_pairs(table)
            .iter()
            .map(|(end, start)| (at(end), at(start)))
            .collect();
        Ok(Converter {
            table,
            null_values: columns
                .iter()
                .map(|c| {
                    NullSet::new(
                        profile
                            .null_values
                            .iter()
                            .chain(profile.column_null_values.get(c.name).into_iter().flatten()),
                    )
                })
                .collect(),
            value_maps: columns
                .iter()
                .map(|c| profile.value_maps.get(c.name).cloned())
                .collect(),
            terms: columns
                .iter()
                .map(|c| match c.kind {
                    ColumnKind::Enum(vocab) => vocab
                        .terms
                        .iter()
                        .flat_map(|t| [(t.code, t.code), (t.zh, t.code)])
                        .collect(),
                    _ => Default::default(),
                })
                .collect(),
            derive_calls: if profile.derive_durations {
                CallColumns::of(table)
            } else {
                None
            },
            constants: columns
                .iter()
                .map(|c| profile.constants.get(c.name).cloned())
                .collect(),
            builders: columns.iter().map(|c| Builder::new(c.kind)).collect(),
            event_window: columns
                .iter()
                .position(|c| {
                    c.name == table.event_time_column() && c.kind == ColumnKind::Timestamp
                })
                .map(|i| {
                    let (from, until) = profile.event_time_window();
                    (i, from, until)
                }),
            call_outcome: (table == Table::Calls).then(|| {
                let at = |n: &str| {
                    columns
                        .iter()
                        .position(|c| c.name == n)
                        .expect("calls column")
                };
                (at("outcome"), at("answered_at"))
            }),
            only_region: profile.only_region.as_ref().and_then(|r| {
                columns
                    .iter()
                    .position(|c| c.name == "region")
                    .map(|i| (i, r.clone()))
            }),
            rows: 0,
            map,
            times,
            pairs,
            ordering_tolerance: i64::from(profile.ordering_tolerance_s) * 1_000_000,
        })
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Rows appended since the last [`Converter::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    fn header(&self, i: usize) -> String {
        self.map.headers.get(i).cloned().unwrap_or_default()
    }

    /// Parses one record; appends it as a row, or explains why not.
    pub fn push<R: Fields + ?Sized>(&mut self, record: &R) -> Result<(), Reject> {
        if record.count() != self.map.width {
            return Err(Reject {
                reason: RejectReason::WrongColumnCount,
                column: None,
                detail: format!(
                    "{} fields, the header has {}",
                    record.count(),
                    self.map.width
                ),
            });
        }
        let columns = self.table.columns();
        // On the stack, borrowing the record: each field is found and trimmed once.
        let mut cells = [Cell::Null; MAX_COLUMNS];
        let cells = &mut cells[..columns.len()];
        for (i, cell) in cells.iter_mut().enumerate() {
            if let Some(source) = self.map.columns[i] {
                *cell = self.parse_cell(i, source, record)?;
            }
        }
        for &(end, start) in &self.pairs {
            if let (Cell::Int(e), Cell::Int(s)) = (cells[end], cells[start])
                && e < s
            {
                if s - e <= self.ordering_tolerance {
                    cells[end] = Cell::Int(s);
                    continue;
                }
                let columns = self.table.columns();
                return Err(Reject {
                    reason: RejectReason::EndBeforeStart,
                    column: self.source_header(end),
                    detail: format!(
                        "{} is {} s before {}",
                        columns[end].name,
                        (s - e + 999_999) / 1_000_000,
                        columns[start].name
                    ),
                });
            }
        }
        if let Some(c) = self.derive_calls {
            derive_call_durations(c, cells);
        }
        for (i, c) in columns.iter().enumerate() {
            if matches!(cells[i], Cell::Null) && !c.nullable {
                if zero_when_missing(self.table, c.name) {
                    cells[i] = Cell::Int(0);
                    continue;
                }
                let column = self.source_header(i);
                return Err(Reject {
                    reason: if i == 0 {
                        RejectReason::MissingId
                    } else {
                        RejectReason::MissingValue
                    },
                    detail: format!("{} is required", c.name),
                    column,
                });
            }
        }
        if let Some((i, from, until)) = self.event_window
            && let Cell::Int(t) = cells[i]
            && !(from..until).contains(&t)
        {
            let show = |t: i64| {
                chrono::DateTime::from_timestamp_micros(t)
                    .map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%d").to_string())
            };
            return Err(Reject {
                reason: RejectReason::ImplausibleTimestamp,
                column: self.source_header(i),
                detail: format!(
                    "{} {} is outside the plausible window {} to {} (event_time_window in the \
                     profile)",
                    columns[i].name,
                    show(t),
                    show(from),
                    show(until - 1)
                ),
            });
        }
        if let Some((outcome, answered)) = self.call_outcome
            && let (Cell::Code("abandoned"), Cell::Int(_)) = (cells[outcome], cells[answered])
        {
            return Err(Reject {
                reason: RejectReason::Contradictory,
                column: self.source_header(answered),
                detail: "the call is abandoned but has an answer time".into(),
            });
        }
        if let Some((i, allowed)) = &self.only_region {
            let value = match cells[*i] {
                Cell::Text(v) => v,
                Cell::Constant(c) => self.constants[c].as_deref().unwrap_or_default(),
                _ => "",
            };
            if value != allowed {
                return Err(Reject {
                    reason: RejectReason::RegionNotAllowed,
                    column: self.source_header(*i),
                    detail: format!("region '{value}' is not '{allowed}', the only one allowed"),
                });
            }
        }
        for (b, cell) in self.builders.iter_mut().zip(cells.iter()) {
            b.append(*cell, &self.constants);
        }
        self.rows += 1;
        Ok(())
    }

    fn source_header(&self, column: usize) -> Option<String> {
        match self.map.columns[column]? {
            Source::Whole(i) | Source::Split { date: i, .. } => Some(self.header(i)),
            Source::Constant => Some(format!("(constant {})", self.table.columns()[column].name)),
        }
    }

    /// `value` is already trimmed.
    fn is_null(&self, column: usize, value: &str) -> bool {
        self.null_values[column].contains(value)
    }

    fn parse_cell<'r, R: Fields + ?Sized>(
        &self,
        i: usize,
        source: Source,
        record: &'r R,
    ) -> Result<Cell<'r>, Reject> {
        let column = &self.table.columns()[i];
        let fail = |reason: RejectReason, field: usize, value: &str| Reject {
            reason,
            column: Some(self.header(field)),
            detail: format!("{}: '{}'", column.name, value),
        };
        let (field, value) = match source {
            Source::Constant => {
                let value = self.constants[i].as_deref().unwrap_or_default();
                return match column.kind {
                    ColumnKind::Enum(vocab) => vocab
                        .lookup(value)
                        .map(|t| Cell::Code(t.code))
                        .ok_or_else(|| fail(RejectReason::InvalidEnum, 0, value)),
                    _ => Ok(Cell::Constant(i)),
                };
            }
            Source::Whole(f) => (f, trim(record.field(f))),
            Source::Split { date, time } => {
                let d = trim(record.field(date));
                // A null token in either half ("no such event", e.g. a time of 0:00:00
                // declared null) makes the timestamp null, not midnight.
                // An empty time stays midnight (a date-only export).
                let t = trim(record.field(time));
                if self.is_null(i, d) || (!t.is_empty() && self.is_null(i, t)) {
                    return Ok(Cell::Null);
                }
                return self
                    .times
                    .parse_split(d, record.field(time))
                    .map(Cell::Int)
                    .map_err(|e| fail(e.into(), date, &format!("{d} {}", record.field(time))));
            }
        };
        if self.is_null(i, value) {
            return Ok(Cell::Null);
        }
        match column.kind {
            ColumnKind::Id | ColumnKind::Text => Ok(Cell::Text(value)),
            ColumnKind::Enum(vocab) => {
                let mapped = self.value_maps[i]
                    .as_ref()
                    .and_then(|m| m.get(value))
                    .map_or(value, String::as_str);
                self.terms[i]
                    .get(mapped)
                    .copied()
                    .or_else(|| vocab.lookup(mapped).map(|t| t.code))
                    .map(Cell::Code)
                    .ok_or_else(|| fail(RejectReason::InvalidEnum, field, value))
            }
            ColumnKind::Timestamp => self
                .times
                .parse(value)
                .map(Cell::Int)
                .map_err(|e| fail(e.into(), field, value)),
            ColumnKind::Seconds => parse_duration(value)
                .map(|s| Cell::Int(s.into()))
                .map_err(|e| fail(e.into(), field, value)),
            ColumnKind::Int => parse_int(value)
                .map(|s| Cell::Int(s.into()))
                .map_err(|e| fail(e.into(), field, value)),
            ColumnKind::Bool => parse_bool(value)
                .map(Cell::Bool)
                .map_err(|e| fail(e.into(), field, value)),
            ColumnKind::Money => parse_money(value)
                .map(Cell::Money)
                .map_err(|e| fail(e.into(), field, value)),
        }
    }

    /// The rows appended so far as a batch in the model's schema; starts a new batch.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.table.schema(), arrays).expect("builders follow the schema")
    }
}

/// wait = (answered or hang-up) − queued; talk = ended − answered − hold.
fn derive_call_durations(c: CallColumns, cells: &mut [Cell]) {
    let get = |cells: &[Cell], i: usize| match cells[i] {
        Cell::Int(v) => Some(v),
        _ => None,
    };
    let (queued, answered, ended) = (
        get(cells, c.queued_at),
        get(cells, c.answered_at),
        get(cells, c.ended_at),
    );
    let hold = get(cells, c.hold_s).unwrap_or(0);
    let wait = match (get(cells, c.wait_s), queued) {
        (None, Some(q)) => answered.or(ended).map(|t| (t - q) / 1_000_000),
        _ => None,
    };
    let talk = match (get(cells, c.talk_s), answered, ended) {
        (None, Some(a), Some(e)) => Some((e - a) / 1_000_000 - hold),
        _ => None,
    };
    if let Some(w) = wait.filter(|w| *w >= 0) {
        cells[c.wait_s] = Cell::Int(w);
    }
    if let Some(t) = talk.filter(|t| *t >= 0) {
        cells[c.talk_s] = Cell::Int(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_fits_the_cells_on_the_stack() {
        for table in Table::ALL {
            assert!(table.columns().len() <= MAX_COLUMNS, "{}", table.name());
        }
    }

    fn converter(table: Table) -> Converter {
        let profile = Profile::builtin();
        let headers: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
        Converter::new(&profile, profile.resolve(table, &headers).unwrap()).unwrap()
    }

    fn record(table: Table, set: &[(&str, &str)]) -> StringRecord {
        table
            .columns()
            .iter()
            .map(|c| {
                set.iter()
                    .find(|(n, _)| *n == c.name)
                    .map_or("", |(_, v)| *v)
            })
            .collect()
    }

    #[test]
    fn only_the_listed_counts_default_to_zero() {
        let mut calls = converter(Table::Calls);
        let call = record(
            Table::Calls,
            &[
                ("call_id", "CL1"),
                ("region", "r"),
                ("branch_id", "r-cc"),
                ("queue", "billing"),
                ("direction", "inbound"),
                ("channel", "hotline"),
                ("ivr_entered_at", "2026-01-01T00:00:00Z"),
                ("ended_at", "2026-01-01T00:01:00Z"),
                ("outcome", "ivr_self_service"),
            ],
        );
        assert_eq!(
            calls.push(&call),
            Ok(()),
            "an empty transfers count is zero"
        );

        let mut callbacks = converter(Table::Callbacks);
        let callback = record(
            Table::Callbacks,
            &[
                ("callback_id", "CB1"),
                ("ticket_id", "TK1"),
                ("customer_id", "CU1"),
                ("region", "r"),
                ("method", "sms"),
                ("status", "no_answer"),
                ("performed_at", "2026-01-01T00:00:00Z"),
            ],
        );
        let reject = callbacks.push(&callback).unwrap_err();
        assert_eq!(reject.reason, RejectReason::MissingValue);
        assert_eq!(reject.column.as_deref(), Some("attempt"));
    }
}
