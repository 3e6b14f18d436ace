"""Every exercise of every notebook, and the machinery in wsteach.exercises._core.

The exercises are discovered from the modules of :mod:`wsteach.exercises`; each
module belongs to the solution notebook that imports it. For every exercise:
its solution passes, the stub of the student notebook reports "not attempted
yet", the solution is the code of the solution notebook and absent from the
student notebook, and a wrong answer fails without raising.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import importlib
import pkgutil
import re
import textwrap
from pathlib import Path
from typing import Any

import IPython
import IPython.display
import nbformat
import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

import wsteach
import wsteach.exercises
from wsteach.exercises import (
    Exercise,
    Mismatch,
    Question,
    Result,
    Run,
    Step,
    _core,
    disconnects,
    echo_server,
    expect,
    is_stub,
)
from wsteach.exercises._core import FAILED, NOT_ATTEMPTED, PASSED, _has_loop

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"
STUDENTS = ROOT / "notebooks"
MARKER = re.compile(r"^\s*# (BEGIN|END) SOLUTION")
IMPORT = re.compile(
    r"from wsteach\.exercises import (\w+)|import wsteach\.exercises\.(\w+)"
)


# Discovery


def _modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(wsteach.exercises.__path__)
        if not info.name.startswith("_")
    )


def _exercises() -> list[tuple[str, str]]:
    found = []
    for name in _modules():
        module = importlib.import_module(f"wsteach.exercises.{name}")
        found += [
            (name, attr)
            for attr, value in vars(module).items()
            if isinstance(value, Exercise)
        ]
    return found


EXERCISES = _exercises()


def _code_cells(path: Path) -> list[nbformat.NotebookNode]:
    notebook = nbformat.read(path, as_version=4)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _notebook_for(module: str) -> Path:
    """The solution notebook that imports ``module``; fail clearly if none does."""
    users = []
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        for cell in _code_cells(path):
            if module in {a or b for a, b in IMPORT.findall(cell.source)}:
                users.append(path)
                break
    if len(users) != 1:
        found = ", ".join(path.name for path in users) or "none"
        pytest.fail(
            f"wsteach.exercises.{module} must be imported by exactly one solution "
            f"notebook in notebooks/solutions, found {found}\n"
            f"fix: add the notebook that uses it, with "
            f"'from wsteach.exercises import {module} as ex'"
        )
    return users[0]


def _parse(source: str) -> ast.Module:
    """Parse a code cell, which may use top-level await."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(source, "<cell>", "exec", flags=flags)


def _imports(path: Path) -> dict[str, Any]:
    """A namespace holding everything the notebook imports at the top level."""
    namespace: dict[str, Any] = {"__name__": "notebook"}
    for cell in _code_cells(path):
        try:
            tree = _parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                exec(ast.unparse(node), namespace)
    return namespace


def _function_name(exercise: Exercise, attr: str) -> str:
    """The name of the function the student completes."""
    names = [
        node.name
        for node in ast.parse(exercise.code).body
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
    ]
    assert names, f"the solution of {exercise!r} defines no function"
    return attr if attr in names else names[-1]


def _defining_cell(path: Path, function: str, attr: str | None = None) -> str:
    """The source of the code cell that defines ``function``.

    With ``attr``, the last such cell before the one that runs
    ``ex.<attr>.check(...)``: a notebook may redefine a handler as the story
    goes (notebook 03 changes ``echo`` twice).
    """
    found = None
    for cell in _code_cells(path):
        if attr is not None and f".{attr}.check(" in cell.source and found:
            return found
        try:
            tree = _parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if (
                isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
                and node.name == function
            ):
                if attr is None:
                    return cell.source
                found = cell.source
    if found:
        return found
    pytest.fail(f"{path.relative_to(ROOT)} has no code cell defining {function}")


def _normalize(source: str) -> str:
    lines = [line.rstrip() for line in source.splitlines() if not MARKER.match(line)]
    return "\n".join(lines).strip("\n")


def _body_lines(code: str, function: str) -> list[str]:
    """The significant lines of ``function``'s body in ``code``, stripped."""
    for node in ast.parse(code).body:
        if (
            isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
            and node.name == function
        ):
            first = node.body[0].lineno
            lines = code.splitlines()[first - 1 : node.end_lineno]
            return [
                line.strip()
                for line in lines
                if line.strip() and not line.strip().startswith("#")
            ]
    raise AssertionError(f"no function {function} in the solution")


def _exercise(module: str, attr: str) -> Exercise:
    return getattr(importlib.import_module(f"wsteach.exercises.{module}"), attr)


def _id(case: tuple[str, str]) -> str:
    return ".".join(case)


# Every exercise


def test_exercises_are_found():
    """Discovery finds the exercise modules and their exercises."""
    assert {"first_client", "echo_server", "disconnects"} <= set(_modules())
    assert len(EXERCISES) >= 6


@pytest.mark.parametrize("name", _modules())
def test_module_exports_its_exercises(name):
    """Each module exports its exercises in __all__, and has a notebook."""
    module = importlib.import_module(f"wsteach.exercises.{name}")
    exercises = {a for a, v in vars(module).items() if isinstance(v, Exercise)}
    assert exercises <= set(module.__all__)
    assert all(hasattr(module, public) for public in module.__all__)
    assert module.__doc__
    _notebook_for(name)


def test_exercise_numbers_are_unique():
    """No two exercises share a number."""
    numbers = [_exercise(*case).number for case in EXERCISES]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
