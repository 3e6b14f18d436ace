"""Pick the Python for the Binder check: the one binder/runtime.txt names, if here.

Binder builds the students' environment with the Python that
``binder/runtime.txt`` names (``python-3.12``). ``make binder-test`` rebuilds
that environment in a fresh venv, with the same Python where this machine has
it: pyenv's (``$PYENV_ROOT/versions/3.12.*``, ``~/.pyenv`` by default), else
``python3.12`` on ``PATH``. Otherwise it uses the Python that runs ``make``
(``--fallback``) and says that the exact version was not available, so the
check still installs ``binder/requirements.txt`` and runs the notebooks, on a
neighbouring version.

A candidate counts only when it runs and reports the right version: a pyenv
shim for a version that is not installed does not.

Prints the chosen interpreter's path on stdout and one line saying which it is
on stderr. Exits with status 1 and one line when none runs.

``make lock`` (``tools/lock.py``) uses :func:`find` with ``lowest``: the oldest
Python the package supports, in its oldest patch release here (Debian 12's
3.11.2 rather than pyenv's 3.11.7), because some packages need a later patch
release (soupsieve 4 needs 3.11.5), and pins resolved on the oldest install on
all.

Usage: ``python tools/binder_python.py [--version X.Y] [--fallback PYTHON] [--label TEXT]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Choice",
    "candidates",
    "choose",
    "find",
    "main",
    "runtime_version",
    "version_of",
]

ROOT = Path(__file__).resolve().parents[1]


def runtime_version(root: Path = ROOT) -> str:
    """The ``3.X`` that ``binder/runtime.txt`` names."""
    text = (root / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    match = re.fullmatch(r"python-(3\.\d+)", text)
    if match is None:
        raise SystemExit(f"binder/runtime.txt says {text!r}, not python-3.X")
    return match[1]


def version_of(python: str) -> tuple[int, int, int] | None:
    """The ``(X, Y, Z)`` that ``python`` reports, or None when it does not run."""
    code = "import sys, venv; print('%d %d %d' % sys.version_info[:3])"
    try:
        result = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    major, minor, patch = map(int, result.stdout.split())
    return major, minor, patch


def dotted(version: tuple[int, ...]) -> str:
    """``(3, 11, 2)`` as ``3.11.2``."""
    return ".".join(map(str, version))


def candidates(version: str, *, every: bool = False) -> list[str]:
    """Interpreters that may be Python ``version``: pyenv's newest first, then PATH.

    With ``every``, each ``pythonX.Y`` on ``PATH`` counts, not only the first.
    """
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = []
    installed = pyenv.glob(f"versions/{version}.*/bin/python{version}")
    patch = re.compile(rf"{re.escape(version)}\.(\d+)")

    def newest_first(path: Path) -> int:
        match = patch.fullmatch(path.parents[1].name)
        return -int(match[1]) if match else 0

    found.extend(str(path) for path in sorted(installed, key=newest_first))
    if every:
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            path = Path(folder or ".") / f"python{version}"
            if path.is_file() and os.access(path, os.X_OK):
                found.append(str(path))
    else:
        on_path = shutil.which(f"python{version}")
        if on_path:
            found.append(on_path)
    return found


@dataclass(frozen=True)
class Choice:
    """The chosen interpreter, and the line that says why."""

    python: str
    line: str


def find(version: str, *, lowest: bool = False) -> tuple[str, str] | None:
    """An interpreter of ``version`` here, and its full version; None if none runs.

    With ``lowest``, the oldest patch release found anywhere (pins resolved
    there install on later ones), else the first found.
    """
    wanted = tuple(map(int, version.split(".")))
    found = []
    for python in candidates(version, every=lowest):
        actual = version_of(python)
        if actual is not None and actual[:2] == wanted:
            found.append((actual, python))
            if not lowest:
                break
    if not found:
        return None
    actual, python = min(found)
    return python, dotted(actual)


def choose(
    version: str, fallback: str, *, label: str = "Binder check", why: str = ""
) -> Choice:
    """Python ``version`` when one runs here, else ``fallback``, said aloud.

    ``label`` starts the line; ``why`` says where ``version`` comes from.

    Raises:
        SystemExit: with one line, when not even ``fallback`` runs.
    """
    here = find(version)
    if here is not None:
        python, actual = here
        return Choice(python, f"{label}: Python {version}{why}, {python} ({actual})")
    path = shutil.which(fallback) or fallback
    actual_version = version_of(path)
    if actual_version is None:
        raise SystemExit(
            f"{label}: no Python {version} here{why}, and "
            f"{fallback} does not run either: install Python {version} or pass "
            f"BINDER_PYTHON=/path/to/python{version}"
        )
    return Choice(
        path,
        f"{label}: Python {version}{why} is not available here, so it uses "
        f"Python {dotted(actual_version)} ({path}), which runs make: the exact "
        "version is not the one tested",
    )


def main(argv: list[str] | None = None) -> int:
    """Print the chosen interpreter's path; the line saying why goes to stderr."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", help="X.Y (default: binder/runtime.txt's)")
    parser.add_argument(
        "--fallback", default=sys.executable, help="used when X.Y is not here"
    )
    parser.add_argument("--label", default="Binder check", help="starts the line")
    args = parser.parse_args(argv)
    if args.version:
        version, why = args.version, ""
    else:
        version, why = runtime_version(), " (binder/runtime.txt)"
    choice = choose(version, args.fallback, label=args.label, why=why)
    print(choice.line, file=sys.stderr)
    print(choice.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
