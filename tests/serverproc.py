"""Run ``python -m wsteach serve ...`` as a real process, for tests.

Its output (stdout and stderr, interleaved as a terminal shows them) goes to a
file, never to a pipe: a server that prints thousands of lines must not block
on a pipe nobody reads, since that is exactly what some tests count.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile

from conftest import measured
from utils import FACTOR

__all__ = ["FACTOR", "ServerProcess"]


class ServerProcess:
    """A ``wsteach serve`` subprocess, with its output read line by line."""

    def __init__(self, process: asyncio.subprocess.Process, output) -> None:
        self.process = process
        self.output = output
        self.lines: list[str] = []
        self.port = 0
        self._offset = 0
        self._partial = b""
        self.signalled = False

    @classmethod
    async def start(
        cls, *args: str, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """Start ``wsteach serve *args`` and wait for its "press Ctrl+C" line."""
        output = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in kill()
            mode="w+b", prefix="wsteach-serve-", suffix=".log"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsteach",
            "serve",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            env=measured({**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}),
        )
        server = cls(process, output)
        try:
            await server.wait_for("press Ctrl+C")
        except BaseException:
            await server.kill()
            raise
        match = re.search(r"listening on ws://\S+:(\d+)", "\n".join(server.lines))
        assert match, server.lines
        server.port = int(match.group(1))
        return server

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _read(self) -> None:
        """Add the complete lines written since the last read to ``lines``."""
        with open(self.output.name, "rb") as file:
            file.seek(self._offset)
            data = file.read()
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines += [line.decode(errors="replace") for line in complete]

    async def wait_for(self, text: str, *, timeout: float = 10) -> str:
        """Wait until a line contains ``text``; return it."""
        async with asyncio.timeout(timeout * FACTOR):
            while True:
                self._read()
                for line in self.lines:
                    if text in line:
                        return line
                if self.process.returncode is not None:
                    self._read()
                    raise EOFError(f"the server exited; it printed: {self.lines}")
                await asyncio.sleep(0.02)

    async def quiet(self, *, still: float = 0.3, timeout: float = 10) -> None:
        """Wait until the output has not grown for ``still`` seconds."""
        async with asyncio.timeout(timeout * FACTOR):
            count, since = -1, 0.0
            while since < still:
                self._read()
                if len(self.lines) != count:
                    count, since = len(self.lines), 0.0
                await asyncio.sleep(0.05)
                since += 0.05

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        """Send ``signum`` to the server, as Ctrl+C or a service manager would."""
        self.signalled = True
        self.process.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` unless signalled already; return the exit status.

        A second signal could kill a server that has begun its clean exit.
        """
        if self.process.returncode is None and not self.signalled:
            self.send_signal(signum)
        async with asyncio.timeout(10 * FACTOR):
            status = await self.process.wait()
        self._read()
        if self._partial:
            self.lines.append(self._partial.decode(errors="replace"))
            self._partial = b""
        self.output.close()
        return status

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.output.close()
