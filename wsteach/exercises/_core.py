"""The machinery behind every exercise: ``check``, ``hint`` and ``solution``.

An :class:`Exercise` plays scripted scenarios against your answer and prints one
line per scenario: passed, failed (with what was expected and what arrived), or
"not attempted yet" while your function is still the untouched stub. It never
raises: whatever your code does, the cell finishes and tells you what happened.
Each scenario runs in a task of its own with a time limit (:func:`within`): an
answer that catches the cancellation at the limit (a bare ``except:`` does) is
abandoned, and its line says so.

Two kinds of exercise:

- ``kind="handler"``: your answer is a connection handler. ``check`` starts it
  on a free port and the scenarios connect clients to it.
- ``kind="client"``: your answer is ``async def f(url)``. ``check`` starts the
  exercise's reference server on a free port and the scenarios call your
  function with its URL; :attr:`Run.received` holds what that server received.

A failed line names the likely cause when the symptom points to one: a handler
that returned while its client was still connected ("use ``async for``"), a
``send`` without ``await``, a ``ConnectionClosed`` that escaped the handler, a
reply that lacks its prefix. A problem with the answer's shape (a ``path``
parameter, a plain ``def``) is reported once, and no scenario is played.

A :class:`Question` is a predict-the-output question: you write down what you
expect before running the cell that shows it, then ``q.check(answer)``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import logging
import re
import textwrap
import types
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ..handler_check import check_handler
from ..internals import handler_tasks
from ..join import report
from ..server import Running, start
from ..timeouts import TIMEOUT_FACTOR

__all__ = [
    "Abandoned",
    "Checked",
    "Exercise",
    "Mismatch",
    "NotAttempted",
    "Question",
    "Result",
    "Run",
    "Step",
    "called",
    "definition",
    "expect",
    "is_stub",
    "node_kinds",
    "notebook_namespace",
    "within",
]

T = TypeVar("T")

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted yet"
MARKS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "·"}


class Mismatch(AssertionError):
    """What a scenario expected differs from what arrived.

    ``cause``, when the scenario knows it, is the sentence that names the
    likely cause ("likely cause: …"), and ``short`` its short name for the
    class board; they come after the expected/received part of the line.
    """

    def __init__(
        self,
        expected: Any,
        received: Any,
        what: str = "",
        *,
        cause: str = "",
        short: str = "",
    ) -> None:
        super().__init__(what, expected, received)
        self.expected = expected
        self.received = received
        self.what = what
        self.cause = cause
        self.short = short or ("mismatch" if cause else "")

    def __str__(self) -> str:
        about = f"{self.what}: " if self.what else ""
        return f"{about}expected {self.expected!r}, received {self.received!r}"


def expect(received: Any, expected: Any, what: str = "") -> None:
    """Raise :exc:`Mismatch` unless ``received == expected``."""
    if received != expected:
        raise Mismatch(expected, received, what)


REPLY_TIMEOUT = 2.0
"""Seconds a scenario waits for one reply, times ``WSTEACH_TIMEOUT_FACTOR``:
long enough for a busy laptop, short enough that an answer which sends nothing
is reported soon."""


def _reply_timeout() -> float:
    return REPLY_TIMEOUT * TIMEOUT_FACTOR


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
        printed: What the answer printed during the scenario, for exercises
            made with ``prints=True``.
        server: The server under test (the answer's, or the reference), for
            scenarios that wait until it has caught up.
    """

    url: str
    answer: Any
    received: list[Any] = field(default_factory=list)
    timeout: float = field(default_factory=_reply_timeout)
    errors: list[BaseException] = field(default_factory=list)
    printed: io.StringIO = field(default_factory=io.StringIO)
    server: Running | None = None


Scenario = Callable[[Run], Awaitable[None]]
Diagnose = Callable[[Any, BaseException | None], tuple[str, str] | None]


@dataclass(frozen=True)
class Result:
    """The outcome of one scenario.

    ``cause`` is the failure's short name (``no reply``, ``send not
    awaited``…), what the class board shows; it is not part of equality.
    """

    scenario: str
    status: str
    detail: str = ""
    cause: str = field(default="", compare=False)

    def __str__(self) -> str:
        line = f"{MARKS[self.status]} {self.scenario}: {self.status}"
        return f"{line} — {self.detail}" if self.detail else line


