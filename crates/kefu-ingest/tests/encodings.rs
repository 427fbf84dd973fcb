//! Every encoding and file type offices send: UTF-16 with a BOM (Excel's "Unicode
//! text"), Big5 told from GBK, GB18030's 4-byte characters, `.xls`, `.xlsb`, `.ods` and an
//! `.xls` that is really text — each read to the same rows as the plain UTF-8 CSV; an
//! encoding kefu does not expect is refused with its name.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use kefu_ingest::{Collected, FileOutcome, IngestError, Profile, SourceName, convert_csv};
use kefu_model::Table;

fn convert(
    bytes: &[u8],
    name: &str,
    profile: &Profile,
) -> Result<(FileOutcome, RecordBatch), IngestError> {
    let mut sink = Collected::default();
    let outcome = convert_csv(bytes, &SourceName::file(name), profile, None, &mut sink)?;
    assert!(sink.rejects.is_empty(), "{name}: {:?}", sink.rejects);
    let batch = concat_batches(&outcome.table.schema(), &sink.batches).unwrap();
    Ok((outcome, batch))
}

fn workbook(name: &str) -> Vec<u8> {
    std::fs::read(crate::fixtures_dir().join("workbooks").join(name)).unwrap()
}

/// The six calls of fixtures/workbooks as the UTF-8 CSV gives them.
fn expected() -> RecordBatch {
    let (outcome, batch) =
        convert(&workbook("calls.csv"), "calls.csv", &Profile::builtin()).unwrap();
    assert_eq!((outcome.table, outcome.rows), (Table::Calls, 6));
    batch
}

#[test]
fn every_workbook_format_reads_to_the_rows_of_the_csv() {
    let want = expected();
    for (name, encoding) in [
        ("calls.xls", "utf-8"),
        ("calls.xlsb", "utf-8"),
        ("calls.ods", "utf-8"),
        // "Export to Excel" as GBK tab-separated text named .xls.
        ("calls_export.xls", "gb18030"),
    ] {
        let (outcome, got) = convert(&workbook(name), name, &Profile::builtin()).unwrap();
        assert_eq!(outcome.encoding.name(), encoding, "{name}");
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn utf16_with_a_bom_reads_in_both_byte_orders() {
    let want = expected();
    // Excel's "Unicode text": UTF-16 LE with a BOM, tab-separated, CRLF.
    let text = String::from_utf8(workbook("calls.csv"))
        .unwrap()
        .replace(',', "\t")
        .replace('\n', "\r\n");
    let le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    for (bytes, encoding) in [(le, "utf-16le (bom)"), (be, "utf-16be (bom)")] {
        let (outcome, got) = convert(&bytes, "calls.txt", &Profile::builtin()).unwrap();
        assert_eq!(outcome.encoding.name(), encoding);
        assert_eq!(got, want, "{encoding}");
    }
    // Without its BOM, UTF-16 is named, not read as garbage.
    let bare: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let err = convert(&bare, "calls.txt", &Profile::builtin())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("calls.txt") && err.contains("utf-16le without a byte-order mark"),
        "{err}"
    );
    let profile = Profile::from_toml("encoding = 'utf-16le'", "p").unwrap();
    assert_eq!(convert(&bare, "calls.txt", &profile).unwrap().1, want);
}

const TICKETS_HEADER: &str = "ticket_id,region,branch_id,channel,kind,category,severity,level,source,status,created_at,description\n";

fn tickets(descriptions: &[&str]) -> String {
    let mut text = TICKETS_HEADER.to_string();
    for (i, d) in descriptions.iter().enumerate() {
        text.push_str(&format!(
            "TK{i},taipei,taipei-01,hotline,complaint,billing,normal,first,self_received,received,2026-03-02 09:00:00,{d}\n"
        ));
    }
    text
}

fn descriptions(batch: &RecordBatch) -> Vec<String> {
    let c = batch
        .column_by_name("description")
        .unwrap()
        .as_string::<i32>();
    c.iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

#[test]
fn big5_is_told_from_gbk() {
    let traditional = [
        "客戶反映帳單金額與實際使用不符，要求查明原因並退還多收費用",
        "營業廳排隊時間過長，服務人員態度冷淡，希望改善",
        "寬頻網路經常斷線，維修人員未依約定時間到場",
    ];
    let simplified = [
        "客户反映账单金额与实际使用不符，要求查明原因并退还多收费用",
        "营业厅排队时间过长，服务人员态度冷淡，希望改善",
        "宽带网络经常断线，维修人员未按约定时间到场",
    ];
    let big5 = encoding_rs::BIG5
        .encode(&tickets(&traditional))
        .0
        .into_owned();
    let gbk = encoding_rs::GBK
        .encode(&tickets(&simplified))
        .0
        .into_owned();
    let (outcome, batch) = convert(&big5, "tickets.csv", &Profile::builtin()).unwrap();
    assert_eq!(outcome.encoding.name(), "big5");
    assert_eq!(descriptions(&batch), traditional);
    let (outcome, batch) = convert(&gbk, "tickets.csv", &Profile::builtin()).unwrap();
    assert_eq!(outcome.encoding.name(), "gb18030");
    assert_eq!(descriptions(&batch), simplified);
}

#[test]
fn gb18030_four_byte_characters_survive() {
    // 𠮷 (U+20BB7) and 䶮 (U+4DAE) are outside GBK: GB18030 writes them in four bytes.
    let names = [
        "客户𠮷野先生来电投诉话费异常扣费问题",
        "用户刘䶮反映宽带故障多次报修未果",
        "客户要求更正账户姓名中的生僻字𠮷",
    ];
    let bytes = encoding_rs::GB18030.encode(&tickets(&names)).0.into_owned();
    assert!(
        bytes.windows(4).any(|w| w[1].is_ascii_digit()
            && w[3].is_ascii_digit()
            && w[0] >= 0x81
            && w[2] >= 0x81)
    );
    let (outcome, batch) = convert(&bytes, "tickets.csv", &Profile::builtin()).unwrap();
    assert_eq!(outcome.encoding.name(), "gb18030");
    assert_eq!(descriptions(&batch), names);
}

#[test]
fn an_unexpected_encoding_is_refused_by_name_unless_a_profile_names_it() {
    let japanese = [
        "請求金額が実際の利用と一致しないため、原因の確認と返金を求めています",
        "窓口の待ち時間が長く、担当者の対応も冷たかったとのご意見です",
        "インターネット回線が頻繁に切断され、修理の担当者が約束の時間に来ませんでした",
    ];
    let sjis = encoding_rs::SHIFT_JIS
        .encode(&tickets(&japanese))
        .0
        .into_owned();
    let err = convert(&sjis, "tickets.csv", &Profile::builtin())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tickets.csv") && err.contains("Shift_JIS") && err.contains("encoding ="),
        "{err}"
    );
    let profile = Profile::from_toml("encoding = 'shift_jis'", "p").unwrap();
    let (outcome, batch) = convert(&sjis, "tickets.csv", &profile).unwrap();
    assert_eq!(outcome.encoding.name(), "Shift_JIS");
    assert_eq!(descriptions(&batch), japanese);
    let err = Profile::from_toml("encoding = 'klingon'", "p")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown encoding 'klingon'"), "{err}");
}
