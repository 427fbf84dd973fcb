//! `--cluster`: a Ballista scheduler and two executors (`kefu cluster …`, separate
//! processes on 127.0.0.1) run every named query with the same result as local mode,
//! kefu's own functions included.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{generate, kefu};

/// Child processes killed on drop.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(dir: &Path, args: &[String], env: &[(&str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("cluster.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

/// A scheduler and two executors on free ports, with `env`; returns their processes and
/// the URL.
/// A scheduler and two executors serving `warehouses`.
fn start_cluster(dir: &Path, env: &[(&str, String)], warehouses: &[&str]) -> (Processes, String) {
    start_cluster_with(dir, env, 2, warehouses)
}

fn start_cluster_with(
    dir: &Path,
    env: &[(&str, String)],
    concurrency: usize,
    warehouses: &[&str],
) -> (Processes, String) {
    let scheduler = free_port();
    let mut processes = Processes(vec![spawn(
        dir,
        &[
            "cluster".into(),
            "scheduler".into(),
            "--bind".into(),
            format!("127.0.0.1:{scheduler}"),
        ],
        env,
    )]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", scheduler)).is_err() {
        assert!(Instant::now() < deadline, "the scheduler did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    for name in ["e1", "e2"] {
        let work = dir.join(name);
        std::fs::create_dir_all(&work).unwrap();
        let mut args: Vec<String> = ["cluster", "executor"].map(String::from).into();
        for warehouse in warehouses {
            args.extend(["--warehouse".to_string(), warehouse.to_string()]);
        }
        processes.0.push(spawn(
            dir,
            &[
                args,
                vec![
                    "--scheduler".into(),
                    format!("127.0.0.1:{scheduler}"),
                    "--port".into(),
                    free_port().to_string(),
                    "--grpc-port".into(),
                    free_port().to_string(),
                    "--concurrency".into(),
                    concurrency.to_string(),
                    "--work-dir".into(),
                    work.display().to_string(),
                ],
            ]
            .concat(),
            env,
        ));
    }
    (processes, format!("df://127.0.0.1:{scheduler}"))
}

/// `kefu query NAME` over `warehouse` as CSV, with `params` (`-p NAME=VALUE` pairs), on
/// the cluster at `cluster` if given.
fn query_args<'a>(
    warehouse: &'a str,
    name: &'a str,
    params: &[&'a str],
    cluster: Option<&'a str>,
) -> Vec<&'a str> {
    let mut args = vec!["query", name, "--warehouse", warehouse, "--format", "csv"];
    args.extend_from_slice(params);
    if let Some(url) = cluster {
        args.extend(["--cluster", url]);
    }
    args
}

fn query_in(
    dir: &Path,
    warehouse: &str,
    name: &str,
    params: &[&str],
    cluster: Option<&str>,
    env: &[(&str, String)],
) -> std::process::Output {
    let mut cmd = kefu(dir);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.args(query_args(warehouse, name, params, cluster));
    // A job the cluster never finishes fails the test instead of hanging it.
    cmd.timeout(Duration::from_secs(120)).output().unwrap()
}

