"""Measure broadcast servers: fan-out cost, latency, and one slow reader.

One sender and ``receivers`` clients connect to a broadcast server. The sender
sends ``messages`` messages, one at a time: each waits until every receiver has
it (a "wave") before the next goes out. Every receiver notes how long each
message took from the sender's ``send`` to its own receipt. In a notebook
(about 5 s here, plus 1 s for matplotlib's first import)::

    from wsteach import measure

    results = await measure.compare(receivers=[10, 50], messages=20)
    print(measure.table(results))
    measure.plot(results)

Three servers can be measured, by name (see :data:`KINDS`):

- ``"room"``: :class:`wsteach.Room`, served by :func:`wsteach.start` with
  tracing off;
- ``"broadcast"``: a plain websockets handler that relays with
  :func:`websockets.asyncio.server.broadcast`;
- ``"loop"``: the video's handler, ``for conn in connected: await
  conn.send(...)``, iterating over a copy of the set (the video iterates over
  the set itself, which raises "Set changed size during iteration" when a
  client joins or leaves mid-loop).

With ``stalled=True`` one more receiver connects and never reads, like a phone
on a train. The loop waits for it, so once its buffers are full (about 1.6 MB
queued for it on loopback here) the others get nothing more; ``broadcast``
does not wait. Messages are different random text each, and the clients don't
ask for compression: with permessage-deflate, the server would compress every
message once per recipient and zlib would dominate the figures.

Where the server runs:

- ``separate_process=True`` (the default) starts the server in a child Python
  process (``python -c ...``) and keeps the clients in this one, so the two
  don't share an event loop; the child also reports its own CPU time, which
  gives :attr:`FanoutResult.cpu_per_recipient_us`. On a 2-core machine the
  two processes still compete for the cores, and the receivers' process does
  more work per delivery than the server: with hundreds of receivers, the
  latencies measure the receivers as much as the server.
- ``separate_process=False`` runs the server on this process's event loop,
  next to the clients: quicker to start and fine for comparing servers at a
  small size, but the clients' work then delays the server and the server's
  CPU time can't be told apart (it is :obj:`None`). Pass your own handler as
  ``kind`` to measure it this way.

Latency figures come from a single run, so a busy machine shows in them: a
hiccup of a few milliseconds during one wave sets the p99 of a small run.
:func:`run_interleaved` runs several servers wave by wave in turn, so that a
hiccup hits them alike; ``benchmarks/run.py`` uses it and quotes medians of
several rounds.

Nothing here imports matplotlib until :func:`plot` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import random
import resource
import socket
import string
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosedError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "KINDS",
    "FanoutResult",
    "ServerProcess",
    "compare",
    "echo_rate",
    "fanout",
    "idle_memory",
    "plot",
    "run_fanout",
    "run_interleaved",
    "run_stall_pair",
    "running",
    "table",
]

Handler = Callable[[ServerConnection], Awaitable[None]]

KINDS = ("room", "broadcast", "loop")
"""The broadcast servers :func:`fanout` knows by name."""

ECHO_KINDS = ("echo-plain", "echo-wsteach", "echo-wsteach-trace")
"""Echo servers for :func:`echo_rate`: plain ``serve``, ``start`` with tracing off, on."""

PREFIX = "Someone said: "
SEQ_DIGITS = 8  # Each message ends with its sequence number, zero-padded.
HOST = "127.0.0.1"

# Connecting hundreds of clients at once overflows the listen backlog, and a
# dropped SYN costs a one-second retransmit. Connect in small batches instead.
CONNECT_BATCH = 50


# The servers being measured


def plain_broadcast() -> Handler:
    """Return a plain websockets handler that relays with ``broadcast``."""
    connected: set[ServerConnection] = set()

    async def handler(websocket: ServerConnection) -> None:
        connected.add(websocket)
        try:
            async for message in websocket:
                others = [conn for conn in connected if conn is not websocket]
                broadcast(others, PREFIX + str(message))
        finally:
            connected.remove(websocket)

    return handler


def video_loop() -> Handler:
    """Return the video's handler: a sequential ``await send`` to each client.

    It iterates over a copy of ``connected``: the video's version iterates over
    the set itself and raises "Set changed size during iteration" when a
    client joins or leaves while it is sending.
    """
    connected: set[ServerConnection] = set()

    async def handler(websocket: ServerConnection) -> None:
        connected.add(websocket)
        try:
            async for message in websocket:
                for conn in list(connected):
                    if conn != websocket:
                        await conn.send(PREFIX + str(message))
        finally:
            connected.remove(websocket)

    return handler


@dataclass
class _Served:
    """A server under measurement on this process's loop."""

    server: Server
    url: str
    stop: Callable[[], Awaitable[None]]

    @property
    def connections(self) -> int:
        return len(self.server.connections)


