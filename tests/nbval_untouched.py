"""nbval plugin: in a student notebook, no check may say "failed" before the student wrote anything.

The student notebooks run with ``--nbval-lax`` (their outputs are not the
solutions'), so nothing else looks at what their checks print. With ``-p
nbval_untouched`` (``tests/`` on the path), a cell fails when a line of its
output starts with ✗, the mark of a failed scenario: an untouched stub must
say "not attempted yet" (·), on every Python the notebooks run on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nbval.plugin import IPyNbCell

FAILED_MARK = "✗"


def failed_lines(outputs: list[dict] | None) -> list[str]:
    """The lines of a cell's outputs that report a failed scenario."""
    lines = []
    for output in outputs or []:
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        text = "".join(text) if isinstance(text, list) else text
        lines += [
            line for line in text.splitlines() if line.lstrip().startswith(FAILED_MARK)
        ]
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    if isinstance(item, IPyNbCell) and outcome.excinfo is None:
        failed = failed_lines(getattr(item, "test_outputs", None))
        if failed:
            outcome.force_exception(
                AssertionError(
                    "a check says failed in the student notebook, where every "
                    "answer is still the stub:\n" + "\n".join(failed)
                )
            )
