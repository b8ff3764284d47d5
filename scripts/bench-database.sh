#!/usr/bin/env bash
# Benchmarks the database connector against the local PostgreSQL (release build):
# connector vs plain sqlx latency for an indexed query, a cache hit, and rows/s
# for a 100k-row result. Needs PostgreSQL at 127.0.0.1:5432 with database `test`
# (or BENCH_DATABASE_URL). Creates and drops its own schema.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p database-connector --example query_bench -- "$@"
