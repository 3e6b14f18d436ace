"""Tests for wsteach.measure: the fan-out and slow-reader measurements notebook 05 plots.

Sizes are tiny and nothing here asserts a timing threshold: the tests check
that every message is delivered and counted, and that a stalled reader stops
the video's loop but not ``broadcast``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from websockets.asyncio.server import ServerConnection

from wsteach import measure

# Enough data to fill a stalled client's buffers several times over (about
# 1.6 MB fills them on loopback here), in few messages.
STALL = {"messages": 150, "payload": 64 * 1024}


@pytest.mark.parametrize("kind", measure.KINDS)
async def test_fanout_delivers_every_message_once(kind: str) -> None:
    """Each receiver gets each message once, and each delivery has a latency ≥ 0."""
    result = await measure.fanout(kind, receivers=3, messages=5)
    assert result.kind == kind
    assert (result.sent, result.expected, result.delivered) == (5, 15, 15)
    assert all(latency >= 0 for latency in result.latencies)
    assert result.stalled_after is None
    assert 0 <= result.p50 <= result.p99 < math.inf
    assert "15/15 delivered" in str(result)


async def test_stalled_reader_stops_the_video_loop() -> None:
    """One client that stops reading stops the loop's deliveries to everyone."""
    async with measure.serving("loop") as server:
        (result,) = await measure.run_interleaved(
            [(server, "loop", True)], receivers=2, **STALL
        )
        # The run ended cleanly: the server has no clients left.
        assert await server.connections() == 0
    assert result.stalled_after is not None
    assert result.stalled_after < STALL["messages"]
    assert result.sent == result.stalled_after + 1
    # Everything before the stuck message arrived, nothing after it did, and
    # the stuck one reached at most the receivers ahead of the stalled client.
    stuck = result.stalled_after
    assert 2 * stuck <= result.delivered < 2 * (stuck + 1)
    assert result.p99 == math.inf
    assert "stuck after" in str(result)
    assert "never" in str(result)


@pytest.mark.parametrize("kind", ["room", "broadcast"])
async def test_stalled_reader_does_not_stop_broadcast(kind: str) -> None:
    """With broadcast, the readers get every message although one client stalls."""
    result = await measure.fanout(kind, receivers=2, stalled=True, **STALL)
    assert result.stalled_after is None
    assert result.delivered == result.expected == 2 * STALL["messages"]
    assert result.p99 < math.inf


async def test_fanout_measures_your_own_handler() -> None:
    """A notebook's own handler can be measured in-process, named after it."""
    connected: set[ServerConnection] = set()

    async def relay(websocket: ServerConnection) -> None:
        connected.add(websocket)
        try:
            async for message in websocket:
                for other in connected - {websocket}:
                    await other.send(message)
        finally:
            connected.discard(websocket)

    result = await measure.fanout(relay, receivers=2, messages=3)
    assert result.kind == "relay"
    assert result.delivered == 6


async def test_bad_arguments_say_what_to_pass() -> None:
    """An unknown server name or an empty fan-out is refused with a clear error."""
    with pytest.raises(ValueError, match=r"unknown server 'chat'.*room"):
        await measure.fanout("chat")
    with pytest.raises(ValueError, match="at least one receiver"):
        await measure.fanout("room", receivers=0)


def test_percentiles_count_missing_deliveries_as_never() -> None:
    """p50 and p99 use nearest rank; a missing delivery is infinitely late."""

    def result(latencies: list[float], messages: int) -> measure.FanoutResult:
        return measure.FanoutResult(
            kind="loop",
            receivers=1,
            messages=messages,
            stalled=False,
            payload=10,
            sent=messages,
            latencies=latencies,
        )

    full = result([i / 1000 for i in range(1, 101)], 100)
    assert full.p50 == pytest.approx(50)
    assert full.p99 == pytest.approx(99)
    assert full.percentile(100) == pytest.approx(100)
    one_missing = result([i / 1000 for i in range(1, 100)], 100)
    assert one_missing.p99 == pytest.approx(99)
    assert one_missing.percentile(100) == math.inf
    two_missing = result([i / 1000 for i in range(1, 99)], 100)
    assert two_missing.p99 == math.inf
    assert math.isnan(result([], 0).p50)
    assert result([], 3).p50 == math.inf


