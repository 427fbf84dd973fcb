//! A deterministic generator of realistic customer-service logs: the five canonical tables
//! of `kefu_model` (calls, tickets, callbacks, branch visits, customers), consistent with
//! each other, for tests, benchmarks and demos.
//!
//! The same [`GenConfig`] always produces byte-identical files. Plain output is one CSV or
//! JSON Lines file per table in canonical form; `messy` output is what regional offices
//! really send (archives per region and day, GBK or UTF-8 with BOM, Chinese headers, split
//! date and time columns, deliberately bad rows listed in `manifest.json`). The mechanisms
//! behind the realism are described in [`sim`]. This crate writes files; it knows nothing
//! about warehouses or Parquet.

pub mod calendar;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
pub mod dims;
mod fields;
pub mod messy;
mod plain;
pub mod record;
pub mod sim;
pub mod style;
pub mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kefu_progress::{Progress, Unit};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

pub use config::{GenConfig, OutputFormat};
pub use messy::{ArchiveEntry, BadReason, BadRow, Delivery, ExportKind, FileEntry, Manifest};

use calendar::{DAY_S, TimeFormatter, day_info};
use messy::MessySink;
use plain::PlainSink;
use sim::Simulation;
use world::World;

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("invalid generator setting `{setting}`: {reason}")]
    InvalidConfig {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: kefu_model::BoxError,
    },
}

