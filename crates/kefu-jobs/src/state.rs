//! A job's state directory: the lock that keeps runs apart, what each period was last
//! computed from, and the cached results of every period.
//!
//! ```text
//! <state_dir>/lock                      held (flock) while a run is going
//! <state_dir>/state.json                fingerprints of computed periods and outputs
//! <state_dir>/cache/<step>/<period>.parquet   each period's result
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::JobError;

/// What a period of a step was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    pub fingerprint: String,
    pub rows: u64,
    pub computed_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// `<step>/<period>` → what it was computed from.
    #[serde(default)]
    pub units: BTreeMap<String, UnitState>,
    /// Output path → fingerprint of the periods it was assembled from.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// The last scheduled fire time handled by `kefu schedule`.
    #[serde(default)]
    pub last_fire: Option<chrono::DateTime<chrono::Utc>>,
}

/// The state directory of one job.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

/// Holds a job's lock until dropped.
#[derive(Debug)]
pub struct JobLock {
    _file: std::fs::File,
}

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn load(&self) -> Result<State, JobError> {
        match std::fs::read(self.file()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                JobError::io(
                    self.file().display(),
                    format!("corrupt job state ({e}); delete it to recompute everything"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(JobError::io(self.file().display(), e)),
        }
    }

    pub fn save(&self, state: &State) -> Result<(), JobError> {
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        kefu_storage::atomic::write(&self.file(), &bytes)
            .map_err(|e| JobError::io(self.file().display(), e))
    }

    /// Takes the job's lock, or says who holds it.
    pub fn lock(&self, job: &str) -> Result<JobLock, JobError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| JobError::io(self.dir.display(), e))?;
        let path = self.dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| JobError::io(path.display(), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(JobError::Locked {
                    job: job.to_string(),
                    holder: if holder.trim().is_empty() {
                        "another process".into()
                    } else {
                        holder.trim().to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(JobError::io(path.display(), e)),
        }
        let _ = file.set_len(0);
        let _ = write!(
            file,
            "pid {} since {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        Ok(JobLock { _file: file })
    }

    /// Where a period's result is cached.
    pub fn cache(&self, step: &str, period: &str) -> PathBuf {
        self.dir
            .join("cache")
            .join(sanitize(step))
            .join(format!("{}.parquet", sanitize(period)))
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let held = state.lock("nightly").unwrap();
        let err = state.lock("nightly").unwrap_err().to_string();
        assert!(
            err.contains("already running") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        state.lock("nightly").unwrap();
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path());
        assert_eq!(s.load().unwrap(), State::default());
        let mut state = State::default();
        state.outputs.insert("a".into(), "b".into());
        s.save(&state).unwrap();
        assert_eq!(s.load().unwrap(), state);
    }
}
