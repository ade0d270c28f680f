# The two commands that matter: `make run` (the whole suite on this machine)
# and `make test` (every test, against the real local servers).
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
export UV_PYTHON ?= 3.11
# Every service's EventCatalog: docs/events.md and docs/asyncapi/ are generated from them.
EVENT_CATALOGS := auth_service.contracts:EVENTS results_service.messaging.catalog:EVENTS bulk_service.messaging.catalog:EVENTS notifier_service.messaging.catalog:EVENTS
PY_SUITES := shared/tests services/auth/tests services/gateway/tests services/results/tests services/bulk/tests services/notifier/tests deploy/tests tests

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: uv
uv:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --quiet --user uv

.PHONY: install
install: uv ## create .venv and install the workspace from uv.lock
	@"$(UV)" sync --frozen --all-packages --quiet

.PHONY: run
run: install ## start every service as its own process (Ctrl-C stops all)
	@"$(UV)" run --frozen python scripts/run_local.py

.PHONY: lint
lint: install ## ruff, mypy (strict for the kit and the results domain) and vulture (dead code)
	"$(UV)" run --frozen ruff check .
	"$(UV)" run --frozen ruff format --check .
	"$(UV)" run --frozen mypy shared/src services/results/src/results_service/domain services/bulk/src \
		services/notifier/src
	"$(UV)" run --frozen mypy services/auth/src services/gateway/src services/results/src vulture_whitelist.py
	"$(UV)" run --frozen mypy deploy/observability
	@# Tests and migrations are passed too: what only they use is used, not dead.
	"$(UV)" run --frozen vulture shared/src services/*/src scripts loadtests \
		services/*/migrations shared/tests services/*/tests tests deploy/tests deploy/observability \
		vulture_whitelist.py

.PHONY: system-deps
system-deps: ## Debian packages the tests need (headless Chromium for the CORS browser test, Prometheus)
	@bash scripts/ensure_system_packages.sh chromium
	@"$(UV)" run --frozen python scripts/private_servers.py install prometheus

.PHONY: test
test: install system-deps lint ## every test, against the real local servers
	@"$(UV)" run --frozen python scripts/run_tests.py $(PY_SUITES)

.PHONY: bench
bench: install ## benchmarks (gateway, login, result generation, bulk, notifier); figures go in issue notes
	"$(UV)" run --frozen python scripts/bench_gateway.py
	"$(UV)" run --frozen python scripts/bench_login.py
	"$(UV)" run --frozen python scripts/bench_generation.py
	"$(UV)" run --frozen python scripts/bench_bulk.py
	"$(UV)" run --frozen python scripts/bench_notifier.py

# `make loadtest` against a running `make run` (see README, Load tests).
GATEWAY ?= http://127.0.0.1:8000
USERS ?= 100
SPAWN_RATE ?= 5
RUN_TIME ?= 2m
SEED_ARGS ?=
LOCUST_ARGS ?=

.PHONY: loadtest
loadtest: install ## seed (if needed), then a headless load test of `make run` held to loadtests/thresholds.toml (GATEWAY, USERS, SPAWN_RATE, RUN_TIME)
	"$(UV)" run --frozen python -m loadtests.seed --gateway $(GATEWAY) $(SEED_ARGS)
	@mkdir -p loadtests/reports
	"$(UV)" run --frozen locust -f loadtests/locustfile.py --host $(GATEWAY) --headless \
		--users $(USERS) --spawn-rate $(SPAWN_RATE) --run-time $(RUN_TIME) --stop-timeout 10 \
		--csv loadtests/reports/run --html loadtests/reports/run.html $(LOCUST_ARGS)

.PHONY: dashboards
dashboards: install ## render the Grafana dashboards (JSON) and the PrometheusRule into deploy/k8s/base/observability
	"$(UV)" run --frozen python deploy/observability/render.py

.PHONY: docs
docs: install ## regenerate docs that come from code (error catalog, event catalogs and AsyncAPI)
	"$(UV)" run --frozen python -c "from service_kit.errors import catalog_markdown; open('docs/errors.md','w').write(catalog_markdown())"
	"$(UV)" run --frozen python -m service_kit.messaging.docs $(EVENT_CATALOGS)
