//! Functions the KPI queries need that SQL lacks.
//!
//! - `local_date(ts)`, `local_hour(ts)`, `local_weekday(ts)`: the calendar date, hour
//!   (0–23) and ISO weekday (1 = Monday … 7 = Sunday) of a UTC instant on the
//!   warehouse's own calendar (its time zone, Asia/Shanghai unless it was created with
//!   another), as reports group by local days.
//! - `local_midnight(date)`: the UTC instant at which a local calendar day starts, so
//!   that windows are computed on local dates (`local_midnight(DATE '2026-07-01' -
//!   INTERVAL '6 months')` starts on 1 January, local) and still prune by event time
//!   (constant arguments are folded at planning).
//! - `local_trunc(period, ts)`: the local day, ISO week (Monday), month, quarter, half
//!   year (1 January, 1 July) or year an instant falls in, as the date it starts on — the
//!   grouping key of every trend.
//! - `period_start(period, date)` and `period_shift(period, date, n)`: the first day of
//!   the period holding a date, and a date moved by `n` periods (a week is 7 days, a half
//!   year 6 months; the day of month is clamped, as SQL intervals do), so that queries
//!   step through periods, half years included, without a table of intervals.
//! - `date_diff(part, start, end)`: day, week, month, quarter, half or year boundaries between
//!   two dates (cohort "months since"), or hour, minute, second, millisecond or
//!   microsecond boundaries between two instants, as DuckDB counts them. Exact where
//!   `end - start <= INTERVAL '7 days'` is not: DataFusion compares a duration with an
//!   interval field by field (a 26-day duration is "less" than 7 days).
//! - `error(message)`: fails the query with `message` (a query's guard on its inputs).
//! - `max_by(value, key)`, `min_by(value, key)`: see [`crate::by_key`].
//! - `period_last_next(period, at)`: each period's last instant and the next period's
//!   first, per group; see [`crate::last_next`].
//! - `business_seconds(start, end)`: working seconds between two instants under the
//!   session's working calendar ([`WorkingCalendar`]: working hours, weekdays, holidays
//!   and make-up working days), for SLAs stated in working hours or days.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int32Array, Int64Array, PrimitiveArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, TimeUnit, TimestampMicrosecondType,
};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use kefu_model::calendar::{DEFAULT_TIME_ZONE, Period};

/// Registers kefu's functions with `ctx`: the `local_*` functions on the calendar of
/// `zone` (the warehouse's), business time under `calendar`.
pub fn register(ctx: &SessionContext, calendar: &WorkingCalendar, zone: Tz) {
    for function in local_functions(zone) {
        ctx.register_udf(function);
    }
    ctx.register_udf(business_seconds(calendar.clone()));
    ctx.register_udf(ScalarUDF::from(PeriodStart::new()));
    ctx.register_udf(ScalarUDF::from(PeriodShift::new()));
    ctx.register_udf(ScalarUDF::from(DateDiff::new()));
    ctx.register_udf(ScalarUDF::from(RaiseError::new()));
    for function in crate::by_key::functions() {
        ctx.register_udaf(function);
    }
    ctx.register_udaf(crate::last_next::function());
    ctx.register_udaf(crate::percentiles::function());
}

/// The period named by a function's constant argument (`local_trunc`, `date_diff`, …).
fn parse_period(function: &str, value: &ColumnarValue) -> DfResult<Period> {
    let text = match value {
        ColumnarValue::Scalar(s) => s.try_as_str().flatten(),
        ColumnarValue::Array(_) => None,
    };
    let name = text.map(str::to_ascii_lowercase);
    match name.as_deref().and_then(Period::parse) {
        Some(period) => Ok(period),
        None => exec_err!(
            "{function}: the period must be 'day', 'week', 'month', 'quarter', \
             'half' or 'year' (a constant), not {}",
            name.map_or("a column or null".to_string(), |o| format!("'{o}'"))
        ),
    }
}

/// The argument as days since the epoch (dates, timestamps — their UTC date — or text).
fn days(value: &ColumnarValue, rows: usize) -> DfResult<Date32Array> {
    argument_as::<Date32Type>(value, rows, &DataType::Date32)
}

