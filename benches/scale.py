"""A provincial operator's year: ingest, report, named queries and the daily refresh at scale.

Generates (once, cached under --data) `kefu gen --customers N --days 365` — at the default
1,000,000 customers about 32.6 M calls, 54 M rows, 10 GB of CSV — and one more day of
exports (1 January of the next year, its record ids renamed so that they are new records,
without the dimension files), then measures with `/usr/bin/time` (wall and CPU seconds, peak RSS):

1. `kefu ingest` of the year into a new warehouse          (target: <= 35 s, <= 1 GB)
2. `kefu report --month <December>` on it                   (target: <= 10 s), then each of
   the report's queries alone: where its time goes
3. every named query over the year (`kefu query NAME`)      (target: peak RSS <= 1 GB each,
   or, where a query takes more, under `--memory-limit 1GB` with the same answer)
4. the daily refresh: `kefu run` of fixtures/jobs/monthly.toml on the warehouse once with
   nothing new (the first run computes every KPI table), then again after the new day
   arrives — the second run is the nightly job's work        (target: <= 10 s)

Usage: benches/scale.sh [--customers N] [--only ingest,report,queries,daily]
"""

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys

from compare_queries import compare, query_runs

HERE = os.path.dirname(os.path.abspath(__file__))
GB = 1024 ** 3
# The new day's event files, and their id prefixes renamed (CL000… → CLD00…).
EVENT_FILES = ["calls.csv", "tickets.csv", "callbacks.csv", "visits.csv"]
ID_PREFIXES = ["CL", "TK", "CB", "VS"]


