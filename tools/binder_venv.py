"""Make the Binder check's venv, or reuse the one built from the same inputs.

``make binder-test`` installs ``binder/requirements.txt`` (every package
pinned, plus this repository's package, the line ``.``) into ``.venv-binder``
with the Python that ``tools/binder_python.py`` picks, then runs the student
notebooks there. Installing the pins takes a minute or more, and they change
only when someone runs ``make lock``.

So the venv records what it was built from (``binder-venv.json`` in it): the
interpreter's path and exact version, the extra packages, and the contents of
the files given with ``--inputs`` (the Makefile gives the requirements,
``binder/runtime.txt`` and ``pyproject.toml``). When all of these are the same,
the venv is kept and only the local packages of the requirements (the ``.``
line) are reinstalled, without their dependencies, so the notebooks run this
checkout's code on exactly the pinned packages. When anything differs, when the
record is missing (a fresh clone, as in CI; a build that stopped half way), or
with ``--fresh`` (``BINDER_FRESH=1 make binder-test``), the venv is deleted and
built from nothing.

The extras (``pytest``, ``nbval``) take their versions from ``--constraint``
(the lock; give it with ``--inputs`` too, so that a new lock rebuilds). A
change to the package's own dependencies in ``pyproject.toml`` always rebuilds.

Usage: ``python tools/binder_venv.py --python PYTHON --venv DIR
--requirements FILE [--constraint FILE] [--inputs FILE ...] [--extra PACKAGE ...]
[--fresh]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["build", "changed", "inputs_of", "local_lines", "main"]

RECORD = "binder-venv.json"


def local_lines(requirements: Path) -> list[str]:
    """The requirement lines that name a local folder (``.``), in order."""
    found = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and (line.startswith((".", "/")) or Path(line).is_dir()):
            found.append(line)
    return found


def inputs_of(python: str, files: list[Path], extra: list[str]) -> dict[str, object]:
    """What a venv built with ``python`` from ``files`` and ``extra`` depends on."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "python": str(Path(shutil.which(python) or python).resolve()),
        "version": version,
        "extra": extra,
        "files": {
            str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files
        },
    }


def run(*command: str | Path) -> None:
    """Run a command as make would: shown first, the build stops if it fails."""
    print("+", shlex.join(map(str, command)), flush=True)
    subprocess.run(command, check=True)


def changed(venv: Path, inputs: dict[str, object]) -> str | None:
    """None when ``venv`` was built, to the end, from these ``inputs``; else what differs."""
    try:
        built = json.loads((venv / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no record of a finished build"
    if not isinstance(built, dict):
        return "no record of a finished build"
    if (
        built.get("python") != inputs["python"]
        or built.get("version") != inputs["version"]
    ):
        return "another Python"
    if built.get("extra") != inputs["extra"]:
        return "other extra packages"
    files = inputs["files"]
    assert isinstance(files, dict)
    old = built.get("files") or {}
    differ = [name for name in files if old.get(name) != files[name]]
    if differ or set(old) != set(files):
        return f"{', '.join(differ) or 'the list of inputs'} changed"
    return None


def build(
    python: str,
    venv: Path,
    requirements: Path,
    extra: list[str],
    inputs: dict,
    constraint: Path | None = None,
) -> None:
    """Build ``venv`` from nothing; the record is written last."""
    shutil.rmtree(venv, ignore_errors=True)
    run(python, "-m", "venv", venv)
    run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "-r",
        requirements,
        *(["-c", constraint] if constraint else []),
        *extra,
    )
    (venv / RECORD).write_text(json.dumps(inputs, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--python", required=True, help="the interpreter to build with")
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--requirements", type=Path, required=True)
    parser.add_argument(
        "--inputs",
        type=Path,
        nargs="*",
        default=[],
        help="more files the venv depends on",
    )
    parser.add_argument("--extra", nargs="*", default=[], help="packages to add")
    parser.add_argument("--constraint", type=Path, help="versions for the extras")
    parser.add_argument(
        "--fresh", action="store_true", help="rebuild, whatever the record says"
    )
    args = parser.parse_args(argv)

    files = [args.requirements, *args.inputs]
    inputs = inputs_of(args.python, files, args.extra)
    why = "--fresh" if args.fresh else changed(args.venv, inputs)
    if why is None:
        print(
            f"Binder check: reusing {args.venv}/, built from the same Python and "
            f"{', '.join(map(str, files))} (BINDER_FRESH=1 rebuilds it)",
            flush=True,
        )
        local = local_lines(args.requirements)
        if local:
            pip = [args.venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
            run(*pip, "--no-deps", "--force-reinstall", *local)
        return 0
    print(f"Binder check: building {args.venv}/ from nothing ({why})", flush=True)
    build(
        args.python, args.venv, args.requirements, args.extra, inputs, args.constraint
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
