//! What several commands share: the runtime, opening the warehouse (to read, or locked to
//! write), opening a session on it here or on the cluster, and the cluster's TLS files.

use kefu_model::ErrorKind;
use kefu_sql::cli::{OnCluster, SessionArgs};
use kefu_sql::{Engine, EngineOptions};
use kefu_storage::cli::WarehouseArgs;
use kefu_storage::{Warehouse, WarehouseLocation};

use crate::exit::Failure;

/// What the cluster's scheduler needed (measured: deep plans in a debug build).
const CLUSTER_THREAD_STACK: usize = 64 << 20;

/// The one runtime of a command: built once, by `cli::run` for a command that needs one,
/// and lent to every library call (queries, ingest's I/O, jobs, the cluster's scheduler
/// and executor).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("kefu")
        .enable_all()
        // Planning and (de)serialising deep plans (the churn queries) recurses deeply: a
        // cluster's scheduler overflowed even 2 MiB thread stacks in a debug build, and
        // queries need kefu_sql::QUERY_THREAD_STACK. Only touched pages cost memory.
        .thread_stack_size(CLUSTER_THREAD_STACK.max(kefu_sql::QUERY_THREAD_STACK))
        .build()
        .map_err(|e| Failure::new(ErrorKind::Failure, format!("cannot start the runtime: {e}")))
}

/// The warehouse at `location`, which must exist.
pub(crate) fn open_existing_warehouse(location: &WarehouseLocation) -> Result<Warehouse, Failure> {
    Ok(Warehouse::open_existing(location)?)
}

/// How to open sessions on the cluster (`None` without `--cluster`): the one way
/// `kefu sql`, `query`, `report` and `run` reach a cluster.
pub(crate) fn cluster_opener(
    cluster: &OnCluster,
) -> Result<Option<kefu_jobs::run::EngineOpener>, Failure> {
    let Some(url) = cluster.url.clone() else {
        return Ok(None);
    };
    #[cfg(feature = "cluster")]
    {
        let tls = load_tls(cluster.tls.as_deref())?;
        kefu_cluster::scheduler_address(&url).map_err(|e| Failure::new(ErrorKind::Config, e))?;
        let wait = std::time::Duration::from_secs(cluster.wait_seconds);
        Ok(Some(kefu_jobs::run::EngineOpener(std::sync::Arc::new(
            move |warehouse, options| {
                let (url, tls) = (url.clone(), tls.clone());
                Box::pin(async move {
                    kefu_cluster::open_engine(&warehouse, &options, &url, tls.as_ref(), wait)
                        .await
                        .map_err(Into::into)
                })
            },
        ))))
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (url, &cluster.tls, cluster.wait_seconds);
        Err(Failure::new(
            ErrorKind::Config,
            "this kefu was built without the `cluster` feature (Ballista)",
        ))
    }
}

/// A session over the existing warehouse at `location`, locally or on the cluster at
/// `cluster`.
pub(crate) fn open_engine_at(
    runtime: &tokio::runtime::Runtime,
    location: &WarehouseLocation,
    options: &EngineOptions,
    cluster: &OnCluster,
) -> Result<Engine, Failure> {
    let warehouse = open_existing_warehouse(location)?;
    match cluster_opener(cluster)? {
        None => Ok(runtime.block_on(Engine::open(&warehouse, options))?),
        Some(opener) => runtime
            .block_on((opener.0)(warehouse, options.clone()))
            .map_err(opener_failure),
    }
}

/// A cluster session that could not be opened, with its cluster error's kind (a missing
/// executor is not a configuration error).
fn opener_failure(error: kefu_model::BoxError) -> Failure {
    #[cfg(feature = "cluster")]
    if let Some(cluster) = error.downcast_ref::<kefu_cluster::ClusterError>() {
        use kefu_model::Classify;
        return Failure::new(cluster.kind(), error);
    }
    Failure::new(ErrorKind::Config, error)
}

pub(crate) fn open_engine(
    runtime: &tokio::runtime::Runtime,
    args: &SessionArgs,
) -> Result<Engine, Failure> {
    let options = args.engine_options()?;
    open_engine_at(runtime, &args.warehouse.warehouse, &options, &args.cluster)
}

/// The cluster's TLS directory, loaded (`None` without one).
#[cfg(feature = "cluster")]
pub(crate) fn load_tls(
    dir: Option<&std::path::Path>,
) -> Result<Option<kefu_cluster::tls::ClusterTls>, Failure> {
    dir.map(kefu_cluster::tls::ClusterTls::load)
        .transpose()
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))
}

/// The warehouse locked for writing (local), with any interrupted operation finished.
pub(crate) fn open_for_writing(
    args: &WarehouseArgs,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Warehouse, Option<kefu_storage::warehouse::WriterLock>), Failure> {
    let warehouse = open_existing_warehouse(&args.warehouse)?;
    let lock = warehouse
        .lock(|| eprintln!("kefu: another writer is working on the warehouse; waiting for it"))?;
    let recovery = runtime.block_on(warehouse.recover())?;
    for seq in recovery.completed {
        eprintln!("kefu: finished committing operation {seq}, which an earlier run began");
    }
    Ok((warehouse, lock))
}
