//! `kefu demo`: the tour, from generated exports to the monthly report.

use std::time::Instant;

use kefu_jobs::cli::DemoArgs;
use kefu_model::ErrorKind;
use tokio::runtime::Runtime;

use crate::exit::{CliResult, Failure};
use crate::progress::BarProgress;

/// The example job, run by the demo as it is documented.
pub fn demo_command(args: &DemoArgs, runtime: &Runtime) -> CliResult {
    let started = Instant::now();
    let options = kefu_jobs::demo::DemoOptions {
        dir: std::path::absolute(&args.dir).map_err(|e| Failure::new(ErrorKind::Io, e))?,
        customers: args.customers,
        days: args.days,
    };
    let progress = BarProgress::new(args.quiet);
    let demo = kefu_jobs::demo::run(runtime.handle(), &options, &progress, &mut |line| {
        println!("{line}")
    })?;
    demo.run.outcome()?;
    println!("4/4 done in {:.0} s.\n", started.elapsed().as_secs_f64());
    println!("Open the monthly report:  {}", demo.report_page);
    println!("KPI tables:               {}", demo.kpi.display());
    println!("\nTry some SQL on the warehouse:");
    let w = demo.warehouse.display();
    let kefu = command_name();
    println!(
        "  {kefu} sql --warehouse {w} -e \"SELECT region, count(*) AS offered, round(CAST(count(answered_at) AS DOUBLE) / count(*), 4) AS answer_rate FROM calls WHERE direction = 'inbound' AND queued_at IS NOT NULL GROUP BY region ORDER BY region\""
    );
    println!(
        "  {kefu} sql --warehouse {w} -e \"SELECT local_trunc('month', created_at) AS month, count(*) AS complaints FROM tickets WHERE kind = 'complaint' GROUP BY 1 ORDER BY 1\""
    );
    println!(
        "  {kefu} sql --warehouse {w} -e \"SELECT branch_id, round(avg(date_diff('second', arrived_at, called_at)) / 60, 1) AS avg_wait_min FROM visits WHERE called_at IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 5\""
    );
    let named = kefu_sql::QueryLibrary::embedded().map_or(0, |l| l.iter().count());
    println!("\nOr a named KPI query (kefu query --list shows all {named}):");
    println!(
        "  {kefu} query churn_at_risk --warehouse {w} --param as_of={} --param top=10",
        demo.run_date
    );
    Ok(())
}

/// How to call this binary in printed examples: `kefu` when that is what PATH finds,
/// else its full path (e.g. after `cargo run`).
fn command_name() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "kefu".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::canonicalize(dir.join("kefu")).is_ok_and(|p| p == exe))
    });
    if on_path {
        "kefu".into()
    } else {
        exe.display().to_string()
    }
}
