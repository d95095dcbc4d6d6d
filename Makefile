# deploybot — everything a newcomer needs: `make run` (console + demo app) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= examples/deploybot.toml

.PHONY: run test lint bench demo clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	examples/prepare-demo.sh

## The bot in a terminal, on the example config and the demo app.
run: demo
	$(BIN)/deploybot --config $(CONFIG) console

## The whole suite, on SQLite and (when reachable) PostgreSQL.
test: $(STAMP)
	@if [ -z "$$TEST_DATABASE_URL" ] && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then \
		export TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test; fi; \
	echo "TEST_DATABASE_URL=$${TEST_DATABASE_URL:-(unset: PostgreSQL cases will be skipped)}"; \
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	-examples/demo-stop.sh .state/demo/production .state/demo/staging 2>/dev/null
	rm -rf .state
