//! The web console in headless Chromium (Debian's `chromium`, driven by Playwright for
//! Python): an office signs in and uploads files through the upload page and sees them
//! done in its history; an analyst runs SQL and a named query and downloads the CSV; the
//! dashboard renders its cards and charts in English and Chinese. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/console-screenshots`; any console error or warning fails.

use std::path::Path;
use std::process::Command;

use crate::common::{generate, kefu};
use crate::serve::Server;

const OFFICE: &str = "office-token-beijing-0001";
const ANALYST: &str = "analyst-token-000000001";

fn data_rows(path: &Path) -> usize {
    csv::Reader::from_path(path).unwrap().records().count()
}

#[test]
fn the_console_uploads_queries_and_charts_in_a_browser() {
    let chromium = std::env::var("KEFU_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let python = crate::common::python_with("playwright.sync_api");
    let (Some(python), true) = (python, Path::new(&chromium).exists()) else {
        assert!(
            std::env::var_os("KEFU_REQUIRE_CHROMIUM").is_none(),
            "KEFU_REQUIRE_CHROMIUM is set but Chromium ({chromium}) or a Python with playwright is missing"
        );
        eprintln!(
            "SKIPPED the_console_uploads_queries_and_charts_in_a_browser: needs Chromium and \
             a Python with playwright (set KEFU_PYTHON; .ci/run installs both)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(dir, 400, 70, 1);
    let tables = ["calls", "tickets", "callbacks", "visits", "customers"];
    let files: Vec<_> = tables
        .iter()
        .map(|t| dir.join(format!("gen/{t}.csv")))
        .collect();
    let server = Server::start(
        dir,
        &format!(
            "[[token]]\nname = \"beijing\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\nregion = \"beijing\"\n\n\
             [[token]]\nname = \"analysts\"\ntoken = \"{ANALYST}\"\nrole = \"analyst\"\n"
        ),
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/drive.py");
    let out = Command::new(&python)
        .arg(&driver)
        .arg(format!("http://127.0.0.1:{}", server.port))
        .args([OFFICE, ANALYST])
        .arg(&shots)
        .args(&files)
        .env("KEFU_CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("console screenshots in {}", shots.display());

    assert_eq!(
        seen["console"],
        serde_json::json!([]),
        "console errors: {seen}"
    );
    assert_eq!(seen["office_pages"], serde_json::json!(["Upload"]));

    // The history lists each file done, with its rows landed (counted here from the files).
    let history = seen["history"].as_array().unwrap();
    assert_eq!(history.len(), tables.len(), "{seen}");
    for (table, file) in tables.iter().zip(&files) {
        let row = history
            .iter()
            .find(|r| r[0] == format!("{table}.csv"))
            .unwrap_or_else(|| panic!("{table} not in {history:?}"));
        assert_eq!(row[2], "done", "{row}");
        assert_eq!(row[3], data_rows(file).to_string(), "{row}");
        assert_eq!(row[4], "0", "{row}");
    }

    // SQL through the page, its CSV download, and a named query against `kefu query`.
    let calls = data_rows(&files[0]);
    assert_eq!(seen["sql_columns"], serde_json::json!(["region", "calls"]));
    assert_eq!(
        seen["sql_rows"],
        serde_json::json!([["beijing", calls.to_string()]])
    );
    // The download is for Excel: it starts with the byte-order mark.
    assert_eq!(
        seen["csv"],
        format!("\u{feff}region,calls\nbeijing,{calls}\n")
    );
    let named = kefu(dir)
        .args([
            "query",
            "calls_kpis",
            "--warehouse",
            "wh",
            "--format",
            "csv",
        ])
        .args([
            "-p",
            "from=2026-01-01",
            "-p",
            "to=2026-03-01",
            "-p",
            "period=month",
        ])
        .output()
        .unwrap();
    let named_rows = String::from_utf8(named.stdout).unwrap().lines().count() - 1;
    assert!(named_rows > 0);
    assert_eq!(seen["named_rows"], named_rows, "{seen}");
    for p in ["from", "to", "period", "region"] {
        assert!(
            seen["named_params"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == p),
            "{seen}"
        );
    }

    // The dashboard: the latest month with calls, its cards and six trend charts.
    for lang in ["en", "zh"] {
        let d = &seen[format!("dashboard_{lang}")];
        assert_eq!(d["charts"], 6, "{d}");
        assert!(d["paths"].as_u64().unwrap() >= 6, "{d}");
        assert_eq!(d["cards"][0][0], "calls_offered", "{d}");
        assert!(d["month"].as_str().unwrap().starts_with("2026-0"), "{d}");
    }
    assert_eq!(seen["dashboard_en"]["cards"], seen["dashboard_zh"]["cards"]);
    // The deliveries section asked the server: these uploads are plain table files, not
    // an office's daily archives, and it says so.
    assert_eq!(
        seen["dashboard_en"]["deliveries"],
        "No ingested file is named as a regional delivery yet."
    );
    assert_eq!(
        seen["dashboard_zh"]["deliveries"],
        "尚无可识别的区域送达文件。"
    );
    let zh = &seen["dashboard_zh"];
    assert!(zh["summary"].as_str().unwrap().contains("环比"), "{zh}");
    assert!(zh["nav"].as_str().unwrap().contains("指标看板"), "{zh}");
    let en = &seen["dashboard_en"];
    assert!(
        en["summary"].as_str().unwrap().contains("previous month"),
        "{en}"
    );

    for shot in ["upload", "sql", "sql-named", "dashboard-en", "dashboard-zh"] {
        let bytes = std::fs::metadata(shots.join(format!("{shot}.png")))
            .unwrap()
            .len();
        assert!(bytes > 20_000, "{shot}.png is only {bytes} bytes");
    }
}
