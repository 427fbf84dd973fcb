//! Date expressions of job files, evaluated against the run date (the local day a run is
//! for: `--date`, else today on the warehouse's calendar), and reporting periods.
//!
//! An expression is a date or an anchor, then any number of shifts:
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

use chrono::{Datelike, Days, Months, NaiveDate};

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

/// Evaluates a date expression against the run date.
pub fn eval(expr: &str, run_date: NaiveDate) -> Result<NaiveDate, String> {
    let text = expr.trim();
    let bad = |why: &str| {
        format!(
            "'{expr}' is not a date expression ({why}; e.g. 2026-03-01, yesterday, month_start - 1 month)"
        )
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
}
