"""Exercises for the notebooks: ``await ex.check(answer)``, ``ex.hint()``, ``ex.solution()``.

Each notebook imports its own module, for example::

    from wsteach.exercises import echo_server as ex

    await ex.pong.check(pong)
    ex.pong.hint()
    ex.pong.solution()

    ex.predict_close_code.check(1001)     # a predict-the-output question
    await ex.port.check()                 # a step: checks the notebook's PORT

:mod:`wsteach.exercises._core` holds the machinery shared by all of them.
"""

from __future__ import annotations

from ._core import (
    Exercise,
    Mismatch,
    NotAttempted,
    Question,
    Result,
    Run,
    Step,
    expect,
    is_stub,
    notebook_namespace,
)

__all__ = [
    "Exercise",
    "Mismatch",
    "NotAttempted",
    "Question",
    "Result",
    "Run",
    "Step",
    "expect",
    "is_stub",
    "notebook_namespace",
]
