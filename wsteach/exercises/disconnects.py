"""Exercises for notebook 03, disconnects and errors, in the video's order.

- 3.1 ``bare_except``: the video's first fix, a bare ``except:`` that prints.
- 3.2 ``predict_3_2``: the close code a hidden bug gives, predicted.
- 3.3 ``disconnected``: ``except ConnectionClosed:``, which hides no bug.
- 3.4 ``predict_3_4``: the close code of a server that stops, predicted.
- 3.5 ``careful``: a ``recv()`` loop that ends quietly.
- 3.6 ``text_only``: refuse binary messages with close code 1003.

The handler exercises also watch the server's log: a handler that lets an
exception escape ("connection handler failed") fails the scenario, unless the
scenario is about exactly that crash.
"""

from __future__ import annotations

import ast
import asyncio
import re
from typing import Any

from ..clients import connect
from ..internals import transport
from ._core import Exercise, Mismatch, Question, Run, definition, expect

__all__ = [
    "bare_except",
    "careful",
    "disconnected",
    "predict_3_2",
    "predict_3_4",
    "text_only",
]


async def _printed(run: Run, text: str) -> None:
    """Wait until the handler printed ``text``; fail with what it printed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run.timeout
    while text not in run.printed.getvalue():
        if loop.time() > deadline:
            printed = run.printed.getvalue().strip().replace("\n", " | ")
            expect(printed or "nothing", f"a line {text!r}", "your handler printed")
        await asyncio.sleep(0.01)


async def _vanish(run: Run) -> None:
    """A client says hello, then drops the TCP connection without a goodbye."""
    client = await connect(run.url, name="checker")
    try:
        await client.send("Hello server")
        expect(await client.recv(run.timeout), "Pong: Hello server", "reply")
    finally:
        # Like a client process that is killed: no closing handshake.
        transport(client.connection).abort()
    await client.wait_closed(run.timeout)


def _catch_all(handler: Any) -> str:
    """The ``except`` clause of ``handler`` that catches every error, as written; or ''."""
    for node in ast.walk(definition(handler) or ast.Module(body=[], type_ignores=[])):
        if isinstance(node, ast.ExceptHandler):
            caught = ast.unparse(node.type) if node.type else ""
            if not caught or {"Exception", "BaseException"} & set(
                re.findall(r"\w+", caught)
            ):
                return f"except {caught}:" if caught else "except:"
    return ""


async def _echo_and_print(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("Hello server")
        expect(await client.recv(run.timeout), "Pong: Hello server", "reply")
    await _printed(run, "Received message from client: Hello server")


async def _vanish_something_wrong(run: Run) -> None:
    await _vanish(run)
    await _printed(run, "something went wrong")


bare_except = Exercise(
    "3.1",
    "Silence the noise with a bare except",
    prints=True,
    scenarios=[
        ('replies "Pong: " + message and prints what it received', _echo_and_print),
        (
            'a client that vanishes: prints "something went wrong", nothing in the log',
            _vanish_something_wrong,
        ),
    ],
    hints=[
        "the noise is an exception that escapes the handler: catch it inside the handler, around the loop",
        "try: on a line of its own, the whole async for loop indented under it, then an except clause that names no exception, with the video's print in it",
    ],
    solution="""
async def echo(websocket):
    print("A client just connected")
    try:
        async for message in websocket:
            print("Received message from client: " + message)
            await websocket.send("Pong: " + message)
    except:  # noqa: E722 - the video's first attempt, shown to be a trap
        print("something went wrong")
""",
)


async def _vanish_disconnected(run: Run) -> None:
    await _vanish(run)
    await _printed(run, "A client just disconnected")


async def _bug_reaches_log(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        # "Received message from client: " + b"..." raises TypeError in the
        # handler: a bug, not a disconnect. It must reach the log, and the
        # client must get 1011.
        await client.send(b"\x00binary")
        await client.wait_closed(run.timeout)
        if (
            client.close_code != 1011
        ):  # pragma: no branch - CPython 3.11 traces no jump from an if ending an async with
            clause = _catch_all(run.answer)
            raise Mismatch(
                1011,
                client.close_code,
                "close code",
                cause=(
                    f"likely cause: your {clause} catches every exception, the "
                    "TypeError of bytes + str too: the bug is swallowed, and the "
                    "handler returns as if the client had left; catch "
                    "ConnectionClosed only"
                )
                if clause
                else "",
                short="bug swallowed" if clause else "",
            )
    for _ in range(int(run.timeout * 100)):
        if run.errors:
            break
        await asyncio.sleep(0.01)
    raised = [type(error).__name__ for error in run.errors]
    expect(raised, ["TypeError"], "errors in the server log")
    run.errors.clear()


disconnected = Exercise(
    "3.3",
    "Catch ConnectionClosed, and only that",
    prints=True,
    scenarios=[
        ('replies "Pong: " + message and prints what it received', _echo_and_print),
        (
            'a client that vanishes: prints "A client just disconnected", '
            "nothing in the log",
            _vanish_disconnected,
        ),
        (
            "a bug (bytes + str) still reaches the log, with close 1011",
            _bug_reaches_log,
        ),
    ],
    hints=[
        "name the one exception that means 'the client is gone' in the except clause; every other exception, a bug, must escape",
        "except ___: with the name of the class websockets raises when a connection closes (imported at the top of this notebook), then the print",
    ],
    solution="""
