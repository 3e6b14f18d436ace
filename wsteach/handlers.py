"""Reference handlers: the finished echo server and broadcast room.

These are the answers the notebooks build up to, written the way the current
websockets documentation recommends. Read them after you have written your own.

The classroom variants live here too, so that each server's behaviour has one
home: :func:`classroom_echo` is :func:`echo` with the classroom's rate limit,
and :func:`announce` wraps any handler to print a line when a client connects
and disconnects, as ``wsteach serve`` does.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosedError
from websockets.frames import CloseCode
from websockets.protocol import State

from .handler_check import handler_name
from .internals import close_frames, transport
from .limits import Limits, RateLimit, close_for_limit, size
from .names import client_name

__all__ = [
    "Room",
    "announce",
    "classroom_echo",
    "echo",
    "how_closed",
    "who",
]

Handler = Callable[[ServerConnection], Awaitable[None]]


async def echo(websocket: ServerConnection, *, limits: Limits | None = None) -> None:
    """Send every message back to the client that sent it, unchanged.

    Text stays text and binary stays binary. ``async for`` handles messages one
    at a time, in the order they arrived, and ends when the client disconnects.

    Args:
        websocket: The connection, as websockets passes it.
        limits: If given and its ``rate`` is set, a client sending faster is
            closed with 1008 and a reason (see :func:`classroom_echo`).
    """
    rate_limit = None if limits is None else _rate_limit(limits)
    try:
        async for message in websocket:
            if await _over_rate(websocket, rate_limit):
                break
            await websocket.send(message)
    except ConnectionClosedError:
        # The client vanished or broke the protocol: websockets has already
        # closed the connection with the right code. Nothing is left to do.
        pass


def classroom_echo(limits: Limits) -> Handler:
    """Return :func:`echo` with the rate limit of ``limits``: a flood closes with 1008.

    The other limits need no code in a handler: websockets enforces them (see
    :meth:`Limits.serve_options`). With no rate limit, this is :func:`echo` itself.
    """
    if limits.rate is None:
        return echo
    return functools.partial(echo, limits=limits)


def _rate_limit(limits: Limits) -> RateLimit | None:
    return limits.rate_limit(now=asyncio.get_running_loop().time())


async def _over_rate(websocket: ServerConnection, rate_limit: RateLimit | None) -> bool:
    """Take a token for one message; when none is left, close with 1008 and say so."""
    if rate_limit is None or rate_limit.allow(asyncio.get_running_loop().time()):
        return False
    await close_for_limit(websocket, CloseCode.POLICY_VIOLATION, rate_limit.reason())
    return True


class Room:
    """A broadcast room: each text message goes to every *other* client.

    ``room.handler`` is the connection handler to serve. It adds the client to
    :attr:`connected`, relays every text message it sends to all the other
    clients as ``prefix + message``, and removes the client in ``finally``, so
    a client that vanishes mid-message is removed too.

    Relaying uses :func:`websockets.asyncio.server.broadcast`, which writes to
    every connection without waiting: one slow or dead client cannot hold back
    the others, and the set is copied before it is iterated, so clients joining
    or leaving meanwhile cause no ``RuntimeError: Set changed size during
    iteration``.

    Three rules keep one client from spoiling the room (see
    :class:`wsteach.limits.Limits` for the numbers):

    * a binary message closes its sender with 1003 (unsupported data): the
      room relays text only;
    * a client sending faster than ``limits.rate`` messages per second (after a
      burst of ``limits.burst``) is closed with 1008 (policy violation);
    * ``broadcast`` has no backpressure, so a client that reads slower than
      the room talks would make messages pile up in memory. Once more than
      ``limits.max_queued`` bytes wait for it, it is closed with 1008. That
      close runs in a task; the slow client's own handler waits for it before
      it returns, so the server's shutdown waits for it too.

    Args:
        prefix: Put before every relayed message.
        limits: The rate limit and slow-reader bound; classroom defaults if
            omitted, :data:`wsteach.limits.NO_LIMITS` for none.
    """

    def __init__(
        self, prefix: str = "Someone said: ", *, limits: Limits | None = None
    ) -> None:
        self.prefix = prefix
        self.limits = Limits() if limits is None else limits
        # A dict used as a set: same `in`, `len` and iteration, but it remembers
        # the order clients joined, so messages fan out in that order and a
        # trace of the same scenario reads the same every run.
        self.connected: dict[ServerConnection, None] = {}
        # Slow readers being closed, each awaited by its own handler.
        self._closing: dict[ServerConnection, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        return f"<Room: {len(self.connected)} connected>"

    async def handler(self, websocket: ServerConnection) -> None:
        """Serve one client for as long as it stays connected."""
        self.connected[websocket] = None
        rate_limit = _rate_limit(self.limits)
        try:
            async for message in websocket:
                if isinstance(message, bytes):
                    await close_for_limit(
                        websocket,
                        CloseCode.UNSUPPORTED_DATA,
                        "this room relays text messages only",
                    )
                    break
                if await _over_rate(websocket, rate_limit):
                    break
                self.relay(websocket, self.prefix + message)
        except ConnectionClosedError:
            pass  # The client vanished or broke the protocol; it is closed.
        finally:
            self.connected.pop(websocket, None)
            closing = self._closing.pop(websocket, None)
            if closing is not None:
                await closing

    def relay(self, sender: ServerConnection, message: str) -> None:
        """Send ``message`` to every client but ``sender``, then drop slow readers."""
        others = [client for client in self.connected if client is not sender]
        broadcast(others, message)
        self.close_slow_readers(others)

    def close_slow_readers(self, clients: list[ServerConnection]) -> None:
        """Close each client with more than ``limits.max_queued`` bytes waiting."""
        if self.limits.max_queued is None:
            return
        for client in clients:
            queued = transport(client).get_write_buffer_size()
            if queued > self.limits.max_queued and client in self.connected:
                # Out of the room now, so that nothing more queues up for it.
                self.connected.pop(client, None)
                reason = (
                    f"too slow: {queued} bytes were waiting for you, more than "
                    f"the {size(self.limits.max_queued)} allowed; reconnect"
                )
                self._closing[client] = asyncio.create_task(
                    self._close_slow(client, reason)
                )

    async def _close_slow(self, client: ServerConnection, reason: str) -> None:
        """Close a slow reader; drop it if it doesn't take the close frame in time."""
        try:
            # The close frame waits behind everything queued, and close()
            # waits for room in the buffer first: without a timeout, a reader
            # that never reads would keep it waiting forever.
            async with asyncio.timeout(self.limits.close_timeout):
                await client.close(CloseCode.POLICY_VIOLATION, reason)
        except TimeoutError:
            transport(client).abort()


