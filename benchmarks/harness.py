"""The benchmark harness: servers in child processes, CPU time, echo rates, memory.

``benchmarks/run.py`` (``make bench``) measures wsteach against plain
websockets with these. The fan-out itself (:mod:`wsteach.waves`: its wave by
wave ``run_interleaved`` and ``FanoutResult``) and the servers it measures
(:data:`wsteach.measure.KINDS`) live in the package, where notebook 05 uses
them; this module adds what only the benchmark needs:

- :class:`ServerProcess`: the server in a child Python process, so that server
  and clients don't share an event loop, and the child reports its own CPU
  time. On a 2-core machine the two processes still compete for the cores;
- :class:`BenchGroup`, the package's fan-out group with its two hooks
  (``before_waves``, ``after_waves``) reading the server's CPU time, and
  :meth:`~BenchGroup.wave` timing this process's; :class:`BenchResult` adds
  both to the package's result, and :func:`run_interleaved` runs them;
- echo servers (:data:`ECHO_KINDS`) and :func:`echo_rate`;
- :func:`idle_memory` per connection, with :mod:`tracemalloc` in the child;
- :func:`raise_fd_limit`: a thousand clients are a thousand sockets.

POSIX only (``resource``, ``sched_getaffinity``): the benchmark is a
maintainer's tool, not part of what students run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from websockets.asyncio.client import ClientConnection

from wsteach import measure, waves
from wsteach.waves import FanoutResult

__all__ = [
    "ECHO_KINDS",
    "BenchGroup",
    "BenchResult",
    "Measured",
    "ServerProcess",
    "cpu_count",
    "echo_rate",
    "idle_memory",
    "raise_fd_limit",
    "run_fanout",
    "run_groups",
    "run_interleaved",
    "run_stall_pair",
    "running",
]

ECHO_KINDS = ("echo-plain", "echo-wsteach", "echo-wsteach-trace")
"""Echo servers for :func:`echo_rate`: plain ``serve``, ``start`` with tracing off, on."""

HERE = Path(__file__).resolve().parent


class _Served:
    """A server of any kind on this process's loop (for :func:`echo_rate`)."""

    def __init__(self, url: str, count: Any, stop: Any) -> None:
        self.url = url
        self._count = count
        self.stop = stop

    async def connections(self) -> int:
        return int(self._count())


async def start_kind(kind: str) -> _Served:
    """Start the server called ``kind`` (:data:`wsteach.measure.KINDS` or an echo) here."""
    from wsteach import echo, start

    if kind in ECHO_KINDS[1:]:
        server = await start(
            echo, port=0, host=waves.HOST, trace=kind.endswith("trace")
        )
        return _Served(server.url, lambda: len(server.connections), server.stop)
    stack = contextlib.AsyncExitStack()
    served = await stack.enter_async_context(
        measure.serving(echo if kind == "echo-plain" else kind)
    )
    return _Served(served.url, lambda: len(served.server.connections), stack.aclose)


