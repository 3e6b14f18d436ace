"""Exercises for notebook 04, the broadcast server, in the video's order.

The student builds the video's broadcast server one step at a time, each
step checked right after it is written:

- :data:`connected_set`: ``connected = set()``, the room every handler shares
  (a step: ``await ex.connected_set.check()`` reads the notebook's variable).
- :data:`join`: ``connected.add(websocket)`` when a client connects.
- :data:`relay`: ``"Someone said: " + message`` to everyone but the sender.
- :data:`echo`: the whole handler: ``except ConnectionClosed`` and
  ``finally: connected.remove(websocket)``.
- :data:`predict_who_hears`: a predict-the-output question.
- :data:`script`: ``server_echo_broadcast.py``, run as a real process.

Then two variations: :data:`everyone` (the sender included) and :data:`who`
(a ``/who`` command). The step handlers use the set named ``connected`` of
the notebook; their checks find it through the handler and empty it first.
"""

from __future__ import annotations

import ast
import asyncio
import re
from typing import Any

from websockets.asyncio.client import connect as ws_connect

from ..clients import crowd
from ..internals import transport
from ..timeouts import TIMEOUT_FACTOR
from ._core import (
    Exercise,
    Mismatch,
    NotAttempted,
    Question,
    Run,
    Step,
    definition,
)
from ._scenarios import (
    ScriptExercise,
    ScriptRun,
    hears,
    leave,
    next_message,
    script_stops_on_ctrl_c,
    until,
)

__all__ = [
    "connected_set",
    "echo",
    "everyone",
    "join",
    "predict_who_hears",
    "relay",
    "script",
    "who",
]


# How long a handler that returns early takes to close its client, at most.
_QUIET = 0.2 * TIMEOUT_FACTOR


# 4.1 connected = set()


async def _connected_is_a_set(names: dict[str, Any]) -> None:
    if names.get("connected", ...) is ...:
        raise NotAttempted("write connected = ..., then run this cell again")
    value = names["connected"]
    if isinstance(value, dict) and not value:
        raise Mismatch("set()", "{}", "{} is an empty dict, not a set")
    if not isinstance(value, set):
        raise Mismatch("a set", type(value).__name__, "connected: the room is a set")


connected_set = Step(
    "4.1",
    "A set for the room",
    checks=[("connected is a set", _connected_is_a_set)],
    hints=[
        "the room is a collection of connections, each in it once, in no "
        "particular order: which Python type is that?",
        "an empty one is written with the type's name and two parentheses; {} is "
        "something else",
    ],
    solution="connected = set()",
)


# Steps 4.2 to 4.4: the handler, growing


def _room_of(run: Run) -> set[Any]:
    """The notebook's ``connected`` set the handler uses, emptied for the check."""
    room = getattr(run.answer, "__globals__", {}).get("connected")
    if not isinstance(room, set):
        raise Mismatch(
            "a set named connected", repr(room), "next to your handler (step 4.1)"
        )
    room.clear()
    return room


async def _three_join(run: Run) -> None:
    room = _room_of(run)
    async with crowd(run.url, "alice", "bob", "carol"):
        if not await until(
            lambda: len(room) == 3, run.timeout
        ):  # pragma: no branch - CPython 3.11 traces no jump from an if ending an async with
            raise Mismatch(
                3,
                len(room),
                "connections in connected while alice, bob and carol are "
                "connected (add each one when its handler starts)",
            )


async def _stay_connected(run: Run) -> None:
    _room_of(run)
    async with crowd(run.url, "alice") as (alice,):
        await alice.send("Hello server")
        # A handler that returns after one message closes alice: give it the
        # time a busy machine needs, and not a moment more when it does.
        await until(lambda: alice.closed, _QUIET)
        if alice.closed:  # pragma: no branch - CPython 3.11 traces no jump from an if ending an async with
            raise Mismatch(
                "alice still connected",
                f"closed with {alice.close_code}",
                "after one message (read them all: async for message in websocket)",
            )


