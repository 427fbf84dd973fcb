//! How regional offices write their exports. Each region uses one style for all its files,
//! chosen by its position, so that any `--messy` run with one region or more contains a
//! GBK-encoded file with Chinese headers.

use kefu_model::{ColumnKind, Table};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextEncoding {
    Utf8,
    /// UTF-8 with a byte-order mark, as Excel writes "CSV UTF-8".
    Utf8Bom,
    /// GBK, as Excel on a Chinese Windows writes "CSV".
    Gbk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DateStyle {
    /// `2026-01-05 09:12:33`
    Dash,
    /// `2026/1/5 9:12:33` (Excel's default on Chinese Windows)
    Slash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveKind {
    Zip,
    TarGz,
}

impl ArchiveKind {
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveKind::Zip => "zip",
            ArchiveKind::TarGz => "tar.gz",
        }
    }
}

/// One office's way of exporting. Recorded per region in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ExportStyle {
    pub name: &'static str,
    pub encoding: TextEncoding,
    pub chinese_headers: bool,
    /// Enum values and booleans as Chinese labels (放弃, 是/否) instead of codes.
    pub chinese_values: bool,
    pub crlf: bool,
    /// Each timestamp as two columns, date and time; a missing one as "" and "0:00:00".
    pub split_datetime: bool,
    pub dates: DateStyle,
    /// Durations as `H:MM:SS` instead of seconds.
    pub hms_durations: bool,
    /// What an unidentified caller's customer id looks like.
    pub unknown_customer: &'static str,
    pub archive: ArchiveKind,
    /// Local time zone of every timestamp in the files.
    pub time_zone: &'static str,
}

pub fn style_for_region(index: usize) -> ExportStyle {
    let base = ExportStyle {
        name: "",
        encoding: TextEncoding::Utf8,
        chinese_headers: false,
        chinese_values: false,
        crlf: false,
        split_datetime: false,
        dates: DateStyle::Dash,
        hms_durations: false,
        unknown_customer: "",
        archive: ArchiveKind::Zip,
        time_zone: kefu_model::table::DEFAULT_SOURCE_TIME_ZONE,
    };
    match index % 4 {
        0 => ExportStyle {
            name: "excel_gbk_split",
            encoding: TextEncoding::Gbk,
            chinese_headers: true,
            chinese_values: true,
            crlf: true,
            split_datetime: true,
            dates: DateStyle::Slash,
            hms_durations: true,
            unknown_customer: "0",
            ..base
        },
        1 => ExportStyle {
            name: "excel_utf8_bom",
            encoding: TextEncoding::Utf8Bom,
            chinese_headers: true,
            chinese_values: false,
            crlf: true,
            unknown_customer: "0",
            archive: ArchiveKind::TarGz,
            ..base
        },
        2 => ExportStyle {
            name: "system_utf8",
            ..base
        },
        _ => ExportStyle {
            name: "excel_gbk_slash",
            encoding: TextEncoding::Gbk,
            chinese_headers: true,
            chinese_values: true,
            dates: DateStyle::Slash,
            archive: ArchiveKind::TarGz,
            ..base
        },
    }
}

/// Which part of a column a file field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    Date,
    Time,
}

/// The fields of a file in this style: (column index, part, header).
pub fn file_fields(table: Table, style: &ExportStyle) -> Vec<(usize, Part, String)> {
    let mut out = Vec::new();
    for (i, c) in table.columns().iter().enumerate() {
        if style.split_datetime && c.kind == ColumnKind::Timestamp {
            let (date, time) = c.split_headers(style.chinese_headers);
            out.push((i, Part::Date, date));
            out.push((i, Part::Time, time));
        } else {
            let header = if style.chinese_headers { c.zh } else { c.name };
            out.push((i, Part::Whole, header.to_string()));
        }
    }
    out
}

/// The name of a table's file inside a day archive (or of the customer snapshot).
pub fn member_name(table: Table, style: &ExportStyle, yyyymmdd: &str) -> String {
    let stem = if style.chinese_headers {
        table.zh()
    } else {
        table.name()
    };
    format!("{stem}_{yyyymmdd}.csv")
}
