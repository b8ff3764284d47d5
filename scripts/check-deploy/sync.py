"""Brings the deployment files in line with deploy/connectors.toml and with what
the binaries read. Run as `scripts/sync-deploy [--check]` (or `make deploy-sync`).

From the list of deployed connectors (deploy/connectors.toml) and the variables
each binary reads (found by check.py in the Rust sources), it updates:

- compose.yaml: a service block per new connector (the pattern of the others),
  the router's SWITCHBOARD_CONNECTORS and depends_on (service_healthy for a
  `required` connector, service_started otherwise), and every variable each
  deployed binary reads passed through from .env as `NAME: ${NAME:-}` (except
  those .env.example documents commented out, `# NAME=`: set per service or
  not meant for .env);
- deploy/kubernetes/base: a manifest and config/<service>.env per new
  connector, the kustomization's resources, configMapGenerator and images
  lists, and SWITCHBOARD_CONNECTORS in config/router.env;
- deploy/prometheus/prometheus.yml (whole, generated): the scrape jobs of
  compose's `observability` profile, the router and every connector;
- .env.example: an entry for every variable a binary reads, with the
  description and default from the binary's own settings table (a Markdown
  table row `| \\`NAME\\` | default | description |` in a crate README or a
  module doc of its sources). A variable no table describes is an error naming
  it, not an empty entry.

Edits are textual and targeted: lines are inserted into the right block and
nothing else is rewritten, so comments and values stay as they are. Existing
entries are never changed. `--check` writes nothing and fails when a file would
change.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import check

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SERVICE_RE = re.compile(r"^[a-z][a-z0-9-]*$")
VAR_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
LIST_FILE = Path("deploy") / "connectors.toml"
K8S_BASE = Path("deploy") / "kubernetes" / "base"


class SyncError(Exception):
    """The list or the files cannot be brought in line; the message says why."""


@dataclass
class Connector:
    """One `[[connectors]]` entry of deploy/connectors.toml."""

    name: str
    binary: str
    service: str
    port: int
    required: bool
    secrets: list[str] = field(default_factory=list)
    description: str = ""


def load_connectors(root: Path) -> list[Connector]:
    path = root / LIST_FILE
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SyncError(f"{LIST_FILE}: {e}") from e
    entries = doc.get("connectors")
    if not isinstance(entries, list) or not entries:
        raise SyncError(f"{LIST_FILE}: no [[connectors]] entry")
    out: list[Connector] = []
    fields = {"name": str, "binary": str, "service": str, "port": int, "required": bool,
              "secrets": list, "description": str}
    for i, entry in enumerate(entries):
        where = f"{LIST_FILE}: connector #{i + 1}"
        unknown = sorted(set(entry) - set(fields))
        if unknown:
            raise SyncError(f"{where}: unknown keys {unknown} (known: {sorted(fields)})")
        for key, kind in fields.items():
            if key not in entry:
                raise SyncError(f"{where}: missing `{key}`")
            if not isinstance(entry[key], kind) or (kind is int and isinstance(entry[key], bool)):
                raise SyncError(f"{where}: `{key}` must be a {kind.__name__}")
        c = Connector(**entry)
        if not NAME_RE.match(c.name):
            raise SyncError(f"{where}: name {c.name!r} must match {NAME_RE.pattern} (it is a tool prefix)")
        if not SERVICE_RE.match(c.service):
            raise SyncError(f"{where}: service {c.service!r} must match {SERVICE_RE.pattern} (a DNS label)")
        if not SERVICE_RE.match(c.binary):
            raise SyncError(f"{where}: binary {c.binary!r} must match {SERVICE_RE.pattern}")
        if not 1 <= c.port <= 65535:
            raise SyncError(f"{where}: port {c.port} is not 1 to 65535")
        bad = [s for s in c.secrets if not isinstance(s, str) or not VAR_RE.match(s)]
        if bad:
            raise SyncError(f"{where}: secrets {bad} are not variable names")
        if "\n" in c.description:
            raise SyncError(f"{where}: description must be one line")
        out.append(c)
    for key in ("name", "binary", "service", "port"):
        values = [getattr(c, key) for c in out]
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise SyncError(f"{LIST_FILE}: two connectors share {key} {dupes}")
    return out


# ---------------------------------------------------------------------------
# Descriptions from the binaries' settings tables
# ---------------------------------------------------------------------------

DOC_PREFIX = re.compile(r"^\s*(?://[!/]\s?)?")
SEPARATOR = re.compile(r"^\|[\s:|-]+\|?$")


def table_rows(text: str) -> list[tuple[list[str], list[str]]]:
    """(header cells, row cells) of every Markdown table row in `text`, in
    Markdown or in `//!` / `///` doc comments."""
    rows = []
    header: list[str] | None = None
    previous: list[str] | None = None
    for raw in text.splitlines():
        line = DOC_PREFIX.sub("", raw, count=1).strip()
        if not line.startswith("|"):
            header = previous = None
            continue
        if SEPARATOR.match(line):
            header = previous
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is not None:
            rows.append((header, cells))
        previous = cells
    return rows


def clean(cell: str) -> str:
    return re.sub(r"\s+", " ", cell.replace("**", "").replace("`", "")).strip()


def describe_from(text: str, name: str) -> tuple[str, str] | None:
    """(description, default) of `name` from a settings table row naming it alone."""
    for header, cells in table_rows(text):
        hits = [i for i, c in enumerate(cells) if re.search(rf"`{re.escape(name)}`", c)]
        if len(hits) != 1:
            continue
        col = hits[0]
        if len(re.findall(r"`[A-Z][A-Z0-9_]+`", cells[col])) > 1:
            continue  # `A`, `B`: a shared row, not this variable's own
        default_col = next((i for i, h in enumerate(header) if "default" in h.lower()), None)
        default = clean(cells[default_col]) if default_col is not None and default_col < len(cells) else ""
        if col == 0:
            rest = [clean(c) for i, c in enumerate(cells) if i not in (col, default_col) and c.strip()]
            description = " ".join(rest)
        else:
            description = clean(cells[0])
        if description:
            return description, default
    return None


def doc_sources(binary: check.Binary, root: Path) -> list[Path]:
    """Where a binary's settings are documented: its crates' READMEs and non-test
    sources (its own crate first), then the workspace README."""
    paths: list[Path] = []
    for crate in binary.crate_dirs:
        if (crate / "README.md").is_file():
            paths.append(crate / "README.md")
        src = crate / "src"
        if src.is_dir():
            paths += [p for p in sorted(src.rglob("*.rs")) if not check.is_test_source(p.relative_to(src))]
    for base in (root, check.WORKSPACE):
        if (base / "README.md").is_file() and base / "README.md" not in paths:
            paths.append(base / "README.md")
    return paths


def describe(name: str, readers: list[check.Binary], root: Path) -> tuple[str, str] | None:
    for binary in readers:
        for path in doc_sources(binary, root):
            text = path.read_text(encoding="utf-8")
            if f"`{name}`" in text and (found := describe_from(text, name)):
                return found
    return None


def reading_crate(name: str, readers: list[check.Binary]) -> Path:
    """The crate whose own sources read `name` (a shared crate such as
    connector-kit for a variable every connector reads)."""
    for binary in readers:
        for crate in binary.crate_dirs:
            if name in check.env_vars_of(check.rust_sources(crate)):
                return crate
    return readers[0].crate_dirs[0]


def rel(path: Path, root: Path) -> str:
    for base in (root, check.WORKSPACE):
        try:
            return str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


# ---------------------------------------------------------------------------
# Textual edits
# ---------------------------------------------------------------------------


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the last line of the block opened at `start` whose content is
    indented deeper than `indent` (blank lines inside are kept; trailing blank
    lines and trailing comments at the block's own indent or less are not)."""
    end = start + 1
    last = start
    while end < len(lines):
        line = lines[end]
        if line.strip():
            if indent_of(line) <= indent:
                break
            last = end
        end += 1
    return last + 1


