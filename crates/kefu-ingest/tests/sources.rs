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
    let err = expand(&["s3://bucket/exports/".to_string()]).unwrap_err();
    assert!(
        err.to_string().contains("s3:// sources are not supported"),
        "{err}"
    );
}
