//! Messy output: the files as regional offices really send them, and as they really
//! arrive.
//!
//! Layout: `<out>/<region>/<region>_<yyyymmdd>.zip|tar.gz`, one archive per region and
//! local day D holding what an export made at the end of D knows (one CSV per table, named
//! after the table in English or Chinese): the calls that ended on D, the tickets received
//! on D and those whose state changed on D — each in its state at the end of D, with
//! `updated_at` its latest workflow event —, the callbacks and visits of D, and the
//! customers opened, changed (tier) or closed on D. Nothing in an archive happened after its
//! day. Full customer snapshots (`<out>/<region>/<customers file>_<yyyymmdd>.csv`) come on
//! the first day and on the first of every month.
//!
//! Offices deliver at least once and not always on time ([`GenConfig::resend_rate`]): an
//! archive may arrive days late, be sent again as a re-zipped copy, and an office may
//! re-export its last seven days (`<region>_<from>-<to>.zip`, states as of the last day).
//! Each archive's delivery day is in the manifest (`archives`, `deliveries`), so a test or
//! the demo can ingest what arrived each day as one batch.
//!
//! Every region has its own [`ExportStyle`] (encoding, headers, line endings, date and
//! duration formats). After a random share of rows an extra, deliberately bad row is written
//! (a corrupted copy of the row before it, with an id nothing references); the manifest
//! lists each with its file, archive member, line number, column and reason, so ingest can
//! be checked against it. The newest version of every good row, over all files, is exactly
//! the plain output (the world as known at the end of the period); the manifest's `rows`
//! counts those, `records` every good record written.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use kefu_model::Table;
use rand::{Rng, RngExt};
use serde::Serialize;

use crate::GenError;
use crate::calendar::{DayInfo, TimeFormatter};
use crate::fields::CsvFields;
use crate::record::{CallRec, CallbackRec, CustomerRow, Row, TicketRec, VisitRec};
use crate::sim::{DayRows, Sink, lifecycle_events, observe};
use crate::style::{ArchiveKind, ExportStyle, Part, TextEncoding, file_fields, member_name};
use crate::world::World;

/// Why a row is bad. Each is something ingest must reject with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReason {
    /// The event time cannot be parsed ("########", month 13, …).
    UnparseableTimestamp,
    /// The row's id is empty.
    MissingId,
    /// The row has one field too few or too many.
    WrongColumnCount,
    /// A required enum column holds a value outside its vocabulary.
    InvalidEnum,
    /// An end time lies before its start (ended before the call began, resolved before
    /// created, service ended before it started, closed before opened).
    EndBeforeStart,
    /// A duration is negative (hotline systems' clock glitches).
    NegativeDuration,
}

impl BadReason {
    const ALL: [BadReason; 6] = [
        BadReason::UnparseableTimestamp,
        BadReason::MissingId,
        BadReason::WrongColumnCount,
        BadReason::InvalidEnum,
        BadReason::EndBeforeStart,
        BadReason::NegativeDuration,
    ];
}

/// One deliberately bad row.
#[derive(Debug, Clone, Serialize)]
pub struct BadRow {
    /// File relative to the output directory.
    pub path: String,
    /// Member inside the archive; null for plain files.
    pub member: Option<String>,
    pub table: &'static str,
    /// 1-based physical line where the record starts (the header is line 1).
    pub line: u64,
    /// Header of the offending field; null for a wrong column count.
    pub column: Option<String>,
    pub reason: BadReason,
    /// The row's id as written; null when missing.
    pub id: Option<String>,
}

/// One file written (an archive member or a plain file).
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    pub path: String,
    pub member: Option<String>,
    pub table: &'static str,
    pub region: String,
    pub encoding: TextEncoding,
    /// Good rows (those that must land).
    pub rows: u64,
    pub bad_rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionStyle {
    pub region: String,
    pub style: ExportStyle,
}

/// What an archive or plain file of the export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// The export of one day.
    Daily,
    /// A daily archive sent again, re-zipped (other bytes, the same records).
    Resent,
    /// The last seven days exported again, in their state at the last of them.
    Reexport,
    /// Every customer as of the end of a day.
    CustomerSnapshot,
}

/// One file an office delivers: an archive, or a plain customer snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveEntry {
    /// Relative to the output directory.
    pub path: String,
    pub region: String,
    pub kind: ExportKind,
    /// The days whose events it reports, `YYYY-MM-DD`, first and last.
    pub covers: (String, String),
    /// The day it reaches the head office (`YYYY-MM-DD`).
    pub delivered: String,
}

