//! Query results as a terminal table, CSV, JSON, NDJSON, Parquet or an Excel workbook,
//! written as the batches arrive (only the table view holds rows, and at most the rows it
//! shows). Output for people (the table, CSV, xlsx) shows fractions rounded
//! ([`people_float`]) and CSV may start with a byte-order mark for Excel; output for
//! machines (JSON, Parquet, `raw_csv`) keeps every digit.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{ContentArrangement, Table as TextTable, presets};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use crate::SqlError;
pub use crate::destination::{Destination, run_script, terminal_width};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// An aligned table that fits the terminal, with the row count.
    #[default]
    Table,
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    Parquet,
    /// An Excel workbook: typed cells, dates as dates, the header frozen.
    Xlsx,
    /// Tab-separated values (pasted into a spreadsheet as columns).
    Tsv,
    /// A Markdown table (for a ticket, a wiki or a chat).
    Markdown,
    /// One `column | value` block per row, for wide rows (psql's `\x`).
    Vertical,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::Table,
        Format::Csv,
        Format::Tsv,
        Format::Json,
        Format::Ndjson,
        Format::Markdown,
        Format::Vertical,
        Format::Parquet,
        Format::Xlsx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
            Format::Xlsx => "xlsx",
            Format::Tsv => "tsv",
            Format::Markdown => "markdown",
            Format::Vertical => "vertical",
        }
    }

    /// Whether the format is laid out for a screen (a job's output file is for tools).
    pub fn is_for_screens(self) -> bool {
        matches!(self, Format::Table | Format::Markdown | Format::Vertical)
    }

    /// Whether the format is binary (never for a terminal).
    pub fn is_binary(self) -> bool {
        matches!(self, Format::Parquet | Format::Xlsx)
    }

    /// The format a file name asks for (`out.csv` → CSV), if any.
    pub fn from_extension(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "parquet" => Some(Format::Parquet),
            "xlsx" => Some(Format::Xlsx),
            "tsv" | "tab" => Some(Format::Tsv),
            "md" => Some(Format::Markdown),
            "txt" => Some(Format::Table),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown format '{s}' (table, csv, tsv, json, ndjson, markdown, vertical, \
                     parquet, xlsx)"
                )
            })
    }
}

/// How the table view looks.
#[derive(Debug, Clone, Copy)]
pub struct TableStyle {
    /// Width to fit, in columns (`None`: as wide as the content).
    pub width: Option<u16>,
    /// Rows shown at most; the count still covers all rows.
    pub max_rows: usize,
    /// CSV: write text cells as they are. By default a text cell that a spreadsheet would
    /// run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
    /// gets a leading `'`, as OWASP advises for CSV that people open in Excel.
    pub raw_csv: bool,
    /// CSV: start with a UTF-8 byte-order mark, so that Excel on Chinese Windows reads
    /// the text as UTF-8 rather than GBK (mojibake).
    pub bom: bool,
}

impl Default for TableStyle {
    fn default() -> Self {
        TableStyle {
            width: None,
            max_rows: 1000,
            raw_csv: false,
            bom: false,
        }
    }
}

/// A fraction as people read it: whole numbers as such, 2 decimals from 1 up (123.46),
/// 4 significant digits below 1 (0.7859, 0.001235), trailing zeros dropped. Rates and
/// averages otherwise print as `0.7858664927158078`.
pub fn people_float(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let decimals = if x.abs() >= 1.0 {
        2
    } else {
        (3 - x.abs().log10().floor() as i32).clamp(1, 12) as usize
    };
    let text = format!("{x:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Whether a spreadsheet would read `text` as a formula.
fn looks_like_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// `batch` with every text cell that looks like a formula prefixed by `'`; other columns
/// (numbers, times) as they are.
fn neutralise_formulas(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, AsArray, StringArray};
    use arrow::datatypes::DataType;
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut fields = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let text = match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                arrow::compute::cast(column, &DataType::Utf8)?
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.clone());
                continue;
            }
        };
        let text = text.as_string::<i32>();
        if !text.iter().flatten().any(looks_like_formula) {
            columns.push(column.clone());
            fields.push(field.clone());
            continue;
        }
        let safe: StringArray = text
            .iter()
            .map(|v| {
                v.map(|v| {
                    if looks_like_formula(v) {
                        format!("'{v}")
                    } else {
                        v.to_string()
                    }
                })
            })
            .collect();
        columns.push(std::sync::Arc::new(safe) as arrow::array::ArrayRef);
        fields.push(std::sync::Arc::new(
            field.as_ref().clone().with_data_type(DataType::Utf8),
        ));
    }
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )
}

