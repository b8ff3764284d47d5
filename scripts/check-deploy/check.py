#!/usr/bin/env python3
"""Checks the deployment files against the workspace they deploy.

Run by scripts/check-deploy.sh (which finds the tools); usable alone:

    python3 scripts/check-deploy/check.py [--compose-config FILE] [--kustomize CMD]

Everything compared here is derived from the sources, not listed twice:

- binaries: `cargo metadata` ([[bin]] targets and the workspace crates each one
  is built from);
- the environment variables a binary reads: its crates' non-test Rust sources
  (test-only files `tests.rs` and `tests/` folders, and `#[cfg(test)]` tails,
  are skipped; calls such
  as `env::flag("NAME", ...)`, `std::env::var("NAME")`, clap's `env = "NAME"`,
  helpers that take a variable name and read it, and RUST_LOG where the tracing
  `EnvFilter` reads its default variable);
- a connector's name (the router's tool prefix): `ConnectorServer::new("name", ...)`;
- which binaries have a `healthcheck` subcommand: those built on connector-kit.

Each check prints one line (PASS / FAIL / SKIP) and its problems; the exit code is
1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

try:  # libyaml when present: several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:
    from yaml import SafeLoader as _Loader

# The workspace (for `cargo metadata` and the Rust sources).
WORKSPACE = Path(__file__).resolve().parents[2]
IMAGE_REPOSITORY = "switchboard/"


def use_deploy_root(root: Path) -> None:
    """Where the deployment files are: the workspace, or a copy (self-test)."""
    global ROOT, COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE, K8S_DIR, K8S_TARGETS
    ROOT = root.resolve()
    COMPOSE_FILE = ROOT / "compose.yaml"
    ENV_EXAMPLE = ROOT / ".env.example"
    DOCKERFILE = ROOT / "Dockerfile"
    K8S_DIR = ROOT / "deploy" / "kubernetes"
    K8S_TARGETS = [K8S_DIR, K8S_DIR / "overlays" / "local"]


use_deploy_root(WORKSPACE)

failures: list[str] = []


def report(name: str, problems: list[str], detail: str = "") -> None:
    """Prints one summary line for a check, then its problems."""
    if problems:
        failures.append(name)
        print(f"FAIL  {name}")
        for p in problems:
            print(f"        - {p}")
    else:
        print(f"PASS  {name}{': ' + detail if detail else ''}")


def skip(name: str, why: str) -> None:
    print(f"SKIP  {name}: {why}")


# ---------------------------------------------------------------------------
# What the workspace builds and reads
# ---------------------------------------------------------------------------


@dataclass
class Binary:
    """One [[bin]] target and what it reads."""

    name: str
    package: str
    crate_dirs: list[Path]
    env_vars: set[str] = field(default_factory=set)
    uses_kit: bool = False
    connector_name: str | None = None


# The readers of connector-kit's `env` module, and std's.
ENV_READERS = {"var", "var_os", "string", "parse", "at_least_one", "flag", "seconds", "list"}
READ_CALL = re.compile(r"\b(?:(?:std::)?env::)?([a-z_][a-z0-9_]*)\(\s*\"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)\"")
CLAP_ENV = re.compile(r"\benv\s*=\s*\"([A-Z][A-Z0-9_]*)\"")
# A helper such as `fn token(name: &str) -> ... { match env::var(name) ...`.
HELPER = re.compile(r"\bfn ([a-z_][a-z0-9_]*)\(\s*name: &str\)[^{]*\{(.*?)\n\}", re.S)
CONNECTOR_NAME = re.compile(r"ConnectorServer::new\(\s*\"([^\"]+)\"")


def is_test_source(rel: Path) -> bool:
    """A test-only file under src/: `tests.rs`, or anything in a `tests/` folder."""
    return rel.name == "tests.rs" or "tests" in rel.parts[:-1]


def rust_sources(crate_dir: Path) -> list[str]:
    """The crate's non-test Rust sources (src/, without test-only files and
    without `#[cfg(test)]` tails)."""
    texts = []
    src = crate_dir / "src"
    for path in sorted(src.rglob("*.rs")):
        if is_test_source(path.relative_to(src)):
            continue
        text = path.read_text(encoding="utf-8")
        cut = text.find("#[cfg(test)]")
        texts.append(text if cut < 0 else text[:cut])
    return texts


def env_vars_of(texts: list[str]) -> set[str]:
    """Variable names the sources read (see the module docs)."""
    readers = set(ENV_READERS)
    for text in texts:
        for fn, body in HELPER.findall(text):
            if re.search(r"env::[a-z_]+\(\s*name\b", body):
                readers.add(fn)
    names: set[str] = set()
    for text in texts:
        for fn, name in READ_CALL.findall(text):
            if fn in readers:
                names.add(name)
        names.update(CLAP_ENV.findall(text))
        if "from_default_env" in text:
            names.add("RUST_LOG")  # tracing_subscriber::EnvFilter::DEFAULT_ENV
    return names


def workspace_binaries() -> dict[str, Binary]:
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=WORKSPACE, capture_output=True, text=True,
    )
    if out.returncode != 0:
        out = subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1"],
            cwd=WORKSPACE, capture_output=True, text=True, check=True,
        )
    meta = json.loads(out.stdout)
    packages = {p["name"]: p for p in meta["packages"]}
    binaries: dict[str, Binary] = {}
    for pkg in meta["packages"]:
        for target in pkg["targets"]:
            if "bin" not in target["kind"]:
                continue
            crate_dirs = [Path(pkg["manifest_path"]).parent]
            # Workspace crates it is built from (path dependencies, transitively).
            queue = [pkg]
            seen = {pkg["name"]}
            while queue:
                current = queue.pop()
                for dep in current["dependencies"]:
                    if dep.get("kind") in (None, "normal") and dep.get("path") and dep["name"] in packages:
                        if dep["name"] not in seen:
                            seen.add(dep["name"])
                            crate_dirs.append(Path(dep["path"]))
                            queue.append(packages[dep["name"]])
            texts = [t for d in crate_dirs for t in rust_sources(d)]
            binary = Binary(
                name=target["name"],
                package=pkg["name"],
                crate_dirs=crate_dirs,
                env_vars=env_vars_of(texts),
                uses_kit="connector-kit" in seen,
            )
            own = rust_sources(crate_dirs[0])
            names = {n for t in own for n in CONNECTOR_NAME.findall(t)}
            if len(names) == 1:
                binary.connector_name = names.pop()
            binaries[binary.name] = binary
    return binaries


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def port_of(addr: str) -> int | None:
    m = re.search(r":(\d+)$", addr.strip())
    return int(m.group(1)) if m else None


def parse_connectors(spec: str) -> dict[str, list[tuple[str, int | None]]]:
    """SWITCHBOARD_CONNECTORS: NAME=URL[,URL...] items separated by commas."""
    out: dict[str, list[tuple[str, int | None]]] = {}
    last = None
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if "=" in item:
            last, url = item.split("=", 1)
            out[last] = []
        else:
            url = item
        if last is None:
            continue
        parts = urlsplit(url if "://" in url else "http://" + url)
        out[last].append((parts.hostname or "", parts.port))
    return out


def env_example_vars() -> tuple[dict[str, str], set[str]]:
    """Assignments (`NAME=value`) and commented-out documented names (`# NAME=`)."""
    assigned: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            assigned[m.group(1)] = m.group(2)
        elif m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=\s*$", line):
            commented.add(m.group(1))
    return assigned, commented


def image_binary(image: str) -> str | None:
    """`switchboard/jira-connector:dev` -> `jira-connector`."""
    if not image.startswith(IMAGE_REPOSITORY):
        return None
    return image[len(IMAGE_REPOSITORY):].split(":", 1)[0].split("@", 1)[0]


# ---------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------


def check_dockerfile(binaries: dict[str, Binary], wanted: set[str]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    # Join continuation lines, drop comments.
    logical = re.sub(r"\\\n", " ", text)
    lines = [l.strip() for l in logical.splitlines() if l.strip() and not l.strip().startswith("#")]
    problems = []
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    args = {m.group(1): m.group(2) for l in lines if (m := re.match(r"ARG (\w+)(?:=(\S+))?", l))}
    def resolve(ref: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1)) or m.group(0), ref)
    bases = [resolve(f.split()[1]) for f in froms]
    if not any(b.startswith("rust:1-bookworm") for b in bases):
        problems.append(f"no build stage FROM rust:1-bookworm (stages: {bases})")
    if not froms or resolve(froms[-1].split()[1]) != "debian:bookworm-slim":
        problems.append("the last stage (the runtime) is not FROM debian:bookworm-slim")
    if "BINARY" not in args:
        problems.append("no ARG BINARY")
    if not re.search(r'cargo build --release --locked --bin "?\$\{?BINARY\}?"?', logical):
        problems.append('no `cargo build --release --locked --bin "$BINARY"`')
    if "cargo chef cook" not in logical:
        problems.append("dependencies are not built in their own layer (cargo chef cook)")
    runtime = logical[logical.rfind("\nFROM "):]
    if "ca-certificates" not in runtime:
        problems.append("the runtime stage does not install ca-certificates")
    users = re.findall(r"^\s*USER\s+(\S+)", runtime, re.M)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the runtime stage does not switch to a non-root USER")
    if not re.search(r"^\s*ENTRYPOINT\s+\[", runtime, re.M):
        problems.append("the runtime stage has no exec-form ENTRYPOINT")
    unknown = sorted(b for b in wanted if b not in binaries)
    if unknown:
        problems.append(f"BINARY values that are no [[bin]] target of the workspace: {unknown} "
                        f"(targets: {sorted(binaries)})")
    report("Dockerfile: multi-stage, cached deps, non-root, BINARY values are workspace [[bin]] targets",
           problems, f"BINARY in {sorted(wanted)}")


def check_lock_file() -> None:
    """The image builds with --locked: Cargo.lock must already say everything."""
    locked = subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked", "--offline"],
                            cwd=WORKSPACE, capture_output=True, text=True)
    if locked.returncode != 0 and "offline" in locked.stderr:
        locked = subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"],
                                cwd=WORKSPACE, capture_output=True, text=True)
    report("Dockerfile: `cargo build --locked` can resolve: Cargo.lock matches every Cargo.toml",
           [] if locked.returncode == 0 else [locked.stderr.strip().splitlines()[-1] if locked.stderr.strip() else "cargo metadata --locked failed"])


# ---------------------------------------------------------------------------
# docker compose
# ---------------------------------------------------------------------------


def interpolate_defaults(text: str) -> str:
    """compose.yaml as compose resolves it with an empty environment (what
    `docker-compose config` prints when it is not installed): `${X:-d}` -> d."""
    text = re.sub(r"(?<!\$)\$\{[A-Z][A-Z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", text)
    return text.replace("$$", "$")


def compose_interpolations(text: str) -> set[str]:
    return set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))


OBSERVABILITY_PROFILE = "observability"
# Optional profiles whose services may publish ports, on this machine only.
LOCAL_PROFILES = (OBSERVABILITY_PROFILE, "scale")


def check_observability(resolved: dict | None) -> None:
    """compose's `observability` profile: Prometheus reads the generated
    deploy/prometheus/prometheus.yml, and it scrapes the router's /metrics on its
    HTTP port and every connector service on its METRICS_ADDR port; Grafana's
    dashboard reads the provisioned data source."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    doc = resolved if resolved is not None else yaml.load(interpolate_defaults(text), Loader=_Loader)
    services: dict = doc.get("services", {})
    problems: list[str] = []
    profiled = {n for n, s in services.items() if OBSERVABILITY_PROFILE in (s.get("profiles") or [])}
    prometheus = [n for n in profiled if "prometheus" in str(services[n].get("image", ""))]
    if len(prometheus) != 1:
        report(f"compose: the {OBSERVABILITY_PROFILE} profile runs one Prometheus", [f"found {sorted(prometheus)}"])
        return
    mounts = " ".join(str(v if isinstance(v, str) else v.get("source", "")) for v in services[prometheus[0]].get("volumes") or [])
    if "deploy/prometheus/prometheus.yml" not in mounts:
        problems.append(f"service {prometheus[0]} does not mount deploy/prometheus/prometheus.yml")
    config_path = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = yaml.load(config_path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    targets: set[tuple[str, int]] = set()
    for job in config.get("scrape_configs") or []:
        if job.get("metrics_path", "/metrics") != "/metrics":
            problems.append(f"prometheus.yml: job {job.get('job_name')} scrapes {job.get('metrics_path')}, not /metrics")
        for static in job.get("static_configs") or []:
            for t in static.get("targets") or []:
                host, _, port = str(t).rpartition(":")
                targets.add((host, int(port)))
        for sd in job.get("dns_sd_configs") or []:
            targets |= {(n, int(sd.get("port", 0))) for n in sd.get("names") or []}
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        listen = port_of(str(env.get("SWITCHBOARD_LISTEN", "")))
        metrics = port_of(str(env.get("METRICS_ADDR", "")))
        if listen is not None and (name, listen) not in targets:
            problems.append(f"prometheus.yml does not scrape the router {name}:{listen}/metrics")
        if metrics is not None and (name, metrics) not in targets:
            problems.append(f"prometheus.yml does not scrape {name}:{metrics} (its METRICS_ADDR)")
    for host, port in sorted(targets):
        if host not in services:
            problems.append(f"prometheus.yml scrapes {host}:{port}, not a compose service")
    dashboards = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    if not dashboards:
        problems.append("deploy/grafana/dashboards holds no dashboard")
    uids = set()
    for source in (ROOT / "deploy" / "grafana" / "provisioning" / "datasources").glob("*.yaml"):
        uids |= {d.get("uid") for d in (yaml.load(source.read_text(encoding="utf-8"), Loader=_Loader) or {}).get("datasources") or []}
    for path in dashboards:
        board = json.loads(path.read_text(encoding="utf-8"))
        for var in (board.get("templating") or {}).get("list") or []:
            if var.get("type") == "datasource" and (var.get("current") or {}).get("value") not in uids:
                problems.append(f"{path.name}: data source variable {var.get('name')} defaults to "
                                f"{(var.get('current') or {}).get('value')!r}, not a provisioned uid {sorted(uids)}")
    report(f"compose: the {OBSERVABILITY_PROFILE} profile's Prometheus scrapes the router and every connector's METRICS_ADDR; "
           "Grafana's dashboards read the provisioned data source", problems,
           f"{len(targets)} scrape targets, {len(dashboards)} dashboard(s)")


def check_compose(binaries: dict[str, Binary], resolved: dict | None) -> set[str]:
    """Returns the BINARY values compose builds."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    doc = resolved if resolved is not None else yaml.load(interpolate_defaults(text), Loader=_Loader)
    services: dict = doc.get("services", {})
    problems: list[str] = []
    wanted: set[str] = set()
    svc_binary: dict[str, Binary] = {}

    # Health checks, container names, published ports.
    health_problems = []
    for name, svc in services.items():
        hc = svc.get("healthcheck") or {}
        test = hc.get("test")
        if not test or hc.get("disable") or test in (["NONE"], "NONE"):
            health_problems.append(f"service {name} has no healthcheck")
        if "container_name" in svc:
            health_problems.append(f"service {name} sets container_name (prevents --scale)")
    report("compose: every service has a healthcheck and no container_name", health_problems,
           f"{len(services)} services")

    for name, svc in services.items():
        build = svc.get("build")
        if not build:
            continue
        binary = (build.get("args") or {}).get("BINARY") if isinstance(build, dict) else None
        if not binary:
            problems.append(f"service {name} builds without args.BINARY")
            continue
        wanted.add(binary)
        if binary not in binaries:
            problems.append(f"service {name}: BINARY={binary} is no [[bin]] target")
            continue
        svc_binary[name] = binaries[binary]
        image = svc.get("image", "")
        if image_binary(image) != binary:
            problems.append(f"service {name}: image {image!r} should be {IMAGE_REPOSITORY}{binary}:<tag>")

    routers = [n for n, b in svc_binary.items() if not b.uses_kit]
    connectors = [n for n, b in svc_binary.items() if b.uses_kit]
    if len(routers) != 1:
        problems.append(f"expected exactly one router service (a binary not built on connector-kit), got {routers}")

    # Ports: only the router is published (and the UIs of the optional
    # observability profile, on this machine only); LISTEN_ADDR /
    # SWITCHBOARD_CONNECTORS / healthchecks agree.
    for name, svc in services.items():
        if not svc.get("ports") or name in routers:
            continue
        profile = next((p for p in svc.get("profiles") or [] if p in LOCAL_PROFILES), None)
        if profile is None:
            problems.append(f"service {name} publishes host ports; only the router may (and --scale needs none)")
            continue
        for port in svc["ports"]:
            host_ip = port.get("host_ip", "") if isinstance(port, dict) else str(port).rsplit(":", 2)[0]
            if host_ip != "127.0.0.1":
                problems.append(f"service {name} (profile {profile}) publishes {port!r} beyond 127.0.0.1")
    for name, svc in services.items():
        if svc.get("profiles"):
            continue
        for dep in svc.get("depends_on") or {}:
            if (services.get(dep) or {}).get("profiles"):
                problems.append(f"service {name} depends on {dep}, which only runs with profile(s) "
                                f"{services[dep]['profiles']}: `docker compose up` would fail without them")
    listen_ports: dict[str, int | None] = {}
    for name in connectors:
        svc, binary = services[name], svc_binary[name]
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        listen_ports[name] = port_of(str(env.get("LISTEN_ADDR", "")))
        if listen_ports[name] is None:
            problems.append(f"service {name}: LISTEN_ADDR must be set to an address with a port")
        test = svc.get("healthcheck", {}).get("test") or []
        joined = " ".join(test) if isinstance(test, list) else str(test)
        if f"{binary.name} healthcheck" not in joined:
            problems.append(f"service {name}: healthcheck should run `{binary.name} healthcheck`, got {joined!r}")
    for name in routers:
        svc = services[name]
        env = svc.get("environment") or {}
        listen = port_of(str(env.get("SWITCHBOARD_LISTEN", "")))
        published = [str(p) for p in svc.get("ports") or []]
        targets = {int(p.rsplit(":", 1)[-1].split("/")[0]) for p in published if not isinstance(p, dict)}
        targets |= {int(p["target"]) for p in svc.get("ports") or [] if isinstance(p, dict)}
        if listen is None or targets != {listen}:
            problems.append(f"router {name}: published container port(s) {sorted(targets)} != SWITCHBOARD_LISTEN port {listen}")
        test = " ".join(svc.get("healthcheck", {}).get("test") or [])
        if listen is not None and not re.search(rf"[/:]{listen}\b", test):
            problems.append(f"router {name}: healthcheck does not probe port {listen}")
        if "/readyz" not in test and "/healthz" not in test and "switchboard healthcheck" not in test:
            problems.append(f"router {name}: healthcheck neither runs `switchboard healthcheck` nor asks /readyz or /healthz")
        specs = parse_connectors(str(env.get("SWITCHBOARD_CONNECTORS", "")))
        reached = set()
        for cname, urls in specs.items():
            for host, port in urls:
                if host not in services:
                    problems.append(f"router {name}: connector {cname} points at {host!r}, not a compose service")
                    continue
                reached.add(host)
                if host in svc_binary and svc_binary[host].connector_name not in (None, cname):
                    problems.append(f"router {name}: {host} calls itself {svc_binary[host].connector_name!r} "
                                    f"but is registered as {cname!r} (tool names would change)")
                if port != listen_ports.get(host):
                    problems.append(f"router {name}: connector {cname} dials port {port} but {host} listens on {listen_ports.get(host)}")
        for c in connectors:
            if c not in reached:
                problems.append(f"router {name}: connector service {c} is not in SWITCHBOARD_CONNECTORS")
            if c not in (services[name].get("depends_on") or {}):
                problems.append(f"router {name}: does not depend_on {c}")
        hosts = str(env.get("SWITCHBOARD_ALLOWED_HOSTS", "")).split(",")
        if name not in hosts:
            problems.append(f"router {name}: SWITCHBOARD_ALLOWED_HOSTS does not admit the service name {name!r}")
    report("compose: ports agree (LISTEN_ADDR, SWITCHBOARD_CONNECTORS, published port, healthchecks); only the router is published",
           problems, f"router {routers}, connectors {sorted(connectors)}")

    # Environment variable names.
    env_problems = []
    for name, binary in svc_binary.items():
        env = services[name].get("environment") or {}
        keys = set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        unknown = sorted(keys - binary.env_vars)
        if unknown:
            env_problems.append(f"service {name}: {binary.name} reads none of {unknown}")
        if binary.uses_kit:
            # Connectors treat an empty variable as unset, so all of them are passed through.
            missing = sorted(binary.env_vars - keys)
            if missing:
                env_problems.append(f"service {name}: not passed through from .env: {missing}")
    assigned, commented = env_example_vars()
    documented = set(assigned) | commented
    interpolated = compose_interpolations(text)
    undocumented = sorted(interpolated - documented)
    if undocumented:
        env_problems.append(f"compose.yaml interpolates variables .env.example does not document: {undocumented}")
    report("compose: environment names are variables the binaries read; connectors pass all of theirs",
           env_problems, f"{sum(len(b.env_vars) for b in svc_binary.values())} variables over {len(svc_binary)} binaries")
    return wanted


def check_test_services() -> None:
    """deploy/compose/test-services.yaml: health checks, and ports on loopback only
    (its databases have no passwords)."""
    path = ROOT / "deploy" / "compose" / "test-services.yaml"
    services = (yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}).get("services", {})
    problems = []
    for name, svc in services.items():
        if not (svc.get("healthcheck") or {}).get("test"):
            problems.append(f"service {name} has no healthcheck")
        for port in svc.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"service {name} publishes {port!r} beyond 127.0.0.1")
    report("compose: test-services.yaml services have healthchecks and publish on 127.0.0.1 only", problems,
           f"{sorted(services)}")


def check_env_example(binaries: dict[str, Binary]) -> None:
    assigned, commented = env_example_vars()
    documented = set(assigned) | commented
    read = set().union(*(b.env_vars for b in binaries.values() if b.name in DEPLOYED))
    interpolated = compose_interpolations(COMPOSE_FILE.read_text(encoding="utf-8"))
    problems = []
    missing = sorted(read - documented)
    if missing:
        problems.append(f"variables the binaries read that .env.example does not document: {missing}")
    stray = sorted(n for n in documented if n not in read and n not in interpolated)
    if stray:
        problems.append(f"variables in .env.example that no binary reads and compose.yaml does not use: {stray}")
    filled = sorted(n for n, v in assigned.items() if v.strip())
    if filled:
        problems.append(f"values in .env.example (leave every value empty; defaults go in comments): {filled}")
    report(".env.example documents every variable of every deployed binary, and nothing else", problems,
           f"{len(documented)} variables")


# ---------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------


def render_with(kustomize: list[str], target: Path) -> tuple[list[dict] | None, str]:
    out = subprocess.run(kustomize + [str(target)], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip() or out.stdout.strip()
    return [d for d in yaml.load_all(out.stdout, Loader=_Loader) if d], ""


def render_structurally(target: Path) -> tuple[list[dict] | None, str]:
    """A partial kustomize for when none is installed: resources, namespace,
    generators (without hash suffixes). Enough for the structural checks below."""
    try:
        return _render(target, set()), ""
    except (OSError, yaml.YAMLError, KeyError, ValueError) as e:
        return None, f"{type(e).__name__}: {e}"


def _render(target: Path, seen: set[Path]) -> list[dict]:
    target = target.resolve()
    if target in seen:
        raise ValueError(f"cycle through {target}")
    seen.add(target)
    kfile = target / "kustomization.yaml"
    k = yaml.load(kfile.read_text(encoding="utf-8"), Loader=_Loader)
    objects: list[dict] = []
    for res in k.get("resources", []):
        path = (target / res).resolve()
        if path.is_dir():
            objects += _render(path, seen)
        else:
            objects += [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader) if d]
    for gen_kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in k.get(key, []):
            data: dict[str, str] = {}
            for env_file in gen.get("envs", []):
                for line in (target / env_file).read_text(encoding="utf-8").splitlines():
                    if line.strip() and not line.lstrip().startswith("#"):
                        name, value = line.split("=", 1)
                        data[name.strip()] = value
            for lit in gen.get("literals", []):
                name, value = lit.split("=", 1)
                data[name] = value
            objects.append({"apiVersion": "v1", "kind": gen_kind, "metadata": {"name": gen["name"]}, "data": data})
    if ns := k.get("namespace"):
        for o in objects:
            if o.get("kind") != "Namespace":
                o.setdefault("metadata", {})["namespace"] = ns
    return objects


def base_name(name: str, generated: set[str]) -> str:
    """Strips a kustomize hash suffix from a generated object's name."""
    for g in generated:
        if name == g or re.fullmatch(re.escape(g) + r"-[a-z0-9]{10}", name):
            return g
    return name


def check_kubernetes(binaries: dict[str, Binary], kustomize: list[str] | None) -> set[str]:
    wanted: set[str] = set()
    for target in K8S_TARGETS:
        rel = target.relative_to(ROOT)
        if kustomize:
            objects, error = render_with(kustomize, target)
            how = " ".join(kustomize)
        else:
            objects, error = render_structurally(target)
            how = "structural Python rendering (no kustomize installed)"
        if objects is None:
            report(f"kubernetes: {rel} renders", [error])
            continue
        report(f"kubernetes: {rel} renders", [], f"{len(objects)} objects with {how}")
        if kustomize:
            # Keep the fallback honest: it must find the same objects as kustomize.
            fallback, error = render_structurally(target)
            names = lambda objs: {(o["kind"], o["metadata"]["name"]) for o in objs}  # noqa: E731
            generated = {n for k, n in names(fallback or []) if k in ("ConfigMap", "Secret")}
            real = {(k, base_name(n, generated)) for k, n in names(objects)}
            mine = names(fallback or [])
            report(f"kubernetes: {rel}: the Python fallback renderer finds the same objects as {how}",
                   [error] if fallback is None else
                   [f"only kustomize: {sorted(real - mine)}, only the fallback: {sorted(mine - real)}"]
                   if real != mine else [], f"{len(mine)} objects")
        if SCHEMA_VALIDATOR:
            check_schemas(rel, objects)
        wanted |= check_rendered(rel, objects, binaries)
        check_scrape_annotations(rel, objects, binaries)
        check_network_policies(rel, objects, binaries)
    return wanted


def check_scrape_annotations(rel: Path, objects: list[dict], binaries: dict[str, Binary]) -> None:
    """Prometheus finds every Switchboard pod by its `prometheus.io/*`
    annotations: the router on its HTTP port, a connector on its METRICS_ADDR
    port, both at /metrics, each port one the container declares."""
    problems = []
    configs = {o["metadata"]["name"]: o.get("data") or {} for o in objects if o.get("kind") == "ConfigMap"}
    count = 0
    for d in (o for o in objects if o.get("kind") == "Deployment"):
        pod = d["spec"]["template"]
        for c in pod["spec"].get("containers", []):
            bname = image_binary(c.get("image", ""))
            if bname is None or bname not in binaries:
                continue
            b = binaries[bname]
            env: dict[str, str] = {}
            for ref in c.get("envFrom") or []:
                name = (ref.get("configMapRef") or {}).get("name", "")
                env.update(next((data for cm, data in configs.items() if base_name(cm, set(configs)) == name or cm == name), {}))
            env.update({e["name"]: str(e.get("value", "")) for e in c.get("env") or [] if "name" in e})
            want = port_of(env.get("SWITCHBOARD_LISTEN", "")) if not b.uses_kit else port_of(env.get("METRICS_ADDR", ""))
            if not b.uses_kit and want is None:
                want = next((p.get("containerPort") for p in c.get("ports") or []), None)
            if want is None:
                continue
            count += 1
            where = f"{rel}: Deployment {d['metadata']['name']}"
            notes = (pod.get("metadata") or {}).get("annotations") or {}
            if notes.get("prometheus.io/scrape") != "true":
                problems.append(f"{where}: no prometheus.io/scrape: \"true\" annotation")
            if notes.get("prometheus.io/port") != str(want):
                problems.append(f"{where}: prometheus.io/port is {notes.get('prometheus.io/port')!r}, metrics are on {want}")
            if notes.get("prometheus.io/path") != "/metrics":
                problems.append(f"{where}: prometheus.io/path is {notes.get('prometheus.io/path')!r}, not /metrics")
            if want not in {p.get("containerPort") for p in c.get("ports") or []}:
                problems.append(f"{where}: metrics port {want} is not a containerPort")
    report(f"kubernetes: {rel}: the router and every connector serving METRICS_ADDR carry prometheus.io/scrape, port and path",
           problems, f"{count} Deployments")


def check_network_policies(rel: Path, objects: list[dict], binaries: dict[str, Binary]) -> None:
    """Only the router's pods reach a connector's gRPC port. A connector holds
    its service's credentials and serves whoever reaches it (authentication
    and policy are the router's), so the pods of every connector Deployment
    must be isolated for ingress by a NetworkPolicy, and every rule of the
    policies selecting them that admits the gRPC port (a rule naming it, or
    naming no port) must admit only peers that select router pods and no
    other pod of the manifests: a podSelector with matchLabels, no
    matchExpressions, no namespaceSelector, no ipBlock. Read as Kubernetes
    reads it: a policy selects the pods whose labels include its matchLabels
    (an empty selector selects every pod), the allowed ingress is the union
    of the rules of all selecting policies, a rule without `from` admits
    every peer."""
    problems: list[str] = []
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    policies = [o for o in objects if o.get("kind") == "NetworkPolicy"]

    def role(d: dict) -> str | None:
        """"connector" (a binary on connector-kit), "router" (the workspace's
        other binary), or None (a third-party image, e.g. PostgreSQL)."""
        for c in d["spec"]["template"]["spec"].get("containers", []):
            b = binaries.get(image_binary(c.get("image", "")) or "")
            if b is not None:
                return "connector" if b.uses_kit else "router"
        return None

    def labels_of(d: dict) -> dict:
        return (d["spec"]["template"].get("metadata") or {}).get("labels") or {}

    pods = [(labels_of(d), role(d) == "router") for d in deployments]

    def selects(selector: dict | None, labels: dict) -> bool:
        selector = selector or {}
        if selector.get("matchExpressions"):
            return False  # not read here: such a policy does not count
        return (selector.get("matchLabels") or {}).items() <= labels.items()

    def router_only(peer: dict) -> bool:
        """A peer selecting router pods and no other pod of the manifests."""
        if set(peer) != {"podSelector"}:
            return False
        sel = peer["podSelector"] or {}
        if sel.get("matchExpressions") or not sel.get("matchLabels"):
            return False
        chosen = [router for labels, router in pods if selects(sel, labels)]
        return bool(chosen) and all(chosen)

    count = 0
    for d in deployments:
        if role(d) != "connector":
            continue
        count += 1
        name = d["metadata"]["name"]
        labels = labels_of(d)
        container = d["spec"]["template"]["spec"]["containers"][0]
        grpc_port = (container.get("ports") or [{}])[0]
        grpc_names = {grpc_port.get("containerPort"), grpc_port.get("name")} - {None}

        def admits_grpc(q: dict) -> bool:
            port, end = q.get("port"), q.get("endPort")
            number = grpc_port.get("containerPort")
            if isinstance(port, int) and isinstance(end, int) and isinstance(number, int):
                return port <= number <= end
            return port is None or port in grpc_names
        selecting = [p for p in policies
                     if selects(p["spec"].get("podSelector"), labels)
                     and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])]
        if not selecting:
            problems.append(f"{rel}: connector Deployment {name}: no NetworkPolicy isolates its pods for ingress, "
                            f"so any pod in the cluster can call it with the service's credentials")
            continue
        admitted = False
        for p in selecting:
            for rule in p["spec"].get("ingress") or []:
                ports = rule.get("ports") or []
                if ports and not any(admits_grpc(q) for q in ports):
                    continue
                peers = rule.get("from") or []
                if not peers:
                    problems.append(f"{rel}: NetworkPolicy {p['metadata']['name']} admits every peer to the gRPC port of {name}")
                for peer in peers:
                    if router_only(peer):
                        admitted = True
                    else:
                        problems.append(f"{rel}: NetworkPolicy {p['metadata']['name']} admits {peer} to the gRPC port "
                                        f"of {name}: only the router's pods may call a connector")
        if not admitted:
            problems.append(f"{rel}: connector Deployment {name}: no NetworkPolicy admits the router to its gRPC port")
    report(f"kubernetes: {rel}: only the router's pods can reach a connector's gRPC port (NetworkPolicy)",
           problems, f"{count} connector Deployments, {len(policies)} NetworkPolicies")