/// The files that arrive on one day: what a daily scheduled ingest takes as one batch.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Delivery {
    pub date: String,
    /// Relative to the output directory.
    pub paths: Vec<String>,
}

/// The deliveries a `manifest.json` lists, in date order.
pub fn read_deliveries(manifest: &Path) -> Result<Vec<Delivery>, GenError> {
    #[derive(serde::Deserialize)]
    struct Deliveries {
        deliveries: Vec<Delivery>,
    }
    let bytes = std::fs::read(manifest).map_err(|source| GenError::Read {
        path: manifest.to_path_buf(),
        source: source.into(),
    })?;
    let parsed: Deliveries = serde_json::from_slice(&bytes).map_err(|e| GenError::Read {
        path: manifest.to_path_buf(),
        source: e.into(),
    })?;
    Ok(parsed.deliveries)
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub generator: String,
    pub seed: u64,
    pub start: String,
    pub days: u32,
    pub customers: u32,
    pub bad_row_rate: f64,
    pub resend_rate: f64,
    pub regions: Vec<RegionStyle>,
    /// Rows per table of the final truth: the newest version of each record, which is
    /// what the plain output holds.
    pub rows: BTreeMap<&'static str, u64>,
    /// Good records written per table, over all files (versions and repeats included).
    pub records: BTreeMap<&'static str, u64>,
    /// Bad rows per reason.
    pub bad_row_counts: BTreeMap<BadReason, u64>,
    /// Good call rows whose wait_s or talk_s was left empty although their timestamps
    /// determine it (ingest should derive it, not reject the row).
    pub blanked_durations: u64,
    /// Every delivered file, in the order written.
    pub archives: Vec<ArchiveEntry>,
    /// Delivered files by day of arrival, in date order.
    pub deliveries: Vec<Delivery>,
    /// Every CSV written (archive members and plain files).
    pub files: Vec<FileEntry>,
    pub bad_rows: Vec<BadRow>,
}

impl Manifest {
    /// Groups `archives` by delivery day into `deliveries`.
    pub fn plan_deliveries(&mut self) {
        let mut by_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in &self.archives {
            by_day
                .entry(a.delivered.clone())
                .or_default()
                .push(a.path.clone());
        }
        self.deliveries = by_day
            .into_iter()
            .map(|(date, paths)| Delivery { date, paths })
            .collect();
    }
}

/// One CSV file being built in memory, with line tracking for the manifest.
struct MemberBuf {
    table: Table,
    writer: csv::Writer<Vec<u8>>,
    fields: Vec<(usize, Part, String)>,
    counted: usize,
    lines: u64,
    rows: u64,
    bad: u64,
}