# What `wsteach serve` prints about its clients.


def who(websocket: ServerConnection) -> str:
    """Say who a client is: ``ada (127.0.0.1:50112)``, or just the address.

    The name comes from :func:`wsteach.names.client_name`, which never
    raises: a repeated or malformed ``X-Wsteach-Name`` header shows the
    address only.
    """
    host, port, *_ = websocket.remote_address
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = client_name(websocket.request)
    return f"{name} ({address})" if name else address


def how_closed(websocket: ServerConnection) -> str:
    """Say who closed a connection, and with which code and reason."""
    if websocket.state is not State.CLOSED:
        return "closing"
    sent, received, received_first = close_frames(websocket)
    if sent is None and received is None:
        return "connection lost"
    if received is not None and (sent is None or received_first):
        return f"client closed: {received}"
    reply = "" if received is not None else ", no reply"
    return f"server closed: {sent}{reply}"


def announce(handler: Handler) -> Handler:
    """Wrap ``handler`` to print a line when a client connects and disconnects.

    The disconnect line says how the connection ended, or that the handler
    crashed, with its exception; the crash still reaches websockets, which
    logs it and closes the connection with 1011.
    """
    online = 0

    async def announced(websocket: ServerConnection) -> None:
        nonlocal online
        name = who(websocket)
        online += 1
        print(f"+ {name} connected · {online} online", flush=True)
        crash = ""
        try:
            await handler(websocket)
            # What websockets does once the handler returns; done here so the
            # line below can say how the connection ended.
            await websocket.close()
        except Exception as exc:
            # Said here, then raised: websockets logs "connection handler
            # failed" with the traceback and closes with 1011.
            crash = f"the handler crashed: {type(exc).__name__}: {exc}"
            raise
        finally:
            online -= 1
            ending = crash or how_closed(websocket)
            print(f"- {name} disconnected ({ending}) · {online} online", flush=True)

    announced.__qualname__ = handler_name(handler)
    return announced
