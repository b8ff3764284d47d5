#!/usr/bin/env bash
# Mutation testing of the safety-critical modules (`make mutants`; not part of
# `make test`: it rebuilds a crate once per mutant and takes long on two cores).
#
# For each module below cargo-mutants changes the code one way at a time
# (a condition negated, a function returning a default, an operator swapped)
# and runs the crate's own tests; a mutant the tests still pass is "missed".
# The score is caught / (caught + missed), timeouts counting as caught and
# mutants that do not compile left out. Each module must reach MUTANTS_MIN
# (default 90) percent. Only the module's own unit tests judge it (those under
# its module path, e.g. `policy::`), so a mutant counts as caught only when a
# test next to the code notices. Reports land in target/mutation/<module>/mutants.out,
# with the missed mutants listed in missed.txt. Mutants known to be equivalent
# (no test can tell them apart) are excluded, each with its reason, in
# .cargo/mutants.toml.
#
# Usage: scripts/mutants.sh [module ...]   (default: all of them)
#   modules: guard transcode auth policy
#   MUTANTS_MIN=90  MUTANTS_JOBS=1  MUTANTS_TIMEOUT=120 (seconds per test run)
#   MUTANTS_TARGET_DIR  a build folder kept between runs (with MUTANTS_JOBS=1 only);
#                       unset, each job builds inside its scratch copy of the tree.
#                       Never the workspace's CARGO_TARGET_DIR: a mutant's build
#                       would replace the crate's artifacts there under other users.
#   MUTANTS_OUT=target/mutation  where the reports go
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
# `--lib` as a cargo argument narrows the build of each mutant too, not only the
# test run: only the crate's unit-test binary is rebuilt.
case ${MUTANTS_TESTS:-lib} in
  lib) scope_args=(--cargo-arg=--lib) own_tests=1 ;;
  all) scope_args=() own_tests=0 ;;
  *) echo "mutants: MUTANTS_TESTS is lib or all" >&2; exit 2 ;;
esac
out_root=${MUTANTS_OUT:-$root/target/mutation}
if [[ -n ${MUTANTS_TARGET_DIR:-} ]]; then
  ((jobs == 1)) || { echo "mutants: MUTANTS_TARGET_DIR needs MUTANTS_JOBS=1 (jobs would share it)" >&2; exit 2; }
  export CARGO_TARGET_DIR=$MUTANTS_TARGET_DIR
else
  unset CARGO_TARGET_DIR
fi

# module -> "package|file glob|module path of its unit tests"
declare -A modules=(
  [guard]="database-connector|connectors/database/src/guard/*|guard"
  [transcode]="switchboard-router|router/src/transcode.rs|transcode"
  [auth]="switchboard-router|router/src/auth/*|auth"
  [policy]="switchboard-router|router/src/policy/*|policy"
)

command -v cargo-mutants >/dev/null || {
  echo "mutants: cargo-mutants is missing: run scripts/install-tools.sh mutants" >&2
  exit 1
}

selected=("$@")
((${#selected[@]})) || selected=(transcode policy auth guard)

failed=()
scores=()
for name in "${selected[@]}"; do
  spec=${modules[$name]:-}
  [[ -n $spec ]] || { echo "mutants: unknown module '$name' (have: ${!modules[*]})" >&2; exit 2; }
  IFS='|' read -r package file test_path <<<"$spec"
  test_args=()
  # libtest's filter: tests whose path contains `<module>::`.
  if ((own_tests)); then test_args=(-- "${test_path}::"); fi
  out="$out_root/$name"
  mkdir -p "$out"
  echo "mutants: $name ($package, $file)" >&2
  # cargo-mutants exits non-zero when any mutant is missed: the score decides.
  # The `mutants` profile (Cargo.toml) builds without debug info; gitignored
  # files (.tools, .env) are not copied into the scratch tree.
  # cargo's test runner rather than nextest: one process for the whole binary
  # costs less per mutant than one per test.
  cargo mutants --package "$package" --file "$file" --test-tool cargo --profile mutants \
    --gitignore=true --jobs "$jobs" --timeout "$timeout" --output "$out" --no-shuffle \
    "${scope_args[@]}" "${test_args[@]}" || true
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
  line=$(printf '%-10s %3d%% caught (%d caught, %d timeouts, %d missed, %d unviable)' \
    "$name" "$score" "$caught" "$timeouts" "$missed" "$unviable")
  echo "mutants: $line"
  scores+=("$line")
  if [[ -s $out/mutants.out/missed.txt ]]; then
    sed 's/^/  missed: /' "$out/mutants.out/missed.txt"
  fi
  ((score >= min)) || failed+=("$name")
done

echo "mutants: scores on $(date -u +%Y-%m-%d) (floor ${min}%):"
printf '  %s\n' "${scores[@]}"
if ((${#failed[@]})); then
  echo "mutants: below ${min}%: ${failed[*]}" >&2
  exit 1
fi