async def test_solution_passes(case):
    """The solution's code, run with the notebook's imports, passes every scenario."""
    module, attr = case
    exercise = _exercise(module, attr)
    namespace = _imports(_notebook_for(module))
    exec(exercise.code, namespace)
    results = await exercise.results(namespace[_function_name(exercise, attr)])
    assert results
    assert [r.status for r in results] == [PASSED] * len(results), results


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
async def test_student_stub_is_not_attempted(case):
    """The stub in the student notebook reports "not attempted yet" everywhere."""
    module, attr = case
    exercise = _exercise(module, attr)
    student = STUDENTS / _notebook_for(module).name
    assert student.exists(), (
        f"{student.relative_to(ROOT)} is missing\nfix: make notebooks"
    )
    function = _function_name(exercise, attr)
    namespace = _imports(student)
    exec(_defining_cell(student, function, attr), namespace)
    results = await exercise.results(namespace[function])
    assert [r.status for r in results] == [NOT_ATTEMPTED] * len(results), results


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
def test_solution_is_in_solution_notebook_only(case):
    """The solution is the notebook's code; the student notebook has none of its body."""
    module, attr = case
    exercise = _exercise(module, attr)
    solution_path = _notebook_for(module)
    function = _function_name(exercise, attr)
    code = _normalize(exercise.code)

    assert code in _normalize(_defining_cell(solution_path, function, attr)), (
        f"the solution of exercise {exercise.number} differs from the code in "
        f"{solution_path.name}: make them the same"
    )
    check = re.compile(rf"\.{attr}\.check\({function}\)")
    for path in (solution_path, STUDENTS / solution_path.name):
        assert any(check.search(c.source) for c in _code_cells(path)), (
            f"{path.name} never runs ex.{attr}.check({function})"
        )

    student = STUDENTS / solution_path.name
    stub = _defining_cell(student, function, attr)
    leaked = [line for line in _body_lines(exercise.code, function) if line in stub]
    assert leaked == [], f"solution lines in the student notebook: {leaked}"
    everything = "\n".join(cell.source for cell in _code_cells(student))
    assert code not in everything
    assert "BEGIN SOLUTION" not in everything


async def _wrong_handler(websocket):
    async for _message in websocket:
        await websocket.send("wrong answer")


async def _wrong_client(url, *args):
    return "wrong answer"


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
async def test_wrong_answer_fails_without_raising(case, capsys):
    """A wrong answer (not a stub) gets "failed" lines, and check() doesn't raise."""
    exercise = _exercise(*case)
    wrong = _wrong_handler if exercise.kind == "handler" else _wrong_client
    await exercise.check(wrong)
    out = capsys.readouterr().out
    assert out.startswith(f"Exercise {exercise.number} · {exercise.title}\n")
    assert "✗" in out and ": failed — " in out
    assert "not attempted yet" not in out
    assert "all passed" not in out


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
def test_hints_and_solution(case, capsys):
    """Each exercise has at least two hints and shows its solution."""
    exercise = _exercise(*case)
    assert len(exercise.hints) >= 2
    exercise.hint()
    exercise.hint(2)
    exercise.solution()
    out = capsys.readouterr().out
    assert f"Hint 1 of {len(exercise.hints)}: {exercise.hints[0]}" in out
    assert f"Hint 2 of {len(exercise.hints)}: {exercise.hints[1]}" in out
    assert exercise.code in out


# The machinery: wsteach.exercises._core


async def _hi(run: Run) -> None:
    async with wsteach.connect(run.url, name="checker") as client:
        await client.send("hi")
        expect(await client.recv(run.timeout), "hi", "reply")


ECHO = Exercise(
    "0.1",
    "Echo",
    scenarios=[("hi comes back", _hi)],
    hints=["first", "second"],
    solution="\nasync def f(websocket):\n    ...\n",
)


async def _stub(websocket):
    """Send every message back.

    A docstring and comments don't make a stub an answer.
    """
    # Your code here: echo
    ...


async def _pass(websocket):
    pass


async def _only_docstring(websocket):
    """Nothing yet."""


async def _returns_none(websocket):
    return None


async def _returns_value(websocket):
    return 1


async def _assigns(websocket):
    x = 1  # noqa: F841


async def _awaits(websocket):
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("function", "stub"),
    [
        (_stub, True),
        (_pass, True),
        (_only_docstring, True),
        (_returns_none, True),
        (_returns_value, False),
        (_assigns, False),
        (_awaits, False),
        (print, False),
        ("not a function", False),
    ],
)
def test_is_stub(function, stub):
    """Only a body that does nothing but return None counts as a stub."""
    assert is_stub(function) is stub


@pytest.mark.parametrize(
    ("source", "stub"),
    [
        ("async def f(websocket):\n    ...\n", True),
        ("async def f(websocket):\n    pass\n", True),
        ("def f(a, b):\n    return None\n", True),
        ("async def f(websocket):\n    return 1\n", False),
        ("async def f(websocket):\n    await websocket.send('x')\n", False),
        ("def f(a, b):\n    a.append(b)\n", False),
    ],
)
def test_is_stub_without_source(source, stub):
    """A function whose source is gone (exec'd) is compared with a stub compiled now."""
    namespace: dict = {}
    exec(compile(source, "<gone>", "exec"), namespace)
    assert is_stub(namespace["f"]) is stub


async def _loops_in_a_comprehension(websocket):
    [message async for message in websocket]


async def _loop_only_inside(websocket):
    async def inner():
        async for message in websocket:
            print(message)

    await inner()


def test_a_comprehension_is_a_loop_and_a_nested_one_is_not():
    """_has_loop counts a comprehension, not a loop in a function defined inside."""
    assert _has_loop(_loops_in_a_comprehension)
    assert not _has_loop(_loop_only_inside)
    assert _has_loop(print), "no source: don't suggest a loop that may be there"


async def test_passing_answer_prints_all_passed(capsys):
    """A right answer gets a ✓ line per scenario and a well done."""
    await ECHO.check(wsteach.echo)
    assert capsys.readouterr().out == (
        "Exercise 0.1 · Echo\n  ✓ hi comes back: passed\n  all passed: well done!\n"
    )