impl MemberBuf {
    fn new(table: Table, style: &ExportStyle) -> Self {
        let fields = file_fields(table, style);
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .terminator(if style.crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .from_writer(Vec::with_capacity(64 * 1024));
        writer
            .write_record(fields.iter().map(|f| f.2.as_str()))
            .expect("writing to memory");
        MemberBuf {
            table,
            writer,
            fields,
            counted: 0,
            lines: 0,
            rows: 0,
            bad: 0,
        }
    }

    /// The line the next record will start on.
    fn next_line(&mut self) -> u64 {
        self.writer.flush().expect("writing to memory");
        let buf = self.writer.get_ref();
        self.lines += buf[self.counted..].iter().filter(|&&b| b == b'\n').count() as u64;
        self.counted = buf.len();
        self.lines + 1
    }

    fn into_bytes(self, encoding: TextEncoding) -> Vec<u8> {
        let utf8 = self.writer.into_inner().expect("writing to memory");
        match encoding {
            TextEncoding::Utf8 => utf8,
            TextEncoding::Utf8Bom => {
                let mut out = Vec::with_capacity(utf8.len() + 3);
                out.extend_from_slice(b"\xEF\xBB\xBF");
                out.extend_from_slice(&utf8);
                out
            }
            TextEncoding::Gbk => {
                let text = String::from_utf8(utf8).expect("generated text is UTF-8");
                let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
                debug_assert!(!unmappable, "every generated character exists in GBK");
                bytes.into_owned()
            }
        }
    }
}

pub struct MessySink<R: Rng> {
    out: PathBuf,
    styles: Vec<ExportStyle>,
    times: TimeFormatter,
    rng: R,
    /// Draws delivery delays, re-sends and re-exports, apart from the rows' randomness.
    plan: R,
    rate: f64,
    resend_rate: f64,
    record: ByteRecord,
    next_bad: u64,
    /// Local midnight starting the first day, and the end of the period.
    start: i64,
    end: i64,
    /// Calls not yet ended at the last cut.
    pending_calls: Vec<CallRec>,
    /// Tickets (whole lifecycles) with workflow events still to come at the last cut.
    open_tickets: Vec<TicketRec>,
    /// Customers (indices) with an opening, tier change or closing on each day of the
    /// period.
    customer_changes: Vec<Vec<u32>>,
    /// What each of the last seven days' exports held, for re-exports.
    recent: std::collections::VecDeque<DayExport>,
    pub manifest: Manifest,
}

/// What one day's export reported (tickets as whole lifecycles, customers as indices), so
/// that a re-export can show the same records in a later state.
struct DayExport {
    date: chrono::NaiveDate,
    calls: Vec<CallRec>,
    tickets: Vec<TicketRec>,
    callbacks: Vec<CallbackRec>,
    visits: Vec<VisitRec>,
    customers: Vec<u32>,
}

/// The records of one export, in the state it shows.
#[derive(Default)]
struct ExportRows {
    calls: Vec<CallRec>,
    tickets: Vec<TicketRec>,
    callbacks: Vec<CallbackRec>,
    visits: Vec<VisitRec>,
    customers: Vec<CustomerRow>,
}

/// Values a timestamp field can hold that no parser should accept (never a null token).
const BAD_TIMESTAMPS: &[&str] = &[
    "########",
    "2026-13-45 25:61:00",
    "31/02/2026 9:00",
    "昨天下午",
];
const BAD_DATES: &[&str] = &["########", "2026/13/45", "31.02.2026"];
const BAD_ENUMS: &[&str] = &["UNKNOWN", "未知状态", "??"];
/// Share of rows whose derivable duration the export leaves empty.
const BLANK_DURATION_RATE: f64 = 0.02;

/// The enum column that must be valid in each table.
fn required_enum(table: Table) -> &'static str {
    match table {
        Table::Calls | Table::Visits => "outcome",
        Table::Tickets => "kind",
        Table::Callbacks => "method",
        Table::Customers => "segment",
        Table::OrgUnits => "level",
        Table::Staff => "role",
        // No required vocabulary column: the dimensions are not exported with bad rows.
        Table::Queues | Table::Categories => "name_zh",
    }
}

