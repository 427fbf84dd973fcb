//! Sources in an object store (`s3://bucket/key` or `s3://bucket/prefix/`), read in
//! ranges as they are needed: nothing is downloaded whole, and zip archives (which need
//! random access to their directory) work as they do on disk. S3 takes its credentials,
//! region and endpoint from the usual `AWS_*` environment variables.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::runtime::Handle;

use crate::IngestError;

/// Bytes fetched per request.
const BLOCK: u64 = 8 * 1024 * 1024;

/// One object of a store.
#[derive(Debug, Clone)]
pub struct ObjectSource {
    /// The object's URL, as kefu names the source.
    pub url: String,
    pub store: Arc<dyn ObjectStore>,
    pub location: Path,
    pub size: u64,
    /// When the object was last written: when it arrived.
    pub modified: chrono::DateTime<chrono::Utc>,
    /// The runtime its requests run on: the caller's, driven from the reading threads.
    pub runtime: Handle,
}

/// The objects an `s3://` URL names: the object itself, or every data file below it when
/// it ends with `/` (sorted by key). Requests run on `runtime`; call from a thread that
/// may block.
pub fn list(runtime: &Handle, url: &str) -> Result<Vec<ObjectSource>, IngestError> {
    let err = |reason: String| IngestError::Source {
        source_name: url.to_string(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| err(format!("not a valid URL: {e}")))?;
    let bucket = parsed
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| err("an s3:// URL needs a bucket".into()))?;
    let store = kefu_storage::store::bucket_store(&parsed).map_err(|e| err(e.to_string()))?;
    let key = parsed.path().trim_start_matches('/');
    let base = format!("s3://{bucket}");
    if !key.is_empty() && !key.ends_with('/') {
        let location = Path::from(key);
        let meta = runtime
            .block_on(store.head(&location))
            .map_err(|e| err(e.to_string()))?;
        return Ok(vec![ObjectSource {
            url: url.to_string(),
            store,
            location,
            size: meta.size,
            modified: meta.last_modified,
            runtime: runtime.clone(),
        }]);
    }
    let prefix = (!key.is_empty()).then(|| Path::from(key.trim_end_matches('/')));
    let mut metas: Vec<object_store::ObjectMeta> = runtime
        .block_on(store.list(prefix.as_ref()).try_collect())
        .map_err(|e| err(e.to_string()))?;
    metas.retain(|m| {
        let name = m.location.as_ref();
        crate::source::is_data_file(std::path::Path::new(name))
            && !name.split('/').any(|part| part.starts_with('.'))
    });
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    if metas.is_empty() {
        return Err(err("no data files under this prefix".into()));
    }
    Ok(metas
        .into_iter()
        .map(|m| ObjectSource {
            url: format!("{base}/{}", m.location),
            store: store.clone(),
            location: m.location,
            size: m.size,
            modified: m.last_modified,
            runtime: runtime.clone(),
        })
        .collect())
}

/// Reads an object as a seekable stream, one block-sized range request at a time.
pub struct ObjectReader {
    source: ObjectSource,
    position: u64,
    block_start: u64,
    block: bytes::Bytes,
}

impl ObjectReader {
    pub fn new(source: &ObjectSource) -> Self {
        ObjectReader {
            source: source.clone(),
            position: 0,
            block_start: 0,
            block: bytes::Bytes::new(),
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.position >= self.source.size {
            return Ok(0);
        }
        let in_block = self.position >= self.block_start
            && self.position < self.block_start + self.block.len() as u64;
        if !in_block {
            let end = (self.position + BLOCK).min(self.source.size);
            self.block = self
                .source
                .runtime
                .block_on(
                    self.source
                        .store
                        .get_range(&self.source.location, self.position..end),
                )
                .map_err(std::io::Error::other)?;
            self.block_start = self.position;
            if self.block.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the object ended early",
                ));
            }
        }
        let offset = (self.position - self.block_start) as usize;
        let n = buf.len().min(self.block.len() - offset);
        buf[..n].copy_from_slice(&self.block[offset..offset + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.source.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.position)
    }
}
