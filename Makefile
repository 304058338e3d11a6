# Every target builds or refreshes the virtual environment itself (from uv.lock).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install demo test lint types contracts unit bench clean lock

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# every extra (server, mcp, postgres): the demo and the tests use them all
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --all-extras --python $(PYTHON) --quiet
	touch $@

install: $(VENV)/.synced

lock: $(UV)
	$(UV) lock --python $(PYTHON)

demo: install
	$(BIN)/zerolane demo --once

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# mypy strict over src, tests and bench (pyproject.toml's [tool.mypy] files)
types: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

# the tests, with branch coverage of src/zerolane (processes the tests start included);
# below [tool.coverage.report] fail_under the run fails. Lines missed: coverage report -m
unit: install
	$(BIN)/pytest -q --cov --cov-report=term

test: lint types contracts unit

bench: install
	$(BIN)/python bench/svid.py
	$(BIN)/python bench/pdp.py
	$(BIN)/python bench/task_open.py
	$(BIN)/python bench/exchange.py
	$(BIN)/python bench/replay_cache.py
	$(BIN)/python bench/spent_proofs.py
	$(BIN)/python bench/jws.py
	$(BIN)/python bench/access_log.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/cli_start.py

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.*