async def _start_kind(kind: str | Handler) -> _Served:
    """Start the server called ``kind`` (or serving handler ``kind``) on a free port."""
    if callable(kind):
        return await _start_plain(kind)
    if kind == "room":
        from .limits import Limits
        from .servers import Room

        # The classroom rate limit (10 messages a second) would cut the sender
        # off; the bound on what may queue for a slow reader stays on.
        room = Room(limits=Limits(rate=None))
        return await _start_wsteach(room.handler, trace=False)
    if kind == "broadcast":
        return await _start_plain(plain_broadcast())
    if kind == "loop":
        return await _start_plain(video_loop())
    if kind == "echo-plain":
        from .servers import echo

        return await _start_plain(echo)
    if kind in ("echo-wsteach", "echo-wsteach-trace"):
        from .servers import echo

        return await _start_wsteach(echo, trace=kind == "echo-wsteach-trace")
    raise ValueError(
        f"unknown server {kind!r}: use one of {', '.join(KINDS + ECHO_KINDS)} "
        "or pass an async handler"
    )


async def _start_plain(handler: Handler) -> _Served:
    server = await serve(handler, HOST, 0)
    port = server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return _Served(server, f"ws://{HOST}:{port}", stop)


async def _start_wsteach(handler: Handler, *, trace: bool) -> _Served:
    from .notebook import start

    running = await start(handler, port=0, host=HOST, trace=trace)
    return _Served(running.server, running.url, running.stop)


@contextlib.asynccontextmanager
async def running(
    kind: str | Handler, *, separate_process: bool = True, tracemalloc: bool = False
) -> AsyncIterator[ServerProcess | _InProcess]:
    """Run the server ``kind`` for the duration of an ``async with`` block.

    Yields an object with ``url`` and the coroutine methods ``cpu()`` (server
    CPU seconds so far, or :obj:`None` in-process), ``connections()`` and
    ``memory()`` (bytes traced by :mod:`tracemalloc`, when asked for).
    """
    if separate_process:
        if callable(kind):
            raise TypeError(
                "a handler of this notebook can't run in a separate process: "
                "pass separate_process=False, or a server name such as 'room'"
            )
        server: ServerProcess | _InProcess = ServerProcess(
            kind, tracemalloc=tracemalloc
        )
    else:
        server = _InProcess(kind)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class _InProcess:
    """A server on this process's loop, with the same methods as ServerProcess."""

    def __init__(self, kind: str | Handler) -> None:
        self.kind = kind
        self._running: _Served | None = None

    @property
    def url(self) -> str:
        assert self._running is not None
        return self._running.url

    async def start(self) -> None:
        self._running = await _start_kind(self.kind)

    async def cpu(self) -> float | None:
        return None  # Server and clients share this process: can't tell apart.

    async def connections(self) -> int:
        assert self._running is not None
        return self._running.connections

    async def stop(self) -> None:
        if self._running is not None:
            await self._running.stop()


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
        args = [self.kind, "tracemalloc" if self.tracemalloc else "-"]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from wsteach.measure import _child; _child(sys.argv[1:])",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        port = (await self._answer())["port"]
        self.url = f"ws://{HOST}:{port}"

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
        except TimeoutError:  # pragma: no cover - the child ends when stdin closes
            self._process.kill()
            await self._process.wait()


def _child(argv: list[str]) -> None:  # pragma: no cover - runs in the child process
    """Entry point of the server process started by :class:`ServerProcess`."""
    kind, trace_memory = argv
    raise_fd_limit()
    if trace_memory == "tracemalloc":
        tracemalloc.start()
    asyncio.run(_serve_commands(kind))


async def _serve_commands(kind: str) -> None:  # pragma: no cover - child process
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    server = await _start_kind(kind)
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
                say({"connections": server.connections})
            elif line == "memory":
                gc.collect()
                say({"memory": tracemalloc.get_traced_memory()[0]})
            else:
                say({line: None})
    finally:
        await server.stop()


