//! kefu-ingest's integration tests, in one binary.

mod encodings;
mod generated;
mod hostile;
mod losses;
mod realdata;
mod sources;
mod sql_profiles;
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

/// A bad row `kefu gen --messy` lists in its manifest: file (relative to the output
/// directory), archive member, line, column and reason.
pub type BadRow = (String, Option<String>, u64, Option<String>, String);

/// The bad rows of the manifest in `dir`.
pub fn manifest_bad_rows(dir: &std::path::Path) -> std::collections::BTreeSet<BadRow> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["path"].as_str().unwrap().to_string(),
                b["member"].as_str().map(str::to_string),
                b["line"].as_u64().unwrap(),
                b["column"].as_str().map(str::to_string),
                b["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
