"""The machinery of every exercise: wsteach.exercises._core (check, hint, solution, causes)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import textwrap
from typing import Any

import IPython
import IPython.display
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
    echo_server,
    expect,
    is_stub,
)
from wsteach.exercises._core import FAILED, NOT_ATTEMPTED, PASSED, _has_loop


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
