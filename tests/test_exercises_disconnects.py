"""Exercises of notebook 03 (wsteach.exercises.disconnects): typical wrong answers and their causes."""

from __future__ import annotations

from websockets.exceptions import ConnectionClosedOK

from wsteach.exercises import (
    Exercise,
    Result,
    disconnects,
)
from wsteach.exercises._core import FAILED


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
