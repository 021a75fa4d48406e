# Two commands for a newcomer: `make demo` and `make test`. Everything else is detail.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO_DIR ?= demo
DEMO_ACCOUNTS ?= 3000

.PHONY: help install demo test lint typecheck pytest bench clean

help:
	@echo "make demo   generate a synthetic CRM and run the pipeline on it"
	@echo "make test   lint, type-check and run the whole test suite"
	@echo "make bench  run the benchmarks in benchmarks/"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/leadscore generate --out $(DEMO_DIR)/crm --accounts $(DEMO_ACCOUNTS) --seed 7 --overwrite
	$(BIN)/leadscore validate $(DEMO_DIR)/crm

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .mypy_cache .ruff_cache .pytest_cache .hypothesis
