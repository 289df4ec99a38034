# One command each: `make run` starts payhook, `make test` runs every gate.
# Both create .venv when it is missing and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= payhook.toml
SOURCES := src tests benchmarks infra app.py
SUFFIX  ?= dev
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20

.PHONY: run test lint typecheck pytest browser bench soak synth clean

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
	$(BIN)/mypy --strict infra app.py tests/infra

# Headless Chromium and chromedriver from the OS packages, for the console's browser tests;
# installed when missing (apt-get, with sudo unless root).
browser:
	scripts/ensure-chromium

pytest: $(VENV)/.dev browser
	$(BIN)/pytest

test: lint typecheck pytest

# Benchmarks (each rewrites its section of benchmarks/RESULTS.md); about 6 minutes. The
# sustained ones use wrk when it is installed (apt-get install wrk), else a Python client.
bench: $(VENV)/.dev
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/tutorial_receiver.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/verify_speed.py
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/retention.py
	$(BIN)/python benchmarks/console_pages.py
	$(BIN)/python benchmarks/rejection_cost.py

# Long fault and fuzz runs (SIGKILLs under load, storage outages, 50,000+ fuzzed requests);
# about 11 minutes, kept out of make test.
soak: $(VENV)/.dev
	$(BIN)/python benchmarks/soak.py

# The AWS CDK CLI, pinned in package-lock.json (only synth and deploy need it).
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

# Writes cdk.out/ (layer built locally, no Docker) and lints the template.
synth: $(VENV)/.dev node_modules/.package-lock.json
	npx cdk synth -c environmentSuffix=$(SUFFIX) --quiet
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out/Payhook-$(SUFFIX).template.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache var cdk.out node_modules
