//! Ingest hot path, in rows per second: decode + validate + convert to Arrow (plain UTF-8
//! CSV, and GBK office exports with Chinese headers and split date/time columns), and
//! Parquet encoding of the converted rows (sort by region and time, zstd, statistics) as
//! ingest writes them.
//!
//! Data is generated with a fixed seed into a temporary directory (KEFU_BENCH_CUSTOMERS,
//! default 20000; KEFU_BENCH_DAYS, default 30) and read from memory, so the figures
//! exclude disk I/O. Run with `cargo bench --bench ingest`.

use std::hint::black_box;
use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kefu_gen::{GenConfig, generate};
use kefu_ingest::{Collected, Profile, SourceName, TextEncoding, convert_csv};
use kefu_progress::NoProgress;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_convert(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = GenConfig::new(dir.path().join("plain"));
    cfg.customers = env_or("KEFU_BENCH_CUSTOMERS", 20_000);
    cfg.days = env_or("KEFU_BENCH_DAYS", 30);
    cfg.regions = 4;
    generate(&cfg, &NoProgress).expect("generate");
    let plain = std::fs::read(cfg.out.join("calls.csv")).expect("calls.csv");

    let mut messy = cfg.clone();
    messy.out = dir.path().join("messy");
    messy.messy = true;
    messy.bad_row_rate = 0.0;
    generate(&messy, &NoProgress).expect("generate");
    // The GBK calls exports of the first region (style: GBK, Chinese, split date/time).
    let mut gbk: Vec<Vec<u8>> = Vec::new();
    let region = std::fs::read_dir(&messy.out)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("beijing_20260101.zip").exists())
        .expect("first region");
    for day in std::fs::read_dir(&region)
        .expect("region")
        .filter_map(Result::ok)
    {
        let path = day.path();
        if path.extension().is_some_and(|e| e == "zip") {
            let mut zip =
                zip::ZipArchive::new(std::fs::File::open(&path).expect("zip")).expect("zip");
            let mut member = zip.by_index(0).expect("calls member");
            let mut bytes = Vec::new();
            member.read_to_end(&mut bytes).expect("read");
            gbk.push(bytes);
        }
    }

    let profile = Profile::builtin();
    let name = SourceName::file("calls.csv");
    // Rows are kept in memory, as the writer will receive them.
    let convert = |bytes: &[u8]| {
        let mut got = Collected::default();
        let out = convert_csv(bytes, &name, &profile, None, &mut got).expect("convert");
        (out, got)
    };
    let rows = |bytes: &[u8]| convert(bytes).0.rows;
    let mut group = c.benchmark_group("ingest_convert");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows(&plain)));
    group.bench_function("calls_utf8_csv", |b| b.iter(|| black_box(convert(&plain))));
    let gbk_rows: u64 = gbk.iter().map(|m| rows(m)).sum();
    group.throughput(Throughput::Elements(gbk_rows));
    group.bench_function("calls_gbk_split_export", |b| {
        b.iter(|| {
            for m in &gbk {
                let out = convert(m);
                assert_eq!(out.0.encoding, TextEncoding::Gb18030);
                black_box(out);
            }
        })
    });
    group.finish();

    // Parquet: the calls rows as ingest writes a month's file.
    let (_, converted) = convert(&plain);
    let table = kefu_model::Table::Calls;
    let layout = kefu_storage::parquet::table_layout(table);
    let schema = table.schema();
    let mut group = c.benchmark_group("ingest_parquet");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        converted.batches.iter().map(|b| b.num_rows() as u64).sum(),
    ));
    group.bench_function("calls_sort_and_encode_zstd", |b| {
        b.iter(|| {
            black_box(
                kefu_storage::parquet::write_sorted(&schema, converted.batches.clone(), &layout)
                    .expect("encode"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_convert);
criterion_main!(benches);
