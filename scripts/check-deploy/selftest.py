#!/usr/bin/env python3
"""Proves that check.py catches mistakes: each case copies the deployment files
to a temporary directory, makes one deliberate mistake there, and expects
check.py to fail naming it. The unaltered copy must pass.

It also proves that adding a connector is one entry in deploy/connectors.toml:
in a copy, a dummy connector (a fake crate with a settings table) is listed,
sync-deploy runs, and check.py then passes the copy, whose compose.yaml,
Kubernetes manifests, kustomization and .env.example deploy the new connector
with every line they had before still in place.

    python3 scripts/check-deploy/selftest.py

Prints one line per self-test; exits 1 when a mistake went unnoticed, the copy
failed, or the added connector was not deployed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shutil
import sys
import tempfile
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True
import check  # noqa: E402
import sync  # noqa: E402
COPIED = ["compose.yaml", ".env.example", "Dockerfile", "deploy"]

# (what goes wrong, file, text to replace, replacement, what check.py must say)
CASES = [
    ("a misspelt variable in compose", "compose.yaml",
     "JIRA_PAT: ${JIRA_PAT:-}", "JIRA_TOKEN: ${JIRA_PAT:-}", "reads none of ['JIRA_TOKEN']"),
    ("a connector variable not passed through", "compose.yaml",
     "      SLACK_PACING: ${SLACK_PACING:-}\n", "", "not passed through from .env: ['SLACK_PACING']"),
    ("a connector port the router does not dial", "compose.yaml",
     "LISTEN_ADDR: 0.0.0.0:50052", "LISTEN_ADDR: 0.0.0.0:50059", "dials port 50052 but slack listens on 50059"),
    ("a BINARY that is no [[bin]] target", "compose.yaml",
     "BINARY: slack-connector", "BINARY: slack-conector", "BINARY=slack-conector is no [[bin]] target"),
    ("a service without healthcheck", "compose.yaml",
     'test: ["CMD", "pg_isready", "-U", "switchboard", "-d", "switchboard"]', "disable: true",
     "service postgres has no healthcheck"),
    ("a fixed container name", "compose.yaml",
     "\n  slack:\n", "\n  slack:\n    container_name: slack\n", "sets container_name"),
    ("a published connector port", "compose.yaml",
     "    image: switchboard/jira-connector:${SWITCHBOARD_TAG:-dev}\n",
     "    image: switchboard/jira-connector:${SWITCHBOARD_TAG:-dev}\n    ports: [\"50051:50051\"]\n",
     "service jira publishes host ports"),
    ("a Host list without the service name", "compose.yaml",
     "::1,[::1],router}", "::1,[::1]}", "does not admit the service name 'router'"),
    ("a test database published beyond loopback", "deploy/compose/test-services.yaml",
     '"127.0.0.1:5432:5432"', '"5432:5432"', "publishes '5432:5432' beyond 127.0.0.1"),
    ("an undocumented variable", ".env.example", "\nJIRA_PAT=\n", "\n", "does not document: ['JIRA_PAT']"),
    ("a value in .env.example", ".env.example", "\nJIRA_PAT=\n", "\nJIRA_PAT=secret\n", "leave every value empty"),
    ("a Deployment without limits", "deploy/kubernetes/base/jira.yaml",
     '            limits:\n              cpu: "500m"\n              memory: 256Mi\n', "", "no resources.limits.cpu"),
    ("a Deployment without probes", "deploy/kubernetes/base/router.yaml",
     "          livenessProbe:\n", "          startupProbe:\n", "no livenessProbe"),
    ("a privileged container", "deploy/kubernetes/base/slack.yaml",
     "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation is not false"),
    ("a LISTEN_ADDR that is not the container port", "deploy/kubernetes/base/config/slack.env",
     "0.0.0.0:50052", "0.0.0.0:50053", "LISTEN_ADDR port 50053 != containerPort 50052"),
    ("a misspelt ConfigMap key", "deploy/kubernetes/base/config/database.env",
     "DB_ACCESS_MODE=", "DB_MODE=", "reads none of ['DB_MODE']"),
    ("a connector Service that is not headless", "deploy/kubernetes/base/jira.yaml",
     "clusterIP: None", "type: ClusterIP", "Service jira is not headless"),
    ("a connector under another name", "deploy/kubernetes/base/config/router.env",
     "code_analysis=http", "codeanalysis=http", "calls itself 'code_analysis' but is registered as 'codeanalysis'"),
    ("a missing autoscaler", "deploy/kubernetes/base/database.yaml",
     "kind: HorizontalPodAutoscaler", "kind: PodDisruptionBudget", "no HorizontalPodAutoscaler for connector Deployment database"),
    ("an image that names no binary", "deploy/kubernetes/base/code-analysis.yaml",
     "image: switchboard/code-analysis-connector", "image: switchboard/code-analyser",
     "names no [[bin]] target"),
    ("a connector no NetworkPolicy isolates", "deploy/kubernetes/base/slack.yaml",
     "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: slack\n  policyTypes",
     "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: slak\n  policyTypes",
     "connector Deployment slack: no NetworkPolicy isolates its pods"),
    ("a connector's gRPC port open to every Switchboard pod", "deploy/kubernetes/base/jira.yaml",
     "              app.kubernetes.io/name: router\n", "              app.kubernetes.io/part-of: switchboard\n",
     "only the router's pods may call a connector"),
    ("a connector's gRPC port open to every peer", "deploy/kubernetes/base/database.yaml",
     "    - ports:\n        - port: metrics\n", "    - ports:\n        - port: 50000\n          endPort: 50100\n",
     "admits every peer to the gRPC port of database"),
    ("a misspelt Kubernetes field", "deploy/kubernetes/base/router.yaml",
     "            periodSeconds: 5\n", "            periodSecond: 5\n", "'periodSecond' was unexpected"),
    ("the router without its scrape port annotation", "deploy/kubernetes/base/router.yaml",
     '        prometheus.io/port: "8080"\n', "", "prometheus.io/port is None, metrics are on 8080"),
    ("Prometheus published beyond this machine", "compose.yaml",
     '"127.0.0.1:9090:9090"', '"9090:9090"', "beyond 127.0.0.1"),
    ("a connector Prometheus does not scrape", "deploy/prometheus/prometheus.yml",
     "names: [jira]", "names: [jirra]", "does not scrape jira:9090"),
    ("a root runtime image", "Dockerfile", "USER 10001:10001", "USER root", "does not switch to a non-root USER"),
    ("no cached dependency layer", "Dockerfile",
     "RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json\n", "",
     "dependencies are not built in their own layer"),
]


def copy_tree(dest: Path) -> None:
    for name in COPIED:
        src = WORKSPACE / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)


# Schema validation is slow, so only the case that needs it runs it.
VALIDATOR = WORKSPACE / ".tools" / "check-deploy-venv" / "bin" / "kubernetes-validate"
SCHEMA_CASE = "a misspelt Kubernetes field"


def run_check(root: Path, binaries: dict, schemas: bool = False) -> tuple[bool, str]:
    """check.py's checks on the files under `root`, in process (structural
    rendering: the mistakes are in the sources, which both renderers read)."""
    check.use_deploy_root(root)
    check.SCHEMA_VALIDATOR = str(VALIDATOR) if schemas else None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ok = check.run_all(binaries, None, None)
    return ok, "\n".join("          " + line for line in out.getvalue().splitlines())


def main() -> int:
    binaries = check.workspace_binaries()
    problems = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="check-deploy-selftest-") as tmp:
        clean = Path(tmp) / "clean"
        clean.mkdir()
        copy_tree(clean)
        ok, output = run_check(clean, binaries)
        if not ok:
            problems.append(f"the unaltered copy fails:\n{output}")
        for i, (what, rel, old, new, expected) in enumerate(CASES):
            root = Path(tmp) / f"case{i}"
            root.mkdir()
            copy_tree(root)
            if what == SCHEMA_CASE and not VALIDATOR.exists():
                skipped.append(what)
                continue
            path = root / rel
            text = path.read_text(encoding="utf-8")
            if old not in text:
                problems.append(f"{what}: the text to alter is no longer in {rel} (update the case): {old!r}")
                continue
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
            ok, output = run_check(root, binaries, schemas=what == SCHEMA_CASE)
            if ok or expected not in output:
                problems.append(f"{what} ({rel}) went unnoticed: expected {expected!r} and a failure; got:\n{output}")
    if problems:
        print("FAIL  self-test: check.py misses mistakes")
        for p in problems:
            print(f"        - {p}")
        return 1
    caught = len(CASES) - len(skipped)
    note = f" (not tried, kubernetes-validate missing: {skipped})" if skipped else ""
    print(f"PASS  self-test: check.py catches all {caught} deliberate mistakes tried, and passes the files as they are{note}")
    return 0


# The dummy connector: listed, with a crate whose README documents its settings.
ECHO_ENTRY = """
[[connectors]]
name = "echo"
binary = "echo-connector"
service = "echo"
port = 50055
required = true
secrets = ["ECHO_TOKEN"]
description = "Echoes what it is sent"
"""
ECHO_README = """# echo-connector

| Variable | Default | Meaning |
|---|---|---|
| `ECHO_GREETING` | `hello` | Word put before every echo |
| `ECHO_TOKEN` | unset | Token the echo service checks |
"""


def echo_binary(binaries: dict, crate: Path, extra: set[str]) -> "check.Binary":
    """A connector-kit binary reading what every deployed connector reads, plus its own."""
    connectors = [b for b in binaries.values() if b.uses_kit and b.connector_name]
    shared = set.intersection(*(b.env_vars for b in connectors))
    kit = [d for d in connectors[0].crate_dirs if d.name == "kit"]
    return check.Binary(name="echo-connector", package="echo-connector", crate_dirs=[crate, *kit],
                        env_vars=shared | {"ECHO_GREETING", "ECHO_TOKEN"} | extra, uses_kit=True,
                        connector_name="echo")


def add_echo(root: Path, binaries: dict, extra: set[str] = frozenset()) -> dict:
    copy_tree(root)
    crate = root / "connectors" / "echo"
    crate.mkdir(parents=True)
    (crate / "README.md").write_text(ECHO_README, encoding="utf-8")
    listed = root / "deploy" / "connectors.toml"
    listed.write_text(listed.read_text(encoding="utf-8") + ECHO_ENTRY, encoding="utf-8")
    return binaries | {"echo-connector": echo_binary(binaries, crate, set(extra))}


def run_sync(root: Path, binaries: dict, check_only: bool) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = sync.run(root, binaries, check_only)
    return code, out.getvalue()


def kept_in_order(before: str, after: str) -> bool:
    """Every line of `before` is still in `after`, in the same order (but the
    router's SWITCHBOARD_CONNECTORS, which adding a connector changes)."""
    lines = iter(after.splitlines())
    return all(any(line == other for other in lines) for line in before.splitlines()
               if "SWITCHBOARD_CONNECTORS" not in line)


def as_documented(binaries: dict) -> dict:
    """The binaries reading only what .env.example documents: the copy starts in
    line whatever settings were added to the sources since the last sync (those
    are the real files' --check's to report), so this self-test judges only
    what adding a connector does."""
    assigned, commented = check.env_example_vars()
    known = set(assigned) | commented
    return {n: dataclasses.replace(b, env_vars=b.env_vars & known) for n, b in binaries.items()}


# Entries deploy/connectors.toml must refuse (a path, a tool prefix, a port, YAML).
BAD_ENTRIES = [
    ('service = "../../etc"', "service '../../etc' must match"),
    ('name = "code-analysis"', "name 'code-analysis' must match"),
    ("port = 0", "port 0 is not 1 to 65535"),
    ("port = 50051", "two connectors share port ['50051']"),
    ('description = """two\nlines"""', "description must be one line"),
    ('secrets = ["ECHO TOKEN"]', "are not variable names"),
    ('replicas = 3', "unknown keys ['replicas']"),
]


def refused_entries() -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory(prefix="sync-deploy-entries-") as tmp:
        root = Path(tmp)
        (root / "deploy").mkdir()
        base = (WORKSPACE / "deploy" / "connectors.toml").read_text(encoding="utf-8")
        for line, expected in BAD_ENTRIES:
            key = line.split(" ", 1)[0]
            entry = "\n".join(l for l in ECHO_ENTRY.splitlines() if not l.startswith(key + " ")) + "\n" + line + "\n"
            (root / "deploy" / "connectors.toml").write_text(base + entry, encoding="utf-8")
            try:
                sync.load_connectors(root)
                problems.append(f"deploy/connectors.toml accepted {line!r}")
            except sync.SyncError as e:
                if expected not in str(e):
                    problems.append(f"{line!r} refused, but the error does not say {expected!r}: {e}")
    return problems


def sync_selftest(binaries: dict) -> list[str]:
    problems = refused_entries()
    check.use_deploy_root(WORKSPACE)
    binaries = as_documented(binaries)
    with tempfile.TemporaryDirectory(prefix="sync-deploy-selftest-") as tmp:
        root = Path(tmp) / "added"
        root.mkdir()
        with_echo = add_echo(root, binaries)
        before = {p: (root / p).read_text(encoding="utf-8") for p in
                  ("compose.yaml", ".env.example", "deploy/kubernetes/base/kustomization.yaml",
                   "deploy/kubernetes/base/config/router.env")}
        code, output = run_sync(root, with_echo, False)
        if code != 0:
            return [f"sync-deploy failed on a copy with a connector added:\n{output}"]
        code, output = run_sync(root, with_echo, True)
        if code != 0:
            problems.append(f"sync-deploy --check fails right after sync-deploy (not idempotent):\n{output}")
        ok, output = run_check(root, with_echo, schemas=VALIDATOR.exists())
        if not ok:
            problems.append(f"check.py fails the copy after sync-deploy added a connector:\n{output}")
        after = {p: (root / p).read_text(encoding="utf-8") for p in before}
        for p in before:
            if not kept_in_order(before[p], after[p]):
                problems.append(f"sync-deploy rewrote lines of {p} instead of only adding some")
        compose = check.yaml.safe_load(check.interpolate_defaults(after["compose.yaml"]))["services"]
        router_env = compose["router"]["environment"]
        expected = [
            (compose.get("echo", {}).get("build", {}).get("args", {}).get("BINARY") == "echo-connector",
             "compose.yaml has no service echo building echo-connector"),
            ("ECHO_GREETING" in (compose.get("echo", {}).get("environment") or {}),
             "compose.yaml does not pass ECHO_GREETING through to echo"),
            ("echo=http://echo:50055" in router_env["SWITCHBOARD_CONNECTORS"].split(","),
             "the router's SWITCHBOARD_CONNECTORS in compose.yaml does not dial echo"),
            (compose["router"].get("depends_on", {}).get("echo") == {"condition": "service_healthy"},
             "the router does not wait for echo (required = true) to be healthy"),
            ((root / "deploy/kubernetes/base/echo.yaml").is_file(), "no deploy/kubernetes/base/echo.yaml"),
            ("METRICS_ADDR" not in with_echo["echo-connector"].env_vars
             or 'prometheus.io/scrape: "true"' in (root / "deploy/kubernetes/base/echo.yaml").read_text()
             if (root / "deploy/kubernetes/base/echo.yaml").is_file() else False,
             "echo.yaml does not let Prometheus scrape the connector's METRICS_ADDR like the others"),
            ("LISTEN_ADDR=0.0.0.0:50055" in (root / "deploy/kubernetes/base/config/echo.env").read_text()
             if (root / "deploy/kubernetes/base/config/echo.env").is_file() else False,
             "no config/echo.env with LISTEN_ADDR=0.0.0.0:50055"),
            ("  - echo.yaml" in after["deploy/kubernetes/base/kustomization.yaml"]
             and "  - name: echo-config" in after["deploy/kubernetes/base/kustomization.yaml"]
             and "  - name: switchboard/echo-connector" in after["deploy/kubernetes/base/kustomization.yaml"],
             "kustomization.yaml does not list echo's manifest, ConfigMap and image"),
            ("echo=http://echo:50055" in after["deploy/kubernetes/base/config/router.env"],
             "config/router.env's SWITCHBOARD_CONNECTORS does not dial echo"),
            ("# Word put before every echo. Default hello.\nECHO_GREETING=\n" in after[".env.example"],
             ".env.example has no ECHO_GREETING entry with the README's description and default"),
            ("(secret)" in after[".env.example"].split("ECHO_TOKEN=")[0].rsplit("\n#", 1)[-1]
             if "ECHO_TOKEN=" in after[".env.example"] else False,
             ".env.example does not mark ECHO_TOKEN, a listed secret, as secret"),
            ("(`echo-connector`)" in after[".env.example"], ".env.example has no section for echo-connector"),
        ]
        problems += [why for holds, why in expected if not holds]

        # `required` decides what the router's depends_on waits for.
        root = Path(tmp) / "required"
        root.mkdir()
        copy_tree(root)
        listed = root / "deploy" / "connectors.toml"
        text = listed.read_text(encoding="utf-8")
        flipped = re.sub(r'(service = "jira"\nport = \d+\nrequired = )false', r"\1true", text)
        if flipped == text:
            problems.append("the jira entry of deploy/connectors.toml is no longer `required = false` (update the self-test)")
        else:
            listed.write_text(flipped, encoding="utf-8")
            code, output = run_sync(root, binaries, False)
            compose = check.yaml.safe_load(check.interpolate_defaults((root / "compose.yaml").read_text()))
            if code != 0 or compose["services"]["router"]["depends_on"].get("jira") != {"condition": "service_healthy"}:
                problems.append(f"required = true did not make the router wait for jira to be healthy:\n{output}")

        # A setting no table describes stops the sync, naming it and where to document it.
        root = Path(tmp) / "undocumented"
        root.mkdir()
        with_echo = add_echo(root, binaries, {"ECHO_UNDOCUMENTED"})
        code, output = run_sync(root, with_echo, False)
        if code == 0 or "ECHO_UNDOCUMENTED" not in output or "connectors/echo/README.md" not in output:
            problems.append(f"an undocumented variable did not stop sync-deploy naming it and "
                            f"connectors/echo/README.md:\n{output}")
        for name in (".env.example", "compose.yaml"):
            if "ECHO_UNDOCUMENTED" in (root / name).read_text(encoding="utf-8"):
                problems.append(f"sync-deploy wrote the undocumented variable into {name}")
        if "ECHO_GREETING=" not in (root / ".env.example").read_text(encoding="utf-8"):
            problems.append("sync-deploy left out the documented variables too when one was undocumented")
    return problems


def run_sync_selftest(binaries: dict) -> int:
    problems = sync_selftest(binaries)
    if problems:
        print("FAIL  self-test: a connector added to deploy/connectors.toml is not deployed by sync-deploy")
        for p in problems:
            print(f"        - {p}")
        return 1
    print("PASS  self-test: a connector added to deploy/connectors.toml is deployed by sync-deploy "
          "(compose, Kubernetes, .env.example) and check.py passes the result; an undocumented setting stops it")
    return 0


if __name__ == "__main__":
    code = main()
    sys.exit(run_sync_selftest(check.workspace_binaries()) or code)
