//! SQL critical paths: opening a session over the warehouse and planning a named query
//! (registration and planning overhead, paid by every `kefu query`), and executing the
//! slowest named queries.
//!
//! A warehouse is generated with a fixed seed into a temporary directory
//! (KEFU_BENCH_CUSTOMERS, default 20000, over KEFU_BENCH_DAYS, default 120). Run with
//! `cargo bench --bench queries`; `benches/compare_queries.sh` compares every query with
//! DuckDB at full scale.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kefu_gen::{GenConfig, generate};
use kefu_progress::NoProgress;
use kefu_sql::{Engine, EngineOptions, QueryLibrary};

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The slowest queries in `benches/compare_queries.sh` (they join the event tables or
/// window over every contact), with their parameters.
const SLOW: &[(&str, &[(&str, &str)])] = &[
    (
        "churn_monthly",
        &[("from", "2026-01-01"), ("to", "2026-05-01")],
    ),
    (
        "churn_cohort_retention",
        &[("from", "2026-01-01"), ("to", "2026-05-01")],
    ),
    (
        "churn_tier_migration",
        &[("from", "2026-01-01"), ("to", "2026-05-01")],
    ),
    (
        "churn_pre_signals",
        &[("from", "2026-01-01"), ("to", "2026-05-01")],
    ),
    (
        "calls_repeat_contacts",
        &[("from", "2026-01-01"), ("to", "2026-05-01")],
    ),
];

fn bench_queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = GenConfig::new(dir.path().join("data"));
    cfg.customers = env_or("KEFU_BENCH_CUSTOMERS", 20_000);
    cfg.days = env_or("KEFU_BENCH_DAYS", 120);
    generate(&cfg, &NoProgress).expect("generate");
    let location = kefu_storage::WarehouseLocation::parse_in("wh", dir.path()).expect("location");
    let warehouse = kefu_storage::Warehouse::open(&location).expect("open");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    kefu_ingest::ingest(
        runtime.handle(),
        &[cfg.out.display().to_string()],
        &warehouse,
        &kefu_ingest::IngestOptions::default(),
        &NoProgress,
    )
    .expect("ingest");
    let library = QueryLibrary::embedded().expect("library");
    let sql_of = |name: &str, params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        library
            .get(name)
            .expect("query")
            .render(&params)
            .expect("render")
    };

    let mut group = c.benchmark_group("sql_overhead");
    let calls_kpis = sql_of("calls_kpis", &[]);
    group.bench_function("open_session", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                Engine::open(&warehouse, &EngineOptions::default())
                    .await
                    .expect("open"),
            )
        })
    });
    group.bench_function("open_and_plan_calls_kpis", |b| {
        b.to_async(&runtime).iter(|| async {
            let engine = Engine::open(&warehouse, &EngineOptions::default())
                .await
                .expect("open");
            let df = engine.sql(&calls_kpis).await.expect("plan");
            black_box(df.create_physical_plan().await.expect("physical plan"))
        })
    });
    group.finish();

    let engine = runtime
        .block_on(Engine::open(&warehouse, &EngineOptions::default()))
        .expect("open");
    let mut group = c.benchmark_group("sql_slowest_queries");
    group.sample_size(10);
    for (name, params) in SLOW {
        let sql = sql_of(name, params);
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| async {
                let df = engine.sql(&sql).await.expect("plan");
                black_box(df.collect().await.expect("run"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_queries);
criterion_main!(benches);
