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
pub mod ingest;
mod jsonl;
pub mod object;
pub mod profile;
mod profile_file;
mod read;
pub mod source;
pub mod text;
pub mod value;
pub mod xlsx;

use std::io::Read;

use arrow::array::RecordBatch;
use kefu_model::Table;

pub use check::{CheckReport, CheckTotals, CheckedSource, check};
pub use convert::{Converter, Reject, RejectReason};
pub use ingest::{IngestOptions, IngestReport, ingest};
pub use jsonl::convert_jsonl;
pub use kefu_storage::ledger::TableCounts;
pub use profile::{FieldMap, MissingColumns, Profile};
pub use source::{DecompressionLimits, SourceName};
pub use text::TextEncoding;
pub use xlsx::convert_xlsx;

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
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Storage(#[from] kefu_storage::StorageError),
    #[error("writing the batch failed: {0}")]
    Write(String),
    #[error(
        "{rejected} of {records} records rejected ({:.2}%), more than the allowed ratio {max_ratio} (--max-reject-ratio, or max_reject_ratio in a job): nothing of this batch was committed",
        100.0 * *rejected as f64 / (*records).max(1) as f64
    )]
    TooManyRejects {
        records: u64,
        rejected: u64,
        max_ratio: f64,
    },
}

/// Rejects counted by reason, with the first few kept as examples (for `check` per
/// source, for `ingest` per batch).
#[derive(Debug)]
pub(crate) struct RejectTally<E> {
    pub by_reason: std::collections::BTreeMap<&'static str, u64>,
    pub examples: Vec<E>,
    keep: usize,
}

impl<E> RejectTally<E> {
    pub fn new(keep: usize) -> Self {
        RejectTally {
            by_reason: Default::default(),
            examples: Vec::new(),
            keep,
        }
    }

    /// Counts `reject`; `example` makes the example while fewer than `keep` are kept.
    pub fn note(&mut self, reject: &RejectedRecord, example: impl FnOnce() -> E) {
        *self
            .by_reason
            .entry(reject.reject.reason.code())
            .or_default() += 1;
        if self.examples.len() < self.keep {
            self.examples.push(example());
        }
    }
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
    /// The table the following rows and rejects belong to (called once per source).
    fn table(&mut self, _table: Table) {}
    /// A batch of rows; `lines` gives the source line of each row.
    fn batch(&mut self, batch: RecordBatch, lines: &[u64]) -> Result<(), IngestError>;
    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError>;
}

/// Keeps everything in memory (tests, small files).
#[derive(Debug, Default)]
pub struct Collected {
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<RejectedRecord>,
}