def is_stub(function: Any) -> bool:
    """Whether ``function`` is still an untouched stub whose body is ``...``.

    Comments and a docstring don't count: a body of nothing but ``...``,
    ``pass``, a docstring or ``return None`` is a stub.

    The body is read from the function's source (a notebook cell's too), as
    Python's own parser sees it. A function whose source is gone is compared
    with stubs that this Python compiles now: no version's bytecode is assumed.
    """
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    tree = _definition(function)
    if tree is None:
        return _compiles_like_a_stub(code)
    return all(_does_nothing(statement) for statement in tree.body)


def _definition(function: Any) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The ``def`` of ``function`` as Python's parser reads its source; None if gone."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return None
    return tree if isinstance(tree, ast.FunctionDef | ast.AsyncFunctionDef) else None


def _does_nothing(statement: ast.stmt) -> bool:
    """``...``, ``pass``, a string alone (a docstring), or ``return None``."""
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return statement.value.value is Ellipsis or isinstance(
            statement.value.value, str
        )
    if isinstance(statement, ast.Return):
        value = statement.value
        return value is None or (
            isinstance(value, ast.Constant) and value.value is None
        )
    return False


def _compiles_like_a_stub(code: types.CodeType) -> bool:
    """Whether ``code`` is what this Python makes of a stub with the same signature."""
    kind = "async def" if code.co_flags & inspect.CO_COROUTINE else "def"
    names = ", ".join(f"a{i}" for i in range(code.co_argcount))
    stub = compile(f"{kind} stub({names}):\n    ...\n", "<stub>", "exec")
    reference = next(c for c in stub.co_consts if isinstance(c, types.CodeType))
    return (code.co_code, code.co_exceptiontable) == (
        reference.co_code,
        reference.co_exceptiontable,
    )


class Abandoned(Exception):
    """The answer ignored its cancellation, so the check stopped waiting for it."""


CANCEL_GRACE = 1.0
"""Seconds, times ``WSTEACH_TIMEOUT_FACTOR``, that :func:`within` keeps
cancelling an answer that ignored its first cancellation."""

# Answers whose task outlived every cancellation: held so that asyncio keeps
# a reference (and doesn't warn that a pending task was destroyed).
_abandoned: set[asyncio.Task[Any]] = set()


async def within(awaitable: Awaitable[T], limit: float) -> T:
    """Await ``awaitable`` in a task of its own, for at most ``limit`` seconds.

    The answer runs in that task, not in the check's, so the time limit never
    depends on the answer's cooperation. After ``limit`` seconds the task is
    cancelled. One that is still running :data:`CANCEL_GRACE` seconds later
    caught its cancellation (a bare ``except:`` does): it is cancelled again
    and again for as long once more, then abandoned, and the check goes on.

    Raises:
        TimeoutError: The task didn't finish in time; cancelled, it ended.
        Abandoned: The task caught its cancellation; the message says so.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=limit)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return task.result()
    grace = CANCEL_GRACE * TIMEOUT_FACTOR
    task.cancel()
    if await _ended(task, grace):
        raise TimeoutError(f"gave up after {limit:g} s")
    # It caught the CancelledError. Cancel it again and again: one lands
    # outside its try (in the sleep of its except, say) and ends it.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while loop.time() < deadline:
        task.cancel()
        if await _ended(task, 0.05):
            break
    detail = (
        f"gave up after {limit:g} s, and your function didn't stop when "
        "cancelled: a bare except: catches the cancellation "
        "(asyncio.CancelledError is a BaseException); write except Exception: "
        "instead"
    )
    if not task.done():
        _abandoned.add(task)
        task.add_done_callback(_abandoned.discard)
        detail += "; it still runs: restart the kernel to end it"
    raise Abandoned(detail)


async def _ended(task: asyncio.Task[Any], timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``task`` to end; say whether it did."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if done and not task.cancelled():
        task.exception()  # Retrieved: whatever it ended with came too late.
    return bool(done)


class _Crashes(logging.Handler):
    """Collect "connection handler failed" records from the server under test."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


