"""Plain analyst SQL with kefu, DuckDB and ClickHouse (chDB) over the very same Parquet files.

The queries below are written the way an analyst writes them — standard SQL, no kefu
functions, no hints — and identically for the three engines where the dialects allow;
a query carries a per-engine spelling only where an engine lacks the standard one (the
reason is given beside it). Each engine runs each query in a fresh process over the
warehouse `compare_queries.py` generates (310,000 customers x 365 days by default):

- kefu: `kefu sql --warehouse WH --format csv -o OUT -f QUERY.sql`;
- DuckDB: views of `read_parquet([files], hive_partitioning = true)`;
- chDB: views of `file('WH/TABLE/*/{files}', Parquet)` with `use_hive_partitioning = 1`
  and `join_use_nulls = 1` (standard outer-join NULLs);

each view over the files of the table's newest version, from its Delta log through
Python's `deltalake`, all with the time zone UTC. The three run in a rotating order;
medians are printed per query with kefu's ratio to the faster peer, and the results are
compared row by row (floats to 1e-6 relative; timestamps and NULLs normalised).

Targets (issue 22): every query at most 1.0 x the faster peer, the suite at most 0.8 x.
Usage: benches/compare_adhoc.sh [--runs N] [--only q01,q02] [--engines kefu,duckdb,chdb]
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

from compare_queries import (TABLES, UNPARTITIONED, add_common_arguments, duckdb_runner,
                             prepare_warehouse, same, timed)

# (name, what an analyst asks, SQL, {engine: its own spelling where it must differ}).
QUERIES = [
    ("q01_monthly_service", "answer rate, service level and ASA by month and region",
     """
SELECT month, region,
       count(*) AS offered,
       sum(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS answered,
       sum(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END) AS abandoned,
       sum(CASE WHEN answered_at IS NOT NULL AND wait_s <= 20 THEN 1 ELSE 0 END) AS within_20s,
       avg(CASE WHEN answered_at IS NOT NULL THEN wait_s END) AS asa,
       avg(talk_s) AS avg_talk
FROM calls
WHERE direction = 'inbound' AND queue <> 'ivr'
GROUP BY month, region
ORDER BY month, region""", {}),

    ("q02_hour_weekday", "the load matrix: calls by local weekday x hour",
     """
SELECT extract(dow FROM ivr_entered_at + INTERVAL '8 hours') AS weekday,
       extract(hour FROM ivr_entered_at + INTERVAL '8 hours') AS hour,
       count(*) AS calls,
       avg(wait_s) AS avg_wait
FROM calls
GROUP BY 1, 2
ORDER BY 1, 2""",
     # ClickHouse's EXTRACT has no DOW: toDayOfWeek is 1 (Monday) .. 7 (Sunday).
     {"chdb": """
SELECT toDayOfWeek(ivr_entered_at + INTERVAL 8 HOUR) % 7 AS weekday,
       extract(hour FROM ivr_entered_at + INTERVAL 8 HOUR) AS hour,
       count(*) AS calls,
       avg(wait_s) AS avg_wait
FROM calls
GROUP BY 1, 2
ORDER BY 1, 2"""}),

    ("q03_p90_wait", "P90 wait and median talk time per region and queue",
     """
SELECT region, queue,
       count(*) AS answered,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_s) AS p90_wait,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY talk_s) AS median_talk
FROM calls
WHERE answered_at IS NOT NULL
GROUP BY region, queue
ORDER BY region, queue""",
     # ClickHouse: quantileExactInclusive interpolates as percentile_cont does.
     {"chdb": """
SELECT region, queue,
       count(*) AS answered,
       quantileExactInclusive(0.9)(wait_s) AS p90_wait,
       quantileExactInclusive(0.5)(talk_s) AS median_talk
FROM calls
WHERE answered_at IS NOT NULL
GROUP BY region, queue
ORDER BY region, queue"""}),

    ("q04_repeat_contacts", "customers who call again within 7 days (lead over customers)",
     """
WITH ordered AS (
    SELECT customer_id, ivr_entered_at,
           lead(ivr_entered_at) OVER (PARTITION BY customer_id ORDER BY ivr_entered_at, call_id) AS next_at
    FROM calls
    WHERE direction = 'inbound' AND customer_id IS NOT NULL
)
SELECT count(*) AS contacts,
       sum(CASE WHEN next_at <= ivr_entered_at + INTERVAL '7 days' THEN 1 ELSE 0 END) AS repeated_7d,
       count(DISTINCT customer_id) AS customers