impl RowSink for Collected {
    fn batch(&mut self, batch: RecordBatch, _lines: &[u64]) -> Result<(), IngestError> {
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

/// The table a source feeds (from the profile, its name or its header), how its header
/// maps onto that table, and a converter for its records.
pub(crate) fn resolve_header(
    name: &str,
    headers: &[&str],
    profile: &Profile,
) -> Result<(Table, FieldMap, Converter), IngestError> {
    let table = profile
        .detect_table(name, headers)
        .ok_or_else(|| IngestError::UnknownTable {
            source_name: name.to_string(),
        })?;
    let map = profile
        .resolve(table, headers)
        .map_err(|error| IngestError::Header {
            source_name: name.to_string(),
            error,
        })?;
    let converter =
        Converter::new(profile, map.clone()).map_err(|reason| IngestError::Profile {
            profile: profile.name.clone(),
            reason,
        })?;
    Ok((table, map, converter))
}

/// Rejects a source may have before its share of them is checked.
pub const REJECTS_BEFORE_CHECK: u64 = 100_000;

/// Fails a source that has rejected more than [`REJECTS_BEFORE_CHECK`] records and most of
/// what it read: it is not an export of the table (or not one at all), and converting the
/// rest would only keep millions of rejects in memory and the warehouse busy.
pub(crate) fn check_reject_share(
    name: &str,
    records: u64,
    rejected: u64,
) -> Result<(), IngestError> {
    if rejected > REJECTS_BEFORE_CHECK && rejected * 2 > records {
        return Err(IngestError::Source {
            source_name: name.to_string(),
            reason: format!(
                "{rejected} of the first {records} records rejected: not an export of its \
                 table; stopped reading it"
            ),
        });
    }
    Ok(())
}

/// Hands records one at a time to a converter and its rows to a sink a batch at a time,
/// counting what became of each: the single-threaded readers (JSON Lines, Excel) share it.
pub(crate) struct RecordFeed {
    /// The source, for errors.
    name: String,
    converter: Converter,
    outcome: FileOutcome,
    /// The source line of each row the converter holds.
    lines: Vec<u64>,
}

impl RecordFeed {
    pub(crate) fn new(name: &str, converter: Converter, encoding: TextEncoding) -> Self {
        RecordFeed {
            name: name.to_string(),
            outcome: FileOutcome {
                table: converter.table(),
                encoding,
                records: 0,
                rows: 0,
                rejected: 0,
            },
            converter,
            lines: Vec::new(),
        }
    }

    /// One record from `line`: its fields, or why it could not be read as a record.
    /// `raw` is only called for a reject.
    pub(crate) fn push(
        &mut self,
        sink: &mut dyn RowSink,
        line: u64,
        fields: Result<csv::StringRecord, Reject>,
        raw: impl FnOnce() -> String,
    ) -> Result<(), IngestError> {
        self.outcome.records += 1;
        match fields.and_then(|f| self.converter.push(&f)) {
            Ok(()) => {
                self.outcome.rows += 1;
                self.lines.push(line);
                if self.converter.len() >= BATCH_ROWS {
                    sink.batch(self.converter.finish(), &self.lines)?;
                    self.lines.clear();
                }
            }
            Err(reject) => {
                self.outcome.rejected += 1;
                sink.reject(RejectedRecord {
                    line,
                    reject,
                    raw: raw(),
                })?;
                check_reject_share(&self.name, self.outcome.records, self.outcome.rejected)?;
            }
        }
        Ok(())
    }

    pub(crate) fn finish(mut self, sink: &mut dyn RowSink) -> Result<FileOutcome, IngestError> {
        if !self.converter.is_empty() {
            sink.batch(self.converter.finish(), &self.lines)?;
        }
        Ok(self.outcome)
    }
}

/// Reads one CSV source and converts every record, on all cores. Errors name the source
/// (archive and member); the table is detected from its file name or header unless the
/// profile sets it; the delimiter is sniffed from the header unless the profile sets it.
///
/// JSON Lines sources (`.jsonl`, `.ndjson`) are read by [`convert_jsonl`] and Excel
/// workbooks (`.xlsx`) by [`convert_xlsx`] instead.
pub fn convert_csv(
    source: impl Read,
    source_name: &SourceName,
    profile: &Profile,
    encoding: Option<TextEncoding>,
    sink: &mut dyn RowSink,
) -> Result<FileOutcome, IngestError> {
    if jsonl::is_jsonl(source_name) {
        return convert_jsonl(source, source_name, profile, sink);
    }
    if xlsx::is_xlsx(source_name) {
        return convert_xlsx(source, source_name, profile, sink);
    }
    let full_name = source_name.to_string();
    let name = full_name.as_str();
    let read_err = |error| IngestError::Read {
        source_name: name.to_string(),
        error,
    };
    let (encoding, text) =
        text::utf8_reader(source, encoding.or(profile.encoding)).map_err(read_err)?;
    let split_err = |e: read::SplitError| match e {
        read::SplitError::Io(error) => IngestError::Read {
            source_name: name.to_string(),
            error,
        },
        read::SplitError::RecordTooLong { line } => IngestError::Source {
            source_name: name.to_string(),
            reason: format!(
                "line {line}: a record longer than {} MiB: not a line-oriented export",
                text::MAX_LINE_BYTES / (1024 * 1024)
            ),
        },
    };
    let mut splitter = read::Splitter::new(text, profile.delimiter).map_err(read_err)?;
    let mut header = read::RecordChunk::default();
    if !splitter.next_record(&mut header).map_err(split_err)? {
        return Err(IngestError::Empty {
            source_name: name.to_string(),
        });
    }
    let headers = header
        .record(0)
        .map_err(|at| IngestError::Source {
            source_name: name.to_string(),
            reason: format!("line 1: the header is not valid text at byte {}", at + 1),
        })?
        .to_strings();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    // Validates the profile once, before any thread starts.
    let (table, map, _) = resolve_header(name, &header_refs, profile)?;
    sink.table(table);
    let make_converter =
        || Converter::new(profile, map.clone()).expect("the profile was validated above");
    let counts = read::convert_records(name, &mut splitter, &make_converter, sink, &split_err)?;
    Ok(FileOutcome {
        table,
        encoding,
        records: counts.records,
        rows: counts.rows,
        rejected: counts.rejected,
    })
}
