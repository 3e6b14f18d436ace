"""wsteach.timeouts: WSTEACH_TIMEOUT_FACTOR read once, a bad value warned about, never fatal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wsteach.timeouts import timeout_factor


@pytest.mark.parametrize(
    ("text", "factor"), [(None, 1.0), ("", 1.0), (" ", 1.0), ("2", 2.0), ("0.5", 0.5)]
)
def test_timeout_factor_reads_a_number(text, factor):
    """WSTEACH_TIMEOUT_FACTOR unset or empty is 1; a positive number is itself."""
    assert timeout_factor(text) == factor


@pytest.mark.parametrize("text", ["slow", "0", "-1", "inf", "nan"])
def test_bad_timeout_factor_warns_and_is_one(text):
    """A value that isn't a number above 0 warns in one line and counts as 1."""
    with pytest.warns(RuntimeWarning) as caught:
        assert timeout_factor(text) == 1.0
    assert [str(w.message) for w in caught] == [
        f"WSTEACH_TIMEOUT_FACTOR must be a number above 0, such as 2, got {text!r}: "
        "using 1"
    ]


def test_bad_timeout_factor_does_not_break_import():
    """import wsteach with WSTEACH_TIMEOUT_FACTOR=slow works, warns once, uses 1."""
    code = "import wsteach, wsteach.exercises, wsteach.timeouts as t; print(t.TIMEOUT_FACTOR)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "WSTEACH_TIMEOUT_FACTOR": "slow"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "1.0\n")
    assert done.stderr.count("WSTEACH_TIMEOUT_FACTOR must be a number above 0") == 1
