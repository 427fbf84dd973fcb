//! Deliveries: which office's export for which day has arrived, when and how big, against
//! the schedule the head office expects — by default one archive per region and day, due
//! at 06:00 the morning after on the warehouse's calendar.
//!
//! What arrived is read from the ledger: every source an ingest batch took (batches taken
//! back by a revert do not count), named as it was given. The file name tells the region
//! and the day it reports (a pattern with the groups `region` and `day`, and `to` for a
//! re-export covering several days); its arrival is the file's modification time as the
//! ingest saw it (when the office put it there), or the batch's commit time where the
//! store did not tell. A delivery is missing when nothing for its region and day has
//! arrived by its due time, late when the first file came after it, and its volume is
//! flagged when its records are far from the region's usual level: the median of the same
//! weekday in the weeks before (a Monday against Mondays: service volumes follow the week).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use kefu_storage::OperationRecord;
use kefu_storage::ledger::OperationKind;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::IngestError;

/// The name pattern of kefu's own office exports (`shenzhen_20260105.zip`, a re-sent
/// `shenzhen_20260105_r1.tar.gz`, a re-export `shenzhen_20260101-20260107.zip`).
pub const DEFAULT_PATTERN: &str =
    r"^(?P<region>[A-Za-z0-9-]+)_(?P<day>\d{8})(?:-(?P<to>\d{8}))?(?:_r\d+)?\.(?:zip|tar\.gz|tgz)$";

/// What the head office expects of its offices: the `[deliveries]` table of a job or
/// server config, or a file of its own given to `kefu status --deliveries --schedule`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The regions expected to deliver. Empty: every region that has ever delivered.
    #[serde(default)]
    pub regions: Vec<String>,
    /// A regular expression over a delivered file's name (without its directory) with the
    /// groups `region` and `day` (`YYYYMMDD` or `YYYY-MM-DD`), and optionally `to`, the
    /// last day of a file covering several.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// The local time a day's export is due, on the day `due_days_after` days later.
    #[serde(default = "default_due")]
    pub due: String,
    #[serde(default = "default_days_after")]
    pub due_days_after: u32,
    /// A day's usual volume is the median of the same weekday's deliveries in this many
    /// weeks before it (at least three of them must have arrived).
    #[serde(default = "default_weeks")]
    pub volume_weeks: usize,
    /// A delivery with fewer records than this share of the usual volume is flagged low.
    #[serde(default = "default_low")]
    pub volume_low: f64,
    /// A delivery with more records than this multiple of the usual volume is flagged high.
    #[serde(default = "default_high")]
    pub volume_high: f64,
    /// Per region: another due time or day, or `expected = false` for an office that no
    /// longer delivers.
    #[serde(default)]
    pub region: BTreeMap<String, RegionRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionRule {
    pub due: Option<String>,
    pub due_days_after: Option<u32>,
    pub expected: Option<bool>,
}

fn default_pattern() -> String {
    DEFAULT_PATTERN.to_string()
}
fn default_due() -> String {
    "06:00".to_string()
}
fn default_days_after() -> u32 {
    1
}
fn default_weeks() -> usize {
    4
}
fn default_low() -> f64 {
    0.5
}
fn default_high() -> f64 {
    2.0
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            regions: Vec::new(),
            pattern: default_pattern(),
            due: default_due(),
            due_days_after: default_days_after(),
            volume_weeks: default_weeks(),
            volume_low: default_low(),
            volume_high: default_high(),
            region: BTreeMap::new(),
        }
    }
}

/// A checked [`ScheduleConfig`].
#[derive(Debug, Clone)]
pub struct Schedule {
    config: ScheduleConfig,
    pattern: Regex,
    due: NaiveTime,
    region_due: BTreeMap<String, (NaiveTime, u32)>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new(ScheduleConfig::default(), "the default schedule")
            .expect("the default schedule is valid")
    }
}

fn parse_due(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .ok()
}

