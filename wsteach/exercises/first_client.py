"""Exercises for notebook 01, the first client.

Question 1.1 (``predict_1_1``) asks for a close code before the cell that
shows it. Exercises 1.2 and 1.3 are client exercises: your answer is an ``async def`` function that takes
the server's URL. ``check`` starts a reference server on a free port, calls your
function with its URL, and looks at what your function returned and what the
server received. The reference server answers every text message with
``"Pong: " + message``, like the server you write in notebook 02.
"""

from __future__ import annotations

from typing import Any

from ._core import Exercise, Question, Run, expect

__all__ = ["predict_1_1", "say_hello", "send_all"]


def _expect_items(received: Any, expected: list[Any], what: str) -> None:
    """Like :func:`expect`, but for a long list name only the first difference."""
    expect(type(received).__name__, "list", f"type of what {what}")
    for n, item in enumerate(expected):
        got = received[n] if n < len(received) else "nothing"
        expect(got, item, f"{what}, item {n}")
    expect(len(received), len(expected), f"{what}, number of items")


async def _pong_server(websocket: Any, received: list[Any]) -> None:
    """Record each message, then answer it with ``"Pong: " + message``."""
    async for message in websocket:
        received.append(message)
        await websocket.send("Pong: " + str(message))


async def _hello_reply(run: Run) -> None:
    reply = await run.answer(run.url)
    expect(reply, "Pong: Hello server", "say_hello returned")


async def _hello_sent(run: Run) -> None:
    await run.answer(run.url)
    expect(run.received, ["Hello server"], "the server received")


say_hello = Exercise(
    "1.2",
    "Say hello and return the reply",
    kind="client",
    reference=_pong_server,
    scenarios=[
        ('returns the reply "Pong: Hello server"', _hello_reply),
        ('sends exactly one message, "Hello server"', _hello_sent),
    ],
    hints=[
        "a client opens a connection to url, sends, waits for the reply, and hands it back to whoever called it; the connection closes when its block ends",
        "async with connect(___) as websocket:, and in the block: await websocket.send(___), then reply = await websocket.___(); after the block, return ___",
    ],
    solution="""
async def say_hello(url):
    async with connect(url) as websocket:
        await websocket.send("Hello server")
        reply = await websocket.recv()
    return reply
""",
)


async def _three_replies(run: Run) -> None:
    replies = await run.answer(run.url, ["one", "two", "three"])
    expect(replies, ["Pong: one", "Pong: two", "Pong: three"], "send_all returned")


async def _many_in_order(run: Run) -> None:
    messages = [f"message {n}" for n in range(50)]
    replies = await run.answer(run.url, messages)
    _expect_items(replies, [f"Pong: {m}" for m in messages], "send_all returned")
    _expect_items(run.received, messages, "the server received")


async def _none(run: Run) -> None:
    replies = await run.answer(run.url, [])
    expect(replies, [], "send_all returned, for no messages")


send_all = Exercise(
    "1.3",
    "Send several messages, collect every reply",
    kind="client",
    reference=_pong_server,
    scenarios=[
        ("three messages get three replies, in order", _three_replies),
        ("50 messages: the server gets all of them, in order", _many_in_order),
        ("no messages: returns an empty list", _none),
    ],
    hints=[
        "use one connection for all the messages; collect the replies in a list and return it",
        "replies = [] first; in the connection's block, a for loop over messages whose body sends ___ and appends the awaited ___ to replies; return replies at the end",
    ],
    solution="""
async def send_all(url, messages):
    replies = []
    async with connect(url) as websocket:
        for message in messages:
            await websocket.send(message)
            replies.append(await websocket.recv())
    return replies
""",
)


predict_1_1 = Question(
    "1.1",
    "A handler sends three messages and returns: which close code does the client see?",
    answer=1000,
    explanation=(
        "1000, a normal closure: when a handler returns, websockets closes its "
        "connection normally; the server itself keeps running"
    ),
    wrong={
        1001: "1001 (going away) is for a server that shuts down; this server "
        "keeps running, only the handler returned",
        1011: "1011 is for a handler that crashed; this one returned normally",
        1006: "1006 means the connection dropped without a close frame; "
        "websockets sends one when the handler returns",
    },
)
