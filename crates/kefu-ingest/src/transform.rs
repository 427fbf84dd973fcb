//! Profiles whose mapping is SQL: `SELECT … FROM source [WHERE …]` over a source's raw
//! text columns, giving the canonical columns of its table.
//!
//! The statement is planned once per source header with DataFusion and then evaluated as
//! expressions over each chunk of records (no query per chunk), so a SQL profile reads on
//! every core like a declarative one. Its output goes through the same [`Converter`] as
//! declarative mappings: types, vocabularies, required columns and ordering are checked
//! after the transform, and every record ends as a row, a reject, or a row the `WHERE`
//! clause dropped on purpose (`filtered`).
//!
//! A value the helpers cannot read fails its chunk's evaluation; the chunk is then
//! evaluated a record at a time, so only the records at fault are rejected, each with the
//! helper's reason.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono_tz::Tz;
use datafusion::common::{DataFusionError, Result as DfResult, exec_err};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{SessionConfig, SessionContext};
use kefu_model::Table;

use crate::convert::{Converter, Fields, Reject, RejectReason};
use crate::profile::{FieldMap, Profile};
use crate::value::{TimestampParser, ValueError};

/// The name of the raw source in a profile's SQL.
pub const SOURCE_TABLE: &str = "source";

/// A profile's SQL, planned against one source header.
#[derive(Debug)]
pub struct SqlTransform {
    /// The raw columns: one `Utf8` column per header field.
    input: SchemaRef,
    /// The raw columns the plan reads, in the order its scan gives them.
    scan: Vec<usize>,
    /// Their schema.
    scanned: SchemaRef,
    /// What happens to each chunk after the scan, bottom up.
    steps: Vec<Step>,
    /// The canonical columns the last step gives, in order.
    names: Vec<String>,
}

/// One node of the optimized plan above the scan.
#[derive(Debug)]
enum Step {
    Filter(Arc<dyn PhysicalExpr>),
    Project(Vec<Arc<dyn PhysicalExpr>>),
}

/// A SQL error and where it is, for the profile's author: `sql line 2 column 9: …`.
pub(crate) fn locate(error: &DataFusionError) -> String {
    if let Some(d) = error.diagnostic()
        && let Some(span) = d.span
    {
        return format!(
            "sql line {} column {}: {}",
            span.start.line, span.start.column, d.message
        );
    }
    // The parser gives its position in the message ("at Line: 2, Column: 9").
    let message = error.to_string();
    let message = message
        .strip_prefix("SQL error: ParserError(\"")
        .and_then(|m| m.strip_suffix("\")"))
        .map_or(message.clone(), str::to_string);
    format!("sql: {message}")
}

fn describe(error: &DataFusionError, profile: &str) -> String {
    format!("{profile}: {}", locate(error))
}

const SHAPE: &str = "sql must be one SELECT … FROM source [WHERE …] (no joins, grouping, \
                     ordering or limits): a record of the source gives at most one row";

