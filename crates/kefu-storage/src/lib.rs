//! Where a kefu warehouse lives and how it stores its tables. Every command that reads or
//! writes a warehouse takes one location, `--warehouse DIR_OR_URL` (env `KEFU_WAREHOUSE`,
//! default `./kefu-warehouse`): a local directory — the embedded default, no server
//! needed — or an object-store URL (`file:///abs/dir`, `s3://bucket/prefix`). This crate
//! parses and normalises that location, keeps its tables as Delta Lake tables
//! ([`delta`], [`tables`]), keeps the ledger of operations ([`ledger`]) with the commit
//! protocol that makes an operation land in every table whole, exactly once, and gives
//! readers a consistent cut across the tables ([`warehouse`]); it merges keyed records
//! into the tables, newest version wins ([`merge`]), compacts, vacuums and reverts
//! ([`maintain`]), and says how kefu writes Parquet ([`parquet`]). It does not read
//! exports (that is `kefu-ingest`) nor answer SQL (`kefu-sql`).

pub mod atomic;
#[cfg(feature = "cli")]
pub mod cli;
pub mod delta;
pub mod ledger;
pub mod maintain;
pub mod merge;
pub mod parquet;
pub mod publish;
pub mod report;
pub mod store;
pub mod tables;
pub mod warehouse;

pub use delta::{DataFile, DeltaError, selection_of};
pub use deltalake_core::kernel::DeletionVectorDescriptor;
pub use ledger::{LedgerSource, OperationKind, OperationRecord, TableCounts};
pub use tables::StoredTable;
pub use warehouse::{
    AsOf, Commit, Cut, OperationPlan, Recovery, SETTINGS_FILE, Settings, TableStatus, Warehouse,
    WarehouseStatus,
};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kefu_model::Table;
use url::Url;

/// The default location, relative to the working directory.
pub const DEFAULT_WAREHOUSE: &str = "./kefu-warehouse";

/// Object-store schemes a warehouse may use.
pub const SUPPORTED_SCHEMES: &[&str] = &["file", "s3"];

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("warehouse location is empty")]
    Empty,
    #[error("warehouse URL '{location}' is not valid: {source}")]
    InvalidUrl {
        location: String,
        #[source]
        source: kefu_model::BoxError,
    },
    #[error(
        "warehouse URL scheme '{scheme}' is not supported in '{location}' (use a directory, file:// or s3://)"
    )]
    UnsupportedScheme { location: String, scheme: String },
    #[error("cannot resolve the warehouse directory '{}': {source}", path.display())]
    BadPath {
        path: PathBuf,
        #[source]
        source: kefu_model::BoxError,
    },
    /// Reading or writing the warehouse failed; `source` is the store's, the file
    /// system's or the codec's error (or, where none, what went wrong).
    #[error("warehouse {location}: {source}")]
    Io {
        location: String,
        #[source]
        source: kefu_model::BoxError,
    },
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error(
        "warehouse {location} was written by an earlier kefu (Hive-partitioned Parquet with its own ledger); convert it to Delta tables with `kefu convert --warehouse {location}`"
    )]
    Legacy { location: String },
    #[error("warehouse {location}: {reason}")]
    NoSuchState { location: String, reason: String },
    #[error("warehouse {location}: {reason}")]
    Refused { location: String, reason: String },
    /// A command that reads a warehouse was pointed at a directory that holds none.
    #[error(
        "no warehouse at {}: the directory {} (create one with `kefu ingest SOURCE --warehouse {}`)",
        dir.display(),
        if *exists { "holds no warehouse" } else { "does not exist" },
        dir.display()
    )]
    NoWarehouse { dir: PathBuf, exists: bool },
    /// A warehouse's calendar is fixed when it is created; another was asked for.
    #[error(
        "warehouse {location}: its calendar is {} (fixed when it was created: its months, days and reports are cut on it), not {}",
        stored.name(),
        asked.name()
    )]
    CalendarMismatch {
        location: String,
        stored: chrono_tz::Tz,
        asked: chrono_tz::Tz,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl kefu_model::Classify for StorageError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            StorageError::Empty
            | StorageError::InvalidUrl { .. }
            | StorageError::UnsupportedScheme { .. }
            | StorageError::Legacy { .. }
            | StorageError::CalendarMismatch { .. } => ErrorKind::Config,
            StorageError::BadPath { .. }
            | StorageError::NoWarehouse { .. }
            | StorageError::Io { .. }
            | StorageError::Delta(_)
            | StorageError::Arrow(_) => ErrorKind::Io,
            StorageError::NoSuchState { .. } | StorageError::Refused { .. } => ErrorKind::Failure,
        }
    }
}

