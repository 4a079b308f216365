# Two commands for a newcomer:  make run  (embedded, nothing else installed)  and  make test.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/lifecycle)
TEST_REDIS_URL    ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/15)

.PHONY: run test test-citus install install-test lint lint-imports schema check-schema migrations-check clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: install it, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## make run: the embedded default (SQLite, a real Celery worker and beat on a filesystem broker,
## email kept in the local outbox), a demo store with sample data, served on http://127.0.0.1:$(PORT)
run: install
	$(BIN)/python manage.py serve_embedded --port $(PORT)

## make test: the whole suite against PostgreSQL and Redis (DATABASE_URL, REDIS_URL; defaults on localhost)
test: install-test
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) LIFECYCLE_PROFILE=embedded \
		$(BIN)/pytest $(PYTEST_ARGS)

## make test-citus: the tests of what the database does (ingest, the engine, the ledgers, referrals, RLS,
## dashboards, tests/lifecycle/test_citus.py) against a local Citus cluster, a coordinator and two workers
## (../shared/tools/citus-cluster: started if it is not running, built once per machine). The test database
## is made fresh by the cluster tool, with Citus on every node, and migrated by the tests (--reuse-db).
# The workplace's tool, seen from the project root (a clone elsewhere finds it at /work/shared, or set CITUS_CLUSTER).
CITUS_CLUSTER ?= $(firstword $(wildcard ../shared/tools/citus-cluster ../../shared/tools/citus-cluster \
	/work/shared/tools/citus-cluster) ../shared/tools/citus-cluster)
CITUS_PORT    ?= 5440
CITUS_DB      ?= lifecycle_citus
# Few shards keep each test's TRUNCATE and each multi-shard read short; production uses more (README).
CITUS_TEST_SHARDS ?= 4
CITUS_TESTS   ?= tests/lifecycle/test_citus.py tests/lifecycle/test_api_orders.py tests/lifecycle/test_ingest_paths.py \
	tests/lifecycle/test_batch_events.py tests/lifecycle/test_event_sweep.py tests/lifecycle/test_idempotency.py \
	tests/lifecycle/test_rls.py tests/lifecycle/test_rls_cross_tenant.py tests/lifecycle/test_webhooks_shopify.py \
	tests/journeys/test_engine.py tests/journeys/test_due_queue.py tests/journeys/test_batch_send.py \
	tests/journeys/test_rollups.py tests/loyalty/test_ledger.py tests/loyalty/test_redemption.py \
	tests/referrals/test_attribution.py tests/workspace/test_dashboard_stats.py tests/workspace/test_dashboard.py
test-citus: install-test
	@pg_isready -h 127.0.0.1 -p $(CITUS_PORT) -q || [ -x $(CITUS_CLUSTER) ] || { \
		echo "make test-citus: no Citus cluster on port $(CITUS_PORT) and no citus-cluster tool at $(CITUS_CLUSTER): set CITUS_CLUSTER=/path/to/citus-cluster"; exit 1; }
	@pg_isready -h 127.0.0.1 -p $(CITUS_PORT) -q || $(CITUS_CLUSTER) start
	@for port in $$(seq $(CITUS_PORT) $$(($(CITUS_PORT) + $$(cat $${CITUS_DIR:-/tmp/citus-cluster}/workers)))); do \
		psql -h 127.0.0.1 -p $$port -U postgres -qAt -c "DROP DATABASE IF EXISTS test_$(CITUS_DB) WITH (FORCE)" >/dev/null; done
	$(CITUS_CLUSTER) createdb test_$(CITUS_DB)
	psql -h 127.0.0.1 -p $(CITUS_PORT) -U postgres -qAt -c "ALTER DATABASE test_$(CITUS_DB) SET citus.shard_count = $(CITUS_TEST_SHARDS)" \
		-c "ALTER DATABASE test_$(CITUS_DB) SET citus.propagate_set_commands = 'local'"
	DATABASE_URL=postgres://postgres@127.0.0.1:$(CITUS_PORT)/$(CITUS_DB) REDIS_URL=$(TEST_REDIS_URL) \
		LIFECYCLE_PROFILE=embedded LIFECYCLE_TEST_CITUS=1 $(BIN)/pytest --reuse-db $(CITUS_TESTS) $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .

# The layers of ARCHITECTURE.md: config > workspace | demo > journeys > feedback | referrals > loyalty > lifecycle.
lint-imports: install-test
	$(BIN)/lint-imports --no-cache

migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run

# The published OpenAPI schema lives in lifecycle/api/openapi.yaml; CI fails when it is stale.
schema: install
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file lifecycle/api/openapi.yaml

check-schema: install
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file $(VENV)/openapi.current.yaml
	@diff -u lifecycle/api/openapi.yaml $(VENV)/openapi.current.yaml >/dev/null || { \
		echo "lifecycle/api/openapi.yaml is stale: run 'make schema' and commit it"; \
		diff -u lifecycle/api/openapi.yaml $(VENV)/openapi.current.yaml | head -40; exit 1; }

clean:
	rm -rf var/
