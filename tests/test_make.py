"""The Makefile: a too-old Python is refused in one line; make lab opens the start notebook."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser.conftest import timeout_ms
from conftest import ROOT
from playwright.async_api import expect
from standin import REAL_PYTHON, standin_python
from test_examples import free_port
from utils import FACTOR


def test_too_old_python_gets_one_clear_line(tmp_path):
    """make with a python3 that is 3.10 prints which version is needed, no traceback, exit non-zero."""
    bin_dir = tmp_path / "bin"
    old = standin_python(bin_dir, "python3", (3, 10))
    result = subprocess.run(
        ["make", "-s", "lab", f"VENV={tmp_path}/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "wsteach needs Python 3.11 or newer, but "
        f"{old_sys_executable(old)} is Python 3.10; install a newer Python "
        "and run: make PYTHON=python3.11 ..."
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "venv").exists()


def old_sys_executable(standin: Path) -> str:
    """What ``sys.executable`` is in a stand-in: the real interpreter it runs."""
    return subprocess.run(
        [standin, "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_check_python_names_python2_in_one_line(tmp_path):
    """On a Python that reports 2.7, the check prints one line and exits 1."""
    python2 = standin_python(tmp_path, "python2", (2, 7))
    result = subprocess.run(
        [python2, "tools/check_python.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "is Python 2.7; install a newer Python" in result.stderr


# Syntax that Python 2.7 cannot parse, which Python 3's own parser accepts.
NEWER_THAN_PY2 = (
    ast.JoinedStr,  # f-strings
    ast.AnnAssign,
    ast.NamedExpr,
    ast.AsyncFunctionDef,
    ast.Await,
    ast.Nonlocal,
    ast.YieldFrom,
    ast.MatMult,
    ast.Starred,
)


def test_check_python_uses_no_syntax_newer_than_python2():
    """tools/check_python.py has no syntax Python 2.7 rejects, so an old Python runs it."""
    tree = ast.parse((ROOT / "tools" / "check_python.py").read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, NEWER_THAN_PY2), ast.dump(node)
        if isinstance(node, ast.arguments):
            assert not node.kwonlyargs and not node.posonlyargs
            assert all(arg.annotation is None for arg in node.args)
        if isinstance(node, ast.FunctionDef):
            assert node.returns is None
        if isinstance(node, ast.ImportFrom):
            assert node.module != "__future__"
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
            pytest.fail("print(...) is a statement in Python 2: use sys.stderr.write")


def test_missing_venv_module_gets_one_clear_line(tmp_path):
    """A Python without ensurepip (Debian without python3-venv) is told what to install."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.modules['ensurepip'] = None\n"
    )
    result = subprocess.run(
        [REAL_PYTHON, "tools/check_python.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 1
    assert result.stderr == (
        "wsteach needs Python's venv module, which this Python lacks; "
        "on Debian or Ubuntu run: sudo apt install python3-venv\n"
    )


def test_make_lab_installs_no_test_extras(tmp_path):
    """make lab installs the package alone, no test extras; --allow-root only as root."""
    result = subprocess.run(
        ["make", "-n", "lab", f"VENV={tmp_path}/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    locked = "-c requirements/lock.txt --build-constraint requirements/lock.txt"
    assert f"pip install --quiet -e . {locked}\n" in result.stdout, "from the lock"
    assert "pip install --quiet --upgrade pip -c requirements/lock.txt" in result.stdout
    assert "[test]" not in result.stdout
    # Jupyter refuses to run as root without --allow-root; a normal user gets none.
    assert ("--allow-root" in result.stdout) == (os.geteuid() == 0)


START_URL = re.compile(
    r"http://(?:localhost|127\.0\.0\.1):\d+/lab/tree/notebooks/00-start-here\.ipynb"
    r"\?token=[0-9a-f]+"
)


def status_of(url: str, deadline: float) -> int:
    """The HTTP status that ``url`` answers with, once its server listens.

    Jupyter Server prints its URLs before it binds its port (``start_app``
    logs them; ``_bind_http_server`` runs once the event loop starts), so a
    refused connection right after the URL appears is retried until
    ``deadline`` (a ``time.monotonic()`` value).
    """
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status
        except urllib.error.URLError as error:
            refused = isinstance(error.reason, ConnectionRefusedError)
            if not refused or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@pytest.mark.browser
async def test_make_lab_prints_a_url_that_opens_the_start_notebook(tmp_path, browser):
    """make lab prints a URL with its token; in Chromium it shows 00-start-here, /lab answers 200."""
    port = free_port()
    env = {
        **os.environ,
        # A fresh Jupyter configuration and workspace, as on a new machine.
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    env.pop("JUPYTER_TOKEN", None)
    args = f"--no-browser --port={port} --ServerApp.port_retries=0"
    log = tmp_path / "lab.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            "make",
            "-s",
            "lab",
            f"LAB_ARGS={args}",
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90 * FACTOR
        while not (found := START_URL.search(log.read_text(errors="replace"))):
            assert process.returncode is None, "make lab exited:\n" + log.read_text()
            assert time.monotonic() < deadline, "no URL printed:\n" + log.read_text()
            await asyncio.sleep(0.2)
        url = found[0]
        token = url.split("?token=")[1]
        assert await asyncio.to_thread(status_of, url, deadline) == 200
        lab = f"http://127.0.0.1:{port}/lab?token={token}"
        assert await asyncio.to_thread(status_of, lab, deadline) == 200

        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(url)
        tab = page.locator(".lm-TabBar-tab.jp-mod-current")
        await expect(tab).to_contain_text("00-start-here.ipynb", timeout=timeout_ms(60))
        heading = page.locator(".jp-NotebookPanel h1", has_text="00 · Start here")
        await expect(heading.first).to_be_visible(timeout=timeout_ms(60))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await process.wait()
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    first = log.read_text().splitlines()[0]
    assert first.startswith("make lab: JupyterLab opens notebooks/00-start-here.ipynb")


def test_docs_name_the_url_make_lab_prints():
    """The README and the setup page describe the start-here URL that make lab sets."""
    makefile = (ROOT / "Makefile").read_text()
    (start,) = re.findall(r"^START_URL := (\S+)$", makefile, re.MULTILINE)
    for doc in ("README.md", "docs/learners/setup.md"):
        assert f"`{start}?token=…`" in (ROOT / doc).read_text(), doc
