//! Workbooks as offices export them — Excel `.xlsx`/`.xlsm`, `.xlsb` and `.xls`, and
//! OpenDocument `.ods`, told apart by their content (calamine's auto-detection): the first
//! worksheet, its first row the header. Cells become the text the CSV path would have
//! seen (dates and times in `YYYY-MM-DD HH:MM:SS`, durations in seconds), so profiles,
//! validation and rejects work the same; a row number is the sheet's row. The workbook
//! is read whole (it needs random access); workbooks larger than [`MAX_WORKBOOK_BYTES`]
//! are refused. A file named `.xls` that is really delimited text (a common "export to
//! Excel") is read as text.

use std::io::{Cursor, Read};

use calamine::{Data, Reader, Sheets};
use csv::StringRecord;

use crate::convert::{Reject, RejectReason};
use crate::{FileOutcome, IngestError, Profile, RecordFeed, RowSink, SourceName, TextEncoding};

/// The largest workbook read (Excel's own limit of about a million rows fits well below).
pub const MAX_WORKBOOK_BYTES: u64 = 512 * 1024 * 1024;

/// The extensions of workbooks.
pub const WORKBOOK_EXTENSIONS: &[&str] = &[".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"];

/// Whether `name` is a workbook (by its extension; the format itself is told from the
/// content).
pub(crate) fn is_workbook(name: &SourceName) -> bool {
    let lower = name.file_name().to_ascii_lowercase();
    WORKBOOK_EXTENSIONS.iter().any(|e| lower.ends_with(e))
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

/// Excel's own bounds: 1,048,576 rows of 16,384 columns (A to XFD). A cell beyond them is
/// refused before anything is allocated for it.
const MAX_ROWS: u32 = 1 << 20;
const MAX_COLUMNS: u32 = 1 << 14;
/// Cells read from one worksheet at most (Excel's grid holds more, but a sheet of this
/// many cells is no office export).
const MAX_CELLS: u64 = 200_000_000;

/// Distinct strings a workbook may declare (Excel's grid of an office export, a million
/// rows of a few dozen columns, holds far fewer).
const MAX_SHARED_STRINGS: u64 = 5_000_000;

/// The column's letters (0 is A).
fn column_name(mut column: u32) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (column % 26) as u8);
        if column < 26 {
            break;
        }
        column = column / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// The used cells of one worksheet row: its index (0-based) and its cells by column.
struct SheetRow {
    index: u32,
    cells: Vec<(u32, Data)>,
}

impl SheetRow {
    /// The row as `width` cells from column `origin`; a cell left of it is refused (its
    /// column is returned), cells beyond `width` widen the row.
    fn dense(self, origin: u32, width: usize) -> Result<Vec<Data>, u32> {
        let mut row = vec![Data::Empty; width];
        for (column, value) in self.cells {
            let at = column.checked_sub(origin).ok_or(column)? as usize;
            if at >= row.len() {
                row.resize(at + 1, Data::Empty);
            }
            row[at] = value;
        }
        Ok(row)
    }
}

/// A cell's value at its (row, column), both 0-based.
type PlacedCell = ((u32, u32), Data);

/// Where a worksheet's cells come from, in row order: a streaming reader (`.xlsx`,
/// `.xlsb`) or a sheet read whole (`.xls`, `.ods`).
type CellSource<'a> = Box<dyn FnMut() -> Result<Option<PlacedCell>, String> + 'a>;

fn placed(cell: &calamine::Cell<calamine::DataRef<'_>>) -> PlacedCell {
    (cell.get_position(), Data::from(cell.get_value().clone()))
}

/// A worksheet's cells grouped into rows as they stream from it, in order.
struct SheetRows<'a> {
    cells: CellSource<'a>,
    /// The first cell of the next row, read ahead.
    pending: Option<PlacedCell>,
    last_row: Option<u32>,
    cells_read: u64,
    /// The reader said there are no more cells (it must not be asked again).
    done: bool,
}

impl SheetRows<'_> {
    fn next_cell(&mut self) -> Result<Option<PlacedCell>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(((row, column), value)) = (self.cells)()? else {
            self.done = true;
            return Ok(None);
        };
        if row >= MAX_ROWS || column >= MAX_COLUMNS {
            return Err(format!(
                "cell {}{} lies outside Excel's grid (A1:XFD1048576)",
                column_name(column.min(u32::MAX / 2)),
                u64::from(row) + 1
            ));
        }
        self.cells_read += 1;
        if self.cells_read > MAX_CELLS {
            return Err(format!(
                "the worksheet has more than {MAX_CELLS} cells; export it as CSV"
            ));
        }
        Ok(Some(((row, column), value)))
    }

    /// The next row holding at least one cell; rows must come in ascending order.
    fn next_row(&mut self) -> Result<Option<SheetRow>, String> {
        let first = match self.pending.take() {
            Some(cell) => cell,
            None => match self.next_cell()? {
                Some(cell) => cell,
                None => return Ok(None),
            },
        };
        let index = first.0.0;
        if self.last_row.is_some_and(|last| index <= last) {
            return Err(format!(
                "row {} comes after row {} in the worksheet; rows must ascend",
                u64::from(index) + 1,
                u64::from(self.last_row.unwrap_or(0)) + 1
            ));
        }
        self.last_row = Some(index);
        let mut cells = vec![(first.0.1, first.1)];
        while let Some(cell) = self.next_cell()? {
            if cell.0.0 != index {
                self.pending = Some(cell);
                break;
            }
            cells.push((cell.0.1, cell.1));
        }
        cells.sort_by_key(|c| c.0);
        Ok(Some(SheetRow { index, cells }))
    }
}

