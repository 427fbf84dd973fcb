//! JSON Lines sources: one JSON object per line, keys as column headers (the keys of the
//! first object), values as text for the same converter that reads CSV. `null` and
//! missing keys are empty values; numbers and booleans are read from their JSON text.

use std::io::{BufRead, BufReader, Read};

use csv::StringRecord;

use crate::convert::{Reject, RejectReason};
use crate::{FileOutcome, IngestError, Profile, RecordFeed, RowSink, SourceName, TextEncoding};

/// Whether `name` is a JSON Lines source (by its extension).
pub(crate) fn is_jsonl(name: &SourceName) -> bool {
    let lower = name.file_name().to_ascii_lowercase();
    lower.ends_with(".jsonl") || lower.ends_with(".ndjson")
}

type Object = serde_json::Map<String, serde_json::Value>;

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads one JSON Lines source and converts every record (UTF-8; a BOM is skipped).
pub fn convert_jsonl(
    source: impl Read,
    source_name: &SourceName,
    profile: &Profile,
    sink: &mut dyn RowSink,
) -> Result<FileOutcome, IngestError> {
    let name = source_name.to_string();
    let read_err = |error| IngestError::Read {
        source_name: name.clone(),
        error,
    };
    let (encoding, text_reader) =
        crate::text::utf8_reader(source, Some(TextEncoding::Utf8)).map_err(read_err)?;
    let mut lines = BufReader::new(text_reader);
    let mut line = String::new();
    let mut number = 0u64;
    let mut headers: Option<(Vec<String>, RecordFeed)> = None;
    loop {
        line.clear();
        let n = lines
            .by_ref()
            .take(crate::text::MAX_LINE_BYTES)
            .read_line(&mut line)
            .map_err(read_err)?;
        if n == 0 {
            break;
        }
        number += 1;
        if n as u64 >= crate::text::MAX_LINE_BYTES && !line.ends_with('\n') {
            return Err(IngestError::Source {
                source_name: name.clone(),
                reason: format!("line {number}: a record longer than 16 MiB"),
            });
        }
        let record = line.trim_start_matches('\u{feff}').trim();
        if record.is_empty() {
            continue;
        }
        let parsed: Result<Object, _> = serde_json::from_str(record);
        if headers.is_none() {
            let first = parsed.as_ref().map_err(|e| IngestError::Source {
                source_name: name.clone(),
                reason: format!("line {number}: the first record is not a JSON object: {e}"),
            })?;
            let keys: Vec<String> = first.keys().cloned().collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mapping = crate::resolve_header(&name, &refs, profile)?;
            sink.table(mapping.table);
            headers = Some((keys, RecordFeed::new(&name, &mapping, encoding)));
        }
        let (keys, feed) = headers.as_mut().expect("set above");
        let fields = parsed
            .map_err(|e| Reject {
                reason: RejectReason::InvalidJson,
                column: None,
                detail: format!("not a JSON object: {e}"),
            })
            .and_then(|object| {
                if let Some(extra) = object.keys().find(|k| !keys.contains(k)) {
                    return Err(Reject {
                        reason: RejectReason::WrongColumnCount,
                        column: Some(extra.clone()),
                        detail: format!("key '{extra}' is not among the first record's keys"),
                    });
                }
                Ok(keys
                    .iter()
                    .map(|k| object.get(k).map(text).unwrap_or_default())
                    .collect::<StringRecord>())
            });
        feed.push(sink, number, fields, || record.to_string())?;
    }
    let Some((_, feed)) = headers else {
        return Err(IngestError::Empty { source_name: name });
    };
    feed.finish(sink)
}
