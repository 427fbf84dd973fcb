//! The warehouse's calendar: its time zone, reporting periods, month arithmetic in a zone
//! (the tables' partitions), and the date expressions of job files and commands.
//!
//! Every crate that counts days, months or weeks takes them from here, so a month means
//! the same in a partition, a report, a schedule and a `local_*` SQL function.
//!
//! A date expression is a date or an anchor, then any number of shifts, evaluated against
//! a run date (the local day a run is for):
//!
//! ```text
//! 2026-03-01                      a fixed day
//! today | yesterday | tomorrow    the run date, the day before, the day after
//! week_start | month_start | quarter_start | half_start | year_start
//!                                 the first day of the run date's week (Monday), month,
//!                                 quarter, half year (1 Jan or 1 Jul) or year
//! month_start - 1 month           the previous month's first day
//! half_start - 1 half             the previous half year's first day
//! today - 7 days + 1 week         shifts: ± N day(s), week(s), month(s), quarter(s),
//!                                 half(s), year(s)
//! ```

use chrono::{Datelike, Days, Months, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;

/// The calendar of a warehouse created without one: Beijing time (events are stored in
/// UTC; months, days and hours are counted on this clock).
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Asia::Shanghai;

/// Today on `zone`'s calendar.
pub fn today(zone: Tz) -> NaiveDate {
    chrono::Utc::now().with_timezone(&zone).date_naive()
}

/// The first instant (µs UTC) of local `day` in `zone`. Midnight itself may not exist: on
/// days whose clocks jumped forward at midnight (Shanghai on 1940-06-01, São Paulo in
/// several years) the day starts when the clock, still on the offset before the jump,
/// reaches midnight, which is the instant of the jump.
pub fn day_start(zone: Tz, day: NaiveDate) -> i64 {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    if let Some(t) = zone.from_local_datetime(&midnight).earliest() {
        return t.timestamp_micros();
    }
    // Gaps last hours at most: three hours before, the earlier offset is in force.
    let before = zone
        .from_local_datetime(&(midnight - chrono::Duration::hours(3)))
        .earliest()
        .map_or(0, |t| i64::from(t.offset().fix().local_minus_utc()));
    (midnight.and_utc().timestamp() - before) * 1_000_000
}

/// The first instant (µs UTC) of the local month containing `micros` in `zone`, and of the
/// month after.
pub fn month_bounds(zone: Tz, micros: i64) -> (i64, i64) {
    let utc = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let local = zone.from_utc_datetime(&utc.naive_utc());
    let first = Period::Month.start(local.date_naive());
    let next = first
        .checked_add_months(Months::new(1))
        .unwrap_or(NaiveDate::MAX);
    (day_start(zone, first), day_start(zone, next))
}

/// A date expression that does not evaluate, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{expression}' is not a date expression ({why}; e.g. 2026-03-01, yesterday, month_start - 1 month)"
)]
pub struct BadDateExpression {
    pub expression: String,
    pub why: String,
}

/// A reporting period: how a step's date range is cut into units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Quarter,
    Half,
    Year,
}

impl Period {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "day" => Period::Day,
            "week" => Period::Week,
            "month" => Period::Month,
            "quarter" => Period::Quarter,
            "half" | "half_year" => Period::Half,
            "year" => Period::Year,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Half => "half",
            Period::Year => "year",
        }
    }

    /// The first day of the period holding `d`.
    pub fn start(self, d: NaiveDate) -> NaiveDate {
        let first_of = |month: u32| NaiveDate::from_ymd_opt(d.year(), month, 1).expect("valid");
        match self {
            Period::Day => d,
            Period::Week => d - Days::new(u64::from(d.weekday().num_days_from_monday())),
            Period::Month => first_of(d.month()),
            Period::Quarter => first_of((d.month() - 1) / 3 * 3 + 1),
            Period::Half => first_of(if d.month() <= 6 { 1 } else { 7 }),
            Period::Year => first_of(1),
        }
    }

    /// `d` moved by `n` periods (negative: back).
    pub fn shift(self, d: NaiveDate, n: i64) -> Option<NaiveDate> {
        let months = |m: i64| {
            let k = u32::try_from(m.unsigned_abs()).ok()?;
            if m >= 0 {
                d.checked_add_months(Months::new(k))
            } else {
                d.checked_sub_months(Months::new(k))
            }
        };
        let days = |m: i64| {
            let k = Days::new(m.unsigned_abs());
            if m >= 0 {
                d.checked_add_days(k)
            } else {
                d.checked_sub_days(k)
            }
        };
        match self {
            Period::Day => days(n),
            Period::Week => days(n.checked_mul(7)?),
            Period::Month => months(n),
            Period::Quarter => months(n.checked_mul(3)?),
            Period::Half => months(n.checked_mul(6)?),
            Period::Year => months(n.checked_mul(12)?),
        }
    }

    /// The label of the period starting at `start`: `2026-03-05`, `2026-W10`, `2026-03`,
    /// `2026-Q1`, `2026-H1`, `2026`.
    pub fn label(self, start: NaiveDate) -> String {
        match self {
            Period::Day => start.to_string(),
            Period::Week => {
                let w = start.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Period::Month => start.format("%Y-%m").to_string(),
            Period::Quarter => format!("{}-Q{}", start.year(), (start.month() - 1) / 3 + 1),
            Period::Half => format!(
                "{}-H{}",
                start.year(),
                if start.month() <= 6 { 1 } else { 2 }
            ),
            Period::Year => start.year().to_string(),
        }
    }

    /// The periods covering `[from, to)`, each clipped to the range: (label, from, to).
    pub fn split(self, from: NaiveDate, to: NaiveDate) -> Vec<(String, NaiveDate, NaiveDate)> {
        let mut out = Vec::new();
        let mut start = self.start(from);
        while start < to {
            let Some(next) = self.shift(start, 1) else {
                break;
            };
            out.push((self.label(start), start.max(from), next.min(to)));
            start = next;
        }
        out
    }
}

