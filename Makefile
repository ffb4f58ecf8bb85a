# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates/updates .venv and installs what it needs. `make findings` reruns every
# question script of analysis/ on the committed results (docs/archive.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint findings
FINDINGS := $(filter-out analysis/common.py,$(wildcard analysis/*.py))

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nnlab run studies/demo.toml --jobs 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

findings: $(STAMP)
	set -e; for script in $(FINDINGS); do $(BIN)/python $$script; done

lint: $(STAMP)
	$(BIN)/ruff check .
