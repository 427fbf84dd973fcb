//! Plain output: one file per table (`calls.csv`, …, or `.jsonl`), canonical formatting;
//! the dimensions (organisation, staff, queues, categories) are CSV in either format.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use kefu_model::Table;
use kefu_storage::atomic::AtomicFile;

use crate::GenError;
use crate::calendar::{DayInfo, TimeFormatter};
use crate::config::OutputFormat;
use crate::fields::{CsvFields, DirectCsv, JsonFields};
use crate::record::{CallRec, CustomerRow, Row, TicketRec};
use crate::sim::{DayRows, Sink, observe};
use crate::world::World;

enum TableOut {
    Csv(Box<csv::Writer<AtomicFile>>),
    Jsonl(BufWriter<AtomicFile>),
}

struct TableFile {
    table: Table,
    path: PathBuf,
    out: TableOut,
    rows: u64,
}

/// Writes each table under a temporary name and puts it in place at the end
/// ([`AtomicFile`]), so a failed or interrupted run never leaves a file that looks complete.
///
/// The output is the world as known at the end of the period (`end`): tickets in the
/// state they show then, calls that have ended by then.
pub struct PlainSink {
    files: Vec<TableFile>,
    /// The dimensions' files, written whole at the end: (table, path, rows).
    dimensions: Vec<(Table, PathBuf, u64)>,
    times: TimeFormatter,
    json: Vec<u8>,
    end: i64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl PlainSink {
    pub fn create(
        dir: &Path,
        format: OutputFormat,
        times: TimeFormatter,
        end: i64,
    ) -> Result<Self, GenError> {
        let mut files = Vec::new();
        for table in Table::ALL
            .into_iter()
            .filter(|t| !crate::dims::TABLES.contains(t))
        {
            let path = dir.join(format!("{}.{}", table.name(), format.extension()));
            let file = AtomicFile::create(&path).map_err(io_err(&path))?;
            let out = match format {
                OutputFormat::Csv => {
                    let mut w = csv::WriterBuilder::new()
                        .buffer_capacity(1 << 20)
                        .from_writer(file);
                    let header: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
                    w.write_record(&header).map_err(|e| csv_err(&path, e))?;
                    TableOut::Csv(Box::new(w))
                }
                OutputFormat::Jsonl => TableOut::Jsonl(BufWriter::with_capacity(1 << 20, file)),
            };
            files.push(TableFile {
                table,
                path,
                out,
                rows: 0,
            });
        }
        Ok(PlainSink {
            files,
            dimensions: Vec::new(),
            times,
            json: Vec::new(),
            end,
        })
    }

    fn write<R: Row>(&mut self, world: &World, rows: &[R]) -> Result<(), GenError> {
        let file = &mut self.files[R::TABLE as usize];
        debug_assert_eq!(file.table, R::TABLE);
        let columns = R::TABLE.columns();
        match &mut file.out {
            TableOut::Csv(w) => {
                let mut direct = DirectCsv {
                    writer: w,
                    error: None,
                };
                for row in rows {
                    row.write_row(
                        world,
                        &mut CsvFields::into_sink(&mut direct, columns, None, &self.times),
                    );
                }
                if let Some(e) = direct.error {
                    return Err(csv_err(&file.path, e));
                }
            }
            TableOut::Jsonl(w) => {
                self.json.clear();
                for row in rows {
                    row.write_row(
                        world,
                        &mut JsonFields::new(&mut self.json, columns, &self.times),
                    );
                }
                w.write_all(&self.json).map_err(io_err(&file.path))?;
            }
        }
        file.rows += rows.len() as u64;
        Ok(())
    }

    /// Flushes, renames every file into place, and returns (table, path, rows) per file.
    pub fn finish(self) -> Result<Vec<(Table, PathBuf, u64)>, GenError> {
        let mut done = Vec::new();
        for f in self.files {
            let file = match f.out {
                TableOut::Csv(w) => w
                    .into_inner()
                    .map_err(|e| io_err(&f.path)(e.into_error()))?,
                TableOut::Jsonl(w) => w
                    .into_inner()
                    .map_err(|e| io_err(&f.path)(e.into_error()))?,
            };
            file.commit().map_err(io_err(&f.path))?;
            done.push((f.table, f.path, f.rows));
        }
        done.extend(self.dimensions);
        Ok(done)
    }
}

pub(crate) fn csv_err(path: &Path, e: csv::Error) -> GenError {
    GenError::Write {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

impl Sink for PlainSink {
    fn day(&mut self, world: &World, _day: &DayInfo, rows: &DayRows) -> Result<(), GenError> {
        let end = self.end;
        if rows.calls.iter().all(|c| c.ended_at < end) {
            self.write(world, &rows.calls)?;
        } else {
            // A call still going at the end of the period is not known yet.
            let ended: Vec<CallRec> = rows
                .calls
                .iter()
                .filter(|c| c.ended_at < end)
                .cloned()
                .collect();
            self.write(world, &ended)?;
        }
        let tickets: Vec<TicketRec> = rows
            .tickets
            .iter()
            .map(|t| observe(t.clone(), end))
            .collect();
        self.write(world, &tickets)?;
        self.write(world, &rows.callbacks)?;
        self.write(world, &rows.visits)
    }

    fn customers(&mut self, world: &World) -> Result<(), GenError> {
        let all: Vec<CustomerRow> = (0..world.customers.len() as u32)
            .map(|i| CustomerRow::of(world, i, self.end))
            .collect();
        self.write(world, &all)?;
        let dir = self.files[0]
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for (table, name, rows) in write_dimensions(&dir, world)? {
            self.dimensions.push((table, dir.join(name), rows));
        }
        Ok(())
    }
}

/// The dimensions of `world` (organisation, staff, queues, categories) as canonical CSV
/// files `<table>.csv` in `dir`, each written whole or not at all; returns each table
/// with its file name and rows.
pub(crate) fn write_dimensions(
    dir: &Path,
    world: &World,
) -> Result<Vec<(Table, String, u64)>, GenError> {
    fn csv_of<R: Row>(world: &World, times: &TimeFormatter, rows: &[R]) -> Vec<u8> {
        let columns = R::TABLE.columns();
        let mut w = csv::Writer::from_writer(Vec::new());
        let header: Vec<&str> = columns.iter().map(|c| c.name).collect();
        w.write_record(&header).expect("writing to memory");
        let mut direct = DirectCsv {
            writer: &mut w,
            error: None,
        };
        for row in rows {
            row.write_row(
                world,
                &mut CsvFields::into_sink(&mut direct, columns, None, times),
            );
        }
        w.into_inner().expect("writing to memory")
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let dims = crate::dims::Dimensions::of(world);
    let times = TimeFormatter::new(0, 0);
    let mut written = Vec::new();
    for (table, bytes, rows) in [
        (
            Table::OrgUnits,
            csv_of(world, &times, &dims.org_units),
            dims.org_units.len(),
        ),
        (
            Table::Staff,
            csv_of(world, &times, &dims.staff),
            dims.staff.len(),
        ),
        (
            Table::Queues,
            csv_of(world, &times, &dims.queues),
            dims.queues.len(),
        ),
        (
            Table::Categories,
            csv_of(world, &times, &dims.categories),
            dims.categories.len(),
        ),
    ] {
        let name = format!("{}.csv", table.name());
        crate::messy::write_atomically(&dir.join(&name), &bytes)?;
        written.push((table, name, rows as u64));
    }
    Ok(written)
}
