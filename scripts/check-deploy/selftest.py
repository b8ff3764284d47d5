#!/usr/bin/env python3
"""Proves that check.py catches mistakes: each case copies the deployment files
to a temporary directory, makes one deliberate mistake there, and expects
check.py to fail naming it. The unaltered copy must pass.

    python3 scripts/check-deploy/selftest.py

Prints one line; exits 1 when a mistake went unnoticed or the copy failed.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True
import check  # noqa: E402
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
    ("a misspelt Kubernetes field", "deploy/kubernetes/base/router.yaml",
     "            periodSeconds: 5\n", "            periodSecond: 5\n", "'periodSecond' was unexpected"),
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


if __name__ == "__main__":
    sys.exit(main())
