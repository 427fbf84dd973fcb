//! The one place kefu makes an object store from a URL: the warehouse, job outputs,
//! ingest sources and cluster executors all reach `s3://` through [`bucket_store`], so
//! they read credentials, region and endpoint the same way (the `AWS_*` environment).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

/// The store of the bucket an `s3://bucket/…` URL names (the URL's path is not part of
/// the store), with credentials, region and endpoint from the `AWS_*` environment.
pub fn bucket_store(url: &Url) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut bucket = url.clone();
    bucket.set_path("");
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_url(bucket.as_str())
        .build()?;
    Ok(Arc::new(store))
}

/// The store of an `s3://bucket/key` URL and the key in it.
pub fn store_and_key(url: &Url) -> Result<(Arc<dyn ObjectStore>, Path), object_store::Error> {
    let key = Path::from(url.path().trim_start_matches('/'));
    Ok((bucket_store(url)?, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_path_without_the_bucket() {
        let url = Url::parse("s3://bucket/kpi/2026-11/a.parquet").unwrap();
        let (_, key) = store_and_key(&url).unwrap();
        assert_eq!(key.as_ref(), "kpi/2026-11/a.parquet");
        assert!(bucket_store(&Url::parse("s3:///no-bucket").unwrap()).is_err());
    }
}