impl<R: Rng> MessySink<R> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        out: &Path,
        world: &World,
        times: TimeFormatter,
        rng: R,
        plan: R,
        manifest: Manifest,
        start: i64,
        days: u32,
    ) -> Result<Self, GenError> {
        let styles: Vec<ExportStyle> = (0..world.regions.len())
            .map(crate::style::style_for_region)
            .collect();
        for r in &world.regions {
            let dir = out.join(&r.code);
            std::fs::create_dir_all(&dir)
                .map_err(|source| GenError::Write { path: dir, source })?;
        }
        let mut manifest = manifest;
        manifest.regions = world
            .regions
            .iter()
            .zip(&styles)
            .map(|(r, s)| RegionStyle {
                region: r.code.clone(),
                style: s.clone(),
            })
            .collect();
        let end = start + i64::from(days) * crate::calendar::DAY_S;
        let mut customer_changes = vec![Vec::new(); days as usize];
        for (i, c) in world.customers.iter().enumerate() {
            let mut days_changed: Vec<i64> = [Some(c.opened_at), c.tier_changed_at, c.closed_at]
                .into_iter()
                .flatten()
                .filter(|&t| t >= start && t < end)
                .map(|t| (t - start).div_euclid(crate::calendar::DAY_S))
                .collect();
            days_changed.dedup();
            for d in days_changed {
                customer_changes[d as usize].push(i as u32);
            }
        }
        manifest
            .rows
            .insert(Table::Customers.name(), world.customers.len() as u64);
        Ok(MessySink {
            out: out.to_path_buf(),
            rate: manifest.bad_row_rate,
            resend_rate: manifest.resend_rate,
            styles,
            times,
            rng,
            plan,
            record: ByteRecord::new(),
            next_bad: 0,
            start,
            end,
            pending_calls: Vec::new(),
            open_tickets: Vec::new(),
            customer_changes,
            recent: std::collections::VecDeque::new(),
            manifest,
        })
    }

    /// Writes `row` (and maybe a bad copy after it) into `buf`.
    fn put<T: Row + BadCopy>(
        &mut self,
        world: &World,
        style: &ExportStyle,
        buf: &mut MemberBuf,
        path: &str,
        member: Option<&str>,
        row: &T,
    ) {
        let mut blanked = None;
        if self.rng.random::<f64>() < BLANK_DURATION_RATE {
            let mut copy = row.clone();
            if copy.blank_derivable_duration(&mut self.rng) {
                self.manifest.blanked_durations += 1;
                blanked = Some(copy);
            }
        }
        blanked.as_ref().unwrap_or(row).write_row(
            world,
            &mut CsvFields::new(
                &mut self.record,
                T::TABLE.columns(),
                Some(style),
                &self.times,
            ),
        );
        buf.writer
            .write_byte_record(&self.record)
            .expect("writing to memory");
        buf.rows += 1;
        if self.rate > 0.0 && self.rng.random::<f64>() < self.rate {
            self.put_bad(world, style, buf, path, member, row);
        }
    }

    fn put_bad<T: Row + BadCopy>(
        &mut self,
        world: &World,
        style: &ExportStyle,
        buf: &mut MemberBuf,
        path: &str,
        member: Option<&str>,
        row: &T,
    ) {
        let table = T::TABLE;
        let choices: Vec<BadReason> = BadReason::ALL
            .into_iter()
            .filter(|r| match r {
                BadReason::EndBeforeStart => T::END_COLUMN.is_some(),
                BadReason::NegativeDuration => T::DURATION_COLUMN.is_some(),
                _ => true,
            })
            .collect();
        let reason = choices[self.rng.random_range(0..choices.len())];
        self.next_bad += 1;
        let mut bad = row.clone();
        bad.set_id(self.next_bad);
        match reason {
            BadReason::EndBeforeStart => bad.end_before_start(),
            BadReason::NegativeDuration => bad.negative_duration(),
            _ => {}
        }
        bad.write_row(
            world,
            &mut CsvFields::new(&mut self.record, table.columns(), Some(style), &self.times),
        );
        let mut fields: Vec<Vec<u8>> = self.record.iter().map(<[u8]>::to_vec).collect();
        let field_of = |name: &str, part: Part| {
            let col = table
                .columns()
                .iter()
                .position(|c| c.name == name)
                .expect("column exists");
            buf.fields
                .iter()
                .position(|f| f.0 == col && (f.1 == part || f.1 == Part::Whole))
                .expect("field exists")
        };
        let pick =
            |rng: &mut R, values: &[&str]| values[rng.random_range(0..values.len())].to_string();
        let id = String::from_utf8_lossy(&fields[0]).into_owned();
        let (column, id) = match reason {
            BadReason::UnparseableTimestamp => {
                let i = field_of(table.event_time_column(), Part::Date);
                let garbage = if buf.fields[i].1 == Part::Date {
                    pick(&mut self.rng, BAD_DATES)
                } else {
                    pick(&mut self.rng, BAD_TIMESTAMPS)
                };
                fields[i] = garbage.into_bytes();
                (Some(buf.fields[i].2.clone()), Some(id))
            }
            BadReason::MissingId => {
                fields[0].clear();
                (Some(buf.fields[0].2.clone()), None)
            }
            BadReason::WrongColumnCount => {
                if self.rng.random::<bool>() {
                    fields.pop();
                } else {
                    fields.push(b"extra".to_vec());
                }
                (None, Some(id))
            }
            BadReason::InvalidEnum => {
                let i = field_of(required_enum(table), Part::Whole);
                fields[i] = pick(&mut self.rng, BAD_ENUMS).into_bytes();
                (Some(buf.fields[i].2.clone()), Some(id))
            }
            BadReason::EndBeforeStart => {
                let i = field_of(T::END_COLUMN.expect("filtered"), Part::Date);
                (Some(buf.fields[i].2.clone()), Some(id))
            }
            BadReason::NegativeDuration => {
                let i = field_of(T::DURATION_COLUMN.expect("filtered"), Part::Whole);
                (Some(buf.fields[i].2.clone()), Some(id))
            }
        };
        let line = buf.next_line();
        buf.writer.write_record(&fields).expect("writing to memory");
        buf.bad += 1;
        *self.manifest.bad_row_counts.entry(reason).or_default() += 1;
        self.manifest.bad_rows.push(BadRow {
            path: path.to_string(),
            member: member.map(str::to_string),
            table: table.name(),
            line,
            column,
            reason,
            id,
        });
    }

    fn finish_member(
        &mut self,
        buf: MemberBuf,
        path: &str,
        member: Option<&str>,
        region: usize,
    ) -> Vec<u8> {
        *self.manifest.records.entry(buf.table.name()).or_default() += buf.rows;
        let encoding = self.styles[region].encoding;
        self.manifest.files.push(FileEntry {
            path: path.to_string(),
            member: member.map(str::to_string),
            table: buf.table.name(),
            region: self.manifest.regions[region].region.clone(),
            encoding,
            rows: buf.rows,
            bad_rows: buf.bad,
        });
        buf.into_bytes(encoding)
    }

    pub fn write_manifest(&self) -> Result<PathBuf, GenError> {
        let path = self.out.join("manifest.json");
        let json = serde_json::to_vec_pretty(&self.manifest).expect("manifest serialises");
        write_atomically(&path, &json)?;
        Ok(path)
    }
}

