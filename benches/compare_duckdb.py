"""kefu ingest against DuckDB: the same plain UTF-8 calls CSV into zstd Parquet, alternating.

DuckDB runs `COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet, COMPRESSION zstd)`;
kefu runs `kefu ingest` into a fresh warehouse (validation, duplicate detection, rejects,
partitioning, sorting and the ledger all on). Both get the same file from the page cache;
the order alternates so that neither always runs on a warm or a cold machine. Prints both
medians and the ratio kefu / DuckDB (target: <= 0.5, issue 22).

Then kefu's throughput on GBK `--messy` archives (DuckDB cannot read GBK offline) against
its own plain UTF-8 throughput, in rows/s (target: >= 90%, issue 22).

Run through benches/compare_duckdb.sh, which builds kefu and installs duckdb in a venv
(benches/with_duckdb.sh).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb
from alternate import alternate


def run_kefu(kefu, sources, warehouse):
    shutil.rmtree(warehouse, ignore_errors=True)
    start = time.perf_counter()
    out = subprocess.run(
        [kefu, "ingest", *sources, "--warehouse", warehouse, "--json", "-q"],
        check=True,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    return elapsed, json.loads(out.stdout)


def run_duckdb(csv, parquet):
    if os.path.exists(parquet):
        os.remove(parquet)
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{csv}')) TO '{parquet}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    con.close()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kefu", required=True)
    ap.add_argument("--data", required=True, help="cache directory for generated data")
    ap.add_argument("--customers", type=int, default=160_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    plain = os.path.join(args.data, f"plain-{args.customers}-{args.days}")
    messy = os.path.join(args.data, f"messy-{args.customers}-{args.days}")
    for out, extra in ((plain, []), (messy, ["--messy"])):
        if not os.path.exists(os.path.join(out, "manifest.json" if extra else "calls.csv")):
            subprocess.run(
                [args.kefu, "gen", "--out", out, "--customers", str(args.customers),
                 "--days", str(args.days), "-q", *extra],
                check=True,
            )
    calls = os.path.join(plain, "calls.csv")
    with open(calls, "rb") as f:
        rows = sum(1 for _ in f) - 1
    if rows < 5_000_000:
        sys.exit(f"{calls} has {rows} rows; the comparison needs at least 5 million")
    size = os.path.getsize(calls)
    print(f"input: {calls}: {rows:,} call rows, {size / 1e6:.1f} MB")

    scratch = tempfile.mkdtemp(prefix="kefu-vs-duckdb-")
    try:
        def kefu_once():
            t, report = run_kefu(args.kefu, [calls], os.path.join(scratch, "wh"))
            assert report["new"] == rows, report
            return t

        kefu_times, duck_times = alternate(
            args.runs, kefu_once, lambda: run_duckdb(calls, os.path.join(scratch, "duck.parquet")),
            lambda i, k, d: print(f"run {i + 1}: kefu {k:.2f} s, duckdb {d:.2f} s", flush=True))
        k, d = statistics.median(kefu_times), statistics.median(duck_times)
        print(f"median kefu ingest:  {k:.2f} s ({rows / k:,.0f} rows/s, {size / k / 1e6:.0f} MB/s)")
        print(f"median duckdb COPY:  {d:.2f} s ({rows / d:,.0f} rows/s)")
        print(f"ratio kefu / duckdb: {k / d:.2f} (target <= 0.50)")

        # GBK office exports: the regions whose export style is GBK.
        with open(os.path.join(messy, "manifest.json")) as f:
            manifest = json.load(f)
        gbk = [os.path.join(messy, r["region"]) for r in manifest["regions"]
               if r["style"]["encoding"] == "gbk"]
        gbk_times, gbk_rows = [], 0
        for _ in range(args.runs):
            t, report = run_kefu(args.kefu, gbk, os.path.join(scratch, "wh-gbk"))
            gbk_times.append(t)
            gbk_rows = report["records"]
        g = statistics.median(gbk_times)
        utf8_rate, gbk_rate = rows / k, gbk_rows / g
        print(f"median kefu ingest of GBK --messy archives ({len(gbk)} regions, "
              f"{gbk_rows:,} records): {g:.2f} s ({gbk_rate:,.0f} rows/s)")
        print(f"GBK / UTF-8 throughput: {gbk_rate / utf8_rate:.0%} (target >= 90%)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
