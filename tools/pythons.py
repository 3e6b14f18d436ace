"""The Pythons the kit is tested on, and which of them this machine has.

The tested versions are the ``Programming Language :: Python :: 3.X``
classifiers of ``pyproject.toml``: one list, read by ``make lock`` (the lock
must install on each), ``.ci/run`` (the suite runs on each one here) and the
package itself (``wsteach`` says once when it runs on another).

An interpreter counts when it runs and reports the right version, found as
``tools/binder_python.py`` finds one: pyenv's (``$PYENV_ROOT`` or
``~/.pyenv``), then ``python3.X`` on ``PATH``. A user's machine needs none of
them but the one that runs ``make``.

Usage: ``python tools/pythons.py`` prints ``3.X PATH`` for each tested version
found here, one per line, and one line on stderr naming those it lacks.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from binder_python import find

__all__ = ["find", "main", "tested"]

ROOT = Path(__file__).resolve().parents[1]


def tested(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``["3.11", "3.12", "3.13"]``: the versions the classifiers name, oldest first."""
    with pyproject.open("rb") as file:
        classifiers = tomllib.load(file)["project"].get("classifiers", [])
    found = []
    for classifier in classifiers:
        match = re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", classifier)
        if match:
            found.append(match[1])
    return sorted(found, key=lambda version: int(version.split(".")[1]))


def main() -> int:
    missing = []
    for version in tested():
        here = find(version)
        if here is None:
            missing.append(version)
        else:
            print(version, here[0])
    if missing:
        print(
            f"tested Pythons not on this machine: {', '.join(missing)}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