class Checked:
    """What exercises and steps share: ``check`` prints one line per scenario, hints, a solution.

    A subclass sets ``number``, ``title``, ``hints`` and ``code``, and defines
    ``results(...)``, which plays the scenarios and returns a :class:`Result`
    for each; :meth:`check` passes its arguments on to it.
    """

    label = "exercise"
    number: str
    title: str
    hints: list[str]
    code: str

    async def results(self, *args: Any) -> list[Result]:  # pragma: no cover - abstract
        raise NotImplementedError

    async def check(self, *args: Any) -> None:
        """Check the answer and print one line per scenario. Never raises."""
        print(f"{self.label.capitalize()} {self.number} · {self.title}")
        try:
            results = await self.results(*args)
        except Exception as exc:  # A bug in the exercise itself: still no raise.
            print(f"✗ the check itself failed: {type(exc).__name__}: {exc}")
            return
        for result in results:
            print(f"  {result}")
        if results and all(r.status == PASSED for r in results):
            print("  all passed: well done!")
        _report(self.number, results)

    def hint(self, level: int = 1) -> None:
        """Print hint number ``level`` (1 is the gentlest)."""
        _hint(f"{self.label} {self.number}", self.hints, level)
        report(self.number, "hint")

    def solution(self) -> None:
        """Show the solution's code."""
        _show_code(f"Solution to {self.label} {self.number} · {self.title}", self.code)
        report(self.number, "solution")


class Exercise(Checked):
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
        prints: Collect what the answer prints in :attr:`Run.printed`
            (instead of showing it).
        diagnose: Given the answer and what ended a failed scenario, return
            the likely cause that the answer's code shows, as ``(short name,
            sentence)``, or None to let the symptom speak.
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
        prints: bool = False,
        diagnose: Diagnose | None = None,
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
        self.prints = prints
        self.diagnose = diagnose

    def __repr__(self) -> str:
        return f"<Exercise {self.number} · {self.title}>"

    # Checking

    async def results(self, answer: Any) -> list[Result]:
        """Play every scenario against ``answer`` and return the outcomes."""
        problem = self._unusable(answer)
        if problem:
            # One line, not one per scenario: none of them can run.
            detail = f"{problem} (no scenario was played)"
            return [Result(self._yours, FAILED, detail, cause="can't be checked")]
        if is_stub(answer):
            stub = getattr(answer, "__name__", "the function")
            detail = f"write the body of {stub}, then run this cell again"
            return [Result(name, NOT_ATTEMPTED, detail) for name, _ in self.scenarios]

        received: list[Any] = []
        crashes = _Crashes()
        logger = logging.Logger("wsteach.exercise")
        logger.addHandler(crashes)
        watch = _Watch()
        if self.kind == "handler":
            handler = watch.wrap(answer)
        else:
            reference = self.reference
            assert reference is not None

            async def handler(websocket: Any) -> None:
                await reference(websocket, received)

        try:
            server = await start(handler, port=0, trace=False, logger=logger)
        except Exception as exc:
            detail = f"the server could not start: {exc}".replace("\n", " ")
            return [Result(self._yours, FAILED, detail, cause="server did not start")]
        results = []
        try:
            for name, scenario in self.scenarios:
                received.clear()
                crashes.errors.clear()
                watch.clear()
                run = Run(
                    server.url, answer, received, errors=crashes.errors, server=server
                )
                results.append(await self._play(name, scenario, run, server, watch))
        finally:
            await server.stop()
        return results

    @property
    def _yours(self) -> str:
        return "your handler" if self.kind == "handler" else "your function"

    def _unusable(self, answer: Any) -> str:
        """Explain why ``answer`` can't be checked at all, or return ''."""
        if not callable(answer):
            return f"check() needs your function itself, got {type(answer).__name__}"
        if not inspect.iscoroutinefunction(answer):
            name = getattr(answer, "__name__", "your function")
            return f"{name} must be defined with 'async def'"
        if self.kind == "handler":
            try:
                check_handler(answer)
            except TypeError as exc:
                return str(exc).replace("\n", "; ")
        return ""

    async def _play(
        self, name: str, scenario: Scenario, run: Run, server: Running, watch: _Watch
    ) -> Result:
        limit = run.timeout * 5
        failure: BaseException | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            try:
                if self.prints:
                    with contextlib.redirect_stdout(run.printed):
                        await within(scenario(run), limit)
                else:
                    await within(scenario(run), limit)
            except Mismatch as exc:
                failure, detail = exc, str(exc)
            except Abandoned as exc:
                failure, detail = exc, str(exc)
            except TimeoutError as exc:
                failure = exc
                detail = str(exc).split("\n")[0] or f"gave up after {limit:g} s"
            except ConnectionClosed as exc:
                failure, detail = exc, f"the connection closed early ({exc})"
            except Exception as exc:
                failure = exc
                detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            else:
                detail = ""
            # websockets logs a handler's crash after closing its connection, so
            # the scenario may end first: wait for the handlers to finish (bounded,
            # for a client that stays connected).
            handlers = set(handler_tasks(server.server))
            if handlers:
                await asyncio.wait(handlers, timeout=run.timeout)
        not_awaited = [
            str(w.message) for w in caught if "was never awaited" in str(w.message)
        ]
        known = failure if isinstance(failure, Mismatch) and failure.cause else None
        if run.errors and not (
            # The scenario named the cause; a ConnectionClosed that followed
            # (a send to a client the scenario closed) is only its echo.
            known and all(isinstance(e, ConnectionClosed) for e in run.errors)
        ):
            error = run.errors[0]
            crash = f"your handler raised {type(error).__name__}: {error}"
            detail = f"{crash} ({detail})" if detail else crash
            failure = error
        if not detail:
            return Result(name, PASSED)
        crashed = failure is not None and any(failure is e for e in run.errors)
        diagnosed = None
        if not not_awaited and self.diagnose is not None:
            diagnosed = self.diagnose(run.answer, failure)
        if diagnosed is None and not not_awaited and known is not None:
            diagnosed = known.short, known.cause
        if diagnosed is None:
            diagnosed = _likely_cause(
                failure, watch, not_awaited, crashed=crashed, answer=run.answer
            )
        short, cause = diagnosed
        detail = f"{detail}; {cause}" if cause else detail
        return Result(name, FAILED, detail, cause=short)