impl SqlTransform {
    /// Plans `sql` against a source with `headers`; the output must name columns of
    /// `table`. Errors name the profile and, where DataFusion knows it, the position.
    pub fn compile(
        sql: &str,
        profile: &Profile,
        table: Table,
        headers: &[&str],
    ) -> Result<SqlTransform, String> {
        // Messages name the profile's file where there is one.
        let origin = profile.file.as_deref().unwrap_or(&profile.name);
        let mut seen = std::collections::HashSet::new();
        let mut fields = Vec::with_capacity(headers.len());
        for h in headers {
            let name = h.trim().trim_start_matches('\u{feff}').to_string();
            if !seen.insert(name.clone()) {
                return Err(format!(
                    "{origin}: the source has two columns named '{name}'; SQL cannot tell them apart"
                ));
            }
            fields.push(Field::new(name, DataType::Utf8, true));
        }
        let input: SchemaRef = Arc::new(Schema::new(fields));
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.collect_spans = true;
        // Headers are case-sensitive ("CallID"), as the source writes them.
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let ctx = SessionContext::new_with_config(config);
        for udf in helpers(profile) {
            ctx.register_udf(udf);
        }
        let empty =
            MemTable::try_new(input.clone(), vec![vec![]]).map_err(|e| format!("{origin}: {e}"))?;
        ctx.register_table(SOURCE_TABLE, Arc::new(empty))
            .map_err(|e| format!("{origin}: {e}"))?;
        let state = ctx.state();
        let plan = futures::executor::block_on(state.create_logical_plan(sql))
            .map_err(|e| describe(&e, origin))?;
        let names: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for (i, name) in names.iter().enumerate() {
            if table.column(name).is_none() {
                return Err(format!(
                    "{origin}: sql gives a column '{name}', which is not a column of {} \
                     (name each output after a column: … AS call_id)",
                    table.name()
                ));
            }
            if names[..i].contains(name) {
                return Err(format!("{origin}: sql gives the column '{name}' twice"));
            }
        }
        // Optimized, the plan computes shared subexpressions once and reads only the
        // columns it uses.
        let plan = state.optimize(&plan).map_err(|e| describe(&e, origin))?;
        let mut steps = Vec::new();
        let mut at = &plan;
        let scan = loop {
            match at {
                LogicalPlan::Projection(p) => {
                    let exprs = p
                        .expr
                        .iter()
                        .map(|e| ctx.create_physical_expr(e.clone(), p.input.schema()))
                        .collect::<DfResult<Vec<_>>>()
                        .map_err(|e| describe(&e, origin))?;
                    steps.push(Step::Project(exprs));
                    at = &p.input;
                }
                LogicalPlan::Filter(f) => {
                    let predicate = ctx
                        .create_physical_expr(f.predicate.clone(), f.input.schema())
                        .map_err(|e| describe(&e, origin))?;
                    steps.push(Step::Filter(predicate));
                    at = &f.input;
                }
                LogicalPlan::SubqueryAlias(a) => at = &a.input,
                LogicalPlan::TableScan(t) if t.filters.is_empty() && t.fetch.is_none() => {
                    break t
                        .projection
                        .clone()
                        .unwrap_or_else(|| (0..input.fields().len()).collect());
                }
                _ => return Err(format!("{origin}: {SHAPE}")),
            }
        };
        steps.reverse();
        let scanned = Arc::new(input.project(&scan).map_err(|e| format!("{origin}: {e}"))?);
        Ok(SqlTransform {
            input,
            scanned,
            scan,
            steps,
            names,
        })
    }

    /// The output's column names (canonical), in order.
    pub fn output_names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// How the output maps onto `table`: each canonical column from its output column.
    pub fn field_map(&self, profile: &Profile, table: Table) -> Result<FieldMap, String> {
        let mut plain = profile.clone();
        plain.aliases.clear();
        plain
            .resolve(table, &self.output_names())
            .map_err(|e| format!("{}: sql: {e}", profile.name))
    }

    /// Evaluates the transform over a batch of raw records, giving the kept rows' indices
    /// and the output columns as text.
    fn evaluate(&self, raw: &RecordBatch) -> DfResult<(Vec<u32>, Vec<StringArray>)> {
        let mut batch = raw.clone();
        let mut kept: Vec<u32> = (0..batch.num_rows() as u32).collect();
        for step in &self.steps {
            match step {
                Step::Filter(predicate) => {
                    let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
                    let Some(mask) = mask.as_boolean_opt() else {
                        return exec_err!("the WHERE clause is not a condition");
                    };
                    let mut i = 0;
                    kept.retain(|_| {
                        let keep = mask.is_valid(i) && mask.value(i);
                        i += 1;
                        keep
                    });
                    batch = filter_record_batch(&batch, mask)?;
                }
                Step::Project(exprs) => {
                    let rows = batch.num_rows();
                    let columns = exprs
                        .iter()
                        .map(|e| e.evaluate(&batch)?.into_array(rows))
                        .collect::<DfResult<Vec<ArrayRef>>>()?;
                    let schema = Schema::new(
                        columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                            .collect::<Vec<_>>(),
                    );
                    batch = RecordBatch::try_new_with_options(
                        Arc::new(schema),
                        columns,
                        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
                    )?;
                }
            }
        }
        let columns = batch
            .columns()
            .iter()
            .map(as_text)
            .collect::<DfResult<Vec<_>>>()?;
        Ok((kept, columns))
    }