async def test_stub_with_docstring_and_comments_is_not_attempted():
    """An untouched stub is "not attempted yet", naming the function to write."""
    results = await ECHO.results(_stub)
    assert results == [
        Result(
            "hi comes back",
            NOT_ATTEMPTED,
            "write the body of _stub, then run this cell again",
        )
    ]


async def test_two_parameter_handler_is_reported_once(capsys):
    """The video's (websocket, path) handler: one failed line, not one per scenario."""

    async def echo(websocket, path):
        await websocket.send(path)

    await PONG.check(echo)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[1].startswith("  ✗ your handler: failed — handler echo takes two ")
    assert "(websocket, path)" in lines[1]
    assert lines[1].endswith("(no scenario was played)")


async def test_plain_function_is_reported():
    """A handler written with def instead of async def fails once, with the fix."""

    def echo(websocket):
        pass

    (result,) = await PONG.results(echo)
    assert result == Result(
        "your handler",
        FAILED,
        "echo must be defined with 'async def' (no scenario was played)",
    )


async def _pong_once(run: Run) -> None:
    async with wsteach.connect(run.url, name="checker") as client:
        await client.send("Hello server")
        expect(await client.recv(run.timeout), "Pong: Hello server", "reply")


async def _pong_in_order(run: Run) -> None:
    async with wsteach.connect(run.url, name="checker") as client:
        for n in range(10):
            await client.send(f"message {n}")
        for n in range(10):
            expect(await client.recv(run.timeout), f"Pong: message {n}", f"reply {n}")


PONG = Exercise(
    "0.8",
    "Pong",
    scenarios=[("one reply", _pong_once), ("ten replies in order", _pong_in_order)],
    hints=["a", "b"],
    solution="",
)


async def _failure(answer: Any) -> str:
    """The detail of the first failed scenario of exercise 2.1 for ``answer``."""
    results = await PONG.results(answer)
    failed = [r.detail for r in results if r.status == FAILED]
    assert failed, results
    return failed[0]


async def test_cause_handler_reads_once():
    """A handler that handles one message and returns is told to use async for."""

    async def once(websocket):
        message = await websocket.recv()
        await websocket.send("Pong: " + message)

    detail = await _failure(once)
    assert detail.endswith(
        "likely cause: your handler returned while its client was still connected, "
        "so websockets closed the connection: handle every message with "
        "async for message in websocket:"
    )


async def test_cause_loop_that_ends_early():
    """A handler whose loop ends while its client stays is told so, not to add a loop."""

    async def two_only(websocket):
        async for message in websocket:
            await websocket.send("Pong: " + message)
            break

    detail = await _failure(two_only)
    assert detail.endswith(
        "likely cause: your handler returned while its client was still connected, "
        "so websockets closed the connection: its loop ended before the client left"
    )


async def test_cause_send_without_await():
    """A send without await is named as the cause of the missing reply."""

    async def forgot(websocket):
        async for message in websocket:
            websocket.send("Pong: " + message)

    detail = await _failure(forgot)
    assert detail.startswith("checker waited")
    assert detail.endswith(
        "likely cause: websocket.send(...) without await sends nothing; "
        "write await websocket.send(...)"
    )


async def test_cause_other_coroutine_without_await():
    """Another coroutine called without await is named."""

    async def nap():
        pass

    async def forgot(websocket):
        async for _message in websocket:
            nap()

    detail = await _failure(forgot)
    assert "likely cause: " in detail and "nap was called without await" in detail


async def test_cause_connection_closed_escapes():
    """A recv loop that lets ConnectionClosedOK escape is told why and what to do."""

    async def loop(websocket):
        while True:
            message = await websocket.recv()
            await websocket.send("Pong: " + message)

    detail = await _failure(loop)
    assert detail.startswith("your handler raised ConnectionClosedOK")
    assert "likely cause: ConnectionClosedOK escaped your handler" in detail
    assert "async for message in websocket" in detail


async def test_cause_no_reply():
    """A handler that never replies: the cause says to send a reply."""

    async def silent(websocket):
        async for _message in websocket:
            pass

    detail = await _failure(silent)
    assert detail.endswith(
        "likely cause: no reply was sent; does your handler await "
        "websocket.send(...) for each message it receives?"
    )


async def test_cause_missing_prefix_and_capitals():
    """A reply without its prefix, or in other capitals, gets that named."""
    detail = await _failure(wsteach.echo)
    assert detail.endswith("likely cause: the reply lacks 'Pong: ' at the start")

    async def lower(websocket):
        async for message in websocket:
            await websocket.send(("Pong: " + message).lower())

    detail = await _failure(lower)
    assert detail.endswith("likely cause: same letters, different capitals")


async def test_server_that_cannot_start_is_reported_once(monkeypatch):
    """If the server can't start, one line says why."""

    async def broken(*args, **kwargs):
        raise OSError("no sockets today")

    monkeypatch.setattr(_core, "start", broken)
    results = await PONG.results(wsteach.echo)
    assert results == [
        Result("your handler", FAILED, "the server could not start: no sockets today")
    ]


# Predict-the-output questions

CODE = Question(
    "0.4",
    "Which close code?",
    answer=1001,
    explanation="the server going away sends 1001",
    hints=["think of who closes", "CloseCode has a name for a server that stops"],
    wrong={1000: "1000 is a normal closure, as a client leaving sends"},
)
NAMES = Question(
    "0.5",
    "Who receives it?",
    answer=frozenset({"alice", "carol"}),
    explanation="everyone but the sender",
    hints=["a", "b"],
    wrong={frozenset({"alice", "bob", "carol"}): "the sender is skipped"},
)
CHOICE = Question(
    "0.6",
    "Which one?",
    answer="b",
    choices="abc",
    explanation="b it is",
    hints=["a", "b"],
)
TEXT = Question(
    "0.7", "What prints?", answer="Pong: Hi", explanation="e", hints=["a", "b"]
)


