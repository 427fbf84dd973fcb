//! The offices' upload client (`kefu upload`): streams files to a server's
//! `POST /api/v1/uploads`, retrying with exponential backoff when the network or the
//! server's front fails, and optionally waits until each upload is ingested.

use std::path::Path;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use kefu_progress::{Progress, Unit};

use crate::ServerError;

/// A connection to one server with one token.
pub struct UploadClient {
    http: reqwest::Client,
    server: reqwest::Url,
    token: String,
    /// Attempts after the first one, on network errors and 502/503/504.
    pub retries: usize,
    /// The first wait before a retry; it doubles each time (with jitter), up to 30 s.
    pub first_backoff: Duration,
}

/// Whether an attempt's failure is worth another.
enum Attempt {
    Transient(String),
    Final(ServerError),
}

impl UploadClient {
    pub fn new(server: &str, token: String) -> Result<Self, ServerError> {
        let server = reqwest::Url::parse(server).map_err(|e| ServerError::Client {
            url: server.to_string(),
            message: format!("not a URL: {e} (e.g. http://head-office:8080)"),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("kefu-upload/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ServerError::Client {
                url: server.to_string(),
                message: e.to_string(),
            })?;
        Ok(UploadClient {
            http,
            server,
            token,
            retries: 5,
            first_backoff: Duration::from_millis(500),
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.server.join(path).expect("API paths are relative URLs")
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_backoff)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.retries)
            .with_jitter()
    }

    /// Uploads `file` (restricted to `region` when an admin gives one); returns the
    /// server's answer: the upload's record (`202`) or a duplicate notice (`200`).
    pub async fn upload(
        &self,
        file: &Path,
        region: Option<&str>,
        progress: std::sync::Arc<dyn Progress>,
    ) -> Result<serde_json::Value, ServerError> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut url = self.url("api/v1/uploads");
        url.query_pairs_mut().append_pair("name", &name);
        if let Some(r) = region {
            url.query_pairs_mut().append_pair("region", r);
        }
        let attempt = || async {
            let opened = tokio::fs::File::open(file).await;
            let handle = opened.map_err(|e| Attempt::Final(ServerError::io(file.display(), e)))?;
            let size = handle
                .metadata()
                .await
                .map_err(|e| Attempt::Final(ServerError::io(file.display(), e)))?
                .len();
            progress.start(&name, Some(size), Unit::Bytes);
            let counted = progress.clone();
            let stream =
                tokio_util::io::ReaderStream::with_capacity(handle, 256 * 1024).map(move |chunk| {
                    if let Ok(c) = &chunk {
                        counted.advance(c.len() as u64);
                    }
                    chunk
                });
            let body = reqwest::Body::wrap_stream(stream);
            let response = self
                .http
                .post(url.clone())
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body)
                .send()
                .await;
            progress.finish();
            self.answer(&url, response).await
        };
        self.retrying(attempt).await
    }

    /// The upload's current record.
    pub async fn status(&self, id: &str) -> Result<serde_json::Value, ServerError> {
        let url = self.url(&format!("api/v1/uploads/{id}"));
        let attempt = || async {
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(&self.token)
                .send()
                .await;
            self.answer(&url, response).await
        };
        self.retrying(attempt).await
    }

    /// Uploads `file` and, with `wait` (and unless it duplicates an earlier one), waits
    /// until the server has ingested it: the server's record of the upload.
    pub async fn deliver(
        &self,
        file: &Path,
        region: Option<&str>,
        wait: bool,
        progress: std::sync::Arc<dyn Progress>,
    ) -> Result<serde_json::Value, ServerError> {
        let answer = self.upload(file, region, progress).await?;
        match (wait, answer["id"].as_str()) {
            (true, Some(id)) if answer["duplicate"] != true => {
                self.wait(id, Duration::from_millis(500)).await
            }
            _ => Ok(answer),
        }
    }

    /// Polls the upload's status until it is `done` or `failed`.
    pub async fn wait(&self, id: &str, every: Duration) -> Result<serde_json::Value, ServerError> {
        loop {
            let record = self.status(id).await?;
            match record["status"].as_str() {
                Some("done" | "failed") => return Ok(record),
                _ => tokio::time::sleep(every).await,
            }
        }
    }

    async fn answer(
        &self,
        url: &reqwest::Url,
        response: reqwest::Result<reqwest::Response>,
    ) -> Result<serde_json::Value, Attempt> {
        let response = response.map_err(|e| Attempt::Transient(error_chain(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Attempt::Transient(error_chain(&e)))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Attempt::Final(ServerError::Client {
                    url: url.to_string(),
                    message: format!("the answer is not JSON: {e}"),
                })
            });
        }
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        if matches!(status.as_u16(), 502..=504) {
            return Err(Attempt::Transient(format!("{status}: {message}")));
        }
        Err(Attempt::Final(ServerError::Refused {
            status: status.as_u16(),
            message,
        }))
    }

    async fn retrying<F, Fut>(&self, attempt: F) -> Result<serde_json::Value, ServerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<serde_json::Value, Attempt>>,
    {
        let url = self.server.to_string();
        attempt
            .retry(self.backoff())
            .when(|e| matches!(e, Attempt::Transient(_)))
            .notify(|e, wait| {
                if let Attempt::Transient(m) = e {
                    tracing::warn!("{m}; trying again in {:.1} s", wait.as_secs_f64());
                }
            })
            .await
            .map_err(|e| match e {
                Attempt::Final(e) => e,
                Attempt::Transient(message) => ServerError::Client {
                    url,
                    message: format!("{message} (gave up after {} retries)", self.retries),
                },
            })
    }
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// One line about an upload: its id and status, or what it duplicates; counts when done.
pub fn describe_upload(file: &Path, r: &serde_json::Value) -> String {
    let name = file.display();
    if r["duplicate"] == true {
        let of = &r["duplicate_of"];
        let what = match (of["upload"].as_str(), of["batch"].as_u64()) {
            (Some(u), _) => format!("upload {u}"),
            (None, Some(b)) => format!("batch {b} of the warehouse"),
            _ => "an earlier upload".to_string(),
        };
        return format!("{name}: duplicate of {what}; not ingested again");
    }
    let id = r["id"].as_str().unwrap_or("?");
    let status = r["status"].as_str().unwrap_or("?");
    match status {
        "done" => {
            let c = &r["counts"];
            format!(
                "{name}: {id} done: {} landed, {} rejected, {} duplicates{}",
                c["landed"],
                c["rejected"],
                c["duplicates"],
                if c["rejected"].as_u64().unwrap_or(0) > 0 {
                    format!(
                        " (rejects: {})",
                        r["links"]["rejects"].as_str().unwrap_or("")
                    )
                } else {
                    String::new()
                }
            )
        }
        "failed" => format!(
            "{name}: {id} failed: {}",
            r["error"].as_str().unwrap_or("no reason given")
        ),
        other => format!(
            "{name}: {id} {other} ({} bytes, sha256 {})",
            r["bytes"],
            r["sha256"].as_str().unwrap_or("")
        ),
    }
}