def find_line(lines: list[str], pattern: str, start: int = 0, stop: int | None = None) -> int | None:
    rx = re.compile(pattern)
    for i in range(start, len(lines) if stop is None else stop):
        if rx.match(lines[i]):
            return i
    return None


def compose_service_span(lines: list[str], service: str) -> tuple[int, int] | None:
    top = find_line(lines, r"^services:\s*$")
    if top is None:
        raise SyncError("compose.yaml: no top-level `services:`")
    end = find_line(lines, r"^\S", top + 1) or len(lines)
    at = find_line(lines, rf"^  {re.escape(service)}:\s*$", top + 1, end)
    if at is None:
        return None
    return at, block_end(lines, at, 2)


def connectors_value(connectors: list[Connector]) -> str:
    return ",".join(f"{c.name}=http://{c.service}:{c.port}" for c in connectors)


def new_compose_service(c: Connector, merge_line: str) -> list[str]:
    return [
        "",
        f"  # {c.description}",
        f"  {c.service}:",
        "    build:",
        "      <<: *build",
        "      args:",
        f"        BINARY: {c.binary}",
        f"    image: switchboard/{c.binary}:${{SWITCHBOARD_TAG:-dev}}",
        "    restart: *restart",
        "    environment:",
        merge_line,
        f"      LISTEN_ADDR: 0.0.0.0:{c.port}",
        "    healthcheck:",
        f'      test: ["CMD", "{c.binary}", "healthcheck"]',
        "      <<: *health-timing",
        "    networks:",
        "      - switchboard",
    ]


