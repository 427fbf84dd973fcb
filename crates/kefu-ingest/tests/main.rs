//! kefu-ingest's integration tests, in one binary.

mod generated;
mod realdata;
mod sources;
mod warehouse;

use std::path::PathBuf;

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// `../shared/realdata` beside the checkout, when present.
pub fn realdata_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realdata");
    dir.is_dir().then_some(dir)
}
