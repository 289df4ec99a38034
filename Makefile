# One command each: `make run` starts payhook, `make test` runs every gate.
# Both create .venv when it is missing and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= payhook.toml
SOURCES := src tests benchmarks

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime: the package and the embedded server.
$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[server]'
	touch $@

# Tests and tools, pinned.
$(VENV)/.dev: $(VENV)/.runtime requirements/dev.txt
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@

run: $(VENV)/.runtime
	$(BIN)/payhook serve --config $(CONFIG)

lint: $(VENV)/.dev
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: $(VENV)/.dev
	$(BIN)/mypy

pytest: $(VENV)/.dev
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/ingest_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache var
