//! Parsers for the values office exports contain: local timestamps in many layouts (also
//! split into date and time columns), durations as seconds or `H:MM:SS`, enum codes or
//! Chinese labels, booleans, and money with thousands separators.

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use kefu_model::vocab::trim;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    UnparseableTimestamp,
    /// A date outside [`PLAUSIBLE_FROM`, `PLAUSIBLE_UNTIL`): a placeholder (`1900-01-01`,
    /// `9999-12-31`) or a typo, not an event.
    ImplausibleTimestamp,
    NegativeDuration,
    BadNumber,
    BadBoolean,
}

/// Date, time and date-time layouts tried in order (chrono `strftime` syntax). Numeric
/// fields accept one or two digits, so `2026/1/5 9:00:01` matches `%Y/%m/%d %H:%M:%S`.
pub const DEFAULT_DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%Y%m%d%H%M%S",
    "%Y-%m-%dT%H:%M:%S",
];
pub const DEFAULT_DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%Y%m%d"];
pub const DEFAULT_TIME_FORMATS: &[&str] = &["%H:%M:%S", "%H:%M", "%I:%M:%S %p"];

/// The first instant (µs UTC) a timestamp of an export may hold: 1950-01-01T00:00:00Z.
/// Customers opened accounts decades ago; nothing in these records is older.
pub const PLAUSIBLE_FROM: i64 = -631_152_000_000_000;
/// The end (exclusive, µs UTC) of plausible timestamps: 2100-01-01T00:00:00Z.
pub const PLAUSIBLE_UNTIL: i64 = 4_102_444_800_000_000;

/// `micros` if it is a plausible time of an event or a record, else why not.
fn plausible(micros: i64) -> Result<i64, ValueError> {
    if (PLAUSIBLE_FROM..PLAUSIBLE_UNTIL).contains(&micros) {
        Ok(micros)
    } else {
        Err(ValueError::ImplausibleTimestamp)
    }
}

/// Parses timestamps in a set of layouts, interpreting local times in one time zone.
/// Values that carry an offset (RFC 3339, `…Z`) are taken as they are.
#[derive(Debug, Clone)]
pub struct TimestampParser {
    zone: Tz,
    datetimes: Vec<Vec<Item<'static>>>,
    dates: Vec<Vec<Item<'static>>>,
    times: Vec<Vec<Item<'static>>>,
    /// Layouts read without chrono's general parser (they are among the formats).
    fast: FastLayouts,
    /// The UTC offset (seconds) of the last local date seen, when it holds all day.
    day_offset: std::cell::Cell<Option<(NaiveDate, Option<i64>)>>,
}

/// The everyday layouts, parsed by hand when the profile lists them: numeric
/// `Y-M-D`/`Y/M/D` dates and `H:M:S` times (one or two digits, as chrono's `%m` `%H`).
#[derive(Debug, Clone, Copy, Default)]
struct FastLayouts {
    dash_date: bool,
    slash_date: bool,
    time: bool,
    dash_datetime: bool,
    slash_datetime: bool,
}

impl FastLayouts {
    fn of(datetimes: &[String], dates: &[String], times: &[String]) -> Self {
        let has = |list: &[String], f: &str| list.iter().any(|x| x == f);
        FastLayouts {
            dash_date: has(dates, "%Y-%m-%d"),
            slash_date: has(dates, "%Y/%m/%d"),
            time: has(times, "%H:%M:%S"),
            dash_datetime: has(datetimes, "%Y-%m-%d %H:%M:%S"),
            slash_datetime: has(datetimes, "%Y/%m/%d %H:%M:%S"),
        }
    }
}

/// ASCII digits as a number (none: zero).
fn ascii_number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

/// `YYYY-MM-DD?HH:MM:SS` in exactly 19 bytes, `?` being `between`, read at fixed
/// positions without the general parser.
fn fixed_datetime(b: &[u8], between: u8) -> Option<NaiveDateTime> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != between
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |from: usize, to: usize| ascii_number(&b[from..to]);
    NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?.and_hms_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
    )
}

/// `2026-01-05`, `2026/1/5`: a four-digit year, then month and day. Read byte by byte:
/// `str::split` set up a searcher on every call (4.5% of a GBK export's ingest, whose
/// Excel dates `2026/1/1` miss the fixed-position reader).
fn fast_date(s: &str, sep: u8) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() < 8 || b[4] != sep {
        return None;
    }
    let (month, day) = split_at_byte(&b[5..], sep)?;
    NaiveDate::from_ymd_opt(
        ascii_number(&b[..4])? as i32,
        short_number(month)?,
        short_number(day)?,
    )
}

