//! `server.toml`: where the server listens, its limits, and the tokens with their roles.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! flight = "127.0.0.1:50051" # Flight SQL for BI tools (none when absent)
//! postgres = "127.0.0.1:5433" # the PostgreSQL protocol: psql, DBeaver, Metabase, … (none when absent)
//!
//! [sql]
//! max_rows = 100000          # rows a response carries at most (the rest is cut, and said)
//! timeout_seconds = 60
//! memory_limit = "2GB"       # per query; sorts and joins spill beyond it
//! total_memory_limit = "4GB" # all queries together; a query needing more fails
//! max_concurrent_queries = 4 # more wait up to 10 s for a turn, then get 503
//! max_sql_bytes = "1MiB"     # longer SQL text is refused before it is parsed
//! max_expression_depth = 500 # deeper nesting (a chain of 501 ORs) is refused
//!
//! [uploads]
//! dir = "/srv/kefu/inbox"    # default: <warehouse>/_inbox (a local warehouse)
//! max_bytes = "1GiB"         # larger uploads are refused (413) before they are read
//! concurrency = 2            # uploads ingested at the same time (one region's in order)
//! max_reject_ratio = 0.05    # an upload rejecting more lands nothing and fails
//! max_decompression_ratio = 100 # a compressed upload expanding more (past 16 MiB) fails
//! failed_retention_days = 30 # failed uploads are deleted this long after they failed
//!
//! [[token]]
//! name = "beijing-office"    # shown in logs; the token itself never is
//! token_env = "KEFU_TOKEN_BEIJING"   # or token = "…" (keep the file private)
//! role = "office"            # office | analyst | admin
//! region = "beijing"         # an office token is bound to one region
//! profile = "profiles/beijing.toml"  # mapping profile of its exports (default: built-in)
//!
//! [deliveries]               # what offices deliver, by when: /metrics and the console
//! regions = ["beijing", "shenzhen"] # default: every region that has delivered
//! due = "06:00"              # a day's archive is due at 06:00 the day after
//! [deliveries.region.shenzhen]
//! due = "08:00"
//! ```
//!
//! Relative paths are relative to the configuration file.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::ServerError;
use crate::auth::{Role, TokenEntry};
use crate::uploads::UploadSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    flight: Option<String>,
    postgres: Option<String>,
    #[serde(default)]
    sql: Option<RawSql>,
    #[serde(default)]
    uploads: Option<RawUploads>,
    #[serde(default)]
    token: Vec<Spanned<RawToken>>,
    deliveries: Option<Spanned<kefu_ingest::deliveries::ScheduleConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUploads {
    dir: Option<String>,
    max_bytes: Option<Spanned<String>>,
    concurrency: Option<Spanned<usize>>,
    max_reject_ratio: Option<Spanned<f64>>,
    max_decompression_ratio: Option<Spanned<u64>>,
    failed_retention_days: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    max_rows: Option<usize>,
    timeout_seconds: Option<u64>,
    memory_limit: Option<Spanned<String>>,
    max_sql_bytes: Option<Spanned<String>>,
    max_expression_depth: Option<Spanned<usize>>,
    total_memory_limit: Option<Spanned<String>>,
    max_concurrent_queries: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    token: Option<String>,
    token_env: Option<Spanned<String>>,
    role: Spanned<String>,
    region: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
}

impl std::fmt::Debug for RawToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawToken")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Limits on SQL over HTTP.
#[derive(Debug, Clone)]
pub struct SqlLimits {
    pub max_rows: usize,
    pub timeout: std::time::Duration,
    pub memory_limit: Option<usize>,
    /// How long and how deeply nested SQL may be.
    pub bounds: kefu_sql::SqlBounds,
    /// Memory of all running queries together.
    pub total_memory_limit: usize,
    /// Queries running at once at most (HTTP, Flight SQL and the console together).
    pub max_concurrent_queries: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            max_rows: 100_000,
            timeout: std::time::Duration::from_secs(60),
            memory_limit: Some(2 << 30),
            bounds: kefu_sql::SqlBounds::default(),
            total_memory_limit: 4 << 30,
            max_concurrent_queries: 4,
        }
    }
}

