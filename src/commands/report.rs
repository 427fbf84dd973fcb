//! `kefu report`: the monthly (half-year, annual) customer-service report.

use std::time::Instant;

use kefu_model::ErrorKind;
use kefu_report::cli::ReportArgs;
use kefu_sql::QueryLibrary;
use kefu_storage::publish::Target;
use tokio::runtime::Runtime;

use crate::exit::{CliResult, Failure};
use crate::progress::BarProgress;

pub fn report_command(args: &ReportArgs, runtime: &Runtime) -> CliResult {
    let library = QueryLibrary::with_overrides_from(args.queries.as_deref())
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
    let engine = crate::args::open_engine_at(
        runtime,
        &args.warehouse.warehouse,
        &kefu_sql::EngineOptions {
            as_of: args.as_of.unwrap_or_default(),
            ..kefu_sql::EngineOptions::default()
        },
        &args.cluster,
    )?;
    let cwd = std::env::current_dir().map_err(|e| Failure::new(ErrorKind::Io, e.to_string()))?;
    let out = Target::parse_in(&args.out, &cwd)
        .map_err(|e| Failure::new(ErrorKind::Config, e.to_string()))?;
    let today = kefu_model::calendar::today(engine.time_zone());
    let request = kefu_report::ReportRequest {
        period: kefu_report::ReportPeriod::resolve(&args.month, today)?,
        region: args.region.clone(),
        lang: args.lang,
        targets: kefu_report::Targets::usual_with(&args.targets)?,
    };
    let progress = BarProgress::new(args.quiet);
    let started = Instant::now();
    let written = runtime.block_on(async {
        let report = kefu_report::build(&engine, &library, &request, &progress).await?;
        let written = report.publish(&out).await?;
        Ok::<_, kefu_report::ReportError>((report.summary.clone(), written))
    })?;
    println!("{}\n", written.0);
    println!(
        "report for {} written in {:.1} s: {} ({} files; tables as CSV under tables/)",
        request.label(),
        started.elapsed().as_secs_f64(),
        out.join("index.html"),
        written.1.len()
    );
    Ok(())
}
