"""Measure a broadcast server from a notebook: fan-out latency, and one slow reader.

One sender and ``receivers`` clients connect to a broadcast server. The sender
sends ``messages`` messages, one at a time: each waits until every receiver has
it (a "wave") before the next goes out. Every receiver notes how long each
message took from the sender's ``send`` to its own receipt::

    from wsteach import measure

    results = await measure.compare(receivers=[10, 40], messages=10)
    print(measure.table(results))
    measure.plot(results)

Three servers are known by name (:data:`KINDS`), and you can pass your own
handler instead:

- ``"room"``: :class:`wsteach.Room` with its rate limit off;
- ``"broadcast"``: a plain handler that relays with :func:`websockets.broadcast`;
- ``"loop"``: the video's handler, ``for conn in connected: await conn.send(...)``,
  over a copy of the set (the video iterates over the set itself, which raises
  "Set changed size during iteration" when a client joins or leaves mid-loop).

With ``stalled=True`` one more receiver connects and never reads, like a phone
on a train. The loop waits for it, so once its buffers are full the others get
nothing more; ``broadcast`` does not wait.

Limits: the server runs on this process's event loop, next to the clients, so
the clients' work delays it and its CPU time can't be told apart from theirs.
That is fine for comparing servers at a small size in a notebook; for figures
with the server in its own process, run ``make bench`` (``benchmarks/``).
Nothing here imports matplotlib until :func:`plot` is called.
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
"""The broadcast servers :func:`fanout` knows by name."""

PREFIX = "Someone said: "
SEQ_DIGITS = 8  # Each message ends with its sequence number, zero-padded.
HOST = "127.0.0.1"
# Hundreds of clients at once overflow the listen backlog, and a dropped SYN
# costs a one-second retransmit: connect in small batches instead.
CONNECT_BATCH = 50
STALL_PAYLOAD = 32 * 1024
STALL_MESSAGES = 100
"""A stalled-reader run sends 100 messages of 32 KiB: 3.2 MB, enough to fill the
stalled client's buffers (about 1.6 MB on loopback here) and websockets' own."""


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
    if kind == "broadcast":
        return plain_broadcast()
    if kind == "loop":
        return video_loop()
    raise ValueError(
        f"unknown server {kind!r}: use one of {', '.join(KINDS)} or pass an async handler"
    )


class Measured(Protocol):
    """What a fan-out needs of a running server (here or in another process)."""

    url: str

    async def connections(self) -> int: ...  # pragma: no cover - protocol

    async def cpu(self) -> float | None: ...  # pragma: no cover - protocol


class InProcess:
    """A server on this process's event loop, measured by the clients next to it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = f"ws://{HOST}:{server.sockets[0].getsockname()[1]}"

    async def connections(self) -> int:
        """How many clients the server has right now."""
        return len(self.server.connections)

    async def cpu(self) -> None:
        """:obj:`None`: server and clients share this process's CPU time."""
        return None


@contextlib.asynccontextmanager
async def serving(kind: str | Handler) -> AsyncIterator[InProcess]:
    """Serve ``kind`` on a free port of 127.0.0.1 for an ``async with`` block."""
    async with serve(handler_for(kind), HOST, 0) as server:
        yield InProcess(server)


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
        server_cpu: Server CPU seconds during the waves, or :obj:`None` when
            the server shared the clients' process.
        client_cpu: CPU seconds of the clients' process during the waves.
        wall: Seconds the waves took, added up.
        stalled_after: How many messages reached everyone before a wave timed
            out, or :obj:`None` if none timed out.
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

    @property
    def separate_process(self) -> bool:
        """Whether the server ran in its own process (its CPU time is known)."""
        return self.server_cpu is not None

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
        """Server CPU per message and recipient (the stalled one too), in µs."""
        if self.server_cpu is None or self.sent == 0:
            return None
        recipients = self.receivers + (1 if self.stalled else 0)
        return self.server_cpu / (self.sent * recipients) * 1e6

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


