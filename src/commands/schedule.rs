//! `kefu schedule`: every job of a directory on its cron `schedule`.

use std::path::PathBuf;

use clap::Args;
use kefu_model::ErrorKind;

use crate::exit::{self, CliResult, Failure};
use crate::progress::BarProgress;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The directory of job files (*.toml); jobs with a `schedule` run on it.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Run what is due now (catching up once after downtime) and exit, instead of
    /// staying in the foreground.
    #[arg(long)]
    pub once: bool,
    /// Pretend the time is this (RFC 3339), for trying out a schedule.
    #[arg(long, hide = true, value_name = "TIME")]
    pub now: Option<chrono::DateTime<chrono::FixedOffset>>,
}

pub fn schedule_command(args: &ScheduleArgs) -> CliResult {
    let jobs = kefu_jobs::schedule::load_dir(&args.dir)?;
    let scheduled = jobs.iter().filter(|j| j.schedule.is_some()).count();
    for j in jobs.iter().filter(|j| j.schedule.is_none()) {
        eprintln!(
            "kefu: {} has no `schedule`; it only runs with `kefu run`",
            j.path.display()
        );
    }
    if scheduled == 0 {
        return Err(Failure::new(
            ErrorKind::Config,
            format!("no job in {} has a `schedule`", args.dir.display()),
        ));
    }
    println!(
        "scheduling {scheduled} jobs from {} (times on each job's warehouse calendar)",
        args.dir.display()
    );
    let progress = BarProgress::new(true);
    let now = args.now.map(|t| t.with_timezone(&chrono::Utc));
    let failures = kefu_jobs::schedule::run(&jobs, args.once, now, &progress, |line| {
        println!("{line}");
    });
    // The worst failure decides the exit code: the highest code.
    match failures.into_iter().max_by_key(|kind| exit::code(*kind)) {
        None => Ok(()),
        Some(kind) => Err(Failure::new(kind, "some scheduled runs failed")),
    }
}
