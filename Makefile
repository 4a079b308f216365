# Two commands for a newcomer:  make run  (embedded, nothing else installed)  and  make test.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/lifecycle)
TEST_REDIS_URL    ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/15)

.PHONY: run test install install-test lint lint-imports schema check-schema migrations-check clean

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
