#!/usr/bin/env bash
# Mutation testing of the safety-critical modules (`make mutants`; not part of
# `make test`: it rebuilds a crate once per mutant and takes long on two cores).
#
# For each module below cargo-mutants changes the code one way at a time
# (a condition negated, a function returning a default, an operator swapped)
# and runs the crate's own tests; a mutant the tests still pass is "missed".
# The score is caught / (caught + missed), timeouts counting as caught and
# mutants that do not compile left out. Each module must reach MUTANTS_MIN
# (default 90) percent. Reports land in target/mutants/<module>/mutants.out,
# with the missed mutants listed in missed.txt.
#
# Usage: scripts/mutants.sh [module ...]   (default: all of them)
#   modules: guard transcode
#   MUTANTS_MIN=90  MUTANTS_JOBS=1  MUTANTS_TIMEOUT=120 (seconds per test run)
#   MUTANTS_TESTS=lib   which tests judge a mutant: `lib` (the unit tests next to
#                       the code, the default: fast, and where these checks belong)
#                       or `all` (the crate's integration tests too; needs the
#                       local database services and takes far longer)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/tools-env.sh
source scripts/tools-env.sh

min=${MUTANTS_MIN:-90}
jobs=${MUTANTS_JOBS:-1}
timeout=${MUTANTS_TIMEOUT:-120}
case ${MUTANTS_TESTS:-lib} in
  lib) test_args=(-- --lib) ;;
  all) test_args=() ;;
  *) echo "mutants: MUTANTS_TESTS is lib or all" >&2; exit 2 ;;
esac
out_root="${CARGO_TARGET_DIR:-$root/target}/mutants"

# module -> "package|file glob"
declare -A modules=(
  [guard]="database-connector|connectors/database/src/guard*"
  [transcode]="switchboard-router|router/src/transcode.rs"
)

command -v cargo-mutants >/dev/null || {
  echo "mutants: cargo-mutants is missing: run scripts/install-tools.sh mutants" >&2
  exit 1
}

selected=("$@")
((${#selected[@]})) || selected=(guard transcode)

failed=()
for name in "${selected[@]}"; do
  spec=${modules[$name]:-}
  [[ -n $spec ]] || { echo "mutants: unknown module '$name' (have: ${!modules[*]})" >&2; exit 2; }
  package=${spec%%|*}
  file=${spec#*|}
  out="$out_root/$name"
  mkdir -p "$out"
  echo "mutants: $name ($package, $file)" >&2
  # cargo-mutants exits non-zero when any mutant is missed: the score decides.
  cargo mutants --package "$package" --file "$file" --test-tool nextest \
    --jobs "$jobs" --timeout "$timeout" --output "$out" --no-shuffle "${test_args[@]}" || true
  outcomes="$out/mutants.out/outcomes.json"
  [[ -f $outcomes ]] || { echo "mutants: $name: no outcomes.json, see $out/mutants.out" >&2; failed+=("$name"); continue; }
  read -r caught missed timeouts unviable < <(python3 - "$outcomes" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
print(o.get("caught", 0), o.get("missed", 0), o.get("timeout", 0), o.get("unviable", 0))
PY
  )
  viable=$((caught + missed + timeouts))
  score=0
  ((viable > 0)) && score=$(((caught + timeouts) * 100 / viable))
  printf 'mutants: %-10s %3d%% caught (%d caught, %d timeouts, %d missed, %d unviable)\n' \
    "$name" "$score" "$caught" "$timeouts" "$missed" "$unviable"
  if [[ -s $out/mutants.out/missed.txt ]]; then
    sed 's/^/  missed: /' "$out/mutants.out/missed.txt"
  fi
  ((score >= min)) || failed+=("$name")
done

if ((${#failed[@]})); then
  echo "mutants: below ${min}%: ${failed[*]}" >&2
  exit 1
fi