FROM ordered""",
     # ClickHouse's lead() sees only its frame and gives 0, not NULL, past the end.
     {"chdb": """
WITH ordered AS (
    SELECT customer_id, ivr_entered_at,
           leadInFrame(toNullable(ivr_entered_at)) OVER (
               PARTITION BY customer_id ORDER BY ivr_entered_at, call_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS next_at
    FROM calls
    WHERE direction = 'inbound' AND customer_id IS NOT NULL
)
SELECT count(*) AS contacts,
       sum(CASE WHEN next_at <= ivr_entered_at + INTERVAL '7 days' THEN 1 ELSE 0 END) AS repeated_7d,
       count(DISTINCT customer_id) AS customers
FROM ordered"""}),

    ("q05_month_over_month", "calls per region and month against the month before (lag)",
     """
WITH m AS (
    SELECT region, month, count(*) AS calls, count(DISTINCT customer_id) AS callers
    FROM calls
    GROUP BY region, month
)
SELECT region, month, calls, callers,
       lag(calls) OVER (PARTITION BY region ORDER BY month) AS calls_before,
       calls - lag(calls) OVER (PARTITION BY region ORDER BY month) AS change
FROM m
ORDER BY region, month""",
     # ClickHouse's lag() gives 0, not NULL, before the first row.
     {"chdb": """
WITH m AS (
    SELECT region, month, count(*) AS calls, count(DISTINCT customer_id) AS callers
    FROM calls
    GROUP BY region, month
)
SELECT region, month, calls, callers,
       lagInFrame(toNullable(calls)) OVER (PARTITION BY region ORDER BY month) AS calls_before,
       calls - lagInFrame(toNullable(calls)) OVER (PARTITION BY region ORDER BY month) AS change
FROM m
ORDER BY region, month"""}),

    ("q06_ticket_callbacks", "callbacks joined to their tickets: reached and dissatisfied by kind",
     """
SELECT t.kind, t.region,
       count(*) AS callbacks,
       count(DISTINCT t.ticket_id) AS tickets,
       sum(CASE WHEN cb.status = 'reached' THEN 1 ELSE 0 END) AS reached,
       sum(CASE WHEN cb.score = 'dissatisfied' THEN 1 ELSE 0 END) AS dissatisfied
FROM tickets t
JOIN callbacks cb ON cb.ticket_id = t.ticket_id
GROUP BY t.kind, t.region
ORDER BY t.kind, t.region""", {}),

    ("q07_churn_complaints", "churned customers' tickets in the 90 days before closing",
     """
SELECT c.region, c.close_reason,
       count(DISTINCT c.customer_id) AS churners,
       count(t.ticket_id) AS tickets_90d,
       sum(CASE WHEN t.kind = 'complaint' THEN 1 ELSE 0 END) AS complaints_90d
FROM customers c
LEFT JOIN tickets t
       ON t.customer_id = c.customer_id
      AND t.created_at < c.closed_at
      AND t.created_at >= c.closed_at - INTERVAL '90 days'
WHERE c.closed_at IS NOT NULL
GROUP BY c.region, c.close_reason
ORDER BY c.region, c.close_reason""", {}),

    ("q08_distinct_counts", "distinct callers and agents by month and region",
     """
SELECT month, region,
       count(DISTINCT customer_id) AS callers,
       count(DISTINCT agent_id) AS agents,
       count(*) AS calls
FROM calls
GROUP BY month, region
ORDER BY month, region""", {}),

    ("q09_top_agents", "the top 5 agents per region by answered calls (top-N per group)",
     """
WITH a AS (
    SELECT region, agent_id, count(*) AS answered, avg(talk_s) AS avg_talk
    FROM calls
    WHERE agent_id IS NOT NULL
    GROUP BY region, agent_id
), r AS (
    SELECT region, agent_id, answered, avg_talk,
           row_number() OVER (PARTITION BY region ORDER BY answered DESC, agent_id) AS rank
    FROM a
)
SELECT region, rank, agent_id, answered, avg_talk
FROM r
WHERE rank <= 5
ORDER BY region, rank""", {}),

    ("q10_handle_time_percentiles", "median and P95 handle time per call category",
     """
SELECT category,
       count(*) AS calls,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY talk_s + hold_s + wrap_s) AS median_aht,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY talk_s + hold_s + wrap_s) AS p95_aht