# The oldest Kubernetes the manifests are meant for (grpc probes are GA since 1.27).
KUBERNETES_VERSION = "1.29.0"
SCHEMA_VALIDATOR: str | None = None


def check_schemas(rel: Path, objects: list[dict]) -> None:
    """Every object against the Kubernetes OpenAPI schemas, rejecting unknown fields."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(objects, f)
        f.flush()
        out = subprocess.run([SCHEMA_VALIDATOR, "--strict", "--quiet", "--no-warn", "-k", KUBERNETES_VERSION, f.name],
                             capture_output=True, text=True)
    errors = [l.replace(f.name, str(rel)) for l in out.stdout.splitlines() if l.startswith("ERROR")]
    if out.returncode != 0 and not errors:
        errors = [(out.stderr or out.stdout).strip().splitlines()[-1]]
    report(f"kubernetes: {rel}: every object matches the Kubernetes {KUBERNETES_VERSION} schema (strict: no unknown fields)",
           errors, f"{len(objects)} objects, kubernetes-validate")


def check_rendered(rel: Path, objects: list[dict], binaries: dict[str, Binary]) -> set[str]:
    by_kind: dict[str, dict[str, dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    deployments = by_kind.get("Deployment", {})
    services = by_kind.get("Service", {})
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    problems: list[str] = []
    wanted: set[str] = set()
    connector_ports: dict[str, int] = {}  # service name -> port
    router_specs: list[tuple[str, dict]] = []

    def env_of(container: dict) -> tuple[dict[str, str], list[str]]:
        """Variables a container gets (values where known) and missing references."""
        env: dict[str, str] = {}
        missing: list[str] = []
        for src in container.get("envFrom", []):
            for kind, store in (("configMapRef", config_maps), ("secretRef", secrets)):
                if kind in src:
                    ref = src[kind]
                    obj = store.get(ref["name"])
                    if obj is None:
                        if not ref.get("optional"):
                            missing.append(f"{kind} {ref['name']}")
                        continue
                    data = dict(obj.get("data") or {}) | dict(obj.get("stringData") or {})
                    env |= {k: str(v) for k, v in data.items()}
        for e in container.get("env", []):
            env[e["name"]] = str(e.get("value", ""))
        return env, missing

    for dname, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        pod_sc = spec.get("securityContext") or {}
        for c in spec.get("containers", []):
            where = f"{rel}: Deployment {dname}, container {c['name']}"
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"{where}: no {probe}")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for key in ("cpu", "memory"):
                    if key not in (res.get(part) or {}):
                        problems.append(f"{where}: no resources.{part}.{key}")
            sc = c.get("securityContext") or {}
            if not sc:
                problems.append(f"{where}: no securityContext")
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                problems.append(f"{where}: not runAsNonRoot")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: capabilities are not dropped")
            env, missing = env_of(c)
            for m in missing:
                problems.append(f"{where}: references missing {m}")
            bname = image_binary(c.get("image", ""))
            if bname is None:
                continue  # a third-party image (e.g. PostgreSQL in the local overlay)
            wanted.add(bname)
            binary = binaries.get(bname)
            if binary is None:
                problems.append(f"{where}: image {c['image']} names no [[bin]] target")
                continue
            unknown = sorted(set(env) - binary.env_vars)
            if unknown:
                problems.append(f"{where}: {bname} reads none of {unknown}")
            port = (c.get("ports") or [{}])[0].get("containerPort")
            if binary.uses_kit:
                listen = port_of(env.get("LISTEN_ADDR", ""))
                if listen != port:
                    problems.append(f"{where}: LISTEN_ADDR port {listen} != containerPort {port}")
                grpc = (c.get("readinessProbe") or {}).get("grpc") or {}
                if grpc.get("port") != port:
                    problems.append(f"{where}: readinessProbe is not a grpc.health.v1 probe on port {port}")
                live = " ".join((c.get("livenessProbe") or {}).get("exec", {}).get("command", []))
                if f"{bname} healthcheck" not in live and ((c.get("livenessProbe") or {}).get("grpc") or {}).get("port") != port:
                    problems.append(f"{where}: livenessProbe checks neither `{bname} healthcheck` nor grpc port {port}")
                svc = services.get(dname)
                if svc is None:
                    problems.append(f"{where}: no Service named {dname}")
                else:
                    if svc["spec"].get("clusterIP") != "None":
                        problems.append(f"{rel}: Service {dname} is not headless (clusterIP: None)")
                    sports = [p.get("port") for p in svc["spec"].get("ports", [])]
                    if sports != [port]:
                        problems.append(f"{rel}: Service {dname} ports {sports} != containerPort {port}")
                    connector_ports[dname] = port
                targets = [h for h in hpas.values() if h["spec"]["scaleTargetRef"].get("name") == dname
                           and h["spec"]["scaleTargetRef"].get("kind") == "Deployment"]
                if not targets:
                    problems.append(f"{rel}: no HorizontalPodAutoscaler for connector Deployment {dname}")
            else:
                listen = port_of(env.get("SWITCHBOARD_LISTEN", ""))
                if listen != port:
                    problems.append(f"{where}: SWITCHBOARD_LISTEN port {listen} != containerPort {port}")
                for probe in ("livenessProbe", "readinessProbe"):
                    get = (c.get(probe) or {}).get("httpGet") or {}
                    if get.get("port") not in (port, "http"):
                        problems.append(f"{where}: {probe} is not an HTTP probe of port {port}")
                labels = dep["spec"]["template"]["metadata"].get("labels") or {}
                router_specs.append((where, env, labels))

    for where, env, labels in router_specs:
        specs = parse_connectors(env.get("SWITCHBOARD_CONNECTORS", ""))
        for cname, urls in specs.items():
            for host, port in urls:
                short = host.split(".")[0]
                if short not in connector_ports:
                    problems.append(f"{where}: connector {cname} points at {host!r}, no connector Service")
                elif connector_ports[short] != port:
                    problems.append(f"{where}: connector {cname} dials port {port}, Service {short} has {connector_ports[short]}")
                else:
                    dep = deployments[short]["spec"]["template"]["spec"]["containers"][0]
                    b = binaries.get(image_binary(dep.get("image", "")) or "")
                    if b and b.connector_name not in (None, cname):
                        problems.append(f"{where}: {short} calls itself {b.connector_name!r} but is registered as {cname!r}")
        for c in connector_ports:
            if not any(h.split(".")[0] == c for urls in specs.values() for h, _ in urls):
                problems.append(f"{where}: connector Service {c} is not in SWITCHBOARD_CONNECTORS")
        hosts = env.get("SWITCHBOARD_ALLOWED_HOSTS", "").split(",")
        router_services = [s for s in services.values()
                           if s["spec"].get("selector") and s["spec"]["selector"].items() <= labels.items()]
        if not router_services:
            problems.append(f"{where}: no Service selects the router's pods")
        for s in router_services:
            if s["metadata"]["name"] not in hosts:
                problems.append(f"{where}: SWITCHBOARD_ALLOWED_HOSTS does not admit Service name {s['metadata']['name']!r}")
    for hname, h in hpas.items():
        ref = h["spec"]["scaleTargetRef"]
        if ref.get("name") not in deployments:
            problems.append(f"{rel}: HorizontalPodAutoscaler {hname} targets missing Deployment {ref.get('name')}")
    report(f"kubernetes: {rel}: every Deployment has probes, resources, securityContext; ports, env names, Services and HPAs agree",
           problems, f"{len(deployments)} Deployments, {len(connector_ports)} connector Services, {len(hpas)} HPAs")
    return wanted


# ---------------------------------------------------------------------------

DEPLOYED: set[str] = set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compose-config", type=Path,
                        help="output of `docker-compose config` (resolved); default: compose.yaml parsed as is")
    parser.add_argument("--kustomize", help="command that renders a kustomization dir, e.g. 'kubectl kustomize'; "
                                            "default: structural Python rendering")
    parser.add_argument("--deploy-root", type=Path, default=WORKSPACE,
                        help="directory holding compose.yaml, .env.example, Dockerfile and deploy/ "
                             "(default: the workspace; the self-test passes altered copies)")
    parser.add_argument("--kubernetes-validate", help="path of the kubernetes-validate program (PyPI "
                        "kubernetes-validate) to check the rendered objects against the API schemas")
    args = parser.parse_args()
    use_deploy_root(args.deploy_root)
    global SCHEMA_VALIDATOR
    SCHEMA_VALIDATOR = args.kubernetes_validate

    resolved = yaml.load(args.compose_config.read_text(), Loader=_Loader) if args.compose_config else None
    kustomize = shlex.split(args.kustomize) if args.kustomize else None
    ok = run_all(workspace_binaries(), resolved, kustomize)
    check_lock_file()
    return 0 if ok and not failures else 1


def run_all(binaries: dict[str, Binary], resolved: dict | None, kustomize: list[str] | None) -> bool:
    """Every check on the files under the current deploy root; True when all pass."""
    failures.clear()
    DEPLOYED.clear()
    try:
        compose_doc = resolved or yaml.load(COMPOSE_FILE.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as e:
        report("compose: compose.yaml can be read", [f"{type(e).__name__}: {e}"])
        return False
    for svc in compose_doc.get("services", {}).values():
        build = svc.get("build")
        if isinstance(build, dict) and (build.get("args") or {}).get("BINARY"):
            DEPLOYED.add(build["args"]["BINARY"])
    summary = ", ".join(f"{b.name} ({len(b.env_vars)} vars)" for b in binaries.values() if b.name in DEPLOYED)
    print(f"INFO  binaries deployed: {summary}")

    wanted = guarded("compose", check_compose, binaries, resolved) or set()
    guarded("observability", check_observability, resolved)
    guarded(".env.example", check_env_example, binaries)
    guarded("test-services.yaml", check_test_services)
    wanted |= guarded("kubernetes", check_kubernetes, binaries, kustomize) or set()
    guarded("Dockerfile", check_dockerfile, binaries, wanted)
    return not failures


def guarded(name: str, check, *args):
    """Runs one group of checks; a file too broken to inspect is a failure, not a crash."""
    try:
        return check(*args)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, OSError, yaml.YAMLError) as e:
        report(f"{name}: files can be inspected", [f"{type(e).__name__}: {e}"])
        return None


if __name__ == "__main__":
    sys.exit(main())
