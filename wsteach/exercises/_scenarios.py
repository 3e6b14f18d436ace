"""What several exercises' scenarios use: waiting for a message, a stalled client.

Exercise modules import from here and from :mod:`._core`, never from each
other. Nothing here is meant for a notebook: notebooks show the plain
websockets code that does the same, and import only the exercises.

- :func:`next_message` and :func:`hears`: a client's next message, or a
  "nothing arrived" marker that reads well in a failed check.
- :func:`until`, :func:`caught_up`: polls with a deadline, instead of sleeps.
- :func:`leave`: close a client and wait until the server ran its ``finally``.
- :func:`load`, :func:`settled`, :func:`stalled_client`: fill the buffers
  between a server and a client that stopped reading, so that the server's
  ``await conn.send(...)`` has to wait.
- :func:`hears_after_load` and :func:`still_connected`: what the
  under-load scenarios check afterwards.
- :class:`ScriptExercise`: an exercise whose answer is a script, run as a
  real process on a free port and talked to (notebooks 04 and 07).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.protocol import State

from ..clients import Client
from ..internals import close_frames, handler_tasks, transport
from ..listening import free_port
from ..names import NAME_HEADER
from ..processes import forget_group, own_group, signal_group, watch_group
from ..timeouts import TIMEOUT_FACTOR
from ._core import (
    FAILED,
    NOT_ATTEMPTED,
    PASSED,
    Checked,
    Mismatch,
    Result,
    Run,
    expect,
)

__all__ = [
    "LOAD_MESSAGES",
    "Nothing",
    "ScriptExercise",
    "ScriptRun",
    "StalledClient",
    "caught_up",
    "hears",
    "hears_after_load",
    "is_load",
    "leave",
    "load",
    "next_message",
    "script_stops_on_ctrl_c",
    "settled",
    "stalled_client",
    "still_connected",
    "until",
]

LOAD_MESSAGES = 100
"""How many messages :func:`load` returns."""

_LOAD_SIZE = 100_000  # Characters per message: LOAD_MESSAGES of them is 10 MB.


class Nothing:
    """Stands for "no message arrived" in an expected/received line."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"nothing (waited {self.timeout:g} s)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Nothing)

    __hash__ = None  # type: ignore[assignment]


async def next_message(client: Client, timeout: float) -> Any:
    """Return ``client``'s next message, or a :class:`Nothing` after ``timeout``.

    A closed connection counts as nothing arriving, so a scenario reports
    ``expected 'x', received nothing`` instead of a traceback.
    """
    try:
        return await client.recv(timeout)
    except Exception:
        return Nothing(timeout)


