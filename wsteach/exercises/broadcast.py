"""Exercises for notebook 04, the broadcast server.

- :data:`everyone`: relay each message to every client, the sender included.
- :data:`who`: the video's room, plus a ``/who`` command that answers the
  sender alone with the number of people connected.

Each handler keeps its clients in a set defined in the notebook, next to it.
"""

from __future__ import annotations

from ..clients import crowd
from ._core import Exercise, Run
from ._scenarios import hears, leave

__all__ = ["everyone", "who"]


# 4.1 everyone


async def _everyone_hears(run: Run) -> None:
    async with crowd(run.url, "alice", "bob", "carol") as (alice, bob, carol):
        await alice.send("hi")
        for client in (alice, bob, carol):
            await hears(client, "Someone said: hi", run.timeout)


async def _in_order(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        for n in range(20):
            await bob.send(f"message {n}")
        for n in range(20):
            for client in (alice, bob):
                await hears(client, f"Someone said: message {n}", run.timeout)


async def _left_is_forgotten(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        await leave(bob)
        await alice.send("anyone there?")
        await hears(alice, "Someone said: anyone there?", run.timeout)


everyone = Exercise(
    "4.1",
    "Echo to everyone, the sender included",
    scenarios=[
        (
            'alice sends "hi": alice, bob and carol each get "Someone said: hi"',
            _everyone_hears,
        ),
        ("20 messages from bob reach alice and bob in order", _in_order),
        (
            "after bob leaves, alice's messages still come back to her",
            _left_is_forgotten,
        ),
    ],
    hints=[
        "start from the video's handler: add the client to the set, loop over the "
        "messages, remove the client in finally",
        "send to every connection in the set, without the `if conn != websocket` test",
    ],
    solution="""
members = set()


async def everyone(websocket):
    members.add(websocket)
    try:
        async for message in websocket:
            for conn in members:
                await conn.send("Someone said: " + message)
    finally:
        members.remove(websocket)
""",
)


# 4.2 who


def _people(count: int) -> str:
    return "1 person connected" if count == 1 else f"{count} people connected"


async def _who_counts(run: Run) -> None:
    async with crowd(run.url, "alice", "bob", "carol") as (_, _, carol):
        await carol.send("/who")
        await hears(carol, _people(3), run.timeout)


async def _who_not_relayed(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        await alice.send("/who")
        await hears(alice, _people(2), run.timeout)
        await alice.send("hi")
        # If "/who" had been relayed, bob would get it before "hi".
        await hears(bob, "Someone said: hi", run.timeout)
        await bob.send("hello")
        await hears(alice, "Someone said: hello", run.timeout)


async def _who_after_leave(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        await leave(bob)
        await alice.send("/who")
        await hears(alice, _people(1), run.timeout)


who = Exercise(
    "4.2",
    "Who is here?",
    scenarios=[
        ('with 3 people in the room, "/who" gets "3 people connected"', _who_counts),
        ('"/who" is answered to the sender only, never relayed', _who_not_relayed),
        ('after bob leaves, alice alone gets "1 person connected"', _who_after_leave),
    ],
    hints=[
        "the number of people connected is len(...) of the set; check "
        'if message == "/who": before relaying',
        'answer with await websocket.send(f"{n} people connected") — or '
        '"1 person connected" when n is 1 — and use continue to skip the relay',
    ],
    solution="""
room = set()


async def who(websocket):
    room.add(websocket)
    try:
        async for message in websocket:
            if message == "/who":
                n = len(room)
                people = "1 person" if n == 1 else f"{n} people"
                await websocket.send(people + " connected")
                continue
            for conn in room:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    finally:
        room.remove(websocket)
""",
)