class ServerProcess:
    """A server running in a child Python process, driven over its stdin/stdout.

    The child prints one JSON line with its port, then answers one JSON line per
    command line it reads: ``cpu`` (its CPU time, :func:`time.process_time`),
    ``connections``, ``memory`` (after a garbage collection, bytes traced by
    :mod:`tracemalloc`, which it starts before serving when asked to), and
    ``stop``. It exits when its stdin closes, so it never outlives this process.
    """

    def __init__(self, kind: str, *, tracemalloc: bool = False) -> None:
        self.kind = kind
        self.tracemalloc = tracemalloc
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the child and wait for the port it serves on."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from harness import child; child(sys.argv[2:])",
            str(HERE),
            self.kind,
            "tracemalloc" if self.tracemalloc else "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        port = (await self._answer())["port"]
        self.url = f"ws://{waves.HOST}:{port}"

    async def _answer(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            code = await self._process.wait()
            raise RuntimeError(
                f"the {self.kind} server process exited with status {code}: "
                "its error is printed above"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str) -> Any:
        """Send one command and return the child's answer to it."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command.encode() + b"\n")
        await self._process.stdin.drain()
        return (await self._answer())[command]

    async def cpu(self) -> float:
        """Return the server process's CPU time so far, in seconds."""
        cpu: float = await self.ask("cpu")
        return cpu

    async def connections(self) -> int:
        """Return how many clients the server has right now."""
        count: int = await self.ask("connections")
        return count

    async def memory(self) -> int:
        """Return the bytes traced by tracemalloc in the server process."""
        traced: int = await self.ask("memory")
        return traced

    async def stop(self) -> None:
        """Stop the server and wait for the process to exit."""
        if self._process is None or self._process.returncode is not None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


def child(argv: list[str]) -> None:
    """Entry point of the server process started by :class:`ServerProcess`."""
    kind, trace_memory = argv
    raise_fd_limit()
    if trace_memory == "tracemalloc":
        tracemalloc.start()
    asyncio.run(_serve_commands(kind))


async def _serve_commands(kind: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    server = await start_kind(kind)
    out = sys.stdout

    def say(answer: dict[str, Any]) -> None:
        out.write(json.dumps(answer) + "\n")
        out.flush()

    say({"port": int(server.url.rsplit(":", 1)[1])})
    try:
        while line := (await reader.readline()).decode().strip():
            if line == "cpu":
                say({"cpu": time.process_time()})
            elif line == "connections":
                say({"connections": await server.connections()})
            elif line == "memory":
                gc.collect()
                say({"memory": tracemalloc.get_traced_memory()[0]})
            else:
                say({line: None})
    finally:
        await server.stop()


def raise_fd_limit() -> None:
    """Allow this process as many open files as the system lets it have."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.asynccontextmanager
async def running(
    kind: str, *, separate_process: bool = True, tracemalloc: bool = False
) -> AsyncIterator[Any]:
    """Run the server ``kind`` for an ``async with`` block, in a child or here.

    Only a :class:`ServerProcess` (the default) reports its CPU time, which a
    fan-out of this module needs; a server here is for :func:`echo_rate`.
    """
    if separate_process:
        server = ServerProcess(kind, tracemalloc=tracemalloc)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
    else:
        served = await start_kind(kind)
        try:
            yield served
        finally:
            await served.stop()


# Fan-out with CPU time


class Measured(waves.Measured, Protocol):
    """A server whose CPU time a fan-out can read: a :class:`ServerProcess`."""

    async def cpu(self) -> float: ...


@dataclass
class BenchResult(FanoutResult):
    """A :class:`~wsteach.waves.FanoutResult` with the CPU time of its waves.

    Attributes:
        server_cpu: CPU seconds of the server's process during the waves.
        client_cpu: CPU seconds of this process (the clients) during the
            waves of this fan-out, not those of the others it alternated with.
    """

    server_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def cpu_per_recipient_us(self) -> float:
        """Server CPU per message and recipient (the stalled one too), in µs."""
        if self.sent == 0:
            return math.nan
        recipients = self.receivers + (1 if self.stalled else 0)
        return self.server_cpu / (self.sent * recipients) * 1e6

    def __str__(self) -> str:
        cpu = self.cpu_per_recipient_us
        return f"{super().__str__()}, server CPU {cpu:.1f} µs per recipient"


class BenchGroup(waves._Group):
    """The package's fan-out group, counting the server's CPU time and this process's.

    The server's is read through the hooks :meth:`before_waves` and
    :meth:`after_waves`, around all the waves of a run; this process's around
    each of this group's own waves.
    """

    server: Measured
    result: BenchResult

    async def before_waves(self) -> None:
        self.cpu_before = await self.server.cpu()

    async def wave(self, seq: int) -> None:
        started = time.process_time()
        await super().wave(seq)
        self.result.client_cpu += time.process_time() - started

    async def after_waves(self) -> None:
        self.result.server_cpu = await self.server.cpu() - self.cpu_before


async def run_groups(groups: Sequence[BenchGroup]) -> list[BenchResult]:
    """Run fan-outs wave by wave in turn, as :func:`wsteach.waves.run_interleaved`."""
    await waves._interleave(groups)
    return [group.result for group in groups]


async def run_interleaved(
    runs: Sequence[tuple[Measured, str, bool]],
    *,
    receivers: int,
    messages: int,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> list[BenchResult]:
    """:func:`wsteach.waves.run_interleaved`, with the CPU time of each run."""
    results = await waves.run_interleaved(
        runs,
        receivers=receivers,
        messages=messages,
        payload=payload,
        wave_timeout=wave_timeout,
        group=BenchGroup,
        result=BenchResult,
    )
    return cast("list[BenchResult]", results)


async def run_fanout(
    server: Measured,
    *,
    kind: str,
    receivers: int,
    messages: int,
    stalled: bool = False,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> BenchResult:
    """Measure one fan-out against a running server (see :func:`run_interleaved`)."""
    (result,) = await run_interleaved(
        [(server, kind, stalled)],
        receivers=receivers,
        messages=messages,
        payload=payload,
        wave_timeout=wave_timeout,
    )
    return result


async def run_stall_pair(
    reading: Measured,
    stalled: Measured,
    *,
    kind: str,
    receivers: int,
    messages: int,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> tuple[BenchResult, BenchResult]:
    """Measure two servers of one kind wave by wave, the second with a stalled reader.

    Returns:
        The result with everyone reading, then the one with a stalled receiver.
    """
    first, second = await run_interleaved(
        [(reading, kind, False), (stalled, kind, True)],
        receivers=receivers,
        messages=messages,
        payload=payload,
        wave_timeout=wave_timeout,
    )
    return first, second


# Echo and memory


async def echo_rate(
    server: Any, *, clients: int = 1, round_trips: int = 1000, size: int = 16
) -> float:
    """Return echo round trips per second against a running echo server.

    Each of ``clients`` connections sends a message and waits for its echo,
    ``round_trips`` times in a row; the connections run concurrently. Connecting
    is not timed.
    """
    message = "x" * size
    connections = await waves.connect_many(server.url, clients)

    async def ping(connection: ClientConnection) -> None:
        for _ in range(round_trips):
            await connection.send(message)
            await connection.recv()

    try:
        started = time.perf_counter()
        await asyncio.gather(*(ping(conn) for conn in connections))
        elapsed = time.perf_counter() - started
    except BaseException:
        await waves.abort(connections)
        raise
    await asyncio.gather(*(conn.close() for conn in connections))
    return clients * round_trips / elapsed


async def idle_memory(kind: str, *, connections: int = 200, warmup: int = 10) -> float:
    """Return the server's memory per idle connection, in bytes (tracemalloc).

    Starts ``kind`` in a child process that traces allocations, connects
    ``warmup`` clients (first-use caches), notes the traced memory, connects
    ``connections`` more that send nothing, and divides the growth by their
    number.
    """
    raise_fd_limit()
    async with running(kind, tracemalloc=True) as server:
        first = await waves.connect_many(server.url, warmup)
        await waves.wait_for_connections(server, warmup)
        before = await server.memory()
        rest = await waves.connect_many(server.url, connections)
        try:
            await waves.wait_for_connections(server, warmup + connections)
            after = await server.memory()
        except BaseException:
            await waves.abort(first + rest)
            raise
        await asyncio.gather(*(conn.close() for conn in first + rest))
    return (after - before) / connections


def cpu_count() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0))
