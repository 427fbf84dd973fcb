#!/usr/bin/env bash
# A provincial operator's year at scale: ingest, report, named queries, the daily refresh
# (see scale.py). Data is generated once and cached in ~/.cache/kefu/bench (about 12 GB).
# Usage: benches/scale.sh [--customers N] [--only ingest,report,queries,daily]
exec "$(dirname "$0")/with_duckdb.sh" scale.py "$@"
