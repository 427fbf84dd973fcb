//! `--messy` output checked independently of the writer: every file is opened, its
//! encoding detected, its CSV parsed, and each row judged by the model's rules. The bad rows
//! found must be exactly those in the manifest (same file, member, line and reason); the
//! good records, once each key's repeats and versions are folded, must be exactly the
//! records of the plain output; and no file may hold anything that happened after the day
//! it reports on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime};
use kefu_gen::{GenConfig, generate};
use kefu_model::{Column, ColumnKind, Table};
use kefu_progress::NoProgress;

/// A file of an export: where it is and its raw bytes.
struct RawFile {
    path: String,
    member: Option<String>,
    bytes: Vec<u8>,
}

fn read_all(dir: &Path) -> Vec<RawFile> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = walk(dir);
    paths.sort();
    for p in paths {
        let rel = p
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let name = rel.as_str();
        if name.ends_with(".zip") {
            let mut zip = zip::ZipArchive::new(std::fs::File::open(&p).unwrap()).unwrap();
            for i in 0..zip.len() {
                let mut f = zip.by_index(i).unwrap();
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).unwrap();
                out.push(RawFile {
                    path: rel.clone(),
                    member: Some(f.name().unwrap().into_owned()),
                    bytes,
                });
            }
        } else if name.ends_with(".tar.gz") {
            let gz = flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap());
            let mut tar = tar::Archive::new(gz);
            for entry in tar.entries().unwrap() {
                let mut e = entry.unwrap();
                let member = e.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                out.push(RawFile {
                    path: rel.clone(),
                    member: Some(member),
                    bytes,
                });
            }
        } else if name.ends_with(".csv") {
            out.push(RawFile {
                path: rel.clone(),
                member: None,
                bytes: std::fs::read(&p).unwrap(),
            });
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    Utf8,
    Utf8Bom,
    Gbk,
}

/// Detects the encoding the way an ingest would: BOM, else valid UTF-8, else GBK.
fn decode(bytes: &[u8]) -> (Enc, String) {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return (
            Enc::Utf8Bom,
            String::from_utf8(rest.to_vec()).expect("UTF-8 after BOM"),
        );
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (Enc::Utf8, s.to_string());
    }
    let text = encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(bytes)
        .expect("neither UTF-8 nor GBK");
    (Enc::Gbk, text.into_owned())
}

