"""Every named query with kefu and with DuckDB over the very same Parquet warehouse.

kefu runs `kefu query NAME` (a fresh process: startup, reading the tables' Delta logs,
registration, planning, execution, CSV output). DuckDB runs the same SQL (`kefu query NAME
--show-sql`, with kefu's functions defined as DuckDB macros and two spellings translated)
in a fresh Python process over views of `read_parquet([files], hive_partitioning = true)`
on the same files — each table's files at its newest version, from its Delta log through
Python's `deltalake` —, writing CSV too. Runs alternate; medians and ratios are printed per query, and the two
results are compared row by row (floats to 1e-6 relative).

Targets (issue 4): every query at most 1.2 x DuckDB, the suite as a whole at most 1.0 x.
"""

import argparse
import csv
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from alternate import alternate

TABLES = ["calls", "tickets", "callbacks", "visits", "customers",
          "org_units", "staff", "queues", "categories"]
# Tables without month partitions: the customers and the organisation dimension.
UNPARTITIONED = ["customers", "org_units", "staff", "queues", "categories"]

# kefu's UDFs in DuckDB: Asia/Shanghai is UTC+8 all year (no DST since 1991).
DUCKDB_PRELUDE = """
SET TimeZone = 'UTC';
CREATE MACRO local_date(ts) AS CAST(CAST(ts AS TIMESTAMP) + INTERVAL 8 HOUR AS DATE);
CREATE MACRO local_hour(ts) AS hour(CAST(ts AS TIMESTAMP) + INTERVAL 8 HOUR);
CREATE MACRO local_weekday(ts) AS isodow(CAST(ts AS TIMESTAMP) + INTERVAL 8 HOUR);
CREATE MACRO local_midnight(d) AS
    CAST(CAST(CAST(d AS DATE) AS TIMESTAMP) - INTERVAL 8 HOUR AS TIMESTAMPTZ);
CREATE MACRO period_start(period, d) AS CAST(
    date_trunc(CASE WHEN period IN ('half', 'half_year') THEN 'year' ELSE period END, CAST(d AS DATE))
    + CASE WHEN period IN ('half', 'half_year') AND month(CAST(d AS DATE)) > 6
           THEN INTERVAL 6 MONTH ELSE INTERVAL 0 MONTH END AS DATE);
CREATE MACRO period_shift(period, d, n) AS CAST(CAST(d AS DATE) + CASE period
    WHEN 'day' THEN to_days(CAST(n AS INTEGER))
    WHEN 'week' THEN to_days(CAST(7 * n AS INTEGER))
    WHEN 'month' THEN to_months(CAST(n AS INTEGER))
    WHEN 'quarter' THEN to_months(CAST(3 * n AS INTEGER))
    WHEN 'year' THEN to_months(CAST(12 * n AS INTEGER))
    ELSE to_months(CAST(6 * n AS INTEGER)) END AS DATE);
CREATE MACRO local_trunc(period, ts) AS period_start(period, local_date(ts));
"""

# DuckDB has no period_last_next (kefu's aggregate: each group's periods with their last
# instant and the next period's first). A macro of list functions gives the same answer
# but re-sorts each customer's contacts inside its lambdas (109 s for churn_monthly at
# 370,000 customers, against 5.7 s for the plain form), so churn_monthly's two CTEs
# that use it are given to DuckDB in the form an analyst would write: a group by
# customer and month, and lead() over the months.
PERIOD_LAST_NEXT_CTES = re.compile(r"per_customer AS \(.*?\),\s*last_in_month AS \(.*?\n\),\n", re.S)
PLAIN_LAST_IN_MONTH = """monthly AS (
    SELECT customer_id, local_trunc('month', event_at) AS month_start,
           min(event_at) AS first_at, max(event_at) AS last_at
    FROM contacts
    GROUP BY customer_id, 2
),
last_in_month AS (
    SELECT c.region, c.segment, c.tier, m.month_start, m.last_at,
           lead(m.first_at) OVER (PARTITION BY m.customer_id ORDER BY m.month_start) AS next_at
    FROM monthly m JOIN cust c ON c.customer_id = m.customer_id
),
"""


