//! kefu ingest: office exports into canonical Arrow batches, with every record accounted
//! for — it lands as a row of its table or as a reject with file, line, column, reason and
//! the raw record.
//!
//! Layers, bottom up: [`text`] (encodings), [`value`] (parsing local timestamps, durations,
//! enums, money), [`profile`] (mapping a source's header and values onto a canonical table)
//! and [`convert`] (records → `RecordBatch` in the model's schema, or [`convert::Reject`]).
//! Writing Parquet into the warehouse and the exactly-once ledger build on these.

pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod convert;
pub mod deliveries;
pub mod ingest;
mod jsonl;
pub mod object;
pub mod profile;
mod profile_file;
mod read;
pub mod report;
pub mod source;
pub mod text;
pub mod transform;
pub mod value;
pub mod xlsx;

use std::io::Read;

use arrow::array::RecordBatch;
use kefu_model::Table;

pub use check::{CheckReport, CheckTotals, CheckedSource, check};
pub use convert::{Converter, Reject, RejectReason};
pub use ingest::{IngestOptions, IngestReport, ingest, ingest_at};
pub use jsonl::convert_jsonl;
pub use kefu_storage::ledger::TableCounts;
pub use profile::{FieldMap, MissingColumns, Profile};
pub use source::{DecompressionLimits, SourceName};
pub use text::TextEncoding;
pub use xlsx::convert_workbook;

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
    #[error("{origin}: invalid delivery schedule: {reason}")]
    Schedule { origin: String, reason: String },
    #[error("invalid profile '{profile}': {reason}")]
    Profile { profile: String, reason: String },
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    DateExpression(#[from] kefu_model::calendar::BadDateExpression),
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
    #[error(
        "{duplicates} of {records} records repeat a key their source gave before ({:.2}%), more than the allowed ratio {max_ratio} (--max-duplicate-ratio): is the key mapped from a column that is unique only with another? Nothing of this batch was committed",
        100.0 * *duplicates as f64 / (*records).max(1) as f64
    )]
    TooManyDuplicates {
        records: u64,
        duplicates: u64,
        max_ratio: f64,
    },
}

impl kefu_model::Classify for IngestError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            IngestError::Schedule { .. }
            | IngestError::Profile { .. }
            | IngestError::Options(_)
            | IngestError::DateExpression(_) => ErrorKind::Config,
            IngestError::TooManyRejects { .. } | IngestError::TooManyDuplicates { .. } => {
                ErrorKind::Rejects
            }
            IngestError::Storage(e) => e.kind(),
            IngestError::Read { .. }
            | IngestError::Csv { .. }
            | IngestError::Source { .. }
            | IngestError::Empty { .. }
            | IngestError::UnknownTable { .. }
            | IngestError::Header { .. }
            | IngestError::Write(_) => ErrorKind::Io,
        }
    }
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
    /// Records a SQL profile's `WHERE` dropped on purpose (test calls, other lines).
    pub filtered: u64,
    /// Rows whose key an earlier row of the same source already had: a source re-sending
    /// a record, or a profile mapping the key from a column that is no key (an id unique
    /// only together with another column).
    pub duplicate_keys: u64,
}

/// Counts the rows whose key the source gave before, passing everything on to `inner`.
struct KeyCounter<'a> {
    inner: &'a mut dyn RowSink,
    key: Option<usize>,
    counting: bool,
    /// The keys' hashes in arrival order; sorted and compared once the source is read.
    /// (A hash set probed per row cost a cache miss per row: about 5% of an ingest.)
    hashes: Vec<u64>,
    hasher: ahash::RandomState,
}

impl<'a> KeyCounter<'a> {
    /// Counts when `counting` (not for an event log, where keys repeat by design).
    fn new(inner: &'a mut dyn RowSink, counting: bool) -> Self {
        KeyCounter {
            inner,
            key: None,
            counting,
            hashes: Vec::new(),
            // Fixed seeds: the same source counts the same on every run.
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
        }
    }

    /// The rows whose key an earlier row had (of the rows passed on so far).
    fn duplicates(&mut self) -> u64 {
        self.hashes.sort_unstable();
        self.hashes.windows(2).filter(|w| w[0] == w[1]).count() as u64
    }
}

impl RowSink for KeyCounter<'_> {
    fn table(&mut self, table: Table) {
        self.key = table
            .columns()
            .iter()
            .position(|c| c.name == table.key_column())
            .filter(|_| self.counting);
        self.inner.table(table);
    }
    fn batch(&mut self, batch: RecordBatch, lines: &[u64]) -> Result<(), IngestError> {
        if let Some(keys) = self.key.and_then(|k| {
            batch
                .column(k)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
        }) {
            self.hashes
                .extend(keys.iter().flatten().map(|key| self.hasher.hash_one(key)));
        }
        self.inner.batch(batch, lines)
    }
    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError> {
        self.inner.reject(reject)
    }
}

