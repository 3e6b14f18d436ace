"""Tests for tests/nbval_untouched.py: no check says failed in a student notebook."""

from __future__ import annotations

import subprocess

from conftest import run_nbval as run_in_nbval
from nbval_untouched import failed_lines


def run_nbval(tmp_path, *sources: str) -> subprocess.CompletedProcess[str]:
    return run_in_nbval(tmp_path, "nbval_untouched", *sources)


def test_a_check_that_says_failed_fails_its_cell(tmp_path):
    """A cell whose output has a ✗ line fails, naming the line; the others pass."""
    result = run_nbval(
        tmp_path,
        "print('Exercise 1 · x')\nprint('  · replies: not attempted yet')",
        "print('Exercise 2 · y')\nprint('  ✗ replies: failed — expected 1')",
    )
    assert "Cell 0 PASSED" in result.stdout
    assert "Cell 1 FAILED" in result.stdout
    assert "a check says failed in the student notebook" in result.stdout
    assert "✗ replies: failed — expected 1" in result.stdout


def test_failed_lines_reads_streams_and_results():
    """Both printed text and a displayed value count; other lines don't."""
    outputs = [
        {"output_type": "stream", "text": "ok\n  ✗ a: failed\n"},
        {"output_type": "execute_result", "data": {"text/plain": ["✗ b: failed"]}},
        {"output_type": "stream", "text": "  · c: not attempted yet\n"},
    ]
    assert failed_lines(outputs) == ["  ✗ a: failed", "✗ b: failed"]
    assert failed_lines(None) == []
