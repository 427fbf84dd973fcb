//! Mapping profiles as TOML files. Everything is optional and falls back to the built-in
//! profile; every name is checked against the model, so a typo is an error that names the
//! profile and the key rather than a silently unmapped column.
//!
//! ```toml
//! name = "baltimore_311"
//! table = "tickets"                  # else detected from file name or header
//! time_zone = "America/New_York"     # of local timestamps; default the warehouse's
//! encoding = "auto"                  # auto | utf-8 | utf-16le | gbk | big5 | …
//! delimiter = ","                    # one ASCII character or "tab"; sniffed if absent
//! null_values = ["", "NULL", "-"]
//! datetime_formats = ["%m/%d/%Y %I:%M:%S %p"]
//!
//! [columns]                          # canonical column = source header(s)
//! ticket_id = "ServiceRequestNum"
//! resolved_at = "CloseDate"
//! closed_at = "CloseDate"            # one source column may feed several
//!
//! [constants]                        # columns the source does not have
//! region = "baltimore"
//!
//! [values.status]                    # source value = canonical code
//! "Closed (Duplicate)" = "rejected"
//!
//! [column_null_values]
//! customer_id = ["0"]
//! ```
//!
//! Instead of `[columns]`, `sql = "SELECT … FROM source [WHERE …]"` maps the source with
//! SQL ([`crate::transform`]); `ordering_tolerance_s` allows clock skew between systems.
//! `fixtures/profiles/README.md` is the guide to every key.

use std::collections::BTreeMap;
use std::path::Path;

use kefu_model::{Column, ColumnKind, Table};
use serde::Deserialize;

use crate::profile::Profile;
use crate::{IngestError, TextEncoding};

/// Whether a profile's text sets its `name` (checked after it parsed).
fn text_sets_name(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("name"))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: Option<String>,
    table: Option<String>,
    time_zone: Option<String>,
    encoding: Option<String>,
    delimiter: Option<String>,
    null_values: Option<Vec<String>>,
    datetime_formats: Option<Vec<String>>,
    date_formats: Option<Vec<String>>,
    time_formats: Option<Vec<String>>,
    derive_durations: Option<bool>,
    sql: Option<String>,
    ordering_tolerance_s: Option<u32>,
    event_time_window: Option<[String; 2]>,
    event_log: Option<bool>,
    #[serde(default)]
    columns: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    constants: BTreeMap<String, String>,
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    column_null_values: BTreeMap<String, Vec<String>>,
}

impl Profile {
    /// Reads a profile file.
    /// The profile at `path`, else the built-in one; `table`, when given, is the table
    /// every source feeds (`--table`).
    pub fn load_or_builtin(
        path: Option<&Path>,
        table: Option<Table>,
    ) -> Result<Profile, IngestError> {
        let mut profile = match path {
            Some(path) => Profile::load(path)?,
            None => Profile::builtin(),
        };
        if table.is_some() {
            profile.table = table;
        }
        Ok(profile)
    }