def raise_fd_limit() -> None:
    """Allow this process as many open files as the system lets it have.

    A thousand clients are a thousand sockets, at or above the usual soft
    limit of 1024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# Fan-out


@dataclass
class FanoutResult:
    """What one fan-out run measured.

    Attributes:
        kind: The server measured.
        receivers: Receivers that read (the stalled one is not counted).
        messages: Messages the sender meant to send.
        sent: Messages it sent: fewer than ``messages`` when a wave timed out.
        stalled: Whether one more receiver connected and never read.
        payload: Characters in each message.
        latencies: Seconds from send to receipt, one per delivery to a reading
            receiver, in order of receipt.
        server_cpu: Server CPU seconds from the first wave to the last, or
            :obj:`None` when the server shared this process.
        client_cpu: CPU seconds of this process (every client: sender,
            receivers) during the waves; it includes the server's when the
            server shares this process.
        wall: Seconds the waves took, added up.
        stalled_after: How many messages reached everyone before a wave timed
            out, or :obj:`None` if none timed out.
        separate_process: Whether the server ran in its own process.
    """

    kind: str
    receivers: int
    messages: int
    sent: int
    stalled: bool
    payload: int
    latencies: list[float] = field(repr=False)
    server_cpu: float | None
    client_cpu: float
    wall: float
    stalled_after: int | None
    separate_process: bool

    @property
    def expected(self) -> int:
        """Deliveries owed to reading receivers: every message to every one."""
        return self.messages * self.receivers

    @property
    def delivered(self) -> int:
        """Deliveries that arrived before the run ended."""
        return len(self.latencies)

    def percentile(self, p: float) -> float:
        """Latency percentile ``p`` (0-100) in milliseconds, nearest rank.

        A delivery that never arrived counts as infinitely late, so once more
        than ``100 - p`` percent are missing the answer is ``inf``.
        """
        if self.expected == 0:
            return math.nan
        missing = self.expected - self.delivered
        ordered = sorted(self.latencies) + [math.inf] * missing
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    @property
    def p50(self) -> float:
        """Median latency, in milliseconds."""
        return self.percentile(50)

    @property
    def p99(self) -> float:
        """99th percentile latency, in milliseconds."""
        return self.percentile(99)

    @property
    def cpu_per_recipient_us(self) -> float | None:
        """Server CPU per delivered message, in microseconds.

        Server CPU over the waves divided by messages × recipients (the
        stalled receiver counts as a recipient: the server writes to it too).
        """
        if self.server_cpu is None or self.sent == 0:
            return None
        recipients = self.receivers + (1 if self.stalled else 0)
        return self.server_cpu / (self.sent * recipients) * 1e6

    @property
    def client_cpu_per_delivery_us(self) -> float | None:
        """This process's CPU per delivery, in microseconds (``None`` if none)."""
        if self.delivered == 0:
            return None
        return self.client_cpu / self.delivered * 1e6

    def __str__(self) -> str:
        stall = " + 1 stalled" if self.stalled else ""
        text = (
            f"{self.kind}: {self.receivers} receivers{stall}, "
            f"{self.delivered}/{self.expected} delivered, "
            f"p50 {_ms(self.p50)}, p99 {_ms(self.p99)}"
        )
        cpu = self.cpu_per_recipient_us
        if cpu is not None:
            text += f", server CPU {cpu:.1f} µs per recipient"
        if self.stalled_after is not None:
            text += f", stuck after {self.stalled_after} messages"
        return text


def _size(payload: int) -> str:
    return f"{payload // 1024} KiB" if payload >= 1024 else f"{payload} B"


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.1f} ms"


async def _connect_many(url: str, count: int) -> list[ClientConnection]:
    connections: list[ClientConnection] = []
    try:
        for start in range(0, count, CONNECT_BATCH):
            batch = min(CONNECT_BATCH, count - start)
            connections += await asyncio.gather(
                *(
                    ws_connect(url, ping_interval=None, compression=None)
                    for _ in range(batch)
                )
            )
    except BaseException:
        await _abort(connections)
        raise
    return connections