    /// Converts `records` (with their lines) through the transform into `converter`.
    /// Rows the `WHERE` clause drops are counted, not rejected.
    pub(crate) fn convert<F: Fields>(
        &self,
        converter: &mut Converter,
        records: &[(u64, F)],
        mut row: impl FnMut(u64),
        mut reject: impl FnMut(u64, Reject, &F),
    ) -> Result<u64, String> {
        let width = self.input.fields().len();
        let mut valid: Vec<usize> = Vec::with_capacity(records.len());
        for (r, (line, record)) in records.iter().enumerate() {
            if record.count() == width {
                valid.push(r);
            } else {
                reject(
                    *line,
                    Reject {
                        reason: RejectReason::WrongColumnCount,
                        column: None,
                        detail: format!("{} fields, the header has {width}", record.count()),
                    },
                    record,
                );
            }
        }
        let batch = self.raw_batch(records, &valid);
        let mut filtered = 0;
        match self.evaluate(&batch) {
            Ok((kept, columns)) => {
                filtered += (valid.len() - kept.len()) as u64;
                land(
                    converter,
                    records,
                    &kept,
                    &columns,
                    &valid,
                    &mut row,
                    &mut reject,
                );
            }
            // Some value failed a helper: find which, one record at a time.
            Err(_) => {
                for (i, &r) in valid.iter().enumerate() {
                    match self.evaluate(&batch.slice(i, 1)) {
                        Ok((kept, columns)) => {
                            filtered += 1 - kept.len() as u64;
                            land(
                                converter,
                                records,
                                &kept,
                                &columns,
                                &[r],
                                &mut row,
                                &mut reject,
                            );
                        }
                        Err(e) if is_about_data(&e) => {
                            let (line, record) = &records[r];
                            reject(*line, reject_of(&e), record);
                        }
                        // Not the record's fault: the transform cannot run at all.
                        Err(e) => return Err(format!("the profile's sql failed: {e}")),
                    }
                }
            }
        }
        Ok(filtered)
    }

    /// The columns the plan reads of `rows`, as the scan gives them.
    fn raw_batch<F: Fields>(&self, records: &[(u64, F)], rows: &[usize]) -> RecordBatch {
        let bytes: usize = rows
            .iter()
            .map(|&r| {
                self.scan
                    .iter()
                    .map(|&i| records[r].1.field(i).len())
                    .sum::<usize>()
            })
            .sum();
        let per_column = bytes / self.scan.len().max(1) + 16;
        let mut builders: Vec<StringBuilder> = self
            .scan
            .iter()
            .map(|_| StringBuilder::with_capacity(rows.len(), per_column))
            .collect();
        for &r in rows {
            let record = &records[r].1;
            for (&i, b) in self.scan.iter().zip(builders.iter_mut()) {
                b.append_value(record.field(i));
            }
        }
        let arrays: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        RecordBatch::try_new_with_options(
            self.scanned.clone(),
            arrays,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
        .expect("text columns of the header")
    }
}

/// Hands the transform's output rows to the converter. `rows[k]` is the record of the
/// evaluated batch's row `k`; `kept` the batch rows the filter kept.
fn land<F: Fields>(
    converter: &mut Converter,
    records: &[(u64, F)],
    kept: &[u32],
    columns: &[StringArray],
    rows: &[usize],
    row: &mut impl FnMut(u64),
    reject: &mut impl FnMut(u64, Reject, &F),
) {
    for (out, &k) in kept.iter().enumerate() {
        let (line, record) = &records[rows[k as usize]];
        match converter.push(&OutputRow { columns, row: out }) {
            Ok(()) => row(*line),
            Err(r) => reject(*line, r, record),
        }
    }
}

/// An output column as text: timestamps as RFC 3339 instants, everything else as Arrow
/// casts it (a null stays null).
fn as_text(values: &ArrayRef) -> DfResult<StringArray> {
    let values = match values.data_type() {
        DataType::Timestamp(_, Some(_)) => values.clone(),
        // A naive timestamp (DataFusion's to_timestamp) is wall time in the source's zone.
        DataType::Timestamp(unit, None) => cast(values, &DataType::Timestamp(*unit, None))?,
        _ => values.clone(),
    };
    let text = cast(&values, &DataType::Utf8)?;
    Ok(text.as_string::<i32>().clone())
}

/// One row of a transform's output, as the converter reads records. A null is empty
/// text, which every SQL profile reads as null.
struct OutputRow<'a> {
    columns: &'a [StringArray],
    row: usize,
}

