//! How kefu writes Parquet: zstd, row groups sized for scanning, statistics with the page
//! index (so DataFusion, DuckDB and Spark skip row groups and pages by min/max), rows
//! sorted by the given key and the order recorded in the metadata.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows per row group: large enough for fast scans, small enough that a date or region
/// filter skips most of a month's file.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// How one Parquet file is laid out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Rows are sorted by these columns (indices into the schema), recorded in the footer.
    pub sort_columns: Vec<usize>,
    /// Columns without dictionary encoding (ids, timestamps: a dictionary of unique
    /// values costs time and is discarded anyway).
    pub unique_columns: Vec<String>,
    /// Columns with page-level statistics (the page index: what filters prune by, such as
    /// region and times). The others get row-group statistics, or none if listed in
    /// `no_stats_columns` (long or categorical text, where min/max prunes nothing and
    /// costs a string comparison per value).
    pub page_stats_columns: Vec<String>,
    pub no_stats_columns: Vec<String>,
}

/// Writer settings for `layout`.
pub fn writer_properties(layout: &Layout) -> WriterProperties {
    let mut b = WriterProperties::builder();
    for c in &layout.unique_columns {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c.as_str()), false);
    }
    for c in &layout.page_stats_columns {
        b = b.set_column_statistics_enabled(ColumnPath::from(c.as_str()), EnabledStatistics::Page);
    }
    for c in &layout.no_stats_columns {
        b = b.set_column_statistics_enabled(ColumnPath::from(c.as_str()), EnabledStatistics::None);
    }
    b.set_compression(Compression::ZSTD(
        ZstdLevel::try_new(1).expect("valid level"),
    ))
    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
    .set_statistics_enabled(EnabledStatistics::Chunk)
    .set_sorting_columns(Some(
        layout
            .sort_columns
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

/// How a canonical table's files are written: sorted by region and event time; page
/// statistics on what queries filter by (the key, times, region, branch); none on other
/// ids, free text and enum codes (every row group holds most values, so min/max would
/// prune nothing, and computing them costs a string comparison per value); no dictionary
/// for ids and times.
pub fn table_layout(table: kefu_model::Table) -> Layout {
    use kefu_model::ColumnKind;
    let columns = table.columns();
    let at = |name: &str| columns.iter().position(|c| c.name == name);
    let names = |keep: &dyn Fn(&kefu_model::Column) -> bool| {
        columns
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name.to_string())
            .collect()
    };
    Layout {
        sort_columns: [at("region"), at(table.event_time_column())]
            .into_iter()
            .flatten()
            .collect(),
        unique_columns: names(&|c| matches!(c.kind, ColumnKind::Id | ColumnKind::Timestamp)),
        page_stats_columns: names(&|c| {
            c.kind == ColumnKind::Timestamp
                || c.name == table.id_column()
                || c.name == "region"
                || c.name == "branch_id"
        }),
        no_stats_columns: names(&|c| {
            matches!(
                c.kind,
                ColumnKind::Id | ColumnKind::Text | ColumnKind::Enum(_)
            ) && c.name != table.id_column()
                && c.name != "region"
                && c.name != "branch_id"
        }),
    }
}

/// How `_rejects` files are written: by source, then member and line.
pub fn rejects_layout() -> Layout {
    Layout {
        sort_columns: vec![1, 2, 3],
        unique_columns: vec!["raw".into(), "line".into(), "detail".into()],
        page_stats_columns: vec!["batch_id".into(), "source".into(), "reason".into()],
        no_stats_columns: vec!["raw".into(), "detail".into()],
    }
}

/// Rows gathered per write when sorting: small enough that the allocator reuses the
/// buffers from one write to the next instead of mapping fresh memory each time.
const GATHER_ROWS: usize = 16 * 1024;

/// Writes the rows of `batches`, sorted as `layout` says, as one Parquet file in memory.
/// Returns the file and its row count. The rows are gathered in sorted order a slice at a
/// time; already sorted input is written as it is. Takes the batches so that their
/// memory is freed as soon as the rows are copied into sorted order.
pub fn write_sorted(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    layout: &Layout,
) -> Result<(Vec<u8>, u64), parquet::errors::ParquetError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let input_bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let mut out = Vec::with_capacity(input_bytes / 6);
    let mut writer =
        ArrowWriter::try_new(&mut out, schema.clone(), Some(writer_properties(layout)))?;
    match sort_order(&batches, &layout.sort_columns)? {
        None => {
            for b in &batches {
                writer.write(b)?;
            }
        }
        Some(order) => {
            // One contiguous copy, then `take` by flat row numbers: cheaper per value
            // than interleaving from many batches.
            let all = concat_batches(schema, &batches)?;
            drop(batches);
            for slice in order.chunks(GATHER_ROWS) {
                let indices = UInt32Array::from(slice.to_vec());
                writer.write(&take_record_batch(&all, &indices)?)?;
            }
        }
    }
    writer.close()?;
    Ok((out, rows as u64))
}

