"""Graceful shutdown under load: SIGTERM with 100 clients connected."""

from __future__ import annotations

import asyncio
import signal

import pytest
from serverproc import ServerProcess
from utils import FACTOR
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_closes_every_client_with_1001(signum: int) -> None:
    """100 connected clients all get 1001 within 2 s, and the exit status is 0."""
    server = await ServerProcess.start(
        "broadcast", "--port", "0", "--max-clients", "150"
    )
    try:
        clients = await asyncio.gather(*(connect(server.url) for _ in range(100)))
        await clients[0].send("hello")  # The room is busy, not idle.
        assert await clients[1].recv() == "Someone said: hello"
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        server.send_signal(signum)

        async def closed_with(client) -> int | None:
            try:
                while True:
                    await client.recv()
            except ConnectionClosedOK:
                pass
            return client.close_code

        codes = await asyncio.wait_for(
            asyncio.gather(*(closed_with(c) for c in clients)), 2 * FACTOR
        )
        status = await server.stop()
        elapsed = loop.time() - signalled
    finally:
        await server.kill()
    assert codes == [1001] * 100
    assert status == 0
    assert elapsed < 2 * FACTOR
    assert any("closing 100 connection(s) with 1001" in line for line in server.lines)
    assert not any("Traceback" in line for line in server.lines), server.lines
