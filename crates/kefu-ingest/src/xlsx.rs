//! Excel workbooks (`.xlsx`), as offices export them: the first worksheet, its first row
//! the header. Cells become the text the CSV path would have seen (dates and times in
//! `YYYY-MM-DD HH:MM:SS`, durations in seconds), so profiles, validation and rejects work
//! the same; a row number is the Excel row. The workbook is read whole (a zip archive
//! needs random access); workbooks larger than [`MAX_WORKBOOK_BYTES`] are refused.

use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx};
use csv::StringRecord;

use crate::convert::{Reject, RejectReason};
use crate::{FileOutcome, IngestError, Profile, RecordFeed, RowSink, SourceName, TextEncoding};

/// The largest workbook read (Excel's own limit of about a million rows fits well below).
pub const MAX_WORKBOOK_BYTES: u64 = 512 * 1024 * 1024;

/// Whether `name` is an Excel workbook (by its extension).
pub(crate) fn is_xlsx(name: &SourceName) -> bool {
    name.file_name().to_ascii_lowercase().ends_with(".xlsx")
}

/// A cell as text, or the Excel error it holds.
fn cell_text(cell: &Data) -> Result<String, String> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::DateTime(d) if d.is_duration() => d
            .as_duration()
            .map(|d| d.num_seconds().to_string())
            .unwrap_or_default(),
        Data::DateTime(d) => match d.as_datetime() {
            // A time of day alone is stored on Excel's day zero.
            Some(t) if d.as_f64() < 1.0 => t.format("%H:%M:%S").to_string(),
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => return Err(format!("date cell out of range ({})", d.as_f64())),
        },
        Data::Error(e) => return Err(format!("the cell holds the Excel error {e}")),
    })
}

/// Reads the first worksheet of a workbook and converts every row.
pub fn convert_xlsx(
    mut source: impl Read,
    source_name: &SourceName,
    profile: &Profile,
    sink: &mut dyn RowSink,
) -> Result<FileOutcome, IngestError> {
    let name = source_name.to_string();
    let bad = |reason: String| IngestError::Source {
        source_name: name.clone(),
        reason,
    };
    let mut bytes = Vec::new();
    source
        .by_ref()
        .take(MAX_WORKBOOK_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| IngestError::Read {
            source_name: name.clone(),
            error,
        })?;
    if bytes.len() as u64 > MAX_WORKBOOK_BYTES {
        return Err(bad(format!(
            "workbooks over {} MiB are not read; export it as CSV",
            MAX_WORKBOOK_BYTES >> 20
        )));
    }
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable Excel workbook: {e}")))?;
    let sheet = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| bad("the workbook has no worksheet".into()))?
        .map_err(|e| bad(format!("cannot read the first worksheet: {e}")))?;
    // Excel rows are numbered from the sheet's first used row.
    let first_row = sheet.start().map_or(1, |(row, _)| u64::from(row) + 1);
    let mut rows = sheet.rows();
    let header = rows.next().ok_or_else(|| IngestError::Empty {
        source_name: name.clone(),
    })?;
    let headers: Vec<String> = header
        .iter()
        .map(|c| cell_text(c).unwrap_or_default())
        .collect();
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let (table, _, converter) = crate::resolve_header(&name, &refs, profile)?;
    sink.table(table);
    let mut feed = RecordFeed::new(converter, TextEncoding::Utf8);
    for (i, row) in rows.enumerate() {
        let line = first_row + 1 + i as u64;
        if row.iter().all(|c| *c == Data::Empty) {
            continue;
        }
        let texts: Vec<Result<String, String>> = row.iter().map(cell_text).collect();
        let fields = match texts.iter().position(Result::is_err) {
            Some(col) => Err(Reject {
                reason: RejectReason::InvalidText,
                column: headers.get(col).cloned(),
                detail: texts[col].clone().err().unwrap_or_default(),
            }),
            None => Ok(texts
                .iter()
                .map(|t| t.as_deref().unwrap_or_default())
                .collect::<StringRecord>()),
        };
        feed.push(sink, line, fields, || {
            crate::read::join_csv(texts.iter().map(|t| t.as_deref().unwrap_or("#ERROR")))
        })?;
    }
    feed.finish(sink)
}
