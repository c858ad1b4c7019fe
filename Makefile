# The two set-up commands for a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check drill tests benchmarks
	$(BIN)/ruff format --check drill tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

demo: install
	$(BIN)/drill demo

clean:
	rm -rf $(VENV) runs demo-runs demo-trust .drill-lab .pytest_cache .mypy_cache .ruff_cache
