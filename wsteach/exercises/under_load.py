"""Exercises for notebook 05, the broadcast server under load.

- :data:`careful`: the video's loop, fixed by hand: copy the set, skip the
  clients that are gone.
- :data:`relay`: the room with :func:`websockets.asyncio.server.broadcast`.
- :data:`predict_stall` and :data:`predict_keepalive`: predict-the-output
  questions, asked before the cells that answer them.

Their scenarios make the video's loop fail on purpose, every time: a client
that stops reading while 10 MB are relayed to it (see :mod:`._scenarios`).
"""

from __future__ import annotations

import asyncio

from ..clients import connect, crowd
from ..timeouts import TIMEOUT_FACTOR
from ._core import Exercise, Mismatch, Question, Run
from ._scenarios import (
    LOAD_MESSAGES,
    hears,
    hears_after_load,
    load,
    settled,
    stalled_client,
    still_connected,
    until,
)

__all__ = ["careful", "predict_keepalive", "predict_stall", "relay"]

# How long a crash that closes alice may take to show, on a busy machine.
_STALL_WAIT = 0.3 * TIMEOUT_FACTOR
_DEAD_RECIPIENT = (
    "after sloth died (the send to sloth raised ConnectionClosed in alice's "
    "handler and ended it: catch it around each send)"
)


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
    server = run.server
    assert server is not None
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        sloth = await stalled_client(run.url)
        try:
            for message in load():
                await alice.send(message)
            await settled(bob)
            async with connect(run.url, name="carol") as carol:
                # carol is open on the server: her handler, called right after
                # the handshake, has joined the room, while alice's waits.
                await until(lambda: len(server.connections) == 4, run.timeout)
                sloth.resume()
                await alice.send("still there?")
                await hears_after_load(carol, "Someone said: still there?", run.timeout)
                still_connected(alice)
        finally:
            await sloth.close()


async def _death_during_stall(run: Run) -> None:
    server = run.server
    assert server is not None
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        sloth = await stalled_client(run.url)
        for message in load():
            await alice.send(message)
        await settled(bob)
        sloth.kill()
        # The server saw sloth die; alice's handler, waiting on sloth, goes on
        # (or crashes, closing alice: that comes soon, if it comes).
        await until(lambda: len(server.connections) == 2, run.timeout)
        await until(lambda: alice.closed, _STALL_WAIT)
        still_connected(alice, _DEAD_RECIPIENT)
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
    "5.2",
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
        "loop over a copy of the set, so that clients joining or leaving meanwhile don't change what you iterate; and catch the error of each send on its own",
        "for conn in ___(gathering): with a try: around each await conn.send(...) whose except ___: skips to the next client; keep the try / except / finally of the video's handler around async for",
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
    "5.3",
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
        "broadcast(connections, message) sends to all of them at once, without await, and skips the ones that are closed",
        'broadcast(___, "Someone said: " + message), no await; the others are the set minus a set that holds only ___; keep the try / except ConnectionClosed / finally of the video\'s handler',
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


predict_stall = Question(
    "5.1",
    "How much of alice's load reaches bob while sloth doesn't read?",
    answer="b",
    choices="abc",
    explanation=(
        "alice's handler relays each message to bob, then to sloth; once sloth's "
        "buffers are full, await conn.send(...) waits for sloth, and the loop "
        "never gets to bob's copy of the next message: bob gets the first few, "
        "then nothing until sloth reads again"
    ),
    wrong={
        "a": (
            "bob reads everything, but he only gets what alice's handler sends "
            "him, and that handler is stuck in await conn.send(...) for sloth"
        ),
        "c": (
            "the first sends to sloth return at once, while its buffers still "
            "have room: bob gets the messages relayed before they fill up"
        ),
    },
)


predict_keepalive = Question(
    "5.4",
    "Is sloth still connected, a second later?",
    answer="yes",
    explanation=(
        "keepalive's ping goes into sloth's write buffer, behind the megabytes "
        "waiting there, and ping() waits for that buffer to drain before the "
        "ping_timeout starts: it never starts, and sloth stays connected"
    ),
    wrong={
        "no": (
            "that is what keepalive would do if its ping got through; here the "
            "ping waits behind 10 MB that sloth never reads, and its timeout "
            "never starts"
        ),
    },
)
