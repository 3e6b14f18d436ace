"""wsteach.handlers: echo and Room, with real clients on a real server."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from rawws import Raw, request
from websockets.asyncio.server import ServerConnection

import wsteach
from wsteach.handlers import Room, announce, classroom_echo, echo, how_closed
from wsteach.internals import transport
from wsteach.limits import NO_LIMITS, Limits
from wsteach.names import client_name


async def test_echo_sends_text_and_binary_back() -> None:
    """echo returns each message unchanged, text as text, bytes as bytes."""
    async with (
        wsteach.start(echo, port=0, trace=False) as running,
        wsteach.connect(running.url) as client,
    ):
        await client.send("Hello")
        await client.send(b"\x00")
        assert [await client.recv(), await client.recv()] == ["Hello", b"\x00"]


async def test_room_defaults() -> None:
    """Room() keeps working with no arguments and classroom limits."""
    room = Room()
    assert room.prefix == "Someone said: "
    assert room.limits == Limits()
    assert repr(room) == "<Room: 0 connected>"


async def test_room_relays_to_others_only() -> None:
    """A message reaches every other client, prefixed, and not its sender."""
    room = Room(limits=NO_LIMITS)
    async with (
        wsteach.start(room.handler, port=0, trace=False) as running,
        wsteach.crowd(running.url, "alice", "bob", "carol") as (alice, bob, carol),
    ):
        await alice.send("hi")
        assert await bob.recv() == "Someone said: hi"
        assert await carol.recv() == "Someone said: hi"
        await bob.send("yo")
        assert await alice.recv() == "Someone said: yo"
        assert len(room.connected) == 3
    await asyncio.sleep(0.05)
    assert room.connected == {}


async def test_room_closes_binary_with_1003() -> None:
    """Binary closes its sender with 1003 and a reason; the room goes on."""
    room = Room()
    async with (
        wsteach.start(room.handler, port=0, trace=False) as running,
        wsteach.crowd(running.url, "alice", "bob") as (alice, bob),
    ):
        await alice.send(b"\x01")
        await alice.wait_closed()
        assert alice.close_code == 1003
        assert alice.close_reason == "this room relays text messages only"
        async with wsteach.connect(running.url) as carol:
            await carol.send("still here")
            assert await bob.recv() == "Someone said: still here"


async def test_room_rate_limit_closes_with_1008() -> None:
    """A flood past the burst closes the flooder with 1008 and a reason."""
    room = Room(limits=Limits(rate=1, burst=3))
    async with (
        wsteach.start(room.handler, port=0, trace=False) as running,
        wsteach.crowd(running.url, "alice", "bob") as (alice, bob),
    ):
        for n in range(10):
            await alice.send(str(n))
        await alice.wait_closed()
        assert alice.close_code == 1008
        assert "too many messages" in alice.close_reason
        assert [await bob.recv() for _ in range(3)] == [
            "Someone said: 0",
            "Someone said: 1",
            "Someone said: 2",
        ]


async def test_slow_reader_that_never_takes_the_close_is_dropped() -> None:
    """A slow reader that doesn't read its close frame either is dropped in time."""
    room = Room(limits=Limits(max_queued=1000, close_timeout=0.2, rate=None))
    async with (
        wsteach.start(room.handler, port=0, trace=False) as running,
        wsteach.connect(running.url, name="alice") as alice,
    ):
        slow = await Raw.connect(running.port, rcvbuf=4096)
        slow.send(request())
        assert (await slow.response())[0] == 101
        (slow_side,) = [
            c for c in room.connected if c.request.headers.get("X-Wsteach-Name") is None
        ]
        sock = slow_side.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        for _ in range(10):
            await alice.send("x" * 20000)
        # The close frame waits behind what is queued, which it never reads.
        await asyncio.wait_for(slow_side.wait_closed(), 2)
        assert slow_side not in room.connected
        assert slow_side.protocol.close_sent.code == 1008
        assert slow_side.protocol.close_sent.reason.startswith("too slow: ")
        slow.reset()