@pytest.mark.parametrize(
    ("question", "answer", "status", "detail"),
    [
        (CODE, ..., NOT_ATTEMPTED, "replace ... with what you expect"),
        (CODE, 1001, PASSED, "the server going away sends 1001"),
        (CODE, " 1001 ", PASSED, "the server"),
        (CODE, 1000, FAILED, "1000 is a normal closure"),
        (CODE, 1006, FAILED, "not what happens; hint() helps"),
        (CODE, "one thousand", FAILED, "answer with a number, such as 1000"),
        (CODE, True, FAILED, "answer with a number"),
        (NAMES, ["carol", "alice"], PASSED, "everyone"),
        (NAMES, "Alice and Carol", PASSED, "everyone"),
        (NAMES, "alice, bob, carol", FAILED, "the sender is skipped"),
        (NAMES, 3, FAILED, 'answer with the names, such as ["alice", "bob"]'),
        (CHOICE, "(B)", PASSED, "b it is"),
        (CHOICE, "a", FAILED, "not what happens"),
        (CHOICE, "d", FAILED, "answer with one of the letters 'a', 'b', 'c'"),
        (TEXT, "pong:  hi", PASSED, "e"),
        (TEXT, object(), FAILED, "answer with text in quotes"),
        (TEXT, None, NOT_ATTEMPTED, "replace ..."),
    ],
)
def test_question_outcomes(question, answer, status, detail):
    """Predictions are read loosely; wrong ones get their own advice or a nudge."""
    result = question.outcome(answer)
    assert result.status == status
    assert result.detail.startswith(detail), result.detail


def test_question_check_hint_solution(capsys):
    """check() prints a header and one line; hints and solution() print, never raise."""
    CODE.check(1001)
    CODE.check(1000)
    CODE.check(...)
    CODE.hint()
    CODE.hint(2)
    CODE.hint(3)
    CODE.solution()
    NAMES.solution()
    assert capsys.readouterr().out == (
        "Question 0.4 · Which close code?\n"
        "  ✓ right: the server going away sends 1001\n"
        "Question 0.4 · Which close code?\n"
        "  ✗ your prediction: failed — 1000 is a normal closure, as a client leaving "
        "sends\n"
        "Question 0.4 · Which close code?\n"
        "  · your prediction: not attempted yet — replace ... with what you expect, "
        "then run this cell again\n"
        "Hint 1 of 2: think of who closes\n"
        "Hint 2 of 2: CloseCode has a name for a server that stops\n"
        "question 0.4 has hints 1 to 2; solution() shows the answer\n"
        "Answer to question 0.4 · Which close code?: 1001\n"
        "the server going away sends 1001\n"
        "Answer to question 0.5 · Who receives it?: alice, carol\n"
        "everyone but the sender\n"
    )
    assert repr(CODE) == "<Question 0.4 · Which close code?>"


async def test_not_a_function_is_reported(capsys):
    """Passing something that isn't a function fails, and check() doesn't raise."""
    await ECHO.check(42)
    assert "check() needs your function itself, got int" in capsys.readouterr().out


async def test_crashing_handler_is_reported():
    """A handler that raises is reported as "your handler raised …"."""

    async def crash(websocket):
        async for _message in websocket:
            raise ValueError("boom")

    (result,) = await ECHO.results(crash)
    assert result.status == FAILED
    assert result.detail.startswith("your handler raised ValueError: boom (")
    assert "1011" in result.detail


async def test_crash_after_the_client_left_is_reported():
    """A handler that raises only once its client has gone still fails."""

    async def crash_at_the_end(websocket):
        async for message in websocket:
            await websocket.send(message)
        raise RuntimeError("after the loop")

    (result,) = await ECHO.results(crash_at_the_end)
    assert result == Result(
        "hi comes back", FAILED, "your handler raised RuntimeError: after the loop"
    )


async def test_error_logged_by_the_handler_is_not_a_crash():
    """A handler that logs an error itself, without an exception, still passes."""

    async def logs(websocket):
        async for message in websocket:
            websocket.logger.error("about to echo %s", message)
            await websocket.send(message)

    assert await ECHO.results(logs) == [Result("hi comes back", PASSED)]


async def test_cause_for_a_handler_whose_code_cannot_be_read():
    """A handler without code of its own (a partial) that returns early isn't told to add a loop."""

    async def once(websocket, prefix):
        message = await websocket.recv()
        await websocket.send(prefix + message)

    detail = await _failure(functools.partial(once, prefix="Pong: "))
    assert detail.endswith(
        "so websockets closed the connection: its loop ended before the client left"
    )


async def test_scenario_errors_become_failed_lines():
    """Timeouts, early closes and other errors in a scenario are failed lines."""

    async def times_out(run: Run) -> None:
        raise TimeoutError("waited too long\nsecond line")

    async def closes(run: Run) -> None:
        raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True)

    async def breaks(run: Run) -> None:
        raise KeyError("x")

    exercise = Exercise(
        "0.2",
        "Errors",
        scenarios=[("timeout", times_out), ("closed", closes), ("error", breaks)],
        hints=["h"],
        solution="",
    )
    results = await exercise.results(wsteach.echo)
    assert [r.detail for r in results] == [
        "waited too long",
        "the connection closed early (received 1000 (OK); then sent 1000 (OK))",
        "KeyError: 'x'",
    ]
    assert all(r.status == FAILED for r in results)


async def test_answer_that_swallows_its_cancellation_cannot_hang_check(
    monkeypatch, capsys
):
    """A client answer whose bare except: catches the cancellation fails in bounded time, naming it."""
    from wsteach.exercises import first_client

    monkeypatch.setattr(_core, "REPLY_TIMEOUT", 0.1)
    monkeypatch.setattr(_core, "CANCEL_GRACE", 0.3)

    async def say_hello(url):
        async with wsteach.connect(url) as ws:
            while True:
                try:
                    await ws.recv()
                except:  # noqa: E722 - the student's mistake under test
                    await asyncio.sleep(0.1)

    loop = asyncio.get_running_loop()
    began = loop.time()
    await first_client.say_hello.check(say_hello)
    assert loop.time() - began < 10 * _core.TIMEOUT_FACTOR
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if "✗" in line]
    assert len(failed) == 2, lines
    assert all("a bare except: catches the cancellation" in f for f in failed)
    assert not any("it still runs" in f for f in failed)
    assert not _core._abandoned


