"""tools/coverage_per_module.py: each module's coverage by its own tests, from one run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, load_tool

per_module = load_tool("coverage_per_module")


def test_each_module_is_reported_for_its_own_test_files():
    """wsteach/x.py counts tests/test_x.py; a subpackage its tests/test_x*.py; every one exists."""
    package = ROOT / "wsteach"
    assert per_module.own_tests(package / "names.py") == (
        str(package / "names.py"),
        r"^tests/test_names\.py::",
    )
    include, contexts = per_module.own_tests(package / "exercises")
    assert include == f"{package / 'exercises'}/*"
    assert contexts == r"^tests/test_exercises\w*\.py::"
    assert per_module.own_tests(package / "__main__.py")[1] == r"^tests/test_cli\.py::"
    for unit in per_module.units():
        stem = per_module.own_tests(unit)[1].split("/")[1].split("\\")[0]
        assert list((ROOT / "tests").glob(f"{stem}*.py")), unit.name


def test_a_module_covered_by_other_tests_only_is_reported(tmp_path: Path):
    """timeouts.py is 100 % by test_timeouts.py; clients.py, which it doesn't test, is not."""
    data = tmp_path / "coverage"
    env = {**os.environ, "COVERAGE_FILE": str(data)}
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    measure = ["-p", "no:xdist", "--cov=wsteach", "--cov-context=test", "--cov-report="]
    subprocess.run(
        [*pytest, *measure, "tests/test_timeouts.py"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    run = [sys.executable, "tools/coverage_per_module.py", "--data", str(data)]
    done = subprocess.run(
        [*run, "wsteach/timeouts.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout.splitlines()[0]) == (
        0,
        "wsteach/timeouts.py: 100.0 % by its own tests",
    ), done.stdout + done.stderr
    done = subprocess.run(
        [*run, "wsteach/clients.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == (
        "below 100 % by their own tests: wsteach/clients.py"
    )
