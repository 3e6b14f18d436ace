"""Classroom limits: what keeps one student's mistake from hurting the room.

Forty students share one server. One writes ``while True: await ws.send("x")``,
one pastes a 50 MB file, one closes a laptop mid-message. :class:`Limits`
holds the numbers that contain each of them, with defaults for a classroom:

========================  ==========  ============================================
limit                     default     past it
========================  ==========  ============================================
``max_clients``           100         the handshake gets HTTP 503 and a reason
``max_message``           64 KiB      close 1009 (message too big)
``rate`` / ``burst``      10/s, 20    close 1008 (policy violation) and a reason
``max_queued``            1 MiB       a slow reader is closed with 1008, the room
                                      goes on
``ping_interval``         20 s        a peer that doesn't answer a ping within
``ping_timeout``          20 s        ``ping_timeout`` is disconnected
``open_timeout``          10 s        a handshake that never finishes is dropped
========================  ==========  ============================================

Most of them are websockets' own options (``max_size``, ``max_queue``,
``write_limit``, ``ping_interval``, ``process_request``…):
:meth:`Limits.serve_options` turns the numbers into keyword arguments for
:func:`websockets.asyncio.server.serve` (or :func:`wsteach.start`). The rate
limit and the slow-reader bound need to know about messages and rooms, so
:class:`wsteach.Room` applies them itself.
"""

from __future__ import annotations

import asyncio
import functools
import math
import socket
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.protocol import State

from . import internals
from .internals import hook_queue_flow_control
from .process_request import ProcessRequest, chain, wants_websocket

