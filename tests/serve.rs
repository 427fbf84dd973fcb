//! `kefu serve` through real HTTP on 127.0.0.1: the token matrix, SQL in every format
//! against `kefu query`, errors with positions, limits, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::kefu;

const OFFICE: &str = "office-token-beijing-0001";
const ANALYST: &str = "analyst-token-000000001";
const ADMIN: &str = "admin-token-00000000001";

/// A `kefu serve` child on a free port, killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
    /// The Flight SQL port, when started with one.
    pub(crate) flight: Option<u16>,
    /// The PostgreSQL port, when started with one.
    pub(crate) postgres: Option<u16>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn start(dir: &Path, config: &str) -> Server {
        Server::start_with(dir, config, &[])
    }

    /// Starts with extra environment variables (a failpoint).
    pub(crate) fn start_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Server {
        Server::start_args(dir, config, env, &[])
    }

    /// Starts with extra environment variables and arguments (`--flight 127.0.0.1:0`, or
    /// `--listen` for a given port). Its stderr (the logs) goes to `serve.log` in `dir`.
    pub(crate) fn start_args(
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        std::fs::write(dir.join("server.toml"), config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .env_clear()
            .envs(env.iter().copied())
            .current_dir(dir)
            .args(["serve", "--warehouse", "wh", "--config", "server.toml"])
            .args(if args.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(args)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("serve.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut port_of_line = || -> u16 {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no address in {line:?}"))
        };
        let port = port_of_line();
        let flight = args.contains(&"--flight").then(&mut port_of_line);
        let postgres = args.contains(&"--postgres").then(&mut port_of_line);
        child.stdout = Some(stdout.into_inner());
        Server {
            child,
            port,
            flight,
            postgres,
        }
    }

    /// One HTTP/1.1 request (Connection: close): (status, headers, body).
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, Vec<u8>) {
        self.request_bytes(method, path, headers, body.as_bytes())
    }

    pub(crate) fn request_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        parse_response(&response)
    }

    pub(crate) fn sql(
        &self,
        token: Option<&str>,
        body: &str,
        accept: &str,
    ) -> (u16, String, Vec<u8>) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json"), ("Accept", accept)];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        self.request("POST", "/api/v1/sql", &headers, body)
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let mut rest = String::new();
        self.child
            .stdout
            .as_mut()
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        (exit, rest)
    }
}