def sync_compose(text: str, connectors: list[Connector], binaries: dict[str, check.Binary],
                 router_binary: str, not_passed: set[str]) -> str:
    lines = text.split("\n")
    services = (yaml.load(check.interpolate_defaults(text), Loader=check._Loader) or {}).get("services", {})
    known = {c.service: c for c in connectors}

    # New connector services, after the last connector service already there.
    merge_line = "      <<: [*logging-env, *connector-env]"
    for c in connectors:
        span = compose_service_span(lines, c.service)
        if span:
            env_at = find_line(lines, r"^    environment:\s*$", span[0], span[1])
            merge = env_at is not None and find_line(lines, r"^      <<: ", env_at, span[1])
            if merge:
                merge_line = lines[merge]
            break
    for c in connectors:
        if c.service in services:
            continue
        after = None
        for other in connectors:
            if other.service in services and (span := compose_service_span(lines, other.service)):
                after = span[1]
        if after is None:
            span = compose_service_span(lines, next(n for n, s in services.items()
                                                   if (s.get("build") or {}).get("args", {}).get("BINARY") == router_binary))
            after = span[1]
        lines[after:after] = new_compose_service(c, merge_line)
        services[c.service] = {"build": {"args": {"BINARY": c.binary}}}

    # What every connector reads and none is passed yet goes into the shared
    # connector anchor (`x-connector-env: &connector-env`), when there is one.
    anchor = find_line(lines, r"^x-connector-env:\s*&")
    if anchor is not None:
        text = "\n".join(lines)
        services = (yaml.load(check.interpolate_defaults(text), Loader=check._Loader) or {}).get("services", {})
        kit = [c for c in connectors if c.binary in binaries]
        common = set.intersection(*(binaries[c.binary].env_vars for c in kit)) if kit else set()
        for c in kit:
            env = (services.get(c.service) or {}).get("environment") or {}
            common -= set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        common -= not_passed
        if common:
            end = block_end(lines, anchor, 0)
            lines[end:end] = [f"  {n}: ${{{n}:-}}" for n in sorted(common)]

    text = "\n".join(lines)
    services = (yaml.load(check.interpolate_defaults(text), Loader=check._Loader) or {}).get("services", {})
    router_service = None
    for name, svc in services.items():
        b = ((svc.get("build") or {}).get("args") or {}).get("BINARY")
        if b not in binaries:
            continue
        if b == router_binary:
            router_service = name
        env = svc.get("environment") or {}
        keys = set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        missing = sorted(binaries[b].env_vars - keys - not_passed)
        if missing:
            span = compose_service_span(lines, name)
            env_at = find_line(lines, r"^    environment:\s*$", span[0], span[1])
            if env_at is None:
                raise SyncError(f"compose.yaml: service {name} has no `environment:` block to add {missing} to")
            end = block_end(lines, env_at, 4)
            lines[end:end] = [f"      {n}: ${{{n}:-}}" for n in missing]
    if router_service is None:
        raise SyncError(f"compose.yaml: no service builds the router ({router_binary})")

    # The router: SWITCHBOARD_CONNECTORS and depends_on.
    span = compose_service_span(lines, router_service)
    at = find_line(lines, r"^      SWITCHBOARD_CONNECTORS:", span[0], span[1])
    value = connectors_value(connectors)
    if at is None:
        env_at = find_line(lines, r"^    environment:\s*$", span[0], span[1])
        if env_at is None:
            raise SyncError(f"compose.yaml: service {router_service} has no `environment:` block")
        end = block_end(lines, env_at, 4)
        lines.insert(end, f"      SWITCHBOARD_CONNECTORS: {value}")
    else:
        lines[at] = f"      SWITCHBOARD_CONNECTORS: {value}"
    span = compose_service_span(lines, router_service)
    dep_at = find_line(lines, r"^    depends_on:\s*$", span[0], span[1])
    deps = services[router_service].get("depends_on") or {}
    if isinstance(deps, list):
        raise SyncError(f"compose.yaml: service {router_service}'s depends_on is a list; make it a mapping with conditions")
    add = []
    for c in connectors:
        cond = "service_healthy" if c.required else "service_started"
        if c.service not in deps:
            add += [f"      {c.service}:", f"        condition: {cond}"]
        elif (deps[c.service] or {}).get("condition") != cond and dep_at is not None:
            # `required` changed: only the condition line is rewritten.
            end = block_end(lines, dep_at, 4)
            at = find_line(lines, rf"^      {re.escape(c.service)}:\s*$", dep_at, end)
            cond_at = at is not None and find_line(lines, r"^        condition:", at + 1, block_end(lines, at, 6))
            if not cond_at:
                raise SyncError(f"compose.yaml: the router's depends_on {c.service} has no `condition:` line")
            lines[cond_at] = f"        condition: {cond}"
    if add:
        if dep_at is None:
            lines[span[1]:span[1]] = ["    depends_on:"] + add
        else:
            end = block_end(lines, dep_at, 4)
            lines[end:end] = add
    stale = sorted(d for d in deps if d not in known and d in services
                   and (((services[d].get("build") or {}).get("args") or {}).get("BINARY") in binaries))
    if stale:
        raise SyncError(f"compose.yaml: the router depends on {stale}, which deploy/connectors.toml does not list; "
                        f"remove their service blocks and depends_on entries by hand")
    return "\n".join(lines)


