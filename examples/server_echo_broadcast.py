#!/usr/bin/env python
"""Broadcast server: relays each message to every other connected client."""

import asyncio
import os

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

PORT = int(os.environ.get("PORT", 7890))

connected = set()


async def relay(websocket):
    connected.add(websocket)
    print(f"A client just connected ({len(connected)} online)", flush=True)
    try:
        async for message in websocket:
            # broadcast() doesn't wait for slow clients and skips closed ones,
            # so one of them can't hold back or crash the room.
            others = [conn for conn in connected if conn is not websocket]
            broadcast(others, "Someone said: " + message)
    except ConnectionClosed:
        # The client vanished without a closing handshake (a killed terminal,
        # notebook 03): not a bug in this server, so no traceback in its log.
        pass
    finally:
        # Runs however the client leaves, even on an error.
        connected.remove(websocket)
        print(f"A client just disconnected ({len(connected)} online)", flush=True)


async def main():
    async with serve(relay, "localhost", PORT) as server:
        print(f"Server listening on port {PORT}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
