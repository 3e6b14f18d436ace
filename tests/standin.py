"""Stand-in interpreters for tests: the real Python, reporting another version.

A stand-in is an executable script that runs this machine's Python with a
``sitecustomize`` that sets ``sys.version_info`` to the version asked for, so
that code which reads it (``tools/check_python.py``, ``tools/binder_python.py``)
takes the path it takes on that version, with no such Python installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["REAL_PYTHON", "standin_python"]

# The interpreter under the venv, so that a stand-in needs no venv of its own.
REAL_PYTHON = getattr(sys, "_base_executable", sys.executable)


def standin_python(folder: Path, name: str, version: tuple[int, ...]) -> Path:
    """Write ``folder/name``: this Python, with ``sys.version_info`` = ``version``.

    ``version`` is ``(X, Y)`` (patch release 0) or ``(X, Y, Z)``.
    """
    release = (*version, 0)[:3]
    fake = folder / f".{name}-site"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / "sitecustomize.py").write_text(
        f"import sys\nsys.version_info = {(*release, 'final', 0)!r}\n"
    )
    script = folder / name
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{fake}" exec "{REAL_PYTHON}" "$@"\n')
    script.chmod(0o755)
    return script
