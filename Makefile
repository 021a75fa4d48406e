# Two commands for a newcomer: `make demo` and `make test`. Everything else is detail.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO_DIR ?= demo
DEMO_ACCOUNTS ?= 3000
DEMO_PORT ?= 8000
# the workspace's demo users (printed by make demo; set your own outside a demo)
DEMO_MARKETING_PASSWORD ?= demo
DEMO_ADMIN_PASSWORD ?= demo-admin

.PHONY: help install demo test lint typecheck pytest browser bench ui notebooks clean

help:
	@echo "make demo   generate a synthetic CRM and run the pipeline on it"
	@echo "make test   lint, type-check and run the whole test suite"
	@echo "make bench  run the benchmarks in benchmarks/"
	@echo "make ui     the MLflow UI on the demo's runs and models (after make demo)"
	@echo "make notebooks  JupyterLab on notebooks/ (after make demo)"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Everything lands in $(DEMO_DIR)/: the CRM, the MLflow store (mlflow.db) and its artifacts.
demo: install
	$(BIN)/leadscore generate --out $(DEMO_DIR)/crm --accounts $(DEMO_ACCOUNTS) --seed 7 --overwrite
	$(BIN)/leadscore validate $(DEMO_DIR)/crm | tail -n 4
	cd $(DEMO_DIR) && ../$(BIN)/leadscore train --data crm
	@# a re-run trains an identical challenger, which rightly does not replace the champion
	cd $(DEMO_DIR) && ../$(BIN)/leadscore promote || true
	cd $(DEMO_DIR) && ../$(BIN)/leadscore score --data crm --out scores.csv
	@# the live lead store: seeded from the demo CRM and scored as of the data's end
	cd $(DEMO_DIR) && ../$(BIN)/leadscore db upgrade
	cd $(DEMO_DIR) && ../$(BIN)/leadscore load --data crm
	$(BIN)/python -c 'import json; from serving.schemas import EXAMPLE_REQUEST as r; json.dump(r, open("$(DEMO_DIR)/request.json", "w"), indent=1)'
	$(BIN)/python -c 'import csv, json; lead = next(csv.DictReader(open("$(DEMO_DIR)/scores.csv")))["contact_id"]; json.dump({"touchpoints": [{"touchpoint_id": "demo-request-1", "contact_id": lead, "occurred_at": "2025-12-31T23:59:00Z", "type": "demo_request", "channel": "direct", "topic": "product"}], "as_of": "2026-01-01T00:00:00Z"}, open("$(DEMO_DIR)/event.json", "w"), indent=1); open("$(DEMO_DIR)/lead.txt", "w").write(lead)'
	@echo ""
	@echo "demo: scores for every lead are in $(DEMO_DIR)/scores.csv; the live store is $(DEMO_DIR)/leadscore.db"
	@echo "demo: MLflow UI: cd $(DEMO_DIR) && ../$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"
	@echo "demo: the API starts now (Ctrl-C stops it). In another terminal:"
	@echo "  curl -s -X POST http://127.0.0.1:$(DEMO_PORT)/v1/score -H 'content-type: application/json' -d @$(DEMO_DIR)/request.json"
	@echo "  curl -s -X POST http://127.0.0.1:$(DEMO_PORT)/v1/events -H 'content-type: application/json' -d @$(DEMO_DIR)/event.json"
	@echo "  curl -s http://127.0.0.1:$(DEMO_PORT)/v1/leads/$$(cat $(DEMO_DIR)/lead.txt)/history"
	@echo "  curl -s -X POST http://127.0.0.1:$(DEMO_PORT)/v1/webhooks -H 'content-type: application/json' -d '{\"url\": \"https://example.com/hook\", \"events\": [\"lead.mql_reached\"]}'"
	@echo "  open http://127.0.0.1:$(DEMO_PORT)/docs for the API and its examples"
	@echo ""
	@echo "demo: the marketing workspace: http://127.0.0.1:$(DEMO_PORT)/ui"
	@echo "  sign in as marketing / $(DEMO_MARKETING_PASSWORD) (reads) or admin / $(DEMO_ADMIN_PASSWORD) (may apply a points matrix)"
	cd $(DEMO_DIR) && LEADSCORE_UI_USERS="$$(../$(BIN)/leadscore ui-user marketing --password '$(DEMO_MARKETING_PASSWORD)'),$$(../$(BIN)/leadscore ui-user admin --role admin --password '$(DEMO_ADMIN_PASSWORD)')" \
	  ../$(BIN)/leadscore serve --port $(DEMO_PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (never a browser downloaded by a test tool).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null 2>&1; } || \
	  echo "WARNING: could not install chromium; the browser tests will be SKIPPED"; }

# one worker per core; a file's tests stay together on one worker (several share a
# module's models and registry in order)
pytest: install browser
	$(BIN)/pytest -n auto --dist loadfile

test: lint typecheck pytest

bench: install
	$(BIN)/python benchmarks/bench_generate.py

ui: install
	cd $(DEMO_DIR) && ../$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000

notebooks: install
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) $(DEMO_DIR) .mypy_cache .ruff_cache .pytest_cache .hypothesis
