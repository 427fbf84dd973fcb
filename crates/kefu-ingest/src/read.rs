//! Reading one CSV stream on every core. The calling thread decodes the text and splits it
//! into records with `csv_core` (cheap: a byte-level state machine); worker threads
//! validate and convert chunks of records into Arrow batches; results reach the sink in
//! input order, so the output does not depend on thread timing.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow::array::RecordBatch;

use crate::convert::{Converter, Fields, Reject, RejectReason};
use crate::text::MAX_LINE_BYTES;
use crate::transform::SqlTransform;
use crate::{RejectedRecord, RowSink};

/// Field bytes per chunk handed to a worker (about 5,000 call records).
const CHUNK_BYTES: usize = 1024 * 1024;
/// Records per chunk at most (narrow tables).
const CHUNK_RECORDS: usize = 16 * 1024;
const READ_BUFFER: usize = 256 * 1024;

/// Records split from the input: field bytes back to back, with where each field and
/// record ends and the physical line where each record starts.
#[derive(Debug, Default)]
pub(crate) struct RecordChunk {
    data: Vec<u8>,
    data_len: usize,
    /// Absolute end offset in `data` of every field.
    field_ends: Vec<usize>,
    fields_len: usize,
    /// For every record: the index in `field_ends` just after its last field.
    record_ends: Vec<usize>,
    /// For every record: its 1-based starting line.
    lines: Vec<u64>,
    /// The source text of records read by the full parser (quotes, breaks in fields),
    /// back to back; a plain line's text is its fields joined by `delimiter`.
    raw: Vec<u8>,
    /// For every record: its span in `raw`, or none for a plain line.
    raw_spans: Vec<Option<(usize, usize)>>,
    delimiter: u8,
}

impl RecordChunk {
    pub(crate) fn records(&self) -> usize {
        self.record_ends.len()
    }

    /// Empties the chunk, keeping its buffers: chunks are recycled, because fresh
    /// megabyte buffers per chunk cost more in page faults than the parsing itself.
    fn clear(&mut self) {
        self.data_len = 0;
        self.fields_len = 0;
        self.record_ends.clear();
        self.lines.clear();
        self.raw.clear();
        self.raw_spans.clear();
    }

    fn is_full(&self) -> bool {
        self.data_len >= CHUNK_BYTES || self.records() >= CHUNK_RECORDS
    }

    /// The byte range and field range of record `r`.
    fn bounds(&self, r: usize) -> (usize, usize, usize) {
        let first_field = if r == 0 { 0 } else { self.record_ends[r - 1] };
        let start = if first_field == 0 {
            0
        } else {
            self.field_ends[first_field - 1]
        };
        (start, first_field, self.record_ends[r])
    }

    /// Record `r`'s fields as text, or the byte offset (in the record) of invalid UTF-8.
    pub(crate) fn record(&self, r: usize) -> Result<ChunkRecord<'_>, usize> {
        let (start, first, last) = self.bounds(r);
        let end = if last > first {
            self.field_ends[last - 1]
        } else {
            start
        };
        // Chinese text fails std's ASCII fast path; SIMD validation keeps up with it.
        let text =
            simdutf8::compat::from_utf8(&self.data[start..end]).map_err(|e| e.valid_up_to())?;
        Ok(ChunkRecord {
            text,
            base: start,
            ends: &self.field_ends[first..last],
        })
    }

    /// Record `r` as the source wrote it (decoded; invalid bytes replaced): the
    /// reject's raw record.
    pub(crate) fn raw_text(&self, r: usize) -> String {
        if let Some((start, end)) = self.raw_spans[r] {
            return String::from_utf8_lossy(&self.raw[start..end]).into_owned();
        }
        // A plain line has no quotes: its fields joined by the delimiter are the line.
        let (start, first, last) = self.bounds(r);
        let mut line = Vec::with_capacity(
            self.field_ends
                .get(last.wrapping_sub(1))
                .map_or(0, |e| e - start)
                + last
                - first,
        );
        for f in first..last {
            let s = if f == first {
                start
            } else {
                self.field_ends[f - 1]
            };
            if f > first {
                line.push(self.delimiter);
            }
            line.extend_from_slice(&self.data[s..self.field_ends[f]]);
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Appends `line` (one physical line, without its break) as a record starting at
    /// `number`, parsed on its own: an opening quote it does not close runs to its end.
    fn push_line(&mut self, line: &[u8], number: u64, delimiter: u8) {
        let mut core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        let start = self.data_len;
        let first_field = self.fields_len;
        let need = start + line.len() + 1;
        if self.data.len() < need {
            self.data.resize(need.max(self.data.len() * 2), 0);
        }
        if self.field_ends.len() < first_field + line.len() + 2 {
            let grown = (first_field + line.len() + 2).max(self.field_ends.len() * 2);
            self.field_ends.resize(grown, 0);
        }
        let (mut input, mut out, mut ends) = (line, 0, 0);
        loop {
            let (result, nin, nout, nend) = core.read_record(
                input,
                &mut self.data[start + out..],
                &mut self.field_ends[first_field + ends..],
            );
            input = &input[nin..];
            out += nout;
            ends += nend;
            match result {
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
                // The end of the line is the end of the record.
                csv_core::ReadRecordResult::InputEmpty if input.is_empty() => {
                    let (_, _, nout, nend) = core.read_record(
                        &[],
                        &mut self.data[start + out..],
                        &mut self.field_ends[first_field + ends..],
                    );
                    out += nout;
                    ends += nend;
                    break;
                }
                _ => {}
            }
        }
        for e in &mut self.field_ends[first_field..first_field + ends] {
            *e += start;
        }
        self.data_len = start + out;
        self.fields_len = first_field + ends;
        self.record_ends.push(self.fields_len);
        self.lines.push(number);
        let raw_start = self.raw.len();
        self.raw.extend_from_slice(line);
        self.raw_spans.push(Some((raw_start, self.raw.len())));
    }
}

/// One record of a [`RecordChunk`].
pub(crate) struct ChunkRecord<'a> {
    text: &'a str,
    base: usize,
    ends: &'a [usize],
}

