"""Exercises for notebook 02, the echo server."""

from __future__ import annotations

from ..clients import connect
from ._core import Exercise, Run, expect

__all__ = ["pong"]


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
