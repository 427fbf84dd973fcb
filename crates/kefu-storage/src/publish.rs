//! Publishing result files (KPI tables, reports, run reports) so that a reader never sees
//! half of one: a local file is written beside its destination, flushed to the disk and
//! renamed over it; an object is written with one PUT, which object stores make visible
//! whole or not at all.

use std::path::{Path, PathBuf};

use object_store::{ObjectStoreExt, PutPayload};
use url::Url;

use crate::StorageError;

/// Where a result file goes: a local path or an object-store URL (`s3://bucket/key`,
/// `file:///abs/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local(PathBuf),
    Object(Url),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local(p) => write!(f, "{}", p.display()),
            Target::Object(u) => write!(f, "{u}"),
        }
    }
}

impl Target {
    /// Parses a path (relative ones resolve against `base`) or a `file://` / `s3://` URL.
    pub fn parse_in(text: &str, base: &Path) -> Result<Self, StorageError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StorageError::Empty);
        }
        if !text.contains("://") {
            return Ok(Target::Local(base.join(text)));
        }
        let url = Url::parse(text).map_err(|e| StorageError::InvalidUrl {
            location: text.to_string(),
            source: e.into(),
        })?;
        match url.scheme() {
            "file" => {
                url.to_file_path()
                    .map(Target::Local)
                    .map_err(|()| StorageError::InvalidUrl {
                        location: text.to_string(),
                        source: "not an absolute file path".into(),
                    })
            }
            "s3" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(Target::Object(url)),
            "s3" => Err(StorageError::InvalidUrl {
                location: text.to_string(),
                source: "an s3:// URL needs a bucket".into(),
            }),
            scheme => Err(StorageError::UnsupportedScheme {
                location: text.to_string(),
                scheme: scheme.to_string(),
            }),
        }
    }

    /// `relative` (`/`-separated) under this target taken as a directory.
    pub fn join(&self, relative: &str) -> Target {
        match self {
            Target::Local(p) => Target::Local(
                relative
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .fold(p.clone(), |p, s| p.join(s)),
            ),
            Target::Object(u) => {
                let mut url = u.clone();
                let path = format!(
                    "{}/{}",
                    u.path().trim_end_matches('/'),
                    relative.trim_start_matches('/')
                );
                url.set_path(&path);
                Target::Object(url)
            }
        }
    }

    fn err(&self, reason: impl std::fmt::Display) -> StorageError {
        StorageError::Io {
            location: self.to_string(),
            source: reason.to_string().into(),
        }
    }

    /// Replaces the file or object with `bytes`, atomically for readers.
    pub async fn put_atomic(&self, bytes: Vec<u8>) -> Result<(), StorageError> {
        match self {
            Target::Local(path) => {
                let path = path.clone();
                let target = self.clone();
                tokio::task::spawn_blocking(move || crate::atomic::write(&path, &bytes))
                    .await
                    .map_err(|e| target.err(e))?
                    .map_err(|e| self.err(e))
            }
            Target::Object(url) => {
                let (store, path) = crate::store::store_and_key(url).map_err(|e| self.err(e))?;
                store
                    .put(&path, PutPayload::from(bytes))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.err(e))
            }
        }
    }

    /// Whether the file or object exists (a HEAD request on an object store: nothing is
    /// downloaded).
    pub async fn exists(&self) -> Result<bool, StorageError> {
        match self {
            Target::Local(path) => Ok(path.exists()),
            Target::Object(url) => {
                let (store, path) = crate::store::store_and_key(url).map_err(|e| self.err(e))?;
                match store.head(&path).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(self.err(e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_join() {
        let base = Path::new("/jobs");
        assert_eq!(
            Target::parse_in("out/a.csv", base).unwrap(),
            Target::Local("/jobs/out/a.csv".into())
        );
        let s3 = Target::parse_in("s3://b/kpi", base).unwrap();
        assert_eq!(
            s3.join("m=1/x.parquet").to_string(),
            "s3://b/kpi/m=1/x.parquet"
        );
        assert!(Target::parse_in("ftp://x/y", base).is_err());
        assert!(Target::parse_in("s3:///k", base).is_err());
    }

    #[test]
    fn local_put_replaces_whole_and_leaves_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Local(dir.path().join("sub/a.csv"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(!rt.block_on(target.exists()).unwrap());
        rt.block_on(target.put_atomic(b"one".to_vec())).unwrap();
        assert!(rt.block_on(target.exists()).unwrap());
        rt.block_on(target.put_atomic(b"two".to_vec())).unwrap();
        assert_eq!(std::fs::read(dir.path().join("sub/a.csv")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["a.csv"]);
    }
}
