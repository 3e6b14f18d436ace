"""The machinery behind every exercise: ``check``, ``hint`` and ``solution``.

An :class:`Exercise` plays scripted scenarios against your answer and prints one
line per scenario: passed, failed (with what was expected and what arrived), or
"not attempted yet" while your function is still the untouched stub. It never
raises: whatever your code does, the cell finishes and tells you what happened.

Two kinds of exercise:

- ``kind="handler"``: your answer is a connection handler. ``check`` starts it
  on a free port and the scenarios connect clients to it.
- ``kind="client"``: your answer is ``async def f(url)``. ``check`` starts the
  exercise's reference server on a free port and the scenarios call your
  function with its URL; :attr:`Run.received` holds what that server received.
"""

from __future__ import annotations

import asyncio
import dis
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed

from ..clients import TIMEOUT_FACTOR
from ..notebook import Running, start

__all__ = ["Exercise", "Mismatch", "Result", "Run", "expect", "is_stub"]

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted yet"
MARKS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "·"}


class Mismatch(AssertionError):
    """What a scenario expected differs from what arrived."""

    def __init__(self, expected: Any, received: Any, what: str = "") -> None:
        super().__init__(what, expected, received)
        self.expected = expected
        self.received = received
        self.what = what

    def __str__(self) -> str:
        about = f"{self.what}: " if self.what else ""
        return f"{about}expected {self.expected!r}, received {self.received!r}"


def expect(received: Any, expected: Any, what: str = "") -> None:
    """Raise :exc:`Mismatch` unless ``received == expected``."""
    if received != expected:
        raise Mismatch(expected, received, what)


@dataclass
class Run:
    """What a scenario works with.

    Attributes:
        url: Where the server under test listens.
        answer: What was passed to :meth:`Exercise.check`.
        received: Messages the reference server received (client exercises).
        timeout: Seconds a scenario should wait for one reply.
        errors: Exceptions the server's handler raised so far in this scenario
            ("connection handler failed" in its log). Any left at the end fail
            the scenario; one that expects a crash checks it and clears this.
    """

    url: str
    answer: Any
    received: list[Any] = field(default_factory=list)
    timeout: float = 2.0 * TIMEOUT_FACTOR
    errors: list[BaseException] = field(default_factory=list)


Scenario = Callable[[Run], Awaitable[None]]


@dataclass(frozen=True)
class Result:
    """The outcome of one scenario."""

    scenario: str
    status: str
    detail: str = ""

    def __str__(self) -> str:
        line = f"{MARKS[self.status]} {self.scenario}: {self.status}"
        return f"{line} — {self.detail}" if self.detail else line


_STUB_OPS = {
    "RETURN_GENERATOR",
    "POP_TOP",
    "RESUME",
    "NOP",
    "LOAD_CONST",
    "RETURN_VALUE",
}
_STUB_OPS |= {"RETURN_CONST", "CACHE"}


def is_stub(function: Any) -> bool:
    """Whether ``function`` is still an untouched stub whose body is ``...``.

    Comments and a docstring don't count: a body that does nothing but return
    :obj:`None` is a stub.
    """
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    for instruction in dis.get_instructions(code):
        if instruction.opname not in _STUB_OPS:
            return False
        if instruction.opname in ("LOAD_CONST", "RETURN_CONST") and (
            instruction.argval is not None
        ):
            return False
    return True