/// [`fast_date`] with the separator its fifth byte names, where the profile lists that
/// layout (`dash`: `%Y-%m-%d`, `slash`: `%Y/%m/%d`).
fn dash_or_slash_date(s: &str, dash: bool, slash: bool) -> Option<NaiveDate> {
    match s.as_bytes().get(4) {
        Some(b'-') if dash => fast_date(s, b'-'),
        Some(b'/') if slash => fast_date(s, b'/'),
        _ => None,
    }
}

/// `9:05:01`, `09:05:01`.
fn fast_time(s: &str) -> Option<NaiveTime> {
    let (hour, rest) = split_at_byte(s.as_bytes(), b':')?;
    let (minute, second) = split_at_byte(rest, b':')?;
    NaiveTime::from_hms_opt(
        short_number(hour)?,
        short_number(minute)?,
        short_number(second)?,
    )
}

/// The bytes before and after the first `sep`.
fn split_at_byte(b: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = b.iter().position(|&c| c == sep)?;
    Some((&b[..at], &b[at + 1..]))
}

/// One or two ASCII digits as a number.
fn short_number(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 2 {
        return None;
    }
    ascii_number(b)
}

fn compile(formats: &[String]) -> Result<Vec<Vec<Item<'static>>>, String> {
    formats
        .iter()
        .map(|f| {
            StrftimeItems::new(f)
                .parse_to_owned()
                .map_err(|e| format!("invalid timestamp format '{f}': {e}"))
        })
        .collect()
}

impl TimestampParser {
    pub fn new(
        zone: Tz,
        datetimes: &[String],
        dates: &[String],
        times: &[String],
    ) -> Result<Self, String> {
        Ok(TimestampParser {
            zone,
            datetimes: compile(datetimes)?,
            dates: compile(dates)?,
            times: compile(times)?,
            fast: FastLayouts::of(datetimes, dates, times),
            day_offset: std::cell::Cell::new(None),
        })
    }

    pub fn with_defaults(zone: Tz) -> Self {
        let owned = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Self::new(
            zone,
            &owned(DEFAULT_DATETIME_FORMATS),
            &owned(DEFAULT_DATE_FORMATS),
            &owned(DEFAULT_TIME_FORMATS),
        )
        .expect("default formats are valid")
    }

    /// A whole timestamp → microseconds since the epoch (UTC), between 1950 and 2100.
    pub fn parse(&self, value: &str) -> Result<i64, ValueError> {
        self.parse_any(value).and_then(plausible)
    }

    fn parse_any(&self, value: &str) -> Result<i64, ValueError> {
        let value = trim(value);
        if let Some(micros) = parse_utc_seconds(value) {
            return Ok(micros);
        }
        // `2026-01-05 09:05:01`, the common export form.
        if self.fast.dash_datetime
            && let Some(naive) = fixed_datetime(value.as_bytes(), b' ')
        {
            return self.localise(naive);
        }
        if let Some((date, time)) = value.split_once(' ')
            && let Some(date) =
                dash_or_slash_date(date, self.fast.dash_datetime, self.fast.slash_datetime)
            && let Some(time) = fast_time(time)
        {
            return self.localise(date.and_time(time));
        }
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(value) {
            return Ok(dt.timestamp_micros());
        }
        for items in &self.datetimes {
            let mut parsed = Parsed::new();
            if chrono::format::parse(&mut parsed, value, items.iter()).is_ok()
                && let Ok(naive) = parsed.to_naive_datetime_with_offset(0)
            {
                return self.localise(naive);
            }
        }
        Err(ValueError::UnparseableTimestamp)
    }

    /// A timestamp split over a date and a time column, between 1950 and 2100.
    pub fn parse_split(&self, date: &str, time: &str) -> Result<i64, ValueError> {
        self.parse_split_any(date, time).and_then(plausible)
    }

    fn parse_split_any(&self, date: &str, time: &str) -> Result<i64, ValueError> {
        let (date, time) = (trim(date), trim(time));
        let date = match dash_or_slash_date(date, self.fast.dash_date, self.fast.slash_date) {
            Some(d) => d,
            None => parse_with(&self.dates, date, |p| p.to_naive_date())
                .ok_or(ValueError::UnparseableTimestamp)?,
        };
        let time = if time.is_empty() {
            NaiveTime::MIN
        } else {
            match self.fast.time.then(|| fast_time(time)).flatten() {
                Some(t) => t,
                None => parse_with(&self.times, time, |p| p.to_naive_time())
                    .ok_or(ValueError::UnparseableTimestamp)?,
            }
        };
        self.localise(date.and_time(time))
    }

