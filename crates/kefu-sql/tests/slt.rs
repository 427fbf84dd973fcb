//! Warehouses for the integration tests: the hand-written fixtures' (see
//! `fixture_warehouse`, shared with the sqllogictest runner, `sqllogictests.rs`) and
//! generated ones.

use std::path::{Path, PathBuf};

pub use crate::fixture_warehouse::fixture_warehouse;

/// `kefu gen` output of `customers` over `days` from 2026-01-01 (seed 42), in `dir/data`,
/// and the warehouse `dir/wh` it was ingested into. Complaints are dense (50 times the
/// realistic default) so that a few thousand customers give every region and month
/// complaints to count, compare and rank.
pub fn generated_warehouse(
    dir: &Path,
    customers: u32,
    days: u32,
) -> (PathBuf, kefu_storage::Warehouse) {
    ingested(dir, customers, days, Some(0.075))
}

/// As [`generated_warehouse`], with the generator's realistic defaults throughout.
pub fn realistic_warehouse(
    dir: &Path,
    customers: u32,
    days: u32,
) -> (PathBuf, kefu_storage::Warehouse) {
    ingested(dir, customers, days, None)
}

fn ingested(
    dir: &Path,
    customers: u32,
    days: u32,
    complaints_per_customer_month: Option<f64>,
) -> (PathBuf, kefu_storage::Warehouse) {
    let mut cfg = kefu_gen::GenConfig::new(dir.join("data"));
    cfg.customers = customers;
    cfg.days = days;
    if let Some(rate) = complaints_per_customer_month {
        cfg.complaints_per_customer_month = rate;
    }
    kefu_gen::generate(&cfg, &kefu_progress::NoProgress).unwrap();
    let location = kefu_storage::WarehouseLocation::parse_in("wh", dir).unwrap();
    let warehouse = kefu_storage::Warehouse::open(&location).unwrap();
    kefu_ingest::ingest(
        runtime().handle(),
        &[cfg.out.display().to_string()],
        &warehouse,
        &kefu_ingest::IngestOptions::default(),
        &kefu_progress::NoProgress,
    )
    .unwrap();
    (cfg.out, warehouse)
}

/// A multi-threaded runtime for a test (ingest blocks on it: build the warehouse
/// outside an async test body).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}
