"""Exercises for notebook 05, the broadcast server under load.

- :data:`careful`: the video's loop, fixed by hand: copy the set, skip the
  clients that are gone.
- :data:`relay`: the room with :func:`websockets.asyncio.server.broadcast`.

Their scenarios make the video's loop fail on purpose, every time: a client
that stops reading while 10 MB are relayed to it (see :mod:`._scenarios`).
"""

from __future__ import annotations

import asyncio

from ..clients import TIMEOUT_FACTOR, connect, crowd
from ._core import Exercise, Mismatch, Run
from ._scenarios import (
    LOAD_MESSAGES,
    hears,
    hears_after_load,
    load,
    settled,
    stalled_client,
    still_connected,
)

__all__ = ["careful", "relay"]

_STALL_WAIT = 0.3 * TIMEOUT_FACTOR  # Time for the buffers to fill up.


# Scenarios shared by the two exercises.


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
                await hears_after_load(carol, "Someone said: still there?", run.timeout)
                still_connected(alice)
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
        still_connected(alice)
        await alice.send("still there?")
        await hears_after_load(bob, "Someone said: still there?", run.timeout)
        still_connected(alice)


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
