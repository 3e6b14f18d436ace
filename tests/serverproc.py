"""Run ``python -m wsteach serve ...`` as a real process, for tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

__all__ = ["ServerProcess"]

FACTOR = float(os.environ.get("WSTEACH_TIMEOUT_FACTOR", "1"))


class ServerProcess:
    """A ``wsteach serve`` subprocess, with its output read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.port = 0

    @classmethod
    async def start(cls, *args: str) -> ServerProcess:
        """Start ``wsteach serve *args`` and wait for its "press Ctrl+C" line."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsteach",
            "serve",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        server = cls(process)
        line = await server.wait_for("press Ctrl+C")
        match = re.search(r"listening on ws://\S+:(\d+)", "\n".join(server.lines))
        assert match, server.lines
        server.port = int(match.group(1))
        assert line
        return server

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def readline(self) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(10 * FACTOR):
            raw = await self.process.stdout.readline()
        if not raw:
            raise EOFError(f"the server exited; it printed: {self.lines}")
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def wait_for(self, text: str) -> str:
        """Read lines until one contains ``text``; return it."""
        for line in self.lines:
            if text in line:
                return line
        while text not in (line := await self.readline()):
            pass
        return line

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``, read the rest of the output, return the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
        assert self.process.stdout is not None
        async with asyncio.timeout(10 * FACTOR):
            rest = await self.process.stdout.read()
            status = await self.process.wait()
        self.lines += rest.decode().splitlines()
        return status

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
