"""A year of office exports ingested day by day against the same exports at once.

`kefu gen --messy` writes a year of lifecycle exports (tickets in every state, customers
changing, late archives, re-sends, weekly re-exports) with the day each file arrives. This
harness ingests them

  1. at once: every file in one `kefu ingest` (one batch), and
  2. day by day: one `kefu ingest` process per delivery day, as a daily scheduled job
     does (automatic compaction on, its default),

checks that both warehouses hold the same rows (counts and sums per table), and prints
the times and the ratio (target: day by day at most 1.5 x at once). Then it runs
`kefu compact` on the day-by-day warehouse and times every named query on both
warehouses, alternating, comparing results (target: the suite within 1.1 x of the
one-shot warehouse).

Run through benches/compare_daily.sh (builds kefu; see benches/with_duckdb.sh).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from alternate import alternate
from compare_queries import compare, query_runs, timed

CHECK = ("SELECT (SELECT count(*) FROM calls) AS calls, (SELECT sum(talk_s) FROM calls) AS talk, "
         "(SELECT count(*) FROM tickets) AS tickets, "
         "(SELECT count(*) FROM tickets WHERE status = 'closed') AS closed, "
         "(SELECT count(*) FROM callbacks) AS callbacks, (SELECT count(*) FROM visits) AS visits, "
         "(SELECT count(*) FROM customers) AS customers, "
         "(SELECT count(*) FROM customers WHERE closed_at IS NOT NULL) AS churned")


def ingest(kefu, files, wh):
    start = time.perf_counter()
    out = subprocess.run([kefu, "ingest", "--warehouse", wh, "--json", "-q", *files],
                         check=True, capture_output=True, text=True)
    return time.perf_counter() - start, json.loads(out.stdout)


def check(kefu, wh):
    return subprocess.run([kefu, "sql", "--warehouse", wh, "--format", "csv", "-e", CHECK],
                          check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kefu", required=True)
    ap.add_argument("--data", required=True, help="cache directory for generated data")
    ap.add_argument("--customers", type=int, default=160_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=3, help="runs of each named query")
    ap.add_argument("--only", help="run only these queries (comma-separated)")
    args = ap.parse_args()

    exports = os.path.join(args.data, f"lifecycle-{args.customers}-{args.days}")
    if not os.path.exists(os.path.join(exports, "manifest.json")):
        print(f"generating {args.customers} customers x {args.days} days ...", flush=True)
        subprocess.run([args.kefu, "gen", "--messy", "--out", exports, "--customers",
                        str(args.customers), "--days", str(args.days), "-q"], check=True)
    with open(os.path.join(exports, "manifest.json")) as f:
        manifest = json.load(f)
    days = [[os.path.join(exports, p) for p in d["paths"]] for d in manifest["deliveries"]]
    files = [p for d in days for p in d]
    size = sum(os.path.getsize(p) for p in files)
    print(f"exports: {len(files)} files, {size / 1e6:.0f} MB, {len(days)} delivery days; "
          f"records {sum(manifest['records'].values()):,}, final rows {sum(manifest['rows'].values()):,}")

    once = os.path.join(args.data, "daily-bench-once")
    daily = os.path.join(args.data, "daily-bench-daily")
    for wh in (once, daily):
        shutil.rmtree(wh, ignore_errors=True)
    t_once, report = ingest(args.kefu, files, once)
    print(f"at once: {t_once:.1f} s, one batch of {report['records']:,} records "
          f"({report['new']:,} new, {report['unchanged']:,} unchanged, {report['stale']:,} stale, "
          f"{report['rejected']:,} rejected)", flush=True)
    t_daily = 0.0
    per_day = []
    for i, d in enumerate(days):
        t, _ = ingest(args.kefu, d, daily)
        t_daily += t
        per_day.append(t)
        if (i + 1) % 50 == 0:
            print(f"  day by day: {i + 1} batches, {t_daily:.1f} s so far", flush=True)
    print(f"day by day: {t_daily:.1f} s for {len(days)} batches (median {statistics.median(per_day) * 1000:.0f} ms, "
          f"last 30 median {statistics.median(per_day[-30:]) * 1000:.0f} ms)")
    print(f"ratio day by day / at once: {t_daily / t_once:.2f} (target <= 1.50)", flush=True)
    a, b = check(args.kefu, once), check(args.kefu, daily)
    print("same counts and sums: " + ("yes" if a == b else f"NO\n{a}\n{b}"))

    start = time.perf_counter()
    subprocess.run([args.kefu, "compact", "--warehouse", daily], check=True, capture_output=True)
    print(f"kefu compact: {time.perf_counter() - start:.1f} s", flush=True)

    results = []
    tmp = os.path.join(args.data, "daily-bench-out")
    os.makedirs(tmp, exist_ok=True)
    for name, pargs in query_runs(args):
        outs = [os.path.join(tmp, f"{name}.{w}.csv") for w in ("once", "daily")]
        cmds = [[args.kefu, "query", name, "--warehouse", wh, "--format", "csv", "--output", out, *pargs]
                for wh, out in zip((once, daily), outs)]
        o, d = alternate(args.runs, lambda: timed(name, cmds[0]), lambda: timed(name, cmds[1]))
        # Equal up to the last digits of floating-point sums (their order follows the files).
        diff = compare(outs[0], outs[1])
        same = diff is None
        om, dm = statistics.median(o), statistics.median(d)
        results.append((name, om, dm, same))
        print(f"{name:36s} at once {om:7.3f} s  day by day, compacted {dm:7.3f} s  ratio {dm / om:5.2f}  "
              f"{'same result' if same else 'DIFFERENT: ' + diff}", flush=True)
    total_o, total_d = sum(r[1] for r in results), sum(r[2] for r in results)
    print(f"suite: at once {total_o:.2f} s, day by day compacted {total_d:.2f} s, "
          f"ratio {total_d / total_o:.2f} (target <= 1.10); "
          f"{sum(1 for r in results if r[3])}/{len(results)} same results")


if __name__ == "__main__":
    sys.exit(main())
