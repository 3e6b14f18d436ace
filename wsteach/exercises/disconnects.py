"""Exercises for notebook 03, disconnects and errors.

Both are handler exercises. Besides the replies, ``check`` watches the server's
log: a handler that lets an exception escape ("connection handler failed")
fails the scenario, unless the scenario is about exactly that crash.
"""

from __future__ import annotations

import asyncio

from ..clients import connect
from ._core import Exercise, Run, expect

__all__ = ["careful", "text_only"]


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
    client = await connect(run.url, name="checker")
    try:
        await client.send("bye")
        expect(await client.recv(run.timeout), "Pong: bye", "reply")
    finally:
        # Drop the TCP connection without a closing handshake, like a laptop
        # whose lid closes: the handler must end quietly all the same.
        client.connection.transport.abort()
    await client.wait_closed(run.timeout)


async def _bug_not_hidden(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        # "Pong: " + b"..." raises TypeError in the handler: a bug, not a
        # disconnect. It must reach the log, and the client must get 1011.
        await client.send(b"\x00binary")
        await client.wait_closed(run.timeout)
        expect(client.close_code, 1011, "close code")
    for _ in range(int(run.timeout * 100)):
        if run.errors:
            break
        await asyncio.sleep(0.01)
    raised = [type(error).__name__ for error in run.errors]
    expect(raised, ["TypeError"], "errors in the server log")
    run.errors.clear()


careful = Exercise(
    "3.1",
    "Survive disconnects without hiding bugs",
    scenarios=[
        ('replies "Pong: " + message', _replies),
        ("a client that closes normally: nothing in the log", _closes_normally),
        ("a client that vanishes: nothing in the log", _vanishes),
        ("a bug (bytes + str) still reaches the log, with close 1011", _bug_not_hidden),
    ],
    hints=[
        "wrap the loop in try: ... and catch only the exception that means "
        "'the client is gone': websockets.exceptions.ConnectionClosed",
        "try: while True: message = await websocket.recv(); "
        'await websocket.send("Pong: " + message) — then '
        "except ConnectionClosed: return (never a bare except:)",
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
    "3.2",
    "Refuse binary messages with close code 1003",
    scenarios=[
        ('a text message gets "Pong: " + message', _text_works),
        ('a binary message: close 1003 "text only, please"', _binary_closes),
    ],
    hints=[
        "a binary message arrives as bytes, a text message as str: "
        "test isinstance(message, bytes)",
        'await websocket.close(CloseCode.UNSUPPORTED_DATA, "text only, please"), '
        "then return: the handler is done with this client",
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
