"""Exercises of notebook 01 (wsteach.exercises.first_client): typical wrong answers and their causes."""

from __future__ import annotations

import wsteach
import wsteach.exercises
from wsteach.exercises._core import FAILED, PASSED


async def test_print_instead_of_return_is_named_1_2():
    """1.2 that prints the reply instead of returning it is told to return it."""
    from wsteach.exercises import first_client

    async def say_hello(url):
        async with wsteach.connect(url) as websocket:
            await websocket.send("Hello server")
            print(await websocket.recv())

    results = await first_client.say_hello.results(say_hello)
    assert [r.status for r in results] == [FAILED, PASSED]
    assert results[0].detail == (
        "say_hello returned: expected 'Pong: Hello server', received None; likely "
        "cause: say_hello returns nothing (None): print(...) shows the reply, and "
        "only return hands it back to the caller; end with return and the value"
    )


async def test_forgotten_return_is_named_1_3():
    """1.3 that collects the replies but returns nothing is told to return them."""
    from wsteach.exercises import first_client

    async def send_all(url, messages):
        replies = []
        async with wsteach.connect(url) as websocket:
            for message in messages:
                await websocket.send(message)
                replies.append(await websocket.recv())

    results = await first_client.send_all.results(send_all)
    assert results[0].detail == (
        "send_all returned: expected ['Pong: one', 'Pong: two', 'Pong: three'], "
        "received None; likely cause: send_all returns nothing (None): only "
        "return hands it back to the caller; end with return and the value"
    )
