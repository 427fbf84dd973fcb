//! kefu on an Apache DataFusion Ballista cluster, for when one machine is not enough. The
//! scheduler and the executors run inside the kefu binary ([`run_scheduler`],
//! [`run_executor`]), so that they know kefu's own functions (`local_trunc`,
//! `business_seconds`, the by-key aggregates, …) and read the warehouse from local paths
//! or `s3://` URLs with the same `AWS_*` configuration as the client; [`open_engine`] gives
//! a [`kefu_sql::Engine`] whose queries are planned here and executed by the cluster,
//! and [`check::check`] tells whether a cluster is fit to run them. Executors read only
//! the warehouses they serve and write nothing ([`confined`]); with `--tls`, the members
//! and clients know each other by certificates ([`tls`]).

pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod codec;
pub mod confined;
pub mod joins;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::registry::BallistaFunctionRegistry;
use confined::{ConfinedStores, ServedWarehouse};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use kefu_sql::{Engine, EngineOptions};
use kefu_storage::Warehouse;
use object_store::ObjectStore;
use tls::ClusterTls;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster URL '{0}': use df://HOST:PORT (the scheduler's address)")]
    Url(String),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scheduler: {0}")]
    Scheduler(String),
    #[error("executor: {0}")]
    Executor(String),
    #[error("cannot reach the scheduler at {scheduler}: {source}")]
    Unreachable {
        scheduler: String,
        #[source]
        source: kefu_model::BoxError,
    },
    #[error(
        "no executor has registered with {scheduler} in {waited:.0?}: start one with `kefu \
         cluster executor --scheduler HOST:PORT --warehouse DIR_OR_URL` and check its log \
         (--cluster-wait sets how long to wait)"
    )]
    NoExecutor {
        scheduler: String,
        waited: std::time::Duration,
    },
    #[error("warehouse: {0}")]
    Warehouse(String),
    #[error("cluster TLS ({dir}): {source}")]
    Tls {
        dir: String,
        #[source]
        source: kefu_model::BoxError,
    },
    #[error(transparent)]
    Sql(#[from] kefu_sql::SqlError),
}

impl kefu_model::Classify for ClusterError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            ClusterError::Url(_) | ClusterError::Tls { .. } => ErrorKind::Config,
            ClusterError::Unreachable { .. }
            | ClusterError::NoExecutor { .. }
            | ClusterError::Warehouse(_) => ErrorKind::Io,
            ClusterError::Listen { .. }
            | ClusterError::Scheduler(_)
            | ClusterError::Executor(_)
            | ClusterError::Sql(_) => ErrorKind::Failure,
        }
    }
}

/// The scheduler's address in a `df://HOST:PORT` URL.
pub fn scheduler_address(url: &str) -> Result<(String, u16), ClusterError> {
    let bad = || ClusterError::Url(url.to_string());
    let parsed = Url::parse(url).map_err(|_| bad())?;
    if parsed.scheme() != "df" {
        return Err(bad());
    }
    let host = parsed.host_str().ok_or_else(bad)?.to_string();
    let port = parsed.port().unwrap_or(50050);
    Ok((host, port))
}

/// Object stores by URL: those registered, and for `s3://bucket` a store made on first
/// use from the `AWS_*` environment (as `kefu` does everywhere), so that executors and the
/// scheduler read a warehouse on S3 without being told about its bucket.
#[derive(Debug, Default)]
pub struct KefuObjectStores {
    inner: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for KefuObjectStores {
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
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(missing) if url.scheme() == "s3" => {
                let mut bucket = url.clone();
                bucket.set_path("");
                let store = kefu_storage::store::bucket_store(&bucket)
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                tracing::debug!(%bucket, "object store made from the environment");
                self.inner.register_store(&bucket, store.clone());
                let _ = missing;
                Ok(store)
            }
            Err(missing) => Err(missing),
        }
    }
}

fn runtime() -> datafusion::error::Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(KefuObjectStores::default()))
        .build_arc()
}

/// An executor's tasks' runtime: object stores confined to the warehouses it serves.
fn confined_runtime(served: &[ServedWarehouse]) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(ConfinedStores::new(served.to_vec())))
        .build_arc()
}

/// kefu's functions, as the executors look them up in plans.
pub fn function_registry() -> BallistaFunctionRegistry {
    let ctx = SessionContext::new();
    kefu_sql::udf::register(
        &ctx,
        &kefu_sql::udf::WorkingCalendar::default(),
        kefu_model::calendar::DEFAULT_TIME_ZONE,
    );
    BallistaFunctionRegistry::from(&ctx.state())
}