/// A function argument as an array of `to` (a scalar repeated over `rows`).
fn argument_as<T: ArrowPrimitiveType>(
    value: &ColumnarValue,
    rows: usize,
    to: &DataType,
) -> DfResult<PrimitiveArray<T>> {
    let array = cast(&value.clone().into_array(rows)?, to)?;
    Ok(array.as_primitive::<T>().clone())
}

/// The functions that read instants on a local calendar, on `zone`'s.
pub fn local_functions(zone: Tz) -> Vec<ScalarUDF> {
    let mut functions: Vec<ScalarUDF> = [LocalPart::Date, LocalPart::Hour, LocalPart::Weekday]
        .into_iter()
        .map(|part| ScalarUDF::from(LocalTime::new(part, zone)))
        .collect();
    functions.push(ScalarUDF::from(LocalTrunc::new(zone)));
    functions.push(ScalarUDF::from(LocalMidnight::new(zone)));
    functions
}

/// The zone a `local_*` function reads instants in; `None` for other functions. Plans
/// sent to a cluster carry it, so executors use the warehouse's calendar.
pub fn zone_of(function: &ScalarUDF) -> Option<Tz> {
    let inner = function.inner();
    inner
        .downcast_ref::<LocalTime>()
        .map(|f| f.zone)
        .or_else(|| inner.downcast_ref::<LocalTrunc>().map(|f| f.zone))
        .or_else(|| inner.downcast_ref::<LocalMidnight>().map(|f| f.zone))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalTrunc {
    zone: Tz,
    signature: Signature,
}

impl LocalTrunc {
    fn new(zone: Tz) -> Self {
        LocalTrunc {
            zone,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LocalTrunc {
    fn name(&self) -> &str {
        "local_trunc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let period = parse_period(self.name(), &args.args[0])?;
        let times = micros(&args.args[1], args.number_rows)?;
        let mut offsets = DayOffsets::new(self.zone);
        // Events come in time order more often than not: remember the last day's answer.
        let mut last = (i32::MIN, 0);
        let starts: Date32Array = times
            .iter()
            .map(|t| {
                t.map(|t| {
                    let day = (t + offsets.at(t)).div_euclid(MICROS_PER_DAY) as i32;
                    if day != last.0 {
                        last = (day, period.start_day(day));
                    }
                    last.1
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(starts)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalMidnight {
    zone: Tz,
    signature: Signature,
}

impl LocalMidnight {
    fn new(zone: Tz) -> Self {
        LocalMidnight {
            zone,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// The UTC instant (microseconds) at which local day `day` (days since 1970-01-01)
/// starts: its midnight, or where a transition skips midnight, the first local hour
/// that exists (the instant the clocks jumped to it).
pub fn local_day_start(day: i32, zone: Tz) -> Option<i64> {
    let date = NaiveDate::from_num_days_from_ce_opt(day.checked_add(719_163)?)?;
    (0..24).find_map(|hour| {
        zone.from_local_datetime(&date.and_hms_opt(hour, 0, 0)?)
            .earliest()
            .map(|t| t.timestamp_micros())
    })
}

impl ScalarUDFImpl for LocalMidnight {
    fn name(&self) -> &str {
        "local_midnight"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(utc_micros())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let dates = days(&args.args[0], args.number_rows)?;
        let starts: TimestampMicrosecondArray = dates
            .iter()
            .map(|d| local_day_start(d?, self.zone))
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC");
        Ok(ColumnarValue::Array(Arc::new(starts)))
    }
}

/// `period_start(period, date)`: the first day of the period holding `date`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PeriodStart {
    signature: Signature,
}

impl PeriodStart {
    fn new() -> Self {
        PeriodStart {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PeriodStart {
    fn name(&self) -> &str {
        "period_start"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let period = parse_period(self.name(), &args.args[0])?;
        let dates = days(&args.args[1], args.number_rows)?;
        let starts: Date32Array = dates.iter().map(|d| Some(period.start_day(d?))).collect();
        Ok(ColumnarValue::Array(Arc::new(starts)))
    }
}

/// `period_shift(period, date, n)`: `date` moved by `n` periods (negative: back).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PeriodShift {
    signature: Signature,
}

impl PeriodShift {
    fn new() -> Self {
        PeriodShift {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PeriodShift {
    fn name(&self) -> &str {
        "period_shift"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let period = parse_period(self.name(), &args.args[0])?;
        let dates = days(&args.args[1], args.number_rows)?;
        let counts = argument_as::<arrow::datatypes::Int64Type>(
            &args.args[2],
            args.number_rows,
            &DataType::Int64,
        )?;
        let moved: Date32Array = dates
            .iter()
            .zip(counts.iter())
            .map(|(d, n)| period.shift_day(d?, n?))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(moved)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateDiff {
    signature: Signature,
}

impl DateDiff {
    fn new() -> Self {
        DateDiff {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        "date_diff"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if let Some(unit) = time_unit_micros(&args.args[0]) {
            // Boundaries of a time unit between two instants (floor division, as DuckDB).
            let start = micros(&args.args[1], args.number_rows)?;
            let end = micros(&args.args[2], args.number_rows)?;
            let diff: Int64Array = start
                .iter()
                .zip(end.iter())
                .map(|(s, e)| Some(e?.div_euclid(unit) - s?.div_euclid(unit)))
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(diff)));
        }
        let period = parse_period(self.name(), &args.args[0])?;
        let start = days(&args.args[1], args.number_rows)?;
        let end = days(&args.args[2], args.number_rows)?;
        let diff: Int64Array = start
            .iter()
            .zip(end.iter())
            .map(|(s, e)| Some(period.between_days(s?, e?)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(diff)))
    }
}

/// Microseconds in `date_diff`'s time units (a constant part), `None` for calendar parts.
fn time_unit_micros(part: &ColumnarValue) -> Option<i64> {
    let ColumnarValue::Scalar(part) = part else {
        return None;
    };
    Some(match part.try_as_str()??.to_ascii_lowercase().as_str() {
        "microsecond" | "microseconds" => 1,
        "millisecond" | "milliseconds" => 1_000,
        "second" | "seconds" => 1_000_000,
        "minute" | "minutes" => 60_000_000,
        "hour" | "hours" => MICROS_PER_HOUR,
        _ => return None,
    })
}

/// `error(message)`: volatile, so it is evaluated (and fails) only where a row reaches
/// it — `CASE WHEN <bad input> THEN error('…') ELSE … END` guards a query.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RaiseError {
    signature: Signature,
}

impl RaiseError {
    fn new() -> Self {
        RaiseError {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for RaiseError {
    fn name(&self) -> &str {
        "error"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Null)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if args.number_rows == 0 {
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::Null));
        }
        let message = match &args.args[0] {
            ColumnarValue::Scalar(s) => s.try_as_str().flatten().map(str::to_string),
            ColumnarValue::Array(a) => {
                let text = cast(a, &DataType::Utf8)?;
                let text = text.as_any().downcast_ref::<arrow::array::StringArray>();
                text.and_then(|t| (!t.is_null(0)).then(|| t.value(0).to_string()))
            }
        };
        exec_err!(
            "{}",
            message.unwrap_or_else(|| "error() called".to_string())
        )
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The argument as microseconds since the epoch (timestamps of any unit, or text).
fn micros(value: &ColumnarValue, rows: usize) -> DfResult<TimestampMicrosecondArray> {
    argument_as::<TimestampMicrosecondType>(value, rows, &utc_micros())
}

fn local(micros: i64, zone: Tz) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp_micros(micros).map(|utc| zone.from_utc_datetime(&utc.naive_utc()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LocalPart {
    Date,
    Hour,
    Weekday,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalTime {
    part: LocalPart,
    zone: Tz,
    signature: Signature,
}

impl LocalTime {
    fn new(part: LocalPart, zone: Tz) -> Self {
        LocalTime {
            part,
            zone,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LocalTime {
    fn name(&self) -> &str {
        match self.part {
            LocalPart::Date => "local_date",
            LocalPart::Hour => "local_hour",
            LocalPart::Weekday => "local_weekday",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.part {
            LocalPart::Date => DataType::Date32,
            LocalPart::Hour | LocalPart::Weekday => DataType::Int32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let times = micros(&args.args[0], args.number_rows)?;
        let mut offsets = DayOffsets::new(self.zone);
        // Local microseconds since the epoch, then plain arithmetic.
        let local = |t: Option<i64>, offsets: &mut DayOffsets| t.map(|t| t + offsets.at(t));
        let array: ArrayRef = match self.part {
            LocalPart::Date => Arc::new(
                times
                    .iter()
                    .map(|t| local(t, &mut offsets).map(|l| l.div_euclid(MICROS_PER_DAY) as i32))
                    .collect::<Date32Array>(),
            ),
            LocalPart::Hour => Arc::new(
                times
                    .iter()
                    .map(|t| {
                        local(t, &mut offsets)
                            .map(|l| (l.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR) as i32)
                    })
                    .collect::<Int32Array>(),
            ),
            LocalPart::Weekday => Arc::new(
                times
                    .iter()
                    .map(|t| {
                        // 1970-01-01 was a Thursday (ISO 4).
                        local(t, &mut offsets)
                            .map(|l| ((l.div_euclid(MICROS_PER_DAY) + 3).rem_euclid(7) + 1) as i32)
                    })
                    .collect::<Int32Array>(),
            ),
        };
        Ok(ColumnarValue::Array(array))
    }
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// A zone's UTC offset, looked up once per UTC day: when the offset is the same at a
/// day's start and end (every day but those with a transition), it holds all day.
struct DayOffsets {
    zone: Tz,
    day: i64,
    offset: Option<i64>,
}

impl DayOffsets {
    fn new(zone: Tz) -> Self {
        DayOffsets {
            zone,
            day: i64::MIN,
            offset: None,
        }
    }

    fn exact(&self, micros: i64) -> i64 {
        DateTime::from_timestamp_micros(micros).map_or(0, |utc| {
            i64::from(
                self.zone
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ) * 1_000_000
        })
    }

    /// Microseconds to add to the UTC instant `micros` to get local time.
    fn at(&mut self, micros: i64) -> i64 {
        let day = micros.div_euclid(MICROS_PER_DAY);
        if day != self.day {
            self.day = day;
            let start = day * MICROS_PER_DAY;
            let (a, b) = (self.exact(start), self.exact(start + MICROS_PER_DAY - 1));
            self.offset = (a == b).then_some(a);
        }
        self.offset.unwrap_or_else(|| self.exact(micros))
    }
}

/// When people work: hours on working days, in one time zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkingCalendar {
    pub time_zone: Tz,
    /// Whether the calendar names its zone; if not, the engine puts it in the
    /// warehouse's.
    pub time_zone_given: bool,
    /// Working intervals of a day, in order, not overlapping.
    pub hours: Vec<(NaiveTime, NaiveTime)>,
    /// Working weekdays, 1 = Monday … 7 = Sunday.
    pub weekdays: BTreeSet<u32>,
    /// Days off that would otherwise be working days (public holidays).
    pub holidays: BTreeSet<NaiveDate>,
    /// Days worked that would otherwise be off (调休 make-up working days).
    pub workdays: BTreeSet<NaiveDate>,
}

impl Default for WorkingCalendar {
    /// Monday to Friday, 09:00–12:00 and 13:00–18:00 in Asia/Shanghai, no holidays.
    fn default() -> Self {
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).expect("valid time");
        WorkingCalendar {
            time_zone: DEFAULT_TIME_ZONE,
            time_zone_given: false,
            hours: vec![(t(9), t(12)), (t(13), t(18))],
            weekdays: (1..=5).collect(),
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
        }
    }
}

impl WorkingCalendar {
    /// Reads a calendar from TOML:
    ///
    /// ```toml
    /// time_zone = "Asia/Shanghai"
    /// hours = ["09:00-12:00", "13:00-18:00"]
    /// weekdays = [1, 2, 3, 4, 5]
    /// holidays = ["2026-01-01", "2026-02-16"]
    /// workdays = ["2026-02-14"]
    /// ```
    ///
    /// Missing keys keep the default's value.
    /// The calendar of the file at `path` (`--calendar`), else the default.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, crate::SqlError> {
        let Some(path) = path else {
            return Ok(WorkingCalendar::default());
        };
        let error = |reason: String| crate::SqlError::Calendar {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        WorkingCalendar::from_toml(&text).map_err(error)
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        let value: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut calendar = WorkingCalendar::default();
        for (key, item) in &value {
            match key.as_str() {
                "time_zone" => {
                    let name = item.as_str().ok_or("time_zone must be text")?;
                    calendar.time_zone = name
                        .parse()
                        .map_err(|_| format!("unknown time zone '{name}'"))?;
                    calendar.time_zone_given = true;
                }
                "hours" => {
                    calendar.hours = strings(item, key)?
                        .iter()
                        .map(|s| parse_interval(s))
                        .collect::<Result<_, _>>()?;
                    calendar.hours.sort();
                    if calendar.hours.windows(2).any(|w| w[0].1 > w[1].0) {
                        return Err("hours overlap".into());
                    }
                }
                "weekdays" => {
                    let days = item.as_array().ok_or("weekdays must be a list")?;
                    calendar.weekdays = days
                        .iter()
                        .map(|d| match d.as_integer() {
                            Some(n @ 1..=7) => Ok(n as u32),
                            _ => Err(format!("weekday {d} is not 1 (Monday) to 7 (Sunday)")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "holidays" | "workdays" => {
                    let days = strings(item, key)?
                        .iter()
                        .map(|s| {
                            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                                .map_err(|_| format!("{key}: '{s}' is not YYYY-MM-DD"))
                        })
                        .collect::<Result<BTreeSet<_>, _>>()?;
                    if key == "holidays" {
                        calendar.holidays = days;
                    } else {
                        calendar.workdays = days;
                    }
                }
                other => return Err(format!("unknown key '{other}'")),
            }
        }
        Ok(calendar)
    }

    /// The calendar as TOML that [`WorkingCalendar::from_toml`] reads back.
    pub fn to_toml(&self) -> String {
        let quoted = |items: Vec<String>| {
            let items: Vec<String> = items.into_iter().map(|i| format!("\"{i}\"")).collect();
            format!("[{}]", items.join(", "))
        };
        let days = |set: &BTreeSet<NaiveDate>| {
            quoted(
                set.iter()
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .collect(),
            )
        };
        let hours = quoted(
            self.hours
                .iter()
                .map(|(open, close)| format!("{}-{}", open.format("%H:%M"), close.format("%H:%M")))
                .collect(),
        );
        let weekdays: Vec<String> = self.weekdays.iter().map(u32::to_string).collect();
        // A calendar without a zone of its own takes the warehouse's: it stays without.
        let zone = if self.time_zone_given {
            format!("time_zone = \"{}\"\n", self.time_zone.name())
        } else {
            String::new()
        };
        format!(
            "{zone}hours = {hours}\nweekdays = [{}]\nholidays = {}\nworkdays = {}\n",
            weekdays.join(", "),
            days(&self.holidays),
            days(&self.workdays),
        )
    }

    fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.workdays.contains(&day) {
            return true;
        }
        self.weekdays.contains(&day.weekday().number_from_monday()) && !self.holidays.contains(&day)
    }

    /// Working seconds between two instants (negative when `end` is before `start`).
    pub fn seconds_between(&self, start: i64, end: i64) -> Option<i64> {
        if end < start {
            return self.seconds_between(end, start).map(|s| -s);
        }
        let (from, to) = (local(start, self.time_zone)?, local(end, self.time_zone)?);
        let mut total = 0i64;
        let mut day = from.date_naive();
        while day <= to.date_naive() {
            if self.is_working_day(day) {
                for (open, close) in &self.hours {
                    let at = |t: &NaiveTime| {
                        self.time_zone
                            .from_local_datetime(&day.and_time(*t))
                            .earliest()
                            .map(|d| d.timestamp_micros())
                    };
                    let (Some(open), Some(close)) = (at(open), at(close)) else {
                        continue;
                    };
                    let overlap = close.min(end) - open.max(start);
                    if overlap > 0 {
                        total += overlap;
                    }
                }
            }
            day = day.succ_opt()?;
        }
        Some(total / 1_000_000)
    }
}

fn strings(item: &toml::Value, key: &str) -> Result<Vec<String>, String> {
    item.as_array()
        .ok_or(format!("{key} must be a list"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or(format!("{key} must be a list of text"))
        })
        .collect()
}

fn parse_interval(s: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or(format!("hours: '{s}' is not HH:MM-HH:MM"))?;
    let t = |x: &str| {
        NaiveTime::parse_from_str(x.trim(), "%H:%M")
            .map_err(|_| format!("hours: '{x}' is not HH:MM"))
    };
    let (open, close) = (t(a)?, t(b)?);
    if close <= open {
        return Err(format!("hours: '{s}' ends before it starts"));
    }
    Ok((open, close))
}

/// `business_seconds` under `calendar`.
pub fn business_seconds(calendar: WorkingCalendar) -> ScalarUDF {
    ScalarUDF::from(BusinessSeconds::new(calendar))
}

/// The calendar a `business_seconds` function counts under; `None` for other functions.
/// Plans sent to a cluster carry it, so executors count under the client's calendar.
pub fn calendar_of(function: &ScalarUDF) -> Option<&WorkingCalendar> {
    function
        .inner()
        .downcast_ref::<BusinessSeconds>()
        .map(|f| &f.calendar)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BusinessSeconds {
    calendar: WorkingCalendar,
    signature: Signature,
}

impl BusinessSeconds {
    fn new(calendar: WorkingCalendar) -> Self {
        BusinessSeconds {
            calendar,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for BusinessSeconds {
    fn name(&self) -> &str {
        "business_seconds"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if args.args.len() != 2 {
            return exec_err!("business_seconds(start, end) takes two timestamps");
        }
        let start = micros(&args.args[0], args.number_rows)?;
        let end = micros(&args.args[1], args.number_rows)?;
        let seconds: Int64Array = start
            .iter()
            .zip(end.iter())
            .map(|(s, e)| self.calendar.seconds_between(s?, e?))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(seconds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn day_offsets_agree_with_the_zone_around_transitions() {
        // New York changes offset at 2 am local time: check every half hour around a
        // transition against chrono-tz, and Shanghai's fixed offset.
        for zone in [chrono_tz::America::New_York, DEFAULT_TIME_ZONE] {
            let mut offsets = DayOffsets::new(zone);
            let start = at("2026-03-07T00:00:00Z");
            for step in 0..200 {
                let t = start + step * 1_800_000_000;
                assert_eq!(offsets.at(t), offsets.exact(t), "{zone} at {t}");
            }
        }
    }

    #[test]
    fn business_seconds_count_only_working_hours() {
        let c = WorkingCalendar::default();
        // Friday 17:00 to Monday 10:00 Beijing time: 1 h Friday + 1 h Monday.
        assert_eq!(
            c.seconds_between(
                at("2026-01-09T17:00:00+08:00"),
                at("2026-01-12T10:00:00+08:00")
            ),
            Some(2 * 3600)
        );
        // Over lunch: 11:30 to 13:30 is 1 h of work.
        assert_eq!(
            c.seconds_between(
                at("2026-01-07T11:30:00+08:00"),
                at("2026-01-07T13:30:00+08:00")
            ),
            Some(3600)
        );
        // Reversed arguments give the negative.
        assert_eq!(
            c.seconds_between(
                at("2026-01-07T13:30:00+08:00"),
                at("2026-01-07T11:30:00+08:00")
            ),
            Some(-3600)
        );
        // A whole week is 5 × 8 h.
        assert_eq!(
            c.seconds_between(
                at("2026-01-05T00:00:00+08:00"),
                at("2026-01-12T00:00:00+08:00")
            ),
            Some(5 * 8 * 3600)
        );
    }

    #[test]
    fn holidays_and_make_up_days_come_from_the_calendar_file() {
        let c = WorkingCalendar::from_toml(
            r#"
            hours = ["09:00-17:00"]
            holidays = ["2026-01-01"]
            workdays = ["2026-01-04"]
            "#,
        )
        .unwrap();
        // Thursday 1 Jan is a holiday, Sunday 4 Jan a make-up working day.
        assert_eq!(
            c.seconds_between(
                at("2026-01-01T00:00:00+08:00"),
                at("2026-01-05T00:00:00+08:00")
            ),
            Some(2 * 8 * 3600)
        );
        assert!(WorkingCalendar::from_toml("hours = [\"18:00-09:00\"]").is_err());
        assert_eq!(
            WorkingCalendar::from_toml(&c.to_toml()).unwrap(),
            c,
            "{}",
            c.to_toml()
        );
        let default = WorkingCalendar::default();
        assert_eq!(
            WorkingCalendar::from_toml(&default.to_toml()).unwrap(),
            default
        );
        assert!(WorkingCalendar::from_toml("weekdays = [8]").is_err());
        assert!(WorkingCalendar::from_toml("colour = 1").is_err());
    }
}
