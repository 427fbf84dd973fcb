#!/usr/bin/env bash
# Every named query with kefu and with DuckDB on the same Parquet (see compare_queries.py).
# Usage: benches/compare_queries.sh [--runs N] [--customers N] [--days N] [--only q1,q2]
exec "$(dirname "$0")/with_duckdb.sh" compare_queries.py "$@"
