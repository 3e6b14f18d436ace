"""Exercises and tools for notebook 05, the broadcast server under load.

Tools to make the video's broadcast loop fail on purpose, every time:

- :func:`stalled_client` connects a client that stops reading, like a phone
  on a train: what the server sends it piles up until the server's
  ``await conn.send(...)`` has to wait.
- :func:`load` is enough data to fill the buffers between the server and
  such a client (a few megabytes).
- :func:`settled` waits until a client has stopped receiving for a moment:
  after a load, that is when the server is as far as it will get.
- :func:`report_crashes` prints, in one line each, the handler crashes that
  websockets logs as "connection handler failed" while its block runs.

Exercises:

- :data:`careful`: the video's loop, fixed by hand: copy the set, skip the
  clients that are gone.
- :data:`relay`: the room with :func:`websockets.asyncio.server.broadcast`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.protocol import State

from ..clients import TIMEOUT_FACTOR, Client, connect, crowd
from ..trace import NAME_HEADER
from ._core import Exercise, Mismatch, Run
from .broadcast import hears, next_message

__all__ = [
    "LOAD_MESSAGES",
    "StalledClient",
    "careful",
    "load",
    "relay",
    "report_crashes",
    "settled",
    "stalled_client",
]

LOAD_MESSAGES = 100
"""How many messages :func:`load` returns."""

_LOAD_SIZE = 100_000  # Characters per message: LOAD_MESSAGES of them is 10 MB.
_STALL_WAIT = 0.3 * TIMEOUT_FACTOR  # Time for the buffers to fill up.


async def settled(client: Client, quiet: float = 0.2, timeout: float = 5.0) -> None:
    """Wait until ``client`` has received nothing new for ``quiet`` seconds.

    After sending :func:`load` to a room, this is the moment the server is as
    far as it gets: every message was delivered, or a send is waiting for a
    stalled client. On a busy machine it waits longer, rather than guess.
    Gives up after ``timeout`` seconds (times ``WSTEACH_TIMEOUT_FACTOR``).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * TIMEOUT_FACTOR
    count = -1
    # Polling: the client's background reader fills client.received.
    while count != len(client.received) and loop.time() < deadline:
        count = len(client.received)
        await asyncio.sleep(quiet * TIMEOUT_FACTOR)


def load(count: int = LOAD_MESSAGES) -> list[str]:
    """Return ``count`` messages of 100 000 characters, ``"0001 xxx…"`` and so on.

    The default, 100 messages or 10 MB, is more than the buffers between a
    server and a client that stopped reading can hold on this kind of machine
    (about 4 MB), so relaying it to such a client makes ``send`` wait.
    """
    return [f"{n:04d} " + "x" * (_LOAD_SIZE - 5) for n in range(1, count + 1)]


def is_load(message: Any) -> bool:
    """Whether ``message`` is (a relay of) one of the :func:`load` messages."""
    return isinstance(message, str) and len(message) >= _LOAD_SIZE


class StalledClient:
    """A client that doesn't read what the server sends, until :meth:`resume`.

    Attributes:
        name: Shown in the server's trace.
        connection: The websockets :class:`ClientConnection` underneath.
        count: How many messages it has read since :meth:`resume`.
    """

    def __init__(self, connection: ClientConnection, name: str) -> None:
        self.connection = connection
        self.name = name
        self.count = 0
        self._reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "reading" if self._reader else "stalled"
        return f"<StalledClient {self.name!r} · {state}>"

    def resume(self) -> None:
        """Start reading again, in the background; messages are counted, not kept."""
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for _ in self.connection:
                self.count += 1

    def kill(self) -> None:
        """Vanish without a closing handshake, like a laptop whose battery died."""
        self.connection.transport.abort()

    async def close(self) -> None:
        """Read what is left, then close the connection normally."""
        self.resume()
        await self.connection.close()
        assert self._reader is not None
        await self._reader


async def stalled_client(url: str, name: str = "sloth") -> StalledClient:
    """Connect a :class:`StalledClient` named ``name`` to ``url``.

    It keeps at most one message waiting and turns compression off, so that
    what the server sends fills the network buffers instead of being squeezed.
    """
    connection = await ws_connect(
        url,
        max_queue=1,
        compression=None,
        additional_headers={NAME_HEADER: name},
    )
    return StalledClient(connection, name)


class _CrashLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        connection = getattr(record, "websocket", None)
        request = getattr(connection, "request", None)
        name = request.headers.get(NAME_HEADER) if request is not None else None
        line = record.getMessage()
        if name:
            line += f" (the handler serving {name})"
        if error is not None:
            line += f": {type(error).__name__}: {error}"
        self.lines.append(line)