class CrashingRoom(Room):
    """A room with a bug: the message "boom" crashes its handler."""

    def relay(self, sender: ServerConnection, message: str) -> None:
        if message.endswith("boom"):
            raise RuntimeError("a bug in the room")
        super().relay(sender, message)


async def test_crashing_handler_is_logged_once_and_closed_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash logs one traceback, closes that client with 1011, and the room goes on."""
    room = CrashingRoom()
    caplog.set_level(logging.ERROR)
    async with (
        wsteach.start(room.handler, port=0) as running,
        wsteach.crowd(running.url, "alice", "bob", "carol") as (alice, bob, carol),
    ):
        await alice.send("boom")
        await alice.wait_closed()
        assert alice.close_code == 1011
        await bob.send("still chatting")
        assert await carol.recv() == "Someone said: still chatting"
        assert len(room.connected) == 2
    failures = [
        r for r in caplog.records if r.getMessage() == "connection handler failed"
    ]
    assert len(failures) == 1
    assert failures[0].exc_info[0] is RuntimeError
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


class BrokenCloseRoom(Room):
    """A room whose slow-reader close has a bug."""

    async def _close_slow(self, client: ServerConnection, reason: str) -> None:
        await super()._close_slow(client, reason)
        raise RuntimeError("a bug while closing a slow reader")


async def test_closing_a_slow_reader_is_awaited_by_its_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The task closing a slow reader is awaited: its error is logged, not lost."""
    room = BrokenCloseRoom(limits=Limits(max_queued=1000, close_timeout=0.2, rate=None))
    caplog.set_level(logging.ERROR)
    async with (
        wsteach.start(room.handler, port=0, trace=False) as running,
        wsteach.connect(running.url, name="alice") as alice,
    ):
        slow = await Raw.connect(running.port, rcvbuf=4096)
        slow.send(request())
        assert (await slow.response())[0] == 101
        (slow_side,) = [c for c in room.connected if client_name(c.request) is None]
        transport(slow_side).get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        for _ in range(10):
            await alice.send("x" * 20000)
        await asyncio.wait_for(slow_side.wait_closed(), 2)
        async with asyncio.timeout(2):
            while len(running.server.handler_tasks) > 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        slow.reset()
    failures = [
        r for r in caplog.records if r.getMessage() == "connection handler failed"
    ]
    assert [f.exc_info[1].args[0] for f in failures] == [
        "a bug while closing a slow reader"
    ]
    assert room._closing == {}


async def test_how_closed_while_open_says_closing() -> None:
    """how_closed on a connection that isn't closed yet says "closing"."""

    async def handler(websocket: ServerConnection) -> None:
        await websocket.send(how_closed(websocket))

    async with (
        wsteach.start(handler, port=0, trace=False) as running,
        wsteach.connect(running.url) as client,
    ):
        assert await client.recv() == "closing"


def test_classroom_echo_is_echo_with_the_limits() -> None:
    """classroom_echo is echo itself, given the limits when the rate is on."""
    limits = Limits(rate=5)
    handler = classroom_echo(limits)
    assert handler.func is echo and handler.keywords == {"limits": limits}
    assert classroom_echo(NO_LIMITS) is echo


async def test_announce_reports_a_crashed_handler_as_a_crash(capsys) -> None:
    """announce says the handler crashed, with its exception; websockets still closes 1011."""

    async def breaks(websocket: ServerConnection) -> None:
        await websocket.recv()
        raise ValueError("boom")

    async with wsteach.start(announce(breaks), port=0, trace=False) as running:
        async with wsteach.connect(running.url, name="alice") as client:
            await client.send("x")
            await client.wait_closed()
        assert client.close_code == 1011
    connected, disconnected = capsys.readouterr().out.splitlines()
    assert connected.startswith("+ alice (") and connected.endswith("· 1 online")
    assert disconnected.startswith("- alice (")
    assert disconnected.endswith(
        " disconnected (the handler crashed: ValueError: boom) · 0 online"
    )