async def test_within_abandons_a_task_that_never_stops(monkeypatch):
    """An answer that catches every cancellation is abandoned, with a note that it still runs."""
    monkeypatch.setattr(_core, "CANCEL_GRACE", 0.1)
    stop = asyncio.Event()

    async def stubborn():
        while not stop.is_set():
            with contextlib.suppress(BaseException):  # The mistake under test.
                await asyncio.sleep(1)

    with pytest.raises(_core.Abandoned, match="it still runs: restart the kernel"):
        await _core.within(stubborn(), 0.05)
    (task,) = _core._abandoned
    stop.set()
    task.cancel()
    await asyncio.wait({task})
    assert not _core._abandoned


async def test_within_times_out_an_answer_that_stops_when_cancelled():
    """An answer too slow but cancellable is a plain timeout, whatever it ends with."""

    async def slow():
        await asyncio.sleep(10)

    async def returns_when_cancelled():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "too late"

    for answer in (slow, returns_when_cancelled):
        with pytest.raises(TimeoutError, match=r"gave up after 0\.05 s"):
            await _core.within(answer(), 0.05)
    assert await _core.within(asyncio.sleep(0, "quick"), 1) == "quick"


async def test_within_cancels_the_answer_when_the_check_is_cancelled():
    """Cancelling the check (Kernel → Interrupt) cancels the answer's task too."""
    started = asyncio.Event()
    answer_cancelled = asyncio.Event()

    async def answer():
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            answer_cancelled.set()
            raise

    check = asyncio.create_task(_core.within(answer(), 10))
    await started.wait()
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check
    await asyncio.wait_for(answer_cancelled.wait(), 1)


async def test_check_never_raises_even_when_the_exercise_is_broken(capsys):
    """A bug in an exercise itself is one failed line, not a traceback in the notebook."""

    class Broken(Exercise):
        async def results(self, answer):
            raise KeyError("scenario")

    await Broken("0.9", "Broken", scenarios=[], hints=["h"], solution="").check(
        wsteach.echo
    )
    assert capsys.readouterr().out.splitlines() == [
        "Exercise 0.9 · Broken",
        "✗ the check itself failed: KeyError: 'scenario'",
    ]


def test_question_check_never_raises_and_refuses_an_unreadable_answer(capsys):
    """A question whose own answer can't be read is refused; a broken outcome is one line."""
    with pytest.raises(
        ValueError, match=r"question 0\.9: its answer True can.t be read"
    ):
        Question("0.9", "Bool", answer=True, explanation="", hints=["h"])

    class Broken(Question):
        def outcome(self, answer):
            raise KeyError("outcome")

    Broken("0.9", "Broken", answer=1, explanation="", hints=["h"]).check(1)
    assert capsys.readouterr().out.splitlines() == [
        "Question 0.9 · Broken",
        "✗ the check itself failed: KeyError: 'outcome'",
    ]


def test_mismatch_and_result_text():
    """Failures say what was expected and what arrived."""
    with pytest.raises(Mismatch) as info:
        expect("b", "a", "reply")
    assert str(info.value) == "reply: expected 'a', received 'b'"
    assert str(Mismatch(1, 2)) == "expected 1, received 2"
    expect([1], [1])
    assert str(Result("s", PASSED)) == "✓ s: passed"
    assert str(Result("s", FAILED, "why")) == "✗ s: failed — why"
    assert str(Result("s", NOT_ATTEMPTED)) == "· s: not attempted yet"


def test_hint_out_of_range(capsys):
    """Asking for a hint that doesn't exist says which ones do."""
    ECHO.hint(0)
    ECHO.hint(3)
    message = "exercise 0.1 has hints 1 to 2; solution() shows the answer\n"
    assert capsys.readouterr().out == message * 2
    assert repr(ECHO) == "<Exercise 0.1 · Echo>"


def test_client_exercise_needs_a_reference():
    """A client exercise without a reference server is a programming error."""
    with pytest.raises(ValueError, match="a client exercise needs a reference server"):
        Exercise("0.3", "Client", scenarios=[], hints=[], solution="", kind="client")


def test_solution_prints_outside_ipython(capsys):
    """Outside IPython, solution() prints a title and the code."""
    ECHO.solution()
    assert capsys.readouterr().out == (
        "Solution to exercise 0.1 · Echo\n\nasync def f(websocket):\n    ...\n"
    )


def test_solution_displays_markdown_in_ipython(monkeypatch):
    """In IPython, solution() displays the code as a Markdown code block."""
    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", shown.append)
    ECHO.solution()
    (markdown,) = shown
    assert markdown.data == textwrap.dedent(
        """\
        **Solution to exercise 0.1 · Echo**

        ```python
        async def f(websocket):
            ...
        ```"""
    )


# Predict-the-output questions of the notebooks


def _questions() -> list[tuple[str, str]]:
    found = []
    for name in _modules():
        module = importlib.import_module(f"wsteach.exercises.{name}")
        found += [
            (name, attr)
            for attr, value in vars(module).items()
            if isinstance(value, Question)
        ]
    return found


QUESTIONS = _questions()


def test_questions_are_found():
    """Notebooks 01, 02 and 03 each ask at least one predict-the-output question."""
    modules = {module for module, _ in QUESTIONS}
    assert {"first_client", "echo_server", "disconnects"} <= modules


def _question_cell(path: Path, attr: str) -> str:
    for cell in _code_cells(path):
        if f".{attr}.check(" in cell.source:
            return cell.source
    pytest.fail(f"{path.name} never runs ex.{attr}.check(...)")