FROM calls
WHERE answered_at IS NOT NULL
GROUP BY category
ORDER BY category""",
     {"chdb": """
SELECT category,
       count(*) AS calls,
       quantileExactInclusive(0.5)(talk_s + hold_s + wrap_s) AS median_aht,
       quantileExactInclusive(0.95)(talk_s + hold_s + wrap_s) AS p95_aht
FROM calls
WHERE answered_at IS NOT NULL
GROUP BY category
ORDER BY category"""}),

    ("q11_call_before_ticket", "tickets preceded by a call of the same customer within a day",
     """
SELECT t.kind,
       count(*) AS call_ticket_pairs,
       count(DISTINCT t.ticket_id) AS tickets
FROM tickets t
JOIN calls c ON c.customer_id = t.customer_id
WHERE c.ivr_entered_at <= t.created_at
  AND c.ivr_entered_at > t.created_at - INTERVAL '1 day'
GROUP BY t.kind
ORDER BY t.kind""", {}),

    ("q12_callback_within_hour", "a quarter's calls followed by another from the same customer within an hour (self-join)",
     """
SELECT a.region,
       count(*) AS pairs,
       count(DISTINCT a.call_id) AS calls_followed
FROM calls a
JOIN calls b ON b.customer_id = a.customer_id
WHERE a.month IN ('2026-04', '2026-05', '2026-06')
  AND b.month IN ('2026-04', '2026-05', '2026-06', '2026-07')
  AND b.ivr_entered_at > a.ivr_entered_at
  AND b.ivr_entered_at <= a.ivr_entered_at + INTERVAL '1 hour'
GROUP BY a.region
ORDER BY a.region""", {}),

    ("q13_wide_scan", "every column of long abandoned waits in two months of one region",
     """
SELECT *
FROM calls
WHERE month IN ('2026-03', '2026-04')
  AND region = 'shanghai'
  AND outcome = 'abandoned'
  AND wait_s > 150
ORDER BY call_id""", {}),

    ("q14_chinese_descriptions", "the most frequent ticket descriptions (Chinese text)",
     """
SELECT description,
       count(*) AS tickets,
       count(DISTINCT customer_id) AS customers,
       avg(reopened_count) AS avg_reopened
FROM tickets
GROUP BY description
ORDER BY tickets DESC, description
LIMIT 30""", {}),

    ("q15_chinese_category_names", "tickets by the categories' Chinese names and month",
     """
SELECT cat.name_zh, t.month,
       count(*) AS tickets,
       sum(CASE WHEN t.description LIKE '%宽带%' THEN 1 ELSE 0 END) AS broadband_mentions
FROM tickets t
JOIN categories cat ON cat.category = t.category
GROUP BY cat.name_zh, t.month
ORDER BY cat.name_zh, t.month""", {}),

    ("q16_ticket_resolution", "resolution hours and on-time share by kind and severity",
     """
SELECT kind, severity,
       count(*) AS tickets,
       avg(extract(epoch FROM resolved_at) - extract(epoch FROM created_at)) / 3600 AS avg_hours,
       sum(CASE WHEN resolved_at <= due_at THEN 1 ELSE 0 END) AS on_time
FROM tickets
WHERE resolved_at IS NOT NULL
GROUP BY kind, severity
ORDER BY kind, severity""",
     # ClickHouse's EXTRACT has no EPOCH.
     {"chdb": """
SELECT kind, severity,
       count(*) AS tickets,
       avg(toUnixTimestamp(resolved_at) - toUnixTimestamp(created_at)) / 3600 AS avg_hours,
       sum(CASE WHEN resolved_at <= due_at THEN 1 ELSE 0 END) AS on_time
FROM tickets
WHERE resolved_at IS NOT NULL
GROUP BY kind, severity
ORDER BY kind, severity"""}),

    ("q17_hall_waits", "branch halls: visits and minutes to be called, by branch and month",
     """
