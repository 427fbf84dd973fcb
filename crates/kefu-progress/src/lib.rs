//! Progress reporting for long-running library work (generation, ingest, jobs).
//!
//! Libraries call a [`Progress`] they are handed and never draw anything themselves: the
//! CLI implements it with progress bars, the server with counters, tests with
//! [`NoProgress`]. This crate has no dependencies so that every layer can use it.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a count measures, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: shown as B/KB/MB with a byte rate.
    Bytes,
    /// Countable things, named in the plural ("days", "rows", "files").
    Items(&'static str),
}

/// Receives progress from a library; implementations must be cheap to call often.
pub trait Progress: Send + Sync {
    /// A new phase starts; `total` is known for bounded work.
    fn start(&self, phase: &str, total: Option<u64>, unit: Unit);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The current phase is done.
    fn finish(&self);
    /// A short status beside the count (e.g. rows converted and their rate).
    fn message(&self, _message: &str) {}
}

/// Ignores all progress (tests, `--quiet`, library callers that don't care).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>, _: Unit) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Counts progress without showing it; tests use it to check that work is reported.
#[derive(Debug, Default)]
pub struct CountingProgress {
    pub phases: AtomicU64,
    pub advanced: AtomicU64,
    pub finished: AtomicU64,
}

impl Progress for CountingProgress {
    fn start(&self, _: &str, _: Option<u64>, _: Unit) {
        self.phases.fetch_add(1, Ordering::Relaxed);
    }
    fn advance(&self, n: u64) {
        self.advanced.fetch_add(n, Ordering::Relaxed);
    }
    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}