async def _connect_stalled(url: str) -> ClientConnection:
    """Connect a client that will never read.

    Its socket receive buffer is made as small as the kernel allows and its
    library keeps at most one message, so the server's buffers fill after
    tens of kilobytes rather than megabytes.
    """
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    except BaseException:
        sock.close()
        raise
    return await ws_connect(
        url, sock=sock, max_queue=1, ping_interval=None, compression=None
    )


async def _abort(connections: Iterable[ClientConnection]) -> None:
    """Drop connections at once: a stalled one would never finish a closing handshake."""
    for connection in connections:
        connection.transport.abort()
    await asyncio.gather(
        *(connection.wait_closed() for connection in connections),
        return_exceptions=True,
    )


class _Group:
    """One fan-out in progress: a sender, its receivers, what they measured."""

    def __init__(
        self,
        server: Any,
        *,
        kind: str,
        receivers: int,
        messages: int,
        stalled: bool,
        payload: int,
        wave_timeout: float,
    ) -> None:
        if receivers < 1 or messages < 1:
            raise ValueError("a fan-out needs at least one receiver and one message")
        self.server = server
        self.kind = kind
        self.receivers = receivers
        self.messages = messages
        self.stalled = stalled
        self.payload = payload
        self.wave_timeout = wave_timeout
        self.texts = _texts(messages, payload)
        self.sent_at: list[float] = []
        self.latencies: list[float] = []
        self.arrived = [0] * messages
        self.wave_done = asyncio.Event()
        self.current = -1
        self.recording = True
        self.stalled_after: int | None = None
        self.clients: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.slow: ClientConnection | None = None
        self.cpu = 0.0  # Server CPU seconds, once count_cpu(stop=True) ran.
        self.client_cpu = 0.0
        self.wall = 0.0

    async def _read(self, connection: ClientConnection) -> None:
        async for message in connection:
            now = time.perf_counter()
            seq = int(message[-SEQ_DIGITS:])
            if self.recording:
                self.latencies.append(now - self.sent_at[seq])
            self.arrived[seq] += 1
            if seq == self.current and self.arrived[seq] == self.receivers:
                self.wave_done.set()

    async def open(self) -> None:
        """Connect everyone; on failure, drop whatever connected."""
        try:
            readers = await _connect_many(self.server.url, self.receivers)
            self.clients += readers
            self.tasks += [asyncio.create_task(self._read(conn)) for conn in readers]
            if self.stalled:
                self.slow = await _connect_stalled(self.server.url)
                self.clients.append(self.slow)
            (self.sender,) = await _connect_many(self.server.url, 1)
            self.clients.append(self.sender)
            # The server registers a client when its handler starts, just
            # after the handshake: wait until it has them all.
            await _wait_for_connections(self.server, len(self.clients))
        except BaseException:
            await self.abort()
            raise

    @property
    def going(self) -> bool:
        """Whether no wave has timed out yet."""
        return self.stalled_after is None

    async def wave(self, seq: int) -> None:
        """Send message ``seq`` and wait until every reading receiver has it."""
        self.current = seq
        self.wave_done.clear()
        started = time.perf_counter()
        cpu = time.process_time()
        self.sent_at.append(started)
        try:
            async with asyncio.timeout(self.wave_timeout):
                await self.sender.send(self.texts[seq])
                await self.wave_done.wait()
        except TimeoutError:
            self.stalled_after = seq
        self.client_cpu += time.process_time() - cpu
        self.wall += time.perf_counter() - started

    async def count_cpu(self, *, stop: bool = False) -> None:
        """Note the server's CPU time when the waves start, and when they end."""
        cpu = await self.server.cpu()
        if cpu is not None:
            self.cpu = cpu - self.cpu if stop else cpu

    async def close(self) -> None:
        """Disconnect everyone with a closing handshake, leaving the server empty."""
        self.recording = False
        try:
            if self.slow is not None:
                # The stalled receiver wakes up: once the server can write to
                # it again, a server stuck on it delivers the last message too.
                self.tasks.append(asyncio.create_task(_drain(self.slow)))
            if self.stalled_after is not None:
                async with asyncio.timeout(10):
                    await self.wave_done.wait()
            # The sender leaves first, so no message is on its way while the
            # receivers leave.
            await self.sender.close()
            await asyncio.gather(*(conn.close() for conn in self.clients))
            await asyncio.gather(*self.tasks)
        except BaseException:
            await self.abort()
            raise
        await _wait_for_connections(self.server, 0)

    async def abort(self) -> None:
        await _abort(self.clients)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def result(self) -> FanoutResult:
        separate = isinstance(self.server, ServerProcess)
        return FanoutResult(
            kind=self.kind,
            receivers=self.receivers,
            messages=self.messages,
            sent=len(self.sent_at),
            stalled=self.stalled,
            payload=self.payload,
            latencies=self.latencies,
            server_cpu=self.cpu if separate else None,
            client_cpu=self.client_cpu,
            wall=self.wall,
            stalled_after=self.stalled_after,
            separate_process=separate,
        )


