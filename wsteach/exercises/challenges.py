"""Challenges for notebook 09: a chat room with more features.

- :data:`nicknames`: the first message is the nickname; the server answers
  ``"welcome, alice"`` and relays later messages as ``"alice: hello"``.
- :data:`announce`: nicknames, plus ``"alice joined"`` and ``"alice left"``
  sent to the others.
- :data:`json_chat`: messages are JSON objects ``{"type": "chat", "text":
  ...}``; malformed ones get a JSON error back.
- :data:`rate_limit`: at most 5 messages per second per client; more are
  refused with ``"slow down: at most 5 messages per second"``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..clients import Client, connect, crowd
from ..timeouts import TIMEOUT_FACTOR
from ._core import Exercise, Mismatch, Run
from ._scenarios import caught_up, hears, leave, next_message

__all__ = ["announce", "json_chat", "nicknames", "rate_limit"]


async def _named(url: str, *names: str, timeout: float) -> list[Client]:
    """Connect one client per name; each sends its name and waits for its welcome."""
    clients = []
    for name in names:
        client = await connect(url, name=name)
        clients.append(client)
        await client.send(name)
        await hears(client, f"welcome, {name}", timeout)
    return clients


async def _close(clients: list[Client]) -> None:
    for client in clients:
        await client.close()


# 9.1 nicknames


async def _welcome(run: Run) -> None:
    async with connect(run.url, name="alice") as alice:
        await alice.send("alice")
        await hears(alice, "welcome, alice", run.timeout)


async def _relayed_with_name(run: Run) -> None:
    clients = await _named(run.url, "alice", "bob", "carol", timeout=run.timeout)
    alice, bob, carol = clients
    try:
        await alice.send("hello")
        await hears(bob, "alice: hello", run.timeout)
        await hears(carol, "alice: hello", run.timeout)
        await carol.send("hi alice")
        # Had alice got her own "hello" back, it would come first.
        await hears(alice, "carol: hi alice", run.timeout)
        await hears(bob, "carol: hi alice", run.timeout)
    finally:
        await _close(clients)


async def _after_leaving(run: Run) -> None:
    clients = await _named(run.url, "alice", "bob", "carol", timeout=run.timeout)
    alice, bob, carol = clients
    try:
        await leave(bob, run)
        await alice.send("is bob gone?")
        await hears(carol, "alice: is bob gone?", run.timeout)
    finally:
        await _close(clients)


nicknames = Exercise(
    "9.1",
    "Nicknames",
    scenarios=[
        ('alice sends "alice" first: she gets "welcome, alice"', _welcome),
        (
            'alice\'s "hello" reaches bob and carol as "alice: hello", not alice',
            _relayed_with_name,
        ),
        ("after bob leaves, alice and carol still talk", _after_leaving),
    ],
    hints=[
        "the first message is the name: read it once, before the loop, and welcome the client; only then does it join the room",
        'keep the room in a dict {websocket: name}; relay to the others with broadcast(___, f"{___}: {___}")',
    ],
    solution="""
names = {}


async def nicknames(websocket):
    try:
        name = await websocket.recv()
        await websocket.send(f"welcome, {name}")
        names[websocket] = name
        async for message in websocket:
            others = [conn for conn in names if conn != websocket]
            broadcast(others, f"{name}: {message}")
    except ConnectionClosed:
        pass
    finally:
        names.pop(websocket, None)