impl Fields for OutputRow<'_> {
    fn count(&self) -> usize {
        self.columns.len()
    }
    fn field(&self, i: usize) -> &str {
        let c = &self.columns[i];
        if c.is_null(self.row) {
            ""
        } else {
            c.value(self.row)
        }
    }
}

/// Whether `error` comes from a record's values (a helper or a cast could not read one)
/// rather than from the transform itself.
fn is_about_data(error: &DataFusionError) -> bool {
    matches!(
        error.find_root(),
        DataFusionError::Execution(_) | DataFusionError::ArrowError(..)
    )
}

/// A helper's failure on one record as its reject. Helpers start their messages with the
/// reason code (`unparseable_timestamp: …`).
fn reject_of(error: &DataFusionError) -> Reject {
    let message = error.to_string();
    let text = message
        .strip_prefix("Execution error: ")
        .unwrap_or(&message)
        .to_string();
    let (reason, detail) = match text.split_once(": ") {
        Some(("unparseable_timestamp", rest)) => {
            (RejectReason::UnparseableTimestamp, rest.to_string())
        }
        Some(("implausible_timestamp", rest)) => {
            (RejectReason::ImplausibleTimestamp, rest.to_string())
        }
        _ => (RejectReason::TransformFailed, text),
    };
    Reject {
        reason,
        column: None,
        detail,
    }
}

/// The helpers a profile's SQL may call besides DataFusion's own functions.
///
/// - `datetime(text [, format [, zone]])`: a local date and time, in the profile's formats
///   and zone unless given, as an instant.
/// - `date_time(date, time [, date_format, time_format [, zone]])`: the same from a date
///   and a time-of-day in two columns (an empty time is midnight).
/// - `roll_over_midnight(ts, reference)`: `ts` one day later when it is more than 12 hours
///   before `reference` — a time-of-day past midnight read with the day of an earlier
///   event; seconds of clock skew are left alone.
pub fn helpers(profile: &Profile) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(ParseLocal::new("datetime", profile, false)),
        ScalarUDF::from(ParseLocal::new("date_time", profile, true)),
        ScalarUDF::from(RollOverMidnight::new(profile.time_zone)),
    ]
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ParseLocal {
    name: &'static str,
    split: bool,
    zone: Tz,
    datetime_formats: Vec<String>,
    date_formats: Vec<String>,
    time_formats: Vec<String>,
    signature: Signature,
}