async def run_fanout(
    server: Any,
    *,
    kind: str,
    receivers: int,
    messages: int,
    stalled: bool = False,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> FanoutResult:
    """Measure one fan-out against a server that is already running.

    ``server`` is what :func:`running` yields. The clients connect, the sender
    sends ``messages`` waves, and everyone disconnects with a normal closing
    handshake (the stalled receiver first reads what was queued for it, which
    also lets a stuck server finish); the server is left running with no
    clients, ready for the next run. Server CPU is counted during the waves
    only, not while clients connect or leave.

    Args:
        kind: The server's name, for the result.
        receivers: Clients that read every message.
        messages: Messages to send, one wave each.
        stalled: Also connect one receiver that never reads.
        payload: Characters in each message the sender sends. Each message is
            different random text, so compression couldn't shrink it (the
            clients don't ask for compression anyway).
        wave_timeout: Seconds a wave may take; after the first wave that
            times out, the run stops and the missing deliveries count as
            never arrived.
    """
    (result,) = await run_interleaved(
        [(server, kind, stalled)],
        receivers=receivers,
        messages=messages,
        payload=payload,
        wave_timeout=wave_timeout,
    )
    return result


async def run_interleaved(
    runs: Sequence[tuple[Any, str, bool]],
    *,
    receivers: int,
    messages: int,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> list[FanoutResult]:
    """Measure the same fan-out on several running servers, wave by wave.

    ``runs`` holds ``(server, kind, stalled)`` triples, one per server. Every
    server gets its own sender and receivers; message 1 goes out on each
    server in turn, then message 2 (the turn starting one server further on)…
    so a hiccup of the machine hits all runs alike, and the differences between
    the results are the servers'. A server whose wave timed out drops out; the
    others carry on.

    Returns:
        One result per entry of ``runs``, in the same order.
    """
    groups = [
        _Group(
            server,
            kind=kind,
            receivers=receivers,
            messages=messages,
            stalled=stalled,
            payload=payload,
            wave_timeout=wave_timeout,
        )
        for server, kind, stalled in runs
    ]
    try:
        for group in groups:
            await group.open()
        for group in groups:
            await group.count_cpu()
        for seq in range(messages):
            turn = seq % len(groups)
            for group in groups[turn:] + groups[:turn]:
                if group.going:
                    await group.wave(seq)
        for group in groups:
            await group.count_cpu(stop=True)
        for group in groups:
            await group.close()
    except BaseException:
        for group in groups:
            await group.abort()
        raise
    return [group.result() for group in groups]


async def run_stall_pair(
    reading: Any,
    stalled: Any,
    *,
    kind: str,
    receivers: int,
    messages: int,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> tuple[FanoutResult, FanoutResult]:
    """Measure the same fan-out on two servers, one with a stalled receiver.

    ``reading`` and ``stalled`` are two running servers of the same kind,
    measured by :func:`run_interleaved`: the difference between the two
    results is the stalled receiver's.

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


def _texts(count: int, payload: int) -> list[str]:
    """Return ``count`` different messages of ``payload`` characters, numbered."""
    rng = random.Random(payload)  # The same texts every run.
    filler = max(0, payload - SEQ_DIGITS)
    letters = string.ascii_letters + string.digits + " "
    # Random text, made once and sliced: a different window for each message.
    pool = "".join(rng.choices(letters, k=filler + count))
    return [pool[seq : seq + filler] + f"{seq:0{SEQ_DIGITS}d}" for seq in range(count)]


async def _drain(connection: ClientConnection) -> None:
    """Read what was queued for a stalled receiver until its connection ends.

    A server that bounds what may queue for a slow reader, as ``Room`` does,
    has closed it already (1008, "too slow: …"): that ends it too.
    """
    try:
        async for _ in connection:
            pass
    except ConnectionClosedError:
        pass


async def _wait_for_connections(server: Any, count: int, timeout: float = 10) -> None:
    """Wait until the server has ``count`` clients, asking it every 5 ms.

    The server may be in another process: there is no event to wait on.
    """
    async with asyncio.timeout(timeout):
        while True:
            if await server.connections() == count:
                return
            await asyncio.sleep(0.005)


async def fanout(
    kind: str | Handler,
    *,
    receivers: int = 10,
    messages: int = 20,
    stalled: bool = False,
    separate_process: bool = True,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> FanoutResult:
    """Start a server, measure one fan-out against it, and stop it.

    Args:
        kind: ``"room"``, ``"broadcast"``, ``"loop"``, or your own handler
            (only with ``separate_process=False``).
        receivers: Clients that read every message.
        messages: Messages to send, one wave each.
        stalled: Also connect one receiver that never reads.
        separate_process: Run the server in a child process (see the module
            docstring for what each choice measures).
        payload: Characters in each message.
        wave_timeout: Seconds a wave may take before the run stops.
    """
    raise_fd_limit()
    name = kind if isinstance(kind, str) else _handler_label(kind)
    async with running(kind, separate_process=separate_process) as server:
        return await run_fanout(
            server,
            kind=name,
            receivers=receivers,
            messages=messages,
            stalled=stalled,
            payload=payload,
            wave_timeout=wave_timeout,
        )


def _handler_label(handler: Handler) -> str:
    from ._handlers import handler_name

    return handler_name(handler)


STALL_PAYLOAD = 32 * 1024
STALL_MESSAGES = 100
"""Stalled-reader runs send 100 messages of 32 KiB: 3.2 MB in all.

Before the loop waits for the stalled receiver, its buffers must fill: the
server's socket send buffer (the kernel sizes it; about 1.6 MB of queued data
on loopback here), websockets' write buffer (32 KiB) and the receiver's.
"""


async def compare(
    kinds: Sequence[str | Handler] = KINDS,
    *,
    receivers: Sequence[int] = (10, 100),
    messages: int = 20,
    stalled: bool = True,
    separate_process: bool = True,
) -> list[FanoutResult]:
    """Measure each server at each number of receivers, then with a stalled one.

    For each server: one run per entry of ``receivers`` (1 KiB messages);
    then, with ``stalled=True``, a :func:`run_stall_pair` with the largest
    number of receivers and :data:`STALL_MESSAGES` messages of
    :data:`STALL_PAYLOAD`, enough to fill a stalled client's buffers: one
    server with everyone reading, a second one with an extra receiver that
    never reads, their waves alternating. Returns the results in the order measured, for
    :func:`table` and :func:`plot`.
    """
    raise_fd_limit()
    results = []
    for kind in kinds:
        name = kind if isinstance(kind, str) else _handler_label(kind)
        async with contextlib.AsyncExitStack() as stack:
            servers = [
                await stack.enter_async_context(
                    running(kind, separate_process=separate_process)
                )
                for _ in range(2 if stalled else 1)
            ]
            server = servers[0]
            for count in receivers:
                results.append(
                    await run_fanout(
                        server, kind=name, receivers=count, messages=messages
                    )
                )
            if stalled:
                results += await run_stall_pair(
                    server,
                    servers[1],
                    kind=name,
                    receivers=max(receivers),
                    messages=STALL_MESSAGES,
                    payload=STALL_PAYLOAD,
                )
    return results


def table(results: Iterable[FanoutResult]) -> str:
    """Return the results as a plain-text table, one line per run."""
    rows = [
        (
            "server",
            "receivers",
            "message",
            "stalled",
            "delivered",
            "p50",
            "p99",
            "CPU/recipient",
        )
    ]
    for r in results:
        cpu = r.cpu_per_recipient_us
        rows.append(
            (
                r.kind,
                str(r.receivers),
                _size(r.payload),
                "yes" if r.stalled else "no",
                f"{r.delivered}/{r.expected}",
                _ms(r.p50),
                _ms(r.p99),
                "-" if cpu is None else f"{cpu:.1f} µs",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def plot(results: Sequence[FanoutResult]) -> Figure:
    """Plot p99 latency by receivers, and with one stalled receiver.

    Left: p99 latency against the number of receivers, one line per server,
    from the runs with the smallest messages. Right: for each server that has
    a stalled run, p99 of the reading receivers with everyone reading and
    with one stalled receiver, same receivers and messages; deliveries that
    never arrived draw a hatched bar marked "never". Returns the matplotlib
    :class:`~matplotlib.figure.Figure`, which a notebook shows when it is a
    cell's last value. matplotlib is imported here, not when :mod:`wsteach` is.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    kinds = list(dict.fromkeys(r.kind for r in results))
    smallest = min((r.payload for r in results), default=0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    plt.close(fig)  # Shown once, as the cell's value, not a second time by pyplot.

    for kind in kinds:
        runs = sorted(
            (
                r
                for r in results
                if r.kind == kind and not r.stalled and r.payload == smallest
            ),
            key=lambda r: r.receivers,
        )
        left.plot(
            [r.receivers for r in runs], [r.p99 for r in runs], marker="o", label=kind
        )
    left.set_xscale("log")
    counts = sorted({r.receivers for r in results})
    left.set_xticks(counts, [str(count) for count in counts])
    left.minorticks_off()
    left.set_xlabel("receivers")
    left.set_ylabel("p99 latency (ms)")
    left.set_title("Fan-out: send to receipt, 99th percentile")
    left.set_ylim(bottom=0)
    left.legend()

    pairs = []
    for kind in kinds:
        stall = next((r for r in results if r.kind == kind and r.stalled), None)
        if stall is None:
            continue
        reading = next(
            (
                r
                for r in results
                if r.kind == kind
                and not r.stalled
                and (r.receivers, r.messages, r.payload)
                == (stall.receivers, stall.messages, stall.payload)
            ),
            None,
        )
        pairs.append((kind, reading, stall))
    finite = [r.p99 for _, *runs in pairs for r in runs if r and math.isfinite(r.p99)]
    ceiling = 1.5 * max(finite, default=1.0)
    width = 0.38
    for index, (_, reading, stall) in enumerate(pairs):
        for offset, run, colour in (
            (-width / 2, reading, "tab:blue"),
            (width / 2, stall, "tab:red"),
        ):
            if run is None:
                continue
            never = math.isinf(run.p99)
            height = ceiling if never else run.p99
            right.bar(
                index + offset,
                height,
                width,
                color=colour,
                hatch="//" if never else None,
                alpha=0.5 if never else 1.0,
            )
            label = "never" if never else f"{run.p99:.1f}"
            right.annotate(label, (index + offset, height), ha="center", va="bottom")
    right.set_xticks(range(len(pairs)), [kind for kind, *_ in pairs])
    right.set_ylabel("p99 latency of the others (ms)")
    if pairs:
        stall = pairs[0][2]
        right.set_title(
            f"{stall.receivers} receivers, {stall.messages} × {_size(stall.payload)}"
            ": one more stops reading"
        )
    right.set_ylim(0, ceiling * 1.15)
    right.legend(
        handles=[Patch(color="tab:blue"), Patch(color="tab:red")],
        labels=["all reading", "one stalled"],
        loc="upper left",
    )
    return fig


# Echo round trips and idle memory


async def echo_rate(
    server: Any, *, clients: int = 1, round_trips: int = 1000, size: int = 16
) -> float:
    """Return echo round trips per second against a running echo server.

    Each of ``clients`` connections sends a message and waits for its echo,
    ``round_trips`` times in a row; the connections run concurrently. Connecting
    is not timed.
    """
    message = "x" * size
    connections = await _connect_many(server.url, clients)

    async def ping(connection: ClientConnection) -> None:
        for _ in range(round_trips):
            await connection.send(message)
            await connection.recv()

    try:
        started = time.perf_counter()
        await asyncio.gather(*(ping(conn) for conn in connections))
        elapsed = time.perf_counter() - started
    except BaseException:
        await _abort(connections)
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
        assert isinstance(server, ServerProcess)
        first = await _connect_many(server.url, warmup)
        await _wait_for_connections(server, warmup)
        before = await server.memory()
        rest = await _connect_many(server.url, connections)
        try:
            await _wait_for_connections(server, warmup + connections)
            after = await server.memory()
        except BaseException:
            await _abort(first + rest)
            raise
        await asyncio.gather(*(conn.close() for conn in first + rest))
    return (after - before) / connections


def cpu_count() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0))
