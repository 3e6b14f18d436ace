"""start / Running / stop_all: servers inside a running event loop."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

import wsteach
from wsteach.notebook import Running


async def pong(websocket):
    async for message in websocket:
        await websocket.send("Pong: " + message)


async def test_start_returns_running_server():
    """Awaiting start gives a handle with url, port and a readable repr."""
    server = await wsteach.start(pong, port=0)
    assert isinstance(server, Running)
    assert server.port > 0
    assert server.url == f"ws://127.0.0.1:{server.port}"
    assert repr(server) == f"wsteach server 'pong' on {server.url} · 0 clients"
    async with ws_connect(server.url) as websocket:
        await websocket.send("Hello server")
        assert await websocket.recv() == "Pong: Hello server"
        assert len(server.connections) == 1
        assert repr(server).endswith("· 1 client")
    await server.stop()
    assert not server.running
    assert repr(server).endswith("· stopped")


async def test_async_with_stops_the_server():
    """async with start(...) stops the server when the block ends."""
    async with wsteach.start(pong, port=0) as server:
        assert server.running
    assert not server.running
    assert wsteach.running_servers() == []


async def test_restart_on_same_port_closes_the_previous_server():
    """Starting again on a port this process holds replaces the old server."""
    first = await wsteach.start(pong, port=0)
    client = await wsteach.connect(first.url)
    second = await wsteach.start(wsteach.echo, port=first.port)
    assert not first.running
    assert second.running and second.port == first.port
    await client.wait_closed()
    assert client.close_code == 1001  # going away: the old server closed it
    async with wsteach.connect(f"ws://127.0.0.1:{second.port}") as again:
        await again.send("same port")
        assert await again.recv() == "same port"
    assert wsteach.running_servers() == [second]


async def test_restart_many_times_on_fixed_port():
    """Re-running a server cell ten times on a fixed port never hits 'address in use'."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for _ in range(10):
        server = await wsteach.start(pong, port=port)
    assert server.url == f"ws://localhost:{port}"
    async with wsteach.connect(server.url) as client:
        await client.send("x")
        assert await client.recv() == "Pong: x"


async def test_port_held_by_another_program():
    """A port in use elsewhere gives PortInUseError naming the port and the fix."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(wsteach.PortInUseError) as info:
            await wsteach.start(pong, port=port, host="127.0.0.1")
    message = str(info.value)
    assert f"port {port} is already in use by another program" in message
    assert f"port={port + 1}" in message and "port=0" in message
    assert info.value.errno == errno.EADDRINUSE
    assert isinstance(info.value, OSError)


async def test_port_held_by_plain_websockets_server_in_this_process():
    """A server this process started without wsteach is not closed, but explained."""
    async with ws_serve(pong, "127.0.0.1", 0) as plain:
        port = plain.sockets[0].getsockname()[1]
        with pytest.raises(wsteach.PortInUseError, match="without wsteach"):
            await wsteach.start(pong, port=port, host="127.0.0.1")


async def test_other_bind_errors_pass_through():
    """An address that isn't this machine's gives the original OSError."""
    with pytest.raises(OSError) as info:
        await wsteach.start(pong, port=0, host="192.0.2.1")
    assert not isinstance(info.value, wsteach.PortInUseError)


async def test_bad_handler_refused_before_binding():
    """A two-parameter handler is refused and nothing starts."""

    async def echo(websocket, path):
        pass

    with pytest.raises(TypeError, match="path"):
        await wsteach.start(echo, port=0)
    assert wsteach.running_servers() == []


async def test_stop_all_and_double_stop():
    """stop_all stops every server; stopping twice is harmless."""
    servers = [await wsteach.start(pong, port=0) for _ in range(3)]
    await wsteach.stop_all()
    assert not any(server.running for server in servers)
    await servers[0].stop()
    assert wsteach.running_servers() == []


async def test_serve_options_reach_websockets():
    """Options such as max_size go to websockets' serve."""
    server = await wsteach.start(pong, port=0, max_size=10)
    async with wsteach.connect(server.url) as client:
        await client.send("x" * 11)
        await client.wait_closed()
    assert client.close_code == 1009


async def test_show_prints_table_outside_ipython(capsys):
    """show() prints the plain-text trace when not in a notebook."""
    server = await wsteach.start(pong, port=0)
    async with wsteach.connect(server.url, name="alice") as alice:
        await alice.send("Hello server")
        await alice.recv()
    server.show()
    out = capsys.readouterr().out
    assert "alice   server  'Hello server'" in out
    assert "server  alice   'Pong: Hello server'" in out


async def test_show_without_trace(capsys):
    """With trace=False, show() says how to turn tracing on."""
    server = await wsteach.start(pong, port=0, trace=False)
    assert server.trace is None
    server.show()
    assert "start it with trace=True" in capsys.readouterr().out


async def test_show_displays_in_ipython(monkeypatch):
    """In IPython, show() displays the trace object (diagram and table)."""
    import IPython
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", shown.append)
    server = await wsteach.start(pong, port=0)
    server.show()
    assert shown == [server.trace]


async def test_handler_print_and_errors_are_visible(caplog):
    """A crashing handler is logged as websockets does and the server keeps going."""

    async def broken(websocket):
        async for message in websocket:
            await websocket.send(message + 1)

    server = await wsteach.start(broken, port=0)
    with caplog.at_level("ERROR", logger="websockets.server"):
        async with wsteach.connect(server.url) as client:
            await client.send("x")
            await client.wait_closed()
        await asyncio.sleep(0.05)
    assert client.close_code == 1011
    failures = [
        r for r in caplog.records if r.getMessage() == "connection handler failed"
    ]
    assert len(failures) == 1
    assert isinstance(failures[0].exc_info[1], TypeError)
    # The frames of the trace never reach the standard handlers.
    assert not [r for r in caplog.records if r.levelname == "DEBUG"]
    async with wsteach.connect(server.url) as again:
        assert not again.closed


async def test_localhost_falls_back_to_ipv4_without_ipv6(monkeypatch):
    """Where ::1 can't be bound (no IPv6), localhost serves on 127.0.0.1."""
    import wsteach.notebook as notebook

    calls = []
    real_serve = notebook.serve

    def fake_serve(handler, host, port, **options):
        calls.append(host)
        if host == "localhost":
            raise OSError(errno.EADDRNOTAVAIL, "cannot assign requested address")
        return real_serve(handler, host, port, **options)

    monkeypatch.setattr(notebook, "serve", fake_serve)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await wsteach.start(pong, port=port)
    assert calls == ["localhost", "127.0.0.1"]
    assert server.url == f"ws://127.0.0.1:{port}"


async def test_ipv6_url_has_brackets():
    """An IPv6 host appears in brackets in the URL."""
    try:
        server = await wsteach.start(pong, port=0, host="::1")
    except OSError:
        pytest.fail("this machine has no IPv6 loopback; the test needs ::1")
    assert server.url == f"ws://[::1]:{server.port}"