impl ParseLocal {
    fn new(name: &'static str, profile: &Profile, split: bool) -> Self {
        ParseLocal {
            name,
            split,
            zone: profile.time_zone,
            datetime_formats: profile.datetime_formats.clone(),
            date_formats: profile.date_formats.clone(),
            time_formats: profile.time_formats.clone(),
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    fn arity(&self) -> &'static str {
        if self.split {
            "date_time(date, time [, date_format, time_format [, zone]])"
        } else {
            "datetime(text [, format [, zone]])"
        }
    }

    /// The parser for constant format and zone arguments (the profile's by default).
    fn parser(&self, args: &[ColumnarValue]) -> DfResult<TimestampParser> {
        let constant = |i: usize| -> DfResult<Option<String>> {
            match args.get(i) {
                None => Ok(None),
                Some(ColumnarValue::Scalar(s)) => Ok(s.try_as_str().flatten().map(str::to_string)),
                Some(_) => exec_err!("{}: formats and zone must be constants", self.arity()),
            }
        };
        let (first, zone_at) = if self.split { (2, 4) } else { (1, 2) };
        let zone = match constant(zone_at)? {
            None => self.zone,
            Some(z) => match z.parse::<Tz>() {
                Ok(z) => z,
                Err(_) => return exec_err!("{}: unknown time zone '{z}'", self.name),
            },
        };
        let one = |i| constant(i).map(|f| f.map(|f| vec![f]));
        let result = if self.split {
            TimestampParser::new(
                zone,
                &self.datetime_formats,
                &one(first)?.unwrap_or_else(|| self.date_formats.clone()),
                &one(first + 1)?.unwrap_or_else(|| self.time_formats.clone()),
            )
        } else {
            TimestampParser::new(
                zone,
                &one(first)?.unwrap_or_else(|| self.datetime_formats.clone()),
                &self.date_formats,
                &self.time_formats,
            )
        };
        result.or_else(|e| exec_err!("{}: {e}", self.name))
    }
}

fn text_column(value: &ColumnarValue, rows: usize) -> DfResult<StringArray> {
    let array = value.to_array(rows)?;
    Ok(cast(&array, &DataType::Utf8)?.as_string::<i32>().clone())
}

impl ScalarUDFImpl for ParseLocal {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let allowed: &[usize] = if self.split { &[2, 4, 5] } else { &[1, 2, 3] };
        if !allowed.contains(&args.len()) {
            return exec_err!("{} takes {} arguments", self.arity(), args.len());
        }
        Ok(utc_micros())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let parser = self.parser(&args.args)?;
        let rows = args.number_rows;
        let first = text_column(&args.args[0], rows)?;
        let second = if self.split {
            Some(text_column(&args.args[1], rows)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if first.is_null(i) || second.as_ref().is_some_and(|s| s.is_null(i)) {
                out.push(None);
                continue;
            }
            let value = first.value(i);
            let parsed = match &second {
                Some(time) => parser.parse_split(value, time.value(i)),
                None => parser.parse(value),
            };
            match parsed {
                Ok(micros) => out.push(Some(micros)),
                Err(e) => {
                    let shown = match &second {
                        Some(time) => format!("'{value}' '{}'", time.value(i)),
                        None => format!("'{value}'"),
                    };
                    return match e {
                        ValueError::ImplausibleTimestamp => exec_err!(
                            "implausible_timestamp: {}({shown}) is before 1950 or after 2099",
                            self.name
                        ),
                        _ => exec_err!(
                            "unparseable_timestamp: {}({shown}) matches none of its formats",
                            self.name
                        ),
                    };
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(
            arrow::array::TimestampMicrosecondArray::from(out).with_timezone("UTC"),
        )))
    }
}

/// Half a day: a time-of-day this much before its reference is on the next day.
const ROLL_OVER_MICROS: i64 = 12 * 3600 * 1_000_000;
const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Moves `ts` to the same local time of the next day (DST nights included).
#[derive(Debug, PartialEq, Eq, Hash)]
struct RollOverMidnight {
    zone: Tz,
    signature: Signature,
}

impl RollOverMidnight {
    fn new(zone: Tz) -> Self {
        RollOverMidnight {
            zone,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }

    fn next_day(&self, micros: i64) -> i64 {
        use chrono::TimeZone;
        let Some(utc) = chrono::DateTime::from_timestamp_micros(micros) else {
            return micros + DAY_MICROS;
        };
        let wall = utc.with_timezone(&self.zone).naive_local() + chrono::Duration::days(1);
        self.zone
            .from_local_datetime(&wall)
            .earliest()
            .map_or(micros + DAY_MICROS, |t| t.timestamp_micros())
    }
}

impl ScalarUDFImpl for RollOverMidnight {
    fn name(&self) -> &str {
        "roll_over_midnight"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(utc_micros())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let micros = |v: &ColumnarValue| -> DfResult<arrow::array::TimestampMicrosecondArray> {
            let a = cast(&v.to_array(rows)?, &utc_micros())?;
            Ok(
                a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .clone(),
            )
        };
        let (ts, reference) = (micros(&args.args[0])?, micros(&args.args[1])?);
        let out: arrow::array::TimestampMicrosecondArray = ts
            .iter()
            .zip(reference.iter())
            .map(|(t, r)| match (t, r) {
                (Some(t), Some(r)) if r - t > ROLL_OVER_MICROS => Some(self.next_day(t)),
                (t, _) => t,
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone("UTC"))))
    }
}
