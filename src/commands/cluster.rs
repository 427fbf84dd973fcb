//! `kefu cluster`: a Ballista scheduler or executor with kefu's functions; checks a
//! cluster; makes its TLS certificates.

use kefu_cluster::cli::{ClusterArgs, ClusterCommand};
use kefu_model::ErrorKind;
use kefu_storage::cli::WarehouseArgs;
use tokio::runtime::Runtime;

use crate::args::load_tls;
use crate::exit::{CliResult, Failure};

pub fn cluster_command(args: &ClusterArgs, runtime: &Runtime) -> CliResult {
    let ran = match &args.command {
        ClusterCommand::Check {
            url,
            warehouse,
            calendar,
            tls,
            wait,
        } => {
            let tls = load_tls(tls.as_deref())?;
            let wait = std::time::Duration::from_secs(*wait);
            return runtime.block_on(check(
                url,
                warehouse,
                calendar.as_deref(),
                tls.as_ref(),
                wait,
            ));
        }
        ClusterCommand::Certs { out } => {
            kefu_cluster::tls::ClusterTls::generate(out)
                .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
            eprintln!(
                "kefu cluster: made {}/ca.pem, member.pem and member.key; copy the directory \
                 to every member and client",
                out.display()
            );
            return Ok(());
        }
        ClusterCommand::Scheduler {
            bind,
            executor_timeout,
            tls,
        } => {
            let tls = load_tls(tls.as_deref())?;
            let scheme = if tls.is_some() { " (TLS)" } else { "" };
            eprintln!("kefu cluster: scheduler on df://{bind}{scheme}");
            runtime.block_on(kefu_cluster::run_scheduler(
                *bind,
                std::time::Duration::from_secs(*executor_timeout),
                tls.as_ref(),
            ))
        }
        ClusterCommand::Executor {
            scheduler,
            host,
            port,
            grpc_port,
            concurrency,
            work_dir,
            heartbeat,
            warehouses,
            tls,
        } => {
            let tls = load_tls(tls.as_deref())?;
            kefu_cluster::scheduler_address(&format!("df://{scheduler}")).and_then(
                |(scheduler_host, scheduler_port)| {
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
                        warehouses: warehouses
                            .iter()
                            .map(kefu_cluster::confined::ServedWarehouse::at)
                            .collect(),
                        tls: tls.clone(),
                    };
                    eprintln!("kefu cluster: executor on {host}:{port} for df://{scheduler}");
                    runtime.block_on(kefu_cluster::run_executor(&settings))
                },
            )
        }
    };
    ran.map_err(|e| Failure::new(ErrorKind::Failure, e.to_string()))
}

/// Checks the cluster, again until it passes or `wait` has passed.
async fn check(
    url: &str,
    warehouse: &WarehouseArgs,
    calendar: Option<&std::path::Path>,
    tls: Option<&kefu_cluster::tls::ClusterTls>,
    wait: std::time::Duration,
) -> CliResult {
    let options = kefu_sql::EngineOptions {
        calendar: kefu_sql::udf::WorkingCalendar::load(calendar)?,
        ..Default::default()
    };
    let opened = crate::args::open_existing_warehouse(&warehouse.warehouse)?;
    let report = kefu_cluster::check::check_until_passed(url, &opened, &options, tls, wait).await?;
    print!("{report}");
    match report.failure() {
        None => Ok(()),
        Some(failure) => Err(Failure::new(ErrorKind::Failure, failure)),
    }
}
