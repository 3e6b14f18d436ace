"""Tests for wsteach.measure: the servers notebook 05 measures, compare, table, plot.

The fan-out itself is wsteach.waves' (tests/test_waves.py). Sizes are tiny and
nothing here asserts a timing threshold: the tests check that every message is
delivered and counted, and that a stalled reader stops the video's loop but
not ``broadcast``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from websockets.asyncio.server import ServerConnection

from wsteach import measure, waves

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


def test_measure_re_exports_the_fanout_of_waves() -> None:
    """measure.FanoutResult and measure.run_interleaved are wsteach.waves' own."""
    assert measure.FanoutResult is waves.FanoutResult
    assert measure.run_interleaved is waves.run_interleaved
    assert {"FanoutResult", "run_interleaved"} <= set(measure.__all__)


LIGHT_IMPORT = """
import json, sys
import wsteach
import wsteach.measure
import wsteach.waves
heavy = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("matplotlib", "IPython", "ipykernel")
    or name.startswith("jupyter")
)
print(json.dumps(heavy))
"""


def test_import_wsteach_leaves_heavy_packages_alone() -> None:
    """`import wsteach` (or measure, waves) loads no matplotlib, IPython or jupyter."""
    out = subprocess.run(
        [sys.executable, "-c", LIGHT_IMPORT], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


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
