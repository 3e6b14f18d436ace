"""Measure a broadcast server from a notebook: fan-out latency, and one slow reader.

The servers named in :data:`KINDS`, or your own handler, run on this event
loop while :mod:`wsteach.waves` measures them: one sender and ``receivers``
clients; the sender sends one message at a time and waits until every
receiver has it (a "wave"). Each receiver notes how long each message took
from the sender's ``send``::

    results = await measure.compare(receivers=[10, 40], messages=10)
    print(measure.table(results))
    measure.plot(results)

With ``stalled=True`` one more receiver never reads, like a phone on a train:
once its buffers are full, the video's loop waits for it and the others get
nothing more; ``broadcast`` does not wait.

This module holds the servers, :func:`fanout`, :func:`compare`,
:func:`table` and :func:`plot`. :class:`FanoutResult` and
:func:`run_interleaved` live in :mod:`wsteach.waves` (the clients' side,
which the benchmarks build on too) and are re-exported here.

Limits: the server shares this process's event loop with the clients, so their
work delays it: fine for comparing servers at a small size. For figures with
the server in its own process, and its CPU time, run ``make bench``
(``benchmarks/harness.py`` builds on :mod:`wsteach.waves`). Only :func:`plot`
imports matplotlib.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server, ServerConnection, broadcast

from .listening import listen
from .waves import HOST, FanoutResult, _ms, run_interleaved

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "KINDS",
    "compare",
    "fanout",
    "plain_broadcast",
    "plot",
    "table",
    "video_loop",
]
# Re-exported from wsteach.waves, where they live.
__all__ += ["FanoutResult", "run_interleaved"]

Handler = Callable[[ServerConnection], Awaitable[None]]

KINDS = ("room", "broadcast", "loop")
"""The servers known by name: :class:`wsteach.Room` (its rate limit off), a
plain handler that relays with :func:`websockets.broadcast`, and the video's
``for conn in connected: await conn.send(...)`` (over a copy of the set: over
the set itself, a client leaving mid-loop raises "Set changed size during
iteration")."""

PREFIX = "Someone said: "
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
        from .handlers import Room
        from .limits import Limits

        # The classroom rate limit (10 messages a second) would cut the sender
        # off; the bound on what may queue for a slow reader stays on.
        return Room(limits=Limits(rate=None)).handler
    if kind in KINDS:
        return plain_broadcast() if kind == "broadcast" else video_loop()
    raise ValueError(
        f"unknown server {kind!r}: use one of {', '.join(KINDS)} or pass an async handler"
    )


def _label(kind: str | Handler) -> str:
    from .handler_check import handler_name

    return kind if isinstance(kind, str) else handler_name(kind)


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
    server, _ = await listen(handler_for(kind), HOST, 0)
    async with server:
        yield InProcess(server)


def _size(payload: int) -> str:
    return f"{payload // 1024} KiB" if payload >= 1024 else f"{payload} B"


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