/// The scheduler's sessions: Ballista's defaults, kefu's functions, plan rules, operators
/// and object stores (the scheduler optimizes the plans clients send), joins that
/// broadcast only where that is right on a cluster ([`joins`]), and one shuffle where
/// an aggregate's and the operator's above it nest
/// ([`kefu_sql::shared_keys::ShuffleOnceOnSharedKeys`]).
fn session_state(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    let rules =
        kefu_sql::shared_keys::with_shuffle_once_on_shared_keys(kefu_sql::rules::with_operators(
            joins::with_safe_broadcasts(state.physical_optimizers().to_vec()),
        ));
    let ctx = SessionContext::new_with_state(
        kefu_sql::rules::add_to(
            datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime()?)
                .with_physical_optimizer_rules(rules),
        )
        .build(),
    );
    kefu_sql::udf::register(
        &ctx,
        &kefu_sql::udf::WorkingCalendar::default(),
        kefu_model::calendar::DEFAULT_TIME_ZONE,
    );
    Ok(ctx.state())
}

/// Runs a scheduler on `bind` until the process ends. An executor silent for
/// `executor_timeout` is declared lost, and its tasks run again elsewhere. With `tls`, the
/// port takes only TLS connections from members of the cluster.
pub async fn run_scheduler(
    bind: SocketAddr,
    executor_timeout: std::time::Duration,
    tls: Option<&ClusterTls>,
) -> Result<(), ClusterError> {
    let scheduler_error =
        |e: ballista_core::error::BallistaError| ClusterError::Scheduler(e.to_string());
    let mut config = ballista_scheduler::config::SchedulerConfig::default()
        .with_hostname(bind.ip().to_string())
        .with_port(bind.port());
    config.bind_host = bind.ip().to_string();
    let timeout = executor_timeout.as_secs().max(2);
    config.executor_timeout_seconds = timeout;
    config.expire_dead_executor_interval_seconds = (timeout / 4).max(1);
    config.no_executors_grace_period_seconds = timeout;
    config.override_session_builder = Some(Arc::new(session_state));
    config.override_logical_codec = Some(Arc::new(codec::KefuLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(codec::KefuPhysicalCodec::default()));
    if let Some(tls) = tls {
        // Its own calls to executors. (The endpoint override makes every connection TLS:
        // Ballista's `use_tls` setting is left off, as it also changes how executors
        // read shuffles, into plans its scheduler then fails to update.)
        config.override_create_grpc_client_endpoint = Some(tls.endpoint_override());
    }
    let config = Arc::new(config);
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(scheduler_error)?;
    let Some(tls) = tls else {
        return ballista_scheduler::scheduler_process::start_server(cluster, bind, config)
            .await
            .map_err(scheduler_error);
    };
    config.validate().map_err(scheduler_error)?;
    let public = listen(bind).await?;
    let inner = listen(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let inner_address = inner
        .local_addr()
        .map_err(|e| ClusterError::Scheduler(e.to_string()))?;
    let scheduler = ballista_scheduler::scheduler_process::create_scheduler::<
        datafusion_proto::protobuf::LogicalPlanNode,
        datafusion_proto::protobuf::PhysicalPlanNode,
    >(cluster, config)
    .await
    .map_err(scheduler_error)?;
    tokio::select! {
        served = ballista_scheduler::scheduler_process::start_grpc_service_with_listener(inner, scheduler) => {
            served.map_err(scheduler_error)
        }
        fronted = tls.front(public, inner_address) => fronted,
    }
}

/// A listener on `address` (a host name is resolved).
async fn listen(
    address: impl tokio::net::ToSocketAddrs + std::fmt::Display,
) -> Result<tokio::net::TcpListener, ClusterError> {
    tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|source| ClusterError::Listen {
            address: address.to_string(),
            source,
        })
}

/// Where an executor's Ballista servers listen when it takes TLS: a loopback address of
/// their own, so that its TLS fronts can hold the executor's ports on its host (which may
/// be 127.0.0.1 itself).
const INNER_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// Where an executor listens and what it may use.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// The host other executors and the client reach this one at.
    pub host: String,
    /// Flight (shuffle and result) port; gRPC port.
    pub port: u16,
    pub grpc_port: u16,
    /// Tasks run at once.
    pub concurrency: usize,
    /// Shuffle files.
    pub work_dir: Option<String>,
    /// How often the executor tells the scheduler it is alive.
    pub heartbeat: std::time::Duration,
    /// The warehouses its tasks may read (nothing else, and nothing is written).
    pub warehouses: Vec<ServedWarehouse>,
    /// Mutual TLS with the other members and the clients.
    pub tls: Option<ClusterTls>,
}

