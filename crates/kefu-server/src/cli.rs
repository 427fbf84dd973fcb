//! The command-line arguments of `kefu serve` and `kefu upload`, with their help text (the
//! `cli` feature; the kefu binary parses them and calls this crate).

use std::path::PathBuf;

use clap::Args;
use kefu_storage::cli::WarehouseArgs;

/// Serve the warehouse: uploads from regional offices, SQL over HTTP, metrics.
///
/// Offices `POST /api/v1/uploads?name=FILE` (or use `kefu upload`): the file is
/// stored in the inbox (fsynced) and answered 202 with an upload id, then ingested by a
/// queue (in order per region) with the office's profile; rows of another region are
/// rejected. `GET /api/v1/uploads/{id}` gives the status and counts, and
/// `/api/v1/uploads/{id}/rejects.csv` the rejected records. Content uploaded or
/// ingested before is answered as a duplicate. A stop (SIGTERM) loses nothing: the next
/// start resumes the inbox, and every upload commits exactly once.
///
/// Analysts `POST /api/v1/sql` with `{"sql": …}` or `{"query": NAME, "params": …}`:
/// JSON, CSV or Arrow IPC (`format` or the Accept header), read-only, with the row
/// limit, timeout and memory limit of the configuration. `GET /healthz`, `GET /metrics`
/// (Prometheus text); every response carries an X-Request-Id.
///
/// BI tools connect over the PostgreSQL protocol (--postgres or `postgres`: psql,
/// DBeaver, Metabase, Superset, Power BI, FineBI, Tableau; the password is a token)
/// or Flight SQL (--flight or `flight`: statements, prepared statements with $1
/// parameters, catalogs, schemas and tables); same tokens, read-only. The web console
/// is at http://ADDR/: uploads, SQL and named queries, the KPI dashboard and the
/// offices' deliveries, in Chinese and English (`[deliveries]` sets what is expected;
/// also in /metrics and GET /api/v1/deliveries). TLS: put the server behind a reverse
/// proxy (nginx, Caddy, Envoy) that terminates it.
#[derive(Debug, Args)]
#[command(after_help = "Example server.toml:\n  \
    listen = \"127.0.0.1:8080\"\n  \
    flight = \"127.0.0.1:50051\"\n  \
    postgres = \"127.0.0.1:5433\"\n  \
    [sql]\n  \
    max_rows = 100000\n  \
    timeout_seconds = 60\n  \
    memory_limit = \"2GB\"\n  \
    [uploads]\n  \
    max_bytes = \"1GiB\"\n  \
    concurrency = 2\n  \
    [[token]]\n  \
    name = \"beijing-office\"\n  \
    token_env = \"KEFU_TOKEN_BEIJING\"\n  \
    role = \"office\"   # office (with region), analyst or admin\n  \
    region = \"beijing\"")]
pub struct ServeArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// The server configuration (TOML): listen address, SQL limits, tokens and roles.
    #[arg(long, env = "KEFU_SERVER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Listen here instead of the configuration's `listen` (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve Flight SQL here (instead of the configuration's `flight`; port 0: any).
    #[arg(long, value_name = "ADDR")]
    pub flight: Option<String>,
    /// Serve the PostgreSQL protocol here, for psql, DBeaver, Metabase, Superset, Power
    /// BI, FineBI or Tableau (instead of the configuration's `postgres`; port 0: any). The
    /// password is a kefu token; any user name will do.
    #[arg(long, value_name = "ADDR")]
    pub postgres: Option<String>,
}

/// Upload exports to a kefu server (the regional offices' client).
///
/// Each file is streamed with a progress bar; network errors and 502/503/504 are
/// retried with exponential backoff. Prints each upload's id and status; with --wait,
/// waits until each is ingested and prints the rows landed, rejected and duplicated.
/// Exit status: 0 all accepted (or done), 1 an ingest failed, 2 refused by the server
/// (token, size, name), 4 the server could not be reached.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kefu upload exports/beijing/beijing_20260301.zip --server http://head-office:8080 --token $KEFU_TOKEN\n  \
    kefu upload exports/beijing/*.zip --server http://head-office:8080 --wait")]
pub struct UploadArgs {
    /// Files to upload (exports or archives of them).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The server, e.g. http://head-office:8080
    #[arg(long, env = "KEFU_SERVER", value_name = "URL")]
    pub server: String,
    /// The office's token (better in the KEFU_TOKEN environment variable than on the
    /// command line, where other users of the machine can see it).
    #[arg(long, env = "KEFU_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: String,
    /// Restrict the upload to one region (admin tokens; an office's is always its own).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Wait until each upload is ingested, and print its counts.
    #[arg(long)]
    pub wait: bool,
    /// Retries after network errors, with exponential backoff from 0.5 s.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: usize,
    /// Print the server's records as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}
