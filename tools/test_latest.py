"""Early warning: the newest releases of everything, tested before they reach the lock.

``make test-latest`` runs this. It builds ``.venv-latest`` from nothing with
the Python that runs it, installs ``.[test]`` with no lock (the newest release
of every package that the ranges of ``pyproject.toml`` allow), and says which
packages are newer than ``requirements/lock.txt``. Then it runs the unit tests
and the solution notebooks there, as ``make test`` does (``make unit
notebooks-test`` with ``VENV=.venv-latest``, coverage left out).

It first makes sure that ``make test``'s own ``.venv`` exists (some tests run
``make lab``). When something fails, it finds which new version breaks what. For the failed
tests it first puts back the lock's versions: a test that fails with them too
is not an upgrade's doing (flaky, or broken on main). Then, for each newer
package in turn, it installs the lock with just that package at its newest
release (and whatever that release needs), and runs the failed tests again:
those that fail are that package's. It ends with one line per culprit:
``redis 8.1.0 -> 8.2.0 breaks tests/test_pubsub.py::test_x``.

When everything passes, it writes what it passed with to
``.venv-latest/passed.txt``: ``make lock`` then moves the lock to those
versions, and refuses any version that has not passed here.

It is not part of ``make test`` or CI's verdict: a release upstream must never
turn a clone's build red. Exit status 0 when all passed, 1 otherwise.

Usage: ``python tools/test_latest.py [--keep]`` (``--keep`` reuses
``.venv-latest`` as it is, skipping the install).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lock import LOCK, PASSED, changes, parse_pins, read_pins

__all__ = ["blame", "failures", "main", "newer"]

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-latest"
STAGES = ("unit", "notebooks-test")
#: A test that only checks the lock itself: it fails on purpose here.
DESELECT = "tests/test_lock.py::test_the_venv_holds_the_locks_versions"


def run(*command: str | Path, **options) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(map(str, command)), flush=True)
    return subprocess.run([str(part) for part in command], text=True, **options)


def pip(*args: str | Path) -> None:
    result = run(
        VENV / "bin" / "python", "-m", "pip", "install", "--quiet", *args, cwd=ROOT
    )
    if result.returncode != 0:
        raise SystemExit(f"test-latest: pip install {' '.join(map(str, args))} failed")


def installed() -> dict[str, tuple[str, str, str]]:
    """What ``.venv-latest`` holds, as :func:`lock.parse_pins` reads a lock."""
    frozen = subprocess.run(
        [VENV / "bin" / "python", "-m", "pip", "freeze", "--exclude-editable"],
        text=True,
        capture_output=True,
        check=True,
    )
    return parse_pins(frozen.stdout)


def newer(
    lock: dict[str, tuple[str, str, str]], now: dict[str, tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """``(name, locked version, newest)`` for every package whose version moved."""
    return [
        (now[key][0], lock[key][1], now[key][1])
        for key in sorted(lock.keys() & now.keys())
        if lock[key][1] != now[key][1]
    ]


def failures(folder: Path) -> list[str]:
    """The node ids of the tests that failed or erred, from the stages' JUnit files.

    A solution notebook's cells fail as one: its id is the notebook's path.
    """
    found: list[str] = []
    for path in sorted(folder.glob("*.xml")):
        for case in ElementTree.parse(path).iter("testcase"):
            if case.find("failure") is None and case.find("error") is None:
                continue
            # "tests.test_x" (maybe ".Class"), or "notebooks.solutions.NN-x.ipynb".
            parts = case.get("classname", "").split(".")
            if parts[-1] == "ipynb":
                test = "notebooks/solutions/" + ".".join(parts[2:])
            else:
                module = [part for part in parts if not part[:1].isupper()]
                classes = [part for part in parts if part[:1].isupper()]
                names = [*classes, case.get("name", "")]
                test = "/".join(module) + ".py::" + "::".join(names)
            if test not in found:
                found.append(test)
    return found


def rerun(tests: list[str]) -> set[str]:
    """Run ``tests`` again in ``.venv-latest``; return those that fail."""
    failed = set()
    for test in tests:
        command = [
            VENV / "bin" / "python",
            ROOT / "tools" / "private_network.py",
            "--quiet",
            "--",
            VENV / "bin" / "python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        if test.endswith(".ipynb"):
            command += [
                "-p",
                "nbval_rerun",
                "--nbval",
                "--nbval-cell-timeout=60",
                "--nbval-sanitize-with",
                "tests/nbval_sanitize.cfg",
                "-o",
                "testpaths=notebooks",
            ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
        result = run(*command, test, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        if result.returncode != 0:
            failed.add(test)
    return failed


def blame(
    tests: list[str], moved: list[tuple[str, str, str]]
) -> tuple[list[str], dict[str, set[str]]]:
    """Which new version breaks which of ``tests``.

    Returns:
        The tests that fail with the lock's versions too, and, per package
        (``"redis 8.1.0 -> 8.2.0"``), the tests its new version alone breaks.
    """
    print(
        f"test-latest: {len(tests)} failed; first with the lock's versions", flush=True
    )
    pip("-r", LOCK)
    also_with_lock = rerun(tests)
    suspects = [test for test in tests if test not in also_with_lock]
    culprits: dict[str, set[str]] = {}
    for name, locked, newest in moved:
        if not suspects:
            break
        pip("-r", LOCK)
        pip(f"{name}=={newest}")
        broken = rerun(suspects)
        if broken:
            culprits[f"{name} {locked} -> {newest}"] = broken
    return sorted(also_with_lock), culprits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", action="store_true", help="reuse .venv-latest as is")
    args = parser.parse_args(argv)

    # Some tests run make lab, which needs make test's own .venv, from the lock.
    clean = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    if run(
        "make", "--no-print-directory", "test-setup", cwd=ROOT, env=clean
    ).returncode:
        raise SystemExit("test-latest: make test-setup failed; see above")
    if not args.keep or not (VENV / "bin" / "python").exists():
        shutil.rmtree(VENV, ignore_errors=True)
        run(sys.executable, "-m", "venv", VENV, check=True)
        pip("--upgrade", "pip")
        # No lock: the newest releases the ranges of pyproject.toml allow.
        pip("-e", ".[test]")
        for stamp in (".installed-lab", ".installed-test"):
            (VENV / stamp).touch()
    lock = read_pins(LOCK)
    now = installed()
    moved = newer(lock, now)
    new_packages = sorted(now.keys() - lock.keys())
    print("test-latest: newer than the lock:", flush=True)
    for line in changes(
        lock, {k: v for k, v in now.items() if k in lock or k in new_packages}
    ):
        if not line.startswith("-"):
            print("  " + line)
    if not moved and not new_packages:
        print("  nothing: the newest releases are the lock's")

    junit = VENV / "junit"
    shutil.rmtree(junit, ignore_errors=True)
    junit.mkdir()
    result = run(
        "make",
        "--no-print-directory",
        f"VENV={VENV.name}",
        "COV_ARGS=",
        f"JUNIT={junit}",
        f"PYTEST_ARGS=--deselect {DESELECT}",
        *STAGES,
        cwd=ROOT,
        env=clean,
    )
    if result.returncode == 0:
        PASSED.write_text("".join(f"{n}=={v}\n" for n, v, _ in now.values()))
        print(
            "test-latest: all passed with the newest releases; make lock moves "
            f"the lock to them ({PASSED.relative_to(ROOT)} records them)"
        )
        return 0
    failed = failures(junit)
    if not failed:
        print("test-latest: a stage failed before any test ran; see its output above")
        return 1
    also_with_lock, culprits = blame(failed, moved)
    print("test-latest: what the newest releases break:")
    for culprit, tests in culprits.items():
        for test in sorted(tests):
            print(f"  {culprit} breaks {test}")
    explained = set().union(*culprits.values()) if culprits else set()
    for test in also_with_lock:
        print(f"  {test} fails with the lock's versions too: not a new release")
    for test in failed:
        if test not in explained and test not in also_with_lock:
            print(f"  {test} fails only with several new versions together")
    print("test-latest: the lock stays as it is until this passes")
    return 1


if __name__ == "__main__":
    sys.exit(main())