/// Writes a result stream to `out`; returns the number of rows.
pub async fn write_stream(
    mut stream: SendableRecordBatchStream,
    format: Format,
    out: &mut (dyn Write + Send),
    style: TableStyle,
) -> Result<u64, SqlError> {
    let schema = stream.schema();
    let mut writer = BatchWriter::new(format, schema, out, style)?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch?)?;
    }
    writer.finish()
}

/// Writes batches one at a time in one format.
pub struct BatchWriter<'a> {
    format: Format,
    inner: Inner<'a>,
    rows: u64,
    raw_csv: bool,
}

enum Inner<'a> {
    Table {
        out: &'a mut (dyn Write + Send),
        schema: SchemaRef,
        style: TableStyle,
        shown: Vec<Vec<String>>,
        layout: Format,
    },
    Csv(arrow::csv::Writer<&'a mut (dyn Write + Send)>),
    Json(arrow::json::ArrayWriter<&'a mut (dyn Write + Send)>),
    Ndjson(arrow::json::LineDelimitedWriter<&'a mut (dyn Write + Send)>),
    Parquet(parquet::arrow::ArrowWriter<&'a mut (dyn Write + Send)>),
    // Boxed: a workbook's writer is three times the size of the others.
    Xlsx(Box<crate::xlsx::XlsxWriter<'a>>),
}

impl<'a> BatchWriter<'a> {
    pub fn new(
        format: Format,
        schema: SchemaRef,
        out: &'a mut (dyn Write + Send),
        style: TableStyle,
    ) -> Result<Self, SqlError> {
        let inner = match format {
            Format::Table | Format::Markdown | Format::Vertical => Inner::Table {
                out,
                schema,
                style,
                shown: Vec::new(),
                layout: format,
            },
            Format::Tsv => Inner::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_delimiter(b'\t')
                    .build(out),
            ),
            Format::Csv => {
                if style.bom {
                    out.write_all("\u{FEFF}".as_bytes())
                        .map_err(|e| output_error(format, e))?;
                }
                Inner::Csv(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(out),
                )
            }
            Format::Xlsx => Inner::Xlsx(Box::new(
                crate::xlsx::XlsxWriter::new(schema, out).map_err(|e| output_error(format, e))?,
            )),
            Format::Json => Inner::Json(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(out),
            ),
            Format::Ndjson => Inner::Ndjson(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(out),
            ),
            Format::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                Inner::Parquet(
                    parquet::arrow::ArrowWriter::try_new(out, schema, Some(props))
                        .map_err(|e| output_error(format, e))?,
                )
            }
        };
        Ok(BatchWriter {
            format,
            inner,
            rows: 0,
            raw_csv: style.raw_csv,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.rows += batch.num_rows() as u64;
        let format = self.format;
        match &mut self.inner {
            Inner::Table { style, shown, .. } => {
                let room = style.max_rows.saturating_sub(shown.len());
                if room > 0 {
                    shown.extend(people_rows(batch, room).map_err(|e| output_error(format, e))?);
                }
                Ok(())
            }
            Inner::Csv(w) if self.raw_csv => w.write(batch).map_err(|e| output_error(format, e)),
            Inner::Csv(w) => neutralise_formulas(batch)
                .and_then(|safe| w.write(&safe))
                .map_err(|e| output_error(format, e)),
            Inner::Json(w) => w.write(batch).map_err(|e| output_error(format, e)),
            Inner::Ndjson(w) => w.write(batch).map_err(|e| output_error(format, e)),
            Inner::Parquet(w) => w.write(batch).map_err(|e| output_error(format, e)),
            Inner::Xlsx(w) => w.write(batch).map_err(|e| output_error(format, e)),
        }
    }

    /// Finishes the output; returns the number of rows written.
    pub fn finish(self) -> Result<u64, SqlError> {
        let format = self.format;
        let rows = self.rows;
        match self.inner {
            Inner::Table {
                out,
                schema,
                style,
                shown,
                layout,
            } => {
                let text = match layout {
                    Format::Markdown => render_markdown(&schema, &shown, rows),
                    Format::Vertical => render_vertical(&schema, &shown, rows),
                    _ => render_table(&schema, &shown, rows, style),
                };
                out.write_all(text.as_bytes())
                    .map_err(|e| output_error(format, e))?;
            }
            Inner::Csv(w) => {
                w.into_inner()
                    .flush()
                    .map_err(|e| output_error(format, e))?;
            }
            Inner::Json(mut w) => {
                w.finish().map_err(|e| output_error(format, e))?;
                w.into_inner()
                    .flush()
                    .map_err(|e| output_error(format, e))?;
            }
            Inner::Ndjson(mut w) => {
                w.finish().map_err(|e| output_error(format, e))?;
                w.into_inner()
                    .flush()
                    .map_err(|e| output_error(format, e))?;
            }
            Inner::Parquet(w) => {
                w.close().map_err(|e| output_error(format, e))?;
            }
            Inner::Xlsx(w) => w.finish().map_err(|e| output_error(format, e))?,
        }
        Ok(rows)
    }
}

fn output_error(format: Format, e: impl Into<kefu_model::BoxError>) -> SqlError {
    SqlError::Output {
        format: format.name().to_string(),
        source: e.into(),
    }
}

/// The first `limit` rows of `batch` as display text (nulls as `NULL`).
pub fn text_rows(
    batch: &RecordBatch,
    limit: usize,
) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows().min(limit))
        .map(|row| {
            formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect()
        })
        .collect())
}

/// The first `limit` rows of `batch` as people read them: [`text_rows`] with fractions
/// rounded as [`people_float`] shows them (the table view, column widths in xlsx).
pub fn people_rows(
    batch: &RecordBatch,
    limit: usize,
) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    use arrow::array::{Array, AsArray};
    let rows = batch.num_rows().min(limit);
    let options = FormatOptions::default().with_null("NULL");
    let mut columns: Vec<Vec<String>> = Vec::with_capacity(batch.num_columns());
    for column in batch.columns() {
        let column = column.slice(0, rows);
        if column.data_type().is_floating() {
            let values = arrow::compute::cast(&column, &arrow::datatypes::DataType::Float64)?;
            let values = values.as_primitive::<arrow::datatypes::Float64Type>();
            columns.push(
                (0..rows)
                    .map(|i| {
                        if values.is_null(i) {
                            "NULL".to_string()
                        } else {
                            people_float(values.value(i))
                        }
                    })
                    .collect(),
            );
        } else {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            columns.push((0..rows).map(|i| formatter.value(i).to_string()).collect());
        }
    }
    Ok((0..rows)
        .map(|row| columns.iter().map(|c| c[row].clone()).collect())
        .collect())
}

