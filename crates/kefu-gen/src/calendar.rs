//! The calendar that shapes volume: weekday and hour profiles, Chinese public holidays,
//! month-end and fee-season effects, and fast timestamp formatting.

use chrono::{Datelike, NaiveDate, Weekday};

/// Offices are in China: local time is UTC+8 all year (no daylight saving since 1991).
pub const LOCAL_OFFSET_S: i64 = 8 * 3600;
pub const DAY_S: i64 = 86_400;

/// Spring Festival (Chinese New Year's day) by year; the holiday runs from its eve for
/// about a week, and calls spike on the working days after it.
const SPRING_FESTIVAL: &[(i32, u32, u32)] = &[
    (2014, 1, 31),
    (2015, 2, 19),
    (2016, 2, 8),
    (2017, 1, 28),
    (2018, 2, 16),
    (2019, 2, 5),
    (2020, 1, 25),
    (2021, 2, 12),
    (2022, 2, 1),
    (2023, 1, 22),
    (2024, 2, 10),
    (2025, 1, 29),
    (2026, 2, 17),
    (2027, 2, 6),
    (2028, 1, 26),
    (2029, 2, 13),
    (2030, 2, 3),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    Workday,
    Weekend,
    Holiday,
}

/// What the simulation needs to know about one local calendar day.
#[derive(Debug, Clone, Copy)]
pub struct DayInfo {
    pub date: NaiveDate,
    pub kind: DayKind,
    /// Multiplier on contact (call/ticket) volume.
    pub contact_factor: f64,
    /// Multiplier on branch visits.
    pub visit_factor: f64,
    /// Multiplier on complaints (fee-collection seasons).
    pub complaint_factor: f64,
    /// UTC epoch seconds of local midnight.
    pub midnight_utc: i64,
}

fn spring_festival(year: i32) -> Option<NaiveDate> {
    SPRING_FESTIVAL
        .iter()
        .find(|(y, _, _)| *y == year)
        .and_then(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d))
}

/// Days from `holiday_start` to `date` if `date` is within `len` days of it.
fn within(date: NaiveDate, start: Option<NaiveDate>, len: i64) -> Option<i64> {
    let off = (date - start?).num_days();
    (0..len).contains(&off).then_some(off)
}

fn is_holiday(date: NaiveDate) -> bool {
    let y = date.year();
    let sf = spring_festival(y).map(|d| d - chrono::Days::new(1));
    within(date, sf, 8).is_some()
        || within(date, NaiveDate::from_ymd_opt(y, 10, 1), 7).is_some()
        || within(date, NaiveDate::from_ymd_opt(y, 5, 1), 5).is_some()
        || (date.month() == 1 && date.day() == 1)
}

/// Working days right after a long holiday carry the backlog: a spike.
fn after_long_holiday(date: NaiveDate) -> bool {
    let y = date.year();
    let sf_end = spring_festival(y).map(|d| d + chrono::Days::new(7));
    within(date, sf_end, 3).is_some()
        || within(date, NaiveDate::from_ymd_opt(y, 10, 8), 3).is_some()
}

pub fn day_info(date: NaiveDate) -> DayInfo {
    let weekday = date.weekday();
    let kind = if is_holiday(date) {
        DayKind::Holiday
    } else if matches!(weekday, Weekday::Sat | Weekday::Sun) {
        DayKind::Weekend
    } else {
        DayKind::Workday
    };
    let mut contact = match kind {
        DayKind::Workday => match weekday {
            Weekday::Mon => 1.12,
            Weekday::Fri => 0.95,
            _ => 1.0,
        },
        DayKind::Weekend => {
            if weekday == Weekday::Sat {
                0.62
            } else {
                0.52
            }
        }
        DayKind::Holiday => 0.55,
    };
    let mut visit = match kind {
        DayKind::Workday => 1.0,
        DayKind::Weekend => 0.55,
        DayKind::Holiday => 0.3,
    };
    if after_long_holiday(date) && kind == DayKind::Workday {
        contact *= 1.45;
        visit *= 1.3;
    }
    // Bills are issued and payments fall due at month end.
    let last_day = date
        .with_day(1)
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
        .map(|d| d.pred_opt().expect("valid").day())
        .unwrap_or(28);
    if date.day() + 1 >= last_day || date.day() == 1 {
        contact *= 1.25;
        visit *= 1.15;
    }
    // Annual fee collection in January and July raises complaints.
    let complaint = if matches!(date.month(), 1 | 7) {
        1.3
    } else {
        1.0
    };
    let epoch_day = date.signed_duration_since(epoch()).num_days();
    DayInfo {
        date,
        kind,
        contact_factor: contact,
        visit_factor: visit,
        complaint_factor: complaint,
        midnight_utc: epoch_day * DAY_S - LOCAL_OFFSET_S,
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")
}

/// Relative call volume per local hour on working days: peaks at 9–11 and 14–16.
pub const WORKDAY_CALL_HOURS: [f64; 24] = [
    0.3, 0.15, 0.1, 0.1, 0.1, 0.2, 0.6, 1.8, 4.5, 8.0, 8.6, 7.4, 4.6, 4.4, 7.6, 8.2, 7.0, 5.2, 3.6,
    3.2, 2.8, 2.1, 1.2, 0.6,
];
/// Weekends are flatter, with a late-morning hump.
pub const WEEKEND_CALL_HOURS: [f64; 24] = [
    0.4, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2, 2.8, 4.6, 5.6, 5.4, 4.4, 4.2, 4.8, 4.9, 4.6, 4.0, 3.6,
    3.4, 3.0, 2.3, 1.4, 0.8,
];
/// Branch arrivals (halls open 9:00–17:00): peaks at 10–11 and 14–15.
pub const BRANCH_HOURS: [f64; 24] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 9.0, 8.0, 4.5, 4.0, 7.5, 6.5, 4.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0,
];

