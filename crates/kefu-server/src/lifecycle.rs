//! The server's life from start to stop: the listeners, the uploads a stop left, and a
//! graceful stop on SIGTERM or Ctrl-C.
//!
//! Requests are answered on the caller's runtime; queries run on a pool of their own, so
//! a heavy query never delays an upload's acknowledgement or a health check.

use std::io;
use std::net::SocketAddr;

use datafusion::common::runtime::SpawnedTask;
use tokio_util::sync::CancellationToken;

use crate::{ServerConfig, ServerError};

/// Where the server listens, said as soon as each listener is bound (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub enum Listening {
    Http(SocketAddr),
    Flight(SocketAddr),
    Postgres(SocketAddr),
}

/// How the server stopped.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// Uploads waiting in the inbox for the next start.
    pub pending_uploads: usize,
}

/// Serves `warehouse` as `config` says until SIGTERM or Ctrl-C; `listening` hears each
/// address once bound. Requests are answered on `runtime` (call from a thread that may
/// block, not from an async task); queries run on a pool the server makes.
pub fn run(
    runtime: &tokio::runtime::Handle,
    config: &ServerConfig,
    warehouse: kefu_storage::Warehouse,
    library: kefu_sql::QueryLibrary,
    listening: impl Fn(Listening),
) -> Result<Stopped, ServerError> {
    let queries = tokio::runtime::Builder::new_multi_thread()
        .thread_name("kefu-query")
        .enable_all()
        .thread_stack_size(kefu_sql::QUERY_THREAD_STACK)
        .build()
        .map_err(|e| ServerError::io("cannot start the query threads", e))?;
    let (state, resume) = crate::open(config, warehouse, library, queries.handle().clone())?;
    runtime.block_on(async {
        let address = |listener: &tokio::net::TcpListener| {
            listener
                .local_addr()
                .map_err(|e: io::Error| ServerError::io("the listening address", e))
        };
        let listener = crate::bind(&config.listen).await?;
        let flight = bind_optional(config.flight.as_deref()).await?;
        let postgres = bind_optional(config.postgres.as_deref()).await?;
        let stop = crate::termination();
        crate::resume(&state, &resume);
        listening(Listening::Http(address(&listener)?));
        let stopping = CancellationToken::new();
        let mut others = Vec::new();
        if let Some(listener) = flight {
            listening(Listening::Flight(address(&listener)?));
            let stopped = stopping.clone();
            others.push(SpawnedTask::spawn(crate::flight::serve(
                listener,
                state.clone(),
                async move { stopped.cancelled().await },
            )));
        }
        if let Some(listener) = postgres {
            listening(Listening::Postgres(address(&listener)?));
            let stopped = stopping.clone();
            others.push(SpawnedTask::spawn(crate::postgres::serve(
                listener,
                state.clone(),
                async move { stopped.cancelled().await },
            )));
        }
        let stopped = stopping.clone();
        let _signals = SpawnedTask::spawn(async move {
            stop.await;
            stopped.cancel();
        });
        crate::serve(listener, state.clone(), async move {
            stopping.cancelled().await
        })
        .await?;
        for task in others {
            task.join()
                .await
                .map_err(|e| ServerError::io("a listener stopped abnormally", e))??;
        }
        Ok::<_, ServerError>(())
    })?;
    // An ingest still running is not waited for: the ledger either has its batch or not,
    // and the next start finishes the upload from the inbox.
    let pending_uploads = state.ingest.uploads.inbox.pending();
    // Queries still running after the timeout's cancellation get a moment to stop.
    queries.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(Stopped { pending_uploads })
}

/// Binds `address` when one is configured.
async fn bind_optional(
    address: Option<&str>,
) -> Result<Option<tokio::net::TcpListener>, ServerError> {
    match address {
        Some(address) => crate::bind(address).await.map(Some),
        None => Ok(None),
    }
}
