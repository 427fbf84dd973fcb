//! kefu ingest: office exports into canonical Arrow batches, with every record accounted
//! for — it lands as a row of its table or as a reject with file, line, column, reason and
//! the raw record.
//!
//! Layers, bottom up: [`text`] (encodings), [`value`] (parsing local timestamps, durations,
//! enums, money), [`profile`] (mapping a source's header and values onto a canonical table)
//! and [`convert`] (records → `RecordBatch` in the model's schema, or [`convert::Reject`]).
//! Writing Parquet into the warehouse and the exactly-once ledger build on these.

pub mod check;
pub mod convert;
pub mod profile;
mod profile_file;
pub mod source;
pub mod text;
pub mod value;

use std::io::Read;

use arrow::array::RecordBatch;
use kefu_model::Table;

pub use check::{CheckReport, CheckTotals, CheckedSource, check};
pub use convert::{Converter, Reject, RejectReason};
pub use profile::{FieldMap, MissingColumns, Profile};
pub use source::SourceName;
pub use text::TextEncoding;

/// Rows per Arrow batch.
pub const BATCH_ROWS: usize = 64 * 1024;

/// Errors that stop a whole source file (row-level problems are [`Reject`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{source_name}: line {line}: malformed CSV: {error}")]
    Csv {
        source_name: String,
        line: u64,
        error: csv::Error,
    },
    #[error("{source_name}: {reason}")]
    Source { source_name: String, reason: String },
    #[error("{source_name}: the file is empty (no header)")]
    Empty { source_name: String },
    #[error(
        "{source_name}: cannot tell which table this file feeds (name it after the table or give --table)"
    )]
    UnknownTable { source_name: String },
    #[error("{source_name}: {error}")]
    Header {
        source_name: String,
        error: MissingColumns,
    },
    #[error("invalid profile '{profile}': {reason}")]
    Profile { profile: String, reason: String },
}

/// A rejected record of a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// 1-based physical line where the record starts (the header is line 1).
    pub line: u64,
    pub reject: Reject,
    /// The record's fields, re-joined as CSV.
    pub raw: String,
}

/// Receives what a source gives: batches of rows and rejected records, in order.
pub trait RowSink {
    fn batch(&mut self, batch: RecordBatch) -> Result<(), IngestError>;
    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError>;
}

/// Keeps everything in memory (tests, small files).
#[derive(Debug, Default)]
pub struct Collected {
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<RejectedRecord>,
}

impl RowSink for Collected {
    fn batch(&mut self, batch: RecordBatch) -> Result<(), IngestError> {
        self.batches.push(batch);
        Ok(())
    }
    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError> {
        self.rejects.push(reject);
        Ok(())
    }
}

/// What one source gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOutcome {
    pub table: Table,
    pub encoding: TextEncoding,
    /// Records read; every one became a row or a reject.
    pub records: u64,
    pub rows: u64,
    pub rejected: u64,
}

/// Reads one CSV source and converts every record. Errors name the source (archive and
/// member); the table is detected from its file name or header unless the profile sets it.
pub fn convert_csv(
    source: impl Read,
    source_name: &SourceName,
    profile: &Profile,
    encoding: Option<TextEncoding>,
    sink: &mut dyn RowSink,
) -> Result<FileOutcome, IngestError> {
    let full_name = source_name.to_string();
    let name = full_name.as_str();
    let read_err = |error| IngestError::Read {
        source_name: name.to_string(),
        error,
    };
    let (encoding, text) =
        text::utf8_reader(source, encoding.or(profile.encoding)).map_err(read_err)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(text::LineIndex::new(text));
    let mut record = csv::StringRecord::new();
    let csv_err = |line: u64, error: csv::Error| match error.kind() {
        csv::ErrorKind::Io(_) => IngestError::Read {
            source_name: name.to_string(),
            error: std::io::Error::other(error.to_string()),
        },
        _ => IngestError::Csv {
            source_name: name.to_string(),
            line,
            error,
        },
    };
    if !reader.read_record(&mut record).map_err(|e| csv_err(1, e))? {
        return Err(IngestError::Empty {
            source_name: name.to_string(),
        });
    }
    let headers: Vec<String> = record.iter().map(str::to_string).collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let table =
        profile
            .detect_table(name, &header_refs)
            .ok_or_else(|| IngestError::UnknownTable {
                source_name: name.to_string(),
            })?;
    let map = profile
        .resolve(table, &header_refs)
        .map_err(|error| IngestError::Header {
            source_name: name.to_string(),
            error,
        })?;
    let mut converter = Converter::new(profile, map).map_err(|reason| IngestError::Profile {
        profile: profile.name.clone(),
        reason,
    })?;
    let mut outcome = FileOutcome {
        table,
        encoding,
        records: 0,
        rows: 0,
        rejected: 0,
    };
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_err(line, e)),
        }
        let line = record
            .position()
            .map_or(line, |p| reader.get_mut().line_at(p.byte()));
        outcome.records += 1;
        match converter.push(&record) {
            Ok(()) => {
                outcome.rows += 1;
                if converter.len() >= BATCH_ROWS {
                    sink.batch(converter.finish())?;
                }
            }
            Err(reject) => {
                outcome.rejected += 1;
                sink.reject(RejectedRecord {
                    line,
                    reject,
                    raw: raw_line(&record),
                })?;
            }
        }
    }
    if !converter.is_empty() {
        sink.batch(converter.finish())?;
    }
    Ok(outcome)
}

fn raw_line(record: &csv::StringRecord) -> String {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let _ = w.write_record(record);
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_string()
}