def duckdb_runner(prelude):
    """A Python script (argv: warehouse, SQL file, output CSV, threads) that runs one SQL
    file in DuckDB over the newest version of the warehouse's Delta tables, after the SQL
    statements of `prelude`, writing CSV with a header."""
    return r"""
import duckdb, sys
from deltalake import DeltaTable
wh, sql_file, out, threads = sys.argv[1:5]
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
for t in %(tables)r:
    # The files of the table's newest version, from its Delta log.
    files = DeltaTable(f"{wh}/{t}").file_uris()
    partitioned = t not in %(unpartitioned)r
    con.execute(
        f"CREATE VIEW {t} AS SELECT * FROM read_parquet({files!r}, "
        f"hive_partitioning = {str(partitioned).lower()}, hive_types_autocast = false)"
    )
con.execute(%(prelude)r)
sql = open(sql_file).read()
con.execute(f"COPY ({sql}) TO '{out}' (HEADER, DELIMITER ',')")
""" % {"tables": TABLES, "unpartitioned": UNPARTITIONED, "prelude": prelude}


DUCKDB_RUN = duckdb_runner(DUCKDB_PRELUDE)


def to_duckdb(sql):
    """DataFusion spellings DuckDB lacks."""
    if "period_last_next(" in sql:
        sql, n = PERIOD_LAST_NEXT_CTES.subn(lambda _: PLAIN_LAST_IN_MONTH, sql)
        if n != 1:
            sys.exit("period_last_next outside churn_monthly's CTEs: no DuckDB form for it")
    sql = re.sub(
        r"arrow_cast\('([0-9T:\-]+)Z', 'Timestamp\(µs, \"UTC\"\)'\)",
        lambda m: f"TIMESTAMPTZ '{m.group(1).replace('T', ' ')}+00'",
        sql,
    )
    # DuckDB names generate_series' column after the function: alias it `value`.
    out, i = [], 0
    for m in re.finditer(r"FROM generate_series\(", sql):
        depth, j = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[j], 0)
            j += 1
        out.append(sql[i:j] + " AS gs(value)")
        i = j
    out.append(sql[i:])
    return "".join(out)


def query_params(listing):
    """Each named query's parameter names, from `kefu query --list`."""
    out = {}
    for block in listing.strip().split("\n\n"):
        name = block.split(":", 1)[0].strip()
        out[name] = re.findall(r"--param (\w+)=", block)
    return out


def params_for(names, start):
    """A year from `start` for ranged queries; as-of and half-year dates inside it."""
    year, month, day = (int(x) for x in start.split("-"))
    chosen = {
        "from": start,
        "to": f"{year + 1}-{month:02d}-{day:02d}",
        "as_of": f"{year}-10-01",
        "date": f"{year}-06-30",
    }
    return [f"{k}={v}" for k, v in chosen.items() if k in names]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def same(a, b):
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)


def compare(kefu_csv, duck_csv):
    (kh, kr), (dh, dr) = read_csv(kefu_csv), read_csv(duck_csv)
    if len(kr) != len(dr):
        return f"{len(kr)} rows vs {len(dr)}"
    def number(c):
        try:
            return f"{float(c):.6g}"
        except ValueError:
            return c

    key = lambda r: [number(c) for c in r]
    for i, (a, b) in enumerate(zip(sorted(kr, key=key), sorted(dr, key=key))):
        if len(a) != len(b) or not all(same(x, y) for x, y in zip(a, b)):
            return f"row {i}: {a} vs {b}"
    # Every named query orders its result completely: the order must agree too.
    for i, (a, b) in enumerate(zip(kr, dr)):
        if not all(same(x, y) for x, y in zip(a, b)):
            return f"the same rows in another order, from row {i}: {a} vs {b}"
    return None


def timed(name, cmd, env=None):
    """Seconds `cmd` took (with the environment `env`, default this one's), or NaN
    (reported) when it failed."""
    start = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    except subprocess.CalledProcessError as e:
        print(f"{name}: {' '.join(cmd[:3])} failed: {e.stderr.decode()[-500:]}", file=sys.stderr)
        return float("nan")
    return time.perf_counter() - start