    pub fn load(path: &Path) -> Result<Profile, IngestError> {
        let text = std::fs::read_to_string(path).map_err(|e| IngestError::Profile {
            profile: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let shown = path.display().to_string();
        // Errors name the file; its stem is the profile's name unless it sets one.
        let mut profile = Profile::from_toml(&text, &shown)?;
        if !text_sets_name(&text) {
            profile.name = path
                .file_stem()
                .map_or(shown.clone(), |s| s.to_string_lossy().into_owned());
        }
        profile.file = Some(shown);
        Ok(profile)
    }

    /// Parses and validates a profile; `origin` names it in errors and is its default name.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, IngestError> {
        let bad = |reason: String| IngestError::Profile {
            profile: origin.to_string(),
            reason,
        };
        let file: ProfileFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut p = Profile::builtin();
        p.name = file.name.unwrap_or_else(|| origin.to_string());
        if let Some(t) = file.table {
            p.table = Some(
                t.parse()
                    .map_err(|e: kefu_model::UnknownTable| bad(e.to_string()))?,
            );
        }
        if let Some(tz) = file.time_zone {
            p.time_zone = tz.parse().map_err(|_| {
                bad(format!(
                    "unknown time zone '{tz}' (use an IANA name such as Asia/Shanghai)"
                ))
            })?;
            p.time_zone_given = true;
        }
        if let Some(d) = file.delimiter {
            p.delimiter = Some(match d.as_str() {
                "tab" | "\t" => b'\t',
                one if one.len() == 1 && one.is_ascii() && one != "\"" && one != "\n" => {
                    one.as_bytes()[0]
                }
                other => {
                    return Err(bad(format!(
                        "delimiter '{other}' must be one ASCII character (or \"tab\")"
                    )));
                }
            });
        }
        if let Some(label) = &file.encoding {
            p.encoding = TextEncoding::from_label(label).map_err(bad)?;
        }
        if let Some(v) = file.null_values {
            p.null_values = v;
        }
        if let Some(v) = file.datetime_formats {
            p.datetime_formats = v;
        }
        if let Some(v) = file.date_formats {
            p.date_formats = v;
        }
        if let Some(v) = file.time_formats {
            p.time_formats = v;
        }
        if let Some(v) = file.derive_durations {
            p.derive_durations = v;
        }
        if let Some(v) = file.ordering_tolerance_s {
            p.ordering_tolerance_s = v;
        }
        if let Some(v) = file.event_log {
            p.event_log = v;
        }
        if let Some([first, last]) = &file.event_time_window {
            let date = |d: &str| {
                chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
                    bad(format!(
                        "event_time_window: '{d}' is not a date (YYYY-MM-DD)"
                    ))
                })
            };
            let (first, last) = (date(first)?, date(last)?);
            if first > last {
                return Err(bad(format!("event_time_window: {first} is after {last}")));
            }
            p.event_time_window = Some((first, last));
        }
        if let Some(sql) = file.sql {
            if p.table.is_none() {
                return Err(bad(
                    "a profile with sql must name its table (table = \"calls\")".into(),
                ));
            }
            if !file.columns.is_empty() {
                return Err(bad(
                    "[columns] and sql both map the source: name the columns in the SELECT".into(),
                ));
            }
            // Syntax is checked now; names are checked against the first file's header.
            datafusion::sql::parser::DFParser::parse_sql(&sql)
                .map_err(|e| bad(crate::transform::locate(&e)))?;
            p.sql = Some(sql);
        }
        let column = |name: &str, what: &str| -> Result<&'static Column, IngestError> {
            let tables: Vec<Table> = p.table.map_or(Table::ALL.to_vec(), |t| vec![t]);
            tables.iter().find_map(|t| t.column(name)).ok_or_else(|| {
                bad(format!(
                    "[{what}] names '{name}', which is not a column of {}",
                    tables
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join("/")
                ))
            })
        };
        for (name, headers) in file.columns {
            column(&name, "columns")?;
            let headers = match headers {
                OneOrMany::One(h) => vec![h],
                OneOrMany::Many(hs) => hs,
            };
            p.aliases.insert(name, headers);
        }
        for (name, value) in file.constants {
            let c = column(&name, "constants")?;
            if let ColumnKind::Enum(v) = c.kind
                && v.lookup(&value).is_none()
            {
                return Err(bad(format!(
                    "[constants] {name} = '{value}' is not one of {}",
                    v.codes().collect::<Vec<_>>().join(", ")
                )));
            }
            p.constants.insert(name, value);
        }
        for (name, map) in file.values {
            let c = column(&name, "values")?;
            let ColumnKind::Enum(v) = c.kind else {
                return Err(bad(format!(
                    "[values.{name}] maps values, but {name} is not an enum column"
                )));
            };
            for (from, to) in &map {
                if v.lookup(to).is_none() {
                    return Err(bad(format!(
                        "[values.{name}] maps '{from}' to '{to}', which is not one of {}",
                        v.codes().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            p.value_maps.insert(name, map);
        }
        for (name, nulls) in file.column_null_values {
            column(&name, "column_null_values")?;
            p.column_null_values.entry(name).or_default().extend(nulls);
        }
        // Formats are checked now rather than at the first file.
        crate::value::TimestampParser::new(
            p.time_zone,
            &p.datetime_formats,
            &p.date_formats,
            &p.time_formats,
        )
        .map_err(bad)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_profile_parses() {
        let p = Profile::from_toml(
            r#"
            table = "calls"
            time_zone = "Asia/Urumqi"
            encoding = "gbk"
            [columns]
            call_id = ["流水号", "CallID"]
            [constants]
            region = "xinjiang"
            [values.outcome]
            HANG = "abandoned"
            "#,
            "x",
        )
        .unwrap();
        assert_eq!(p.name, "x");
        assert_eq!(p.table, Some(Table::Calls));
        assert_eq!(p.encoding, Some(TextEncoding::Gb18030));
        assert_eq!(p.aliases["call_id"], vec!["流水号", "CallID"]);
        assert_eq!(p.value_maps["outcome"]["HANG"], "abandoned");
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| Profile::from_toml(text, "p").unwrap_err().to_string();
        assert!(err("tabel = 'calls'").contains("unknown field `tabel`"));
        assert!(err("table = 'orders'").contains("unknown table 'orders'"));
        assert!(err("time_zone = 'Mars/Olympus'").contains("unknown time zone"));
        assert!(
            err("table = 'calls'\n[columns]\nticket_id = 'x'").contains("not a column of calls")
        );
        assert!(err("[values.outcome]\nHANG = 'hung_up'").contains("not one of answered"));
        assert!(err("[values.region]\nA = 'b'").contains("not an enum column"));
        assert!(err("[constants]\nkind = 'order'").contains("not one of complaint"));
        assert!(err("datetime_formats = ['%Q']").contains("invalid timestamp format"));
    }
}