async def hears(client: Client, expected: str, timeout: float) -> None:
    """Raise :exc:`Mismatch` unless ``client``'s next message is ``expected``."""
    expect(await next_message(client, timeout), expected, f"{client.name} received")


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Wait until ``condition()`` is true, ``timeout`` seconds at most; return it.

    Polling: what it looks at changes in the background (the server's
    handlers, a client's reader).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return condition()


async def caught_up(run: Run) -> bool:
    """Wait until the handler of every client that left has returned.

    That is, each handler still running has its client connected: the
    ``finally`` of those whose client left has run. ``run.timeout`` at most.
    """
    server = run.server
    assert server is not None
    return await until(
        lambda: len(handler_tasks(server.server)) <= len(server.connections),
        run.timeout,
    )


async def leave(client: Client, run: Run) -> None:
    """Close ``client`` and wait until the server ran its handler's ``finally``."""
    await client.close()
    await caught_up(run)


def load(count: int = LOAD_MESSAGES) -> list[str]:
    """Return ``count`` messages of 100 000 characters, ``"0001 xxx…"`` and so on.

    The default, 100 messages or 10 MB, is more than the buffers between a
    server and a client that stopped reading can hold on this kind of machine
    (about 4 MB), so relaying it to such a client makes ``send`` wait.
    """
    return [f"{n:04d} " + "x" * (_LOAD_SIZE - 5) for n in range(1, count + 1)]


def is_load(message: Any) -> bool:
    """Whether ``message`` is (a relay of) one of the :func:`load` messages."""
    return isinstance(message, str) and len(message) >= _LOAD_SIZE


async def settled(client: Client, quiet: float = 0.2, timeout: float = 5.0) -> None:
    """Wait until ``client`` has received nothing new for ``quiet`` seconds.

    After sending :func:`load` to a room, this is the moment the server is as
    far as it gets: every message was delivered, or a send is waiting for a
    stalled client. On a busy machine it waits longer, rather than guess.
    Gives up after ``timeout`` seconds (times ``WSTEACH_TIMEOUT_FACTOR``).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * TIMEOUT_FACTOR
    count = -1
    # Polling: the client's background reader fills client.received.
    while count != len(client.received) and loop.time() < deadline:
        count = len(client.received)
        await asyncio.sleep(quiet * TIMEOUT_FACTOR)


class StalledClient:
    """A client that doesn't read what the server sends, until :meth:`resume`.

    Attributes:
        name: Shown in the server's trace.
        connection: The websockets :class:`ClientConnection` underneath.
        count: How many messages it has read since :meth:`resume`.
    """

    def __init__(self, connection: ClientConnection, name: str) -> None:
        self.connection = connection
        self.name = name
        self.count = 0
        self._reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "reading" if self._reader else "stalled"
        return f"<StalledClient {self.name!r} · {state}>"

    def resume(self) -> None:
        """Start reading again, in the background; messages are counted, not kept."""
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for _ in self.connection:
                self.count += 1

    def kill(self) -> None:
        """Vanish without a closing handshake, like a laptop whose battery died."""
        transport(self.connection).abort()

    async def close(self) -> None:
        """Read what is left, then close the connection normally."""
        self.resume()
        await self.connection.close()
        assert self._reader is not None
        await self._reader


async def stalled_client(url: str, name: str = "sloth") -> StalledClient:
    """Connect a :class:`StalledClient` named ``name`` to ``url``.

    It keeps at most one message waiting and turns compression off, so that
    what the server sends fills the network buffers instead of being squeezed.
    """
    connection = await ws_connect(
        url,
        max_queue=1,
        compression=None,
        additional_headers={NAME_HEADER: name},
    )
    return StalledClient(connection, name)


async def hears_after_load(client: Client, expected: str, timeout: float) -> None:
    """Wait for ``expected``, skipping the relays of :func:`load` on the way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await next_message(client, max(deadline - loop.time(), 0.01))
        if not is_load(message):
            break
    if message != expected:
        raise Mismatch(expected, message, f"{client.name} received")


def still_connected(client: Client, why: str = "") -> None:
    """Raise :exc:`Mismatch` unless the server kept ``client``'s connection open.

    ``why`` says what likely closed it, for the failed line.
    """
    if client.closed or client.connection.state is not State.OPEN:
        _, close, _ = close_frames(client.connection)
        raise Mismatch(
            f"{client.name} still connected",
            f"{client.name} disconnected by the server (close {close.code})"
            if close
            else f"{client.name} disconnected",
            why,
        )


# Scripts as answers

_STUB = re.compile(r"^\s*(#.*)?$|^\s*\.\.\.\s*$")


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

    async def printed_like(self, pattern: re.Pattern[str], example: str) -> None:
        """Wait until a line matches ``pattern``; raise :exc:`Mismatch` if none does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not any(pattern.fullmatch(line) for line in self.output):
            if self.process.returncode is not None or loop.time() > deadline:
                last = self.output[-1] if self.output else "nothing"
                raise Mismatch(example, last, "the script printed")
            await asyncio.sleep(0.02)


Scenario = Callable[[ScriptRun], Awaitable[None]]


async def script_stops_on_ctrl_c(run: ScriptRun) -> None:
    """Interrupt the script (SIGINT, like Ctrl+C); it must end."""
    run.process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(run.process.wait(), run.timeout)
    except TimeoutError:
        raise Mismatch(
            "the script stops", "it still runs", "after Ctrl+C (SIGINT)"
        ) from None


class ScriptExercise(Checked):
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

    async def results(
        self, path: str | os.PathLike[str], *, timeout: float | None = None
    ) -> list[Result]:
        """Run the script at ``path`` and play every scenario against it.

        ``timeout``: seconds a scenario waits for one thing to happen (a line
        printed, a reply); 5 by default, times ``WSTEACH_TIMEOUT_FACTOR``.
        """
        names = [name for name, _ in self.scenarios]
        script = Path(path)
        if not script.is_file():  # noqa: ASYNC240 - one stat
            detail = f"there is no file {script}: run its %%writefile cell first"
            return [Result(name, FAILED, detail) for name in names]
        text = script.read_text(encoding="utf-8")  # noqa: ASYNC240 - a small file
        if all(_STUB.match(line) for line in text.splitlines()):
            detail = f"write {script.name} in its %%writefile cell, then run both cells"
            return [Result(name, NOT_ATTEMPTED, detail) for name in names]
        port = free_port()
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
                # A group of its own: killed as a group, by the watchdog too
                # if the kernel dies meanwhile.
                **own_group(),
            )
            watch_group(process.pid)
            run = ScriptRun(process, port)
            if timeout is not None:
                run.timeout = timeout
            reader = asyncio.create_task(run._read())
            results = []
            try:
                for name, scenario in self.scenarios:
                    results.append(await self._play(name, scenario, run))
            finally:
                # The whole group: what the script started goes with it.
                signal_group(process, "kill")
                await process.wait()
                forget_group(process.pid)
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
        never = next(filter(None, map(_NEVER_AWAITED.search, run.output)), None)
        if never:
            function = never.group(1)
            detail += (
                f"; likely cause: {function}() on its own only makes a coroutine, "
                f"which never runs: write asyncio.run({function}())"
            )
            return Result(
                name, FAILED, detail, cause=f"{function}() without asyncio.run"
            )
        return Result(name, FAILED, detail)


_NEVER_AWAITED = re.compile(r"coroutine '(\w+)' was never awaited")