/// Samples an hour from a 24-hour weight profile with one uniform draw.
#[derive(Debug, Clone)]
pub struct HourSampler {
    cumulative: [f64; 24],
    peak_share: f64,
    shares: [f64; 24],
}

impl HourSampler {
    pub fn new(weights: &[f64; 24]) -> Self {
        let total: f64 = weights.iter().sum();
        let mut cumulative = [0.0; 24];
        let mut shares = [0.0; 24];
        let mut acc = 0.0;
        for h in 0..24 {
            shares[h] = weights[h] / total;
            acc += shares[h];
            cumulative[h] = acc;
        }
        cumulative[23] = 1.0;
        let peak_share = shares.iter().copied().fold(0.0, f64::max);
        Self {
            cumulative,
            peak_share,
            shares,
        }
    }

    pub fn sample(&self, u: f64) -> usize {
        self.cumulative.partition_point(|&c| c <= u).min(23)
    }

    /// The hour's share of the day relative to the busiest hour (1.0 at the peak).
    pub fn intensity(&self, hour: usize) -> f64 {
        self.shares[hour] / self.peak_share
    }
}

/// Formats UTC epoch seconds quickly: the date part is computed once per day and cached.
#[derive(Debug)]
pub struct TimeFormatter {
    first_day: i64,
    dates: Vec<[u8; 10]>,
}

impl TimeFormatter {
    /// Caches the dates of `[first, last]` (epoch seconds); others are computed on demand.
    pub fn new(first: i64, last: i64) -> Self {
        let first_day = first.div_euclid(DAY_S);
        let last_day = last.div_euclid(DAY_S);
        let dates = (first_day..=last_day).map(iso_date).collect();
        Self { first_day, dates }
    }

    fn date(&self, day: i64) -> [u8; 10] {
        usize::try_from(day - self.first_day)
            .ok()
            .and_then(|i| self.dates.get(i).copied())
            .unwrap_or_else(|| iso_date(day))
    }

    /// `2026-01-05T01:23:45Z`
    pub fn rfc3339_utc(&self, t: i64, out: &mut [u8; 20]) {
        out[..10].copy_from_slice(&self.date(t.div_euclid(DAY_S)));
        out[10] = b'T';
        write_hms(
            t.rem_euclid(DAY_S),
            (&mut out[11..19]).try_into().expect("8"),
        );
        out[19] = b'Z';
    }

    /// Local (UTC+8) date and time of day in seconds.
    pub fn local_parts(&self, t: i64) -> (NaiveDate, i64) {
        let local = t + LOCAL_OFFSET_S;
        let day = local.div_euclid(DAY_S);
        let date = epoch() + chrono::Days::new(day.max(0) as u64);
        (date, local.rem_euclid(DAY_S))
    }
}

fn iso_date(day: i64) -> [u8; 10] {
    let date = if day >= 0 {
        epoch() + chrono::Days::new(day as u64)
    } else {
        epoch() - chrono::Days::new(day.unsigned_abs())
    };
    let mut out = [0u8; 10];
    let s = date.format("%Y-%m-%d").to_string();
    out.copy_from_slice(&s.as_bytes()[..10]);
    out
}

/// `HH:MM:SS` of a second of the day.
pub fn write_hms(sec_of_day: i64, out: &mut [u8; 8]) {
    let (h, m, s) = (sec_of_day / 3600, sec_of_day / 60 % 60, sec_of_day % 60);
    for (i, v) in [h, m, s].into_iter().enumerate() {
        out[i * 3] = b'0' + (v / 10) as u8;
        out[i * 3 + 1] = b'0' + (v % 10) as u8;
        if i < 2 {
            out[i * 3 + 2] = b':';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn holidays_and_weekends() {
        assert_eq!(day_info(d(2026, 10, 3)).kind, DayKind::Holiday);
        assert_eq!(day_info(d(2026, 2, 17)).kind, DayKind::Holiday);
        assert_eq!(day_info(d(2026, 3, 7)).kind, DayKind::Weekend);
        assert_eq!(day_info(d(2026, 3, 10)).kind, DayKind::Workday);
        // the working days after National Day carry a backlog
        assert!(day_info(d(2026, 10, 8)).contact_factor > 1.3);
        // month end
        assert!(day_info(d(2026, 3, 31)).contact_factor > day_info(d(2026, 3, 17)).contact_factor);
    }

    #[test]
    fn formats_rfc3339() {
        let f = TimeFormatter::new(0, 10 * DAY_S);
        let mut out = [0u8; 20];
        f.rfc3339_utc(1_767_225_600 + 3723, &mut out); // 2026-01-01T01:02:03Z
        assert_eq!(&out, b"2026-01-01T01:02:03Z");
        f.rfc3339_utc(5, &mut out);
        assert_eq!(&out, b"1970-01-01T00:00:05Z");
    }

    #[test]
    fn local_midnight_is_utc_minus_eight() {
        let info = day_info(d(2026, 1, 1));
        assert_eq!(info.midnight_utc, 1_767_225_600 - 8 * 3600);
    }

    #[test]
    fn hour_sampler_covers_profile() {
        let s = HourSampler::new(&WORKDAY_CALL_HOURS);
        assert_eq!(s.sample(0.0), 0);
        assert_eq!(s.sample(0.999_999), 23);
        assert!((s.intensity(10) - 1.0).abs() < 1e-9);
    }
}
