//! kefu-sql's integration tests: one binary.

mod engine;
mod library;
mod slt;
