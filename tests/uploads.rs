//! Uploads to `kefu serve` through real HTTP on 127.0.0.1: the token matrix, upload →
//! status → SQL sees the rows, rows of another region rejected, duplicates, the size
//! limit answered before the body is read, `kefu upload`, exactly once across a crash
//! after the commit and across SIGTERM mid-ingest, and a load of 50 concurrent uploads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{generate, kefu};
use crate::serve::{Server, parse_response};

pub(crate) const BEIJING: &str = "office-token-beijing-0001";
pub(crate) const SHANGHAI: &str = "office-token-shanghai-001";
const ANALYST: &str = "analyst-token-000000001";
pub(crate) const ADMIN: &str = "admin-token-00000000001";

pub(crate) fn config(uploads: &str) -> String {
    format!(
        "[uploads]\n{uploads}\n\n\
         [[token]]\nname = \"beijing\"\ntoken = \"{BEIJING}\"\nrole = \"office\"\nregion = \"beijing\"\n\n\
         [[token]]\nname = \"shanghai\"\ntoken = \"{SHANGHAI}\"\nrole = \"office\"\nregion = \"shanghai\"\n\n\
         [[token]]\nname = \"analysts\"\ntoken = \"{ANALYST}\"\nrole = \"analyst\"\n\n\
         [[token]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl Server {
    pub(crate) fn upload(
        &self,
        token: Option<&str>,
        query: &str,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let auth = token.map(bearer);
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let (status, head, body) =
            self.request_bytes("POST", &format!("/api/v1/uploads?{query}"), &headers, body);
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{head}\n{}", String::from_utf8_lossy(&body)));
        (status, json)
    }

    pub(crate) fn get_json(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let auth = bearer(token);
        let (status, head, body) = self.request("GET", path, &[("Authorization", &auth)], "");
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{path}: {head}\n{}", String::from_utf8_lossy(&body)));
        (status, json)
    }

    /// Polls an upload until it is done or failed.
    pub(crate) fn finished(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (status, record) = self.get_json(ADMIN, &format!("/api/v1/uploads/{id}"));
            assert_eq!(status, 200, "{record}");
            if record["status"] == "done" || record["status"] == "failed" {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "upload {id} never finished: {record}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One number from a SQL query (analyst token).
    pub(crate) fn count(&self, sql: &str) -> i64 {
        let body = serde_json::json!({ "sql": sql }).to_string();
        let (status, _, json) = self.sql(Some(ANALYST), &body, "application/json");
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(status, 200, "{json}");
        json["rows"][0]["n"].as_i64().unwrap()
    }

    fn metric(&self, series: &str) -> f64 {
        let text = String::from_utf8(self.request("GET", "/metrics", &[], "").2).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }
}

/// Data rows of a CSV file whose `region` column is (or, with `invert`, is not) `region`;
/// with their 1-based line numbers.
fn rows_of_region(path: &Path, region: &str) -> Vec<u64> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let at = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "region")
        .unwrap();
    reader
        .records()
        .map(Result::unwrap)
        .filter(|r| &r[at] == region)
        .map(|r| r.position().unwrap().line())
        .collect()
}

fn data_rows(path: &Path) -> i64 {
    csv::Reader::from_path(path).unwrap().records().count() as i64
}

#[test]
fn uploads_land_once_with_region_checks_duplicates_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql");
    let calls = std::fs::read(fixtures.join("calls.csv")).unwrap();
    let beijing_lines = rows_of_region(&fixtures.join("calls.csv"), "beijing");
    let shanghai_lines = rows_of_region(&fixtures.join("calls.csv"), "shanghai");
    assert!(!beijing_lines.is_empty() && !shanghai_lines.is_empty());
    let server = Server::start(
        dir,
        &config("max_bytes = \"64KiB\"\nmax_reject_ratio = 0.5\nconcurrency = 2"),
    );

    // The token matrix of the upload endpoints.
    for (token, want) in [
        (None, 401),
        (Some("not-a-configured-token-00"), 401),
        (Some(ANALYST), 403),
    ] {
        let (status, body) = server.upload(token, "name=calls.csv", &calls);
        assert_eq!(status, want, "{token:?}: {body}");
    }
    let (status, body) = server.upload(Some(BEIJING), "name=calls.csv&region=shanghai", &calls);
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.upload(Some(BEIJING), "name=../calls.csv", &calls);
    assert_eq!(status, 400, "{body}");

    // Upload → 202 → done; the other region's rows are rejected, never landed.
    let (status, accepted) = server.upload(Some(BEIJING), "name=calls.csv", &calls);
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["bytes"], calls.len());
    assert_eq!(accepted["sha256"].as_str().unwrap().len(), 64);
    let id = accepted["id"].as_str().unwrap().to_string();
    let done = server.finished(&id);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"]["landed"], beijing_lines.len(), "{done}");
    assert_eq!(done["counts"]["rejected"], shanghai_lines.len(), "{done}");
    assert_eq!(
        done["rejects_by_reason"]["region_not_allowed"],
        shanghai_lines.len(),
        "{done}"
    );
    assert_eq!(
        server.count("SELECT count(*) AS n FROM calls"),
        beijing_lines.len() as i64
    );
    assert_eq!(
        server.count("SELECT count(*) AS n FROM calls WHERE region <> 'beijing'"),
        0
    );

    // The rejects as CSV: the shanghai rows, by line.
    let auth = bearer(BEIJING);
    let (status, head, csv) = server.request(
        "GET",
        &format!("/api/v1/uploads/{id}/rejects.csv"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 200, "{head}");
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let rejects: Vec<(u64, String)> = reader
        .deserialize::<std::collections::HashMap<String, String>>()
        .map(|r| {
            let r = r.unwrap();
            (r["line"].parse().unwrap(), r["reason"].clone())
        })
        .collect();
    let want: Vec<(u64, String)> = shanghai_lines
        .iter()
        .map(|&l| (l, "region_not_allowed".to_string()))
        .collect();
    assert_eq!(rejects, want);

    // Who sees the upload: its office and the admin; not another office, not analysts.
    assert_eq!(
        server
            .get_json(SHANGHAI, &format!("/api/v1/uploads/{id}"))
            .0,
        404
    );
    assert_eq!(
        server.get_json(ANALYST, &format!("/api/v1/uploads/{id}")).0,
        403
    );
    assert_eq!(
        server.get_json(BEIJING, &format!("/api/v1/uploads/{id}")).0,
        200
    );
    let (_, list) = server.get_json(SHANGHAI, "/api/v1/uploads");
    assert_eq!(list["uploads"].as_array().unwrap().len(), 0);
    let (_, list) = server.get_json(BEIJING, "/api/v1/uploads");
    assert_eq!(list["uploads"][0]["id"], id.as_str());

    // The same content again, under another name: a duplicate, not ingested again.
    let (status, dup) = server.upload(Some(BEIJING), "name=calls-again.csv", &calls);
    assert_eq!(status, 200, "{dup}");
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["duplicate_of"]["upload"], id.as_str());
    assert_eq!(
        server.count("SELECT count(*) AS n FROM calls"),
        beijing_lines.len() as i64
    );

    // Larger than the limit: 413 at once from Content-Length, before any body byte is
    // sent (a server that waited for the body would time out here).
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/uploads?name=big.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BEIJING}\r\nContent-Length: 1073741824\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream
            .read(&mut buf)
            .expect("the server answers without the body");
        assert!(n > 0, "closed without an answer");
        response.extend_from_slice(&buf[..n]);
    }
    let (status, head, _) = parse_response(&response);
    assert_eq!(status, 413, "{head}");

    // `kefu upload`: an admin's upload (no region restriction) waited for, and a file over
    // the limit refused with exit 2.
    let tickets = fixtures.join("tickets.csv");
    let out = kefu(dir)
        .args([
            "upload",
            "--server",
            &format!("http://127.0.0.1:{}", server.port),
        ])
        .args(["--wait", "-q"])
        .env("KEFU_TOKEN", ADMIN)
        .arg(&tickets)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("done: {} landed, 0 rejected", data_rows(&tickets))),
        "{stdout}"
    );
    assert_eq!(
        server.count("SELECT count(*) AS n FROM tickets"),
        data_rows(&tickets)
    );
    std::fs::write(dir.join("huge.csv"), vec![b'x'; 100 * 1024]).unwrap();
    let out = kefu(dir)
        .args(["upload", "huge.csv", "-q", "--token", BEIJING, "--server"])
        .arg(format!("http://127.0.0.1:{}", server.port))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("larger than the server's limit of 64.0 KiB"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing half-received stays in the inbox: the two accepted uploads only (beside
    // the file that marks the directory as the inbox).
    let inbox: Vec<_> = std::fs::read_dir(dir.join("wh/_inbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".kefu-inbox")
        .collect();
    assert_eq!(inbox.len(), 2, "{inbox:?}");

    assert_eq!(
        server.metric("kefu_uploads_total{status=\"accepted\"}"),
        2.0
    );
    assert_eq!(
        server.metric("kefu_uploads_total{status=\"duplicate\"}"),
        1.0
    );
    assert_eq!(
        server.metric("kefu_uploads_total{status=\"too_large\"}"),
        2.0
    );
    assert_eq!(server.metric("kefu_uploads_total{status=\"done\"}"), 2.0);
    assert_eq!(
        server.metric("kefu_rows_landed_total"),
        (beijing_lines.len() as i64 + data_rows(&tickets)) as f64
    );
    assert_eq!(
        server.metric("kefu_rows_rejected_total"),
        shanghai_lines.len() as f64
    );
    assert_eq!(server.metric("kefu_ingest_queue_depth"), 0.0);
}

#[test]
fn uploads_commit_exactly_once_across_a_crash_and_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(dir, 20_000, 30, 1);
    let exports = dir.join("gen");
    let config = config("concurrency = 1");

    // A crash right after a batch commits, before the upload's record says so: the next
    // start finishes the upload from the ledger instead of ingesting it again.
    let mut server = Server::start_with(dir, &config, &[("KEFU_FAILPOINT", "upload_after_commit")]);
    let (status, accepted) = server.upload(
        Some(BEIJING),
        "name=calls.csv",
        &std::fs::read(exports.join("calls.csv")).unwrap(),
    );
    assert_eq!(status, 202, "{accepted}");
    let crashed = server.child.wait().unwrap();
    assert!(
        !crashed.success(),
        "the failpoint should have aborted the server"
    );
    let id = accepted["id"].as_str().unwrap().to_string();
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("wh/_inbox/{id}/upload.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(record["status"], "ingesting", "{record}");
    drop(server);
    let server = Server::start(dir, &config);
    let done = server.finished(&id);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["batch_seq"], 1, "{done}");
    assert!(done["duplicate_of"].is_null(), "{done}");
    assert_eq!(
        done["counts"]["landed"],
        data_rows(&exports.join("calls.csv"))
    );
    assert_eq!(
        server.count("SELECT count(*) AS n FROM calls"),
        data_rows(&exports.join("calls.csv"))
    );

    // SIGTERM while an upload is ingesting and others wait: after a restart every
    // accepted upload lands, once.
    let tables = ["visits", "tickets", "callbacks", "customers"];
    let mut ids = Vec::new();
    for table in tables {
        let body = std::fs::read(exports.join(format!("{table}.csv"))).unwrap();
        let (status, accepted) = server.upload(Some(BEIJING), &format!("name={table}.csv"), &body);
        assert_eq!(status, 202, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let ingesting = loop {
        let (_, list) = server.get_json(ADMIN, "/api/v1/uploads");
        let statuses: Vec<String> = list["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["status"].as_str().unwrap().to_string())
            .collect();
        if statuses.iter().any(|s| s == "ingesting") {
            break statuses;
        }
        assert!(Instant::now() < deadline, "nothing started: {statuses:?}");
    };
    let (exit, stdout) = server.terminate();
    assert!(exit.success(), "{exit:?} {stdout}");
    assert!(
        stdout.contains("wait in the inbox for the next start"),
        "{ingesting:?}: {stdout}"
    );
    let server = Server::start(dir, &config);
    for (id, table) in ids.iter().zip(tables) {
        let done = server.finished(id);
        assert_eq!(done["status"], "done", "{done}");
        let rows = data_rows(&exports.join(format!("{table}.csv")));
        assert_eq!(done["counts"]["landed"], rows, "{table}: {done}");
        assert_eq!(
            server.count(&format!("SELECT count(*) AS n FROM {table}")),
            rows,
            "{table}"
        );
    }
    // Five uploads, five batches: none committed twice.
    let status = kefu(dir)
        .args(["status", "--warehouse", "wh", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["operations"].as_array().unwrap().len(),
        5,
        "{status}"
    );
}

/// Cuts `per_region` files of equal row counts (each with the header) from each region's
/// calls in `calls.csv`, as many rows each as the smallest region allows, into `dir`;
/// returns (region, file, data rows) for each.
fn split_by_region(
    calls: &Path,
    dir: &Path,
    per_region: usize,
) -> Vec<(String, std::path::PathBuf, i64)> {
    let text = std::fs::read_to_string(calls).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let at = header.split(',').position(|h| h == "region").unwrap();
    let mut by_region: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for line in lines {
        // Generated calls have no quoted commas in the columns before `region`.
        let region = line.split(',').nth(at).unwrap().to_string();
        by_region.entry(region).or_default().push(line);
    }
    let chunk = by_region.values().map(Vec::len).min().unwrap() / per_region;
    let mut out = Vec::new();
    for (region, rows) in by_region {
        for (i, part) in rows.chunks(chunk).take(per_region).enumerate() {
            let path = dir.join(format!("{region}_{i}.csv"));
            let mut body = String::with_capacity(part.len() * 200);
            body.push_str(header);
            body.push('\n');
            for row in part {
                body.push_str(row);
                body.push('\n');
            }
            std::fs::write(&path, body).unwrap();
            out.push((region.clone(), path, part.len() as i64));
        }
    }
    out
}

#[test]
fn fifty_concurrent_uploads_from_ten_offices_land_once_while_sql_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Calls of 10 regions, enough for 50 uploads of about 5 MB (the smallest region
    // decides the size).
    generate(dir, 175_000, 150, 10);
    let parts_dir = dir.join("parts");
    std::fs::create_dir_all(&parts_dir).unwrap();
    let parts = split_by_region(&dir.join("gen/calls.csv"), &parts_dir, 5);
    for table in ["calls", "tickets", "callbacks", "visits", "customers"] {
        std::fs::remove_file(dir.join(format!("gen/{table}.csv"))).unwrap();
    }
    let regions: std::collections::BTreeSet<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!((regions.len(), parts.len()), (10, 50));
    let sizes: Vec<u64> = parts
        .iter()
        .map(|p| std::fs::metadata(&p.1).unwrap().len())
        .collect();
    let (smallest, largest) = (*sizes.iter().min().unwrap(), *sizes.iter().max().unwrap());
    assert!(
        smallest > 4_000_000 && largest < 7_000_000,
        "parts of {smallest}..{largest} bytes"
    );
    let token_of = |region: &str| format!("office-token-{region:0<12}");
    let mut config = format!(
        "[uploads]\nconcurrency = 2\n\n[[token]]\nname = \"analysts\"\ntoken = \"{ANALYST}\"\nrole = \"analyst\"\n\n[[token]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"
    );
    for r in &regions {
        config.push_str(&format!(
            "\n[[token]]\nname = \"{r}\"\ntoken = \"{}\"\nrole = \"office\"\nregion = \"{r}\"\n",
            token_of(r)
        ));
    }
    let server = Server::start(dir, &config);
    let total: i64 = parts.iter().map(|p| p.2).sum();

    let started = Instant::now();
    let uploading = std::sync::atomic::AtomicBool::new(true);
    let (ids, answers) = std::thread::scope(|scope| {
        // A stream of SQL queries while the uploads arrive and are ingested.
        let queries = scope.spawn(|| {
            let mut answers = Vec::new();
            while uploading.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = Instant::now();
                let n = server.count("SELECT count(*) AS n FROM calls");
                answers.push((n, asked.elapsed()));
                std::thread::sleep(Duration::from_millis(200));
            }
            answers
        });
        let uploads: Vec<_> = parts
            .iter()
            .map(|(region, path, _)| {
                let server = &server;
                let token = token_of(region);
                scope.spawn(move || {
                    let body = std::fs::read(path).unwrap();
                    let name = path.file_name().unwrap().to_string_lossy();
                    let (status, accepted) =
                        server.upload(Some(&token), &format!("name={name}"), &body);
                    assert_eq!(status, 202, "{accepted}");
                    accepted["id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        let ids: Vec<String> = uploads.into_iter().map(|h| h.join().unwrap()).collect();
        for id in &ids {
            server.finished(id);
        }
        uploading.store(false, std::sync::atomic::Ordering::Relaxed);
        (ids, queries.join().unwrap())
    });
    let elapsed = started.elapsed();

    let mut by_region: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    for (id, (region, path, rows)) in ids.iter().zip(&parts) {
        let (_, record) = server.get_json(ADMIN, &format!("/api/v1/uploads/{id}"));
        assert_eq!(record["status"], "done", "{}: {record}", path.display());
        assert_eq!(record["counts"]["landed"], *rows, "{record}");
        assert_eq!(record["counts"]["rejected"], 0, "{record}");
        assert_eq!(record["region"], region.as_str());
        by_region.entry(region.clone()).or_default().push((
            record["received_at"].as_str().unwrap().to_string(),
            record["batch_seq"].as_u64().unwrap(),
        ));
    }
    // One region's uploads committed in the order they were accepted.
    for (region, mut uploads) in by_region {
        uploads.sort();
        assert!(
            uploads.windows(2).all(|w| w[0].1 < w[1].1),
            "{region}: {uploads:?}"
        );
    }
    assert_eq!(server.count("SELECT count(*) AS n FROM calls"), total);
    assert_eq!(
        server.count("SELECT count(DISTINCT call_id) AS n FROM calls"),
        total
    );
    for r in &regions {
        let want: i64 = parts.iter().filter(|p| p.0 == *r).map(|p| p.2).sum();
        assert_eq!(
            server.count(&format!(
                "SELECT count(*) AS n FROM calls WHERE region = '{r}'"
            )),
            want,
            "{r}"
        );
    }
    // The queries kept answering, and saw whole batches only (never more than all).
    assert!(answers.len() >= 3, "{answers:?}");
    assert!(answers.iter().all(|(n, _)| *n <= total));
    assert!(answers.windows(2).all(|w| w[0].0 <= w[1].0), "{answers:?}");
    let slowest = answers.iter().map(|a| a.1).max().unwrap();
    eprintln!(
        "50 uploads, {} MB, {total} rows: all done in {:.1} s; {} SQL answers meanwhile, slowest {:.2} s",
        sizes.iter().sum::<u64>() / 1_000_000,
        elapsed.as_secs_f64(),
        answers.len(),
        slowest.as_secs_f64()
    );
}

#[test]
fn every_endpoint_checks_its_tokens_and_logs_never_hold_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql");
    let server = Server::start_with(
        dir,
        &config("max_reject_ratio = 0.5"),
        &[("KEFU_LOG", "info"), ("KEFU_LOG_FORMAT", "json")],
    );
    let calls = std::fs::read(fixtures.join("calls.csv")).unwrap();
    let (status, accepted) = server.upload(Some(BEIJING), "name=calls.csv", &calls);
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    assert_eq!(server.finished(&id)["status"], "done");

    // Who may do what: none, an unknown token, the two offices, an analyst, the admin.
    const OK: u16 = 200;
    let principals = [
        None,
        Some("not-a-configured-token-00"),
        Some(BEIJING),
        Some(SHANGHAI),
        Some(ANALYST),
        Some(ADMIN),
    ];
    let status_path = format!("/api/v1/uploads/{id}");
    let rejects_path = format!("/api/v1/uploads/{id}/rejects.csv");
    let matrix: [(&str, &str, &str, [u16; 6]); 11] = [
        (
            "POST",
            "/api/v1/sql",
            r#"{"sql": "SELECT 1"}"#,
            [401, 401, 403, 403, OK, OK],
        ),
        ("GET", "/api/v1/queries", "", [401, 401, 403, 403, OK, OK]),
        (
            "GET",
            "/api/v1/dashboard?month=2026-01&lang=en",
            "",
            [401, 401, 403, 403, OK, OK],
        ),
        ("GET", "/api/v1/whoami", "", [401, 401, OK, OK, OK, OK]),
        ("GET", "/api/v1/uploads", "", [401, 401, OK, OK, 403, OK]),
        ("GET", &status_path, "", [401, 401, OK, 404, 403, OK]),
        ("GET", &rejects_path, "", [401, 401, OK, 404, 403, OK]),
        (
            "POST",
            "/api/v1/uploads?name=calls.csv",
            "x",
            [401, 401, 202, 202, 403, 202],
        ),
        ("GET", "/healthz", "", [OK; 6]),
        ("GET", "/metrics", "", [OK; 6]),
        ("GET", "/console/", "", [OK; 6]),
    ];
    for (method, path, body, want) in matrix {
        for (principal, want) in principals.iter().zip(want) {
            let auth = principal.map(bearer);
            let mut headers = vec![("X-Request-Id", "matrix-1")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            // Each upload's content differs, so none is a duplicate of another.
            let body = if method == "POST" && path.contains("uploads") {
                format!("call_id,region\n{}\n", principal.unwrap_or("none"))
            } else {
                body.to_string()
            };
            let (status, head, response) = server.request(method, path, &headers, &body);
            assert_eq!(
                status,
                want,
                "{method} {path} as {principal:?}: {head}\n{}",
                String::from_utf8_lossy(&response)
            );
        }
    }

    // The logs are JSON lines carrying the request ids, and never a token.
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("serve.log line {}: {e}: {l:?}\n{log}", i + 1))
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["id"] == "matrix-1" && l["span"]["route"] == "/api/v1/sql"),
        "{log}"
    );
    for secret in [BEIJING, SHANGHAI, ANALYST, ADMIN] {
        assert!(!log.contains(secret), "a token is in the log");
    }
}

#[test]
fn kefu_upload_retries_until_the_server_is_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tickets = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql/tickets.csv");
    // A port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
        .env_clear()
        .current_dir(dir)
        .args(["--log", "warn", "upload", "-q", "--wait", "--retries", "8"])
        .args([
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            ADMIN,
        ])
        .arg(&tickets)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _server = Server::start_args(
        dir,
        &config(""),
        &[],
        &["--listen", &format!("127.0.0.1:{port}")],
    );
    let out = client.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("trying again in"), "{stderr}");
    assert!(
        stdout.contains(&format!("done: {} landed", data_rows(&tickets))),
        "{stdout}"
    );
}
