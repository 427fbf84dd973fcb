#!/usr/bin/env bash
# Plain analyst SQL with kefu, DuckDB and chDB on the same Parquet (see compare_adhoc.py).
# Usage: benches/compare_adhoc.sh [--runs N] [--customers N] [--days N] [--only q01,q02]
KEFU_BENCH_PIP="chdb" exec "$(dirname "$0")/with_duckdb.sh" compare_adhoc.py "$@"
