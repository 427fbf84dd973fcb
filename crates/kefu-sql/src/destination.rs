//! Where results go: stdout, a file replaced whole when the result is complete, or a
//! file appended to (the shell's `.output`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::output::{TableStyle, write_stream};
use crate::{Format, SqlError};

/// Where results go: stdout, or a file written beside its destination and renamed over
/// it when complete (a reader never sees half a result).
pub struct Destination {
    path: Option<PathBuf>,
    format: Format,
    pub style: TableStyle,
    /// Text results are added to the end of `path` (the shell's `.output`), not put in
    /// its place.
    append: bool,
    /// Rows written so far, for a spinner.
    rows: Option<Arc<AtomicU64>>,
}

impl Destination {
    /// Results to `output` (stdout without one) in `format`, else in the format the
    /// file's name says, else as a table; a table printed on a terminal takes its width.
    pub fn for_output(
        output: Option<PathBuf>,
        format: Option<Format>,
        style: TableStyle,
    ) -> Result<Self, SqlError> {
        use std::io::IsTerminal;
        let format = match (format, &output) {
            (Some(format), _) => format,
            (None, None) => Format::default(),
            (None, Some(path)) => Format::from_extension(&path.to_string_lossy())
                .ok_or_else(|| SqlError::UnknownOutputFormat { path: path.clone() })?,
        };
        let terminal = output.is_none() && std::io::stdout().is_terminal();
        if format.is_binary() && terminal {
            return Err(SqlError::BinaryToTerminal { format });
        }
        let style = TableStyle {
            width: if terminal { terminal_width() } else { None },
            ..style
        };
        Ok(Destination::to(output, format, style, false))
    }

    /// Results in `format` to `path` (stdout without one); text appended to the file when
    /// `append` (binary formats always replace it).
    pub fn to(path: Option<PathBuf>, format: Format, style: TableStyle, append: bool) -> Self {
        Destination {
            path,
            format,
            style,
            append,
            rows: None,
        }
    }

    /// The same, counting the rows it writes into `rows`.
    pub fn counting(self, rows: Arc<AtomicU64>) -> Self {
        Destination {
            rows: Some(rows),
            ..self
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The same format and layout, on stdout.
    pub fn on_stdout(self) -> Self {
        Destination { path: None, ..self }
    }

    pub async fn write(&self, df: datafusion::prelude::DataFrame) -> Result<u64, SqlError> {
        // Cancellable: the shell's Ctrl-C drops this, and joins must stop promptly.
        let mut stream = crate::execute_cancellable(df).await?;
        if let Some(rows) = &self.rows {
            let rows = rows.clone();
            let schema = stream.schema();
            stream = Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    schema,
                    futures::StreamExt::inspect(stream, move |batch| {
                        if let Ok(batch) = batch {
                            rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        }
                    }),
                ),
            );
        }
        match &self.path {
            Some(path) if self.append && !self.format.is_binary() => {
                let io = |error| SqlError::Io {
                    path: path.display().to_string(),
                    error,
                };
                let mut file = std::io::BufWriter::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(io)?,
                );
                let rows = write_stream(stream, self.format, &mut file, self.style).await?;
                file.flush().map_err(io)?;
                Ok(rows)
            }
            None => {
                let mut stdout = std::io::BufWriter::new(std::io::stdout());
                let rows = write_stream(stream, self.format, &mut stdout, self.style).await?;
                stdout.flush().map_err(|error| SqlError::Io {
                    path: "stdout".into(),
                    error,
                })?;
                Ok(rows)
            }
            Some(path) => {
                let io = |error| SqlError::Io {
                    path: path.display().to_string(),
                    error,
                };
                // A failed query drops the file: the old output stays as it was.
                let mut file = kefu_storage::atomic::AtomicFile::create(path).map_err(io)?;
                let rows = write_stream(stream, self.format, &mut file, self.style).await?;
                file.commit().map_err(io)?;
                Ok(rows)
            }
        }
    }
}

/// The terminal's width; none where it reports a size no table fits in (a pseudo-terminal
/// whose size was never set says 0 columns).
pub fn terminal_width() -> Option<u16> {
    comfy_table::Table::new().width().filter(|w| *w >= 20)
}

/// Plans and runs the statements of `script` one by one (all parsed first, so a syntax
/// error runs nothing), writing each result to `destination`; `ran` gets each
/// statement's time.
pub async fn run_script(
    engine: &crate::Engine,
    script: &str,
    destination: &Destination,
    mut ran: impl FnMut(std::time::Duration),
) -> Result<(), SqlError> {
    for statement in engine.parse(script)? {
        let started = Instant::now();
        let df = engine.plan(statement).await?;
        destination.write(df).await?;
        ran(started.elapsed());
    }
    Ok(())
}
