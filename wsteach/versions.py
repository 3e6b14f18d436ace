"""Which Pythons the kit is tested on, and one line when it runs on another.

The tested versions are the ``Programming Language :: Python :: 3.X``
classifiers of the installed package (``pyproject.toml``), the same list that
CI tests and ``make lock`` checks. ``import wsteach`` on a newer Python says so
once, on stderr, and goes on: the kit should work there, untested. An older
one never gets this far: pip refuses to install the kit on it
(``requires-python``), and ``make`` says which version it needs.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

__all__ = ["say_if_untested", "tested", "untested_line"]

CLASSIFIER = re.compile(r"Programming Language :: Python :: 3\.(\d+)")


def tested(distribution: str = "wsteach") -> list[tuple[int, int]]:
    """``[(3, 11), (3, 12), (3, 13)]``: the installed package's tested versions.

    Empty when the package's metadata can't be read (run from a copy of the
    source that pip never installed).
    """
    try:
        classifiers = metadata.metadata(distribution).get_all("Classifier") or []
    except metadata.PackageNotFoundError:
        return []
    minors = (CLASSIFIER.fullmatch(line) for line in classifiers)
    return sorted((3, int(match[1])) for match in minors if match)


def untested_line(
    version: tuple[int, ...], versions: list[tuple[int, int]]
) -> str | None:
    """The line to say on Python ``version``, or None when it is a tested one."""
    if not versions or tuple(version[:2]) in versions:
        return None
    newest, oldest = versions[-1], versions[0]
    name = f"{version[0]}.{version[1]}"
    span = f"{oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]}"
    return (
        f"wsteach: Python {name} is not one the kit is tested on ({span}): it "
        "should work; if something behaves oddly, tell your instructor, or use "
        f"Python {newest[0]}.{newest[1]}"
    )


def say_if_untested() -> None:
    """Print :func:`untested_line` for the running Python on stderr, if any."""
    line = untested_line(sys.version_info, tested())
    if line is not None:
        print(line, file=sys.stderr)