impl Fields for ChunkRecord<'_> {
    #[inline]
    fn count(&self) -> usize {
        self.ends.len()
    }
    #[inline]
    fn field(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] - self.base
        };
        &self.text[start..self.ends[i] - self.base]
    }
}

impl ChunkRecord<'_> {
    pub(crate) fn to_strings(&self) -> Vec<String> {
        (0..self.count())
            .map(|i| self.field(i).to_string())
            .collect()
    }
}

/// Re-joins fields as one CSV line (quoted where needed): the reject's raw record.
pub(crate) fn join_csv<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let fields: Vec<&str> = fields.collect();
    let _ = w.write_record(&fields);
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_string()
}

/// `text` without its final line break (LF or CRLF).
fn trim_break(text: &[u8]) -> &[u8] {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.strip_suffix(b"\r").unwrap_or(text)
}

/// Why splitting stopped before the end of the input.
#[derive(Debug)]
pub(crate) enum SplitError {
    Io(std::io::Error),
    RecordTooLong { line: u64 },
}

impl From<std::io::Error> for SplitError {
    fn from(e: std::io::Error) -> Self {
        SplitError::Io(e)
    }
}

/// Splits text into records, counting physical lines (LF, CRLF, and line breaks inside
/// quoted fields all count, as an editor shows them).
///
/// A quote that opens a field and never closes would make the rest of the file one
/// record. A record over several lines is therefore taken apart into its lines when it
/// does not have the header's number of fields while a later line of it does (whole
/// records were swallowed), or when it runs past [`MAX_QUOTED_LINES`] lines or
/// [`MAX_QUOTED_BYTES`]: each line is then a record of its own (the one with the stray
/// quote is rejected, the others land).
pub(crate) struct Splitter<R> {
    input: BufReader<R>,
    core: csv_core::Reader,
    delimiter: u8,
    /// The line the input position is on.
    line: u64,
    /// The header's number of fields, once read.
    pub(crate) width: Option<usize>,
    /// The source text of the record being read by the full parser.
    raw: Vec<u8>,
}

/// Lines a quoted field may span (a note with line breaks), beyond which its quote is
/// taken as never closed.
pub(crate) const MAX_QUOTED_LINES: u64 = 1000;
/// Bytes a record spanning several lines may have before the same.
pub(crate) const MAX_QUOTED_BYTES: u64 = 1024 * 1024;

/// The delimiter the header line uses most: `,`, tab, `;` or `|` (`,` when none).
pub(crate) fn sniff_delimiter(sample: &[u8]) -> u8 {
    let line = sample.split(|&b| b == b'\n').next().unwrap_or_default();
    [b',', b'\t', b';', b'|']
        .into_iter()
        .map(|d| (memchr::memchr_iter(d, line).count(), d))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, d)| (*n, *d == b','))
        .map_or(b',', |(_, d)| d)
}

