//! kefu-sql's integration tests: one binary.

mod engine;
mod fixture_warehouse;
mod library;
mod slt;
