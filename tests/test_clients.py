"""connect / crowd / Client: background reading, ordered .received, clear errors."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

import wsteach
from wsteach.clients import _errnos, nothing_listening
from wsteach.listening import free_port
from wsteach.names import NAME_HEADER


async def test_received_keeps_everything_in_order():
    """Messages arrive in .received in order even when nobody calls recv."""
    server = await wsteach.start(wsteach.echo, port=0)
    async with wsteach.connect(server.url) as client:
        for n in range(1000):
            await client.send(str(n))
        assert [await client.recv() for _ in range(1000)] == [
            str(n) for n in range(1000)
        ]
        assert client.received == [str(n) for n in range(1000)]


async def test_binary_and_text_round_trip():
    """echo sends text back as text and bytes back as bytes."""
    server = await wsteach.start(wsteach.echo, port=0)
    async with wsteach.connect(server.url) as client:
        await client.send(b"\x00\xff")
        await client.send("é")
        assert await client.recv() == b"\x00\xff"
        assert await client.recv() == "é"


async def test_recv_timeout_says_who_how_long_and_what_to_check():
    """A recv that times out names the client, the wait and what to check."""

    async def silent(websocket):
        await websocket.wait_closed()

    server = await wsteach.start(silent, port=0)
    async with wsteach.connect(server.url, name="alice") as alice:
        await alice.send("anyone?")
        with pytest.raises(TimeoutError) as info:
            await alice.recv(timeout=0.1)
    message = str(info.value)
    assert message.startswith(f"alice waited 0.1 s for a message from {server.url}")
    assert "nothing received in all" in message
    assert "await websocket.send(...)" in message


async def test_recv_after_close_raises_connection_closed_with_note():
    """Once closed and drained, recv raises websockets' ConnectionClosed with a note."""

    async def once(websocket):
        await websocket.send("only one")

    server = await wsteach.start(once, port=0)
    client = await wsteach.connect(server.url, name="bob")
    assert await client.recv() == "only one"
    with pytest.raises(ConnectionClosedOK) as info:
        await client.recv(timeout=2)
    assert "bob was waiting for a message, but the connection is closed" in str(
        info.value.__notes__
    )
    assert client.closed and client.close_code == 1000


async def test_name_travels_in_header():
    """The client's name reaches the server in the X-Wsteach-Name header."""
    names = []

    async def record(websocket):
        names.append(websocket.request.headers.get(NAME_HEADER))

    server = await wsteach.start(record, port=0)
    async with wsteach.connect(server.url, name="carol"):
        pass
    async with wsteach.connect(server.url, additional_headers={"X-Other": "1"}):
        pass
    await asyncio.sleep(0.05)
    assert names == ["carol", None]


async def test_connection_refused_says_what_to_do():
    """Connecting where nothing listens says to start the server first."""
    port = free_port()
    for host in ("localhost", "127.0.0.1"):
        url = f"ws://{host}:{port}"
        with pytest.raises(ConnectionRefusedError) as info:
            await wsteach.connect(url)
        assert f"nothing is listening at {url}: is the server running?" in str(
            info.value
        )


async def test_other_connect_errors_pass_through():
    """Errors other than a refused connection are not disguised."""
    with pytest.raises(OSError) as info:
        await wsteach.connect("ws://name.invalid:1")
    assert not isinstance(info.value, ConnectionRefusedError)


async def test_crowd_connects_in_order_and_closes_all():
    """crowd opens one client per name, in order, and closes them all."""
    room = wsteach.Room()
    server = await wsteach.start(room.handler, port=0)
    async with wsteach.crowd(server.url, "alice", "bob", "carol") as clients:
        alice, bob, carol = clients
        assert [c.name for c in clients] == ["alice", "bob", "carol"]
        await alice.send("hi")
        assert await bob.recv() == "Someone said: hi"
        assert await carol.recv() == "Someone said: hi"
        assert repr(alice) == "<Client 'alice' · open · 0 received>"
    assert all(c.closed for c in clients)
    assert repr(alice) == "<Client 'alice' · closed · 0 received>"