METRICS_PORT = 9090
PROMETHEUS_CONFIG = Path("deploy") / "prometheus" / "prometheus.yml"


def prometheus_config(connectors: list[Connector], router_service: str, router_port: int,
                      metrics: dict[str, bool]) -> str:
    """The whole Prometheus configuration of compose's `observability` profile:
    the router's /metrics on its HTTP port, and every connector that serves
    METRICS_ADDR on every replica (compose's DNS name of a service resolves to
    all of them). Job names are the router's names of the connectors, the
    `connector` label of the router's own metrics."""
    jobs = [f"""  # The router: /metrics on its HTTP listener.
  - job_name: router
    metrics_path: /metrics
    static_configs:
      - targets: ["{router_service}:{router_port}"]"""]
    for c in connectors:
        if not metrics.get(c.name):
            continue
        jobs.append(f"""  # {c.binary}: METRICS_ADDR of every replica of the compose service {c.service}.
  - job_name: {c.name}
    metrics_path: /metrics
    dns_sd_configs:
      - names: [{c.service}]
        type: A
        port: {METRICS_PORT}
        refresh_interval: 30s""")
    body = "\n".join(jobs)
    return f"""# Prometheus of compose's `observability` profile. Generated by `make deploy-sync`
# (scripts/sync-deploy) from deploy/connectors.toml: edit that list, or the
# generator, not this file. Checked by `promtool check config` (scripts/check-deploy.sh).
global:
  scrape_interval: 15s
  scrape_timeout: 10s
  evaluation_interval: 15s

scrape_configs:
{body}
"""