impl Schedule {
    /// Checks `config`; `origin` names where it came from in errors.
    pub fn new(config: ScheduleConfig, origin: &str) -> Result<Self, IngestError> {
        let bad = |reason: String| IngestError::Schedule {
            origin: origin.to_string(),
            reason,
        };
        let pattern = Regex::new(&config.pattern)
            .map_err(|e| bad(format!("pattern is not a regular expression: {e}")))?;
        for group in ["region", "day"] {
            if !pattern.capture_names().flatten().any(|n| n == group) {
                return Err(bad(format!(
                    "pattern has no group named '{group}' (write (?P<{group}>…))"
                )));
            }
        }
        let due_of = |text: &str, key: &str| {
            parse_due(text).ok_or_else(|| bad(format!("{key} = '{text}' is not a time (HH:MM)")))
        };
        let due = due_of(&config.due, "due")?;
        let mut region_due = BTreeMap::new();
        for (region, rule) in &config.region {
            let time = match &rule.due {
                Some(t) => due_of(t, &format!("region.{region}.due"))?,
                None => due,
            };
            let after = rule.due_days_after.unwrap_or(config.due_days_after);
            region_due.insert(region.clone(), (time, after));
        }
        if !(config.volume_low >= 0.0 && config.volume_low < 1.0) {
            return Err(bad(format!(
                "volume_low = {} must be at least 0 and below 1",
                config.volume_low
            )));
        }
        if config.volume_high.is_nan() || config.volume_high <= 1.0 {
            return Err(bad(format!(
                "volume_high = {} must be above 1",
                config.volume_high
            )));
        }
        if !(3..=52).contains(&config.volume_weeks) {
            return Err(bad(format!(
                "volume_weeks = {} must be 3 to 52",
                config.volume_weeks
            )));
        }
        Ok(Schedule {
            config,
            pattern,
            due,
            region_due,
        })
    }

    /// Reads the schedule file at `path` (TOML), or gives the default schedule.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, IngestError> {
        let Some(path) = path else {
            return Ok(Schedule::default());
        };
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| IngestError::Read {
            source_name: origin.clone(),
            error,
        })?;
        Schedule::from_toml(&text, &origin)
    }

    /// Reads a schedule file (TOML, the keys of [`ScheduleConfig`]).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, IngestError> {
        let config: ScheduleConfig = toml::from_str(text).map_err(|e| IngestError::Schedule {
            origin: origin.to_string(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        Schedule::new(config, origin)
    }

    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// The region and the days a file's name says it reports, if it is a delivery.
    pub fn recognise(&self, source_name: &str) -> Option<(String, NaiveDate, NaiveDate)> {
        let file = source_name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(source_name);
        let caps = self.pattern.captures(file)?;
        let day = parse_day(caps.name("day")?.as_str())?;
        let to = match caps.name("to") {
            Some(m) => parse_day(m.as_str())?,
            None => day,
        };
        (to >= day && (to - day).num_days() < 366).then(|| (caps["region"].to_string(), day, to))
    }

    /// When `region`'s export of `day` is due, as an instant on `zone`'s calendar.
    pub fn due<Tz: TimeZone>(&self, region: &str, day: NaiveDate, zone: &Tz) -> DateTime<Utc> {
        let (time, after) = self
            .region_due
            .get(region)
            .copied()
            .unwrap_or((self.due, self.config.due_days_after));
        let local = (day + Days::new(after.into())).and_time(time);
        // A due time that a DST change skips is due at the first instant after it.
        zone.from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&local))
    }

    fn expected(&self, region: &str) -> bool {
        self.config
            .region
            .get(region)
            .and_then(|r| r.expected)
            .unwrap_or(true)
    }
}

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y%m%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d"))
        .ok()
}

/// One delivered file.
#[derive(Debug, Clone, Serialize)]
pub struct ArrivedFile {
    pub name: String,
    pub arrived: DateTime<Utc>,
    /// The ledger record of the batch that ingested it.
    pub batch: u64,
    pub bytes: u64,
    pub records: u64,
    pub rejected: u64,
    /// Whether it reports several days (a re-export): its volume is not compared.
    pub covers_several_days: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Arrived by its due time.
    OnTime,
    /// Arrived after its due time.
    Late,
    /// Nothing has arrived, and its due time has passed.
    Missing,
    /// Nothing has arrived yet, but it is not due yet.
    Pending,
}

impl DeliveryStatus {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::OnTime => "on time",
            DeliveryStatus::Late => "late",
            DeliveryStatus::Missing => "missing",
            DeliveryStatus::Pending => "not due yet",
        }
    }
}

/// A volume far from a region's usual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeFlag {
    Low,
    High,
}

