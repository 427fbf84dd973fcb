#!/usr/bin/env bash
# Every named query locally and on a 2-executor Ballista cluster on 127.0.0.1, over the
# same generated warehouse (see compare_cluster.py). Needs only Python 3 and a release
# build of kefu (built here). On one machine this measures the cluster's overhead.
# Usage: benches/compare_cluster.sh [--runs N] [--customers N] [--days N] [--only q1,q2]
#                                   [--executors N] [--concurrency N]
#                                   [--cluster-env "DATAFUSION_X=1,BALLISTA_Y=2"]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kefu/target}"
cache="${KEFU_BENCH_CACHE:-$HOME/.cache/kefu/bench}"
mkdir -p "$cache"
cargo build --release --locked
exec python3 benches/compare_cluster.py --kefu "$CARGO_TARGET_DIR/release/kefu" --data "$cache" "$@"