async def _others_hear(run: Run) -> None:
    _room_of(run)
    async with crowd(run.url, "alice", "bob", "carol") as (alice, bob, carol):
        await alice.send("Hello everyone")
        await hears(bob, "Someone said: Hello everyone", run.timeout)
        await hears(carol, "Someone said: Hello everyone", run.timeout)


async def _sender_skipped(run: Run) -> None:
    _room_of(run)
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        await alice.send("hi")
        await hears(bob, "Someone said: hi", run.timeout)
        await bob.send("hello")
        # Had alice got her own "hi" back, it would come before bob's "hello".
        received = await next_message(alice, run.timeout)
        if (
            received != "Someone said: hello"
        ):  # pragma: no branch - CPython 3.11 traces no jump from an if ending an async with
            raise Mismatch(
                "Someone said: hello",
                received,
                "alice, the sender of hi, received",
                cause=(
                    "likely cause: your loop sends to every connection in "
                    "connected, the sender's too: skip the one where "
                    "conn == websocket"
                )
                if received == "Someone said: hi"
                else "",
                short="sent to the sender",
            )


async def _leaving_is_removed(run: Run) -> None:
    room = _room_of(run)
    async with crowd(run.url, "alice", "bob", "carol") as (alice, bob, carol):
        await until(lambda: len(room) == 3, run.timeout)
        await bob.close()
        if not await until(lambda: len(room) == 2, run.timeout):
            raise Mismatch(
                2,
                len(room),
                "connections in connected after bob left (remove it in finally)",
            )
        await alice.send("Did bob leave?")
        await hears(carol, "Someone said: Did bob leave?", run.timeout)


async def _vanishing_is_removed(run: Run) -> None:
    room = _room_of(run)
    async with crowd(run.url, "alice", "carol") as (alice, carol):
        await until(lambda: len(room) == 2, run.timeout)
        # No closing handshake, like a client whose terminal was closed.
        transport(carol.connection).abort()
        if not await until(lambda: len(room) == 1, run.timeout):
            raise Mismatch(
                1,
                len(room),
                "connections in connected after carol vanished "
                "(finally runs however the handler ends)",
            )
        # A crash while relaying it fails the scenario: the check waits for
        # the handlers once the clients have left.
        await alice.send("still here")


async def _crash_is_removed(run: Run) -> None:
    room = _room_of(run)
    async with crowd(run.url, "alice", "carol") as (alice, carol):
        await until(lambda: len(room) == 2, run.timeout)
        # "Someone said: " + b"..." raises TypeError in carol's handler: a bug,
        # neither a close nor a vanish. Only finally still runs after it.
        await carol.send(b"\x00binary")
        await carol.wait_closed(run.timeout)
        await until(lambda: bool(run.errors), run.timeout)
        removed = await until(lambda: len(room) == 1, run.timeout)
        # The crash is this scenario's own doing: it is no failure.
        run.errors[:] = [e for e in run.errors if not isinstance(e, TypeError)]
        if not removed:
            raise Mismatch(
                1,
                len(room),
                "connections in connected after carol's handler crashed",
                cause=_removal_cause(run.answer),
                short="removal not in finally",
            )
        await alice.send("still here")


def _removal_cause(handler: Any) -> str:
    """Why the connection stayed in the set: where the answer removes it, if it does."""
    tree = definition(handler)
    nodes = list(ast.walk(tree)) if tree is not None else []
    in_finally = {
        id(node)
        for block in nodes
        if isinstance(block, ast.Try)
        for statement in block.finalbody
        for node in ast.walk(statement)
    }
    removals = [
        node
        for node in nodes
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"remove", "discard"}
    ]
    if removals and not any(id(node) in in_finally for node in removals):
        return (
            "likely cause: your removal comes after try/except, so it runs only "
            "when the handler ends the ways your except expects; an error it "
            "doesn't catch (here a TypeError) skips it: move it into finally:"
        )
    return (
        "likely cause: nothing removes a connection whose handler crashed: "
        "remove it in a finally: block, which runs however the handler ends"
    )