impl kefu_model::Classify for GenError {
    fn kind(&self) -> kefu_model::ErrorKind {
        match self {
            GenError::InvalidConfig { .. } => kefu_model::ErrorKind::Config,
            GenError::Write { .. } | GenError::Read { .. } => kefu_model::ErrorKind::Io,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct GenSummary {
    /// The output directory.
    pub out: PathBuf,
    /// Good rows written per table (messy output: every version and repeat of a record).
    pub rows: BTreeMap<&'static str, u64>,
    /// Messy output: the records per table once each key's versions and repeats are
    /// folded (the final truth, what the plain output holds).
    pub final_rows: Option<BTreeMap<&'static str, u64>>,
    /// Deliberately bad rows (messy output only).
    pub bad_rows: u64,
    /// Files written (archives, plain files, the manifest).
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub elapsed: Duration,
    pub manifest: Option<PathBuf>,
}

impl GenSummary {
    /// Rows written, good and bad.
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum::<u64>() + self.bad_rows
    }

    pub fn rows_per_second(&self) -> f64 {
        self.total_rows() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl serde::Serialize for GenSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            out: &'a PathBuf,
            rows: &'a BTreeMap<&'static str, u64>,
            final_rows: &'a Option<BTreeMap<&'static str, u64>>,
            bad_rows: u64,
            files: usize,
            bytes: u64,
            seconds: f64,
            rows_per_second: f64,
            manifest: &'a Option<PathBuf>,
        }
        Summary {
            out: &self.out,
            rows: &self.rows,
            final_rows: &self.final_rows,
            bad_rows: self.bad_rows,
            files: self.files.len(),
            bytes: self.bytes,
            seconds: self.elapsed.as_secs_f64(),
            rows_per_second: self.rows_per_second().round(),
            manifest: &self.manifest,
        }
        .serialize(serializer)
    }
}

impl std::fmt::Display for GenSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use kefu_model::number::thousands;
        let per_table = |rows: &BTreeMap<&'static str, u64>| {
            rows.iter()
                .map(|(t, n)| format!("{t} {}", thousands(*n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "generated {} rows ({})",
            thousands(self.total_rows()),
            per_table(&self.rows)
        )?;
        if self.bad_rows > 0 {
            write!(
                f,
                " incl. {} deliberately bad rows",
                thousands(self.bad_rows)
            )?;
        }
        writeln!(
            f,
            " in {:.2} s: {} rows/s, {:.1} MB in {} files under {}",
            self.elapsed.as_secs_f64(),
            thousands(self.rows_per_second().round() as u64),
            self.bytes as f64 / 1e6,
            self.files.len(),
            self.out.display(),
        )?;
        if let Some(final_rows) = &self.final_rows {
            writeln!(
                f,
                "the records above are versions and repeats of {} records ({}): the plain output of the same arguments",
                thousands(final_rows.values().sum::<u64>()),
                per_table(final_rows)
            )?;
        }
        if let Some(m) = &self.manifest {
            writeln!(
                f,
                "bad rows, delivery days and file inventory: {}",
                m.display()
            )?;
        }
        Ok(())
    }
}

/// Independent random streams for the parts of a run, derived from the one seed, so that
/// changing how one part draws does not shift the others.
fn stream(seed: u64, part: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ part.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Generates the logs described by `cfg` into `cfg.out`.
pub fn generate(cfg: &GenConfig, progress: &dyn Progress) -> Result<GenSummary, GenError> {
    cfg.validate()?;
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.out).map_err(|source| GenError::Write {
        path: cfg.out.clone(),
        source,
    })?;
    let world = World::build(cfg, &mut stream(cfg.seed, 1));
    let start = day_info(cfg.start).midnight_utc;
    let end = start + i64::from(cfg.days) * DAY_S;
    let first = world
        .customers
        .iter()
        .map(|c| c.opened_at)
        .min()
        .unwrap_or(start);
    let times = TimeFormatter::new(first, end + 30 * DAY_S);
    let mut sim = Simulation::new(cfg, &world, stream(cfg.seed, 2));
    progress.start("generating", Some(u64::from(cfg.days)), Unit::Items("days"));
    let tick = |_| progress.advance(1);
    let summary = if cfg.messy {
        let manifest = Manifest {
            generator: format!("kefu-gen {}", env!("CARGO_PKG_VERSION")),
            seed: cfg.seed,
            start: cfg.start.to_string(),
            days: cfg.days,
            customers: cfg.customers,
            bad_row_rate: cfg.bad_row_rate,
            resend_rate: cfg.resend_rate,
            regions: Vec::new(),
            rows: BTreeMap::new(),
            records: BTreeMap::new(),
            bad_row_counts: BTreeMap::new(),
            blanked_durations: 0,
            archives: Vec::new(),
            deliveries: Vec::new(),
            files: Vec::new(),
            bad_rows: Vec::new(),
        };
        let mut sink = MessySink::new(
            &cfg.out,
            &world,
            times,
            stream(cfg.seed, 3),
            stream(cfg.seed, 4),
            manifest,
            start,
            cfg.days,
        )?;
        sim.run(&mut sink, tick)?;
        let manifest_path = sink.write_manifest()?;
        let m = &sink.manifest;
        let mut files: Vec<PathBuf> = m.archives.iter().map(|f| cfg.out.join(&f.path)).collect();
        files.dedup();
        files.push(manifest_path.clone());
        GenSummary {
            out: cfg.out.clone(),
            rows: m.records.clone(),
            final_rows: Some(m.rows.clone()),
            bad_rows: m.bad_rows.len() as u64,
            bytes: total_bytes(&files),
            files,
            elapsed: Duration::ZERO,
            manifest: Some(manifest_path),
        }
    } else {
        let mut sink = PlainSink::create(&cfg.out, cfg.format, times, end)?;
        sim.run(&mut sink, tick)?;
        let written = sink.finish()?;
        let files: Vec<PathBuf> = written.iter().map(|(_, p, _)| p.clone()).collect();
        GenSummary {
            out: cfg.out.clone(),
            rows: written.iter().map(|(t, _, n)| (t.name(), *n)).collect(),
            final_rows: None,
            bad_rows: 0,
            bytes: total_bytes(&files),
            files,
            elapsed: Duration::ZERO,
            manifest: None,
        }
    };
    progress.finish();
    let summary = GenSummary {
        elapsed: started.elapsed(),
        ..summary
    };
    tracing::info!(
        rows = summary.total_rows(),
        bad_rows = summary.bad_rows,
        bytes = summary.bytes,
        seconds = summary.elapsed.as_secs_f64(),
        "generated"
    );
    Ok(summary)
}

fn total_bytes(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use kefu_progress::CountingProgress;

    use super::*;

    #[test]
    fn reports_one_step_per_day_and_rows_per_second() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = GenConfig::new(dir.path());
        cfg.customers = 200;
        cfg.days = 9;
        let progress = CountingProgress::default();
        let summary = generate(&cfg, &progress).unwrap();
        assert_eq!(progress.phases.load(Ordering::Relaxed), 1);
        assert_eq!(progress.advanced.load(Ordering::Relaxed), 9);
        assert_eq!(progress.finished.load(Ordering::Relaxed), 1);
        // The five event and customer tables, and the four dimensions.
        assert_eq!(summary.files.len(), 9);
        assert!(summary.rows_per_second() > 0.0);
        assert!(summary.rows["customers"] >= 200);
    }

    #[test]
    fn invalid_configs_are_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = GenConfig::new(dir.path().join("never-created"));
        cfg.bad_row_rate = 0.9;
        let err = generate(&cfg, &kefu_progress::NoProgress).unwrap_err();
        assert!(matches!(
            err,
            GenError::InvalidConfig {
                setting: "bad_row_rate",
                ..
            }
        ));
        assert!(!cfg.out.exists());
    }
}
