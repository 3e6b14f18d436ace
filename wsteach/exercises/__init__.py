"""Exercises for the notebooks: ``await ex.check(answer)``, ``ex.hint()``, ``ex.solution()``.

Each notebook imports its own module, for example::

    from wsteach.exercises import echo_server as ex

    await ex.handler.check(echo)          # an exercise: checks a function
    ex.handler.hint()
    ex.handler.hint(2)
    ex.handler.solution()

    ex.predict_2_4.check(most_at_once)    # a predict-the-output question
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
