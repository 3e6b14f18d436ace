"""Tests for tests/nbval_rerun.py, the second run of every solution notebook."""

from __future__ import annotations

import subprocess

from conftest import run_nbval as run_in_nbval


def run_nbval(tmp_path, *sources: str) -> subprocess.CompletedProcess[str]:
    return run_in_nbval(tmp_path, "nbval_rerun", *sources)


def test_a_cell_that_breaks_on_its_second_run_fails_the_notebook(tmp_path):
    """A cell that works once but raises when re-run fails the 'second run' item."""
    result = run_nbval(
        tmp_path,
        "import pathlib\nmarker = pathlib.Path('marker')",
        "assert not marker.exists(), 'already started'\nmarker.touch()",
    )
    assert "Cell 1 PASSED" in result.stdout
    assert "second run FAILED" in result.stdout
    assert (
        "cell 1 (" in result.stdout
        and "AssertionError: already started" in result.stdout
    )


def test_a_notebook_safe_to_re_run_passes_twice(tmp_path):
    """A notebook whose cells can be re-run passes both runs."""
    result = run_nbval(tmp_path, "x = 1", "x += 1\nprint(x)")
    assert result.returncode == 0, result.stdout
    assert "second run PASSED" in result.stdout
