# The two commands: `make lab` and `make test`. Both create .venv when it is
# missing and reinstall only when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_STAMP := $(VENV)/.installed-lab
TEST_STAMP := $(VENV)/.installed-test
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
PYTEST := $(BIN)/python -m pytest

.PHONY: lab test lint unit browser-test binder-venv binder-test binder-pin notebooks-test notebooks bench autobahn clean

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

## make test: lint, unit and integration tests with coverage, the notebooks, the Binder environment
test: lint unit notebooks-test binder-test

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(TEST_STAMP)
	$(PYTEST) --cov=wsteach --cov-report=term --cov-fail-under=95 tests

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

## make autobahn: fuzz wsteach serve echo and plain websockets with the Autobahn|Testsuite
## (cases 1-7, 9, 10; needs Python 2.7: PYTHON27=/path/to/python2.7; not part of make test)
autobahn: $(LAB_STAMP)
	PYTHON27="$(PYTHON27)" $(BIN)/python tools/autobahn.py

## make browser-test: only the tests in Chromium and Jupyter (make test runs them too)
browser-test: $(TEST_STAMP)
	$(PYTEST) -m browser --durations=10 tests/browser

# The Binder environment: the Python that binder/runtime.txt names (from pyenv,
# else pythonX.Y on PATH), and binder/requirements.txt, in a venv made afresh.
BINDER_VENV := .venv-binder
BINDER_PY_VERSION := $(shell sed -n 's/^python-//p' binder/runtime.txt)
BINDER_PYTHON ?= $(or $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/$(BINDER_PY_VERSION).*/bin/python))),$(shell command -v python$(BINDER_PY_VERSION)))
STUDENT_NOTEBOOKS := $(wildcard notebooks/*.ipynb)
NBVAL_SANITIZE := $(if $(wildcard tests/nbval_sanitize.cfg),--nbval-sanitize-with tests/nbval_sanitize.cfg)

binder-venv:
	@test -n "$(BINDER_PYTHON)" || { echo "no Python $(BINDER_PY_VERSION) found, which binder/runtime.txt asks for: install it (pyenv install $(BINDER_PY_VERSION)) or pass BINDER_PYTHON=/path/to/python$(BINDER_PY_VERSION)"; exit 1; }
	rm -rf $(BINDER_VENV)
	$(BINDER_PYTHON) -m venv $(BINDER_VENV)

## make binder-test: install binder/requirements.txt in a fresh venv, run the student notebooks there
binder-test: binder-venv
	$(BINDER_VENV)/bin/python -m pip install --quiet -r binder/requirements.txt pytest nbval
	$(BINDER_VENV)/bin/python -m pip check
	$(BINDER_VENV)/bin/jupyter server extension list 2>&1 | grep -E "jupyter_server_proxy .*enabled"
	$(BINDER_VENV)/bin/python -c "import wsteach.web; wsteach.web.page('chat.js')"
ifneq ($(STUDENT_NOTEBOOKS),)
	$(BINDER_VENV)/bin/python -m pytest -p no:cacheprovider -c /dev/null --rootdir=. \
		--nbval-lax --nbval-cell-timeout=60 $(NBVAL_SANITIZE) $(STUDENT_NOTEBOOKS)
else
	@echo "binder-test: no student notebooks in notebooks/ yet (make notebooks makes them): the environment installed and checked, no notebook run"
endif

## make binder-pin: rewrite binder/requirements.txt from a clean install of this package
binder-pin: binder-venv
	$(BINDER_VENV)/bin/python -m pip install --quiet .
	{ sed '/^# Everything it needs/q' binder/requirements.txt; \
	  $(BINDER_VENV)/bin/python -m pip freeze --exclude wsteach; } > binder/requirements.txt.new
	mv binder/requirements.txt.new binder/requirements.txt

clean:
	rm -rf $(VENV) $(BINDER_VENV) .autobahn .pytest_cache .ruff_cache .coverage
