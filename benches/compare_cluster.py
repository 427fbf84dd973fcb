"""Every named query in local mode and on a Ballista cluster, over the same warehouse.

Starts a scheduler and N executors (`kefu cluster …`, separate processes on 127.0.0.1,
each with its own shuffle directory), waits until `kefu cluster check` passes, then runs
each named query as `kefu query NAME` (a fresh process: startup, planning, execution,
CSV output) locally and with `--cluster`, alternating. Prints medians and the ratio per
query and for the suite, and checks that both wrote the same rows.

On one machine the executors share its cores with each other and with the client, so
this measures what the cluster adds (planning on the scheduler, task launch, shuffle
files and Flight fetches), not a speed-up.
"""

import argparse
import csv
import io
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from alternate import alternate
from compare_queries import add_common_arguments, compare, prepare_warehouse, query_runs, timed
from compare_settings import environment


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(kefu, work, executors, concurrency, warehouse):
    """A scheduler and `executors` executors serving `warehouse`; returns (processes, URL)."""
    port = free_port()
    log = open(os.path.join(work, "cluster.log"), "ab")
    procs = [subprocess.Popen([kefu, "cluster", "scheduler", "--bind", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=log)]
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit("the scheduler did not start; see " + log.name)
            time.sleep(0.1)
    for i in range(executors):
        shuffle = os.path.join(work, f"executor-{i}")
        os.makedirs(shuffle, exist_ok=True)
        procs.append(subprocess.Popen(
            [kefu, "cluster", "executor", "--scheduler", f"127.0.0.1:{port}",
             "--port", str(free_port()), "--grpc-port", str(free_port()),
             "--concurrency", str(concurrency), "--work-dir", shuffle,
             "--warehouse", warehouse],
            stdout=subprocess.DEVNULL, stderr=log))
    return procs, f"df://127.0.0.1:{port}"


UNITS = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


def metric(line, name):
    """Sum of a metric (`name=12.3 K`) over the operators on `line`."""
    total = 0.0
    for value, unit in re.findall(name + r"=([0-9.]+)(?: ?(K|M|B|KB|MB|GB)\b)?", line):
        total += float(value) * UNITS[unit or ""]
    return total


def explain(kefu, wh, url, name, pargs):
    """What the query's stages did on the cluster (EXPLAIN ANALYZE): stages, rows and
    bytes the scans read, and rows and bytes that crossed a shuffle between stages."""
    sql = subprocess.run([kefu, "query", name, "--show-sql", *pargs],
                         capture_output=True, text=True, check=True).stdout.strip().rstrip(";")
    out = subprocess.run([kefu, "sql", "--warehouse", wh, "--cluster", url, "--format", "csv",
                          "-e", "EXPLAIN ANALYZE " + sql], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    plan = "\n".join(row[1] for row in csv.reader(io.StringIO(out.stdout)) if len(row) > 1)
    stages = re.split(r"=+SuccessfulStage\[stage_id=\d+, partitions=\d+\]=+", plan)[1:]
    scanned_rows = scanned_bytes = shuffled_rows = shuffled_bytes = 0.0
    for i, stage in enumerate(stages):
        for line in stage.splitlines():
            op = line.strip()
            if op.startswith("DataSourceExec"):
                scanned_rows += metric(op, "output_rows")
                scanned_bytes += metric(op, "bytes_scanned")
            elif op.startswith("ShuffleReaderExec") or op.startswith("SortShuffleReaderExec"):
                shuffled_bytes += metric(op, "decoded_bytes")
            elif "ShuffleWriterExec" in op.split(":")[0] and i < len(stages) - 1:
                shuffled_rows += metric(op, "output_rows")
    return len(stages), scanned_rows, scanned_bytes, shuffled_rows, shuffled_bytes


def peak_memory(procs, url):
    """Peak resident memory of the scheduler and of each executor so far (VmHWM)."""
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                hwm = next(l for l in f if l.startswith("VmHWM:")).split()[1]
        except (OSError, StopIteration):
            continue
        role = "scheduler" if "scheduler" in p.args else "executor"
        print(f"peak memory: {role} (pid {p.pid}) {int(hwm) / 1024:,.0f} MB")


def main():
    ap = argparse.ArgumentParser()
    add_common_arguments(ap)
    ap.add_argument("--executors", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=1,
                    help="task slots per executor (default 1: 2 executors use 2 cores)")
    ap.add_argument("--cluster-env", default="",
                    help="settings for the cluster side's client only, as KEY=value pairs "
                         "separated by commas (DATAFUSION_* and BALLISTA_* options), to tune "
                         "the cluster against local mode")
    ap.add_argument("--explain", action="store_true",
                    help="also print each query's stages, scan and shuffle volumes on the cluster")
    args = ap.parse_args()

    wh = prepare_warehouse(args)
    cluster_env = environment(args.cluster_env)

    tmp = tempfile.mkdtemp()
    procs, url = start_cluster(args.kefu, tmp, args.executors, args.concurrency, wh)
    try:
        deadline = time.time() + 90
        while True:
            check = subprocess.run([args.kefu, "cluster", "check", url, "--warehouse", wh],
                                   capture_output=True, text=True)
            if check.returncode == 0:
                break
            if time.time() > deadline:
                raise SystemExit("the cluster never passed its check:\n" + check.stdout + check.stderr)
            time.sleep(0.5)
        print(check.stdout.strip())
        print(f"cluster: {args.executors} executors x {args.concurrency} task slot(s), "
              f"on {os.cpu_count()} cores shared with the client")
        results = []
        for name, pargs in query_runs(args):
            local_out = os.path.join(tmp, f"{name}.local.csv")
            cluster_out = os.path.join(tmp, f"{name}.cluster.csv")
            base = [args.kefu, "query", name, "--warehouse", wh, "--format", "csv", *pargs]
            local_cmd = [*base, "--output", local_out]
            cluster_cmd = [*base, "--output", cluster_out, "--cluster", url]
            loc, clu = alternate(args.runs, lambda: timed(name, local_cmd),
                                 lambda: timed(name, cluster_cmd, cluster_env))
            both = os.path.exists(local_out) and os.path.exists(cluster_out)
            diff = compare(cluster_out, local_out) if both else "missing output"
            lm, cm = statistics.median(loc), statistics.median(clu)
            results.append((name, lm, cm, diff))
            print(f"{name:36s} local {lm:7.3f} s  cluster {cm:7.3f} s  ratio {cm / lm:5.2f}  "
                  f"{'same result' if diff is None else 'DIFFERENT: ' + diff}", flush=True)
        if args.explain:
            print(f"{'query':36s} {'stages':>6s} {'rows scanned':>13s} {'bytes read':>11s} "
                  f"{'rows shuffled':>13s} {'shuffle bytes':>13s}")
            for name, pargs in query_runs(args):
                e = explain(args.kefu, wh, url, name, pargs)
                if e is None:
                    print(f"{name:36s} EXPLAIN ANALYZE failed")
                    continue
                st, sr, sb, hr, hb = e
                print(f"{name:36s} {st:6d} {sr:13,.0f} {sb / 1e6:9.1f}MB {hr:13,.0f} {hb / 1e6:11.1f}MB",
                      flush=True)
        peak_memory(procs, url)
        ok = [r for r in results if not math.isnan(r[1]) and not math.isnan(r[2])]
        total_l, total_c = sum(r[1] for r in ok), sum(r[2] for r in ok)
        print(f"suite: local {total_l:.2f} s, cluster {total_c:.2f} s, ratio {total_c / total_l:.2f}; "
              f"{sum(1 for r in results if r[3] is None)}/{len(results)} same results")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
