#!/usr/bin/env bash
# Every named query with kefu under two sets of engine settings (see compare_settings.py).
# Usage: benches/compare_settings.sh "A settings" "B settings" [--runs N] [--only q1,q2]
exec "$(dirname "$0")/with_duckdb.sh" compare_settings.py "$@"