/// Waits, up to a minute, until the scheduler's port accepts connections: scheduler and
/// executors are often started together (a script, a compose file), and Ballista's
/// executor gives up at once when its first registration finds nobody listening. Past
/// the minute it starts anyway, and fails with Ballista's connection error.
async fn wait_for_scheduler(host: &str, port: u16) {
    use backon::Retryable;
    let connect = || tokio::net::TcpStream::connect((host, port));
    let every_quarter_second_for_a_minute = backon::ConstantBuilder::default()
        .with_delay(std::time::Duration::from_millis(250))
        .with_max_times(240);
    let _ = connect
        .retry(every_quarter_second_for_a_minute)
        .notify(|_, _| tracing::info!(host, port, "waiting for the scheduler to listen"))
        .await;
}

/// Runs an executor until the process ends.
pub async fn run_executor(settings: &ExecutorSettings) -> Result<(), ClusterError> {
    wait_for_scheduler(&settings.scheduler_host, settings.scheduler_port).await;
    let mut config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: settings.host.clone(),
        external_host: Some(settings.host.clone()),
        port: settings.port,
        grpc_port: settings.grpc_port,
        scheduler_host: settings.scheduler_host.clone(),
        scheduler_port: settings.scheduler_port,
        vcores: settings.concurrency.max(1),
        work_dir: settings.work_dir.clone(),
        executor_heartbeat_interval_seconds: settings.heartbeat.as_secs().max(1),
        override_function_registry: Some(Arc::new(function_registry())),
        override_runtime_producer: Some(Arc::new({
            let served = settings.warehouses.clone();
            move |_config: &SessionConfig| confined_runtime(&served)
        })),
        override_logical_codec: Some(Arc::new(codec::KefuLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(codec::KefuPhysicalCodec::default())),
        ..Default::default()
    };
    if let Some(tls) = &settings.tls {
        // Ballista's gRPC server (the scheduler's calls: tasks, cancels) takes no TLS
        // settings: it listens on another loopback address, behind a TLS front on its
        // port; the Flight server below is TLS itself.
        config.bind_host = INNER_IP.to_string();
        let host = settings.host.as_str();
        let grpc_front = listen(format!("{host}:{}", settings.grpc_port)).await?;
        let inner = SocketAddr::from((INNER_IP, settings.grpc_port));
        let front_tls = tls.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "the TLS front serves as long as the executor process runs"
        )]
        tokio::spawn(async move { front_tls.front(grpc_front, inner).await });
        // Taken by the Flight server when the executor starts it (once).
        let flight_listener =
            std::sync::Mutex::new(Some(listen(format!("{host}:{}", settings.port)).await?));
        let endpoint = tls.endpoint_override();
        // To the scheduler.
        config.override_create_grpc_client_endpoint = Some(endpoint.clone());
        // To other executors (shuffles), in every task's session.
        config.override_config_producer = Some(Arc::new(move || {
            SessionConfig::new_with_ballista()
                .with_ballista_override_create_grpc_client_endpoint(endpoint.clone())
        }));
        let server_tls = tls.flight_server();
        let max_decoding = config.grpc_max_decoding_message_size as usize;
        let max_encoding = config.grpc_max_encoding_message_size as usize;
        config.override_arrow_flight_service = Some(Arc::new(
            move |work_dir, _inner, mut shutdown, grpc: ballista_core::utils::GrpcServerConfig| {
                let server_tls = server_tls.clone();
                let listener = flight_listener.lock().expect("flight listener").take();
                #[expect(
                    clippy::disallowed_methods,
                    reason = "Ballista takes the Flight server's task handle and stops it"
                )]
                tokio::spawn(async move {
                    let listener = listener.ok_or_else(|| {
                        ballista_core::error::BallistaError::General(
                            "the Flight server was started twice".into(),
                        )
                    })?;
                    let flight = arrow_flight::flight_service_server::FlightServiceServer::new(
                        ballista_executor::flight_service::BallistaFlightService::new(work_dir),
                    )
                    .max_decoding_message_size(max_decoding)
                    .max_encoding_message_size(max_encoding);
                    ballista_core::utils::create_grpc_server(&grpc)
                        .tls_config(server_tls)
                        .map_err(ballista_core::error::BallistaError::TonicError)?
                        .add_service(flight)
                        .serve_with_incoming_shutdown(
                            tokio_stream::wrappers::TcpListenerStream::new(listener),
                            shutdown.recv(),
                        )
                        .await
                        .map_err(ballista_core::error::BallistaError::TonicError)
                })
            },
        ));
    }
    ballista_executor::executor_process::start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ClusterError::Executor(e.to_string()))
}