/// The table view: header, rows, and a count line (`3 rows`, or `1,204 rows (first
/// 1,000 shown)`).
pub fn render_table(
    schema: &SchemaRef,
    rows: &[Vec<String>],
    total: u64,
    style: TableStyle,
) -> String {
    let mut table = TextTable::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(match style.width {
            Some(_) => ContentArrangement::Dynamic,
            None => ContentArrangement::Disabled,
        })
        .set_header(schema.fields().iter().map(|f| f.name().as_str()));
    if let Some(width) = style.width {
        table.set_width(width);
    }
    for row in rows {
        table.add_row(row);
    }
    format!("{table}\n{}\n", count_line(rows.len(), total))
}

/// A Markdown table of `rows` (pipes in cells escaped), with the count line when rows were
/// left out.
pub fn render_markdown(schema: &SchemaRef, rows: &[Vec<String>], total: u64) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let names: Vec<String> = schema.fields().iter().map(|f| cell(f.name())).collect();
    out.push_str(&format!("| {} |\n", names.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(names.len())));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if (rows.len() as u64) < total {
        out.push_str(&format!(
            "\n{} rows (first {} shown)\n",
            thousands(total),
            thousands(rows.len() as u64)
        ));
    }
    out
}

/// Each row as a block of `column | value` lines under `-[ RECORD n ]-`, as psql's `\x`.
pub fn render_vertical(schema: &SchemaRef, rows: &[Vec<String>], total: u64) -> String {
    let width = schema
        .fields()
        .iter()
        .map(|f| f.name().chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&format!("-[ RECORD {} ]-\n", i + 1));
        for (field, value) in schema.fields().iter().zip(row) {
            out.push_str(&format!("{:width$} | {value}\n", field.name()));
        }
    }
    out.push_str(&count_line(rows.len(), total));
    out.push('\n');
    out
}

