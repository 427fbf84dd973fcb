//! Bounds on what one call of a function may produce.
//!
//! DataFusion's memory pool tracks what sorts, joins and aggregates hold, not what a
//! scalar function returns: `range(1, 2e8)` built a 1.6 GB list and `repeat('x', 1e12)`
//! aborted the process on a failed allocation, whatever `memory_limit` said. The
//! functions that multiply their input are replaced here by the same functions behind a
//! check of the output their arguments ask for, made before anything is allocated.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, IntervalUnit, TimeUnit};
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;

/// Elements one call of `range`, `generate_series` or `array_repeat` may produce (over all
/// the rows of the batch it is called on).
pub const MAX_ELEMENTS: u64 = 16 << 20;
/// Bytes (characters, for padding) one call of `repeat`, `lpad` or `rpad` may produce.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// What a bounded function's output is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Measure {
    /// `range(start, stop[, step])`, `generate_series(…)`: elements.
    Series,
    /// `repeat(text, n)`: bytes.
    RepeatText,
    /// `array_repeat(element, n)`: elements.
    RepeatArray,
    /// `lpad(text, n[, fill])`, `rpad(…)`: characters.
    Pad,
}

/// Replaces the session's multiplying functions with bounded ones.
pub fn register(ctx: &SessionContext) {
    let functions = ctx.state().scalar_functions().clone();
    for (name, measure) in [
        ("range", Measure::Series),
        ("generate_series", Measure::Series),
        ("repeat", Measure::RepeatText),
        ("array_repeat", Measure::RepeatArray),
        ("lpad", Measure::Pad),
        ("rpad", Measure::Pad),
    ] {
        if let Some(inner) = functions.get(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.as_ref().clone(),
                measure,
            }));
        }
    }
}

/// A function that refuses arguments asking for more than its bound, else runs as is.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    measure: Measure,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(args.number_rows))
            .collect::<DfResult<_>>()?;
        let (asked, limit, unit) = match self.measure {
            Measure::Series => (series_elements(&arrays)?, MAX_ELEMENTS, "elements"),
            Measure::RepeatText => (repeated_bytes(&arrays)?, MAX_TEXT_BYTES, "bytes"),
            Measure::RepeatArray => (counts(arrays.get(1))?, MAX_ELEMENTS, "elements"),
            Measure::Pad => (counts(arrays.get(1))?, MAX_TEXT_BYTES, "characters"),
        };
        if asked > limit {
            return exec_err!(
                "{}: the arguments ask for {asked} {unit}, more than the {limit} one call may produce",
                self.inner.name()
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// The non-negative integers of `array` summed (nulls count nothing).
fn counts(array: Option<&ArrayRef>) -> DfResult<u64> {
    let Some(array) = array else {
        return Ok(0);
    };
    let values = cast(array, &DataType::Int64)?;
    Ok(values
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap_or(0).max(0) as u64)
        .fold(0u64, u64::saturating_add))
}

/// `repeat(text, n)`: the bytes of each text times its count.
fn repeated_bytes(arrays: &[ArrayRef]) -> DfResult<u64> {
    let (Some(text), Some(n)) = (arrays.first(), arrays.get(1)) else {
        return Ok(0);
    };
    let lengths = cast(
        &arrow::compute::kernels::length::length(text)?,
        &DataType::Int64,
    )?;
    let n = cast(n, &DataType::Int64)?;
    Ok(lengths
        .as_primitive::<Int64Type>()
        .iter()
        .zip(n.as_primitive::<Int64Type>().iter())
        .map(|(l, n)| (l.unwrap_or(0).max(0) as u64).saturating_mul(n.unwrap_or(0).max(0) as u64))
        .fold(0u64, u64::saturating_add))
}

/// Nanoseconds per unit of a series' start and stop (1 for integers).
fn unit_nanos(data_type: &DataType) -> Option<i128> {
    Some(match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => 1,
        DataType::Date32 => 86_400_000_000_000,
        DataType::Date64 => 1_000_000,
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        _ => return None,
    })
}

/// A series' step at `row`, in nanoseconds for an interval (a month counted as 28 days,
/// the shortest, so the estimate never falls short) or as given for integers.
fn step_at(step: &ArrayRef, row: usize) -> Option<i128> {
    if step.is_null(row) {
        return None;
    }
    const DAY: i128 = 86_400_000_000_000;
    Some(match step.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = step
                .as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>()
                .value(row);
            i128::from(v.months) * 28 * DAY + i128::from(v.days) * DAY + i128::from(v.nanoseconds)
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = step
                .as_primitive::<arrow::datatypes::IntervalDayTimeType>()
                .value(row);
            i128::from(v.days) * DAY + i128::from(v.milliseconds) * 1_000_000
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let v = step
                .as_primitive::<arrow::datatypes::IntervalYearMonthType>()
                .value(row);
            i128::from(v) * 28 * DAY
        }
        _ => i128::from(
            cast(&step.slice(row, 1), &DataType::Int64)
                .ok()?
                .as_primitive::<Int64Type>()
                .value(0),
        ),
    })
}

/// `range(stop)`, `range(start, stop[, step])` and `generate_series`: how many elements,
/// over all rows.
fn series_elements(arrays: &[ArrayRef]) -> DfResult<u64> {
    let (start, stop, step) = match arrays {
        [stop] => (None, stop, None),
        [start, stop] => (Some(start), stop, None),
        [start, stop, step, ..] => (Some(start), stop, Some(step)),
        [] => return Ok(0),
    };
    let Some(unit) = unit_nanos(stop.data_type()) else {
        return Ok(0);
    };
    let as_i64 = |a: &ArrayRef| -> DfResult<ArrayRef> { Ok(cast(a, &DataType::Int64)?) };
    let stop = as_i64(stop)?;
    let start = start.map(as_i64).transpose()?;
    let stop = stop.as_primitive::<Int64Type>();
    let mut total: u64 = 0;
    for row in 0..stop.len() {
        if stop.is_null(row) {
            continue;
        }
        let from = match &start {
            Some(s) if s.is_null(row) => continue,
            Some(s) => s.as_primitive::<Int64Type>().value(row),
            None => 0,
        };
        let span = (i128::from(stop.value(row)) - i128::from(from)).abs() * unit;
        let step = match step {
            Some(step) => match step_at(step, row) {
                Some(s) => {
                    s.abs()
                        * if step.data_type().is_integer() {
                            unit
                        } else {
                            1
                        }
                }
                None => continue,
            },
            None => unit,
        };
        if step == 0 {
            continue;
        }
        let elements = u64::try_from(span / step + 1).unwrap_or(u64::MAX);
        total = total.saturating_add(elements);
    }
    Ok(total)
}
