//! `kefu serve`: one long-running process that regional offices upload their exports to
//! and that analysts and BI tools query. This crate holds the server's configuration and
//! token roles ([`config`], [`auth`]) and its HTTP API ([`http`]): health and SQL over
//! HTTP (read-only SQL or a named query, as JSON, CSV or Arrow IPC, with a row limit, a
//! timeout and a memory limit per query), `/metrics` ([`metrics`]) and request ids.
//!
//! Work in progress (issue 6): uploads and the ingest queue, `kefu upload`, Flight SQL
//! and the web console are still to come.

pub mod auth;
pub mod config;
pub mod http;
pub mod metrics;

pub use config::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{path}:{line}: {message}")]
    Config {
        path: String,
        line: usize,
        message: String,
    },
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
    #[error("warehouse: {0}")]
    Warehouse(String),
    #[error("server: {0}")]
    Io(String),
}

/// Binds the configured address (port 0 picks a free one).
pub async fn bind(address: &str) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| ServerError::Listen {
            address: address.to_string(),
            reason: e.to_string(),
        })
}

/// Serves the HTTP API on `listener` until `shutdown` completes; requests in flight then
/// finish before it returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: std::sync::Arc<http::AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServerError::Io(e.to_string()))
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