@pytest.mark.parametrize("case", QUESTIONS, ids=_id)
def test_question_in_notebooks(case, capsys):
    """The solution notebook's prediction is right; the student's is not attempted yet."""
    module, attr = case
    question = getattr(importlib.import_module(f"wsteach.exercises.{module}"), attr)
    assert question.wrong, "name at least one likely wrong answer and why"
    solution = _notebook_for(module)
    namespace = _imports(solution)
    exec(_question_cell(solution, attr), namespace)
    assert "✓ right: " in capsys.readouterr().out
    student = STUDENTS / solution.name
    namespace = _imports(student)
    exec(_question_cell(student, attr), namespace)
    assert "not attempted yet" in capsys.readouterr().out
    assert "BEGIN SOLUTION" not in _question_cell(student, attr)


# Steps of notebook 02: checks that read the notebook's variables


async def _statuses(step, namespace) -> list[str]:
    return [result.status for result in await step.results(namespace)]


async def test_port_step():
    """Step 2.1 passes for a port number; text, a privileged port and no PORT are told apart."""
    port = echo_server.port
    assert await _statuses(port, {"PORT": 7890}) == [PASSED, PASSED]
    assert await _statuses(port, {}) == [NOT_ATTEMPTED, NOT_ATTEMPTED]
    text = await port.results({"PORT": "7890"})
    assert text[0].status == FAILED
    assert text[0].detail.startswith("PORT is text; a port is a number")
    low = await port.results({"PORT": 80})
    assert [r.status for r in low] == [PASSED, FAILED]
    assert "administrator rights" in low[1].detail


async def test_serving_step():
    """Step 2.3 passes for a running server on PORT; a forgotten await is named."""
    serving = echo_server.serving
    namespace = _imports(_notebook_for("echo_server"))
    exec(echo_server.handler.code, namespace)
    server = await wsteach.start(namespace["echo"], port=0)
    try:
        names = {"server": server, "PORT": server.port}
        assert await _statuses(serving, names) == [PASSED] * 3
        wrong_port = await serving.results({"server": server, "PORT": 7890})
        assert wrong_port[1].status == FAILED
    finally:
        await server.stop()
    stopped = await serving.results({"server": server, "PORT": server.port})
    assert stopped[0].detail.endswith("a stopped one: run its cell again'")
    assert await _statuses(serving, {"PORT": 7890}) == [NOT_ATTEMPTED] * 3
    forgot = await serving.results({"server": wsteach.start(wsteach.echo, port=0)})
    assert "(did you forget await?)" in forgot[0].detail


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_script_step(tmp_path, monkeypatch, capsys):
    """Step 2.5 runs the solution's script for real; a stub, a missing part, a crash are told apart."""
    script = echo_server.script
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "server_echo.py"
    assert await _statuses(script, {}) == [NOT_ATTEMPTED] * 2
    path.write_text("# Your code here: the whole script\n...\n")
    assert await _statuses(script, {}) == [NOT_ATTEMPTED] * 2
    code = script.code.split("\n", 1)[1]  # Without the %%writefile line.
    path.write_text(code.replace("7890", str(_free_port())))
    assert await _statuses(script, {}) == [PASSED, PASSED]
    assert capsys.readouterr().out == ""  # The check's own run is quiet.
    path.write_text(code.replace("await server.serve_forever()", "pass"))
    missing = await script.results({})
    assert missing[0].detail == (
        "what server_echo.py lacks of serve, serve_forever, asyncio.run: "
        "expected [], received ['serve_forever']"
    )
    assert missing[1].status == FAILED
    path.write_text("import asyncio\nasyncio.run(1 / 0)\n")
    crashed = await script.results({})
    assert crashed[1].detail == (
        "server_echo.py, run with python: expected 'Server listening on port ...', "
        "received 'ZeroDivisionError: division by zero'"
    )
    async with wsteach.start(wsteach.echo, port=0, host="127.0.0.1") as holder:
        path.write_text(code.replace("7890", str(holder.port)))
        taken = await script.results({})
    assert taken[1].detail.endswith(
        "in use (stop the notebook's server first: await server.stop())\""
    )
    path.write_text("def f(:\n")
    broken = await script.results({})
    assert "on line 1" in broken[0].detail


async def test_step_prints_hints_and_solution(capsys, monkeypatch):
    """A step prints a header and one line per check, reads IPython's namespace, never raises."""
    await echo_server.port.check({"PORT": 7890})
    await echo_server.port.check({})
    echo_server.port.hint()
    echo_server.port.hint(3)
    echo_server.port.solution()
    out = capsys.readouterr().out
    assert out.startswith(
        "Step 2.1 · The port\n  ✓ PORT is a whole number: passed\n"
        "  ✓ PORT is a port your programs may use: passed\n"
        "  all passed: well done!\nStep 2.1 · The port\n"
        "  · PORT is a whole number: not attempted yet — write PORT = ..."
    )
    assert f"Hint 1 of 2: {echo_server.port.hints[0]}" in out
    assert "step 2.1 has hints 1 to 2; solution() shows the answer" in out
    assert 'Solution to step 2.1 · The port\n\nPORT = 7890\nprint("Server' in out
    assert repr(echo_server.port) == "<Step 2.1 · The port>"

    class Shell:
        def __init__(self) -> None:
            self.user_ns = {"PORT": 7891}

    assert _core.notebook_namespace() == {}
    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    assert _core.notebook_namespace() == {"PORT": 7891}
    results = await echo_server.port.results()
    assert [r.status for r in results] == [PASSED, PASSED]


async def test_step_reports_unexpected_errors():
    """An exception in a check becomes a failed line naming it."""

    async def broken(names):
        raise KeyError("x")

    step = Step("0.9", "Broken", checks=[("boom", broken)], hints=[], solution="")
    assert await step.results({}) == [Result("boom", FAILED, "KeyError: 'x'")]


