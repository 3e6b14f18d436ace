#!/usr/bin/env python
"""Echo server: answers every message with "Pong: " + message."""

import asyncio
import os

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

# Any free port between 1024 and 65535 works; clients must use the same one.
PORT = int(os.environ.get("PORT", 7890))


async def echo(websocket):
    print("A client just connected")
    try:
        async for message in websocket:
            print("Received message from client: " + message)
            await websocket.send("Pong: " + message)
    except ConnectionClosed:
        # Raised when the client vanishes without a closing handshake.
        pass
    print("A client just disconnected")


async def main():
    async with serve(echo, "localhost", PORT) as server:
        print(f"Server listening on port {PORT}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
