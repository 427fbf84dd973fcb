//! The `kefu` command line: argument parsing, progress bars and output formatting over the
//! library crates (`kefu-model`, `kefu-gen`, …). Nothing here computes results; every
//! command calls a library function that the server and the scheduled jobs can call too.

pub mod args;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod progress;

/// Prints a library's report on stdout: as JSON for programs, else as text for people.
pub fn print<R: std::fmt::Display + serde::Serialize>(report: &R, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("a report serialises")
        );
    } else {
        print!("{report}");
    }
}
