//! `kefu schedule`: every job of a directory on its cron `schedule`.

use kefu_jobs::cli::ScheduleArgs;
use kefu_model::ErrorKind;
use tokio::runtime::Runtime;

use crate::exit::{self, CliResult, Failure};
use crate::progress::BarProgress;

pub fn schedule_command(args: &ScheduleArgs, runtime: &Runtime) -> CliResult {
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
    let failures =
        kefu_jobs::schedule::run(runtime.handle(), &jobs, args.once, now, &progress, |line| {
            println!("{line}");
        });
    // The worst failure decides the exit code: the highest code.
    match failures.into_iter().max_by_key(|kind| exit::code(*kind)) {
        None => Ok(()),
        Some(kind) => Err(Failure::new(kind, "some scheduled runs failed")),
    }
}
