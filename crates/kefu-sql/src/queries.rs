//! The named query library: one `.sql` file a query, embedded from `queries/` and
//! overridable by a directory of files with the same names.
//!
//! A query file starts with a header of `--` comments:
//!
//! ```sql
//! -- purpose: what the query answers
//! -- formula: the KPI's formula, as the documents state it
//! -- grain: one row per …
//! -- param: from date 2026-01-01  first local day, inclusive
//! -- param: region text %  region code, or % for all
//! SELECT … WHERE local_date(ivr_entered_at) >= {{from}} AND region LIKE {{region}}
//! ```
//!
//! An optional `-- lookahead: 3 months` (or `N days`, `all`) says how far past a period's
//! end newer data still changes its rows, so that jobs know what to recompute. It may
//! name an int parameter (`{days} days`); beyond it, only whether the warehouse holds
//! any later data may matter (jobs recompute a period when that changes).
//!
//! An optional `-- period column: month` promises that the query run over a range of
//! months (`from`..`to`) returns, for each month, exactly the rows it returns run over
//! that month alone, that the named column (a date) says which month a row is of, and
//! that the rows come ordered by that column first. A job that must recompute several
//! months of it then runs it once over them and splits the rows, instead of once a
//! month: one scan of the year, not twelve; and it assembles the whole range's result
//! from the months' results, as a report over that range would have it.
//!
//! A parameter is `name type default description`, with type `date`, `int`, `float` or
//! `text`. In the body `{{name}}` becomes an SQL literal of that type (text quoted,
//! every value validated first, so values cannot inject SQL); `{{name:month}}` becomes a
//! date's `'YYYY-MM'`, for pruning the `month` partitions; `{{name:utc}}` becomes the
//! UTC instant at which that local day starts on the warehouse's calendar
//! (`local_midnight`, folded to a constant at planning), for pruning row groups by event
//! time; `{{name:days}}` (or `months`, `weeks`, `hours`,
//! `minutes`, `seconds`) turns an int into an interval of that many days.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;

use crate::SqlError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_queries.rs"));
}

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Date,
    Int,
    Float,
    Text,
}

impl ParamType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "date" => ParamType::Date,
            "int" => ParamType::Int,
            "float" => ParamType::Float,
            "text" => ParamType::Text,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::Date => "date",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Text => "text",
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    pub default: String,
    pub description: String,
}

/// A query of the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    pub name: String,
    pub purpose: String,
    pub formula: String,
    pub grain: String,
    pub params: Vec<Param>,
    /// How far past a period's end newer data still changes the result (`-- lookahead:`
    /// in the header: `N months`, `N days` or `all`), for jobs that recompute only the
    /// periods new data touched; `None` means no further than the period's end.
    pub lookahead: Option<String>,
    /// The result's column (a date) that says which period a row is of, when the query
    /// run over several periods returns each one's rows as it does run over it alone
    /// (`-- period column:` in the header).
    pub period_column: Option<String>,
    /// The SQL with its `{{…}}` placeholders.
    pub body: String,
    /// Where it came from: `embedded` or a file path.
    pub origin: String,
}

impl fmt::Display for NamedQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.name, self.purpose)?;
        if !self.formula.is_empty() {
            writeln!(f, "  formula: {}", self.formula)?;
        }
        if !self.grain.is_empty() {
            writeln!(f, "  grain: {}", self.grain)?;
        }
        for p in &self.params {
            writeln!(
                f,
                "  --param {}=<{}> (default {}): {}",
                p.name,
                p.kind.name(),
                p.default,
                p.description
            )?;
        }
        Ok(())
    }
}