/// Periods over day numbers (days since 1970-01-01), as Arrow's Date32 holds them: the
/// arithmetic the SQL functions run per row, without building dates.
impl Period {
    /// The first day of the period holding `day` (days since 1970-01-01).
    pub fn start_day(self, day: i32) -> i32 {
        match self {
            Period::Day => day,
            // 1970-01-01 was a Thursday: Monday-based weekday index is (day + 3) mod 7.
            Period::Week => day - (day + 3).rem_euclid(7),
            Period::Month | Period::Quarter | Period::Half | Period::Year => {
                let (year, month) = year_month(day);
                let month = match self {
                    Period::Quarter => (month - 1) / 3 * 3 + 1,
                    Period::Half => (month - 1) / 6 * 6 + 1,
                    Period::Year => 1,
                    _ => month,
                };
                days_from_civil(year, month, 1)
            }
        }
    }

    /// `day` moved by `n` periods, `None` out of range. Months keep the day of month,
    /// clamped to the target month's length (31 March + 1 month = 30 April).
    pub fn shift_day(self, day: i32, n: i64) -> Option<i32> {
        let months = match self {
            Period::Day => return i32::try_from(i64::from(day).checked_add(n)?).ok(),
            Period::Week => {
                return i32::try_from(i64::from(day).checked_add(n.checked_mul(7)?)?).ok();
            }
            Period::Month => n,
            Period::Quarter => n.checked_mul(3)?,
            Period::Half => n.checked_mul(6)?,
            Period::Year => n.checked_mul(12)?,
        };
        let date = NaiveDate::from_num_days_from_ce_opt(day.checked_add(719_163)?)?;
        let count = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
        let moved = if months >= 0 {
            date.checked_add_months(count)?
        } else {
            date.checked_sub_months(count)?
        };
        Some(moved.num_days_from_ce() - 719_163)
    }

    /// Period boundaries crossed from `start` to `end` (negative when `end` is earlier).
    pub fn between_days(self, start: i32, end: i32) -> i64 {
        let months = |day| {
            let (y, m) = year_month(day);
            i64::from(y) * 12 + i64::from(m) - 1
        };
        match self {
            Period::Day => i64::from(end) - i64::from(start),
            Period::Week => (i64::from(end) - i64::from(start)) / 7,
            Period::Month => months(end) - months(start),
            Period::Quarter => months(end).div_euclid(3) - months(start).div_euclid(3),
            Period::Half => months(end).div_euclid(6) - months(start).div_euclid(6),
            Period::Year => i64::from(year_month(end).0) - i64::from(year_month(start).0),
        }
    }
}

/// Year and month (1–12) of a day number (days since 1970-01-01), proleptic Gregorian
/// (H. Hinnant's civil_from_days).
fn year_month(day: i32) -> (i32, u32) {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u32)
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil).
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