/// "1 row", "1,234 rows", "5,000 rows (first 1,000 shown)".
fn count_line(shown: usize, total: u64) -> String {
    let count = if total == 1 {
        "1 row".to_string()
    } else {
        format!("{} rows", thousands(total))
    };
    if (shown as u64) < total {
        format!("{count} (first {} shown)", thousands(shown as u64))
    } else {
        count
    }
}

use kefu_model::number::thousands;

/// Encodes whole results in one format (CSV, JSON, NDJSON, Parquet, xlsx or a text
/// table).
pub fn encode(
    format: Format,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, SqlError> {
    encode_styled(format, schema, batches, TableStyle::default())
}

/// [`encode`] in a given style (CSV as it is, with `raw_csv`).
pub fn encode_styled(
    format: Format,
    schema: SchemaRef,
    batches: &[RecordBatch],
    style: TableStyle,
) -> Result<Vec<u8>, SqlError> {
    let mut bytes = Vec::new();
    let mut writer = BatchWriter::new(format, schema, &mut bytes, style)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(bytes)
}
/// `batch` with its instants on `zone`'s clock, as a profile's author reads its source.
fn on_local_clock(batch: &RecordBatch, zone: chrono_tz::Tz) -> RecordBatch {
    use arrow::datatypes::{DataType, Field, Schema};
    let local = DataType::Timestamp(
        arrow::datatypes::TimeUnit::Microsecond,
        Some(zone.name().into()),
    );
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match (f.data_type(), arrow::compute::cast(c, &local)) {
            (DataType::Timestamp(..), Ok(cast)) => {
                fields.push(Field::new(f.name(), local.clone(), true));
                columns.push(cast);
            }
            _ => {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .unwrap_or_else(|_| batch.clone())
}

/// The first rows of a source as they would land, as a table (`kefu check`).
pub fn preview_text(batch: &RecordBatch, zone: chrono_tz::Tz) -> String {
    let batch = on_local_clock(batch, zone);
    let rows = text_rows(&batch, batch.num_rows()).unwrap_or_default();
    let table = render_table(
        &batch.schema(),
        &rows,
        rows.len() as u64,
        TableStyle::default(),
    );
    format!("  first rows as they would land:\n{table}")
}

/// The first rows of a source as JSON objects (column → display text).
pub fn preview_json(batch: &RecordBatch, zone: chrono_tz::Tz) -> serde_json::Value {
    let batch = on_local_clock(batch, zone);
    let rows = text_rows(&batch, batch.num_rows()).unwrap_or_default();
    let schema = batch.schema();
    rows.into_iter()
        .map(|row| {
            schema
                .fields()
                .iter()
                .zip(row)
                .map(|(f, v)| (f.name().clone(), serde_json::Value::String(v)))
                .collect::<serde_json::Map<_, _>>()
        })
        .collect::<Vec<_>>()
        .into()
}
