//! The interactive SQL shell: line editing and history (rustyline), statements over
//! several lines up to `;`, backslash commands, timing.

use std::time::Instant;

use kefu_sql::Engine;
use kefu_sql::output::{TableStyle, render_table};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::cli::{CliResult, exit};
use crate::sql::{Destination, run_script};

const HELP: &str = "\
Statements end with ; and may span lines. Ad hoc SQL is read-only.
  \\d          list the tables
  \\d NAME     show a table's columns
  \\timing     turn timing on or off
  \\q          quit (or Ctrl-D)
  \\?          this help";

fn history_path() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state"))
        })?;
    Some(base.join("kefu").join("sql_history"))
}

pub(crate) async fn run(engine: &Engine, output: &Destination) -> CliResult {
    let mut editor = DefaultEditor::new()
        .map_err(|e| (exit::FAILURE, format!("cannot start the shell: {e}")))?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!(
        "kefu sql: {} tables; \\? for help, \\q to quit",
        engine.tables().len()
    );
    let mut timing = true;
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "kefu> "
        } else {
            "   -> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err((exit::IO, format!("reading input: {e}"))),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some("\\q"), _) => break,
                (Some("\\?"), _) => println!("{HELP}"),
                (Some("\\timing"), _) => {
                    timing = !timing;
                    println!("timing is {}", if timing { "on" } else { "off" });
                }
                (Some("\\d"), None) => print!("{}", describe_tables(engine, output.style)),
                (Some("\\d"), Some(name)) => match describe_table(engine, name, output.style) {
                    Some(text) => print!("{text}"),
                    None => eprintln!("no table '{name}' (\\d lists them)"),
                },
                (Some(other), _) => eprintln!("unknown command {other} (\\? for help)"),
                (None, _) => {}
            }
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(sql.trim());
        let started = Instant::now();
        match run_script(engine, &sql, output, |_| {}).await {
            Ok(()) => {}
            Err(message) => eprintln!("error: {message}"),
        }
        if timing {
            eprintln!("Time: {:.3} s", started.elapsed().as_secs_f64());
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(path);
    }
    Ok(())
}

/// `\d`: the tables with their column counts and partition columns.
pub fn describe_tables(engine: &Engine, style: TableStyle) -> String {
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("table", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("columns", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("partitioned by", arrow::datatypes::DataType::Utf8, false),
    ]));
    let rows: Vec<Vec<String>> = engine
        .tables()
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.schema.fields().len().to_string(),
                t.partition_columns.join(", "),
            ]
        })
        .collect();
    render_table(&schema, &rows, rows.len() as u64, style)
}

/// `\d NAME`: a table's columns with types and nullability.
pub fn describe_table(engine: &Engine, name: &str, style: TableStyle) -> Option<String> {
    let table = engine.tables().iter().find(|t| t.name == name)?;
    let text = |n: &str| arrow::datatypes::Field::new(n, arrow::datatypes::DataType::Utf8, false);
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        text("column"),
        text("type"),
        text("nullable"),
    ]));
    let rows: Vec<Vec<String>> = table
        .schema
        .fields()
        .iter()
        .map(|f| {
            let partition = table.partition_columns.contains(f.name());
            vec![
                f.name().clone(),
                if partition {
                    format!("{} (partition)", f.data_type())
                } else {
                    f.data_type().to_string()
                },
                if f.is_nullable() { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    Some(render_table(&schema, &rows, rows.len() as u64, style))
}
