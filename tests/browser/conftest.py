"""Fixtures for tests in a real browser: Chromium or Chrome, and a Jupyter server.

The browser is the one ``tools/find_browser.py`` finds, the same that
``make test`` names: ``$CHROMIUM``, else Chromium or Chrome on ``PATH`` (Debian's
``chromium`` in CI) or the macOS app, else Playwright's own Chromium, which
``make test`` downloads when there is nothing else. Playwright's Python package
launches it with the flags below. A missing browser fails the tests with the
line that says what to do; it never skips them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import nbformat
import pytest
from conftest import load_tool
from utils import FACTOR

from wsteach.listening import free_port

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]


find_browser = load_tool("find_browser")


def chromium() -> str:
    """The browser's path, found as ``make test`` finds it; fails the test if none."""
    try:
        return find_browser.find().path
    except find_browser.BrowserNotFound as error:
        pytest.fail(str(error), pytrace=False)


ARTIFACTS = ROOT / "test-artifacts"


def timeout_ms(seconds: float) -> float:
    """Milliseconds for Playwright, scaled by ``WSTEACH_FACTOR``."""
    return seconds * 1000 * FACTOR


@contextlib.contextmanager
def serving_until_stopped(
    process: subprocess.Popen[bytes], server: Any, log: BinaryIO
) -> Iterator[None]:
    """Wait until the ``jupyter server`` process answers, then stop it after the block.

    ``server.api`` is asked for ``api/status`` every 0.2 s for up to 60 s; a
    process that exits or never answers fails the test with the end of ``log``.
    """
    try:
        deadline = time.monotonic() + 60 * FACTOR
        while True:
            try:
                server.api("GET", "api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    output = Path(log.name).read_text(errors="replace")
                    pytest.fail(f"jupyter server did not start:\n{output[-3000:]}")
                time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Jupyter:
    """A running ``jupyter server`` with JupyterLab and jupyter-server-proxy."""

    url: str  # http://127.0.0.1:PORT/BASE/, ending with /
    base_url: str  # /BASE/
    token: str
    root_dir: Path
    runtime_dir: Path

    def api(self, method: str, path: str) -> dict[str, object]:
        """Call the Jupyter REST API and return the decoded JSON answer."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"{}" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else {}


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    """``jupyter server`` on a free port, a non-root base URL and a token.

    Config, data and runtime directories are fresh, so no setting of this
    machine's user leaks in; the kernels it starts inherit the runtime
    directory, where ``wsteach.web.proxy_url`` finds the server's info file.
    """
    home = tmp_path_factory.mktemp("jupyter")
    root_dir = home / "root"
    runtime_dir = home / "runtime"
    root_dir.mkdir()
    port = free_port()
    token = secrets.token_hex(16)
    base_url = "/jupyter/"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    # No "Would you like to get notified about official Jupyter news?" toast,
    # and no request for the news feed.
    notification = home / "config/lab/user-settings/@jupyterlab/apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("jupyter")),
            "server",
            "--no-browser",
            "--allow-root",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.base_url={base_url}",
            f"--ServerApp.root_dir={root_dir}",
            f"--IdentityProvider.token={token}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Jupyter(
        f"http://127.0.0.1:{port}{base_url}", base_url, token, root_dir, runtime_dir
    )
    with serving_until_stopped(process, server, log):
        yield server


@pytest.fixture
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root: screenshots kept after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def copy_notebook(source: Path, jupyter: Jupyter, port: int) -> str:
    """Copy ``source`` into the Jupyter server's root; return its name there.

    The lesson's port, 7890, becomes ``port`` in every code cell, so the test
    never depends on 7890 being free.
    """
    notebook = nbformat.read(source, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = cell.source.replace("7890", str(port))
    nbformat.write(notebook, jupyter.root_dir / source.name)
    return source.name
