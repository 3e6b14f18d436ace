"""Shared fixtures: every test starts real servers on free ports and stops them.

The tests that need a browser share one Chromium for the whole session
(:func:`chromium_endpoint`); each test connects to it over the DevTools protocol
and gets contexts of its own, closed after it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from playwright.async_api import Browser, async_playwright
from utils import FACTOR

import wsteach

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Jupyter's runtime folder for this test session, not the user's: the records
# of the servers the tests start (wsteach.registry) and of the Jupyter servers
# they run stay here, where a lab of the user's never sees them.
RUNTIME_DIR = tempfile.mkdtemp(prefix="wsteach-tests-runtime-")
os.environ["JUPYTER_RUNTIME_DIR"] = RUNTIME_DIR


# Coverage measures a subprocess when its environment carries this variable
# (coverage's `patch = ["subprocess"]`, pyproject.toml). Measuring every one
# made the suite a quarter slower: Jupyter servers, kernels, nbval runs and
# make all ran traced. So the session takes it out of the environment, and the
# processes that run wsteach code the gate needs (`python -m wsteach`, a
# script that exits with a server running) ask for it with measured().
SUBPROCESS_COVERAGE = "COVERAGE_PROCESS_CONFIG"
_coverage_config: str | None = None


@pytest.fixture(scope="session", autouse=True)
def _measure_only_processes_that_ask() -> None:
    """Take coverage's subprocess variable out of the session's environment."""
    global _coverage_config
    _coverage_config = os.environ.pop(SUBPROCESS_COVERAGE, None)


def measured(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this environment) for a subprocess coverage measures."""
    env = dict(os.environ if env is None else env)
    if _coverage_config is not None:
        env[SUBPROCESS_COVERAGE] = _coverage_config
    return env


# The tests that run make (tests/test_make.py) run it as a user would, not as
# part of the make that runs the tests (make test runs its stages with -j3):
# an outer make's jobserver in MAKEFLAGS makes the inner one warn.
# Nor the variables given on its command line (make PYTHON=… test), which make
# exports to the tests' environment: a user's make sets none of them.
_MAKE_ONLY = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON", "VENV", "COV_ARGS")
for _name in (*_MAKE_ONLY, "JUNIT", "PYTEST_ARGS", "LOW_PRIORITY", "BINDER_PYTHON"):
    os.environ.pop(_name, None)


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py``, imported from its file once (tools/ is no package)."""
    if name not in sys.modules:
        path = ROOT / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def run_nbval(
    tmp_path: Path, plugin: str, *sources: str
) -> subprocess.CompletedProcess[str]:
    """Run a notebook of ``sources`` through nbval (lax) with the plugin ``tests/<plugin>.py``."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, tmp_path / "lesson.ipynb")
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", plugin, "--nbval-lax", "-v"),
            *("-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", "/dev/null"),
            str(tmp_path / "lesson.ipynb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT / "tests"), "PATH": "/usr/bin:/bin"},
    )


def pytest_sessionfinish() -> None:
    """Remove the session's Jupyter runtime folder."""
    shutil.rmtree(RUNTIME_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def _exercises_wait_one_second_for_a_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exercises wait 2 s for a reply (a student's busy laptop); tests wait 1 s.

    Here a reply comes within milliseconds, and the many tests of answers that
    send nothing end twice as soon.
    """
    from wsteach.exercises import _core

    monkeypatch.setattr(_core, "REPLY_TIMEOUT", 1.0)


@pytest.fixture(autouse=True)
def _no_class_remembered(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """wsteach.join remembers a class in a temporary file, never in the real home."""
    path = tmp_path_factory.mktemp("class") / "class.json"
    monkeypatch.setenv("WSTEACH_CLASS_FILE", str(path))
    monkeypatch.delenv("WSTEACH_CLASS", raising=False)


@pytest.fixture(autouse=True)
async def _stop_servers():
    """Stop whatever servers a test left running, so tests stay independent."""
    yield
    await wsteach.stop_all()


@pytest.fixture(scope="session")
def chromium_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One headless Chromium for the session: its DevTools WebSocket address."""
    from browser.conftest import CHROMIUM_ARGS, chromium

    profile = tmp_path_factory.mktemp("chromium-profile")
    log = profile.parent / "chromium.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                chromium(),
                *CHROMIUM_ARGS,
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    # Chromium writes its port, then the endpoint's path, once it listens.
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30 * FACTOR
    try:
        while len(lines := (active.read_text().split() if active.exists() else [])) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "Chromium did not start:\n" + log.read_text(), pytrace=False
                )
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{lines[0]}{lines[1]}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def browser(chromium_endpoint: str) -> AsyncIterator[Browser]:
    """The session's Chromium; the contexts and pages a test opens close after it."""
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium_endpoint)
        try:
            yield connected
        finally:
            await connected.close()
