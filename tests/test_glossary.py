"""What docs/learners/glossary.md and notebooks 01-03 say about websockets and asyncio holds."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import websockets
import websockets.asyncio.server
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import OK_CLOSE_CODES

GLOSSARY = Path(__file__).resolve().parent.parent / "docs" / "learners" / "glossary.md"


def test_glossary_entries_are_sorted_and_cover_the_lessons():
    """The glossary defines the words the notebooks link it for, in order."""
    entries = re.findall(r"^## (.+)$", GLOSSARY.read_text("utf-8"), re.MULTILINE)
    words = [entry.strip("`").lower() for entry in entries]
    assert words == sorted(words)
    for word in ["backpressure", "broadcast", "close code", "coroutine"]:
        assert word in words
    assert "connection handler" in words and "event loop" in words


async def test_send_waits_only_past_write_limit():
    """write_limit is 32 KiB by default, and send resumes at a quarter of it (8 KiB)."""

    async def silent(websocket):
        await websocket.wait_closed()

    async with serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as websocket:
            low, high = websocket.transport.get_write_buffer_limits()
    assert (low, high) == (2**13, 2**15)


def test_ok_close_codes():
    """ConnectionClosedOK means 1000, 1001 or 1005, received and sent."""
    assert {1000, 1001, 1005} == OK_CLOSE_CODES


async def test_server_stop_gives_1001_and_connection_closed_ok():
    """A server that stops closes with 1001; recv raises ConnectionClosedOK."""

    async def wait(websocket):
        await websocket.wait_closed()

    server = await serve(wait, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    websocket = await connect(f"ws://127.0.0.1:{port}")
    server.close()
    try:
        await websocket.recv()
    except ConnectionClosed as exc:
        closed = exc
    await server.wait_closed()
    assert isinstance(closed, ConnectionClosedOK)
    assert websocket.close_code == 1001


async def test_vanished_client_is_1006_and_an_error():
    """A client gone without a close frame: ConnectionClosedError, no code (1006)."""
    caught: list[ConnectionClosed] = []
    ended = asyncio.Event()

    async def echo(websocket):
        try:
            async for message in websocket:
                await websocket.send(message)
        except ConnectionClosed as exc:
            caught.append(exc)
        ended.set()

    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        websocket = await connect(f"ws://127.0.0.1:{port}")
        await websocket.send("hi")
        await websocket.recv()
        websocket.transport.abort()
        await asyncio.wait_for(ended.wait(), 5)
    (error,) = caught
    assert type(error).__name__ == "ConnectionClosedError"
    assert error.rcvd is None and error.sent is None
    assert str(error) == "no close frame received or sent"


async def test_except_exception_does_not_catch_cancellation():
    """CancelledError is a BaseException: except Exception lets it through."""
    assert not issubclass(asyncio.CancelledError, Exception)
    caught = []

    async def worker():
        try:
            await asyncio.sleep(10)
        except Exception:
            caught.append("caught")

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled() and caught == []


def test_new_implementation_is_the_default():
    """Since 14.0, websockets.serve is the new implementation, which calls handler(websocket)."""
    assert websockets.serve is websockets.asyncio.server.serve
