//! `kefu cluster`: a Ballista scheduler or executor inside the kefu binary.

use clap::{Args, Subcommand};

use crate::cli::{CliResult, exit};

#[derive(Debug, Args)]
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
    },
}

pub fn cluster_command(args: &ClusterArgs) -> CliResult {
    // Planning and (de)serialising deep plans (the churn queries) recurses deeply: the
    // scheduler overflowed Tokio's default 2 MiB thread stacks in a debug build.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(64 << 20)
        .build()
        .map_err(|e| (exit::FAILURE, format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(async {
        match &args.command {
            ClusterCommand::Scheduler {
                bind,
                executor_timeout,
            } => {
                eprintln!("kefu cluster: scheduler on df://{bind}");
                kefu_cluster::run_scheduler(
                    *bind,
                    std::time::Duration::from_secs(*executor_timeout),
                )
                .await
            }
            ClusterCommand::Executor {
                scheduler,
                host,
                port,
                grpc_port,
                concurrency,
                work_dir,
                heartbeat,
            } => {
                let (scheduler_host, scheduler_port) =
                    kefu_cluster::scheduler_address(&format!("df://{scheduler}"))?;
                let settings = kefu_cluster::ExecutorSettings {
                    scheduler_host,
                    scheduler_port,
                    host: host.clone(),
                    port: *port,
                    grpc_port: *grpc_port,
                    concurrency: concurrency.unwrap_or_else(|| {
                        std::thread::available_parallelism().map_or(2, |n| n.get())
                    }),
                    work_dir: work_dir.as_ref().map(|d| d.display().to_string()),
                    heartbeat: std::time::Duration::from_secs(*heartbeat),
                };
                eprintln!("kefu cluster: executor on {host}:{port} for df://{scheduler}");
                kefu_cluster::run_executor(&settings).await
            }
        }
    });
    result.map_err(|e| (exit::FAILURE, e.to_string()))
}
