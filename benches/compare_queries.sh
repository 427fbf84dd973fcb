#!/usr/bin/env bash
# Every named query with kefu and with DuckDB on the same Parquet (see compare_queries.py).
# Usage: benches/compare_queries.sh [--runs N] [--customers N] [--days N] [--only q1,q2]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kefu/target}"
cache="${KEFU_BENCH_CACHE:-$HOME/.cache/kefu/bench}"
venv="$cache/venv"
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet duckdb
cargo build --release --locked
exec "$venv/bin/python" benches/compare_queries.py --kefu "$CARGO_TARGET_DIR/release/kefu" --data "$cache" "$@"