/// A validated server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// Where Flight SQL listens, if anywhere.
    pub flight: Option<String>,
    /// Where the PostgreSQL protocol listens, if anywhere.
    pub postgres: Option<String>,
    pub sql: SqlLimits,
    pub uploads: UploadSettings,
    pub tokens: Vec<TokenEntry>,
    /// Mapping profiles by token name, loaded.
    pub profiles: std::collections::HashMap<String, kefu_ingest::Profile>,
    /// What the offices deliver and by when (`[deliveries]`).
    pub deliveries: kefu_ingest::deliveries::Schedule,
}

/// A size setting such as `"2GB"` or `"512MiB"`, in bytes.
fn size(
    value: &Spanned<String>,
    key: &str,
    err: &impl Fn(usize, String) -> ServerError,
) -> Result<u64, ServerError> {
    value
        .get_ref()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| err(value.span().start, format!("{key}: {e}")))
}

/// A count setting that must be at least 1.
fn at_least_one<T: Copy + PartialOrd + From<u8>>(
    value: &Spanned<T>,
    key: &str,
    err: &impl Fn(usize, String) -> ServerError,
) -> Result<T, ServerError> {
    if *value.get_ref() < T::from(1) {
        return Err(err(value.span().start, format!("{key}: at least 1")));
    }
    Ok(*value.get_ref())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServerError::Config {
            path: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        Self::parse(path, &text, |name| std::env::var(name).ok())
    }

    /// Parses `text`; `env` reads the variables named by `token_env`.
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ServerError> {
        let err = |offset: usize, message: String| ServerError::Config {
            path: path.display().to_string(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            err(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_string(),
            )
        })?;
        let mut sql = SqlLimits::default();
        if let Some(s) = &raw.sql {
            if let Some(n) = s.max_rows {
                sql.max_rows = n;
            }
            if let Some(t) = s.timeout_seconds {
                sql.timeout = std::time::Duration::from_secs(t);
            }
            if let Some(m) = &s.memory_limit {
                sql.memory_limit = Some(size(m, "memory_limit", &err)? as usize);
            }
            if let Some(m) = &s.max_sql_bytes {
                sql.bounds.max_bytes = size(m, "max_sql_bytes", &err)? as usize;
            }
            if let Some(m) = &s.total_memory_limit {
                sql.total_memory_limit = size(m, "total_memory_limit", &err)? as usize;
            }
            if let Some(n) = &s.max_concurrent_queries {
                sql.max_concurrent_queries = at_least_one(n, "max_concurrent_queries", &err)?;
            }
            if let Some(d) = &s.max_expression_depth {
                sql.bounds.max_depth = at_least_one(d, "max_expression_depth", &err)?;
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut uploads = UploadSettings::default();
        if let Some(u) = &raw.uploads {
            uploads.dir = u.dir.as_ref().map(|d| base.join(d));
            if let Some(m) = &u.max_bytes {
                uploads.max_bytes = size(m, "max_bytes", &err)?;
            }
            if let Some(c) = &u.concurrency {
                uploads.concurrency = at_least_one(c, "concurrency", &err)?;
            }
            if let Some(r) = &u.max_reject_ratio {
                if !(0.0..=1.0).contains(r.get_ref()) {
                    return Err(err(
                        r.span().start,
                        "max_reject_ratio: between 0 and 1".into(),
                    ));
                }
                uploads.max_reject_ratio = *r.get_ref();
            }
            if let Some(r) = &u.max_decompression_ratio {
                uploads.decompression.max_ratio = at_least_one(r, "max_decompression_ratio", &err)?;
            }
            if let Some(days) = u.failed_retention_days {
                uploads.failed_retention = std::time::Duration::from_secs(days * 86_400);
            }
        }
        let mut profiles = std::collections::HashMap::new();
        let mut tokens = Vec::new();
        for t in &raw.token {
            let start = t.span().start;
            let t = t.get_ref();
            let role = match t.role.get_ref().as_str() {
                "office" => Role::Office,
                "analyst" => Role::Analyst,
                "admin" => Role::Admin,
                other => {
                    return Err(err(
                        t.role.span().start,
                        format!("role '{other}': use office, analyst or admin"),
                    ));
                }
            };
            let secret = match (&t.token, &t.token_env) {
                (Some(s), None) => s.clone(),
                (None, Some(var)) => env(var.get_ref()).ok_or_else(|| {
                    err(
                        var.span().start,
                        format!(
                            "token {}: environment variable {} is not set",
                            t.name.get_ref(),
                            var.get_ref()
                        ),
                    )
                })?,
                _ => {
                    return Err(err(
                        start,
                        format!(
                            "token {}: give exactly one of `token` and `token_env`",
                            t.name.get_ref()
                        ),
                    ));
                }
            };
            if secret.len() < 16 {
                return Err(err(
                    start,
                    format!(
                        "token {}: use at least 16 characters (e.g. openssl rand -hex 24)",
                        t.name.get_ref()
                    ),
                ));
            }
            let region = t.region.as_ref().map(|r| r.get_ref().clone());
            if let Some(p) = &t.profile {
                let profile = kefu_ingest::Profile::load(&base.join(p.get_ref()))
                    .map_err(|e| err(p.span().start, e.to_string()))?;
                profiles.insert(t.name.get_ref().clone(), profile);
            }
            if tokens
                .iter()
                .any(|e: &TokenEntry| e.name == *t.name.get_ref())
            {
                return Err(err(
                    t.name.span().start,
                    format!("token name '{}' is used twice", t.name.get_ref()),
                ));
            }
            if role == Role::Office && region.is_none() {
                return Err(err(
                    start,
                    format!(
                        "token {}: an office token needs its `region`",
                        t.name.get_ref()
                    ),
                ));
            }
            tokens.push(TokenEntry::new(
                t.name.get_ref().clone(),
                secret,
                role,
                region,
            ));
        }
        let deliveries = match raw.deliveries {
            None => kefu_ingest::deliveries::Schedule::default(),
            Some(d) => {
                let start = d.span().start;
                kefu_ingest::deliveries::Schedule::new(d.into_inner(), "[deliveries]")
                    .map_err(|e| err(start, e.to_string()))?
            }
        };
        Ok(ServerConfig {
            deliveries,
            listen: raw
                .listen
                .map_or_else(|| "127.0.0.1:8080".to_string(), Spanned::into_inner),
            flight: raw.flight,
            postgres: raw.postgres,
            sql,
            uploads,
            tokens,
            profiles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, ServerError> {
        ServerConfig::parse(Path::new("server.toml"), text, |v| {
            (v == "T").then(|| "from-the-environment-0123".to_string())
        })
    }

    #[test]
    fn tokens_roles_and_limits() {
        let c = parse(
            "listen = \"127.0.0.1:9\"\n[sql]\nmax_rows = 10\nmemory_limit = \"512MiB\"\n[[token]]\nname = \"bj\"\ntoken_env = \"T\"\nrole = \"office\"\nregion = \"beijing\"\n[[token]]\nname = \"a\"\ntoken = \"analyst-token-0123456\"\nrole = \"analyst\"\n",
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9");
        assert_eq!(c.sql.max_rows, 10);
        assert_eq!(c.sql.memory_limit, Some(512 << 20));
        assert_eq!(c.tokens.len(), 2);
        assert!(
            !format!("{c:?}").contains("from-the-environment"),
            "a token leaked into Debug"
        );
    }

    #[test]
    fn bad_configs_name_the_line() {
        for (text, line, needle) in [
            (
                "[[token]]\nname = \"x\"\ntoken = \"0123456789abcdef\"\nrole = \"boss\"\n",
                4,
                "role 'boss'",
            ),
            (
                "[[token]]\nname = \"x\"\ntoken = \"short\"\nrole = \"admin\"\n",
                1,
                "at least 16",
            ),
            (
                "\n[[token]]\nname = \"x\"\ntoken = \"0123456789abcdef\"\nrole = \"office\"\n",
                2,
                "needs its `region`",
            ),
            (
                "[[token]]\nname = \"x\"\ntoken_env = \"UNSET\"\nrole = \"admin\"\n",
                3,
                "UNSET is not set",
            ),
            ("listen = 8080\n", 1, "invalid type"),
        ] {
            match parse(text) {
                Err(ServerError::Config {
                    line: l, message, ..
                }) => {
                    assert!(message.contains(needle), "{message}");
                    assert_eq!(l, line, "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