/// Replaces a whole file ([`kefu_storage::atomic::write`]).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), GenError> {
    kefu_storage::atomic::write(path, bytes).map_err(|source| GenError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// An archive of `members` with the export time (02:00 the next morning) as its members'
/// time, so archives are reproducible; `level` is the compression level (another level
/// makes other bytes with the same members, as a re-zipped copy has).
fn archive(kind: ArchiveKind, day: &DayInfo, members: &[(String, Vec<u8>)], level: u32) -> Vec<u8> {
    use chrono::Datelike;
    let next = day.date + chrono::Days::new(1);
    match kind {
        ArchiveKind::Zip => {
            let mtime = zip::DateTime::from_date_and_time(
                next.year().clamp(1980, 2107) as u16,
                next.month() as u8,
                next.day() as u8,
                2,
                0,
                0,
            )
            .expect("valid zip date");
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                // Fast deflate: the exports are test data, produced far more often than read.
                .compression_level(Some(i64::from(level)))
                .last_modified_time(mtime)
                .unix_permissions(0o644);
            let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
            for (name, bytes) in members {
                zip.start_file(name, options).expect("writing to memory");
                zip.write_all(bytes).expect("writing to memory");
            }
            zip.finish().expect("writing to memory").into_inner()
        }
        ArchiveKind::TarGz => {
            let mtime = (day.midnight_utc + crate::calendar::DAY_S + 2 * 3600).max(0) as u64;
            let gz = flate2::GzBuilder::new()
                .mtime(mtime as u32)
                .write(Vec::new(), flate2::Compression::new(level));
            let mut tar = tar::Builder::new(gz);
            tar.mode(tar::HeaderMode::Deterministic);
            for (name, bytes) in members {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_mtime(mtime);
                header.set_cksum();
                tar.append_data(&mut header, name, bytes.as_slice())
                    .expect("writing to memory");
            }
            tar.into_inner()
                .and_then(flate2::write::GzEncoder::finish)
                .expect("writing to memory")
        }
    }
}

/// How a row is made dirty: bad copies, and missing values that can be derived.
pub trait BadCopy {
    /// The end column an end-before-start copy breaks, if the table has one.
    const END_COLUMN: Option<&'static str> = None;
    /// The duration a negative-duration copy breaks, if the table has one.
    const DURATION_COLUMN: Option<&'static str> = None;
    /// Gives the copy the `n`th bad id: ids from the top of the table's id space, far above
    /// any real counter, so nothing references them and they never collide.
    fn set_id(&mut self, n: u64);
    fn end_before_start(&mut self) {}
    fn negative_duration(&mut self) {}
    /// Leaves out a duration that the row's timestamps determine, as many exports do (a
    /// good row: ingest derives it). Returns whether it did.
    fn blank_derivable_duration(&mut self, _rng: &mut impl Rng) -> bool {
        false
    }
}

impl BadCopy for CallRec {
    const END_COLUMN: Option<&'static str> = Some("ended_at");
    const DURATION_COLUMN: Option<&'static str> = Some("wait_s");
    fn set_id(&mut self, n: u64) {
        self.id = 900_000_000_000 + n;
    }
    fn end_before_start(&mut self) {
        self.ended_at = self.ivr_entered_at - 600;
    }
    fn negative_duration(&mut self) {
        self.wait_s = Some(-self.wait_s.unwrap_or(7).abs().max(1));
    }
    fn blank_derivable_duration(&mut self, rng: &mut impl Rng) -> bool {
        // wait = answered (or hang-up) − queued; talk = ended − answered − hold (inbound).
        if self.queued_at.is_none() {
            return false;
        }
        if self.answered_at.is_some() && rng.random::<bool>() {
            self.talk_s = None;
        } else {
            self.wait_s = None;
        }
        true
    }
}

impl BadCopy for TicketRec {
    const END_COLUMN: Option<&'static str> = Some("resolved_at");
    fn set_id(&mut self, n: u64) {
        self.id = 9_000_000_000 + n;
    }
    fn end_before_start(&mut self) {
        self.resolved_at = Some(self.created_at - 2 * 3600);
    }
}

impl BadCopy for CallbackRec {
    fn set_id(&mut self, n: u64) {
        self.id = 90_000_000_000 + n;
    }
}

impl BadCopy for VisitRec {
    const END_COLUMN: Option<&'static str> = Some("service_ended_at");
    fn set_id(&mut self, n: u64) {
        self.id = 90_000_000_000 + n;
    }
    fn end_before_start(&mut self) {
        let start = self.service_started_at.unwrap_or(self.arrived_at + 600);
        self.service_started_at = Some(start);
        self.service_ended_at = Some(start - 300);
    }
}

impl BadCopy for CustomerRow {
    const END_COLUMN: Option<&'static str> = Some("closed_at");
    fn set_id(&mut self, n: u64) {
        self.id = 900_000_000 + n as u32;
    }
    fn end_before_start(&mut self) {
        self.customer.closed_at = Some(self.customer.opened_at - 86_400);
        self.customer.close_reason = Some(kefu_model::vocab::CloseReason::Natural);
    }
}

fn rows_of_region<'r, T>(
    rows: &'r [T],
    region: u16,
    of: impl Fn(&T) -> u16 + 'r,
) -> impl Iterator<Item = &'r T> {
    rows.iter().filter(move |r| of(r) == region)
}

