#!/usr/bin/env python
"""Client: says hello, then prints every message until the server closes."""

import asyncio
import os

from websockets.asyncio.client import connect

PORT = int(os.environ.get("PORT", 7890))


async def listen():
    # 127.0.0.1 rather than localhost: one address, no IPv6 detour.
    async with connect(f"ws://127.0.0.1:{PORT}") as websocket:
        await websocket.send("Hello server")
        async for message in websocket:
            print(message, flush=True)


if __name__ == "__main__":
    asyncio.run(listen())