class NotAttempted(Exception):
    """Raised by a step's check when the notebook has no answer for it yet."""


def notebook_namespace() -> dict[str, Any]:
    """The notebook's variables (IPython's user namespace), or {} outside a notebook."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


StepCheck = Callable[[dict[str, Any]], Awaitable[None]]


class Step(Checked):
    """One step of building a program in the notebook, checked from its variables.

    Where an :class:`Exercise` checks a function you pass, a step looks at what
    your cells defined (``PORT``, ``server``, a file written with
    ``%%writefile``), like the checks of Kaggle's learntools::

        await ex.port.check()

    Each check is a coroutine function taking the notebook's namespace; it
    raises :exc:`NotAttempted` when the name it needs isn't there yet, and
    :exc:`Mismatch` (or any exception) when something is wrong. Never raises.

    Args:
        number: Shown in the header, e.g. ``"2.1"``.
        title: Shown in the header.
        checks: ``(description, check)`` pairs, run in order.
        hints: Hint 1 names the idea, hint 2 the construct.
        solution: The solution's code, as shown by :meth:`solution`.
    """

    label = "step"

    def __init__(
        self,
        number: str,
        title: str,
        *,
        checks: Sequence[tuple[str, StepCheck]],
        hints: Sequence[str],
        solution: str,
    ) -> None:
        self.number = number
        self.title = title
        self.checks = list(checks)
        self.hints = list(hints)
        self.code = solution.strip("\n")

    def __repr__(self) -> str:
        return f"<Step {self.number} · {self.title}>"

    async def results(self, namespace: dict[str, Any] | None = None) -> list[Result]:
        """Run every check against ``namespace`` (default: the notebook's)."""
        names = notebook_namespace() if namespace is None else namespace
        results = []
        for name, check in self.checks:
            try:
                await check(names)
            except NotAttempted as exc:
                results.append(Result(name, NOT_ATTEMPTED, str(exc)))
            except Mismatch as exc:
                detail = f"{exc}; {exc.cause}" if exc.cause else str(exc)
                results.append(
                    Result(name, FAILED, detail, cause=exc.short or "mismatch")
                )
            except Exception as exc:
                detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
                results.append(Result(name, FAILED, detail, cause=type(exc).__name__))
            else:
                results.append(Result(name, PASSED))
        return results


class Question:
    """A predict-the-output question: write your prediction, then check it.

    In the notebook, the question comes before the cell that answers it::

        erin_code = ...  # Your prediction: a close code.
        ex.predict_3_4.check(erin_code)

    ``check`` compares loosely: a number may be given as ``1001`` or ``"1001"``;
    text ignores case and surrounding spaces; a set of names may be a list, a
    set, or one string such as ``"bob, carol"``; a choice may be ``"b"``,
    ``"B"`` or ``"(b)"``. It never raises.

    Args:
        number: Shown in the header, e.g. ``"3.4"``.
        title: The question, short.
        answer: The right answer: an ``int``, a ``str``, or a ``frozenset`` of
            names when order doesn't matter.
        explanation: Why it is right; shown when the answer is right and by
            :meth:`solution`.
        hints: None by default: a prediction is yours before the cell shows
            the answer; :meth:`check` explains after, right or wrong.
        wrong: Likely wrong answers, each with what it suggests you think and
            why that isn't so.
        choices: For a multiple-choice question, the letters that are valid
            answers (``"abc"``).
    """

    def __init__(
        self,
        number: str,
        title: str,
        *,
        answer: int | str | frozenset[str],
        explanation: str,
        hints: Sequence[str] = (),
        wrong: dict[Any, str] | None = None,
        choices: str = "",
    ) -> None:
        self.number = number
        self.title = title
        self.choices = choices
        self.answer = answer
        self.explanation = explanation
        self.hints = list(hints)
        self.wrong = {self._normal(k): v for k, v in (wrong or {}).items()}
        if self._normal(answer) is None:  # A bug in the question itself.
            raise ValueError(f"question {number}: its answer {answer!r} can't be read")

    def __repr__(self) -> str:
        return f"<Question {self.number} · {self.title}>"

    def _normal(self, value: Any) -> Any:
        """``value`` in the answer's form, or None when it can't be read so."""
        expected = self.answer
        if isinstance(expected, bool) or isinstance(value, bool):
            return None
        if isinstance(expected, int):
            if isinstance(value, int):
                return value
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value.strip())
            return None
        if isinstance(expected, frozenset):
            if isinstance(value, str):
                value = re.split(r"[\s,;]+(?:and\s+)?", value.strip())
            if isinstance(value, list | tuple | set | frozenset) and all(
                isinstance(item, str) for item in value
            ):
                return frozenset(item.strip().casefold() for item in value if item)
            return None
        if not isinstance(value, str | int | float):
            return None
        text = " ".join(str(value).split()).casefold()
        if self.choices:
            text = text.strip("()[]. ")
        return text

    def outcome(self, answer: Any) -> Result:
        """Judge ``answer`` and return the result (what :meth:`check` prints)."""
        if answer is ... or answer is None:
            return Result(
                "your prediction",
                NOT_ATTEMPTED,
                "replace ... with what you expect, then run this cell again",
            )
        given = self._normal(answer)
        if given is None:
            return Result("your prediction", FAILED, self._form())
        if self.choices and given not in self.choices:
            return Result("your prediction", FAILED, self._form())
        if given == self._normal(self.answer):
            return Result("your prediction", PASSED, self.explanation)
        advice = self.wrong.get(given, "not what happens; hint() helps")
        return Result("your prediction", FAILED, advice)

    def _form(self) -> str:
        if self.choices:
            letters = ", ".join(repr(letter) for letter in self.choices)
            return f"answer with one of the letters {letters}"
        if isinstance(self.answer, frozenset):
            return 'answer with the names, such as ["alice", "bob"] or "alice, bob"'
        if isinstance(self.answer, int):
            return "answer with a number, such as 1000"
        return 'answer with text in quotes, such as "Pong: Hello"'

    def check(self, answer: Any) -> None:
        """Print whether ``answer`` is right, and why. Never raises."""
        print(f"Question {self.number} · {self.title}")
        try:
            result = self.outcome(answer)
        except Exception as exc:  # A bug in the question itself: still no raise.
            print(f"✗ the check itself failed: {type(exc).__name__}: {exc}")
            return
        if result.status == PASSED:
            print(f"  ✓ right: {result.detail}")
            report(self.number, PASSED)
        else:
            print(f"  {result}")
            if result.status == FAILED:
                report(self.number, FAILED, "wrong prediction")

    def hint(self, level: int = 1) -> None:
        """Print hint number ``level``; a question without hints says why it has none."""
        if not self.hints:
            print(
                f"question {self.number} has no hint: a prediction is what you "
                "expect before you see it; check() explains after, right or "
                "wrong, and solution() shows the answer"
            )
        else:
            _hint(f"question {self.number}", self.hints, level)
        report(self.number, "hint")

    def solution(self) -> None:
        """Show the answer and why."""
        print(
            f"Answer to question {self.number} · {self.title}: "
            f"{self._shown()}\n{self.explanation}"
        )
        report(self.number, "solution")

    def _shown(self) -> str:
        if isinstance(self.answer, frozenset):
            return ", ".join(sorted(self.answer)) or "nobody"
        return str(self.answer)