/// Which table a file holds, from its name (English or Chinese stem).
fn table_of(name: &str) -> Table {
    // The head office's master data is named `master/<table>.csv`.
    if let Some(file) = name.strip_prefix("master/") {
        return file.trim_end_matches(".csv").parse().unwrap();
    }
    let stem = name.rsplit('/').next().unwrap().split('_').next().unwrap();
    stem.parse()
        .unwrap_or_else(|_| panic!("no table for {name}"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Whole,
    Date,
    Time,
}

/// Maps each header to its column, recognising English names, Chinese labels and the split
/// `_date`/`_time` and `日期`/`时间` forms. In a split file the time header can equal the
/// column's own label (`受理时间`), so a header is a time part when its date part is present.
fn resolve(table: Table, headers: &[&str]) -> Vec<(&'static Column, Part)> {
    let split = |c: &Column| {
        let en = c.name.strip_suffix("_at").unwrap_or(c.name);
        let zh = c.zh.strip_suffix("时间").unwrap_or(c.zh);
        [
            (format!("{en}_date"), format!("{en}_time")),
            (format!("{zh}日期"), format!("{zh}时间")),
        ]
    };
    let mut out = Vec::new();
    let mut taken: BTreeSet<(&str, u8)> = BTreeSet::new();
    'header: for header in headers {
        for c in table.columns() {
            if c.kind == ColumnKind::Timestamp {
                for (date, time) in split(c) {
                    if *header == date && taken.insert((c.name, 1)) {
                        out.push((c, Part::Date));
                        continue 'header;
                    }
                    if *header == time
                        && headers.contains(&date.as_str())
                        && taken.insert((c.name, 2))
                    {
                        out.push((c, Part::Time));
                        continue 'header;
                    }
                }
            }
            if (c.name == *header || c.zh == *header) && taken.insert((c.name, 0)) {
                out.push((c, Part::Whole));
                continue 'header;
            }
        }
        panic!("unknown header {header} in {table}");
    }
    out
}

/// `2026-01-05` or `2026/1/5`, and `09:12:33` or `9:12:33`; nothing else.
fn parse_local(date: &str, time: &str) -> Option<NaiveDateTime> {
    let numbers = |s: &str, sep: &[char]| -> Option<Vec<u32>> {
        s.split(sep).map(|p| p.parse::<u32>().ok()).collect()
    };
    let d = numbers(date, &['-', '/'])?;
    let t = numbers(time, &[':'])?;
    let (&[y, m, day], &[h, mi, sec]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    NaiveDate::from_ymd_opt(y as i32, m, day)?.and_hms_opt(h, mi, sec)
}

/// The latest event time of a record (every timestamp but `due_at`, a promise rather than
/// an event), as exported (local time).
fn latest_event(
    cols: &[(&'static Column, Part)],
    rec: &csv::StringRecord,
) -> Option<NaiveDateTime> {
    let mut times: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for ((col, part), value) in cols.iter().zip(rec.iter()) {
        if col.kind != ColumnKind::Timestamp || col.name == "due_at" {
            continue;
        }
        let e = times.entry(col.name).or_default();
        match part {
            Part::Whole => match value.split_once(' ') {
                Some((d, t)) => *e = (d.to_string(), t.to_string()),
                None => *e = (value.to_string(), String::new()),
            },
            Part::Date => e.0 = value.to_string(),
            Part::Time => e.1 = value.to_string(),
        }
    }
    times
        .values()
        .filter(|(d, _)| !d.is_empty())
        .filter_map(|(d, t)| parse_local(d, t))
        .max()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    path: String,
    member: Option<String>,
    line: u64,
    reason: String,
}

/// Judges one record; returns the reason it is bad, if it is.
fn judge(
    table: Table,
    cols: &[(&'static Column, Part)],
    rec: &csv::StringRecord,
) -> Option<&'static str> {
    if rec.len() != cols.len() {
        return Some("wrong_column_count");
    }
    if rec.get(0).unwrap().is_empty() {
        return Some("missing_id");
    }
    let mut times: BTreeMap<&str, (String, String)> = BTreeMap::new();
    let mut negative = false;
    for ((col, part), value) in cols.iter().zip(rec.iter()) {
        match col.kind {
            ColumnKind::Enum(v) if !value.is_empty() && v.lookup(value).is_none() => {
                return Some("invalid_enum");
            }
            ColumnKind::Seconds if value.starts_with('-') => negative = true,
            ColumnKind::Timestamp => {
                let e = times.entry(col.name).or_default();
                match part {
                    Part::Whole => {
                        if let Some((d, t)) = value.split_once(' ') {
                            *e = (d.to_string(), t.to_string());
                        } else {
                            *e = (value.to_string(), String::new());
                        }
                    }
                    Part::Date => e.0 = value.to_string(),
                    Part::Time => e.1 = value.to_string(),
                }
            }
            _ => {}
        }
    }
    let mut parsed: BTreeMap<&str, NaiveDateTime> = BTreeMap::new();
    for (name, (d, t)) in &times {
        if d.is_empty() {
            continue; // a missing timestamp ("" or "" + "0:00:00")
        }
        match parse_local(d, t) {
            Some(ts) => {
                parsed.insert(name, ts);
            }
            None => return Some("unparseable_timestamp"),
        }
    }
    let before = |end: &str, start: &str| match (parsed.get(end), parsed.get(start)) {
        (Some(e), Some(s)) => e < s,
        _ => false,
    };
    let end_before_start = match table {
        Table::Calls => before("ended_at", "ivr_entered_at"),
        Table::Tickets => before("resolved_at", "created_at"),
        Table::Visits => before("service_ended_at", "service_started_at"),
        Table::Customers | Table::OrgUnits => before("closed_at", "opened_at"),
        Table::Staff => before("left_at", "hired_at"),
        Table::Callbacks | Table::Queues | Table::Categories => false,
    };
    if negative {
        return Some("negative_duration");
    }
    end_before_start.then_some("end_before_start")
}

#[test]
fn messy_manifest_matches_the_bad_rows_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenConfig::new(dir.path().join("messy"));
    cfg.customers = 3_000;
    cfg.days = 12;
    cfg.regions = 4;
    cfg.messy = true;
    cfg.bad_row_rate = 0.01;
    cfg.resend_rate = 0.2;
    let summary = generate(&cfg, &NoProgress).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.manifest.as_ref().unwrap()).unwrap())
            .unwrap();
    let per_table = |key: &str| -> BTreeMap<&str, u64> {
        manifest[key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    Table::ALL.iter().find(|t| t.name() == k).unwrap().name(),
                    v.as_u64().unwrap(),
                )
            })
            .collect()
    };
    let manifest_rows = per_table("rows");
    let manifest_records = per_table("records");
    // The day each file reports on last: nothing in it may have happened after that day.
    let covers: BTreeMap<String, NaiveDate> = manifest["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["covers"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let mut keys: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut from_the_future = Vec::new();

    let files = read_all(&cfg.out);
    let mut found: BTreeSet<Finding> = BTreeSet::new();
    let mut good: BTreeMap<&str, u64> = BTreeMap::new();
    let mut encodings: BTreeSet<String> = BTreeSet::new();
    let mut gbk_not_utf8 = 0;
    let mut crlf = 0;
    let mut quoted_newlines = 0;
    for f in &files {
        let (enc, text) = decode(&f.bytes);
        encodings.insert(format!("{enc:?}"));
        if enc == Enc::Gbk {
            assert!(std::str::from_utf8(&f.bytes).is_err());
            gbk_not_utf8 += 1;
        }
        if text.contains("\r\n") {
            crlf += 1;
        }
        let name = f.member.clone().unwrap_or_else(|| f.path.clone());
        let table = table_of(&name);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let cols = resolve(table, &headers.iter().collect::<Vec<_>>());
        let mut rec = csv::StringRecord::new();
        if name.starts_with("master/") {
            // Canonical master data (UTC instants, no bad rows), not an office export:
            // its records are counted, as the manifest counts them.
            while reader.read_record(&mut rec).unwrap() {
                *good.entry(table.name()).or_default() += 1;
                keys.entry(table.name())
                    .or_default()
                    .insert(rec.get(0).unwrap().to_string());
            }
            continue;
        }
        while reader.read_record(&mut rec).unwrap() {
            // With CRLF the reader reports a record's start at the previous line's '\n'.
            let mut start = rec.position().unwrap().byte() as usize;
            while matches!(text.as_bytes().get(start), Some(b'\r' | b'\n')) {
                start += 1;
            }
            let line = 1 + text.as_bytes()[..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            if rec.iter().any(|v| v.contains('\n')) {
                quoted_newlines += 1;
            }
            match judge(table, &cols, &rec) {
                Some(reason) => {
                    found.insert(Finding {
                        path: f.path.clone(),
                        member: f.member.clone(),
                        line,
                        reason: reason.to_string(),
                    });
                }
                None => {
                    *good.entry(table.name()).or_default() += 1;
                    keys.entry(table.name())
                        .or_default()
                        .insert(rec.get(0).unwrap().to_string());
                    let cut = covers[&f.path]
                        .succ_opt()
                        .unwrap()
                        .and_hms_opt(0, 0, 0)
                        .unwrap();
                    if latest_event(&cols, &rec).is_some_and(|t| t >= cut) {
                        from_the_future.push(format!("{} {:?} line {line}", f.path, f.member));
                    }
                }
            }
        }
    }
    let listed: BTreeSet<Finding> = manifest["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| Finding {
            path: b["path"].as_str().unwrap().to_string(),
            member: b["member"].as_str().map(str::to_string),
            line: b["line"].as_u64().unwrap(),
            reason: b["reason"].as_str().unwrap().to_string(),
        })
        .collect();
    let missing: Vec<_> = listed.difference(&found).take(5).collect();
    let unlisted: Vec<_> = found.difference(&listed).take(5).collect();
    assert!(
        missing.is_empty() && unlisted.is_empty(),
        "listed but not found: {missing:#?}\nfound but not listed: {unlisted:#?}"
    );
    assert!(
        listed.len() >= 50,
        "a useful number of bad rows: {}",
        listed.len()
    );
    let reasons: BTreeSet<_> = listed.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(
        reasons.len(),
        6,
        "every kind of bad row occurs: {reasons:?}"
    );
    // Some good call rows leave out a duration their timestamps determine.
    assert!(manifest["blanked_durations"].as_u64().unwrap() > 0);
    assert_eq!(
        good, manifest_records,
        "good records per table match the manifest"
    );
    assert!(
        from_the_future.is_empty(),
        "records that had not happened by the end of their file's last day: {:?}",
        &from_the_future[..from_the_future.len().min(5)]
    );
    // At least once: records come in several versions and repeats.
    for table in Table::ALL {
        assert!(
            manifest_records[table.name()] >= manifest_rows[table.name()],
            "{table}"
        );
    }
    assert!(
        manifest_records["tickets"] > manifest_rows["tickets"],
        "ticket versions"
    );
    assert!(
        manifest_records["calls"] > manifest_rows["calls"],
        "re-sent calls"
    );
    let distinct: BTreeMap<&str, u64> = keys.iter().map(|(t, k)| (*t, k.len() as u64)).collect();
    assert_eq!(distinct, manifest_rows, "one record per key and table");
    // What real office exports look like.
    assert!(
        gbk_not_utf8 > 0,
        "at least one GBK file that is not valid UTF-8"
    );
    assert_eq!(
        encodings.len(),
        3,
        "UTF-8, UTF-8 with BOM and GBK: {encodings:?}"
    );
    assert!(crlf > 0, "some files use CRLF");
    assert!(quoted_newlines > 0, "some fields hold quoted line breaks");
    let manifest_files: u64 = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows"].as_u64().unwrap() + f["bad_rows"].as_u64().unwrap())
        .sum();
    assert_eq!(
        manifest_files,
        good.values().sum::<u64>() + found.len() as u64
    );

    // The records are exactly the plain output's (the final truth).
    let mut plain = cfg.clone();
    plain.messy = false;
    plain.out = dir.path().join("plain");
    let plain_summary = generate(&plain, &NoProgress).unwrap();
    assert_eq!(
        plain_summary.rows, manifest_rows,
        "messy records equal plain rows"
    );
    for table in Table::ALL {
        let text =
            std::fs::read_to_string(plain.out.join(format!("{}.csv", table.name()))).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let plain_keys: BTreeSet<String> = reader
            .records()
            .map(|r| r.unwrap().get(0).unwrap().to_string())
            .collect();
        assert_eq!(&plain_keys, &keys[table.name()], "{table}: the same keys");
    }
    // Deliveries: every archive once, after the last day it covers; the master data with
    // the first delivery.
    let mut delivered = 0;
    let deliveries = manifest["deliveries"].as_array().unwrap();
    let master: Vec<&str> = deliveries[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str().filter(|p| p.starts_with("master/")))
        .collect();
    assert_eq!(
        master,
        [
            "master/org_units.csv",
            "master/staff.csv",
            "master/queues.csv",
            "master/categories.csv"
        ]
    );
    for d in deliveries {
        let date: NaiveDate = d["date"].as_str().unwrap().parse().unwrap();
        for p in d["paths"].as_array().unwrap() {
            if p.as_str().unwrap().starts_with("master/") {
                continue;
            }
            delivered += 1;
            assert!(
                date > covers[p.as_str().unwrap()],
                "{p} delivered on {date}"
            );
        }
    }
    assert_eq!(delivered, covers.len());
}

#[test]
fn one_region_still_gets_a_gbk_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenConfig::new(dir.path());
    cfg.customers = 300;
    cfg.days = 2;
    cfg.regions = 1;
    cfg.messy = true;
    generate(&cfg, &NoProgress).unwrap();
    let files = read_all(dir.path());
    let gbk = files
        .iter()
        .filter(|f| decode(&f.bytes).0 == Enc::Gbk)
        .count();
    assert!(gbk > 0);
    // And the Chinese text decodes to the model's Chinese headers.
    let calls = files
        .iter()
        .find(|f| {
            f.member
                .as_deref()
                .is_some_and(|m| m.starts_with("话务记录"))
        })
        .expect("a calls export with a Chinese name");
    let (_, text) = decode(&calls.bytes);
    assert!(
        text.starts_with("呼叫流水号,地区,"),
        "{}",
        &text[..40.min(text.len())]
    );
}
