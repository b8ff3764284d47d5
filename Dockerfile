# syntax=docker/dockerfile:1
#
# One image recipe for every Switchboard binary. The build argument BINARY names
# the `[[bin]]` target to build; it becomes the image's entry point:
#
#   docker build --build-arg BINARY=switchboard             -t switchboard/switchboard .
#   docker build --build-arg BINARY=jira-connector          -t switchboard/jira-connector .
#   docker build --build-arg BINARY=slack-connector         -t switchboard/slack-connector .
#   docker build --build-arg BINARY=database-connector      -t switchboard/database-connector .
#   docker build --build-arg BINARY=code-analysis-connector -t switchboard/code-analysis-connector .
#
# (`docker compose build` does all five.) Dependencies are compiled in their own
# layer (cargo-chef) before BINARY is known, so that layer is shared by all five
# images and rebuilt only when Cargo.toml / Cargo.lock change.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- chef: the build image plus cargo-chef -------------------------------------
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# --- planner: the dependency recipe (manifests and lock file only) --------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies first (cached), then the named binary ----------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# No BINARY yet: this layer is the same for every image.
RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json
COPY . .
ARG BINARY
RUN test -n "${BINARY}" || { echo "build argument BINARY is required, e.g. --build-arg BINARY=switchboard" >&2; exit 1; }
RUN cargo build --release --locked --bin "${BINARY}" \
 && install -D -m 0755 "target/release/${BINARY}" "/out/${BINARY}"

# --- runtime: a slim Debian with CA certificates and a non-root user -----------
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: the Jira and Slack connectors verify HTTPS with the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/switchboard --create-home \
      --shell /usr/sbin/nologin switchboard
ARG BINARY
COPY --from=builder /out/${BINARY} /usr/local/bin/${BINARY}
# A fixed name for ENTRYPOINT (exec form cannot expand build arguments); the
# binary keeps its own name too, so health checks call e.g. `jira-connector healthcheck`.
RUN ln -s "/usr/local/bin/${BINARY}" /usr/local/bin/switchboard-entrypoint
ENV BINARY=${BINARY}
LABEL org.opencontainers.image.title="${BINARY}" \
      org.opencontainers.image.source="https://github.com/switchboard-mcp/switchboard" \
      org.opencontainers.image.licenses="Apache-2.0"
# The working directory is writable: the database connector's SQLite demo file
# (DB_DEMO_PATH, relative by default) lands here when no DATABASE_URL is set.
WORKDIR /home/switchboard
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/switchboard-entrypoint"]