async def test_port_step_wants_a_whole_number():
    """Step 2.1 fails a PORT that is a number but not a whole one, or True."""
    for port in (7890.0, True):
        (number, _) = await echo_server.port.results({"PORT": port})
        assert number == Result(
            number.scenario,
            FAILED,
            f"PORT: expected 'a whole number such as 7890', received {port!r}",
        )


async def test_script_step_reads_dotted_names(tmp_path, monkeypatch):
    """Step 2.5 finds serve written in full, websockets.asyncio.server.serve."""
    monkeypatch.chdir(tmp_path)
    code = echo_server.script.code.split("\n", 1)[1]
    code = code.replace(
        "from websockets.asyncio.server import serve",
        "import websockets.asyncio.server",
    ).replace("async with serve(", "async with websockets.asyncio.server.serve(")
    (tmp_path / "server_echo.py").write_text(code.replace("7890", str(_free_port())))
    assert await _statuses(echo_server.script, {}) == [PASSED, PASSED]


async def test_script_step_needs_the_port_in_the_banner(tmp_path, monkeypatch):
    """Step 2.5 fails a script whose banner prints no port number, quoting the banner."""
    monkeypatch.chdir(tmp_path)
    code = echo_server.script.code.split("\n", 1)[1]
    code = code.replace(
        '"Server listening on port " + str(PORT)', '"Server listening on port PORT"'
    )
    (tmp_path / "server_echo.py").write_text(code.replace("7890", str(_free_port())))
    results = await echo_server.script.results({})
    assert results[0].status == PASSED
    assert results[1].detail == (
        "its print: expected 'Server listening on port <number>', "
        "received 'Server listening on port PORT'"
    )


# Exercises of notebook 03: failures the solutions never show


def _only(exercise: Exercise, index: int) -> Exercise:
    """The same exercise with one of its scenarios."""
    return Exercise(
        exercise.number,
        exercise.title,
        scenarios=[exercise.scenarios[index]],
        hints=exercise.hints,
        solution=exercise.code,
        prints=exercise.prints,
        diagnose=exercise.diagnose,
    )


async def test_handler_that_prints_nothing_fails_3_1():
    """3.1 fails a handler that replies but never prints the message, saying what it printed."""

    async def quiet(websocket):
        print("A client just connected")
        async for message in websocket:
            await websocket.send("Pong: " + message)

    (result,) = await _only(disconnects.bare_except, 0).results(quiet)
    assert result.status == FAILED
    assert result.detail == (
        "your handler printed: expected \"a line 'Received message from client: "
        "Hello server'\", received 'A client just connected'"
    )


async def test_closing_with_1011_by_hand_is_no_bug_in_the_log_3_3():
    """3.3's bug scenario fails a handler that closes with 1011 itself: the log has no TypeError."""

    async def closes(websocket):
        async for message in websocket:
            if isinstance(message, bytes):
                await websocket.close(1011)
                return
            await websocket.send("Pong: " + message)

    (result,) = await _only(disconnects.disconnected, 2).results(closes)
    assert result == Result(
        result.scenario,
        FAILED,
        "errors in the server log: expected ['TypeError'], received []",
    )


# Typical wrong answers, each with the cause its line must name


async def test_except_exception_names_the_swallowed_type_error_3_3():
    """3.3 with except Exception: names the TypeError it swallows, not an early return."""

    async def echo(websocket):
        print("A client just connected")
        try:
            async for message in websocket:
                print("Received message from client: " + message)
                await websocket.send("Pong: " + message)
        except Exception:
            print("A client just disconnected")

    (result,) = await _only(disconnects.disconnected, 2).results(echo)
    assert result.detail == (
        "close code: expected 1011, received 1000; likely cause: your except "
        "Exception: catches every exception, the TypeError of bytes + str too: the "
        "bug is swallowed, and the handler returns as if the client had left; "
        "catch ConnectionClosed only"
    )
    assert result.cause == "bug swallowed"


async def test_bare_except_names_the_swallowed_type_error_3_5():
    """3.5 with a bare except: around the recv loop names the same swallowed bug."""

    async def careful(websocket):
        try:
            while True:
                message = await websocket.recv()
                await websocket.send("Pong: " + message)
        except:  # noqa: E722 - the student's mistake under test
            pass

    (result,) = await _only(disconnects.careful, 3).results(careful)
    assert "likely cause: your except: catches every exception" in result.detail


async def test_print_instead_of_return_is_named_1_2():
    """1.2 that prints the reply instead of returning it is told to return it."""
    from wsteach.exercises import first_client

    async def say_hello(url):
        async with wsteach.connect(url) as websocket:
            await websocket.send("Hello server")
            print(await websocket.recv())

    results = await first_client.say_hello.results(say_hello)
    assert [r.status for r in results] == [FAILED, PASSED]
    assert results[0].detail == (
        "say_hello returned: expected 'Pong: Hello server', received None; likely "
        "cause: say_hello returns nothing (None): print(...) shows the reply, and "
        "only return hands it back to the caller; end with return and the value"
    )


async def test_forgotten_return_is_named_1_3():
    """1.3 that collects the replies but returns nothing is told to return them."""
    from wsteach.exercises import first_client

    async def send_all(url, messages):
        replies = []
        async with wsteach.connect(url) as websocket:
            for message in messages:
                await websocket.send(message)
                replies.append(await websocket.recv())

    results = await first_client.send_all.results(send_all)
    assert results[0].detail == (
        "send_all returned: expected ['Pong: one', 'Pong: two', 'Pong: three'], "
        "received None; likely cause: send_all returns nothing (None): only "
        "return hands it back to the caller; end with return and the value"
    )


count = 0


async def shared_counter(websocket):
    """2.6 with one counter for every client."""
    global count
    async for message in websocket:
        count += 1
        await websocket.send(f"{count}: {message}")


