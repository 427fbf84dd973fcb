//! What an executor may touch: the warehouses it serves, read-only. Any client of the
//! scheduler can send it plans, and a plan names the files it reads (and, for `COPY` or
//! `INSERT`, writes). Every file an executor reads or writes through DataFusion goes
//! through its runtime's object stores, so those stores are confined: a read outside the
//! warehouses, or any write, list or delete outside them, fails the task with a message
//! that names the path. Shuffle files are the executor's own (its work directory, not an
//! object store).

use std::fmt;
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use url::Url;

use crate::KefuObjectStores;

/// A warehouse an executor serves: its store's URL (`file:///`, `s3://bucket`) and the
/// path of its root in that store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedWarehouse {
    store: Url,
    root: Path,
}

impl ServedWarehouse {
    /// The warehouse at `url` (a directory's `file://` URL, as the client resolves it, or
    /// `s3://bucket/prefix`).
    pub fn new(url: &Url) -> Self {
        ServedWarehouse {
            root: Path::from(url.path().trim_matches('/')),
            store: store_of(url),
        }
    }

    /// The warehouse at `location`, a directory resolved as clients resolve it (through
    /// symbolic links, when it exists).
    pub fn at(location: &kefu_storage::WarehouseLocation) -> Self {
        let resolved = location
            .local_path()
            .and_then(|dir| std::fs::canonicalize(dir).ok())
            .and_then(|dir| Url::from_directory_path(dir).ok());
        Self::new(resolved.as_ref().unwrap_or(location.url()))
    }

    fn holds(&self, store: &Url, location: &Path) -> bool {
        self.store == *store && location.prefix_matches(&self.root)
    }
}

impl fmt::Display for ServedWarehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.store, self.root)
    }
}

/// The URL of the store holding `url` (`file:///`, `s3://bucket`): how object stores are
/// registered, and how served warehouses are told apart.
fn store_of(url: &Url) -> Url {
    let mut store = url.clone();
    store.set_path("");
    store.set_query(None);
    store.set_fragment(None);
    store
}

/// The executor's object stores: those of the served warehouses, confined to them.
#[derive(Debug)]
pub struct ConfinedStores {
    inner: KefuObjectStores,
    served: Arc<Vec<ServedWarehouse>>,
}

impl ConfinedStores {
    pub fn new(served: Vec<ServedWarehouse>) -> Self {
        ConfinedStores {
            inner: KefuObjectStores::default(),
            served: Arc::new(served),
        }
    }
}

fn refused(what: &str, path: impl fmt::Display, served: &[ServedWarehouse]) -> object_store::Error {
    let served: Vec<String> = served.iter().map(ToString::to_string).collect();
    object_store::Error::PermissionDenied {
        path: path.to_string(),
        source: format!(
            "this executor {what} only the warehouse(s) it serves ({}); refused {path}",
            served.join(", ")
        )
        .into(),
    }
}

impl ObjectStoreRegistry for ConfinedStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let store_url = store_of(url);
        if !self.served.iter().any(|w| w.store == store_url) {
            return Err(datafusion::error::DataFusionError::External(Box::new(
                refused("reads", url, &self.served),
            )));
        }
        Ok(Arc::new(ConfinedStore {
            inner: self.inner.get_store(url)?,
            store: store_url,
            served: self.served.clone(),
        }))
    }
}

/// One object store, read-only and only below the served warehouses' roots.
#[derive(Debug)]
struct ConfinedStore {
    inner: Arc<dyn ObjectStore>,
    store: Url,
    served: Arc<Vec<ServedWarehouse>>,
}

impl ConfinedStore {
    fn check(&self, location: &Path) -> object_store::Result<()> {
        if self.served.iter().any(|w| w.holds(&self.store, location)) {
            Ok(())
        } else {
            Err(refused(
                "reads",
                format!("{}{location}", self.store),
                &self.served,
            ))
        }
    }

    fn read_only(&self, location: &Path) -> object_store::Error {
        refused(
            "writes nothing and reads",
            format!("{}{location}", self.store),
            &self.served,
        )
    }
}

impl fmt::Display for ConfinedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Confined({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for ConfinedStore {
    async fn put_opts(
        &self,
        location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(self.read_only(location))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(self.read_only(location))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.check(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let refusal = self.read_only(&Path::from("(delete)"));
        let message = refusal.to_string();
        locations
            .map(move |_| {
                Err(object_store::Error::PermissionDenied {
                    path: String::new(),
                    source: message.clone().into(),
                })
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let root = Path::default();
        match self.check(prefix.unwrap_or(&root)) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check(prefix.unwrap_or(&Path::default()))?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(self.read_only(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn stores(dir: &std::path::Path) -> ConfinedStores {
        let url = Url::from_directory_path(dir.join("wh")).unwrap();
        ConfinedStores::new(vec![ServedWarehouse::new(&url)])
    }

    #[tokio::test]
    async fn only_the_served_warehouse_is_read_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(dir.join("wh/calls")).unwrap();
        std::fs::write(dir.join("wh/calls/a.parquet"), b"inside").unwrap();
        std::fs::create_dir_all(dir.join("wh2")).unwrap();
        std::fs::write(dir.join("wh2/b"), b"beside").unwrap();
        std::fs::write(dir.join("secret"), b"outside").unwrap();
        let registry = stores(&dir);
        let file = Url::parse("file:///").unwrap();
        let store = registry.get_store(&file).unwrap();
        let path = |p: &std::path::Path| Path::from_absolute_path(p).unwrap();

        let inside = store
            .get(&path(&dir.join("wh/calls/a.parquet")))
            .await
            .unwrap();
        assert_eq!(inside.bytes().await.unwrap().as_ref(), b"inside");
        for outside in [dir.join("secret"), dir.join("wh2/b")] {
            let err = store.get(&path(&outside)).await.unwrap_err().to_string();
            assert!(err.contains("refused"), "{err}");
        }
        let listed: Vec<_> = store.list(Some(&path(&dir))).collect().await;
        assert!(listed[0].as_ref().is_err());
        let err = store
            .put(&path(&dir.join("wh/new")), PutPayload::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("writes nothing"), "{err}");
        assert!(!dir.join("wh/new").exists());
        assert!(
            registry
                .get_store(&Url::parse("s3://other").unwrap())
                .is_err()
        );
    }
}
