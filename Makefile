# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DB ?= dissensus.duckdb

.PHONY: demo api test test-all lint bench-ingest clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# CPU torch first where no NVIDIA GPU is present: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1; then \
		$(PY) -m pip install --quiet "torch>=2.3,<2.15"; \
	else \
		$(PY) -m pip install --quiet "torch==2.13.0" || $(PY) -m pip install --quiet "torch>=2.3,<2.15"; \
	fi
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

# Builds the demo warehouse (simulate, ingest, fit, train), then serves the dashboards on it.
demo: $(STAMP)
	$(VENV)/bin/dissensus --db $(DB) demo
	$(VENV)/bin/dissensus --db $(DB) serve

# Serves the HTTP API on the warehouse (after `make demo`: the demo warehouse); docs at /docs.
api: $(STAMP)
	$(VENV)/bin/dissensus --db $(DB) api

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu" -n 2 --dist loadfile

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench-ingest: $(STAMP)
	$(PY) benchmarks/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache dissensus.duckdb dissensus_truth
