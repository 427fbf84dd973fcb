//! kefu-ingest's integration tests, in one binary.

mod generated;