    /// Local time → UTC. In an ambiguous hour (clocks turned back) the earlier instant is
    /// taken; a time in a gap (clocks turned forward) is read with the offset in force before
    /// the gap, as PostgreSQL and Python do (02:30 on a spring-forward night is 03:30).
    fn localise(&self, naive: NaiveDateTime) -> Result<i64, ValueError> {
        use chrono::Offset;
        // Most timestamps of an export fall on a few days: the zone is asked once a day,
        // and a day whose offset changes (a DST switch) takes the exact path below.
        let date = naive.date();
        let offset = match self.day_offset.get() {
            Some((d, offset)) if d == date => offset,
            _ => {
                let at = |h, m, s| {
                    self.zone
                        .from_local_datetime(&date.and_hms_opt(h, m, s).expect("valid time"))
                        .single()
                        .map(|t| i64::from(t.offset().fix().local_minus_utc()))
                };
                let offset = match (at(0, 0, 0), at(23, 59, 59)) {
                    (Some(a), Some(b)) if a == b => Some(a),
                    _ => None,
                };
                self.day_offset.set(Some((date, offset)));
                offset
            }
        };
        if let Some(offset) = offset {
            let utc = naive.and_utc();
            return Ok(
                (utc.timestamp() - offset) * 1_000_000 + i64::from(utc.timestamp_subsec_micros())
            );
        }
        if let Some(dt) = self.zone.from_local_datetime(&naive).earliest() {
            return Ok(dt.timestamp_micros());
        }
        let before = self
            .zone
            .from_local_datetime(&(naive - chrono::Duration::hours(3)))
            .earliest()
            .ok_or(ValueError::UnparseableTimestamp)?;
        let offset = i64::from(before.offset().fix().local_minus_utc());
        Ok((naive.and_utc().timestamp() - offset) * 1_000_000
            + i64::from(naive.and_utc().timestamp_subsec_micros()))
    }
}

fn parse_with<T>(
    formats: &[Vec<Item<'static>>],
    value: &str,
    finish: impl Fn(&Parsed) -> chrono::ParseResult<T>,
) -> Option<T> {
    formats.iter().find_map(|items| {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, value, items.iter()).ok()?;
        finish(&parsed).ok()
    })
}

/// Seconds from `104`, `104.0`, `1:44` or `0:01:44`. Negative values are refused.
pub fn parse_duration(value: &str) -> Result<i32, ValueError> {
    let v = trim(value);
    if v.starts_with('-') {
        return Err(ValueError::NegativeDuration);
    }
    let seconds: i64 = if let Some(seconds) = clock_seconds(v.as_bytes()) {
        seconds
    } else if v.contains(':') {
        let mut total: i64 = 0;
        for (i, p) in v.split(':').enumerate() {
            if i == 3 {
                return Err(ValueError::BadNumber);
            }
            let n: i64 = p.parse().map_err(|_| ValueError::BadNumber)?;
            total = total * 60 + n;
        }
        total
    } else if let Ok(n) = v.parse::<i64>() {
        n
    } else {
        let n: f64 = v.parse().map_err(|_| ValueError::BadNumber)?;
        if !n.is_finite() || n.fract() != 0.0 {
            return Err(ValueError::BadNumber);
        }
        n as i64
    };
    i32::try_from(seconds).map_err(|_| ValueError::BadNumber)
}

/// `1:44`, `0:01:44`: two or three groups of ASCII digits, read byte by byte (what any
/// other text means is left to the general path).
fn clock_seconds(b: &[u8]) -> Option<i64> {
    let (mut total, mut group, mut groups, mut digits) = (0i64, 0i64, 1, 0);
    for &c in b {
        match c {
            b'0'..=b'9' if digits < 9 => {
                group = group * 10 + i64::from(c - b'0');
                digits += 1;
            }
            b':' if digits > 0 && groups < 3 => {
                total = (total + group) * 60;
                (group, digits, groups) = (0, 0, groups + 1);
            }
            _ => return None,
        }
    }
    (groups > 1 && digits > 0).then_some(total + group)
}

pub fn parse_int(value: &str) -> Result<i32, ValueError> {
    let v = trim(value);
    v.parse::<i32>().or_else(|_| match v.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < i32::MAX as f64 => Ok(f as i32),
        _ => Err(ValueError::BadNumber),
    })
}

pub fn parse_bool(value: &str) -> Result<bool, ValueError> {
    match trim(value) {
        "true" | "TRUE" | "True" | "1" | "Y" | "y" | "yes" | "YES" | "是" => Ok(true),
        "false" | "FALSE" | "False" | "0" | "N" | "n" | "no" | "NO" | "否" => Ok(false),
        _ => Err(ValueError::BadBoolean),
    }
}

