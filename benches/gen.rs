//! Generator throughput: rows per second for plain CSV, JSON Lines and messy exports.
//!
//! Sizes come from the environment (KEFU_BENCH_CUSTOMERS, default 20000; KEFU_BENCH_DAYS,
//! default 30); output goes to a temporary directory. Run with
//! `cargo bench --bench gen` and compare runs with `-- --save-baseline NAME` /
//! `-- --baseline NAME`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kefu_gen::{GenConfig, OutputFormat, generate};
use kefu_progress::NoProgress;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &std::path::Path) -> GenConfig {
    let mut cfg = GenConfig::new(dir);
    cfg.customers = env_or("KEFU_BENCH_CUSTOMERS", 20_000);
    cfg.days = env_or("KEFU_BENCH_DAYS", 30);
    cfg
}

fn bench_gen(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("gen");
    group.sample_size(10);
    for (name, format, messy) in [
        ("csv", OutputFormat::Csv, false),
        ("jsonl", OutputFormat::Jsonl, false),
        ("messy", OutputFormat::Csv, true),
    ] {
        let mut cfg = config(&dir.path().join(name));
        cfg.format = format;
        cfg.messy = messy;
        // Rows are known before timing, so criterion reports rows per second.
        let rows = generate(&cfg, &NoProgress).expect("generate").total_rows();
        group.throughput(Throughput::Elements(rows));
        group.bench_function(name, |b| {
            b.iter(|| black_box(generate(&cfg, &NoProgress).expect("generate")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gen);
criterion_main!(benches);
