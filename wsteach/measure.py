"""Measure a broadcast server from a notebook: fan-out latency, and one slow reader.

One sender and ``receivers`` clients connect to a server; the sender sends one
message at a time and waits until every receiver has it (a "wave"). Each
receiver notes how long each message took from the sender's ``send``::

    results = await measure.compare(receivers=[10, 40], messages=10)
    print(measure.table(results))
    measure.plot(results)

The servers are named in :data:`KINDS`, or pass your own handler. With
``stalled=True`` one more receiver never reads, like a phone on a train: once
its buffers are full, the video's loop waits for it and the others get nothing
more; ``broadcast`` does not wait.

Limits: the server shares this process's event loop with the clients, so their
work delays it: fine for comparing servers at a small size. For figures with
the server in its own process, and its CPU time, run ``make bench``
(``benchmarks/harness.py`` builds on this module). Only :func:`plot` imports
matplotlib.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosedError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "KINDS",
    "FanoutResult",
    "compare",
    "fanout",
    "plain_broadcast",
    "plot",
    "run_interleaved",
    "table",
    "video_loop",
]

Handler = Callable[[ServerConnection], Awaitable[None]]

KINDS = ("room", "broadcast", "loop")
"""The servers known by name: :class:`wsteach.Room` (its rate limit off), a
plain handler that relays with :func:`websockets.broadcast`, and the video's
``for conn in connected: await conn.send(...)`` (over a copy of the set: over
the set itself, a client leaving mid-loop raises "Set changed size during
iteration")."""

PREFIX = "Someone said: "
SEQ_DIGITS = 8  # Each message ends with its sequence number, zero-padded.
HOST = "127.0.0.1"
# Hundreds of clients at once overflow the listen backlog, and a dropped SYN
# costs a one-second retransmit: connect in small batches instead.
CONNECT_BATCH = 50
# A stalled-reader run sends 100 messages of 32 KiB: 3.2 MB, enough to fill the
# stalled client's buffers (about 1.6 MB on loopback here) and websockets' own.
STALL_PAYLOAD = 32 * 1024
STALL_MESSAGES = 100


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
    """Return the video's handler: a sequential ``await send`` to each client."""
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


def handler_for(kind: str | Handler) -> Handler:
    """Return the handler called ``kind`` in :data:`KINDS`, or ``kind`` itself."""
    if callable(kind):
        return kind
    if kind == "room":
        from .limits import Limits
        from .servers import Room

        # The classroom rate limit (10 messages a second) would cut the sender
        # off; the bound on what may queue for a slow reader stays on.
        return Room(limits=Limits(rate=None)).handler
    if kind in KINDS:
        return plain_broadcast() if kind == "broadcast" else video_loop()
    raise ValueError(
        f"unknown server {kind!r}: use one of {', '.join(KINDS)} or pass an async handler"
    )


def _label(kind: str | Handler) -> str:
    from ._handlers import handler_name

    return kind if isinstance(kind, str) else handler_name(kind)


class Measured(Protocol):
    """What a fan-out needs of a running server, here or in another process."""

    url: str

    async def connections(self) -> int: ...  # pragma: no cover - protocol


class InProcess:
    """A server on this process's event loop."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = f"ws://{HOST}:{server.sockets[0].getsockname()[1]}"

    async def connections(self) -> int:
        """How many clients the server has right now."""
        return len(self.server.connections)


@contextlib.asynccontextmanager
async def serving(kind: str | Handler) -> AsyncIterator[InProcess]:
    """Serve ``kind`` on a free port of 127.0.0.1 for an ``async with`` block."""
    async with serve(handler_for(kind), HOST, 0) as server:
        yield InProcess(server)


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


def _size(payload: int) -> str:
    return f"{payload // 1024} KiB" if payload >= 1024 else f"{payload} B"


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
        connection.transport.abort()
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
    with contextlib.suppress(ConnectionClosedError):  # Room closes it: too slow
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
) -> list[FanoutResult]:
    """Measure the same fan-out on running servers, wave by wave in turn.

    ``runs`` holds ``(server, kind, stalled)`` triples; each server gets its own
    sender and receivers. Message 1 goes out on each server in turn, then
    message 2 (starting one server further on)… so a hiccup of the machine hits
    all runs alike. A server whose wave takes longer than ``wave_timeout``
    seconds drops out: its missing deliveries never arrive. Everyone then
    disconnects. Returns one result per run, in the order of ``runs``.
    """
    groups = []
    for server, kind, stalled in runs:
        result = FanoutResult(kind, receivers, messages, stalled, payload)
        groups.append(_Group(server, result, wave_timeout))
    await _interleave(groups)
    return [group.result for group in groups]


async def fanout(
    kind: str | Handler,
    *,
    receivers: int = 10,
    messages: int = 20,
    stalled: bool = False,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> FanoutResult:
    """Serve ``kind`` (a name in :data:`KINDS` or your handler), measure one fan-out, stop."""
    result = FanoutResult(_label(kind), receivers, messages, stalled, payload)
    async with serving(kind) as server:
        await _interleave([_Group(server, result, wave_timeout)])
    return result


async def compare(
    kinds: Sequence[str | Handler] = KINDS,
    *,
    receivers: Sequence[int] = (10, 40),
    messages: int = 10,
    stalled: bool = True,
) -> list[FanoutResult]:
    """Measure each server at each number of receivers, then with a stalled one.

    For each server: a fan-out of 1 KiB messages to each number of
    ``receivers``; then, with ``stalled=True``, two servers of that kind wave by
    wave, with the most receivers and :data:`STALL_MESSAGES` messages of
    :data:`STALL_PAYLOAD`, one with an extra receiver that never reads.
    Returns the results in the order measured.
    """
    results = []
    for kind in kinds:
        for count in receivers:
            results.append(await fanout(kind, receivers=count, messages=messages))
        if stalled:
            async with serving(kind) as reading, serving(kind) as slow:
                name = _label(kind)
                results += await run_interleaved(
                    [(reading, name, False), (slow, name, True)],
                    receivers=max(receivers),
                    messages=STALL_MESSAGES,
                    payload=STALL_PAYLOAD,
                )
    return results


def table(results: Iterable[FanoutResult]) -> str:
    """Return the results as a plain-text table, one line per run."""
    rows = [("server", "receivers", "message", "stalled", "delivered", "p50", "p99")]
    for r in results:
        run = (r.kind, str(r.receivers), _size(r.payload), "yes" if r.stalled else "no")
        rows.append((*run, f"{r.delivered}/{r.expected}", _ms(r.p50), _ms(r.p99)))
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def plot(results: Sequence[FanoutResult]) -> Figure:
    """Plot p99 latency by receivers (left) and with one stalled receiver (right).

    Left: a line per server, from its runs without a stalled receiver and with
    the smallest messages. Right: for each stalled run, the p99 of its reading
    receivers (red) beside the same run with everyone reading (blue); a p99 that
    never arrived is a hatched bar marked "never". Returns the figure, which a
    notebook shows as the cell's value.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    plt.close(fig)  # Shown once, as the cell's value, not a second time by pyplot.
    smallest = min((r.payload for r in results), default=0)
    small = [r for r in results if not r.stalled and r.payload == smallest]
    for kind in dict.fromkeys(r.kind for r in results):
        runs = sorted((r for r in small if r.kind == kind), key=lambda r: r.receivers)
        left.plot([r.receivers for r in runs], [r.p99 for r in runs], "o-", label=kind)
    counts = sorted({r.receivers for r in results})
    left.set_xscale("log")
    left.set_xticks(counts, [str(count) for count in counts])
    left.minorticks_off()
    left.set_ylim(bottom=0)
    left.set(xlabel="receivers", ylabel="p99 latency (ms)")
    left.set_title("Fan-out: send to receipt, 99th percentile")
    left.legend()

    def shape(r: FanoutResult) -> tuple[str, int, int, int]:
        return (r.kind, r.receivers, r.messages, r.payload)

    stalls = [r for r in results if r.stalled]
    reading = {shape(r): r for r in results if not r.stalled}
    bars = []  # (x, result, colour): each stalled run, after its twin if any
    for x, stall in enumerate(stalls):
        twin = reading.get(shape(stall))
        if twin is not None:
            bars.append((x - 0.19, twin, "tab:blue"))
        bars.append((x + 0.19, stall, "tab:red"))
    finite = [r.p99 for _, r, _ in bars if math.isfinite(r.p99)]
    ceiling = 1.5 * max(finite, default=1.0)  # The height of a "never" bar.
    for x, run, colour in bars:
        never = math.isinf(run.p99)
        height = ceiling if never else run.p99
        style = {"hatch": "//", "alpha": 0.5} if never else {}
        right.bar(x, height, 0.38, color=colour, **style)
        label = "never" if never else f"{run.p99:.1f}"
        right.annotate(label, (x, height), ha="center", va="bottom")
    right.set_xticks(range(len(stalls)), [r.kind for r in stalls])
    right.set_ylabel("p99 latency of the others (ms)")
    right.set_ylim(0, ceiling * 1.15)
    if stalls:
        first = stalls[0]
        size = f"{first.messages} × {_size(first.payload)}"
        right.set_title(f"{first.receivers} receivers, {size}: one more stops reading")
    colours = {"all reading": "tab:blue", "one stalled": "tab:red"}
    right.legend(handles=[Patch(color=c, label=k) for k, c in colours.items()])
    return fig
