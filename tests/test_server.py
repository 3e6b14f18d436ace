"""start / Running / stop_all: servers inside a running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

import pytest
from kernel import Kernel
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

import wsteach
from wsteach.internals import handler_tasks
from wsteach.listening import free_port
from wsteach.server import Running


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
    port = free_port()
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
    import wsteach.listening as listening

    calls = []
    real_serve = listening.serve

    def fake_serve(handler, host, port, **options):
        calls.append(host)
        if host == "localhost":
            raise OSError(errno.EADDRNOTAVAIL, "cannot assign requested address")
        return real_serve(handler, host, port, **options)

    monkeypatch.setattr(listening, "serve", fake_serve)
    port = free_port()
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


async def stuck(websocket):
    """A handler that never returns, even after its client has gone."""
    await asyncio.Event().wait()


async def test_stop_cancels_a_handler_that_never_returns(caplog):
    """stop() returns within the close timeout and cancels a handler stuck forever."""
    server = await wsteach.start(stuck, port=0, close_timeout=0.5)
    client = await wsteach.connect(server.url)
    [task] = handler_tasks(server.server)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with caplog.at_level("WARNING", logger="websockets.server"):
        await server.stop()
    assert loop.time() - began < 0.5 + 0.5
    assert task.cancelled()
    assert wsteach.running_servers() == []
    assert repr(server).endswith("· stopped")
    assert (
        "1 handler(s) of server 'stuck' still running 0.5 s after stop" in caplog.text
    )
    await client.wait_closed()
    assert client.close_code == 1001


async def test_rerun_with_a_stuck_handler_never_hangs():
    """Re-running a start cell whose handler never returns replaces it within ~2 s."""
    first = await wsteach.start(stuck, port=0)
    await wsteach.connect(first.url)
    loop = asyncio.get_running_loop()
    began = loop.time()
    second = await wsteach.start(pong, port=first.port)
    assert loop.time() - began < 2 + 0.5
    assert wsteach.running_servers() == [second]


async def test_interrupted_stop_leaves_the_server_for_stop_all():
    """A stop interrupted before its handlers ended keeps the server in running_servers."""
    server = await wsteach.start(stuck, port=0, close_timeout=5)
    await wsteach.connect(server.url)
    stopping = asyncio.create_task(server.stop())
    async with asyncio.timeout(5):  # Until the stop has begun: the port is closed.
        for _ in iter(lambda: server.running, False):
            await asyncio.sleep(0.01)
    stopping.cancel()  # What Kernel → Interrupt does to the cell's task.
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert wsteach.running_servers() == [server]
    assert "· stopping: await server.stop() or wsteach.stop_all() to finish" in repr(
        server
    )
    server.close_timeout = 0.2
    await wsteach.stop_all()
    assert wsteach.running_servers() == []
    assert not handler_tasks(server.server)


async def test_stop_gives_up_on_a_handler_that_ignores_cancellation(caplog):
    """A handler that swallows its cancellation can't make stop() hang either."""
    release = asyncio.Event()

    async def stubborn(websocket):
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    server = await wsteach.start(stubborn, port=0, close_timeout=0.2)
    await wsteach.connect(server.url)
    with caplog.at_level("WARNING", logger="websockets.server"):
        await server.stop()
    assert "ignored its cancellation and still runs" in caplog.text
    release.set()
    await server.server.wait_closed()


@pytest.mark.parametrize("host", ["", None, "::"])
async def test_port_zero_on_every_interface_is_one_port(host):
    """start(port=0) with host "", None or "::" binds one dual-stack port: IPv4 clients too."""
    server = await wsteach.start(pong, port=0, host=host)
    (sock,) = server.server.sockets
    assert sock.family == socket.AF_INET6
    assert not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    assert server.url == f"ws://localhost:{server.port}"
    for url in (f"ws://127.0.0.1:{server.port}", f"ws://[::1]:{server.port}"):
        async with wsteach.connect(url) as client:
            await client.send("x")
            assert await client.recv() == "Pong: x"


async def test_own_logger_and_trace_both_get_records():
    """With trace=True, the caller's logger= still gets its records, frames included."""
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    own = logging.getLogger("test_notebook.own")
    own.setLevel(logging.DEBUG)
    own.propagate = False
    own.addHandler(Keep())
    try:
        server = await wsteach.start(pong, port=0, logger=own)
        async with wsteach.connect(server.url, name="alice") as alice:
            await alice.send("hi")
            assert await alice.recv() == "Pong: hi"
        await server.stop()
    finally:
        own.handlers.clear()
    assert "alice   server  'hi'" in server.trace.table()
    messages = [record.getMessage() for record in records]
    assert f"server listening on 127.0.0.1:{server.port}" in messages
    assert any(message.startswith("< TEXT 'hi'") for message in messages)