""",
)


# 9.2 announce


async def _joined(run: Run) -> None:
    clients = await _named(run.url, "alice", timeout=run.timeout)
    try:
        clients += await _named(run.url, "bob", timeout=run.timeout)
        await hears(clients[0], "bob joined", run.timeout)
    finally:
        await _close(clients)


async def _talk_then_leave(run: Run) -> None:
    clients = await _named(run.url, "alice", "bob", timeout=run.timeout)
    alice, bob = clients
    try:
        await hears(alice, "bob joined", run.timeout)
        await bob.send("hi")
        await hears(alice, "bob: hi", run.timeout)
        await bob.close()
        await hears(alice, "bob left", run.timeout)
    finally:
        await _close(clients)


async def _nameless_is_silent(run: Run) -> None:
    clients = await _named(run.url, "alice", "bob", timeout=run.timeout)
    alice, bob = clients
    try:
        await hears(alice, "bob joined", run.timeout)
        async with connect(run.url, name="lurker"):
            pass  # Leaves without a nickname: nobody joined, nobody left.
        await caught_up(run)  # Its handler's finally ran: it said nothing.
        await bob.send("anyone new?")
        await hears(alice, "bob: anyone new?", run.timeout)
    finally:
        await _close(clients)


announce = Exercise(
    "9.2",
    "Join and leave announcements",
    scenarios=[
        ('alice is in the room; bob joins: alice gets "bob joined"', _joined),
        (
            'bob says "hi", then leaves: alice gets "bob: hi", then "bob left"',
            _talk_then_leave,
        ),
        (
            "a client that leaves before giving a nickname is announced to nobody",
            _nameless_is_silent,
        ),
    ],
    hints=[
        "start from your nicknames handler: announce the join right after the welcome, to the people already in the room",
        'in finally, announce the leave only if the client got a nickname: people.pop(websocket, None) returns the name, or None for a client without one; broadcast(___, f"{___} left")',
    ],
    solution="""
people = {}


async def announce(websocket):
    name = None
    try:
        name = await websocket.recv()
        await websocket.send(f"welcome, {name}")
        broadcast(people, f"{name} joined")
        people[websocket] = name
        async for message in websocket:
            others = [conn for conn in people if conn != websocket]
            broadcast(others, f"{name}: {message}")
    except ConnectionClosed:
        pass
    finally:
        if people.pop(websocket, None) is not None:
            broadcast(people, f"{name} left")
""",
)


# 9.3 json_chat


async def _hears_json(client: Client, expected: dict[str, Any], timeout: float) -> None:
    message = await next_message(client, timeout)
    try:
        received = json.loads(message) if isinstance(message, str | bytes) else message
    except ValueError:
        received = message
    if received != expected:
        raise Mismatch(expected, received, f"{client.name} received")


async def _json_relayed(run: Run) -> None:
    async with crowd(run.url, "alice", "bob", "carol") as (alice, bob, carol):
        await alice.send(json.dumps({"type": "chat", "text": "hello"}))
        await _hears_json(bob, {"type": "chat", "text": "hello"}, run.timeout)
        await _hears_json(carol, {"type": "chat", "text": "hello"}, run.timeout)
        await bob.send(json.dumps({"text": "hi", "type": "chat"}))
        await _hears_json(alice, {"type": "chat", "text": "hi"}, run.timeout)


async def _json_errors(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        cases = [
            ("hello", "invalid JSON"),
            ('{"type": "chat", "text": ', "invalid JSON"),
            ("[1, 2, 3]", "unsupported message type"),
            ('{"type": "dance"}', "unsupported message type"),
            ('{"type": "chat", "text": 42}', "text must be a string"),
            ('{"type": "chat"}', "text must be a string"),
        ]
        for sent, error in cases:
            await alice.send(sent)
            await _hears_json(alice, {"type": "error", "error": error}, run.timeout)
        # None of them was relayed: bob's first message is this one.
        await alice.send(json.dumps({"type": "chat", "text": "sorry"}))
        await _hears_json(bob, {"type": "chat", "text": "sorry"}, run.timeout)


async def _json_keeps_going(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        await alice.send("not json")
        await _hears_json(
            alice, {"type": "error", "error": "invalid JSON"}, run.timeout
        )
        await alice.send(json.dumps({"type": "chat", "text": "still here"}))
        await _hears_json(bob, {"type": "chat", "text": "still here"}, run.timeout)


json_chat = Exercise(
    "9.3",
    "A JSON message protocol",
    scenarios=[
        (
            '{"type": "chat", "text": "hello"} from alice reaches bob and carol as the same JSON',
            _json_relayed,
        ),
        ("bad messages get an error back, and are not relayed", _json_errors),
        ("after an error, the connection keeps working", _json_keeps_going),
    ],
    hints=[
        "json.loads(message) raises ValueError for invalid JSON: catch it, answer with an error, and go on with the next message",
        'json.loads(___) inside try:, with except ValueError: for the error; then three tests, each with its error: is event a dict, is its "type" "chat", is its "text" a str; answer with json.dumps({"type": "error", "error": ___}), relay json.dumps({"type": "chat", "text": ___})',
    ],
    solution="""