SELECT branch_id, month,
       count(*) AS visits,
       avg(extract(epoch FROM called_at) - extract(epoch FROM arrived_at)) / 60 AS avg_wait_min,
       max(extract(epoch FROM called_at) - extract(epoch FROM arrived_at)) / 60 AS max_wait_min
FROM visits
WHERE called_at IS NOT NULL
GROUP BY branch_id, month
ORDER BY branch_id, month""",
     {"chdb": """
SELECT branch_id, month,
       count(*) AS visits,
       avg(toUnixTimestamp(called_at) - toUnixTimestamp(arrived_at)) / 60 AS avg_wait_min,
       max(toUnixTimestamp(called_at) - toUnixTimestamp(arrived_at)) / 60 AS max_wait_min
FROM visits
WHERE called_at IS NOT NULL
GROUP BY branch_id, month
ORDER BY branch_id, month"""}),

    ("q18_complainers_silent", "complainants who did not call in December, by tier (IN subqueries)",
     """
SELECT cu.tier, count(*) AS customers
FROM customers cu
WHERE cu.customer_id IN (SELECT customer_id FROM tickets WHERE kind = 'complaint')
  AND cu.customer_id NOT IN (SELECT customer_id FROM calls
                             WHERE month = '2026-12' AND customer_id IS NOT NULL)
GROUP BY cu.tier
ORDER BY cu.tier""", {}),

    ("q19_agent_days", "the 100 busiest agent-days by talk time (high-cardinality group-by)",
     """
SELECT agent_id, CAST(ivr_entered_at AS DATE) AS day,
       count(*) AS calls,
       sum(talk_s) AS talk_s
FROM calls
WHERE agent_id IS NOT NULL
GROUP BY agent_id, CAST(ivr_entered_at AS DATE)
ORDER BY talk_s DESC NULLS LAST, agent_id, day
LIMIT 100""", {}),

    ("q20_tier_outcomes", "outcomes by customer tier, joined to the customer table",
     """
SELECT cu.segment, c.outcome,
       count(*) AS calls,
       avg(c.wait_s) AS avg_wait
FROM calls c
JOIN customers cu ON cu.customer_id = c.customer_id
WHERE c.month >= '2026-07'
GROUP BY cu.segment, c.outcome
ORDER BY cu.segment, c.outcome""", {}),

    ("q21_customer_export", "one region's customers as a sorted list (93,000 rows: many batches)",
     """
SELECT customer_id, segment, tier, opened_at, closed_at
FROM customers
WHERE region = 'shanghai'
ORDER BY customer_id""", {}),
]

# Plain SQL: no kefu functions to define, times shown in UTC as kefu and chDB show them.
DUCKDB_RUN = duckdb_runner("SET TimeZone = 'UTC'")

CHDB_RUN = r"""
import sys
from chdb import session
from deltalake import DeltaTable
wh, sql_file, out, threads = sys.argv[1:5]
s = session.Session()
s.query("CREATE DATABASE IF NOT EXISTS bench ENGINE = Atomic")
for t in %(tables)r:
    # Delta's file names are unique (a UUID each): one glob names exactly these files.
    names = [u.rsplit("/", 1)[1] for u in DeltaTable(f"{wh}/{t}").file_uris()]
    where = f"{wh}/{t}/*/" if t not in %(unpartitioned)r else f"{wh}/{t}/"
    s.query(f"CREATE VIEW bench.{t} AS SELECT * FROM file('{where}{{{','.join(names)}}}', Parquet)")
sql = open(sql_file).read()
settings = (f"SETTINGS use_hive_partitioning = 1, join_use_nulls = 1, session_timezone = 'UTC', "
            f"max_threads = {threads}")
result = s.query(f"USE bench; {sql} {settings}", "CSVWithNames")
open(out, "wb").write(result.bytes())
""" % {"tables": TABLES, "unpartitioned": UNPARTITIONED}

ENGINES = ["kefu", "duckdb", "chdb"]

TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.0*)?(?:Z|\+00(?::?00)?)?$")


def normal(cell):
    """One spelling of a cell across engines: NULL as empty, timestamps as `date time`,
    numbers to 6 significant digits (for sorting; equality is checked with a tolerance)."""
    if cell == "\\N":
        return ""
    m = TIMESTAMP.match(cell)
    if m:
        return f"{m.group(1)} {m.group(2)}"
    return cell


def sort_key(row):
    def number(c):
        try:
            return f"{float(c):.6g}"
        except ValueError:
            return c
    return [number(c) for c in row]


def read_rows(path):
    """The result's rows as the engine gave them, each cell in its one spelling."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [[normal(c) for c in r] for r in rows[1:]]


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if len(x) != len(y) or not all(same(p, q) for p, q in zip(x, y)):
            return i, x, y
    return None