/// (status, head, body) of a whole HTTP/1.1 response.
pub(crate) fn parse_response(response: &[u8]) -> (u16, String, Vec<u8>) {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

fn config() -> String {
    format!(
        "[sql]\nmax_rows = 5\n\n[[token]]\nname = \"beijing\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\nregion = \"beijing\"\n\n[[token]]\nname = \"analysts\"\ntoken = \"{ANALYST}\"\nrole = \"analyst\"\n\n[[token]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"
    )
}

#[test]
fn sql_over_http_with_tokens_formats_limits_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let server = Server::start(dir, &config());

    let (status, _, body) = server.request("GET", "/healthz", &[], "");
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));

    // The token matrix of the SQL endpoint.
    let one = r#"{"sql": "SELECT 1 AS one"}"#;
    for (token, want) in [
        (None, 401),
        (Some("not-a-configured-token-00"), 401),
        (Some(OFFICE), 403),
        (Some(ANALYST), 200),
        (Some(ADMIN), 200),
    ] {
        let (status, head, _) = server.sql(token, one, "application/json");
        assert_eq!(status, want, "{token:?}: {head}");
    }
    let (_, head, _) = server.sql(None, one, "application/json");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );

    // A named query as CSV: exactly what `kefu query` prints.
    let params = ["from=2026-01-01", "to=2026-03-01", "period=month"];
    let mut cmd = kefu(dir);
    cmd.args([
        "query",
        "complaints_trend",
        "--warehouse",
        "wh",
        "--format",
        "csv",
    ]);
    for p in params {
        cmd.args(["--param", p]);
    }
    let expected = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    assert!(expected.lines().count() > 1, "{expected}");
    let body = r#"{"query": "complaints_trend", "params": {"from": "2026-01-01", "to": "2026-03-01", "period": "month"}}"#;
    let (status, head, csv) = server.sql(Some(ANALYST), body, "text/csv");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/csv"), "{head}");
    assert_eq!(String::from_utf8(csv).unwrap(), expected);

    // JSON, cut at the configured 5 rows (the fixtures hold 12 calls) and said so.
    let (status, _, json) = server.sql(
        Some(ANALYST),
        r#"{"sql": "SELECT call_id FROM calls ORDER BY call_id"}"#,
        "application/json",
    );
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["row_count"], 5);
    assert_eq!(json["truncated"], true);
    assert_eq!(json["rows"].as_array().unwrap().len(), 5);
    assert_eq!(json["columns"][0]["name"], "call_id");
    let (_, _, small) = server.sql(
        Some(ANALYST),
        r#"{"sql": "SELECT count(*) AS n FROM calls", "format": "json"}"#,
        "*/*",
    );
    let small: serde_json::Value = serde_json::from_slice(&small).unwrap();
    assert_eq!(
        (small["rows"][0]["n"].as_i64(), small["truncated"].as_bool()),
        (Some(12), Some(false))
    );

    // Arrow IPC, decoded with arrow's own reader.
    let (status, head, ipc) = server.sql(
        Some(ADMIN),
        r#"{"sql": "SELECT region, count(*) AS n FROM calls GROUP BY region ORDER BY region"}"#,
        "application/vnd.apache.arrow.stream",
    );
    assert_eq!(status, 200, "{head}");
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert!(rows >= 1);

    // Errors: JSON with the position, writes refused, bad requests explained.
    let (status, _, e) = server.sql(
        Some(ANALYST),
        "{\"sql\": \"SELECT 1\\nFORM calls\"}",
        "application/json",
    );
    let e: serde_json::Value = serde_json::from_slice(&e).unwrap();
    assert_eq!(status, 400, "{e}");
    // `FORM` reads as a column alias, so the parser stops at `calls`: line 2, column 6.
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(6)),
        "{e}"
    );
    let (status, _, e) = server.sql(
        Some(ADMIN),
        r#"{"sql": "DROP TABLE calls"}"#,
        "application/json",
    );
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&e).contains("read-only"),
        "{}",
        String::from_utf8_lossy(&e)
    );
    let (status, _, e) = server.sql(
        Some(ANALYST),
        r#"{"query": "calls_kpis", "params": {"t": "soon"}}"#,
        "application/json",
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&e).contains("not an integer"));
    let (status, _, _) = server.sql(Some(ANALYST), "not json", "application/json");
    assert_eq!(status, 400);

    // Request ids: a caller's own is echoed, else one is made.
    let (_, head, _) = server.request("GET", "/healthz", &[("X-Request-Id", "office-42")], "");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-request-id: office-42"),
        "{head}"
    );
    let (_, head, _) = server.request("GET", "/healthz", &[], "");
    let made = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no request id in {head}"));
    assert_eq!(made.len(), 36, "{made}");

    // Metrics count what happened above, in the Prometheus text format.
    let (status, head, text) = server.request("GET", "/metrics", &[], "");
    let text = String::from_utf8(text).unwrap();
    assert_eq!(status, 200, "{head}");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value("kefu_http_requests_total{route=\"/api/v1/sql\",status=\"401\"}"),
        3.0
    );
    assert_eq!(
        value("kefu_http_requests_total{route=\"/api/v1/sql\",status=\"403\"}"),
        1.0
    );
    assert_eq!(value("kefu_sql_queries_total{outcome=\"ok\"}"), 6.0);
    assert_eq!(value("kefu_sql_queries_total{outcome=\"error\"}"), 2.0);
    // Rows: two `SELECT 1`, the CSV's rows, 5 cut JSON rows, one count, the Arrow rows.
    let csv_rows = expected.lines().count() - 1;
    assert_eq!(
        value("kefu_sql_rows_returned_total"),
        (2 + csv_rows + 5 + 1 + rows) as f64
    );
    assert!(value("kefu_sql_query_seconds_count") >= 8.0);
}

#[test]
fn serve_cancels_slow_queries_stops_on_sigterm_and_refuses_bad_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    // A query past the timeout is cancelled with 504, and the server goes on answering.
    let server = Server::start(
        dir,
        &config().replace("[sql]\n", "[sql]\ntimeout_seconds = 1\n"),
    );
    let started = std::time::Instant::now();
    let (status, _, body) = server.sql(
        Some(ANALYST),
        r#"{"sql": "SELECT sum(value % 7) FROM generate_series(1, 100000000000)"}"#,
        "application/json",
    );
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("longer than 1 s"));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(server.request("GET", "/healthz", &[], "").0, 200);

    // A cancelled cross join stops computing (DataFusion's joins do not yield by
    // themselves; the server makes them): the server's CPU time stays still after the 504.
    let (status, _, body) = server.sql(
        Some(ANALYST),
        r#"{"sql": "SELECT count(*) AS n FROM generate_series(1, 200000) a CROSS JOIN generate_series(1, 200000) b"}"#,
        "application/json",
    );
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    #[cfg(target_os = "linux")]
    {
        let cpu_ticks = || -> u64 {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", server.child.id())).unwrap();
            // utime and stime, after the command name in parentheses.
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        let before = cpu_ticks();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let spent = cpu_ticks() - before;
        // A join still running would spend about 2 s per core (200 ticks at 100 Hz).
        assert!(
            spent < 50,
            "the cancelled join kept computing: {spent} ticks in 2 s"
        );
    }

    let metrics = String::from_utf8(server.request("GET", "/metrics", &[], "").2).unwrap();
    assert!(
        metrics.contains("kefu_sql_queries_total{outcome=\"timeout\"} 2"),
        "{metrics}"
    );

    let (exit, rest) = server.terminate();
    assert!(exit.success(), "{exit:?}");
    assert!(rest.contains("stopped"), "{rest}");

    std::fs::write(
        dir.join("bad.toml"),
        "[[token]]\nname = \"x\"\ntoken = \"0123456789abcdef\"\nrole = \"boss\"\n",
    )
    .unwrap();
    kefu(dir)
        .args(["serve", "--warehouse", "wh", "--config", "bad.toml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad.toml:4: role 'boss'"));
}