async def test_own_logger_adapter_and_level_are_respected(caplog):
    """A LoggerAdapter works as logger=, and its level decides what gets through."""
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    own = logging.getLogger("test_notebook.adapter")
    own.setLevel(logging.WARNING)
    own.propagate = False
    own.addHandler(Keep())

    async def broken(websocket):
        await websocket.recv()
        raise ValueError("boom")

    try:
        server = await wsteach.start(broken, port=0, logger=logging.LoggerAdapter(own))
        with caplog.at_level(logging.DEBUG, logger="websockets.server"):
            async with wsteach.connect(server.url) as client:
                await client.send("x")
                await client.wait_closed()
            await server.stop()
    finally:
        own.handlers.clear()
    assert [record.getMessage() for record in records] == ["connection handler failed"]
    assert caplog.records == []  # Nothing went to websockets' default logger.


async def test_own_process_request_runs_before_the_page():
    """With web=True, the caller's process_request runs first, then the page hook."""
    from http import HTTPStatus

    seen = []

    async def guard(connection, request):
        seen.append(request.path)
        if request.path == "/secret":
            return connection.respond(HTTPStatus.FORBIDDEN, "no\n")
        return None

    server = await wsteach.start(pong, port=0, web=True, process_request=guard)
    base = f"http://127.0.0.1:{server.port}"

    def get(path):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    status, body = await asyncio.to_thread(get, "/")
    assert status == 200 and b"<html" in body.lower()
    assert await asyncio.to_thread(get, "/secret") == (403, b"no\n")
    async with wsteach.connect(server.url) as client:
        await client.send("x")
        assert await client.recv() == "Pong: x"
    assert seen == ["/", "/secret", "/"]


async def test_own_sync_process_request_alone():
    """Without web=True, the caller's process_request is websockets' own, untouched."""

    def guard(connection, request):
        return None

    server = await wsteach.start(pong, port=0, web=True, process_request=guard)
    async with wsteach.connect(server.url) as client:
        await client.send("x")
        assert await client.recv() == "Pong: x"


async def test_running_is_its_own_context_manager():
    """async with on an already started server stops it at the end of the block."""
    server = await wsteach.start(pong, port=0)
    async with server as same:
        assert same is server and server.running
    assert not server.running


async def test_port_taken_on_every_interface_is_explained():
    """A port held by another program, asked for on every interface, names the fix."""
    with socket.create_server(
        ("", 0), family=socket.AF_INET6, dualstack_ipv6=True
    ) as taken:
        busy = taken.getsockname()[1]
        with pytest.raises(wsteach.PortInUseError) as info:
            await wsteach.start(pong, port=busy, host="")
    assert f"port {busy} is already in use by another program" in str(info.value)
    assert wsteach.running_servers() == []


async def test_localhost_without_ipv6_and_ipv4_taken(monkeypatch):
    """No IPv6 and 127.0.0.1's port held: the IPv4 bind failure is explained."""
    import wsteach.listening as listening

    real_serve = listening.serve

    def no_ipv6(handler, host, port, **options):
        if host == "localhost":
            raise OSError(errno.EADDRNOTAVAIL, "cannot assign requested address")
        return real_serve(handler, host, port, **options)

    monkeypatch.setattr(listening, "serve", no_ipv6)
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        with pytest.raises(wsteach.PortInUseError, match="another program"):
            await wsteach.start(pong, port=port)


async def test_kernel_interrupt_during_stop_then_stop_all(tmp_path):
    """In a real kernel, Kernel → Interrupt during a stop leaves the server for stop_all."""
    kernel = await Kernel.start(tmp_path)
    try:
        shown = await kernel.run(
            "import asyncio, wsteach\n"
            "async def stuck(websocket):\n"
            "    await asyncio.Event().wait()\n"
            "server = await wsteach.start(stuck, port=0, close_timeout=30)\n"
            "client = await wsteach.connect(server.url)\n"
            "server"
        )
        assert shown["result"].endswith("· 1 client")
        port = int((await kernel.run("server.port"))["result"])
        stopping = kernel.send("await server.stop()")
        # Interrupt once the stop has begun: the server no longer listens.
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except (ConnectionRefusedError, ConnectionResetError):
                    # Reset: the connection was in the backlog as it closed.
                    break
                writer.close()
                await asyncio.sleep(0.01)
        await kernel.manager.interrupt_kernel()
        # ipykernel handles SIGINT once its event loop wakes up; a waiting
        # stop() wakes it only at its timeout. Any message wakes it, as
        # JupyterLab's next request would.
        kernel.client.kernel_info()
        assert "CancelledError" in (await kernel.shown(stopping))["error"]
        shown = await kernel.run("wsteach.running_servers()")
        assert shown["result"].endswith(
            "· stopping: await server.stop() or wsteach.stop_all() to finish]"
        )
        shown = await kernel.run(
            "server.close_timeout = 0.2\nawait wsteach.stop_all()\nwsteach.running_servers()"
        )
        assert shown["result"] == "[]"
        assert "1 handler(s) of server 'stuck' still running 0.2 s" in shown["stderr"]
    finally:
        await kernel.stop()
