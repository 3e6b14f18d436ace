"""Exercise for notebook 07: port the video's ``server_echo.py`` to today's API.

- :data:`port_the_script`: the student's script, run as a real process with
  ``python``, must behave as the video's did in 2021: print its banner, answer
  ``"Pong: " + message``, print what the video printed on connect, message
  and disconnect, and stop on Ctrl+C.

Unlike the other exercises, the answer is a file: ``check`` copies it with
port 7890 replaced by a free one, runs it, and talks to it, so whatever holds
port 7890 doesn't matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect

from ..clients import TIMEOUT_FACTOR
from ._core import FAILED, NOT_ATTEMPTED, PASSED, Mismatch, Result, _hint, _show_code

__all__ = ["ScriptExercise", "port_the_script"]

_STUB = re.compile(r"^\s*(#.*)?$|^\s*\.\.\.\s*$")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ScriptRun:
    """A script under test, running: its port and what it printed so far."""

    process: asyncio.subprocess.Process
    port: int
    output: list[str] = field(default_factory=list)
    timeout: float = 5.0 * TIMEOUT_FACTOR

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace").rstrip("\n"))

    async def printed(self, text: str) -> None:
        """Wait until a line of output is ``text``; raise :exc:`Mismatch` if not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while text not in self.output:
            if self.process.returncode is not None or loop.time() > deadline:
                last = self.output[-1] if self.output else "nothing"
                raise Mismatch(text, last, "the script printed")
            await asyncio.sleep(0.02)


Scenario = Callable[[ScriptRun], Awaitable[None]]


class ScriptExercise:
    """An exercise whose answer is a script: run it for real, then talk to it.

    Args:
        number: Shown in the header, e.g. ``"7.1"``.
        title: Shown in the header.
        scenarios: ``(description, coroutine function)`` pairs, played in order
            against one run of the script.
        hints: Hint 1 names the idea, hint 2 the construct.
        solution: The solution script, as shown by :meth:`solution`.
    """

    def __init__(
        self,
        number: str,
        title: str,
        *,
        scenarios: list[tuple[str, Scenario]],
        hints: list[str],
        solution: str,
    ) -> None:
        self.number = number
        self.title = title
        self.scenarios = scenarios
        self.hints = hints
        self.code = solution.strip("\n")

    def __repr__(self) -> str:
        return f"<ScriptExercise {self.number} · {self.title}>"

    async def results(self, path: str | os.PathLike[str]) -> list[Result]:
        """Run the script at ``path`` and play every scenario against it."""
        names = [name for name, _ in self.scenarios]
        script = Path(path)
        if not script.is_file():  # noqa: ASYNC240 - one stat
            detail = f"there is no file {script}: run its %%writefile cell first"
            return [Result(name, FAILED, detail) for name in names]
        text = script.read_text(encoding="utf-8")  # noqa: ASYNC240 - a small file
        if all(_STUB.match(line) for line in text.splitlines()):
            detail = f"write {script.name} in its %%writefile cell, then run both cells"
            return [Result(name, NOT_ATTEMPTED, detail) for name in names]
        port = _free_port()
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / script.name
            copy.write_text(text.replace("7890", str(port)), encoding="utf-8")
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-u",
                str(copy),
                cwd=folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            run = ScriptRun(process, port)
            reader = asyncio.create_task(run._read())
            results = []
            try:
                for name, scenario in self.scenarios:
                    results.append(await self._play(name, scenario, run))
            finally:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                await process.wait()
                await reader
        return results

    async def _play(self, name: str, scenario: Scenario, run: ScriptRun) -> Result:
        try:
            async with asyncio.timeout(run.timeout * 2):
                await scenario(run)
        except Mismatch as exc:
            detail = str(exc)
        except ConnectionRefusedError:
            detail = f"nothing listens on port {run.port}: the script doesn't serve"
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
        else:
            return Result(name, PASSED)
        # A script that is dying (a traceback after its banner): let it end.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.process.wait()), 1)
        if run.process.returncode is not None:
            detail += f" — the script ended (exit code {run.process.returncode})"
            printed = [line for line in run.output if line.strip()]
            if printed:
                detail += f"; its last line: {printed[-1]}"
        return Result(name, FAILED, detail)

    async def check(self, path: str | os.PathLike[str]) -> None:
        """Check the script at ``path`` and print one line per scenario. Never raises."""
        print(f"Exercise {self.number} · {self.title}")
        try:
            results = await self.results(path)
        except Exception as exc:  # pragma: no cover - a bug in the exercise itself
            print(f"✗ the check itself failed: {type(exc).__name__}: {exc}")
            return
        for result in results:
            print(f"  {result}")
        if results and all(r.status == PASSED for r in results):
            print("  all passed: well done!")

    def hint(self, level: int = 1) -> None:
        """Print hint number ``level`` (1 is the gentlest)."""
        _hint(f"exercise {self.number}", self.hints, level)

    def solution(self) -> None:
        """Show the solution's code."""
        _show_code(f"Solution to exercise {self.number} · {self.title}", self.code)


async def _starts(run: ScriptRun) -> None:
    await run.printed(f"Server listening on Port {run.port}")
    # Listening, not only printing: the banner comes before serve() in the video.
    async with connect(run.url, open_timeout=run.timeout):
        pass


async def _pong(run: ScriptRun) -> None:
    async with connect(run.url, open_timeout=run.timeout) as websocket:
        await websocket.send("Hello server")
        reply = await asyncio.wait_for(websocket.recv(), run.timeout)
        if reply != "Pong: Hello server":
            raise Mismatch("Pong: Hello server", reply, "the client received")
        await run.printed("A client just connected")
        await run.printed("Received message from client: Hello server")


async def _vanish(run: ScriptRun) -> None:
    websocket = await connect(run.url, open_timeout=run.timeout)
    # Like Ctrl+C in the client's terminal: the connection drops, no handshake.
    websocket.transport.abort()
    await run.printed("A client just disconnected")


async def _ctrl_c(run: ScriptRun) -> None:
    run.process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(run.process.wait(), run.timeout)
    except TimeoutError:
        raise Mismatch(
            "the script stops", "it still runs", "after Ctrl+C (SIGINT)"
        ) from None


port_the_script = ScriptExercise(
    "7.1",
    "Port the video's server_echo.py",
    scenarios=[
        ("it prints its banner and listens on the port", _starts),
        (
            '"Hello server" gets "Pong: Hello server", and the server prints the video\'s lines',
            _pong,
        ),
        ('a client that vanishes: "A client just disconnected"', _vanish),
        ("Ctrl+C stops it", _ctrl_c),
    ],
    hints=[
        "keep the video's prints and its handler's body; change what this notebook "
        "showed failing: the handler's parameters, and how the server is started "
        "and kept running",
        "one parameter, (websocket); an async def main() with async with "
        "websockets.serve(...) as server: and await server.serve_forever(); "
        "asyncio.run(main()) at the bottom",
    ],
    solution="""
%%writefile video_server_ported.py
import asyncio

import websockets

PORT = 7890


async def echo(websocket):
    print("A client just connected")
    try:
        async for message in websocket:
            print("Received message from client: " + message)
            await websocket.send("Pong: " + message)
    except websockets.exceptions.ConnectionClosed:
        print("A client just disconnected")


async def main():
    async with websockets.serve(echo, "localhost", PORT) as server:
        print("Server listening on Port " + str(PORT))
        await server.serve_forever()


asyncio.run(main())
""",
)
