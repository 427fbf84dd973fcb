//! Checking sources without ingesting them: every record is read, mapped and validated
//! exactly as ingest would, and the problems are reported per source. Rows are discarded.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use kefu_progress::{Progress, Unit};

use crate::source::{expand_inputs, for_each_input_stream};
use crate::{
    FileOutcome, IngestError, Profile, RejectTally, RejectedRecord, RowSink, SourceName,
    convert_csv,
};

/// The result for one source (a file or an archive member).
#[derive(Debug)]
pub struct CheckedSource {
    pub source: SourceName,
    /// What was read, or why the source could not be read at all.
    pub outcome: Result<FileOutcome, String>,
    pub rejects_by_reason: BTreeMap<&'static str, u64>,
    /// The first rejects, as examples.
    pub examples: Vec<RejectedRecord>,
    /// The first rows as they would land (in the table's schema), when asked for.
    pub preview: Option<RecordBatch>,
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub sources: Vec<CheckedSource>,
}

/// Totals over all sources.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckTotals {
    pub sources: u64,
    pub unreadable: u64,
    pub records: u64,
    pub rows: u64,
    pub rejected: u64,
    pub filtered: u64,
    pub duplicate_keys: u64,
}

impl CheckReport {
    pub fn totals(&self) -> CheckTotals {
        let mut t = CheckTotals::default();
        for s in &self.sources {
            t.sources += 1;
            match &s.outcome {
                Ok(o) => {
                    t.records += o.records;
                    t.rows += o.rows;
                    t.rejected += o.rejected;
                    t.filtered += o.filtered;
                    t.duplicate_keys += o.duplicate_keys;
                }
                Err(_) => t.unreadable += 1,
            }
        }
        t
    }
}

/// Counts a source's rejects and keeps its first `rows` rows; the rest are discarded.
struct Tally {
    rejects: RejectTally<RejectedRecord>,
    rows: usize,
    preview: Vec<RecordBatch>,
    kept: usize,
}

impl RowSink for Tally {
    fn batch(&mut self, batch: RecordBatch, _: &[u64]) -> Result<(), IngestError> {
        let take = (self.rows - self.kept).min(batch.num_rows());
        if take > 0 {
            self.preview.push(batch.slice(0, take));
            self.kept += take;
        }
        Ok(())
    }
    fn reject(&mut self, reject: RejectedRecord) -> Result<(), IngestError> {
        self.rejects.note(&reject, || reject.clone());
        Ok(())
    }
}

/// Checks every source named by `inputs` (files, directories, globs, archives), keeping
/// `examples` rejects and the first `rows` mapped rows of each. A source that cannot be
/// read is reported and the check goes on; only inputs that do not exist stop it.
/// Objects in a store are read over `runtime`; call from a thread that may block.
pub fn check(
    runtime: &tokio::runtime::Handle,
    inputs: &[String],
    profile: &Profile,
    examples: usize,
    rows: usize,
    progress: &dyn Progress,
) -> Result<CheckReport, IngestError> {
    let files = expand_inputs(runtime, inputs)?;
    progress.start("checking", Some(files.len() as u64), Unit::Items("files"));
    let mut report = CheckReport::default();
    for file in &files {
        let result = for_each_input_stream(file, &|_| {}, |name, reader| {
            let mut tally = Tally {
                rejects: RejectTally::new(examples),
                rows,
                preview: Vec::new(),
                kept: 0,
            };
            let outcome =
                convert_csv(reader, &name, profile, None, &mut tally).map_err(|e| e.to_string());
            let preview = match tally.preview.first() {
                Some(first) => Some(
                    arrow::compute::concat_batches(&first.schema(), &tally.preview)
                        .map_err(|e| IngestError::Write(format!("previewing {name}: {e}")))?,
                ),
                None => None,
            };
            report.sources.push(CheckedSource {
                source: name,
                outcome,
                rejects_by_reason: tally.rejects.by_reason,
                examples: tally.rejects.examples,
                preview,
            });
            Ok(())
        });
        if let Err(e) = result {
            // The archive itself is unreadable (members before the damage were checked).
            report.sources.push(CheckedSource {
                source: SourceName::file(file.name()),
                outcome: Err(e.to_string()),
                rejects_by_reason: BTreeMap::new(),
                examples: Vec::new(),
                preview: None,
            });
        }
        progress.advance(1);
    }
    progress.finish();
    Ok(report)
}