impl<R: Read> Splitter<R> {
    pub(crate) fn new(input: R, delimiter: Option<u8>) -> std::io::Result<Self> {
        let mut input = BufReader::with_capacity(READ_BUFFER, input);
        let delimiter = match delimiter {
            Some(d) => d,
            None => sniff_delimiter(input.fill_buf()?),
        };
        Ok(Splitter {
            input,
            core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            delimiter,
            line: 1,
            width: None,
            raw: Vec::new(),
        })
    }

    /// Appends the next record to `chunk`; false at the end of the input.
    pub(crate) fn next_record(&mut self, chunk: &mut RecordChunk) -> Result<bool, SplitError> {
        // Skip line breaks between records ourselves, so the record's first line is known.
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let skip = buf
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            self.line += buf[..skip].iter().filter(|&&b| b == b'\n').count() as u64;
            let rest = skip < buf.len();
            self.input.consume(skip);
            if rest {
                break;
            }
        }
        chunk.delimiter = self.delimiter;
        if self.next_plain_line(chunk)? {
            return Ok(true);
        }
        let first_line = self.line;
        let start = chunk.data_len;
        let first_field = chunk.fields_len;
        let (mut out, mut ends) = (0usize, 0usize);
        let mut consumed = 0u64;
        self.raw.clear();
        loop {
            if chunk.data.len() < start + out + 1024 {
                let grown = (chunk.data.len() * 2).max(start + out + 64 * 1024);
                chunk.data.resize(grown, 0);
            }
            if chunk.field_ends.len() < first_field + ends + 64 {
                let grown = (chunk.field_ends.len() * 2).max(first_field + ends + 1024);
                chunk.field_ends.resize(grown, 0);
            }
            let input = self.input.fill_buf()?;
            let (result, nin, nout, nend) = self.core.read_record(
                input,
                &mut chunk.data[start + out..],
                &mut chunk.field_ends[first_field + ends..],
            );
            self.line += memchr::memchr_iter(b'\n', &input[..nin]).count() as u64;
            self.raw.extend_from_slice(&input[..nin]);
            self.input.consume(nin);
            consumed += nin as u64;
            out += nout;
            ends += nend;
            let spanned = self.line - first_line;
            if consumed > MAX_LINE_BYTES && spanned == 0 {
                return Err(SplitError::RecordTooLong { line: first_line });
            }
            if spanned > MAX_QUOTED_LINES || (spanned > 0 && consumed > MAX_QUOTED_BYTES) {
                // A quote that never closes: the rest of the current line belongs to the
                // lines being taken apart.
                self.finish_line()?;
                self.split_lines(chunk, first_line, start, first_field);
                return Ok(true);
            }
            match result {
                csv_core::ReadRecordResult::InputEmpty
                | csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {}
                csv_core::ReadRecordResult::Record => {
                    let spanned_lines = self.raw_lines() > 1;
                    if spanned_lines
                        && self
                            .width
                            .is_some_and(|w| w != ends && self.later_lines_are_records(w))
                    {
                        self.split_lines(chunk, first_line, start, first_field);
                        return Ok(true);
                    }
                    // csv_core counts field ends from the record's start.
                    for e in &mut chunk.field_ends[first_field..first_field + ends] {
                        *e += start;
                    }
                    chunk.data_len = start + out;
                    chunk.fields_len = first_field + ends;
                    chunk.record_ends.push(chunk.fields_len);
                    chunk.lines.push(first_line);
                    let raw_start = chunk.raw.len();
                    chunk.raw.extend_from_slice(trim_break(&self.raw));
                    chunk.raw_spans.push(Some((raw_start, chunk.raw.len())));
                    return Ok(true);
                }
                csv_core::ReadRecordResult::End => return Ok(false),
            }
        }
    }

    /// Whether a line after the first of the record text, parsed alone, has `width`
    /// fields: then the record is whole records swallowed by a stray quote, not one
    /// record with a note over several lines (whose later lines hold its last fields).
    fn later_lines_are_records(&self, width: usize) -> bool {
        trim_break(&self.raw)
            .split(|&b| b == b'\n')
            .skip(1)
            .any(|line| {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(self.delimiter)
                    .from_reader(line);
                let mut record = csv::ByteRecord::new();
                reader.read_byte_record(&mut record).unwrap_or(false) && record.len() == width
            })
    }

    /// Lines in the record text read so far (its final line break not counted).
    fn raw_lines(&self) -> usize {
        memchr::memchr_iter(b'\n', trim_break(&self.raw)).count() + 1
    }

    /// Reads the rest of the current physical line into the record text.
    fn finish_line(&mut self) -> Result<(), SplitError> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            match memchr::memchr(b'\n', buf) {
                Some(at) => {
                    self.raw.extend_from_slice(&buf[..=at]);
                    self.input.consume(at + 1);
                    self.line += 1;
                    return Ok(());
                }
                None => {
                    let n = buf.len();
                    self.raw.extend_from_slice(buf);
                    self.input.consume(n);
                }
            }
        }
    }

    /// Takes the record text read since `first_line` apart into one record per line,
    /// discarding what the full parser made of it.
    fn split_lines(
        &mut self,
        chunk: &mut RecordChunk,
        first_line: u64,
        start: usize,
        first_field: usize,
    ) {
        chunk.data_len = start;
        chunk.fields_len = first_field;
        // The parser was inside a quoted field: start it afresh.
        self.core = csv_core::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .build();
        let raw = std::mem::take(&mut self.raw);
        for (number, line) in (first_line..).zip(trim_break(&raw).split(|&b| b == b'\n')) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                chunk.push_line(line, number, self.delimiter);
            }
        }
        self.raw = raw;
    }

    /// Fills a chunk; `None` at the end of the input.
    /// The common case without the state machine: a record that is one whole line in the
    /// buffer with no quote (and no stray carriage return) is split at its delimiters with
    /// memchr. False, having consumed nothing, when the record needs the full parser.
    fn next_plain_line(&mut self, chunk: &mut RecordChunk) -> Result<bool, SplitError> {
        let buf = self.input.fill_buf()?;
        let Some(newline) = memchr::memchr(b'\n', buf) else {
            return Ok(false);
        };
        let line = &buf[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if memchr::memchr2(b'"', b'\r', line).is_some() {
            return Ok(false);
        }
        let start = chunk.data_len;
        let first_field = chunk.fields_len;
        // A line of n bytes has at most n + 1 fields: room without counting them first.
        if chunk.data.len() < start + line.len() {
            let grown = (chunk.data.len() * 2).max(start + line.len() + 64 * 1024);
            chunk.data.resize(grown, 0);
        }
        if chunk.field_ends.len() < first_field + line.len() + 1 {
            let grown = (chunk.field_ends.len() * 2).max(first_field + line.len() + 1024);
            chunk.field_ends.resize(grown, 0);
        }
        let (mut out, mut field, mut from) = (start, first_field, 0);
        for at in memchr::memchr_iter(self.delimiter, line).chain([line.len()]) {
            let part = &line[from..at];
            chunk.data[out..out + part.len()].copy_from_slice(part);
            out += part.len();
            chunk.field_ends[field] = out;
            field += 1;
            from = at + 1;
        }
        chunk.data_len = out;
        chunk.fields_len = field;
        chunk.record_ends.push(field);
        chunk.lines.push(self.line);
        chunk.raw_spans.push(None);
        self.line += 1;
        self.input.consume(newline + 1);
        Ok(true)
    }

    /// Fills `chunk` (emptied first, its buffers kept); `None` at the end of the input.
    fn next_chunk(&mut self, mut chunk: RecordChunk) -> Result<Option<RecordChunk>, SplitError> {
        chunk.clear();
        while !chunk.is_full() {
            if !self.next_record(&mut chunk)? {
                break;
            }
        }
        if chunk.records() == 0 {
            // Kept for the next stream this thread reads (archives hold many small ones).
            SPARE_CHUNK.with(|spare| *spare.borrow_mut() = Some(chunk));
            return Ok(None);
        }
        Ok(Some(chunk))
    }
}

