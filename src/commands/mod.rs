//! One module per command: its arguments, and the one library call it makes.

pub mod batch;
pub mod check;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod compact;
pub mod convert;
pub mod demo;
pub mod generate;
pub mod ingest;
pub mod query;
pub mod report;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod sql;
pub mod status;
pub mod upload;
pub mod vacuum;
