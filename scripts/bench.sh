#!/usr/bin/env bash
# `make bench`: every benchmark, in release mode, each against a baseline measured
# in the same run. Prints Markdown tables (copy them into README.md) and keeps a
# copy in target/bench-report.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
report="$target/bench-report.md"
mkdir -p "$target"
: >"$report"

section() { printf '\n## %s\n\n' "$1" | tee -a "$report"; }

echo "bench: building release binaries" >&2
cargo build --release --quiet -p switchboard-router -p integration-tests --bins

section "Router overhead (tools/call through the router vs direct gRPC)"
"$target/release/router-bench" "$@" | tee -a "$report"

for extra in scripts/bench-*.sh; do
  [[ -x $extra ]] || continue
  name=$(basename "$extra" .sh)
  section "${name#bench-}"
  "$extra" | tee -a "$report"
done

echo >&2
echo "bench: report written to $report" >&2
