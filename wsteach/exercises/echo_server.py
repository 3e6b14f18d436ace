"""Exercises for notebook 02, the echo server.

All three are handler exercises: your answer is a connection handler, and
``check`` serves it on a free port and connects clients to it.
"""

from __future__ import annotations

from ..clients import connect
from ._core import Exercise, Run, expect

__all__ = ["numbered", "pong", "shout"]


async def _one_message(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("Hello server")
        expect(await client.recv(run.timeout), "Pong: Hello server", "reply")


async def _in_order(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        for n in range(100):
            await client.send(f"message {n}")
        for n in range(100):
            expect(await client.recv(run.timeout), f"Pong: message {n}", f"reply {n}")


async def _two_clients(run: Run) -> None:
    async with (
        connect(run.url, name="alice") as alice,
        connect(run.url, name="bob") as bob,
    ):
        await alice.send("from alice")
        await bob.send("from bob")
        expect(await bob.recv(run.timeout), "Pong: from bob", "bob's reply")
        expect(await alice.recv(run.timeout), "Pong: from alice", "alice's reply")


pong = Exercise(
    "2.1",
    "A Pong server",
    scenarios=[
        ('"Hello server" gets "Pong: Hello server"', _one_message),
        ("100 messages get 100 replies, in order", _in_order),
        ("two clients each get their own replies", _two_clients),
    ],
    hints=[
        "loop over the incoming messages with: async for message in websocket:",
        'inside the loop, reply with: await websocket.send("Pong: " + message)',
    ],
    solution="""
async def pong(websocket):
    async for message in websocket:
        await websocket.send("Pong: " + message)
""",
)


async def _shout_one(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("hello there")
        expect(await client.recv(run.timeout), "HELLO THERE", "reply")


async def _shout_mixed(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        for text in ["Hello Server", "ça va?", "123 go"]:
            await client.send(text)
            expect(await client.recv(run.timeout), text.upper(), "reply")


shout = Exercise(
    "2.2",
    "A shouting server",
    scenarios=[
        ('"hello there" gets "HELLO THERE"', _shout_one),
        ("mixed case, accents and digits", _shout_mixed),
    ],
    hints=[
        "same loop as pong; only the reply changes",
        "a str has a method that returns it in capitals: message.upper()",
    ],
    solution="""
async def shout(websocket):
    async for message in websocket:
        await websocket.send(message.upper())
""",
)


async def _numbers(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        for text in ["a", "b", "c"]:
            await client.send(text)
        for number, text in enumerate(["a", "b", "c"], start=1):
            expect(await client.recv(run.timeout), f"{number}: {text}", "reply")


async def _each_client_counts(run: Run) -> None:
    async with connect(run.url, name="alice") as alice:
        await alice.send("hi")
        await alice.send("again")
        expect(await alice.recv(run.timeout), "1: hi", "alice's first reply")
        expect(await alice.recv(run.timeout), "2: again", "alice's second reply")
        async with connect(run.url, name="bob") as bob:
            await bob.send("hello")
            expect(await bob.recv(run.timeout), "1: hello", "bob's first reply")
            await alice.send("still here")
            expect(await alice.recv(run.timeout), "3: still here", "alice's third")


numbered = Exercise(
    "2.3",
    "Number the replies",
    scenarios=[
        ('"a", "b", "c" get "1: a", "2: b", "3: c"', _numbers),
        ("each client counts from 1 on its own", _each_client_counts),
    ],
    hints=[
        "websockets calls your handler once per client: a variable you set "
        "before the loop belongs to that client alone",
        "count = 0 before the loop; in the loop count += 1, then "
        'await websocket.send(f"{count}: {message}")',
    ],
    solution="""
async def numbered(websocket):
    count = 0
    async for message in websocket:
        count += 1
        await websocket.send(f"{count}: {message}")
""",
)
