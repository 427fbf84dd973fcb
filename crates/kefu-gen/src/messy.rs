//! Messy output: the files as regional offices really send them.
//!
//! Layout: `<out>/<region>/<region>_<yyyymmdd>.zip|tar.gz`, one archive per region and
//! local day holding that day's calls, tickets, callbacks and visits (one CSV each, named
//! after the table in English or Chinese), plus `<out>/<region>/<customers file>.csv`, the
//! customer snapshot at the end of the period, and `<out>/manifest.json`.
//!
//! Every region has its own [`ExportStyle`] (encoding, headers, line endings, date and
//! duration formats). After a random share of rows an extra, deliberately bad row is written
//! (a corrupted copy of the row before it, with an id nothing references); the manifest
//! lists each with its file, archive member, line number, column and reason, so ingest can
//! be checked against it. The good rows are exactly the rows of the plain output.

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
use crate::sim::{DayRows, Sink};
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

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub generator: String,
    pub seed: u64,
    pub start: String,
    pub days: u32,
    pub customers: u32,
    pub bad_row_rate: f64,
    pub regions: Vec<RegionStyle>,
    /// Good rows per table over all files.
    pub rows: BTreeMap<&'static str, u64>,
    /// Bad rows per reason.
    pub bad_row_counts: BTreeMap<BadReason, u64>,
    /// Good call rows whose wait_s or talk_s was left empty although their timestamps
    /// determine it (ingest should derive it, not reject the row).
    pub blanked_durations: u64,
    pub files: Vec<FileEntry>,
    pub bad_rows: Vec<BadRow>,
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
    rate: f64,
    end_yyyymmdd: String,
    record: ByteRecord,
    next_bad: u64,
    pub manifest: Manifest,
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
    }
}

impl<R: Rng> MessySink<R> {
    pub fn new(
        out: &Path,
        world: &World,
        times: TimeFormatter,
        rng: R,
        manifest: Manifest,
        end_yyyymmdd: String,
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
        Ok(MessySink {
            out: out.to_path_buf(),
            rate: manifest.bad_row_rate,
            styles,
            times,
            rng,
            end_yyyymmdd,
            record: ByteRecord::new(),
            next_bad: 0,
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
        *self.manifest.rows.entry(buf.table.name()).or_default() += buf.rows;
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

/// Writes a whole file under a temporary name, syncs it and renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), GenError> {
    let err = |source| GenError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut f = std::fs::File::create(&partial).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&partial, path).map_err(err)
}

fn archive(kind: ArchiveKind, day: &DayInfo, members: &[(String, Vec<u8>)]) -> Vec<u8> {
    use chrono::Datelike;
    // Members carry the export time (02:00 the next morning), so archives are reproducible.
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
                .compression_level(Some(1))
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
                .write(Vec::new(), flate2::Compression::fast());
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

impl<R: Rng> Sink for MessySink<R> {
    fn day(&mut self, world: &World, day: &DayInfo, rows: &DayRows) -> Result<(), GenError> {
        let ymd = day.date.format("%Y%m%d").to_string();
        for (r, region) in world.regions.iter().enumerate() {
            let style = self.styles[r].clone();
            let archive_name = format!("{}_{ymd}.{}", region.code, style.archive.extension());
            let path = format!("{}/{archive_name}", region.code);
            let r16 = r as u16;
            let mut members = Vec::with_capacity(4);
            macro_rules! member {
                ($rows:expr, $ty:ty, $region:expr) => {{
                    let name = member_name(<$ty>::TABLE, &style, &ymd);
                    let mut buf = MemberBuf::new(<$ty>::TABLE, &style);
                    for row in rows_of_region(&$rows, r16, $region) {
                        self.put(world, &style, &mut buf, &path, Some(&name), row);
                    }
                    let bytes = self.finish_member(buf, &path, Some(&name), r);
                    members.push((name, bytes));
                }};
            }
            member!(rows.calls, CallRec, |c: &CallRec| c.region);
            member!(rows.tickets, TicketRec, |t: &TicketRec| t.region);
            member!(rows.callbacks, CallbackRec, |c: &CallbackRec| c.region);
            member!(rows.visits, VisitRec, |v: &VisitRec| v.region);
            let bytes = archive(style.archive, day, &members);
            write_atomically(&self.out.join(&path), &bytes)?;
        }
        Ok(())
    }

    fn customers(&mut self, world: &World) -> Result<(), GenError> {
        for (r, region) in world.regions.iter().enumerate() {
            let style = self.styles[r].clone();
            let name = member_name(Table::Customers, &style, &self.end_yyyymmdd);
            let path = format!("{}/{name}", region.code);
            let mut buf = MemberBuf::new(Table::Customers, &style);
            for (i, c) in world.customers.iter().enumerate() {
                if usize::from(c.region) == r {
                    let row = CustomerRow::of(world, i as u32);
                    self.put(world, &style, &mut buf, &path, None, &row);
                }
            }
            let bytes = self.finish_member(buf, &path, None, r);
            write_atomically(&self.out.join(&path), &bytes)?;
        }
        Ok(())
    }
}
