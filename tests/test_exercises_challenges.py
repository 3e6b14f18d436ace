"""Challenges 9.1 to 9.4 (notebook 09): wrong answers fail with what went wrong."""

from __future__ import annotations

import collections
import json
import time

from websockets.asyncio.server import broadcast
from websockets.exceptions import ConnectionClosed

import wsteach
from wsteach.exercises import challenges as ex
from wsteach.exercises._core import FAILED, PASSED, Exercise


def only(exercise: Exercise, index: int) -> Exercise:
    """The same exercise with one scenario, to keep wrong answers quick to check."""
    return Exercise(
        exercise.number,
        exercise.title,
        scenarios=[exercise.scenarios[index]],
        hints=exercise.hints,
        solution=exercise.code,
    )


async def test_nicknames_rejects_a_room_without_welcome():
    """The plain room never welcomes: 9.1 says which line was expected."""
    results = await only(ex.nicknames, 0).results(wsteach.Room().handler)
    assert results[0].status == FAILED
    assert results[0].detail == (
        "alice received: expected 'welcome, alice', received nothing (waited 1 s)"
    )


names: dict = {}


async def echoing_nicknames(websocket):
    """Nicknames, but the sender gets her own message back."""
    try:
        name = await websocket.recv()
        await websocket.send(f"welcome, {name}")
        names[websocket] = name
        async for message in websocket:
            broadcast(names, f"{name}: {message}")
    except ConnectionClosed:
        pass
    finally:
        names.pop(websocket, None)


async def test_nicknames_rejects_echo_to_the_sender():
    """Relaying to the sender too shows up as alice receiving her own line."""
    results = await ex.nicknames.results(echoing_nicknames)
    assert [r.status for r in results] == [PASSED, FAILED, PASSED]
    assert results[1].detail == (
        "alice received: expected 'carol: hi alice', received 'alice: hello'"
    )


async def test_announce_rejects_nicknames_without_announcements():
    """9.1's answer passes nothing of 9.2: nobody is told who joined."""
    results = await only(ex.announce, 0).results(echoing_nicknames)
    assert results[0].detail == (
        "alice received: expected 'bob joined', received nothing (waited 1 s)"
    )


chatters: set = set()


async def crashing_json(websocket):
    """Relays chats, but bad JSON crashes the handler."""
    chatters.add(websocket)
    try:
        async for message in websocket:
            event = json.loads(message)
            broadcast(chatters - {websocket}, json.dumps(event))
    finally:
        chatters.remove(websocket)


async def test_json_chat_reports_a_crash_on_bad_json():
    """A handler that lets json.loads raise is told so, with the exception."""
    results = await ex.json_chat.results(crashing_json)
    assert results[0].status == PASSED
    assert results[1].status == FAILED
    assert results[1].detail.startswith(
        "your handler raised JSONDecodeError: Expecting value: line 1 column 1"
    )


shared = collections.deque()
talkers: set = set()


async def global_limit(websocket):
    """A rate limit shared by everyone, instead of one per client."""
    talkers.add(websocket)
    try:
        async for message in websocket:
            now = time.monotonic()
            while shared and now - shared[0] >= 1:
                shared.popleft()
            if len(shared) >= 5:
                await websocket.send("slow down: at most 5 messages per second")
                continue
            shared.append(now)
            broadcast(talkers - {websocket}, "Someone said: " + message)
    finally:
        talkers.remove(websocket)


async def test_rate_limit_rejects_a_limit_shared_by_everyone():
    """carol is refused for alice's flood: the limit must be per client."""
    results = await only(ex.rate_limit, 1).results(global_limit)
    assert results[0].status == FAILED
    assert results[0].detail == (
        "bob received: expected 'Someone said: my turn', received nothing (waited 1 s)"
    )
