"""The README's two commands: a too-old Python is refused in one line; make lab serves /lab."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest
from conftest import ROOT, TIMEOUT_FACTOR
from test_examples import free_port


def old_python() -> str:
    found = sorted(glob.glob("/root/.pyenv/versions/3.10.*/bin/python3"))
    if not found:
        pytest.fail("this test needs an old Python: pyenv's 3.10 was not found")
    return found[0]


def test_too_old_python_gets_one_clear_line(tmp_path):
    """make with Python 3.10 prints which version is needed, no traceback, exit non-zero."""
    result = subprocess.run(
        ["make", "-s", "lab", f"PYTHON={old_python()}", f"VENV={tmp_path}/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("wsteach needs Python 3.11 or newer, but ")
    assert "is Python 3.10; install a newer Python" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "venv").exists()


def test_check_python_runs_on_python2():
    """The version check itself runs on a very old interpreter."""
    python2 = sorted(glob.glob("/root/.pyenv/versions/2.7.*/bin/python2"))
    if not python2:
        pytest.fail("this test needs pyenv's Python 2.7")
    result = subprocess.run(
        [python2[0], "tools/check_python.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "is Python 2.7" in result.stderr


def test_make_lab_serves_jupyterlab():
    """make lab starts JupyterLab, which answers 200 on /lab with the token."""
    port = free_port()
    token = "wsteach-test"
    args = f"--no-browser --port={port} --IdentityProvider.token={token}"
    process = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60 * TIMEOUT_FACTOR
        status = None
        while time.monotonic() < deadline and status is None:
            time.sleep(0.5)
            try:
                url = f"http://127.0.0.1:{port}/lab?token={token}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    status = response.status
                    page = response.read().decode()
            except OSError:
                assert process.poll() is None, "make lab exited early"
        assert status == 200
        assert "JupyterLab" in page
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert re.search(r"http://(localhost|127\.0\.0\.1):\d+/lab", output), output
    assert "00-start-here.ipynb" in output or "notebooks" in output
