//! End-to-end tests of the `kefu` binary, in one test binary (one link step on 2 cores).

mod browser;
mod calendar;
mod check;
#[cfg(feature = "cluster")]
mod cluster;
mod common;
mod console;
mod deliveries;
mod delta;
mod docs;
mod flight;
mod generate;
mod hardening;
mod ingest;
mod jobs;
mod model;
mod postgres;
mod profiles;
mod serve;
mod shell;
mod sql;
mod uploads;
