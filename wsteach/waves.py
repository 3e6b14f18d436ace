"""Measure a fan-out wave by wave: one sender, many receivers, a message at a time.

One sender and ``receivers`` clients connect to a running server; the sender
sends one message and waits until every receiver has it (a "wave") before it
sends the next. Each receiver notes how long each message took from the
sender's ``send``, and :class:`FanoutResult` holds those latencies. With
``stalled`` one more receiver connects and never reads; a wave that takes
longer than ``wave_timeout`` ends that server's run.

:func:`run_interleaved` measures several servers at once, wave by wave in
turn. A server is anything with a ``url`` and a ``connections()`` count
(:class:`Measured`): one on this loop (:mod:`wsteach.measure`, which notebook
05 calls) or in another process (``benchmarks/harness.py``, which counts CPU
time in the fan-out group's hooks). This module knows no server by name.

Limits: every client runs in this process, on one event loop, so a latency
counts the receivers' work as well as the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError

from .internals import transport

__all__ = [
    "HOST",
    "FanoutResult",
    "Measured",
    "abort",
    "connect_many",
    "run_interleaved",
    "wait_for_connections",
]

SEQ_DIGITS = 8  # Each message ends with its sequence number, zero-padded.
HOST = "127.0.0.1"
# Hundreds of clients at once overflow the listen backlog, and a dropped SYN
# costs a one-second retransmit: connect in small batches instead.
CONNECT_BATCH = 50


class Measured(Protocol):
    """What a fan-out needs of a running server, here or in another process."""

    url: str

    async def connections(self) -> int: ...  # pragma: no cover - protocol


@dataclass
class FanoutResult:
    """What one fan-out measured, filled in as it runs.

    Attributes:
        kind: The server measured.
        receivers: Receivers that read (a stalled one is not counted).
        messages: Messages the sender meant to send.
        stalled: Whether one more receiver connected and never read.
        payload: Characters in each message.
        sent: Messages sent: fewer than ``messages`` when a wave timed out.
        latencies: Seconds from send to receipt, one per delivery to a reading
            receiver, in order of receipt.
        stalled_after: Messages that reached everyone before a wave timed out,
            or :obj:`None` if none timed out.
    """

    kind: str
    receivers: int
    messages: int
    stalled: bool
    payload: int
    sent: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    stalled_after: int | None = None

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
        missing = [math.inf] * (self.expected - self.delivered)
        ordered = sorted(self.latencies) + missing
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] * 1000

    @property
    def p50(self) -> float:
        """Median latency, in milliseconds."""
        return self.percentile(50)

    @property
    def p99(self) -> float:
        """99th percentile latency, in milliseconds."""
        return self.percentile(99)

    def __str__(self) -> str:
        stall = " + 1 stalled" if self.stalled else ""
        stuck = self.stalled_after
        return (
            f"{self.kind}: {self.receivers} receivers{stall}, "
            f"{self.delivered}/{self.expected} delivered, "
            f"p50 {_ms(self.p50)}, p99 {_ms(self.p99)}"
            + ("" if stuck is None else f", stuck after {stuck} messages")
        )


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.1f} ms"


async def connect_many(url: str, count: int) -> list[ClientConnection]:
    """Connect ``count`` clients in batches; on failure, drop those connected."""
    connections: list[ClientConnection] = []
    try:
        for first in range(0, count, CONNECT_BATCH):
            batch = range(min(CONNECT_BATCH, count - first))
            connections += await asyncio.gather(
                *(ws_connect(url, ping_interval=None, compression=None) for _ in batch)
            )
    except BaseException:
        await abort(connections)
        raise
    return connections


async def _connect_stalled(url: str) -> ClientConnection:
    """Connect a client that will never read, with the smallest receive buffer."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    except BaseException:
        sock.close()
        raise
    options = {"max_queue": 1, "ping_interval": None, "compression": None}
    return await ws_connect(url, sock=sock, **options)


async def abort(connections: Iterable[ClientConnection]) -> None:
    """Drop connections at once: a stalled one would never finish a closing handshake."""
    for connection in connections:
        transport(connection).abort()
    closed = [connection.wait_closed() for connection in connections]
    await asyncio.gather(*closed, return_exceptions=True)


async def wait_for_connections(
    server: Measured, count: int, timeout: float = 10
) -> None:
    """Wait until the server has ``count`` clients, asking it every 5 ms."""
    async with asyncio.timeout(timeout):
        # No event to wait on: the server may be in another process.
        while await server.connections() != count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def _texts(count: int, payload: int) -> list[str]:
    """Return ``count`` different messages of ``payload`` characters, numbered."""
    rng = random.Random(payload)  # The same texts every run.
    filler = max(0, payload - SEQ_DIGITS)
    letters = string.ascii_letters + string.digits + " "
    pool = "".join(rng.choices(letters, k=filler + count))  # sliced, one window each
    return [pool[seq : seq + filler] + f"{seq:0{SEQ_DIGITS}d}" for seq in range(count)]


async def _drain(connection: ClientConnection) -> None:
    """Read what was queued for a stalled receiver until its connection ends."""
    # The server may have closed it as too slow, as wsteach.Room does.
    with contextlib.suppress(ConnectionClosedError):
        async for _ in connection:
            pass