def _report(step: str, results: list[Result]) -> None:
    """Tell the class board (if this kernel joined one) how a check went.

    Failed if any scenario failed, with the first failure's cause; passed if
    all passed; nothing while not attempted. See :func:`wsteach.join.report`.
    """
    failed = [r for r in results if r.status == FAILED]
    if failed:
        report(step, FAILED, failed[0].cause or "failed")
    elif results and all(r.status == PASSED for r in results):
        report(step, PASSED)


def _hint(what: str, hints: list[str], level: int) -> None:
    if not 1 <= level <= len(hints):
        print(f"{what} has hints 1 to {len(hints)}; solution() shows the answer")
        return
    print(f"Hint {level} of {len(hints)}: {hints[level - 1]}")


class _Watch:
    """How the handlers under test ended: for naming the cause of a failure."""

    def __init__(self) -> None:
        self.returned_early = 0
        self.loops = False

    def clear(self) -> None:
        self.returned_early = 0

    def wrap(self, handler: Callable[[Any], Awaitable[None]]) -> Any:
        self.loops = _has_loop(handler)

        async def watched(websocket: Any) -> None:
            await handler(websocket)
            if websocket.state is State.OPEN:
                self.returned_early += 1

        return watched


def _has_loop(function: Any) -> bool:
    """Whether ``function``'s own body has a loop: ``for``, ``async for``, ``while``.

    A comprehension counts (``[m async for m in websocket]`` loops too); loops
    in functions defined inside it don't. When its source is gone,
    the answer is True: don't suggest adding a loop that may be there.
    """
    tree = _definition(function)
    if tree is None:
        return True
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.For | ast.AsyncFor | ast.While | ast.comprehension):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return False