class _Crashes(logging.Handler):
    """Collect "connection handler failed" records from the server under test."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


class Exercise:
    """One exercise: scripted scenarios, hints, and the solution.

    Args:
        number: Shown in the header, e.g. ``"2.1"``.
        title: Shown in the header.
        scenarios: ``(description, coroutine function)`` pairs, played in order.
        hints: From a nudge to nearly the answer; ``hint(1)`` is the first.
        solution: The solution's code, as shown by :meth:`solution`.
        kind: ``"handler"`` or ``"client"`` (see the module docstring).
        reference: For client exercises, the handler of the server to talk to.
            It receives ``(websocket, received)``: append what arrives.
        stub_name: The function name the student edits, for the
            "not attempted yet" line.
    """

    def __init__(
        self,
        number: str,
        title: str,
        *,
        scenarios: Sequence[tuple[str, Scenario]],
        hints: Sequence[str],
        solution: str,
        kind: Literal["handler", "client"] = "handler",
        reference: Callable[[Any, list[Any]], Awaitable[None]] | None = None,
    ) -> None:
        if kind == "client" and reference is None:
            raise ValueError("a client exercise needs a reference server")
        self.number = number
        self.title = title
        self.scenarios = list(scenarios)
        self.hints = list(hints)
        self.code = solution.strip("\n")
        self.kind = kind
        self.reference = reference

    def __repr__(self) -> str:
        return f"<Exercise {self.number} · {self.title}>"

    # Checking

    async def results(self, answer: Any) -> list[Result]:
        """Play every scenario against ``answer`` and return the outcomes."""
        problem = self._unusable(answer)
        if problem:
            return [Result(name, FAILED, problem) for name, _ in self.scenarios]
        if is_stub(answer):
            stub = getattr(answer, "__name__", "the function")
            detail = f"write the body of {stub}, then run this cell again"
            return [Result(name, NOT_ATTEMPTED, detail) for name, _ in self.scenarios]

        received: list[Any] = []
        crashes = _Crashes()
        logger = logging.Logger("wsteach.exercise")
        logger.addHandler(crashes)
        if self.kind == "handler":
            handler = answer
        else:
            reference = self.reference
            assert reference is not None

            async def handler(websocket: Any) -> None:
                await reference(websocket, received)

        try:
            server = await start(handler, port=0, trace=False, logger=logger)
        except Exception as exc:
            detail = f"the server could not start: {exc}".replace("\n", " ")
            return [Result(name, FAILED, detail) for name, _ in self.scenarios]
        results = []
        try:
            for name, scenario in self.scenarios:
                received.clear()
                crashes.errors.clear()
                run = Run(server.url, answer, received, errors=crashes.errors)
                results.append(await self._play(name, scenario, run, server))
        finally:
            await server.stop()
        return results

    def _unusable(self, answer: Any) -> str:
        """Explain why ``answer`` can't be checked at all, or return ''."""
        if not callable(answer):
            return f"check() needs your function itself, got {type(answer).__name__}"
        if not inspect.iscoroutinefunction(answer):
            name = getattr(answer, "__name__", "your function")
            return f"{name} must be defined with 'async def'"
        if self.kind == "handler":
            from .._handlers import check_handler

            try:
                check_handler(answer)
            except TypeError as exc:
                return str(exc).replace("\n", "; ")
        return ""

    async def _play(
        self, name: str, scenario: Scenario, run: Run, server: Running
    ) -> Result:
        limit = run.timeout * 5
        try:
            async with asyncio.timeout(limit):
                await scenario(run)
        except Mismatch as exc:
            detail = str(exc)
        except TimeoutError as exc:
            detail = str(exc).split("\n")[0] or f"gave up after {limit:g} s"
        except ConnectionClosed as exc:
            detail = f"the connection closed early ({exc})"
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        else:
            detail = ""
        # websockets logs a handler's crash after closing its connection, so
        # the scenario may end first: wait for the handlers to finish (bounded,
        # for a client that stays connected).
        handlers = set(server.server.handler_tasks)
        if handlers:
            await asyncio.wait(handlers, timeout=run.timeout)
        if run.errors:
            error = run.errors[0]
            crash = f"your handler raised {type(error).__name__}: {error}"
            return Result(name, FAILED, f"{crash} ({detail})" if detail else crash)
        if detail:
            return Result(name, FAILED, detail)
        return Result(name, PASSED)

    async def check(self, answer: Any) -> None:
        """Check ``answer`` and print one line per scenario. Never raises."""
        print(f"Exercise {self.number} · {self.title}")
        try:
            results = await self.results(answer)
        except Exception as exc:  # pragma: no cover - a bug in the exercise itself
            print(f"✗ the check itself failed: {type(exc).__name__}: {exc}")
            return
        for result in results:
            print(f"  {result}")
        if results and all(r.status == PASSED for r in results):
            print("  all passed: well done!")

    # Help

    def hint(self, level: int = 1) -> None:
        """Print hint number ``level`` (1 is the gentlest)."""
        if not 1 <= level <= len(self.hints):
            print(
                f"exercise {self.number} has hints 1 to {len(self.hints)}; "
                "solution() shows the answer"
            )
            return
        print(f"Hint {level} of {len(self.hints)}: {self.hints[level - 1]}")

    def solution(self) -> None:
        """Show the solution's code."""
        _show_code(f"Solution to exercise {self.number} · {self.title}", self.code)


def _show_code(title: str, code: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython ships with the kit
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(f"**{title}**\n\n```python\n{code}\n```"))
    else:
        print(f"{title}\n\n{code}")