def add_common_arguments(ap):
    """The options every query harness takes (compare_settings.py too)."""
    ap.add_argument("--kefu", required=True)
    ap.add_argument("--data", required=True, help="cache directory for the warehouse")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--customers", type=int, default=310_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--only", help="run only these queries (comma-separated)")


def warehouse_dir(args):
    return os.path.join(args.data, f"queries-{args.customers}-{args.days}", "wh")


def prepare_warehouse(args):
    """The generated warehouse of --customers x --days (made once, cached under --data),
    its table sizes printed; returns its absolute path."""
    wh = os.path.abspath(warehouse_dir(args))
    if not os.path.isdir(os.path.join(wh, "calls")):
        data = os.path.join(os.path.dirname(wh), "data")
        print(f"generating {args.customers} customers x {args.days} days ...", file=sys.stderr)
        subprocess.run([args.kefu, "gen", "--out", data, "--customers", str(args.customers),
                        "--days", str(args.days), "-q"], check=True, capture_output=True)
        subprocess.run([args.kefu, "ingest", data, "--warehouse", wh, "-q"], check=True)
        shutil.rmtree(data)
    counts = subprocess.run(
        [args.kefu, "sql", "--warehouse", wh, "--format", "csv", "-e",
         "SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in TABLES)],
        capture_output=True, text=True, check=True).stdout.splitlines()[1].split(",")
    print("warehouse: " + ", ".join(f"{t} {int(n):,}" for t, n in zip(TABLES, counts)))
    return wh


def query_runs(args):
    """(name, --param arguments) of every named query, or of those in --only."""
    listing = subprocess.run([args.kefu, "query", "--list"], capture_output=True, text=True,
                             check=True).stdout
    declared = query_params(listing)
    wanted = args.only.split(",") if args.only else list(declared)
    return [(name, [x for p in params_for(declared[name], "2026-01-01") for x in ("--param", p)])
            for name in declared if name in wanted]


def main():
    ap = argparse.ArgumentParser()
    add_common_arguments(ap)
    args = ap.parse_args()

    wh = prepare_warehouse(args)
    threads = os.cpu_count() or 1

    tmp = tempfile.mkdtemp()
    results = []
    for name, pargs in query_runs(args):
        sql = subprocess.run([args.kefu, "query", name, "--show-sql", *pargs],
                             capture_output=True, text=True, check=True).stdout
        sql_file = os.path.join(tmp, f"{name}.sql")
        with open(sql_file, "w") as f:
            f.write(to_duckdb(sql).strip().rstrip(";"))
        kefu_out, duck_out = os.path.join(tmp, f"{name}.kefu.csv"), os.path.join(tmp, f"{name}.duck.csv")
        kefu_cmd = [args.kefu, "query", name, "--warehouse", wh, "--format", "csv", "--output", kefu_out, *pargs]
        duck_cmd = [sys.executable, "-c", DUCKDB_RUN, wh, sql_file, duck_out, str(threads)]
        k, d = alternate(args.runs, lambda: timed(name, kefu_cmd), lambda: timed(name, duck_cmd))
        diff = compare(kefu_out, duck_out) if os.path.exists(kefu_out) and os.path.exists(duck_out) else "missing output"
        km, dm = statistics.median(k), statistics.median(d)
        results.append((name, km, dm, diff))
        print(f"{name:36s} kefu {km:7.3f} s  duckdb {dm:7.3f} s  ratio {km / dm:5.2f}  "
              f"{'same result' if diff is None else 'DIFFERENT: ' + diff}", flush=True)
    ok = [r for r in results if not math.isnan(r[1]) and not math.isnan(r[2])]
    total_k, total_d = sum(r[1] for r in ok), sum(r[2] for r in ok)
    print(f"suite: kefu {total_k:.2f} s, duckdb {total_d:.2f} s, ratio {total_k / total_d:.2f} "
          f"(targets: each <= 1.20, suite <= 1.00); "
          f"{sum(1 for r in ok if r[1] / r[2] <= 1.2)}/{len(results)} queries within 1.2x; "
          f"{sum(1 for r in results if r[3] is None)}/{len(results)} same results")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