class _Group:
    """One fan-out on one server: a sender, receivers, and the result they fill in.

    :func:`_interleave` calls :meth:`open`, :meth:`before_waves`, :meth:`wave`
    for each message, :meth:`after_waves`, :meth:`close` (:meth:`abort` on any
    error). The two hooks do nothing here; ``benchmarks/harness.py`` overrides
    them to count the server's CPU time.
    """

    def __init__(
        self, server: Measured, result: FanoutResult, wave_timeout: float
    ) -> None:
        if result.receivers < 1 or result.messages < 1:
            raise ValueError("a fan-out needs at least one receiver and one message")
        self.server, self.result, self.wave_timeout = server, result, wave_timeout
        self.texts = _texts(result.messages, result.payload)
        self.sent_at: list[float] = []
        self.arrived = [0] * result.messages
        self.wave_done = asyncio.Event()
        self.current = -1
        self.recording = True  # Deliveries after the last wave are not counted.
        self.clients: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.slow: ClientConnection | None = None

    async def _read(self, connection: ClientConnection) -> None:
        async for message in connection:
            now = time.perf_counter()
            seq = int(message[-SEQ_DIGITS:])
            if self.recording:
                self.result.latencies.append(now - self.sent_at[seq])
            self.arrived[seq] += 1
            if seq == self.current and self.arrived[seq] == self.result.receivers:
                self.wave_done.set()

    async def open(self) -> None:
        """Connect everyone and wait until the server has them all."""
        readers = await connect_many(self.server.url, self.result.receivers)
        self.clients += readers
        self.tasks += [asyncio.create_task(self._read(conn)) for conn in readers]
        if self.result.stalled:
            self.slow = await _connect_stalled(self.server.url)
            self.clients.append(self.slow)
        (self.sender,) = await connect_many(self.server.url, 1)
        self.clients.append(self.sender)
        await wait_for_connections(self.server, len(self.clients))

    async def before_waves(self) -> None:
        """Hook: runs on every group of a run just before the first wave."""

    async def wave(self, seq: int) -> None:
        """Send message ``seq`` and wait until every reading receiver has it."""
        self.current = seq
        self.wave_done.clear()
        self.sent_at.append(time.perf_counter())
        self.result.sent += 1
        try:
            async with asyncio.timeout(self.wave_timeout):
                await self.sender.send(self.texts[seq])
                await self.wave_done.wait()
        except TimeoutError:
            self.result.stalled_after = seq

    async def after_waves(self) -> None:
        """Hook: runs on every group of a run just after the last wave."""

    async def close(self) -> None:
        """Disconnect everyone with a closing handshake, leaving the server empty."""
        self.recording = False
        if self.slow is not None:
            # The stalled receiver wakes up: a server stuck on it gets going.
            self.tasks.append(asyncio.create_task(_drain(self.slow)))
        if self.result.stalled_after is not None:
            async with asyncio.timeout(10):
                await self.wave_done.wait()
        # The sender leaves first, so no message is on its way while the others leave.
        await self.sender.close()
        await asyncio.gather(*(conn.close() for conn in self.clients))
        await asyncio.gather(*self.tasks)
        await wait_for_connections(self.server, 0)

    async def abort(self) -> None:
        """Drop every client at once and stop reading."""
        await abort(self.clients)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _interleave(groups: Sequence[_Group]) -> None:
    """Run the groups' fan-outs, wave by wave in turn (see :func:`run_interleaved`)."""
    try:
        for group in groups:
            await group.open()
        for group in groups:
            await group.before_waves()
        for seq in range(groups[0].result.messages):
            turn = seq % len(groups)
            for group in [*groups[turn:], *groups[:turn]]:
                if group.result.stalled_after is None:  # No wave timed out yet.
                    await group.wave(seq)
        for group in groups:
            await group.after_waves()
        for group in groups:
            await group.close()
    except BaseException:
        for group in groups:
            await group.abort()
        raise


async def run_interleaved(
    runs: Sequence[tuple[Measured, str, bool]],
    *,
    receivers: int,
    messages: int,
    payload: int = 1024,
    wave_timeout: float = 1.0,
    group: type[_Group] = _Group,
    result: type[FanoutResult] = FanoutResult,
) -> list[FanoutResult]:
    """Measure the same fan-out on running servers, wave by wave in turn.

    ``runs`` holds ``(server, kind, stalled)`` triples; each server gets its own
    sender and receivers. Message 1 goes out on each server in turn, then
    message 2 (starting one server further on)… so a hiccup of the machine hits
    all runs alike. A server whose wave takes longer than ``wave_timeout``
    seconds drops out: its missing deliveries never arrive. Everyone then
    disconnects. Returns one result per run, in the order of ``runs``.
    ``group`` and ``result`` are the classes that measure and hold a run: the
    benchmarks pass subclasses that add CPU time.
    """
    groups = [
        group(server, result(kind, receivers, messages, stalled, payload), wave_timeout)
        for server, kind, stalled in runs
    ]
    await _interleave(groups)
    return [each.result for each in groups]
