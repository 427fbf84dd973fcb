//! What to generate, validated before any work starts.

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::world::MAX_REGIONS;

/// File format of plain (non-messy) output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// RFC 4180 CSV with a header row, UTF-8, timestamps as RFC 3339 UTC (`…Z`).
    Csv,
    /// One JSON object per line, nulls explicit, timestamps as RFC 3339 UTC.
    Jsonl,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::Jsonl => "jsonl",
        }
    }
}

/// Everything that determines the output: equal configs give byte-identical files.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Output directory (created if missing; existing generated files are replaced).
    pub out: PathBuf,
    /// Customers at the start of the period (new ones arrive, some leave).
    pub customers: u32,
    pub days: u32,
    /// First local (Asia/Shanghai) calendar day.
    pub start: NaiveDate,
    pub regions: u16,
    pub seed: u64,
    pub format: OutputFormat,
    /// Write office exports (archives per region and day, mixed encodings, bad rows).
    pub messy: bool,
    /// With `messy`: share of extra, deliberately bad rows per written row.
    pub bad_row_rate: f64,
    /// With `messy`: how often offices deliver at least once rather than exactly once —
    /// the chance that a day's archive arrives 2–4 days late, that it is sent again
    /// (re-zipped) 2–8 days later, and, per day, that an office re-exports its last seven
    /// days. 0 gives one archive per region and day, delivered the next morning.
    pub resend_rate: f64,
    pub calls_per_customer_month: f64,
    /// Work orders, inquiries and suggestions (every ticket but complaints).
    pub tickets_per_customer_month: f64,
    /// First complaints (repeats, escalations and appeals follow from how they are
    /// handled). Service companies see about 10–20 per 10,000 customers a month, so a
    /// branch hall of 2,500 customers gets 15–30 in a half year and the "more than 25 in
    /// a half year" rule singles out a minority.
    pub complaints_per_customer_month: f64,
    pub visits_per_customer_month: f64,
}

impl GenConfig {
    /// A config with the documented defaults for everything but the output directory.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        GenConfig {
            out: out.into(),
            customers: 10_000,
            days: 90,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"),
            regions: 4,
            seed: 42,
            format: OutputFormat::Csv,
            messy: false,
            bad_row_rate: 0.002,
            resend_rate: 0.05,
            calls_per_customer_month: 3.0,
            tickets_per_customer_month: 0.225,
            complaints_per_customer_month: 0.0015,
            visits_per_customer_month: 1.0,
        }
    }

    pub fn validate(&self) -> Result<(), crate::GenError> {
        let bad = |setting: &'static str, reason: String| {
            Err(crate::GenError::InvalidConfig { setting, reason })
        };
        if self.customers == 0 {
            return bad("customers", "must be at least 1".into());
        }
        if self.days == 0 || self.days > 20 * 366 {
            return bad(
                "days",
                format!("must be 1..={}, got {}", 20 * 366, self.days),
            );
        }
        if self.regions == 0 || self.regions > MAX_REGIONS {
            return bad(
                "regions",
                format!("must be 1..={MAX_REGIONS}, got {}", self.regions),
            );
        }
        if !(0.0..=0.2).contains(&self.bad_row_rate) {
            return bad(
                "bad_row_rate",
                format!("must be between 0 and 0.2, got {}", self.bad_row_rate),
            );
        }
        if !(0.0..=0.5).contains(&self.resend_rate) {
            return bad(
                "resend_rate",
                format!("must be between 0 and 0.5, got {}", self.resend_rate),
            );
        }
        for (name, v) in [
            ("calls_per_customer_month", self.calls_per_customer_month),
            (
                "tickets_per_customer_month",
                self.tickets_per_customer_month,
            ),
            (
                "complaints_per_customer_month",
                self.complaints_per_customer_month,
            ),
            ("visits_per_customer_month", self.visits_per_customer_month),
        ] {
            if !(0.0..=1000.0).contains(&v) {
                return bad(name, format!("must be between 0 and 1000, got {v}"));
            }
        }
        let last = self.start + chrono::Days::new(u64::from(self.days));
        if chrono::Datelike::year(&self.start) < 1990 || chrono::Datelike::year(&last) > 2100 {
            return bad("start", "the period must lie between 1990 and 2100".into());
        }
        Ok(())
    }
}
