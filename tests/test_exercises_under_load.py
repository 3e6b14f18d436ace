"""Exercises 5.1 and 5.2 (notebook 05): the video's loop and a half fix fail as they should."""

from __future__ import annotations

from websockets.asyncio.server import broadcast
from websockets.exceptions import ConnectionClosed

from wsteach.exercises import under_load as ex
from wsteach.exercises._core import FAILED, PASSED
from wsteach.exercises._scenarios import LOAD_MESSAGES

video: set = set()


async def video_loop(websocket):
    """The video's loop, with its except ConnectionClosed."""
    video.add(websocket)
    try:
        async for message in websocket:
            for conn in video:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    except ConnectionClosed:
        pass
    finally:
        video.remove(websocket)


def solution_of(exercise, name):
    """The exercise's own solution code, run: the answer 5.2 is checked against."""
    namespace = {"ConnectionClosed": ConnectionClosed}
    exec(exercise.code, namespace)
    return namespace[name]


# 5.1's answer: a copy of the set, skipping the dead; it still waits.
careful = solution_of(ex.careful, "careful")


async def test_careful_rejects_the_video_loop():
    """A join mid-loop crashes it; a dead recipient disconnects the sender."""
    results = await ex.careful.results(video_loop)
    assert [r.status for r in results] == [PASSED, FAILED, FAILED]
    assert results[1].detail.startswith(
        "your handler raised RuntimeError: Set changed size during iteration"
    )
    assert results[2].detail.startswith(
        "after sloth died (the send to sloth raised ConnectionClosed in alice's "
        "handler and ended it: catch it around each send): "
        "expected 'alice still connected', "
        "received 'alice disconnected by the server (close 1000)'"
    )


async def test_relay_rejects_the_careful_loop():
    """Fixing bugs 2 and 3 by hand isn't enough for 5.2: the stall remains."""
    results = await ex.relay.results(careful)
    assert [r.status for r in results] == [PASSED, FAILED, PASSED]
    detail = results[1].detail
    assert detail.startswith(
        f"bob, while sloth stalled: expected '{LOAD_MESSAGES} messages', received '"
    )
    assert (
        detail
        != f"bob, while sloth stalled: expected '{LOAD_MESSAGES} messages', received '{LOAD_MESSAGES} messages'"
    )


lobby: set = set()


async def awaited_broadcast(websocket):
    """5.3 with await before broadcast(...), which returns None."""
    lobby.add(websocket)
    try:
        async for message in websocket:
            await broadcast(lobby - {websocket}, "Someone said: " + message)
    except ConnectionClosed:
        pass
    finally:
        lobby.remove(websocket)


async def test_relay_names_an_awaited_broadcast():
    """await broadcast(...) is named: a plain function, to call without await."""
    results = await ex.relay.results(awaited_broadcast)
    assert [r.status for r in results] == [FAILED] * 3
    assert results[0].detail.startswith(
        "your handler raised TypeError: object NoneType can't be used in 'await' "
        "expression ("
    )
    assert all(
        r.detail.endswith(
            "; likely cause: await before a call that isn't a coroutine: "
            "broadcast(...) is a plain function, it returns None; call it without "
            "await"
        )
        for r in results
    )