async def test_awaited_crowd_and_failed_crowd():
    """Awaiting crowd returns the clients; a failure closes those already open."""
    server = await wsteach.start(wsteach.echo, port=0)
    first, second = await wsteach.crowd(server.url, "a", "b")
    assert not first.closed and not second.closed
    await first.close()
    await second.close()
    with pytest.raises(TypeError, match="at least one name"):
        wsteach.crowd(server.url)


async def test_wait_closed_timeout():
    """wait_closed says so when the server keeps the connection open."""
    server = await wsteach.start(wsteach.echo, port=0)
    async with wsteach.connect(server.url, name="dave") as dave:
        with pytest.raises(TimeoutError, match=r"dave waited 0\.05 s for the server"):
            await dave.wait_closed(timeout=0.05)
    assert dave.close_reason == ""


def test_nothing_listening_is_decided_by_errno():
    """Only refused connections (with unusable addresses besides) mean no server."""
    assert nothing_listening([errno.ECONNREFUSED])
    assert nothing_listening([errno.EADDRNOTAVAIL, errno.ECONNREFUSED])
    assert nothing_listening([errno.ECONNREFUSED, errno.ECONNREFUSED])
    assert not nothing_listening([errno.ENETUNREACH])
    assert not nothing_listening([errno.EHOSTUNREACH])
    assert not nothing_listening([errno.ETIMEDOUT, errno.ECONNREFUSED])
    assert not nothing_listening([None])
    assert not nothing_listening([])


async def test_unreachable_host_is_not_called_nothing_listening():
    """A host with no route (a documentation address) is not "nothing is listening"."""
    with pytest.raises(OSError) as info:
        await wsteach.connect("ws://[2001:db8::1]:9", open_timeout=3)
    assert not isinstance(info.value, ConnectionRefusedError)
    assert "nothing is listening" not in str(info.value)


async def test_errno_of_each_address_when_python_gives_none():
    """Python 3.11's errno-less "Multiple exceptions" error is retried address by address."""
    multiple = OSError("Multiple exceptions: [Errno 111] ..., [Errno 111] ...")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        assert await _errnos(multiple, f"ws://127.0.0.1:{port}") == [errno.ECONNREFUSED]
        probe.listen()
        assert await _errnos(multiple, f"ws://127.0.0.1:{port}") == [0]
    assert await _errnos(multiple, "ws://name.invalid") == [None]
    assert await _errnos(ConnectionRefusedError(errno.ECONNREFUSED, "x"), "ws://a") == [
        errno.ECONNREFUSED
    ]


async def test_awaited_client_closes_at_end_of_async_with():
    """A Client from await connect(...) used in async with is closed when the block ends."""
    server = await wsteach.start(wsteach.echo, port=0)
    client = await wsteach.connect(server.url, name="dora")
    async with client as same:
        assert same is client
        await same.send("hi")
        assert await same.recv() == "hi"
    assert client.closed and client.close_code == 1000


@pytest.mark.filterwarnings("ignore:.*was never awaited:RuntimeWarning")
def test_connect_repr_without_name_shows_no_name_argument():
    """repr(connect(url)) without a name shows the call with the url and options only."""
    pending = wsteach.connect("ws://localhost:7890", open_timeout=1)
    assert repr(pending).startswith(
        "<wsteach.connect('ws://localhost:7890', open_timeout=1): not connected"
    )


async def test_crowd_closes_the_clients_it_opened_when_one_fails():
    """When one name of a crowd is refused, the clients already open are closed."""
    ended = asyncio.Event()
    names = []

    def refuse_bob(connection, request):
        if request.headers.get(NAME_HEADER) == "bob":
            return connection.respond(403, "no bob\n")
        return None

    async def record(websocket):
        names.append(websocket.request.headers.get(NAME_HEADER))
        await websocket.wait_closed()
        ended.set()

    server = await wsteach.start(record, port=0, process_request=refuse_bob)
    with pytest.raises(InvalidStatus) as info:
        await wsteach.crowd(server.url, "alice", "bob", "carol")
    assert info.value.response.status_code == 403
    await asyncio.wait_for(ended.wait(), 5)
    assert names == ["alice"]
