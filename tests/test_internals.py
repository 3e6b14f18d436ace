"""wsteach.internals: one contract test per websockets internal the kit uses.

Each test exercises the internal on a real server and client and, when the
installed websockets no longer behaves as the kit expects, fails with a message
naming the internal and the function of ``wsteach.internals`` to update.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol

from wsteach import internals


def broken(name: str, function: str) -> str:
    return (
        f"websockets {websockets.__version__} changed {name}: "
        f"update wsteach.internals.{function} (checked with websockets "
        f"{internals.CHECKED_WITH})"
    )


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def hold(websocket: ServerConnection) -> None:
    await websocket.wait_closed()


async def echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


def test_checked_with_matches_the_installed_major_version() -> None:
    """The internals were checked against the websockets major version installed."""
    major = websockets.__version__.split(".")[0]
    assert major == internals.CHECKED_WITH, (
        f"websockets {websockets.__version__} is installed, but wsteach.internals "
        f"was checked with {internals.CHECKED_WITH}: rerun tests/test_internals.py, "
        "fix what fails, then update CHECKED_WITH and pyproject.toml"
    )


async def test_debug_log_format_strings() -> None:
    """Debug records keep the format strings and arguments the trace reads."""
    records = Records()
    logger = logging.Logger("test.internals")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)
    async with (
        serve(echo, "127.0.0.1", 0, logger=logger) as server,
        connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}") as client,
    ):
        await client.send("hi")
        assert await client.recv() == "hi"
    await server.wait_closed()
    states = [r.args[0] for r in records.records if r.msg == internals.STATE_CHANGED]
    assert "OPEN" in states and states[-1] == "CLOSED", broken(
        "the state-change debug message", "STATE_CHANGED"
    )
    received = [r.args[0] for r in records.records if r.msg == internals.FRAME_RECEIVED]
    sent = [r.args[0] for r in records.records if r.msg == internals.FRAME_SENT]
    assert all(isinstance(f, Frame) for f in received + sent), broken(
        "the frame debug messages' arguments", "FRAME_RECEIVED"
    )
    assert (Opcode.TEXT, b"hi") in [(f.opcode, f.data) for f in received], broken(
        "the received-frame debug message", "FRAME_RECEIVED"
    )
    assert (Opcode.TEXT, b"hi") in [(f.opcode, f.data) for f in sent], broken(
        "the sent-frame debug message", "FRAME_SENT"
    )


async def test_log_connection() -> None:
    """Every record a connection logs carries that connection."""
    records = Records()
    logger = logging.Logger("test.internals")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)
    seen: list[ServerConnection] = []

    async def handler(websocket: ServerConnection) -> None:
        seen.append(websocket)

    async with serve(handler, "127.0.0.1", 0, logger=logger) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.wait_closed()
    frames = [r for r in records.records if r.msg == internals.FRAME_SENT]
    assert frames, broken("frame logging", "FRAME_SENT")
    for record in frames:
        assert internals.log_connection(record).id == seen[0].id, broken(
            "the websocket attribute of log records", "log_connection"
        )


async def test_handler_tasks() -> None:
    """Server.handler_tasks holds one live task per connected client."""
    async with serve(hold, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        assert internals.handler_tasks(server) == set()
        async with connect(f"ws://127.0.0.1:{port}"):
            async with asyncio.timeout(5):
                while not internals.handler_tasks(server):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            (task,) = internals.handler_tasks(server)
            assert isinstance(task, asyncio.Task), broken(
                "Server.handler_tasks", "handler_tasks"
            )
            assert not task.done()
        async with asyncio.timeout(5):
            while internals.handler_tasks(server):  # noqa: ASYNC110
                await asyncio.sleep(0.01)


async def test_transport() -> None:
    """Connection.transport is the asyncio transport of the connection."""
    connections: list[ServerConnection] = []

    async def handler(websocket: ServerConnection) -> None:
        connections.append(websocket)
        await websocket.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.ping()
            (connection,) = server.connections
            sink = internals.transport(connection)
            assert isinstance(sink, asyncio.Transport), broken(
                "Connection.transport", "transport"
            )
            assert sink.get_extra_info("peername") == connection.remote_address
            sink.abort()
            with pytest.raises(ConnectionClosedError):
                await client.recv()


async def test_queue_paused_and_hooks() -> None:
    """The Assembler pauses past max_queue through the hooks, and resumes."""
    calls: list[str] = []
    ready = asyncio.Event()
    proceed = asyncio.Event()
    flags: list[bool] = []

    async def handler(websocket: ServerConnection) -> None:
        internals.hook_queue_flow_control(
            websocket, lambda: calls.append("pause"), lambda: calls.append("resume")
        )
        ready.set()
        await proceed.wait()
        flags.append(internals.queue_paused(websocket))
        async for message in websocket:
            if message == "last":
                flags.append(internals.queue_paused(websocket))
                await websocket.send("done")

    async with serve(handler, "127.0.0.1", 0, max_queue=4) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await ready.wait()
            for n in range(10):
                await client.send(str(n))
            await client.send("last")
            async with asyncio.timeout(5):
                while "pause" not in calls:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            proceed.set()
            assert await client.recv() == "done"
    assert calls == ["pause", "resume"], broken(
        "the Assembler's pause/resume callbacks", "hook_queue_flow_control"
    )
    assert flags == [True, False], broken("Assembler.paused", "queue_paused")


async def test_write_pending_replaces_send_data() -> None:
    """websockets writes through Connection.send_data, which write_pending can replace."""
    writes: list[int] = []

    class Counting(ServerConnection):
        def send_data(self) -> None:
            writes.append(1)
            internals.write_pending(self)

    async with serve(echo, "127.0.0.1", 0, create_connection=Counting) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.send("hi")
            assert await client.recv() == "hi"
            await client.ping()
    assert client.close_code == 1000, broken("Connection.send_data", "write_pending")
    assert len(writes) >= 3, broken(
        "Connection.send_data (no longer called on send)", "write_pending"
    )


async def test_write_pending_writes_nothing_once_lost() -> None:
    """After the transport is lost, write_pending drops data instead of writing."""
    connections: list[ServerConnection] = []

    async def handler(websocket: ServerConnection) -> None:
        connections.append(websocket)
        await websocket.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}"):
            await asyncio.sleep(0)
            async with asyncio.timeout(5):
                while not connections:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            (connection,) = connections
            sink = internals.transport(connection)
            sink.abort()
            connection.protocol.send_ping(b"x")
            internals.write_pending(connection)
            assert connection.protocol.data_to_send() == [], broken(
                "Protocol.data_to_send", "write_pending"
            )


async def test_close_frames_and_close_exc() -> None:
    """The protocol records the close frames each side sent, and in which order."""
    connections: list[ServerConnection] = []

    async def handler(websocket: ServerConnection) -> None:
        connections.append(websocket)
        await websocket.close(4000, "bye")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.wait_closed()
        (connection,) = connections
        await connection.wait_closed()
    sent, received, received_first = internals.close_frames(connection)
    assert (sent.code, sent.reason) == (4000, "bye"), broken(
        "Protocol.close_sent", "close_frames"
    )
    assert received is not None and received.code == 4000, broken(
        "Protocol.close_rcvd", "close_frames"
    )
    assert received_first is False, broken(
        "Protocol.close_rcvd_then_sent", "close_frames"
    )
    *_, client_first = internals.close_frames(client)
    assert client_first is True, broken("Protocol.close_rcvd_then_sent", "close_frames")
    error = internals.close_exc(client)
    assert isinstance(error, ConnectionClosedError), broken(
        "Protocol.close_exc", "close_exc"
    )
    assert error.rcvd.code == 4000 and error.rcvd.reason == "bye"


def test_close_code_name() -> None:
    """Close codes websockets names read as words; others have no name."""
    assert internals.close_code_name(1001) == "going away", broken(
        "CloseCode", "close_code_name"
    )
    assert internals.close_code_name(1008) == "policy violation"
    assert internals.close_code_name(1000) == "normal closure"
    assert internals.close_code_name(4000) is None


async def test_write_pending_half_closes_and_logs_it() -> None:
    """At the end of the closing handshake, write_pending half-closes the TCP stream."""
    records = Records()
    logger = logging.Logger("test.internals")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)

    class Replaced(ServerConnection):
        def send_data(self) -> None:
            internals.write_pending(self)

    async with serve(
        echo, "127.0.0.1", 0, logger=logger, create_connection=Replaced
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.ping()
        await client.wait_closed()
    assert client.close_code == 1000
    assert "x half-closing TCP connection" in [r.msg for r in records.records], broken(
        "the end-of-stream marker of Protocol.data_to_send", "write_pending"
    )


async def test_protocol_and_server_of() -> None:
    """A server connection reaches its sans-I/O protocol and its Server."""
    seen: list[ServerConnection] = []

    async def handler(websocket: ServerConnection) -> None:
        seen.append(websocket)
        await websocket.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.ping()
            (connection,) = seen
            assert internals.server_of(connection) is server, broken(
                "ServerConnection.server", "server_of"
            )
            sans_io = internals.protocol(connection)
            assert isinstance(sans_io, Protocol), broken(
                "Connection.protocol", "protocol"
            )
            assert sans_io.state is connection.state


async def test_client_connections_have_them_too() -> None:
    """A client connection's transport aborts it, and close_frames reads what it received."""

    async def closes(websocket: ServerConnection) -> None:
        await websocket.close(1001, "bye")

    async with serve(closes, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.wait_closed()
            _, received, _ = internals.close_frames(client)
            assert received is not None and (received.code, received.reason) == (
                1001,
                "bye",
            ), broken("Protocol.close_rcvd", "close_frames")
    async with serve(hold, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as other:
            sink = internals.transport(other)
            assert isinstance(sink, asyncio.Transport), broken(
                "ClientConnection.transport", "transport"
            )
            sink.abort()
            await other.wait_closed()
            assert internals.close_frames(other)[1] is None
