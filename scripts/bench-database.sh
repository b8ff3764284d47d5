#!/usr/bin/env bash
# Benchmarks the database connector against the local PostgreSQL (release build):
# connector vs plain sqlx latency for an indexed query (the connector as a
# read-only role and as the administrator, with the read-only layers in force
# printed for each), a cache hit, and rows/s for a 100k-row result against plain
# sqlx + serde_json encoding of the same rows; prints the ratio against each
# target. Needs PostgreSQL at 127.0.0.1:5432 with database `test` (or
# BENCH_DATABASE_URL, as a user that may create roles). Creates and drops its
# own schema and role. BENCH_PROFILE=point|rows runs only that work through the
# connector, for a profiler (see connectors/database/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p database-connector --example query_bench -- "$@"
