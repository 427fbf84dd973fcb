"""Every named query with kefu under two sets of engine settings, alternating.

For tuning kefu's DataFusion defaults: each side is a comma-separated list of
environment variables (`DATAFUSION_*` options, `KEY=value`), empty for kefu's defaults.
Comparing kefu with itself keeps DuckDB's own run-to-run noise out of the figures.
Uses the warehouse `compare_queries.py` generates (run that once first).

Usage: benches/compare_settings.sh "A settings" "B settings" [--runs N] [--only q1,q2]
  e.g. benches/compare_settings.sh "" "DATAFUSION_EXECUTION_BATCH_SIZE=16384"
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from alternate import alternate
from compare_queries import add_common_arguments, query_runs, warehouse_dir


def environment(settings):
    """This environment with `settings` (`KEY=value,...`) set over it."""
    env = dict(os.environ)
    for item in filter(None, settings.split(",")):
        key, value = item.split("=", 1)
        env[key.strip()] = value.strip()
    return env


def main():
    ap = argparse.ArgumentParser()
    add_common_arguments(ap)
    ap.add_argument("a", help="settings A (KEY=value,...; empty for the defaults)")
    ap.add_argument("b", help="settings B")
    args = ap.parse_args()

    wh = warehouse_dir(args)
    if not os.path.isdir(os.path.join(wh, "calls")):
        sys.exit(f"no warehouse at {wh}: run benches/compare_queries.sh first")
    env_a, env_b = environment(args.a), environment(args.b)
    out = os.path.join(tempfile.mkdtemp(), "out.csv")
    total_a = total_b = 0.0
    for name, pargs in query_runs(args):
        cmd = [args.kefu, "query", name, "--warehouse", wh, "--format", "csv", "--output", out,
               *pargs]

        def timed(env):
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            return time.perf_counter() - start

        a, b = alternate(args.runs, lambda: timed(env_a), lambda: timed(env_b))
        ma, mb = statistics.median(a), statistics.median(b)
        total_a, total_b = total_a + ma, total_b + mb
        print(f"{name:36s} A {ma:7.3f} s  B {mb:7.3f} s  B/A {mb / ma:5.2f}", flush=True)
    print(f"total: A {total_a:.2f} s, B {total_b:.2f} s, B/A {total_b / total_a:.2f}")


if __name__ == "__main__":
    main()
