#!/usr/bin/env bash
# Runs one of the DuckDB comparisons of benches/ with a release build of kefu and duckdb
# in a virtualenv (both cached in ~/.cache/kefu).
# Usage: benches/with_duckdb.sh SCRIPT.py [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
script="$1"
shift
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kefu/target}"
cache="${KEFU_BENCH_CACHE:-$HOME/.cache/kefu/bench}"
venv="$cache/venv"
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# KEFU_BENCH_PIP: more peers a script needs (compare_adhoc.sh: chdb).
"$venv/bin/pip" install --quiet duckdb deltalake ${KEFU_BENCH_PIP:-}
cargo build --release --locked
exec "$venv/bin/python" "benches/$script" --kefu "$CARGO_TARGET_DIR/release/kefu" --data "$cache" "$@"
