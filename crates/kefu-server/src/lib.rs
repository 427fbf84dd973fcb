//! `kefu serve`: one long-running process that regional offices upload their exports to
//! and that analysts and BI tools query. This crate holds the server's configuration and
//! token roles ([`config`], [`auth`]), the inbox and ingest queue of uploads
//! ([`uploads`], [`upload_api`]), the HTTP API ([`http`]): health, SQL over HTTP
//! (read-only SQL or a named query, as JSON, CSV or Arrow IPC, with a row limit, a
//! timeout and a memory limit per query), `/metrics` ([`metrics`]) and request ids; Flight
//! SQL ([`flight`]) and the PostgreSQL wire protocol ([`postgres`]) for BI tools; the web
//! console ([`console`]); and the offices' upload client ([`client`]).

pub mod auth;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod flight;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod postgres;
pub mod upload_api;
pub mod uploads;

pub use config::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{path}:{line}: {message}")]
    Config {
        path: String,
        line: usize,
        message: String,
    },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("warehouse: {0}")]
    Warehouse(String),
    /// A file, a thread pool or a listener failed; `source` is the system's error.
    #[error("server: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: kefu_model::BoxError,
    },
    #[error("{url}: {message}")]
    Client { url: String, message: String },
    #[error("the server refused: {status}: {message}")]
    Refused { status: u16, message: String },
}

impl ServerError {
    /// An [`ServerError::Io`]: what was being done, and the error that stopped it.
    pub(crate) fn io(
        context: impl std::fmt::Display,
        source: impl Into<kefu_model::BoxError>,
    ) -> Self {
        ServerError::Io {
            context: context.to_string(),
            source: source.into(),
        }
    }
}

impl kefu_model::Classify for ServerError {
    fn kind(&self) -> kefu_model::ErrorKind {
        use kefu_model::ErrorKind;
        match self {
            // An upload the server refused (token, size, name) is the client's to fix.
            ServerError::Config { .. } | ServerError::Refused { .. } => ErrorKind::Config,
            ServerError::Listen { .. }
            | ServerError::Warehouse(_)
            | ServerError::Io { .. }
            | ServerError::Client { .. } => ErrorKind::Io,
        }
    }
}

/// The server's shared state over `warehouse`, with the inbox opened; also returns the
/// uploads to queue again (see [`resume`]).
pub fn open(
    config: &ServerConfig,
    warehouse: kefu_storage::Warehouse,
    library: kefu_sql::QueryLibrary,
    queries: tokio::runtime::Handle,
) -> Result<(std::sync::Arc<http::AppState>, Vec<String>), ServerError> {
    let dir = match (&config.uploads.dir, warehouse.local_dir()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(local)) => local.join("_inbox"),
        (None, None) => {
            return Err(ServerError::Warehouse(
                "a warehouse on an object store needs an inbox on local disk: set `dir` in [uploads]"
                    .into(),
            ));
        }
    };
    let (inbox, resume) = uploads::Inbox::open(&dir)?;
    inbox.delete_failed(config.uploads.failed_retention, chrono::Utc::now());
    let metrics = std::sync::Arc::new(metrics::Metrics::default());
    let ingest = std::sync::Arc::new(uploads::IngestContext {
        warehouse: warehouse.clone(),
        uploads: uploads::Uploads::new(config.uploads.clone(), inbox, config.profiles.clone()),
        metrics: metrics.clone(),
    });
    let state = std::sync::Arc::new(http::AppState {
        warehouse,
        deliveries: config.deliveries.clone(),
        tokens: auth::Tokens::new(config.tokens.clone()),
        sql: config.sql.clone(),
        library,
        queries,
        metrics,
        ingest,
        query_memory: std::sync::Arc::new(
            datafusion::execution::memory_pool::GreedyMemoryPool::new(
                config.sql.total_memory_limit,
            ),
        ),
        query_turns: std::sync::Arc::new(tokio::sync::Semaphore::new(
            config.sql.max_concurrent_queries,
        )),
    });
    Ok((state, resume))
}

/// Queues again the uploads a stop left queued or ingesting, oldest first. Must be called
/// in the server's runtime.
pub fn resume(state: &http::AppState, ids: &[String]) {
    if !ids.is_empty() {
        tracing::info!(
            uploads = ids.len(),
            "resuming the uploads left by the last stop"
        );
    }
    for id in ids {
        if let Some(upload) = state.ingest.uploads.inbox.get(id) {
            uploads::enqueue(&state.ingest, &upload);
        }
    }
}

/// Binds the configured address (port 0 picks a free one).
pub async fn bind(address: &str) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Listen {
            address: address.to_string(),
            source,
        })
}

/// How long a client may take to send a request's headers. Slow clients ("slowloris")
/// holding connections open with half a header otherwise keep them forever.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request body (an upload, SQL) that sends nothing for this long is dropped (408): a
/// client that stops mid-body holds no connection, inbox file or query turn.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// Serves the HTTP API on `listener` until `shutdown` completes; requests in flight then
/// finish before it returns. Each connection must send its headers within
/// [`HEADER_TIMEOUT`], and at most [`MAX_CONNECTIONS`] are served at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: std::sync::Arc<http::AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let app = http::router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some((slot, stream)) = next_connection(&listener, &slots, &mut shutdown).await {
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let connection =
            graceful.watch(builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        #[expect(
            clippy::disallowed_methods,
            reason = "a connection's task ends with the connection; the graceful stop waits for it"
        )]
        tokio::spawn(async move {
            // A client that goes away or times out ends its connection; nothing to report.
            let _ = connection.await;
            drop(slot);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C. The handlers are installed when this is called (in a
/// runtime), not when the future is first polled, so a signal sent as soon as the server
/// says it listens is not lost.
pub fn termination() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The next connection to serve and its slot (of [`MAX_CONNECTIONS`]), waiting for a slot
/// to be free; `None` once `shutdown` completes.
pub(crate) async fn next_connection(
    listener: &tokio::net::TcpListener,
    slots: &std::sync::Arc<tokio::sync::Semaphore>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<(tokio::sync::OwnedSemaphorePermit, tokio::net::TcpStream)> {
    let slot = tokio::select! {
        slot = slots.clone().acquire_owned() => slot.ok()?,
        () = shutdown.as_mut() => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => return Some((slot, stream)),
                Err(e) => {
                    // Out of file descriptors, mostly: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}
