//! The warehouse's own calendar: a warehouse created in Europe/London or America/New_York
//! partitions, groups and filters by that zone's months, days, hours and weekdays — DST
//! changes included — as DuckDB does over the same instants with that zone set.

use std::process::Command;

/// DuckDB over the generated calls (UTC instants), on `zone`'s clock: the same figures as
/// `calls_kpis` (by month and by day, March) and `calls_load_matrix` (March), and the rows
/// per month.
const DUCKDB_CALENDAR: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute(f"SET TimeZone = '{sys.argv[2]}'")
con.execute("CREATE TABLE calls AS SELECT * FROM read_csv(?, header=true, all_varchar=true)", [sys.argv[1]])
con.execute("""CREATE TABLE c AS SELECT region, queue, direction, ivr_entered_at::TIMESTAMPTZ AS t,
               queued_at IS NOT NULL AS queued, answered_at IS NOT NULL AS answered,
               outcome = 'abandoned' AS abandoned FROM calls""")
def rows(sql):
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, [str(v) if not isinstance(v, (int, float)) else v for v in r])) for r in cur.fetchall()]
offered = "direction = 'inbound' AND queued AND t >= '2026-03-01'::TIMESTAMPTZ AND t < '2026-04-01'::TIMESTAMPTZ"
out = {
  "months": rows("SELECT strftime(t, '%Y-%m') AS month, count(*) AS n FROM c GROUP BY 1 ORDER BY 1"),
  "by_month": rows(f"""SELECT strftime(date_trunc('month', t), '%Y-%m-%d') AS period, region, queue,
      count(*) AS offered, count(*) FILTER (WHERE answered) AS answered,
      count(*) FILTER (WHERE abandoned) AS abandoned
      FROM c WHERE {offered} GROUP BY ALL ORDER BY 1, 2, 3"""),
  "by_day": rows(f"""SELECT strftime(t, '%Y-%m-%d') AS period, region, queue,
      count(*) AS offered, count(*) FILTER (WHERE answered) AS answered,
      count(*) FILTER (WHERE abandoned) AS abandoned
      FROM c WHERE {offered} GROUP BY ALL ORDER BY 1, 2, 3"""),
  "matrix": rows(f"""SELECT isodow(t) AS weekday, hour(t) AS hour,
      count(*) AS offered, count(*) FILTER (WHERE answered) AS answered
      FROM c WHERE {offered} GROUP BY ALL ORDER BY 1, 2"""),
}
print(json.dumps(out))
"#;

/// The named query's rows with only `keys` (numbers as numbers, the rest as text).
fn project(rows: &serde_json::Value, keys: &[&str]) -> Vec<serde_json::Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            keys.iter()
                .map(|k| (k.to_string(), r[*k].clone()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect()
}

#[test]
fn warehouses_in_london_and_new_york_count_on_their_own_calendar() {
    let Some(python) = crate::common::duckdb_python_or_skip(
        "warehouses_in_london_and_new_york_count_on_their_own_calendar",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 25 February to 5 April 2026: New York springs forward on 8 March, London on 29 March.
    crate::common::kefu(dir.path())
        .args([
            "gen",
            "--out",
            "gen",
            "-q",
            "--customers",
            "600",
            "--days",
            "40",
        ])
        .args(["--start", "2026-02-25", "--regions", "3"])
        .assert()
        .success();
    for zone in ["Europe/London", "America/New_York"] {
        let wh = format!("wh-{}", zone.replace('/', "-"));
        crate::common::kefu_json(
            dir.path(),
            &[
                "ingest",
                "gen",
                "--warehouse",
                &wh,
                "--time-zone",
                zone,
                "-q",
                "--json",
            ],
        );
        let status =
            crate::common::kefu_json(dir.path(), &["status", "--warehouse", &wh, "--json"]);
        assert_eq!(status["time_zone"], zone);
        let out = Command::new(&python)
            .args(["-c", DUCKDB_CALENDAR])
            .arg(dir.path().join("gen/calls.csv"))
            .arg(zone)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let duck: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

        // The month partitions follow the zone's months.
        let months = crate::common::kefu_json(
            dir.path(),
            &[
                "sql",
                "--warehouse",
                &wh,
                "--format",
                "json",
                "-e",
                "SELECT month, count(*) AS n FROM calls GROUP BY month ORDER BY month",
            ],
        );
        assert_eq!(months, duck["months"], "{zone}: months");

        let query = |name: &str, period: Option<&str>| {
            let mut args = vec![
                "query",
                name,
                "--warehouse",
                &wh,
                "--format",
                "json",
                "--param",
                "from=2026-03-01",
                "--param",
                "to=2026-04-01",
            ];
            if let Some(p) = period {
                args.extend(["--param", p]);
            }
            crate::common::kefu_json(dir.path(), &args)
        };
        let keys = [
            "period",
            "region",
            "queue",
            "offered",
            "answered",
            "abandoned",
        ];
        let by_month = query("calls_kpis", Some("period=month"));
        assert_eq!(
            project(&by_month, &keys),
            duck["by_month"].as_array().unwrap().clone(),
            "{zone}: calls_kpis by month"
        );
        let by_day = query("calls_kpis", Some("period=day"));
        assert_eq!(
            project(&by_day, &keys),
            duck["by_day"].as_array().unwrap().clone(),
            "{zone}: calls_kpis by day"
        );
        // 29 days of March in New York and London have a day of 23 hours: both are there.
        assert!(by_day.as_array().unwrap().len() > 31, "{zone}");
        let matrix = query("calls_load_matrix", None);
        assert_eq!(
            project(&matrix, &["weekday", "hour", "offered", "answered"]),
            duck["matrix"].as_array().unwrap().clone(),
            "{zone}: calls_load_matrix"
        );

        // A warehouse keeps its calendar: another zone later is refused.
        let out = crate::common::kefu(dir.path())
            .args([
                "ingest",
                "gen",
                "--warehouse",
                &wh,
                "--time-zone",
                "Asia/Shanghai",
                "-q",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("its calendar is {zone}")),
            "{zone}: {err}"
        );
    }
}
