"""Put asyncio back after ``nest_asyncio2.apply()``.

Notebook 07 runs the video's ``run_until_complete`` / ``run_forever`` code in a
running kernel with nest-asyncio2, which makes the event loop re-entrant by
patching asyncio: the loop's class, the task and future classes,
``asyncio.run`` and ``get_event_loop``. It has no undo, and the patch would
stay for the life of the kernel: re-running the notebook would then no longer
show the errors it is about, and the video's ``run_forever()`` would block the
kernel for good.

:func:`save_asyncio` records everything nest-asyncio2 changes; the returned
:meth:`Saved.restore` puts it back::

    saved = save_asyncio()
    nest_asyncio2.apply()
    ...  # the video's code
    saved.restore()

Tasks and futures created in between keep working after the restore.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import asyncio.futures
import asyncio.tasks
import sys
from typing import Any

__all__ = ["Saved", "save_asyncio"]

_MISSING = object()

# Attributes nest-asyncio2 (1.7, the range pyproject.toml allows) sets on the
# asyncio modules.
_MODULE_ATTRIBUTES = {
    asyncio: (
        "Task",
        "Future",
        "get_event_loop",
        "run",
        "_nest_patched",
        "_nest_asyncio2",
    ),
    asyncio.tasks: ("Task", "_CTask"),
    asyncio.futures: ("Future", "_CFuture"),
    asyncio.events: ("get_event_loop", "_get_event_loop"),
}
# Attributes it sets on the class of the event loop.
_LOOP_ATTRIBUTES = (
    "run_forever",
    "run_until_complete",
    "_run_once",
    "_check_running",
    "_check_runnung",
    "_num_runs_pending",
    "_is_proactorloop",
    "_nest_deferred",
    "_nest_patched",
    "_nest_asyncio2",
)
# And on the class of the event loop policy, before Python 3.14: there the
# policy system is deprecated (to go in 3.16), and nest-asyncio2 leaves it be.
_POLICY_ATTRIBUTES = ("get_event_loop",)
_POLICY_PATCHED = sys.version_info < (3, 14)


class Saved:
    """The state of asyncio when :func:`save_asyncio` was called."""

    def __init__(self, values: list[tuple[Any, str, Any]]) -> None:
        self._values = values

    def restore(self) -> None:
        """Put every saved attribute back, and remove those that didn't exist."""
        for owner, name, value in self._values:
            if value is _MISSING:
                if name in vars(owner):
                    delattr(owner, name)
            else:
                setattr(owner, name, value)


def _record(owner: Any, names: tuple[str, ...]) -> list[tuple[Any, str, Any]]:
    return [(owner, name, vars(owner).get(name, _MISSING)) for name in names]


def _current_loop() -> asyncio.AbstractEventLoop:
    """The thread's current loop when none runs, without creating one by the way.

    ``asyncio.get_event_loop()`` creates one here before Python 3.14, with a
    DeprecationWarning from 3.12 on, and raises from 3.14 on: ask the policy
    before 3.14, and make a loop of the default class after (it is only needed
    for its class, and closed at once).
    """
    if _POLICY_PATCHED:  # pragma: no branch - always true before Python 3.14
        return asyncio.get_event_loop_policy().get_event_loop()
    else:  # pragma: no cover - Python 3.14 and later
        loop = asyncio.new_event_loop()
        loop.close()
        return loop


def save_asyncio(loop: asyncio.AbstractEventLoop | None = None) -> Saved:
    """Record what ``nest_asyncio2.apply()`` changes, for :meth:`Saved.restore`.

    Args:
        loop: The loop that will be patched; defaults to the running loop, or
            the current one when none is running.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = _current_loop()
    values: list[tuple[Any, str, Any]] = []
    for module, names in _MODULE_ATTRIBUTES.items():
        values += _record(module, names)
    values += _record(type(loop), _LOOP_ATTRIBUTES)
    if _POLICY_PATCHED:  # pragma: no branch - always true before Python 3.14
        values += _record(type(asyncio.get_event_loop_policy()), _POLICY_ATTRIBUTES)
    concurrent = sys.modules.get("tornado.concurrent")
    if concurrent is not None:
        values += _record(concurrent, ("Future", "FUTURES"))
    return Saved(values)