async def counter_in_the_loop(websocket):
    """2.6 with the counter set back to 0 at each message."""
    async for message in websocket:
        count = 0
        count += 1
        await websocket.send(f"{count}: {message}")


async def test_counter_shared_by_all_clients_is_named_2_6():
    """2.6 with a global counter passes one client and names the shared counter."""
    results = await echo_server.numbered.results(shared_counter)
    assert [r.status for r in results] == [PASSED, FAILED]
    assert results[1].detail == (
        "alice's first reply: expected '1: hi', received '4: hi'; likely cause: one "
        "counter for every client: it keeps counting from the clients before; "
        "create the counter inside the handler, before its loop, so each call has "
        "its own"
    )


async def test_counter_reset_at_each_message_is_named_2_6():
    """2.6 with the counter inside the loop says it starts again at each message."""
    results = await echo_server.numbered.results(counter_in_the_loop)
    assert results[0].detail == (
        "reply: expected '2: b', received '1: b'; likely cause: the counter starts "
        "again at each message: set it before the loop, not inside it"
    )


async def test_serving_step_forgets_a_stale_await_warning_2_3():
    """2.3 after the fix: an awaited start, or a fixed cell that failed, isn't "forgot await"."""
    serving = echo_server.serving
    pending = wsteach.start(wsteach.echo, port=0)
    forgot = await serving.results({"server": pending})
    assert "(did you forget await?)" in forgot[0].detail
    cells = ["", "server = wsteach.start(echo, port=PORT)"]
    cells.append("server = await wsteach.start(echo, port=PORT)")
    failed = await serving.results({"server": pending, "In": cells})
    assert failed[0].detail == (
        "server: expected 'what await wsteach.start(echo, port=PORT) returns', "
        "received \"a start (your cell awaits it now, but that cell didn't finish: "
        "server still holds the call from before; run that cell again and read its "
        'error)"'
    )
    running = await pending
    try:
        awaited = await serving.results({"server": pending, "In": cells[:2]})
        assert "did you forget await" not in awaited[0].detail
        assert "it was awaited, but its result went nowhere" in awaited[0].detail
    finally:
        await running.stop()


async def test_bare_main_is_named_2_5(tmp_path, monkeypatch):
    """2.5 with main() instead of asyncio.run(main()) names the coroutine that never ran."""
    monkeypatch.chdir(tmp_path)
    code = echo_server.script.code.split("\n", 1)[1]
    code = code.replace("asyncio.run(main())", "main()")
    (tmp_path / "server_echo.py").write_text(code.replace("7890", str(_free_port())))
    parts, serves = await echo_server.script.results({})
    cause = (
        "likely cause: main() on its own only makes a coroutine, which never runs "
        "(Python warns that it was never awaited); asyncio.run(main()) runs it"
    )
    assert parts.detail == (
        "what server_echo.py lacks of serve, serve_forever, asyncio.run: expected "
        f"[], received ['asyncio.run']; {cause}"
    )
    assert serves.detail.endswith(f"; {cause}")
    assert "tracemalloc" not in serves.detail.split("; likely cause")[1]


async def test_returning_on_bytes_is_not_called_a_swallowed_bug_3_3():
    """A handler that returns on bytes, with a narrow except, isn't told its except is too broad."""

    async def echo(websocket):
        try:
            async for message in websocket:
                if isinstance(message, bytes):
                    return
                print("Received message from client: " + message)
                await websocket.send("Pong: " + message)
        except (ConnectionClosedOK, KeyError):
            print("A client just disconnected")

    (result,) = await _only(disconnects.disconnected, 2).results(echo)
    assert result.detail.startswith("close code: expected 1011, received 1000")
    assert "catches every exception" not in result.detail


async def test_a_tuple_with_exception_is_a_catch_all_3_3():
    """except (ConnectionClosed, Exception): is named as the catch-all it is."""

    async def echo(websocket):
        try:
            async for message in websocket:
                print("Received message from client: " + message)
                await websocket.send("Pong: " + message)
        except (ConnectionClosedOK, Exception):
            print("A client just disconnected")

    (result,) = await _only(disconnects.disconnected, 2).results(echo)
    assert "your except (ConnectionClosedOK, Exception): catches every" in result.detail


def test_causes_read_from_the_code():
    """The code readers find awaited calls by their last name, and nothing without source."""

    async def relay(websocket):
        await wsteach.exercises._core.asyncio.sleep(0)
        print("x")

        def inner():
            broadcast()  # noqa: F821 - never run: a call in a function inside

    assert _core.called(relay, awaited=True) == {"sleep"}
    assert _core.called(relay) == {"sleep", "print"}
    partial = functools.partial(relay)
    assert _core.called(partial) == set() == _core.node_kinds(partial)
    assert "Await" in _core.node_kinds(relay)


async def test_counter_cause_names_only_what_the_numbers_show_2_6():
    """2.6's diagnosis stays silent for a timeout, other text, or a count off by more."""
    diagnose = echo_server.numbered.diagnose
    assert diagnose(None, TimeoutError()) is None
    assert diagnose(None, Mismatch("2: b", "2: c")) is None
    assert diagnose(None, Mismatch("3: c", "2: c")) is None
    assert diagnose(None, Mismatch("2: b", "1: b"))[0] == "counter reset"


async def test_await_of_something_else_that_is_not_a_coroutine():
    """await on a plain call other than broadcast says what was awaited."""

    async def echo(websocket):
        async for message in websocket:
            await print(message)

    detail = await _failure(echo)
    assert detail.endswith(
        "likely cause: await before a call that isn't a coroutine: what you "
        "awaited is None, not a coroutine; call it without await"
    )


async def test_a_type_error_of_another_kind_names_no_await():
    """A TypeError that isn't about await gets no await advice."""

    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message + 1)

    detail = await _failure(echo)
    assert "likely cause" not in detail