/// A session over `warehouse` whose queries run on the cluster at `url` (`df://HOST:PORT`),
/// over TLS with `tls`, once an executor has registered with its scheduler (waiting up to
/// `wait` for one).
pub async fn open_engine(
    warehouse: &Warehouse,
    options: &EngineOptions,
    url: &str,
    tls: Option<&ClusterTls>,
    wait: std::time::Duration,
) -> Result<Engine, ClusterError> {
    let (host, port) = scheduler_address(url)?;
    check::await_executor(&host, port, tls, wait).await?;
    open_session(warehouse, options, &host, port, tls).await
}

/// [`open_engine`] without first asking the scheduler for its executors (the caller
/// has).
async fn open_session(
    warehouse: &Warehouse,
    options: &EngineOptions,
    host: &str,
    port: u16,
    tls: Option<&ClusterTls>,
) -> Result<Engine, ClusterError> {
    let endpoint = tls.map(ClusterTls::endpoint_override);
    let scheduler = format!("df://{host}:{port}");
    Ok(Engine::open_with(warehouse, options, |state| {
        // Plans carry business_seconds' calendar (see `codec`).
        let config = state
            .config()
            .clone()
            .with_ballista_logical_extension_codec(Arc::new(codec::KefuLogicalCodec::default()))
            .with_ballista_physical_extension_codec(Arc::new(codec::KefuPhysicalCodec::default()));
        let config = match &endpoint {
            Some(endpoint) => {
                config.with_ballista_override_create_grpc_client_endpoint(endpoint.clone())
            }
            None => config,
        };
        // How local mode chooses joins, which Ballista's upgrade replaces (below).
        let local_joins = state.config().options().optimizer.clone();
        let state =
            datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
                .with_config(config)
                .build();
        let mut state = state.upgrade_for_ballista(scheduler)?;
        // Joins as in local mode. Ballista plans every equijoin as a sort-merge join, so
        // that a join can spill; but executors run without a memory limit, where nothing
        // spills, and a sort-merge join with a 9-row table shuffles and sorts the whole
        // other side (calls_kpis over 10 M calls: 2.7 s, 1.0 s with a hash join; local
        // mode 0.9 s). The scheduler broadcasts more than local mode collects, where
        // Ballista's own threshold says, before the probe side is planned for a shuffle
        // (`joins::BroadcastSmallBuildSide`).
        let optimizer = &mut state.config_mut().options_mut().optimizer;
        optimizer.prefer_hash_join = local_joins.prefer_hash_join;
        optimizer.hash_join_single_partition_threshold =
            local_joins.hash_join_single_partition_threshold;
        optimizer.hash_join_single_partition_threshold_rows =
            local_joins.hash_join_single_partition_threshold_rows;
        // Pre-aggregate unless the groups are nearly as many as the rows (DataFusion's
        // default, where local mode stops at 10%): rows handed on unaggregated cross a
        // shuffle as files written and fetched. A task sees a sixteenth of churn_monthly's
        // 12 M contacts, too few per customer to pass 10%, and shuffled them all: 2.53 s,
        // 2.12 s pre-aggregated (310 K customers, 2 executors, means of 3).
        state
            .config_mut()
            .options_mut()
            .execution
            .skip_partial_aggregation_probe_ratio_threshold = 0.8;
        // Ballista 55's adaptive planner never finishes a join whose one side is empty
        // (a scan pruned to no files): its jobs keep scheduling stages. The static
        // distributed planner finishes them.
        state
            .config_mut()
            .options_mut()
            .set("ballista.planner.adaptive.enabled", "false")?;
        // Ballista's own options (`ballista.*`) exist only now; the environment may set
        // them as it sets DataFusion's (`BALLISTA_SHUFFLE_COMPRESSION_CODEC=lz4_frame`).
        kefu_sql::engine::apply_environment(state.config_mut().options_mut())
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        Ok(state)
    })
    .await?)
}

#[cfg(test)]
mod tests {
    /// The scheduler plans with kefu's cluster rules, each where it must run: the join
    /// rules right after join selection, the shuffle rule right after the repartitions
    /// are placed.
    #[test]
    fn the_scheduler_plans_with_the_cluster_rules_in_place() {
        let state = super::session_state(datafusion::prelude::SessionConfig::new()).unwrap();
        let names: Vec<&str> = state
            .physical_optimizers()
            .iter()
            .map(|rule| rule.name())
            .collect();
        let after = |rule: &str| names[names.iter().position(|n| *n == rule).unwrap() + 1];
        assert_eq!(after("join_selection"), "kefu_broadcast_only_probe_answers");
        assert_eq!(
            after("kefu_broadcast_only_probe_answers"),
            "kefu_broadcast_small_build_side"
        );
        assert_eq!(
            after("EnsureRequirements"),
            "kefu_shuffle_once_on_shared_keys"
        );
    }
}