fn ymd(date: chrono::NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

impl<R: Rng> MessySink<R> {
    /// Writes one archive per region with `rows` (members named `<table>_<label>.csv`)
    /// and records it as delivered on the day `delivered` (days after `day`).
    #[allow(clippy::too_many_arguments)]
    fn write_archives(
        &mut self,
        world: &World,
        day: &DayInfo,
        rows: &ExportRows,
        label: &str,
        kind: ExportKind,
        covers: (chrono::NaiveDate, chrono::NaiveDate),
    ) -> Result<(), GenError> {
        for (r, region) in world.regions.iter().enumerate() {
            let style = self.styles[r].clone();
            let archive_name = format!("{}_{label}.{}", region.code, style.archive.extension());
            let path = format!("{}/{archive_name}", region.code);
            let r16 = r as u16;
            let mut members = Vec::with_capacity(5);
            let first_bad = self.manifest.bad_rows.len();
            let first_file = self.manifest.files.len();
            macro_rules! member {
                ($rows:expr, $ty:ty, $region:expr) => {{
                    let name = member_name(<$ty>::TABLE, &style, label);
                    let mut buf = MemberBuf::new(<$ty>::TABLE, &style);
                    for row in rows_of_region(&$rows, r16, $region) {
                        self.put(world, &style, &mut buf, &path, Some(&name), row);
                    }
                    if buf.rows > 0 || <$ty>::TABLE != Table::Customers {
                        let bytes = self.finish_member(buf, &path, Some(&name), r);
                        members.push((name, bytes));
                    }
                }};
            }
            member!(rows.calls, CallRec, |c: &CallRec| c.region);
            member!(rows.tickets, TicketRec, |t: &TicketRec| t.region);
            member!(rows.callbacks, CallbackRec, |c: &CallbackRec| c.region);
            member!(rows.visits, VisitRec, |v: &VisitRec| v.region);
            member!(rows.customers, CustomerRow, |c: &CustomerRow| c
                .customer
                .region);
            let bytes = archive(style.archive, day, &members, 1);
            write_atomically(&self.out.join(&path), &bytes)?;
            // Most archives arrive the next morning; some days later.
            let late = self.plan.random::<f64>() < self.resend_rate;
            let delay = if late {
                self.plan.random_range(2..=4)
            } else {
                1
            };
            self.record_archive(&path, r, kind, covers, day.date, delay)?;
            // A daily archive may come again later, re-zipped: other bytes, the same rows.
            if kind == ExportKind::Daily && self.plan.random::<f64>() < self.resend_rate {
                let copy = format!(
                    "{}/{}_{label}_r1.{}",
                    region.code,
                    region.code,
                    style.archive.extension()
                );
                let bytes = archive(style.archive, day, &members, 6);
                write_atomically(&self.out.join(&copy), &bytes)?;
                let delay = self.plan.random_range(2..=8);
                self.record_archive(&copy, r, ExportKind::Resent, covers, day.date, delay)?;
                self.repeat_entries(first_file, first_bad, &path, &copy);
            }
        }
        Ok(())
    }

    fn record_archive(
        &mut self,
        path: &str,
        region: usize,
        kind: ExportKind,
        covers: (chrono::NaiveDate, chrono::NaiveDate),
        day: chrono::NaiveDate,
        delay: u64,
    ) -> Result<(), GenError> {
        // The file's modification time is its arrival: offices upload between 01:00 and
        // 04:00 local time on their delivery day, each region at its own minute.
        let delivered = day + chrono::Days::new(delay);
        let epoch_day = (delivered - chrono::NaiveDate::default()).num_days();
        let arrival = epoch_day * crate::calendar::DAY_S - crate::calendar::LOCAL_OFFSET_S
            + 3600
            + (region as i64 * 7 % 180) * 60;
        let full = self.out.join(path);
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(arrival.max(0) as u64);
        std::fs::File::options()
            .write(true)
            .open(&full)
            .and_then(|f| f.set_modified(when))
            .map_err(|source| GenError::Write { path: full, source })?;
        self.manifest.archives.push(ArchiveEntry {
            path: path.to_string(),
            region: self.manifest.regions[region].region.clone(),
            kind,
            covers: (covers.0.to_string(), covers.1.to_string()),
            delivered: delivered.to_string(),
        });
        Ok(())
    }

    /// The manifest entries of a re-sent copy: its members and bad rows are those of the
    /// original, under the copy's path.
    fn repeat_entries(&mut self, first_file: usize, first_bad: usize, from: &str, to: &str) {
        let files: Vec<FileEntry> = self.manifest.files[first_file..]
            .iter()
            .filter(|f| f.path == from)
            .map(|f| FileEntry {
                path: to.to_string(),
                ..f.clone()
            })
            .collect();
        for f in &files {
            *self.manifest.records.entry(f.table).or_default() += f.rows;
        }
        self.manifest.files.extend(files);
        let bad: Vec<BadRow> = self.manifest.bad_rows[first_bad..]
            .iter()
            .filter(|b| b.path == from)
            .map(|b| BadRow {
                path: to.to_string(),
                ..b.clone()
            })
            .collect();
        for b in &bad {
            *self.manifest.bad_row_counts.entry(b.reason).or_default() += 1;
        }
        self.manifest.bad_rows.extend(bad);
    }

    /// A full customer snapshot per region as of `cut`, as a plain CSV file.
    fn customer_snapshot(
        &mut self,
        world: &World,
        date: chrono::NaiveDate,
        cut: i64,
    ) -> Result<(), GenError> {
        let label = ymd(date);
        for (r, region) in world.regions.iter().enumerate() {
            let style = self.styles[r].clone();
            let name = member_name(Table::Customers, &style, &label);
            let path = format!("{}/{name}", region.code);
            let mut buf = MemberBuf::new(Table::Customers, &style);
            for (i, c) in world.customers.iter().enumerate() {
                if usize::from(c.region) == r && c.opened_at < cut {
                    let row = CustomerRow::of(world, i as u32, cut);
                    self.put(world, &style, &mut buf, &path, None, &row);
                }
            }
            let bytes = self.finish_member(buf, &path, None, r);
            write_atomically(&self.out.join(&path), &bytes)?;
            self.record_archive(
                &path,
                r,
                ExportKind::CustomerSnapshot,
                (date, date),
                date,
                1,
            )?;
        }
        Ok(())
    }
}

impl<R: Rng> Sink for MessySink<R> {
    fn day(&mut self, world: &World, day: &DayInfo, rows: &DayRows) -> Result<(), GenError> {
        let previous_cut = day.midnight_utc;
        let cut = (day.midnight_utc + crate::calendar::DAY_S).min(self.end);
        let d = ((day.midnight_utc - self.start) / crate::calendar::DAY_S) as usize;
        // Calls: those that ended today; the others wait for the day they end.
        let mut calls = Vec::new();
        for c in std::mem::take(&mut self.pending_calls)
            .into_iter()
            .chain(rows.calls.iter().cloned())
        {
            if c.ended_at < cut {
                calls.push(c);
            } else if c.ended_at < self.end {
                self.pending_calls.push(c);
            }
        }
        *self.manifest.rows.entry(Table::Calls.name()).or_default() += calls.len() as u64;
        // Tickets received today, and those whose state changed today.
        self.open_tickets.extend(rows.tickets.iter().cloned());
        *self.manifest.rows.entry(Table::Tickets.name()).or_default() += rows.tickets.len() as u64;
        let mut tickets = Vec::new();
        self.open_tickets.retain(|t| {
            if lifecycle_events(t).any(|e| e >= previous_cut && e < cut) {
                tickets.push(t.clone());
            }
            lifecycle_events(t).any(|e| e >= cut)
        });
        tickets.sort_by_key(|t| t.id);
        let customers = self.customer_changes.get(d).cloned().unwrap_or_default();
        *self
            .manifest
            .rows
            .entry(Table::Callbacks.name())
            .or_default() += rows.callbacks.len() as u64;
        *self.manifest.rows.entry(Table::Visits.name()).or_default() += rows.visits.len() as u64;
        let export = DayExport {
            date: day.date,
            calls,
            tickets,
            callbacks: rows.callbacks.clone(),
            visits: rows.visits.clone(),
            customers,
        };
        let daily = observe_export(world, std::slice::from_ref(&export), cut);
        self.write_archives(
            world,
            day,
            &daily,
            &ymd(day.date),
            ExportKind::Daily,
            (day.date, day.date),
        )?;
        if d == 0 || chrono::Datelike::day(&day.date) == 1 {
            self.customer_snapshot(world, day.date, cut)?;
        }
        self.recent.push_back(export);
        if self.recent.len() > 7 {
            self.recent.pop_front();
        }
        // Now and then an office exports its last seven days again.
        if self.recent.len() == 7 && self.plan.random::<f64>() < self.resend_rate {
            let exports: Vec<&DayExport> = self.recent.iter().collect();
            let first = exports[0].date;
            let owned: Vec<DayExport> = exports
                .iter()
                .map(|e| DayExport {
                    date: e.date,
                    calls: e.calls.clone(),
                    tickets: e.tickets.clone(),
                    callbacks: e.callbacks.clone(),
                    visits: e.visits.clone(),
                    customers: e.customers.clone(),
                })
                .collect();
            let again = observe_export(world, &owned, cut);
            let label = format!("{}-{}", ymd(first), ymd(day.date));
            self.write_archives(
                world,
                day,
                &again,
                &label,
                ExportKind::Reexport,
                (first, day.date),
            )?;
        }
        Ok(())
    }

    fn customers(&mut self, world: &World) -> Result<(), GenError> {
        // Customers arrive with the day archives and the snapshots; calls still going at
        // the end are not known yet.
        self.pending_calls.clear();
        // The head office's master data: the organisation, staff, queues and categories,
        // one canonical CSV each, delivered with the first day's exports.
        let master = crate::plain::write_dimensions(&self.out.join("master"), world)?;
        self.manifest.plan_deliveries();
        for (table, name, rows) in master.into_iter().rev() {
            self.manifest.rows.insert(table.name(), rows);
            self.manifest.records.insert(table.name(), rows);
            self.manifest.files.push(FileEntry {
                path: format!("master/{name}"),
                member: None,
                table: table.name(),
                region: String::new(),
                encoding: TextEncoding::Utf8,
                rows,
                bad_rows: 0,
            });
            if let Some(first) = self.manifest.deliveries.first_mut() {
                first.paths.insert(0, format!("master/{name}"));
            }
        }
        Ok(())
    }
}

/// The rows of one or more days' exports as an export made at `cut` shows them: each
/// ticket and customer once, in its state at the cut.
fn observe_export(world: &World, days: &[DayExport], cut: i64) -> ExportRows {
    let mut rows = ExportRows::default();
    let mut tickets = std::collections::BTreeSet::new();
    let mut customers = std::collections::BTreeSet::new();
    for d in days {
        rows.calls.extend(d.calls.iter().cloned());
        rows.callbacks.extend(d.callbacks.iter().cloned());
        rows.visits.extend(d.visits.iter().cloned());
        for t in &d.tickets {
            if tickets.insert(t.id) {
                rows.tickets.push(observe(t.clone(), cut));
            }
        }
        customers.extend(d.customers.iter().copied());
    }
    rows.customers = customers
        .into_iter()
        .map(|i| CustomerRow::of(world, i, cut))
        .collect();
    rows
}