/// One region's export of one day.
#[derive(Debug, Clone, Serialize)]
pub struct DayDelivery {
    pub region: String,
    pub day: NaiveDate,
    pub due: DateTime<Utc>,
    pub status: DeliveryStatus,
    /// The first file's arrival.
    pub arrived: Option<DateTime<Utc>>,
    pub late_by_s: Option<i64>,
    /// Records of its own (single-day) files, the first of each content.
    pub records: Option<u64>,
    pub bytes: Option<u64>,
    /// The median records of the region's single-day deliveries of the same weekday in the
    /// weeks before.
    pub usual_records: Option<f64>,
    pub volume: Option<VolumeFlag>,
    pub files: Vec<ArrivedFile>,
}

impl DayDelivery {
    /// Whether it needs someone's attention: missing, late, or a volume flag.
    pub fn is_problem(&self) -> bool {
        matches!(self.status, DeliveryStatus::Missing | DeliveryStatus::Late)
            || self.volume.is_some()
    }

    /// Its volume as a share of the usual one.
    pub fn volume_ratio(&self) -> Option<f64> {
        match (self.records, self.usual_records) {
            (Some(r), Some(u)) if u > 0.0 => Some(r as f64 / u),
            _ => None,
        }
    }
}

/// Deliveries of a run of days, every expected region.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    /// The warehouse's location (empty where the report was made from a ledger alone).
    pub warehouse: String,
    pub zone: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub now: DateTime<Utc>,
    pub regions: Vec<String>,
    /// Region by region, day by day.
    pub days: Vec<DayDelivery>,
    /// Ingested sources whose names the pattern does not take for deliveries (master
    /// data, snapshots, or a pattern that needs changing), newest first, at most 20.
    pub unrecognised: Vec<String>,
    pub unrecognised_count: usize,
    /// Deliveries that need attention (missing, late, or a volume flag).
    pub problems: usize,
    /// Deliveries past their due time that have not arrived.
    pub missing: usize,
    /// What was expected, for the report's heading.
    #[serde(skip)]
    pub expected: ScheduleConfig,
}

/// The data days a delivery report covers.
#[derive(Debug, Clone, Copy)]
pub enum DayWindow<'a> {
    /// `days` days ending with the day a date expression gives (evaluated against today on
    /// the warehouse's calendar): `yesterday`, `today - 2 days`, `2026-03-01`.
    Ending { until: &'a str, days: u32 },
    /// These days, first and last.
    Days(NaiveDate, NaiveDate),
}

/// The deliveries to `warehouse` over `window`, as of now, on the warehouse's calendar:
/// what `kefu status --deliveries`, the server's dashboard and the jobs'
/// `requires_deliveries` look at.
pub async fn in_warehouse(
    warehouse: &kefu_storage::Warehouse,
    schedule: &Schedule,
    window: DayWindow<'_>,
) -> Result<DeliveryReport, IngestError> {
    let zone = warehouse.time_zone().await?;
    let ledger = warehouse.ledger().await?;
    let now = Utc::now();
    let (from, to) = match window {
        DayWindow::Days(from, to) => (from, to),
        DayWindow::Ending { until, days } => {
            let today = now.with_timezone(&zone).date_naive();
            let to = kefu_model::calendar::eval(until, today)?;
            (to - Days::new(u64::from(days.max(1)) - 1), to)
        }
    };
    let mut report = deliveries(&ledger, schedule, zone, from, to, now);
    report.warehouse = warehouse.location().to_string();
    Ok(report)
}

impl DeliveryReport {
    pub fn problems(&self) -> impl Iterator<Item = &DayDelivery> {
        self.days.iter().filter(|d| d.is_problem())
    }

    pub fn missing(&self) -> impl Iterator<Item = &DayDelivery> {
        self.days
            .iter()
            .filter(|d| d.status == DeliveryStatus::Missing)
    }

    /// Only `region`'s deliveries (what an office may see of the report).
    pub fn keep_region(&mut self, region: &str) {
        self.regions.retain(|r| r == region);
        self.days.retain(|d| d.region == region);
        self.unrecognised.clear();
        self.unrecognised_count = 0;
        self.problems = self.problems().count();
        self.missing = self.missing().count();
    }
}

