#!/usr/bin/env bash
# Benchmarks the code-analysis connector against lizard on the same files.
#
# Builds connectors/code-analysis/examples/analysis_bench.rs in release mode, analyses a large
# source tree with it (cold, then with a warm content-hash cache, then a tree-sitter
# parse alone: the floor under any analysis on these grammars, then a path re-scan
# after one file changed in a copy of the same files, and one with nothing
# changed), runs lizard
# (.tools/venv, pinned 1.24.3) with as many threads over exactly the files the
# connector analysed, and prints files/s, lines/s and the ratio.
#
# Environment: BENCH_ROOT (default ~/.cargo/registry/src), BENCH_MAX_FILES (3000),
# BENCH_THREADS (all cores).
set -euo pipefail
cd "$(dirname "$0")/.."

root=${BENCH_ROOT:-$HOME/.cargo/registry/src}
max_files=${BENCH_MAX_FILES:-3000}
threads=${BENCH_THREADS:-$(nproc)}
lizard=.tools/venv/bin/lizard
if [[ ! -x $lizard ]]; then
  echo "lizard is missing: run scripts/install-tools.sh" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p code-analysis-connector --example analysis_bench
"$target/release/examples/analysis_bench" --root "$root" --max-files "$max_files" --threads "$threads" \
  --list "$work/files.txt" | tee "$work/ours.txt"

lines=$(awk '/^RESULT cold/ { for (i = 1; i <= NF; i++) if ($i ~ /^lines=/) { sub("lines=", "", $i); print $i } }' "$work/ours.txt")
files=$(wc -l < "$work/files.txt")
echo "lizard: $files files, $threads threads..." >&2
start=$(date +%s.%N)
# lizard exits 1 when functions exceed its warning thresholds; its report says whether it ran.
"$lizard" -t "$threads" -f "$work/files.txt" > "$work/lizard.txt" 2>&1 || true
end=$(date +%s.%N)
if ! grep -q "Total nloc" "$work/lizard.txt"; then
  echo "lizard failed:" >&2
  tail -20 "$work/lizard.txt" >&2
  exit 1
fi

awk -v lfiles="$files" -v llines="$lines" -v start="$start" -v end="$end" '
  /^RESULT/ {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); r[$2, kv[1]] = kv[2] }
  }
  END {
    ls = end - start
    lizard_lps = llines / ls
    printf "\n%-28s %8s %10s %8s %10s %12s %12s\n", "run", "files", "lines", "seconds", "files/s", "lines/s", "vs lizard"
    printf "%-28s %8d %10d %8.2f %10.0f %12.0f %11.1fx\n", "code-analysis (cold cache)", r["cold","files"], r["cold","lines"], r["cold","seconds"], r["cold","files_per_s"], r["cold","lines_per_s"], r["cold","lines_per_s"] / lizard_lps
    printf "%-28s %8d %10d %8.2f %10.0f %12.0f %11.1fx\n", "code-analysis (warm cache)", r["warm","files"], r["warm","lines"], r["warm","seconds"], r["warm","files_per_s"], r["warm","lines_per_s"], r["warm","lines_per_s"] / lizard_lps
    printf "%-28s %8d %10d %8.2f %10.0f %12.0f %11.1fx\n", "tree-sitter parse only", r["parse","files"], r["parse","lines"], r["parse","seconds"], r["parse","files_per_s"], r["parse","lines_per_s"], r["parse","lines_per_s"] / lizard_lps
    printf "%-28s %8d %10d %8.2f %10.0f %12.0f %11.1fx\n", "lizard 1.24.3", lfiles, llines, ls, lfiles / ls, lizard_lps, 1
    share = r["cold","lines_per_s"] / r["parse","lines_per_s"]
    printf "\ncold analysis: %.0f%% of the parse-only throughput (target at least 85%%: %s)\n", 100 * share, share >= 0.85 ? "met" : "NOT met"
    ms = 1000 * r["rescan","seconds"]
    printf "path re-scan after one file changed: %.1f ms for %d files, %d from the cache, %d read (target under 100 ms: %s)\n", ms, r["rescan","files"], r["rescan","cached"], r["rescan","read"], ms < 100 ? "met" : "NOT met"
    printf "path re-scan with nothing changed: %.1f ms for %d files, %d from the cache, %d read\n", 1000 * r["unchanged","seconds"], r["unchanged","files"], r["unchanged","cached"], r["unchanged","read"]
  }' "$work/ours.txt"
