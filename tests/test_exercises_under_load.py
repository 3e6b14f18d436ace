"""Exercises 5.1 and 5.2 (notebook 05) and the tools that stall a room on purpose."""

from __future__ import annotations

import asyncio
import logging

from websockets.exceptions import ConnectionClosed

import wsteach
from wsteach.exercises import under_load as ex
from wsteach.exercises._core import FAILED, PASSED
from wsteach.exercises.under_load import (
    LOAD_MESSAGES,
    is_load,
    load,
    report_crashes,
    stalled_client,
)

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
    assert results[2].detail == (
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


def test_load_is_ten_megabytes_of_numbered_messages():
    """load() numbers its messages and is_load recognises them and their relays."""
    messages = load(3)
    assert [m[:5] for m in messages] == ["0001 ", "0002 ", "0003 "]
    assert all(len(m) == 100_000 for m in messages)
    assert sum(map(len, load())) == 10_000_000
    assert is_load("Someone said: " + messages[0])
    assert not is_load("Someone said: hi") and not is_load(b"x" * 200_000)


async def test_stalled_client_blocks_the_loop_until_it_resumes():
    """A stalled client makes the video's send wait; resume() lets it finish."""
    async with wsteach.start(video_loop, port=0, trace=False) as server:
        alice, bob = await wsteach.crowd(server.url, "alice", "bob")
        sloth = await stalled_client(server.url)
        assert repr(sloth) == "<StalledClient 'sloth' · stalled>"
        for message in load():
            await alice.send(message)
        await asyncio.sleep(0.3)
        assert len(bob.received) < LOAD_MESSAGES
        sloth.resume()
        async with asyncio.timeout(5):
            # Polling: background readers fill these counts.
            while len(bob.received) < LOAD_MESSAGES or sloth.count < LOAD_MESSAGES:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert repr(sloth) == "<StalledClient 'sloth' · reading>"
        await sloth.close()
        await alice.close()
        await bob.close()


async def test_report_crashes_prints_one_line_per_crash(capsys):
    """Each "connection handler failed" becomes one line naming the client."""

    async def crash(websocket):
        raise ValueError("boom")

    with report_crashes() as lines:
        async with wsteach.start(crash, port=0) as server:
            client = await wsteach.connect(server.url, name="alice")
            await client.wait_closed()
    assert capsys.readouterr().out == (
        "connection handler failed (the handler serving alice): ValueError: boom\n"
    )
    assert len(lines) == 1
    assert client.close_code == 1011


def test_report_crashes_says_when_nothing_crashed(capsys):
    """Without a crash it says so, and it detaches from the logger afterwards."""
    logger = logging.getLogger("websockets.server")
    before = list(logger.handlers)
    with report_crashes():
        logger.error("connection handler failed")
    assert logger.handlers == before
    with report_crashes() as lines:
        pass
    assert lines == []
    assert capsys.readouterr().out == (
        "connection handler failed\nno handler crashed\n"
    )
