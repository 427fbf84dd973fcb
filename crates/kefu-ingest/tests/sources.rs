//! Sources: every container format streams its members; hostile inputs get a clear error
//! that names the file, never a panic, never an extracted file.

use std::io::{Read, Write};
use std::path::Path;

use kefu_ingest::source::{expand, for_each_stream};
use kefu_ingest::{Collected, IngestError, Profile, SourceName, convert_csv};

const CSV: &str = "customer_id,region,branch_id,segment,tier,opened_at,closed_at,close_reason\n\
CU000000001,beijing,beijing-01,household,basic,2020-01-01T00:00:00Z,,\n\
CU000000002,beijing,beijing-02,individual,gold,2021-05-01T02:00:00Z,2026-01-03T03:00:00Z,competitive\n";

/// Converts every stream of `path`; returns (member, rows) or the first error.
fn ingest(path: &Path) -> Result<Vec<(Option<String>, u64)>, IngestError> {
    let mut out = Vec::new();
    for_each_stream(path, |name, reader| {
        let o = convert_csv(
            reader,
            &name,
            &Profile::builtin(),
            None,
            &mut Collected::default(),
        )?;
        out.push((name.member.clone(), o.rows));
        Ok(())
    })?;
    Ok(out)
}

fn zip_with(path: &Path, members: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn tar_with(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        // Written byte by byte: the tar crate refuses to build such names itself.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, *bytes).unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn every_container_format_streams_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("customers.csv"), CSV).unwrap();
    std::fs::write(d.join("customers.csv.gz"), gzip(CSV.as_bytes())).unwrap();
    std::fs::write(
        d.join("customers.csv.zst"),
        zstd::encode_all(CSV.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    zip_with(
        &d.join("a.zip"),
        &[
            ("customers_1.csv", CSV.as_bytes()),
            ("sub/客户_2.csv", CSV.as_bytes()),
        ],
    );
    std::fs::write(
        d.join("b.tar"),
        tar_with(&[("customers_3.csv", CSV.as_bytes())]),
    )
    .unwrap();
    std::fs::write(
        d.join("c.tar.gz"),
        gzip(&tar_with(&[("customers_4.csv", CSV.as_bytes())])),
    )
    .unwrap();
    std::fs::write(
        d.join("d.tgz"),
        gzip(&tar_with(&[("customers_5.csv", CSV.as_bytes())])),
    )
    .unwrap();
    let files = expand(&[d.display().to_string()]).unwrap();
    assert_eq!(files.len(), 7);
    let mut members = 0;
    for f in &files {
        for (_, rows) in ingest(f).unwrap_or_else(|e| panic!("{e}")) {
            assert_eq!(rows, 2, "{}", f.display());
            members += 1;
        }
    }
    assert_eq!(members, 8);
    let globbed = expand(&[format!("{}/*.t*", d.display())]).unwrap();
    assert_eq!(globbed.len(), 3, "{globbed:?}");
    let err = expand(&[format!("{}/*.xlsx", d.display())]).unwrap_err();
    assert!(err.to_string().contains("matches no file"), "{err}");
    // Nothing was extracted beside the inputs.
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 7);
}

fn error_of(path: &Path) -> String {
    let e = ingest(path).expect_err("must fail").to_string();
    assert!(
        e.contains(&path.display().to_string()),
        "the error names the file: {e}"
    );
    e
}

#[test]
fn hostile_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    zip_with(&d.join("whole.zip"), &[("customers.csv", CSV.as_bytes())]);
    let bytes = std::fs::read(d.join("whole.zip")).unwrap();
    std::fs::write(d.join("truncated.zip"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(error_of(&d.join("truncated.zip")).contains("not a readable zip archive"));

    let tgz = gzip(&tar_with(&[("customers.csv", CSV.as_bytes())]));
    std::fs::write(d.join("truncated.tar.gz"), &tgz[..tgz.len() / 2]).unwrap();
    error_of(&d.join("truncated.tar.gz"));

    let mut gz = gzip(CSV.as_bytes());
    let mid = gz.len() / 2;
    gz[mid] ^= 0xFF;
    gz[mid + 1] ^= 0xFF;
    std::fs::write(d.join("customers.csv.gz"), gz).unwrap();
    error_of(&d.join("customers.csv.gz"));

    zip_with(
        &d.join("escape.zip"),
        &[("../customers.csv", CSV.as_bytes())],
    );
    assert!(error_of(&d.join("escape.zip")).contains("leaves the archive"));
    std::fs::write(
        d.join("escape.tar"),
        tar_with(&[("../../customers.csv", CSV.as_bytes())]),
    )
    .unwrap();
    assert!(error_of(&d.join("escape.tar")).contains("leaves the archive"));
    assert!(!d.parent().unwrap().join("customers.csv").exists());

    std::fs::write(d.join("customers_empty.csv"), "").unwrap();
    assert!(error_of(&d.join("customers_empty.csv")).contains("empty"));

    std::fs::write(
        d.join("binary.csv"),
        [0x89, b'P', b'N', b'G', 0, 0, 0, 13, 0xFF],
    )
    .unwrap();
    assert!(error_of(&d.join("binary.csv")).contains("binary data"));

    // A header and no rows is a valid, empty export.
    std::fs::write(d.join("customers_none.csv"), CSV.lines().next().unwrap()).unwrap();
    assert_eq!(
        ingest(&d.join("customers_none.csv")).unwrap(),
        vec![(None, 0)]
    );
}

/// 2 GB on one line, produced lazily: refused after 16 MiB, without buffering the rest.
#[test]
fn a_two_gigabyte_line_is_refused_early() {
    struct Endless(u64);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0 as usize);
            buf[..n].fill(b'a');
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let mut source = Endless(2 << 30);
    let err = convert_csv(
        &mut source,
        &SourceName::file("customers.csv"),
        &Profile::builtin(),
        None,
        &mut Collected::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("longer than 16 MiB"), "{err}");
    assert!(
        source.0 > (2 << 30) - (64 << 20),
        "stopped early, read {} bytes",
        (2u64 << 30) - source.0
    );
}

#[test]
fn file_urls_are_paths_and_unknown_schemes_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("customers.csv");
    std::fs::write(&file, CSV).unwrap();
    let url = url::Url::from_file_path(&file).unwrap().to_string();
    assert_eq!(expand(&[url]).unwrap(), vec![file]);
    let err = expand(&["ftp://host/exports/".to_string()]).unwrap_err();
    assert!(
        err.to_string().contains("ftp:// is not a local path"),
        "{err}"
    );
}

/// A minimal workbook, written as Excel lays one out: shared strings for text, numbers
/// for numbers, and dates and times as day serials with a date or time number format.
fn workbook(rows: &[&[Cell]]) -> Vec<u8> {
    zip_parts(workbook_parts(rows))
}

/// The parts of [`workbook`]'s zip, by name, for tests that corrupt one.
fn workbook_parts(rows: &[&[Cell]]) -> Vec<(&'static str, String)> {
    let mut strings: Vec<String> = Vec::new();
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, cell) in row.iter().enumerate() {
            let at = format!("{}{}", (b'A' + c as u8) as char, r + 1);
            match cell {
                Cell::Text(t) => {
                    strings.push(t.to_string());
                    sheet.push_str(&format!(
                        r#"<c r="{at}" t="s"><v>{}</v></c>"#,
                        strings.len() - 1
                    ));
                }
                Cell::Number(n) => sheet.push_str(&format!(r#"<c r="{at}"><v>{n}</v></c>"#)),
                Cell::DateTime(n) => {
                    sheet.push_str(&format!(r#"<c r="{at}" s="1"><v>{n}</v></c>"#))
                }
                Cell::Error => sheet.push_str(&format!(r#"<c r="{at}" t="e"><v>#N/A</v></c>"#)),
                Cell::Empty => {}
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let shared = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{0}" uniqueCount="{0}">{1}</sst>"#,
        strings.len(),
        strings
            .iter()
            .map(|s| format!("<si><t>{s}</t></si>"))
            .collect::<String>()
    );
    let files: [(&str, String); 7] = [
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#.into()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="客户" sheetId="1" r:id="rId1"/></sheets></workbook>"#.into()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#.into()),
        ("xl/styles.xml", r#"<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="22" applyNumberFormat="1"/></cellXfs></styleSheet>"#.into()),
        ("xl/sharedStrings.xml", shared),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    files.into()
}

fn zip_parts(files: Vec<(&'static str, String)>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

enum Cell {
    Text(&'static str),
    Number(f64),
    DateTime(f64),
    Error,
    Empty,
}

/// Excel: Chinese headers, a date-time cell, a number, an empty cell, an error cell.
#[test]
fn excel_workbooks_are_read_like_csv() {
    use Cell::*;
    // 46023.5 = 2026-01-01 12:00 (Excel day serial); local Shanghai time → 04:00 UTC.
    let rows: &[&[Cell]] = &[
        &CUSTOMER_HEADER,
        &GOLD_CUSTOMER,
        &[
            Text("CU2"),
            Text("beijing"),
            Text("beijing-01"),
            Text("个人"),
            Text("普通"),
            Error,
            Empty,
            Empty,
        ],
        &[
            Text("CU3"),
            Text("beijing"),
            Text("beijing-02"),
            Text("个人"),
            Text("普通"),
            Number(46024.0),
            Empty,
            Empty,
        ],
    ];
    let (outcome, got) = convert_workbook(workbook(rows)).unwrap();
    assert_eq!(
        (outcome.records, outcome.rows, outcome.rejected),
        (3, 1, 2),
        "{:#?}",
        got.rejects
    );
    let batch = &got.batches[0];
    let opened = batch
        .column_by_name("opened_at")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        opened.value(0),
        1_767_240_000_000_000,
        "2026-01-01T04:00:00Z"
    );
    let reasons: Vec<(u64, &str)> = got
        .rejects
        .iter()
        .map(|r| (r.line, r.reject.reason.code()))
        .collect();
    // Row 3: the Excel error; row 4: a plain number where a date belongs.
    assert_eq!(reasons, [(3, "invalid_text"), (4, "unparseable_timestamp")]);
    assert!(got.rejects[0].reject.detail.contains("#N/A"));
}

fn convert_workbook(bytes: Vec<u8>) -> Result<(kefu_ingest::FileOutcome, Collected), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("客户_202601.xlsx");
    std::fs::write(&path, bytes).unwrap();
    let mut got = Collected::default();
    let mut outcome = None;
    for_each_stream(&path, |name, reader| {
        outcome = Some(convert_csv(
            reader,
            &name,
            &Profile::builtin(),
            None,
            &mut got,
        )?);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok((outcome.unwrap(), got))
}

const CUSTOMER_HEADER: [Cell; 8] = [
    Cell::Text("客户号"),
    Cell::Text("地区"),
    Cell::Text("归属网点"),
    Cell::Text("客户类型"),
    Cell::Text("客户等级"),
    Cell::Text("开户时间"),
    Cell::Text("销户时间"),
    Cell::Text("销户原因"),
];

/// A customer's row of [`CUSTOMER_HEADER`]; 46023.5 = 2026-01-01 12:00 (an Excel day
/// serial), local Shanghai time: 04:00 UTC.
const GOLD_CUSTOMER: [Cell; 8] = [
    Cell::Text("CU1"),
    Cell::Text("beijing"),
    Cell::Text("beijing-01"),
    Cell::Text("个人"),
    Cell::Text("黄金"),
    Cell::DateTime(46023.5),
    Cell::Empty,
    Cell::Empty,
];

/// A 2.5 kB workbook whose shared-strings table declares four billion strings: the
/// reader reserved room for them and aborted the process.
#[test]
fn a_workbook_declaring_absurd_shared_strings_is_refused() {
    let mut parts = workbook_parts(&[&CUSTOMER_HEADER]);
    for (name, body) in &mut parts {
        if *name == "xl/sharedStrings.xml" {
            *body = body.replace(r#"uniqueCount="8""#, r#"uniqueCount="4000000000""#);
            assert!(body.contains("4000000000"));
        }
    }
    let bytes = zip_parts(parts);
    assert!(bytes.len() < 4096);
    let error = convert_workbook(bytes).unwrap_err();
    assert!(
        error.contains("declares 4000000000 shared strings"),
        "{error}"
    );
}

/// Cells at A1 and XFD1048576 made the reader allocate the whole grid (24 GB) before the
/// kernel killed it; a cell beyond Excel's grid is refused by name.
#[test]
fn a_workbook_with_a_cell_at_the_grid_corner_streams() {
    let corner = |at: &str| {
        let mut parts = workbook_parts(&[&CUSTOMER_HEADER, &GOLD_CUSTOMER]);
        for (name, body) in &mut parts {
            if *name == "xl/worksheets/sheet1.xml" {
                *body = body.replace(
                    "</sheetData>",
                    &format!(
                        r#"<row r="{row}"><c r="{at}"><v>1</v></c></row></sheetData>"#,
                        row = at.trim_start_matches(|c: char| c.is_ascii_uppercase())
                    ),
                );
                *body = body.replace(
                    "<sheetData>",
                    r#"<dimension ref="A1:XFD1048576"/><sheetData>"#,
                );
            }
        }
        zip_parts(parts)
    };
    let bytes = corner("XFD1048576");
    assert!(bytes.len() < 4096);
    let (outcome, got) = convert_workbook(bytes).unwrap();
    // The customer lands; the stray cell's row is rejected (it has 16,384 fields).
    assert_eq!(
        (outcome.records, outcome.rows, outcome.rejected),
        (2, 1, 1),
        "{:#?}",
        got.rejects
    );
    assert_eq!(got.rejects[0].line, 1_048_576);
    let error = convert_workbook(corner("XFE1048577")).unwrap_err();
    assert!(
        error.contains("cell XFE1048577 lies outside Excel's grid"),
        "{error}"
    );
}

/// A symbolic link to an ancestor directory made the walk of `kefu check` and `kefu
/// ingest` go round forever; each directory is walked once now.
#[cfg(unix)]
#[test]
fn a_symlink_cycle_is_walked_once() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir_all(exports.join("day1")).unwrap();
    std::fs::write(exports.join("day1/calls.csv"), "call_id\n").unwrap();
    std::os::unix::fs::symlink(&exports, exports.join("day1/loop")).unwrap();
    let found = expand(&[exports.display().to_string()]).unwrap();
    assert_eq!(found, [exports.join("day1/calls.csv")]);
}

/// An archive without a data member was recorded as ingested (0 records); it is an error
/// that says so.
#[test]
fn an_archive_without_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beijing_20260301.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.add_directory("empty/", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.start_file(
        "__MACOSX/._calls.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(b"junk").unwrap();
    zip.finish().unwrap();
    let error = for_each_stream(&path, |_, _| Ok(())).unwrap_err();
    assert!(error.to_string().contains("holds no data file"), "{error}");
}
