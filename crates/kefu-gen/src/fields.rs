//! The two [`FieldWriter`]s: CSV records (canonical or in an office export style) and
//! JSON Lines objects.

use csv::ByteRecord;
use kefu_model::{Column, Term};

use crate::calendar::TimeFormatter;
use crate::record::{FieldWriter, Id};
use crate::style::{DateStyle, ExportStyle};

/// Where CSV fields go: a [`ByteRecord`] (when the row may be altered afterwards) or
/// straight into a `csv::Writer` (the fast path: one copy per field).
pub trait FieldSink {
    fn push_field(&mut self, bytes: &[u8]);
    fn end_record(&mut self);
}

impl FieldSink for ByteRecord {
    fn push_field(&mut self, bytes: &[u8]) {
        ByteRecord::push_field(self, bytes);
    }
    fn end_record(&mut self) {}
}

/// Writes fields directly; keeps the first error to be checked after the row.
pub struct DirectCsv<'w, W: std::io::Write> {
    pub writer: &'w mut csv::Writer<W>,
    pub error: Option<csv::Error>,
}

impl<W: std::io::Write> FieldSink for DirectCsv<'_, W> {
    fn push_field(&mut self, bytes: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.writer.write_field(bytes)
        {
            self.error = Some(e);
        }
    }
    fn end_record(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.writer.write_record(None::<&[u8]>)
        {
            self.error = Some(e);
        }
    }
}

/// Formats one CSV row, canonically (`style` = None: RFC 3339 UTC, codes, seconds) or as an
/// office export would write it.
pub struct CsvFields<'a, S: FieldSink> {
    pub record: &'a mut S,
    pub columns: &'static [Column],
    pub style: Option<&'a ExportStyle>,
    pub times: &'a TimeFormatter,
    col: usize,
    scratch: String,
}

impl<'a> CsvFields<'a, ByteRecord> {
    /// Clears `record` and formats the next row into it.
    pub fn new(
        record: &'a mut ByteRecord,
        columns: &'static [Column],
        style: Option<&'a ExportStyle>,
        times: &'a TimeFormatter,
    ) -> Self {
        record.clear();
        Self::into_sink(record, columns, style, times)
    }
}

impl<'a, S: FieldSink> CsvFields<'a, S> {
    pub fn into_sink(
        record: &'a mut S,
        columns: &'static [Column],
        style: Option<&'a ExportStyle>,
        times: &'a TimeFormatter,
    ) -> Self {
        CsvFields {
            record,
            columns,
            style,
            times,
            col: 0,
            scratch: String::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.record.push_field(bytes);
        self.col += 1;
    }
}

/// `2026-01-05` / `2026/1/5` and `09:12:33` / `9:12:33` for a local time.
fn local_parts(
    times: &TimeFormatter,
    style: DateStyle,
    t: i64,
    date: &mut String,
    time: &mut String,
) {
    use chrono::Datelike;
    use std::fmt::Write;
    let (d, secs) = times.local_parts(t);
    let (y, mo, day) = (d.year(), d.month(), d.day());
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    date.clear();
    time.clear();
    match style {
        DateStyle::Dash => {
            let _ = write!(date, "{y:04}-{mo:02}-{day:02}");
            let _ = write!(time, "{h:02}:{m:02}:{s:02}");
        }
        DateStyle::Slash => {
            let _ = write!(date, "{y}/{mo}/{day}");
            let _ = write!(time, "{h}:{m:02}:{s:02}");
        }
    }
}

impl<S: FieldSink> FieldWriter for CsvFields<'_, S> {
    fn id(&mut self, v: Option<Id>) {
        match v {
            Some(id) => {
                let mut buf = [0u8; 32];
                let bytes = id.format(&mut buf);
                self.record.push_field(bytes);
                self.col += 1;
            }
            None => {
                let unknown_customer = self
                    .style
                    .filter(|_| self.columns[self.col].name == "customer_id")
                    .map_or("", |s| s.unknown_customer);
                self.push(unknown_customer.as_bytes());
            }
        }
    }

    fn text(&mut self, v: Option<&str>) {
        self.push(v.unwrap_or("").as_bytes());
    }

    fn term(&mut self, v: Option<&'static Term>) {
        let s = match (v, self.style) {
            (Some(t), Some(style)) if style.chinese_values => t.zh,
            (Some(t), _) => t.code,
            (None, _) => "",
        };
        self.push(s.as_bytes());
    }

    fn timestamp(&mut self, v: Option<i64>) {
        let Some(style) = self.style else {
            match v {
                Some(t) => {
                    let mut out = [0u8; 20];
                    self.times.rfc3339_utc(t, &mut out);
                    self.push(&out);
                }
                None => self.push(b""),
            }
            return;
        };
        let mut date = String::new();
        match v {
            Some(t) => {
                local_parts(self.times, style.dates, t, &mut date, &mut self.scratch);
                if style.split_datetime {
                    self.record.push_field(date.as_bytes());
                    self.record.push_field(self.scratch.as_bytes());
                } else {
                    date.push(' ');
                    date.push_str(&self.scratch);
                    self.record.push_field(date.as_bytes());
                }
            }
            None if style.split_datetime => {
                // Excel shows an empty time cell as 0:00:00.
                self.record.push_field(b"");
                self.record.push_field(b"0:00:00");
            }
            None => self.record.push_field(b""),
        }
        self.col += 1;
    }

