"""Exercises 4.1 and 4.2 (notebook 04): wrong answers fail with what went wrong."""

from __future__ import annotations

from wsteach.exercises import broadcast as ex
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


connected: set = set()


async def video_room(websocket):
    """The video's broadcast handler: everyone but the sender."""
    connected.add(websocket)
    try:
        async for message in websocket:
            for conn in connected:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    finally:
        connected.remove(websocket)


relayed: set = set()


async def who_relayed(websocket):
    """Answers /who, but relays it to the others too."""
    relayed.add(websocket)
    try:
        async for message in websocket:
            if message == "/who":
                await websocket.send(f"{len(relayed)} people connected")
            for conn in relayed:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    finally:
        relayed.remove(websocket)


async def test_everyone_rejects_the_video_room():
    """The video's room leaves the sender out, so 4.1 says the sender got nothing."""
    results = await only(ex.everyone, 0).results(video_room)
    first = results[0]
    assert first.status == FAILED
    assert first.detail == (
        "alice received: expected 'Someone said: hi', received nothing (waited 2 s)"
    )


async def test_who_rejects_relaying_the_command():
    """Relaying "/who" passes the count but fails the scenario about relaying."""
    results = await ex.who.results(who_relayed)
    assert [r.status for r in results] == [PASSED, FAILED, FAILED]
    assert results[1].detail == (
        "bob received: expected 'Someone said: hi', received 'Someone said: /who'"
    )


async def test_who_counts_one_person_in_the_singular():
    """A room that says "1 people connected" fails with the expected wording."""

    async def plural(websocket):
        async for _message in websocket:
            await websocket.send("1 people connected")

    results = await only(ex.who, 2).results(plural)
    assert results[0].detail == (
        "alice received: expected '1 person connected', received '1 people connected'"
    )
