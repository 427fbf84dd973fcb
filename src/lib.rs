//! The `kefu` command line: argument parsing, progress bars and output formatting over the
//! library crates (`kefu-model`, `kefu-gen`, …). Nothing here computes results; every
//! command calls a library function that the server and the scheduled jobs can call too.

pub mod batch;
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod jobs;
pub mod progress;
pub mod serve;
pub mod shell;
pub mod sql;
pub mod status;