/// How one source's records become rows of its table: the table (from the profile, its
/// name or its header), how the header (or the profile's SQL output) maps onto it, and the
/// profile the mapped values are read with.
#[derive(Debug, Clone)]
pub(crate) struct Mapping {
    pub table: Table,
    pub map: FieldMap,
    pub sql: Option<std::sync::Arc<transform::SqlTransform>>,
    profile: Profile,
}

impl Mapping {
    /// A converter for this source (one per thread).
    pub fn mapper(&self) -> read::Mapper {
        read::Mapper {
            converter: Converter::new(&self.profile, self.map.clone())
                .expect("the profile was validated when the mapping was made"),
            sql: self.sql.clone(),
        }
    }
}

/// Resolves a source's header under `profile` (validating the profile against it).
pub(crate) fn resolve_header(
    name: &str,
    headers: &[&str],
    profile: &Profile,
) -> Result<Mapping, IngestError> {
    let bad_profile = |reason| IngestError::Profile {
        profile: profile.name.clone(),
        reason,
    };
    let table = profile
        .detect_table(name, headers)
        .ok_or_else(|| IngestError::UnknownTable {
            source_name: name.to_string(),
        })?;
    let (map, sql, profile) = match &profile.sql {
        None => {
            let map = profile
                .resolve(table, headers)
                .map_err(|error| IngestError::Header {
                    source_name: name.to_string(),
                    error,
                })?;
            (map, None, profile.clone())
        }
        Some(sql) => {
            let transform = transform::SqlTransform::compile(sql, profile, table, headers)
                .map_err(|reason| IngestError::Source {
                    source_name: name.to_string(),
                    reason,
                })?;
            let map =
                transform
                    .field_map(profile, table)
                    .map_err(|reason| IngestError::Source {
                        source_name: name.to_string(),
                        reason,
                    })?;
            // The output's nulls are empty text; its instants are RFC 3339 and its naive
            // timestamps ISO 8601, in the profile's zone.
            let mut read_as = profile.clone();
            if !read_as.null_values.iter().any(String::is_empty) {
                read_as.null_values.push(String::new());
            }
            read_as
                .datetime_formats
                .push("%Y-%m-%dT%H:%M:%S%.f".to_string());
            (map, Some(std::sync::Arc::new(transform)), read_as)
        }
    };
    Converter::new(&profile, map.clone()).map_err(bad_profile)?;
    Ok(Mapping {
        table,
        map,
        sql,
        profile,
    })
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

/// Records a SQL profile maps at a time in the single-threaded readers.
const SQL_RECORDS: usize = 4096;

/// Hands records one at a time to a converter and its rows to a sink a batch at a time,
/// counting what became of each: the single-threaded readers (JSON Lines, Excel) share it.
/// Under a SQL profile records are mapped a few thousand at a time.
pub(crate) struct RecordFeed {
    /// The source, for errors.
    name: String,
    mapper: read::Mapper,
    outcome: FileOutcome,
    /// The source line of each row the converter holds.
    lines: Vec<u64>,
    /// Records waiting for the SQL transform: line, fields and raw text.
    pending: Vec<(u64, csv::StringRecord)>,
    /// The raw text of each pending record, for its reject.
    pending_raw: Vec<String>,
}

impl RecordFeed {
    pub(crate) fn new(name: &str, mapping: &Mapping, encoding: TextEncoding) -> Self {
        RecordFeed {
            name: name.to_string(),
            outcome: FileOutcome {
                table: mapping.table,
                encoding,
                records: 0,
                rows: 0,
                rejected: 0,
                filtered: 0,
                duplicate_keys: 0,
            },
            mapper: mapping.mapper(),
            lines: Vec::new(),
            pending: Vec::new(),
            pending_raw: Vec::new(),
        }
    }

    /// One record from `line`: its fields, or why it could not be read as a record.
    /// `raw` is only called for a reject (and for every record under a SQL profile).
    pub(crate) fn push(
        &mut self,
        sink: &mut dyn RowSink,
        line: u64,
        fields: Result<csv::StringRecord, Reject>,
        raw: impl FnOnce() -> String,
    ) -> Result<(), IngestError> {
        self.outcome.records += 1;
        let result = match (fields, &self.mapper.sql) {
            (Ok(fields), Some(_)) => {
                self.pending.push((line, fields));
                self.pending_raw.push(raw());
                if self.pending.len() >= SQL_RECORDS {
                    self.map_pending(sink)?;
                }
                return Ok(());
            }
            (fields, _) => fields.and_then(|f| self.mapper.converter.push(&f)),
        };
        match result {
            Ok(()) => self.landed(sink, line)?,
            Err(reject) => self.rejected(
                sink,
                RejectedRecord {
                    line,
                    reject,
                    raw: raw(),
                },
            )?,
        }
        Ok(())
    }

    fn landed(&mut self, sink: &mut dyn RowSink, line: u64) -> Result<(), IngestError> {
        self.outcome.rows += 1;
        self.lines.push(line);
        if self.mapper.converter.len() >= BATCH_ROWS {
            sink.batch(self.mapper.converter.finish(), &self.lines)?;
            self.lines.clear();
        }
        Ok(())
    }

    fn rejected(
        &mut self,
        sink: &mut dyn RowSink,
        rejected: RejectedRecord,
    ) -> Result<(), IngestError> {
        self.outcome.rejected += 1;
        sink.reject(rejected)?;
        check_reject_share(&self.name, self.outcome.records, self.outcome.rejected)
    }

    /// Maps the records waiting for the SQL transform.
    fn map_pending(&mut self, sink: &mut dyn RowSink) -> Result<(), IngestError> {
        let Some(sql) = self.mapper.sql.clone() else {
            return Ok(());
        };
        let records = std::mem::take(&mut self.pending);
        let mut raws = std::mem::take(&mut self.pending_raw);
        let mut landed = Vec::new();
        let mut rejects = Vec::new();
        self.outcome.filtered += sql
            .convert(
                &mut self.mapper.converter,
                &records,
                |line| landed.push(line),
                |line, reject, _| rejects.push((line, reject)),
            )
            .map_err(|reason| IngestError::Source {
                source_name: self.name.clone(),
                reason,
            })?;
        // Rows are handed on once a batch's worth has gathered.
        self.outcome.rows += landed.len() as u64;
        self.lines.extend(landed);
        if self.mapper.converter.len() >= BATCH_ROWS {
            sink.batch(self.mapper.converter.finish(), &self.lines)?;
            self.lines.clear();
        }
        for (line, reject) in rejects {
            // Pending records are in line order.
            let raw = records
                .binary_search_by_key(&line, |(l, _)| *l)
                .map(|i| std::mem::take(&mut raws[i]))
                .unwrap_or_default();
            self.rejected(sink, RejectedRecord { line, reject, raw })?;
        }
        Ok(())
    }

    pub(crate) fn finish(mut self, sink: &mut dyn RowSink) -> Result<FileOutcome, IngestError> {
        self.map_pending(sink)?;
        if !self.mapper.converter.is_empty() {
            sink.batch(self.mapper.converter.finish(), &self.lines)?;
        }
        Ok(self.outcome)
    }
}

/// Reads one CSV source and converts every record, on all cores. Errors name the source
/// (archive and member); the table is detected from its file name or header unless the
/// profile sets it; the delimiter is sniffed from the header unless the profile sets it.
///
/// JSON Lines sources (`.jsonl`, `.ndjson`) are read by [`convert_jsonl`] and workbooks
/// (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) by [`convert_workbook`] instead.
pub fn convert_csv(
    source: impl Read,
    source_name: &SourceName,
    profile: &Profile,
    encoding: Option<TextEncoding>,
    sink: &mut dyn RowSink,
) -> Result<FileOutcome, IngestError> {
    let mut counter = KeyCounter::new(sink, !profile.event_log);
    let mut outcome = if jsonl::is_jsonl(source_name) {
        convert_jsonl(source, source_name, profile, &mut counter)
    } else if xlsx::is_workbook(source_name) {
        convert_workbook(source, source_name, profile, &mut counter)
    } else {
        convert_delimited(source, source_name, profile, encoding, &mut counter)
    }?;
    outcome.duplicate_keys = counter.duplicates();
    if outcome.duplicate_keys > 0 {
        tracing::warn!(source = %source_name, duplicates = outcome.duplicate_keys,
            "rows whose key an earlier row of the source already had");
    }
    Ok(outcome)
}

/// Reads one delimited text source (CSV, TSV, …) and converts every record, on all cores.
pub(crate) fn convert_delimited(
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
    splitter.width = Some(headers.len());
    // Validates the profile once, before any thread starts.
    let mapping = resolve_header(name, &header_refs, profile)?;
    sink.table(mapping.table);
    let make_mapper = || mapping.mapper();
    let counts = read::convert_records(name, &mut splitter, &make_mapper, sink, &split_err)?;
    Ok(FileOutcome {
        table: mapping.table,
        encoding,
        records: counts.records,
        rows: counts.rows,
        rejected: counts.rejected,
        filtered: counts.filtered,
        duplicate_keys: 0,
    })
}
