#!/usr/bin/env bash
# Checks the deployment files without a Docker engine or a cluster (run by
# `make test`; a few seconds once the tools are there; idempotent):
#
#   1. `docker-compose config` accepts compose.yaml, with no .env and with
#      .env.example as the .env (Debian's docker-compose; installed with apt-get
#      when missing and running as root, `docker compose` used when it works);
#   2. scripts/check-deploy/check.py, on the resolved compose file and on
#      deploy/kubernetes rendered by `kubectl kustomize` (or `kustomize build`):
#      every compose service has a healthcheck; ports and environment variable
#      names in compose.yaml, .env.example and the manifests match what the
#      binaries read (derived from the Rust sources and `cargo metadata`); the
#      Dockerfile's BINARY values are real [[bin]] targets; every rendered
#      Deployment has probes, resources and a securityContext; every object
#      matches the Kubernetes API schema (PyPI kubernetes-validate, installed
#      into .tools/check-deploy-venv);
#   3. scripts/sync-deploy --check: compose.yaml, deploy/kubernetes/base and
#      .env.example follow deploy/connectors.toml and pass through and document
#      every variable the binaries read (else: run `make deploy-sync`);
#   4. promtool (Debian package prometheus) checks deploy/prometheus/prometheus.yml
#      and parses every PromQL query of deploy/grafana/dashboards;
#   5. scripts/check-deploy/selftest.py: check.py fails on copies of the files
#      with one deliberate mistake each (so a check that stops checking shows),
#      and a connector added to a copy's deploy/connectors.toml is deployed by
#      sync-deploy so that check.py passes the copy.
#
# One line per check (PASS / FAIL / SKIP / WARN); exits 1 when any check failed.
# A missing tool fails with CI=true and is skipped loudly otherwise. Without any
# kustomize, the manifests are rendered by a partial Python renderer instead,
# with a loud warning (see README.md, "Deploy").
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
FAILED=0
CI=${CI:-}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

