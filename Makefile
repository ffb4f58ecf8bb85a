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

# The committed findings were computed on an AMD EPYC (AVX2) host; its OpenBLAS and numpy
# kernels, forced here, give the same bits on any x86-64 host (docs/archive.md).
EPYC_KERNELS := OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"

findings: $(STAMP)
	set -e; for script in $(FINDINGS); do $(EPYC_KERNELS) $(BIN)/python $$script; done

lint: $(STAMP)
	$(BIN)/ruff check .