thread_local! {
    static SPARE_CHUNK: std::cell::RefCell<Option<RecordChunk>> =
        const { std::cell::RefCell::new(None) };
}

/// A chunk with buffers from an earlier stream of this thread, if there is one.
fn spare_chunk() -> RecordChunk {
    SPARE_CHUNK
        .with(|spare| spare.borrow_mut().take())
        .unwrap_or_default()
}

/// What converts one source's records on one thread: the converter, and the profile's
/// SQL transform in front of it if there is one.
pub(crate) struct Mapper {
    pub converter: Converter,
    pub sql: Option<std::sync::Arc<SqlTransform>>,
}

/// What a worker made of one chunk.
struct Converted {
    /// The chunk, back for reuse.
    chunk: RecordChunk,
    batch: Option<RecordBatch>,
    /// The starting line of every row in `batch`.
    lines: Vec<u64>,
    rejects: Vec<RejectedRecord>,
    /// Records the profile's SQL dropped on purpose.
    filtered: u64,
    /// Why the profile's SQL could not run (the source fails).
    failure: Option<String>,
}

fn invalid_text(chunk: &RecordChunk, r: usize, at: usize) -> RejectedRecord {
    RejectedRecord {
        line: chunk.lines[r],
        reject: Reject {
            reason: RejectReason::InvalidText,
            column: None,
            detail: format!(
                "byte {} of the record is not valid UTF-8 (is the encoding set right?)",
                at + 1
            ),
        },
        raw: chunk.raw_text(r),
    }
}

