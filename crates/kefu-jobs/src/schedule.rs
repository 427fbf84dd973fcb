//! `kefu schedule DIR`: every job of a directory on its cron expression, in the
//! foreground, for teams without cron or Airflow.
//!
//! Each job remembers the last scheduled time it ran for. At each tick a job is due when
//! its latest scheduled time (at or before now) is newer than that: it then runs once,
//! for that time's local day, however many times were missed while the scheduler was
//! down (catch-up, never a burst of runs). A job seen for the first time is armed: it
//! waits for its next scheduled time.

use std::path::Path;

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use kefu_model::{Classify, ErrorKind};
use kefu_progress::Progress;

use crate::run::{RunOptions, RunReport};
use crate::state::StateDir;
use crate::{Job, JobError};

/// The job files (`*.toml`) of a directory, in name order, each validated.
pub fn load_dir(dir: &Path) -> Result<Vec<Job>, JobError> {
    let entries = std::fs::read_dir(dir).map_err(|e| JobError::io(dir.display(), e))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Job::load(p)).collect()
}

/// What one tick did for one job.
#[derive(Debug)]
pub enum Event {
    /// Seen for the first time: waits for `next`.
    Armed {
        job: String,
        next: Option<DateTime<Utc>>,
    },
    /// Ran for the scheduled time `due`; `missed` scheduled times were skipped over.
    Ran {
        job: String,
        due: DateTime<Utc>,
        missed: u64,
        result: Result<RunReport, JobError>,
    },
    /// Not due; runs next at `next`.
    Waiting {
        job: String,
        next: Option<DateTime<Utc>>,
    },
}

impl Event {
    /// The job the event is about.
    pub fn job(&self) -> &str {
        match self {
            Event::Armed { job, .. } | Event::Waiting { job, .. } | Event::Ran { job, .. } => job,
        }
    }

    /// The event as a line of the scheduler's log, stamped `now` on `zone`'s clock (the
    /// job's calendar); a job that is not due says so only when `waiting` asks.
    pub fn line(&self, now: DateTime<Utc>, zone: chrono_tz::Tz, waiting: bool) -> Option<String> {
        let stamp = now.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S");
        let next = |t: &Option<DateTime<Utc>>| {
            t.map_or_else(
                || "never".into(),
                |t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
            )
        };
        Some(match self {
            Event::Armed { job, next: n } => {
                format!("[{stamp}] {job}: armed, first run at {}", next(n))
            }
            Event::Waiting { job, next: n } if waiting => {
                format!("[{stamp}] {job}: not due, next run at {}", next(n))
            }
            Event::Waiting { .. } => return None,
            Event::Ran {
                job,
                due,
                missed,
                result,
            } => {
                let due = due.with_timezone(&zone).format("%Y-%m-%d %H:%M");
                let catch_up = if *missed > 0 {
                    format!(" (catching up: {missed} earlier scheduled runs were missed; ran once)")
                } else {
                    String::new()
                };
                match result {
                    Ok(report) => {
                        let mut line = format!(
                            "[{stamp}] {job}: ran for {due}{catch_up}: {:?}",
                            report.status
                        );
                        for summary in report.summary().lines() {
                            line.push_str("\n    ");
                            line.push_str(summary);
                        }
                        line
                    }
                    Err(e) => format!("[{stamp}] {job}: run for {due} failed: {e}"),
                }
            }
        })
    }

    /// The kind of failure of a run that did not succeed.
    pub fn failure(&self) -> Option<ErrorKind> {
        match self {
            Event::Ran {
                result: Ok(report), ..
            } => report.status.kind(),
            Event::Ran { result: Err(e), .. } => Some(e.kind()),
            _ => None,
        }
    }
}

/// Runs the scheduled jobs of `jobs` on their cron expressions, in the foreground; every
/// event is handed to `log` as a line (with `once`, jobs not due too). `now` pretends
/// the time is that (for trying out a schedule). With `once`, runs what is due now and
/// returns the kinds of the runs that failed; else runs until the process stops. Runs
/// go on `runtime`; call from a thread that may block.
pub fn run(
    runtime: &tokio::runtime::Handle,
    jobs: &[Job],
    once: bool,
    now: Option<DateTime<Utc>>,
    progress: &dyn Progress,
    mut log: impl FnMut(&str),
) -> Vec<ErrorKind> {
    let mut failures = Vec::new();
    loop {
        let at = now.unwrap_or_else(Utc::now);
        for event in tick(runtime, jobs, at, progress) {
            let zone = jobs
                .iter()
                .find(|j| j.name == event.job())
                .map_or(kefu_model::calendar::DEFAULT_TIME_ZONE, |j| {
                    j.calendar(runtime)
                });
            if let Some(line) = event.line(at, zone, once) {
                log(&line);
            }
            failures.extend(event.failure());
        }
        if once {
            return failures;
        }
        let now = Utc::now();
        let wake = jobs
            .iter()
            .filter_map(|j| next_fire(runtime, j, now))
            .min()
            .map_or(Duration::from_secs(60), |t| {
                (t - now).to_std().unwrap_or_default()
            });
        // Wake at least once a minute, so a changed clock is noticed.
        std::thread::sleep(wake.min(Duration::from_secs(60)) + Duration::from_millis(200));
    }
}