/// The canonical layout `YYYY-MM-DDTHH:MM:SSZ` (what kefu writes and most systems export),
/// without the general parser.
fn parse_utc_seconds(value: &str) -> Option<i64> {
    let (time, zone) = value.as_bytes().split_at_checked(19)?;
    if zone != b"Z" {
        return None;
    }
    fixed_datetime(time, b'T').map(|t| t.and_utc().timestamp_micros())
}

/// RMB amounts with two decimals, in fen: `1,234.5` → 123450; `¥80` → 8000.
pub fn parse_money(value: &str) -> Result<i128, ValueError> {
    let cleaned: String = value
        .trim()
        .trim_start_matches(['¥', '￥'])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let (whole, frac) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    if frac.len() > 2 || whole.is_empty() && frac.is_empty() {
        return Err(ValueError::BadNumber);
    }
    let negative = whole.starts_with('-');
    let whole: i128 = whole.trim_start_matches('-').parse::<i128>().or_else(|_| {
        if whole.trim_start_matches('-').is_empty() {
            Ok(0)
        } else {
            Err(ValueError::BadNumber)
        }
    })?;
    let frac: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}")
            .parse()
            .map_err(|_| ValueError::BadNumber)?
    };
    let fen = whole * 100 + frac;
    Ok(if negative { -fen } else { fen })
}

/// The local calendar date of `micros` in `zone` (for partitioning and reports).
pub fn local_date(micros: i64, zone: Tz) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_micros(micros).map(|dt| dt.with_timezone(&zone).date_naive())
}

#[cfg(test)]
mod tests {
    /// Placeholders and typos of year are refused: one `1900-01-01` in an export filed
    /// its rows under a 1940 month (Shanghai's DST gap), and years 1–9999 made thousands
    /// of partitions.
    #[test]
    fn implausible_years_are_refused() {
        let p = TimestampParser::with_defaults(chrono_tz::Asia::Shanghai);
        for bad in [
            "1900-01-01 00:00:00",
            "0001-01-01 00:00:00",
            "1949-12-31 23:00:00",
            "2100-01-01 08:00:00",
            "9999-12-31 23:59:59",
            "1900-01-01T00:00:00Z",
        ] {
            assert_eq!(p.parse(bad), Err(ValueError::ImplausibleTimestamp), "{bad}");
        }
        assert_eq!(
            p.parse_split("1900-01-01", ""),
            Err(ValueError::ImplausibleTimestamp)
        );
        for good in [
            "1950-01-01 08:00:00",
            "1985-06-30 09:00:00",
            "2099-12-31 23:59:59",
        ] {
            assert!(p.parse(good).is_ok(), "{good}");
        }
    }

    use super::*;

    fn shanghai() -> TimestampParser {
        TimestampParser::with_defaults(chrono_tz::Asia::Shanghai)
    }

    const JAN1_0000_UTC: i64 = 1_767_225_600_000_000;

    #[test]
    fn local_times_become_utc() {
        let p = shanghai();
        // 08:00 in Shanghai is midnight UTC.
        assert_eq!(p.parse("2026-01-01 08:00:00"), Ok(JAN1_0000_UTC));
        assert_eq!(p.parse("2026/1/1 8:00:00"), Ok(JAN1_0000_UTC));
        assert_eq!(p.parse_split("2026/1/1", "8:00:00"), Ok(JAN1_0000_UTC));
        assert_eq!(p.parse("2026-01-01T00:00:00Z"), Ok(JAN1_0000_UTC));
        assert_eq!(p.parse("2026-01-01T08:00:00+08:00"), Ok(JAN1_0000_UTC));
        assert_eq!(
            p.parse("2025-12-31T23:59:59.5Z"),
            Ok(JAN1_0000_UTC - 500_000)
        );
        assert_eq!(p.parse("01/01/2026 08:00:00 AM"), Ok(JAN1_0000_UTC));
    }

    #[test]
    fn garbage_is_refused() {
        let p = shanghai();
        for bad in [
            "########",
            "2026-13-45 25:61:00",
            "2026-02-30 08:00:00",
            "2026-01-01 24:00:00",
            "2026-01-0a 08:00:00",
            "2026-01-01 08:00:0-",
            "２０２6-01-01 08:00",
            "31/02/2026 9:00",
            "昨天下午",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-0aT00:00:00Z",
            "",
        ] {
            assert_eq!(p.parse(bad), Err(ValueError::UnparseableTimestamp), "{bad}");
        }
        assert_eq!(
            p.parse_split("2026/13/45", "9:00:00"),
            Err(ValueError::UnparseableTimestamp)
        );
        assert_eq!(
            p.parse_split("31.02.2026", "9:00:00"),
            Err(ValueError::UnparseableTimestamp)
        );
    }