fn convert_chunk(mapper: &mut Mapper, chunk: RecordChunk) -> Converted {
    let converter = &mut mapper.converter;
    let Some(sql) = &mapper.sql else {
        return convert_chunk_directly(converter, chunk);
    };
    let mut rejects = Vec::new();
    let mut records = Vec::with_capacity(chunk.records());
    for r in 0..chunk.records() {
        match chunk.record(r) {
            Ok(record) => records.push((chunk.lines[r], record)),
            Err(at) => rejects.push(invalid_text(&chunk, r, at)),
        }
    }
    let mut lines = Vec::with_capacity(records.len());
    let result = sql.convert(
        converter,
        &records,
        |line| lines.push(line),
        |line, reject, _| {
            // Lines ascend through the chunk, one record each.
            let r = chunk.lines.partition_point(|&l| l < line);
            rejects.push(RejectedRecord {
                line,
                reject,
                raw: chunk.raw_text(r),
            });
        },
    );
    rejects.sort_by_key(|r| r.line);
    drop(records);
    let (filtered, failure) = match result {
        Ok(n) => (n, None),
        Err(e) => (0, Some(e)),
    };
    Converted {
        chunk,
        batch: (!converter.is_empty()).then(|| converter.finish()),
        lines,
        rejects,
        filtered,
        failure,
    }
}

fn convert_chunk_directly(converter: &mut Converter, chunk: RecordChunk) -> Converted {
    let mut lines = Vec::with_capacity(chunk.records());
    let mut rejects = Vec::new();
    for r in 0..chunk.records() {
        let line = chunk.lines[r];
        let outcome = match chunk.record(r) {
            Ok(record) => converter.push(&record).map_err(|reject| RejectedRecord {
                line,
                reject,
                raw: chunk.raw_text(r),
            }),
            Err(at) => Err(invalid_text(&chunk, r, at)),
        };
        match outcome {
            Ok(()) => lines.push(line),
            Err(mut rejected) => {
                rejected.line = line;
                rejects.push(rejected);
            }
        }
    }
    Converted {
        chunk,
        batch: (!converter.is_empty()).then(|| converter.finish()),
        lines,
        rejects,
        filtered: 0,
        failure: None,
    }
}

/// Counts of one stream's records.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub records: u64,
    pub rows: u64,
    pub rejected: u64,
    pub filtered: u64,
}

/// Hands a worker's result to the sink; returns the chunk for reuse.
fn deliver(
    converted: Converted,
    counts: &mut Counts,
    sink: &mut dyn RowSink,
    name: &str,
) -> Result<RecordChunk, crate::IngestError> {
    counts.rows += converted.lines.len() as u64;
    counts.rejected += converted.rejects.len() as u64;
    if let Some(reason) = converted.failure {
        return Err(crate::IngestError::Source {
            source_name: name.to_string(),
            reason,
        });
    }
    counts.filtered += converted.filtered;
    counts.records += (converted.lines.len() + converted.rejects.len()) as u64 + converted.filtered;
    crate::check_reject_share(name, counts.records, counts.rejected)?;
    if let Some(batch) = converted.batch {
        sink.batch(batch, &converted.lines)?;
    }
    for r in converted.rejects {
        sink.reject(r)?;
    }
    Ok(converted.chunk)
}

