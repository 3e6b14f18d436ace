"""Pending: start / connect / crowd say when await is missing, in repr, errors and a warning."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable

import pytest
from kernel import Kernel

import wsteach


async def pong(websocket):
    async for message in websocket:
        await websocket.send("Pong: " + message)


def settle() -> None:
    """Collect the objects earlier tests left unawaited, without their warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()


def dropped(make: Callable[[], object]) -> list[warnings.WarningMessage]:
    """Make an object, drop it, and return the warnings that dropping it causes."""
    settle()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        make()
        gc.collect()
    return list(caught)


# The objects of the repr tests are never awaited on purpose.
never_awaited = pytest.mark.filterwarnings("ignore:.*was never awaited:RuntimeWarning")


@never_awaited
def test_start_repr_says_await_is_missing():
    """repr(start(...)) without await says it hasn't started and shows the fix."""
    pending = wsteach.start(pong, port=7890)
    assert repr(pending) == (
        "<wsteach.start(pong, port=7890): not started — did you forget await? "
        "write: server = await wsteach.start(pong, port=7890)>"
    )


@never_awaited
def test_start_repr_shows_the_options_given():
    """Options that differ from the defaults appear in the suggested line."""
    pending = wsteach.start(
        pong, port=0, host="0.0.0.0", trace=False, web=True, max_size=9
    )
    assert repr(pending).startswith(
        "<wsteach.start(pong, port=0, host='0.0.0.0', trace=False, web=True, "
        "max_size=9): not started"
    )


@never_awaited
def test_connect_and_crowd_repr():
    """repr(connect(...)) and repr(crowd(...)) say they are not connected."""
    alice = wsteach.connect("ws://localhost:7890", name="alice", open_timeout=1)
    assert repr(alice) == (
        "<wsteach.connect('ws://localhost:7890', name='alice', open_timeout=1): "
        "not connected — did you forget await? write: alice = await "
        "wsteach.connect('ws://localhost:7890', name='alice', open_timeout=1)>"
    )
    anonymous = wsteach.connect("ws://localhost:7890", name="Ł k")
    assert "write: client = await" in repr(anonymous)
    room = wsteach.crowd("ws://localhost:7890", "alice", "bob")
    assert repr(room) == (
        "<wsteach.crowd('ws://localhost:7890', 'alice', 'bob'): not connected — "
        "did you forget await? write: alice, bob = await "
        "wsteach.crowd('ws://localhost:7890', 'alice', 'bob')>"
    )


@never_awaited
def test_attribute_of_a_result_says_await_is_missing():
    """server.url on a start(...) that wasn't awaited explains, not just 'no attribute'."""
    server = wsteach.start(pong, port=7890)
    with pytest.raises(AttributeError) as info:
        server.url  # noqa: B018
    assert str(info.value) == (
        "wsteach.start(pong, port=7890) has no attribute 'url': it is not started, "
        "did you forget await? write: server = await wsteach.start(pong, port=7890)"
    )
    with pytest.raises(AttributeError, match=r"^_repr_html_$"):
        server._repr_html_  # noqa: B018


def test_dropped_without_await_warns_once():
    """Dropping a start(...) that was never awaited gives one RuntimeWarning."""
    caught = dropped(lambda: wsteach.start(pong, port=7890))
    assert [(w.category, str(w.message)) for w in caught] == [
        (
            RuntimeWarning,
            "wsteach.start(pong, port=7890) was never awaited, so it is not started; "
            "did you forget await? write: server = await wsteach.start(pong, port=7890)",
        )
    ]
    caught = dropped(lambda: wsteach.connect("ws://localhost:7890", name="bob"))
    assert len(caught) == 1
    assert (
        "wsteach.connect('ws://localhost:7890', name='bob') was never awaited"
        in str(caught[0].message)
    )


def test_each_forgotten_object_warns_even_from_the_same_line():
    """Two objects dropped on the same line warn twice: a re-run cell warns again."""
    settle()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(2):
            wsteach.start(pong, port=7890)
        gc.collect()
    assert len(caught) == 2
    assert {w.filename for w in caught} == {__file__}


def test_refused_arguments_never_warn():
    """A start whose handler is refused raised already: no warning on top."""

    def plain(websocket):
        pass

    settle()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        with pytest.raises(TypeError):
            wsteach.start(plain)
        with pytest.raises(TypeError):
            wsteach.crowd("ws://localhost:7890")
        gc.collect()
    assert caught == []


async def test_awaited_or_entered_never_warns():
    """await and async with count as used: no warning, repr says awaited."""
    settle()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        pending = wsteach.start(pong, port=0)
        server = await pending
        assert repr(pending) == "<wsteach.start(pong, port=0): awaited>"
        connecting = wsteach.connect(server.url)
        async with connecting as client:
            await client.send("x")
            assert await client.recv() == "Pong: x"
        assert client.closed
        async with wsteach.crowd(server.url, "a", "b") as (a, b):
            assert not a.closed and not b.closed
        clients = await wsteach.crowd(server.url, "c")
        await clients[0].close()
        del pending, connecting
        gc.collect()
    assert caught == []


async def test_jupyter_kernel_shows_the_warning(tmp_path):
    """In a real IPython kernel, a start(...) without await warns under its cell."""
    kernel = await Kernel.start(tmp_path)
    try:
        await kernel.run("import wsteach")
        cell = "server = wsteach.start(wsteach.echo, port=7890)"
        assert await kernel.run(cell) == {
            "stdout": "", "stderr": "", "result": "", "error": ""
        }  # fmt: skip
        forgotten = (
            "RuntimeWarning: wsteach.start(echo, port=7890) was never awaited, so it "
            "is not started; did you forget await? write: server = await "
            "wsteach.start(echo, port=7890)"
        )
        # Running the cell again drops the first object: the warning shows under
        # the cell, each time.
        for _ in range(2):
            shown = await kernel.run(cell)
            assert shown["stderr"].count(forgotten) == 1, shown
        shown = await kernel.run("server")
        assert shown["result"] == (
            "<wsteach.start(echo, port=7890): not started — did you forget await? "
            "write: server = await wsteach.start(echo, port=7890)>"
        )
        shown = await kernel.run("server.url")
        assert (
            "AttributeError: wsteach.start(echo, port=7890) has no attribute 'url'"
            in shown["error"]
        )
    finally:
        await kernel.stop()


async def test_awaiting_the_same_start_twice_starts_one_server():
    """A second await of the same start(...) gives the same server; nothing runs twice."""
    pending = wsteach.start(pong, port=0)
    first = await pending
    again = await pending
    assert again is first and first.running
    assert wsteach.running_servers() == [first]
    await first.stop()


async def test_awaiting_a_start_while_it_runs_is_refused():
    """Awaiting a start(...) that another task is awaiting raises a clear RuntimeError."""
    import asyncio

    pending = wsteach.start(pong, port=0)
    first = asyncio.ensure_future(pending)
    await asyncio.sleep(0)  # The first await has begun and waits for its bind.
    with pytest.raises(RuntimeError, match="is already being awaited elsewhere"):
        await pending
    server = await first
    await server.stop()


async def test_a_start_that_failed_can_be_awaited_again():
    """After a start(...) raised (its port taken), awaiting it again tries again."""
    import socket

    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    pending = wsteach.start(pong, port=port, host="127.0.0.1")
    with pytest.raises(wsteach.PortInUseError):
        await pending
    holder.close()
    server = await pending
    assert server.port == port
    await server.stop()
