//! Query results as an Excel workbook: one sheet, typed cells (numbers as numbers, dates
//! and times as Excel dates), the header row bold, frozen and filtered, columns sized to
//! their content. Rows stream to a temporary file (rust_xlsxwriter's constant-memory
//! mode), so a million-row result does not sit in memory.

use std::io::Write;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use rust_xlsxwriter::{Format as CellFormat, Workbook};

use crate::output::{people_float, people_rows};

/// Excel's last row is 1,048,576; one is the header.
pub const MAX_ROWS: u64 = 1_048_575;
/// Columns wider than this many characters are cut to it (the text is all there).
const MAX_WIDTH: usize = 60;

pub struct XlsxWriter<'a> {
    out: &'a mut (dyn Write + Send),
    workbook: Workbook,
    schema: SchemaRef,
    row: u32,
    widths: Vec<usize>,
    date: CellFormat,
    datetime: CellFormat,
    decimals: CellFormat,
}

/// Why a workbook could not be written: the writer's, Arrow's or the output's error.
pub type XlsxResult<T> = Result<T, kefu_model::BoxError>;

impl<'a> XlsxWriter<'a> {
    pub fn new(schema: SchemaRef, out: &'a mut (dyn Write + Send)) -> XlsxResult<Self> {
        let mut workbook = Workbook::new();
        // A fixed creation time (the zip format's epoch): the same rows give the same bytes,
        // so a report reproduced with --as-of is identical, workbooks included.
        let epoch = chrono::NaiveDate::from_ymd_opt(1980, 1, 1).expect("a date");
        workbook
            .set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&epoch));
        let header = CellFormat::new().set_bold();
        let sheet = workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name("result")?;
        let mut widths = Vec::with_capacity(schema.fields().len());
        for (column, field) in schema.fields().iter().enumerate() {
            sheet.write_string_with_format(0, column as u16, field.name(), &header)?;
            widths.push(field.name().chars().count() + 2);
        }
        sheet.set_freeze_panes(1, 0)?;
        Ok(XlsxWriter {
            out,
            workbook,
            schema,
            row: 0,
            widths,
            date: CellFormat::new().set_num_format("yyyy-mm-dd"),
            datetime: CellFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            // Shown rounded; the cell keeps the full value.
            decimals: CellFormat::new().set_num_format("0.####"),
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> XlsxResult<()> {
        if u64::from(self.row) + batch.num_rows() as u64 > MAX_ROWS {
            return Err(format!(
                "a worksheet holds at most {MAX_ROWS} rows; write csv or parquet instead"
            )
            .into());
        }
        let sheet = self.workbook.worksheet_from_index(0)?;
        // Widths from what people see: the table view's text of the first rows.
        if self.row < 1000 {
            for row in people_rows(batch, 1000)? {
                for (width, cell) in self.widths.iter_mut().zip(row) {
                    *width = (*width).max(cell.chars().count() + 2);
                }
            }
        }
        // Prepared per column, then written row by row: in constant-memory mode a row
        // is flushed once the next one is started, so cells must come in row order.
        struct Prepared<'a> {
            column: &'a ArrayRef,
            text: arrow::util::display::ArrayFormatter<'a>,
            numbers: Option<ArrayRef>,
            fraction: bool,
        }
        let options = arrow::util::display::FormatOptions::default();
        let prepared = batch
            .columns()
            .iter()
            .map(|column| {
                let text =
                    arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &options)?;
                let numbers = if column.data_type().is_numeric() {
                    Some(arrow::compute::cast(column, &DataType::Float64)?)
                } else {
                    None
                };
                Ok(Prepared {
                    column,
                    text,
                    numbers,
                    fraction: column.data_type().is_floating(),
                })
            })
            .collect::<Result<Vec<_>, arrow::error::ArrowError>>()?;
        for i in 0..batch.num_rows() {
            let row = self.row + 1 + i as u32;
            for (c, p) in prepared.iter().enumerate() {
                let (col, column) = (c as u16, p.column);
                if column.is_null(i) {
                    continue;
                }
                let numbers = p
                    .numbers
                    .as_ref()
                    .map(|n| n.as_primitive::<arrow::datatypes::Float64Type>());
                let written = match (column.data_type(), numbers) {
                    (_, Some(n)) if n.is_valid(i) && n.value(i).is_finite() => {
                        if p.fraction {
                            sheet.write_number_with_format(row, col, n.value(i), &self.decimals)
                        } else {
                            sheet.write_number(row, col, n.value(i))
                        }
                    }
                    (_, Some(n)) if n.is_valid(i) => {
                        sheet.write_string(row, col, people_float(n.value(i)))
                    }
                    (DataType::Boolean, _) => {
                        sheet.write_boolean(row, col, column.as_boolean().value(i))
                    }
                    (DataType::Date32, _) => match column
                        .as_primitive::<arrow::datatypes::Date32Type>()
                        .value_as_date(i)
                    {
                        Some(d) => sheet.write_datetime_with_format(row, col, d, &self.date),
                        None => sheet.write_string(row, col, p.text.value(i).to_string()),
                    },
                    (DataType::Timestamp(unit, zone), _) => {
                        match local_time(column.as_ref(), i, *unit, zone.as_deref()) {
                            Some(t) => {
                                sheet.write_datetime_with_format(row, col, t, &self.datetime)
                            }
                            None => sheet.write_string(row, col, p.text.value(i).to_string()),
                        }
                    }
                    _ => sheet.write_string(row, col, p.text.value(i).to_string()),
                };
                written?;
            }
        }
        self.row += batch.num_rows() as u32;
        Ok(())
    }

    pub fn finish(mut self) -> XlsxResult<()> {
        let columns = self.schema.fields().len() as u16;
        let sheet = self.workbook.worksheet_from_index(0)?;
        for (c, width) in self.widths.iter().enumerate() {
            sheet.set_column_width(c as u16, (*width).min(MAX_WIDTH) as f64)?;
        }
        if columns > 0 {
            sheet.autofilter(0, 0, self.row, columns - 1)?;
        }
        let bytes = self.workbook.save_to_buffer()?;
        self.out.write_all(&bytes)?;
        Ok(self.out.flush()?)
    }
}

/// A timestamp as the wall-clock time of its zone (UTC where it has none).
fn local_time(
    column: &dyn Array,
    i: usize,
    unit: TimeUnit,
    zone: Option<&str>,
) -> Option<chrono::NaiveDateTime> {
    use arrow::datatypes::*;
    let raw = match unit {
        TimeUnit::Second => column.as_primitive::<TimestampSecondType>().value(i),
        TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().value(i),
        TimeUnit::Microsecond => column.as_primitive::<TimestampMicrosecondType>().value(i),
        TimeUnit::Nanosecond => column.as_primitive::<TimestampNanosecondType>().value(i),
    };
    let utc = match unit {
        TimeUnit::Second => chrono::DateTime::from_timestamp(raw, 0),
        TimeUnit::Millisecond => chrono::DateTime::from_timestamp_millis(raw),
        TimeUnit::Microsecond => chrono::DateTime::from_timestamp_micros(raw),
        TimeUnit::Nanosecond => Some(chrono::DateTime::from_timestamp_nanos(raw)),
    }?;
    match zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok()) {
        Some(tz) => Some(utc.with_timezone(&tz).naive_local()),
        None => Some(utc.naive_utc()),
    }
}