@contextlib.contextmanager
def report_crashes() -> Iterator[list[str]]:
    """Print the crashes websockets logs while the block runs, one line each.

    When a handler raises, websockets logs "connection handler failed" with a
    long traceback and closes that client's connection with code 1011. Inside
    this block, each crash becomes one line instead, printed when the block
    ends, such as ``connection handler failed (the handler serving alice):
    RuntimeError: Set changed size during iteration``; "no handler crashed"
    when there was none. The lines are also available in the yielded list.
    """
    collector = _CrashLines()
    logger = logging.getLogger("websockets.server")
    logger.addHandler(collector)
    try:
        yield collector.lines
    finally:
        logger.removeHandler(collector)
        for line in collector.lines:
            print(line)
        if not collector.lines:
            print("no handler crashed")


# Scenarios shared by the two exercises.


async def _hears_after_load(client: Client, expected: str, timeout: float) -> None:
    """Wait for ``expected``, skipping the relays of :func:`load` on the way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await next_message(client, max(deadline - loop.time(), 0.01))
        if not is_load(message):
            break
    if message != expected:
        raise Mismatch(expected, message, f"{client.name} received")


def _still_connected(client: Client) -> None:
    if client.closed or client.connection.state is not State.OPEN:
        raise Mismatch(
            f"{client.name} still connected",
            f"{client.name} disconnected by the server "
            f"(close {client.connection.protocol.close_rcvd.code})"
            if client.connection.protocol.close_rcvd
            else f"{client.name} disconnected",
        )


async def _room(run: Run) -> None:
    async with crowd(run.url, "alice", "bob", "carol") as (alice, bob, carol):
        await alice.send("hi")
        await hears(bob, "Someone said: hi", run.timeout)
        await hears(carol, "Someone said: hi", run.timeout)
        await bob.send("hello")
        # Had alice got her own "hi" back, it would come before bob's "hello".
        await hears(alice, "Someone said: hello", run.timeout)


async def _join_during_stall(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        sloth = await stalled_client(run.url)
        try:
            for message in load():
                await alice.send(message)
            await settled(bob)
            async with connect(run.url, name="carol") as carol:
                await asyncio.sleep(_STALL_WAIT)
                sloth.resume()
                await alice.send("still there?")
                await _hears_after_load(
                    carol, "Someone said: still there?", run.timeout
                )
                _still_connected(alice)
        finally:
            await sloth.close()


async def _death_during_stall(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        sloth = await stalled_client(run.url)
        for message in load():
            await alice.send(message)
        await settled(bob)
        sloth.kill()
        await asyncio.sleep(_STALL_WAIT)
        _still_connected(alice)
        await alice.send("still there?")
        await _hears_after_load(bob, "Someone said: still there?", run.timeout)
        _still_connected(alice)


async def _stall_holds_nobody(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        sloth = await stalled_client(run.url)
        try:
            messages = load()
            for message in messages:
                await alice.send(message)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + run.timeout
            # Polling: bob's background reader fills bob.received.
            while len(bob.received) < len(messages) and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            got = len(bob.received)
            if got != len(messages):
                raise Mismatch(
                    f"{len(messages)} messages",
                    f"{got} messages",
                    "bob, while sloth stalled",
                )
        finally:
            await sloth.close()


careful = Exercise(
    "5.1",
    "Copy the set, skip the clients that are gone",
    scenarios=[
        ("alice's message reaches bob and carol, not alice", _room),
        (
            "carol joins while alice's handler waits on a stalled client: no crash",
            _join_during_stall,
        ),
        (
            "a stalled client dies while alice's handler waits on it: alice stays connected",
            _death_during_stall,
        ),
    ],
    hints=[
        "loop over a copy, list(gathering), so that clients joining or leaving "
        "meanwhile don't change what you iterate; catch the error of each send "
        "on its own",
        "inside the loop: try: await conn.send(...) / except ConnectionClosed: pass "
        "(or continue: that client is gone, the others still get the message); as in 03, also "
        "catch ConnectionClosed around async for, for when the client itself vanishes",
    ],
    solution="""
gathering = set()


async def careful(websocket):
    gathering.add(websocket)
    try:
        async for message in websocket:
            for conn in list(gathering):
                if conn != websocket:
                    try:
                        await conn.send("Someone said: " + message)
                    except ConnectionClosed:
                        continue  # That client is gone: skip it.
    except ConnectionClosed:
        pass
    finally:
        gathering.remove(websocket)
""",
)


relay = Exercise(
    "5.2",
    "Relay with broadcast",
    scenarios=[
        ("alice's message reaches bob and carol, not alice", _room),
        (
            f"a stalled client doesn't hold up the others: bob gets all {LOAD_MESSAGES} messages",
            _stall_holds_nobody,
        ),
        (
            "a stalled client dies while alice sends: alice stays connected",
            _death_during_stall,
        ),
    ],
    hints=[
        "broadcast(connections, message) sends to all of them at once, without "
        "await, and skips the ones that are closed",
        'build the others with lobby - {websocket}, then broadcast(others, "Someone said: " + message); '
        "keep the try / except ConnectionClosed / finally of the video's handler",
    ],
    solution="""
lobby = set()


async def relay(websocket):
    lobby.add(websocket)
    try:
        async for message in websocket:
            broadcast(lobby - {websocket}, "Someone said: " + message)
    except ConnectionClosed:
        pass
    finally:
        lobby.remove(websocket)
""",
)