/// Evaluates a date expression against the run date.
pub fn eval(expr: &str, run_date: NaiveDate) -> Result<NaiveDate, BadDateExpression> {
    let text = expr.trim();
    let bad = |why: &str| BadDateExpression {
        expression: expr.to_string(),
        why: why.to_string(),
    };
    let (mut date, mut rest) = match text
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    {
        Some(d) => (d, &text[10..]),
        None => {
            let end = text.find(['+', '-']).unwrap_or(text.len());
            let base = match text[..end].trim() {
                "today" => run_date,
                "yesterday" => run_date.pred_opt().ok_or_else(|| bad("out of range"))?,
                "tomorrow" => run_date.succ_opt().ok_or_else(|| bad("out of range"))?,
                "week_start" => Period::Week.start(run_date),
                "month_start" | "this_month" => Period::Month.start(run_date),
                "last_month" => Period::Month
                    .shift(Period::Month.start(run_date), -1)
                    .ok_or_else(|| bad("out of range"))?,
                "quarter_start" => Period::Quarter.start(run_date),
                "half_start" => Period::Half.start(run_date),
                "year_start" => Period::Year.start(run_date),
                "" => return Err(bad("it is empty")),
                other => return Err(bad(&format!("unknown anchor '{other}'"))),
            };
            (base, &text[end..])
        }
    };
    loop {
        rest = rest.trim_start();
        let Some(sign) = rest.chars().next() else {
            return Ok(date);
        };
        let negative = match sign {
            '+' => false,
            '-' => true,
            _ => return Err(bad(&format!("expected + or - before '{rest}'"))),
        };
        rest = rest[1..].trim_start();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| bad("a shift needs a number, as in '- 1 month'"))?;
        rest = rest[digits..].trim_start();
        let unit_end = rest
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
            .unwrap_or(rest.len());
        let Some(period) = Period::parse(rest[..unit_end].trim_end_matches('s')) else {
            return Err(bad(&format!("unknown unit '{}'", &rest[..unit_end])));
        };
        rest = &rest[unit_end..];
        date = period
            .shift(date, if negative { -n } else { n })
            .ok_or_else(|| bad("out of range"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn expressions() {
        let run = d("2026-08-19"); // a Wednesday
        for (expr, want) in [
            ("today", "2026-08-19"),
            ("yesterday", "2026-08-18"),
            ("tomorrow", "2026-08-20"),
            ("week_start", "2026-08-17"),
            ("month_start", "2026-08-01"),
            ("month_start - 1 month", "2026-07-01"),
            ("month_start-12 months", "2025-08-01"),
            ("quarter_start", "2026-07-01"),
            ("half_start - 1 half", "2026-01-01"),
            ("year_start + 1 year - 1 day", "2026-12-31"),
            ("2026-03-31 + 1 month", "2026-04-30"),
            ("today - 2 weeks", "2026-08-05"),
        ] {
            assert_eq!(eval(expr, run), Ok(d(want)), "{expr}");
        }
        for bad in [
            "",
            "next tuesday",
            "today - month",
            "today * 2",
            "today - 1 fortnight",
        ] {
            assert!(eval(bad, run).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_split_a_range() {
        let units = Period::Month.split(d("2026-01-15"), d("2026-03-10"));
        assert_eq!(
            units,
            vec![
                ("2026-01".into(), d("2026-01-15"), d("2026-02-01")),
                ("2026-02".into(), d("2026-02-01"), d("2026-03-01")),
                ("2026-03".into(), d("2026-03-01"), d("2026-03-10")),
            ]
        );
        assert_eq!(Period::Week.label(d("2026-01-05")), "2026-W02");
        assert_eq!(
            Period::Half.split(d("2026-01-01"), d("2027-01-01")).len(),
            2
        );
        assert!(
            Period::Day
                .split(d("2026-01-02"), d("2026-01-02"))
                .is_empty()
        );
    }

    #[test]
    fn civil_dates_agree_with_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for day in -30_000..60_000 {
            let date = epoch + chrono::TimeDelta::days(i64::from(day));
            assert_eq!(year_month(day), (date.year(), date.month()), "{date}");
            assert_eq!(
                days_from_civil(date.year(), date.month(), date.day()),
                day,
                "{date}"
            );
            let monday =
                date - chrono::TimeDelta::days(i64::from(date.weekday().num_days_from_monday()));
            assert_eq!(
                Period::Week.start_day(day),
                (monday - epoch).num_days() as i32,
                "{date}"
            );
        }
    }

    #[test]
    fn half_years_start_in_january_and_july_and_shifts_clamp_the_day() {
        let day = |s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .unwrap()
                .num_days_from_ce()
                - 719_163
        };
        assert_eq!(Period::Half.start_day(day("2026-06-30")), day("2026-01-01"));
        assert_eq!(Period::Half.start_day(day("2026-07-01")), day("2026-07-01"));
        assert_eq!(Period::Half.start_day(day("2026-12-31")), day("2026-07-01"));
        assert_eq!(
            Period::Half.shift_day(day("2026-01-01"), -1),
            Some(day("2025-07-01"))
        );
        assert_eq!(
            Period::Half.shift_day(day("2025-08-31"), 1),
            Some(day("2026-02-28"))
        );
        assert_eq!(
            Period::Month.shift_day(day("2026-03-31"), 1),
            Some(day("2026-04-30"))
        );
        assert_eq!(
            Period::Week.shift_day(day("2026-01-05"), -52),
            Some(day("2025-01-06"))
        );
        assert_eq!(
            Period::Year.shift_day(day("2024-02-29"), 1),
            Some(day("2025-02-28"))
        );
        assert_eq!(
            Period::Half.between_days(day("2025-06-30"), day("2025-07-01")),
            1
        );
        assert_eq!(
            Period::Half.between_days(day("2026-12-31"), day("2025-01-01")),
            -3
        );
        assert_eq!(Period::Day.shift_day(i32::MAX, 1), None);
    }
}