def network_policy(c: Connector, metrics: bool) -> str:
    """The connector's NetworkPolicy: its gRPC port admits only the router's
    pods (and, when it serves metrics, its metrics port any scraper)."""
    metrics_rule = ("""    # Metrics (no credentials in them) for a Prometheus in any namespace.
    - ports:
        - port: metrics
          protocol: TCP
""" if metrics else "")
    return f"""# Only the router may call {c.service}: the connector holds the service's
# credentials and serves whoever reaches its gRPC port, while clients are
# authenticated and authorized by the router in front of it. Enforced by any
# network plugin that implements NetworkPolicy (Calico, Cilium, ...); kubelet
# probes come from the node and always pass.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {c.service}
  labels:
    app.kubernetes.io/name: {c.service}
    app.kubernetes.io/component: connector
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {c.service}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: router
      ports:
        - port: grpc
          protocol: TCP
{metrics_rule}"""


def new_manifest(c: Connector, metrics: bool) -> str:
    """The connector's Deployment, headless Service, autoscaler and
    NetworkPolicy, as the others are (and, when it serves metrics, their
    Prometheus port and annotations)."""
    annotations = (f"""      # Prometheus scrapes METRICS_ADDR (set in config/{c.service}.env).
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "{METRICS_PORT}"
        prometheus.io/path: /metrics
""" if metrics else "")
    metrics_port = (f"""            - name: metrics
              containerPort: {METRICS_PORT}
              protocol: TCP
""" if metrics else "")
    secret = (f"""            - secretRef:
                name: {c.service}-secrets
                optional: true
""" if c.secrets else "")
    labels = f"""    app.kubernetes.io/name: {c.service}
    app.kubernetes.io/component: connector"""
    return f"""# {c.binary}: {c.description}.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {c.service}
  labels:
{labels}
spec:
  # No `replicas`: the HorizontalPodAutoscaler below owns the count (an apply
  # would otherwise reset it).
  selector:
    matchLabels:
      app.kubernetes.io/name: {c.service}
  template:
    metadata:
      labels:
    {labels.replace(chr(10), chr(10) + '    ')}
{annotations}    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {c.binary}
          image: switchboard/{c.binary}
          imagePullPolicy: IfNotPresent
          ports:
            - name: grpc
              containerPort: {c.port}
              protocol: TCP
{metrics_port}          envFrom:
            - configMapRef:
                name: {c.service}-config
{secret}          # Ready = grpc.health.v1 SERVING: only then does the headless Service
          # publish the pod's address to the router.
          readinessProbe:
            grpc:
              port: {c.port}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          # Alive = the gRPC server answers grpc.health.v1 at all. NOT_SERVING
          # (unconfigured, upstream down) is alive: restarting would not fix it.
          # `{c.binary} healthcheck` exits 0 SERVING, 1 NOT_SERVING, 2 unreachable.
          livenessProbe:
            exec:
              command: ["/bin/sh", "-c", "{c.binary} healthcheck; [ $? -ne 2 ]"]
            initialDelaySeconds: 10
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          resources:
            requests:
              cpu: 50m
              memory: 64Mi
            limits:
              cpu: "500m"
              memory: 256Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
---
# Headless: `{c.service}` resolves to the address of every ready pod, so the router
# can spread calls over all replicas (it dials http://{c.service}:{c.port}).
apiVersion: v1
kind: Service
metadata:
  name: {c.service}
  labels:
{labels}
spec:
  clusterIP: None
  selector:
    app.kubernetes.io/name: {c.service}
  ports:
    - name: grpc
      port: {c.port}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {c.service}
  labels:
{labels}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {c.service}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 70
---
""" + network_policy(c, metrics)


