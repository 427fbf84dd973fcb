//! Files replaced whole: kefu's one way to write a file a reader may open at any moment
//! (job outputs, `kefu sql --output`, generated exports, the run reports).
//!
//! The content goes to `<path>.partial-<pid>`, is flushed to the disk, renamed over
//! `path`, and the directory is flushed, so after a crash `path` holds the old or the new
//! content, never a mix; a write that fails or is dropped removes its partial file, and
//! partial files of processes that died are removed by the next write of the same path.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name; [`AtomicFile::commit`] puts it in place.
/// Dropped without a commit, it leaves `path` as it was.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    partial: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (its directory is created if missing).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let dir = parent_dir(path);
        std::fs::create_dir_all(dir)?;
        remove_stale_partials(path);
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".partial-{}", std::process::id()));
        let partial = path.with_file_name(name);
        let file = BufWriter::new(File::create(&partial)?);
        Ok(AtomicFile {
            path: path.to_path_buf(),
            partial,
            file: Some(file),
        })
    }

    /// The path the file will have once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the content to the disk and renames it over the path.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("a file until committed");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.partial, &self.path)?;
        File::open(parent_dir(&self.path))?.sync_all()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .as_mut()
            .expect("a file until committed")
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("a file until committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Not committed, or the commit failed part way: the partial file goes.
        drop(self.file.take());
        if self.partial.exists() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Replaces `path` with `bytes`, whole (see the module's description).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Removes `<path>.partial-<pid>` files that a killed process left: those whose process
/// is gone (Linux tells by `/proc/<pid>`; elsewhere they are left).
fn remove_stale_partials(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("{}.partial-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job killed while writing left `<file>.partial-<pid>` for good; the next write of
    /// the file removes partials whose process is gone (and not a live one's).
    #[cfg(target_os = "linux")]
    #[test]
    fn partials_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        // A pid above the kernel's maximum (4,194,304) is no process.
        let dead = dir.path().join("a.csv.partial-4194999");
        let live = dir.path().join("a.csv.partial-1");
        let other = dir.path().join("b.csv.partial-4194999");
        for p in [&dead, &live, &other] {
            std::fs::write(p, "half").unwrap();
        }
        write(&path, b"whole").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert!(!dead.exists());
        assert!(live.exists(), "pid 1 is alive");
        assert!(
            other.exists(),
            "another file's partial is not this write's business"
        );
    }

    #[test]
    fn a_dropped_or_failed_write_leaves_the_old_content_and_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write(&path, b"old").unwrap();
        let mut half = AtomicFile::create(&path).unwrap();
        half.write_all(b"new but unfinished").unwrap();
        drop(half);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.csv")]);
        let mut whole = AtomicFile::create(&path).unwrap();
        whole.write_all(b"new").unwrap();
        whole.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}