/// Row numbers (counted through all batches) in sorted order, or `None` when the rows
/// are already in order.
fn sort_order(
    batches: &[RecordBatch],
    sort_columns: &[usize],
) -> Result<Option<Vec<u32>>, arrow::error::ArrowError> {
    let selection: Vec<(u32, u32)> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| (0..batch.num_rows() as u32).map(move |r| (b as u32, r)))
        .collect();
    sort_selection(batches, &selection, sort_columns)
}

/// The order (positions in `selection`) that sorts the selected rows (`(batch, row)`) of
/// `batches` by `sort_columns` (ascending, nulls last, stable), or `None` when they are
/// in order already. Only the selected rows are looked at: a chunk's rows of one month
/// are sorted without copying them out of the chunk first.
pub fn sort_selection(
    batches: &[RecordBatch],
    selection: &[(u32, u32)],
    sort_columns: &[usize],
) -> Result<Option<Vec<u32>>, arrow::error::ArrowError> {
    if sort_columns.is_empty() {
        return Ok(None);
    }
    let mut keys: Vec<Vec<u64>> = Vec::with_capacity(sort_columns.len());
    for &c in sort_columns {
        let columns: Vec<&ArrayRef> = batches.iter().map(|b| b.column(c)).collect();
        keys.push(sortable_keys(&columns, selection)?);
    }
    let order = sorted_order(&keys, selection.len());
    if order.iter().enumerate().all(|(i, &o)| i == o as usize) {
        return Ok(None);
    }
    Ok(Some(order))
}

/// Sorts the rows of `batches` by `sort_columns` (ascending, nulls last) into one batch.
///
/// Each key column is first mapped to integers that order the same way (text to its rank
/// among the distinct values, which are few for the region and the source), so the sort
/// compares integers instead of calling a string comparison per pair of rows.
pub fn sort_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sort_columns: &[usize],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    match sort_order(batches, sort_columns)? {
        None => concat_batches(schema, batches),
        Some(order) => {
            take_record_batch(&concat_batches(schema, batches)?, &UInt32Array::from(order))
        }
    }
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

