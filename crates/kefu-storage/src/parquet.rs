//! How kefu writes Parquet: zstd, row groups sized for scanning, statistics with the page
//! index (so DataFusion, DuckDB and Spark skip row groups and pages by min/max), rows
//! sorted by the given key and the order recorded in the metadata.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches, interleave_record_batch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows per row group: large enough for fast scans, small enough that a date or region
/// filter skips most of a month's file.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Writer settings for rows sorted by `sort_columns` (indices into the schema), with
/// dictionary encoding off for `unique_columns` (ids, timestamps: a dictionary of unique
/// values costs time and is discarded anyway). `page_stats_columns` get page-level
/// statistics (the page index: what filters prune by, such as region and times); the
/// others row-group statistics only, which are cheaper to compute for long text.
pub fn writer_properties(
    sort_columns: &[usize],
    unique_columns: &[&str],
    page_stats_columns: &[&str],
) -> WriterProperties {
    let builder = unique_columns
        .iter()
        .fold(WriterProperties::builder(), |b, c| {
            b.set_column_dictionary_enabled(ColumnPath::from(*c), false)
        });
    let builder = page_stats_columns.iter().fold(builder, |b, c| {
        b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::Page)
    });
    builder
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_sorting_columns(Some(
            sort_columns
                .iter()
                .map(|&c| SortingColumn {
                    column_idx: c as i32,
                    descending: false,
                    nulls_first: false,
                })
                .collect(),
        ))
        .set_created_by(format!("kefu {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sorts the rows of `batches` by `sort_columns` (ascending, nulls last) into one batch.
///
/// Each key column is first mapped to integers that order the same way (text to its rank
/// among the distinct values, which are few for the region and the source), so the sort
/// compares integers instead of calling a string comparison per pair of rows; the rows are
/// then gathered straight from the input batches, without concatenating them first.
pub fn sort_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sort_columns: &[usize],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    if sort_columns.is_empty() {
        return concat_batches(schema, batches);
    }
    let mut keys: Vec<Vec<u64>> = Vec::with_capacity(sort_columns.len());
    for &c in sort_columns {
        let columns: Vec<&ArrayRef> = batches.iter().map(|b| b.column(c)).collect();
        keys.push(sortable_keys(&columns)?);
    }
    let mut rows: Vec<(usize, usize)> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
        .collect();
    let order = sorted_order(&keys, rows.len());
    if order.iter().enumerate().all(|(i, &o)| i == o as usize) {
        return concat_batches(schema, batches);
    }
    rows = order.iter().map(|&i| rows[i as usize]).collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    if refs.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    interleave_record_batch(&refs, &rows)
}

/// The row order that sorts `keys` (per key column, one integer per row), stable.
///
/// Exports arrive in time order, and the first key (the region) has few values: so the
/// rows are bucketed by the first key (a counting sort) and each bucket is sorted only if
/// it is not already in order.
fn sorted_order(keys: &[Vec<u64>], len: usize) -> Vec<u32> {
    let compare_rest = |a: u32, b: u32| {
        keys[1..]
            .iter()
            .map(|k| k[a as usize].cmp(&k[b as usize]))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    let first = &keys[0];
    let buckets = first
        .iter()
        .filter(|&&k| k != u64::MAX)
        .max()
        .map_or(0, |m| m + 1);
    if buckets > 4096 {
        let mut order: Vec<u32> = (0..len as u32).collect();
        order.sort_by(|&a, &b| {
            first[a as usize]
                .cmp(&first[b as usize])
                .then(compare_rest(a, b))
        });
        return order;
    }
    // Bucket b holds rank b; nulls (u64::MAX) go last.
    let bucket_of = |k: u64| {
        if k == u64::MAX {
            buckets as usize
        } else {
            k as usize
        }
    };
    let mut starts = vec![0usize; buckets as usize + 2];
    for &k in first {
        starts[bucket_of(k) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut order = vec![0u32; len];
    let mut next = starts.clone();
    for (i, &k) in first.iter().enumerate() {
        let b = bucket_of(k);
        order[next[b]] = i as u32;
        next[b] += 1;
    }
    for b in 0..starts.len() - 1 {
        let bucket = &mut order[starts[b]..starts[b + 1]];
        if bucket.windows(2).any(|w| compare_rest(w[0], w[1]).is_gt()) {
            bucket.sort_by(|&a, &c| compare_rest(a, c));
        }
    }
    order
}

/// Integers that sort like the values of `columns` (concatenated), nulls last.
fn sortable_keys(columns: &[&ArrayRef]) -> Result<Vec<u64>, arrow::error::ArrowError> {
    let len: usize = columns.iter().map(|c| c.len()).sum();
    let mut keys = Vec::with_capacity(len);
    match columns.first().map(|c| c.data_type()) {
        Some(DataType::Utf8) => {
            let texts: Vec<&StringArray> = columns.iter().map(|c| c.as_string::<i32>()).collect();
            let mut distinct: Vec<&str> = texts.iter().flat_map(|t| t.iter().flatten()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let rank: HashMap<&str, u64> = distinct
                .iter()
                .enumerate()
                .map(|(i, s)| (*s, i as u64))
                .collect();
            for t in texts {
                keys.extend(t.iter().map(|v| v.map_or(u64::MAX, |v| rank[v])));
            }
        }
        Some(DataType::Timestamp(..) | DataType::Int64) => {
            for c in columns {
                let c = cast(c, &DataType::Int64)?;
                let ints = c.as_primitive::<Int64Type>();
                keys.extend(
                    ints.iter()
                        .map(|v| v.map_or(u64::MAX, |v| (v as u64) ^ (1 << 63))),
                );
            }
        }
        Some(DataType::Int32) => {
            for c in columns {
                let ints = c.as_primitive::<Int32Type>();
                keys.extend(
                    ints.iter()
                        .map(|v| v.map_or(u64::MAX, |v| (i64::from(v) as u64) ^ (1 << 63))),
                );
            }
        }
        Some(other) => {
            return Err(arrow::error::ArrowError::NotYetImplemented(format!(
                "sorting by a {other} column"
            )));
        }
        None => {}
    }
    Ok(keys)
}

/// Encodes sorted rows as one Parquet file in memory.
pub fn encode(
    batch: &RecordBatch,
    sort_columns: &[usize],
    unique_columns: &[&str],
    page_stats_columns: &[&str],
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(
        &mut out,
        Arc::clone(&batch.schema()),
        Some(writer_properties(
            sort_columns,
            unique_columns,
            page_stats_columns,
        )),
    )?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn rows_sort_by_bucketed_first_key_then_the_rest_stably() {
        // (region rank, time): nulls last, ties keep their order.
        let keys = vec![vec![1, 0, u64::MAX, 1, 0, 1], vec![5, 9, 1, 3, 2, 5]];
        assert_eq!(sorted_order(&keys, 6), vec![4, 1, 3, 0, 5, 2]);
        let many = vec![(0..5000u64).rev().collect::<Vec<_>>(), vec![0; 5000]];
        let order = sorted_order(&many, 5000);
        assert_eq!(order[0], 4999);
        assert_eq!(order[4999], 0);
    }

    #[test]
    fn files_are_sorted_zstd_with_page_index() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("t", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["b", "a", "b", "a"])),
                Arc::new(Int32Array::from(vec![2, 9, 1, 3])),
            ],
        )
        .unwrap();
        let sorted = sort_batches(&schema, &[batch], &[0, 1]).unwrap();
        let bytes = encode(&sorted, &[0, 1], &["t"], &["region", "t"]).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let meta = reader.metadata().clone();
        let rg = meta.row_group(0);
        assert_eq!(rg.sorting_columns().map(Vec::len), Some(2));
        assert!(matches!(rg.column(0).compression(), Compression::ZSTD(_)));
        assert!(rg.column(1).column_index_offset().is_some(), "page index");
        let back = reader.build().unwrap().next().unwrap().unwrap();
        let t = back
            .column(1)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!(t.values(), &[3, 9, 1, 2]);
    }
}