chatters = set()


async def json_chat(websocket):
    chatters.add(websocket)
    try:
        async for message in websocket:
            try:
                event = json.loads(message)
            except ValueError:
                error = "invalid JSON"
            else:
                if not isinstance(event, dict) or event.get("type") != "chat":
                    error = "unsupported message type"
                elif not isinstance(event.get("text"), str):
                    error = "text must be a string"
                else:
                    chat = {"type": "chat", "text": event["text"]}
                    broadcast(chatters - {websocket}, json.dumps(chat))
                    continue
            await websocket.send(json.dumps({"type": "error", "error": error}))
    except ConnectionClosed:
        pass
    finally:
        chatters.remove(websocket)
""",
)


# 9.4 rate_limit

SLOW_DOWN = "slow down: at most 5 messages per second"


async def _five_pass(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        for n in range(1, 6):
            await alice.send(f"message {n}")
        for n in range(1, 6):
            await hears(bob, f"Someone said: message {n}", run.timeout)


async def _eight_refused(run: Run) -> None:
    async with crowd(run.url, "alice", "bob", "carol") as (alice, bob, carol):
        for n in range(1, 9):
            await alice.send(f"message {n}")
        for _ in range(3):
            await hears(alice, SLOW_DOWN, run.timeout)
        for n in range(1, 6):
            await hears(bob, f"Someone said: message {n}", run.timeout)
        # The limit is alice's own: carol may still talk, and bob's next
        # message is hers, not alice's 6th.
        await carol.send("my turn")
        await hears(bob, "Someone said: my turn", run.timeout)


async def _a_second_later(run: Run) -> None:
    async with crowd(run.url, "alice", "bob") as (alice, bob):
        for n in range(1, 7):
            await alice.send(f"message {n}")
        await hears(alice, SLOW_DOWN, run.timeout)
        await asyncio.sleep(1.05 * TIMEOUT_FACTOR)
        await alice.send("again")
        for n in range(1, 6):
            await hears(bob, f"Someone said: message {n}", run.timeout)
        await hears(bob, "Someone said: again", run.timeout)


rate_limit = Exercise(
    "9.4",
    "A rate limit per client",
    scenarios=[
        ("5 messages in a row all reach bob", _five_pass),
        (
            f'messages 6 to 8 within a second get "{SLOW_DOWN}" and are dropped; carol is not limited',
            _eight_refused,
        ),
        ("a second later, alice may talk again", _a_second_later),
    ],
    hints=[
        "keep, for each client, the times of its recent messages: a collections.deque() created inside the handler is per client",
        "on each message: now = time.___(); popleft the times older than 1 second; if ___ remain, send the slow-down line and continue; else append now, then relay",
    ],
    solution="""
talkers = set()


async def rate_limit(websocket):
    talkers.add(websocket)
    recent = collections.deque()
    try:
        async for message in websocket:
            now = time.monotonic()
            while recent and now - recent[0] >= 1:
                recent.popleft()
            if len(recent) >= 5:
                await websocket.send("slow down: at most 5 messages per second")
                continue
            recent.append(now)
            broadcast(talkers - {websocket}, "Someone said: " + message)
    except ConnectionClosed:
        pass
    finally:
        talkers.remove(websocket)
""",
)