_NOT_AWAITABLE = re.compile(r"object (\w+) can't be used in 'await' expression")
# Functions of websockets that return at once: awaiting them is the mistake.
_PLAIN_FUNCTIONS = {"broadcast"}


def definition(function: Any) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The ``def`` of ``function`` as Python's parser reads its source; None if gone.

    For checks that name a cause from the answer's code: a local variable, an
    ``except`` that catches too much, a removal outside ``finally``.
    """
    return _definition(function)


def node_kinds(function: Any) -> set[str]:
    """The kinds of syntax (``"AsyncFor"``, ``"Try"``…) in ``function``'s own body.

    Empty when its source is gone: no cause is then named from the code.
    """
    return {type(node).__name__ for node in _own_nodes(_definition(function))}


def called(function: Any, *, awaited: bool = False) -> set[str]:
    """Names of the functions ``function`` calls (only those it awaits, if ``awaited``).

    ``await broadcast(...)`` and ``await websockets.broadcast(...)`` both give
    ``"broadcast"``. Empty when its source is gone.
    """
    names = set()
    for node in _own_nodes(_definition(function)):
        if awaited:
            node = node.value if isinstance(node, ast.Await) else None
        if isinstance(node, ast.Call):
            names.add(ast.unparse(node.func).rsplit(".", 1)[-1])
    return names


def _own_nodes(tree: ast.AST | None) -> list[ast.AST]:
    """Every node of a function's body, without the functions defined inside it."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = list(ast.iter_child_nodes(tree)) if tree else []
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return found