async def test_compare_table_and_plot() -> None:
    """compare measures each server; the table and the plot show every run."""
    results = await measure.compare(["broadcast", "loop"], receivers=[2, 3], messages=3)
    assert [(r.kind, r.receivers, r.stalled) for r in results] == [
        ("broadcast", 2, False),
        ("broadcast", 3, False),
        ("broadcast", 3, False),
        ("broadcast", 3, True),
        ("loop", 2, False),
        ("loop", 3, False),
        ("loop", 3, False),
        ("loop", 3, True),
    ]
    assert all(r.delivered == r.expected for r in results[:-1])
    assert results[-1].p99 == math.inf  # The loop, stalled: stuck.

    text = measure.table(results)
    assert len(text.splitlines()) == 1 + len(results)
    assert "32 KiB" in text and "never" in text

    figure = measure.plot(results)
    left, right = figure.axes
    assert [line.get_label() for line in left.get_lines()] == ["broadcast", "loop"]
    # Two bars per server: all reading, one stalled; the loop's stalled one
    # is marked "never".
    assert len(right.patches) == 4
    labels = [text.get_text() for text in right.texts]
    assert labels[-1] == "never"
    assert all(label != "never" for label in labels[:-1])


LIGHT_IMPORT = """
import json, sys
import wsteach
import wsteach.measure
heavy = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("matplotlib", "IPython", "ipykernel")
    or name.startswith("jupyter")
)
print(json.dumps(heavy))
"""


def test_import_wsteach_leaves_heavy_packages_alone() -> None:
    """`import wsteach` (and wsteach.measure) loads no matplotlib, IPython or jupyter."""
    out = subprocess.run(
        [sys.executable, "-c", LIGHT_IMPORT], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


async def test_connecting_to_nothing_raises_and_leaves_nothing_open() -> None:
    """A fan-out whose server is gone raises the connection error, for every client kind."""
    async with measure.serving("broadcast") as server:
        pass  # Stopped: its port refuses connections now.
    with pytest.raises(OSError):
        await measure.connect_many(server.url, 3)
    with pytest.raises(OSError):
        await measure._connect_stalled(server.url)
    with pytest.raises(OSError):
        await measure.run_interleaved(
            [(server, "broadcast", False)], receivers=2, messages=2
        )


async def test_a_failed_run_drops_the_clients_of_every_server() -> None:
    """When one server of a run fails, the clients already open elsewhere are dropped."""
    async with measure.serving("broadcast") as gone:
        pass
    async with measure.serving("broadcast") as server:
        with pytest.raises(OSError):
            await measure.run_interleaved(
                [(server, "broadcast", False), (gone, "broadcast", False)],
                receivers=2,
                messages=2,
            )
        await measure.wait_for_connections(server, 0)


async def test_waiting_for_clients_that_never_come_times_out() -> None:
    """wait_for_connections polls until its deadline, then raises TimeoutError."""
    async with measure.serving("broadcast") as server:
        with pytest.raises(TimeoutError):
            await measure.wait_for_connections(server, 1, timeout=0.05)


async def test_compare_without_a_stalled_reader_and_its_plot() -> None:
    """stalled=False measures only the reading runs; the plot then has no stall bars."""
    results = await measure.compare(
        ["broadcast", "loop"], receivers=[2], messages=2, stalled=False
    )
    assert [(r.kind, r.receivers, r.stalled) for r in results] == [
        ("broadcast", 2, False),
        ("loop", 2, False),
    ]
    _, right = measure.plot(results).axes
    assert len(right.patches) == 0 and right.get_title() == ""


def test_plot_of_a_stalled_run_without_its_twin() -> None:
    """A stalled run with no reading run of the same size still gets its bar."""
    stalled = measure.FanoutResult(
        kind="loop",
        receivers=1,
        messages=2,
        stalled=True,
        payload=10,
        sent=1,
        latencies=[0.001],
        stalled_after=1,
    )
    _, right = measure.plot([stalled]).axes
    assert len(right.patches) == 1
    assert [text.get_text() for text in right.texts] == ["never"]


async def test_hooks_run_around_the_waves_of_every_group() -> None:
    """A group's hooks run after every group has connected and before anyone leaves."""
    events: list[tuple[str, str]] = []

    class Noted(measure._Group):
        async def open(self) -> None:
            await super().open()
            events.append(("open", self.result.kind))

        async def before_waves(self) -> None:
            events.append(("before", self.result.kind))

        async def wave(self, seq: int) -> None:
            await super().wave(seq)
            events.append(("wave", self.result.kind))

        async def after_waves(self) -> None:
            events.append(("after", self.result.kind))

        async def close(self) -> None:
            events.append(("close", self.result.kind))
            await super().close()

    async with measure.serving("room") as one, measure.serving("broadcast") as two:
        groups = [
            Noted(server, measure.FanoutResult(kind, 2, 2, False, 10), 1.0)
            for server, kind in ((one, "room"), (two, "broadcast"))
        ]
        await measure._interleave(groups)
    assert [step for step, _ in events] == [
        *["open"] * 2,
        *["before"] * 2,
        *["wave"] * 4,
        *["after"] * 2,
        *["close"] * 2,
    ]
    # Message 1 goes out on each server in turn, message 2 starts one further on.
    waves = [kind for step, kind in events if step == "wave"]
    assert waves == ["room", "broadcast", "broadcast", "room"]
    assert [group.result.delivered for group in groups] == [4, 4]