/// Refuses a workbook whose shared-strings table declares more strings than its bytes
/// can hold: the reader reserves room for the declared count before reading any.
fn check_shared_strings(bytes: &[u8]) -> Result<(), String> {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        // Not a zip: the workbook reader says what is wrong with it.
        return Ok(());
    };
    for i in 0..archive.len() {
        let Ok(mut entry) = archive.by_index(i) else {
            continue;
        };
        let Ok(entry_name) = entry.name().map(|n| n.to_string()) else {
            continue;
        };
        if !entry_name
            .to_ascii_lowercase()
            .ends_with("sharedstrings.xml")
        {
            continue;
        }
        let size = entry.size();
        // The count is an attribute of the first element: a few kB of the text suffice.
        let mut head = Vec::new();
        let _ = entry.by_ref().take(64 << 10).read_to_end(&mut head);
        let text = String::from_utf8_lossy(&head);
        let Some(at) = text.find("uniqueCount=") else {
            continue;
        };
        let digits: String = text[at + "uniqueCount=".len()..]
            .chars()
            .skip(1)
            .take_while(char::is_ascii_digit)
            .collect();
        if digits.is_empty() {
            continue;
        }
        let count: u64 = digits.parse().unwrap_or(u64::MAX);
        // Each string takes at least `<si><t/></si>` (13 bytes) of the table's text; the
        // declared size may lie too, so the count is also bounded outright.
        if count > size / 13 + 1 || count > MAX_SHARED_STRINGS {
            return Err(format!(
                "not a readable Excel workbook: {entry_name} declares {digits} shared strings in {size} bytes"
            ));
        }
    }
    Ok(())
}

/// Reads the first worksheet of a workbook (any format calamine reads) and converts
/// every row.
pub fn convert_workbook(
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
    check_shared_strings(&bytes).map_err(bad)?;
    let sample = &bytes[..bytes.len().min(crate::text::SNIFF_BYTES)];
    let mut workbook = match calamine::open_workbook_auto_from_rs(Cursor::new(&bytes[..])) {
        Ok(w) => w,
        // Many systems "export to Excel" as tab-separated or HTML text named .xls.
        Err(_) if crate::text::detect(sample).is_ok() && !sample.contains(&0) => {
            return crate::convert_delimited(&bytes[..], source_name, profile, None, sink);
        }
        Err(e) => return Err(bad(format!("not a readable workbook: {e}"))),
    };
    let first_sheet = workbook
        .sheet_names()
        .into_iter()
        .next()
        .ok_or_else(|| bad("the workbook has no worksheet".into()))?;
    let unreadable = |e: &dyn std::fmt::Display| format!("cannot read the first worksheet: {e}");
    // Cells are read one by one, in the sheet's order, and never into a dense range where
    // the format allows: a range spans the sheet's extreme cells, and two cells at A1 and
    // XFD1048576 would make it 17 billion cells. `.xls` (at most 65,536 x 256 cells) and
    // `.ods` are read whole.
    let cells: CellSource<'_> = match &mut workbook {
        Sheets::Xlsx(w) => {
            let mut reader = w
                .worksheet_cells_reader(&first_sheet)
                .map_err(|e| bad(unreadable(&e)))?;
            Box::new(move || {
                reader
                    .next_cell()
                    .map(|c| c.as_ref().map(placed))
                    .map_err(|e| unreadable(&e))
            })
        }
        Sheets::Xlsb(w) => {
            let mut reader = w
                .worksheet_cells_reader(&first_sheet)
                .map_err(|e| bad(unreadable(&e)))?;
            Box::new(move || {
                reader
                    .next_cell()
                    .map(|c| c.as_ref().map(placed))
                    .map_err(|e| unreadable(&e))
            })
        }
        Sheets::Xls(_) | Sheets::Ods(_) => {
            let range = workbook
                .worksheet_range(&first_sheet)
                .map_err(|e| bad(unreadable(&e)))?;
            let (top, left) = range.start().unwrap_or((0, 0));
            let mut used: Vec<PlacedCell> = range
                .used_cells()
                .map(|(r, c, v)| ((top + r as u32, left + c as u32), v.clone()))
                .collect();
            used.reverse();
            Box::new(move || Ok(used.pop()))
        }
    };
    let mut rows = SheetRows {
        cells,
        pending: None,
        last_row: None,
        cells_read: 0,
        done: false,
    };
    let header = rows
        .next_row()
        .map_err(&bad)?
        .ok_or_else(|| IngestError::Empty {
            source_name: name.clone(),
        })?;
    // Columns count from the header's first cell.
    let origin = header.cells.first().map_or(0, |c| c.0);
    let width = header.cells.last().map_or(0, |c| c.0 - origin + 1) as usize;
    let header = header.dense(origin, width).unwrap_or_default();
    let headers: Vec<String> = header
        .iter()
        .map(|c| cell_text(c).unwrap_or_default())
        .collect();
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mapping = crate::resolve_header(&name, &refs, profile)?;
    sink.table(mapping.table);
    let mut feed = RecordFeed::new(&name, &mapping, TextEncoding::Utf8);
    while let Some(row) = rows.next_row().map_err(&bad)? {
        // The Excel row number.
        let line = u64::from(row.index) + 1;
        if row.cells.iter().all(|c| c.1 == Data::Empty) {
            continue;
        }
        let last = row.cells.last().map_or(0, |c| c.0);
        let row_width = width.max((last.saturating_sub(origin) + 1) as usize);
        let row = match row.dense(origin, row_width) {
            Ok(row) => row,
            Err(column) => {
                let reject = Reject {
                    reason: RejectReason::InvalidText,
                    column: None,
                    detail: format!(
                        "a cell in column {} lies left of the header's first column",
                        column_name(column)
                    ),
                };
                feed.push(sink, line, Err(reject), String::new)?;
                continue;
            }
        };
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