async def connect_many(url: str, count: int) -> list[ClientConnection]:
    """Connect ``count`` clients in batches; on failure, drop those connected."""
    connections: list[ClientConnection] = []
    try:
        for first in range(0, count, CONNECT_BATCH):
            batch = min(CONNECT_BATCH, count - first)
            connections += await asyncio.gather(
                *(
                    ws_connect(url, ping_interval=None, compression=None)
                    for _ in range(batch)
                )
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
    return await ws_connect(
        url, sock=sock, max_queue=1, ping_interval=None, compression=None
    )


async def abort(connections: Iterable[ClientConnection]) -> None:
    """Drop connections at once: a stalled one would never finish a closing handshake."""
    for connection in connections:
        connection.transport.abort()
    await asyncio.gather(
        *(conn.wait_closed() for conn in connections), return_exceptions=True
    )


async def wait_for_connections(
    server: Measured, count: int, timeout: float = 10
) -> None:
    """Wait until the server has ``count`` clients, asking it every 5 ms.

    The server may be in another process: there is no event to wait on.
    """
    async with asyncio.timeout(timeout):
        while True:
            if await server.connections() == count:
                return
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
    """One fan-out in progress: a sender, its receivers, what they measured."""

    def __init__(
        self,
        server: Measured,
        kind: str,
        stalled: bool,
        *,
        receivers: int,
        messages: int,
        payload: int,
        wave_timeout: float,
    ) -> None:
        if receivers < 1 or messages < 1:
            raise ValueError("a fan-out needs at least one receiver and one message")
        self.server, self.kind, self.stalled = server, kind, stalled
        self.receivers, self.messages, self.payload = receivers, messages, payload
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
        self.cpu: float | None = None
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
        """Connect everyone and wait until the server has them all."""
        readers = await connect_many(self.server.url, self.receivers)
        self.clients += readers
        self.tasks += [asyncio.create_task(self._read(conn)) for conn in readers]
        if self.stalled:
            self.slow = await _connect_stalled(self.server.url)
            self.clients.append(self.slow)
        (self.sender,) = await connect_many(self.server.url, 1)
        self.clients.append(self.sender)
        await wait_for_connections(self.server, len(self.clients))

    @property
    def going(self) -> bool:
        """Whether no wave has timed out yet."""
        return self.stalled_after is None

    async def wave(self, seq: int) -> None:
        """Send message ``seq`` and wait until every reading receiver has it."""
        self.current = seq
        self.wave_done.clear()
        started, cpu = time.perf_counter(), time.process_time()
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
            self.cpu = cpu - (self.cpu or 0.0) if stop else cpu

    async def close(self) -> None:
        """Disconnect everyone with a closing handshake, leaving the server empty."""
        self.recording = False
        if self.slow is not None:
            # The stalled receiver wakes up: a server stuck on it gets going.
            self.tasks.append(asyncio.create_task(_drain(self.slow)))
        if self.stalled_after is not None:
            async with asyncio.timeout(10):
                await self.wave_done.wait()
        # The sender leaves first, so no message is on its way while the others leave.
        await self.sender.close()
        await asyncio.gather(*(conn.close() for conn in self.clients))
        await asyncio.gather(*self.tasks)
        await wait_for_connections(self.server, 0)

    async def abort(self) -> None:
        await abort(self.clients)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def result(self) -> FanoutResult:
        return FanoutResult(
            kind=self.kind,
            receivers=self.receivers,
            messages=self.messages,
            sent=len(self.sent_at),
            stalled=self.stalled,
            payload=self.payload,
            latencies=self.latencies,
            server_cpu=self.cpu,
            client_cpu=self.client_cpu,
            wall=self.wall,
            stalled_after=self.stalled_after,
        )


async def run_interleaved(
    runs: Sequence[tuple[Measured, str, bool]],
    *,
    receivers: int,
    messages: int,
    payload: int = 1024,
    wave_timeout: float = 1.0,
) -> list[FanoutResult]:
    """Measure the same fan-out on running servers, wave by wave in turn.

    ``runs`` holds ``(server, kind, stalled)`` triples. Every server gets its
    own sender and receivers; message 1 goes out on each server in turn, then
    message 2 (the turn starting one server further on)… so a hiccup of the
    machine hits all runs alike. A server whose wave timed out (after
    ``wave_timeout`` seconds) drops out and its missing deliveries count as
    never arrived; the others carry on. Everyone then disconnects with a
    closing handshake, leaving each server running with no clients.

    Returns:
        One result per entry of ``runs``, in the same order.
    """
    groups = [
        _Group(
            server,
            kind,
            stalled,
            receivers=receivers,
            messages=messages,
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


def _label(kind: str | Handler) -> str:
    from ._handlers import handler_name

    return kind if isinstance(kind, str) else handler_name(kind)


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
    async with serving(kind) as server:
        (result,) = await run_interleaved(
            [(server, _label(kind), stalled)],
            receivers=receivers,
            messages=messages,
            payload=payload,
            wave_timeout=wave_timeout,
        )
    return result


async def compare(
    kinds: Sequence[str | Handler] = KINDS,
    *,
    receivers: Sequence[int] = (10, 40),
    messages: int = 10,
    stalled: bool = True,
) -> list[FanoutResult]:
    """Measure each server at each number of receivers, then with a stalled one.

    For each server: one run per entry of ``receivers`` (1 KiB messages); then,
    with ``stalled=True``, two servers of that kind side by side, wave by wave,
    with the largest number of receivers and :data:`STALL_MESSAGES` messages of
    :data:`STALL_PAYLOAD`: one with everyone reading, one with an extra
    receiver that never reads. Returns the results in the order measured, for
    :func:`table` and :func:`plot`.
    """
    results = []
    for kind in kinds:
        name = _label(kind)
        async with contextlib.AsyncExitStack() as stack:
            servers = [
                await stack.enter_async_context(serving(kind))
                for _ in range(1 + stalled)
            ]
            for count in receivers:
                results += await run_interleaved(
                    [(servers[0], name, False)], receivers=count, messages=messages
                )
            # No branch: CPython 3.11 doesn't trace the jump out of an `if`
            # that ends an `async with` (tests take both ways).
            if stalled:  # pragma: no branch
                results += await run_interleaved(
                    [(servers[0], name, False), (servers[1], name, True)],
                    receivers=max(receivers),
                    messages=STALL_MESSAGES,
                    payload=STALL_PAYLOAD,
                )
    return results


def table(results: Iterable[FanoutResult]) -> str:
    """Return the results as a plain-text table, one line per run."""
    rows = [("server", "receivers", "message", "stalled", "delivered", "p50", "p99")]
    rows += [
        (
            r.kind,
            str(r.receivers),
            _size(r.payload),
            "yes" if r.stalled else "no",
            f"{r.delivered}/{r.expected}",
            _ms(r.p50),
            _ms(r.p99),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def plot(results: Sequence[FanoutResult]) -> Figure:
    """Plot p99 latency by receivers (left) and with one stalled receiver (right).

    Left: one line per server, from the runs without a stalled receiver and
    with the smallest messages. Right: for each server with a stalled run, the
    p99 of the reading receivers with everyone reading and with one stalled;
    deliveries that never arrived draw a hatched bar marked "never". Returns
    the matplotlib figure, which a notebook shows as a cell's last value.
    """
    import matplotlib.pyplot as plt

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
    counts = sorted({r.receivers for r in results})
    left.set_xscale("log")
    left.set_xticks(counts, [str(count) for count in counts])
    left.minorticks_off()
    left.set(
        xlabel="receivers",
        ylabel="p99 latency (ms)",
        title="Fan-out: send to receipt, 99th percentile",
    )
    left.set_ylim(bottom=0)
    left.legend()

    stalls = [r for r in results if r.stalled]
    bars = []  # (position, result, colour) for each stalled run and its twin
    for index, stall in enumerate(stalls):
        twin = next(
            (
                r
                for r in results
                if r.kind == stall.kind
                and not r.stalled
                and (r.receivers, r.messages, r.payload)
                == (stall.receivers, stall.messages, stall.payload)
            ),
            None,
        )
        if twin is not None:
            bars.append((index - 0.19, twin, "tab:blue"))
        bars.append((index + 0.19, stall, "tab:red"))
    finite = [r.p99 for _, r, _ in bars if math.isfinite(r.p99)]
    ceiling = 1.5 * max(finite, default=1.0)
    for position, run, colour in bars:
        never = math.isinf(run.p99)
        height = ceiling if never else run.p99
        right.bar(
            position,
            height,
            0.38,
            color=colour,
            hatch="//" if never else None,
            alpha=0.5 if never else 1.0,
        )
        right.annotate(
            "never" if never else f"{run.p99:.1f}",
            (position, height),
            ha="center",
            va="bottom",
        )
    right.set_xticks(range(len(stalls)), [r.kind for r in stalls])
    right.set_ylabel("p99 latency of the others (ms)")
    if stalls:
        first = stalls[0]
        right.set_title(
            f"{first.receivers} receivers, {first.messages} × {_size(first.payload)}: one more stops reading"
        )
    right.set_ylim(0, ceiling * 1.15)
    right.bar([], [], color="tab:blue", label="all reading")
    right.bar([], [], color="tab:red", label="one stalled")
    right.legend(loc="upper left")
    return fig
