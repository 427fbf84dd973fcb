//! The interactive SQL shell: line editing, history kept after every statement, Tab
//! completion of tables, columns, functions and keywords, statements over several lines
//! up to `;`, Ctrl-C that cancels the running query and keeps the shell, a spinner with
//! rows and elapsed time for long queries, errors with their position underlined, and
//! commands in both psql's (`\d`) and DuckDB's (`.tables`) spelling. `~/.kefurc` runs
//! first (commands and statements, one per line).

use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::output::{Destination, TableStyle, run_script};
use crate::{Engine, Format, SqlError};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

const HELP: &str = "\
Statements end with ; and may span lines. Ad hoc SQL is read-only over the warehouse;
your own files can be read beside it: SELECT * FROM 'targets.csv', read_csv('…'),
read_parquet('…'), read_json('…'), CREATE EXTERNAL TABLE, CREATE VIEW.
  \\d  or .tables         list the tables
  \\d NAME or .schema NAME show a table's columns
  .mode MODE             table, csv, tsv, json, ndjson, markdown, vertical, parquet, xlsx
  \\x                     vertical rows on or off (as .mode vertical)
  \\timing or .timer on|off   show each statement's time
  \\o FILE or .output FILE    write results to FILE (parquet and xlsx need one);
                             \\o or .output alone: back to the screen
  \\q, .quit or Ctrl-D    quit
  \\? or .help            this help
Tab completes tables, columns, functions and keywords. Ctrl-C cancels a running query
(or clears the statement being typed). History is kept in ~/.local/state/kefu/;
~/.kefurc runs at start.";

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("kefu").join("sql_history"))
}

/// What Tab offers: the session's tables and their columns, its functions, SQL keywords,
/// and the shell's commands.
struct Completion {
    words: Vec<String>,
}

impl Completion {
    fn of(engine: &Engine) -> Self {
        let mut words: Vec<String> = Vec::new();
        for table in engine.tables() {
            words.push(table.name.clone());
            words.extend(table.schema.fields().iter().map(|f| f.name().clone()));
        }
        let state = engine.context().state();
        words.extend(state.scalar_functions().keys().cloned());
        words.extend(state.aggregate_functions().keys().cloned());
        words.extend(state.window_functions().keys().cloned());
        words.extend(state.table_functions().keys().cloned());
        words.extend(
            datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
                .iter()
                .map(|k| k.to_string()),
        );
        for command in [
            ".tables", ".schema", ".mode", ".timer", ".output", ".help", ".quit", "\\d", "\\x",
            "\\o", "\\timing", "\\q",
        ] {
            words.push(command.to_string());
        }
        words.sort();
        words.dedup();
        Completion { words }
    }
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '\\'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        // Keywords are offered in the case typed; names as they are.
        let upper = word.chars().next().is_some_and(char::is_uppercase);
        let lower = word.to_lowercase();
        let candidates = self
            .words
            .iter()
            .filter(|w| w.to_lowercase().starts_with(&lower))
            .map(|w| {
                let keyword = w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
                let text = match (keyword, upper) {
                    (true, false) => w.to_lowercase(),
                    _ => w.clone(),
                };
                Pair {
                    display: text.clone(),
                    replacement: text,
                }
            })
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {
    fn highlight<'l>(&self, line: &'l str, _: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}
impl Validator for Completion {}
impl Helper for Completion {}

/// The shell's settings, changed by its commands.
struct Settings {
    format: Format,
    style: TableStyle,
    output: Option<PathBuf>,
    timing: bool,
}

impl Settings {
    fn destination(&self) -> Destination {
        Destination::to(self.output.clone(), self.format, self.style, true)
    }
}

/// What a command line did.
enum Command {
    Quit,
    Done,
}

/// Runs the shell over `engine` until `\q` or end of input; results go where `output`
/// says (the shell's `.output` and `.mode` change that).
pub async fn run(engine: &Engine, output: &Destination) -> Result<(), SqlError> {
    let mut editor: Editor<Completion, DefaultHistory> =
        Editor::new().map_err(SqlError::ShellStart)?;
    editor.set_helper(Some(Completion::of(engine)));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    eprintln!(
        "kefu sql: {} tables; \\? or .help for help, \\q to quit",
        engine.tables().len()
    );
    let mut settings = Settings {
        format: output.format(),
        style: output.style,
        output: None,
        timing: true,
    };
    if let Some(rc) = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kefurc"))
        && let Ok(text) = std::fs::read_to_string(&rc)
    {
        let mut buffer = String::new();
        for line in text.lines() {
            if let Some(Command::Quit) = feed(engine, &mut settings, &mut buffer, line, false).await
            {
                return Ok(());
            }
        }
    }
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
            Err(e) => return Err(SqlError::Input(e)),
        };
        let was_empty = buffer.is_empty();
        let outcome = feed(engine, &mut settings, &mut buffer, &line, true).await;
        // A command, or a statement once complete, goes to the history at once: a shell
        // killed later keeps what was typed.
        let entry = if was_empty && is_command(line.trim()) {
            Some(line.trim().to_string())
        } else if buffer.is_empty() && !line.trim().is_empty() {
            Some(last_statement(&line))
        } else {
            None
        };
        if let Some(entry) = entry {
            let _ = editor.add_history_entry(entry);
            if let Some(path) = &history {
                let _ = editor.save_history(path);
            }
        }
        if let Some(Command::Quit) = outcome {
            break;
        }
    }
    Ok(())
}

