//! The parsers that take outside bytes, fed arbitrary input (proptest, a bounded number of
//! cases so that CI runs them every time): CSV and TSV in UTF-8 and GBK, JSON Lines,
//! workbooks, archives, profiles and timestamps. Whatever the bytes, each returns a value
//! or an error: no panic, no abort, no hang.

use std::io::Write;

use kefu_ingest::source::for_each_stream;
use kefu_ingest::value::TimestampParser;
use kefu_ingest::{Collected, Profile, SourceName, convert_csv};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that look like an export now and then: a real header, then anything.
fn export_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        Just(b"call_id,region,branch_id,queue,direction,channel,customer_id,customer_tier,agent_id,ivr_entered_at,queued_at,answered_at,ended_at,wait_s,talk_s,hold_s,wrap_s,outcome,transfers,category,score\n".to_vec()),
        Just("客户号,地区,归属网点,客户类型,客户等级,开户时间,销户时间,销户原因\n".as_bytes().to_vec()),
        Just(Vec::new()),
    ];
    let line = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[a-zA-Z0-9,\"\\-: /\n\r\t]{0,200}".prop_map(String::into_bytes),
        Just(b"C1,beijing,b,q,inbound,hotline,CU1,,A1,2026-01-05 09:00:00,,,,1,2,3,4,answered,0,x,5\n".to_vec()),
    ];
    (header, proptest::collection::vec(line, 0..20)).prop_map(|(h, lines)| {
        let mut out = h;
        for l in lines {
            out.extend(l);
        }
        out
    })
}

fn convert(name: &str, bytes: &[u8]) {
    let source = SourceName {
        origin: name.to_string(),
        member: None,
    };
    let mut sink = Collected::default();
    let _ = convert_csv(bytes, &source, &Profile::builtin(), None, &mut sink);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_tsv_and_jsonl_never_panic(bytes in export_bytes()) {
        for name in ["calls.csv", "calls.tsv", "calls.jsonl", "客户.csv", "unknown.txt"] {
            convert(name, &bytes);
        }
    }

    #[test]
    fn gbk_text_never_panics(text in "[\\u{4e00}-\\u{4e50},a-z0-9\n]{0,300}") {
        let text = format!("客户号,地区\n{text}");
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        convert("customers.csv", &gbk);
    }

    #[test]
    fn timestamps_never_panic(value in "\\PC{0,40}", date in "[0-9/\\-]{0,12}", time in "[0-9:APM ]{0,12}") {
        let parser = TimestampParser::with_defaults(chrono_tz::Asia::Shanghai);
        let _ = parser.parse(&value);
        let _ = parser.parse_split(&date, &time);
    }

    #[test]
    fn profiles_never_panic(text in "\\PC{0,300}") {
        let _ = Profile::from_toml(&text, "fuzz.toml");
        let toml = format!("[columns]\n{text}");
        let _ = Profile::from_toml(&toml, "fuzz.toml");
    }

    #[test]
    fn workbooks_and_archives_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2000) {
        let dir = tempfile::tempdir().unwrap();
        // A zip whose members are arbitrary (an xlsx is a zip), then cut short or not.
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for member in ["xl/sharedStrings.xml", "xl/worksheets/sheet1.xml", "calls.csv"] {
            zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(&body).unwrap();
        }
        let zipped = zip.finish().unwrap().into_inner();
        let truncated = &zipped[..cut.min(zipped.len())];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let gzipped = gz.finish().unwrap();
        for (name, bytes) in [
            ("a.zip", zipped.as_slice()),
            ("b.zip", truncated),
            ("c.xlsx", zipped.as_slice()),
            ("d.xlsx", body.as_slice()),
            ("e.tar.gz", gzipped.as_slice()),
            ("f.tar", body.as_slice()),
            ("g.csv.gz", &gzipped[..cut.min(gzipped.len())]),
            ("h.csv.zst", body.as_slice()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let _ = for_each_stream(&path, |source, reader| {
                let mut sink = Collected::default();
                convert_csv(reader, &source, &Profile::builtin(), None, &mut sink).map(|_| ())
            });
        }
    }
}