def append_to_list(lines: list[str], key: str, items: list[str]) -> None:
    at = find_line(lines, rf"^{re.escape(key)}:\s*$")
    if at is None:
        lines += [f"{key}:"] + items
        return
    end = block_end(lines, at, 0)
    lines[end:end] = items


def sync_kustomization(text: str, connectors: list[Connector]) -> str:
    doc = yaml.load(text, Loader=check._Loader) or {}
    lines = text.split("\n")
    resources = set(doc.get("resources") or [])
    generators = {g.get("name") for g in doc.get("configMapGenerator") or []}
    images = doc.get("images") or []
    image_names = {i.get("name") for i in images}
    tag = next((i.get("newTag") for i in images if i.get("newTag")), "dev")
    add_res = [f"  - {c.service}.yaml" for c in connectors if f"{c.service}.yaml" not in resources]
    add_gen = [line for c in connectors if f"{c.service}-config" not in generators
               for line in (f"  - name: {c.service}-config", f"    envs: [config/{c.service}.env]")]
    add_img = [line for c in connectors if f"switchboard/{c.binary}" not in image_names
               for line in (f"  - name: switchboard/{c.binary}", f"    newTag: {tag}")]
    for key, items in (("resources", add_res), ("configMapGenerator", add_gen), ("images", add_img)):
        if items:
            append_to_list(lines, key, items)
    return "\n".join(lines)


def sync_router_env(text: str, connectors: list[Connector]) -> str:
    value = f"SWITCHBOARD_CONNECTORS={connectors_value(connectors)}"
    if re.search(r"^SWITCHBOARD_CONNECTORS=.*$", text, re.M):
        return re.sub(r"^SWITCHBOARD_CONNECTORS=.*$", lambda _: value, text, count=1, flags=re.M)
    return text.rstrip("\n") + "\n" + value + "\n"


# ---------------------------------------------------------------------------
# .env.example
# ---------------------------------------------------------------------------

RULE = re.compile(r"^# -{20,}\s*$")


def env_sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """(header text, first line after the header, end) of each `# ---` section."""
    rules = [i for i, l in enumerate(lines) if RULE.match(l)]
    starts = []
    i = 0
    while i + 1 < len(rules):
        starts.append((rules[i], rules[i + 1]))
        i += 2
    out = []
    for n, (a, b) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        out.append((" ".join(l.lstrip("# ") for l in lines[a + 1:b]), b + 1, end))
    return out


def entry_lines(name: str, description: str, default: str, secret: bool) -> list[str]:
    text = description.rstrip(".")
    if secret:
        text += " (secret)"
    text += "."
    if default and default not in ("-", "—"):
        # Kept on one line: "Default 64 MiB." split as "64 / MiB." reads badly.
        text += " " + f"Default {default}".replace(" ", "\0") + ("" if default.endswith(".") else ".")
    lines = textwrap.wrap(text, width=80, initial_indent="# ", subsequent_indent="# ",
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace("\0", " ") for line in lines] + [f"{name}="]