impl NamedQuery {
    /// Parses a query file's text.
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Self, SqlError> {
        let err = |line: usize, reason: String| SqlError::QueryFile {
            file: origin.to_string(),
            line,
            reason,
        };
        let mut q = NamedQuery {
            name: name.to_string(),
            purpose: String::new(),
            formula: String::new(),
            grain: String::new(),
            params: Vec::new(),
            lookahead: None,
            period_column: None,
            body: String::new(),
            origin: origin.to_string(),
        };
        let mut last_key = "";
        let mut body_start = text.len();
        let mut offset = 0;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            let Some(comment) = trimmed.strip_prefix("--") else {
                if trimmed.is_empty() {
                    offset += line.len() + 1;
                    continue;
                }
                body_start = offset;
                break;
            };
            offset += line.len() + 1;
            let comment = comment.trim();
            let (key, value) = match comment.split_once(':') {
                Some((k, v))
                    if [
                        "purpose",
                        "formula",
                        "grain",
                        "param",
                        "lookahead",
                        "period column",
                    ]
                    .contains(&k.trim()) =>
                {
                    (k.trim(), v.trim())
                }
                _ => {
                    // A continuation of the previous key.
                    let target = match last_key {
                        "purpose" => &mut q.purpose,
                        "formula" => &mut q.formula,
                        "grain" => &mut q.grain,
                        _ => continue,
                    };
                    if !comment.is_empty() {
                        target.push(' ');
                        target.push_str(comment);
                    }
                    continue;
                }
            };
            last_key = key;
            match key {
                "purpose" => q.purpose = value.to_string(),
                "formula" => q.formula = value.to_string(),
                "grain" => q.grain = value.to_string(),
                "lookahead" => q.lookahead = Some(value.to_string()),
                "period column" => q.period_column = Some(value.to_string()),
                _ => {
                    let mut parts = value.splitn(4, char::is_whitespace);
                    let (Some(pname), Some(kind), Some(default)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(err(
                            i + 1,
                            "param needs: name type default description".into(),
                        ));
                    };
                    let kind = ParamType::parse(kind).ok_or_else(|| {
                        err(
                            i + 1,
                            format!(
                                "param {pname}: unknown type '{kind}' (date, int, float, text)"
                            ),
                        )
                    })?;
                    literal(kind, default)
                        .map_err(|e| err(i + 1, format!("param {pname}: default {e}")))?;
                    q.params.push(Param {
                        name: pname.to_string(),
                        kind,
                        default: default.to_string(),
                        description: parts.next().unwrap_or("").trim().to_string(),
                    });
                }
            }
        }
        q.body = text[body_start.min(text.len())..].trim().to_string();
        if q.purpose.is_empty() {
            return Err(err(1, "the header has no '-- purpose:' line".into()));
        }
        if q.body.is_empty() {
            return Err(err(1, "no SQL after the header".into()));
        }
        // Runs over a range of periods take it as `from` and `to`.
        let is_date = |n: &str| {
            q.params
                .iter()
                .any(|p| p.name == n && p.kind == ParamType::Date)
        };
        if q.period_column.is_some() && !(is_date("from") && is_date("to")) {
            return Err(err(
                1,
                "'-- period column:' needs date parameters 'from' and 'to'".into(),
            ));
        }
        // Every placeholder names a declared parameter.
        q.render(&[])?;
        Ok(q)
    }

    /// The lookahead (`-- lookahead:`) with its `{param}` references filled in from
    /// `values`, or the parameters' defaults where `values` does not name them.
    pub fn lookahead_with(&self, values: &[(String, String)]) -> Option<String> {
        let mut filled = self.lookahead.clone()?;
        for declared in &self.params {
            let value = values
                .iter()
                .find(|(name, _)| *name == declared.name)
                .map_or(declared.default.as_str(), |(_, v)| v.trim());
            filled = filled.replace(&format!("{{{}}}", declared.name), value);
        }
        Some(filled)
    }

    /// The SQL with parameters filled in: `values` (name, value) over the defaults.
    pub fn render(&self, values: &[(String, String)]) -> Result<String, SqlError> {
        let err = |reason: String| SqlError::Query {
            query: self.name.clone(),
            reason,
        };
        let mut chosen: BTreeMap<&str, &str> = self
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.default.as_str()))
            .collect();
        for (name, value) in values {
            let Some(slot) = chosen.get_mut(name.as_str()) else {
                let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                return Err(err(format!(
                    "no parameter '{name}' (it takes: {})",
                    known.join(", ")
                )));
            };
            *slot = value;
        }
        let mut out = String::with_capacity(self.body.len());
        let mut rest = self.body.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| err("a '{{' without '}}'".into()))?;
            let placeholder = after[..end].trim();
            let (name, modifier) = placeholder
                .split_once(':')
                .map_or((placeholder, None), |(n, m)| (n, Some(m)));
            let param = self
                .params
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| err(format!("{{{{{name}}}}} is not a declared parameter")))?;
            let value = chosen[name];
            let text =
                match modifier {
                    None => literal(param.kind, value),
                    Some("month") if param.kind == ParamType::Date => {
                        date(value).map(|d| format!("'{}'", d.format("%Y-%m")))
                    }
                    // On the engine's calendar (the warehouse's zone); a constant, folded
                    // at planning, so it still prunes by event time.
                    Some("utc") if param.kind == ParamType::Date => date(value)
                        .map(|d| format!("local_midnight(DATE '{}')", d.format("%Y-%m-%d"))),
                    Some(
                        unit @ ("months" | "weeks" | "days" | "hours" | "minutes" | "seconds"),
                    ) if param.kind == ParamType::Int => value
                        .trim()
                        .parse::<i64>()
                        .map(|n| format!("INTERVAL '{n} {unit}'"))
                        .map_err(|_| format!("'{value}' is not an integer")),
                    Some(m) => Err(format!(
                        "unknown modifier '{m}' for a {}",
                        param.kind.name()
                    )),
                }
                .map_err(|e| err(format!("--param {name}: {e}")))?;
            out.push_str(&text);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn date(value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| format!("'{value}' is not a date (YYYY-MM-DD)"))
}