/// The deliveries of the days `from..=to` as of `now`, from the warehouse's `ledger`, on
/// `zone`'s calendar.
pub fn deliveries(
    ledger: &[OperationRecord],
    schedule: &Schedule,
    zone: chrono_tz::Tz,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> DeliveryReport {
    let reverted = kefu_storage::maintain::reverted(ledger);
    let mut arrived: BTreeMap<(String, NaiveDate), Vec<ArrivedFile>> = BTreeMap::new();
    let mut seen_regions = BTreeSet::new();
    let mut unrecognised = Vec::new();
    for op in ledger
        .iter()
        .filter(|op| op.kind == OperationKind::Ingest && !reverted.contains(&op.seq))
    {
        for source in &op.sources {
            let Some((region, first, last)) = schedule.recognise(&source.name) else {
                unrecognised.push(source.name.clone());
                continue;
            };
            seen_regions.insert(region.clone());
            let file = ArrivedFile {
                name: source.name.clone(),
                arrived: source.modified.unwrap_or(op.committed_at),
                batch: op.seq,
                bytes: source.bytes,
                records: source.records,
                rejected: source.rejected,
                covers_several_days: first != last,
            };
            let mut day = first;
            while day <= last {
                arrived
                    .entry((region.clone(), day))
                    .or_default()
                    .push(file.clone());
                day = day + Days::new(1);
            }
        }
    }
    for files in arrived.values_mut() {
        files.sort_by_key(|f| (f.arrived, f.batch));
    }
    let regions: Vec<String> = if schedule.config.regions.is_empty() {
        seen_regions.into_iter().collect()
    } else {
        schedule.config.regions.clone()
    }
    .into_iter()
    .filter(|r| schedule.expected(r))
    .collect();

    // A region's volume on a day: the records of its single-day files, one per size (a
    // re-sent copy repeats the same records).
    let volume = |region: &str, day: NaiveDate| -> Option<(u64, u64)> {
        let files = arrived.get(&(region.to_string(), day))?;
        let own: Vec<&ArrivedFile> = files.iter().filter(|f| !f.covers_several_days).collect();
        let first = own.first()?;
        Some((first.records, first.bytes))
    };
    let weeks = schedule.config.volume_weeks;
    let mut days = Vec::new();
    for region in &regions {
        let mut day = from;
        while day <= to {
            let due = schedule.due(region, day, &zone);
            let files = arrived
                .get(&(region.clone(), day))
                .cloned()
                .unwrap_or_default();
            let first = files.first().map(|f| f.arrived);
            let status = match first {
                Some(t) if t <= due => DeliveryStatus::OnTime,
                Some(_) => DeliveryStatus::Late,
                None if now > due => DeliveryStatus::Missing,
                None => DeliveryStatus::Pending,
            };
            let own = volume(region, day);
            // The usual volume: the median of the same weekday in the weeks before.
            let mut trailing: Vec<f64> = (1..=weeks)
                .filter_map(|w| day.checked_sub_days(Days::new(7 * w as u64)))
                .filter_map(|d| volume(region, d))
                .map(|(records, _)| records as f64)
                .collect();
            let usual = median(&mut trailing);
            let flag = match (own, usual) {
                (Some((records, _)), Some(u)) if u > 0.0 => {
                    let ratio = records as f64 / u;
                    if ratio < schedule.config.volume_low {
                        Some(VolumeFlag::Low)
                    } else if ratio > schedule.config.volume_high {
                        Some(VolumeFlag::High)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            days.push(DayDelivery {
                region: region.clone(),
                day,
                due,
                status,
                arrived: first,
                late_by_s: first.filter(|t| *t > due).map(|t| (t - due).num_seconds()),
                records: own.map(|v| v.0),
                bytes: own.map(|v| v.1),
                usual_records: usual,
                volume: flag,
                files,
            });
            day = day + Days::new(1);
        }
    }
    let unrecognised_count = unrecognised.len();
    unrecognised.reverse();
    unrecognised.truncate(20);
    DeliveryReport {
        warehouse: String::new(),
        problems: days.iter().filter(|d| d.is_problem()).count(),
        missing: days
            .iter()
            .filter(|d| d.status == DeliveryStatus::Missing)
            .count(),
        expected: schedule.config.clone(),
        zone: zone.name().to_string(),
        from,
        to,
        now,
        regions,
        days,
        unrecognised,
        unrecognised_count,
    }
}

/// The median; at least three values are needed for a usual level to mean anything.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.len() < 3 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use kefu_storage::ledger::LedgerSource;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        // Local Shanghai time, UTC+8.
        chrono_tz::Asia::Shanghai
            .from_local_datetime(
                &chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap(),
            )
            .unwrap()
            .with_timezone(&Utc)
    }

    fn batch(seq: u64, files: &[(&str, &str, u64)]) -> OperationRecord {
        OperationRecord {
            seq,
            kind: OperationKind::Ingest,
            id: format!("op{seq}"),
            committed_at: at("2026-02-01 00:00"),
            kefu_version: "test".into(),
            profile: None,
            sources: files
                .iter()
                .map(|(name, arrived, records)| LedgerSource {
                    name: (*name).into(),
                    content_hash: format!("{name}-hash"),
                    bytes: records * 100,
                    records: *records,
                    rejected: 0,
                    filtered: 0,
                    modified: Some(at(arrived)),
                })
                .collect(),
            counts: Default::default(),
            changes: Default::default(),
            versions: Default::default(),
            reverts: Vec::new(),
            note: None,
            seconds: 0.0,
        }
    }

    #[test]
    fn names_tell_region_and_days() {
        let s = Schedule::default();
        assert_eq!(
            s.recognise("in/shenzhen/shenzhen_20260105.zip"),
            Some(("shenzhen".into(), day("2026-01-05"), day("2026-01-05")))
        );
        assert_eq!(
            s.recognise("s3://b/x/gz_20260105_r1.tar.gz").map(|r| r.0),
            Some("gz".into())
        );
        assert_eq!(
            s.recognise("shenzhen_20260101-20260107.zip"),
            Some(("shenzhen".into(), day("2026-01-01"), day("2026-01-07")))
        );
        assert_eq!(s.recognise("master/branches.csv"), None);
        assert_eq!(s.recognise("shenzhen_20261341.zip"), None);
    }

    #[test]
    fn on_time_late_missing_pending_and_volume() {
        // Region a: every day since 2025-12-01 with 1000 records (weekends 500), on time;
        // 2026-01-06 (a Tuesday) has 400, and 2026-01-07 arrives late.
        // Region b: delivers up to 2026-01-06, not 2026-01-07; 2026-01-08 is not due yet.
        let mut files = Vec::new();
        let mut d = day("2025-12-01");
        while d <= day("2026-01-07") {
            let weekend = d.weekday().number_from_monday() >= 6;
            let records = match d.to_string().as_str() {
                "2026-01-06" => 400,
                "2026-01-07" => 1100,
                _ if weekend => 500,
                _ => 1000,
            };
            let arrived = if d == day("2026-01-07") {
                "2026-01-08 09:30".to_string()
            } else {
                format!("{} 02:00", d + Days::new(1))
            };
            files.push((
                format!("a_{}.zip", d.format("%Y%m%d")),
                arrived.clone(),
                records,
            ));
            if d < day("2026-01-07") {
                files.push((format!("b_{}.zip", d.format("%Y%m%d")), arrived, 500));
            }
            d = d + Days::new(1);
        }
        files.push(("master/staff.csv".into(), "2026-01-02 01:00".into(), 10));
        let refs: Vec<(&str, &str, u64)> = files
            .iter()
            .map(|(n, a, r)| (n.as_str(), a.as_str(), *r))
            .collect();
        let ledger = vec![batch(1, &refs)];
        let report = deliveries(
            &ledger,
            &Schedule::default(),
            chrono_tz::Asia::Shanghai,
            day("2026-01-03"),
            day("2026-01-08"),
            at("2026-01-08 12:00"),
        );
        assert_eq!(report.regions, vec!["a", "b"]);
        let get = |r: &str, d: &str| {
            report
                .days
                .iter()
                .find(|x| x.region == r && x.day == day(d))
                .unwrap()
        };
        // A Saturday's 500 is a Saturday's usual volume, not a low one.
        assert_eq!(get("a", "2026-01-03").status, DeliveryStatus::OnTime);
        assert_eq!(get("a", "2026-01-03").usual_records, Some(500.0));
        assert_eq!(get("a", "2026-01-03").volume, None);
        assert_eq!(get("a", "2026-01-05").volume, None);
        assert_eq!(get("a", "2026-01-06").status, DeliveryStatus::OnTime);
        assert_eq!(get("a", "2026-01-06").volume, Some(VolumeFlag::Low));
        assert_eq!(get("a", "2026-01-06").usual_records, Some(1000.0));
        let late = get("a", "2026-01-07");
        assert_eq!(late.status, DeliveryStatus::Late);
        assert_eq!(late.late_by_s, Some(3 * 3600 + 30 * 60));
        assert_eq!(late.volume, None, "1100 against a usual 1000");
        assert_eq!(get("b", "2026-01-07").status, DeliveryStatus::Missing);
        assert_eq!(get("b", "2026-01-08").status, DeliveryStatus::Pending);
        assert_eq!(get("a", "2026-01-08").status, DeliveryStatus::Pending);
        let problems: Vec<(&str, NaiveDate)> = report
            .problems()
            .map(|d| (d.region.as_str(), d.day))
            .collect();
        assert_eq!(
            problems,
            vec![
                ("a", day("2026-01-06")),
                ("a", day("2026-01-07")),
                ("b", day("2026-01-07"))
            ]
        );
        assert_eq!(report.unrecognised, vec!["master/staff.csv"]);
        // Three weeks back is the least that makes a usual level.
        let young = deliveries(
            &ledger,
            &Schedule::default(),
            chrono_tz::Asia::Shanghai,
            day("2025-12-15"),
            day("2025-12-22"),
            at("2026-01-08 12:00"),
        );
        assert!(
            young
                .days
                .iter()
                .filter(|d| d.region == "a")
                .all(|d| { d.usual_records.is_some() == (d.day >= day("2025-12-22")) })
        );
    }

    #[test]
    fn a_re_export_covers_its_days_and_a_revert_takes_deliveries_back() {
        let ledger = vec![
            batch(1, &[("a_20260101.zip", "2026-01-02 02:00", 10)]),
            batch(2, &[("a_20260101-20260103.zip", "2026-01-05 02:00", 30)]),
            batch(3, &[("a_20260104.zip", "2026-01-05 02:00", 10)]),
            OperationRecord {
                kind: OperationKind::Revert,
                reverts: vec![3],
                sources: Vec::new(),
                ..batch(4, &[])
            },
        ];
        let report = deliveries(
            &ledger,
            &Schedule::default(),
            chrono_tz::Asia::Shanghai,
            day("2026-01-01"),
            day("2026-01-04"),
            at("2026-01-06 00:00"),
        );
        let status: Vec<DeliveryStatus> = report.days.iter().map(|d| d.status).collect();
        use DeliveryStatus::*;
        assert_eq!(status, vec![OnTime, Late, Late, Missing]);
        assert_eq!(
            report.days[0].files.len(),
            2,
            "the day's own file and the re-export"
        );
        assert_eq!(
            report.days[1].records, None,
            "a re-export's volume is not a day's"
        );
    }

    #[test]
    fn per_region_due_times_and_zones() {
        let config: ScheduleConfig = toml::from_str(
            "regions = ['a', 'b', 'c']\ndue = '06:00'\n[region.b]\ndue = '09:00'\n[region.c]\nexpected = false\n",
        )
        .unwrap();
        let s = Schedule::new(config, "t").unwrap();
        let london = chrono_tz::Europe::London;
        // 2026-03-29 is the day British Summer Time begins: 06:00 local is 05:00 UTC.
        assert_eq!(
            s.due("a", day("2026-03-28"), &london).to_rfc3339(),
            "2026-03-29T05:00:00+00:00"
        );
        assert_eq!(
            s.due("b", day("2026-01-01"), &london).to_rfc3339(),
            "2026-01-02T09:00:00+00:00"
        );
        let report = deliveries(
            &[],
            &s,
            london,
            day("2026-01-01"),
            day("2026-01-01"),
            Utc::now(),
        );
        assert_eq!(report.regions, vec!["a", "b"], "c is no longer expected");
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let err = |text: &str| Schedule::from_toml(text, "d.toml").unwrap_err().to_string();
        assert!(err("pattern = '(?P<region>x)'").contains("no group named 'day'"));
        assert!(err("due = '6 am'").contains("is not a time"));
        assert!(err("volume_low = 2.0").contains("volume_low"));
        assert!(err("volume_weeks = 1").contains("volume_weeks"));
        assert!(
            err("regoins = []").contains("unknown field"),
            "{}",
            err("regoins = []")
        );
        assert!(err("pattern = '('").contains("not a regular expression"));
    }
}
