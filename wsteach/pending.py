"""A call that does its work only when awaited: ``start``, ``connect``, ``crowd``.

``wsteach.start(echo)`` on its own does nothing: like a coroutine, it runs when
you ``await`` it (or enter it with ``async with``). Forgetting ``await`` is the
most common slip in a notebook, so a :class:`Pending` says so three ways, as
Python does for a coroutine that is never awaited:

* its repr says it has not run and shows the line to write instead;
* reading an attribute a result would have (``server.url``) raises an
  :exc:`AttributeError` that says the same;
* dropped without ever being awaited, it emits a :exc:`RuntimeWarning`, once
  per object, pointing at the line (the cell) that dropped it.

It runs once: awaiting the same object again gives the same result (the same
server, the same client), as awaiting an asyncio task twice does. To start
another, call ``wsteach.start(...)`` again.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Pending"]

T = TypeVar("T")


class Pending(Generic[T]):
    """Base class: run :meth:`_run` on ``await`` or ``async with``.

    Subclasses set :attr:`_not_done` (``"not started"``), :attr:`_result`
    (the variable name to suggest, ``"server"``), implement :meth:`_call`,
    :meth:`_run` and :meth:`_undo`, and call ``super().__init__()`` last in
    their ``__init__``, once their arguments are checked: an object whose
    ``__init__`` raised never warns.
    """

    _not_done = "not started"
    _result = "result"
    # True until __init__ ends: a half-built object has nothing to warn about.
    _used = True

    def __init__(self) -> None:
        self._used = False
        self._value: T | None = None
        self._done = False
        self._running = False

    def _call(self) -> str:
        """The call as the student wrote it, e.g. ``wsteach.start(echo, port=7890)``."""
        raise NotImplementedError  # pragma: no cover - every subclass has one

    async def _run(self) -> T:
        """Do the work: start the server, open the connection."""
        raise NotImplementedError  # pragma: no cover - every subclass has one

    async def _undo(self, value: T) -> None:
        """Undo it at the end of ``async with``."""
        raise NotImplementedError  # pragma: no cover - every subclass has one

    def _advice(self) -> str:
        call = self._call()
        return f"did you forget await? write: {self._result} = await {call}"

    def __await__(self) -> Generator[Any, None, T]:
        self._used = True
        return self._once().__await__()

    async def __aenter__(self) -> T:
        self._used = True
        return await self._once()

    async def _once(self) -> T:
        """Run :meth:`_run` the first time; give its result every time after.

        Like an asyncio task awaited twice, and unlike a coroutine (which
        raises), so that re-running a cell with ``await`` on the same object
        never starts a second server. A run that raised may be tried again.
        """
        if self._done:
            return self._value  # type: ignore[return-value]
        if self._running:
            raise RuntimeError(
                f"{self._call()} is already being awaited elsewhere: await it "
                "once, and use its result"
            )
        self._running = True
        try:
            self._value = await self._run()
        finally:
            self._running = False
        self._done = True
        return self._value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._value is not None
        await self._undo(self._value)

    def __repr__(self) -> str:
        if self._used:
            return f"<{self._call()}: awaited>"
        return f"<{self._call()}: {self._not_done} — {self._advice()}>"

    def __getattr__(self, name: str) -> Any:
        # Only called for names the object doesn't have, such as server.url on
        # a start(...) that was never awaited. Private and dunder names keep
        # the usual error: IPython and copy probe them.
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            f"{self._call()} has no attribute {name!r}: it is {self._not_done}, "
            f"{self._advice()}"
        )

    def __del__(self) -> None:
        if self._used:
            return
        message = (
            f"{self._call()} was never awaited, so it is {self._not_done}; "
            f"{self._advice()}"
        )
        try:
            # The code that dropped it: in a notebook, the cell.
            frame = sys._getframe(1)
        except ValueError:  # pragma: no cover - dropped at interpreter exit
            warnings.warn(message, RuntimeWarning, stacklevel=1)
            return
        # Without a registry, the warning shows every time, even when the same
        # cell runs again (warnings.warn shows it once per line of code).
        warnings.warn_explicit(
            message,
            RuntimeWarning,
            frame.f_code.co_filename,
            frame.f_lineno,
            module=frame.f_globals.get("__name__"),
            registry=None,
        )