/// Threads converting chunks, or reading small files: one per core (at most 8).
pub(crate) fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Splits the rest of `splitter`'s input and converts it with `make_mapper()` on worker
/// threads, delivering results to `sink` in input order.
pub(crate) fn convert_records<R: Read>(
    name: &str,
    splitter: &mut Splitter<R>,
    make_mapper: &dyn Fn() -> Mapper,
    sink: &mut dyn RowSink,
    split_err: &dyn Fn(SplitError) -> crate::IngestError,
) -> Result<Counts, crate::IngestError> {
    let mut counts = Counts::default();
    let Some(first) = splitter.next_chunk(spare_chunk()).map_err(split_err)? else {
        return Ok(counts);
    };
    let workers = worker_count();
    if workers == 1 || !first.is_full() {
        // Small inputs (most archive members) are not worth a thread.
        let mut converter = make_mapper();
        let mut next = Some(first);
        while let Some(chunk) = next {
            let chunk = deliver(
                convert_chunk(&mut converter, chunk),
                &mut counts,
                sink,
                name,
            )?;
            next = splitter.next_chunk(chunk).map_err(split_err)?;
        }
        return Ok(counts);
    }
    std::thread::scope(|scope| {
        let mut inputs: Vec<SyncSender<RecordChunk>> = Vec::new();
        let mut outputs: Vec<Receiver<Converted>> = Vec::new();
        for _ in 0..workers {
            let (chunk_tx, chunk_rx) = sync_channel::<RecordChunk>(2);
            let (done_tx, done_rx) = sync_channel::<Converted>(2);
            let mut converter = make_mapper();
            std::thread::Builder::new()
                .name("kefu-convert".into())
                .spawn_scoped(scope, move || {
                    for chunk in chunk_rx {
                        if done_tx.send(convert_chunk(&mut converter, chunk)).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawn a conversion thread");
            inputs.push(chunk_tx);
            outputs.push(done_rx);
        }
        // Chunk n goes to worker n % workers; results are taken back in the same order.
        // At most two chunks per worker are in flight, so no channel ever blocks for good.
        let max_in_flight = 2 * workers;
        let mut in_flight: VecDeque<usize> = VecDeque::new();
        let mut sent = 0usize;
        let mut next = Some(first);
        let mut spare: Vec<RecordChunk> = Vec::new();
        let result = (|| {
            while let Some(chunk) = next.take() {
                if in_flight.len() == max_in_flight {
                    let w = in_flight.pop_front().expect("in flight");
                    let converted = outputs[w].recv().expect("worker alive");
                    spare.push(deliver(converted, &mut counts, sink, name)?);
                }
                let w = sent % workers;
                inputs[w].send(chunk).expect("worker alive");
                in_flight.push_back(w);
                sent += 1;
                let reuse = spare.pop().unwrap_or_default();
                next = splitter.next_chunk(reuse).map_err(split_err)?;
            }
            while let Some(w) = in_flight.pop_front() {
                let converted = outputs[w].recv().expect("worker alive");
                deliver(converted, &mut counts, sink, name)?;
            }
            Ok(counts)
        })();
        // Closing the inputs ends the workers (also on error).
        drop(inputs);
        drop(outputs);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<(u64, Vec<String>)> {
        let mut s = Splitter::new(text.as_bytes(), None).unwrap();
        let mut chunk = RecordChunk::default();
        while s.next_record(&mut chunk).unwrap() {}
        (0..chunk.records())
            .map(|r| (chunk.lines[r], chunk.record(r).unwrap().to_strings()))
            .collect()
    }

    #[test]
    fn records_know_their_lines() {
        let got = split("h1,h2\r\na,\"x\r\ny\"\r\n\r\nb,c\r\nd,\"\"\"q\"\"\"");
        let want = vec![
            (1, vec!["h1".to_string(), "h2".into()]),
            (2, vec!["a".into(), "x\r\ny".into()]),
            (5, vec!["b".into(), "c".into()]),
            (6, vec!["d".into(), "\"q\"".into()]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn delimiters_are_sniffed_from_the_header() {
        assert_eq!(sniff_delimiter(b"a\tb\tc\n1,2\t3"), b'\t');
        assert_eq!(sniff_delimiter(b"a;b;c"), b';');
        assert_eq!(sniff_delimiter(b"a,b;c"), b',');
        assert_eq!(sniff_delimiter(b"single"), b',');
        assert_eq!(split("a\tb\n1\t2")[1].1, vec!["1", "2"]);
    }

    #[test]
    fn a_record_longer_than_the_limit_is_refused() {
        let long = vec![b'x'; MAX_LINE_BYTES as usize + 10];
        let mut s = Splitter::new(&long[..], Some(b',')).unwrap();
        let mut chunk = RecordChunk::default();
        assert!(matches!(
            s.next_record(&mut chunk),
            Err(SplitError::RecordTooLong { line: 1 })
        ));
    }
}