async def echo(websocket):
    print("A client just connected")
    try:
        async for message in websocket:
            print("Received message from client: " + message)
            await websocket.send("Pong: " + message)
    except ConnectionClosed:
        print("A client just disconnected")
""",
)


predict_3_2 = Question(
    "3.2",
    "carol sends bytes to the bare-except handler: which close code does she get?",
    answer=1000,
    explanation=(
        "1000, a normal closure: the TypeError never leaves the handler, the bare "
        "except prints and the handler returns, and a handler that returns closes "
        "the connection normally; nothing tells carol or the log about the bug"
    ),
    wrong={
        1011: "1011 is what she would get if the TypeError reached websockets; "
        "the bare except stops it inside the handler",
        1006: "1006 means the connection dropped without a close frame; here the "
        "server closes it properly",
        1003: "1003 is a code a handler sends on purpose (exercise 3.6); this one "
        "doesn't",
    },
)

predict_3_4 = Question(
    "3.4",
    "The server stops while erin is connected: which close code does erin see?",
    answer=1001,
    explanation=(
        "1001, going away: a server that shuts down closes every connection with "
        "1001, and the client receives it in the closing handshake"
    ),
    wrong={
        1000: "1000 is a normal closure, as when a client leaves or a handler "
        "returns; a server that stops says something more precise",
        1006: "1006 means no close frame came; a server that stops sends one",
        1011: "1011 is for a handler that crashed; nothing crashed here",
    },
)


async def _replies(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("Hello server")
        expect(await client.recv(run.timeout), "Pong: Hello server", "reply")
        await client.send("again")
        expect(await client.recv(run.timeout), "Pong: again", "second reply")


async def _closes_normally(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("bye")
        expect(await client.recv(run.timeout), "Pong: bye", "reply")
    # Leaving the block closes with code 1000: the handler must end quietly.


async def _vanishes(run: Run) -> None:
    await _vanish(run)


async def _bug_not_hidden(run: Run) -> None:
    # "Pong: " + b"..." raises TypeError in the handler, as above.
    await _bug_reaches_log(run)


careful = Exercise(
    "3.5",
    "A recv() loop that survives disconnects",
    scenarios=[
        ('replies "Pong: " + message', _replies),
        ("a client that closes normally: nothing in the log", _closes_normally),
        ("a client that vanishes: nothing in the log", _vanishes),
        ("a bug (bytes + str) still reaches the log, with close 1011", _bug_not_hidden),
    ],
    hints=[
        "recv() raises when the client is gone: catch that one exception around the loop, and let every other exception escape",
        "try: / the while True: loop with recv and send, indented / except ___: with nothing left to do in it (pass)",
    ],
    solution="""
async def careful(websocket):
    try:
        while True:
            message = await websocket.recv()
            await websocket.send("Pong: " + message)
    except ConnectionClosed:
        pass  # The client left: nothing to do, and no error to report.
""",
)


async def _text_works(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("Hello server")
        expect(await client.recv(run.timeout), "Pong: Hello server", "reply")


async def _binary_closes(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("first")
        expect(await client.recv(run.timeout), "Pong: first", "reply")
        await client.send(b"\x89PNG")
        await client.wait_closed(run.timeout)
        expect(client.close_code, 1003, "close code")
        expect(client.close_reason, "text only, please", "close reason")


text_only = Exercise(
    "3.6",
    "Refuse binary messages with close code 1003",
    scenarios=[
        ('a text message gets "Pong: " + message', _text_works),
        ('a binary message: close 1003 "text only, please"', _binary_closes),
    ],
    hints=[
        "a binary message arrives as bytes, a text message as str: test which one you got before you reply",
        'if isinstance(message, ___): close with await websocket.close(CloseCode.___, "___"), then return: nothing more to do for this client',
    ],
    solution="""
async def text_only(websocket):
    async for message in websocket:
        if isinstance(message, bytes):
            await websocket.close(CloseCode.UNSUPPORTED_DATA, "text only, please")
            return
        await websocket.send("Pong: " + message)
""",
)
