//! The command-line arguments of `kefu cluster` (scheduler, executor, check, certs), with
//! their help text (the `cli` feature; the kefu binary parses them and calls this crate).

use clap::{Args, Subcommand};
use kefu_storage::cli::WarehouseArgs;

/// Run a Ballista scheduler or executor (kefu's functions built in), for
/// `--cluster df://HOST:PORT` on `kefu sql`, `kefu query`, `kefu report` and `kefu run`;
/// check a cluster.
#[derive(Debug, Args)]
#[command(after_help = "A cluster on one machine:\n  \
    kefu cluster scheduler --bind 127.0.0.1:50050 &\n  \
    kefu cluster executor --scheduler 127.0.0.1:50050 --port 50051 --grpc-port 50052 --warehouse \"$PWD/warehouse\" &\n  \
    kefu cluster executor --scheduler 127.0.0.1:50050 --port 50061 --grpc-port 50062 --warehouse \"$PWD/warehouse\" &\n  \
    kefu cluster check df://127.0.0.1:50050\n  \
    kefu query calls_kpis --cluster df://127.0.0.1:50050\n\n\
    The warehouse must be where every executor sees it under the same name: s3:// (with \
    the same AWS_* environment everywhere) or a shared filesystem at the same absolute \
    path. Executors read only the warehouses given with --warehouse and write nothing, \
    whatever plan a client sends. See the README's \"On a cluster\" for systemd units \
    and sizing.")]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Run a scheduler: clients (`--cluster df://HOST:PORT`) send it queries, it plans
    /// their stages and hands tasks to the executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050", value_name = "ADDR")]
        bind: std::net::SocketAddr,
        /// Seconds without a heartbeat after which an executor is lost and its tasks run
        /// again on the others (Ballista's default is 180).
        #[arg(long, default_value_t = 20, value_name = "SECONDS")]
        executor_timeout: u64,
        /// The cluster's TLS directory (`kefu cluster certs`): the port then takes only TLS
        /// connections from holders of the cluster's certificate.
        #[arg(long, env = "KEFU_CLUSTER_TLS", value_name = "DIR")]
        tls: Option<std::path::PathBuf>,
    },
    /// Run an executor: it registers with the scheduler and runs its tasks, reading the
    /// warehouse itself (a shared directory at the same path everywhere, or s3:// with
    /// the AWS_* environment).
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50050", value_name = "HOST:PORT")]
        scheduler: String,
        /// The host the scheduler, the client and other executors reach this one at.
        #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
        host: String,
        /// Port for results and shuffle data (Arrow Flight).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port for the scheduler's calls (gRPC).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once (default: the number of cores).
        #[arg(long, value_name = "N")]
        concurrency: Option<usize>,
        /// Directory for shuffle files (default: a temporary directory).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<std::path::PathBuf>,
        /// Seconds between heartbeats to the scheduler (keep it well under the
        /// scheduler's --executor-timeout).
        #[arg(long, default_value_t = 5, value_name = "SECONDS")]
        heartbeat: u64,
        /// A warehouse this executor serves, as its clients name it (repeat the option for
        /// several; KEFU_WAREHOUSE takes a comma-separated list). Its tasks read only
        /// these and write nothing, whatever plan a client of the scheduler sends.
        #[arg(
            long = "warehouse",
            env = "KEFU_WAREHOUSE",
            value_delimiter = ',',
            required = true,
            value_name = "DIR_OR_URL"
        )]
        warehouses: Vec<kefu_storage::WarehouseLocation>,
        /// The cluster's TLS directory (`kefu cluster certs`): the executor's ports then
        /// take only TLS connections from holders of the cluster's certificate, and it
        /// reaches the scheduler and other executors over TLS.
        #[arg(long, env = "KEFU_CLUSTER_TLS", value_name = "DIR")]
        tls: Option<std::path::PathBuf>,
    },
    /// Check a cluster: list the executors registered with the scheduler, run a small
    /// query over the warehouse's latest month of calls with one task per task slot (so
    /// every executor runs part of it; it uses kefu's functions), and compare the answer
    /// with the same query run here. Exits 1 unless every executor took part and the
    /// answers are equal.
    #[command(after_help = "Examples:\n  \
        kefu cluster check df://scheduler:50050 --warehouse s3://kefu-warehouse/prod\n  \
        kefu cluster check df://127.0.0.1:50050 --warehouse ./wh --wait 60   # just started")]
    Check {
        /// The scheduler, df://HOST:PORT.
        #[arg(value_name = "URL")]
        url: String,
        #[command(flatten)]
        warehouse: WarehouseArgs,
        /// Working calendar (TOML) of business_seconds, as the cluster's clients use it.
        #[arg(long, env = "KEFU_CALENDAR", value_name = "FILE")]
        calendar: Option<std::path::PathBuf>,
        /// The cluster's TLS directory, when its members take only TLS connections.
        #[arg(long, env = "KEFU_CLUSTER_TLS", value_name = "DIR")]
        tls: Option<std::path::PathBuf>,
        /// Check again, for up to this many seconds, until the check passes (a cluster
        /// still starting: the scheduler not yet listening, executors not yet
        /// registered); the last check is the one reported.
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        wait: u64,
    },
    /// Make a cluster's TLS directory: a certificate authority of its own and a
    /// certificate for its members, signed by it. Copy the directory to the scheduler, every
    /// executor and every client machine (keep it private: its keys admit to the cluster),
    /// and give it to each with --tls (the scheduler, executors, `cluster check`) or
    /// --cluster-tls (`sql`, `query`, `report`, `run`), or KEFU_CLUSTER_TLS. Connections
    /// without its certificate are then refused during the TLS handshake.
    #[command(after_help = "Example:\n  \
        kefu cluster certs --out /etc/kefu/cluster-tls\n  \
        kefu cluster scheduler --bind 10.0.0.1:50050 --tls /etc/kefu/cluster-tls")]
    Certs {
        /// A new (or empty) directory for ca.pem, member.pem and member.key.
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
}
