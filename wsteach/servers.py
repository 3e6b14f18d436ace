"""Reference handlers: the finished echo server and broadcast room.

These are the answers the notebooks build up to, written the way the current
websockets documentation recommends. Read them after you have written your own.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

__all__ = ["Room", "echo"]


async def echo(websocket: ServerConnection) -> None:
    """Send every message back to the client that sent it, unchanged.

    Text stays text and binary stays binary. ``async for`` handles messages one
    at a time, in the order they arrived, and ends when the client disconnects.
    """
    async for message in websocket:
        await websocket.send(message)


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

    The room relays text only: a binary message closes its sender's connection
    with code 1003 (unsupported data) and a reason that says so.
    """

    def __init__(self, prefix: str = "Someone said: ") -> None:
        self.prefix = prefix
        # A dict used as a set: same `in`, `len` and iteration, but it remembers
        # the order clients joined, so messages fan out in that order and a
        # trace of the same scenario reads the same every run.
        self.connected: dict[ServerConnection, None] = {}

    def __repr__(self) -> str:
        return f"<Room: {len(self.connected)} connected>"

    async def handler(self, websocket: ServerConnection) -> None:
        """Serve one client for as long as it stays connected."""
        self.connected[websocket] = None
        try:
            async for message in websocket:
                if isinstance(message, bytes):
                    await websocket.close(
                        CloseCode.UNSUPPORTED_DATA,
                        "this room relays text messages only",
                    )
                    break
                others = [
                    client for client in self.connected if client is not websocket
                ]
                broadcast(others, self.prefix + message)
        except ConnectionClosed:
            pass  # The client vanished without a closing handshake: nothing to report.
        finally:
            self.connected.pop(websocket, None)
