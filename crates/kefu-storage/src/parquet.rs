//! How kefu writes Parquet: zstd, row groups sized for scanning, statistics with the page
//! index (so DataFusion, DuckDB and Spark skip row groups and pages by min/max), rows
//! sorted by the given key and the order recorded in the metadata.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::SchemaRef;
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
/// values costs time and is discarded anyway).
pub fn writer_properties(sort_columns: &[usize], unique_columns: &[&str]) -> WriterProperties {
    let builder = unique_columns
        .iter()
        .fold(WriterProperties::builder(), |b, c| {
            b.set_column_dictionary_enabled(ColumnPath::from(*c), false)
        });
    builder
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
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

/// Sorts `batches` by `sort_columns` (ascending, nulls last) into one batch.
pub fn sort_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sort_columns: &[usize],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let all = concat_batches(schema, batches)?;
    if sort_columns.is_empty() || all.num_rows() < 2 {
        return Ok(all);
    }
    let keys: Vec<SortColumn> = sort_columns
        .iter()
        .map(|&c| SortColumn {
            values: all.column(c).clone(),
            options: Some(SortOptions {
                descending: false,
                nulls_first: false,
            }),
        })
        .collect();
    let order = lexsort_to_indices(&keys, None)?;
    take_record_batch(&all, &order)
}

/// Encodes sorted rows as one Parquet file in memory.
pub fn encode(
    batch: &RecordBatch,
    sort_columns: &[usize],
    unique_columns: &[&str],
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(
        &mut out,
        Arc::clone(&batch.schema()),
        Some(writer_properties(sort_columns, unique_columns)),
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
        let bytes = encode(&sorted, &[0, 1], &["t"]).unwrap();
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