#[test]
fn every_named_query_on_a_two_executor_cluster_equals_local_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let (_cluster, url) = start_cluster(dir, &[], &["wh", "upserted"]);

    let compared = compare_named_queries(dir, "wh", &url, &[]);
    assert!(compared >= 20);

    // After upserts: lifecycle exports ingested day by day (tickets replaced as they
    // change, re-sends dropped, partitions compacted), so each table's version names files
    // that replaced others. The cluster reads the version the client planned against.
    kefu(dir)
        .args(["gen", "--messy", "-q", "--customers", "300", "--days", "35"])
        .args(crate::common::DENSE_COMPLAINTS)
        .args([
            "--regions",
            "2",
            "--resend-rate",
            "0.2",
            "--out",
            "lifecycle",
        ])
        .assert()
        .success();
    crate::delta::ingest_by_delivery(
        &dir.join("lifecycle"),
        &dir.join("upserted"),
        &["--compact-after", "6"],
    );
    let status = kefu(dir)
        .args(["status", "--json", "--warehouse", "upserted"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let tickets_version = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "tickets")
        .unwrap()["version"]
        .as_u64()
        .unwrap();
    assert!(
        tickets_version > 20,
        "tickets were updated batch after batch"
    );
    assert_eq!(compare_named_queries(dir, "upserted", &url, &[]), compared);

    // `kefu cluster check`: both executors run part of its query, and it equals local.
    let report = cluster_check(dir, &url, &[]);
    assert!(report.contains("2 executor(s), 4 task slot(s)"), "{report}");
    let tasks: Vec<u64> = report
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|address| address.starts_with("127.0.0.1:"))
        })
        .map(|line| line.split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    assert_eq!(tasks.len(), 2, "{report}");
    assert!(tasks.iter().all(|&n| n > 0), "{report}");
    assert!(report.contains("answers equal"), "{report}");

    // business_seconds counts under the client's working calendar on the executors too.
    std::fs::write(
        dir.join("calendar.toml"),
        "hours = [\"08:00-20:00\"]\nweekdays = [1, 2, 3, 4, 5, 6, 7]\nholidays = [\"2026-01-15\"]\n",
    )
    .unwrap();
    let working = |calendar: bool, cluster: bool| {
        let mut cmd = kefu(dir);
        cmd.args(["sql", "--warehouse", "wh", "--format", "csv", "-e"])
            .arg(
                "SELECT region, sum(business_seconds(queued_at, ended_at)) AS s FROM calls \
             GROUP BY region ORDER BY region",
            );
        if calendar {
            cmd.args(["--calendar", "calendar.toml"]);
        }
        if cluster {
            cmd.args(["--cluster", &url]);
        }
        let out = cmd.timeout(Duration::from_secs(120)).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let local = working(true, false);
    assert_ne!(
        local,
        working(false, false),
        "the calendar changes the answer"
    );
    assert_eq!(working(true, true), local);

    // A join whose one side is empty (a scan pruned to no files): Ballista's adaptive
    // planner never finished it (the churn queries met it), so kefu uses the static one.
    let out = kefu(dir)
        .args([
            "sql",
            "--warehouse",
            "wh",
            "--format",
            "csv",
            "--cluster",
            &url,
            "-e",
        ])
        .arg(
            "SELECT k.customer_id, p.n FROM customers k LEFT JOIN (SELECT customer_id, \
             count(*) AS n FROM calls WHERE month = '1999-01' GROUP BY customer_id) p \
             ON p.customer_id = k.customer_id ORDER BY k.customer_id",
        )
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let customers = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql/customers.csv"),
    )
    .unwrap()
    .lines()
    .count()
        - 1;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        customers + 1
    );

    // A job's query steps on the cluster write what a local run writes.
    for (name, cluster) in [("local", None), ("remote", Some(url.as_str()))] {
        std::fs::write(
            dir.join(format!("{name}.toml")),
            format!(
                "name = \"{name}\"\nwarehouse = \"wh\"\noutput_dir = \"out-{name}\"\n\n\
                 [[step]]\ntype = \"query\"\nquery = \"complaints_trend\"\n\
                 params = {{ from = \"2026-01-01\", to = \"2026-03-01\" }}\npartition = \"month\"\n\
                 [[step.output]]\npath = \"complaints.csv\"\n"
            ),
        )
        .unwrap();
        let mut run = kefu(dir);
        run.args(["run", &format!("{name}.toml"), "-q"]);
        if let Some(url) = cluster {
            run.args(["--cluster", url]);
        }
        let out = run.timeout(Duration::from_secs(120)).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let local = std::fs::read(dir.join("out-local/complaints.csv")).unwrap();
    assert!(local.len() > 100);
    assert_eq!(
        std::fs::read(dir.join("out-remote/complaints.csv")).unwrap(),
        local
    );
}

