//! kefu-sql's integration tests: one binary.

mod engine;
mod slt;
