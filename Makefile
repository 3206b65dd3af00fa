# radai — two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.radai-installed

.PHONY: demo test setup system-deps python-deps npm-deps lint typecheck bench-ingest clean-demo

demo: setup
	$(VENV)/bin/radai demo

test: setup
	CI=$${CI:-} $(PY) scripts/run-tests.py

setup: system-deps python-deps npm-deps

system-deps:
	@bash scripts/system-deps.sh

python-deps: $(STAMP)

# torch first and pinned: anything else that needs torch then finds 2.13.0 installed
# instead of pulling several GB of CUDA wheels. pneumonia-model-package pins
# tensorflow, which radai does not use: it is installed without its dependencies.
$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "radai needs Python 3.11, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps pneumonia-model-package==0.3.0
	$(PIP) install -q --no-deps onnx2torch==1.5.15
	touch $(STAMP)

npm-deps:
	@bash scripts/npm-deps.sh

lint:
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench-ingest: setup
	$(PY) benchmarks/ingest.py