def measured(label, cmd, may_fail=False, **kwargs):
    """Runs `cmd` under /usr/bin/time; returns (seconds, peak RSS bytes, CPU seconds), printing
    them. A failure ends the run, or, with `may_fail`, is reported and returns None."""
    timing = ["/usr/bin/time", "-f", "%e %M %U %S"]
    done = subprocess.run(timing + cmd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        if may_fail:
            lines = [l for l in done.stderr.strip().splitlines()[:-1]
                     if l.strip() and not l.startswith("Command exited")]
            print(f"{label:40s} FAILED (exit {done.returncode}): {lines[-1] if lines else ''}",
                  flush=True)
            return None
        sys.exit(f"{label}: exit {done.returncode}\n{done.stderr[-2000:]}")
    seconds, kb, user, system = done.stderr.strip().splitlines()[-1].split()
    seconds, rss, cpu = float(seconds), int(kb) * 1024, float(user) + float(system)
    print(f"{label:40s} {seconds:8.2f} s  CPU {cpu:7.2f} s  peak RSS {rss / GB:5.2f} GB",
          flush=True)
    return seconds, rss, cpu


def generate(kefu, root, customers, days):
    """The year's exports and the next day's, made once."""
    year = os.path.join(root, "data")
    if not os.path.isdir(year):
        print(f"generating {customers} customers x {days} days ...", file=sys.stderr)
        subprocess.run([kefu, "gen", "--out", year + ".tmp", "--customers", str(customers),
                        "--days", str(days), "-q"], check=True)
        os.rename(year + ".tmp", year)
    day = os.path.join(root, "next-day")
    if not os.path.isdir(day):
        raw = day + ".raw"
        shutil.rmtree(raw, ignore_errors=True)
        start = f"{2026 + days // 365}-01-01"
        subprocess.run([kefu, "gen", "--out", raw, "--customers", str(customers), "--days", "1",
                        "--start", start, "-q"], check=True)
        os.makedirs(day + ".tmp", exist_ok=True)
        rename = re.compile(r"\b(" + "|".join(ID_PREFIXES) + r")0")
        for name in EVENT_FILES:
            with open(os.path.join(raw, name), encoding="utf-8") as src, \
                    open(os.path.join(day + ".tmp", name), "w", encoding="utf-8") as dst:
                for line in src:
                    dst.write(rename.sub(r"\1D", line))
        shutil.rmtree(raw)
        os.rename(day + ".tmp", day)
    return year, day


def job_file(root, warehouse, deliveries):
    """fixtures/jobs/monthly.toml pointed at this warehouse and a deliveries directory."""
    with open(os.path.join(HERE, "..", "fixtures", "jobs", "monthly.toml"), encoding="utf-8") as f:
        text = f.read()
    text = text.replace('warehouse = "warehouse"', f'warehouse = "{warehouse}"', 1)
    text = text.replace('sources = ["exports"]', f'sources = ["{deliveries}"]', 1)
    path = os.path.join(root, "job", "monthly.toml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def report_queries(kefu, wh, out):
    """Where the report's time goes: each of its queries run alone with the parameters the
    report gave it (its tables/_queries.csv, `name=value` pairs separated by spaces). Run
    alone, each also pays kefu's start-up (about 0.03 s), so the sum exceeds the report's
    own time."""
    with open(os.path.join(out, "tables", "_queries.csv"), encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))[1:]
    wall = cpu = 0.0
    for name, params in rows:
        cmd = [kefu, "query", name, "--warehouse", wh, "--format", "csv",
               "--output", os.path.join(out, "query.csv")]
        for key, value in re.findall(r"(\w+)=(.*?)(?= \w+=|$)", params):
            cmd += ["-p", f"{key}={value}"]
        seconds, _, used = measured(f"    {name}", cmd)
        wall += seconds
        cpu += used
    print(f"{'    (each alone, summed)':40s} {wall:8.2f} s  CPU {cpu:7.2f} s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kefu", required=True)
    ap.add_argument("--data", required=True, help="cache directory")
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--only", default="ingest,report,queries,daily")
    args = ap.parse_args()
    parts = args.only.split(",")
    days = 365
    root = os.path.abspath(os.path.join(args.data, f"scale-{args.customers}-{days}"))
    os.makedirs(root, exist_ok=True)
    year, day = generate(args.kefu, root, args.customers, days)
    size = sum(os.path.getsize(os.path.join(year, f)) for f in os.listdir(year))
    print(f"data: {args.customers:,} customers x {days} days, {size / GB:.2f} GB of CSV")
    wh = os.path.join(root, "wh")
    results = {}

    if "ingest" in parts or not os.path.isdir(os.path.join(wh, "calls")):
        shutil.rmtree(wh, ignore_errors=True)
        results["ingest"] = measured("ingest of the year", [args.kefu, "ingest", year, "--warehouse", wh, "-q"])[:2]

    if "report" in parts:
        out = os.path.join(root, "report")
        shutil.rmtree(out, ignore_errors=True)
        month = f"{2026 + (days - 1) // 365}-12"
        results["report"] = measured(f"report for {month}", [args.kefu, "report", "--month", month,
                                                             "--warehouse", wh, "--out", out, "-q"])[:2]
        report_queries(args.kefu, wh, out)

    if "queries" in parts:
        class Listing:
            kefu, only = args.kefu, None
        worst = (0, "")
        total = 0.0
        out, limited_out = os.path.join(root, "query.csv"), os.path.join(root, "query-limited.csv")
        for name, pargs in query_runs(Listing):
            cmd = [args.kefu, "query", name, "--warehouse", wh, "--format", "csv", *pargs]
            seconds, rss, _ = measured(f"query {name}", cmd + ["--output", out])
            total += seconds
            if rss > GB:
                # Over 1 GB: the target allows spilling under --memory-limit 1GB instead,
                # with the same answer.
                limited = measured(f"query {name} --memory-limit 1GB",
                                   cmd + ["--memory-limit", "1GB", "--output", limited_out],
                                   may_fail=True)
                diff = "it failed" if limited is None else compare(out, limited_out)
                print(f"{'':40s} {'same answer' if diff is None else 'NOT MET: ' + diff}")
                rss = float("inf") if diff is not None else limited[1]
            worst = max(worst, (rss, name))
        results["queries"] = (total, worst[0])
        print(f"named queries: {total:.1f} s in all; the largest peak RSS {worst[0] / GB:.2f} GB "
              f"({worst[1]}; under --memory-limit 1GB where the query alone took more)")

    if "daily" in parts:
        # A copy of the warehouse: the refresh writes to it.
        daily_wh = os.path.join(root, "wh-daily")
        shutil.rmtree(daily_wh, ignore_errors=True)
        shutil.copytree(wh, daily_wh)
        deliveries = os.path.join(root, "deliveries")
        shutil.rmtree(deliveries, ignore_errors=True)
        os.makedirs(deliveries)
        job = job_file(root, daily_wh, deliveries)
        shutil.rmtree(os.path.join(root, "job", "kpi"), ignore_errors=True)
        shutil.rmtree(os.path.join(root, "job", ".kefu-jobs"), ignore_errors=True)
        first = f"{2026 + days // 365}-01-01"
        measured("job run, nothing new (every KPI table)", [args.kefu, "run", job, "--date", first, "-q"])
        for name in os.listdir(day):
            shutil.copy(os.path.join(day, name), deliveries)
        second = f"{2026 + days // 365}-01-02"
        results["daily"] = measured("job run after one new day", [args.kefu, "run", job, "--date", second, "-q"])[:2]
        # Where the nightly run's time went, from its run report.
        with open(os.path.join(root, "job", "kpi", "_runs", "monthly-latest.json"), encoding="utf-8") as f:
            for step in json.load(f)["steps"]:
                print(f"    {step['name']:28s} {step['seconds']:7.2f} s  {step['message'][:110]}")
        shutil.rmtree(daily_wh)

    targets = {"ingest": "<= 35 s and <= 1 GB", "report": "<= 10 s",
               "queries": "peak RSS <= 1 GB each", "daily": "<= 10 s"}
    for part, (seconds, rss) in results.items():
        print(f"{part:8s} {seconds:8.2f} s  peak {rss / GB:5.2f} GB   target {targets[part]}")


if __name__ == "__main__":
    main()