def compare(a_csv, b_csv):
    """None when the two results hold the same rows in the same order (every query orders
    its result completely), else where they first differ."""
    if not (os.path.exists(a_csv) and os.path.exists(b_csv)):
        return "missing output"
    a, b = read_rows(a_csv), read_rows(b_csv)
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    differ = first_difference(sorted(a, key=sort_key), sorted(b, key=sort_key))
    if differ:
        return "row {}: {} vs {}".format(*differ)
    differ = first_difference(a, b)
    if differ:
        return "the same rows in another order, from row {}: {} vs {}".format(*differ)
    return None


def rotate(runs, calls):
    """Calls each of `calls` (each returns seconds) `runs` times, rotating which goes first
    so that no contender always meets a warm or a cold machine."""
    times = [[] for _ in calls]
    for run in range(runs):
        for k in range(len(calls)):
            i = (run + k) % len(calls)
            times[i].append(calls[i]())
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(ap)
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="which engines to run (kefu first; comma-separated)")
    ap.add_argument("--keep", help="keep the queries and results in this directory")
    args = ap.parse_args()
    engines = args.engines.split(",")

    wh = prepare_warehouse(args)
    threads = str(os.cpu_count() or 1)
    tmp = args.keep or tempfile.mkdtemp()
    os.makedirs(tmp, exist_ok=True)
    wanted = args.only.split(",") if args.only else None

    def command(engine, sql_file, out):
        if engine == "kefu":
            return [args.kefu, "sql", "--warehouse", wh, "--format", "csv", "-o", out, "-f", sql_file]
        script = DUCKDB_RUN if engine == "duckdb" else CHDB_RUN
        return [sys.executable, "-c", script, wh, sql_file, out, threads]

    results = []
    for name, what, sql, spelled in QUERIES:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        outs, calls = {}, []
        for engine in engines:
            sql_file = os.path.join(tmp, f"{name}.{engine}.sql")
            with open(sql_file, "w") as f:
                f.write(spelled.get(engine, sql).strip() + "\n")
            outs[engine] = os.path.join(tmp, f"{name}.{engine}.csv")
            cmd = command(engine, sql_file, outs[engine])
            calls.append(lambda cmd=cmd, engine=engine: timed(f"{name} ({engine})", cmd))
        medians = dict(zip(engines, map(statistics.median, rotate(args.runs, calls))))
        diffs = {e: compare(outs[engines[0]], outs[e]) for e in engines[1:]}
        peers = [medians[e] for e in engines[1:]]
        best = min(peers) if peers else float("nan")
        results.append((name, medians, best, diffs))
        shown = "  ".join(f"{e} {medians[e]:7.3f}" for e in engines)
        verdict = "; ".join(f"{e}: {'same' if d is None else 'DIFFERENT ' + d}" for e, d in diffs.items())
        print(f"{name:30s} {shown}  ratio {medians[engines[0]] / best:5.2f}  {verdict}", flush=True)

    ok = [r for r in results if not any(math.isnan(v) for v in r[1].values())]
    totals = {e: sum(r[1][e] for r in ok) for e in engines}
    if len(engines) > 1:
        best_total = min(totals[e] for e in engines[1:])
        per_peer = ", ".join(f"{e} {totals[e]:.2f} s" for e in engines)
        within = sum(1 for r in ok if r[1][engines[0]] <= r[2])
        print(f"suite: {per_peer}; kefu / faster peer {totals[engines[0]] / best_total:.2f} "
              f"(targets: each <= 1.00, suite <= 0.80); {within}/{len(results)} queries within 1.0x; "
              f"{sum(1 for r in results if all(d is None for d in r[3].values()))}/{len(results)} "
              "same results")
    if not args.keep:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