def _room_cause(answer: Any, failure: BaseException | None) -> tuple[str, str] | None:
    """Causes of 4.2 to 4.4 that the handler's code shows."""
    tree = definition(answer)
    if tree is None:
        return None
    nodes = list(ast.walk(tree))
    if any(
        isinstance(node, ast.Name)
        and node.id == "connected"
        and isinstance(node.ctx, ast.Store)
        for node in nodes
    ):
        return "local set", (
            "likely cause: connected = ... inside your handler makes a new, local "
            "set at each call, one per client, and the notebook's connected stays "
            "empty; create the set once, outside the handler (step 4.1)"
        )
    sender = tree.args.args[0].arg if tree.args.args else ""
    for loop in nodes:
        if not (isinstance(loop, ast.For) and isinstance(loop.target, ast.Name)):
            continue
        for node in ast.walk(loop):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "send"
                and isinstance(node.value, ast.Name)
                and node.value.id == sender != loop.target.id
            ):
                return "sent to the sender", (
                    f"likely cause: inside the loop over the room, {sender}.send(...) "
                    f"sends to the sender again, once per connection; send to the "
                    f"loop's variable: {loop.target.id}.send(...)"
                )
    return None


join = Exercise(
    "4.2",
    "Add each client to the room",
    diagnose=_room_cause,
    scenarios=[
        ("alice, bob and carol connect: connected holds 3 connections", _three_join),
        ("alice sends a message and stays connected", _stay_connected),
    ],
    hints=[
        "the handler starts once per client, with that client's connection: put it in the shared set right then, before reading messages",
        "connected.___(websocket) first (a set's method for one more element); then the async for loop of 02, which keeps the connection open",
    ],
    solution="""
connected = set()


async def join(websocket):
    connected.add(websocket)
    async for message in websocket:
        print("Received message from client: " + message)
""",
)


relay = Exercise(
    "4.3",
    "Relay to the others",
    diagnose=_room_cause,
    scenarios=[
        (
            'alice says "Hello everyone": bob and carol get "Someone said: Hello everyone"',
            _others_hear,
        ),
        ("alice, the sender, doesn't get her own message back", _sender_skipped),
    ],
    hints=[
        "for each message, go through every connection in the room, and send to each one that isn't the sender's",
        'inside async for: for ___ in connected:, an if that leaves out the sender, then await ___.send("Someone said: " + ___)',
    ],
    solution="""
connected = set()


async def relay(websocket):
    connected.add(websocket)
    async for message in websocket:
        for conn in connected:
            if conn != websocket:
                await conn.send("Someone said: " + message)
""",
)


echo = Exercise(
    "4.4",
    "Leave the room however you leave",
    diagnose=_room_cause,
    scenarios=[
        (
            'alice says "Hello everyone": bob and carol get "Someone said: Hello everyone"',
            _others_hear,
        ),
        (
            "bob leaves: connected drops to 2, carol still hears alice",
            _leaving_is_removed,
        ),
        (
            "carol vanishes without closing: no crash, she leaves connected",
            _vanishing_is_removed,
        ),
        (
            "a bug crashes carol's handler (she sends bytes): she leaves connected",
            _crash_is_removed,
        ),
    ],
    hints=[
        "the handler can end three ways: the client closes, the client vanishes (ConnectionClosedError), or a bug; the connection must leave the set in every case",
        "try: / the async for of 4.3 / except ___: with the video's print / finally: with the line that takes websocket out of connected",
    ],
    solution="""
connected = set()


async def echo(websocket):
    connected.add(websocket)
    try:
        async for message in websocket:
            for conn in connected:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    except ConnectionClosed:
        print("A client just disconnected")
    finally:
        connected.remove(websocket)
""",
)


predict_who_hears = Question(
    "4.6",
    "Who receives bob's message?",
    answer=frozenset({"alice"}),
    explanation=(
        "carol's handler ended when her terminal closed, and its finally took "
        "her connection out of connected; the loop skips bob, the sender: "
        "only alice is left"
    ),
    wrong={
        frozenset({"alice", "bob"}): (
            "bob sent it: the loop skips conn == websocket, the sender's own connection"
        ),
        frozenset({"alice", "carol"}): (
            "carol is gone: finally removed her connection from connected when "
            "her handler ended"
        ),
        frozenset({"alice", "bob", "carol"}): (
            "the loop skips the sender, and carol's connection left the set "
            "when her handler ended"
        ),
    },
)


