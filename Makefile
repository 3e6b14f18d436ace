# The two commands: `make lab` and `make test`. Both create .venv when it is
# missing and reinstall only when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_STAMP := $(VENV)/.installed-lab
TEST_STAMP := $(VENV)/.installed-test
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
PYTEST := $(BIN)/python -m pytest

.PHONY: lab test lint unit notebooks-test notebooks bench clean

$(BIN)/python:
	@$(PYTHON) tools/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LAB_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(LAB_STAMP)

## make lab: install the kit and open JupyterLab on the start-here notebook
lab: $(LAB_STAMP)
	@echo "Starting JupyterLab: open the URL below (with its token) in your browser."
	$(BIN)/jupyter lab $(ROOT_FLAG) $(LAB_ARGS) \
		$(shell [ -f notebooks/00-start-here.ipynb ] && echo notebooks/00-start-here.ipynb || echo notebooks)

## make test: lint, unit and integration tests with coverage, then the notebooks
test: lint unit notebooks-test

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(TEST_STAMP)
	$(PYTEST) --cov=wsteach --cov-report=term --cov-fail-under=90 tests

NBVAL := --nbval-cell-timeout=60 -p no:cacheprovider -o testpaths=notebooks

## solution notebooks: outputs compared strictly; student notebooks: must run
notebooks-test: $(TEST_STAMP)
	$(PYTEST) $(NBVAL) --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/solutions
	$(PYTEST) $(NBVAL) --nbval-lax notebooks/*.ipynb

## make notebooks: execute the solution notebooks, regenerate the student ones
notebooks: $(TEST_STAMP)
	$(BIN)/python tools/make_notebooks.py

## make bench: wsteach against plain websockets, one table (about 2 minutes)
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage
