#!/usr/bin/env bash
# kefu ingest against DuckDB on the same generated CSV (see compare_duckdb.py).
# Usage: benches/compare_duckdb.sh [--runs N] [--customers N] [--days N]
exec "$(dirname "$0")/with_duckdb.sh" compare_duckdb.py "$@"
