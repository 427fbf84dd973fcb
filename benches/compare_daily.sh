#!/usr/bin/env bash
# A year of lifecycle exports ingested day by day against at once, then the named queries
# on both warehouses (see compare_daily.py).
# Usage: benches/compare_daily.sh [--customers N] [--days N] [--runs N] [--only q1,q2]
exec "$(dirname "$0")/with_duckdb.sh" compare_daily.py "$@"