/// The next scheduled time of `job` after `now` (its calendar read over `runtime`).
pub fn next_fire(
    runtime: &tokio::runtime::Handle,
    job: &Job,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let schedule = job.schedule.as_ref()?;
    schedule
        .cron
        .find_next_occurrence(&now.with_timezone(&job.calendar(runtime)), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Runs every due job once (on `runtime`); returns what happened to each scheduled job.
pub fn tick(
    runtime: &tokio::runtime::Handle,
    jobs: &[Job],
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Vec<Event> {
    // Whole seconds: cron times have none, and a fraction would make the latest scheduled
    // time look later than the same time computed from the last run.
    let now = now.with_nanosecond(0).unwrap_or(now);
    let mut events = Vec::new();
    for job in jobs {
        let Some(schedule) = &job.schedule else {
            continue;
        };
        // The job's schedule runs on its warehouse's clock.
        let zone = job.calendar(runtime);
        let local = |t: DateTime<Utc>| t.with_timezone(&zone);
        let state_dir = StateDir::new(&job.state_dir);
        let mut state = match state_dir.load() {
            Ok(s) => s,
            Err(e) => {
                events.push(Event::Ran {
                    job: job.name.clone(),
                    due: now,
                    missed: 0,
                    result: Err(e),
                });
                continue;
            }
        };
        let latest = schedule
            .cron
            .find_previous_occurrence(&local(now), true)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let Some(last_fire) = state.last_fire else {
            state.last_fire = Some(latest.unwrap_or(now));
            if let Err(e) = state_dir.save(&state) {
                // Not remembered: the job is armed again at the next tick, never run.
                tracing::warn!(job = %job.name, error = %e, "cannot arm the job");
            }
            events.push(Event::Armed {
                job: job.name.clone(),
                next: next_fire(runtime, job, now),
            });
            continue;
        };
        let Some(due) = latest.filter(|t| *t > last_fire) else {
            events.push(Event::Waiting {
                job: job.name.clone(),
                next: next_fire(runtime, job, now),
            });
            continue;
        };
        // Scheduled times between the last run and `due`, all served by this one run.
        let mut missed = 0;
        let mut t = local(last_fire);
        while missed < 10_000 {
            match schedule.cron.find_next_occurrence(&t, false) {
                Ok(n) if n.with_timezone(&Utc) < due => {
                    missed += 1;
                    t = n;
                }
                _ => break,
            }
        }
        let options = RunOptions {
            run_date: Some(local(due).date_naive()),
            ..RunOptions::default()
        };
        let result = crate::run::run(runtime, job, &options, progress);
        if !matches!(result, Err(JobError::Locked { .. })) {
            // Reload: the run saved its own state meanwhile.
            let recorded = state_dir.load().and_then(|mut after| {
                after.last_fire = Some(due);
                state_dir.save(&after)
            });
            if let Err(e) = recorded {
                // Not remembered: the job runs again at the next tick.
                tracing::warn!(job = %job.name, error = %e, "cannot record the run's time");
            }
        }
        events.push(Event::Ran {
            job: job.name.clone(),
            due,
            missed,
            result,
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_tick_a_fraction_of_a_second_late_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        let text = "name = \"m\"\nwarehouse = \"wh\"\nschedule = \"* * * * *\"\n[[step]]\ntype = \"query\"\nsql = \"SELECT 1 AS one\"\n[[step.output]]\npath = \"one.csv\"\n";
        std::fs::write(&path, text).unwrap();
        std::fs::create_dir_all(dir.path().join("wh")).unwrap();
        let jobs = vec![Job::load(&path).unwrap()];
        let progress = kefu_progress::NoProgress;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let runtime = runtime.handle();
        let armed = tick(runtime, &jobs, at("2026-11-23T08:57:21.4+08:00"), &progress);
        assert!(matches!(armed[..], [Event::Armed { .. }]), "{armed:?}");
        let ran = tick(runtime, &jobs, at("2026-11-23T08:58:00.2+08:00"), &progress);
        match &ran[..] {
            [
                Event::Ran {
                    due,
                    missed,
                    result,
                    ..
                },
            ] => {
                assert_eq!(*due, at("2026-11-23T08:58:00+08:00"));
                assert_eq!(*missed, 0);
                assert!(result.is_ok(), "{result:?}");
            }
            other => panic!("{other:?}"),
        }
        let again = tick(runtime, &jobs, at("2026-11-23T08:58:30+08:00"), &progress);
        assert!(matches!(again[..], [Event::Waiting { .. }]), "{again:?}");
    }
}
