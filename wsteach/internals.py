"""The websockets internals this kit relies on, all in one place.

websockets documents a public API (``serve``, ``connect``, ``broadcast``, the
connection's ``recv``, ``send``, ``close``, ``state``, ``request``…) and keeps
the right to change everything else in any release. The kit needs a few of
those other names: the debug-log format strings the trace reads, the server's
set of handler tasks, a connection's transport and flow-control state, the
close frames each side sent. Every such use goes through this module, and
``tests/test_internals.py`` checks each one against the installed websockets
with a message that names it, so an upgrade that breaks one fails one test,
here, instead of a student's notebook.

``pyproject.toml`` bounds websockets to the major version these were checked
against (:data:`CHECKED_WITH`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, CloseCode
from websockets.protocol import Protocol

__all__ = [
    "CHECKED_WITH",
    "FRAME_RECEIVED",
    "FRAME_SENT",
    "STATE_CHANGED",
    "close_code_name",
    "close_exc",
    "close_frames",
    "handler_tasks",
    "hook_queue_flow_control",
    "log_connection",
    "protocol",
    "queue_paused",
    "server_of",
    "transport",
    "write_pending",
]

CHECKED_WITH = "17"
"""The websockets major version whose internals this module was checked against."""

# Debug-log records websockets' Protocol writes (websockets/protocol.py). Their
# ``msg`` is the format string and ``args`` its arguments, untouched: compare
# ``record.msg``, never the formatted text.

STATE_CHANGED = "= connection is %s"
"""Logged on each state change; ``args[0]`` is the new :class:`State`'s name."""

FRAME_RECEIVED = "< %s"
"""Logged for each frame read; ``args[0]`` is the :class:`~websockets.frames.Frame`."""

FRAME_SENT = "> %s"
"""Logged for each frame written; ``args[0]`` is the :class:`~websockets.frames.Frame`."""


def log_connection(record: logging.LogRecord) -> Any | None:
    """Return the connection a websockets log record is about, or None.

    websockets wraps each connection's logger in a :class:`logging.LoggerAdapter`
    that adds ``websocket`` to every record (a weak proxy to the connection).
    """
    return getattr(record, "websocket", None)


def handler_tasks(server: Server) -> set[asyncio.Task[None]]:
    """Return the tasks running the server's connection handler, one per client.

    ``Server.handler_tasks``: websockets adds each handler task there and
    removes it when the handler returns, so a live view, not a copy.
    """
    return server.handler_tasks


def transport(connection: Connection) -> asyncio.Transport:
    """Return the asyncio transport under a connection (``Connection.transport``).

    Set when the TCP connection is made, before the opening handshake. It is
    asyncio's documented :class:`asyncio.Transport`: ``abort()``,
    ``get_write_buffer_size()``, ``pause_reading()``, ``is_closing()``.
    """
    return connection.transport


def protocol(connection: Connection) -> Protocol:
    """Return the sans-I/O protocol under a connection (``Connection.protocol``).

    The protocol's own API is documented (``send_close``, ``data_to_send``,
    ``close_exc``…); how to reach it from an asyncio connection is not.
    """
    return connection.protocol


def server_of(connection: ServerConnection) -> Server:
    """Return the :class:`Server` a server connection belongs to (``.server``)."""
    return connection.server


def queue_paused(connection: Connection) -> bool:
    """Whether websockets stopped reading because ``max_queue`` messages wait.

    ``Connection.recv_messages`` is the Assembler that holds received frames
    until the handler reads them; its ``paused`` flag is True from the moment
    it asked the transport to stop reading until it asked it to resume.
    """
    return connection.recv_messages.paused


def hook_queue_flow_control(
    connection: Connection, pause: Callable[[], Any], resume: Callable[[], Any]
) -> None:
    """Make websockets call ``pause``/``resume`` instead of the transport's.

    When more than ``max_queue`` frames wait for the handler, websockets' Assembler
    calls its ``pause`` callback (``transport.pause_reading`` by default), and
    ``resume`` once the handler caught up. Call this from ``connection_made``,
    after the base class made the Assembler.
    """
    assembler = connection.recv_messages
    assembler.pause = pause
    assembler.resume = resume


def write_pending(connection: Connection) -> None:
    """Write what the protocol has to send in one write, unless the TCP connection is lost.

    A replacement body for ``Connection.send_data``, which websockets calls
    after every change to the protocol (a frame to send, a ping to answer, a
    close). websockets writes each outgoing frame with its own
    ``transport.write``; once the TCP connection is lost, asyncio logs
    ``socket.send() raised exception.`` for every write after the fifth, so a
    client that sent 5000 pings and vanished makes thousands of lines. Here the
    frames go out in one write, and nothing is written once the transport is
    closing: the data is dropped, as the kernel would drop it.

    An empty chunk from ``data_to_send()`` means "end of stream": half-close.
    """
    chunks = protocol(connection).data_to_send()
    sink = connection.transport
    if not chunks or sink.is_closing():
        return
    data = b"".join(chunks)
    if data:
        sink.write(data)
    if not chunks[-1]:
        if sink.can_write_eof():
            if connection.debug:
                connection.logger.debug("x half-closing TCP connection")
            # As websockets: uvloop may raise here.
            with contextlib.suppress(Exception):
                sink.write_eof()
        else:  # pragma: no cover - TLS transports; the kit serves plain TCP
            if connection.debug:
                connection.logger.debug("x closing TCP connection")
            sink.close()


def close_frames(connection: Connection) -> tuple[Close | None, Close | None, bool]:
    """Return the close frames sent and received, and whether received came first.

    ``(sent, received, received_then_sent)`` from the sans-I/O protocol's
    ``close_sent``, ``close_rcvd`` and ``close_rcvd_then_sent``: None for a frame
    that never went or came (the TCP connection was lost first).
    """
    sans_io = protocol(connection)
    return (
        sans_io.close_sent,
        sans_io.close_rcvd,
        bool(sans_io.close_rcvd_then_sent),
    )


def close_exc(connection: Connection) -> ConnectionClosed:
    """Return the :exc:`ConnectionClosed` a closed connection raises on use.

    ``Protocol.close_exc`` is documented on the sans-I/O protocol; reaching it
    through ``Connection.protocol`` is not. Only meaningful once the state is
    CLOSED.
    """
    return protocol(connection).close_exc


def close_code_name(code: int) -> str | None:
    """Return a close code's name in words (``"going away"``), or None if unnamed.

    Uses :class:`websockets.frames.CloseCode` through the public :class:`Enum`
    API, instead of its ``_value2member_map_``.
    """
    try:
        member: Enum = CloseCode(code)
    except ValueError:
        return None
    return member.name.replace("_", " ").lower()