#[test]
fn cluster_check_fails_clearly_without_a_scheduler_or_executors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let check = |url: &str| {
        kefu(dir)
            .args(["cluster", "check", url, "--warehouse", "wh"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    };
    let nobody = format!("df://127.0.0.1:{}", free_port());
    let out = check(&nobody);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the scheduler"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A scheduler alone.
    let port = free_port();
    let _scheduler = Processes(vec![spawn(
        dir,
        &[
            "cluster".into(),
            "scheduler".into(),
            "--bind".into(),
            format!("127.0.0.1:{port}"),
        ],
        &[],
    )]);
    let url = format!("df://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = check(&url);
        if out.status.code() != Some(4) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 executor(s)"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no executor has registered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Told to wait, the check keeps trying for that long, then fails the same way.
    let waited = Instant::now();
    let out = kefu(dir)
        .args(["cluster", "check", &url, "--warehouse", "wh", "--wait", "2"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(waited.elapsed() >= Duration::from_secs(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no executor has registered"));

    // A query waits for an executor only as long as --cluster-wait says (the scheduler
    // would hold its job for ever), then fails naming the scheduler.
    let out = kefu(dir)
        .args([
            "sql",
            "-e",
            "SELECT count(*) FROM calls",
            "--warehouse",
            "wh",
        ])
        .args(["--cluster", &url, "--cluster-wait", "2"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("no executor has registered with {url} in 2")),
        "{stderr}"
    );
}

/// Waits until the cluster at `url` answers a query, then compares every named query with
/// local mode over `warehouse`; returns how many were compared.
fn compare_named_queries(dir: &Path, warehouse: &str, url: &str, env: &[(&str, String)]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !query_in(dir, warehouse, "calls_kpis", &[], Some(url), env)
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the cluster never answered: {}",
            std::fs::read_to_string(dir.join("cluster.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let library = kefu_sql::QueryLibrary::embedded().unwrap();
    for named in library.iter() {
        let local = query_in(dir, warehouse, &named.name, &[], None, env);
        let remote = query_in(dir, warehouse, &named.name, &[], Some(url), env);
        assert!(
            local.status.success() && remote.status.success(),
            "{}: {}{}",
            named.name,
            String::from_utf8_lossy(&local.stderr),
            String::from_utf8_lossy(&remote.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&remote.stdout),
            String::from_utf8_lossy(&local.stdout),
            "{}",
            named.name
        );
    }
    library.iter().count()
}

#[test]
fn named_queries_on_a_cluster_over_an_s3_warehouse_equal_local_mode() {
    let Some(moto) = crate::ingest::Moto::start() else {
        assert!(
            std::env::var_os("KEFU_REQUIRE_MOTO").is_none(),
            "KEFU_REQUIRE_MOTO is set but moto_server could not be started"
        );
        eprintln!(
            "SKIPPED named_queries_on_a_cluster_over_an_s3_warehouse_equal_local_mode: no \
             moto_server (set KEFU_MOTO_SERVER; .ci/run installs one)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    moto.put("/kefu-cluster", b"");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql");
    let os = std::ffi::OsStr::new;
    moto.kefu(&[
        os("ingest"),
        os("--warehouse"),
        os("s3://kefu-cluster/wh"),
        os("-q"),
        os("--max-reject-ratio"),
        os("0"),
        fixtures.as_os_str(),
    ]);
    // The executors and the scheduler read the bucket with the same environment.
    let env = [
        ("AWS_ENDPOINT", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ];
    let (_cluster, url) = start_cluster(dir, &env, &["s3://kefu-cluster/wh"]);
    let compared = compare_named_queries(dir, "s3://kefu-cluster/wh", &url, &env);
    assert!(compared >= 20);
}

/// Whether `dir` holds a file anywhere below it.
fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                has_files(&path)
            } else {
                true
            }
        })
    })
}

#[test]
fn a_query_survives_losing_an_executor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(dir, 30_000, 60, 4);
    kefu(dir)
        .args(["ingest", "--warehouse", "wh", "-q", "gen"])
        .assert()
        .success();
    // One task at a time per executor, so that the query has tasks on both for a while.
    let (mut cluster, url) = start_cluster_with(dir, &[], 1, &["wh"]);
    let params = ["-p", "from=2026-01-01", "-p", "to=2026-03-01"];
    let local = query_in(dir, "wh", "churn_monthly", &params, None, &[]);
    assert!(local.status.success());
    // The cluster answers first (the executors have registered).
    assert!(compare_one(dir, &url, &params, &local.stdout));

    // Again, and the second executor is killed as soon as it writes shuffle data.
    let _ = std::fs::remove_dir_all(dir.join("e2"));
    std::fs::create_dir_all(dir.join("e2")).unwrap();
    let remote = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .env_clear()
        .current_dir(dir)
        .args(query_args("wh", "churn_monthly", &params, Some(&url)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_files(&dir.join("e2")) {
        assert!(
            Instant::now() < deadline,
            "the second executor never got a task"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let executor = &mut cluster.0[2];
    executor.kill().unwrap();
    executor.wait().unwrap();
    let out = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| remote.wait_with_output().unwrap());
        waiting.join().unwrap()
    });
    // The scheduler resets the lost executor's tasks and the query completes on the other
    // executor, with the same rows.
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&local.stdout)
    );
    let log = std::fs::read_to_string(dir.join("cluster.log")).unwrap();
    assert!(log.contains("on lost Executor"), "{log}");
}

/// Whether churn_monthly with `params` on the cluster gives `expected`.
fn compare_one(dir: &Path, url: &str, params: &[&str], expected: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = query_in(dir, "wh", "churn_monthly", params, Some(url), &[]);
        if out.status.success() {
            return out.stdout == expected;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `sql` as any Ballista client of the scheduler at `url` can (none of kefu's
/// read-only checks), returning the rows as text or the error.
fn plain_ballista_client(url: &str, statements: &[String]) -> Result<String, String> {
    use ballista_core::extension::{SessionConfigExt, SessionStateExt};
    use datafusion::execution::session_state::SessionStateBuilder;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = datafusion::prelude::SessionConfig::new()
            .with_ballista_logical_extension_codec(std::sync::Arc::new(
                kefu_cluster::codec::KefuLogicalCodec::default(),
            ))
            .with_ballista_physical_extension_codec(std::sync::Arc::new(
                kefu_cluster::codec::KefuPhysicalCodec::default(),
            ));
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .build()
            .upgrade_for_ballista(url.to_string())
            .map_err(|e| e.to_string())?;
        let ctx = datafusion::prelude::SessionContext::new_with_state(state);
        let mut out = String::new();
        for sql in statements {
            let batches = tokio::time::timeout(Duration::from_secs(120), async {
                ctx.sql(sql).await?.collect().await
            })
            .await
            .map_err(|_| format!("{sql}: no answer in 120 s"))?
            .map_err(|e| format!("{sql}: {e}"))?;
            out.push_str(
                &arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string(),
            );
        }
        Ok(out)
    })
}

/// Any client of the scheduler can send plans, not only kefu's read-only SQL: a plan that
/// read a file beside the warehouse, or wrote one (`COPY … TO`), ran on the executors.
/// Executors now read only the warehouses they serve and write nothing.
#[test]
fn executors_read_only_the_warehouses_they_serve_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    crate::sql::fixture_warehouse(&dir);
    // A value no job id or message can contain by chance (a bare "42" did: job 038JA9B42W000).
    std::fs::write(dir.join("secret.csv"), "secret\nclassified-payload-value\n").unwrap();
    // A CSV inside the warehouse directory: the control that the client's path works.
    std::fs::write(dir.join("wh/probe.csv"), "probe\n7\n").unwrap();
    let (_cluster, url) = start_cluster(&dir, &[], &["wh"]);
    let table = |name: &str, path: &Path| {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            path.display()
        )
    };

    let inside = plain_ballista_client(
        &url,
        &[
            table("probe", &dir.join("wh/probe.csv")),
            "SELECT probe FROM probe".into(),
        ],
    )
    .unwrap();
    assert!(inside.contains('7'), "{inside}");

    let err = plain_ballista_client(
        &url,
        &[
            table("secret", &dir.join("secret.csv")),
            "SELECT secret FROM secret".into(),
        ],
    )
    .unwrap_err();
    assert!(!err.contains("classified-payload-value"), "{err}");
    assert!(err.contains("refused"), "{err}");

    let written = dir.join("written.csv");
    let err = plain_ballista_client(
        &url,
        &[format!(
            "COPY (SELECT 1 AS one) TO '{}' STORED AS CSV",
            written.display()
        )],
    );
    assert!(err.is_err(), "{err:?}");
    assert!(!written.exists(), "an executor wrote {}", written.display());
    let err = plain_ballista_client(
        &url,
        &[format!(
            "COPY (SELECT 1 AS one) TO '{}' STORED AS CSV",
            dir.join("wh/written.csv").display()
        )],
    );
    assert!(err.is_err(), "{err:?}");
    assert!(!dir.join("wh/written.csv").exists());
}

/// `kefu cluster check` of the cluster at `url` over `dir/wh`, with `env`, which must
/// succeed: its report.
fn cluster_check(dir: &Path, url: &str, env: &[(&str, String)]) -> String {
    let out = kefu(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["cluster", "check", url, "--warehouse", "wh"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// `kefu cluster certs` into `dir/name`.
fn cluster_certs(dir: &Path, name: &str) -> String {
    kefu(dir)
        .args(["cluster", "certs", "--out", name])
        .assert()
        .success();
    dir.join(name).display().to_string()
}

/// The cluster's ports took any client. With `--tls` (here through KEFU_CLUSTER_TLS, as
/// a deployment would set it) its members and clients know each other by the cluster's
/// certificate: queries, shuffles and `cluster check` work over TLS, and a client without
/// the certificate, or with another cluster's, is refused.
#[test]
fn a_tls_cluster_serves_its_members_and_refuses_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::sql::fixture_warehouse(dir);
    let certs = cluster_certs(dir, "tls");
    let key = dir.join("tls/member.key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions())
            & 0o777,
        0o600
    );
    // A second run does not overwrite the first.
    kefu(dir)
        .args(["cluster", "certs", "--out", "tls"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("not empty"));
    let env = [("KEFU_CLUSTER_TLS", certs)];
    let (_cluster, url) = start_cluster(dir, &env, &["wh"]);
    // Executors on one machine read each other's shuffle files from disk: read them
    // through the Flight servers, over TLS.
    let remote_shuffles = [
        env[0].clone(),
        ("BALLISTA_SHUFFLE_FORCE_REMOTE_READ", "true".to_string()),
    ];
    assert!(compare_named_queries(dir, "wh", &url, &remote_shuffles) >= 20);

    let report = cluster_check(dir, &url, &env);
    assert!(report.contains("answers equal"), "{report}");

    // Strangers: no certificate, or another cluster's.
    let plain = query_in(dir, "wh", "calls_kpis", &[], Some(&url), &[]);
    assert!(!plain.status.success());
    let err = plain_ballista_client(&url, &["SELECT 1 AS one".to_string()]).unwrap_err();
    assert!(!err.contains("| 1"), "{err}");
    let other = cluster_certs(dir, "other-tls");
    let stranger = query_in(
        dir,
        "wh",
        "calls_kpis",
        &[],
        Some(&url),
        &[("KEFU_CLUSTER_TLS", other)],
    );
    assert!(
        !stranger.status.success(),
        "{}",
        String::from_utf8_lossy(&stranger.stdout)
    );
    let log = std::fs::read_to_string(dir.join("cluster.log")).unwrap();
    assert!(log.contains("refused a connection (TLS)"), "{log}");
}