def _likely_cause(
    failure: BaseException | None,
    watch: _Watch,
    not_awaited: list[str],
    *,
    crashed: bool,
    answer: Any = None,
) -> tuple[str, str]:
    """Name the likely cause of a failure: its short name and its sentence.

    The short name is what the class board shows; when no cause fits, it is
    the symptom's (``timeout``, ``mismatch``, the exception's class) and the
    sentence is ''.

    Args:
        failure: What ended the scenario, or what the handler raised.
        watch: How the handlers ended.
        not_awaited: "coroutine ... was never awaited" warnings meanwhile.
        crashed: Whether ``failure`` is the handler's own exception.
        answer: The answer, whose code may tell causes apart.
    """
    if any("send" in message for message in not_awaited):
        return "send not awaited", (
            "likely cause: websocket.send(...) without await sends nothing; "
            "write await websocket.send(...)"
        )
    if not_awaited:
        what = re.search(r"coroutine '([^']+)'", not_awaited[0])
        name = what.group(1) if what else "a coroutine"
        return "not awaited", (
            f"likely cause: {name} was called without await, so it never ran"
        )
    if crashed and isinstance(failure, TypeError):
        awaited = _NOT_AWAITABLE.search(str(failure))
        if awaited:
            call = next(iter(called(answer, awaited=True) & _PLAIN_FUNCTIONS), "")
            kind = awaited.group(1)
            value = "None" if kind == "NoneType" else f"a {kind}"
            what = (
                f"{call}(...) is a plain function, it returns {value}"
                if call
                else f"what you awaited is {value}, not a coroutine"
            )
            return "await of a plain function", (
                f"likely cause: await before a call that isn't a coroutine: {what}; "
                "call it without await"
            )
    if crashed and isinstance(failure, ConnectionClosed):
        name = type(failure).__name__
        if "AsyncFor" in node_kinds(answer):
            return "ConnectionClosed escaped", (
                f"likely cause: {name} escaped your handler: a send to a client "
                "that had left raised it (async for itself ends quietly); catch "
                "ConnectionClosed around the loop"
            )
        return "ConnectionClosed escaped", (
            f"likely cause: {name} escaped your handler: the client "
            "left while it waited in recv(); loop with async for message in websocket "
            "(it ends quietly), or catch ConnectionClosed"
        )
    if watch.returned_early and watch.loops:
        return "returned early", (
            "likely cause: your handler returned while its client was still "
            "connected, so websockets closed the connection: its loop ended "
            "before the client left"
        )
    if watch.returned_early:
        return "returned early", (
            "likely cause: your handler returned while its client was still "
            "connected, so websockets closed the connection: handle every message "
            "with async for message in websocket:"
        )
    if isinstance(failure, TimeoutError) and "for a message from" in str(failure):
        # A client's recv() gave up (see Client.recv): nothing came back.
        return "no reply", (
            "likely cause: no reply was sent; does your handler await "
            "websocket.send(...) for each message it receives?"
        )
    if isinstance(failure, Mismatch):
        if failure.received is None and failure.what.endswith(" returned"):
            function = getattr(answer, "__name__", "your function")
            shows = (
                "print(...) shows the reply, and " if "print" in called(answer) else ""
            )
            return "returns nothing", (
                f"likely cause: {function} returns nothing (None): {shows}only "
                "return hands it back to the caller; end with return and the value"
            )
        return _mismatch_cause(failure)
    if crashed:
        return "handler raised", ""
    if isinstance(failure, TimeoutError):
        return "timeout", ""
    if isinstance(failure, ConnectionClosed):
        return "closed early", ""
    return type(failure).__name__, ""


def _mismatch_cause(mismatch: Mismatch) -> tuple[str, str]:
    expected, received = mismatch.expected, mismatch.received
    if not (isinstance(expected, str) and isinstance(received, str)):
        return "mismatch", ""
    if expected != received and received and expected.endswith(received):
        start = expected[: len(expected) - len(received)]
        return "missing prefix", f"likely cause: the reply lacks {start!r} at the start"
    if expected != received and expected.casefold() == received.casefold():
        return "wrong capitals", "likely cause: same letters, different capitals"
    return "mismatch", ""


def _show_code(title: str, code: str) -> None:
    from IPython import get_ipython
    from IPython.display import Markdown, display

    if get_ipython() is not None:
        display(Markdown(f"**{title}**\n\n```python\n{code}\n```"))
    else:
        print(f"{title}\n\n{code}")