def sync_env_example(text: str, root: Path, deployed: list[check.Binary], connectors: list[Connector],
                     problems: list[str], undocumented: set[str]) -> str:
    lines = text.split("\n")
    assigned: set[str] = set()
    documented: set[str] = set()
    for line in lines:
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=", line):
            assigned.add(m.group(1))
        elif m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=\s*$", line):
            documented.add(m.group(1))
    documented |= assigned
    secrets = {s for c in connectors for s in c.secrets}
    readers: dict[str, list[check.Binary]] = {}
    for b in deployed:
        for v in sorted(b.env_vars):
            readers.setdefault(v, []).append(b)
    for name in sorted(readers):
        if name in documented:
            continue
        found = describe(name, readers[name], root)
        if found is None:
            undocumented.add(name)
            where = rel(reading_crate(name, readers[name]) / "README.md", root)
            problems.append(
                f"{name} (read by {', '.join(b.name for b in readers[name])}) is described in no settings table: "
                f"add a row `| `{name}` | <default> | <what it does> |` to the settings table of {where} "
                f"(or of the module doc of the source that reads it), then run `make deploy-sync`")
            continue
        description, default = found
        sections = env_sections(lines)
        if len(readers[name]) > 1:
            section = next((s for s in sections if "every binary" in s[0].lower()
                            or "every connector" in s[0].lower()), None)
        else:
            section = next((s for s in sections if f"`{readers[name][0].name}`" in s[0]), None)
        if section is None:
            b = readers[name][0]
            c = next((c for c in connectors if c.binary == b.name), None)
            title = c.description if c else b.name
            lines = lines[:len(lines) - (1 if lines and lines[-1] == "" else 0)]
            lines += ["", "# " + "-" * 75, f"# {title} (`{b.name}`).", "# " + "-" * 75, ""]
            section = env_sections(lines)[-1]
        end = section[2]
        while end > section[1] and not lines[end - 1].strip():
            end -= 1
        lines[end:end] = entry_lines(name, description, default, name in secrets)
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def compose_router_binary(text: str, binaries: dict[str, check.Binary]) -> str:
    services = (yaml.load(check.interpolate_defaults(text), Loader=check._Loader) or {}).get("services", {})
    routers = sorted({b for s in services.values()
                      if (b := ((s.get("build") or {}).get("args") or {}).get("BINARY")) in binaries
                      and not binaries[b].uses_kit})
    if len(routers) != 1:
        raise SyncError(f"compose.yaml: expected one service building the router (a binary not built on "
                        f"connector-kit), found {routers}")
    return routers[0]