fn last_statement(line: &str) -> String {
    line.trim().to_string()
}

fn is_command(line: &str) -> bool {
    line.starts_with('\\') || line.starts_with('.')
}

/// Feeds one line: a command runs at once; SQL collects in `buffer` up to `;` and then
/// runs. Returns what a command did.
async fn feed(
    engine: &Engine,
    settings: &mut Settings,
    buffer: &mut String,
    line: &str,
    interactive: bool,
) -> Option<Command> {
    let trimmed = line.trim();
    if buffer.is_empty() && is_command(trimmed) {
        return Some(command(engine, settings, trimmed));
    }
    if buffer.is_empty() && trimmed.is_empty() {
        return None;
    }
    buffer.push_str(line);
    buffer.push('\n');
    if !trimmed.ends_with(';') {
        return None;
    }
    let sql = std::mem::take(buffer);
    let started = Instant::now();
    let rows = Arc::new(AtomicU64::new(0));
    let spinning = interactive && std::io::stderr().is_terminal();
    // The spinner runs beside the query in this task: it stops the moment the query does.
    let spinner = async {
        if spinning {
            spin(rows.clone(), started).await;
        }
        std::future::pending::<()>().await;
    };
    let destination = settings.destination().counting(rows.clone());
    let outcome = tokio::select! {
        result = run_script(engine, &sql, &destination, |_| {}) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
        () = spinner => None,
    };
    if spinning {
        eprint!("\r\x1b[2K");
    }
    match outcome {
        Some(Ok(())) => {}
        Some(Err(e)) => eprintln!("error: {}", engine.explain(&sql, &e.to_string())),
        None => eprintln!("cancelled"),
    }
    if settings.timing {
        eprintln!("Time: {:.3} s", started.elapsed().as_secs_f64());
    }
    None
}

/// After a second, a spinner on stderr with the rows so far and the time taken.
async fn spin(rows: Arc<AtomicU64>, started: Instant) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    for frame in frames.iter().cycle() {
        eprint!(
            "\r\x1b[2K{frame} {} rows, {:.1} s (Ctrl-C cancels)",
            rows.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs one of the shell's commands.
fn command(engine: &Engine, settings: &mut Settings, line: &str) -> Command {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let argument = words.next();
    match (name, argument) {
        ("\\q" | ".quit" | ".exit", _) => return Command::Quit,
        ("\\?" | ".help", _) => println!("{HELP}"),
        ("\\timing", None) => {
            settings.timing = !settings.timing;
            println!("timing is {}", if settings.timing { "on" } else { "off" });
        }
        (".timer" | "\\timing", Some(on)) => match on {
            "on" => settings.timing = true,
            "off" => settings.timing = false,
            other => eprintln!("{name} on|off, not '{other}'"),
        },
        ("\\d" | ".tables", None) => print!("{}", engine.describe_tables(settings.style)),
        ("\\d" | ".schema" | ".tables", Some(table)) => {
            match engine.describe_table(table, settings.style) {
                Some(text) => print!("{text}"),
                None => eprintln!("no table '{table}' (\\d or .tables lists them)"),
            }
        }
        (".schema", None) => {
            for table in engine.tables() {
                if let Some(text) = engine.describe_table(&table.name, settings.style) {
                    println!("{}:", table.name);
                    print!("{text}");
                }
            }
        }
        ("\\x", _) => {
            settings.format = if settings.format == Format::Vertical {
                Format::Table
            } else {
                Format::Vertical
            };
            println!(
                "vertical rows are {}",
                if settings.format == Format::Vertical {
                    "on"
                } else {
                    "off"
                }
            );
        }
        (".mode", None) => println!("mode is {}", settings.format),
        (".mode", Some(mode)) => match mode.parse::<Format>() {
            Ok(format) if format.is_binary() && settings.output.is_none() => {
                eprintln!("{format} is binary: .output FILE first (results then go to that file)")
            }
            Ok(format) => settings.format = format,
            Err(e) => eprintln!("{e}"),
        },
        ("\\o" | ".output", None) => {
            if settings.format.is_binary() {
                settings.format = Format::Table;
            }
            settings.output = None;
        }
        ("\\o" | ".output", Some(path)) => {
            settings.output = Some(PathBuf::from(path));
            if let Some(format) = Format::from_extension(path) {
                settings.format = format;
            }
            println!("results go to {path} ({})", settings.format);
        }
        (other, _) => eprintln!("unknown command {other} (\\? or .help lists them)"),
    }
    Command::Done
}
