# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench servers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/authmigrate demo

# Installs the database servers the tests start themselves (PostgreSQL, MariaDB),
# then runs lint, type checks and the whole suite: first every test not marked `serial` on
# TEST_WORKERS pytest-xdist workers (each with its own private servers; a test file stays on one
# worker, files handed out in name order), then the `serial` ones (they measure time) alone.
# Both parts always run; either failing fails the target.
TEST_WORKERS ?= 2
test: $(STAMP) servers
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	@status=0; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not serial" || status=$$?; \
	$(BIN)/pytest -q -m serial || status=$$((status ? status : $$?)); \
	exit $$status

servers:
	@bash scripts/ensure-servers

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_credentials.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