# 4.5 the script


_BANNER = re.compile(r"Server listening on [Pp]ort (\d+)")


async def _script_listens(run: ScriptRun) -> None:
    await run.printed_like(_BANNER, f"Server listening on Port {run.port}")
    async with ws_connect(run.url, open_timeout=run.timeout):
        pass


async def _script_relays(run: ScriptRun) -> None:
    async with (
        ws_connect(run.url, open_timeout=run.timeout) as alice,
        ws_connect(run.url, open_timeout=run.timeout) as bob,
    ):
        await run.printed("A client just connected")
        await alice.send("Hello everyone")
        got = await asyncio.wait_for(bob.recv(), run.timeout)
        if got != "Someone said: Hello everyone":
            raise Mismatch("Someone said: Hello everyone", got, "bob received")
        await run.printed("Received message from client: Hello everyone")
        await bob.send("hi")
        got = await asyncio.wait_for(alice.recv(), run.timeout)
        if (
            got != "Someone said: hi"
        ):  # pragma: no branch - CPython 3.11 traces no jump from an if ending an async with
            raise Mismatch(
                "Someone said: hi", got, "alice, the sender of Hello everyone, received"
            )


async def _script_vanish(run: ScriptRun) -> None:
    websocket = await ws_connect(run.url, open_timeout=run.timeout)
    transport(websocket).abort()
    await run.printed("A client just disconnected")


script = ScriptExercise(
    "4.5",
    "server_echo_broadcast.py",
    scenarios=[
        ("it prints its banner and listens on the port", _script_listens),
        (
            "alice's message reaches bob as \"Someone said: …\", not alice; the video's prints",
            _script_relays,
        ),
        ('a client that vanishes: "A client just disconnected"', _script_vanish),
        ("Ctrl+C stops it", script_stops_on_ctrl_c),
    ],
    hints=[
        "two parts you have written already: the script of 02 (the port, serve, "
        "serve_forever, asyncio.run) and the handler of step 4.4",
        "put the video's prints in the handler: when a client connects, for each "
        "message received, and in the except ConnectionClosed",
    ],
    solution="""
%%writefile server_echo_broadcast.py
import asyncio

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

PORT = 7890

connected = set()


async def echo(websocket):
    print("A client just connected")
    connected.add(websocket)
    try:
        async for message in websocket:
            print("Received message from client: " + message)
            for conn in connected:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    except ConnectionClosed:
        print("A client just disconnected")
    finally:
        connected.remove(websocket)


async def main():
    async with serve(echo, "localhost", PORT) as server:
        print("Server listening on Port " + str(PORT))
        await server.serve_forever()


asyncio.run(main())
""",
)


# 4.7 everyone


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
        await leave(bob, run)
        await alice.send("anyone there?")
        await hears(alice, "Someone said: anyone there?", run.timeout)


everyone = Exercise(
    "4.7",
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
        "start from the video's handler: add the client to the set, loop over the messages, remove the client in finally",
        "a set of its own (members); in the loop over it, send to ___ connection: nothing is left out, the sender included",
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


# 4.8 who


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
        await leave(bob, run)
        await alice.send("/who")
        await hears(alice, _people(1), run.timeout)


who = Exercise(
    "4.8",
    "Who is here?",
    scenarios=[
        ('with 3 people in the room, "/who" gets "3 people connected"', _who_counts),
        ('"/who" is answered to the sender only, never relayed', _who_not_relayed),
        ('after bob leaves, alice alone gets "1 person connected"', _who_after_leave),
    ],
    hints=[
        "a command is a message the handler answers itself instead of relaying: test for it before the relay; the count is the size of the set",
        'if message == ___: build "1 person connected" or "___ people connected", send it to the sender only, then continue, which skips the relay',
    ],
    solution="""
present = set()


async def who(websocket):
    present.add(websocket)
    try:
        async for message in websocket:
            if message == "/who":
                n = len(present)
                people = "1 person" if n == 1 else f"{n} people"
                await websocket.send(people + " connected")
                continue
            for conn in present:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    finally:
        present.remove(websocket)
""",
)