/// `value` as an SQL literal of `kind`, or why it is not one.
fn literal(kind: ParamType, value: &str) -> Result<String, String> {
    let v = value.trim();
    match kind {
        ParamType::Date => date(v).map(|d| format!("DATE '{}'", d.format("%Y-%m-%d"))),
        ParamType::Int => v
            .parse::<i64>()
            .map(|n| n.to_string())
            .map_err(|_| format!("'{value}' is not an integer")),
        ParamType::Float => v
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| format!("{f:?}"))
            .ok_or_else(|| format!("'{value}' is not a number")),
        ParamType::Text => Ok(format!("'{}'", value.replace('\'', "''"))),
    }
}

/// The named queries: the embedded library, with files of an override directory
/// replacing (same name) or adding to it.
#[derive(Debug, Clone)]
pub struct QueryLibrary {
    queries: BTreeMap<String, NamedQuery>,
}

impl QueryLibrary {
    /// The library built into kefu.
    pub fn embedded() -> Result<Self, SqlError> {
        let mut queries = BTreeMap::new();
        for (name, text) in embedded::EMBEDDED {
            let q = NamedQuery::parse(name, &format!("queries/{name}.sql"), text)?;
            queries.insert(name.to_string(), q);
        }
        Ok(QueryLibrary { queries })
    }

    /// The embedded library overridden by the `.sql` files of `dir`.
    /// The embedded library, overridden by the `.sql` files of `dir` when given.
    pub fn with_overrides_from(dir: Option<&Path>) -> Result<Self, SqlError> {
        let library = Self::embedded()?;
        match dir {
            Some(dir) => library.with_overrides(dir),
            None => Ok(library),
        }
    }

    pub fn with_overrides(mut self, dir: &Path) -> Result<Self, SqlError> {
        let entries = std::fs::read_dir(dir).map_err(|error| SqlError::Io {
            path: dir.display().to_string(),
            error,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|error| SqlError::Io {
                    path: dir.display().to_string(),
                    error,
                })?
                .path();
            if path.extension().is_none_or(|e| e != "sql") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|error| SqlError::Io {
                path: path.display().to_string(),
                error,
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let q = NamedQuery::parse(&name, &path.display().to_string(), &text)?;
            self.queries.insert(name, q);
        }
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Result<&NamedQuery, SqlError> {
        self.queries
            .get(name)
            .ok_or_else(|| SqlError::UnknownQuery(name.to_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &NamedQuery> {
        self.queries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "-- purpose: answer rate\n-- formula: answered / offered\n--   by region\n-- grain: one row per day\n-- param: from date 2026-01-01 first day\n-- param: region text % region or %\n-- param: t int 20 seconds\n\nSELECT {{from}}, {{from:month}}, {{region}}, {{t}}, {{from:utc}}";

    #[test]
    fn header_and_placeholders() {
        let q = NamedQuery::parse("x", "x.sql", Q).unwrap();
        assert_eq!(q.formula, "answered / offered by region");
        assert_eq!(q.params.len(), 3);
        let sql = q
            .render(&[
                ("region".into(), "o'brien".into()),
                ("t".into(), "30".into()),
            ])
            .unwrap();
        assert_eq!(
            sql,
            "SELECT DATE '2026-01-01', '2026-01', 'o''brien', 30, local_midnight(DATE '2026-01-01')"
        );
    }

    #[test]
    fn bad_values_and_names_are_refused() {
        let q = NamedQuery::parse("x", "x.sql", Q).unwrap();
        for (name, value) in [
            ("t", "1; DROP TABLE calls"),
            ("from", "yesterday"),
            ("nope", "1"),
        ] {
            assert!(
                q.render(&[(name.into(), value.into())]).is_err(),
                "{name}={value}"
            );
        }
        assert!(NamedQuery::parse("x", "x.sql", "-- purpose: p\nSELECT {{y}}").is_err());
        assert!(NamedQuery::parse("x", "x.sql", "SELECT 1").is_err());
    }

    #[test]
    fn a_period_column_needs_a_date_range() {
        let ranged = "-- purpose: p\n-- period column: month\n-- param: from date 2026-01-01 f\n\
                      -- param: to date 2026-02-01 t\nSELECT {{from}} AS month, {{to}}";
        let q = NamedQuery::parse("x", "x.sql", ranged).unwrap();
        assert_eq!(q.period_column.as_deref(), Some("month"));
        assert!(
            NamedQuery::parse("x", "x.sql", Q)
                .unwrap()
                .period_column
                .is_none()
        );
        let unranged = "-- purpose: p\n-- period column: month\nSELECT 1 AS month";
        let e = NamedQuery::parse("x", "x.sql", unranged).unwrap_err();
        assert!(e.to_string().contains("'from' and 'to'"), "{e}");
    }

    #[test]
    fn the_embedded_library_parses() {
        let library = QueryLibrary::embedded().unwrap();
        assert!(library.iter().count() >= 1);
    }
}
