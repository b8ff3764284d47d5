# Switchboard: one MCP endpoint for Jira, Slack, SQL databases and code analysis.
# `make help` lists the targets.

CARGO ?= cargo
SHELL := /bin/bash
# Test runner: cargo-nextest when installed (faster, one process per test), else cargo test.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)
NEXTEST_PROFILE := $(if $(CI),ci,default)

.DEFAULT_GOAL := help
.PHONY: help build run test test-rust lint fmt bench mutants up down tools services clean deploy-sync

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build every binary (debug)
	$(CARGO) build --workspace --bins

# Where cargo puts its output (CARGO_TARGET_DIR, a cargo config, or ./target).
TARGET_DIR = $(or $(CARGO_TARGET_DIR),$(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'),target)

# The stack runner is run from the workspace build: `cargo run -p` would rebuild
# shared crates with another feature set, and `make test` would rebuild them back.
run: build ## Start the connectors and the router locally (Ctrl-C stops all)
	"$(TARGET_DIR)/debug/stack"

tools: ## Install the third-party checking tools into .tools/ (idempotent)
	scripts/install-tools.sh

services: ## Start local PostgreSQL, MariaDB and Redis if installed but stopped
	scripts/ensure-services.sh

test: tools services build ## Run the whole test suite (set-up included)
	scripts/check-deploy.sh
	$(MAKE) --no-print-directory test-rust

test-rust:
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --profile $(NEXTEST_PROFILE)
else
	$(CARGO) test --workspace --no-fail-fast
endif

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: tools services ## Benchmarks (release build); figures go in README.md
	scripts/bench.sh

mutants: ## Mutation testing of the safety-critical modules (slow; not part of test)
	scripts/install-tools.sh mutants
	scripts/mutants.sh

deploy-sync: ## Update compose, Kubernetes, .env.example from deploy/connectors.toml
	scripts/sync-deploy

up: ## docker compose up (router on :8080, connectors, PostgreSQL)
	docker compose up --build -d

down: ## docker compose down
	docker compose down

clean: ## Remove build output and installed tools
	$(CARGO) clean
	rm -rf .tools