__all__ = [
    "NO_LIMITS",
    "ClassroomConnection",
    "Limits",
    "RateLimit",
    "client_cap",
    "close_for_limit",
    "size",
]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Limits:
    """The limits a server enforces; :obj:`None` turns one off.

    Attributes:
        max_clients: Clients connected at once. One more gets HTTP 503.
        max_message: Size of an incoming message, in bytes. A bigger one closes
            its sender's connection with 1009.
        rate: Messages per second a client may send on average. Faster closes
            its connection with 1008 and a reason.
        burst: Messages a client may send in a quick burst above ``rate``.
        max_queued: Bytes that may wait in the server's buffer for one client
            that reads slower than the room talks. Past it, that client is
            closed with 1008 and a reason, and the room goes on.
        ping_interval: Seconds between keepalive pings.
        ping_timeout: Seconds to wait for the pong before dropping the peer.
        open_timeout: Seconds a client has to finish the opening handshake.
        close_timeout: Seconds to wait for a closing handshake before dropping
            the TCP connection.
    """

    max_clients: int | None = 100
    max_message: int | None = 64 * KiB
    rate: float | None = 10.0
    burst: int = 20
    max_queued: int | None = 1 * MiB
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    open_timeout: float | None = 10.0
    close_timeout: float | None = 2.0

    def __post_init__(self) -> None:
        for name in ("max_clients", "max_message", "max_queued"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(
                    f"{name} must be a positive whole number or None, got {value!r}"
                )
        for name in (
            "rate",
            "ping_interval",
            "ping_timeout",
            "open_timeout",
            "close_timeout",
        ):
            value = getattr(self, name)
            if value is not None and not (0 < value < math.inf):
                raise ValueError(
                    f"{name} must be a positive finite number or None, got {value!r}"
                )
        if not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(
                f"burst must be a whole number, at least 1, got {self.burst!r}"
            )

    def replace(self, **changes: Any) -> Limits:
        """Return a copy with some limits changed."""
        return replace(self, **changes)

    def rate_limit(self, now: float) -> RateLimit | None:
        """Return a fresh :class:`RateLimit` for one client, or None if off."""
        if self.rate is None:
            return None
        return RateLimit(self.rate, self.burst, now)

    def serve_options(
        self, *, web: bool = False, pages: ProcessRequest | None = None
    ) -> dict[str, Any]:
        """Return keyword arguments for :func:`websockets.asyncio.server.serve`.

        Args:
            web: Also answer plain HTTP GET requests with the chat page (the
                page is served even when the room is full).
            pages: Another ``process_request`` hook, asked first (the class
                board's, :meth:`wsteach.classboard.ClassRoom.process_request`).
                What it answers is served even when the room is full.
        """
        page: ProcessRequest | None = None
        if web:
            from .web import serve_page

            page = serve_page
        if pages is not None:
            page = pages if page is None else _first_answer(pages, page)
        options: dict[str, Any] = {
            "max_size": self.max_message,
            # At most 16 incoming messages wait for the handler; then websockets
            # stops reading, and TCP slows the sender down.
            "max_queue": 16,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "open_timeout": self.open_timeout,
            "close_timeout": self.close_timeout,
            "create_connection": ClassroomConnection,
        }
        cap = None if self.max_clients is None else client_cap(self.max_clients)
        hook = chain(page, cap)  # The order of wsteach.process_request.
        if hook is not None:
            options["process_request"] = hook
        return options

    def describe(self) -> str:
        """Say the limits in force in one line, for the server's terminal."""
        parts = []
        if self.max_clients is not None:
            parts.append(f"at most {self.max_clients} clients")
        else:
            parts.append("any number of clients")
        if self.max_message is not None:
            parts.append(f"messages up to {size(self.max_message)}")
        if self.rate is not None:
            parts.append(
                f"{self.rate:g} messages/s per client (bursts of {self.burst})"
            )
        if self.max_queued is not None:
            parts.append(f"{size(self.max_queued)} queued for a slow reader")
        if self.ping_interval is not None:
            timeout = (
                f", {self.ping_timeout:g} s to answer"
                if self.ping_timeout is not None
                else ""
            )
            parts.append(f"ping every {self.ping_interval:g} s{timeout}")
        if parts == ["any number of clients"]:
            return "limits: none"
        return "limits: " + " · ".join(parts)


def _first_answer(*hooks: ProcessRequest) -> ProcessRequest:
    """One ``process_request`` hook: the first of ``hooks`` that answers wins."""

    def ask(connection: ServerConnection, request: Request) -> Response | None:
        for hook in hooks:
            response = hook(connection, request)
            if response is not None:
                return response
        return None

    return ask


NO_LIMITS = Limits(
    max_clients=None,
    max_message=None,
    rate=None,
    max_queued=None,
    ping_interval=None,
    ping_timeout=None,
)
"""Every limit off: for benchmarks and experiments, never for a classroom."""


def size(count: int) -> str:
    """Write a number of bytes the way people say it: ``64 KiB``, ``1 MiB``."""
    for unit, scale in (("MiB", MiB), ("KiB", KiB)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


class RateLimit:
    """A token bucket: ``rate`` messages per second, bursts of up to ``burst``.

    It does no I/O and reads no clock: callers pass the time, so it is tested
    without a network or a sleep. The bucket starts full, gains ``rate`` tokens
    per second up to ``burst``, and each message takes one token.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def allow(self, now: float) -> bool:
        """Take a token for a message arriving at ``now``; False if none is left."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def reason(self) -> str:
        """The close reason a client reads when it goes over the limit."""
        return (
            f"too many messages: the limit is {self.rate:g} per second "
            f"(bursts of {self.burst}); slow down and reconnect"
        )


def client_cap(max_clients: int) -> ProcessRequest:
    """Make a ``process_request`` hook that refuses clients past ``max_clients``.

    The refused client gets HTTP 503 (service unavailable) with a reason in the
    body, before any WebSocket is opened. Only WebSocket handshakes count: a
    plain HTTP request (the chat page) goes on to the next hook, whatever
    the order of the chain (see :mod:`wsteach.process_request`).
    """
    return functools.partial(_refuse_when_full, max_clients)


def _refuse_when_full(
    max_clients: int, connection: ServerConnection, request: Request
) -> Response | None:
    if not wants_websocket(request):
        return None
    # websockets counts a connection from the moment it answers its handshake,
    # with no await between this check and that moment, so two clients
    # arriving together cannot both take the last place.
    if len(internals.server_of(connection).connections) >= max_clients:
        return connection.respond(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"the server is full: {max_clients} clients are connected, "
            "the most it accepts; try again later\n",
        )
    return None


class ClassroomConnection(ServerConnection):
    """A server connection that one misbehaving client cannot use against the room.

    Five changes to :class:`~websockets.asyncio.server.ServerConnection`:

    * websockets answers each ping with a pong as soon as it reads it, without
      backpressure, so a client that sends pings and never reads the pongs
      would make them pile up in the server's memory. This connection stops
      reading from the network while its write buffer is above
      ``write_limit``, and resumes only when nothing else holds reading
      paused: not while ``max_queue`` messages wait for the handler, and not
      while writing is still paused, whichever of them ends first. TCP slows
      that client down instead.
    * :meth:`close_for_limit` stops reading before it sends the close frame.
      A client in a tight ``await ws.send(...)`` loop never waits, so it never
      reads what the server sends; once the server stops reading, its writes
      block, it reads, and it learns the close code and reason instead of
      seeing the connection reset (1006).
    * The socket's receive buffer is fixed at :attr:`receive_buffer` bytes
      (the system would grow it to megabytes), so that a flooder's writes
      block soon after the server stops reading.
    * Outgoing frames are written in one write, and nothing is written once
      the TCP connection is lost (see
      :func:`wsteach.internals.write_pending`): a client that sends 5000 pings
      and vanishes no longer makes asyncio log thousands of
      ``socket.send() raised exception.`` lines.
    * :meth:`close` first waits for room in the write buffer, with no time
      limit: a client that never reads would keep it waiting, and a server
      shutdown with it, forever. Here, after ``close_timeout`` seconds, the
      TCP connection is dropped.
    """

    receive_buffer = 64 * KiB
    """The socket's receive buffer, fixed: what a flooder can send unread."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and self.receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        super().connection_made(transport)
        # Why reading is paused; the network is read only when this is empty.
        self.reading_held: set[str] = set()
        hook_queue_flow_control(
            self, lambda: self._hold("queue"), lambda: self._release("queue")
        )

    def _hold(self, why: str) -> None:
        self.reading_held.add(why)
        internals.transport(self).pause_reading()

    def _release(self, why: str) -> None:
        self.reading_held.discard(why)
        if not self.reading_held:
            internals.transport(self).resume_reading()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._hold("writing")

    def resume_writing(self) -> None:
        super().resume_writing()
        self._release("writing")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            async with asyncio.timeout(self.close_timeout):
                await super().close(code, reason)
        except TimeoutError:
            internals.transport(self).abort()
            await self.wait_closed()

    def send_data(self) -> None:
        internals.write_pending(self)

    async def close_for_limit(self, code: int, reason: str) -> None:
        """Close a client that went over a limit, so that it can read why.

        Reading stops, then the close frame goes out. A client that is still
        sending fills the socket's receive buffer; its writes then block,
        which makes even a client in a tight ``await ws.send(...)`` loop read
        the close frame. After ``close_timeout`` the TCP connection is
        dropped, as websockets does when no close reply came, and the client's
        blocked ``send`` raises
        :exc:`~websockets.exceptions.ConnectionClosedError` with this code and
        reason. A client that isn't flooding leaves the buffer nearly empty:
        reading resumes, and the closing handshake ends as usual.

        Reading never resumes while the buffer is full: the flooder's buffered
        writes would then drain after its transport closed, which makes
        asyncio's ``abort()`` raise ``AttributeError`` in the client.
        """
        if self.state is not State.OPEN:
            await self.close(code, reason)
            return
        self._hold("closing")
        watch = asyncio.create_task(self._resume_unless_flooding())
        try:
            await self.close(code, reason)
        finally:
            watch.cancel()

    async def _resume_unless_flooding(self, every: float = 0.05) -> None:
        """Resume reading once the unread data stops growing, well below full."""
        most = self.receive_buffer or MiB
        previous = -1
        while "closing" in self.reading_held:
            await asyncio.sleep(every)
            queued = unread_bytes(internals.transport(self), most)
            if queued == previous and queued < most // 2:
                # The handler reads no more messages: a full queue of them
                # must not keep the close reply unread.
                self.reading_held.discard("queue")
                self._release("closing")
            previous = queued


def unread_bytes(transport: asyncio.BaseTransport, most: int) -> int:
    """Count the bytes (up to ``most``) the system holds unread for a TCP transport.

    It peeks (``MSG_PEEK``) through a duplicate of the socket: nothing is
    consumed, and asyncio's own socket object is left alone.
    """
    sock = transport.get_extra_info("socket")
    try:
        with sock.dup() as peek:  # socket.dup works on Windows too.
            peek.setblocking(False)
            return len(peek.recv(most, socket.MSG_PEEK))
    except OSError:
        # Nothing to read (BlockingIOError), or the peer reset the connection:
        # either way reading again lets asyncio find out.
        return 0


async def close_for_limit(websocket: ServerConnection, code: int, reason: str) -> None:
    """Close ``websocket`` with ``code`` and ``reason``, so that a flooder reads them.

    A :class:`ClassroomConnection` stops reading first (see
    :meth:`ClassroomConnection.close_for_limit`); any other connection closes
    as websockets does, and a client that only sends may see 1006 instead.
    """
    if isinstance(websocket, ClassroomConnection):
        await websocket.close_for_limit(code, reason)
    else:
        await websocket.close(code, reason)
