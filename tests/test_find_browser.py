"""tools/find_browser.py: which browser the browser tests drive, or one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

TOOL = ROOT / "tools" / "find_browser.py"


def run_tool(tmp_path: Path, path: list[Path], *args: str, **env: str):
    """Run the tool as make does, with only ``path`` on PATH and an empty HOME."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environment = {
        "HOME": str(home),
        "PATH": os.pathsep.join(map(str, path)),
        # Where Playwright keeps its own browsers: empty unless a test fills it.
        "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "ms-playwright"),
        **{key: value for key, value in os.environ.items() if "CERT" in key},
        **env,
    }
    return subprocess.run(
        [sys.executable, TOOL, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


def executable(path: Path) -> Path:
    """Write a script at ``path`` that does nothing: a stand-in browser."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_chromium_pointing_nowhere_gets_one_line(tmp_path):
    """CHROMIUM naming no file: one line saying so, exit 1, no traceback."""
    result = run_tool(tmp_path, [tmp_path], "--install", CHROMIUM="/nowhere/chromium")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "CHROMIUM=/nowhere/chromium is not a browser this machine can run (no "
        "executable file there): set CHROMIUM to the path of Chromium or Chrome, "
        "or unset it to let the tests look for one\n"
    )


def test_no_browser_and_failed_download_gets_one_line(tmp_path):
    """No browser anywhere and a download that fails: one line with the fix, exit 1."""
    # Port 9 (discard) on loopback: nothing listens, the download fails at once.
    result = run_tool(
        tmp_path,
        [tmp_path / "empty"],
        "--install",
        "--log",
        str(tmp_path / "install.log"),
        PLAYWRIGHT_DOWNLOAD_HOST="http://127.0.0.1:9",
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    downloading, failed = result.stderr.splitlines()
    assert downloading.startswith("no Chromium or Chrome on this machine: downloading")
    assert failed.startswith(
        "no browser for the browser tests, and downloading Playwright's Chromium "
        f"failed (its output is in {tmp_path / 'install.log'}): install Chromium"
    )
    assert "sudo apt install chromium" in failed
    assert failed.endswith("then run make test again")
    assert "Failed to download" in (tmp_path / "install.log").read_text()


def test_no_browser_without_install_says_what_to_do(tmp_path):
    """Without --install, no browser: one line naming what it looked for and the fix."""
    result = run_tool(tmp_path, [tmp_path / "empty"])
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("no browser for the browser tests: no $CHROMIUM, none of ")
    assert "chromium, chromium-browser, google-chrome, google-chrome-stable" in line
    assert line.endswith("or run make test, which downloads Playwright's Chromium")


def test_path_order_and_the_chosen_one_on_stdout(tmp_path):
    """chromium-browser before google-chrome on PATH; its path alone on stdout."""
    bin_dir = tmp_path / "bin"
    executable(bin_dir / "google-chrome")
    chromium_browser = executable(bin_dir / "chromium-browser")
    result = run_tool(tmp_path, [bin_dir])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{chromium_browser}\n"
    assert result.stderr == (
        f"browser for the browser tests: {chromium_browser} (chromium-browser on PATH)\n"
    )


def test_chromium_variable_comes_first(tmp_path):
    """$CHROMIUM wins over a browser on PATH, as a path or as a command name."""
    executable(tmp_path / "bin" / "chromium")
    mine = executable(tmp_path / "mine" / "my-chrome")
    by_path = run_tool(tmp_path, [tmp_path / "bin"], CHROMIUM=str(mine))
    assert by_path.stdout == f"{mine}\n"
    assert "(from $CHROMIUM)" in by_path.stderr
    by_name = run_tool(
        tmp_path, [tmp_path / "bin", tmp_path / "mine"], CHROMIUM="my-chrome"
    )
    assert by_name.stdout == f"{mine}\n"


def test_playwright_chromium_when_nothing_else(tmp_path):
    """No browser on PATH: Playwright's own Chromium, where Playwright keeps it."""
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "from playwright.sync_api import sync_playwright\n"
            "with sync_playwright() as p: print(p.chromium.executable_path)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "ms-playwright")},
    ).stdout.strip()
    assert where.startswith(str(tmp_path / "ms-playwright"))
    managed = executable(Path(where))
    result = run_tool(tmp_path, [tmp_path / "empty"], "--install")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{managed}\n"
    assert "(Playwright's own Chromium)" in result.stderr


def test_macos_app_after_path(tmp_path):
    """With nothing on PATH, the Chrome app bundle in ~/Applications is found."""
    app = tmp_path / "home/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
    executable(app)
    result = run_tool(tmp_path, [tmp_path / "empty"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{app}\n"
    assert "(macOS app)" in result.stderr