    fn seconds(&mut self, v: Option<i32>) {
        match (v, self.style) {
            (None, _) => self.push(b""),
            (Some(s), Some(style)) if style.hms_durations => {
                let sign = if s < 0 { "-" } else { "" };
                let s = i64::from(s).abs();
                self.scratch.clear();
                use std::fmt::Write;
                let _ = write!(
                    self.scratch,
                    "{sign}{}:{:02}:{:02}",
                    s / 3600,
                    s / 60 % 60,
                    s % 60
                );
                let field = std::mem::take(&mut self.scratch);
                self.push(field.as_bytes());
                self.scratch = field;
            }
            (Some(s), _) => {
                let mut buf = itoa::Buffer::new();
                self.push(buf.format(s).as_bytes());
            }
        }
    }

    fn int(&mut self, v: i64) {
        let mut buf = itoa::Buffer::new();
        self.push(buf.format(v).as_bytes());
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.push(b""),
        }
    }

    fn boolean(&mut self, v: Option<bool>) {
        let chinese = self.style.is_some_and(|s| s.chinese_values);
        let s = match (v, chinese) {
            (None, _) => "",
            (Some(true), false) => "true",
            (Some(false), false) => "false",
            (Some(true), true) => "是",
            (Some(false), true) => "否",
        };
        self.push(s.as_bytes());
    }

    fn money(&mut self, cents: Option<i64>) {
        match cents {
            None => self.push(b""),
            Some(c) => {
                let s = format!("{}.{:02}", c / 100, (c % 100).abs());
                self.push(s.as_bytes());
            }
        }
    }

    fn end_row(&mut self) {
        debug_assert_eq!(
            self.col,
            self.columns.len(),
            "row has the table's column count"
        );
        self.record.end_record();
    }
}

/// Writes one JSON object per row into `out` (canonical formatting, nulls explicit).
pub struct JsonFields<'a> {
    pub out: &'a mut Vec<u8>,
    pub columns: &'static [Column],
    pub times: &'a TimeFormatter,
    col: usize,
}

impl<'a> JsonFields<'a> {
    pub fn new(out: &'a mut Vec<u8>, columns: &'static [Column], times: &'a TimeFormatter) -> Self {
        JsonFields {
            out,
            columns,
            times,
            col: 0,
        }
    }

    fn key(&mut self) {
        self.out.push(if self.col == 0 { b'{' } else { b',' });
        self.out.push(b'"');
        self.out
            .extend_from_slice(self.columns[self.col].name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.col += 1;
    }

    fn raw(&mut self, v: Option<&[u8]>) {
        self.key();
        self.out.extend_from_slice(v.unwrap_or(b"null"));
    }

    fn string(&mut self, v: Option<&str>) {
        self.key();
        match v {
            Some(s) => serde_json::to_writer(&mut *self.out, s).expect("writing to a Vec"),
            None => self.out.extend_from_slice(b"null"),
        }
    }
}

impl FieldWriter for JsonFields<'_> {
    fn id(&mut self, v: Option<Id>) {
        self.key();
        match v {
            Some(id) => {
                let mut buf = [0u8; 32];
                self.out.push(b'"');
                self.out.extend_from_slice(id.format(&mut buf));
                self.out.push(b'"');
            }
            None => self.out.extend_from_slice(b"null"),
        }
    }
    fn text(&mut self, v: Option<&str>) {
        self.string(v);
    }
    fn term(&mut self, v: Option<&'static Term>) {
        self.string(v.map(|t| t.code));
    }
    fn timestamp(&mut self, v: Option<i64>) {
        let mut out = [0u8; 22];
        if let Some(t) = v {
            out[0] = b'"';
            self.times
                .rfc3339_utc(t, (&mut out[1..21]).try_into().expect("20 bytes"));
            out[21] = b'"';
        }
        self.raw(v.map(|_| &out[..]));
    }
    fn seconds(&mut self, v: Option<i32>) {
        self.opt_int(v.map(i64::from));
    }
    fn int(&mut self, v: i64) {
        let mut buf = itoa::Buffer::new();
        let s = buf.format(v).as_bytes().to_vec();
        self.raw(Some(&s));
    }
    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.raw(None),
        }
    }
    fn boolean(&mut self, v: Option<bool>) {
        self.raw(v.map(|b| if b { &b"true"[..] } else { &b"false"[..] }));
    }
    fn money(&mut self, cents: Option<i64>) {
        let s = cents.map(|c| format!("{}.{:02}", c / 100, (c % 100).abs()));
        self.raw(s.as_deref().map(str::as_bytes));
    }
    fn end_row(&mut self) {
        debug_assert_eq!(self.col, self.columns.len());
        self.out.extend_from_slice(b"}\n");
    }
}
