//! Helpers shared by the CLI tests.

use std::collections::BTreeMap;
use std::path::Path;

/// The `kefu` binary with an empty environment (no KEFU_* leaks in from the caller),
/// run in `dir`.
pub fn kefu(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("kefu");
    cmd.env_clear().current_dir(dir);
    cmd
}

/// Every file below `dir`, by relative path, with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
