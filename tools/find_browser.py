"""Find the Chromium or Chrome that the browser tests drive, or get one.

The one place that decides which browser the tests use: ``make test`` runs it
as a script, and the tests call :func:`find`. The search order is

1. ``$CHROMIUM``: a path (or a command on ``PATH``); when set, it is the only
   candidate, so a wrong value is an error, never silently replaced;
2. ``chromium``, ``chromium-browser``, ``google-chrome``,
   ``google-chrome-stable`` on ``PATH``;
3. the macOS app bundles of Chromium and Google Chrome (in ``/Applications``
   and ``~/Applications``);
4. Playwright's own Chromium, when ``python -m playwright install chromium``
   has put it in place; with ``--install``, this script runs that download
   when nothing else was found.

As a script it prints the browser's path on stdout and one line saying which
browser it is and why on stderr. When there is none, it prints one line that
says what to do and exits with status 1, without a traceback.

Usage: ``python tools/find_browser.py [--install] [--log FILE]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NAMES", "BrowserNotFound", "Found", "app_paths", "find", "main"]

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
APPS = (
    "Chromium.app/Contents/MacOS/Chromium",
    "Google Chrome.app/Contents/MacOS/Google Chrome",
)
HOW_TO_INSTALL = (
    "install Chromium or Chrome (Debian/Ubuntu: sudo apt install chromium; "
    "Fedora: sudo dnf install chromium; macOS: brew install --cask chromium, "
    "or Google Chrome from google.com/chrome) or set CHROMIUM=/path/to/chrome"
)
# Playwright's Chromium is about 150 MB; a slow line gets a quarter of an hour.
INSTALL_TIMEOUT = 900


class BrowserNotFound(Exception):
    """No browser for the browser tests; the message says what to do."""


@dataclass(frozen=True)
class Found:
    """A browser the tests can launch: its path, and how it was found."""

    path: str
    how: str


def runnable(path: str | Path) -> bool:
    """Whether ``path`` is an executable file."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


def app_paths() -> list[Path]:
    """The macOS app bundles' executables, in the order they are tried."""
    folders = [Path("/Applications"), Path.home() / "Applications"]
    return [folder / app for app in APPS for folder in folders]


def playwright_chromium() -> str | None:
    """The path of Playwright's own Chromium when it is installed, else None.

    Asks Playwright in a child process, so that it works from code that runs
    in an asyncio event loop too (Playwright's sync API refuses to).
    """
    code = (
        "from playwright.sync_api import sync_playwright\n"
        "with sync_playwright() as playwright:\n"
        "    print(playwright.chromium.executable_path)\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = result.stdout.strip()
    if result.returncode == 0 and path and runnable(path):
        return path
    return None


def install_playwright_chromium(log: Path) -> None:
    """Download Playwright's Chromium, its output going to ``log``.

    Raises:
        BrowserNotFound: when the download fails or takes too long.
    """
    command = [sys.executable, "-m", "playwright", "install", "chromium"]
    print(
        "no Chromium or Chrome on this machine: downloading Playwright's Chromium "
        f"(about 150 MB, once; log: {log})",
        file=sys.stderr,
        flush=True,
    )
    with log.open("wb") as output:
        try:
            result = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
            failed = result.returncode != 0
        except (OSError, subprocess.TimeoutExpired) as error:
            output.write(f"\n{error}\n".encode())
            failed = True
    if failed:
        raise BrowserNotFound(
            "no browser for the browser tests, and downloading Playwright's "
            f"Chromium failed (its output is in {log}): {HOW_TO_INSTALL}, "
            "then run make test again"
        )


def find(*, install: bool = False, log: Path | None = None) -> Found:
    """The browser for the browser tests, in the order the module docstring says.

    Args:
        install: download Playwright's Chromium when no browser is found.
        log: where the download's output goes (a temporary file by default).

    Raises:
        BrowserNotFound: when ``$CHROMIUM`` names nothing runnable, or when
            no browser is found (and, with ``install``, the download failed).
    """
    chosen = os.environ.get("CHROMIUM", "")
    if chosen:
        path = chosen if runnable(chosen) else shutil.which(chosen)
        if path is None:
            raise BrowserNotFound(
                f"CHROMIUM={chosen} is not a browser this machine can run "
                "(no executable file there): set CHROMIUM to the path of "
                "Chromium or Chrome, or unset it to let the tests look for one"
            )
        return Found(path, "from $CHROMIUM")
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return Found(path, f"{name} on PATH")
    for app in app_paths():
        if runnable(app):
            return Found(str(app), "macOS app")
    path = playwright_chromium()
    if path is None and install:
        if log is None:
            log = Path(tempfile.mkstemp(prefix="playwright-install-", suffix=".log")[1])
        install_playwright_chromium(log)
        path = playwright_chromium()
        if path is None:
            raise BrowserNotFound(
                "Playwright's Chromium downloaded, but Playwright does not find "
                f"it (see {log}): {HOW_TO_INSTALL}"
            )
    if path is None:
        raise BrowserNotFound(
            "no browser for the browser tests: no $CHROMIUM, none of "
            f"{', '.join(NAMES)} on PATH, no Chromium or Chrome app and no "
            f"Playwright Chromium; {HOW_TO_INSTALL}, or run make test, which "
            "downloads Playwright's Chromium"
        )
    return Found(path, "Playwright's own Chromium")


def main(argv: list[str] | None = None) -> int:
    """Print the browser's path, or one line saying what to do; return the status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--install",
        action="store_true",
        help="download Playwright's Chromium when no browser is found",
    )
    parser.add_argument("--log", type=Path, help="where the download's output goes")
    args = parser.parse_args(argv)
    try:
        found = find(install=args.install, log=args.log)
    except BrowserNotFound as error:
        print(error, file=sys.stderr)
        return 1
    print(f"browser for the browser tests: {found.path} ({found.how})", file=sys.stderr)
    print(found.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