def plan(root: Path, binaries: dict[str, check.Binary]) -> tuple[dict[Path, tuple[str | None, str]], list[str]]:
    """(text read, new text) of the files that change, and problems that stop the sync."""
    root = root.resolve()
    problems: list[str] = []
    connectors = load_connectors(root)
    for c in connectors:
        b = binaries.get(c.binary)
        if b is None:
            problems.append(f"{LIST_FILE}: connector {c.name}: binary {c.binary!r} is no [[bin]] target of the workspace")
        elif not b.uses_kit:
            problems.append(f"{LIST_FILE}: connector {c.name}: {c.binary} is not built on connector-kit")
        elif b.connector_name not in (None, c.name):
            problems.append(f"{LIST_FILE}: connector {c.name}: {c.binary} calls itself {b.connector_name!r} "
                            f"(ConnectorServer::new); the router's name must be the same")
        elif stray := sorted(set(c.secrets) - b.env_vars):
            problems.append(f"{LIST_FILE}: connector {c.name}: secrets {stray} are not read by {c.binary}")
    if problems:
        return {}, problems

    compose_path = root / "compose.yaml"
    env_path = root / ".env.example"
    base = root / K8S_BASE
    originals: dict[Path, str] = {}
    new: dict[Path, str] = {}

    def read(path: Path) -> str | None:
        if path not in originals:
            originals[path] = path.read_text(encoding="utf-8") if path.exists() else None
        return new.get(path, originals[path])

    compose_text = read(compose_path)
    router_binary = compose_router_binary(compose_text, binaries)
    deployed = [binaries[router_binary]] + [binaries[c.binary] for c in connectors]

    undocumented: set[str] = set()
    new[env_path] = sync_env_example(read(env_path), root, deployed, connectors, problems, undocumented)
    # Commented out in .env.example: set per service or not meant for .env.
    # Undocumented: not passed either (compose would interpolate a variable
    # .env.example does not explain) until its table row exists.
    not_passed = undocumented | {m.group(1) for l in new[env_path].split("\n")
                                 if (m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=\s*$", l))}
    new[compose_path] = sync_compose(compose_text, connectors, binaries, router_binary, not_passed)

    new[base / "kustomization.yaml"] = sync_kustomization(read(base / "kustomization.yaml"), connectors)
    for c in connectors:
        manifest = base / f"{c.service}.yaml"
        metrics = "METRICS_ADDR" in binaries[c.binary].env_vars
        if read(manifest) is None:
            new[manifest] = new_manifest(c, metrics)
        config = base / "config" / f"{c.service}.env"
        text = read(config)
        if text is None:
            new[config] = (f"LISTEN_ADDR=0.0.0.0:{c.port}\nRUST_LOG=info\nLOG_FORMAT=json\n"
                           + (f"METRICS_ADDR=0.0.0.0:{METRICS_PORT}\n" if metrics else ""))
        else:
            leaked = sorted(s for s in c.secrets if re.search(rf"^{s}=", text, re.M))
            if leaked:
                problems.append(f"{rel(config, root)} holds secrets {leaked}: they belong in the Secret {c.service}-secrets")
    services = (yaml.load(check.interpolate_defaults(new[compose_path]), Loader=check._Loader) or {}).get("services", {})
    router_service = next(n for n, s in services.items()
                          if ((s.get("build") or {}).get("args") or {}).get("BINARY") == router_binary)
    router_port = check.port_of(str(((services[router_service].get("environment") or {})
                                      .get("SWITCHBOARD_LISTEN", "")))) or 8080
    read(root / PROMETHEUS_CONFIG)
    new[root / PROMETHEUS_CONFIG] = prometheus_config(
        connectors, router_service, router_port,
        {c.name: "METRICS_ADDR" in binaries[c.binary].env_vars for c in connectors})
    router_env = base / "config" / "router.env"
    if (text := read(router_env)) is None:
        raise SyncError(f"{rel(router_env, root)} is missing")
    new[router_env] = sync_router_env(text, connectors)
    changed = {p: (originals.get(p), t) for p, t in new.items() if t != originals.get(p)}
    return changed, problems


def run(root: Path, binaries: dict[str, check.Binary], check_only: bool) -> int:
    """Prints what it did (or would do); 0 when the files are (now) in line."""
    try:
        changed, problems = plan(root, binaries)
    except (SyncError, OSError, yaml.YAMLError) as e:
        print(f"FAIL  sync-deploy: {e}")
        return 1
    names = sorted(rel(p, root.resolve()) for p in changed)
    if problems and (check_only or not changed):
        print("FAIL  sync-deploy: deploy/connectors.toml and the binaries' settings cannot be applied")
        for p in problems:
            print(f"        - {p}")
        return 1
    if check_only:
        if names:
            print(f"FAIL  sync-deploy --check: out of line with deploy/connectors.toml and the binaries' "
                  f"settings: {names}; run `make deploy-sync` (scripts/sync-deploy) and commit the result")
            return 1
        print("PASS  sync-deploy --check: compose, Kubernetes and .env.example follow deploy/connectors.toml "
              "and every variable the binaries read")
        return 0
    # Someone may edit these files meanwhile: write nothing planned on a stale copy.
    for path, (before, _) in changed.items():
        now = path.read_text(encoding="utf-8") if path.exists() else None
        if now != before:
            print(f"FAIL  sync-deploy: {rel(path, root.resolve())} changed while it was read; run it again")
            return 1
    for path, (_, text) in changed.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"sync-deploy: updated {names}" if names else "sync-deploy: everything already in line")
    if problems:
        print("FAIL  sync-deploy: what follows was left out; fix it and run it again")
        for p in problems:
            print(f"        - {p}")
        return 1
    return 0