    #[test]
    fn daylight_saving_gaps_read_with_the_offset_before_them() {
        let p = TimestampParser::with_defaults(chrono_tz::America::New_York);
        // 02:30 EST (UTC−5) = 07:30 UTC, which is 03:30 EDT.
        let gap = p.parse("2018-03-11 02:30:00").unwrap();
        assert_eq!(gap, p.parse("2018-03-11 03:30:00").unwrap());
        assert_eq!(gap, 1_520_753_400_000_000);
        // In the repeated hour in November the first (EDT) instant is taken.
        assert_eq!(
            p.parse("2018-11-04 01:30:00").unwrap(),
            1_541_309_400_000_000
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("104"), Ok(104));
        assert_eq!(parse_duration("0:01:44"), Ok(104));
        assert_eq!(parse_duration("1:44"), Ok(104));
        assert_eq!(parse_duration("0:00:00"), Ok(0));
        assert_eq!(parse_duration("-3"), Err(ValueError::NegativeDuration));
        assert_eq!(
            parse_duration("-0:00:07"),
            Err(ValueError::NegativeDuration)
        );
        assert_eq!(parse_duration("abc"), Err(ValueError::BadNumber));
    }

    /// The hand-read layouts against chrono's parser and a `split`-based reading, over
    /// every combination of a few pieces (padded, unpadded, empty, out of range, too
    /// long, stray signs and separators): where the fast path answers, it answers as they
    /// do, and it answers every well-formed value.
    #[test]
    fn hand_read_layouts_agree_with_the_general_parsers() {
        let numbers = [
            "", "0", "00", "1", "01", "9", "09", "12", "13", "23", "24", "29", "31", "32", "59",
            "60", "001", "+1", "a", " 1",
        ];
        let mut answered = 0;
        for sep in [b'-', b'/'] {
            let layout = format!("%Y{0}%m{0}%d", sep as char);
            for year in ["2026", "1999", "226", "20266", "+2026", "2o26"] {
                for m in numbers {
                    for d in numbers {
                        let text = format!("{year}{0}{m}{0}{d}", sep as char);
                        let general = NaiveDate::parse_from_str(&text, &layout).ok();
                        let fast = fast_date(&text, sep);
                        if fast.is_some() {
                            assert_eq!(fast, general, "{text}");
                            answered += 1;
                        }
                        let plain = |s: &str| s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
                        if general.is_some() && year.len() == 4 && plain(m) && plain(d) {
                            assert!(fast.is_some(), "{text} is read by hand");
                        }
                    }
                }
            }
        }
        assert!(answered > 150, "{answered}");
        let by_split = |text: &str| {
            text.split(':')
                .map(|p| p.parse::<i64>().ok())
                .try_fold(0i64, |total, p| Some(total * 60 + p?))
        };
        for h in numbers {
            for m in numbers {
                for s in numbers {
                    let text = format!("{h}:{m}:{s}");
                    let general = NaiveTime::parse_from_str(&text, "%H:%M:%S").ok();
                    if let Some(fast) = fast_time(&text) {
                        assert_eq!(Some(fast), general, "{text}");
                    }
                    let fast = clock_seconds(text.as_bytes());
                    if fast.is_some() {
                        assert_eq!(fast, by_split(&text), "{text}");
                    } else if [h, m, s]
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    {
                        panic!("{text} is read by hand");
                    }
                }
                let text = format!("{h}:{m}");
                if let Some(fast) = clock_seconds(text.as_bytes()) {
                    assert_eq!(Some(fast), by_split(&text), "{text}");
                }
            }
        }
        for not_a_clock in [
            "104", "", ":", "1:", ":1", "1::2", "1:2:3:4", "1:2.5", "1:-2",
        ] {
            assert_eq!(clock_seconds(not_a_clock.as_bytes()), None, "{not_a_clock}");
        }
    }

    #[test]
    fn money_and_booleans() {
        assert_eq!(parse_money("1,234.5"), Ok(123_450));
        assert_eq!(parse_money("¥80"), Ok(8_000));
        assert_eq!(parse_money("0.07"), Ok(7));
        assert_eq!(parse_money("1.234"), Err(ValueError::BadNumber));
        assert_eq!(parse_bool("是"), Ok(true));
        assert_eq!(parse_bool("false"), Ok(false));
        assert_eq!(parse_bool("maybe"), Err(ValueError::BadBoolean));
    }
}