/// A validated, normalised warehouse location: always a URL ending in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseLocation {
    url: Url,
}

impl WarehouseLocation {
    /// Parses a directory (relative ones resolve against `cwd`) or an object-store URL.
    pub fn parse_in(location: &str, cwd: &Path) -> Result<Self, StorageError> {
        let trimmed = location.trim();
        if trimmed.is_empty() {
            return Err(StorageError::Empty);
        }
        let url = if trimmed.contains("://") {
            let url = Url::parse(trimmed).map_err(|e| StorageError::InvalidUrl {
                location: trimmed.to_string(),
                source: e.into(),
            })?;
            if !SUPPORTED_SCHEMES.contains(&url.scheme()) {
                return Err(StorageError::UnsupportedScheme {
                    location: trimmed.to_string(),
                    scheme: url.scheme().to_string(),
                });
            }
            if url.scheme() == "s3" && url.host_str().is_none_or(str::is_empty) {
                return Err(StorageError::InvalidUrl {
                    location: trimmed.to_string(),
                    source: "an s3:// URL needs a bucket".into(),
                });
            }
            url
        } else {
            let path = cwd.join(trimmed);
            let absolute = std::path::absolute(&path).map_err(|e| StorageError::BadPath {
                path: path.clone(),
                source: e.into(),
            })?;
            let normal: PathBuf = absolute.components().collect();
            Url::from_directory_path(&normal).map_err(|()| StorageError::BadPath {
                path: normal,
                source: "not an absolute directory path".into(),
            })?
        };
        Ok(WarehouseLocation {
            url: with_trailing_slash(url),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The directory on this machine, for `file://` locations.
    pub fn local_path(&self) -> Option<PathBuf> {
        (self.url.scheme() == "file")
            .then(|| self.url.to_file_path().ok())
            .flatten()
    }

    /// Where a table's files live: `<warehouse>/<table>/`.
    pub fn table_url(&self, table: Table) -> Url {
        self.url
            .join(&format!("{}/", table.name()))
            .expect("table names are valid URL segments")
    }
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

impl FromStr for WarehouseLocation {
    type Err = StorageError;

    /// Parses relative directories against the current working directory.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cwd = std::env::current_dir().map_err(|e| StorageError::BadPath {
            path: PathBuf::from("."),
            source: e.into(),
        })?;
        Self::parse_in(s, &cwd)
    }
}

impl fmt::Display for WarehouseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.local_path() {
            Some(p) => write!(f, "{}", p.display()),
            None => write!(f, "{}", self.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_become_absolute_file_urls() {
        let cwd = Path::new("/srv/kefu");
        let w = WarehouseLocation::parse_in(DEFAULT_WAREHOUSE, cwd).unwrap();
        assert_eq!(w.url().as_str(), "file:///srv/kefu/kefu-warehouse/");
        assert_eq!(
            w.local_path().unwrap(),
            Path::new("/srv/kefu/kefu-warehouse")
        );
        assert_eq!(
            w.table_url(Table::Calls).as_str(),
            "file:///srv/kefu/kefu-warehouse/calls/"
        );
        // `.` segments go; `..` stays, because resolving it lexically is wrong across symlinks.
        let abs = WarehouseLocation::parse_in("/data/./wh", cwd).unwrap();
        assert_eq!(abs.url().as_str(), "file:///data/wh/");
    }

    #[test]
    fn object_store_urls_are_kept() {
        let cwd = Path::new("/");
        let s3 = WarehouseLocation::parse_in("s3://bucket/kefu/prod", cwd).unwrap();
        assert_eq!(s3.url().as_str(), "s3://bucket/kefu/prod/");
        assert_eq!(s3.local_path(), None);
        assert_eq!(
            s3.table_url(Table::Tickets).as_str(),
            "s3://bucket/kefu/prod/tickets/"
        );
        let file = WarehouseLocation::parse_in("file:///tmp/wh", cwd).unwrap();
        assert_eq!(file.local_path().unwrap(), Path::new("/tmp/wh"));
    }

    #[test]
    fn bad_locations_are_refused_with_the_reason() {
        let cwd = Path::new("/");
        assert!(matches!(
            WarehouseLocation::parse_in("  ", cwd),
            Err(StorageError::Empty)
        ));
        let err = WarehouseLocation::parse_in("ftp://host/wh", cwd).unwrap_err();
        assert!(err.to_string().contains("'ftp' is not supported"), "{err}");
        let err = WarehouseLocation::parse_in("s3:///nobucket", cwd).unwrap_err();
        assert!(err.to_string().contains("needs a bucket"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let w = WarehouseLocation::parse_in("wh", dir.path()).unwrap();
        assert_eq!(w.local_path().unwrap(), dir.path().join("wh"));
    }
}
