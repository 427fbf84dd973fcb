//! The session described for people: its tables and columns (the shell's `\d`), and
//! errors that point at the statement's position and suggest the table meant.

use std::sync::Arc;

use crate::Engine;
use crate::output::{TableStyle, render_table};

impl Engine {
    /// An error for people: the statement's line with the position underlined where the
    /// parser gives one, and the nearest table name for an unknown one.
    pub fn explain(&self, sql: &str, message: &str) -> String {
        let mut text = message.to_string();
        if let Some((line, column)) = position(message)
            && let Some(source) = sql.lines().nth(line.saturating_sub(1))
        {
            let caret = " ".repeat(
                source[..source.len().min(column.saturating_sub(1))]
                    .chars()
                    .count(),
            );
            text.push_str(&format!("\n  {source}\n  {caret}^"));
        }
        if let Some(missing) = unknown_table(message) {
            let names = self.tables().iter().map(|t| t.name.as_str());
            if let Some(best) = names
                .map(|n| (strsim::damerau_levenshtein(&missing, n), n))
                .filter(|(d, n)| *d <= 2.max(n.len() / 3))
                .min()
            {
                text.push_str(&format!("\nDid you mean '{}'?", best.1));
            }
        }
        text
    }

    /// `\d`: the tables with their column counts and partition columns.
    pub fn describe_tables(&self, style: TableStyle) -> String {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("table", arrow::datatypes::DataType::Utf8, false),
            arrow::datatypes::Field::new("columns", arrow::datatypes::DataType::Utf8, false),
            arrow::datatypes::Field::new("partitioned by", arrow::datatypes::DataType::Utf8, false),
        ]));
        let rows: Vec<Vec<String>> = self
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
    pub fn describe_table(&self, name: &str, style: TableStyle) -> Option<String> {
        let table = self.tables().iter().find(|t| t.name == name)?;
        let text =
            |n: &str| arrow::datatypes::Field::new(n, arrow::datatypes::DataType::Utf8, false);
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
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
}

/// `Line: 2, Column: 26` in a parser's message.
fn position(message: &str) -> Option<(usize, usize)> {
    let after = message.split("Line: ").nth(1)?;
    let (line, rest) = after.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// The name in DataFusion's "table 'datafusion.public.cals' not found".
fn unknown_table(message: &str) -> Option<String> {
    let after = message.split("table '").nth(1)?;
    let (name, rest) = after.split_once('\'')?;
    rest.trim_start()
        .starts_with("not found")
        .then(|| name.rsplit('.').next().unwrap_or(name).to_string())
}
