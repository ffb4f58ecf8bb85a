# The two commands of the README: `make demo` (the main job) and `make test`; `make test-unit`
# is the quick loop (no integration or slow tests), `make lint` and `make docs` what CI checks
# besides tests. Each creates/updates .venv and installs what it needs. Every command these
# targets print works as printed from this folder, in a new shell, without activating .venv.
# `make findings` reruns every question script of analysis/ on the committed results
# (docs/archive.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
STUDY ?= demo
PORT ?= 8080

.PHONY: demo report dashboard test test-unit test-all lint docs readme findings
# generalise.py reads the findings.json of eta_vs_n.py and restarts.py: it runs after them
FINDINGS := $(filter-out analysis/common.py analysis/generalise.py,\
	$(wildcard analysis/*.py)) analysis/generalise.py

# pip prints what it downloads and installs: the first install takes a minute or two
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[dev,docs]'
	touch $(DOCS_STAMP)

# a small real study, then its report and what to run next
demo: $(STAMP)
	$(BIN)/nnlab run studies/demo.toml --jobs 2
	$(BIN)/nnlab report results/demo
	@echo
	@echo "Open results/demo/report.html in a browser. Next, from this folder, in any shell:"
	@echo "  make dashboard STUDY=demo             the study in optuna-dashboard on 127.0.0.1:$(PORT) (Ctrl-C stops it)"
	@echo "  make report STUDY=demo                write the report again (after more runs)"
	@echo "  $(BIN)/nnlab status results/demo   counts, the best configuration, an ETA while runs train"
	@echo "  $(BIN)/nnlab --help                every command"
	@echo "  . $(BIN)/activate                  then type nnlab without $(BIN)/ (in this shell)"

report: $(STAMP)
	$(BIN)/nnlab report results/$(STUDY)

dashboard: $(STAMP)
	$(BIN)/nnlab dashboard results/$(STUDY) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not integration"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

# The committed findings were computed on an AMD EPYC (AVX2) host; its OpenBLAS and numpy
# kernels, forced here, give the same bits on any x86-64 host (docs/archive.md).
EPYC_KERNELS := OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"

findings: $(STAMP)
	set -e; for script in $(FINDINGS); do $(EPYC_KERNELS) $(BIN)/python $$script; done

# mypy checks nnlab/ and analysis/, one run ([tool.mypy] files in pyproject.toml): analysis/
# is not a package, so each script is the top-level module its file name says (`common`,
# `eta_vs_n`), as the scripts import each other
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# the documentation site, strictly (a broken link fails), into site/; runs the notebook
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# the README's findings table, from results/*/findings.json
readme: $(STAMP)
	$(BIN)/python scripts/docs_gen.py readme