say() { printf '%-5s %s\n' "$1" "$2" | tee -a "$WORK/summary"; }
fail() { say FAIL "$1"; FAILED=1; }
missing() { # a tool is missing: fail in CI, skip loudly elsewhere
  if [[ $CI == true ]]; then fail "$1 (CI=true: a missing tool is a failure)"; else
    say SKIP "$1"
    echo "      !!! this check did NOT run; $2" >&2
  fi
}
as_root() { [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; }
apt_install() { # apt_install PACKAGE...: quietly, refreshing the lists once if needed
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 \
    || { apt-get update -q >>"$WORK/apt.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1; } \
    || { tail -n 5 "$WORK/apt.log" >&2; return 1; }
}

# --- Python with PyYAML --------------------------------------------------------
PYTHON=
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
    PYTHON=$candidate; break
  fi
done
if [[ -z $PYTHON ]] && as_root; then
  say INFO "installing python3-yaml (Debian) for the checks"
  apt_install python3-yaml && PYTHON=/usr/bin/python3
fi
if [[ -z $PYTHON ]]; then
  missing "deploy checks: no python3 with PyYAML" "install python3-yaml (apt-get) or PyYAML (pip)"
  exit "$FAILED"
fi

# --- docker compose config -------------------------------------------------------
COMPOSE=()
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
elif as_root; then
  say INFO "installing docker-compose (Debian) to validate compose.yaml"
  apt_install docker-compose && COMPOSE=(docker-compose)
fi
RESOLVED=()
if ((${#COMPOSE[@]})); then
  : >"$WORK/empty.env"
  # A clean environment, so the caller's RUST_LOG, CI, ... do not leak into the result.
  run_compose() { env -i PATH="$PATH" HOME="${HOME:-/root}" "${COMPOSE[@]}" --project-directory "$ROOT" -f "$ROOT/compose.yaml" --env-file "$1" config; }
  if run_compose "$WORK/empty.env" >"$WORK/compose-default.yaml" 2>"$WORK/compose.err" \
     && run_compose "$ROOT/.env.example" >"$WORK/compose-example.yaml" 2>>"$WORK/compose.err" \
     && env -i PATH="$PATH" HOME="${HOME:-/root}" "${COMPOSE[@]}" -f "$ROOT/deploy/compose/test-services.yaml" \
          --env-file "$WORK/empty.env" config -q 2>>"$WORK/compose.err"; then
    say PASS "compose: '${COMPOSE[*]} config' accepts compose.yaml (without .env and with .env.example as .env) and deploy/compose/test-services.yaml"
    RESOLVED=(--compose-config "$WORK/compose-example.yaml")
  else
    fail "compose: '${COMPOSE[*]} config' rejects compose.yaml"
    sed 's/^/        /' "$WORK/compose.err"
  fi
else
  missing "compose: no docker-compose or docker compose plugin to validate compose.yaml" \
    "install the Debian package docker-compose (apt-get install docker-compose); the structural checks below still run on compose.yaml as written"
fi

# --- kustomize -----------------------------------------------------------------------
KUSTOMIZE=()
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  KUSTOMIZE=(--kustomize "kubectl kustomize")
elif command -v kustomize >/dev/null; then
  KUSTOMIZE=(--kustomize "kustomize build")
else
  say WARN "kubernetes: neither kubectl nor kustomize is installed: the manifests are rendered by a"
  say WARN "  partial Python renderer (resources, namespace, generators; no patches, labels or images)."
  say WARN "  Install kubectl (it bundles kustomize) for a real rendering; Debian's kubernetes-client is too old."
fi

# --- Kubernetes API schemas (PyPI kubernetes-validate, in its own venv under .tools/) ---------
SCHEMAS=()
VALIDATE_VERSION=1.37.0
VENV=$ROOT/.tools/check-deploy-venv
if [[ ! -x $VENV/bin/kubernetes-validate ]] || ! grep -qs "^$VALIDATE_VERSION$" "$VENV/.version"; then
  say INFO "installing kubernetes-validate $VALIDATE_VERSION into .tools/check-deploy-venv"
  rm -rf "$VENV"
  if "$PYTHON" -m venv "$VENV" >"$WORK/venv.log" 2>&1 \
     && "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$VALIDATE_VERSION" >>"$WORK/venv.log" 2>&1; then
    echo "$VALIDATE_VERSION" >"$VENV/.version"
  else
    tail -n 5 "$WORK/venv.log" >&2
    rm -rf "$VENV"
  fi
fi
if [[ -x $VENV/bin/kubernetes-validate ]]; then
  SCHEMAS=(--kubernetes-validate "$VENV/bin/kubernetes-validate")
else
  missing "kubernetes: no kubernetes-validate to check the manifests against the API schemas" \
    "it installs from PyPI into .tools/check-deploy-venv (python3 -m venv + pip); check the network to PyPI"
fi

# --- Prometheus and Grafana of the observability profile (promtool) ------------------------
# promtool is Debian's `prometheus` package (scripts/install-tools.sh promtool).
if command -v promtool >/dev/null; then
  if promtool check config --syntax-only deploy/prometheus/prometheus.yml >"$WORK/promtool.log" 2>&1; then
    say PASS "prometheus: 'promtool check config' accepts deploy/prometheus/prometheus.yml"
  else
    fail "prometheus: 'promtool check config' rejects deploy/prometheus/prometheus.yml"
    sed 's/^/        /' "$WORK/promtool.log"
  fi
  # Every query of the dashboards, as recording rules (Grafana's $__ intervals
  # replaced by a duration), so promtool parses each PromQL expression.
  if "$PYTHON" - "$WORK/dashboard-rules.yml" deploy/grafana/dashboards/*.json <<'PY' >"$WORK/dashboards.log" 2>&1 \
     && promtool check rules "$WORK/dashboard-rules.yml" >>"$WORK/dashboards.log" 2>&1; then
import json, re, sys, yaml
rules = []
for path in sys.argv[2:]:
    def walk(panels):
        for panel in panels:
            walk(panel.get("panels") or [])
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    expr = re.sub(r"\$__(rate_interval|interval|range)", "5m", target["expr"])
                    rules.append({"record": f"dashboard:query_{len(rules)}", "expr": expr})
    walk(json.load(open(path)).get("panels") or [])
if not rules:
    sys.exit("no queries found in the dashboards")
yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(sys.argv[1], "w"))
print(f"{len(rules)} queries")
PY
    say PASS "grafana: every dashboard query in deploy/grafana/dashboards parses as PromQL (promtool check rules): $(head -n 1 "$WORK/dashboards.log")"
  else
    fail "grafana: a dashboard query in deploy/grafana/dashboards is not valid PromQL"
    sed 's/^/        /' "$WORK/dashboards.log"
  fi
else
  missing "prometheus: no promtool to check deploy/prometheus/prometheus.yml and the dashboards' queries" \
    "scripts/install-tools.sh promtool installs it (Debian package prometheus, as root)"
fi

# --- structural checks ------------------------------------------------------------------
"$PYTHON" scripts/check-deploy/check.py "${RESOLVED[@]}" "${KUSTOMIZE[@]}" "${SCHEMAS[@]}" | tee -a "$WORK/summary"
((PIPESTATUS[0] == 0)) || FAILED=1
# The files follow deploy/connectors.toml and every variable the binaries read
# (what `make deploy-sync` writes); it names the command to run when they do not.
"$PYTHON" scripts/sync-deploy --check | tee -a "$WORK/summary"
((PIPESTATUS[0] == 0)) || FAILED=1
# ... and proof that those checks catch deliberate mistakes in copies of the files.
"$PYTHON" scripts/check-deploy/selftest.py | tee -a "$WORK/summary"
((PIPESTATUS[0] == 0)) || FAILED=1

passed=$(grep -c '^PASS' "$WORK/summary")
failed=$(grep -c '^FAIL' "$WORK/summary")
skipped=$(grep -c '^SKIP' "$WORK/summary")
if ((FAILED)) && ((failed == 0)); then failed=1; fi # a crash without a FAIL line still fails
echo "check-deploy: $passed passed, $failed failed, $skipped skipped"
exit "$FAILED"