/// Integers that sort like the values of `columns` (one per batch) at the selected rows
/// (`(batch, row)`), nulls last.
fn sortable_keys(
    columns: &[&ArrayRef],
    selection: &[(u32, u32)],
) -> Result<Vec<u64>, arrow::error::ArrowError> {
    let mut keys = Vec::with_capacity(selection.len());
    match columns.first().map(|c| c.data_type()) {
        Some(DataType::Utf8) => {
            // Each distinct text gets an id as first seen (one hash lookup per row); the
            // few distinct texts are then sorted and the ids mapped to their ranks.
            let texts: Vec<&StringArray> = columns.iter().map(|c| c.as_string::<i32>()).collect();
            let mut id_of: HashMap<&str, u64, ahash::RandomState> = HashMap::default();
            let mut distinct: Vec<&str> = Vec::new();
            for &(b, r) in selection {
                let t = texts[b as usize];
                let key = if t.is_null(r as usize) {
                    u64::MAX
                } else {
                    let v = t.value(r as usize);
                    *id_of.entry(v).or_insert_with(|| {
                        distinct.push(v);
                        distinct.len() as u64 - 1
                    })
                };
                keys.push(key);
            }
            let mut by_text: Vec<u64> = (0..distinct.len() as u64).collect();
            by_text.sort_unstable_by_key(|&id| distinct[id as usize]);
            let mut rank = vec![0u64; distinct.len()];
            for (r, &id) in by_text.iter().enumerate() {
                rank[id as usize] = r as u64;
            }
            for k in &mut keys {
                if *k != u64::MAX {
                    *k = rank[*k as usize];
                }
            }
        }
        Some(DataType::Timestamp(..) | DataType::Int64) => {
            let ints: Vec<ArrayRef> = columns
                .iter()
                .map(|c| cast(c, &DataType::Int64))
                .collect::<Result<_, _>>()?;
            let ints: Vec<_> = ints.iter().map(|c| c.as_primitive::<Int64Type>()).collect();
            keys.extend(selection.iter().map(|&(b, r)| {
                let c = ints[b as usize];
                if c.is_null(r as usize) {
                    u64::MAX
                } else {
                    (c.value(r as usize) as u64) ^ (1 << 63)
                }
            }));
        }
        Some(DataType::Int32) => {
            let ints: Vec<_> = columns
                .iter()
                .map(|c| c.as_primitive::<Int32Type>())
                .collect();
            keys.extend(selection.iter().map(|&(b, r)| {
                let c = ints[b as usize];
                if c.is_null(r as usize) {
                    u64::MAX
                } else {
                    (i64::from(c.value(r as usize)) as u64) ^ (1 << 63)
                }
            }));
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

/// Encodes rows the caller has already put in `layout`'s order as one Parquet file.
pub fn encode(
    batch: &RecordBatch,
    layout: &Layout,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 6);
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(writer_properties(layout)))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Reads a Parquet file of an object store a byte range at a time (only the footer and
/// the column chunks a projection needs), for `ParquetRecordBatchStreamBuilder`.
#[derive(Debug, Clone)]
pub struct ObjectReader {
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    size: u64,
}

impl ObjectReader {
    pub fn new(
        store: std::sync::Arc<dyn object_store::ObjectStore>,
        path: object_store::path::Path,
        size: u64,
    ) -> Self {
        ObjectReader { store, path, size }
    }
}

fn object_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl parquet::arrow::async_reader::AsyncFileReader for ObjectReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        use futures::FutureExt;
        use object_store::ObjectStoreExt;
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(object_error)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        use futures::FutureExt;
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(object_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<
        'a,
        parquet::errors::Result<std::sync::Arc<parquet::file::metadata::ParquetMetaData>>,
    > {
        use futures::FutureExt;
        async move {
            let size = self.size;
            let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(std::sync::Arc::new(metadata))
        }
        .boxed()
    }
}

/// Every `.parquet` file below `dir` (a local table directory), in path order.
pub fn local_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every row of the Parquet files below `dir` (for checks and small tables; queries go
/// through DataFusion).
pub fn read_local(
    dir: &std::path::Path,
) -> Result<Vec<RecordBatch>, parquet::errors::ParquetError> {
    let mut batches = Vec::new();
    for file in local_files(dir)? {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file)?,
        )?
        .build()?;
        for batch in reader {
            batches.push(batch?);
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
        let layout = Layout {
            sort_columns: vec![0, 1],
            unique_columns: vec!["t".into()],
            page_stats_columns: vec!["region".into(), "t".into()],
            no_stats_columns: Vec::new(),
        };
        let sorted = sort_batches(&schema, std::slice::from_ref(&batch), &[0, 1]).unwrap();
        let (bytes, rows) = write_sorted(&schema, vec![batch], &layout).unwrap();
        assert_eq!(rows, 4);
        assert_eq!(encode(&sorted, &layout).unwrap().len(), bytes.len());
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
