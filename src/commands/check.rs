//! `kefu check`: exports checked against the model without ingesting them.

use kefu_ingest::cli::CheckArgs;
use kefu_model::ErrorKind;
use kefu_model::number::thousands;
use tokio::runtime::Runtime;

use crate::exit::{CliResult, Failure};
use crate::progress::BarProgress;

pub fn check_command(args: &CheckArgs, runtime: &Runtime) -> CliResult {
    let profile = kefu_ingest::Profile::load_or_builtin(args.profile.as_deref(), args.table)?;
    let progress = BarProgress::new(args.quiet || args.json);
    let rows = args
        .rows
        .unwrap_or(if args.profile.is_some() { 5 } else { 0 });
    let report = kefu_ingest::check(
        runtime.handle(),
        &args.sources,
        &profile,
        args.examples,
        rows,
        &progress,
    )
    .map_err(|e| Failure::new(ErrorKind::Io, e))?;
    let zone = profile.time_zone;
    if args.json {
        println!(
            "{}",
            report.to_json(|batch| kefu_sql::output::preview_json(batch, zone))
        );
    } else {
        print!(
            "{}",
            report.render(args.all, |batch| kefu_sql::output::preview_text(
                batch, zone
            ))
        );
    }
    let totals = report.totals();
    let duplicated = report
        .sources
        .iter()
        .filter(|s| {
            s.outcome
                .as_ref()
                .is_ok_and(kefu_ingest::FileOutcome::too_many_duplicates)
        })
        .count();
    if totals.unreadable > 0 {
        Err(Failure::new(
            ErrorKind::Io,
            format!("{} sources could not be read", totals.unreadable),
        ))
    } else if duplicated > 0 {
        Err(Failure::new(
            ErrorKind::Rejects,
            format!(
                "{duplicated} sources repeat keys in more than {}% of their records: ingest \
                 would refuse them (--max-duplicate-ratio); is the key mapped from a column \
                 unique only with another?",
                kefu_ingest::ingest::DEFAULT_MAX_DUPLICATE_RATIO * 100.0
            ),
        ))
    } else if totals.rejected > 0 {
        Err(Failure::new(
            ErrorKind::Rejects,
            format!(
                "{} of {} records would be rejected",
                thousands(totals.rejected),
                thousands(totals.records)
            ),
        ))
    } else {
        Ok(())
    }
}
