"""Reference handlers: the finished echo server and broadcast room.

These are the answers the notebooks build up to, written the way the current
websockets documentation recommends. Read them after you have written your own.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosedError
from websockets.frames import CloseCode

from .internals import transport
from .limits import Limits, size

__all__ = ["Room", "echo"]


async def echo(websocket: ServerConnection) -> None:
    """Send every message back to the client that sent it, unchanged.

    Text stays text and binary stays binary. ``async for`` handles messages one
    at a time, in the order they arrived, and ends when the client disconnects.
    """
    try:
        async for message in websocket:
            await websocket.send(message)
    except ConnectionClosedError:
        # The client vanished or broke the protocol: websockets has already
        # closed the connection with the right code. Nothing is left to do.
        pass


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
      ``limits.max_queued`` bytes wait for it, it is closed with 1008.

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
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Room: {len(self.connected)} connected>"

    async def handler(self, websocket: ServerConnection) -> None:
        """Serve one client for as long as it stays connected."""
        self.connected[websocket] = None
        rate_limit = self.limits.rate_limit(now=asyncio.get_running_loop().time())
        try:
            async for message in websocket:
                if isinstance(message, bytes):
                    await websocket.close(
                        CloseCode.UNSUPPORTED_DATA,
                        "this room relays text messages only",
                    )
                    break
                now = asyncio.get_running_loop().time()
                if rate_limit is not None and not rate_limit.allow(now):
                    await websocket.close(
                        CloseCode.POLICY_VIOLATION, rate_limit.reason()
                    )
                    break
                self.relay(websocket, self.prefix + message)
        except ConnectionClosedError:
            pass  # The client vanished or broke the protocol; it is closed.
        finally:
            self.connected.pop(websocket, None)

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
            if queued > self.limits.max_queued:
                # Out of the room now, so that nothing more queues up for it.
                self.connected.pop(client, None)
                reason = (
                    f"too slow: {queued} bytes were waiting for you, more than "
                    f"the {size(self.limits.max_queued)} allowed; reconnect"
                )
                task = asyncio.create_task(self._close_slow(client, reason))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

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
